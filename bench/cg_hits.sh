#!/usr/bin/env bash
# bench/cg_hits.sh BUILD_DIR [SIZE] [NAME]: callgrind instructions per
# in-process hit at one client, as bench/run.sh's cg_cache_work counts them
# (mongocache under valgrind --tool=callgrind --instr-atstart=no, against
# BUILD_DIR/bench/mcload's canned upstream; instrumentation on for 2000 hits
# only). The cache is filled first with 5 passes over the 1000 keys. Prints
# the instructions per request and the callgrind_annotate listing's path.
#
# One thing moves the count between runs: mcload gives each connection a
# random lsid, and when its 16 bytes hold a '$' (about 6 % of runs) the
# cache policy reads that lsid element by element on every request (about
# +300 instructions per hit). The line after the count says so; run again.
#
# CG_CONNS (default 1) sets the clients of the counted run (50: the write
# batch at work); CG_ARGS adds mongocache flags (a Redis tier: "--redis
# redis://127.0.0.1:PORT --cache-memory 0 --cache-key-secret K"); CG_OUT
# is where the results go.
#
#   bench/cg_hits.sh _build-bench 256
#   bench/cg_hits.sh _build-bench 4096
#   CG_CONNS=50 bench/cg_hits.sh _build-bench 256
set -u
B=${1:?build dir}
SIZE=${2:-256}
NAME=${3:-hits-$SIZE}
OUT=${CG_OUT:-${TMPDIR:-/tmp}/mongocache-cg}
KEYS=1000
N=2000
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP=$(free_port)
P=$(free_port)
H=$(free_port)
timeout 600 "$B/bench/mcload" --server --port "$UP" --size "$SIZE" >/dev/null 2>&1 &
up=$!
sleep 0.3
rm -f "$OUT/$NAME.out"*
timeout 600 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$NAME.out" \
    "$B/mongocache" --listen "127.0.0.1:$P" --upstream "mongodb://127.0.0.1:$UP" \
    --http-listen "127.0.0.1:$H" --log-level warn --cache-ttl 1h ${CG_ARGS:-} >"$OUT/$NAME.log" 2>&1 &
cg=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break; sleep 0.2; done
child=$(pgrep -P "$cg" | head -n 1 || true)
[ -n "$child" ] && cg=$child # valgrind itself (timeout's child)
sleep 0.5
"$B/bench/mcload" --port "$P" -c 1 -n $((KEYS * 5)) --warmup "$KEYS" --keys "$KEYS" --size "$SIZE" \
    --seconds 120 --warmup-seconds 120 >/dev/null 2>>"$OUT/$NAME.err"
callgrind_control -i on "$cg" >/dev/null 2>&1
"$B/bench/mcload" --port "$P" -c ${CG_CONNS:-1} -n "$N" --warmup 0 --keys "$KEYS" --size "$SIZE" \
    --seconds 120 >"$OUT/$NAME.mcload" 2>>"$OUT/$NAME.err"
callgrind_control -i off "$cg" >/dev/null 2>&1
callgrind_control -d "$cg" >/dev/null 2>&1
sleep 1
kill -TERM "$cg" 2>/dev/null
sleep 1
kill -TERM "$up" 2>/dev/null
dump=$(ls "$OUT/$NAME.out".* 2>/dev/null | head -n 1)
[ -n "$dump" ] || { echo "cg_hits.sh: no callgrind dump ($OUT/$NAME.log)" >&2; exit 1; }
callgrind_annotate --inclusive=no --threshold=100 "$dump" >"$OUT/$NAME.txt" 2>/dev/null
total=$(grep "PROGRAM TOTALS" "$OUT/$NAME.txt" | awk '{gsub(",", "", $1); print $1}')
echo "$NAME: $total instructions, $(python3 -c "print(round($total / $N, 1))") per hit ($OUT/$NAME.txt)"
slow=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$dump" 2>/dev/null |
    grep "policy.c:scan_doc" | awk '{gsub(",", "", $1); print $1}')
if [ "${slow:-0}" -gt 100000 ]; then
    echo "  this run's lsid holds a '\$' byte: the policy read it on every hit (+$((slow / N)) per hit); run again"
fi
