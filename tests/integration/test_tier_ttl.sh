#!/usr/bin/env bash
# tests/integration/test_tier_ttl.sh: a value in the shared Redis tier lives
# no longer than cache_ttl from its fill: a proxy's copy of it taken from
# Redis expires with it, and one kept in Redis past it (PERSIST) is not
# served. The cases are in tier_ttl.py, which runs its own fake upstream and
# two proxies against the redis-server started here. About 8 s.
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"
mc_start_redis
mc_run_lines tier_ttl cases "$MC_PYTHON" "$MC_TESTDIR/tier_ttl.py" \
    --bin "$MC_MONGOCACHE" --log "$MC_TMP/proxy" --port "$(mc_free_port)" \
    --http "$(mc_free_port)" --port2 "$(mc_free_port)" --http2 "$(mc_free_port)" \
    --redis-port "$REDIS_PORT"
mc_plan "$MC_N"
mc_done
