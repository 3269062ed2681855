/*
 * proxy/io.h: the socket layer under a client's and an upstream's
 * bufferevent.
 *
 * Writing: "write first". A reply or request is written to the socket at
 * once when nothing is queued before it, and only what the socket does not
 * take is queued in the bufferevent. On the common path this saves arming
 * the write event and a loop turn per message (measured with strace:
 * libevent's default costs 7 syscalls per small request, write first 3).
 *
 * Reading: without the bufferevent's read path, whose evbuffer_read asks
 * the socket's size with ioctl(FIONREAD) before every read (and then reads
 * at most 16 KB). proxy_io_read_take hands the bufferevent's own read event
 * (no extra memory per connection) to the caller's callback, which calls
 * proxy_io_readable: one read() of up to PROXY_IO_READ bytes into the loop's
 * buffer (struct proxy_io_loop, one per server), appended to the
 * bufferevent's input. An idle connection holds no read buffer: the input
 * keeps only bytes not yet handled. The read event stays armed while the
 * caller reads (level-triggered: what one read leaves comes at the next
 * poll), so a steady request loop costs no epoll_ctl.
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
 * From now on bev's socket is read by the caller: ready(fd, what, bev) runs
 * when it is readable (proxy_io_owner(bev) is the argument bev's callbacks
 * were set with) and calls proxy_io_readable. Reading starts disabled. Call
 * once bev has its socket (for a connecting upstream: once connected); a
 * second call does nothing. bev must never be enabled for EV_READ again
 * (bufferevent_enable), nor given another socket.
 */
void proxy_io_read_take(struct bufferevent *bev, event_callback_fn ready);

/* The argument bev's callbacks were set with (bufferevent_setcb). */
void *proxy_io_owner(struct bufferevent *bev);

/* Turns reading on or off (an epoll_ctl when it changes, none when it does not). */
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

/*
 * Sends (and empties) data on bev: directly when bev's output queue is empty
 * and writing is enabled, the rest (or everything) through the queue. Socket
 * errors are left for the bufferevent to find on its next write.
 */
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
