#!/usr/bin/env bash
# tests/run-all.sh: set up everything and run every test, as CI does.
#
#   1. tests/setup.sh: Debian packages, FerretDB, Node and Python clients
#   2. a -Werror build in _build/ and `make check` (unit + integration)
#   3. an --enable-asan build in _build-asan/ and the same `make check`
#   4. a --enable-tiny-keys build (8-bit cache keys: collisions everywhere)
#      running the collision and workload tests: never a wrong answer
#   5. a --enable-fuzzing build (_build-fuzz, clang-14 + libFuzzer, ASan, UBSan):
#      every committed fuzz input replayed, then each fuzz target run for
#      FUZZ_SECONDS (default 30: CI has 20 minutes for everything), FUZZ_JOBS targets at a time
#      (default: one per core), so 6 targets x 60 s / 2 cores = ~3 min here.
#      FUZZ_SECONDS=0 keeps only the replay. See tests/fuzz/README.md.
#   6. `make distcheck` (the release tarball builds and its unit tests pass)
#
# Integration tests fail instead of skipping here (MONGOCACHE_REQUIRE_INTEGRATION=1).
# Ends with one line: "mongocache: N passed, N failed, N skipped".
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
JOBS=$(nproc 2>/dev/null || echo 2)
START=$(date +%s)
export PATH=$PATH:/usr/local/go/bin

step() { printf '\n==> %s\n' "$*"; }

pass=0 fail=0 skip=0 status=0
tally() {
    # Adds the counts of one automake test-suite.log to the totals.
    local log=$1 p f s e
    [ -f "$log" ] || return 0
    p=$(sed -n 's/^# PASS: *//p' "$log" | head -n1)
    f=$(sed -n 's/^# FAIL: *//p' "$log" | head -n1)
    s=$(sed -n 's/^# SKIP: *//p' "$log" | head -n1)
    e=$(sed -n 's/^# ERROR: *//p' "$log" | head -n1)
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0})); skip=$((skip + ${s:-0}))
}

run_check() {
    # run_check DIR CONFIGURE-ARGS... [TESTS=...]: configure, build and
    # `make check` (only the given TESTS when a TESTS=... argument ends the list) in DIR.
    local dir=$1 tests=""; shift
    case "${*: -1}" in TESTS=*) tests=${*: -1}; set -- "${@:1:$(($# - 1))}" ;; esac
    mkdir -p "$dir"
    (cd "$dir" && "$TOP/configure" -q "$@" && make -j"$JOBS" >/dev/null) || return 1
    if ! (cd "$dir" && MONGOCACHE_REQUIRE_INTEGRATION=1 make -j1 check ${tests:+"$tests"}); then
        find "$dir/tests" -name '*.log' ! -name test-suite.log -exec grep -l '^not ok\|^ERROR\|^Bail out' {} + 2>/dev/null |
            while read -r l; do printf '\n---- %s\n' "$l"; grep -v '^ok ' "$l" | tail -n 60; done
        return 1
    fi
}

step "setup (tests/setup.sh)"
bash tests/setup.sh

step "autoreconf"
autoreconf -fi >/dev/null

step "build with -Werror and run every test (_build)"
rm -f _build/test-suite.log
run_check _build --enable-werror || status=1
tally _build/test-suite.log

step "AddressSanitizer + UBSan build, every test again (_build-asan)"
rm -f _build-asan/test-suite.log
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    run_check _build-asan --enable-werror --enable-asan || status=1
tally _build-asan/test-suite.log

step "8-bit cache keys (_build-tiny): collisions never give a wrong answer"
rm -f _build-tiny/test-suite.log
run_check _build-tiny --enable-werror --enable-tiny-keys \
    TESTS="tests/unit/test_cache_cache tests/integration/test_collisions.sh tests/integration/test_workload.sh" || status=1
tally _build-tiny/test-suite.log

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
step "libFuzzer targets (_build-fuzz): corpus replay, then ${FUZZ_SECONDS} s per target"
mkdir -p _build-fuzz
rm -rf _build-fuzz/fuzz-findings
if (cd _build-fuzz && "$TOP/configure" -q --enable-werror --enable-fuzzing &&
    make -j"$JOBS" >/dev/null); then
    if [ "$FUZZ_SECONDS" -gt 0 ]; then fuzz_mode=fuzz; else fuzz_mode=fuzz-replay; fi
    # An input counts as a hang after FUZZ_TIMEOUT s (10 here: under load,
    # ASan's allocator returning memory to the kernel has stalled a 45 ms
    # input past 2 s).
    (cd _build-fuzz && FUZZ_SECONDS=$FUZZ_SECONDS FUZZ_JOBS=${FUZZ_JOBS:-$JOBS} \
        FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10} \
        make "$fuzz_mode") | tee _build-fuzz/fuzz.log || status=1
    p=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' _build-fuzz/fuzz.log)
    f=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' _build-fuzz/fuzz.log)
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-1}))
    [ "${f:-1}" -eq 0 ] || status=1
else
    echo "fuzzing build failed"
    fail=$((fail + 1)); status=1
fi

step "make distcheck"
if (cd _build && make -j"$JOBS" distcheck >distcheck.log 2>&1); then
    echo "distcheck: ok"
    pass=$((pass + 1))
else
    tail -n 40 _build/distcheck.log
    fail=$((fail + 1)); status=1
fi

printf '\nmongocache: all tests ran in %d s\n' $(( $(date +%s) - START ))
printf '%d passed, %d failed, %d skipped\n' "$pass" "$fail" "$skip"
exit $status
