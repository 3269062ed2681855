/*
 * tests/integration/redis_driver.c: drives cache/redis.c against a real
 * redis-server for tests/integration/test_redis_tier.sh. It owns only the
 * scenario: two cache_redis instances (two proxies) on one event loop, a
 * blocking hiredis connection to inspect and tamper with Redis (junk,
 * values moved, altered or forged: refused by their MAC), host names, and
 * the faults (SIGKILL, a restart from the saved RDB, SIGSTOP / SIGCONT). It
 * prints "PLAN n", then "RESULT 0|1 name" per check and "# " diagnostics;
 * the script turns them into TAP. Everything on 127.0.0.1, every wait bounded.
 *
 *   redis_driver PORT REDIS_PID PIDFILE
 * PIDFILE receives the pid of the redis-server this program restarts (it
 * dies with this program: PR_SET_PDEATHSIG).
 */
#include "config.h"

#include "cache/redis.h"
#include "cache/redis_blob.h"
#include "cache/redis_mac.h"
#include "conf/clock.h"
#include "conf/conf.h"
#include "conf/hist.h"
#include "conf/log.h"
#include "wire/frame.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_CHECKS 82
#define TIMEOUT_MS 50
#define SLACK_MS 100 /* scheduling slack allowed around redis_timeout (ASan, busy CI) */
#define FAILURES 3
#define COOLDOWN_MS 1000

/* The scenario's state: one loop, the Redis being tortured, the check count. */
struct drv {
    struct event_base *base;
    int port;
    pid_t redis_pid;
    pid_t child; /* the restarted redis-server, or 0 */
    const char *pidfile;
    char dir[512];
    int checks;
};

/* What a lookup callback saw. */
struct res {
    bool done;
    enum cache_redis_status status;
    uint8_t reply[256];
    size_t reply_len;
    uint64_t epoch;
    uint64_t at_ms;
    int64_t ttl_left_ms; /* a HIT's: what is left of the value's sealed lifetime */
};

/* What a bump callback saw. */
struct bump_res {
    bool done;
    bool ok;
};

/* Names an instance's invalidation callback received. */
struct heard {
    char names[1024];
    int count;
};

static void check(struct drv *d, bool good, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check(struct drv *d, bool good, const char *fmt, ...)
{
    va_list ap;

    d->checks++;
    printf("RESULT %d ", good ? 0 : 1);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until *flag (when not NULL) or ms pass. Returns whether *flag. */
static bool
run_until(struct drv *d, const bool *flag, int ms)
{
    bool expired = false;
    struct event *ev = evtimer_new(d->base, deadline_cb, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
    while (!(flag && *flag) && !expired)
        event_base_loop(d->base, EVLOOP_ONCE);
    event_free(ev);
    return flag && *flag;
}

/* Runs the loop until redis reaches state, for at most ms. */
static bool
wait_state(struct drv *d, struct cache_redis *redis, enum cache_redis_state state, int ms)
{
    uint64_t end = (uint64_t)conf_clock_ms() + (uint64_t)ms;

    while (cache_redis_state(redis) != state && (uint64_t)conf_clock_ms() < end)
        run_until(d, NULL, 10);
    return cache_redis_state(redis) == state;
}

static void
lookup_cb(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
          const uint8_t *material, size_t material_len, uint64_t epoch, int64_t ttl_left_ms)
{
    struct res *res = arg;

    (void)material;
    (void)material_len;
    res->done = true;
    res->status = status;
    res->epoch = epoch;
    res->ttl_left_ms = ttl_left_ms;
    res->at_ms = (uint64_t)conf_clock_ms();
    res->reply_len = reply_len <= sizeof res->reply ? reply_len : 0;
    if (reply && res->reply_len)
        memcpy(res->reply, reply, res->reply_len);
}

static void
bump_cb(void *arg, bool ok)
{
    struct bump_res *b = arg;

    b->done = true;
    b->ok = ok;
}

static void
heard_cb(void *arg, const char *name, size_t len)
{
    struct heard *h = arg;
    size_t used = strlen(h->names);

    h->count++;
    if (used + len + 2 < sizeof h->names) {
        memcpy(h->names + used, name, len);
        memcpy(h->names + used + len, " ", 2);
    }
}

/* The generations a read of db.coll depends on. */
static void
gens_init(struct cache_redis_gen gens[2])
{
    gens[0] = (struct cache_redis_gen){"n:db.coll", 9, 0};
    gens[1] = (struct cache_redis_gen){"d:db", 4, 0};
}

/* Lookup and wait: a status, or -1 when cache_redis_lookup returned NULL. */
static int
lookup(struct drv *d, struct cache_redis *redis, const struct cache_key *key,
       struct cache_redis_gen *gens, struct res *res)
{
    memset(res, 0, sizeof *res);
    if (!cache_redis_lookup(redis, key, gens, 2, lookup_cb, res))
        return -1;
    if (!run_until(d, &res->done, 3000))
        return -2;
    return (int)res->status;
}

/* An OP_MSG reply {ok: 1, v: tag}. */
static size_t
make_reply(uint8_t *buf, size_t cap, int tag)
{
    bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(1), "v", BCON_INT32(tag));
    struct wire_header h = {(int32_t)(WIRE_HEADER_LEN + 5 + doc->len), 1, 2, WIRE_OP_MSG};
    size_t len = (size_t)h.length;

    BSON_ASSERT(len <= cap);
    memset(buf, 0, len);
    wire_frame_put_header(buf, &h);
    memcpy(buf + WIRE_HEADER_LEN + 5, bson_get_data(doc), doc->len);
    bson_destroy(doc);
    return len;
}

static const char material[] = "principal|db|coll|{find: coll}";

/* Fills key (gens and epoch from a lookup) and waits until Redis stored or refused it. */
static bool
fill(struct drv *d, struct cache_redis *redis, const struct cache_key *key,
     const struct cache_redis_gen *gens, uint64_t epoch, int tag)
{
    uint8_t reply[256];
    size_t len = make_reply(reply, sizeof reply, tag);
    uint64_t before = cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills) +
                      cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills_refused) +
                      cache_redis_counter(redis, CACHE_REDIS_CTR_redis_errors);
    uint64_t end = (uint64_t)conf_clock_ms() + 2000;

    cache_redis_fill(redis, key, (const uint8_t *)material, sizeof material, reply, len, gens, 2,
                     epoch, 60000);
    while ((uint64_t)conf_clock_ms() < end) {
        uint64_t after = cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills) +
                         cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills_refused) +
                         cache_redis_counter(redis, CACHE_REDIS_CTR_redis_errors);

        if (after > before)
            return true;
        run_until(d, NULL, 5);
    }
    return false;
}

static bool
is_tagged_reply(const struct res *res, int tag)
{
    uint8_t want[256];
    size_t len = make_reply(want, sizeof want, tag);

    return res->reply_len == len && memcmp(res->reply, want, len) == 0;
}

static redisContext *
sync_connect(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && !c->err) {
        redisSetTimeout(c, tv);
        return c;
    }
    if (c)
        redisFree(c);
    return NULL;
}

/* Runs one command on a fresh blocking connection; returns the reply (freeReplyObject) or NULL. */
static redisReply *
sync_cmd(int port, const char *fmt, ...)
{
    redisContext *c = sync_connect(port);
    redisReply *r = NULL;
    va_list ap;

    if (!c)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void
key_hex(const struct cache_key *key, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)key->hi, (unsigned long long)key->lo);
}

/* Waits until pid is gone or a zombie (it is the script's child, not ours). */
static void
wait_dead(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 200; i++) {
        char buf[256] = "";
        FILE *f = fopen(path, "r");
        char *p;

        if (!f)
            return;
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
        p = strrchr(buf, ')');
        if (!p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X')
            return;
        usleep(10000);
    }
}

