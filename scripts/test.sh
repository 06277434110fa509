#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything and runs every
# test suite. Exits non-zero on any failure.
#   1. RelWithDebInfo build: all GoogleTest suites, emulator, integration, Prometheus and
#      manifest tests (CTest);
#   2. the short A/A soak of the EventBuffer (1M appends in shadow mode, 0 mismatches);
#   3. ThreadSanitizer build of the storage, buffer and metrics code and of the watch body
#      buffer: their suites again;
#   4. AddressSanitizer + UBSan build of the same;
#   5. ThreadSanitizer build of the controller: the HTTP server, events API and delegated
#      auth suites;
#   6. a bounded libFuzzer run of the event decoder (FUZZ_SECONDS, default 60; 0 skips).
# Environment: JOBS (parallel build jobs, default nproc), SKIP_SANITIZERS=1 to skip 3 to 5.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-60}

step() { printf '\n=== %s (%(%H:%M:%S)T)\n' "$*" -1; }

step "dependencies"
scripts/install-deps.sh

step "build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

failed=0
step "tests"
ctest --test-dir build --output-on-failure -j 2 --timeout 600 || failed=1

step "A/A soak: 1,000,000 appends in shadow mode, verifier on, zero mismatches required"
build/tests/bench/event_buffer_bench --soak_appends=1000000 --benchmark_filter=Soak || failed=1

if [[ ${SKIP_SANITIZERS:-0} != 1 ]]; then
  for san in thread address; do
    step "tests under ${san} sanitizer (storage, buffer, metrics, watch body buffer)"
    cmake -S . -B "build-$san" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=$san \
      -DKEB_WITH_CONTROLLER=OFF -DKEB_BUILD_BENCH=OFF >/dev/null
    cmake --build "build-$san" -j "$jobs"
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      ctest --test-dir "build-$san" --output-on-failure -j 2 --timeout 900 \
        -L 'eventbuffer_tests|metrics_tests|body_buffer_tests' || failed=1
  done
fi

if [[ ${SKIP_SANITIZERS:-0} != 1 ]]; then
  # The HTTP server hands responses between its I/O thread and its workers; the API renders
  # streamed lists on those workers.
  step "serving tests under thread sanitizer (server, events API, delegated auth)"
  cmake -S . -B build-thread-serving -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=thread \
    -DKEB_WITH_CONTROLLER=ON -DKEB_BUILD_BENCH=OFF >/dev/null
  cmake --build build-thread-serving -j "$jobs" --target controller_tests
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-thread-serving/tests/controller_tests \
    --gtest_filter='ServerTest.*:ServerTlsTest.*:EventsApiTest.*:DelegatingAuth*' || failed=1
fi

if [[ $fuzz_seconds != 0 ]]; then
  step "fuzzing the event decoder for ${fuzz_seconds}s"
  scripts/fuzz-decoder.sh "$fuzz_seconds" || failed=1
fi

if [[ $failed != 0 ]]; then
  # The end of each failed test's output once more, so that a log read from its end shows
  # why (CTest's LastTest.log holds every test's output between "N/M Testing: NAME" and
  # "NAME" end time).
  for dir in build build-thread build-address; do
    failed_list="$dir/Testing/Temporary/LastTestsFailed.log"
    [[ -s $failed_list && $failed_list -nt $dir/CMakeCache.txt ]] || continue
    while IFS=: read -r _ name; do
      step "$dir: the end of what $name printed"
      awk -v n="$name" '$0 ~ "Testing: " n "$" {on=1} on {print} on && index($0, "\"" n "\" end time") {exit}' \
        "$dir/Testing/Temporary/LastTest.log" | tail -n 80
    done < "$failed_list"
  done
  step "FAILED (see above)"
  exit 1
fi
step "all tests passed"
