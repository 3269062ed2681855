/*
 * proxy/conn.h: one socket with an input and an output buffer, the proxy's
 * own replacement for a libevent socket bufferevent (after PgBouncer's
 * sbuf.c). A client's and an upstream's socket each have one.
 *
 * One struct event serves the descriptor: read interest while reading is
 * enabled, write interest only while output is queued (or a connect is in
 * progress). Sending is "write first": proxy_conn_send writes to the socket
 * at once when nothing is queued before it, and queues only what the socket
 * does not take, so a steady request loop costs no epoll_ctl. A client's
 * connection (proxy_conn_batch_writes) leaves that write to the end of the
 * loop's turn while other callbacks are still to run, so that the replies
 * to one poll's requests go out together (the write batch). Turning
 * reading off leaves the read interest registered until the socket is
 * readable while off (then it is dropped), so a short pause costs no
 * epoll_ctl either. Reading is one read() of up to PROXY_IO_READ bytes into
 * the loop's buffer (no FIONREAD), appended to the input, or straight into
 * the input's tail once it holds a large part of a message, or handled
 * where it was read (proxy_conn_read_in_place). An idle
 * connection holds the struct, two empty evbuffers and the event's
 * registration: no read buffer, no timer.
 *
 * Callbacks are bufferevent-shaped: read_cb after bytes were appended to the
 * input; write_cb after a queued write left at most the low watermark
 * queued; event_cb with PROXY_CONN_* flags (the values of libevent's
 * BEV_EVENT_*): READING|EOF, READING|ERROR, WRITING|ERROR, WRITING|TIMEOUT
 * (no write progress for the write timeout while output was queued),
 * CONNECTED, or ERROR for a connect that failed (errno, or
 * proxy_conn_dns_error for a name that did not resolve). A connect's outcome
 * is always reported from the event loop, never inside the call that
 * started it. After EOF or a read error reading is off; after a write error
 * or timeout writing is off; after a failed connect both are.
 *
 * proxy_conn_free may be called from inside the connection's own callback:
 * the socket is closed and no callback runs again at once, and the memory
 * is freed when the callback returns.
 */
#ifndef MONGOCACHE_PROXY_CONN_H
#define MONGOCACHE_PROXY_CONN_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct evdns_base;
struct iovec;
struct proxy_io_loop;
struct sockaddr;

struct proxy_conn;

#define PROXY_CONN_READING 0x01
#define PROXY_CONN_WRITING 0x02
#define PROXY_CONN_EOF 0x10
#define PROXY_CONN_ERROR 0x20
#define PROXY_CONN_TIMEOUT 0x40
#define PROXY_CONN_CONNECTED 0x80

typedef void (*proxy_conn_data_cb)(struct proxy_conn *conn, void *arg);
typedef void (*proxy_conn_event_cb)(struct proxy_conn *conn, short what, void *arg);

/*
 * A connection on fd (non-blocking; owned: closed by proxy_conn_free), or
 * with fd -1 one to connect with proxy_conn_connect*. loop (borrowed, must
 * outlive the connection) lends the buffer sockets are read into. Reading
 * and writing start disabled. NULL when out of memory (fd is not closed).
 */
struct proxy_conn *proxy_conn_new(struct event_base *base, struct proxy_io_loop *loop,
                                  evutil_socket_t fd);
/* Closes the socket and frees conn (when inside its callback: once it returns). NULL: nothing. */
void proxy_conn_free(struct proxy_conn *conn);

void proxy_conn_setcb(struct proxy_conn *conn, proxy_conn_data_cb read_cb,
                      proxy_conn_data_cb write_cb, proxy_conn_event_cb event_cb, void *arg);

/* The buffers (owned by conn). Callers read the input and drain it only through
 * proxy_conn_drain, proxy_conn_remove or proxy_conn_send_from; they add to the output only
 * through proxy_conn_send*, which arm the write event (and keep the memory count). */
struct evbuffer *proxy_conn_input(struct proxy_conn *conn);
struct evbuffer *proxy_conn_output(struct proxy_conn *conn);
evutil_socket_t proxy_conn_fd(const struct proxy_conn *conn);

/* Turns reading or writing on or off (an epoll_ctl only when the interest changes; reading
 * off keeps its interest until the socket is readable, see above). */
