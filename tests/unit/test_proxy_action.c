/*
 * tests/unit/test_proxy_action.c: the admin commands' parsing
 * (proxy/action.h) with hostile inputs: command names, wrong value types,
 * huge strings, namespaces without a dot, NUL and control bytes, bad
 * UTF-8; and the admin_users matching (the last '@' splits, principals are
 * compared unambiguously).
 */
#include "proxy/action.h"

#include "cache/key.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <string.h>

static void
test_kind(void)
{
    ok(proxy_action_kind_of("mongocacheStats") == PROXY_ACTION_STATS &&
           proxy_action_kind_of("mongocacheFlush") == PROXY_ACTION_FLUSH &&
           proxy_action_kind_of("mongocacheInvalidate") == PROXY_ACTION_INVALIDATE,
       "the three command names");
    ok(proxy_action_kind_of(NULL) == PROXY_ACTION_NONE &&
           proxy_action_kind_of("") == PROXY_ACTION_NONE &&
           proxy_action_kind_of("mongocacheflush") == PROXY_ACTION_NONE &&
           proxy_action_kind_of("mongocacheFlushX") == PROXY_ACTION_NONE &&
           proxy_action_kind_of("find") == PROXY_ACTION_NONE,
       "other names, other cases, a longer name, NULL: not admin commands");
}

static void
test_ns(void)
{
    static const struct {
        const char *ns;
        size_t len; /* 0: strlen */
        bool good;
        const char *why;
    } cases[] = {
        {"app.books", 0, true, "db.coll"},
        {"app.books.v2", 0, true, "a dotted collection"},
        {"a.b", 0, true, "the shortest"},
        {"app.\xc3\xa9t\xc3\xa9", 0, true, "a UTF-8 collection name"},
        {"appbooks", 0, false, "no dot"},
        {"", 0, false, "empty"},
        {".books", 0, false, "empty database"},
        {"app.", 0, false, "empty collection"},
        {"ap p.books", 0, false, "a space in the database"},
        {"ap$p.books", 0, false, "a $ in the database"},
        {"a/b.c", 0, false, "a slash in the database"},
        {"a\"b.c", 0, false, "a quote in the database"},
        {"app.bo$oks", 0, false, "a $ in the collection"},
        {"app.bo\x01oks", 0, false, "a control byte"},
        {"app.bo\noks", 0, false, "a newline"},
        {"app.bo\x7foks", 0, false, "DEL"},
        {"app.b\xff\xfe", 0, false, "not UTF-8"},
        {"app\0x.books", 11, false, "a NUL byte inside the database"},
        {"app.bo\0oks", 10, false, "a NUL byte inside the collection"},
    };
    bson_error_t error;
    char big[600];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].ns);
        bool got;

        memset(&error, 0, sizeof error);
        got = proxy_action_ns_check(cases[i].ns, len, &error);
        ok(got == cases[i].good && (got || (error.code == 2 && error.message[0])),
           "namespace %s: %s%s%s", cases[i].why, got ? "accepted" : "refused (",
           got ? "" : error.message, got ? "" : ")");
    }
    memset(big, 'a', sizeof big);
    big[3] = '.';
    ok(proxy_action_ns_check(big, 255, &error), "a 255-byte namespace is accepted");
    ok(!proxy_action_ns_check(big, 256, &error) && strstr(error.message, "256"),
       "a 256-byte one is refused, saying its length");
    ok(!proxy_action_ns_check(big, sizeof big, &error), "a 600-byte one is refused");
    memset(big, 'a', sizeof big);
    big[65] = '.';
    ok(!proxy_action_ns_check(big, 80, &error), "a 65-byte database name is refused");
    ok(!proxy_action_ns_check(NULL, 0, &error), "NULL is refused");
}

