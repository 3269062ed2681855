#!/usr/bin/env bash
# bench/run.sh: mongocache's benchmark, every scenario and anchor side by side
# in one run (see bench/README.md).
#
#   bench/run.sh            full run: 5 repetitions, ~2 s per measurement
#   bench/run.sh --quick    smoke run: 2 short repetitions (about 3 minutes)
#
# Options:
#   --reps N          repetitions (default 5, quick 2; 0: only the one-pass
#                     measurements: syscalls, memory, callgrind, S6)
#   --seconds S       time cap of each measurement (default 2, quick 0.4)
#   --out DIR         keep results.jsonl, summary.md and logs there
#                     (default: a new directory under ${TMPDIR:-/tmp})
#   --no-build        use the binaries as they are (MONGOCACHE, MCLOAD)
#   --no-syscalls     skip the strace pass (syscalls per request)
#   --no-ferretdb     skip S5 and S6 (FerretDB) even when .tools/bin/ferretdb exists
#   --layout L        where processes run (default pinned):
#                       pinned: load generators alone on LOADGEN_CPU, every system
#                               under test (proxy, relay, nutcracker, upstream,
#                               Redis) on SUT_CPU; plus, per size, a group for
#                               the pass-through CPU rows (S2, A3, A2 at C=50)
#                               with the canned upstream and nutcracker's Redis
#                               moved to LOADGEN_CPU for its duration
#                       split:  the proxy (or relay, nutcracker, the server a
#                               scenario talks to) alone on SUT_CPU; what sits
#                               behind it (canned upstream, Redis, FerretDB) on
#                               LOADGEN_CPU with the load generator: no
#                               proxy-and-upstream preemption on one CPU
#                       none:   no pinning
#   --no-anchors      skip A2 (twemproxy) and A3 (the zero-logic relay)
#   --no-memory       skip bytes per cache entry and per idle connection
#   --no-callgrind    skip the cache = off instruction count
#   --no-s6           skip S6 (Mongoose: exec-patch Redis cache vs mongocache)
#   --entries N       cache entries filled for bytes per entry and the hit p50
#                     at N entries (default 100000, quick 20000): filled by
#                     misses at one client, 25 s for 100000 here; 1000000
#                     takes about 4 minutes and 1 GB in mongocache
#   --idle N          idle connections for bytes per connection (default
#                     10000, quick 2000)
# Environment:
#   MONGOCACHE, MCLOAD, RELAY  binaries to use (default: built in BENCH_BUILD_DIR)
#   NUTCRACKER          twemproxy (default: nutcracker on PATH, Debian's package)
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
LAYOUT=pinned
ANCHORS=1
MEMORY=1
CALLGRIND=1
S6=1
ENTRIES=""
IDLE=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --seconds) SECONDS_CAP=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-syscalls) SYSCALLS=0 ;;
    --no-ferretdb) FERRET=0 ;;
    --layout) LAYOUT=$2; shift ;;
    --no-anchors) ANCHORS=0 ;;
    --no-memory) MEMORY=0 ;;
    --no-callgrind) CALLGRIND=0 ;;
    --no-s6) S6=0 ;;
    --entries) ENTRIES=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-2}
    SECONDS_CAP=${SECONDS_CAP:-0.4}
    N_C1=20000 N_C50=100000 N_OPEN=3000 N_DELAY=1500
    RB_N_C1=4000 RB_N_C50=30000
    OPEN_RATE=5000
    ENTRIES=${ENTRIES:-20000} IDLE=${IDLE:-2000}
    S6_REPS=1 S6_N1=300 S6_N=2000 S6_SECONDS=2 S6_WARM=500 S6_LAYERS_N1=300 S6_LAYERS_N=2000
    SC_N=1500 SC_WARM=500
else
    REPS=${REPS:-5}
    SECONDS_CAP=${SECONDS_CAP:-2}
    N_C1=100000 N_C50=400000 N_OPEN=10000 N_DELAY=5000
    RB_N_C1=14000 RB_N_C50=120000
    OPEN_RATE=5000
    ENTRIES=${ENTRIES:-100000} IDLE=${IDLE:-10000}
    S6_REPS=3 S6_N1=3000 S6_N=20000 S6_SECONDS=10 S6_WARM=2000 S6_LAYERS_N1=3000 S6_LAYERS_N=10000
    SC_N=3000 SC_WARM=1000
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

# --idle connections, each a socket here and in mongocache (and mcload's own)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NCPU=$(nproc)
case $LAYOUT in
pinned)
    FRONT_CPUS=$SUT_CPU BACK_CPUS=$SUT_CPU LG_CPUS=$LOADGEN_CPU
    LAYOUT_TEXT="pinned: load generators alone on CPU $LOADGEN_CPU; every system under test (proxy, relay, nutcracker, upstream, Redis, FerretDB) on CPU $SUT_CPU"
    ;;
split)
    FRONT_CPUS=$SUT_CPU BACK_CPUS=$LOADGEN_CPU LG_CPUS=$LOADGEN_CPU
    LAYOUT_TEXT="split: the process a scenario talks to (proxy, relay, nutcracker, Redis for A1, the canned server for A0/S1) alone on CPU $SUT_CPU; what sits behind it (canned upstream, Redis, FerretDB) on CPU $LOADGEN_CPU with the load generators"
    ;;
none)
    FRONT_CPUS=0-$((NCPU - 1)) BACK_CPUS=0-$((NCPU - 1)) LG_CPUS=0-$((NCPU - 1))
    LAYOUT_TEXT="none: no pinning ($NCPU CPUs shared)"
    ;;
*) echo "run.sh: --layout is pinned, split or none" >&2; exit 2 ;;
esac

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
        if grep -q '^bench/cache_entry_bytes\$(EXEEXT):' "$BUILD_DIR/Makefile" 2>/dev/null; then
            (cd "$BUILD_DIR" && make -j2 bench/cache_entry_bytes >/dev/null) ||
                echo "# building bench/cache_entry_bytes failed: its row is left out" >&2
        fi
        if grep -q '^bench/relay\$(EXEEXT):' "$BUILD_DIR/Makefile" 2>/dev/null; then
            (cd "$BUILD_DIR" && make -j2 bench/mcload bench/relay >/dev/null) ||
                { echo "run.sh: building bench/mcload and bench/relay failed" >&2; exit 2; }
        else
            # the Makefile does not know them (an older configure): compile directly
            mkdir -p "$BUILD_DIR/bench"
            # shellcheck disable=SC2046
            cc -O2 -g -std=c11 -D_GNU_SOURCE $(pkg-config --cflags libbson-1.0) \
                "$here/mcload.c" "$here/mcload_server.c" "$here/mcload_common.c" \
                -o "$BUILD_DIR/bench/mcload" $(pkg-config --libs libbson-1.0)
            cc -O2 -g -std=c11 -D_GNU_SOURCE "$here/relay.c" -o "$BUILD_DIR/bench/relay"
        fi
    fi
fi
MONGOCACHE=${MONGOCACHE:-$BUILD_DIR/mongocache}
MCLOAD=${MCLOAD:-$BUILD_DIR/bench/mcload}
RELAY=${RELAY:-$BUILD_DIR/bench/relay}
CACHE_ENTRY_BYTES=${CACHE_ENTRY_BYTES:-$BUILD_DIR/bench/cache_entry_bytes}
NUTCRACKER=${NUTCRACKER:-$(command -v nutcracker || echo /usr/sbin/nutcracker)}
if [ "$ANCHORS" = 1 ]; then
    [ -x "$RELAY" ] || { echo "# A3 (relay) skipped: no $RELAY" >&2; RELAY=""; }
    [ -x "$NUTCRACKER" ] || { echo "# A2 (twemproxy) skipped: no nutcracker (apt-get install nutcracker; tests/setup.sh)" >&2; NUTCRACKER=""; }
else
    RELAY="" NUTCRACKER=""
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
    for i in $(seq 1 50); do
        local alive=0
        for p in "${TPIDS[@]:-}"; do
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    # Each is `timeout` around the process: its child too, or a process that
    # ignored SIGTERM outlives a killed timeout.
    for p in "${TPIDS[@]:-}"; do
        [ -n "$p" ] && { pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; } || true
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

