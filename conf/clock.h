/*
 * conf/clock.h: the one clock every layer reads. Monotonic time for
 * durations, deadlines and TTLs (never steps back when the wall clock is
 * set); a coarse monotonic read for callers that only need milliseconds
 * to a few (one tick, about 4 ms, at a fraction of the cost); the wall
 * clock only for times shown to people (dates in /shapes, "last run").
 * Static inline: a read is one vDSO call, no function of ours between.
 * Owns nothing; no state.
 */
#ifndef MONGOCACHE_CONF_CLOCK_H
#define MONGOCACHE_CONF_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds. */
static inline int64_t
conf_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t
conf_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC_COARSE in milliseconds: late by up to one kernel tick. */
static inline int64_t
conf_clock_coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_REALTIME in milliseconds since the epoch: for display only. */
static inline int64_t
conf_clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_REALTIME's nanoseconds within the second: cheap noise to mix, never a time. */
static inline uint64_t
conf_clock_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec;
}

#endif
