#!/usr/bin/env bash
# Every test, one command: installs what is missing, builds, starts the
# project's own PostgreSQL and Kafka, and runs
#   1. the unit tests (ctest) on the plain build (RelWithDebInfo, gcc);
#   2. the Release type with gcc and with clang, built clean (-O3 finds
#      warnings -O2 does not);
#   3. the unit tests and every integration and end-to-end test (pytest)
#      under AddressSanitizer and UndefinedBehaviorSanitizer, plus the few
#      tests that need the plain build (valgrind, the container's library
#      list) on it;
#   4. the unit tests and a short end-to-end path under ThreadSanitizer;
#   5. the short chaos run on the plain build;
#   6. the libFuzzer targets.
# The integration suite runs once, on the sanitized build, which checks
# more than the plain one; the plain build runs the chaos run and the tests
# only it can run. A second full pass on the plain build cost eight minutes.
# Exits non-zero on any failure. Set BC_SKIP_SANITIZE=1 to run the
# integration suite on the plain build instead and skip the sanitizers,
# BC_SKIP_FUZZ=1 to skip the fuzz targets (tests/fuzz/run.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

deploy/local/infra.sh up
# shellcheck disable=SC1091
source .local/env
export BC_PG_DSN BC_KAFKA_BROKERS

build() {   # build DIR [cmake args...]: configure once, then build
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
    fi
    cmake --build "$dir"
}
unit() { (cd "$1" && ctest --output-on-failure -L unit); }
integration() {   # integration DIR [pytest args...]
    local dir=$1
    shift
    BC_BUILD_DIR="$ROOT/$dir" python3 -m pytest -q "$@"
}

build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
unit build
build build-release -DCMAKE_BUILD_TYPE=Release -DBC_TESTS=OFF
CC=clang build build-release-clang -DCMAKE_BUILD_TYPE=Release -DBC_TESTS=OFF

if [ "${BC_SKIP_SANITIZE:-0}" = 1 ]; then
    integration build tests/integration
else
    # detect_leaks=0: librdkafka and libmicrohttpd keep a few process-lifetime
    # allocations; leaks are checked with valgrind on clean shutdown instead.
    (
        export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
        export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
        build build-asan -DCMAKE_BUILD_TYPE=Debug -DBC_SANITIZE=ON
        unit build-asan
        integration build-asan tests/integration
    )
    integration build -m plain_build tests/integration
    # ThreadSanitizer: librdkafka's own (uninstrumented) races are
    # suppressed, ours are not (tests/tsan/suppressions.txt). The cancel
    # test runs a route on a thread of its own (BC_HTTP_WAITS).
    (
        export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan/suppressions.txt"
        build build-tsan -DCMAKE_BUILD_TYPE=Debug -DBC_TSAN=ON
        unit build-tsan
        integration build-tsan tests/integration/test_walking_skeleton.py \
            tests/integration/test_processes.py \
            tests/integration/test_dispatch.py::test_a_cancel_waiting_on_a_dial_holds_up_no_other_request
    )
fi
# The short chaos profile: workers SIGKILLed, the scheduler leader killed,
# the Kafka broker restarted; ends with the invariant checker's table.
BC_BUILD_DIR="$ROOT/build" python3 tests/chaos/run.py
# Every libFuzzer target for BC_FUZZ_SECONDS each, after its regressions: 5 s
# here (20 by hand) keeps the whole run short; longer runs are
# docs/fuzzing.md's.
if [ "${BC_SKIP_FUZZ:-0}" != 1 ]; then
    BC_FUZZ_SECONDS=${BC_FUZZ_SECONDS:-5} tests/fuzz/run.sh
fi
