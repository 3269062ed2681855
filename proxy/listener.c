/*
 * proxy/listener.c: the accept side. Owns the evconnlisteners and the
 * accept-pause timer. When accept() fails for lack of descriptors the
 * listeners are disabled and re-enabled after a second or as soon as a
 * client closes, so the loop never spins on a readable listening socket it
 * cannot accept from. What happens to an accepted socket is client.c's.
 */
#include "proxy/listener.h"

#include "conf/error.h"
#include "conf/log.h"
#include "proxy/client.h"
#include "proxy/server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct proxy_listener {
    struct proxy_server *server;
    struct evconnlistener *tcp;
    struct evconnlistener *unix_sock;
    char *unix_path; /* owned; unlinked on destroy */
    struct event *resume_timer;
    bool paused;
};

static void
set_enabled(struct proxy_listener *l, bool on)
{
    if (l->tcp)
        on ? evconnlistener_enable(l->tcp) : evconnlistener_disable(l->tcp);
    if (l->unix_sock)
        on ? evconnlistener_enable(l->unix_sock) : evconnlistener_disable(l->unix_sock);
}

static void
resume(struct proxy_listener *l)
{
    if (!l->paused)
        return;
    l->paused = false;
    evtimer_del(l->resume_timer);
    set_enabled(l, true);
    conf_log(CONF_LOG_INFO, 0, "accept_resumed", NULL);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resume(arg);
}

void
proxy_listener_fd_freed(struct proxy_listener *listener)
{
    resume(listener);
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr, int len,
          void *arg)
{
    struct proxy_listener *l = arg;
    struct proxy_server *server = l->server;

    (void)evl;
    if (server->draining) {
        close(fd);
        return;
    }
    if (server->n_clients >= (uint64_t)server->conf->max_clients) {
        proxy_stats_add(&server->stats, PROXY_STAT_clients_rejected, 1);
        conf_log(CONF_LOG_WARN, 0, "client_rejected",
                 "reason=max_clients max_clients=%lld msg=\"raise max_clients or add proxies\"",
                 (long long)server->conf->max_clients);
        close(fd);
        return;
    }
    if (!proxy_client_new(server, fd, addr, len))
        close(fd);
}

static void
error_cb(struct evconnlistener *evl, void *arg)
{
    struct proxy_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval one_second = {1, 0};

    (void)evl;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        if (!l->paused) {
            l->paused = true;
            set_enabled(l, false);
            evtimer_add(l->resume_timer, &one_second);
            proxy_stats_add(&l->server->stats, PROXY_STAT_accept_paused, 1);
            conf_log(CONF_LOG_WARN, 0, "accept_paused",
                     "error=\"%s\" msg=\"out of file descriptors; raise ulimit -n or lower "
                     "max_clients\"",
                     strerror(err));
        }
        return;
    }
    conf_log(CONF_LOG_WARN, 0, "accept_error", "error=\"%s\"", strerror(err));
}

static struct evconnlistener *
bind_tcp(struct proxy_listener *l, const char *addr, bson_error_t *error)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    struct evconnlistener *evl;

    memset(&ss, 0, sizeof ss);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_ADDRESS,
                       "listen: \"%s\" is not HOST:PORT with a numeric host", addr);
        return NULL;
    }
    evl = evconnlistener_new_bind(l->server->base, accept_cb, l,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                      LEV_OPT_REUSEABLE,
                                  1024, (struct sockaddr *)&ss, sslen);
    if (!evl) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_SYSTEM,
                       "cannot listen on %s: %s", addr, strerror(errno));
        return NULL;
    }
    return evl;
}

static struct evconnlistener *
bind_unix(struct proxy_listener *l, const char *path, bson_error_t *error)
{
    struct sockaddr_un sun;
    struct evconnlistener *evl;

    if (strlen(path) >= sizeof sun.sun_path) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_ADDRESS,
                       "listen_unix: path \"%s\" is too long", path);
        return NULL;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    unlink(path);
    evl = evconnlistener_new_bind(l->server->base, accept_cb, l,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
                                  (struct sockaddr *)&sun, sizeof sun);
    if (!evl) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_SYSTEM,
                       "cannot listen on unix socket %s: %s", path, strerror(errno));
        return NULL;
    }
    return evl;
}

struct proxy_listener *
proxy_listener_new(struct proxy_server *server, bson_error_t *error)
{
    struct proxy_listener *l = bson_malloc0(sizeof *l);
    const struct conf *conf = server->conf;

    l->server = server;
    l->resume_timer = evtimer_new(server->base, resume_cb, l);
    if (conf->listen && conf->listen[0]) {
        l->tcp = bind_tcp(l, conf->listen, error);
        if (!l->tcp)
            goto fail;
        evconnlistener_set_error_cb(l->tcp, error_cb);
    }
    if (conf->listen_unix && conf->listen_unix[0]) {
        l->unix_sock = bind_unix(l, conf->listen_unix, error);
        if (!l->unix_sock)
            goto fail;
        l->unix_path = bson_strdup(conf->listen_unix);
        evconnlistener_set_error_cb(l->unix_sock, error_cb);
    }
    if (!l->tcp && !l->unix_sock) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_MISSING,
                       "nothing to listen on: set listen or listen_unix");
        goto fail;
    }
    return l;
fail:
    proxy_listener_destroy(l);
    return NULL;
}

void
proxy_listener_destroy(struct proxy_listener *listener)
{
    if (!listener)
        return;
    if (listener->tcp)
        evconnlistener_free(listener->tcp);
    if (listener->unix_sock)
        evconnlistener_free(listener->unix_sock);
    if (listener->unix_path) {
        unlink(listener->unix_path);
        bson_free(listener->unix_path);
    }
    if (listener->resume_timer)
        event_free(listener->resume_timer);
    bson_free(listener);
}
