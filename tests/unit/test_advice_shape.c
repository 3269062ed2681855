/*
 * tests/unit/test_advice_shape.c: owns the table of query shapes: for each
 * command (written as JSON, with the OP_MSG document sequence when the
 * statements travel in one), the shapes advice_shape_extract derives (as
 * advice_shape_display shows them) and the index advice_recommend_index
 * gives each ("-" for none). Every row also checks what holds for every
 * shape: its stored hash is advice_shape_hash of it, a copy displays and
 * hashes the same, and out->query points into the command. Then the bounds
 * (paths, path length, sort keys, nesting, $or branches, elements visited),
 * value independence of the hash and path-order independence, and the
 * statements' query/statement bookkeeping. Real traffic and mutations are
 * in test_advice_fixtures.c.
 */
#include "config.h"

#include "advice/recommend.h"
#include "advice/shape.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/cmd.h"
#include "wire/doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WANT 6
#define MAX_SEQ 4

struct row {
    const char *name;
    const char *cmd;             /* JSON; '$str_regex' becomes a $regex key holding a string */
    const char *seq_id;          /* the kind-1 section, or NULL */
    const char *seq[MAX_SEQ];    /* its documents */
    const char *want[MAX_WANT];  /* the displays, in order */
    const char *index[MAX_WANT]; /* advice_recommend_index's default name, or "-" */
};

