/*
 * cache/redis_sentinel.c: the shared tier's Sentinels (see
 * redis_sentinel.h). It owns the question to one Sentinel at a time (its
 * connection, its deadline, moving on to the next Sentinel), the backoff
 * between rounds, the subscription to +switch-master on a Sentinel that
 * answered, and the logs of both. It does not own the connections to the
 * master, the ROLE check nor what a switch means for the cache (the links,
 * redis.c).
 *
 * A question's life:
 *
 *   ask ──> Sentinel i: [AUTH] SENTINEL get-master-addr-by-name NAME
 *             ├─ host, port ──> master(host, port); subscribe if not yet
 *             └─ unknown master, error, lost, no answer in time ──> Sentinel i+1 ...
 *   every Sentinel failed ──> warned once, next round after backoff (100 ms .. 5 s)
 *
 * What a Sentinel sends is read like anything from Redis: a reply of a
 * shape the question cannot have drops that connection, an address that is
 * not one (a host of other characters, a port out of range) is refused and
 * the next Sentinel asked. A +switch-master message for another master is
 * ignored; one for ours that cannot be read is logged and ignored (the
 * links' ROLE check and loss still lead back here).
 */
#include "config.h"

#include "cache/redis_sentinel.h"

#include "cache/redis_conn.h"
#include "cache/redis_link.h"
#include "conf/clock.h"
#include "conf/log.h"

#include <event2/event.h>
#include <string.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define ASK_MIN_GAP_MS 100
#define QUESTION_MIN_MS 1000
#define SUB_RETRY_MS 1000
#define HOST_MAX 255
#define CHANNEL "+switch-master"

struct cache_redis_sentinel {
    struct cache_redis_sentinel_conf conf;
    struct cache_redis_sentinel_handlers handlers;
    void *arg;
    struct cache_redis_conn *q; /* the question in flight, or NULL */
    size_t at;                  /* the Sentinel asked */
    size_t tried;               /* Sentinels tried this round */
    size_t answered;            /* the last one that named the master (for the subscription) */
    bool any_answer;
    bool warned;                /* a round failed since the last answer: later ones quietly */
    int64_t last_answer_ms;
    int64_t backoff_ms;
    int64_t timeout_ms;
    struct event *q_timer;      /* the question's deadline */
    struct event *round_timer;  /* the next round */
    struct cache_redis_conn *sub; /* subscribed to +switch-master, or NULL */
    bool sub_ready;
    struct event *sub_timer; /* re-subscribes */
    char why[160];           /* the last failure, for the round's warning */
};

static void question(struct cache_redis_sentinel *s);
static void sub_start(struct cache_redis_sentinel *s);

static const struct cache_redis_url_node *
node(const struct cache_redis_sentinel *s, size_t i)
{
    return &s->conf.url->sentinels[i];
}

/* A connection to Sentinel i (NULL with a log line when it cannot even start). */
static struct cache_redis_conn *
connect_to(struct cache_redis_sentinel *s, size_t i, const struct cache_redis_conn_handlers *h)
{
    struct cache_redis_url u = {.host = node(s, i)->host, .port = node(s, i)->port};
    struct cache_redis_conn *c;
    bson_error_t error;

    u.tls = s->conf.tls != NULL;
    c = cache_redis_conn_new(s->conf.base, s->conf.dns, &u, s->conf.tls, 65536, 8, h, s, &error);
    if (!c)
        bson_snprintf(s->why, sizeof s->why, "%s", error.message);
    return c;
}

/* Queues AUTH [password] on c when the Sentinels have one; cb answers it. */
static bool
send_auth(struct cache_redis_sentinel *s, struct cache_redis_conn *c, cache_redis_conn_reply_cb cb)
{
    const char *argv[2] = {"AUTH", s->conf.password};
    size_t len[2] = {4, s->conf.password ? strlen(s->conf.password) : 0};

    return !s->conf.password || cache_redis_conn_send(c, 2, argv, len, true, cb, s);
}

/* ---- the question ------------------------------------------------------------------------ */

/* Ends the question on the current connection (freed; deferred inside its callbacks). */
static void
q_end(struct cache_redis_sentinel *s)
{
    struct cache_redis_conn *c = s->q;

    s->q = NULL;
    evtimer_del(s->q_timer);
    cache_redis_conn_free(c);
}

/* Sentinel s->at did not name the master (why): the next one, or the next round. */
static void
q_next(struct cache_redis_sentinel *s, const char *why)
{
    const struct cache_redis_url_node *n = node(s, s->at);
    char buf[160];

    bson_snprintf(s->why, sizeof s->why, "%s", why);
    conf_log(CONF_LOG_DEBUG, 0, "redis_sentinel_failed", "redis=%s sentinel=\"%s:%u\" reason=\"%s\"",
             s->conf.redacted, n->host, (unsigned)n->port,
             cache_redis_link_log_text(why, buf, sizeof buf));
    q_end(s);
    if (++s->tried < s->conf.url->n_sentinels) {
        s->at = (s->at + 1) % s->conf.url->n_sentinels;
        question(s);
        return;
    }
    if (!s->warned)
        conf_log(CONF_LOG_WARN, 0, "redis_sentinel_no_master",
                 "redis=%s master=%s sentinels=%zu reason=\"%s\"", s->conf.redacted,
                 s->conf.url->master, s->conf.url->n_sentinels,
                 cache_redis_link_log_text(s->why, buf, sizeof buf));
    s->warned = true;
    {
        struct timeval tv = conf_clock_tv(s->backoff_ms);

        evtimer_add(s->round_timer, &tv);
    }
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* True when text (len bytes) can be a host a Sentinel names: a name, IPv4 or IPv6. */
static bool
host_ok(const char *text, size_t len)
{
    if (len == 0 || len > HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':'))
            return false;
    }
    return true;
}

