/*
 * advice/guard.c: owns the guard stream (see guard.h): a mongoc_stream_t
 * whose reads collect one whole server message from the stream below it,
 * check it with wire/ (frame, msg, doc), and only then hand its bytes to
 * libmongoc, in pieces as libmongoc asks (the length first, then the
 * rest). It owns the message buffer and the refusal of junk; it does not
 * own the connection (the stream below: libmongoc's socket, buffered and TLS
 * streams, made by libmongoc's default initiator), does not look inside a
 * reply's fields (the advisor checks what each command returns) and never
 * touches what libmongoc writes.
 *
 * What is refused, beyond wire_msg_parse's own rules (one body, sections in
 * bounds, every document well formed and at most 200 deep): an OP_MSG with a
 * kind-1 section (libmongoc 1.23 keeps two sections in a fixed array and
 * takes the first for the body), with checksumPresent (it would read the
 * checksum as a section) or moreToCome (never asked for); an OP_REPLY without
 * exactly its documents or with none; OP_COMPRESSED (the advisor never
 * negotiates compression) and every other opcode; a length under 16 or over
 * 48,000,000 bytes. A refused message makes the stream dead: every later
 * read fails, libmongoc drops the connection and reconnects when asked.
 *
 * Blocking reads (a timeout, min_bytes > 0) wait for the whole message
 * within the timeout; non-blocking ones (libmongoc's monitoring, timeout 0)
 * take what has arrived and return "retry" (should_retry) until the
 * message is whole. Polling goes to the root socket (mongoc_stream_poll
 * does that by itself), which is right: bytes are only held here between a
 * read of the length and the read of the rest, which libmongoc makes at once.
 */
#include "config.h"

#include "advice/guard.h"

#include "conf/clock.h"
#include "wire/frame.h"
#include "wire/msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * libmongoc's own initiator (TCP or UNIX socket, TLS from the client's
 * options, buffered): exported by libmongoc 1.23 (and still by 2.x) but
 * declared only in its private mongoc-client-private.h, so declared here
 * with that header's signature. A libmongoc without it fails to link, it
 * cannot fail at run time.
 */
mongoc_stream_t *mongoc_client_default_stream_initiator(const mongoc_uri_t *uri,
                                                        const mongoc_host_list_t *host,
                                                        void *user_data, bson_error_t *error);

/* Our stream type: none of libmongoc's MONGOC_STREAM_* (1 to 7). */
#define GUARD_STREAM_TYPE 0x6d63

struct guard_stream {
    mongoc_stream_t vtable; /* first: libmongoc holds a pointer to it */
    mongoc_stream_t *base;  /* owned */
    struct advice_guard *guard;
    uint8_t head[WIRE_HEADER_LEN]; /* the header while it arrives */
    uint8_t *msg;                  /* the whole message once its length is known; owned */
    size_t need;                   /* its length; 0 until the header is in */
    size_t have;                   /* bytes received (in head, then in msg) */
    size_t served;                 /* bytes handed to libmongoc */
    bool ready;                    /* msg is whole and checked */
    bool dead;                     /* a message was refused */
    bool retry;                    /* the last read ended because base would block */
};

enum recv_result { RECV_PROGRESS, RECV_EOF, RECV_FAIL };

static void
forget_message(struct guard_stream *g)
{
    bson_free(g->msg);
    g->msg = NULL;
    g->need = g->have = g->served = 0;
    g->ready = false;
}

