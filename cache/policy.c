/*
 * cache/policy.c: owns the allowlist of what may be cached (the conditions
 * are listed in cache/policy.h). Pure functions over checked documents:
 * they read the body in place with bson_iter and return a reason, with
 * namespaces pointing into the command. It does not say what a write
 * changes (cache/inval_scope.c), build keys (cache/key.c), keep
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
#include "wire/frame.h"
#include "wire/names.h"
#include "wire/reader.h"

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

/* The id of the key at it (wire/names.h). */
static enum wire_name
key_id(const bson_iter_t *it)
{
    return wire_names_lookup(bson_iter_key(it), bson_iter_key_len(it));
}

/* True when the key at it is exactly the name id. */
static bool
key_is(const bson_iter_t *it, enum wire_name id)
{
    return wire_names_is(bson_iter_key(it), bson_iter_key_len(it), id);
}

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

/*
 * What an operator or stage (a key starting with '$') means for a read:
 * its answer differs between two runs of the same command
 * (NONDETERMINISTIC); it writes (WRITE_STAGE); or it reads server state, or
 * an index the server updates after the write is acknowledged ($search and
 * friends), so no write through the proxy invalidates its answer
 * (SERVER_STATE). OK for any other.
 */
static enum cache_policy_reason
operator_reason(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_DOLLAR_WHERE:
    case WIRE_NAME_DOLLAR_FUNCTION:
    case WIRE_NAME_DOLLAR_ACCUMULATOR:
    case WIRE_NAME_DOLLAR_RAND:
    case WIRE_NAME_DOLLAR_SAMPLE:
    case WIRE_NAME_DOLLAR_SAMPLE_RATE:
        return CACHE_POLICY_NONDETERMINISTIC;
    case WIRE_NAME_DOLLAR_OUT:
    case WIRE_NAME_DOLLAR_MERGE:
        return CACHE_POLICY_WRITE_STAGE;
    case WIRE_NAME_DOLLAR_CURRENT_OP:
    case WIRE_NAME_DOLLAR_LIST_SESSIONS:
    case WIRE_NAME_DOLLAR_LIST_LOCAL_SESSIONS:
    case WIRE_NAME_DOLLAR_COLL_STATS:
    case WIRE_NAME_DOLLAR_INDEX_STATS:
    case WIRE_NAME_DOLLAR_PLAN_CACHE_STATS:
    case WIRE_NAME_DOLLAR_CHANGE_STREAM:
    case WIRE_NAME_DOLLAR_CHANGE_STREAM_SPLIT_LARGE_EVENT:
    case WIRE_NAME_DOLLAR_LIST_CATALOG:
    case WIRE_NAME_DOLLAR_LIST_CLUSTER_CATALOG:
    case WIRE_NAME_DOLLAR_LIST_SAMPLED_QUERIES:
    case WIRE_NAME_DOLLAR_LIST_SEARCH_INDEXES:
    case WIRE_NAME_DOLLAR_QUERY_STATS:
    case WIRE_NAME_DOLLAR_SHARDED_DATA_DISTRIBUTION:
    case WIRE_NAME_DOLLAR_OPERATION_METRICS:
    case WIRE_NAME_DOLLAR_SEARCH:
    case WIRE_NAME_DOLLAR_SEARCH_META:
    case WIRE_NAME_DOLLAR_VECTOR_SEARCH:
        return CACHE_POLICY_SERVER_STATE;
    default:
        return CACHE_POLICY_OK;
    }
}

/* Variables whose value changes from one run to the next. */
/* Each starts with "$$" (scan_string looks no further into a string that does not). */
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

/* A read being scanned: its default db and the namespaces found so far (the caller's). */
struct req_scan {
    const char *db;
    uint32_t db_len;
    struct cache_read *read;
};

