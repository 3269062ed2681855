/*
 * wire/cmd.c: owns reading a command body that has already passed
 * wire_doc_check: its name, $db, the collection named by the first element,
 * the session/transaction fields and duplicate top-level keys. It does not
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
 * Top-level keys checked for duplicates, on the stack. A command with more
 * is reported as having a duplicate without looking (it is then only not
 * cacheable), so that a huge body costs no memory here.
 */
#define MAX_CHECKED_KEYS 256

/*
 * Up to this many keys are compared pair by pair (lengths first, so most
 * pairs cost one compare); more go through a hash table. Drivers send about
 * 5 to 12 top-level keys.
 */
#define PAIRWISE_KEYS 16

/* Slots of the hash table: a power of two at least twice MAX_CHECKED_KEYS. */
#define KEY_SLOTS 512

/*
 * Probes the hash table may take per key on average before the check sorts
 * instead: keys chosen to collide (the hash is not secret) would otherwise
 * cost n * n / 2 compares.
 */
#define PROBES_PER_KEY 4

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

/* FNV-1a over the key's bytes: only spreads keys over slots, equality is checked. */
static uint32_t
key_hash(const struct key_ref *k)
{
    uint32_t h = 2166136261u;

    for (uint32_t i = 0; i < k->len; i++)
        h = (h ^ (uint8_t)k->key[i]) * 16777619u;
    return h;
}

/* Orders keys by length, then bytes (the fallback's sort). */
static int
key_order(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
}

/* True when two of the n keys are equal; sorts keys. */
static bool
has_duplicate_sorted(struct key_ref *keys, size_t n)
{
    qsort(keys, n, sizeof *keys, key_order);
    for (size_t i = 1; i < n; i++) {
        if (same_key(&keys[i - 1], &keys[i]))
            return true;
    }
    return false;
}

/*
 * True when two of the n keys are equal (same length, same bytes): pair by
 * pair for a few, through a hash table on the stack for more, sorted when
 * the table's probes pass their budget. May reorder keys.
 */
static bool
has_duplicate(struct key_ref *keys, size_t n)
{
    uint16_t slot[KEY_SLOTS]; /* 0 empty, else index + 1 */
    size_t probes = 0;

    if (n <= PAIRWISE_KEYS) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = 0; j < i; j++) {
                if (same_key(&keys[i], &keys[j]))
                    return true;
            }
        }
        return false;
    }
    memset(slot, 0, sizeof slot);
    for (size_t i = 0; i < n; i++) {
        uint32_t h = key_hash(&keys[i]) & (KEY_SLOTS - 1);

        for (; slot[h] != 0; h = (h + 1) & (KEY_SLOTS - 1)) {
            if (same_key(&keys[i], &keys[slot[h] - 1u]))
                return true;
            if (++probes > PROBES_PER_KEY * n)
                return has_duplicate_sorted(keys, n);
        }
        slot[h] = (uint16_t)(i + 1);
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
 * Records what the top-level key at r means for cmd; false when $db is not a
 * string or holds a NUL.
 */
static bool
note_key(const struct wire_reader *r, enum wire_name id, struct wire_cmd *cmd, bson_error_t *error)
{
    switch (id) {
    case WIRE_NAME_DOLLAR_DB:
        if (!wire_reader_utf8(r, &cmd->db, &cmd->db_len)) {
            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_TYPE_MISMATCH,
                           "$db is not a string");
            return false;
        }
        /* mongod refuses it too; readers of cmd->db take it as a C string. */
        if (memchr(cmd->db, '\0', cmd->db_len) != NULL) {
            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_NAMESPACE,
                           "$db holds a NUL");
            return false;
        }
        break;
    case WIRE_NAME_LSID:
        cmd->has_lsid = true;
        break;
    case WIRE_NAME_TXN_NUMBER:
        cmd->has_txn_number = true;
        break;
    case WIRE_NAME_AUTOCOMMIT:
        cmd->has_autocommit = true;
        break;
    case WIRE_NAME_START_TRANSACTION:
        cmd->has_start_transaction = true;
        break;
    default:
        break;
    }
    return true;
}

bool
wire_cmd_parse(const uint8_t *body, uint32_t len, struct wire_cmd *cmd, bson_error_t *error)
{
    struct key_ref keys[MAX_CHECKED_KEYS];
    size_t n = 0;
    bool too_many = false;
    const uint8_t *at;
    struct wire_reader r;

    memset(cmd, 0, offsetof(struct wire_cmd, elem_off)); /* the records are set as found */
    cmd->body = body;
    cmd->body_len = len;
    /* The document fills the body exactly; each element is read in bounds. */
    if (len < 5 || (uint32_t)wire_frame_read_i32(body) != len || !wire_reader_init(&r, body, len)) {
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                       "command body is invalid BSON");
        return false;
    }
    at = r.pos;
    if (!wire_reader_next(&r)) {
        if (r.malformed)
            return invalid(error, (size_t)(at - body));
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_COMMAND_NOT_FOUND,
                       "command body is empty");
        return false;
    }
    cmd->name = r.key;
    cmd->name_id = wire_names_lookup(r.key, r.key_len);
    (void)wire_reader_utf8(&r, &cmd->coll, &cmd->coll_len); /* when it is a string */

    do {
        const char *key = r.key;
        uint32_t key_len = r.key_len;
        enum wire_name id = n == 0 ? cmd->name_id : wire_names_lookup(key, key_len);

        if (!note_key(&r, id, cmd, error))
            return false;
        if (cmd->n_elems < WIRE_CMD_MAX_ELEMS) {
            cmd->elem_off[cmd->n_elems] = (uint32_t)((const uint8_t *)key - 1 - body);
            cmd->elem_key_len[cmd->n_elems] = key_len;
            cmd->elem_id[cmd->n_elems] = (uint16_t)id;
            cmd->n_elems++;
        } else
            cmd->n_elems = WIRE_CMD_MAX_ELEMS + 1;
        if (n < MAX_CHECKED_KEYS) {
            keys[n].key = key;
            keys[n].len = key_len;
            n++;
        } else {
            too_many = true;
        }
        at = r.pos;
    } while (wire_reader_next(&r));
    if (r.malformed)
        return invalid(error, (size_t)(at - body));

    cmd->elems_all = cmd->n_elems <= WIRE_CMD_MAX_ELEMS;
    if (!cmd->elems_all)
        cmd->n_elems = WIRE_CMD_MAX_ELEMS;
    cmd->has_duplicate_top_level_key = too_many || has_duplicate(keys, n);
    return true;
}

void
wire_cmd_walk_init(struct wire_cmd_walk *w, const struct wire_cmd *cmd, const uint8_t *body,
                   uint32_t len)
{
    /* w->it is set up only if a walk needs it. */
    w->cmd = cmd && cmd->elems_all && cmd->body == body && cmd->body_len == len ? cmd : NULL;
    w->i = 0;
    w->doc = body;
    w->doc_len = len;
    w->started = false;
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
