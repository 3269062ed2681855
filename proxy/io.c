/*
 * proxy/io.c: write-first sending (see io.h), and stored replies added to a
 * buffer by reference. Owns nothing but the small record that ties a
 * reference's pieces to their value: it moves bytes from a caller's scratch
 * buffer to a socket or a bufferevent's queue.
 */
#include "proxy/io.h"

#include "cache/cache.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

void
proxy_io_send(struct bufferevent *bev, struct evbuffer *data)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);

    if (evbuffer_get_length(out) == 0 && fd >= 0 && (bufferevent_get_enabled(bev) & EV_WRITE)) {
        while (evbuffer_get_length(data) > 0 && evbuffer_write(data, fd) > 0)
            ;
    }
    if (evbuffer_get_length(data) > 0)
        evbuffer_add_buffer(out, data);
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
