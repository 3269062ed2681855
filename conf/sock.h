/*
 * conf/sock.h: the generic part of the socket layer under a libevent socket
 * bufferevent, used by the Redis tier's connections (cache/redis_conn.c;
 * the proxy's client and upstream sockets are proxy/conn.c's, with no
 * bufferevent, and share only conf_sock_write_first). It knows nothing of
 * what the bytes mean.
 *
 * Writing: "write first". A message is written to the socket at once when
 * nothing is queued before it, and only what the socket does not take is
 * queued in the bufferevent. On the common path this saves arming the
 * write event (an epoll_ctl to add it, another to remove it) and a loop
 * turn per message (measured with strace: libevent's default costs 7
 * system calls per small request, write first 3).
 *
 * Reading: without the bufferevent's read path, whose evbuffer_read asks
 * the socket's size with ioctl(FIONREAD) before every read (and then reads
 * at most 16 KB). conf_sock_read_take hands the bufferevent's own read
 * event (no extra memory per connection) to the caller's callback, which
 * reads the socket itself: one read() into a buffer of its own. The read
 * event stays armed while the caller reads (level-triggered: what one read
 * leaves comes at the next poll), so a steady request loop costs no
 * epoll_ctl.
 *
 * The read side uses the bufferevent's own read event (struct bufferevent
 * is public in event2/bufferevent_struct.h): libevent's socket bufferevent
 * adds it only when enabled for EV_READ, which the callers never do once
 * they have taken it, and deletes it when the bufferevent is freed (before
 * the socket is closed) or disabled for EV_READ.
 */
#ifndef MONGOCACHE_CONF_SOCK_H
#define MONGOCACHE_CONF_SOCK_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>

struct bufferevent;

/*
 * The write-first step itself, shared with proxy/conn.c's own sockets:
 * writes data to the non-blocking socket fd, draining what it takes, until
 * data is empty or the socket takes no more (EAGAIN; an error is left for
 * the caller's next read or write to find). The caller queues the rest.
 * Inline: it runs once per message sent on the hot path.
 */
static inline void
conf_sock_write_first(evutil_socket_t fd, struct evbuffer *data)
{
    while (evbuffer_get_length(data) > 0 && evbuffer_write(data, fd) > 0)
        ;
}

/*
 * From now on bev's socket is read by the caller: ready(fd, what, bev) runs
 * when it is readable (conf_sock_owner(bev) is the argument bev's callbacks
 * were set with). Reading starts disabled. Call once bev has its socket and
 * is connected (bufferevent_socket_connect re-assigns the read event); a
 * second call does nothing. bev must never be enabled for EV_READ again
 * (bufferevent_enable), nor given another socket.
 */
void conf_sock_read_take(struct bufferevent *bev, event_callback_fn ready);

/* The argument bev's callbacks were set with (bufferevent_setcb). */
void *conf_sock_owner(struct bufferevent *bev);

/* Turns reading on or off (an epoll_ctl when it changes, none when it does not). */
void conf_sock_read_enable(struct bufferevent *bev, bool on);

/*
 * Sends (and empties) data on bev: directly when bev's output queue is empty
 * and writing is enabled, the rest (or everything) through the queue, which
 * arms the write event. Socket errors are left for the bufferevent to find
 * on its next write (the reader usually finds them first).
 */
void conf_sock_send(struct bufferevent *bev, struct evbuffer *data);

#endif
