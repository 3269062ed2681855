/*
 * bench/mcload_common.c: what mcload's client (bench/mcload.c) and its
 * canned upstream (bench/mcload_server.c) share: option parsing, the small
 * socket and blocking message helpers, and the find reply's shape. The
 * declarations and their contracts are in bench/mcload.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getaddrinfo, clock_gettime under -std=c11 */
#endif
#include <bson/bson.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mcload.h"

/* ---- small helpers ------------------------------------------------------- */

uint64_t
mcload_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int32_t
mcload_rd32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

void
mcload_wr32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;

    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

void
mcload_die(const char *what)
{
    fprintf(stderr, "mcload: %s: %s\n", what, strerror(errno));
    exit(2);
}

void
mcload_fatal(const char *msg)
{
    fprintf(stderr, "mcload: %s\n", msg);
    exit(2);
}

void *
mcload_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        mcload_fatal("out of memory");
    return p;
}

void
mcload_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        mcload_die("fcntl");
}

void
mcload_set_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* An OP_MSG with one body section (kind 0); malloc'ed. */
uint8_t *
mcload_encode_msg(const bson_t *body, int32_t request_id, int32_t response_to, uint32_t *len_out)
{
    uint32_t len = HDR + 4 + 1 + body->len;
    uint8_t *m = mcload_xmalloc(len);

    mcload_wr32(m, (int32_t)len);
    mcload_wr32(m + 4, request_id);
    mcload_wr32(m + 8, response_to);
    mcload_wr32(m + 12, OP_MSG);
    mcload_wr32(m + 16, 0);
    m[20] = 0;
    memcpy(m + 21, bson_get_data(body), body->len);
    *len_out = len;
    return m;
}

/* The body document of an OP_MSG message of len bytes, or NULL. */
const uint8_t *
mcload_msg_body(const uint8_t *m, size_t len, uint32_t *body_len)
{
    size_t off = HDR + 4;
    uint32_t flags;

    if (len < HDR + 5)
        return NULL;
    flags = (uint32_t)mcload_rd32(m + 16);
    if (flags & 1u) /* checksumPresent */
        len -= 4;
    while (off < len) {
        uint8_t kind = m[off++];
        int32_t sz;

        if (off + 4 > len)
            return NULL;
        sz = mcload_rd32(m + off);
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
bool
mcload_body_ok(const uint8_t *doc, uint32_t len)
{
    bson_t b;
    bson_iter_t it;

    if (!bson_init_static(&b, doc, len) || !bson_iter_init_find(&it, &b, "ok"))
        return false;
    return bson_iter_as_double(&it) == 1.0;
}

/* Blocking: writes all of buf. */
bool
mcload_write_all(int fd, const uint8_t *buf, size_t len)
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
uint8_t *
mcload_read_msg(int fd, uint32_t *len_out)
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
    len = mcload_rd32(hdr);
    if (len < HDR || len > MAX_MSG)
        return NULL;
    m = mcload_xmalloc((size_t)len);
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

int
mcload_tcp_connect(const char *host, int port, int timeout_s)
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
    mcload_set_nodelay(fd);
    return fd;
}

void
mcload_inbuf_init(struct mcload_inbuf *b, size_t cap)
{
    b->data = mcload_xmalloc(cap);
    b->cap = cap;
    b->len = b->off = 0;
}

void
mcload_inbuf_free(struct mcload_inbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = b->off = 0;
}

static void
inbuf_grow(struct mcload_inbuf *b, size_t need)
{
    while (b->cap < need)
        b->cap *= 2;
    b->data = realloc(b->data, b->cap);
    if (!b->data)
        mcload_fatal("out of memory");
}

int
mcload_inbuf_recv(struct mcload_inbuf *b, int fd)
{
    ssize_t n;

    if (b->len == b->cap)
        inbuf_grow(b, b->cap * 2);
    do
        n = recv(fd, b->data + b->len, b->cap - b->len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        b->len += (size_t)n;
        return 1; /* level-triggered: no extra recv just to see EAGAIN */
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n == 0)
        errno = 0;
    return -1;
}

void
mcload_inbuf_compact(struct mcload_inbuf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

const uint8_t *
mcload_inbuf_next(struct mcload_inbuf *b, uint32_t *len_out, bool *bad)
{
    const uint8_t *m;
    int32_t len;

    *bad = false;
    if (b->len - b->off < HDR)
        return NULL;
    len = mcload_rd32(b->data + b->off);
    if (len < HDR || len > MAX_MSG) {
        *bad = true;
        return NULL;
    }
    if (b->len - b->off < (size_t)len) {
        if ((size_t)len > b->cap) {
            /* grow now so that the next recv can take the whole message */
            mcload_inbuf_compact(b);
            inbuf_grow(b, (size_t)len);
        }
        return NULL;
    }
    m = b->data + b->off;
    b->off += (size_t)len;
    *len_out = (uint32_t)len;
    return m;
}

/* RESP: a reply's first line (type byte .. CRLF) is at most this long. */
#define RESP_MAX_LINE 4096

/* The decimal length of a bulk header "$<n>": -1, or 0..MAX_MSG; false if malformed. */
static bool
resp_parse_len(const uint8_t *p, size_t n, int64_t *out)
{
    int64_t v = 0;

    if (n == 2 && p[0] == '-' && p[1] == '1') {
        *out = -1;
        return true;
    }
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v > MAX_MSG)
        return false;
    *out = v;
    return true;
}

const uint8_t *
mcload_inbuf_next_resp(struct mcload_inbuf *b, uint32_t *len_out, int64_t *bulk_len, bool *bad)
{
    const uint8_t *m = b->data + b->off, *cr;
    size_t avail = b->len - b->off, look, line, total;
    int64_t n;

    *bad = false;
    if (avail < 1)
        return NULL;
    if (m[0] != '$' && m[0] != '+' && m[0] != '-' && m[0] != ':') {
        *bad = true; /* arrays, RESP3 types: never an answer to GET */
        return NULL;
    }
    look = avail < RESP_MAX_LINE ? avail : RESP_MAX_LINE;
    cr = memchr(m, '\r', look);
    if (!cr || (size_t)(cr - m) + 1 >= avail) {
        if (look == RESP_MAX_LINE && !cr)
            *bad = true; /* no line end within the limit */
        return NULL;
    }
    line = (size_t)(cr - m) + 2; /* with its CRLF */
    if (cr[1] != '\n') {
        *bad = true;
        return NULL;
    }
    if (m[0] != '$') {
        *bulk_len = -2;
        total = line;
    } else {
        if (!resp_parse_len(m + 1, line - 3, &n)) {
            *bad = true;
            return NULL;
        }
        *bulk_len = n;
        total = n < 0 ? line : line + (size_t)n + 2;
    }
    if (avail < total) {
        if (total > b->cap) {
            /* grow now so that the next recv can take the whole reply */
            mcload_inbuf_compact(b);
            inbuf_grow(b, total);
        }
        return NULL;
    }
    if (*bulk_len >= 0 && (m[total - 2] != '\r' || m[total - 1] != '\n')) {
        *bad = true; /* the bulk is not the length its header says */
        return NULL;
    }
    b->off += total;
    *len_out = (uint32_t)total;
    return m;
}

int
mcload_send_pending(int fd, const uint8_t *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);

        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 1;
}

