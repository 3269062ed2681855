/*
 * tests/unit/test_conf_conf.c: TAP tests of conf/: each type's parser on
 * valid and invalid values, the config file syntax, precedence of default <
 * file < environment < flag with each value's source, error messages (option,
 * value, source), secrets kept out of output and errors, argv scrubbing,
 * SIGHUP reload, conf_redact_uri and the generated --help/--check-config;
 * every bad line, variable and flag reported at once, unknown MONGOCACHE_*
 * variables, "did you mean", and the proxy's check (proxy/check.c): what it
 * refuses and accepts, through every layer and across a reload.
 * Temporary files go in a mkdtemp directory removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "conf/cli.h"
#include "conf/conf.h"
#include "conf/env.h"
#include "conf/file.h"
#include "conf/parse.h"
#include "proxy/check.h"
#include "tests/unit/tap.h"

/* The cases name themselves with a plain string. */
#define t_is_str(got, want, what) is_str((got), (want), "%s", (what))
#define t_is_int(got, want, what) is_int((got), (want), "%s", (what))

static bool
t_contains(const char *hay, const char *needle, const char *what)
{
    bool found = hay != NULL && strstr(hay, needle) != NULL;

    if (!ok(found, "%s", what)) {
        diag("  \"%s\" not in: %s", needle, hay ? hay : "(null)");
    }
    return found;
}

static bool
t_lacks(const char *hay, const char *needle, const char *what)
{
    bool absent = hay != NULL && strstr(hay, needle) == NULL;

    if (!ok(absent, "%s", what)) {
        diag("  \"%s\" must not be in: %s", needle, hay ? hay : "(null)");
    }
    return absent;
}

/* ---- fixtures ------------------------------------------------------------ */

static char tmpdir[64];
static int n_tmpfiles;
static char *tmpfiles[64];

/* Writes text to a new file in tmpdir with mode; returns its path (owned here). */
static const char *
write_file(const char *name, const char *text, mode_t mode)
{
    char *path = bson_strdup_printf("%s/%s", tmpdir, name);
    int fd;
    size_t len = strlen(text);
    bool known = false;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
    for (int i = 0; i < n_tmpfiles; i++) {
        if (strcmp(tmpfiles[i], path) == 0) {
            known = true;
            bson_free(path);
            path = tmpfiles[i];
        }
    }
    if (!known) {
        BSON_ASSERT(n_tmpfiles < 64);
        tmpfiles[n_tmpfiles++] = path;
    }
    return path;
}

static void
clear_env(void)
{
    extern char **environ;
    char name[256];
    bool again = true;

    /* Every MONGOCACHE_* variable, the harness's own (MONGOCACHE_REQUIRE_INTEGRATION) too. */
    while (again) {
        again = false;
        for (char **e = environ; e && *e; e++) {
            const char *eq = strchr(*e, '=');

            if (strncmp(*e, "MONGOCACHE_", 11) == 0 && eq && (size_t)(eq - *e) < sizeof name) {
                snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
                unsetenv(name);
                again = true;
                break;
            }
        }
    }
}

/*
 * Runs conf_load on a NULL-terminated list of flags (argv[0] added), with
 * writable copies as a real argv has. Returns the conf, or NULL with err set.
 */
static struct conf *
load_argv(enum conf_action *action, bson_error_t *err, const char *const *flags)
{
    char *argv[32];
    int argc = 0;
    struct conf *conf = conf_new();
    enum conf_action dummy;
    bool good;

    argv[argc++] = bson_strdup("mongocache");
    for (; *flags != NULL; flags++) {
        BSON_ASSERT(argc < 31);
        argv[argc++] = bson_strdup(*flags);
    }
    argv[argc] = NULL;
    memset(err, 0, sizeof *err);
    good = conf_load(conf, argc, argv, action != NULL ? action : &dummy, err);
    for (int i = 0; i < argc; i++) {
        bson_free(argv[i]);
    }
    if (!good) {
        conf_destroy(conf);
        return NULL;
    }
    return conf;
}

#define LOAD(action, err, ...) load_argv((action), (err), (const char *const[]){__VA_ARGS__, NULL})

/* conf_print's output as a string (bson_free). */
static char *
print_to_string(const struct conf *conf)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char *copy;

    conf_print(conf, out);
    fclose(out);
    copy = bson_strdup(buf);
    free(buf);
    return copy;
}

/* Every line of notes, each ended by '\n' (bson_free). */
static char *
join_notes(const struct conf_notes *notes)
{
    char *all = bson_strdup("");

    for (size_t i = 0; i < notes->n; i++) {
        char *next = bson_strdup_printf("%s%s\n", all, notes->lines[i]);

        bson_free(all);
        all = next;
    }
    return all;
}

/* The line of conf_print output for option name. */
static char *
print_line(const struct conf *conf, const char *name)
{
    char *printed = print_to_string(conf);
    char *all = bson_strdup_printf("\n%s", printed);
    char *prefix = bson_strdup_printf("\n%s = ", name);
    char *at = strstr(all, prefix);
    char *line = NULL;

    if (at != NULL) {
        at++;
        line = bson_strndup(at, strcspn(at, "\n"));
    }
    bson_free(prefix);
    bson_free(all);
    bson_free(printed);
    return line != NULL ? line : bson_strdup("(missing)");
}

/* ---- the option table ---------------------------------------------------- */

static void
test_table(void)
{
    struct conf *conf = conf_new();
    bool envs_ok = true;
    bool ranges_ok = true;
    bool defaults_print = true;
    bool names_unique = true;

    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        char want_env[96] = "MONGOCACHE_";
        size_t o = strlen(want_env);
        int64_t min;
        int64_t max;
        char *line;
        char *want;

        for (const char *p = d->name; *p != '\0' && o + 1 < sizeof want_env; p++) {
            want_env[o++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        }
        want_env[o] = '\0';
        if (strcmp(want_env, d->env) != 0) {
            envs_ok = false;
            diag("%s: env %s, expected %s", d->name, d->env, want_env);
        }
        if ((d->type == CONF_TYPE_INT || d->type == CONF_TYPE_SIZE ||
             d->type == CONF_TYPE_DURATION) &&
            !conf_parse_range((enum conf_opt_id)id, &min, &max)) {
            ranges_ok = false;
            diag("%s: numeric option without a range in conf/parse.c", d->name);
        }
        if (conf_parse_lookup(d->name, strlen(d->name)) != id) {
            names_unique = false;
        }
        /* conf_print writes each default the way options.def does. */
        line = print_line(conf, d->name);
        want = bson_strdup_printf("%s = %s  # default", d->name, d->def[0] ? d->def : "\"\"");
        if (strcmp(line, want) != 0) {
            defaults_print = false;
            diag("printed \"%s\", expected \"%s\"", line, want);
        }
        bson_free(line);
        bson_free(want);
    }
    ok(envs_ok, "every option's env variable is MONGOCACHE_<NAME>");
    ok(ranges_ok, "every INT, SIZE and DURATION option has a range");
    ok(names_unique, "option names are unique and found by conf_parse_lookup");
    ok(defaults_print, "every default parses and prints back as written in options.def");
    t_is_str(conf_opt_name(CONF_OPT_max_clients), "max_clients", "conf_opt_name");
    ok(conf_is_reloadable(CONF_OPT_log_level), "log_level is reloadable");
    ok(!conf_is_reloadable(CONF_OPT_listen), "listen is not reloadable");
    ok(conf_parse_lookup("max-clients", 11) == CONF_OPT_max_clients,
         "lookup accepts '-' for '_'");
    ok(conf_parse_lookup("max_client", 10) == -1, "lookup refuses a prefix");
    conf_destroy(conf);
}

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
        {"mongodb+srv://cluster.example.com", false},
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

