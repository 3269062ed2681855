#!/usr/bin/env bash
# test_compression.sh: wire compression (OP_COMPRESSED) between clients and
# mongocache (proxy/compress.h; source/compression/OP_COMPRESSED.md).
#
# 1. Raw messages (compression_check.py wire): the handshake's intersection
#    in the client's order (OP_MSG and OP_QUERY), a compressed request
#    answered with the same compressor (miss and hit), and the hostile
#    cases, each closing only its own connection.
# 2. Drivers: pymongo and the Node.js driver, each with zlib, zstd and
#    snappy, run the same workload (compression_check.py driver,
#    node/compression_transcript.js) directly against FerretDB, through the
#    proxy without compression, and through the proxy with each compressor.
#    Every transcript (the documents that came back) must be the same, and
#    the proxy's counters must show that the compressed runs really were
#    compressed both ways with that compressor (and no other), with at
#    least one hit served compressed.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

ALGOS="zlib zstd snappy"
CLIENTS="pymongo node"

mc_start_ferretdb
mc_start_proxy
P1_PORT=$PROXY_PORT P1_HTTP=$PROXY_HTTP_PORT P1_LOG=$PROXY_LOG P1_URI=$PROXY_URI
mc_start_proxy --compressors zlib --max-memory 1MiB
P2_PORT=$PROXY_PORT P2_HTTP=$PROXY_HTTP_PORT P2_LOG=$PROXY_LOG

# ---- 1. raw messages -------------------------------------------------------------
mc_run_lines compression wire "$MC_PYTHON" "$MC_TESTDIR/compression_check.py" wire \
    --port "$P1_PORT" --port2 "$P2_PORT" --http "$P1_HTTP" --http2 "$P2_HTTP" \
    --log "$P1_LOG" --log2 "$P2_LOG" --ferret "$FERRET_PORT"

# ---- 2. drivers --------------------------------------------------------------------
run() { # CLIENT URI DB COMPRESSOR OUT
    case $1 in
        pymongo) timeout 60 "$MC_PYTHON" "$MC_TESTDIR/compression_check.py" driver \
            --uri "$2" --db "$3" ${4:+--compressor "$4"} ;;
        node) NODE_PATH=${NODE_PATH:+$NODE_PATH:}$MC_NODE_DIR/node_modules timeout 60 \
            "$MC_NODE" "$MC_NODE_DIR/compression_transcript.js" "$2" "$3" $4 ;;
    esac >"$5" 2>"$5.err"
}

counter() { # NAME [HTTP_PORT]: a proxy's counter (P1's by default)
    "$MC_PYTHON" -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:%s/stats" % sys.argv[1]))["counters"][sys.argv[2]])' \
        "${2:-$P1_HTTP}" "$1"
}

