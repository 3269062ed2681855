/*
 * advice/shape.c: owns deriving the shapes of a command (advice/shape.h):
 * which command and namespace, which statements (update/delete, in the
 * body or in a document sequence), which part of an aggregate pipeline
 * (leading $match and $sort, each $lookup), the sort, collation and hint;
 * the shapes' hash, copy, cleanup and display. The filter itself is read
 * by advice/filter.c. It runs on the event loop for every miss and
 * pass-through, over a body that passed wire_doc_check but is otherwise
 * hostile, so:
 *
 *   - it reads the body in place (wire/reader.h), never re-encodes it, and
 *     allocates only the shapes it returns: one block per shape for all its
 *     strings. The scratch area (struct advice_filter) is on the stack;
 *   - equal shapes of one command are hashed and compared before anything
 *     is allocated, so a bulk write of a thousand like statements costs one
 *     shape;
 *   - it is bounded whatever the body: SHAPE_BUDGET elements visited per
 *     command (filter keys, operators, array members, sort keys, stages,
 *     statements), and the bounds of advice/filter.h. Past a bound the
 *     shape is marked truncated, or the extra shapes are dropped.
 *
 * It does not decide what scans (advice/plan.c), which index serves a shape
 * (advice/recommend.c), nor count shapes (advice/table.c).
 */
#include "config.h"

#include "advice/shape.h"

#include "advice/filter.h"
#include "wire/reader.h"

#include "wire/cmd.h"

#include <string.h>
/* Shapes hash a few short strings per command, on the loop: xxHash's
 * header-only build inlines them (the same XXH3, without a call into the
 * library for each). */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* Elements (filter keys, operators, array members, sort keys, stages) visited per command. */
#define SHAPE_BUDGET 4096
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

/* Whether key (len bytes) is the string literal lit. */
#define KEY_IS(key, len, lit)                                                                      \
    ((len) == sizeof(lit) - 1 && memcmp((key), (lit), sizeof(lit) - 1) == 0)

/* ---- the parts of a query besides its filter ------------------------------------------- */

/* A sort document: keys in order, directions by sign; anything else is unusable. */
static void
read_sort(struct advice_filter *f, struct query *q, const struct wire_reader *doc)
{
    struct wire_reader it;

    if (!wire_reader_is_doc(doc) || !wire_reader_recurse(doc, &it))
        return;
    while (wire_reader_next(&it)) {
        double v;
        int dir = 0;

        if (!advice_filter_spend(f)) {
            q->sort_unusable = true;
            return;
        }
        if (wire_reader_number(&it, &v))
            dir = v > 0 ? 1 : v < 0 ? -1 : 0;
        if (dir == 0 || !advice_filter_indexable_path(it.key, it.key_len))
            q->sort_unusable = true;
        if (it.key_len > ADVICE_SHAPE_MAX_PATH_LEN || q->n_sort == ADVICE_SHAPE_MAX_SORT) {
            /* a sort key left out: what is kept no longer describes the order */
            q->truncated = true;
            q->sort_unusable = true;
            continue;
        }
        q->sort[q->n_sort].p = it.key;
        q->sort[q->n_sort].len = it.key_len;
        q->sort[q->n_sort].dir = dir;
        q->n_sort++;
    }
}

/* A collation other than the simple (binary) one, which every index has. */
static bool
real_collation(const struct wire_reader *it)
{
    struct wire_reader sub, locale;
    const char *name;
    uint32_t len;

    if (!wire_reader_is_doc(it) || !wire_reader_recurse(it, &sub) || !wire_reader_next(&sub))
        return false; /* not a document, or {} */
    if (!wire_reader_find(it, "locale", 6, &locale) || !wire_reader_utf8(&locale, &name, &len))
        return true;
    return !KEY_IS(name, len, "simple");
}

/* A hint: a non-empty index name or key pattern. */
static bool
real_hint(const struct wire_reader *it)
{
    struct wire_reader sub;
    const char *name;
    uint32_t len = 0;

    if (wire_reader_utf8(it, &name, &len))
        return len > 0;
    return wire_reader_is_doc(it) && wire_reader_recurse(it, &sub) && wire_reader_next(&sub);
}

/* ---- hashing --------------------------------------------------------------------------- */

