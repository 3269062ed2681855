/*
 * tests/unit/test_stats_metrics.c: the histogram's bucket arithmetic
 * (conf/hist.c), the conventions of every row of conf/counters.def
 * (Prometheus names, units, _total on counters, no duplicates), and the two
 * renderers of proxy/metrics.c on a proxy with known values: the
 * Prometheus text (exact lines, cumulative buckets, escaping) and the
 * /stats document (field names kept).
 */
#include "conf/conf.h"
#include "conf/hist.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/stats.h"

#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* ---- histogram arithmetic ---- */

static void
test_hist_index(void)
{
    static const struct {
        int64_t us;
        unsigned want;
    } cases[] = {
        {-5, 0},      {0, 0},        {1, 0},         {50, 0},        {51, 1},
        {100, 1},     {101, 2},      {999, 4},       {1000, 4},      {1001, 5},
        {250000, 11}, {9999999, 16}, {10000000, 16}, {10000001, 17}, {INT64_MAX, 17},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(conf_hist_index(cases[i].us), cases[i].want, "%lld us falls in bucket %u",
               (long long)cases[i].us, cases[i].want);
    for (unsigned i = 0; i < CONF_HIST_BOUNDS; i++) {
        if (conf_hist_index(conf_hist_bound_us(i)) != i ||
            conf_hist_index(conf_hist_bound_us(i) + 1) != i + 1) {
            ok(false, "bound %u is inclusive (le), the next microsecond is in the next bucket", i);
            return;
        }
        if (i > 0 && conf_hist_bound_us(i) <= conf_hist_bound_us(i - 1)) {
            ok(false, "bounds grow");
            return;
        }
    }
    ok(true, "every bound is inclusive (le) and the bounds grow");
}

static void
test_hist_cumulative(void)
{
    struct conf_hist h, m;
    static const int64_t obs[] = {10, 50, 51, 700, 700, 3000, 20000000, -1};
    uint64_t prev = 0;
    bool monotone = true;

    memset(&h, 0, sizeof h);
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        conf_hist_observe(&h, obs[i]);
    is_int((long long)h.count, 8, "count is the observations");
    is_int((long long)h.sum_us, 10 + 50 + 51 + 700 + 700 + 3000 + 20000000,
           "sum adds them (negative counts as 0)");
    is_int((long long)conf_hist_cumulative(&h, 0), 3, "le 50us: 10, 50 and -1");
    is_int((long long)conf_hist_cumulative(&h, 1), 4, "le 100us: and 51");
    is_int((long long)conf_hist_cumulative(&h, 3), 4, "le 500us: no more");
    is_int((long long)conf_hist_cumulative(&h, 4), 6, "le 1ms: both 700us");
    is_int((long long)conf_hist_cumulative(&h, 6), 7, "le 5ms: and 3ms");
    is_int((long long)conf_hist_cumulative(&h, CONF_HIST_BOUNDS - 1), 7,
           "le 10s: not the 20s one");
    is_int((long long)conf_hist_cumulative(&h, CONF_HIST_BOUNDS), 8, "+Inf: every one");
    for (unsigned i = 0; i <= CONF_HIST_BOUNDS; i++) {
        if (conf_hist_cumulative(&h, i) < prev)
            monotone = false;
        prev = conf_hist_cumulative(&h, i);
    }
    ok(monotone, "cumulative counts never fall");
    memset(&m, 0, sizeof m);
    conf_hist_observe(&m, 75);
    conf_hist_merge(&m, &h);
    is_int((long long)m.count, 9, "merge adds counts");
    is_int((long long)conf_hist_cumulative(&m, 1), 5, "merge adds buckets");
}

/* ---- the list's conventions ---- */

struct row {
    const char *group, *name, *kind, *unit, *prom;
};

static const struct row rows[] = {
#define STAT_PROXY(name, kind, unit, prom, help) {"proxy", #name, #kind, #unit, prom},
#define STAT_CACHE(name, kind, unit, prom, help) {"cache", #name, #kind, #unit, prom},
#define STAT_REDIS(name, kind, unit, prom, help) {"redis", #name, #kind, #unit, prom},
#define STAT_NAMESPACE(name, kind, unit, prom, help) {"namespace", #name, #kind, #unit, prom},
#define STAT_REASON(name, kind, unit, prom, help) {"reason", #name, #kind, #unit, prom},
#define STAT_PROCESS(name, kind, unit, prom, help) {"process", #name, #kind, #unit, prom},
#define STAT_ADVICE(name, kind, unit, prom, help) {"advice", #name, #kind, #unit, prom},
#define STAT_HIST(name, unit, label, prom, help) {"hist", #name, "HISTOGRAM", #unit, prom},
#include "conf/counters.def"
};

static bool
ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void
test_conventions(void)
{
    size_t n = sizeof rows / sizeof rows[0];
    int bad = 0;

    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        bool counter = strcmp(r->kind, "COUNTER") == 0;
        bool ok_name = strlen(r->prom) > 0;

        for (const char *p = r->prom; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                ok_name = false;
        if (!ok_name) {
            diag("%s: \"%s\" is not a lower-case metric name", r->name, r->prom);
            bad++;
        }
        if (counter != ends_with(r->prom, "_total")) {
            diag("%s: %s \"%s\": _total on counters only", r->name, r->kind, r->prom);
            bad++;
        }
        if (strcmp(r->unit, "BYTES") == 0 && !strstr(r->prom, "_bytes")) {
            diag("%s: bytes, but \"%s\" does not say so", r->name, r->prom);
            bad++;
        }
        if (strcmp(r->unit, "SECONDS") == 0 && !strstr(r->prom, "seconds")) {
            diag("%s: seconds, but \"%s\" does not say so", r->name, r->prom);
            bad++;
        }
        if (strcmp(r->unit, "NONE") == 0 &&
            (strstr(r->prom, "_bytes") || strstr(r->prom, "seconds"))) {
            diag("%s: no unit, but \"%s\" names one", r->name, r->prom);
            bad++;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(rows[j].prom, r->prom) == 0) {
                diag("\"%s\" twice", r->prom);
                bad++;
            }
            if (strcmp(rows[j].group, r->group) == 0 && strcmp(rows[j].name, r->name) == 0) {
                diag("%s.%s twice", r->group, r->name);
                bad++;
            }
        }
    }
    is_int(bad, 0, "all %zu rows of conf/counters.def follow the naming conventions", n);
    is_int(PROXY_STAT_COUNT, 52, "the proxy's counters are all still there");
}

