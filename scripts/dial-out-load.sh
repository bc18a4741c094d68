#!/usr/bin/env bash
# Dial-ins and dial-outs together: the run behind the README's dial-out row.
#
#   scripts/dial-out-load.sh                  # 200 participants, 200 dial-outs at 10/s
#   PARTICIPANTS=100 DIAL_OUTS=50 RATE=5 scripts/dial-out-load.sh
#
# What it does, on loopback only:
#   1. `cargo build --release` of dialbridge and sbc-sim.
#   2. Writes target/dial-out-load/load.toml (the demo with capacities raised, as
#      scripts/load.sh does; SIP on 127.0.0.1:$SIP_PORT, default 5090, admin on
#      $ADMIN_PORT, default 8098; its call records and ledger in that directory).
#   3. Starts `dialbridge serve`, then `sbc-sim answer` at the Microsoft PSTN trunk's
#      outbound target (127.0.0.10:5080, as the demo has it): it answers each dial-out,
#      keys 1 once it has heard the invitation, talks 1000 Hz and hangs up $HOLD_MS later.
#   4. `sbc-sim load`: $PARTICIPANTS callers into adele's meeting through the Microsoft
#      PSTN (toll number, 20 calls/s), each talking 440 Hz and held $DIAL_IN_HOLD.
#   5. Once they are in, $DIAL_OUTS dial-outs of that meeting through the admin API
#      (POST .../dial-out, $RATE a second, each to its own US number), paid from
#      contoso's US minute pool.
#   6. Waits (bounded) for the answerer to finish and prints: dial-outs accepted (202),
#      answered and keyed (the answerer's reports), joined (the API's view), the
#      dial-ins' failures, the pool minutes used, and the bridge's CPU and memory over
#      the dial-out window. Also written to target/dial-out-load/result.md.
#
# Every loop is bounded in count and time; every process is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/dial-out-load
sip_port=${SIP_PORT:-5090}
admin_port=${ADMIN_PORT:-8098}
participants=${PARTICIPANTS:-200}
dial_outs=${DIAL_OUTS:-200}
rate=${RATE:-10}
hold_ms=${HOLD_MS:-10000}
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for tool in cargo curl python3; do
    command -v "$tool" >/dev/null || { echo "dial-out-load.sh: missing $tool" >&2; exit 1; }
done

echo "== building (release)" >&2
cargo build --release -p dialbridge-server -p dialbridge-sbc-sim --bins >&2
dialbridge=$target/release/dialbridge
sbc_sim=$target/release/sbc-sim

. "$root/scripts/lib/load-bridge.sh"
write_load_config "$out" load.toml "$sip_port" "$admin_port"
rm -f "$out"/cdr-ledger.sqlite*

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop_process "$pid"; done
}
trap cleanup EXIT

NO_COLOR=1 RUST_LOG=${RUST_LOG:-warn} "$dialbridge" serve --config "$out/load.toml" \
    >"$out/bridge.log" 2>&1 &
bridge_pid=$!
pids+=("$bridge_pid")
wait_listening "$bridge_pid" "$sip_port" "$out/bridge.log"
echo "== bridge pid $bridge_pid on 127.0.0.1:$sip_port" >&2

api=http://127.0.0.1:$admin_port
auth="Authorization: Bearer demo-admin-token"
pool_used() {
    curl -s -H "$auth" "$api/api/v1/tenants/contoso/balance" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["pools"][0]["minutes_used"])'
}
pool_before=$(pool_used)

# The far end of every dial-out. Its time bound covers placing them all and their holds.
answer_timeout=$(( dial_outs / rate + hold_ms / 1000 + 60 ))
"$sbc_sim" answer --listen 127.0.0.10:5080 --calls "$dial_outs" --timeout "${answer_timeout}s" \
    --ring-ms 200 --tone-hz 1000 --key 1 --hold-ms "$hold_ms" \
    >"$out/answer.jsonl" 2>"$out/answer.err" &
