/*
 * proxy/metrics.c: renders what conf/counters.def declares, twice: as the
 * /stats document (BSON, sent as relaxed extended JSON by admin.c) and as
 * the Prometheus text exposition format 0.0.4 (GET /metrics). Every row of
 * the list expands here into both renderings, so a counter added to the
 * list appears in both with the same value.
 *
 * Owns: the names, units and label escaping of the exposition, the process
 * metrics (read from /proc and getrusage at render time) and the bounded
 * namespace label (sticky labels for at most metrics_namespaces of the most
 * read, the rest as namespace="other", which only grows, see
 * cache_namespaces_labelled: a MongoDB namespace always has a dot, so
 * "other" is never a real one). Does not own the values: the proxy's are in
 * server->stats, the cache's and Redis's behind cache/cache.h accessors.
 * Serving over HTTP is admin.c's. Runs on the loop thread; everything it
 * builds is bounded (at most 1,000 namespaces by name, fixed buckets).
 */
#include "config.h"

#include "proxy/metrics.h"

#include "cache/cache.h"
#include "cache/key.h"
#include "cache/redis.h"
#include "conf/hist.h"
#include "proxy/advice.h"
#include "proxy/server.h"
#include "proxy/topology.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The kind and unit columns of conf/counters.def. */
enum kind { COUNTER, GAUGE };
enum unit { NONE, BYTES, SECONDS };

/* ---- the process ------------------------------------------------------------ */

struct process {
#define STAT_PROCESS(name, kind, unit, prom, help) double name;
#include "conf/counters.def"
};

static double
count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;

    if (!dir)
        return 0;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n > 0 ? n - 1 : 0; /* less the descriptor opendir holds */
}

static void
read_process(struct process *p, time_t started)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long size = 0, resident = 0;
    struct rlimit rl;
    struct rusage ru;
    FILE *f;

    memset(p, 0, sizeof *p);
    p->start_time_seconds = (double)started;
    p->uptime_seconds = (double)(time(NULL) - started);
    f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
            p->virtual_memory_bytes = (double)size * (double)page;
            p->resident_memory_bytes = (double)resident * (double)page;
        }
        fclose(f);
    }
    p->open_fds = count_open_fds();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        p->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (double)rl.rlim_cur;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- values shared by both renderings ------------------------------------- */

static double
ratio(uint64_t part, uint64_t whole)
{
    /* four decimals, as /stats always showed */
    return whole ? (double)(int64_t)((double)part / (double)whole * 10000.0 + 0.5) / 10000.0 : 0.0;
}

/* The top namespaces, copied out of the cache's records for one rendering. */
struct ns_row {
    char *ns; /* (not "name": the list's macros use that word) */
    size_t ns_len;
    struct cache_ns_stats s;
};

struct ns_list {
    struct ns_row *rows;
    size_t n, cap;
    struct cache_ns_stats other;
    uint64_t n_other;
};

static void
ns_collect(const char *name, size_t name_len, const struct cache_ns_stats *s, void *arg)
{
    struct ns_list *l = arg;
    struct ns_row *r;

    if (l->n == l->cap)
        return; /* cannot happen: the cache calls at most cap times */
    r = &l->rows[l->n++];
    r->ns = bson_strndup(name, name_len);
    r->ns_len = name_len;
    r->s = *s;
}

static void
ns_list_fill(struct ns_list *l, struct cache *cache, size_t top)
{
    memset(l, 0, sizeof *l);
    l->cap = top;
    l->rows = bson_malloc0(top * sizeof *l->rows);
    cache_namespaces_top(cache, top, ns_collect, l, &l->other, &l->n_other);
}

/* The sticky labels of /metrics (every series a counter that never steps down). */
static void
ns_list_fill_labelled(struct ns_list *l, struct cache *cache, size_t top)
{
    memset(l, 0, sizeof *l);
    l->cap = CACHE_NS_LABELS_MAX; /* labels given under a larger metrics_namespaces stay */
    l->rows = bson_malloc0(l->cap * sizeof *l->rows);
    cache_namespaces_labelled(cache, top, ns_collect, l, &l->other);
}

static void
ns_list_cleanup(struct ns_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        bson_free(l->rows[i].ns);
    bson_free(l->rows);
}

