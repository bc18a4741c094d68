# Shared by scripts/load.sh and scripts/overload.sh (sourced, not run): the demo
# configuration with every capacity raised, and the /proc readings both scripts take.

# Writes the demo (fixtures/demo.toml) with capacities raised to 10000 (trunks, bridges,
# numbers, meeting size; no join/leave chimes), SIP on 127.0.0.1:$3 (TLS on the next
# port) and the admin API on 127.0.0.1:$4, its call records in cdr.sqlite beside it, to
# file $2 in directory $1 (with the fixtures it names linked there). Further arguments
# are more sed expressions (-e ...).
#   write_load_config DIR FILE SIP_PORT ADMIN_PORT [-e EXPR]...
write_load_config() {
    local dir=$1 file=$2 sip_port=$3 admin_port=$4 entry
    shift 4
    for entry in tls prompts organisers.csv; do
        ln -sfn "$root/fixtures/$entry" "$dir/$entry"
    done
    # max_members and join_leave_tones go into the demo's own [conference] (TOML allows
    # one table of a name): meetings far larger than the demo's 250, and no chimes (at
    # 50 joins a second they would play back to back over everyone's voice).
    sed -E \
        -e "s/:5060\"/:$sip_port\"/g" \
        -e "s/:5061\"/:$((sip_port + 1))\"/g" \
        -e "s/127\.0\.0\.1:8088/127.0.0.1:$admin_port/" \
        -e 's#^cdr_database = .*#cdr_database = "cdr.sqlite"#' \
        -e 's/^(max_sessions|capacity|service_number_capacity) = [0-9]+/\1 = 10000/' \
        -e '/^\[conference\]$/a max_members = 10000\njoin_leave_tones = false' \
        "$@" \
        "$root/fixtures/demo.toml" >"$dir/$file"
    rm -f "$dir/cdr.sqlite"*
}

tck=$(getconf CLK_TCK)
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v t="$tck" '{ print ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Resident memory, KiB.
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Stops process $1: SIGTERM (the bridge drains), SIGKILL after 10 s.
stop_process() {
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

# Waits up to 10 s for `dialbridge serve` (pid $1) to accept TCP on 127.0.0.1:$2; on
# failure prints log $3 and exits.
wait_listening() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
            return 0
        fi
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "the bridge did not start:" >&2
    cat "$3" >&2
    exit 1
}
