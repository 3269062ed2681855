/*
 * advice/shape.c: owns deriving the shapes of a command (advice/shape.h):
 * which filter paths it has and with which operators, its sort, collation
 * and hint, with every value left out; the shapes' hash, copy, cleanup and
 * display. It runs on the event loop for every miss and pass-through, over
 * a body that passed wire_doc_check but is otherwise hostile, so:
 *
 *   - it reads the body in place (bson_iter), never re-encodes it, and
 *     allocates nothing but the strings of the shapes it returns: the walk
 *     works on a scratch area on the stack (struct walk), where paths are
 *     pointers into the body, or into a small arena for the dotted paths
 *     that $elemMatch composes;
 *   - it is bounded whatever the body: WALK_BUDGET elements visited per
 *     command, WALK_MAX_NEST levels of $and/$or/$elemMatch (the recursion's
 *     only source, so the C stack is bounded too), ADVICE_SHAPE_MAX_PATHS
 *     paths and sort keys, ADVICE_SHAPE_MAX_PATH_LEN bytes per path,
 *     WALK_MAX_CONJ branches in flight. Past a bound the shape is marked
 *     truncated, or the extra $or branches are dropped; nothing fails.
 *
 * The filter becomes a disjunction of conjunctions: each conjunction (struct
 * conj) is one shape's paths. A plain path is added to every conjunction of
 * the current range; $and walks its members into the same range; $or
 * replaces the range by one copy of it per branch, each walked with its
 * branch (so paths outside the $or are in every branch's shape). The range
 * is always the top of the conjunction stack, which is what lets $or grow it.
 *
 * It does not decide what scans (advice/plan.c), which index serves a shape
 * (advice/recommend.c), nor count shapes (advice/table.c).
 */
#include "config.h"

#include "advice/shape.h"

#include "wire/cmd.h"

#include <string.h>
#include <xxhash.h>

/* Elements (filter keys, operators, array members, sort keys, stages) visited per command. */
#define WALK_BUDGET 4096
/* Nesting of $and, $or and $elemMatch walked; deeper marks the shape truncated. */
#define WALK_MAX_NEST 32
/*
 * Conjunctions in flight while $or branches are expanded: each nesting level
 * of $or holds a copy of its base while its branch is walked, so this is
 * more than WALK_MAX_NEST.
 */
#define WALK_MAX_CONJ 48
/* Bytes for the dotted paths $elemMatch composes, per statement. */
#define WALK_ARENA 4096

/* A filter path during the walk: not owned (in the body or in the arena). 16 bytes. */
struct part {
    const char *p;
    uint32_t ops;
    uint16_t len; /* <= ADVICE_SHAPE_MAX_PATH_LEN */
    uint8_t op;   /* enum advice_op */
};

/* One conjunction: the paths of one future shape. */
struct conj {
    uint32_t n;
    bool truncated;
    struct part paths[ADVICE_SHAPE_MAX_PATHS];
};

/* A sort key during the walk (in the body). */
struct skey {
    const char *p;
    uint32_t len;
    int dir;
};

/*
 * What one query (a command, or one update/delete statement) has besides
 * its filter: namespace, sort, flags, and what out->query/statement get.
 */
struct query {
    const char *db;
    uint32_t db_len;
    const char *coll;
    uint32_t coll_len;
    enum advice_source source;
    struct skey sort[ADVICE_SHAPE_MAX_SORT];
    uint32_t n_sort;
    bool sort_unusable;
    bool collation;
    bool hint;
    bool truncated;
    const uint8_t *doc; /* what to keep for explain */
    uint32_t doc_len;
    uint32_t statement;
};

