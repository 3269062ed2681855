#!/usr/bin/env node
// tests/integration/node/workload_mongoose.js URI DBNAME
//
// Scripted workload with Mongoose: a schema with an ObjectId ref, a Date, a
// Number, a String and a Buffer; save, create, find, populate, updateOne,
// findOneAndUpdate, lean queries, a cursor read through getMore, deleteMany.
// Prints one canonical Extended JSON line per operation (result or error,
// plus the commands sent) so that a direct run and a run through mongocache
// can be diffed; "check" lines record the JavaScript types Mongoose hands
// back (constructor names) and whether they are what they must be: an
// ObjectId ref comes back as an ObjectId, a Date as a Date.
// Exit status: 0 when every check held, 1 otherwise or on a harness failure.
'use strict';

const mongoose = require('mongoose');
const { BSON } = require('mongodb');
const { EJSON } = BSON;
const { Schema } = mongoose;
const { ObjectId } = mongoose.Types;

const [uri, dbName] = process.argv.slice(2);
if (!uri || !dbName) {
  process.stderr.write('usage: workload_mongoose.js URI DBNAME\n');
  process.exit(2);
}

const DROP_KEYS = new Set(['$clusterTime', 'operationTime', 'connectionId', 'localTime', 'electionId']);
function norm(v, key, parentKey) {
  if (Array.isArray(v)) return v.map((x) => norm(x, undefined, key));
  if (v && typeof v === 'object') {
    if (key === 'id' && parentKey === 'cursor') return (v.$numberLong || v.$numberInt) === '0' ? 0 : '<cursorId>';
    const o = {};
    for (const k of Object.keys(v)) if (!DROP_KEYS.has(k)) o[k] = norm(v[k], k, key);
    return o;
  }
  return v;
}
const ejson = (v) => norm(EJSON.serialize(v, { relaxed: false }));
const plain = (d) => (d && typeof d.toObject === 'function' ? d.toObject({ depopulate: false }) : d);

const lines = [];
let cmds = null;
let n = 0;
let failedChecks = 0;

async function step(op, fn) {
  cmds = [];
  const rec = { n: ++n, op };
  try {
    const r = await fn();
    rec.result = r === undefined ? null : ejson(r);
  } catch (e) {
    if (!e || !e.name || !/^Mongo|^ValidationError$|^CastError$/.test(e.name)) throw e;
    rec.error = { name: e.name };
    if (e.code !== undefined) rec.error.code = e.code;
    if (e.codeName !== undefined) rec.error.codeName = e.codeName;
    rec.error.message = e.message;
    if (e.writeErrors) {
      rec.error.writeErrors = e.writeErrors.map((w) => ({
        index: w.index, code: w.code ?? (w.err && w.err.code), errmsg: w.errmsg ?? (w.err && w.err.errmsg),
      }));
    }
    if (e.insertedDocs) rec.error.insertedIds = e.insertedDocs.map((d) => String(d._id));
    rec.error = ejson(rec.error);
  }
  rec.cmds = cmds;
  cmds = null;
  lines.push(rec);
}

// A check line: what the value is (constructor name) and whether it is
// what it must be.
function typeOf(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  return v.constructor ? v.constructor.name : typeof v;
}
function check(what, value, ok) {
  const rec = { n: ++n, op: `check ${what}`, type: typeOf(value), ok: Boolean(ok) };
  if (!rec.ok) failedChecks++;
  lines.push(rec);
}

function finish() {
  let text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  text = text.split(dbName).join('<db>');
  process.stdout.write(text);
}

const A1 = new ObjectId('65f000000000000000000a01');
const A2 = new ObjectId('65f000000000000000000a02');
const B = (i) => new ObjectId(`65f000000000000000000b0${i}`);

