#!/usr/bin/env bash
# The documented load run behind the README's performance table.
#
#   scripts/load.sh            # everything, ~4 minutes on the 2-core reference machine
#   QUICK=1 scripts/load.sh    # smaller steps, ~1 minute (a smoke test of the script)
#   SHARED=1 scripts/load.sh   # the same against the shared backends: a Redis and a
#                              # PostgreSQL of its own on loopback ([shared] in the config)
#   STEPS=2 scripts/load.sh    # only the calls-per-second ramp (STEPS="1 2 3" is all)
#
# What it does, on loopback only:
#   1. `cargo build --release` of dialbridge and sbc-sim.
#   2. Writes target/load/load.toml: a copy of fixtures/demo.toml (same trunks, numbers,
#      tenants and organisers) with every capacity raised to 10000 (trunks, bridges,
#      numbers, meeting size; no join/leave chimes), SIP on 127.0.0.1:$SIP_PORT (default 5090) and admin on
#      127.0.0.1:$ADMIN_PORT (default 8098), so it runs beside a demo bridge on 5060.
#   3. Starts `dialbridge serve --config target/load/load.toml` and runs `sbc-sim load`:
#      (i)   1,000 calls at 100 calls/s into the demo conferences (adele's 123456789
#            through the Microsoft PSTN, ravi's 555000111 through Telco B, 500 each at
#            50 calls/s), each keying its ID and #, sending a tone (one per meeting) and
#            expecting to hear it from the others; JSON reports in target/load/.
#      (ii)  a calls-per-second ramp (200, 500, 1000 calls/s for 5 s each, 1 s holds in
#            the IVR): the highest rate with zero failed calls, setup p50/p99.
#      (iii) simultaneous participants: 1000, 2000, 3000, 5000 callers joined and held
#            in the two meetings at once, counted by the bridge's own gauge
#            (dialbridge_meeting_participants on /metrics: calls in a meeting's mix at
#            that moment); the bridge's CPU (utime+stime from /proc/PID/stat) and
#            resident memory (VmRSS from /proc/PID/status) at the plateau, per
#            participant, and sbc-sim's CPU beside it, with how well sbc-sim kept its
#            20 ms RTP clocks (its JSON report's `rtp`: ticks missed, packets sent on
#            time of those due, over the whole run). A row whose sbc-sims delivered
#            under 99.9 % of their due packets on time measured the generator, not the
#            bridge: its figures are left out ("dropped: generator fell behind").
#   4. Prints the markdown table (also written to target/load/table.md).
#
# Every loop is bounded in count and time; the bridge is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/load
sip_port=${SIP_PORT:-5090}
admin_port=${ADMIN_PORT:-8098}
quick=${QUICK:-0}
shared=${SHARED:-0}
steps=" ${STEPS:-1 2 3} "
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for tool in cargo python3; do
    command -v "$tool" >/dev/null || { echo "load.sh: missing $tool" >&2; exit 1; }
done

echo "== building (release)" >&2
cargo build --release -p dialbridge-server -p dialbridge-sbc-sim --bins >&2
dialbridge=$target/release/dialbridge
sbc_sim=$target/release/sbc-sim

# -- the load configuration: the demo with capacities raised ------------------------
. "$root/scripts/lib/load-bridge.sh"
write_load_config "$out" load.toml "$sip_port" "$admin_port"
if [ "$shared" = 1 ]; then
    . "$root/scripts/lib/shared-backends.sh"
    start_shared_backends "$out/shared" "${REDIS_PORT:-6390}" "${PG_PORT:-5490}"
    shared_table load-1 >>"$out/load.toml"
fi

# -- the bridge ------------------------------------------------------------------------
# The bridge logs each admission to a meeting ("admitted to the meeting"): step (i)
# counts those lines, step (iii) shows them beside its gauge (warn for everything else:
# cheap).
RUST_LOG=${RUST_LOG:-warn,dialbridge_server::conferences=info} NO_COLOR=1 "$dialbridge" serve --config "$out/load.toml" \
    >"$out/bridge.log" 2>&1 &
bridge_pid=$!
trap 'stop_process "$bridge_pid"; [ "$shared" = 1 ] && stop_shared_backends' EXIT
wait_listening "$bridge_pid" "$sip_port" "$out/bridge.log"
if [ "$shared" = 1 ]; then
    # A fresh Redis settles for two heartbeats before it takes reservations.
    for _ in $(seq 1 100); do
        curl -s -H "Authorization: Bearer demo-admin-token" "http://127.0.0.1:$admin_port/metrics" | grep -q '^dialbridge_shared_capacity_ready 1' && break
        sleep 0.1
    done
