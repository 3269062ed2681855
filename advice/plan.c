/*
 * advice/plan.c: owns reading the server's explain reply (advice/plan.h)
 * and building the explain command for a captured query.
 *
 * Reading: mongod's documented explain format (docs "Explain Results"):
 * queryPlanner.winningPlan is a tree of stages, each {stage: "NAME",
 * inputStage: {...}} or {stage, inputStages: [...]}; the slot-based engine
 * puts the tree under winningPlan.queryPlan; an aggregate puts a whole
 * find-style explain under stages[0].$cursor; a sharded find lists each
 * shard's winningPlan under winningPlan.shards[]; a sharded aggregate keys
 * each shard's explain by name under shards. The reply is untrusted: the
 * walk recurses at most PLAN_MAX_DEPTH stages deep (so the C stack is
 * bounded), visits at most PLAN_MAX_STAGES stages, and anything that is not
 * this format (FerretDB's SQL plan, an error, junk) is NOT_MONGOD.
 *
 * Building: a copy of the command without the fields explain refuses or
 * that belong to the original connection (session, transaction, read and
 * write concerns), wrapped in {explain, verbosity: "queryPlanner"}, which
 * plans without running the query. It does not send anything (the
 * advisor does) nor decide what to advise (advice/recommend.c).
 */
#include "config.h"

#include "advice/plan.h"

#include <string.h>

#define PLAN_MAX_DEPTH 64
#define PLAN_MAX_STAGES 1024
/* Levels of explain documents inside explain documents ($cursor, shards). */
#define PLAN_MAX_NESTED_EXPLAINS 4

/* What the walk found over every plan of the reply. */
struct findings {
    bool collscan;
    bool full_ixscan;
    bool sort;
    bool any;  /* at least one stage */
    bool junk; /* something that is not mongod's format */
    uint32_t stages;
};

static void read_winning_plan(struct findings *f, const bson_t *plan, uint32_t depth);

/* The document (or array) value at it as a bson_t over the same bytes; false for another type. */
static bool
view(const bson_iter_t *it, bson_t *out)
{
    const uint8_t *data;
    uint32_t len;

    if (BSON_ITER_HOLDS_DOCUMENT(it))
        bson_iter_document(it, &len, &data);
    else if (BSON_ITER_HOLDS_ARRAY(it))
        bson_iter_array(it, &len, &data);
    else
        return false;
    return bson_init_static(out, data, len);
}

/* The document under key in doc, into sub; false when absent or another type. */
static bool
find_doc(const bson_t *doc, const char *key, bson_t *sub)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_DOCUMENT(&it) && view(&it, sub);
}

/* "[MinKey, MaxKey]" (or reversed, for a backward scan): the whole of a key's range. */
static bool
is_full_interval(const bson_iter_t *it)
{
    uint32_t len;
    const char *s;

    if (!BSON_ITER_HOLDS_UTF8(it))
        return false;
    s = bson_iter_utf8(it, &len);
    return len == 16 &&
           (memcmp(s, "[MinKey, MaxKey]", 16) == 0 || memcmp(s, "[MaxKey, MinKey]", 16) == 0);
}

/* indexBounds: {field: ["[MinKey, MaxKey]"], ...}: true when every field's only interval is full.
 */
static bool
bounds_all_full(const bson_iter_t *bounds)
{
    bson_iter_t field, interval;
    uint32_t fields = 0;

    if (!BSON_ITER_HOLDS_DOCUMENT(bounds) || !bson_iter_recurse(bounds, &field))
        return false;
    while (bson_iter_next(&field)) {
        uint32_t n = 0;

        if (!BSON_ITER_HOLDS_ARRAY(&field) || !bson_iter_recurse(&field, &interval))
            return false;
        while (bson_iter_next(&interval)) {
            if (++n > 1 || !is_full_interval(&interval))
                return false;
        }
        if (n != 1)
            return false;
        fields++;
    }
    return fields > 0;
}

