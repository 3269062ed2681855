#!/usr/bin/env bash
# tests/integration/test_fuzz_findings.sh: the findings of the fuzz targets
# (tests/fuzz/README.md) that change what a client sees, replayed end to
# end against FerretDB: the same raw message through the proxy and straight
# to the server must get the same answer. The cases are in fuzz_findings.py.
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "compare the proxy with the server"

mc_start_ferretdb
mc_start_proxy
mc_run_lines fuzz_findings run "$MC_PYTHON" "$MC_TESTDIR/fuzz_findings.py" \
    --proxy "127.0.0.1:$PROXY_PORT" --direct "127.0.0.1:$FERRET_PORT"
mc_done
