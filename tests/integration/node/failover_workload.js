'use strict';
// tests/integration/node/failover_workload.js URI DB SECONDS OUT: the Node driver and
// Mongoose, side by side, insert documents with unique _ids and read each back, through
// mongocache, while test_failover.sh switches the primary behind it. Writes one JSON
// summary per client to OUT: acked _ids (with their v), errors by name/code, wrong replies
// (a document read back whose v differs), duplicate-key errors (a write applied twice).
const fs = require('fs');
const { MongoClient } = require('mongodb');
const mongoose = require('mongoose');

const [uri, dbName, secs, outFile] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function summary(tag) {
  return { tag, acked: {}, attempted: 0, errors: {}, first: {}, wrong: [], dup: 0, absent: 0,
    reads: 0 };
}

function noteError(s, e) {
  const key = `${e.codeName || e.name}${e.code !== undefined ? `(${e.code})` : ''}`;
  s.errors[key] = (s.errors[key] || 0) + 1;
  if (!(key in s.first)) s.first[key] = `${new Date().toISOString()} ${String(e.message).slice(0, 300)}`;
  if (e.code === 11000) s.dup++;
}

async function loop(s, insert, findOne, until) {
  for (let i = 0; Date.now() < until; i++) {
    const id = `${s.tag}-${i}`;
    const v = Math.floor(Math.random() * 1e9);
    s.attempted++;
    try {
      await insert({ _id: id, tag: s.tag, i, v });
      s.acked[id] = v;
    } catch (e) {
      noteError(s, e);
    }
    try {
      const d = await findOne({ _id: id });
      s.reads++;
      if (d === null) s.absent++;
      else if (d.v !== v || d._id !== id) s.wrong.push(`${id}: got ${JSON.stringify(d)}, wrote v=${v}`);
    } catch (e) {
      noteError(s, e);
    }
    await sleep(20);
  }
}

(async () => {
  const opts = { retryWrites: true, serverSelectionTimeoutMS: 15000 };
  const client = new MongoClient(uri, opts);
  await client.connect();
  const conn = mongoose.createConnection(uri, { ...opts, dbName, autoIndex: false });
  await conn.asPromise();
  const Doc = conn.model('FailoverDoc', new mongoose.Schema(
    { _id: String, tag: String, i: Number, v: Number }, { versionKey: false }), 'fo_mongoose');
  const coll = client.db(dbName).collection('fo_driver');
  const until = Date.now() + Number(secs) * 1000;
  const drv = summary('driver');
  const mgs = summary('mongoose');
  await Promise.all([
    loop(drv, (d) => coll.insertOne(d), (f) => coll.findOne(f), until),
    loop(mgs, (d) => Doc.create(d), (f) => Doc.findOne(f).lean(), until),
  ]);
  fs.writeFileSync(outFile, JSON.stringify([drv, mgs]));
  await conn.close();
  await client.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
