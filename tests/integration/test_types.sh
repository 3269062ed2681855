#!/usr/bin/env bash
# tests/integration/test_types.sh: BSON types (Decimal128 above all) through
# the query cache, with mongo-java-server as the upstream: FerretDB v1.24.2
# drops the connection on Decimal128. The cases run in types_check.js
# (Mongoose and the Node.js driver); their unnumbered TAP lines are numbered
# here. mongo-java-server (in memory) is built by tests/setup.sh into
# .tools/java/lib (tests/integration/java).
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"
JAVA_LIB=$MC_TOOLS/java/lib
if ! command -v java >/dev/null 2>&1 || [ ! -f "$JAVA_LIB/mongocache-it-upstream-1.jar" ]; then
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "java or $JAVA_LIB missing (run tests/setup.sh)"
    echo "1..0 # SKIP java or $JAVA_LIB missing (run tests/setup.sh)"
    exit 0
fi

# mongo-java-server on a free port
MJS_PORT=$(mc_free_port)
MJS_LOG=$MC_TMP/mongo-java-server.log
java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "$JAVA_LIB/*" mongocache.it.Server "$MJS_PORT" >"$MJS_LOG" 2>&1 &
MJS_PID=$!
mc_track "$MJS_PID"
if ! mc_wait_port "$MJS_PORT" "$MJS_PID" 20; then
    mc_log_tail "$MJS_LOG"
    mc_bail "mongo-java-server did not come up on 127.0.0.1:$MJS_PORT"
fi

# shellcheck disable=SC2119 # no extra flags
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$MJS_PORT mc_start_proxy
NODE_PATH=$MC_NODE_DIR/node_modules MC_GROUP_TIMEOUT=60 mc_run_lines types node \
    "$MC_NODE" "$MC_TESTDIR/types_check.js" "$PROXY_PORT" "$MJS_PORT" "$PROXY_HTTP_PORT"

NODE_PATH=$MC_NODE_DIR/node_modules MC_GROUP_TIMEOUT=60 mc_run_lines types outmerge \
    "$MC_NODE" "$MC_TESTDIR/types_outmerge.js" "$PROXY_PORT" "$MJS_PORT" "$PROXY_HTTP_PORT"

mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "types: the proxy exits 0 on SIGTERM"
[ "$MC_PROXY_STATUS" -eq 0 ] || mc_log_tail "$PROXY_LOG"
mc_done
