#!/bin/sh
# Fuzzing of docs/reliability.md#fuzzing: every target under fuzz/fuzz_targets/ run for
# SECONDS (600 by default), two at a time, each from its committed corpus
# (fuzz/corpus/TARGET/), which grows in place. A crash stops that target and leaves its
# input in fuzz/artifacts/TARGET/. Needs cargo-fuzz (`cargo install --locked cargo-fuzz`);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take cargo-fuzz's nightly flags.
# Usage: scripts/fuzz.sh [SECONDS] [JOBS]
set -eu
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
jobs="${2:-2}"
export RUSTC_BOOTSTRAP=1
# Optimised, with debug assertions and overflow checks (cargo-fuzz's default); safe Rust,
# so no AddressSanitizer: libFuzzer's coverage and its panic, timeout and memory checks.
flags="--sanitizer none"
cargo fuzz build $flags
mkdir -p logs
cargo fuzz list | xargs -P "$jobs" -I TARGET sh -c '
    mkdir -p corpus/TARGET
    if cargo fuzz run '"$flags"' TARGET corpus/TARGET -- \
        -max_total_time='"$seconds"' -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >logs/TARGET.log 2>&1
    then echo "TARGET: ok ($(grep -E "stat::number_of_executed_units" logs/TARGET.log | tr -d " "))"
    else echo "TARGET: FAILED, see fuzz/logs/TARGET.log and fuzz/artifacts/TARGET/"; exit 1
    fi'
