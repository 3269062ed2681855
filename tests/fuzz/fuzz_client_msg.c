/*
 * tests/fuzz/fuzz_client_msg.c: the client's fuzz target: what the
 * proxy does with a client's bytes before it forwards them. The input is
 * the byte stream of one connection; it is cut into messages the way
 * proxy/client.c does (wire_frame_header, then header.length bytes, each
 * copied into a buffer of exactly that size so that ASan sees any read past
 * a message), and each message goes through
 *   OP_MSG:   wire_msg_parse -> wire_cmd_parse -> cache_inval_scope_classify and
 *             cache_policy_request -> cache_key_build (when cacheable) ->
 *             wire_msg_rebuild / wire_msg_clear_flags (hello and exhaust
 *             rewrites) -> wire_reply_restamp of a fixed stored reply (a hit);
 *   OP_QUERY: wire_msg_parse_query -> wire_cmd_parse -> wire_msg_rebuild_query;
 *   others:   the error reply the proxy sends before closing.
 * Properties checked on every input: everything a parser returns points
 * inside the message; a message the proxy rewrites parses again with the
 * same body; a key is a pure function of the command; a restamped reply
 * answers the client's requestID; a $db with a NUL inside (mongod refuses
 * it) is never cacheable; a command that changes data always invalidates
 * something, and a cacheable read nothing. It does not cover the persona
 * (proxy/hello.c), SCRAM observation (proxy/auth.c) or the proxy's own
 * cursors (proxy/cursor.c): those need a connection's state.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"
#include "tests/unit/cmd_same.h"

#include "cache/key.h"
#include "cache/inval_scope.h"
#include "cache/policy.h"
#include "wire/cmd.h"
#include "wire/doc.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <string.h>

/* True when p[0..n) lies inside base[0..len). */
static bool
inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;

    return q >= base && q <= base + len && n <= (size_t)(base + len - q);
}

/* A ns reference from the policy points into the message, and its db is never empty. */
static void
check_ns(const struct cache_ns_ref *ns, bool has_coll, const uint8_t *msg, size_t len)
{
    FUZZ_CHECK(ns->db != NULL && inside(ns->db, ns->db_len, msg, len));
    if (has_coll)
        FUZZ_CHECK(ns->coll != NULL && inside(ns->coll, ns->coll_len, msg, len));
}

/* The reply a hit is served from: built once, restamped on a copy per hit. */
static const uint8_t *
stored_reply(size_t *len)
{
    static uint8_t *bytes;
    static size_t bytes_len;

    if (!bytes) {
        bson_t body = BSON_INITIALIZER, cursor, batch;

        BSON_APPEND_DOCUMENT_BEGIN(&body, "cursor", &cursor);
        BSON_APPEND_ARRAY_BEGIN(&cursor, "firstBatch", &batch);
        bson_append_document_end(&cursor, &batch);
        BSON_APPEND_INT64(&cursor, "id", 0);
        BSON_APPEND_UTF8(&cursor, "ns", "db.coll");
        bson_append_document_end(&body, &cursor);
        BSON_APPEND_DOUBLE(&body, "ok", 1.0);
        bytes = wire_reply_msg(7, 1, &body, &bytes_len);
        bson_destroy(&body);
    }
    *len = bytes_len;
    return bytes;
}

/* A hit: the stored reply with a fresh header answers request_id, and still parses. */
static void
serve_hit(int32_t request_id)
{
    size_t len;
    const uint8_t *stored = stored_reply(&len);
    uint8_t *copy = bson_malloc(len);
    struct wire_msg m;
    bson_error_t error;

    memcpy(copy, stored, len);
    wire_reply_restamp(copy, request_id ^ 0x5a5a, request_id);
    FUZZ_CHECK(wire_msg_parse(copy, len, WIRE_DOC_MAX_DEPTH, &m, &error));
    FUZZ_CHECK(m.header.response_to == request_id);
    FUZZ_CHECK(m.body_len == len - WIRE_HEADER_LEN - 5);
    bson_free(copy);
}

