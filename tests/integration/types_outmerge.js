'use strict';
/*
 * tests/integration/types_outmerge.js: aggregate $out and $merge invalidate
 * the cached reads of their target collection (RELIABILITY E7), against
 * mongo-java-server, since FerretDB v1.24.2 answers $out with NotImplemented.
 *
 * usage: node types_outmerge.js PROXY_PORT DIRECT_PORT HTTP_PORT
 * Prints unnumbered TAP lines ("ok - ...", "not ok - ...", "# ..."), then its plan
 * ("1..N") once it ran to its end.
 */
const { MongoClient } = require('mongodb');
const http = require('http');

const [proxyPort, directPort, httpPort] = process.argv.slice(2).map(Number);

function hits() {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${httpPort}/stats`, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(JSON.parse(body).cache.hits));
    }).on('error', reject);
  });
}

let results = 0; // printed so far: the plan printed at the end
function line(cond, name, why) {
  results++;
  console.log(`${cond ? 'ok' : 'not ok'} - ${name}`);
  if (!cond && why) console.log(`# ${why}`);
}

async function main() {
  const proxy = new MongoClient(`mongodb://127.0.0.1:${proxyPort}`, { serverSelectionTimeoutMS: 5000 });
  const direct = new MongoClient(`mongodb://127.0.0.1:${directPort}`, { serverSelectionTimeoutMS: 5000 });
  await proxy.connect();
  await direct.connect();
  const pdb = proxy.db('outmerge');
  const ddb = direct.db('outmerge');
  const rows = (db, coll) => db.collection(coll).find({}).sort({ _id: 1 }).toArray();
  await ddb.collection('src').deleteMany({});
  await ddb.collection('src').insertMany([...Array(12).keys()].map((i) => ({ _id: i, k: i % 3 })));
  for (const [name, stage, target] of [['$out', { $out: 'target_out' }, 'target_out'],
    ['$merge', { $merge: { into: 'target_merge' } }, 'target_merge']]) {
    await ddb.collection(target).deleteMany({});
    await ddb.collection(target).insertOne({ _id: 'old' });
    await rows(pdb, target);
    const before = await hits();
    const warm = await rows(pdb, target);
    line((await hits()) === before + 1 && JSON.stringify(warm) === '[{"_id":"old"}]',
      `${name}: the target's read is cached before the aggregate`);
    try {
      await pdb.collection('src').aggregate([{ $match: { k: 1 } }, stage]).toArray();
    } catch (e) {
      line(false, `${name}: the aggregate runs through the proxy`, String(e.message).slice(0, 200));
      continue;
    }
    const got = JSON.stringify(await rows(pdb, target));
    const want = JSON.stringify(await rows(ddb, target));
    line(got === want && got !== JSON.stringify(warm),
      `${name}: the next read of the target shows the aggregate's output`,
      `got ${got.slice(0, 120)}, want ${want.slice(0, 120)}`);
  }
  await proxy.close();
  await direct.close();
}

main().then(() => console.log(`1..${results}`), (e) => { console.log(`# ${e.stack}`); process.exit(1); });
