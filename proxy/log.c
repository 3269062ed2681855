/*
 * proxy/log.c: the log line writer. Owns the current level, the line
 * format (timestamp, level, connection id, event, key=value pairs) and the
 * escaping that keeps every line one line of well-formed pairs whatever
 * the values hold.
 *
 * Escaping is done here, by construction, not at the call sites: proxy_log
 * walks its format itself, writing each string argument through the value
 * escaper (quoted when bare and not plainly safe, escaped inside the
 * format's own quotes) and everything else through the literal writer,
 * which escapes control bytes. So a value that came from a client (an
 * appName, a user name, a namespace, a server's error text) can neither end
 * the line nor close its quotes. Non-string conversions are formatted one
 * at a time by snprintf with a rebuilt one-conversion format.
 *
 * It knows nothing of what is logged: callers redact secrets before
 * passing values. Writes go to stderr in one fputs per line so that lines
 * never interleave.
 */
#include "proxy/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

/* Atomic: libmongoc logs from the advisor's thread too (proxy/main.c). */
static atomic_int current_level = PROXY_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Room kept at the end of a line for closing a quote and " truncated=true". */
#define CUT_TAIL 20

void
proxy_log_set_level(int level)
{
    if (level < PROXY_LOG_ERROR)
        level = PROXY_LOG_ERROR;
    if (level > PROXY_LOG_DEBUG)
        level = PROXY_LOG_DEBUG;
    current_level = level;
}

bool
proxy_log_enabled(int level)
{
    return level <= current_level;
}

/* ---- the output buffer ------------------------------------------------------- */

/*
 * A bounded line being written. Every write is a whole chunk (a value's
 * byte, an escape, a number): a chunk that does not fit sets cut, and
 * nothing is written after it. in_quote says whether a quoted value is open.
 */
struct out {
    char *buf;
    size_t cap; /* bytes usable, the NUL excluded */
    size_t used;
    bool cut;
    bool in_quote;
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

static void
put_hex(struct out *o, unsigned char c)
{
    char esc[5];

    snprintf(esc, sizeof esc, "\\x%02x", c);
    put(o, esc, 4);
}

/* Writes literal text (the format's own, or a formatted number): control bytes escaped. */
static void
put_literal(struct out *o, const char *s, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != 0x7f)
            continue;
        put(o, s + start, i - start);
        put_hex(o, c);
        start = i + 1;
    }
    put(o, s + start, n - start);
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

/* Writes the inside of a quoted value: see proxy_log in log.h. */
static void
put_escaped(struct out *o, const char *value, size_t n)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t i = 0;

    while (i < n && !o->cut) {
        uint32_t cp = 0;
        size_t len = utf8_seq(s + i, n - i, &cp);
        char esc[8];

        if (len == 0) {
            put_hex(o, s[i]);
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
        } else if (cp < 0x20 || cp == 0x7f) {
            put_hex(o, (unsigned char)cp);
        } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            /* C1 controls and the Unicode line and paragraph separators */
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            put(o, esc, 6);
        } else {
            put(o, value + i, len);
        }
        i += len;
    }
}

/* True when a bare value may be written as it is: printable ASCII but '"', '\\', '='. */
static bool
plain(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=')
            return false;
    }
    return true;
}

/* Writes a string argument: escaped inside the format's quotes, else quoted when needed. */
static void
put_value(struct out *o, const char *s, size_t n)
{
    if (o->in_quote) {
        put_escaped(o, s, n);
    } else if (plain(s, n)) {
        put(o, s, n);
    } else {
        put(o, "\"", 1);
        if (o->cut)
            return;
        /* Open until its closing quote is written: finish() closes a cut one. */
        o->in_quote = true;
        put_escaped(o, s, n);
        put(o, "\"", 1);
        if (!o->cut)
            o->in_quote = false;
    }
}

