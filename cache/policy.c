/*
 * cache/policy.c: owns the allowlist of what may be cached and the map of
 * what a command may write (the rules are listed in cache/policy.h). Pure
 * functions over checked documents: they read the body
 * in place with bson_iter and return a reason or a scope, with namespaces
 * pointing into the command. It does not build keys (cache/key.c), keep
 * generations (cache/gen.c), count reasons (cache/cache.c) or check BSON
 * structure (wire/doc.c).
 *
 * A read is cacheable only when the same command bytes always give the same
 * answer until a write through the proxy invalidates one of the namespaces
 * it returns. So the rules lean one way: anything not understood makes a
 * read uncacheable and a write broader (ALL), never the reverse. Operators
 * and stages are looked for at every depth of the body, not only where the
 * server would accept them, because a false positive only costs a miss.
 * Recursion is bounded by the depth check the body has passed (<= 200).
 */
#include "config.h"

#include "cache/policy.h"

#include "wire/cmd.h"

#include <string.h>

static const char *const reason_names[] = {
#define CACHE_POLICY_NAME(name, text) text,
    CACHE_POLICY_REASONS(CACHE_POLICY_NAME)
#undef CACHE_POLICY_NAME
};

const char *
cache_policy_reason_name(enum cache_policy_reason reason)
{
    if ((unsigned)reason >= CACHE_POLICY_REASON_COUNT)
        return "unknown";
    return reason_names[reason];
}

/* ---- helpers ----------------------------------------------------------- */

/* True when s is one of the NULL-terminated list. */
static bool
in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0)
            return true;
    }
    return false;
}

static bool
same(const char *a, uint32_t a_len, const char *b, uint32_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static bool
starts_with(const char *s, uint32_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Combines two verdicts: any reason beats OK; of two reasons, the first listed wins. */
static enum cache_policy_reason
worst(enum cache_policy_reason a, enum cache_policy_reason b)
{
    if (a == CACHE_POLICY_OK)
        return b;
    if (b == CACHE_POLICY_OK)
        return a;
    return a < b ? a : b;
}

/* Operators whose answer differs between two runs of the same command. */
static const char *const nondeterministic_ops[] = {
    "$where", "$function", "$accumulator", "$rand", "$sample", "$sampleRate", NULL,
};

static const char *const write_stages[] = {"$out", "$merge", NULL};

/*
 * Stages that read server state, or an index the server updates after the
 * write is acknowledged ($search and friends): no write through the proxy
 * invalidates their answers.
 */
static const char *const server_state_stages[] = {
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$collStats",
    "$indexStats",
    "$planCacheStats",
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$listCatalog",
    "$listClusterCatalog",
    "$listSampledQueries",
    "$listSearchIndexes",
    "$queryStats",
    "$shardedDataDistribution",
    "$operationMetrics",
    "$search",
    "$searchMeta",
    "$vectorSearch",
    NULL,
};

/* Variables whose value changes from one run to the next. */
static const char *const volatile_vars[] = {"$$NOW", "$$CLUSTER_TIME", NULL};

/*
 * True when the namespace is written by the server itself (the profiler,
 * the oplog, sessions, the sharding catalog, users and roles), so a write
 * through the proxy to another namespace can change it.
 */
static bool
server_written(const char *db, uint32_t db_len, const char *coll, uint32_t coll_len)
{
    return same(db, db_len, "local", 5) || same(db, db_len, "config", 6) ||
           starts_with(coll, coll_len, "system.");
}

/* ---- cache_policy_request ---------------------------------------------- */

/* A read being scanned: its default db and the namespaces found so far. */
struct req_scan {
    const char *db;
    uint32_t db_len;
    struct cache_read read;
};

/* Adds db.coll to the namespaces the read depends on, once. */
static enum cache_policy_reason
add_read_ns(struct req_scan *s, const char *db, uint32_t db_len, const char *coll,
            uint32_t coll_len)
{
    struct cache_read *r = &s->read;

    if (db_len == 0 || coll_len == 0)
        return CACHE_POLICY_NO_COLLECTION;
    if (server_written(db, db_len, coll, coll_len))
        return CACHE_POLICY_SYSTEM_NAMESPACE;
    for (uint32_t i = 0; i < r->n_ns; i++) {
        if (same(r->ns[i].db, r->ns[i].db_len, db, db_len) &&
            same(r->ns[i].coll, r->ns[i].coll_len, coll, coll_len))
            return CACHE_POLICY_OK;
    }
    if (r->n_ns == CACHE_POLICY_MAX_NAMESPACES)
        return CACHE_POLICY_TOO_MANY_NAMESPACES;
    r->ns[r->n_ns].db = db;
    r->ns[r->n_ns].db_len = db_len;
    r->ns[r->n_ns].coll = coll;
    r->ns[r->n_ns].coll_len = coll_len;
    r->n_ns++;
    return CACHE_POLICY_OK;
}

/*
 * Reads a namespace given as a string (a collection in the default db) or
 * as a document {db, <coll_key>} (db optional). Sets *found to false when
 * the value is a document without <coll_key>. False when the value cannot
 * name a namespace.
 */
static bool
read_ns_value(const bson_iter_t *value, const char *coll_key, const char *def_db,
              uint32_t def_db_len, const char **db, uint32_t *db_len, const char **coll,
              uint32_t *coll_len, bool *found)
{
    bson_iter_t it;

    *db = def_db;
    *db_len = def_db_len;
    *found = false;
    if (BSON_ITER_HOLDS_UTF8(value)) {
        *coll = bson_iter_utf8(value, coll_len);
        *found = true;
        return true;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it))
        return false;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "db") == 0) {
            if (!BSON_ITER_HOLDS_UTF8(&it))
                return false;
            *db = bson_iter_utf8(&it, db_len);
        } else if (strcmp(key, coll_key) == 0) {
            if (!BSON_ITER_HOLDS_UTF8(&it))
                return false;
            *coll = bson_iter_utf8(&it, coll_len);
            *found = true;
        }
    }
    return true;
}