/* ---- the config file ------------------------------------------------------ */

/* conf_file_load, with err set to the first error it recorded. */
static bool
file_load(struct conf *conf, const char *path, const char *origin, bson_error_t *err)
{
    size_t before = conf->errors.n;
    bool good = conf_file_load(conf, path, origin);

    memset(err, 0, sizeof *err);
    if (conf->errors.n > before) {
        bson_strncpy(err->message, conf->errors.lines[before], sizeof err->message);
    }
    return good;
}

static void
test_file(void)
{
    const char *path = write_file(
        "good.conf",
        "# a comment\n"
        "\n"
        "   # an indented comment\n"
        "max_clients = 123\n"
        "log_level=debug\n"
        "  listen_unix = \"/tmp/with space.sock\"  # trailing comment\n"
        "pid_file = /run/a#b.pid\n"
        "connect_timeout = 2s # comment after a bare value\n"
        "buffer-limit = 1MiB\r\n"
        "http_token = \"tok\\\"en\\\\x\"\n"
        "listen = \n"
        "idle_timeout = 15m\n"
        "idle_timeout = 20m\n"
        "http_listen = '127.0.0.1:9999'",
        0600);
    struct conf *conf = conf_new();
    bson_error_t err;
    char *src;

    ok(file_load(conf, path, "flag --config", &err), "file with comments, quotes loads");
    t_is_int(conf->max_clients, 123, "bare value");
    t_is_int(conf->log_level, CONF_LOG_DEBUG, "no blanks around '='");
    t_is_str(conf->listen_unix, "/tmp/with space.sock", "double-quoted value, trailing comment");
    t_is_str(conf->pid_file, "/run/a#b.pid", "'#' not after a blank is part of a bare value");
    t_is_int(conf->connect_timeout, 2000, "comment after a bare value");
    t_is_int(conf->buffer_limit, 1 << 20, "dashed key and CRLF line end");
    t_is_str(conf->http_token, "tok\"en\\x", "escapes in double quotes");
    t_is_str(conf->listen, "", "empty value");
    t_is_int(conf->idle_timeout, 20 * 60000, "a repeated key: the later line wins");
    t_is_str(conf->http_listen, "127.0.0.1:9999", "single-quoted value, no newline at the end");
    src = bson_strdup_printf("%s:4", path);
    t_is_str(conf->source[CONF_OPT_max_clients], src, "source is FILE:LINE");
    bson_free(src);
    src = bson_strdup_printf("%s:13", path);
    t_is_str(conf->source[CONF_OPT_idle_timeout], src, "source of a repeated key is its last line");
    bson_free(src);
    ok(conf->source_kind[CONF_OPT_max_clients] == CONF_SRC_FILE, "source kind is FILE");
    t_is_str(conf->source[CONF_OPT_drain_timeout], "default", "unset options stay default");
    conf_destroy(conf);

    static const struct {
        const char *name;
        const char *text;
        const char *want; /* after "PATH" */
    } bad[] = {
        {"unknown.conf", "# good\nmax_clients = 5\nmax_client = 5\n",
         ":3: unknown option \"max_client\""},
        {"noeq.conf", "\n\nlisten 127.0.0.1:1\n", ":3: expected \"name = value\""},
        {"noname.conf", "= 5\n", ":1: expected \"name = value\""},
        {"unterminated.conf", "pid_file = \"/run/x.pid\n",
         ":1: missing closing quote for pid_file"},
        {"after.conf", "pid_file = \"/a\" b\n", ":1: unexpected text after the closing quote"},
        {"badvalue.conf", "\nmax_bson_depth = 201\n",
         "invalid value \"201\" for max_bson_depth (from PATH:2): expected an integer from 1 to "
         "200"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_file(bad[i].name, bad[i].text, 0600);
        char *want;
        const char *tpl = strstr(bad[i].want, "PATH");

        if (tpl != NULL) {
            want = bson_strdup_printf("%.*s%s%s", (int)(tpl - bad[i].want), bad[i].want, p,
                                      tpl + 4);
        } else {
            want = bson_strdup_printf("%s%s", p, bad[i].want);
        }
        conf = conf_new();
        memset(&err, 0, sizeof err);
        ok(!file_load(conf, p, "flag --config", &err) && strstr(err.message, want),
             "%s refused: %s", bad[i].name, err.message);
        bson_free(want);
        conf_destroy(conf);
    }

    conf = conf_new();
    ok(!file_load(conf, "/nonexistent/mongocache.conf", "env MONGOCACHE_CONFIG", &err) &&
             strstr(err.message, "\"/nonexistent/mongocache.conf\" (from env MONGOCACHE_CONFIG)"),
         "a missing file is an error naming it and where its name came from: %s", err.message);
    ok(!file_load(conf, tmpdir, "flag --config", &err),
         "a directory is refused: %s", err.message);
    conf_destroy(conf);
}

/* ---- the layers together ---------------------------------------------------- */

static void
test_precedence(void)
{
    const char *path = write_file("layers.conf",
                                  "max_clients = 100\n"
                                  "log_level = debug\n"
                                  "connect_timeout = 1s\n"
                                  "idle_timeout = 2s\n",
                                  0600);
    const char *other = write_file("other.conf", "max_bson_depth = 7\n", 0600);
    bson_error_t err;
    enum conf_action action;
    struct conf *conf;
    char *src;

    clear_env();
    setenv("MONGOCACHE_MAX_CLIENTS", "200", 1);
    setenv("MONGOCACHE_LOG_LEVEL", "warn", 1);
    setenv("MONGOCACHE_CONNECT_TIMEOUT", "3s", 1);
    conf = LOAD(&action, &err, "--config", path, "--max-clients", "300");
    if (!ok(conf != NULL, "four layers load")) {
        diag("%s", err.message);
        clear_env();
        return;
    }
    ok(action == CONF_ACTION_RUN, "action is RUN");
    t_is_int(conf->max_clients, 300, "flag beats env and file");
    t_is_str(conf->source[CONF_OPT_max_clients], "flag --max-clients",
             "source \"flag --max-clients\"");
    ok(conf->source_kind[CONF_OPT_max_clients] == CONF_SRC_FLAG, "source kind FLAG");
    t_is_int(conf->log_level, CONF_LOG_WARN, "env beats file");
    t_is_str(conf->source[CONF_OPT_log_level], "env MONGOCACHE_LOG_LEVEL",
             "source \"env MONGOCACHE_LOG_LEVEL\"");
    ok(conf->source_kind[CONF_OPT_log_level] == CONF_SRC_ENV, "source kind ENV");
    t_is_int(conf->connect_timeout, 3000, "env beats file (duration)");
    t_is_int(conf->idle_timeout, 2000, "file beats default");
    src = bson_strdup_printf("%s:4", path);
    t_is_str(conf->source[CONF_OPT_idle_timeout], src, "source \"FILE:LINE\"");
    bson_free(src);
    t_is_int(conf->drain_timeout, 10000, "default when no layer sets it");
    t_is_str(conf->source[CONF_OPT_drain_timeout], "default", "source \"default\"");
    ok(conf->source_kind[CONF_OPT_drain_timeout] == CONF_SRC_DEFAULT, "source kind DEFAULT");
    t_is_str(conf->config_path, path, "config_path is the --config file");
    conf_destroy(conf);

    /* MONGOCACHE_CONFIG names the file; --config wins over it; --config= reads none. */
    setenv(CONF_ENV_CONFIG, other, 1);
    conf = LOAD(NULL, &err, "--max-clients=5");
    ok(conf != NULL && conf->max_bson_depth == 7 && conf->max_clients == 5,
         "MONGOCACHE_CONFIG names the config file; --name=value form");
    conf_destroy(conf);
    conf = LOAD(NULL, &err, "--config=" "/nonexistent.conf");
    ok(conf == NULL && strstr(err.message, "/nonexistent.conf") &&
             strstr(err.message, "flag --config"),
         "--config beats MONGOCACHE_CONFIG: %s", err.message);
    conf_destroy(conf);
    conf = LOAD(NULL, &err, "--config=", "--listen", "127.0.0.1:1");
    ok(conf != NULL && conf->max_bson_depth == 200 && conf->config_path == NULL,
         "--config= reads no file");
    conf_destroy(conf);
    unsetenv(CONF_ENV_CONFIG);

    /* Later flags win; an env variable set to "" is a value. */
    setenv("MONGOCACHE_LISTEN_UNIX", "/tmp/m.sock", 1);
    setenv("MONGOCACHE_LISTEN", "", 1);
    conf = LOAD(NULL, &err, "--max-clients", "1", "--max-clients=2");
    ok(conf != NULL && conf->max_clients == 2, "the last of two flags wins");
    ok(conf != NULL && strcmp(conf->listen, "") == 0 &&
             strcmp(conf->source[CONF_OPT_listen], "env MONGOCACHE_LISTEN") == 0,
         "an empty env variable sets an empty value");
    conf_destroy(conf);
    clear_env();
}

static void
test_layer_errors(void)
{
    const char *path = write_file("bad-layer.conf", "\n\nmax_clients = lots\n", 0600);
    bson_error_t err;
    struct conf *conf;
    char *want;

    clear_env();
    conf = LOAD(NULL, &err, "--max-clients", "abc");
    ok(conf == NULL, "bad flag value refused");
    t_is_str(err.message,
             "invalid value \"abc\" for max_clients (from flag --max-clients): expected an "
             "integer from 1 to 1000000",
             "flag error names option, value and flag");

    setenv("MONGOCACHE_MAX_CLIENTS", "abc", 1);
    conf = LOAD(NULL, &err, "--check-config");
    ok(conf == NULL, "bad env value refused, also with --check-config");
    t_is_str(err.message,
             "invalid value \"abc\" for max_clients (from env MONGOCACHE_MAX_CLIENTS): expected "
             "an integer from 1 to 1000000",
             "env error names option, value and variable");
    conf = LOAD(NULL, &err, "--max-clients", "5");
    ok(conf == NULL, "a bad env value is an error even when a flag overrides it");
    unsetenv("MONGOCACHE_MAX_CLIENTS");

    conf = LOAD(NULL, &err, "--config", path);
    want = bson_strdup_printf("invalid value \"lots\" for max_clients (from %s:3): expected an "
                              "integer from 1 to 1000000",
                              path);
    ok(conf == NULL, "bad file value refused");
    t_is_str(err.message, want, "file error names option, value and FILE:LINE");
    bson_free(want);

    conf = LOAD(NULL, &err, "--listen", "", "--listen-unix", "");
    ok(conf == NULL && strstr(err.message, "nothing to listen on"),
         "listen and listen_unix both empty refused: %s", err.message);
    conf = LOAD(NULL, &err, "--listen", "", "--listen-unix", "/tmp/x.sock");
    ok(conf != NULL, "listen empty with listen_unix set is fine");
    conf_destroy(conf);
    conf = LOAD(NULL, &err, "--http-listen", "0.0.0.0:9180");
    ok(conf == NULL && strstr(err.message, "http_token must be set") &&
             strstr(err.message, "0.0.0.0:9180") && strstr(err.message, "flag --http-listen"),
         "non-loopback http_listen without http_token refused: %s", err.message);
    conf = LOAD(NULL, &err, "--http-listen", "0.0.0.0:9180", "--http-token", "t0k");
    ok(conf != NULL, "non-loopback http_listen with a token is fine");
    conf_destroy(conf);
    conf = LOAD(NULL, &err, "--http-listen", "[::1]:9180");
    ok(conf != NULL, "[::1] http_listen needs no token");
    conf_destroy(conf);
    clear_env();
}

static void
test_cli(void)
{
    bson_error_t err;
    enum conf_action action;
    struct conf *conf;

    clear_env();
    conf = LOAD(&action, &err, "--bogus", "1");
    ok(conf == NULL && strstr(err.message, "unknown flag \"--bogus\""), "unknown flag: %s",
         err.message);
    conf = LOAD(&action, &err, "--http-tokn=s3cret");
    ok(conf == NULL && strstr(err.message, "\"--http-tokn\"") && !strstr(err.message, "s3cret"),
         "a mistyped flag is named without its value: %s", err.message);
    conf = LOAD(&action, &err, "--max_clients", "5");
    ok(conf == NULL && strstr(err.message, "unknown flag"), "flags use '-', not '_'");
    conf = LOAD(&action, &err, "-x");
    ok(conf == NULL && strstr(err.message, "unknown flag \"-x\""), "unknown short flag");
    conf = LOAD(&action, &err, "stray");
    ok(conf == NULL && strstr(err.message, "unexpected argument 1") &&
             !strstr(err.message, "stray"),
         "positional argument refused without echoing it: %s", err.message);
    conf = LOAD(&action, &err, "--listen");
    ok(conf == NULL && strstr(err.message, "flag --listen needs a value"),
         "flag without a value: %s", err.message);
    conf = LOAD(&action, &err, "--config");
    ok(conf == NULL && strstr(err.message, "--config needs a value"), "--config without a value");

    conf = LOAD(&action, &err, "--help");
    ok(conf != NULL && action == CONF_ACTION_HELP, "--help");
    conf_destroy(conf);
    conf = LOAD(&action, &err, "-h");
    ok(conf != NULL && action == CONF_ACTION_HELP, "-h");
    conf_destroy(conf);
    conf = LOAD(&action, &err, "--version");
    ok(conf != NULL && action == CONF_ACTION_VERSION, "--version");
    conf_destroy(conf);
    conf = LOAD(&action, &err, "-V");
    ok(conf != NULL && action == CONF_ACTION_VERSION, "-V");
    conf_destroy(conf);
    conf = LOAD(&action, &err, "--check-config");
    ok(conf != NULL && action == CONF_ACTION_CHECK, "--check-config");
    conf_destroy(conf);
    conf = LOAD(&action, &err, "--bogus", "--max-clients", "0", "--help");
    ok(conf != NULL && action == CONF_ACTION_HELP, "--help wins over errors on the line");
    conf_destroy(conf);
    setenv("MONGOCACHE_MAX_CLIENTS", "zero", 1);
    conf = LOAD(&action, &err, "--version");
    ok(conf != NULL && action == CONF_ACTION_VERSION, "--version works with a bad env value");
    conf_destroy(conf);
    clear_env();
    conf = LOAD(&action, &err, "--check-config", "--log-level", "error");
    ok(conf != NULL && action == CONF_ACTION_CHECK && conf->log_level == CONF_LOG_ERROR,
         "--check-config with options");
    conf_destroy(conf);
}

/* ---- secrets ------------------------------------------------------------------ */

/* Runs conf_load with stderr captured into *stderr_text (bson_free). */
static struct conf *
load_capturing_stderr(char **stderr_text, bson_error_t *err, const char *const *flags)
{
    const char *cap = write_file("stderr.txt", "", 0600);
    int saved = dup(2);
    int fd = open(cap, O_WRONLY | O_TRUNC);
    struct conf *conf;
    FILE *in;
    char buf[4096];
    size_t n;

    fflush(stderr);
    dup2(fd, 2);
    close(fd);
    conf = load_argv(NULL, err, flags);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    in = fopen(cap, "r");
    n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    *stderr_text = bson_strdup(buf);
    return conf;
}

static void
test_secrets(void)
{
    const char *tokfile = write_file("token", "from-a-file-t0k3n\n", 0600);
    const char *loose = write_file("loose-token", "loose-t0k3n\r\n", 0644);
    const char *cfg = write_file("secret.conf", "http_token = file-s3cret-value\n", 0600);
    bson_error_t err;
    struct conf *conf;
    char *out;
    char *warn;
    char *arg;

    clear_env();
    conf = LOAD(NULL, &err, "--http-token", "flag-s3cret-value", "--upstream",
                "mongodb://admin:uri-s3cret-pw@db.example.com:27017/app");
    ok(conf != NULL, "secret flag and URI with a password load");
    t_is_str(conf->http_token, "flag-s3cret-value", "the secret's value is kept");
    out = print_to_string(conf);
    t_lacks(out, "flag-s3cret-value", "conf_print does not show the SECRET");
    t_lacks(out, "uri-s3cret-pw", "conf_print does not show the URI password");
    t_contains(out, "http_token = <redacted>  # flag --http-token", "the SECRET prints <redacted>");
    t_contains(out,
               "upstream = mongodb://admin:<redacted>@db.example.com:27017/app  # flag --upstream",
               "the URI prints with its password redacted");
    bson_free(out);
    conf_destroy(conf);

    setenv("MONGOCACHE_HTTP_TOKEN", "env-s3cret-value", 1);
    conf = LOAD(NULL, &err, "--check-config");
    out = conf != NULL ? print_to_string(conf) : bson_strdup("");
    ok(conf != NULL && strcmp(conf->http_token, "env-s3cret-value") == 0, "secret from env");
    t_lacks(out, "env-s3cret-value", "conf_print hides a SECRET from env");
    bson_free(out);
    conf_destroy(conf);
    unsetenv("MONGOCACHE_HTTP_TOKEN");

    conf = LOAD(NULL, &err, "--config", cfg);
    out = conf != NULL ? print_to_string(conf) : bson_strdup("");
    ok(conf != NULL && strcmp(conf->http_token, "file-s3cret-value") == 0,
         "secret from the config file");
    t_lacks(out, "file-s3cret-value", "conf_print hides a SECRET from the file");
    bson_free(out);
    conf_destroy(conf);

    arg = bson_strdup_printf("file:%s", tokfile);
    conf = load_capturing_stderr(&warn, &err, (const char *const[]){"--http-token", arg, NULL});
    ok(conf != NULL && strcmp(conf->http_token, "from-a-file-t0k3n") == 0,
         "file:/path reads the secret, trailing newline trimmed");
    t_is_str(warn, "", "no warning for a 0600 secret file");
    out = conf != NULL ? print_to_string(conf) : bson_strdup("");
    t_lacks(out, "from-a-file-t0k3n", "conf_print hides a secret read from a file");
    bson_free(out);
    bson_free(warn);
    bson_free(arg);
    conf_destroy(conf);

    arg = bson_strdup_printf("--http-token=file:%s", loose);
    conf = load_capturing_stderr(&warn, &err, (const char *const[]){arg, NULL});
    ok(conf != NULL && strcmp(conf->http_token, "loose-t0k3n") == 0,
         "file:/path trims a CRLF line end");
    t_is_str(warn, "", "conf/ writes nothing itself: warnings are the caller's to show");
    bson_free(warn);
    warn = conf != NULL ? join_notes(&conf->warnings) : bson_strdup("");
    t_contains(warn, "readable by group or others", "a group/world readable secret file warns");
    t_contains(warn, loose, "the warning names the file");
    t_lacks(warn, "loose-t0k3n", "the warning does not show the secret");
    bson_free(warn);
    bson_free(arg);
    conf_destroy(conf);

    /* Error messages never show a secret. */
    conf = LOAD(NULL, &err, "--http-token", "never-shown-t0k", "--max-clients", "0");
    ok(conf == NULL && !strstr(err.message, "never-shown-t0k"),
         "an error elsewhere does not show the secret");
    conf = LOAD(NULL, &err, "--upstream", "mongodb://admin:never-shown-pw@h:0/");
    ok(conf == NULL && strstr(err.message, "upstream") && !strstr(err.message, "never-shown-pw"),
         "a bad URI's error hides its password: %s", err.message);
    conf = LOAD(NULL, &err, "--upstream", "mongodb://admin:never/shown@h/");
    ok(conf == NULL && !strstr(err.message, "never/shown") && !strstr(err.message, "shown"),
         "an unparseable URI's password is hidden too: %s", err.message);
    clear_env();
}

static void
test_scrub(void)
{
    char a0[] = "mongocache";
    char a1[] = "--http-token";
    char a2[] = "scrub-me-t0k3n";
    char a3[] = "--upstream=mongodb://admin:scrub-pw@db:27017/x";
    char a4[] = "--upstream";
    char a5[] = "mongodb://u:pw2@h:1";
    char a6[] = "--max-clients";
    char a7[] = "42";
    char a8[] = "--http-token=other-t0k";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, NULL};
    struct conf *conf = conf_new();
    enum conf_action action;
    bson_error_t err;
    bool good;

    clear_env();
    good = conf_load(conf, 9, argv, &action, &err);
    ok(good, "conf_load with secrets in argv");
    t_is_str(argv[2], "xxxxxxxxxxxxxx", "argv: a SECRET flag's separate value is overwritten");
    t_is_str(argv[3], "--upstream=mongodb://admin:xxxxxxxx@db:27017/x",
             "argv: a URI flag's password is overwritten (--name=value)");
    t_is_str(argv[5], "mongodb://u:xxx@h:1", "argv: ... (--name value)");
    t_is_str(argv[8], "--http-token=xxxxxxxxx", "argv: a SECRET --name=value is overwritten");
    t_is_str(argv[7], "42", "argv: other values are left alone");
    t_is_str(argv[1], "--http-token", "argv: flag names are left alone");
    t_is_str(conf->http_token, "other-t0k", "the last secret flag wins");
    t_is_str(conf->upstream, "mongodb://u:pw2@h:1", "the URI keeps its password in conf");
    ok(conf->n_flags == 8 && strcmp(conf->flags[1], "scrub-me-t0k3n") == 0,
         "conf keeps its own unscrubbed copy of the flags");
    conf_destroy(conf);

    {
        char b0[] = "mongocache";
        char b1[] = "--http-token";
        char b2[] = "file:/run/secrets/token";
        char b3[] = "--max-clients";
        char b4[] = "0";
        char *bargv[] = {b0, b1, b2, b3, b4, NULL};

        conf = conf_new();
        good = conf_load(conf, 5, bargv, &action, &err);
        ok(!good, "conf_load failing");
        t_is_str(bargv[2], "file:/run/secrets/token", "a file:/path secret is only a file name");
        conf_destroy(conf);
    }
    {
        char c0[] = "mongocache";
        char c1[] = "--http-token=fail-t0k";
        char c2[] = "--bogus";
        char *cargv[] = {c0, c1, c2, NULL};

        conf = conf_new();
        good = conf_load(conf, 3, cargv, &action, &err);
        ok(!good && strcmp(cargv[1], "--http-token=xxxxxxxx") == 0,
             "argv is scrubbed even when loading fails");
        conf_destroy(conf);
    }
}