/*
 * The canonical form, hashed in pieces: the namespace seeds the final hash;
 * each filter path hashes alone (its class and operators in the seed) and
 * the path hashes are summed, so their order does not matter; the sort keys
 * hash in order; source, counts and flags go in the final block.
 */
/* The namespace's part of the hash: the seed of the rest. */
static uint64_t
ns_seed(const char *db, size_t db_len, const char *coll, size_t coll_len)
{
    uint64_t seed = XXH3_64bits_withSeed(db, db_len, 0x6d63616476696365ull); /* "mcadvice" */

    return XXH3_64bits_withSeed(coll, coll_len, seed);
}

static uint64_t
hash_parts(uint64_t seed, enum advice_source source, const struct advice_filter_path *paths,
           uint32_t n_paths, const struct skey *sort, uint32_t n_sort, uint32_t flags)
{
    uint64_t words[2 + ADVICE_SHAPE_MAX_SORT];
    uint64_t sum = 0;

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
    struct advice_filter_path paths[ADVICE_SHAPE_MAX_PATHS];
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
        ns_seed(shape->db ? shape->db : "", shape->db ? strlen(shape->db) : 0,
                shape->coll ? shape->coll : "", shape->coll ? strlen(shape->coll) : 0),
        shape->source, paths, n_paths, sort, n_sort,
        flag_bits(shape->sort_unusable, shape->collation, shape->hint, shape->truncated));
}

/* ---- from the walk to owned shapes ------------------------------------------------------ */

/* One string of a shape: where it comes from (len bytes, no NUL needed) and where its copy goes. */
struct pack_item {
    const char *src;
    size_t len;
    char **dst;
};

/*
 * Copies the strings into one block owned by shape (shape->strings), each
 * NUL-terminated, and points each dst at its copy: one allocation per
 * shape, however many paths it has.
 */
static void
pack(struct advice_shape *shape, const struct pack_item *items, uint32_t n)
{
    size_t total = 0;
    char *p;

    for (uint32_t i = 0; i < n; i++)
        total += items[i].len + 1;
    p = bson_malloc(total);
    shape->strings = p;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(p, items[i].src, items[i].len);
        p[items[i].len] = '\0';
        *items[i].dst = p;
        p += items[i].len + 1;
    }
}

/*
 * Turns each conjunction of the walk into a shape of q in out, unless it is
 * empty (no path, no sort) or equal to one already there. False when out
 * is full.
 */
