/*
 * cache/redis_link.c: one kept connection of the Redis tier (see
 * redis_link.h). It owns the connection's handshake (AUTH, SELECT and
 * SCRIPT LOAD, or AUTH and SUBSCRIBE), its handshake timer, reconnection
 * with backoff, the scripts' SHA-1s, the order of a subscription's pushes,
 * and the logs of all that. It does not own the socket and the reading of
 * replies (redis_conn.c), the commands sent once ready nor what losing the
 * connection means for the cache (redis.c, told through the handlers).
 *
 * A link's life:
 *
 *   start ──> handshake ──> ready ──> lost ──> (backoff) ──> start ...
 *      │          │ refused, timed out, protocol error ──> lost
 *      └─ cannot connect ──> lost
 *
 * With a Sentinel (conf.sentinel) the address is the master's as the owner
 * last learnt it (url, changed between connections); the handshake ends
 * with ROLE, and a node that does not answer "master" is dropped before
 * the link is ready, so nothing is ever written to a replica that was
 * reached by mistake or too late. A link with no address waits for a kick.
 *
 * A connection we drop is forgotten first (link->c = NULL), the owner told
 * (lost), then it is freed: commands waiting on it are called back with
 * NULL then. A lost notice is only acted on for the current connection.
 * Whatever Redis sends, the worst outcome is a dropped connection; the
 * backoff does not reset while Redis keeps misbehaving.
 */
#include "config.h"

#include "cache/redis_link.h"

#include "conf/clock.h"
#include "conf/log.h"

#include <event2/event.h>
#include <string.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define HANDSHAKE_MIN_MS 1000 /* a (re)connection's handshake gets at least this long */

/* A handshake reply's argument: which step, on which connection. */
struct step {
    struct cache_redis_link *link;
    struct cache_redis_conn *c; /* the connection it was sent on */
    int script;                 /* -1 AUTH, -2 SELECT, -3 ROLE, else the script loaded */
};

struct cache_redis_link {
    struct cache_redis_link_conf conf;
    struct cache_redis_link_handlers handlers;
    void *arg;
    struct cache_redis_conn *c; /* NULL when down */
    bool ready;                 /* handshake done */
    bool ever_ready;
    bool misbehaved; /* the last connection was dropped for a protocol error */
    bool failing;     /* lost since the last ready: later failures are logged quietly */
    bool tls_failing; /* the same for TLS failures (a refused certificate) */
    bool destroying;
    int pending; /* handshake replies awaited */
    struct step steps[3 + CACHE_REDIS_LINK_MAX_SCRIPTS];
    const char *scripts[CACHE_REDIS_LINK_MAX_SCRIPTS]; /* conf.scripts copied (texts borrowed) */
    char sha[CACHE_REDIS_LINK_MAX_SCRIPTS][41];        /* "" until loaded */
    struct event *handshake_timer;
    struct event *retry_timer;
    int64_t backoff_ms;
    int64_t timeout_ms;
    char *addr_host; /* Sentinel: the host and port the connection was made to */
    uint16_t addr_port;
};

static void link_start(struct cache_redis_link *link);

/*
 * Copies text for a log value: printable ASCII only (quotes, backslashes,
 * control and non-ASCII bytes become '?'), at most 120 bytes.
 */