/* Adds db.coll to the namespaces the read depends on, once. */
static enum cache_policy_reason
add_read_ns(struct req_scan *s, const char *db, uint32_t db_len, const char *coll,
            uint32_t coll_len)
{
    struct cache_read *r = s->read;

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

bool
cache_policy_ns_value(const bson_iter_t *value, enum wire_name coll_key, const char *def_db,
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
        enum wire_name id = key_id(&it);

        if (id == WIRE_NAME_DB) {
            if (!BSON_ITER_HOLDS_UTF8(&it))
                return false;
            *db = bson_iter_utf8(&it, db_len);
        } else if (id == coll_key) {
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

        if (!key_is(&it, WIRE_NAME_FROM))
            continue;
        if (!cache_policy_ns_value(&it, WIRE_NAME_COLL, s->db, s->db_len, &db, &db_len, &coll, &coll_len, &found) ||
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

    if (!cache_policy_ns_value(stage, WIRE_NAME_COLL, s->db, s->db_len, &db, &db_len, &coll, &coll_len, &found))
        return CACHE_POLICY_NO_COLLECTION;
    return found ? add_read_ns(s, db, db_len, coll, coll_len) : CACHE_POLICY_OK;
}

/* Judges an element whose key starts with '$'. */
static enum cache_policy_reason
scan_operator(struct req_scan *s, const bson_iter_t *it)
{
    enum wire_name id = key_id(it);

    switch (id) {
    case WIRE_NAME_DOLLAR_META:
        if (BSON_ITER_HOLDS_UTF8(it) && strcmp(bson_iter_utf8(it, NULL), "randVal") == 0)
            return CACHE_POLICY_NONDETERMINISTIC;
        return CACHE_POLICY_OK;
    case WIRE_NAME_DOLLAR_LOOKUP:
        return scan_lookup(s, it, false);
    case WIRE_NAME_DOLLAR_GRAPH_LOOKUP:
        return scan_lookup(s, it, true);
    case WIRE_NAME_DOLLAR_UNION_WITH:
        return scan_union_with(s, it);
    default:
        return operator_reason(id);
    }
}

static enum cache_policy_reason scan_doc(struct req_scan *s, const uint8_t *doc, uint32_t len,
                                         bool sift);
static enum cache_policy_reason scan_element(struct req_scan *s, const struct wire_cmd_elem *e);

/* A string value naming a variable whose value changes from one run to the next. */
static enum cache_policy_reason
scan_string(const char *str, uint32_t len)
{
    /* Every volatile variable starts with "$$" (volatile_vars): most strings end here. */
    if (len < 2 || str[0] != '$' || str[1] != '$')
        return CACHE_POLICY_OK;
    for (const char *const *v = volatile_vars; *v; v++) {
        if (starts_with(str, len, *v))
            return CACHE_POLICY_NONDETERMINISTIC;
    }
    return CACHE_POLICY_OK;
}

/*
 * scan_operator on the element e, through a bson_iter placed on it. Not
 * inlined: a bson_iter_t is aligned to 128 bytes, and only these few
 * operators need one, so judge_element's frame stays small.
 */
static __attribute__((noinline)) enum cache_policy_reason
scan_operator_at(struct req_scan *s, const struct wire_cmd_elem *e)
{
    bson_iter_t it;

    if (!wire_cmd_elem_iter(e, &it))
        return CACHE_POLICY_NOT_A_READ;
    return scan_operator(s, &it);
}

/* The stages judged by what their value names (scan_operator_at), not by their key alone. */
static inline bool
judged_at(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_DOLLAR_META:
    case WIRE_NAME_DOLLAR_LOOKUP:
    case WIRE_NAME_DOLLAR_GRAPH_LOOKUP:
    case WIRE_NAME_DOLLAR_UNION_WITH:
        return true;
    default:
        return false;
    }
}

/*
 * Judges one element of the body at any depth, and what is inside it, read
 * in place (e->id is needed only when its key starts with '$'): a nested
 * document is read with wire_reader, and a bson_iter is placed on the
 * element only for the operators that read their arguments. sift: first
 * look for a '$' byte in a nested document's bytes (scan_doc); passed for
 * the top-level elements only, so no byte is sifted twice.
 */
static inline __attribute__((always_inline)) enum cache_policy_reason
judge_element(struct req_scan *s, const struct wire_cmd_elem *e, bool sift)
{
    uint32_t value_len = e->len - 2 - e->key_len;
    enum cache_policy_reason r;
    int32_t n;

    if (e->key[0] == '$') {
        r = judged_at(e->id) ? scan_operator_at(s, e) : operator_reason(e->id);
        if (r != CACHE_POLICY_OK)
            return r;
    }
    switch (e->type) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        return scan_doc(s, e->value, value_len, sift);
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL:
        /* int32 length (with the NUL), then the bytes: in bounds in a checked body. */
        n = value_len >= 5 ? wire_frame_read_i32(e->value) : 0;
        return n < 1 || (uint32_t)n > value_len - 4
                   ? CACHE_POLICY_NOT_A_READ
                   : scan_string((const char *)e->value + 4, (uint32_t)n - 1);
    default:
        return CACHE_POLICY_OK;
    }
}

/* judge_element below the top level: out of line, as it recurses. */
static enum cache_policy_reason
scan_element(struct req_scan *s, const struct wire_cmd_elem *e)
{
    return judge_element(s, e, false);
}

/*
 * Judges every element of the document at doc (len bytes): the first reason
 * found. sift: when no byte of its elements is a '$', nothing in it can
 * be refused or add a namespace (every reason judge_element finds starts
 * at a '$': an operator's or stage's key, a "$$" variable; the reader
 * checks each string's length itself), so it is OK without the walk: most
 * filters, lsid, $clusterTime and $readPreference.
 */
static enum cache_policy_reason
scan_doc(struct req_scan *s, const uint8_t *doc, uint32_t len, bool sift)
{
    struct wire_reader r;
    struct wire_cmd_elem e;
    int32_t n;

    /* The elements lie between the length and the final NUL: sifted where
     * wire_reader_init would place its reader, without one. */
    if (sift && len >= 5 && (n = wire_frame_read_i32(doc)) >= 5 && (uint32_t)n <= len &&
        doc[n - 1] == 0 && memchr(doc + 4, '$', (size_t)n - 5) == NULL)
        return CACHE_POLICY_OK;
    if (!wire_reader_init(&r, doc, len))
        return CACHE_POLICY_NOT_A_READ;
    e.doc = doc;
    e.doc_len = len;
    while (wire_reader_next(&r)) {
        enum cache_policy_reason reason;

        e.start = (const uint8_t *)r.key - 1;
        e.len = (uint32_t)(r.value + r.value_len - e.start);
        e.type = r.type;
        e.key = r.key;
        e.key_len = r.key_len;
        e.id = r.key[0] == '$' ? wire_names_lookup(r.key, r.key_len) : WIRE_NAME_UNKNOWN;
        e.value = r.value;
        reason = scan_element(s, &e);
        if (reason != CACHE_POLICY_OK)
            return reason;
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
        switch (key_id(&it)) {
        case WIRE_NAME_LEVEL:
            if (!BSON_ITER_HOLDS_UTF8(&it) || !in_list(bson_iter_utf8(&it, NULL), levels))
                r = worst(r, CACHE_POLICY_READ_CONCERN);
            break;
        case WIRE_NAME_AFTER_CLUSTER_TIME:
        case WIRE_NAME_AT_CLUSTER_TIME:
        case WIRE_NAME_AFTER_OP_TIME:
            r = worst(r, CACHE_POLICY_CLUSTER_TIME);
            break;
        default:
            r = worst(r, CACHE_POLICY_READ_CONCERN);
            break;
        }
    }
    return r;
}

/*
 * An option's value read through a bson_iter: readConcern's document, or a
 * flag that counts when true (reason). Not inlined, as scan_operator_at.
 */
static __attribute__((noinline)) enum cache_policy_reason
check_option_value(const struct wire_cmd_elem *e, enum cache_policy_reason reason)
{
    bson_iter_t it;

    if (!wire_cmd_elem_iter(e, &it))
        return reason == CACHE_POLICY_READ_CONCERN ? reason : CACHE_POLICY_OK;
    if (reason == CACHE_POLICY_READ_CONCERN)
        return check_read_concern(&it);
    return bson_iter_as_bool(&it) ? reason : CACHE_POLICY_OK;
}

/*
 * The top-level options judged (session, read concern, cursor flags): the
 * reason each can give, by its key alone (OK: not an option judged). The
 * one list of them: check_option and plain_element both read it.
 */
static inline enum cache_policy_reason
option_reason(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_TXN_NUMBER:
    case WIRE_NAME_AUTOCOMMIT:
    case WIRE_NAME_START_TRANSACTION:
        return CACHE_POLICY_TRANSACTION;
    case WIRE_NAME_READ_CONCERN:
        return CACHE_POLICY_READ_CONCERN;
    case WIRE_NAME_TAILABLE:
    case WIRE_NAME_AWAIT_DATA:
        return CACHE_POLICY_TAILABLE;
    case WIRE_NAME_EXHAUST:
        return CACHE_POLICY_EXHAUST;
    case WIRE_NAME_ALLOW_PARTIAL_RESULTS:
        return CACHE_POLICY_PARTIAL;
    case WIRE_NAME_EXPLAIN:
        return CACHE_POLICY_EXPLAIN;
    default:
        return CACHE_POLICY_OK;
    }
}

