/*
 * proxy/stats.h: the proxy's counters, declared once (the STAT_PROXY rows of
 * conf/counters.def, with every other counter of mongocache). Only the
 * event-loop thread touches them, so they are plain integers. Rendering
 * them (/stats, /metrics) is proxy/metrics.c's job.
 */
#ifndef MONGOCACHE_PROXY_STATS_H
#define MONGOCACHE_PROXY_STATS_H

#include "conf/hist.h"

#include <stdint.h>

enum proxy_stat_id {
#define STAT_PROXY(name, kind, unit, prom, help) PROXY_STAT_##name,
#include "conf/counters.def"
    PROXY_STAT_COUNT
};

/* How a request ended, for the request latency histogram. */
enum proxy_outcome {
    PROXY_OUTCOME_PASS,  /* relayed from the upstream, not a cacheable read */
    PROXY_OUTCOME_HIT,   /* answered from the cache (or the proxy's cursor of a hit) */
    PROXY_OUTCOME_MISS,  /* a cacheable read answered by the upstream */
    PROXY_OUTCOME_ERROR, /* an error reply: the proxy's own, or ok:0 from the server */
    PROXY_OUTCOME_COUNT
};

struct proxy_stats {
    int64_t value[PROXY_STAT_COUNT];
    /* latency (latency_histograms): requests by outcome, upstream round trips */
    struct conf_hist request[PROXY_OUTCOME_COUNT];
    struct conf_hist upstream;
};

static inline void
proxy_stats_add(struct proxy_stats *stats, enum proxy_stat_id id, int64_t n)
{
    stats->value[id] += n;
}

const char *proxy_stats_name(enum proxy_stat_id id);
const char *proxy_stats_help(enum proxy_stat_id id);

/* "hit", "miss", "pass_through", "error": the outcome label. */
const char *proxy_stats_outcome_name(enum proxy_outcome outcome);

#endif
