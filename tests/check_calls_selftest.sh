#!/bin/bash
# tests/check_calls_selftest.sh: tests/check_calls.sh finds what it must,
# on a tiny fixture tree compiled here (so the check cannot pass by
# reading nothing): a circle in wire/, a call from wire/ up to conf/,
# a call between advice/ and cache/, a proxy/ circle listed as known (with
# automake's per-target object names), a known circle that is gone, and a
# static inline helper of the same name in two files (no edge, no clash).
# The fixture's KNOWN list replaces the real one in a copy of the script.
# Prints TAP. Needs a C compiler ($CC, else cc).

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
CC=${CC:-cc}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

echo "1..12"
n=0
ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

# file: "folder/name defines calls..." (calls are other fixtures' symbols)
fixture() {
    local obj=$1 def=$2
    shift 2
    local body="" decl=""
    for c in "$@"; do
        decl="$decl void $c(void);"
        body="$body $c();"
    done
    mkdir -p "$tmp/b/$(dirname "$obj")"
    printf '%s\nvoid %s(void);\nstatic inline int helper(void) { return 1; }\nvoid %s(void) { %s (void)helper(); }\n' \
        "$decl" "$def" "$def" "$body" >"$tmp/src.c"
    "$CC" -O0 -c -o "$tmp/b/$obj" "$tmp/src.c" || return 1
}
built=0
{
    fixture wire/a.o wire_a_y wire_b_x &&
        fixture wire/b.o wire_b_x wire_a_y &&
        fixture wire/e.o wire_e_v conf_c_z &&
        fixture conf/c.o conf_c_z wire_a_y &&
        fixture cache/g.o cache_g_w conf_c_z &&
        fixture advice/f.o advice_f_u cache_g_w &&
        fixture proxy/libmongocache_a-h.o proxy_h_t proxy_i_s cache_g_w &&
        fixture proxy/i.o proxy_i_s proxy_h_t &&
        fixture proxy/mongocache-main.o main_fixture proxy_h_t advice_f_u
} && built=1
ok $((1 - built)) "the fixture objects compile ($CC)"

# The real script, with the fixture's KNOWN list instead of the real one.
awk '
/^known=\($/ { print; print "    \"proxy/h proxy/i|fixture: a known circle\""; print "    \"proxy/j proxy/k|fixture: a circle that is gone\""; skip = 1; next }
skip && /^\)$/ { skip = 0 }
!skip { print }
' "$srcdir/tests/check_calls.sh" >"$tmp/check_calls.sh"
grep -q '"proxy/h proxy/i|fixture' "$tmp/check_calls.sh"
ok $? "the KNOWN list of tests/check_calls.sh is replaced in a copy"

objs="wire/a.o wire/b.o wire/e.o conf/c.o cache/g.o advice/f.o proxy/libmongocache_a-h.o proxy/i.o"
objs="$objs proxy/mongocache-main.o"
mongocache_objects=$objs bash "$tmp/check_calls.sh" "$tmp/b" >"$tmp/out" 2>&1
rc=$?
sed 's/^/#   | /' "$tmp/out"
has() { grep -qF -e "$1" "$tmp/out"; }

[ $rc -ne 0 ]
ok $? "the check fails (exit $rc)"
has "not ok 1 - wire/" && has "#   circle of 2 files: wire/a wire/b" &&
    has "#     wire/a -> wire/b: wire_b_x" && has "#     wire/b -> wire/a: wire_a_y" &&
    has "#     cycle: wire/a -> wire/b -> wire/a"
ok $? "a circle of two wire/ files fails, printed with its cycle and the symbols on each edge"
has "#   wire/e -> conf/c: conf_c_z"
ok $? "a call from wire/ up to conf/ fails, with its symbol"
has "ok 2 - conf/" && has "ok 3 - cache/"
ok $? "conf/ and cache/ pass (downward calls only)"
has "not ok 4 - advice/" && has "#   advice/f -> cache/g: cache_g_w"
ok $? "a call from advice/ to cache/ fails"
has "ok 5 - proxy/" && has "known circles: TODO test 6"
ok $? "proxy/ passes: its only circle is known (automake's object names read as proxy/h)"
has "not ok 6 - known circle is gone: proxy/h proxy/i # TODO known circle"
ok $? "the known circle is a TODO test (XFAIL)"
has "ok 7 - known circle is gone: proxy/j proxy/k # TODO"
ok $? "a known circle that is gone passes unexpectedly (XPASS: delete its entry)"
! has "defined in both"
ok $? "a static inline helper in every file makes no edge and no clash"

mkdir -p "$tmp/none"
bailed=0
mongocache_objects="" bash "$tmp/check_calls.sh" "$tmp/none" >"$tmp/out" 2>&1
[ $? -ne 0 ] && has "Bail out! no object list" && bailed=$((bailed + 1))
mongocache_objects="wire/a.o wire/gone.o" bash "$tmp/check_calls.sh" "$tmp/b" >"$tmp/out" 2>&1
[ $? -ne 0 ] && has "Bail out! $tmp/b/wire/gone.o is missing" && bailed=$((bailed + 1))
[ $bailed = 2 ]
ok $? "no object list, or a missing object, bails out (never a vacuous pass)"