# start NAME PORT ROLE CMD...: runs CMD under timeout on the CPUs of ROLE
# (front: the process a scenario talks to; back: what sits behind it; see
# --layout), waits for PORT; sets SPID (the process itself, for /proc and
# strace). Returns 1 when it does not come up.
start() {
    local name=$1 port=$2 role=$3 tpid i cpus
    shift 3
    cpus=$FRONT_CPUS
    [ "$role" = back ] && cpus=$BACK_CPUS
    timeout "$CAP" taskset -c "$cpus" "$@" >"$OUT/logs/$name.log" 2>&1 &
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

# The processes whose CPU a scenario costs, "label=pid label=pid ...", the
# one the scenario talks to first: cpu_snap takes their ticks, cpu_json
# turns two snapshots into {"label": CPU microseconds per request, ...}.
cpu_snap() { # "label=pid ..."
    local kv out=""
    for kv in $1; do
        out="$out${kv%%=*}=$(cpu_ticks "${kv#*=}") "
    done
    echo "$out"
}
cpu_json() { # SNAP0 SNAP1 REQUESTS
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN {
        na = split(a, A, " "); split(b, B, " "); printf "{"
        for (i = 1; i <= na; i++) {
            split(A[i], x, "="); split(B[i], y, "=")
            printf "%s\"%s\": %.2f", (i > 1 ? ", " : ""), x[1], (n > 0 ? (y[2] - x[2]) * 1e6 / hz / n : 0)
        }
        printf "}" }'
}

declare -A PORT SPIDS STATS PROCS
start_mongocache() { # NAME UPSTREAM_NAME EXTRA_ARGS...
    local name=$1 up=$2 port http
    shift 2
    port=$(free_port)
    http=$(free_port)
    start "$name" "$port" front "$MONGOCACHE" --listen "127.0.0.1:$port" \
        --upstream "mongodb://127.0.0.1:${PORT[$up]}" --http-listen "127.0.0.1:$http" \
        --log-level warn --cache-ttl 1h "$@" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    STATS[$name]=http://127.0.0.1:$http/stats
    PROCS[$name]="mongocache=$SPID upstream=${SPIDS[$up]}"
}

start_canned() { # NAME SIZE ROLE EXTRA_ARGS...
    local name=$1 size=$2 role=$3 port
    shift 3
    port=$(free_port)
    start "$name" "$port" "$role" "$MCLOAD" --server --port "$port" --size "$size" "$@" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    PROCS[$name]="server=$SPID"
}

start_redis() { # NAME SIZE ROLE: populated with keys 0..999 of SIZE bytes (SIZE 0: empty)
    local name=$1 size=$2 role=$3 port
    port=$(free_port)
    mkdir -p "$OUT/logs/$name.dir"
    start "$name" "$port" "$role" redis-server --bind 127.0.0.1 --port "$port" --save '' \
        --appendonly no --daemonize no --dir "$OUT/logs/$name.dir" --protected-mode yes || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    PROCS[$name]="redis=$SPID"
    if [ "$size" != 0 ]; then
        timeout 60 taskset -c "$LG_CPUS" redis-benchmark -h 127.0.0.1 -p "$port" -t set \
            -r "$KEYS" -n $((KEYS * 25)) -d "$size" -c 10 -q >/dev/null 2>&1 || return 1
    fi
}

start_relay() { # NAME UPSTREAM_NAME: the zero-logic relay (A3)
    local name=$1 up=$2 port
    port=$(free_port)
    start "$name" "$port" front "$RELAY" --listen "$port" --upstream "${PORT[$up]}" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    PROCS[$name]="relay=$SPID upstream=${SPIDS[$up]}"
}

# start_nutcracker NAME REDIS_NAME CONNS: twemproxy (A2) in front of one Redis.
# nutcracker pools: every client's requests share server_connections
# connections to a server (default 1). One connection per client is
# approximated by server_connections = CONNS (the most clients of any group,
# 50), opened at start (preconnect): with C clients and one request in
# flight each, requests spread over C server connections, as mongocache's
# one upstream connection per client does. At C=1 the one client's requests
# rotate over them, one at a time.
start_nutcracker() {
    local name=$1 redis=$2 conns=$3 port sport
    port=$(free_port)
    sport=$(free_port)
    cat >"$OUT/logs/$name.yml" <<EOY
bench:
  listen: 127.0.0.1:$port
  redis: true
  hash: fnv1a_64
  distribution: ketama
  preconnect: true
  server_connections: $conns
  auto_eject_hosts: false
  timeout: 5000
  servers:
    - 127.0.0.1:${PORT[$redis]}:1
EOY
    start "$name" "$port" front "$NUTCRACKER" -c "$OUT/logs/$name.yml" -s "$sport" \
        -a 127.0.0.1 -o "$OUT/logs/$name.nc.log" || return 1
    PORT[$name]=$port
    SPIDS[$name]=$SPID
    PROCS[$name]="nutcracker=$SPID redis=${SPIDS[$redis]}"
}

# s4_serves_hits NAME SIZE: reads every key twice through NAME, then true
# when its /stats shows hits (cache.hits or a redis_hits counter).
s4_serves_hits() {
    timeout 120 taskset -c "$LG_CPUS" "$MCLOAD" --port "${PORT[$1]}" -c 1 -n "$KEYS" \
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
# record REP GROUP JSON CPU_JSON: appends the line with rep, group, the CPU
# microseconds per request of every process of the scenario (cpu_us) and of
# the first, the one the scenario talks to (sut_cpu_us).
record() {
    local rep=$1 group=$2 json=$3 cpu=$4 first
    first=$(sed 's/^{"[^"]*": \([0-9.]*\).*/\1/' <<<"$cpu")
    [ -n "$first" ] && [ "$first" != "{}" ] || first=null
    json=${json%\}}
    echo "$json, \"rep\": $rep, \"group\": \"$group\", \"sut_cpu_us\": $first, \"cpu_us\": $cpu}" >>"$RESULTS"
}

failed() { # REP GROUP SCENARIO WHY
    echo "# $3 in $2 (rep $1) failed: $4" >&2
    echo "{\"scenario\": \"$3\", \"group\": \"$2\", \"rep\": $1, \"failed\": true, \"why\": \"$4\"}" >>"$RESULTS"
}

# mcload_run REP GROUP SCENARIO TARGET SIZE C N [MCLOAD ARGS...]
# TARGET names a started process (its port; PROCS[TARGET] the processes whose CPU is counted).
mcload_run() {
    local rep=$1 group=$2 scen=$3 target=$4 size=$5 c=$6 n=$7 json t0 t1 total
    shift 7
    local stats=()
    [ -n "${STATS[$target]:-}" ] && stats=(--stats-url "${STATS[$target]}")
    t0=$(cpu_snap "${PROCS[$target]}")
    if ! json=$(timeout 120 taskset -c "$LG_CPUS" "$MCLOAD" --port "${PORT[$target]}" \
        -c "$c" -n "$n" --seconds "$SECONDS_CAP" --warmup-seconds 20 --keys "$KEYS" \
        --size "$size" --scenario "$scen" "${stats[@]}" "$@" 2>>"$OUT/logs/mcload.err"); then
        failed "$rep" "$group" "$scen" "mcload exited with an error (logs/mcload.err)"
        return 0
    fi
    t1=$(cpu_snap "${PROCS[$target]}")
    total=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json")
    record "$rep" "$group" "$json" "$(cpu_json "$t0" "$t1" "$total")"
}

# redis_run REP GROUP SCENARIO TARGET SIZE C N: redis-benchmark GET against
# TARGET (Redis for A1, nutcracker for A2).
redis_run() {
    local rep=$1 group=$2 scen=$3 target=$4 size=$5 c=$6 n=$7 out t0 t1 json
    t0=$(cpu_snap "${PROCS[$target]}")
    if ! out=$(timeout 120 taskset -c "$LG_CPUS" redis-benchmark -h 127.0.0.1 \
        -p "${PORT[$target]}" -t get -r "$KEYS" -d "$size" -c "$c" -n "$n" --csv 2>>"$OUT/logs/redis-benchmark.err"); then
        failed "$rep" "$group" "$scen" "redis-benchmark exited with an error"
        return 0
    fi
    t1=$(cpu_snap "${PROCS[$target]}")
    json=$(python3 - "$out" "$size" "$c" "$n" "$scen" <<'EOF'
import csv, io, json, sys
out, size, c, n, scen = sys.argv[1:]
rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] == "GET"]
if not rows:
    sys.exit(1)
r = rows[-1]
rps = float(r[1])
print(json.dumps({"scenario": scen, "size": int(size), "connections": int(c), "mode": "closed",
                  "rate": 0, "n": int(n), "seconds": round(int(n) / rps, 3), "rps": round(rps),
                  "p50": float(r[4]) * 1000, "p99": float(r[6]) * 1000, "p999": None,
                  "max": float(r[7]) * 1000, "errors": 0, "hit_ratio": None}))
EOF
    ) || { failed "$rep" "$group" "$scen" "could not read redis-benchmark's CSV"; return 0; }
    record "$rep" "$group" "$json" "$(cpu_json "$t0" "$t1" "$n")"
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

echo "# starting servers; layout $LAYOUT_TEXT" >&2
for s in $SIZES; do
    start_canned "A0-$s" "$s" front --raw
    start_canned "s1-$s" "$s" front           # S1: the canned upstream, talked to directly
    start_canned "up-$s" "$s" back            # behind mongocache and the relay
    start_mongocache "mc-off-$s" "up-$s" --cache false
    start_mongocache "mc-on-$s" "up-$s"
    start_redis "redis-$s" "$s" front
    if [ -n "$RELAY" ]; then
        start_relay "relay-$s" "up-$s" || RELAY=""
    fi
    if [ -n "$NUTCRACKER" ]; then
        { start_redis "redis-a2-$s" "$s" back && start_nutcracker "nc-$s" "redis-a2-$s" 50; } ||
            { echo "# A2 skipped: nutcracker did not start (logs/nc-$s.log)" >&2; NUTCRACKER=""; }
    fi
    if [ "$S4_ON" = 1 ]; then
        start_redis "redis-s4-$s" 0 back
        s4_args=${S4_ARGS:-"$REDIS_FLAG REDIS_URL --cache-memory 0 --cache-key-secret bench"}
        s4_args=${s4_args//REDIS_URL/redis://127.0.0.1:${PORT[redis-s4-$s]}}
        # shellcheck disable=SC2086
        if ! start_mongocache "mc-redis-$s" "up-$s" $s4_args; then
            echo "# S4 skipped for size $s: mongocache did not start with: $s4_args" >&2
        elif ! s4_serves_hits "mc-redis-$s" "$s"; then
            echo "# S4 skipped for size $s: with $s4_args mongocache served no hit" \
                "after every key was read twice (Redis tier not active?)" >&2
            unset "PORT[mc-redis-$s]"
        else
            PROCS[mc-redis-$s]="${PROCS[mc-redis-$s]} redis=${SPIDS[redis-s4-$s]}"
        fi
    fi
done
if [ "$S4_ON" = 0 ]; then
    echo "# S4 skipped: this mongocache has no --redis option (Redis tier not built yet)" >&2
fi
for d in 150 1000; do
    start_canned "s1-d$d" 256 front --delay-us "$d"
    start_canned "up-d$d" 256 back --delay-us "$d"
    start_mongocache "mc-on-d$d" "up-d$d"
done
FERRETDB=$top/.tools/bin/ferretdb
FERRET_ON=0
if [ "$FERRET" = 1 ] && [ -x "$FERRETDB" ]; then
    fport=$(free_port)
    mkdir -p "$OUT/logs/ferretdb/data"
    # FerretDB is the upstream of mongocache in S5/S6 (back) and also talked
    # to directly (S1 with FerretDB, S6c): back, so that split keeps the proxy alone.
    if start ferretdb "$fport" back "$FERRETDB" --handler=sqlite --sqlite-url="file:$OUT/logs/ferretdb/data/" \
        --state-dir="$OUT/logs/ferretdb" --listen-addr="127.0.0.1:$fport" --telemetry=disable \
        --debug-addr=- --log-level=WARN; then
        PORT[ferretdb]=$fport
        SPIDS[ferretdb]=$SPID
        PROCS[ferretdb]="ferretdb=$SPID"
        FERRET_ON=1
        for s in $SIZES; do
            timeout 120 taskset -c "$LG_CPUS" "$MCLOAD" --populate --port "$fport" \
                --coll "items$s" --size "$s" --keys "$KEYS" >/dev/null 2>>"$OUT/logs/mcload.err" ||
                { FERRET_ON=0; echo "# S5 with FerretDB skipped: populating it failed" >&2; }
        done
        start_mongocache mc-on-ferret ferretdb
    else
        echo "# S5 with FerretDB skipped: FerretDB did not start" >&2
    fi
elif [ "$FERRET" = 1 ]; then
    echo "# S5 and S6 (FerretDB) skipped: no $FERRETDB (run tests/setup.sh)" >&2
else
    echo "# S5 and S6 (FerretDB) skipped: --no-ferretdb" >&2
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
# pt:SIZE:50 (pinned layout only): the pass-through and its anchors (S2, A3,
# A2) at C=50 with what sits behind them (the canned upstream up-SIZE, the
# Redis behind nutcracker) moved, every thread, to the load generator's CPU
# for the group (taskset -a -p) and back after it: the proxy, relay or
# nutcracker alone on SUT_CPU, as in --layout split, so that a proxy and its
# upstream do not preempt each other on one CPU (that cost lands in the
# proxy's CPU per request). It rotates with the other groups. With --layout
# split the w1 groups already measure this; with none nothing is pinned.
if [ "$LAYOUT" = pinned ] && [ -n "$RELAY$NUTCRACKER" ]; then
    for s in $SIZES; do
        GROUPS_LIST+=("pt:$s:50")
    done
fi
GROUPS_LIST+=("open:256:16" "delay:150" "delay:1000")
[ "$FERRET_ON" = 1 ] && for s in $SIZES; do GROUPS_LIST+=("ferret:$s"); done

run_scenario() { # REP GROUP SCENARIO
    local rep=$1 group=$2 scen=$3 kind s c d n
    IFS=: read -r kind s c <<<"$group"
    case $kind in
    w1 | pt)
        n=$(n_for "$c")
        case $scen in
        A0) mcload_run "$rep" "$group" A0 "A0-$s" "$s" "$c" "$n" ;;
        A1) redis_run "$rep" "$group" A1 "redis-$s" "$s" "$c" "$(rb_n_for "$c")" ;;
        # the same Redis and keys, read by mcload (the client of S2-S4)
        A1m) mcload_run "$rep" "$group" A1m "redis-$s" "$s" "$c" "$n" --resp ;;
        A2) redis_run "$rep" "$group" A2 "nc-$s" "$s" "$c" "$(rb_n_for "$c")" ;;
        A3) mcload_run "$rep" "$group" A3 "relay-$s" "$s" "$c" "$n" ;;
        S1) mcload_run "$rep" "$group" S1 "s1-$s" "$s" "$c" "$n" ;;
        S2) mcload_run "$rep" "$group" S2 "mc-off-$s" "$s" "$c" "$n" ;;
        S3) mcload_run "$rep" "$group" S3 "mc-on-$s" "$s" "$c" "$n" ;;
        S4) mcload_run "$rep" "$group" S4 "mc-redis-$s" "$s" "$c" "$n" ;;
        esac
        ;;
    open)
        local o=(--mode open --rate "$OPEN_RATE")
        case $scen in
        A0) mcload_run "$rep" "$group" A0 "A0-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S1) mcload_run "$rep" "$group" S1 "s1-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S2) mcload_run "$rep" "$group" S2 "mc-off-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        S3) mcload_run "$rep" "$group" S3 "mc-on-$s" "$s" "$c" "$N_OPEN" "${o[@]}" ;;
        esac
        ;;
    delay)
        d=$s
        case $scen in
        S1) mcload_run "$rep" "$group" S1 "s1-d$d" 256 1 "$N_DELAY" --warmup 200 ;;
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
        echo "A0 A1 A1m${NUTCRACKER:+ A2}${RELAY:+ A3} S1 S2 S3${PORT[mc-redis-$s]:+ S4}"
        ;;
    pt:*) echo "S2${NUTCRACKER:+ A2}${RELAY:+ A3}" ;;
    open:*) echo "A0 S1 S2 S3" ;;
    *) echo "S1 S3" ;;
    esac
}

