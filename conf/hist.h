/*
 * conf/hist.h: a latency histogram with fixed buckets, cheap enough for
 * the hit path: observing is a short scan of a constant table and one array
 * increment; no allocation, no lock, no floating point. Only the event-loop
 * thread observes; renderers (proxy/metrics.c) read. A request metric, not
 * cache work: proxy/ times every request and upstream round trip with it,
 * cache/redis.c its Redis round trips, so it lives on the shared floor.
 *
 * Counts are kept per bucket (not cumulative); conf_hist_cumulative gives
 * the Prometheus view (bucket i counts every observation <= its bound).
 */
#ifndef MONGOCACHE_CONF_HIST_H
#define MONGOCACHE_CONF_HIST_H

#include <stdint.h>

/* Finite bucket bounds; one more bucket (+Inf) holds what exceeds the last. */
#define CONF_HIST_BOUNDS 17

struct conf_hist {
    uint64_t bucket[CONF_HIST_BOUNDS + 1]; /* observations in (bound[i-1], bound[i]] */
    uint64_t count;                        /* all observations */
    uint64_t sum_us;                       /* their total, microseconds */
};

/* Upper bound of finite bucket i (i < CONF_HIST_BOUNDS), microseconds. */
int64_t conf_hist_bound_us(unsigned i);

/* The bucket an observation of us microseconds falls in (negative counts as 0). */
unsigned conf_hist_index(int64_t us);

/* Records one observation of us microseconds. */
static inline void
conf_hist_observe(struct conf_hist *h, int64_t us)
{
    if (us < 0)
        us = 0;
    h->bucket[conf_hist_index(us)]++;
    h->count++;
    h->sum_us += (uint64_t)us;
}

/*
 * Observations <= bound i (i == CONF_HIST_BOUNDS: all of them, the +Inf
 * bucket). Monotone in i, and the last equals h->count.
 */
uint64_t conf_hist_cumulative(const struct conf_hist *h, unsigned i);

/* Adds every count of from to into. */
void conf_hist_merge(struct conf_hist *into, const struct conf_hist *from);

#endif
