#!/usr/bin/env bash
# tests/integration/test_docker.sh: the compose stack (docker/) without a
# Docker engine, and its plain-process twin.
#
#   1-3   `docker-compose config` (Debian's docker-compose) of
#         docker/docker-compose.yml succeeds with MONGOCACHE_HTTP_TOKEN and
#         MONGOCACHE_CACHE_KEY_SECRET set, and fails naming each one unset
#   4-5   the file is valid against the Compose Specification schema
#         (check-jsonschema's vendored compose-spec, installed from PyPI by
#         tests/setup.sh), and the same check rejects a copy with a
#         misspelled service key (the check can fail)
#   6-15  assertions on the stack (docker_check.py): images, healthchecks,
#         depends_on service_healthy, stop_grace_period > drain_timeout,
#         required secrets, shared tier, Redis without persistence, the
#         image's numeric non-root user and HEALTHCHECK, .dockerignore
#   16    docker_check.py on a copy of the stack broken in nine ways
#         (docker_mutate.py, one per assertion) fails nine times
#   17-18 the image's healthcheck script fails on a closed port and on an
#         endpoint answering 404
#   19-25 docker/run-plain.sh end to end: FerretDB, redis-server and two
#         proxies configured from the compose file, the Mongoose app through
#         both: each proxy's /stats shows hits and a connected Redis tier,
#         the shared tier served hits, a write through one proxy is read
#         back fresh through the other (a miss there, not a hit), both
#         proxies exit 0 on SIGTERM within stop_grace_period
#
# About 15-25 s, most of it the twin.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

