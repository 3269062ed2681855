/*
 * proxy/io.c: write-first sending (see io.h). Owns nothing: it moves bytes
 * from a caller's scratch buffer to a socket or a bufferevent's queue.
 */
#include "proxy/io.h"

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