const char *
cache_redis_link_log_text(const char *text, char *buf, size_t len)
{
    size_t i = 0;

    for (; text && text[i] && i + 1 < len && i < 120; i++) {
        unsigned char ch = (unsigned char)text[i];

        buf[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    buf[i] = '\0';
    return buf;
}

static void
schedule_retry(struct cache_redis_link *link)
{
    struct timeval tv = conf_clock_tv(link->backoff_ms);

    if (link->destroying)
        return;
    evtimer_add(link->retry_timer, &tv);
    link->backoff_ms *= 2;
    if (link->backoff_ms > BACKOFF_MAX_MS)
        link->backoff_ms = BACKOFF_MAX_MS;
}

/*
 * The connection is gone (link->c already forgotten): log it, plan the next
 * attempt, tell the owner. The first failure of a run is logged loudly
 * (a refused certificate as an error), the ones repeating it quietly.
 */
static void
link_lost(struct cache_redis_link *link, const char *why, enum cache_redis_conn_loss kind)
{
    bool was_ready = link->ready;
    bool protocol = kind == CACHE_REDIS_CONN_PROTOCOL;
    char buf[200];
    const char *reason = cache_redis_link_log_text(why, buf, sizeof buf);

    link->ready = false;
    link->pending = 0;
    evtimer_del(link->handshake_timer);
    if (protocol)
        conf_log(link->misbehaved ? CONF_LOG_DEBUG : CONF_LOG_WARN, 0, "redis_protocol_error",
                 "conn=%s redis=%s reason=\"%s\"", link->conf.name, link->conf.redacted, reason);
    else if (kind == CACHE_REDIS_CONN_TLS)
        conf_log(link->tls_failing ? CONF_LOG_DEBUG : CONF_LOG_ERROR, 0,
                 "redis_tls_failed", "conn=%s redis=%s reason=\"%s\"", link->conf.name,
                 link->conf.redacted, reason);
    else if (was_ready)
        conf_log(CONF_LOG_WARN, 0, "redis_disconnected", "conn=%s redis=%s reason=\"%s\"",
                 link->conf.name, link->conf.redacted, reason);
    else
        conf_log(link->failing ? CONF_LOG_DEBUG : CONF_LOG_WARN, 0, "redis_connect_failed",
                 "conn=%s redis=%s reason=\"%s\"", link->conf.name, link->conf.redacted,
                 reason);
    link->misbehaved = protocol;
    link->failing = true;
    link->tls_failing = link->tls_failing || kind == CACHE_REDIS_CONN_TLS;
    schedule_retry(link);
    if (!link->destroying)
        link->handlers.lost(link->arg, was_ready, protocol);
}

/* Forgets and frees our connection (its waiting commands are called back with NULL). */
static void
link_drop(struct cache_redis_link *link, const char *why, enum cache_redis_conn_loss kind)
{
    struct cache_redis_conn *c = link->c;

    link->c = NULL;
    link_lost(link, why, kind);
    cache_redis_conn_free(c); /* deferred when inside one of c's callbacks */
}

static void
link_ready(struct cache_redis_link *link)
{
    bool again = link->ever_ready;

    evtimer_del(link->handshake_timer);
    link->ready = true;
    link->failing = false;
    link->tls_failing = false;
    if (!link->misbehaved) /* a Redis that keeps misbehaving keeps its backoff */
        link->backoff_ms = BACKOFF_FIRST_MS;
    link->ever_ready = true;
    conf_log(CONF_LOG_INFO, 0, "redis_connected", "conn=%s redis=%s", link->conf.name,
             link->conf.redacted);
    link->handlers.ready(link->arg, again);
}

/*
 * The subscription's pushes (already checked by redis_push.c): the
 * confirmation once, then messages. Anything out of that order is refused:
 * the connection is dropped.
 */
static bool
on_push(void *arg, const struct cache_redis_push *push)
{
    struct cache_redis_link *link = arg;

    if (push->kind == CACHE_REDIS_PUSH_SUBSCRIBED) {
        if (link->ready)
            return false; /* we subscribed once */
        link_ready(link);
        return true;
    }
    if (!link->ready)
        return false; /* a message before the confirmation */
    if (link->handlers.message)
        link->handlers.message(link->arg, push->payload, push->payload_len);
    return true;
}

static void
handshake_done(struct cache_redis_link *link)
{
    if (!link->conf.channel) {
        link_ready(link);
        return;
    }
    if (!cache_redis_conn_subscribe(link->c, link->conf.channel, link->conf.channel_len))
        link_drop(link, "cannot subscribe", CACHE_REDIS_CONN_IO);
}

/* The connection's callback for AUTH, SELECT and SCRIPT LOAD; false for a reply none can have. */
static bool
step_reply(void *arg, const redisReply *reply)
{
    struct step *st = arg;
    struct cache_redis_link *link = st->link;
    char buf[128];

    if (!reply || st->c != link->c) /* freed, or an old connection's */
        return true;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* For AUTH only the error's first word: nothing a server echoes back is logged. */
        size_t n = st->script == -1 ? strcspn(reply->str, " ") : strlen(reply->str);

        conf_log(CONF_LOG_ERROR, 0, "redis_handshake_failed",
                 "conn=%s redis=%s step=%s error=\"%.*s\"", link->conf.name, link->conf.redacted,
                 st->script == -1   ? "auth"
                 : st->script == -2 ? "select"
                 : st->script == -3 ? "role"
                                    : "script_load",
                 (int)(n < 100 ? n : 100), cache_redis_link_log_text(reply->str, buf, sizeof buf));
        link_drop(link, "handshake refused", CACHE_REDIS_CONN_IO);
        return true;
    }
    if (st->script == -3) { /* ROLE: ["master", ...] or another role */
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
            reply->element[0]->type != REDIS_REPLY_STRING)
            return false;
        if (strcmp(reply->element[0]->str, "master") != 0) {
            conf_log(CONF_LOG_WARN, 0, "redis_not_master", "conn=%s redis=%s role=\"%s\"",
                     link->conf.name, link->conf.redacted,
                     cache_redis_link_log_text(reply->element[0]->str, buf, sizeof buf));
            link_drop(link, "not a master", CACHE_REDIS_CONN_IO);
            return true;
        }
    } else if (st->script < 0 && reply->type != REDIS_REPLY_STATUS) { /* AUTH, SELECT: +OK */
        return false;
    }
    if (st->script >= 0) {
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40)
            return false;
        memcpy(link->sha[st->script], reply->str, 40);
        link->sha[st->script][40] = '\0';
    }
    if (--link->pending == 0)
        handshake_done(link);
    return true;
}

