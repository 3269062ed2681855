// tests/integration/admin_mongosh.js: run by mongosh for test_admin.sh.
// Sends each command of MC_ADMIN_CMDS (a JSON array) with db.adminCommand
// and prints one line: the replies as relaxed extended JSON (a failed
// command as {ok: 0, code, errmsg}, whether mongosh returns or throws it).
const cmds = JSON.parse(process.env.MC_ADMIN_CMDS);
const out = [];
for (const c of cmds) {
  try {
    out.push(db.adminCommand(c));
  } catch (e) {
    out.push({ ok: 0, code: e.code, errmsg: e.message });
  }
}
print('RESULT ' + EJSON.stringify(out, { relaxed: true }));
