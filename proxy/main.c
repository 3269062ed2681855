/*
 * proxy/main.c: start-up and ordered shutdown, nothing else.
 *   configuration (checked by proxy/check.c as it is read) -> logging ->
 *   event base -> upstream address and its monitor -> listeners -> HTTP endpoint ->
 *   signals -> loop -> drain -> free in reverse order.
 * --check-config is the same configuration step, stopped before logging:
 * both run conf_load with the same check installed, so the check refuses
 * exactly what start-up would (exit status 2, every problem on its own
 * line of stderr). SIGTERM/SIGINT drain (server.c), SIGHUP reloads what can
 * be reloaded, through the same check. A service manager hears of each step
 * (proxy/notify.c): READY=1 when the listeners accept, RELOADING=1 then
 * READY=1 around a reload (applied or refused), STOPPING=1 at the drain.
 */
#include "config.h"

#include "advice/secret.h"
#include "cache/cache.h"
#include "conf/conf.h"
#include "conf/log.h"
#include "proxy/admin.h"
#include "proxy/advice.h"
#include "proxy/check.h"
#include "proxy/client.h"
#include "proxy/cursor.h"
#include "proxy/hello.h"
#include "proxy/io.h"
#include "proxy/listener.h"
#include "proxy/notify.h"
#include "proxy/request.h"
#include "proxy/server.h"
#include "proxy/topology.h"
#include "proxy/tls.h"
#include "wire/compress.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* log_format (validated by conf: logfmt or json) into the log writer. */
static void
apply_log_format(const struct conf *conf)
{
    int kind = CONF_LOG_KIND_LOGFMT;

    (void)conf_log_kind_parse(conf->log_format, &kind);
    conf_log_set_kind(kind);
}

/*
 * libmongoc parses the upstream URI here (conf/parse.c, proxy/check.c,
 * proxy/server.c) and runs the index advisor's client and the topology
 * monitor's on their threads (advice/advisor.c, proxy/topology.c; conf_log
 * is safe from any thread). Its warnings
 * repeat what proxy/check.c reports (an option with no effect) or what the
 * advisor's state shows, so they are logged at debug level; its errors as
 * errors. Either way through conf_log, escaped like any value, and once the
 * configuration is loaded with the secrets of upstream and advice_uri (both
 * may carry credentials) scrubbed: arg is then a struct log_secrets, read
 * only, which libmongoc's log lock keeps from being freed under a message
 * (main resets the handler first).
 */
struct log_secrets {
    struct advice_secrets uri[2]; /* upstream's, advice_uri's */
};

static void
mongoc_log_cb(mongoc_log_level_t level, const char *domain, const char *message, void *arg)
{
    const struct log_secrets *secrets = arg;
    char *once = NULL, *twice = NULL;
    const char *text = message ? message : "";

    if (secrets != NULL) {
        once = advice_secrets_scrub(&secrets->uri[0], text, CONF_LOG_LINE_MAX);
        twice = advice_secrets_scrub(&secrets->uri[1], once, CONF_LOG_LINE_MAX);
        text = twice;
    }
    conf_log(level <= MONGOC_LOG_LEVEL_CRITICAL ? CONF_LOG_ERROR : CONF_LOG_DEBUG, 0, "libmongoc",
             "domain=%s msg=\"%s\"", domain ? domain : "-", text);
    bson_free(once);
    bson_free(twice);
}

/* The secrets of a connection string (as written and as libmongoc decodes it). */
static void
log_secrets_add(struct advice_secrets *secrets, const char *text)
{
    mongoc_uri_t *uri = text[0] ? mongoc_uri_new_with_error(text, NULL) : NULL;

    advice_secrets_init(secrets, text[0] ? text : NULL, uri);
    mongoc_uri_destroy(uri);
}

