/*
 * cache/redis.c: the shared tier (see redis.h). It owns the two connections
 * (one for commands, one subscribed to P"inval"; each a redis_conn.c), their
 * handshake (AUTH, SELECT, SCRIPT LOAD / SUBSCRIBE) and reconnection with
 * backoff, one libevent timer per command, the circuit breaker, the dirty
 * flag and the epoch bump that clears it, the four Lua scripts, and what
 * each reply must look like. It does not own the value blob's format
 * (redis_blob.c) nor its MAC (redis_mac.c), the Redis URL (redis_url.c),
 * reading the wire (redis_resp.c, redis_conn.c), the cache key (key.c),
 * which generations a read depends on or what is cacheable (cache.c,
 * policy.c), nor the in-process tier (lru.c, gen.c), and it never compares
 * key material: a HIT hands the stored material to the caller to compare.
 *
 * An op's life: built and sent (EVALSHA; EVAL once on NOSCRIPT), its timer
 * armed. It is "settled" once, by its reply or by its timer; settling calls
 * the caller back (unless cancelled) and feeds the breaker. The connection
 * holds the op as its callback's argument until it calls op_reply (with a
 * reply, or NULL when the connection is freed), and only op_reply frees it:
 * so a reply that arrives after the timer gave up finds the op still
 * allocated, settled, and is dropped. A connection calls every waiting
 * command back before it is freed, so no op outlives its connection.
 *
 * Whatever Redis sends, the worst outcome is a dropped connection: a reply
 * whose shape its command cannot have (op_shape_ok, step_reply), a reply
 * nobody asked for, a malformed or unexpected push, a protocol error. Each
 * is counted (redis_protocol_errors), logged once (then quietly while they
 * repeat), and the connection is re-made with the usual backoff, which does
 * not reset while Redis keeps misbehaving.
 *
 * A connection we drop is forgotten first (conn->c = NULL), then freed; its
 * waiting ops are called back with NULL then, and a lost connection's
 * notice (conn_on_lost) is only acted on for the current one.
 */
#include "config.h"

#include "cache/redis.h"
#include "cache/redis_blob.h"
#include "cache/redis_conn.h"
#include "cache/redis_mac.h"
#include "cache/redis_url.h"
#include "conf/clock.h"
#include "conf/log.h"
#include "conf/random.h"
#include "cache/hist.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define HANDSHAKE_MIN_MS 1000 /* a (re)connection's handshake gets at least this long */
#define EPOCH_RETRY_MS 250
#define MAC_LOG_EVERY_MS 60000 /* at most one warning a minute about forged values */
/* Largest reply read on each connection: a lookup's value and counters; a published message. */
#define CMD_MAX_REPLY (CACHE_REDIS_MAX_BLOB + (size_t)1048576)
#define SUB_MAX_REPLY ((size_t)1048576)
#define BASE_MASK ((UINT64_C(1) << 62) - 1)

/* The scripts, loaded with SCRIPT LOAD on connect and run with EVALSHA. */
enum script { SCRIPT_LOOKUP, SCRIPT_FILL, SCRIPT_BUMP, SCRIPT_EPOCH, SCRIPT_COUNT };

/*
 * KEYS: value, epoch, gens...  ARGV: epoch base, gen bases...
 * Returns {value or nil, epoch, gens...}; creates missing counters at their
 * base. A value key of another type reads as "" (refused by the decoder).
 */
static const char lookup_lua[] =
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'table' and v.err then v = '' end\n"
    "local r = {v}\n"
    "for i = 2, #KEYS do\n"
    "  local g = redis.call('GET', KEYS[i])\n"
    "  if not g then g = ARGV[i - 1]; redis.call('SET', KEYS[i], g) end\n"
    "  r[i] = g\n"
    "end\n"
    "return r\n";

/* KEYS: value, epoch, gens...  ARGV: blob, ttl ms, epoch, gens... Returns 1 stored, 0 refused. */
static const char fill_lua[] =
    "for i = 2, #KEYS do\n"
    "  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

/* KEYS: gens...  ARGV: channel, message, gen bases... */
static const char bump_lua[] =
    "for i = 1, #KEYS do\n"
    "  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SET', KEYS[i], ARGV[i + 2]) end\n"
    "  redis.call('INCR', KEYS[i])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], ARGV[2])\n"
    "return #KEYS\n";

/*
 * KEYS: epoch  ARGV: base, channel, message. Returns the new epoch as text:
 * Lua numbers are doubles, which cannot hold a 62-bit counter exactly.
 */
static const char epoch_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "redis.call('INCR', KEYS[1])\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
    "return redis.call('GET', KEYS[1])\n";

static const char *const script_text[SCRIPT_COUNT] = {lookup_lua, fill_lua, bump_lua, epoch_lua};

static const char *const state_names[] = {"disconnected", "connected", "breaker_open", "dirty"};

