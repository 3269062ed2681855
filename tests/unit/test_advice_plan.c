/*
 * tests/unit/test_advice_plan.c: owns the tests of advice/plan.c: the
 * verdict on every explain reply in tests/fixtures/explain/ (mongod's
 * documented format, and FerretDB v1.24.2's real answers, which must be
 * NOT_MONGOD so that the advisor falls back to the index check; the
 * directory's README.md says which docs page each mongod file is modelled
 * on), hostile replies (wrong types, missing stages, too deep, too many
 * stages, error replies), random corruption of the fixtures, and the
 * explain commands advice_plan_command and advice_plan_shape_command
 * build. Fixtures are found through $abs_top_srcdir.
 */
#include "config.h"

#include "advice/plan.h"
#include "advice/shape.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/cmd.h"
#include "wire/doc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_DIR "tests/fixtures/explain"
#define CORRUPTIONS_PER_FIXTURE 1500

static const struct {
    const char *file;
    enum advice_plan_verdict verdict;
} expects[] = {
    {"ferretdb-find.json", ADVICE_PLAN_NOT_MONGOD},
    {"ferretdb-aggregate.json", ADVICE_PLAN_NOT_MONGOD},
    {"ferretdb-listindexes.json", ADVICE_PLAN_NOT_MONGOD},
    {"mongod-find-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-find-ixscan-fetch.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-sort.json", ADVICE_PLAN_IN_MEMORY_SORT},
    {"mongod-find-sort-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-find-full-ixscan.json", ADVICE_PLAN_FULL_IXSCAN},
    {"mongod-find-full-ixscan-backward.json", ADVICE_PLAN_FULL_IXSCAN},
    {"mongod-find-partial-bounds.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-or-subplan.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-or-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-find-sort-merge.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-sbe-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-find-sbe-ixscan.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-idhack.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-express.json", ADVICE_PLAN_INDEXED},
    {"mongod-find-eof.json", ADVICE_PLAN_INDEXED},
    {"mongod-aggregate-cursor.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-aggregate-cursor-ixscan.json", ADVICE_PLAN_INDEXED},
    {"mongod-aggregate-sbe-group.json", ADVICE_PLAN_IN_MEMORY_SORT},
    {"mongod-aggregate-sbe-lookup.json", ADVICE_PLAN_COLLSCAN},
    {"mongos-find-sharded.json", ADVICE_PLAN_COLLSCAN},
    {"mongos-find-sharded-sbe.json", ADVICE_PLAN_INDEXED},
    {"mongos-aggregate-sharded.json", ADVICE_PLAN_IN_MEMORY_SORT},
    {"mongod-count-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-count-scan.json", ADVICE_PLAN_INDEXED},
    {"mongod-distinct-scan.json", ADVICE_PLAN_INDEXED},
    {"mongod-update-collscan.json", ADVICE_PLAN_COLLSCAN},
    {"mongod-delete-ixscan.json", ADVICE_PLAN_INDEXED},
    {"mongod-error-unauthorized.json", ADVICE_PLAN_NOT_MONGOD},
};

#define N_EXPECTS (sizeof expects / sizeof expects[0])

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    text = malloc((size_t)n + 1);
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
        free(text);
        text = NULL;
    }
    if (text)
        text[n] = '\0';
    fclose(f);
    return text;
}

static enum advice_plan_verdict
verdict_json(const char *text)
{
    bson_t *doc = json(text);
    enum advice_plan_verdict v = advice_plan_read(doc);

    bson_destroy(doc);
    return v;
}

/* Random byte changes of a fixture: whatever passes wire_doc_check gets a verdict, no crash. */
static void
corrupt(const char *name, const bson_t *doc)
{
    uint8_t *buf = malloc(doc->len);
    uint32_t checked = 0, mongod = 0;

    for (int i = 0; i < CORRUPTIONS_PER_FIXTURE; i++) {
        bson_error_t error;
        uint32_t len;
        bson_t view;

        memcpy(buf, bson_get_data(doc), doc->len);
        for (int e = 0, n = 1 + (int)(rnd() % 3); e < n; e++)
            buf[4 + rnd() % (doc->len - 5)] = (uint8_t)rnd();
        if (!wire_doc_check(buf, doc->len, 0, &len, &error) || len != doc->len ||
            !bson_init_static(&view, buf, len))
            continue;
        checked++;
        if (advice_plan_read(&view) != ADVICE_PLAN_NOT_MONGOD)
            mongod++;
    }
    free(buf);
    ok(true, "%s: %d corruptions, %u still valid BSON read (%u still a mongod plan)", name,
       CORRUPTIONS_PER_FIXTURE, checked, mongod);
}