/* The scratch area of one command (on the caller's stack: about 30 KB). */
struct walk {
    struct conj conj[WALK_MAX_CONJ];
    uint32_t n_conj;
    char arena[WALK_ARENA];
    uint32_t arena_used;
    uint32_t budget;
    bool truncated; /* the budget ran out: every shape of this query is incomplete */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static bool
key_is(const char *key, uint32_t len, const char *name)
{
    size_t n = strlen(name);

    return len == n && memcmp(key, name, n) == 0;
}

/* One more element visited; false (and the walk marked truncated) when the budget is spent. */
static bool
spend(struct walk *w)
{
    if (w->budget == 0) {
        w->truncated = true;
        return false;
    }
    w->budget--;
    return true;
}

static void
mark_truncated(struct walk *w, uint32_t lo)
{
    for (uint32_t i = lo; i < w->n_conj; i++)
        w->conj[i].truncated = true;
}

/*
 * Whether an index could have path as a key: not empty, no empty component
 * ("a..b", "a."), no component starting with '$' (mongod refuses both in
 * an index key pattern, bar the DBRef fields).
 */
static bool
indexable_path(const char *p, uint32_t len)
{
    uint32_t start = 0;

    if (len == 0)
        return false;
    for (uint32_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '.') {
            if (i == start)
                return false;
            if (p[start] == '$' && !key_is(p + start, i - start, "$id") &&
                !key_is(p + start, i - start, "$ref") && !key_is(p + start, i - start, "$db"))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* Usefulness to an index: equality > $in > range > unindexable. */
static int
op_rank(enum advice_op op)
{
    switch (op) {
    case ADVICE_OP_EQ:
        return 3;
    case ADVICE_OP_IN:
        return 2;
    case ADVICE_OP_RANGE:
        return 1;
    default:
        return 0;
    }
}

/* Adds (or merges) a path into every conjunction of the range [lo, top). */
static void
add_path(struct walk *w, uint32_t lo, const char *p, uint32_t len, enum advice_op op, uint32_t ops)
{
    if (len > ADVICE_SHAPE_MAX_PATH_LEN) {
        mark_truncated(w, lo);
        return;
    }
    if (p[0] != '$' && !indexable_path(p, len))
        op = ADVICE_OP_UNINDEXABLE;
    for (uint32_t i = lo; i < w->n_conj; i++) {
        struct conj *c = &w->conj[i];
        uint32_t j;

        for (j = 0; j < c->n; j++) {
            struct part *q = &c->paths[j];

            if (q->len == len && memcmp(q->p, p, len) == 0) {
                if (op_rank(op) > op_rank((enum advice_op)q->op))
                    q->op = (uint8_t)op;
                q->ops |= ops;
                break;
            }
        }
        if (j < c->n)
            continue;
        if (c->n == ADVICE_SHAPE_MAX_PATHS) {
            c->truncated = true;
            continue;
        }
        c->paths[c->n].p = p;
        c->paths[c->n].len = (uint16_t)len;
        c->paths[c->n].op = (uint8_t)op;
        c->paths[c->n].ops = ops;
        c->n++;
    }
}

/*
 * The path of key under prefix: key itself (in the body) without a prefix,
 * else "prefix.key" composed in the arena. False when it does not fit (the
 * range is then marked truncated).
 */
static bool
make_path(struct walk *w, uint32_t lo, const char *prefix, uint32_t plen, const char *key,
          uint32_t klen, const char **out, uint32_t *out_len)
{
    uint32_t len;

    if (plen == 0) {
        *out = key;
        *out_len = klen;
        return true;
    }
    len = plen + 1 + klen;
    if (len > ADVICE_SHAPE_MAX_PATH_LEN || WALK_ARENA - w->arena_used < len) {
        mark_truncated(w, lo);
        return false;
    }
    memcpy(w->arena + w->arena_used, prefix, plen);
    w->arena[w->arena_used + plen] = '.';
    memcpy(w->arena + w->arena_used + plen + 1, key, klen);
    *out = w->arena + w->arena_used;
    *out_len = len;
    w->arena_used += len;
    return true;
}

/* The first key of the document at it, or NULL (not a document, or empty). */
static const char *
first_key(const bson_iter_t *it, uint32_t *len)
{
    bson_iter_t sub;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub) || !bson_iter_next(&sub))
        return NULL;
    *len = bson_iter_key_len(&sub);
    return bson_iter_key(&sub);
}

/* A top-level query operator (mongod's "logical" and whole-document operators). */
static bool
is_top_level_operator(const char *key, uint32_t len)
{
    return key_is(key, len, "$and") || key_is(key, len, "$or") || key_is(key, len, "$nor") ||
           key_is(key, len, "$where") || key_is(key, len, "$expr") || key_is(key, len, "$text") ||
           key_is(key, len, "$jsonSchema") || key_is(key, len, "$comment") ||
           key_is(key, len, "$alwaysTrue") || key_is(key, len, "$alwaysFalse") ||
           key_is(key, len, "$sampleRate");
}

/*
 * Whether a path's value is an operator document ({$gt: 1}) rather than a
 * document compared whole: its first key starts with '$' and is not a DBRef
 * field (mongod's rule).
 */
static bool
is_operator_doc(const bson_iter_t *it)
{
    uint32_t len = 0;
    const char *k = first_key(it, &len);

    return k != NULL && k[0] == '$' && !key_is(k, len, "$ref") && !key_is(k, len, "$id") &&
           !key_is(k, len, "$db");
}

/* Whether flag f is in opts[0..len) (a regex's options: a C string, or a $options value). */
static bool
has_flag(const char *opts, uint32_t len, char f)
{
    return opts != NULL && memchr(opts, f, len) != NULL;
}

/*
 * The class of a regular expression: a range when anchored (^ without the
 * m flag, or \A) and followed by a literal character that is not made
 * optional, without the i flag and without alternation (mongod's
 * simpleRegex rule, conservatively); unindexable otherwise.
 */
static enum advice_op
regex_op(const char *pat, uint32_t len, bool flag_i, bool flag_m, uint32_t *ops)
{
    static const char special[] = ".[]()*+?{}|\\^$";
    const char *rest;
    uint32_t rest_len;

    *ops = ADVICE_OPS_REGEX;
    if (flag_i || memchr(pat, '|', len) != NULL)
        return ADVICE_OP_UNINDEXABLE;
    if (len >= 2 && pat[0] == '\\' && pat[1] == 'A') {
        rest = pat + 2;
        rest_len = len - 2;
    } else if (len >= 1 && pat[0] == '^' && !flag_m) {
        rest = pat + 1;
        rest_len = len - 1;
    } else {
        return ADVICE_OP_UNINDEXABLE;
    }
    if (rest_len == 0 || rest[0] == '\0' || strchr(special, rest[0]) != NULL)
        return ADVICE_OP_UNINDEXABLE;
    if (rest_len >= 2 && (rest[1] == '?' || rest[1] == '*' || rest[1] == '{'))
        return ADVICE_OP_UNINDEXABLE;
    *ops = ADVICE_OPS_REGEX_PREFIX;
    return ADVICE_OP_RANGE;
}

/*
 * The class of a regex value at it: a BSON regex (with its own options), or
 * a $regex string; more_opts is a sibling $options value (or NULL).
 */
static enum advice_op
regex_value_op(const bson_iter_t *it, const char *more_opts, uint32_t more_len, uint32_t *ops)
{
    const char *pat, *opts = NULL;
    uint32_t len, opts_len = 0;

    if (BSON_ITER_HOLDS_REGEX(it)) {
        pat = bson_iter_regex(it, &opts);
        len = (uint32_t)strlen(pat);
        opts_len = opts ? (uint32_t)strlen(opts) : 0;
    } else if (BSON_ITER_HOLDS_UTF8(it)) {
        pat = bson_iter_utf8(it, &len);
    } else {
        *ops = ADVICE_OPS_REGEX;
        return ADVICE_OP_UNINDEXABLE;
    }
    return regex_op(pat, len, has_flag(opts, opts_len, 'i') || has_flag(more_opts, more_len, 'i'),
                    has_flag(opts, opts_len, 'm') || has_flag(more_opts, more_len, 'm'), ops);
}

/* ---- the filter walk ---------------------------------------------------------------------- */

static void walk_filter(struct walk *w, uint32_t lo, const bson_iter_t *doc, const char *prefix,
                        uint32_t plen, uint32_t depth);

/* What one field operator ($gt, $in, ...) means for its path. */
static enum advice_op
operator_op(const char *name, uint32_t len, uint32_t *ops)
{
    static const struct {
        const char *name;
        enum advice_op op;
        uint32_t ops;
    } table[] = {
        {"$eq", ADVICE_OP_EQ, ADVICE_OPS_EQ},
        {"$in", ADVICE_OP_IN, ADVICE_OPS_IN},
        {"$gt", ADVICE_OP_RANGE, ADVICE_OPS_GT},
        {"$gte", ADVICE_OP_RANGE, ADVICE_OPS_GTE},
        {"$lt", ADVICE_OP_RANGE, ADVICE_OPS_LT},
        {"$lte", ADVICE_OP_RANGE, ADVICE_OPS_LTE},
        {"$ne", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NE},
        {"$nin", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NIN},
        {"$not", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NOT},
        {"$exists", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_EXISTS},
        {"$type", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_TYPE},
        {"$size", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_SIZE},
        {"$all", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_ALL},
        {"$mod", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_MOD},
        {"$bitsAllSet", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS},
        {"$bitsAnySet", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS},
        {"$bitsAllClear", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS},
        {"$bitsAnyClear", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS},
        {"$near", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$nearSphere", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$geoWithin", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$geoIntersects", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$within", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$maxDistance", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
        {"$minDistance", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO},
    };

    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (key_is(name, len, table[i].name)) {
            *ops = table[i].ops;
            return table[i].op;
        }
    }
    *ops = ADVICE_OPS_OTHER;
    return ADVICE_OP_UNINDEXABLE;
}

/* The $options string next to a $regex in the operator document at doc, if any. */
static void
find_options(const bson_iter_t *doc, const char **opts, uint32_t *len)
{
    bson_iter_t it;

    *opts = NULL;
    *len = 0;
    if (bson_iter_recurse(doc, &it) && bson_iter_find(&it, "$options") && BSON_ITER_HOLDS_UTF8(&it))
        *opts = bson_iter_utf8(&it, len);
}

/*
 * $elemMatch's value form applies operators to the elements themselves
 * ({scores: {$elemMatch: {$gt: 80}}}); its object form is a filter on the
 * elements' fields (dotted paths under the array's).
 */
static bool
is_elem_value_form(const bson_iter_t *it)
{
    uint32_t len = 0;
    const char *k = first_key(it, &len);

    return k != NULL && k[0] == '$' && !is_top_level_operator(k, len);
}

/* The operator document at doc for path: each operator adds its class to the path. */
static void
walk_operators(struct walk *w, uint32_t lo, const char *path, uint32_t plen, const bson_iter_t *doc,
               uint32_t depth)
{
    bson_iter_t it;

    if (!bson_iter_recurse(doc, &it))
        return;
    while (bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);
        uint32_t len = bson_iter_key_len(&it);
        enum advice_op op;
        uint32_t ops;

        if (!spend(w))
            return;
        if (key_is(name, len, "$options"))
            continue;
        if (key_is(name, len, "$elemMatch")) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                continue;
            if (depth + 1 > WALK_MAX_NEST)
                mark_truncated(w, lo);
            else if (is_elem_value_form(&it))
                walk_operators(w, lo, path, plen, &it, depth + 1);
            else
                walk_filter(w, lo, &it, path, plen, depth + 1);
            continue;
        }
        if (key_is(name, len, "$regex")) {
            const char *opts;
            uint32_t opts_len;

            find_options(doc, &opts, &opts_len);
            op = regex_value_op(&it, opts, opts_len, &ops);
        } else {
            op = operator_op(name, len, &ops);
        }
        add_path(w, lo, path, plen, op, ops);
    }
}

