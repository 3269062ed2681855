/*
 * proxy/notify.c: owns the sd_notify protocol (systemd's sd_notify(3),
 * written here in a few lines rather than linking libsystemd): a state
 * change is one datagram of "VARIABLE=VALUE" lines sent to the AF_UNIX
 * socket named by $NOTIFY_SOCKET, a path, or "@name" for a socket in the
 * abstract namespace. A fresh socket per message: notifications are rare
 * (start, reload, stop), and nothing stays open between them.
 *
 * Does not own when to notify: proxy/main.c sends READY=1 once the
 * listeners accept, RELOADING=1 / READY=1 around a SIGHUP reload, and
 * STOPPING=1 when SIGTERM or SIGINT starts the drain. A failure here is
 * reported to the caller, never fatal: a proxy that serves clients but
 * cannot tell systemd so is better than one that exits.
 */
#include "config.h"

#include "proxy/notify.h"

#include "conf/clock.h"
#include "conf/error.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

bool
proxy_notify_send(const char *state, bson_error_t *error)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr;
    size_t len;
    socklen_t addr_len;
    ssize_t sent;
    int fd;

    if (path == NULL || path[0] == '\0')
        return true;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path || len < 2) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_ADDRESS,
                       "NOTIFY_SOCKET is neither an absolute path nor @abstract");
        return false;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no terminator */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_SYSTEM,
                       "socket for NOTIFY_SOCKET: %s", strerror(errno));
        return false;
    }
    do {
        sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_SYSTEM,
                       "send to NOTIFY_SOCKET %s: %s", path, strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

bool
proxy_notify_reloading(bson_error_t *error)
{
    char state[64];

    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)conf_clock_us());
    return proxy_notify_send(state, error);
}
