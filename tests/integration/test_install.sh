#!/usr/bin/env bash
# tests/integration/test_install.sh: what `make install` delivers.
#   - `make install DESTDIR=...` installs exactly the binary, mongocache(8),
#     mongocache.conf(5), the sample config, a config made from it, and the
#     systemd unit, at the configured paths; a second install keeps an
#     operator's edited config; `make uninstall` removes the rest;
#   - `man -l` renders both pages with no groff warning, with their sections;
#   - every option of conf/options.def is in mongocache.conf(5) (name, type,
#     default, flag, environment variable, reloadable, help) and its flag
#     and variable in mongocache(8);
#   - the unit: Type=notify, the installed paths, reload by SIGHUP, the
#     hardening settings, TimeoutStopSec above drain_timeout's default, and
#     `systemd-analyze verify` and `security --offline` (when installed).
# Needs no server. Finds the trees through $abs_top_srcdir/$abs_top_builddir
# (set by `make check`). man and systemd-analyze come from tests/setup.sh's
# apt list; without them those checks skip, or fail under
# MONGOCACHE_REQUIRE_INTEGRATION=1. Prints TAP.

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${abs_top_builddir:-$srcdir}
require=${MONGOCACHE_REQUIRE_INTEGRATION:-0}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

n=0
failed=0
ok() {
    # ok STATUS DESCRIPTION [DIAGNOSTIC...]
    n=$((n + 1))
    local st=$1 desc=$2
    shift 2
    if [ "$st" -eq 0 ]; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        failed=1
        local line
        for line in "$@"; do
            printf '#   %s\n' "$line"
        done
    fi
}
# skip DESCRIPTION REASON: a skip, or a failure when the tools are required.
skip() {
    if [ "$require" = 1 ]; then
        ok 1 "$1" "$2 (run tests/setup.sh)"
    else
        n=$((n + 1))
        echo "ok $n - $1 # SKIP $2"
    fi
}
# The build's make, without the make running this test's jobserver flags.
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$builddir" "$@"
}

# ---- the options, from options.def (as test_docs.sh reads them) --------------
sep=$(printf '\037')
sed -n "s/^CONF_OPT(\\([a-z0-9_]*\\), *\\([A-Z]*\\), *\"\\([^\"]*\\)\", *\"\\([A-Z0-9_]*\\)\", *\\([01]\\),.*/\\1$sep\\2$sep\\3$sep\\4$sep\\5/p" \
    "$srcdir/conf/options.def" >"$tmp/opts"
# The help texts: the quoted string on the line after each CONF_OPT line.
awk '/^CONF_OPT\(/ { getline h; sub(/^[ \t]*"/, "", h); sub(/"\)[ \t]*$/, "", h); print h }' \
    "$srcdir/conf/options.def" >"$tmp/helps"
n_opts=$(wc -l <"$tmp/opts" | tr -d ' ')
[ "$n_opts" -gt 0 ] && [ "$n_opts" -eq "$(grep -c '^CONF_OPT(' "$srcdir/conf/options.def")" ] &&
    [ "$n_opts" -eq "$(wc -l <"$tmp/helps" | tr -d ' ')" ] ||
    { echo "Bail out! cannot read the options of $srcdir/conf/options.def"; exit 1; }

echo "1..$((n_opts * 2 + 18))"

# ---- make install -------------------------------------------------------------
mk print-install-dirs >"$tmp/dirs" 2>"$tmp/dirs.err" ||
    { echo "Bail out! make print-install-dirs failed: $(head -c 300 "$tmp/dirs.err")"; exit 1; }
dir() { sed -n "s/^$1=//p" "$tmp/dirs"; }
bindir=$(dir bindir)
man5dir=$(dir man5dir)
man8dir=$(dir man8dir)
confdir=$(dir pkgsysconfdir)
unitdir=$(dir systemdsystemunitdir)

mk install DESTDIR="$root" >"$tmp/install.out" 2>&1
ok $? "make install DESTDIR=... succeeds" "$(tail -n 5 "$tmp/install.out")"

printf '%s\n' "$bindir/mongocache" "$man8dir/mongocache.8" "$man5dir/mongocache.conf.5" \
    "$confdir/mongocache.conf.sample" "$confdir/mongocache.conf" \
    "$unitdir/mongocache.service" | sort >"$tmp/want"
(cd "$root" && find . -type f -o -type l) | sed 's|^\.||' | sort >"$tmp/got"
cmp -s "$tmp/want" "$tmp/got"
ok $? "it installs the binary, both man pages, the sample and a config, and the unit" \
    "want:" "$(cat "$tmp/want")" "got:" "$(cat "$tmp/got")"

bin=$root$bindir/mongocache
[ -x "$bin" ] && [ "$("$bin" --version)" = "$("$builddir/mongocache" --version)" ]
ok $? "the installed binary runs (--version)"

cmp -s "$root$confdir/mongocache.conf" "$srcdir/mongocache.conf.sample" &&
    "$bin" --config "$root$confdir/mongocache.conf" --check-config >"$tmp/check.out" 2>&1
