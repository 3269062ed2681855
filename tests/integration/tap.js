// tests/integration/tap.js: the TAP lines of the Node test scripts
// (cache_node.js, types_check.js, tls_node.js): unnumbered "ok"/"not ok"
// lines, each problem a "#" line under it, and the plan printed at the end
// from the count (plan()).
'use strict';

const counts = { results: 0, failures: 0 };

function line(ok, name, problems) {
  if (!ok) counts.failures++;
  counts.results++;
  process.stdout.write(`${ok ? 'ok' : 'not ok'} - ${name.replace(/#/g, '')}\n`);
  for (const p of problems || []) {
    for (const l of String(p).split('\n')) process.stdout.write(`# ${l}\n`);
  }
}

function skip(name, reason) {
  counts.results++;
  process.stdout.write(`ok - ${name.replace(/#/g, '')} # SKIP ${reason.replace(/#/g, '')}\n`);
}

// One TAP line; fn(check, problems) records what is wrong, and an exception
// is a failure of that line only.
async function tcase(name, fn) {
  const problems = [];
  const check = (cond, msg) => {
    if (!cond) problems.push(msg);
    return cond;
  };
  try {
    await fn(check, problems);
  } catch (e) {
    problems.push(`exception: ${e && e.stack ? e.stack.split('\n').slice(0, 4).join('\n') : e}`);
  }
  line(problems.length === 0, name, problems);
}

function plan() {
  process.stdout.write(`1..${counts.results}\n`);
}

module.exports = { counts, line, skip, tcase, plan };
