#!/usr/bin/env bash
# tests/integration/test_redis_hostile.sh: whatever Redis sends, the proxy
# stays up (issue 6, item 4). FerretDB is real; Redis is fake_redis.py, a
# scriptable fake that sends what a real Redis never would: malformed pub/sub
# pushes (wrong element types and arity, a non-array push, an integer where a
# bulk string is expected, another channel, an error, garbage, deep nesting,
# a push over the size budget) and unsolicited, malformed or wrongly shaped
# replies on the command connection, at start-up and later. The cases are in
# redis_hostile.py, one fresh proxy each: it must stay up, answer reads
# exactly as FerretDB does, count the fault (redis_protocol_errors), make a
# new connection, and exit 0 on SIGTERM. Bounded: about 45 s.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"
[ -x "$MC_MONGOCACHE" ] || mc_bail "mongocache not built: $MC_MONGOCACHE"

mc_start_ferretdb
MC_GROUP_TIMEOUT=240 mc_run_lines hostile cases \
    "$MC_PYTHON" "$MC_TESTDIR/redis_hostile.py" --mongocache "$MC_MONGOCACHE" \
    --direct "$FERRET_PORT" --tmp "$MC_TMP"
mc_plan "$MC_N"
mc_done
