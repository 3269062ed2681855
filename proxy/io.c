/*
 * proxy/io.c: the loop's shared socket state (see io.h) and stored replies
 * added to a buffer by reference. Owns the loop's read buffer and scratch
 * evbuffer and the compressors' state (struct proxy_io_loop) and the small record that ties a
 * reference's pieces to their value; the connections are their owners'
 * (proxy/conn.c reads and writes the sockets).
 */
#include "proxy/io.h"

#include "cache/cache.h"
#include "proxy/server.h"
#include "wire/compress.h"

#include <event2/buffer.h>

struct proxy_io_loop *
proxy_io_loop_get(struct proxy_server *server)
{
    if (!server->io) {
        struct proxy_io_loop *loop = bson_malloc(sizeof *loop);

        loop->compress = NULL;
        loop->flush = NULL;
        loop->n_flush = 0;
        loop->cap_flush = 0;
        loop->flush_ev = NULL;
        loop->flush_active = false;
        loop->scratch = evbuffer_new();
        if (!loop->scratch) {
            bson_free(loop);
            return NULL;
        }
        server->io = loop;
    }
    return server->io;
}

void
proxy_io_loop_free(struct proxy_io_loop *loop)
{
    if (!loop)
        return;
    if (loop->flush_ev)
        event_free(loop->flush_ev);
    bson_free(loop->flush);
    evbuffer_free(loop->scratch);
    wire_compress_ctx_destroy(loop->compress);
    bson_free(loop);
}

/* The pieces of one value added by reference: freed with the last piece. */
struct value_ref {
    struct cache_value *value; /* one reference */
    size_t *shared;
    uint32_t pieces;
};

static void
piece_sent(const void *data, size_t len, void *arg)
{
    struct value_ref *ref = arg;

    (void)data;
    *ref->shared -= len;
    if (--ref->pieces == 0) {
        cache_value_unref(ref->value);
        bson_free(ref);
    }
}

void
proxy_io_add_value(struct evbuffer *out, struct cache_value *value, const uint8_t *data,
                   size_t len, size_t *shared)
{
    struct value_ref *ref;

    if (len == 0)
        return;
    ref = bson_malloc(sizeof *ref);
    cache_value_ref(value);
    ref->value = value;
    ref->shared = shared;
    ref->pieces = (uint32_t)((len + PROXY_IO_PIECE - 1) / PROXY_IO_PIECE);
    for (size_t at = 0; at < len; at += PROXY_IO_PIECE) {
        size_t n = len - at < PROXY_IO_PIECE ? len - at : PROXY_IO_PIECE;

        *shared += n;
        if (evbuffer_add_reference(out, data + at, n, piece_sent, ref) != 0) {
            /* Out of memory for a chain: copy this piece instead. */
            evbuffer_add(out, data + at, n);
            piece_sent(data + at, n, ref);
        }
    }
}
