/*
 * proxy/topology.c: the upstream's topology (see topology.h). Owns the
 * monitoring thread, its libmongoc client (with the guard on its
 * connections), the mailbox and pipe that bring each new view to the loop,
 * the view in force, the choice of a server for each new connection, the
 * upstream_topology log lines and the "topology" part of /stats. It does not
 * connect (proxy/server.c, upstream.c) nor end connections (client.c, told
 * through server->hooks.upstream_moved).
 *
 * Two threads, and what each may touch:
 *
 *   worker thread                       mailbox (mu)        loop thread
 *   select_server -> APM topology  -->  [pending view] -->  on_view: apply()
 *   changed (td copied); post()         + 1 byte on the pipe
 *
 * - The worker makes every libmongoc call (the URI, the client, server
 *   selection, the APM callback, which runs inside selection on this same
 *   thread) and touches nothing of the loop's. Its state (struct worker)
 *   is never read by the loop.
 * - A view is built by the worker and owned by the mailbox until the loop
 *   takes it; a newer one replaces one not yet taken (freed then by the
 *   worker): only the latest matters. The pipe only wakes the loop; a full
 *   pipe loses nothing, the mailbox holds the view. The loop holds mu only
 *   to take a pointer.
 * - advice/advisor.c runs its own client the same way (one thread, one
 *   single-threaded client, the guard on every stream, secrets scrubbed
 *   from every error text with advice/secret.h); its reports are each
 *   wanted and go through the pipe itself, while a view replaces the last.
 *
 * The worker's loop: make the client if there is none yet (for
 * mongodb+srv:// that looks up the SRV and TXT records, and is tried
 * again every heartbeatFrequencyMS until it works: make_client), look the
 * SRV records up again when due (srv_rescan), then
 * mongoc_client_select_server for writes (a primary, a mongos or a
 * standalone), which in single-threaded mode checks every server again
 * once heartbeatFrequencyMS has passed since the last check, then sleep:
 * heartbeatFrequencyMS after a selection that found a server, 500 ms (the
 * drivers' minimum) after one that did not. Each time, the targets' host
 * names are resolved (getaddrinfo: DNS happens on this thread, never on
 * the loop's) and a view is posted (the loop drops one that says nothing
 * new: same_view). The sleep ends early
 * when the loop asks for a re-check (recheck, under mu): the worker then
 * makes a new client, whose first selection checks every server (renew),
 * at least 500 ms after the last selection ended.
 */
#include "config.h"

#include "proxy/topology.h"

#include "advice/guard.h"
#include "advice/secret.h"
#include "conf/error.h"
#include "conf/thread.h"
#include "conf/log.h"
#include "conf/random.h"
#include "proxy/server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* heartbeatFrequencyMS when the URI sets none: the multi-threaded drivers' default. */
#define DEFAULT_HEARTBEAT_MS 10000
/* How soon a selection that found no server is tried again (minHeartbeatFrequencyMS). */
#define RETRY_MS 500
/* Longest error text kept (bytes). */
#define MAX_ERROR_LEN 300
/* Most servers a view keeps. */
#define MAX_SERVERS 64

/* One server as the monitor last saw it. */
struct server_view {
    char *address; /* host:port, or the socket path (owned) */
    char *host;    /* owned */
    uint16_t port; /* 0: a unix socket */
    char type[24]; /* mongoc_server_description_type: "RSPrimary", "Mongos", ... */
    int64_t rtt_ms; /* -1: not known */
    bool target;   /* new connections go here */
    /* A target's address as the worker resolved host (getaddrinfo, the resolver
     * libmongoc's own connections use): the loop connects to it and never
     * resolves a name the monitor found. sa_len 0: not resolved (a unix
     * socket, not a target, or the lookup failed: the loop resolves host). */
    struct sockaddr_storage sa;
    socklen_t sa_len;
};

/* What the monitor knows, as handed to the loop. Owned: view_destroy. */
struct view {
    char type[32]; /* mongoc_topology_description_type */
    struct server_view *servers;
    uint32_t n;
    uint32_t n_targets;
    char *error; /* the last selection's failure (scrubbed), NULL when it found a server */
};

/* The worker's own state: only the worker thread touches it. */
struct worker {
    mongoc_uri_t *uri;
    mongoc_client_t *client; /* NULL until made; for mongodb+srv://, until the
                              * SRV and TXT lookups succeed */
    struct advice_guard guard;
    struct advice_secrets secrets;
    mongoc_topology_description_t *td; /* the latest description (APM), owned */
    char *error;                       /* the last selection's error, scrubbed */
    /* The targets' addresses last resolved (address and sa owned): a failed
     * lookup keeps its host's, as libmongoc keeps the addresses it connects to
     * (ten minutes). */
    struct server_view *known;
    uint32_t n_known;
    int64_t heartbeat_ms;
    int64_t checked_ms; /* when the last selection ended (now_ms) */
    /* The URI carries credentials (a user, or an authMechanism such as
     * MONGODB-X509): the monitor logs in with them (login_check). */
    bool auth;
    char *auth_error; /* the last login's failure, scrubbed; NULL after one succeeded */
    /* mongodb+srv:// (see srv_rescan) */
    bool srv;
    char *srv_hosts;     /* the SRV records' hosts the client was made with ("h:p,...") */
    char *srv_error;     /* the last failed rescan's error, scrubbed; NULL after one succeeded */
    int64_t srv_next_ms; /* monotonic ms of the next rescan */
};

