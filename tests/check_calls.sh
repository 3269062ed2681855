#!/bin/bash
# tests/check_calls.sh: the call graph between files respects the layers
# (README.md's layout, issue 9), read from the built objects, not from the sources.
#
# Every object of libmongocache.a and of the daemon (mongocache) is read
# with nm: each undefined symbol of an object is resolved to the object of
# ours that defines it (functions, and the odd global table), which makes
# one file-level edge "a -> b: symbols". Symbols of libc, libbson, libevent
# ... resolve to none of ours and are dropped; static (and static inline)
# functions are local to their object, so a header's static inline helper
# never makes an edge. Two rules, one TAP test per folder:
#   (a) no file calls a file of a higher folder, nor cache/ and advice/
#       each other (the same table as tests/check_layers.sh):
#         wire   -> wire
#         conf   -> conf, wire
#         cache  -> cache, conf, wire
#         advice -> advice, conf, wire
#         proxy  -> anything above
#   (b) files of one folder never call each other in a circle: every
#       strongly connected component of more than one file is printed with
#       one shortest cycle and the symbols on each of its edges.
# A circle listed in KNOWN below is a TAP "TODO" test instead of a failure,
# while its branch is being restructured; once the circle is gone that
# test passes unexpectedly (XPASS), which fails `make check` until its
# entry is deleted, so the list cannot go stale. Any other circle fails.
#
# Finds the objects through $mongocache_objects and $abs_top_builddir (both
# set by `make check`: the object list is Makefile.am's own
# $(libmongocache_a_OBJECTS) $(mongocache_OBJECTS), so automake's per-target
# names such as proxy/libmongocache_a-client.o are followed), or, by hand,
# `bash tests/check_calls.sh BUILDDIR` (asks BUILDDIR's Makefile for the
# list). No object, or a listed object missing, is a failure, never a pass.

builddir=${1:-${abs_top_builddir:-}}
if [ -z "$builddir" ]; then
    echo "1..0 # usage: tests/check_calls.sh BUILDDIR (or run by make check)" >&2
    echo "Bail out! no build directory"
    exit 1
fi
objects=${mongocache_objects:-}
if [ -z "$objects" ]; then
    # Not the calling make's flags: its "w" makes a failing sub-make print
    # "make[N]: ..." on stdout, which would read as an object list.
    objects=$(MAKEFLAGS= MAKELEVEL= make -s --no-print-directory -C "$builddir" \
        print-call-objects 2>/dev/null) || objects=""
fi
NM=${NM:-nm}

# KNOWN circles: the exact sorted file set of one strongly connected
# component, "|", who removes it. Delete an entry when its branch lands
# (its TODO test then passes unexpectedly and make check says so).
known=(
)

bail() {
    echo "Bail out! $*"
    exit 1
}

