/*
 * advice/hist.h: a small fixed-bucket latency histogram, one per entry of
 * the shape table (advice/table.h), for the p50 and p99 of GET /shapes.
 * Fixed size (ADVICE_HIST_BUCKETS counters, no allocation), O(buckets) at
 * worst to record and to read. A quantile is the upper bound of the bucket
 * it falls in (or the largest value seen, for the last, open bucket): an
 * estimate never below the true value, and p50 <= p99 always.
 */
#ifndef MONGOCACHE_ADVICE_HIST_H
#define MONGOCACHE_ADVICE_HIST_H

#include <stdint.h>

/* Buckets: 15 upper bounds in milliseconds (0.1 ms .. 10 s), then one open bucket. */
#define ADVICE_HIST_BUCKETS 16

struct advice_hist {
    uint32_t n[ADVICE_HIST_BUCKETS]; /* saturating: a bucket stops at UINT32_MAX */
    double max_ms;                   /* largest value recorded */
};

/* Counts one value (milliseconds; NaN, infinite and negative values count as 0). */
void advice_hist_add(struct advice_hist *hist, double ms);

/* Values counted (the sum of the buckets). */
uint64_t advice_hist_count(const struct advice_hist *hist);

/*
 * The q-quantile (0 < q <= 1) in milliseconds: the upper bound of the
 * bucket holding the ceil(q * count)-th smallest value, the largest value
 * seen if that bound is above it or the bucket is the open one; 0 when
 * nothing was counted.
 */
double advice_hist_quantile(const struct advice_hist *hist, double q);

/* The upper bound of bucket i (i < ADVICE_HIST_BUCKETS - 1), in milliseconds. */
double advice_hist_bound(unsigned i);

#endif
