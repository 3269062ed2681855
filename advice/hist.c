/*
 * advice/hist.c: owns the bucket bounds and the arithmetic of the shape
 * table's latency histograms (see hist.h). It keeps no state of its own and
 * does not know what is measured: the table (advice/table.c) feeds it each
 * round trip it is told of.
 */
#include "config.h"

#include "advice/hist.h"

#include <math.h>

/* Upper bounds (inclusive) in milliseconds; a value above the last goes to the open bucket. */
static const double bounds[ADVICE_HIST_BUCKETS - 1] = {
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000,
};

double
advice_hist_bound(unsigned i)
{
    return i < ADVICE_HIST_BUCKETS - 1 ? bounds[i] : INFINITY;
}

void
advice_hist_add(struct advice_hist *hist, double ms)
{
    unsigned i = 0;

    if (!isfinite(ms) || ms < 0)
        ms = 0;
    while (i < ADVICE_HIST_BUCKETS - 1 && ms > bounds[i])
        i++;
    if (hist->n[i] != UINT32_MAX)
        hist->n[i]++;
    if (ms > hist->max_ms)
        hist->max_ms = ms;
}

uint64_t
advice_hist_count(const struct advice_hist *hist)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < ADVICE_HIST_BUCKETS; i++)
        total += hist->n[i];
    return total;
}

double
advice_hist_quantile(const struct advice_hist *hist, double q)
{
    uint64_t total = advice_hist_count(hist), rank, seen = 0;

    if (total == 0 || !(q > 0))
        return 0;
    if (q > 1)
        q = 1;
    rank = (uint64_t)(q * (double)total); /* ceil, without libm */
    if ((double)rank < q * (double)total)
        rank++;
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < ADVICE_HIST_BUCKETS; i++) {
        seen += hist->n[i];
        if (seen >= rank) {
            if (i == ADVICE_HIST_BUCKETS - 1 || bounds[i] > hist->max_ms)
                return hist->max_ms;
            return bounds[i];
        }
    }
    return hist->max_ms;
}