static const struct row rows[] = {
    /* ---- find: equality, order, ESR ---- */
    {"find equality",
     "{'find': 'books', 'filter': {'author': 'Le Guin'}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {author: ?}"},
     {"author_1"}},
    {"find equality + range + sort (ESR)",
     "{'find': 'books', 'filter': {'author': 'x', 'year': {'$gte': 1990}}, 'sort': {'year': -1}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {author: ?, year: {$gte: ?}} sort {year: -1}"},
     {"author_1_year_-1"}},
    {"find equality paths keep their order",
     "{'find': 'books', 'filter': {'b': 1, 'a': 2}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {b: ?, a: ?}"},
     {"b_1_a_1"}},
    {"find $eq is an equality",
     "{'find': 'books', 'filter': {'a': {'$eq': 5}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    {"find null is an equality",
     "{'find': 'books', 'filter': {'a': null}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    {"find $in without sort counts as equality",
     "{'find': 'books', 'filter': {'a': {'$in': [1, 2]}, 'b': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$in: ?}, b: ?}"},
     {"a_1_b_1"}},
    {"find $in with sort counts as a range",
     "{'find': 'books', 'filter': {'a': {'$in': [1, 2]}, 'b': 1}, 'sort': {'c': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$in: ?}, b: ?} sort {c: 1}"},
     {"b_1_c_1_a_1"}},
    {"find $in alone with sort: sort first",
     "{'find': 'books', 'filter': {'author': {'$in': ['a', 'b']}}, 'sort': {'year': -1}, '$db': "
     "'app'}",
     NULL,
     {NULL},
     {"find app.books {author: {$in: ?}} sort {year: -1}"},
     {"year_-1_author_1"}},
    {"find range with two bounds",
     "{'find': 'books', 'filter': {'price': {'$gt': 5, '$lt': 10}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {price: {$gt: ?, $lt: ?}}"},
     {"price_1"}},
    {"find $lte",
     "{'find': 'books', 'filter': {'price': {'$lte': 5}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {price: {$lte: ?}}"},
     {"price_1"}},
    {"find two ranges: only the first is indexed",
     "{'find': 'books', 'filter': {'a': {'$gt': 1}, 'b': {'$lt': 2}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$gt: ?}, b: {$lt: ?}}"},
     {"a_1"}},
    {"find equality, sort, then one range",
     "{'find': 'books', 'filter': {'s': 'x', 'a': {'$gt': 1}, 'b': {'$lt': 2}}, 'sort': {'d': 1}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {s: ?, a: {$gt: ?}, b: {$lt: ?}} sort {d: 1}"},
     {"s_1_d_1_a_1"}},
    {"find sort key that is also an equality",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'a': 1, 'b': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {a: 1, b: -1}"},
     {"a_1_b_-1"}},
    {"find sort only",
     "{'find': 'books', 'filter': {}, 'sort': {'year': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {} sort {year: -1}"},
     {"year_-1"}},
    {"find sort with mixed directions",
     "{'find': 'books', 'sort': {'a': 1, 'b': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {} sort {a: 1, b: -1}"},
     {"a_1_b_-1"}},
    {"find range and sort on the same path",
     "{'find': 'books', 'filter': {'year': {'$gte': 2000}}, 'sort': {'year': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {year: {$gte: ?}} sort {year: -1}"},
     {"year_-1"}},
    {"find empty filter, no sort: no shape",
     "{'find': 'books', 'filter': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"find no filter at all: no shape",
     "{'find': 'books', 'limit': 5, '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"find projection, limit, skip, batchSize are ignored",
     "{'find': 'books', 'filter': {'a': 1}, 'projection': {'a': 1, '_id': 0}, 'limit': 5, 'skip': "
     "2, "
     "'batchSize': 10, 'singleBatch': true, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    {"find whole subdocument is one equality",
     "{'find': 'books', 'filter': {'address': {'city': 'x', 'zip': 1}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {address: ?}"},
     {"address_1"}},
    {"find nested operator-looking key inside a subdocument stays a value",
     "{'find': 'books', 'filter': {'meta': {'a': {'$gt': 1}}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {meta: ?}"},
     {"meta_1"}},
    {"find array compared whole",
     "{'find': 'books', 'filter': {'tags': ['a', 'b']}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {tags: ?}"},
     {"tags_1"}},
    {"find DBRef-like document is a value",
     "{'find': 'books', 'filter': {'owner': {'$ref': 'users', '$id': 1}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {owner: ?}"},
     {"owner_1"}},
    {"find dotted path",
     "{'find': 'books', 'filter': {'a.b': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {\"a.b\": ?}"},
     {"a.b_1"}},
    {"find path with a space is quoted",
     "{'find': 'books', 'filter': {'first name': 'x'}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {\"first name\": ?}"},
     {"first name_1"}},
    {"find $comment at top level is ignored",
     "{'find': 'books', 'filter': {'a': 1, '$comment': 'why'}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    {"find other database and collection",
     "{'find': 'orders', 'filter': {'sku': 'x'}, '$db': 'shop'}",
     NULL,
     {NULL},
     {"find shop.orders {sku: ?}"},
     {"sku_1"}},
    /* ---- unindexable ---- */
    {"find $ne",
     "{'find': 'books', 'filter': {'status': {'$ne': 'x'}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {status: {$ne: ?}}"},
     {"-"}},
    {"find $nin",
     "{'find': 'books', 'filter': {'status': {'$nin': ['x']}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {status: {$nin: ?}}"},
     {"-"}},
    {"find $ne next to an equality",
     "{'find': 'books', 'filter': {'a': 1, 'b': {'$ne': 2}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, b: {$ne: ?}}"},
     {"a_1"}},
    {"find $exists false",
     "{'find': 'books', 'filter': {'a': {'$exists': false}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$exists: ?}}"},
     {"-"}},
    {"find $exists true",
     "{'find': 'books', 'filter': {'a': {'$exists': true}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$exists: ?}}"},
     {"-"}},
    {"find $not",
     "{'find': 'books', 'filter': {'a': {'$not': {'$gt': 5}}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$not: ?}}"},
     {"-"}},
    {"find $type, $size, $all, $mod",
     "{'find': 'books', 'filter': {'a': {'$type': 'string'}, 'b': {'$size': 2}, 'c': {'$all': "
     "[1]}, "
     "'d': {'$mod': [2, 0]}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$type: ?}, b: {$size: ?}, c: {$all: ?}, d: {$mod: ?}}"},
     {"-"}},
    {"find geo $near",
     "{'find': 'places', 'filter': {'loc': {'$near': [1, 2], '$maxDistance': 5}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.places {loc: {$geo: ?}}"},
     {"-"}},
    {"find $where",
     "{'find': 'books', 'filter': {'$where': 'this.a > 1'}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {$where: ?}"},
     {"-"}},
    {"find $expr",
     "{'find': 'books', 'filter': {'$expr': {'$gt': ['$a', '$b']}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {$expr: ?}"},
     {"-"}},
    {"find $text with $meta sort",
     "{'find': 'books', 'filter': {'$text': {'$search': 'x'}}, 'sort': {'score': {'$meta': "
     "'textScore'}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {$text: ?} sort {score: {$meta: ?}}"},
     {"-"}},
    {"find $jsonSchema next to an equality",
     "{'find': 'books', 'filter': {'$jsonSchema': {'required': ['a']}, 'b': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {$jsonSchema: ?, b: ?}"},
     {"b_1"}},
    {"find $nor is unindexable",
     "{'find': 'books', 'filter': {'$nor': [{'a': 1}, {'b': 2}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {$nor: ?}"},
     {"-"}},
    {"find unknown operator",
     "{'find': 'books', 'filter': {'a': {'$foo': 1}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$other: ?}}"},
     {"-"}},
    {"find empty path is unindexable",
     "{'find': 'books', 'filter': {'': 1, 'a': 2}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {\"\": ?, a: ?}"},
     {"a_1"}},
    {"find path with an empty component is unindexable",
     "{'find': 'books', 'filter': {'a..b': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {\"a..b\": ?}"},
     {"-"}},
    /* ---- regular expressions ---- */
    {"find /^abc/ (BSON regex) is a range",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^abc', 'options': "
     "''}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /^?/}"},
     {"name_1"}},
    {"find /abc/ is unindexable",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': 'abc', 'options': "
     "''}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find /^abc/i is unindexable",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^abc', 'options': "
     "'i'}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find /^abc/m is unindexable",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^abc', 'options': "
     "'m'}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find /\\Aabc/m is a range",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '\\\\Aabc', "
     "'options': 'm'}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /^?/}"},
     {"name_1"}},
    {"find /^a|b/ (alternation) is unindexable",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^a|b', 'options': "
     "''}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find /^.*x/ has no literal prefix",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^.*x', 'options': "
     "''}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find /^a*/ has no literal prefix",
     "{'find': 'books', 'filter': {'name': {'$regularExpression': {'pattern': '^a*', 'options': "
     "''}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find $regex string anchored",
     "{'find': 'books', 'filter': {'name': {'$str_regex': '^ab'}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /^?/}"},
     {"name_1"}},
    {"find $regex string with $options i",
     "{'find': 'books', 'filter': {'name': {'$str_regex': '^ab', '$options': 'i'}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/}"},
     {"-"}},
    {"find $regex string unanchored, with sort",
     "{'find': 'books', 'filter': {'name': {'$str_regex': 'ab'}, 'a': 1}, 'sort': {'b': 1}, '$db': "
     "'app'}",
     NULL,
     {NULL},
     {"find app.books {name: /?/, a: ?} sort {b: 1}"},
     {"a_1_b_1"}},
    /* ---- $and, $or ---- */
    {"find $and merges",
     "{'find': 'books', 'filter': {'$and': [{'a': 1}, {'b': {'$gt': 2}}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, b: {$gt: ?}}"},
     {"a_1_b_1"}},
    {"find $and on one path merges its operators",
     "{'find': 'books', 'filter': {'$and': [{'a': {'$gt': 1}}, {'a': {'$lt': 5}}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$gt: ?, $lt: ?}}"},
     {"a_1"}},
    {"find equality wins over a range on the same path",
     "{'find': 'books', 'filter': {'$and': [{'a': {'$gt': 0}}, {'a': 1}]}, 'sort': {'b': 1}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: {$eq: ?, $gt: ?}} sort {b: 1}"},
     {"a_1_b_1"}},
    {"find $or: one shape per branch",
     "{'find': 'books', 'filter': {'$or': [{'a': 1}, {'b': 2}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}", "find app.books {b: ?}"},
     {"a_1", "b_1"}},
    {"find $or merged with the paths outside it",
     "{'find': 'books', 'filter': {'c': 1, '$or': [{'a': 1}, {'b': {'$gt': 2}}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {c: ?, a: ?}", "find app.books {c: ?, b: {$gt: ?}}"},
     {"c_1_a_1", "c_1_b_1"}},
    {"find $or before the outside path",
     "{'find': 'books', 'filter': {'$or': [{'a': 1}, {'b': 1}], 'c': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, c: ?}", "find app.books {b: ?, c: ?}"},
     {"a_1_c_1", "b_1_c_1"}},
    {"find $or branches of one shape are one shape",
     "{'find': 'books', 'filter': {'$or': [{'a': 1}, {'a': 2}, {'a': 3}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    {"find two $or in $and: the cross product",
     "{'find': 'books', 'filter': {'$and': [{'$or': [{'a': 1}, {'b': 1}]}, {'$or': [{'c': 1}, "
     "{'d': 1}]}]}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, c: ?}", "find app.books {b: ?, c: ?}", "find app.books {a: ?, d: ?}",
      "find app.books {b: ?, d: ?}"},
     {"a_1_c_1", "b_1_c_1", "a_1_d_1", "b_1_d_1"}},
    {"find $or inside an $or branch",
     "{'find': 'books', 'filter': {'$or': [{'a': 1, '$or': [{'b': 1}, {'c': 1}]}, {'d': 1}]}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, b: ?}", "find app.books {a: ?, c: ?}", "find app.books {d: ?}"},
     {"a_1_b_1", "a_1_c_1", "d_1"}},
    {"find $or with a sort: each branch sorts",
     "{'find': 'books', 'filter': {'$or': [{'a': 1}, {'b': 1}]}, 'sort': {'c': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {c: -1}", "find app.books {b: ?} sort {c: -1}"},
     {"a_1_c_-1", "b_1_c_-1"}},
    {"find $or with an empty branch",
     "{'find': 'books', 'filter': {'$or': [{'a': 1}, {}]}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?}"},
     {"a_1"}},
    /* ---- $elemMatch ---- */
    {"find $elemMatch gives dotted paths",
     "{'find': 'orders', 'filter': {'items': {'$elemMatch': {'sku': 'x', 'qty': {'$gt': 5}}}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.orders {\"items.sku\": ?, \"items.qty\": {$gt: ?}}"},
     {"items.sku_1_items.qty_1"}},
    {"find $elemMatch on values",
     "{'find': 'results', 'filter': {'scores': {'$elemMatch': {'$gte': 80, '$lt': 90}}}, '$db': "
     "'app'}",
     NULL,
     {NULL},
     {"find app.results {scores: {$gte: ?, $lt: ?}}"},
     {"scores_1"}},
    {"find nested $elemMatch",
     "{'find': 'c', 'filter': {'a': {'$elemMatch': {'b': {'$elemMatch': {'c': 1}}}}}, '$db': "
     "'app'}",
     NULL,
     {NULL},
     {"find app.c {\"a.b.c\": ?}"},
     {"a.b.c_1"}},
    {"find $or inside $elemMatch",
     "{'find': 'c', 'filter': {'a': {'$elemMatch': {'$or': [{'b': 1}, {'c': 1}]}}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.c {\"a.b\": ?}", "find app.c {\"a.c\": ?}"},
     {"a.b_1", "a.c_1"}},
    /* ---- _id ---- */
    {"find _id lookup gets no index",
     "{'find': 'books', 'filter': {'_id': 5}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {_id: ?}"},
     {"-"}},
    {"find _id $in gets no index",
     "{'find': 'books', 'filter': {'_id': {'$in': [1, 2]}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {_id: {$in: ?}}"},
     {"-"}},
    {"find _id with another equality gets no index",
     "{'find': 'books', 'filter': {'a': 1, '_id': 5}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?, _id: ?}"},
     {"-"}},
    {"find _id range alone: the _id index",
     "{'find': 'books', 'filter': {'_id': {'$gt': 5}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {_id: {$gt: ?}}"},
     {"-"}},
    /* ---- collation, hint ---- */
    {"find collation: no sort part",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': 1}, 'collation': {'locale': 'fr'}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {b: 1} collation ?"},
     {"a_1"}},
    {"find simple collation is no collation",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': 1}, 'collation': {'locale': 'simple'}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {b: 1}"},
     {"a_1_b_1"}},
    {"find hint: no sort part",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': 1}, 'hint': 'a_1', '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {b: 1} hint ?"},
     {"a_1"}},
    {"find hint as a document",
     "{'find': 'books', 'filter': {'a': 1}, 'hint': {'a': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} hint ?"},
     {"a_1"}},
    {"find $natural sort is unusable",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'$natural': -1}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {$natural: -1}"},
     {"a_1"}},
    {"find sort direction 0 is unusable",
     "{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': 0}, '$db': 'app'}",
     NULL,
     {NULL},
     {"find app.books {a: ?} sort {b: {$meta: ?}}"},
     {"a_1"}},
    /* ---- count, distinct, findAndModify ---- */
    {"count with a query",
     "{'count': 'books', 'query': {'a': 1, 'b': {'$lt': 3}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"count app.books {a: ?, b: {$lt: ?}}"},
     {"a_1_b_1"}},
    {"count without a query: no shape",
     "{'count': 'books', '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"count with hint",
     "{'count': 'books', 'query': {'a': 1}, 'hint': 'a_1', '$db': 'app'}",
     NULL,
     {NULL},
     {"count app.books {a: ?} hint ?"},
     {"a_1"}},
    {"distinct with a query",
     "{'distinct': 'books', 'key': 'x', 'query': {'a': {'$gt': 1}}, '$db': 'app'}",
     NULL,
     {NULL},
     {"distinct app.books {a: {$gt: ?}}"},
     {"a_1"}},
    {"distinct without a query: no shape",
     "{'distinct': 'books', 'key': 'x', '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"findAndModify with sort",
     "{'findAndModify': 'books', 'query': {'a': 1}, 'sort': {'b': -1}, 'update': {'$set': {'c': "
     "1}}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"findAndModify app.books {a: ?} sort {b: -1}"},
     {"a_1_b_-1"}},
    {"findandmodify (lower case)",
     "{'findandmodify': 'books', 'query': {'a': {'$in': [1]}}, 'remove': true, '$db': 'app'}",
     NULL,
     {NULL},
     {"findAndModify app.books {a: {$in: ?}}"},
     {"a_1"}},
    /* ---- aggregate ---- */
    {"aggregate $match then $sort",
     "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}, {'$sort': {'b': -1}}, {'$group': "
     "{'_id': '$c'}}], "
     "'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?} sort {b: -1}"},
     {"a_1_b_-1"}},
    {"aggregate $sort then $match",
     "{'aggregate': 'books', 'pipeline': [{'$sort': {'b': 1}}, {'$match': {'a': 1}}], 'cursor': "
     "{}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?} sort {b: 1}"},
     {"a_1_b_1"}},
    {"aggregate two leading $match merge",
     "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}, {'$match': {'b': {'$lt': 3}}}], "
     "'cursor': {}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?, b: {$lt: ?}}"},
     {"a_1_b_1"}},
    {"aggregate $match after $group is not leading",
     "{'aggregate': 'books', 'pipeline': [{'$group': {'_id': '$a'}}, {'$match': {'_id': 1}}], "
     "'cursor': {}, "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"aggregate second $sort ends the leading part",
     "{'aggregate': 'books', 'pipeline': [{'$sort': {'b': 1}}, {'$sort': {'c': 1}}, {'$match': "
     "{'a': 1}}], "
     "'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {} sort {b: 1}"},
     {"b_1"}},
    {"aggregate $match with $or",
     "{'aggregate': 'books', 'pipeline': [{'$match': {'$or': [{'a': 1}, {'b': 1}]}}], 'cursor': "
     "{}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?}", "aggregate app.books {b: ?}"},
     {"a_1", "b_1"}},
    {"aggregate $lookup: equality on the foreign collection",
     "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}, {'$lookup': {'from': 'authors', "
     "'localField': "
     "'author', 'foreignField': 'name', 'as': 'x'}}], 'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?}", "lookup app.authors {name: ?}"},
     {"a_1", "name_1"}},
    {"aggregate $lookup alone",
     "{'aggregate': 'books', 'pipeline': [{'$lookup': {'from': 'authors', 'localField': 'author', "
     "'foreignField': "
     "'info.name', 'as': 'x'}}, {'$unwind': '$x'}], 'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"lookup app.authors {\"info.name\": ?}"},
     {"info.name_1"}},
    {"aggregate $lookup on _id: no index",
     "{'aggregate': 'books', 'pipeline': [{'$lookup': {'from': 'authors', 'localField': "
     "'author_id', "
     "'foreignField': '_id', 'as': 'x'}}], 'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"lookup app.authors {_id: ?}"},
     {"-"}},
    {"aggregate $lookup with a pipeline only: no shape",
     "{'aggregate': 'books', 'pipeline': [{'$lookup': {'from': 'authors', 'pipeline': [{'$match': "
     "{'x': 1}}], "
     "'as': 'x'}}], 'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"aggregate with collation",
     "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}, {'$sort': {'b': 1}}], 'collation': "
     "{'locale': "
     "'de'}, 'cursor': {}, '$db': 'app'}",
     NULL,
     {NULL},
     {"aggregate app.books {a: ?} sort {b: 1} collation ?"},
     {"a_1"}},
    {"aggregate: 1 (database level): no shape",
     "{'aggregate': 1, 'pipeline': [{'$currentOp': {}}, {'$match': {'a': 1}}], 'cursor': {}, "
     "'$db': 'admin'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    /* ---- update and delete ---- */
    {"update statements in the body",
     "{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {'$set': {'b': 1}}}, {'q': {'c': "
     "{'$gt': 1}}, 'u': "
     "{'$set': {'b': 2}}, 'multi': true}], '$db': 'app'}",
     NULL,
     {NULL},
     {"update app.books {a: ?}", "update app.books {c: {$gt: ?}}"},
     {"a_1", "c_1"}},
    {"update statements in a document sequence, one shape",
     "{'update': 'books', 'ordered': true, '$db': 'app'}",
     "updates",
     {"{'q': {'isbn': {'$in': [1, 2]}}, 'u': {'$set': {'x': 1}}}",
      "{'q': {'isbn': {'$in': [3]}}, 'u': {'$set': "
      "{'x': 2}}}"},
     {"update app.books {isbn: {$in: ?}}"},
     {"isbn_1"}},
    {"update statement with hint and collation",
     "{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {}, 'hint': {'a': 1}, 'collation': "
     "{'locale': 'fr'}}], "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {"update app.books {a: ?} collation ? hint ?"},
     {"a_1"}},
    {"update with an empty q: no shape",
     "{'update': 'books', 'updates': [{'q': {}, 'u': {'$set': {'a': 1}}}], "
     "'$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"delete statements in the body",
     "{'delete': 'books', 'deletes': [{'q': {'a': 1}, 'limit': 1}], '$db': 'app'}",
     NULL,
     {NULL},
     {"delete app.books {a: ?}"},
     {"a_1"}},
    {"delete statements in a document sequence, two shapes",
     "{'delete': 'books', '$db': 'app'}",
     "deletes",
     {"{'q': {'a': 1}, 'limit': 0}", "{'q': {'b': {'$lt': 5}}, 'limit': 0}",
      "{'q': {'a': 7}, 'limit': 1}"},
     {"delete app.books {a: ?}", "delete app.books {b: {$lt: ?}}"},
     {"a_1", "b_1"}},
    {"delete sequence of another name is not read",
     "{'delete': 'books', '$db': 'app'}",
     "documents",
     {"{'q': {'a': 1}, 'limit': 0}"},
     {NULL},
     {NULL}},
    /* ---- not shapes ---- */
    {"insert: no shape",
     "{'insert': 'books', 'documents': [{'a': 1}], '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"getMore: no shape",
     "{'getMore': {'$numberLong': '5'}, 'collection': 'books', '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"find with a collection that is not a string",
     "{'find': 1, 'filter': {'a': 1}, '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
    {"find without $db", "{'find': 'books', 'filter': {'a': 1}}", NULL, {NULL}, {NULL}, {NULL}},
    {"find with a filter that is not a document",
     "{'find': 'books', 'filter': 5, '$db': 'app'}",
     NULL,
     {NULL},
     {NULL},
     {NULL}},
};

#define N_ROWS (sizeof rows / sizeof rows[0])

/* ---- building commands ------------------------------------------------------------------- */

/* A copy of src with every key "$str_regex" renamed "$regex" (JSON makes $regex a regex type). */
static void
copy_renamed(const bson_t *src, bson_t *dst)
{
    bson_iter_t it;

    bson_iter_init(&it, src);
    while (bson_iter_next(&it)) {
        const char *key =
            strcmp(bson_iter_key(&it), "$str_regex") == 0 ? "$regex" : bson_iter_key(&it);
        const uint8_t *data;
        uint32_t len;
        bson_t sub, child;

        if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
            bool arr = BSON_ITER_HOLDS_ARRAY(&it);

            if (arr)
                bson_iter_array(&it, &len, &data);
            else
                bson_iter_document(&it, &len, &data);
            bson_init_static(&sub, data, len);
            if (arr)
                bson_append_array_begin(dst, key, -1, &child);
            else
                bson_append_document_begin(dst, key, -1, &child);
            copy_renamed(&sub, &child);
            if (arr)
                bson_append_array_end(dst, &child);
            else
                bson_append_document_end(dst, &child);
        } else {
            bson_append_iter(dst, key, -1, &it);
        }
    }
}

