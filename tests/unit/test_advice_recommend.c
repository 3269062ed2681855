/*
 * tests/unit/test_advice_recommend.c: owns the tests of advice/index.c and
 * advice/recommend.c: reading listIndexes entries (FerretDB's real reply
 * and hostile ones), default names, prefixes; which shapes scan (by the
 * verdict, or by the indexes when there is no mongod plan); coverage of a
 * recommendation by existing indexes (equal, longer, reversed, hidden,
 * partial, special); merging shapes one index serves; _id lookups;
 * min_documents; redundant indexes; ranking; and the mongosh and Mongoose
 * texts. Shapes come from advice_shape_extract on JSON commands, so the
 * whole path from a command to its advice is exercised.
 */
#include "config.h"

#include "advice/index.h"
#include "advice/recommend.h"
#include "advice/shape.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------------
 */

/* The first shape of a JSON command, copied into shape (cleanup with advice_shape_cleanup). */
static void
shape_of(const char *text, struct advice_shape *shape)
{
    bson_t *body = json(text);
    struct advice_shapes out;
    struct wire_cmd cmd;
    bson_error_t error;

    out.n = 0;
    if (!wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error) ||
        advice_shape_extract(body, &cmd, NULL, 0, &out) == 0) {
        diag("no shape in %s", text);
        abort();
    }
    advice_shape_copy(shape, &out.shape[0]);
    advice_shapes_cleanup(&out);
    bson_destroy(body);
}

/* Indexes from a JSON array of listIndexes entries: {'i': [...]}. */
static void
indexes_of(const char *text, struct advice_indexes *out)
{
    bson_t *doc = json(text);
    bson_iter_t it, m;

    out->index = NULL;
    out->n = 0;
    if (bson_iter_init_find(&it, doc, "i") && bson_iter_recurse(&it, &m)) {
        while (bson_iter_next(&m)) {
            const uint8_t *data;
            uint32_t len;
            bson_t spec;
            struct advice_index index;

            bson_iter_document(&m, &len, &data);
            if (!bson_init_static(&spec, data, len) || !advice_index_from_spec(&spec, &index)) {
                diag("bad test index in %s", text);
                abort();
            }
            out->index = bson_realloc(out->index, (out->n + 1) * sizeof *out->index);
            out->index[out->n++] = index;
        }
    }
    bson_destroy(doc);
}

struct result {
    struct advice_item *items;
    uint32_t n_items;
    struct advice_redundant *redundant;
    uint32_t n_redundant;
};

static void
result_cleanup(struct result *r)
{
    for (uint32_t i = 0; i < r->n_items; i++)
        advice_item_cleanup(&r->items[i]);
    for (uint32_t i = 0; i < r->n_redundant; i++)
        advice_redundant_cleanup(&r->redundant[i]);
    bson_free(r->items);
    bson_free(r->redundant);
    memset(r, 0, sizeof *r);
}

/* Advice for app.books from up to 4 (command, verdict, queries, ms) and an index list. */
struct input {
    const char *cmd;
    enum advice_plan_verdict verdict;
    uint64_t queries;
    double ms;
};

static void
advise(const struct input *inputs, uint32_t n, const char *indexes_json, int64_t documents,
       struct result *r)
{
    struct advice_shape shapes[8];
    struct advice_shape_input in[8];
    struct advice_indexes indexes;

    memset(r, 0, sizeof *r);
    for (uint32_t i = 0; i < n; i++) {
        shape_of(inputs[i].cmd, &shapes[i]);
        in[i].shape = &shapes[i];
        in[i].verdict = inputs[i].verdict;
        in[i].queries = inputs[i].queries;
        in[i].server_ms = inputs[i].ms;
    }
    indexes_of(indexes_json, &indexes);
    advice_recommend_namespace("app", "books", in, n, &indexes, documents, 1000, &r->items,
                               &r->n_items, &r->redundant, &r->n_redundant);
    advice_recommend_rank(r->items, r->n_items);
    for (uint32_t i = 0; i < n; i++)
        advice_shape_cleanup(&shapes[i]);
    advice_indexes_cleanup(&indexes);
}

#define ID_INDEX "{'v': 2, 'key': {'_id': 1}, 'name': '_id_'}"
#define Q_AUTHOR_YEAR                                                                              \
    "{'find': 'books', 'filter': {'author': 'x', 'year': {'$gte': 1990}}, 'sort': {'year': -1}, "  \
    "'$db': 'app'}"

/* ---- index.c --------------------------------------------------------------------------------- */

static bool
spec_ok(const char *text, struct advice_index *index)
{
    bson_t *spec = json(text);
    bool got = advice_index_from_spec(spec, index);

    bson_destroy(spec);
    return got;
}

