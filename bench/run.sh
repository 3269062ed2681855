#!/usr/bin/env bash
# bench/run.sh: mongocache's benchmark, every scenario and anchor side by side
# in one run (see bench/README.md).
#
#   bench/run.sh            full run: 5 repetitions, ~2 s per measurement
#   bench/run.sh --quick    smoke run: 2 short repetitions (under 3 minutes)
#
# Options:
#   --reps N          repetitions (default 5, quick 2)
#   --seconds S       time cap of each measurement (default 2, quick 0.6)
#   --out DIR         keep results.jsonl, summary.md and logs there
#                     (default: a new directory under ${TMPDIR:-/tmp})
#   --no-build        use the binaries as they are (MONGOCACHE, MCLOAD)
#   --no-syscalls     skip the strace pass (syscalls per request)
#   --no-ferretdb     skip S5 with FerretDB even when .tools/bin/ferretdb exists
# Environment:
#   MONGOCACHE, MCLOAD  binaries to use (default: built in BENCH_BUILD_DIR)
#   BENCH_BUILD_DIR     out-of-tree build directory (default: <top>/_build-bench,
#                       configured without ASan, -O2)
#   LOADGEN_CPU, SUT_CPU  CPUs for the load generators and for the systems
#                       under test (default 1 and 0)
#   S4_ARGS             mongocache flags for S4 (Redis tier only); REDIS_URL in
#                       them is replaced by the Redis address (default:
#                       "--redis REDIS_URL --cache-memory 0 --cache-key-secret bench")
#
# Everything listens on 127.0.0.1, every process runs under `timeout`, every
# measurement has a request count and a time cap, and warm-ups are excluded.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

QUICK=0
REPS=""
SECONDS_CAP=""
OUT=""
BUILD=1
SYSCALLS=1
FERRET=1
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --seconds) SECONDS_CAP=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-syscalls) SYSCALLS=0 ;;
    --no-ferretdb) FERRET=0 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-2}
    SECONDS_CAP=${SECONDS_CAP:-0.6}
    N_C1=20000 N_C50=100000 N_OPEN=3000 N_DELAY=1500
    RB_N_C1=4000 RB_N_C50=30000
    OPEN_RATE=5000
else
    REPS=${REPS:-5}
    SECONDS_CAP=${SECONDS_CAP:-2}
    N_C1=100000 N_C50=400000 N_OPEN=10000 N_DELAY=5000
    RB_N_C1=14000 RB_N_C50=120000
    OPEN_RATE=5000
fi
LOADGEN_CPU=${LOADGEN_CPU:-1}
SUT_CPU=${SUT_CPU:-0}
SIZES="256 4096"
CONNS="1 50"
KEYS=1000
FERRET_KEYS=100
CAP=1800 # seconds: the most any background process may live

for tool in timeout taskset python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool is required" >&2; exit 2; }
done

# ---- build ------------------------------------------------------------------
BUILD_DIR=${BENCH_BUILD_DIR:-$top/_build-bench}
if [ -z "${MONGOCACHE:-}" ] || [ -z "${MCLOAD:-}" ]; then
    if [ "$BUILD" = 1 ]; then
        echo "# building mongocache and bench/mcload in $BUILD_DIR" >&2
        if [ ! -x "$top/configure" ]; then
            (cd "$top" && autoreconf -fi) >&2
        fi
        mkdir -p "$BUILD_DIR"
        if [ ! -f "$BUILD_DIR/Makefile" ]; then
            (cd "$BUILD_DIR" && "$top/configure" -q --disable-asan CFLAGS="-O2 -g") >&2
        fi
        (cd "$BUILD_DIR" && make -j2 mongocache >/dev/null) ||
            { echo "run.sh: building mongocache failed (make -C $BUILD_DIR mongocache)" >&2; exit 2; }
        if grep -q '^bench/mcload\$(EXEEXT):' "$BUILD_DIR/Makefile" 2>/dev/null; then
            (cd "$BUILD_DIR" && make -j2 bench/mcload >/dev/null) ||
                { echo "run.sh: building bench/mcload failed" >&2; exit 2; }
        else
            # the Makefile does not know mcload (yet): compile it directly
            mkdir -p "$BUILD_DIR/bench"
            # shellcheck disable=SC2046
            cc -O2 -g -std=c11 -D_GNU_SOURCE $(pkg-config --cflags libbson-1.0) \
                "$here/mcload.c" -o "$BUILD_DIR/bench/mcload" $(pkg-config --libs libbson-1.0)
        fi
    fi
    MONGOCACHE=${MONGOCACHE:-$BUILD_DIR/mongocache}
    MCLOAD=${MCLOAD:-$BUILD_DIR/bench/mcload}
