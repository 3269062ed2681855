#!/usr/bin/env bash
# tests/demo.sh: set up everything and run the main job, as plain processes
# with the same configuration as docker/docker-compose.yml:
#   FerretDB (a MongoDB-compatible server)  <-  mongocache  <-  docker/app (Mongoose)
# then print what mongocache's /stats endpoint reports (the app prints the
# hit rate after each round, and the index advice at the end).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
export PATH=$PATH:/usr/local/go/bin

bash tests/setup.sh

echo "==> building mongocache (_build/)"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p _build
( cd _build && { [ -f Makefile ] || "$TOP/configure" -q; } && make -j"$(nproc)" >/dev/null )

echo "==> installing the demo app's packages (docker/app)"
( cd docker/app && npm ci --no-audit --no-fund --loglevel=error >/dev/null )

WORK=$(mktemp -d /tmp/mongocache-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    # wait_port PORT NAME LOG: up to 20 s for a TCP listener.
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not start; its log:" >&2
    tail -n 20 "$3" >&2
    exit 1
}

MONGO_PORT=$(free_port)
PROXY_PORT=$(free_port)
HTTP_PORT=$(free_port)

echo "==> starting FerretDB on 127.0.0.1:$MONGO_PORT"
mkdir -p "$WORK/ferretdb"
"$TOP/.tools/bin/ferretdb" --handler=sqlite --sqlite-url="file:$WORK/ferretdb/" \
    --state-dir="$WORK/ferretdb" --listen-addr="127.0.0.1:$MONGO_PORT" \
    --telemetry=disable --debug-addr=- --log-level=warn >"$WORK/ferretdb.log" 2>&1 &
PIDS+=($!)
wait_port "$MONGO_PORT" FerretDB "$WORK/ferretdb.log"

echo "==> starting mongocache on 127.0.0.1:$PROXY_PORT (stats on 127.0.0.1:$HTTP_PORT)"
MONGOCACHE_LISTEN="127.0.0.1:$PROXY_PORT" \
MONGOCACHE_UPSTREAM="mongodb://127.0.0.1:$MONGO_PORT" \
MONGOCACHE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
MONGOCACHE_LOG_LEVEL=warn \
MONGOCACHE_ADVICE_INTERVAL=1s \
    "$TOP/_build/mongocache" >"$WORK/mongocache.log" 2>&1 &
PIDS+=($!)
wait_port "$PROXY_PORT" mongocache "$WORK/mongocache.log"

echo "==> running the Mongoose app through mongocache"
MONGODB_URI="mongodb://127.0.0.1:$PROXY_PORT/demo" \
MONGOCACHE_STATS_URL="http://127.0.0.1:$HTTP_PORT/stats" \
    node docker/app/app.js

echo "==> mongocache /stats"
curl -s "http://127.0.0.1:$HTTP_PORT/stats"
echo
