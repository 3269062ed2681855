/*
 * tests/unit/test_advice_guard.c: owns the tests of advice/guard.c: what the
 * guard stream hands libmongoc (a valid OP_MSG or OP_REPLY, byte for byte,
 * in the pieces asked for; two messages back to back), what it refuses
 * (section kind 9, document sequences, checksum and moreToCome flags,
 * OP_COMPRESSED, bad lengths, an OP_REPLY whose count is wrong, nesting
 * over 200) and that a refused stream stays dead; reads over a real TCP
 * connection on 127.0.0.1 (libmongoc's socket stream): the message in
 * pieces, non-blocking reads that ask to be retried, the timeout, the peer
 * closing mid-message. It does not test libmongoc's use of the stream
 * (tests/integration/test_advisor.sh does, against servers).
 */
#include "config.h"

#include "advice/guard.h"
#include "conf/clock.h"
#include "tests/unit/tap.h"
#include "wire/crc32c.h"
#include "wire/frame.h"
#include "wire/msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A message under construction. */
struct buf {
    uint8_t b[4096];
    size_t n;
};

static void
put(struct buf *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void
put_i32(struct buf *m, int32_t v)
{
    uint8_t x[4];

    wire_frame_write_i32(x, v);
    put(m, x, 4);
}

static void
put_doc(struct buf *m, const bson_t *doc)
{
    put(m, bson_get_data(doc), doc->len);
}

static void
set_len(struct buf *m)
{
    wire_frame_write_i32(m->b, (int32_t)m->n);
}

/* An OP_MSG header and flags; sections follow. */
static void
msg_start(struct buf *m, uint32_t flags)
{
    m->n = 0;
    put_i32(m, 0);
    put_i32(m, 7);
    put_i32(m, 1);
    put_i32(m, WIRE_OP_MSG);
    put_i32(m, (int32_t)flags);
}

/* {ok: 1} in a kind-0 (or other) section. */
static void
msg_ok(struct buf *m, uint8_t kind)
{
    bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(1));

    msg_start(m, 0);
    put(m, &kind, 1);
    put_doc(m, doc);
    set_len(m);
    bson_destroy(doc);
}

static void
reply_ok(struct buf *m, int32_t n_returned)
{
    bson_t *doc = BCON_NEW("ismaster", BCON_BOOL(true), "ok", BCON_DOUBLE(1));

    m->n = 0;
    put_i32(m, 0);
    put_i32(m, 7);
    put_i32(m, 1);
    put_i32(m, WIRE_OP_REPLY);
    put_i32(m, 0);
    put_i32(m, 0);
    put_i32(m, 0);
    put_i32(m, 0);
    put_i32(m, n_returned);
    put_doc(m, doc);
    set_len(m);
    bson_destroy(doc);
}

/* A stream over a pipe holding bytes (then EOF). */
static mongoc_stream_t *
pipe_stream(const uint8_t *bytes, size_t n, struct advice_guard *g)
{
    int fds[2];

    if (pipe(fds) != 0 || write(fds[1], bytes, n) != (ssize_t)n)
        return NULL;
    close(fds[1]);
    return advice_guard_stream_new(mongoc_stream_file_new(fds[0]), g);
}

/* Reads one message the way libmongoc does (its length, then the rest) into out. */
static ssize_t
read_message(mongoc_stream_t *s, uint8_t *out, size_t cap, int32_t timeout)
{
    ssize_t n = mongoc_stream_read(s, out, 4, 4, timeout);
    int32_t len;

    if (n != 4)
        return n;
    len = wire_frame_read_i32(out);
    if (len < 16 || (size_t)len > cap)
        return -2;
    n = mongoc_stream_read(s, out + 4, (size_t)len - 4, (size_t)len - 4, timeout);
    return n < 0 ? n : n + 4;
}