static void
test_fixtures(const char *top)
{
    char dir[4096], path[4200];
    struct dirent *de;
    DIR *d;
    size_t seen = 0;

    snprintf(dir, sizeof dir, "%s/%s", top, FIXTURE_DIR);
    d = opendir(dir);
    if (!ok(d != NULL, "opendir %s", dir))
        return;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name), k;
        bson_error_t error;
        bson_t *doc;
        char *text;

        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        seen++;
        for (k = 0; k < N_EXPECTS && strcmp(expects[k].file, de->d_name) != 0; k++)
            ;
        if (!ok(k < N_EXPECTS, "%s has a row in the table", de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        text = slurp(path);
        doc = text ? bson_new_from_json((const uint8_t *)text, -1, &error) : NULL;
        if (!ok(doc != NULL, "%s parses as JSON", de->d_name)) {
            free(text);
            continue;
        }
        is_str(advice_plan_verdict_name(advice_plan_read(doc)),
               advice_plan_verdict_name(expects[k].verdict), "%s: verdict", de->d_name);
        corrupt(de->d_name, doc);
        bson_destroy(doc);
        free(text);
    }
    closedir(d);
    is_int((long long)seen, (long long)N_EXPECTS, "every row of the table has its file");
}

/* ---- hostile replies ------------------------------------------------------------------------- */

