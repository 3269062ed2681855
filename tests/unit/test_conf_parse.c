/*
 * tests/unit/test_conf_parse.c: TAP tests of conf/parse.c: each type's parser on valid and
 * invalid values (int, size, duration, bool, log level, address, URI), conf_redact_uri, the
 * size and duration formats, conf_parse_set's error messages (option, value, source) and
 * "did you mean" (conf_parse_suggest).
 */
#include "config.h"

#include "conf/conf.h"
#include "conf/file.h"
#include "conf/parse.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

/* ---- each type's parser --------------------------------------------------- */

struct num_case {
    const char *text;
    bool valid;
    int64_t want;
};

static void
test_int(void)
{
    static const struct num_case cases[] = {
        {"1", true, 1},
        {"1000000", true, 1000000},
        {"+7", true, 7},
        {"10000", true, 10000},
        {"0", false, 0},
        {"1000001", false, 0},
        {"-5", false, 0},
        {"abc", false, 0},
        {"", false, 0},
        {"12a", false, 0},
        {" 5", false, 0},
        {"5 ", false, 0},
        {"1e3", false, 0},
        {"0x10", false, 0},
        {"99999999999999999999", false, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -1;
        bool good = conf_parse_int(cases[i].text, 1, 1000000, &v);

        if (cases[i].valid) {
            ok(good && v == cases[i].want, "INT \"%s\" = %lld", cases[i].text,
                 (long long)cases[i].want);
        } else {
            ok(!good, "INT \"%s\" refused (range 1..1000000)", cases[i].text);
        }
    }
}

static void
test_size(void)
{
    static const struct num_case cases[] = {
        {"16", true, 16},
        {"48000000", true, 48000000},
        {"100B", true, 100},
        {"1K", true, 1000},
        {"1KB", true, 1000},
        {"1KiB", true, 1024},
        {"1kib", true, 1024},
        {"64MiB", true, 64 * 1024 * 1024},
        {"2 MiB", true, 2 * 1024 * 1024},
        {"3M", true, 3000000},
        {"1G", true, 1000000000},
        {"1GiB", true, INT64_C(1) << 30},
        {"4096GiB", false, 0},
        {"15", false, 0},
        {"-1", false, 0},
        {"1.5M", false, 0},
        {"1T", false, 0},
        {"K", false, 0},
        {"", false, 0},
        {"5 ", false, 0},
        {"1 K B", false, 0},
        {"99999999999GiB", false, 0},
        {"99999999999999999999", false, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -1;
        bool good = conf_parse_size(cases[i].text, 16, INT64_C(1) << 40, &v);

        if (cases[i].valid) {
            ok(good && v == cases[i].want, "SIZE \"%s\" = %lld", cases[i].text,
                 (long long)cases[i].want);
        } else {
            ok(!good, "SIZE \"%s\" refused (range 16..1TiB)", cases[i].text);
        }
    }
    ok(!conf_parse_size("48000001", 16, 48000000, &(int64_t){0}),
         "SIZE above max_message_size's 48000000 refused");
}

static void
test_duration(void)
{
    static const struct num_case cases[] = {
        {"0", true, 0},
        {"5", true, 5000},
        {"5s", true, 5000},
        {"250ms", true, 250},
        {"2m", true, 120000},
        {"1h", true, 3600000},
        {"168h", true, 168 * 3600000LL},
        {"10 s", true, 10000},
        {"3S", true, 3000},
        {"169h", false, 0},
        {"-1", false, 0},
        {"-1s", false, 0},
        {"1.5s", false, 0},
        {"5x", false, 0},
        {"s", false, 0},
        {"", false, 0},
        {"1d", false, 0},
        {"9223372036854775807h", false, 0},
        {"99999999999999999999", false, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -1;
        bool good = conf_parse_duration(cases[i].text, 0, 168 * 3600000LL, &v);

        if (cases[i].valid) {
            ok(good && v == cases[i].want, "DURATION \"%s\" = %lldms", cases[i].text,
                 (long long)cases[i].want);
        } else {
            ok(!good, "DURATION \"%s\" refused", cases[i].text);
        }
    }
}

static void
test_bool_level(void)
{
    static const struct {
        const char *text;
        int want; /* -1: refused */
    } bools[] = {
        {"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0},      {"on", 1},  {"off", 0},
        {"1", 1},    {"0", 0},     {"TRUE", 1}, {"maybe", -1}, {"", -1},   {"2", -1},
    },
      levels[] = {
          {"error", CONF_LOG_ERROR}, {"warn", CONF_LOG_WARN}, {"info", CONF_LOG_INFO},
          {"debug", CONF_LOG_DEBUG}, {"DEBUG", CONF_LOG_DEBUG}, {"warning", CONF_LOG_WARN},
          {"verbose", -1},           {"", -1},                {"3", -1},
      };

    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        bool v = false;
        bool good = conf_parse_bool(bools[i].text, &v);

        ok(bools[i].want < 0 ? !good : good && v == (bools[i].want == 1), "BOOL \"%s\" %s",
             bools[i].text, bools[i].want < 0 ? "refused" : bools[i].want ? "true" : "false");
    }
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        int v = -1;
        bool good = conf_parse_loglevel(levels[i].text, &v);

        ok(levels[i].want < 0 ? !good : good && v == levels[i].want, "LOGLEVEL \"%s\" %s",
             levels[i].text, levels[i].want < 0 ? "refused" : "accepted");
    }
}

static void
test_addr(void)
{
    static const struct {
        const char *text;
        bool valid;
        const char *host;
        int port;
    } cases[] = {
        {"127.0.0.1:27018", true, "127.0.0.1", 27018},
        {"[::1]:27018", true, "::1", 27018},
        {"[fe80::1%eth0]:80", true, "fe80::1%eth0", 80},
        {"localhost:1", true, "localhost", 1},
        {"db-1.example.com:65535", true, "db-1.example.com", 65535},
        {"0.0.0.0:9180", true, "0.0.0.0", 9180},
        {"host:0", false, NULL, 0},
        {"host:65536", false, NULL, 0},
        {"host:100000", false, NULL, 0},
        {"host", false, NULL, 0},
        {"host:", false, NULL, 0},
        {":27018", false, NULL, 0},
        {"::1:27018", false, NULL, 0},
        {"[::1]", false, NULL, 0},
        {"[::1]27018", false, NULL, 0},
        {"[]:1", false, NULL, 0},
        {"[127.0.0.1]:1", false, NULL, 0},
        {"host:port", false, NULL, 0},
        {"host:+80", false, NULL, 0},
        {"host:-80", false, NULL, 0},
        {"a b:1", false, NULL, 0},
        {"http://host:1", false, NULL, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *host = NULL;
        uint16_t port = 0;
        bool good = conf_split_addr(cases[i].text, &host, &port);

        if (cases[i].valid) {
            ok(good && strcmp(host, cases[i].host) == 0 && port == cases[i].port,
                 "ADDR \"%s\" = host \"%s\" port %d", cases[i].text, cases[i].host,
                 cases[i].port);
        } else {
            ok(!good && !conf_parse_addr(cases[i].text), "ADDR \"%s\" refused", cases[i].text);
        }
        bson_free(host);
    }
    ok(conf_parse_addr(""), "ADDR \"\" accepted (disabled)");
    ok(!conf_split_addr("", NULL, NULL), "conf_split_addr refuses \"\"");
}

static void
test_uri(void)
{
    static const struct {
        const char *text;
        bool valid;
    } cases[] = {
        {"mongodb://127.0.0.1:27017", true},
        {"mongodb://user:pw@db.example.com:27017/app?authSource=admin", true},
        {"mongodb://h1:27017,h2:27017/?replicaSet=rs0", true},
        {"mongodb://[::1]:27017", true},
        {"http://127.0.0.1:27017", false},
        {"mongodb://h:99999", false},
        {"mongodb://", false},
        {"", false},
        {"mongodb+srv://cluster.example.com", true},
        {"mongodb+srv://cluster.example.com:27017", false},
        {"mongodb+srv://example.com", false},
        {"mongodb://h/?tls=maybe", false},
    };
    char why[256];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why[0] = '\0';
        ok(conf_parse_uri(cases[i].text, why, sizeof why) == cases[i].valid, "URI \"%s\" %s",
             cases[i].text, cases[i].valid ? "accepted" : "refused");
    }
    ok(!conf_parse_uri("mongodb://u:hunter2@h:99999", why, sizeof why) && why[0] != '\0',
         "libmongoc's reason is given for a refused URI");
    t_lacks(why, "hunter2", "libmongoc's reason does not show the password");
}

static void
test_redact_uri(void)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"mongodb://u:pw@h/db", "mongodb://u:<redacted>@h/db"},
        {"mongodb://u:pw@h:27017", "mongodb://u:<redacted>@h:27017"},
        {"mongodb://u@h/db", "mongodb://u@h/db"},
        {"mongodb://h:27017", "mongodb://h:27017"},
        {"mongodb://u:@h", "mongodb://u:@h"},
        {"mongodb://u:p%40w@h/db?appname=a@b", "mongodb://u:<redacted>@h/db?appname=a@b"},
        {"mongodb://h:1/?appname=x", "mongodb://h:1/?appname=x"},
        {"mongodb://u:pw/x@h", "mongodb://u:<redacted>@h"},
        {"mongodb://u:p@w@h", "mongodb://u:<redacted>@h"},
        {"mongodb+srv://admin:s3cr3t@cluster.example.com",
         "mongodb+srv://admin:<redacted>@cluster.example.com"},
        {"u:pw@h", "u:<redacted>@h"},
        {"mongodb://h/?tls=true&tlsCertificateKeyFilePassword=kp&appName=a",
         "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=<redacted>&appName=a"},
        {"mongodb://u:pw@h/?SSLCLIENTCERTIFICATEKEYPASSWORD=kp",
         "mongodb://u:<redacted>@h/?SSLCLIENTCERTIFICATEKEYPASSWORD=<redacted>"},
        {"mongodb://h/?tlsCertificateKeyFile=/k.pem", "mongodb://h/?tlsCertificateKeyFile=/k.pem"},
        {"mongodb://u@h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok",
         "mongodb://u@h/?authMechanism=MONGODB-AWS&authMechanismProperties=<redacted>"},
        {"", ""},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = conf_redact_uri(cases[i].in);
        char *what = bson_strdup_printf("conf_redact_uri(\"%s\")", cases[i].in);

        t_is_str(got, cases[i].out, what);
        bson_free(what);
        bson_free(got);
    }
    {
        char *got = conf_redact_uri(NULL);

        t_is_str(got, "", "conf_redact_uri(NULL) is \"\"");
        bson_free(got);
    }
}