/* Judges one top-level option (session, read concern, cursor flags). */
static enum cache_policy_reason
check_option(const struct wire_cmd_elem *e)
{
    enum cache_policy_reason r = option_reason(e->id);

    if (r == CACHE_POLICY_OK || r == CACHE_POLICY_TRANSACTION)
        return r; /* a transaction's fields count whatever their value */
    return check_option_value(e, r); /* readConcern's document, or a flag counted when true */
}

/* True when the element is a string comment asking to skip the cache. */
static bool
skip_requested(const struct wire_cmd_elem *e)
{
    int32_t n;

    if (e->id != WIRE_NAME_COMMENT || e->type != BSON_TYPE_UTF8)
        return false;
    n = wire_frame_read_i32(e->value); /* with its NUL; checked by the parse */
    return n >= 1 &&
           starts_with((const char *)e->value + 4, (uint32_t)n - 1, CACHE_POLICY_SKIP_COMMENT);
}

/*
 * Whether the top-level element i of cmd's body (data) is plainly fine:
 * every check of judge_request's loop would find nothing in it, so the
 * loop need not read it as a wire_cmd_elem. That is: its key is no option
 * check_option judges nor the comment (skip_requested), nor an operator or
 * stage judge_element judges by its key; its value is no document
 * or array holding a '$' byte (scan_doc's sift, the same test), no string
 * starting with "$$" (scan_string), and well formed where judge_element
 * would find it malformed. False sends the element through the loop's
 * checks, so a false that could be true only costs time; fuzz_client_msg
 * and test_cache_policy compare this way with the walk of every element.
 */
