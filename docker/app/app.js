'use strict';
/*
 * docker/app/app.js: a small Mongoose app, the kind mongocache is for. It
 * changes nothing but the host and port of its connection string
 * (MONGODB_URI) to go through the proxy, seeds a catalogue, then serves
 * "page views" that repeat the same few queries, and prints what the proxy
 * reports at MONGOCACHE_STATS_URL after each round. At the end it prints
 * the index advice the proxy gives (MONGOCACHE_ADVICE_URL) for the page's
 * queries, none of which has an index.
 *
 * With MONGODB_URI_B (and MONGOCACHE_STATS_URL_B) it runs the compose
 * stack's picture: two proxies sharing one Redis tier. Each page view is
 * made through both, both proxies' hit rates are printed after each round,
 * and a write through the first is read back through the second, which
 * must not serve its cached copy (exit 1 if it does).
 *
 * DEMO_ROUNDS (default 5; 0: until stopped), DEMO_ROUND_PAUSE_MS (pause
 * between rounds), DEMO_HEALTH_FILE (touched after every good round: the
 * container's healthcheck reads its age).
 */
const mongoose = require('mongoose');
const http = require('http');
const fs = require('fs');

const uri = process.env.MONGODB_URI || 'mongodb://127.0.0.1:27018/demo';
const statsUrl = process.env.MONGOCACHE_STATS_URL || 'http://127.0.0.1:9180/stats';
const adviceUrl = process.env.MONGOCACHE_ADVICE_URL || statsUrl.replace(/\/stats$/, '/advice');
const adviceWaitMs = Number(process.env.DEMO_ADVICE_WAIT_MS || 15000);
const rounds = Number(process.env.DEMO_ROUNDS || 5);
/* The second proxy (two-proxy mode) and its stats. */
const uriB = process.env.MONGODB_URI_B || '';
const statsUrlB = process.env.MONGOCACHE_STATS_URL_B || '';
const pauseMs = Number(process.env.DEMO_ROUND_PAUSE_MS || 0);
const healthFile = process.env.DEMO_HEALTH_FILE || '';

const authorSchema = new mongoose.Schema({ name: String, born: Date });
const bookSchema = new mongoose.Schema({
  title: String,
  genre: String,
  price: Number,
  published: Date,
  author: { type: mongoose.Schema.Types.ObjectId, ref: 'Author' },
});

/* The models on one connection (one proxy). */
function models(conn) {
  return { Author: conn.model('Author', authorSchema), Book: conn.model('Book', bookSchema) };
}

const redact = (u) => u.replace(/\/\/[^@/]*@/, '//<credentials>@');

function getJson(url) {
  return new Promise((resolve) => {
    const token = process.env.MONGOCACHE_HTTP_TOKEN;
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    http.get(url, { headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { resolve(null); } });
    }).on('error', () => resolve(null));
  });
}

const getStats = () => getJson(statsUrl);

/* The proxy's advice, once its advisor has looked at this run's queries (bounded wait). */
async function getAdvice() {
  const deadline = Date.now() + adviceWaitMs;
  let advice = null;
  while (Date.now() < deadline) {
    advice = await getJson(adviceUrl);
    if (advice && advice.advice && advice.advice.length > 0) return advice;
    await new Promise((r) => setTimeout(r, 500));
  }
  return advice;
}

function printAdvice(advice) {
  if (!advice || !advice.advice) {
    console.log('index advice unavailable');
    return;
  }
  if (advice.advice.length === 0) {
    console.log(`no index advice yet (advisor: ${advice.advisor && advice.advisor.state})`);
    return;
  }
  console.log(`index advice (${advice.advice.length}), most server time first:`);
  for (const a of advice.advice) {
    console.log(`  ${a.namespace}: ${a.reason}, ${a.queries} queries, ${a.server_ms.toFixed(1)} ms ` +
      `of server time, ${a.documents} documents; serves:`);
    for (const s of a.shapes) console.log(`      ${s}`);
    console.log(`    mongosh:  ${a.mongosh}`);
    console.log(`    Mongoose: ${a.mongoose}`);
  }
}

function describe(stats) {
  if (!stats) return 'stats unavailable';
  const c = stats.counters || {};
  const cache = stats.cache;
  const rate = cache && typeof cache.hit_ratio === 'number'
    ? `hit rate ${(cache.hit_ratio * 100).toFixed(1)}% (${cache.hits} hits, ${cache.misses} misses)`
    : 'hit rate n/a (the cache is off)';
  return `${rate}; ${c.requests} requests reached the proxy, ${c.replies} went to the server`;
}