void proxy_conn_read_enable(struct proxy_conn *conn, bool on);
void proxy_conn_write_enable(struct proxy_conn *conn, bool on);
bool proxy_conn_reading(const struct proxy_conn *conn);
/* What the socket's event is registered for now: EV_READ, EV_WRITE, both or 0 (EV_READ
 * may stay while reading is off and the socket has not been readable since). */
short proxy_conn_interest(const struct proxy_conn *conn);

/* No write progress for ms milliseconds while output is queued: WRITING|TIMEOUT (reads do
 * not count as progress). 0: never. */
void proxy_conn_set_write_timeout(struct proxy_conn *conn, int64_t ms);
/* write_cb runs when a queued write leaves at most low bytes queued (default 0). */
void proxy_conn_set_write_low(struct proxy_conn *conn, size_t low);

/*
 * Sends (and empties) data: written at once when nothing is queued, writing
 * is enabled and the connection is up (and, on a batching connection, when
 * nothing else is left of the loop's turn); the rest (or everything) is
 * queued.
 * A socket error is reported by the queued write that meets it.
 */
void proxy_conn_send(struct proxy_conn *conn, struct evbuffer *data);

/*
 * From now on writes to conn wait, while other callbacks of the loop's turn
 * are still to run, for the end of that turn, where the loop writes the
 * replies of all its connections together (the write batch: see conn.c).
 * For the clients' sockets; a TLS connection writes at once all the same.
 */
void proxy_conn_batch_writes(struct proxy_conn *conn);

/*
 * Sends a stored reply: head (WIRE_HEADER_LEN bytes, copied: the reply's
 * own header restamped) then the rest of value's reply. Written at once
 * as proxy_conn_send would; on a batching connection that must wait, held
 * for the loop's flush (one reference to value, no buffer); what the socket
 * does not take is queued by reference (proxy_io_add_value, counted in
 * *shared).
 */
struct cache_value;
void proxy_conn_send_value(struct proxy_conn *conn, const uint8_t *head, struct cache_value *value,
                           size_t *shared);

/* Bytes owed to the peer: the output's, and a reply held for the loop's flush. */
size_t proxy_conn_output_length(const struct proxy_conn *conn);

/*
 * Sends the len bytes at the front of src's input (data: where they are,
 * one contiguous piece, as evbuffer_pullup gives it) and drains them from
 * it: written at once with one send when proxy_conn_send would, and what
 * the socket does not take moved to conn's output without a copy (a socket
 * error is then reported by the queued write that meets it). No staging
 * buffer. data NULL (a pullup that failed): all of it is queued.
 */
void proxy_conn_send_from(struct proxy_conn *conn, struct proxy_conn *src, const uint8_t *data,
                          size_t len);

/*
 * Lets read_cb see a read's bytes where they were read (the loop's buffer)
 * when the input held nothing before it: a message handled at once is
 * never copied into the input nor given a buffer of its own; what read_cb
 * leaves joins the input when it returns. The caller then reads and drains
 * the input only through the calls below (proxy_conn_input_length, _peek,
 * _copyout, _pullup, _drain, _remove, _send_from), never through
 * proxy_conn_input().
 */
void proxy_conn_read_in_place(struct proxy_conn *conn);

/* Bytes in the input. */
size_t proxy_conn_input_length(const struct proxy_conn *conn);
/* The input's first contiguous bytes: where they start, and in *len how many (NULL and 0
 * when it is empty). No copy: valid until the input changes. */
const uint8_t *proxy_conn_peek(struct proxy_conn *conn, size_t *len);
/* Copies the first len bytes of the input (it holds at least len) to dst, leaving them. */
void proxy_conn_copyout(struct proxy_conn *conn, void *dst, size_t len);
/* The first len bytes of the input (it holds at least len) made contiguous; NULL when out
 * of memory. Valid until the input changes. */
const uint8_t *proxy_conn_pullup(struct proxy_conn *conn, size_t len);

/* Drops the first len bytes of the input (all of it when it holds fewer). */
void proxy_conn_drain(struct proxy_conn *conn, size_t len);
/* Copies the first len bytes of the input (it holds at least len) to dst and drops them. */
void proxy_conn_remove(struct proxy_conn *conn, void *dst, size_t len);

