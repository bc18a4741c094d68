#!/usr/bin/env bash
# Fuzzes every parser that reads the network or a file (fuzz/fuzz_targets/), each for a
# bounded time, one after the other, and prints executions and crashes per target.
#   scripts/fuzz.sh [seconds] [target...]     default 60 s each, every target
#   FUZZ_SANITIZER=none scripts/fuzz.sh 5     without AddressSanitizer (the test
#                                             command's short pass: a much shorter build;
#                                             a panic is still a crash)
# Exits non-zero when any target crashes (or its build fails). One build serves every
# target. Crashes land in fuzz/artifacts/<target>/: fix the product, then keep each as a
# regression test in the owning crate (SIP messages: a fixture under
# fixtures/sip/fuzz/<valid|answer-NNN|drop>/).
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Only a stable toolchain is installed; cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module), which RUSTC_BOOTSTRAP=1 allows.
export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target dir (fuzz/target): a
# CARGO_TARGET_DIR meant for the main workspace must not redirect it.
unset CARGO_TARGET_DIR

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

sanitizer="${FUZZ_SANITIZER:-address}"
echo "==> building the fuzz targets (sanitizer: $sanitizer, release)"
if [ ${#targets[@]} -eq 1 ]; then
    cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" "${targets[0]}"
else
    cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
# The bundled SQLite (rusqlite, under the conference and server crates) has two static
# tables named `aiOff` in different functions; ASan reports them as a one-definition-
# rule violation at start-up, a false positive that would stop every such target.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
bin_dir="fuzz/target/$host/release"

# Writes a file of raw bytes given as printf escapes.
bytes() { printf "$2" >"$1"; }

# Seeds target $1's corpus: real samples from fixtures/ where they exist, a few made
# here where they do not. Seeds are small; the corpus itself is never committed.
seed() {
    local target="$1" corpus="fuzz/corpus/$1"
    mkdir -p "$corpus"
    case "$target" in
    sip_message)
        # Every fixture, so the fuzzer starts from real traffic.
        find fixtures/sip -name '*.sip' -exec cp {} "$corpus"/ \;
        ;;
    sdp)
        # The SDP bodies of the SIP fixtures: from `v=0` to the end.
        local f
        for f in $(grep -rl '^v=0' fixtures/sip); do
            sed -n '/^v=0/,$p' "$f" >"$corpus/$(basename "$f" .sip).sdp"
        done
        ;;
    rtp | telephone_event)
        # The RTP of the sipp pcaps (PCMU and RFC 4733 key presses).
        pcap_payloads "$target" "$corpus"
        bytes "$corpus/pcmu" '\x80\x00\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xff\xfe\xfd\xfc'
        bytes "$corpus/csrc-ext-pad" '\xb1\xe5\x00\x02\x00\x00\x01\x40\x12\x34\x56\x78\xaa\xbb\xcc\xdd\xbe\xde\x00\x01\x10\x20\x30\x40\x01\x02\x00\x00\x02'
        ;;
    rtcp)
        # SR with one block + SDES CNAME, RR + BYE, as phones send them.
        bytes "$corpus/sr-sdes" '\x81\xc8\x00\x0c\x12\x34\x56\x78\xe7\x6c\x0a\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x32\x00\x00\x1f\x40\x9a\xbc\xde\xf0\x01\x00\x00\x02\x00\x00\x10\x20\x00\x00\x00\x05\x0a\x00\x00\x00\x00\x01\x00\x00\x81\xca\x00\x03\x12\x34\x56\x78\x01\x04\x61\x40\x62\x2e\x00\x00'
        bytes "$corpus/rr-bye" '\x80\xc9\x00\x01\x12\x34\x56\x78\x81\xcb\x00\x01\x12\x34\x56\x78'
        ;;
    srtp)
        # Ops: protect an RTP packet, unprotect it; protect an RTCP report.
        bytes "$corpus/rtp-rtcp" '\x00\x01\x10\x80\x00\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xff\xfe\xfd\xfc\x03\x08\x80\xc9\x00\x01\x12\x34\x56\x78\x00\x1a\x80\x00\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xff\xfe\xfd\xfc\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09'
        ;;
    info_dtmf)
        printf 'application/dtmf-relay\nSignal=5\r\nDuration=160\r\n' >"$corpus/relay"
        printf 'application/dtmf-relay; charset=utf-8\nSignal = #\nDuration= 250\n' >"$corpus/relay-lf"
        printf 'application/dtmf\n11' >"$corpus/dtmf-code"
        printf 'application/dtmf\n*\r\n' >"$corpus/dtmf-key"
        ;;
    config)
        cp fixtures/demo.toml fixtures/docker.toml "$corpus"/
        ;;
    organiser_csv)
        cp fixtures/organisers.csv "$corpus"/
        ;;
    admin_json)
        local body i=0
        for body in '{"muted":true}' '{"locked":false}' '{"recording":true}' \
            '{"bridge":"eu-1"}' '{"capacity":40}' '{"enabled":false}' \
            '{"join_leave_tones":null}' '{"join_leave_tones":true,"x":1}' \
            '{"amount":"5.00"}' '{"amount":"-0.0001"}'; do
            printf '%s' "$body" >"$corpus/body-$i"
            i=$((i + 1))
        done
        ;;
    esac
}