/* ---- reload ------------------------------------------------------------------ */

static void
test_reload(void)
{
    const char *path = write_file("reload.conf",
                                  "max_clients = 100\n"
                                  "listen = 127.0.0.1:5000\n",
                                  0600);
    struct conf *conf;
    struct conf *next;
    bson_error_t err;

    clear_env();
    conf = LOAD(NULL, &err, "--config", path, "--http-token", "kept-t0k", "--drain-timeout", "3s");
    if (!ok(conf != NULL, "initial load")) {
        return;
    }
    write_file("reload.conf",
               "# changed\n"
               "max_clients = 200\n"
               "log_level = debug\n"
               "listen = 127.0.0.1:5001\n"
               "drain_timeout = 9s\n",
               0600);
    setenv("MONGOCACHE_IDLE_TIMEOUT", "1m", 1);
    next = conf_reload(conf, &err);
    if (ok(next != NULL, "reload after the file changed")) {
        char *src = bson_strdup_printf("%s:2", path);

        t_is_int(next->max_clients, 200, "reload: new file value");
        t_is_str(next->source[CONF_OPT_max_clients], src, "reload: new FILE:LINE source");
        t_is_int(next->log_level, CONF_LOG_DEBUG, "reload: option newly set in the file");
        t_is_int(next->idle_timeout, 60000, "reload: environment read again");
        t_is_int(next->drain_timeout, 3000, "reload: saved flags still win over the file");
        t_is_str(next->http_token, "kept-t0k", "reload: saved secret flag re-applied");
        t_is_str(next->listen, "127.0.0.1:5001", "reload: non-reloadable value read too");
        ok(conf_differs(conf, next, CONF_OPT_max_clients), "conf_differs: max_clients");
        ok(conf_differs(conf, next, CONF_OPT_listen), "conf_differs: listen");
        ok(conf_differs(conf, next, CONF_OPT_log_level), "conf_differs: log_level");
        ok(!conf_differs(conf, next, CONF_OPT_http_token), "conf_differs: same http_token");
        ok(!conf_differs(conf, next, CONF_OPT_upstream), "conf_differs: same upstream");
        ok(!conf_differs(conf, next, CONF_OPT_buffer_limit), "conf_differs: same buffer_limit");
        t_is_int(conf->max_clients, 100, "reload leaves the old configuration alone");
        bson_free(src);
        conf_destroy(next);
    }
    write_file("reload.conf", "max_clients = many\n", 0600);
    next = conf_reload(conf, &err);
    ok(next == NULL && strstr(err.message, "\"many\" for max_clients"),
         "reload of an invalid file fails with the reason: %s", err.message);
    unlink(path);
    next = conf_reload(conf, &err);
    ok(next == NULL && strstr(err.message, path), "reload of a removed file fails");
    t_is_int(conf->max_clients, 100, "the old configuration stays in force");
    conf_destroy(conf);
    clear_env();
}

