/*
 * proxy/io.h: "write first" sending on a bufferevent. A reply or request is
 * written to the socket at once when nothing is queued before it, and only
 * what the socket does not take is queued in the bufferevent. On the common
 * path this saves arming the write event and a loop turn per message
 * (BENCH.md: libevent's default costs 7 syscalls per small request, write
 * first 3).
 */
#ifndef MONGOCACHE_PROXY_IO_H
#define MONGOCACHE_PROXY_IO_H

struct bufferevent;
struct evbuffer;

/*
 * Sends (and empties) data on bev: directly when bev's output queue is empty
 * and writing is enabled, the rest (or everything) through the queue. Socket
 * errors are left for the bufferevent to find on its next write.
 */
void proxy_io_send(struct bufferevent *bev, struct evbuffer *data);

#endif
