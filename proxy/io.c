/*
 * proxy/io.c: the socket layer (see io.h): reading without FIONREAD into
 * the loop's buffer, and stored replies added to a buffer by reference;
 * write-first sending and the read event's hand-over are conf/sock.c's.
 * Owns the loop's read buffer and scratch evbuffer (struct proxy_io_loop)
 * and the small record that ties a reference's pieces to their value; the
 * bufferevents are their callers'.
 */
#include "proxy/io.h"

#include "cache/cache.h"
#include "conf/sock.h"
#include "proxy/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <unistd.h>

struct proxy_io_loop *
proxy_io_loop_get(struct proxy_server *server)
{
    if (!server->io) {
        struct proxy_io_loop *loop = bson_malloc(sizeof *loop);

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
    evbuffer_free(loop->scratch);
    bson_free(loop);
}

void
proxy_io_read_take(struct bufferevent *bev, event_callback_fn ready)
{
    conf_sock_read_take(bev, ready);
}

void *
proxy_io_owner(struct bufferevent *bev)
{
    return conf_sock_owner(bev);
}

void
proxy_io_read_enable(struct bufferevent *bev, bool on)
{
    conf_sock_read_enable(bev, on);
}

void
proxy_io_readable(struct proxy_io_loop *loop, struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    bufferevent_data_cb read_cb;
    bufferevent_event_cb event_cb;
    void *owner;
    ssize_t n;
    short what;
    int err;

    if (!loop)
        return;
    bufferevent_getcb(bev, &read_cb, NULL, &event_cb, &owner);
    n = read(bufferevent_getfd(bev), loop->buf, sizeof loop->buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n > 0) {
        /* The bufferevent froze its input's end: only its reader adds to it. */
        evbuffer_unfreeze(in, 0);
        err = evbuffer_add(in, loop->buf, (size_t)n) == 0 ? 0 : ENOMEM;
        evbuffer_freeze(in, 0);
        if (!err) {
            if (read_cb)
                read_cb(bev, owner);
            return;
        }
        /* Out of memory: the bytes are lost, and the stream with them. */
        what = BEV_EVENT_READING | BEV_EVENT_ERROR;
    } else {
        err = errno;
        what = BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
    }
    proxy_io_read_enable(bev, false);
    errno = err;
    if (event_cb)
        event_cb(bev, what, owner);
}

void
proxy_io_send(struct bufferevent *bev, struct evbuffer *data)
{
    conf_sock_send(bev, data);
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
