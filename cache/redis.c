/*
 * cache/redis.c: the shared tier (see redis.h). It owns the ops (one per
 * command in flight: its deadline, its breaker ticket, its caller), the
 * one timer that abandons overdue ops, the dirty
 * flag and the epoch bump that clears it, the choice between a read's fast
 * and slow paths, and what each outcome means for the caller and the
 * counters. Below it, each reporting up by callback or return value, never
 * calling it:
 *   redis_link.c     the two kept connections (commands; the subscription
 *                    to P"inval"): handshake, reconnection with backoff,
 *                    with a Sentinel the ROLE check
 *   redis_sentinel.c where the master is (redis-sentinel://): reported up,
 *                    followed here (sentinel_master)
 *   redis_tls.c      rediss://: the TLS context the connections use
 *   redis_conn.c     one socket, the reply FIFO (redis_resp.c, redis_push.c)
 *   redis_cmd.c      key names, the commands' encoding, the Lua scripts,
 *                    the shape of every reply
 *   redis_breaker.c  the circuit breaker, a pure state machine
 *   redis_blob.c, redis_mac.c, redis_url.c  the value, its MAC, the URL
 * It does not own which generations a read depends on or what is cacheable
 * (cache.c, policy.c), nor the in-process tier (lru.c, gen.c), and it never
 * compares key material: a HIT hands the stored material to the caller.
 *
 * A read (cache_redis_lookup, cache_redis_check) is ONE MGET of the value,
 * the epoch and every generation it depends on: a plain command, about as
 * cheap in Redis as a GET, where the lookup script ran six GETs in Lua. The
 * value is a HIT only if its MAC holds (redis_mac.c) and the generations
 * and epoch sealed inside it equal the ones the MGET read, and the tier is
 * not dirty. When a counter (or the epoch) does not exist, the fast path
 * cannot give a snapshot a fill could be checked against: the same op is
 * re-sent as the lookup script (the slow path, as every read was before),
 * which creates missing counters at random bases and reads everything
 * again; its reply is judged the same way.
 *
 * Why the MGET is as safe as the script was. Redis runs one command at a
 * time, so one MGET reads the value, the epoch and the generations at one
 * instant, as the script did; nothing in the script made the read more
 * atomic. A stored value carries the generations and epoch it was filled
 * under, and the fill is a compare-and-set (the fill script) that stores it
 * only if they were still current. Generations only ever grow (INCR), and
 * a counter that vanished is re-made at a fresh random 62-bit base, so
 * "sealed generations == generations read" means no bump of any of them
 * (and no epoch bump) happened between the fill and the read. A write
 * racing the read bumps with one script (INCR + PUBLISH): it runs either
 * before the MGET (the MGET sees the new value: a miss) or after (the read
 * happened before the write, and serving what was current then is what a
 * read that reached the server first would get). Our own writes go out on
 * the same command connection as our reads, in order, and a write is only
 * confirmed to the client after its bump is answered, so a read sent after
 * that sees the bump. A bump that may not have reached Redis makes the
 * tier dirty: no HIT until an epoch bump has succeeded (unchanged). The
 * slow path changes nothing to this: it re-reads everything atomically and
 * only then is its answer judged. What MGET cannot tell apart: a value key
 * holding another type reads as nil: a miss, not counted as corrupt (the
 * script read it as "" and counted it; a miss either way). A counter Redis
 * holds in a shape INCR never leaves ("007", another type) is a miss for
 * the entries that read it, counted as corrupt (cache_redis_cmd_read), and
 * the next bump of it re-makes it at a fresh random base (the scripts in
 * redis_cmd.c), which is a bump like any other for the argument above.
 *
 * The hit path allocates nothing per command: ops come from a free list,
 * the MGET is encoded into one buffer the tier reuses
 * and copied once into the socket's output, the value's Redis key (for the
 * MAC) is rewritten in place from the digits the op kept, its reply is read
 * once (cache_redis_cmd_read, in op_resend) and built in the reader's arena
 * (redis_resp.c; a value over ~15 KB takes one malloc there). A fill copies
 * the reply once: into its command, where the value is sealed in place;
 * that buffer is sent by reference (an evbuffer the op and the connection
 * share, libevent counting the references) and kept for a NOSCRIPT retry.
 *
 * An op's life: built and sent, its deadline set. It is "settled" once, by
 * its reply or by its deadline passing; settling calls the caller back (unless
 * cancelled) and feeds the breaker. The connection holds the op as its
 * callback's argument until it calls op_reply (with a reply, or NULL when
 * the connection is freed), and only op_reply puts it back: so a reply that
 * arrives after the deadline gave up finds the op still there, settled, and
 * is dropped. Before settling, op_reply may re-send the op once for the slow
 * path and once as EVAL on NOSCRIPT: same op, same deadline, same ticket.
 *
 * Deadlines. An op waiting for its reply is on the tier's due list, in
 * deadline order (sent + redis_timeout; a reload that shortens the timeout
 * inserts a later op ahead of earlier ones), until it settles. One timer
 * (due_timer) serves them all, armed for the earliest deadline when it was
 * armed: an op settled by its reply only leaves the list, the timer is left
 * as it is (lazy). When it fires, every op whose deadline has passed is
 * settled as timed out, in deadline order, and the timer is re-armed for
 * the new head, if any. With one timeout the deadlines grow along the list,
 * so a hit costs two pointer updates, no event_add: the timer is armed when
 * the list was empty or when it fires (once per redis_timeout under load),
 * where an event per op cost about 1,000 instructions per hit (callgrind).
 * An op is timed out no earlier than before; its lateness is the timer's.
 *
 * Whatever Redis sends, the worst outcome is a dropped connection: a reply
 * whose shape its command cannot have (redis_cmd.c), a reply nobody asked
 * for, a malformed or unexpected push, a protocol error: counted
 * (redis_protocol_errors) and the connection re-made (redis_link.c).
 */
#include "config.h"

#include "cache/redis.h"
#include "cache/redis_blob.h"
#include "cache/redis_breaker.h"
#include "cache/redis_cmd.h"
#include "cache/redis_conn.h"
#include "cache/redis_link.h"
#include "cache/redis_mac.h"
#include "cache/redis_sentinel.h"
#include "cache/redis_tls.h"
#include "cache/redis_url.h"
#include "conf/clock.h"
#include "conf/hist.h"
#include "conf/log.h"
#include "conf/random.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EPOCH_RETRY_MS 250
#define MAC_LOG_EVERY_MS 60000 /* at most one warning a minute about forged values, Cluster */
/*
 * Largest reply read on each connection: a lookup's value and counters; a
 * published message. A read batch's values beyond it spill (batch_reply):
 * the largest value we store always fits, alone or first.
 */
#define CMD_MAX_REPLY (CACHE_REDIS_MAX_BLOB + (size_t)1048576)
#define SUB_MAX_REPLY ((size_t)1048576)
/*
 * Most elements in one array a link takes behind a Sentinel: its
 * handshake's ROLE reply lists every replica of the master (found in
 * review: with 4 replicas the subscription's limit of 3, a push's size,
 * refused it, and the link never came up).
 */
#define ROLE_MAX_ELEMENTS 1024
#define LINK_ELEMENTS(n, sentinel) ((sentinel) && (n) < ROLE_MAX_ELEMENTS ? ROLE_MAX_ELEMENTS : (n))
#define BASE_MASK ((UINT64_C(1) << 62) - 1)
#define FREE_OPS_MAX 1024 /* ops kept for reuse */
/* Most keys one read batch's MGET names, so most elements in its reply (>= 2 + MAX_GENS). */
#define BATCH_KEYS 256
/*
 * The bytes of values a batch is sized for, at the largest value seen
 * lately (batch_size): one read of the command connection (READ_CHUNK,
 * redis_conn.c), so a batch's reply is most often taken in one wake.
 * Larger batches cost the proxy more kernel time per hit at 4 KB values
 * (replies split over segments and reads) for less of Redis's (bench/README.md).
 */
