# tests/integration/lib.sh: sourced by every integration script (bash).
#
#   . "$(dirname "$0")/lib.sh"
#   mc_init                      # dirs, $MC_TMP, teardown trap, tool check
#   mc_start_ferretdb [ARGS]     # FERRET_PORT FERRET_URI FERRET_PID FERRET_LOG
#   mc_start_redis               # REDIS_PORT REDIS_PID
#   mc_start_rs_relay NAME FA,FB [--mongos|--lb]  # RELAY_A RELAY_B RELAY_CTL RELAY_PID
#   mc_make_ca DIR NAME; mc_make_cert DIR NAME CA SAN  # test certificates (openssl CLI)
#   mc_start_proxy [FLAGS]       # PROXY_PORT PROXY_URI PROXY_HTTP_PORT PROXY_PID PROXY_LOG
#   mc_stop_proxy                # SIGTERM, bounded wait; MC_PROXY_STATUS = exit status
#   mc_stop_checked NAME         # mc_stop_proxy, then one test: exit 0, no sanitizer report
#   mc_ok STATUS NAME; mc_is GOT WANT NAME; mc_done (prints the plan unless mc_plan N did)
#   mc_run_lines SUITE LABEL CMD...  # one group of unnumbered TAP lines and its own plan
#
# Everything listens on 127.0.0.1 only; every wait is bounded; teardown
# (EXIT, INT, TERM) kills every process started here and removes $MC_TMP
# (kept when MC_KEEP_TMP=1).
#
# Environment:
#   abs_top_srcdir, abs_top_builddir  set by `make check`; default: repo root
#   MONGOCACHE_REQUIRE_INTEGRATION=1  missing tools are an error, not a skip
#   MC_PROXY_BYPASS=1                 development only: no proxy is started and
#                                     PROXY_* point at FerretDB itself
#   MC_KEEP_TMP=1                     keep $MC_TMP for inspection
#   MC_PROXY_UPSTREAM=URI             mc_start_proxy forwards there instead of
#                                     to the FerretDB started by mc_start_ferretdb
#
# TAP goes to stdout; diagnostics are "# " lines.

# shellcheck disable=SC2034 # the variables set here are for the sourcing scripts
MC_PIDS=""
MC_N=0
MC_FAILED=0
MC_PLANNED=""

mc_diag() {
    printf '%s\n' "$@" | sed 's/^/# /'
}

mc_bail() {
    printf 'Bail out! %s\n' "$*"
    exit 1
}

# Adds a pid to the set killed at teardown.
mc_track() {
    MC_PIDS="$MC_PIDS $1"
}

mc_teardown() {
    local st=$? pid i alive
    trap - EXIT INT TERM
    for pid in $MC_PIDS; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # bounded: 5 s for everything to go, then SIGKILL
    for i in $(seq 1 50); do
        alive=""
        for pid in $MC_PIDS; do
            kill -0 "$pid" 2>/dev/null && alive="$alive $pid"
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for pid in $MC_PIDS; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${MC_TMP:-}" ] && [ -d "$MC_TMP" ]; then
        if [ "${MC_KEEP_TMP:-0}" = 1 ]; then
            echo "# kept $MC_TMP" >&2
        else
            rm -rf "$MC_TMP"
        fi
    fi
    exit "$st"
}

