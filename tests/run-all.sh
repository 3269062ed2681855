#!/usr/bin/env bash
# tests/run-all.sh: set up everything and run every test, as CI does.
#
#   1. tests/setup.sh: Debian packages, FerretDB, Node and Python clients;
#      meanwhile the -Werror build (_build/) and the --enable-asan build
#      (_build-asan/) are made
#   2. `make check` in _build (unit + integration)
#   3. the same `make check` in _build-asan
#      Both run CHECK_JOBS tests at a time (default: one per core, the
#      slowest started first: most integration tests wait on timers and
#      servers, not the CPU, though FerretDB-heavy ones use a core or more:
#      test_advice 64 s of CPU in 50 s, test_failover 10 s in 37 s),
#      then the few that must run alone (ALONE and ALONE_TIMED below).
#      Meanwhile the builds of steps 4 and 5 are made at nice 19: they
#      take the CPU the tests leave idle.
#   4. a --enable-tiny-keys build (8-bit cache keys: collisions everywhere)
#      running the collision and workload tests: never a wrong answer
#   5. a --enable-fuzzing build (_build-fuzz, clang-14 + libFuzzer, ASan, UBSan):
#      every committed fuzz input replayed, then each fuzz target run for
#      FUZZ_SECONDS (default 15: CI has 20 minutes for everything), FUZZ_JOBS targets at a time
#      (default: one per core), so 7 targets x 15 s / 2 cores = 60 s here.
#      FUZZ_SECONDS=0 keeps only the replay. See tests/fuzz/README.md.
#   6. `make distcheck` (the release tarball builds and its unit tests pass),
#      made at nice 19 while step 3's tests run, waited for at the end
#
# Integration tests fail instead of skipping here (MONGOCACHE_REQUIRE_INTEGRATION=1).
# Ends with each step's time, the slowest tests of each build, then one line:
# "N passed, N failed, N skipped".
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
JOBS=$(nproc 2>/dev/null || echo 2)
START=$(date +%s)
export PATH=$PATH:/usr/local/go/bin

CHECK_JOBS=${CHECK_JOBS:-$JOBS}

# Tests that run alone, after the others of their build: their assertions
# time something the other tests' load would slow (test_resources: a fresh
# client's ping under 50 ms during each attack; sanitizer builds skip those
# bounds, so there it runs with the others).
ALONE_TIMED="tests/integration/test_resources.sh"
# Alone in every build: test_io's bench/syscalls.sh takes its ports from the
# kernel (bind to port 0, then close), from the range where other tests'
# connections take theirs at the same time (once: "nothing listens on PORT").
ALONE="tests/integration/test_io.sh"
# Started first (longest first, from CI's per-test times), so that the
# parallel run does not end on one long test; the rest follow in
# Makefile.am's order.
SLOW_FIRST="test_faults test_hardening test_advice test_advisor test_resources test_dashboard
test_persona test_cache test_admin test_redis_hostile test_shared test_ops test_metrics test_slow_log"

phases="" phase_name="" phase_t0=$START
step() {
    # Prints the step's title; records the previous step's time for the summary.
    local now
    now=$(date +%s)
    [ -z "$phase_name" ] || phases="$phases$(printf '%5d s  %s' $((now - phase_t0)) "$phase_name")
"
    phase_name=$* phase_t0=$now
    printf '\n==> %s\n' "$*"
}

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

check_tests() {
    # check_tests DIR JOBS NAME TEST...: `make -jJOBS check` of the given tests in
    # DIR; adds its counts to the totals and keeps its log as test-suite-NAME.log.
    local dir=$1 jobs=$2 name=$3 st=0; shift 3
    [ $# -gt 0 ] || return 0
    rm -f "$dir/test-suite.log"
    (cd "$dir" && MONGOCACHE_REQUIRE_INTEGRATION=1 make -j"$jobs" check TESTS="$*") || st=1
    # make died before its log (a test that did not build): one failure, not none
    [ -f "$dir/test-suite.log" ] || [ $st -eq 0 ] || fail=$((fail + 1))
    tally "$dir/test-suite.log"
    [ ! -f "$dir/test-suite.log" ] || mv -f "$dir/test-suite.log" "$dir/test-suite-$name.log"
    return $st
}

build_tree() {
    # build_tree DIR CONFIGURE-ARGS...: configure and build DIR (quietly), the
    # test programs too (`make check` with no test).
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && "$TOP/configure" -q "$@" && make -j"$JOBS" >/dev/null &&
        make -j"$JOBS" check TESTS= >/dev/null && rm -f test-suite.log)
}