/* Starts redis-server again on the same port and directory (so it loads dump.rdb). */
static pid_t
restart_redis(struct drv *d)
{
    char port[16];
    char log[600];
    pid_t pid;

    snprintf(port, sizeof port, "%d", d->port);
    snprintf(log, sizeof log, "%s/restarted.log", d->dir);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--dir", d->dir, "--protected-mode",
               "yes", (char *)NULL);
        _exit(127);
    }
    if (pid > 0) {
        FILE *f = fopen(d->pidfile, "w");

        if (f) {
            fprintf(f, "%d\n", (int)pid);
            fclose(f);
        }
    }
    for (int i = 0; pid > 0 && i < 100; i++) {
        redisReply *r = sync_cmd(d->port, "PING");
        bool up = r && r->type == REDIS_REPLY_STATUS;

        if (r)
            freeReplyObject(r);
        if (up)
            break;
        usleep(50000);
    }
    return pid;
}

#define SECRET "driver-cache-key-secret"

/* A conf for url and prefix with cache_key_secret secret. conf_destroy. */
static struct conf *
make_conf_secret(const char *url, const char *prefix, const char *secret)
{
    char timeout[32];
    char failures[16];
    char cooldown[32];
    char url_copy[512]; /* conf_load blanks a secret flag's value in argv: it must be writable */
    char secret_copy[128];
    char *argv[] = {"redis_driver", "--redis", url_copy, "--redis-prefix", (char *)prefix,
                    "--redis-timeout", timeout, "--redis-breaker-failures", failures,
                    "--redis-breaker-cooldown", cooldown, "--cache-key-secret", secret_copy,
                    NULL};
    struct conf *conf = conf_new();
    enum conf_action action;
    bson_error_t error;

    snprintf(url_copy, sizeof url_copy, "%s", url);
    snprintf(secret_copy, sizeof secret_copy, "%s", secret);
    snprintf(timeout, sizeof timeout, "%dms", TIMEOUT_MS);
    snprintf(failures, sizeof failures, "%d", FAILURES);
    snprintf(cooldown, sizeof cooldown, "%dms", COOLDOWN_MS);
    if (!conf_load(conf, 13, argv, &action, &error)) {
        printf("# conf_load: %s\n", error.message);
        conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static struct conf *
make_conf(const char *url, const char *prefix)
{
    return make_conf_secret(url, prefix, SECRET);
}

static const char *
status_name(int st)
{
    switch (st) {
    case CACHE_REDIS_HIT:
        return "HIT";
    case CACHE_REDIS_MISS:
        return "MISS";
    case CACHE_REDIS_FAILED:
        return "FAILED";
    case -1:
        return "skipped (NULL)";
    default:
        return "no callback";
    }
}

/* The two proxies share values; a write through one is seen by the other. */
static void
phase_shared(struct drv *d, struct cache_redis *a, struct cache_redis *b, struct heard *heard_a,
             struct heard *heard_b)
{
    struct cache_key k1 = {1, 1};
    struct cache_key k2 = {2, 2};
    struct cache_redis_gen gens[2];
    struct cache_redis_gen snap[2];
    struct bump_res bump = {0};
    struct res res;
    uint64_t epoch;
    int st;

    gens_init(gens);
    st = lookup(d, a, &k1, gens, &res);
    check(d, st == CACHE_REDIS_MISS && gens[0].value != 0 && gens[1].value != 0,
          "a new key is a MISS with the generations filled (%s)", status_name(st));
    printf("# generation bases: n:db.coll=%llu d:db=%llu epoch=%llu\n",
           (unsigned long long)gens[0].value, (unsigned long long)gens[1].value,
           (unsigned long long)res.epoch);
    check(d, gens[0].value < (UINT64_C(1) << 62) + 1 && gens[0].value != gens[1].value,
          "counters start at random 62-bit bases");
    check(d, fill(d, a, &k1, gens, res.epoch, 1) &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_fills) == 1,
          "fill stored");
    gens_init(gens);
    st = lookup(d, a, &k1, gens, &res);
    check(d, st == CACHE_REDIS_HIT && is_tagged_reply(&res, 1), "lookup after fill is a HIT (%s)",
          status_name(st));
    gens_init(gens);
    st = lookup(d, b, &k1, gens, &res);
    check(d, st == CACHE_REDIS_HIT && is_tagged_reply(&res, 1),
          "the second proxy gets the same HIT (%s)", status_name(st));

    /* The cache-aside race: A misses, B writes (bumps), A's late fill must be refused. */
    gens_init(snap);
    st = lookup(d, a, &k2, snap, &res);
    epoch = res.epoch;
    check(d, st == CACHE_REDIS_MISS, "k2 misses (%s)", status_name(st));
    gens_init(gens);
    if (!cache_redis_bump(b, gens, 1, bump_cb, &bump) || !run_until(d, &bump.done, 2000))
        bump.ok = false;
    check(d, bump.ok, "the second proxy's bump is confirmed");
    check(d, fill(d, a, &k2, snap, epoch, 2) &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_fills_refused) == 1,
          "a fill under a generation that moved is refused");
    gens_init(gens);
    st = lookup(d, a, &k2, gens, &res);
    check(d, st == CACHE_REDIS_MISS && gens[0].value == snap[0].value + 1,
          "nothing was stored, and the generation moved by one (%s)", status_name(st));
    gens_init(gens);
    st = lookup(d, a, &k1, gens, &res);
    check(d, st == CACHE_REDIS_MISS, "the bump turned k1's HIT into a MISS (%s)",
          status_name(st));

    run_until(d, NULL, 200);
    check(d, strstr(heard_a->names, "n:db.coll ") != NULL &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_invalidations_received) == 1,
          "pub/sub delivered the other proxy's bump (heard: %s)", heard_a->names);
    check(d, strstr(heard_b->names, "n:db.coll") == NULL,
          "a proxy ignores its own published bump (heard: %s)", heard_b->names);
}

/* Junk under our prefix is a miss and a counter, never a crash. */
static void
phase_junk(struct drv *d, struct cache_redis *a)
{
    struct cache_key k3 = {3, 3};
    struct cache_key k4 = {4, 4};
    struct cache_redis_gen gens[2];
    uint64_t corrupt = cache_redis_counter(a, CACHE_REDIS_CTR_redis_corrupt);
    struct bump_res bump = {0};
    uint64_t errors;
    uint64_t commands;
    uint64_t slow;
    char hex[33];
    redisReply *r;
    struct res res;
    int st;

    key_hex(&k3, hex);
    r = sync_cmd(d->port, "SET t:v:%s %s", hex, "MCV1-this-is-junk");
    check(d, r && r->type == REDIS_REPLY_STATUS, "junk written with SET under the prefix");
    if (r)
        freeReplyObject(r);
    gens_init(gens);
    st = lookup(d, a, &k3, gens, &res);
    check(d, st == CACHE_REDIS_MISS &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_corrupt) == corrupt + 1,
          "junk is a MISS and counted as corrupt (%s)", status_name(st));
    key_hex(&k4, hex);
    r = sync_cmd(d->port, "RPUSH t:v:%s x", hex);
    if (r)
        freeReplyObject(r);
    gens_init(gens);
    st = lookup(d, a, &k4, gens, &res);
    /* MGET reads a key of another type as nil: a plain miss, not counted as corrupt. */
    check(d, st == CACHE_REDIS_MISS &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_corrupt) == corrupt + 1,
          "a value key of another type is a MISS (%s)", status_name(st));
    check(d, fill(d, a, &k4, gens, res.epoch, 4) &&
                 lookup(d, a, &k4, gens, &res) == CACHE_REDIS_HIT,
          "a fill replaces the junk");

    /* Scripts flushed (a failover, SCRIPT FLUSH): NOSCRIPT, then the same op as EVAL. */
    r = sync_cmd(d->port, "SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    errors = cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors);
    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    slow = cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads);
    gens_init(gens);
    st = lookup(d, a, &k4, gens, &res);
    check(d,
          st == CACHE_REDIS_HIT && cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors) == errors &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads) == slow,
          "a hit is one command (MGET: no script, so SCRIPT FLUSH does not matter) (%s)",
          status_name(st));
    gens_init(gens);
    if (!cache_redis_bump(a, gens, 1, bump_cb, &bump) || !run_until(d, &bump.done, 2000))
        bump.ok = false;
    check(d,
          bump.ok && cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors) == errors &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 3,
          "after SCRIPT FLUSH a bump gets NOSCRIPT and is resent as EVAL");

    /*
     * A missing counter: the MGET cannot give a snapshot; the lookup script
     * re-makes it. Scripts are still flushed: MGET, EVALSHA (NOSCRIPT), EVAL.
     */
    r = sync_cmd(d->port, "DEL t:g:d:db");
    if (r)
        freeReplyObject(r);
    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    gens_init(gens);
    st = lookup(d, a, &k4, gens, &res);
    r = sync_cmd(d->port, "GET t:g:d:db");
    check(d,
          st == CACHE_REDIS_MISS && gens[1].value != 0 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads) == slow + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 3 && r &&
              r->type == REDIS_REPLY_STRING && strtoull(r->str, NULL, 10) == gens[1].value,
          "a missing counter: MGET, then the script re-creates it; a MISS with it (%s, %llu "
          "slow reads, %llu commands)",
          status_name(st),
          (unsigned long long)(cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads) - slow),
          (unsigned long long)(cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) -
                               commands));
    if (r)
        freeReplyObject(r);
    check(d, fill(d, a, &k4, gens, res.epoch, 4) &&
                 lookup(d, a, &k4, gens, &res) == CACHE_REDIS_HIT &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads) == slow + 1 &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 6,
          "then a fill (EVALSHA, EVAL) and a hit of one MGET again");
}

