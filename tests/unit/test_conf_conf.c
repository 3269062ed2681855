/*
 * tests/unit/test_conf_conf.c: TAP tests of conf/conf.c: the option table, precedence of
 * default < file < environment < flag with each value's source, errors across the layers,
 * secrets kept out of output and errors, SIGHUP reload, every bad line, variable and flag
 * reported at once, conf_host_is_loopback and the generated --help/--check-config. Each
 * module's own rules are in test_conf_parse.c, test_conf_file.c, test_conf_cli.c and
 * test_conf_env.c; the proxy's check in test_proxy_check.c.
 */
#include "config.h"

#include "conf/cli.h"
#include "conf/conf.h"
#include "conf/env.h"
#include "conf/parse.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

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

/* ---- secrets ------------------------------------------------------------------ */

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
    conf_test_begin();
    test_table();
    test_precedence();
    test_layer_errors();
    test_secrets();
    test_reload();
    test_every_error();
    test_loopback();
    test_usage_print();
    return conf_test_end();
}
