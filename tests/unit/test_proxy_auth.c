/*
 * tests/unit/test_proxy_auth.c: the SCRAM observer. The user name comes
 * from client-first only; a principal is believed only after ok:1 with
 * done:true; failures, several users and unknown mechanisms are told apart;
 * a verdict is credited only to the conversation it ends (pipelined steps
 * make the state unknown); principals are named unambiguously.
 */
#include "proxy/auth.h"

#include "cache/key.h"
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

/* A whole conversation, one step at a time as drivers do it. Returns the state. */
static enum proxy_auth_state
converse(struct proxy_auth *auth, const bson_t *start, const char *db, const bson_t *step,
         const bson_t *cont, const bson_t *done)
{
    proxy_auth_start(auth, start, db);
    proxy_auth_reply(auth, PROXY_AUTH_STEP_START, step);
    proxy_auth_continue(auth, cont);
    return proxy_auth_reply(auth, PROXY_AUTH_STEP_CONTINUE, done);
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
    bson_t *cont = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT32(1));

    proxy_auth_init(&auth);
    is_int(auth.state, PROXY_AUTH_NONE, "a new connection is unauthenticated");
    proxy_auth_start(&auth, start, "admin");
    is_int(auth.state, PROXY_AUTH_IN_PROGRESS, "saslStart puts it in progress");
    ok(auth.principal == NULL, "no principal before the verdict");
    is_int(proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step), PROXY_AUTH_IN_PROGRESS,
           "the saslStart reply (done:false) keeps waiting");
    proxy_auth_continue(&auth, cont);
    is_int(proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, done), PROXY_AUTH_OK,
           "ok:1 done:true to the conversation's saslContinue authenticates");
    is_str(auth.principal, "3:app@admin", "the principal is the user's length, user@db");
    is_str(auth.principal_name, "app@admin", "and reads user@db in logs");

    converse(&auth, start, "admin", step, cont, done);
    is_int(auth.state, PROXY_AUTH_OK, "re-authenticating as the same user stays ok");
    is_int(converse(&auth, other, "test", step, cont, done), PROXY_AUTH_UNKNOWN,
           "a second, different user makes the state unknown");
    proxy_auth_cleanup(&auth);

    proxy_auth_init(&auth);
    proxy_auth_start(&auth, start, "admin");
    is_int(proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, refused), PROXY_AUTH_FAILED,
           "ok:0 is a failure");
    ok(auth.principal == NULL && auth.pending == NULL, "a failure leaves no principal");
    is_int(converse(&auth, start, "admin", step, cont, done), PROXY_AUTH_OK,
           "a later success is believed");
    proxy_auth_cleanup(&auth);

    proxy_auth_init(&auth);
    proxy_auth_start(&auth, start, "admin");
    proxy_auth_abandon(&auth);
    is_int((long long)auth.in_flight, 0, "the ignored attempt is no longer in flight");
    is_int(auth.state, PROXY_AUTH_NONE, "an ignored speculative attempt starts over");
    proxy_auth_start(&auth, x509, "$external");
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "a mechanism the proxy cannot follow is unknown");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step);
    converse(&auth, start, "admin", step, cont, done);
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
    bson_destroy(cont);
}

/*
 * Issue 6 item 2: a logged-in user pipelines the last saslContinue of her
 * own conversation with a saslStart naming another user. The done:true that
 * ends her conversation must never be credited to the other name.
 */
/* start's user logs in: its saslStart and saslContinue, each answered (step, then done). */
static void
login(struct proxy_auth *auth, const bson_t *start, const bson_t *step, const bson_t *cont,
      const bson_t *done)
{
    proxy_auth_start(auth, start, "admin");
    proxy_auth_reply(auth, PROXY_AUTH_STEP_START, step);
    proxy_auth_continue(auth, cont);
    proxy_auth_reply(auth, PROXY_AUTH_STEP_CONTINUE, done);
}

