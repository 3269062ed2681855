/*
 * proxy/io.h: what the sockets of one event loop share, under the
 * connections of proxy/conn.h: the buffer every socket is read into (one
 * read() of up to PROXY_IO_READ bytes, without FIONREAD), an evbuffer for
 * one message on its way out, and stored replies added to a buffer by
 * reference. An idle connection holds no read buffer of its own: its input
 * keeps only bytes not yet handled.
 */
#ifndef MONGOCACHE_PROXY_IO_H
#define MONGOCACHE_PROXY_IO_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_value;
struct evbuffer;
struct proxy_conn;
struct proxy_server;
struct wire_compress_ctx;

/* Most bytes one read takes from a socket. */
#define PROXY_IO_READ (64 * 1024)

/*
 * A connection whose writes wait for the end of the loop's turn (proxy/conn.c's
 * write batch), and the stored reply held for it with no buffer, if any: its
 * header, and one reference to the value whose reply it heads.
 */
struct proxy_io_flush {
    struct proxy_conn *conn;   /* NULL: freed since it was listed */
    struct cache_value *value; /* the held reply's value, or NULL */
    size_t *shared;            /* where its bytes are counted once queued by reference */
    uint8_t head[16];          /* the held reply's header (WIRE_HEADER_LEN) */
};

/*
 * What every connection of one event loop shares: the buffer sockets are
 * read into, an evbuffer for one message on its way out (filled and
 * sent at once: empty between uses), the compression libraries' state, and
 * the write batch: the connections to write at the end of the loop's turn,
 * in the order they were listed (an array kept from turn to turn, grown as
 * needed), and the event that writes them. Created on first use, freed
 * with proxy_io_loop_free, after every connection.
 */
struct proxy_io_loop {
    struct evbuffer *scratch;
    struct wire_compress_ctx *compress; /* the compressors' state (proxy/compress.c), made on
                                         * first use; NULL until then */
    struct proxy_io_flush *flush;       /* n_flush listed, room for cap_flush */
    uint32_t n_flush, cap_flush;
    struct event *flush_ev; /* made on first use (proxy/conn.c); NULL until then */
    bool flush_active;      /* flush_ev is active */
    uint8_t buf[PROXY_IO_READ];
};

/* server's loop state (server->io), created on first use; NULL when out of memory. */
struct proxy_io_loop *proxy_io_loop_get(struct proxy_server *server);
void proxy_io_loop_free(struct proxy_io_loop *loop);

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
