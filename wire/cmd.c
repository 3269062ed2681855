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

#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/*
 * Top-level keys checked for duplicates, on the stack. A command with more
 * is reported as having a duplicate without looking (it is then only not
 * cacheable), so that a huge body costs no memory here.
 */
#define MAX_CHECKED_KEYS 256

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when two of the n keys are equal; sorts keys. */
static bool
has_duplicate(const char **keys, size_t n)
{
    qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0)
            return true;
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
note_key(const bson_iter_t *it, struct wire_cmd *cmd, bson_error_t *error)
{
    const char *key = bson_iter_key(it);

    if (strcmp(key, "$db") == 0) {
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
    } else if (strcmp(key, "lsid") == 0) {
        cmd->has_lsid = true;
    } else if (strcmp(key, "txnNumber") == 0) {
        cmd->has_txn_number = true;
    } else if (strcmp(key, "autocommit") == 0) {
        cmd->has_autocommit = true;
    } else if (strcmp(key, "startTransaction") == 0) {
        cmd->has_start_transaction = true;
    }
    return true;
}

bool
wire_cmd_parse(const uint8_t *body, uint32_t len, struct wire_cmd *cmd, bson_error_t *error)
{
    const char *keys[MAX_CHECKED_KEYS];
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
    if (BSON_ITER_HOLDS_UTF8(&it))
        cmd->coll = bson_iter_utf8(&it, &cmd->coll_len);

    do {
        if (!note_key(&it, cmd, error))
            return false;
        if (cmd->n_elems < WIRE_CMD_MAX_ELEMS)
            cmd->elem_off[cmd->n_elems++] = (uint32_t)((const uint8_t *)bson_iter_key(&it) - 1 - body);
        else
            cmd->n_elems = WIRE_CMD_MAX_ELEMS + 1;
        if (n < MAX_CHECKED_KEYS)
            keys[n++] = bson_iter_key(&it);
        else
            too_many = true;
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
    return name != NULL && (strcmp(name, "hello") == 0 || strcmp(name, "isMaster") == 0 ||
                            strcmp(name, "ismaster") == 0);
}
