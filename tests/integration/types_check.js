#!/usr/bin/env node
// tests/integration/types_check.js PROXY_PORT DIRECT_PORT HTTP_PORT
//
// BSON types through the query cache, against mongo-java-server (run by
// test_types.sh with NODE_PATH pointing at tests/integration/node/node_modules).
// FerretDB v1.24.2 drops the connection on Decimal128, hence this upstream.
// Each read runs twice through the proxy (a miss, then a hit per GET /stats)
// and once directly; the hit must equal the direct answer, constructor and
// _bsontype names included, and the inserted values. Prints unnumbered TAP
// lines and "# " diagnostics, then its plan ("1..N") once it ran to its end; the
// wrapper numbers them and checks the plan.
'use strict';

const mongoose = require('mongoose');
const { MongoClient, BSON } = require('mongodb');

const { EJSON, Decimal128, Long, Int32, Double, Binary, Timestamp, MinKey, MaxKey, BSONRegExp, UUID } = BSON;
const { Schema } = mongoose;

const [proxyPort, directPort, httpPort] = process.argv.slice(2);
if (!proxyPort || !directPort || !httpPort) {
  process.stderr.write('usage: types_check.js PROXY_PORT DIRECT_PORT HTTP_PORT\n');
  process.exit(2);
}
const PROXY_URI = `mongodb://127.0.0.1:${proxyPort}/`;
const DIRECT_URI = `mongodb://127.0.0.1:${directPort}/?directConnection=true`;
const OPTS = { serverSelectionTimeoutMS: 10000 };

const { tcase, plan } = require('./tap.js');

async function stats() {
  return (await fetch(`http://127.0.0.1:${httpPort}/stats`)).json();
}
const delta = (a, b) => ({ hits: b.cache.hits - a.cache.hits, misses: b.cache.misses - a.cache.misses });
const short = (s, n = 600) => (s.length > n ? `${s.slice(0, n)}...` : s);

// The value as a tree of [constructor name, contents]: equal canonStr() means
// equal values and equal types.
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
  if (Buffer.isBuffer(v)) return [ctor, v.toString('hex')];
  if (v._bsontype) return [ctor, v._bsontype, EJSON.stringify({ v }, { relaxed: false })];
  if (v instanceof Map) return [ctor, [...v.entries()].map(([k, x]) => [k, canon(x)])];
  if (Array.isArray(v)) return [ctor, Array.from(v, canon)];
  return [ctor, Object.keys(v).map((k) => [k, canon(v[k])])];
}
const canonStr = (v) => JSON.stringify(canon(v));

// Decimal128 edge cases: trailing zeros, signed zero, specials, extremes.
const DECIMALS = ['1.10', '0.1', '-0', '0E-6176', 'NaN', 'Infinity', '-Infinity',
  '1E+6144', '9.999999999999999999999999999999999E+6144', '1E-6176',
  '-1234567890123456789012345678901.234', '123.4500'];