static bson_t *
command(const char *text)
{
    bson_t *raw = json(text), *doc = bson_new();

    copy_renamed(raw, doc);
    bson_destroy(raw);
    return doc;
}

/* A command body checked and parsed as the proxy does. */
static bool
parse(const bson_t *body, struct wire_cmd *cmd)
{
    bson_error_t error;
    uint32_t len;

    return wire_doc_check(bson_get_data(body), body->len, 0, &len, &error) &&
           wire_cmd_parse(bson_get_data(body), body->len, cmd, &error);
}

/*
 * The shapes of body derived by walking it (as for a body of more top-level
 * elements than wire_cmd_parse locates) equal got, derived from the
 * located elements: the two ways of reading a body agree.
 */
static void
same_when_walked(const char *name, const bson_t *body, const struct wire_cmd *cmd,
                 const struct advice_sequence *seq, const struct advice_shapes *got)
{
    struct wire_cmd walked = *cmd;
    struct advice_shapes out;
    bool same;

    walked.elems_all = false;
    out.n = 0;
    same = advice_shape_extract(body, &walked, seq, seq ? 1 : 0, &out) == got->n;
    for (uint32_t i = 0; same && i < got->n; i++)
        same = out.shape[i].hash == got->shape[i].hash;
    ok(same && cmd->elems_all, "%s: the same shapes from the located elements and a walk", name);
    advice_shapes_cleanup(&out);
}

