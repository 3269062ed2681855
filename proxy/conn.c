/*
 * proxy/conn.c: a socket with its two buffers (see conn.h). Owns the
 * descriptor, the one struct event that watches it, the input and output
 * evbuffers, its slot in the loop's write batch (and the reply held there;
 * the batch's event and list are the loop's, driven from here: see "the
 * write batch" below), an address lookup in flight and, on a TLS connection, its
 * session (struct conn_tls: the link made by proxy/tls.c and the
 * handshake's deadline; see the TLS section at the end); borrows the
 * loop's read buffer (struct proxy_io_loop) and the memory meter.
 *
 * The event's interest is recomputed by update_events whenever something
 * that decides it changes (reading on or off, output queued or emptied,
 * connecting), and re-registered only when it differs from what is
 * registered: a change of interest is event_del + event_add. Turning
 * reading off is lazy: the read interest stays registered (no epoll_ctl)
 * until the socket turns out readable while reading is off, and only then
 * is it dropped, so a pause that ends before the peer sends again (a client
 * whose read waits on the Redis tier) costs no system call, and a peer that
 * keeps sending while paused is still stopped after one wake-up.
 *
 * The write timeout is a timer of its own (made the first time write
 * interest is registered with a timeout set, kept until the connection is
 * freed), armed while write interest is registered and re-armed only when a
 * write makes progress: reading from the socket does not move it.
 *
 * A read goes into the loop's buffer and is appended to the input; once the
 * input holds a large part of a message (PROXY_CONN_DIRECT bytes or more),
 * the read goes straight into space reserved at the input's tail instead,
 * sparing the copy, with no more room reserved than the input already holds
 * (so a slow peer's reservation stays in proportion to what it sent). A
 * connection read in place (proxy_conn_read_in_place) whose input is empty
 * skips the append: while read_cb runs, its input is the read's bytes in
 * the loop's buffer (flat_off, flat_len), consumed by the proxy_conn_*
 * input calls; what is sent on and not taken by the socket is copied to the
 * other connection's output (the loop's buffer is read into again), and
 * what read_cb leaves is appended to the input when it returns. Reads never
 * nest (they run only from the loop), so the buffer is not read into while
 * read_cb runs.
 *
 * The bytes in the input and output are counted in a meter (max_memory) by
 * every call here that changes them (count_in, count_out): no evbuffer
 * callback, whose dispatch would run on every buffer change.
 *
 * Outcomes that are known at once (a connect that succeeded or failed in
 * the call, a name that did not resolve) are kept in `pending` and
 * delivered by activating the event, so that no callback runs inside the
 * call that started the connect. `busy` counts the callbacks running on the
 * stack; proxy_conn_free inside one closes the socket and leaves the memory
 * to the outermost dispatch.
 */
#include "proxy/conn.h"

#include "cache/value.h"
#include "conf/sock.h"
#include "proxy/io.h"
#include "proxy/tls_link.h"
#include "wire/frame.h"

#include <bson/bson.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Under AddressSanitizer the loop's read buffer is poisoned between reads, so
 * that a pointer kept into a message read in place (valid only until the
 * next read, on any connection) is reported where it is used. */
#if defined(__SANITIZE_ADDRESS__)
#define CONN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONN_ASAN 1
#endif
#endif
#ifdef CONN_ASAN
#include <sanitizer/asan_interface.h>
#define READ_BUF_OPEN(loop) ASAN_UNPOISON_MEMORY_REGION((loop)->buf, sizeof (loop)->buf)
#define READ_BUF_SHUT(loop) ASAN_POISON_MEMORY_REGION((loop)->buf, sizeof (loop)->buf)
#else
#define READ_BUF_OPEN(loop) ((void)(loop))
#define READ_BUF_SHUT(loop) ((void)(loop))
#endif

/* Input held from which reads go straight into the input's tail (see above). */
#define PROXY_CONN_DIRECT 4096

struct proxy_conn {
    struct event ev;
    struct evbuffer *input;
    struct evbuffer *output;
    struct event_base *base;
    struct proxy_io_loop *loop;
    proxy_conn_data_cb read_cb;
    proxy_conn_data_cb write_cb;
    proxy_conn_event_cb event_cb;
    void *arg;
    struct evdns_getaddrinfo_request *lookup; /* a name being resolved */
    struct event *again;                      /* proxy_conn_read_again's zero timer,
                                               * made on first use */
    struct event *wtimer;                     /* the write timeout, made on first use */
    struct conn_tls *tls;                     /* TLS on this socket, or NULL (see the end) */
    const struct proxy_conn_meter *meter;     /* where its bytes are counted, or NULL */
    size_t counted;                           /* its bytes counted there now */
    size_t write_low;
    int64_t write_timeout_ms;
    evutil_socket_t fd;
    /* Narrow fields (the struct stays within 280 bytes): */
    short dns_error;    /* EVUTIL_EAI_* */
    uint8_t err;        /* errno behind a pending ERROR (Linux's are below 256) */
    uint8_t pending;    /* an outcome to deliver from the loop (PROXY_CONN_* bits) */
    uint32_t flat_off;  /* while read_cb runs after a read in place, the input is */
    uint32_t flat_len;  /* these bytes of the loop's buffer (the evbuffer is empty) */
    uint8_t busy;       /* callbacks of ours on the stack (never nested deeply) */
    uint8_t registered; /* the interest event_add was given (EV_READ | EV_WRITE; 0: not added) */
    bool reading : 1;
    bool read_lazy : 1;    /* reading is off but its interest is still registered */
    bool wtimer_armed : 1; /* the write timeout runs */
    bool writing : 1;
    bool connecting : 1;
    bool handshaking : 1; /* TLS: records do not flow yet (writes are queued) */
    bool resolving : 1;
    bool freed : 1;
    bool in_place : 1;     /* proxy_conn_read_in_place */
    bool batch : 1;        /* proxy_conn_batch_writes */
    bool flush_queued : 1; /* listed in the loop's write batch, at flush_slot */
    bool holding : 1;      /* and a reply is held there, before the output */
    uint32_t flush_slot;
};