/* ---- options ------------------------------------------------------------- */


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
            "  --resp              Redis instead: GET key:<k, 12 digits> (redis-benchmark -r's\n"
            "                      keys), no handshake; a reply must be a --size-byte bulk\n"
            "server options:\n"
            "  --raw               answer every request with the find reply (A0)\n"
            "  --delay-us D        hold each find reply D microseconds (timer)\n");
}

void
mcload_parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_HOST = 256, O_MODE, O_RATE, O_SECONDS, O_WARMUP, O_WARMUP_S, O_KEYS, O_SIZE,
        O_SCENARIO, O_DB, O_COLL, O_STATS, O_RP, O_NOCT, O_SERVER, O_RAW, O_DELAY, O_POP,
        O_STALL, O_RESP,
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
        {"resp", no_argument, NULL, O_RESP},
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
                mcload_fatal("--mode is closed or open");
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
        case O_RESP: o->resp = true; break;
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
        mcload_fatal("--connections, --keys and --requests must be at least 1");
    if (o->resp && (o->server || o->populate || o->stats_url))
        mcload_fatal("--resp is a client mode (no --server, --populate or --stats-url)");
    if (o->open_loop && o->rate <= 0)
        mcload_fatal("--mode open needs --rate");
    if (!warmup_given && o->warmup < o->keys)
        o->warmup = o->keys;
}
/* ---- the find reply (server) and the documents (populate) ------------------ */

/* Padding length so that the server's find reply is `size` bytes in all. */
uint32_t
mcload_pad_for_size(uint32_t size, const struct opts *o);

void
mcload_build_find_reply_body(bson_t *b, int32_t id, const char *pad, const struct opts *o)
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

uint32_t
mcload_pad_for_size(uint32_t size, const struct opts *o)
{
    bson_t b = BSON_INITIALIZER;
    uint32_t base;

    mcload_build_find_reply_body(&b, 0, "", o);
    base = HDR + 5 + b.len;
    bson_destroy(&b);
    return size > base ? size - base : 0;
}

char *
mcload_make_pad(uint32_t n)
{
    char *p = mcload_xmalloc(n + 1);

    for (uint32_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    p[n] = '\0';
    return p;
}
