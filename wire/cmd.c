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
invalid(bson_error_t *error, const bson_iter_t *it)
{
    bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                   "command body is invalid BSON at offset %u", (unsigned)it->err_off);
    return false;
}

/*
 * Records what the top-level key at it means for cmd; false when $db is not a
 * string or holds a NUL.
 */
static bool
note_key(const bson_iter_t *it, enum wire_name id, struct wire_cmd *cmd, bson_error_t *error)
{
    switch (id) {
    case WIRE_NAME_DOLLAR_DB:
        if (!BSON_ITER_HOLDS_UTF8(it)) {
            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_TYPE_MISMATCH,
                           "$db is not a string");
            return false;
        }
        cmd->db = bson_iter_utf8(it, &cmd->db_len);
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
    bson_iter_t it;
    bson_t b;

    memset(cmd, 0, offsetof(struct wire_cmd, elem_off)); /* the offsets are set as found */
    if (!bson_init_static(&b, body, len) || !bson_iter_init(&it, &b)) {
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                       "command body is invalid BSON");
        return false;
    }
    if (!bson_iter_next(&it)) {
        if (it.err_off != 0)
            return invalid(error, &it);
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_COMMAND_NOT_FOUND,
                       "command body is empty");
        return false;
    }
    cmd->name = bson_iter_key(&it);
    cmd->name_id = wire_names_lookup(cmd->name, bson_iter_key_len(&it));
    if (BSON_ITER_HOLDS_UTF8(&it))
        cmd->coll = bson_iter_utf8(&it, &cmd->coll_len);

    do {
        const char *key = bson_iter_key(&it);
        uint32_t key_len = bson_iter_key_len(&it);

        if (!note_key(&it, n == 0 ? cmd->name_id : wire_names_lookup(key, key_len), cmd, error))
            return false;
        if (cmd->n_elems < WIRE_CMD_MAX_ELEMS)
            cmd->elem_off[cmd->n_elems++] = (uint32_t)((const uint8_t *)key - 1 - body);
        else
            cmd->n_elems = WIRE_CMD_MAX_ELEMS + 1;
        if (n < MAX_CHECKED_KEYS) {
            keys[n].key = key;
            keys[n].len = key_len;
            n++;
        } else {
            too_many = true;
        }
    } while (bson_iter_next(&it));
    if (it.err_off != 0)
        return invalid(error, &it);

    cmd->elems_all = cmd->n_elems <= WIRE_CMD_MAX_ELEMS;
    if (!cmd->elems_all)
        cmd->n_elems = WIRE_CMD_MAX_ELEMS;
    cmd->has_duplicate_top_level_key = too_many || has_duplicate(keys, n);
    return true;
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