static void conn_cb(evutil_socket_t fd, short what, void *arg);
static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void do_write(struct proxy_conn *conn);
static void unhold(struct proxy_conn *conn, size_t done);

/* A TLS connection's own state (allocated with it: a plaintext connection holds only the
 * NULL pointer). */
struct conn_tls {
    struct proxy_tls_link *link;
    struct event *hs_timer; /* an accepted client's handshake deadline, until it ends */
    int64_t hs_timeout_ms;
    short hs_want;          /* the handshake waits for EV_READ or EV_WRITE */
    bool server;            /* accepted (else connecting) */
};
static void tls_step(struct proxy_conn *conn);
static void tls_begin(struct proxy_conn *conn);
static void tls_kick(struct proxy_conn *conn);
static int tls_write_buffer(struct proxy_conn *conn, struct evbuffer *buf);
static size_t tls_write_iov(struct proxy_conn *conn, const struct iovec *iov, int n);

/* n bytes joined the input or output: counted at once (see proxy_conn_count_memory). */
static inline void
count_in(struct proxy_conn *conn, size_t n)
{
    if (conn->meter) {
        *conn->meter->total += n;
        conn->counted += n;
    }
}

/* n bytes left the input or output. */
static inline void
count_out(struct proxy_conn *conn, size_t n)
{
    if (conn->meter && n > 0) {
        *conn->meter->total -= n;
        conn->counted -= n;
        conn->meter->fell(conn->meter->arg);
    }
}

static void wtimer_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Arms (restart: re-arms) or stops the write timeout to match the
 * registered interest: it runs while write interest is registered.
 */
static void
sync_write_timer(struct proxy_conn *conn, bool restart)
{
    bool want = (conn->registered & EV_WRITE) && !conn->connecting && conn->write_timeout_ms > 0;
    struct timeval tv;

    if (!want) {
        if (conn->wtimer_armed)
            evtimer_del(conn->wtimer);
        conn->wtimer_armed = false;
        return;
    }
    if (conn->wtimer_armed && !restart)
        return;
    if (!conn->wtimer && !(conn->wtimer = evtimer_new(conn->base, wtimer_cb, conn)))
        return; /* out of memory: no timeout, as with write_timeout 0 */
    tv.tv_sec = conn->write_timeout_ms / 1000;
    tv.tv_usec = (conn->write_timeout_ms % 1000) * 1000;
    evtimer_add(conn->wtimer, &tv);
    conn->wtimer_armed = true;
}

static void
update_events(struct proxy_conn *conn)
{
    short want = 0;

    if (conn->pending || conn->freed)
        return; /* the event is active for a delivery; recomputed after it */
    if (conn->fd >= 0) {
        if (conn->connecting)
            want = EV_WRITE;
        else if (conn->handshaking)
            want = conn->tls->hs_want;
        else {
            if (conn->reading || (conn->read_lazy && (conn->registered & EV_READ)))
                want |= EV_READ;
            if (conn->writing && !conn->flush_queued && evbuffer_get_length(conn->output) > 0)
                want |= EV_WRITE;
            if (conn->tls)
                want |= proxy_tls_link_wants(conn->tls->link); /* a record the other way */
        }
    }
    if (want != conn->registered) {
        if (conn->registered)
            event_del(&conn->ev);
        conn->registered = (uint8_t)want;
        if (want) {
            event_assign(&conn->ev, conn->base, conn->fd, want | EV_PERSIST, conn_cb, conn);
            event_add(&conn->ev, NULL);
        }
    }
    sync_write_timer(conn, false);
}

/* Reading stops for good (EOF, an error, a failed connect): its interest goes now. */
static void
stop_reading(struct proxy_conn *conn)
{
    conn->reading = false;
    conn->read_lazy = false;
}

/* Delivers what from the loop (the event activated, nothing registered meanwhile). */
static void
deliver_later(struct proxy_conn *conn, short what, int err)
{
    if (conn->registered) {
        event_del(&conn->ev);
        conn->registered = 0;
    }
    conn->pending = (uint8_t)what;
    conn->err = (uint8_t)(err >= 0 && err < 256 ? err : EIO);
    event_assign(&conn->ev, conn->base, conn->fd, EV_PERSIST, conn_cb, conn);
    event_active(&conn->ev, EV_WRITE, 0);
}

struct proxy_conn *
proxy_conn_new(struct event_base *base, struct proxy_io_loop *loop, evutil_socket_t fd)
{
    struct proxy_conn *conn = bson_malloc0(sizeof *conn);

    conn->base = base;
    conn->loop = loop;
    conn->fd = fd;
    conn->input = evbuffer_new();
    conn->output = evbuffer_new();
    if (!conn->input || !conn->output) {
        conn->fd = -1;
        proxy_conn_free(conn);
        return NULL;
    }
    event_assign(&conn->ev, base, fd, EV_PERSIST, conn_cb, conn);
    return conn;
}

static void
destroy(struct proxy_conn *conn)
{
    if (conn->again)
        event_free(conn->again);
    if (conn->wtimer)
        event_free(conn->wtimer);
    if (conn->input)
        evbuffer_free(conn->input);
    if (conn->output)
        evbuffer_free(conn->output);
    bson_free(conn);
}

/* A callback of ours on conn's stack returns: a free inside it takes effect now. */
static void
unbusy(struct proxy_conn *conn)
{
    if (--conn->busy == 0 && conn->freed)
        destroy(conn);
}

