#!/usr/bin/env bash
# tests/integration/test_request_life.sh: a request's life against a hostile
# upstream (proxy/request.c): a request held for the cache (WAITING_CACHE)
# was never sent, so an upstream reply naming it is a protocol error, never
# relayed and never an abort; in-band admin commands pipelined behind a held
# request are bounded like relayed ones; an upstream protocol error answers
# in request order. The cases are in request_life.py, which runs its own fake
# upstream and proxy (log in $MC_TMP/proxy.1.log, searched for sanitizer
# reports at the end). About 3 s.
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"
mc_run_lines request_life held "$MC_PYTHON" "$MC_TESTDIR/request_life.py" \
    --bin "$MC_MONGOCACHE" --log "$MC_TMP/proxy.1.log" --port "$(mc_free_port)" \
    --http "$(mc_free_port)"
mc_plan "$MC_N"
mc_done