static void
copy_conj(struct conj *dst, const struct conj *src)
{
    dst->n = src->n;
    dst->truncated = src->truncated;
    memcpy(dst->paths, src->paths, src->n * sizeof src->paths[0]);
}

/*
 * $or: the range [lo, top) is replaced by one copy per branch, each walked
 * with its branch. Branches that do not fit in the scratch are dropped
 * (and the remaining shapes marked truncated).
 */
static void
walk_or(struct walk *w, uint32_t lo, const bson_iter_t *arr, const char *prefix, uint32_t plen,
        uint32_t depth)
{
    uint32_t hi = w->n_conj, base = hi - lo, made = 0;
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_ARRAY(arr) || !bson_iter_recurse(arr, &it))
        return;
    while (bson_iter_next(&it)) {
        uint32_t start = w->n_conj;

        if (!spend(w))
            break;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        if (w->n_conj + base > WALK_MAX_CONJ) {
            for (uint32_t i = hi; i < w->n_conj; i++)
                w->conj[i].truncated = true;
            mark_truncated(w, lo);
            break;
        }
        for (uint32_t i = 0; i < base; i++)
            copy_conj(&w->conj[start + i], &w->conj[lo + i]);
        w->n_conj += base;
        walk_filter(w, start, &it, prefix, plen, depth + 1);
        made++;
    }
    if (made == 0) {
        w->n_conj = hi; /* an empty $or: mongod refuses it; keep the range as it was */
        return;
    }
    for (uint32_t i = 0; i < w->n_conj - hi; i++)
        copy_conj(&w->conj[lo + i], &w->conj[hi + i]);
    w->n_conj = lo + (w->n_conj - hi);
}

