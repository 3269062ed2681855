#!/usr/bin/env bash
# tests/integration/test_log.sh: log injection (issue 6 item 14). A client
# that has not logged in controls its hello's appName and driver name, and
# the names in its commands; none of them may forge a log line or a
# key=value pair. pymongo connects with an appName holding a newline and a
# whole fake log line, and a driver name with quotes and a backslash; a raw
# OP_MSG names a database holding a newline and another fake line (logged
# at debug level). Then every line of the proxy log must be a well-formed
# line of the proxy's own, no line may start with the forged timestamp, and
# the values must appear escaped where they belong.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_plan 7
mc_start_ferretdb
mc_start_proxy --log-level debug

timeout 60 "$MC_PYTHON" - "$PROXY_URI" "$PROXY_PORT" >"$MC_TMP/client.out" 2>&1 <<'EOF'
import socket, struct, sys
import bson, pymongo
from pymongo.driver_info import DriverInfo

uri, port = sys.argv[1], int(sys.argv[2])
forged = "x\n2026-01-01T00:00:00.000Z level=error event=forged"
client = pymongo.MongoClient(uri, appname=forged, directConnection=True,
                             serverSelectionTimeoutMS=10000,
                             driver=DriverInfo(name='drv "quoted" back\\slash'))
client.admin.command("ping")
client.close()

# A raw OP_MSG whose $db holds a newline and a fake line.
doc = bson.encode({"find": "c", "$db": "d\n2026-01-01T00:00:00.000Z level=error event=forged_db"})
body = struct.pack("<I", 0) + b"\x00" + doc
msg = struct.pack("<iiii", 16 + len(body), 7, 0, 2013) + body
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(msg)
head = s.recv(16)
print("raw reply header bytes:", len(head))
s.close()
print("done")
EOF
st=$?
mc_ok "$st" "pymongo with a forged appName and a raw OP_MSG with a forged \$db are answered"
[ "$st" -eq 0 ] || sed 's/^/#   /' "$MC_TMP/client.out"
sleep 0.3
mc_stop_proxy
log=$PROXY_LOG

# Every line is the proxy's own: timestamp, level, optional conn, event.
bad=$(grep -cvE '^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z level=(error|warn|info|debug) (conn=[0-9]+ )?event=[a-z_]+( |$)' "$log")
mc_is "$bad" 0 "every line of the proxy log is a well-formed line ($(wc -l <"$log") lines)"
[ "$bad" -eq 0 ] || grep -nvE '^ts=[0-9]{4}-.*Z level=[a-z]+ (conn=[0-9]+ )?event=' "$log" | head -5 |
    cut -c1-200 | sed 's/^/#   /'

! grep -qE '^(ts=)?2026-01-01T00:00:00.000Z' "$log"
mc_ok $? "no line starts with the forged timestamp"

# Parsed as key=value pairs (bare, or quoted with backslash escapes), every
# line has one level and one event, and none is a forged one.
"$MC_PYTHON" - "$log" >"$MC_TMP/pairs.out" 2>&1 <<'PY'
import re, sys
pair = re.compile(r' ([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "=]+)')
bad = 0
for n, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="replace"), 1):
    line = line.rstrip("\n")
    rest = " " + line
    keys, pos = [], 0
    for m in pair.finditer(rest):
        if m.start() != pos:
            break
        keys.append((m.group(1), m.group(2)))
        pos = m.end()
    names = [k for k, _ in keys]
    events = [v for k, v in keys if k == "event"]
    if pos != len(rest) or names.count("level") != 1 or len(events) != 1 or "forged" in events[0]:
        bad += 1
        print("line %d: %s" % (n, line[:200]))
print("bad lines:", bad)
sys.exit(1 if bad else 0)
PY
st=$?
mc_ok "$st" "every line parses as key=value pairs with one level and one event, none forged"
[ "$st" -eq 0 ] || head -n 5 "$MC_TMP/pairs.out" | sed 's/^/#   /'

grep -F 'event=client_hello' "$log" |
    grep -qF 'app="x\n2026-01-01T00:00:00.000Z level=error event=forged"'
mc_ok $? "the appName is logged as one escaped value"
grep -F 'event=client_hello' "$log" | grep -qF 'drv \"quoted\" back\\slash'
mc_ok $? "quotes and backslashes in the driver name are escaped"
grep -F 'event=request' "$log" |
    grep -qF 'db="d\n2026-01-01T00:00:00.000Z level=error event=forged_db"'
mc_ok $? "a database name with a newline is one escaped value in the debug line"
if [ "$MC_FAILED" -ne 0 ]; then
    grep -E 'client_hello|event=request' "$log" | head -n 6 | cut -c1-300 | sed 's/^/#   /'
fi
mc_done
