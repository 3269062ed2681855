/*
 * conf/parse.c: owns the option table generated from options.def, the
 * numeric ranges of options, and the parsing of one value of each type
 * (STRING, SECRET, ADDR, URI, INT, SIZE, DURATION, BOOL, LOGLEVEL),
 * including reading SECRET values from "file:/path" and the wording of the
 * message for a refused value. It knows nothing of where values come from:
 * file.c, env.c and cli.c pass the source along.
 */
#include "config.h"

#include "conf/parse.h"

#include "wire/frame.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* wire/ includes only wire/, so it names its domain itself: the same number. */
_Static_assert(CONF_ERROR_DOMAIN_WIRE == WIRE_ERROR_DOMAIN,
               "conf/error.h and wire/frame.h name one domain");

#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define DURATION_MAX (168 * MS_PER_H) /* a week */
#define KIB INT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* Longest part of a refused value quoted back in an error message. */
#define ERROR_VALUE_MAX 96

static const struct conf_opt_desc opt_table[CONF_OPT_COUNT] = {
#define CONF_OPT(name, type, def, env, reload, help)                                              \
    {#name, CONF_TYPE_##type, def, env, (reload) != 0, help, offsetof(struct conf, name)},
#include "conf/options.def"
#undef CONF_OPT
};

/* Accepted range of every numeric option. */
static const struct conf_range {
    enum conf_opt_id id;
    int64_t min;
    int64_t max;
} range_table[] = {
    {CONF_OPT_max_clients, 1, 1000000},
    {CONF_OPT_connect_timeout, 1, DURATION_MAX},
    {CONF_OPT_upstream_srv_rescan, 100, DURATION_MAX},
    {CONF_OPT_idle_timeout, 0, DURATION_MAX},
    {CONF_OPT_message_timeout, 1, DURATION_MAX},
    {CONF_OPT_drain_timeout, 0, DURATION_MAX},
    {CONF_OPT_max_message_size, 16, 48000000},
    {CONF_OPT_buffer_limit, KIB, 1024 * GIB},
    {CONF_OPT_max_memory, 0, 1024 * GIB},
    {CONF_OPT_max_bson_depth, 1, 200},
    {CONF_OPT_cache_memory, 0, 1024 * GIB},
    {CONF_OPT_cache_max_entry_bytes, 16, 48000000},
    {CONF_OPT_cache_ttl, 0, DURATION_MAX},
    {CONF_OPT_cache_write_grace, 0, DURATION_MAX},
    {CONF_OPT_cache_coalesce_wait, 0, DURATION_MAX},
    {CONF_OPT_redis_timeout, 1, DURATION_MAX},
    {CONF_OPT_redis_breaker_failures, 1, 1000},
    {CONF_OPT_redis_breaker_cooldown, 0, DURATION_MAX},
    {CONF_OPT_advice_interval, 100, 24 * 3600 * 1000},
    {CONF_OPT_advice_min_documents, 0, INT64_C(1000000000000)},
    {CONF_OPT_advice_max_shapes, 1, 10000},
    {CONF_OPT_advice_exact_rate, 0, 100000000},
    {CONF_OPT_slow_request_ms, 0, 24 * 3600 * 1000},
    {CONF_OPT_metrics_namespaces, 1, 1000},
};

static const struct {
    const char *text;
    bool value;
} bool_words[] = {
    {"true", true}, {"false", false}, {"yes", true}, {"no", false},
    {"on", true},   {"off", false},   {"1", true},   {"0", false},
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const struct conf_opt_desc *
conf_parse_desc(enum conf_opt_id id)
{
    BSON_ASSERT((int)id >= 0 && id < CONF_OPT_COUNT);
    return &opt_table[id];
}

int
conf_parse_lookup(const char *name, size_t len)
{
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const char *n = opt_table[id].name;
        size_t i;

        if (strlen(n) != len) {
            continue;
        }
        for (i = 0; i < len; i++) {
            char c = name[i] == '-' ? '_' : name[i];

            if (c != n[i]) {
                break;
            }
        }
        if (i == len) {
            return id;
        }
    }
    return -1;
}

/* Longest name conf_parse_near compares. */
#define NEAR_MAX 64

static char
fold(char c)
{
    return c == '-' ? '_' : (char)tolower((unsigned char)c);
}

bool
conf_parse_near(const char *typed, size_t len, const char *name, unsigned *distance)
{
    size_t nlen = strlen(name);
    unsigned rows[3][NEAR_MAX + 1];
    unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    unsigned limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;

    *distance = UINT32_MAX;
    if (len == 0 || len > NEAR_MAX || nlen > NEAR_MAX) {
        return false;
    }
    /* Edit distance with adjacent swaps (optimal string alignment), row by row. */
    for (size_t j = 0; j <= nlen; j++) {
        prev[j] = (unsigned)j;
    }
    for (size_t i = 1; i <= len; i++) {
        unsigned *spare = prev2;

        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= nlen; j++) {
            unsigned cost = fold(typed[i - 1]) == name[j - 1] ? 0 : 1;
            unsigned best = prev[j] + 1;

            if (cur[j - 1] + 1 < best) {
                best = cur[j - 1] + 1;
            }
            if (prev[j - 1] + cost < best) {
                best = prev[j - 1] + cost;
            }
            if (i > 1 && j > 1 && fold(typed[i - 1]) == name[j - 2] &&
                fold(typed[i - 2]) == name[j - 1] && prev2[j - 2] + 1 < best) {
                best = prev2[j - 2] + 1;
            }
            cur[j] = best;
        }
        prev2 = prev;
        prev = cur;
        cur = spare;
    }
    *distance = prev[nlen];
    return *distance <= limit;
}

