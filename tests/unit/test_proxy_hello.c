/*
 * tests/unit/test_proxy_hello.c: the handshake persona (proxy/hello.c).
 *
 * The persona follows what is behind the proxy. FerretDB, the integration
 * tests' upstream, accepts txnNumber on a standalone and never sends most
 * of mongod's fields, so mongod's own replies are recorded here, written
 * from the documented shapes of the hello command's output (MongoDB 7.0
 * manual, "hello": fields common to all instances, "Sharded Instances",
 * "Replica Sets") and the server types of the SDAM specification
 * ("Parsing a hello or legacy hello response"): a standalone mongod 7, a
 * replica set's primary, secondary, arbiter, hidden member and an
 * uninitialised member (RSGhost), a mongos, and a legacy isMaster reply.
 *
 * For each: the upstream kind read from it, the persona chosen, and the
 * exact set of fields the client gets: every field either comes from the
 * upstream unchanged (same type, same value) or is one the persona is
 * documented to add (msg, serviceId, ok); every upstream field is either
 * kept or one the persona is documented to drop. Then the size limits
 * (max_message_size below the server's), error replies, and the client's
 * side (proxy_hello_prepare).
 */
#include "proxy/hello.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>

#define MAX_MSG 48000000
#define MAX_BSON (16 * 1024 * 1024)

static bool
has(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, doc, key);
}