/* Logs each warning of a loaded configuration (the log is up by then). */
static void
log_warnings(const struct conf *conf)
{
    for (size_t i = 0; i < conf->warnings.n; i++)
        conf_log(CONF_LOG_WARN, 0, "config_warning", "msg=\"%s\"", conf->warnings.lines[i]);
}

/* Writes "mongocache: PREFIXTEXT" and a newline to stderr, control bytes of text as \xNN. */
static void
print_line(const char *prefix, const char *text)
{
    fprintf(stderr, "mongocache: %s", prefix);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
}

/*
 * Writes a configuration's problems to stderr, before there is a log:
 * warnings, then every error (when refused).
 */
static void
print_problems(const struct conf *conf, bool refused)
{
    for (size_t i = 0; i < conf->warnings.n; i++)
        print_line("warning: ", conf->warnings.lines[i]);
    if (!refused)
        return;
    for (size_t i = 0; i < conf->errors.n; i++)
        print_line("", conf->errors.lines[i]);
    if (conf->errors.n > 1)
        fprintf(stderr, "mongocache: %zu errors in the configuration\n", conf->errors.n);
}

/* conf_reload_merge's report: each changed option, applied or kept until a restart. */
static void
report_reload(enum conf_opt_id id, bool applied, void *arg)
{
    (void)arg;
    if (applied)
        conf_log(CONF_LOG_INFO, 0, "reload_applied", "option=%s", conf_opt_name(id));
    else
        conf_log(CONF_LOG_WARN, 0, "reload_ignored",
                 "option=%s msg=\"this option needs a restart; the old value stays\"",
                 conf_opt_name(id));
}

/* The clients' TLS context in force: logged (its certificate), the old one dropped. */
static void
set_tls_clients(struct proxy_server *server, struct proxy_tls *tls)
{
    char subject[PROXY_TLS_FIELD], not_after[PROXY_TLS_FIELD], serial[PROXY_TLS_FIELD];

    if (server->tls_clients && !tls)
        conf_log(CONF_LOG_WARN, 0, "tls_clients_off",
                 "msg=\"the reload removed tls_cert_file: new client connections are "
                 "plaintext\"");
    proxy_tls_destroy(server->tls_clients);
    server->tls_clients = tls;
    if (tls) {
        proxy_tls_describe(tls, subject, not_after, serial);
        conf_log(CONF_LOG_INFO, 0, "tls_clients",
                 "client_certificates=%s subject=\"%s\" not_after=\"%s\" serial=%s",
                 server->conf->tls_ca_file[0] ? "required" : "no", subject, not_after, serial);
    }
}

static void
apply_reload(struct proxy_server *server, struct conf *next)
{
    struct conf *old = server->conf;

    conf_reload_merge(old, next, report_reload, NULL);
    server->conf = next;
    conf_destroy(old);
    conf_log_set_level(server->conf->log_level);
    apply_log_format(server->conf);
}

/* Tells the service manager state (proxy/notify.h); a failure is logged, the proxy runs on. */
static void
notify(const char *state)
{
    bson_error_t error;

    if (!proxy_notify_send(state, &error))
        conf_log(CONF_LOG_WARN, 0, "notify_failed", "state=%.16s error=\"%s\"", state,
                 error.message);
}

