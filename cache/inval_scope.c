/*
 * cache/inval_scope.c: owns the write side of the policy (see
 * inval_scope.h): the lists of commands that write a collection, a database,
 * a principal or everything, and reading their targets ($out and $merge at
 * any depth, mapReduce's out, bulkWrite's nsInfo in the body or a document
 * sequence, renameCollection's two databases). It does not bump anything
 * (cache/inval.c) nor decide what a read may cache (cache/policy.c, whose
 * namespace reader it shares).
 */
#include "config.h"

#include "cache/inval_scope.h"

#include "wire/cmd.h"
#include "wire/names.h"

#include <string.h>

/* The id of the key at it (wire/names.h). */
static enum wire_name
key_id(const bson_iter_t *it)
{
    return wire_names_lookup(bson_iter_key(it), bson_iter_key_len(it));
}

static bool
same(const char *a, uint32_t a_len, const char *b, uint32_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

/* Commands that write the collection they name. */
static bool
is_ns_write(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_INSERT:
    case WIRE_NAME_UPDATE:
    case WIRE_NAME_DELETE:
    case WIRE_NAME_FIND_AND_MODIFY:
    case WIRE_NAME_FINDANDMODIFY:
    case WIRE_NAME_CREATE_INDEXES:
    case WIRE_NAME_DROP_INDEXES:
    case WIRE_NAME_DELETE_INDEXES:
    case WIRE_NAME_COMPACT:
    case WIRE_NAME_VALIDATE:
        return true;
    default:
        return false;
    }
}

/* DDL on the command's database. */
static bool
is_db_write(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_DROP:
    case WIRE_NAME_CREATE:
    case WIRE_NAME_COLL_MOD:
    case WIRE_NAME_CONVERT_TO_CAPPED:
    case WIRE_NAME_CLONE_COLLECTION_AS_CAPPED:
    case WIRE_NAME_DROP_DATABASE:
        return true;
    default:
        return false;
    }
}

/* User management: that principal's entries. */
static bool
is_user_write(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_CREATE_USER:
    case WIRE_NAME_UPDATE_USER:
    case WIRE_NAME_DROP_USER:
    case WIRE_NAME_GRANT_ROLES_TO_USER:
    case WIRE_NAME_REVOKE_ROLES_FROM_USER:
        return true;
    default:
        return false;
    }
}

/* Role management and applyOps: everything. */
static bool
is_all_write(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_DROP_ALL_USERS_FROM_DATABASE:
    case WIRE_NAME_CREATE_ROLE:
    case WIRE_NAME_UPDATE_ROLE:
    case WIRE_NAME_DROP_ROLE:
    case WIRE_NAME_DROP_ALL_ROLES_FROM_DATABASE:
    case WIRE_NAME_GRANT_PRIVILEGES_TO_ROLE:
    case WIRE_NAME_REVOKE_PRIVILEGES_FROM_ROLE:
    case WIRE_NAME_GRANT_ROLES_TO_ROLE:
    case WIRE_NAME_REVOKE_ROLES_FROM_ROLE:
    case WIRE_NAME_APPLY_OPS:
        return true;
    default:
        return false;
    }
}

static void
write_all(struct cache_write *w)
{
    w->scope = CACHE_WRITE_ALL;
    w->n_ns = 0;
    w->user = NULL;
    w->user_len = 0;
}

/* Adds db.coll (coll NULL: the database) once; false when full or empty. */
static bool
add_write_ns(struct cache_write *w, const char *db, uint32_t db_len, const char *coll,
             uint32_t coll_len)
{
    if (db_len == 0 || (coll && coll_len == 0))
        return false;
    for (uint32_t i = 0; i < w->n_ns; i++) {
        if (same(w->ns[i].db, w->ns[i].db_len, db, db_len) &&
            (w->ns[i].coll == NULL) == (coll == NULL) &&
            same(w->ns[i].coll, w->ns[i].coll_len, coll, coll_len))
            return true;
    }
    if (w->n_ns == CACHE_INVAL_SCOPE_MAX_NS)
        return false;
    w->ns[w->n_ns].db = db;
    w->ns[w->n_ns].db_len = db_len;
    w->ns[w->n_ns].coll = coll;
    w->ns[w->n_ns].coll_len = coll_len;
    w->n_ns++;
    return true;
}

/* Splits "db.coll" at the first '.'; false unless both parts are non-empty. */
static bool
split_ns(const char *s, uint32_t len, const char **db, uint32_t *db_len, const char **coll,
         uint32_t *coll_len)
{
    const char *dot = memchr(s, '.', len);

    if (!dot || dot == s || dot == s + len - 1)
        return false;
    *db = s;
    *db_len = (uint32_t)(dot - s);
    *coll = dot + 1;
    *coll_len = len - *db_len - 1;
    return true;
}

/* Adds the "db.coll" string at it (only its db when db_only); false when it is not one. */
static bool
add_dotted(struct cache_write *w, const bson_iter_t *it, bool db_only)
{
    const char *db, *coll, *s;
    uint32_t db_len, coll_len, len;

    if (!BSON_ITER_HOLDS_UTF8(it))
        return false;
    s = bson_iter_utf8(it, &len);
    if (!split_ns(s, len, &db, &db_len, &coll, &coll_len))
        return false;
    return db_only ? add_write_ns(w, db, db_len, NULL, 0)
                   : add_write_ns(w, db, db_len, coll, coll_len);
}

