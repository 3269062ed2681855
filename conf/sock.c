/*
 * conf/sock.c: write-first sending and the hand-over of a socket
 * bufferevent's read event (see sock.h). Owns nothing: the bufferevents,
 * the data and the read buffers are the callers'.
 */
#include "conf/sock.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

void
conf_sock_read_take(struct bufferevent *bev, event_callback_fn ready)
{
    if (event_get_callback(&bev->ev_read) == ready)
        return;
    event_del(&bev->ev_read);
    /* The argument stays bev: bufferevent_free finalizes the bufferevent
     * through this event, and its finalizer is given the event's argument. */
    event_assign(&bev->ev_read, bufferevent_get_base(bev), bufferevent_getfd(bev),
                 EV_READ | EV_PERSIST | EV_FINALIZE, ready, bev);
}

void *
conf_sock_owner(struct bufferevent *bev)
{
    void *owner = NULL;

    bufferevent_getcb(bev, NULL, NULL, NULL, &owner);
    return owner;
}

void
conf_sock_read_enable(struct bufferevent *bev, bool on)
{
    bool pending = event_pending(&bev->ev_read, EV_READ, NULL) != 0;

    if (on && !pending)
        event_add(&bev->ev_read, NULL);
    else if (!on && pending)
        event_del(&bev->ev_read);
}

void
conf_sock_send(struct bufferevent *bev, struct evbuffer *data)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);

    if (evbuffer_get_length(out) == 0 && fd >= 0 && (bufferevent_get_enabled(bev) & EV_WRITE))
        conf_sock_write_first(fd, data);
    if (evbuffer_get_length(data) > 0)
        evbuffer_add_buffer(out, data);
}
