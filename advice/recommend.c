/*
 * advice/recommend.c: owns the step from query shapes that scan to the
 * indexes that fix them (advice/recommend.h): the equality, sort, range
 * rule; the test of whether an existing index already serves a shape (when
 * the server gave no plan); which recommendations an existing index makes
 * pointless; merging shapes that one index serves; redundant indexes;
 * ranking; and the texts to paste into mongosh and a Mongoose schema.
 *
 * Direction matters only for sort keys, and only relatively: an index is
 * read forwards or backwards, so {a: 1, b: -1} serves the sort {a: -1,
 * b: 1} too, and an equality or range key is served in either direction.
 * That is why a recommendation keeps, for each key, the role it plays
 * (struct cand): "is served by" compares paths, then the sort keys'
 * directions all equal or all reversed.
 *
 * It does not read plans (advice/plan.c) or talk to the server
 * (advice/advisor.c). Pure functions; everything returned is owned by the
 * caller, as recommend.h says.
 */
#include "config.h"

#include "advice/recommend.h"

#include <stdlib.h>
#include <string.h>

/* The role a key plays in a recommended index. */
enum role {
    ROLE_EQ,
    ROLE_SORT,
    ROLE_RANGE,
};

/* A recommendation for one shape, before merging. */
struct cand {
    struct advice_index index;
    enum role roles[ADVICE_INDEX_MAX_KEYS];
    const struct advice_shape_input *input;
    enum advice_reason reason;
    enum advice_evidence evidence;
    uint32_t order; /* position among the shapes: ties keep it */
};

/* ---- the index for one shape ----------------------------------------------------------------- */

static bool
has_key(const struct advice_index *index, const char *path)
{
    for (uint32_t i = 0; i < index->n_keys; i++) {
        if (strcmp(index->keys[i].path, path) == 0)
            return true;
    }
    return false;
}

static void
push_key(struct advice_index *index, enum role *roles, const char *path, int dir, enum role role)
{
    if (index->n_keys == ADVICE_INDEX_MAX_KEYS || has_key(index, path))
        return;
    index->keys[index->n_keys].path = bson_strdup(path);
    index->keys[index->n_keys].dir = dir;
    roles[index->n_keys] = role;
    index->n_keys++;
}

/* Whether the shape's sort can come from an index (the rule in recommend.h). */
static bool
usable_sort(const struct advice_shape *shape)
{
    return shape->n_sort > 0 && !shape->sort_unusable && !shape->collation && !shape->hint;
}

/* advice_recommend_index, with the role of each key. */
static bool
recommend(const struct advice_shape *shape, struct advice_index *out, enum role *roles)
{
    uint32_t n_paths =
        shape->n_paths < ADVICE_SHAPE_MAX_PATHS ? shape->n_paths : ADVICE_SHAPE_MAX_PATHS;
    uint32_t n_sort = shape->n_sort < ADVICE_SHAPE_MAX_SORT ? shape->n_sort : ADVICE_SHAPE_MAX_SORT;
    bool sorted = usable_sort(shape);

    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < n_paths; i++) {
        const struct advice_path *p = &shape->paths[i];

        /* an _id lookup: the _id index serves it, whatever else the query says */
        if (p->path && strcmp(p->path, "_id") == 0 &&
            (p->op == ADVICE_OP_EQ || p->op == ADVICE_OP_IN))
            return false;
    }
    /* E: equality paths, in the shape's order ($in too when nothing is sorted) */
    for (uint32_t i = 0; i < n_paths; i++) {
        const struct advice_path *p = &shape->paths[i];

        if (p->path && (p->op == ADVICE_OP_EQ || (p->op == ADVICE_OP_IN && !sorted)))
            push_key(out, roles, p->path, 1, ROLE_EQ);
    }
    /* S: the sort keys with their directions */
    for (uint32_t i = 0; sorted && i < n_sort; i++) {
        if (shape->sort[i].path && shape->sort[i].dir != 0)
            push_key(out, roles, shape->sort[i].path, shape->sort[i].dir, ROLE_SORT);
    }
    /* R: at most one range path ($in is one when the shape sorts) */
    for (uint32_t i = 0; i < n_paths; i++) {
        const struct advice_path *p = &shape->paths[i];

        if (p->path && !has_key(out, p->path) &&
            (p->op == ADVICE_OP_RANGE || (p->op == ADVICE_OP_IN && sorted))) {
            push_key(out, roles, p->path, 1, ROLE_RANGE);
            break;
        }
    }
    if (out->n_keys == 0 || (out->n_keys == 1 && strcmp(out->keys[0].path, "_id") == 0)) {
        advice_index_cleanup(out);
        return false;
    }
    return true;
}