/* Drops a reply of sync_cmd. */
static void
reply_drop(redisReply *r)
{
    if (r)
        freeReplyObject(r);
}

/*
 * Counters Redis holds in a shape INCR never leaves: "007" (read as 7, the
 * fill script's string comparison refused every fill), or a key of another
 * type (the scripts raised: an error reply, a failed bump, the tier dirty).
 * Each is a miss for the entries that read it, counted as corrupt, neither
 * an error nor a failed bump; the next bump re-makes the counter and the
 * entry is filled and hit again.
 */
static void
phase_bad_counters(struct drv *d, struct cache_redis *a)
{
    static const char *const what[] = {"a counter stored as \"007\"",
                                       "a counter of another type (a list)"};
    struct cache_key k20 = {20, 20};
    struct cache_redis_gen gens[2];
    struct bump_res bump;
    struct res res;
    int st;

    for (int i = 0; i < 2; i++) {
        uint64_t corrupt = cache_redis_counter(a, CACHE_REDIS_CTR_redis_corrupt);
        uint64_t errors = cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors);
        uint64_t failed = cache_redis_counter(a, CACHE_REDIS_CTR_redis_bumps_failed);
        uint64_t refused = cache_redis_counter(a, CACHE_REDIS_CTR_redis_fills_refused);

        if (i == 0) {
            reply_drop(sync_cmd(d->port, "SET t:g:n:db.coll 007"));
        } else {
            reply_drop(sync_cmd(d->port, "DEL t:g:n:db.coll"));
            reply_drop(sync_cmd(d->port, "RPUSH t:g:n:db.coll x"));
        }
        gens_init(gens);
        st = lookup(d, a, &k20, gens, &res);
        check(d, st == CACHE_REDIS_FAILED &&
                     cache_redis_counter(a, CACHE_REDIS_CTR_redis_corrupt) == corrupt + 1 &&
                     cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors) == errors,
              "%s: a miss for the entry, counted as corrupt, not an error (%s)", what[i],
              status_name(st));
        bump = (struct bump_res){0};
        gens_init(gens);
        if (!cache_redis_bump(a, gens, 1, bump_cb, &bump) || !run_until(d, &bump.done, 2000))
            bump.ok = false;
        check(d, bump.ok && cache_redis_counter(a, CACHE_REDIS_CTR_redis_bumps_failed) == failed &&
                     cache_redis_state(a) == CACHE_REDIS_CONNECTED,
              "%s: a bump re-makes it, not a failure, the tier not dirty", what[i]);
        gens_init(gens);
        st = lookup(d, a, &k20, gens, &res);
        check(d, st == CACHE_REDIS_MISS && fill(d, a, &k20, gens, res.epoch, 20) &&
                     cache_redis_counter(a, CACHE_REDIS_CTR_redis_fills_refused) == refused &&
                     lookup(d, a, &k20, gens, &res) == CACHE_REDIS_HIT,
              "%s: after the bump, a miss, a fill and a hit (%s)", what[i], status_name(st));
    }
}

/* A counter's value in Redis (GET t:g:NAME), or 0. */
static uint64_t
counter_of(struct drv *d, const char *name)
{
    redisReply *r = sync_cmd(d->port, "GET t:g:%s", name);
    uint64_t v = r && r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;

    reply_drop(r);
    return v;
}

/*
 * Starts a lookup of key (NULL: a check of the generations only) over the
 * generations first and second, into res (cleared); the op, or NULL.
 */
static struct cache_redis_op *
start_read(struct cache_redis *redis, const struct cache_key *key, struct cache_redis_gen gens[2],
           const char *first, const char *second, struct res *res)
{
    gens[0] = (struct cache_redis_gen){first, strlen(first), 0};
    gens[1] = (struct cache_redis_gen){second, strlen(second), 0};
    memset(res, 0, sizeof *res);
    return key ? cache_redis_lookup(redis, key, gens, 2, lookup_cb, res)
               : cache_redis_check(redis, gens, 2, lookup_cb, res);
}

/*
 * The read batch: lookups started in one loop turn go out as one MGET
 * naming each counter once; each gets its own outcome and its own
 * generations, in its own order, whatever the others asked for.
 */
