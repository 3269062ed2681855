/*
 * bench/mcload.c: the benchmark's load generator, and its canned-reply
 * MongoDB server (see bench/README.md).
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
 * Server (--server): answers hello/isMaster (OP_MSG and legacy OP_QUERY),
 * find (a pre-encoded reply of --size bytes, the requested _id patched in)
 * and anything else with {ok: 1}; --raw answers every request with the find
 * reply, patching only the header (the A0 floor); --delay-us holds each find
 * reply on a timer (no CPU burnt) before sending it.
 *
 * Populate (--populate): inserts K documents {_id: k, v: padding} sized like
 * the server's reply, for a real upstream (FerretDB).
 *
 * Plain sockets and epoll; libbson only to build and check documents.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, memmem */
#endif
#include <bson/bson.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HDR 16
#define OP_REPLY 1
#define OP_QUERY 2004
#define OP_MSG 2013
#define MAX_MSG (48 * 1000 * 1000)

/* ---- small helpers ------------------------------------------------------- */

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int32_t
rd32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

static void
wr32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;

    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static void
die(const char *what)
{
    fprintf(stderr, "mcload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void
fatal(const char *msg)
{
    fprintf(stderr, "mcload: %s\n", msg);
    exit(2);
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        fatal("out of memory");
    return p;
}

static void
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
}

static void
set_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* An OP_MSG with one body section (kind 0); malloc'ed. */
static uint8_t *
encode_msg(const bson_t *body, int32_t request_id, int32_t response_to, uint32_t *len_out)
{
    uint32_t len = HDR + 4 + 1 + body->len;
    uint8_t *m = xmalloc(len);

    wr32(m, (int32_t)len);
    wr32(m + 4, request_id);
    wr32(m + 8, response_to);
    wr32(m + 12, OP_MSG);
    wr32(m + 16, 0);
    m[20] = 0;
    memcpy(m + 21, bson_get_data(body), body->len);
    *len_out = len;
    return m;
}

/* The body document of an OP_MSG message of len bytes, or NULL. */
static const uint8_t *
msg_body(const uint8_t *m, size_t len, uint32_t *body_len)
{
    size_t off = HDR + 4;
    uint32_t flags;

    if (len < HDR + 5)
        return NULL;
    flags = (uint32_t)rd32(m + 16);
    if (flags & 1u) /* checksumPresent */
        len -= 4;
    while (off < len) {
        uint8_t kind = m[off++];
        int32_t sz;

        if (off + 4 > len)
            return NULL;
        sz = rd32(m + off);
        if (sz < 5 || off + (size_t)sz > len)
            return NULL;
        if (kind == 0) {
            *body_len = (uint32_t)sz;
            return m + off;
        }
        if (kind != 1)
            return NULL;
        off += (size_t)sz;
    }
    return NULL;
}

/* ok: 1 in a reply body (double, int32, int64 or bool). */
static bool
body_ok(const uint8_t *doc, uint32_t len)
{
    bson_t b;
    bson_iter_t it;

    if (!bson_init_static(&b, doc, len) || !bson_iter_init_find(&it, &b, "ok"))
        return false;
    return bson_iter_as_double(&it) == 1.0;
}

/* Blocking: writes all of buf. */
static bool
write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Blocking: reads one whole message; malloc'ed, NULL on error. */
static uint8_t *
read_msg(int fd, uint32_t *len_out)
{
    uint8_t hdr[HDR];
    size_t got = 0;
    int32_t len;
    uint8_t *m;

    while (got < HDR) {
        ssize_t n = recv(fd, hdr + got, HDR - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        got += (size_t)n;
    }
    len = rd32(hdr);
    if (len < HDR || len > MAX_MSG)
        return NULL;
    m = xmalloc((size_t)len);
    memcpy(m, hdr, HDR);
    while (got < (size_t)len) {
        ssize_t n = recv(fd, m + got, (size_t)len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(m);
            return NULL;
        }
        got += (size_t)n;
    }
    *len_out = (uint32_t)len;
    return m;
}

static int
tcp_connect(const char *host, int port, int timeout_s)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    struct timeval tv = {timeout_s, 0};
    int fd;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    set_nodelay(fd);
    return fd;
}

/* Blocking round trip of one command; the reply message (malloc'ed) or NULL. */
static int32_t rpc_request_id = 1;

static uint8_t *
rpc(int fd, const bson_t *body, uint32_t *reply_len, const uint8_t **rbody, uint32_t *rbody_len)
{
    uint32_t len;
    int32_t id = rpc_request_id++;
    uint8_t *m = encode_msg(body, id, 0, &len);
    uint8_t *r;

    if (!write_all(fd, m, len)) {
        free(m);
        return NULL;
    }
    free(m);
    r = read_msg(fd, reply_len);
    if (!r)
        return NULL;
    if (rd32(r + 8) != id || rd32(r + 12) != OP_MSG ||
        !(*rbody = msg_body(r, *reply_len, rbody_len))) {
        free(r);
        return NULL;
    }
    return r;
}

/* ---- options ------------------------------------------------------------- */

struct opts {
    const char *host;
    int port;
    int connections;
    bool open_loop;
    double rate;
    uint64_t n;
    double seconds;
    uint64_t warmup;
    double warmup_seconds;
    uint32_t keys;
    uint32_t size;
    const char *scenario;
    const char *db;
    const char *coll;
    const char *stats_url;
    const char *read_pref;
    bool cluster_time;
    bool server;
    bool raw;
    bool populate;
    uint64_t delay_us;
    double stall_seconds;
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: mcload --port P [client options]      load generator (prints one JSON line)\n"
            "       mcload --server --port P [--size B] [--raw] [--delay-us D]\n"
            "       mcload --populate --port P [--keys K] [--size B]\n"
            "\n"
            "client options:\n"
            "  --host H            (127.0.0.1)\n"
            "  -c, --connections N (1)       one request in flight on each\n"
            "  --mode closed|open  (closed)\n"
            "  --rate R            open loop: total requests per second\n"
            "  -n, --requests N    (10000)   measured requests\n"
            "  --seconds S         (10)      time cap of the measured phase\n"
            "  --warmup N          (2000)    warm-up requests (excluded); at least --keys\n"
            "                                reads every key before measuring\n"
            "  --warmup-seconds S  (10)      time cap of the warm-up\n"
            "  --keys K            (1000)    find {_id: k}, k in [0, K)\n"
            "  --size B            (256)     reply size: label here; the reply in --server\n"
            "  --scenario NAME     label in the JSON line\n"
            "  --db D --coll C     (bench.items)\n"
            "  --stats-url URL     http://host:port/stats of mongocache: hit ratio\n"
            "  --read-pref MODE    ($readPreference mode, primaryPreferred; none: omit)\n"
            "  --no-cluster-time   omit $clusterTime\n"
            "server options:\n"
            "  --raw               answer every request with the find reply (A0)\n"
            "  --delay-us D        hold each find reply D microseconds (timer)\n");
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_HOST = 256, O_MODE, O_RATE, O_SECONDS, O_WARMUP, O_WARMUP_S, O_KEYS, O_SIZE,
        O_SCENARIO, O_DB, O_COLL, O_STATS, O_RP, O_NOCT, O_SERVER, O_RAW, O_DELAY, O_POP,
        O_STALL,
    };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, 'p'},
        {"connections", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, O_MODE},
        {"rate", required_argument, NULL, O_RATE},
        {"requests", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"warmup-seconds", required_argument, NULL, O_WARMUP_S},
        {"keys", required_argument, NULL, O_KEYS},
        {"size", required_argument, NULL, O_SIZE},
        {"scenario", required_argument, NULL, O_SCENARIO},
        {"db", required_argument, NULL, O_DB},
        {"coll", required_argument, NULL, O_COLL},
        {"stats-url", required_argument, NULL, O_STATS},
        {"read-pref", required_argument, NULL, O_RP},
        {"no-cluster-time", no_argument, NULL, O_NOCT},
        {"server", no_argument, NULL, O_SERVER},
        {"raw", no_argument, NULL, O_RAW},
        {"delay-us", required_argument, NULL, O_DELAY},
        {"populate", no_argument, NULL, O_POP},
        {"stall-seconds", required_argument, NULL, O_STALL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    bool warmup_given = false;

    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->connections = 1;
    o->n = 10000;
    o->seconds = 10;
    o->warmup = 2000;
    o->warmup_seconds = 10;
    o->keys = 1000;
    o->size = 256;
    o->scenario = "";
    o->db = "bench";
    o->coll = "items";
    o->read_pref = "primaryPreferred";
    o->cluster_time = true;
    o->stall_seconds = 5;
    while ((ch = getopt_long(argc, argv, "p:c:n:h", longopts, NULL)) != -1) {
        switch (ch) {
        case O_HOST: o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'c': o->connections = atoi(optarg); break;
        case O_MODE:
            if (strcmp(optarg, "open") == 0)
                o->open_loop = true;
            else if (strcmp(optarg, "closed") != 0)
                fatal("--mode is closed or open");
            break;
        case O_RATE: o->rate = atof(optarg); break;
        case 'n': o->n = strtoull(optarg, NULL, 10); break;
        case O_SECONDS: o->seconds = atof(optarg); break;
        case O_WARMUP:
            o->warmup = strtoull(optarg, NULL, 10);
            warmup_given = true;
            break;
        case O_WARMUP_S: o->warmup_seconds = atof(optarg); break;
        case O_KEYS: o->keys = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_SIZE: o->size = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_SCENARIO: o->scenario = optarg; break;
        case O_DB: o->db = optarg; break;
        case O_COLL: o->coll = optarg; break;
        case O_STATS: o->stats_url = optarg; break;
        case O_RP: o->read_pref = optarg; break;
        case O_NOCT: o->cluster_time = false; break;
        case O_SERVER: o->server = true; break;
        case O_RAW: o->raw = true; break;
        case O_DELAY: o->delay_us = strtoull(optarg, NULL, 10); break;
        case O_POP: o->populate = true; break;
        case O_STALL: o->stall_seconds = atof(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc || o->port <= 0 || o->port > 65535) {
        usage(stderr);
        exit(2);
    }
    if (o->connections < 1 || o->keys < 1 || o->n < 1)
        fatal("--connections, --keys and --requests must be at least 1");
    if (o->open_loop && o->rate <= 0)
        fatal("--mode open needs --rate");
    if (!warmup_given && o->warmup < o->keys)
        o->warmup = o->keys;
}

/* ---- the find reply (server) and the documents (populate) ------------------ */

/* Padding length so that the server's find reply is `size` bytes in all. */
static uint32_t
pad_for_size(uint32_t size, const struct opts *o);

static void
build_find_reply_body(bson_t *b, int32_t id, const char *pad, const struct opts *o)
{
    bson_t cursor, batch, doc;
    char ns[256];

    snprintf(ns, sizeof ns, "%s.%s", o->db, o->coll);
    BSON_APPEND_DOCUMENT_BEGIN(b, "cursor", &cursor);
    BSON_APPEND_ARRAY_BEGIN(&cursor, "firstBatch", &batch);
    BSON_APPEND_DOCUMENT_BEGIN(&batch, "0", &doc);
    BSON_APPEND_INT32(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "v", pad);
    bson_append_document_end(&batch, &doc);
    bson_append_array_end(&cursor, &batch);
    BSON_APPEND_INT64(&cursor, "id", 0);
    BSON_APPEND_UTF8(&cursor, "ns", ns);
    bson_append_document_end(b, &cursor);
    BSON_APPEND_DOUBLE(b, "ok", 1.0);
}

static uint32_t
pad_for_size(uint32_t size, const struct opts *o)
{
    bson_t b = BSON_INITIALIZER;
    uint32_t base;

    build_find_reply_body(&b, 0, "", o);
    base = HDR + 5 + b.len;
    bson_destroy(&b);
    return size > base ? size - base : 0;
}

static char *
make_pad(uint32_t n)
{
    char *p = xmalloc(n + 1);

    for (uint32_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    p[n] = '\0';
    return p;
}

/* ---- client: HTTP GET of /stats ------------------------------------------- */

struct cache_stats {
    bool ok;
    double hits, misses, hit_ratio;
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
    struct cache_stats s = {false, 0, 0, 0};
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
    fd = tcp_connect(host, port, 2);
    if (fd < 0)
        return s;
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
             host);
    if (!write_all(fd, (const uint8_t *)req, strlen(req))) {
        close(fd);
        return s;
    }
    buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t n;

        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf)
                fatal("out of memory");
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
        json_number_after(p, "\"hit_ratio\"", &s.hit_ratio))
        s.ok = true;
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
    uint32_t out_len, out_off;
    bool want_out;
    /* input */
    uint8_t *in;
    size_t in_len, in_cap;
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
        state = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
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
    if (!r || !body_ok(body, blen)) {
        snprintf(msg, sizeof msg, "connection %d: the hello handshake failed", idx);
        fatal(msg);
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
        die("epoll_ctl");
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
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            c->out_off += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ep_mod(cl, c, true);
            return;
        }
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
    wr32(m + 4, c->req_id);
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
    if (rd32(m + 8) != c->req_id) {
        snprintf(what, sizeof what, "responseTo %d does not match requestID %d", rd32(m + 8),
                 c->req_id);
        client_error(cl, c, what);
        cl->errors--; /* counted by complete() */
        complete(cl, c, now, false);
        return;
    }
    if (rd32(m + 12) != OP_MSG || !(body = msg_body(m, len, &blen)) || !body_ok(body, blen)) {
        if (cl->n_errors_logged++ < 5) {
            bson_t b;
            char *json = NULL;

            if (rd32(m + 12) == OP_MSG && (body = msg_body(m, len, &blen)) &&
                bson_init_static(&b, body, blen))
                json = bson_as_relaxed_extended_json(&b, NULL);
            fprintf(stderr, "mcload: connection %d: bad reply (opcode %d): %.300s\n", c->idx,
                    rd32(m + 12), json ? json : "-");
            bson_free(json);
        }
        complete(cl, c, now, false);
        return;
    }
    complete(cl, c, now, true);
}

