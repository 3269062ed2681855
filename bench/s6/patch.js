// bench/s6/patch.js: the Redis cache for Mongoose that tutorials teach, as
// they teach it (the widely copied "cache.js" of the Node courses and blog
// posts, with node-redis 4's promise API in place of promisify):
// Query.prototype.cache() marks a query; the patched exec looks the query up
// in a Redis hash (hash key: options.key, field: JSON of the filter plus the
// collection name); on a hit it JSON.parses the value and builds model
// documents from it (`new this.model(doc)`); on a miss it runs the query and
// stores JSON.stringify(result), without waiting. Kept faithful on purpose,
// including what it gets wrong: the field ignores projection, sort, limit
// and lean(), so a lean query is answered with hydrated documents; values
// travel as JSON, so BSON types come back only where the schema casts them;
// nothing is invalidated except by the app (clearHash).
'use strict';

function install(mongoose, client) {
  const exec = mongoose.Query.prototype.exec;

  mongoose.Query.prototype.cache = function (options = {}) {
    this.useCache = true;
    this.hashKey = JSON.stringify(options.key || '');
    return this;
  };

  mongoose.Query.prototype.exec = async function () {
    if (!this.useCache) {
      return exec.apply(this, arguments);
    }
    const key = JSON.stringify(
      Object.assign({}, this.getQuery(), { collection: this.mongooseCollection.name }));
    const cacheValue = await client.hGet(this.hashKey, key);
    if (cacheValue) {
      const doc = JSON.parse(cacheValue);
      return Array.isArray(doc) ? doc.map((d) => new this.model(d)) : new this.model(doc);
    }
    const result = await exec.apply(this, arguments);
    client.hSet(this.hashKey, key, JSON.stringify(result));
    return result;
  };

  return {
    clearHash(hashKey) {
      return client.del(JSON.stringify(hashKey));
    },
  };
}

module.exports = { install };
