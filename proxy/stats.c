/*
 * proxy/stats.c: names, help and JSON rendering of the counters declared in
 * proxy/stats.def. Incrementing is inline in stats.h; serving them over HTTP
 * is proxy/admin.c's job.
 */
#include "proxy/stats.h"

#include <event2/buffer.h>

static const char *const names[] = {
#define PROXY_STAT(name, kind, help) #name,
#include "proxy/stats.def"
#undef PROXY_STAT
};

static const char *const helps[] = {
#define PROXY_STAT(name, kind, help) help,
#include "proxy/stats.def"
#undef PROXY_STAT
};

const char *
proxy_stats_name(enum proxy_stat_id id)
{
    return names[id];
}

const char *
proxy_stats_help(enum proxy_stat_id id)
{
    return helps[id];
}

void
proxy_stats_json(const struct proxy_stats *stats, struct evbuffer *buf)
{
    for (int i = 0; i < PROXY_STAT_COUNT; i++)
        evbuffer_add_printf(buf, "%s\"%s\": %lld", i ? ", " : "", names[i],
                            (long long)stats->value[i]);
}
