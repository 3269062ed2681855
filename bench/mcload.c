/*
 * bench/mcload.c: the benchmark's load generator (see bench/README.md); its
 * canned-reply MongoDB server (--server) is
 * bench/mcload_server.c, what both share bench/mcload_common.c.
 *
 * Client (default): N connections to a MongoDB endpoint, each shakes hands
 * (hello over OP_MSG), then sends find {_id: k} over K keys. Every distinct
 * request (connection x key: each connection has its own lsid) is encoded
 * once, up front; per send only the requestID is patched. Each reply must
 * answer the request in flight (responseTo), be an OP_MSG and carry ok: 1.
 *   closed loop: one request in flight per connection, next sent at once;
 *   open loop:   requests scheduled at a fixed total rate; latency counts
 *                from the scheduled time (a queue at the generator is the
 *                system's latency too, so p99 is honest).
 * A warm-up (every connection sends its share, so every key is read once)
 * is excluded; then up to -n requests or --seconds, whichever ends first.
 * Latencies go to a preallocated array: percentiles are exact. One JSON
 * line per run on stdout.
 *
 * Client with --resp: the same loops and latency record against a Redis
 * server: no handshake, GET key:<k as 12 zero-padded digits> (the keys
 * redis-benchmark -r K writes), each reply must be a RESP bulk string of
 * --size bytes; the nil bulk, an error reply or a bulk of another length
 * counts as an error.
 *
 * Populate (--populate): inserts K documents {_id: k, v: padding} sized like
 * the server's reply, for a real upstream (FerretDB).
 *
 * Plain sockets and epoll; libbson only to build and check documents.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timerfd, getaddrinfo under -std=c11 */
#endif
#include <bson/bson.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "mcload.h"

/* Blocking round trip of one command; the reply message (malloc'ed) or NULL. */
static int32_t rpc_request_id = 1;

static uint8_t *
rpc(int fd, const bson_t *body, uint32_t *reply_len, const uint8_t **rbody, uint32_t *rbody_len)
{
    uint32_t len;
    int32_t id = rpc_request_id++;
    uint8_t *m = mcload_encode_msg(body, id, 0, &len);
    uint8_t *r;

    if (!mcload_write_all(fd, m, len)) {
        free(m);
        return NULL;
    }
    free(m);
    r = mcload_read_msg(fd, reply_len);
    if (!r)
        return NULL;
    if (mcload_rd32(r + 8) != id || mcload_rd32(r + 12) != OP_MSG ||
        !(*rbody = mcload_msg_body(r, *reply_len, rbody_len))) {
        free(r);
        return NULL;
    }
    return r;
}

/* ---- client: HTTP GET of /stats ------------------------------------------- */

/* From /stats "cache": bypassed counts reads not cacheable (cache_off
 * excluded); cache_off is bypass_reasons.cache_off (absent: 0). A read is
 * one of hit, miss, bypassed or cache_off. */
struct cache_stats {
    bool ok;
    double hits, misses, bypassed, cache_off, hit_ratio;
};

static bool
json_number_after(const char *from, const char *key, double *out)
{
    const char *p = strstr(from, key);

    if (!p)
        return false;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    *out = strtod(p, NULL);
    return true;
}

