#!/usr/bin/env node
// bench/s6/s6.js: BENCH scenario S6, a small Mongoose app that reads the same
// documents again and again, run three ways by bench/run.sh:
//   --mode patch  (a) the Redis cache tutorials teach: Query.prototype.exec
//                 patched to keep JSON.stringify(result) in a Redis hash,
//                 keyed by the query and the collection (patch.js)
//   --mode plain  (b) plain Mongoose, URI pointing at mongocache
//                 (c) plain Mongoose, URI pointing at the database directly
//
//   node s6.js --mode patch|plain --uri URI [--redis redis://...] [--label S6a]
//              [--keys 100] [--n1 2000] [--n 20000] [--seconds 5] [-c 16]
//              [--warm 2000] [--stats-url http://.../stats] [--pids NAME=PID,...]
//              [--no-seed]
//
// It seeds --keys documents (an ObjectId ref, a Date, and a Mixed field
// holding a Date and an ObjectId), reads each once (the cache filled), then
// --warm more from -c loops (not measured, the same on every side: compiled
// code, and the driver's pool grown to -c connections, so no connection
// handshake falls in a measurement), then measures findOne({_id}) over the
// keys: --n1 requests one at a time (latency: p50, p99) and --n requests from
// -c concurrent loops (throughput), each capped at --seconds. Each of the two
// reports the CPU time per request of this process (node) and of every
// --pids process (all its threads), in microseconds. Then it reads one document back
// the way the app would (cached) and checks the types Mongoose hands back,
// for a hydrated and a lean query; last, it updates one document through
// the app and reads it again (cached): is the write seen? One JSON line.
'use strict';

const fs = require('fs');
const path = require('path');
// Mongoose is the one tests/integration/node installs (tests/setup.sh).
const nodeDir = path.join(__dirname, '..', '..', 'tests', 'integration', 'node', 'node_modules');
const mongoose = require(path.join(nodeDir, 'mongoose'));
const itemsLib = require('./items');
const { ObjectId } = mongoose.Types;

function args() {
  const a = { mode: '', uri: '', redis: '', label: '', keys: 100, n1: 2000, n: 20000,
              seconds: 5, c: 16, statsUrl: '', seed: true, warm: 2000, pids: [] };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i];
    const next = () => { if (i + 1 >= v.length) usage(); return v[++i]; };
    if (k === '--mode') a.mode = next();
    else if (k === '--uri') a.uri = next();
    else if (k === '--redis') a.redis = next();
    else if (k === '--label') a.label = next();
    else if (k === '--keys') a.keys = +next();
    else if (k === '--n1') a.n1 = +next();
    else if (k === '--n') a.n = +next();
    else if (k === '--seconds') a.seconds = +next();
    else if (k === '-c') a.c = +next();
    else if (k === '--stats-url') a.statsUrl = next();
    else if (k === '--no-seed') a.seed = false;
    else if (k === '--warm') a.warm = +next();
    else if (k === '--pids') {
      a.pids = next().split(',').filter(Boolean).map((x) => x.split('='));
      if (a.pids.some((x) => x.length !== 2 || !/^[0-9]+$/.test(x[1]))) usage();
    }
    else usage();
  }
  if (!['patch', 'plain'].includes(a.mode) || !a.uri || (a.mode === 'patch' && !a.redis)) usage();
  return a;
}
function usage() {
  process.stderr.write('usage: s6.js --mode patch|plain --uri URI [--redis URL] [--label L] ' +
                       '[--keys K] [--n1 N] [--n N] [--seconds S] [-c C] [--warm N] [--stats-url U] ' +
                       '[--pids NAME=PID,...] [--no-seed]\n');
  process.exit(2);
}

const itemSchema = itemsLib.itemSchema(mongoose, 's6items');

async function stats(url) {
  if (!url) return null;
  try {
    const r = await fetch(url);
    const c = (await r.json()).cache || {};
    const off = (c.bypass_reasons && c.bypass_reasons.cache_off) || 0;
    return { hits: c.hits || 0, misses: c.misses || 0, bypassed: (c.bypassed || 0) + off };
  } catch (e) {
    return null;
  }
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return Math.round(sorted[Math.min(rank, sorted.length) - 1] / 100) / 10; // us, 0.1
}

// CPU time of each --pids process, in microseconds (the run time of all its
// threads, /proc/PID/task/*/schedstat, in ns); null for one that cannot be read.
function procCpu(pids) {
  const out = {};
  for (const [name, pid] of pids) {
    try {
      let ns = 0;
      for (const t of fs.readdirSync('/proc/' + pid + '/task')) {
        try {
          ns += +fs.readFileSync('/proc/' + pid + '/task/' + t + '/schedstat', 'latin1').split(' ')[0];
        } catch (e) { /* the thread ended */ }
      }
      out[name] = ns / 1000;
    } catch (e) {
      out[name] = null;
    }
  }
  return out;
}