fi
[ -x "$MONGOCACHE" ] || { echo "run.sh: no mongocache binary at $MONGOCACHE" >&2; exit 2; }
[ -x "$MCLOAD" ] || { echo "run.sh: no mcload binary at $MCLOAD" >&2; exit 2; }

if [ -z "$OUT" ]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/mongocache-bench.XXXXXX")
else
    mkdir -p "$OUT"
fi
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
mkdir -p "$OUT/logs"
echo "# results in $OUT" >&2

# ---- processes ----------------------------------------------------------------
TPIDS=()
cleanup() {
    local p i
    for p in "${TPIDS[@]:-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for i in $(seq 1 30); do
        local alive=0
        for p in "${TPIDS[@]:-}"; do
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${TPIDS[@]:-}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=" "
free_port() {
    local port i
    for i in $(seq 1 200); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        case $USED_PORTS in *" $port "*) continue ;; esac
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
        if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htan "sport = :$port" 2>/dev/null)" ]; then
            continue
        fi
        USED_PORTS="$USED_PORTS$port "
        echo "$port"
        return 0
    done
    echo "run.sh: no free port" >&2
    return 1
}

wait_port() { # PORT TPID SECONDS
    local i
    for i in $(seq 1 $(($3 * 20))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start NAME PORT CMD...: runs CMD on the SUT CPU under timeout, waits for
# PORT; sets SPID (the process itself, for /proc and strace). Returns 1 when
# it does not come up.
start() {
    local name=$1 port=$2 tpid i
    shift 2
    timeout "$CAP" taskset -c "$SUT_CPU" "$@" >"$OUT/logs/$name.log" 2>&1 &
    tpid=$!
    TPIDS+=("$tpid")
    if ! wait_port "$port" "$tpid" 30; then
        echo "# $name did not come up on 127.0.0.1:$port; last lines of its log:" >&2
        tail -n 5 "$OUT/logs/$name.log" | sed 's/^/#   /' >&2
        return 1
    fi
    SPID=""
    for i in $(seq 1 20); do
        SPID=$(pgrep -P "$tpid" | head -n 1 || true)
        [ -n "$SPID" ] && break
        sleep 0.05
    done
    [ -n "$SPID" ] || SPID=$tpid
    return 0
}

cpu_ticks() { # PID: utime + stime, in clock ticks
    local p=$1
    [ -n "$p" ] && [ -r "/proc/$p/stat" ] || { echo 0; return; }
    # fields after the "(comm)" part: utime is 12th, stime 13th
    sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'
}
CLK_TCK=$(getconf CLK_TCK)

declare -A PORT SPIDS STATS
start_mongocache() { # NAME UPSTREAM_PORT EXTRA_ARGS...
    local name=$1 up=$2 port http
    shift 2
    port=$(free_port)
    http=$(free_port)
    start "$name" "$port" "$MONGOCACHE" --listen "127.0.0.1:$port" \
        --upstream "mongodb://127.0.0.1:$up" --http-listen "127.0.0.1:$http" \
        --log-level warn --cache-ttl 1h "$@" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    STATS[$name]=http://127.0.0.1:$http/stats
}

start_canned() { # NAME SIZE EXTRA_ARGS...
    local name=$1 size=$2 port
    shift 2
    port=$(free_port)
    start "$name" "$port" "$MCLOAD" --server --port "$port" --size "$size" "$@" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
}

start_redis() { # NAME SIZE: populated with keys 0..999 of SIZE bytes
    local name=$1 size=$2 port
    port=$(free_port)
    mkdir -p "$OUT/logs/$name.dir"
    start "$name" "$port" redis-server --bind 127.0.0.1 --port "$port" --save '' \
        --appendonly no --daemonize no --dir "$OUT/logs/$name.dir" --protected-mode yes || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    if [ "$size" != 0 ]; then
        timeout 60 taskset -c "$LOADGEN_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -t set \
            -r "$KEYS" -n $((KEYS * 25)) -d "$size" -c 10 -q >/dev/null 2>&1 || return 1
    fi
}

# s4_serves_hits NAME SIZE: reads every key twice through NAME, then true
# when its /stats shows hits (cache.hits or a redis_hits counter).
s4_serves_hits() {
    timeout 120 taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$1]}" -c 1 -n "$KEYS" \
        --warmup "$KEYS" --keys "$KEYS" --size "$2" --seconds 60 >/dev/null 2>>"$OUT/logs/mcload.err" ||
        return 1
    python3 - "${STATS[$1]}" <<'EOF2'
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
def hits(d):
    n = 0
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "redis_hits" and isinstance(v, (int, float)):
                n += v
            elif isinstance(v, dict) and k != "namespaces":
                n += hits(v)
    return n
sys.exit(0 if stats.get("cache", {}).get("hits", 0) + hits(stats) > 0 else 1)
EOF2
}