static bool
emit(const struct advice_filter *f, const struct query *q, struct advice_shapes *out)
{
    uint64_t seed = ns_seed(q->db, q->db_len, q->coll, q->coll_len);

    for (uint32_t i = 0; i < f->n_conj; i++) {
        const struct advice_filter_conj *c = &f->conj[i];
        bool truncated = c->truncated || f->truncated || q->truncated;
        struct pack_item items[2 + ADVICE_SHAPE_MAX_PATHS + ADVICE_SHAPE_MAX_SORT];
        uint32_t k, n_items;
        struct advice_shape *s;
        uint64_t hash;

        if (c->n == 0 && q->n_sort == 0)
            continue;
        hash = hash_parts(seed, q->source, c->paths, c->n, q->sort, q->n_sort,
                          flag_bits(q->sort_unusable, q->collation, q->hint, truncated));
        for (k = 0; k < out->n && out->shape[k].hash != hash; k++)
            ;
        if (k < out->n)
            continue;
        if (out->n == ADVICE_MAX_SHAPES_PER_COMMAND)
            return false;
        s = &out->shape[out->n];
        out->query[out->n] = q->doc;
        out->query_len[out->n] = q->doc_len;
        out->statement[out->n] = q->statement;
        if (out->known != NULL && out->known(out->known_arg, hash)) {
            /* kept already: the hash is all the caller needs */
            s->db = s->coll = NULL;
            s->source = q->source;
            s->n_paths = s->n_sort = 0;
            s->sort_unusable = s->collation = s->hint = s->truncated = false;
            s->strings = NULL;
            s->hash = hash;
            out->n++;
            continue;
        }
        n_items = 0;
        items[n_items++] = (struct pack_item){q->db, q->db_len, &s->db};
        items[n_items++] = (struct pack_item){q->coll, q->coll_len, &s->coll};
        s->source = q->source;
        for (k = 0; k < c->n; k++) {
            items[n_items++] =
                (struct pack_item){c->paths[k].p, c->paths[k].len, &s->paths[k].path};
            s->paths[k].op = (enum advice_op)c->paths[k].op;
            s->paths[k].ops = c->paths[k].ops;
        }
        s->n_paths = c->n;
        for (k = 0; k < q->n_sort; k++) {
            items[n_items++] = (struct pack_item){q->sort[k].p, q->sort[k].len, &s->sort[k].path};
            s->sort[k].dir = q->sort[k].dir;
        }
        pack(s, items, n_items);
        s->n_sort = q->n_sort;
        s->sort_unusable = q->sort_unusable;
        s->collation = q->collation;
        s->hint = q->hint;
        s->truncated = truncated;
        s->hash = hash;
        out->n++;
    }
    return true;
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
 * update/delete statement (doc, len bytes).
 */
static bool
one_query(struct advice_filter *f, struct query *q, const uint8_t *doc, uint32_t doc_len,
          const char *filter_key, struct advice_shapes *out)
{
    struct wire_reader it, filter;
    bool have_filter = false;
    uint32_t filter_len = (uint32_t)strlen(filter_key);

    advice_filter_reset(f);
    if (!wire_reader_init(&it, doc, doc_len))
        return true;
    while (wire_reader_next(&it)) {
        if (!advice_filter_spend(f))
            break;
        if (it.key_len == filter_len && memcmp(it.key, filter_key, filter_len) == 0) {
            filter = it;
            have_filter = true;
        } else if (KEY_IS(it.key, it.key_len, "sort")) {
            read_sort(f, q, &it);
        } else if (KEY_IS(it.key, it.key_len, "hint")) {
            q->hint = real_hint(&it);
        } else if (KEY_IS(it.key, it.key_len, "collation")) {
            q->collation = real_collation(&it);
        }
    }
    if (have_filter)
        advice_filter_walk(f, &filter);
    return emit(f, q, out);
}

/*
 * Whether the element from p to end (exclusive) has the key lit (len
 * bytes, then its NUL); if so, r is set on it as wire_reader_next would.
 */
static bool
element_is(const uint8_t *p, const uint8_t *end, const char *lit, uint32_t len,
           struct wire_reader *r)
{
    if (p >= end || (size_t)(end - p) < (size_t)len + 2 || memcmp(p + 1, lit, len + 1) != 0)
        return false;
    r->type = p[0];
    r->key = (const char *)(p + 1);
    r->key_len = len;
    r->value = p + len + 2;
    r->value_len = (uint32_t)(end - r->value);
    r->pos = r->end = end; /* as if it were its document's last element */
    r->malformed = false;
    return true;
}

/*
 * one_query over a command body whose top-level elements wire_cmd_parse
 * located (cmd->elem_off): the same reading, without walking the body a
 * second time. Only the keys it wants are compared, by their first byte
 * and length first; an element's end is the next one's start (the last ends at the
 * body's final NUL), and the readers given to the filter and sort code
 * check their lengths again as they descend.
 */
static bool
one_query_located(struct advice_filter *f, struct query *q, const struct wire_cmd *cmd,
                  const uint8_t *doc, uint32_t doc_len, const char *filter_key,
                  uint32_t filter_len, struct advice_shapes *out)
{
    struct wire_reader it, filter;
    bool have_filter = false;
    const uint8_t *last = doc + doc_len - 1;
    uint32_t n = cmd->n_elems, key_len;

    advice_filter_reset(f);
    if (n > f->budget) {
        n = f->budget;
        f->truncated = true;
    }
    f->budget -= n;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = doc + cmd->elem_off[i];
        const uint8_t *end;

        if (p >= last)
            break; /* not this body's offsets */
        switch (p[1]) {
        case 'f':
        case 'q':
        case 's':
        case 'h':
        case 'c':
            break;
        default:
            continue;
        }
        end = i + 1 < n ? doc + cmd->elem_off[i + 1] : last;
        if (end > last)
            break;
        key_len = cmd->elem_key_len[i];
        if (key_len == filter_len && element_is(p, end, filter_key, filter_len, &it)) {
            filter = it;
            have_filter = true;
        } else if (key_len == 4 && element_is(p, end, "sort", 4, &it)) {
            read_sort(f, q, &it);
        } else if (key_len == 4 && element_is(p, end, "hint", 4, &it)) {
            q->hint = real_hint(&it);
        } else if (key_len == 9 && element_is(p, end, "collation", 9, &it)) {
            q->collation = real_collation(&it);
        }
    }
    if (have_filter)
        advice_filter_walk(f, &filter);
    return emit(f, q, out);
}