enum breaker { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

enum op_kind { OP_LOOKUP, OP_FILL, OP_BUMP, OP_EPOCH };

/* A command's arguments, each an owned copy (kept for the EVAL fallback). */
struct cmd {
    int argc;
    int cap;
    char **argv;
    size_t *len;
};

/* One command in flight; see the file comment for its life. */
struct cache_redis_op {
    struct cache_redis *redis;
    enum op_kind kind;
    enum script script;
    struct cmd cmd;
    struct event *timer;
    bool settled;  /* reply handled or timer fired: the outcome is known */
    bool retried;  /* resent as EVAL after NOSCRIPT */
    bool wanted;   /* false once cancelled */
    bool check;    /* a lookup of the generations only (cache_redis_check) */
    int64_t sent_us; /* monotonic, when it was last sent (redis_round_trip_seconds) */
    cache_redis_lookup_cb lookup_cb;
    cache_redis_done_cb done_cb;
    void *arg;
    struct cache_redis_gen *gens; /* lookup: the caller's array */
    uint32_t n;
    uint64_t dirty_seq; /* epoch: redis->dirty_seq when sent */
};

/* A handshake reply's argument: which connection, which script (-1 AUTH, -2 SELECT). */
struct step {
    struct conn *conn;
    struct cache_redis_conn *c; /* the connection it was sent on */
    int script;
};

/* One of the two connections. */
struct conn {
    struct cache_redis *redis;
    const char *name; /* "commands" or "pubsub", for logs */
    bool sub;
    struct cache_redis_conn *c; /* NULL when down */
    bool ready;                 /* handshake done */
    bool ever_ready;
    bool misbehaved;            /* the last connection was dropped for a protocol error */
    int pending;           /* handshake replies awaited */
    struct step steps[2 + SCRIPT_COUNT];
    struct event *handshake_timer;
    struct event *retry_timer;
    int64_t backoff_ms;
};

struct cache_redis {
    struct event_base *base;
    struct evdns_base *dns; /* for a host name in the URL, else NULL */
    struct cache_redis_mac *mac; /* seals and checks stored values */
    uint64_t mac_logged_ms;      /* last warning about a value refused by its MAC */
    uint64_t mac_unlogged;       /* refused since then, not logged */
    struct cache_redis_url url;
    char *password; /* effective password, or NULL */
    char *redacted; /* the URL for logs */
    char *prefix;
    size_t prefix_len;
    int64_t timeout_ms;
    int64_t breaker_failures;
    int64_t cooldown_ms;
    struct conn cmd;
    struct conn sub;
    char sha[SCRIPT_COUNT][41]; /* "" until loaded */
    enum breaker breaker;
    int64_t consecutive;
    uint64_t open_until;
    struct cache_redis_op *probe; /* the half-open probe in flight, or NULL */
    bool dirty;
    uint64_t dirty_seq; /* incremented at each reason to be dirty */
    bool epoch_inflight;
    struct event *epoch_timer;
    uint64_t rng;
    char instance[17]; /* our id in published messages, to skip our own */
    void (*inval_fn)(void *arg, const char *name, size_t len);
    void *inval_arg;
    int in_callback; /* depth of caller callbacks running */
    bool destroying;
    uint64_t counters[CACHE_REDIS_CTR_COUNT];
    struct cache_hist rtt; /* round trips of answered commands */
};

static void conn_start(struct conn *conn);

/* ---- small helpers ---------------------------------------------------- */

static struct timeval
tv_ms(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

/* splitmix64: a base for a new counter only has to be unpredictable enough not to collide. */
static uint64_t
rng_next(struct cache_redis *redis)
{
    uint64_t z = (redis->rng += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t
random_base(struct cache_redis *redis)
{
    return (rng_next(redis) & BASE_MASK) + 1;
}

static void
count(struct cache_redis *redis, enum cache_redis_counter c)
{
    redis->counters[c]++;
}

/*
 * Copies text for a log value: printable ASCII only (quotes, backslashes,
 * control and non-ASCII bytes become '?'), at most 120 bytes.
 */
static const char *
log_text(const char *text, char *buf, size_t len)
{
    size_t i = 0;

    for (; text && text[i] && i + 1 < len && i < 120; i++) {
        unsigned char ch = (unsigned char)text[i];

        buf[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    buf[i] = '\0';
    return buf;
}

/* Parses Redis's decimal integer text (what INCR leaves) into a uint64 (two's complement). */
static bool
parse_i64(const char *s, size_t len, uint64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    uint64_t v = 0;
    size_t i = neg ? 1 : 0;

    if (i == len || len > 20)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_C(9223372036854775808) - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (!neg && v > INT64_MAX)
        return false;
    *out = neg ? (uint64_t)0 - v : v;
    return true;
}

/* ---- commands and ops ----------------------------------------------------- */

static void
cmd_take(struct cmd *cmd, char *data, size_t len)
{
    if (cmd->argc == cmd->cap) {
        cmd->cap = cmd->cap ? 2 * cmd->cap : 16;
        cmd->argv = bson_realloc(cmd->argv, (size_t)cmd->cap * sizeof *cmd->argv);
        cmd->len = bson_realloc(cmd->len, (size_t)cmd->cap * sizeof *cmd->len);
    }
    cmd->argv[cmd->argc] = data;
    cmd->len[cmd->argc++] = len;
}

static void
cmd_add(struct cmd *cmd, const char *s)
{
    cmd_take(cmd, bson_strdup(s), strlen(s));
}

static void
cmd_add_i64(struct cmd *cmd, uint64_t v)
{
    char buf[24];

    bson_snprintf(buf, sizeof buf, "%" PRId64, (int64_t)v);
    cmd_add(cmd, buf);
}

/* Appends the key prefix + kind + name ("mongocache:" "g:" "n:db.coll"). */
static void
cmd_add_key(struct cmd *cmd, const struct cache_redis *redis, const char *kind, const char *name,
            size_t len)
{
    size_t klen = strlen(kind);
    char *s = bson_malloc(redis->prefix_len + klen + len + 1);

    memcpy(s, redis->prefix, redis->prefix_len);
    memcpy(s + redis->prefix_len, kind, klen);
    if (len)
        memcpy(s + redis->prefix_len + klen, name, len);
    s[redis->prefix_len + klen + len] = '\0';
    cmd_take(cmd, s, redis->prefix_len + klen + len);
}

static void
cmd_cleanup(struct cmd *cmd)
{
    for (int i = 0; i < cmd->argc; i++)
        bson_free(cmd->argv[i]);
    bson_free(cmd->argv);
    bson_free(cmd->len);
    memset(cmd, 0, sizeof *cmd);
}

/* Replaces "EVALSHA sha" by "EVAL script". */
static void
cmd_use_eval(struct cmd *cmd, enum script script)
{
    bson_free(cmd->argv[0]);
    bson_free(cmd->argv[1]);
    cmd->argv[0] = bson_strdup("EVAL");
    cmd->len[0] = 4;
    cmd->argv[1] = bson_strdup(script_text[script]);
    cmd->len[1] = strlen(script_text[script]);
}

static void op_timeout(evutil_socket_t fd, short what, void *arg);

/* A new op whose command starts "EVALSHA sha nkeys" (or EVAL when the sha is unknown). */
static struct cache_redis_op *
op_new(struct cache_redis *redis, enum op_kind kind, enum script script, uint32_t nkeys)
{
    struct cache_redis_op *op = bson_malloc0(sizeof *op);

    op->redis = redis;
    op->kind = kind;
    op->script = script;
    op->wanted = true;
    op->timer = evtimer_new(redis->base, op_timeout, op);
    cmd_add(&op->cmd, "EVALSHA");
    cmd_add(&op->cmd, redis->sha[script]);
    cmd_add_i64(&op->cmd, nkeys);
    if (redis->sha[script][0] == '\0') {
        cmd_use_eval(&op->cmd, script);
        op->retried = true;
    }
    return op;
}

static void
op_free(struct cache_redis_op *op)
{
    event_free(op->timer);
    cmd_cleanup(&op->cmd);
    bson_free(op);
}

static bool op_reply(void *arg, const redisReply *reply);

static bool
op_send(struct cache_redis_op *op)
{
    if (!cache_redis_conn_send(op->redis->cmd.c, op->cmd.argc, (const char **)op->cmd.argv,
                               op->cmd.len, false, op_reply, op))
        return false;
    count(op->redis, CACHE_REDIS_CTR_redis_commands);
    op->sent_us = conf_clock_us();
    return true;
}

/* Sends op on the command connection and arms its timer; frees it and returns false on failure. */
static bool
op_start(struct cache_redis_op *op)
{
    struct timeval tv = tv_ms(op->redis->timeout_ms);

    if (!op_send(op)) {
        op_free(op);
        return false;
    }
    evtimer_add(op->timer, &tv);
    return true;
}

/* ---- breaker and dirty flag ---------------------------------------------------- */

/* 0: refused; 1: allowed; 2: allowed as the one half-open probe. */
static int
breaker_admit(struct cache_redis *redis)
{
    if (redis->breaker == BREAKER_CLOSED)
        return 1;
    if (redis->breaker == BREAKER_OPEN) {
        if ((uint64_t)conf_clock_ms() < redis->open_until)
            return 0;
        redis->breaker = BREAKER_HALF_OPEN;
        redis->probe = NULL;
    }
    return redis->probe ? 0 : 2;
}

static void
breaker_reset(struct cache_redis *redis)
{
    redis->breaker = BREAKER_CLOSED;
    redis->consecutive = 0;
    redis->probe = NULL;
}

/* Feeds an op's outcome to the breaker: answered means Redis replied (even with an error). */
static void
breaker_result(struct cache_redis *redis, struct cache_redis_op *op, bool answered)
{
    if (redis->probe == op)
        redis->probe = NULL;
    if (answered) {
        redis->consecutive = 0;
        if (redis->breaker == BREAKER_HALF_OPEN) {
            redis->breaker = BREAKER_CLOSED;
            conf_log(CONF_LOG_INFO, 0, "redis_breaker_closed", "redis=%s", redis->redacted);
        }
        return;
    }
    redis->consecutive++;
    if (redis->breaker == BREAKER_HALF_OPEN ||
        (redis->breaker == BREAKER_CLOSED && redis->consecutive >= redis->breaker_failures)) {
        redis->breaker = BREAKER_OPEN;
        redis->open_until = (uint64_t)conf_clock_ms() + (uint64_t)redis->cooldown_ms;
        count(redis, CACHE_REDIS_CTR_redis_breaker_trips);
        conf_log(CONF_LOG_WARN, 0, "redis_breaker_open",
                 "redis=%s failures=%lld cooldown_ms=%lld", redis->redacted,
                 (long long)redis->consecutive, (long long)redis->cooldown_ms);
    }
}

static void
epoch_schedule(struct cache_redis *redis, int64_t ms)
{
    struct timeval tv = tv_ms(ms);

    if (!redis->destroying && !evtimer_pending(redis->epoch_timer, NULL))
        evtimer_add(redis->epoch_timer, &tv);
}

/* An invalidation may not have reached Redis: distrust it until an epoch bump sent after now. */
static void
mark_dirty(struct cache_redis *redis, const char *why)
{
    redis->dirty_seq++;
    if (!redis->dirty && !redis->destroying)
        conf_log(CONF_LOG_WARN, 0, "redis_dirty", "redis=%s reason=%s", redis->redacted, why);
    redis->dirty = true;
    epoch_schedule(redis, 0);
}

/* Sends the epoch bump when dirty, connected and the breaker lets it through. */
static void
epoch_try(struct cache_redis *redis)
{
    struct cache_redis_op *op;
    char msg[32];
    int admit;

    if (!redis->dirty || redis->epoch_inflight || !redis->cmd.ready || redis->destroying)
        return;
    if ((admit = breaker_admit(redis)) == 0) {
        uint64_t now = (uint64_t)conf_clock_ms();

        epoch_schedule(redis, redis->breaker == BREAKER_OPEN && redis->open_until > now
                                  ? (int64_t)(redis->open_until - now)
                                  : EPOCH_RETRY_MS);
        return;
    }
    op = op_new(redis, OP_EPOCH, SCRIPT_EPOCH, 1);
    op->dirty_seq = redis->dirty_seq;
    cmd_add_key(&op->cmd, redis, "epoch", "", 0);
    cmd_add_i64(&op->cmd, random_base(redis));
    cmd_add_key(&op->cmd, redis, "inval", "", 0);
    bson_snprintf(msg, sizeof msg, "@%s\n*", redis->instance);
    cmd_add(&op->cmd, msg);
    if (!op_start(op)) {
        epoch_schedule(redis, EPOCH_RETRY_MS);
        return;
    }
    redis->epoch_inflight = true;
    if (admit == 2)
        redis->probe = op;
}

static void
epoch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    epoch_try(arg);
}

/* ---- settling ops ------------------------------------------------------------- */

/* True when the blob's generations are exactly gens[0..n) (names and values, any order). */
static bool
gens_match(const struct cache_redis_blob *blob, const struct cache_redis_gen *gens, uint32_t n)
{
    if (blob->n_gens != n)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        bool found = false;

        for (uint32_t j = 0; j < n && !found; j++)
            found = blob->gens[j].name_len == gens[i].name_len &&
                    memcmp(blob->gens[j].name, gens[i].name, gens[i].name_len) == 0 &&
                    blob->gens[j].value == gens[i].value;
        if (!found)
            return false;
    }
    for (uint32_t j = 0; j < n; j++) {
        bool found = false;

        for (uint32_t i = 0; i < n && !found; i++)
            found = blob->gens[j].name_len == gens[i].name_len &&
                    memcmp(blob->gens[j].name, gens[i].name, gens[i].name_len) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Reads {value, epoch, gens...} into op->gens and *epoch; false when malformed. */
static bool
lookup_parse(struct cache_redis_op *op, const redisReply *reply, uint64_t *epoch)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 + (size_t)op->n)
        return false;
    for (size_t i = 1; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        uint64_t v;

        if (e->type != REDIS_REPLY_STRING || !parse_i64(e->str, e->len, &v))
            return false;
        if (i == 1)
            *epoch = v;
        else
            op->gens[i - 2].value = v;
    }
    return reply->element[0]->type == REDIS_REPLY_NIL ||
           reply->element[0]->type == REDIS_REPLY_STRING;
}

/*
 * A value read from Redis was refused: counted by why (its MAC: forged or
 * tampered with; else malformed or of another version). A bad MAC is
 * warned about at most once a minute, with how many since.
 */
static void
value_refused(struct cache_redis *redis, size_t bytes, const bson_error_t *error)
{
    uint64_t now;

    if (error->code != CACHE_REDIS_BLOB_BAD_MAC) {
        count(redis, CACHE_REDIS_CTR_redis_corrupt);
        conf_log(CONF_LOG_DEBUG, 0, "redis_corrupt", "bytes=%zu reason=\"%s\"", bytes,
                 error->message);
        return;
    }
    count(redis, CACHE_REDIS_CTR_redis_values_refused_mac);
    now = (uint64_t)conf_clock_ms();
    if (redis->mac_logged_ms != 0 && now - redis->mac_logged_ms < MAC_LOG_EVERY_MS) {
        redis->mac_unlogged++;
        return;
    }
    conf_log(CONF_LOG_WARN, 0, "redis_value_refused_mac",
             "bytes=%zu refused_since_last_warning=%llu hint=\"forged or altered in Redis, or "
             "written by a proxy with another cache_key_secret\"",
             bytes, (unsigned long long)redis->mac_unlogged + 1);
    redis->mac_logged_ms = now;
    redis->mac_unlogged = 0;
}

static void
lookup_deliver(struct cache_redis_op *op, enum cache_redis_status st,
               const struct cache_redis_blob *blob, uint64_t epoch)
{
    struct cache_redis *redis = op->redis;

    redis->in_callback++;
    if (st == CACHE_REDIS_HIT)
        op->lookup_cb(op->arg, st, blob->reply, blob->reply_len, blob->material,
                      blob->material_len, epoch);
    else
        op->lookup_cb(op->arg, st, NULL, 0, NULL, 0, epoch);
    redis->in_callback--;
}

/* A lookup's outcome; reply is NULL when it failed. */
static void
lookup_done(struct cache_redis_op *op, const redisReply *reply)
{
    struct cache_redis *redis = op->redis;
    enum cache_redis_status st = CACHE_REDIS_FAILED;
    struct cache_redis_blob blob;
    uint64_t epoch = 0;

    if (!op->wanted) /* cancelled: gens may be gone */
        return;
    if (reply && !lookup_parse(op, reply, &epoch)) {
        count(redis, CACHE_REDIS_CTR_redis_corrupt);
        reply = NULL;
    }
    if (reply && op->check) {
        /* The generations and the epoch are all the caller wants. */
        lookup_deliver(op, redis->dirty ? CACHE_REDIS_FAILED : CACHE_REDIS_MISS, NULL, epoch);
        return;
    }
    if (reply) {
        const redisReply *v = reply->element[0];
        bson_error_t error;

        st = CACHE_REDIS_MISS;
        if (v->type == REDIS_REPLY_STRING) {
            /* argv[3]: the value's key (EVALSHA sha nkeys key ...) */
            if (!cache_redis_blob_decode((const uint8_t *)v->str, v->len, redis->mac,
                                         op->cmd.argv[3], op->cmd.len[3], &blob, &error)) {
                value_refused(redis, v->len, &error);
            } else if (blob.epoch == epoch && gens_match(&blob, op->gens, op->n) &&
                       !redis->dirty) {
                st = CACHE_REDIS_HIT;
            }
        }
        count(redis, st == CACHE_REDIS_HIT ? CACHE_REDIS_CTR_redis_hits
                                           : CACHE_REDIS_CTR_redis_misses);
    }
    lookup_deliver(op, st, &blob, epoch);
}

static void
bump_done(struct cache_redis_op *op, const redisReply *reply)
{
    struct cache_redis *redis = op->redis;
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;

    if (!ok) {
        count(redis, CACHE_REDIS_CTR_redis_bumps_failed);
        mark_dirty(redis, reply ? "bump_refused" : "bump_unconfirmed");
    }
    if (op->wanted && op->done_cb) {
        redis->in_callback++;
        op->done_cb(op->arg, ok);
        redis->in_callback--;
    }
}

static void
epoch_done(struct cache_redis_op *op, const redisReply *reply)
{
    struct cache_redis *redis = op->redis;
    uint64_t epoch;

    redis->epoch_inflight = false;
    if (!reply || reply->type != REDIS_REPLY_STRING || !parse_i64(reply->str, reply->len, &epoch)) {
        epoch_schedule(redis, EPOCH_RETRY_MS);
        return;
    }
    count(redis, CACHE_REDIS_CTR_redis_epoch_bumps);
    if (redis->dirty_seq != op->dirty_seq) { /* dirty again since it was sent */
        epoch_schedule(redis, 0);
        return;
    }
    redis->dirty = false;
    conf_log(CONF_LOG_INFO, 0, "redis_epoch_bumped", "redis=%s epoch=%" PRIu64,
             redis->redacted, epoch);
}

/*
 * Decides op's outcome, once: reply is Redis's answer, or NULL when the
 * connection was lost (or freed) or, with timed_out, when the timer fired.
 */
static void
op_settle(struct cache_redis_op *op, const redisReply *reply, bool timed_out)
{
    struct cache_redis *redis = op->redis;
    bool answered = reply != NULL;

    op->settled = true;
    evtimer_del(op->timer);
    if (answered)
        cache_hist_observe(&redis->rtt, conf_clock_us() - op->sent_us);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        count(redis, CACHE_REDIS_CTR_redis_errors);
        char buf[128];

        conf_log(CONF_LOG_DEBUG, 0, "redis_error", "error=\"%.80s\"",
                 log_text(reply->str, buf, sizeof buf));
        reply = NULL;
    } else if (!reply && !timed_out) {
        count(redis, CACHE_REDIS_CTR_redis_errors);
    }
    breaker_result(redis, op, answered);
    switch (op->kind) {
    case OP_LOOKUP:
        lookup_done(op, reply);
        break;
    case OP_FILL:
        if (reply && reply->type == REDIS_REPLY_INTEGER)
            count(redis, reply->integer == 1 ? CACHE_REDIS_CTR_redis_fills
                                             : CACHE_REDIS_CTR_redis_fills_refused);
        break;
    case OP_BUMP:
        bump_done(op, reply);
        break;
    case OP_EPOCH:
        epoch_done(op, reply);
        break;
    }
}

static void
op_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cache_redis_op *op = arg;

    (void)fd;
    (void)what;
    count(op->redis, CACHE_REDIS_CTR_redis_timeouts);
    op_settle(op, NULL, true); /* the op stays until its connection hands it back */
}

/*
 * Whether reply can answer op's command at all (an error reply always can).
 * One that cannot means the connection is out of step with its commands.
 */
static bool
op_shape_ok(const struct cache_redis_op *op, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        return true;
    switch (op->kind) {
    case OP_LOOKUP:
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 + (size_t)op->n)
            return false;
        if (reply->element[0]->type != REDIS_REPLY_NIL &&
            reply->element[0]->type != REDIS_REPLY_STRING)
            return false;
        for (size_t i = 1; i < reply->elements; i++)
            if (reply->element[i]->type != REDIS_REPLY_STRING)
                return false;
        return true;
    case OP_FILL:
    case OP_BUMP:
        return reply->type == REDIS_REPLY_INTEGER;
    case OP_EPOCH:
        return reply->type == REDIS_REPLY_STRING;
    }
    return false;
}

/*
 * The connection's callback for every op: a reply, or NULL when the
 * connection is freed. Returns false for a reply of a shape the command
 * cannot have (the connection is then dropped).
 */
static bool
op_reply(void *arg, const redisReply *reply)
{
    struct cache_redis_op *op = arg;
    bool shape = !reply || op_shape_ok(op, reply);

    if (!op->settled) {
        if (shape && reply && reply->type == REDIS_REPLY_ERROR && !op->retried &&
            strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            op->retried = true;
            cmd_use_eval(&op->cmd, op->script);
            if (op_send(op))
                return true; /* same op, same timer */
        }
        op_settle(op, shape ? reply : NULL, false);
    }
    op_free(op);
    return shape;
}

/* ---- connections ----------------------------------------------------------------- */

static void
conn_schedule_retry(struct conn *conn)
{
    struct timeval tv = tv_ms(conn->backoff_ms);

    if (conn->redis->destroying)
        return;
    evtimer_add(conn->retry_timer, &tv);
    conn->backoff_ms *= 2;
    if (conn->backoff_ms > BACKOFF_MAX_MS)
        conn->backoff_ms = BACKOFF_MAX_MS;
}

/*
 * The connection is gone (conn->c already forgotten): note it and plan the
 * next attempt. protocol: dropped because Redis sent what it should not
 * have; counted, logged when it starts (quietly while it repeats).
 */
static void
conn_lost(struct conn *conn, const char *why, bool protocol)
{
    struct cache_redis *redis = conn->redis;
    bool was_ready = conn->ready;
    char buf[128];

    conn->ready = false;
    conn->pending = 0;
    evtimer_del(conn->handshake_timer);
    if (protocol) {
        count(redis, CACHE_REDIS_CTR_redis_protocol_errors);
        conf_log(conn->misbehaved ? CONF_LOG_DEBUG : CONF_LOG_WARN, 0, "redis_protocol_error",
                 "conn=%s redis=%s reason=\"%s\"", conn->name, redis->redacted,
                 log_text(why, buf, sizeof buf));
    } else if (was_ready) {
        conf_log(CONF_LOG_WARN, 0, "redis_disconnected", "conn=%s redis=%s reason=\"%s\"",
                 conn->name, redis->redacted, log_text(why, buf, sizeof buf));
    } else {
        conf_log(CONF_LOG_DEBUG, 0, "redis_connect_failed", "conn=%s redis=%s reason=\"%s\"",
                 conn->name, redis->redacted, log_text(why, buf, sizeof buf));
    }
    conn->misbehaved = protocol;
    if (!conn->sub && was_ready) /* replies lost in flight: distrust Redis */
        mark_dirty(redis, protocol ? "protocol_error" : "disconnected");
    conn_schedule_retry(conn);
}

/* Forgets and frees our connection (its waiting ops are called back with NULL). */
static void
conn_drop(struct conn *conn, const char *why, bool protocol)
{
    struct cache_redis_conn *c = conn->c;

    conn->c = NULL;
    conn_lost(conn, why, protocol);
    cache_redis_conn_free(c); /* deferred when inside one of c's callbacks */
}

static void
conn_ready(struct conn *conn)
{
    struct cache_redis *redis = conn->redis;

    evtimer_del(conn->handshake_timer);
    conn->ready = true;
    if (!conn->misbehaved) /* a Redis that keeps misbehaving keeps its backoff */
        conn->backoff_ms = BACKOFF_FIRST_MS;
    if (conn->ever_ready)
        count(redis, CACHE_REDIS_CTR_redis_reconnects);
    conn->ever_ready = true;
    conf_log(CONF_LOG_INFO, 0, "redis_connected", "conn=%s redis=%s", conn->name,
             redis->redacted);
    if (conn->sub) {
        static const char all[] = "*";

        /* Bumps made while nobody listened are unknown: drop everything held locally. */
        if (redis->inval_fn) {
            redis->in_callback++;
            redis->inval_fn(redis->inval_arg, all, 1);
            redis->in_callback--;
        }
        return;
    }
    breaker_reset(redis);
    epoch_try(redis);
}

/* Delivers the names in a published message, skipping our own messages. */
/* One name a message carried: counted, then the cache's invalidation. */
static void
inval_name(void *arg, const char *name, size_t len)
{
    struct cache_redis *redis = arg;

    count(redis, CACHE_REDIS_CTR_redis_invalidations_received);
    if (redis->inval_fn) {
        redis->in_callback++;
        redis->inval_fn(redis->inval_arg, name, len);
        redis->in_callback--;
    }
}

static void
inval_message(struct cache_redis *redis, const char *msg, size_t len)
{
    cache_redis_push_names(msg, len, redis->instance, inval_name, redis);
}

/*
 * The subscription's pushes (already checked by redis_resp.c): the
 * confirmation once, then messages. Anything out of that order is refused:
 * the connection is dropped.
 */
static bool
sub_push(void *arg, const struct cache_redis_push *push)
{
    struct conn *conn = arg;

    if (push->kind == CACHE_REDIS_PUSH_SUBSCRIBED) {
        if (conn->ready)
            return false; /* we subscribed once */
        conn_ready(conn);
        return true;
    }
    if (!conn->ready)
        return false; /* a message before the confirmation */
    inval_message(conn->redis, push->payload, push->payload_len);
    return true;
}

static void
handshake_done(struct conn *conn)
{
    struct cache_redis *redis = conn->redis;
    struct cmd cmd = {0};
    bool ok;

    if (!conn->sub) {
        conn_ready(conn);
        return;
    }
    cmd_add_key(&cmd, redis, "inval", "", 0);
    ok = cache_redis_conn_subscribe(conn->c, cmd.argv[0], cmd.len[0]);
    cmd_cleanup(&cmd);
    if (!ok)
        conn_drop(conn, "cannot subscribe", false);
}

/*
 * The connection's callback for AUTH, SELECT and SCRIPT LOAD. Returns
 * false for a reply none of them can have.
 */
static bool
step_reply(void *arg, const redisReply *reply)
{
    struct step *st = arg;
    struct conn *conn = st->conn;
    char buf[128];

    if (!reply || st->c != conn->c) /* freed, or an old connection's */
        return true;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* For AUTH only the error's first word: nothing a server echoes back is logged. */
        size_t n = st->script == -1 ? strcspn(reply->str, " ") : strlen(reply->str);

        conf_log(CONF_LOG_ERROR, 0, "redis_handshake_failed",
                 "conn=%s redis=%s step=%s error=\"%.*s\"", conn->name, conn->redis->redacted,
                 st->script == -1 ? "auth" : st->script == -2 ? "select" : "script_load",
                 (int)(n < 100 ? n : 100), log_text(reply->str, buf, sizeof buf));
        conn_drop(conn, "handshake refused", false);
        return true;
    }
    if (st->script < 0 && reply->type != REDIS_REPLY_STATUS) /* AUTH, SELECT: +OK */
        return false;
    if (st->script >= 0) {
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40)
            return false;
        memcpy(conn->redis->sha[st->script], reply->str, 40);
        conn->redis->sha[st->script][40] = '\0';
    }
    if (--conn->pending == 0)
        handshake_done(conn);
    return true;
}