mc_init() {
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    abs_top_srcdir=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
    abs_top_builddir=${abs_top_builddir:-$abs_top_srcdir}
    export abs_top_srcdir abs_top_builddir
    MC_TESTDIR=$abs_top_srcdir/tests/integration
    MC_TOOLS=$abs_top_srcdir/.tools
    MC_FERRETDB=$MC_TOOLS/bin/ferretdb
    MC_PYTHON=$MC_TOOLS/venv/bin/python
    MC_NODE=node
    MC_NODE_DIR=$MC_TESTDIR/node
    MC_MONGOCACHE=$abs_top_builddir/mongocache

    local missing=""
    [ -x "$MC_FERRETDB" ] || missing="$missing ferretdb"
    [ -x "$MC_PYTHON" ] && "$MC_PYTHON" -c 'import pymongo' 2>/dev/null || missing="$missing python-venv"
    command -v "$MC_NODE" >/dev/null 2>&1 || missing="$missing node"
    [ -d "$MC_NODE_DIR/node_modules/mongodb" ] && [ -d "$MC_NODE_DIR/node_modules/mongoose" ] ||
        missing="$missing node_modules"
    command -v timeout >/dev/null 2>&1 || missing="$missing timeout"
    if [ -n "$missing" ]; then
        if [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
            mc_bail "integration tools missing:$missing (run tests/setup.sh)"
        fi
        echo "1..0 # SKIP run tests/setup.sh first (missing:$missing)"
        exit 0
    fi

    MC_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mongocache-it.XXXXXX")
    trap mc_teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Skips the whole script (TAP "1..0 # SKIP") when MC_PROXY_BYPASS=1 points the
# clients at FerretDB itself: WHAT says what its cases test that needs the proxy.
mc_skip_if_bypass() {
    if [ "${MC_PROXY_BYPASS:-0}" = 1 ]; then
        echo "1..0 # SKIP MC_PROXY_BYPASS=1: these cases $1"
        exit 0
    fi
}

# Each TOOL must be on PATH: a skip, or a bail out under MONGOCACHE_REQUIRE_INTEGRATION=1.
mc_need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "$tool not found"
            echo "1..0 # SKIP $tool not found"
            exit 0
        }
    done
}

# Prints a TCP port on 127.0.0.1 that nothing uses and that this run has not
# handed out before (recorded in $MC_TMP/ports, so $(mc_free_port) works).
# Below the kernel's ephemeral range when there is room (10,000 ports or more
# from 20000 up): the source ports of other tests' connections, running at
# the same time, come from that range and could take the port before it is bound.
mc_free_port() {
    local i port lo span=40000
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || lo=""
    [ -n "$lo" ] && [ "$lo" -ge 30000 ] 2>/dev/null && span=$((lo - 20000))
    for i in $(seq 1 200); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % span))
        grep -qx "$port" "$MC_TMP/ports" 2>/dev/null && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
        if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htan "sport = :$port" 2>/dev/null)" ]; then
            continue
        fi
        echo "$port" >>"$MC_TMP/ports"
        echo "$port"
        return 0
    done
    echo "mc_free_port: no free port found" >&2
    return 1
}

