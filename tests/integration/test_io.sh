#!/bin/sh
# tests/integration/test_io.sh: the socket layer's system calls (proxy/io.c),
# counted by bench/syscalls.sh (strace -c on the running proxy, one client,
# the canned upstream bench/mcload --server): an in-process hit costs at most
# 3 system calls and a pass-through (cache off) at most 6, with no
# ioctl(FIONREAD) and no epoll_ctl per request. A Redis-tier hit (--redis,
# --cache-memory 0: one MGET per hit; cache/redis_conn.c on conf/sock.c)
# costs at most 6: a poll, a read and a write on each of the two sockets;
# the client's reading, paused while its lookup waits, keeps its interest
# registered unless the client sends meanwhile (proxy/conn.c), so no
# epoll_ctl (it cost 2 when the pause was an epoll_ctl each way); the Redis
# socket itself adds no epoll_ctl and no FIONREAD (libevent's default cost
# 12: 4 epoll_ctl, an ioctl and a second poll per hit). Needs redis-server
# for those two. At 50 clients (the write batch, proxy/conn.c: the replies of
# one loop turn written together at its end) a hit still costs one send and
# one read, the loop's poll shared, and every reply is its request's.
# Memory management (mmap,
# munmap, madvise, brk, mprotect, mremap) is the allocator's, not the socket
# layer's, and left out: a sanitizer build's allocator maps memory as it goes.
# Counts, not timings: the machine's load does not change them. Needs strace
# and no MongoDB. Prints TAP.

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${abs_top_builddir:-$srcdir}

if ! command -v strace >/dev/null 2>&1; then
    if [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "Bail out! strace is missing (run tests/setup.sh)"
        exit 1
    fi
    echo "1..0 # SKIP strace is missing (run tests/setup.sh)"
    exit 0
fi

echo "1..8"
out=$(BUILD_DIR=$builddir MONGOCACHE=${MONGOCACHE_TEST_BIN:-$builddir/mongocache} \
    bash "$srcdir/bench/syscalls.sh" 3000 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'

# per_request NAME: system calls per request on NAME's line, memory management
# left out ("" when there is no such line)
per_request() {
    echo "$out" | awk -v name="$1" '$1 == name {
        sum = 0
        for (i = 1; i <= NF; i++) {
            if (split($i, kv, "=") != 2) continue
            if (kv[1] ~ /^(mmap|munmap|madvise|brk|mprotect|mremap)$/) continue
            sum += kv[2]
        }
        printf "%.2f\n", sum; exit }'
}
# calls NAME SYSCALL: SYSCALL's count per request on NAME's line (0 when absent)
calls() {
    echo "$out" | awk -v name="$1" -v sc="$2" '$1 == name {
        for (i = 1; i <= NF; i++) if (index($i, sc "=") == 1) { print substr($i, length(sc) + 2); exit }
        print 0; exit }'
}
# at_most VALUE LIMIT: true when VALUE is a number no greater than LIMIT
at_most() {
    [ -n "$1" ] && awk -v v="$1" -v l="$2" 'BEGIN { exit !(v + 0 <= l + 0) }'
}
# polls NAME: event-loop waits per request on NAME's line, whichever call
# libevent makes (epoll_wait, epoll_pwait, epoll_pwait2)
polls() {
    awk -v a="$(calls "$1" epoll_wait)" -v b="$(calls "$1" epoll_pwait)" \
        -v c="$(calls "$1" epoll_pwait2)" 'BEGIN { printf "%.2f\n", a + b + c }'
}
# at_least_one_poll VALUE: a client waiting for each reply makes the loop
# wait at least once per request; none counted means the count read nothing
at_least_one_poll() {
    awk -v v="$1" 'BEGIN { exit !(v + 0 >= 0.99) }'
}

n=0
check() { # STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

hit=$(per_request hit)
pass=$(per_request passthrough)
[ "$rc" -eq 0 ] && at_most "$hit" 3.05
check $? "an in-process hit costs at most 3 system calls (${hit:-none} measured)"
[ "$rc" -eq 0 ] && at_most "$pass" 6.05
check $? "a pass-through costs at most 6 system calls (${pass:-none} measured)"
[ -n "$hit" ] && [ -n "$pass" ] && at_most "$(calls hit ioctl)" 0 &&
    at_most "$(calls passthrough ioctl)" 0
check $? "no ioctl(FIONREAD) before reads"
[ -n "$hit" ] && [ -n "$pass" ] && at_most "$(calls hit epoll_ctl)" 0.01 &&
    at_most "$(calls passthrough epoll_ctl)" 0.01
check $? "no epoll_ctl in a steady request loop"

# 50 clients, hits only: the write batch sends each reply once, whole.
out1=$out
out=$(BUILD_DIR=$builddir MONGOCACHE=${MONGOCACHE_TEST_BIN:-$builddir/mongocache} \
    bash "$srcdir/bench/syscalls.sh" --clients 50 --scenario hit 20000 2>&1)
rc50=$?
echo "$out" | sed 's/^/# 50 clients: /'
hit50=$(per_request hit)
sends50=$(awk -v a="$(calls hit sendmsg)" -v b="$(calls hit sendto)" -v c="$(calls hit writev)" \
    -v d="$(calls hit write)" 'BEGIN { printf "%.2f\n", a + b + c + d }')
errors50=$(echo "$out" | awk '$1 == "hit:" && $2 == "mcload" { print $4; exit }')
[ "$rc50" -eq 0 ] && [ "$errors50" = 0 ] && at_most "$(calls hit recvfrom)" 1.05
check $? "50 clients: every reply is its request's (mcload errors: ${errors50:-none}), one read each"
[ "$rc50" -eq 0 ] && at_most "$hit50" 3.05 && at_most "$sends50" 1.05 && awk -v v="$sends50" \
    'BEGIN { exit !(v + 0 >= 0.99) }'
check $? "50 clients: one send per hit, at most 3 system calls (${hit50:-none}, sends $sends50)"
out=$out1

redis=$(per_request redis-hit)
if [ -z "$redis" ] && ! command -v redis-server >/dev/null 2>&1 &&
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" != 1 ]; then
    echo "ok 7 # SKIP redis-server is missing"
    echo "ok 8 # SKIP redis-server is missing"
    exit 0
fi
[ "$rc" -eq 0 ] && at_most "$redis" 6.05
check $? "a Redis-tier hit costs at most 6 system calls (${redis:-none} measured)"
rpolls=$(polls redis-hit)
[ -n "$redis" ] && at_most "$(calls redis-hit ioctl)" 0 &&
    at_most "$(calls redis-hit epoll_ctl)" 0.01 && at_least_one_poll "$rpolls" &&
    at_most "$rpolls" 2.01
check $? "a Redis-tier hit: no FIONREAD, no epoll_ctl, one poll per socket ($rpolls counted)"