fi
echo "== bridge pid $bridge_pid on 127.0.0.1:$sip_port" >&2

# Callers admitted to a meeting's mix since the bridge started (log lines).
admitted() { grep -c "admitted to the meeting" "$out/bridge.log" || true; }
# Calls in a meeting's mix right now: the bridge's gauge (lobbies not counted); 0 when
# /metrics does not answer.
participants() {
    { curl -s --max-time 2 -H "Authorization: Bearer demo-admin-token" \
        "http://127.0.0.1:$admin_port/metrics" || true; } |
        awk '$1 == "dialbridge_meeting_participants" { v = $2 } END { print v + 0 }'
}
# Lets the last BYEs and the bridge's clean-up settle between steps.
wait_idle() { sleep 2; }

# sbc-sim load into one meeting, each call sending a tone and (with EXPECT=1) checking
# it hears it from the others:
#   load NAME FROM_IP NUMBER CONFERENCE TONE CALLS RATE HOLD EXPECT
load() {
    local name=$1 ip=$2 number=$3 conference=$4 tone=$5 calls=$6 rate=$7 hold=$8
    local expect=()
    [ "${9:-1}" = 1 ] && expect=(--expect-tone "$tone")
    "$sbc_sim" load --bridge "127.0.0.1:$sip_port" --from-ip "$ip" --to "$number" \
        --conference "$conference" --tone "$tone" "${expect[@]}" \
        --calls "$calls" --rate "$rate" --hold "$hold" --setup-timeout 5s \
        --max-in-flight 6000 --quiet --json >"$out/$name.json" 2>"$out/$name.err" &
    echo $! >"$out/$name.pid"
    wait $! || true
}
# sbc-sim load without keys: calls that hold in the IVR. ramp NAME CALLS RATE
ramp() {
    "$sbc_sim" load --bridge "127.0.0.1:$sip_port" --from-ip 127.0.0.10 --to +14255550100 \
        --calls "$2" --rate "$3" --hold 1s --setup-timeout 5s --max-in-flight 6000 \
        --quiet --json >"$out/$1.json" 2>"$out/$1.err" &
    echo $! >"$out/$1.pid"
    wait $! || true
}
# CPU seconds of the sbc-sim processes of the runs named (their .pid files).
sbc_sim_cpu() {
    local total=0 name
    for name in "$@"; do
        total=$(awk -v a="$total" -v b="$(cpu_of "$(cat "$out/$name.pid" 2>/dev/null || echo 0)")" \
            'BEGIN { print a + b }')
    done
    echo "$total"
}

# -- (i) 1,000 calls at 100 calls/s into the demo conferences ------------------------
if [ "$quick" = 1 ]; then n1=100; r1=20; else n1=500; r1=50; fi
if [[ $steps == *" 1 "* ]]; then
echo "== (i) $((2 * n1)) calls at $((2 * r1)) calls/s into adele's and ravi's meetings" >&2
cpu0=$(cpu_of "$bridge_pid")
t0=$(date +%s.%N)
base=$(admitted)
load step1-adele 127.0.0.10 +14255550100 123456789 440 "$n1" "$r1" 3s &
a=$!
load step1-ravi 127.0.0.30 +493070000100 555000111 1000 "$n1" "$r1" 3s &
b=$!
wait "$a" "$b"
t1=$(date +%s.%N)
cpu1=$(cpu_of "$bridge_pid")
wait_idle
awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f\n", 100 * (b - a) / (e - s) }' \
    >"$out/step1.cpu"
echo "   admitted $(($(admitted) - base)), bridge CPU $(cat "$out/step1.cpu")% over the run" >&2
fi

# -- (ii) calls-per-second ramp -------------------------------------------------------
if [ "$quick" = 1 ]; then rates="100 200"; else rates=${RATES:-200 500 1000}; fi
[[ $steps == *" 2 "* ]] || rates=""
for r in $rates; do
    echo "== (ii) $((r * 5)) calls at $r calls/s, 1 s holds" >&2
    c0=$(cpu_of "$bridge_pid"); s0=$(date +%s.%N)
    rm -f "$out/step2-$r.pid"
    ramp "step2-$r" $((r * 5)) "$r" &
    a=$!
    sleep 0.2
    sim0=$(sbc_sim_cpu "step2-$r")
    sleep 4.3
    sim1=$(sbc_sim_cpu "step2-$r"); c1=$(cpu_of "$bridge_pid"); s1=$(date +%s.%N)
    wait "$a"
    wait_idle
    awk -v a="$c0" -v b="$c1" -v x="$sim0" -v y="$sim1" -v s="$s0" -v e="$s1" \
        'BEGIN { printf "%.0f %.0f\n", 100 * (b - a) / (e - s), 100 * (y - x) / (e - s) }' \
        >"$out/step2-$r.cpu"