/* Queues one handshake command; script is -1 for AUTH, -2 for SELECT, else the script. */
static bool
step_send(struct conn *conn, struct step *st, int script, struct cmd *cmd)
{
    bool ok;

    st->conn = conn;
    st->c = conn->c;
    st->script = script;
    ok = cache_redis_conn_send(conn->c, cmd->argc, (const char **)cmd->argv, cmd->len,
                               script == -1, step_reply, st);
    for (int i = 0; script == -1 && i < cmd->argc; i++) /* wipe our copies of AUTH's arguments */
        explicit_bzero(cmd->argv[i], cmd->len[i]);
    cmd_cleanup(cmd);
    if (ok)
        conn->pending++;
    return ok;
}

/* AUTH [user] password, SELECT db, SCRIPT LOAD x4 (commands) -- in that order, before anything. */
static bool
handshake_start(struct conn *conn)
{
    struct cache_redis *redis = conn->redis;
    struct cmd cmd = {0};

    if (redis->password) {
        cmd_add(&cmd, "AUTH");
        if (redis->url.user)
            cmd_add(&cmd, redis->url.user);
        cmd_add(&cmd, redis->password);
        if (!step_send(conn, &conn->steps[0], -1, &cmd))
            return false;
    }
    if (!conn->sub && redis->url.db != 0) {
        char db[16];

        bson_snprintf(db, sizeof db, "%d", redis->url.db);
        cmd_add(&cmd, "SELECT");
        cmd_add(&cmd, db);
        if (!step_send(conn, &conn->steps[1], -2, &cmd))
            return false;
    }
    for (int i = 0; !conn->sub && i < SCRIPT_COUNT; i++) {
        cmd_add(&cmd, "SCRIPT");
        cmd_add(&cmd, "LOAD");
        cmd_add(&cmd, script_text[i]);
        if (!step_send(conn, &conn->steps[2 + i], i, &cmd))
            return false;
    }
    if (conn->pending == 0)
        handshake_done(conn);
    return true;
}