void
proxy_conn_free(struct proxy_conn *conn)
{
    if (!conn || conn->freed)
        return;
    if (conn->registered || conn->pending)
        event_del(&conn->ev); /* also takes back an activation */
    if (conn->again)
        event_del(conn->again);
    if (conn->wtimer)
        event_del(conn->wtimer);
    conn->wtimer_armed = false;
    conn->registered = 0;
    conn->pending = 0;
    conn->freed = true;
    unhold(conn, 0); /* freed: its reference goes, nothing is queued */
    if (conn->flush_queued) {
        conn->loop->flush[conn->flush_slot].conn = NULL;
        conn->flush_queued = false;
    }
    if (conn->lookup) {
        /* Its callback still runs, with EVUTIL_EAI_CANCEL, and touches nothing. */
        evdns_getaddrinfo_cancel(conn->lookup);
        conn->lookup = NULL;
    }
    if (conn->tls) {
        proxy_tls_link_free(conn->tls->link); /* close_notify, before the socket closes */
        if (conn->tls->hs_timer)
            event_free(conn->tls->hs_timer);
        bson_free(conn->tls);
        conn->tls = NULL;
    }
    if (conn->fd >= 0)
        evutil_closesocket(conn->fd);
    conn->fd = -1;
    if (conn->busy == 0)
        destroy(conn);
}

void
proxy_conn_setcb(struct proxy_conn *conn, proxy_conn_data_cb read_cb, proxy_conn_data_cb write_cb,
                 proxy_conn_event_cb event_cb, void *arg)
{
    conn->read_cb = read_cb;
    conn->write_cb = write_cb;
    conn->event_cb = event_cb;
    conn->arg = arg;
}

struct evbuffer *
proxy_conn_input(struct proxy_conn *conn)
{
    return conn->input;
}

struct evbuffer *
proxy_conn_output(struct proxy_conn *conn)
{
    return conn->output;
}

evutil_socket_t
proxy_conn_fd(const struct proxy_conn *conn)
{
    return conn->fd;
}

void
proxy_conn_read_enable(struct proxy_conn *conn, bool on)
{
    conn->reading = on;
    conn->read_lazy = !on; /* off: the interest stays until the socket is readable */
    update_events(conn);
    if (on && conn->tls)
        tls_kick(conn); /* records read ahead while off: no socket event will say so */
}

void
proxy_conn_write_enable(struct proxy_conn *conn, bool on)
{
    conn->writing = on;
    update_events(conn);
}

bool
proxy_conn_reading(const struct proxy_conn *conn)
{
    return conn->reading;
}

short
proxy_conn_interest(const struct proxy_conn *conn)
{
    return conn->registered;
}

void
proxy_conn_set_write_timeout(struct proxy_conn *conn, int64_t ms)
{
    conn->write_timeout_ms = ms > 0 ? ms : 0;
    sync_write_timer(conn, true); /* a running timeout restarts with the new length */
}

void
proxy_conn_set_write_low(struct proxy_conn *conn, size_t low)
{
    conn->write_low = low;
}

/* True when a write now goes straight to the socket: nothing queued or held before it, and up. */
static bool
can_write_now(const struct proxy_conn *conn)
{
    return evbuffer_get_length(conn->output) == 0 && !conn->holding && conn->fd >= 0 &&
           conn->writing && !conn->connecting && !conn->handshaking && !conn->pending;
}

/* One send (n 1) or sendmsg of the pieces at iov: the bytes the socket took (0 on an error). */
static size_t
write_iov(struct proxy_conn *conn, const struct iovec *iov, int n)
{
    ssize_t written;

    if (conn->tls)
        return tls_write_iov(conn, iov, n);
    /* send and sendmsg, not writev: the socket calls skip the file layer
     * (about 0.5 us of kernel time per pass-through at 50 clients here,
     * bench/README.md). */
    if (n == 1) {
        do
            written = send(conn->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        while (written < 0 && errno == EINTR);
    } else {
        struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};

        do
            written = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
        while (written < 0 && errno == EINTR);
    }
    return written > 0 ? (size_t)written : 0;
}

/* ---- the write batch --------------------------------------------------------
 *
 * A connection that batches its writes (proxy_conn_batch_writes: the
 * clients) does not write at once while other callbacks of the loop's turn
 * are still to run (event_base_get_num_events counts them). It joins the
 * loop's list (loop->flush), and the loop's flush event, activated behind every
 * callback already active, writes each listed connection with one call
 * (flush_cb). So the replies to the requests one poll returned leave
 * together, after all of them were read, as Redis writes its replies before
 * it sleeps: a client woken by the first of them is still awake for the
 * next, and the kernel does not wake it (an interrupt to its CPU, dear in a
 * VM) once per reply. When nothing else is active (one client busy), the
 * write happens at once, as before.
 *
 * What waits is queued in the output, except a stored reply sent alone
 * (proxy_conn_send_value, a cache hit), which is held in the connection's
 * slot of the list (struct proxy_io_flush: its header and a reference to
 * the value), so that the common case costs no buffer. A held reply comes
 * before everything in the output: any other write first moves it there
 * (unhold). A listed connection has no write interest; what the flush
 * cannot write waits for it as any queued output. A connection freed while
 * listed leaves its slot empty (its held reply released at once).
 */

/* Whether a write to conn that could go now should wait for the loop's flush. */
static bool
defer_write(struct proxy_conn *conn)
{
    struct proxy_io_loop *loop = conn->loop;

    if (!conn->batch || conn->tls || !loop)
        return false;
    if (loop->flush_active)
        return true; /* the flush is still to run this turn: no need to ask libevent */
    if (event_base_get_num_events(conn->base, EVENT_BASE_COUNT_ACTIVE) == 0)
        return false;
    if (!loop->flush_ev)
        loop->flush_ev = event_new(conn->base, -1, 0, flush_cb, loop);
    return loop->flush_ev != NULL; /* out of memory for it: written at once */
}

/* conn is listed in the loop's write batch (defer_write said it may be): its slot. */
static struct proxy_io_flush *
queue_flush(struct proxy_conn *conn)
{
    struct proxy_io_loop *loop = conn->loop;
    struct proxy_io_flush *f;

    if (!conn->flush_queued) {
        if (loop->n_flush == loop->cap_flush) {
            loop->cap_flush = loop->cap_flush ? 2 * loop->cap_flush : 64;
            loop->flush = bson_realloc(loop->flush, loop->cap_flush * sizeof *loop->flush);
        }
        conn->flush_queued = true;
        conn->flush_slot = loop->n_flush++;
        f = &loop->flush[conn->flush_slot];
        f->conn = conn;
        f->value = NULL;
    }
    if (!loop->flush_active) {
        loop->flush_active = true;
        event_active(loop->flush_ev, 0, 0);
    }
    return &loop->flush[conn->flush_slot];
}