#define BATCH_BYTES ((size_t)65536)

static const char *const state_names[] = {"disconnected", "connected", "breaker_open", "dirty"};

/* One command in flight; see the file comment for its life. Reused through redis->free_ops. */
struct cache_redis_op {
    struct cache_redis *redis;
    enum cache_redis_cmd_kind kind; /* what was sent last (MGET, then maybe LOOKUP) */
    int64_t deadline_us; /* monotonic: abandoned then unless settled (on the due list) */
    struct cache_redis_op *due_prev; /* on redis's due list while due (not settled) */
    struct cache_redis_op *due_next;
    bool due;        /* on the due list */
    struct cache_redis_breaker_ticket ticket;
    bool settled;    /* reply handled or deadline passed: the outcome is known */
    bool retried;    /* re-sent as EVAL after NOSCRIPT */
    bool wanted;     /* false once cancelled */
    bool check;      /* a read of the generations only (cache_redis_check) */
    bool batched;    /* its MGET is a read batch's: the batch counts the round trip */
    int64_t sent_us; /* monotonic, when it was last sent (redis_round_trip_seconds) */
    cache_redis_lookup_cb lookup_cb;
    cache_redis_done_cb done_cb;
    void *arg;
    struct cache_redis_gen *gens; /* read: the caller's array */
    uint32_t n;
    struct cache_key key;        /* read: the value's key */
    char hex[32];                /* read: its 32 hex digits in the value key, as sent */
    uint8_t slot[CACHE_REDIS_MAX_GENS]; /* read: where gens[i] is among its batch's names */
    uint64_t dirty_seq;          /* epoch: redis->dirty_seq when sent */
    enum cache_redis_cmd_read read; /* MGET: what its reply said, once read (have_read) */
    bool have_read;
    uint64_t epoch;              /* MGET: the epoch its reply held, once read */
    struct cache_redis_cmd own;  /* fill, bump, epoch: the EVALSHA command, for EVAL */
    struct evbuffer *held;       /* fill: owns own's bytes, sent by reference (never copied) */
    struct cache_redis_op *next; /* on the free list */
};

struct cache_redis {
    struct event_base *base;
    struct evdns_base *dns;      /* for a host name in the URL, else NULL */
    struct cache_redis_mac *mac; /* seals and checks stored values */
    uint64_t mac_logged_ms;      /* last warning about a value refused by its MAC */
    uint64_t mac_unlogged;       /* refused since then, not logged */
    uint64_t cluster_logged_ms;  /* last warning that Redis is a Cluster node */
    struct cache_redis_url url;
    struct cache_redis_tls *tls; /* rediss://: the connections' TLS context; else NULL */
    char *password; /* effective password, or NULL */
    char *redacted; /* the URL for logs */
    struct cache_redis_keys keys;
    struct cache_redis_cmd enc; /* the command being encoded (reads, EVAL rewrites) */
    int64_t timeout_ms;
    struct cache_redis_link *cmd;
    struct cache_redis_link *sub;
    struct cache_redis_sentinel *sentinel; /* redis-sentinel://: where the master is; else NULL */
    char *sentinel_password;               /* the Sentinels' own, or NULL */
    struct cache_redis_breaker breaker;
    struct cache_redis_op *free_ops;
    size_t n_free_ops;
    bool dirty;
    uint64_t dirty_seq; /* incremented at each reason to be dirty */
    bool epoch_inflight;
    struct event *epoch_timer;
    struct cache_redis_op *due_head; /* ops waiting, earliest deadline first */
    struct cache_redis_op *due_tail;
    struct event *due_timer; /* fires at due_at_us: the head's deadline when it was armed */
    int64_t due_at_us;       /* 0: due_timer is not pending */
    uint64_t rng;
    char instance[17]; /* our id in published messages, to skip our own */
    void (*inval_fn)(void *arg, const char *name, size_t len);
    void *inval_arg;
    int in_callback; /* depth of caller callbacks running */
    bool destroying;
    uint64_t counters[CACHE_REDIS_CTR_COUNT];
    struct conf_hist rtt; /* round trips of answered commands */
    /* The open read batch (see "the read batch"): its ops, and their generations' names,
     * each once, copied into name_buf (a cancelled op's names may be freed). */
    struct cache_redis_op *open[BATCH_KEYS];
    uint32_t n_open;
    uint32_t n_names;
    struct {
        size_t at, len;
    } names[BATCH_KEYS];
    char *name_buf;
    size_t name_len, name_cap;
    uint32_t batch_cap;      /* most reads a batch holds now (batch_size) */
    size_t value_peak;       /* the largest value seen lately, decaying (batch_size) */
    int64_t open_us;         /* when the open batch's first op joined */
    struct event *batch_ev;  /* sends the open batch behind the turn's callbacks */
    struct read_batch *spare; /* a sent batch's memory, kept for the next */
};

/* A sent read batch: its MGET's callback argument, until the reply splits it. */
struct read_batch {
    struct cache_redis *redis;
    int64_t sent_us;
    uint32_t n_ops, n_names;
    struct cache_redis_op *ops[BATCH_KEYS]; /* in the order their values are named */
};

/* ---- small helpers ---------------------------------------------------- */

/* Monotonic milliseconds, as the breaker counts them. */
static uint64_t
now_ms(void)
{
    return (uint64_t)conf_clock_ms();
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

/* random_base for redis_cmd.c's encoders. */
static uint64_t
next_base(void *arg)
{
    return random_base(arg);
}

static void
count(struct cache_redis *redis, enum cache_redis_counter c)
{
    redis->counters[c]++;
}

/* The script a kind runs (MGET runs none). */
static enum cache_redis_script
kind_script(enum cache_redis_cmd_kind kind)
{
    switch (kind) {
    case CACHE_REDIS_CMD_FILL:
        return CACHE_REDIS_SCRIPT_FILL;
    case CACHE_REDIS_CMD_BUMP:
        return CACHE_REDIS_SCRIPT_BUMP;
    case CACHE_REDIS_CMD_EPOCH:
        return CACHE_REDIS_SCRIPT_EPOCH;
    case CACHE_REDIS_CMD_MGET:
    case CACHE_REDIS_CMD_LOOKUP:
        break;
    }
    return CACHE_REDIS_SCRIPT_LOOKUP;
}

/* ---- ops ------------------------------------------------------------------------- */

static bool op_reply(void *arg, const redisReply *reply);

/* ---- deadlines (see the file comment) ---------------------------------------------- */

/* Arms due_timer to fire at at_us (now_us: the monotonic time now). */
static void
due_arm(struct cache_redis *redis, int64_t at_us, int64_t now_us)
{
    int64_t wait = at_us > now_us ? at_us - now_us : 0;
    struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};

    redis->due_at_us = at_us;
    evtimer_add(redis->due_timer, &tv);
}

/* Puts op on the due list in deadline order (now_us: the time it was sent, about now). */
static void
due_add(struct cache_redis *redis, struct cache_redis_op *op, int64_t now_us)
{
    struct cache_redis_op *prev = redis->due_tail;

    while (prev && prev->deadline_us > op->deadline_us) /* only after a shorter timeout */
        prev = prev->due_prev;
    op->due_prev = prev;
    op->due_next = prev ? prev->due_next : redis->due_head;
    if (op->due_next)
        op->due_next->due_prev = op;
    else
        redis->due_tail = op;
    if (prev)
        prev->due_next = op;
    else
        redis->due_head = op;
    op->due = true;
    if (redis->due_at_us == 0 || op->deadline_us < redis->due_at_us)
        due_arm(redis, op->deadline_us, now_us);
}

