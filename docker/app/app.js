'use strict';
/*
 * docker/app/app.js: a small Mongoose app, the kind mongocache is for. It
 * changes nothing but the host and port of its connection string
 * (MONGODB_URI) to go through the proxy, seeds a catalogue, then serves
 * "page views" that repeat the same few queries, and prints what the proxy
 * reports at MONGOCACHE_STATS_URL after each round. At the end it prints
 * the index advice the proxy gives (MONGOCACHE_ADVICE_URL) for the page's
 * queries, none of which has an index.
 */
const mongoose = require('mongoose');
const http = require('http');

const uri = process.env.MONGODB_URI || 'mongodb://127.0.0.1:27018/demo';
const statsUrl = process.env.MONGOCACHE_STATS_URL || 'http://127.0.0.1:9180/stats';
const adviceUrl = process.env.MONGOCACHE_ADVICE_URL || statsUrl.replace(/\/stats$/, '/advice');
const adviceWaitMs = Number(process.env.DEMO_ADVICE_WAIT_MS || 15000);
const rounds = Number(process.env.DEMO_ROUNDS || 5);

const Author = mongoose.model('Author', new mongoose.Schema({ name: String, born: Date }));
const Book = mongoose.model('Book', new mongoose.Schema({
  title: String,
  genre: String,
  price: Number,
  published: Date,
  author: { type: mongoose.Schema.Types.ObjectId, ref: 'Author' },
}));

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

async function seed() {
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

async function pageView() {
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

async function main() {
  await mongoose.connect(uri, { serverSelectionTimeoutMS: 10000 });
  console.log(`connected to ${uri.replace(/\/\/[^@/]*@/, '//<credentials>@')}`);
  await seed();
  for (let round = 1; round <= rounds; round++) {
    let result;
    for (let i = 0; i < 10; i++) result = await pageView();
    const stats = await getStats();
    console.log(`round ${round}: 10 page views (${result.cheap} cheap books, ${result.fantasy} fantasy, ` +
      `${result.count} sci-fi, ${result.genres} genres); ${describe(stats)}`);
  }
  printAdvice(await getAdvice());
  await mongoose.disconnect();
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