static void
on_readable(struct client *cl, struct conn *c)
{
    uint64_t now;
    size_t off = 0;

    for (;;) {
        ssize_t n;

        if (c->in_len == c->in_cap) {
            c->in_cap *= 2;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in)
                fatal("out of memory");
        }
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            break; /* level-triggered: no extra recv just to see EAGAIN */
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        kill_conn(cl, c, n == 0 ? "the server closed the connection" : "recv failed");
        return;
    }
    now = now_ns();
    while (c->in_len - off >= HDR) {
        int32_t len = rd32(c->in + off);

        if (len < HDR || len > MAX_MSG) {
            kill_conn(cl, c, "bad message length in a reply");
            return;
        }
        if (c->in_len - off < (size_t)len) {
            if ((size_t)len > c->in_cap) {
                /* grow now so that the next recv can take the whole reply */
                memmove(c->in, c->in + off, c->in_len - off);
                c->in_len -= off;
                off = 0;
                while (c->in_cap < (size_t)len)
                    c->in_cap *= 2;
                c->in = realloc(c->in, c->in_cap);
                if (!c->in)
                    fatal("out of memory");
            }
            break;
        }
        check_reply(cl, c, c->in + off, (uint32_t)len, now);
        off += (size_t)len;
        if (c->dead)
            return;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (!cl->o->open_loop)
        closed_next(cl, c, now);
}

