#!/usr/bin/env bash
# Overload: a flood of new calls at ten times the rate the bridge is set to take, while
# callers already in a meeting talk and check that they hear each other. Behind the
# README's overload table.
#
#   scripts/overload.sh                 # ~1.5 minutes on the 2-core reference machine
#   RATE=200 FLOOD=2000 scripts/overload.sh
#
# On loopback only:
#   1. `cargo build --release` of dialbridge and sbc-sim.
#   2. target/overload/overload.toml: the demo with capacities raised (as scripts/load.sh)
#      and `[sip] max_call_rate = $RATE` (default 200 calls/s).
#   3. TALKERS (default 40) sbc-sim callers join adele's meeting through the Microsoft
#      PSTN trunk, each sending a 400 Hz tone and checking that it hears it back from the
#      others, and stay 45 s.
#   4. 10 s in, sipp floods +14255550100 through the same trunk (127.0.0.10) with
#      fixtures/sipp/uac-flood.xml at $FLOOD calls/s (default 2000, ten times RATE) for
#      FLOOD_SECONDS (default 15 s). A shed call gets 503 with Retry-After; a taken one
#      spends a second in the IVR.
#   5. After the flood, a probe of 100 calls at 50 calls/s must all be answered.
#   6. Prints the table: what the flood got (503 / answered, from /metrics), the bridge's
#      CPU and resident memory before, during and after, the talkers' audio checks, and
#      the probe's answers. Also written to target/overload/table.md.
#
# Every loop is bounded in count and time; the bridge is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/overload
sip_port=${SIP_PORT:-5092}
admin_port=${ADMIN_PORT:-8099}
rate=${RATE:-200}
flood=${FLOOD:-$((rate * 10))}
flood_seconds=${FLOOD_SECONDS:-15}
talkers=${TALKERS:-40}
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for tool in cargo python3 sipp curl; do
    command -v "$tool" >/dev/null || { echo "overload.sh: missing $tool" >&2; exit 1; }
done

echo "== building (release)" >&2
cargo build --release -p dialbridge-server -p dialbridge-sbc-sim --bins >&2
dialbridge=$target/release/dialbridge
sbc_sim=$target/release/sbc-sim

. "$root/scripts/lib/load-bridge.sh"
write_load_config "$out" overload.toml "$sip_port" "$admin_port" \
    -e "s/^max_call_rate = .*/max_call_rate = $rate/"

RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1 "$dialbridge" serve --config "$out/overload.toml" \
    >"$out/bridge.log" 2>&1 &
bridge_pid=$!
pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_process "$bridge_pid"
}
trap stop_all EXIT
wait_listening "$bridge_pid" "$admin_port" "$out/bridge.log"
echo "== bridge pid $bridge_pid on 127.0.0.1:$sip_port, max_call_rate $rate" >&2

metric() {
    curl -s -H "Authorization: Bearer demo-admin-token" "http://127.0.0.1:$admin_port/metrics" |
        awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}
# The bridge's CPU (% of one core) and peak RSS (KiB) over N seconds, sampled each second.
watch_window() {
    local seconds=$1 name=$2 c0 c1 t0 t1 peak=0 rss
    c0=$(cpu_of "$bridge_pid")
    t0=$(date +%s.%N)
    for _ in $(seq 1 "$seconds"); do
        sleep 1
        rss=$(rss_of "$bridge_pid")
        [ "$rss" -gt "$peak" ] && peak=$rss
    done
    c1=$(cpu_of "$bridge_pid")
    t1=$(date +%s.%N)
    awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v p="$peak" \
        'BEGIN { printf "%.0f %d\n", 100 * (b - a) / (e - s), p / 1024 }' >"$out/$name.window"
}

# -- the talkers -----------------------------------------------------------------------
echo "== $talkers callers join adele's meeting and talk" >&2
"$sbc_sim" load --bridge "127.0.0.1:$sip_port" --from-ip 127.0.0.10 --to +14255550100 \
    --conference 123456789 --tone 400 --expect-tone 400 \
    --calls "$talkers" --rate 20 --hold 45s --setup-timeout 10s --max-in-flight 1000 \
    --quiet --json >"$out/talkers.json" 2>"$out/talkers.err" &
