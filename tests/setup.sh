#!/usr/bin/env bash
# tests/setup.sh: install everything the mongocache build and its
# integration tests need, on a fresh Debian 12, as root, non-interactively.
# Idempotent: every step is skipped when its result is already there.
#
#   apt:    build deps, redis-server, valgrind, clang, ...
#   Go:     FerretDB v1.24.2        -> $TOP/.tools/bin/ferretdb
#           toxiproxy v2.12.0       -> $TOP/.tools/bin/toxiproxy-server (test_faults.sh)
#   npm:    tests/integration/node  -> node_modules (npm ci, lockfile)
#           bench/s6                -> node_modules (redis, for BENCH S6's exec-patch cache)
#   PyPI:   $TOP/.tools/venv        (tests/integration/python/requirements.txt)
#   Maven:  mongo-java-server       -> $TOP/.tools/java/lib (tests/integration/java)
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$TOP/.tools
FERRETDB_VERSION=v1.24.2
TOXIPROXY_VERSION=v2.12.0

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive

# ---- Debian packages -------------------------------------------------------
APT_PKGS="autoconf automake libtool pkg-config make gcc libevent-dev libbson-dev
libmongoc-dev libhiredis-dev libxxhash-dev libssl-dev redis-server docker-compose
python3-hypothesis python3-venv clang-14 libclang-rt-14-dev valgrind curl iproute2 ca-certificates"
# rediss:// (cache/redis_tls.c): libssl-dev, and libevent-dev's libevent_openssl
# (libevent-openssl-2.1-7); the openssl CLI makes the TLS tests' certificates
APT_PKGS="$APT_PKGS openssl libevent-openssl-2.1-7"
# docker/compose_plain.py and tests/integration/docker_check.py read YAML
APT_PKGS="$APT_PKGS python3-yaml"
# Wire compression (OP_COMPRESSED): configure builds each one it finds.
APT_PKGS="$APT_PKGS zlib1g-dev libzstd-dev libsnappy-dev"
# test_install.sh: man -l renders the man pages (col: bsdextrautils); systemd-analyze checks the unit.
APT_PKGS="$APT_PKGS man-db groff-base bsdextrautils systemd"
# The dashboard's browser test (test_dashboard.sh): headless chromium, its driver, a font.
APT_PKGS="$APT_PKGS chromium chromium-driver fonts-dejavu-core"
# test_io.sh and bench/syscalls.sh count the proxy's system calls (strace);
# bench/run.sh also needs twemproxy (the A2 anchor), redis-benchmark
# (redis-tools) and taskset (util-linux).
APT_PKGS="$APT_PKGS strace nutcracker redis-tools util-linux"
# test_srv.sh: a DNS server for the mongodb+srv:// records (dnsmasq; unshare and mount
# are util-linux's and mount's).
APT_PKGS="$APT_PKGS dnsmasq-base"
missing=""
for p in $APT_PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "not root; install:$missing"
    say "apt-get install:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    say "apt packages present"
fi

# ---- Go toolchain and FerretDB ---------------------------------------------
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || die "go not found (need Go >= 1.22)"
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
mkdir -p "$TOOLS/bin"
have=$("$TOOLS/bin/ferretdb" --version 2>/dev/null | sed -n 's/^version: //p' || true)
if [ "$have" = "$FERRETDB_VERSION" ]; then
    say "ferretdb $FERRETDB_VERSION present"