static void
test_formats(void)
{
    char buf[32];

    conf_parse_format_size(48000000, buf, sizeof buf);
    t_is_str(buf, "48000000", "48000000 bytes print as 48000000");
    conf_parse_format_size(64 << 20, buf, sizeof buf);
    t_is_str(buf, "64MiB", "64MiB prints as 64MiB");
    conf_parse_format_size(INT64_C(2) << 40, buf, sizeof buf);
    t_is_str(buf, "2048GiB", "2TiB prints as 2048GiB");
    conf_parse_format_duration(1500, buf, sizeof buf);
    t_is_str(buf, "1500ms", "1500ms prints as 1500ms");
    conf_parse_format_duration(120000, buf, sizeof buf);
    t_is_str(buf, "2m", "120000ms prints as 2m");
}

/* ---- error messages ------------------------------------------------------ */

static void
test_set_errors(void)
{
    struct conf *conf = conf_new();
    bson_error_t err;
    bool good;

    good = conf_parse_set(conf, CONF_OPT_max_clients, "abc", CONF_SRC_ENV,
                        "env MONGOCACHE_MAX_CLIENTS", &err);
    ok(!good, "max_clients \"abc\" refused");
    t_is_str(err.message,
             "invalid value \"abc\" for max_clients (from env MONGOCACHE_MAX_CLIENTS): expected "
             "an integer from 1 to 1000000",
             "error names value, option, source and what was expected");
    t_is_int(conf->max_clients, 10000, "a refused value leaves the old one");
    t_is_str(conf->source[CONF_OPT_max_clients], "default", "... and its source");

    good = conf_parse_set(conf, CONF_OPT_idle_timeout, "-3s", CONF_SRC_FLAG, "flag --idle-timeout",
                        &err);
    ok(!good && strstr(err.message, "\"-3s\"") && strstr(err.message, "idle_timeout") &&
             strstr(err.message, "flag --idle-timeout") && strstr(err.message, "0 to 168h"),
         "negative duration refused: %s", err.message);

    good = conf_parse_set(conf, CONF_OPT_max_message_size, "64MiB", CONF_SRC_FILE, "/x.conf:3",
                        &err);
    ok(!good && strstr(err.message, "\"64MiB\"") && strstr(err.message, "max_message_size") &&
             strstr(err.message, "/x.conf:3") && strstr(err.message, "16 to 48000000"),
         "max_message_size above 48000000 refused: %s", err.message);

    good = conf_parse_set(conf, CONF_OPT_listen, "localhost", CONF_SRC_FLAG, "flag --listen", &err);
    ok(!good && strstr(err.message, "\"localhost\" for listen (from flag --listen)"),
         "ADDR without port refused: %s", err.message);

    good = conf_parse_set(conf, CONF_OPT_log_level, "loud\"\n", CONF_SRC_FLAG, "flag --log-level",
                        &err);
    t_contains(err.message, "\"loud\\\"\\x0a\"", "quotes and control characters escaped");

    good = conf_parse_set(conf, CONF_OPT_upstream, "mongodb://admin:hunter2@h:99999/db",
                        CONF_SRC_FLAG, "flag --upstream", &err);
    ok(!good, "bad upstream URI refused");
    t_contains(err.message,
               "invalid value \"mongodb://admin:<redacted>@h:99999/db\" for upstream (from flag "
               "--upstream): libmongoc says: ",
               "URI error shows the redacted URI and libmongoc's reason");
    t_lacks(err.message, "hunter2", "URI error does not show the password");

    good = conf_parse_set(conf, CONF_OPT_http_token, "file:/nonexistent/token", CONF_SRC_ENV,
                        "env MONGOCACHE_HTTP_TOKEN", &err);
    ok(!good && strstr(err.message, "file:/nonexistent/token") &&
             strstr(err.message, "http_token") && strstr(err.message, "env MONGOCACHE_HTTP_TOKEN"),
         "missing secret file refused, naming the file: %s", err.message);

    good = conf_parse_set(conf, CONF_OPT_max_clients, "12345678901234567890123456789", CONF_SRC_FLAG,
                        "flag --max-clients", &err);
    t_contains(err.message, "12345678901234567890123456789", "overflowing INT refused with value");
    {
        char long_value[400];

        memset(long_value, '9', sizeof long_value - 1);
        long_value[sizeof long_value - 1] = '\0';
        good = conf_parse_set(conf, CONF_OPT_max_clients, long_value, CONF_SRC_FLAG,
                            "flag --max-clients", &err);
        ok(!good && strstr(err.message, "...\" for max_clients (from flag --max-clients)"),
             "a long value is cut short in the message");
    }
    conf_destroy(conf);
}

