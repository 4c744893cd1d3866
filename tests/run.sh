#!/usr/bin/env bash
# Every test, one command: installs what is missing, builds, starts the
# project's own PostgreSQL and Kafka, runs the unit tests (ctest), the
# integration and end-to-end tests (pytest), the short chaos run, the libFuzzer
# targets, then the unit and integration tests again under AddressSanitizer
# and UndefinedBehaviorSanitizer.
# Exits non-zero on any failure. Set BC_SKIP_SANITIZE=1 to skip the second pass,
# BC_SKIP_FUZZ=1 to skip the fuzz targets (tests/fuzz/run.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

deploy/local/infra.sh up
# shellcheck disable=SC1091
source .local/env
export BC_PG_DSN BC_KAFKA_BROKERS

run_suite() {   # run_suite BUILD_DIR [cmake args...]
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
    fi
    cmake --build "$dir"
    (cd "$dir" && ctest --output-on-failure -L unit)
    BC_BUILD_DIR="$ROOT/$dir" python3 -m pytest -q tests/integration
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The Release type builds clean too (-O3 finds warnings -O2 does not).
if [ ! -f build-release/build.ninja ]; then
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build-release
# The short chaos profile: workers SIGKILLed, the scheduler leader killed,
# the Kafka broker restarted; ends with the invariant checker's table.
BC_BUILD_DIR="$ROOT/build" python3 tests/chaos/run.py
# Every libFuzzer target for BC_FUZZ_SECONDS each, after its regressions: 10 s
# here (20 by hand) keeps the whole run under the 30 minutes it may take;
# longer runs are docs/fuzzing.md's.
if [ "${BC_SKIP_FUZZ:-0}" != 1 ]; then
    BC_FUZZ_SECONDS=${BC_FUZZ_SECONDS:-10} tests/fuzz/run.sh
fi
if [ "${BC_SKIP_SANITIZE:-0}" != 1 ]; then
    # detect_leaks=0: librdkafka and libmicrohttpd keep a few process-lifetime
    # allocations; leaks are checked with valgrind on clean shutdown instead.
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DBC_SANITIZE=ON
fi