/* A key starting with '$' in a filter (or in an $elemMatch object). */
static void
walk_top_operator(struct walk *w, uint32_t lo, const char *key, uint32_t klen,
                  const bson_iter_t *it, const char *prefix, uint32_t plen, uint32_t depth)
{
    if (key_is(key, klen, "$comment"))
        return;
    if (key_is(key, klen, "$and")) {
        bson_iter_t m;

        if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &m))
            return;
        while (bson_iter_next(&m)) {
            if (!spend(w))
                return;
            if (BSON_ITER_HOLDS_DOCUMENT(&m))
                walk_filter(w, lo, &m, prefix, plen, depth + 1);
        }
        return;
    }
    if (key_is(key, klen, "$or")) {
        walk_or(w, lo, it, prefix, plen, depth);
        return;
    }
    /* $nor, $where, $expr, $text, $jsonSchema, ...: nothing an index serves. */
    if (plen == 0)
        add_path(w, lo, key, klen, ADVICE_OP_UNINDEXABLE, ADVICE_OPS_OTHER);
    else
        add_path(w, lo, prefix, plen, ADVICE_OP_UNINDEXABLE, ADVICE_OPS_OTHER);
}

/* One path and its value. */
static void
walk_field(struct walk *w, uint32_t lo, const char *path, uint32_t len, const bson_iter_t *it,
           uint32_t depth)
{
    enum advice_op op;
    uint32_t ops;

    if (BSON_ITER_HOLDS_DOCUMENT(it) && is_operator_doc(it)) {
        walk_operators(w, lo, path, len, it, depth);
        return;
    }
    if (BSON_ITER_HOLDS_REGEX(it)) {
        op = regex_value_op(it, NULL, 0, &ops);
        add_path(w, lo, path, len, op, ops);
        return;
    }
    add_path(w, lo, path, len, ADVICE_OP_EQ, ADVICE_OPS_EQ);
}

/* The filter document at doc, into the range [lo, top), its paths under prefix. */
static void
walk_filter(struct walk *w, uint32_t lo, const bson_iter_t *doc, const char *prefix, uint32_t plen,
            uint32_t depth)
{
    bson_iter_t it;

    if (depth > WALK_MAX_NEST) {
        mark_truncated(w, lo);
        return;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(doc) || !bson_iter_recurse(doc, &it))
        return;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it), *path;
        uint32_t klen = bson_iter_key_len(&it), len;

        if (!spend(w))
            return;
        if (klen > 0 && key[0] == '$') {
            walk_top_operator(w, lo, key, klen, &it, prefix, plen, depth);
            continue;
        }
        if (!make_path(w, lo, prefix, plen, key, klen, &path, &len))
            continue;
        walk_field(w, lo, path, len, &it, depth);
    }
}

/* ---- the parts of a query besides its filter ------------------------------------------- */

/* A sort document: keys in order, directions by sign; anything else is unusable. */
static void
read_sort(struct walk *w, struct query *q, const bson_iter_t *doc)
{
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_DOCUMENT(doc) || !bson_iter_recurse(doc, &it))
        return;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        uint32_t len = bson_iter_key_len(&it);
        int dir = 0;

        if (!spend(w)) {
            q->sort_unusable = true;
            return;
        }
        if (BSON_ITER_HOLDS_NUMBER(&it)) {
            double v = bson_iter_as_double(&it);

            dir = v > 0 ? 1 : v < 0 ? -1 : 0;
        }
        if (dir == 0 || !indexable_path(key, len))
            q->sort_unusable = true;
        if (len > ADVICE_SHAPE_MAX_PATH_LEN || q->n_sort == ADVICE_SHAPE_MAX_SORT) {
            /* a sort key left out: what is kept no longer describes the order */
            q->truncated = true;
            q->sort_unusable = true;
            continue;
        }
        q->sort[q->n_sort].p = key;
        q->sort[q->n_sort].len = len;
        q->sort[q->n_sort].dir = dir;
        q->n_sort++;
    }
}

/* A collation other than the simple (binary) one, which every index has. */
static bool
real_collation(const bson_iter_t *it)
{
    bson_iter_t sub;
    const char *locale;
    uint32_t len;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub))
        return false;
    if (!bson_iter_next(&sub))
        return false; /* {} */
    if (!bson_iter_recurse(it, &sub) || !bson_iter_find(&sub, "locale"))
        return true;
    if (!BSON_ITER_HOLDS_UTF8(&sub))
        return true;
    locale = bson_iter_utf8(&sub, &len);
    return !key_is(locale, len, "simple");
}

static bool
real_hint(const bson_iter_t *it)
{
    uint32_t len = 0;

    if (BSON_ITER_HOLDS_UTF8(it)) {
        bson_iter_utf8(it, &len);
        return len > 0;
    }
    return first_key(it, &len) != NULL;
}

/* ---- hashing --------------------------------------------------------------------------- */

/*
 * The canonical form, hashed in pieces: the namespace seeds the final hash;
 * each filter path hashes alone (its class and operators in the seed) and
 * the path hashes are summed, so their order does not matter; the sort keys
 * hash in order; source, counts and flags go in the final block.
 */
