/*
 * conf/log.c: the log line writer. Owns the current level and output
 * format (logfmt or JSON), the line layout (timestamp, level, connection
 * id, event, then the caller's key=value pairs) and the escaping that keeps
 * every line one line of well-formed pairs whatever the values hold.
 *
 * A line is built pair by pair. conf_log walks its format itself: the
 * format is " "-separated key=value templates, a value template being any
 * mix of literal text, conversions and "quoted" stretches (which may hold
 * blanks). Each value is first assembled raw (string arguments as they
 * are, numbers formatted one at a time by snprintf with a rebuilt
 * one-conversion format) into a bounded buffer, then written once in the
 * chosen format:
 *   - logfmt: key=value bare when the value is plainly safe, else
 *     key="..." with go-logfmt's escapes;
 *   - json: "key":value, a number when the value is one numeric conversion
 *     and nothing else, else a JSON string.
 * Both formats escape with the same rules (see put_escaped), so a value
 * decodes to the same text from either. Escaping is done here, by
 * construction, not at the call sites: a value that came from a client (an
 * appName, a user name, a namespace, a server's error text) can neither
 * end the line nor close its quotes nor forge a pair.
 *
 * It knows nothing of what is logged: callers redact secrets before
 * passing values. Writes go to stderr in one fputs per line so that lines
 * never interleave.
 */
#include "conf/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

/* Atomic: libmongoc logs from the advisor's thread too (proxy/main.c). */
static atomic_int current_level = CONF_LOG_INFO;
static atomic_int current_kind = CONF_LOG_KIND_LOGFMT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * Room kept at the end of a line for closing a quote and the truncated
 * pair: "\" truncated=true" (16) or "\",\"truncated\":true}" (19).
 */
#define CUT_TAIL 20

/* Longest raw value assembled before escaping; a longer one is cut (the line is then too). */
#define VALUE_MAX CONF_LOG_LINE_MAX

void
conf_log_set_level(int level)
{
    if (level < CONF_LOG_ERROR)
        level = CONF_LOG_ERROR;
    if (level > CONF_LOG_DEBUG)
        level = CONF_LOG_DEBUG;
    current_level = level;
}

bool
conf_log_enabled(int level)
{
    return level <= current_level;
}

void
conf_log_set_kind(int kind)
{
    current_kind = kind == CONF_LOG_KIND_JSON ? CONF_LOG_KIND_JSON : CONF_LOG_KIND_LOGFMT;
}

int
conf_log_kind(void)
{
    return current_kind;
}

bool
conf_log_kind_parse(const char *name, int *kind)
{
    if (name && strcmp(name, "logfmt") == 0) {
        *kind = CONF_LOG_KIND_LOGFMT;
        return true;
    }
    if (name && strcmp(name, "json") == 0) {
        *kind = CONF_LOG_KIND_JSON;
        return true;
    }
    return false;
}

/* ---- the output buffer ------------------------------------------------------- */

/*
 * A bounded line being written. Every write is a whole chunk (a key and
 * its opening quote, a value's character, an escape, a number): a chunk
 * that does not fit sets cut, and nothing is written after it. in_quote
 * says whether a quoted value (logfmt) or string (JSON) is open; sep
 * whether a pair was written before (the next needs its separator).
 */
struct out {
    char *buf;
    size_t cap; /* bytes usable, the NUL excluded */
    size_t used;
    bool cut;
    bool in_quote;
    bool sep;
    int kind;
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->cut)
        return;
    if (n > o->cap - o->used) {
        o->cut = true;
        return;
    }
    memcpy(o->buf + o->used, s, n);
    o->used += n;
    o->buf[o->used] = '\0';
}

/*
 * Length of the valid UTF-8 sequence at s (n bytes left), 0 when the bytes
 * there are not one (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF). *cp receives the code point.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        v = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        v = s[0] & 0x0f;
        if (s[0] == 0xe0)
            lo = 0xa0;
        else if (s[0] == 0xed)
            hi = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        v = s[0] & 0x07;
        if (s[0] == 0xf0)
            lo = 0x90;
        else if (s[0] == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf))
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

/*
 * Writes the inside of a quoted value, the same in both formats (go-logfmt
 * reads JSON's escapes): '"' and '\\' get a backslash; \n, \r, \t; other
 * control characters, DEL, C1 controls and U+2028/U+2029 become \uNNNN; a
 * byte that is not part of valid UTF-8 becomes \ufffd (the replacement
 * character: neither format can hold a raw byte); the rest is copied.
 */