# mc_wait_port PORT PID SECONDS: 0 once 127.0.0.1:PORT accepts, 1 when PID
# died or time ran out.
mc_wait_port() {
    local port=$1 pid=$2 secs=$3 i
    for i in $(seq 1 $((secs * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Port $1 can't be reached any more after $2 seconds.
mc_wait_port_closed() {
    local port=$1 secs=$2 i
    for i in $(seq 1 $((secs * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

mc_log_tail() {
    echo "# --- last lines of $1:"
    tail -n "${2:-30}" "$1" 2>/dev/null | sed 's/^/#   /'
}

# mc_mongo_ping URI: the server answers hello (bounded by a 10 s timeout).
mc_mongo_ping() {
    timeout 20 "$MC_PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000, directConnection=True)
c.admin.command("hello")
EOF
}

MC_FERRET_N=0
mc_start_ferretdb() {
    MC_FERRET_N=$((MC_FERRET_N + 1))
    local dir=$MC_TMP/ferretdb.$MC_FERRET_N
    mkdir -p "$dir/data"
    FERRET_PORT=$(mc_free_port)
    FERRET_LOG=$dir/ferretdb.log
    "$MC_FERRETDB" --handler=sqlite --sqlite-url="file:$dir/data/" --state-dir="$dir" \
        --listen-addr="127.0.0.1:$FERRET_PORT" --telemetry=disable --debug-addr=- \
        --log-level=WARN "$@" >"$FERRET_LOG" 2>&1 &
    FERRET_PID=$!
    mc_track "$FERRET_PID"
    FERRET_URI=mongodb://127.0.0.1:$FERRET_PORT/
    if ! mc_wait_port "$FERRET_PORT" "$FERRET_PID" 30 || ! mc_mongo_ping "$FERRET_URI"; then
        mc_log_tail "$FERRET_LOG"
        mc_bail "FerretDB did not come up on 127.0.0.1:$FERRET_PORT"
    fi
}

# mc_start_rs_relay NAME FERRET_A,FERRET_B [ARGS]: rs_relay.py in front of two FerretDBs
# (a two-member replica set; two mongos servers with --mongos; a load balancer in front
# of two mongos with --lb, listening on RELAY_A only), its log and output in
# $MC_TMP/NAME.log and NAME.out. Sets RELAY_A, RELAY_B (the members' ports), RELAY_CTL
# (its control port) and RELAY_PID.
mc_start_rs_relay() {
    local name=$1 ferret=$2 port ports
    shift 2
    RELAY_A=$(mc_free_port)
    RELAY_B=$(mc_free_port)
    RELAY_CTL=$(mc_free_port)
    "$MC_PYTHON" "$MC_TESTDIR/rs_relay.py" "$@" --ferret "$ferret" --listen "$RELAY_A,$RELAY_B" \
        --control "$RELAY_CTL" --log "$MC_TMP/$name.log" >"$MC_TMP/$name.out" 2>&1 &
    RELAY_PID=$!
    mc_track "$RELAY_PID"
    # (with --lb only the first port listens: the balancer)
    case " $* " in *" --lb "*) ports="$RELAY_A $RELAY_CTL" ;; *) ports="$RELAY_A $RELAY_B $RELAY_CTL" ;; esac
    for port in $ports; do
        mc_wait_port "$port" "$RELAY_PID" 10 ||
            { mc_log_tail "$MC_TMP/$name.out"; mc_bail "$name: rs_relay.py did not start"; }
    done
}

# mc_make_ca DIR NAME: a self-signed CA, DIR/NAME.pem and DIR/NAME.key, valid 30 days.
mc_make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1/$2.key" -out "$1/$2.pem" \
        -days 30 -subj "/CN=mongocache test $2" >/dev/null 2>&1 || mc_bail "openssl: CA $2"
}

# mc_make_cert DIR NAME CA SAN: DIR/NAME.pem and NAME.key signed by DIR/CA, for SAN
# ("DNS:a,IP:127.0.0.1"), valid 30 days from now; NAME.both.pem holds both.
mc_make_cert() {
    local d=$1 n=$2
    printf 'subjectAltName=%s\n' "$4" >"$d/$n.ext"
    { openssl req -newkey rsa:2048 -nodes -keyout "$d/$n.key" -out "$d/$n.csr" -subj "/CN=$n" &&
        openssl x509 -req -in "$d/$n.csr" -CA "$d/$3.pem" -CAkey "$d/$3.key" \
            -CAcreateserial -out "$d/$n.pem" -days 30 -extfile "$d/$n.ext"; } >/dev/null 2>&1 ||
        mc_bail "openssl: certificate $n"
    cat "$d/$n.pem" "$d/$n.key" >"$d/$n.both.pem"
}

mc_start_redis() {
    command -v redis-server >/dev/null 2>&1 || mc_bail "redis-server not found (run tests/setup.sh)"
    local dir=$MC_TMP/redis.$$.$RANDOM
    mkdir -p "$dir"
    REDIS_PORT=$(mc_free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize no --dir "$dir" --protected-mode yes >"$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    mc_track "$REDIS_PID"
    if ! mc_wait_port "$REDIS_PORT" "$REDIS_PID" 10; then
        mc_log_tail "$dir/redis.log"
        mc_bail "redis-server did not come up on 127.0.0.1:$REDIS_PORT"
    fi
}

# mc_wait_tiers HTTP_PORT...: waits (at most 10 s) until each proxy's /stats shows its
# Redis tier connected; the callers' checks say what a tier still down did.
mc_wait_tiers() {
    local h n
    for _ in $(seq 1 100); do
        n=0
        for h in "$@"; do
            curl -s "http://127.0.0.1:$h/stats" 2>/dev/null |
                grep -Eq '"state" ?: ?"connected"' && n=$((n + 1))
        done
        [ "$n" = $# ] && return 0
        sleep 0.1
    done
    return 1
}

MC_PROXY_N=0
mc_start_proxy() {
    # the upstream: FerretDB started above, or MC_PROXY_UPSTREAM (a URI)
    local upstream=${MC_PROXY_UPSTREAM:-}
    if [ -z "$upstream" ]; then
        [ -n "${FERRET_PORT:-}" ] || mc_bail "mc_start_proxy: start FerretDB first (or set MC_PROXY_UPSTREAM)"
        upstream=mongodb://127.0.0.1:$FERRET_PORT
    fi
    MC_PROXY_N=$((MC_PROXY_N + 1))
    PROXY_LOG=$MC_TMP/proxy.$MC_PROXY_N.log
    if [ "${MC_PROXY_BYPASS:-0}" = 1 ]; then
        echo "# MC_PROXY_BYPASS=1: no proxy, PROXY_* point at FerretDB" >&2
        PROXY_PORT=$FERRET_PORT
        PROXY_HTTP_PORT=$(mc_free_port)
        PROXY_PID=$FERRET_PID
        PROXY_URI=$FERRET_URI
        : >"$PROXY_LOG"
        return 0
    fi
    [ -x "$MC_MONGOCACHE" ] || mc_bail "mongocache not built: $MC_MONGOCACHE"
    local st
    PROXY_PORT=$(mc_free_port)
    PROXY_HTTP_PORT=$(mc_free_port)
    "$MC_MONGOCACHE" --listen "127.0.0.1:$PROXY_PORT" \
        --upstream "$upstream" \
        --http-listen "127.0.0.1:$PROXY_HTTP_PORT" --log-level debug "$@" >"$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    mc_track "$PROXY_PID"
    MC_PROXY_PIDS="${MC_PROXY_PIDS:-} $PROXY_PID"
    PROXY_URI=mongodb://127.0.0.1:$PROXY_PORT/
    if ! mc_wait_port "$PROXY_PORT" "$PROXY_PID" 10; then
        if kill -0 "$PROXY_PID" 2>/dev/null; then
            echo "# mongocache (pid $PROXY_PID) does not accept on 127.0.0.1:$PROXY_PORT after 10 s"
        else
            wait "$PROXY_PID" 2>/dev/null && st=0 || st=$?
            echo "# mongocache exited with status $st"
        fi
        mc_log_tail "$PROXY_LOG"
        mc_bail "mongocache did not start"
    fi
}

# SIGTERM, then up to 15 s (the default drain is 10 s) before SIGKILL.
# Sets MC_PROXY_STATUS.
mc_stop_proxy() {
    MC_PROXY_STATUS=0
    [ "${MC_PROXY_BYPASS:-0}" = 1 ] && return 0
    [ -n "${PROXY_PID:-}" ] || return 0
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 150); do
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PROXY_PID" 2>/dev/null; then
        echo "# mongocache did not exit 15 s after SIGTERM; killing it"
        kill -KILL "$PROXY_PID" 2>/dev/null || true
    fi
    wait "$PROXY_PID" 2>/dev/null && MC_PROXY_STATUS=0 || MC_PROXY_STATUS=$?
    PROXY_PID=""
}

# mc_stop_checked NAME: stops the current proxy (mc_stop_proxy) and passes one test,
# "NAME: proxy exited 0, no sanitizer report", when it exited 0 with no sanitizer
# report in its log (CI runs the scripts in the --enable-asan build too).
mc_stop_checked() {
    local log=$PROXY_LOG st=0
    mc_stop_proxy
    [ "$MC_PROXY_STATUS" -eq 0 ] || st=1
    grep -Eq 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" && st=1
    mc_ok "$st" "$1: proxy exited 0, no sanitizer report"
    if [ "$st" -ne 0 ]; then
        echo "# exit status $MC_PROXY_STATUS"
        grep -E -A 15 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" | head -n 60 |
            sed 's/^/#   /'
    fi
}

# ---- TAP -------------------------------------------------------------------

mc_plan() {
    MC_PLANNED=$1
    echo "1..$1"
}

# mc_ok STATUS NAME: passes when STATUS is 0.
mc_ok() {
    MC_N=$((MC_N + 1))
    if [ "$1" -eq 0 ] 2>/dev/null; then
        echo "ok $MC_N - $2"
    else
        echo "not ok $MC_N - $2"
        MC_FAILED=$((MC_FAILED + 1))
    fi
}

# mc_is GOT WANT NAME
mc_is() {
    if [ "$1" = "$2" ]; then
        mc_ok 0 "$3"
    else
        mc_ok 1 "$3"
        mc_diag "got:  $1" "want: $2"
    fi
}

# mc_relay FILE: numbers the unnumbered TAP lines in FILE ("ok - ...", "not ok - ...",
# "# ..."; any other line becomes a diagnostic) and checks the group's own plan: the
# "1..N" line it prints once it ran to its end (mctest.plan() in Python). Sets
# MC_RELAY_N (results seen) and MC_RELAY_PLAN (N, or "none"); returns 0 when exactly one
# plan came after every result and N results arrived. A group that died or stopped early
# has no plan, so no script says how many results a group prints.
mc_relay() {
    local line n=0 plan="" bad=0
    while IFS= read -r line; do
        case $line in
        "ok - "*)
            mc_ok 0 "${line#ok - }"
            n=$((n + 1))
            [ -z "$plan" ] || bad=1
            ;;
        "not ok - "*)
            mc_ok 1 "${line#not ok - }"
            n=$((n + 1))
            [ -z "$plan" ] || bad=1
            ;;
        "#"*) echo "$line" ;;
        *)
            if [[ $line =~ ^1\.\.([0-9]+)$ ]]; then
                [ -z "$plan" ] || bad=1
                plan=${BASH_REMATCH[1]}
            else
                echo "# $line"
            fi
            ;;
        esac
    done <"$1"
    MC_RELAY_N=$n
    MC_RELAY_PLAN=${plan:-none}
    [ -n "$plan" ] && [ "$bad" -eq 0 ] && [ "$n" -eq "$plan" ]
}

# mc_run_lines SUITE LABEL CMD...: runs CMD (at most MC_GROUP_TIMEOUT seconds, 120 by
# default), which prints unnumbered TAP lines and its plan last (see mc_relay), and
# numbers them; fails when CMD exits non-zero or its plan is missing or not met.
mc_run_lines() {
    local suite=$1 label=$2 out rc
    shift 2
    out=$MC_TMP/$suite.$label.out
    timeout "${MC_GROUP_TIMEOUT:-120}" "$@" >"$out" 2>"$out.err"
    rc=$?
    if ! mc_relay "$out" || [ "$rc" -ne 0 ]; then
        local got="$MC_RELAY_N results, plan $MC_RELAY_PLAN, status $rc"
        mc_ok 1 "$suite $label: the group ran to its end ($got)"
        tail -n 15 "$out.err" | cut -c1-300 | sed 's/^/#   /'
    fi
}

# Stops every proxy this script started (so that LeakSanitizer reports at
# exit) and fails the script when any proxy log holds a sanitizer report:
# the --enable-asan build runs every integration test this way.
mc_check_sanitizers() {
    local pid i log
    for pid in ${MC_PROXY_PIDS:-}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${MC_PROXY_PIDS:-}; do
        for i in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
    done
    for log in "$MC_TMP"/proxy.*.log; do
        [ -f "$log" ] || continue
        if grep -Eq 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log"; then
            echo "# sanitizer report in $log:"
            grep -E -A 20 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" | head -n 40 | sed 's/^/#   /'
            MC_FAILED=$((MC_FAILED + 1))
        fi
    done
}

# Without an mc_plan first, the plan is printed here, last: a script that stops before
# mc_done has none, which the TAP driver reports as an error.
mc_done() {
    mc_check_sanitizers
    [ -n "$MC_PLANNED" ] || mc_plan "$MC_N"
    if [ "$MC_N" -ne "$MC_PLANNED" ]; then
        echo "# planned $MC_PLANNED tests but ran $MC_N"
        MC_FAILED=$((MC_FAILED + 1))
    fi
    if [ "$MC_FAILED" -ne 0 ]; then
        echo "# $MC_FAILED failed"
        exit 1
    fi
    exit 0
}
