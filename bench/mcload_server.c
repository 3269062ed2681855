/*
 * bench/mcload_server.c: mcload --server, the canned-reply MongoDB upstream
 * of the benchmark (see bench/README.md): answers hello/isMaster (OP_MSG and
 * legacy OP_QUERY), find (a pre-encoded reply of --size bytes, the requested
 * _id patched in) and anything else with {ok: 1}; --raw answers every
 * request with the find reply, patching only the header (the A0 floor);
 * --delay-us holds each find reply on a timer (no CPU burnt) before sending
 * it. Plain sockets and epoll, write first; one process, one loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, memmem */
#endif
#include <bson/bson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "mcload.h"

struct sconn {
    int fd;
    uint32_t gen;
    bool open;
    bool want_out;
    struct mcload_inbuf in;
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
    uint32_t pad_len = mcload_pad_for_size(o->size, o);
    char *pad = mcload_make_pad(pad_len);
    bson_t b = BSON_INITIALIZER;
    static const uint8_t pattern[] = {0x10, '_', 'i', 'd', 0};
    uint8_t *p;

    mcload_build_find_reply_body(&b, 0, pad, o);
    sv->find_reply = mcload_encode_msg(&b, 0, 0, &sv->find_len);
    bson_destroy(&b);
    free(pad);
    p = memmem(sv->find_reply + HDR, sv->find_len - HDR, pattern, sizeof pattern);
    sv->id_off = p ? (size_t)(p - sv->find_reply) + sizeof pattern : 0;

    bson_init(&b);
    hello_doc(&b);
    sv->hello_reply = mcload_encode_msg(&b, 0, 0, &sv->hello_len);
    /* OP_REPLY for the legacy OP_QUERY handshake */
    sv->legacy_len = HDR + 20 + b.len;
    sv->legacy_hello = mcload_xmalloc(sv->legacy_len);
    memset(sv->legacy_hello, 0, sv->legacy_len);
    mcload_wr32(sv->legacy_hello, (int32_t)sv->legacy_len);
    mcload_wr32(sv->legacy_hello + 12, OP_REPLY);
    mcload_wr32(sv->legacy_hello + 32, 1); /* numberReturned */
    memcpy(sv->legacy_hello + 36, bson_get_data(&b), b.len);
    bson_destroy(&b);

    bson_init(&b);
    BSON_APPEND_DOUBLE(&b, "ok", 1.0);
    sv->ok_reply = mcload_encode_msg(&b, 0, 0, &sv->ok_len);
    bson_destroy(&b);
}

static void
sconn_close(struct server *sv, struct sconn *c)
{
    epoll_ctl(sv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    sv->conns[c->fd] = NULL;
    mcload_inbuf_free(&c->in);
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
            mcload_fatal("out of memory");
    }
    dst = c->out + c->out_len;
    memcpy(dst, t, len);
    mcload_wr32(dst + 4, sv->next_id++);
    mcload_wr32(dst + 8, response_to);
    c->out_len += len;
    return dst;
}

static void
append_find(struct server *sv, struct sconn *c, int32_t response_to, int32_t key)
{
    uint8_t *m = append_reply(sv, c, sv->find_reply, sv->find_len, response_to);

    if (sv->id_off && !sv->o->raw)
        mcload_wr32(m + sv->id_off, key);
}

/* Writes what is buffered; false when the connection was closed. */
static bool
sconn_flush(struct server *sv, struct sconn *c)
{
    int rc = mcload_send_pending(c->fd, c->out, c->out_len, &c->out_off);

    if (rc < 0) {
        sconn_close(sv, c);
        return false;
    }
    if (rc == 0) {
        sconn_want_out(sv, c, true);
        return true;
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
        struct delayed *nq = mcload_xmalloc(ncap * sizeof *nq);

        for (size_t i = 0; i < sv->q_len; i++)
            nq[i] = sv->q[(sv->q_head + i) % sv->q_cap];
        free(sv->q);
        sv->q = nq;
        sv->q_cap = ncap;
        sv->q_head = 0;
    }
    d = &sv->q[(sv->q_head + sv->q_len) % sv->q_cap];
    d->due = mcload_now_ns() + sv->o->delay_us * 1000u;
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
    uint64_t now = mcload_now_ns();

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
    int32_t id = mcload_rd32(m + 4), op = mcload_rd32(m + 12);
    const uint8_t *body, *key;
    uint32_t blen;
    int32_t k = 0;

    if (sv->o->raw) {
        if (op == OP_MSG && (mcload_rd32(m + 16) & 2)) /* moreToCome: no reply */
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
    if (op != OP_MSG || !(body = mcload_msg_body(m, len, &blen)) || blen < 6) {
        append_reply(sv, c, sv->ok_reply, sv->ok_len, id);
        return;
    }
    if (mcload_rd32(m + 16) & 2)
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
    const uint8_t *m;
    uint32_t len;
    bool bad;
    int rc = mcload_inbuf_recv(&c->in, c->fd);

    if (rc == 0)
        return;
    if (rc < 0) {
        sconn_close(sv, c);
        return;
    }
    while ((m = mcload_inbuf_next(&c->in, &len, &bad)))
        serve_one(sv, c, m, len);
    if (bad) {
        sconn_close(sv, c);
        return;
    }
    mcload_inbuf_compact(&c->in);
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
                mcload_fatal("out of memory");
            for (int i = sv->max_fd + 1; i <= nmax; i++)
                sv->conns[i] = NULL;
            sv->max_fd = nmax;
        }
        mcload_set_nodelay(fd);
        c = mcload_xmalloc(sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->gen = ++sv->next_gen;
        mcload_inbuf_init(&c->in, 64 * 1024);
        sv->conns[fd] = c;
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            mcload_die("epoll_ctl");
    }
}

int
mcload_server_run(struct opts *o)
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
        mcload_die("socket");
    setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        mcload_fatal("--server listens on an IPv4 address (--host)");
    if (bind(sv.lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
        mcload_die("bind");
    if (listen(sv.lfd, 4096) != 0)
        mcload_die("listen");
    sv.epfd = epoll_create1(EPOLL_CLOEXEC);
    sv.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sv.epfd < 0 || sv.tfd < 0)
        mcload_die("epoll/timerfd");
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
            mcload_die("epoll_wait");
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
                    mcload_die("read timerfd");
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