static struct cache_stats
get_stats(const char *url)
{
    struct cache_stats s = {false, 0, 0, 0, 0, 0};
    char host[256], path[512], req[1024];
    int port = 80, fd;
    const char *p, *slash, *colon;
    char *buf;
    size_t len = 0, cap = 1 << 16;

    if (!url || strncmp(url, "http://", 7) != 0)
        return s;
    p = url + 7;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    if (colon) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - p), p);
        port = atoi(colon + 1);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)(slash - p), p);
    }
    snprintf(path, sizeof path, "%s", *slash ? slash : "/stats");
    fd = mcload_tcp_connect(host, port, 2);
    if (fd < 0)
        return s;
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
             host);
    if (!mcload_write_all(fd, (const uint8_t *)req, strlen(req))) {
        close(fd);
        return s;
    }
    buf = mcload_xmalloc(cap + 1);
    for (;;) {
        ssize_t n;

        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf)
                mcload_fatal("out of memory");
        }
        n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    p = strstr(buf, "\r\n\r\n");
    p = p ? strstr(p, "\"cache\"") : NULL;
    if (p && json_number_after(p, "\"hits\"", &s.hits) &&
        json_number_after(p, "\"misses\"", &s.misses) &&
        json_number_after(p, "\"hit_ratio\"", &s.hit_ratio)) {
        const char *r = strstr(p, "\"bypass_reasons\"");
        const char *end = r ? strchr(r, '}') : NULL;

        s.ok = true;
        if (!json_number_after(p, "\"bypassed\"", &s.bypassed))
            s.bypassed = 0;
        if (end) {
            const char *off = strstr(r, "\"cache_off\"");

            if (off && off < end)
                json_number_after(off, "\"cache_off\"", &s.cache_off);
        }
    }
    free(buf);
    return s;
}

/* ---- client ---------------------------------------------------------------- */

struct conn {
    int fd;
    int idx;
    bool dead;
    uint8_t *block;   /* keys x msg_len: every request of this connection */
    uint32_t next_key;
    uint64_t warm_done;
    /* the request in flight */
    bool busy;
    bool measured;
    int32_t req_id;
    uint64_t t_start; /* scheduled (open loop) or send (closed loop) time */
    const uint8_t *out;
    size_t out_len, out_off;
    bool want_out;
    /* input */
    struct mcload_inbuf in;
};

struct client {
    struct opts *o;
    struct conn *conns;
    int epfd;
    int tfd; /* open loop: fires at the next scheduled send */
    uint32_t msg_len;
    int32_t next_id;
    /* phases */
    bool measuring;
    bool stop_issuing;
    uint64_t warm_quota;      /* per connection */
    uint64_t warm_start, warm_deadline;
    uint64_t t_measure, t_deadline, t_last_done;
    uint64_t issued_measured; /* measured requests sent (or, open loop, scheduled) */
    uint64_t inflight_measured;
    uint64_t *lat;
    uint64_t n_lat;
    uint64_t n_warm;
    uint64_t errors;
    uint64_t n_errors_logged;
    uint64_t last_progress;
    double cpu0;
    struct cache_stats stats0;
    /* open loop */
    uint64_t sched_t0, sched_next; /* index of the next request to schedule */
    uint64_t sched_sent;           /* index of the next scheduled request to send */
    uint64_t sched_measured_from;  /* first schedule index of the measured phase */
    uint64_t sched_end;            /* no index at or past this is scheduled */
    int rr;
};

static void
client_error(struct client *cl, struct conn *c, const char *what)
{
    cl->errors++;
    if (cl->n_errors_logged++ < 5)
        fprintf(stderr, "mcload: connection %d: %s\n", c ? c->idx : -1, what);
}

static void
make_uuid(uint8_t uuid[16])
{
    static uint64_t state;

    if (!state)
        state = mcload_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 16; i += 8) {
        uint64_t x;

        state += 0x9e3779b97f4a7c15ull; /* splitmix64 */
        x = state;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        memcpy(uuid + i, &x, 8);
    }
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