/* Where connections count their buffered bytes (max_memory); shared by many, owned by the
 * caller. fell(arg) runs after the total fell (never NULL). */
struct proxy_conn_meter {
    size_t *total;
    void (*fell)(void *arg);
    void *arg;
};

/*
 * Counts the bytes in conn's input and output in meter's total from now
 * on, those there already included: every change made through conn (reads,
 * writes, sends, drains: callers change the input only through
 * proxy_conn_drain, proxy_conn_remove and proxy_conn_send_from, and never
 * the output) moves it at once, with no evbuffer callback. meter (borrowed)
 * must outlive the counting. NULL: counting stops and what was counted
 * leaves the total (before the connection is freed).
 */
void proxy_conn_count_memory(struct proxy_conn *conn, const struct proxy_conn_meter *meter);

/*
 * Writes the n pieces at iov at once when proxy_conn_send would (nothing
 * queued, writing enabled, the connection up, not batched for later), with
 * one send or sendmsg and no buffer: the bytes it took (0 when it wrote nothing, an error included).
 * The caller sends what is left with proxy_conn_send, which queues it (a
 * socket error is then reported by the queued write that meets it).
 */
size_t proxy_conn_write_now(struct proxy_conn *conn, const struct iovec *iov, int n);

/*
 * Ends conn's writing with an error (err: an errno), delivered to its
 * event_cb from the loop as WRITING|ERROR: for a caller that could not queue
 * part of a message (out of memory), after which the stream is cut.
 */
void proxy_conn_fail(struct proxy_conn *conn, int err);

/*
 * Runs read_cb again without reading, after the loop's next poll (a reader
 * that stopped early for fairness, with whole messages still in the input:
 * the other connections ready by then go first). Its timer is made on the
 * first call and kept until the connection is freed.
 */
void proxy_conn_read_again(struct proxy_conn *conn);

/*
 * Connects a connection made with fd -1 to addr. 0: started (outcome by
 * event_cb); -1: failed at once (no socket, or connect refused it locally),
 * errno set, and nothing will be reported.
 */
int proxy_conn_connect(struct proxy_conn *conn, const struct sockaddr *addr, int addrlen);
/*
 * Resolves host (dns, or the system resolver when NULL) for a TCP stream of
 * any family, as bufferevent_socket_connect_hostname does, and connects to
 * the first address. 0: started; -1: could not start (errno).
 */
int proxy_conn_connect_hostname(struct proxy_conn *conn, struct evdns_base *dns,
                                const char *host, int port);
/* The resolver's error (EVUTIL_EAI_*) behind an ERROR event, or 0. */
int proxy_conn_dns_error(const struct proxy_conn *conn);

/*
 * TLS on the connection (proxy/tls.h's contexts; the transport is
 * described at the end of conn.c). proxy_conn_tls_accept: conn (an
 * accepted socket, before reading is enabled) takes the server side of a
 * handshake that must end within timeout_ms (0: no limit); a failure, a
 * plaintext client, or the time running out is reported as READING|ERROR
 * (a client that leaves first: READING|EOF). proxy_conn_tls_connect: conn
 * (before proxy_conn_connect*) runs a handshake once connected, checking
 * the server's certificate against host unless tls turned that off, and
 * reports CONNECTED only after it, or ERROR. Both false when out of memory
 * (nothing changed). tls is borrowed for the call (the session keeps the
 * context alive).
 */
struct proxy_tls;
bool proxy_conn_tls_accept(struct proxy_conn *conn, const struct proxy_tls *tls,
                           int64_t timeout_ms) __attribute__((warn_unused_result));
bool proxy_conn_tls_connect(struct proxy_conn *conn, const struct proxy_tls *tls,
                            const char *host) __attribute__((warn_unused_result));
/* Why the TLS handshake or stream failed (behind an ERROR event), or NULL. */
const char *proxy_conn_tls_error(const struct proxy_conn *conn);
/* True when the server refused the handshake after it seemed done (TLS 1.3 judges a
 * client certificate after the client's last flight): nothing written reached it. */
bool proxy_conn_tls_refused(const struct proxy_conn *conn);
/* Whether conn is TLS and its handshake ended well. */
bool proxy_conn_tls_open(const struct proxy_conn *conn);
/* True when conn speaks TLS. */
bool proxy_conn_tls(const struct proxy_conn *conn);

#endif
