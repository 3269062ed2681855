/*
 * advice/filter.c: owns reading a query filter into conjunctions of paths
 * (advice/filter.h): the operator classes of MongoDB's query language
 * (equality, $in, ranges and anchored regular expressions, everything an
 * index cannot serve), $and, $or, $nor, $elemMatch, and the top-level
 * operators. It runs on the event loop for every miss and pass-through,
 * over a filter that passed wire_doc_check but is otherwise hostile, so it
 * reads in place (wire/reader.h), allocates nothing, and is bounded: elements
 * visited (the caller's budget), FILTER_MAX_NEST levels of nesting (the
 * recursion's only source, so the C stack is bounded too), paths per
 * conjunction, path length, conjunctions in flight.
 *
 * How $or works: the conjunctions being filled are always a range at the
 * top of the conjunction stack, [lo, n_conj). A plain path is added to
 * every conjunction of the range; $and reads its members into the same
 * range; $or puts one copy of the range per branch above it, reads each
 * branch into its copy, and moves the copies down over the range (so paths
 * outside the $or are in every branch's conjunction).
 *
 * It does not know commands, sorts or namespaces (advice/shape.c).
 */
#include "config.h"

#include "advice/filter.h"

#include "wire/reader.h"

#include <string.h>

/* Nesting of $and, $or and $elemMatch read; deeper marks the conjunction truncated. */
#define FILTER_MAX_NEST 32

/* Whether key (len bytes) is the string literal lit. */
#define KEY_IS(key, len, lit)                                                                      \
    ((len) == sizeof(lit) - 1 && memcmp((key), (lit), sizeof(lit) - 1) == 0)

static void
mark_truncated(struct advice_filter *w, uint32_t lo)
{
    for (uint32_t i = lo; i < w->n_conj; i++)
        w->conj[i].truncated = true;
}