done

# -- (iii) simultaneous participants ---------------------------------------------------
if [ "$quick" = 1 ]; then sizes="200 400"; else sizes="1000 2000 3000 5000"; fi
[[ $steps == *" 3 "* ]] || sizes=
rss_idle=$(rss_of "$bridge_pid")
: >"$out/step3.txt"
for n in $sizes; do
    half=$((n / 2))
    rate=$((n / 10 > 100 ? n / 10 : 100))
    [ "$rate" -gt 250 ] && rate=250
    launch=$((n / rate))
    # Everyone joins within launch + ~5 s and stays 10 s more.
    hold=$((launch + 12))
    echo "== (iii) $n participants ($rate calls/s, holding ${hold}s)" >&2
    load "step3-$n-adele" 127.0.0.10 +14255550100 123456789 440 "$half" "$(( rate / 2 ))" "${hold}s" 0 &
    a=$!
    load "step3-$n-ravi" 127.0.0.30 +493070000100 555000111 1000 "$half" "$(( rate / 2 ))" "${hold}s" 0 &
    b=$!
    # Wait for the plateau: everyone in (or 4 s without growth once launched), as the
    # bridge's participants gauge counts them. Nobody leaves before launch + 12 s.
    base=$(admitted)
    p=0 best=0 still=0
    for _ in $(seq 1 $(((launch + 20) * 2))); do
        sleep 0.5
        p=$(participants)
        if [ "$p" -gt "$best" ]; then best=$p; still=0; else still=$((still + 1)); fi
        [ "$p" -ge "$n" ] && break
        [ "$still" -ge 8 ] && [ "$best" -gt 0 ] && break
    done
    # 5 s of the plateau: CPU of the bridge and of both sbc-sims, memory of the bridge;
    # the participants present at once are the fewer of the gauge's readings at its
    # start and end.
    p0=$(participants)
    c0=$(cpu_of "$bridge_pid"); sim0=$(sbc_sim_cpu "step3-$n-adele" "step3-$n-ravi"); s0=$(date +%s.%N)
    sleep 5
    c1=$(cpu_of "$bridge_pid"); sim1=$(sbc_sim_cpu "step3-$n-adele" "step3-$n-ravi"); s1=$(date +%s.%N)
    p1=$(participants)
    held=$((p0 < p1 ? p0 : p1))
    logged=$(($(admitted) - base))
    rss=$(rss_of "$bridge_pid")
    wait "$a" "$b"
    wait_idle
    left=$(participants)
    echo "$n $held $c0 $c1 $sim0 $sim1 $s0 $s1 $rss $rss_idle $logged $left" >>"$out/step3.txt"
    echo "   held $held (gauge $p0 → $p1; $logged admissions logged; $left left after the step), bridge RSS $((rss / 1024)) MiB" >&2
done

# -- the table -------------------------------------------------------------------------
python3 - "$out" "$rates" "$quick" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, rates, quick = sys.argv[1], sys.argv[2].split(), sys.argv[3] == "1"

