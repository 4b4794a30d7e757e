#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (one per parser of untrusted input) for a
# bounded time each, one after the other.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to all of them.
# Each target starts from its committed seeds (fuzz/seeds/T, read only) and
# grows a scratch corpus in fuzz/corpus/T. A crash, timeout or out-of-memory
# input is saved under fuzz/artifacts/T/; the script then exits non-zero
# naming it. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -a T fuzz/artifacts/T/crash-…   (in fuzz/)
# Not part of .ci/run: it needs minutes and a sanitizer build.
set -euo pipefail

secs=${1:-60}
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

# cargo fuzz passes nightly-only flags (-Zsanitizer=…); the toolchain here is
# stable, which accepts them with this set.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# -a: debug assertions, so integer overflow panics instead of wrapping.
build_flags=(-a)
cargo fuzz build "${build_flags[@]}"

failed=()
printf '%-16s %8s %12s %10s %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    status=ok
    if ! cargo fuzz run "${build_flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=FAILED
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    printf '%-16s %8s %12s %10s %s\n' "$t" "$secs" "${runs:-?}" "${rate:-?}" "$status"
    if [ "$status" != ok ]; then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        echo "  $t: ${artifact:-no artifact written}; log: fuzz/$log" >&2
        grep -m5 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/    /' >&2 || true
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without a finding"