/* The body of the stored reply in value: what follows its header. */
static const uint8_t *
value_body(const struct cache_value *value, size_t *len)
{
    const uint8_t *data = cache_value_data(value, len);

    *len -= WIRE_HEADER_LEN;
    return data + WIRE_HEADER_LEN;
}

/*
 * Queues a stored reply in the output from byte `done` on: the rest of its
 * header (copied; out of memory cuts the stream) and of its body, by
 * reference. The caller updates the events.
 */
static void
queue_value(struct proxy_conn *conn, const uint8_t *head, struct cache_value *value,
            size_t done, size_t *shared)
{
    size_t before = evbuffer_get_length(conn->output), len;
    const uint8_t *data = value_body(value, &len);

    if (done < WIRE_HEADER_LEN) {
        if (evbuffer_add(conn->output, head + done, WIRE_HEADER_LEN - done) != 0) {
            proxy_conn_fail(conn, ENOMEM); /* a cut header: the stream is lost */
            return;
        }
        done = WIRE_HEADER_LEN;
    }
    done -= WIRE_HEADER_LEN;
    proxy_io_add_value(conn->output, value, data + done, len - done, shared);
    count_in(conn, evbuffer_get_length(conn->output) - before);
}

/* The held reply moves to the output (whose front it becomes), from byte done on; the hold ends. */
static void
unhold(struct proxy_conn *conn, size_t done)
{
    struct proxy_io_flush *f;
    struct cache_value *value;
    size_t len;

    if (!conn->holding)
        return;
    f = &conn->loop->flush[conn->flush_slot];
    value = f->value;
    f->value = NULL;
    conn->holding = false;
    (void)value_body(value, &len);
    if (done < WIRE_HEADER_LEN + len && !conn->freed)
        queue_value(conn, f->head, value, done, f->shared);
    cache_value_unref(value);
}

/*
 * One listed connection, written by the flush: its held reply (what the
 * socket does not take is queued), then its output. write_cb runs as after
 * any queued write that left at most the low watermark.
 */
static void
flush_one(struct proxy_conn *conn)
{
    if (conn->holding) {
        struct proxy_io_flush *f = &conn->loop->flush[conn->flush_slot];
        size_t done = 0, len;
        struct iovec iov[2];

        iov[1].iov_base = (void *)value_body(f->value, &len);
        iov[1].iov_len = len;
        if (conn->fd >= 0 && conn->writing && !conn->pending) {
            iov[0].iov_base = f->head;
            iov[0].iov_len = WIRE_HEADER_LEN;
            done = write_iov(conn, iov, 2);
        }
        unhold(conn, done); /* nothing was queued behind it */
        if (done == WIRE_HEADER_LEN + len) {
            if (conn->write_cb)
                conn->write_cb(conn, conn->arg);
        } else if (done > 0) {
            update_events(conn); /* the socket is full: the rest waits for write interest */
            return;
        }
    }
    if (!conn->freed && !conn->pending)
        do_write(conn);
    if (!conn->freed)
        update_events(conn);
}

/* The loop's flush: each listed connection, written, in the order they were listed. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_io_loop *loop = arg;

    (void)fd;
    (void)what;
    loop->flush_active = false;
    /* Connections listed meanwhile (by a write_cb) are written in this pass too. */
    for (uint32_t i = 0; i < loop->n_flush; i++) {
        struct proxy_conn *conn = loop->flush[i].conn;

        if (!conn)
            continue; /* freed since: its held reply was released then */
        /* Off the list first: a write its write_cb makes lists it again. A held
         * reply stays in its slot until flush_one has written it. */
        loop->flush[i].conn = NULL;
        conn->flush_queued = false;
        conn->busy++;
        flush_one(conn);
        unbusy(conn);
    }
    loop->n_flush = 0;
}

void
proxy_conn_batch_writes(struct proxy_conn *conn)
{
    conn->batch = true;
}

size_t
proxy_conn_output_length(const struct proxy_conn *conn)
{
    size_t n = evbuffer_get_length(conn->output), len;

    if (conn->holding) {
        (void)value_body(conn->loop->flush[conn->flush_slot].value, &len);
        n += WIRE_HEADER_LEN + len;
    }
    return n;
}

void
proxy_conn_send(struct proxy_conn *conn, struct evbuffer *data)
{
    bool deferred = false;
    size_t rest;

    unhold(conn, 0); /* a held reply goes first */
    if (can_write_now(conn)) {
        if (conn->tls)
            (void)tls_write_buffer(conn, data); /* an error is met again by the queued write */
        else if (!(deferred = defer_write(conn)))
            conf_sock_write_first(conn->fd, data);
    }
    rest = evbuffer_get_length(data);
    if (rest > 0) {
        evbuffer_add_buffer(conn->output, data);
        count_in(conn, rest);
        if (deferred)
            (void)queue_flush(conn);
        update_events(conn);
    }
}

void
proxy_conn_send_value(struct proxy_conn *conn, const uint8_t *head, struct cache_value *value,
                      size_t *shared)
{
    size_t done = 0, len;

    unhold(conn, 0);
    if (can_write_now(conn)) {
        struct iovec iov[2];

        if (defer_write(conn)) {
            struct proxy_io_flush *f = queue_flush(conn);

            memcpy(f->head, head, WIRE_HEADER_LEN);
            cache_value_ref(value);
            f->value = value;
            f->shared = shared;
            conn->holding = true;
            return;
        }
        iov[0].iov_base = (void *)head;
        iov[0].iov_len = WIRE_HEADER_LEN;
        iov[1].iov_base = (void *)value_body(value, &len);
        iov[1].iov_len = len;
        done = write_iov(conn, iov, 2);
        if (done == WIRE_HEADER_LEN + len)
            return;
    }
    queue_value(conn, head, value, done, shared);
    update_events(conn);
}