struct proxy_topology {
    /* Loop thread only. */
    struct proxy_server *server;
    struct event *ev;
    int rfd;
    struct view *view; /* in force; NULL before the first */
    struct conf_random_pool random; /* which mongos a new connection goes to */
    uint64_t changes;  /* times the targets changed */
    uint64_t rechecks; /* immediate checks asked (proxy_topology_recheck) */
    char *primary;     /* the last replica set primary seen (its address), or NULL */

    /* Set before the thread starts, then read only. */
    int wfd;
    char *uri_text; /* a secret */
    int64_t connect_timeout_ms;
    int64_t srv_rescan_ms; /* upstream_srv_rescan */
    pthread_t thread;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    struct view *pending;
    bool recheck; /* the loop asks for a check now (proxy_topology_recheck) */
    bool started;
    bool start_ok;
    bson_error_t start_error;
    atomic_bool stop;
    struct conf_thread_end end; /* destroy gave up waiting: the worker frees the topology */

    struct worker w;
};

static void
view_destroy(struct view *v)
{
    if (v == NULL)
        return;
    for (uint32_t i = 0; i < v->n; i++) {
        bson_free(v->servers[i].address);
        bson_free(v->servers[i].host);
    }
    bson_free(v->servers);
    bson_free(v->error);
    bson_free(v);
}

/* Whether a server of this type takes new connections in a topology of that type. */
static bool
is_target(const char *topology, const char *server)
{
    if (strcmp(server, "Unknown") == 0)
        return false;
    if (strcmp(topology, "Single") == 0)
        return true;
    if (strcmp(topology, "LoadBalanced") == 0)
        return strcmp(server, "LoadBalancer") == 0;
    if (strcmp(topology, "ReplicaSetWithPrimary") == 0)
        return strcmp(server, "RSPrimary") == 0;
    if (strcmp(topology, "Sharded") == 0)
        return strcmp(server, "Mongos") == 0;
    return false;
}

/*
 * Whether v is a replica set with no primary of which a member answers (an
 * election): not one whose servers are all unreachable, or were all removed
 * (members of another set: the view's error says why, at once).
 */
static bool
electing(const struct view *v)
{
    if (v == NULL || v->n_targets != 0 || strcmp(v->type, "ReplicaSetNoPrimary") != 0)
        return false;
    for (uint32_t i = 0; i < v->n; i++)
        if (strcmp(v->servers[i].type, "Unknown") != 0)
            return true;
    return false;
}

/* Whether v knows address as a server that answered and is not a target. */
static bool
known_other(const struct view *v, const char *address)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (strcmp(v->servers[i].address, address) == 0)
            return !v->servers[i].target && strcmp(v->servers[i].type, "Unknown") != 0;
    return false;
}

/* ---- the worker ------------------------------------------------------------ */

/*
 * A target's address, looked up on the worker (getaddrinfo may block on
 * DNS: never on the loop). One address is kept: the first IPv4 one if
 * any, else the first. (getaddrinfo puts ::1 before 127.0.0.1 for
 * "localhost", and mongod listens on 127.0.0.1 only by default; libmongoc
 * tries each address in turn, the proxy's connect only the one.)
 */
static void
resolve(struct server_view *s)
{
    struct addrinfo hints, *ai = NULL;
    const struct addrinfo *use;
    char service[8];

    if (s->port == 0)
        return;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    bson_snprintf(service, sizeof service, "%u", (unsigned)s->port);
    if (getaddrinfo(s->host, service, &hints, &ai) != 0 || ai == NULL)
        return;
    for (use = ai; use != NULL && use->ai_family != AF_INET; use = use->ai_next)
        ;
    if (use == NULL)
        use = ai;
    if (use->ai_addrlen <= sizeof s->sa) {
        memcpy(&s->sa, use->ai_addr, use->ai_addrlen);
        s->sa_len = use->ai_addrlen;
    }
    if (ai != NULL)
        freeaddrinfo(ai);
}

/* Frees w's known addresses. */
static void
forget(struct worker *w)
{
    for (uint32_t i = 0; i < w->n_known; i++)
        bson_free(w->known[i].address);
    bson_free(w->known);
    w->known = NULL;
    w->n_known = 0;
}

