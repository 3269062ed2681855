/*
 * cache/redis_push.c: the rules of a subscription's pushes (see
 * redis_push.h): exactly three elements, the kind a bulk string
 * ("subscribe" or "message", as Redis writes them), the channel a bulk
 * string equal to ours, then a positive integer count or a bulk payload.
 * And the names a message's payload carries. It does not own reading the
 * bytes (redis_resp.c), nor what the tier does with a push (redis.c: one
 * confirmation, then messages; a name, a bump).
 */
#include "config.h"

#include "cache/redis_push.h"

#include "cache/redis.h"

#include <string.h>

static bool
push_fail(bson_error_t *error, const char *what)
{
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_PUSH, "malformed push: %s",
                   what);
    return false;
}

static bool
is_bulk(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

static bool
bulk_is(const redisReply *r, const char *s, size_t len)
{
    return is_bulk(r) && r->len == len && (len == 0 || memcmp(r->str, s, len) == 0);
}

bool
cache_redis_push_parse(const redisReply *reply, const char *channel, size_t channel_len,
                       struct cache_redis_push *push, bson_error_t *error)
{
    const redisReply *last;

    memset(push, 0, sizeof *push);
    if (!reply)
        return push_fail(error, "no reply");
    if (reply->type == REDIS_REPLY_ERROR) {
        char text[81];
        size_t i = 0;

        /* Printable ASCII only, at most 80 bytes: the text comes from the server. */
        for (; reply->str && i < reply->len && i + 1 < sizeof text; i++)
            text[i] = reply->str[i] >= 0x20 && reply->str[i] < 0x7f && reply->str[i] != '"'
                          ? reply->str[i]
                          : '?';
        text[i] = '\0';
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_SUBSCRIBE,
                       "subscription refused: %s", text);
        return false;
    }
    if (reply->type != REDIS_REPLY_ARRAY)
        return push_fail(error, "not an array");
    if (reply->elements != 3 || !reply->element)
        return push_fail(error, "not three elements");
    if (!is_bulk(reply->element[0]))
        return push_fail(error, "its kind is not a bulk string");
    if (!bulk_is(reply->element[1], channel, channel_len))
        return push_fail(error, "not for our channel");
    last = reply->element[2];
    if (bulk_is(reply->element[0], "subscribe", 9)) {
        if (!last || last->type != REDIS_REPLY_INTEGER || last->integer < 1)
            return push_fail(error, "a subscription count that is not a positive integer");
        push->kind = CACHE_REDIS_PUSH_SUBSCRIBED;
        push->count = last->integer;
        return true;
    }
    if (bulk_is(reply->element[0], "message", 7)) {
        if (!is_bulk(last))
            return push_fail(error, "a message payload that is not a bulk string");
        push->kind = CACHE_REDIS_PUSH_MESSAGE;
        push->payload = last->str;
        push->payload_len = last->len;
        return true;
    }
    return push_fail(error, "a kind other than subscribe or message");
}

bool
cache_redis_push_feed(struct cache_redis_resp *resp, const char *channel, size_t channel_len,
                      const void *data, size_t len, cache_redis_push_cb cb, void *arg,
                      bson_error_t *error)
{
    if (len && !cache_redis_resp_feed(resp, data, len, error))
        return false;
    for (;;) {
        struct cache_redis_push push;
        redisReply *reply;
        bool ok;

        switch (cache_redis_resp_next(resp, &reply, error)) {
        case CACHE_REDIS_RESP_NEED_MORE:
            return true;
        case CACHE_REDIS_RESP_ERROR:
            return false;
        case CACHE_REDIS_RESP_REPLY:
            break;
        }
        ok = cache_redis_push_parse(reply, channel, channel_len, &push, error);
        if (ok && !cb(arg, &push)) {
            bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_PUSH_UNEXPECTED,
                           "unexpected push: %s",
                           push.kind == CACHE_REDIS_PUSH_SUBSCRIBED ? "subscribe" : "message");
            ok = false;
        }
        if (!ok) /* the reply is the reader's (redis_resp.h) */
            return false;
    }
}

void
cache_redis_push_names(const char *payload, size_t len, const char instance[16],
                       cache_redis_push_name_cb cb, void *arg)
{
    const char *msg = payload;
    const char *end = payload + len;
    char name[CACHE_REDIS_MAX_NAME + 1];

    if (len >= 17 && msg[0] == '@' && memcmp(msg + 1, instance, 16) == 0 &&
        (len == 17 || msg[17] == '\n'))
        return;
    while (msg < end) {
        const char *nl = memchr(msg, '\n', (size_t)(end - msg));
        size_t line = (size_t)((nl ? nl : end) - msg);

        if (line > 0 && msg[0] != '@') {
            size_t n = line;

            if (n > CACHE_REDIS_MAX_NAME || memchr(msg, '\0', n))
                n = (size_t)bson_snprintf(name, sizeof name, "*"); /* not one of ours */
            else
                memcpy(name, msg, n);
            name[n] = '\0';
            cb(arg, name, n);
        }
        msg += line + (nl ? 1 : 0); /* the whole line, whatever was reported */
    }
}