size_t
proxy_conn_write_now(struct proxy_conn *conn, const struct iovec *iov, int n)
{
    unhold(conn, 0); /* then nothing is written now: it is queued first */
    if (!can_write_now(conn))
        return 0;
    return write_iov(conn, iov, n);
}

/* Where the input read in place starts. */
static inline const uint8_t *
flat(const struct proxy_conn *conn)
{
    return conn->loop->buf + conn->flat_off;
}

/* The first n bytes read in place are consumed. */
static void
flat_take(struct proxy_conn *conn, size_t n)
{
    conn->flat_off += (uint32_t)n;
    conn->flat_len -= (uint32_t)n;
    count_out(conn, n);
}

void
proxy_conn_send_from(struct proxy_conn *conn, struct proxy_conn *src, const uint8_t *data,
                     size_t len)
{
    struct iovec iov;
    size_t done;

    unhold(conn, 0);
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    done = len > 0 && data && can_write_now(conn) ? write_iov(conn, &iov, 1) : 0;
    if (src->flat_len > 0) {
        /* The loop's buffer is read into again: what is left is copied. */
        if (!data)
            data = flat(src);
        if (done < len) {
            if (evbuffer_add(conn->output, data + done, len - done) == 0) {
                count_in(conn, len - done);
                update_events(conn);
            } else {
                proxy_conn_fail(conn, ENOMEM); /* the message is cut: so is the stream */
            }
        }
        flat_take(src, len);
        return;
    }
    if (done > 0)
        evbuffer_drain(src->input, done);
    if (done < len) {
        /* Counted in conn before it leaves src: the total never dips under what is held. */
        evbuffer_remove_buffer(src->input, conn->output, len - done);
        count_in(conn, len - done);
        update_events(conn);
    }
    count_out(src, len);
}

void
proxy_conn_fail(struct proxy_conn *conn, int err)
{
    if (!conn->pending && !conn->freed)
        deliver_later(conn, PROXY_CONN_WRITING | PROXY_CONN_ERROR, err);
}

void
proxy_conn_read_in_place(struct proxy_conn *conn)
{
    conn->in_place = true;
}

size_t
proxy_conn_input_length(const struct proxy_conn *conn)
{
    return conn->flat_len > 0 ? conn->flat_len : evbuffer_get_length(conn->input);
}

const uint8_t *
proxy_conn_peek(struct proxy_conn *conn, size_t *len)
{
    struct evbuffer_iovec v;

    if (conn->flat_len > 0) {
        *len = conn->flat_len;
        return flat(conn);
    }
    if (evbuffer_peek(conn->input, -1, NULL, &v, 1) < 1) {
        *len = 0;
        return NULL;
    }
    *len = v.iov_len;
    return v.iov_base;
}

void
proxy_conn_copyout(struct proxy_conn *conn, void *dst, size_t len)
{
    if (conn->flat_len > 0)
        memcpy(dst, flat(conn), len);
    else
        evbuffer_copyout(conn->input, dst, len);
}

const uint8_t *
proxy_conn_pullup(struct proxy_conn *conn, size_t len)
{
    if (conn->flat_len > 0)
        return len <= conn->flat_len ? flat(conn) : NULL;
    return evbuffer_pullup(conn->input, (ev_ssize_t)len);
}

void
proxy_conn_drain(struct proxy_conn *conn, size_t len)
{
    size_t held = proxy_conn_input_length(conn);

    if (len > held)
        len = held;
    if (conn->flat_len > 0) {
        flat_take(conn, len);
        return;
    }
    evbuffer_drain(conn->input, len);
    count_out(conn, len);
}

void
proxy_conn_remove(struct proxy_conn *conn, void *dst, size_t len)
{
    int n;

    if (conn->flat_len > 0) {
        memcpy(dst, flat(conn), len);
        flat_take(conn, len);
        return;
    }
    n = evbuffer_remove(conn->input, dst, len);
    count_out(conn, n > 0 ? (size_t)n : 0);
}

void
proxy_conn_count_memory(struct proxy_conn *conn, const struct proxy_conn_meter *meter)
{
    if (conn->meter) {
        /* What was counted leaves the total, and nothing is counted from now on. */
        *conn->meter->total -= conn->counted;
        conn->counted = 0;
        conn->meter = NULL;
    }
    if (meter) {
        conn->meter = meter;
        count_in(conn, evbuffer_get_length(conn->input) + evbuffer_get_length(conn->output));
    }
}

/* proxy_conn_read_again's turn: the reader, without a read(). */
static void
again_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_conn *conn = arg;

    (void)fd;
    (void)what;
    conn->busy++;
    if (conn->read_cb)
        conn->read_cb(conn, conn->arg);
    unbusy(conn);
}

void
proxy_conn_read_again(struct proxy_conn *conn)
{
    /* A zero timer runs after the loop's next poll: the connections that
     * are ready meanwhile go first (an event made active would run in the
     * same turn, again and again). */
    static const struct timeval now = {0, 0};

    if (conn->freed)
        return;
    if (!conn->again)
        conn->again = evtimer_new(conn->base, again_cb, conn);
    if (conn->again)
        event_add(conn->again, &now);
}

int
proxy_conn_dns_error(const struct proxy_conn *conn)
{
    return conn->dns_error;
}

int
proxy_conn_connect(struct proxy_conn *conn, const struct sockaddr *addr, int addrlen)
{
    evutil_socket_t fd;

    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    conn->fd = fd;
    conn->connecting = true;
    if (connect(fd, addr, (socklen_t)addrlen) == 0) {
        deliver_later(conn, PROXY_CONN_CONNECTED, 0);
        return 0;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        update_events(conn);
        return 0;
    }
    if (errno == ECONNREFUSED) {
        /* As libevent's: a refusal is reported by event_cb, not returned. */
        deliver_later(conn, PROXY_CONN_ERROR, ECONNREFUSED);
        return 0;
    }
    {
        int err = errno;

        conn->connecting = false;
        conn->fd = -1;
        event_assign(&conn->ev, conn->base, -1, EV_PERSIST, conn_cb, conn);
        evutil_closesocket(fd);
        errno = err;
    }
    return -1;
}