/* Forgets w's known addresses and keeps v's targets' instead. */
static void
remember(struct worker *w, const struct view *v)
{
    forget(w);
    w->known = bson_malloc0((v->n + 1) * sizeof *w->known);
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->servers[i].sa_len == 0)
            continue;
        w->known[w->n_known] = v->servers[i];
        w->known[w->n_known].host = NULL;
        w->known[w->n_known++].address = bson_strdup(v->servers[i].address);
    }
}

/* A view of td (NULL: none yet) with the worker's error; its targets resolved. */
static struct view *
view_build(struct worker *w, const mongoc_topology_description_t *td, const char *error)
{
    struct view *v = bson_malloc0(sizeof *v);
    mongoc_server_description_t **sds;
    size_t n = 0, all;

    bson_strncpy(v->type, td ? mongoc_topology_description_type(td) : "Unknown",
                 sizeof v->type);
    v->error = error ? bson_strdup(error) : NULL;
    if (td == NULL)
        return v;
    sds = mongoc_topology_description_get_servers(td, &all);
    n = all > MAX_SERVERS ? MAX_SERVERS : all;
    v->servers = bson_malloc0((n + 1) * sizeof *v->servers);
    for (size_t i = 0; i < n; i++) {
        const mongoc_host_list_t *h = mongoc_server_description_host(sds[i]);
        struct server_view *s = &v->servers[v->n];

        if (h == NULL)
            continue;
        s->address = bson_strdup(h->host_and_port);
        s->host = bson_strdup(h->host);
        s->port = h->family == AF_UNIX ? 0 : h->port;
        bson_strncpy(s->type, mongoc_server_description_type(sds[i]), sizeof s->type);
        s->rtt_ms = mongoc_server_description_round_trip_time(sds[i]);
        s->target = is_target(v->type, s->type);
        if (s->target)
            resolve(s);
        for (uint32_t k = 0; s->target && s->sa_len == 0 && k < w->n_known; k++)
            if (strcmp(w->known[k].address, s->address) == 0) {
                s->sa = w->known[k].sa;
                s->sa_len = w->known[k].sa_len;
            }
        v->n_targets += s->target;
        v->n++;
    }
    mongoc_server_descriptions_destroy_all(sds, all);
    remember(w, v);
    return v;
}

/* APM: the topology description changed (inside a selection, on the worker). */
static void
topology_changed(const mongoc_apm_topology_changed_t *event)
{
    struct worker *w = mongoc_apm_topology_changed_get_context(event);

    if (w->td != NULL)
        mongoc_topology_description_destroy(w->td);
    w->td = mongoc_topology_description_new_copy(
        mongoc_apm_topology_changed_get_new_description(event));
}