relayed() { # FILE KEY: a relay's count
    "$MC_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

same() { # NAME REFERENCE OUT: the transcripts are equal and complete
    local st=0
    [ "$(grep -c '^step=' "$3")" -eq 14 ] || st=1
    diff "$2" "$3" >"$3.diff" || st=1
    mc_ok "$st" "$1"
    if [ "$st" -ne 0 ]; then
        head -n 10 "$3.diff" | cut -c1-300 | sed 's/^/#   /'
        tail -n 5 "$3.err" | cut -c1-300 | sed 's/^/#   /'
    fi
}

for client in $CLIENTS; do
    ref=$MC_TMP/$client.direct
    st=0
    run "$client" "$FERRET_URI" "cz_${client}_direct" "" "$ref" || st=$?
    [ "$st" -eq 0 ] && [ "$(grep -c '^step=' "$ref")" -eq 14 ] ||
        { mc_diag "$client directly:"; tail -n 5 "$ref.err" | sed 's/^/#   /'; }
    run "$client" "$P1_URI" "cz_${client}_plain" "" "$MC_TMP/$client.plain" 2>/dev/null || true
    same "$client: through the proxy without compression, the same documents as directly" \
        "$ref" "$MC_TMP/$client.plain"
    for algo in $ALGOS; do
        out=$MC_TMP/$client.$algo
        declare -A before=()
        for a in $ALGOS; do
            before[req_$a]=$(counter "compressed_requests_$a")
            before[rep_$a]=$(counter "compressed_replies_$a")
        done
        hits0=$(counter compressed_hits)
        run "$client" "$P1_URI" "cz_${client}_$algo" "$algo" "$out" || true
        same "$client, $algo: through the proxy compressed, the same documents as directly" \
            "$ref" "$out"
        req=$(($(counter "compressed_requests_$algo") - ${before[req_$algo]}))
        rep=$(($(counter "compressed_replies_$algo") - ${before[rep_$algo]}))
        others=0
        for a in $ALGOS; do
            [ "$a" = "$algo" ] && continue
            others=$((others + $(counter "compressed_requests_$a") - ${before[req_$a]}))
            others=$((others + $(counter "compressed_replies_$a") - ${before[rep_$a]}))
        done
        st=0
        [ "$req" -ge 12 ] && [ "$rep" -ge 12 ] && [ "$others" -eq 0 ] || st=1
        mc_ok "$st" "$client, $algo: the proxy decoded $req requests and compressed $rep replies with $algo (other compressors: $others)"
        hits=$(($(counter compressed_hits) - hits0))
        st=0
        [ "$hits" -ge 1 ] || st=1
        mc_ok "$st" "$client, $algo: cache hits served compressed ($hits)"
    done
done

# ---- 3. the upstream link ------------------------------------------------------------
# FerretDB speaks no compression, so a relay of our own stands in front of it
# (compress_relay.py: negotiates like mongod, decompresses requests, compresses
# each reply with its request's compressor, counts both ways).
start_relay() { # OFFER: sets RELAY_PORT RELAY_COUNTS
    RELAY_PORT=$(mc_free_port)
    RELAY_COUNTS=$MC_TMP/relay.$RELAY_PORT.json
    "$MC_PYTHON" "$MC_TESTDIR/compress_relay.py" --listen "$RELAY_PORT" --upstream "$FERRET_PORT" \
        --offer "$1" --counts "$RELAY_COUNTS" 2>"$RELAY_COUNTS.err" &
    mc_track $!
    mc_wait_port "$RELAY_PORT" $! 10 || mc_bail "compress_relay.py did not start"
}

start_relay zstd,zlib,snappy
R1_COUNTS=$RELAY_COUNTS
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$RELAY_PORT/?compressors=snappy,zlib" mc_start_proxy
P3_URI=$PROXY_URI P3_HTTP=$PROXY_HTTP_PORT

# a plain client: the proxy compresses toward the upstream with the first of its own
# list the relay offers (snappy), and decodes the relay's compressed replies
run pymongo "$P3_URI" cz_up_pymongo "" "$MC_TMP/up.pymongo" || true
same "upstream snappy, plain pymongo client: the same documents as directly" \
    "$MC_TMP/pymongo.direct" "$MC_TMP/up.pymongo"
in_s=$(relayed "$R1_COUNTS" in_snappy) out_s=$(relayed "$R1_COUNTS" out_snappy)
other=$(($(relayed "$R1_COUNTS" in_zlib) + $(relayed "$R1_COUNTS" in_zstd)))
bad=$(($(relayed "$R1_COUNTS" violations) + $(relayed "$R1_COUNTS" errors)))
st=0
[ "$in_s" -ge 12 ] && [ "$out_s" -ge 12 ] && [ "$other" -eq 0 ] && [ "$bad" -eq 0 ] || st=1
mc_ok "$st" "the relay got $in_s requests compressed with snappy and sent $out_s back (other compressors $other, handshake or auth compressed or undecodable: $bad)"
up_req=$(counter upstream_compressed_requests_snappy "$P3_HTTP")
up_rep=$(counter upstream_compressed_replies_snappy "$P3_HTTP")
st=0
[ "$up_req" -eq "$in_s" ] && [ "$up_rep" -eq "$out_s" ] || st=1
mc_ok "$st" "the proxy counted the same: upstream_compressed_requests_snappy $up_req, upstream_compressed_replies_snappy $up_rep"

# commands never compressed (OP_COMPRESSED.md) stay plain toward the upstream too
v0=$(relayed "$R1_COUNTS" violations) plain0=$(relayed "$R1_COUNTS" plain)
timeout 30 "$MC_PYTHON" - "$P3_URI" <<'EOF' >"$MC_TMP/never.out" 2>&1 || true
import sys, pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)
for cmd in ({"createUser": "mc_u", "pwd": "x", "roles": []}, {"updateUser": "mc_u", "pwd": "y"},
            {"getnonce": 1}):
    try:
        c.cz_never.command(cmd)
    except pymongo.errors.OperationFailure as e:
        print("%s: %s" % (next(iter(cmd)), e.code))
