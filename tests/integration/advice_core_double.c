/*
 * tests/integration/advice_core_double.c: TEST DOUBLE, temporary: a crude
 * stand-in for advice/index.c, plan.c and recommend.c (branch wt-advcore),
 * just enough to drive advice/advisor.c before the real ones are merged.
 * Removed once they are in: nothing here is the real behaviour.
 */
#include "config.h"

#include "advice/index.h"
#include "advice/plan.h"
#include "advice/recommend.h"

#include <stdlib.h>
#include <string.h>

bool
advice_index_from_spec(const bson_t *spec, struct advice_index *index)
{
    bson_iter_t it, k;

    memset(index, 0, sizeof *index);
    if (!bson_iter_init_find(&it, spec, "key") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &k))
        return false;
    while (bson_iter_next(&k)) {
        int dir;

        if (index->n_keys == ADVICE_INDEX_MAX_KEYS)
            goto bad;
        if (BSON_ITER_HOLDS_NUMBER(&k))
            dir = bson_iter_as_int64(&k) < 0 ? -1 : 1;
        else if (BSON_ITER_HOLDS_UTF8(&k))
            dir = 0, index->special = true;
        else
            goto bad;
        index->keys[index->n_keys].path = bson_strdup(bson_iter_key(&k));
        index->keys[index->n_keys++].dir = dir;
    }
    if (index->n_keys == 0)
        return false;
    if (bson_iter_init_find(&it, spec, "name") && BSON_ITER_HOLDS_UTF8(&it))
        index->name = bson_strdup(bson_iter_utf8(&it, NULL));
    return true;
bad:
    advice_index_cleanup(index);
    return false;
}

void
advice_index_cleanup(struct advice_index *index)
{
    bson_free(index->name);
    for (uint32_t i = 0; i < index->n_keys; i++)
        bson_free(index->keys[i].path);
    memset(index, 0, sizeof *index);
}

void
advice_indexes_cleanup(struct advice_indexes *indexes)
{
    for (uint32_t i = 0; i < indexes->n; i++)
        advice_index_cleanup(&indexes->index[i]);
    bson_free(indexes->index);
    indexes->index = NULL;
    indexes->n = 0;
}

char *
advice_index_default_name(const struct advice_index *index)
{
    bson_string_t *s = bson_string_new(NULL);

    for (uint32_t i = 0; i < index->n_keys; i++)
        bson_string_append_printf(s, "%s%s_%d", i ? "_" : "", index->keys[i].path,
                                  index->keys[i].dir);
    return bson_string_free(s, false);
}

bool
advice_plan_command(const bson_t *query_body, uint32_t statement, bson_t *out)
{
    bson_t inner;
    bson_iter_t it;

    (void)statement;
    bson_init(out);
    bson_append_document_begin(out, "explain", -1, &inner);
    if (bson_iter_init(&it, query_body))
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "$db") != 0 && strcmp(bson_iter_key(&it), "lsid") != 0)
                bson_append_iter(&inner, NULL, 0, &it);
    bson_append_document_end(out, &inner);
    BSON_APPEND_UTF8(out, "verbosity", "queryPlanner");
    return true;
}

enum advice_plan_verdict
advice_plan_read(const bson_t *explain_reply)
{
    (void)explain_reply;
    return ADVICE_PLAN_NOT_MONGOD;
}

bool
advice_recommend_index(const struct advice_shape *shape, struct advice_index *out)
{
    const struct advice_path *range = NULL;

    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < shape->n_paths; i++) {
        if (shape->paths[i].op == ADVICE_OP_EQ) {
            out->keys[out->n_keys].path = bson_strdup(shape->paths[i].path);
            out->keys[out->n_keys++].dir = 1;
        } else if (shape->paths[i].op == ADVICE_OP_RANGE && range == NULL) {
            range = &shape->paths[i];
        }
    }
    for (uint32_t i = 0; i < shape->n_sort; i++) {
        out->keys[out->n_keys].path = bson_strdup(shape->sort[i].path);
        out->keys[out->n_keys++].dir = shape->sort[i].dir;
    }
    if (range != NULL) {
        out->keys[out->n_keys].path = bson_strdup(range->path);
        out->keys[out->n_keys++].dir = 1;
    }
    if (out->n_keys == 0 || (out->n_keys == 1 && strcmp(out->keys[0].path, "_id") == 0)) {
        advice_index_cleanup(out);
        return false;
    }
    return true;
}

