/*
 * tests/unit/test_conf_cli.c: TAP tests of conf/cli.c: flags through conf_load (values,
 * --help/--version/--check-config actions, errors naming the flag) and argv scrubbing of
 * secrets.
 */
#include "config.h"

#include "conf/cli.h"
#include "conf/conf.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

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

int
main(void)
{
    conf_test_begin();
    test_cli();
    test_scrub();
    return conf_test_end();
}