async function main() {
  const db = 'mc_types';

  // ---- Mongoose: Decimal128, ObjectId, Date, Buffer, Map, nested arrays, BigInt (Int64)
  const schema = new Schema({
    _id: Number,
    price: Schema.Types.Decimal128,
    prices: [Schema.Types.Decimal128],
    ref: Schema.Types.ObjectId,
    at: Date,
    data: Buffer,
    map: { type: Map, of: Schema.Types.Decimal128 },
    grid: [[Number]],
    deep: [{ name: String, amounts: [Schema.Types.Decimal128], when: [Date] }],
    big: Schema.Types.BigInt,
  }, { versionKey: false });
  const d128 = (s) => Decimal128.fromString(s);
  const docs = DECIMALS.map((s, i) => ({
    _id: i + 1,
    price: d128(s),
    prices: [d128(s), d128('0.00'), d128(`${i}.${i}0`)],
    ref: new mongoose.Types.ObjectId(`65a1b2c3d4e5f6a7b8c9d0${String(i).padStart(2, '0')}`),
    at: new Date(Date.UTC(2024, 1, 29, 23, 59, 59, i)),
    data: Buffer.from([0, 255, i, 128]),
    map: new Map([['a', d128(s)], ['b_c', d128('-1.000')]]),
    grid: [[i, -i], [], [0.5, 2 ** 53 - 1]],
    deep: [{ name: `n${i}`, amounts: [d128(s), d128('1E+3')], when: [new Date(i * 1000)] }],
    big: -(2n ** 62n) + BigInt(i),
  }));
  const connOpts = { ...OPTS, dbName: db, autoIndex: false, autoCreate: false };
  const CP = await mongoose.createConnection(PROXY_URI, connOpts).asPromise();
  const CD = await mongoose.createConnection(DIRECT_URI, connOpts).asPromise();
  const MP = CP.model('Priced', schema, 'priced');
  const MD = CD.model('Priced', schema, 'priced');

  await tcase(`Mongoose Model.create of ${docs.length} documents through the proxy`, async (check) => {
    const r = await MP.create(docs);
    check(r.length === docs.length, `created ${r.length}`);
  });

  const queries = [
    ['hydrated find', (M) => M.find({}).sort({ _id: 1 })],
    ['lean find', (M) => M.find({ _id: { $gte: 1 } }).sort({ _id: 1 }).lean()],
    ['findById', (M) => M.findById(9)],
  ];
  for (const [name, q] of queries) {
    await tcase(`Mongoose ${name}: the hit deep-equals mongo-java-server's answer, constructor names included`,
      async (check) => {
        const s0 = await stats();
        const first = await q(MP);
        const s1 = await stats();
        const hit = await q(MP);
        const s2 = await stats();
        const direct = await q(MD);
        check(delta(s0, s1).misses === 1, `first read: ${JSON.stringify(delta(s0, s1))}`);
        check(delta(s1, s2).hits === 1 && delta(s1, s2).misses === 0,
          `second read not a hit: ${JSON.stringify(delta(s1, s2))}`);
        const h = canonStr(hit);
        const d = canonStr(direct);
        check(h === d, `hit:    ${short(h)}\ndirect: ${short(d)}`);
        check(canonStr(first) === d, 'the first (miss) answer differs from the direct one');
        check(h.includes('"Decimal128"'), `no Decimal128 in ${short(h)}`);
      });
  }

  await tcase('Mongoose: Decimal128 stays Decimal128 with the same string, in fields, arrays, maps and '
    + 'subdocuments; ObjectId, Date, Buffer, Map, BigInt as inserted', async (check) => {
    const hyd = await MP.find({}).sort({ _id: 1 }); // hits by now
    const lean = await MP.find({ _id: { $gte: 1 } }).sort({ _id: 1 }).lean();
    check(hyd.length === docs.length && lean.length === docs.length, `got ${hyd.length}, ${lean.length}`);
    const name = (v) => (v === null || v === undefined ? String(v) : v.constructor.name);
    // the same 16 bytes as Decimal128.fromString(s) (1E+6144 is stored clamped)
    const isDec = (v, s) => v instanceof Decimal128 && v._bsontype === 'Decimal128'
      && Buffer.from(v.bytes).equals(Buffer.from(d128(s).bytes)) && v.toString() === d128(s).toString();
    docs.forEach((want, i) => {
      const h = hyd[i];
      const l = lean[i];
      const s = DECIMALS[i];
      for (const [where, o] of [['hydrated', h], ['lean', l]]) {
        if (!o) return;
        check(isDec(o.price, s), `${where} ${i} price: ${name(o.price)} ${o.price}, want Decimal128 ${s}`);
        check(isDec(o.prices[0], s) && isDec(o.prices[1], '0.00') && isDec(o.prices[2], `${i}.${i}0`),
          `${where} ${i} prices: ${o.prices.map((x) => `${name(x)} ${x}`).join(', ')}`);
        check(isDec(o.deep[0].amounts[0], s) && isDec(o.deep[0].amounts[1], '1E+3'),
          `${where} ${i} deep.amounts: ${o.deep[0].amounts.map((x) => `${name(x)} ${x}`).join(', ')}`);
        check(name(o.ref) === 'ObjectId' && o.ref.equals(want.ref), `${where} ${i} ref ${name(o.ref)}`);
        check(o.at instanceof Date && o.at.getTime() === want.at.getTime(), `${where} ${i} at ${o.at}`);
        check(JSON.stringify(o.grid) === JSON.stringify(want.grid), `${where} ${i} grid ${JSON.stringify(o.grid)}`);
      }
      if (!h || !l) return;
      const mapA = h.map.get('a');
      check(h.map instanceof Map && isDec(mapA, s) && isDec(h.map.get('b_c'), '-1.000'),
        `hydrated ${i} map: ${name(h.map)} a=${name(mapA)} ${mapA}`);
      check(isDec(l.map.a, s), `lean ${i} map.a: ${name(l.map.a)} ${l.map.a}`);
      check(Buffer.isBuffer(h.data) && h.data.equals(want.data), `hydrated ${i} data ${name(h.data)}`);
      check(l.data instanceof Binary && Buffer.from(l.data.buffer).equals(want.data), `lean ${i} data ${name(l.data)}`);
      check(typeof h.big === 'bigint' && h.big === want.big, `hydrated ${i} big ${typeof h.big} ${h.big}`);
    });
  });

  // ---- the Node driver, promoteValues off: every BSON type as its own class
  const raw = { promoteValues: false, bsonRegExp: true };
  const P = await new MongoClient(PROXY_URI, { ...OPTS, ...raw, maxPoolSize: 1 }).connect();
  const D = await new MongoClient(DIRECT_URI, { ...OPTS, ...raw }).connect();
  const all = [
    {
      _id: new Int32(1),
      dec: DECIMALS.map(d128),
      long: [Long.fromString('9223372036854775807'), Long.fromString('-9223372036854775808'), Long.fromInt(0)],
      i32: [new Int32(-2147483648), new Int32(2147483647)],
      dbl: [new Double(1.5), new Double(-0), new Double(1e308), new Double(5e-324)],
      // (mongo-java-server 1.47.0 drops the connection on binary subtype 5, MD5)
      bin: [new Binary(Buffer.from([1, 2, 3]), 0), new Binary(Buffer.alloc(16, 7), 3)],
      uuid: new UUID('0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1'),
      oid: new BSON.ObjectId('65a1b2c3d4e5f6a7b8c9d0e1'),
      date: [new Date(0), new Date(-62135596800000), new Date(253402300799999)],
      ts: new Timestamp({ t: 1700000000, i: 7 }),
      re: new BSONRegExp('^a.c$', 'imsx'),
      min: new MinKey(),
      max: new MaxKey(),
      nested: { arr: [[d128('1.0'), [Long.fromInt(5)]], { x: [d128('-0.00')] }], nul: null, t: true, s: 'ü✓' },
    },
  ];
  await tcase('Node driver insertOne of a document with every common BSON type through the proxy',
    async (check) => {
      const r = await P.db(db).collection('all').insertOne(all[0]);
      check(r.acknowledged, 'not acknowledged');
    });

  await tcase('Node driver (promoteValues off): the hit equals the direct answer byte for byte and the '
    + 'inserted document, _bsontype names included', async (check) => {
    const find = (c, opts) => c.db(db).collection('all').find({}, opts).toArray();
    const s0 = await stats();
    await find(P);
    const s1 = await stats();
    const hit = await find(P);
    const s2 = await stats();
    const hitRaw = await find(P, { raw: true });
    const s3 = await stats();
    const direct = await find(D);
    const directRaw = await find(D, { raw: true });
    check(delta(s0, s1).misses === 1, `first read: ${JSON.stringify(delta(s0, s1))}`);
    check(delta(s1, s2).hits === 1 && delta(s1, s2).misses === 0,
      `second read not a hit: ${JSON.stringify(delta(s1, s2))}`);
    check(delta(s2, s3).hits === 1, `raw read not a hit: ${JSON.stringify(delta(s2, s3))}`);
    const h = canonStr(hit);
    check(h === canonStr(direct), `hit:    ${short(h)}\ndirect: ${short(canonStr(direct))}`);
    for (const k of Object.keys(all[0])) {
      const got = hit[0] ? canonStr(hit[0][k]) : 'missing';
      const want = canonStr(all[0][k]);
      check(got === want, `${k}: hit ${short(got)}\n${k}: inserted ${short(want)}`);
    }
    check(hitRaw.length === 1 && directRaw.length === 1 && Buffer.compare(hitRaw[0], directRaw[0]) === 0,
      'raw BSON of the hit differs from the direct answer');
    check(h.includes('"Decimal128"') && h.includes('"Long"') && h.includes('"Timestamp"'),
      `types missing: ${short(h)}`);
  });

  await CP.close();
  await CD.close();
  await P.close();
  await D.close();
}

main().then(plan, (e) => {
  process.stdout.write(`not ok - types_check.js ran to its end\n# ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