c.cz_never.command("ping")
print("ping ok")
EOF
st=0
[ "$(relayed "$R1_COUNTS" violations)" -eq "$v0" ] && [ "$(relayed "$R1_COUNTS" plain)" -ge $((plain0 + 3)) ] &&
    grep -q '^ping ok' "$MC_TMP/never.out" || st=1
mc_ok "$st" "createUser, updateUser and getnonce reached the upstream plain ($(($(relayed "$R1_COUNTS" plain) - plain0)) plain, violations $(relayed "$R1_COUNTS" violations))"
[ "$st" -eq 0 ] || sed 's/^/#   /' "$MC_TMP/never.out"

# a client compressing with zstd: each side keeps its own compressor
in0=$in_s
z0=$(counter compressed_requests_zstd "$P3_HTTP")
run node "$P3_URI" cz_up_node zstd "$MC_TMP/up.node" || true
same "upstream snappy, Node client with zstd: the same documents as directly" \
    "$MC_TMP/node.direct" "$MC_TMP/up.node"
in_s=$(relayed "$R1_COUNTS" in_snappy)
z=$(($(counter compressed_requests_zstd "$P3_HTTP") - z0))
st=0
[ "$((in_s - in0))" -ge 12 ] && [ "$z" -ge 12 ] && [ "$(relayed "$R1_COUNTS" in_zstd)" -eq 0 ] || st=1
mc_ok "$st" "client zstd ($z requests) and upstream snappy ($((in_s - in0)) requests) negotiated independently"

# a client compressing with snappy, as the upstream does: the server's compressed replies
# go to it as they came (counted as compressed replies; nothing decoded and re-encoded
# wrongly shows as a transcript that differs)
s0=$(counter compressed_replies_snappy "$P3_HTTP") o0=$(relayed "$R1_COUNTS" out_snappy)
run pymongo "$P3_URI" cz_up_same snappy "$MC_TMP/up.same" || true
same "upstream snappy, pymongo with snappy: the same documents as directly" \
    "$MC_TMP/pymongo.direct" "$MC_TMP/up.same"
s1=$(($(counter compressed_replies_snappy "$P3_HTTP") - s0)) o1=$(($(relayed "$R1_COUNTS" out_snappy) - o0))
st=0
[ "$o1" -ge 12 ] && [ "$s1" -ge 12 ] || st=1
mc_ok "$st" "snappy both ways: the relay sent $o1 replies compressed, the client got $s1 compressed"

# nothing in common with the upstream: the link stays plain
start_relay zstd
R2_COUNTS=$RELAY_COUNTS
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$RELAY_PORT/?compressors=snappy,zlib" mc_start_proxy
run pymongo "$PROXY_URI" cz_up_plain "" "$MC_TMP/up.plain" || true
same "upstream offering only zstd to a proxy asking snappy,zlib: the same documents" \
    "$MC_TMP/pymongo.direct" "$MC_TMP/up.plain"
n=0
for a in noop snappy zlib zstd; do n=$((n + $(relayed "$R2_COUNTS" "in_$a"))); done
st=0
[ "$n" -eq 0 ] && [ "$(relayed "$R2_COUNTS" plain)" -ge 12 ] || st=1
mc_ok "$st" "... and nothing was compressed toward it ($n compressed, $(relayed "$R2_COUNTS" plain) plain)"

mc_done