static void refuse(struct guard_stream *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks the stream dead and the message junk (counted, with why). */
static void
refuse(struct guard_stream *g, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(g->guard->reason, sizeof g->guard->reason, fmt, ap);
    va_end(ap);
    g->guard->junk++;
    g->dead = true;
    forget_message(g);
    errno = EPROTO;
}

/* Whether the whole message in g->msg is one libmongoc can safely parse. */
static bool
check(struct guard_stream *g)
{
    bson_error_t error;
    int32_t opcode = wire_frame_read_i32(g->msg + 12);

    if (opcode == WIRE_OP_MSG) {
        struct wire_msg m;

        if (!wire_msg_parse(g->msg, g->need, 0, &m, &error)) {
            refuse(g, "a malformed OP_MSG (%s)", error.message);
            return false;
        }
        if (m.n_seqs != 0) {
            refuse(g, "an OP_MSG reply with a document sequence");
            return false;
        }
        if (m.flags & (WIRE_MSG_CHECKSUM_PRESENT | WIRE_MSG_MORE_TO_COME)) {
            refuse(g, "an OP_MSG reply with flags 0x%x", m.flags);
            return false;
        }
        return true;
    }
    if (opcode == WIRE_OP_REPLY) {
        struct wire_reply r;

        if (!wire_msg_parse_reply(g->msg, g->need, 0, &r, &error)) {
            refuse(g, "a malformed OP_REPLY (%s)", error.message);
            return false;
        }
        if (r.n_returned < 1) {
            refuse(g, "an OP_REPLY without a document");
            return false;
        }
        return true;
    }
    refuse(g, "a message with opcode %d", opcode);
    return false;
}

/* Reads more of the current message from base: one read, bounded by timeout. */
static enum recv_result
receive(struct guard_stream *g, int32_t timeout_msec, int64_t deadline)
{
    uint8_t *dst = g->need == 0 ? g->head + g->have : g->msg + g->have;
    size_t room = g->need == 0 ? WIRE_HEADER_LEN - g->have : g->need - g->have;
    int32_t t = timeout_msec;
    ssize_t n;

    if (timeout_msec > 0) {
        int64_t left = deadline - conf_clock_ms();

        if (left <= 0) {
            errno = ETIMEDOUT;
            return RECV_FAIL;
        }
        t = left > INT32_MAX ? INT32_MAX : (int32_t)left;
    }
    n = mongoc_stream_read(g->base, dst, room, timeout_msec == 0 ? 0 : room, t);
    if (n < 0) {
        g->retry = timeout_msec == 0 && mongoc_stream_should_retry(g->base);
        return RECV_FAIL;
    }
    if (n == 0) {
        if (timeout_msec == 0 && mongoc_stream_should_retry(g->base)) {
            g->retry = true;
            errno = EAGAIN;
            return RECV_FAIL;
        }
        return RECV_EOF;
    }
    g->have += (size_t)n;
    if (g->need == 0 && g->have == WIRE_HEADER_LEN) {
        struct wire_header h;
        bson_error_t error;

        if (wire_frame_header(g->head, WIRE_HEADER_LEN, WIRE_MAX_MESSAGE_LEN, &h, &error) !=
            WIRE_OK) {
            refuse(g, "a bad message header (%s)", error.message);
            return RECV_FAIL;
        }
        g->need = (size_t)h.length;
        g->msg = bson_malloc(g->need);
        memcpy(g->msg, g->head, WIRE_HEADER_LEN);
    }
    if (g->need > 0 && g->have == g->need) {
        if (!check(g))
            return RECV_FAIL;
        g->ready = true;
        g->served = 0;
    }
    return RECV_PROGRESS;
}

/* Copies up to n bytes of the ready message into iov, from flat offset at; returns how many. */
static size_t
serve(struct guard_stream *g, mongoc_iovec_t *iov, size_t iovcnt, size_t at, size_t n)
{
    size_t left = g->need - g->served;
    size_t copied = 0;

    if (n > left)
        n = left;
    for (size_t i = 0; i < iovcnt && copied < n; i++) {
        size_t len = iov[i].iov_len;
        size_t take;

        if (at >= len) {
            at -= len;
            continue;
        }
        take = len - at;
        if (take > n - copied)
            take = n - copied;
        memcpy((uint8_t *)iov[i].iov_base + at, g->msg + g->served + copied, take);
        copied += take;
        at = 0;
    }
    g->served += copied;
    if (g->served == g->need)
        forget_message(g);
    return copied;
}

static ssize_t
guard_readv(mongoc_stream_t *stream, mongoc_iovec_t *iov, size_t iovcnt, size_t min_bytes,
            int32_t timeout_msec)
{
    struct guard_stream *g = (struct guard_stream *)stream;
    int64_t deadline = timeout_msec > 0 ? conf_clock_ms() + timeout_msec : 0;
    size_t want = 0, copied = 0;

    for (size_t i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    if (min_bytes > want)
        min_bytes = want;
    g->retry = false;
    while (copied < want) {
        enum recv_result r;

        if (g->dead) {
            errno = EPROTO;
            return copied > 0 ? (ssize_t)copied : -1;
        }
        if (g->ready) {
            copied += serve(g, iov, iovcnt, copied, want - copied);
            if (copied > 0 && copied >= min_bytes)
                break;
            continue;
        }
        r = receive(g, timeout_msec, deadline);
        if (r == RECV_PROGRESS)
            continue;
        if (copied > 0)
            break;
        return r == RECV_EOF ? 0 : -1;
    }
    return (ssize_t)copied;
}

static ssize_t
guard_writev(mongoc_stream_t *stream, mongoc_iovec_t *iov, size_t iovcnt, int32_t timeout_msec)
{
    return mongoc_stream_writev(((struct guard_stream *)stream)->base, iov, iovcnt, timeout_msec);
}

static void
guard_destroy(mongoc_stream_t *stream)
{
    struct guard_stream *g = (struct guard_stream *)stream;

    mongoc_stream_destroy(g->base);
    bson_free(g->msg);
    bson_free(g);
}

/* libmongoc's "this connection failed": the stream below is told so (it frees itself). */
static void
guard_failed(mongoc_stream_t *stream)
{
    struct guard_stream *g = (struct guard_stream *)stream;

    mongoc_stream_failed(g->base);
    bson_free(g->msg);
    bson_free(g);
}

static int
guard_close(mongoc_stream_t *stream)
{
    return mongoc_stream_close(((struct guard_stream *)stream)->base);
}

static int
guard_flush(mongoc_stream_t *stream)
{
    return mongoc_stream_flush(((struct guard_stream *)stream)->base);
}

static int
guard_setsockopt(mongoc_stream_t *stream, int level, int optname, void *optval,
                 mongoc_socklen_t optlen)
{
    return mongoc_stream_setsockopt(((struct guard_stream *)stream)->base, level, optname, optval,
                                    optlen);
}

static mongoc_stream_t *
guard_base(mongoc_stream_t *stream)
{
    return ((struct guard_stream *)stream)->base;
}

static bool
guard_check_closed(mongoc_stream_t *stream)
{
    struct guard_stream *g = (struct guard_stream *)stream;

    return g->dead || mongoc_stream_check_closed(g->base);
}

static bool
guard_timed_out(mongoc_stream_t *stream)
{
    return mongoc_stream_timed_out(((struct guard_stream *)stream)->base);
}

static bool
guard_should_retry(mongoc_stream_t *stream)
{
    return ((struct guard_stream *)stream)->retry;
}

mongoc_stream_t *
advice_guard_stream_new(mongoc_stream_t *base, struct advice_guard *guard)
{
    struct guard_stream *g = bson_malloc0(sizeof *g);

    g->vtable.type = GUARD_STREAM_TYPE;
    g->vtable.destroy = guard_destroy;
    g->vtable.failed = guard_failed;
    g->vtable.close = guard_close;
    g->vtable.flush = guard_flush;
    g->vtable.writev = guard_writev;
    g->vtable.readv = guard_readv;
    g->vtable.setsockopt = guard_setsockopt;
    g->vtable.get_base_stream = guard_base;
    g->vtable.check_closed = guard_check_closed;
    g->vtable.timed_out = guard_timed_out;
    g->vtable.should_retry = guard_should_retry;
    g->base = base;
    g->guard = guard;
    return &g->vtable;
}

mongoc_stream_t *
advice_guard_initiator(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *user_data,
                       bson_error_t *error)
{
    struct advice_guard *guard = user_data;
    mongoc_stream_t *base =
        mongoc_client_default_stream_initiator(uri, host, guard->client, error);

    return base != NULL ? advice_guard_stream_new(base, guard) : NULL;
}