/* ---- every problem, and the users' check (issue 6 item 16) ------------------------ */

/*
 * Runs conf_load on flags like load_argv, with check installed (NULL:
 * none), and returns the conf whether it loaded or not (*good says), so
 * that its errors and warnings can be read. Free with conf_destroy.
 */
static struct conf *
load_keep(conf_check_fn check, bool *good, bson_error_t *err, const char *const *flags)
{
    char *argv[32];
    int argc = 0;
    struct conf *conf = conf_new();
    enum conf_action action;

    conf_set_check(conf, check);
    argv[argc++] = bson_strdup("mongocache");
    for (; *flags != NULL; flags++) {
        BSON_ASSERT(argc < 31);
        argv[argc++] = bson_strdup(*flags);
    }
    argv[argc] = NULL;
    memset(err, 0, sizeof *err);
    *good = conf_load(conf, argc, argv, &action, err);
    for (int i = 0; i < argc; i++) {
        bson_free(argv[i]);
    }
    return conf;
}

#define KEEP(check, good, err, ...)                                                               \
    load_keep((check), (good), (err), (const char *const[]){__VA_ARGS__, NULL})

static void
test_every_error(void)
{
    const char *path = write_file("many.conf",
                                  "max_clients = 7\n"          /* 1: good */
                                  "max_bson_depth = deep\n"    /* 2: bad value */
                                  "listen 127.0.0.1:1\n"       /* 3: no '=' */
                                  "idle_timout = 5s\n"         /* 4: unknown, near */
                                  "pid_file = \"/run/x\n"      /* 5: no closing quote */
                                  "drain_timeout = 3s\n"       /* 6: good */
                                  "buffer_limit = 12\n",       /* 7: below 1KiB */
                                  0600);
    bson_error_t err;
    struct conf *conf;
    bool good;
    char *all;
    char *want;

    clear_env();
    conf = KEEP(NULL, &good, &err, "--config", path, "--check-config");
    ok(!good, "a file with five bad lines is refused");
    t_is_int((long long)conf->errors.n, 5, "... and every bad line is one error");
    all = join_notes(&conf->errors);
    for (int line = 2; line <= 7; line++) {
        char *at = bson_strdup_printf("%s:%d", path, line);

        if (line == 6) {
            t_lacks(all, at, "a good line between bad ones is no error");
        } else {
            t_contains(all, at, "each bad line is named by FILE:LINE");
        }
        bson_free(at);
    }
    want = bson_strdup_printf("%s:4: unknown option \"idle_timout\" (did you mean idle_timeout?)",
                              path);
    t_contains(all, want, "an unknown option names the one it may have meant");
    bson_free(want);
    t_is_int(conf->max_clients, 7, "good lines are applied (before a bad one)");
    t_is_int(conf->drain_timeout, 3000, "good lines are applied (after a bad one)");
    t_contains(err.message, "(and 4 more problems)", "error: the first problem, and how many more");
    t_contains(err.message, "max_bson_depth", "error: the first problem is the first line's");
    bson_free(all);
    conf_destroy(conf);

    /* Every layer at once: file, environment, flags, and a combination. */
    setenv("MONGOCACHE_CONNECT_TIMEOUT", "soon", 1);
    setenv("MONGOCACHE_MAX_CLIENTS", "0", 1);
    conf = KEEP(NULL, &good, &err, "--config", path, "--idle-timeout", "x", "--listen", "",
                "--listen-unix", "");
    all = join_notes(&conf->errors);
    ok(!good, "bad values in every layer are refused");
    t_contains(all, "(from env MONGOCACHE_CONNECT_TIMEOUT)", "... the first env error");
    t_contains(all, "(from env MONGOCACHE_MAX_CLIENTS)", "... the second env error");
    t_contains(all, "(from flag --idle-timeout)", "... the flag error");
    t_contains(all, "nothing to listen on", "... and the combination");
    t_is_int((long long)conf->errors.n, 9, "... nine in all");
    bson_free(all);
    conf_destroy(conf);
    clear_env();

    /* Unknown flags: every one, with the nearest flag. */
    conf = KEEP(NULL, &good, &err, "--max-clents", "5", "--bogus", "--listen=x", "stray");
    all = join_notes(&conf->errors);
    ok(!good, "unknown flags refused");
    t_contains(all, "unknown flag \"--max-clents\" (did you mean --max-clients?)",
               "an unknown flag names the one it may have meant");
    t_contains(all, "unknown flag \"--bogus\" (see --help)", "a second unknown flag is reported");
    t_contains(all, "unexpected argument", "a stray argument too");
    bson_free(all);
    conf_destroy(conf);
    conf = KEEP(NULL, &good, &err, "--bogus", "--help");
    ok(good && conf->errors.n == 0, "--help still wins over unknown flags, with no errors left");
    conf_destroy(conf);
}

