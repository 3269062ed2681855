/*
 * tests/unit/test_proxy_conn.c: proxy/conn.c over socketpairs and loopback:
 * write-first sending, a partial write and its queued rest (write interest
 * only while something is queued), the low watermark, reading to EOF, a
 * write error, the write timeout (and that reads do not hold it off),
 * pausing and resuming reading (lazily: the interest goes only when the
 * socket is readable while paused), reads straight into a large input's
 * tail, a writev at once with the rest queued after it, a message moved
 * from one connection's input to another's socket and output and the
 * memory count that follows it (no evbuffer callback), reads handled in
 * place in the loop's buffer, reading again
 * without a read, free from inside a callback, connects (by name and
 * address, refused), the write batch (writes that wait for the end of the
 * loop's turn while other callbacks are active, a stored reply held with no
 * buffer, their order, a free while held), and the bytes a connection costs
 * beside a libevent bufferevent. Owns nothing beyond the test.
 */
#include "cache/value.h"
#include "proxy/conn.h"
#include "proxy/io.h"
#include "tap.h"

#include <arpa/inet.h>
#include <bson/bson.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct seen {
    int reads;
    int writes;
    int events;
    short what;
    int err;
    size_t in_len;
    size_t out_len_at_write;
    bool free_in_read;
    bool free_in_event;
    bool in_call; /* set while the test is inside a proxy_conn_* call */
    bool event_in_call;
};

static void
on_read(struct proxy_conn *conn, void *arg)
{
    struct seen *s = arg;

    s->reads++;
    s->in_len = evbuffer_get_length(proxy_conn_input(conn));
    if (s->free_in_read) {
        proxy_conn_free(conn);
        /* the struct must still be valid until we return (ASan checks) */
    }
}

static void
on_write(struct proxy_conn *conn, void *arg)
{
    struct seen *s = arg;

    s->writes++;
    s->out_len_at_write = evbuffer_get_length(proxy_conn_output(conn));
}

static void
on_event(struct proxy_conn *conn, short what, void *arg)
{
    struct seen *s = arg;

    s->events++;
    s->what = what;
    s->err = errno;
    s->event_in_call = s->in_call;
    if (s->free_in_event)
        proxy_conn_free(conn);
}

static struct proxy_conn *
make(struct event_base *base, struct proxy_io_loop *loop, int fd, struct seen *s)
{
    struct proxy_conn *conn;

    evutil_make_socket_nonblocking(fd);
    conn = proxy_conn_new(base, loop, fd);
    proxy_conn_setcb(conn, on_read, on_write, on_event, s);
    return conn;
}

/* Runs the loop until cond or 2,000 turns (each at most 10 ms). */
#define RUN_UNTIL(base, cond)                                                                      \
    do {                                                                                           \
        struct timeval tenms_ = {0, 10000};                                                        \
        for (int turn_ = 0; turn_ < 2000 && !(cond); turn_++) {                                    \
            event_base_loopexit(base, &tenms_);                                                    \
            event_base_loop(base, EVLOOP_ONCE);                                                    \
        }                                                                                          \
    } while (0)

static void
pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
}

static void
test_write_first(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();
    char got[16] = {0};

    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_read_enable(conn, true);
    proxy_conn_write_enable(conn, true);
    is_int(proxy_conn_interest(conn), EV_READ, "idle: registered for reading only");
    evbuffer_add(data, "hello", 5);
    proxy_conn_send(conn, data);
    is_int((long long)evbuffer_get_length(data), 0, "send empties the caller's buffer");
    is_int((long long)evbuffer_get_length(proxy_conn_output(conn)), 0,
           "write first: nothing queued");
    is_int(proxy_conn_interest(conn), EV_READ, "write first: no write interest registered");
    evutil_make_socket_nonblocking(sv[1]);
    ok(read(sv[1], got, sizeof got) == 5 && memcmp(got, "hello", 5) == 0,
       "write first: the bytes are on the socket before the loop runs");
    is_int(s.writes, 0, "write first: no write callback");
    proxy_conn_free(conn);
    close(sv[1]);
    evbuffer_free(data);
}