static bool
in_list(const char *key, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* Appends " key" to the list in buf (size bytes, truncated when full). */
static void
add_key(char *buf, size_t size, const char *key)
{
    size_t used = strlen(buf);

    if (used + 1 < size)
        bson_snprintf(buf + used, size - used, " %s", key);
}

/* The element key of a and of b: same BSON type and same value. */
static bool
same_element(const bson_t *a, const bson_t *b, const char *key)
{
    bson_iter_t ia, ib;
    bson_t da = BSON_INITIALIZER, db = BSON_INITIALIZER;
    bool same;

    if (!bson_iter_init_find(&ia, a, key) || !bson_iter_init_find(&ib, b, key))
        return false;
    bson_append_iter(&da, key, -1, &ia);
    bson_append_iter(&db, key, -1, &ib);
    same = bson_equal(&da, &db);
    bson_destroy(&da);
    bson_destroy(&db);
    return same;
}

static int64_t
int_field(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        return -1;
    return bson_iter_as_int64(&it);
}

static const char *
str_field(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return "";
    return bson_iter_utf8(&it, NULL);
}

/* ---- recorded replies ----------------------------------------------------
 * Values are the documented defaults of MongoDB 7.0 (wire version 21); the
 * addresses, ids and times are made up. */

static bson_oid_t process_id;
static uint8_t zero_hash[20];

/* The fields every mongod/mongos 7.0 hello reply has, before ok. */
static void
append_common(bson_t *b, int64_t counter)
{
    BCON_APPEND(b, "topologyVersion", "{", "processId", BCON_OID(&process_id), "counter",
                BCON_INT64(counter), "}", "maxBsonObjectSize", BCON_INT32(MAX_BSON),
                "maxMessageSizeBytes", BCON_INT32(MAX_MSG), "maxWriteBatchSize",
                BCON_INT32(100000), "localTime", BCON_DATE_TIME(1767225600000),
                "logicalSessionTimeoutMinutes", BCON_INT32(30), "connectionId", BCON_INT32(12),
                "minWireVersion", BCON_INT32(0), "maxWireVersion", BCON_INT32(21), "readOnly",
                BCON_BOOL(false));
}

/* What a replica-set member or a mongos adds after ok: the signed cluster time. */
static void
append_cluster_time(bson_t *b)
{
    BCON_APPEND(b, "$clusterTime", "{", "clusterTime", BCON_TIMESTAMP(1767225600, 1),
                "signature", "{", "hash", BCON_BIN(BSON_SUBTYPE_BINARY, zero_hash, 20), "keyId",
                BCON_INT64(0), "}", "}", "operationTime", BCON_TIMESTAMP(1767225600, 1));
}

static void
append_last_write(bson_t *b)
{
    BCON_APPEND(b, "lastWrite", "{", "opTime", "{", "ts", BCON_TIMESTAMP(1767225600, 1), "t",
                BCON_INT64(3), "}", "lastWriteDate", BCON_DATE_TIME(1767225600000),
                "majorityOpTime", "{", "ts", BCON_TIMESTAMP(1767225600, 1), "t", BCON_INT64(3),
                "}", "majorityWriteDate", BCON_DATE_TIME(1767225600000), "}");
}

static void
append_set(bson_t *b, const char *me)
{
    BCON_APPEND(b, "hosts", "[", BCON_UTF8("db1.example.net:27017"),
                BCON_UTF8("db2.example.net:27017"), "]", "arbiters", "[",
                BCON_UTF8("db3.example.net:27017"), "]", "setName", BCON_UTF8("rs0"),
                "setVersion", BCON_INT32(4), "primary", BCON_UTF8("db1.example.net:27017"), "me",
                BCON_UTF8(me));
}

static bson_t *
standalone_reply(void)
{
    bson_t *b = BCON_NEW("isWritablePrimary", BCON_BOOL(true));

    append_common(b, 0);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    return b;
}

static bson_t *
primary_reply(void)
{
    bson_t *b = bson_new();
    bson_oid_t election;

    bson_oid_init_from_string(&election, "7fffffff0000000000000003");
    BCON_APPEND(b, "topologyVersion", "{", "processId", BCON_OID(&process_id), "counter",
                BCON_INT64(6), "}");
    append_set(b, "db1.example.net:27017");
    BCON_APPEND(b, "isWritablePrimary", BCON_BOOL(true), "secondary", BCON_BOOL(false),
                "electionId", BCON_OID(&election));
    append_last_write(b);
    BCON_APPEND(b, "maxBsonObjectSize", BCON_INT32(MAX_BSON), "maxMessageSizeBytes",
                BCON_INT32(MAX_MSG), "maxWriteBatchSize", BCON_INT32(100000), "localTime",
                BCON_DATE_TIME(1767225600000), "logicalSessionTimeoutMinutes", BCON_INT32(30),
                "connectionId", BCON_INT32(12), "minWireVersion", BCON_INT32(0),
                "maxWireVersion", BCON_INT32(21), "readOnly", BCON_BOOL(false), "ok",
                BCON_DOUBLE(1.0));
    append_cluster_time(b);
    return b;
}

static bson_t *
secondary_reply(void)
{
    bson_t *b = bson_new();

    BCON_APPEND(b, "topologyVersion", "{", "processId", BCON_OID(&process_id), "counter",
                BCON_INT64(4), "}");
    append_set(b, "db2.example.net:27017");
    BCON_APPEND(b, "isWritablePrimary", BCON_BOOL(false), "secondary", BCON_BOOL(true), "tags",
                "{", "dc", BCON_UTF8("east"), "}");
    append_last_write(b);
    BCON_APPEND(b, "maxBsonObjectSize", BCON_INT32(MAX_BSON), "maxMessageSizeBytes",
                BCON_INT32(MAX_MSG), "maxWriteBatchSize", BCON_INT32(100000), "localTime",
                BCON_DATE_TIME(1767225600000), "logicalSessionTimeoutMinutes", BCON_INT32(30),
                "connectionId", BCON_INT32(12), "minWireVersion", BCON_INT32(0),
                "maxWireVersion", BCON_INT32(21), "readOnly", BCON_BOOL(false), "ok",
                BCON_DOUBLE(1.0));
    append_cluster_time(b);
    return b;
}

static bson_t *
arbiter_reply(void)
{
    bson_t *b = bson_new();

    append_set(b, "db3.example.net:27017");
    BCON_APPEND(b, "isWritablePrimary", BCON_BOOL(false), "secondary", BCON_BOOL(false),
                "arbiterOnly", BCON_BOOL(true));
    append_common(b, 2);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    return b;
}

static bson_t *
hidden_reply(void)
{
    bson_t *b = bson_new();

    append_set(b, "db4.example.net:27017");
    BCON_APPEND(b, "isWritablePrimary", BCON_BOOL(false), "secondary", BCON_BOOL(true),
                "passive", BCON_BOOL(true), "hidden", BCON_BOOL(true));
    append_last_write(b);
    append_common(b, 2);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    append_cluster_time(b);
    return b;
}

/* mongod --replSet rs0 before rs.initiate(). */
static bson_t *
ghost_reply(void)
{
    bson_t *b = BCON_NEW("isWritablePrimary", BCON_BOOL(false), "secondary", BCON_BOOL(false),
                         "info", BCON_UTF8("Does not have a valid replica set config"),
                         "isreplicaset", BCON_BOOL(true));

    append_common(b, 0);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    return b;
}

static bson_t *
mongos_reply(void)
{
    bson_t *b = BCON_NEW("isWritablePrimary", BCON_BOOL(true), "msg", BCON_UTF8("isdbgrid"));

    append_common(b, 0);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    append_cluster_time(b);
    return b;
}

/* A legacy isMaster (helloOk: true) from a replica-set primary: ismaster, not isWritablePrimary. */
static bson_t *
legacy_primary_reply(void)
{
    bson_t *b = BCON_NEW("helloOk", BCON_BOOL(true), "ismaster", BCON_BOOL(true), "setName",
                         BCON_UTF8("rs0"), "hosts", "[", BCON_UTF8("db1.example.net:27017"), "]",
                         "primary", BCON_UTF8("db1.example.net:27017"), "me",
                         BCON_UTF8("db1.example.net:27017"), "secondary", BCON_BOOL(false));

    append_common(b, 0);
    BCON_APPEND(b, "ok", BCON_DOUBLE(1.0));
    return b;
}

/* A legacy isMaster from a standalone mongod 7 that also lists the compression it agreed. */
static bson_t *
legacy_standalone_reply(void)
{
    bson_t *b = BCON_NEW("helloOk", BCON_BOOL(true), "ismaster", BCON_BOOL(true));

    append_common(b, 0);
    BCON_APPEND(b, "compression", "[", BCON_UTF8("zstd"), "]", "saslSupportedMechs", "[",
                BCON_UTF8("SCRAM-SHA-256"), "]", "speculativeAuthenticate", "{",
                "conversationId", BCON_INT32(1), "done", BCON_BOOL(false), "payload",
                BCON_BIN(BSON_SUBTYPE_BINARY, zero_hash, 4), "}", "ok", BCON_DOUBLE(1.0));
    return b;
}

/* ---- the table ----------------------------------------------------------- */

static const char *const drop_always[] = {"topologyVersion", "compression", NULL};
static const char *const drop_member[] = {
    "topologyVersion", "compression", "setName", "setVersion", "hosts", "passives", "arbiters",
    "primary", "me", "secondary", "arbiterOnly", "passive", "hidden", "tags", "electionId",
    "lastWrite", "isreplicaset", NULL};
static const char *const add_none[] = {"ok", NULL};
static const char *const add_msg[] = {"msg", "ok", NULL};

struct reply_case {
    const char *name;
    bson_t *(*make)(void);
    enum proxy_hello_upstream upstream;
    enum proxy_hello_persona persona;
    const char *const *dropped; /* upstream fields the client must not get */
    const char *const *added;   /* fields the proxy may set itself */
    const char *msg;            /* the msg the client sees ("" for none) */
};

static const struct reply_case cases[] = {
    {"standalone mongod 7", standalone_reply, PROXY_HELLO_UPSTREAM_STANDALONE,
     PROXY_HELLO_PERSONA_STANDALONE, drop_always, add_none, ""},
    {"legacy isMaster, standalone", legacy_standalone_reply, PROXY_HELLO_UPSTREAM_STANDALONE,
     PROXY_HELLO_PERSONA_STANDALONE, drop_always, add_none, ""},
    {"replica-set primary", primary_reply, PROXY_HELLO_UPSTREAM_RS_PRIMARY,
     PROXY_HELLO_PERSONA_MONGOS, drop_member, add_msg, "isdbgrid"},
    {"legacy isMaster, primary", legacy_primary_reply, PROXY_HELLO_UPSTREAM_RS_PRIMARY,
     PROXY_HELLO_PERSONA_MONGOS, drop_member, add_msg, "isdbgrid"},
    {"replica-set secondary", secondary_reply, PROXY_HELLO_UPSTREAM_RS_SECONDARY,
     PROXY_HELLO_PERSONA_MONGOS, drop_member, add_msg, "isdbgrid"},
    {"replica-set arbiter", arbiter_reply, PROXY_HELLO_UPSTREAM_RS_ARBITER,
     PROXY_HELLO_PERSONA_MONGOS, drop_member, add_msg, "isdbgrid"},
    {"hidden member", hidden_reply, PROXY_HELLO_UPSTREAM_RS_OTHER, PROXY_HELLO_PERSONA_MONGOS,
     drop_member, add_msg, "isdbgrid"},
    {"uninitialised member (RSGhost)", ghost_reply, PROXY_HELLO_UPSTREAM_RS_GHOST,
     PROXY_HELLO_PERSONA_MONGOS, drop_member, add_msg, "isdbgrid"},
    {"mongos", mongos_reply, PROXY_HELLO_UPSTREAM_MONGOS, PROXY_HELLO_PERSONA_MONGOS, drop_always,
     add_none, "isdbgrid"},
};

static void
check_case(const struct reply_case *tc, bool load_balanced)
{
    bson_t *reply = tc->make();
    struct proxy_hello_request req = {0};
    struct proxy_hello_self self;
    enum proxy_hello_upstream kind = PROXY_HELLO_UPSTREAM_UNKNOWN;
    enum proxy_hello_persona persona;
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    char extra[256] = "", lost[256] = "", changed[256] = "";
    bson_iter_t sid_it;

    bson_oid_init(&self.service_id, NULL);
    self.max_message_size = MAX_MSG;
    req.load_balanced = load_balanced;
    persona = proxy_hello_rewrite(reply, &req, &self, &out, &kind);
    if (!load_balanced) {
        ok(proxy_hello_classify(reply) == tc->upstream && kind == tc->upstream,
           "%s: upstream read as %s (got %s)", tc->name, proxy_hello_upstream_name(tc->upstream),
           proxy_hello_upstream_name(kind));
        ok(persona == tc->persona, "%s: persona %s (got %s)", tc->name,
           proxy_hello_persona_name(tc->persona), proxy_hello_persona_name(persona));
    }

    /* Every field the client gets is the upstream's own, or one the persona adds. */
    bson_iter_init(&it, &out);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "serviceId") == 0 && load_balanced)
            continue;
        if (!has(reply, key)) {
            if (!in_list(key, tc->added))
                add_key(extra, sizeof extra, key);
        } else if (!same_element(reply, &out, key) && strcmp(key, "ok") != 0) {
            add_key(changed, sizeof changed, key);
        }
    }
    /* Every upstream field reaches the client unless the persona drops it. */
    bson_iter_init(&it, reply);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (!has(&out, key) && !in_list(key, tc->dropped))
            add_key(lost, sizeof lost, key);
        if (has(&out, key) && in_list(key, tc->dropped))
            add_key(extra, sizeof extra, key);
    }
    ok(extra[0] == '\0', "%s%s: nothing added or kept that the persona must not have [%s]",
       tc->name, load_balanced ? " (loadBalanced)" : "", extra);
    ok(lost[0] == '\0' && changed[0] == '\0',
       "%s%s: every other upstream field kept as sent [lost: %s changed: %s]", tc->name,
       load_balanced ? " (loadBalanced)" : "", lost, changed);
    ok(strcmp(str_field(&out, "msg"), tc->msg) == 0, "%s%s: msg is \"%s\" (got \"%s\")",
       tc->name, load_balanced ? " (loadBalanced)" : "", tc->msg, str_field(&out, "msg"));
    if (load_balanced)
        ok(bson_iter_init_find(&sid_it, &out, "serviceId") && BSON_ITER_HOLDS_OID(&sid_it) &&
               bson_oid_equal(bson_iter_oid(&sid_it), &self.service_id),
           "%s (loadBalanced): the proxy's serviceId", tc->name);
    else
        ok(!has(&out, "serviceId"), "%s: no serviceId for a client that is not load balanced",
           tc->name);
    ok(bson_iter_init_find(&it, &out, "ok") && bson_iter_as_double(&it) == 1.0 &&
           !bson_iter_next(&it),
       "%s%s: ok:1 comes last", tc->name, load_balanced ? " (loadBalanced)" : "");
    bson_destroy(&out);
    bson_destroy(reply);
}