static void
test_unknown_env(void)
{
    bson_error_t err;
    struct conf *conf;
    bool good;
    char *all;

    clear_env();
    setenv("MONGOCACHE_LISTN", "127.0.0.1:7", 1);
    setenv("MONGOCACHE_CACHE_TTL_OVERRIDE", "a.b=1s", 1);
    setenv("MONGOCACHE_CONFG", "/x", 1);
    setenv("MONGOCACHE_TOKEN", "s3cret-env-value", 1);
    setenv("MONGOCACHE_max_clients", "3", 1);
    conf = KEEP(NULL, &good, &err, "--check-config");
    all = join_notes(&conf->warnings);
    ok(good && conf->errors.n == 0, "unknown MONGOCACHE_* variables are not errors");
    t_contains(all,
               "unknown environment variable MONGOCACHE_LISTN is ignored; did you mean "
               "MONGOCACHE_LISTEN?",
               "a misspelt variable: warning with did you mean");
    t_contains(all, "MONGOCACHE_CACHE_TTL_OVERRIDE is ignored; did you mean "
                    "MONGOCACHE_CACHE_TTL_OVERRIDES?",
               "a missing letter");
    t_contains(all, "MONGOCACHE_CONFG is ignored; did you mean MONGOCACHE_CONFIG?",
               "MONGOCACHE_CONFIG is known too");
    t_contains(all, "MONGOCACHE_max_clients is ignored; did you mean MONGOCACHE_MAX_CLIENTS?",
               "the wrong case");
    t_contains(all, "unknown environment variable MONGOCACHE_TOKEN is ignored (--help",
               "a variable near nothing: no suggestion");
    t_lacks(all, "s3cret-env-value", "values are never shown");
    t_is_str(conf->listen, "127.0.0.1:27018", "an unknown variable sets nothing");
    t_is_int((long long)conf->warnings.n, 5, "one warning per unknown variable");
    bson_free(all);
    conf_destroy(conf);
    unsetenv("MONGOCACHE_LISTN");
    unsetenv("MONGOCACHE_CACHE_TTL_OVERRIDE");
    unsetenv("MONGOCACHE_CONFG");
    unsetenv("MONGOCACHE_TOKEN");
    unsetenv("MONGOCACHE_max_clients");
    setenv("MONGOCACHE_MAX_CLIENTS", "9", 1);
    conf = KEEP(NULL, &good, &err, "--check-config");
    ok(good && conf->warnings.n == 0, "known variables draw no warning");
    conf_destroy(conf);
    clear_env();
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

static void
test_loopback(void)
{
    static const struct {
        const char *host;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},     {"127.255.0.9", true}, {"::1", true},
        {"localhost", true},     {"0:0:0:0:0:0:0:1", true},
        {"127.example.com", false}, {"0.0.0.0", false}, {"10.0.0.1", false},
        {"::", false},           {"localhost.evil", false}, {"", false},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ok(conf_host_is_loopback(cases[i].host) == cases[i].loopback, "loopback(\"%s\") is %s",
           cases[i].host, cases[i].loopback ? "true" : "false");
    }
}

