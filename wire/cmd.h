/*
 * wire/cmd.h: what the proxy needs to know about a command body: its name
 * (the first key), $db, the collection it names, and the session and
 * transaction fields. Reads the body in place with bson_iter; the body must
 * have passed wire_doc_check.
 */
#ifndef MONGOCACHE_WIRE_CMD_H
#define MONGOCACHE_WIRE_CMD_H

#include "wire/doc.h"
#include "wire/names.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#define WIRE_CMD_MAX_ELEMS WIRE_DOC_TOP_MAX

struct wire_cmd {
    const char *name;     /* first key, inside the body */
    enum wire_name name_id; /* name classified (wire/names.h), or WIRE_NAME_UNKNOWN */
    const char *db;       /* value of $db, inside the body, or NULL */
    uint32_t db_len;
    const char *coll;     /* string value of the first element when it is a string, or NULL */
    uint32_t coll_len;
    bool has_txn_number;
    bool has_autocommit;
    bool has_duplicate_top_level_key; /* also set, unchecked, past 256 top-level keys that
                                       * are no name (wire/names.h) */
    /* Where the top-level elements are, so that a reader after the parse (the
     * cache policy, the key, the index advice's shapes) finds a field without
     * walking the body again: the offset in the body of each element's type
     * byte, in order, its key's length and its key's name id (enum wire_name);
     * all of them only when elems_all (at most WIRE_CMD_MAX_ELEMS). body and
     * body_len are the body they were found in. */
    const uint8_t *body;
    uint32_t body_len;
    bool elems_all;
    uint32_t n_elems;
    uint32_t elem_off[WIRE_CMD_MAX_ELEMS];
    uint32_t elem_key_len[WIRE_CMD_MAX_ELEMS];
    uint16_t elem_id[WIRE_CMD_MAX_ELEMS];
};

/* A top-level element of a parsed body, read in place. */
struct wire_cmd_elem {
    const uint8_t *start; /* its type byte */
    uint32_t len;         /* bytes from its type byte to the next element's */
    uint8_t type;         /* a bson_type_t */
    const char *key;      /* NUL-terminated, key_len bytes */
    uint32_t key_len;
    enum wire_name id;    /* the key's name id, or WIRE_NAME_UNKNOWN */
    const uint8_t *value; /* its value's bytes: len - 2 - key_len of them */
    const uint8_t *doc;   /* the body it is in, and the body's length */
    uint32_t doc_len;
};

/*
 * The top-level elements of a body in order: from cmd's records when it has
 * them all for this very body (no second walk), else by walking the body
 * with bson_iter. The body must be the one wire_cmd_parse accepted.
 */
struct wire_cmd_walk {
    const struct wire_cmd *cmd; /* the records read, or NULL: walking with it */
    uint32_t i;
    const uint8_t *doc;
    uint32_t doc_len;
    bson_iter_t it;
    bool started; /* walking: it is initialised */
};

/*
 * Starts a walk of body (len bytes), which cmd (NULL: not parsed) describes:
 * its records are used only when they are all there and were made from this
 * very body. Inline: every reader of a request starts one.
 */
static inline void
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

/* wire_cmd_walk_next when the body is being walked (w->cmd NULL). */
bool wire_cmd_walk_next_walking(struct wire_cmd_walk *w, struct wire_cmd_elem *e);

/* The next element into *e; false after the last one. Inline: it runs per element per reader. */
static inline bool
wire_cmd_walk_next(struct wire_cmd_walk *w, struct wire_cmd_elem *e)
{
    const struct wire_cmd *cmd = w->cmd;
    uint32_t i = w->i, off, end;

    if (!cmd)
        return wire_cmd_walk_next_walking(w, e);
    if (i >= cmd->n_elems)
        return false;
    off = cmd->elem_off[i];
    /* The last element ends at the body's final NUL. */
    end = i + 1 < cmd->n_elems ? cmd->elem_off[i + 1] : cmd->body_len - 1;
    e->start = w->doc + off;
    e->len = end - off;
    e->type = e->start[0];
    e->key = (const char *)e->start + 1;
    e->key_len = cmd->elem_key_len[i];
    e->id = (enum wire_name)cmd->elem_id[i];
    e->value = e->start + 2 + e->key_len;
    e->doc = w->doc;
    e->doc_len = w->doc_len;
    w->i = i + 1;
    return true;
}

/* Places it on the element e, as a bson_iter_next walk of e's body would have; false on failure. */
bool wire_cmd_elem_iter(const struct wire_cmd_elem *e, bson_iter_t *it);

/*
 * Fills cmd from a checked body. Returns false (error set) when the body is
 * empty (WIRE_ERR_COMMAND_NOT_FOUND), $db is not a string
 * (WIRE_ERR_TYPE_MISMATCH) or holds a NUL (WIRE_ERR_INVALID_NAMESPACE), or
 * its top-level elements cannot be read (WIRE_ERR_INVALID_BSON: wire/reader.h
 * refuses what wire_doc_check does, and checks less in nested documents).
 */
bool wire_cmd_parse(const uint8_t *body, uint32_t len, struct wire_cmd *cmd,
                    bson_error_t *error) __attribute__((warn_unused_result));

/*
 * wire_cmd_parse of a body whose check recorded its top level in top
 * (wire_doc_check_top, or wire_msg_parse's msg->top): the same result,
 * without walking the body again. A top that does not hold every element
 * (or NULL) is walked as wire_cmd_parse does.
 */
bool wire_cmd_parse_top(const uint8_t *body, uint32_t len, const struct wire_doc_top *top,
                        struct wire_cmd *cmd, bson_error_t *error)
    __attribute__((warn_unused_result));

/* True when the command name is hello, isMaster or ismaster. */
bool wire_cmd_is_hello(const char *name);

#endif