/* The error reply the proxy sends before closing a connection that broke the rules. */
static void
refuse(int32_t request_id, bool legacy)
{
    bson_t body = BSON_INITIALIZER;
    bson_error_t error;
    uint8_t *bytes;
    size_t len;

    wire_reply_error_body(&body, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError", "fuzz");
    if (legacy) {
        struct wire_reply r;

        bytes = wire_reply_op_reply(1, request_id, 0, &body, &len);
        FUZZ_CHECK(wire_msg_parse_reply(bytes, len, WIRE_DOC_MAX_DEPTH, &r, &error));
        FUZZ_CHECK(r.n_returned == 1 && r.header.response_to == request_id);
    } else {
        struct wire_msg m;

        bytes = wire_reply_msg(1, request_id, &body, &len);
        FUZZ_CHECK(wire_msg_parse(bytes, len, WIRE_DOC_MAX_DEPTH, &m, &error));
        FUZZ_CHECK(m.header.response_to == request_id);
    }
    bson_free(bytes);
    bson_destroy(&body);
}

/* A message the proxy forwards in place of msg (hello stripped of fields): it must parse. */
static void
check_rebuild(const struct wire_msg *msg, const bson_t *body)
{
    struct wire_msg again;
    bson_error_t error;
    size_t len;
    uint8_t *bytes = wire_msg_rebuild(msg, body, &len);

    FUZZ_CHECK(bytes != NULL);
    FUZZ_CHECK(wire_msg_parse(bytes, len, WIRE_DOC_MAX_DEPTH, &again, &error));
    FUZZ_CHECK(again.body_len == body->len &&
               memcmp(again.body, bson_get_data(body), body->len) == 0);
    FUZZ_CHECK(again.n_seqs == msg->n_seqs);
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        FUZZ_CHECK(strcmp(again.seqs[i].id, msg->seqs[i].id) == 0);
        FUZZ_CHECK(again.seqs[i].count == msg->seqs[i].count);
    }
    FUZZ_CHECK(again.flags == (msg->flags & ~WIRE_MSG_CHECKSUM_PRESENT));
    bson_free(bytes);
}

/* exhaustAllowed is cleared on the way up, in place: the message stays valid. */
static void
check_clear_exhaust(const uint8_t *data, size_t len)
{
    uint8_t *copy = bson_malloc(len);
    struct wire_msg m;
    bson_error_t error;

    memcpy(copy, data, len);
    wire_msg_clear_flags(copy, len, WIRE_MSG_EXHAUST_ALLOWED);
    FUZZ_CHECK(wire_msg_parse(copy, len, WIRE_DOC_MAX_DEPTH, &m, &error));
    FUZZ_CHECK((m.flags & WIRE_MSG_EXHAUST_ALLOWED) == 0);
    bson_free(copy);
}

/*
 * Commands that change data, so whatever their arguments the proxy must
 * invalidate something (cache/policy.h; bulkWrite, mapReduce and aggregate
 * write only in some forms).
 */
static const char *const writers[] = {
    "insert", "update", "delete", "findAndModify", "findandmodify", "createIndexes",
    "dropIndexes", "deleteIndexes", "drop", "create", "collMod", "convertToCapped",
    "cloneCollectionAsCapped", "dropDatabase", "renameCollection", "createUser", "updateUser",
    "dropUser", "grantRolesToUser", "revokeRolesFromUser", "dropAllUsersFromDatabase",
    "createRole", "updateRole", "dropRole", "dropAllRolesFromDatabase", "grantPrivilegesToRole",
    "revokePrivilegesFromRole", "grantRolesToRole", "revokeRolesFromRole", "applyOps",
    "commitTransaction", "abortTransaction", NULL,
};

static bool
is_writer(const char *name)
{
    for (const char *const *w = writers; *w; w++) {
        if (strcmp(name, *w) == 0)
            return true;
    }
    return false;
}