static void
test_passes(void)
{
    struct advice_guard g = {0};
    struct buf a, b, two;
    uint8_t out[8192];
    mongoc_stream_t *s;
    ssize_t n;

    msg_ok(&a, 0);
    reply_ok(&b, 1);
    two.n = 0;
    put(&two, a.b, a.n);
    put(&two, b.b, b.n);
    s = pipe_stream(two.b, two.n, &g);
    n = read_message(s, out, sizeof out, 1000);
    ok(n == (ssize_t)a.n && memcmp(out, a.b, a.n) == 0, "an OP_MSG passes byte for byte");
    n = read_message(s, out, sizeof out, 1000);
    ok(n == (ssize_t)b.n && memcmp(out, b.b, b.n) == 0, "then an OP_REPLY right behind it");
    is_int(mongoc_stream_read(s, out, 4, 4, 1000), 0, "then the end of the stream");
    is_int((long long)g.junk, 0, "nothing refused");
    mongoc_stream_destroy(s);

    /* a read asking for more than one message gets both, and no more */
    s = pipe_stream(two.b, two.n, &g);
    n = mongoc_stream_read(s, out, sizeof out, two.n, 1000);
    ok(n == (ssize_t)two.n && memcmp(out, two.b, two.n) == 0,
       "one read of both messages gets both");
    mongoc_stream_destroy(s);
}

/* Feeds m to a guard; true when the guard refused it (and stayed dead). */
static bool
refused(const struct buf *m, const char *why_part)
{
    struct advice_guard g = {0};
    uint8_t out[8192];
    mongoc_stream_t *s = pipe_stream(m->b, m->n, &g);
    ssize_t n = read_message(s, out, sizeof out, 1000);
    ssize_t again = mongoc_stream_read(s, out, 4, 4, 1000);
    bool dead = mongoc_stream_check_closed(s);

    mongoc_stream_destroy(s);
    if (n >= 0 || again >= 0 || !dead || g.junk != 1 || strstr(g.reason, why_part) == NULL) {
        diag("read %zd, again %zd, dead %d, junk %llu, reason \"%s\"", n, again, dead,
             (unsigned long long)g.junk, g.reason);
        return false;
    }
    return true;
}

static void
test_refuses(void)
{
    struct buf m;
    bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(1));
    bson_t *deep = bson_new();
    uint8_t kind1 = 1, kind0 = 0;

    msg_ok(&m, 9);
    ok(refused(&m, "Unknown section kind"), "section kind 9 refused");

    /* body, then a kind-1 sequence */
    msg_start(&m, 0);
    put(&m, &kind0, 1);
    put_doc(&m, doc);
    put(&m, &kind1, 1);
    put_i32(&m, (int32_t)(4 + 2 + doc->len));
    put(&m, "a", 2);
    put_doc(&m, doc);
    set_len(&m);
    ok(refused(&m, "document sequence"), "a reply with a document sequence refused");

    /* checksumPresent with the right checksum */
    msg_start(&m, WIRE_MSG_CHECKSUM_PRESENT);
    put(&m, &kind0, 1);
    put_doc(&m, doc);
    m.n += 4;
    set_len(&m);
    wire_frame_write_i32(m.b + m.n - 4, (int32_t)wire_crc32c(m.b, m.n - 4));
    ok(refused(&m, "flags 0x1"), "a checksummed reply refused (libmongoc would misread it)");

    msg_start(&m, WIRE_MSG_MORE_TO_COME);
    put(&m, &kind0, 1);
    put_doc(&m, doc);
    set_len(&m);
    ok(refused(&m, "flags 0x2"), "moreToCome refused");

    msg_ok(&m, 0);
    wire_frame_write_i32(m.b + 12, WIRE_OP_COMPRESSED);
    ok(refused(&m, "opcode 2012"), "OP_COMPRESSED refused");
    wire_frame_write_i32(m.b + 12, 2004);
    ok(refused(&m, "opcode 2004"), "an OP_QUERY from the server refused");

    msg_ok(&m, 0);
    wire_frame_write_i32(m.b, 15);
    ok(refused(&m, "header"), "a length under 16 refused");
    wire_frame_write_i32(m.b, WIRE_MAX_MESSAGE_LEN + 1);
    ok(refused(&m, "header"), "a length over 48,000,000 refused before any allocation");

    msg_ok(&m, 0);
    m.n -= 1; /* the body's last byte is the message's last byte: cut the length by one */
    set_len(&m);
    ok(refused(&m, "malformed OP_MSG"), "a body running past the message refused");

    reply_ok(&m, 0);
    ok(refused(&m, "malformed OP_REPLY"), "an OP_REPLY with documents it does not count refused");
    reply_ok(&m, 3);
    ok(refused(&m, "numberReturned 3"), "an OP_REPLY announcing 3 documents, holding 1, refused");

    /* {a: {a: ... 201 deep}} */
    {
        bson_t *levels[202];

        levels[0] = deep;
        for (int i = 1; i < 202; i++) {
            levels[i] = bson_new();
        }
        for (int i = 201; i > 0; i--)
            BSON_APPEND_DOCUMENT(levels[i - 1], "a", levels[i]);
        msg_start(&m, 0);
        put(&m, &kind0, 1);
        put_doc(&m, deep);
        set_len(&m);
        ok(refused(&m, "deeper than 200"), "a body nested deeper than 200 refused");
        for (int i = 1; i < 202; i++)
            bson_destroy(levels[i]);
    }
    bson_destroy(deep);
    bson_destroy(doc);
}