static uint64_t
hash_parts(const char *db, size_t db_len, const char *coll, size_t coll_len,
           enum advice_source source, const struct part *paths, uint32_t n_paths,
           const struct skey *sort, uint32_t n_sort, uint32_t flags)
{
    uint64_t words[2 + ADVICE_SHAPE_MAX_SORT];
    uint64_t seed = XXH3_64bits_withSeed(db, db_len, 0x6d63616476696365ull); /* "mcadvice" */
    uint64_t sum = 0;

    seed = XXH3_64bits_withSeed(coll, coll_len, seed);
    for (uint32_t i = 0; i < n_paths; i++)
        sum += XXH3_64bits_withSeed(paths[i].p, paths[i].len,
                                    ((uint64_t)paths[i].op << 32) | paths[i].ops);
    words[0] =
        (uint64_t)source | (uint64_t)flags << 8 | (uint64_t)n_paths << 16 | (uint64_t)n_sort << 32;
    words[1] = sum;
    for (uint32_t i = 0; i < n_sort; i++)
        words[2 + i] = XXH3_64bits_withSeed(sort[i].p, sort[i].len, (uint64_t)(sort[i].dir + 2));
    return XXH3_64bits_withSeed(words, (2 + n_sort) * sizeof words[0], seed);
}

static uint32_t
flag_bits(bool sort_unusable, bool collation, bool hint, bool truncated)
{
    return (sort_unusable ? 1u : 0) | (collation ? 2u : 0) | (hint ? 4u : 0) | (truncated ? 8u : 0);
}

uint64_t
advice_shape_hash(const struct advice_shape *shape)
{
    struct part paths[ADVICE_SHAPE_MAX_PATHS];
    struct skey sort[ADVICE_SHAPE_MAX_SORT];
    uint32_t n_paths =
        shape->n_paths < ADVICE_SHAPE_MAX_PATHS ? shape->n_paths : ADVICE_SHAPE_MAX_PATHS;
    uint32_t n_sort = shape->n_sort < ADVICE_SHAPE_MAX_SORT ? shape->n_sort : ADVICE_SHAPE_MAX_SORT;

    for (uint32_t i = 0; i < n_paths; i++) {
        size_t len;

        paths[i].p = shape->paths[i].path ? shape->paths[i].path : "";
        len = strlen(paths[i].p);
        /* a hand-built path longer than any extract keeps: hash its first bytes */
        paths[i].len = (uint16_t)(len > UINT16_MAX ? UINT16_MAX : len);
        paths[i].op = (uint8_t)shape->paths[i].op;
        paths[i].ops = shape->paths[i].ops;
    }
    for (uint32_t i = 0; i < n_sort; i++) {
        sort[i].p = shape->sort[i].path ? shape->sort[i].path : "";
        sort[i].len = (uint32_t)strlen(sort[i].p);
        sort[i].dir = shape->sort[i].dir;
    }
    return hash_parts(
        shape->db ? shape->db : "", shape->db ? strlen(shape->db) : 0,
        shape->coll ? shape->coll : "", shape->coll ? strlen(shape->coll) : 0, shape->source, paths,
        n_paths, sort, n_sort,
        flag_bits(shape->sort_unusable, shape->collation, shape->hint, shape->truncated));
}

/* ---- from the walk to owned shapes ------------------------------------------------------ */

/*
 * Turns each conjunction of the walk into a shape of q in out, unless it is
 * empty (no path, no sort) or equal to one already there. False when out
 * is full.
 */
static bool
emit(const struct walk *w, const struct query *q, struct advice_shapes *out)
{
    for (uint32_t i = 0; i < w->n_conj; i++) {
        const struct conj *c = &w->conj[i];
        bool truncated = c->truncated || w->truncated || q->truncated;
        uint64_t hash;
        struct advice_shape *s;
        uint32_t k;

        if (c->n == 0 && q->n_sort == 0)
            continue;
        hash =
            hash_parts(q->db, q->db_len, q->coll, q->coll_len, q->source, c->paths, c->n, q->sort,
                       q->n_sort, flag_bits(q->sort_unusable, q->collation, q->hint, truncated));
        for (k = 0; k < out->n && out->shape[k].hash != hash; k++)
            ;
        if (k < out->n)
            continue;
        if (out->n == ADVICE_MAX_SHAPES_PER_COMMAND)
            return false;
        s = &out->shape[out->n];
        s->db = bson_strndup(q->db, q->db_len);
        s->coll = bson_strndup(q->coll, q->coll_len);
        s->source = q->source;
        for (k = 0; k < c->n; k++) {
            s->paths[k].path = bson_strndup(c->paths[k].p, c->paths[k].len);
            s->paths[k].op = (enum advice_op)c->paths[k].op;
            s->paths[k].ops = c->paths[k].ops;
        }
        s->n_paths = c->n;
        for (k = 0; k < q->n_sort; k++) {
            s->sort[k].path = bson_strndup(q->sort[k].p, q->sort[k].len);
            s->sort[k].dir = q->sort[k].dir;
        }
        s->n_sort = q->n_sort;
        s->sort_unusable = q->sort_unusable;
        s->collation = q->collation;
        s->hint = q->hint;
        s->truncated = truncated;
        s->hash = hash;
        out->query[out->n] = q->doc;
        out->query_len[out->n] = q->doc_len;
        out->statement[out->n] = q->statement;
        out->n++;
    }
    return true;
}

/* A fresh walk for the next query of the command (the budget goes on). */
static void
walk_reset(struct walk *w)
{
    w->n_conj = 1;
    w->conj[0].n = 0;
    w->conj[0].truncated = false;
    w->arena_used = 0;
    w->truncated = false;
}

static void
query_init(struct query *q, const struct query *ns, enum advice_source source)
{
    q->db = ns->db;
    q->db_len = ns->db_len;
    q->coll = ns->coll;
    q->coll_len = ns->coll_len;
    q->source = source;
    q->n_sort = 0;
    q->sort_unusable = false;
    q->collation = false;
    q->hint = false;
    q->truncated = false;
    q->doc = ns->doc;
    q->doc_len = ns->doc_len;
    q->statement = 0;
}

