#!/usr/bin/env node
// tests/integration/node/workload_driver.js URI DBNAME
//
// Scripted workload with the official MongoDB Node.js driver. Prints one
// canonical Extended JSON line per operation: the result or the error, and
// the commands the driver sent for it (command monitoring), so that a run
// straight against FerretDB and a run through mongocache can be diffed.
// Values that legitimately differ between runs are normalized: cluster and
// operation times, connection ids, cursor ids (nonzero -> "<cursorId>") and
// the database name ("<db>"). Every _id is fixed.
// Exit status: 0 when the transcript was written, 1 on a harness failure.
'use strict';

const { MongoClient, BSON } = require('mongodb');
const { EJSON, ObjectId, Long, Binary, Double } = BSON;

const [uri, dbName] = process.argv.slice(2);
if (!uri || !dbName) {
  process.stderr.write('usage: workload_driver.js URI DBNAME\n');
  process.exit(2);
}

const DROP_KEYS = new Set(['$clusterTime', 'operationTime', 'connectionId', 'localTime',
  'electionId', 'lastWrite', 'opTime']);
const CURSOR_ID_LISTS = new Set(['cursorsKilled', 'cursorsNotFound', 'cursorsAlive', 'cursorsUnknown']);
const seenCursorIds = new Set();

// EJSON (canonical) tree -> normalized tree.
function norm(v, key, parentKey) {
  if (Array.isArray(v)) {
    if (CURSOR_ID_LISTS.has(key)) return v.map((x) => cursorId(x));
    return v.map((x) => norm(x, undefined, key));
  }
  if (v && typeof v === 'object') {
    if (key === 'id' && parentKey === 'cursor') return cursorId(v);
    const o = {};
    for (const k of Object.keys(v)) {
      if (DROP_KEYS.has(k)) continue;
      o[k] = norm(v[k], k, key);
    }
    return o;
  }
  return v;
}
function cursorId(x) {
  const s = x && typeof x === 'object' ? (x.$numberLong || x.$numberInt) : String(x);
  if (s === undefined || s === '0') return 0;
  seenCursorIds.add(String(s));
  return '<cursorId>';
}
function ejson(v) {
  return norm(EJSON.serialize(v, { relaxed: false }));
}
function errInfo(e) {
  const o = { name: e.name };
  if (e.code !== undefined) o.code = e.code;
  if (e.codeName !== undefined) o.codeName = e.codeName;
  o.message = e.message;
  if (e.errorLabelSet && e.errorLabelSet.size) o.labels = [...e.errorLabelSet].sort();
  if (e.writeErrors) {
    const we = Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors];
    o.writeErrors = we.map((w) => ({ index: w.index, code: w.code, errmsg: w.errmsg }));
  }
  if (e.result && typeof e.result === 'object' && 'insertedCount' in e.result) {
    const r = e.result;
    o.result = {
      insertedCount: r.insertedCount, matchedCount: r.matchedCount,
      modifiedCount: r.modifiedCount, deletedCount: r.deletedCount,
      upsertedCount: r.upsertedCount, upsertedIds: r.upsertedIds,
    };
  }
  if (e.errorResponse && e.name !== 'MongoBulkWriteError') o.reply = e.errorResponse;
  return ejson(o);
}

const lines = [];
let cmds = null; // commands sent during the current step
let n = 0;

async function step(op, fn) {
  cmds = [];
  const rec = { n: ++n, op };
  try {
    const r = await fn();
    rec.result = r === undefined ? null : ejson(r);
  } catch (e) {
    if (!e || !e.name || !/^Mongo/.test(e.name)) throw e; // a bug in this script
    rec.error = errInfo(e);
  }
  rec.cmds = cmds;
  cmds = null;
  lines.push(rec);
}

function finish() {
  let text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  text = text.split(dbName).join('<db>');
  // cursor ids inside error messages ("cursor id 123 not found")
  for (const id of seenCursorIds) text = text.replace(new RegExp(`\\b${id}\\b`, 'g'), '<cursorId>');
  process.stdout.write(text);
}

const ITEMS = [
  { _id: 1, name: 'apple', qty: 5, price: 1.25, tags: ['fruit', 'red'], made: new Date('2024-01-02T03:04:05.678Z') },
  { _id: 2, name: 'banana', qty: 12, price: 0.5, tags: ['fruit', 'yellow'], made: new Date('2024-02-03T00:00:00Z') },
  { _id: 3, name: 'carrot', qty: 0, price: 0.75, tags: ['vegetable'], made: new Date('2023-12-31T23:59:59Z') },
  { _id: 4, name: 'durian', qty: 1, price: 9.99, tags: [], made: null },
  { _id: 5, name: 'eggplant', qty: 7, price: 2, tags: ['vegetable', 'purple'], nested: { a: { b: [1, { c: 2 }] } } },
  { _id: 6, name: 'fig', qty: 30, price: 3.5, tags: ['fruit'], big: Long.fromString('1099511627776') },
  { _id: 7, name: 'grape', qty: 3, price: new Double(4), tags: ['fruit', 'purple'], bin: new Binary(Buffer.from('grape'), 0) },
  { _id: 8, name: 'honeydew', qty: 2, price: 6.25, tags: ['fruit', 'green'], ref: new ObjectId('65a1b2c3d4e5f60718293a4b') },
];