/* A decimal port 1..65535 (len bytes); 0 when it is not one. */
static uint16_t
port_of(const char *text, size_t len)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(text[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (uint16_t)v : 0;
}

/* Hands host:port (host len bytes, checked) to the owner. */
static void
report(struct cache_redis_sentinel *s, const char *host, size_t len, uint16_t port)
{
    char copy[HOST_MAX + 1];

    memcpy(copy, host, len);
    copy[len] = '\0';
    s->handlers.master(s->arg, copy, port);
}

/* SENTINEL get-master-addr-by-name's reply: [host, port], or nil for a master it does not know. */
static bool
q_reply(void *arg, const redisReply *reply)
{
    struct cache_redis_sentinel *s = arg;
    const redisReply *h;
    const redisReply *p;
    uint16_t port;

    if (!reply) /* freed: the question already moved on */
        return true;
    if (reply->type == REDIS_REPLY_NIL) {
        q_next(s, "the Sentinel does not know this master");
        return true;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        q_next(s, reply->str);
        return true;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return false; /* dropped as a protocol error: q_lost moves on */
    h = reply->element[0];
    p = reply->element[1];
    if (!host_ok(h->str, h->len) || !(port = port_of(p->str, p->len))) {
        q_next(s, "the Sentinel named an address that is not one");
        return true;
    }
    s->answered = s->at;
    s->any_answer = true;
    s->warned = false;
    s->backoff_ms = BACKOFF_FIRST_MS;
    s->last_answer_ms = conf_clock_ms();
    q_end(s);
    if (!s->sub && !evtimer_pending(s->sub_timer, NULL))
        sub_start(s);
    report(s, h->str, h->len, port);
    return true;
}

/* AUTH on a question's connection: a refusal is that Sentinel's failure. */
static bool
q_auth_reply(void *arg, const redisReply *reply)
{
    struct cache_redis_sentinel *s = arg;

    if (!reply)
        return true;
    if (reply->type == REDIS_REPLY_ERROR) {
        q_next(s, "AUTH refused (redis_sentinel_password)");
        return true;
    }
    return reply->type == REDIS_REPLY_STATUS;
}

static void
q_lost(void *arg, enum cache_redis_conn_loss kind, const char *why)
{
    struct cache_redis_sentinel *s = arg;

    (void)kind;
    q_next(s, why); /* only the current question's connection calls this */
}

static void
q_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    q_next(arg, "no answer in time");
}

/* Asks Sentinel s->at. */
static void
question(struct cache_redis_sentinel *s)
{
    static const struct cache_redis_conn_handlers handlers = {q_lost, NULL};
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", s->conf.url->master};
    size_t len[3] = {8, 23, strlen(s->conf.url->master)};
    int64_t ms = s->timeout_ms * 4 > QUESTION_MIN_MS ? s->timeout_ms * 4 : QUESTION_MIN_MS;
    struct timeval tv = conf_clock_tv(ms);

    s->q = connect_to(s, s->at, &handlers);
    if (!s->q) {
        q_next(s, s->why);
        return;
    }
    if (!send_auth(s, s->q, q_auth_reply) ||
        !cache_redis_conn_send(s->q, 3, argv, len, false, q_reply, s)) {
        q_next(s, "cannot send the question");
        return;
    }
    evtimer_add(s->q_timer, &tv);
}

/* A round: every Sentinel once, starting with the one that answered last. */
static void
round_start(struct cache_redis_sentinel *s)
{
    if (s->q)
        return;
    s->tried = 0;
    s->at = s->any_answer ? s->answered : 0;
    question(s);
}

static void
round_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    round_start(arg);
}

void
cache_redis_sentinel_ask(struct cache_redis_sentinel *s)
{
    int64_t gap;

    if (!s || s->q || evtimer_pending(s->round_timer, NULL))
        return;
    gap = conf_clock_ms() - s->last_answer_ms;
    if (s->any_answer && gap < ASK_MIN_GAP_MS) {
        struct timeval tv = conf_clock_tv(ASK_MIN_GAP_MS - gap);

        evtimer_add(s->round_timer, &tv);
        return;
    }
    round_start(s);
}

/* ---- the subscription to +switch-master ---------------------------------------------------- */