static inline bool
plain_element(const struct wire_cmd *cmd, const uint8_t *data, uint32_t i)
{
    uint32_t off = cmd->elem_off[i], key_len = cmd->elem_key_len[i];
    uint32_t end = i + 1 < cmd->n_elems ? cmd->elem_off[i + 1] : cmd->body_len - 1;
    const uint8_t *p = data + off, *v = p + 2 + key_len;
    uint32_t value_len = end - off - 2 - key_len;
    enum wire_name id = (enum wire_name)cmd->elem_id[i];
    int32_t n;

    /* judge_element's operators and stages (not $db, $readPreference, ...) */
    if (p[1] == '$' && (judged_at(id) || operator_reason(id) != CACHE_POLICY_OK))
        return false;
    /* check_option's options, and skip_requested's comment */
    if (option_reason(id) != CACHE_POLICY_OK || id == WIRE_NAME_COMMENT)
        return false;
    switch (p[0]) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        return value_len >= 5 && (n = wire_frame_read_i32(v)) >= 5 && (uint32_t)n <= value_len &&
               v[n - 1] == 0 && memchr(v + 4, '$', (size_t)n - 5) == NULL;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL:
        return value_len >= 5 && (n = wire_frame_read_i32(v)) >= 1 &&
               (uint32_t)n <= value_len - 4 && !(n >= 3 && v[4] == '$' && v[5] == '$');
    default:
        return true;
    }
}

