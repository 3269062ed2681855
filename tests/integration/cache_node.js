#!/usr/bin/env node
// tests/integration/cache_node.js GROUP PROXY_PORT DIRECT_PORT HTTP_PORT
//
// The query cache with the Node.js driver and Mongoose (run by
// test_cache.sh with NODE_PATH pointing at tests/integration/node/node_modules).
// Prints unnumbered TAP lines ("ok - ...", "not ok - ...", "ok - ... # SKIP
// reason") and "# " diagnostics, then its plan ("1..N") once the group ran to
// its end; the wrapper numbers them and checks the plan.
//
//   inval  writes made with the Node driver (insertOne, updateMany, deleteOne,
//          findOneAndUpdate, bulkWrite) and with Mongoose (Model.create,
//          Model.updateOne, Model.deleteMany, doc.save): a read warmed through
//          the proxy (the second time a hit, per GET /stats) is fresh after the
//          write, a miss, and equal to FerretDB's answer.
//   types  Mongoose documents answered from the cache (hits) equal those
//          answered by FerretDB directly, deep, constructor names included:
//          ObjectId, Date, Buffer, nested documents, arrays, subdocuments,
//          Map, UUID, BigInt (Int64), Double, Int32, numbers, strings,
//          booleans, null; hydrated, lean, findById and aggregate. The raw
//          BSON of a hit equals FerretDB's byte for byte.
'use strict';

const mongoose = require('mongoose');
const { MongoClient, BSON } = require('mongodb');
const { EJSON } = BSON;
const { Schema } = mongoose;

const [group, proxyPort, directPort, httpPort] = process.argv.slice(2);
if (!group || !proxyPort || !directPort || !httpPort) {
  process.stderr.write('usage: cache_node.js GROUP PROXY_PORT DIRECT_PORT HTTP_PORT\n');
  process.exit(2);
}
const PROXY_URI = `mongodb://127.0.0.1:${proxyPort}/`;
const DIRECT_URI = `mongodb://127.0.0.1:${directPort}/?directConnection=true`;
const OPTS = { serverSelectionTimeoutMS: 10000 };

const { line, skip, tcase, plan } = require('./tap.js');

async function stats() {
  const r = await fetch(`http://127.0.0.1:${httpPort}/stats`);
  return r.json();
}
function delta(a, b) {
  const o = {};
  for (const k of ['hits', 'misses', 'fills', 'invalidations', 'bypassed']) o[k] = b.cache[k] - a.cache[k];
  return o;
}
const ej = (v) => EJSON.stringify(v, { relaxed: false });
const short = (s, n = 300) => (s.length > n ? `${s.slice(0, n)}...` : s);

// ---- inval -------------------------------------------------------------------------