# ---- one measurement -------------------------------------------------------------
# record REP GROUP SCENARIO PID JSON: appends the line with rep, group, the
# SUT's CPU microseconds per request.
record() {
    local rep=$1 group=$2 scen=$3 json=$4 cpu_us=$5 extra=${6:-}
    json=${json%\}}
    echo "$json, \"rep\": $rep, \"group\": \"$group\", \"sut_cpu_us\": $cpu_us$extra}" >>"$RESULTS"
}

failed() { # REP GROUP SCENARIO WHY
    echo "# $3 in $2 (rep $1) failed: $4" >&2
    echo "{\"scenario\": \"$3\", \"group\": \"$2\", \"rep\": $1, \"failed\": true, \"why\": \"$4\"}" >>"$RESULTS"
}

# mcload_run REP GROUP SCENARIO TARGET SIZE C N [MCLOAD ARGS...]
# TARGET names a started process (its port; its PID is the SUT whose CPU is counted).
mcload_run() {
    local rep=$1 group=$2 scen=$3 target=$4 size=$5 c=$6 n=$7 json t0 t1 total cpu
    shift 7
    local stats=()
    [ -n "${STATS[$target]:-}" ] && stats=(--stats-url "${STATS[$target]}")
    t0=$(cpu_ticks "${SPIDS[$target]}")
    if ! json=$(timeout 120 taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$target]}" \
        -c "$c" -n "$n" --seconds "$SECONDS_CAP" --warmup-seconds 20 --keys "$KEYS" \
        --size "$size" --scenario "$scen" "${stats[@]}" "$@" 2>>"$OUT/logs/mcload.err"); then
        failed "$rep" "$group" "$scen" "mcload exited with an error (logs/mcload.err)"
        return 0
    fi
    t1=$(cpu_ticks "${SPIDS[$target]}")
    total=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json")
    cpu=$(awk -v a="$t0" -v b="$t1" -v n="$total" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
    record "$rep" "$group" "$scen" "$json" "$cpu"
}

# redis_run REP GROUP TARGET SIZE C N
redis_run() {
    local rep=$1 group=$2 target=$3 size=$4 c=$5 n=$6 out t0 t1 json
    t0=$(cpu_ticks "${SPIDS[$target]}")
    if ! out=$(timeout 120 taskset -c "$LOADGEN_CPU" redis-benchmark -h 127.0.0.1 \
        -p "${PORT[$target]}" -t get -r "$KEYS" -d "$size" -c "$c" -n "$n" --csv 2>>"$OUT/logs/redis-benchmark.err"); then
        failed "$rep" "$group" A1 "redis-benchmark exited with an error"
        return 0
    fi
    t1=$(cpu_ticks "${SPIDS[$target]}")
    json=$(python3 - "$out" "$size" "$c" "$n" "$t0" "$t1" "$CLK_TCK" <<'EOF'
import csv, io, json, sys
out, size, c, n, t0, t1, hz = sys.argv[1:]
rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] == "GET"]
if not rows:
    sys.exit(1)