static void
phase_batch(struct drv *d, struct cache_redis *a)
{
    struct cache_key k30 = {30, 30}, k31 = {31, 31}, k32 = {32, 32}, k33 = {33, 33};
    struct cache_redis_gen g30[2], g31[2], g32[2], g33[2], g34[2], gc[2], fresh[2];
    struct res r30, r31, r32, r33, r34, rc;
    struct cache_redis_op *cancelled;
    uint64_t commands, slow, errors;
    bool all;

    /* k30 and k31 under db.coll, k32 under db.other; k33 never stored. */
    gens_init(fresh);
    check(d, lookup(d, a, &k30, fresh, &r30) == CACHE_REDIS_MISS &&
                 fill(d, a, &k30, fresh, r30.epoch, 30) && fill(d, a, &k31, fresh, r30.epoch, 31),
          "batch: k30 and k31 stored under n:db.coll and d:db");
    fresh[0] = (struct cache_redis_gen){"n:db.other", 10, 0};
    fresh[1] = (struct cache_redis_gen){"d:db", 4, 0};
    check(d, lookup(d, a, &k32, fresh, &r32) == CACHE_REDIS_MISS &&
                 fill(d, a, &k32, fresh, r32.epoch, 32),
          "batch: k32 stored under n:db.other and d:db");

    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    all = start_read(a, &k30, g30, "n:db.coll", "d:db", &r30) &&
          start_read(a, &k31, g31, "d:db", "n:db.coll", &r31) && /* the other order */
          start_read(a, &k32, g32, "n:db.other", "d:db", &r32) &&
          start_read(a, &k33, g33, "n:db.coll", "d:db", &r33) &&
          (cancelled = start_read(a, &k30, g34, "n:db.coll", "d:db", &r34)) &&
          start_read(a, NULL, gc, "n:db.coll", "d:db", &rc);
    if (all)
        cache_redis_cancel(cancelled);
    all = all && run_until(d, &r30.done, 3000) && run_until(d, &r31.done, 3000) &&
          run_until(d, &r32.done, 3000) && run_until(d, &r33.done, 3000) &&
          run_until(d, &rc.done, 3000);
    run_until(d, NULL, 20);
    check(d,
          all && cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 1 &&
              !r34.done,
          "batch: six reads of one turn (one cancelled) are one command, the cancelled one "
          "never called back (%llu)",
          (unsigned long long)(cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) -
                               commands));
    check(d,
          r30.status == CACHE_REDIS_HIT && is_tagged_reply(&r30, 30) &&
              r31.status == CACHE_REDIS_HIT && is_tagged_reply(&r31, 31) &&
              r32.status == CACHE_REDIS_HIT && is_tagged_reply(&r32, 32) &&
              r33.status == CACHE_REDIS_MISS && rc.status == CACHE_REDIS_MISS,
          "batch: each read its own outcome: three hits of their own values (one naming its "
          "generations in another order, one of another namespace), a miss, a check (%s %s %s "
          "%s %s)",
          status_name(r30.status), status_name(r31.status), status_name(r32.status),
          status_name(r33.status), status_name(rc.status));
    check(d,
          g30[0].value == counter_of(d, "n:db.coll") && g30[1].value == counter_of(d, "d:db") &&
              g31[0].value == g30[1].value && g31[1].value == g30[0].value &&
              g32[0].value == counter_of(d, "n:db.other") && g32[1].value == g30[1].value &&
              g33[0].value == g30[0].value && gc[0].value == g30[0].value &&
              gc[1].value == g30[1].value && g30[0].value != 0 && g32[0].value != 0 &&
              r30.epoch == rc.epoch && r32.epoch == rc.epoch,
          "batch: each read's generations are its own names' counters, in its own order");

    /* A counter missing for one read of the batch: that read alone takes the slow path. */
    reply_drop(sync_cmd(d->port, "DEL t:g:n:db.other"));
    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    slow = cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads);
    all = start_read(a, &k32, g32, "n:db.other", "d:db", &r32) &&
          start_read(a, &k30, g30, "n:db.coll", "d:db", &r30) &&
          run_until(d, &r30.done, 3000) && run_until(d, &r32.done, 3000);
    check(d,
          all && r30.status == CACHE_REDIS_HIT && r32.status == CACHE_REDIS_MISS &&
              g32[0].value != 0 && g32[0].value == counter_of(d, "n:db.other") &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_slow_reads) == slow + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 2,
          "batch: a counter missing for one read: it alone runs the lookup script (a miss, the "
          "counter re-made); the other is a hit (%s %s)",
          status_name(r30.status), status_name(r32.status));

    /* An error answering the batch (MGET denied by an ACL) is each read's error. */
    reply_drop(sync_cmd(d->port, "ACL SETUSER default -mget"));
    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    errors = cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors);
    all = start_read(a, &k30, g30, "n:db.coll", "d:db", &r30) &&
          start_read(a, &k31, g31, "n:db.coll", "d:db", &r31) &&
          start_read(a, &k33, g33, "n:db.coll", "d:db", &r33) &&
          run_until(d, &r30.done, 3000) && run_until(d, &r31.done, 3000) &&
          run_until(d, &r33.done, 3000);
    reply_drop(sync_cmd(d->port, "ACL SETUSER default +mget"));
    check(d,
          all && r30.status == CACHE_REDIS_FAILED && r31.status == CACHE_REDIS_FAILED &&
              r33.status == CACHE_REDIS_FAILED &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_errors) == errors + 3 &&
              cache_redis_state(a) == CACHE_REDIS_CONNECTED,
          "batch: an error reply (MGET denied) fails each of its three reads, counted for each; "
          "an answer, so the breaker stays closed (%s %s %s)",
          status_name(r30.status), status_name(r31.status), status_name(r33.status));
    gens_init(g30);
    check(d, lookup(d, a, &k30, g30, &r30) == CACHE_REDIS_HIT,
          "batch: MGET allowed again, a hit again");
}

/* Fills key with material_len bytes of key material (large values) and waits for Redis. */
static bool
fill_large(struct drv *d, struct cache_redis *redis, const struct cache_key *key,
           const struct cache_redis_gen *gens, uint64_t epoch, int tag, size_t material_len)
{
    uint8_t reply[256];
    size_t len = make_reply(reply, sizeof reply, tag);
    uint8_t *big = bson_malloc(material_len);
    uint64_t before = cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills);
    uint64_t end = (uint64_t)conf_clock_ms() + 20000;
    bool stored = false;

    memset(big, 'm' + tag % 8, material_len);
    cache_redis_fill(redis, key, big, material_len, reply, len, gens, 2, epoch, 60000);
    bson_free(big);
    while (!stored && (uint64_t)conf_clock_ms() < end) {
        stored = cache_redis_counter(redis, CACHE_REDIS_CTR_redis_fills) > before;
        run_until(d, NULL, 5);
    }
    return stored;
}

enum { SPILL_BIG = 4, SPILL_MATERIAL = 25000000 };

/*
 * Starts a read of each of SPILL_BIG + 1 keys in one turn (the last one
 * k30, a small value) and waits: true when each is a hit of its own value
 * (tags 50, 51, ... and 30) at epoch.
 */
static bool
spill_round(struct drv *d, struct cache_redis *a, const struct cache_key *keys,
            struct cache_redis_gen (*gens)[2], struct res *res, uint64_t epoch)
{
    bool all = true;

    for (int i = 0; i <= SPILL_BIG && all; i++)
        all = start_read(a, &keys[i], gens[i], "n:db.coll", "d:db", &res[i]) != NULL;
    for (int i = 0; i <= SPILL_BIG && all; i++)
        all = run_until(d, &res[i].done, 30000);
    for (int i = 0; i <= SPILL_BIG && all; i++)
        all = res[i].status == CACHE_REDIS_HIT &&
              is_tagged_reply(&res[i], i < SPILL_BIG ? 50 + i : 30) && res[i].epoch == epoch;
    return all;
}

/*
 * A read batch whose values do not fit one reply together (about 92 MiB):
 * the reader keeps those that fit, lets the others go by (spills) and each
 * of those goes out again alone; no connection is lost, no epoch moves.
 */
static void
phase_spill(struct drv *d, struct cache_redis *a)
{
    struct cache_key keys[SPILL_BIG + 1] = {{50, 50}, {51, 51}, {52, 52}, {53, 53}, {30, 30}};
    struct cache_redis_gen gens[SPILL_BIG + 1][2], fresh[2];
    struct res res[SPILL_BIG + 1], first;
    char url[64];
    struct conf *patient, *usual;
    uint64_t commands, reconnects, spills;
    bool all = true;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", d->port);
    patient = make_conf(url, "t:");
    usual = make_conf(url, "t:");
    if (!patient || !usual) {
        for (int i = 0; i < 3; i++)
            check(d, false, "confs for the spill");
        conf_destroy(patient);
        conf_destroy(usual);
        return;
    }
    patient->redis_timeout = 30000; /* a hundred megabytes each way, under ASan */
    cache_redis_reconfigure(a, patient);
    gens_init(fresh);
    all = lookup(d, a, &keys[0], fresh, &first) == CACHE_REDIS_MISS;
    for (int i = 0; i < SPILL_BIG && all; i++)
        all = fill_large(d, a, &keys[i], fresh, first.epoch, 50 + i, SPILL_MATERIAL);
    check(d, all, "spill: four values of 25 MB stored (k30's small one from the batch phase)");

    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    reconnects = cache_redis_counter(a, CACHE_REDIS_CTR_redis_reconnects);
    spills = cache_redis_counter(a, CACHE_REDIS_CTR_redis_spills);
    all = all && spill_round(d, a, keys, gens, res, first.epoch);
    printf("# spill: %llu commands for five reads\n",
           (unsigned long long)(cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) -
                                commands));
    check(d, all,
          "spill: five reads of one turn, 100 MB of values among them: each a hit of its own "
          "value, the epoch unchanged");
    check(d,
          all && cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 2 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_spills) == spills + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_reconnects) == reconnects &&
              cache_redis_state(a) == CACHE_REDIS_CONNECTED,
          "spill: the fourth large value did not fit the batch's reply and was read again "
          "alone (two commands, one spill counted); the small one after it was kept; no "
          "connection lost");

    /* The next turn's batch is sized by the large values seen: one of them fills it. */
    commands = cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands);
    all = all && spill_round(d, a, keys, gens, res, first.epoch);
    check(d,
          all && cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) == commands + 5 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_spills) == spills + 1 &&
              cache_redis_counter(a, CACHE_REDIS_CTR_redis_reconnects) == reconnects,
          "spill: the next turn's batch is sized by the values seen (one of 25 MB fills it), "
          "the other four reads go alone: five hits, nothing read twice (%llu commands)",
          (unsigned long long)(cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) -
                               commands));
    for (int i = 0; i < SPILL_BIG; i++) {
        char hex[33];

        key_hex(&keys[i], hex);
        reply_drop(sync_cmd(d->port, "DEL t:v:%s", hex));
    }
    cache_redis_reconfigure(a, usual);
    conf_destroy(patient);
    conf_destroy(usual);
}