static void
put_escaped(struct out *o, const char *value, size_t n)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t i = 0;

    while (i < n && !o->cut) {
        uint32_t cp = 0;
        size_t len;
        size_t run = i;
        char esc[8];

        /* A run of bytes copied as they are: printable ASCII but '"' and '\\'. */
        while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            size_t room = o->cap - o->used;

            if (run - i > room) {
                /* What fits, then the cut: each of these bytes is a chunk of its own. */
                put(o, value + i, room);
                o->cut = true;
                return;
            }
            put(o, value + i, run - i);
            i = run;
            continue;
        }
        len = utf8_seq(s + i, n - i, &cp);
        if (len == 0) {
            put(o, "\\ufffd", 6);
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            put(o, esc, 2);
        } else if (cp == '\n') {
            put(o, "\\n", 2);
        } else if (cp == '\r') {
            put(o, "\\r", 2);
        } else if (cp == '\t') {
            put(o, "\\t", 2);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            put(o, esc, 6);
        } else {
            put(o, value + i, len);
        }
        i += len;
    }
}

/*
 * True when a logfmt value may be written bare: printable ASCII but '"',
 * '\\' and '=', not empty, and not the word null (which some readers take
 * for no value).
 */
static bool
plain(const char *s, size_t n)
{
    if (n == 0 || (n == 4 && memcmp(s, "null", 4) == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=')
            return false;
    }
    return true;
}

size_t
conf_log_quote(char *buf, size_t len, const char *value, size_t n)
{
    struct out o = {buf, len > 1 ? len - 2 : 0, 0, false, false, false, CONF_LOG_KIND_LOGFMT};

    if (len < 3) {
        if (len > 0)
            buf[0] = '\0';
        return 0;
    }
    buf[0] = '\0';
    put(&o, "\"", 1);
    put_escaped(&o, value, n);
    /* One byte was kept back for the closing quote. */
    o.buf[o.used++] = '"';
    o.buf[o.used] = '\0';
    return o.used;
}

/*
 * True when s (n bytes) is a JSON number (RFC 8259 section 6): -?int frac?
 * exp?, no leading zeros, no blanks. snprintf's nan, inf and padded widths
 * are not, and are written as strings.
 */
static bool
json_number(const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == n;
}

/* One value as assembled from its template, before it is written. */
struct value {
    char buf[VALUE_MAX];
    size_t n;
    bool cut;     /* longer than VALUE_MAX */
    bool quoted;  /* the template quoted it: always written quoted */
    bool literal; /* the template had text of its own in it */
    int numbers;  /* numeric conversions in it */
    int strings;  /* other conversions in it */
};

static void
value_add(struct value *v, const char *s, size_t n)
{
    if (n > VALUE_MAX - v->n) {
        n = VALUE_MAX - v->n;
        v->cut = true;
    }
    memcpy(v->buf + v->n, s, n);
    v->n += n;
}

/*
 * Writes key (n bytes: the format's own text; any byte outside
 * [A-Za-z0-9_.-] becomes '_', so no key needs escaping) and its separator
 * as one chunk, with the opening of its value when the value is a string
 * (JSON) or quoted (logfmt); bare values and numbers follow in put_pair.
 */
static void
put_key(struct out *o, const char *key, size_t n, bool has_value, bool open_quote)
{
    char k[80];
    size_t m = 0;

    if (o->sep)
        k[m++] = o->kind == CONF_LOG_KIND_JSON ? ',' : ' ';
    if (o->kind == CONF_LOG_KIND_JSON)
        k[m++] = '"';
    if (n == 0)
        k[m++] = '_';
    for (size_t i = 0; i < n && m < sizeof k - 8; i++) {
        char c = key[i];

        k[m++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-')
                     ? c
                     : '_';
    }
    if (o->kind == CONF_LOG_KIND_JSON) {
        k[m++] = '"';
        k[m++] = ':';
    } else if (has_value) {
        k[m++] = '=';
    }
    if (open_quote)
        k[m++] = '"';
    put(o, k, m);
    if (o->cut)
        return;
    o->sep = true;
    if (open_quote)
        o->in_quote = true;
}

/*
 * Writes key and the bare value v (a number, or a plain logfmt value) as
 * one chunk: a cut never leaves a key without its value.
 */
static void
put_key_and(struct out *o, const char *key, size_t n, bool has_value, const char *value,
            size_t value_len)
{
    size_t before = o->used;
    bool sep = o->sep;

    put_key(o, key, n, has_value, false);
    put(o, value, value_len);
    if (o->cut) {
        o->used = before;
        o->buf[before] = '\0';
        o->sep = sep;
    }
}

/* Writes one pair: key (n bytes) and its value v (NULL: a key alone, JSON true). */
static void
put_pair(struct out *o, const char *key, size_t n, const struct value *v)
{
    bool json = o->kind == CONF_LOG_KIND_JSON;
    bool bare;

    if (o->cut)
        return;
    if (!v) {
        put_key_and(o, key, n, false, json ? "true" : "", json ? 4 : 0);
        return;
    }
    if (json)
        bare = !v->quoted && !v->literal && v->numbers == 1 && v->strings == 0 &&
               json_number(v->buf, v->n);
    else
        bare = !v->quoted && plain(v->buf, v->n);
    if (bare) {
        put_key_and(o, key, n, true, v->buf, v->n);
    } else {
        put_key(o, key, n, true, true); /* sets in_quote when written */
        put_escaped(o, v->buf, v->n);
        put(o, "\"", 1);
        if (!o->cut)
            o->in_quote = false;
    }
    if (v->cut)
        o->cut = true; /* the value lost its end: the line says truncated */
}

/* ---- the format walker ------------------------------------------------------- */

/* One conversion of fmt, as parsed. */
struct spec {
    char flags[8];
    int width; /* -1: none */
    int prec;  /* -1: none */
    char length[3];
    char conv;
};

/* Rebuilds a one-conversion printf format from sp into f. */
static void
spec_format(const struct spec *sp, char *f, size_t len)
{
    char width[16] = "";
    char prec[16] = "";

    if (sp->width >= 0)
        snprintf(width, sizeof width, "%d", sp->width);
    if (sp->prec >= 0)
        snprintf(prec, sizeof prec, ".%d", sp->prec);
    snprintf(f, len, "%%%s%s%s%s%c", sp->flags, width, prec, sp->length, sp->conv);
}

/*
 * The format is rebuilt at run time from one conversion of a format that
 * the compiler checked against its arguments (conf_log's format
 * attribute), and each argument is read with the type that conversion
 * names.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static size_t
format_number(const struct spec *sp, va_list *ap, char *text, size_t size)
{
    char f[48];
    const char *l = sp->length;
    int n = 0;
    bool is_signed = sp->conv == 'd' || sp->conv == 'i';

    spec_format(sp, f, sizeof f);
    switch (sp->conv) {
    case 'd':
    case 'i':
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        if (strcmp(l, "l") == 0)
            n = is_signed ? snprintf(text, size, f, va_arg(*ap, long))
                          : snprintf(text, size, f, va_arg(*ap, unsigned long));
        else if (strcmp(l, "ll") == 0)
            n = is_signed ? snprintf(text, size, f, va_arg(*ap, long long))
                          : snprintf(text, size, f, va_arg(*ap, unsigned long long));
        else if (strcmp(l, "z") == 0)
            n = is_signed ? snprintf(text, size, f, va_arg(*ap, ssize_t))
                          : snprintf(text, size, f, va_arg(*ap, size_t));
        else if (strcmp(l, "j") == 0)
            n = is_signed ? snprintf(text, size, f, va_arg(*ap, intmax_t))
                          : snprintf(text, size, f, va_arg(*ap, uintmax_t));
        else if (strcmp(l, "t") == 0)
            n = snprintf(text, size, f, va_arg(*ap, ptrdiff_t));
        else /* none, h, hh: promoted to int */
            n = is_signed ? snprintf(text, size, f, va_arg(*ap, int))
                          : snprintf(text, size, f, va_arg(*ap, unsigned));
        break;
    case 'c':
        n = snprintf(text, size, f, va_arg(*ap, int));
        break;
    case 'p':
        n = snprintf(text, size, f, va_arg(*ap, void *));
        break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (strcmp(l, "L") == 0)
            n = snprintf(text, size, f, va_arg(*ap, long double));
        else
            n = snprintf(text, size, f, va_arg(*ap, double));
        break;
    default:
        n = snprintf(text, size, "?");
        break;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= size)
        n = (int)size - 1;
    return (size_t)n;
}
#pragma GCC diagnostic pop