static void
test_near(void)
{
    static const struct {
        const char *typed;
        const char *want; /* NULL: no suggestion */
    } cases[] = {
        {"max_client", "max_clients"},     {"max-clents", "max_clients"},
        {"MAX_CLIENTS_", "max_clients"},   {"lisen", "listen"},
        {"listne", "listen"},              {"redis_pass", "redis_password"},
        {"cache_ttl_overide", "cache_ttl_overrides"},
        {"http", NULL},                    {"zzz", NULL},
        {"max_connections", NULL},         {"redis_breaker", NULL},
        {"", NULL},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int id = conf_parse_suggest(cases[i].typed, strlen(cases[i].typed));

        t_is_str(id >= 0 ? conf_opt_name((enum conf_opt_id)id) : "(none)",
                 cases[i].want ? cases[i].want : "(none)", cases[i].typed);
    }
}

/* conf_parse_list_next: the entries of a comma-separated list, blanks trimmed, empties skipped. */
static void
test_list(void)
{
    static const struct {
        const char *list;
        const char *want; /* the entries joined by '|' */
    } cases[] = {
        {"", ""},
        {" , ,\t", ""},
        {"zlib", "zlib"},
        {"snappy,zstd,zlib", "snappy|zstd|zlib"},
        {" snappy ,\tzstd\t,, zlib  ", "snappy|zstd|zlib"},
        {"a b,c", "a b|c"},
        {",x,", "x"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = cases[i].list, *start;
        char got[64] = "";
        size_t len;

        while (conf_parse_list_next(&p, &start, &len))
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.*s", got[0] ? "|" : "",
                     (int)len, start);
        is_str(got, cases[i].want, "list \"%s\"", cases[i].list);
        ok(*p == '\0', "list \"%s\": read to its end", cases[i].list);
    }
}

int
main(void)
{
    conf_test_begin();
    test_list();
    test_int();
    test_size();
    test_duration();
    test_bool_level();
    test_addr();
    test_uri();
    test_redact_uri();
    test_formats();
    test_set_errors();
    test_near();
    return conf_test_end();
}
