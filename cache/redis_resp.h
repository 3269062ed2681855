/*
 * cache/redis_resp.h: reading what a Redis server sends, as untrusted
 * input, for the shared tier's connections (cache/redis_conn.h): a bounded
 * RESP reader. It is hiredis's redisReader (its parser returns an error for
 * any malformed input; its asserts only guard its own invariants) with
 * reply objects built here, under a byte budget and an element limit, so a
 * hostile server can neither assert nor make us allocate without bound.
 * No I/O, no event loop, no state beyond the reader's buffer. What the
 * replies of a subscription may be is cache/redis_push.h.
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
 * A value a reply did not keep (cache_redis_resp_spill): its object's type.
 * len is how many bytes it had; str is NULL.
 */
#define CACHE_REDIS_REPLY_SPILLED 64

/*
 * How the reply read next (a reply may arrive in several calls: say it
 * before each cache_redis_resp_next) treats its first `values` elements,
 * when it is an array: a string among them that would take the reply's
 * objects past the values' budget is not kept but consumed, and a
 * CACHE_REDIS_REPLY_SPILLED object stands in its place. The budget leaves
 * room for max_elements small elements beyond it (a nil, an integer or a
 * string of up to 64 bytes each) and is at least max_bytes less 1 MiB when
 * max_elements is at most 1024. 0 (the default): nothing spills, every
 * string counts against max_bytes alone.
 */
void cache_redis_resp_spill(struct cache_redis_resp *resp, size_t values);

/* The values' budget above: what a reply's objects may reach before a value spills. */
size_t cache_redis_resp_spill_budget(const struct cache_redis_resp *resp);

/*
 * The next whole reply, or NEED_MORE, or ERROR with error set (and the
 * reader unusable from then on). A reply is resp's: valid until the next
 * call of this function or cache_redis_resp_destroy; never free it.
 */
enum cache_redis_resp_status cache_redis_resp_next(struct cache_redis_resp *resp,
                                                   redisReply **reply, bson_error_t *error);

#endif