/* Reads the value stored for key (GET, binary); *len its length. bson_free, or NULL. */
static uint8_t *
get_value(struct drv *d, const struct cache_key *key, size_t *len)
{
    char hex[33];
    redisReply *r;
    uint8_t *out = NULL;

    key_hex(key, hex);
    r = sync_cmd(d->port, "GET t:v:%s", hex);
    if (r && r->type == REDIS_REPLY_STRING) {
        out = bson_malloc(r->len);
        memcpy(out, r->str, r->len);
        *len = r->len;
    }
    if (r)
        freeReplyObject(r);
    return out;
}

/* Stores data under key's value key (SET, binary, one minute). */
static bool
set_value(struct drv *d, const struct cache_key *key, const uint8_t *data, size_t len)
{
    char hex[33];
    redisReply *r;
    bool ok;

    key_hex(key, hex);
    r = sync_cmd(d->port, "SET t:v:%s %b PX 60000", hex, data, len);
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Offset of the reply's "v" int32 inside a value built around make_reply (the last 5 bytes). */
static size_t
tag_offset(size_t value_len)
{
    return value_len - CACHE_REDIS_MAC_LEN - 1 - 4;
}

/*
 * Values are authentic (issue 6 item 5): a value moved to another key, a
 * bit flipped in a stored value, a well-formed forgery (a forged error
 * reply with the right generations and epoch, sealed with another secret),
 * and a proxy with another cache_key_secret: each a MISS, counted in
 * redis_values_refused_mac, never served. A tier without a secret is refused.
 */
static void
phase_mac(struct drv *d, struct cache_redis *a)
{
    struct cache_key k10 = {10, 10};
    struct cache_key k11 = {11, 11};
    struct cache_key k12 = {12, 12};
    struct cache_redis_gen gens[2];
    uint64_t refused = cache_redis_counter(a, CACHE_REDIS_CTR_redis_values_refused_mac);
    uint64_t hits;
    uint8_t *value;
    size_t len = 0;
    struct res res;
    bson_error_t error;
    int st;

    gens_init(gens);
    lookup(d, a, &k10, gens, &res);
    fill(d, a, &k10, gens, res.epoch, 10);
    gens_init(gens);
    st = lookup(d, a, &k10, gens, &res);
    value = get_value(d, &k10, &len);
    check(d, st == CACHE_REDIS_HIT && is_tagged_reply(&res, 10) && value && len > 4 &&
                 memcmp(value, "MCV4", 4) == 0,
          "k10 filled: an MCV4 value, a HIT (%s)", status_name(st));
    check(d, res.ttl_left_ms > 55000 && res.ttl_left_ms <= 60000,
          "k10's hit: what is left of its sealed 60 s lifetime (%lld ms)",
          (long long)res.ttl_left_ms);

    /* a genuine value copied under another key */
    check(d, value && set_value(d, &k11, value, len), "k10's value copied to k11's key");
    gens_init(gens);
    st = lookup(d, a, &k11, gens, &res);
    check(d, st == CACHE_REDIS_MISS &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_values_refused_mac) == refused + 1,
          "a value moved to another key is a MISS, refused by its MAC (%s)", status_name(st));

    /* one bit of the reply flipped: the answer would still be well formed */
    if (value) {
        value[tag_offset(len)] ^= 0x01;
        set_value(d, &k10, value, len);
    }
    hits = cache_redis_counter(a, CACHE_REDIS_CTR_redis_hits);
    gens_init(gens);
    st = lookup(d, a, &k10, gens, &res);
    check(d, st == CACHE_REDIS_MISS && cache_redis_counter(a, CACHE_REDIS_CTR_redis_hits) == hits &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_values_refused_mac) == refused + 2,
          "a bit flipped in a stored reply is a MISS, refused by its MAC (%s)", status_name(st));
    bson_free(value);

    /* a forgery: right generations, epoch, material; a forged error reply; another secret */
    {
        struct cache_redis_mac *other = cache_redis_mac_new("not the secret", 14, &error);
        bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(0), "errmsg", BCON_UTF8("forged"));
        struct wire_header h = {(int32_t)(WIRE_HEADER_LEN + 5 + doc->len), 1, 2, WIRE_OP_MSG};
        uint8_t reply[256] = {0};
        struct cache_redis_blob blob = {0};
        char rkey[64];
        char hex[33];
        uint8_t *forged;
        size_t flen = 0;

        wire_frame_put_header(reply, &h);
        memcpy(reply + WIRE_HEADER_LEN + 5, bson_get_data(doc), doc->len);
        gens_init(gens);
        lookup(d, a, &k12, gens, &res);
        blob.epoch = res.epoch;
        blob.n_gens = 2;
        blob.gens[0] = gens[0];
        blob.gens[1] = gens[1];
        blob.material = (const uint8_t *)material;
        blob.material_len = sizeof material;
        blob.reply = reply;
        blob.reply_len = (size_t)h.length;
        key_hex(&k12, hex);
        snprintf(rkey, sizeof rkey, "t:v:%s", hex);
        forged = other ? cache_redis_blob_encode(&blob, other, rkey, strlen(rkey), &flen) : NULL;
        check(d, forged && set_value(d, &k12, forged, flen),
              "a forged value planted under k12 (right generations, epoch and material)");
        gens_init(gens);
        st = lookup(d, a, &k12, gens, &res);
        check(d, st == CACHE_REDIS_MISS &&
                     cache_redis_counter(a, CACHE_REDIS_CTR_redis_values_refused_mac) ==
                         refused + 3,
              "a well-formed forged error reply is a MISS, refused by its MAC (%s)",
              status_name(st));
        bson_free(forged);
        bson_destroy(doc);
        cache_redis_mac_destroy(other);
    }

    /* a proxy with another secret cannot read (nor be fooled by) our values */
    {
        char url[128];
        struct conf *conf;
        struct cache_redis *c;

        snprintf(url, sizeof url, "redis://127.0.0.1:%d", d->port);
        conf = make_conf_secret(url, "t:", "a different secret");
        c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
        gens_init(gens);
        lookup(d, a, &k10, gens, &res);
        fill(d, a, &k10, gens, res.epoch, 13);
        st = c && wait_state(d, c, CACHE_REDIS_CONNECTED, 3000) ? lookup(d, c, &k10, gens, &res)
                                                                : -3;
        check(d, st == CACHE_REDIS_MISS &&
                     cache_redis_counter(c, CACHE_REDIS_CTR_redis_values_refused_mac) == 1,
              "a proxy with another cache_key_secret refuses the values (%s)", status_name(st));
        cache_redis_destroy(c);
        conf_destroy(conf);

        conf = make_conf_secret(url, "t:", "x");
        if (conf) {
            bson_free(conf->cache_key_secret);
            conf->cache_key_secret = bson_strdup("");
        }
        c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
        check(d, !c && strstr(error.message, "cache_key_secret"),
              "a tier without cache_key_secret is refused: %s", c ? "(created)" : error.message);
        cache_redis_destroy(c);
        conf_destroy(conf);
    }
}

