/*
 * cache/hist.h: a latency histogram with fixed buckets, cheap enough for
 * the hit path: observing is a short scan of a constant table and one array
 * increment; no allocation, no lock, no floating point. Only the event-loop
 * thread observes; renderers (proxy/metrics.c) read.
 *
 * Counts are kept per bucket (not cumulative); cache_hist_cumulative gives
 * the Prometheus view (bucket i counts every observation <= its bound).
 */
#ifndef MONGOCACHE_CACHE_HIST_H
#define MONGOCACHE_CACHE_HIST_H

#include <stdint.h>

/* Finite bucket bounds; one more bucket (+Inf) holds what exceeds the last. */
#define CACHE_HIST_BOUNDS 17

struct cache_hist {
    uint64_t bucket[CACHE_HIST_BOUNDS + 1]; /* observations in (bound[i-1], bound[i]] */
    uint64_t count;                         /* all observations */
    uint64_t sum_us;                        /* their total, microseconds */
};

/* Upper bound of finite bucket i (i < CACHE_HIST_BOUNDS), microseconds. */
int64_t cache_hist_bound_us(unsigned i);

/* The bucket an observation of us microseconds falls in (negative counts as 0). */
unsigned cache_hist_index(int64_t us);

/* Records one observation of us microseconds. */
static inline void
cache_hist_observe(struct cache_hist *h, int64_t us)
{
    if (us < 0)
        us = 0;
    h->bucket[cache_hist_index(us)]++;
    h->count++;
    h->sum_us += (uint64_t)us;
}

/*
 * Observations <= bound i (i == CACHE_HIST_BOUNDS: all of them, the +Inf
 * bucket). Monotone in i, and the last equals h->count.
 */
uint64_t cache_hist_cumulative(const struct cache_hist *h, unsigned i);

/* Adds every count of from to into. */
void cache_hist_merge(struct cache_hist *into, const struct cache_hist *from);

#endif