/*
 * A document holding a filter under filter_key, and optionally sort,
 * hint and collation: a find, count, distinct or findAndModify body, or an
 * update/delete statement.
 */
static bool
one_query(struct walk *w, struct query *q, const bson_t *doc, const char *filter_key,
          struct advice_shapes *out)
{
    bson_iter_t it, filter;
    bool have_filter = false;

    walk_reset(w);
    if (!bson_iter_init(&it, doc))
        return true;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (!spend(w))
            break;
        if (strcmp(key, filter_key) == 0) {
            filter = it;
            have_filter = true;
        } else if (strcmp(key, "sort") == 0) {
            read_sort(w, q, &it);
        } else if (strcmp(key, "hint") == 0) {
            q->hint = real_hint(&it);
        } else if (strcmp(key, "collation") == 0) {
            q->collation = real_collation(&it);
        }
    }
    if (have_filter)
        walk_filter(w, 0, &filter, "", 0, 0);
    return emit(w, q, out);
}

/* The statements of an update or delete: in the body's array, or in the document sequence. */
static void
statements(struct walk *w, const struct query *ns, const bson_t *body, const char *array,
           enum advice_source source, const struct advice_sequence *seqs, uint32_t n_seqs,
           struct advice_shapes *out)
{
    bson_iter_t it, m;
    uint32_t index = 0;

    if (bson_iter_init_find(&it, body, array) && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &m)) {
        while (bson_iter_next(&m) && w->budget > 0) {
            const uint8_t *data;
            uint32_t len;
            struct query q;
            bson_t stmt;

            if (BSON_ITER_HOLDS_DOCUMENT(&m)) {
                bson_iter_document(&m, &len, &data);
                if (bson_init_static(&stmt, data, len)) {
                    query_init(&q, ns, source);
                    q.doc = data;
                    q.doc_len = len;
                    q.statement = index;
                    if (!one_query(w, &q, &stmt, "q", out))
                        return;
                }
            }
            index++;
        }
        return;
    }
    for (uint32_t s = 0; s < n_seqs; s++) {
        uint32_t off = 0;

        if (seqs[s].id == NULL || strcmp(seqs[s].id, array) != 0)
            continue;
        /* Documents back to back; their lengths were checked, but are not trusted here. */
        while (seqs[s].len - off >= 5 && w->budget > 0) {
            const uint8_t *data = seqs[s].docs + off;
            int32_t len = (int32_t)((uint32_t)data[0] | (uint32_t)data[1] << 8 |
                                    (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24);
            struct query q;
            bson_t stmt;

            if (len < 5 || (uint32_t)len > seqs[s].len - off)
                break;
            if (bson_init_static(&stmt, data, (size_t)len)) {
                query_init(&q, ns, source);
                q.doc = data;
                q.doc_len = (uint32_t)len;
                q.statement = index;
                if (!one_query(w, &q, &stmt, "q", out))
                    return;
            }
            off += (uint32_t)len;
            index++;
        }
        return;
    }
}

/* A $lookup stage: an equality on foreignField in the foreign collection. */
static bool
lookup(struct walk *w, const struct query *ns, const bson_iter_t *stage, uint32_t index,
       struct advice_shapes *out)
{
    const char *from = NULL, *field = NULL;
    uint32_t from_len = 0, field_len = 0;
    bson_iter_t it;
    struct query q;

    if (!bson_iter_recurse(stage, &it))
        return true;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (!spend(w))
            return true;
        if (strcmp(key, "from") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            from = bson_iter_utf8(&it, &from_len);
        else if (strcmp(key, "foreignField") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            field = bson_iter_utf8(&it, &field_len);
    }
    if (from == NULL || field == NULL || from_len == 0 || field_len == 0 ||
        memchr(from, '\0', from_len) != NULL || memchr(field, '\0', field_len) != NULL)
        return true;
    query_init(&q, ns, ADVICE_SRC_LOOKUP);
    q.coll = from;
    q.coll_len = from_len;
    q.statement = index;
    walk_reset(w);
    add_path(w, 0, field, field_len, ADVICE_OP_EQ, ADVICE_OPS_EQ);
    return emit(w, &q, out);
}

/*
 * An aggregate: its leading $match stages (merged) and first $sort, then
 * each $lookup of the pipeline (not those nested in $facet, $unionWith or
 * a $lookup's own pipeline).
 */
static void
aggregate(struct walk *w, const struct query *ns, const bson_t *body, struct advice_shapes *out)
{
    bson_iter_t it, stages;
    struct query q;
    bool leading = true, sorted = false;
    uint32_t index = 0;

    if (!bson_iter_init_find(&it, body, "pipeline") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &stages))
        return;
    query_init(&q, ns, ADVICE_SRC_AGGREGATE);
    walk_reset(w);
    if (bson_iter_init(&it, body)) {
        while (bson_iter_next(&it)) {
            if (!spend(w))
                break;
            if (strcmp(bson_iter_key(&it), "hint") == 0)
                q.hint = real_hint(&it);
            else if (strcmp(bson_iter_key(&it), "collation") == 0)
                q.collation = real_collation(&it);
        }
    }
    while (leading && bson_iter_next(&stages)) {
        bson_iter_t stage;

        if (!spend(w) || !BSON_ITER_HOLDS_DOCUMENT(&stages) ||
            !bson_iter_recurse(&stages, &stage) || !bson_iter_next(&stage))
            break;
        if (strcmp(bson_iter_key(&stage), "$match") == 0)
            walk_filter(w, 0, &stage, "", 0, 0);
        else if (!sorted && strcmp(bson_iter_key(&stage), "$sort") == 0) {
            read_sort(w, &q, &stage);
            sorted = true;
        } else {
            leading = false;
        }
    }
    if (!emit(w, &q, out))
        return;

