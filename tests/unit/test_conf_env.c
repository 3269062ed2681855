/*
 * tests/unit/test_conf_env.c: TAP tests of conf/env.c: unknown MONGOCACHE_* variables are
 * warnings, not errors, each with "did you mean" and never its value; known ones draw none.
 */
#include "config.h"

#include "conf/conf.h"
#include "conf/env.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

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

int
main(void)
{
    conf_test_begin();
    test_unknown_env();
    return conf_test_end();
}