static void
test_replies(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(&cases[i], false);
        check_case(&cases[i], true);
    }
}

/* The drivers' rule: retryable writes (txnNumber) only when the type is not Standalone. */
static void
test_standalone_never_mongos(void)
{
    bson_t *reply = standalone_reply();
    struct proxy_hello_request req = {0};
    struct proxy_hello_self self = {.max_message_size = MAX_MSG};
    bson_t out = BSON_INITIALIZER;

    (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
    ok(proxy_hello_classify(&out) == PROXY_HELLO_UPSTREAM_STANDALONE,
       "a standalone's reply, rewritten, is still read as a standalone by SDAM's rules");
    ok(!has(&out, "setName") && !has(&out, "msg") && !has(&out, "isreplicaset"),
       "nothing that would make a driver see a mongos or a replica set");
    ok(has(&out, "logicalSessionTimeoutMinutes"),
       "sessions stay available (logicalSessionTimeoutMinutes kept)");
    bson_destroy(&out);
    bson_destroy(reply);
}

static void
test_error_unchanged(void)
{
    bson_t *reply = BCON_NEW("ok", BCON_DOUBLE(0.0), "errmsg", BCON_UTF8("no"), "setName",
                             BCON_UTF8("rs0"), "topologyVersion", "{", "counter", BCON_INT64(1),
                             "}", "code", BCON_INT32(13));
    struct proxy_hello_request req = {.load_balanced = true};
    struct proxy_hello_self self = {.max_message_size = 1000};
    enum proxy_hello_upstream kind;
    bson_t out = BSON_INITIALIZER;

    bson_oid_init(&self.service_id, NULL);
    ok(proxy_hello_rewrite(reply, &req, &self, &out, &kind) == PROXY_HELLO_PERSONA_NONE &&
           kind == PROXY_HELLO_UPSTREAM_UNKNOWN,
       "an error reply gets no persona");
    ok(bson_equal(&out, reply), "an error reply is relayed unchanged");
    bson_destroy(&out);
    bson_destroy(reply);
}

/* Item 10: the limits drivers split their batches by never exceed the proxy's. */
static void
test_limits(void)
{
    static const int64_t proxy_max[] = {2000000, 100000, 32768, 1000, 16};
    bson_t *(*const makers[])(void) = {standalone_reply, primary_reply, mongos_reply};
    struct proxy_hello_request req = {0};
    struct proxy_hello_self self;
    bson_t out = BSON_INITIALIZER;
    bson_t *reply;

    bson_oid_init(&self.service_id, NULL);

    /* At the default limit, nothing changes (values and BSON types). */
    reply = standalone_reply();
    self.max_message_size = MAX_MSG;
    (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
    ok(same_element(reply, &out, "maxMessageSizeBytes") &&
           same_element(reply, &out, "maxBsonObjectSize") &&
           same_element(reply, &out, "maxWriteBatchSize"),
       "max_message_size 48000000: the server's limits pass unchanged");
    bson_destroy(&out);
    bson_destroy(reply);

    for (size_t m = 0; m < sizeof makers / sizeof makers[0]; m++) {
        for (size_t i = 0; i < sizeof proxy_max / sizeof proxy_max[0]; i++) {
            int64_t msg, obj;

            reply = makers[m]();
            bson_init(&out);
            self.max_message_size = proxy_max[i];
            (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
            msg = int_field(&out, "maxMessageSizeBytes");
            obj = int_field(&out, "maxBsonObjectSize");
            ok(msg == proxy_max[i], "%s, max_message_size %lld: maxMessageSizeBytes %lld",
               m == 0 ? "standalone" : m == 1 ? "primary" : "mongos", (long long)proxy_max[i],
               (long long)msg);
            ok(obj > 0 && obj < proxy_max[i] &&
                   (proxy_max[i] < 2 * (16 * 1024 + 64) || obj + 16 * 1024 + 64 <= proxy_max[i]),
               "%s, max_message_size %lld: maxBsonObjectSize %lld, below it with room for the "
               "command and framing when the limit allows",
               m == 0 ? "standalone" : m == 1 ? "primary" : "mongos", (long long)proxy_max[i],
               (long long)obj);
            ok(same_element(reply, &out, "maxWriteBatchSize"), "maxWriteBatchSize untouched");
            bson_destroy(&out);
            bson_destroy(reply);
        }
    }
    ok(proxy_hello_max_bson_size(0, 2000000) == 2000000 - (16 * 1024 + 64) &&
           proxy_hello_max_message_size(0, 2000000) == 2000000,
       "2000000: maxBsonObjectSize 1983552, maxMessageSizeBytes 2000000");
    ok(proxy_hello_max_bson_size(8000000, 48000000) == 8000000 &&
           proxy_hello_max_message_size(30000000, 48000000) == 30000000,
       "a server's limits below the proxy's stay the server's");

    /* A reply without the limits stands for the defaults: added only when lower. */
    reply = BCON_NEW("isWritablePrimary", BCON_BOOL(true), "ok", BCON_DOUBLE(1.0));
    bson_init(&out);
    self.max_message_size = MAX_MSG;
    (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
    ok(!has(&out, "maxMessageSizeBytes") && !has(&out, "maxBsonObjectSize"),
       "limits absent and the proxy's at the default: none added");
    bson_destroy(&out);
    bson_init(&out);
    self.max_message_size = 1000000;
    (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
    ok(int_field(&out, "maxMessageSizeBytes") == 1000000 &&
           int_field(&out, "maxBsonObjectSize") == 1000000 - (16 * 1024 + 64),
       "limits absent and the proxy's lower: the proxy's added");
    bson_destroy(&out);
    bson_destroy(reply);

    /* A limit that is not a number counts as absent (the default), never as zero. */
    reply = BCON_NEW("isWritablePrimary", BCON_BOOL(true), "maxMessageSizeBytes",
                     BCON_UTF8("big"), "ok", BCON_DOUBLE(1.0));
    bson_init(&out);
    self.max_message_size = 1000000;
    (void)proxy_hello_rewrite(reply, &req, &self, &out, NULL);
    ok(int_field(&out, "maxMessageSizeBytes") == 1000000,
       "a non-numeric maxMessageSizeBytes is replaced by the proxy's limit");
    bson_destroy(&out);
    bson_destroy(reply);
}

static void
test_prepare(void)
{
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1), "helloOk", BCON_BOOL(true), "client", "{",
                           "driver", "{", "name", BCON_UTF8("nodejs"), "}", "}", "compression",
                           "[", BCON_UTF8("zstd"), BCON_UTF8("snappy"), "]", "loadBalanced",
                           BCON_BOOL(true), "speculativeAuthenticate", "{", "saslStart",
                           BCON_INT32(1), "}", "$db", BCON_UTF8("admin"));
    bson_t *plain = BCON_NEW("isMaster", BCON_INT32(1), "helloOk", BCON_BOOL(true));
    struct proxy_hello_request req;
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    bool changed;

    changed = proxy_hello_prepare(cmd, &out, &req);
    ok(changed, "a hello with compression and loadBalanced is rewritten");
    ok(!has(&out, "compression"), "compression stripped from the client's hello");
    ok(!has(&out, "loadBalanced"), "loadBalanced stripped from the client's hello");
    ok(req.load_balanced && req.had_compression && req.speculative_auth,
       "the request remembers loadBalanced, compression and speculative auth");
    ok(bson_iter_init(&it, &out) && bson_iter_next(&it) &&
           strcmp(bson_iter_key(&it), "hello") == 0,
       "the command name stays first");
    ok(has(&out, "client") && has(&out, "$db") && has(&out, "speculativeAuthenticate") &&
           has(&out, "helloOk"),
       "every other field is kept");
    bson_destroy(&out);

    bson_init(&out);
    changed = proxy_hello_prepare(plain, &out, &req);
    ok(!changed && bson_equal(&out, plain), "a plain isMaster is forwarded unchanged");
    ok(!req.load_balanced && !req.had_compression && !req.speculative_auth,
       "nothing noted for a plain isMaster");
    bson_destroy(&out);
    bson_destroy(cmd);
    bson_destroy(plain);
}

/* The compression list of a reply as "a,b,c" ("-" when there is none). */
static void
compression_of(const bson_t *reply, char *out, size_t size)
{
    bson_iter_t it, list;

    snprintf(out, size, "-");
    if (!bson_iter_init_find(&it, reply, "compression") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &list))
        return;
    out[0] = '\0';
    while (bson_iter_next(&list)) {
        size_t n = strlen(out);

        snprintf(out + n, size - n, "%s%s", n ? "," : "",
                 BSON_ITER_HOLDS_UTF8(&list) ? bson_iter_utf8(&list, NULL) : "?");
    }
}

/*
 * Compression (OP_COMPRESSED.md "MongoDB Handshake Amendment"): the
 * client's list is read in its order (unknown names and repeats left out),
 * the reply answers with the intersection with what the proxy offers, in
 * the client's order, and the upstream's own list never reaches the client.
 */
static void
test_compression(void)
{
    static const struct {
        const char *name;
        const char *list[6]; /* NULL-terminated; list[0] "-": no compression field */
        uint32_t offer;
        const char *want_ids; /* the ids read, in order */
        const char *want;     /* the reply's list */
        uint32_t agreed;
    } ccases[] = {
        {"all three offered", {"zstd", "zlib", "snappy", NULL}, 0xe, "3,2,1", "zstd,zlib,snappy",
         0xe},
        {"unknown names and repeats skipped", {"lz4", "zlib", "zlib", "snappy", "zstd", NULL},
         0xe, "2,1,3", "zlib,snappy,zstd", 0xe},
        {"the client's order, not the proxy's", {"snappy", "zlib", NULL}, 1u << 2 | 1u << 1,
         "1,2", "snappy,zlib", 0x6},
        {"only what is offered", {"snappy", "zlib", NULL}, 1u << 2, "1,2", "zlib", 0x4},
        {"nothing in common: no field", {"snappy", NULL}, 1u << 2, "1", "-", 0},
        {"an empty list: no field", {NULL}, 0xe, "", "-", 0},
        {"no compression field at all", {"-", NULL}, 0xe, "", "-", 0},
        {"noop when offered", {"noop", "zlib", NULL}, 1u << 0, "0,2", "noop", 0x1},
    };

    for (size_t i = 0; i < sizeof ccases / sizeof ccases[0]; i++) {
        bson_t cmd = BSON_INITIALIZER, list, out = BSON_INITIALIZER, reply_out = BSON_INITIALIZER;
        bson_t *reply = BCON_NEW("ismaster", BCON_BOOL(true), "compression", "[",
                                 BCON_UTF8("snappy"), "]", "ok", BCON_DOUBLE(1));
        struct proxy_hello_request req;
        struct proxy_hello_self self = {.max_message_size = MAX_MSG};
        char ids[64] = "", got[64];

        BSON_APPEND_INT32(&cmd, "hello", 1);
        if (!ccases[i].list[0] || strcmp(ccases[i].list[0], "-") != 0) {
            BSON_APPEND_ARRAY_BEGIN(&cmd, "compression", &list);
            for (int k = 0; ccases[i].list[k]; k++) {
                char key[8];

                snprintf(key, sizeof key, "%d", k);
                BSON_APPEND_UTF8(&list, key, ccases[i].list[k]);
            }
            bson_append_array_end(&cmd, &list);
        }
        (void)proxy_hello_prepare(&cmd, &out, &req);
        for (uint8_t k = 0; k < req.n_compressors; k++)
            snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%u", k ? "," : "",
                     (unsigned)req.compressors[k]);
        is_str(ids, ccases[i].want_ids, "%s: the client's list read in its order", ccases[i].name);
        self.compressors = ccases[i].offer;
        (void)proxy_hello_rewrite(reply, &req, &self, &reply_out, NULL);
        compression_of(&reply_out, got, sizeof got);
        is_str(got, ccases[i].want, "%s: the reply's compression", ccases[i].name);
        is_int(proxy_hello_agreed(&req, ccases[i].offer), ccases[i].agreed, "%s: agreed mask",
               ccases[i].name);
        bson_destroy(&cmd);
        bson_destroy(&out);
        bson_destroy(&reply_out);
        bson_destroy(reply);
    }
}

int
main(void)
{
    bson_oid_init_from_string(&process_id, "65a1b2c3d4e5f60718293a4b");
    test_replies();
    test_standalone_never_mongos();
    test_error_unchanged();
    test_limits();
    test_prepare();
    test_compression();
    return done_testing();
}
