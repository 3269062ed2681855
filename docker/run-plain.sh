#!/usr/bin/env bash
# docker/run-plain.sh: docker/docker-compose.yml's topology as plain
# processes on 127.0.0.1, no Docker needed:
#
#   docker/app (Mongoose) --+--> mongocache-a --+--> FerretDB (for mongo:7)
#                           +--> mongocache-b --+
#                                               +--> redis-server (the shared tier)
#
# The settings come from the compose file itself: it is resolved by
# `docker-compose config` (so its required variables are required here too;
# random ones are made when unset) and translated by docker/compose_plain.py:
# the proxies' environment, Redis's command line, the app's environment, the
# proxies' healthcheck and stop_grace_period. Only addresses change (each
# service's port becomes a free port on 127.0.0.1). Services start in the
# compose file's dependency order, each once its healthcheck passes. At the
# end it prints both proxies' hit rates and their /stats, then stops the
# proxies with SIGTERM and checks they exit 0 within their stop_grace_period.
#
#   bash docker/run-plain.sh         set up and build as tests/demo.sh does, then run
#
# Environment: MONGOCACHE_BIN (a built mongocache: skip setup and build),
# FERRETDB (default .tools/bin/ferretdb), DEMO_ROUNDS (default 5),
# DEMO_ADVICE_WAIT_MS (default 15000), MONGOCACHE_HTTP_TOKEN and
# MONGOCACHE_CACHE_KEY_SECRET (default: random).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
COMPOSE=$TOP/docker/docker-compose.yml
export PATH=$PATH:/usr/local/go/bin

if [ -z "${MONGOCACHE_BIN:-}" ]; then
    bash "$TOP/tests/setup.sh"
    echo "==> building mongocache (_build/)"
    ( cd "$TOP" && { [ -x configure ] || autoreconf -fi >/dev/null; } )
    mkdir -p "$TOP/_build"
    ( cd "$TOP/_build" && { [ -f Makefile ] || "$TOP/configure" -q; } && make -j"$(nproc)" >/dev/null )
    echo "==> installing the demo app's packages (docker/app)"
    ( cd "$TOP/docker/app" && npm ci --no-audit --no-fund --loglevel=error >/dev/null )
    MONGOCACHE_BIN=$TOP/_build/mongocache
fi
FERRETDB=${FERRETDB:-$TOP/.tools/bin/ferretdb}
for tool in "$MONGOCACHE_BIN" "$FERRETDB"; do
    [ -x "$tool" ] || { echo "run-plain.sh: $tool is not there (run without MONGOCACHE_BIN to build)" >&2; exit 1; }