async function groupInval() {
  const P = await new MongoClient(PROXY_URI, { ...OPTS, maxPoolSize: 1 }).connect();
  const D = await new MongoClient(DIRECT_URI, OPTS).connect();
  const conn = await mongoose.createConnection(PROXY_URI, {
    ...OPTS, dbName: 'mcc_node', autoIndex: false, autoCreate: false,
  }).asPromise();
  const Item = conn.model('Item', new Schema({ _id: Number, v: Schema.Types.Mixed, tag: String },
    { versionKey: false }), 'mg_placeholder');
  const db = 'mcc_node';
  const read = (client, coll) => client.db(db).collection(coll).find({}).sort({ _id: 1 }).toArray();

  async function row(name, coll, write) {
    await tcase(`invalidation (${name}) through the proxy: the next read is fresh and equals FerretDB's`,
      async (check) => {
        await D.db(db).collection(coll).insertMany(
          [0, 1, 2, 3, 4].map((i) => ({ _id: i, v: i, tag: `s${i % 2}` })));
        const s0 = await stats();
        await read(P, coll);
        const s1 = await stats();
        const old = await read(P, coll);
        const s2 = await stats();
        check(delta(s0, s1).misses === 1, `warming read: ${JSON.stringify(delta(s0, s1))}`);
        check(delta(s1, s2).hits === 1 && delta(s1, s2).misses === 0,
          `second read not a hit: ${JSON.stringify(delta(s1, s2))}`);
        await write(coll);
        const s3 = await stats();
        check(s3.cache.invalidations > s2.cache.invalidations, 'cache.invalidations did not rise');
        const got = await read(P, coll);
        const s4 = await stats();
        const want = await read(D, coll);
        check(ej(got) === ej(want), `proxy ${short(ej(got))}\nFerretDB ${short(ej(want))}`);
        check(ej(got) !== ej(old), 'the write changed nothing (the test proves nothing)');
        const d = delta(s3, s4);
        check(d.hits === 0 && d.misses === 1, `read after the write: ${JSON.stringify(d)}`);
      });
  }
  const c = (coll) => P.db(db).collection(coll);
  const M = (coll) => conn.model(`M_${coll}`, Item.schema, coll);

  await row('Node driver insertOne', 'd_ins', (coll) => c(coll).insertOne({ _id: 10, v: 'new' }));
  await row('Node driver updateMany', 'd_updm', (coll) => c(coll).updateMany({ tag: 's1' }, { $set: { v: 'u' } }));
  await row('Node driver deleteOne', 'd_del1', (coll) => c(coll).deleteOne({ _id: 3 }));
  await row('Node driver findOneAndUpdate', 'd_fau',
    (coll) => c(coll).findOneAndUpdate({ _id: 2 }, { $set: { v: 'fau' } }));
  await row('Node driver bulkWrite (insert, update, replace, delete)', 'd_bulk', (coll) => c(coll).bulkWrite([
    { insertOne: { document: { _id: 20, v: 20 } } },
    { updateOne: { filter: { _id: 1 }, update: { $set: { v: 'b' } } } },
    { replaceOne: { filter: { _id: 2 }, replacement: { v: 'r' } } },
    { deleteOne: { filter: { _id: 0 } } },
  ]));
  await row('Mongoose Model.create', 'm_create', (coll) => M(coll).create({ _id: 30, v: 'created', tag: 'm' }));
  await row('Mongoose Model.updateOne', 'm_upd1', (coll) => M(coll).updateOne({ _id: 4 }, { $set: { v: 'mu' } }));
  await row('Mongoose Model.deleteMany', 'm_delm', (coll) => M(coll).deleteMany({ tag: 's0' }));
  await row('Mongoose document save() of a modified document', 'm_save', async (coll) => {
    const d = await M(coll).findById(1);
    d.v = 'saved';
    await d.save();
  });

  await conn.close();
  await P.close();
  await D.close();
}

// ---- types -------------------------------------------------------------------------

// The value as a tree of [constructor name, contents]: two results are the
// same, types included, when their canon() strings are equal.
function canon(v) {
  if (v === null) return ['null'];
  if (v === undefined) return ['undefined'];
  const t = typeof v;
  if (t === 'number') return ['number', Object.is(v, -0) ? '-0' : String(v)];
  if (t === 'bigint') return ['bigint', v.toString()];
  if (t !== 'object') return [t, v];
  const ctor = v.constructor ? v.constructor.name : 'null-prototype';
  if (v.$__ && v._doc) return [ctor, canon(v._doc)]; // a Mongoose (sub)document
  if (v instanceof Date) return [ctor, v.getTime()];
  if (Buffer.isBuffer(v)) return [ctor, v.toString('hex'), v.subtype === undefined ? '' : String(v.subtype)];
  if (v._bsontype) return [ctor, v._bsontype, EJSON.stringify({ v }, { relaxed: false })];
  if (v instanceof Map) return [ctor, [...v.entries()].map(([k, x]) => [k, canon(x)])];
  if (Array.isArray(v)) return [ctor, Array.from(v, canon)];
  return [ctor, Object.keys(v).map((k) => [k, canon(v[k])])];
}
const canonStr = (v) => JSON.stringify(canon(v));

