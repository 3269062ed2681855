# bench/ab_lib.sh: the processes of an A/B benchmark (advice_ab.sh,
# metrics_ab.sh, redis_mac_ab.sh), sourced by them: started on SUT_CPU with their output in
# $OUT/logs/NAME.log, waited for on their port, and stopped at exit (TERM,
# then KILL). The caller sets SUT_CPU and OUT, or has ab_prepare set them.

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    local i
    for i in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "${0##*/}: nothing listens on $1" >&2
    return 1
}
start() { # NAME PORT CMD...
    local name=$1 port=$2
    shift 2
    taskset -c "$SUT_CPU" "$@" >"$OUT/logs/$name.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$port"
}

# ab_prepare NAME: the settings and build every A/B script here shares: the
# CPUs, the results directory ($OUT, or a new mongocache-NAME.XXXXXX), and
# _build-bench (configured -O2 -g once, rebuilt), giving BIN and MCLOAD.
ab_prepare() {
    LOADGEN_CPU=${LOADGEN_CPU:-1}
    SUT_CPU=${SUT_CPU:-0}
    KEYS=1000
    OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mongocache-$1.XXXXXX")}
    mkdir -p "$OUT/logs"
    echo "# results in $OUT" >&2
    [ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null 2>&1)
    mkdir -p "$top/_build-bench"
    if [ ! -f "$top/_build-bench/Makefile" ]; then
        (cd "$top/_build-bench" && "$top/configure" -q --disable-asan CFLAGS="-O2 -g") >&2
    fi
    (cd "$top/_build-bench" && make -j2 mongocache bench/mcload >/dev/null)
    BIN=$top/_build-bench/mongocache
    MCLOAD=$top/_build-bench/bench/mcload
}

# ab_callgrind MODE FLAGS...: one proxy (BIN, FLAGS) under callgrind against
# the upstream on $UP: every key read once first (uncounted), then CG_REQS
# requests counted; the program's total instructions written to
# $OUT/cg-MODE.total.
ab_callgrind() {
    local mode=$1 p h cg dump
    shift
    p=$(free_port)
    h=$(free_port)
    taskset -c "$SUT_CPU" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind-$mode.out" "$BIN" --listen "127.0.0.1:$p" \
        --upstream "mongodb://127.0.0.1:$UP" --http-listen "127.0.0.1:$h" --log-level warn \
        "$@" >"$OUT/logs/callgrind-$mode.log" 2>&1 &
    cg=$!
    PIDS+=("$cg")
    wait_port "$p"
    sleep 1
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "$p" -c 1 -n "$KEYS" --warmup "$KEYS" \
        --keys "$KEYS" --size "$SIZE" --seconds 120 >/dev/null
    callgrind_control -i on "$cg" >/dev/null
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "$p" -c 1 -n "$CG_REQS" --warmup 0 \
        --keys "$KEYS" --size "$SIZE" --seconds 120 >/dev/null
    callgrind_control -i off "$cg" >/dev/null
    callgrind_control -d "$cg" >/dev/null
    sleep 1
    kill -TERM "$cg" 2>/dev/null || true
    wait "$cg" 2>/dev/null || true
    dump=$(ls "$OUT"/callgrind-"$mode".out.* | head -n 1)
    callgrind_annotate "$dump" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' |
        tr -d , >"$OUT/cg-$mode.total"
}

# ab_start_variant V FLAGS...: a proxy named V (BIN with FLAGS, against the
# upstream on $UP; PORT[V], HTTP[V], PID[V] set: the caller declares them
# with declare -A), primed: every key read twice, so hits from then on where
# the cache is on. ab_stop_variant V stops it.
ab_start_variant() {
    local v=$1
    shift
    PORT[$v]=$(free_port)
    HTTP[$v]=$(free_port)
    start "$v" "${PORT[$v]}" "$BIN" --listen "127.0.0.1:${PORT[$v]}" \
        --upstream "mongodb://127.0.0.1:$UP" --http-listen "127.0.0.1:${HTTP[$v]}" \
        --log-level warn --cache-ttl 1h "$@"
    PID[$v]=${PIDS[-1]}
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$v]}" -c 1 -n "$KEYS" --warmup "$KEYS" \
        --keys "$KEYS" --size "$SIZE" --seconds 60 >/dev/null
}
ab_stop_variant() {
    local p=${PID[$1]} keep=() q
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
}
# Clock ticks of user and system CPU process PID has used.
ab_cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