/* The query of a find, count, distinct or findAndModify body: by cmd's offsets when it has all. */
static bool
body_query(struct advice_filter *f, struct query *q, const struct wire_cmd *cmd,
           const struct query *ns, const char *filter_key, uint32_t filter_len,
           struct advice_shapes *out)
{
    if (cmd->elems_all && cmd->n_elems > 0)
        return one_query_located(f, q, cmd, ns->doc, ns->doc_len, filter_key, filter_len, out);
    return one_query(f, q, ns->doc, ns->doc_len, filter_key, out);
}

/* One update or delete statement (a document at data, len bytes), numbered index. */
static bool
statement(struct advice_filter *f, const struct query *ns, enum advice_source source,
          const uint8_t *data, uint32_t len, uint32_t index, struct advice_shapes *out)
{
    struct query q;

    query_init(&q, ns, source);
    q.doc = data;
    q.doc_len = len;
    q.statement = index;
    return one_query(f, &q, data, len, "q", out);
}

/* The statements of an update or delete: in the body's array, or in the document sequence. */
static void
statements(struct advice_filter *f, const struct query *ns, const struct wire_reader *top,
           const char *array, enum advice_source source, const struct advice_sequence *seqs,
           uint32_t n_seqs, struct advice_shapes *out)
{
    struct wire_reader it, m;
    uint32_t index = 0;

    it = *top;
    while (wire_reader_next(&it)) {
        if (strcmp(it.key, array) != 0 || !wire_reader_is_array(&it) ||
            !wire_reader_recurse(&it, &m))
            continue;
        while (f->budget > 0 && wire_reader_next(&m)) {
            if (wire_reader_is_doc(&m) &&
                !statement(f, ns, source, m.value, m.value_len, index, out))
                return;
            index++;
        }
        return;
    }
    for (uint32_t s = 0; s < n_seqs; s++) {
        uint32_t off = 0;

        if (seqs[s].id == NULL || strcmp(seqs[s].id, array) != 0)
            continue;
        /* Documents back to back; their lengths were checked, but are not trusted here. */
        while (seqs[s].len - off >= 5 && f->budget > 0) {
            const uint8_t *data = seqs[s].docs + off;
            int32_t len = (int32_t)((uint32_t)data[0] | (uint32_t)data[1] << 8 |
                                    (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24);

            if (len < 5 || (uint32_t)len > seqs[s].len - off)
                break;
            if (!statement(f, ns, source, data, (uint32_t)len, index, out))
                return;
            off += (uint32_t)len;
            index++;
        }
        return;
    }
}

/* A $lookup stage: an equality on foreignField in the foreign collection. */
static bool
lookup(struct advice_filter *f, const struct query *ns, const struct wire_reader *stage,
       uint32_t index, struct advice_shapes *out)
{
    const char *from = NULL, *field = NULL;
    uint32_t from_len = 0, field_len = 0;
    struct wire_reader it;
    struct query q;

    if (!wire_reader_recurse(stage, &it))
        return true;
    while (wire_reader_next(&it)) {
        if (!advice_filter_spend(f))
            return true;
        if (KEY_IS(it.key, it.key_len, "from"))
            wire_reader_utf8(&it, &from, &from_len);
        else if (KEY_IS(it.key, it.key_len, "foreignField"))
            wire_reader_utf8(&it, &field, &field_len);
    }
    if (from == NULL || field == NULL || from_len == 0 || field_len == 0 ||
        memchr(from, '\0', from_len) != NULL || memchr(field, '\0', field_len) != NULL)
        return true;
    query_init(&q, ns, ADVICE_SRC_LOOKUP);
    q.coll = from;
    q.coll_len = from_len;
    q.statement = index;
    advice_filter_reset(f);
    advice_filter_add(f, field, field_len, ADVICE_OP_EQ, ADVICE_OPS_EQ);
    return emit(f, &q, out);
}

/* The first element of the stage document at stages' current element (a document). */
static bool
stage_of(const struct wire_reader *stages, struct wire_reader *stage)
{
    return wire_reader_is_doc(stages) && wire_reader_recurse(stages, stage) &&
           wire_reader_next(stage);
}

/*
 * An aggregate: its leading $match stages (merged) and first $sort, then
 * each $lookup of the pipeline (not those nested in $facet, $unionWith or
 * a $lookup's own pipeline).
 */
static void
aggregate(struct advice_filter *f, const struct query *ns, const struct wire_reader *top,
          struct advice_shapes *out)
{
    struct wire_reader it, pipeline, stages, stage;
    struct query q;
    bool leading = true, sorted = false, found = false;
    uint32_t index = 0;

    query_init(&q, ns, ADVICE_SRC_AGGREGATE);
    advice_filter_reset(f);
    it = *top;
    while (wire_reader_next(&it)) {
        if (!advice_filter_spend(f))
            break;
        if (KEY_IS(it.key, it.key_len, "pipeline") && !found) {
            pipeline = it;
            found = wire_reader_is_array(&it);
        } else if (KEY_IS(it.key, it.key_len, "hint")) {
            q.hint = real_hint(&it);
        } else if (KEY_IS(it.key, it.key_len, "collation")) {
            q.collation = real_collation(&it);
        }
    }
    if (!found || !wire_reader_recurse(&pipeline, &stages))
        return;
    while (leading && wire_reader_next(&stages)) {
        if (!advice_filter_spend(f) || !stage_of(&stages, &stage))
            break;
        if (KEY_IS(stage.key, stage.key_len, "$match")) {
            advice_filter_walk(f, &stage);
        } else if (!sorted && KEY_IS(stage.key, stage.key_len, "$sort")) {
            read_sort(f, &q, &stage);
            sorted = true;
        } else {
            leading = false;
        }
    }
    if (!emit(f, &q, out) || !wire_reader_recurse(&pipeline, &stages))
        return;
    while (wire_reader_next(&stages) && advice_filter_spend(f)) {
        if (stage_of(&stages, &stage) && KEY_IS(stage.key, stage.key_len, "$lookup") &&
            wire_reader_is_doc(&stage) && !lookup(f, ns, &stage, index, out))
            return;
        index++;
    }
}

/*
 * Whether s[0..len) is UTF-8 without NULs: ASCII (nearly every namespace)
 * by a loop, anything else by libbson, whose per-byte cost was a fifth of
 * a pass-through's shape.
 */
static bool
valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == 0 || c >= 0x80)
            return c != 0 && bson_utf8_validate(s + i, len - i, false);
    }
    return true;
}