size_t
proxy_log_quote(char *buf, size_t len, const char *value, size_t n)
{
    struct out o = {buf, len > 1 ? len - 2 : 0, 0, false, false};

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
 * the compiler checked against its arguments (proxy_log's format
 * attribute), and each argument is read with the type that conversion
 * names.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
put_number(struct out *o, const struct spec *sp, va_list *ap)
{
    char f[48];
    char text[128];
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
            n = is_signed ? snprintf(text, sizeof text, f, va_arg(*ap, long))
                          : snprintf(text, sizeof text, f, va_arg(*ap, unsigned long));
        else if (strcmp(l, "ll") == 0)
            n = is_signed ? snprintf(text, sizeof text, f, va_arg(*ap, long long))
                          : snprintf(text, sizeof text, f, va_arg(*ap, unsigned long long));
        else if (strcmp(l, "z") == 0)
            n = is_signed ? snprintf(text, sizeof text, f, va_arg(*ap, ssize_t))
                          : snprintf(text, sizeof text, f, va_arg(*ap, size_t));
        else if (strcmp(l, "j") == 0)
            n = is_signed ? snprintf(text, sizeof text, f, va_arg(*ap, intmax_t))
                          : snprintf(text, sizeof text, f, va_arg(*ap, uintmax_t));
        else if (strcmp(l, "t") == 0)
            n = snprintf(text, sizeof text, f, va_arg(*ap, ptrdiff_t));
        else /* none, h, hh: promoted to int */
            n = is_signed ? snprintf(text, sizeof text, f, va_arg(*ap, int))
                          : snprintf(text, sizeof text, f, va_arg(*ap, unsigned));
        break;
    case 'c':
        n = snprintf(text, sizeof text, f, va_arg(*ap, int));
        break;
    case 'p':
        n = snprintf(text, sizeof text, f, va_arg(*ap, void *));
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
            n = snprintf(text, sizeof text, f, va_arg(*ap, long double));
        else
            n = snprintf(text, sizeof text, f, va_arg(*ap, double));
        break;
    default:
        text[0] = '?';
        n = 1;
        break;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof text)
        n = (int)sizeof text - 1;
    put_literal(o, text, (size_t)n);
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

static void
walk(struct out *o, const char *fmt, va_list *ap)
{
    const char *p = fmt;

    while (*p && !o->cut) {
        const char *start = p;
        struct spec sp;

        while (*p && *p != '%' && *p != '"')
            p++;
        put_literal(o, start, (size_t)(p - start));
        if (*p == '"') {
            put(o, "\"", 1);
            if (!o->cut)
                o->in_quote = !o->in_quote;
            p++;
            continue;
        }
        if (*p != '%')
            break;
        p++;
        parse_spec(&p, &sp, ap);
        if (sp.conv == '%') {
            put(o, "%", 1);
        } else if (sp.conv == 's') {
            const char *s = va_arg(*ap, const char *);
            size_t n;

            if (s == NULL)
                s = "(null)";
            n = sp.prec >= 0 ? strnlen(s, (size_t)sp.prec) : strlen(s);
            put_value(o, s, n);
        } else if (sp.conv == 'n') {
            (void)va_arg(*ap, int *); /* never written through */
        } else if (sp.conv == '\0') {
            break;
        } else {
            put_number(o, &sp, ap);
        }
    }
}

/* Closes a cut line: the open quote, then " truncated=true" (within the kept tail room). */
static void
finish(struct out *o, size_t tail)
{
    if (!o->cut)
        return;
    o->cap += tail;
    o->cut = false;
    if (o->in_quote)
        put(o, "\"", 1);
    put(o, " truncated=true", 15);
}

size_t
proxy_log_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
    struct out o = {buf, 0, 0, false, false};
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
proxy_log_format(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = proxy_log_vformat(buf, len, fmt, ap);
    va_end(ap);
    return n;
}

void
proxy_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
{
    char line[PROXY_LOG_LINE_MAX + 2];
    char head[128];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int h;
    va_list ap;

    if (!proxy_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    if (conn)
        h = snprintf(head + n, sizeof head - n, ".%03dZ level=%s conn=%llu event=",
                     (int)(tv.tv_usec / 1000), level_names[level], (unsigned long long)conn);
    else
        h = snprintf(head + n, sizeof head - n, ".%03dZ level=%s event=",
                     (int)(tv.tv_usec / 1000), level_names[level]);
    n += h > 0 ? (size_t)h : 0;
    {
        struct out o = {line, PROXY_LOG_LINE_MAX - CUT_TAIL, 0, false, false};

        line[0] = '\0';
        put(&o, head, n);
        put_value(&o, event ? event : "?", event ? strlen(event) : 1);
        if (fmt && fmt[0]) {
            put(&o, " ", 1);
            va_start(ap, fmt);
            walk(&o, fmt, &ap);
            va_end(ap);
        }
        finish(&o, CUT_TAIL);
        o.buf[o.used++] = '\n';
        o.buf[o.used] = '\0';
    }
    fputs(line, stderr);
}