need() {
    if [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        mc_bail "$1 not found (run tests/setup.sh)"
    fi
    echo "1..0 # SKIP $1 not found (run tests/setup.sh)"
    exit 0
}
command -v docker-compose >/dev/null 2>&1 || need docker-compose
command -v redis-server >/dev/null 2>&1 || need redis-server
python3 -c 'import yaml' 2>/dev/null || need python3-yaml
CHECK_JSONSCHEMA=$MC_TOOLS/venv/bin/check-jsonschema
[ -x "$CHECK_JSONSCHEMA" ] || need check-jsonschema
[ -x "$MC_MONGOCACHE" ] || mc_bail "mongocache not built: $MC_MONGOCACHE"

DOCKER_DIR=$abs_top_srcdir/docker
COMPOSE=$DOCKER_DIR/docker-compose.yml
TOKEN="tok-$$-$RANDOM$RANDOM"
SECRET="sec-$$-$RANDOM$RANDOM"

compose_config() {
    # compose_config OUT [VAR=VALUE...]: docker-compose config with only
    # the given variables (and PATH, HOME) in the environment.
    local out=$1
    shift
    env -i PATH="$PATH" HOME="$MC_TMP" "$@" \
        timeout 60 docker-compose -f "$COMPOSE" config >"$out" 2>"$out.err"
}

# ---- 1-3: docker-compose config -------------------------------------------
compose_config "$MC_TMP/resolved.yml" MONGOCACHE_HTTP_TOKEN="$TOKEN" MONGOCACHE_CACHE_KEY_SECRET="$SECRET"
st=$?
carried=$(grep -c -e "MONGOCACHE_HTTP_TOKEN: $TOKEN\$" -e "MONGOCACHE_CACHE_KEY_SECRET: $SECRET\$" \
    "$MC_TMP/resolved.yml")
mc_ok $((st == 0 && carried == 5 ? 0 : 1)) \
    "docker-compose config succeeds with the token and the key secret set (status $st; $carried of 5 values carried: 3 tokens, 2 secrets)"
[ $st -eq 0 ] || sed 's/^/#   /' "$MC_TMP/resolved.yml.err"

for var in MONGOCACHE_HTTP_TOKEN MONGOCACHE_CACHE_KEY_SECRET; do
    if [ $var = MONGOCACHE_HTTP_TOKEN ]; then
        compose_config "$MC_TMP/no-$var.yml" MONGOCACHE_CACHE_KEY_SECRET="$SECRET"
    else
        compose_config "$MC_TMP/no-$var.yml" MONGOCACHE_HTTP_TOKEN="$TOKEN"
    fi
    st=$?
    if [ $st -ne 0 ] && grep -q "set $var" "$MC_TMP/no-$var.yml.err"; then
        mc_ok 0 "docker-compose config without $var fails, naming it (status $st)"
        mc_diag "$(grep -m1 "$var" "$MC_TMP/no-$var.yml.err" | cut -c1-200)"
    else
        mc_ok 1 "docker-compose config without $var fails, naming it (status $st)"
        sed 's/^/#   /' "$MC_TMP/no-$var.yml.err" | head -5
    fi
done

# ---- 4-5: the Compose Specification schema --------------------------------
"$CHECK_JSONSCHEMA" --builtin-schema vendor.compose-spec "$COMPOSE" >"$MC_TMP/schema.out" 2>&1
st=$?
mc_ok $st "docker-compose.yml is valid against the Compose Specification schema (check-jsonschema vendor.compose-spec)"
[ $st -eq 0 ] || sed 's/^/#   /' "$MC_TMP/schema.out" | head -20

sed 's/^\(  *\)stop_grace_period:/\1stop_grace_periods:/' "$COMPOSE" >"$MC_TMP/broken-compose.yml"
if cmp -s "$COMPOSE" "$MC_TMP/broken-compose.yml"; then
    mc_ok 1 "the schema check rejects a misspelled key (no stop_grace_period to misspell)"
else
    "$CHECK_JSONSCHEMA" --builtin-schema vendor.compose-spec "$MC_TMP/broken-compose.yml" \
        >"$MC_TMP/schema-broken.out" 2>&1
    st=$?
    if [ $st -ne 0 ] && grep -q "stop_grace_periods" "$MC_TMP/schema-broken.out"; then
        mc_ok 0 "the schema check rejects a copy with stop_grace_periods (status $st)"
    else
        mc_ok 1 "the schema check rejects a copy with stop_grace_periods (status $st)"
        sed 's/^/#   /' "$MC_TMP/schema-broken.out" | head -10
    fi
fi

# ---- 6-15: the stack's assertions -----------------------------------------
MC_GROUP_TIMEOUT=60 mc_run_lines docker check python3 "$MC_TESTDIR/docker_check.py" \
    "$abs_top_srcdir" "$MC_TMP/resolved.yml"

# ---- 16: the same checks on a copy broken in nine ways fail nine times ----
MUT=$MC_TMP/mutated
mkdir -p "$MUT/docker/app" "$MUT/conf"
cp "$abs_top_srcdir/.dockerignore" "$MUT/"
cp "$abs_top_srcdir/conf/options.def" "$MUT/conf/"
cp "$DOCKER_DIR/docker-compose.yml" "$DOCKER_DIR/Dockerfile" "$DOCKER_DIR/healthcheck.sh" \
    "$DOCKER_DIR/compose_plain.py" "$MUT/docker/"
cp "$DOCKER_DIR/app/.dockerignore" "$MUT/docker/app/"
python3 "$MC_TESTDIR/docker_mutate.py" "$MUT" >"$MC_TMP/mutate.out" 2>&1
st=$?
[ $st -eq 0 ] || sed 's/^/#   /' "$MC_TMP/mutate.out"
COMPOSE=$MUT/docker/docker-compose.yml compose_config "$MC_TMP/mutated.yml" \
    MONGOCACHE_HTTP_TOKEN="$TOKEN" MONGOCACHE_CACHE_KEY_SECRET="$SECRET" ||
    mc_diag "docker-compose config of the broken copy: $(head -c 300 "$MC_TMP/mutated.yml.err")"
timeout 60 python3 "$MC_TESTDIR/docker_check.py" "$MUT" "$MC_TMP/mutated.yml" >"$MC_TMP/mutated.out" 2>&1
nok=$(grep -c '^not ok - ' "$MC_TMP/mutated.out")
ok_lines=$(grep -c '^ok - ' "$MC_TMP/mutated.out")
mc_ok $((st == 0 && nok == 9 && ok_lines == 1 ? 0 : 1)) \
    "docker_check.py on a copy broken in 9 ways: $nok checks fail, $ok_lines passes (services)"
grep '^not ok' "$MC_TMP/mutated.out" | cut -c1-150 | sed 's/^/#   /'

# ---- 17-18: the healthcheck script fails when it should -------------------
closed=$(mc_free_port)
MONGOCACHE_HTTP_LISTEN=0.0.0.0:$closed timeout 10 bash "$DOCKER_DIR/healthcheck.sh" /readyz \
    >/dev/null 2>"$MC_TMP/hc-closed.err"
st=$?
mc_ok $(( st == 1 ? 0 : 1 )) "healthcheck: a closed port is unhealthy (status $st)"

mkdir -p "$MC_TMP/empty"
web=$(mc_free_port)
python3 -m http.server "$web" --bind 127.0.0.1 --directory "$MC_TMP/empty" >"$MC_TMP/web.log" 2>&1 &
mc_track $!
mc_wait_port "$web" $! 10 || mc_diag "python3 -m http.server did not start"
MONGOCACHE_HTTP_LISTEN=127.0.0.1:$web timeout 10 bash "$DOCKER_DIR/healthcheck.sh" /readyz \
    >/dev/null 2>"$MC_TMP/hc-404.err"
st=$?
mc_ok $(( st == 1 ? 0 : 1 )) "healthcheck: an endpoint answering 404 is unhealthy (status $st: $(head -c 120 "$MC_TMP/hc-404.err"))"

# ---- 19-25: the plain-process twin ----------------------------------------
mkdir -p "$MC_TMP/plain"
t0=$(date +%s)
NODE_PATH=$MC_NODE_DIR/node_modules TMPDIR=$MC_TMP/plain PLAIN_KEEP_TMP=1 \
MONGOCACHE_BIN=$MC_MONGOCACHE FERRETDB=$MC_FERRETDB DEMO_ROUNDS=3 DEMO_ADVICE_WAIT_MS=1 \
MONGOCACHE_HTTP_TOKEN=$TOKEN MONGOCACHE_CACHE_KEY_SECRET=$SECRET \
    timeout 120 bash "$DOCKER_DIR/run-plain.sh" >"$MC_TMP/plain.out" 2>"$MC_TMP/plain.err"
st=$?
t1=$(date +%s)
mc_ok $st "run-plain.sh ran to its end, exit 0 ($((t1 - t0)) s)"
if [ $st -ne 0 ]; then
    sed 's/^/#   /' "$MC_TMP/plain.out" | tail -n 30
    sed 's/^/#   /' "$MC_TMP/plain.err" | tail -n 30
fi
grep -E '^(  proxy [AB]:|write through A|mongocache-[ab]: hit rate)' "$MC_TMP/plain.out" | sed 's/^/# /'

MC_GROUP_TIMEOUT=30 mc_run_lines docker twin python3 - "$MC_TMP/plain.out" "$MC_TMP/plain" \
    "$MC_TESTDIR" <<'EOF'
import glob, json, re, sys

sys.path.insert(0, sys.argv[3])
from mctest import plan, tap

out = open(sys.argv[1]).read().splitlines()

# each proxy's /stats, as the twin printed it
stats = {}
for i, line in enumerate(out):
    m = re.fullmatch(r"==> (\S+) /stats", line)
    if m and i + 1 < len(out):
        try:
            stats[m.group(1)] = json.loads(out[i + 1])
        except ValueError as e:
            stats[m.group(1)] = None
names = sorted(stats)
ok = len(names) == 2 and all(stats[n] for n in names)
tap(ok, "the twin printed both proxies' /stats (%s)" % ", ".join(names), stats)
if not ok:
    sys.exit(0)

hits = {n: stats[n]["cache"]["hits"] for n in names}
misses = {n: stats[n]["cache"]["misses"] for n in names}
ratio = {n: stats[n]["cache"]["hit_ratio"] for n in names}
tap(all(hits[n] > 0 and hits[n] / (hits[n] + misses[n]) > 0.5 for n in names),
    "both proxies served hits: %s" % ", ".join("%s %d hits / %d misses (%.1f%%)"
                                              % (n, hits[n], misses[n], 100 * ratio[n]) for n in names))

def redis(s):
    return s["cache"].get("redis") or s.get("redis") or {}

states = {n: redis(stats[n]).get("state") for n in names}
rhits = {n: redis(stats[n]).get("counters", {}).get("redis_hits", 0) for n in names}
tap(all(v == "connected" for v in states.values()) and sum(rhits.values()) > 0,
    "the shared Redis tier: both connected (%s), %d hits served from Redis (%s)"
    % (states, sum(rhits.values()), rhits))

# the hit rates the twin printed are /stats's own
printed = {}
for line in out:
    m = re.match(r"(\S+): hit rate ([0-9.]+)% \((\d+) hits, (\d+) misses", line)
    if m:
        printed[m.group(1)] = (float(m.group(2)), int(m.group(3)), int(m.group(4)))
want = {n: (float("%.1f" % (100 * ratio[n])), hits[n], misses[n]) for n in names}
tap(printed == want, "the hit rates printed are those of /stats (%s)" % printed, "want %s" % want)

# a write through A, read back through B
line = next((l for l in out if l.startswith("write through A")), "")
m = re.search(r"price (\d+) before, (\d+) after \(expected (\d+)\); B's read before the write was "
              r"a hit, after it a miss \(invalidated\)", line)
tap(m is not None and m.group(2) == m.group(3) and m.group(1) != m.group(2),
    "a write through proxy A invalidated proxy B's cached read (B: hit before, miss after, fresh value)",
    line or "no such line")
plan()
EOF

grep -E '^==> mongocache-[ab] stopped' "$MC_TMP/plain.out" | sed 's/^/# /'
n=$(grep -cE '^==> mongocache-[ab] stopped \(SIGTERM\): exit status 0$' "$MC_TMP/plain.out")
san=$(cat "$MC_TMP"/plain/mongocache-plain.*/mongocache-*.log 2>/dev/null |
    grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')
mc_ok $(( n == 2 && san == 0 ? 0 : 1 )) "both proxies exited 0 on SIGTERM within stop_grace_period ($n of 2), no sanitizer report ($san)"
mc_done
