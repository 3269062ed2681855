/*
 * tests/unit/test_proxy_auth.c: the SCRAM observer. The user name comes
 * from client-first only; a principal is believed only after ok:1 with
 * done:true; failures, several users and unknown mechanisms are told apart.
 */
#include "proxy/auth.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>

static void
test_scram_user(void)
{
    static const struct {
        const char *payload;
        const char *want; /* NULL: not a client-first message */
    } cases[] = {
        {"n,,n=alice,r=abc", "alice"},
        {"y,,n=bob,r=abc", "bob"},
        {"n,a=admin,n=carol,r=x", "carol"},
        {"n,,n=a=2Cb=3Dc,r=x", "a,b=c"},
        {"n,,n=bad=41,r=x", NULL},
        {"n,,n=,r=x", NULL},
        {"n,,r=x", NULL},
        {"p=tls-unique,,n=x,r=y", NULL},
        {"n,,n=noterminator", NULL},
        {"", NULL},
        {"n,", NULL},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *user = proxy_auth_scram_user((const uint8_t *)cases[i].payload,
                                           (uint32_t)strlen(cases[i].payload));

        if (cases[i].want)
            is_str(user, cases[i].want, "client-first \"%s\" names %s", cases[i].payload,
                   cases[i].want);
        else
            ok(user == NULL, "\"%s\" is not a client-first message", cases[i].payload);
        bson_free(user);
    }
}

static bson_t *
sasl_start(const char *mech, const char *payload)
{
    bson_t *cmd = bson_new();

    BSON_APPEND_INT32(cmd, "saslStart", 1);
    BSON_APPEND_UTF8(cmd, "mechanism", mech);
    bson_append_binary(cmd, "payload", -1, BSON_SUBTYPE_BINARY, (const uint8_t *)payload,
                       (uint32_t)strlen(payload));
    return cmd;
}

static void
test_state_machine(void)
{
    struct proxy_auth auth;
    bson_t *start = sasl_start("SCRAM-SHA-256", "n,,n=app,r=nonce");
    bson_t *other = sasl_start("SCRAM-SHA-1", "n,,n=other,r=nonce");
    bson_t *x509 = sasl_start("MONGODB-X509", "");
    bson_t *step = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(false), "ok",
                            BCON_DOUBLE(1));
    bson_t *done = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(true), "ok",
                            BCON_DOUBLE(1));
    bson_t *refused = BCON_NEW("ok", BCON_DOUBLE(0), "code", BCON_INT32(18), "errmsg",
                               BCON_UTF8("Authentication failed."));

    proxy_auth_init(&auth);
    is_int(auth.state, PROXY_AUTH_NONE, "a new connection is unauthenticated");
    proxy_auth_start(&auth, start, "admin");
    is_int(auth.state, PROXY_AUTH_IN_PROGRESS, "saslStart puts it in progress");
    ok(auth.principal == NULL, "no principal before the verdict");
    is_int(proxy_auth_reply(&auth, step), PROXY_AUTH_IN_PROGRESS, "done:false keeps waiting");
    is_int(proxy_auth_reply(&auth, done), PROXY_AUTH_OK, "ok:1 done:true authenticates");
    is_str(auth.principal, "app@admin", "principal is user@db");

    proxy_auth_start(&auth, start, "admin");
    proxy_auth_reply(&auth, done);
    is_int(auth.state, PROXY_AUTH_OK, "re-authenticating as the same user stays ok");
    proxy_auth_start(&auth, other, "test");
    is_int(proxy_auth_reply(&auth, done), PROXY_AUTH_UNKNOWN,
           "a second, different user makes the state unknown");
    proxy_auth_cleanup(&auth);

    proxy_auth_init(&auth);
    proxy_auth_start(&auth, start, "admin");
    is_int(proxy_auth_reply(&auth, refused), PROXY_AUTH_FAILED, "ok:0 is a failure");
    ok(auth.principal == NULL && auth.pending == NULL, "a failure leaves no principal");
    proxy_auth_start(&auth, start, "admin");
    proxy_auth_reply(&auth, step);
    is_int(proxy_auth_reply(&auth, done), PROXY_AUTH_OK, "a later success is believed");
    proxy_auth_cleanup(&auth);

    proxy_auth_init(&auth);
    proxy_auth_start(&auth, start, "admin");
    proxy_auth_abandon(&auth);
    is_int(auth.state, PROXY_AUTH_NONE, "an ignored speculative attempt starts over");
    proxy_auth_start(&auth, x509, "$external");
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "a mechanism the proxy cannot follow is unknown");
    proxy_auth_start(&auth, start, "admin");
    proxy_auth_reply(&auth, done);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "unknown stays unknown");
    proxy_auth_cleanup(&auth);

    proxy_auth_init(&auth);
    proxy_auth_start(&auth, start, NULL);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "a saslStart without a database is unknown");
    proxy_auth_cleanup(&auth);

    bson_destroy(start);
    bson_destroy(other);
    bson_destroy(x509);
    bson_destroy(step);
    bson_destroy(done);
    bson_destroy(refused);
}

int
main(void)
{
    test_scram_user();
    test_state_machine();
    return done_testing();
}