/*
 * $lookup and $graphLookup: {from: "coll" | {db, coll}, ...}. $lookup may
 * have no from (a pipeline on $documents); $graphLookup must have one.
 */
static enum cache_policy_reason
scan_lookup(struct req_scan *s, const bson_iter_t *stage, bool from_required)
{
    const char *db, *coll;
    uint32_t db_len, coll_len;
    bool found = false;
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_DOCUMENT(stage) || !bson_iter_recurse(stage, &it))
        return CACHE_POLICY_NO_COLLECTION;
    while (bson_iter_next(&it)) {
        enum cache_policy_reason r;

        if (strcmp(bson_iter_key(&it), "from") != 0)
            continue;
        if (!read_ns_value(&it, "coll", s->db, s->db_len, &db, &db_len, &coll, &coll_len, &found) ||
            !found)
            return CACHE_POLICY_NO_COLLECTION;
        r = add_read_ns(s, db, db_len, coll, coll_len);
        if (r != CACHE_POLICY_OK)
            return r;
    }
    return found || !from_required ? CACHE_POLICY_OK : CACHE_POLICY_NO_COLLECTION;
}

/* $unionWith: "coll" or {coll, db, pipeline} (coll absent: a $documents pipeline). */
static enum cache_policy_reason
scan_union_with(struct req_scan *s, const bson_iter_t *stage)
{
    const char *db, *coll;
    uint32_t db_len, coll_len;
    bool found;

    if (!read_ns_value(stage, "coll", s->db, s->db_len, &db, &db_len, &coll, &coll_len, &found))
        return CACHE_POLICY_NO_COLLECTION;
    return found ? add_read_ns(s, db, db_len, coll, coll_len) : CACHE_POLICY_OK;
}