bool
advice_recommend_index(const struct advice_shape *shape, struct advice_index *out)
{
    enum role roles[ADVICE_INDEX_MAX_KEYS];

    return recommend(shape, out, roles);
}

bool
advice_index_serves(const struct advice_index *index, const struct advice_shape *shape)
{
    const char *first;

    if (index->n_keys == 0 || index->special || index->partial || index->hidden ||
        (index->collation && !shape->collation))
        return false;
    first = index->keys[0].path;
    for (uint32_t i = 0; i < shape->n_paths && i < ADVICE_SHAPE_MAX_PATHS; i++) {
        const struct advice_path *p = &shape->paths[i];

        if (p->op != ADVICE_OP_UNINDEXABLE && p->path && strcmp(p->path, first) == 0)
            return true;
    }
    return shape->n_sort > 0 && shape->sort[0].path && shape->sort[0].dir != 0 &&
           strcmp(shape->sort[0].path, first) == 0;
}

/* ---- which index serves which ------------------------------------------------------------- */

static bool
same_keys(const struct advice_index *a, const struct advice_index *b)
{
    if (a->n_keys != b->n_keys)
        return false;
    for (uint32_t i = 0; i < a->n_keys; i++) {
        if (a->keys[i].dir != b->keys[i].dir || strcmp(a->keys[i].path, b->keys[i].path) != 0)
            return false;
    }
    return true;
}

/*
 * Whether index big serves everything the recommendation small (with the
 * roles of its keys) would: small's paths are big's first paths, and
 * small's sort keys have big's directions, all equal or all reversed.
 */
static bool
covers(const struct advice_index *big, const struct advice_index *small, const enum role *roles)
{
    bool same = true, reversed = true;

    if (small->n_keys == 0 || small->n_keys > big->n_keys)
        return false;
    for (uint32_t i = 0; i < small->n_keys; i++) {
        if (big->keys[i].dir == 0 || strcmp(big->keys[i].path, small->keys[i].path) != 0)
            return false;
        if (roles[i] == ROLE_SORT) {
            same = same && big->keys[i].dir == small->keys[i].dir;
            reversed = reversed && big->keys[i].dir == -small->keys[i].dir;
        }
    }
    return same || reversed;
}

/* An index the planner may use for any query on its keys. */
static bool
ordinary(const struct advice_index *index)
{
    return index->n_keys > 0 && !index->special && !index->partial && !index->hidden &&
           !index->collation;
}

/*
 * Whether the recommendation is pointless: an index with exactly its keys
 * exists (whatever its options: creating it again would fail), or an
 * ordinary one covers it.
 */
static bool
already_served(const struct advice_index *rec, const enum role *roles,
               const struct advice_indexes *indexes)
{
    for (uint32_t i = 0; indexes && i < indexes->n; i++) {
        const struct advice_index *x = &indexes->index[i];

        if (same_keys(x, rec) || (ordinary(x) && covers(x, rec, roles)))
            return true;
    }
    return false;
}

/* ---- redundant indexes -------------------------------------------------------------------- */

