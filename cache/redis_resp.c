/*
 * cache/redis_resp.c: what a Redis server sends, read as untrusted input
 * (see redis_resp.h). It owns the reply objects hiredis's reader builds
 * (built here, under a byte budget and an element limit, never with an
 * assert). It does not own a socket, the order of replies and commands
 * (redis_conn.c), what a subscription's pushes may be (redis_push.c), nor
 * what a command's reply must look like (redis_cmd.c).
 *
 * Why hiredis's reader is safe to feed anything (hiredis 0.14.1, read.c):
 * every malformed input (a bad type byte, a bad length, an integer that
 * does not parse, nesting deeper than 7) sets reader->err and makes
 * redisReaderGetReply return REDIS_ERR; its asserts check only its own task
 * stack. What it leaves to the object functions, and the asserts of
 * hiredis's own (hiredis.c), are the parent links: ours check them and
 * refuse instead. A NULL from an object function makes the reader fail
 * with "Out of memory": we remember the real reason to report it.
 *
 * Memory. A reply's objects (redisReply structs, element arrays, strings)
 * come from an arena the reader owns: a block of ARENA_BLOCK bytes reused
 * for every reply, and, for what does not fit (a large value), one malloc
 * each. The arena is rewound when the next reply is asked for, so reading
 * a hit's reply allocates nothing once the block exists, and nobody frees
 * a reply: the object functions' free is a no-op (hiredis calls it on a
 * partial reply it gives up on; that memory is rewound or freed with the
 * reader).
 *
 * Spilling. A reply whose first elements are values (a read batch's MGET,
 * cache/redis.c) may be larger than the budget in all, each value fitting
 * alone. The caller says so before reading it (cache_redis_resp_spill): a
 * value that would take the reply past its values' budget is consumed
 * without being kept, and a SPILLED object, which costs a few bytes, stands
 * in its place. So a reply's objects stay under the budget whatever it
 * holds, and the reader's buffer beside them holds at most one partial
 * value and a feed (hiredis drops what it has consumed at the end of each
 * call asking it for a reply, redis_conn.c asks after each 4 KB fed): at
 * worst about twice the budget per connection, as without spilling.
 */
#include "config.h"

#include "cache/redis_resp.h"

#include "cache/redis.h"

#include <stdlib.h>
#include <string.h>

/* Bytes a partial reply may hold on the wire beyond the object budget (headers, CRLFs). */
#define WIRE_SLACK 65536
/* The arena's reused block: a lookup's reply (value, counters) fits for values up to ~15 KB. */
#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16
/* What a small element (a nil, an integer, a string of up to 64 bytes) is charged, at most. */
#define SMALL_ELEMENT (sizeof(redisReply) + 65 + sizeof(redisReply *))

struct cache_redis_resp {
    redisReader *reader;
    size_t max_bytes;
    size_t max_elements;
    size_t used;      /* object bytes of the reply being read */
    size_t spill;     /* elements of the next reply that may spill (cache_redis_resp_spill) */
    size_t spill_budget; /* what the reply's objects may reach before one does */
    const char *over; /* why an object function or a limit refused, or NULL */
    bool failed;      /* unusable from the first error on */
    bool handed_out;  /* the last call returned a reply: rewind before the next */
    char *block;      /* ARENA_BLOCK bytes, reused */
    size_t block_used;
    void *big; /* allocations that did not fit, linked through their first word */
};

/* ---- the arena ------------------------------------------------------------------ */

/* n bytes (zeroed when zero) for the reply being read; NULL when out of memory. */
static void *
arena_alloc(struct cache_redis_resp *resp, size_t n, bool zero)
{
    char *p;

    if (n > SIZE_MAX - 2 * ARENA_ALIGN)
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n <= ARENA_BLOCK - resp->block_used) {
        p = resp->block + resp->block_used;
        resp->block_used += n;
    } else {
        char *b = malloc(ARENA_ALIGN + n);

        if (!b)
            return NULL;
        memcpy(b, &resp->big, sizeof resp->big);
        resp->big = b;
        p = b + ARENA_ALIGN;
    }
    if (zero)
        memset(p, 0, n);
    return p;
}

/* Forgets every object: the block is reused, what did not fit is freed. */
static void
arena_rewind(struct cache_redis_resp *resp)
{
    while (resp->big) {
        char *b = resp->big;

        memcpy(&resp->big, b, sizeof resp->big);
        free(b);
    }
    resp->block_used = 0;
}

/* The reader's free: objects live in the arena (see the file comment). */
static void
object_free(void *obj)
{
    (void)obj;
}

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

/*
 * A new object of type, charged to the reply with extra bytes, of which
 * `inline_extra` are allocated right after it (a string's bytes); NULL when
 * over budget or out of memory.
 */
