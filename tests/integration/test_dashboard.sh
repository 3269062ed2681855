#!/usr/bin/env bash
# tests/integration/test_dashboard.sh: the dashboard page (GET /) in a real
# headless browser: Debian's chromium and chromium-driver, driven by Selenium
# (PyPI), all installed by tests/setup.sh. Starts FerretDB, redis-server and
# the proxy (http_token set, the Redis tier, advice every 500 ms); the cases
# are in dashboard_check.py.
# The screenshot is kept as the test's artifact in the build directory:
# tests/integration/dashboard.png. When the browser is missing or cannot
# start, the test is skipped with the reason, or fails with
# MONGOCACHE_REQUIRE_INTEGRATION=1 (CI installs it).
set -u
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

CHROMIUM=${MC_CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${MC_CHROMEDRIVER:-/usr/bin/chromedriver}
SHOT=$abs_top_builddir/tests/integration/dashboard.png

skip() {
    if [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        mc_bail "dashboard: $1 (run tests/setup.sh)"
    fi
    echo "1..0 # SKIP $1"
    exit 0
}

missing=""
[ -x "$CHROMIUM" ] || missing="$missing chromium"
[ -x "$CHROMEDRIVER" ] || missing="$missing chromium-driver"
"$MC_PYTHON" -c 'import selenium' 2>/dev/null || missing="$missing selenium"
[ -z "$missing" ] || skip "missing:$missing"

TOKEN="dash-$$-$RANDOM"
mc_start_ferretdb
mc_start_redis
MONGOCACHE_HTTP_TOKEN=$TOKEN mc_start_proxy --advice-interval 500ms --advice-min-documents 100 \
    --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "dash-secret-$$-$RANDOM"
mkdir -p "$(dirname "$SHOT")"
rm -f "$SHOT"

out=$MC_TMP/dashboard.out
timeout 90 "$MC_PYTHON" "$MC_TESTDIR/dashboard_check.py" --http "$PROXY_HTTP_PORT" \
    --token "$TOKEN" --proxy "$PROXY_URI" --direct "$FERRET_URI" \
    --page "$abs_top_srcdir/proxy/dashboard.html" --chromium "$CHROMIUM" \
    --chromedriver "$CHROMEDRIVER" --tmp "$MC_TMP" --screenshot "$SHOT" >"$out" 2>"$out.err"
rc=$?
if [ "$rc" -eq 77 ]; then
    skip "$(tail -n 1 "$out.err" | tr -d '\r' | cut -c1-200)"
fi
mc_relay "$out" || [ "$rc" -ne 0 ] || rc=plan-not-met
if [ "$rc" != 0 ]; then
    mc_ok 1 "dashboard_check.py ran to its end (status $rc; $MC_RELAY_N results, plan $MC_RELAY_PLAN)"
    tail -n 20 "$out.err" | cut -c1-300 | sed 's/^/#   /'
fi
mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "the proxy exits 0 on SIGTERM"
st=0
grep -qF -- "$TOKEN" "$PROXY_LOG" && st=1
mc_ok "$st" "the token is not in the proxy's log"
mc_plan "$MC_N"
mc_done