ok $? "the installed config is the sample, and the installed binary accepts it" \
    "$(tail -n 3 "$tmp/check.out" 2>/dev/null)"

echo "max_clients = 123 # an operator's edit" >>"$root$confdir/mongocache.conf"
cp "$root$confdir/mongocache.conf" "$tmp/edited"
: >"$root$confdir/mongocache.conf.sample"
mk install DESTDIR="$root" >"$tmp/install2.out" 2>&1 &&
    cmp -s "$root$confdir/mongocache.conf" "$tmp/edited" &&
    cmp -s "$root$confdir/mongocache.conf.sample" "$srcdir/mongocache.conf.sample"
ok $? "a second make install keeps the edited config and refreshes the sample" \
    "$(tail -n 5 "$tmp/install2.out")"

# The pages and the unit are read from a copy: uninstall removes the tree's.
cp -R "$root" "$tmp/installed"
mk uninstall DESTDIR="$root" >"$tmp/uninstall.out" 2>&1 &&
    [ "$( (cd "$root" && find . -type f -o -type l) | sed 's|^\.||')" = "$confdir/mongocache.conf" ]
ok $? "make uninstall removes everything but the edited config" \
    "left: $( (cd "$root" && find . -type f) | tr '\n' ' ')"
root=$tmp/installed
page8=$root$man8dir/mongocache.8
page5=$root$man5dir/mongocache.conf.5
unit=$root$unitdir/mongocache.service

# ---- the man pages --------------------------------------------------------------
! grep -n '@[A-Za-z_]*@' "$page8" "$page5" >"$tmp/markers"
ok $? "no template marker is left in the pages" "$(head -n 3 "$tmp/markers")"

# render PAGE OUT: man -l, plain ASCII, no hyphenation or justification, every
# groff warning on; OUT.err holds its standard error.
render() {
    MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings=w -E ascii --nh --nj -l "$1" 2>"$2.err" |
        col -bx >"$2"
}
# flat OUT: the rendered text with each run of blanks and newlines as one
# space, and a word groff broke after its hyphen ("comma-" / "separated") or
# a path it broke after a '/' whole.
flat() {
    sed -e ':a' -e '/\([a-z]-\|[^ ]\/\)$/{N;s/\([-/]\)\n[[:space:]]*/\1/;ba' -e '}' "$1" |
        tr -s ' \n\t' '   '
}
has_sections() {
    local out=$1 s missing=""
    shift
    for s in "$@"; do
        grep -qx "$s" "$out" || missing="$missing [$s]"
    done
    echo "$missing"
}

if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
    have_man=1
else
    have_man=0
fi
for p in 8 5; do
    if [ "$p" = 8 ]; then page=$page8; else page=$page5; fi
    if [ "$have_man" = 1 ]; then
        render "$page" "$tmp/page$p.txt"
        st=$?
        [ "$st" -eq 0 ] && [ ! -s "$tmp/page$p.txt.err" ] && [ -s "$tmp/page$p.txt" ]
        ok $? "man -l renders $(basename "$page") with no warning" "status $st" \
            "$(head -n 5 "$tmp/page$p.txt.err")"
    else
        skip "man -l renders $(basename "$page") with no warning" "man or groff not installed"
    fi
done

if [ "$have_man" = 1 ]; then
    missing=$(has_sections "$tmp/page8.txt" NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS \
        "HTTP ENDPOINTS" FILES ENVIRONMENT "EXIT STATUS" "SEE ALSO")
    [ -z "$missing" ]
    ok $? "mongocache(8) has its sections" "missing:$missing"
    missing=$(has_sections "$tmp/page5.txt" NAME SYNOPSIS DESCRIPTION "FILE FORMAT" \
        "VALUE TYPES" OPTIONS FILES "SEE ALSO")
    [ -z "$missing" ]
    ok $? "mongocache.conf(5) has its sections" "missing:$missing"
    flat "$tmp/page8.txt" >"$tmp/flat8"
    flat "$tmp/page5.txt" >"$tmp/flat5"
    grep -qF "SIGHUP Reload" "$tmp/flat8" && grep -qF "SIGTERM, SIGINT Drain" "$tmp/flat8"
    ok $? "mongocache(8) documents SIGHUP (reload) and SIGTERM (drain)"
    grep -qF "$confdir/mongocache.conf " "$tmp/flat8" &&
        grep -qF "$unitdir/mongocache.service" "$tmp/flat8" &&
        grep -qF "$confdir/mongocache.conf " "$tmp/flat5"
    ok $? "the pages name the configured paths ($confdir, $unitdir)"
else
    for d in "mongocache(8) has its sections" "mongocache.conf(5) has its sections" \
        "mongocache(8) documents SIGHUP (reload) and SIGTERM (drain)" \
        "the pages name the configured paths"; do
        skip "$d" "man or groff not installed"
    done
fi

