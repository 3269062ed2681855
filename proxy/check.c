/*
 * proxy/check.c: the configuration check that start-up and --check-config
 * share. conf/ parses each value by its type; this file says, for the
 * options whose users would refuse more, whether they would, by calling
 * those users' own parsers:
 *   cache_include, cache_exclude  cache_rules_parse (cache/rules.c), as
 *   cache_ttl_overrides           cache_new and cache_reconfigure do;
 *   redis                         cache_redis_url_parse (cache/redis_url.c),
 *                                 as cache_redis_new does;
 *   listen                        evutil_parse_sockaddr_port, as the
 *                                 listener binds (a numeric address);
 *   listen_unix                   the length a sockaddr_un can hold;
 *   tls_cert_file, tls_key_file,  proxy_tls_check_file (proxy/tls.c): the
 *   tls_ca_file                   file reads and holds a certificate, a key
 *                                 not encrypted, CA certificates (whether
 *                                 the key matches is start-up's);
 *   upstream                      what the proxy can forward to: a
 *                                 server or a replica set (over TLS with
 *                                 the options proxy/tls.c supports), with
 *                                 no option that would change what
 *                                 clients get.
 *
 * Layering: conf/ is below cache/ and proxy/ and includes neither, so it
 * cannot call these parsers; it calls a hook instead (conf_check_fn),
 * for every value of every layer as it is read (so each bad line of a
 * file is reported with its FILE:LINE). main.c installs this file's
 * function before conf_load; conf_reload keeps it. There is no second
 * list: start-up parses the same values with the same functions and so
 * cannot refuse what passed here (what is left to fail at start-up is the
 * machine: an address in use, a pid file that cannot be written).
 *
 * The upstream URI: its hosts (and replicaSet, directConnection), or for
 * mongodb+srv:// its SRV and TXT records (srvServiceName, srvMaxHosts), are
 * followed by the topology monitor (proxy/topology.h), which also reads
 * heartbeatFrequencyMS, connectTimeoutMS and appName, and logs in with the
 * credentials and auth options (its own login: clients still log in
 * themselves); its TLS options are proxy/tls.c's; the proxy forwards each
 * client's own commands, login, read preference and write concern
 * untouched; with loadBalanced=true each hello it sends upstream says
 * so. So TLS options it does not support, a read preference, write concern or read concern would each be silently
 * ignored while promising something else: refused, naming the option.
 * Options that only tune a driver (other timeouts, pool sizes) have no
 * effect, but promise nothing a client would get: a warning.
 * compressors and zlibCompressionLevel are the proxy's own wire compression
 * with the upstream (proxy/compress.h): used, and a compressor this build
 * lacks is warned of.
 */
#include "config.h"

#include "proxy/check.h"

#include "cache/redis_url.h"
#include "cache/rules.h"
#include "proxy/tls.h"
#include "wire/compress.h"