/* The cache's part: invalidation scope, cacheability, and the key of a cacheable read. */
static void
consult_cache(const struct wire_msg *msg, const struct wire_cmd *cmd, const bson_t *body,
              const uint8_t *data, size_t len)
{
    static struct cache_key_secret secret;
    static bool have_secret;
    const char *ids[WIRE_MSG_MAX_SEQUENCES];
    const uint8_t *docs[WIRE_MSG_MAX_SEQUENCES];
    uint32_t lens[WIRE_MSG_MAX_SEQUENCES];
    struct cache_write write;
    struct cache_read read;
    struct wire_cmd walked;
    enum cache_policy_reason reason;

    if (!have_secret) {
        cache_key_secret_init(&secret, "fuzz");
        have_secret = true;
    }
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        ids[i] = msg->seqs[i].id;
        docs[i] = msg->seqs[i].docs;
        lens[i] = msg->seqs[i].docs_len;
    }
    cache_inval_scope_classify(body, cmd, cmd->db, ids, docs, lens, msg->n_seqs, &write);
    FUZZ_CHECK(write.scope >= CACHE_WRITE_NONE && write.scope <= CACHE_WRITE_TXN_END);
    FUZZ_CHECK(write.n_ns <= CACHE_INVAL_SCOPE_MAX_NS);
    if (write.scope == CACHE_WRITE_NS || write.scope == CACHE_WRITE_DB) {
        for (uint32_t i = 0; i < write.n_ns; i++)
            check_ns(&write.ns[i], write.scope == CACHE_WRITE_NS, data, len);
    }
    if (write.scope == CACHE_WRITE_USER)
        FUZZ_CHECK(write.user != NULL && inside(write.user, write.user_len, data, len));
    if (is_writer(cmd->name))
        FUZZ_CHECK(write.scope != CACHE_WRITE_NONE);

    memset(&read, 0, sizeof read);
    reason = cache_policy_request(body, cmd, cmd->db, msg->n_seqs, &read);
    /* The located elements and a walk of the body judge alike. */
    walked = *cmd;
    walked.elems_all = false;
    FUZZ_CHECK(cache_policy_request(body, &walked, cmd->db, msg->n_seqs, NULL) == reason);
    FUZZ_CHECK((unsigned)reason < CACHE_POLICY_REASON_COUNT);
    FUZZ_CHECK(strcmp(cache_policy_reason_name(reason), "unknown") != 0);
    if (reason == CACHE_POLICY_OK) {
        struct cache_key_material m1 = {0}, m2 = {0}, m3 = {0};
        struct cache_key k1, k2, k3;
        uint64_t d1, d2, d3;

        FUZZ_CHECK(read.n_ns >= 1 && read.n_ns <= CACHE_POLICY_MAX_NAMESPACES);
        FUZZ_CHECK(write.scope == CACHE_WRITE_NONE); /* a cached read never writes */
        for (uint32_t i = 0; i < read.n_ns; i++)
            check_ns(&read.ns[i], true, data, len);
        /* Reads never carry sequences, and a read inside a transaction is never cached. */
        FUZZ_CHECK(msg->n_seqs == 0);
        FUZZ_CHECK(!(cmd->has_txn_number || cmd->has_autocommit));
        for (uint32_t i = 0; i < cmd->n_elems; i++)
            FUZZ_CHECK(cmd->elem_id[i] != WIRE_NAME_START_TRANSACTION);
        FUZZ_CHECK(!cmd->has_duplicate_top_level_key);
        /* The key takes db as a C string and leaves $db out of the body's part: a $db
         * with a NUL inside (which mongod refuses) would share the key of its prefix. */
        FUZZ_CHECK(memchr(cmd->db, '\0', cmd->db_len) == NULL);

        /* From the located elements, then by walking the body: the same material. */
        cache_key_build(&secret, "fuzz@admin", cmd->db, read.ns[0].coll, read.ns[0].coll_len, body,
                        cmd, &m1, &k1, &d1);
        cache_key_build(&secret, "fuzz@admin", cmd->db, read.ns[0].coll, read.ns[0].coll_len, body,
                        &walked, &m2, &k2, &d2);
        FUZZ_CHECK(cache_key_equal(&k1, &k2) && d1 == d2);
        FUZZ_CHECK(m1.len == m2.len && memcmp(m1.data, m2.data, m1.len) == 0);
        /* Hashed as read from the body (a hit: no material), the same key. */
        cache_key_build(&secret, "fuzz@admin", cmd->db, read.ns[0].coll, read.ns[0].coll_len, body,
                        cmd, NULL, &k2, &d2);
        FUZZ_CHECK(cache_key_equal(&k1, &k2) && d1 == d2);
        cache_key_build(&secret, "fuzz@admin", cmd->db, read.ns[0].coll, read.ns[0].coll_len, body,
                        &walked, NULL, &k2, &d2);
        FUZZ_CHECK(cache_key_equal(&k1, &k2) && d1 == d2);
        /* Another principal never shares the material (so never an entry). */
        cache_key_build(&secret, "", cmd->db, read.ns[0].coll, read.ns[0].coll_len, body, NULL, &m3,
                        &k3, &d3);
        FUZZ_CHECK(m3.len != m1.len || memcmp(m3.data, m1.data, m1.len) != 0);
        cache_key_material_cleanup(&m1);
        cache_key_material_cleanup(&m2);
        cache_key_material_cleanup(&m3);
        serve_hit(msg->header.request_id);
    }
}

