#!/bin/sh
# tests/integration/test_cli.sh: the daemon's command line as a user meets
# it, through $abs_top_builddir/mongocache: --help lists every option of
# conf/options.def, --version, --check-config prints the effective
# configuration, bad values from a flag, the environment or the config file
# exit 2 naming the option, value and source, --check-config refuses exactly
# what start-up refuses (namespace lists, Redis URL, listen address, an
# upstream the proxy cannot serve) with the same messages, every bad line of
# a file is reported, unknown MONGOCACHE_* variables warn, precedence file <
# env < flag, secrets redacted (in output, in errors, in /proc/PID/cmdline),
# and the sample config file loads. Needs no MongoDB. Prints TAP.

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${abs_top_builddir:-$srcdir}
bin=${MONGOCACHE_TEST_BIN:-$builddir/mongocache}
def=$srcdir/conf/options.def

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

n=0
failed=0
ok() {
    # ok STATUS DESCRIPTION: a TAP line; on failure, what the last run printed.
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=1
        echo "#   exit status: $rc"
        sed -n '1,15s/^/#   stdout: /p' "$tmp/out" 2>/dev/null
        sed -n '1,15s/^/#   stderr: /p' "$tmp/err" 2>/dev/null
    fi
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}

# run ARGS...: runs the daemon with stdout/stderr in $tmp/out, $tmp/err and status in $rc.
run() {
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
# port: a random loopback port for a daemon of this script (other tests, run at
# the same time, hold ports of their own: a start that finds it taken tries another).
port() { echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000)); }
taken() { grep -q 'Address already in use' "$tmp/err"; }
# start ARGS...: starts the daemon for real, on a port of its own and without
# the HTTP endpoint, for at most 3 s (status 124: it was still running).
start() {
    tries=0
    while :; do
        timeout 3 "$bin" --listen "127.0.0.1:$(port)" --http-listen "" "$@" \
            >"$tmp/out" 2>"$tmp/err"
        rc=$?
        tries=$((tries + 1))
        taken && [ $tries -lt 5 ] || break
    done
}
# erun 'VAR=VALUE ...' ARGS...: run with these variables set (values without blanks).
erun() {
    vars=$1
    shift
    # shellcheck disable=SC2086
    env $vars "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
out_has() { grep -qF -e "$1" "$tmp/out"; }
err_has() { grep -qF -e "$1" "$tmp/err"; }
out_lacks() { ! grep -qF -e "$1" "$tmp/out"; }
err_lacks() { ! grep -qF -e "$1" "$tmp/err"; }

if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built"
    exit 77
fi

# A clean environment: none of the options' variables, no MONGOCACHE_CONFIG,
# no other MONGOCACHE_* variable (make check's own would draw warnings).
for var in $(sed -n 's/^CONF_OPT([^"]*"[^"]*", *"\(MONGOCACHE_[A-Z0-9_]*\)".*/\1/p' "$def") \
    MONGOCACHE_CONFIG $(env | sed -n 's/^\(MONGOCACHE_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$var"
done
# name<TAB>env per option.
sed -n 's/^CONF_OPT(\([a-z0-9_]*\),[^"]*"[^"]*", *"\(MONGOCACHE_[A-Z0-9_]*\)".*/\1 \2/p' "$def" \
    >"$tmp/opts"

# ---- --help, --version ---------------------------------------------------
run --help
[ "$rc" -eq 0 ] && [ -s "$tmp/out" ]
ok $? "--help exits 0 and prints the usage"
cp "$tmp/out" "$tmp/help"
while read -r name env; do
    flag=--$(echo "$name" | tr '_' '-')
    grep -qF -e "$flag " "$tmp/help" && grep -qF -e "$env" "$tmp/help"
    ok $? "--help lists $flag and $env"
done <"$tmp/opts"
run -h
[ "$rc" -eq 0 ] && cmp -s "$tmp/out" "$tmp/help"
ok $? "-h prints the same help"
run --help --max-clients nope
[ "$rc" -eq 0 ] && cmp -s "$tmp/out" "$tmp/help"
ok $? "--help works whatever else is on the line"

run --version
[ "$rc" -eq 0 ] && grep -qE '^mongocache [0-9]+\.[0-9]+' "$tmp/out"
ok $? "--version prints \"mongocache VERSION\" and exits 0"
run -V
[ "$rc" -eq 0 ] && grep -qE '^mongocache [0-9]' "$tmp/out"
ok $? "-V prints the version"
run --version
[ "$rc" -eq 0 ] && grep -qE '^compressors: noop( (snappy|zlib|zstd))*$' "$tmp/out"
ok $? "--version lists the wire compressors built in (noop always)"

# ---- --check-config ---------------------------------------------------------
run --check-config
[ "$rc" -eq 0 ]
ok $? "--check-config exits 0 with the defaults"
missing=""
while read -r name env; do
    grep -qE "^$name = .*  # default\$" "$tmp/out" || missing="$missing $name"
done <"$tmp/opts"
[ -z "$missing" ]
ok $? "--check-config prints every option as \"name = value  # default\"${missing:+ (not:$missing)}"
out_has "max_clients = 10000  # default" && out_has "buffer_limit = 64MiB  # default"
ok $? "--check-config prints the default values"

run --check-config --http 127.0.0.1:9999
[ "$rc" -eq 0 ] && out_has "http_listen = 127.0.0.1:9999"
ok $? "--http is the short spelling of --http-listen"

# ---- bad values, from each layer ---------------------------------------------
run --max-clients abc
[ "$rc" -eq 2 ] &&
    err_has 'mongocache: invalid value "abc" for max_clients (from flag --max-clients): expected' &&
    err_has 'expected an integer from 1 to 1000000'
ok $? "a bad flag value exits 2 naming option, value and flag"
run --idle-timeout=-5s --check-config
[ "$rc" -eq 2 ] && err_has 'invalid value "-5s" for idle_timeout (from flag --idle-timeout)'
ok $? "a negative duration is refused, also under --check-config"

erun MONGOCACHE_CONNECT_TIMEOUT=soon --check-config
[ "$rc" -eq 2 ] &&
    err_has 'invalid value "soon" for connect_timeout (from env MONGOCACHE_CONNECT_TIMEOUT)'
ok $? "a bad env value exits 2 naming option, value and variable"

printf '# listen on all interfaces\n\nlisten = 0.0.0.0\n' >"$tmp/bad-value.conf"
run --config "$tmp/bad-value.conf"
[ "$rc" -eq 2 ] && err_has "invalid value \"0.0.0.0\" for listen (from $tmp/bad-value.conf:3)"
ok $? "a bad file value exits 2 naming option, value and FILE:LINE"

printf 'max_clients = 5\nmax_clients_total = 6\n' >"$tmp/unknown.conf"
erun "MONGOCACHE_CONFIG=$tmp/unknown.conf" --check-config
[ "$rc" -eq 2 ] && err_has "$tmp/unknown.conf:2: unknown option \"max_clients_total\""
ok $? "an unknown key in the file (from MONGOCACHE_CONFIG) exits 2 naming FILE:LINE"

run --config "$tmp/does-not-exist.conf"
[ "$rc" -eq 2 ] && err_has "$tmp/does-not-exist.conf"
ok $? "a missing config file exits 2 naming it"

run --max-connections 5
[ "$rc" -eq 2 ] && err_has 'unknown flag "--max-connections"'
ok $? "an unknown flag exits 2"

run --listen
[ "$rc" -eq 2 ] && err_has "flag --listen needs a value"
ok $? "a flag without its value exits 2"

run --max-message-size 64MiB
[ "$rc" -eq 2 ] && err_has 'invalid value "64MiB" for max_message_size' && err_has "16 to 48000000"
ok $? "max_message_size above 48000000 is refused"

# ---- --check-config refuses what start-up refuses, in the same words ---------------
# Each case: a flag, its value, and what the error must say. The check and a
# real start must both exit 2 with the same error line.
while IFS='|' read -r flag value want; do
    [ -n "$flag" ] || continue
    run --check-config "$flag" "$value"
    grep '^mongocache: invalid' "$tmp/err" >"$tmp/check-err"
    [ "$rc" -eq 2 ] && err_has "$want"
    ok $? "--check-config refuses $flag $value"
    start "$flag" "$value"
    grep '^mongocache: invalid' "$tmp/err" >"$tmp/start-err"
    [ "$rc" -eq 2 ] && [ -s "$tmp/start-err" ] && cmp -s "$tmp/check-err" "$tmp/start-err"
    ok $? "... and start-up refuses it the same way (exit 2, the same message)"
done <<'CASES'
--cache-ttl-overrides|demo=10s|invalid value "demo=10s" for cache_ttl_overrides (from flag --cache-ttl-overrides): invalid entry "demo=10s"
--cache-ttl-overrides|a.b=1.5s|invalid entry "a.b=1.5s" in cache_ttl_overrides
--cache-include|nodot|invalid value "nodot" for cache_include (from flag --cache-include): invalid entry "nodot"
--cache-exclude|a.b=1|invalid entry "a.b=1" in cache_exclude
--redis|http://x|invalid value for redis (from flag --redis): invalid Redis URL "http://x": the scheme must be redis://
--listen|localhost:27018|invalid value "localhost:27018" for listen (from flag --listen): the listener needs a numeric address
--upstream|mongodb://127.0.0.1:1/?tls=true&tlsDisableOCSPEndpointCheck=true|for upstream (from flag --upstream): tlsDisableOCSPEndpointCheck: the proxy's TLS to the upstream does not support this option
--upstream|mongodb://127.0.0.1:1/?ssl=true&tlsDisableCertificateRevocationCheck=true|tlsDisableCertificateRevocationCheck: the proxy's TLS to the upstream does not support
--upstream|mongodb://127.0.0.1:1/?wtimeoutMS=5|wtimeoutMS: the proxy forwards each client's own write concern
--upstream|mongodb://127.0.0.1:1,127.0.0.1:2/?loadBalanced=true|URI with "loadbalanced" enabled must not contain more than one host
--upstream|mongodb://127.0.0.1:1/?readPreference=secondary|readPreference: the proxy forwards each client's own read preference
--upstream|mongodb://127.0.0.1:1/?w=majority&journal=true|w: the proxy forwards each client's own write concern and adds none; remove it; journal:
--upstream|mongodb://127.0.0.1:1/?readConcernLevel=majority|readConcernLevel: the proxy forwards each client's own read concern
--compressors|zlib,lz4|invalid value "zlib,lz4" for compressors (from flag --compressors): "lz4" is not a compressor (snappy, zstd, zlib or noop)
CASES

run --check-config --upstream 'mongodb://127.0.0.1:1/?directConnection=true&readPreference=primary&tls=false'
[ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]
ok $? "upstream options that say what the proxy does anyway pass without a word"
run --check-config --upstream 'mongodb://127.0.0.1:1/app?appName=x&retryWrites=false'
[ "$rc" -eq 0 ] &&
    err_has 'mongocache: warning: upstream options retryWrites (from flag --upstream) have no effect' &&
    err_has 'mongocache: warning: the database in upstream (from flag --upstream) has no effect'
ok $? "upstream options that only tune a driver pass, with a warning naming them"

# Every bad line of a file, not only the first; the good lines still count.
cat >"$tmp/many.conf" <<'CONF'
# six bad lines, two good ones
max_clients = 7
cache_ttl_overrides = demo=10s
listen = 0.0.0.0
max_client = 3
redis = http://x
pid_file = "/run/unterminated
upstream = mongodb://127.0.0.1:1/?loadBalanced=true&replicaSet=rs0
idle_timeout = 5s
CONF
run --config "$tmp/many.conf" --check-config
cp "$tmp/err" "$tmp/many-check"
f=$tmp/many.conf
[ "$rc" -eq 2 ] &&
    err_has "invalid value \"demo=10s\" for cache_ttl_overrides (from $f:3)" &&
    err_has "invalid value \"0.0.0.0\" for listen (from $f:4)" &&
    err_has "$f:5: unknown option \"max_client\" (did you mean max_clients?)" &&
    err_has "invalid value for redis (from $f:6)" &&
    err_has "$f:7: missing closing quote for pid_file" &&
    err_has "for upstream (from $f:8): " && err_has 'must not contain option "replicaset"' &&
    err_has "mongocache: 6 errors in the configuration"
ok $? "--check-config reports every bad line of a file, each with FILE:LINE"
[ "$(grep -c '^mongocache: ' "$tmp/err")" -eq 7 ] && out_lacks "max_clients"
ok $? "... one line each, then the count, and no configuration printed"
start --config "$tmp/many.conf"
[ "$rc" -eq 2 ] && cmp -s "$tmp/err" "$tmp/many-check"
ok $? "start-up reports the same lines and exits 2"

run --max-clients x --idle-timeout y --cache-include nodot --check-config
[ "$rc" -eq 2 ] && err_has 'for max_clients (from flag --max-clients)' &&
    err_has 'for idle_timeout (from flag --idle-timeout)' &&
    err_has 'for cache_include (from flag --cache-include)'
ok $? "every bad flag value is reported too"
run --max-clents 5 --check-confg
[ "$rc" -eq 2 ] && err_has 'unknown flag "--max-clents" (did you mean --max-clients?)' &&
    err_has 'unknown flag "--check-confg"'
ok $? "every unknown flag is reported, with the flag it may have meant"

# Unknown MONGOCACHE_* variables warn, naming the variable, never its value.
erun "MONGOCACHE_LISTN=127.0.0.1:7 MONGOCACHE_CONFG=/x MONGOCACHE_WHATEVER=s3cret-value" \
    --check-config
[ "$rc" -eq 0 ] &&
    err_has 'mongocache: warning: unknown environment variable MONGOCACHE_LISTN is ignored; did you mean MONGOCACHE_LISTEN?' &&
    err_has 'unknown environment variable MONGOCACHE_CONFG is ignored; did you mean MONGOCACHE_CONFIG?' &&
    err_has 'unknown environment variable MONGOCACHE_WHATEVER is ignored' &&
    err_lacks "s3cret-value" && err_lacks "127.0.0.1:7" && out_has "listen = 127.0.0.1:27018  # default"
ok $? "unknown MONGOCACHE_* variables warn with a did-you-mean, values unshown, and set nothing"
run --check-config
[ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]
ok $? "no warning when every variable is known"
tries=0
while :; do
    MONGOCACHE_LISTN=127.0.0.1:7 "$bin" --listen "127.0.0.1:$(port)" \
        --http-listen "" >"$tmp/out" 2>"$tmp/err" &
    daemon_pid=$!
    i=0
    while [ $i -lt 30 ] && ! grep -q "event=started" "$tmp/err" 2>/dev/null &&
        kill -0 "$daemon_pid" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    tries=$((tries + 1))
    taken && [ $tries -lt 5 ] || break
    wait "$daemon_pid" 2>/dev/null
done
shm=absent
if [ -e "/dev/shm/mongoc-$daemon_pid" ]; then
    shm=present
fi
kill "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
daemon_pid=""
rc=0
grep -q 'level=warn event=config_warning msg="unknown environment variable MONGOCACHE_LISTN is ignored; did you mean MONGOCACHE_LISTEN?"' "$tmp/err"
ok $? "at start-up the warning is a log line"
# libmongoc's shared-memory counters: a file left by a proxy killed with -9
# made a later process with the same PID warn on stderr (--check-config too).
if [ -d /dev/shm ]; then
    [ "$shm" = absent ] && grep -q "event=started" "$tmp/err"
    ok $? "a running daemon keeps no libmongoc counters file in /dev/shm"
else
    skip "a running daemon keeps no libmongoc counters file in /dev/shm" "no /dev/shm"
fi

# ---- precedence: default < file < env < flag ------------------------------------
cat >"$tmp/layers.conf" <<EOF
# layers
max_clients = 100
log_level = debug
idle_timeout = 2s
buffer_limit = 8MiB
EOF
erun "MONGOCACHE_MAX_CLIENTS=200 MONGOCACHE_LOG_LEVEL=warn MONGOCACHE_BUFFER_LIMIT=16MiB" \
    --config "$tmp/layers.conf" --max-clients 300 --buffer-limit=32MiB --check-config
[ "$rc" -eq 0 ]
ok $? "--check-config with file, env and flags exits 0"
out_has "max_clients = 300  # flag --max-clients"
ok $? "flag beats env and file (--name value)"
out_has "buffer_limit = 32MiB  # flag --buffer-limit"
ok $? "flag beats env and file (--name=value)"
out_has "log_level = warn  # env MONGOCACHE_LOG_LEVEL"
ok $? "env beats file"
out_has "idle_timeout = 2s  # $tmp/layers.conf:4"
ok $? "file beats default, source FILE:LINE"
out_has "drain_timeout = 10s  # default"
ok $? "untouched options stay default"
erun "MONGOCACHE_CONFIG=$tmp/layers.conf" --check-config
[ "$rc" -eq 0 ] && out_has "max_clients = 100  # $tmp/layers.conf:2"
ok $? "MONGOCACHE_CONFIG names the config file"

# ---- secrets ----------------------------------------------------------------------
run --check-config --http-token 'flag-S3cret'
[ "$rc" -eq 0 ] && out_has "http_token = <redacted>  # flag --http-token"
ok $? "--check-config redacts the token"
out_lacks "flag-S3cret" && err_lacks "flag-S3cret"
ok $? "... and never shows it"

uri='mongodb://app:uri-S3cret@db.example.com:27017/?authSource=admin'
run --check-config --upstream "$uri"
[ "$rc" -eq 0 ] &&
    out_has 'upstream = mongodb://app:<redacted>@db.example.com:27017/?authSource=admin' &&
    out_lacks "uri-S3cret" && err_lacks "uri-S3cret"
ok $? "credentials in upstream pass (the monitor's own login), the password redacted"

printf 'http_token = "file-S3cret"\n' >"$tmp/secret.conf"
chmod 600 "$tmp/secret.conf"
erun MONGOCACHE_HTTP_TOKEN=env-S3cret --config "$tmp/secret.conf" --check-config
[ "$rc" -eq 0 ] && out_has "http_token = <redacted>  # env MONGOCACHE_HTTP_TOKEN" &&
    out_lacks "env-S3cret" && out_lacks "file-S3cret"
ok $? "a secret from env or file is redacted too"

run --upstream 'mongodb://app:uri-S3cret@db.example.com:0/'
[ "$rc" -eq 2 ] &&
    err_has "invalid value \"mongodb://app:<redacted>@db.example.com:0/\" for upstream (from flag" &&
    err_lacks "uri-S3cret"
ok $? "a refused URI is reported without its password"

run --http-token 'flag-S3cret' --max-clients 0
[ "$rc" -eq 2 ] && err_lacks "flag-S3cret"
ok $? "an error does not show a secret given on the same line"

printf 'tok-from-file\n' >"$tmp/token"
chmod 644 "$tmp/token"
run --http-token "file:$tmp/token" --check-config
[ "$rc" -eq 0 ] && out_has "http_token = <redacted>" && out_lacks "tok-from-file" &&
    err_has "readable by group or others" && err_lacks "tok-from-file"
ok $? "file:/path secret is read; a group/world readable file warns"
chmod 600 "$tmp/token"
run --http-token "file:$tmp/token" --check-config
[ "$rc" -eq 0 ] && err_lacks "readable by group or others"
ok $? "no warning for a 0600 secret file"

run --http-listen 0.0.0.0:9180
[ "$rc" -eq 2 ] && err_has "http_token must be set"
ok $? "a non-loopback http_listen without http_token is refused"

# /proc/PID/cmdline of a running daemon no longer shows the secrets.
if [ -r /proc/self/cmdline ]; then
    "$bin" --listen "127.0.0.1:$(port)" --http-listen "" --http-token cmdline-S3cret \
        --redis "redis://:cmdline-Pw@127.0.0.1:1" --cache-key-secret cmdline-Key \
        >"$tmp/out" 2>"$tmp/err" &
    daemon_pid=$!
    seen=""
    i=0
    while [ $i -lt 30 ]; do
        if [ -r "/proc/$daemon_pid/cmdline" ]; then
            tr '\0' ' ' <"/proc/$daemon_pid/cmdline" >"$tmp/cmdline" 2>/dev/null
            if grep -qF -e "--http-token" "$tmp/cmdline" &&
                ! grep -qF -e "cmdline-S3cret" "$tmp/cmdline" &&
                ! grep -qF -e "cmdline-Pw" "$tmp/cmdline" &&
                ! grep -qF -e "cmdline-Key" "$tmp/cmdline"; then
                seen=scrubbed
                break
            fi
        fi
        if ! kill -0 "$daemon_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    if [ -n "$seen" ]; then
        rc=0
        ok 0 "/proc/PID/cmdline shows neither the token, the Redis password nor the key secret"
    elif kill -0 "$daemon_pid" 2>/dev/null; then
        rc=running
        cp "$tmp/cmdline" "$tmp/out"
        ok 1 "/proc/PID/cmdline shows neither the token, the Redis password nor the key secret"
    else
        # A daemon that exits proves nothing about its cmdline: a failure (ok shows its stderr).
        rc=exited
        ok 1 "/proc/PID/cmdline shows neither the token, the Redis password nor the key secret"
    fi
    kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    daemon_pid=""
else
    skip "/proc/PID/cmdline shows neither the token, the Redis password nor the key secret" "no /proc"
fi

# ---- the sample config file ---------------------------------------------------------
sed 's/^# \([a-z0-9_]* = \)/\1/' "$srcdir/mongocache.conf.sample" >"$tmp/sample.conf"
run --config "$tmp/sample.conf" --check-config
from_sample=$(grep -c "  # $tmp/sample.conf:[0-9]*\$" "$tmp/out")
n_opts=$(wc -l <"$tmp/opts" | tr -d ' ')
[ "$rc" -eq 0 ] && [ "$from_sample" -eq "$n_opts" ]
ok $? "mongocache.conf.sample, uncommented, loads and sets every option ($from_sample of $n_opts)"
sed 's/  # .*//' "$tmp/out" | grep -v '^#' >"$tmp/sample-values"
run --check-config
sed 's/  # .*//' "$tmp/out" | grep -v '^#' >"$tmp/default-values"
cmp -s "$tmp/sample-values" "$tmp/default-values"
ok $? "... with the default values"

echo "1..$n"
exit $failed