/* ---- checks every shape must pass -------------------------------------------------------- */

static bool
inside(const uint8_t *p, uint32_t len, const uint8_t *base, size_t base_len)
{
    return p >= base && p + len <= base + base_len;
}

/* Hash, copy and query bookkeeping of each shape; returns a reason or NULL. */
static const char *
invariants(const struct advice_shapes *out, const bson_t *body, const uint8_t *seq, size_t seq_len)
{
    for (uint32_t i = 0; i < out->n; i++) {
        const struct advice_shape *s = &out->shape[i];
        struct advice_shape copy;
        char *a, *b;
        bool same;

        if (s->hash != advice_shape_hash(s))
            return "stored hash differs from advice_shape_hash";
        for (uint32_t j = 0; j < i; j++) {
            if (out->shape[j].hash == s->hash)
                return "two shapes of one command with one hash";
        }
        advice_shape_copy(&copy, s);
        a = advice_shape_display(s);
        b = advice_shape_display(&copy);
        same = strcmp(a, b) == 0 && copy.hash == s->hash && advice_shape_hash(&copy) == s->hash;
        bson_free(a);
        bson_free(b);
        advice_shape_cleanup(&copy);
        if (!same)
            return "copy differs";
        if (!inside(out->query[i], out->query_len[i], bson_get_data(body), body->len) &&
            !(seq && inside(out->query[i], out->query_len[i], seq, seq_len)))
            return "query points outside the command";
        if (s->n_paths > ADVICE_SHAPE_MAX_PATHS || s->n_sort > ADVICE_SHAPE_MAX_SORT)
            return "too many paths";
        for (uint32_t j = 0; j < s->n_paths; j++) {
            if (strlen(s->paths[j].path) > ADVICE_SHAPE_MAX_PATH_LEN)
                return "path too long";
        }
    }
    return NULL;
}

/* ---- the table ----------------------------------------------------------------------------- */