/* Hands a view to the loop; one not yet taken is replaced. */
static void
post(struct proxy_topology *t, struct view *v)
{
    struct view *old;
    uint8_t byte = 1;
    ssize_t n;

    pthread_mutex_lock(&t->mu);
    old = t->pending;
    t->pending = v;
    pthread_mutex_unlock(&t->mu);
    view_destroy(old);
    do {
        n = write(t->wfd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the loop has a wake-up pending already. */
}

/* Sleeps ms, or until stop (or, when for_recheck, until a re-check is asked: true). */
static bool
nap(struct proxy_topology *t, int64_t ms, bool for_recheck)
{
    struct timespec until;
    bool asked;

    if (ms < 0)
        ms = 0;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&t->mu);
    while (!atomic_load(&t->stop) && !(for_recheck && t->recheck))
        if (pthread_cond_timedwait(&t->wake, &t->mu, &until) == ETIMEDOUT)
            break;
    asked = for_recheck && t->recheck;
    pthread_mutex_unlock(&t->mu);
    return asked;
}

/* Sets an option the URI leaves out. */
static void
default_int32(mongoc_uri_t *uri, const char *key, int64_t value)
{
    if (!mongoc_uri_has_option(uri, key))
        mongoc_uri_set_option_as_int32(uri, key, value > INT32_MAX ? INT32_MAX : (int32_t)value);
}

/*
 * Start-up on the worker: the URI parsed (no I/O), then new() is told how
 * it went. The client is made after that, by the worker's loop (for a
 * mongodb+srv URI that is when names are looked up).
 */
static bool
start(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    bson_error_t error;
    bool ok;

    mongoc_init();
    memset(&error, 0, sizeof error);
    w->uri = mongoc_uri_new_with_error(t->uri_text, &error);
    if (w->uri != NULL) {
        default_int32(w->uri, MONGOC_URI_HEARTBEATFREQUENCYMS, DEFAULT_HEARTBEAT_MS);
        default_int32(w->uri, MONGOC_URI_CONNECTTIMEOUTMS, t->connect_timeout_ms);
        /* replies must stay messages the guard can check: never compressed */
        mongoc_uri_set_compressors(w->uri, NULL);
        if (mongoc_uri_get_appname(w->uri) == NULL)
            mongoc_uri_set_appname(w->uri, "mongocache-monitor");
        w->heartbeat_ms = mongoc_uri_get_option_as_int32(w->uri, MONGOC_URI_HEARTBEATFREQUENCYMS,
                                                         DEFAULT_HEARTBEAT_MS);
        if (w->heartbeat_ms < RETRY_MS)
            w->heartbeat_ms = RETRY_MS;
        w->srv = mongoc_uri_get_srv_hostname(w->uri) != NULL;
        w->auth = mongoc_uri_get_username(w->uri) != NULL ||
                  mongoc_uri_get_auth_mechanism(w->uri) != NULL;
    }
    advice_secrets_init(&w->secrets, t->uri_text, w->uri);
    pthread_mutex_lock(&t->mu);
    t->started = true;
    t->start_ok = ok = w->uri != NULL;
    if (!ok) {
        char *msg = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);

        bson_set_error(&t->start_error, error.domain, error.code, "upstream: %s", msg);
        bson_free(msg);
    }
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A client on w->uri, the guard on its streams and the APM callback set.
 * For mongodb+srv:// libmongoc looks the SRV and TXT records up here
 * (source/initial-dns-seedlist-discovery/: res_nsearch, blocking this
 * thread only; hosts outside the name's domain dropped, TXT options other
 * than authSource, replicaSet and loadBalanced refused) and the client's
 * URI holds what they said (a TXT record's loadBalanced=true with more than
 * one SRV record is refused by libmongoc, as the specification says).
 * NULL with *text set (scrubbed, bson_free) on failure.
 */
static mongoc_client_t *
make_client(struct worker *w, char **text)
{
    bson_error_t error;
    mongoc_client_t *client;
    mongoc_apm_callbacks_t *cbs;

    memset(&error, 0, sizeof error);
    client = mongoc_client_new_from_uri_with_error(w->uri, &error);
    if (client == NULL) {
        char *msg = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);

        *text = bson_strdup_printf("upstream: %s", msg);
        bson_free(msg);
        return NULL;
    }
    if (w->srv && mongoc_uri_get_replica_set(w->uri) == NULL &&
        mongoc_uri_get_replica_set(mongoc_client_get_uri(client)) != NULL) {
        /* libmongoc 1.23 puts a TXT record's replicaSet in the client's URI but
         * not in its topology (whose set name comes from the URI given): any
         * set's members would be followed. Named in the URI, it is checked;
         * made again (the records looked up again) once, the URI now naming it. */
        mongoc_uri_set_option_as_utf8(w->uri, MONGOC_URI_REPLICASET,
                                      mongoc_uri_get_replica_set(mongoc_client_get_uri(client)));
        mongoc_client_destroy(client);
        return make_client(w, text);
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_stream_initiator(client, advice_guard_initiator, &w->guard);
    cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_topology_changed_cb(cbs, topology_changed);
    mongoc_client_set_apm_callbacks(client, cbs, w);
    mongoc_apm_callbacks_destroy(cbs);
    return client;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The hosts client was made with ("h:p,..." sorted: DNS answers come in any order). */
static char *
hosts_text(mongoc_client_t *client)
{
    const mongoc_host_list_t *h;
    const char *list[MAX_SERVERS];
    size_t n = 0;
    bson_string_t *out = bson_string_new("");

    for (h = mongoc_uri_get_hosts(mongoc_client_get_uri(client)); h && n < MAX_SERVERS; h = h->next)
        list[n++] = h->host_and_port;
    qsort(list, n, sizeof list[0], cmp_str);
    for (size_t i = 0; i < n; i++)
        bson_string_append_printf(out, "%s%s", i ? "," : "", list[i]);
    return bson_string_free(out, false);
}

/*
 * Puts client (taken) in force. The old one goes first: the guard's streams
 * belong to it. td stays until the new client's first selection replaces it
 * (within the same check), so the loop never sees an empty view in between.
 */
static void
install(struct worker *w, mongoc_client_t *client)
{
    mongoc_client_destroy(w->client);
    w->client = client;
    w->guard.client = client;
    bson_free(w->srv_hosts);
    w->srv_hosts = w->srv ? hosts_text(client) : NULL;
}

/* Posts a view of what the worker knows (the loop drops it if it says nothing new). */
static void
post_view(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    const char *error = w->error ? w->error : w->auth_error ? w->auth_error : w->srv_error;

    post(t, view_build(w, w->td, error));
}

/*
 * mongodb+srv:// rescans (source/polling-srv-records-for-mongos-discovery/):
 * while the deployment is a sharded cluster, or not known yet, the records
 * are looked up again every upstream_srv_rescan (60 s by default, the
 * specification's floor) by making a new client; when they name other hosts
 * than the client in force was made with, the new client replaces it (its
 * topology starts from exactly the hosts found, as the specification's
 * reconciliation ends). A failed lookup keeps the client and its servers,
 * shows the error and is tried again after heartbeatFrequencyMS. libmongoc
 * polls too, at max(60 s, the records' TTL), with no public way to make
 * that sooner: a change it applied first costs one needless replacement.
 */
static void
srv_rescan(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    const char *type = w->td ? mongoc_topology_description_type(w->td) : "Unknown";
    mongoc_client_t *client;
    char *text = NULL, *hosts;

    if (!w->srv || now_ms() < w->srv_next_ms)
        return;
    w->srv_next_ms = now_ms() + t->srv_rescan_ms;
    if (strcmp(type, "Sharded") != 0 && strcmp(type, "Unknown") != 0)
        return; /* a replica set or a single server is followed by its members' answers */
    client = make_client(w, &text);
    if (client == NULL) {
        bson_free(w->srv_error);
        w->srv_error = bson_strdup_printf("SRV rescan: %s", text);
        bson_free(text);
        if (w->heartbeat_ms < t->srv_rescan_ms)
            w->srv_next_ms = now_ms() + w->heartbeat_ms;
        return;
    }
    bson_free(w->srv_error);
    w->srv_error = NULL;
    hosts = hosts_text(client);
    if (w->srv_hosts != NULL && strcmp(hosts, w->srv_hosts) == 0)
        mongoc_client_destroy(client);
    else
        install(w, client);
    bson_free(hosts);
}

/* The first client; false (the error posted) when it cannot be made yet. */
static bool
first_client(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    mongoc_client_t *client;
    char *text = NULL;

    client = make_client(w, &text);
    bson_free(w->error);
    w->error = text;
    if (client == NULL) {
        post_view(t);
        return false;
    }
    install(w, client);
    w->srv_next_ms = now_ms() + t->srv_rescan_ms;
    return true;
}

/*
 * A check of every server now: a single-threaded client checks again only
 * once heartbeatFrequencyMS has passed since its last scan, or when it
 * knows no server that fits, and libmongoc 1.23 has no public call to mark
 * its topology stale; a new client scans every server at its first
 * selection (in the check that follows). When no new client can be made
 * (a mongodb+srv name that does not resolve now), the one in force stays.
 */
static void
renew(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    mongoc_client_t *client;
    char *text = NULL;

    client = make_client(w, &text);
    bson_free(text);
    if (client != NULL)
        install(w, client);
}

/*
 * The URI's credentials at work: a ping to the server selected, which
 * libmongoc sends on a connection it has logged in with them (its
 * handshake's speculative authentication, else a full one: the URI's
 * authMechanism, or SCRAM as negotiated), so a wrong password shows at the
 * first check (auth_error, in the view; the server is then Unknown, as the
 * SDAM specification says, so none is in use). A user removed later shows
 * only when libmongoc logs in again (a new connection): a logged-in
 * connection stays so, and ping needs no privilege. Monitoring
 * itself needs no login (hello is open), nor does any client's traffic:
 * this is the check that the credentials given are good.
 */
static void
login_check(struct worker *w, const mongoc_server_description_t *sd)
{
    bson_error_t error;
    bson_t cmd = BSON_INITIALIZER;
    bool ok;

    memset(&error, 0, sizeof error);
    BSON_APPEND_INT32(&cmd, "ping", 1);
    ok = mongoc_client_command_simple_with_server_id(
        w->client, "admin", &cmd, NULL, mongoc_server_description_id(sd), NULL, &error);
    bson_destroy(&cmd);
    bson_free(w->auth_error);
    w->auth_error = NULL;
    if (!ok) {
        char *msg = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);

        w->auth_error = bson_strdup_printf("upstream login: %s", msg);
        bson_free(msg);
    }
}

/* One selection (and login check); posts a view when anything the loop shows changed. */
static bool
check(struct proxy_topology *t)
{
    struct worker *w = &t->w;
    bson_error_t error;
    mongoc_server_description_t *sd;

    memset(&error, 0, sizeof error);
    sd = mongoc_client_select_server(w->client, true, NULL, &error);
    w->checked_ms = now_ms();
    bson_free(w->error);
    w->error = NULL;
    if (sd == NULL && error.message[0] == '\0') {
        /* libmongoc's scanner, its servers all removed, fails with no message */
        w->error = bson_strdup("upstream: no server left to monitor: each one was removed (a "
                               "member of another replica set than the one named, or a "
                               "standalone among several hosts)");
    } else if (sd == NULL) {
        w->error = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);
    } else {
        if (w->auth)
            login_check(w, sd);
        mongoc_server_description_destroy(sd);
    }
    post_view(t);
    return sd != NULL;
}

