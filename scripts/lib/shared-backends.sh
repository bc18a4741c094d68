# Sourced by the load scripts (SHARED=1): a Redis and a PostgreSQL of the run's own, from
# Debian's packages, in a scratch directory on loopback, stopped by PID when the script
# exits (never a system service). PostgreSQL refuses to run as root: under root it runs as
# the `postgres` user Debian's package creates.
#   start_shared_backends DIR REDIS_PORT PG_PORT   (sets redis_pid, postgres_pid)
#   shared_table NODE                              (the [shared] table naming both)

start_shared_backends() {
    local dir=$1 redis_port=$2 pg_port=$3 as=()
    rm -rf "$dir" && mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --dir "$dir" >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    local pg_bin
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        as=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    "${as[@]}" "$pg_bin/initdb" -U postgres --auth=trust --no-sync -E UTF8 -D "$dir/pg" \
        >"$dir/initdb.log" 2>&1
    "${as[@]}" "$pg_bin/postgres" -D "$dir/pg" -h 127.0.0.1 -p "$pg_port" -k "$dir" \
        -c fsync=off -c max_connections=200 >"$dir/postgres.log" 2>&1 &
    postgres_pid=$!
    shared_redis_url="redis://127.0.0.1:$redis_port/"
    shared_postgres_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null &&
            (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "Redis or PostgreSQL did not start:" >&2
    cat "$dir"/*.log >&2
    exit 1
}

stop_shared_backends() {
    stop_process "${redis_pid:-0}"
    stop_process "${postgres_pid:-0}"
}

shared_table() {
    printf '\n[shared]\nnode = "%s"\nredis = "%s"\npostgres = "%s"\n' \
        "$1" "$shared_redis_url" "$shared_postgres_url"
}