/* Parses the conversion after '%' at *p into sp (reading '*' widths from ap); advances *p. */
static void
parse_spec(const char **p, struct spec *sp, va_list *ap)
{
    const char *s = *p;
    size_t nf = 0;
    size_t nl = 0;

    memset(sp, 0, sizeof *sp);
    sp->width = -1;
    sp->prec = -1;
    while (*s && strchr("-+ #0'", *s)) {
        if (nf + 1 < sizeof sp->flags)
            sp->flags[nf++] = *s;
        s++;
    }
    if (*s == '*') {
        sp->width = va_arg(*ap, int);
        if (sp->width < 0)
            sp->width = -1; /* the left-justify flag is not worth keeping for a log */
        s++;
    } else {
        while (*s >= '0' && *s <= '9') {
            sp->width = (sp->width < 0 ? 0 : sp->width) * 10 + (*s - '0');
            if (sp->width > 4096)
                sp->width = 4096;
            s++;
        }
    }
    if (*s == '.') {
        s++;
        if (*s == '*') {
            sp->prec = va_arg(*ap, int); /* negative: as if none */
            if (sp->prec < 0)
                sp->prec = -1;
            s++;
        } else {
            sp->prec = 0;
            while (*s >= '0' && *s <= '9') {
                sp->prec = sp->prec * 10 + (*s - '0');
                if (sp->prec > 1 << 20)
                    sp->prec = 1 << 20;
                s++;
            }
        }
    }
    while (*s && strchr("hlLqjzt", *s) && nl + 1 < sizeof sp->length)
        sp->length[nl++] = *s++;
    sp->conv = *s;
    if (*s)
        s++;
    *p = s;
}