// n requests from c loops, at most `seconds`; latencies in ns. cpu_us: CPU
// microseconds per request of node and of each `pids` process.
async function measure(read, ids, n, c, seconds, pids = []) {
  const lat = [];
  const cpu0 = process.cpuUsage();
  const proc0 = procCpu(pids);
  let next = 0;
  let errors = 0;
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  async function loop() {
    while (next < n && process.hrtime.bigint() < deadline) {
      const i = next++;
      const t = process.hrtime.bigint();
      try {
        const d = await read(ids[i % ids.length]);
        if (!d) errors++;
      } catch (e) {
        errors++;
      }
      lat.push(Number(process.hrtime.bigint() - t));
    }
  }
  await Promise.all(Array.from({ length: c }, loop));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const proc1 = procCpu(pids);
  const perReq = (us) => (lat.length && us !== null ? Math.round((us / lat.length) * 10) / 10 : null);
  const cpuUs = { node: perReq(cpu.user + cpu.system) };
  for (const [name] of pids) {
    cpuUs[name] = proc0[name] === null || proc1[name] === null ? null : perReq(proc1[name] - proc0[name]);
  }
  lat.sort((x, y) => x - y);
  return { n: lat.length, seconds: Math.round(secs * 1000) / 1000,
           rps: secs > 0 ? Math.round(lat.length / secs) : 0,
           p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors, cpu_us: cpuUs };
}

const typeName = (v) => (v === null || v === undefined ? String(v) : v.constructor ? v.constructor.name : typeof v);

function typeChecks(doc, lean) {
  const m = (doc && doc.meta) || {};
  const checks = {
    _id: doc && doc._id instanceof ObjectId,
    owner: doc && doc.owner instanceof ObjectId,
    createdAt: doc && doc.createdAt instanceof Date,
    'meta.seenAt': m.seenAt instanceof Date,
    'meta.by': m.by instanceof ObjectId,
  };
  if (lean) checks.lean_is_plain = !!doc && typeof doc.save !== 'function';
  const got = {};
  for (const k of ['_id', 'owner', 'createdAt']) got[k] = typeName(doc && doc[k]);
  got['meta.seenAt'] = typeName(m.seenAt);
  got['meta.by'] = typeName(m.by);
  return { ok: Object.values(checks).every(Boolean), checks, got };
}

async function main() {
  const a = args();
  let redis = null;
  if (a.mode === 'patch') {
    const { createClient } = require(path.join(__dirname, 'node_modules', 'redis'));
    redis = createClient({ url: a.redis });
    redis.on('error', () => {});
    await redis.connect();
    require('./patch').install(mongoose, redis);
  }
  await mongoose.connect(a.uri, { serverSelectionTimeoutMS: 10000, maxPoolSize: Math.max(a.c, 1) });
  const Item = mongoose.model('Item', itemSchema);
  const ids = [];
  if (a.seed) {
    await Item.deleteMany({});
    if (redis) await redis.flushAll();
    const docs = itemsLib.itemDocs(mongoose, a.keys);
    await Item.insertMany(docs);
    for (const d of docs) ids.push(d._id);
  } else {
    for (const d of await Item.find({}, { _id: 1 }).sort({ n: 1 }).lean()) ids.push(d._id);
  }
  const cached = (q) => (a.mode === 'patch' ? q.cache() : q);
  const read = (id) => cached(Item.findOne({ _id: id }));

  for (const id of ids) await read(id); // every key read once (cache filled)
  if (a.warm > 0) await measure(read, ids, a.warm, a.c, a.seconds); // warm-up, not measured
  const s0 = await stats(a.statsUrl);
  const one = await measure(read, ids, a.n1, 1, a.seconds, a.pids);
  const many = await measure(read, ids, a.n, a.c, a.seconds, a.pids);
  const s1 = await stats(a.statsUrl);

  // Read back as the app would, once more through the cache.
  const hydrated = await read(ids[0]);
  await cached(Item.findOne({ _id: ids[1] }).lean()); // fill (patch: Redis; mongocache: cache)
  const lean = await cached(Item.findOne({ _id: ids[1] }).lean());
  const th = typeChecks(hydrated, false);
  const tl = typeChecks(lean, true);

  // A write through the app, then the same cached read: is the write seen?
  const target = ids[2 % ids.length];
  await read(target); // cached
  await Item.updateOne({ _id: target }, { $set: { n: -1 } });
  const after = await read(target);
  const writeSeen = !!after && after.n === -1;

  let hitRatio = null;
  if (s0 && s1) {
    const h = s1.hits - s0.hits, all = h + (s1.misses - s0.misses) + (s1.bypassed - s0.bypassed);
    hitRatio = all > 0 ? Math.round((h / all) * 10000) / 10000 : null;
  }
  const out = {
    s6: a.label || a.mode, mode: a.mode, keys: ids.length,
    c1: one, concurrency: a.c, cN: many, hit_ratio: hitRatio,
    types_ok: th.ok && tl.ok, types_hydrated: th, types_lean: tl, write_seen: writeSeen,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  await mongoose.disconnect();
  if (redis) await redis.quit();
}

main().catch((e) => {
  process.stderr.write('s6.js: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
