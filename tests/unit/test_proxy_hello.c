/*
 * tests/unit/test_proxy_hello.c: the mongos persona. A replica-set member's
 * hello reply must lose every topology field (or drivers would connect to
 * the members directly) and keep what drivers need for retryable writes and
 * transactions; the client's hello must lose compression and loadBalanced.
 */
#include "proxy/hello.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>

static bool
has(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, doc, key);
}

static void
test_rewrite_replica_set_member(void)
{
    bson_t *reply = BCON_NEW(
        "isWritablePrimary", BCON_BOOL(true), "topologyVersion", "{", "counter", BCON_INT64(0),
        "}", "hosts", "[", BCON_UTF8("10.0.0.1:27017"), BCON_UTF8("10.0.0.2:27017"), "]",
        "setName", BCON_UTF8("rs0"), "setVersion", BCON_INT32(1), "primary",
        BCON_UTF8("10.0.0.1:27017"), "me", BCON_UTF8("10.0.0.1:27017"), "secondary",
        BCON_BOOL(false), "electionId", BCON_INT32(1), "lastWrite", "{", "}", "maxBsonObjectSize",
        BCON_INT32(16777216), "maxMessageSizeBytes", BCON_INT32(48000000), "maxWriteBatchSize",
        BCON_INT32(100000), "localTime", BCON_DATE_TIME(1), "logicalSessionTimeoutMinutes",
        BCON_INT32(30), "connectionId", BCON_INT32(7), "minWireVersion", BCON_INT32(0),
        "maxWireVersion", BCON_INT32(21), "readOnly", BCON_BOOL(false), "saslSupportedMechs", "[",
        BCON_UTF8("SCRAM-SHA-256"), "]", "speculativeAuthenticate", "{", "conversationId",
        BCON_INT32(1), "done", BCON_BOOL(false), "}", "compression", "[", BCON_UTF8("zlib"), "]",
        "ok", BCON_DOUBLE(1.0));
    struct proxy_hello_request req = {0};
    bson_oid_t sid;
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    static const char *const gone[] = {"hosts", "setName", "setVersion", "primary", "me",
                                       "secondary", "electionId", "lastWrite", "topologyVersion",
                                       "compression", "serviceId"};
    static const char *const kept[] = {"isWritablePrimary", "maxBsonObjectSize",
                                       "maxMessageSizeBytes", "maxWriteBatchSize", "localTime",
                                       "logicalSessionTimeoutMinutes", "connectionId",
                                       "minWireVersion", "maxWireVersion", "readOnly",
                                       "saslSupportedMechs", "speculativeAuthenticate", "ok"};

    bson_oid_init(&sid, NULL);
    proxy_hello_rewrite(reply, &req, &sid, &out);
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        ok(!has(&out, gone[i]), "rewrite drops %s", gone[i]);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        ok(has(&out, kept[i]), "rewrite keeps %s", kept[i]);
    ok(bson_iter_init_find(&it, &out, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0,
       "rewrite says msg: isdbgrid");
    ok(bson_iter_init_find(&it, &out, "maxWireVersion") && bson_iter_int32(&it) == 21,
       "upstream wire version kept as is");
    ok(bson_iter_init_find(&it, &out, "logicalSessionTimeoutMinutes") &&
           bson_iter_int32(&it) == 30,
       "session timeout kept as is");
    bson_destroy(&out);

    req.load_balanced = true;
    bson_init(&out);
    proxy_hello_rewrite(reply, &req, &sid, &out);
    ok(bson_iter_init_find(&it, &out, "serviceId") && BSON_ITER_HOLDS_OID(&it) &&
           bson_oid_equal(bson_iter_oid(&it), &sid),
       "load-balanced client gets the proxy's serviceId");
    bson_destroy(&out);
    bson_destroy(reply);
}

static void
test_rewrite_error_unchanged(void)
{
    bson_t *reply = BCON_NEW("ok", BCON_DOUBLE(0.0), "errmsg", BCON_UTF8("no"), "setName",
                             BCON_UTF8("rs0"), "code", BCON_INT32(13));
    struct proxy_hello_request req = {0};
    bson_oid_t sid;
    bson_t out = BSON_INITIALIZER;

    bson_oid_init(&sid, NULL);
    proxy_hello_rewrite(reply, &req, &sid, &out);
    ok(bson_equal(&out, reply), "an error reply is relayed unchanged");
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

int
main(void)
{
    test_rewrite_replica_set_member();
    test_rewrite_error_unchanged();
    test_prepare();
    return done_testing();
}
