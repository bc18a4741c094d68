#!/usr/bin/env bash
# The documented load run behind the README's cluster figures (issue 16, item 5): the
# calls-per-second ladder through Kamailio to one, two and three bridge nodes, and the
# CPU cost of a participant whose meeting is homed on another node against a local one.
#
#   scripts/cluster-load.sh                  # everything, ~8 minutes on the 2-core machine
#   QUICK=1 scripts/cluster-load.sh          # smaller rungs and meetings, ~4 minutes
#   STEPS=1 scripts/cluster-load.sh          # only the ladder (STEPS="1 2" is both)
#   NODES="1 2 3"  RATES="200 500 1000"  PARTICIPANTS="200 500"  WINDOW=10
#
# What it does, on loopback only (every process it starts is stopped by PID on exit):
#   1. `cargo build --release` of dialbridge and sbc-sim.
#   2. Starts a Redis (127.0.0.1:$REDIS_PORT, default 6392) and a PostgreSQL
#      (127.0.0.1:$PG_PORT, default 5492) of its own (scripts/lib/shared-backends.sh),
#      and bridge nodes 1..max(NODES, 2) on 127.0.1.N: SIP (UDP, TCP) on :$SIP_BASE+2N
#      (default 5102, 5104, 5106), admin on :$ADMIN_BASE+N (8101, 8102, 8103), RTP
#      40000+5000(N-1) .. +4998. Their configurations (target/cluster-load/nodeN/node.toml)
#      are target/load/load.toml's (scripts/lib/load-bridge.sh: the demo with capacities
#      raised, no join/leave chimes) plus `[shared]` (this Redis and PostgreSQL, node
#      name nodeN) and `[cluster] trusted_proxies = ["127.0.0.1"]`. Nothing collides with
#      a demo bridge, the demo cluster (5060, 8088, RTP 20000-39998) or scripts/load.sh
#      (5090, 8098, Redis 6390, PostgreSQL 5490) or scripts/test.sh (6391, 5491).
#   3. (step 1) For each node count in NODES: Kamailio (deploy/kamailio/run.sh, with
#      $KAM_SHM_MB MiB of shared memory, default 512) on 127.0.0.1:$KAM_PORT (default
#      5100, TLS the next port) in front of nodes 1..n, and
#      scripts/load.sh's calls-per-second ramp through it: for each rate in RATES, 5 s of
#      IVR calls (contoso's toll number +14255550100 from the Microsoft trunk
#      127.0.0.10, 1 s holds, no keys) by one `sbc-sim load`. Reported per rung: failed
#      calls, setup p50/p99, and the CPU (utime+stime from /proc/PID/stat, over the
#      first 4.5 s) of Kamailio (all its processes), each node, sbc-sim, Redis and
#      PostgreSQL (all its processes); Redis commands and PostgreSQL commits per answered
#      call over the whole rung (Redis's commandstats before and after in
#      ladder-N-RATE.redis-{before,after}.txt). The highest rate with zero failed calls (and achieved
#      within 5 % of the rate asked) is what the node count sustains, as in load.sh,
#      and the highest with setup p99 under 20 ms too.
#   4. (step 2) For each size P in PARTICIPANTS, two cases, dialled straight into the
#      nodes (no Kamailio), half into adele's meeting (123456789, contoso, Microsoft
#      trunk) and half into ravi's (555000111, fabrikam, Telco B):
#        - first one "anchor" caller per meeting on node1, so node1 becomes both
#          meetings' home (the first node whose caller joins); it sends a 1000 Hz tone;
#        - then P participants per case: 2 per meeting send a 2500 Hz tone (talkers),
#          the others silence (listeners, as most of a real meeting is);
#        - "local": the P participants dialled into node1; "cross-node": into node2, so
#          each of node2's two meetings reaches node1 through one leg.
#      Everyone stays; once the home (node1) has admitted them all (or 4 s without
#      growth), WINDOW seconds (default 10) of CPU are measured: each node, sbc-sim.
#      CPU per participant is the nodes' CPU summed over P; the ratio is cross-node's
#      over local's. Every participant checks it hears the anchor's tone and every
#      anchor that it hears the talkers' (in the cross-node case both went through the
#      leg), so the table says how many heard the others.
#   5. Prints the markdown tables (also written to $CARGO_TARGET_DIR/cluster-load/table.md,
#      default target/cluster-load/table.md) with the command that reproduces them, and
#      the machine's load average before and after; each row also gives "the rest of the
#      machine": the cores' busy time (/proc/stat) less this run's processes, so a build
#      or test someone else ran on the same cores shows where it was.
#
# CPU is a share of one core (the 2-core reference machine has 200 %): every process
# here (Kamailio, nodes, Redis, PostgreSQL, sbc-sim) shares the same cores, so a ladder
# to three nodes measures what saturates first, not three machines' capacity.
# Every loop is bounded in count and time; every sbc-sim runs under `timeout`.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/cluster-load
quick=${QUICK:-0}
steps=" ${STEPS:-1 2} "
nodes_list=${NODES:-1 2 3}
if [ "$quick" = 1 ]; then
    rates=${RATES:-100 200}
    sizes=${PARTICIPANTS:-100 200}