# Every option, in full in mongocache.conf(5), with its flag and variable in mongocache(8).
i=0
while IFS="$sep" read -r name type default env reload; do
    i=$((i + 1))
    help=$(sed -n "${i}p" "$tmp/helps" | sed 's/\\"/"/g' | tr -s ' ')
    flag=--$(echo "$name" | tr '_' '-')
    if [ -n "$default" ]; then shown=$default; else shown='"" (empty)'; fi
    if [ "$reload" = 1 ]; then rel=yes; else rel=no; fi
    if [ "$have_man" = 0 ]; then
        skip "mongocache.conf(5) documents $name" "man or groff not installed"
        skip "mongocache(8) lists $flag and $env" "man or groff not installed"
        continue
    fi
    missing=""
    for want in " $name = " "$help." "Type: $type; default: $shown." \
        "Flag: $flag; environment: $env." "Reloadable: $rel "; do
        grep -qF -e "$want" "$tmp/flat5" || missing="$missing [$want]"
    done
    [ -z "$missing" ]
    ok $? "mongocache.conf(5) documents $name (type, default, flag, env, reloadable, help)" \
        "missing:$missing"
    missing=""
    for want in " $flag " "Option $name, environment $env." " $env Sets $name "; do
        grep -qF -e "$want" "$tmp/flat8" || missing="$missing [$want]"
    done
    [ -z "$missing" ]
    ok $? "mongocache(8) lists $flag and $env" "missing:$missing"
done <"$tmp/opts"

# ---- the systemd unit ---------------------------------------------------------
# key VALUE: the unit's last value for key (what systemd would use).
key() {
    sed -n "s/^$1=//p" "$unit" | tail -n 1
}
got="$(key Type) | $(key ExecStart) | $(key ExecReload)"
want="notify | $bindir/mongocache --config $confdir/mongocache.conf | /bin/kill -HUP \$MAINPID"
[ "$got" = "$want" ]
ok $? "the unit: Type=notify, the installed binary and config, reload by SIGHUP" \
    "got:  $got" "want: $want"

missing=""
for kv in DynamicUser=yes ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes \
    CapabilityBoundingSet= PrivateDevices=yes RestrictAddressFamilies="AF_INET AF_INET6 AF_UNIX" \
    RestrictNamespaces=yes RestrictSUIDSGID=yes MemoryDenyWriteExecute=yes LockPersonality=yes \
    ProtectKernelTunables=yes ProtectKernelModules=yes ProtectControlGroups=yes \
    SystemCallArchitectures=native SystemCallFilter=@system-service; do
    k=${kv%%=*}
    v=${kv#*=}
    grep -qxF "$k=$v" "$unit" || missing="$missing [$kv]"
done
[ -z "$missing" ]
ok $? "the unit is hardened (DynamicUser, ProtectSystem=strict, no capabilities, ...)" \
    "missing:$missing"

# seconds DURATION: "30s", "2m", "500ms" (rounded up), "1h", or bare seconds.
seconds() {
    case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
    *h) echo $((${1%h} * 3600)) ;;
    *) echo "$1" ;;
    esac
}
drain=$(awk -F"$sep" '$1 == "drain_timeout" { print $3 }' "$tmp/opts")
stop=$(key TimeoutStopSec)
[ -n "$drain" ] && [ -n "$stop" ] && [ "$(seconds "$stop")" -gt "$(seconds "$drain")" ]
ok $? "TimeoutStopSec ($stop) is above drain_timeout's default ($drain)"

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify resolves ExecStart, ExecReload and the targets a service depends
    # on in the root it is given: the installed tree, plus the host's units
    # and /bin/kill. Documentation=man:... is checked too: `man` finds the
    # installed pages through MANPATH.
    vroot=$tmp/vroot
    cp -R "$root" "$vroot" && mkdir -p "$vroot/usr/lib/systemd" "$vroot/bin" &&
        cp -R /usr/lib/systemd/system "$vroot/usr/lib/systemd/" && cp -L /bin/kill "$vroot/bin/kill"
    # systemd finds the unit by name on its search path (in the root), so a
    # copy goes where an administrator's would: the installed directory may
    # be any (make distcheck's is under its build tree).
    mkdir -p "$vroot/etc/systemd/system" && cp "$unit" "$vroot/etc/systemd/system/"
    vunit=$vroot/etc/systemd/system/mongocache.service
    MANPATH=$vroot$(dirname "$man8dir") SYSTEMD_LOG_COLOR=0 \
        systemd-analyze verify --man=yes --root="$vroot" "$vunit" >"$tmp/verify.out" 2>&1
    st=$?
    [ "$st" -eq 0 ] && [ ! -s "$tmp/verify.out" ]
    ok $? "systemd-analyze verify accepts the unit, silently (man pages found)" "status $st" \
        "$(head -n 8 "$tmp/verify.out")"
    SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --root="$vroot" --no-pager \
        "$vunit" >"$tmp/security.out" 2>&1
    score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/security.out")
    [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'
    ok $? "systemd-analyze security: exposure ${score:-?} (at most 2.0, systemd's OK band)" \
        "$(grep -E '^✗' "$tmp/security.out" | head -n 10)" "$(tail -n 3 "$tmp/security.out")"
else
    skip "systemd-analyze verify accepts the unit, silently (man pages found)" "systemd-analyze not installed"
    skip "systemd-analyze security: exposure at most 2.0" "systemd-analyze not installed"
fi

exit $failed