/* A reload refused: logged, next (NULL: none) dropped, the running configuration kept. */
static void
refuse_reload(struct conf *next, const bson_error_t *error)
{
    conf_log(CONF_LOG_ERROR, 0, "reload_failed",
             "error=\"%s\" msg=\"fix the configuration; the running one stays in force\"",
             error->message);
    conf_destroy(next);
    notify("READY=1");
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy_server *server = arg;
    bson_error_t error;
    struct proxy_tls *tls = NULL;
    struct conf *next;

    (void)what;
    if (sig == SIGHUP) {
        if (!proxy_notify_reloading(&error))
            conf_log(CONF_LOG_WARN, 0, "notify_failed", "error=\"%s\"", error.message);
        next = conf_reload(server->conf, &error);
        if (!next) {
            refuse_reload(NULL, &error);
            return;
        }
        /* The certificate files are read again even when their names did not change
         * (renewed in place); a file that cannot be used refuses the whole reload. */
        if (!proxy_tls_clients_load(next, &tls, &error)) {
            refuse_reload(next, &error);
            return;
        }
        if (server->cache && !cache_reconfigure(server->cache, next, &error)) {
            proxy_tls_destroy(tls);
            refuse_reload(next, &error);
            return;
        }
        apply_reload(server, next);
        set_tls_clients(server, tls); /* new connections get it; open ones keep theirs */
        proxy_advice_reconfigure(server->advice);
        proxy_server_memory_check(server); /* max_memory may have risen */
        log_warnings(server->conf);
        conf_log(CONF_LOG_INFO, 0, "reloaded", NULL);
        notify("READY=1");
        return;
    }
    conf_log(CONF_LOG_INFO, 0, "signal", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    notify("STOPPING=1");
    proxy_server_drain(server);
}

/* ---- what server.c reports up (struct proxy_server_hooks) ---------------- */

static void
hook_memory_low(struct proxy_server *server)
{
    proxy_client_memory_resume_all(server);
}

static void
hook_fd_freed(struct proxy_server *server)
{
    if (server->listener)
        proxy_listener_fd_freed(server->listener);
}

static void
hook_stop_accepting(struct proxy_server *server)
{
    proxy_listener_destroy(server->listener);
    server->listener = NULL;
}

static void
hook_drain_clients(struct proxy_server *server)
{
    proxy_client_drain_all(server);
}

static void
hook_upstream_moved(struct proxy_server *server)
{
    proxy_client_retire_moved(server);
}

/*
 * A replica set's primary changed: what the cache holds was read from the
 * old one, which may have had writes the new one never got (rolled back),
 * so every entry goes, here and in the Redis tier (a flush, as an
 * operator's: its Redis confirmation is not waited for).
 */
static void
hook_primary_changed(struct proxy_server *server, const char *from, const char *to)
{
    struct cache_write_wait *wait;
    enum cache_drop_state state;
    size_t dropped = 0;

    if (!server->cache || !cache_enabled(server->cache))
        return;
    state = cache_admin_drop(server->cache, NULL, 0, NULL, NULL, &wait, &dropped);
    conf_log(state == CACHE_DROP_NOT_SENT ? CONF_LOG_WARN : CONF_LOG_INFO, 0, "cache_flushed",
             "reason=primary_changed from=%s to=%s dropped=%zu redis=%s msg=\"what the old "
             "primary answered may have been rolled back\"",
             from, to, dropped,
             state == CACHE_DROP_NOT_SENT ? "not_sent"
             : state == CACHE_DROP_WAITING ? "sent"
                                           : "none");
}

static bool
write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return false;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0;
}

/*
 * libmongoc (initialized before main by its own constructor, as Debian
 * builds it) keeps its counters in a shared-memory file named after the
 * PID, /dev/shm/mongoc-PID, removed by mongoc_cleanup. A proxy killed with
 * -9 left it behind, and a later process given the same PID (pid_max is
 * often 32768) then got a libmongoc warning on standard error, even for
 * --check-config. The name is removed at once instead: the mapping, and
 * the counters in it, live on until the process ends, and nothing is left
 * however it ends. The proxy reads none of those counters.
 */
static void
forget_mongoc_counters_file(void)
{
    char name[32];

    snprintf(name, sizeof name, "/mongoc-%d", (int)getpid());
    (void)shm_unlink(name);
}