    if (!bson_iter_init_find(&it, body, "pipeline") || !bson_iter_recurse(&it, &stages))
        return;
    while (bson_iter_next(&stages) && spend(w)) {
        bson_iter_t stage;

        if (BSON_ITER_HOLDS_DOCUMENT(&stages) && bson_iter_recurse(&stages, &stage) &&
            bson_iter_next(&stage) && strcmp(bson_iter_key(&stage), "$lookup") == 0 &&
            BSON_ITER_HOLDS_DOCUMENT(&stage) && !lookup(w, ns, &stage, index, out))
            return;
        index++;
    }
}

uint32_t
advice_shape_extract(const bson_t *body, const struct wire_cmd *cmd,
                     const struct advice_sequence *seqs, uint32_t n_seqs, struct advice_shapes *out)
{
    struct walk w;
    struct query ns, q;
    const char *name;

    out->n = 0;
    if (cmd == NULL || cmd->name == NULL || cmd->coll == NULL || cmd->coll_len == 0 ||
        cmd->db == NULL || cmd->db_len == 0 || memchr(cmd->coll, '\0', cmd->coll_len) != NULL)
        return 0;
    w.budget = WALK_BUDGET;
    ns.db = cmd->db;
    ns.db_len = cmd->db_len;
    ns.coll = cmd->coll;
    ns.coll_len = cmd->coll_len;
    ns.doc = bson_get_data(body);
    ns.doc_len = body->len;
    name = cmd->name;

    if (strcmp(name, "find") == 0) {
        query_init(&q, &ns, ADVICE_SRC_FIND);
        one_query(&w, &q, body, "filter", out);
    } else if (strcmp(name, "count") == 0) {
        query_init(&q, &ns, ADVICE_SRC_COUNT);
        one_query(&w, &q, body, "query", out);
    } else if (strcmp(name, "distinct") == 0) {
        query_init(&q, &ns, ADVICE_SRC_DISTINCT);
        one_query(&w, &q, body, "query", out);
    } else if (strcmp(name, "findAndModify") == 0 || strcmp(name, "findandmodify") == 0) {
        query_init(&q, &ns, ADVICE_SRC_FIND_AND_MODIFY);
        one_query(&w, &q, body, "query", out);
    } else if (strcmp(name, "aggregate") == 0) {
        aggregate(&w, &ns, body, out);
    } else if (strcmp(name, "update") == 0) {
        statements(&w, &ns, body, "updates", ADVICE_SRC_UPDATE, seqs, n_seqs, out);
    } else if (strcmp(name, "delete") == 0) {
        statements(&w, &ns, body, "deletes", ADVICE_SRC_DELETE, seqs, n_seqs, out);
    }
    return out->n;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

void
advice_shape_cleanup(struct advice_shape *shape)
{
    if (shape == NULL)
        return;
    bson_free(shape->db);
    bson_free(shape->coll);
    for (uint32_t i = 0; i < shape->n_paths && i < ADVICE_SHAPE_MAX_PATHS; i++)
        bson_free(shape->paths[i].path);
    for (uint32_t i = 0; i < shape->n_sort && i < ADVICE_SHAPE_MAX_SORT; i++)
        bson_free(shape->sort[i].path);
    shape->db = NULL;
    shape->coll = NULL;
    shape->n_paths = 0;
    shape->n_sort = 0;
}

void
advice_shapes_cleanup(struct advice_shapes *shapes)
{
    if (shapes == NULL)
        return;
    for (uint32_t i = 0; i < shapes->n && i < ADVICE_MAX_SHAPES_PER_COMMAND; i++)
        advice_shape_cleanup(&shapes->shape[i]);
    shapes->n = 0;
}

void
advice_shape_copy(struct advice_shape *dst, const struct advice_shape *src)
{
    uint32_t n_paths =
        src->n_paths < ADVICE_SHAPE_MAX_PATHS ? src->n_paths : ADVICE_SHAPE_MAX_PATHS;
    uint32_t n_sort = src->n_sort < ADVICE_SHAPE_MAX_SORT ? src->n_sort : ADVICE_SHAPE_MAX_SORT;

    dst->db = bson_strdup(src->db);
    dst->coll = bson_strdup(src->coll);
    dst->source = src->source;
    for (uint32_t i = 0; i < n_paths; i++) {
        dst->paths[i].path = bson_strdup(src->paths[i].path);
        dst->paths[i].op = src->paths[i].op;
        dst->paths[i].ops = src->paths[i].ops;
    }
    dst->n_paths = n_paths;
    for (uint32_t i = 0; i < n_sort; i++) {
        dst->sort[i].path = bson_strdup(src->sort[i].path);
        dst->sort[i].dir = src->sort[i].dir;
    }
    dst->n_sort = n_sort;
    dst->sort_unusable = src->sort_unusable;
    dst->collation = src->collation;
    dst->hint = src->hint;
    dst->truncated = src->truncated;
    dst->hash = src->hash;
}

/* ---- display ------------------------------------------------------------------------------ */

static bool
is_identifier(const char *s)
{
    if (s == NULL ||
        !(*s == '_' || *s == '$' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (s++; *s; s++) {
        if (!(*s == '_' || *s == '$' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    }
    return true;
}

/* s with control bytes, quotes, backslashes and (when not UTF-8) high bytes escaped. */
static void
append_escaped(bson_string_t *out, const char *s)
{
    size_t len = strlen(s);
    bool utf8 = bson_utf8_validate(s, len, false);

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            bson_string_append_printf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            bson_string_append_printf(out, "\\x%02x", c);
        else
            bson_string_append_c(out, (char)c);
    }
}

static void
append_key(bson_string_t *out, const char *path)
{
    if (is_identifier(path)) {
        bson_string_append(out, path);
        return;
    }
    bson_string_append_c(out, '"');
    append_escaped(out, path ? path : "");
    bson_string_append_c(out, '"');
}

/* A path's value as shown: "?", /^?/, /?/, or {$op: ?, ...}. */
static void
append_ops(bson_string_t *out, const struct advice_path *p)
{
    static const struct {
        uint32_t bit;
        const char *text;
    } shown[] = {
        {ADVICE_OPS_EQ, "$eq: ?"},
        {ADVICE_OPS_IN, "$in: ?"},
        {ADVICE_OPS_GT, "$gt: ?"},
        {ADVICE_OPS_GTE, "$gte: ?"},
        {ADVICE_OPS_LT, "$lt: ?"},
        {ADVICE_OPS_LTE, "$lte: ?"},
        {ADVICE_OPS_REGEX_PREFIX, "$regex: /^?/"},
        {ADVICE_OPS_REGEX, "$regex: /?/"},
        {ADVICE_OPS_NE, "$ne: ?"},
        {ADVICE_OPS_NIN, "$nin: ?"},
        {ADVICE_OPS_NOT, "$not: ?"},
        {ADVICE_OPS_EXISTS, "$exists: ?"},
        {ADVICE_OPS_TYPE, "$type: ?"},
        {ADVICE_OPS_SIZE, "$size: ?"},
        {ADVICE_OPS_ALL, "$all: ?"},
        {ADVICE_OPS_MOD, "$mod: ?"},
        {ADVICE_OPS_BITS, "$bits: ?"},
        {ADVICE_OPS_GEO, "$geo: ?"},
        {ADVICE_OPS_OTHER, "$other: ?"},
    };
    uint32_t ops = p->ops;
    bool first = true;

    if (p->path && p->path[0] == '$') {
        bson_string_append(out, "?"); /* $where: ?, $expr: ? */
        return;
    }
    if (ops == 0) {
        /* a hand-built shape: show the class */
        ops = p->op == ADVICE_OP_EQ      ? ADVICE_OPS_EQ
              : p->op == ADVICE_OP_IN    ? ADVICE_OPS_IN
              : p->op == ADVICE_OP_RANGE ? ADVICE_OPS_GTE
                                         : ADVICE_OPS_OTHER;
    }
    if (ops == ADVICE_OPS_EQ) {
        bson_string_append(out, "?");
        return;
    }
    if (ops == ADVICE_OPS_REGEX_PREFIX || ops == ADVICE_OPS_REGEX) {
        bson_string_append(out, ops == ADVICE_OPS_REGEX ? "/?/" : "/^?/");
        return;
    }
    bson_string_append_c(out, '{');
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        if (ops & shown[i].bit) {
            bson_string_append(out, first ? "" : ", ");
            bson_string_append(out, shown[i].text);
            first = false;
        }
    }
    bson_string_append_c(out, '}');
}

char *
advice_shape_display(const struct advice_shape *shape)
{
    bson_string_t *out = bson_string_new(advice_source_name(shape->source));

    bson_string_append_c(out, ' ');
    append_escaped(out, shape->db ? shape->db : "");
    bson_string_append_c(out, '.');
    append_escaped(out, shape->coll ? shape->coll : "");
    bson_string_append(out, " {");
    for (uint32_t i = 0; i < shape->n_paths && i < ADVICE_SHAPE_MAX_PATHS; i++) {
        bson_string_append(out, i ? ", " : "");
        append_key(out, shape->paths[i].path);
        bson_string_append(out, ": ");
        append_ops(out, &shape->paths[i]);
    }
    bson_string_append_c(out, '}');
    if (shape->n_sort > 0) {
        bson_string_append(out, " sort {");
        for (uint32_t i = 0; i < shape->n_sort && i < ADVICE_SHAPE_MAX_SORT; i++) {
            bson_string_append(out, i ? ", " : "");
            append_key(out, shape->sort[i].path);
            if (shape->sort[i].dir == 0)
                bson_string_append(out, ": {$meta: ?}");
            else
                bson_string_append_printf(out, ": %d", shape->sort[i].dir);
        }
        bson_string_append_c(out, '}');
    }
    if (shape->collation)
        bson_string_append(out, " collation ?");
    if (shape->hint)
        bson_string_append(out, " hint ?");
    if (shape->truncated)
        bson_string_append(out, " (truncated)");
    return bson_string_free(out, false);
}

const char *
advice_op_name(enum advice_op op)
{
    switch (op) {
    case ADVICE_OP_EQ:
        return "eq";
    case ADVICE_OP_IN:
        return "in";
    case ADVICE_OP_RANGE:
        return "range";
    case ADVICE_OP_UNINDEXABLE:
        return "unindexable";
    }
    return "unknown";
}

const char *
advice_source_name(enum advice_source source)
{
    switch (source) {
    case ADVICE_SRC_FIND:
        return "find";
    case ADVICE_SRC_AGGREGATE:
        return "aggregate";
    case ADVICE_SRC_COUNT:
        return "count";
    case ADVICE_SRC_DISTINCT:
        return "distinct";
    case ADVICE_SRC_UPDATE:
        return "update";
    case ADVICE_SRC_DELETE:
        return "delete";
    case ADVICE_SRC_FIND_AND_MODIFY:
        return "findAndModify";
    case ADVICE_SRC_LOOKUP:
        return "lookup";
    }
    return "unknown";
}
