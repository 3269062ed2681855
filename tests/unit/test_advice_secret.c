/*
 * tests/unit/test_advice_secret.c: owns the tests of advice/secret.c: which
 * parts of advice_uri are secrets (the URI, its user-info as written and
 * each part, what libmongoc decoded, the TLS key file's password, an AWS
 * session token among the mechanism's properties), that a
 * scrubbed text holds none of them (percent-encoded or not, a secret inside
 * another), control bytes replaced, the length cut at a UTF-8 boundary, and
 * a URI that does not parse still scrubbed by its text.
 */
#include "config.h"

#include "advice/secret.h"
#include "tests/unit/tap.h"

#include <string.h>

static char *
scrub_with(const char *uri_text, const char *text, size_t max_len)
{
    struct advice_secrets s;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, NULL);
    char *out;

    advice_secrets_init(&s, uri_text, uri);
    out = advice_secrets_scrub(&s, text, max_len);
    advice_secrets_cleanup(&s);
    mongoc_uri_destroy(uri);
    return out;
}

static void
check(const char *uri, const char *text, const char *want, const char *name)
{
    char *got = scrub_with(uri, text, 1000);

    is_str(got, want, "%s", name);
    bson_free(got);
}

int
main(void)
{
    const char *uri = "mongodb://advisor:p%40ss%3Aw0rd@db.example:27017/?authSource=admin&"
                      "tls=true&tlsCertificateKeyFilePassword=keypass42";
    struct advice_secrets s;
    mongoc_uri_t *parsed;
    char *got;

    mongoc_init();
    parsed = mongoc_uri_new_with_error(uri, NULL);
    ok(parsed != NULL, "the test URI parses");
    advice_secrets_init(&s, uri, parsed);
    ok(s.n >= 5, "secrets found: %u", s.n);
    for (uint32_t i = 1; i < s.n; i++)
        if (strlen(s.s[i]) > strlen(s.s[i - 1]))
            ok(false, "secrets kept longest first");
    advice_secrets_cleanup(&s);
    mongoc_uri_destroy(parsed);

    check(uri, uri, "***", "the whole URI");
    check(uri, "auth failed for advisor:p%40ss%3Aw0rd", "auth failed for ***",
          "the user-info as written");
    check(uri, "password p@ss:w0rd refused", "password *** refused", "the decoded password");
    check(uri, "pw p%40ss%3Aw0rd", "pw ***", "the encoded password");
    check(uri, "user advisor unknown", "user *** unknown", "the user name");
    check(uri, "key keypass42 wrong", "key *** wrong", "the TLS key file's password");
    check(uri, "host db.example:27017 down", "host db.example:27017 down",
          "the host is not a secret");
    check(uri, "a\nb\tc\x7f", "a?b?c?", "control bytes replaced");
    check("mongodb://u1:pw-in-bad-uri-99@/nohost?x", "bad: pw-in-bad-uri-99 here", "bad: *** here",
          "a URI that does not parse: scrubbed by its text");
    check("mongodb://AKID:SECRETKEY@h/?authMechanism=MONGODB-AWS&authMechanismProperties="
          "AWS_SESSION_TOKEN:tok-3x4mple,SERVICE_NAME:mongodb",
          "sts said tok-3x4mple expired", "sts said *** expired",
          "an AWS session token in authMechanismProperties");
    check("mongodb://AKID:SECRETKEY@h/?authMechanism=MONGODB-AWS&authMechanismProperties="
          "AWS_SESSION_TOKEN:tok-3x4mple,SERVICE_NAME:mongodb",
          "mongodb: down", "mongodb: down", "the other properties are not secrets");
    check("mongodb://127.0.0.1:27017/", "connection refused to 127.0.0.1:27017",
          "connection refused to 127.0.0.1:27017", "no credentials: nothing but the URI itself");

    got = scrub_with(uri, "\xc3\xa9\xc3\xa9\xc3\xa9", 3);
    is_str(got, "\xc3\xa9", "cut at a character boundary");
    bson_free(got);
    got = scrub_with(uri, "abcdef", 4);
    is_str(got, "abcd", "cut at max_len");
    bson_free(got);

    mongoc_cleanup();
    return done_testing();
}