/* What the proxy's check (proxy/check.c) refuses, through conf_load. */
static const struct {
    const char *flag;
    const char *value;
    const char *want; /* NULL: accepted; else in the error */
} check_cases[] = {
    {"--cache-include", "a.b, c.*", NULL},
    {"--cache-include", "nodot", "invalid value \"nodot\" for cache_include (from flag "
                                 "--cache-include): invalid entry \"nodot\" in cache_include"},
    {"--cache-include", ".x", "invalid entry \".x\""},
    {"--cache-exclude", "a.", "invalid entry \"a.\" in cache_exclude"},
    {"--cache-exclude", "a.b=1s", "invalid entry \"a.b=1s\" in cache_exclude"},
    {"--cache-ttl-overrides", "a.b=30s, c.*=0, d.e = 100ms", NULL},
    {"--cache-ttl-overrides", "demo=10s", "invalid entry \"demo=10s\" in cache_ttl_overrides"},
    {"--cache-ttl-overrides", "a.b", "invalid entry \"a.b\""},
    {"--cache-ttl-overrides", "a.b=1.5s", "invalid entry \"a.b=1.5s\""},
    {"--cache-ttl-overrides", "a.b=nan", "invalid entry \"a.b=nan\""},
    {"--cache-ttl-overrides", "a.b=1e300h", "invalid entry \"a.b=1e300h\""},
    {"--cache-ttl-overrides", "a.b=-1s", "invalid entry \"a.b=-1s\""},
    {"--cache-ttl-overrides", "a.b=169h", "invalid entry \"a.b=169h\""},
    {"--redis", "redis://127.0.0.1:6379/2", NULL},
    {"--redis", "", NULL},
    {"--redis", "http://x", "invalid value for redis (from flag --redis): invalid Redis URL"},
    {"--redis", "redis://:never-shown@h:99999", "invalid value for redis"},
    {"--listen", "127.0.0.1:27018", NULL},
    {"--listen", "[::1]:27018", NULL},
    {"--listen", "localhost:27018", "the listener needs a numeric address"},
    {"--listen-unix", "/tmp/x.sock", NULL},
    {"--listen-unix",
     "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaa.sock",
     "a unix socket path must be shorter than 108 bytes"},
    {"--upstream", "mongodb://db.example.com:27017", NULL},
    {"--upstream", "mongodb://%2Ftmp%2Fmongodb-27017.sock", NULL},
    {"--upstream", "mongodb://h:1/?directConnection=true&readPreference=primary&tls=false", NULL},
    {"--upstream", "mongodb://h:1/?tls=true", "tls: TLS to the upstream is not supported yet"},
    {"--upstream", "mongodb://h:1/?SSL=true", "SSL: TLS to the upstream is not supported yet"},
    {"--upstream", "mongodb://h:1/?tlsInsecure=true", "tlsInsecure: TLS to the upstream"},
    {"--upstream", "mongodb://a:1,b:2,c:3", "it names 3 hosts"},
    {"--upstream", "mongodb://h:1/?replicaSet=rs0", "replicaSet: following a replica set"},
    {"--upstream", "mongodb://u:never-shown@h:1/", "user name and password: the proxy never logs"},
    {"--upstream", "mongodb://u@h:1/", "user name and password"},
    {"--upstream", "mongodb://h:1/?authSource=admin", "authSource: the proxy never logs in"},
    {"--upstream", "mongodb://h:1/?authMechanism=MONGODB-X509", "authMechanism: the proxy never"},
    {"--upstream", "mongodb://h:1/?directConnection=false", "directConnection=false"},
    {"--upstream", "mongodb://h:1/?loadBalanced=true", "loadBalanced: the proxy does not"},
    {"--upstream", "mongodb://h:1/?readPreference=nearest", "readPreference: the proxy forwards"},
    {"--upstream", "mongodb://h:1/?readPreference=secondary&maxStalenessSeconds=120",
     "maxStalenessSeconds: the proxy forwards each client's own read preference"},
    {"--upstream", "mongodb://h:1/?w=1", "w: the proxy forwards each client's own write concern"},
    {"--upstream", "mongodb://h:1/?wtimeoutMS=5", "wtimeoutMS: the proxy forwards"},
    {"--upstream", "mongodb://h:1/?readConcernLevel=local", "readConcernLevel: the proxy"},
    {"--upstream", "mongodb+srv://cluster.example.com", "mongodb+srv:// is not supported"},
};