/* Queues one handshake command (argv borrowed for the call); script as struct step. */
static bool
step_send(struct cache_redis_link *link, struct step *st, int script, int argc,
          const char **argv, const size_t *len)
{
    st->link = link;
    st->c = link->c;
    st->script = script;
    if (!cache_redis_conn_send(link->c, argc, argv, len, script == -1, step_reply, st))
        return false;
    link->pending++;
    return true;
}

/* AUTH [user] password, SELECT db, SCRIPT LOAD each (commands): in that order, first. */
static bool
handshake_start(struct cache_redis_link *link)
{
    const struct cache_redis_url *url = link->conf.url;
    const char *argv[3];
    size_t len[3];
    int argc = 0;

    if (link->conf.password) {
        argv[argc] = "AUTH";
        len[argc++] = 4;
        if (url->user) {
            argv[argc] = url->user;
            len[argc] = strlen(url->user);
            argc++;
        }
        argv[argc] = link->conf.password;
        len[argc] = strlen(link->conf.password);
        argc++;
        if (!step_send(link, &link->steps[0], -1, argc, argv, len))
            return false;
    }
    if (!link->conf.channel && url->db != 0) {
        char db[16];

        bson_snprintf(db, sizeof db, "%d", url->db);
        argv[0] = "SELECT";
        len[0] = 6;
        argv[1] = db;
        len[1] = strlen(db);
        if (!step_send(link, &link->steps[1], -2, 2, argv, len))
            return false;
    }
    for (int i = 0; !link->conf.channel && i < link->conf.n_scripts; i++) {
        argv[0] = "SCRIPT";
        len[0] = 6;
        argv[1] = "LOAD";
        len[1] = 4;
        argv[2] = link->scripts[i];
        len[2] = strlen(link->scripts[i]);
        if (!step_send(link, &link->steps[2 + i], i, 3, argv, len))
            return false;
    }
    if (link->conf.sentinel) { /* last: ready only once the node says it is the master */
        argv[0] = "ROLE";
        len[0] = 4;
        if (!step_send(link, &link->steps[2 + CACHE_REDIS_LINK_MAX_SCRIPTS], -3, 1, argv, len))
            return false;
    }
    if (link->pending == 0)
        handshake_done(link);
    return true;
}

/* The connection's notice that it is gone (connect failed, closed, protocol error). */
static void
on_lost(void *arg, enum cache_redis_conn_loss kind, const char *why)
{
    /* Only the current connection calls this: a dropped one is freed and silent. */
    link_drop(arg, why, kind);
}