else
    rates=${RATES:-200 500 1000}
    sizes=${PARTICIPANTS:-200 500}
fi
window=${WINDOW:-10}
kam_port=${KAM_PORT:-5100}
# Kamailio's shared memory, MiB: its transactions stay ~5 s after they end (tm's wait
# timer); at 500 calls/s the run.sh default of 64 runs out ("out of mem" in its log, 500s).
kam_shm=${KAM_SHM_MB:-512}
sip_base=${SIP_BASE:-5100}
admin_base=${ADMIN_BASE:-8100}
redis_port=${REDIS_PORT:-6392}
pg_port=${PG_PORT:-5492}
token=demo-admin-token
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Node counts 1..4 (127.0.1.1-4, RTP ranges up to 59998); step 2 needs two nodes.
max_nodes=2
for n in $nodes_list; do
    case $n in 1 | 2 | 3 | 4) ;; *) echo "cluster-load.sh: NODES holds 1 to 4, not $n" >&2; exit 2 ;; esac
    [ "$n" -gt "$max_nodes" ] && max_nodes=$n
done
for p in $sizes; do
    if ! [[ $p =~ ^[0-9]+$ ]] || [ "$p" -lt 10 ] || [ "$p" -gt 4000 ]; then
        echo "cluster-load.sh: PARTICIPANTS are 10 to 4000, not $p" >&2
        exit 2
    fi
done