static void read_stage(struct findings *f, const bson_t *stage, uint32_t depth);

/* A child stage (inputStage and the like), or junk when it is not a document. */
static void
read_child(struct findings *f, const bson_iter_t *it, uint32_t depth)
{
    bson_t child;

    if (BSON_ITER_HOLDS_DOCUMENT(it) && view(it, &child))
        read_stage(f, &child, depth);
    else
        f->junk = true;
}

/* inputStages: [stage, ...], or a sharded plan's shards: [{shardName, winningPlan}, ...]. */
static void
read_list(struct findings *f, const bson_iter_t *it, bool shards, uint32_t depth)
{
    bson_iter_t m;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &m)) {
        f->junk = true;
        return;
    }
    while (bson_iter_next(&m) && !f->junk) {
        bson_t shard, plan;

        if (!shards)
            read_child(f, &m, depth);
        else if (BSON_ITER_HOLDS_DOCUMENT(&m) && view(&m, &shard) &&
                 find_doc(&shard, "winningPlan", &plan))
            read_winning_plan(f, &plan, depth);
        else
            f->junk = true;
    }
}

/* One stage document and its children (recursion bounded by PLAN_MAX_DEPTH). */
static void
read_stage(struct findings *f, const bson_t *stage, uint32_t depth)
{
    bson_iter_t it;
    const char *name = NULL;
    uint32_t name_len = 0;
    bool full = false;

    if (depth > PLAN_MAX_DEPTH || ++f->stages > PLAN_MAX_STAGES || !bson_iter_init(&it, stage)) {
        f->junk = true;
        return;
    }
    while (bson_iter_next(&it) && !f->junk) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "stage") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            name = bson_iter_utf8(&it, &name_len);
        else if (strcmp(key, "indexBounds") == 0)
            full = bounds_all_full(&it);
        else if (strcmp(key, "inputStage") == 0 || strcmp(key, "outerStage") == 0 ||
                 strcmp(key, "innerStage") == 0 || strcmp(key, "thenStage") == 0 ||
                 strcmp(key, "elseStage") == 0)
            read_child(f, &it, depth + 1);
        else if (strcmp(key, "inputStages") == 0)
            read_list(f, &it, false, depth + 1);
        else if (strcmp(key, "shards") == 0)
            read_list(f, &it, true, depth + 1);
    }
    if (name == NULL || name_len == 0 || memchr(name, '\0', name_len) != NULL) {
        f->junk = true;
        return;
    }
    f->any = true;
    if (strcmp(name, "COLLSCAN") == 0)
        f->collscan = true;
    else if (strcmp(name, "SORT") == 0)
        f->sort = true;
    else if (strcmp(name, "IXSCAN") == 0 && full)
        f->full_ixscan = true;
}

/* A winningPlan: the stage tree itself, or {queryPlan: tree, slotBasedPlan} (SBE). */
static void
read_winning_plan(struct findings *f, const bson_t *plan, uint32_t depth)
{
    bson_t tree;

    if (find_doc(plan, "queryPlan", &tree))
        read_stage(f, &tree, depth);
    else
        read_stage(f, plan, depth);
}