/* ---- the renderers ---- */

static void
test_format(void)
{
    static const struct {
        int64_t us;
        const char *want;
    } cases[] = {{50, "0.00005"},  {1, "0.000001"}, {1000, "0.001"},      {2500000, "2.5"},
                 {10000000, "10"}, {0, "0"},        {1234567, "1.234567"}};
    char out[32];
    struct evbuffer *b = evbuffer_new();
    char *s;
    size_t len;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proxy_metrics_format_seconds(cases[i].us, out, sizeof out);
        is_str(out, cases[i].want, "%lld us is written %s s", (long long)cases[i].us,
               cases[i].want);
    }
    proxy_metrics_label_value(b, "a\"b\\c\nd", 7);
    proxy_metrics_label_value(b, "x\xff\x01y", 4);
    proxy_metrics_label_value(b, "caf\xc3\xa9", 5);
    len = evbuffer_get_length(b);
    s = bson_strndup((const char *)evbuffer_pullup(b, -1), len);
    is_str(s, "\"a\\\"b\\\\c\\nd\"\"x??y\"\"caf\xc3\xa9\"",
           "label values: quote, backslash, newline escaped; bad UTF-8 and controls replaced");
    bson_free(s);
    evbuffer_free(b);
}

/* The value of the sample line "name value" (or "name{labels} value") in text, or -1. */
static long long
sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;

    while ((p = strstr(p, name))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
        p += n;
    }
    return -1;
}