for tool in cargo python3 curl redis-server redis-cli psql pgrep timeout /usr/sbin/kamailio; do
    command -v "$tool" >/dev/null || {
        echo "cluster-load.sh: missing $tool (scripts/cluster.sh installs kamailio, redis-server, postgresql)" >&2
        exit 1
    }
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || {
    echo "cluster-load.sh: missing PostgreSQL (apt-get install postgresql)" >&2
    exit 1
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== load average before: $load_before" >&2

echo "== building (release)" >&2
cargo build --release -p dialbridge-server -p dialbridge-sbc-sim --bins >&2
dialbridge=$target/release/dialbridge
sbc_sim=$target/release/sbc-sim

. "$root/scripts/lib/load-bridge.sh"
. "$root/scripts/lib/shared-backends.sh"

node_ip() { echo "127.0.1.$1"; }
node_sip() { echo $((sip_base + 2 * $1)); }
node_admin() { echo $((admin_base + $1)); }

# -- stopping everything by PID ---------------------------------------------------------
node_pids=()
kam_pid=0
sims=() # PIDs of the `timeout sbc-sim` runs not yet waited for
# stop_pid PID: stop_process for a PID this script started (never 0: `kill 0` would
# signal the whole process group).
stop_pid() {
    [ "${1:-0}" -gt 0 ] && stop_process "$1"
    return 0
}
cleanup() {
    local pid
    for pid in "${sims[@]}"; do
        [ "$pid" -gt 0 ] && kill -TERM "$pid" 2>/dev/null || true
    done
    stop_pid "$kam_pid"
    # The nodes drain in parallel, then each is waited for (SIGKILL past 10 s).
    for pid in "${node_pids[@]}"; do
        [ "$pid" -gt 0 ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${node_pids[@]}"; do
        stop_pid "$pid"
    done
    stop_pid "${redis_pid:-0}"
    stop_pid "${postgres_pid:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU seconds (user + system) of process $1 and its descendants (three generations:
# Kamailio's and PostgreSQL's workers are their main process's children; `timeout`'s
# child is sbc-sim). Workers that exited meanwhile are not counted.
cpu_tree() {
    [ "${1:-0}" -gt 0 ] || { echo 0; return 0; }
    local pids=$1 frontier=$1 next p
    for _ in 1 2 3; do
        next=""
        for p in $frontier; do
            next="$next $(pgrep -P "$p" | tr '\n' ' ' || true)"
        done
        [ -n "${next// /}" ] || break
        pids="$pids $next"
        frontier=$next
    done
    for p in $pids; do
        # Past the command name (which may hold spaces): utime, stime are fields 12, 13.
        sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true
    done | awk -v t="$tck" '{ s += $12 + $13 } END { printf "%.2f\n", s / t }'
}
redis_commands() {
    local stats
    stats=$(redis-cli -p "$redis_port" info stats 2>/dev/null || true)
    awk -F: '/^total_commands_processed:/ { n = $2 + 0 } END { print n + 0 }' <<<"$stats"
}
pg_commits() {
    local n
    n=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tAc \
        'select sum(xact_commit) from pg_stat_database' 2>/dev/null || true)
    echo "${n:-0}"
}
# CPU seconds the whole machine has been busy (/proc/stat: user, nice, system, irq,
# softirq, steal): what is not ours in it is another build or test on the same cores.
machine_busy() { awk -v t="$tck" '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / t; exit }' /proc/stat; }
# One line of CPU readings: Kamailio, nodes 1..max, Redis, PostgreSQL, the sbc-sims whose
# PIDs follow (summed), the whole machine.
cpu_line() {
    local line n total=0 pid
    line="$(cpu_tree "$kam_pid")"
    for n in $(seq 1 "$max_nodes"); do
        line="$line $(cpu_of "${node_pids[$((n - 1))]}")"
    done
    line="$line $(cpu_of "$redis_pid") $(cpu_tree "$postgres_pid")"
    for pid in "$@"; do
        total=$(awk -v a="$total" -v b="$(cpu_tree "$pid")" 'BEGIN { print a + b }')
    done
    echo "$line $total $(machine_busy)"
}

# sim NAME TARGET FROM_IP NUMBER CALLS RATE HOLD [sbc-sim load options]...: one
# `sbc-sim load` in the background (under `timeout`, its hard limit plus a minute),
# JSON report in NAME.json; its PID is appended to sims and written to NAME.pid.
sim() {
    local name=$1 to=$2 ip=$3 number=$4 calls=$5 rate=$6 hold=$7
    shift 7
    local limit=$((calls / rate + ${hold%s} + 90))
    timeout --kill-after=5 "$limit" "$sbc_sim" load --bridge "$to" --from-ip "$ip" --to "$number" \
        --calls "$calls" --rate "$rate" --hold "$hold" --setup-timeout 5s \
        --max-in-flight 6000 --quiet --json "$@" >"$out/$name.json" 2>"$out/$name.err" &
    echo $! >"$out/$name.pid"
    sims+=("$!")
}
# Waits for every sbc-sim started (each bounded by its timeout).
wait_sims() {
    local pid
    for pid in "${sims[@]}"; do
        wait "$pid" || true
    done
    sims=()
}

# -- Redis, PostgreSQL and the nodes -------------------------------------------------------
rm -f "$out"/*.json "$out"/*.err "$out"/*.pid "$out"/*.txt "$out"/table.md
start_shared_backends "$out/shared" "$redis_port" "$pg_port"
echo "== Redis pid $redis_pid on :$redis_port, PostgreSQL pid $postgres_pid on :$pg_port" >&2

for n in $(seq 1 "$max_nodes"); do
    dir=$out/node$n
    mkdir -p "$dir"
    ip=$(node_ip "$n")
    rtp_lo=$((40000 + 5000 * (n - 1)))
    write_load_config "$dir" node.toml "$(node_sip "$n")" "$(node_admin "$n")" \
        -e "s#^udp = .*#udp = \"$ip:$(node_sip "$n")\"#" \
        -e "s#^tcp = .*#tcp = \"$ip:$(node_sip "$n")\"#" \
        -e 's#^tls = .*#tls = []#' \
        -e "s#^address = \"127.0.0.1\"#address = \"$ip\"#" \
        -e '/^address6 = /d' \
        -e "s#^rtp_ports = .*#rtp_ports = [$rtp_lo, $((rtp_lo + 4998))]#" \
        -e "s#^listen = .*#listen = \"$ip:$(node_admin "$n")\"#"
    {
        shared_table "node$n"
        printf '\n[cluster]\ntrusted_proxies = ["127.0.0.1"]\n'
    } >>"$dir/node.toml"
    # Admissions to a meeting are logged at info (counted below); the rest at warn.
    RUST_LOG=${RUST_LOG:-warn,dialbridge_server::conferences=info} NO_COLOR=1 \
        "$dialbridge" serve --config "$dir/node.toml" >"$out/node$n.log" 2>&1 &
    node_pids+=("$!")
done
for n in $(seq 1 "$max_nodes"); do
    pid=${node_pids[$((n - 1))]}
    up=0
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$(node_ip "$n")/$(node_sip "$n")") 2>/dev/null; then up=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" = 0 ]; then
        echo "node$n did not start:" >&2
        tail -n 30 "$out/node$n.log" >&2
        exit 1
    fi
done
# A fresh Redis settles for two heartbeats (lease_s / 3 each) before it takes claims.
for n in $(seq 1 "$max_nodes"); do
    ready=0
    for _ in $(seq 1 300); do
        metrics=$(curl -s -H "Authorization: Bearer $token" \
            "http://$(node_ip "$n"):$(node_admin "$n")/metrics" || true)
        if grep -q '^dialbridge_shared_capacity_ready 1' <<<"$metrics"; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [ "$ready" = 1 ] || { echo "node$n: shared capacity not ready after 30 s" >&2; exit 1; }
done
echo "== nodes 1..$max_nodes up (pids ${node_pids[*]})" >&2

# Meeting admissions a node has logged since it started ("admitted to the meeting": on
# the meeting's home, for its own callers and for those that joined through a leg).
admitted() { grep -c "admitted to the meeting" "$out/node$1.log" || true; }
legs() { grep -c "joined the meeting's home through a leg" "$out/node$1.log" || true; }
# Lets the last BYEs settle: 2 s, then until no node holds a call (at most 30 s more; an
# overloaded rung can leave calls that end only at their timeouts).
calls_held() {
    local n total=0 metrics
    for n in $(seq 1 "$max_nodes"); do
        metrics=$(curl -s -H "Authorization: Bearer $token" \
            "http://$(node_ip "$n"):$(node_admin "$n")/metrics" || true)
        total=$((total + $(awk '/^dialbridge_calls_in_progress / { n = $2 } END { print n + 0 }' <<<"$metrics")))
    done
    echo "$total"
}
wait_idle() {
    sleep 2
    local _
    for _ in $(seq 1 60); do
        [ "$(calls_held)" = 0 ] && return 0
        sleep 0.5
    done
    echo "   $(calls_held) call(s) still held after 32 s" >&2
}

# -- step 1: the calls-per-second ladder through Kamailio ---------------------------------
[[ $steps == *" 1 "* ]] || nodes_list=""
: >"$out/ladder.txt"
for n in $nodes_list; do
    uris=()
    for i in $(seq 1 "$n"); do uris+=("sip:$(node_ip "$i"):$(node_sip "$i")"); done
    SHM_MB=$kam_shm deploy/kamailio/run.sh "$out/kamailio-$n" 127.0.0.1 "$kam_port" $((kam_port + 1)) "${uris[@]}" \
        >"$out/kamailio-$n.log" 2>&1 &
    kam_pid=$!
    up=0
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$kam_port") 2>/dev/null; then up=1; break; fi
        kill -0 "$kam_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" = 0 ]; then
        echo "Kamailio did not start:" >&2
        tail -n 30 "$out/kamailio-$n.log" >&2
        exit 1
    fi
    # Its first OPTIONS round (every 2 s) has seen every node answer.
    sleep 3
    echo "== (1) Kamailio pid $kam_pid on 127.0.0.1:$kam_port in front of $n node(s)" >&2
    for r in $rates; do
        name=ladder-$n-$r
        echo "   $((r * 5)) calls at $r calls/s, 1 s holds" >&2
        rc0=$(redis_commands)
        pc0=$(pg_commits)
        redis-cli -p "$redis_port" info commandstats >"$out/$name.redis-before.txt" 2>&1 || true
        c0=$(cpu_line)
        s0=$(date +%s.%N)
        sim "$name" "127.0.0.1:$kam_port" 127.0.0.10 +14255550100 $((r * 5)) "$r" 1s
        sleep 4.5
        c1=$(cpu_line "$(cat "$out/$name.pid")")
        s1=$(date +%s.%N)
        # sbc-sim's CPU from its start (it was 0 then).
        wait_sims
        wait_idle
        rc1=$(redis_commands)
        pc1=$(pg_commits)
        redis-cli -p "$redis_port" info commandstats >"$out/$name.redis-after.txt" 2>&1 || true
        echo "$n $r $s0 $s1 $rc0 $rc1 $pc0 $pc1 | $c0 | $c1" >>"$out/ladder.txt"
    done
    stop_pid "$kam_pid"
    kam_pid=0
done

# -- step 2: a participant homed on another node against a local one --------------------
[[ $steps == *" 2 "* ]] || sizes=""
: >"$out/cross.txt"
# The two meetings: name, trunk address, number, conference ID (fixtures/organisers.csv).
meetings=(adele ravi)
from_ips=(127.0.0.10 127.0.0.30)
numbers=(+14255550100 +493070000100)
conferences=(123456789 555000111)
for p in $sizes; do
    for case in local cross; do
        if [ "$case" = local ]; then at=1; else at=2; fi
        half=$((p / 2))
        rate=$((p / 10 > 100 ? p / 10 : 100))
        [ "$rate" -gt 250 ] && rate=250
        launch=$(((half + rate / 2 - 1) / (rate / 2)))
        # Everyone joins within launch + ~5 s, then the plateau and the window.
        hold=$((launch + 10 + window))
        echo "== (2) $p participants, $case: anchors on node1, participants on node$at ($rate calls/s, holding ${hold}s)" >&2
        base1=$(admitted 1)
        legs0=$(legs 2)
        # The anchors: first in each meeting, on node1, for longer than everyone.
        for i in 0 1; do
            sim "cross-$p-$case-${meetings[$i]}-anchor" "$(node_ip 1):$(node_sip 1)" \
                "${from_ips[$i]}" "${numbers[$i]}" 1 1 "$((hold + launch + 15))s" \
                --conference "${conferences[$i]}" --tone 1000 --expect-tone 2500
        done
        anchors=0
        for _ in $(seq 1 40); do
            anchors=$(($(admitted 1) - base1))
            [ "$anchors" -ge 2 ] && break
            sleep 0.5
        done
        [ "$anchors" -ge 2 ] || echo "   only $anchors of 2 anchors admitted on node1 after 20 s" >&2
        # The participants: 2 talkers and the listeners per meeting, on node $at.
        for i in 0 1; do
            sim "cross-$p-$case-${meetings[$i]}-talkers" "$(node_ip "$at"):$(node_sip "$at")" \
                "${from_ips[$i]}" "${numbers[$i]}" 2 2 "${hold}s" \
                --conference "${conferences[$i]}" --tone 2500 --expect-tone 1000
            sim "cross-$p-$case-${meetings[$i]}-listeners" "$(node_ip "$at"):$(node_sip "$at")" \
                "${from_ips[$i]}" "${numbers[$i]}" $((half - 2)) $((rate / 2)) "${hold}s" \
                --conference "${conferences[$i]}" --expect-tone 1000
        done
        # The plateau: the home has admitted everyone, or nothing new for 4 s. Nobody
        # leaves before launch + hold, so admissions so far are the participants held.
        best=0 still=0 held=0
        for _ in $(seq 1 $(((launch + 20) * 2))); do
            sleep 0.5
            held=$(($(admitted 1) - base1 - anchors))
            if [ "$held" -gt "$best" ]; then best=$held; still=0; else still=$((still + 1)); fi
            [ "$held" -ge "$p" ] && break
            [ "$still" -ge 8 ] && [ "$best" -gt 0 ] && break
        done
        pids=()
        for f in "$out"/cross-"$p"-"$case"-*.pid; do pids+=("$(cat "$f")"); done
        c0=$(cpu_line "${pids[@]}")
        s0=$(date +%s.%N)
        sleep "$window"
        c1=$(cpu_line "${pids[@]}")
        s1=$(date +%s.%N)
        held=$(($(admitted 1) - base1 - anchors))
        rss=""
        for n in 1 2; do rss="$rss $(rss_of "${node_pids[$((n - 1))]}")"; done
        leg_count=$(($(legs 2) - legs0))
        wait_sims
        wait_idle
        echo "$p $case $held $leg_count $s0 $s1$rss | $c0 | $c1" >>"$out/cross.txt"
        echo "   held $held on the home, $leg_count leg(s) from node2" >&2
    done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== load average after: $load_after" >&2

# -- the tables ----------------------------------------------------------------------------
command="QUICK=$quick STEPS=\"${STEPS:-1 2}\" NODES=\"${NODES:-1 2 3}\" RATES=\"$rates\" PARTICIPANTS=\"$sizes\" WINDOW=$window scripts/cluster-load.sh"
[ "$quick" = 1 ] || command=${command#QUICK=0 }
python3 - "$out" "$max_nodes" "$command" "$load_before" "$load_after" \
    "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, max_nodes, command, before, after, commit = sys.argv[1:7]
max_nodes = int(max_nodes)

def report(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def ms(v):
    return "—" if v is None else (f"{v:.1f} ms" if v < 100 else f"{v:,.0f} ms")

def cpu(readings0, readings1, secs):
    # kamailio, node1..max, redis, postgres, sbc-sim, the whole machine
    a = [float(x) for x in readings0.split()]
    b = [float(x) for x in readings1.split()]
    return [100 * (y - x) / secs for x, y in zip(a, b)]

print(f"Command: `{command}` (commit {commit}, {os.cpu_count()} cores; load average {before} before, {after} after).")
print("CPU: 100 % = one core; Kamailio, the nodes, Redis, PostgreSQL and sbc-sim share the machine's cores. \"Rest of the machine\": the cores' busy time (/proc/stat) less this run's processes (the kernel's own threads, and any other build or test: near 0 on an idle machine).")
print()

rows = []
try:
    with open(os.path.join(out, "ladder.txt")) as f:
        rows = [l for l in f if l.strip()]
except OSError:
    pass
if rows:
    print("**Calls per second through Kamailio** (IVR calls to +14255550100 from the Microsoft trunk, 1 s holds, 5 s per rung; CPU over the rung's first 4.5 s; Redis commands and PostgreSQL commits per answered call over the whole rung)")
    print()
    print("| nodes | rate asked | calls | failed | achieved | setup p50 | setup p99 | Kamailio CPU | node CPU (each) | sbc-sim CPU | Redis CPU | PostgreSQL CPU | Redis cmds / call | PG commits / call | rest of the machine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    best, fast = {}, {}
    for line in rows:
        head, c0, c1 = line.split("|")
        n, r, s0, s1, rc0, rc1, pc0, pc1 = head.split()
        n = int(n)
        v = cpu(c0, c1, float(s1) - float(s0))
        kam, nodes, redis, pg, sim = v[0], v[1:1 + max_nodes], v[1 + max_nodes], v[2 + max_nodes], v[3 + max_nodes]
        others = v[4 + max_nodes] - sum(v[:4 + max_nodes])
        s = report(f"ladder-{n}-{r}")
        if not s:
            print(f"| {n} | {r}/s | — | no report | | | | | | | | | | | |")
            continue
        calls = s["attempted"] + s["not_started"]
        failed = calls - s["passed"]
        lat = s["setup_latency"] or {}
        answered = s["answered"] or 1
        per_redis = (float(rc1) - float(rc0)) / answered
        per_pg = (float(pc1) - float(pc0)) / answered
        node_cpu = " / ".join(f"{c:.0f}" for c in nodes[:n]) + " %"
        print(f"| {n} | {r}/s | {calls:,} | {failed} | {s['rate']:.0f}/s | {ms(lat.get('p50_ms'))} | {ms(lat.get('p99_ms'))} | {kam:.0f} % | {node_cpu} | {sim:.0f} % | {redis:.0f} % | {pg:.0f} % | {per_redis:.1f} | {per_pg:.1f} | {others:.0f} % |")
        if failed == 0 and s["rate"] >= 0.95 * float(r):
            best[n] = (r, lat.get("p50_ms"), lat.get("p99_ms"))
            if (lat.get("p99_ms") or 1e9) < 20.0:
                fast[n] = r
    print()
    for n in sorted({int(l.split()[0]) for l in rows}):
        if n in best:
            r, p50, p99 = best[n]
            print(f"- {n} node(s): sustained with zero failed calls: {r} calls/s (setup p50 {ms(p50)}, p99 {ms(p99)}); with setup p99 under 20 ms too: {str(fast[n]) + ' calls/s' if n in fast else 'none'}.")
        else:
            print(f"- {n} node(s): no rung passed with zero failed calls.")
    print()

rows = []
try:
    with open(os.path.join(out, "cross.txt")) as f:
        rows = [l for l in f if l.strip()]
except OSError:
    pass
if rows:
    print("**A participant homed on another node against a local one** (two meetings, adele's and ravi's, homed on node1 by one anchor caller each; P participants dialled straight into node1 (local) or node2 (cross-node: one leg per meeting to node1); CPU over the plateau)")
    print()
    print("| participants | case | held (admitted at the home) | legs | heard the anchor (participants) | anchors heard the talkers | node1 CPU | node2 CPU | nodes' CPU per participant | node1 / node2 RSS | sbc-sim CPU | rest of the machine | cross-node / local |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    local = {}
    for line in rows:
        head, c0, c1 = line.split("|")
        p, case, held, legs, s0, s1, rss1, rss2 = head.split()
        v = cpu(c0, c1, float(s1) - float(s0))
        n1, n2, sim = v[1], v[2], v[3 + max_nodes]
        others = v[4 + max_nodes] - sum(v[:4 + max_nodes])
        per = (n1 + n2) / int(p)
        heard = checked = 0
        anchors_heard = anchors = 0
        for m in ("adele", "ravi"):
            for part in ("talkers", "listeners"):
                s = report(f"cross-{p}-{case}-{m}-{part}")
                if s:
                    heard += s["audio_passed"]
                    checked += s["attempted"] + s["not_started"]
            s = report(f"cross-{p}-{case}-{m}-anchor")
            if s:
                anchors_heard += s["audio_passed"]
                anchors += 1
        if case == "local":
            local[p] = per
        ratio = f"{per / local[p]:.2f}" if case == "cross" and local.get(p) else "—"
        label = "local (all on node1)" if case == "local" else "cross-node (on node2)"
        print(f"| {int(p):,} | {label} | {held} | {legs} | {heard} of {checked} | {anchors_heard} of {anchors} | {n1:.0f} % | {n2:.0f} % | {per:.3f} % | {int(rss1) // 1024} / {int(rss2) // 1024} MiB | {sim:.0f} % | {others:.0f} % | {ratio} |")
    print()
EOF
