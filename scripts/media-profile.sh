#!/usr/bin/env bash
# Where the media engine's threads spend their time, on the engine that runs: the media
# benchmark (crates/media/examples/media_load.rs) with N participants, profiled with
# Debian's `perf` for a window after its ramp-up. Prints each thread's share
# (kernel/user) and the hottest user-space functions of the clock and receive threads.
#
# Usage: scripts/media-profile.sh [N] [SECONDS] [media_load flags...]
#   e.g. scripts/media-profile.sh 1000 6 --events-only
# Needs `perf` (package linux-perf) and root (or perf_event_paranoid <= 1). The bridge
# runs under `chrt -f 20`, the generator under `chrt -f 10`, as MEDIA_LOAD_RT=1 does.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
seconds="${2:-6}"
shift 2 || shift $#
command -v perf >/dev/null || { echo "error: perf is needed (apt-get install linux-perf)" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p dialbridge-media --example media_load
out="$CARGO_TARGET_DIR/media-profile"
mkdir -p "$out"
chrt -f 20 "$CARGO_TARGET_DIR/release/examples/media_load" "$n" --seconds $((seconds + 4)) \
    --warmup 3 --gen-prio 10 "$@" >"$out/run.log" 2>&1 &
bench=$!
trap 'kill "$bench" 2>/dev/null || true' EXIT
sleep 4
perf record -F 1999 -p "$bench" -o "$out/perf.data" -- sleep "$seconds" >/dev/null 2>&1
wait "$bench" || true
trap - EXIT
cat "$out/run.log"
echo
echo "== samples by thread and side (kernel = the sockets' cost)"
perf report -i "$out/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep '%' | head -10
echo
echo "== hottest user-space functions of the media threads"
perf report -i "$out/perf.data" --no-children --sort sym --stdio 2>/dev/null |
    grep '%' | grep -v '\[k\]' | head -25
echo "(perf data in $out/perf.data)"