static enum cache_policy_reason
judge_request(const bson_t *body, const struct wire_cmd *parsed, const char *db,
              uint32_t n_sequences, struct req_scan *s)
{
    const uint8_t *data = bson_get_data(body);
    struct wire_cmd own;
    const struct wire_cmd *cmd = parsed;
    struct wire_cmd_walk walk;
    struct wire_cmd_elem e;
    bson_error_t error;
    enum cache_policy_reason r = CACHE_POLICY_OK, option = CACHE_POLICY_OK;
    bool skip = false;

    if (!cmd) {
        if (!wire_cmd_parse(data, body->len, &own, &error))
            return CACHE_POLICY_NOT_A_READ;
        cmd = &own;
    }
    switch (cmd->name_id) {
    case WIRE_NAME_EXPLAIN:
        return CACHE_POLICY_EXPLAIN;
#define READ_CASE(id) case id:
        CACHE_POLICY_READS(READ_CASE)
#undef READ_CASE
        break;
    default:
        return CACHE_POLICY_NOT_A_READ;
    }
    if (db) {
        s->db = db;
        s->db_len = db == cmd->db ? cmd->db_len : (uint32_t)strlen(db); /* no NUL in $db */
    } else if (cmd->db) {
        s->db = cmd->db;
        s->db_len = cmd->db_len;
    }
    if (!cmd->coll || cmd->coll_len == 0 || s->db_len == 0)
        return CACHE_POLICY_NO_COLLECTION;
    if (cmd->has_duplicate_top_level_key)
        return CACHE_POLICY_DUPLICATE_FIELD;
    if (n_sequences > 0)
        return CACHE_POLICY_SEQUENCES;
    r = add_read_ns(s, s->db, s->db_len, cmd->coll, cmd->coll_len);
    if (r != CACHE_POLICY_OK)
        return r;

    /* One pass over the top-level elements as the parse found them (walked
     * again only when it could not keep them all). Of what it finds, the
     * skip comment wins, then the options, then the first operator or
     * stage at any depth, which ends the scan (not the pass). */
    wire_cmd_walk_init(&walk, cmd, data, body->len);
    for (uint32_t i = 0;; i++) {
        if (walk.cmd) {
            /* The parse's records: an element is read only when it is not plainly fine. */
            if (i == cmd->n_elems)
                break;
            if (plain_element(cmd, data, i))
                continue;
            walk.i = i;
        }
        if (!wire_cmd_walk_next(&walk, &e))
            break;
        skip = skip || skip_requested(&e);
        option = worst(option, check_option(&e));
        if (r == CACHE_POLICY_OK)
            r = judge_element(s, &e, true); /* inlined: runs for every top-level element */
    }
    if (skip)
        return CACHE_POLICY_SKIP_REQUESTED;
    return option != CACHE_POLICY_OK ? option : r;
}

enum cache_policy_reason
cache_policy_request(const bson_t *body, const struct wire_cmd *cmd, const char *db,
                     uint32_t n_sequences, struct cache_read *read)
{
    struct cache_read local;
    struct req_scan s;
    enum cache_policy_reason r;

    /* Namespaces go straight to the caller's read: only n_ns needs setting. */
    s.db = "";
    s.db_len = 0;
    s.read = read ? read : &local;
    s.read->n_ns = 0;
    r = judge_request(body, cmd, db, n_sequences, &s);
    if (r != CACHE_POLICY_OK)
        s.read->n_ns = 0;
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
        if (!key_is(&it, WIRE_NAME_ID))
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
        enum wire_name id = key_id(&it);

        if (id == WIRE_NAME_OK) {
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
        } else if (id == WIRE_NAME_WRITE_CONCERN_ERROR) {
            wce = true;
        } else if (id == WIRE_NAME_CURSOR) {
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