/* Takes op off the due list (if on it); the timer is left as it is. */
static void
due_remove(struct cache_redis *redis, struct cache_redis_op *op)
{
    if (!op->due)
        return;
    if (op->due_prev)
        op->due_prev->due_next = op->due_next;
    else
        redis->due_head = op->due_next;
    if (op->due_next)
        op->due_next->due_prev = op->due_prev;
    else
        redis->due_tail = op->due_prev;
    op->due = false;
    op->due_prev = op->due_next = NULL;
}

/* ---- ops ------------------------------------------------------------------------- */

/* An op from the free list (or a new one), cleared, of kind, with its ticket. */
static struct cache_redis_op *
op_get(struct cache_redis *redis, enum cache_redis_cmd_kind kind,
       const struct cache_redis_breaker_ticket *ticket)
{
    struct cache_redis_op *op = redis->free_ops;

    if (op) {
        redis->free_ops = op->next;
        redis->n_free_ops--;
    } else {
        op = bson_malloc(sizeof *op);
    }
    *op = (struct cache_redis_op){.redis = redis, .kind = kind, .wanted = true};
    op->ticket = *ticket;
    return op;
}

/* Back to the free list (off the due list: settled or never sent). */
static void
op_put(struct cache_redis_op *op)
{
    struct cache_redis *redis = op->redis;

    due_remove(redis, op);
    cache_redis_cmd_cleanup(&op->own);
    if (op->held)
        evbuffer_free(op->held); /* its bytes live on while the connection still sends them */
    op->held = NULL;
    if (redis->n_free_ops >= FREE_OPS_MAX || redis->destroying) {
        bson_free(op);
        return;
    }
    op->next = redis->free_ops;
    redis->free_ops = op;
    redis->n_free_ops++;
}

/* The cleanup of a fill's bytes once neither its op nor the connection holds them. */
static void
held_free(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    bson_free((void *)data);
}

/* Sends cmd's bytes for op on the command connection (cmd NULL: op->held, by reference). */
static bool
op_send(struct cache_redis_op *op, const struct cache_redis_cmd *cmd)
{
    struct cache_redis_conn *conn = cache_redis_link_conn(op->redis->cmd);

    if (!(cmd ? cache_redis_conn_send_raw(conn, cmd->buf, cmd->len, op_reply, op)
              : cache_redis_conn_send_buffer(conn, op->held, op_reply, op)))
        return false;
    count(op->redis, CACHE_REDIS_CTR_redis_commands);
    op->sent_us = conf_clock_us();
    op->batched = false; /* re-sent alone: its round trip is its own */
    return true;
}

/*
 * Sends op (its command in cmd) and sets its deadline. On failure the op
 * goes back (its ticket forgotten by the breaker) and false is returned.
 */
static bool
op_start(struct cache_redis_op *op, const struct cache_redis_cmd *cmd)
{
    struct cache_redis *redis = op->redis;

    if (!op_send(op, cmd)) {
        cache_redis_breaker_unadmit(&redis->breaker, &op->ticket);
        op_put(op);
        return false;
    }
    op->deadline_us = op->sent_us + redis->timeout_ms * 1000;
    due_add(redis, op, op->sent_us);
    return true;
}

/* The SHA-1 of a script, or NULL (then EVAL). */
static const char *
sha(const struct cache_redis *redis, enum cache_redis_script script)
{
    return cache_redis_link_sha(redis->cmd, (int)script);
}

/* Encodes a read's slow path (the lookup script; EVAL when eval) into redis->enc. */
static void
encode_lookup(struct cache_redis_op *op, bool eval)
{
    struct cache_redis *redis = op->redis;

    cache_redis_cmd_lookup(&redis->enc, &redis->keys,
                           eval ? NULL : sha(redis, CACHE_REDIS_SCRIPT_LOOKUP),
                           op->check ? NULL : &op->key, op->gens, op->n, next_base, redis);
}

/* ---- breaker and dirty flag ---------------------------------------------------- */

/* Feeds an op's outcome to the breaker and logs what it changed. */
static void
breaker_feed(struct cache_redis *redis, struct cache_redis_op *op, bool answered)
{
    switch (cache_redis_breaker_result(&redis->breaker, now_ms(), &op->ticket, answered)) {
    case CACHE_REDIS_BREAKER_NONE:
        break;
    case CACHE_REDIS_BREAKER_CLOSES:
        conf_log(CONF_LOG_INFO, 0, "redis_breaker_closed", "redis=%s", redis->redacted);
        break;
    case CACHE_REDIS_BREAKER_TRIPPED:
        count(redis, CACHE_REDIS_CTR_redis_breaker_trips);
        conf_log(CONF_LOG_WARN, 0, "redis_breaker_open",
                 "redis=%s failures=%lld cooldown_ms=%lld", redis->redacted,
                 (long long)redis->breaker.consecutive, (long long)redis->breaker.cooldown_ms);
        break;
    }
}

static void
epoch_schedule(struct cache_redis *redis, int64_t ms)
{
    struct timeval tv = conf_clock_tv(ms);

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
    struct cache_redis_breaker_ticket ticket;
    struct cache_redis_op *op;
    uint64_t now = now_ms();

    if (!redis->dirty || redis->epoch_inflight || !cache_redis_link_ready(redis->cmd) ||
        redis->destroying)
        return;
    if (!cache_redis_breaker_admit(&redis->breaker, now, &ticket)) {
        uint64_t wait = cache_redis_breaker_wait_ms(&redis->breaker, now);

        epoch_schedule(redis, wait ? (int64_t)wait : EPOCH_RETRY_MS);
        return;
    }
    op = op_get(redis, CACHE_REDIS_CMD_EPOCH, &ticket);
    op->dirty_seq = redis->dirty_seq;
    cache_redis_cmd_epoch(&op->own, &redis->keys, sha(redis, CACHE_REDIS_SCRIPT_EPOCH),
                          redis->instance, random_base(redis));
    op->retried = !sha(redis, CACHE_REDIS_SCRIPT_EPOCH);
    if (!op_start(op, &op->own)) {
        epoch_schedule(redis, EPOCH_RETRY_MS);
        return;
    }
    redis->epoch_inflight = true;
}

static void
epoch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    epoch_try(arg);
}

/* ---- settling ops ------------------------------------------------------------- */

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
    now = now_ms();
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
               const struct cache_redis_blob *blob, uint64_t epoch, int64_t ttl_left_ms)
{
    struct cache_redis *redis = op->redis;

    redis->in_callback++;
    if (st == CACHE_REDIS_HIT)
        op->lookup_cb(op->arg, st, blob->reply, blob->reply_len, blob->material,
                      blob->material_len, epoch, ttl_left_ms);
    else
        op->lookup_cb(op->arg, st, NULL, 0, NULL, 0, epoch, 0);
    redis->in_callback--;
}

