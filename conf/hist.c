/*
 * conf/hist.c: the bucket table and arithmetic of conf/hist.h. The
 * bounds run from 50 microseconds (a hit served from memory on loopback)
 * to 10 seconds (a slow query; message_timeout's scale), roughly 1-2.5-5
 * per decade, so both a hit and a slow upstream land in a useful bucket.
 * Rendering (JSON, Prometheus) is proxy/metrics.c's.
 */
#include "conf/hist.h"

static const int64_t bounds_us[CONF_HIST_BOUNDS] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

int64_t
conf_hist_bound_us(unsigned i)
{
    return i < CONF_HIST_BOUNDS ? bounds_us[i] : INT64_MAX;
}

unsigned
conf_hist_index(int64_t us)
{
    unsigned i = 0;

    /* Linear from the small end: hits, the common case, stop in the first
     * few comparisons. */
    while (i < CONF_HIST_BOUNDS && us > bounds_us[i])
        i++;
    return i;
}

uint64_t
conf_hist_cumulative(const struct conf_hist *h, unsigned i)
{
    uint64_t n = 0;

    if (i > CONF_HIST_BOUNDS)
        i = CONF_HIST_BOUNDS;
    for (unsigned j = 0; j <= i; j++)
        n += h->bucket[j];
    return n;
}

void
conf_hist_merge(struct conf_hist *into, const struct conf_hist *from)
{
    for (unsigned i = 0; i <= CONF_HIST_BOUNDS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum_us += from->sum_us;
}