#include <ctype.h>
#include <event2/util.h>
#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Appends one reason to why, separated from the previous ones by "; ". */
static void
add_reason(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
add_reason(char *why, size_t len, const char *fmt, ...)
{
    size_t used = strlen(why);
    va_list ap;

    if (used > 0 && used + 2 < len) {
        bson_strncpy(why + used, "; ", len - used);
        used += 2;
    }
    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    bson_vsnprintf(why + used, len - used, fmt, ap);
    va_end(ap);
}

/* The kinds of upstream URI options, by what ignoring them would mean. */
enum uri_kind {
    URI_NO_EFFECT, /* driver tuning: a warning */
    URI_MONITOR,   /* read by the topology monitor: accepted */
    URI_TLS,
    URI_DIRECT,
    URI_READ_PREFERENCE,
    URI_WRITE_CONCERN,
    URI_READ_CONCERN,
    URI_COMPRESSION, /* the proxy's own compression with the upstream: used */
};

static const struct {
    const char *key; /* lower case, as libmongoc's MONGOC_URI_* */
    enum uri_kind kind;
} uri_keys[] = {
    {MONGOC_URI_REPLICASET, URI_MONITOR},
    {MONGOC_URI_HEARTBEATFREQUENCYMS, URI_MONITOR},
    {MONGOC_URI_CONNECTTIMEOUTMS, URI_MONITOR},
    {MONGOC_URI_APPNAME, URI_MONITOR},
    {MONGOC_URI_DIRECTCONNECTION, URI_DIRECT},
    /* each hello sent upstream says loadBalanced (proxy/handshake.c); libmongoc
     * refuses it with several hosts, replicaSet or directConnection=true */
    {MONGOC_URI_LOADBALANCED, URI_MONITOR},
    /* the monitor's own login (proxy/topology.c login_check) */
    {MONGOC_URI_AUTHSOURCE, URI_MONITOR},
    {MONGOC_URI_AUTHMECHANISM, URI_MONITOR},
    {MONGOC_URI_AUTHMECHANISMPROPERTIES, URI_MONITOR},
    {MONGOC_URI_GSSAPISERVICENAME, URI_MONITOR},
    {MONGOC_URI_CANONICALIZEHOSTNAME, URI_MONITOR},
    {MONGOC_URI_READPREFERENCE, URI_READ_PREFERENCE},
    {MONGOC_URI_READPREFERENCETAGS, URI_READ_PREFERENCE},
    {MONGOC_URI_MAXSTALENESSSECONDS, URI_READ_PREFERENCE},
    {MONGOC_URI_SLAVEOK, URI_READ_PREFERENCE},
    {MONGOC_URI_W, URI_WRITE_CONCERN},
    {MONGOC_URI_JOURNAL, URI_WRITE_CONCERN},
    {MONGOC_URI_WTIMEOUTMS, URI_WRITE_CONCERN},
    {MONGOC_URI_SAFE, URI_WRITE_CONCERN},
    {MONGOC_URI_READCONCERNLEVEL, URI_READ_CONCERN},
    {MONGOC_URI_SRVSERVICENAME, URI_MONITOR},
    {MONGOC_URI_SRVMAXHOSTS, URI_MONITOR},
    {MONGOC_URI_COMPRESSORS, URI_COMPRESSION},
    {MONGOC_URI_ZLIBCOMPRESSIONLEVEL, URI_COMPRESSION},
};

static enum uri_kind
uri_kind_of(const char *key, size_t len)
{
    if ((len >= 3 && strncasecmp(key, "tls", 3) == 0) ||
        (len >= 3 && strncasecmp(key, "ssl", 3) == 0))
        return URI_TLS;
    for (size_t i = 0; i < sizeof uri_keys / sizeof uri_keys[0]; i++)
        if (strlen(uri_keys[i].key) == len && strncasecmp(uri_keys[i].key, key, len) == 0)
            return uri_keys[i].kind;
    return URI_NO_EFFECT;
}

/* Copies an option name for a message: at most 40 bytes, letters, digits and '_' only. */
static void
key_name(const char *key, size_t len, char *out, size_t out_len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && i < 40 && o + 1 < out_len; i++)
        out[o++] = isalnum((unsigned char)key[i]) || key[i] == '_' ? key[i] : '?';
    out[o] = '\0';
}

/* True when the option's value (len bytes) is val, case ignored. */
static bool
value_is(const char *value, size_t len, const char *val)
{
    return strlen(val) == len && strncasecmp(value, val, len) == 0;
}

/*
 * Classifies each option of the URI's query (text, as written) and adds
 * a reason to why for each one that would be ignored while changing
 * meaning; the names of the rest are listed in no_effect. Values are
 * never quoted: an auth property may hold a secret.
 */