/* True when typed (len bytes, at least 4) is the start of name. */
static bool
starts(const char *typed, size_t len, const char *name)
{
    if (len < 4 || len >= strlen(name)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (fold(typed[i]) != name[i]) {
            return false;
        }
    }
    return true;
}

int
conf_parse_suggest(const char *typed, size_t len)
{
    int best = -1;
    unsigned best_distance = UINT32_MAX;
    int prefix_of = -1;
    int n_prefix = 0;

    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        unsigned d;

        if (conf_parse_near(typed, len, opt_table[id].name, &d) && d < best_distance) {
            best = id;
            best_distance = d;
        }
        if (starts(typed, len, opt_table[id].name)) {
            prefix_of = id;
            n_prefix++;
        }
    }
    if (best < 0 && n_prefix == 1) {
        best = prefix_of; /* the start of one option's name, and of no other */
    }
    return best;
}

bool
conf_parse_range(enum conf_opt_id id, int64_t *min, int64_t *max)
{
    for (size_t i = 0; i < sizeof range_table / sizeof range_table[0]; i++) {
        if (range_table[i].id == id) {
            *min = range_table[i].min;
            *max = range_table[i].max;
            return true;
        }
    }
    return false;
}

/* Reads one or more decimal digits at *p into *out, advancing *p. */
static bool
parse_digits(const char **p, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;

    if (!isdigit((unsigned char)*s)) {
        return false;
    }
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';

        if (v > (INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

bool
conf_parse_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
    const char *p = text;
    bool negative = false;
    int64_t v;

    if (*p == '-' || *p == '+') {
        negative = *p == '-';
        p++;
    }
    if (!parse_digits(&p, &v) || *p != '\0') {
        return false;
    }
    if (negative) {
        v = -v;
    }
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Parses "NUMBER [UNIT]" where units[] gives each unit's multiplier. */
struct unit {
    const char *suffix;
    int64_t mult;
};

static bool
parse_with_unit(const char *text, const struct unit *units, size_t n_units, int64_t none_mult,
                int64_t min, int64_t max, int64_t *out)
{
    const char *p = text;
    int64_t v;
    int64_t mult = none_mult;

    if (!parse_digits(&p, &v)) {
        return false;
    }
    while (*p == ' ') {
        p++;
    }
    if (*p != '\0') {
        size_t i;

        for (i = 0; i < n_units; i++) {
            if (strcasecmp(p, units[i].suffix) == 0) {
                mult = units[i].mult;
                break;
            }
        }
        if (i == n_units) {
            return false;
        }
    } else if (p != text && p[-1] == ' ') {
        return false; /* trailing space without a unit */
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    v *= mult;
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool
conf_parse_size(const char *text, int64_t min, int64_t max, int64_t *out)
{
    static const struct unit units[] = {
        {"B", 1},
        {"K", 1000},   {"KB", 1000},   {"KiB", KIB},
        {"M", 1000000}, {"MB", 1000000}, {"MiB", MIB},
        {"G", 1000000000}, {"GB", 1000000000}, {"GiB", GIB},
    };

    return parse_with_unit(text, units, sizeof units / sizeof units[0], 1, min, max, out);
}

bool
conf_parse_duration(const char *text, int64_t min, int64_t max, int64_t *out)
{
    static const struct unit units[] = {
        {"ms", 1},
        {"s", MS_PER_S},
        {"m", MS_PER_M},
        {"h", MS_PER_H},
    };

    return parse_with_unit(text, units, sizeof units / sizeof units[0], MS_PER_S, min, max,
                           out);
}

bool
conf_parse_bool(const char *text, bool *out)
{
    for (size_t i = 0; i < sizeof bool_words / sizeof bool_words[0]; i++) {
        if (strcasecmp(text, bool_words[i].text) == 0) {
            *out = bool_words[i].value;
            return true;
        }
    }
    return false;
}

bool
conf_parse_loglevel(const char *text, int *out)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = CONF_LOG_WARN;
        return true;
    }
    return false;
}

bool
conf_parse_addr(const char *text)
{
    return text[0] == '\0' || conf_split_addr(text, NULL, NULL);
}

bool
conf_split_addr(const char *addr, char **host, uint16_t *port)
{
    const char *h;
    size_t hlen;
    const char *p;
    int64_t portnum;

    if (addr == NULL || addr[0] == '\0') {
        return false;
    }
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        bool colon = false;

        if (close == NULL || close[1] != ':') {
            return false;
        }
        h = addr + 1;
        hlen = (size_t)(close - h);
        for (size_t i = 0; i < hlen; i++) {
            char c = h[i];

            colon = colon || c == ':';
            if (!isalnum((unsigned char)c) && !strchr(":.%-_", c)) {
                return false;
            }
        }
        if (!colon) {
            return false;
        }
        p = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');

        if (colon == NULL) {
            return false;
        }
        h = addr;
        hlen = (size_t)(colon - addr);
        for (size_t i = 0; i < hlen; i++) {
            if (!isalnum((unsigned char)h[i]) && !strchr("-._", h[i])) {
                return false;
            }
        }
        p = colon + 1;
    }
    if (hlen == 0 || !isdigit((unsigned char)p[0]) || strlen(p) > 5) {
        return false;
    }
    if (!conf_parse_int(p, 1, 65535, &portnum)) {
        return false;
    }
    if (host != NULL) {
        *host = bson_strndup(h, hlen);
    }
    if (port != NULL) {
        *port = (uint16_t)portnum;
    }
    return true;
}

bool
conf_parse_uri_password(const char *uri, size_t *start, size_t *len)
{
    const char *scheme_end = strstr(uri, "://");
    const char *auth = scheme_end ? scheme_end + 3 : uri;
    const char *slash = strchr(auth, '/');
    const char *region_end = slash ? slash : auth + strlen(auth);
    const char *at = NULL;
    const char *colon;

    /*
     * In a URI libmongoc accepts, the user info ends at the last '@' before
     * the first '/'. When there is none there but a ':' is, the password may
     * hold a '/' (a URI libmongoc refuses): take the last '@' anywhere.
     */
    for (const char *q = auth; q < region_end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at == NULL && memchr(auth, ':', (size_t)(region_end - auth)) != NULL) {
        at = strrchr(auth, '@');
    }
    if (at == NULL) {
        return false;
    }
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL || colon + 1 == at) {
        return false;
    }
    *start = (size_t)(colon + 1 - uri);
    *len = (size_t)(at - colon - 1);
    return true;
}

/*
 * The URI options whose values are secrets as much as a password: the TLS
 * key file's passphrase (its current and its old name) and the auth
 * mechanism's properties (MONGODB-AWS's AWS_SESSION_TOKEN).
 */
static bool
secret_option(const char *key, size_t len)
{
    static const char *const keys[] = {"tlsCertificateKeyFilePassword",
                                       "sslClientCertificateKeyPassword",
                                       "authMechanismProperties"};

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strlen(keys[i]) == len && strncasecmp(keys[i], key, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Takes uri (bson_malloc'd) and returns it with the value of every secret option redacted. */
static char *
redact_options(char *uri)
{
    const char *query = strchr(uri, '?');
    const char *p = query ? query + 1 : NULL;
    bson_string_t *out;

    if (p == NULL) {
        return uri;
    }
    out = bson_string_new(NULL);
    bson_string_append_printf(out, "%.*s", (int)(p - uri), uri);
    while (*p) {
        size_t n = strcspn(p, "&;");
        const char *eq = memchr(p, '=', n);

        if (eq != NULL && secret_option(p, (size_t)(eq - p))) {
            bson_string_append_printf(out, "%.*s<redacted>", (int)(eq + 1 - p), p);
        } else {
            bson_string_append_printf(out, "%.*s", (int)n, p);
        }
        p += n;
        if (*p) {
            bson_string_append_c(out, *p++);
        }
    }
    bson_free(uri);
    return bson_string_free(out, false);
}

char *
conf_redact_uri(const char *uri)
{
    size_t start;
    size_t len;

    if (uri == NULL) {
        return bson_strdup("");
    }
    if (!conf_parse_uri_password(uri, &start, &len)) {
        return redact_options(bson_strdup(uri));
    }
    return redact_options(
        bson_strdup_printf("%.*s<redacted>%s", (int)start, uri, uri + start + len));
}

/* Copies src to buf (len bytes) with every occurrence of word replaced. */
static void
replace_all(const char *src, const char *word, size_t wlen, char *buf, size_t len)
{
    size_t o = 0;

    while (*src != '\0' && o + 1 < len) {
        if (wlen > 0 && strncmp(src, word, wlen) == 0) {
            o += (size_t)bson_snprintf(buf + o, len - o, "<redacted>");
            src += wlen;
        } else {
            buf[o++] = *src++;
        }
    }
    buf[o < len ? o : len - 1] = '\0';
}

bool
conf_parse_uri(const char *text, char *why, size_t why_len)
{
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(text, &err);
    size_t start;
    size_t len;

    if (uri != NULL) {
        /* mongodb+srv:// names no host: the topology monitor looks them up (SRV). */
        bool has_host =
            mongoc_uri_get_hosts(uri) != NULL || mongoc_uri_get_srv_hostname(uri) != NULL;

        mongoc_uri_destroy(uri);
        if (!has_host) {
            bson_snprintf(why, why_len, "no host list");
            return false;
        }
        return true;
    }
    if (conf_parse_uri_password(text, &start, &len)) {
        char *pw = bson_strndup(text + start, len);

        replace_all(err.message, pw, len, why, why_len);
        bson_zero_free(pw, len);
    } else {
        bson_snprintf(why, why_len, "%s", err.message);
    }
    return false;
}

void
conf_parse_format_duration(int64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        bson_snprintf(buf, len, "0");
    } else if (ms % MS_PER_H == 0) {
        bson_snprintf(buf, len, "%" PRId64 "h", ms / MS_PER_H);
    } else if (ms % MS_PER_M == 0) {
        bson_snprintf(buf, len, "%" PRId64 "m", ms / MS_PER_M);
    } else if (ms % MS_PER_S == 0) {
        bson_snprintf(buf, len, "%" PRId64 "s", ms / MS_PER_S);
    } else {
        bson_snprintf(buf, len, "%" PRId64 "ms", ms);
    }
}

void
conf_parse_format_size(int64_t bytes, char *buf, size_t len)
{
    /* The largest binary unit that divides exactly and reads naturally (under 1024 of it). */
    if (bytes != 0 && bytes % GIB == 0) {
        bson_snprintf(buf, len, "%" PRId64 "GiB", bytes / GIB);
    } else if (bytes != 0 && bytes % MIB == 0 && bytes < GIB) {
        bson_snprintf(buf, len, "%" PRId64 "MiB", bytes / MIB);
    } else if (bytes != 0 && bytes % KIB == 0 && bytes < MIB) {
        bson_snprintf(buf, len, "%" PRId64 "KiB", bytes / KIB);
    } else {
        bson_snprintf(buf, len, "%" PRId64, bytes);
    }
}

void
conf_parse_reason(enum conf_opt_id id, char *buf, size_t len)
{
    int64_t min = 0;
    int64_t max = INT64_MAX;
    char lo[32];
    char hi[32];

    (void)conf_parse_range(id, &min, &max);
    switch (opt_table[id].type) {
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET:
        bson_snprintf(buf, len, "expected text");
        break;
    case CONF_TYPE_ADDR:
        bson_snprintf(buf, len,
                      "expected HOST:PORT or [IPv6]:PORT with a port from 1 to 65535, "
                      "or an empty value to disable");
        break;
    case CONF_TYPE_URI:
        bson_snprintf(buf, len, "expected a mongodb:// connection string");
        break;
    case CONF_TYPE_INT:
        bson_snprintf(buf, len, "expected an integer from %" PRId64 " to %" PRId64, min, max);
        break;
    case CONF_TYPE_SIZE:
        conf_parse_format_size(min, lo, sizeof lo);
        conf_parse_format_size(max, hi, sizeof hi);
        bson_snprintf(buf, len,
                      "expected a size from %s to %s bytes: a whole number, optionally with "
                      "K, M, G (x1000) or KiB, MiB, GiB (x1024)",
                      lo, hi);
        break;
    case CONF_TYPE_DURATION:
        conf_parse_format_duration(min, lo, sizeof lo);
        conf_parse_format_duration(max, hi, sizeof hi);
        bson_snprintf(buf, len,
                      "expected a duration from %s to %s: a whole number with ms, s, m or h "
                      "(no unit: seconds)",
                      lo, hi);
        break;
    case CONF_TYPE_BOOL:
        bson_snprintf(buf, len, "expected true, false, yes, no, on, off, 1 or 0");
        break;
    case CONF_TYPE_LOGLEVEL:
        bson_snprintf(buf, len, "expected error, warn, info or debug");
        break;
    }
}

/* Copies text for an error message: quotes and control characters escaped, long values cut. */
static void
quote_value(const char *text, char *buf, size_t len)
{
    size_t o = 0;
    size_t i;

    for (i = 0; text[i] != '\0' && i < ERROR_VALUE_MAX && o + 5 < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)bson_snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    if (text[i] != '\0' && o + 4 < len) {
        bson_strncpy(buf + o, "...", len - o);
    }
}

/* Reads a secret from path (for "file:/path"), warning in conf when others may read it. */
static bool
read_secret_file(struct conf *conf, const struct conf_opt_desc *d, const char *path,
                 const char *source, char **out, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t n = 0;

    if (fd < 0) {
        bson_snprintf(why, why_len, "cannot open secret file: %s", strerror(errno));
        return false;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bson_snprintf(why, why_len, "secret file is not a regular file");
        close(fd);
        return false;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        conf_notes_add(&conf->warnings,
                       "secret file \"%s\" for %s (from %s) is readable by group or others; "
                       "chmod 600 it",
                       path, d->name, source);
    }
    buf = bson_malloc(CONF_SECRET_FILE_MAX + 1);
    for (;;) {
        ssize_t r = read(fd, buf + n, CONF_SECRET_FILE_MAX + 1 - n);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            bson_snprintf(why, why_len, "cannot read secret file: %s", strerror(errno));
            close(fd);
            bson_zero_free(buf, CONF_SECRET_FILE_MAX + 1);
            return false;
        }
        if (r == 0 || n + (size_t)r > CONF_SECRET_FILE_MAX) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n > CONF_SECRET_FILE_MAX) {
        bson_snprintf(why, why_len, "secret file is larger than %d bytes",
                      CONF_SECRET_FILE_MAX);
        bson_zero_free(buf, CONF_SECRET_FILE_MAX + 1);
        return false;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    if (memchr(buf, '\0', n) != NULL) {
        bson_snprintf(why, why_len, "secret file holds a NUL byte");
        bson_zero_free(buf, CONF_SECRET_FILE_MAX + 1);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    return true;
}

void
conf_parse_free_value(enum conf_opt_id id, char *value)
{
    enum conf_type type = conf_parse_desc(id)->type;

    if (value == NULL) {
        return;
    }
    if (type == CONF_TYPE_SECRET || type == CONF_TYPE_URI) {
        bson_zero_free(value, strlen(value));
    } else {
        bson_free(value);
    }
}

bool
conf_parse_set(struct conf *conf, enum conf_opt_id id, const char *text,
               enum conf_source_kind kind, const char *source, bson_error_t *error)
{
    const struct conf_opt_desc *d = conf_parse_desc(id);
    void *field = (char *)conf + d->offset;
    char why[320];
    char *str = NULL;
    int64_t num = 0;
    bool flag = false;
    int level = 0;
    bool ok = true;
    int64_t min = 0;
    int64_t max = INT64_MAX;

    why[0] = '\0';
    (void)conf_parse_range(id, &min, &max);
    switch (d->type) {
    case CONF_TYPE_STRING:
        str = bson_strdup(text);
        break;
    case CONF_TYPE_SECRET:
        if (strncmp(text, "file:", 5) == 0) {
            ok = read_secret_file(conf, d, text + 5, source, &str, why, sizeof why);
        } else {
            str = bson_strdup(text);
        }
        break;
    case CONF_TYPE_ADDR:
        ok = conf_parse_addr(text);
        str = ok ? bson_strdup(text) : NULL;
        break;
    case CONF_TYPE_URI: {
        char mongoc_why[256];

        ok = conf_parse_uri(text, mongoc_why, sizeof mongoc_why);
        if (ok) {
            str = bson_strdup(text);
        } else {
            bson_snprintf(why, sizeof why, "libmongoc says: %s", mongoc_why);
        }
        break;
    }
    case CONF_TYPE_INT:
        ok = conf_parse_int(text, min, max, &num);
        break;
    case CONF_TYPE_SIZE:
        ok = conf_parse_size(text, min, max, &num);
        break;
    case CONF_TYPE_DURATION:
        ok = conf_parse_duration(text, min, max, &num);
        break;
    case CONF_TYPE_BOOL:
        ok = conf_parse_bool(text, &flag);
        break;
    case CONF_TYPE_LOGLEVEL:
        ok = conf_parse_loglevel(text, &level);
        break;
    }
    /* Valid for its type: now what the code using it would refuse. */
    if (ok && conf->check != NULL &&
        !conf->check(conf, id, str != NULL ? str : text, source, why, sizeof why)) {
        if (why[0] == '\0') {
            bson_snprintf(why, sizeof why, "refused");
        }
        conf_parse_free_value(id, str);
        str = NULL;
        ok = false;
    }

    if (!ok) {
        char shown[ERROR_VALUE_MAX * 4 + 8];

        if (why[0] == '\0') {
            conf_parse_reason(id, why, sizeof why);
        }
        if (d->type == CONF_TYPE_SECRET && strncmp(text, "file:", 5) != 0) {
            bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_VALUE,
                           "invalid value for %s (from %s): %s", d->name, source, why);
            return false;
        }
        if (d->type == CONF_TYPE_URI) {
            char *redacted = conf_redact_uri(text);

            quote_value(redacted, shown, sizeof shown);
            bson_zero_free(redacted, strlen(redacted));
        } else {
            quote_value(text, shown, sizeof shown);
        }
        bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_VALUE,
                       "invalid value \"%s\" for %s (from %s): %s", shown, d->name, source, why);
        return false;
    }

    switch (d->type) {
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET:
    case CONF_TYPE_ADDR:
    case CONF_TYPE_URI:
        conf_parse_free_value(id, *(char **)field);
        *(char **)field = str;
        break;
    case CONF_TYPE_INT:
    case CONF_TYPE_SIZE:
    case CONF_TYPE_DURATION:
        *(int64_t *)field = num;
        break;
    case CONF_TYPE_BOOL:
        *(bool *)field = flag;
        break;
    case CONF_TYPE_LOGLEVEL:
        *(int *)field = level;
        break;
    }
    bson_free(conf->source[id]);
    conf->source[id] = bson_strdup(source);
    conf->source_kind[id] = kind;
    return true;
}

bool
conf_parse_list_next(const char **p, const char **start, size_t *len)
{
    const char *q = *p, *end;

    while (*q == ' ' || *q == '\t' || *q == ',')
        q++;
    if (*q == '\0') {
        *p = q;
        return false;
    }
    *start = q;
    while (*q != '\0' && *q != ',')
        q++;
    end = q;
    while (end > *start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *len = (size_t)(end - *start);
    *p = q;
    return true;
}