/* The connection's notice that it is gone (connect failed, closed, protocol error). */
static void
conn_on_lost(void *arg, enum cache_redis_conn_loss kind, const char *why)
{
    struct conn *conn = arg;

    /* Only the current connection calls this: a dropped one is freed and silent. */
    conn_drop(conn, why, kind == CACHE_REDIS_CONN_PROTOCOL);
}

static void
conn_start(struct conn *conn)
{
    static const struct cache_redis_conn_handlers handlers = {conn_on_lost, sub_push};
    struct cache_redis *redis = conn->redis;
    struct timeval tv = tv_ms(redis->timeout_ms * 4 > HANDSHAKE_MIN_MS ? redis->timeout_ms * 4
                                                                     : HANDSHAKE_MIN_MS);
    struct cache_redis_conn *c;
    bson_error_t error;

    c = cache_redis_conn_new(redis->base, redis->dns, &redis->url,
                             conn->sub ? SUB_MAX_REPLY : CMD_MAX_REPLY,
                             conn->sub ? 3 : 2 + CACHE_REDIS_MAX_GENS, &handlers, conn, &error);
    if (!c) {
        conn_lost(conn, error.message, false);
        return;
    }
    conn->c = c;
    conn->pending = 0;
    if (!handshake_start(conn)) {
        if (conn->c == c)
            conn_drop(conn, "cannot set the connection up", false);
        return;
    }
    if (conn->c == c)
        evtimer_add(conn->handshake_timer, &tv);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_start(arg);
}