static void
check_uri_options(const char *text, char *why, size_t why_len, char *no_effect, size_t ne_len)
{
    const char *scheme = strstr(text, "://");
    const char *hosts = scheme ? scheme + 3 : text;
    const char *slash = strchr(hosts, '/');
    const char *query = slash ? strchr(slash, '?') : NULL;
    const char *p = query ? query + 1 : NULL;

    while (p && *p) {
        size_t len = strcspn(p, "&;");
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        const char *value = eq ? eq + 1 : p + len;
        size_t value_len = (size_t)(p + len - value);
        char key[48];

        key_name(p, key_len, key, sizeof key);
        switch (uri_kind_of(p, key_len)) {
        case URI_TLS:
            if (!proxy_tls_uri_key_supported(p, key_len))
                add_reason(why, why_len,
                           "%s: the proxy's TLS to the upstream does not support this option "
                           "(it takes tls, tlsCAFile, tlsCertificateKeyFile (a key not "
                           "encrypted), tlsAllowInvalidHostnames, tlsAllowInvalidCertificates, "
                           "tlsInsecure); remove it",
                           key);
            break;
        case URI_MONITOR:
        case URI_DIRECT:
            break;
        case URI_READ_PREFERENCE:
            if (!(value_is(p, key_len, MONGOC_URI_READPREFERENCE) &&
                  value_is(value, value_len, "primary")))
                add_reason(why, why_len,
                           "%s: the proxy forwards each client's own read preference and adds "
                           "none; remove it",
                           key);
            break;
        case URI_WRITE_CONCERN:
            add_reason(why, why_len,
                       "%s: the proxy forwards each client's own write concern and adds none; "
                       "remove it",
                       key);
            break;
        case URI_READ_CONCERN:
            add_reason(why, why_len,
                       "%s: the proxy forwards each client's own read concern and adds none; "
                       "remove it",
                       key);
            break;
        case URI_COMPRESSION:
            break;
        case URI_NO_EFFECT:
            if (key[0] != '\0' && strlen(no_effect) + strlen(key) + 3 < ne_len) {
                if (no_effect[0] != '\0')
                    bson_strncpy(no_effect + strlen(no_effect), ", ",
                                 ne_len - strlen(no_effect));
                bson_strncpy(no_effect + strlen(no_effect), key, ne_len - strlen(no_effect));
            }
            break;
        }
        p += len;
        if (*p)
            p++;
    }
}

/* The upstream URI: servers, nothing ignored that would change meaning. */
static bool
check_upstream(struct conf *conf, const char *value, const char *source, char *why,
               size_t why_len)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(value, &error);
    char no_effect[256] = "";

    if (uri == NULL) {
        /* conf_parse_uri accepted it: not reached, unless libmongoc changes its mind. */
        bson_snprintf(why, why_len, "libmongoc refuses it");
        return false;
    }
    why[0] = '\0';
    check_uri_options(value, why, why_len, no_effect, sizeof no_effect);
    if (no_effect[0] != '\0')
        conf_notes_add(&conf->warnings,
                       "upstream options %s (from %s) have no effect: the proxy takes only the "
                       "servers, replicaSet, directConnection, heartbeatFrequencyMS, "
                       "connectTimeoutMS, appName, srvServiceName, srvMaxHosts and the "
                       "monitor's credentials from upstream (connect_timeout sets its connect "
                       "timeout)",
                       no_effect, source);
    {
        /* compressors=: what the proxy offers the upstream; names it cannot offer are said. */
        const bson_t *list = mongoc_uri_get_compressors(uri);
        bson_iter_t it;

        if (list && bson_iter_init(&it, list)) {
            while (bson_iter_next(&it)) {
                int id = wire_compress_lookup(bson_iter_key(&it), bson_iter_key_len(&it));

                if (id < 0 || !wire_compress_built(id))
                    conf_notes_add(&conf->warnings,
                                   "upstream compressors (from %s): %.16s is not built into "
                                   "this mongocache; not offered to the upstream",
                                   source, bson_iter_key(&it));
            }
        }
    }
    if (mongoc_uri_get_database(uri) != NULL)
        conf_notes_add(&conf->warnings,
                       "the database in upstream (from %s) has no effect: each client names its "
                       "own",
                       source);
    mongoc_uri_destroy(uri);
    return why[0] == '\0';
}

