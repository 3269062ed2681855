/*
 * proxy/dashboard.c: serving the dashboard page (see dashboard.h). Owns the
 * page's response headers: a Content-Security-Policy that allows the page's
 * own style and script elements by their SHA-256 (computed here once, from
 * the compiled-in bytes, so it cannot drift from the page), connections to
 * this origin only, and nothing else (no other script, style, image, frame,
 * form or base); Cache-Control no-store, so a browser never shows a page
 * older than the binary. Does not own the page's text (proxy/dashboard.html,
 * compiled in by make as dashboard_page.c), the data it reads (admin.c's
 * routes) nor the route itself (admin.c registers GET /).
 */
#include "config.h"

#include "proxy/dashboard.h"

#include "conf/error.h"
#include "proxy/dashboard_page.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <string.h>

/* Room for the policy: its fixed text and two base64 SHA-256 sums (44 each). */
#define CSP_MAX 512

struct proxy_dashboard {
    const unsigned char *page; /* static, from dashboard_page.c */
    size_t page_len;
    char csp[CSP_MAX];
};

/*
 * The CSP source 'sha256-BASE64' of the text between the page's only
 * "<tag>" and the "</tag>" after it, written to out (at least 45 bytes).
 * False when the element is missing or appears more than once: the policy
 * would then not match what the browser runs.
 */
static bool
element_sum(const unsigned char *page, size_t len, const char *tag, char *out, bson_error_t *error)
{
    char open[32], close[32];
    const unsigned char *start, *end, *again;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    bson_snprintf(open, sizeof open, "<%s>", tag);
    bson_snprintf(close, sizeof close, "</%s>", tag);
    start = memmem(page, len, open, strlen(open));
    if (!start) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_DASHBOARD,
                       "dashboard page: no <%s> element", tag);
        return false;
    }
    start += strlen(open);
    end = memmem(start, len - (size_t)(start - page), close, strlen(close));
    again = memmem(start, len - (size_t)(start - page), open, strlen(open));
    if (!end || again) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_DASHBOARD,
                       "dashboard page: <%s> not closed, or more than one", tag);
        return false;
    }
    if (!EVP_Digest(start, (size_t)(end - start), md, &md_len, EVP_sha256(), NULL) ||
        md_len != 32) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_DASHBOARD,
                       "dashboard page: SHA-256 failed");
        return false;
    }
    /* 32 bytes are 44 base64 characters and a NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
    return true;
}

struct proxy_dashboard *
proxy_dashboard_new(bson_error_t *error)
{
    struct proxy_dashboard *d = bson_malloc0(sizeof *d);
    char style[64], script[64];
    int n;

    d->page = proxy_dashboard_page_bytes(&d->page_len);
    if (!element_sum(d->page, d->page_len, "style", style, error) ||
        !element_sum(d->page, d->page_len, "script", script, error))
        goto fail;
    n = bson_snprintf(d->csp, sizeof d->csp,
                      "default-src 'none'; script-src 'sha256-%s'; style-src 'sha256-%s'; "
                      "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'",
                      script, style);
    if (n < 0 || (size_t)n >= sizeof d->csp) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_DASHBOARD,
                       "dashboard page: policy too long");
        goto fail;
    }
    return d;
fail:
    proxy_dashboard_destroy(d);
    return NULL;
}

void
proxy_dashboard_destroy(struct proxy_dashboard *dashboard)
{
    bson_free(dashboard);
}

const char *
proxy_dashboard_csp(const struct proxy_dashboard *dashboard)
{
    return dashboard->csp;
}

void
proxy_dashboard_serve(const struct proxy_dashboard *dashboard, struct evhttp_request *req)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();

    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (evbuffer_add_reference(body, dashboard->page, dashboard->page_len, NULL, NULL) != 0) {
        evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(headers, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_add_header(headers, "Content-Security-Policy", dashboard->csp);
    evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(headers, "X-Frame-Options", "DENY");
    evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}