/* Judges an element whose key starts with '$'. */
static enum cache_policy_reason
scan_operator(struct req_scan *s, const char *key, const bson_iter_t *it)
{
    if (in_list(key, nondeterministic_ops))
        return CACHE_POLICY_NONDETERMINISTIC;
    if (in_list(key, write_stages))
        return CACHE_POLICY_WRITE_STAGE;
    if (in_list(key, server_state_stages))
        return CACHE_POLICY_SERVER_STATE;
    if (strcmp(key, "$meta") == 0 && BSON_ITER_HOLDS_UTF8(it) &&
        strcmp(bson_iter_utf8(it, NULL), "randVal") == 0)
        return CACHE_POLICY_NONDETERMINISTIC;
    if (strcmp(key, "$lookup") == 0)
        return scan_lookup(s, it, false);
    if (strcmp(key, "$graphLookup") == 0)
        return scan_lookup(s, it, true);
    if (strcmp(key, "$unionWith") == 0)
        return scan_union_with(s, it);
    return CACHE_POLICY_OK;
}

static enum cache_policy_reason scan_doc(struct req_scan *s, bson_iter_t *it);

/* Judges one element of the body at any depth, and what is inside it. */
static enum cache_policy_reason
scan_element(struct req_scan *s, const bson_iter_t *it)
{
    const char *key = bson_iter_key(it);
    bson_iter_t child;
    enum cache_policy_reason r;

    if (key[0] == '$') {
        r = scan_operator(s, key, it);
        if (r != CACHE_POLICY_OK)
            return r;
    }
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        if (!bson_iter_recurse(it, &child))
            return CACHE_POLICY_NOT_A_READ;
        return scan_doc(s, &child);
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: {
        uint32_t len = 0;
        const char *str =
            BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : bson_iter_symbol(it, &len);

        for (const char *const *v = volatile_vars; *v; v++) {
            if (starts_with(str, len, *v))
                return CACHE_POLICY_NONDETERMINISTIC;
        }
        return CACHE_POLICY_OK;
    }
    default:
        return CACHE_POLICY_OK;
    }
}

static enum cache_policy_reason
scan_doc(struct req_scan *s, bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        enum cache_policy_reason r = scan_element(s, it);

        if (r != CACHE_POLICY_OK)
            return r;
    }
    return CACHE_POLICY_OK;
}

/* readConcern: {level: local | available | majority}; anything else is not cacheable. */
static enum cache_policy_reason
check_read_concern(const bson_iter_t *value)
{
    static const char *const levels[] = {"local", "available", "majority", NULL};
    enum cache_policy_reason r = CACHE_POLICY_OK;
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it))
        return CACHE_POLICY_READ_CONCERN;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "level") == 0) {
            if (!BSON_ITER_HOLDS_UTF8(&it) || !in_list(bson_iter_utf8(&it, NULL), levels))
                r = worst(r, CACHE_POLICY_READ_CONCERN);
        } else if (strcmp(key, "afterClusterTime") == 0 || strcmp(key, "atClusterTime") == 0 ||
                   strcmp(key, "afterOpTime") == 0) {
            r = worst(r, CACHE_POLICY_CLUSTER_TIME);
        } else {
            r = worst(r, CACHE_POLICY_READ_CONCERN);
        }
    }
    return r;
}

/* Judges one top-level option (session, read concern, cursor flags, comment). */
static enum cache_policy_reason
check_option(const bson_iter_t *it)
{
    const char *key = bson_iter_key(it);

    if (strcmp(key, "txnNumber") == 0 || strcmp(key, "autocommit") == 0 ||
        strcmp(key, "startTransaction") == 0)
        return CACHE_POLICY_TRANSACTION;
    if (strcmp(key, "readConcern") == 0)
        return check_read_concern(it);
    if (strcmp(key, "tailable") == 0 || strcmp(key, "awaitData") == 0)
        return bson_iter_as_bool(it) ? CACHE_POLICY_TAILABLE : CACHE_POLICY_OK;
    if (strcmp(key, "exhaust") == 0)
        return bson_iter_as_bool(it) ? CACHE_POLICY_EXHAUST : CACHE_POLICY_OK;
    if (strcmp(key, "allowPartialResults") == 0)
        return bson_iter_as_bool(it) ? CACHE_POLICY_PARTIAL : CACHE_POLICY_OK;
    if (strcmp(key, "explain") == 0)
        return bson_iter_as_bool(it) ? CACHE_POLICY_EXPLAIN : CACHE_POLICY_OK;
    return CACHE_POLICY_OK;
}