int
main(int argc, char **argv)
{
    struct proxy_server server;
    enum conf_action action;
    bson_error_t error;
    struct event *sig_term = NULL, *sig_int = NULL, *sig_hup = NULL;
    struct proxy_tls *tls = NULL;
    char *redacted;
    int status = 1;
    bool advisor_stopped = true, topology_stopped = true;
    struct log_secrets log_secrets;

    memset(&server, 0, sizeof server);
    memset(&log_secrets, 0, sizeof log_secrets);
    server.started = time(NULL);
    TAILQ_INIT(&server.clients);
    server.next_reply_id = 1;
    mongoc_log_set_handler(mongoc_log_cb, NULL);
    mongoc_init();
    forget_mongoc_counters_file();
    server.conf = conf_new();
    conf_set_check(server.conf, proxy_check_option);
    if (!conf_load(server.conf, argc, argv, &action, &error)) {
        print_problems(server.conf, true);
        conf_destroy(server.conf);
        mongoc_cleanup();
        return 2;
    }
    switch (action) {
    case CONF_ACTION_HELP:
        conf_usage(stdout, argv[0]);
        status = 0;
        goto out_conf;
    case CONF_ACTION_VERSION:
        printf("mongocache %s\n", PACKAGE_VERSION);
        /* What the compressors option can offer (configure's --without-X). */
        printf("compressors:");
        for (int id = 0; id < WIRE_COMPRESSOR_COUNT; id++)
            if (wire_compress_built(id))
                printf(" %s", wire_compress_name(id));
        printf("\n");
        status = 0;
        goto out_conf;
    case CONF_ACTION_CHECK:
        print_problems(server.conf, false);
        conf_print(server.conf, stdout);
        status = 0;
        goto out_conf;
    case CONF_ACTION_RUN:
        break;
    }
    log_secrets_add(&log_secrets.uri[0], server.conf->upstream);
    log_secrets_add(&log_secrets.uri[1], server.conf->advice_uri);
    mongoc_log_set_handler(mongoc_log_cb, &log_secrets);
    conf_log_set_level(server.conf->log_level);
    apply_log_format(server.conf);
    log_warnings(server.conf);
    signal(SIGPIPE, SIG_IGN);

    server.base = event_base_new();
    server.dns = server.base ? evdns_base_new(server.base, EVDNS_BASE_INITIALIZE_NAMESERVERS)
                             : NULL;
    if (!server.base) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "error=\"cannot create event base\"");
        goto out;
    }
    if (!server.dns)
        server.dns = evdns_base_new(server.base, 0);
    bson_oid_init(&server.service_id, NULL);
    server.cursors = proxy_cursors_new(server.base, &server.mem_referenced);
    /* Batches fit the limits hello advertises (max_message_size is not reloadable). */
    proxy_cursors_set_max_batch_bytes(
        server.cursors, (size_t)proxy_hello_max_bson_size(0, server.conf->max_message_size));
    server.cache = cache_new(server.conf, server.base, &error);
    if (server.cache) {
        server.advice = proxy_advice_new(&server, &error);
        if (!server.advice && error.code) {
            conf_log(CONF_LOG_ERROR, 0, "startup_failed", "error=\"%s\"", error.message);
            goto out;
        }
    }
    if (!server.cache) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "error=\"%s\"", error.message);
        goto out;
    }
    server.hooks.memory_low = hook_memory_low;
    server.hooks.fd_freed = hook_fd_freed;
    server.hooks.stop_accepting = hook_stop_accepting;
    server.hooks.drain_clients = hook_drain_clients;
    server.hooks.upstream_moved = hook_upstream_moved;
    server.hooks.primary_changed = hook_primary_changed;
    if (!proxy_server_set_upstream(&server, &error)) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "option=upstream error=\"%s\"",
                 error.message);
        goto out;
    }
    if (!proxy_tls_clients_load(server.conf, &tls, &error)) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "error=\"%s\"", error.message);
        goto out;
    }
    set_tls_clients(&server, tls);
    server.tls_upstream = proxy_tls_upstream_new(server.conf->upstream, &error);
    if (!server.tls_upstream && error.code) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "option=upstream error=\"%s\"",
                 error.message);
        goto out;
    }
    if (server.tls_upstream && proxy_tls_relaxed(server.tls_upstream)[0])
        conf_log(CONF_LOG_WARN, 0, "upstream_tls_unverified",
                 "unchecked=%s msg=\"the upstream URI turns off TLS %s verification: a "
                 "machine in the middle can pose as the server; never in production\"",
                 proxy_tls_relaxed(server.tls_upstream), proxy_tls_relaxed(server.tls_upstream));
    server.topology = proxy_topology_new(&server, &error);
    if (!server.topology) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "option=upstream error=\"%s\"",
                 error.message);
        goto out;
    }
    server.listener = proxy_listener_new(&server, &error);
    if (!server.listener) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "error=\"%s\"", error.message);
        goto out;
    }
    memset(&error, 0, sizeof error);
    server.admin = proxy_admin_new(&server, &error);
    if (!server.admin && error.code) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "option=http_listen error=\"%s\"",
                 error.message);
        goto out;
    }
    if (server.conf->pid_file[0] && !write_pid_file(server.conf->pid_file)) {
        conf_log(CONF_LOG_ERROR, 0, "startup_failed", "option=pid_file path=%s error=\"%s\"",
                 server.conf->pid_file, strerror(errno));
        goto out;
    }
    sig_term = evsignal_new(server.base, SIGTERM, signal_cb, &server);
    sig_int = evsignal_new(server.base, SIGINT, signal_cb, &server);
    sig_hup = evsignal_new(server.base, SIGHUP, signal_cb, &server);
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);
    evsignal_add(sig_hup, NULL);

    redacted = conf_redact_uri(server.conf->upstream);
    conf_log(CONF_LOG_INFO, 0, "started",
             "version=%s listen=%s tls=%s listen_unix=%s upstream=%s upstream_tls=%s http=%s "
             "max_clients=%lld cache=%s cache_memory=%lld",
             PACKAGE_VERSION, server.conf->listen[0] ? server.conf->listen : "-",
             server.tls_clients ? "on" : "off",
             server.conf->listen_unix[0] ? server.conf->listen_unix : "-", redacted,
             server.tls_upstream ? "on" : "off", server.admin ? server.conf->http_listen : "-",
             (long long)server.conf->max_clients, server.conf->cache ? "on" : "off",
             (long long)server.conf->cache_memory);
    bson_free(redacted);
    notify("READY=1");

    event_base_dispatch(server.base);
    conf_log(CONF_LOG_INFO, 0, "stopped", "clients_left=%llu",
             (unsigned long long)server.n_clients);
    status = 0;
