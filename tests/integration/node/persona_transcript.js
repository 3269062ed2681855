#!/usr/bin/env node
// tests/integration/node/persona_transcript.js MODE URI DBNAME
//
// MODE is "driver" (the official Node.js driver) or "mongoose". Runs one
// fixed workload with the client's defaults (retryWrites on, no
// directConnection) and prints, for every command the client sends
// (command monitoring, commandStarted), one line:
//
//   <step> <command> fields=<sorted top-level field names> rp=<$readPreference mode or ->
//
// then one "outcome" line per step (ok, or the error code). test_persona.sh
// runs it straight against FerretDB and through mongocache and compares the
// two transcripts: what the proxy's hello persona tells the driver decides
// which fields the driver adds (txnNumber, lsid, $clusterTime,
// $readPreference, readConcern, writeConcern all show in `fields`).
// Values (lsid ids, txnNumbers, times) are not printed, so nothing needs to
// be normalized. Exit status: 0 when the transcript was written.
'use strict';

const { MongoClient } = require('mongodb');
const mongoose = require('mongoose');

const [mode, uri, dbName] = process.argv.slice(2);
if (!['driver', 'mongoose'].includes(mode) || !uri || !dbName) {
  process.stderr.write('usage: persona_transcript.js driver|mongoose URI DBNAME\n');
  process.exit(2);
}

const lines = [];
let current = 'connect';

function record(ev) {
  const c = ev.command || {};
  const fields = Object.keys(c).sort().join(',');
  const rp = c.$readPreference && c.$readPreference.mode ? c.$readPreference.mode : '-';
  lines.push(`${current} ${ev.commandName} fields=${fields} rp=${rp}`);
}

async function step(name, fn) {
  current = name;
  try {
    await fn();
    lines.push(`${name} outcome=ok`);
  } catch (e) {
    lines.push(`${name} outcome=error code=${e.code === undefined ? '-' : e.code} ${e.name}`);
  }
}

async function driverWorkload(client) {
  const coll = client.db(dbName).collection('things');
  await step('insertOne', () => coll.insertOne({ _id: 1, n: 1 }));
  await step('insertMany', () => coll.insertMany([{ _id: 2, n: 2 }, { _id: 3, n: 3 }, { _id: 4, n: 4 }]));
  await step('updateOne', () => coll.updateOne({ _id: 1 }, { $set: { n: 10 } }));
  await step('updateMany', () => coll.updateMany({ n: { $gte: 2 } }, { $inc: { n: 1 } }));
  await step('replaceOne', () => coll.replaceOne({ _id: 4 }, { n: 40 }));
  await step('find', () => coll.find({ n: { $gt: 0 } }).sort({ _id: 1 }).toArray());
  await step('findOne', () => coll.findOne({ _id: 2 }));
  await step('aggregate', () => coll.aggregate([{ $match: { n: { $gt: 0 } } }, { $sort: { _id: 1 } }]).toArray());
  await step('countDocuments', () => coll.countDocuments({}));
  await step('findSecondaryPreferred', () => coll.find({ _id: 2 }, { readPreference: 'secondaryPreferred' }).toArray());
  await step('findReadConcern', () => coll.find({ _id: 2 }, { readConcern: { level: 'local' } }).toArray());
  await step('insertMajority', () => coll.insertOne({ _id: 7, n: 7 }, { writeConcern: { w: 'majority' } }));
  await step('findOneAndUpdate', () => coll.findOneAndUpdate({ _id: 3 }, { $set: { n: 30 } }, { returnDocument: 'after' }));
  await step('bulkWrite', () => coll.bulkWrite([
    { insertOne: { document: { _id: 5, n: 5 } } },
    { updateOne: { filter: { _id: 5 }, update: { $set: { n: 50 } } } },
    { deleteOne: { filter: { _id: 2 } } },
  ]));
  await step('session', async () => {
    const s = client.startSession();
    try {
      await coll.insertOne({ _id: 6, n: 6 }, { session: s });
      await coll.findOneAndUpdate({ _id: 6 }, { $set: { n: 60 } }, { session: s });
      await coll.find({ _id: 6 }, { session: s }).toArray();
    } finally {
      await s.endSession();
    }
  });
  await step('deleteOne', () => coll.deleteOne({ _id: 1 }));
  await step('deleteMany', () => coll.deleteMany({}));
  await step('drop', () => coll.drop());
}

async function mongooseWorkload(conn) {
  const Thing = conn.model('Thing', new mongoose.Schema({ _id: Number, n: Number }), 'things');
  await step('create', () => Thing.create({ _id: 1, n: 1 }));
  await step('insertMany', () => Thing.insertMany([{ _id: 2, n: 2 }, { _id: 3, n: 3 }]));
  await step('updateOne', () => Thing.updateOne({ _id: 1 }, { $set: { n: 10 } }));
  await step('find', () => Thing.find({ n: { $gt: 0 } }).sort({ _id: 1 }).lean());
  await step('findById', () => Thing.findById(2));
  await step('findSecondaryPreferred', () => Thing.find({ _id: 2 }).read('secondaryPreferred').lean());
  await step('aggregate', () => Thing.aggregate([{ $match: { n: { $gt: 0 } } }]));
  await step('findOneAndUpdate', () => Thing.findOneAndUpdate({ _id: 3 }, { $set: { n: 30 } }, { new: true }));
  await step('bulkWrite', () => Thing.bulkWrite([
    { insertOne: { document: { _id: 4, n: 4 } } },
    { deleteOne: { filter: { _id: 2 } } },
  ]));
  await step('session', async () => {
    const s = await conn.startSession();
    try {
      await Thing.create([{ _id: 5, n: 5 }], { session: s });
      await Thing.find({ _id: 5 }).session(s).lean();
    } finally {
      await s.endSession();
    }
  });
  await step('deleteOne', () => Thing.deleteOne({ _id: 1 }));
  await step('deleteMany', () => Thing.deleteMany({}));
}

(async () => {
  const opts = { monitorCommands: true, serverSelectionTimeoutMS: 10000, appName: `transcript-${mode}` };
  let client;
  let conn;
  if (mode === 'mongoose') {
    conn = mongoose.createConnection(uri, { ...opts, dbName, autoIndex: false, autoCreate: false });
    client = conn.getClient();
  } else {
    client = new MongoClient(uri, opts);
  }
  client.on('commandStarted', record);
  if (mode === 'mongoose') await conn.asPromise(); else await client.connect();
  const topology = client.topology.description.type;
  if (mode === 'mongoose') await mongooseWorkload(conn); else await driverWorkload(client);
  current = 'close';
  if (mode === 'mongoose') await conn.close(); else await client.close();
  process.stdout.write(`topology=${topology}\n`);
  process.stdout.write(lines.map((l) => `${l}\n`).join(''));
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