/* A host name is resolved on the loop (evdns): localhost connects, a bad name fails alone. */
static void
phase_names(struct drv *d)
{
    char url[128];
    struct conf *conf;
    struct cache_redis *c;
    bson_error_t error;
    uint64_t t0;
    uint64_t took;

    snprintf(url, sizeof url, "redis://localhost:%d", d->port);
    conf = make_conf(url, "t:");
    c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    check(d, c && wait_state(d, c, CACHE_REDIS_CONNECTED, 3000) && cache_redis_usable(c),
          "redis://localhost:PORT is resolved and connects");
    cache_redis_destroy(c);
    conf_destroy(conf);

    conf = make_conf("redis://no-such-host.invalid:6379", "t:");
    t0 = (uint64_t)conf_clock_ms();
    c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    took = (uint64_t)conf_clock_ms() - t0;
    run_until(d, NULL, 300);
    check(d, c && took < 100 && cache_redis_state(c) == CACHE_REDIS_DISCONNECTED,
          "an unresolvable host name does not block (%llu ms) and leaves the tier disconnected",
          (unsigned long long)took);
    cache_redis_destroy(c);
    conf_destroy(conf);
}

/* kill -9: fail fast, one breaker failure, dirty; restart from the RDB: epoch bump, no stale. */
static void
phase_kill(struct drv *d, struct cache_redis *a, struct cache_redis *b, struct cache_key *k5)
{
    struct res res[FAILURES];
    struct cache_redis_gen gens[FAILURES][2];
    uint64_t trips = cache_redis_counter(a, CACHE_REDIS_CTR_redis_breaker_trips);
    uint64_t skipped;
    uint64_t timeouts;
    uint64_t epochs = cache_redis_counter(a, CACHE_REDIS_CTR_redis_epoch_bumps);
    uint64_t t0;
    uint64_t worst = 0;
    bool all_failed = true;
    bool all_done = true;
    char hex[33];
    redisReply *r;
    int st;

    gens_init(gens[0]);
    st = lookup(d, a, k5, gens[0], &res[0]);
    fill(d, a, k5, gens[0], res[0].epoch, 5);
    gens_init(gens[0]);
    st = lookup(d, a, k5, gens[0], &res[0]);
    r = sync_cmd(d->port, "SAVE");
    check(d, st == CACHE_REDIS_HIT && r && r->type == REDIS_REPLY_STATUS,
          "k5 stored and saved to the RDB before the outage (%s)", status_name(st));
    if (r)
        freeReplyObject(r);

    kill(d->redis_pid, SIGKILL);
    wait_dead(d->redis_pid);
    t0 = (uint64_t)conf_clock_ms();
    for (int i = 0; i < FAILURES; i++) {
        gens_init(gens[i]);
        memset(&res[i], 0, sizeof res[i]);
        if (!cache_redis_lookup(a, k5, gens[i], 2, lookup_cb, &res[i])) {
            res[i].done = true;
            res[i].at_ms = t0;
            all_failed = false;
        }
    }
    for (int i = 0; i < FAILURES; i++) {
        all_done = run_until(d, &res[i].done, 2000) && all_done;
        all_failed = all_failed && res[i].status == CACHE_REDIS_FAILED;
        if (res[i].at_ms - t0 > worst)
            worst = res[i].at_ms - t0;
    }
    printf("# after kill -9: %d lookups FAILED within %llu ms (redis_timeout %d ms)\n", FAILURES,
           (unsigned long long)worst, TIMEOUT_MS);
    check(d, all_done && all_failed && worst <= TIMEOUT_MS + SLACK_MS,
          "lookups in flight at kill -9 fail fast (%llu ms)", (unsigned long long)worst);
    /* They were in flight together, one pipelined batch: one breaker failure, not FAILURES. */
    check(d, cache_redis_counter(a, CACHE_REDIS_CTR_redis_breaker_trips) == trips,
          "%d lookups of one failed batch count as one failure: the breaker stays closed",
          FAILURES);
    skipped = cache_redis_counter(a, CACHE_REDIS_CTR_redis_skipped);
    timeouts = cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts);
    gens_init(gens[0]);
    check(d, !cache_redis_lookup(a, k5, gens[0], 2, lookup_cb, &res[0]) &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_skipped) == skipped + 1,
          "while down, lookups skip Redis at once (skipped counted)");
    gens_init(gens[0]);
    check(d, !cache_redis_bump(a, gens[0], 1, bump_cb, NULL) &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_bumps_failed) >= 1,
          "a bump while down is refused and counted");
    run_until(d, NULL, 300);
    check(d, cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts) == timeouts &&
                 cache_redis_state(a) == CACHE_REDIS_DISCONNECTED && !cache_redis_usable(a),
          "no timeouts while down; state disconnected, not usable");

    d->child = restart_redis(d);
    key_hex(k5, hex);
    r = sync_cmd(d->port, "EXISTS t:v:%s", hex);
    check(d, d->child > 0 && r && r->type == REDIS_REPLY_INTEGER && r->integer == 1,
          "redis restarted; k5 was resurrected from the RDB");
    if (r)
        freeReplyObject(r);
    check(d, wait_state(d, a, CACHE_REDIS_CONNECTED, 10000) &&
                 wait_state(d, b, CACHE_REDIS_CONNECTED, 10000),
          "both instances reconnect and become usable (state %d)", (int)cache_redis_state(a));
    check(d, cache_redis_counter(a, CACHE_REDIS_CTR_redis_epoch_bumps) == epochs + 1 &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_reconnects) >= 1,
          "after the outage the epoch was bumped once before Redis was trusted");
    gens_init(gens[0]);
    st = lookup(d, a, k5, gens[0], &res[0]);
    check(d, st == CACHE_REDIS_MISS, "the value stored before the outage is not served (%s)",
          status_name(st));
    check(d, fill(d, a, k5, gens[0], res[0].epoch, 6) &&
                 lookup(d, a, k5, gens[0], &res[0]) == CACHE_REDIS_HIT &&
                 is_tagged_reply(&res[0], 6),
          "fill and hit work again");
}

/* A lookup whose callback starts another at once (as a caller retrying would). */
struct chained {
    struct res res;
    struct cache_redis *redis;
    const struct cache_key *key;
    struct cache_redis_gen gens[2];
    struct res next;
    bool started;
};

static void
chained_cb(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
           const uint8_t *mat, size_t mat_len, uint64_t epoch, int64_t ttl_left_ms)
{
    struct chained *c = arg;

    lookup_cb(&c->res, status, reply, reply_len, mat, mat_len, epoch, ttl_left_ms);
    gens_init(c->gens);
    memset(&c->next, 0, sizeof c->next);
    c->started = cache_redis_lookup(c->redis, c->key, c->gens, 2, lookup_cb, &c->next) != NULL;
}

/*
 * With Redis stopped, on b (its breaker told to wait for 100 failures here):
 * ops in flight together are each abandoned at their own deadline (one
 * timer serves them all), also when the first one's callback sends another
 * op (due later than the second); after a reload shortens redis_timeout a
 * later op is abandoned before an earlier one.
 */