/* A read's outcome; reply (MGET or the lookup script, shape checked) is NULL when it failed. */
static void
lookup_done(struct cache_redis_op *op, const redisReply *reply)
{
    struct cache_redis *redis = op->redis;
    enum cache_redis_status st = CACHE_REDIS_FAILED;
    struct cache_redis_blob blob;
    uint64_t epoch = 0;
    int64_t ttl_left_ms = 0;

    if (!op->wanted) /* cancelled: gens may be gone */
        return;
    /*
     * A counter still missing here (the slow path could not be sent) is a
     * failure too; so is one that is not a canonical integer or of another
     * type: a miss for this entry, counted, never a hit nor a fill.
     */
    if (reply) {
        enum cache_redis_cmd_read r = op->read;

        if (!op->have_read)
            r = cache_redis_cmd_read(reply, op->gens, op->n, &op->epoch);

        epoch = op->epoch;
        if (r != CACHE_REDIS_CMD_READ_OK) {
            count(redis, CACHE_REDIS_CTR_redis_corrupt);
            reply = NULL;
        }
    }
    if (reply && op->check) {
        /* The generations and the epoch are all the caller wants. */
        lookup_deliver(op, redis->dirty ? CACHE_REDIS_FAILED : CACHE_REDIS_MISS, NULL, epoch, 0);
        return;
    }
    if (reply) {
        const redisReply *v = reply->element[0];
        bson_error_t error;

        st = CACHE_REDIS_MISS;
        if (v->type == REDIS_REPLY_STRING) {
            /* The MAC covers the Redis key the value was read from (its digits as sent). */
            memcpy(redis->keys.value + redis->keys.value_len - 32, op->hex, 32);
            if (!cache_redis_blob_decode((const uint8_t *)v->str, v->len, redis->mac,
                                         redis->keys.value, redis->keys.value_len, &blob,
                                         &error)) {
                value_refused(redis, v->len, &error);
            } else if (blob.epoch == epoch && cache_redis_cmd_gens_match(&blob, op->gens, op->n) &&
                       !redis->dirty) {
                /* Current; and a hit only before its sealed expiry (kept in
                 * Redis past its TTL, or set there again, it is a miss). */
                uint64_t wall = (uint64_t)conf_clock_wall_ms();

                if (blob.expires_ms > wall) {
                    st = CACHE_REDIS_HIT;
                    ttl_left_ms = blob.expires_ms - wall > (uint64_t)INT64_MAX
                                      ? INT64_MAX
                                      : (int64_t)(blob.expires_ms - wall);
                }
            }
        }
        count(redis, st == CACHE_REDIS_HIT ? CACHE_REDIS_CTR_redis_hits
                                           : CACHE_REDIS_CTR_redis_misses);
    }
    lookup_deliver(op, st, &blob, epoch, ttl_left_ms);
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
    if (!reply || reply->type != REDIS_REPLY_STRING ||
        !cache_redis_cmd_parse_int(reply->str, reply->len, &epoch)) {
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
 * Sentinel: a write was refused as the node is a replica now (demoted by a
 * failover while connected): the command connection is dropped (a
 * reconnection checks ROLE again) and the Sentinels are asked.
 */
static void
replica_seen(struct cache_redis *redis)
{
    cache_redis_link_drop(redis->cmd, "the node answered READONLY: a replica now");
    cache_redis_sentinel_ask(redis->sentinel);
}

/*
 * The errors only a Redis Cluster node sends: a key served by another node
 * (MOVED, ASK), keys of one command in several slots (CROSSSLOT), the
 * cluster not serving (CLUSTERDOWN). Cluster is not supported: such a reply
 * is an error like any (a miss, counted), and said plainly in the log.
 */
static bool
cluster_error(const char *s)
{
    return strncmp(s, "MOVED ", 6) == 0 || strncmp(s, "ASK ", 4) == 0 ||
           strncmp(s, "CROSSSLOT", 9) == 0 || strncmp(s, "CLUSTERDOWN", 11) == 0;
}

/* A warning at most once a minute: the tier is pointed at a Redis Cluster node. */
static void
cluster_warn(struct cache_redis *redis, const char *error)
{
    uint64_t now = now_ms();
    char buf[128];

    if (redis->cluster_logged_ms != 0 && now - redis->cluster_logged_ms < MAC_LOG_EVERY_MS)
        return;
    redis->cluster_logged_ms = now;
    conf_log(CONF_LOG_WARN, 0, "redis_cluster_unsupported",
             "redis=%s error=\"%.80s\" hint=\"Redis Cluster is not supported: point redis at "
             "one node that is not in cluster mode (or a Sentinel master); every read is a miss "
             "meanwhile\"",
             redis->redacted, cache_redis_link_log_text(error, buf, sizeof buf));
}

/*
 * Decides op's outcome, once: reply is Redis's answer, or NULL when the
 * connection was lost (or freed) or, with timed_out, when its deadline passed.
 */
static void
op_settle(struct cache_redis_op *op, const redisReply *reply, bool timed_out)
{
    struct cache_redis *redis = op->redis;
    bool answered = reply != NULL;

    op->settled = true;
    due_remove(redis, op);
    if (answered && !op->batched)
        conf_hist_observe(&redis->rtt, conf_clock_us() - op->sent_us);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        char buf[128];

        count(redis, CACHE_REDIS_CTR_redis_errors);
        if (cluster_error(reply->str))
            cluster_warn(redis, reply->str);
        else if (redis->sentinel && strncmp(reply->str, "READONLY", 8) == 0)
            replica_seen(redis);
        conf_log(CONF_LOG_DEBUG, 0, "redis_error", "error=\"%.80s\"",
                 cache_redis_link_log_text(reply->str, buf, sizeof buf));
        reply = NULL;
    } else if (!reply && !timed_out) {
        count(redis, CACHE_REDIS_CTR_redis_errors);
    }
    breaker_feed(redis, op, answered);
    switch (op->kind) {
    case CACHE_REDIS_CMD_MGET:
    case CACHE_REDIS_CMD_LOOKUP:
        lookup_done(op, reply);
        break;
    case CACHE_REDIS_CMD_FILL:
        if (reply && reply->type == REDIS_REPLY_INTEGER)
            count(redis, reply->integer == 1 ? CACHE_REDIS_CTR_redis_fills
                                             : CACHE_REDIS_CTR_redis_fills_refused);
        break;
    case CACHE_REDIS_CMD_BUMP:
        bump_done(op, reply);
        break;
    case CACHE_REDIS_CMD_EPOCH:
        epoch_done(op, reply);
        break;
    }
}

/*
 * due_timer fired: every op past its deadline is settled as timed out,
 * earliest first (each stays until its connection hands it back); then the
 * timer is armed for the next deadline.
 */
static void
due_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_redis *redis = arg;
    int64_t now = conf_clock_us();
    struct cache_redis_op *op;

    (void)fd;
    (void)what;
    redis->due_at_us = 0;
    while ((op = redis->due_head) && op->deadline_us <= now) {
        count(redis, CACHE_REDIS_CTR_redis_timeouts);
        op_settle(op, NULL, true); /* off the list; its callback may send more ops */
    }
    /* A callback above may have armed it for a later op sent meanwhile: the head comes first. */
    if (op && (redis->due_at_us == 0 || op->deadline_us < redis->due_at_us))
        due_arm(redis, op->deadline_us, now);
}

/*
 * Before settling: re-sends op when its reply asks for it (an MGET missing
 * a counter: the lookup script; NOSCRIPT: the same script as EVAL, once).
 * True when op went out again (same op, same deadline, same ticket).
 */
