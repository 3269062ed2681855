#!/usr/bin/env bash
# test_workload.sh: the scripted workload of each client (official Node.js
# driver, Mongoose, pymongo, libmongoc) runs once straight against FerretDB
# and once through mongocache; the normalized transcripts must be identical. Then once
# more through a second mongocache whose upstream is a load balancer (loadBalanced=true:
# rs_relay.py --lb in front of the same FerretDB, as test_load_balanced.sh describes).
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

CLIENTS="node-driver mongoose pymongo libmongoc"
mc_plan 24

mc_start_ferretdb
mc_start_rs_relay lb "$FERRET_PORT,$FERRET_PORT" --lb
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$RELAY_A/?loadBalanced=true" mc_start_proxy
LB_PROXY_URI=$PROXY_URI
mc_start_proxy

# The C client is built here, into $MC_TMP (not part of the autotools build).
C_BIN=$MC_TMP/workload_c
C_BUILD_LOG=$MC_TMP/workload_c.build.log
# shellcheck disable=SC2046
if ! cc -O1 -o "$C_BIN" "$MC_TESTDIR/c/workload.c" $(pkg-config --cflags --libs libmongoc-1.0) \
    >"$C_BUILD_LOG" 2>&1; then
    mc_diag "building tests/integration/c/workload.c failed:"
    sed 's/^/#   /' "$C_BUILD_LOG" | head -n 30
    C_BIN=""
fi

client_cmd() { # NAME -> command prefix (URI and db name follow)
    case $1 in
        node-driver) echo "$MC_NODE $MC_NODE_DIR/workload_driver.js" ;;
        mongoose) echo "$MC_NODE $MC_NODE_DIR/workload_mongoose.js" ;;
        pymongo) echo "$MC_PYTHON $MC_TESTDIR/python/workload.py" ;;
        libmongoc) echo "${C_BIN:-false}" ;;
    esac
}
min_ops() {
    case $1 in
        node-driver) echo 60 ;; mongoose) echo 40 ;; pymongo) echo 70 ;; libmongoc) echo 45 ;;
    esac
}

# run NAME MODE URI -> $MC_TMP/NAME.MODE.out, .err; returns the exit status
run() {
    local name=$1 mode=$2 uri=$3 st=0
    # shellcheck disable=SC2046
    timeout 120 $(client_cmd "$name") "$uri" "mcw_${name//-/_}_${mode}_$$" \
        >"$MC_TMP/$name.$mode.out" 2>"$MC_TMP/$name.$mode.err" || st=$?
    if [ "$st" -ne 0 ]; then
        mc_diag "$name ($mode) exited with status $st; stderr:"
        tail -n 20 "$MC_TMP/$name.$mode.err" | cut -c1-300 | sed 's/^/#   /'
    fi
    return "$st"
}

for name in $CLIENTS; do
    st=0; run "$name" direct "$FERRET_URI" || st=$?
    mc_ok "$st" "$name: workload runs against FerretDB directly"
    st=0; run "$name" proxy "$PROXY_URI" || st=$?
    mc_ok "$st" "$name: workload runs through mongocache"

    st=0; run "$name" lb "$LB_PROXY_URI" || st=$?
    mc_ok "$st" "$name: workload runs through mongocache in front of a load balancer"

    for mode in proxy lb; do
        d=$MC_TMP/$name.$mode.diff
        st=0; diff "$MC_TMP/$name.direct.out" "$MC_TMP/$name.$mode.out" >"$d" 2>&1 || st=$?
        if [ "$mode" = proxy ]; then
            mc_ok "$st" "$name: transcript through mongocache identical to direct"
        else
            mc_ok "$st" "$name: transcript through mongocache and a load balancer identical to direct"
        fi
        if [ "$st" -ne 0 ]; then
            mc_diag "$(grep -c '^<' "$d" || true) line(s) differ (< direct, > through mongocache; cut to 300 chars):"
            head -n 40 "$d" | cut -c1-300 | sed 's/^/#   /'
            [ "${MC_KEEP_TMP:-0}" = 1 ] || mc_diag "(MC_KEEP_TMP=1 keeps the full transcripts)"
        fi
    done

    # The transcript is worth comparing: enough operations, results and
    # errors both, and cursors read through getMore.
    f=$MC_TMP/$name.direct.out
    n=$(grep -c '^{"n":' "$f" || true)
    st=0
    [ "$n" -ge "$(min_ops "$name")" ] || st=1
    grep -q '"result":' "$f" || st=1
    grep -q '"error":' "$f" || st=1
    grep -q '"getMore"' "$f" || st=1
    if [ "$name" = mongoose ]; then
        # the type checks ran and held (ObjectId refs, Dates, Buffers)
        [ "$(grep -c '"op":"check .*"ok":true' "$f" || true)" -ge 13 ] || st=1
        ! grep -q '"op":"check .*"ok":false' "$f" || st=1
    fi
    mc_ok "$st" "$name: transcript non-trivial ($n operations, at least $(min_ops "$name"))"
done

mc_stop_proxy
mc_done