/*
 * The worker's loop. Until a client can be made (a mongodb+srv name that
 * does not resolve yet) it is tried again every heartbeatFrequencyMS, the
 * error shown meanwhile.
 */
static void free_topology(struct proxy_topology *t);

static void *
worker_main(void *arg)
{
    struct proxy_topology *t = arg;
    struct worker *w = &t->w;

    if (start(t)) {
        while (!atomic_load(&t->stop)) {
            if (w->client == NULL && !first_client(t)) {
                nap(t, w->heartbeat_ms, false);
                continue;
            }
            srv_rescan(t);
            if (!nap(t, check(t) ? w->heartbeat_ms : RETRY_MS, true))
                continue;
            /* The loop asked (a server it sends new connections to said it
             * is not primary, or a connection to it was lost): check every
             * server now, but not sooner than RETRY_MS after the last check
             * ended (minHeartbeatFrequencyMS, server-monitoring.md). Asks
             * made until then are this one: the flag is cleared only now. */
            nap(t, w->checked_ms + RETRY_MS - now_ms(), false);
            pthread_mutex_lock(&t->mu);
            t->recheck = false;
            pthread_mutex_unlock(&t->mu);
            if (!atomic_load(&t->stop))
                renew(t);
        }
    }
    mongoc_client_destroy(w->client); /* before the guard its streams point to */
    mongoc_uri_destroy(w->uri);
    if (w->td != NULL)
        mongoc_topology_description_destroy(w->td);
    advice_secrets_cleanup(&w->secrets);
    bson_free(w->error);
    bson_free(w->srv_hosts);
    bson_free(w->srv_error);
    bson_free(w->auth_error);
    forget(w);
    memset(w, 0, sizeof *w);
    if (conf_thread_exiting(&t->end))
        free_topology(t); /* the loop left it to us (proxy_topology_destroy) */
    return NULL;
}