static void
start_measuring(struct client *cl, uint64_t now)
{
    if (cl->o->stats_url) {
        cl->stats0 = get_stats(cl->o->stats_url);
        now = now_ns();
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
    cl.lat = xmalloc(o->n * sizeof *cl.lat);
    memset(cl.lat, 0, o->n * sizeof *cl.lat); /* touch the pages before timing */
    cl.conns = xmalloc((size_t)o->connections * sizeof *cl.conns);
    memset(cl.conns, 0, (size_t)o->connections * sizeof *cl.conns);
    cl.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl.epfd < 0)
        die("epoll_create1");
    cl.warm_quota = (o->warmup + (uint64_t)o->connections - 1) / (uint64_t)o->connections;

    {
        bson_t b = BSON_INITIALIZER;
        uint8_t uuid[16] = {0};

        build_find(&b, o, 0, uuid);
        cl.msg_len = HDR + 5 + b.len;
        bson_destroy(&b);
    }
    block_bytes = (size_t)o->keys * cl.msg_len;
    if ((double)block_bytes * o->connections > 2e9)
        fatal("connections x keys x request size is over 2 GB");

    for (int i = 0; i < o->connections; i++) {
        struct conn *c = &cl.conns[i];
        struct epoll_event ev;
        uint8_t uuid[16];
        char msg[128];

        c->idx = i;
        c->fd = tcp_connect(o->host, o->port, 5);
        if (c->fd < 0) {
            snprintf(msg, sizeof msg, "connection %d to %s:%d", i, o->host, o->port);
            die(msg);
        }
        handshake(c->fd, i);
        set_nonblock(c->fd);
        make_uuid(uuid);
        c->block = xmalloc(block_bytes);
        for (uint32_t k = 0; k < o->keys; k++) {
            bson_t b = BSON_INITIALIZER;
            uint32_t len;
            uint8_t *m;

            build_find(&b, o, (int32_t)k, uuid);
            m = encode_msg(&b, 0, 0, &len);
            if (len != cl.msg_len)
                fatal("request sizes differ between keys");
            memcpy(c->block + (size_t)k * cl.msg_len, m, len);
            free(m);
            bson_destroy(&b);
        }
        /* spread the connections over the keys: the warm-up reads every key */
        c->next_key = (uint32_t)((uint64_t)i * o->keys / (uint64_t)o->connections);
        c->in_cap = 64 * 1024;
        while (c->in_cap < (size_t)o->size + 1024)
            c->in_cap *= 2;
        c->in = xmalloc(c->in_cap);
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(cl.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die("epoll_ctl");
    }

    now = now_ns();
    cl.warm_start = now;
    cl.warm_deadline = now + (uint64_t)(o->warmup_seconds * 1e9);
    cl.last_progress = now;
    if (o->open_loop) {
        struct epoll_event ev;

        cl.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (cl.tfd < 0)
            die("timerfd_create");
        ev.events = EPOLLIN;
        ev.data.ptr = NULL;
        if (epoll_ctl(cl.epfd, EPOLL_CTL_ADD, cl.tfd, &ev) != 0)
            die("epoll_ctl");
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
            die("epoll_wait");
        for (int i = 0; i < nev; i++) {
            struct conn *c = evs[i].data.ptr;

            if (!c) {
                uint64_t ticks;

                if (read(cl.tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    die("read timerfd");
                continue;
            }
            if (c->dead)
                continue;
            if (evs[i].events & EPOLLOUT)
                flush_out(&cl, c);
            if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(&cl, c);
        }
        now = now_ns();
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

        if (dh + dm > 0)
            printf("\"hit_ratio\": %.4f, ", dh / (dh + dm));
        else
            printf("\"hit_ratio\": null, "); /* nothing cacheable was looked up */
        printf("\"hit_ratio_total\": %.4f, ", s1.hit_ratio);
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
        free(cl.conns[i].in);
    }
    free(cl.conns);
    free(cl.lat);
    return cl.n_lat > 0 ? 0 : 1;
}

/* ---- populate ----------------------------------------------------------------- */

static int
run_populate(struct opts *o)
{
    int fd = tcp_connect(o->host, o->port, 10);
    uint32_t pad_len = pad_for_size(o->size, o);
    char *pad = make_pad(pad_len);
    uint32_t batch = 100;

    if (fd < 0)
        die("connect");
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
        if (!r || !body_ok(body, blen))
            fatal("insert failed");
        {
            bson_t rb;
            bson_iter_t it;

            if (!bson_init_static(&rb, body, blen) || bson_iter_init_find(&it, &rb, "writeErrors"))
                fatal("insert reported write errors");
        }
        free(r);
    }
    close(fd);
    free(pad);
    printf("{\"populated\": %u, \"size\": %u}\n", o->keys, o->size);
    return 0;
}

/* ---- server --------------------------------------------------------------------- */

struct sconn {
    int fd;
    uint32_t gen;
    bool open;
    bool want_out;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
};

struct delayed {
    uint64_t due;
    int fd;
    uint32_t gen;
    int32_t response_to;
    int32_t key;
};

struct server {
    struct opts *o;
    int epfd, lfd, tfd;
    struct sconn **conns; /* by fd */
    int max_fd;
    uint8_t *find_reply; /* whole message; header and _id patched per reply */
    uint32_t find_len;
    size_t id_off;       /* offset of the _id int32 in find_reply, 0: none */
    uint8_t *hello_reply, *ok_reply, *legacy_hello;
    uint32_t hello_len, ok_len, legacy_len;
    int32_t next_id;
    uint32_t next_gen;
    struct delayed *q; /* FIFO ring: the delay is fixed, so due times only grow */
    size_t q_head, q_len, q_cap;
    bool timer_armed;
};

static void
hello_doc(bson_t *b)
{
    BSON_APPEND_BOOL(b, "helloOk", true);
    BSON_APPEND_BOOL(b, "ismaster", true);
    BSON_APPEND_BOOL(b, "isWritablePrimary", true);
    BSON_APPEND_INT32(b, "maxBsonObjectSize", 16 * 1024 * 1024);
    BSON_APPEND_INT32(b, "maxMessageSizeBytes", 48000000);
    BSON_APPEND_INT32(b, "maxWriteBatchSize", 100000);
    BSON_APPEND_DATE_TIME(b, "localTime", (int64_t)time(NULL) * 1000);
    BSON_APPEND_INT32(b, "logicalSessionTimeoutMinutes", 30);
    BSON_APPEND_INT32(b, "connectionId", 1);
    BSON_APPEND_INT32(b, "minWireVersion", 0);
    BSON_APPEND_INT32(b, "maxWireVersion", 21);
    BSON_APPEND_BOOL(b, "readOnly", false);
    BSON_APPEND_DOUBLE(b, "ok", 1.0);
}

static void
server_prepare(struct server *sv)
{
    struct opts *o = sv->o;
    uint32_t pad_len = pad_for_size(o->size, o);
    char *pad = make_pad(pad_len);
    bson_t b = BSON_INITIALIZER;
    static const uint8_t pattern[] = {0x10, '_', 'i', 'd', 0};
    uint8_t *p;

    build_find_reply_body(&b, 0, pad, o);
    sv->find_reply = encode_msg(&b, 0, 0, &sv->find_len);
    bson_destroy(&b);
    free(pad);
    p = memmem(sv->find_reply + HDR, sv->find_len - HDR, pattern, sizeof pattern);
    sv->id_off = p ? (size_t)(p - sv->find_reply) + sizeof pattern : 0;

    bson_init(&b);
    hello_doc(&b);
    sv->hello_reply = encode_msg(&b, 0, 0, &sv->hello_len);
    /* OP_REPLY for the legacy OP_QUERY handshake */
    sv->legacy_len = HDR + 20 + b.len;
    sv->legacy_hello = xmalloc(sv->legacy_len);
    memset(sv->legacy_hello, 0, sv->legacy_len);
    wr32(sv->legacy_hello, (int32_t)sv->legacy_len);
    wr32(sv->legacy_hello + 12, OP_REPLY);
    wr32(sv->legacy_hello + 32, 1); /* numberReturned */
    memcpy(sv->legacy_hello + 36, bson_get_data(&b), b.len);
    bson_destroy(&b);

    bson_init(&b);
    BSON_APPEND_DOUBLE(&b, "ok", 1.0);
    sv->ok_reply = encode_msg(&b, 0, 0, &sv->ok_len);
    bson_destroy(&b);
}

static void
sconn_close(struct server *sv, struct sconn *c)
{
    epoll_ctl(sv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    sv->conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

static void
sconn_want_out(struct server *sv, struct sconn *c, bool want)
{
    struct epoll_event ev;

    if (c->want_out == want)
        return;
    c->want_out = want;
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.fd = c->fd;
    epoll_ctl(sv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Appends a reply built from template t to c's output; returns where it went. */
static uint8_t *
append_reply(struct server *sv, struct sconn *c, const uint8_t *t, uint32_t len,
             int32_t response_to)
{
    uint8_t *dst;

    if (c->out_len + len > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (c->out_len + len > c->out_cap)
            c->out_cap = c->out_cap ? c->out_cap * 2 : 64 * 1024;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out)
            fatal("out of memory");
    }
    dst = c->out + c->out_len;
    memcpy(dst, t, len);
    wr32(dst + 4, sv->next_id++);
    wr32(dst + 8, response_to);
    c->out_len += len;
    return dst;
}

static void
append_find(struct server *sv, struct sconn *c, int32_t response_to, int32_t key)
{
    uint8_t *m = append_reply(sv, c, sv->find_reply, sv->find_len, response_to);

    if (sv->id_off && !sv->o->raw)
        wr32(m + sv->id_off, key);
}

/* Writes what is buffered; false when the connection was closed. */
static bool
sconn_flush(struct server *sv, struct sconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            sconn_want_out(sv, c, true);
            return true;
        }
        sconn_close(sv, c);
        return false;
    }
    c->out_off = c->out_len = 0;
    sconn_want_out(sv, c, false);
    return true;
}

static void
arm_timer(struct server *sv)
{
    struct itimerspec its;

    memset(&its, 0, sizeof its);
    if (sv->q_len > 0) {
        uint64_t due = sv->q[sv->q_head].due;

        its.it_value.tv_sec = (time_t)(due / 1000000000u);
        its.it_value.tv_nsec = (long)(due % 1000000000u);
        if (due == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(sv->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    sv->timer_armed = sv->q_len > 0;
}

static void
delay_push(struct server *sv, struct sconn *c, int32_t response_to, int32_t key)
{
    struct delayed *d;

    if (sv->q_len == sv->q_cap) {
        size_t ncap = sv->q_cap ? sv->q_cap * 2 : 1024;
        struct delayed *nq = xmalloc(ncap * sizeof *nq);

        for (size_t i = 0; i < sv->q_len; i++)
            nq[i] = sv->q[(sv->q_head + i) % sv->q_cap];
        free(sv->q);
        sv->q = nq;
        sv->q_cap = ncap;
        sv->q_head = 0;
    }
    d = &sv->q[(sv->q_head + sv->q_len) % sv->q_cap];
    d->due = now_ns() + sv->o->delay_us * 1000u;
    d->fd = c->fd;
    d->gen = c->gen;
    d->response_to = response_to;
    d->key = key;
    sv->q_len++;
    if (!sv->timer_armed)
        arm_timer(sv);
}

static void
delay_fire(struct server *sv)
{
    uint64_t now = now_ns();

    while (sv->q_len > 0 && sv->q[sv->q_head].due <= now) {
        struct delayed d = sv->q[sv->q_head];
        struct sconn *c = d.fd <= sv->max_fd ? sv->conns[d.fd] : NULL;

        sv->q_head = (sv->q_head + 1) % sv->q_cap;
        sv->q_len--;
        if (!c || c->gen != d.gen)
            continue;
        append_find(sv, c, d.response_to, d.key);
        sconn_flush(sv, c);
    }
    arm_timer(sv);
}

static bool
name_is(const uint8_t *key, const uint8_t *end, const char *name)
{
    size_t n = strlen(name);

    return (size_t)(end - key) > n && memcmp(key, name, n + 1) == 0;
}

/* Answers one whole request message m of len bytes. */
static void
serve_one(struct server *sv, struct sconn *c, const uint8_t *m, uint32_t len)
{
    int32_t id = rd32(m + 4), op = rd32(m + 12);
    const uint8_t *body, *key;
    uint32_t blen;
    int32_t k = 0;

    if (sv->o->raw) {
        if (op == OP_MSG && (rd32(m + 16) & 2)) /* moreToCome: no reply */
            return;
        if (sv->o->delay_us)
            delay_push(sv, c, id, 0);
        else
            append_find(sv, c, id, 0);
        return;
    }
    if (op == OP_QUERY) {
        append_reply(sv, c, sv->legacy_hello, sv->legacy_len, id);
        return;
    }
    if (op != OP_MSG || !(body = msg_body(m, len, &blen)) || blen < 6) {
        append_reply(sv, c, sv->ok_reply, sv->ok_len, id);
        return;
    }
    if (rd32(m + 16) & 2)
        return;
    key = body + 5;
    if (name_is(key, body + blen, "find")) {
        bson_t b;
        bson_iter_t it, sub;

        if (bson_init_static(&b, body, blen) && bson_iter_init_find(&it, &b, "filter") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
            bson_iter_find(&sub, "_id") && BSON_ITER_HOLDS_INT32(&sub))
            k = bson_iter_int32(&sub);
        if (sv->o->delay_us)
            delay_push(sv, c, id, k);
        else
            append_find(sv, c, id, k);
    } else if (name_is(key, body + blen, "hello") || name_is(key, body + blen, "isMaster") ||
               name_is(key, body + blen, "ismaster")) {
        append_reply(sv, c, sv->hello_reply, sv->hello_len, id);
    } else {
        append_reply(sv, c, sv->ok_reply, sv->ok_len, id);
    }
}

static void
sconn_readable(struct server *sv, struct sconn *c)
{
    size_t off = 0;
    ssize_t n;

    if (c->in_len == c->in_cap) {
        c->in_cap *= 2;
        c->in = realloc(c->in, c->in_cap);
        if (!c->in)
            fatal("out of memory");
    }
    do
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        sconn_close(sv, c);
        return;
    }
    c->in_len += (size_t)n;
    while (c->in_len - off >= HDR) {
        int32_t len = rd32(c->in + off);

        if (len < HDR || len > MAX_MSG) {
            sconn_close(sv, c);
            return;
        }
        if (c->in_len - off < (size_t)len) {
            if ((size_t)len > c->in_cap) {
                memmove(c->in, c->in + off, c->in_len - off);
                c->in_len -= off;
                off = 0;
                while (c->in_cap < (size_t)len)
                    c->in_cap *= 2;
                c->in = realloc(c->in, c->in_cap);
                if (!c->in)
                    fatal("out of memory");
            }
            break;
        }
        serve_one(sv, c, c->in + off, (uint32_t)len);
        off += (size_t)len;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->out_len > c->out_off)
        sconn_flush(sv, c);
}

static void
server_accept(struct server *sv)
{
    for (;;) {
        int fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct sconn *c;
        struct epoll_event ev;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE: try again on the next event */
        }
        if (fd > sv->max_fd) {
            int nmax = fd * 2 + 64;

            sv->conns = realloc(sv->conns, (size_t)(nmax + 1) * sizeof *sv->conns);
            if (!sv->conns)
                fatal("out of memory");
            for (int i = sv->max_fd + 1; i <= nmax; i++)
                sv->conns[i] = NULL;
            sv->max_fd = nmax;
        }
        set_nodelay(fd);
        c = xmalloc(sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->gen = ++sv->next_gen;
        c->in_cap = 64 * 1024;
        c->in = xmalloc(c->in_cap);
        sv->conns[fd] = c;
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll_ctl");
    }
}

static int
run_server(struct opts *o)
{
    struct server sv;
    struct sockaddr_in sa;
    struct epoll_event ev, evs[256];
    int one = 1;

    memset(&sv, 0, sizeof sv);
    sv.o = o;
    sv.next_id = 1;
    sv.max_fd = -1;
    server_prepare(&sv);
    /* timers exact to the microsecond, not the default 50 us slack */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);

    sv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sv.lfd < 0)
        die("socket");
    setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        fatal("--server listens on an IPv4 address (--host)");
    if (bind(sv.lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("bind");
    if (listen(sv.lfd, 4096) != 0)
        die("listen");
    sv.epfd = epoll_create1(EPOLL_CLOEXEC);
    sv.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sv.epfd < 0 || sv.tfd < 0)
        die("epoll/timerfd");
    ev.events = EPOLLIN;
    ev.data.fd = sv.lfd;
    epoll_ctl(sv.epfd, EPOLL_CTL_ADD, sv.lfd, &ev);
    ev.data.fd = sv.tfd;
    epoll_ctl(sv.epfd, EPOLL_CTL_ADD, sv.tfd, &ev);
    fprintf(stderr, "mcload: serving on %s:%d, find reply %u bytes%s, delay %llu us\n", o->host,
            o->port, sv.find_len, o->raw ? " (raw: every request)" : "",
            (unsigned long long)o->delay_us);

    for (;;) {
        int nev = epoll_wait(sv.epfd, evs, 256, -1);

        if (nev < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < nev; i++) {
            int fd = evs[i].data.fd;
            struct sconn *c;

            if (fd == sv.lfd) {
                server_accept(&sv);
                continue;
            }
            if (fd == sv.tfd) {
                uint64_t ticks;

                if (read(sv.tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    die("read timerfd");
                sv.timer_armed = false;
                delay_fire(&sv);
                continue;
            }
            c = fd <= sv.max_fd ? sv.conns[fd] : NULL;
            if (!c)
                continue;
            if ((evs[i].events & EPOLLOUT) && !sconn_flush(&sv, c))
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                sconn_readable(&sv, c);
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct opts o;

    parse_opts(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    if (o.server)
        return run_server(&o);
    if (o.populate)
        return run_populate(&o);
    return run_client(&o);
}