static void
test_check(void)
{
    bson_error_t err;
    struct conf *conf;
    bool good;

    clear_env();
    /* Every default passes the check: start-up with no configuration works. */
    conf = KEEP(proxy_check_option, &good, &err, "--check-config");
    ok(good, "the defaults pass the proxy's check: %s", err.message);
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        char why[256] = "";

        if (!proxy_check_option(conf, (enum conf_opt_id)id, d->def, "default", why, sizeof why)) {
            ok(false, "default of %s passes the check: %s", d->name, why);
        }
    }
    conf_destroy(conf);

    /* The cases name one option each; redis also needs a secret (a rule of conf/ itself). */
    setenv("MONGOCACHE_CACHE_KEY_SECRET", "check-cases-secret", 1);
    for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
        const char *want = check_cases[i].want;

        conf = KEEP(proxy_check_option, &good, &err, check_cases[i].flag, check_cases[i].value);
        if (want == NULL) {
            ok(good, "check accepts %s %s: %s", check_cases[i].flag, check_cases[i].value,
               err.message);
        } else {
            ok(!good && strstr(err.message, want) != NULL && !strstr(err.message, "never-shown"),
               "check refuses %s %s: %s", check_cases[i].flag, check_cases[i].value,
               err.message);
        }
        conf_destroy(conf);
        /* The same value passes conf/ alone: the refusal is the check's. */
        if (want != NULL && strncmp(check_cases[i].value, "mongodb+srv", 11) != 0) {
            conf = KEEP(NULL, &good, &err, check_cases[i].flag, check_cases[i].value);
            if (!good && strcmp(check_cases[i].flag, "--listen-unix") != 0) {
                diag("conf alone refuses %s too: %s", check_cases[i].value, err.message);
            }
            conf_destroy(conf);
        }
    }

    /* A refused value leaves the old one; the check runs for overridden layers too. */
    {
        const char *path = write_file("check.conf",
                                      "cache_include = a.b\n"
                                      "cache_include = nodot\n"
                                      "redis = http://x\n",
                                      0600);
        char *all;

        conf = KEEP(proxy_check_option, &good, &err, "--config", path, "--cache-include", "c.d",
                    "--redis", "");
        all = join_notes(&conf->errors);
        ok(!good && conf->errors.n == 2, "a file's bad lines are refused even when flags override "
                                          "them (%zu errors)",
           conf->errors.n);
        t_contains(all, ":2): invalid entry \"nodot\"", "... each with its line");
        t_contains(all, ":3): invalid Redis URL", "... each with its line (2)");
        t_is_str(conf->cache_include, "c.d", "the flag's value is in place");
        bson_free(all);
        conf_destroy(conf);
    }

    /* Warnings for upstream options that change nothing. */
    conf = KEEP(proxy_check_option, &good, &err, "--upstream",
                "mongodb://h:1/app?appName=x&connectTimeoutMS=100&maxPoolSize=5");
    {
        char *all = join_notes(&conf->warnings);

        ok(good, "driver tuning options are accepted");
        t_contains(all,
                   "upstream options appName, connectTimeoutMS, maxPoolSize (from flag "
                   "--upstream) have no effect",
                   "... with one warning naming them");
        t_contains(all, "the database in upstream (from flag --upstream) has no effect",
                   "... and one for the database");
        bson_free(all);
    }
    conf_destroy(conf);

    /* SIGHUP: the reload keeps the check. */
    {
        const char *path = write_file("reload-check.conf", "cache_exclude = a.b\n", 0600);
        struct conf *next;

        conf = KEEP(proxy_check_option, &good, &err, "--config", path);
        ok(good, "load with the check");
        write_file("reload-check.conf", "cache_exclude = a\n", 0600);
        next = conf_reload(conf, &err);
        ok(next == NULL && strstr(err.message, "invalid entry \"a\" in cache_exclude"),
           "a reload runs the same check: %s", err.message);
        write_file("reload-check.conf", "cache_exclude = a.c\nmax_clients = 2\n", 0600);
        next = conf_reload(conf, &err);
        ok(next != NULL && next->check == proxy_check_option && next->max_clients == 2,
           "a good reload keeps the check");
        conf_destroy(next);
        conf_destroy(conf);
    }
    clear_env();
}