run_check() {
    # run_check DIR [TESTS=...]: `make check` in DIR, built by build_tree (only the
    # given TESTS when a TESTS=... argument ends the list): CHECK_JOBS tests at a
    # time, slowest first, then $alone one at a time.
    local dir=$1 tests=${2:-} all t slow par="" one="" st=0
    rm -f "$dir"/test-suite*.log
    if [ -n "$tests" ]; then
        all=${tests#TESTS=}
    else
        all=$(cd "$dir" && make -s print-tests) || return 1
    fi
    for slow in $SLOW_FIRST; do
        for t in $all; do
            case $t in */"$slow".sh) case " $alone " in *" $t "*) ;; *) par="$par $t" ;; esac ;; esac
        done
    done
    for t in $all; do
        case " $alone " in
        *" $t "*) one="$one $t" ;;
        *) case " $par " in *" $t "*) ;; *) par="$par $t" ;; esac ;;
        esac
    done
    # shellcheck disable=SC2086 # lists of test names
    check_tests "$dir" "$CHECK_JOBS" parallel $par || st=1
    # shellcheck disable=SC2086
    check_tests "$dir" 1 alone $one || st=1
    if [ $st -ne 0 ]; then
        find "$dir/tests" -name '*.log' -exec grep -l '^not ok\|^ERROR\|^Bail out' {} + 2>/dev/null |
            while read -r l; do printf '\n---- %s\n' "$l"; grep -v '^ok ' "$l" | tail -n 60; done
        return 1
    fi
}