async function main() {
  const client = new MongoClient(uri, {
    monitorCommands: true,
    serverSelectionTimeoutMS: 10000,
    appName: 'mongocache-workload-driver',
  });
  const IGNORE = new Set(['hello', 'isMaster', 'ismaster', 'ping', 'endSessions', 'saslStart', 'saslContinue']);
  client.on('commandSucceeded', (ev) => {
    if (cmds && !IGNORE.has(ev.commandName)) cmds.push(ev.commandName);
  });
  client.on('commandFailed', (ev) => {
    if (cmds && !IGNORE.has(ev.commandName)) cmds.push(`${ev.commandName}!`);
  });
  await client.connect();
  const db = client.db(dbName);
  const items = db.collection('items');
  const big = db.collection('big');

  await step('dropDatabase(fresh)', () => db.dropDatabase());

  // ---- inserts --------------------------------------------------------------
  await step('insertOne', () => items.insertOne(ITEMS[0]));
  await step('insertOne(duplicate _id)', () => items.insertOne({ _id: 1, name: 'dup' }));
  await step('insertMany(ordered, dup at 2)', () =>
    items.insertMany([ITEMS[1], ITEMS[2], { _id: 2, name: 'dup' }, ITEMS[3]], { ordered: true }));
  await step('insertMany(unordered, dup at 1)', () =>
    items.insertMany([ITEMS[4], { _id: 1, name: 'dup' }, ITEMS[5], ITEMS[6], ITEMS[3], ITEMS[7]], { ordered: false }));
  const bigDocs = [];
  for (let i = 0; i < 150; i++) bigDocs.push({ _id: 1000 + i, i, even: i % 2 === 0, pad: 'x'.repeat(40 + (i % 7)) });
  await step('insertMany(150 docs)', () => big.insertMany(bigDocs));

  // ---- finds ----------------------------------------------------------------
  await step('find(all, sort _id)', () => items.find({}).sort({ _id: 1 }).toArray());
  await step('find(filter/sort/projection/skip/limit)', () =>
    items.find({ qty: { $gte: 1 }, tags: 'fruit' }, { projection: { name: 1, qty: 1, _id: 0 } })
      .sort({ qty: -1, _id: 1 }).skip(1).limit(3).toArray());
  await step('find($in/$or/$exists/$regex)', () =>
    items.find({ $or: [{ _id: { $in: [3, 4] } }, { nested: { $exists: true } }, { name: { $regex: '^gr' } }] })
      .sort({ _id: -1 }).project({ name: 1 }).toArray());
  await step('findOne(dot path)', () => items.findOne({ 'nested.a.b.c': 2 }, { projection: { nested: 1 } }));
  await step('findOne(no match)', () => items.findOne({ _id: 999 }));

  // ---- cursors: getMore and killCursors --------------------------------------
  await step('find(150 docs, batchSize 10, getMore)', async () => {
    const docs = await big.find({}).sort({ _id: 1 }).batchSize(10).toArray();
    return { n: docs.length, first: docs[0], last: docs[docs.length - 1], sumI: docs.reduce((a, d) => a + d.i, 0) };
  });
  await step('find(150 docs, default first batch 101, getMore)', async () => {
    const docs = await big.find({ even: { $in: [true, false] } }).sort({ _id: -1 }).toArray();
    return { n: docs.length, ids: docs.map((d) => d._id) };
  });
  await step('find(batchSize 5, read 7, close -> killCursors)', async () => {
    const cur = big.find({}).sort({ _id: 1 }).batchSize(5);
    const got = [];
    for (let i = 0; i < 7; i++) got.push((await cur.next())._id);
    await cur.close();
    return { got };
  });
  let rawCursor = null;
  await step('command find(batchSize 3)', async () => {
    const r = await db.command({ find: 'big', filter: { i: { $lt: 20 } }, sort: { _id: 1 }, batchSize: 3 });
    rawCursor = r.cursor.id;
    return r;
  });
  await step('command getMore(batchSize 4)', () =>
    db.command({ getMore: Long.fromValue(rawCursor), collection: 'big', batchSize: 4 }));
  await step('command killCursors', () =>
    db.command({ killCursors: 'big', cursors: [Long.fromValue(rawCursor)] }));
  await step('command getMore(killed cursor)', () =>
    db.command({ getMore: Long.fromValue(rawCursor), collection: 'big' }));

  // ---- aggregate, count, distinct --------------------------------------------
  await step('aggregate($match/$unwind/$group/$sort)', () => items.aggregate([
    { $match: { qty: { $gt: 0 } } },
    { $unwind: '$tags' },
    { $group: { _id: '$tags', n: { $sum: 1 }, qty: { $sum: '$qty' } } },
    { $sort: { n: -1, _id: 1 } },
  ]).toArray());
  await step('aggregate(batchSize 20 over 150, $project/$limit)', async () => {
    const docs = await big.aggregate([{ $match: { even: true } }, { $sort: { _id: 1 } },
      { $project: { _id: 1, i: 1 } }, { $limit: 60 }], { batchSize: 20 }).toArray();
    return { n: docs.length, first: docs[0], last: docs[docs.length - 1] };
  });
  await step('aggregate($count)', () => big.aggregate([{ $match: { i: { $gte: 100 } } }, { $count: 'n' }]).toArray());
  await step('countDocuments(filter)', () => items.countDocuments({ tags: 'fruit' }));
  await step('countDocuments(skip/limit)', () => big.countDocuments({}, { skip: 10, limit: 50 }));
  await step('estimatedDocumentCount', () => big.estimatedDocumentCount());
  await step('command count(query)', () => db.command({ count: 'items', query: { qty: { $lt: 10 } } }));
  await step('distinct(tags)', () => items.distinct('tags'));
  await step('distinct(name, filter)', () => items.distinct('name', { qty: { $gt: 4 } }));

  // ---- updates ---------------------------------------------------------------
  await step('updateOne($set/$inc)', () => items.updateOne({ _id: 1 }, { $set: { color: 'red' }, $inc: { qty: 2 } }));
  await step('updateOne(no match)', () => items.updateOne({ _id: 999 }, { $set: { x: 1 } }));
  await step('updateOne(upsert)', () => items.updateOne({ _id: 9 }, { $set: { name: 'kiwi', qty: 4 } }, { upsert: true }));
  await step('updateMany($mul/$push)', () => items.updateMany({ tags: 'fruit' }, { $mul: { price: 2 }, $push: { tags: 'sale' } }));
  await step('updateMany($unset/$rename)', () => items.updateMany({ qty: { $lt: 3 } }, { $unset: { made: '' }, $rename: { price: 'cost' } }));
  await step('replaceOne', () => items.replaceOne({ _id: 4 }, { name: 'durian', qty: 100, note: 'replaced' }));
  await step('updateOne(bad operator $foo)', () => items.updateOne({ _id: 1 }, { $foo: { qty: 1 } }));
  await step('find(after updates)', () => items.find({}).sort({ _id: 1 }).toArray());

  // ---- findOneAndUpdate / findAndModify --------------------------------------
  await step('findOneAndUpdate(returnDocument after)', () =>
    items.findOneAndUpdate({ _id: 2 }, { $inc: { qty: -2 } }, { returnDocument: 'after', includeResultMetadata: true }));
  await step('findOneAndUpdate(upsert, projection)', () =>
    items.findOneAndUpdate({ _id: 10 }, { $set: { name: 'lemon' } },
      { upsert: true, returnDocument: 'after', projection: { name: 1 }, includeResultMetadata: true }));
  await step('findOneAndDelete', () => items.findOneAndDelete({ _id: 10 }, { includeResultMetadata: true }));
  await step('command findAndModify(sort, remove)', () =>
    db.command({ findAndModify: 'items', query: { qty: { $gte: 0 } }, sort: { qty: 1 }, remove: true }));
  await step('command findAndModify(new, upsert=false, no match)', () =>
    db.command({ findAndModify: 'items', query: { _id: 12345 }, update: { $set: { a: 1 } }, new: true }));

  // ---- bulkWrite ---------------------------------------------------------------
  const ops = (base) => [
    { insertOne: { document: { _id: base, name: `bulk${base}`, qty: 1 } } },
    { updateOne: { filter: { _id: base }, update: { $inc: { qty: 10 } } } },
    { insertOne: { document: { _id: base, name: 'dup' } } },
    { updateMany: { filter: { _id: { $gte: base } }, update: { $set: { bulk: true } } } },
    { replaceOne: { filter: { _id: base }, replacement: { name: `bulk${base}r` }, upsert: true } },
    { insertOne: { document: { _id: base + 1, name: `bulk${base + 1}` } } },
    { deleteOne: { filter: { _id: base + 1 } } },
    { deleteMany: { filter: { _id: { $gt: base + 5 } } } },
  ];
  await step('bulkWrite(ordered, dup at 2)', () => items.bulkWrite(ops(100), { ordered: true }));
  await step('bulkWrite(unordered, dup at 2)', () => items.bulkWrite(ops(200), { ordered: false }));
  await step('bulkWrite(ordered, no error)', () => items.bulkWrite([
    { insertOne: { document: { _id: 300, name: 'b300' } } },
    { updateOne: { filter: { _id: 300 }, update: { $set: { qty: 3 } } } },
    { deleteOne: { filter: { _id: 100 } } },
  ]));

  // ---- deletes -------------------------------------------------------------------
  await step('deleteOne', () => items.deleteOne({ _id: 3 }));
  await step('deleteOne(no match)', () => items.deleteOne({ _id: 3 }));
  await step('deleteMany', () => big.deleteMany({ i: { $gte: 140 } }));

  // ---- indexes -------------------------------------------------------------------
  await step('createIndex(name unique)', () => items.createIndex({ name: 1 }, { unique: true }));
  await step('createIndex(compound, named)', () => items.createIndex({ qty: -1, name: 1 }, { name: 'qty_name' }));
  await step('createIndexes(two on big)', () => big.createIndexes([{ key: { i: 1 } }, { key: { even: 1, i: -1 }, name: 'even_i' }]));
  await step('listIndexes(items)', () => items.listIndexes().toArray());
  await step('insertOne(violates unique name)', () => items.insertOne({ _id: 400, name: 'apple' }));
  await step('dropIndex', () => items.dropIndex('qty_name'));
  await step('listIndexes(after drop)', async () => (await items.listIndexes().toArray()).map((i) => i.name));

  // ---- errors --------------------------------------------------------------------
  await step('command unknown', () => db.command({ mongocacheNoSuchCommand: 1 }));
  await step('find(bad operator $bogus)', () => items.find({ qty: { $bogus: 1 } }).toArray());
  await step('aggregate(unknown stage)', () => items.aggregate([{ $frobnicate: {} }]).toArray());
  await step('insertOne(key with $)', () => items.insertOne({ _id: 401, $bad: 1 }));
  await step('command find(wrong type)', () => db.command({ find: 42 }));
  // FerretDB closes the connection on a BSON type it does not support
  // (Decimal128): the client must see the same network error through the
  // proxy. Own client without retryable writes, so the mongos persona does
  // not make the driver retry.
  await step('insertOne(Decimal128, upstream closes connection)', async () => {
    const c2 = new MongoClient(uri, { retryWrites: false, monitorCommands: true, serverSelectionTimeoutMS: 10000 });
    c2.on('commandFailed', (ev) => { if (cmds) cmds.push(`${ev.commandName}!`); });
    c2.on('commandSucceeded', (ev) => { if (cmds && !IGNORE.has(ev.commandName)) cmds.push(ev.commandName); });
    try {
      await c2.db(dbName).collection('items').insertOne({ _id: 402, d: BSON.Decimal128.fromString('1.10') });
    } catch (e) {
      e.message = e.message.replace(/connection \d+ to \S+ closed/, 'connection <n> to <addr> closed');
      throw e;
    } finally {
      await c2.close();
    }
  });
  await step('findOne(after closed connection)', () => items.findOne({ _id: 402 }));

  // ---- large messages (several MiB in one OP_MSG each way) ---------------------
  const large = db.collection('large');
  await step('insertMany(20 x 256 KiB, one 5 MiB message)', async () => {
    const docs = [];
    for (let i = 0; i < 20; i++) docs.push({ _id: i, blob: String.fromCharCode(97 + i).repeat(256 * 1024) + i });
    return (await large.insertMany(docs)).insertedCount;
  });
  await step('find(20 x 256 KiB, one 5 MiB reply)', async () => {
    const docs = await large.find({}).sort({ _id: -1 }).toArray();
    return {
      n: docs.length,
      bytes: docs.reduce((a, d) => a + d.blob.length, 0),
      heads: docs.map((d) => d.blob.slice(0, 1) + d.blob.slice(-2)).join(','),
    };
  });
  await step('drop(large)', () => large.drop());

  // ---- final state, listCollections, drop -----------------------------------------
  await step('find(final items)', () => items.find({}).sort({ _id: 1 }).toArray());
  await step('listCollections(names)', async () =>
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort());
  await step('drop(items)', () => items.drop());
  await step('drop(big)', () => big.drop());
  await step('listCollections(after drop)', async () =>
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  await step('dropDatabase', () => db.dropDatabase());

  await client.close();
  finish();
}

main().catch((e) => {
  finish();
  process.stderr.write(`workload_driver.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