/* A namespace list: parsed by the very function the cache uses. */
static bool
check_rules(enum conf_opt_id id, const char *value, char *why, size_t why_len)
{
    struct cache_rules rules;
    bson_error_t error;

    if (!cache_rules_parse(&rules, value, id == CONF_OPT_cache_ttl_overrides, conf_opt_name(id),
                           &error)) {
        bson_snprintf(why, why_len, "%s", error.message);
        return false;
    }
    cache_rules_clear(&rules);
    return true;
}

/* A Redis URL: parsed by the very function the Redis tier uses. */
static bool
check_redis(const char *value, char *why, size_t why_len)
{
    struct cache_redis_url url;
    bson_error_t error;

    if (value[0] == '\0')
        return true; /* no Redis tier */
    memset(&url, 0, sizeof url);
    if (!cache_redis_url_parse(value, &url, &error)) {
        bson_snprintf(why, why_len, "%s", error.message);
        return false;
    }
    cache_redis_url_cleanup(&url);
    return true;
}

/*
 * The advisor's connection string: parsed by libmongoc, which the advisor
 * connects with. Unlike upstream it may carry credentials (its own user).
 */
static bool
check_advice_uri(const char *value, char *why, size_t why_len)
{
    bson_error_t error;
    mongoc_uri_t *uri;

    if (value[0] == '\0')
        return true; /* the upstream's */
    uri = mongoc_uri_new_with_error(value, &error);
    if (!uri) {
        /* libmongoc's message may quote the URI: never shown, it may hold a password. */
        bson_snprintf(why, why_len, "not a MongoDB connection string libmongoc accepts");
        return false;
    }
    mongoc_uri_destroy(uri);
    return true;
}

/* The TCP listener binds the address as libevent parses it: numeric only. */
static bool
check_listen(const char *value, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;

    if (value[0] == '\0')
        return true; /* no TCP listener */
    if (evutil_parse_sockaddr_port(value, (struct sockaddr *)&ss, &len) != 0) {
        bson_snprintf(why, why_len,
                      "the listener needs a numeric address, IPv4 or [IPv6] (not a host name)");
        return false;
    }
    return true;
}

static bool
check_listen_unix(const char *value, char *why, size_t why_len)
{
    struct sockaddr_un sun;

    if (strlen(value) >= sizeof sun.sun_path) {
        bson_snprintf(why, why_len, "a unix socket path must be shorter than %zu bytes",
                      sizeof sun.sun_path);
        return false;
    }
    return true;
}

bool
proxy_check_option(struct conf *conf, enum conf_opt_id id, const char *value,
                   const char *source, char *why, size_t why_len)
{
    switch (id) {
    case CONF_OPT_cache_include:
    case CONF_OPT_cache_exclude:
    case CONF_OPT_cache_ttl_overrides:
        return check_rules(id, value, why, why_len);
    case CONF_OPT_redis:
        return check_redis(value, why, why_len);
    case CONF_OPT_advice_uri:
        return check_advice_uri(value, why, why_len);
    case CONF_OPT_listen:
        return check_listen(value, why, why_len);
    case CONF_OPT_listen_unix:
        return check_listen_unix(value, why, why_len);
    case CONF_OPT_upstream:
        return check_upstream(conf, value, source, why, why_len);
    case CONF_OPT_tls_cert_file:
        return proxy_tls_check_file(PROXY_TLS_FILE_CERT, value, why, why_len);
    case CONF_OPT_tls_key_file:
        return proxy_tls_check_file(PROXY_TLS_FILE_KEY, value, why, why_len);
    case CONF_OPT_tls_ca_file:
        return proxy_tls_check_file(PROXY_TLS_FILE_CA, value, why, why_len);
    default:
        return true;
    }
}