static bool
op_resend(struct cache_redis_op *op, const redisReply *reply)
{
    struct cache_redis *redis = op->redis;

    if (!op->wanted && (op->kind == CACHE_REDIS_CMD_MGET || op->kind == CACHE_REDIS_CMD_LOOKUP))
        return false; /* cancelled: its generations' names may be gone */
    if (op->kind == CACHE_REDIS_CMD_MGET && reply->type == REDIS_REPLY_ARRAY) {
        const char *s = sha(redis, CACHE_REDIS_SCRIPT_LOOKUP);

        /* Read once here (a batch read it already); lookup_done uses it unless the
         * slow path reads again. */
        if (!op->have_read) {
            op->read = cache_redis_cmd_read(reply, op->gens, op->n, &op->epoch);
            op->have_read = true;
        }
        if (op->read != CACHE_REDIS_CMD_READ_MISSING)
            return false;
        op->have_read = false;
        op->kind = CACHE_REDIS_CMD_LOOKUP;
        op->retried = !s;
        encode_lookup(op, !s);
        count(redis, CACHE_REDIS_CTR_redis_slow_reads);
        return op_send(op, &redis->enc);
    }
    if (op->kind == CACHE_REDIS_CMD_MGET || reply->type != REDIS_REPLY_ERROR || op->retried ||
        strncmp(reply->str, "NOSCRIPT", 8) != 0)
        return false;
    op->retried = true;
    if (op->kind == CACHE_REDIS_CMD_LOOKUP) {
        encode_lookup(op, true);
    } else {
        /* A fill's bytes are in op->held (one chain: pulling it up copies nothing). */
        const char *bytes = op->held ? (const char *)evbuffer_pullup(op->held, -1) : op->own.buf;

        if (!bytes)
            return false;
        cache_redis_cmd_as_eval(&redis->enc, kind_script(op->kind), bytes, op->own.len,
                                op->own.tail, op->own.argc);
    }
    return op_send(op, &redis->enc);
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
    bool shape = !reply || cache_redis_cmd_shape_ok(op->kind, op->n, reply);

    if (!op->settled) {
        if (shape && reply && op_resend(op, reply))
            return true;
        op_settle(op, shape ? reply : NULL, false);
    }
    op_put(op);
    return shape;
}

/* ---- the read batch -----------------------------------------------------------------
 *
 * The reads started in one loop turn go out as ONE MGET: every value, then
 * the epoch and the generations they depend on, each named once. Redis
 * looks each counter up once per batch instead of once per read, and runs
 * one command instead of one per read (a read's own six-key MGET cost it
 * about 3 us at 256 B, and it shares the proxy's CPU: bench/README.md).
 * It is as safe as a read's own MGET: Redis runs the command at one instant,
 * so every value in it is judged against the counters of that instant, as
 * the file comment argues for one read.
 *
 * A read joins the open batch (redis->open; the union of its ops'
 * generation names is copied into name_buf, since a cancelled op's names
 * may be freed) and its deadline starts. The batch goes out from an event
 * activated behind the turn's callbacks (batch_cb), before the command
 * connection writes at the end of the turn. Reads may so go out after a
 * fill or a bump started later in the same turn: a read Redis answers
 * later is judged against later counters, which the argument above allows
 * at any instant. The reply is split (batch_reply): the counters are parsed
 * once, then each op gets a view of its value, the epoch and its own
 * generations, in its own order, and is handled as if its own MGET had
 * come back (op_reply: the slow path, judging, its callback). Each op keeps
 * its deadline, breaker ticket and callback; one cancelled before the batch
 * goes out is dropped then. A batch is one command and one round trip in
 * the counters (redis_errors and redis_timeouts still count each read).
 * A batch is full at BATCH_KEYS keys or batch_cap reads; a read that finds
 * it full goes out alone, as every read did before (lookup_start).
 *
 * Large values. A batch is sized by the values it is likely to meet:
 * batch_cap reads of the largest value seen lately (value_peak, which
 * decays by an eighth with each batch answered) fill BATCH_BYTES
 * (batch_size): bounded by their keys for values up to 256 bytes, 128
 * reads for a 256-byte reply's value (510 bytes with its key material and
 * seal), 15 for a 4 KB reply's, one read for values over half of
 * BATCH_BYTES. A batch that meets far larger values than it was sized
 * for (the first after a run of small ones) is still safe: values that
 * would take its reply past the reader's budget (about 92 MiB) spill
 * (cache_redis_conn_send_values): the reader consumes them without keeping
 * them, and each such read goes out again alone (batch_reply, with its
 * deadline and ticket), a read Redis answers later, which the argument
 * above allows. So a large value never costs the connection (and the
 * epoch), and costs at most one wasted transfer of itself.
 */

/*
 * Drops a read that never went out: forgotten by the breaker, FAILED to its
 * caller if wanted. One its deadline settled already (its caller told, the
 * breaker fed) only goes back.
 */
static void
op_abandon(struct cache_redis_op *op)
{
    struct cache_redis *redis = op->redis;

    if (op->settled) {
        op_put(op);
        return;
    }
    cache_redis_breaker_unadmit(&redis->breaker, &op->ticket);
    due_remove(redis, op);
    if (op->wanted) {
        count(redis, CACHE_REDIS_CTR_redis_skipped);
        lookup_deliver(op, CACHE_REDIS_FAILED, NULL, 0, 0);
    }
    op_put(op);
}

/* Where the name is among the open batch's names; added when new (room checked by the caller). */
static uint8_t
batch_name(struct cache_redis *redis, const struct cache_redis_gen *g)
{
    uint32_t i;

    for (i = 0; i < redis->n_names; i++)
        if (redis->names[i].len == g->name_len &&
            memcmp(redis->name_buf + redis->names[i].at, g->name, g->name_len) == 0)
            return (uint8_t)i;
    if (redis->name_cap - redis->name_len < g->name_len) {
        redis->name_cap = redis->name_cap ? 2 * redis->name_cap : 1024;
        while (redis->name_cap - redis->name_len < g->name_len)
            redis->name_cap *= 2;
        redis->name_buf = bson_realloc(redis->name_buf, redis->name_cap);
    }
    memcpy(redis->name_buf + redis->name_len, g->name, g->name_len);
    redis->names[i].at = redis->name_len;
    redis->names[i].len = g->name_len;
    redis->name_len += g->name_len;
    redis->n_names++;
    return (uint8_t)i;
}

/*
 * op (a read, not yet sent) joins the open batch and its deadline starts;
 * false when the batch has no room for its value and (at worst all new)
 * names: it then goes out alone.
 */
static bool
batch_join(struct cache_redis *redis, struct cache_redis_op *op, const struct cache_key *key)
{
    if (!redis->batch_ev || redis->n_open >= redis->batch_cap ||
        redis->n_open + 1 + 1 + redis->n_names + op->n > BATCH_KEYS)
        return false;
    if (redis->n_open == 0) {
        redis->open_us = conf_clock_us();
        event_active(redis->batch_ev, 0, 0);
    }
    cache_redis_keys_hex(op->hex, key);
    for (uint32_t i = 0; i < op->n; i++)
        op->slot[i] = batch_name(redis, &op->gens[i]);
    op->batched = true;
    op->sent_us = redis->open_us;
    op->deadline_us = op->sent_us + redis->timeout_ms * 1000;
    due_add(redis, op, op->sent_us);
    redis->open[redis->n_open++] = op;
    return true;
}

/* A batch's memory: the spare, or new. */
static struct read_batch *
batch_get(struct cache_redis *redis)
{
    struct read_batch *b = redis->spare;

    redis->spare = NULL;
    return b ? b : bson_malloc(sizeof *b);
}

/* A batch is done with: kept as the spare, unless there is one. */
static void
batch_put(struct read_batch *b)
{
    struct cache_redis *redis = b->redis;

    if (redis->spare || redis->destroying)
        bson_free(b);
    else
        redis->spare = b;
}

/* A batch's reply showed its largest value (len): value_peak and batch_cap follow. */
static void
batch_size(struct cache_redis *redis, size_t len)
{
    redis->value_peak -= redis->value_peak / 8;
    if (len > redis->value_peak)
        redis->value_peak = len;
    redis->batch_cap = redis->value_peak <= BATCH_BYTES / BATCH_KEYS
                           ? BATCH_KEYS
                           : (uint32_t)(BATCH_BYTES / redis->value_peak);
    if (redis->batch_cap < 1)
        redis->batch_cap = 1;
}

