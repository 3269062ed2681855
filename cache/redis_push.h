/*
 * cache/redis_push.h: the pushes a connection subscribed to one channel may
 * receive (["subscribe", channel, n] and ["message", channel, payload]),
 * every element's type and the channel checked; anything else is refused.
 * Pure functions over the bounded reader of cache/redis_resp.h, callable on
 * raw bytes cut anywhere, so a fuzz target drives exactly the code the
 * proxy runs (cache_redis_push_feed).
 */
#ifndef MONGOCACHE_CACHE_REDIS_PUSH_H
#define MONGOCACHE_CACHE_REDIS_PUSH_H

#include "cache/redis_resp.h"

#include <bson/bson.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

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

/* A message's payload names generations, one per line (see cache_redis_push_names). */
typedef void (*cache_redis_push_name_cb)(void *arg, const char *name, size_t len);

/*
 * The generation names a message's payload carries (what a bump published:
 * one per line), each to cb as a NUL-terminated copy. A message that begins
 * with "@" and the publisher's 16-character instance id is ours: nothing is
 * reported. Other "@" lines are skipped; a line that cannot be a name of
 * ours (over CACHE_REDIS_MAX_NAME, or holding a NUL) names everything: "*".
 */
void cache_redis_push_names(const char *payload, size_t len, const char instance[16],
                            cache_redis_push_name_cb cb, void *arg);

#endif