/* One explain document: find style, aggregate style, or a sharded aggregate's. */
static void
read_explain(struct findings *f, const bson_t *doc, uint32_t level)
{
    bson_iter_t it, sub;
    bson_t planner, plan, first, cursor, shard;
    bool planned = false;

    if (level > PLAN_MAX_NESTED_EXPLAINS) {
        f->junk = true;
        return;
    }
    if (bson_iter_init_find(&it, doc, "ok") && BSON_ITER_HOLDS_NUMBER(&it) &&
        bson_iter_as_double(&it) == 0) {
        f->junk = true; /* an error reply */
        return;
    }
    if (find_doc(doc, "queryPlanner", &planner)) {
        if (find_doc(&planner, "winningPlan", &plan))
            read_winning_plan(f, &plan, 0);
        else
            f->junk = true; /* FerretDB: queryPlanner {Plan: [...]} */
        return;
    }
    if (bson_iter_init_find(&it, doc, "stages")) {
        /* an aggregate: the query layer's explain is the first stage's $cursor */
        if (BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub) && bson_iter_next(&sub) &&
            BSON_ITER_HOLDS_DOCUMENT(&sub) && view(&sub, &first) &&
            find_doc(&first, "$cursor", &cursor)) {
            read_explain(f, &cursor, level + 1);
            planned = true;
        }
    } else if (bson_iter_init_find(&it, doc, "shards") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
               bson_iter_recurse(&it, &sub)) {
        /* a sharded aggregate: {shards: {name: explain, ...}} */
        while (bson_iter_next(&sub) && !f->junk) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&sub) || !view(&sub, &shard)) {
                f->junk = true;
                break;
            }
            read_explain(f, &shard, level + 1);
            planned = true;
        }
    }
    if (!planned)
        f->junk = true;
}

enum advice_plan_verdict
advice_plan_read(const bson_t *explain_reply)
{
    struct findings f = {0};

    if (explain_reply == NULL)
        return ADVICE_PLAN_NOT_MONGOD;
    read_explain(&f, explain_reply, 0);
    if (f.junk || !f.any)
        return ADVICE_PLAN_NOT_MONGOD;
    if (f.collscan)
        return ADVICE_PLAN_COLLSCAN;
    if (f.full_ixscan)
        return ADVICE_PLAN_FULL_IXSCAN;
    if (f.sort)
        return ADVICE_PLAN_IN_MEMORY_SORT;
    return ADVICE_PLAN_INDEXED;
}

/* ---- building the command ------------------------------------------------------------------ */

/* Fields of the original command that explain must not carry. */
static bool
dropped_field(const char *key, bool is_aggregate)
{
    static const char *const fields[] = {
        "$db",
        "lsid",
        "$clusterTime",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "$readPreference",
        "writeConcern",
        "readConcern",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
    };

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(key, fields[i]) == 0)
            return true;
    }
    return is_aggregate && strcmp(key, "explain") == 0;
}

static bool
fail_empty(bson_t *out)
{
    bson_destroy(out);
    bson_init(out);
    return false;
}

bool
advice_plan_command(const bson_t *query_body, uint32_t statement, bson_t *out)
{
    const char *name, *array = NULL;
    bool is_aggregate, found = false;
    bson_iter_t it;
    bson_t inner;

    bson_init(out);
    if (query_body == NULL || !bson_iter_init(&it, query_body) || !bson_iter_next(&it))
        return false;
    name = bson_iter_key(&it);
    if (strcmp(name, "update") == 0)
        array = "updates";
    else if (strcmp(name, "delete") == 0)
        array = "deletes";
    else if (strcmp(name, "find") != 0 && strcmp(name, "aggregate") != 0 &&
             strcmp(name, "count") != 0 && strcmp(name, "distinct") != 0 &&
             strcmp(name, "findAndModify") != 0 && strcmp(name, "findandmodify") != 0)
        return false;
    is_aggregate = strcmp(name, "aggregate") == 0;

    BSON_APPEND_DOCUMENT_BEGIN(out, "explain", &inner);
    do {
        const char *key = bson_iter_key(&it);

        if (dropped_field(key, is_aggregate))
            continue;
        if (array != NULL && strcmp(key, array) == 0) {
            bson_iter_t m;
            bson_t one;
            uint32_t i = 0;
            bool got = false;

            if (found || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &m))
                continue;
            while (!got && bson_iter_next(&m))
                got = i++ == statement;
            if (!got || !BSON_ITER_HOLDS_DOCUMENT(&m))
                continue;
            BSON_APPEND_ARRAY_BEGIN(&inner, array, &one);
            bson_append_iter(&one, "0", 1, &m);
            bson_append_array_end(&inner, &one);
            found = true;
            continue;
        }
        bson_append_iter(&inner, key, (int)bson_iter_key_len(&it), &it);
    } while (bson_iter_next(&it));
    bson_append_document_end(out, &inner);
    BSON_APPEND_UTF8(out, "verbosity", "queryPlanner");
    if (array != NULL && !found)
        return fail_empty(out);
    return true;
}

