// bench/s6/items.js: S6's model and documents, shared by s6.js and
// layers.js: an ObjectId ref, a Date, and a Mixed field holding a Date and
// an ObjectId (the types a JSON cache loses).
'use strict';

function itemSchema(mongoose, collection) {
  const { Schema } = mongoose;
  return new Schema({
    title: String,
    owner: { type: Schema.Types.ObjectId, ref: 'User' },
    createdAt: Date,
    meta: Schema.Types.Mixed, // { seenAt: Date, by: ObjectId }
    n: Number,
  }, { collection, versionKey: false });
}

// `keys` documents, each with a new _id.
function itemDocs(mongoose, keys) {
  const { ObjectId } = mongoose.Types;
  const docs = [];
  for (let k = 0; k < keys; k++) {
    docs.push({ _id: new ObjectId(), title: 'item ' + k + ' ' + 'x'.repeat(100),
                owner: new ObjectId(), createdAt: new Date(Date.UTC(2026, 0, 1) + k * 1000),
                meta: { seenAt: new Date(Date.UTC(2026, 5, 1) + k), by: new ObjectId() }, n: k });
  }
  return docs;
}

module.exports = { itemSchema, itemDocs };