static void
resolved_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
    struct proxy_conn *conn = arg;

    if (result == EVUTIL_EAI_CANCEL) {
        if (ai)
            evutil_freeaddrinfo(ai);
        return; /* conn is freed */
    }
    conn->lookup = NULL;
    conn->resolving = false;
    if (result != 0) {
        conn->dns_error = (short)result;
        deliver_later(conn, PROXY_CONN_ERROR, 0);
    } else if (proxy_conn_connect(conn, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
        deliver_later(conn, PROXY_CONN_ERROR, errno);
    }
    if (ai)
        evutil_freeaddrinfo(ai);
}

int
proxy_conn_connect_hostname(struct proxy_conn *conn, struct evdns_base *dns, const char *host,
                            int port)
{
    struct evutil_addrinfo hints;
    char service[16];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    snprintf(service, sizeof service, "%d", port);
    conn->connecting = true;
    if (!dns) {
        struct evutil_addrinfo *ai = NULL;
        int rc = evutil_getaddrinfo(host, service, &hints, &ai);

        resolved_cb(rc, rc == 0 ? ai : NULL, conn);
        return 0;
    }
    conn->resolving = true;
    {
        struct evdns_getaddrinfo_request *req =
            evdns_getaddrinfo(dns, host, service, &hints, resolved_cb, conn);

        if (conn->resolving) /* not answered inside the call */
            conn->lookup = req;
    }
    return 0;
}

/* The connect in progress ended: CONNECTED, or ERROR with its errno. */
static void
connect_done(struct proxy_conn *conn)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == EINPROGRESS || err == EINTR)
        return;
    conn->connecting = false;
    if (err) {
        stop_reading(conn); /* nothing more from this socket */
        conn->writing = false;
        update_events(conn);
        errno = err;
        if (conn->event_cb)
            conn->event_cb(conn, PROXY_CONN_ERROR, conn->arg);
        return;
    }
    if (conn->tls) {
        tls_begin(conn); /* CONNECTED once the handshake is done */
        return;
    }
    update_events(conn);
    if (conn->event_cb)
        conn->event_cb(conn, PROXY_CONN_CONNECTED, conn->arg);
}

/* One read straight into the input's tail (see the top): its result, as read()'s. */
static ssize_t
read_direct(struct proxy_conn *conn, size_t held)
{
    size_t room = held < PROXY_IO_READ ? held : PROXY_IO_READ;
    struct evbuffer_iovec v;
    ssize_t n;

    if (evbuffer_reserve_space(conn->input, (ev_ssize_t)room, &v, 1) != 1) {
        errno = ENOMEM;
        return -1;
    }
    n = conn->tls ? proxy_tls_link_recv(conn->tls->link, v.iov_base, v.iov_len)
                  : recv(conn->fd, v.iov_base, v.iov_len, 0);
    if (n > 0) {
        v.iov_len = (size_t)n;
        if (evbuffer_commit_space(conn->input, &v, 1) != 0) {
            errno = ENOMEM;
            return -1;
        }
        count_in(conn, (size_t)n);
    }
    return n;
}

/*
 * After a read_cb in place: what it left in the loop's buffer joins the input (nothing
 * when the connection was freed inside). False when that is out of memory
 * (the bytes are lost, and the stream with them).
 */
static bool
keep_rest(struct proxy_conn *conn)
{
    const uint8_t *rest = flat(conn);
    size_t len = conn->flat_len;

    conn->flat_off = 0;
    conn->flat_len = 0;
    if (len == 0 || conn->freed || evbuffer_add(conn->input, rest, len) == 0)
        return true;
    count_out(conn, len);
    return false;
}

static void
do_read(struct proxy_conn *conn)
{
    size_t held = evbuffer_get_length(conn->input);
    ssize_t n;
    short what;
    int err;

    if (held >= PROXY_CONN_DIRECT) {
        n = read_direct(conn, held);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0) {
            if (conn->read_cb)
                conn->read_cb(conn, conn->arg);
            return;
        }
    } else if (!conn->loop) {
        /* No read buffer (out of memory): an error, not a retry at every
         * poll of a level-triggered, still readable socket. */
        n = -1;
        errno = ENOMEM;
    } else {
        struct proxy_io_loop *loop = conn->loop;

        READ_BUF_OPEN(loop);
        n = conn->tls ? proxy_tls_link_recv(conn->tls->link, loop->buf, sizeof loop->buf)
                      : recv(conn->fd, loop->buf, sizeof loop->buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            READ_BUF_SHUT(loop);
            return;
        }
        if (n > 0 && conn->in_place && held == 0) {
            bool kept;

            /* Read in place: whole messages are handled (and sent on) from
             * the loop's buffer, with no copy into the input. */
            count_in(conn, (size_t)n);
            conn->flat_off = 0;
            conn->flat_len = (uint32_t)n;
            if (conn->read_cb)
                conn->read_cb(conn, conn->arg);
            kept = keep_rest(conn);
            READ_BUF_SHUT(loop);
            if (kept)
                return;
            n = -1;
            errno = ENOMEM;
        } else if (n > 0) {
            int added = evbuffer_add(conn->input, loop->buf, (size_t)n);

            READ_BUF_SHUT(loop);
            if (added == 0) {
                count_in(conn, (size_t)n);
                if (conn->read_cb)
                    conn->read_cb(conn, conn->arg);
                return;
            }
            /* Out of memory: the bytes are lost, and the stream with them. */
            n = -1;
            errno = ENOMEM;
        }
    }
    err = n == 0 ? 0 : errno;
    what = PROXY_CONN_READING | (n == 0 ? PROXY_CONN_EOF : PROXY_CONN_ERROR);
    stop_reading(conn);
    update_events(conn);
    errno = err;
    if (conn->event_cb)
        conn->event_cb(conn, what, conn->arg);
}