static void
test_index_specs(void)
{
    static const struct {
        const char *why;
        const char *spec;
    } refused[] = {
        {"no key", "{'v': 2, 'name': 'x'}"},
        {"key a string", "{'key': 'a', 'name': 'x'}"},
        {"key empty", "{'key': {}, 'name': 'x'}"},
        {"key value a boolean", "{'key': {'a': true}, 'name': 'x'}"},
        {"key value a document", "{'key': {'a': {'b': 1}}, 'name': 'x'}"},
        {"key value null", "{'key': {'a': null}, 'name': 'x'}"},
        {"key path empty", "{'key': {'': 1}, 'name': 'x'}"},
        {"no name", "{'key': {'a': 1}}"},
        {"name a number", "{'key': {'a': 1}, 'name': 5}"},
        {"name empty", "{'key': {'a': 1}, 'name': ''}"},
        {"name holding a NUL", "{'key': {'a': 1}, 'name': 'a\\u0000b'}"},
        {"key value an array", "{'key': {'a': [1]}, 'name': 'x'}"},
    };
    struct advice_index index, copy;
    bson_string_t *many;
    char *text, *name;
    bson_t keys;

    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bool got = spec_ok(refused[i].spec, &index);

        ok(!got && index.n_keys == 0 && index.name == NULL, "listIndexes entry refused: %s",
           refused[i].why);
    }

    ok(spec_ok(
           "{'v': 2, 'key': {'author': 1, 'year': -1}, 'name': 'author_1_year_-1', 'unique': true, "
           "'sparse': 1, 'ns': 'app.books'}",
           &index) &&
           index.n_keys == 2 && index.keys[1].dir == -1 && index.unique && index.sparse &&
           !index.special && strcmp(index.name, "author_1_year_-1") == 0,
       "an ordinary entry, unique and sparse");
    name = advice_index_default_name(&index);
    is_str(name, "author_1_year_-1", "default name");
    bson_free(name);
    advice_index_keys_bson(&index, &keys);
    {
        char *j = bson_as_relaxed_extended_json(&keys, NULL);

        is_str(j, "{ \"author\" : 1, \"year\" : -1 }", "keys as BSON");
        bson_free(j);
    }
    bson_destroy(&keys);
    advice_index_copy(&copy, &index);
    ok(copy.name != index.name && strcmp(copy.name, index.name) == 0 &&
           copy.keys[0].path != index.keys[0].path && advice_index_is_prefix(&copy, &index) &&
           advice_index_is_prefix(&index, &copy),
       "a copy is deep and equal");
    advice_index_cleanup(&copy);
    advice_index_cleanup(&index);

    ok(spec_ok("{'key': {'a': -2.5, 'b': 0, 'c': {'$numberLong': '7'}}, 'name': 'x'}", &index) &&
           index.keys[0].dir == -1 && index.keys[1].dir == 1 && index.keys[2].dir == 1,
       "numeric directions by sign (0 counts as 1)");
    advice_index_cleanup(&index);
    ok(spec_ok(
           "{'key': {'_fts': 'text', '_ftsx': 1}, 'name': 'title_text', 'weights': {'title': 1}}",
           &index) &&
           index.special && index.keys[0].dir == 0,
       "a text index is special");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'loc': '2dsphere'}, 'name': 'loc_2dsphere'}", &index) && index.special,
       "a 2dsphere index is special");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'a': 'hashed'}, 'name': 'a_hashed'}", &index) && index.special,
       "a hashed index is special");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'$**': 1}, 'name': '$**_1'}", &index) && index.special,
       "a wildcard index is special");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'attrs.$**': 1}, 'name': 'attrs.$**_1'}", &index) && index.special,
       "a wildcard on a path is special");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'a': 1}, 'name': 'a_1', 'partialFilterExpression': {'a': {'$gt': 1}}, "
               "'hidden': true, "
               "'expireAfterSeconds': 60, 'collation': {'locale': 'fr'}}",
               &index) &&
           index.partial && index.hidden && index.ttl && index.collation,
       "partial, hidden, TTL and collation are read");
    advice_index_cleanup(&index);
    ok(spec_ok(
           "{'key': {'a': 1}, 'name': 'a_1', 'collation': {'locale': 'simple'}, 'unique': 'yes', "
           "'hidden': 0}",
           &index) &&
           !index.collation && !index.unique && !index.hidden,
       "simple collation, a string unique and hidden 0 are not set");
    advice_index_cleanup(&index);
    ok(spec_ok("{'key': {'a': 1}, 'name': 'first', 'key': 'junk', 'name': 7}", &index) &&
           strcmp(index.name, "first") == 0 && index.n_keys == 1,
       "repeated fields: the first wins");
    advice_index_cleanup(&index);

    many = bson_string_new("{'key': {");
    for (int i = 0; i < ADVICE_INDEX_MAX_KEYS; i++)
        bson_string_append_printf(many, "%s'k%d': 1", i ? ", " : "", i);
    bson_string_append(many, "}, 'name': 'n'}");
    ok(spec_ok(many->str, &index) && index.n_keys == ADVICE_INDEX_MAX_KEYS, "%d keys are read",
       ADVICE_INDEX_MAX_KEYS);
    advice_index_cleanup(&index);
    bson_string_truncate(many, many->len - strlen("}, 'name': 'n'}"));
    bson_string_append(many, ", 'one_more': 1}, 'name': 'n'}");
    ok(!spec_ok(many->str, &index) && index.n_keys == 0, "%d keys are refused",
       ADVICE_INDEX_MAX_KEYS + 1);
    bson_string_free(many, true);

    {
        char big[ADVICE_INDEX_MAX_NAME_LEN + 2];

        memset(big, 'n', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        text = bson_strdup_printf("{'key': {'a': 1}, 'name': '%s'}", big);
        ok(!spec_ok(text, &index), "a name of %zu bytes is refused", strlen(big));
        bson_free(text);
        text = bson_strdup_printf("{'key': {'%s': 1}, 'name': 'x'}", big);
        ok(!spec_ok(text, &index), "a key path of %zu bytes is refused", strlen(big));
        bson_free(text);
    }
    ok(!advice_index_from_spec(NULL, &index), "a NULL entry is refused");
    advice_index_cleanup(NULL);
    advice_indexes_cleanup(NULL);
}