static void
phase_deadlines(struct drv *d, struct cache_redis *b, const struct cache_key *k5)
{
    struct cache_redis_gen gens[2][2];
    struct res res[2];
    struct chained ch = {.redis = b, .key = k5};
    struct conf *fast = make_conf("redis://127.0.0.1:1", "t:");
    struct conf *usual = make_conf("redis://127.0.0.1:1", "t:");
    uint64_t t[2];
    bool sent;

    if (!fast || !usual) {
        check(d, false, "confs for the deadlines");
        check(d, false, "confs for the deadlines");
        conf_destroy(fast);
        conf_destroy(usual);
        return;
    }
    fast->redis_breaker_failures = 100;
    cache_redis_reconfigure(b, fast);
    /* The second lookup must leave while the first is in flight: a machine
     * busy enough to stall the loop past the first's deadline spoils the
     * premise, and the pair is tried again (three times at most). */
    for (int attempt = 0; attempt < 3; attempt++) {
        memset(&ch.res, 0, sizeof ch.res);
        memset(&ch.next, 0, sizeof ch.next);
        ch.started = false;
        gens_init(gens[0]);
        t[0] = (uint64_t)conf_clock_ms();
        sent = cache_redis_lookup(b, k5, gens[0], 2, chained_cb, &ch) != NULL;
        run_until(d, NULL, TIMEOUT_MS / 5);
        gens_init(gens[1]);
        memset(&res[1], 0, sizeof res[1]);
        t[1] = (uint64_t)conf_clock_ms();
        sent = cache_redis_lookup(b, k5, gens[1], 2, lookup_cb, &res[1]) && sent;
        sent = sent && run_until(d, &ch.res.done, 2000) && run_until(d, &res[1].done, 2000) &&
               ch.started && run_until(d, &ch.next.done, 2000);
        if (!sent || t[1] - t[0] < TIMEOUT_MS / 2)
            break;
        printf("# the loop stalled %llu ms between the two lookups: tried again\n",
               (unsigned long long)(t[1] - t[0]));
    }
    printf("# two lookups %llu ms apart: abandoned after %llu and %llu ms; the one the first's "
           "callback sent %llu ms after the second\n",
           (unsigned long long)(t[1] - t[0]), (unsigned long long)(ch.res.at_ms - t[0]),
           (unsigned long long)(res[1].at_ms - t[1]),
           (unsigned long long)(ch.next.at_ms - res[1].at_ms));
    check(d, sent && ch.res.status == CACHE_REDIS_FAILED && res[1].status == CACHE_REDIS_FAILED &&
                 ch.next.status == CACHE_REDIS_FAILED && ch.res.at_ms - t[0] >= TIMEOUT_MS - 5 &&
                 res[1].at_ms - t[1] >= TIMEOUT_MS - 5 &&
                 res[1].at_ms - t[1] <= TIMEOUT_MS + SLACK_MS && res[1].at_ms < ch.next.at_ms,
          "lookups in flight together are each abandoned at their own deadline");

    for (int i = 0; i < 2 && sent; i++) {
        if (i == 1) {
            fast->redis_timeout = 5;
            cache_redis_reconfigure(b, fast);
        }
        gens_init(gens[i]);
        memset(&res[i], 0, sizeof res[i]);
        t[i] = (uint64_t)conf_clock_ms();
        sent = cache_redis_lookup(b, k5, gens[i], 2, lookup_cb, &res[i]) != NULL;
    }
    sent = sent && run_until(d, &res[1].done, 2000) && run_until(d, &res[0].done, 2000);
    printf("# timeout %d ms, then 5 ms: abandoned after %llu and %llu ms\n", TIMEOUT_MS,
           (unsigned long long)(res[0].at_ms - t[0]), (unsigned long long)(res[1].at_ms - t[1]));
    check(d, sent && res[1].status == CACHE_REDIS_FAILED && res[1].at_ms - t[1] < TIMEOUT_MS - 5 &&
                 res[0].at_ms - t[0] >= TIMEOUT_MS - 5,
          "after a reload shortens redis_timeout, a later lookup is abandoned first");
    cache_redis_reconfigure(b, usual);
    conf_destroy(fast);
    conf_destroy(usual);
}

/* SIGSTOP: each op abandoned at redis_timeout, breaker, late replies dropped; SIGCONT recovers. */
static void
phase_stop(struct drv *d, struct cache_redis *a, struct cache_redis *b,
           const struct cache_key *k5)
{
    struct cache_redis_gen gens[2];
    struct res res;
    uint64_t timeouts = cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts);
    uint64_t trips = cache_redis_counter(a, CACHE_REDIS_CTR_redis_breaker_trips);
    uint64_t hits;
    uint64_t misses;
    uint64_t stopped_at;
    uint64_t lo = UINT64_MAX;
    uint64_t hi = 0;
    bool all_failed = true;
    bool recovered = false;
    int st;

    kill(d->child, SIGSTOP);
    stopped_at = (uint64_t)conf_clock_ms();
    phase_deadlines(d, b, k5);
    for (int i = 0; i < FAILURES; i++) {
        uint64_t t0 = (uint64_t)conf_clock_ms();

        gens_init(gens);
        st = lookup(d, a, k5, gens, &res);
        all_failed = all_failed && st == CACHE_REDIS_FAILED;
        lo = res.at_ms - t0 < lo ? res.at_ms - t0 : lo;
        hi = res.at_ms - t0 > hi ? res.at_ms - t0 : hi;
    }
    printf("# SIGSTOP: %d lookups abandoned after %llu..%llu ms (redis_timeout %d ms)\n", FAILURES,
           (unsigned long long)lo, (unsigned long long)hi, TIMEOUT_MS);
    check(d, all_failed && lo >= TIMEOUT_MS - 5 && hi <= TIMEOUT_MS + SLACK_MS,
          "each lookup is abandoned at redis_timeout (%llu..%llu ms)", (unsigned long long)lo,
          (unsigned long long)hi);
    check(d, cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts) == timeouts + FAILURES &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_breaker_trips) == trips + 1 &&
                 cache_redis_state(a) == CACHE_REDIS_BREAKER_OPEN,
          "%d timeouts opened the breaker", FAILURES);
    timeouts = cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts);
    gens_init(gens);
    st = lookup(d, a, k5, gens, &res);
    check(d, st == -1 && cache_redis_counter(a, CACHE_REDIS_CTR_redis_timeouts) == timeouts,
          "with the breaker open a lookup skips Redis at once, no timeout (%s)", status_name(st));

    /* Past the cooldown one probe goes out, times out, and the breaker opens again. */
    run_until(d, NULL, COOLDOWN_MS + 50);
    gens_init(gens);
    st = lookup(d, a, k5, gens, &res);
    check(d, st == CACHE_REDIS_FAILED &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_breaker_trips) == trips + 2,
          "after the cooldown one probe is tried and fails (%s)", status_name(st));
    gens_init(gens);
    check(d, !cache_redis_bump(a, gens, 1, NULL, NULL) &&
                 cache_redis_state(a) == CACHE_REDIS_BREAKER_OPEN && !cache_redis_usable(a),
          "a bump with the breaker open is refused (and marks the tier dirty)");
    while ((uint64_t)conf_clock_ms() < stopped_at + 2000)
        run_until(d, NULL, 20);
    hits = cache_redis_counter(a, CACHE_REDIS_CTR_redis_hits);
    misses = cache_redis_counter(a, CACHE_REDIS_CTR_redis_misses);
    kill(d->child, SIGCONT);
    run_until(d, NULL, 300); /* the late replies arrive and must be dropped */
    check(d, cache_redis_counter(a, CACHE_REDIS_CTR_redis_hits) == hits &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_misses) == misses,
          "late replies after SIGCONT are discarded");
    for (uint64_t end = (uint64_t)conf_clock_ms() + 5000;
         (uint64_t)conf_clock_ms() < end && !recovered;) {
        gens_init(gens);
        st = lookup(d, a, k5, gens, &res);
        recovered = st == CACHE_REDIS_MISS || st == CACHE_REDIS_HIT;
        if (!recovered)
            run_until(d, NULL, 100);
    }
    check(d, recovered && cache_redis_state(a) == CACHE_REDIS_CONNECTED,
          "after SIGCONT the tier recovers (breaker closed, epoch bumped)");
    check(d, st == CACHE_REDIS_MISS, "the dirty period's epoch bump invalidated k5 (%s)",
          status_name(st));
}