/* True for the conversions whose text may be a JSON number. */
static bool
numeric_conv(char conv)
{
    return conv && strchr("diueEfFgG", conv) != NULL;
}

/*
 * Walks fmt, one pair at a time: blanks between pairs, a key up to '=' (or
 * a blank: a key alone), and a value template up to the next blank outside
 * quotes, assembled into v and written by put_pair.
 */
static void
walk(struct out *o, const char *fmt, va_list *ap)
{
    const char *p = fmt;
    struct value v;

    while (*p && !o->cut) {
        const char *key;
        size_t key_len;
        bool in_quote = false;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        key = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        key_len = (size_t)(p - key);
        if (*p != '=') {
            put_pair(o, key, key_len, NULL);
            continue;
        }
        p++;
        v.n = 0;
        v.cut = v.quoted = v.literal = false;
        v.numbers = v.strings = 0;
        while (*p && (in_quote || *p != ' ')) {
            struct spec sp;

            if (*p == '"') {
                in_quote = !in_quote;
                v.quoted = true;
                p++;
                continue;
            }
            if (*p != '%') {
                const char *start = p;

                while (*p && *p != '%' && *p != '"' && (in_quote || *p != ' '))
                    p++;
                value_add(&v, start, (size_t)(p - start));
                v.literal = true;
                continue;
            }
            p++;
            parse_spec(&p, &sp, ap);
            if (sp.conv == '%') {
                value_add(&v, "%", 1);
                v.literal = true;
            } else if (sp.conv == 's') {
                const char *s = va_arg(*ap, const char *);

                if (s == NULL)
                    s = "(null)";
                value_add(&v, s, sp.prec >= 0 ? strnlen(s, (size_t)sp.prec) : strlen(s));
                v.strings++;
            } else if (sp.conv == 'n') {
                (void)va_arg(*ap, int *); /* never written through */
            } else if (sp.conv == '\0') {
                break;
            } else {
                char text[128];
                size_t n = format_number(&sp, ap, text, sizeof text);

                value_add(&v, text, n);
                if (numeric_conv(sp.conv))
                    v.numbers++;
                else
                    v.strings++;
            }
        }
        put_pair(o, key, key_len, &v);
    }
}