else
    # A plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`
    # builds a binary that panics at start: the module lacks the generated
    # build/version/version.txt. So: fetch the module from the Go module
    # proxy, copy it, write version.txt and `go install` from the copy.
    say "building ferretdb $FERRETDB_VERSION (go install; first time takes a few minutes)"
    moddir=$(cd "$TOOLS" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    if [ -z "$moddir" ] || [ ! -d "$moddir" ]; then die "go mod download of FerretDB failed"; fi
    src=$TOOLS/src/ferretdb-$FERRETDB_VERSION
    rm -rf "$src"
    mkdir -p "$TOOLS/src"
    cp -r "$moddir" "$src"
    chmod -R u+w "$src"
    echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
    (cd "$src" && GOFLAGS=-buildvcs=false GOBIN="$TOOLS/bin" go install ./cmd/ferretdb)
    have=$("$TOOLS/bin/ferretdb" --version 2>/dev/null | sed -n 's/^version: //p' || true)
    [ "$have" = "$FERRETDB_VERSION" ] || die "built ferretdb reports version '$have'"
    rm -rf "$src"
    rmdir "$TOOLS/src" 2>/dev/null || true
fi

# ---- toxiproxy (fault injection for tests/integration/test_faults.sh) -------
# Only the server is needed (the test drives its HTTP API). Its command is
# cmd/server, so the binary `go install` writes is named `server`: build it
# in a scratch GOBIN, with the version stamped in, and install it under its
# real name.
toxiproxy_version() {
    "$TOOLS/bin/toxiproxy-server" -version 2>/dev/null | sed -n 's/^toxiproxy-server version //p' || true
}
have=$(toxiproxy_version)
if [ "$have" = "$TOXIPROXY_VERSION" ]; then
    say "toxiproxy $TOXIPROXY_VERSION present"
else
    say "building toxiproxy-server $TOXIPROXY_VERSION (go install)"
    gobin=$(mktemp -d)
    (cd "$TOOLS" && GOFLAGS=-buildvcs=false GOBIN="$gobin" go install \
        -ldflags "-X github.com/Shopify/toxiproxy/v2.Version=$TOXIPROXY_VERSION" \
        "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION") ||
        { rm -rf "$gobin"; die "go install of toxiproxy failed"; }
    mv -f "$gobin/server" "$TOOLS/bin/toxiproxy-server"
    rm -rf "$gobin"
    have=$(toxiproxy_version)
    [ "$have" = "$TOXIPROXY_VERSION" ] || die "built toxiproxy-server reports version '$have'"
fi

# ---- Node.js clients --------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node not found (need Node >= 18)"
NODE_DIR=$TOP/tests/integration/node
stamp=$NODE_DIR/node_modules/.package-lock.json
if [ -f "$stamp" ] && cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.mongocache-lock"; then
    say "node_modules up to date"
else
    say "npm ci in tests/integration/node"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.mongocache-lock"
fi
# BENCH S6 (bench/s6/s6.js): the Redis client of the exec-patch cache.
S6_DIR=$TOP/bench/s6
if [ -f "$S6_DIR/node_modules/.package-lock.json" ] &&
    cmp -s "$S6_DIR/package-lock.json" "$S6_DIR/node_modules/.mongocache-lock"; then
    say "bench/s6 node_modules up to date"
else
    say "npm ci in bench/s6"
    (cd "$S6_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$S6_DIR/package-lock.json" "$S6_DIR/node_modules/.mongocache-lock"
fi

# ---- Python clients ---------------------------------------------------------
REQ=$TOP/tests/integration/python/requirements.txt
VENV=$TOOLS/venv
if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/.mongocache-requirements"; then
    say "python venv up to date"
else
    PY=$(command -v python3) || die "python3 not found"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating venv $VENV"
        "$PY" -m venv "$VENV"
    fi
    say "pip install -r tests/integration/python/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$VENV/.mongocache-requirements"
fi

# ---- Java: mongo-java-server for test_types.sh (Maven Central) -------------
# tests/integration/java -> $TOOLS/java/lib (its jar and runtime dependencies);
# Maven's build output stays in tests/integration/java/target.
command -v java >/dev/null 2>&1 || die "java not found (need Java >= 17)"
command -v mvn >/dev/null 2>&1 || die "mvn not found (need Maven >= 3.6)"
JAVA_SRC=$TOP/tests/integration/java
JAVA_LIB=$TOOLS/java/lib
java_inputs() { cat "$JAVA_SRC/pom.xml" "$JAVA_SRC/src/main/java/mongocache/it/Server.java"; }
if [ -f "$JAVA_LIB/mongocache-it-upstream-1.jar" ] && java_inputs | cmp -s - "$JAVA_LIB/.mongocache-inputs"; then
    say "mongo-java-server classpath up to date"
else
    say "mvn package in tests/integration/java (mongo-java-server)"
    rm -rf "$JAVA_LIB"
    mvn -q -B -Dstyle.color=never -f "$JAVA_SRC/pom.xml" package dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$JAVA_LIB" || die "mvn package failed"
    cp "$JAVA_SRC/target/mongocache-it-upstream-1.jar" "$JAVA_LIB/"
    java_inputs >"$JAVA_LIB/.mongocache-inputs"
fi

say "done"