r = rows[-1]
rps = float(r[1])
print(json.dumps({"scenario": "A1", "size": int(size), "connections": int(c), "mode": "closed",
                  "rate": 0, "n": int(n), "seconds": round(int(n) / rps, 3), "rps": round(rps),
                  "p50": float(r[4]) * 1000, "p99": float(r[6]) * 1000, "p999": None,
                  "max": float(r[7]) * 1000, "errors": 0, "hit_ratio": None,
                  "sut_cpu_us": round((int(t1) - int(t0)) * 1e6 / int(hz) / int(n), 1)}))
EOF
    ) || { failed "$rep" "$group" A1 "could not read redis-benchmark's CSV"; return 0; }
    json=${json%\}}
    echo "$json, \"rep\": $rep, \"group\": \"$group\"}" >>"$RESULTS"
}

# ---- start everything ---------------------------------------------------------------
S4_ON=0
REDIS_FLAG=""
# The help is read whole first: `--help | grep -q` would end the help with
# SIGPIPE once it outgrew a pipe write, and pipefail would then say "no".
HELP_TEXT=$("$MONGOCACHE" --help 2>/dev/null || true)
if grep -q -- --redis <<<"$HELP_TEXT"; then
    S4_ON=1
    REDIS_FLAG=$(grep -m 1 -o -- '--redis[a-z-]*' <<<"$HELP_TEXT")
fi