/* ---- generated output ------------------------------------------------------ */

static void
test_usage_print(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    bool all_flags = true;
    int reloadable = 0;
    int marked = 0;
    struct conf *conf;
    struct conf *back;
    bson_error_t err;
    const char *path;
    char *text;
    bool same = true;

    conf_usage(out, "/usr/bin/mongocache");
    fclose(out);
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        char flag[64];

        conf_cli_flag_name((enum conf_opt_id)id, flag, sizeof flag);
        if (!strstr(buf, flag) || !strstr(buf, d->env) || !strstr(buf, d->help)) {
            all_flags = false;
            diag("--help lacks %s, %s or its help", flag, d->env);
        }
        reloadable += d->reloadable;
    }
    for (const char *p = buf; (p = strstr(p, " (reloadable)\n")) != NULL; p++) {
        marked++;
    }
    ok(all_flags, "--help shows every option's flag, env variable and help");
    t_is_int(marked, reloadable, "--help marks each reloadable option (reloadable)");
    t_contains(buf, "Usage: mongocache ", "--help uses the program's base name");
    t_contains(buf, "--check-config", "--help shows --check-config");
    t_contains(buf, "env MONGOCACHE_MAX_CLIENTS, default \"10000\" (reloadable)",
               "--help shows env, default and (reloadable)");
    free(buf);

    /* conf_print's output is a config file that reads back to the same values. */
    clear_env();
    conf = LOAD(NULL, &err, "--listen-unix", "/tmp/a b#c.sock", "--pid-file", "\"q\"",
                "--idle-timeout", "1500ms", "--buffer-limit", "2M", "--log-level", "error",
                "--upstream", "mongodb://h1:1,h2:2/?replicaSet=rs");
    if (!ok(conf != NULL, "load for the print round trip")) {
        return;
    }
    text = print_to_string(conf);
    ok(strncmp(text, "listen = ", 9) == 0, "conf_print starts with the first option");
    t_contains(text, "\nmax_clients = 10000  # default\n",
               "a line per option: name = value  # source");
    t_contains(text, "\nidle_timeout = 1500ms  # flag --idle-timeout\n",
               "durations print with a unit");
    path = write_file("printed.conf", text, 0600);
    back = LOAD(NULL, &err, "--config", path);
    if (ok(back != NULL, "conf_print output loads as a config file")) {
        for (int id = 0; id < CONF_OPT_COUNT; id++) {
            if (conf_differs(conf, back, (enum conf_opt_id)id)) {
                same = false;
                diag("%s differs after the round trip", conf_opt_name((enum conf_opt_id)id));
            }
        }
        ok(same, "... with the same values");
    }
    bson_free(text);
    conf_destroy(back);
    conf_destroy(conf);
}

int
main(void)
{
    strcpy(tmpdir, "/tmp/test_conf_XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    clear_env();
    mongoc_log_set_handler(NULL, NULL); /* refused URIs make libmongoc log; keep TAP output clean */

    test_table();
    test_int();
    test_size();
    test_duration();
    test_bool_level();
    test_addr();
    test_uri();
    test_redact_uri();
    test_formats();
    test_set_errors();
    test_file();
    test_precedence();
    test_layer_errors();
    test_cli();
    test_secrets();
    test_scrub();
    test_reload();
    test_every_error();
    test_unknown_env();
    test_near();
    test_loopback();
    test_check();
    test_usage_print();

    for (int i = 0; i < n_tmpfiles; i++) {
        unlink(tmpfiles[i]);
        bson_free(tmpfiles[i]);
    }
    rmdir(tmpdir);
    return done_testing();
}