/* The command name a shape's query must have. */
static bool
source_matches(enum advice_source source, const char *name)
{
    switch (source) {
    case ADVICE_SRC_FIND:
        return strcmp(name, "find") == 0;
    case ADVICE_SRC_AGGREGATE:
        return strcmp(name, "aggregate") == 0;
    case ADVICE_SRC_COUNT:
        return strcmp(name, "count") == 0;
    case ADVICE_SRC_DISTINCT:
        return strcmp(name, "distinct") == 0;
    case ADVICE_SRC_FIND_AND_MODIFY:
        return strcmp(name, "findAndModify") == 0 || strcmp(name, "findandmodify") == 0;
    default:
        return false;
    }
}

bool
advice_plan_shape_command(const struct advice_shape *shape, const bson_t *query, uint32_t statement,
                          bson_t *out)
{
    bson_iter_t it;
    bson_t inner, child;

    if (shape == NULL || shape->coll == NULL) {
        bson_init(out);
        return false;
    }
    if (shape->source == ADVICE_SRC_LOOKUP) {
        bson_init(out);
        if (shape->n_paths == 0 || shape->paths[0].path == NULL)
            return false;
        BSON_APPEND_DOCUMENT_BEGIN(out, "explain", &inner);
        BSON_APPEND_UTF8(&inner, "find", shape->coll);
        BSON_APPEND_DOCUMENT_BEGIN(&inner, "filter", &child);
        BSON_APPEND_NULL(&child, shape->paths[0].path);
        bson_append_document_end(&inner, &child);
        bson_append_document_end(out, &inner);
        BSON_APPEND_UTF8(out, "verbosity", "queryPlanner");
        return true;
    }
    if (query == NULL || !bson_iter_init(&it, query) || !bson_iter_next(&it)) {
        bson_init(out);
        return false;
    }
    if (shape->source == ADVICE_SRC_UPDATE || shape->source == ADVICE_SRC_DELETE) {
        bool is_update = shape->source == ADVICE_SRC_UPDATE;
        const char *name = bson_iter_key(&it);
        bson_t list;

        if (strcmp(name, is_update ? "update" : "delete") == 0)
            return advice_plan_command(query, statement, out);
        bson_init(out);
        /* a statement document: it has a q, and is not another command */
        if (!bson_iter_init_find(&it, query, "q") || !BSON_ITER_HOLDS_DOCUMENT(&it))
            return false;
        BSON_APPEND_DOCUMENT_BEGIN(out, "explain", &inner);
        BSON_APPEND_UTF8(&inner, is_update ? "update" : "delete", shape->coll);
        BSON_APPEND_ARRAY_BEGIN(&inner, is_update ? "updates" : "deletes", &list);
        BSON_APPEND_DOCUMENT(&list, "0", query);
        bson_append_array_end(&inner, &list);
        bson_append_document_end(out, &inner);
        BSON_APPEND_UTF8(out, "verbosity", "queryPlanner");
        return true;
    }
    if (!source_matches(shape->source, bson_iter_key(&it))) {
        bson_init(out);
        return false;
    }
    return advice_plan_command(query, 0, out);
}

const char *
advice_plan_verdict_name(enum advice_plan_verdict verdict)
{
    switch (verdict) {
    case ADVICE_PLAN_NOT_MONGOD:
        return "not_mongod";
    case ADVICE_PLAN_INDEXED:
        return "indexed";
    case ADVICE_PLAN_COLLSCAN:
        return "collscan";
    case ADVICE_PLAN_IN_MEMORY_SORT:
        return "in_memory_sort";
    case ADVICE_PLAN_FULL_IXSCAN:
        return "full_ixscan";
    }
    return "unknown";
}