static void
run_row(const struct row *r)
{
    struct advice_shapes out;
    struct advice_sequence seq = {0};
    struct wire_cmd cmd;
    bson_t *body = command(r->cmd);
    uint8_t *seq_buf = NULL;
    size_t seq_len = 0;
    uint32_t want = 0, n;
    const char *why;

    while (want < MAX_WANT && r->want[want])
        want++;
    if (r->seq_id) {
        for (int i = 0; i < MAX_SEQ && r->seq[i]; i++) {
            bson_t *d = command(r->seq[i]);

            seq_buf = realloc(seq_buf, seq_len + d->len);
            memcpy(seq_buf + seq_len, bson_get_data(d), d->len);
            seq_len += d->len;
            bson_destroy(d);
        }
        seq.id = r->seq_id;
        seq.docs = seq_buf;
        seq.len = (uint32_t)seq_len;
    }
    if (!ok(parse(body, &cmd), "%s: the command parses", r->name)) {
        bson_destroy(body);
        free(seq_buf);
        return;
    }
    out.n = 99; /* emptied by extract */
    n = advice_shape_extract(body, &cmd, r->seq_id ? &seq : NULL, r->seq_id ? 1 : 0, &out);
    if (!is_int(n, want, "%s: %u shape(s)", r->name, want) || n != out.n) {
        for (uint32_t i = 0; i < out.n; i++) {
            char *d = advice_shape_display(&out.shape[i]);

            diag("  got %s", d);
            bson_free(d);
        }
    }
    for (uint32_t i = 0; i < want && i < out.n; i++) {
        struct advice_index index;
        char *d = advice_shape_display(&out.shape[i]);
        char *name = NULL;

        is_str(d, r->want[i], "%s: shape %u", r->name, i);
        if (advice_recommend_index(&out.shape[i], &index)) {
            name = advice_index_default_name(&index);
            advice_index_cleanup(&index);
        }
        is_str(name ? name : "-", r->index[i], "%s: index %u", r->name, i);
        bson_free(name);
        bson_free(d);
    }
    why = invariants(&out, body, seq_buf, seq_len);
    if (!ok(why == NULL, "%s: hash, copy and query of every shape", r->name))
        diag("%s", why);
    same_when_walked(r->name, body, &cmd, r->seq_id ? &seq : NULL, &out);
    advice_shapes_cleanup(&out);
    is_int(out.n, 0, "%s: advice_shapes_cleanup empties", r->name);
    bson_destroy(body);
    free(seq_buf);
}

/* ---- properties --------------------------------------------------------------------------------
 */

/* Extracts the shapes of a JSON command (no sequence); the caller cleans up. */
static uint32_t
extract_json(const char *text, struct advice_shapes *out)
{
    bson_t *body = command(text);
    struct wire_cmd cmd;
    uint32_t n = 0;

    out->n = 0;
    if (parse(body, &cmd))
        n = advice_shape_extract(body, &cmd, NULL, 0, out);
    bson_destroy(body);
    return n;
}

static uint64_t
hash_of(const char *text)
{
    struct advice_shapes out;
    uint64_t h = 0;

    if (extract_json(text, &out) == 1)
        h = out.shape[0].hash;
    advice_shapes_cleanup(&out);
    return h;
}

static void
test_hash_properties(void)
{
    uint64_t a = hash_of(
        "{'find': 'books', 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': 1}, '$db': 'x'}");
    uint64_t b = hash_of(
        "{'find': 'books', 'filter': {'a': 'zzz', 'b': {'$gt': {'n': [1, 2]}}}, 'sort': {'c': 1},"
        " 'limit': 3, 'lsid': {'id': 1}, '$db': 'x'}");
    uint64_t c = hash_of(
        "{'find': 'books', 'filter': {'b': {'$gt': 7}, 'a': null}, 'sort': {'c': 1}, '$db': 'x'}");

    ok(a != 0 && a == b, "values, limit and lsid do not change the hash");
    ok(a == c, "the order of the filter paths does not change the hash");
    ok(a != hash_of("{'find': 'books', 'filter': {'a': 1, 'b': {'$gte': 2}}, 'sort': {'c': 1}, "
                    "'$db': 'x'}"),
       "$gt and $gte are two shapes");
    ok(a != hash_of("{'find': 'books', 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': -1}, "
                    "'$db': 'x'}"),
       "the sort direction changes the hash");
    ok(hash_of("{'find': 'b', 'sort': {'x': 1, 'y': 1}, '$db': 'x'}") !=
           hash_of("{'find': 'b', 'sort': {'y': 1, 'x': 1}, '$db': 'x'}"),
       "the order of the sort keys changes the hash");
    ok(a != hash_of("{'find': 'books', 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': 1}, "
                    "'$db': 'y'}"),
       "the database changes the hash");
    ok(a != hash_of("{'find': 'book', 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': 1}, "
                    "'$db': 'x'}"),
       "the collection changes the hash");
    ok(hash_of("{'find': 'ab', 'filter': {'c': 1}, '$db': 'x'}") !=
           hash_of("{'find': 'b', 'filter': {'c': 1}, '$db': 'xa'}"),
       "the split between database and collection changes the hash");
    ok(a != hash_of("{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1, 'b': {'$gt': 2}}}, "
                    "{'$sort': {'c': 1}}],"
                    " 'cursor': {}, '$db': 'x'}"),
       "the source changes the hash");
    ok(hash_of("{'find': 'b', 'filter': {'a': 1}, '$db': 'x'}") !=
           hash_of("{'find': 'b', 'filter': {'a': 1}, 'hint': 'a_1', '$db': 'x'}"),
       "a hint changes the hash");
    ok(hash_of("{'find': 'b', 'filter': {'a': 1}, '$db': 'x'}") !=
           hash_of("{'find': 'b', 'filter': {'a': 1}, 'collation': {'locale': 'fr'}, '$db': 'x'}"),
       "a collation changes the hash");
    ok(hash_of("{'find': 'b', 'filter': {'a': 1}, '$db': 'x'}") !=
           hash_of("{'find': 'b', 'filter': {'a': {'$in': [1]}}, '$db': 'x'}"),
       "equality and $in are two shapes");
}

/* A JSON filter with n paths f0..f(n-1), into buf. */
static char *
many_paths(int n)
{
    bson_string_t *s = bson_string_new("{'find': 'c', 'filter': {");

    for (int i = 0; i < n; i++)
        bson_string_append_printf(s, "%s'f%d': %d", i ? ", " : "", i, i);
    bson_string_append(s, "}, '$db': 'd'}");
    return bson_string_free(s, false);
}

