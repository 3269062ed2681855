#!/usr/bin/env bash
# tests/integration/test_redis_tier.sh: the Redis tier (cache/redis.c)
# against a real redis-server on a free loopback port. The scenario lives in
# tests/integration/redis_driver.c (built by `make check`): two tier
# instances (two proxies) on one loop; miss -> fill -> hit, the cache-aside
# race (fill refused), bump invalidation and pub/sub, junk values, values
# refused by their MAC (moved, altered, forged, another secret), host names
# resolved without blocking, kill -9
# (fail fast, breaker, dirty) and a restart from the RDB (epoch bump, nothing
# stale served), SIGSTOP (each op abandoned at redis_timeout, late replies
# dropped) and SIGCONT, AUTH / ACL user / SELECT. The driver prints
# "PLAN n" and "RESULT 0|1 name" lines, turned into TAP here; its log (stderr)
# must hold no password and no sanitizer report. Bounded: about 15 s.

. "$(dirname "$0")/lib.sh"
mc_init

driver=$abs_top_builddir/tests/integration/redis_driver
if [ ! -x "$driver" ]; then
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "redis_driver not built: $driver"
    echo "1..0 # SKIP redis_driver not built (make check builds it)"
    exit 0
fi
command -v redis-server >/dev/null 2>&1 || {
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "redis-server not found"
    echo "1..0 # SKIP redis-server not found"
    exit 0
}

mc_start_redis
out=$MC_TMP/driver.out
log=$MC_TMP/driver.log
pidfile=$MC_TMP/restarted-redis.pid

st=0
timeout 60 "$driver" "$REDIS_PORT" "$REDIS_PID" "$pidfile" >"$out" 2>"$log" || st=$?
# the redis-server the driver restarted (it also dies with the driver)
if [ -s "$pidfile" ]; then
    mc_track "$(cat "$pidfile")"
fi

plan=$(sed -n 's/^PLAN \([0-9]*\)$/\1/p' "$out" | head -n 1)
[ -n "$plan" ] || {
    mc_log_tail "$out"
    mc_log_tail "$log"
    mc_bail "redis_driver printed no plan (exit status $st)"
}
mc_plan $((plan + 3))

while IFS= read -r line; do
    case $line in
    "RESULT "*)
        rest=${line#RESULT }
        mc_ok "${rest%% *}" "${rest#* }"
        ;;
    "# "*) echo "$line" ;;
    esac
done <"$out"

mc_is "$st" 0 "redis_driver exited with status 0"
if [ "$st" -ne 0 ]; then
    mc_log_tail "$log" 40
fi

# Nothing secret in the log: the passwords the driver used, in any form.
leaks=$(grep -c -e 's3cret-pw-42' -e 'acl-pw-5150' -e 'wrong-pw-777' -e 'pw-in-bad-url-99' "$log")
mc_is "$leaks" 0 "no password appears in the tier's log lines"

if grep -Eq 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log"; then
    grep -E -A 20 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" | head -n 40 | sed 's/^/#   /'
    mc_ok 1 "no sanitizer report"
else
    mc_ok 0 "no sanitizer report"
fi

mc_done
