/*
 * wire/cmd.c: owns reading a command body that has already passed
 * wire_doc_check: its name, $db, the collection named by the first element,
 * the transaction fields and duplicate top-level keys, from the top-level
 * records the check made (wire_cmd_parse_top) or by walking the top level. It does not
 * validate BSON structure (wire/doc.c), decide routing or cacheability
 * (proxy/) or look inside nested documents.
 */
#include "config.h"

#include "wire/cmd.h"

#include "wire/frame.h"
#include "wire/reader.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/*
 * Top-level keys that are no name checked for duplicates, on the stack. A
 * command with more is reported as having a duplicate without looking (it
 * is then only not cacheable), so that a huge body costs no memory here.
 */
#define MAX_CHECKED_KEYS 256

/*
 * Up to this many keys without a name id are compared pair by pair
 * (lengths first, so most pairs cost one compare); more are sorted.
 * Drivers send about 5 to 12 top-level keys, most of them names
 * (wire/names.h); a body of more is rare, and a sort is n log n whatever
 * keys a hostile client chooses.
 */
#define PAIRWISE_KEYS 16

/* A top-level key as found: where it is and its length. */
struct key_ref {
    const char *key;
    uint32_t len;
};

static bool
same_key(const struct key_ref *a, const struct key_ref *b)
{
    return a->len == b->len && memcmp(a->key, b->key, a->len) == 0;
}

/* Orders keys by length, then bytes. */
static int
key_order(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
}

/*
 * Duplicate top-level keys, found as the keys are read. Two keys with a
 * name id are equal exactly when their ids are (a name matches its bytes
 * exactly), and never equal a key without one: names go in a set of ids;
 * the rest are kept (up to cap) and compared at the end, pair by pair when
 * few, sorted when more.
 */
struct dups {
    uint64_t seen[(WIRE_NAMES_COUNT + 63) / 64];
    struct key_ref *rest; /* the keys without a name id, cap of them at most */
    size_t n_rest, cap;
    uint64_t lens;    /* the lengths (mod 64) of the rest seen, a bit each */
    bool lens_met;    /* two of the rest have lengths equal mod 64: compare them */
    bool found; /* a name twice, or more other keys than cap (reported without looking) */
};

static inline void
dups_add(struct dups *d, const char *key, uint32_t len, enum wire_name id)
{
    if (id != WIRE_NAME_UNKNOWN) {
        uint64_t bit = 1ull << ((unsigned)id % 64);

        d->found |= (d->seen[(unsigned)id / 64] & bit) != 0;
        d->seen[(unsigned)id / 64] |= bit;
    } else if (d->n_rest < d->cap) {
        uint64_t bit = 1ull << (len % 64);

        d->lens_met |= (d->lens & bit) != 0;
        d->lens |= bit;
        d->rest[d->n_rest].key = key;
        d->rest[d->n_rest].len = len;
        d->n_rest++;
    } else {
        d->found = true;
    }
}

/* True when two of the keys seen are equal. Reorders the kept keys. */
static bool
dups_found(struct dups *d)
{
    struct key_ref *keys = d->rest;
    size_t m = d->n_rest;

    if (d->found)
        return true;
    if (!d->lens_met)
        return false; /* no two of the rest have the same length: none are equal */
    if (m <= PAIRWISE_KEYS) {
        for (size_t i = 1; i < m; i++) {
            for (size_t j = 0; j < i; j++) {
                if (same_key(&keys[i], &keys[j]))
                    return true;
            }
        }
        return false;
    }
    qsort(keys, m, sizeof *keys, key_order);
    for (size_t i = 1; i < m; i++) {
        if (same_key(&keys[i - 1], &keys[i]))
            return true;
    }
    return false;
}

static bool
invalid(bson_error_t *error, size_t off)
{
    bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                   "command body is invalid BSON at offset %zu", off);
    return false;
}

/*
 * Records the top-level element at offset off of cmd->body (its key
 * key_len bytes, its value in bounds: checked by the caller's walk) as the
 * next one: the command's name and collection for the first, $db and the
 * transaction fields by their name ids, the element records; its key in
 * dups. False (error set) when $db is not a string or holds a NUL.
 */
static inline __attribute__((always_inline)) bool
note_elem(struct wire_cmd *cmd, uint32_t off, uint32_t key_len, struct dups *dups,
          bson_error_t *error)
{
    const uint8_t *p = cmd->body + off;
    const char *key = (const char *)p + 1;
    const uint8_t *value = p + 2 + key_len;
    enum wire_name id = wire_names_lookup_in(key, key_len, cmd->body_len - off - 1);

    dups_add(dups, key, key_len, id);
    if (cmd->n_elems == 0) {
        cmd->name = key;
        cmd->name_id = id;
        if (p[0] == BSON_TYPE_UTF8) {
            cmd->coll = (const char *)value + 4;
            cmd->coll_len = (uint32_t)wire_frame_read_i32(value) - 1;
        }
    }
    switch (id) {
    case WIRE_NAME_DOLLAR_DB:
        if (p[0] != BSON_TYPE_UTF8) {
            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_TYPE_MISMATCH,
                           "$db is not a string");
            return false;
        }
        cmd->db = (const char *)value + 4;
        cmd->db_len = (uint32_t)wire_frame_read_i32(value) - 1;
        /* mongod refuses it too; readers of cmd->db take it as a C string. */
        if (memchr(cmd->db, '\0', cmd->db_len) != NULL) {
            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_NAMESPACE,
                           "$db holds a NUL");
            return false;
        }
        break;
    case WIRE_NAME_TXN_NUMBER:
        cmd->has_txn_number = true;
        break;
    case WIRE_NAME_AUTOCOMMIT:
        cmd->has_autocommit = true;
        break;
    default:
        break;
    }
    if (cmd->n_elems < WIRE_CMD_MAX_ELEMS) {
        cmd->elem_off[cmd->n_elems] = off;
        cmd->elem_key_len[cmd->n_elems] = key_len;
        cmd->elem_id[cmd->n_elems] = (uint16_t)id;
        cmd->n_elems++;
    } else
        cmd->n_elems = WIRE_CMD_MAX_ELEMS + 1;
    return true;
}