static void
test_bounds(void)
{
    struct advice_shapes out;
    char *text, *d;
    char longkey[ADVICE_SHAPE_MAX_PATH_LEN + 2];

    text = many_paths(ADVICE_SHAPE_MAX_PATHS);
    extract_json(text, &out);
    ok(out.n == 1 && out.shape[0].n_paths == ADVICE_SHAPE_MAX_PATHS && !out.shape[0].truncated,
       "%d paths are kept whole", ADVICE_SHAPE_MAX_PATHS);
    advice_shapes_cleanup(&out);
    bson_free(text);

    text = many_paths(ADVICE_SHAPE_MAX_PATHS + 8);
    extract_json(text, &out);
    d = out.n == 1 ? advice_shape_display(&out.shape[0]) : NULL;
    ok(out.n == 1 && out.shape[0].n_paths == ADVICE_SHAPE_MAX_PATHS && out.shape[0].truncated &&
           d && strstr(d, "f31: ?} (truncated)") != NULL,
       "%d paths: the first %d kept, truncated", ADVICE_SHAPE_MAX_PATHS + 8,
       ADVICE_SHAPE_MAX_PATHS);
    bson_free(d);
    advice_shapes_cleanup(&out);
    bson_free(text);

    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    text = bson_strdup_printf("{'find': 'c', 'filter': {'%s': 1, 'a': 1}, '$db': 'd'}", longkey);
    extract_json(text, &out);
    d = out.n == 1 ? advice_shape_display(&out.shape[0]) : NULL;
    is_str(d, "find d.c {a: ?} (truncated)", "a path of %zu bytes is left out, truncated",
           strlen(longkey));
    bson_free(d);
    advice_shapes_cleanup(&out);
    bson_free(text);

    longkey[ADVICE_SHAPE_MAX_PATH_LEN] = '\0';
    text = bson_strdup_printf("{'find': 'c', 'filter': {'%s': 1}, '$db': 'd'}", longkey);
    extract_json(text, &out);
    ok(out.n == 1 && out.shape[0].n_paths == 1 && !out.shape[0].truncated,
       "a path of exactly %d bytes is kept", ADVICE_SHAPE_MAX_PATH_LEN);
    advice_shapes_cleanup(&out);
    bson_free(text);

    /* a sort key too many: the sort is unusable and the shape truncated */
    {
        bson_string_t *s = bson_string_new("{'find': 'c', 'sort': {");

        for (int i = 0; i < ADVICE_SHAPE_MAX_SORT + 1; i++)
            bson_string_append_printf(s, "%s's%d': 1", i ? ", " : "", i);
        bson_string_append(s, "}, '$db': 'd'}");
        text = bson_string_free(s, false);
    }
    extract_json(text, &out);
    ok(out.n == 1 && out.shape[0].n_sort == ADVICE_SHAPE_MAX_SORT && out.shape[0].sort_unusable &&
           out.shape[0].truncated,
       "%d sort keys: %d kept, unusable, truncated", ADVICE_SHAPE_MAX_SORT + 1,
       ADVICE_SHAPE_MAX_SORT);
    advice_shapes_cleanup(&out);
    bson_free(text);

    /* $or with 20 distinct branches: 16 shapes */
    {
        bson_string_t *s = bson_string_new("{'find': 'c', 'filter': {'$or': [");

        for (int i = 0; i < 20; i++)
            bson_string_append_printf(s, "%s{'b%d': 1}", i ? ", " : "", i);
        bson_string_append(s, "]}, '$db': 'd'}");
        text = bson_string_free(s, false);
    }
    is_int(extract_json(text, &out), ADVICE_MAX_SHAPES_PER_COMMAND,
           "$or of 20 branches: %d shapes, the rest dropped", ADVICE_MAX_SHAPES_PER_COMMAND);
    advice_shapes_cleanup(&out);
    bson_free(text);

    /* $or of $or of $or: 4 x 4 x 4 branches do not fit in flight */
    text = bson_strdup("{'find': 'c', 'filter': {'$and': ["
                       "{'$or': [{'a': 1}, {'b': 1}, {'c': 1}, {'d': 1}]},"
                       "{'$or': [{'e': 1}, {'f': 1}, {'g': 1}, {'h': 1}]},"
                       "{'$or': [{'i': 1}, {'j': 1}, {'k': 1}, {'l': 1}]}]}, '$db': 'd'}");
    extract_json(text, &out);
    {
        bool all_truncated = out.n > 0;

        for (uint32_t i = 0; i < out.n; i++)
            all_truncated = all_truncated && out.shape[i].truncated;
        ok(out.n > 0 && out.n <= ADVICE_MAX_SHAPES_PER_COMMAND && all_truncated,
           "a 64-way $or cross product: %u shapes, all marked truncated", out.n);
    }
    advice_shapes_cleanup(&out);
    bson_free(text);
}

/* {$and: [{$and: [... {a: 1} ...]}]} nested depth levels deep, built as BSON. */
static bson_t *
nested_and(int depth, const char *op)
{
    bson_t *inner = bson_new();

    BSON_APPEND_INT32(inner, "a", 1);
    BSON_APPEND_INT32(inner, "z", 1);
    for (int i = 0; i < depth; i++) {
        bson_t *outer = bson_new(), arr, elem;

        if (strcmp(op, "$elemMatch") == 0) {
            BSON_APPEND_DOCUMENT_BEGIN(outer, "x", &elem);
            BSON_APPEND_DOCUMENT(&elem, "$elemMatch", inner);
            bson_append_document_end(outer, &elem);
        } else {
            BSON_APPEND_ARRAY_BEGIN(outer, op, &arr);
            BSON_APPEND_DOCUMENT(&arr, "0", inner);
            bson_append_array_end(outer, &arr);
        }
        bson_destroy(inner);
        inner = outer;
    }
    BSON_APPEND_INT32(inner, "top", 1);
    return inner;
}

static void
test_nesting(void)
{
    static const char *const ops[] = {"$and", "$or", "$elemMatch"};

    /* each level is two BSON levels: 97 is as deep as wire_doc_check lets a filter go */
    static const int depths[] = {1, 32, 33, 60, 97};

    for (size_t k = 0; k < 3; k++) {
        for (size_t j = 0; j < sizeof depths / sizeof depths[0]; j++) {
            int depth = depths[j];
            bson_t *filter = nested_and(depth, ops[k]), body = BSON_INITIALIZER;
            struct advice_shapes out;
            struct wire_cmd cmd;
            bool parsed;

            BSON_APPEND_UTF8(&body, "find", "c");
            BSON_APPEND_DOCUMENT(&body, "filter", filter);
            BSON_APPEND_UTF8(&body, "$db", "d");
            parsed = parse(&body, &cmd);
            out.n = 0;
            if (parsed)
                advice_shape_extract(&body, &cmd, NULL, 0, &out);
            ok(parsed && out.n == 1 && out.shape[0].truncated == (depth > 32) &&
                   out.shape[0].n_paths == (depth > 32 ? 1u : 3u),
               "%s nested %d deep: one shape, %s", ops[k], depth,
               depth > 32 ? "truncated, the outer path only" : "whole");
            advice_shapes_cleanup(&out);
            bson_destroy(filter);
            bson_destroy(&body);
        }
    }
}

/* advice_shape_extract_known: a shape the caller keeps is given by its hash alone. */
struct known_arg {
    uint64_t hash; /* the one "kept" */
    int calls;
};

static bool
known_one(void *arg, uint64_t hash)
{
    struct known_arg *k = arg;

    k->calls++;
    return hash == k->hash;
}

static void
test_known(void)
{
    bson_t *body = BCON_NEW("find", "books", "filter", "{", "$or", "[", "{", "a", BCON_INT32(1),
                            "}", "{", "b", BCON_INT32(2), "}", "]", "}", "sort", "{", "c",
                            BCON_INT32(1), "}", "$db", "app");
    struct advice_shapes full, out;
    struct known_arg k = {0, 0};
    struct wire_cmd cmd;

    full.n = out.n = 0;
    if (!ok(parse(body, &cmd) && advice_shape_extract(body, &cmd, NULL, 0, &full) == 2,
            "an $or of two branches: two shapes")) {
        advice_shapes_cleanup(&full);
        bson_destroy(body);
        return;
    }
    k.hash = full.shape[1].hash;
    is_int(advice_shape_extract_known(body, &cmd, NULL, 0, known_one, &k, &out), 2,
           "extract_known: the same two shapes");
    is_int(k.calls, 2, "known asked once per shape");
    ok(out.shape[0].hash == full.shape[0].hash && out.shape[0].db != NULL &&
           strcmp(out.shape[0].coll, "books") == 0 && out.shape[0].n_paths == 1 &&
           out.shape[0].n_sort == 1,
       "a shape not kept is copied out whole, with the same hash");
    ok(out.shape[1].hash == full.shape[1].hash && out.shape[1].db == NULL &&
           out.shape[1].coll == NULL && out.shape[1].n_paths == 0 && out.shape[1].n_sort == 0 &&
           out.shape[1].strings == NULL,
       "a kept shape gets its hash alone, nothing allocated");
    ok(out.query[1] == full.query[1] && out.query_len[1] == full.query_len[1] &&
           out.statement[1] == full.statement[1],
       "and its query and statement, as a full extract gives them");
    advice_shapes_cleanup(&out);
    advice_shapes_cleanup(&full);
    bson_destroy(body);
}