bool
advice_filter_indexable_path(const char *p, uint32_t len)
{
    uint32_t start = 0;

    if (len == 0)
        return false;
    for (uint32_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '.') {
            if (i == start)
                return false;
            if (p[start] == '$' && !KEY_IS(p + start, i - start, "$id") &&
                !KEY_IS(p + start, i - start, "$ref") && !KEY_IS(p + start, i - start, "$db"))
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
add_path(struct advice_filter *w, uint32_t lo, const char *p, uint32_t len, enum advice_op op,
         uint32_t ops)
{
    if (len > ADVICE_SHAPE_MAX_PATH_LEN) {
        mark_truncated(w, lo);
        return;
    }
    if (p[0] != '$' && !advice_filter_indexable_path(p, len))
        op = ADVICE_OP_UNINDEXABLE;
    for (uint32_t i = lo; i < w->n_conj; i++) {
        struct advice_filter_conj *c = &w->conj[i];
        uint32_t j;

        for (j = 0; j < c->n; j++) {
            struct advice_filter_path *q = &c->paths[j];

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
make_path(struct advice_filter *w, uint32_t lo, const char *prefix, uint32_t plen, const char *key,
          uint32_t klen, const char **out, uint32_t *out_len)
{
    uint32_t len;

    if (plen == 0) {
        *out = key;
        *out_len = klen;
        return true;
    }
    len = plen + 1 + klen;
    if (len > ADVICE_SHAPE_MAX_PATH_LEN || ADVICE_FILTER_ARENA - w->arena_used < len) {
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
first_key(const struct wire_reader *it, uint32_t *len)
{
    struct wire_reader sub;

    if (!wire_reader_is_doc(it) || !wire_reader_recurse(it, &sub) || !wire_reader_next(&sub))
        return NULL;
    *len = sub.key_len;
    return sub.key;
}

/* A top-level query operator (mongod's "logical" and whole-document operators). */
static bool
is_top_level_operator(const char *key, uint32_t len)
{
    return KEY_IS(key, len, "$and") || KEY_IS(key, len, "$or") || KEY_IS(key, len, "$nor") ||
           KEY_IS(key, len, "$where") || KEY_IS(key, len, "$expr") || KEY_IS(key, len, "$text") ||
           KEY_IS(key, len, "$jsonSchema") || KEY_IS(key, len, "$comment") ||
           KEY_IS(key, len, "$alwaysTrue") || KEY_IS(key, len, "$alwaysFalse") ||
           KEY_IS(key, len, "$sampleRate");
}

/*
 * Whether a path's value is an operator document ({$gt: 1}) rather than a
 * document compared whole: its first key starts with '$' and is not a DBRef
 * field (mongod's rule).
 */
static bool
is_operator_doc(const struct wire_reader *it)
{
    uint32_t len = 0;
    const char *k = first_key(it, &len);

    return k != NULL && k[0] == '$' && !KEY_IS(k, len, "$ref") && !KEY_IS(k, len, "$id") &&
           !KEY_IS(k, len, "$db");
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
regex_value_op(const struct wire_reader *it, const char *more_opts, uint32_t more_len,
               uint32_t *ops)
{
    const char *pat, *opts = NULL;
    uint32_t len, opts_len = 0;

    if (wire_reader_regex(it, &pat, &opts)) {
        len = (uint32_t)strlen(pat);
        opts_len = (uint32_t)strlen(opts);
    } else if (!wire_reader_utf8(it, &pat, &len)) {
        *ops = ADVICE_OPS_REGEX;
        return ADVICE_OP_UNINDEXABLE;
    }
    return regex_op(pat, len, has_flag(opts, opts_len, 'i') || has_flag(more_opts, more_len, 'i'),
                    has_flag(opts, opts_len, 'm') || has_flag(more_opts, more_len, 'm'), ops);
}

/* ---- the filter walk ---------------------------------------------------------------------- */

static void walk_filter(struct advice_filter *w, uint32_t lo, const struct wire_reader *doc,
                        const char *prefix, uint32_t plen, uint32_t depth);

/* What one field operator ($gt, $in, ...) means for its path. */
static enum advice_op
operator_op(const char *name, uint32_t len, uint32_t *ops)
{
#define OP(name, op, ops)                                                                          \
    {                                                                                              \
        name, sizeof(name) - 1, op, ops                                                            \
    }
    static const struct {
        const char *name;
        uint32_t len;
        enum advice_op op;
        uint32_t ops;
    } table[] = {
        OP("$eq", ADVICE_OP_EQ, ADVICE_OPS_EQ),
        OP("$in", ADVICE_OP_IN, ADVICE_OPS_IN),
        OP("$gt", ADVICE_OP_RANGE, ADVICE_OPS_GT),
        OP("$gte", ADVICE_OP_RANGE, ADVICE_OPS_GTE),
        OP("$lt", ADVICE_OP_RANGE, ADVICE_OPS_LT),
        OP("$lte", ADVICE_OP_RANGE, ADVICE_OPS_LTE),
        OP("$ne", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NE),
        OP("$nin", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NIN),
        OP("$not", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_NOT),
        OP("$exists", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_EXISTS),
        OP("$type", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_TYPE),
        OP("$size", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_SIZE),
        OP("$all", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_ALL),
        OP("$mod", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_MOD),
        OP("$bitsAllSet", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS),
        OP("$bitsAnySet", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS),
        OP("$bitsAllClear", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS),
        OP("$bitsAnyClear", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_BITS),
        OP("$near", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$nearSphere", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$geoWithin", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$geoIntersects", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$within", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$maxDistance", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
        OP("$minDistance", ADVICE_OP_UNINDEXABLE, ADVICE_OPS_GEO),
    };
#undef OP

    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (len == table[i].len && memcmp(name, table[i].name, len) == 0) {
            *ops = table[i].ops;
            return table[i].op;
        }
    }
    *ops = ADVICE_OPS_OTHER;
    return ADVICE_OP_UNINDEXABLE;
}

/* The $options string next to a $regex in the operator document at doc, if any. */
static void
find_options(const struct wire_reader *doc, const char **opts, uint32_t *len)
{
    struct wire_reader found;

    *opts = NULL;
    *len = 0;
    if (wire_reader_find(doc, "$options", 8, &found))
        wire_reader_utf8(&found, opts, len);
}

/*
 * $elemMatch's value form applies operators to the elements themselves
 * ({scores: {$elemMatch: {$gt: 80}}}); its object form is a filter on the
 * elements' fields (dotted paths under the array's).
 */
static bool
is_elem_value_form(const struct wire_reader *it)
{
    uint32_t len = 0;
    const char *k = first_key(it, &len);

    return k != NULL && k[0] == '$' && !is_top_level_operator(k, len);
}

/* The operator document at doc for path: each operator adds its class to the path. */
static void
walk_operators(struct advice_filter *w, uint32_t lo, const char *path, uint32_t plen,
               const struct wire_reader *doc, uint32_t depth)
{
    struct wire_reader it;
    const char *opts = NULL;
    uint32_t opts_len = 0;
    bool options_read = false;

    if (!wire_reader_recurse(doc, &it))
        return;
    while (wire_reader_next(&it)) {
        const char *name = it.key;
        uint32_t len = it.key_len;
        enum advice_op op;
        uint32_t ops;

        if (!advice_filter_spend(w))
            return;
        if (KEY_IS(name, len, "$options"))
            continue;
        if (KEY_IS(name, len, "$elemMatch")) {
            if (!wire_reader_is_doc(&it))
                continue;
            if (depth + 1 > FILTER_MAX_NEST)
                mark_truncated(w, lo);
            else if (is_elem_value_form(&it))
                walk_operators(w, lo, path, plen, &it, depth + 1);
            else
                walk_filter(w, lo, &it, path, plen, depth + 1);
            continue;
        }
        if (KEY_IS(name, len, "$regex")) {
            if (!options_read) { /* once per document, however many $regex it repeats */
                find_options(doc, &opts, &opts_len);
                options_read = true;
            }
            op = regex_value_op(&it, opts, opts_len, &ops);
        } else {
            op = operator_op(name, len, &ops);
        }
        add_path(w, lo, path, plen, op, ops);
    }
}

static void
copy_conj(struct advice_filter_conj *dst, const struct advice_filter_conj *src)
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
walk_or(struct advice_filter *w, uint32_t lo, const struct wire_reader *arr, const char *prefix,
        uint32_t plen, uint32_t depth)
{
    uint32_t hi = w->n_conj, base = hi - lo, made = 0;
    struct wire_reader it;

    if (!wire_reader_is_array(arr) || !wire_reader_recurse(arr, &it))
        return;
    while (wire_reader_next(&it)) {
        uint32_t start = w->n_conj;

        if (!advice_filter_spend(w))
            break;
        if (!wire_reader_is_doc(&it))
            continue;
        if (w->n_conj + base > ADVICE_FILTER_MAX_CONJ) {
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
walk_top_operator(struct advice_filter *w, uint32_t lo, const char *key, uint32_t klen,
                  const struct wire_reader *it, const char *prefix, uint32_t plen, uint32_t depth)
{
    if (KEY_IS(key, klen, "$comment"))
        return;
    if (KEY_IS(key, klen, "$and")) {
        struct wire_reader m;

        if (!wire_reader_is_array(it) || !wire_reader_recurse(it, &m))
            return;
        while (wire_reader_next(&m)) {
            if (!advice_filter_spend(w))
                return;
            if (wire_reader_is_doc(&m))
                walk_filter(w, lo, &m, prefix, plen, depth + 1);
        }
        return;
    }
    if (KEY_IS(key, klen, "$or")) {
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
walk_field(struct advice_filter *w, uint32_t lo, const char *path, uint32_t len,
           const struct wire_reader *it, uint32_t depth)
{
    enum advice_op op;
    uint32_t ops;

    if (wire_reader_is_doc(it) && is_operator_doc(it)) {
        walk_operators(w, lo, path, len, it, depth);
        return;
    }
    if (it->type == 0x0B) { /* a BSON regular expression */
        op = regex_value_op(it, NULL, 0, &ops);
        add_path(w, lo, path, len, op, ops);
        return;
    }
    add_path(w, lo, path, len, ADVICE_OP_EQ, ADVICE_OPS_EQ);
}

/* The filter document at doc, into the range [lo, top), its paths under prefix. */
static void
walk_filter(struct advice_filter *w, uint32_t lo, const struct wire_reader *doc, const char *prefix,
            uint32_t plen, uint32_t depth)
{
    struct wire_reader it;

    if (depth > FILTER_MAX_NEST) {
        mark_truncated(w, lo);
        return;
    }
    if (!wire_reader_is_doc(doc) || !wire_reader_recurse(doc, &it))
        return;
    while (wire_reader_next(&it)) {
        const char *key = it.key, *path;
        uint32_t klen = it.key_len, len;

        if (!advice_filter_spend(w))
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

void
advice_filter_walk(struct advice_filter *f, const struct wire_reader *doc)
{
    walk_filter(f, 0, doc, "", 0, 0);
}

void
advice_filter_add(struct advice_filter *f, const char *path, uint32_t len, enum advice_op op,
                  uint32_t ops)
{
    add_path(f, 0, path, len, op, ops);
}

void
advice_filter_reset(struct advice_filter *f)
{
    f->n_conj = 1;
    f->conj[0].n = 0;
    f->conj[0].truncated = false;
    f->arena_used = 0;
    f->truncated = false;
}

void
advice_filter_init(struct advice_filter *f, uint32_t budget)
{
    f->budget = budget;
    advice_filter_reset(f);
}