/*
 * A read whose value spilled from its batch's reply goes out again alone,
 * as lookup_start sends one (its deadline and ticket kept); settled as
 * lost when it cannot be sent.
 */
static void
op_alone(struct cache_redis_op *op)
{
    struct cache_redis *redis = op->redis;

    cache_redis_cmd_mget(&redis->enc, &redis->keys, &op->key, op->gens, op->n);
    if (op_send(op, &redis->enc))
        return;
    op_settle(op, NULL, false);
    op_put(op);
}

/* The reply to a read batch (NULL: the connection is gone): each op's share, in order. */
static bool
batch_reply(void *arg, const redisReply *reply)
{
    struct read_batch *b = arg;
    struct cache_redis *redis = b->redis;
    uint32_t k = b->n_ops;
    bool shape = !reply || cache_redis_cmd_batch_shape_ok(k, b->n_names, reply);
    bool array = reply && shape && reply->type == REDIS_REPLY_ARRAY;
    /* The epoch (0) and each name's counter (1 + i): its value, or what is wrong with it. */
    uint64_t value[1 + BATCH_KEYS];
    enum cache_redis_cmd_read state[1 + BATCH_KEYS];
    redisReply nil = {.type = REDIS_REPLY_NIL}; /* a spilled value no read needs */

    if (reply && shape) { /* a round trip, unless every read of it timed out (late) */
        for (uint32_t i = 0; i < k; i++)
            if (!b->ops[i]->settled) {
                conf_hist_observe(&redis->rtt, conf_clock_us() - b->sent_us);
                break;
            }
    }
    for (uint32_t j = 0; array && j <= b->n_names; j++)
        state[j] = cache_redis_cmd_counter(reply->element[k + j], &value[j]);
    if (array) { /* a nil's len is 0; a spilled value's is what it had */
        size_t largest = 0;

        for (uint32_t i = 0; i < k; i++)
            if (reply->element[i]->len > largest)
                largest = reply->element[i]->len;
        batch_size(redis, largest);
    }
    for (uint32_t i = 0; i < k; i++) {
        struct cache_redis_op *op = b->ops[i];
        redisReply *elem[2 + CACHE_REDIS_MAX_GENS];
        redisReply view = {.type = REDIS_REPLY_ARRAY, .elements = 2 + (size_t)op->n,
                           .element = elem};

        if (!array) { /* an error for each, or nothing (gone, or a shape no MGET has) */
            (void)op_reply(op, shape ? reply : NULL);
            continue;
        }
        elem[0] = reply->element[i];
        if (elem[0]->type == CACHE_REDIS_REPLY_SPILLED) {
            if (op->wanted && !op->settled && !op->check) {
                count(redis, CACHE_REDIS_CTR_redis_spills);
                op_alone(op);
                continue;
            }
            elem[0] = &nil; /* a check, or a read nobody waits for */
        }
        elem[1] = reply->element[k];
        for (uint32_t g = 0; g < op->n; g++)
            elem[2 + g] = reply->element[k + 1 + op->slot[g]];
        if (op->wanted && !op->settled) { /* a cancelled or settled op's gens may be gone */
            /* As cache_redis_cmd_read would on the view, from the counters parsed once. */
            enum cache_redis_cmd_read r = state[0];

            if (r == CACHE_REDIS_CMD_READ_OK)
                op->epoch = value[0];
            for (uint32_t g = 0; g < op->n && r != CACHE_REDIS_CMD_READ_MISSING; g++) {
                r = cache_redis_cmd_worse(r, state[1 + op->slot[g]]);
                if (state[1 + op->slot[g]] == CACHE_REDIS_CMD_READ_OK)
                    op->gens[g].value = value[1 + op->slot[g]];
            }
            op->read = r;
            op->have_read = true;
        }
        (void)op_reply(op, &view);
    }
    batch_put(b);
    return shape;
}

/*
 * The open batch goes out (ops cancelled meanwhile are dropped). From the
 * loop only (batch_cb): a batch that cannot be sent calls its ops back.
 */
static void
batch_send(struct cache_redis *redis)
{
    uint32_t n = redis->n_open, k = 0;
    const char *hex[BATCH_KEYS];
    struct cache_redis_gen names[BATCH_KEYS];
    struct read_batch *b;

    if (n == 0)
        return;
    redis->n_open = 0; /* the callbacks below may start reads: a new batch */
    b = batch_get(redis);
    b->redis = redis;
    b->n_names = redis->n_names;
    for (uint32_t i = 0; i < n; i++) {
        struct cache_redis_op *op = redis->open[i];

        if (!op->wanted || op->settled) {
            op_abandon(op);
            continue;
        }
        hex[k] = op->hex;
        b->ops[k++] = op;
    }
    b->n_ops = k;
    for (uint32_t j = 0; j < b->n_names; j++)
        names[j] = (struct cache_redis_gen){redis->name_buf + redis->names[j].at,
                                            redis->names[j].len, 0};
    if (k > 0)
        cache_redis_cmd_mget_batch(&redis->enc, &redis->keys, hex, k, names, b->n_names);
    redis->n_names = 0; /* the names are encoded (or not needed) */
    redis->name_len = 0;
    if (k == 0) {
        batch_put(b);
        return;
    }
    if (!cache_redis_conn_send_values(cache_redis_link_conn(redis->cmd), redis->enc.buf,
                                      redis->enc.len, k, batch_reply, b)) {
        for (uint32_t i = 0; i < k; i++)
            op_abandon(b->ops[i]);
        batch_put(b);
        return;
    }
    count(redis, CACHE_REDIS_CTR_redis_commands);
    b->sent_us = conf_clock_us();
}

static void
batch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    batch_send(arg);
}

/* ---- the two links ----------------------------------------------------------------- */

/* The command connection is ready: Redis works again. */
static void
cmd_ready(void *arg, bool again)
{
    struct cache_redis *redis = arg;

    if (again)
        count(redis, CACHE_REDIS_CTR_redis_reconnects);
    cache_redis_breaker_reset(&redis->breaker);
    epoch_try(redis);
}

/* The subscription is (re)made: bumps made while nobody listened are unknown. */
static void
sub_ready(void *arg, bool again)
{
    struct cache_redis *redis = arg;
    static const char all[] = "*";

    if (again)
        count(redis, CACHE_REDIS_CTR_redis_reconnects);
    if (redis->inval_fn) {
        redis->in_callback++;
        redis->inval_fn(redis->inval_arg, all, 1);
        redis->in_callback--;
    }
}

static void
cmd_lost(void *arg, bool was_ready, bool protocol)
{
    struct cache_redis *redis = arg;

    if (protocol)
        count(redis, CACHE_REDIS_CTR_redis_protocol_errors);
    if (was_ready) /* replies lost in flight: distrust Redis */
        mark_dirty(redis, protocol ? "protocol_error" : "disconnected");
    cache_redis_sentinel_ask(redis->sentinel); /* the master may have moved (NULL: none) */
}

static void
sub_lost(void *arg, bool was_ready, bool protocol)
{
    struct cache_redis *redis = arg;

    (void)was_ready;
    if (protocol)
        count(redis, CACHE_REDIS_CTR_redis_protocol_errors);
    cache_redis_sentinel_ask(redis->sentinel);
}

/*
 * A Sentinel named the master. The same one: nothing (links that are down
 * retry there with their backoff: a master that is down until the
 * Sentinels agree on another is not hammered). Another: its address
 * replaces the old one, links still on the old one drop it and connect
 * there at once (checking ROLE), and the tier is dirty until an epoch bump
 * on the new master: Redis replicates asynchronously, so bumps the old
 * master confirmed may be missing from the new one.
 */