/* True when the body has a string comment asking to skip the cache. */
static bool
skip_requested(const bson_t *body)
{
    bson_iter_t it;

    if (!bson_iter_init(&it, body))
        return false;
    while (bson_iter_next(&it)) {
        uint32_t len;
        const char *str;

        if (strcmp(bson_iter_key(&it), "comment") != 0 || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        str = bson_iter_utf8(&it, &len);
        if (starts_with(str, len, CACHE_POLICY_SKIP_COMMENT))
            return true;
    }
    return false;
}

static enum cache_policy_reason
judge_request(const bson_t *body, const struct wire_cmd *parsed, const char *db,
              uint32_t n_sequences, struct req_scan *s)
{
    static const char *const reads[] = {"find", "aggregate", "count", "distinct", NULL};
    struct wire_cmd cmd;
    bson_error_t error;
    enum cache_policy_reason r = CACHE_POLICY_OK;
    bson_iter_t it;

    if (parsed)
        cmd = *parsed;
    else if (!wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error))
        return CACHE_POLICY_NOT_A_READ;
    if (strcmp(cmd.name, "explain") == 0)
        return CACHE_POLICY_EXPLAIN;
    if (!in_list(cmd.name, reads))
        return CACHE_POLICY_NOT_A_READ;
    if (db) {
        s->db = db;
        s->db_len = (uint32_t)strlen(db);
    } else if (cmd.db) {
        s->db = cmd.db;
        s->db_len = cmd.db_len;
    }
    if (!cmd.coll || cmd.coll_len == 0 || s->db_len == 0)
        return CACHE_POLICY_NO_COLLECTION;
    if (cmd.has_duplicate_top_level_key)
        return CACHE_POLICY_DUPLICATE_FIELD;
    if (n_sequences > 0)
        return CACHE_POLICY_SEQUENCES;
    r = add_read_ns(s, s->db, s->db_len, cmd.coll, cmd.coll_len);
    if (r != CACHE_POLICY_OK)
        return r;
    if (skip_requested(body))
        return CACHE_POLICY_SKIP_REQUESTED;

    if (!bson_iter_init(&it, body))
        return CACHE_POLICY_NOT_A_READ;
    while (bson_iter_next(&it))
        r = worst(r, check_option(&it));
    if (r != CACHE_POLICY_OK)
        return r;

    if (!bson_iter_init(&it, body))
        return CACHE_POLICY_NOT_A_READ;
    return scan_doc(s, &it);
}

enum cache_policy_reason
cache_policy_request(const bson_t *body, const struct wire_cmd *cmd, const char *db,
                     uint32_t n_sequences, struct cache_read *read)
{
    struct req_scan s;
    enum cache_policy_reason r;

    memset(&s, 0, sizeof s);
    s.db = "";
    r = judge_request(body, cmd, db, n_sequences, &s);
    if (read) {
        if (r == CACHE_POLICY_OK)
            *read = s.read;
        else
            read->n_ns = 0;
    }
    return r;
}

/* ---- cache_policy_reply ------------------------------------------------ */

/* True when value is {id: 0, ...}: every id present is an int32 or int64 zero. */
static bool
cursor_closed(const bson_iter_t *value)
{
    bool seen = false;
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it))
        return false;
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "id") != 0)
            continue;
        if (BSON_ITER_HOLDS_INT64(&it) && bson_iter_int64(&it) == 0)
            seen = true;
        else if (BSON_ITER_HOLDS_INT32(&it) && bson_iter_int32(&it) == 0)
            seen = true;
        else
            return false;
    }
    return seen;
}

