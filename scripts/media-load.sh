#!/usr/bin/env bash
# The media load table, measured against the kernel floor in the same session (issue 17).
#
# N simultaneous G.711 participants in conferences of 10 on one MediaEngine, fed over
# loopback by a generator process (crates/media/examples/media_load.rs). For each size,
# one after the other:
#   floor:       the bare C reflector of $FLOOR_DIR (shared/bench: reflector.c, floor.py),
#                driven by the same generator: what the kernel's loopback UDP costs
#                with no media work at all
#   in-band:     the bridge as the server runs a meeting: every participant's audio
#                mixed and searched for in-band DTMF by the call's own Goertzel detector
#                on the clock (RtpSession::set_in_band_listener), RFC 4733 events queued
#                to a consumer task (media_load's default; --queue-audio instead queues
#                every audio packet to the task, the way before issue 17)
#   mixed-only:  the bridge with --events-only; audio is mixed but only RFC 4733 events
#                are queued (a conference participant with telephone-event), see
#                RtpSession::set_deliver_audio
# and prints (and writes to $CARGO_TARGET_DIR/media-load/table.md) one row per size: CPU
# of each (% of one core), bridge ÷ floor, p99 tick lateness, what the generator
# delivered (packets sent ÷ packets due in the window), packets lost inside the bridge
# and a verdict. A size is clean only when the generator delivered >= 99.9 % of its
# packets, the p99 tick lateness is < 5 ms and nothing was lost inside the bridge.
# Absolute CPU figures move from run to run on a shared machine; the ratio much less.
# Every run's full output is kept beside the table (SIZE-floor.log, SIZE-inband.log,
# SIZE-mixed.log).
#
# Usage: scripts/media-load.sh [SECONDS] [SIZES...]   (default 20 s; 1000 2000 3000)
# Environment:
#   MEDIA_LOAD_RT=1   the bridge under `chrt -f 20`, its generator under `chrt -f 10`
#                     (SCHED_FIFO, needs root or CAP_SYS_NICE), as a media server would be
#                     deployed: it shields the clock from other jobs, and the generator
#                     never delays the bridge. floor.py runs the reflector and its
#                     generator under chrt whatever this says: without it the floor is at
#                     real-time priority and the bridge is not.
#   FLOOR_DIR=DIR     where floor.py is (default: ../shared/bench beside the repository)
#   SHARDS=N          passed to the bridge as --shards N
#   MEDIA_LOAD_ARGS   more flags for the bridge runs (split on spaces)
# The machine should be otherwise idle: a concurrent build makes the tick lateness
# meaningless.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

seconds="${1:-20}"
shift || true
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000 2000 3000)

FLOOR_DIR="${FLOOR_DIR:-$repo/../shared/bench}"
if [ ! -f "$FLOOR_DIR/floor.py" ]; then
    echo "error: the kernel floor is not at $FLOOR_DIR/floor.py (shared/bench beside the" >&2
    echo "       repository: floor.py and reflector.c); set FLOOR_DIR to where it is" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "error: python3 is needed (floor.py, the table)" >&2; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
