#!/usr/bin/env node
// bench/s6/layers.js: where the time of one cached findOne({_id}) goes in
// S6, layer by layer, in one Node process (not run by bench/run.sh; see
// bench/README.md, S6). Against one MongoDB URI (mongocache, or the server
// directly) and one Redis, each layer reads the same documents one at a time
// (C=1) and from -c concurrent loops, and prints the p50 and Node's own CPU
// per read (process.cpuUsage: user + system, microseconds):
//   raw     the find command the driver sends, encoded once, written on one
//           socket (TCP_NODELAY) and its reply awaited: the round trip alone
//   driver  db.collection().findOne({_id}) with the driver Mongoose uses
//   lean    Model.findOne({_id}).lean(): Mongoose, no documents built
//   mongoose Model.findOne({_id}): what S6 (b) and (c) measure
//   hget    the Redis HGET the exec patch sends, with its client
//   patch   Model.findOne({_id}).cache(): what S6 (a) measures
//
//   node layers.js --uri mongodb://HOST:PORT/DB --redis redis://HOST:PORT
//                  [--n1 3000] [--n 20000] [-c 16] [--keys 100] [--only raw,driver,...]
'use strict';

const net = require('net');
const path = require('path');
const nodeDir = path.join(__dirname, '..', '..', 'tests', 'integration', 'node', 'node_modules');
const mongoose = require(path.join(nodeDir, 'mongoose'));
const BSON = require(path.join(nodeDir, 'bson'));
const itemsLib = require('./items');

const a = { uri: '', redis: '', n1: 3000, n: 20000, c: 16, keys: 100, only: '' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i], v = process.argv[++i];
  if (v === undefined) usage();
  if (k === '--uri') a.uri = v;
  else if (k === '--redis') a.redis = v;
  else if (k === '--n1') a.n1 = +v;
  else if (k === '--n') a.n = +v;
  else if (k === '-c') a.c = +v;
  else if (k === '--keys') a.keys = +v;
  else if (k === '--only') a.only = v;
  else usage();
}
if (!a.uri || !a.redis) usage();
function usage() {
  process.stderr.write('usage: layers.js --uri URI --redis URL [--n1 N] [--n N] [-c C] [--keys K] [--only L,..]\n');
  process.exit(2);
}

const itemSchema = itemsLib.itemSchema(mongoose, 's6layers');

// One raw connection per loop: the driver's find, requestID patched per send.
function rawConn(port, host, dbName) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    s.setNoDelay(true);
    let buf = Buffer.alloc(0), waiter = null, rid = 1;
    s.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (buf.length >= 16 && buf.length >= buf.readInt32LE(0)) {
        const len = buf.readInt32LE(0), rto = buf.readInt32LE(8), w = waiter;
        buf = buf.subarray(len);
        waiter = null;
        // an answer to this request with one document (an empty batch is ~100 bytes)
        if (w) w(rto === rid - 1 && len > 200);
      }
    });
    s.on('error', reject);
    s.on('connect', () => {
      const msgs = new Map();
      resolve({
        find(id) {
          const key = id.toHexString();
          let m = msgs.get(key);
          if (!m) {
            const body = BSON.serialize({ find: 's6layers', filter: { _id: id }, limit: 1,
                                          singleBatch: true, $db: dbName });
            m = Buffer.alloc(21 + body.length);
            m.writeInt32LE(m.length, 0);
            m.writeInt32LE(2013, 12);
            body.copy(m, 21);
            msgs.set(key, m);
          }
          m.writeInt32LE(rid++, 4);
          return new Promise((res) => { waiter = res; s.write(m); });
        },
        close() { s.destroy(); },
      });
    });
  });
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return Math.round(sorted[Math.min(rank, sorted.length) - 1] / 100) / 10;
}

async function measure(reads, ids, n, c) {
  const lat = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(reads.slice(0, c).map(async (read) => {
    while (next < n) {
      const i = next++;
      const t = process.hrtime.bigint();
      if (!(await read(ids[i % ids.length]))) throw new Error('no document');
      lat.push(Number(process.hrtime.bigint() - t));
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 0.5), rps: Math.round(n / secs),
           node_cpu_us: Math.round(((cpu.user + cpu.system) / n) * 10) / 10 };
}

async function main() {
  const { createClient } = require(path.join(__dirname, 'node_modules', 'redis'));
  const redis = createClient({ url: a.redis });
  redis.on('error', () => {});
  await redis.connect();
  require('./patch').install(mongoose, redis);
  await mongoose.connect(a.uri, { serverSelectionTimeoutMS: 10000, maxPoolSize: Math.max(a.c, 1) });
  const Item = mongoose.model('Item', itemSchema);
  const coll = mongoose.connection.db.collection('s6layers');
  await Item.deleteMany({});
  await redis.flushAll();
  const docs = itemsLib.itemDocs(mongoose, a.keys);
  await Item.insertMany(docs);
  const ids = docs.map((d) => d._id);
  const u = new URL(a.uri);
  const dbName = u.pathname.slice(1) || 'test';
  const raws = [];
  for (let i = 0; i < a.c; i++) raws.push(await rawConn(+u.port || 27017, u.hostname, dbName));
  // The patch's hash field for a query, as patch.js builds it.
  const field = (id) => JSON.stringify(Object.assign({}, { _id: id }, { collection: 's6layers' }));
  const layers = {
    raw: (i) => (id) => raws[i].find(id),
    driver: () => (id) => coll.findOne({ _id: id }),
    lean: () => (id) => Item.findOne({ _id: id }).lean(),
    mongoose: () => (id) => Item.findOne({ _id: id }),
    hget: () => (id) => redis.hGet('""', field(id)),
    patch: () => (id) => Item.findOne({ _id: id }).cache(),
  };
  const want = a.only ? a.only.split(',') : Object.keys(layers);
  for (const id of ids) await Item.findOne({ _id: id }).cache(); // fill Redis and the proxy
  const out = { uri: a.uri, keys: ids.length, concurrency: a.c };
  for (const name of want) {
    const reads = Array.from({ length: a.c }, (_, i) => layers[name](i));
    await measure(reads, ids, Math.min(a.n, 2000), a.c); // warm-up: JIT, a full pool
    await measure(reads, ids, Math.min(a.n1, 1000), 1);
    out[name] = { c1: await measure(reads, ids, a.n1, 1), cN: await measure(reads, ids, a.n, a.c) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  for (const r of raws) r.close();
  await mongoose.disconnect();
  await redis.quit();
}

main().catch((e) => {
  process.stderr.write('layers.js: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