/*
 * Ends the line: when cut, closes the open quote and adds the truncated
 * pair (within the kept tail room); a JSON line gets its closing brace.
 */
static void
finish(struct out *o, size_t tail)
{
    o->cap += tail;
    if (o->cut) {
        o->cut = false;
        if (o->in_quote)
            put(o, "\"", 1);
        o->in_quote = false;
        if (o->kind == CONF_LOG_KIND_JSON)
            put(o, o->sep ? ",\"truncated\":true" : "\"truncated\":true", o->sep ? 17 : 16);
        else
            put(o, o->sep ? " truncated=true" : "truncated=true", o->sep ? 15 : 14);
    }
    if (o->kind == CONF_LOG_KIND_JSON)
        put(o, "}", 1);
}

size_t
conf_log_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
    struct out o = {buf, 0, 0, false, false, false, CONF_LOG_KIND_LOGFMT};
    va_list copy;

    if (len == 0)
        return 0;
    buf[0] = '\0';
    if (len <= CUT_TAIL + 1 || fmt == NULL)
        return 0;
    o.cap = len - 1 - CUT_TAIL;
    va_copy(copy, ap);
    walk(&o, fmt, &copy);
    va_end(copy);
    finish(&o, CUT_TAIL);
    return o.used;
}

size_t
conf_log_format(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = conf_log_vformat(buf, len, fmt, ap);
    va_end(ap);
    return n;
}

size_t
conf_log_vrender(char *buf, size_t len, int kind, const char *ts, int level, uint64_t conn,
                 const char *event, const char *fmt, va_list ap)
{
    struct out o = {buf, 0, 0, false, false, false, kind};
    struct value v;
    char head[160];
    int h;
    va_list copy;

    if (len == 0)
        return 0;
    buf[0] = '\0';
    if (len <= CUT_TAIL + 1 + sizeof head)
        return 0;
    if (level < CONF_LOG_ERROR || level > CONF_LOG_DEBUG)
        level = CONF_LOG_ERROR;
    if (kind != CONF_LOG_KIND_JSON)
        o.kind = CONF_LOG_KIND_LOGFMT;
    o.cap = len - 1 - CUT_TAIL;
    /* ts is the writer's own (digits, '-', ':', '.', 'T', 'Z'): no escaping needed. */
    if (o.kind == CONF_LOG_KIND_JSON)
        h = conn ? snprintf(head, sizeof head, "{\"ts\":\"%.40s\",\"level\":\"%s\",\"conn\":%llu",
                            ts, level_names[level], (unsigned long long)conn)
                 : snprintf(head, sizeof head, "{\"ts\":\"%.40s\",\"level\":\"%s\"", ts,
                            level_names[level]);
    else
        h = conn ? snprintf(head, sizeof head, "ts=%.40s level=%s conn=%llu", ts,
                            level_names[level], (unsigned long long)conn)
                 : snprintf(head, sizeof head, "ts=%.40s level=%s", ts, level_names[level]);
    if (h < 0)
        h = 0;
    if ((size_t)h >= sizeof head)
        h = (int)sizeof head - 1;
    put(&o, head, (size_t)h);
    o.sep = true;
    if (!event)
        event = "?";
    v.n = 0;
    v.cut = v.quoted = v.literal = false;
    v.numbers = v.strings = 0;
    value_add(&v, event, strlen(event));
    v.strings = 1;
    put_pair(&o, "event", 5, &v);
    if (fmt && fmt[0]) {
        va_copy(copy, ap);
        walk(&o, fmt, &copy);
        va_end(copy);
    }
    finish(&o, CUT_TAIL);
    return o.used;
}

size_t
conf_log_render(char *buf, size_t len, int kind, const char *ts, int level, uint64_t conn,
                const char *event, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = conf_log_vrender(buf, len, kind, ts, level, conn, event, fmt, ap);
    va_end(ap);
    return n;
}

void
conf_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
{
    char line[CONF_LOG_LINE_MAX + 2];
    char ts[64];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    if (!conf_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    va_start(ap, fmt);
    n = conf_log_vrender(line, CONF_LOG_LINE_MAX + 1, current_kind, ts, level, conn, event, fmt,
                         ap);
    va_end(ap);
    line[n++] = '\n';
    line[n] = '\0';
    fputs(line, stderr);
}