/* ---- over TCP ------------------------------------------------------------ */

/* A connected pair: *server (a plain fd) and a guard over libmongoc's socket stream. */
static mongoc_stream_t *
tcp_pair(int *server, struct advice_guard *g)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    mongoc_socket_t *sock;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) != 0)
        return NULL;
    sock = mongoc_socket_new(AF_INET, SOCK_STREAM, 0);
    if (mongoc_socket_connect(sock, (struct sockaddr *)&sa, sizeof sa, -1) != 0) {
        mongoc_socket_destroy(sock);
        return NULL;
    }
    *server = accept(ls, NULL, NULL);
    close(ls);
    return advice_guard_stream_new(mongoc_stream_socket_new(sock), g);
}

static void
test_tcp(void)
{
    struct advice_guard g = {0};
    struct buf m;
    uint8_t out[8192];
    int server = -1;
    mongoc_stream_t *s = tcp_pair(&server, &g);
    ssize_t n;
    int64_t t0;

    if (!ok(s != NULL && server >= 0, "a TCP connection on 127.0.0.1"))
        return;
    msg_ok(&m, 0);

    /* non-blocking (libmongoc's monitoring): nothing yet, then part, then the rest */
    n = mongoc_stream_read(s, out, 4, 0, 0);
    ok(n <= 0 && mongoc_stream_should_retry(s), "nothing arrived: retry (%zd)", n);
    if (write(server, m.b, 10) != 10)
        diag("short write");
    usleep(20000);
    n = mongoc_stream_read(s, out, 4, 0, 0);
    ok(n <= 0 && mongoc_stream_should_retry(s),
       "10 bytes of the message: still retry, nothing handed over (%zd)", n);
    if (write(server, m.b + 10, m.n - 10) != (ssize_t)(m.n - 10))
        diag("short write");
    usleep(20000);
    n = mongoc_stream_read(s, out, 4, 0, 0);
    ok(n == 4 && memcmp(out, m.b, 4) == 0 && !mongoc_stream_should_retry(s),
       "the whole message: its length handed over");
    n = mongoc_stream_read(s, out + 4, m.n - 4, 0, 0);
    ok(n == (ssize_t)m.n - 4 && memcmp(out, m.b, m.n) == 0, "then the rest at once");

    /* blocking, the message in three slow pieces within the timeout */
    if (write(server, m.b, 3) != 3)
        diag("short write");
    {
        pid_t pid = fork();

        if (pid == 0) {
            usleep(50000);
            if (write(server, m.b + 3, 5) != 5)
                _exit(1);
            usleep(50000);
            if (write(server, m.b + 8, m.n - 8) != (ssize_t)(m.n - 8))
                _exit(1);
            _exit(0);
        }
        n = read_message(s, out, sizeof out, 2000);
        ok(n == (ssize_t)m.n && memcmp(out, m.b, m.n) == 0,
           "a blocking read waits for the pieces within its timeout");
        waitpid(pid, NULL, 0);
    }

    /* the timeout */
    t0 = conf_clock_ms();
    n = mongoc_stream_read(s, out, 4, 4, 200);
    ok(n < 0 && conf_clock_ms() - t0 >= 150 && conf_clock_ms() - t0 < 1500,
       "nothing comes: the read fails at its timeout (%lld ms)", (long long)(conf_clock_ms() - t0));
    is_int((long long)g.junk, 0, "nothing refused so far");

    /* the peer closes in the middle of a message: the end, not junk */
    if (write(server, m.b, 10) != 10)
        diag("short write");
    close(server);
    n = mongoc_stream_read(s, out, 4, 4, 1000);
    ok(n <= 0 && g.junk == 0, "the peer closed mid-message: the read fails, not junk (%zd)", n);
    mongoc_stream_destroy(s);
}

int
main(void)
{
    mongoc_init();
    test_passes();
    test_refuses();
    test_tcp();
    mongoc_cleanup();
    return done_testing();
}