/* Adds the namespace named by a {ns: "db.coll"} document; false when there is none. */
static bool
add_ns_info(struct cache_write *w, const bson_t *doc)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, "ns"))
        return false;
    return add_dotted(w, &it, false);
}

/* bulkWrite's nsInfo, as an array in the body and as a document sequence. */
static bool
bulk_write_targets(struct cache_write *w, const bson_t *body, const char *const *seq_ids,
                   const uint8_t *const *seq_docs, const uint32_t *seq_lens, uint32_t n_seqs)
{
    bool any = false;
    bson_iter_t it, item;

    if (bson_iter_init_find(&it, body, "nsInfo")) {
        if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &item))
            return false;
        while (bson_iter_next(&item)) {
            const uint8_t *data;
            uint32_t len;
            bson_t doc;

            if (!BSON_ITER_HOLDS_DOCUMENT(&item))
                return false;
            bson_iter_document(&item, &len, &data);
            if (!bson_init_static(&doc, data, len) || !add_ns_info(w, &doc))
                return false;
            any = true;
        }
    }
    for (uint32_t i = 0; i < n_seqs; i++) {
        const uint8_t *p = seq_docs ? seq_docs[i] : NULL;
        uint32_t left = seq_lens ? seq_lens[i] : 0;

        if (!seq_ids || !seq_ids[i] || strcmp(seq_ids[i], "nsInfo") != 0)
            continue;
        if (!p && left > 0)
            return false;
        while (left > 0) {
            uint32_t len;
            bson_t doc;

            if (left < 5)
                return false;
            len =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (len < 5 || len > left || !bson_init_static(&doc, p, len) || !add_ns_info(w, &doc))
                return false;
            any = true;
            p += len;
            left -= len;
        }
    }
    return any;
}

/* An output named as "coll" or {<key>: coll, db}; false when it is neither. */
static bool
add_output(struct cache_write *w, const bson_iter_t *value, enum wire_name coll_key, const char *db,
           uint32_t db_len)
{
    const char *odb, *coll;
    uint32_t odb_len, coll_len;
    bool found;

    if (!cache_policy_ns_value(value, coll_key, db, db_len, &odb, &odb_len, &coll, &coll_len, &found) ||
        !found)
        return false;
    return add_write_ns(w, odb, odb_len, coll, coll_len);
}

/* $merge: "coll" or {into: "coll" | {db, coll}, ...}. */
static bool
add_merge_target(struct cache_write *w, const bson_iter_t *value, const char *db, uint32_t db_len)
{
    bson_iter_t it;

    if (BSON_ITER_HOLDS_UTF8(value))
        return add_output(w, value, WIRE_NAME_COLL, db, db_len);
    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it) ||
        !bson_iter_find(&it, "into"))
        return false;
    return add_output(w, &it, WIRE_NAME_COLL, db, db_len);
}

/*
 * Finds $out and $merge at any depth and adds their targets. Sets *found
 * when there is one; false when a target cannot be read or there are too
 * many.
 */
static bool
write_stage_targets(struct cache_write *w, bson_iter_t *it, const char *db, uint32_t db_len,
                    bool *found)
{
    while (bson_iter_next(it)) {
        enum wire_name id = key_id(it);
        bson_iter_t child;

        if (id == WIRE_NAME_DOLLAR_OUT) {
            *found = true;
            if (!add_output(w, it, WIRE_NAME_COLL, db, db_len))
                return false;
        } else if (id == WIRE_NAME_DOLLAR_MERGE) {
            *found = true;
            if (!add_merge_target(w, it, db, db_len))
                return false;
        }
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
            (!bson_iter_recurse(it, &child) || !write_stage_targets(w, &child, db, db_len, found)))
            return false;
    }
    return true;
}

/* mapReduce's out: "coll", {replace|merge|reduce: coll, db}, or {inline: 1} (no write). */
static bool
map_reduce_target(struct cache_write *w, const bson_t *body, const char *db, uint32_t db_len)
{
    static const enum wire_name modes[] = {WIRE_NAME_REPLACE, WIRE_NAME_MERGE, WIRE_NAME_REDUCE};
    bson_iter_t out, it;

    if (!bson_iter_init_find(&out, body, "out"))
        return true; /* the server refuses it */
    if (BSON_ITER_HOLDS_UTF8(&out))
        return add_output(w, &out, WIRE_NAME_COLL, db, db_len);
    if (!BSON_ITER_HOLDS_DOCUMENT(&out))
        return false;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (bson_iter_recurse(&out, &it) && bson_iter_find(&it, wire_names_text(modes[i])))
            return add_output(w, &out, modes[i], db, db_len);
    }
    return bson_iter_recurse(&out, &it) && bson_iter_find(&it, "inline");
}