slowest() {
    # slowest DIR N: the N longest tests of DIR's last `make check`, in seconds
    # (from each test's .log birth to its .trs), when the file system records births.
    local dir=$1 n=$2 trs log b t
    [ -d "$dir/tests" ] || return 0
    find "$dir/tests" -name '*.trs' | while read -r trs; do
        log=${trs%.trs}.log
        b=$(stat -c %W "$log" 2>/dev/null) || continue
        [ "${b:-0}" -gt 0 ] 2>/dev/null || continue
        t=${trs#"$dir"/}
        printf '%5d s  %s\n' $(($(stat -c %Y "$trs") - b)) "${t%.trs}"
    done | sort -rn | head -n "$n"
}

step "setup (tests/setup.sh), meanwhile autoreconf and the _build and _build-asan builds"
# The builds need none of setup's tools (FerretDB, toxiproxy, Node, Python, Java),
# only its Debian packages: a build that fails while setup runs (packages
# missing on a new machine) is made again once setup is done.
bash tests/setup.sh >setup.log 2>&1 &
setup_pid=$!
built=0 built_asan=0
if autoreconf -fi >/dev/null 2>&1; then
    build_tree _build --enable-werror >build.log 2>&1 && built=1
    build_tree _build-asan --enable-werror --enable-asan >build-asan.log 2>&1 && built_asan=1
fi
setup_st=0
wait "$setup_pid" || setup_st=$?
cat setup.log
[ "$setup_st" -eq 0 ] || { echo "tests/setup.sh failed (status $setup_st)"; exit "$setup_st"; }
if [ $built -eq 0 ] || [ $built_asan -eq 0 ]; then
    echo "building again now that setup is done"
    autoreconf -fi >/dev/null
    build_tree _build --enable-werror && built=1
    build_tree _build-asan --enable-werror --enable-asan && built_asan=1
fi
rm -f setup.log build.log build-asan.log

# The builds of steps 4 and 5 are made meanwhile, at the lowest priority:
# the test steps leave part of the two cores idle (their tests wait on timers
# and servers), and a niced compiler takes mostly that (a woken test process
# preempts it). Measured: those steps 66 + 123 s -> 30 + 87 s, _build's tests
# about 25 s longer.
bg() {
    # bg LOG COMMAND...: COMMAND (a function too) at nice 19 in the background.
    local log=$1; shift
    (renice -n 19 -p "$BASHPID" >/dev/null && "$@") >"$log" 2>&1 &
}
build_fuzz() {
    mkdir -p _build-fuzz && cd _build-fuzz &&
        "$TOP/configure" -q --enable-werror --enable-fuzzing && make -j"$JOBS" >/dev/null
}
bg build-tiny.log build_tree _build-tiny --enable-werror --enable-tiny-keys
tiny_pid=$!
bg build-fuzz.log build_fuzz
fuzz_pid=$!

step "-Werror build: every test (_build)"
if [ $built -eq 1 ]; then
    alone="$ALONE $ALONE_TIMED" run_check _build || status=1
else
    echo "the -Werror build failed"; fail=$((fail + 1)); status=1
fi

step "AddressSanitizer + UBSan build, every test again (_build-asan)"
# The release tarball is built and checked meanwhile, at the lowest priority
# (step 6 only waits for it): its compiler takes the CPU these tests leave.
distcheck() {
    cd _build && make -j"$JOBS" distcheck >distcheck.log 2>&1
}
if [ $built -eq 1 ]; then
    bg distcheck.out distcheck
    distcheck_pid=$!
else
    distcheck_pid=""
fi
if [ $built_asan -eq 1 ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 alone=$ALONE \
        run_check _build-asan || status=1
else
    echo "the ASan build failed"; fail=$((fail + 1)); status=1
fi

step "8-bit cache keys (_build-tiny): collisions never give a wrong answer"
tiny_st=0
wait "$tiny_pid" || tiny_st=$?
cat build-tiny.log
rm -f build-tiny.log
if [ "$tiny_st" -eq 0 ]; then
    alone="" run_check _build-tiny \
        TESTS="tests/unit/test_cache_cache tests/integration/test_collisions.sh tests/integration/test_workload.sh" ||
        status=1
else
    echo "the tiny-keys build failed"; fail=$((fail + 1)); status=1
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-15}
step "libFuzzer targets (_build-fuzz): corpus replay, then ${FUZZ_SECONDS} s per target"
fuzz_st=0
wait "$fuzz_pid" || fuzz_st=$?
cat build-fuzz.log
rm -f build-fuzz.log
rm -rf _build-fuzz/fuzz-findings
if [ "$fuzz_st" -eq 0 ]; then
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

step "make distcheck (made during step 3)"
if [ -n "$distcheck_pid" ] && wait "$distcheck_pid"; then
    echo "distcheck: ok"
    pass=$((pass + 1))
else
    cat distcheck.out
    tail -n 40 _build/distcheck.log 2>/dev/null
    fail=$((fail + 1)); status=1
fi
rm -f distcheck.out

step "done"
printf '\nTime per step:\n%s' "$phases"
for d in _build _build-asan; do
    printf '\nThe slowest tests of %s:\n' "$d"
    slowest "$d" 10
done
# The failures again, last, where a truncated log still shows them: each failed
# check's name, then the lines its test printed around it.
if [ "$fail" -gt 0 ]; then
    printf '\nThe failed checks:\n'
    for d in _build _build-asan _build-tiny; do
        [ -d "$d" ] || continue
        grep -h '^FAIL:\|^ERROR:' "$d"/test-suite-*.log 2>/dev/null | sed "s|^|  $d: |"
        find "$d/tests" -name '*.log' -exec grep -l '^not ok\|^ERROR\|^Bail out' {} + 2>/dev/null |
            while read -r l; do
                printf '  ---- %s\n' "$l"
                grep -B3 -A12 '^not ok\|^Bail out' "$l" | head -n 40 | sed 's/^/    /'
            done
    done
    grep -h 'FAIL' _build-fuzz/fuzz.log 2>/dev/null | sed 's/^/  _build-fuzz: /'
fi
printf '\nmongocache: all tests ran in %d s\n' $(( $(date +%s) - START ))
printf '%d passed, %d failed, %d skipped\n' "$pass" "$fail" "$skip"
exit $status