static void
handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *conn = arg;

    (void)fd;
    (void)what;
    conn_drop(conn, "handshake timed out", false);
}

static void
conn_init(struct cache_redis *redis, struct conn *conn, bool sub)
{
    conn->redis = redis;
    conn->sub = sub;
    conn->name = sub ? "pubsub" : "commands";
    conn->backoff_ms = BACKOFF_FIRST_MS;
    conn->retry_timer = evtimer_new(redis->base, retry_cb, conn);
    conn->handshake_timer = evtimer_new(redis->base, handshake_timeout, conn);
}

/* Frees the connection at destroy: its waiting ops are called back with NULL first. */
static void
conn_cleanup(struct conn *conn)
{
    struct cache_redis_conn *c = conn->c;

    conn->c = NULL;
    conn->ready = false;
    cache_redis_conn_free(c);
}

static void
conn_free_timers(struct conn *conn)
{
    event_free(conn->retry_timer);
    event_free(conn->handshake_timer);
}

/* True when the URL names a host to resolve (not a unix socket nor a numeric address). */
static bool
host_is_name(const struct cache_redis_url *url)
{
    struct in6_addr a6;
    struct in_addr a4;

    return url->host && inet_pton(AF_INET, url->host, &a4) != 1 &&
           inet_pton(AF_INET6, url->host, &a6) != 1;
}