/*
 * The parse's records of the top-level elements are the elements libbson
 * walks: the same bytes, keys, types and name ids, in order.
 */
static void
check_records(const struct wire_cmd *cmd, const bson_t *body)
{
    struct wire_cmd walked = *cmd;
    struct wire_cmd_walk a, b;
    struct wire_cmd_elem x, y;
    bool more;

    walked.elems_all = false;
    wire_cmd_walk_init(&a, cmd, bson_get_data(body), body->len);
    wire_cmd_walk_init(&b, &walked, bson_get_data(body), body->len);
    do {
        more = wire_cmd_walk_next(&a, &x);
        FUZZ_CHECK(wire_cmd_walk_next(&b, &y) == more);
        if (more)
            FUZZ_CHECK(x.start == y.start && x.len == y.len && x.type == y.type && x.key == y.key &&
                       x.key_len == y.key_len && x.id == y.id && x.value == y.value);
    } while (more && cmd->elems_all);
}

static void
op_msg(const uint8_t *data, size_t len)
{
    struct wire_msg msg;
    struct wire_cmd cmd, located;
    bson_error_t error, located_error;
    bool located_ok;
    bson_t body;

    if (!wire_msg_parse(data, len, WIRE_DOC_MAX_DEPTH, &msg, &error)) {
        FUZZ_CHECK(error.domain == WIRE_ERROR_DOMAIN && error.code != 0);
        return;
    }
    FUZZ_CHECK(msg.body != NULL && msg.body_len >= 5 && inside(msg.body, msg.body_len, data, len));
    FUZZ_CHECK(msg.n_seqs <= WIRE_MSG_MAX_SEQUENCES);
    for (uint32_t i = 0; i < msg.n_seqs; i++) {
        const struct wire_seq *s = &msg.seqs[i];

        FUZZ_CHECK(inside(s->id, strlen(s->id) + 1, data, len));
        FUZZ_CHECK(inside(s->docs, s->docs_len, data, len));
    }
    FUZZ_CHECK(bson_init_static(&body, msg.body, msg.body_len));
    check_rebuild(&msg, &body);
    if (msg.flags & WIRE_MSG_EXHAUST_ALLOWED)
        check_clear_exhaust(data, len);

    /* The proxy parses from the records the body's check made; a walk of the
     * body must give the same command, field for field. */
    located_ok = wire_cmd_parse_top(msg.body, msg.body_len, &msg.top, &located, &located_error);
    if (!wire_cmd_parse(msg.body, msg.body_len, &cmd, &error)) {
        /* Forwarded untouched: the server answers with its own error. A
         * checked body's elements can always be read. */
        FUZZ_CHECK(error.domain == WIRE_ERROR_DOMAIN && error.code != 0 &&
                   error.code != WIRE_ERR_INVALID_BSON);
        FUZZ_CHECK(!located_ok && located_error.code == error.code);
        return;
    }
    FUZZ_CHECK(located_ok && cmd_same(&cmd, &located));
    check_records(&cmd, &body);
    FUZZ_CHECK(cmd.name != NULL && inside(cmd.name, strlen(cmd.name) + 1, msg.body, msg.body_len));
    if (cmd.db)
        FUZZ_CHECK(inside(cmd.db, cmd.db_len + 1, msg.body, msg.body_len));
    if (cmd.coll)
        FUZZ_CHECK(inside(cmd.coll, cmd.coll_len + 1, msg.body, msg.body_len));
    /* The proxy consults the cache only for commands with a $db (w:0 writes too). */
    if (cmd.db)
        consult_cache(&msg, &cmd, &body, data, len);
}