/* ---- the loop's side --------------------------------------------------------- */

/* Whether a and b send new connections to the same servers. */
static bool
same_targets(const struct view *a, const struct view *b)
{
    uint32_t i, j;

    if (a == NULL || b == NULL || a->n_targets != b->n_targets)
        return false;
    for (i = 0; i < a->n; i++) {
        if (!a->servers[i].target)
            continue;
        for (j = 0; j < b->n; j++)
            if (b->servers[j].target && strcmp(a->servers[i].address, b->servers[j].address) == 0)
                break;
        if (j == b->n)
            return false;
    }
    return true;
}

/* Whether a and b would be shown and used alike (round-trip times aside): apply keeps the old. */
static bool
same_view(const struct view *a, const struct view *b)
{
    if (a == NULL || b == NULL || strcmp(a->type, b->type) != 0 || a->n != b->n ||
        (a->error == NULL) != (b->error == NULL) ||
        (a->error != NULL && strcmp(a->error, b->error) != 0))
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (strcmp(a->servers[i].address, b->servers[i].address) != 0 ||
            strcmp(a->servers[i].type, b->servers[i].type) != 0 ||
            a->servers[i].target != b->servers[i].target ||
            a->servers[i].sa_len != b->servers[i].sa_len ||
            memcmp(&a->servers[i].sa, &b->servers[i].sa, a->servers[i].sa_len) != 0)
            return false;
    return true;
}

