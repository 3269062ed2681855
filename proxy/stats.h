/*
 * proxy/stats.h: the proxy's counters, declared once in proxy/stats.def.
 * Only the event-loop thread touches them, so they are plain integers.
 */
#ifndef MONGOCACHE_PROXY_STATS_H
#define MONGOCACHE_PROXY_STATS_H

#include <stdint.h>
#include <stdio.h>

enum proxy_stat_id {
#define PROXY_STAT(name, kind, help) PROXY_STAT_##name,
#include "proxy/stats.def"
#undef PROXY_STAT
    PROXY_STAT_COUNT
};

struct proxy_stats {
    int64_t value[PROXY_STAT_COUNT];
};

static inline void
proxy_stats_add(struct proxy_stats *stats, enum proxy_stat_id id, int64_t n)
{
    stats->value[id] += n;
}

const char *proxy_stats_name(enum proxy_stat_id id);
const char *proxy_stats_help(enum proxy_stat_id id);

/* Appends the counters as one JSON object body ("name": value, ...) to buf. */
struct evbuffer;
void proxy_stats_json(const struct proxy_stats *stats, struct evbuffer *buf);

#endif