async function groupTypes() {
  const db = 'mcc_types';
  const Sub = new Schema({ label: String, when: Date, tags: [String] }, { _id: false });
  const schema = new Schema({
    _id: Number,
    ref: Schema.Types.ObjectId,
    at: Date,
    data: Buffer,
    nested: { a: Number, b: { c: String, d: [Number] } },
    sub: Sub,
    subs: [Sub],
    ids: [Schema.Types.ObjectId],
    mixed: Schema.Types.Mixed,
    map: { type: Map, of: Date },
    uuid: Schema.Types.UUID,
    big: Schema.Types.BigInt,
    dbl: Schema.Types.Double,
    i32: Schema.Types.Int32,
    int: Number,
    float: Number,
    neg: Number,
    large: Number,
    str: String,
    flag: Boolean,
    nul: Schema.Types.Mixed,
  }, { versionKey: false });
  const oid = (h) => new mongoose.Types.ObjectId(h);
  const docs = [1, 2, 3].map((i) => ({
    _id: i,
    ref: oid(`65a1b2c3d4e5f6a7b8c9d0e${i}`),
    at: new Date(Date.UTC(2024, 0, i, 12, 30, 15, 123)),
    data: Buffer.from([0, 1, 2, 254, 255, i]),
    nested: { a: i * 1.25, b: { c: `deep-${i}`, d: [i, i + 1, -i] } },
    sub: { label: `sub-${i}`, when: new Date(86400000 * i), tags: ['x', `t${i}`] },
    subs: [{ label: 'first', when: new Date(1000 * i), tags: [] }, { label: 'second', tags: ['y'] }],
    ids: [oid(`75a1b2c3d4e5f6a7b8c9d0e${i}`), oid(`85a1b2c3d4e5f6a7b8c9d0e${i}`)],
    mixed: { list: [1, 'two', { three: 3 }], empty: {}, when: new Date(5000), bin: Buffer.from('mx') },
    map: new Map([['k1', new Date(7000 * i)], ['k2', new Date(9000)]]),
    uuid: `0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f${i}`,
    big: BigInt(2) ** BigInt(40 + i),
    dbl: 2 + i,
    i32: -7 * i,
    int: 42 * i,
    float: i / 3,
    neg: -i,
    large: 2 ** 40 + i,
    str: `héllo ✓ ${i}`,
    flag: i % 2 === 1,
    nul: null,
  }));

  const P = await mongoose.createConnection(PROXY_URI, {
    ...OPTS, dbName: db, autoIndex: false, autoCreate: false,
  }).asPromise();
  const D = await mongoose.createConnection(DIRECT_URI, {
    ...OPTS, dbName: db, autoIndex: false, autoCreate: false,
  }).asPromise();
  const MP = P.model('Typed', schema, 'typed');
  const MD = D.model('Typed', schema, 'typed');
  await MD.create(docs);

  const queries = [
    ['hydrated find', (M) => M.find({}).sort({ _id: 1 })],
    ['lean find', (M) => M.find({ _id: { $lte: 3 } }).sort({ _id: 1 }).lean()],
    ['findById', (M) => M.findById(2)],
    ['lean findOne with projection', (M) => M.findOne({ str: /✓ 3$/ }, { ref: 1, at: 1, data: 1, map: 1, big: 1 }).lean()],
    ['aggregate', (M) => M.aggregate([{ $match: { flag: true } }, { $sort: { _id: -1 } }])],
  ];
  for (const [name, q] of queries) {
    await tcase(`types: Mongoose ${name}: the cached answer (a hit) deep-equals FerretDB's, constructor names included`,
      async (check) => {
        const s0 = await stats();
        const first = await q(MP);
        const s1 = await stats();
        const hit = await q(MP);
        const s2 = await stats();
        const direct = await q(MD);
        check(delta(s0, s1).misses === 1, `first run: ${JSON.stringify(delta(s0, s1))}`);
        check(delta(s1, s2).hits === 1 && delta(s1, s2).misses === 0,
          `second run not a hit: ${JSON.stringify(delta(s1, s2))}`);
        const h = canonStr(hit);
        const d = canonStr(direct);
        check(h === d, `hit:    ${short(h, 600)}\ndirect: ${short(d, 600)}`);
        check(canonStr(first) === d, 'the first (miss) answer differs from FerretDB\'s');
        check(h.length > 100 && !/"undefined"/.test(h), `suspiciously empty result: ${short(h)}`);
      });
  }

  await tcase('types: the types come back as they must (hydrated: ObjectId, Date, Buffer, Map, '
    + 'UUID, BigInt; lean: ObjectId, Date, Binary, Long or bigint, Double)', async (check) => {
    const h = await MP.findById(3); // a hit by now
    const l = await MP.find({}).sort({ _id: 1 }).lean();
    const name = (v) => (v === null || v === undefined ? String(v) : v.constructor.name);
    check(name(h.ref) === 'ObjectId', `ref ${name(h.ref)}`);
    check(h.at instanceof Date && h.at.getTime() === docs[2].at.getTime(), `at ${h.at}`);
    check(Buffer.isBuffer(h.data) && h.data.equals(docs[2].data), `data ${name(h.data)}`);
    check(h.map instanceof Map && h.map.get('k1') instanceof Date, `map ${name(h.map)}`);
    check(typeof h.big === 'bigint' && h.big === docs[2].big, `big ${typeof h.big} ${h.big}`);
    check(name(h.ids[1]) === 'ObjectId' && h.ids[1].equals(docs[2].ids[1]), `ids ${name(h.ids[1])}`);
    check(h.sub.when instanceof Date && h.subs[0].when instanceof Date, 'subdocument dates');
    check(h.nested.b.d[2] === -3 && h.float === 1, `nested ${h.nested.b.d} float ${h.float}`);
    const l3 = l[2];
    check(name(l3.ref) === 'ObjectId' && l3.at instanceof Date, `lean ref ${name(l3.ref)} at ${name(l3.at)}`);
    check(name(l3.data) === 'Binary', `lean data ${name(l3.data)}`);
    check(name(l3.mixed.bin) === 'Binary' && l3.mixed.when instanceof Date, 'lean mixed types');
    check(name(l3.uuid) === 'Binary' || name(l3.uuid) === 'UUID', `lean uuid ${name(l3.uuid)}`);
    check(['Long', 'BigInt', 'Number'].includes(name(l3.big)), `lean big ${name(l3.big)}`);
  });

  skip('types: Decimal128 (Schema.Types.Decimal128)',
    'FerretDB v1.24.2 cannot store Decimal128: it closes the connection (docs/compatibility.md)');

  // The raw BSON of a hit is FerretDB's, byte for byte.
  const PC = await new MongoClient(PROXY_URI, OPTS).connect();
  const DC = await new MongoClient(DIRECT_URI, OPTS).connect();
  await tcase('types: raw BSON of every document of a hit equals FerretDB\'s byte for byte (Node driver, raw: true)',
    async (check) => {
      const q = (c) => c.db(db).collection('typed').find({ _id: { $gte: 1 } }, { raw: true }).sort({ _id: 1 }).toArray();
      await q(PC);
      const s1 = await stats();
      const hit = await q(PC);
      const s2 = await stats();
      const direct = await q(DC);
      check(delta(s1, s2).hits === 1, `not a hit: ${JSON.stringify(delta(s1, s2))}`);
      check(hit.length === 3 && direct.length === 3, `lengths ${hit.length} ${direct.length}`);
      for (let i = 0; i < Math.min(hit.length, direct.length); i++) {
        check(Buffer.compare(Buffer.from(hit[i]), Buffer.from(direct[i])) === 0, `document ${i} differs`);
      }
    });
  await PC.close();
  await DC.close();
  await P.close();
  await D.close();
}

(async () => {
  if (group === 'inval') await groupInval();
  else if (group === 'types') await groupTypes();
  else throw new Error(`unknown group ${group}`);
})().then(() => {
  plan();
  process.exit(0);
}, (e) => {
  line(false, `cache_node.js ${group}: harness failed`, [e && e.stack ? e.stack : String(e)]);
  process.exit(1);
});
