#!/usr/bin/env node
// tests/integration/tls_node.js PROXY_PORT HTTP_PORT CA_FILE [CLIENT_PEM] [BAD_CLIENT_PEM]
//
// The Node.js driver and Mongoose through a TLS mongocache (run by
// test_tls.sh with NODE_PATH pointing at tests/integration/node/node_modules):
// a write, a read twice (the second a cache hit, per GET /stats), an update
// and the read again, over TLS verified against CA_FILE, with CLIENT_PEM as the
// client certificate when given; with BAD_CLIENT_PEM (from another CA) the
// connection must be refused. Prints unnumbered TAP lines, then its plan.
'use strict';

const mongoose = require('mongoose');
const { MongoClient } = require('mongodb');

const [proxyPort, httpPort, caFile, clientPem, badPem] = process.argv.slice(2);
if (!proxyPort || !httpPort || !caFile) {
  process.stderr.write('usage: tls_node.js PROXY_PORT HTTP_PORT CA_FILE [CLIENT_PEM] [BAD_PEM]\n');
  process.exit(2);
}

const { tcase, plan } = require('./tap.js');

async function hits() {
  const r = await fetch(`http://127.0.0.1:${httpPort}/stats`);
  return (await r.json()).cache.hits;
}
function uri(pem) {
  let u = `mongodb://localhost:${proxyPort}/?directConnection=true&tls=true` +
    `&tlsCAFile=${encodeURIComponent(caFile)}`;
  if (pem) u += `&tlsCertificateKeyFile=${encodeURIComponent(pem)}`;
  return u;
}
const OPTS = { serverSelectionTimeoutMS: 5000 };

async function main() {
  await tcase(`Node driver over TLS${clientPem ? ' with a client certificate' : ''}: ` +
    'write, reads (a hit), update', async (check) => {
    const client = new MongoClient(uri(clientPem), OPTS);
    try {
      const coll = client.db('tlsnode').collection('items');
      await coll.deleteMany({});
      await coll.insertMany([1, 2, 3, 4, 5].map((i) => ({ _id: i, v: i })));
      const before = await hits();
      const a = await coll.find({ v: { $lt: 4 } }).sort({ _id: 1 }).toArray();
      const b = await coll.find({ v: { $lt: 4 } }).sort({ _id: 1 }).toArray();
      check(JSON.stringify(a.map((d) => d.v)) === '[1,2,3]', `first read ${JSON.stringify(a)}`);
      check(JSON.stringify(a) === JSON.stringify(b), `second read ${JSON.stringify(b)}`);
      check((await hits()) > before, 'no cache hit');
      await coll.updateOne({ _id: 2 }, { $set: { v: 22 } });
      const c = await coll.find({ v: { $lt: 4 } }).sort({ _id: 1 }).toArray();
      check(JSON.stringify(c.map((d) => d.v)) === '[1,3]', `after the update ${JSON.stringify(c)}`);
    } finally {
      await client.close();
    }
  });
  await tcase(`Mongoose over TLS${clientPem ? ' with a client certificate' : ''}: ` +
    'create, find twice (a hit), update', async (check) => {
    const conn = await mongoose.createConnection(uri(clientPem), OPTS).asPromise();
    try {
      const Item = conn.model('TlsItem', new mongoose.Schema({ name: String, n: Number }));
      await Item.deleteMany({});
      await Item.create([{ name: 'a', n: 1 }, { name: 'b', n: 2 }]);
      const before = await hits();
      const a = await Item.find({ n: { $gte: 1 } }).sort({ n: 1 }).lean();
      const b = await Item.find({ n: { $gte: 1 } }).sort({ n: 1 }).lean();
      check(a.map((d) => d.name).join() === 'a,b', `first find ${JSON.stringify(a)}`);
      check(JSON.stringify(a) === JSON.stringify(b), `second find ${JSON.stringify(b)}`);
      check((await hits()) > before, 'no cache hit');
      await Item.updateOne({ name: 'a' }, { $set: { n: 0 } });
      const c = await Item.find({ n: { $gte: 1 } }).sort({ n: 1 }).lean();
      check(c.map((d) => d.name).join() === 'b', `after the update ${JSON.stringify(c)}`);
    } finally {
      await conn.close();
    }
  });
  if (badPem) {
    await tcase('Node driver with a certificate from another CA: refused', async (check) => {
      const client = new MongoClient(uri(badPem), { serverSelectionTimeoutMS: 1000 });
      try {
        await client.db('admin').command({ ping: 1 });
        check(false, 'ping answered');
      } catch (e) {
        check(e.name !== 'TypeError', `unexpected ${e}`);
      } finally {
        await client.close();
      }
    });
  }
  plan();
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack}\n`);
  process.exit(1);
});
