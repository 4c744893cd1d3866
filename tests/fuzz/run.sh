#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DBC_FUZZ=ON, in build-fuzz/) and runs
# each for a bounded time on a copy of its seed corpus, after replaying every
# input that once crashed it (tests/fuzz/regressions/<target>/).
#
#   tests/fuzz/run.sh              every target, BC_FUZZ_SECONDS (20) each
#   tests/fuzz/run.sh csv e164     only these
#
# Exits non-zero if any target crashes, leaks, times out or breaks one of its
# properties; the input is left in build-fuzz/artifacts/<target>/. New corpus
# entries stay in build-fuzz/corpus/<target>/: copy the interesting ones to
# tests/fuzz/corpus/<target>/ by hand.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SECONDS_EACH=${BC_FUZZ_SECONDS:-20}
BUILD=build-fuzz
HERE=tests/fuzz

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is missing; run deploy/local/install-deps.sh" >&2
    exit 2
fi
if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang cmake -S . -B "$BUILD" -G Ninja -DBC_FUZZ=ON -DBC_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target fuzz

# Inputs past these sizes teach nothing new and slow every run down.
max_len() {
    case $1 in
        e164) echo 64 ;;
        twilio | callback) echo 2048 ;;
        *) echo 8192 ;;
    esac
}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for src in "$HERE"/fuzz_*.c; do
        t=$(basename "$src" .c)
        targets+=("${t#fuzz_}")
    done
fi

# Leaks count as failures; libFuzzer catches the crash and saves the input.
export ASAN_OPTIONS="detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=()
summary=()
for t in "${targets[@]}"; do
    bin="$BUILD/fuzz_$t"
    log="$BUILD/logs/$t.log"
    work="$BUILD/corpus/$t"
    art="$BUILD/artifacts/$t/"
    [ -x "$bin" ] || { echo "fuzz: no target fuzz_$t" >&2; exit 2; }
    mkdir -p "$work" "$art" "$(dirname "$log")"

    regs=("$HERE/regressions/$t"/*)
    if [ -e "${regs[0]}" ]; then
        echo "fuzz: $t: replaying ${#regs[@]} regression input(s)"
        if ! "$bin" -runs=1 "${regs[@]}" >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            failed+=("$t (regression)")
            continue
        fi
    fi

    cp -n "$HERE/corpus/$t"/* "$work"/ 2>/dev/null || true
    opts=(-max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" -timeout=10
          -rss_limit_mb=2048 -artifact_prefix="$art" -print_final_stats=1)
    [ -f "$HERE/dict/$t.dict" ] && opts+=(-dict="$HERE/dict/$t.dict")
    echo "fuzz: $t: ${SECONDS_EACH}s"
    if "$bin" "${opts[@]}" "$work" >"$log" 2>&1; then
        line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
        summary+=("$t: ${line:-no stats}")
    else
        tail -n 40 "$log" >&2
        failed+=("$t")
    fi
done

for s in "${summary[@]}"; do
    echo "fuzz: $s"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in $BUILD/artifacts/, logs in $BUILD/logs/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