def report(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def fmt(v, unit=""):
    return "—" if v is None else f"{v:.1f}{unit}"

print("| run | calls | passed | failed | achieved rate | setup p50 | setup p99 | bridge CPU | sbc-sim CPU |")
print("|---|---|---|---|---|---|---|---|---|")
a, r = report("step1-adele"), report("step1-ravi")
if a and r:
    calls = a["attempted"] + r["attempted"] + a["not_started"] + r["not_started"]
    passed = a["passed"] + r["passed"]
    heard = a["audio_passed"] + r["audio_passed"]
    p50 = max(a["setup_latency"]["p50_ms"], r["setup_latency"]["p50_ms"]) if a["setup_latency"] and r["setup_latency"] else None
    p99 = max(a["setup_latency"]["p99_ms"], r["setup_latency"]["p99_ms"]) if a["setup_latency"] and r["setup_latency"] else None
    try:
        with open(os.path.join(out, "step1.cpu")) as f:
            cpu1 = f.read().strip() + "% (whole run)"
    except OSError:
        cpu1 = "—"
    print(f"| (i) into adele's + ravi's meetings, keys + tones | {calls} | {passed} (heard the others: {heard}) | {calls - passed} | {a['rate'] + r['rate']:.0f}/s | {fmt(p50, ' ms')} | {fmt(p99, ' ms')} | {cpu1} | — |")
sustained = None
fast = None
for rate in rates:
    s = report(f"step2-{rate}")
    if not s:
        continue
    calls = s["attempted"] + s["not_started"]
    failed = calls - s["passed"]
    lat = s["setup_latency"] or {}
    try:
        with open(os.path.join(out, f"step2-{rate}.cpu")) as f:
            bcpu, scpu = f.read().split()
    except (OSError, ValueError):
        bcpu = scpu = "—"
    print(f"| (ii) {rate} calls/s for 5 s, 1 s in the IVR | {calls} | {s['passed']} | {failed} | {s['rate']:.0f}/s | {fmt(lat.get('p50_ms'), ' ms')} | {fmt(lat.get('p99_ms'), ' ms')} | {bcpu}% | {scpu}% |")
    if failed == 0 and s["rate"] >= 0.95 * float(rate):
        sustained = (rate, lat.get("p50_ms"), lat.get("p99_ms"))
        if (lat.get("p99_ms") or 1e9) < 20.0:
            fast = rate
print()
print("| simultaneous participants (target) | held (bridge's gauge) | bridge CPU | per participant | bridge RSS | per participant added | sbc-sim CPU | sbc-sim ticks missed | sbc-sim delivered |")
print("|---|---|---|---|---|---|---|---|---|")
# Memory per participant: the growth of the bridge's RSS from the previous size to this
# one, per participant added (the allocator keeps what earlier steps used, so RSS over
# the idle RSS would undercount the first rows). A dropped row still moves the base: its
# RSS and gauge are what the bridge really held.
# sbc-sim's pacing is its JSON reports' `rtp` (both meetings' runs, whole runs): packets
# sent within 20 ms of their tick, of those due; under 99.9 % and the row is dropped.
DELIVERED_MIN = 99.9
prev = None
with open(os.path.join(out, "step3.txt")) as f:
    for line in f:
        n, held, c0, c1, s0, s1, t0, t1, rss, idle = line.split()[:10]
        held, rss, secs = int(held), int(rss), float(t1) - float(t0)
        cpu = 100 * (float(c1) - float(c0)) / secs
        sim = 100 * (float(s1) - float(s0)) / secs
        per_cpu = cpu / held if held else 0
        base_rss, base_held = prev if prev else (int(idle), 0)
        per_mem = (rss - base_rss) / (held - base_held) if held > base_held else 0
        prev = (rss, held)
        runs = [report(f"step3-{n}-{m}") for m in ("adele", "ravi")]
        pacing = [r.get("rtp") for r in runs if r]
        if len(pacing) < 2 or None in pacing:
            print(f"| {n} | dropped: no sbc-sim pacing report | — | — | — | — | {sim:.0f}% | — | — |")
            continue
        due = sum(p["packets_due"] for p in pacing)
        on_time = sum(p["packets_on_time"] for p in pacing)
        missed = sum(p["ticks_missed"] for p in pacing)
        delivered = 100 * on_time / due if due else 0.0
        if delivered < DELIVERED_MIN:
            print(f"| {n} | dropped: generator fell behind (delivered {delivered:.2f} %) | — | — | — | — | {sim:.0f}% | {missed} | {delivered:.2f} % |")
            continue
        print(f"| {n} | {held} | {cpu:.0f}% | {per_cpu:.3f}% | {rss / 1024:.0f} MiB | {per_mem:.0f} KiB | {sim:.0f}% | {missed} | {delivered:.2f} % |")
print()
if sustained:
    print(f"Sustained with zero failures: {sustained[0]} calls/s (setup p50 {fmt(sustained[1], ' ms')}, p99 {fmt(sustained[2], ' ms')}).")
else:
    print("No ramp step passed with zero failures.")
print(f"Highest rate with zero failures and setup p99 under 20 ms: {fast + ' calls/s' if fast else 'none'}.")
print("CPU: 100% = one core of this machine's " + str(os.cpu_count()) + "; bridge and sbc-sim share them.")
EOF
