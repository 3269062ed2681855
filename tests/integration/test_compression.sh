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

counter() { # NAME: the proxy P1's counter
    "$MC_PYTHON" -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:%s/stats" % sys.argv[1]))["counters"][sys.argv[2]])' \
        "$P1_HTTP" "$1"
}

same() { # NAME REFERENCE OUT: the transcripts are equal and complete
    local st=0
    [ "$(grep -c '^step=' "$3")" -eq 12 ] || st=1
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
    [ "$st" -eq 0 ] && [ "$(grep -c '^step=' "$ref")" -eq 12 ] ||
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

mc_done