static void
test_partial_write(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    int small = 4096;
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();
    size_t total = 1 << 20, got = 0;
    uint8_t *bytes = bson_malloc(total);
    uint8_t *back = bson_malloc(total);
    size_t queued;

    for (size_t i = 0; i < total; i++)
        bytes[i] = (uint8_t)(i * 7 + 3);
    pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_write_enable(conn, true);
    proxy_conn_set_write_low(conn, 0);
    evbuffer_add(data, bytes, total);
    proxy_conn_send(conn, data);
    queued = evbuffer_get_length(proxy_conn_output(conn));
    ok(queued > 0 && queued < total, "partial write: part written (%zu of %zu queued)", queued,
       total);
    is_int(proxy_conn_interest(conn), EV_WRITE, "partial write: write interest registered");
    evutil_make_socket_nonblocking(sv[1]);
    for (int turn = 0; turn < 100000 && got < total; turn++) {
        ssize_t n = read(sv[1], back + got, total - got);

        if (n > 0)
            got += (size_t)n;
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    RUN_UNTIL(base, s.writes > 0);
    is_int((long long)got, (long long)total, "partial write: every byte arrived");
    ok(memcmp(bytes, back, total) == 0, "partial write: in order");
    is_int(s.writes, 1, "write callback once the queue emptied");
    is_int(proxy_conn_interest(conn), 0, "empty queue: write interest dropped");
    proxy_conn_free(conn);
    close(sv[1]);
    evbuffer_free(data);
    bson_free(bytes);
    bson_free(back);
}

static void
test_watermark(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    int small = 4096;
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();
    size_t total = 512 * 1024, low = 256 * 1024;
    uint8_t *bytes = bson_malloc0(total);
    uint8_t sink[8192];

    pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_write_enable(conn, true);
    proxy_conn_set_write_low(conn, low);
    evbuffer_add(data, bytes, total);
    proxy_conn_send(conn, data);
    evutil_make_socket_nonblocking(sv[1]);
    for (int turn = 0; turn < 100000 && s.writes == 0; turn++) {
        (void)!read(sv[1], sink, sizeof sink);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    ok(s.writes >= 1 && s.out_len_at_write <= low && s.out_len_at_write > 0,
       "low watermark: write callback with %zu queued (<= %zu, > 0)", s.out_len_at_write, low);
    proxy_conn_free(conn);
    close(sv[1]);
    evbuffer_free(data);
    bson_free(bytes);
}

static void
test_read_eof(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;

    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_read_enable(conn, true);
    (void)!write(sv[1], "abcdef", 6);
    RUN_UNTIL(base, s.reads > 0);
    is_int((long long)s.in_len, 6, "read: the bytes are in the input");
    close(sv[1]);
    RUN_UNTIL(base, s.events > 0);
    is_int(s.what, PROXY_CONN_READING | PROXY_CONN_EOF, "EOF: READING|EOF");
    ok(!proxy_conn_reading(conn) && proxy_conn_interest(conn) == 0, "EOF: reading turned off");
    proxy_conn_free(conn);
}

static void
test_pause(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;

    pair(sv);
    conn = make(base, loop, sv[0], &s);
    (void)!write(sv[1], "xyz", 3);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    is_int(s.reads, 0, "reading disabled: nothing read");
    proxy_conn_read_enable(conn, true);
    RUN_UNTIL(base, s.reads > 0);
    is_int((long long)s.in_len, 3, "reading resumed: the waiting bytes are read");
    proxy_conn_read_enable(conn, false);
    is_int(proxy_conn_interest(conn), EV_READ, "paused: the read interest stays (no epoll_ctl)");
    proxy_conn_read_enable(conn, true);
    is_int(proxy_conn_interest(conn), EV_READ, "resumed before the peer sent: still registered");
    proxy_conn_read_enable(conn, false);
    (void)!write(sv[1], "more", 4);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    is_int(s.reads, 1, "paused again: nothing more read");
    is_int(proxy_conn_interest(conn), 0, "readable while paused: the read interest is dropped");
    for (int i = 0; i < 50; i++) /* a peer that floods while paused wakes nobody */
        (void)!write(sv[1], "flood", 5);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ok(s.reads == 1 && proxy_conn_interest(conn) == 0, "flood while paused: still not read");
    proxy_conn_read_again(conn);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ok(s.reads == 2 && s.in_len == 3, "read_again: read callback without a read");
    proxy_conn_free(conn);
    close(sv[1]);
}

/* A reader that asks to run again each time: once per loop turn, not in a loop. */
static int again_runs;

static void
on_read_again(struct proxy_conn *conn, void *arg)
{
    (void)arg;
    if (++again_runs < 5)
        proxy_conn_read_again(conn);
}

static void
test_read_again_fair(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;

    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_setcb(conn, on_read_again, NULL, NULL, &s);
    again_runs = 0;
    proxy_conn_read_again(conn);
    event_base_loop(base, EVLOOP_ONCE); /* one poll and what it made active */
    is_int(again_runs, 1, "read_again from the reader: once per loop turn");
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    is_int(again_runs, 5, "read_again: runs on at the following turns");
    proxy_conn_free(conn);
    close(sv[1]);
}

static void
test_write_error(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();

    pair(sv);
    close(sv[1]);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_write_enable(conn, true);
    evbuffer_add(data, "lost", 4);
    proxy_conn_send(conn, data);
    is_int(s.events, 0, "write error: not reported inside send");
    RUN_UNTIL(base, s.events > 0);
    is_int(s.what, PROXY_CONN_WRITING | PROXY_CONN_ERROR, "write error: WRITING|ERROR");
    is_int(s.err, EPIPE, "write error: errno EPIPE");
    proxy_conn_free(conn);
    evbuffer_free(data);
}

/*
 * A peer that reads nothing back (and, when peer_sends, keeps sending a
 * byte every 2 ms or more): WRITING|TIMEOUT. The write timeout measures
 * write progress only, so reading the peer's bytes does not hold it off (it
 * used to be the socket event's own timeout, restarted by every activation:
 * the sending peer held it off for over 700 turns).
 */
static void
test_timeout(struct event_base *base, struct proxy_io_loop *loop, bool peer_sends)
{
    int sv[2];
    int small = 4096;
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();
    uint8_t *bytes = bson_malloc0(256 * 1024);
    int turn;

    pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_write_enable(conn, true);
    proxy_conn_read_enable(conn, peer_sends);
    proxy_conn_set_write_timeout(conn, 30);
    evbuffer_add(data, bytes, 256 * 1024);
    proxy_conn_send(conn, data);
    if (!peer_sends) {
        RUN_UNTIL(base, s.events > 0);
        is_int(s.what, PROXY_CONN_WRITING | PROXY_CONN_TIMEOUT,
               "a peer that reads nothing: WRITING|TIMEOUT");
    } else {
        /* 300 turns: at least 600 ms, 20 times the timeout, all of it while
         * the peer is sending. */
        evutil_make_socket_nonblocking(sv[1]);
        for (turn = 0; turn < 300 && s.events == 0; turn++) {
            (void)!write(sv[1], "x", 1);
            usleep(2000);
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
        ok(s.events == 1 && s.what == (PROXY_CONN_WRITING | PROXY_CONN_TIMEOUT) && s.reads > 1,
           "a peer that sends but reads nothing: WRITING|TIMEOUT while it sends (%d reads, "
           "%d turns)",
           s.reads, turn);
    }
    proxy_conn_free(conn);
    close(sv[1]);
    evbuffer_free(data);
    bson_free(bytes);
}

/*
 * A large message arriving in pieces: once the input holds a few KB the
 * reads go straight into its tail; every byte arrives, in order.
 */
static void
test_direct_read(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;
    size_t total = 300 * 1000, sent = 0;
    uint8_t *bytes = bson_malloc(total), *got;
    bool same;

    for (size_t i = 0; i < total; i++)
        bytes[i] = (uint8_t)(i * 131 + i / 251);
    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_read_enable(conn, true);
    evutil_make_socket_nonblocking(sv[1]);
    for (int turn = 0; turn < 100000 && s.in_len < total; turn++) {
        size_t piece = 1000 + (size_t)(turn % 7) * 1500; /* pieces of 1,000 to 10,000 */

        if (sent < total) {
            ssize_t n = write(sv[1], bytes + sent, piece < total - sent ? piece : total - sent);

            if (n > 0)
                sent += (size_t)n;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    is_int((long long)s.in_len, (long long)total, "direct reads: every byte is in the input");
    got = evbuffer_pullup(proxy_conn_input(conn), -1);
    same = got && memcmp(got, bytes, total) == 0;
    ok(same, "direct reads: in order, unchanged (%d reads)", s.reads);
    proxy_conn_free(conn);
    close(sv[1]);
    bson_free(bytes);
}

/*
 * proxy_conn_write_now: one writev when nothing is queued; what the socket
 * does not take goes through proxy_conn_send after it, and nothing is
 * written at once while something is queued (it would overtake it).
 */
static void
test_write_now(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    int small = 4096;
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *rest = evbuffer_new(), *got = evbuffer_new();
    size_t total = 16 + 600 * 1000, done, again;
    uint8_t head[16], *body = bson_malloc(total - 16), sink[65536];
    struct iovec iov[2] = {{head, sizeof head}, {body, total - 16}};
    bool same;

    for (size_t i = 0; i < sizeof head; i++)
        head[i] = (uint8_t)(0xa0 + i);
    for (size_t i = 0; i < total - 16; i++)
        body[i] = (uint8_t)(i * 7 + i / 509);
    pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_write_enable(conn, true);
    done = proxy_conn_write_now(conn, iov, 2);
    ok(done > 0 && done < total, "write now: the socket took part (%zu of %zu)", done, total);
    if (done < sizeof head) {
        evbuffer_add(rest, head + done, sizeof head - done);
        evbuffer_add(rest, body, total - 16);
    } else {
        evbuffer_add(rest, body + (done - 16), total - done);
    }
    proxy_conn_send(conn, rest);
    evutil_make_socket_nonblocking(sv[1]);
    {
        /* The peer makes room, but the loop has not run: the rest is still queued. */
        ssize_t n = read(sv[1], sink, sizeof sink);

        if (n > 0)
            evbuffer_add(got, sink, (size_t)n);
    }
    again = proxy_conn_write_now(conn, iov, 2);
    is_int((long long)again, 0, "write now: nothing while the rest is queued");
    for (int turn = 0; turn < 100000 && evbuffer_get_length(got) < total; turn++) {
        ssize_t n = read(sv[1], sink, sizeof sink);

        if (n > 0)
            evbuffer_add(got, sink, (size_t)n);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    is_int((long long)evbuffer_get_length(got), (long long)total, "write now: every byte arrived");
    {
        uint8_t *all = evbuffer_pullup(got, -1);

        same = all && memcmp(all, head, sizeof head) == 0 &&
               memcmp(all + sizeof head, body, total - 16) == 0;
    }
    ok(same, "write now: in order, the queued rest after the written part");
    proxy_conn_free(conn);
    close(sv[1]);
    evbuffer_free(rest);
    evbuffer_free(got);
    bson_free(body);
}

static int fell_calls;

static void
on_fell(void *arg)
{
    (void)arg;
    fell_calls++;
}

/* The counted bytes equal what conn's two buffers hold. */
static size_t
held(struct proxy_conn *conn)
{
    return evbuffer_get_length(proxy_conn_input(conn)) +
           evbuffer_get_length(proxy_conn_output(conn));
}

/*
 * proxy_conn_send_from moves a message from one connection's input to
 * another's socket (the written part) and output (the rest), and the memory
 * count follows every read, move, write, drain and remove with no evbuffer
 * callback.
 */
static void
test_send_from(struct event_base *base, struct proxy_io_loop *loop)
{
    int a[2], b[2];
    int small = 4096;
    struct seen sa = {0}, sb = {0};
    struct proxy_conn *src, *dst;
    size_t total = 300 * 1000, sent = 0, counted = 0, queued;
    uint8_t *msg = bson_malloc(total), sink[65536], five[5];
    struct evbuffer *got = evbuffer_new();
    const struct proxy_conn_meter meter = {&counted, on_fell, NULL};
    const uint8_t *data;
    bool same;

    for (size_t i = 0; i < total; i++)
        msg[i] = (uint8_t)(i * 13 + i / 251);
    pair(a);
    pair(b);
    setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    src = make(base, loop, a[0], &sa);
    dst = make(base, loop, b[0], &sb);
    proxy_conn_write_enable(dst, true);
    proxy_conn_count_memory(src, &meter);
    proxy_conn_count_memory(dst, &meter);
    evutil_make_socket_nonblocking(a[1]);
    evutil_make_socket_nonblocking(b[1]);
    proxy_conn_read_enable(src, true);
    for (int turn = 0; turn < 100000 && evbuffer_get_length(proxy_conn_input(src)) < total;
         turn++) {
        ssize_t n = sent < total ? write(a[1], msg + sent, total - sent) : 0;

        if (n > 0)
            sent += (size_t)n;
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    is_int((long long)counted, (long long)total, "count: every byte read is counted (%zu)",
           counted);
    data = evbuffer_pullup(proxy_conn_input(src), (ev_ssize_t)total);
    fell_calls = 0;
    proxy_conn_send_from(dst, src, data, total);
    queued = evbuffer_get_length(proxy_conn_output(dst));
    is_int((long long)evbuffer_get_length(proxy_conn_input(src)), 0,
           "send from: the message left the source's input");
    ok(queued > 0 && queued < total, "send from: the socket took part, the rest queued (%zu of %zu)",
       queued, total);
    is_int(proxy_conn_interest(dst), EV_WRITE, "send from: write interest while queued");
    is_int((long long)counted, (long long)queued, "count: after the move, only what is queued");
    ok(fell_calls > 0, "count: the fall was reported");
    for (int turn = 0; turn < 100000 && evbuffer_get_length(got) < total; turn++) {
        ssize_t n = read(b[1], sink, sizeof sink);

        if (n > 0)
            evbuffer_add(got, sink, (size_t)n);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    {
        uint8_t *all = evbuffer_pullup(got, -1);

        same = evbuffer_get_length(got) == total && all && memcmp(all, msg, total) == 0;
    }
    ok(same, "send from: every byte arrived, in order");
    is_int((long long)counted, 0, "count: nothing once written");

    /* A small message goes out whole at once: nothing queued, no write interest. */
    ok(write(a[1], msg, 100) == 100, "a small message sent");
    RUN_UNTIL(base, evbuffer_get_length(proxy_conn_input(src)) >= 100);
    data = evbuffer_pullup(proxy_conn_input(src), 100);
    proxy_conn_send_from(dst, src, data, 100);
    ok(held(dst) == 0 && held(src) == 0 && counted == 0 && !(proxy_conn_interest(dst) & EV_WRITE),
       "send from: a small message written whole at once");
    ok(read(b[1], sink, sizeof sink) == 100 && memcmp(sink, msg, 100) == 0,
       "send from: its bytes on the socket");

    /* Drains and removes by the input's reader. */
    ok(write(a[1], msg, 40) == 40, "40 bytes sent");
    RUN_UNTIL(base, evbuffer_get_length(proxy_conn_input(src)) >= 40);
    proxy_conn_drain(src, 10);
    is_int((long long)counted, 30, "count: a drain leaves the total");
    proxy_conn_remove(src, five, sizeof five);
    ok(counted == 25 && memcmp(five, msg + 10, sizeof five) == 0,
       "count: a remove copies the front and leaves the total");
    proxy_conn_count_memory(src, NULL);
    is_int((long long)counted, 0, "count: stopping takes back what was counted");
    proxy_conn_drain(src, SIZE_MAX);
    ok(counted == 0 && held(src) == 0, "uncounted: a drain of everything moves nothing");
    proxy_conn_count_memory(dst, NULL);
    proxy_conn_free(src);
    proxy_conn_free(dst);
    close(a[1]);
    close(b[1]);
    evbuffer_free(got);
    bson_free(msg);
}

/* What the in-place reader does and saw. */
struct in_place {
    struct proxy_conn *dst; /* where it sends the first `send` bytes (proxy_conn_send_from) */
    size_t send;
    size_t drain;           /* then drops this many */
    int reads;
    size_t len_seen;        /* proxy_conn_input_length at entry */
    size_t evbuffer_seen;   /* the input evbuffer's length at entry */
    size_t contig_seen;     /* proxy_conn_peek's length at entry */
    uint8_t head[4];        /* proxy_conn_copyout of the first 4 bytes */
    uint8_t removed[3];     /* proxy_conn_remove of the 3 after the sent ones */
    bool pullup_same;       /* proxy_conn_pullup gave the peeked bytes */
};

static void
on_read_in_place(struct proxy_conn *conn, void *arg)
{
    struct in_place *p = arg;
    size_t contig;
    const uint8_t *front = proxy_conn_peek(conn, &contig);

    p->reads++;
    p->len_seen = proxy_conn_input_length(conn);
    p->evbuffer_seen = evbuffer_get_length(proxy_conn_input(conn));
    p->contig_seen = contig;
    proxy_conn_copyout(conn, p->head, sizeof p->head);
    p->pullup_same = proxy_conn_pullup(conn, contig) == front;
    if (p->dst)
        proxy_conn_send_from(p->dst, conn, front, p->send);
    if (p->drain) {
        proxy_conn_remove(conn, p->removed, sizeof p->removed);
        proxy_conn_drain(conn, p->drain - sizeof p->removed);
    }
}

/*
 * proxy_conn_read_in_place: read_cb sees a read's bytes in the loop's
 * buffer (no copy into the input), what it sends on leaves with no copy
 * when the socket takes it and as a copy when it does not (the loop's
 * buffer is read into again), what it leaves joins the input, and the
 * memory count follows.
 */
static void
test_read_in_place(struct event_base *base, struct proxy_io_loop *loop)
{
    int a[2], b[2], o[2];
    int small = 4096;
    struct seen sb = {0}, so = {0};
    struct in_place p = {0};
    struct proxy_conn *src, *dst, *other;
    size_t counted = 0, total = 60000, queued;
    const struct proxy_conn_meter meter = {&counted, on_fell, NULL};
    uint8_t *msg = bson_malloc(total), *noise = bson_malloc(total), sink[65536];
    struct evbuffer *got = evbuffer_new();
    bool same;

    for (size_t i = 0; i < total; i++) {
        msg[i] = (uint8_t)(i * 29 + i / 97);
        noise[i] = (uint8_t)~msg[i];
    }
    pair(a);
    pair(b);
    pair(o);
    setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    evutil_make_socket_nonblocking(a[0]);
    src = proxy_conn_new(base, loop, a[0]);
    proxy_conn_setcb(src, on_read_in_place, NULL, NULL, &p);
    proxy_conn_read_in_place(src);
    dst = make(base, loop, b[0], &sb);
    other = make(base, loop, o[0], &so);
    proxy_conn_count_memory(src, &meter);
    proxy_conn_count_memory(dst, &meter);
    proxy_conn_write_enable(dst, true);
    proxy_conn_read_enable(src, true);
    proxy_conn_read_enable(other, true);

    /* 100 bytes: 40 sent on (written whole), 10 dropped (3 of them removed), 50 left. */
    p.dst = dst;
    p.send = 40;
    p.drain = 10;
    ok(write(a[1], msg, 100) == 100, "in place: 100 bytes sent");
    RUN_UNTIL(base, p.reads > 0);
    ok(p.reads == 1 && p.len_seen == 100 && p.evbuffer_seen == 0 && p.contig_seen == 100,
       "in place: read_cb sees the read's 100 bytes, none of them in the input evbuffer "
       "(%zu, %zu, %zu)", p.len_seen, p.evbuffer_seen, p.contig_seen);
    ok(memcmp(p.head, msg, 4) == 0 && p.pullup_same, "in place: copyout and pullup read them");
    ok(memcmp(p.removed, msg + 40, 3) == 0, "in place: remove takes the bytes after those sent");
    evutil_make_socket_nonblocking(b[1]);
    ok(read(b[1], sink, sizeof sink) == 40 && memcmp(sink, msg, 40) == 0,
       "in place: the 40 sent are on the socket");
    is_int((long long)evbuffer_get_length(proxy_conn_input(src)), 50,
           "in place: the 50 left joined the input");
    ok(proxy_conn_input_length(src) == 50 &&
           memcmp(evbuffer_pullup(proxy_conn_input(src), -1), msg + 50, 50) == 0,
       "in place: they are the last 50, unchanged");
    is_int((long long)counted, 50, "in place: the count holds what is left");

    /* Input not empty: the next read is appended as before (not in place). */
    p.dst = NULL;
    p.drain = 0;
    ok(write(a[1], msg + 100, 10) == 10, "10 more bytes sent");
    RUN_UNTIL(base, p.reads > 1);
    ok(p.evbuffer_seen == 60 && p.len_seen == 60, "a read behind held bytes joins the input (%zu)",
       p.evbuffer_seen);
    proxy_conn_drain(src, SIZE_MAX);
    is_int((long long)counted, 0, "drained: nothing counted");

    /* A large message the socket takes only part of: the rest is copied, and
     * another connection's read into the loop's buffer does not change it. */
    p.dst = dst;
    p.send = total;
    p.drain = 0;
    {
        size_t sent = 0;

        while (sent < total) {
            ssize_t n = write(a[1], msg + sent, total - sent);

            if (n > 0)
                sent += (size_t)n;
        }
    }
    p.reads = 0;
    RUN_UNTIL(base, p.reads > 0);
    /* Whatever one read took was sent on; the rest of the message is read later. */
    queued = evbuffer_get_length(proxy_conn_output(dst));
    ok(p.len_seen > 0 && queued > 0 && queued < p.len_seen,
       "in place: the socket took part of the %zu bytes read, %zu queued", p.len_seen, queued);
    proxy_conn_read_enable(src, false);
    ok(write(o[1], noise, 30000) == 30000, "another connection is sent other bytes");
    RUN_UNTIL(base, so.reads > 0);
    for (int turn = 0; turn < 100000 && evbuffer_get_length(got) < p.len_seen; turn++) {
        ssize_t n = read(b[1], sink, sizeof sink);

        if (n > 0)
            evbuffer_add(got, sink, (size_t)n);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    {
        uint8_t *all = evbuffer_pullup(got, -1);

        same = evbuffer_get_length(got) == p.len_seen && all && memcmp(all, msg, p.len_seen) == 0;
    }
    ok(same, "in place: every byte sent on arrived unchanged after the loop's buffer was reused");
    is_int((long long)counted, 0, "in place: nothing counted once written");
    proxy_conn_count_memory(src, NULL);
    proxy_conn_count_memory(dst, NULL);
    proxy_conn_free(src);
    proxy_conn_free(dst);
    proxy_conn_free(other);
    close(a[1]);
    close(b[1]);
    close(o[1]);
    evbuffer_free(got);
    bson_free(msg);
    bson_free(noise);
}

static void
test_free_inside(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2];
    struct seen s = {0};
    struct proxy_conn *conn;
    char c;

    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_read_enable(conn, true);
    s.free_in_read = true;
    (void)!write(sv[1], "q", 1);
    RUN_UNTIL(base, s.reads > 0);
    is_int(s.reads, 1, "free inside read_cb: the callback ran once");
    is_int((int)read(sv[1], &c, 1), 0, "free inside read_cb: the socket is closed");
    close(sv[1]);

    /* and from inside event_cb at EOF */
    memset(&s, 0, sizeof s);
    pair(sv);
    conn = make(base, loop, sv[0], &s);
    proxy_conn_read_enable(conn, true);
    s.free_in_event = true;
    close(sv[1]);
    RUN_UNTIL(base, s.events > 0);
    is_int(s.events, 1, "free inside event_cb: reported once, freed after it");
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    is_int(s.events, 1, "free inside event_cb: nothing after");
}

static void
test_connect(struct event_base *base, struct proxy_io_loop *loop)
{
    struct evdns_base *dns = evdns_base_new(base, 0);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int afd;
    struct seen s = {0};
    struct proxy_conn *conn;
    struct evbuffer *data = evbuffer_new();
    char got[8] = {0};
    int port;

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, (struct sockaddr *)&sin, sizeof sin);
    listen(lfd, 4);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    port = ntohs(sin.sin_port);

    conn = proxy_conn_new(base, loop, -1);
    proxy_conn_setcb(conn, on_read, on_write, on_event, &s);
    proxy_conn_write_enable(conn, true);
    s.in_call = true;
    is_int(proxy_conn_connect_hostname(conn, dns, "127.0.0.1", port), 0,
           "connect by name: started");
    evbuffer_add(data, "early", 5);
    proxy_conn_send(conn, data); /* queued until connected */
    s.in_call = false;
    is_int((long long)evbuffer_get_length(proxy_conn_output(conn)), 5,
           "connecting: what is sent is queued");
    RUN_UNTIL(base, s.events > 0);
    is_int(s.what, PROXY_CONN_CONNECTED, "connect: CONNECTED");
    ok(!s.event_in_call, "connect: reported from the loop, not inside the call");
    afd = accept(lfd, NULL, NULL);
    RUN_UNTIL(base, evbuffer_get_length(proxy_conn_output(conn)) == 0);
    ok(read(afd, got, 5) == 5 && memcmp(got, "early", 5) == 0,
       "connect: the queued bytes went out once connected");
    proxy_conn_free(conn);
    close(afd);

    /* refused: the listener is gone */
    close(lfd);
    memset(&s, 0, sizeof s);
    conn = proxy_conn_new(base, loop, -1);
    proxy_conn_setcb(conn, on_read, on_write, on_event, &s);
    proxy_conn_read_enable(conn, true);
    proxy_conn_write_enable(conn, true);
    s.in_call = true;
    is_int(proxy_conn_connect(conn, (struct sockaddr *)&sin, sizeof sin), 0,
           "refused connect: started");
    s.in_call = false;
    RUN_UNTIL(base, s.events > 0);
    ok(s.what == PROXY_CONN_ERROR && s.err == ECONNREFUSED && !s.event_in_call,
       "refused connect: ERROR with ECONNREFUSED from the loop (what %d errno %d)", s.what, s.err);
    is_int(proxy_conn_dns_error(conn), 0, "refused connect: no resolver error");
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ok(s.events == 1 && proxy_conn_interest(conn) == 0,
       "refused connect: reported once, the socket no longer watched (%d events)", s.events);
    proxy_conn_free(conn);

    /* freed while connecting: nothing is reported */
    memset(&s, 0, sizeof s);
    conn = proxy_conn_new(base, loop, -1);
    proxy_conn_setcb(conn, on_read, on_write, on_event, &s);
    proxy_conn_connect_hostname(conn, dns, "127.0.0.1", port);
    proxy_conn_free(conn);
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    is_int(s.events, 0, "freed while connecting: no callback");

    evdns_base_free(dns, 0);
    evbuffer_free(data);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Heap bytes per connection (sizeof + allocations), ours against a bufferevent. */
static void
test_bytes(struct event_base *base, struct proxy_io_loop *loop)
{
#ifdef UNDER_ASAN
    (void)base;
    (void)loop;
    ok(true, "# SKIP heap accounting under ASan");
#else
    enum { N = 500 };
    static int fds[N][2];
    static struct proxy_conn *conns[N];
    static struct bufferevent *bevs[N];
    struct seen s = {0};
    size_t before, ours, theirs;

    for (int i = 0; i < N; i++)
        pair(fds[i]);
    before = mallinfo2().uordblks;
    for (int i = 0; i < N; i++) {
        conns[i] = make(base, loop, fds[i][0], &s);
        proxy_conn_read_enable(conns[i], true);
        proxy_conn_write_enable(conns[i], true);
    }
    ours = (mallinfo2().uordblks - before) / N;
    for (int i = 0; i < N; i++)
        proxy_conn_free(conns[i]); /* closes fds[i][0] */
    for (int i = 0; i < N; i++) {
        close(fds[i][1]);
        pair(fds[i]);
    }
    before = mallinfo2().uordblks;
    for (int i = 0; i < N; i++) {
        bevs[i] = bufferevent_socket_new(base, fds[i][0], BEV_OPT_CLOSE_ON_FREE);
        bufferevent_enable(bevs[i], EV_READ | EV_WRITE);
    }
    theirs = (mallinfo2().uordblks - before) / N;
    for (int i = 0; i < N; i++) {
        bufferevent_free(bevs[i]);
        close(fds[i][1]);
    }
    diag("heap bytes per idle connection: proxy_conn %zu, bufferevent %zu", ours, theirs);
    ok(ours <= 640 && ours + 300 <= theirs,
       "a connection costs at most 640 heap bytes, 300 fewer than a bufferevent (%zu vs %zu)",
       ours, theirs);
#endif
}


/* ---- the write batch ---- */

/* Sends value's stored reply on conn with a header of its own (requestID byte `stamp`), as a hit is. */
static void
send_stamped(struct proxy_conn *conn, struct cache_value *value, uint8_t stamp, size_t *shared)
{
    size_t len;
    uint8_t head[16];

    memcpy(head, cache_value_data(value, &len), sizeof head);
    head[4] = stamp;
    proxy_conn_send_value(conn, head, value, shared);
}

struct batch {
    struct proxy_conn *a, *b;
    int peer_a, peer_b;
    struct cache_value *value;
    size_t shared;
    int step;
    /* what the callbacks saw */
    ssize_t peer_a_inside, peer_b_inside, peer_a_behind;
    size_t held_len, b_out_len;
};

/* Bytes readable on fd now (0 when none): read and kept in buf. */
static ssize_t
take(int fd, uint8_t *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);

    return n < 0 ? 0 : n;
}

/* The first callback of a turn: sends on a and b (what step says). */
static void
batch_first(evutil_socket_t fd, short what, void *arg)
{
    struct batch *t = arg;
    struct evbuffer *buf = evbuffer_new();
    uint8_t got[512];

    (void)fd;
    (void)what;
    send_stamped(t->a, t->value, 0x77, &t->shared);
    t->held_len = proxy_conn_output_length(t->a);
    if (t->step == 1) {
        evbuffer_add(buf, "tail", 4); /* behind the held reply, on the same connection */
        proxy_conn_send(t->a, buf);
    } else if (t->step == 2) {
        proxy_conn_free(t->a); /* while held: its reference goes */
        t->a = NULL;
    }
    evbuffer_add(buf, "bee", 3);
    proxy_conn_send(t->b, buf);
    t->b_out_len = evbuffer_get_length(proxy_conn_output(t->b));
    t->peer_a_inside = take(t->peer_a, got, sizeof got);
    t->peer_b_inside = take(t->peer_b, got, sizeof got);
    evbuffer_free(buf);
}

/* A callback active behind the first: the flush has not run yet. */
static void
batch_behind(evutil_socket_t fd, short what, void *arg)
{
    struct batch *t = arg;
    uint8_t got[512];

    (void)fd;
    (void)what;
    t->peer_a_behind = take(t->peer_a, got, sizeof got);
}

/* Many connections in one turn: the batch's slots grow past their first 64. */
#define BATCH_MANY 150

struct many {
    struct proxy_conn *conn[BATCH_MANY];
    struct cache_value *value;
    size_t shared;
};

static void
many_first(evutil_socket_t fd, short what, void *arg)
{
    struct many *m = arg;

    (void)fd;
    (void)what;
    for (int i = 0; i < BATCH_MANY; i++)
        send_stamped(m->conn[i], m->value, (uint8_t)i, &m->shared); /* each its own requestID */
    proxy_conn_free(m->conn[7]); /* one leaves while listed */
    m->conn[7] = NULL;
}

/* A callback that does nothing: something else active in the turn. */
static void
nothing(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void
test_batch_many(struct event_base *base, struct proxy_io_loop *loop, struct cache_value *value)
{
    struct many m = {{NULL}, value, 0};
    int peer[BATCH_MANY], right = 0;
    struct seen s = {0};
    struct event *first = event_new(base, -1, 0, many_first, &m);
    struct event *other = event_new(base, -1, 0, nothing, NULL);
    uint8_t got[512];
    size_t len;

    (void)cache_value_data(value, &len);
    for (int i = 0; i < BATCH_MANY; i++) {
        int sv[2];

        pair(sv);
        m.conn[i] = make(base, loop, sv[0], &s);
        proxy_conn_batch_writes(m.conn[i]);
        proxy_conn_write_enable(m.conn[i], true);
        peer[i] = sv[1];
    }
    event_active(first, 0, 0);
    event_active(other, 0, 0);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ok(loop->cap_flush >= BATCH_MANY, "batch: the slots grew for %d connections", BATCH_MANY);
    for (int i = 0; i < BATCH_MANY; i++) {
        ssize_t n = take(peer[i], got, sizeof got);

        if (i == 7 ? n == 0 : (n == (ssize_t)len && got[4] == (uint8_t)i))
            right++;
        proxy_conn_free(m.conn[i]);
        close(peer[i]);
    }
    is_int(right, BATCH_MANY, "batch: each connection got its own reply, the freed one none");
    is_int(s.writes, BATCH_MANY - 1, "batch: write_cb once for each written");
    event_free(first);
    event_free(other);
}

/* A held reply the socket takes only part of. */
struct full {
    struct proxy_conn *conn;
    struct cache_value *value;
    size_t shared;
};

static void
full_send(evutil_socket_t fd, short what, void *arg)
{
    struct full *f = arg;

    (void)fd;
    (void)what;
    send_stamped(f->conn, f->value, 0x55, &f->shared);
}

static void
test_batch_full(struct event_base *base, struct proxy_io_loop *loop)
{
    int sv[2], sndbuf = 4096;
    struct seen s = {0};
    struct full f = {0};
    struct event *send_ev = event_new(base, -1, 0, full_send, &f);
    struct event *other = event_new(base, -1, 0, nothing, NULL);
    struct evbuffer *buf = evbuffer_new();
    size_t size = 512 * 1024, have = 0;
    uint8_t *reply = bson_malloc(size), *got = bson_malloc(size + 16);

    for (size_t i = 0; i < size; i++)
        reply[i] = (uint8_t)(i * 7);
    memcpy(reply, (uint8_t[]){0, 0, 8, 0}, 4); /* 512 KiB */
    f.value = cache_value_new(reply, size, 2, NULL);
    pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    f.conn = make(base, loop, sv[0], &s);
    proxy_conn_batch_writes(f.conn);
    proxy_conn_write_enable(f.conn, true);
    event_active(send_ev, 0, 0);
    event_active(other, 0, 0);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ok(proxy_conn_output_length(f.conn) > 0 && proxy_conn_output_length(f.conn) < size,
       "batch: the socket took part of the held reply; the rest is queued");
    is_int(proxy_conn_interest(f.conn) & EV_WRITE, EV_WRITE, "batch: and waits for write interest");
    evbuffer_add(buf, "after", 5);
    proxy_conn_send(f.conn, buf); /* behind the rest */
    RUN_UNTIL(base, (have += (size_t)take(sv[1], got + have, size + 16 - have)) >= size + 5);
    is_int((long long)have, (long long)size + 5, "batch: the whole reply, then the send behind it");
    ok(got[4] == 0x55 && memcmp(got + 16, reply + 16, size - 16) == 0 &&
           memcmp(got + size, "after", 5) == 0,
       "batch: its new header, its bytes and the send behind it, in order");
    is_int((long long)f.shared, 0, "batch: no referenced bytes are left counted");
    proxy_conn_free(f.conn);
    close(sv[1]);
    cache_value_unref(f.value);
    evbuffer_free(buf);
    event_free(send_ev);
    event_free(other);
    bson_free(reply);
    bson_free(got);
}

static void
test_batch(struct event_base *base, struct proxy_io_loop *loop)
{
    int sa[2], sb[2];
    struct seen s = {0}, sbs = {0};
    struct batch t = {0};
    struct event *first, *behind;
    uint8_t reply[200], got[512];
    size_t len;
    ssize_t n;

    for (size_t i = 0; i < sizeof reply; i++)
        reply[i] = (uint8_t)i;
    memcpy(reply, (uint8_t[]){200, 0, 0, 0}, 4);
    t.value = cache_value_new(reply, sizeof reply, 1, NULL);
    first = event_new(base, -1, 0, batch_first, &t);
    behind = event_new(base, -1, 0, batch_behind, &t);
    for (int step = 0; step < 3; step++) {
        pair(sa);
        pair(sb);
        t.a = make(base, loop, sa[0], &s);
        t.b = make(base, loop, sb[0], &sbs);
        proxy_conn_batch_writes(t.a);
        proxy_conn_batch_writes(t.b);
        proxy_conn_write_enable(t.a, true);
        proxy_conn_write_enable(t.b, true);
        t.peer_a = sa[1];
        t.peer_b = sb[1];
        t.step = step;
        s.writes = 0;
        event_active(first, 0, 0);
        event_active(behind, 0, 0);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        is_int(t.peer_a_inside + t.peer_b_inside, 0,
               "batch: nothing is written while another callback is active");
        is_int(t.peer_a_behind, 0, "batch: nor while the callbacks active behind it run");
        is_int((long long)t.held_len, sizeof reply, "batch: the held reply is owed (output length)");
        is_int((long long)t.b_out_len, 3, "batch: a plain send waits in the output");
        n = take(sa[1], got, sizeof got);
        if (step == 0) {
            is_int(n, sizeof reply, "batch: the flush wrote the held reply");
            ok(got[4] == 0x77 && memcmp(got + 5, reply + 5, sizeof reply - 5) == 0,
               "batch: its new header, then the stored bytes");
            is_int(s.writes, 1, "batch: write_cb ran once it was written");
            is_int((long long)proxy_conn_output_length(t.a), 0, "batch: nothing is owed after it");
        } else if (step == 1) {
            is_int(n, sizeof reply + 4, "batch: the held reply and the send behind it");
            ok(got[4] == 0x77 && memcmp(got + sizeof reply, "tail", 4) == 0,
               "batch: in the order they were sent");
            is_int((long long)t.shared, 0, "batch: no referenced bytes are left counted");
        } else {
            is_int(n, 0, "batch: a connection freed while holding writes nothing");
        }
        is_int(take(sb[1], got, sizeof got), 3, "batch: the other connection's send went too");
        proxy_conn_free(t.a);
        proxy_conn_free(t.b);
        close(sa[1]);
        close(sb[1]);
    }

    /* Alone in its turn (nothing else active), a send goes at once. */
    pair(sa);
    t.a = make(base, loop, sa[0], &s);
    proxy_conn_batch_writes(t.a);
    proxy_conn_write_enable(t.a, true);
    {
        const uint8_t *data = cache_value_data(t.value, &len);

        proxy_conn_send_value(t.a, data, t.value, &t.shared);
    }
    is_int(take(sa[1], got, sizeof got), sizeof reply, "batch: alone, written at once");
    is_int((long long)proxy_conn_output_length(t.a), 0, "batch: alone, nothing held");
    proxy_conn_free(t.a);
    close(sa[1]);
    test_batch_many(base, loop, t.value);
    test_batch_full(base, loop);
    event_free(first);
    event_free(behind);
    cache_value_unref(t.value); /* the last reference: a leak or a double free shows under ASan */
}

int
main(void)
{
    struct event_base *base = event_base_new();
    /* Zeroed: proxy_io_loop_free frees every field that is set (the compressors' too). */
    struct proxy_io_loop *loop = bson_malloc0(sizeof *loop);

    signal(SIGPIPE, SIG_IGN);
    loop->scratch = evbuffer_new();
    test_write_first(base, loop);
    test_partial_write(base, loop);
    test_watermark(base, loop);
    test_read_eof(base, loop);
    test_pause(base, loop);
    test_read_again_fair(base, loop);
    test_write_error(base, loop);
    test_timeout(base, loop, false);
    test_timeout(base, loop, true);
    test_direct_read(base, loop);
    test_write_now(base, loop);
    test_send_from(base, loop);
    test_read_in_place(base, loop);
    test_free_inside(base, loop);
    test_connect(base, loop);
    test_batch(base, loop);
    test_bytes(base, loop);
    proxy_io_loop_free(loop);
    event_base_free(base);
    return done_testing();
}