/* What a driver sends for collection.find_one({_id: k}). */
static void
build_find(bson_t *b, const struct opts *o, int32_t key, const uint8_t uuid[16])
{
    bson_t filter, lsid, ct, sig, rp;
    static const uint8_t zero_hash[20];

    BSON_APPEND_UTF8(b, "find", o->coll);
    BSON_APPEND_DOCUMENT_BEGIN(b, "filter", &filter);
    BSON_APPEND_INT32(&filter, "_id", key);
    bson_append_document_end(b, &filter);
    BSON_APPEND_INT32(b, "limit", 1);
    BSON_APPEND_BOOL(b, "singleBatch", true);
    BSON_APPEND_DOCUMENT_BEGIN(b, "lsid", &lsid);
    BSON_APPEND_BINARY(&lsid, "id", BSON_SUBTYPE_UUID, uuid, 16);
    bson_append_document_end(b, &lsid);
    if (o->cluster_time) {
        BSON_APPEND_DOCUMENT_BEGIN(b, "$clusterTime", &ct);
        BSON_APPEND_TIMESTAMP(&ct, "clusterTime", 1700000000, 1);
        BSON_APPEND_DOCUMENT_BEGIN(&ct, "signature", &sig);
        BSON_APPEND_BINARY(&sig, "hash", BSON_SUBTYPE_BINARY, zero_hash, sizeof zero_hash);
        BSON_APPEND_INT64(&sig, "keyId", 0);
        bson_append_document_end(&ct, &sig);
        bson_append_document_end(b, &ct);
    }
    if (strcmp(o->read_pref, "none") != 0) {
        BSON_APPEND_DOCUMENT_BEGIN(b, "$readPreference", &rp);
        BSON_APPEND_UTF8(&rp, "mode", o->read_pref);
        bson_append_document_end(b, &rp);
    }
    BSON_APPEND_UTF8(b, "$db", o->db);
}

/* --resp: GET key:<n as 12 digits>, the key redis-benchmark -r writes
 * (`key:__rand_int__`, the placeholder replaced by 12 zero-padded digits),
 * as a RESP array; its length in bytes (36 for n < 10^12). */
static int
build_get(char *buf, size_t cap, uint32_t n)
{
    return snprintf(buf, cap, "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012u\r\n", n);
}

static void
handshake(int fd, int idx)
{
    bson_t b = BSON_INITIALIZER, client, driver, os;
    uint32_t rlen, blen;
    const uint8_t *body;
    uint8_t *r;
    char msg[128];

    BSON_APPEND_INT32(&b, "hello", 1);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "client", &client);
    BSON_APPEND_DOCUMENT_BEGIN(&client, "driver", &driver);
    BSON_APPEND_UTF8(&driver, "name", "mcload");
    BSON_APPEND_UTF8(&driver, "version", "1");
    bson_append_document_end(&client, &driver);
    BSON_APPEND_DOCUMENT_BEGIN(&client, "os", &os);
    BSON_APPEND_UTF8(&os, "type", "Linux");
    bson_append_document_end(&client, &os);
    bson_append_document_end(&b, &client);
    BSON_APPEND_UTF8(&b, "$db", "admin");
    r = rpc(fd, &b, &rlen, &body, &blen);
    bson_destroy(&b);
    if (!r || !mcload_body_ok(body, blen)) {
        snprintf(msg, sizeof msg, "connection %d: the hello handshake failed", idx);
        mcload_fatal(msg);
    }
    free(r);
}