cargo build --release -q -p dialbridge-media --example media_load
bin="$CARGO_TARGET_DIR/release/examples/media_load"
out="$CARGO_TARGET_DIR/media-load"
mkdir -p "$out"
rm -f "$out"/*.log "$out/table.md"

rt="${MEDIA_LOAD_RT:-0}"
run=()
extra=()
if [ "$rt" = 1 ]; then
    run=(chrt -f 20)
    extra=(--gen-prio 10)
else
    echo "warning: without MEDIA_LOAD_RT=1 the floor runs at real-time priority (floor.py" >&2
    echo "         uses chrt itself) and the bridge does not: the ratio is not like for like" >&2
fi
if [ -n "${SHARDS:-}" ]; then
    extra+=(--shards "$SHARDS")
fi
if [ -n "${MEDIA_LOAD_ARGS:-}" ]; then
    read -r -a more <<<"$MEDIA_LOAD_ARGS"
    extra+=("${more[@]}")
fi

# Each participant is two bridge sockets (and two reflector sockets); the programs raise
# their soft open-file limit to the hard one, which must allow it.
max=0
for n in "${sizes[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((max * 2 + 2000)) ]; then
    echo "warning: hard open-file limit $(ulimit -Hn) < $((max * 2 + 2000)): $max participants will fail" >&2
fi

# One run: its stdout and stderr (the generator's summary is on stderr) to the terminal
# and to a log; a failed run is recorded in its log and the others go on.
record() {
    local log=$1
    shift
    set +e
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" != 0 ]; then
        echo "failed: exit status $rc" | tee -a "$log"
    fi
}

for n in "${sizes[@]}"; do
    echo "==> $n participants: kernel floor, ${seconds}s after a 5 s ramp-up"
    record "$out/$n-floor.log" python3 "$FLOOR_DIR/floor.py" "$bin" "$seconds" "$n"
    echo "==> $n participants: bridge, in-band DTMF on the clock, ${seconds}s after a 5 s ramp-up"
    record "$out/$n-inband.log" "${run[@]}" "$bin" "$n" --seconds "$seconds" --warmup 5 "${extra[@]}"
    sleep 2
    echo "==> $n participants: bridge, mixed only (--events-only), ${seconds}s after a 5 s ramp-up"
    record "$out/$n-mixed.log" "${run[@]}" "$bin" "$n" --seconds "$seconds" --warmup 5 --events-only "${extra[@]}"
    sleep 2
done

python3 - "$out" "$seconds" "$rt" "${SHARDS:-}" "${extra[*]}" "${sizes[@]}" >"$out/table.md" <<'PY'
import os, sys, time

out, seconds, rt, shards, extra, sizes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]


def fields(line):
    return dict(t.split("=", 1) for t in line.split() if "=" in t)


def read(n, kind):
    """The run's main line (participants=...) and the generator's summary (generator: ...)."""
    main, gen, failed = {}, {}, None
    try:
        with open(os.path.join(out, f"{n}-{kind}.log")) as f:
            for line in f:
                if line.startswith("participants=") and not main:
                    main = fields(line)
                elif line.startswith("generator:"):
                    gen = fields(line)
                elif line.startswith("failed:"):
                    failed = line.strip()
    except FileNotFoundError:
        failed = "no log"
    return main, gen, failed


def pct(v):
    return v.rstrip("%") if v else "?"


def cpu(r):
    v = r.get("reflector_cpu", r.get("cpu"))
    return f"{v.rstrip('%')} %" if v else "?"


def num(v):
    try:
        return float(str(v).rstrip("%"))
    except (TypeError, ValueError):
        return None


def ratio(a, b):
    a, b = num(a), num(b)
    return f"{a / b:.2f}" if a is not None and b else "?"


def p99(m):
    v = m.get("p99")
    return v[:-2] if v and v.endswith("ms") else "?"


def verdict(m, failed):
    c = m.get("clean")
    if c is None:
        return "failed" if failed else "?"
    if c == "yes":
        return "yes"
    why = m.get("why", "")
    reasons = [w.split("_")[0] if not w.startswith("lost_inside") else "lost" for w in why.split(",") if w]
    return "no (" + ", ".join(reasons) + ")"


rows, notes = [], []
for n in sizes:
    floor, floor_gen, floor_failed = read(n, "floor")
    q, _, q_failed = read(n, "inband")
    m, _, m_failed = read(n, "mixed")
    floor_cpu = floor.get("reflector_cpu")
    rows.append([
        f"{int(n):,}",
        cpu(floor),
        cpu(q),
        ratio(q.get("cpu"), floor_cpu),
        cpu(m),
        ratio(m.get("cpu"), floor_cpu),
        f"{p99(q)} / {p99(m)}",
        f"{pct(floor_gen.get('delivered'))} / {pct(q.get('gen_delivered'))} / {pct(m.get('gen_delivered'))}",
        f"{q.get('lost_inside', '?')} / {m.get('lost_inside', '?')}",
        f"{verdict(q, q_failed)} / {verdict(m, m_failed)}",
    ])
    for kind, failed in (("floor", floor_failed), ("inband", q_failed), ("mixed only", m_failed)):
        if failed:
            notes.append(f"- {n}, {kind}: {failed} (see {n}-{kind.split()[0]}.log)")
    if floor:
        notes.append(
            f"- {n}, floor: generator sent {floor.get('gen_sent', '?')} of {floor_gen.get('due', '?')} due, "
            f"got back {floor.get('gen_received', '?')} (missed/late ticks {floor_gen.get('missed_ticks', '?')}"
            f"/{floor_gen.get('late_ticks', '?')}), generator CPU {floor.get('generator_cpu', '?')}"
        )
    for kind, r in (("in-band", q), ("mixed only", m)):
        if r:
            notes.append(
                f"- {n}, {kind}: {r.get('present', '?')} of {r.get('participants', '?')} participants present, "
                f"generator sent {r.get('gen_sent', '?')} of {r.get('gen_due', '?')} due "
                f"(missed/late ticks {r.get('gen_missed_ticks', '?')}/{r.get('gen_late_ticks', '?')}), "
                f"got back {r.get('gen_received', '?')} of {r.get('bridge_sent', '?')} the bridge sent "
                f"({r.get('received_back', '?')}), skipped ticks {r.get('skipped_ticks', '?')}, "
                f"generator CPU {r.get('generator_cpu', '?')}"
                + (f"; not clean: {r['why']}" if r.get("clean") == "no" else "")
            )

head = [
    "participants",
    "floor CPU (% of a core)",
    "bridge in-band CPU",
    "in-band ÷ floor",
    "bridge mixed-only CPU",
    "mixed ÷ floor",
    "p99 tick lateness ms (in-band / mixed)",
    "generator delivered % (floor / in-band / mixed)",
    "lost inside (in-band / mixed)",
    "clean (in-band / mixed)",
]
print(f"Media load against the kernel floor, {time.strftime('%Y-%m-%d %H:%M')}, {seconds} s windows, "
      f"{'MEDIA_LOAD_RT=1 (SCHED_FIFO)' if rt == '1' else 'bridge at normal priority, floor SCHED_FIFO'}"
      f", shards={shards or 'default'}, bridge flags: {extra or '-'}, {os.cpu_count()} CPUs, "
      f"loadavg {open('/proc/loadavg').read().split()[0]}")
print()
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
print("Clean: generator delivered >= 99.9 %, p99 tick lateness < 5 ms, nothing lost inside the bridge.")
print()
print("\n".join(notes))
PY
echo
cat "$out/table.md"
echo "(written to $out/table.md)"
