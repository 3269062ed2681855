#!/bin/sh
# tests/integration/test_calls.sh: no circle of calls between the files of
# proxy/ (the layering drawn at the top of proxy/request.c: a file calls only
# files below it; a lower file reports up through a callback it was given).
# A file "calls" another when it names one of the other's functions: a
# non-static function defined in the other's .c (its name at the start of a
# line, the house style) or a static inline one in its header. Prints every
# edge as a diagnostic and each circle found. Prints TAP; finds the tree
# through $abs_top_srcdir (set by `make check`).

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
echo "1..1"
python3 - "$srcdir" <<'PY'
import glob, os, re, sys

root = sys.argv[1]
files = sorted(glob.glob(os.path.join(root, "proxy", "*.c")))


def text(path):
    with open(path) as f:
        return re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)


owner = {}
for f in files:
    name = os.path.basename(f)[:-2]
    for m in re.finditer(r"^(proxy_\w+)\(", text(f), re.M):
        owner.setdefault(m.group(1), name)
    headers = [f[:-2] + ".h"]
    if name == "client":
        headers.append(os.path.join(root, "proxy", "client_internal.h"))
    for h in headers:
        if os.path.exists(h):
            for m in re.finditer(r"^static inline[^(]*?\b(proxy_\w+)\(", text(h), re.M):
                owner.setdefault(m.group(1), name)
edges = {}
for f in files:
    name = os.path.basename(f)[:-2]
    for sym in set(re.findall(r"\b(proxy_\w+)\b", text(f))):
        to = owner.get(sym)
        if to and to != name:
            edges.setdefault(name, {}).setdefault(to, set()).add(sym)
for a in sorted(edges):
    for b in sorted(edges[a]):
        print("# %s -> %s: %s" % (a, b, " ".join(sorted(edges[a][b]))))

# Tarjan's strongly connected components: every one larger than a file is a circle.
index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, {}):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            circles.append(sorted(comp))


for v in sorted(edges):
    if v not in index:
        visit(v)
for c in circles:
    print("# circle: " + " ".join(c))
if len(files) < 10 or not edges:
    print("not ok 1 - no circle of calls between proxy/ files # found no files or calls")
    sys.exit(1)
print("%s 1 - no circle of calls between proxy/ files (%d files, %d edges)" % (
    "not ok" if circles else "ok", len(files), sum(len(v) for v in edges.values())))
sys.exit(1 if circles else 0)
PY