/* ---- the API ---------------------------------------------------------------------- */

struct cache_redis *
cache_redis_new(struct event_base *base, const struct conf *conf, bson_error_t *error)
{
    struct cache_redis *redis = bson_malloc0(sizeof *redis);
    uint64_t seed = 0;

    if (!conf->redis || !conf->redis[0]) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                       "no Redis URL configured");
        bson_free(redis);
        return NULL;
    }
    if (!conf->cache_key_secret || !conf->cache_key_secret[0]) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                       "redis needs cache_key_secret: the same secret on every proxy sharing "
                       "the Redis (it keys the cache and seals the values stored there)");
        bson_free(redis);
        return NULL;
    }
    if (!(redis->mac = cache_redis_mac_new(conf->cache_key_secret,
                                           strlen(conf->cache_key_secret), error))) {
        bson_free(redis);
        return NULL;
    }
    if (!cache_redis_url_parse(conf->redis, &redis->url, error)) {
        cache_redis_mac_destroy(redis->mac);
        bson_free(redis);
        return NULL;
    }
    redis->base = base;
    if (host_is_name(&redis->url)) {
        /* Resolved on the loop, never with a blocking getaddrinfo. */
        redis->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                              EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!redis->dns) {
            bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                           "cannot set up a DNS resolver for the Redis host name");
            cache_redis_url_cleanup(&redis->url);
            cache_redis_mac_destroy(redis->mac);
            bson_free(redis);
            return NULL;
        }
    }
    if (conf->redis_password && conf->redis_password[0])
        redis->password = bson_strdup(conf->redis_password);
    else if (redis->url.password)
        redis->password = bson_strdup(redis->url.password);
    redis->redacted = cache_redis_url_redact(conf->redis);
    redis->prefix = bson_strdup(conf->redis_prefix ? conf->redis_prefix : "");
    redis->prefix_len = strlen(redis->prefix);
    cache_redis_reconfigure(redis, conf);
    if (!conf_random_bytes(&seed, sizeof seed)) /* a unique seed, if a guessable one */
        seed = (uint64_t)conf_clock_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)redis;
    redis->rng = seed;
    bson_snprintf(redis->instance, sizeof redis->instance, "%016" PRIx64, rng_next(redis));
    redis->epoch_timer = evtimer_new(base, epoch_timer_cb, redis);
    conn_init(redis, &redis->cmd, false);
    conn_init(redis, &redis->sub, true);
    conn_start(&redis->cmd);
    conn_start(&redis->sub);
    return redis;
}