echo "# starting servers (SUT on CPU $SUT_CPU, load generators on CPU $LOADGEN_CPU)" >&2
for s in $SIZES; do
    start_canned "A0-$s" "$s" --raw
    start_canned "up-$s" "$s"
    start_mongocache "mc-off-$s" "${PORT[up-$s]}" --cache false
    start_mongocache "mc-on-$s" "${PORT[up-$s]}"
    start_redis "redis-$s" "$s"
    if [ "$S4_ON" = 1 ]; then
        start_redis "redis-s4-$s" 0
        s4_args=${S4_ARGS:-"$REDIS_FLAG REDIS_URL --cache-memory 0 --cache-key-secret bench"}
        s4_args=${s4_args//REDIS_URL/redis://127.0.0.1:${PORT[redis-s4-$s]}}
        # shellcheck disable=SC2086
        if ! start_mongocache "mc-redis-$s" "${PORT[up-$s]}" $s4_args; then
            echo "# S4 skipped for size $s: mongocache did not start with: $s4_args" >&2
        elif ! s4_serves_hits "mc-redis-$s" "$s"; then
            echo "# S4 skipped for size $s: with $s4_args mongocache served no hit" \
                "after every key was read twice (Redis tier not active?)" >&2
            unset "PORT[mc-redis-$s]"
        fi
    fi
done
if [ "$S4_ON" = 0 ]; then
    echo "# S4 skipped: this mongocache has no --redis option (Redis tier not built yet)" >&2
fi
for d in 150 1000; do
    start_canned "up-d$d" 256 --delay-us "$d"
    start_mongocache "mc-on-d$d" "${PORT[up-d$d]}"
done
FERRETDB=$top/.tools/bin/ferretdb
FERRET_ON=0
if [ "$FERRET" = 1 ] && [ -x "$FERRETDB" ]; then
    fport=$(free_port)
    mkdir -p "$OUT/logs/ferretdb/data"
    if start ferretdb "$fport" "$FERRETDB" --handler=sqlite --sqlite-url="file:$OUT/logs/ferretdb/data/" \
        --state-dir="$OUT/logs/ferretdb" --listen-addr="127.0.0.1:$fport" --telemetry=disable \
        --debug-addr=- --log-level=WARN; then
        PORT[ferretdb]=$fport
        SPIDS[ferretdb]=$SPID
        FERRET_ON=1
        for s in $SIZES; do
            timeout 120 taskset -c "$LOADGEN_CPU" "$MCLOAD" --populate --port "$fport" \
                --coll "items$s" --size "$s" --keys "$KEYS" >/dev/null 2>>"$OUT/logs/mcload.err" ||
                { FERRET_ON=0; echo "# S5 with FerretDB skipped: populating it failed" >&2; }
        done
        start_mongocache mc-on-ferret "$fport"
    else
        echo "# S5 with FerretDB skipped: FerretDB did not start" >&2
    fi
else
    echo "# S5 with FerretDB skipped: no $FERRETDB (run tests/setup.sh)" >&2
fi

# ---- the plan: groups of scenarios, run side by side ------------------------------
# Each group is one cell of the matrix; its scenarios run back to back. Both
# the group order and the order inside each group rotate every repetition.
n_for() { [ "$1" = 1 ] && echo "$N_C1" || echo "$N_C50"; }
rb_n_for() { [ "$1" = 1 ] && echo "$RB_N_C1" || echo "$RB_N_C50"; }

GROUPS_LIST=()
for s in $SIZES; do
    for c in $CONNS; do
        GROUPS_LIST+=("w1:$s:$c")
    done
done
GROUPS_LIST+=("open:256:16" "delay:150" "delay:1000")
[ "$FERRET_ON" = 1 ] && for s in $SIZES; do GROUPS_LIST+=("ferret:$s"); done

run_scenario() { # REP GROUP SCENARIO
    local rep=$1 group=$2 scen=$3 kind s c d n
    IFS=: read -r kind s c <<<"$group"
    case $kind in
    w1)
        n=$(n_for "$c")
        case $scen in
        A0) mcload_run "$rep" "$group" A0 "A0-$s" "$s" "$c" "$n" ;;
        A1) redis_run "$rep" "$group" "redis-$s" "$s" "$c" "$(rb_n_for "$c")" ;;
        S1) mcload_run "$rep" "$group" S1 "up-$s" "$s" "$c" "$n" ;;
        S2) mcload_run "$rep" "$group" S2 "mc-off-$s" "$s" "$c" "$n" ;;
        S3) mcload_run "$rep" "$group" S3 "mc-on-$s" "$s" "$c" "$n" ;;
        S4) mcload_run "$rep" "$group" S4 "mc-redis-$s" "$s" "$c" "$n" ;;
        esac
        ;;
    open)
        local o=(--mode open --rate "$OPEN_RATE")
        case $scen in
        A0) mcload_run "$rep" "$group" A0 "A0-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S1) mcload_run "$rep" "$group" S1 "up-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S2) mcload_run "$rep" "$group" S2 "mc-off-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S3) mcload_run "$rep" "$group" S3 "mc-on-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        esac
        ;;
    delay)
        d=$s
        case $scen in
        S1) mcload_run "$rep" "$group" S1 "up-d$d" 256 1 "$N_DELAY" --warmup 200 ;;
        S3) mcload_run "$rep" "$group" S3 "mc-on-d$d" 256 1 "$N_DELAY" ;;
        esac
        ;;
    ferret)
        case $scen in
        # FerretDB (SQLite) takes milliseconds per find: reads cycle over
        # the first FERRET_KEYS of the 1,000 documents, to bound the warm-up.
        S1) mcload_run "$rep" "$group" S1 ferretdb "$s" 1 "$N_DELAY" --coll "items$s" \
            --keys "$FERRET_KEYS" --warmup 20 ;;
        S3) mcload_run "$rep" "$group" S3 mc-on-ferret "$s" 1 "$N_DELAY" --coll "items$s" \
            --keys "$FERRET_KEYS" --warmup $((FERRET_KEYS * 2)) ;;
        esac
        ;;
    esac
}

scenarios_of() { # GROUP
    case $1 in
    w1:*:*)
        local s=${1#w1:}
        s=${s%%:*}
        if [ -n "${PORT[mc-redis-$s]:-}" ]; then echo "A0 A1 S1 S2 S3 S4"; else echo "A0 A1 S1 S2 S3"; fi
        ;;
    open:*) echo "A0 S1 S2 S3" ;;
    *) echo "S1 S3" ;;
    esac
}

rotate() { # K WORDS...: the words rotated left by K
    local k=$1
    shift
    local a=("$@") n=$# i
    for ((i = 0; i < n; i++)); do
        printf '%s ' "${a[$(((i + k) % n))]}"
    done
}

