/*
 * cache/redis_url.c: the Redis URL (see redis_url.h): parsing
 * "redis://", "rediss://", "unix://" and Sentinel URLs, %-decoding the user info, and redacting
 * the password for logs and error messages (an error never quotes a piece
 * of the URL but through the redaction). It does not own connecting, AUTH
 * or SELECT with what it parsed, nor choosing between the URL's password
 * and redis_password (redis.c).
 */
#include "config.h"

#include "cache/redis_url.h"
#include "cache/redis.h"

#include <string.h>

#define URL_MAX 4096

/* The user info's password; a query other than ?db=N is replaced whole (it may hold one). */
char *
cache_redis_url_redact(const char *text)
{
    const char *scheme = text ? strstr(text, "://") : NULL;
    const char *auth = scheme ? scheme + 3 : text;
    const char *at = auth ? strrchr(auth, '@') : NULL;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    const char *query;
    size_t keep;
    char *out;

    if (!text)
        return bson_strdup("");
    if (!at)
        out = bson_strdup(text);
    else if (!colon) /* no ':' (malformed): the whole user info may be a password */
        out = bson_strdup_printf("%.*s<redacted>%s", (int)(auth - text), text, at);
    else
        out = bson_strdup_printf("%.*s<redacted>%s", (int)(colon + 1 - text), text, at);
    query = strchr(out, '?');
    if (query && (strncmp(query, "?db=", 4) != 0 ||
                  query[4 + strspn(query + 4, "0123456789")] != '\0')) {
        keep = (size_t)(query - out);
        out = bson_realloc(out, keep + sizeof "?<redacted>");
        memcpy(out + keep, "?<redacted>", sizeof "?<redacted>");
    }
    return out;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %-decodes s[0..len) into a new string (NULL when empty); false on a bad escape. */
static bool
pct_decode(const char *s, size_t len, char **out)
{
    char *d = bson_malloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;

            if (lo < 0 || (hi == 0 && lo == 0)) {
                bson_zero_free(d, len + 1);
                return false;
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    if (o == 0) {
        bson_free(d);
        d = NULL;
    }
    *out = d;
    return true;
}

/* Reads 1..digits decimal digits at *p (up to end) into *v (<= max); advances *p. */
static bool
parse_num(const char **p, const char *end, int64_t max, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;

    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        n = n * 10 + (*s - '0');
        if (n > max)
            return false;
    }
    *p = s;
    *v = n;
    return true;
}

static bool
host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

/* Sets *why (always a fixed text: never a piece of the URL) and returns false. */
static bool
refuse(const char **why, const char *text)
{
    *why = text;
    return false;
}

/* The user info before '@' (at), %-decoded into url. */
static bool
parse_userinfo(const char *s, const char *at, struct cache_redis_url *url, const char **why)
{
    const char *colon = memchr(s, ':', (size_t)(at - s));

    if (!colon)
        return refuse(why, "the user info must be [user]:password");
    if (!pct_decode(s, (size_t)(colon - s), &url->user) ||
        !pct_decode(colon + 1, (size_t)(at - colon - 1), &url->password))
        return refuse(why, "bad %-escape in the user info");
    return true;
}

/* "host[:port]" or "[v6][:port]" at *pp (up to end): a new *host, *port (def when none). */
static bool
parse_hostport(const char **pp, const char *end, char **host, uint16_t *port, uint16_t def,
               const char **why)
{
    const char *p = *pp;
    const char *h0;
    const char *h1;
    int64_t v;

    if (p < end && *p == '[') {
        h0 = p + 1;
        if (!(h1 = memchr(h0, ']', (size_t)(end - h0))) || h1 == h0)
            return refuse(why, "bad [IPv6] host");
        for (const char *q = h0; q < h1; q++)
            if (hex_value(*q) < 0 && *q != ':' && *q != '.')
                return refuse(why, "bad [IPv6] host");
        p = h1 + 1;
    } else {
        for (h0 = h1 = p; h1 < end && host_char(*h1); h1++)
            ;
        if (h1 == h0)
            return refuse(why, "no host");
        p = h1;
    }
    *host = bson_strndup(h0, (size_t)(h1 - h0));
    *port = def;
    if (p < end && *p == ':') {
        p++;
        if (!parse_num(&p, end, 65535, &v) || v == 0)
            return refuse(why, "the port must be 1..65535");
        *port = (uint16_t)v;
    }
    *pp = p;
    return true;
}

/* What ends a TCP or Sentinel URL at p: nothing, or "/db" (else trailing: the reason). */
static bool
parse_db(const char *p, const char *end, struct cache_redis_url *url, const char *trailing,
         const char **why)
{
    int64_t v = 0;

    if (p < end && *p == '/') {
        p++;
        if (p < end && (!parse_num(&p, end, 65535, &v) || p != end))
            return refuse(why, "the database must be a number 0..65535");
        url->db = (int)v;
    }
    if (p != end)
        return refuse(why, trailing);
    return true;
}

/* "[[user]:password@]host[:port][/db]" (after "redis://"). */
static bool
parse_tcp(const char *s, struct cache_redis_url *url, const char **why)
{
    const char *at = strrchr(s, '@');
    const char *p = at ? at + 1 : s;
    const char *end = p + strlen(p);

    if (at && !parse_userinfo(s, at, url, why))
        return false;
    if (!parse_hostport(&p, end, &url->host, &url->port, 6379, why))
        return false;
    return parse_db(p, end, url, "unexpected text after host[:port][/db]", why);
}

/* "[[user]:password@]host[:port][,host[:port]...]/master[/db]" (after "redis-sentinel://"). */
static bool
parse_sentinel(const char *s, struct cache_redis_url *url, const char **why)
{
    const char *at = strrchr(s, '@');
    const char *p = at ? at + 1 : s;
    const char *end = p + strlen(p);
    const char *m0;

    if (at && !parse_userinfo(s, at, url, why))
        return false;
    for (;;) {
        struct cache_redis_url_node *n;

        if (url->n_sentinels == CACHE_REDIS_URL_MAX_SENTINELS)
            return refuse(why, "at most 16 Sentinels");
        n = &url->sentinels[url->n_sentinels++];
        if (!parse_hostport(&p, end, &n->host, &n->port, 26379, why))
            return false;
        if (p == end || *p != ',')
            break;
        p++;
    }
    if (p == end || *p != '/')
        return refuse(why, "a Sentinel URL names the master: /master-name after the Sentinels");
    m0 = ++p;
    while (p < end && host_char(*p))
        p++;
    if (p == m0)
        return refuse(why, "a Sentinel URL names the master: /master-name after the Sentinels");
    url->master = bson_strndup(m0, (size_t)(p - m0));
    return parse_db(p, end, url, "unexpected text after /master-name[/db]", why);
}

/* "/path[?db=N]" (after "unix://"). */
static bool
parse_unix(const char *s, struct cache_redis_url *url, const char **why)
{
    const char *q = strchr(s, '?');
    size_t len = q ? (size_t)(q - s) : strlen(s);
    int64_t v;

    if (s[0] != '/' || len < 2)
        return refuse(why, "a unix URL is unix:///absolute/path[?db=N]");
    if (len > 107)
        return refuse(why, "the socket path is too long");
    url->path = bson_strndup(s, len);
    if (q) {
        const char *end = q + strlen(q);
        const char *p;

        if (strncmp(q, "?db=", 4) != 0)
            return refuse(why, "the only query is ?db=N (0..65535)");
        p = q + 4;
        if (!parse_num(&p, end, 65535, &v) || p != end)
            return refuse(why, "the only query is ?db=N (0..65535)");
        url->db = (int)v;
    }
    return true;
}

bool
cache_redis_url_parse(const char *text, struct cache_redis_url *url, bson_error_t *error)
{
    const char *why = NULL;
    bool ok = false;

    memset(url, 0, sizeof *url);
    url->port = 6379;
    if (!text || strlen(text) > URL_MAX)
        why = "empty or too long";
    else if (strncmp(text, "redis://", 8) == 0)
        ok = parse_tcp(text + 8, url, &why);
    else if (strncmp(text, "unix://", 7) == 0)
        ok = parse_unix(text + 7, url, &why);
    else if (strncmp(text, "rediss://", 9) == 0)
        ok = url->tls = parse_tcp(text + 9, url, &why);
    else if (strncmp(text, "redis-sentinel://", 17) == 0)
        ok = parse_sentinel(text + 17, url, &why);
    else if (strncmp(text, "rediss-sentinel://", 18) == 0)
        ok = url->tls = parse_sentinel(text + 18, url, &why);
    else
        why = "the scheme must be redis://, rediss://, redis-sentinel://, rediss-sentinel:// or "
              "unix://";
    if (!ok) {
        char *shown = cache_redis_url_redact(text && strlen(text) <= URL_MAX ? text : "");

        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_URL,
                       "invalid Redis URL \"%s\": %s", shown, why);
        bson_zero_free(shown, strlen(shown));
        cache_redis_url_cleanup(url);
    }
    return ok;
}

void
cache_redis_url_cleanup(struct cache_redis_url *url)
{
    bson_free(url->host);
    bson_free(url->path);
    bson_free(url->master);
    for (size_t i = 0; i < url->n_sentinels; i++)
        bson_free(url->sentinels[i].host);
    if (url->user)
        bson_zero_free(url->user, strlen(url->user));
    if (url->password)
        bson_zero_free(url->password, strlen(url->password));
    memset(url, 0, sizeof *url);
}