static void
sentinel_master(void *arg, const char *host, uint16_t port)
{
    struct cache_redis *redis = arg;

    if (redis->url.host && strcmp(redis->url.host, host) == 0 && redis->url.port == port)
        return;
    if (redis->url.host) {
        conf_log(CONF_LOG_WARN, 0, "redis_master",
                 "redis=%s master=%s address=\"%s:%u\" previous=\"%s:%u\"", redis->redacted,
                 redis->url.master, host, (unsigned)port, redis->url.host,
                 (unsigned)redis->url.port);
        count(redis, CACHE_REDIS_CTR_redis_master_switches);
        mark_dirty(redis, "master_switched");
    } else {
        conf_log(CONF_LOG_INFO, 0, "redis_master", "redis=%s master=%s address=\"%s:%u\"",
                 redis->redacted, redis->url.master, host, (unsigned)port);
    }
    bson_free(redis->url.host);
    redis->url.host = bson_strdup(host);
    redis->url.port = port;
    cache_redis_link_kick(redis->cmd);
    cache_redis_link_kick(redis->sub);
}

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

/* A published message: its names, skipping our own messages. */
static void
sub_message(void *arg, const char *payload, size_t len)
{
    struct cache_redis *redis = arg;

    cache_redis_push_names(payload, len, redis->instance, inval_name, redis);
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

/*
 * rediss://: the TLS context from the redis_tls_* options (a warning when
 * hostnames go unchecked). The options without rediss:// are refused: a
 * CA file next to a plaintext URL is a forgotten "s", not a choice.
 */
static bool
tls_setup(struct cache_redis *redis, const struct conf *conf, bson_error_t *error)
{
    struct cache_redis_tls_conf tc = {
        .ca_file = conf->redis_tls_ca_file,
        .cert_file = conf->redis_tls_cert_file,
        .key_file = conf->redis_tls_key_file,
        .allow_invalid_hostnames = conf->redis_tls_allow_invalid_hostnames,
    };
    const char *set = tc.ca_file && tc.ca_file[0]       ? "redis_tls_ca_file"
                      : tc.cert_file && tc.cert_file[0] ? "redis_tls_cert_file"
                      : tc.key_file && tc.key_file[0]   ? "redis_tls_key_file"
                      : tc.allow_invalid_hostnames      ? "redis_tls_allow_invalid_hostnames"
                                                        : NULL;

    if (!redis->url.tls) {
        if (!set)
            return true;
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                       "%s is set but the Redis URL is not rediss:// (TLS)", set);
        return false;
    }
    if (!(redis->tls = cache_redis_tls_new(&tc, error)))
        return false;
    if (tc.allow_invalid_hostnames)
        conf_log(CONF_LOG_WARN, 0, "redis_tls_hostnames_unchecked",
                 "hint=\"redis_tls_allow_invalid_hostnames is on: any certificate from a trusted CA "
                 "is accepted for any host (a man in the middle with one is not detected)\"");
    return true;
}

/* ---- the API ---------------------------------------------------------------------- */

/* Frees what cache_redis_new set up before the links (any may be NULL or empty). */
static void
redis_free(struct cache_redis *redis)
{
    if (redis->dns)
        evdns_base_free(redis->dns, 0); /* after the connections: they cancel their lookups */
    if (redis->sentinel_password)
        bson_zero_free(redis->sentinel_password, strlen(redis->sentinel_password));
    cache_redis_url_cleanup(&redis->url);
    cache_redis_tls_destroy(redis->tls); /* after the connections, which borrow it */
    cache_redis_mac_destroy(redis->mac);
    if (redis->password)
        bson_zero_free(redis->password, strlen(redis->password));
    bson_free(redis->redacted);
    cache_redis_keys_cleanup(&redis->keys);
    cache_redis_cmd_cleanup(&redis->enc);
    bson_free(redis->name_buf);
    bson_free(redis->spare);
    bson_free(redis);
}

struct cache_redis *
cache_redis_new(struct event_base *base, const struct conf *conf, bson_error_t *error)
{
    static const struct cache_redis_link_handlers cmd_handlers = {cmd_ready, cmd_lost, NULL};
    static const struct cache_redis_link_handlers sub_handlers = {sub_ready, sub_lost,
                                                                  sub_message};
    struct cache_redis *redis = bson_malloc0(sizeof *redis);
    const char *scripts[CACHE_REDIS_SCRIPT_COUNT];
    struct cache_redis_link_conf lc;
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
    if (!cache_redis_url_parse(conf->redis, &redis->url, error) ||
        !tls_setup(redis, conf, error)) {
        redis_free(redis);
        return NULL;
    }
    redis->base = base;
    if (host_is_name(&redis->url) || redis->url.n_sentinels > 0) {
        /* Resolved on the loop, never with a blocking getaddrinfo. */
        redis->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                              EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!redis->dns) {
            bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                           "cannot set up a DNS resolver for the Redis host name");
            redis_free(redis);
            return NULL;
        }
    }
    if (conf->redis_password && conf->redis_password[0])
        redis->password = bson_strdup(conf->redis_password);
    else if (redis->url.password)
        redis->password = bson_strdup(redis->url.password);
    redis->redacted = cache_redis_url_redact(conf->redis);
    cache_redis_keys_init(&redis->keys, conf->redis_prefix ? conf->redis_prefix : "");
    cache_redis_breaker_init(&redis->breaker, 1, 0);
    cache_redis_reconfigure(redis, conf);
    if (!conf_random_bytes(&seed, sizeof seed)) /* a unique seed, if a guessable one */
        seed = now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)redis;
    redis->rng = seed;
    bson_snprintf(redis->instance, sizeof redis->instance, "%016" PRIx64, rng_next(redis));
    redis->epoch_timer = evtimer_new(base, epoch_timer_cb, redis);
    redis->due_timer = evtimer_new(base, due_timer_cb, redis);
    redis->batch_ev = event_new(base, -1, 0, batch_cb, redis);
    redis->batch_cap = BATCH_KEYS; /* no value seen yet */
    for (int i = 0; i < CACHE_REDIS_SCRIPT_COUNT; i++)
        scripts[i] = cache_redis_cmd_script_text((enum cache_redis_script)i);
    lc = (struct cache_redis_link_conf){
        .base = base,
        .dns = redis->dns,
        .url = &redis->url,
        .tls = redis->tls,
        .password = redis->password,
        .redacted = redis->redacted,
        .name = "commands",
        .scripts = scripts,
        .n_scripts = CACHE_REDIS_SCRIPT_COUNT,
        .max_reply = CMD_MAX_REPLY,
        .timeout_ms = redis->timeout_ms,
        .sentinel = redis->url.n_sentinels > 0,
    };
    lc.max_elements = LINK_ELEMENTS(BATCH_KEYS, lc.sentinel); /* a read batch's reply */
    redis->cmd = cache_redis_link_new(&lc, &cmd_handlers, redis);
    lc.name = "pubsub";
    lc.scripts = NULL;
    lc.n_scripts = 0;
    lc.channel = redis->keys.inval;
    lc.channel_len = redis->keys.inval_len;
    lc.max_reply = SUB_MAX_REPLY;
    lc.max_elements = LINK_ELEMENTS(3, lc.sentinel); /* a push: message, channel, payload */
    redis->sub = cache_redis_link_new(&lc, &sub_handlers, redis);
    if (lc.sentinel) { /* the links wait for the master's address */
        static const struct cache_redis_sentinel_handlers sh = {sentinel_master};
        struct cache_redis_sentinel_conf sc = {
            .base = base,
            .dns = redis->dns,
            .url = &redis->url,
            .tls = redis->tls,
            .redacted = redis->redacted,
            .timeout_ms = redis->timeout_ms,
        };

        if (conf->redis_sentinel_password && conf->redis_sentinel_password[0])
            redis->sentinel_password = bson_strdup(conf->redis_sentinel_password);
        sc.password = redis->sentinel_password;
        redis->sentinel = cache_redis_sentinel_new(&sc, &sh, redis);
    }
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
    for (uint32_t i = 0; i < redis->n_open; i++) /* reads not sent yet: FAILED */
        op_abandon(redis->open[i]);
    redis->n_open = 0;
    cache_redis_sentinel_destroy(redis->sentinel); /* first: it kicks the links */
    cache_redis_link_destroy(redis->cmd); /* pending ops are called back with FAILED here */
    cache_redis_link_destroy(redis->sub);
    event_free(redis->epoch_timer);
    event_free(redis->due_timer); /* the due list is empty: every op was settled above */
    event_free(redis->batch_ev);
    while (redis->free_ops) {
        struct cache_redis_op *op = redis->free_ops;

        redis->free_ops = op->next;
        bson_free(op);
    }
    redis_free(redis);
}