static void
test_index_prefix(void)
{
    struct advice_index a, b, t;

    ok(spec_ok("{'key': {'a': 1}, 'name': 'a_1'}", &a) &&
           spec_ok("{'key': {'a': 1, 'b': -1}, 'name': 'ab'}", &b) &&
           spec_ok("{'key': {'a': 'text'}, 'name': 't'}", &t),
       "prefix test indexes");
    ok(advice_index_is_prefix(&a, &b) && !advice_index_is_prefix(&b, &a),
       "a_1 is a prefix of a_1_b_-1, not back");
    ok(advice_index_is_prefix(&b, &b), "an index is a prefix of itself");
    ok(!advice_index_is_prefix(&t, &t) && !advice_index_is_prefix(&a, &t),
       "special indexes are never prefixes");
    a.keys[0].dir = -1;
    ok(!advice_index_is_prefix(&a, &b), "a_-1 is not a prefix of a_1_b_-1 (directions compared)");
    advice_index_cleanup(&a);
    advice_index_cleanup(&b);
    advice_index_cleanup(&t);
}

/* FerretDB's real listIndexes reply, read entry by entry. */
static void
test_ferretdb_listindexes(void)
{
    const char *top = getenv("abs_top_srcdir");
    char path[4096];
    bson_json_reader_t *reader;
    bson_error_t error;
    bson_t reply = BSON_INITIALIZER;
    bson_iter_t it, m;
    uint32_t n = 0;
    bool names = true;

    snprintf(path, sizeof path, "%s/tests/fixtures/explain/ferretdb-listindexes.json",
             top ? top : ".");
    reader = bson_json_reader_new_from_file(path, &error);
    if (!ok(reader && bson_json_reader_read(reader, &reply, &error) == 1,
            "ferretdb-listindexes.json reads")) {
        bson_json_reader_destroy(reader);
        bson_destroy(&reply);
        return;
    }
    if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "cursor.firstBatch", &m) &&
        bson_iter_recurse(&m, &it)) {
        const char *want[] = {"_id_", "author_1"};

        while (bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t spec;
            struct advice_index index;

            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&spec, data, len) && advice_index_from_spec(&spec, &index)) {
                names = names && n < 2 && strcmp(index.name, want[n]) == 0 && index.n_keys == 1;
                n++;
                advice_index_cleanup(&index);
            }
        }
    }
    ok(n == 2 && names, "FerretDB's listIndexes: _id_ and author_1 read");
    bson_json_reader_destroy(reader);
    bson_destroy(&reply);
}

/* Random junk around real entries never crashes and never yields an index without keys or name. */
static void
test_index_spec_junk(void)
{
    bson_t *good = json(
        "{'v': 2, 'key': {'author': 1, 'year': -1}, 'name': 'author_1_year_-1', 'unique': true}");
    uint64_t x = 0x1234567;
    uint32_t bad = 0, read = 0;
    uint8_t *buf = malloc(good->len);

    for (int i = 0; i < 20000; i++) {
        struct advice_index index;
        bson_t view;

        memcpy(buf, bson_get_data(good), good->len);
        for (int e = 0; e < 3; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[4 + x % (good->len - 5)] = (uint8_t)(x >> 32);
        }
        if (!bson_init_static(&view, buf, good->len) || !bson_validate(&view, 0, NULL))
            continue;
        if (advice_index_from_spec(&view, &index)) {
            read++;
            if (index.n_keys == 0 || !index.name || strlen(index.name) == 0)
                bad++;
            advice_index_cleanup(&index);
        } else if (index.n_keys != 0 || index.name != NULL) {
            bad++;
        }
    }
    free(buf);
    bson_destroy(good);
    is_int(bad, 0,
           "20,000 corrupted entries: %u read, all with keys and a name; refused ones empty", read);
}