static void
op_query(const uint8_t *data, size_t len)
{
    struct wire_query q;
    struct wire_cmd cmd;
    bson_error_t error;
    size_t name_len;
    bson_t doc;

    if (!wire_msg_parse_query(data, len, WIRE_DOC_MAX_DEPTH, &q, &error))
        return;
    FUZZ_CHECK(inside(q.query, q.query_len, data, len));
    if (q.selector)
        FUZZ_CHECK(inside(q.selector, q.selector_len, data, len));
    name_len = strlen(q.full_collection);
    FUZZ_CHECK(inside(q.full_collection, name_len + 1, data, len));
    if (name_len < 5 || strcmp(q.full_collection + name_len - 5, ".$cmd") != 0 ||
        !wire_cmd_parse(q.query, q.query_len, &cmd, &error) || !wire_cmd_is_hello(cmd.name)) {
        refuse(q.header.request_id, true);
        return;
    }
    /* The handshake is forwarded rebuilt (compression stripped): it must parse again. */
    FUZZ_CHECK(bson_init_static(&doc, q.query, q.query_len));
    {
        struct wire_query again;
        size_t out_len;
        uint8_t *out = wire_msg_rebuild_query(&q, &doc, &out_len);

        FUZZ_CHECK(out != NULL && out_len == len);
        FUZZ_CHECK(wire_msg_parse_query(out, out_len, WIRE_DOC_MAX_DEPTH, &again, &error));
        FUZZ_CHECK(memcmp(out, data, len) == 0);
        bson_free(out);
    }
}

static void
one_message(const uint8_t *data, size_t len, const struct wire_header *h)
{
    switch (h->opcode) {
    case WIRE_OP_MSG:
        op_msg(data, len);
        break;
    case WIRE_OP_QUERY:
        op_query(data, len);
        break;
    case WIRE_OP_COMPRESSED:
        refuse(h->request_id, false);
        break;
    default:
        /* Unknown opcodes close the connection without a reply. */
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The messages of one connection, back to back, as proxy_client_process_input reads them. */
    while (size >= WIRE_HEADER_LEN) {
        struct wire_header h;
        bson_error_t error;
        uint8_t *msg;

        if (wire_frame_header(data, size, WIRE_MAX_MESSAGE_LEN, &h, &error) != WIRE_OK) {
            FUZZ_CHECK(h.length < WIRE_HEADER_LEN || h.length > WIRE_MAX_MESSAGE_LEN);
            break; /* closed */
        }
        FUZZ_CHECK(h.length >= WIRE_HEADER_LEN && h.length <= WIRE_MAX_MESSAGE_LEN);
        if ((size_t)h.length > size)
            break; /* the proxy waits for the rest */
        msg = bson_malloc((size_t)h.length);
        memcpy(msg, data, (size_t)h.length);
        one_message(msg, (size_t)h.length, &h);
        bson_free(msg);
        data += h.length;
        size -= (size_t)h.length;
    }
    return 0;
}