static void
link_start(struct cache_redis_link *link)
{
    static const struct cache_redis_conn_handlers handlers = {on_lost, on_push};
    int64_t hs_ms = link->timeout_ms * 4 > HANDSHAKE_MIN_MS ? link->timeout_ms * 4
                                                            : HANDSHAKE_MIN_MS;
    struct timeval tv = conf_clock_tv(hs_ms);
    struct cache_redis_conn *c;
    bson_error_t error;

    if (link->conf.sentinel) {
        if (!link->conf.url->host) /* no master known yet: a kick starts the link */
            return;
        bson_free(link->addr_host);
        link->addr_host = bson_strdup(link->conf.url->host);
        link->addr_port = link->conf.url->port;
    }
    c = cache_redis_conn_new(link->conf.base, link->conf.dns, link->conf.url, link->conf.tls,
                             link->conf.max_reply, link->conf.max_elements, &handlers, link,
                             &error);
    if (!c) {
        link_lost(link, error.message, CACHE_REDIS_CONN_IO);
        return;
    }
    link->c = c;
    link->pending = 0;
    if (!handshake_start(link)) {
        if (link->c == c)
            link_drop(link, "cannot set the connection up", CACHE_REDIS_CONN_IO);
        return;
    }
    if (link->c == c)
        evtimer_add(link->handshake_timer, &tv);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_start(arg);
}

static void
handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cache_redis_link *link = arg;

    (void)fd;
    (void)what;
    /* A plaintext Redis reads a ClientHello as the start of an inline command and waits. */
    if (cache_redis_conn_tls_pending(link->c))
        link_drop(link, "no TLS handshake in time (a plaintext port? then redis://)",
                  CACHE_REDIS_CONN_TLS);
    else
        link_drop(link, "handshake timed out", CACHE_REDIS_CONN_IO);
}

struct cache_redis_link *
cache_redis_link_new(const struct cache_redis_link_conf *conf,
                     const struct cache_redis_link_handlers *handlers, void *arg)
{
    struct cache_redis_link *link = bson_malloc0(sizeof *link);

    BSON_ASSERT(conf->n_scripts >= 0 && conf->n_scripts <= CACHE_REDIS_LINK_MAX_SCRIPTS);
    link->conf = *conf;
    for (int i = 0; i < conf->n_scripts; i++)
        link->scripts[i] = conf->scripts[i];
    link->conf.scripts = NULL;
    link->handlers = *handlers;
    link->arg = arg;
    link->backoff_ms = BACKOFF_FIRST_MS;
    link->timeout_ms = conf->timeout_ms;
    link->retry_timer = evtimer_new(conf->base, retry_cb, link);
    link->handshake_timer = evtimer_new(conf->base, handshake_timeout, link);
    link_start(link);
    return link;
}

void
cache_redis_link_destroy(struct cache_redis_link *link)
{
    struct cache_redis_conn *c;

    if (!link)
        return;
    link->destroying = true;
    c = link->c;
    link->c = NULL;
    link->ready = false;
    cache_redis_conn_free(c); /* waiting commands are called back with NULL here */
    event_free(link->retry_timer);
    event_free(link->handshake_timer);
    bson_free(link->addr_host);
    bson_free(link);
}

void
cache_redis_link_kick(struct cache_redis_link *link)
{
    const struct cache_redis_url *url = link->conf.url;

    if (link->c && link->addr_host && url->host && strcmp(link->addr_host, url->host) == 0 &&
        link->addr_port == url->port)
        return; /* already there */
    if (link->c)
        link_drop(link, "the master moved", CACHE_REDIS_CONN_IO);
    evtimer_del(link->retry_timer);
    link->backoff_ms = BACKOFF_FIRST_MS;
    link_start(link);
}

void
cache_redis_link_drop(struct cache_redis_link *link, const char *why)
{
    if (link->c)
        link_drop(link, why, CACHE_REDIS_CONN_IO);
}

void
cache_redis_link_set_timeout(struct cache_redis_link *link, int64_t timeout_ms)
{
    link->timeout_ms = timeout_ms;
}

bool
cache_redis_link_ready(const struct cache_redis_link *link)
{
    return link && link->ready;
}

struct cache_redis_conn *
cache_redis_link_conn(const struct cache_redis_link *link)
{
    return link && link->ready ? link->c : NULL;
}

const char *
cache_redis_link_sha(const struct cache_redis_link *link, int i)
{
    return link->sha[i][0] ? link->sha[i] : NULL;
}