# The UDP payloads of fixtures/sipp/pcap/*.pcap (Ethernet, IPv4): RTP packets for the
# rtp target, telephone-event records (see fuzz_targets/telephone_event.rs) for that one.
pcap_payloads() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - "$1" "$2" fixtures/sipp/pcap/*.pcap <<'EOF'
import struct, sys
target, corpus, files = sys.argv[1], sys.argv[2], sys.argv[3:]
for path in files:
    data = open(path, "rb").read()
    at, packets = 24, []
    while at + 16 <= len(data):
        incl = struct.unpack_from("<I", data, at + 8)[0]
        frame = data[at + 16 : at + 16 + incl]
        at += 16 + incl
        if len(frame) > 34 and frame[12:14] == b"\x08\x00" and frame[23] == 17:
            ip = (frame[14] & 0x0F) * 4
            packets.append(frame[14 + ip + 8 :])
    name = path.rsplit("/", 1)[-1].removesuffix(".pcap")
    if target == "rtp":
        for i, p in enumerate(packets[:8]):
            open(f"{corpus}/{name}-{i}", "wb").write(p)
    else:
        # One record per telephone-event packet: len, payload[7], ts, seq, marker, 20 ms.
        out = b""
        for p in packets:
            if len(p) >= 16 and p[1] & 0x7F >= 96:
                payload = p[12:19].ljust(7, b"\0")
                out += bytes([min(len(p) - 12, 7)]) + payload + p[4:8] + p[2:4]
                out += bytes([p[1] >> 7, 10])
        if out:
            open(f"{corpus}/{name}", "wb").write(out)
EOF
}

# libFuzzer's options for target $1.
options() {
    case "$1" in
    # A SIP message may be up to 64 KiB.
    sip_message) echo "-max_len=70000" ;;
    # SDP bodies, configuration and CSV files are text of a few KiB.
    sdp | config | organiser_csv) echo "-max_len=20000" ;;
    *) echo "-max_len=4096" ;;
    esac
}

mkdir -p fuzz/logs
failed=0
rows=()
for target in "${targets[@]}"; do
    seed "$target"
    mkdir -p "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    log="fuzz/logs/$target.log"
    echo "==> fuzzing $target for ${seconds}s"
    status=0
    # shellcheck disable=SC2046
    "$bin_dir/$target" "fuzz/corpus/$target" $(options "$target") \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" \
        >"$log" 2>&1 || status=$?
    after=$(find "fuzz/artifacts/$target" -type f | wc -l)
    crashes=$((after - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # Failed without writing an input (e.g. it could not start): still a failure.
        crashes=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    fi
    rows+=("$(printf '%-16s %12s %8s' "$target" "${execs:-?}" "$crashes")")
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "    $target crashed: see $log and fuzz/artifacts/$target/" >&2
        grep -m3 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)|Test unit written' "$log" >&2 || true
    fi
done

printf '\n%-16s %12s %8s\n' target executions crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
