/*
 * proxy/io.h: "write first" sending on a bufferevent. A reply or request is
 * written to the socket at once when nothing is queued before it, and only
 * what the socket does not take is queued in the bufferevent. On the common
 * path this saves arming the write event and a loop turn per message
 * (measured with strace: libevent's default costs 7 syscalls per small
 * request, write first 3).
 */
#ifndef MONGOCACHE_PROXY_IO_H
#define MONGOCACHE_PROXY_IO_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct cache_value;
struct evbuffer;

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
