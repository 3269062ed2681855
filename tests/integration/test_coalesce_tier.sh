#!/usr/bin/env bash
# tests/integration/test_coalesce_tier.sh: with the shared Redis tier on, a
# read that waited behind an identical one (coalescing) gets the leader's
# reply only once Redis confirms the generations it depends on; when another
# proxy's write moved one (bumped here in Redis directly), it goes to the
# server. The cases are in coalesce_tier.py, which runs its own fake upstream
# and proxy against the redis-server started here. About 2 s.
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"
mc_start_redis
mc_run_lines coalesce_tier cases "$MC_PYTHON" "$MC_TESTDIR/coalesce_tier.py" \
    --bin "$MC_MONGOCACHE" --log "$MC_TMP/proxy.1.log" --port "$(mc_free_port)" \
    --http "$(mc_free_port)" --redis-port "$REDIS_PORT"
mc_plan "$MC_N"
mc_done