/* A pending lookup is called back with FAILED by destroy; stats JSON; cancel. */
static void
phase_end(struct drv *d, struct cache_redis *a, struct cache_redis *b, const struct conf *conf)
{
    struct cache_key k6 = {6, 6};
    struct cache_redis_gen gens[2];
    struct cache_redis_gen gens2[2];
    struct res res;
    struct res res2;
    struct cache_redis_op *op;

    cache_redis_reconfigure(a, conf);
    check(d, strcmp(cache_redis_state_name(cache_redis_state(a)), "connected") == 0 &&
                 cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands) > 0 &&
                 cache_redis_latency(a)->count > 0 &&
                 cache_redis_latency(a)->count <=
                     cache_redis_counter(a, CACHE_REDIS_CTR_redis_commands),
          "stats: state, counters and round trips (at most one per command)");

    gens_init(gens2);
    memset(&res2, 0, sizeof res2);
    op = cache_redis_lookup(a, &k6, gens2, 2, lookup_cb, &res2);
    cache_redis_cancel(op);
    gens_init(gens);
    memset(&res, 0, sizeof res);
    op = cache_redis_lookup(a, &k6, gens, 2, lookup_cb, &res);
    check(d, op != NULL && !res.done, "a lookup is pending");
    cache_redis_destroy(a);
    check(d, res.done && res.status == CACHE_REDIS_FAILED && !res2.done,
          "destroy calls the pending lookup back with FAILED, not the cancelled one");
    cache_redis_destroy(b);
    run_until(d, NULL, 50);
}

/* AUTH (password, ACL user), SELECT; a wrong password stays disconnected. */
static void
phase_auth(struct drv *d)
{
    char url[256];
    struct conf *conf;
    struct cache_redis *c;
    struct cache_redis *w;
    struct cache_key k7 = {7, 7};
    struct cache_redis_gen gens[2];
    bson_error_t error;
    struct res res;
    redisReply *r;
    char hex[33];

    r = sync_cmd(d->port, "ACL SETUSER mcuser on >acl-pw-5150 ~t:* &* +@all");
    if (r)
        freeReplyObject(r);
    r = sync_cmd(d->port, "CONFIG SET requirepass s3cret-pw-42");
    check(d, r && r->type == REDIS_REPLY_STATUS, "Redis now requires a password");
    if (r)
        freeReplyObject(r);

    snprintf(url, sizeof url, "redis://:s3cret-pw-42@127.0.0.1:%d/1", d->port);
    conf = make_conf(url, "t:");
    c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    check(d, c && wait_state(d, c, CACHE_REDIS_CONNECTED, 3000),
          "AUTH with the URL's password, then SELECT 1");
    if (c) {
        gens_init(gens);
        lookup(d, c, &k7, gens, &res);
        fill(d, c, &k7, gens, res.epoch, 7);
    }
    key_hex(&k7, hex);
    {
        redisContext *s = sync_connect(d->port);
        redisReply *a1 = s ? redisCommand(s, "AUTH s3cret-pw-42") : NULL;
        redisReply *a2 = s ? redisCommand(s, "SELECT 1") : NULL;
        redisReply *a3 = s ? redisCommand(s, "EXISTS t:v:%s", hex) : NULL;

        check(d, a3 && a3->type == REDIS_REPLY_INTEGER && a3->integer == 1,
              "the value landed in database 1");
        if (a1)
            freeReplyObject(a1);
        if (a2)
            freeReplyObject(a2);
        if (a3)
            freeReplyObject(a3);
        if (s)
            redisFree(s);
    }
    cache_redis_destroy(c);
    conf_destroy(conf);

    snprintf(url, sizeof url, "redis://mcuser:acl-pw-5150@127.0.0.1:%d", d->port);
    conf = make_conf(url, "t:");
    c = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    check(d, c && wait_state(d, c, CACHE_REDIS_CONNECTED, 3000), "AUTH with an ACL user");
    cache_redis_destroy(c);
    conf_destroy(conf);

    snprintf(url, sizeof url, "redis://:wrong-pw-777@127.0.0.1:%d", d->port);
    conf = make_conf(url, "t:");
    w = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    run_until(d, NULL, 700);
    check(d, w && cache_redis_state(w) == CACHE_REDIS_DISCONNECTED && !cache_redis_subscribed(w),
          "a wrong password leaves the tier disconnected (retrying with backoff)");
    cache_redis_destroy(w);
    conf_destroy(conf);

    snprintf(url, sizeof url, "redis://:pw-in-bad-url-99@127.0.0.1:0");
    conf = make_conf("redis://127.0.0.1:1", "t:");
    if (conf) {
        bson_free(conf->redis);
        conf->redis = bson_strdup(url);
    }
    w = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    check(d, !w && strstr(error.message, "pw-in-bad-url-99") == NULL &&
                 strstr(error.message, "<redacted>") != NULL,
          "a malformed URL is refused with the password redacted: %s", error.message);
    conf_destroy(conf);

    /* Destroyed before the loop ever ran: connections half-open, nothing sent yet. */
    snprintf(url, sizeof url, "redis://:s3cret-pw-42@127.0.0.1:%d", d->port);
    conf = make_conf(url, "t:");
    w = conf ? cache_redis_new(d->base, conf, &error) : NULL;
    cache_redis_destroy(w);
    run_until(d, NULL, 50);
    check(d, w != NULL, "an instance destroyed before it connected goes away cleanly");
    conf_destroy(conf);
}

int
main(int argc, char **argv)
{
    struct drv d = {0};
    struct conf *conf;
    struct cache_redis *a;
    struct cache_redis *b;
    struct heard heard_a = {{0}, 0};
    struct heard heard_b = {{0}, 0};
    struct cache_key k5 = {5, 5};
    bson_error_t error;
    char url[128];
    redisReply *r;

    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT REDIS_PID PIDFILE\n", argv[0]);
        return 2;
    }
    d.port = atoi(argv[1]);
    d.redis_pid = (pid_t)atoi(argv[2]);
    d.pidfile = argv[3];
    signal(SIGPIPE, SIG_IGN);
    conf_log_set_level(CONF_LOG_DEBUG);
    printf("PLAN %d\n", N_CHECKS);
    r = sync_cmd(d.port, "CONFIG GET dir");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(d.dir, sizeof d.dir, "%s", r->element[1]->str);
    if (r)
        freeReplyObject(r);
    d.base = event_base_new();
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", d.port);
    conf = make_conf(url, "t:");
    a = conf ? cache_redis_new(d.base, conf, &error) : NULL;
    b = conf ? cache_redis_new(d.base, conf, &error) : NULL;
    if (!a || !b || !d.dir[0]) {
        printf("# setup failed: %s\n", a && b ? "no redis dir" : error.message);
        return 1;
    }
    cache_redis_on_invalidation(a, heard_cb, &heard_a);
    cache_redis_on_invalidation(b, heard_cb, &heard_b);
    check(&d, wait_state(&d, a, CACHE_REDIS_CONNECTED, 3000) &&
                  wait_state(&d, b, CACHE_REDIS_CONNECTED, 3000) && cache_redis_usable(a),
          "both instances connect and are usable");
    for (int i = 0; i < 100 && !(cache_redis_subscribed(a) && cache_redis_subscribed(b)); i++)
        run_until(&d, NULL, 10);
    check(&d, cache_redis_subscribed(a) && cache_redis_subscribed(b) &&
                  strcmp(heard_a.names, "* ") == 0,
          "both subscribed; a (re)subscription announces \"*\" (heard: %s)", heard_a.names);
    heard_a.names[0] = heard_b.names[0] = '\0';

    phase_shared(&d, a, b, &heard_a, &heard_b);
    phase_junk(&d, a);
    phase_bad_counters(&d, a);
    phase_batch(&d, a);
    phase_spill(&d, a);
    phase_mac(&d, a);
    phase_names(&d);
    phase_kill(&d, a, b, &k5);
    phase_stop(&d, a, b, &k5);
    phase_end(&d, a, b, conf);
    phase_auth(&d);
    conf_destroy(conf);
    event_base_free(d.base);
    if (d.child > 0) {
        kill(d.child, SIGCONT);
        kill(d.child, SIGTERM);
        waitpid(d.child, NULL, 0);
    }
    printf("# %d checks\n", d.checks);
    return d.checks == N_CHECKS ? 0 : 1;
}