/*
 * One operator document with 100,000 $regex keys (duplicates pass the wire
 * check): each used to rescan the whole document for $options, 4,096 times
 * over (the budget), about 4 * 10^8 reader steps: 1.5 s of the event loop
 * per command (gcc -O2). $options is now looked up once per operator
 * document: 1 ms. The bound, 0.25 s of CPU, is six times below the old
 * cost and far above the new one (ASan included).
 */
static void
test_regex_options_once(void)
{
    bson_t body = BSON_INITIALIZER, filter, ops;
    struct advice_shapes out;
    struct wire_cmd cmd;
    clock_t t0;
    double cpu_s = -1;

    BSON_APPEND_UTF8(&body, "find", "c");
    BSON_APPEND_DOCUMENT_BEGIN(&body, "filter", &filter);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "name", &ops);
    for (int i = 0; i < 100000; i++)
        BSON_APPEND_UTF8(&ops, "$regex", "^ab");
    BSON_APPEND_UTF8(&ops, "$options", "i");
    bson_append_document_end(&filter, &ops);
    bson_append_document_end(&body, &filter);
    BSON_APPEND_UTF8(&body, "$db", "d");
    out.n = 0;
    if (parse(&body, &cmd)) {
        t0 = clock();
        advice_shape_extract(&body, &cmd, NULL, 0, &out);
        cpu_s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    }
    ok(out.n == 1 && out.shape[0].n_paths == 1 &&
           out.shape[0].paths[0].op == ADVICE_OP_UNINDEXABLE && out.shape[0].truncated,
       "100,000 $regex with $options i: one unindexable path, truncated at the budget");
    ok(cpu_s >= 0 && cpu_s < 0.25, "... in %.3f s of CPU, not seconds ($options read once)", cpu_s);
    advice_shapes_cleanup(&out);
    bson_destroy(&body);
}

/* Many statements, many keys: the work stops at the budget. */
static void
test_budget(void)
{
    bson_t body = BSON_INITIALIZER, arr, filter;
    struct advice_shapes out;
    struct wire_cmd cmd;
    char key[16];

    BSON_APPEND_UTF8(&body, "update", "c");
    BSON_APPEND_ARRAY_BEGIN(&body, "updates", &arr);
    for (int i = 0; i < 20000; i++) {
        bson_t st, q;

        snprintf(key, sizeof key, "%d", i);
        bson_append_document_begin(&arr, key, -1, &st);
        BSON_APPEND_DOCUMENT_BEGIN(&st, "q", &q);
        snprintf(key, sizeof key, "k%d", i % 40);
        BSON_APPEND_INT32(&q, key, i);
        bson_append_document_end(&st, &q);
        bson_append_document_end(&arr, &st);
    }
    bson_append_array_end(&body, &arr);
    BSON_APPEND_UTF8(&body, "$db", "d");
    out.n = 0;
    if (parse(&body, &cmd))
        advice_shape_extract(&body, &cmd, NULL, 0, &out);
    ok(out.n == ADVICE_MAX_SHAPES_PER_COMMAND && out.statement[15] == 15,
       "20,000 update statements over 40 shapes: the first %d distinct (statement %u last)",
       ADVICE_MAX_SHAPES_PER_COMMAND, out.n ? out.statement[out.n - 1] : 0);
    advice_shapes_cleanup(&out);
    bson_destroy(&body);

    bson_init(&body);
    BSON_APPEND_UTF8(&body, "find", "c");
    BSON_APPEND_DOCUMENT_BEGIN(&body, "filter", &filter);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "a%d", i % 3);
        BSON_APPEND_INT32(&filter, key, i);
    }
    bson_append_document_end(&body, &filter);
    BSON_APPEND_UTF8(&body, "$db", "d");
    out.n = 0;
    if (parse(&body, &cmd))
        advice_shape_extract(&body, &cmd, NULL, 0, &out);
    ok(out.n == 1 && out.shape[0].n_paths == 3 && out.shape[0].truncated,
       "10,000 filter keys: stops at the budget, truncated");
    advice_shapes_cleanup(&out);
    bson_destroy(&body);
}

/* Where query and statement point for statements in the body and in a sequence. */
static void
test_statement_bookkeeping(void)
{
    bson_t *body =
        command("{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {}}, {'q': {}, 'u': {}}, "
                "{'q': {'b': 1}, 'u': {}}], '$db': 'app'}");
    bson_t *lookup = command(
        "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}, {'$unwind': '$x'}, "
        "{'$lookup': {'from': 'authors', 'localField': 'a', 'foreignField': 'n', 'as': 'y'}}], "
        "'cursor': {}, '$db': 'app'}");
    struct advice_shapes out;
    struct wire_cmd cmd;
    bson_iter_t it, st;
    const uint8_t *third = NULL;
    uint32_t third_len = 0;

    out.n = 0;
    if (parse(body, &cmd))
        advice_shape_extract(body, &cmd, NULL, 0, &out);
    if (bson_iter_init(&it, body) && bson_iter_find_descendant(&it, "updates.2", &st))
        bson_iter_document(&st, &third_len, &third);
    ok(out.n == 2 && out.statement[0] == 0 && out.statement[1] == 2 && out.query[1] == third &&
           out.query_len[1] == third_len,
       "body statements: statement 0 and 2 (1 has an empty q), query is the statement itself");
    advice_shapes_cleanup(&out);

    out.n = 0;
    if (parse(lookup, &cmd))
        advice_shape_extract(lookup, &cmd, NULL, 0, &out);
    ok(out.n == 2 && out.statement[0] == 0 && out.statement[1] == 2 &&
           out.query[1] == bson_get_data(lookup) && out.shape[1].source == ADVICE_SRC_LOOKUP,
       "$lookup: statement is its stage index (2), query the body");
    advice_shapes_cleanup(&out);
    bson_destroy(body);
    bson_destroy(lookup);
}

/* A sequence with a lying length: the statements before it count, nothing past it is read. */
static void
test_sequence_lengths(void)
{
    bson_t *body = command("{'delete': 'c', '$db': 'd'}");
    bson_t *st = command("{'q': {'a': 1}, 'limit': 0}");
    struct advice_sequence seq;
    struct advice_shapes out;
    struct wire_cmd cmd;
    uint8_t *buf = malloc(st->len * 2);

    memcpy(buf, bson_get_data(st), st->len);
    memcpy(buf + st->len, bson_get_data(st), st->len);
    buf[st->len] = 0xff; /* the second document claims 255+ bytes */
    seq.id = "deletes";
    seq.docs = buf;
    seq.len = st->len * 2;
    out.n = 0;
    if (parse(body, &cmd))
        advice_shape_extract(body, &cmd, &seq, 1, &out);
    ok(out.n == 1 && out.query[0] == buf,
       "sequence with a bad second length: the first statement only");
    advice_shapes_cleanup(&out);
    seq.len = 3;
    out.n = 7;
    is_int(advice_shape_extract(body, &cmd, &seq, 1, &out), 0,
           "sequence shorter than a document: nothing");
    free(buf);
    bson_destroy(st);
    bson_destroy(body);
}

