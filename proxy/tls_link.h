/*
 * proxy/tls_link.h: one connection's TLS session (made in proxy/tls.c,
 * driven by proxy/conn.c), shaped like the socket calls it replaces:
 * proxy_tls_link_recv as recv, proxy_tls_link_send as send (errno EAGAIN
 * when the socket must be ready first; which way, when it is not the
 * obvious one, says proxy_tls_link_wants). Only proxy/conn.c uses it.
 */
#ifndef MONGOCACHE_PROXY_TLS_LINK_H
#define MONGOCACHE_PROXY_TLS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proxy_tls;
struct proxy_tls_link;

/* Where a handshake stands after a step. */
enum proxy_tls_step {
    PROXY_TLS_DONE,       /* up: records flow */
    PROXY_TLS_WANT_READ,  /* call again once the socket is readable */
    PROXY_TLS_WANT_WRITE, /* call again once the socket is writable */
    PROXY_TLS_EOF,        /* the peer left before it began (nothing to report) */
    PROXY_TLS_FAILED,     /* refused: proxy_tls_link_error says why */
};

/*
 * A session on tls's context: accepting when tls is the clients' context,
 * connecting otherwise, then checking the server's certificate against
 * host (a name or an address; borrowed for the call) unless the context
 * turned that off. NULL when out of memory. Free with proxy_tls_link_free.
 */
struct proxy_tls_link *proxy_tls_link_new(const struct proxy_tls *tls, const char *host);
/* Sends close_notify once if the session is up and sound, and frees it (not the socket). */
void proxy_tls_link_free(struct proxy_tls_link *link);
/* The socket the session reads and writes (borrowed: the connection closes it). */
bool proxy_tls_link_set_fd(struct proxy_tls_link *link, int fd)
    __attribute__((warn_unused_result));

/* One step of the handshake on fd (a server first checks that the client speaks TLS). */
enum proxy_tls_step proxy_tls_link_handshake(struct proxy_tls_link *link, int fd);

/*
 * As recv: bytes decrypted into buf (up to len, several records when
 * OpenSSL holds them already), 0 at the end of stream, -1 with errno
 * (EAGAIN: nothing now).
 */
ssize_t proxy_tls_link_recv(struct proxy_tls_link *link, void *buf, size_t len);
/* As send: plaintext bytes taken (written as records), -1 with errno (EAGAIN: none now). */
ssize_t proxy_tls_link_send(struct proxy_tls_link *link, const void *buf, size_t len);

/* True when bytes (or the end) wait inside the session: no socket event will say so. */
bool proxy_tls_link_pending(const struct proxy_tls_link *link);
/* EV_READ when a send waits for the socket to be readable, EV_WRITE when a recv waits for
 * it to be writable (a key update), 0 otherwise. */
short proxy_tls_link_wants(const struct proxy_tls_link *link);
/* Ends the session as failed, for why (a handshake that took too long). */
void proxy_tls_link_fail(struct proxy_tls_link *link, const char *why);
/* Connecting: the server refused the handshake with an alert read before any
 * application byte (TLS 1.3 judges a client certificate so), so it read nothing sent. */
bool proxy_tls_link_refused(const struct proxy_tls_link *link);
/* Whether its handshake ended well (a failure after it is a broken stream, not a refusal). */
bool proxy_tls_link_open(const struct proxy_tls_link *link);
/* Why the handshake or the stream failed, or NULL. */
const char *proxy_tls_link_error(const struct proxy_tls_link *link);

#endif