/* "a:Type,b:Type" (only the targets' addresses when targets_only), cut to size. */
static void
list_servers(const struct view *v, bool targets_only, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (uint32_t i = 0; i < v->n && used + 1 < size; i++) {
        const struct server_view *s = &v->servers[i];
        int n;

        if (targets_only && !s->target)
            continue;
        n = targets_only ? snprintf(out + used, size - used, "%s%s", used ? "," : "", s->address)
                         : snprintf(out + used, size - used, "%s%s:%s", used ? "," : "",
                                    s->address, s->type);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* Whether a server new connections went to under old has said, in v, that it is primary no more. */
static bool
stepped_down(const struct view *old, const struct view *v)
{
    if (old == NULL || !electing(v))
        return false;
    for (uint32_t i = 0; i < old->n; i++)
        if (old->servers[i].target && known_other(v, old->servers[i].address))
            return true;
    return false;
}

/*
 * Remembers v's primary, if it is a replica set with one, and tells the
 * server when it is another member than the last primary seen (an election
 * between them or not): what the old one acknowledged but never replicated
 * (w:1 writes, reads of them) is rolled back, so what was cached from it
 * may no longer be true (the hook flushes the cache).
 */
static void
note_primary(struct proxy_topology *t, const struct view *v)
{
    const char *now = NULL;

    if (strcmp(v->type, "ReplicaSetWithPrimary") != 0)
        return;
    for (uint32_t i = 0; i < v->n && !now; i++)
        if (v->servers[i].target)
            now = v->servers[i].address;
    if (!now || (t->primary && strcmp(t->primary, now) == 0))
        return;
    if (t->primary && t->server->hooks.primary_changed)
        t->server->hooks.primary_changed(t->server, t->primary, now);
    bson_free(t->primary);
    t->primary = bson_strdup(now);
}

/* A new view from the worker (taken). */
static void
apply(struct proxy_topology *t, struct view *v)
{
    struct proxy_server *server = t->server;
    bool moved = !same_targets(t->view, v);
    bool stepped = stepped_down(t->view, v);
    char targets[512], servers[1024];


    if (same_view(t->view, v)) {
        view_destroy(v);
        return;
    }
    list_servers(v, true, targets, sizeof targets);
    list_servers(v, false, servers, sizeof servers);
    if (moved && v->n_targets > 0)
        t->changes++;
    conf_log(v->n_targets > 0 && v->error == NULL ? CONF_LOG_INFO : CONF_LOG_WARN, 0,
             "upstream_topology", "type=%s targets=%s servers=\"%s\" changes=%llu error=\"%s\"",
             v->type, targets[0] ? targets : "-", servers, (unsigned long long)t->changes,
             v->error ? v->error : "");
    view_destroy(t->view);
    t->view = v;
    /* Connections to a server that no longer takes new ones end, and new
     * connections that waited for a primary go to the new one; in an
     * election, those to the member that said it stepped down end (while a
     * member is merely unreachable, its connections go on, answering for
     * themselves). */
    if (((moved && v->n_targets > 0) || stepped) && server->hooks.upstream_moved)
        server->hooks.upstream_moved(server);
    note_primary(t, v);
}

static void
on_view(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_topology *t = arg;
    uint8_t buf[64];
    struct view *v;

    (void)fd;
    (void)what;
    while (read(t->rfd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&t->mu);
    v = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    if (v != NULL)
        apply(t, v);
}

bool
proxy_topology_pick(struct proxy_topology *t, const char **host, uint16_t *port,
                    const char **address, const struct sockaddr **sa, socklen_t *sa_len)
{
    uint32_t k, seen = 0;

    if (t == NULL || t->view == NULL || t->view->n_targets == 0)
        return false;
    k = t->view->n_targets == 1 ? 0
                                : (uint32_t)(conf_random_pool_u64(&t->random) % t->view->n_targets);
    for (uint32_t i = 0; i < t->view->n; i++) {
        const struct server_view *s = &t->view->servers[i];

        if (!s->target || seen++ != k)
            continue;
        *host = s->host;
        *port = s->port;
        *address = s->address;
        *sa = s->sa_len > 0 ? (const struct sockaddr *)&s->sa : NULL;
        *sa_len = s->sa_len;
        return true;
    }
    return false;
}

const char *
proxy_topology_error(const struct proxy_topology *t)
{
    return t != NULL && t->view != NULL ? t->view->error : NULL;
}

bool
proxy_topology_load_balanced(const struct proxy_topology *t)
{
    return t != NULL && t->view != NULL && strcmp(t->view->type, "LoadBalanced") == 0;
}

bool
proxy_topology_electing(const struct proxy_topology *t)
{
    return t != NULL && electing(t->view);
}

bool
proxy_topology_is_target(const struct proxy_topology *t, const char *address)
{
    if (t == NULL || t->view == NULL || address == NULL)
        return true;
    if (t->view->n_targets == 0)
        return !electing(t->view) || !known_other(t->view, address);
    for (uint32_t i = 0; i < t->view->n; i++)
        if (t->view->servers[i].target && strcmp(t->view->servers[i].address, address) == 0)
            return true;
    return false;
}

void
proxy_topology_recheck(struct proxy_topology *t, const char *address, const char *why)
{
    bool asked;

    /* Only a server new connections go to: an error from one the monitor
     * already knows is not primary tells it nothing; nor does a check of a
     * single server or a load balancer (new connections go to it whatever
     * it is: a load balancer is never monitored). */
    if (t == NULL || t->view == NULL || t->view->n_targets == 0 ||
        strcmp(t->view->type, "Single") == 0 || strcmp(t->view->type, "LoadBalanced") == 0 ||
        !proxy_topology_is_target(t, address))
        return;
    pthread_mutex_lock(&t->mu);
    asked = !t->recheck;
    t->recheck = true;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->mu);
    if (!asked)
        return; /* one is pending already */
    t->rechecks++;
    conf_log(CONF_LOG_INFO, 0, "upstream_recheck",
             "upstream=%s reason=\"%s\" msg=\"checking every server now\"", address, why);
}

void
proxy_topology_stats_bson(const struct proxy_topology *t, bson_t *doc)
{
    bson_t sub, arr, one;
    const char *primary = "";
    char key[16];
    uint32_t k = 0;

    if (t == NULL)
        return;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "topology", &sub);
    BSON_APPEND_UTF8(&sub, "type", t->view ? t->view->type : "Unknown");
    BSON_APPEND_ARRAY_BEGIN(&sub, "targets", &arr);
    for (uint32_t i = 0; t->view && i < t->view->n; i++) {
        if (!t->view->servers[i].target)
            continue;
        bson_snprintf(key, sizeof key, "%u", k++);
        BSON_APPEND_UTF8(&arr, key, t->view->servers[i].address);
        if (strcmp(t->view->servers[i].type, "RSPrimary") == 0)
            primary = t->view->servers[i].address;
    }
    bson_append_array_end(&sub, &arr);
    BSON_APPEND_UTF8(&sub, "primary", primary);
    BSON_APPEND_ARRAY_BEGIN(&sub, "servers", &arr);
    for (uint32_t i = 0; t->view && i < t->view->n; i++) {
        bson_snprintf(key, sizeof key, "%u", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &one);
        BSON_APPEND_UTF8(&one, "address", t->view->servers[i].address);
        BSON_APPEND_UTF8(&one, "type", t->view->servers[i].type);
        BSON_APPEND_INT64(&one, "rtt_ms", t->view->servers[i].rtt_ms);
        bson_append_document_end(&arr, &one);
    }
    bson_append_array_end(&sub, &arr);
    BSON_APPEND_INT64(&sub, "changes", (int64_t)t->changes);
    BSON_APPEND_INT64(&sub, "rechecks", (int64_t)t->rechecks);
    BSON_APPEND_UTF8(&sub, "error", t->view && t->view->error ? t->view->error : "");
    bson_append_document_end(doc, &sub);
}

struct proxy_topology *
proxy_topology_new(struct proxy_server *server, bson_error_t *error)
{
    struct proxy_topology *t = bson_malloc0(sizeof *t);
    pthread_condattr_t attr;
    int fds[2] = {-1, -1};
    int rc;

    t->server = server;
    t->rfd = t->wfd = -1;
    conf_random_pool_init(&t->random);
    t->uri_text = bson_strdup(server->conf->upstream);
    t->connect_timeout_ms = server->conf->connect_timeout;
    t->srv_rescan_ms = server->conf->upstream_srv_rescan;
    atomic_init(&t->stop, false);
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_START, "topology: pipe: %s",
                       strerror(errno));
        bson_free(t->uri_text);
        bson_free(t);
        return NULL;
    }
    t->rfd = fds[0];
    t->wfd = fds[1];
    pthread_mutex_init(&t->mu, NULL);
    conf_thread_end_init(&t->end);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    t->ev = event_new(server->base, t->rfd, EV_READ | EV_PERSIST, on_view, t);
    if (t->ev == NULL || event_add(t->ev, NULL) != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_START,
                       "topology: cannot watch its pipe");
        goto fail;
    }
    rc = conf_thread_spawn(&t->thread, worker_main, t, "mc-topology");
    if (rc != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_START, "topology: thread: %s",
                       strerror(rc));
        goto fail;
    }
    pthread_mutex_lock(&t->mu);
    while (!t->started)
        pthread_cond_wait(&t->wake, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (!t->start_ok) {
        pthread_join(t->thread, NULL);
        *error = t->start_error;
        goto fail;
    }
    return t;
fail:
    if (t->ev)
        event_free(t->ev);
    conf_thread_end_cleanup(&t->end);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    close(t->rfd);
    close(t->wfd);
    bson_free(t->uri_text);
    bson_free(t);
    return NULL;
}

/* Frees the topology once its worker is done with it (either side may run this). */
static void
free_topology(struct proxy_topology *t)
{
    view_destroy(t->pending);
    view_destroy(t->view);
    bson_free(t->primary);
    close(t->rfd);
    close(t->wfd);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    conf_thread_end_cleanup(&t->end);
    bson_free(t->uri_text);
    bson_free(t);
}

bool
proxy_topology_destroy(struct proxy_topology *t)
{
    pthread_t thread;

    if (t == NULL)
        return true;
    thread = t->thread;
    event_free(t->ev);
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->stop, true);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->mu);
    if (!conf_thread_stop(thread, &t->end, PROXY_TOPOLOGY_STOP_WAIT_MS)) {
        /* Inside a check of a server that does not answer (up to
         * connectTimeoutMS), or in libmongoc's client destroy: left behind,
         * it frees the topology when it ends (or the process exits first). */
        conf_log(CONF_LOG_WARN, 0, "topology_abandoned",
                 "waited_ms=%d msg=\"the topology monitor's thread did not stop in time; left "
                 "behind\"",
                 PROXY_TOPOLOGY_STOP_WAIT_MS);
        return false;
    }
    free_topology(t);
    return true;
}