void
cache_redis_reconfigure(struct cache_redis *redis, const struct conf *conf)
{
    redis->timeout_ms = conf->redis_timeout > 0 ? conf->redis_timeout : 1;
    cache_redis_breaker_configure(&redis->breaker, conf->redis_breaker_failures,
                                  conf->redis_breaker_cooldown);
    if (redis->cmd)
        cache_redis_link_set_timeout(redis->cmd, redis->timeout_ms);
    if (redis->sub)
        cache_redis_link_set_timeout(redis->sub, redis->timeout_ms);
    cache_redis_sentinel_set_timeout(redis->sentinel, redis->timeout_ms);
}

enum cache_redis_state
cache_redis_state(const struct cache_redis *redis)
{
    if (!cache_redis_link_ready(redis->cmd))
        return CACHE_REDIS_DISCONNECTED;
    if (redis->breaker.state != CACHE_REDIS_BREAKER_STATE_CLOSED)
        return CACHE_REDIS_BREAKER_OPEN;
    return redis->dirty ? CACHE_REDIS_DIRTY : CACHE_REDIS_CONNECTED;
}

bool
cache_redis_usable(const struct cache_redis *redis)
{
    if (!redis || redis->destroying || !cache_redis_link_ready(redis->cmd) || redis->dirty)
        return false;
    return cache_redis_breaker_would_admit(&redis->breaker, now_ms());
}

bool
cache_redis_subscribed(const struct cache_redis *redis)
{
    return redis && cache_redis_link_ready(redis->sub);
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

/*
 * Starts a read: the MGET of key's value (or, key NULL, of a value key that
 * never holds a value: the generations and the epoch only), the epoch and
 * every generation.
 */
static struct cache_redis_op *
lookup_start(struct cache_redis *redis, const struct cache_key *key, struct cache_redis_gen *gens,
             uint32_t n, cache_redis_lookup_cb cb, void *arg)
{
    struct cache_redis_breaker_ticket ticket;
    struct cache_redis_op *op;

    if (!cache_redis_usable(redis) || !names_ok(gens, n) ||
        !cache_redis_breaker_admit(&redis->breaker, now_ms(), &ticket)) {
        if (redis)
            count(redis, CACHE_REDIS_CTR_redis_skipped);
        return NULL;
    }
    op = op_get(redis, CACHE_REDIS_CMD_MGET, &ticket);
    op->lookup_cb = cb;
    op->arg = arg;
    op->gens = gens;
    op->n = n;
    op->check = key == NULL;
    if (key)
        op->key = *key;
    if (batch_join(redis, op, key))
        return op;
    /* No room left in this turn's batch: alone. */
    cache_redis_cmd_mget(&redis->enc, &redis->keys, key, gens, n);
    memcpy(op->hex, redis->keys.value + redis->keys.value_len - 32, 32);
    if (!op_start(op, &redis->enc)) {
        count(redis, CACHE_REDIS_CTR_redis_skipped);
        return NULL;
    }
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
    struct cache_redis_breaker_ticket ticket;
    struct cache_redis_blob blob = {0};
    struct cache_redis_op *op;
    size_t len;
    uint8_t *at;

    if (!cache_redis_usable(redis) || redis->breaker.state != CACHE_REDIS_BREAKER_STATE_CLOSED ||
        ttl_ms <= 0 || !names_ok(gens, n))
        return;
    blob.epoch = epoch;
    blob.expires_ms = (uint64_t)conf_clock_wall_ms() + (uint64_t)ttl_ms;
    blob.n_gens = n;
    memcpy(blob.gens, gens, n * sizeof *gens);
    blob.material = material;
    blob.material_len = material_len;
    blob.reply = reply;
    blob.reply_len = reply_len;
    if (!(len = cache_redis_blob_size(&blob)) ||
        !cache_redis_breaker_admit(&redis->breaker, now_ms(), &ticket))
        return;
    op = op_get(redis, CACHE_REDIS_CMD_FILL, &ticket);
    /*
     * One copy of the reply: the value is written (and sealed, for the key
     * it is stored under) straight into the command, whose buffer is then
     * handed to an evbuffer that the connection sends by reference; it is
     * kept for a NOSCRIPT retry.
     */
    cache_redis_keys_set_value(&redis->keys, key);
    at = cache_redis_cmd_fill(&op->own, &redis->keys, sha(redis, CACHE_REDIS_SCRIPT_FILL), len,
                              ttl_ms, epoch, gens, n);
    cache_redis_blob_write(&blob, redis->mac, redis->keys.value, redis->keys.value_len, at, len);
    op->retried = !sha(redis, CACHE_REDIS_SCRIPT_FILL);
    if (!(op->held = evbuffer_new()) ||
        evbuffer_add_reference(op->held, op->own.buf, op->own.len, held_free, NULL) != 0) {
        cache_redis_breaker_unadmit(&redis->breaker, &ticket);
        op_put(op);
        return;
    }
    op->own.buf = NULL; /* op->held's now; own keeps len, tail and argc for EVAL */
    op->own.cap = 0;
    (void)op_start(op, NULL);
}

struct cache_redis_op *
cache_redis_bump(struct cache_redis *redis, const struct cache_redis_gen *gens, uint32_t n,
                 cache_redis_done_cb cb, void *arg)
{
    struct cache_redis_breaker_ticket ticket;
    struct cache_redis_op *op;

    if (n == 0)
        return NULL;
    if (redis->destroying || !cache_redis_link_ready(redis->cmd) ||
        redis->breaker.state != CACHE_REDIS_BREAKER_STATE_CLOSED || !names_ok(gens, n) ||
        !cache_redis_breaker_admit(&redis->breaker, now_ms(), &ticket))
        goto fail;
    op = op_get(redis, CACHE_REDIS_CMD_BUMP, &ticket);
    op->done_cb = cb;
    op->arg = arg;
    cache_redis_cmd_bump(&op->own, &redis->keys, sha(redis, CACHE_REDIS_SCRIPT_BUMP),
                         redis->instance, gens, n, next_base, redis);
    op->retried = !sha(redis, CACHE_REDIS_SCRIPT_BUMP);
    if (op_start(op, &op->own))
        return op;
fail:
    count(redis, CACHE_REDIS_CTR_redis_bumps_failed);
    mark_dirty(redis,
               cache_redis_link_ready(redis->cmd) ? "bump_not_sent" : "bump_while_disconnected");
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

const struct conf_hist *
cache_redis_latency(const struct cache_redis *redis)
{
    return &redis->rtt;
}