static void
do_write(struct proxy_conn *conn)
{
    int n;

    if (!conn->writing || evbuffer_get_length(conn->output) == 0)
        return;
    n = conn->tls ? tls_write_buffer(conn, conn->output) : evbuffer_write(conn->output, conn->fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        int err = n == 0 ? EPIPE : errno;

        conn->writing = false;
        update_events(conn);
        errno = err;
        if (conn->event_cb)
            conn->event_cb(conn, PROXY_CONN_WRITING | PROXY_CONN_ERROR, conn->arg);
        return;
    }
    count_out(conn, (size_t)n);
    update_events(conn); /* no write interest once the queue is empty */
    sync_write_timer(conn, true); /* progress: the write timeout starts again */
    if (evbuffer_get_length(conn->output) <= conn->write_low && conn->write_cb)
        conn->write_cb(conn, conn->arg);
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_conn *conn = arg;

    (void)fd;
    conn->busy++;
    if (conn->pending) {
        short outcome = conn->pending;

        conn->pending = 0;
        conn->connecting = false;
        if ((outcome & PROXY_CONN_CONNECTED) && conn->tls) {
            tls_begin(conn); /* CONNECTED once the handshake is done */
        } else if (outcome & PROXY_CONN_CONNECTED) {
            update_events(conn);
            if (conn->event_cb)
                conn->event_cb(conn, outcome, conn->arg);
            if (!conn->freed)
                do_write(conn); /* what was queued while connecting */
        } else {
            stop_reading(conn); /* a failed connect: nothing more from this socket */
            conn->writing = false;
            update_events(conn);
            errno = conn->err;
            if (conn->event_cb)
                conn->event_cb(conn, outcome, conn->arg);
        }
    } else if (conn->connecting) {
        connect_done(conn);
        if (!conn->freed && !conn->connecting)
            do_write(conn);
    } else if (conn->handshaking) {
        tls_step(conn);
    } else {
        if (conn->tls) {
            /* A record waiting for the socket the other way: the call that waits runs. */
            short wants = proxy_tls_link_wants(conn->tls->link);

            if ((what & EV_READ) && wants == EV_READ)
                what |= EV_WRITE;
            if ((what & EV_WRITE) && wants == EV_WRITE && conn->reading)
                what |= EV_READ;
        }
        if ((what & EV_READ) && conn->reading) {
            do_read(conn);
        } else if ((what & EV_READ) && conn->read_lazy) {
            /* Readable while reading is off: now its interest goes. */
            conn->read_lazy = false;
            update_events(conn);
        }
        if (!conn->freed && (what & EV_WRITE))
            do_write(conn);
        if (conn->tls && !conn->freed) {
            update_events(conn); /* what a record waits for may have changed */
            tls_kick(conn);
        }
    }
    unbusy(conn);
}

/* No write progress for the write timeout while write interest was registered. */
static void
wtimer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_conn *conn = arg;

    (void)fd;
    (void)what;
    conn->wtimer_armed = false;
    if (!(conn->registered & EV_WRITE) || conn->freed)
        return;
    conn->busy++;
    conn->writing = false;
    update_events(conn);
    if (conn->event_cb)
        conn->event_cb(conn, PROXY_CONN_WRITING | PROXY_CONN_TIMEOUT, conn->arg);
    unbusy(conn);
}

/* ---- TLS ------------------------------------------------------------------
 *
 * A connection given a TLS link (proxy_conn_tls_accept, _connect) reads and
 * writes through it (proxy/tls_link.h: recv and send, shaped alike) at the
 * very places a plaintext one calls recv, send and evbuffer_write; the
 * plaintext path pays a pointer test there and nothing else. Until the
 * handshake is done (`handshaking`) the event waits for what the handshake
 * wants (hs_want), writes are queued, and a connecting side reports
 * CONNECTED only once it is done, so callers see a TLS connection exactly
 * as a plaintext one. After it, a record that needs the socket the other
 * way (a read that must write, a write that must read) adds that interest
 * (update_events) and runs the waiting call when it comes (conn_cb). Bytes
 * OpenSSL read ahead and holds, which no socket event will announce, are
 * read by activating the event again (tls_kick) while reading is on, and
 * when reading is turned back on.
 *
 * Writes retried after a WANT_WRITE must offer at least the bytes of the
 * record OpenSSL holds pending (at most 16 KiB of plaintext): so every
 * write offers at least the first 16 KiB of what is queued, made
 * contiguous (a no-op when the first chunk holds them, as it does for a
 * large message).
 */
#define CONN_TLS_RECORD 16384

/* Writes from the front of buf, draining what the link takes: the bytes taken, or -1 with
 * errno when the first write took none (EAGAIN: the socket is full). */
static int
tls_write_buffer(struct proxy_conn *conn, struct evbuffer *buf)
{
    size_t total = 0, len;

    while ((len = evbuffer_get_length(buf)) > 0 && total < INT32_MAX / 2) {
        size_t want = len < CONN_TLS_RECORD ? len : CONN_TLS_RECORD;
        const uint8_t *p = evbuffer_pullup(buf, (ev_ssize_t)want);
        size_t contig = evbuffer_get_contiguous_space(buf);
        ssize_t n;

        if (!p) {
            errno = ENOMEM;
            break;
        }
        n = proxy_tls_link_send(conn->tls->link, p, contig > want ? contig : want);
        if (n <= 0)
            break;
        evbuffer_drain(buf, (size_t)n);
        total += (size_t)n;
    }
    return total > 0 ? (int)total : -1;
}

/*
 * proxy_conn_write_now through the link: the bytes taken. Pieces that fit
 * one record together (a hit's header and its value) go as one record, one
 * SSL_write and one write(): each SSL_write is a record of its own. A
 * refused write is retried from the output with at least as many bytes.
 */