/* Whether /stats and /metrics show the request and upstream histograms. */
static bool
histograms_on(const struct proxy_server *server)
{
    return server->conf->latency_histograms;
}

/* ---- /stats as BSON -------------------------------------------------------- */

/* A key of at most len bytes that is valid UTF-8 (bytes that are not become '?'). */
static char *
utf8_key(const char *s, size_t len)
{
    char *k = bson_strndup(s, len);

    if (!bson_utf8_validate(k, len, false))
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)k[i] >= 0x80)
                k[i] = '?';
    return k;
}

static void
hist_bson(bson_t *parent, const char *key, const struct conf_hist *h)
{
    bson_t sub, buckets;
    char le[32];

    BSON_APPEND_DOCUMENT_BEGIN(parent, key, &sub);
    BSON_APPEND_INT64(&sub, "count", (int64_t)h->count);
    BSON_APPEND_DOUBLE(&sub, "sum_seconds", (double)h->sum_us / 1e6);
    BSON_APPEND_DOCUMENT_BEGIN(&sub, "buckets", &buckets);
    for (unsigned i = 0; i <= CONF_HIST_BOUNDS; i++) {
        if (i < CONF_HIST_BOUNDS)
            proxy_metrics_format_seconds(conf_hist_bound_us(i), le, sizeof le);
        else
            bson_strncpy(le, "+Inf", sizeof le);
        BSON_APPEND_INT64(&buckets, le, (int64_t)conf_hist_cumulative(h, i));
    }
    bson_append_document_end(&sub, &buckets);
    bson_append_document_end(parent, &sub);
}

/*
 * Reads not cached for reason, each counted in one place: the cache counts
 * the reasons it decides; with cache off it is not asked, and the proxy
 * counts those reads (cache_off_passes, the cache's count of them is 0).
 */
static uint64_t
bypass_count(struct proxy_server *server, int reason)
{
    if (reason == CACHE_BYPASS_OFF)
        return (uint64_t)server->stats.value[PROXY_STAT_cache_off_passes];
    return cache_bypass_count(server->cache, reason);
}