/* txnNumber with autocommit: false; *starts: with startTransaction: true as well. */
static bool
in_transaction(const bson_t *body, bool *starts)
{
    bool txn = false, no_autocommit = false, start = false;
    bson_iter_t it;

    *starts = false;
    if (!bson_iter_init(&it, body))
        return false;
    while (bson_iter_next(&it)) {
        enum wire_name id = key_id(&it);

        if (id == WIRE_NAME_TXN_NUMBER)
            txn = true;
        else if (id == WIRE_NAME_AUTOCOMMIT && !bson_iter_as_bool(&it))
            no_autocommit = true;
        else if (id == WIRE_NAME_START_TRANSACTION && bson_iter_as_bool(&it))
            start = true;
    }
    *starts = txn && no_autocommit && start;
    return txn && no_autocommit;
}

/* Fills w for a command that may write (w->scope NONE on entry); false: scope ALL. */
static bool
classify_write(const struct wire_cmd *cmd, const bson_t *body, const char *db, uint32_t db_len,
               const char *const *seq_ids, const uint8_t *const *seq_docs, const uint32_t *seq_lens,
               uint32_t n_seqs, struct cache_write *w)
{
    enum wire_name name = cmd->name_id;
    bool found = false;
    bson_iter_t it, to;

    if (name == WIRE_NAME_COMMIT_TRANSACTION || name == WIRE_NAME_ABORT_TRANSACTION) {
        w->scope = CACHE_WRITE_TXN_END;
        return true;
    }
    if (is_all_write(name))
        return false;

    if (name == WIRE_NAME_AGGREGATE) {
        if (!bson_iter_init(&it, body) || !write_stage_targets(w, &it, db, db_len, &found))
            return false;
        if (!found)
            return true;
        w->scope = CACHE_WRITE_NS;
    } else if (name == WIRE_NAME_MAP_REDUCE || name == WIRE_NAME_MAPREDUCE) {
        if (!map_reduce_target(w, body, db, db_len))
            return false;
        if (w->n_ns == 0)
            return true;
        w->scope = CACHE_WRITE_NS;
    } else if (is_ns_write(name)) {
        if (cmd->coll) {
            w->scope = CACHE_WRITE_NS;
            if (!add_write_ns(w, db, db_len, cmd->coll, cmd->coll_len))
                return false;
        } else {
            w->scope = CACHE_WRITE_DB;
            if (!add_write_ns(w, db, db_len, NULL, 0))
                return false;
        }
    } else if (name == WIRE_NAME_BULK_WRITE) {
        w->scope = CACHE_WRITE_NS;
        if (!bulk_write_targets(w, body, seq_ids, seq_docs, seq_lens, n_seqs))
            return false;
    } else if (is_db_write(name)) {
        w->scope = CACHE_WRITE_DB;
        if (!add_write_ns(w, db, db_len, NULL, 0))
            return false;
    } else if (name == WIRE_NAME_RENAME_COLLECTION) {
        w->scope = CACHE_WRITE_DB;
        if (!bson_iter_init(&it, body) || !bson_iter_next(&it) || !add_dotted(w, &it, true) ||
            !bson_iter_init_find(&to, body, "to") || !add_dotted(w, &to, true))
            return false;
    } else if (is_user_write(name)) {
        if (!cmd->coll || cmd->coll_len == 0 || !add_write_ns(w, db, db_len, NULL, 0))
            return false;
        w->scope = CACHE_WRITE_USER;
        w->user = cmd->coll;
        w->user_len = cmd->coll_len;
    } else {
        return true;
    }
    /* A write whose target could be read two ways is scoped to everything. */
    return !cmd->has_duplicate_top_level_key && db_len > 0;
}

void
cache_inval_scope_classify(const bson_t *body, const struct wire_cmd *parsed, const char *db,
                           const char *const *seq_ids, const uint8_t *const *seq_docs,
                           const uint32_t *seq_lens, uint32_t n_seqs, struct cache_write *write)
{
    struct wire_cmd own;
    const struct wire_cmd *cmd = parsed;
    bson_error_t error;
    uint32_t db_len = 0;

    /* Every field but ns[] past n_ns (never read): clearing all 400 bytes cost
     * a read more than the rest of its classification. The parse is read
     * where it is, not copied, for the same reason. */
    write->scope = CACHE_WRITE_NONE;
    write->n_ns = 0;
    write->user = NULL;
    write->user_len = 0;
    write->in_transaction = false;
    write->starts_transaction = false;
    if (!cmd) {
        if (!wire_cmd_parse(bson_get_data(body), body->len, &own, &error)) {
            write_all(write);
            return;
        }
        cmd = &own;
    }
    /* Only a body holding both keys (the parse noted them) is walked for their values. */
    write->in_transaction = cmd->has_txn_number && cmd->has_autocommit &&
                            in_transaction(body, &write->starts_transaction);
    if (db) {
        db_len = db == cmd->db ? cmd->db_len : (uint32_t)strlen(db); /* no NUL in $db */
    } else if (cmd->db) {
        db = cmd->db;
        db_len = cmd->db_len;
    } else {
        db = "";
    }
    if (!classify_write(cmd, body, db, db_len, seq_ids, seq_docs, seq_lens, n_seqs, write))
        write_all(write);
}