enum cache_policy_reason
cache_policy_reply(const bson_t *reply, size_t reply_len, size_t max_entry_bytes)
{
    unsigned n_ok = 0, n_cursor = 0;
    bool ok_typed = true, ok_one = false, wce = false, open = false;
    bson_iter_t it;

    if (!reply || !bson_iter_init(&it, reply))
        return CACHE_POLICY_REPLY_MALFORMED;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "ok") == 0) {
            n_ok++;
            switch (bson_iter_type(&it)) {
            case BSON_TYPE_DOUBLE:
                ok_one = bson_iter_double(&it) == 1.0;
                break;
            case BSON_TYPE_INT32:
                ok_one = bson_iter_int32(&it) == 1;
                break;
            case BSON_TYPE_INT64:
                ok_one = bson_iter_int64(&it) == 1;
                break;
            case BSON_TYPE_BOOL:
                ok_one = bson_iter_bool(&it);
                break;
            default:
                ok_typed = false;
                break;
            }
        } else if (strcmp(key, "writeConcernError") == 0) {
            wce = true;
        } else if (strcmp(key, "cursor") == 0) {
            n_cursor++;
            if (!cursor_closed(&it))
                open = true;
        }
    }
    if (n_ok != 1 || !ok_typed || n_cursor > 1)
        return CACHE_POLICY_REPLY_MALFORMED;
    if (!ok_one)
        return CACHE_POLICY_REPLY_ERROR;
    if (wce)
        return CACHE_POLICY_REPLY_WRITE_CONCERN_ERROR;
    if (open)
        return CACHE_POLICY_REPLY_OPEN_CURSOR;
    if (reply_len > max_entry_bytes)
        return CACHE_POLICY_REPLY_TOO_LARGE;
    return CACHE_POLICY_OK;
}

/* ---- cache_policy_write ------------------------------------------------ */

/* Commands that write the collection they name. */
static const char *const ns_writes[] = {
    "insert",        "update",        "delete",      "findAndModify",
    "findandmodify", "createIndexes", "dropIndexes", "deleteIndexes",
    "compact",       "validate",      NULL,
};

/* DDL on the command's database. */
static const char *const db_writes[] = {
    "drop", "create", "collMod", "convertToCapped", "cloneCollectionAsCapped", "dropDatabase", NULL,
};

/* User management: that principal's entries. */
static const char *const user_writes[] = {
    "createUser", "updateUser", "dropUser", "grantRolesToUser", "revokeRolesFromUser", NULL,
};

/* Role management and applyOps: everything. */
static const char *const all_writes[] = {
    "dropAllUsersFromDatabase",
    "createRole",
    "updateRole",
    "dropRole",
    "dropAllRolesFromDatabase",
    "grantPrivilegesToRole",
    "revokePrivilegesFromRole",
    "grantRolesToRole",
    "revokeRolesFromRole",
    "applyOps",
    NULL,
};

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
    if (w->n_ns == CACHE_POLICY_MAX_WRITE_NS)
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
add_output(struct cache_write *w, const bson_iter_t *value, const char *coll_key, const char *db,
           uint32_t db_len)
{
    const char *odb, *coll;
    uint32_t odb_len, coll_len;
    bool found;

    if (!read_ns_value(value, coll_key, db, db_len, &odb, &odb_len, &coll, &coll_len, &found) ||
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
        return add_output(w, value, "coll", db, db_len);
    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it) ||
        !bson_iter_find(&it, "into"))
        return false;
    return add_output(w, &it, "coll", db, db_len);
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
        const char *key = bson_iter_key(it);
        bson_iter_t child;

        if (strcmp(key, "$out") == 0) {
            *found = true;
            if (!add_output(w, it, "coll", db, db_len))
                return false;
        } else if (strcmp(key, "$merge") == 0) {
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
    static const char *const modes[] = {"replace", "merge", "reduce", NULL};
    bson_iter_t out, it;

    if (!bson_iter_init_find(&out, body, "out"))
        return true; /* the server refuses it */
    if (BSON_ITER_HOLDS_UTF8(&out))
        return add_output(w, &out, "coll", db, db_len);
    if (!BSON_ITER_HOLDS_DOCUMENT(&out))
        return false;
    for (const char *const *mode = modes; *mode; mode++) {
        if (bson_iter_recurse(&out, &it) && bson_iter_find(&it, *mode))
            return add_output(w, &out, *mode, db, db_len);
    }
    return bson_iter_recurse(&out, &it) && bson_iter_find(&it, "inline");
}