static bool
is_id_index(const struct advice_index *index)
{
    return (index->name && strcmp(index->name, "_id_") == 0) ||
           (index->n_keys == 1 && strcmp(index->keys[0].path, "_id") == 0);
}

/*
 * Whether a is redundant given b: a is strictly shorter, its paths are b's
 * first paths with directions all equal or all reversed, both are ordinary
 * and not sparse, and a enforces nothing b does not (a is not unique, not
 * TTL, not _id_). A unique a is kept whatever b is: uniqueness of fewer
 * fields is a stronger constraint than uniqueness of more.
 */
static bool
redundant_given(const struct advice_index *a, const struct advice_index *b)
{
    bool same = true, reversed = true;

    if (a == b || !ordinary(a) || !ordinary(b) || a->sparse || b->sparse || a->unique || a->ttl ||
        is_id_index(a) || a->n_keys >= b->n_keys)
        return false;
    for (uint32_t i = 0; i < a->n_keys; i++) {
        if (strcmp(a->keys[i].path, b->keys[i].path) != 0)
            return false;
        same = same && a->keys[i].dir == b->keys[i].dir;
        reversed = reversed && a->keys[i].dir == -b->keys[i].dir;
    }
    return same || reversed;
}

/*
 * Indexes compared pairwise for redundancy: mongod allows 64 per collection,
 * so more is a server's junk, and only the first are looked at (the pairs
 * grow with the square).
 */
#define REDUNDANT_MAX_INDEXES 256

static void
find_redundant(const char *db, const char *coll, const struct advice_indexes *indexes,
               struct advice_redundant **redundant, uint32_t *n_redundant)
{
    uint32_t n = indexes ? indexes->n : 0;

    if (n > REDUNDANT_MAX_INDEXES)
        n = REDUNDANT_MAX_INDEXES;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            struct advice_redundant *r;

            if (!redundant_given(&indexes->index[i], &indexes->index[j]) ||
                !indexes->index[i].name || !indexes->index[j].name)
                continue;
            *redundant = bson_realloc(*redundant, (*n_redundant + 1) * sizeof **redundant);
            r = &(*redundant)[(*n_redundant)++];
            r->db = bson_strdup(db);
            r->coll = bson_strdup(coll);
            r->index = bson_strdup(indexes->index[i].name);
            r->covered_by = bson_strdup(indexes->index[j].name);
            break;
        }
    }
}

/* ---- one namespace -------------------------------------------------------------------------- */

static int
reason_rank(enum advice_reason reason)
{
    switch (reason) {
    case ADVICE_REASON_COLLECTION_SCAN:
        return 3;
    case ADVICE_REASON_NO_USABLE_INDEX:
        return 2;
    default:
        return 1;
    }
}

/* Most keys first (the ones others merge into); ties in the shapes' order. */
static int
cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;

    if (a->index.n_keys != b->index.n_keys)
        return a->index.n_keys > b->index.n_keys ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Whether the shape scans, and why; false when it is served already. */
static bool
scans(const struct advice_shape_input *in, const struct advice_indexes *indexes,
      enum advice_reason *reason, enum advice_evidence *evidence)
{
    *evidence = ADVICE_EVIDENCE_EXPLAIN;
    switch (in->verdict) {
    case ADVICE_PLAN_COLLSCAN:
    case ADVICE_PLAN_FULL_IXSCAN:
        *reason = ADVICE_REASON_COLLECTION_SCAN;
        return true;
    case ADVICE_PLAN_IN_MEMORY_SORT:
        *reason = ADVICE_REASON_IN_MEMORY_SORT;
        return true;
    case ADVICE_PLAN_INDEXED:
        return false;
    case ADVICE_PLAN_NOT_MONGOD:
    default:
        break;
    }
    for (uint32_t i = 0; indexes && i < indexes->n; i++) {
        if (advice_index_serves(&indexes->index[i], in->shape))
            return false;
    }
    *reason = ADVICE_REASON_NO_USABLE_INDEX;
    *evidence = ADVICE_EVIDENCE_INDEXES;
    return true;
}

