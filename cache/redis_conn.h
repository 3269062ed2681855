/*
 * cache/redis_conn.h: one connection to Redis on the proxy's event loop,
 * for the shared tier (cache/redis.h). It replaces hiredis's async layer,
 * which asserts on replies it did not expect: here whatever the server
 * sends, the worst outcome is a dropped connection.
 *
 * A connection connects without blocking (a numeric address or a unix
 * socket at once, a host name through evdns), sends commands encoded by
 * hiredis (redisFormatCommandArgv) and pairs each reply with the oldest
 * command still waiting (a FIFO of callbacks). A connection may instead be
 * turned into a subscription to one channel: from then on every reply is a
 * push (cache/redis_push.h). Any protocol error, a reply with no command
 * waiting, a reply whose callback refuses its shape, a malformed or
 * unwanted push: the connection is dropped and its owner told (lost).
 * It does not reconnect, time commands out or log: its owner does.
 *
 * With TLS (a context from cache/redis_tls.h) the socket is a libevent
 * bufferevent_openssl: the handshake checks the server's certificate and
 * name before any command is written, and bytes go through the
 * bufferevent's buffers. Without it, the plaintext path below is untouched.
 */
#ifndef MONGOCACHE_CACHE_REDIS_CONN_H
#define MONGOCACHE_CACHE_REDIS_CONN_H

#include "cache/redis_push.h"
#include "cache/redis_url.h"

#include <bson/bson.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct evdns_base;
struct cache_redis_conn;
struct cache_redis_tls;

enum cache_redis_conn_loss {
    CACHE_REDIS_CONN_IO,       /* connect failed, closed by the server, a socket error */
    CACHE_REDIS_CONN_PROTOCOL, /* the server sent something we did not expect */
    CACHE_REDIS_CONN_TLS,      /* the TLS handshake failed (a certificate refused) or TLS broke */
};

/*
 * The owner's callbacks; arg is the arg given to cache_redis_conn_new.
 * lost: the connection is gone (why: for a log, no secret in it). Called at
 * most once, never before cache_redis_conn_new returned and never after
 * cache_redis_conn_free. The connection is inert from then on: free it
 * (from lost itself if convenient).
 * push: a push on a subscribed connection; return false to refuse it (the
 * connection is then lost as a protocol error). May be NULL when the
 * connection never subscribes.
 */
struct cache_redis_conn_handlers {
    void (*lost)(void *arg, enum cache_redis_conn_loss kind, const char *why);
    bool (*push)(void *arg, const struct cache_redis_push *push);
};

/*
 * Starts connecting to url (a unix socket, a numeric address, or a host
 * name resolved with dns, which must then not be NULL); over TLS when tls
 * is not NULL (borrowed for the connection's life; url's host is the name
 * the certificate must carry; a unix socket is refused). Replies are read
 * under max_reply bytes and max_elements elements per array
 * (cache_redis_resp_new). Commands may be sent at once: they go out when
 * connected. handlers is copied; url is only read during the call.
 * Returns NULL with error set when it fails at once (no callback is called
 * then); a failure found later is a call of lost. Free with
 * cache_redis_conn_free.
 */
struct cache_redis_conn *cache_redis_conn_new(struct event_base *base, struct evdns_base *dns,
                                              const struct cache_redis_url *url,
                                              const struct cache_redis_tls *tls,
                                              size_t max_reply, size_t max_elements,
                                              const struct cache_redis_conn_handlers *handlers,
                                              void *arg, bson_error_t *error);

/*
 * True while a TLS connection has not finished its handshake (for the
 * owner's timeout: a plaintext server never answers a ClientHello).
 */
bool cache_redis_conn_tls_pending(const struct cache_redis_conn *conn);

/*
 * Frees conn (accepts NULL). Every command still waiting is called back
 * with a NULL reply, in order, first. Safe from inside any of conn's
 * callbacks: then the work is done when the callback returns.
 */
void cache_redis_conn_free(struct cache_redis_conn *conn);

/*
 * A command's outcome: reply is the server's answer (valid only during the
 * call; an error reply is an answer), or NULL when the connection was lost
 * or freed before it came. Returns whether a reply of that shape can answer
 * the command: false drops the connection as a protocol error (the return
 * value is ignored when reply is NULL). Called exactly once per command
 * cache_redis_conn_send accepted.
 */
typedef bool (*cache_redis_conn_reply_cb)(void *arg, const redisReply *reply);

/*
 * Queues a command (argv[0..argc) of argvlen bytes each, copied). secret:
 * our encoded copy is wiped once queued (AUTH). Returns false when conn is
 * lost, freed, subscribed, or the command cannot be encoded: then cb is
 * never called.
 */
bool cache_redis_conn_send(struct cache_redis_conn *conn, int argc, const char **argv,
                           const size_t *argvlen, bool secret, cache_redis_conn_reply_cb cb,
                           void *arg) __attribute__((warn_unused_result));

/*
 * Queues a command already encoded as RESP (data, len bytes: copied into
 * the connection's output, nothing else allocated). Otherwise as
 * cache_redis_conn_send. The bytes must be exactly one whole command.
 */
bool cache_redis_conn_send_raw(struct cache_redis_conn *conn, const void *data, size_t len,
                               cache_redis_conn_reply_cb cb, void *arg)
    __attribute__((warn_unused_result));

/*
 * As cache_redis_conn_send_raw, for a command whose reply is an array
 * beginning with `values` values (a read batch's MGET): one that would take
 * the reply past the values' budget (max_reply less room for max_elements
 * small elements) reaches cb as a CACHE_REDIS_REPLY_SPILLED object
 * (cache/redis_resp.h) instead of losing the connection.
 */
bool cache_redis_conn_send_values(struct cache_redis_conn *conn, const void *data, size_t len,
                                  uint32_t values, cache_redis_conn_reply_cb cb, void *arg)
    __attribute__((warn_unused_result));

/*
 * Queues the command held in cmd (RESP, exactly one whole command) by
 * reference: its bytes are not copied. cmd stays the caller's (free it when
 * it likes: libevent keeps the bytes until they are written) and must not
 * be written into again. Otherwise as cache_redis_conn_send_raw.
 */
bool cache_redis_conn_send_buffer(struct cache_redis_conn *conn, struct evbuffer *cmd,
                                  cache_redis_conn_reply_cb cb, void *arg)
    __attribute__((warn_unused_result));

/*
 * Sends SUBSCRIBE channel and turns conn into a subscription: every later
 * reply goes to handlers.push, and conn takes no more commands. Only when
 * no command is waiting; false otherwise (or when conn is lost).
 */
bool cache_redis_conn_subscribe(struct cache_redis_conn *conn, const char *channel, size_t len)
    __attribute__((warn_unused_result));

#endif