start_s=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ng=${#GROUPS_LIST[@]}
for ((rep = 1; rep <= REPS; rep++)); do
    echo "# repetition $rep of $REPS ($(($(date +%s) - start_s)) s)" >&2
    # shellcheck disable=SC2207
    order=($(rotate $(((rep - 1) * ((ng + REPS - 1) / REPS))) "${GROUPS_LIST[@]}"))
    for group in "${order[@]}"; do
        # shellcheck disable=SC2207
        scen=($(scenarios_of "$group"))
        for sc in $(rotate $((rep - 1)) "${scen[@]}"); do
            run_scenario "$rep" "$group" "$sc"
        done
    done
done

# ---- syscalls per request (a separate short run under strace) ------------------------
if [ "$SYSCALLS" = 1 ] && command -v strace >/dev/null 2>&1; then
    echo "# syscalls per request (strace -c -f, size 256, C=1)" >&2
    for pair in "A0:A0-256" "S1:up-256" "S2:mc-off-256" "S3:mc-on-256" "A1:redis-256" \
        ${PORT[mc-redis-256]:+"S4:mc-redis-256"}; do
        sname=${pair%%:*}
        target=${pair#*:}
        pid=${SPIDS[$target]}
        sfile=$OUT/logs/strace-$sname.txt
        timeout 60 strace -c -f -p "$pid" -o "$sfile" 2>/dev/null &
        spid=$!
        sleep 0.5
        if [ "$sname" = A1 ]; then
            nreq=3000
            timeout 60 taskset -c "$LOADGEN_CPU" redis-benchmark -h 127.0.0.1 -p "${PORT[$target]}" \
                -t get -r "$KEYS" -d 256 -c 1 -n "$nreq" -q >/dev/null 2>&1 || true
        else
            json=$(timeout 60 taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$target]}" -c 1 \
                -n 3000 --warmup 1000 --seconds 20 --keys "$KEYS" --size 256 \
                --scenario "$sname" 2>>"$OUT/logs/mcload.err" || true)
            nreq=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json" 2>/dev/null || echo 0)
        fi
        sleep 0.3
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        python3 - "$sfile" "$sname" "$nreq" >>"$RESULTS" <<'EOF' || true
import json, sys
path, scen, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        try:
            calls[f[-1]] = int(f[3])
        except ValueError:
            pass
if n > 0 and calls:
    per = {k: round(v / n, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v / n >= 0.01}
    print(json.dumps({"syscalls": scen, "requests": n, "per_request": round(sum(calls.values()) / n, 2),
                      "by_call": per}))
EOF
    done
fi

# ---- summary ---------------------------------------------------------------------------------
MACHINE="$(nproc) CPUs; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 - "$RESULTS" "$REPS" "$QUICK" "$S4_ON" "$OUT/summary.md" "$MACHINE" <<'EOF'
import json, statistics, sys
from collections import defaultdict

path, reps, quick, s4_on, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5]
machine = sys.argv[6]
runs, sysc, failures = [], [], []
for line in open(path):
    d = json.loads(line)
    if "syscalls" in d:
        sysc.append(d)
    elif d.get("failed"):
        failures.append(d)
    else:
        runs.append(d)

by = defaultdict(dict)  # (group, scenario) -> rep -> run
for r in runs:
    by[(r["group"], r["scenario"])][r["rep"]] = r
s4_flag = s4_on
s4_on = any(r["scenario"] == "S4" for r in runs)

lines = []
def out(s=""):
    lines.append(s)

def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "%.0f" % v
    return ("%." + str(digits) + "f") % v

def mmm(vals, digits=1):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return "%s [%s, %s]" % (fmt(statistics.median(vals), digits), fmt(min(vals), digits), fmt(max(vals), digits))

def group_title(g):
    f = g.split(":")
    if f[0] == "w1":
        return "W1 find {_id: k}, reply %s B, C=%s, closed loop" % (f[1], f[2])
    if f[0] == "open":
        return "W1 open loop, %s B, C=%s, fixed rate" % (f[1], f[2])
    if f[0] == "delay":
        return "S5 upstream delay %s us, 256 B, C=1" % f[1]
    if f[0] == "ferret":
        return "S5 FerretDB upstream, %s B, C=1" % f[1]
    return g

groups = []
for (g, s) in by:
    if g not in groups:
        groups.append(g)
order = {"w1": 0, "open": 1, "delay": 2, "ferret": 3}
groups.sort(key=lambda g: (order.get(g.split(":")[0], 9), [int(x) if x.isdigit() else 0 for x in g.split(":")[1:]]))
scen_order = ["A0", "A1", "S1", "S2", "S3", "S4"]
names = {"A0": "raw echo (mcload --server --raw)", "A1": "Redis GET (redis-benchmark)",
         "S1": "direct to the upstream", "S2": "mongocache, cache off", "S3": "mongocache, hit (memory)",
         "S4": "mongocache, hit (Redis tier)"}

def best_sut_rps(g, rep):
    v = [by[(g, s)][rep]["rps"] for s in ("S2", "S3", "S4") if rep in by.get((g, s), {})]
    return max(v) if v else None

def loadgen_bound(g, rep):
    if not g.startswith("w1:"):
        return None  # open loop: every scenario runs at the same fixed rate
    a0 = by.get((g, "A0"), {}).get(rep)
    best = best_sut_rps(g, rep)
    if not a0 or best is None:
        return None
    return a0["rps"] < 1.5 * best

out("# mongocache benchmark: %d repetition%s%s" % (reps, "" if reps == 1 else "s", " (quick)" if quick else ""))
out()
out("Median [min, max] over repetitions. Latencies in microseconds; CPU us/req is the system under")
out("test's CPU per request (mongocache for S2-S4, redis-server for A1, the canned server for A0/S1,")
out("FerretDB for its S1), warm-up included; loadgen CPU is the load generator's busy fraction")
out("(mcload only). Machine: %s" % machine)
out()
for g in groups:
    out("## " + group_title(g))
    out()
    out("| scenario | req/s | p50 | p99 | p99.9 | CPU us/req | loadgen CPU | hit ratio | errors |")
    out("|---|---|---|---|---|---|---|---|---|")
    for s in scen_order:
        reps_d = by.get((g, s))
        if not reps_d:
            continue
        rs = list(reps_d.values())
        hr = [r["hit_ratio"] for r in rs if r.get("hit_ratio") is not None]
        out("| %s %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            s, names[s], mmm([r["rps"] for r in rs], 0), mmm([r["p50"] for r in rs]),
            mmm([r["p99"] for r in rs]), mmm([r.get("p999") for r in rs]),
            mmm([r.get("sut_cpu_us") for r in rs]), mmm([r.get("loadgen_cpu") for r in rs], 2),
            ("%.3f" % min(hr)) if hr else "-", sum(r.get("errors", 0) for r in rs)))
    lb = [loadgen_bound(g, rep) for rep in range(1, reps + 1)]
    lb = [x for x in lb if x is not None]
    if lb:
        nb = sum(lb)
        out()
        out("loadgen-bound (A0 req/s < 1.5 x best of S2-S4): %s (%d of %d repetitions)" % (
            "YES" if nb * 2 > len(lb) else "no", nb, len(lb)))
    out()