[ -n "$objects" ] || bail "no object list (run make in $builddir first, or pass the build directory)"
list=""
for o in $objects; do
    o=${o//\$(OBJEXT)/o}
    [ -f "$builddir/$o" ] || bail "$builddir/$o is missing: build first (make -C $builddir)"
    list="$list $o"
done

# "object symbol type" for every external symbol, defined or undefined.
syms=$(cd "$builddir" && $NM -P -A -g $list) || bail "$NM failed on the objects in $builddir"
[ -n "$syms" ] || bail "$NM printed no symbol for the objects in $builddir"

printf '%s\n' "$syms" | awk -v known_list="$(printf '%s\n' "${known[@]}")" '
function node(obj,    dir, base) {
    # proxy/libmongocache_a-client.o -> proxy/client
    sub(/:$/, "", obj)
    dir = obj; sub(/\/[^\/]*$/, "", dir)
    base = obj; sub(/^.*\//, "", base); sub(/\.o$/, "", base)
    sub(/^[A-Za-z0-9_]+-/, "", base)
    return dir "/" base
}
function folder(n) { sub(/\/.*$/, "", n); return n }
{
    n = node($1); sym = $2; type = $3
    if (!(n in seen)) { seen[n] = 1; nodes[++nn] = n; nfiles[folder(n)]++ }
    if (type == "U" || type == "w" || type == "v") {
        nu++; use_n[nu] = n; use_s[nu] = sym
    } else {
        if (sym in def && def[sym] != n)
            dup = dup "#   " sym " defined in both " def[sym] " and " n "\n"
        def[sym] = n
    }
}
function bfs_cycle(s, comp,    q, head, tail, prev, u, v, i, path, c) {
    # the shortest cycle through s inside one component, as "s -> a -> s"
    head = 1; tail = 0
    split("", prev)
    for (i = 1; i <= ne; i++) if (e_from[i] == s && (e_to[i] in comp)) {
        v = e_to[i]; if (!(v in prev)) { prev[v] = s; q[++tail] = v }
    }
    while (head <= tail) {
        u = q[head++]
        if (u == s) break
        for (i = 1; i <= ne; i++) if (e_from[i] == u && (e_to[i] in comp)) {
            v = e_to[i]; if (!(v in prev)) { prev[v] = u; q[++tail] = v }
        }
    }
    path = s; c = prev[s]
    while (c != s) { path = c " -> " path; c = prev[c] }
    return s " -> " path
}
END {
    split("wire conf cache advice proxy", folders, " ")
    allowed["wire"] = " wire "
    allowed["conf"] = " conf wire "
    allowed["cache"] = " cache conf wire "
    allowed["advice"] = " advice conf wire "
    allowed["proxy"] = " proxy cache advice conf wire "
    if (dup != "") { print "Bail out! a symbol defined twice:"; printf "%s", dup; exit 1 }
    for (i = 1; i <= nu; i++) {
        if (!(use_s[i] in def)) continue
        a = use_n[i]; b = def[use_s[i]]
        if (a == b) continue
        if (!((a, b) in esyms)) { ne++; e_from[ne] = a; e_to[ne] = b; esyms[a, b] = use_s[i] }
        else esyms[a, b] = esyms[a, b] " " use_s[i]
    }
    if (ne == 0) { print "Bail out! no call between two files found: nm output not understood"; exit 1 }
    for (k = 1; k <= nn; k++) if (!(folder(nodes[k]) in allowed)) {
        print "Bail out! object outside the five folders: " nodes[k]; exit 1
    }
    nk = split(known_list, kl, "\n")
    nknown = 0
    for (i = 1; i <= nk; i++) {
        if (kl[i] == "") continue
        k = ++nknown
        known_set[k] = kl[i]; sub(/\|.*$/, "", known_set[k])
        known_why[k] = kl[i]; sub(/^[^|]*\|/, "", known_why[k])
        known_found[k] = 0
    }
    print "1.." (5 + nknown)
    failed = 0
    for (f = 1; f <= 5; f++) {
        fo = folders[f]
        up = ""; nedges = 0
        # (a) calls out of the folder
        for (i = 1; i <= ne; i++) {
            if (folder(e_from[i]) != fo) continue
            nedges++
            to = folder(e_to[i])
            if (index(allowed[fo], " " to " ") == 0)
                up = up "#   " e_from[i] " -> " e_to[i] ": " esyms[e_from[i], e_to[i]] "\n"
        }
        # (b) strongly connected components inside the folder (Warshall)
        split("", reach); split("", fn)
        m = 0
        for (k = 1; k <= nn; k++) if (folder(nodes[k]) == fo) fn[++m] = nodes[k]
        for (i = 1; i <= ne; i++)
            if (folder(e_from[i]) == fo && folder(e_to[i]) == fo) reach[e_from[i], e_to[i]] = 1
        for (x = 1; x <= m; x++) for (y = 1; y <= m; y++) if ((fn[y], fn[x]) in reach)
            for (z = 1; z <= m; z++) if ((fn[x], fn[z]) in reach) reach[fn[y], fn[z]] = 1
        split("", done)
        new = ""; knownhere = ""
        for (x = 1; x <= m; x++) {
            if (fn[x] in done) continue
            split("", comp); set = ""; size = 0
            # fn[] is in nm order; sort the component for a stable name
            for (y = 1; y <= m; y++)
                if (y == x || (((fn[x], fn[y]) in reach) && ((fn[y], fn[x]) in reach))) {
                    comp[fn[y]] = 1; done[fn[y]] = 1; size++
                }
            if (size < 2) continue
            ns = 0; split("", sorted)
            for (c in comp) sorted[++ns] = c
            for (i = 2; i <= ns; i++) {
                v = sorted[i]
                for (j = i - 1; j >= 1 && sorted[j] > v; j--) sorted[j + 1] = sorted[j]
                sorted[j + 1] = v
            }
            for (i = 1; i <= ns; i++) set = set (i > 1 ? " " : "") sorted[i]
            text = "#   circle of " size " files: " set "\n"
            text = text "#     cycle: " bfs_cycle(sorted[1], comp) "\n"
            for (i = 1; i <= ne; i++)
                if ((e_from[i] in comp) && (e_to[i] in comp))
                    text = text "#     " e_from[i] " -> " e_to[i] ": " esyms[e_from[i], e_to[i]] "\n"
            isknown = 0
            for (k = 1; k <= nknown; k++) if (known_set[k] == set) {
                isknown = k; known_found[k] = 1; known_text[k] = text
            }
            if (isknown) knownhere = knownhere " " (5 + isknown)
            else new = new text
        }
        desc = fo "/ calls only: " substr(allowed[fo], 2, length(allowed[fo]) - 2) \
            "; no new circle (" m " files, " nedges " edges to other files"
        if (knownhere != "") desc = desc "; known circles: TODO test" knownhere
        desc = desc ")"
        if (m == 0) {
            print "not ok " f " - " fo "/: no object found"; failed = 1
        } else if (up == "" && new == "") {
            print "ok " f " - " desc
        } else {
            print "not ok " f " - " desc
            if (up != "") { print "#   calls to a file of a higher (or sibling) folder:"; printf "%s", up }
            if (new != "") { print "#   new circle(s) (not in KNOWN):"; printf "%s", new }
            failed = 1
        }
    }
    for (k = 1; k <= nknown; k++) {
        if (known_found[k]) {
            print "not ok " (5 + k) " - known circle is gone: " known_set[k] \
                " # TODO known circle (" known_why[k] ")"
            printf "%s", known_text[k]
        } else {
            print "ok " (5 + k) " - known circle is gone: " known_set[k] \
                " # TODO known circle (" known_why[k] "): gone now, delete its KNOWN entry"
        }
    }
    exit failed
}'