static void
test_display_escapes(void)
{
    struct advice_shape s;
    char *d;

    memset(&s, 0, sizeof s);
    s.db = bson_strdup("a\"b");
    s.coll = bson_strdup("c\nd\xff");
    s.source = ADVICE_SRC_FIND;
    s.paths[0].path = bson_strdup("x\"\\\x01y");
    s.paths[0].op = ADVICE_OP_RANGE; /* ops 0: shown by its class */
    s.paths[1].path = bson_strdup("caf\xc3\xa9");
    s.paths[1].op = ADVICE_OP_IN;
    s.n_paths = 2;
    s.sort[0].path = bson_strdup("n");
    s.sort[0].dir = -1;
    s.n_sort = 1;
    d = advice_shape_display(&s);
    is_str(d,
           "find a\\\"b.c\\x0ad\\xff {\"x\\\"\\\\\\x01y\": {$gte: ?}, \"caf\xc3\xa9\": {$in: ?}} "
           "sort {n: -1}",
           "display escapes quotes, backslashes, control and non-UTF-8 bytes");
    ok(advice_shape_hash(&s) != 0, "advice_shape_hash of a hand-built shape");
    is_str(advice_op_name(ADVICE_OP_UNINDEXABLE), "unindexable", "advice_op_name");
    is_str(advice_source_name(ADVICE_SRC_FIND_AND_MODIFY), "findAndModify", "advice_source_name");
    bson_free(d);
    advice_shape_cleanup(&s);
    advice_shape_cleanup(NULL);
    advice_shapes_cleanup(NULL);
}

/*
 * A body of more top-level elements than wire_cmd_parse locates is walked:
 * its filter, sort and hint are read wherever they are, even past the 32nd
 * element, and give the shape of the same query without the extra fields.
 */
static void
test_many_top_level(void)
{
    char text[2048];
    size_t len = 0;
    uint64_t want = hash_of("{'find': 'c', 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': -1}, '$db': 'd'}");

    len += (size_t)snprintf(text + len, sizeof text - len, "{'find': 'c'");
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, ", 'x%d': %d", i, i);
    snprintf(text + len, sizeof text - len,
             ", 'filter': {'a': 1, 'b': {'$gt': 2}}, 'sort': {'c': -1}, '$db': 'd'}");
    ok(want != 0 && hash_of(text) == want,
       "a find of 44 top-level fields, its filter and sort after the 32nd: the same shape");
}

/*
 * A namespace no server would take gives no shape: not UTF-8 (shapes are
 * shown as JSON by /shapes and /advice, which would fail on it), or longer
 * than 255 bytes.
 */
static void
test_bad_namespaces(void)
{
    static const struct {
        const char *db, *coll, *why;
    } cases[] = {{"app", "bo\xff\xfeks", "a collection that is not UTF-8"},
                 {"a\xc3", "books", "a database cut inside a character"}};
    char longc[300];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0] + 1; i++) {
        bson_t *body = bson_new(), filter;
        struct wire_cmd cmd;
        struct advice_shapes out;
        const char *db = i < 2 ? cases[i].db : "app";
        const char *coll = i < 2 ? cases[i].coll : longc;

        memset(longc, 'c', sizeof longc - 1);
        longc[sizeof longc - 1] = '\0';
        bson_append_utf8(body, "find", 4, coll, -1);
        bson_append_document_begin(body, "filter", 6, &filter);
        BSON_APPEND_INT32(&filter, "a", 1);
        bson_append_document_end(body, &filter);
        bson_append_utf8(body, "$db", 3, db, -1);
        out.n = 0;
        ok(parse(body, &cmd) && advice_shape_extract(body, &cmd, NULL, 0, &out) == 0,
           "no shape for %s", i < 2 ? cases[i].why : "a namespace of 303 bytes");
        advice_shapes_cleanup(&out);
        bson_destroy(body);
    }
}

/* A NUL inside the collection (a BSON string may hold one; the parse refuses a $db with one): no
 * shape. */
static void
test_nul_namespaces(void)
{
    static const struct {
        const char *db, *coll;
        int db_len, coll_len;
        uint32_t want;
    } cases[] = {{"app", "bo\0oks", 3, 6, 0},
                 {"app", "books\0", 3, 6, 0},
                 {"app", "books", 3, 5, 1}};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *body = bson_new(), filter;
        struct wire_cmd cmd;
        struct advice_shapes out;
        uint32_t n = UINT32_MAX;

        bson_append_utf8(body, "find", 4, cases[i].coll, cases[i].coll_len);
        bson_append_document_begin(body, "filter", 6, &filter);
        BSON_APPEND_INT32(&filter, "a", 1);
        bson_append_document_end(body, &filter);
        bson_append_utf8(body, "$db", 3, cases[i].db, cases[i].db_len);
        out.n = 0;
        if (parse(body, &cmd))
            n = advice_shape_extract(body, &cmd, NULL, 0, &out);
        ok(n == cases[i].want, "namespace with a NUL, case %zu: %u shape(s), want %u", i, n,
           cases[i].want);
        advice_shapes_cleanup(&out);
        bson_destroy(body);
    }
}

/*
 * The namespace check takes ASCII by a loop and hands the rest to libbson:
 * a UTF-8 name past its ASCII prefix gets a shape, a bad byte after it none.
 */
static void
test_utf8_namespaces(void)
{
    static const struct {
        const char *db, *coll;
        uint32_t want;
    } cases[] = {{"app", "caf\xc3\xa9s", 1},
                 {"\xc3\xa9t\xc3\xa9", "books", 1},
                 {"app", "books\xc3\xa9\xff", 0},
                 {"app", "books\x7f", 1},
                 {"app\x80", "books", 0}};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *body = bson_new(), filter;
        struct wire_cmd cmd;
        struct advice_shapes out;
        uint32_t n = UINT32_MAX;

        bson_append_utf8(body, "find", 4, cases[i].coll, -1);
        bson_append_document_begin(body, "filter", 6, &filter);
        BSON_APPEND_INT32(&filter, "a", 1);
        bson_append_document_end(body, &filter);
        bson_append_utf8(body, "$db", 3, cases[i].db, -1);
        out.n = 0;
        if (parse(body, &cmd))
            n = advice_shape_extract(body, &cmd, NULL, 0, &out);
        ok(n == cases[i].want, "namespace %s.%s: %u shape(s), want %u", cases[i].db, cases[i].coll,
           n, cases[i].want);
        advice_shapes_cleanup(&out);
        bson_destroy(body);
    }
}

int
main(void)
{
    ok(N_ROWS >= 60, "the table has %zu rows (at least 60)", N_ROWS);
    for (size_t i = 0; i < N_ROWS; i++)
        run_row(&rows[i]);
    test_hash_properties();
    test_bounds();
    test_nesting();
    test_known();
    test_regex_options_once();
    test_budget();
    test_statement_bookkeeping();
    test_sequence_lengths();
    test_display_escapes();
    test_many_top_level();
    test_bad_namespaces();
    test_utf8_namespaces();
    test_nul_namespaces();
    return done_testing();
}