/* ---- recommend.c: one namespace ---------------------------------------------------------------
 */

static void
test_coverage(void)
{
    static const struct {
        const char *why;
        const char *indexes;
        const char *want; /* the advised index, or NULL */
    } cases[] = {
        {"no index but _id_: advised", "{'i': [" ID_INDEX "]}", "author_1_year_-1"},
        {"the index exists",
         "{'i': [" ID_INDEX ", {'key': {'author': 1, 'year': -1}, 'name': 'ay'}]}", NULL},
        {"the index exists with the sort reversed (read backwards)",
         "{'i': [" ID_INDEX ", {'key': {'author': -1, 'year': 1}, 'name': 'ay'}]}", NULL},
        {"the index exists with only the equality key reversed",
         "{'i': [" ID_INDEX ", {'key': {'author': -1, 'year': -1}, 'name': 'ay'}]}", NULL},
        {"a longer index with the same prefix covers it",
         "{'i': [" ID_INDEX ", {'key': {'author': 1, 'year': -1, 'title': 1}, 'name': 'ayt'}]}",
         NULL},
        {"a prefix of it does not", "{'i': [" ID_INDEX ", {'key': {'author': 1}, 'name': 'a'}]}",
         "author_1_year_-1"},
        {"the same keys in another order do not",
         "{'i': [{'key': {'year': -1, 'author': 1}, 'name': 'ya'}]}", "author_1_year_-1"},
        {"the same keys, partial: it cannot be created again",
         "{'i': [{'key': {'author': 1, 'year': -1}, 'name': 'p', 'partialFilterExpression': {'a': "
         "1}}]}",
         NULL},
        {"a longer hidden index does not serve",
         "{'i': [{'key': {'author': 1, 'year': -1, 'z': 1}, 'name': 'h', 'hidden': true}]}",
         "author_1_year_-1"},
        {"a longer partial index does not serve",
         "{'i': [{'key': {'author': 1, 'year': -1, 'z': 1}, 'name': 'p', "
         "'partialFilterExpression': {'a': 1}}]}",
         "author_1_year_-1"},
        {"a text index does not serve",
         "{'i': [{'key': {'_fts': 'text', '_ftsx': 1}, 'name': 't'}]}", "author_1_year_-1"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct input in = {Q_AUTHOR_YEAR, ADVICE_PLAN_COLLSCAN, 10, 100};
        struct result r;

        advise(&in, 1, cases[i].indexes, 5000, &r);
        if (cases[i].want)
            ok(r.n_items == 1 && strcmp(r.items[0].index.name, cases[i].want) == 0, "coverage: %s",
               cases[i].why);
        else
            is_int(r.n_items, 0, "coverage: %s", cases[i].why);
        result_cleanup(&r);
    }
}

static void
test_item_fields(void)
{
    struct input in[] = {
        {Q_AUTHOR_YEAR, ADVICE_PLAN_COLLSCAN, 120, 340.5},
        {"{'find': 'books', 'filter': {'author': 'y'}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 30,
         60},
        {"{'count': 'books', 'query': {'author': 'z'}, '$db': 'app'}", ADVICE_PLAN_IN_MEMORY_SORT,
         5, 2},
    };
    struct result r;

    advise(in, 3, "{'i': [" ID_INDEX "]}", 5000, &r);
    if (!is_int(r.n_items, 1, "three shapes one index serves: one advice")) {
        result_cleanup(&r);
        return;
    }
    is_str(r.items[0].db, "app", "item namespace db");
    is_str(r.items[0].coll, "books", "item namespace collection");
    is_str(r.items[0].index.name, "author_1_year_-1", "item index name");
    is_int(r.items[0].index.n_keys, 2, "item index keys");
    is_int((long long)r.items[0].queries, 155, "queries summed");
    ok(r.items[0].server_ms > 402.49 && r.items[0].server_ms < 402.51,
       "server time summed (%.2f ms)", r.items[0].server_ms);
    is_int(r.items[0].documents, 5000, "documents");
    is_str(advice_reason_name(r.items[0].reason), "collection_scan",
           "reason: the worst of the shapes");
    is_str(advice_evidence_name(r.items[0].evidence), "explain", "evidence");
    ok(r.items[0].n_shapes == 3 &&
           strcmp(r.items[0].shapes[0], "find app.books {author: ?, year: {$gte: ?}} sort "
                                        "{year: -1}") == 0 &&
           strcmp(r.items[0].shapes[1], "find app.books {author: ?}") == 0 &&
           strcmp(r.items[0].shapes[2], "count app.books {author: ?}") == 0,
       "the shapes it serves, values shown as ?");
    is_str(r.items[0].mongosh,
           "db.getSiblingDB(\"app\").books.createIndex({author: 1, year: -1}, {name: "
           "\"author_1_year_-1\"})",
           "mongosh text");
    is_str(r.items[0].mongoose, "bookSchema.index({author: 1, year: -1})", "mongoose text");
    is_int(r.n_redundant, 0, "no redundant index");
    result_cleanup(&r);
}

static void
test_merging(void)
{
    struct input both[] = {
        {"{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': 1}, '$db': 'app'}",
         ADVICE_PLAN_COLLSCAN, 1, 1},
        {"{'find': 'books', 'filter': {'a': 2}, 'sort': {'b': -1}, '$db': 'app'}",
         ADVICE_PLAN_COLLSCAN, 1, 1},
    };
    struct input mixed[] = {
        {"{'find': 'books', 'sort': {'a': 1, 'b': 1}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 1, 1},
        {"{'find': 'books', 'sort': {'a': 1, 'b': -1}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 1, 1},
    };
    struct input prefix[] = {
        {"{'find': 'books', 'filter': {'a': 1}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 1, 1},
        {"{'find': 'books', 'filter': {'x': 1}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 1, 1},
        {"{'find': 'books', 'filter': {'a': 1, 'b': 1, 'c': {'$gt': 1}}, '$db': 'app'}",
         ADVICE_PLAN_COLLSCAN, 1, 1},
        {"{'find': 'books', 'filter': {'a': 1, 'b': 1}, '$db': 'app'}", ADVICE_PLAN_COLLSCAN, 1, 1},
    };
    struct result r;

    advise(both, 2, "{'i': []}", 5000, &r);
    ok(r.n_items == 1 && r.items[0].n_shapes == 2,
       "sort {b: 1} and {b: -1} after an equality: one index");
    result_cleanup(&r);
    advise(mixed, 2, "{'i': []}", 5000, &r);
    ok(r.n_items == 2,
       "sorts {a: 1, b: 1} and {a: 1, b: -1}: two indexes (neither reads the other's order)");
    result_cleanup(&r);
    advise(prefix, 4, "{'i': []}", 5000, &r);
    ok(r.n_items == 2 && r.items[0].n_shapes + r.items[1].n_shapes == 4 &&
           ((strcmp(r.items[0].index.name, "a_1_b_1_c_1") == 0 &&
             strcmp(r.items[1].index.name, "x_1") == 0) ||
            (strcmp(r.items[1].index.name, "a_1_b_1_c_1") == 0 &&
             strcmp(r.items[0].index.name, "x_1") == 0)),
       "a_1 and a_1_b_1 merge into a_1_b_1_c_1; x_1 stays apart");
    result_cleanup(&r);
}

static void
test_verdicts(void)
{
    struct input in = {Q_AUTHOR_YEAR, ADVICE_PLAN_INDEXED, 1, 1};
    struct input title = {"{'find': 'books', 'filter': {'title': 'x'}, '$db': 'app'}",
                          ADVICE_PLAN_NOT_MONGOD, 1, 1};
    struct input sort_only = {"{'find': 'books', 'sort': {'year': -1}, '$db': 'app'}",
                              ADVICE_PLAN_NOT_MONGOD, 1, 1};
    struct result r;

    advise(&in, 1, "{'i': []}", 5000, &r);
    is_int(r.n_items, 0, "verdict INDEXED: no advice");
    result_cleanup(&r);
    in.verdict = ADVICE_PLAN_IN_MEMORY_SORT;
    advise(&in, 1, "{'i': []}", 5000, &r);
    ok(r.n_items == 1 && r.items[0].reason == ADVICE_REASON_IN_MEMORY_SORT,
       "verdict IN_MEMORY_SORT: in_memory_sort");
    result_cleanup(&r);
    in.verdict = ADVICE_PLAN_FULL_IXSCAN;
    advise(&in, 1, "{'i': []}", 5000, &r);
    ok(r.n_items == 1 && r.items[0].reason == ADVICE_REASON_COLLECTION_SCAN,
       "verdict FULL_IXSCAN: collection_scan");
    result_cleanup(&r);

    /* no mongod plan: the index check */
    in.verdict = ADVICE_PLAN_NOT_MONGOD;
    advise(&in, 1, "{'i': [" ID_INDEX ", {'v': 2, 'key': {'author': 1}, 'name': 'author_1'}]}",
           5000, &r);
    is_int(r.n_items, 0, "no plan, an index leads with the equality path: served, no advice");
    result_cleanup(&r);
    advise(&in, 1, "{'i': [" ID_INDEX ", {'v': 2, 'key': {'year': 1}, 'name': 'year_1'}]}", 5000,
           &r);
    is_int(r.n_items, 0, "no plan, an index leads with the range (and sort) path: served");
    result_cleanup(&r);
    advise(&title, 1, "{'i': [" ID_INDEX ", {'v': 2, 'key': {'author': 1}, 'name': 'author_1'}]}",
           5000, &r);
    ok(r.n_items == 1 && r.items[0].reason == ADVICE_REASON_NO_USABLE_INDEX &&
           r.items[0].evidence == ADVICE_EVIDENCE_INDEXES &&
           strcmp(r.items[0].index.name, "title_1") == 0,
       "no plan, no index on title: title_1, no_usable_index, evidence indexes");
    result_cleanup(&r);
    advise(&sort_only, 1, "{'i': [{'v': 2, 'key': {'year': 1}, 'name': 'year_1'}]}", 5000, &r);
    is_int(r.n_items, 0, "no plan, an index leads with the first sort key: served");
    result_cleanup(&r);
    advise(&title, 1,
           "{'i': [{'key': {'title': 1}, 'name': 'p', 'partialFilterExpression': {'x': 1}}]}", 5000,
           &r);
    is_int(r.n_items, 0,
           "no plan, a partial index with the same keys: not served, but cannot be created: none");
    result_cleanup(&r);
    advise(
        &title, 1,
        "{'i': [{'key': {'title': 1, 'z': 1}, 'name': 'p', 'partialFilterExpression': {'x': 1}}]}",
        5000, &r);
    ok(r.n_items == 1 && strcmp(r.items[0].index.name, "title_1") == 0,
       "no plan, only a partial index leads with title: title_1 advised");
    result_cleanup(&r);
}

static void
test_no_advice(void)
{
    struct input id = {"{'find': 'books', 'filter': {'_id': 7}, '$db': 'app'}",
                       ADVICE_PLAN_NOT_MONGOD, 100, 100};
    struct input id_in = {
        "{'find': 'books', 'filter': {'_id': {'$in': [1]}, 'a': 1}, '$db': 'app'}",
        ADVICE_PLAN_COLLSCAN, 100, 100};
    struct input unindexable = {"{'find': 'books', 'filter': {'a': {'$ne': 1}}, '$db': 'app'}",
                                ADVICE_PLAN_COLLSCAN, 100, 100};
    struct input other = {"{'find': 'authors', 'filter': {'a': 1}, '$db': 'app'}",
                          ADVICE_PLAN_COLLSCAN, 1, 1};
    struct input small = {Q_AUTHOR_YEAR, ADVICE_PLAN_COLLSCAN, 100, 100};
    struct result r;

    advise(&id, 1, "{'i': [" ID_INDEX "]}", 5000, &r);
    is_int(r.n_items, 0, "_id lookup: no advice");
    result_cleanup(&r);
    advise(&id_in, 1, "{'i': [" ID_INDEX "]}", 5000, &r);
    is_int(r.n_items, 0, "_id $in with another path: no advice");
    result_cleanup(&r);
    advise(&unindexable, 1, "{'i': []}", 5000, &r);
    is_int(r.n_items, 0, "only unindexable paths: no advice");
    result_cleanup(&r);
    advise(&other, 1, "{'i': []}", 5000, &r);
    is_int(r.n_items, 0, "a shape of another collection is not advised here");
    result_cleanup(&r);
    advise(
        &small, 1,
        "{'i': [{'key': {'a': 1}, 'name': 'a_1'}, {'key': {'a': 1, 'b': 1}, 'name': 'a_1_b_1'}]}",
        999, &r);
    ok(r.n_items == 0 && r.n_redundant == 1,
       "999 documents, min 1000: no advice, redundant still listed");
    result_cleanup(&r);
    advise(&small, 1, "{'i': []}", 1000, &r);
    is_int(r.n_items, 1, "1000 documents: advised");
    result_cleanup(&r);
}

static void
test_redundant(void)
{
    struct result r;

    advise(NULL, 0,
           "{'i': [" ID_INDEX ", {'key': {'_id': 1, 'x': 1}, 'name': 'idx'},"
           "{'key': {'a': 1}, 'name': 'a_1'}, {'key': {'a': 1, 'b': 1}, 'name': 'a_1_b_1'},"
           "{'key': {'b': 1}, 'name': 'b_1', 'unique': true}, {'key': {'b': 1, 'c': 1}, 'name': "
           "'b_1_c_1'},"
           "{'key': {'u': 1}, 'name': 'u_1', 'unique': true}, {'key': {'u': 1, 'v': 1}, 'name': "
           "'u_1_v_1', "
           "'unique': true},"
           "{'key': {'n': 1}, 'name': 'n_1'}, {'key': {'n': 1, 'o': 1}, 'name': 'n_1_o_1', "
           "'unique': true},"
           "{'key': {'c': 1}, 'name': 'c_1', 'expireAfterSeconds': 3600}, {'key': {'c': 1, 'd': "
           "1}, 'name': 'c_1_d_1'},"
           "{'key': {'e': 1}, 'name': 'e_1', 'sparse': true}, {'key': {'e': 1, 'f': 1}, 'name': "
           "'e_1_f_1'},"
           "{'key': {'g': -1}, 'name': 'g_-1'}, {'key': {'g': 1, 'h': 1}, 'name': 'g_1_h_1'},"
           "{'key': {'i': 1, 'j': 1}, 'name': 'i_1_j_1'}, {'key': {'i': -1, 'j': 1, 'k': 1}, "
           "'name': 'i_-1_j_1_k_1'},"
           "{'key': {'p': 1, 'q': -1}, 'name': 'p_1_q_-1'}, {'key': {'p': -1, 'q': 1, 'r': 1}, "
           "'name': 'p_-1_q_1_r_1'},"
           "{'key': {'s': 1}, 'name': 's_1'}, {'key': {'s': 1, 't': 1}, 'name': 's_1_t_1', "
           "'hidden': true},"
           "{'key': {'w': 1}, 'name': 'w_1'}, {'key': {'w': 'text'}, 'name': 'w_text'},"
           "{'key': {'y': 1}, 'name': 'y_1', 'partialFilterExpression': {'y': 1}}, {'key': {'y': "
           "1, 'z': 1}, "
           "'name': 'y_1_z_1'}"
           "]}",
           5000, &r);
    {
        bson_string_t *got = bson_string_new(NULL);

        for (uint32_t i = 0; i < r.n_redundant; i++)
            bson_string_append_printf(got, "%s%s<%s", i ? " " : "", r.redundant[i].index,
                                      r.redundant[i].covered_by);
        is_str(got->str, "a_1<a_1_b_1 n_1<n_1_o_1 g_-1<g_1_h_1 p_1_q_-1<p_-1_q_1_r_1",
               "redundant: prefixes (or reversed prefixes); never _id_, a unique, TTL, sparse, "
               "hidden, partial, "
               "special or mixed-direction one");
        bson_string_free(got, true);
    }
    ok(r.n_redundant > 0 && strcmp(r.redundant[0].db, "app") == 0 &&
           strcmp(r.redundant[0].coll, "books") == 0,
       "redundant pairs carry the namespace");
    result_cleanup(&r);
}

static void
test_rank(void)
{
    struct advice_item items[5];
    const char *names[] = {"c_1", "a_1", "b_1", "d_1", "e_1"};
    double ms[] = {5, 50, 20, 20, 20};
    uint64_t queries[] = {1, 1, 3, 9, 3};

    memset(items, 0, sizeof items);
    for (int i = 0; i < 5; i++) {
        items[i].index.name = (char *)names[i];
        items[i].server_ms = ms[i];
        items[i].queries = queries[i];
    }
    advice_recommend_rank(items, 5);
    ok(strcmp(items[0].index.name, "a_1") == 0 && strcmp(items[1].index.name, "d_1") == 0 &&
           strcmp(items[2].index.name, "b_1") == 0 && strcmp(items[3].index.name, "e_1") == 0 &&
           strcmp(items[4].index.name, "c_1") == 0,
       "ranked by server time, then queries, then name");
    advice_recommend_rank(NULL, 0);
}

/* Two namespaces into the same arrays, then ranked across them. */
static void
test_two_namespaces(void)
{
    struct advice_shape a, b;
    struct advice_shape_input in_a, in_b;
    struct advice_indexes none = {NULL, 0};
    struct advice_item *items = NULL;
    struct advice_redundant *redundant = NULL;
    uint32_t n_items = 0, n_redundant = 0;

    shape_of("{'find': 'books', 'filter': {'a': 1}, '$db': 'app'}", &a);
    shape_of("{'find': 'people', 'filter': {'name': 1}, '$db': 'crm'}", &b);
    in_a = (struct advice_shape_input){&a, ADVICE_PLAN_COLLSCAN, 10, 10};
    in_b = (struct advice_shape_input){&b, ADVICE_PLAN_COLLSCAN, 10, 99};
    advice_recommend_namespace("app", "books", &in_a, 1, &none, 5000, 1000, &items, &n_items,
                               &redundant, &n_redundant);
    advice_recommend_namespace("crm", "people", &in_b, 1, &none, 5000, 1000, &items, &n_items,
                               &redundant, &n_redundant);
    advice_recommend_rank(items, n_items);
    ok(n_items == 2 && strcmp(items[0].coll, "people") == 0 &&
           strcmp(items[1].coll, "books") == 0 &&
           strcmp(items[0].mongoose, "peopleSchema.index({name: 1})") == 0 &&
           strcmp(items[0].mongosh,
                  "db.getSiblingDB(\"crm\").people.createIndex({name: 1}, {name: \"name_1\"})") ==
               0,
       "two namespaces appended and ranked together");
    for (uint32_t i = 0; i < n_items; i++)
        advice_item_cleanup(&items[i]);
    bson_free(items);
    bson_free(redundant);
    advice_shape_cleanup(&a);
    advice_shape_cleanup(&b);
    advice_item_cleanup(NULL);
    advice_redundant_cleanup(NULL);
}

/* ---- texts
 * ---------------------------------------------------------------------------------------- */

static bool
starts_with(const char *s, const char *prefix)
{
    bool yes = s && strncmp(s, prefix, strlen(prefix)) == 0;

    if (!yes)
        diag("got %s", s ? s : "(null)");
    return yes;
}

static void
test_texts(void)
{
    static const struct {
        const char *coll;
        const char *schema;
    } schemas[] = {
        {"books", "bookSchema"},
        {"categories", "categorySchema"},
        {"boxes", "boxSchema"},
        {"addresses", "addressSchema"},
        {"matches", "matchSchema"},
        {"people", "peopleSchema"},
        {"status", "statusSchema"},
        {"glass", "glassSchema"},
        {"user_profiles", "userProfileSchema"},
        {"UserProfiles", "userProfileSchema"},
        {"order-items", "orderItemSchema"},
        {"2024_logs", "collection2024LogSchema"},
        {"", "collectionSchema"},
        {"$$$", "collectionSchema"},
        {"caf\xc3\xa9s", "cafSchema"},
    };
    struct advice_index index;
    char *s;

    for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
        memset(&index, 0, sizeof index);
        s = advice_mongoose_text(schemas[i].coll, &index);
        ok(strncmp(s, schemas[i].schema, strlen(schemas[i].schema)) == 0 &&
               strcmp(s + strlen(schemas[i].schema), ".index({})") == 0,
           "mongoose schema for \"%s\": %s", schemas[i].coll, s);
        bson_free(s);
    }

    ok(spec_ok("{'key': {'a.b': 1, 'first name': -1, 'x': 1}, 'name': 'we\\u0022ird\\\\name'}",
               &index),
       "text index");
    s = advice_mongosh_text("app", "books", &index);
    is_str(s,
           "db.getSiblingDB(\"app\").books.createIndex({\"a.b\": 1, \"first name\": -1, x: 1}, "
           "{name: \"we\\\"ird\\\\name\"})",
           "mongosh: dotted and spaced paths quoted, the name escaped");
    bson_free(s);
    s = advice_mongoose_text("books", &index);
    is_str(s, "bookSchema.index({\"a.b\": 1, \"first name\": -1, x: 1})", "mongoose: paths quoted");
    bson_free(s);
    s = advice_mongosh_text("my\"db", "my-books", &index);
    is_str(s,
           "db.getSiblingDB(\"my\\\"db\").getCollection(\"my-books\").createIndex({\"a.b\": 1, "
           "\"first name\": -1, "
           "x: 1}, {name: \"we\\\"ird\\\\name\"})",
           "mongosh: a collection that is not an identifier goes through getCollection");
    bson_free(s);
    s = advice_mongosh_text("app", "stats", &index);
    ok(starts_with(s, "db.getSiblingDB(\"app\").getCollection(\"stats\")."),
       "mongosh: a collection named like a db method goes through getCollection");
    bson_free(s);
    s = advice_mongosh_text("app", "_private", &index);
    ok(starts_with(s, "db.getSiblingDB(\"app\").getCollection(\"_private\")."),
       "mongosh: a collection starting with _ goes through getCollection");
    bson_free(s);
    s = advice_mongosh_text("app", "system.views", &index);
    ok(starts_with(s, "db.getSiblingDB(\"app\").getCollection(\"system.views\")."),
       "mongosh: a dotted collection goes through getCollection");
    bson_free(s);
    s = advice_mongosh_text("a\nb\x01\xff", "c", &index);
    ok(starts_with(s, "db.getSiblingDB(\"a\\x0ab\\x01\\xff\").c."),
       "mongosh: control and non-UTF-8 bytes escaped");
    bson_free(s);
    advice_index_cleanup(&index);

    memset(&index, 0, sizeof index);
    index.keys[0].path = "author";
    index.keys[0].dir = 1;
    index.n_keys = 1;
    s = advice_mongosh_text("app", "books", &index);
    is_str(s, "db.getSiblingDB(\"app\").books.createIndex({author: 1}, {name: \"author_1\"})",
           "mongosh: an index without a name gets its default name");
    bson_free(s);
    is_str(advice_reason_name(ADVICE_REASON_NO_USABLE_INDEX), "no_usable_index", "reason names");
    is_str(advice_evidence_name(ADVICE_EVIDENCE_INDEXES), "indexes", "evidence names");
}

int
main(void)
{
    test_index_specs();
    test_index_prefix();
    test_ferretdb_listindexes();
    test_index_spec_junk();
    test_coverage();
    test_item_fields();
    test_merging();
    test_verdicts();
    test_no_advice();
    test_redundant();
    test_rank();
    test_two_namespaces();
    test_texts();
    return done_testing();
}