static void
test_pipelined(void)
{
    struct proxy_auth auth;
    bson_t *alice = sasl_start("SCRAM-SHA-256", "n,,n=alice,r=nonce");
    bson_t *bob = sasl_start("SCRAM-SHA-256", "n,,n=bob,r=nonce");
    bson_t *step1 = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(false), "ok",
                             BCON_DOUBLE(1));
    bson_t *done1 = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(true), "ok",
                             BCON_DOUBLE(1));
    bson_t *step2 = BCON_NEW("conversationId", BCON_INT32(2), "done", BCON_BOOL(false), "ok",
                             BCON_DOUBLE(1));
    bson_t *cont1 = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT32(1));
    bson_t *cont2 = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT32(2));
    bson_t *refused1 = BCON_NEW("ok", BCON_DOUBLE(0), "code", BCON_INT32(18));

    /* Alice's last step and Bob's start in one write; replies in order. */
    proxy_auth_init(&auth);
    proxy_auth_start(&auth, alice, "admin");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step1);
    proxy_auth_continue(&auth, cont1);
    proxy_auth_start(&auth, bob, "admin");
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "a saslStart sent while a step awaits its reply: unknown");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, done1);
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step2);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "alice's done:true is not credited to bob");
    ok(auth.principal == NULL, "no principal recorded");
    proxy_auth_cleanup(&auth);

    /* The same after alice had logged in once already (the reported attack). */
    proxy_auth_init(&auth);
    login(&auth, alice, step1, cont1, done1);
    is_str(auth.principal_name, "alice@admin", "alice is logged in");
    proxy_auth_start(&auth, alice, "admin");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step1);
    proxy_auth_continue(&auth, cont1);
    proxy_auth_start(&auth, bob, "admin");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, done1);
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step2);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "re-login pipelined with another saslStart: unknown");
    proxy_auth_cleanup(&auth);

    /* Two saslStarts in one write. */
    proxy_auth_init(&auth);
    proxy_auth_start(&auth, alice, "admin");
    proxy_auth_start(&auth, bob, "admin");
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "two saslStarts pipelined: unknown");
    proxy_auth_cleanup(&auth);

    /* A saslContinue of another conversation than the open one. */
    proxy_auth_init(&auth);
    proxy_auth_start(&auth, alice, "admin");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step1);
    proxy_auth_continue(&auth, cont2);
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, done1);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "a saslContinue naming another conversationId: unknown");
    proxy_auth_cleanup(&auth);

    /* A done:true with no open conversation credits nobody: a login the
     * server confirms that the proxy cannot attribute makes it unknown. */
    proxy_auth_init(&auth);
    login(&auth, alice, step1, cont1, done1);
    proxy_auth_continue(&auth, cont1);
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, done1);
    is_int(auth.state, PROXY_AUTH_UNKNOWN,
           "a stray saslContinue after the end, confirmed done:true: unknown");
    proxy_auth_cleanup(&auth);

    /* Found in review: logged in as alice, a login as bob is under way.
     * Reads meanwhile may run with both users' rights (servers before 6.0
     * allow two users on a connection): never alice's entries. */
    proxy_auth_init(&auth);
    login(&auth, alice, step1, cont1, done1);
    proxy_auth_start(&auth, bob, "admin");
    is_int(auth.state, PROXY_AUTH_IN_PROGRESS,
           "alice logged in, bob's saslStart sent: in progress (the cache is bypassed)");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_START, step2);
    proxy_auth_continue(&auth, cont2);
    is_int(auth.state, PROXY_AUTH_IN_PROGRESS,
           "... and still, bob's last step sent with no reply to come (moreToCome)");
    proxy_auth_reply(&auth, PROXY_AUTH_STEP_CONTINUE, refused1);
    is_int(auth.state, PROXY_AUTH_UNKNOWN, "... bob refused: alice's login and a failed one: unknown");
    proxy_auth_cleanup(&auth);

    bson_destroy(alice);
    bson_destroy(bob);
    bson_destroy(step1);
    bson_destroy(done1);
    bson_destroy(step2);
    bson_destroy(cont1);
    bson_destroy(cont2);
    bson_destroy(refused1);
}

/* Issue 6 item 6: user "a@b" on db "c" and user "a" on db "b@c" are two principals. */
static void
test_principal_names(void)
{
    struct proxy_auth x, y;
    bson_t *ab = sasl_start("SCRAM-SHA-256", "n,,n=a@b,r=nonce");
    bson_t *a = sasl_start("SCRAM-SHA-256", "n,,n=a,r=nonce");
    bson_t *step = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(false), "ok",
                            BCON_DOUBLE(1));
    bson_t *done = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(true), "ok",
                            BCON_DOUBLE(1));
    bson_t *cont = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT32(1));
    char *p1 = cache_key_principal("a@b", 3, "c", 1);
    char *p2 = cache_key_principal("a", 1, "b@c", 3);

    ok(strcmp(p1, p2) != 0, "cache_key_principal: (a@b, c) and (a, b@c) differ (%s, %s)", p1, p2);
    proxy_auth_init(&x);
    proxy_auth_init(&y);
    converse(&x, ab, "c", step, cont, done);
    converse(&y, a, "b@c", step, cont, done);
    ok(x.state == PROXY_AUTH_OK && y.state == PROXY_AUTH_OK, "both log in");
    ok(strcmp(x.principal, y.principal) != 0, "their principals differ");
    is_str(x.principal, p1, "the connection's principal is cache_key_principal's");
    proxy_auth_cleanup(&x);
    proxy_auth_cleanup(&y);
    bson_free(p1);
    bson_free(p2);
    bson_destroy(ab);
    bson_destroy(a);
    bson_destroy(step);
    bson_destroy(done);
    bson_destroy(cont);
}

int
main(void)
{
    test_scram_user();
    test_state_machine();
    test_pipelined();
    test_principal_names();
    return done_testing();
}