void
cache_redis_destroy(struct cache_redis *redis)
{
    if (!redis)
        return;
    /* See redis.h: not from inside one of the tier's callbacks. */
    BSON_ASSERT(redis->in_callback == 0);
    redis->destroying = true;
    conn_cleanup(&redis->cmd); /* pending ops are called back with FAILED here */
    conn_cleanup(&redis->sub);
    conn_free_timers(&redis->cmd);
    conn_free_timers(&redis->sub);
    event_free(redis->epoch_timer);
    if (redis->dns)
        evdns_base_free(redis->dns, 0); /* after the connections: they cancel their lookups */
    cache_redis_url_cleanup(&redis->url);
    cache_redis_mac_destroy(redis->mac);
    if (redis->password)
        bson_zero_free(redis->password, strlen(redis->password));
    bson_free(redis->redacted);
    bson_free(redis->prefix);
    bson_free(redis);
}

void
cache_redis_reconfigure(struct cache_redis *redis, const struct conf *conf)
{
    redis->timeout_ms = conf->redis_timeout > 0 ? conf->redis_timeout : 1;
    redis->breaker_failures = conf->redis_breaker_failures > 0 ? conf->redis_breaker_failures : 1;
    redis->cooldown_ms = conf->redis_breaker_cooldown > 0 ? conf->redis_breaker_cooldown : 0;
}

enum cache_redis_state
cache_redis_state(const struct cache_redis *redis)
{
    if (!redis->cmd.ready)
        return CACHE_REDIS_DISCONNECTED;
    if (redis->breaker != BREAKER_CLOSED)
        return CACHE_REDIS_BREAKER_OPEN;
    return redis->dirty ? CACHE_REDIS_DIRTY : CACHE_REDIS_CONNECTED;
}

bool
cache_redis_usable(const struct cache_redis *redis)
{
    if (!redis || redis->destroying || !redis->cmd.ready || redis->dirty)
        return false;
    switch (redis->breaker) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        return (uint64_t)conf_clock_ms() >= redis->open_until;
    case BREAKER_HALF_OPEN:
        break;
    }
    return !redis->probe;
}

bool
cache_redis_subscribed(const struct cache_redis *redis)
{
    return redis && redis->sub.ready;
}

/* True when every name is one a key and a message can carry. */
static bool
names_ok(const struct cache_redis_gen *gens, uint32_t n)
{
    if (n > CACHE_REDIS_MAX_GENS)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (gens[i].name_len == 0 || gens[i].name_len > CACHE_REDIS_MAX_NAME)
            return false;
    return true;
}

/* Appends the value key and the epoch key, then each generation's key. */
static void
add_keys(struct cmd *cmd, const struct cache_redis *redis, const struct cache_key *key,
         const struct cache_redis_gen *gens, uint32_t n)
{
    char hex[33];

    if (key) {
        bson_snprintf(hex, sizeof hex, "%016" PRIx64 "%016" PRIx64, key->hi, key->lo);
        cmd_add_key(cmd, redis, "v:", hex, 32);
        cmd_add_key(cmd, redis, "epoch", "", 0);
    }
    for (uint32_t i = 0; i < n; i++)
        cmd_add_key(cmd, redis, "g:", gens[i].name, gens[i].name_len);
}

/*
 * Starts the lookup script: for key's value, or (key NULL) for the
 * generations and the epoch only, with a value key that never holds a value
 * (values are named by 32 hex digits).
 */