static void
sub_drop(struct cache_redis_sentinel *s)
{
    struct cache_redis_conn *c = s->sub;
    struct timeval tv = conf_clock_tv(SUB_RETRY_MS);

    s->sub = NULL;
    s->sub_ready = false;
    cache_redis_conn_free(c);
    evtimer_add(s->sub_timer, &tv);
}

/* A field of a +switch-master payload: the next space-separated word from *p (up to end). */
static bool
word(const char **p, const char *end, const char **w, size_t *len)
{
    const char *q = *p;

    *w = q;
    while (q < end && *q != ' ')
        q++;
    *len = (size_t)(q - *w);
    *p = q < end ? q + 1 : q;
    return *len > 0;
}

/* "<master> <old host> <old port> <new host> <new port>": the new address when it is ours. */
static bool
sub_push(void *arg, const struct cache_redis_push *push)
{
    struct cache_redis_sentinel *s = arg;
    const char *p = push->payload;
    const char *end = p + push->payload_len;
    const char *f[5];
    size_t n[5];
    uint16_t port;
    int i;

    if (push->kind == CACHE_REDIS_PUSH_SUBSCRIBED) {
        if (s->sub_ready)
            return false;
        s->sub_ready = true;
        return true;
    }
    if (!s->sub_ready)
        return false;
    for (i = 0; i < 5 && word(&p, end, &f[i], &n[i]); i++)
        ;
    if (i < 5 || p != end) {
        conf_log(CONF_LOG_DEBUG, 0, "redis_sentinel_message_ignored", "redis=%s bytes=%zu",
                 s->conf.redacted, push->payload_len);
        return true;
    }
    if (n[0] != strlen(s->conf.url->master) || memcmp(f[0], s->conf.url->master, n[0]) != 0)
        return true; /* another master's switch */
    if (!host_ok(f[3], n[3]) || !(port = port_of(f[4], n[4]))) {
        conf_log(CONF_LOG_WARN, 0, "redis_sentinel_message_ignored",
                 "redis=%s reason=\"a +switch-master whose new address is not one\"",
                 s->conf.redacted);
        return true;
    }
    report(s, f[3], n[3], port);
    return true;
}

static void
sub_lost(void *arg, enum cache_redis_conn_loss kind, const char *why)
{
    struct cache_redis_sentinel *s = arg;
    char buf[160];

    (void)kind;
    conf_log(CONF_LOG_DEBUG, 0, "redis_sentinel_unsubscribed", "redis=%s reason=\"%s\"",
             s->conf.redacted, cache_redis_link_log_text(why, buf, sizeof buf));
    sub_drop(s);
    cache_redis_sentinel_ask(s); /* a Sentinel gone may be a failover under way */
}

/* AUTH on the subscription's connection: then SUBSCRIBE. */
static bool
sub_auth_reply(void *arg, const redisReply *reply)
{
    struct cache_redis_sentinel *s = arg;

    if (!reply)
        return true;
    if (reply->type != REDIS_REPLY_STATUS ||
        !cache_redis_conn_subscribe(s->sub, CHANNEL, strlen(CHANNEL))) {
        sub_drop(s);
        return true;
    }
    return true;
}

/* Subscribes to +switch-master on the Sentinel that answered last. */
static void
sub_start(struct cache_redis_sentinel *s)
{
    static const struct cache_redis_conn_handlers handlers = {sub_lost, sub_push};

    s->sub = connect_to(s, s->answered, &handlers);
    if (!s->sub) {
        sub_drop(s);
        return;
    }
    if (s->conf.password ? !send_auth(s, s->sub, sub_auth_reply)
                         : !cache_redis_conn_subscribe(s->sub, CHANNEL, strlen(CHANNEL)))
        sub_drop(s);
}

static void
sub_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub_start(arg);
}

/* ---- life ------------------------------------------------------------------------------ */

struct cache_redis_sentinel *
cache_redis_sentinel_new(const struct cache_redis_sentinel_conf *conf,
                         const struct cache_redis_sentinel_handlers *handlers, void *arg)
{
    struct cache_redis_sentinel *s = bson_malloc0(sizeof *s);

    BSON_ASSERT(conf->url->n_sentinels > 0 && conf->url->master);
    s->conf = *conf;
    s->handlers = *handlers;
    s->arg = arg;
    s->backoff_ms = BACKOFF_FIRST_MS;
    s->timeout_ms = conf->timeout_ms;
    s->q_timer = evtimer_new(conf->base, q_timeout, s);
    s->round_timer = evtimer_new(conf->base, round_cb, s);
    s->sub_timer = evtimer_new(conf->base, sub_cb, s);
    round_start(s);
    return s;
}

void
cache_redis_sentinel_destroy(struct cache_redis_sentinel *s)
{
    if (!s)
        return;
    cache_redis_conn_free(s->q);
    cache_redis_conn_free(s->sub);
    event_free(s->q_timer);
    event_free(s->round_timer);
    event_free(s->sub_timer);
    bson_free(s);
}

void
cache_redis_sentinel_set_timeout(struct cache_redis_sentinel *s, int64_t timeout_ms)
{
    if (s)
        s->timeout_ms = timeout_ms;
}