async function main() {
  const conn = mongoose.createConnection(uri, {
    dbName,
    monitorCommands: true,
    serverSelectionTimeoutMS: 10000,
    autoIndex: false,
    autoCreate: false,
    appName: 'mongocache-workload-mongoose',
  });
  await conn.asPromise();
  const IGNORE = new Set(['hello', 'isMaster', 'ismaster', 'ping', 'endSessions', 'saslStart', 'saslContinue']);
  const client = conn.getClient();
  client.on('commandSucceeded', (ev) => { if (cmds && !IGNORE.has(ev.commandName)) cmds.push(ev.commandName); });
  client.on('commandFailed', (ev) => { if (cmds && !IGNORE.has(ev.commandName)) cmds.push(`${ev.commandName}!`); });

  const Author = conn.model('Author', new Schema({
    name: { type: String, required: true },
    born: Date,
  }, { collection: 'authors' }));
  const Book = conn.model('Book', new Schema({
    title: { type: String, required: true, unique: true },
    author: { type: Schema.Types.ObjectId, ref: 'Author', required: true },
    published: Date,
    pages: Number,
    price: Number,
    cover: Buffer,
    tags: [String],
  }, { collection: 'books' }));
  const Page = conn.model('Page', new Schema({ _id: Number, book: Schema.Types.ObjectId, no: Number, text: String },
    { collection: 'pages', versionKey: false }));

  await step('dropDatabase(fresh)', () => conn.dropDatabase());
  await step('Author.createCollection', async () => { await Author.createCollection(); return 'ok'; });
  await step('Book.createCollection', async () => { await Book.createCollection(); return 'ok'; });
  await step('Book.syncIndexes', () => Book.syncIndexes());
  await step('Book.listIndexes', () => Book.listIndexes());

  // ---- save / create ------------------------------------------------------------
  await step('Author#save', async () => plain(await new Author({ _id: A1, name: 'Ursula', born: new Date('1929-10-21T00:00:00Z') }).save()));
  await step('Author#save(second)', async () => plain(await new Author({ _id: A2, name: 'Stanislaw', born: new Date('1921-09-12T00:00:00Z') }).save()));
  await step('Book.create(3)', async () => (await Book.create([
    { _id: B(1), title: 'The Dispossessed', author: A1, published: new Date('1974-05-01T00:00:00Z'), pages: 387, price: 9.5, cover: Buffer.from('cover-1'), tags: ['sf', 'utopia'] },
    { _id: B(2), title: 'Solaris', author: A2, published: new Date('1961-06-01T00:00:00Z'), pages: 204, price: 8, cover: Buffer.from([0, 1, 2, 255]), tags: ['sf'] },
    { _id: B(3), title: 'The Lathe of Heaven', author: A1, published: new Date('1971-03-01T00:00:00Z'), pages: 184, price: 7.25, tags: [] },
  ], { ordered: true })).map(plain));
  await step('Book#save(duplicate title)', async () => plain(await new Book({ _id: B(4), title: 'Solaris', author: A2, pages: 1 }).save()));
  await step('Book#save(validation error, no round trip)', async () => plain(await new Book({ _id: B(5), title: 'x', pages: 'many' }).save()));
  await step('Book.insertMany(unordered, dup title)', async () => (await Book.insertMany([
    { _id: B(6), title: 'Fiasco', author: A2, pages: 322, published: new Date('1986-01-01T00:00:00Z') },
    { _id: B(7), title: 'Solaris', author: A2, pages: 2 },
    { _id: B(8), title: 'The Word for World Is Forest', author: A1, pages: 189 },
  ], { ordered: false, rawResult: false })).map(plain));

  // ---- find and types -----------------------------------------------------------
  let docs = null;
  await step('Book.find(sort published)', async () => {
    docs = await Book.find({ pages: { $gt: 100 } }).sort({ published: 1 });
    return docs.map(plain);
  });
  const d0 = docs && docs.find((d) => String(d._id) === String(B(1)));
  check('hydrated author is ObjectId', d0 && d0.author, d0 && d0.author instanceof ObjectId);
  check('hydrated _id is ObjectId', d0 && d0._id, d0 && d0._id instanceof ObjectId);
  check('hydrated published is Date', d0 && d0.published, d0 && d0.published instanceof Date &&
    d0.published.toISOString() === '1974-05-01T00:00:00.000Z');
  check('hydrated pages is number', d0 && d0.pages, d0 && d0.pages === 387);
  check('hydrated title is string', d0 && d0.title, d0 && d0.title === 'The Dispossessed');
  check('hydrated cover is Buffer', d0 && d0.cover, d0 && Buffer.isBuffer(d0.cover) &&
    d0.cover.toString() === 'cover-1');

  let lean = null;
  await step('Book.find(projection, lean)', async () => {
    lean = await Book.find({}, { title: 1, author: 1, published: 1, cover: 1 }).sort({ title: 1 }).lean();
    return lean;
  });
  const l0 = lean && lean.find((d) => d.title === 'Solaris');
  check('lean author is ObjectId', l0 && l0.author, l0 && l0.author instanceof ObjectId);
  check('lean published is Date', l0 && l0.published, l0 && l0.published instanceof Date &&
    l0.published.getTime() === Date.parse('1961-06-01T00:00:00Z'));
  check('lean cover is Binary', l0 && l0.cover, l0 && l0.cover && l0.cover._bsontype === 'Binary' &&
    Buffer.from(l0.cover.buffer).equals(Buffer.from([0, 1, 2, 255])));

  let pop = null;
  await step('Book.findById.populate(author)', async () => {
    pop = await Book.findById(B(2)).populate('author');
    return plain(pop);
  });
  check('populated author is Author document', pop && pop.author, pop && pop.author instanceof Author &&
    pop.author.name === 'Stanislaw');
  check('populated author._id is ObjectId', pop && pop.author && pop.author._id,
    pop && pop.author && pop.author._id instanceof ObjectId && pop.author._id.equals(A2));
  check('populated author.born is Date', pop && pop.author && pop.author.born,
    pop && pop.author && pop.author.born instanceof Date);

  let popLean = null;
  await step('Book.find.populate(author name).lean', async () => {
    popLean = await Book.find({ author: A1 }).sort({ _id: 1 }).populate({ path: 'author', select: 'name born' }).lean();
    return popLean;
  });
  const p0 = popLean && popLean[0];
  check('lean populated author._id is ObjectId', p0 && p0.author && p0.author._id,
    p0 && p0.author && p0.author._id instanceof ObjectId);
  check('lean populated author.born is Date', p0 && p0.author && p0.author.born,
    p0 && p0.author && p0.author.born instanceof Date);

  await step('Book.findOne(by ref)', async () => plain(await Book.findOne({ author: A2, pages: { $gte: 300 } })));
  await step('Book.countDocuments', () => Book.countDocuments({ author: A1 }));
  await step('Book.distinct(tags)', () => Book.distinct('tags'));
  await step('Book.aggregate(group by author)', () => Book.aggregate([
    { $group: { _id: '$author', n: { $sum: 1 }, pages: { $sum: '$pages' } } },
    { $sort: { _id: 1 } },
  ]));

  // ---- updates --------------------------------------------------------------------
  await step('Book.updateOne($set/$push)', () => Book.updateOne({ _id: B(3) }, { $set: { pages: 200 }, $push: { tags: 'dream' } }));
  await step('Book.updateOne(cast error)', () => Book.updateOne({ _id: B(3) }, { $set: { pages: 'lots' } }));
  await step('Book#save(modified doc)', async () => {
    const d = await Book.findById(B(1));
    d.price = 11;
    d.tags.push('anarchy');
    return plain(await d.save());
  });
  await step('Book.findOneAndUpdate(new)', async () =>
    plain(await Book.findOneAndUpdate({ _id: B(2) }, { $inc: { pages: 10 } }, { new: true })));
  await step('Author.updateMany', () => Author.updateMany({}, { $set: { checked: true } }, { strict: false }));

  // ---- cursor through getMore ---------------------------------------------------
  await step('Page.insertMany(130)', async () => {
    const r = await Page.insertMany(Array.from({ length: 130 }, (_, i) => ({ _id: i + 1, book: B(1), no: i + 1, text: `page ${i + 1}` })));
    return r.length;
  });
  await step('Page.find.cursor(batchSize 25)', async () => {
    let count = 0;
    let sum = 0;
    for await (const p of Page.find({ book: B(1) }).sort({ no: 1 }).batchSize(25).cursor()) {
      count++;
      sum += p.no;
      if (!(p.book instanceof ObjectId)) throw new Error('cursor doc book is not an ObjectId');
    }
    return { count, sum };
  });
  await step('Page.find.lean(limit 3, skip 100)', () => Page.find({}).sort({ _id: 1 }).skip(100).limit(3).lean());

  // ---- deletes and final state -------------------------------------------------
  await step('Book.deleteMany(pages < 200)', () => Book.deleteMany({ pages: { $lt: 200 } }));
  await step('Page.deleteMany(all)', () => Page.deleteMany({}));
  await step('Book.find.lean(final)', () => Book.find({}).sort({ _id: 1 }).lean());
  await step('Author.find.lean(final)', () => Author.find({}).sort({ _id: 1 }).lean());
  await step('dropDatabase', () => conn.dropDatabase());

  await conn.close();
  finish();
  if (failedChecks) {
    process.stderr.write(`workload_mongoose.js: ${failedChecks} type check(s) failed\n`);
    process.exit(1);
  }
}

main().catch((e) => {
  finish();
  process.stderr.write(`workload_mongoose.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
