/*
 * cache/redis_breaker.c: the Redis tier's circuit breaker (see
 * redis_breaker.h for the states and the batch rule). It owns only the
 * state in struct cache_redis_breaker and its transitions; it never reads
 * a clock, sends, logs or counts: redis.c gives it the time, keeps each
 * command's ticket, and logs and counts the events it returns.
 */
#include "config.h"

#include "cache/redis_breaker.h"

#include <stddef.h>

static const char *const state_names[] = {"closed", "open", "half_open"};

void
cache_redis_breaker_configure(struct cache_redis_breaker *b, int64_t threshold,
                              int64_t cooldown_ms)
{
    b->threshold = threshold > 0 ? threshold : 1;
    b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 0;
}

void
cache_redis_breaker_init(struct cache_redis_breaker *b, int64_t threshold, int64_t cooldown_ms)
{
    *b = (struct cache_redis_breaker){.state = CACHE_REDIS_BREAKER_STATE_CLOSED, .batch = 1};
    cache_redis_breaker_configure(b, threshold, cooldown_ms);
}

void
cache_redis_breaker_reset(struct cache_redis_breaker *b)
{
    b->state = CACHE_REDIS_BREAKER_STATE_CLOSED;
    b->consecutive = 0;
    b->probe_out = false;
    b->batch++;
}

bool
cache_redis_breaker_would_admit(const struct cache_redis_breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case CACHE_REDIS_BREAKER_STATE_CLOSED:
        return true;
    case CACHE_REDIS_BREAKER_STATE_OPEN:
        return now_ms >= b->open_until_ms;
    case CACHE_REDIS_BREAKER_STATE_HALF_OPEN:
        break;
    }
    return !b->probe_out;
}

bool
cache_redis_breaker_admit(struct cache_redis_breaker *b, uint64_t now_ms,
                          struct cache_redis_breaker_ticket *ticket)
{
    if (b->state == CACHE_REDIS_BREAKER_STATE_CLOSED) {
        *ticket = (struct cache_redis_breaker_ticket){b->batch, false};
        return true;
    }
    if (b->state == CACHE_REDIS_BREAKER_STATE_OPEN) {
        if (now_ms < b->open_until_ms)
            return false;
        b->state = CACHE_REDIS_BREAKER_STATE_HALF_OPEN;
        b->probe_out = false;
    }
    if (b->probe_out)
        return false;
    /* The probe is a batch of its own: its failure always counts. */
    b->probe_out = true;
    *ticket = (struct cache_redis_breaker_ticket){++b->batch, true};
    return true;
}

void
cache_redis_breaker_unadmit(struct cache_redis_breaker *b,
                            const struct cache_redis_breaker_ticket *ticket)
{
    if (ticket->probe && b->state == CACHE_REDIS_BREAKER_STATE_HALF_OPEN)
        b->probe_out = false;
}

enum cache_redis_breaker_event
cache_redis_breaker_result(struct cache_redis_breaker *b, uint64_t now_ms,
                           const struct cache_redis_breaker_ticket *ticket, bool answered)
{
    if (ticket->probe)
        b->probe_out = false;
    if (answered) {
        b->consecutive = 0;
        if (b->batch <= ticket->batch)
            b->batch = ticket->batch + 1;
        if (b->state != CACHE_REDIS_BREAKER_STATE_HALF_OPEN)
            return CACHE_REDIS_BREAKER_NONE;
        b->state = CACHE_REDIS_BREAKER_STATE_CLOSED;
        return CACHE_REDIS_BREAKER_CLOSES;
    }
    if (ticket->batch <= b->failed_batch)
        return CACHE_REDIS_BREAKER_NONE; /* its batch has failed already: one cause */
    b->failed_batch = ticket->batch;
    if (b->batch <= ticket->batch)
        b->batch = ticket->batch + 1;
    b->consecutive++;
    if (b->state == CACHE_REDIS_BREAKER_STATE_HALF_OPEN ||
        (b->state == CACHE_REDIS_BREAKER_STATE_CLOSED && b->consecutive >= b->threshold)) {
        b->state = CACHE_REDIS_BREAKER_STATE_OPEN;
        b->open_until_ms = now_ms + (uint64_t)b->cooldown_ms;
        b->probe_out = false;
        return CACHE_REDIS_BREAKER_TRIPPED;
    }
    return CACHE_REDIS_BREAKER_NONE;
}

uint64_t
cache_redis_breaker_wait_ms(const struct cache_redis_breaker *b, uint64_t now_ms)
{
    if (b->state != CACHE_REDIS_BREAKER_STATE_OPEN || b->open_until_ms <= now_ms)
        return 0;
    return b->open_until_ms - now_ms;
}

const char *
cache_redis_breaker_state_name(enum cache_redis_breaker_state state)
{
    return (unsigned)state < sizeof state_names / sizeof state_names[0] ? state_names[state]
                                                                        : "unknown";
}
