#!/usr/bin/env bash
# Fuzzes the SIP message entry points (fuzz/fuzz_targets/sip_message.rs) for a bounded time.
#   scripts/fuzz.sh [seconds]        default 60
# Crashes land in fuzz/artifacts/sip_message/; keep each as a fixture under
# fixtures/sip/fuzz/<valid|answer-NNN|drop>/ once fixed.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Only a stable toolchain is installed; cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module), which RUSTC_BOOTSTRAP=1 allows.
export RUSTC_BOOTSTRAP=1

corpus=fuzz/corpus/sip_message
mkdir -p "$corpus"
# Seed with every fixture, so the fuzzer starts from real traffic.
find fixtures/sip -name '*.sip' -exec cp {} "$corpus"/ \;

cargo fuzz run --fuzz-dir fuzz sip_message "$corpus" -- \
    -max_total_time="$seconds" -max_len=70000 -timeout=10 -rss_limit_mb=2048
