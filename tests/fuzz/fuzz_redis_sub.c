/*
 * tests/fuzz/fuzz_redis_sub.c: the Redis tier's fuzz target, the
 * other half: what a Redis server sends on the shared tier's connections, read
 * by the code the proxy runs. The input's first byte chooses where the
 * stream is cut (a server's bytes arrive in any slices); the rest is the
 * stream.
 *   - As the subscription reads it (cache_redis_push_feed, 1 MiB and 3
 *     elements a reply): every push accepted is a confirmation or a message
 *     on our channel, and each message's payload is read for generation
 *     names (cache_redis_push_names) as redis.c reads it.
 *   - As the command connection reads it (cache_redis_resp_feed/next, the
 *     proxy's budget): every reply taken is freed.
 *   - As the command connection reads a read batch's reply, under a small
 *     budget whose first values may spill (cache_redis_resp_spill): only
 *     those may, each with no bytes, and what is kept stays in the budget.
 * Properties: cutting the stream anywhere changes nothing (the same pushes,
 * names and replies, the same verdict); a name is never empty, never
 * longer than CACHE_REDIS_MAX_NAME, never holds a NUL or a newline.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "cache/redis.h"
#include "cache/redis_push.h"
#include "cache/redis_resp.h"

#include <string.h>

static const char channel[] = "mongocache:inval";
static const char instance[16] = {'0', '1', '2', '3', '4', '5', '6', '7',
                                  '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};

/* What one reading of the stream saw: counts and a running hash. */
struct seen {
    uint64_t pushes;
    uint64_t names;
    uint64_t hash;
    bool ok;
};

static void
mix(struct seen *s, const void *data, size_t len)
{
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++)
        s->hash = (s->hash ^ p[i]) * UINT64_C(0x100000001b3);
    s->hash = (s->hash ^ len) * UINT64_C(0x100000001b3);
}

static void
on_name(void *arg, const char *name, size_t len)
{
    struct seen *s = arg;

    FUZZ_CHECK(len >= 1 && len <= CACHE_REDIS_MAX_NAME && strlen(name) == len);
    FUZZ_CHECK(memchr(name, '\n', len) == NULL);
    s->names++;
    mix(s, name, len);
}

static bool
on_push(void *arg, const struct cache_redis_push *push)
{
    struct seen *s = arg;

    s->pushes++;
    if (push->kind == CACHE_REDIS_PUSH_SUBSCRIBED) {
        FUZZ_CHECK(push->count >= 1);
        mix(s, &push->count, sizeof push->count);
    } else {
        FUZZ_CHECK(push->kind == CACHE_REDIS_PUSH_MESSAGE);
        mix(s, push->payload, push->payload_len);
        cache_redis_push_names(push->payload, push->payload_len, instance, on_name, s);
    }
    return true;
}

/* The stream read as the subscription reads it, in slices of `cut` bytes. */
static struct seen
subscription(const uint8_t *data, size_t len, size_t cut)
{
    struct cache_redis_resp *resp = cache_redis_resp_new(1024 * 1024, 3);
    struct seen s = {0, 0, 0, true};
    bson_error_t error;

    for (size_t at = 0; at < len && s.ok; at += cut) {
        size_t n = len - at < cut ? len - at : cut;

        s.ok = cache_redis_push_feed(resp, channel, sizeof channel - 1, data + at, n, on_push, &s,
                                     &error);
    }
    cache_redis_resp_destroy(resp);
    return s;
}

#define SPILL_BUDGET 4096
#define SPILL_VALUES 4
#define SPILL_ELEMENTS 8

/*
 * A reply read with SPILL_VALUES values allowed to spill: only those spill,
 * with no bytes; replaying the reader's charges over a flat array, a value
 * was kept exactly when it fit the values' budget at its turn.
 */
static void
spilled(struct seen *s, const redisReply *reply, size_t budget)
{
    size_t used;
    bool flat = true;

    if (reply->type != REDIS_REPLY_ARRAY)
        return;
    used = sizeof(redisReply) + reply->elements * sizeof(redisReply *);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        size_t cost = sizeof(redisReply) + e->len + 1;

        FUZZ_CHECK(e->type != CACHE_REDIS_REPLY_SPILLED || (i < SPILL_VALUES && !e->str));
        if (e->type == CACHE_REDIS_REPLY_SPILLED)
            mix(s, &e->len, sizeof e->len);
        flat = flat && e->type != REDIS_REPLY_ARRAY;
        if (flat && i < SPILL_VALUES && e->type == CACHE_REDIS_REPLY_SPILLED)
            FUZZ_CHECK(used > budget || cost > budget - used);
        if (flat && i < SPILL_VALUES && e->type == REDIS_REPLY_STRING)
            FUZZ_CHECK(used <= budget && cost <= budget - used);
        used += e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ||
                        e->type == REDIS_REPLY_ERROR
                    ? cost
                    : sizeof(redisReply);
    }
}

/*
 * The stream read as the command connection reads it, in slices of `cut`
 * bytes: with the proxy's budget, or (batch) a small one whose first values
 * may spill.
 */
static struct seen
commands(const uint8_t *data, size_t len, size_t cut, bool batch)
{
    struct cache_redis_resp *resp =
        batch ? cache_redis_resp_new(SPILL_BUDGET, SPILL_ELEMENTS)
              : cache_redis_resp_new(97 * 1000 * 1000, 66);
    struct seen s = {0, 0, 0, true};
    bson_error_t error;

    for (size_t at = 0; at < len && s.ok; at += cut) {
        size_t n = len - at < cut ? len - at : cut;
        enum cache_redis_resp_status st;
        redisReply *reply;

        s.ok = cache_redis_resp_feed(resp, data + at, n, &error);
        while (s.ok) {
            cache_redis_resp_spill(resp, batch ? SPILL_VALUES : 0);
            st = cache_redis_resp_next(resp, &reply, &error);
            if (st == CACHE_REDIS_RESP_NEED_MORE)
                break;
            if (st == CACHE_REDIS_RESP_ERROR) {
                s.ok = false;
                break;
            }
            s.pushes++;
            mix(&s, &reply->type, sizeof reply->type);
            if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_ERROR ||
                reply->type == REDIS_REPLY_STATUS)
                mix(&s, reply->str, reply->len);
            if (batch)
                spilled(&s, reply, cache_redis_resp_spill_budget(resp));
        }
    }
    cache_redis_resp_destroy(resp);
    return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut;
    struct seen whole, sliced;

    if (size < 1)
        return 0;
    cut = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    whole = subscription(data, size, size ? size : 1);
    sliced = subscription(data, size, cut);
    /* Whatever the slices, the same reading (a refusal may come at any slice);
     * fed whole, an input past the budget is refused at once. */
    FUZZ_CHECK(size >= 1024 * 1024 || whole.ok == sliced.ok);
    if (whole.ok && sliced.ok)
        FUZZ_CHECK(whole.pushes == sliced.pushes && whole.names == sliced.names &&
                   whole.hash == sliced.hash);
    for (int batch = 0; batch < 2; batch++) {
        whole = commands(data, size, size ? size : 1, batch);
        sliced = commands(data, size, cut, batch);
        /* Fed whole, an input past the feed's limit (budget and slack) is refused at once. */
        FUZZ_CHECK((batch && size >= SPILL_BUDGET + 2 * 65536) || whole.ok == sliced.ok);
        if (whole.ok && sliced.ok)
            FUZZ_CHECK(whole.pushes == sliced.pushes && whole.hash == sliced.hash);
    }
    (void)sliced.names;
    return 0;
}
