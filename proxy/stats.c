/*
 * proxy/stats.c: names and help of the proxy's counters (the STAT_PROXY
 * rows of conf/counters.def) and of request outcomes. Incrementing is
 * inline in stats.h; rendering is proxy/metrics.c's, serving it over HTTP
 * proxy/admin.c's.
 */
#include "proxy/stats.h"

static const char *const names[] = {
#define STAT_PROXY(name, kind, unit, prom, help) #name,
#include "conf/counters.def"
};

static const char *const helps[] = {
#define STAT_PROXY(name, kind, unit, prom, help) help,
#include "conf/counters.def"
};

static const char *const outcome_names[PROXY_OUTCOME_COUNT] = {"pass_through", "hit", "miss",
                                                               "error"};

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

const char *
proxy_stats_outcome_name(enum proxy_outcome outcome)
{
    return outcome < PROXY_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}