uint32_t
advice_shape_extract(const bson_t *body, const struct wire_cmd *cmd,
                     const struct advice_sequence *seqs, uint32_t n_seqs, struct advice_shapes *out)
{
    return advice_shape_extract_known(body, cmd, seqs, n_seqs, NULL, NULL, out);
}

uint32_t
advice_shape_extract_known(const bson_t *body, const struct wire_cmd *cmd,
                           const struct advice_sequence *seqs, uint32_t n_seqs,
                           advice_shape_known_fn known, void *arg, struct advice_shapes *out)
{
    struct advice_filter f;
    struct wire_reader top;
    struct query ns, q;

    out->n = 0;
    out->known = known;
    out->known_arg = arg;
    /* A namespace no server would take (not UTF-8, a NUL, longer than 255 bytes)
     * gets no shape: shapes are shown as JSON, which needs valid UTF-8
     * (valid_utf8 refuses a NUL too). */
    if (cmd == NULL || cmd->name == NULL || cmd->coll == NULL || cmd->coll_len == 0 ||
        cmd->db == NULL || cmd->db_len == 0 ||
        (size_t)cmd->db_len + cmd->coll_len >= 255 || !valid_utf8(cmd->db, cmd->db_len) ||
        !valid_utf8(cmd->coll, cmd->coll_len))
        return 0;
    ns.doc = bson_get_data(body);
    ns.doc_len = body->len;
    if (!wire_reader_init(&top, ns.doc, ns.doc_len))
        return 0;
    advice_filter_init(&f, SHAPE_BUDGET);
    ns.db = cmd->db;
    ns.db_len = cmd->db_len;
    ns.coll = cmd->coll;
    ns.coll_len = cmd->coll_len;
    switch (cmd->name_id) {
    case WIRE_NAME_FIND:
        query_init(&q, &ns, ADVICE_SRC_FIND);
        body_query(&f, &q, cmd, &ns, "filter", 6, out);
        break;
    case WIRE_NAME_COUNT:
        query_init(&q, &ns, ADVICE_SRC_COUNT);
        body_query(&f, &q, cmd, &ns, "query", 5, out);
        break;
    case WIRE_NAME_DISTINCT:
        query_init(&q, &ns, ADVICE_SRC_DISTINCT);
        body_query(&f, &q, cmd, &ns, "query", 5, out);
        break;
    case WIRE_NAME_FIND_AND_MODIFY:
    case WIRE_NAME_FINDANDMODIFY:
        query_init(&q, &ns, ADVICE_SRC_FIND_AND_MODIFY);
        body_query(&f, &q, cmd, &ns, "query", 5, out);
        break;
    case WIRE_NAME_AGGREGATE:
        aggregate(&f, &ns, &top, out);
        break;
    case WIRE_NAME_UPDATE:
        statements(&f, &ns, &top, "updates", ADVICE_SRC_UPDATE, seqs, n_seqs, out);
        break;
    case WIRE_NAME_DELETE:
        statements(&f, &ns, &top, "deletes", ADVICE_SRC_DELETE, seqs, n_seqs, out);
        break;
    default:
        break;
    }
    return out->n;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

void
advice_shape_cleanup(struct advice_shape *shape)
{
    if (shape == NULL)
        return;
    if (shape->strings != NULL) {
        bson_free(shape->strings);
    } else if (shape->db != NULL || shape->coll != NULL || shape->n_paths > 0 ||
               shape->n_sort > 0) { /* built by hand; not a hash alone (extract_known) */
        bson_free(shape->db);
        bson_free(shape->coll);
        for (uint32_t i = 0; i < shape->n_paths && i < ADVICE_SHAPE_MAX_PATHS; i++)
            bson_free(shape->paths[i].path);
        for (uint32_t i = 0; i < shape->n_sort && i < ADVICE_SHAPE_MAX_SORT; i++)
            bson_free(shape->sort[i].path);
    }
    shape->strings = NULL;
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
    struct pack_item items[2 + ADVICE_SHAPE_MAX_PATHS + ADVICE_SHAPE_MAX_SORT];
    uint32_t n_paths =
        src->n_paths < ADVICE_SHAPE_MAX_PATHS ? src->n_paths : ADVICE_SHAPE_MAX_PATHS;
    uint32_t n_sort = src->n_sort < ADVICE_SHAPE_MAX_SORT ? src->n_sort : ADVICE_SHAPE_MAX_SORT;
    uint32_t n = 0;

#define ITEM(s, d) (struct pack_item){(s) ? (s) : "", (s) ? strlen(s) : 0, (d)}
    items[n++] = ITEM(src->db, &dst->db);
    items[n++] = ITEM(src->coll, &dst->coll);
    dst->source = src->source;
    for (uint32_t i = 0; i < n_paths; i++) {
        items[n++] = ITEM(src->paths[i].path, &dst->paths[i].path);
        dst->paths[i].op = src->paths[i].op;
        dst->paths[i].ops = src->paths[i].ops;
    }
    dst->n_paths = n_paths;
    for (uint32_t i = 0; i < n_sort; i++) {
        items[n++] = ITEM(src->sort[i].path, &dst->sort[i].path);
        dst->sort[i].dir = src->sort[i].dir;
    }
#undef ITEM
    dst->n_sort = n_sort;
    dst->sort_unusable = src->sort_unusable;
    dst->collation = src->collation;
    dst->hint = src->hint;
    dst->truncated = src->truncated;
    dst->hash = src->hash;
    pack(dst, items, n);
}

/* ---- display ------------------------------------------------------------------------------ */

bool
advice_shape_is_identifier(const char *s)
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

void
advice_shape_append_escaped(bson_string_t *out, const char *s)
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
    if (advice_shape_is_identifier(path)) {
        bson_string_append(out, path);
        return;
    }
    bson_string_append_c(out, '"');
    advice_shape_append_escaped(out, path ? path : "");
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
    advice_shape_append_escaped(out, shape->db ? shape->db : "");
    bson_string_append_c(out, '.');
    advice_shape_append_escaped(out, shape->coll ? shape->coll : "");
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