static struct cache_redis_op *
lookup_start(struct cache_redis *redis, const struct cache_key *key, struct cache_redis_gen *gens,
             uint32_t n, cache_redis_lookup_cb cb, void *arg)
{
    struct cache_redis_op *op;
    int admit;

    if (!cache_redis_usable(redis) || !names_ok(gens, n) || (admit = breaker_admit(redis)) == 0) {
        if (redis)
            count(redis, CACHE_REDIS_CTR_redis_skipped);
        return NULL;
    }
    op = op_new(redis, OP_LOOKUP, SCRIPT_LOOKUP, 2 + n);
    op->lookup_cb = cb;
    op->arg = arg;
    op->gens = gens;
    op->n = n;
    op->check = key == NULL;
    if (key) {
        add_keys(&op->cmd, redis, key, gens, n);
    } else {
        cmd_add_key(&op->cmd, redis, "v:", "check", 5);
        cmd_add_key(&op->cmd, redis, "epoch", "", 0);
        add_keys(&op->cmd, redis, NULL, gens, n);
    }
    cmd_add_i64(&op->cmd, random_base(redis));
    for (uint32_t i = 0; i < n; i++)
        cmd_add_i64(&op->cmd, random_base(redis));
    if (!op_start(op)) {
        count(redis, CACHE_REDIS_CTR_redis_skipped);
        return NULL;
    }
    if (admit == 2)
        redis->probe = op;
    return op;
}

struct cache_redis_op *
cache_redis_lookup(struct cache_redis *redis, const struct cache_key *key,
                   struct cache_redis_gen *gens, uint32_t n, cache_redis_lookup_cb cb, void *arg)
{
    return lookup_start(redis, key, gens, n, cb, arg);
}

struct cache_redis_op *
cache_redis_check(struct cache_redis *redis, struct cache_redis_gen *gens, uint32_t n,
                  cache_redis_lookup_cb cb, void *arg)
{
    return lookup_start(redis, NULL, gens, n, cb, arg);
}

void
cache_redis_cancel(struct cache_redis_op *op)
{
    if (op)
        op->wanted = false;
}

void
cache_redis_fill(struct cache_redis *redis, const struct cache_key *key,
                 const uint8_t *material, size_t material_len, const uint8_t *reply,
                 size_t reply_len, const struct cache_redis_gen *gens, uint32_t n,
                 uint64_t epoch, int64_t ttl_ms)
{
    struct cache_redis_blob blob = {0};
    struct cache_redis_op *op;
    uint8_t *data;
    size_t len;

    if (!cache_redis_usable(redis) || redis->breaker != BREAKER_CLOSED || ttl_ms <= 0 ||
        !names_ok(gens, n))
        return;
    blob.epoch = epoch;
    blob.n_gens = n;
    memcpy(blob.gens, gens, n * sizeof *gens);
    blob.material = material;
    blob.material_len = material_len;
    blob.reply = reply;
    blob.reply_len = reply_len;
    op = op_new(redis, OP_FILL, SCRIPT_FILL, 2 + n);
    add_keys(&op->cmd, redis, key, gens, n);
    /* sealed for the key it is stored under: argv[3] */
    if (!(data = cache_redis_blob_encode(&blob, redis->mac, op->cmd.argv[3], op->cmd.len[3],
                                         &len))) {
        op_free(op);
        return;
    }
    cmd_take(&op->cmd, (char *)data, len);
    cmd_add_i64(&op->cmd, (uint64_t)ttl_ms);
    cmd_add_i64(&op->cmd, epoch);
    for (uint32_t i = 0; i < n; i++)
        cmd_add_i64(&op->cmd, gens[i].value);
    (void)op_start(op);
}

/* "@instance\nname\nname...": a name holding '\n' is sent as "*" (everything). */
static char *
bump_message(const struct cache_redis *redis, const struct cache_redis_gen *gens, uint32_t n,
             size_t *len)
{
    bson_string_t *s = bson_string_new("@");

    bson_string_append(s, redis->instance);
    for (uint32_t i = 0; i < n; i++) {
        bson_string_append_c(s, '\n');
        if (memchr(gens[i].name, '\n', gens[i].name_len) ||
            memchr(gens[i].name, '\0', gens[i].name_len))
            bson_string_append_c(s, '*');
        else
            for (size_t j = 0; j < gens[i].name_len; j++)
                bson_string_append_c(s, gens[i].name[j]);
    }
    *len = s->len;
    return bson_string_free(s, false);
}

struct cache_redis_op *
cache_redis_bump(struct cache_redis *redis, const struct cache_redis_gen *gens, uint32_t n,
                 cache_redis_done_cb cb, void *arg)
{
    struct cache_redis_op *op;
    size_t len;
    char *msg;

    if (n == 0)
        return NULL;
    if (redis->destroying || !redis->cmd.ready || redis->breaker != BREAKER_CLOSED ||
        !names_ok(gens, n))
        goto fail;
    op = op_new(redis, OP_BUMP, SCRIPT_BUMP, n);
    op->done_cb = cb;
    op->arg = arg;
    add_keys(&op->cmd, redis, NULL, gens, n);
    cmd_add_key(&op->cmd, redis, "inval", "", 0);
    msg = bump_message(redis, gens, n, &len);
    cmd_take(&op->cmd, msg, len);
    for (uint32_t i = 0; i < n; i++)
        cmd_add_i64(&op->cmd, random_base(redis));
    if (op_start(op))
        return op;
fail:
    count(redis, CACHE_REDIS_CTR_redis_bumps_failed);
    mark_dirty(redis, redis->cmd.ready ? "bump_not_sent" : "bump_while_disconnected");
    return NULL;
}

void
cache_redis_on_invalidation(struct cache_redis *redis,
                            void (*fn)(void *arg, const char *name, size_t len), void *arg)
{
    redis->inval_fn = fn;
    redis->inval_arg = arg;
}

uint64_t
cache_redis_counter(const struct cache_redis *redis, enum cache_redis_counter counter)
{
    return redis->counters[counter];
}

const char *
cache_redis_state_name(enum cache_redis_state state)
{
    return (unsigned)state < sizeof state_names / sizeof state_names[0] ? state_names[state]
                                                                        : "unknown";
}

const struct cache_hist *
cache_redis_latency(const struct cache_redis *redis)
{
    return &redis->rtt;
}
