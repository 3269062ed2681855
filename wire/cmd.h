/*
 * wire/cmd.h: what the proxy needs to know about a command body: its name
 * (the first key), $db, the collection it names, and the session and
 * transaction fields. Reads the body in place with bson_iter; the body must
 * have passed wire_doc_check.
 */
#ifndef MONGOCACHE_WIRE_CMD_H
#define MONGOCACHE_WIRE_CMD_H

#include "wire/names.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#define WIRE_CMD_MAX_ELEMS 32

struct wire_cmd {
    const char *name;     /* first key, inside the body */
    enum wire_name name_id; /* name classified (wire/names.h), or WIRE_NAME_UNKNOWN */
    const char *db;       /* value of $db, inside the body, or NULL */
    uint32_t db_len;
    const char *coll;     /* string value of the first element when it is a string, or NULL */
    uint32_t coll_len;
    bool has_lsid;
    bool has_txn_number;
    bool has_autocommit;
    bool has_start_transaction;
    bool has_duplicate_top_level_key; /* also set, unchecked, past 256 top-level keys */
    /* Where the top-level elements are, so that a reader after the parse (the
     * index advice's shapes) finds a field without walking the body again:
     * the offset in the body of each element's type byte, in order; all of
     * them only when elems_all (at most WIRE_CMD_MAX_ELEMS). */
    bool elems_all;
    uint32_t n_elems;
    uint32_t elem_off[WIRE_CMD_MAX_ELEMS];
};

/*
 * Fills cmd from a checked body. Returns false (error set) when the body is
 * empty (WIRE_ERR_COMMAND_NOT_FOUND), $db is not a string
 * (WIRE_ERR_TYPE_MISMATCH) or holds a NUL (WIRE_ERR_INVALID_NAMESPACE), or
 * libbson cannot iterate it (WIRE_ERR_INVALID_BSON).
 */
bool wire_cmd_parse(const uint8_t *body, uint32_t len, struct wire_cmd *cmd,
                    bson_error_t *error) __attribute__((warn_unused_result));

/* True when the command name is hello, isMaster or ismaster. */
bool wire_cmd_is_hello(const char *name);

#endif
