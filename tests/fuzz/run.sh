#!/usr/bin/env bash
# tests/fuzz/run.sh: runs the libFuzzer targets of a --enable-fuzzing build.
# Called by `make fuzz` and `make fuzz-replay` in the build directory:
#
#   run.sh replay TARGET...   every committed input of each target, once (seconds)
#   run.sh fuzz TARGET...     the replay, then FUZZ_SECONDS of fuzzing per target
#
# TARGET is a fuzz binary (tests/fuzz/fuzz_<name>); its seeds and regression
# inputs are $srcdir/tests/fuzz/corpus/<name>/ (read only), what it finds
# goes to $FUZZ_WORK/<name>/ (new coverage) and $FUZZ_FINDINGS/<name>/
# (crash-*, leak-*, timeout-*, oom-* inputs, and <name>.log).
#
# Environment (all optional):
#   FUZZ_SECONDS   fuzzing time per target (default 60)
#   FUZZ_JOBS      targets run at once (default 1)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 2)
#   FUZZ_RSS_MB    memory limit of one target, MB (default 2048)
#   FUZZ_WORK, FUZZ_FINDINGS   directories (default fuzz-work, fuzz-findings here)
#   FUZZ_ARGS      more libFuzzer flags, e.g. "-use_value_profile=1"
#   srcdir         the source tree (set by make)
#
# Exit status 0 only when no target crashed, leaked, hung or ran out of
# memory. Ends with "fuzz: N passed, N failed" (one per target).
set -u

mode=${1:-}
shift || true
case "$mode" in
replay | fuzz) ;;
*)
    echo "usage: run.sh replay|fuzz TARGET..." >&2
    exit 2
    ;;
esac
[ $# -gt 0 ] || { echo "run.sh: no target given" >&2; exit 2; }

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=$(cd "$srcdir" && pwd)
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
timeout=${FUZZ_TIMEOUT:-2}
rss=${FUZZ_RSS_MB:-2048}
work=${FUZZ_WORK:-$PWD/fuzz-work}
findings=${FUZZ_FINDINGS:-$PWD/fuzz-findings}
mkdir -p "$work" "$findings"
work=$(cd "$work" && pwd)
findings=$(cd "$findings" && pwd)

# Undefined behaviour and leaks are failures; ASan's report ends the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The dictionary of a target: the wire one, or the config one with every
# option name of conf/options.def (generated, so it never goes stale).
dict_for() {
    local name=$1 out=$work/$1.dict
    case "$name" in
    conf_file)
        {
            cat "$srcdir/tests/fuzz/conf.dict"
            sed -n 's/^CONF_OPT(\([a-z0-9_]*\),.*/"\1"/p' "$srcdir/conf/options.def"
        } >"$out"
        ;;
    *) cp "$srcdir/tests/fuzz/wire.dict" "$out" ;;
    esac
    echo "$out"
}

max_len_for() {
    case "$1" in
    conf_file) echo 4096 ;;
    *) echo 16384 ;;
    esac
}

# run_one BINARY: replay (and fuzz) one target; writes its verdict to $work/<name>.verdict.
run_one() {
    local bin=$1 name corpus log rc dict
    name=$(basename "$bin")
    name=${name#fuzz_}
    corpus=$srcdir/tests/fuzz/corpus/$name
    log=$findings/$name.log
    mkdir -p "$work/$name" "$findings/$name"
    if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus")" ]; then
        echo "FAIL $name no corpus in $corpus" >"$work/$name.verdict"
        return
    fi
    dict=$(dict_for "$name")
    # Replay: each committed input once (seeds and regression inputs).
    "$bin" -runs=0 -timeout="$timeout" -rss_limit_mb="$rss" \
        -artifact_prefix="$findings/$name/" "$corpus" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || [ "$mode" = replay ]; then
        if [ $rc -eq 0 ]; then
            echo "PASS $name replay $(ls "$corpus" | wc -l) inputs" >"$work/$name.verdict"
        else
            echo "FAIL $name replay of the committed corpus (rc $rc)" >"$work/$name.verdict"
        fi
        return
    fi
    # Fuzz: new coverage goes to $work/<name> (first directory), seeds are read from the tree.
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss" \
        -max_len="$(max_len_for "$name")" -dict="$dict" -print_final_stats=1 \
        -artifact_prefix="$findings/$name/" ${FUZZ_ARGS:-} \
        "$work/$name" "$corpus" >>"$log" 2>&1
    rc=$?
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -n1)
    if [ $rc -eq 0 ]; then
        echo "PASS $name ${seconds}s execs=${execs:-?} $cov" >"$work/$name.verdict"
    else
        echo "FAIL $name rc=$rc execs=${execs:-?} $cov" >"$work/$name.verdict"
    fi
}

start=$(date +%s)
running=0
for bin in "$@"; do
    [ -x "$bin" ] || { echo "run.sh: $bin is not built" >&2; exit 2; }
    rm -f "$work/$(basename "$bin" | sed 's/^fuzz_//').verdict"
    run_one "$bin" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

pass=0 fail=0
for bin in "$@"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    verdict=$(cat "$work/$name.verdict" 2>/dev/null || echo "FAIL $name no verdict")
    echo "$verdict"
    case "$verdict" in
    PASS*) pass=$((pass + 1)) ;;
    *)
        fail=$((fail + 1))
        # What went wrong, and the inputs to reproduce it with.
        grep -m1 -B2 -A25 'ERROR: \|runtime error\|property failed\|ALARM\|out-of-memory' \
            "$findings/$name.log" 2>/dev/null | head -n 40 | sed 's/^/    /'
        for f in "$findings/$name"/*; do
            [ -f "$f" ] && echo "    finding: $f (reproduce: $bin $f)"
        done
        ;;
    esac
done
echo "fuzz: $mode of $# targets in $(($(date +%s) - start)) s; logs in $findings"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
