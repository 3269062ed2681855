/*
 * cache/redis_resp.h: reading what a Redis server sends, as untrusted
 * input, for the shared tier's connections (cache/redis_conn.h). Two parts:
 *
 *   - a bounded RESP reader: hiredis's redisReader (its parser returns an
 *     error for any malformed input; its asserts only guard its own
 *     invariants) with reply objects built here, under a byte budget and an
 *     element limit, so a hostile server can neither assert nor make us
 *     allocate without bound;
 *   - the subscription's pushes: which replies a connection subscribed to
 *     one channel may receive (["subscribe", channel, n] and
 *     ["message", channel, payload]), every element's type and the channel
 *     checked. Pure functions, callable on raw bytes cut anywhere, so a fuzz
 *     target can drive exactly the code the proxy runs.
 *
 * No I/O, no event loop, no state beyond the reader's buffer.
 */
#ifndef MONGOCACHE_CACHE_REDIS_RESP_H
#define MONGOCACHE_CACHE_REDIS_RESP_H

#include <bson/bson.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_redis_resp;

/*
 * A reader whose every reply holds at most max_bytes (strings, element
 * arrays and reply objects together) and whose arrays hold at most
 * max_elements elements. Free with cache_redis_resp_destroy.
 */
struct cache_redis_resp *cache_redis_resp_new(size_t max_bytes, size_t max_elements);
void cache_redis_resp_destroy(struct cache_redis_resp *resp);

enum cache_redis_resp_status {
    CACHE_REDIS_RESP_REPLY,     /* *reply is one whole reply */
    CACHE_REDIS_RESP_NEED_MORE, /* no whole reply buffered yet */
    CACHE_REDIS_RESP_ERROR,     /* malformed or over a limit: the stream is unusable */
};

/*
 * Buffers len bytes read from the server (copied). Call cache_redis_resp_next
 * until NEED_MORE before feeding more: then the bytes buffered are at most one
 * partial reply and a feed that would take them past the budget is refused
 * (false, error set; the reader is unusable from then on).
 */
bool cache_redis_resp_feed(struct cache_redis_resp *resp, const void *data, size_t len,
                           bson_error_t *error) __attribute__((warn_unused_result));

/*
 * The next whole reply, taken by the caller (free with freeReplyObject), or
 * NEED_MORE, or ERROR with error set (and the reader unusable from then on).
 */
enum cache_redis_resp_status cache_redis_resp_next(struct cache_redis_resp *resp,
                                                   redisReply **reply, bson_error_t *error);

/* ---- the subscription's pushes ---------------------------------------------------- */

enum cache_redis_push_kind {
    CACHE_REDIS_PUSH_SUBSCRIBED, /* ["subscribe", channel, n >= 1] */
    CACHE_REDIS_PUSH_MESSAGE,    /* ["message", channel, payload] */
};

/* A push, valid only while the reply it was read from lives. */
struct cache_redis_push {
    enum cache_redis_push_kind kind;
    const char *payload; /* MESSAGE: the payload (binary; not NUL-terminated for us) */
    size_t payload_len;
    long long count; /* SUBSCRIBED: channels now subscribed */
};

/*
 * Interprets a reply read on a connection subscribed to channel (exactly,
 * binary). Anything else (an error reply, another kind, a wrong arity or
 * element type, another channel, a count below 1) is refused: false with
 * error set.
 */
bool cache_redis_push_parse(const redisReply *reply, const char *channel, size_t channel_len,
                            struct cache_redis_push *push, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * Called for each push, in order. Returns false to refuse it (a push that
 * is well formed but not wanted now, e.g. a second confirmation): then
 * cache_redis_push_feed stops and fails.
 */
typedef bool (*cache_redis_push_cb)(void *arg, const struct cache_redis_push *push);

/*
 * Feeds len bytes (data may be NULL when len is 0: only what is buffered is
 * read) to resp and hands each whole reply, interpreted as a push, to cb.
 * Returns false with error set at the first fault (malformed bytes, a limit,
 * a push refused by cache_redis_push_parse or by cb): the connection must be
 * dropped. Bytes may be cut anywhere between calls.
 */
bool cache_redis_push_feed(struct cache_redis_resp *resp, const char *channel,
                           size_t channel_len, const void *data, size_t len,
                           cache_redis_push_cb cb, void *arg, bson_error_t *error)
    __attribute__((warn_unused_result));

#endif
