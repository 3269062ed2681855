/*
 * cache/redis_resp.c: what a Redis server sends, read as untrusted input
 * (see redis_resp.h). It owns the reply objects hiredis's reader builds
 * (built here, under a byte budget and an element limit, never with an
 * assert). It does not own a socket, the order of replies and commands
 * (redis_conn.c), what a subscription's pushes may be (redis_push.c), nor
 * what a command's reply must look like (redis.c).
 *
 * Why hiredis's reader is safe to feed anything (hiredis 0.14.1, read.c):
 * every malformed input (a bad type byte, a bad length, an integer that
 * does not parse, nesting deeper than 7) sets reader->err and makes
 * redisReaderGetReply return REDIS_ERR; its asserts check only its own task
 * stack. What it leaves to the object functions, and the asserts of
 * hiredis's own (hiredis.c), are the parent links: ours check them and
 * refuse instead. A NULL from an object function makes the reader fail
 * with "Out of memory": we remember the real reason to report it.
 */
#include "config.h"

#include "cache/redis_resp.h"

#include "cache/redis.h"

#include <stdlib.h>
#include <string.h>

/* Bytes a partial reply may hold on the wire beyond the object budget (headers, CRLFs). */
#define WIRE_SLACK 65536

struct cache_redis_resp {
    redisReader *reader;
    size_t max_bytes;
    size_t max_elements;
    size_t used;      /* object bytes of the reply being read */
    const char *over; /* why an object function or a limit refused, or NULL */
    bool failed;      /* unusable from the first error on */
};

/* ---- reply objects ------------------------------------------------------------ */

static bool
charge(struct cache_redis_resp *resp, size_t n)
{
    if (n > resp->max_bytes - resp->used) {
        resp->over = "a reply over the byte budget";
        return false;
    }
    resp->used += n;
    return true;
}

/* Links r into its parent array; false when the task does not name a free slot of one. */
static bool
attach(const redisReadTask *task, redisReply *r)
{
    redisReply *parent;

    if (!task->parent)
        return true;
    parent = task->parent->obj;
    if (!parent || parent->type != REDIS_REPLY_ARRAY || task->idx < 0 ||
        (size_t)task->idx >= parent->elements || parent->element[task->idx])
        return false;
    parent->element[task->idx] = r;
    return true;
}

/* A new object of type, charged to the reply; NULL when over budget or out of memory. */
static redisReply *
object_new(const redisReadTask *task, int type, size_t extra)
{
    struct cache_redis_resp *resp = task->privdata;
    redisReply *r;

    if (!charge(resp, sizeof *r + extra))
        return NULL;
    if (!(r = calloc(1, sizeof *r)))
        return NULL;
    r->type = type;
    return r;
}

/* Hands r to the reader, linked into its parent; frees it and returns NULL when it cannot be. */
static void *
object_done(const redisReadTask *task, redisReply *r)
{
    struct cache_redis_resp *resp = task->privdata;

    if (!attach(task, r)) {
        resp->over = "a reply element out of place";
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r;

    if (task->type != REDIS_REPLY_STRING && task->type != REDIS_REPLY_STATUS &&
        task->type != REDIS_REPLY_ERROR) {
        ((struct cache_redis_resp *)task->privdata)->over = "a string of an unknown type";
        return NULL;
    }
    if (len > SIZE_MAX - 1 || !(r = object_new(task, task->type, len + 1)))
        return NULL;
    if (!(r->str = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    if (len)
        memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return object_done(task, r);
}

static void *
create_array(const redisReadTask *task, int elements)
{
    struct cache_redis_resp *resp = task->privdata;
    redisReply *r;

    if (elements < 0 || (size_t)elements > resp->max_elements) {
        resp->over = "an array over the element limit";
        return NULL;
    }
    if (!(r = object_new(task, REDIS_REPLY_ARRAY, (size_t)elements * sizeof(redisReply *))))
        return NULL;
    if (elements > 0 && !(r->element = calloc((size_t)elements, sizeof(redisReply *)))) {
        free(r);
        return NULL;
    }
    r->elements = (size_t)elements;
    return object_done(task, r);
}

static void *
create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = object_new(task, REDIS_REPLY_INTEGER, 0);

    if (!r)
        return NULL;
    r->integer = value;
    return object_done(task, r);
}

static void *
create_nil(const redisReadTask *task)
{
    redisReply *r = object_new(task, REDIS_REPLY_NIL, 0);

    return r ? object_done(task, r) : NULL;
}

/* The reader's object functions (hiredis takes a non-const pointer; never written). */
static redisReplyObjectFunctions resp_functions = {
    create_string, create_array, create_integer, create_nil, freeReplyObject,
};

/* ---- the reader ----------------------------------------------------------------- */

struct cache_redis_resp *
cache_redis_resp_new(size_t max_bytes, size_t max_elements)
{
    struct cache_redis_resp *resp = bson_malloc0(sizeof *resp);

    resp->reader = redisReaderCreateWithFunctions(&resp_functions);
    if (!resp->reader) {
        bson_free(resp);
        return NULL;
    }
    resp->reader->privdata = resp; /* hiredis's redisReaderSetPrivdata casts a pointer to int */
    resp->max_bytes = max_bytes;
    resp->max_elements = max_elements;
    return resp;
}

void
cache_redis_resp_destroy(struct cache_redis_resp *resp)
{
    if (!resp)
        return;
    redisReaderFree(resp->reader);
    bson_free(resp);
}

static size_t
unparsed(const struct cache_redis_resp *resp)
{
    return resp->reader->len - resp->reader->pos;
}

static void
resp_error(struct cache_redis_resp *resp, bson_error_t *error)
{
    resp->failed = true;
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_PROTOCOL, "protocol error: %s",
                   resp->over ? resp->over : resp->reader->errstr);
}

bool
cache_redis_resp_feed(struct cache_redis_resp *resp, const void *data, size_t len,
                      bson_error_t *error)
{
    size_t limit;

    if (resp->failed || resp->reader->err) {
        resp_error(resp, error);
        return false;
    }
    limit = resp->max_bytes + 2 * WIRE_SLACK;
    if (len > limit || unparsed(resp) > limit - len) {
        resp->over = "a reply larger than the budget";
        resp_error(resp, error);
        return false;
    }
    if (len && redisReaderFeed(resp->reader, data, len) != REDIS_OK) {
        resp_error(resp, error);
        return false;
    }
    return true;
}

enum cache_redis_resp_status
cache_redis_resp_next(struct cache_redis_resp *resp, redisReply **reply, bson_error_t *error)
{
    void *obj = NULL;

    *reply = NULL;
    if (resp->failed || redisReaderGetReply(resp->reader, &obj) != REDIS_OK) {
        resp_error(resp, error);
        return CACHE_REDIS_RESP_ERROR;
    }
    if (!obj) {
        if (unparsed(resp) > resp->max_bytes + WIRE_SLACK) {
            resp->over = "a reply larger than the budget";
            resp_error(resp, error);
            return CACHE_REDIS_RESP_ERROR;
        }
        return CACHE_REDIS_RESP_NEED_MORE;
    }
    resp->used = 0;
    *reply = obj;
    return CACHE_REDIS_RESP_REPLY;
}
