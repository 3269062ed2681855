'use strict';
// tests/integration/node/compression_transcript.js: the workload of
// test_compression.sh with the official Node.js driver: one line per step
// with what came back (canonical extended JSON), the same steps as
// compression_check.py's driver mode. Usage:
//   node compression_transcript.js URI DB [COMPRESSOR]
// COMPRESSOR (zlib, zstd, snappy) becomes the driver's `compressors` option;
// zstd and snappy need the optional packages @mongodb-js/zstd and snappy
// (package.json), which the driver loads itself.
const { MongoClient, BSON } = require('mongodb');

const { EJSON, Binary } = BSON;

const [uri, dbName, compressor] = process.argv.slice(2);

function show(step, value) {
  console.log(`step=${step} ${EJSON.stringify(value, { relaxed: false })}`);
}

(async () => {
  const opts = { serverSelectionTimeoutMS: 10000 };
  if (compressor) opts.compressors = [compressor];
  const client = new MongoClient(uri, opts);
  await client.connect();
  const coll = client.db(dbName).collection('items');
  await coll.drop().catch(() => {});
  const base = Date.UTC(2020, 0, 1);
  const docs = [];
  for (let i = 0; i < 40; i++) {
    docs.push({
      _id: i, name: `item-${String(i).padStart(2, '0')}`, qty: i * 3, price: i + 0.25,
      at: new Date(base + i * 86400000), tags: [`t${i % 4}`, 'all'], dim: { w: i, h: i * 2 },
      blob: new Binary(Buffer.alloc(8, i)),
    });
  }
  const ins = await coll.insertMany(docs);
  show('insert', Object.values(ins.insertedIds));
  show('find', await coll.find({ qty: { $gt: 30 } }).sort({ _id: 1 }).toArray());
  show('find_again', await coll.find({ qty: { $gt: 30 } }).sort({ _id: 1 }).toArray());
  show('aggregate', await coll.aggregate([{ $match: { qty: { $lt: 60 } } },
    { $group: { _id: null, n: { $sum: 1 }, total: { $sum: '$qty' } } }]).toArray());
  show('count', await coll.countDocuments({ tags: 't1' }));
  show('distinct', (await coll.distinct('name', { qty: { $lt: 10 } })).sort());
  const u = await coll.updateOne({ _id: 35 }, { $set: { name: 'changed' } });
  show('update', [u.matchedCount, u.modifiedCount]);
  show('find_after_write', await coll.find({ qty: { $gt: 30 } }).sort({ _id: 1 }).toArray());
  const big = 'x'.repeat(200000);
  await coll.insertOne({ _id: 1000, big });
  const got = await coll.findOne({ _id: 1000 });
  show('big', [got.big.length, got.big === big]);
  show('big_again', [(await coll.findOne({ _id: 1000 })).big.length]);
  // more than one batch: drained by the proxy, served from its own cursor, then again
  const many = client.db(dbName).collection('many');
  await many.drop().catch(() => {});
  await many.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: i, v: `m${i}` })));
  show('many', (await many.find({}).sort({ _id: 1 }).toArray()).map((d) => d._id));
  show('many_again', (await many.find({}).sort({ _id: 1 }).toArray()).map((d) => d._id));
  await many.drop();
  const d = await coll.deleteMany({ qty: { $gte: 60 } });
  show('delete', d.deletedCount);
  show('count_after', await coll.countDocuments({}));
  await coll.drop();
  await client.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