static void
test_render(void)
{
    struct proxy_server server;
    struct evbuffer *b = evbuffer_new();
    bson_t doc = BSON_INITIALIZER;
    bson_iter_t it;
    char *text, *json;

    memset(&server, 0, sizeof server);
    server.conf = conf_new();
    server.upstream_label = bson_strdup("db.example:27017");
    server.stats.value[PROXY_STAT_requests] = 7;
    server.stats.value[PROXY_STAT_bytes_from_clients] = 1234;
    server.mem_buffered = 4096;
    conf_hist_observe(&server.stats.request[PROXY_OUTCOME_HIT], 30);
    conf_hist_observe(&server.stats.request[PROXY_OUTCOME_HIT], 80);
    conf_hist_observe(&server.stats.request[PROXY_OUTCOME_MISS], 3000);
    conf_hist_observe(&server.stats.upstream, 2000000);

    proxy_metrics_prometheus(&server, time(NULL) - 5, b);
    text = bson_strndup((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    is_int(sample(text, "mongocache_requests_total"), 7, "a counter's sample");
    is_int(sample(text, "mongocache_client_received_bytes_total"), 1234, "in bytes");
    is_int(sample(text, "mongocache_memory_buffered_bytes"), 4096, "a gauge read when rendered");
    ok(strstr(text, "# TYPE mongocache_requests_total counter\n") != NULL, "TYPE of a counter");
    ok(strstr(text, "# HELP mongocache_requests_total client messages forwarded or answered\n") !=
           NULL,
       "HELP from the list");
    ok(strstr(text, "# TYPE mongocache_request_duration_seconds histogram\n") != NULL,
       "TYPE of a histogram");
    is_int(
        sample(text, "mongocache_request_duration_seconds_bucket{outcome=\"hit\",le=\"0.00005\"}"),
        1, "hit le 50us: one");
    is_int(
        sample(text, "mongocache_request_duration_seconds_bucket{outcome=\"hit\",le=\"0.0001\"}"),
        2, "hit le 100us: both (cumulative)");
    is_int(sample(text, "mongocache_request_duration_seconds_bucket{outcome=\"hit\",le=\"+Inf\"}"),
           2, "hit +Inf");
    is_int(sample(text, "mongocache_request_duration_seconds_count{outcome=\"hit\"}"), 2,
           "hit count");
    ok(strstr(text, "mongocache_request_duration_seconds_sum{outcome=\"hit\"} 0.00011\n") != NULL,
       "hit sum in seconds");
    is_int(
        sample(text, "mongocache_request_duration_seconds_bucket{outcome=\"miss\",le=\"0.0025\"}"),
        0, "miss le 2.5ms: none");
    is_int(
        sample(text, "mongocache_request_duration_seconds_bucket{outcome=\"miss\",le=\"0.005\"}"),
        1, "miss le 5ms: one");
    is_int(sample(text, "mongocache_request_duration_seconds_count{outcome=\"error\"}"), 0,
           "every outcome has its series, even empty");
    is_int(sample(text, "mongocache_upstream_round_trip_seconds_bucket{le=\"2.5\"}"), 1,
           "upstream histogram, unlabelled");
    ok(strstr(text, "mongocache_redis_round_trip_seconds") == NULL,
       "no Redis histogram without Redis");
    ok(sample(text, "mongocache_process_resident_memory_bytes") > 0, "resident memory read");
    ok(sample(text, "mongocache_process_open_fds") >= 3, "open fds read");
    ok(sample(text, "mongocache_uptime_seconds") >= 5, "uptime from the start time");
    bson_free(text);

    server.conf->latency_histograms = false;
    evbuffer_drain(b, evbuffer_get_length(b));
    proxy_metrics_prometheus(&server, time(NULL), b);
    text = bson_strndup((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    ok(strstr(text, "request_duration_seconds") == NULL, "latency_histograms off: not shown");
    bson_free(text);

    proxy_metrics_stats_bson(&server, time(NULL), &doc);
    ok(bson_iter_init_find(&it, &doc, "version") && BSON_ITER_HOLDS_UTF8(&it), "/stats: version");
    ok(bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, "counters.requests", &it) &&
           bson_iter_as_int64(&it) == 7,
       "/stats: counters.requests");
    ok(bson_iter_init(&it, &doc) &&
           bson_iter_find_descendant(&it, "counters.memory_buffered", &it) &&
           bson_iter_as_int64(&it) == 4096,
       "/stats: counters.memory_buffered");
    ok(bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, "upstream", &it) &&
           strcmp(bson_iter_utf8(&it, NULL), "db.example:27017") == 0,
       "/stats: upstream");
    ok(bson_iter_init(&it, &doc) &&
           bson_iter_find_descendant(&it, "latency.request.hit.count", &it) &&
           bson_iter_as_int64(&it) == 2,
       "/stats: latency.request.hit.count");
    ok(bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, "advice.enabled", &it) &&
           !bson_iter_as_bool(&it),
       "/stats: advice section");
    {
        bson_t sub;
        char *adv;

        ok(bson_iter_init_find(&it, &doc, "advice") && BSON_ITER_HOLDS_DOCUMENT(&it), "advice doc");
        {
            const uint8_t *data;
            uint32_t len;

            bson_iter_document(&it, &len, &data);
            bson_init_static(&sub, data, len);
        }
        adv = bson_as_relaxed_extended_json(&sub, NULL);
        is_str(adv, "{ \"enabled\" : false, \"open\" : 0 }", "advice off: /stats as before");
        bson_free(adv);
    }
    evbuffer_drain(b, evbuffer_get_length(b));
    proxy_metrics_prometheus(&server, time(NULL), b);
    text = bson_strndup((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    ok(strstr(text, "\nmongocache_advice_enabled 0\n") &&
           strstr(text, "# TYPE mongocache_advice_requests_not_sampled_total counter\n"
                        "mongocache_advice_requests_not_sampled_total 0\n") &&
           strstr(text, "# TYPE mongocache_advice_open gauge\nmongocache_advice_open 0\n"),
       "advice off: /metrics has the advice rows at 0");
    bson_free(text);
    json = bson_as_relaxed_extended_json(&doc, NULL);
    ok(json && strstr(json, "\"requests\" : 7"), "/stats as relaxed JSON: plain numbers");
    bson_free(json);
    bson_destroy(&doc);
    evbuffer_free(b);
    bson_free(server.upstream_label);
    conf_destroy(server.conf);
}

int
main(void)
{
    test_hist_index();
    test_hist_cumulative();
    test_conventions();
    test_format();
    test_render();
    return done_testing();
}