static size_t
tls_write_iov(struct proxy_conn *conn, const struct iovec *iov, int n)
{
    size_t total = 0;

    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (n > 1 && total <= CONN_TLS_RECORD) {
        uint8_t joined[CONN_TLS_RECORD];
        size_t off = 0;
        ssize_t w;

        for (int i = 0; i < n; i++) {
            memcpy(joined + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        w = proxy_tls_link_send(conn->tls->link, joined, off);
        return w > 0 ? (size_t)w : 0;
    }
    total = 0;
    for (int i = 0; i < n; i++) {
        ssize_t w = proxy_tls_link_send(conn->tls->link, iov[i].iov_base, iov[i].iov_len);

        if (w <= 0)
            break;
        total += (size_t)w;
        if ((size_t)w < iov[i].iov_len)
            break;
    }
    return total;
}

/* Bytes wait inside the link while reading is on: read them from the loop. */
static void
tls_kick(struct proxy_conn *conn)
{
    if (conn->reading && !conn->handshaking && !conn->pending &&
        (conn->registered & EV_READ) && proxy_tls_link_pending(conn->tls->link))
        event_active(&conn->ev, EV_READ, 0);
}

/* The handshake failed (err: EPROTO) or the peer left (err 0): reported as a read's end or,
 * connecting, as a failed connect. */
static void
tls_end(struct proxy_conn *conn, int err)
{
    bool connecting = !conn->tls->server;
    short what = connecting ? PROXY_CONN_ERROR
                            : PROXY_CONN_READING | (err ? PROXY_CONN_ERROR : PROXY_CONN_EOF);

    conn->handshaking = false;
    if (conn->tls->hs_timer)
        event_del(conn->tls->hs_timer);
    stop_reading(conn);
    conn->writing = false;
    update_events(conn);
    errno = connecting && !err ? EPROTO : err;
    if (conn->event_cb)
        conn->event_cb(conn, what, conn->arg);
}

/* One step of the handshake, when the socket is ready for it. */
static void
tls_step(struct proxy_conn *conn)
{
    switch (proxy_tls_link_handshake(conn->tls->link, conn->fd)) {
    case PROXY_TLS_WANT_READ:
        conn->tls->hs_want = EV_READ;
        update_events(conn);
        return;
    case PROXY_TLS_WANT_WRITE:
        conn->tls->hs_want = EV_WRITE;
        update_events(conn);
        return;
    case PROXY_TLS_DONE:
        break;
    case PROXY_TLS_EOF:
        tls_end(conn, 0);
        return;
    case PROXY_TLS_FAILED:
    default:
        tls_end(conn, EPROTO);
        return;
    }
    conn->handshaking = false;
    if (conn->tls->hs_timer)
        event_del(conn->tls->hs_timer);
    update_events(conn);
    if (!conn->tls->server && conn->event_cb)
        conn->event_cb(conn, PROXY_CONN_CONNECTED, conn->arg);
    if (!conn->freed)
        do_write(conn); /* what was queued meanwhile */
    if (!conn->freed && conn->reading)
        do_read(conn); /* records that came with the last flight */
    if (!conn->freed) {
        update_events(conn); /* what a record waits for may have changed */
        tls_kick(conn);
    }
}

/* A connecting side's socket is up: its handshake begins. */
static void
tls_begin(struct proxy_conn *conn)
{
    if (!proxy_tls_link_set_fd(conn->tls->link, conn->fd)) {
        proxy_tls_link_fail(conn->tls->link, "TLS: cannot attach the socket");
        tls_end(conn, EPROTO);
        return;
    }
    conn->handshaking = true;
    tls_step(conn);
}

/* A client's handshake did not end in time. */
static void
hs_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_conn *conn = arg;
    char why[128];

    (void)fd;
    (void)what;
    if (!conn->handshaking || conn->freed)
        return;
    snprintf(why, sizeof why, "no TLS handshake within %lld ms",
             (long long)conn->tls->hs_timeout_ms);
    proxy_tls_link_fail(conn->tls->link, why);
    conn->busy++;
    tls_end(conn, ETIMEDOUT);
    unbusy(conn);
}

/* Gives conn a TLS session on tls (server: accepting). False when out of memory. */
static bool
tls_attach(struct proxy_conn *conn, const struct proxy_tls *tls, const char *host, bool server)
{
    struct proxy_tls_link *link = proxy_tls_link_new(tls, host);

    if (!link)
        return false;
    conn->tls = bson_malloc0(sizeof *conn->tls);
    conn->tls->link = link;
    conn->tls->server = server;
    return true;
}

bool
proxy_conn_tls_accept(struct proxy_conn *conn, const struct proxy_tls *tls, int64_t timeout_ms)
{
    if (!tls_attach(conn, tls, NULL, true))
        return false;
    if (!proxy_tls_link_set_fd(conn->tls->link, conn->fd)) {
        proxy_tls_link_free(conn->tls->link);
        bson_free(conn->tls);
        conn->tls = NULL;
        return false;
    }
    conn->handshaking = true;
    conn->tls->hs_want = EV_READ; /* the client speaks first */
    conn->tls->hs_timeout_ms = timeout_ms;
    if (timeout_ms > 0) {
        struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};

        conn->tls->hs_timer = evtimer_new(conn->base, hs_timer_cb, conn);
        if (conn->tls->hs_timer)
            evtimer_add(conn->tls->hs_timer, &tv);
    }
    update_events(conn);
    return true;
}

bool
proxy_conn_tls_connect(struct proxy_conn *conn, const struct proxy_tls *tls, const char *host)
{
    return tls_attach(conn, tls, host, false);
}

const char *
proxy_conn_tls_error(const struct proxy_conn *conn)
{
    return conn->tls ? proxy_tls_link_error(conn->tls->link) : NULL;
}

bool
proxy_conn_tls_refused(const struct proxy_conn *conn)
{
    return conn->tls && proxy_tls_link_refused(conn->tls->link);
}

bool
proxy_conn_tls_open(const struct proxy_conn *conn)
{
    return conn->tls && proxy_tls_link_open(conn->tls->link);
}

bool
proxy_conn_tls(const struct proxy_conn *conn)
{
    return conn->tls != NULL;
}
