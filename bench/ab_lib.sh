# bench/ab_lib.sh: the processes of an A/B benchmark (advice_ab.sh,
# redis_mac_ab.sh), sourced by them: started on SUT_CPU with their output in
# $OUT/logs/NAME.log, waited for on their port, and stopped at exit (TERM,
# then KILL). The caller sets SUT_CPU and OUT.

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    local i
    for i in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "${0##*/}: nothing listens on $1" >&2
    return 1
}
start() { # NAME PORT CMD...
    local name=$1 port=$2
    shift 2
    taskset -c "$SUT_CPU" "$@" >"$OUT/logs/$name.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$port"
}
