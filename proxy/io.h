/*
 * proxy/io.h: the socket layer under a client's and an upstream's
 * bufferevent.
 *
 * Writing: "write first" (conf/sock.h): a reply or request is written to
 * the socket at once when nothing is queued before it.
 *
 * Reading: without the bufferevent's read path and its ioctl(FIONREAD)
 * (conf/sock.h). proxy_io_read_take hands the bufferevent's own read event
 * to the caller's callback, which calls proxy_io_readable: one read() of up
 * to PROXY_IO_READ bytes into the loop's buffer (struct proxy_io_loop, one
 * per server), appended to the bufferevent's input. An idle connection
 * holds no read buffer: the input keeps only bytes not yet handled.
 */
#ifndef MONGOCACHE_PROXY_IO_H
#define MONGOCACHE_PROXY_IO_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct cache_value;
struct evbuffer;
struct proxy_server;

/* Most bytes one read takes from a socket. */
#define PROXY_IO_READ (64 * 1024)

/*
 * What every connection of one event loop shares: the buffer sockets are
 * read into, and an evbuffer for one message on its way out (filled and
 * sent at once: empty between uses). Created on first use, freed with
 * proxy_io_loop_free.
 */
struct proxy_io_loop {
    struct evbuffer *scratch;
    uint8_t buf[PROXY_IO_READ];
};

/* server's loop state (server->io), created on first use; NULL when out of memory. */
struct proxy_io_loop *proxy_io_loop_get(struct proxy_server *server);
void proxy_io_loop_free(struct proxy_io_loop *loop);

/*
 * conf_sock_read_take, conf_sock_owner and conf_sock_read_enable (see
 * conf/sock.h) under the proxy's names; ready calls proxy_io_readable.
 */
void proxy_io_read_take(struct bufferevent *bev, event_callback_fn ready);
void *proxy_io_owner(struct bufferevent *bev);
void proxy_io_read_enable(struct bufferevent *bev, bool on);

/*
 * One read of bev's socket into loop->buf (loop NULL: out of memory, tried
 * at the next poll), appended to bev's input; then, as the bufferevent's
 * own reader would, bev's read callback when bytes came, or at the
 * socket's end its event callback with BEV_EVENT_READING | BEV_EVENT_EOF or
 * BEV_EVENT_READING | BEV_EVENT_ERROR (errno kept for EVUTIL_SOCKET_ERROR;
 * ENOMEM when the bytes read found no memory), reading turned off first.
 * Nothing when the socket had nothing yet.
 */
void proxy_io_readable(struct proxy_io_loop *loop, struct bufferevent *bev);

/* conf_sock_send (see conf/sock.h): write first, the rest through bev's queue. */
void proxy_io_send(struct bufferevent *bev, struct evbuffer *data);

/*
 * Appends len bytes at data, which live inside value (a stored reply), to
 * out by reference, not by copy: out holds a reference to value until they
 * are sent. *shared counts the bytes so referenced in buffers (they are the
 * cache's memory, not the connection's: max_memory leaves them out); they
 * go in pieces of PROXY_IO_PIECE, so that a piece partly sent hides little.
 */
#define PROXY_IO_PIECE (256 * 1024)
void proxy_io_add_value(struct evbuffer *out, struct cache_value *value, const uint8_t *data,
                        size_t len, size_t *shared);

#endif