static void
ep_mod(struct client *cl, struct conn *c, bool want_out)
{
    struct epoll_event ev;

    if (c->want_out == want_out)
        return;
    c->want_out = want_out;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(cl->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        mcload_die("epoll_ctl");
}

static void
kill_conn(struct client *cl, struct conn *c, const char *why)
{
    if (c->dead)
        return;
    client_error(cl, c, why);
    if (c->busy && c->measured)
        cl->inflight_measured--;
    c->busy = false;
    c->dead = true;
    epoll_ctl(cl->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void
flush_out(struct client *cl, struct conn *c)
{
    int rc = mcload_send_pending(c->fd, c->out, c->out_len, &c->out_off);

    if (rc == 0) {
        ep_mod(cl, c, true);
        return;
    }
    if (rc < 0) {
        kill_conn(cl, c, "send failed");
        return;
    }
    if (c->want_out)
        ep_mod(cl, c, false);
}

/* Sends the connection's next request; t_start is its scheduled or send time. */
static void
issue(struct client *cl, struct conn *c, uint64_t t_start, bool measured)
{
    uint8_t *m = c->block + (size_t)c->next_key * cl->msg_len;

    c->next_key = (c->next_key + 1) % cl->o->keys;
    c->req_id = cl->next_id++;
    if (cl->next_id <= 0)
        cl->next_id = 1;
    if (!cl->o->resp) /* RESP has no request ids: one request in flight answers in order */
        mcload_wr32(m + 4, c->req_id);
    c->busy = true;
    c->measured = measured;
    c->t_start = t_start;
    c->out = m;
    c->out_len = cl->msg_len;
    c->out_off = 0;
    if (measured) {
        cl->issued_measured++;
        cl->inflight_measured++;
    }
    flush_out(cl, c);
}

static void start_measuring(struct client *cl, uint64_t now);
static double cpu_seconds(void);

/* Closed loop: sends on c if the run goes on. */
static void
closed_next(struct client *cl, struct conn *c, uint64_t now)
{
    if (c->dead || c->busy || cl->stop_issuing)
        return;
    if (cl->measuring) {
        if (cl->issued_measured >= cl->o->n || now >= cl->t_deadline) {
            cl->stop_issuing = true;
            return;
        }
        issue(cl, c, now, true);
    } else {
        issue(cl, c, now, false);
    }
}

static bool
warm_done(struct client *cl, uint64_t now)
{
    if (now >= cl->warm_deadline)
        return true;
    for (int i = 0; i < cl->o->connections; i++)
        if (!cl->conns[i].dead && cl->conns[i].warm_done < cl->warm_quota)
            return false;
    return true;
}

/* A reply for c's request arrived (valid or not) at `now`. */
static void
complete(struct client *cl, struct conn *c, uint64_t now, bool good)
{
    c->busy = false;
    cl->last_progress = now;
    if (!good)
        cl->errors++;
    if (c->measured) {
        cl->inflight_measured--;
        if (good && cl->n_lat < cl->o->n)
            cl->lat[cl->n_lat++] = now - c->t_start;
        cl->t_last_done = now;
    } else {
        c->warm_done++;
        cl->n_warm++;
        if (!cl->measuring && warm_done(cl, now))
            start_measuring(cl, now);
    }
}

static void
check_reply(struct client *cl, struct conn *c, const uint8_t *m, uint32_t len, uint64_t now)
{
    const uint8_t *body;
    uint32_t blen;
    char what[160];

    if (!c->busy) {
        kill_conn(cl, c, "a reply arrived with no request in flight");
        return;
    }
    if (mcload_rd32(m + 8) != c->req_id) {
        snprintf(what, sizeof what, "responseTo %d does not match requestID %d", mcload_rd32(m + 8),
                 c->req_id);
        client_error(cl, c, what);
        cl->errors--; /* counted by complete() */
        complete(cl, c, now, false);
        return;
    }
    if (mcload_rd32(m + 12) != OP_MSG || !(body = mcload_msg_body(m, len, &blen)) ||
        !mcload_body_ok(body, blen)) {
        if (cl->n_errors_logged++ < 5) {
            bson_t b;
            char *json = NULL;

            if (mcload_rd32(m + 12) == OP_MSG && (body = mcload_msg_body(m, len, &blen)) &&
                bson_init_static(&b, body, blen))
                json = bson_as_relaxed_extended_json(&b, NULL);
            fprintf(stderr, "mcload: connection %d: bad reply (opcode %d): %.300s\n", c->idx,
                    mcload_rd32(m + 12), json ? json : "-");
            bson_free(json);
        }
        complete(cl, c, now, false);
        return;
    }
    complete(cl, c, now, true);
}

/* --resp: the reply to a GET must be a bulk string of --size bytes; the nil
 * bulk (a missing key), an error or any other reply counts as an error. */
static void
check_resp_reply(struct client *cl, struct conn *c, const uint8_t *m, uint32_t len,
                 int64_t bulk_len, uint64_t now)
{
    if (!c->busy) {
        kill_conn(cl, c, "a reply arrived with no request in flight");
        return;
    }
    if (bulk_len == (int64_t)cl->o->size) {
        complete(cl, c, now, true);
        return;
    }
    if (cl->n_errors_logged++ < 5) {
        const uint8_t *cr = memchr(m, '\r', len);

        fprintf(stderr, "mcload: connection %d: bad reply to GET (want a %u-byte bulk): %.*s%s\n",
                c->idx, cl->o->size, (int)(cr ? cr - m : 0), (const char *)m,
                bulk_len >= 0 ? " (a bulk of another length)" : "");
    }
    complete(cl, c, now, false);
}

static void
on_readable(struct client *cl, struct conn *c)
{
    const uint8_t *m;
    uint32_t len;
    bool bad;
    uint64_t now;
    int rc = mcload_inbuf_recv(&c->in, c->fd);

    if (rc == 0)
        return;
    if (rc < 0) {
        kill_conn(cl, c, errno == 0 ? "the server closed the connection" : "recv failed");
        return;
    }
    now = mcload_now_ns();
    if (cl->o->resp) {
        int64_t bulk_len;

        while ((m = mcload_inbuf_next_resp(&c->in, &len, &bulk_len, &bad))) {
            check_resp_reply(cl, c, m, len, bulk_len, now);
            if (c->dead)
                return;
        }
    } else {
        while ((m = mcload_inbuf_next(&c->in, &len, &bad))) {
            check_reply(cl, c, m, len, now);
            if (c->dead)
                return;
        }
    }
    if (bad) {
        kill_conn(cl, c, cl->o->resp ? "a malformed RESP reply (or not one GET answers with)"
                                     : "bad message length in a reply");
        return;
    }
    mcload_inbuf_compact(&c->in);
    if (!cl->o->open_loop)
        closed_next(cl, c, now);
}

static void
start_measuring(struct client *cl, uint64_t now)
{
    if (cl->o->stats_url) {
        cl->stats0 = get_stats(cl->o->stats_url);
        now = mcload_now_ns();
    }
    cl->measuring = true;
    cl->cpu0 = cpu_seconds();
    cl->t_measure = now;
    cl->t_deadline = now + (uint64_t)(cl->o->seconds * 1e9);
    cl->t_last_done = now;
    if (cl->o->open_loop) {
        /* requests scheduled from here on are measured */
        uint64_t period = (uint64_t)(1e9 / cl->o->rate);
        uint64_t idx = (now - cl->sched_t0 + period - 1) / period;

        if (idx < cl->sched_next)
            idx = cl->sched_next;
        cl->sched_measured_from = idx;
        cl->sched_end = idx + cl->o->n;
    }
}

static uint64_t
sched_time(const struct client *cl, uint64_t idx)
{
    return cl->sched_t0 + (uint64_t)((double)idx * 1e9 / cl->o->rate);
}

/* Open loop: sends every due request that has a free connection. */
static void
open_dispatch(struct client *cl, uint64_t now)
{
    int nconn = cl->o->connections;

    /* schedule everything due by now */
    while (cl->sched_next < cl->sched_end && sched_time(cl, cl->sched_next) <= now) {
        if (cl->measuring && cl->sched_next >= cl->sched_measured_from &&
            now >= cl->t_deadline) {
            cl->sched_end = cl->sched_next; /* time cap: schedule no more */
            break;
        }
        cl->sched_next++;
    }
    while (cl->sched_sent < cl->sched_next) {
        struct conn *c = NULL;

        for (int i = 0; i < nconn; i++) {
            struct conn *t = &cl->conns[(cl->rr + i) % nconn];

            if (!t->dead && !t->busy) {
                c = t;
                cl->rr = (cl->rr + i + 1) % nconn;
                break;
            }
        }
        if (!c)
            return; /* queued at the generator: their wait counts */
        issue(cl, c, sched_time(cl, cl->sched_sent),
              cl->measuring && cl->sched_sent >= cl->sched_measured_from);
        cl->sched_sent++;
    }
}

static bool
client_done(const struct client *cl)
{
    if (!cl->measuring)
        return false;
    if (cl->o->open_loop)
        return cl->sched_next >= cl->sched_end && cl->sched_sent >= cl->sched_next &&
               cl->inflight_measured == 0;
    return cl->stop_issuing && cl->inflight_measured == 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static double
pct_us(const uint64_t *v, uint64_t n, double p)
{
    uint64_t rank;

    if (n == 0)
        return 0;
    rank = (uint64_t)(p * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1000.0;
}

static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
run_client(struct opts *o)
{
    struct client cl;
    struct epoll_event evs[256];
    uint64_t now;
    double cpu1, secs;
    struct cache_stats s1;
    size_t block_bytes;

    memset(&cl, 0, sizeof cl);
    cl.o = o;
    cl.next_id = 1000;
    cl.lat = mcload_xmalloc(o->n * sizeof *cl.lat);
    memset(cl.lat, 0, o->n * sizeof *cl.lat); /* touch the pages before timing */
    cl.conns = mcload_xmalloc((size_t)o->connections * sizeof *cl.conns);
    memset(cl.conns, 0, (size_t)o->connections * sizeof *cl.conns);
    cl.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl.epfd < 0)
        mcload_die("epoll_create1");
    cl.warm_quota = (o->warmup + (uint64_t)o->connections - 1) / (uint64_t)o->connections;

    if (o->resp) {
        char req[64];

        cl.msg_len = (uint32_t)build_get(req, sizeof req, 0);
    } else {
        bson_t b = BSON_INITIALIZER;
        uint8_t uuid[16] = {0};

        build_find(&b, o, 0, uuid);
        cl.msg_len = HDR + 5 + b.len;
        bson_destroy(&b);
    }
    block_bytes = (size_t)o->keys * cl.msg_len;
    if ((double)block_bytes * o->connections > 2e9)
        mcload_fatal("connections x keys x request size is over 2 GB");

    for (int i = 0; i < o->connections; i++) {
        struct conn *c = &cl.conns[i];
        struct epoll_event ev;
        uint8_t uuid[16];
        char msg[128];

        c->idx = i;
        c->fd = mcload_tcp_connect(o->host, o->port, 5);
        if (c->fd < 0) {
            snprintf(msg, sizeof msg, "connection %d to %s:%d", i, o->host, o->port);
            mcload_die(msg);
        }
        if (!o->resp)
            handshake(c->fd, i);
        mcload_set_nonblock(c->fd);
        make_uuid(uuid);
        c->block = mcload_xmalloc(block_bytes);
        for (uint32_t k = 0; o->resp && k < o->keys; k++) {
            char req[64];

            if ((uint32_t)build_get(req, sizeof req, k) != cl.msg_len)
                mcload_fatal("request sizes differ between keys");
            memcpy(c->block + (size_t)k * cl.msg_len, req, cl.msg_len);
        }
        for (uint32_t k = 0; !o->resp && k < o->keys; k++) {
            bson_t b = BSON_INITIALIZER;
            uint32_t len;
            uint8_t *m;

            build_find(&b, o, (int32_t)k, uuid);
            m = mcload_encode_msg(&b, 0, 0, &len);
            if (len != cl.msg_len)
                mcload_fatal("request sizes differ between keys");
            memcpy(c->block + (size_t)k * cl.msg_len, m, len);
            free(m);
            bson_destroy(&b);
        }
        /* spread the connections over the keys: the warm-up reads every key */
        c->next_key = (uint32_t)((uint64_t)i * o->keys / (uint64_t)o->connections);
        {
            size_t cap = 64 * 1024;

            while (cap < (size_t)o->size + 1024)
                cap *= 2;
            mcload_inbuf_init(&c->in, cap);
        }
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(cl.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            mcload_die("epoll_ctl");
    }

    now = mcload_now_ns();
    cl.warm_start = now;
    cl.warm_deadline = now + (uint64_t)(o->warmup_seconds * 1e9);
    cl.last_progress = now;
    if (o->open_loop) {
        struct epoll_event ev;

        cl.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (cl.tfd < 0)
            mcload_die("timerfd_create");
        ev.events = EPOLLIN;
        ev.data.ptr = NULL;
        if (epoll_ctl(cl.epfd, EPOLL_CTL_ADD, cl.tfd, &ev) != 0)
            mcload_die("epoll_ctl");
        cl.sched_t0 = now;
        cl.sched_end = UINT64_MAX;
        open_dispatch(&cl, now);
    } else {
        for (int i = 0; i < o->connections; i++)
            closed_next(&cl, &cl.conns[i], now);
    }

    while (!client_done(&cl)) {
        int nev, timeout_ms = 100;
        bool alive = false;

        if (o->open_loop) {
            /* arm the timer for the next scheduled send */
            struct itimerspec its;
            uint64_t due;

            memset(&its, 0, sizeof its);
            if (cl.sched_next < cl.sched_end) {
                due = sched_time(&cl, cl.sched_next);
                its.it_value.tv_sec = (time_t)(due / 1000000000u);
                its.it_value.tv_nsec = (long)(due % 1000000000u);
                if (due == 0)
                    its.it_value.tv_nsec = 1;
            }
            timerfd_settime(cl.tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        nev = epoll_wait(cl.epfd, evs, 256, timeout_ms);
        if (nev < 0 && errno != EINTR)
            mcload_die("epoll_wait");
        for (int i = 0; i < nev; i++) {
            struct conn *c = evs[i].data.ptr;

            if (!c) {
                uint64_t ticks;

                if (read(cl.tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    mcload_die("read timerfd");
                continue;
            }
            if (c->dead)
                continue;
            if (evs[i].events & EPOLLOUT)
                flush_out(&cl, c);
            if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(&cl, c);
        }
        now = mcload_now_ns();
        if (!cl.measuring && warm_done(&cl, now))
            start_measuring(&cl, now);
        if (o->open_loop)
            open_dispatch(&cl, now);
        else if (cl.measuring && now >= cl.t_deadline)
            cl.stop_issuing = true;
        for (int i = 0; i < o->connections; i++)
            alive |= !cl.conns[i].dead;
        if (!alive) {
            fprintf(stderr, "mcload: every connection is closed\n");
            break;
        }
        if (now - cl.last_progress > (uint64_t)(o->stall_seconds * 1e9)) {
            fprintf(stderr, "mcload: no reply for %.1f s; giving up\n", o->stall_seconds);
            for (int i = 0; i < o->connections; i++)
                if (cl.conns[i].busy)
                    cl.errors++;
            break;
        }
    }
    cpu1 = cpu_seconds();
    if (o->open_loop && cl.measuring) {
        /* scheduled but never sent (every connection stayed busy to the end) */
        if (cl.sched_next > cl.sched_sent)
            cl.errors += cl.sched_next - cl.sched_sent;
    }
    s1 = o->stats_url ? get_stats(o->stats_url) : cl.stats0;

    qsort(cl.lat, cl.n_lat, sizeof *cl.lat, cmp_u64);
    secs = cl.measuring ? (double)(cl.t_last_done - cl.t_measure) / 1e9 : 0;
    printf("{\"scenario\": \"%s\", \"size\": %u, \"connections\": %d, \"mode\": \"%s\", "
           "\"rate\": %.0f, \"n\": %llu, \"seconds\": %.3f, \"rps\": %.0f, \"p50\": %.1f, "
           "\"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f, \"errors\": %llu, ",
           o->scenario, o->size, o->connections, o->open_loop ? "open" : "closed",
           o->open_loop ? o->rate : 0.0, (unsigned long long)cl.n_lat, secs,
           secs > 0 ? (double)cl.n_lat / secs : 0.0, pct_us(cl.lat, cl.n_lat, 0.50),
           pct_us(cl.lat, cl.n_lat, 0.99), pct_us(cl.lat, cl.n_lat, 0.999),
           cl.n_lat ? (double)cl.lat[cl.n_lat - 1] / 1000.0 : 0.0,
           (unsigned long long)cl.errors);
    if (o->stats_url && cl.stats0.ok && s1.ok) {
        double dh = s1.hits - cl.stats0.hits, dm = s1.misses - cl.stats0.misses;
        double db = (s1.bypassed + s1.cache_off) - (cl.stats0.bypassed + cl.stats0.cache_off);
        double th = s1.hits, tall = s1.hits + s1.misses + s1.bypassed + s1.cache_off;

        /* every read counts: hits / (hits + misses + bypassed reads) */
        if (dh + dm + db > 0)
            printf("\"hit_ratio\": %.4f, ", dh / (dh + dm + db));
        else
            printf("\"hit_ratio\": null, "); /* no read went through the cache's door */
        printf("\"reads_bypassed\": %.0f, ", db);
        printf("\"hit_ratio_total\": %.4f, ", tall > 0 ? th / tall : 0.0);
    } else {
        printf("\"hit_ratio\": null, ");
    }
    printf("\"warmup_n\": %llu, \"loadgen_cpu\": %.2f}\n", (unsigned long long)cl.n_warm,
           secs > 0 && cl.measuring ? (cpu1 - cl.cpu0) / secs : 0.0);
    fflush(stdout);
    for (int i = 0; i < o->connections; i++) {
        if (!cl.conns[i].dead)
            close(cl.conns[i].fd);
        free(cl.conns[i].block);
        mcload_inbuf_free(&cl.conns[i].in);
    }
    free(cl.conns);
    free(cl.lat);
    return cl.n_lat > 0 ? 0 : 1;
}

/* ---- populate ----------------------------------------------------------------- */

static int
run_populate(struct opts *o)
{
    int fd = mcload_tcp_connect(o->host, o->port, 10);
    uint32_t pad_len = mcload_pad_for_size(o->size, o);
    char *pad = mcload_make_pad(pad_len);
    uint32_t batch = 100;

    if (fd < 0)
        mcload_die("connect");
    handshake(fd, 0);
    {
        bson_t b = BSON_INITIALIZER;
        uint32_t rlen, blen;
        const uint8_t *body;
        uint8_t *r;

        BSON_APPEND_UTF8(&b, "drop", o->coll);
        BSON_APPEND_UTF8(&b, "$db", o->db);
        r = rpc(fd, &b, &rlen, &body, &blen); /* "ns not found" is fine */
        free(r);
        bson_destroy(&b);
    }
    for (uint32_t k0 = 0; k0 < o->keys; k0 += batch) {
        bson_t b = BSON_INITIALIZER, docs;
        uint32_t rlen, blen;
        const uint8_t *body;
        uint8_t *r;
        char idx[16];

        BSON_APPEND_UTF8(&b, "insert", o->coll);
        BSON_APPEND_ARRAY_BEGIN(&b, "documents", &docs);
        for (uint32_t k = k0; k < k0 + batch && k < o->keys; k++) {
            bson_t d;

            snprintf(idx, sizeof idx, "%u", k - k0);
            BSON_APPEND_DOCUMENT_BEGIN(&docs, idx, &d);
            BSON_APPEND_INT32(&d, "_id", (int32_t)k);
            BSON_APPEND_UTF8(&d, "v", pad);
            bson_append_document_end(&docs, &d);
        }
        bson_append_array_end(&b, &docs);
        BSON_APPEND_BOOL(&b, "ordered", true);
        BSON_APPEND_UTF8(&b, "$db", o->db);
        r = rpc(fd, &b, &rlen, &body, &blen);
        bson_destroy(&b);
        if (!r || !mcload_body_ok(body, blen))
            mcload_fatal("insert failed");
        {
            bson_t rb;
            bson_iter_t it;

            if (!bson_init_static(&rb, body, blen) || bson_iter_init_find(&it, &rb, "writeErrors"))
                mcload_fatal("insert reported write errors");
        }
        free(r);
    }
    close(fd);
    free(pad);
    printf("{\"populated\": %u, \"size\": %u}\n", o->keys, o->size);
    return 0;
}

int
main(int argc, char **argv)
{
    struct opts o;

    mcload_parse_opts(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    if (o.server)
        return mcload_server_run(&o);
    if (o.populate)
        return run_populate(&o);
    return run_client(&o);
}