# ---- ratios: per repetition, then the median --------------------------------------------
def per_rep(fn):
    vals = []
    for rep in range(1, reps + 1):
        try:
            v = fn(rep)
        except (KeyError, ZeroDivisionError, TypeError):
            v = None
        if v is not None:
            vals.append(v)
    return vals

def get(g, s, rep, field):
    return by[(g, s)][rep][field]

ratios = []  # (metric, vals, goal, acceptable, better)  better: "low" or "high"
for s in (256, 4096):
    g1, g50 = "w1:%d:1" % s, "w1:%d:50" % s
    ratios.append(("in-process hit p50 / Redis GET p50 (C=1, %d B)" % s,
                   per_rep(lambda r: get(g1, "S3", r, "p50") / get(g1, "A1", r, "p50")), 1.25, 1.5, "low"))
    ratios.append(("in-process hit p50 / raw echo p50 (C=1, %d B)" % s,
                   per_rep(lambda r: get(g1, "S3", r, "p50") / get(g1, "A0", r, "p50")), 1.5, 2.0, "low"))
    if s4_on:
        ratios.append(("Redis-tier hit p50 / Redis GET p50 (C=1, %d B)" % s,
                       per_rep(lambda r: get(g1, "S4", r, "p50") / get(g1, "A1", r, "p50")), 2.2, 2.8, "low"))
    ratios.append(("pass-through added p50, S2 - S1, us (C=1, %d B)" % s,
                   per_rep(lambda r: get(g1, "S2", r, "p50") - get(g1, "S1", r, "p50")), 30, None, "low"))
    ratios.append(("in-process hit req/s / Redis GET req/s (C=50, %d B)" % s,
                   per_rep(lambda r: get(g50, "S3", r, "rps") / get(g50, "A1", r, "rps")), 0.8, 0.6, "high"))
    if s4_on:
        ratios.append(("Redis-tier hit req/s / Redis GET req/s (C=50, %d B)" % s,
                       per_rep(lambda r: get(g50, "S4", r, "rps") / get(g50, "A1", r, "rps")), 0.65, 0.5, "high"))
    ratios.append(("pass-through req/s / direct req/s (C=50, %d B)" % s,
                   per_rep(lambda r: get(g50, "S2", r, "rps") / get(g50, "S1", r, "rps")), 0.8, 0.7, "high"))
    ratios.append(("proxy CPU per hit / Redis CPU per GET (C=50, %d B)" % s,
                   per_rep(lambda r: get(g50, "S3", r, "sut_cpu_us") / get(g50, "A1", r, "sut_cpu_us")), 1.0, 1.3, "low"))
