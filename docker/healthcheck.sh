#!/bin/bash
# docker/healthcheck.sh: the image's healthcheck (installed as
# /usr/local/bin/mongocache-healthcheck). One HTTP GET to the proxy's own
# HTTP endpoint; exit 0 when it answers 200, 1 otherwise.
#
#   mongocache-healthcheck [PATH]      PATH: /readyz (default) or /healthz
#
# The address comes from MONGOCACHE_HTTP_LISTEN (default 127.0.0.1:9180), a
# wildcard host (0.0.0.0, ::) meaning this host's loopback; the bearer token
# from MONGOCACHE_HTTP_TOKEN when set (a file:/path value: the file's content). Written in bash (its /dev/tcp) so the
# runtime image needs no curl. The answer's first line must come within
# 2 s (Docker's healthcheck timeout bounds the whole check too).
set -u

path=${1:-/readyz}
case $path in
/*) ;;
*) echo "mongocache-healthcheck: PATH must start with /" >&2; exit 2 ;;
esac
listen=${MONGOCACHE_HTTP_LISTEN:-127.0.0.1:9180}
port=${listen##*:}
host=${listen%:*}
host=${host#[}
host=${host%]}
case $host in
"" | 0.0.0.0 | "*") host=127.0.0.1 ;;
:: ) host=::1 ;;
esac
case $port in
'' | *[!0-9]*) echo "mongocache-healthcheck: no port in MONGOCACHE_HTTP_LISTEN=$listen" >&2; exit 2 ;;
esac

token=${MONGOCACHE_HTTP_TOKEN:-}
case $token in
file:*) token=$(cat -- "${token#file:}" 2>/dev/null) || token="" ;;
esac

probe() {
    # probe PATH: prints the status line's code (empty when nothing came back)
    local status
    exec 3<>"/dev/tcp/$host/$port" || return 1
    {
        printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n' "$1"
        if [ -n "$token" ]; then
            printf 'Authorization: Bearer %s\r\n' "$token"
        fi
        printf '\r\n'
    } >&3
    IFS=' ' read -r -t 2 _ status _ <&3 || status=""
    exec 3<&-
    printf '%s' "${status%$'\r'}"
}

code=$(probe "$path") || code=""
# A mongocache from before /readyz answers 404 there: its /healthz decides.
if [ "$code" = 404 ] && [ "$path" = /readyz ]; then
    code=$(probe /healthz) || code=""
fi
if [ "$code" = 200 ]; then
    exit 0
fi
echo "mongocache-healthcheck: GET $path on $host:$port: ${code:-no answer}" >&2
exit 1
