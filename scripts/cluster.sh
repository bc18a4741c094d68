#!/usr/bin/env bash
# Runs the demo cluster in the foreground (shared/DEMO.md, "The demo cluster") until
# SIGTERM or Ctrl-C: Kamailio on 127.0.0.1:5060 (UDP, TCP) and :5061 (TLS) in front of
# three bridge nodes on 127.0.1.1, .2, .3 (:5060, RTP 20000-39998, admin :8088), sharing
# Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432. Callers dial it exactly as
# they dial `dialbridge serve`.
#
# Everything lives under target/cluster/: each process's PID in <name>.pid (kamailio,
# redis, postgres, node1, node2, node3) and its log in <name>.log, PostgreSQL's data in
# postgres/ (made by initdb when missing, kept between runs, so the money and records
# last). Redis keeps nothing: nodes restate their calls when it comes back empty.
# Installs kamailio, redis-server and postgresql with apt when missing, builds the
# release binary, and stops every process it started, by PID, when it is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$root/target/cluster
. scripts/lib/load-bridge.sh

need_apt=()
[ -x /usr/sbin/kamailio ] || need_apt+=(kamailio)
ls /usr/lib/*/kamailio/modules/tls.so \
    >/dev/null 2>&1 || need_apt+=(kamailio-tls-modules)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> cargo build --release --bin dialbridge"
cargo build --release --locked --bin dialbridge
bin=${CARGO_TARGET_DIR:-$root/target}/release/dialbridge

mkdir -p "$dir"
names=(kamailio node1 node2 node3 postgres redis)
# A previous run that was killed may have left its processes: never start beside them.
for name in "${names[@]}"; do
    if [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
        echo "$name is still running (PID $(cat "$dir/$name.pid")): stop that cluster first" >&2
        exit 1
    fi
    rm -f "$dir/$name.pid"
done

stopping=0
stop_all() {
    [ "$stopping" = 1 ] && return
    stopping=1
    echo "==> stopping the cluster"
    # The nodes are told at once (they drain in parallel, answering Kamailio's probes
    # with 503 so it sends them nothing new), then each process is stopped in turn:
    # Kamailio, the nodes (SIGKILL past 10 s), their backends.
    for name in node1 node2 node3; do
        if [ -f "$dir/$name.pid" ]; then
            kill -TERM "$(cat "$dir/$name.pid")" 2>/dev/null || true
        fi
    done
    for name in "${names[@]}"; do
        if [ -f "$dir/$name.pid" ]; then
            stop_process "$(cat "$dir/$name.pid")"
            rm -f "$dir/$name.pid"
        fi
    done
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

started() { # NAME PID
    echo "$2" > "$dir/$1.pid"
    echo "    $1: PID $2, log target/cluster/$1.log"
}

# wait_port NAME PID PORT [IP]: bounded wait until something accepts TCP there.
wait_port() {
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/${4:-127.0.0.1}/$3") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$2" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "$1 did not start:" >&2
    tail -n 30 "$dir/$1.log" >&2
    exit 1
}

echo "==> Redis on 127.0.0.1:6379"
redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
started redis $!
wait_port redis $! 6379

echo "==> PostgreSQL on 127.0.0.1:5432"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as=()
if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    mkdir -p "$dir/postgres"
    chown postgres: "$dir/postgres"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
if [ ! -f "$dir/postgres/data/PG_VERSION" ]; then
    "${as[@]}" "$pg_bin/initdb" -U postgres --auth=trust -E UTF8 -D "$dir/postgres/data" \
        >"$dir/initdb.log" 2>&1
fi
"${as[@]}" "$pg_bin/postgres" -D "$dir/postgres/data" -h 127.0.0.1 -p 5432 \
    -k "$dir/postgres" -c max_connections=200 >"$dir/postgres.log" 2>&1 &
started postgres $!
wait_port postgres $! 5432

echo "==> bridge nodes on 127.0.1.1, .2, .3"
for n in 1 2 3; do
    NO_COLOR=1 "$bin" serve --config "$root/fixtures/cluster/node$n.toml" \
        >"$dir/node$n.log" 2>&1 &
    started "node$n" $!
done
for n in 1 2 3; do
    wait_port "node$n" "$(cat "$dir/node$n.pid")" 8088 "127.0.1.$n"
done

echo "==> Kamailio on 127.0.0.1:5060 (UDP, TCP) and 5061 (TLS)"
deploy/kamailio/run.sh "$dir/kamailio" 127.0.0.1 5060 5061 \
    sip:127.0.1.1:5060 sip:127.0.1.2:5060 sip:127.0.1.3:5060 >"$dir/kamailio.log" 2>&1 &
started kamailio $!
wait_port kamailio $! 5060

echo "==> the demo cluster is up: dial 127.0.0.1:5060 as the single bridge (Ctrl-C stops it)"
# Until a signal, or until any of its processes dies (then everything stops).
while true; do
    for name in "${names[@]}"; do
        if ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
            echo "$name exited: stopping the cluster (see target/cluster/$name.log)" >&2
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
