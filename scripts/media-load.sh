#!/usr/bin/env bash
# The media load table: N simultaneous G.711 participants in conferences of 10 on one
# MediaEngine, fed over loopback by a generator process (crates/media/examples/media_load.rs).
# Runs 500, 1000, 2000 and 5000 participants in release mode, in two modes:
#   queued:      every inbound packet is also queued to a consumer task (as during the IVR,
#                or for in-band DTMF detection)
#   events-only: audio is mixed but only RFC 4733 events are queued (a conference
#                participant with telephone-event), see RtpSession::set_deliver_audio
# Usage: scripts/media-load.sh [SECONDS] [SIZES...]   (default 20 s; 500 1000 2000 5000)
# The machine should be otherwise idle: a concurrent build makes the tick lateness meaningless.
# MEDIA_LOAD_RT=1 runs the bridge under `chrt -f 20` and the generator under `chrt -f 10`
# (SCHED_FIFO, needs root or CAP_SYS_NICE), as a media server would be deployed: it shields
# the clock from other jobs, and the generator never delays the bridge.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(500 1000 2000 5000)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p dialbridge-media --example media_load
bin="$CARGO_TARGET_DIR/release/examples/media_load"
run=()
extra=()
if [ "${MEDIA_LOAD_RT:-0}" = 1 ]; then
    run=(chrt -f 20)
    extra=(--gen-prio 10)
fi

# 5,000 participants need 10,000 bridge sockets; the program raises its soft limit to the
# hard one, which must allow it.
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 12000 ]; then
    echo "warning: hard open-file limit $(ulimit -Hn) < 12000: 5,000 participants will fail" >&2
fi

for mode in queued events-only; do
    flag=""
    [ "$mode" = events-only ] && flag="--events-only"
    for n in "${sizes[@]}"; do
        echo "==> $n participants, $mode, ${seconds}s after a 5 s ramp-up"
        "${run[@]}" "$bin" "$n" --seconds "$seconds" --warmup 5 $flag "${extra[@]}"
    done
done