out:
    proxy_client_free_all(&server);
    proxy_request_free_spares(&server.spares);
    proxy_io_loop_free(server.io);
    proxy_cursors_destroy(server.cursors);
    advisor_stopped = proxy_advice_destroy(server.advice);
    topology_stopped = proxy_topology_destroy(server.topology);
    cache_destroy(server.cache);
    proxy_admin_destroy(server.admin);
    proxy_listener_destroy(server.listener);
    proxy_tls_destroy(server.tls_clients);
    proxy_tls_destroy(server.tls_upstream);
    if (sig_term)
        event_free(sig_term);
    if (sig_int)
        event_free(sig_int);
    if (sig_hup)
        event_free(sig_hup);
    if (server.drain_timer)
        event_free(server.drain_timer);
    if (server.memory_ev)
        event_free(server.memory_ev);
    if (server.dns)
        evdns_base_free(server.dns, 0);
    if (server.base)
        event_base_free(server.base);
    bson_free(server.upstream_host);
    bson_free(server.upstream_label);
out_conf:
    mongoc_log_set_handler(mongoc_log_cb, NULL); /* waits for a message being logged */
    advice_secrets_cleanup(&log_secrets.uri[0]);
    advice_secrets_cleanup(&log_secrets.uri[1]);
    conf_destroy(server.conf);
    if (advisor_stopped && topology_stopped)
        mongoc_cleanup(); /* else a thread left behind may still be inside libmongoc */
    return status;
}