static void
cache_bson(struct proxy_server *server, bson_t *doc)
{
    struct cache *cache = server->cache;
    const struct cache_redis *redis = cache_redis_tier(cache);
    bson_t sub, reasons, rsub, rctr;

    BSON_APPEND_DOCUMENT_BEGIN(doc, "cache", &sub);
    BSON_APPEND_BOOL(&sub, "enabled", cache_enabled(cache));
    BSON_APPEND_UTF8(&sub, "tier", redis ? "memory+redis" : "memory");
#define STAT_CACHE(name, kind, unit, prom, help)                                                   \
    BSON_APPEND_INT64(&sub, #name, (int64_t)cache_counter(cache, CACHE_CTR_##name));
#include "conf/counters.def"
    BSON_APPEND_DOUBLE(
        &sub, "hit_ratio",
        ratio(cache_counter(cache, CACHE_CTR_hits),
              cache_counter(cache, CACHE_CTR_hits) + cache_counter(cache, CACHE_CTR_misses)));
    BSON_APPEND_INT32(&sub, "key_bits", (int32_t)cache_key_bits());
    BSON_APPEND_DOCUMENT_BEGIN(&sub, "bypass_reasons", &reasons);
    for (int i = 1; i < CACHE_BYPASS_COUNT; i++)
        if (bypass_count(server, i))
            BSON_APPEND_INT64(&reasons, cache_bypass_name(i), (int64_t)bypass_count(server, i));
    bson_append_document_end(&sub, &reasons);
    if (redis) {
        BSON_APPEND_DOCUMENT_BEGIN(&sub, "redis", &rsub);
        BSON_APPEND_UTF8(&rsub, "state", cache_redis_state_name(cache_redis_state(redis)));
        BSON_APPEND_BOOL(&rsub, "subscribed", cache_redis_subscribed(redis));
        BSON_APPEND_DOCUMENT_BEGIN(&rsub, "counters", &rctr);
#define STAT_REDIS(name, kind, unit, prom, help)                                                   \
    BSON_APPEND_INT64(&rctr, #name, (int64_t)cache_redis_counter(redis, CACHE_REDIS_CTR_##name));
#include "conf/counters.def"
        bson_append_document_end(&rsub, &rctr);
        bson_append_document_end(&sub, &rsub);
    }
    bson_append_document_end(doc, &sub);
}

static void
namespaces_bson(struct proxy_server *server, bson_t *doc)
{
    struct ns_list l;
    bson_t sub, one;

    ns_list_fill(&l, server->cache, PROXY_METRICS_JSON_NAMESPACES);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "namespaces", &sub);
    for (size_t i = 0; i < l.n; i++) {
        const struct cache_ns_stats *s = &l.rows[i].s;
        char *key = utf8_key(l.rows[i].ns, l.rows[i].ns_len);

        bson_append_document_begin(&sub, key, -1, &one);
        bson_free(key);
#define STAT_NAMESPACE(name, kind, unit, prom, help)                                               \
    BSON_APPEND_INT64(&one, #name, (int64_t)s->name);
#include "conf/counters.def"
        BSON_APPEND_DOUBLE(&one, "hit_ratio", ratio(s->hits, s->hits + s->misses));
        bson_append_document_end(&sub, &one);
    }
    bson_append_document_end(doc, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "namespaces_other", &sub);
    BSON_APPEND_INT64(&sub, "count", (int64_t)l.n_other);
#define STAT_NAMESPACE(name, kind, unit, prom, help)                                               \
    BSON_APPEND_INT64(&sub, #name, (int64_t)l.other.name);
#include "conf/counters.def"
    bson_append_document_end(doc, &sub);
    ns_list_cleanup(&l);
}

void
proxy_metrics_stats_bson(struct proxy_server *server, time_t started, bson_t *doc)
{
    struct proxy_stats *st = &server->stats;
    struct process p;
    bson_t sub, req;

    st->value[PROXY_STAT_memory_buffered] = (int64_t)server->mem_buffered;
    read_process(&p, started);
    BSON_APPEND_UTF8(doc, "version", PACKAGE_VERSION);
    BSON_APPEND_INT64(doc, "uptime_seconds", (int64_t)p.uptime_seconds);
    BSON_APPEND_UTF8(doc, "upstream", server->upstream_label ? server->upstream_label : "");
    BSON_APPEND_BOOL(doc, "draining", server->draining);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "counters", &sub);
#define STAT_PROXY(name, kind, unit, prom, help)                                                   \
    BSON_APPEND_INT64(&sub, #name, st->value[PROXY_STAT_##name]);
#include "conf/counters.def"
    bson_append_document_end(doc, &sub);
    if (server->cache) {
        cache_bson(server, doc);
        namespaces_bson(server, doc);
    }
    proxy_advice_stats_bson(server->advice, doc);
    proxy_topology_stats_bson(server->topology, doc);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "process", &sub);
#define STAT_PROCESS(name, kind, unit, prom, help)                                                 \
    if (kind == COUNTER || unit == SECONDS)                                                        \
        BSON_APPEND_DOUBLE(&sub, #name, p.name);                                                   \
    else                                                                                           \
        BSON_APPEND_INT64(&sub, #name, (int64_t)p.name);
#include "conf/counters.def"
    bson_append_document_end(doc, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "latency", &sub);
    BSON_APPEND_BOOL(&sub, "enabled", histograms_on(server));
    BSON_APPEND_DOCUMENT_BEGIN(&sub, "request", &req);
    for (int o = 0; o < PROXY_OUTCOME_COUNT; o++)
        hist_bson(&req, proxy_stats_outcome_name((enum proxy_outcome)o), &st->request[o]);
    bson_append_document_end(&sub, &req);
    hist_bson(&sub, "upstream", &st->upstream);
    if (server->cache && cache_redis_tier(server->cache))
        hist_bson(&sub, "redis", cache_redis_latency(cache_redis_tier(server->cache)));
    bson_append_document_end(doc, &sub);
}

/* ---- Prometheus text ------------------------------------------------------- */

void
proxy_metrics_format_seconds(int64_t us, char *out, size_t size)
{
    int64_t whole = us / 1000000, frac = us % 1000000;
    char digits[8];
    int n;

    if (us < 0) {
        snprintf(out, size, "0");
        return;
    }
    if (frac == 0) {
        snprintf(out, size, "%lld", (long long)whole);
        return;
    }
    snprintf(digits, sizeof digits, "%06lld", (long long)frac);
    for (n = 6; n > 0 && digits[n - 1] == '0'; n--)
        digits[n - 1] = '\0';
    snprintf(out, size, "%lld.%s", (long long)whole, digits);
}

void
proxy_metrics_label_value(struct evbuffer *buf, const char *s, size_t len)
{
    bool utf8 = bson_utf8_validate(s, len, false);

    evbuffer_add(buf, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\\')
            evbuffer_add(buf, "\\\\", 2);
        else if (ch == '"')
            evbuffer_add(buf, "\\\"", 2);
        else if (ch == '\n')
            evbuffer_add(buf, "\\n", 2);
        else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !utf8))
            evbuffer_add(buf, "?", 1);
        else
            evbuffer_add(buf, &s[i], 1);
    }
    evbuffer_add(buf, "\"", 1);
}

/* "# HELP" and "# TYPE" of a family; help has no backslash or newline (our own text). */
static void
family(struct evbuffer *buf, const char *prom, const char *type, const char *help)
{
    evbuffer_add_printf(buf, "# HELP mongocache_%s %s\n# TYPE mongocache_%s %s\n", prom, help, prom,
                        type);
}

static void
sample_u64(struct evbuffer *buf, const char *prom, uint64_t v)
{
    evbuffer_add_printf(buf, "mongocache_%s %llu\n", prom, (unsigned long long)v);
}

/* One sample with one label. */
static void
sample_label(struct evbuffer *buf, const char *prom, const char *label, const char *value,
             size_t value_len, uint64_t v)
{
    evbuffer_add_printf(buf, "mongocache_%s{%s=", prom, label);
    proxy_metrics_label_value(buf, value, value_len);
    evbuffer_add_printf(buf, "} %llu\n", (unsigned long long)v);
}

/* A histogram's samples (its family header written by the caller); label may be NULL. */
static void
hist_text(struct evbuffer *buf, const char *prom, const char *label, const char *value,
          const struct conf_hist *h)
{
    char le[32], sum[48];
    char lab[96];

    if (label)
        snprintf(lab, sizeof lab, "%s=\"%s\",", label, value);
    else
        lab[0] = '\0';
    for (unsigned i = 0; i <= CONF_HIST_BOUNDS; i++) {
        if (i < CONF_HIST_BOUNDS)
            proxy_metrics_format_seconds(conf_hist_bound_us(i), le, sizeof le);
        else
            bson_strncpy(le, "+Inf", sizeof le);
        evbuffer_add_printf(buf, "mongocache_%s_bucket{%sle=\"%s\"} %llu\n", prom, lab, le,
                            (unsigned long long)conf_hist_cumulative(h, i));
    }
    if (label)
        snprintf(lab, sizeof lab, "{%s=\"%s\"}", label, value);
    proxy_metrics_format_seconds((int64_t)h->sum_us, sum, sizeof sum);
    evbuffer_add_printf(buf, "mongocache_%s_sum%s %s\nmongocache_%s_count%s %llu\n", prom, lab, sum,
                        prom, lab, (unsigned long long)h->count);
}

static const char *
type_name(enum kind kind)
{
    return kind == COUNTER ? "counter" : "gauge";
}

static void
process_text(struct evbuffer *buf, time_t started)
{
    struct process p;

    read_process(&p, started);
#define STAT_PROCESS(name, kind, unit, prom, help)                                                 \
    family(buf, prom, type_name(kind), help);                                                      \
    evbuffer_add_printf(buf, "mongocache_%s %.17g\n", prom, p.name);
#include "conf/counters.def"
}

static void
cache_text(struct proxy_server *server, struct evbuffer *buf)
{
    struct cache *cache = server->cache;
    const struct cache_redis *redis = cache_redis_tier(cache);
    uint64_t top = (uint64_t)server->conf->metrics_namespaces;
    struct ns_list l;

    family(buf, "cache_enabled", "gauge", "1 when the cache is on (cache = true)");
    sample_u64(buf, "cache_enabled", cache_enabled(cache));
#define STAT_CACHE(name, kind, unit, prom, help)                                                   \
    family(buf, prom, type_name(kind), help);                                                      \
    sample_u64(buf, prom, cache_counter(cache, CACHE_CTR_##name));
#include "conf/counters.def"

#define STAT_REASON(name, kind, unit, prom, help)                                                  \
    family(buf, prom, type_name(kind), help);                                                      \
    for (int i = 1; i < CACHE_BYPASS_COUNT; i++) {                                                 \
        const char *r = cache_bypass_name(i);                                                      \
        sample_label(buf, prom, "reason", r, strlen(r), bypass_count(server, i));                  \
    }
#include "conf/counters.def"

    if (redis) {
        enum cache_redis_state now = cache_redis_state(redis);

        family(buf, "redis_state", "gauge",
               "1 for the Redis tier's state now (disconnected, connected, breaker_open, dirty)");
        for (int i = CACHE_REDIS_DISCONNECTED; i <= CACHE_REDIS_DIRTY; i++) {
            const char *n = cache_redis_state_name((enum cache_redis_state)i);

            sample_label(buf, "redis_state", "state", n, strlen(n), i == (int)now);
        }
        family(buf, "redis_subscribed", "gauge", "1 while the invalidation channel is subscribed");
        sample_u64(buf, "redis_subscribed", cache_redis_subscribed(redis));
#define STAT_REDIS(name, kind, unit, prom, help)                                                   \
    family(buf, prom, type_name(kind), help);                                                      \
    sample_u64(buf, prom, cache_redis_counter(redis, CACHE_REDIS_CTR_##name));
#include "conf/counters.def"
    }

    if (top < 1)
        top = 1;
    ns_list_fill_labelled(&l, cache, (size_t)top);
#define STAT_NAMESPACE(name, kind, unit, prom, help)                                               \
    family(buf, prom, type_name(kind), help);                                                      \
    for (size_t i = 0; i < l.n; i++)                                                               \
        sample_label(buf, prom, "namespace", l.rows[i].ns, l.rows[i].ns_len, l.rows[i].s.name);    \
    sample_label(buf, prom, "namespace", "other", 5, l.other.name);
#include "conf/counters.def"
    ns_list_cleanup(&l);
}

void
proxy_metrics_prometheus(struct proxy_server *server, time_t started, struct evbuffer *buf)
{
    struct proxy_stats *st = &server->stats;

    st->value[PROXY_STAT_memory_buffered] = (int64_t)server->mem_buffered;
    family(buf, "info", "gauge", "always 1; the version of mongocache");
    evbuffer_add_printf(buf, "mongocache_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
    family(buf, "draining", "gauge", "1 once SIGTERM started the drain");
    sample_u64(buf, "draining", server->draining);
#define STAT_PROXY(name, kind, unit, prom, help)                                                   \
    family(buf, prom, type_name(kind), help);                                                      \
    sample_u64(buf, prom, (uint64_t)st->value[PROXY_STAT_##name]);
#include "conf/counters.def"
    if (server->cache)
        cache_text(server, buf);
    family(buf, "advice_enabled", "gauge", "1 when index advice is on (advice = true)");
    sample_u64(buf, "advice_enabled", server->advice != NULL);
#define STAT_ADVICE(name, kind, unit, prom, help)                                                  \
    family(buf, prom, type_name(kind), help);                                                      \
    sample_u64(buf, prom, proxy_advice_stat(server->advice, PROXY_ADVICE_STAT_##name));
#include "conf/counters.def"

#define STAT_HIST(name, unit, label, prom, help)                                                   \
    if (strcmp(#name, "request") == 0 && histograms_on(server)) {                                  \
        family(buf, prom, "histogram", help);                                                      \
        for (int o = 0; o < PROXY_OUTCOME_COUNT; o++)                                              \
            hist_text(buf, prom, label, proxy_stats_outcome_name((enum proxy_outcome)o),           \
                      &st->request[o]);                                                            \
    } else if (strcmp(#name, "upstream") == 0 && histograms_on(server)) {                          \
        family(buf, prom, "histogram", help);                                                      \
        hist_text(buf, prom, NULL, NULL, &st->upstream);                                           \
    } else if (strcmp(#name, "redis") == 0 && server->cache && cache_redis_tier(server->cache)) {  \
        family(buf, prom, "histogram", help);                                                      \
        hist_text(buf, prom, NULL, NULL, cache_redis_latency(cache_redis_tier(server->cache)));    \
    }
#include "conf/counters.def"
    process_text(buf, started);
}