static void
test_hostile(void)
{
    static const struct {
        const char *why;
        const char *reply;
        enum advice_plan_verdict verdict;
    } cases[] = {
        {"empty reply", "{}", ADVICE_PLAN_NOT_MONGOD},
        {"queryPlanner not a document", "{'queryPlanner': 5}", ADVICE_PLAN_NOT_MONGOD},
        {"no winningPlan", "{'queryPlanner': {'namespace': 'a.b'}}", ADVICE_PLAN_NOT_MONGOD},
        {"winningPlan not a document", "{'queryPlanner': {'winningPlan': 'COLLSCAN'}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"stage missing", "{'queryPlanner': {'winningPlan': {'inputStage': {'stage': 'IXSCAN'}}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"stage not a string", "{'queryPlanner': {'winningPlan': {'stage': 1}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"stage empty", "{'queryPlanner': {'winningPlan': {'stage': ''}}}", ADVICE_PLAN_NOT_MONGOD},
        {"inputStage not a document",
         "{'queryPlanner': {'winningPlan': {'stage': 'FETCH', 'inputStage': 'COLLSCAN'}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"inputStage without a stage",
         "{'queryPlanner': {'winningPlan': {'stage': 'FETCH', 'inputStage': {}}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"inputStages not an array",
         "{'queryPlanner': {'winningPlan': {'stage': 'OR', 'inputStages': {'stage': 'IXSCAN'}}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"inputStages holding a number",
         "{'queryPlanner': {'winningPlan': {'stage': 'OR', 'inputStages': [{'stage': 'IXSCAN'}, "
         "3]}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"COLLSCAN deep in an OR",
         "{'queryPlanner': {'winningPlan': {'stage': 'OR', 'inputStages': [{'stage': 'IXSCAN'}, "
         "{'stage': 'FETCH', 'inputStage': {'stage': 'COLLSCAN'}}]}}}",
         ADVICE_PLAN_COLLSCAN},
        {"queryPlan not a document: the winningPlan itself is read",
         "{'queryPlanner': {'winningPlan': {'queryPlan': 1, 'stage': 'IXSCAN'}}}",
         ADVICE_PLAN_INDEXED},
        {"a shard without winningPlan",
         "{'queryPlanner': {'winningPlan': {'stage': 'SHARD_MERGE', 'shards': [{'shardName': "
         "'s'}]}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"shards not an array",
         "{'queryPlanner': {'winningPlan': {'stage': 'SHARD_MERGE', 'shards': {'s': {}}}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"shards: the worst plan wins (full scan over sort)",
         "{'queryPlanner': {'winningPlan': {'stage': 'SHARD_MERGE', 'shards': ["
         "{'winningPlan': {'stage': 'SORT', 'inputStage': {'stage': 'IXSCAN', 'indexBounds': {'a': "
         "['[1, 1]']}}}},"
         "{'winningPlan': {'stage': 'IXSCAN', 'indexBounds': {'a': ['[MinKey, MaxKey]']}}}]}}}",
         ADVICE_PLAN_FULL_IXSCAN},
        {"SORT over a full IXSCAN is a full scan",
         "{'queryPlanner': {'winningPlan': {'stage': 'SORT', 'inputStage': {'stage': 'IXSCAN', "
         "'indexBounds': {'a': ['[MinKey, MaxKey]']}}}}}",
         ADVICE_PLAN_FULL_IXSCAN},
        {"two full intervals on one field are not one full bound",
         "{'queryPlanner': {'winningPlan': {'stage': 'IXSCAN', 'indexBounds': {'a': ['[MinKey, "
         "MaxKey]', "
         "'[MinKey, MaxKey]']}}}}",
         ADVICE_PLAN_INDEXED},
        {"indexBounds field not an array",
         "{'queryPlanner': {'winningPlan': {'stage': 'IXSCAN', 'indexBounds': {'a': '[MinKey, "
         "MaxKey]'}}}}",
         ADVICE_PLAN_INDEXED},
        {"indexBounds empty",
         "{'queryPlanner': {'winningPlan': {'stage': 'IXSCAN', 'indexBounds': {}}}}",
         ADVICE_PLAN_INDEXED},
        {"indexBounds with an empty list",
         "{'queryPlanner': {'winningPlan': {'stage': 'IXSCAN', 'indexBounds': {'a': []}}}}",
         ADVICE_PLAN_INDEXED},
        {"ok: 0 with a plan is an error",
         "{'ok': 0, 'queryPlanner': {'winningPlan': {'stage': 'COLLSCAN'}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"ok: 1 with a plan", "{'ok': 1, 'queryPlanner': {'winningPlan': {'stage': 'COLLSCAN'}}}",
         ADVICE_PLAN_COLLSCAN},
        {"stages empty", "{'stages': []}", ADVICE_PLAN_NOT_MONGOD},
        {"stages without $cursor", "{'stages': [{'$match': {}}, {'$group': {}}]}",
         ADVICE_PLAN_NOT_MONGOD},
        {"$cursor not a document", "{'stages': [{'$cursor': 5}]}", ADVICE_PLAN_NOT_MONGOD},
        {"$cursor without queryPlanner", "{'stages': [{'$cursor': {}}]}", ADVICE_PLAN_NOT_MONGOD},
        {"stages not an array",
         "{'stages': {'$cursor': {'queryPlanner': {'winningPlan': {'stage': 'COLLSCAN'}}}}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"sharded aggregate with a junk shard",
         "{'shards': {'a': {'stages': [{'$cursor': {'queryPlanner': {'winningPlan': {'stage': "
         "'IXSCAN'}}}}]}, "
         "'b': 5}}",
         ADVICE_PLAN_NOT_MONGOD},
        {"sharded aggregate with no shard", "{'shards': {}}", ADVICE_PLAN_NOT_MONGOD},
        {"$cursor inside $cursor inside ... (too many explains)",
         "{'stages': [{'$cursor': {'stages': [{'$cursor': {'stages': [{'$cursor': {'stages': "
         "[{'$cursor': "
         "{'stages': [{'$cursor': {'queryPlanner': {'winningPlan': {'stage': "
         "'IXSCAN'}}}}]}}]}}]}}]}}]}",
         ADVICE_PLAN_NOT_MONGOD},
        {"FerretDB-like plan text",
         "{'queryPlanner': {'Plan': ['SCAN books']}, 'explainVersion': '1', 'ok': 1}",
         ADVICE_PLAN_NOT_MONGOD},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_str(advice_plan_verdict_name(verdict_json(cases[i].reply)),
               advice_plan_verdict_name(cases[i].verdict), "hostile: %s", cases[i].why);
    is_int(advice_plan_read(NULL), ADVICE_PLAN_NOT_MONGOD, "hostile: NULL reply");
}

/* A chain of n stages, each the inputStage of the one before, a COLLSCAN at the bottom. */
static enum advice_plan_verdict
chain(int n)
{
    bson_t *stage = bson_new(), reply = BSON_INITIALIZER, planner;
    enum advice_plan_verdict v;

    BSON_APPEND_UTF8(stage, "stage", "COLLSCAN");
    for (int i = 1; i < n; i++) {
        bson_t *up = bson_new();

        BSON_APPEND_UTF8(up, "stage", "FETCH");
        BSON_APPEND_DOCUMENT(up, "inputStage", stage);
        bson_destroy(stage);
        stage = up;
    }
    BSON_APPEND_DOCUMENT_BEGIN(&reply, "queryPlanner", &planner);
    BSON_APPEND_DOCUMENT(&planner, "winningPlan", stage);
    bson_append_document_end(&reply, &planner);
    v = advice_plan_read(&reply);
    bson_destroy(stage);
    bson_destroy(&reply);
    return v;
}

/* An OR of n IXSCAN stages. */
static enum advice_plan_verdict
wide(int n)
{
    bson_t reply = BSON_INITIALIZER, planner, plan, arr, st;
    enum advice_plan_verdict v;
    char key[16];

    BSON_APPEND_DOCUMENT_BEGIN(&reply, "queryPlanner", &planner);
    BSON_APPEND_DOCUMENT_BEGIN(&planner, "winningPlan", &plan);
    BSON_APPEND_UTF8(&plan, "stage", "OR");
    BSON_APPEND_ARRAY_BEGIN(&plan, "inputStages", &arr);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%d", i);
        bson_append_document_begin(&arr, key, -1, &st);
        BSON_APPEND_UTF8(&st, "stage", "IXSCAN");
        bson_append_document_end(&arr, &st);
    }
    bson_append_array_end(&plan, &arr);
    bson_append_document_end(&planner, &plan);
    bson_append_document_end(&reply, &planner);
    v = advice_plan_read(&reply);
    bson_destroy(&reply);
    return v;
}

static void
test_bounds(void)
{
    bson_t reply;

    is_int(chain(65), ADVICE_PLAN_COLLSCAN, "a chain of 65 stages is read (depth 64)");
    is_int(chain(66), ADVICE_PLAN_NOT_MONGOD,
           "a chain of 66 stages is too deep: not a mongod plan");
    is_int(chain(150), ADVICE_PLAN_NOT_MONGOD, "a chain of 150 stages: not a mongod plan");
    is_int(wide(1000), ADVICE_PLAN_INDEXED, "an OR of 1000 IXSCAN is read");
    is_int(wide(1100), ADVICE_PLAN_NOT_MONGOD,
           "an OR of 1100 stages is too many: not a mongod plan");

    /* a NUL inside the stage name: "COLLSCAN" it is not */
    bson_init(&reply);
    {
        bson_t planner, plan;

        BSON_APPEND_DOCUMENT_BEGIN(&reply, "queryPlanner", &planner);
        BSON_APPEND_DOCUMENT_BEGIN(&planner, "winningPlan", &plan);
        bson_append_utf8(&plan, "stage", -1, "COLL\0SCAN", 9);
        bson_append_document_end(&planner, &plan);
        bson_append_document_end(&reply, &planner);
    }
    is_int(advice_plan_read(&reply), ADVICE_PLAN_NOT_MONGOD, "a stage name holding a NUL");
    bson_destroy(&reply);
    is_str(advice_plan_verdict_name(ADVICE_PLAN_FULL_IXSCAN), "full_ixscan", "verdict names");
}

/* ---- building explain commands ------------------------------------------------------------- */

/* out equals the JSON want, field by field in order (compared as canonical extended JSON). */
static bool
same_json(const bson_t *out, const char *want)
{
    bson_t *w = json(want);
    char *a = bson_as_canonical_extended_json(out, NULL);
    char *b = bson_as_canonical_extended_json(w, NULL);
    bool same = a && b && strcmp(a, b) == 0;

    if (!same)
        diag("got  %s\nwant %s", a ? a : "(null)", b ? b : "(null)");
    bson_free(a);
    bson_free(b);
    bson_destroy(w);
    return same;
}

static void
command_case(const char *why, const char *body_json, uint32_t statement, bool want_ok,
             const char *want)
{
    bson_t *body = json(body_json), out;
    bool made = advice_plan_command(body, statement, &out);

    if (want_ok)
        ok(made && same_json(&out, want), "command: %s", why);
    else
        ok(!made && out.len == 5, "command: %s: refused, out empty", why);
    bson_destroy(&out);
    bson_destroy(body);
}

static void
test_commands(void)
{
    command_case(
        "find loses session, transaction, concerns and API fields",
        "{'find': 'books', 'filter': {'a': 1}, 'sort': {'b': -1}, 'limit': 5, 'lsid': {'id': 1}, "
        "'txnNumber': 3, 'autocommit': false, 'startTransaction': true, '$clusterTime': {'t': 1}, "
        "'$readPreference': {'mode': 'secondary'}, 'readConcern': {'level': 'majority'}, "
        "'apiVersion': '1', 'apiStrict': true, 'apiDeprecationErrors': false, 'comment': 'c', "
        "'$db': 'app'}",
        0, true,
        "{'explain': {'find': 'books', 'filter': {'a': 1}, 'sort': {'b': -1}, 'limit': 5, "
        "'comment': 'c'}, 'verbosity': 'queryPlanner'}");
    command_case(
        "aggregate loses its explain flag and writeConcern",
        "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}], 'cursor': {}, 'explain': "
        "false, "
        "'writeConcern': {'w': 1}, '$db': 'app'}",
        0, true,
        "{'explain': {'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}], 'cursor': {}}, "
        "'verbosity': 'queryPlanner'}");
    command_case("count", "{'count': 'books', 'query': {'a': 1}, '$db': 'app'}", 0, true,
                 "{'explain': {'count': 'books', 'query': {'a': 1}}, 'verbosity': 'queryPlanner'}");
    command_case("distinct", "{'distinct': 'books', 'key': 'k', 'query': {'a': 1}, '$db': 'app'}",
                 0, true,
                 "{'explain': {'distinct': 'books', 'key': 'k', 'query': {'a': 1}}, 'verbosity': "
                 "'queryPlanner'}");
    command_case(
        "findAndModify",
        "{'findAndModify': 'books', 'query': {'a': 1}, 'update': {'$set': {'b': 1}}, "
        "'writeConcern': {'w': 'majority'}, '$db': 'app'}",
        0, true,
        "{'explain': {'findAndModify': 'books', 'query': {'a': 1}, 'update': {'$set': {'b': 1}}}, "
        "'verbosity': 'queryPlanner'}");
    command_case(
        "update keeps only the statement asked for",
        "{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {}}, {'q': {'b': 2}, 'u': {'$set': "
        "{'c': 1}}}], "
        "'ordered': true, '$db': 'app'}",
        1, true,
        "{'explain': {'update': 'books', 'updates': [{'q': {'b': 2}, 'u': {'$set': {'c': 1}}}], "
        "'ordered': true}, 'verbosity': 'queryPlanner'}");
    command_case("delete statement 0",
                 "{'delete': 'books', 'deletes': [{'q': {'a': 1}, 'limit': 1}], '$db': 'app'}", 0,
                 true,
                 "{'explain': {'delete': 'books', 'deletes': [{'q': {'a': 1}, 'limit': 1}]}, "
                 "'verbosity': 'queryPlanner'}");
    command_case("update statement past the last",
                 "{'update': 'books', 'updates': [{'q': {}, 'u': {}}], '$db': 'a'}", 1, false,
                 NULL);
    command_case("update statement that is not a document",
                 "{'update': 'books', 'updates': [5], '$db': 'a'}", 0, false, NULL);
    command_case("update with its statements elsewhere (a sequence)",
                 "{'update': 'books', '$db': 'a'}", 0, false, NULL);
    command_case("insert is not explained", "{'insert': 'books', 'documents': [{}], '$db': 'a'}", 0,
                 false, NULL);
    command_case("an empty body", "{}", 0, false, NULL);
}

static void
shape_case(const char *why, const char *body_json, uint32_t which, bool from_query, bool want_ok,
           const char *want)
{
    bson_t *body = json(body_json), out, query;
    struct advice_shapes shapes;
    struct wire_cmd cmd;
    bson_error_t error;
    bool made = false;

    shapes.n = 0;
    if (wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error))
        advice_shape_extract(body, &cmd, NULL, 0, &shapes);
    if (!ok(shapes.n > which, "shape command: %s: the shape is there", why)) {
        bson_destroy(body);
        return;
    }
    if (from_query && bson_init_static(&query, shapes.query[which], shapes.query_len[which]))
        made =
            advice_plan_shape_command(&shapes.shape[which], &query, shapes.statement[which], &out);
    else
        made = advice_plan_shape_command(&shapes.shape[which], body, shapes.statement[which], &out);
    if (want_ok)
        ok(made && same_json(&out, want), "shape command: %s", why);
    else
        ok(!made && out.len == 5, "shape command: %s: refused", why);
    bson_destroy(&out);
    advice_shapes_cleanup(&shapes);
    bson_destroy(body);
}

static void
test_shape_commands(void)
{
    struct advice_shape s;
    bson_t *stmt, out;

    shape_case("find, from what extract gave",
               "{'find': 'books', 'filter': {'a': 1}, 'lsid': {'id': 1}, '$db': 'app'}", 0, true,
               true,
               "{'explain': {'find': 'books', 'filter': {'a': 1}}, 'verbosity': 'queryPlanner'}");
    shape_case(
        "update statement from extract: the statement alone",
        "{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {}}, {'q': {'b': 1}, 'u': {'$inc': "
        "{'n': 1}}}], "
        "'$db': 'app'}",
        1, true, true,
        "{'explain': {'update': 'books', 'updates': [{'q': {'b': 1}, 'u': {'$inc': {'n': 1}}}]}, "
        "'verbosity': 'queryPlanner'}");
    shape_case("update shape with the whole body and its statement index",
               "{'update': 'books', 'updates': [{'q': {'a': 1}, 'u': {}}, {'q': {'b': 1}, 'u': "
               "{}}], '$db': 'app'}",
               1, false, true,
               "{'explain': {'update': 'books', 'updates': [{'q': {'b': 1}, 'u': {}}]}, "
               "'verbosity': 'queryPlanner'}");
    shape_case(
        "delete statement from extract",
        "{'delete': 'books', 'deletes': [{'q': {'a': {'$gt': 1}}, 'limit': 0}], '$db': 'app'}", 0,
        true, true,
        "{'explain': {'delete': 'books', 'deletes': [{'q': {'a': {'$gt': 1}}, 'limit': 0}]}, "
        "'verbosity': 'queryPlanner'}");
    shape_case(
        "$lookup: a find on the foreign collection",
        "{'aggregate': 'books', 'pipeline': [{'$lookup': {'from': 'authors', 'localField': 'a', "
        "'foreignField': 'info.name', 'as': 'x'}}], 'cursor': {}, '$db': 'app'}",
        0, true, true,
        "{'explain': {'find': 'authors', 'filter': {'info.name': null}}, 'verbosity': "
        "'queryPlanner'}");
    shape_case(
        "aggregate",
        "{'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}], 'cursor': {}, '$db': 'app'}", 0,
        true, true,
        "{'explain': {'aggregate': 'books', 'pipeline': [{'$match': {'a': 1}}], 'cursor': {}}, "
        "'verbosity': 'queryPlanner'}");

    /* a query that does not fit its shape */
    memset(&s, 0, sizeof s);
    s.db = "app";
    s.coll = "books";
    s.source = ADVICE_SRC_FIND;
    stmt = json("{'aggregate': 'books', 'pipeline': [], '$db': 'app'}");
    ok(!advice_plan_shape_command(&s, stmt, 0, &out) && out.len == 5,
       "shape command: a find shape with an aggregate");
    bson_destroy(&out);
    bson_destroy(stmt);
    s.source = ADVICE_SRC_UPDATE;
    stmt = json("{'u': {'$set': {'a': 1}}}");
    ok(!advice_plan_shape_command(&s, stmt, 0, &out) && out.len == 5,
       "shape command: an update statement without q");
    bson_destroy(&out);
    bson_destroy(stmt);
    ok(!advice_plan_shape_command(&s, NULL, 0, &out) && out.len == 5, "shape command: no query");
    bson_destroy(&out);
    s.source = ADVICE_SRC_LOOKUP;
    ok(!advice_plan_shape_command(&s, NULL, 0, &out) && out.len == 5,
       "shape command: a lookup shape without a path");
    bson_destroy(&out);
}

int
main(void)
{
    const char *top = getenv("abs_top_srcdir");

    if (ok(top != NULL && top[0] != '\0', "abs_top_srcdir is set (run through make check)"))
        test_fixtures(top);
    test_hostile();
    test_bounds();
    test_commands();
    test_shape_commands();
    return done_testing();
}