# pin_back SIZE CPUS: every thread of the processes behind the pass-through
# and its anchors of SIZE (the canned upstream up-SIZE, nutcracker's Redis
# redis-a2-SIZE) onto CPUS; false when a process is gone or a thread did
# not move.
pin_back() {
    local s=$1 cpus=$2 name pid t want got
    want=$(taskset -c "$cpus" grep -m 1 '^Cpus_allowed_list:' /proc/self/status | awk '{print $2}')
    for name in "up-$s" "redis-a2-$s"; do
        pid=${SPIDS[$name]:-}
        [ -n "$pid" ] || continue
        taskset -a -p -c "$cpus" "$pid" >/dev/null 2>&1 || return 1
        for t in /proc/"$pid"/task/*; do
            got=$(awk '/^Cpus_allowed_list:/ {print $2}' "$t/status" 2>/dev/null) || return 1
            [ "$got" = "$want" ] || return 1
        done
    done
}

# group_enter / group_leave GROUP: what a group changes around its scenarios.
group_enter() {
    case $1 in
    pt:*)
        local s=${1#pt:}
        pin_back "${s%%:*}" "$LG_CPUS"
        ;;
    esac
}
group_leave() {
    case $1 in
    pt:*)
        local s=${1#pt:}
        pin_back "${s%%:*}" "$BACK_CPUS" ||
            echo "# $1: could not move the back processes back to CPU $BACK_CPUS" >&2
        ;;
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
        if ! group_enter "$group"; then
            for sc in "${scen[@]}"; do
                failed "$rep" "$group" "$sc" "could not move the back processes to CPU $LG_CPUS"
            done
            group_leave "$group"
            continue
        fi
        for sc in $(rotate $((rep - 1)) "${scen[@]}"); do
            run_scenario "$rep" "$group" "$sc"
        done
        group_leave "$group"
    done
done

# ---- syscalls per request (a separate short run under strace) ------------------------
if [ "$SYSCALLS" = 1 ] && ! command -v strace >/dev/null 2>&1; then
    echo "# syscalls per request skipped: no strace (apt-get install strace; tests/setup.sh)" >&2
elif [ "$SYSCALLS" = 1 ]; then
    echo "# syscalls per request (strace -c -f, size 256, C=1; $(($(date +%s) - start_s)) s)" >&2
    # sc_run SNAME TARGET N FILE: N measured requests on one new connection
    # (after SC_WARM of warm-up) under strace -c -f -p on TARGET's process;
    # echoes the requests sent in all.
    sc_run() {
        local sname=$1 target=$2 n=$3 sfile=$4 spid json
        timeout 60 strace -c -f -p "${SPIDS[$target]}" -o "$sfile" 2>/dev/null &
        spid=$!
        sleep 0.3
        if [ "$sname" = A1 ] || [ "$sname" = A2 ]; then
            timeout 60 taskset -c "$LG_CPUS" redis-benchmark -h 127.0.0.1 -p "${PORT[$target]}" \
                -t get -r "$KEYS" -d 256 -c 1 -n $((n + SC_WARM)) -q >/dev/null 2>&1 || true
            json="{\"n\": $n, \"warmup_n\": $SC_WARM}"
        else
            json=$(timeout 60 taskset -c "$LG_CPUS" "$MCLOAD" --port "${PORT[$target]}" -c 1 \
                -n "$n" --warmup "$SC_WARM" --seconds 20 --keys "$KEYS" --size 256 \
                --scenario "$sname" 2>>"$OUT/logs/mcload.err" || true)
        fi
        sleep 0.3
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json" 2>/dev/null || echo 0
    }
    for pair in "A0:A0-256" "S1:s1-256" ${RELAY:+"A3:relay-256"} "S2:mc-off-256" "S3:mc-on-256" \
        "A1:redis-256" ${NUTCRACKER:+"A2:nc-256"} ${PORT[mc-redis-256]:+"S4:mc-redis-256"}; do
        sname=${pair%%:*}
        target=${pair#*:}
        case $sname in
        S3 | S4) # every key cached before counting (--reps 0 ran nothing yet)
            timeout 120 taskset -c "$LG_CPUS" "$MCLOAD" --port "${PORT[$target]}" -c 1 -n "$KEYS" \
                --warmup "$KEYS" --keys "$KEYS" --size 256 --seconds 60 >/dev/null 2>>"$OUT/logs/mcload.err" || true
            ;;
        esac
        # Two runs, SC_N/4 and SC_N requests, on new connections: the
        # difference of their counts is the steady state (a connection's
        # setup, handshake and warm-up cancel out), per request.
        na=$(sc_run "$sname" "$target" $((SC_N / 4)) "$OUT/logs/strace-$sname-short.txt")
        nb=$(sc_run "$sname" "$target" "$SC_N" "$OUT/logs/strace-$sname.txt")
        python3 - "$OUT/logs/strace-$sname-short.txt" "$OUT/logs/strace-$sname.txt" "$sname" "$na" "$nb" \
            "${PROCS[$target]%%=*}" >>"$RESULTS" <<'EOF' || true
import json, sys
pa, pb, scen, na, nb, proc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def counts(path):
    calls = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            try:
                calls[f[-1]] = int(f[3])
            except ValueError:
                pass
    return calls
a, b = counts(pa), counts(pb)
n = nb - na
if n > 0 and b:
    slope = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}
    # Calls on fewer than one request in 20 are sporadic (another thread, a
    # reconnect, a timer): counted apart as "other", not per request.
    steady = {k: v for k, v in slope.items() if v >= 0.05}
    other = sum(v for k, v in slope.items() if k not in steady)
    per = {k: round(v, 2) for k, v in sorted(steady.items(), key=lambda kv: -kv[1])}
    if abs(other) >= 0.005:
        per["other"] = round(other, 3)
    setup = sum(b.get(k, 0) for k in steady) - sum(steady.values()) * nb
    print(json.dumps({"syscalls": scen, "process": proc, "requests": [na, nb],
                      "per_request": round(sum(steady.values()), 2),
                      "epoll_ctl": round(slope.get("epoll_ctl", 0), 2),
                      "epoll_ctl_calls": b.get("epoll_ctl", 0), "setup_calls": round(setup),
                      "by_call": per}))
EOF
    done
fi

rss_of() { # PID: resident bytes
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}
stat_field() { # STATS_URL FIELD of "cache"
    python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["cache"][sys.argv[2]])' "$1" "$2"
}
json_field() { # JSON FIELD
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("null" if v is None else v)' "$1" "$2" 2>/dev/null || echo null
}
hits_run() { # TARGET KEYS N: C=1 reads over KEYS keys (warm-up reads each once); the JSON line
    timeout 900 taskset -c "$LG_CPUS" "$MCLOAD" --port "${PORT[$1]}" -c 1 --keys "$2" --warmup "$2" \
        --warmup-seconds 800 -n "$3" --seconds "$SECONDS_CAP" --size 256 \
        --stats-url "${STATS[$1]}" 2>>"$OUT/logs/mcload.err"
}

# ---- memory: bytes per cache entry, per idle connection ------------------------------------
if [ "$MEMORY" = 1 ]; then
    echo "# memory per cache entry ($ENTRIES entries of a 256 B reply; $(($(date +%s) - start_s)) s)" >&2
    if start_mongocache mc-entries up-256 --cache-memory 16GiB; then
        pid=${SPIDS[mc-entries]}
        # 1,000 entries first: their hit p50 is the small-cache reference
        small=$(hits_run mc-entries 1000 "$N_C1") || small="{}"
        rss0=$(rss_of "$pid" || echo 0)
        e0=$(stat_field "${STATS[mc-entries]}" entries || echo 0)
        b0=$(stat_field "${STATS[mc-entries]}" bytes || echo 0)
        big=$(hits_run mc-entries "$ENTRIES" "$N_C1") || big="{}"
        rss1=$(rss_of "$pid" || echo 0)
        e1=$(stat_field "${STATS[mc-entries]}" entries || echo 0)
        b1=$(stat_field "${STATS[mc-entries]}" bytes || echo 0)
        echo "{\"memory\": \"entries\", \"reply_bytes\": 256, \"entries_small\": $e0, \"entries\": $e1," \
            "\"rss_before\": $rss0, \"rss_after\": $rss1, \"cache_bytes_before\": $b0, \"cache_bytes_after\": $b1," \
            "\"p50_small\": $(json_field "$small" p50), \"p50_big\": $(json_field "$big" p50)," \
            "\"hit_ratio_small\": $(json_field "$small" hit_ratio), \"hit_ratio_big\": $(json_field "$big" hit_ratio)}" >>"$RESULTS"
        kill -TERM "$pid" 2>/dev/null || true
    fi
    if [ -x "$CACHE_ENTRY_BYTES" ]; then
        # the cache alone, through its own door (no proxy, no sockets)
        timeout 600 taskset -c "$FRONT_CPUS" "$CACHE_ENTRY_BYTES" "$ENTRIES" >"$OUT/logs/cache_entry_bytes.txt" 2>&1 &&
            python3 - "$OUT/logs/cache_entry_bytes.txt" >>"$RESULTS" <<'EOF' || true
import json, re, sys
d = {"memory": "entry_unit"}
for line in open(sys.argv[1]):
    m = re.match(r"entries (\d+), reply (\d+) bytes", line)
    if m:
        d["entries"], d["reply_bytes"] = int(m.group(1)), int(m.group(2))
    m = re.match(r"(accounted|malloc|rss) ([\d.]+)", line)
    if m:
        d[m.group(1)] = float(m.group(2))
if "malloc" in d:
    print(json.dumps(d))
EOF
    fi
    echo "# memory per idle connection ($IDLE connections after a driver handshake; $(($(date +%s) - start_s)) s)" >&2
    # mongocache holds two descriptors per client (it and its upstream connection)
    if [ $((IDLE * 2 + 200)) -gt "$(ulimit -n)" ]; then
        IDLE=$((($(ulimit -n) - 200) / 2))
        echo "# idle connections: $IDLE (two descriptors each in mongocache; ulimit -n $(ulimit -n) allows no more)" >&2
    fi
    if start_mongocache mc-idle up-256 --max-clients $((IDLE + 100)); then
        pid=${SPIDS[mc-idle]}
        before=$(hits_run mc-idle "$KEYS" "$N_C1") || before="{}"
        timeout 900 taskset -c "$LG_CPUS" python3 "$here/idle_conns.py" --port "${PORT[mc-idle]}" \
            --pid "$pid" -n "$IDLE" --hold-seconds 600 >"$OUT/logs/idle.json" 2>"$OUT/logs/idle.err" &
        ipid=$!
        TPIDS+=("$ipid")
        for i in $(seq 1 1200); do
            [ -s "$OUT/logs/idle.json" ] && break
            kill -0 "$ipid" 2>/dev/null || break
            sleep 0.1
        done
        if [ -s "$OUT/logs/idle.json" ]; then
            during=$(hits_run mc-idle "$KEYS" "$N_C1") || during="{}"
            idle=$(head -n 1 "$OUT/logs/idle.json")
            echo "{\"memory\": \"idle\", \"idle\": $idle, \"p50_without\": $(json_field "$before" p50)," \
                "\"p50_with\": $(json_field "$during" p50)}" >>"$RESULTS"
        else
            echo "# idle connections: idle_conns.py gave no result (logs/idle.err)" >&2
        fi
        kill -TERM "$ipid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    fi
fi

# ---- cache = off: no cache work (callgrind) --------------------------------------------------
# cg_cache_work MODE FLAGS...: mongocache (FLAGS) under callgrind against the
# canned upstream: every key read once (not counted), then CG_REQS requests
# counted; appends the instructions per request in all, in cache/ (every
# instruction whose source line is in a cache/*.c or cache/*.h file, code
# inlined from a cache/ header included) and, shown apart, in the latency
# histograms (conf/hist.[ch]: a request metric, not cache work).
CG_REQS=$([ "$QUICK" = 1 ] && echo 500 || echo 2000)
cg_cache_work() {
    local mode=$1 port http cg dump child
    shift
    port=$(free_port)
    http=$(free_port)
    timeout 600 taskset -c "$FRONT_CPUS" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/logs/callgrind-$mode.out" "$MONGOCACHE" --listen "127.0.0.1:$port" \
        --upstream "mongodb://127.0.0.1:${PORT[up-256]}" --http-listen "127.0.0.1:$http" \
        --log-level warn --cache-ttl 1h "$@" >"$OUT/logs/callgrind-$mode.log" 2>&1 &
    cg=$!
    TPIDS+=("$cg")
    wait_port "$port" "$cg" 60 || { echo "# callgrind $mode: mongocache did not come up" >&2; return 0; }
    child=$(pgrep -P "$cg" | head -n 1 || true)
    [ -n "$child" ] && cg=$child # valgrind itself (timeout's child; taskset execs it)
    sleep 0.5
    timeout 300 taskset -c "$LG_CPUS" "$MCLOAD" --port "$port" -c 1 -n "$KEYS" --warmup "$KEYS" \
        --keys "$KEYS" --size 256 --seconds 120 --warmup-seconds 120 >/dev/null 2>>"$OUT/logs/mcload.err" || true
    callgrind_control -i on "$cg" >/dev/null 2>&1 || true
    timeout 300 taskset -c "$LG_CPUS" "$MCLOAD" --port "$port" -c 1 -n "$CG_REQS" --warmup 0 \
        --keys "$KEYS" --size 256 --seconds 120 >/dev/null 2>>"$OUT/logs/mcload.err" || true
    callgrind_control -i off "$cg" >/dev/null 2>&1 || true
    callgrind_control -d "$cg" >/dev/null 2>&1 || true
    sleep 1
    kill -TERM "$cg" 2>/dev/null || true
    sleep 1
    dump=$(ls "$OUT/logs/callgrind-$mode.out".* 2>/dev/null | head -n 1 || true)
    [ -n "$dump" ] || { echo "# callgrind $mode: no dump" >&2; return 0; }
    callgrind_annotate --inclusive=no --threshold=100 "$dump" >"$OUT/logs/callgrind-$mode.txt" 2>/dev/null || true
    python3 - "$OUT/logs/callgrind-$mode.txt" "$mode" "$CG_REQS" >>"$RESULTS" <<'EOF' || true
import json, re, sys
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
total, cache, hist, fns = 0, 0, 0, {}
for line in open(path):
    m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+?):(\S+)", line)
    if not m:
        continue
    ir = int(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in line:
        total = ir
        continue
    f, fn = m.group(2), m.group(3)
    if re.search(r"(^|/)cache/[^/]+\.[ch]$", f):
        cache += ir
        fns[fn] = fns.get(fn, 0) + ir
    elif re.search(r"(^|/)conf/hist\.[ch]$", f):
        hist += ir
if total == 0:
    for line in open(path):
        m = re.match(r"\s*([\d,]+)\s+\(100", line) or re.match(r"\s*([\d,]+)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            break
top = sorted(fns.items(), key=lambda kv: -kv[1])[:5]
print(json.dumps({"callgrind": mode, "requests": n, "ir_per_request": round(total / n, 1),
                  "cache_ir": cache, "cache_ir_per_request": round(cache / n, 1),
                  "hist_ir_per_request": round(hist / n, 1),
                  "cache_top": {k: round(v / n, 1) for k, v in top}}))
EOF
}
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then
    echo "# cache work with cache = off (callgrind, $CG_REQS pass-through requests; control: hits; $(($(date +%s) - start_s)) s)" >&2
    cg_cache_work off --cache false
    cg_cache_work on
elif [ "$CALLGRIND" = 1 ]; then
    echo "# cache = off instruction count skipped: no valgrind" >&2
fi

# ---- S6: a Mongoose app, exec-patch Redis cache vs mongocache vs direct ---------------------
S6_DIR=$here/s6
S6_MONGOOSE=$top/tests/integration/node/node_modules/mongoose
if [ "$S6" = 1 ] && [ "$FERRET_ON" = 1 ] && [ -n "${PORT[mc-on-ferret]:-}" ] && command -v node >/dev/null 2>&1 &&
    [ -d "$S6_MONGOOSE" ] && [ -d "$S6_DIR/node_modules/redis" ]; then
    echo "# S6: Mongoose app ($S6_REPS repetition(s): exec-patch Redis cache, through mongocache, direct; $(($(date +%s) - start_s)) s)" >&2
    S6_KEYS=$([ "$QUICK" = 1 ] && echo 50 || echo 100)
    S6_RUNS=$S6_REPS
    start_redis redis-s6 0 back || { echo "# S6 skipped: its Redis did not start" >&2; S6_RUNS=0; }
    for ((rep = 1; rep <= S6_RUNS; rep++)); do
        for v in $(rotate $((rep - 1)) a b c); do
            # --pids: the CPU per request of every process behind the app
            case $v in
            a) s6args=(--mode patch --uri "mongodb://127.0.0.1:${PORT[ferretdb]}/s6a"
                --redis "redis://127.0.0.1:${PORT[redis-s6]}"
                --pids "redis=${SPIDS[redis-s6]},ferretdb=${SPIDS[ferretdb]}") ;;
            b) s6args=(--mode plain --uri "mongodb://127.0.0.1:${PORT[mc-on-ferret]}/s6b"
                --stats-url "${STATS[mc-on-ferret]}"
                --pids "mongocache=${SPIDS[mc-on-ferret]},ferretdb=${SPIDS[ferretdb]}") ;;
            c) s6args=(--mode plain --uri "mongodb://127.0.0.1:${PORT[ferretdb]}/s6c"
                --pids "ferretdb=${SPIDS[ferretdb]}") ;;
            esac
            if out=$(timeout 300 taskset -c "$LG_CPUS" node "$S6_DIR/s6.js" "${s6args[@]}" \
                --label "S6$v" --keys "$S6_KEYS" --n1 "$S6_N1" --n "$S6_N" --seconds "$S6_SECONDS" -c 16 \
                --warm "$S6_WARM" 2>>"$OUT/logs/s6.err"); then
                echo "${out%\}}, \"rep\": $rep}" >>"$RESULTS"
            else
                echo "# S6$v (rep $rep) failed (logs/s6.err)" >&2
            fi
        done
    done
    # Once: where a cached findOne's time goes in Node, layer by layer (s6/layers.js),
    # through mongocache, with the exec patch's Redis beside it.
    if [ "$S6_RUNS" -gt 0 ]; then
        if out=$(timeout 300 taskset -c "$LG_CPUS" node "$S6_DIR/layers.js" \
            --uri "mongodb://127.0.0.1:${PORT[mc-on-ferret]}/s6l" --redis "redis://127.0.0.1:${PORT[redis-s6]}" \
            --keys "$S6_KEYS" --n1 "$S6_LAYERS_N1" --n "$S6_LAYERS_N" -c 16 2>>"$OUT/logs/s6.err"); then
            echo "{\"s6_layers\": ${out}}" >>"$RESULTS"
        else
            echo "# S6 layers failed (logs/s6.err)" >&2
        fi
    fi
elif [ "$S6" = 1 ]; then
    echo "# S6 skipped: needs FerretDB, node, tests/integration/node's mongoose and bench/s6's node_modules (tests/setup.sh)" >&2
fi

# ---- summary ---------------------------------------------------------------------------------
MACHINE="$(nproc) CPUs; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 - "$RESULTS" "$REPS" "$QUICK" "$S4_ON" "$OUT/summary.md" "$MACHINE" "$LAYOUT_TEXT" "$LAYOUT" \
    "$LG_CPUS" "$SUT_CPU" <<'EOF'
import json, statistics, sys
from collections import defaultdict

path, reps, quick, s4_on, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5]
machine, layout, layout_name, lg_cpus, sut_cpu = sys.argv[6:11]
runs, sysc, failures, memory, cg, s6, s6layers = [], [], [], {}, {}, [], None
for line in open(path):
    d = json.loads(line)
    if "syscalls" in d:
        sysc.append(d)
    elif "memory" in d:
        memory[d["memory"]] = d
    elif "callgrind" in d:
        cg[d["callgrind"]] = d
    elif "s6" in d:
        s6.append(d)
    elif "s6_layers" in d:
        s6layers = d["s6_layers"]
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
    if len(vals) == 1:
        return fmt(vals[0], digits)
    return "%s [%s, %s]" % (fmt(statistics.median(vals), digits), fmt(min(vals), digits), fmt(max(vals), digits))

def group_title(g):
    f = g.split(":")
    if f[0] == "w1":
        return "W1 find {_id: k}, reply %s B, C=%s, closed loop" % (f[1], f[2])
    if f[0] == "pt":
        return ("W1 pass-through and its anchors, reply %s B, C=%s, closed loop; what sits behind them"
                " (canned upstream, nutcracker's Redis) moved to CPU %s with the load generator: no"
                " proxy-and-upstream preemption" % (f[1], f[2], lg_cpus))
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
order = {"w1": 0, "pt": 1, "open": 2, "delay": 3, "ferret": 4}
groups.sort(key=lambda g: (order.get(g.split(":")[0], 9), [int(x) if x.isdigit() else 0 for x in g.split(":")[1:]]))
scen_order = ["A0", "A1", "A1m", "A2", "A3", "S1", "S2", "S3", "S4"]
names = {"A0": "raw echo (mcload --server --raw)", "A1": "Redis GET (redis-benchmark)",
         "A1m": "Redis GET (mcload --resp)",
         "A2": "twemproxy + Redis GET (nutcracker)", "A3": "zero-logic relay (bench/relay)",
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

def cpu_by_process(rs):
    labels = []
    for r in rs:
        for k in (r.get("cpu_us") or {}):
            if k not in labels:
                labels.append(k)
    return ", ".join("%s %s" % (k, fmt(statistics.median([r["cpu_us"][k] for r in rs if k in (r.get("cpu_us") or {})]), 2))
                     for k in labels) or "-"

out("# mongocache benchmark: %d repetition%s%s" % (reps, "" if reps == 1 else "s", " (quick)" if quick else ""))
out()
out("Median [min, max] over repetitions. Latencies in microseconds; CPU us/req is the CPU per request")
out("of the process the scenario talks to (mongocache for S2-S4, redis-server for A1/A1m, nutcracker for")
out("A2, the relay for A3, the canned server for A0/S1, FerretDB for its S1), warm-up included; CPU by")
out("process: every process of the scenario (median, us per request; upstream: the canned server or")
out("FerretDB behind the proxy, redis: the Redis behind nutcracker or mongocache's tier), from")
out("/proc/PID/stat utime + stime; loadgen CPU is the load generator's busy fraction (mcload only).")
out()
out("Machine: %s." % machine)
out()
out("Layout: %s." % layout)
out()
for g in groups:
    out("## " + group_title(g))
    out()
    out("| scenario | req/s | p50 | p99 | p99.9 | CPU us/req | CPU by process | loadgen CPU | hit ratio | errors |")
    out("|---|---|---|---|---|---|---|---|---|---|")
    for s in scen_order:
        reps_d = by.get((g, s))
        if not reps_d:
            continue
        rs = list(reps_d.values())
        hr = [r["hit_ratio"] for r in rs if r.get("hit_ratio") is not None]
        out("| %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            s, names[s], mmm([r["rps"] for r in rs], 0), mmm([r["p50"] for r in rs]),
            mmm([r["p99"] for r in rs]), mmm([r.get("p999") for r in rs]),
            mmm([r.get("sut_cpu_us") for r in rs], 2), cpu_by_process(rs),
            mmm([r.get("loadgen_cpu") for r in rs], 2),
            ("%.3f" % min(hr)) if hr else "-", sum(r.get("errors", 0) for r in rs)))
    lb = [loadgen_bound(g, rep) for rep in range(1, reps + 1)]
    lb = [x for x in lb if x is not None]
    if lb:
        nb = sum(lb)
        out()
        out("loadgen-bound (A0 req/s < 1.5 x best of S2-S4): %s (%d of %d repetitions)" % (
            "YES" if nb * 2 > len(lb) else "no", nb, len(lb)))
    out()
out("Hit ratio: hits / (hits + misses + bypassed reads) of mongocache's /stats over the measured part")
out("(bypassed: cache.bypassed plus bypass_reasons.cache_off).")
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

def cpu(g, s, rep, proc):
    return by[(g, s)][rep]["cpu_us"][proc]

def verdict(v, goal, acc, better):
    if v is None or goal is None:
        return ""
    ok = {"low": lambda x, t: x <= t, "high": lambda x, t: x >= t, "lt": lambda x, t: x < t,
          "eq": lambda x, t: x == t}[better]
    if ok(v, goal):
        return "goal"
    return "acceptable" if acc is not None and ok(v, acc) else "MISS"

OPS = {"low": "<=", "high": ">=", "lt": "<", "eq": "="}

def table(rows):
    out("| metric | measured: median [min, max] | goal | acceptable | verdict |")
    out("|---|---|---|---|---|")
    for name, vals, goal, acc, better, digits in rows:
        if isinstance(vals, str):  # context, no target
            out("| %s | %s | - | - |  |" % (name, vals))
            continue
        vals = [v for v in vals if v is not None]
        med = statistics.median(vals) if vals else None
        op = OPS[better]
        acc_op = "<=" if better == "lt" else op
        out("| %s | %s | %s | %s | %s |" % (name, mmm(vals, digits),
            "%s %s" % (op, goal) if goal is not None else "-",
            "%s %s" % (acc_op, acc) if acc is not None else "-",
            verdict(med, goal, acc, better)))
    out()

# ---- issue 9: every figure beside its target ----
i9 = []  # (metric, vals, goal, acceptable, better, digits)
# The pass-through CPU rows come from a placement without proxy-and-upstream
# preemption on one CPU: the pt group (pinned layout: the back processes
# moved to the load generator's CPU for it), or the w1 group itself in the
# split layout; with none, nothing is pinned and the row says so.
def pt_group(s):
    g = "pt:%d:50" % s
    return g if any(k[0] == g for k in by) else "w1:%d:50" % s
def pt_where(g):
    if g.startswith("pt:"):
        return "upstream and nutcracker's Redis moved to CPU %s with the load generator: no preemption" % lg_cpus
    if layout_name == "split":
        return "layout split: upstream and Redis on CPU %s with the load generator" % lg_cpus
    return "layout %s: not pinned, preemption possible" % layout_name
for s in (256, 4096):
    g50 = pt_group(s)
    i9.append(("pass-through proxy CPU per request / zero-logic relay's (C=50, %d B; %s)" % (s, pt_where(g50)),
               per_rep(lambda r: cpu(g50, "S2", r, "mongocache") / cpu(g50, "A3", r, "relay")), 1.15, 1.3, "low", 2))
    i9.append(("pass-through proxy CPU per request / twemproxy's, 1:1 (C=50, %d B; the same placement)" % s,
               per_rep(lambda r: cpu(g50, "S2", r, "mongocache") / cpu(g50, "A2", r, "nutcracker")), 1.0, 1.1, "lt", 2))
    i9.append(("  CPU us per request: mongocache pass-through / relay / twemproxy (C=50, %d B; the same placement)" % s,
               "%s / %s / %s" % (mmm(per_rep(lambda r: cpu(g50, "S2", r, "mongocache")), 2),
                                 mmm(per_rep(lambda r: cpu(g50, "A3", r, "relay")), 2),
                                 mmm(per_rep(lambda r: cpu(g50, "A2", r, "nutcracker")), 2)),
               None, None, "low", 2))
if "off" in cg:
    i9.append(("cache = off: instructions in cache/ per pass-through (callgrind, %d requests; hits with cache on: %s)" % (
        cg["off"]["requests"], fmt(cg["on"]["cache_ir_per_request"], 0) if "on" in cg else "-"),
        [cg["off"]["cache_ir_per_request"]], 0, 0, "eq", 1))
# redis_rows(s, anchor, p50_what, rps_what): the hit rows against a Redis GET anchor of size s.
def redis_rows(s, anchor, p50_what, rps_what):
    g1, g50 = "w1:%d:1" % s, "w1:%d:50" % s
    rows = [("in-process hit p50 / Redis GET p50 (C=1, %d B; %s)" % (s, p50_what),
             per_rep(lambda r: get(g1, "S3", r, "p50") / get(g1, anchor, r, "p50")), 1.0, 1.25, "low", 2),
            ("in-process hit req/s / Redis GET req/s (C=50, %d B; %s)" % (s, rps_what),
             per_rep(lambda r: get(g50, "S3", r, "rps") / get(g50, anchor, r, "rps")), 1.0, 0.8, "high", 2)]
    if s4_on:
        rows += [("Redis-tier hit req/s / Redis GET req/s (C=50, %d B; %s)" % (s, rps_what),
                  per_rep(lambda r: get(g50, "S4", r, "rps") / get(g50, anchor, r, "rps")), 0.6, 0.45, "high", 2),
                 ("Redis-tier hit p50 / Redis GET p50 (C=1, %d B; %s)" % (s, p50_what),
                  per_rep(lambda r: get(g1, "S4", r, "p50") / get(g1, anchor, r, "p50")), 1.5, 2.2, "low", 2)]
    return rows
for s in (256, 4096):
    g1 = "w1:%d:1" % s
    # The Redis GET read by mcload --resp (A1m), the client of S3/S4: p50
    # exact to 1 us (redis-benchmark's comes in 8 us buckets); at C=50
    # redis-benchmark leaves Redis idle part of the time (its req/s is the
    # client's limit; see "Other ratios" and bench/README.md), mcload --resp
    # drives the same Redis to its limit.
    i9 += redis_rows(s, "A1m", "GET by mcload --resp, A1m: the client of S3/S4, exact to 1 us",
                     "GET by mcload --resp, A1m: it keeps Redis busy, redis-benchmark does not")
    i9.append(("pass-through added p50, S2 - S1, us (C=1, %d B)" % s,
               per_rep(lambda r: get(g1, "S2", r, "p50") - get(g1, "S1", r, "p50")), 15, 30, "low", 1))
m = memory.get("entries")
if m and m["entries"] > m["entries_small"]:
    n = m["entries"] - m["entries_small"]
    per = (m["rss_after"] - m["rss_before"]) / n - m["reply_bytes"]
    acct = (m["cache_bytes_after"] - m["cache_bytes_before"]) / n - m["reply_bytes"]
    i9.append(("RSS per cache entry beyond its %d B reply (%d entries; the cache's own count: %.0f)" % (
        m["reply_bytes"], m["entries"], acct), [per], 96, 160, "low", 0))
    if m.get("p50_small") and m.get("p50_big"):
        i9.append(("hit p50 at %d entries / at %d (C=1)" % (m["entries"], m["entries_small"]),
                   [m["p50_big"] / m["p50_small"]], 1.05, 1.10, "low", 3))
m = memory.get("entry_unit")
if m:
    i9.append(("  the cache alone (bench/cache_entry_bytes, %d entries of a %d B reply): bytes beyond the reply,"
               " malloc'd (accounted %s, RSS %s)" % (m["entries"], m["reply_bytes"], fmt(m.get("accounted")),
                                                     fmt(m.get("rss"))), [m["malloc"]], 96, 160, "low", 1))
m = memory.get("idle")
if m and m["idle"].get("bytes_per_connection") is not None:
    i9.append(("RSS per idle client connection after a driver handshake (%d connections)" % m["idle"]["idle_connections"],
               [m["idle"]["bytes_per_connection"]], 2048, 3072, "low", 0))
    if m.get("p50_with") and m.get("p50_without"):
        i9.append(("hit p50 with those connections idle / without (C=1)", [m["p50_with"] / m["p50_without"]],
                   1.05, 1.10, "low", 3))
sy = {d["syscalls"]: d for d in sysc}
if "S3" in sy:
    i9.append(("syscalls per hit (S3, C=1; strace -c -f on mongocache)", [sy["S3"]["per_request"]], 3, 4, "low", 2))
if "S2" in sy:
    i9.append(("syscalls per pass-through (S2, C=1; both of mongocache's sockets)", [sy["S2"]["per_request"]], 6, 8, "low", 2))
for k in ("S3", "S2"):
    if k in sy:
        i9.append(("epoll_ctl per request (%s, C=1)" % k, [sy[k]["epoll_ctl"]], 0, 0, "eq", 2))
s6by = defaultdict(dict)  # rep -> label -> line
for d in s6:
    s6by[d["rep"]][d["s6"]] = d
def s6ratio(fn):
    v = []
    for rep, d in s6by.items():
        try:
            v.append(fn(d))
        except (KeyError, ZeroDivisionError, TypeError):
            pass
    return v
if s6:
    i9.append(("S6 cached query p50: mongocache / exec-patch Redis cache (C=1)",
               s6ratio(lambda d: d["S6b"]["c1"]["p50"] / d["S6a"]["c1"]["p50"]), 1.0, 1.0, "lt", 2))
    i9.append(("S6 cached query req/s: mongocache / exec-patch Redis cache (C=16)",
               s6ratio(lambda d: d["S6b"]["cN"]["rps"] / d["S6a"]["cN"]["rps"]), 1.0, 1.0, "high", 2))
    for lab, what in (("S6b", "mongocache"), ("S6a", "exec-patch Redis cache")):
        ok = [d[lab]["types_ok"] for d in s6by.values() if lab in d]
        i9.append(("S6 BSON types survive a cached read, %s (1 yes, 0 no)" % what,
                   [1.0 if all(ok) else 0.0] if ok else [], 1 if lab == "S6b" else None, None, "eq", 0))
    for lab, what in (("S6b", "mongocache"), ("S6a", "exec-patch Redis cache")):
        ok = [d[lab].get("write_seen") for d in s6by.values() if lab in d]
        i9.append(("S6 a write through the app is seen by the next cached read, %s (1 yes, 0 no)" % what,
                   [1.0 if all(ok) else 0.0] if ok else [], 1 if lab == "S6b" else None, None, "eq", 0))

out("## Issue 9: every figure beside its target")
out()
table(i9)

# ---- the other ratios of the target table ----
other = []
for s in (256, 4096):
    g1, g50 = "w1:%d:1" % s, "w1:%d:50" % s
    if pt_group(s) != g50:  # the issue-9 rows came from the pt group: the pinned layout's here
        other.append(("pass-through proxy CPU per request / relay's, everything on CPU %s (C=50, %d B; pinned:"
                      " proxy and upstream preempt each other)" % (sut_cpu, s),
                      per_rep(lambda r: cpu(g50, "S2", r, "mongocache") / cpu(g50, "A3", r, "relay")),
                      1.15, 1.3, "low", 2))
        other.append(("  the same / twemproxy's (C=50, %d B; pinned)" % s,
                      per_rep(lambda r: cpu(g50, "S2", r, "mongocache") / cpu(g50, "A2", r, "nutcracker")),
                      1.0, 1.1, "lt", 2))
    other += redis_rows(s, "A1", "GET by redis-benchmark, A1: p50 in 8 us buckets", "GET by redis-benchmark, A1")
    # which Redis GET anchor is the fair one at C=50: the clients side by side,
    # and how busy Redis was under each (CPU us per GET x GET/s)
    other.append(("  Redis GET at C=50, %d B: req/s mcload --resp / redis-benchmark; Redis busy fraction under"
                  " redis-benchmark; under mcload; S3's mongocache busy fraction; S3's mcload CPU" % s,
                  "%s; %s; %s; %s; %s" % (
                      mmm(per_rep(lambda r: get(g50, "A1m", r, "rps") / get(g50, "A1", r, "rps")), 2),
                      mmm(per_rep(lambda r: cpu(g50, "A1", r, "redis") * get(g50, "A1", r, "rps") / 1e6), 2),
                      mmm(per_rep(lambda r: cpu(g50, "A1m", r, "redis") * get(g50, "A1m", r, "rps") / 1e6), 2),
                      mmm(per_rep(lambda r: cpu(g50, "S3", r, "mongocache") * get(g50, "S3", r, "rps") / 1e6), 2),
                      mmm(per_rep(lambda r: get(g50, "S3", r, "loadgen_cpu")), 2)),
                  None, None, "high", 2))
    other.append(("  Redis GET p50 at C=1, %d B: redis-benchmark / mcload --resp" % s,
                  per_rep(lambda r: get(g1, "A1", r, "p50") / get(g1, "A1m", r, "p50")), None, None, "low", 2))
    other.append(("in-process hit p50 / raw echo p50 (C=1, %d B)" % s,
                  per_rep(lambda r: get(g1, "S3", r, "p50") / get(g1, "A0", r, "p50")), 1.3, 1.5, "low", 2))
    other.append(("pass-through req/s / direct req/s (C=50, %d B)" % s,
                  per_rep(lambda r: get(g50, "S2", r, "rps") / get(g50, "S1", r, "rps")), None, None, "high", 2))
    other.append(("  the same for the relay; twemproxy + Redis GET / Redis GET (C=50, %d B)" % s,
                  "%s; %s" % (mmm(per_rep(lambda r: get(g50, "A3", r, "rps") / get(g50, "S1", r, "rps")), 2),
                              mmm(per_rep(lambda r: get(g50, "A2", r, "rps") / get(g50, "A1", r, "rps")), 2)),
                  None, None, "high", 2))
    other.append(("proxy CPU per hit / Redis CPU per GET (C=50, %d B; Redis under mcload --resp, A1m, "
                  "as S3: the same client)" % s,
                  per_rep(lambda r: cpu(g50, "S3", r, "mongocache") / cpu(g50, "A1m", r, "redis")), 1.0, 1.3, "low", 2))
    other.append(("  the same with Redis under redis-benchmark (A1; it batches fewer GETs per wake-up)",
                  per_rep(lambda r: cpu(g50, "S3", r, "mongocache") / cpu(g50, "A1", r, "redis")), None, None, "low", 2))
other.append(("hit vs direct, upstream delay 150 us (C=1): direct p50 / hit p50",
              per_rep(lambda r: get("delay:150", "S1", r, "p50") / get("delay:150", "S3", r, "p50")), 4, 3, "high", 2))
other.append(("  ceiling here: delay 150 us direct p50 / raw echo p50 (C=1, 256 B)",
              per_rep(lambda r: get("delay:150", "S1", r, "p50") / get("w1:256:1", "A0", r, "p50")), None, None, "high", 2))
other.append(("hit vs direct, upstream delay 1 ms (C=1): direct p50 / hit p50",
              per_rep(lambda r: get("delay:1000", "S1", r, "p50") / get("delay:1000", "S3", r, "p50")), None, None, "high", 2))
for s in (256, 4096):
    g = "ferret:%d" % s
    if any(k[0] == g for k in by):
        other.append(("hit vs direct, FerretDB upstream (C=1, %d B): direct p50 / hit p50" % s,
                      per_rep(lambda r: get(g, "S1", r, "p50") / get(g, "S3", r, "p50")), None, None, "high", 2))
out("## Other ratios (computed per repetition, then the median)")
out()
table(other)

if sysc:
    out("## Syscalls per request (strace -c -f on the process named, C=1, 256 B, steady state)")
    out()
    out("Two runs on new connections, a quarter and all of the requests; per request is the difference")
    out("of their counts over the difference of their requests (setup: the calls once per connection);")
    out("calls on fewer than 1 request in 20 (another thread, a reconnect, a timer) are \"other\", apart.")
    out()
    out("| scenario | process | syscalls/request | setup | epoll_ctl | by call (per request) |")
    out("|---|---|---|---|---|---|")
    for d in sysc:
        ec, ecn = d.get("epoll_ctl", 0), d.get("epoll_ctl_calls", 0)
        out("| %s | %s | %.2f | %s | %s | %s |" % (d["syscalls"], d.get("process", "-"), d["per_request"],
            d.get("setup_calls", "-"),
            ("%.2f per request" % ec) if ec else ("none per request (%d in the longer run: connection setup)" % ecn
                                                   if ecn else "none"),
            ", ".join("%s %.2f" % (k, v) for k, v in d["by_call"].items())))
    out()
if memory:
    out("## Memory")
    out()
    m = memory.get("entries")
    if m:
        out("- entries: %d of a %d B reply; RSS %d -> %d bytes with %d -> %d entries; cache bytes %d -> %d;"
            " hit p50 %s us at %d entries, %s us at %d (hit ratio %s, %s)" % (
            m["entries"], m["reply_bytes"], m["rss_before"], m["rss_after"], m["entries_small"], m["entries"],
            m["cache_bytes_before"], m["cache_bytes_after"], fmt(m.get("p50_small")), m["entries_small"],
            fmt(m.get("p50_big")), m["entries"], m.get("hit_ratio_small"), m.get("hit_ratio_big")))
    m = memory.get("entry_unit")
    if m:
        out("- the cache alone (bench/cache_entry_bytes %d): beyond each %d B reply, accounted %s, malloc %s,"
            " RSS %s bytes" % (m["entries"], m["reply_bytes"], fmt(m.get("accounted")), fmt(m.get("malloc")),
                               fmt(m.get("rss"))))
    m = memory.get("idle")
    if m:
        i = m["idle"]
        out("- idle connections: %d open after a driver handshake (%d failed); RSS %d -> %d bytes;"
            " hit p50 %s us without, %s us with them" % (i["idle_connections"], i["failed"], i["rss_before"],
            i["rss_after"], fmt(m.get("p50_without")), fmt(m.get("p50_with"))))
    out()
if cg:
    out("## Instructions (callgrind, mongocache, C=1, 256 B)")
    out()
    out("| run | requests | instructions/request | in cache/ per request | top cache/ functions per request | latency histograms (conf/hist, not cache work) per request |")
    out("|---|---|---|---|---|---|")
    for k, what in (("off", "pass-through, cache = off"), ("on", "hits, cache on (control)")):
        if k in cg:
            d = cg[k]
            out("| %s | %d | %s | %s | %s | %s |" % (what, d["requests"], fmt(d["ir_per_request"], 0),
                fmt(d["cache_ir_per_request"], 1),
                ", ".join("%s %s" % (f, fmt(v, 0)) for f, v in d["cache_top"].items()) or "-",
                fmt(d.get("hist_ir_per_request"), 1)))
    out()
if s6:
    out("## S6: a Mongoose app, findOne({_id}) over the same documents (FerretDB behind)")
    out()
    out("| variant | p50 C=1 | p99 C=1 | req/s C=16 | p50 C=16 | hit ratio | types survive | a write then a read sees it | what came back (hydrated; lean) |")
    out("|---|---|---|---|---|---|---|---|---|")
    s6names = {"S6a": "(a) exec-patch Redis cache", "S6b": "(b) through mongocache", "S6c": "(c) direct"}
    for lab in ("S6a", "S6b", "S6c"):
        ds = [d[lab] for d in s6by.values() if lab in d]
        if not ds:
            continue
        last = ds[-1]
        def got(t):
            return ", ".join("%s %s" % (k, v) for k, v in t["got"].items()) + (
                "" if t["checks"].get("lean_is_plain", True) else ", lean() answered with a Mongoose document")
        hr = [d["hit_ratio"] for d in ds if d.get("hit_ratio") is not None]
        out("| %s | %s | %s | %s | %s | %s | %s | %s | %s; %s |" % (
            s6names[lab], mmm([d["c1"]["p50"] for d in ds]), mmm([d["c1"]["p99"] for d in ds]),
            mmm([d["cN"]["rps"] for d in ds], 0), mmm([d["cN"]["p50"] for d in ds]),
            ("%.3f" % min(hr)) if hr else "-", "yes" if all(d["types_ok"] for d in ds) else "NO",
            "yes" if all(d.get("write_seen") for d in ds) else "NO (stale)",
            got(last["types_hydrated"]), got(last["types_lean"])))
    out()
    out("CPU microseconds per cached read, by process (node: the app, one thread for JavaScript):")
    out()
    out("| variant | C=1: node | C=1: behind it | C=16: node | C=16: behind it |")
    out("|---|---|---|---|---|")
    for lab in ("S6a", "S6b", "S6c"):
        ds = [d[lab] for d in s6by.values() if lab in d and "cpu_us" in d[lab]["c1"]]
        if not ds:
            continue
        def behind(ph):
            names = [k for k in ds[-1][ph]["cpu_us"] if k != "node"]
            return ", ".join("%s %s" % (k, mmm([d[ph]["cpu_us"].get(k) for d in ds])) for k in names) or "-"
        out("| %s | %s | %s | %s | %s |" % (
            s6names[lab], mmm([d["c1"]["cpu_us"]["node"] for d in ds]), behind("c1"),
            mmm([d["cN"]["cpu_us"]["node"] for d in ds]), behind("cN")))
    out()
if s6layers:
    out("### S6 layers: one cached findOne({_id}) in Node, layer by layer (s6/layers.js, one pass, through mongocache)")
    out()
    out("| layer | p50 C=1 | node CPU us/read C=1 | req/s C=%s | node CPU us/read C=%s |" % (
        s6layers["concurrency"], s6layers["concurrency"]))
    out("|---|---|---|---|---|")
    what = {"raw": "raw: the driver's find bytes on a socket, reply awaited",
            "driver": "driver: collection.findOne",
            "lean": "Mongoose findOne().lean()",
            "mongoose": "Mongoose findOne() (S6 b, c)",
            "hget": "Redis HGET (node-redis)",
            "patch": "exec patch: findOne().cache() (S6 a)"}
    for k, label in what.items():
        if k in s6layers:
            v = s6layers[k]
            out("| %s | %s | %s | %s | %s |" % (label, fmt(v["c1"]["p50"], 1), fmt(v["c1"]["node_cpu_us"], 1),
                                              fmt(v["cN"]["rps"], 0), fmt(v["cN"]["node_cpu_us"], 1)))
    out()
if not s4_on and reps > 0:
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