/* txnNumber with autocommit: false. */
static bool
in_transaction(const bson_t *body)
{
    bool txn = false, no_autocommit = false;
    bson_iter_t it;

    if (!bson_iter_init(&it, body))
        return false;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "txnNumber") == 0)
            txn = true;
        else if (strcmp(key, "autocommit") == 0 && !bson_iter_as_bool(&it))
            no_autocommit = true;
    }
    return txn && no_autocommit;
}

/* Fills w for a command that may write (w->scope NONE on entry); false: scope ALL. */
static bool
classify_write(const struct wire_cmd *cmd, const bson_t *body, const char *db, uint32_t db_len,
               const char *const *seq_ids, const uint8_t *const *seq_docs, const uint32_t *seq_lens,
               uint32_t n_seqs, struct cache_write *w)
{
    const char *name = cmd->name;
    bool found = false;
    bson_iter_t it, to;

    if (strcmp(name, "commitTransaction") == 0 || strcmp(name, "abortTransaction") == 0) {
        w->scope = CACHE_WRITE_TXN_END;
        return true;
    }
    if (in_list(name, all_writes))
        return false;

    if (strcmp(name, "aggregate") == 0) {
        if (!bson_iter_init(&it, body) || !write_stage_targets(w, &it, db, db_len, &found))
            return false;
        if (!found)
            return true;
        w->scope = CACHE_WRITE_NS;
    } else if (strcmp(name, "mapReduce") == 0 || strcmp(name, "mapreduce") == 0) {
        if (!map_reduce_target(w, body, db, db_len))
            return false;
        if (w->n_ns == 0)
            return true;
        w->scope = CACHE_WRITE_NS;
    } else if (in_list(name, ns_writes)) {
        if (cmd->coll) {
            w->scope = CACHE_WRITE_NS;
            if (!add_write_ns(w, db, db_len, cmd->coll, cmd->coll_len))
                return false;
        } else {
            w->scope = CACHE_WRITE_DB;
            if (!add_write_ns(w, db, db_len, NULL, 0))
                return false;
        }
    } else if (strcmp(name, "bulkWrite") == 0) {
        w->scope = CACHE_WRITE_NS;
        if (!bulk_write_targets(w, body, seq_ids, seq_docs, seq_lens, n_seqs))
            return false;
    } else if (in_list(name, db_writes)) {
        w->scope = CACHE_WRITE_DB;
        if (!add_write_ns(w, db, db_len, NULL, 0))
            return false;
    } else if (strcmp(name, "renameCollection") == 0) {
        w->scope = CACHE_WRITE_DB;
        if (!bson_iter_init(&it, body) || !bson_iter_next(&it) || !add_dotted(w, &it, true) ||
            !bson_iter_init_find(&to, body, "to") || !add_dotted(w, &to, true))
            return false;
    } else if (in_list(name, user_writes)) {
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
cache_policy_write(const bson_t *body, const struct wire_cmd *parsed, const char *db,
                   const char *const *seq_ids, const uint8_t *const *seq_docs,
                   const uint32_t *seq_lens, uint32_t n_seqs, struct cache_write *write)
{
    struct wire_cmd cmd;
    bson_error_t error;
    uint32_t db_len = 0;

    memset(write, 0, sizeof *write);
    write->scope = CACHE_WRITE_NONE;
    if (parsed) {
        cmd = *parsed;
    } else if (!wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error)) {
        write_all(write);
        return;
    }
    write->in_transaction = in_transaction(body);
    if (db) {
        db_len = (uint32_t)strlen(db);
    } else if (cmd.db) {
        db = cmd.db;
        db_len = cmd.db_len;
    } else {
        db = "";
    }
    if (!classify_write(&cmd, body, db, db_len, seq_ids, seq_docs, seq_lens, n_seqs, write))
        write_all(write);
}
