#!/usr/bin/env bash
# Runs every test dialbridge has, on a fresh machine as on a developer's: installs what the
# tests need when it is missing (sipp, baresip, Linphone, docker-compose, chromium and
# chromedriver, Redis, PostgreSQL and Kamailio, which the shared-backend and cluster
# tests start themselves),
# then formatting, lints, the pure-core check, the whole test suite (unit, fixtures, sipp
# interop, end to end), the router, directory and admin tests again on a
# Redis and a PostgreSQL of their own, one pass of each bench and a short pass of every
# fuzz target (scripts/fuzz.sh), so an input that crashes a parser fails the run.
# Building needs only the Rust toolchain and a C compiler: no libopus, pkg-config or
# cmake (Opus is pure Rust).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v baresip >/dev/null 2>&1 || need_apt+=(baresip-core)
command -v linphonec >/dev/null 2>&1 || need_apt+=(linphone-cli)
# The Linphone tests run in a private network namespace (unshare, ip).
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The shared-backend tests start their own servers (crates/testkit/src/servers): never a
# system service.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
# The cluster tests (crates/server/tests/cluster.rs) put Kamailio in front of the nodes,
# with deploy/kamailio/ (TLS too).
[ -x /usr/sbin/kamailio ] || need_apt+=(kamailio)
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need_apt+=(kamailio-tls-modules)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> pure cores build without tokio"
cargo check --locked -p dialbridge-sip -p dialbridge-media --no-default-features

echo "==> cargo test"
cargo test --workspace --all-targets --locked

# The server's router, directory, money and admin tests once more, every test bridge on
# the shared backends (a namespace of its own in one Redis, a database of its own on one
# PostgreSQL, both started here on loopback and stopped by PID): the same tests hold the
# embedded default and the shared configuration to the same behaviour.
echo "==> the router, directory and admin tests again, on Redis and PostgreSQL"
root=$(pwd)
. scripts/lib/load-bridge.sh
. scripts/lib/shared-backends.sh
shared_dir=$(mktemp -d /tmp/dialbridge-test-shared.XXXXXX)
start_shared_backends "$shared_dir" "${TEST_REDIS_PORT:-6391}" "${TEST_PG_PORT:-5491}"
trap 'stop_shared_backends; rm -rf "$shared_dir"' EXIT
DIALBRIDGE_TEST_REDIS=$shared_redis_url \
    DIALBRIDGE_TEST_POSTGRES=${shared_postgres_url%/postgres} \
    cargo test --locked -p dialbridge-server --test admin_api --test routing \
    --test live_admin --test walking_skeleton --test metrics
stop_shared_backends
rm -rf "$shared_dir"
trap - EXIT

# One build for every target (minutes on 2 cores the first time, then incremental),
# then 5 s each: a quick pass over the seeds, not a fuzzing campaign (scripts/fuzz.sh 60
# is, with AddressSanitizer). Built without the sanitizer, which is slower to build and
# finds nothing safe Rust can do; every panic still fails the run.
echo "==> a short pass of every fuzz target"
FUZZ_SANITIZER=none scripts/fuzz.sh 5