done
for cmd in docker-compose redis-server redis-cli node python3 curl; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "run-plain.sh: $cmd not found (run tests/setup.sh)" >&2; exit 1; }
done

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
export MONGOCACHE_HTTP_TOKEN=${MONGOCACHE_HTTP_TOKEN:-$(random_hex 24)}
export MONGOCACHE_CACHE_KEY_SECRET=${MONGOCACHE_CACHE_KEY_SECRET:-$(random_hex 32)}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mongocache-plain.XXXXXX")
PIDS=()
cleanup() {
    local st=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${PLAIN_KEEP_TMP:-0}" = 1 ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS PID LOG NAME COMMAND...: until COMMAND succeeds (bounded).
wait_for() {
    local secs=$1 pid=$2 log=$3 name=$4 i
    shift 4
    for i in $(seq 1 $((secs * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "run-plain.sh: $name did not become healthy; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

echo "==> reading $COMPOSE (docker-compose config)"
docker-compose -f "$COMPOSE" config >"$WORK/compose.yml"
python3 "$TOP/docker/compose_plain.py" "$WORK/compose.yml" >"$WORK/plain.sh"
# shellcheck source=/dev/null
. "$WORK/plain.sh"

echo "==> redis-server on 127.0.0.1:$REDIS_PORT, as in the compose file:$(printf ' %q' "${REDIS_ARGS[@]}")"
mkdir -p "$WORK/redis"
redis-server "${REDIS_ARGS[@]}" --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --dir "$WORK/redis" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for 10 $! "$WORK/redis.log" redis-server redis_ping

echo "==> FerretDB (in place of mongo:7) on 127.0.0.1:$MONGO_PORT"
mkdir -p "$WORK/ferretdb"
"$FERRETDB" --handler=sqlite --sqlite-url="file:$WORK/ferretdb/" --state-dir="$WORK/ferretdb" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --telemetry=disable --debug-addr=- \
    --log-level=warn >"$WORK/ferretdb.log" 2>&1 &
PIDS+=($!)
wait_for 30 $! "$WORK/ferretdb.log" FerretDB port_open "$MONGO_PORT"

# The proxies run with the compose file's environment only (plus PATH and
# the sanitizers' options), not with whatever MONGOCACHE_* this shell has.
SANITIZER_ENV=()
for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
    [ -z "${!v:-}" ] || SANITIZER_ENV+=("$v=${!v}")
done
PROXY_PIDS=()
for i in "${!PROXY_NAMES[@]}"; do
    name=${PROXY_NAMES[$i]}
    declare -n env_ref="PROXY_ENV_$i"
    port_var="PROXY_PORT_$i" http_var="PROXY_HTTP_$i" health_var="PROXY_HEALTH_$i"
    echo "==> $name on 127.0.0.1:${!port_var} (HTTP 127.0.0.1:${!http_var})"
    env -i PATH="$PATH" "${SANITIZER_ENV[@]}" "${env_ref[@]}" \
        "$MONGOCACHE_BIN" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    PROXY_PIDS+=($!)
    unset -n env_ref
done
for i in "${!PROXY_NAMES[@]}"; do
    name=${PROXY_NAMES[$i]}
    http_var="PROXY_HTTP_$i" health_var="PROXY_HEALTH_$i"
    wait_for 20 "${PROXY_PIDS[$i]}" "$WORK/$name.log" "$name" \
        env MONGOCACHE_HTTP_LISTEN="127.0.0.1:${!http_var}" \
        bash "$TOP/docker/healthcheck.sh" "${!health_var}"
    echo "==> $name healthy (its healthcheck: GET ${!health_var})"
done

echo "==> the Mongoose app through ${PROXY_NAMES[*]}"
env "${APP_ENV[@]}" DEMO_ROUNDS="${DEMO_ROUNDS:-5}" \
    DEMO_ADVICE_WAIT_MS="${DEMO_ADVICE_WAIT_MS:-15000}" node "$TOP/docker/app/app.js"

echo "==> both proxies' hit rates (GET /stats)"
for i in "${!PROXY_NAMES[@]}"; do
    name=${PROXY_NAMES[$i]}
    http_var="PROXY_HTTP_$i"
    curl -sf -H "Authorization: Bearer $MONGOCACHE_HTTP_TOKEN" \
        "http://127.0.0.1:${!http_var}/stats" >"$WORK/$name.stats.json"
    python3 - "$name" "$WORK/$name.stats.json" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    s = json.load(f)
c = s["cache"]
r = c.get("redis") or s.get("redis") or {}
rh = r.get("counters", {}).get("redis_hits")
print("%s: hit rate %.1f%% (%d hits, %d misses%s); %d requests, %d to the server"
      % (name, 100.0 * c["hit_ratio"], c["hits"], c["misses"],
         "" if rh is None else ", %d hits from Redis" % rh,
         s["counters"]["requests"], s["counters"]["replies"]))
EOF
done
for i in "${!PROXY_NAMES[@]}"; do
    name=${PROXY_NAMES[$i]}
    echo "==> $name /stats"
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
        "$WORK/$name.stats.json"
done

# docker stop: SIGTERM, then SIGKILL after stop_grace_period.
st=0
for i in "${!PROXY_NAMES[@]}"; do
    name=${PROXY_NAMES[$i]}
    pid=${PROXY_PIDS[$i]}
    grace_var="PROXY_GRACE_$i"
    kill -TERM "$pid"
    for _ in $(seq 1 $((${!grace_var} * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "==> $name still running after its stop_grace_period (${!grace_var} s): SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        st=1
    fi
    pst=0
    wait "$pid" 2>/dev/null || pst=$?
    echo "==> $name stopped (SIGTERM): exit status $pst"
    [ "$pst" = 0 ] || st=1
done
exit "$st"