ratios.append(("hit vs direct, upstream delay 150 us (C=1): direct p50 / hit p50",
               per_rep(lambda r: get("delay:150", "S1", r, "p50") / get("delay:150", "S3", r, "p50")), 4, 3, "high"))
ratios.append(("  ceiling here: delay 150 us direct p50 / raw echo p50 (C=1, 256 B)",
               per_rep(lambda r: get("delay:150", "S1", r, "p50") / get("w1:256:1", "A0", r, "p50")), None, None, "high"))
ratios.append(("hit vs direct, upstream delay 1 ms (C=1): direct p50 / hit p50",
               per_rep(lambda r: get("delay:1000", "S1", r, "p50") / get("delay:1000", "S3", r, "p50")), None, None, "high"))
for s in (256, 4096):
    g = "ferret:%d" % s
    if any(k[0] == g for k in by):
        ratios.append(("hit vs direct, FerretDB upstream (C=1, %d B): direct p50 / hit p50" % s,
                       per_rep(lambda r: get(g, "S1", r, "p50") / get(g, "S3", r, "p50")), None, None, "high"))

def verdict(v, goal, acc, better):
    if v is None or goal is None:
        return ""
    if better == "low":
        if v <= goal:
            return "goal"
        return "acceptable" if acc is not None and v <= acc else "MISS"
    if v >= goal:
        return "goal"
    return "acceptable" if acc is not None and v >= acc else "MISS"

out("## Ratios (computed per repetition, then the median)")
out()
out("| metric | median [min, max] | goal | acceptable | verdict |")
out("|---|---|---|---|---|")
for name, vals, goal, acc, better in ratios:
    med = statistics.median(vals) if vals else None
    op = "<=" if better == "low" else ">="
    out("| %s | %s | %s | %s | %s |" % (name, mmm(vals, 2),
        "%s %s" % (op, goal) if goal is not None else "-",
        "%s %s" % (op, acc) if acc is not None else ("<= twemproxy's hop" if "added" in name else "-"),
        verdict(med, goal, acc, better)))
out()
if sysc:
    out("## Syscalls per request (strace -c -f on the server process, C=1, 256 B, warm-up included)")
    out()
    out("| scenario | syscalls/request | by call |")
    out("|---|---|---|")
    for d in sysc:
        out("| %s | %.2f | %s |" % (d["syscalls"], d["per_request"],
            ", ".join("%s %.2f" % (k, v) for k, v in d["by_call"].items())))
    out()
if not s4_on:
    out("S4 (hit via the Redis tier) skipped: %s." % (
        "mongocache served no hit from it (see the run's messages)" if s4_flag
        else "this mongocache has no --redis option"))
    out()
if failures:
    out("## Failed runs")
    for f in failures:
        out("- rep %s %s %s: %s" % (f["rep"], f["group"], f["scenario"], f["why"]))
    out()
text = "\n".join(lines)
print(text)
open(out_path, "w").write(text + "\n")
EOF
echo "# took $(($(date +%s) - start_s)) s; results: $RESULTS, summary: $OUT/summary.md" >&2
