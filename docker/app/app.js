'use strict';
/*
 * docker/app/app.js: a small Mongoose app, the kind mongocache is for. It
 * changes nothing but the host and port of its connection string
 * (MONGODB_URI) to go through the proxy, seeds a catalogue, then serves
 * "page views" that repeat the same few queries, and prints what the proxy
 * reports at MONGOCACHE_STATS_URL after each round.
 */
const mongoose = require('mongoose');
const http = require('http');

const uri = process.env.MONGODB_URI || 'mongodb://127.0.0.1:27018/demo';
const statsUrl = process.env.MONGOCACHE_STATS_URL || 'http://127.0.0.1:9180/stats';
const rounds = Number(process.env.DEMO_ROUNDS || 5);

const Author = mongoose.model('Author', new mongoose.Schema({ name: String, born: Date }));
const Book = mongoose.model('Book', new mongoose.Schema({
  title: String,
  genre: String,
  price: Number,
  published: Date,
  author: { type: mongoose.Schema.Types.ObjectId, ref: 'Author' },
}));

function getStats() {
  return new Promise((resolve) => {
    const token = process.env.MONGOCACHE_HTTP_TOKEN;
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    http.get(statsUrl, { headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { resolve(null); } });
    }).on('error', () => resolve(null));
  });
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
  for (let i = 0; i < 60; i++) {
    books.push({
      title: `Book ${i}`,
      genre: genres[i % 3],
      price: 5 + (i % 20),
      published: new Date(Date.UTC(1960 + i, 0, 1)),
      author: authors[i % 3]._id,
    });
  }
  await Book.insertMany(books);
}

async function pageView() {
  const cheap = await Book.find({ price: { $lt: 10 } }).sort({ price: 1, title: 1 }).limit(10).lean();
  const fantasy = await Book.find({ genre: 'fantasy' }).populate('author').lean();
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
  await mongoose.disconnect();
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