/* Starts cmd on body: false (error set) unless the document fills the body exactly. */
static bool
start(const uint8_t *body, uint32_t len, struct wire_cmd *cmd, bson_error_t *error)
{
    memset(cmd, 0, offsetof(struct wire_cmd, elem_off)); /* the records are set as found */
    cmd->body = body;
    cmd->body_len = len;
    if (len < 5 || (uint32_t)wire_frame_read_i32(body) != len || body[len - 1] != 0) {
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                       "command body is invalid BSON");
        return false;
    }
    return true;
}

/* Ends the parse: the records, duplicates. */
static void
finish(struct wire_cmd *cmd, struct dups *dups)
{
    cmd->elems_all = cmd->n_elems <= WIRE_CMD_MAX_ELEMS;
    if (!cmd->elems_all)
        cmd->n_elems = WIRE_CMD_MAX_ELEMS;
    cmd->has_duplicate_top_level_key = dups_found(dups);
}

static bool
empty(bson_error_t *error)
{
    bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_COMMAND_NOT_FOUND, "command body is empty");
    return false;
}

bool
wire_cmd_parse(const uint8_t *body, uint32_t len, struct wire_cmd *cmd, bson_error_t *error)
{
    struct key_ref keys[MAX_CHECKED_KEYS];
    struct dups dups = {{0}, keys, 0, MAX_CHECKED_KEYS, 0, false, false};
    const uint8_t *at;
    struct wire_reader r;

    /* The document fills the body exactly; each element is read in bounds. */
    if (!start(body, len, cmd, error))
        return false;
    if (!wire_reader_init(&r, body, len))
        return invalid(error, 0);
    at = r.pos;
    if (!wire_reader_next(&r))
        return r.malformed ? invalid(error, (size_t)(at - body)) : empty(error);
    do {
        if (!note_elem(cmd, (uint32_t)((const uint8_t *)r.key - 1 - body), r.key_len, &dups,
                       error))
            return false;
        at = r.pos;
    } while (wire_reader_next(&r));
    if (r.malformed)
        return invalid(error, (size_t)(at - body));
    finish(cmd, &dups);
    return true;
}

bool
wire_cmd_parse_top(const uint8_t *body, uint32_t len, const struct wire_doc_top *top,
                   struct wire_cmd *cmd, bson_error_t *error)
{
    struct key_ref keys[WIRE_DOC_TOP_MAX];
    struct dups dups = {{0}, keys, 0, WIRE_DOC_TOP_MAX, 0, false, false};

    if (top == NULL || !top->all)
        return wire_cmd_parse(body, len, cmd, error);
    if (!start(body, len, cmd, error))
        return false;
    if (top->n == 0)
        return empty(error);
    for (uint32_t i = 0; i < top->n; i++) {
        /* Offsets of another body (a caller's mistake) would read out of bounds. */
        BSON_ASSERT(top->off[i] + 2 + top->key_len[i] < len);
        if (!note_elem(cmd, top->off[i], top->key_len[i], &dups, error))
            return false;
    }
    finish(cmd, &dups);
    return true;
}

/* The element at it, read in place. */
static void
elem_from_iter(const struct wire_cmd_walk *w, const bson_iter_t *it, struct wire_cmd_elem *e)
{
    e->start = w->doc + it->off;
    e->len = it->next_off - it->off;
    e->type = (uint8_t)bson_iter_type(it);
    e->key = bson_iter_key(it);
    e->key_len = bson_iter_key_len(it);
    e->id = wire_names_lookup(e->key, e->key_len);
}

bool
wire_cmd_walk_next_walking(struct wire_cmd_walk *w, struct wire_cmd_elem *e)
{
    if (!w->started) {
        w->started = true;
        if (!bson_iter_init_from_data(&w->it, w->doc, w->doc_len)) {
            w->doc_len = 0; /* nothing to walk */
            return false;
        }
    } else if (w->doc_len == 0) {
        return false;
    }
    if (!bson_iter_next(&w->it))
        return false;
    elem_from_iter(w, &w->it, e);
    e->value = e->start + 2 + e->key_len;
    e->doc = w->doc;
    e->doc_len = w->doc_len;
    return true;
}

bool
wire_cmd_elem_iter(const struct wire_cmd_elem *e, bson_iter_t *it)
{
    return bson_iter_init_from_data_at_offset(it, e->doc, e->doc_len, (uint32_t)(e->start - e->doc),
                                              e->key_len);
}

bool
wire_cmd_is_hello(const char *name)
{
    if (name == NULL)
        return false;
    switch (wire_names_lookup(name, strlen(name))) {
    case WIRE_NAME_HELLO:
    case WIRE_NAME_IS_MASTER:
    case WIRE_NAME_ISMASTER:
        return true;
    default:
        return false;
    }
}