static redisReply *
object_new(const redisReadTask *task, int type, size_t extra, size_t inline_extra)
{
    struct cache_redis_resp *resp = task->privdata;
    redisReply *r;

    if (!charge(resp, sizeof *r + extra))
        return NULL;
    if (!(r = arena_alloc(resp, sizeof *r + inline_extra, false)))
        return NULL;
    memset(r, 0, sizeof *r); /* a constant size: a few stores, no call */
    r->type = type;
    return r;
}

/* Hands r to the reader, linked into its parent; NULL when it cannot be (r stays in the arena). */
static void *
object_done(const redisReadTask *task, redisReply *r)
{
    struct cache_redis_resp *resp = task->privdata;

    if (!attach(task, r)) {
        resp->over = "a reply element out of place";
        return NULL;
    }
    return r;
}

/* True when the string task would take the reply past its values' budget and may spill. */
static bool
spills(const struct cache_redis_resp *resp, const redisReadTask *task, size_t len)
{
    /* Elements of the top array only: its task has no parent. */
    if (!task->parent || task->parent->parent || task->idx < 0 ||
        (size_t)task->idx >= resp->spill || task->type != REDIS_REPLY_STRING)
        return false;
    return resp->used > resp->spill_budget ||
           len + 1 + sizeof(redisReply) > resp->spill_budget - resp->used;
}

static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
    struct cache_redis_resp *resp = task->privdata;
    redisReply *r;

    if (task->type != REDIS_REPLY_STRING && task->type != REDIS_REPLY_STATUS &&
        task->type != REDIS_REPLY_ERROR) {
        resp->over = "a string of an unknown type";
        return NULL;
    }
    if (spills(resp, task, len)) {
        if (!(r = object_new(task, CACHE_REDIS_REPLY_SPILLED, 0, 0)))
            return NULL;
        r->len = len; /* str stays NULL */
        return object_done(task, r);
    }
    /* The bytes right after the object: one allocation. */
    if (len > SIZE_MAX - 1 - sizeof *r - 2 * ARENA_ALIGN ||
        !(r = object_new(task, task->type, len + 1, len + 1)))
        return NULL;
    r->str = (char *)(r + 1);
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
    if (!(r = object_new(task, REDIS_REPLY_ARRAY, (size_t)elements * sizeof(redisReply *), 0)))
        return NULL;
    if (elements > 0 &&
        !(r->element = arena_alloc(resp, (size_t)elements * sizeof(redisReply *), true)))
        return NULL;
    r->elements = (size_t)elements;
    return object_done(task, r);
}

static void *
create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = object_new(task, REDIS_REPLY_INTEGER, 0, 0);

    if (!r)
        return NULL;
    r->integer = value;
    return object_done(task, r);
}

static void *
create_nil(const redisReadTask *task)
{
    redisReply *r = object_new(task, REDIS_REPLY_NIL, 0, 0);

    return r ? object_done(task, r) : NULL;
}

/* The reader's object functions (hiredis takes a non-const pointer; never written). */
static redisReplyObjectFunctions resp_functions = {
    create_string, create_array, create_integer, create_nil, object_free,
};

/* ---- the reader ----------------------------------------------------------------- */

struct cache_redis_resp *
cache_redis_resp_new(size_t max_bytes, size_t max_elements)
{
    struct cache_redis_resp *resp = bson_malloc0(sizeof *resp);

    resp->block = bson_malloc(ARENA_BLOCK);
    resp->reader = redisReaderCreateWithFunctions(&resp_functions);
    if (!resp->reader) {
        bson_free(resp->block);
        bson_free(resp);
        return NULL;
    }
    resp->reader->privdata = resp; /* hiredis's redisReaderSetPrivdata casts a pointer to int */
    resp->max_bytes = max_bytes;
    resp->max_elements = max_elements;
    /* Room for max_elements small elements beyond the values (saturating). */
    resp->spill_budget = max_elements < max_bytes / SMALL_ELEMENT
                             ? max_bytes - max_elements * SMALL_ELEMENT
                             : 0;
    return resp;
}

void
cache_redis_resp_spill(struct cache_redis_resp *resp, size_t values)
{
    resp->spill = values;
}

size_t
cache_redis_resp_spill_budget(const struct cache_redis_resp *resp)
{
    return resp->spill_budget;
}

void
cache_redis_resp_destroy(struct cache_redis_resp *resp)
{
    if (!resp)
        return;
    redisReaderFree(resp->reader); /* its partial reply, if any, is in the arena */
    arena_rewind(resp);
    bson_free(resp->block);
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
    if (resp->handed_out) { /* the reply returned last is the caller's no more */
        resp->handed_out = false;
        arena_rewind(resp);
    }
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
    resp->handed_out = true;
    *reply = obj;
    return CACHE_REDIS_RESP_REPLY;
}
