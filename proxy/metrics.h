/*
 * proxy/metrics.h: the two renderings of every counter, gauge and histogram
 * declared in conf/counters.def: the /stats JSON document (built as BSON,
 * written as relaxed extended JSON) and the Prometheus text exposition
 * format 0.0.4 of GET /metrics. Both read the same values in the same
 * call, so a scrape and a /stats taken with no traffic in between agree.
 */
#ifndef MONGOCACHE_PROXY_METRICS_H
#define MONGOCACHE_PROXY_METRICS_H

#include <bson/bson.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;
struct proxy_server;

/* Namespaces /stats shows by name, the most read; the rest are summed in "namespaces_other". */
#define PROXY_METRICS_JSON_NAMESPACES 100

/*
 * Appends the whole /stats document to doc (an empty document the caller
 * initialised and destroys): version, uptime, upstream, the proxy's
 * counters, the cache's, Redis's, the namespaces, the advice, the process
 * and the latency histograms. started: the wall-clock start (time()).
 */
void proxy_metrics_stats_bson(struct proxy_server *server, time_t started, bson_t *doc);

/*
 * Appends the Prometheus text exposition (format 0.0.4) to buf: every
 * family of conf/counters.def as mongocache_<prom>, the namespaces
 * (at most conf->metrics_namespaces by name plus namespace="other"),
 * reads not cached by reason, the histograms, and the process.
 */
void proxy_metrics_prometheus(struct proxy_server *server, time_t started, struct evbuffer *buf);

/* The Content-Type of proxy_metrics_prometheus's output. */
#define PROXY_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Writes us microseconds as seconds in plain decimal ("0.00005", "2.5",
 * "10"), the form of a bucket's le label, into out (at least 32 bytes).
 */
void proxy_metrics_format_seconds(int64_t us, char *out, size_t size);

/*
 * Appends s (len bytes) as a Prometheus label value, quotes included:
 * backslash, double quote and newline escaped, bytes of invalid UTF-8 and
 * other control characters replaced by '?'.
 */
void proxy_metrics_label_value(struct evbuffer *buf, const char *s, size_t len);

#endif
