/*
 * cache/coalesce.c: owns the table of reads in flight that identical reads
 * may wait for (see coalesce.h), the waits (both kinds: a follower's and a
 * Redis lookup's), their timers and the coalescing counters. It does not
 * decide whether a read is cacheable or stored (cache.c), and never looks
 * inside a value: a follower gets the leader's value by reference.
 */
#include "config.h"

#include "cache/coalesce.h"

#include "cache/redis.h"

#include <event2/event.h>
#include <string.h>

#define BUCKETS 1024

/* A miss in flight that identical reads may wait for. */
struct cache_inflight {
    struct cache_inflight *next; /* hash chain */
    const struct cache_key *key; /* the leader's, borrowed */
    const uint8_t *material;     /* the leader's, borrowed */
    size_t material_len;
    struct cache_wait *waiters;
    struct cache_value *stored; /* what the leader's reply became, or NULL */
};

struct cache_coalesce {
    struct event_base *base;
    uint64_t coalesced;
    uint64_t timeouts;
    struct cache_inflight *buckets[BUCKETS];
};

struct cache_coalesce *
cache_coalesce_new(struct event_base *base)
{
    struct cache_coalesce *t = bson_malloc0(sizeof *t);

    t->base = base;
    return t;
}

void
cache_coalesce_destroy(struct cache_coalesce *t)
{
    bson_free(t);
}

static struct cache_inflight **
slot(struct cache_coalesce *t, const struct cache_key *key)
{
    return &t->buckets[(key->lo ^ key->hi ^ (key->lo >> 29)) % BUCKETS];
}

struct cache_inflight *
cache_coalesce_find(struct cache_coalesce *t, const struct cache_key *key,
                    const uint8_t *material, size_t len)
{
    for (struct cache_inflight *f = *slot(t, key); f; f = f->next)
        if (cache_key_equal(f->key, key) && f->material_len == len &&
            memcmp(f->material, material, len) == 0)
            return f;
    return NULL;
}

struct cache_inflight *
cache_coalesce_lead(struct cache_coalesce *t, const struct cache_key *key,
                    const uint8_t *material, size_t len)
{
    struct cache_inflight **s = slot(t, key);
    struct cache_inflight *f = bson_malloc0(sizeof *f);

    f->key = key;
    f->material = material;
    f->material_len = len;
    f->next = *s;
    *s = f;
    return f;
}

void
cache_coalesce_wait_stop(struct cache_wait *w)
{
    if (w->prev) {
        *w->prev = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->prev = NULL;
        w->next = NULL;
    }
    if (w->timer)
        event_free(w->timer);
    w->timer = NULL;
    if (w->op)
        cache_redis_cancel(w->op);
    w->op = NULL;
    if (w->backref)
        *w->backref = NULL;
    w->backref = NULL;
    w->pending = NULL;
    cache_value_unref(w->value);
    w->value = NULL;
}

void
cache_coalesce_wait_free(struct cache_wait *w)
{
    if (!w)
        return;
    cache_coalesce_wait_stop(w);
    bson_free(w);
}

struct cache_wait *
cache_coalesce_wait_new(cache_wait_cb cb, void *arg)
{
    struct cache_wait *w = bson_malloc0(sizeof *w);

    w->cb = cb;
    w->arg = arg;
    return w;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_wait *w = arg;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;

    (void)fd;
    (void)what;
    w->table->timeouts++;
    cache_coalesce_wait_free(w);
    cb(cb_arg, CACHE_BYPASS, NULL);
}

struct cache_wait *
cache_coalesce_follow(struct cache_coalesce *t, struct cache_inflight *f, int64_t wait_ms,
                      cache_wait_cb cb, void *arg)
{
    struct cache_wait *w = cache_coalesce_wait_new(cb, arg);
    struct timeval tv;

    w->table = t;
    w->next = f->waiters;
    if (w->next)
        w->next->prev = &w->next;
    w->prev = &f->waiters;
    f->waiters = w;
    w->timer = evtimer_new(t->base, timeout_cb, w);
    tv.tv_sec = wait_ms / 1000;
    tv.tv_usec = (wait_ms % 1000) * 1000;
    evtimer_add(w->timer, &tv);
    t->coalesced++;
    return w;
}

void
cache_coalesce_stored(struct cache_inflight *f, struct cache_value *v)
{
    if (f->stored)
        return;
    cache_value_ref(v);
    f->stored = v;
}

bool
cache_coalesce_waited(const struct cache_inflight *f)
{
    return f->waiters != NULL;
}

struct cache_value *
cache_coalesce_value(const struct cache_inflight *f)
{
    return f->stored;
}

void
cache_coalesce_detach(struct cache_coalesce *t, struct cache_inflight *f)
{
    struct cache_inflight **link = slot(t, f->key);

    while (*link != f)
        link = &(*link)->next;
    *link = f->next;
    f->next = NULL;
    f->key = NULL; /* the leader's, about to go */
    f->material = NULL;
    f->material_len = 0;
}

uint64_t
cache_coalesce_answer(struct cache_inflight *f, struct cache_value *value)
{
    struct cache_wait *w;
    uint64_t hits = 0;

    while ((w = f->waiters)) {
        cache_wait_cb cb = w->cb;
        void *cb_arg = w->arg;

        cache_coalesce_wait_free(w);
        if (value) {
            cache_value_ref(value);
            hits++;
            cb(cb_arg, CACHE_HIT, value);
        } else {
            cb(cb_arg, CACHE_BYPASS, NULL);
        }
    }
    cache_value_unref(f->stored);
    bson_free(f);
    return hits;
}

uint64_t
cache_coalesce_finish(struct cache_coalesce *t, struct cache_inflight *f)
{
    cache_coalesce_detach(t, f);
    return cache_coalesce_answer(f, f->stored);
}

uint64_t
cache_coalesce_count(const struct cache_coalesce *t)
{
    return t->coalesced;
}

uint64_t
cache_coalesce_timeouts(const struct cache_coalesce *t)
{
    return t->timeouts;
}
