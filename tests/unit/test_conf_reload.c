/*
 * tests/unit/test_conf_reload.c: conf_reload_merge, the SIGHUP merge. Two
 * configurations differing in options that need a restart (a string, a
 * number, a bool) and in reloadable ones: every difference is reported once,
 * in options.def order, applied or not as options.def says; next keeps the
 * running value of each restart-only option and its own of the rest; strings
 * are swapped, not shared (each struct frees its own: ASan checks), and
 * options equal in both are not reported.
 */
#include "config.h"

#include "conf/conf.h"
#include "tests/unit/tap.h"

#include <string.h>

#define MAX_SEEN 16

struct seen {
    int n;
    enum conf_opt_id id[MAX_SEEN];
    bool applied[MAX_SEEN];
};

static void
record(enum conf_opt_id id, bool applied, void *arg)
{
    struct seen *s = arg;

    if (s->n < MAX_SEEN) {
        s->id[s->n] = id;
        s->applied[s->n] = applied;
    }
    s->n++;
}

/* conf_load on flags (argv[0] added); NULL-terminated. */
static struct conf *
load(const char *const *flags)
{
    char *argv[32];
    int argc = 0;
    struct conf *conf = conf_new();
    enum conf_action action;
    bson_error_t err;
    bool good;

    argv[argc++] = bson_strdup("mongocache");
    for (; *flags; flags++)
        argv[argc++] = bson_strdup(*flags);
    argv[argc] = NULL;
    good = conf_load(conf, argc, argv, &action, &err);
    for (int i = 0; i < argc; i++)
        bson_free(argv[i]);
    if (!good) {
        diag("conf_load: %s", err.message);
        conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int
main(void)
{
    static const char *const a_flags[] = {
        "--upstream", "mongodb://a.example:27017", "--listen", "127.0.0.1:1001",
        "--max-message-size", "1MB", "--max-clients", "10", "--advice", "false",
        "--cache-ttl", "5s", NULL};
    static const char *const b_flags[] = {
        "--upstream", "mongodb://b.example:27017", "--listen", "127.0.0.1:1002",
        "--max-message-size", "2MB", "--max-clients", "20", "--advice", "true",
        "--cache-ttl", "5s", NULL};
    static const enum conf_opt_id want[] = {CONF_OPT_listen, CONF_OPT_upstream,
                                            CONF_OPT_max_clients, CONF_OPT_max_message_size,
                                            CONF_OPT_advice};
    static const bool want_applied[] = {false, false, true, false, false};
    struct conf *old = load(a_flags), *next = load(b_flags);
    struct seen seen = {0};
    bool order = true;

    plan(10);
    if (!old || !next) {
        ok(false, "both configurations load");
        return 1;
    }
    conf_reload_merge(old, next, record, &seen);
    is_int(seen.n, 5, "five options differ, each reported once");
    for (int i = 0; i < 5 && i < seen.n; i++)
        order = order && seen.id[i] == want[i] && seen.applied[i] == want_applied[i];
    ok(order, "in options.def order, applied only when reloadable (max_clients)");
    is_str(next->listen, "127.0.0.1:1001", "listen needs a restart: next keeps the running one");
    is_str(next->upstream, "mongodb://a.example:27017", "so does upstream");
    is_int(next->max_message_size, 1000000, "so does max_message_size (a number)");
    ok(!next->advice, "so does advice (a bool)");
    is_int(next->max_clients, 20, "max_clients is reloadable: next's value is taken");
    is_int(next->cache_ttl, 5000, "an option equal in both keeps its value");
    is_str(old->listen, "127.0.0.1:1002", "the strings were swapped: old holds next's to free");
    ok(old->listen != next->listen, "and no string is shared between the two");
    conf_destroy(old);
    conf_destroy(next);
    return 0;
}