static void
item_add_shape(struct advice_item *item, const struct cand *c)
{
    item->shapes = bson_realloc(item->shapes, (item->n_shapes + 1) * sizeof *item->shapes);
    item->shapes[item->n_shapes++] = advice_shape_display(c->input->shape);
    item->queries += c->input->queries;
    item->server_ms += c->input->server_ms;
    if (reason_rank(c->reason) > reason_rank(item->reason))
        item->reason = c->reason;
    if (c->evidence == ADVICE_EVIDENCE_EXPLAIN)
        item->evidence = ADVICE_EVIDENCE_EXPLAIN;
}

static void
item_init(struct advice_item *item, const char *db, const char *coll, const struct cand *c,
          int64_t documents)
{
    memset(item, 0, sizeof *item);
    item->db = bson_strdup(db);
    item->coll = bson_strdup(coll);
    advice_index_copy(&item->index, &c->index);
    bson_free(item->index.name);
    item->index.name = advice_index_default_name(&item->index);
    item->reason = c->reason;
    item->evidence = c->evidence;
    item->documents = documents;
    item->mongosh = advice_mongosh_text(db, coll, &item->index);
    item->mongoose = advice_mongoose_text(coll, &item->index);
    item_add_shape(item, c);
}

void
advice_recommend_namespace(const char *db, const char *coll,
                           const struct advice_shape_input *shapes, uint32_t n_shapes,
                           const struct advice_indexes *indexes, int64_t documents,
                           int64_t min_documents, struct advice_item **items, uint32_t *n_items,
                           struct advice_redundant **redundant, uint32_t *n_redundant)
{
    struct cand *cands;
    uint32_t n = 0, first_item = *n_items;

    find_redundant(db, coll, indexes, redundant, n_redundant);
    if (documents < min_documents || n_shapes == 0)
        return;
    cands = bson_malloc0(n_shapes * sizeof *cands);
    for (uint32_t i = 0; i < n_shapes; i++) {
        const struct advice_shape_input *in = &shapes[i];
        struct cand *c = &cands[n];

        /* shapes of another namespace (a caller's mistake) are not this one's to advise */
        if (in->shape == NULL || in->shape->db == NULL || in->shape->coll == NULL ||
            strcmp(in->shape->db, db) != 0 || strcmp(in->shape->coll, coll) != 0)
            continue;
        if (!scans(in, indexes, &c->reason, &c->evidence))
            continue;
        if (!recommend(in->shape, &c->index, c->roles))
            continue;
        if (already_served(&c->index, c->roles, indexes)) {
            advice_index_cleanup(&c->index);
            continue;
        }
        c->input = in;
        c->order = i;
        n++;
    }
    qsort(cands, n, sizeof *cands, cand_cmp);

    for (uint32_t i = 0; i < n; i++) {
        const struct cand *c = &cands[i];
        uint32_t k;

        for (k = first_item; k < *n_items; k++) {
            if (covers(&(*items)[k].index, &c->index, c->roles))
                break;
        }
        if (k < *n_items) {
            item_add_shape(&(*items)[k], c);
        } else {
            *items = bson_realloc(*items, (*n_items + 1) * sizeof **items);
            item_init(&(*items)[(*n_items)++], db, coll, c, documents);
        }
    }
    for (uint32_t i = 0; i < n; i++)
        advice_index_cleanup(&cands[i].index);
    bson_free(cands);
}

/* ---- ranking and cleanup ------------------------------------------------------------------ */