async function seed({ Author, Book }) {
  await Book.deleteMany({});
  await Author.deleteMany({});
  const authors = await Author.insertMany([
    { name: 'Ursula K. Le Guin', born: new Date('1929-10-21') },
    { name: 'Italo Calvino', born: new Date('1923-10-15') },
    { name: 'Octavia E. Butler', born: new Date('1947-06-22') },
  ]);
  const genres = ['fantasy', 'fiction', 'science fiction'];
  const books = [];
  for (let i = 0; i < 2000; i++) {
    books.push({
      title: `Book ${i}`,
      genre: genres[i % 3],
      price: 5 + (i % 20),
      published: new Date(Date.UTC(1960 + (i % 60), i % 12, 1)),
      author: authors[i % 3]._id,
    });
  }
  await Book.insertMany(books);
}

async function pageView({ Book }) {
  const cheap = await Book.find({ price: { $lt: 10 } }).sort({ price: 1, title: 1 }).limit(10).lean();
  const fantasy = await Book.find({ genre: 'fantasy', price: { $lt: 12 } }).sort({ published: -1 })
    .limit(20).populate('author').lean();
  const count = await Book.countDocuments({ genre: 'science fiction' });
  const genres = await Book.distinct('genre');
  if (!(fantasy[0].author._id instanceof mongoose.Types.ObjectId) || !(fantasy[0].published instanceof Date)) {
    throw new Error('BSON types were lost');
  }
  return { cheap: cheap.length, fantasy: fantasy.length, count, genres: genres.length };
}

function redisHits(stats) {
  const r = stats && stats.cache && (stats.cache.redis || stats.redis);
  return r && r.counters && typeof r.counters.redis_hits === 'number' ? r.counters.redis_hits : null;
}

/* describe() plus how many of the hits Redis served (two-proxy mode). */
function describeShared(stats) {
  const rh = redisHits(stats);
  return rh === null ? describe(stats) : `${describe(stats)}, ${rh} hits from Redis`;
}

/*
 * A write through proxy A, then the same read through proxy B, which had it
 * cached: B must answer with the new value (the write bumped the generation
 * in the shared Redis tier). Prints what B's /stats counted for each read.
 */
async function crossProxyCheck(a, b) {
  const filter = { title: 'Book 7' };
  const readB = async () => (await b.Book.findOne(filter).lean()).price;
  const count = (stats, name) => (stats && stats.cache ? stats.cache[name] : NaN);
  /* what B's /stats counted for one read: a hit, a miss, or neither (not cached) */
  const kind = (x, y) => (count(y, 'hits') > count(x, 'hits') ? 'a hit'
    : count(y, 'misses') > count(x, 'misses') ? 'a miss' : 'not cached');
  await readB();
  const s0 = await getJson(statsUrlB);
  const before = await readB();
  const s1 = await getJson(statsUrlB);
  await a.Book.updateOne(filter, { $inc: { price: 100 } });
  const after = await readB();
  const s2 = await getJson(statsUrlB);
  const afterKind = kind(s1, s2);
  console.log(`write through A, read back through B: price ${before} before, ${after} after ` +
    `(expected ${before + 100}); B's read before the write was ${kind(s0, s1)}, ` +
    `after it ${afterKind === 'a miss' ? 'a miss (invalidated)' : afterKind}`);
  if (after !== before + 100) throw new Error('proxy B served a stale read after a write through proxy A');
}

async function main() {
  const connA = mongoose.createConnection(uri, { serverSelectionTimeoutMS: 10000 });
  await connA.asPromise();
  console.log(`connected to ${redact(uri)}`);
  const a = models(connA);
  let connB = null;
  let b = null;
  if (uriB) {
    connB = mongoose.createConnection(uriB, { serverSelectionTimeoutMS: 10000 });
    await connB.asPromise();
    console.log(`connected to ${redact(uriB)}`);
    b = models(connB);
  }
  await seed(a);
  const reportRound = rounds > 0 ? rounds : 5;
  for (let round = 1; rounds <= 0 || round <= rounds; round++) {
    let result;
    if (!b) {
      for (let i = 0; i < 10; i++) result = await pageView(a);
      const stats = await getStats();
      console.log(`round ${round}: 10 page views (${result.cheap} cheap books, ${result.fantasy} fantasy, ` +
        `${result.count} sci-fi, ${result.genres} genres); ${describe(stats)}`);
    } else {
      for (let i = 0; i < 10; i++) {
        result = await pageView(a);
        await pageView(b);
      }
      const [sa, sb] = await Promise.all([getStats(), getJson(statsUrlB)]);
      console.log(`round ${round}: 10 page views through each proxy (${result.cheap} cheap books, ` +
        `${result.fantasy} fantasy, ${result.count} sci-fi, ${result.genres} genres)`);
      console.log(`  proxy A: ${describeShared(sa)}`);
      console.log(`  proxy B: ${describeShared(sb)}`);
    }
    if (healthFile) fs.writeFileSync(healthFile, `${new Date().toISOString()} round ${round}\n`);
    if (round === reportRound) {
      if (b) await crossProxyCheck(a, b);
      printAdvice(await getAdvice());
    }
    if (pauseMs > 0 && (rounds <= 0 || round < rounds)) await new Promise((r) => setTimeout(r, pauseMs));
  }
  await connA.close();
  if (connB) await connB.close();
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
