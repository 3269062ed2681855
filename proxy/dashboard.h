/*
 * proxy/dashboard.h: the dashboard page at GET / on the HTTP endpoint
 * (proxy/dashboard.html, compiled in). The page holds no data: it reads
 * /stats, /shapes and /advice itself, so it is served without the token.
 */
#ifndef MONGOCACHE_PROXY_DASHBOARD_H
#define MONGOCACHE_PROXY_DASHBOARD_H

#include <bson/bson.h>

struct evhttp_request;
struct proxy_dashboard;

/*
 * Reads the compiled-in page once and prepares its headers (the
 * Content-Security-Policy names the SHA-256 of its <style> and <script>).
 * NULL with *error set when the page lacks either (a build mistake). Free
 * with proxy_dashboard_destroy.
 */
struct proxy_dashboard *proxy_dashboard_new(bson_error_t *error)
    __attribute__((warn_unused_result));
void proxy_dashboard_destroy(struct proxy_dashboard *dashboard);

/* Answers req with the page (borrowed: the page's bytes are not copied). */
void proxy_dashboard_serve(const struct proxy_dashboard *dashboard, struct evhttp_request *req);

/* The Content-Security-Policy header value sent with the page (owned by dashboard). */
const char *proxy_dashboard_csp(const struct proxy_dashboard *dashboard);

#endif