static int
str_cmp(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int
item_cmp(const void *pa, const void *pb)
{
    const struct advice_item *a = pa, *b = pb;
    int c;

    if (a->server_ms != b->server_ms)
        return a->server_ms > b->server_ms ? -1 : 1;
    if (a->queries != b->queries)
        return a->queries > b->queries ? -1 : 1;
    if ((c = str_cmp(a->index.name, b->index.name)) != 0)
        return c;
    if ((c = str_cmp(a->db, b->db)) != 0)
        return c;
    return str_cmp(a->coll, b->coll);
}

void
advice_recommend_rank(struct advice_item *items, uint32_t n)
{
    if (items != NULL && n > 1)
        qsort(items, n, sizeof *items, item_cmp);
}

void
advice_item_cleanup(struct advice_item *item)
{
    if (item == NULL)
        return;
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
    if (redundant == NULL)
        return;
    bson_free(redundant->db);
    bson_free(redundant->coll);
    bson_free(redundant->index);
    bson_free(redundant->covered_by);
    memset(redundant, 0, sizeof *redundant);
}

/* ---- texts ------------------------------------------------------------------------------------
 */

/* s as a JavaScript string literal (escaped as advice_shape_append_escaped says). */
static void
append_js_string(bson_string_t *out, const char *s)
{
    bson_string_append_c(out, '"');
    advice_shape_append_escaped(out, s);
    bson_string_append_c(out, '"');
}

/* {author: 1, "a.b": -1} */
static void
append_keys(bson_string_t *out, const struct advice_index *index)
{
    bson_string_append_c(out, '{');
    for (uint32_t i = 0; i < index->n_keys && i < ADVICE_INDEX_MAX_KEYS; i++) {
        bson_string_append(out, i ? ", " : "");
        if (advice_shape_is_identifier(index->keys[i].path))
            bson_string_append(out, index->keys[i].path);
        else
            append_js_string(out, index->keys[i].path);
        bson_string_append_printf(out, ": %d", index->keys[i].dir);
    }
    bson_string_append_c(out, '}');
}

/*
 * Names mongosh's db object answers itself (its methods, and what every
 * JavaScript object has): db.getSiblingDB("app").stats is a method, not the
 * collection "stats", so such collections are reached with getCollection.
 */
static bool
is_db_property(const char *name)
{
    static const char *const names[] = {
        "adminCommand",
        "aggregate",
        "auth",
        "changeUserPassword",
        "checkMetadataConsistency",
        "commandHelp",
        "constructor",
        "createCollection",
        "createEncryptedCollection",
        "createRole",
        "createUser",
        "createView",
        "currentOp",
        "dropAllRoles",
        "dropAllUsers",
        "dropDatabase",
        "dropRole",
        "dropUser",
        "fsyncLock",
        "fsyncUnlock",
        "getCollection",
        "getCollectionInfos",
        "getCollectionNames",
        "getLogComponents",
        "getMongo",
        "getName",
        "getProfilingStatus",
        "getReplicationInfo",
        "getRole",
        "getRoles",
        "getSiblingDB",
        "getUser",
        "getUsers",
        "grantPrivilegesToRole",
        "grantRolesToRole",
        "grantRolesToUser",
        "hasOwnProperty",
        "hello",
        "help",
        "hostInfo",
        "isMaster",
        "isPrototypeOf",
        "killOp",
        "listCommands",
        "logout",
        "printCollectionStats",
        "printReplicationInfo",
        "printSecondaryReplicationInfo",
        "printShardingStatus",
        "propertyIsEnumerable",
        "revokePrivilegesFromRole",
        "revokeRolesFromRole",
        "revokeRolesFromUser",
        "rotateCertificates",
        "runCommand",
        "serverBuildInfo",
        "serverCmdLineOpts",
        "serverStatus",
        "setLogLevel",
        "setProfilingLevel",
        "shutdownServer",
        "sql",
        "stats",
        "toLocaleString",
        "toString",
        "updateRole",
        "updateUser",
        "valueOf",
        "version",
        "watch",
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

char *
advice_mongosh_text(const char *db, const char *coll, const struct advice_index *index)
{
    bson_string_t *out = bson_string_new("db.getSiblingDB(");
    char *name = index->name ? NULL : advice_index_default_name(index);

    append_js_string(out, db ? db : "");
    bson_string_append_c(out, ')');
    if (coll && advice_shape_is_identifier(coll) && coll[0] != '_' && !is_db_property(coll)) {
        bson_string_append_c(out, '.');
        bson_string_append(out, coll);
    } else {
        bson_string_append(out, ".getCollection(");
        append_js_string(out, coll ? coll : "");
        bson_string_append_c(out, ')');
    }
    bson_string_append(out, ".createIndex(");
    append_keys(out, index);
    bson_string_append(out, ", {name: ");
    append_js_string(out, index->name ? index->name : name);
    bson_string_append(out, "})");
    bson_free(name);
    return bson_string_free(out, false);
}

static bool
ends_with(const char *s, size_t n, const char *tail)
{
    size_t t = strlen(tail);

    return n > t && memcmp(s + n - t, tail, t) == 0;
}

/*
 * The schema variable for a collection, by a simple rule (Mongoose names a
 * model's collection by lower-casing and pluralising the model's name, so
 * this undoes the common cases, not every English plural):
 *   1. singular: "...ies" -> "...y" (categories -> category); "...sses",
 *      "...xes", "...zes", "...ches", "...shes" lose "es" (boxes -> box);
 *      else a final "s" goes, unless the name ends in "ss" or "us"
 *      (books -> book, status stays); "people" stays "people";
 *   2. a JavaScript identifier in camel case: ASCII letters and digits kept,
 *      any other character dropped and the next letter upper-cased
 *      (user_profiles -> userProfile), the first letter lower-cased;
 *      empty, or starting with a digit, gets "collection" in front;
 *   3. "Schema" appended: bookSchema, categorySchema, userProfileSchema.
 */
static void
append_schema_name(bson_string_t *out, const char *coll)
{
    size_t n = strlen(coll), start_len = out->len;
    bool upper = false;
    char *stem = bson_strndup(coll, n);

    if (ends_with(stem, n, "ies") && n > 3) {
        stem[n - 3] = 'y';
        stem[n - 2] = '\0';
    } else if (ends_with(stem, n, "sses") || ends_with(stem, n, "xes") ||
               ends_with(stem, n, "zes") || ends_with(stem, n, "ches") ||
               ends_with(stem, n, "shes")) {
        stem[n - 2] = '\0';
    } else if (ends_with(stem, n, "s") && !ends_with(stem, n, "ss") && !ends_with(stem, n, "us")) {
        stem[n - 1] = '\0';
    }
    for (const char *p = stem; *p; p++) {
        char c = *p;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum) {
            upper = out->len > start_len;
            continue;
        }
        if (out->len == start_len) {
            if (c >= '0' && c <= '9')
                bson_string_append(out, "collection");
            else if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
        } else if (upper && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        upper = false;
        bson_string_append_c(out, c);
    }
    if (out->len == start_len)
        bson_string_append(out, "collection");
    bson_string_append(out, "Schema");
    bson_free(stem);
}

char *
advice_mongoose_text(const char *coll, const struct advice_index *index)
{
    bson_string_t *out = bson_string_new(NULL);

    append_schema_name(out, coll ? coll : "");
    bson_string_append(out, ".index(");
    append_keys(out, index);
    bson_string_append_c(out, ')');
    return bson_string_free(out, false);
}

const char *
advice_reason_name(enum advice_reason reason)
{
    switch (reason) {
    case ADVICE_REASON_COLLECTION_SCAN:
        return "collection_scan";
    case ADVICE_REASON_IN_MEMORY_SORT:
        return "in_memory_sort";
    case ADVICE_REASON_NO_USABLE_INDEX:
        return "no_usable_index";
    }
    return "unknown";
}

const char *
advice_evidence_name(enum advice_evidence evidence)
{
    switch (evidence) {
    case ADVICE_EVIDENCE_EXPLAIN:
        return "explain";
    case ADVICE_EVIDENCE_INDEXES:
        return "indexes";
    }
    return "unknown";
}