bool
advice_index_serves(const struct advice_index *index, const struct advice_shape *shape)
{
    if (index->special || index->partial || index->n_keys == 0)
        return false;
    for (uint32_t i = 0; i < shape->n_paths; i++)
        if (shape->paths[i].op != ADVICE_OP_UNINDEXABLE &&
            strcmp(shape->paths[i].path, index->keys[0].path) == 0)
            return true;
    return shape->n_sort > 0 && strcmp(shape->sort[0].path, index->keys[0].path) == 0;
}

void
advice_recommend_namespace(const char *db, const char *coll,
                           const struct advice_shape_input *shapes, uint32_t n_shapes,
                           const struct advice_indexes *indexes, int64_t documents,
                           int64_t min_documents, struct advice_item **items, uint32_t *n_items,
                           struct advice_redundant **redundant, uint32_t *n_redundant)
{
    (void)redundant;
    (void)n_redundant;
    if (documents < min_documents)
        return;
    for (uint32_t i = 0; i < n_shapes; i++) {
        struct advice_index ix;
        struct advice_item *it;
        bool served = false;

        if (!advice_recommend_index(shapes[i].shape, &ix))
            continue;
        for (uint32_t j = 0; j < indexes->n; j++)
            served = served || advice_index_serves(&indexes->index[j], shapes[i].shape);
        if (served) {
            advice_index_cleanup(&ix);
            continue;
        }
        *items = bson_realloc(*items, (*n_items + 1) * sizeof **items);
        it = &(*items)[(*n_items)++];
        memset(it, 0, sizeof *it);
        it->db = bson_strdup(db);
        it->coll = bson_strdup(coll);
        it->index = ix;
        it->index.name = advice_index_default_name(&ix);
        it->reason = ADVICE_REASON_NO_USABLE_INDEX;
        it->evidence = ADVICE_EVIDENCE_INDEXES;
        it->queries = shapes[i].queries;
        it->server_ms = shapes[i].server_ms;
        it->documents = documents;
        it->shapes = bson_malloc0(sizeof *it->shapes);
        it->shapes[0] = bson_strdup("double");
        it->n_shapes = 1;
        it->mongosh = bson_strdup_printf("db.getSiblingDB(\"%s\").%s.createIndex(...)", db, coll);
        it->mongoose = bson_strdup("schema.index(...)");
    }
}

static int
by_time(const void *a, const void *b)
{
    const struct advice_item *x = a, *y = b;

    return x->server_ms > y->server_ms ? -1 : x->server_ms < y->server_ms ? 1 : 0;
}

void
advice_recommend_rank(struct advice_item *items, uint32_t n)
{
    if (n > 1)
        qsort(items, n, sizeof *items, by_time);
}

void
advice_item_cleanup(struct advice_item *item)
{
    bson_free(item->db);
    bson_free(item->coll);
    advice_index_cleanup(&item->index);
    for (uint32_t i = 0; i < item->n_shapes; i++)
        bson_free(item->shapes[i]);
    bson_free(item->shapes);
    bson_free(item->mongosh);
    bson_free(item->mongoose);
    memset(item, 0, sizeof *item);
}

void
advice_redundant_cleanup(struct advice_redundant *redundant)
{
    bson_free(redundant->db);
    bson_free(redundant->coll);
    bson_free(redundant->index);
    bson_free(redundant->covered_by);
}

const char *
advice_reason_name(enum advice_reason reason)
{
    return reason == ADVICE_REASON_COLLECTION_SCAN   ? "collection_scan"
           : reason == ADVICE_REASON_IN_MEMORY_SORT ? "in_memory_sort"
                                                    : "no_usable_index";
}

const char *
advice_evidence_name(enum advice_evidence evidence)
{
    return evidence == ADVICE_EVIDENCE_EXPLAIN ? "explain" : "indexes";
}
