/*
 * conf/clock.h: the one clock every layer reads. Monotonic time for
 * durations, deadlines and TTLs (never steps back when the wall clock is
 * set); a coarse monotonic read for callers that only need milliseconds
 * to a few (one tick, about 4 ms, at a fraction of the cost); the wall
 * clock for times shown to people (dates in /shapes, "last run") and for
 * the one time several proxies must agree on: a Redis tier value's sealed
 * expiry (cache/redis.c; the README asks for clocks kept in sync).
 * Static inline: a read is one vDSO call, no function of ours between.
 * Owns nothing; no state.
 */
#ifndef MONGOCACHE_CONF_CLOCK_H
#define MONGOCACHE_CONF_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Clock id's time in units of 1/per_second s (per_second divides 10^9). */
static inline int64_t
conf_clock_read(clockid_t id, int64_t per_second)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * per_second + ts.tv_nsec / (1000000000 / per_second);
}

/* CLOCK_MONOTONIC in microseconds. */
static inline int64_t
conf_clock_us(void)
{
    return conf_clock_read(CLOCK_MONOTONIC, 1000000);
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t
conf_clock_ms(void)
{
    return conf_clock_read(CLOCK_MONOTONIC, 1000);
}

/* CLOCK_MONOTONIC_COARSE in milliseconds: late by up to one kernel tick. */
static inline int64_t
conf_clock_coarse_ms(void)
{
    return conf_clock_read(CLOCK_MONOTONIC_COARSE, 1000);
}

/* CLOCK_REALTIME in ms since the epoch: for display, and the Redis tier's sealed expiry. */
static inline int64_t
conf_clock_wall_ms(void)
{
    return conf_clock_read(CLOCK_REALTIME, 1000);
}

/* ms milliseconds as the struct timeval libevent's timers take. */
static inline struct timeval
conf_clock_tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

#endif