answer_pid=$!
pids+=("$answer_pid")

# The meeting: participants through the Microsoft PSTN's toll number, held until after
# the dial-outs are over.
dial_in_hold=$(( dial_outs / rate + hold_ms / 1000 + 20 ))
"$sbc_sim" load --bridge "127.0.0.1:$sip_port" --from-ip 127.0.0.10 --to +14255550100 \
    --conference 123456789 --tone 440 --calls "$participants" --rate 20 \
    --hold "${dial_in_hold}s" --setup-timeout 5s --max-in-flight 6000 --quiet --json \
    >"$out/dial-in.json" 2>"$out/dial-in.err" &
dial_in_pid=$!
pids+=("$dial_in_pid")

# Wait (bounded) until the participants are in the mix.
for _ in $(seq 1 $(( participants / 10 + 60 ))); do
    present=$(curl -s "$api/metrics" -H "$auth" |
        awk '/^dialbridge_meeting_participants / { print $2 }')
    [ "${present:-0}" -ge "$participants" ] && break
    sleep 0.5
done
echo "== ${present:-0} participants in adele's meeting; $dial_outs dial-outs at $rate/s" >&2

cpu0=$(cpu_of "$bridge_pid")
t0=$(date +%s.%N)
accepted=0
for i in $(seq 1 "$dial_outs"); do
    number=$(printf '+1425556%04d' "$i")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
        -d "{\"number\": \"$number\"}" \
        "$api/api/v1/conferences/contoso/123456789/dial-out")
    [ "$code" = 202 ] && accepted=$((accepted + 1))
    sleep "$(awk -v r="$rate" 'BEGIN { print 1 / r }')"
done
wait "$answer_pid" || true
t1=$(date +%s.%N)
cpu1=$(cpu_of "$bridge_pid")
rss=$(rss_of "$bridge_pid")
states=$(curl -s -H "$auth" "$api/api/v1/conferences/contoso/123456789/dial-outs" |
    python3 -c 'import collections,json,sys; c=collections.Counter(d["state"] for d in json.load(sys.stdin)["dial_outs"]); print(", ".join(f"{k} {v}" for k,v in sorted(c.items())))')
wait "$dial_in_pid" || true
pool_after=$(pool_used)

python3 - "$out" "$dial_outs" "$accepted" "$cpu0" "$cpu1" "$t0" "$t1" "$rss" \
    "$pool_before" "$pool_after" "$states" "$participants" "$rate" <<'PY'
import json, sys
out, n, accepted, cpu0, cpu1, t0, t1, rss, before, after, states, participants, rate = sys.argv[1:]
reports = [json.loads(l) for l in open(f"{out}/answer.jsonl") if l.strip()]
answered = sum(1 for r in reports if r.get("status") == 200)
keyed = sum(1 for r in reports if r.get("keyed") == "1")
passed = sum(1 for r in reports if r.get("passed"))
dial_in = json.load(open(f"{out}/dial-in.json"))
failed_in = dial_in["attempted"] + dial_in.get("not_started", 0) - dial_in["passed"]
cpu = (float(cpu1) - float(cpu0)) / (float(t1) - float(t0)) * 100
row = (f"| {participants} in the meeting, {n} dial-outs at {rate}/s | {accepted} | {answered} "
       f"| {keyed} | {states} | {failed_in} | {int(after) - int(before)} | {cpu:.0f} % "
       f"| {int(rss) // 1024} MiB |")
head = ("| run | accepted (202) | answered | keyed 1 | states (API) | dial-ins failed "
        "| pool minutes used | bridge CPU | bridge RSS |\n|---|---|---|---|---|---|---|---|---|")
table = head + "\n" + row
print(table)
print(f"(answerer: {passed} of {len(reports)} calls went as told)")
open(f"{out}/result.md", "w").write(table + "\n")
PY