static void
test_parse(void)
{
    struct proxy_action_cmd cmd;
    bson_error_t error;
    bson_t *b;
    char huge[100000];

    b = BCON_NEW("mongocacheStats", BCON_INT32(1), "$db", "admin");
    ok(proxy_action_cmd_parse(b, &cmd, &error) && cmd.kind == PROXY_ACTION_STATS,
       "{mongocacheStats: 1}");
    bson_destroy(b);
    b = BCON_NEW("mongocacheFlush", BCON_BOOL(true));
    ok(proxy_action_cmd_parse(b, &cmd, &error) && cmd.kind == PROXY_ACTION_FLUSH,
       "{mongocacheFlush: true}");
    bson_destroy(b);
    b = BCON_NEW("mongocacheInvalidate", "app.books", "$db", "admin");
    ok(proxy_action_cmd_parse(b, &cmd, &error) && cmd.kind == PROXY_ACTION_INVALIDATE &&
           strcmp(cmd.ns, "app.books") == 0 && cmd.ns_len == 9,
       "{mongocacheInvalidate: \"app.books\"}");
    bson_destroy(b);
    b = BCON_NEW("mongocacheInvalidate", BCON_INT32(1));
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 14,
       "an invalidate with a number: TypeMismatch (14)");
    bson_destroy(b);
    b = BCON_NEW("mongocacheInvalidate", "{", "ns", "app.books", "}");
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 14,
       "an invalidate with a document: TypeMismatch");
    bson_destroy(b);
    b = BCON_NEW("mongocacheInvalidate", "[", "app.books", "]");
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 14,
       "an invalidate with an array: TypeMismatch");
    bson_destroy(b);
    b = BCON_NEW("mongocacheInvalidate", "appbooks");
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 2 && strstr(error.message, "'.'"),
       "a namespace without a dot: BadValue, saying so");
    bson_destroy(b);
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    huge[10] = '.';
    b = BCON_NEW("mongocacheInvalidate", BCON_UTF8(huge));
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 2,
       "a 100,000-byte namespace: BadValue, nothing copied");
    bson_destroy(b);
    b = bson_new();
    bson_append_utf8(b, "mongocacheInvalidate", -1, "app\0.books", 10);
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 2,
       "a namespace string holding a NUL byte: BadValue");
    bson_destroy(b);
    b = BCON_NEW("find", "books", "mongocacheFlush", BCON_INT32(1));
    ok(!proxy_action_cmd_parse(b, &cmd, &error) && error.code == 59,
       "an admin name that is not the first key: not an admin command");
    bson_destroy(b);
    b = bson_new();
    ok(!proxy_action_cmd_parse(b, &cmd, &error), "an empty document: refused");
    bson_destroy(b);
}

static void
test_users(void)
{
    char *alice = cache_key_principal("alice", 5, "admin", 5);
    char *bob = cache_key_principal("bob", 3, "app", 3);
    char *mail = cache_key_principal("ops@example.com", 15, "admin", 5);
    char *tricky = cache_key_principal("a", 1, "b@admin", 7);

    ok(proxy_action_user_listed("alice@admin", alice), "one entry");
    ok(proxy_action_user_listed(" bob@app , alice@admin ", alice) &&
           proxy_action_user_listed(" bob@app , alice@admin ", bob),
       "a list with spaces");
    ok(!proxy_action_user_listed("alice@app", alice), "the same user on another database: no");
    ok(!proxy_action_user_listed("alice", alice) && !proxy_action_user_listed("@admin", alice) &&
           !proxy_action_user_listed("alice@", alice),
       "entries without a user or a database match nothing");
    ok(proxy_action_user_listed("ops@example.com@admin", mail),
       "a user with '@' in its name: the last '@' splits");
    ok(!proxy_action_user_listed("a@b@admin", tricky),
       "user \"a\" on database \"b@admin\" is not \"a@b\" on admin");
    ok(!proxy_action_user_listed("alice@admin", NULL) &&
           !proxy_action_user_listed("alice@admin", "") && !proxy_action_user_listed(NULL, alice) &&
           !proxy_action_user_listed("", alice),
       "no principal, or no list: no");
    ok(!proxy_action_user_listed("alice@admin", "alice@admin"),
       "a raw \"user@db\" is not a principal key");
    bson_free(alice);
    bson_free(bob);
    bson_free(mail);
    bson_free(tricky);
}

int
main(void)
{
    plan(2 + 19 + 5 + 11 + 8);
    test_kind();
    test_ns();
    test_parse();
    test_users();
    return done_testing();
}
