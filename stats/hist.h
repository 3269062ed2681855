/*
 * stats/hist.h: a latency histogram with fixed buckets, cheap enough for
 * the hit path: observing is a short scan of a constant table and one array
 * increment; no allocation, no lock, no floating point. Only the event-loop
 * thread observes; renderers (proxy/metrics.c) read.
 *
 * Counts are kept per bucket (not cumulative); stats_hist_cumulative gives
 * the Prometheus view (bucket i counts every observation <= its bound).
 */
#ifndef MONGOCACHE_STATS_HIST_H
#define MONGOCACHE_STATS_HIST_H

#include <stdint.h>

/* Finite bucket bounds; one more bucket (+Inf) holds what exceeds the last. */
#define STATS_HIST_BOUNDS 17

struct stats_hist {
    uint64_t bucket[STATS_HIST_BOUNDS + 1]; /* observations in (bound[i-1], bound[i]] */
    uint64_t count;                         /* all observations */
    uint64_t sum_us;                        /* their total, microseconds */
};

/* Upper bound of finite bucket i (i < STATS_HIST_BOUNDS), microseconds. */
int64_t stats_hist_bound_us(unsigned i);

/* The bucket an observation of us microseconds falls in (negative counts as 0). */
unsigned stats_hist_index(int64_t us);

/* Records one observation of us microseconds. */
static inline void
stats_hist_observe(struct stats_hist *h, int64_t us)
{
    if (us < 0)
        us = 0;
    h->bucket[stats_hist_index(us)]++;
    h->count++;
    h->sum_us += (uint64_t)us;
}

/*
 * Observations <= bound i (i == STATS_HIST_BOUNDS: all of them, the +Inf
 * bucket). Monotone in i, and the last equals h->count.
 */
uint64_t stats_hist_cumulative(const struct stats_hist *h, unsigned i);

/* Adds every count of from to into. */
void stats_hist_merge(struct stats_hist *into, const struct stats_hist *from);

#endif