talkers_pid=$!
pids+=("$talkers_pid")
sleep 5
watch_window 5 before
shed0=$(metric dialbridge_sip_calls_shed_total)
admitted0=$(metric dialbridge_router_admitted_total)

# -- the flood -------------------------------------------------------------------------
calls=$((flood * flood_seconds))
echo "== flood: $calls INVITEs at $flood calls/s from 127.0.0.10" >&2
sipp "127.0.0.1:$sip_port" -sf fixtures/sipp/uac-flood.xml -s +14255550100 \
    -i 127.0.0.10 -mi 127.0.0.10 -r "$flood" -m "$calls" -l 20000 \
    -timeout "$((flood_seconds + 30))s" -timeout_error -nostdin -bg \
    -trace_stat -stf "$out/sipp-stat.csv" >"$out/sipp.out" 2>&1 || true
# sipp -bg says "Background mode - PID=[N]".
sipp_pid=$(sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' "$out/sipp.out" | head -1)
sipp_pid=${sipp_pid:-0}
[ "$sipp_pid" != 0 ] && pids+=("$sipp_pid")
watch_window "$flood_seconds" during
sipp_cpu=0
for _ in $(seq 1 60); do
    kill -0 "$sipp_pid" 2>/dev/null || break
    sipp_cpu=$(cpu_of "$sipp_pid")
    sleep 1
done
kill -TERM "$sipp_pid" 2>/dev/null || true
shed1=$(metric dialbridge_sip_calls_shed_total)
admitted1=$(metric dialbridge_router_admitted_total)
watch_window 5 after

# -- back to normal ----------------------------------------------------------------------
echo "== probe: 100 calls at 50 calls/s" >&2
"$sbc_sim" load --bridge "127.0.0.1:$sip_port" --from-ip 127.0.0.10 --to +14255550100 \
    --calls 100 --rate 50 --hold 1s --setup-timeout 5s --max-in-flight 1000 \
    --quiet --json >"$out/probe.json" 2>"$out/probe.err" || true
wait "$talkers_pid" || true

python3 - "$out" "$rate" "$flood" "$calls" "$((shed1 - shed0))" "$((admitted1 - admitted0))" "$sipp_cpu" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, rate, flood, calls, shed, admitted, sipp_cpu = sys.argv[1:]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except Exception:
        return {}
def window(name):
    try:
        cpu, rss = open(os.path.join(out, name + ".window")).read().split()
        return f"{cpu} %", f"{rss} MiB"
    except Exception:
        return "?", "?"
talk, probe = load("talkers"), load("probe")
# sipp's own count: calls created, passed (503 or a whole call), failed, and its rate.
stat = {}
try:
    rows = [l.rstrip("\n").split(";") for l in open(os.path.join(out, "sipp-stat.csv"))]
    stat = dict(zip(rows[0], rows[-1]))
except Exception:
    pass
b, d, a = window("before"), window("during"), window("after")
sent = stat.get("TotalCallCreated", "?")
try:
    sipp_rate = f"{float(stat['CallRate(C)']):.0f}"
except Exception:
    sipp_rate = "?"
failed = stat.get("FailedCall(C)", "?")
print(f"| max_call_rate | flood asked / sipp achieved | INVITEs sent | shed (503) | admitted | sipp failed | bridge CPU before / during / after | RSS before / peak / after | talkers hearing each other | probe after |")
print(f"|---|---|---|---|---|---|---|---|---|---|")
print(f"| {rate}/s | {flood}/s / {sipp_rate}/s | {sent} | {shed} | {admitted} | {failed} | {b[0]} / {d[0]} / {a[0]} | {b[1]} / {d[1]} / {a[1]} "
      f"| {talk.get('audio_passed', '?')}/{talk.get('audio_checked', '?')} (answered {talk.get('answered', '?')}/{talk.get('attempted', '?')}) "
      f"| {probe.get('answered', '?')}/{probe.get('attempted', '?')} answered |")
print(f"\nsipp's own CPU: {float(sipp_cpu):.1f} s")
EOF
