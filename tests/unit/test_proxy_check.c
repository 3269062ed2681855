/*
 * tests/unit/test_proxy_check.c: TAP tests of proxy/check.c, the proxy's check of the
 * configuration: what it refuses and accepts (upstream, listen addresses, redis,
 * cache_include/exclude, cache_ttl_overrides), through every layer of conf_load and across a
 * reload.
 */
#include "config.h"

#include "conf/conf.h"
#include "conf/parse.h"
#include "proxy/check.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

/* What the proxy's check (proxy/check.c) refuses, through conf_load. */
static const struct {
    const char *flag;
    const char *value;
    const char *want; /* NULL: accepted; else in the error */
} check_cases[] = {
    {"--cache-include", "a.b, c.*", NULL},
    {"--cache-include", "nodot",
     "invalid value \"nodot\" for cache_include (from flag "
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
    {"--upstream", "mongodb://h:1/?tls=true", NULL},
    {"--upstream", "mongodb://h:1/?SSL=true", NULL},
    {"--upstream", "mongodb://h:1/?tlsCAFile=/ca.pem&tlsCertificateKeyFile=/c.pem", NULL},
    {"--upstream", "mongodb://h:1/?tls=true&tlsAllowInvalidHostnames=true", NULL},
    {"--upstream", "mongodb://h:1/?tlsInsecure=true", NULL},
    {"--upstream", "mongodb://h:1/?tls=true&tlsCertificateKeyFilePassword=never-shown",
     "tlsCertificateKeyFilePassword: the proxy's TLS to the upstream does not support"},
    {"--upstream", "mongodb://h:1/?tls=true&tlsDisableOCSPEndpointCheck=true",
     "tlsDisableOCSPEndpointCheck: the proxy's TLS to the upstream does not support"},
    /* several hosts and a replica set are followed by the topology monitor */
    {"--upstream", "mongodb://a:1,b:2,c:3", NULL},
    {"--upstream", "mongodb://a:1,b:2/?replicaSet=rs0&heartbeatFrequencyMS=500", NULL},
    /* credentials: the monitor's own login (proxy/topology.c) */
    {"--upstream", "mongodb://u:never-shown@h:1/", NULL},
    {"--upstream", "mongodb://u:never-shown@h:1/?authSource=admin&authMechanism=SCRAM-SHA-256",
     NULL},
    {"--upstream", "mongodb://h:1/?tls=true&authMechanism=MONGODB-X509", NULL},
    {"--upstream", "mongodb://u:never-shown@h:1/?w=1", "w: the proxy forwards"},
    {"--upstream", "mongodb://h:1/?directConnection=false", NULL},
    /* loadBalanced=true: each hello sent upstream says so; libmongoc's rules */
    {"--upstream", "mongodb://h:1/?loadBalanced=true", NULL},
    {"--upstream", "mongodb://a:1,b:2/?loadBalanced=true",
     "\"loadbalanced\" enabled must not contain more than one host"},
    {"--upstream", "mongodb://h:1/?loadBalanced=true&replicaSet=rs0",
     "\"loadbalanced\" enabled must not contain option \"replicaset\""},
    {"--upstream", "mongodb://h:1/?loadBalanced=true&directConnection=true",
     "must not contain option \"directconnection\" enabled"},
    {"--upstream", "mongodb://h:1/?readPreference=nearest", "readPreference: the proxy forwards"},
    {"--upstream", "mongodb://h:1/?readPreference=secondary&maxStalenessSeconds=120",
     "maxStalenessSeconds: the proxy forwards each client's own read preference"},
    {"--upstream", "mongodb://h:1/?w=1", "w: the proxy forwards each client's own write concern"},
    {"--upstream", "mongodb://h:1/?wtimeoutMS=5", "wtimeoutMS: the proxy forwards"},
    {"--upstream", "mongodb://h:1/?readConcernLevel=local", "readConcernLevel: the proxy"},
    /* mongodb+srv://: the monitor looks its servers up (proxy/topology.h) */
    {"--upstream", "mongodb+srv://cluster.example.com", NULL},
    {"--upstream", "mongodb+srv://cluster.example.com/?srvServiceName=mdb&srvMaxHosts=2", NULL},
    {"--upstream", "mongodb+srv://cluster.example.com/?tls=false", NULL},
    {"--upstream", "mongodb+srv://cluster.example.com/?loadBalanced=true", NULL},
    {"--upstream", "mongodb+srv://cluster.example.com/?loadBalanced=true&srvMaxHosts=2",
     "srvmaxhosts must not be specified with loadbalanced=true"},
    {"--tls-cert-file", "", NULL},
    {"--tls-cert-file", "/nonexistent/cert.pem", "cannot read /nonexistent/cert.pem"},
    {"--tls-key-file", "/nonexistent/key.pem", "for tls_key_file (from flag --tls-key-file)"},
    {"--tls-ca-file", "/nonexistent/ca.pem", "for tls_ca_file (from flag --tls-ca-file)"},
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
        if (want != NULL) {
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
                "mongodb://h:1/app?appName=x&connectTimeoutMS=100&maxPoolSize=5&socketTimeoutMS=9");
    {
        char *all = join_notes(&conf->warnings);

        ok(good, "driver tuning options are accepted");
        t_contains(all,
                   "upstream options maxPoolSize, socketTimeoutMS (from flag --upstream) have no "
                   "effect",
                   "... with one warning naming them (not those the topology monitor reads)");
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

int
main(void)
{
    conf_test_begin();
    test_check();
    return conf_test_end();
}
