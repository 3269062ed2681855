/*
 * tests/unit/test_conf_log.c: the log line writer cannot be made to write
 * a second line or a forged pair, in either format. Table-driven: the
 * value escaper (quotes, backslashes, control characters, bytes that are
 * not UTF-8, C1 controls and Unicode line separators), the format walker
 * (string arguments inside the format's quotes and bare, precision,
 * numbers, control bytes in the format itself), cutting long lines; then
 * random values, which must come back when unescaped (byte for byte, but
 * for bytes that are not UTF-8, each U+FFFD) and never hold a raw control
 * byte; then whole lines in both formats over hostile values: every JSON
 * line parsed by libbson's JSON reader, every logfmt line by a strict
 * parser written here (go-logfmt's rules), the same keys and values from
 * both; then conf_log itself writing to stderr, and switching format.
 */
#include "config.h"

#include "conf/log.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORGED "x\n2026-01-01T00:00:00.000Z level=error event=forged"

/* True when s (n bytes) holds no byte below 0x20 and no DEL. */
static bool
no_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Length of the UTF-8 sequence at s (n bytes left) when it is one valid
 * scalar value (RFC 3629 table 3-7), else 0: this test's own reading,
 * written apart from the writer's.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4;
    else
        return 0;
    cp = s[0] & (0x7fu >> len);
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* value (n bytes) with each byte that is not part of valid UTF-8 replaced by U+FFFD. */
static void
sanitize(const char *value, size_t n, char *out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(s + i, n - i);

        if (len == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, value + i, len);
            o += len;
            i += len;
        }
    }
    *out_len = o;
}

/*
 * Undoes conf_log_quote: q (a quoted value) back into out (*out_len
 * bytes). Returns false when q is not a well-formed quoted value.
 */
static bool
unquote(const char *q, size_t qn, char *out, size_t *out_len)
{
    size_t o = 0;

    if (qn < 2 || q[0] != '"' || q[qn - 1] != '"')
        return false;
    for (size_t i = 1; i + 1 < qn; i++) {
        if (q[i] == '"')
            return false; /* an unescaped quote inside */
        if (q[i] != '\\') {
            out[o++] = q[i];
            continue;
        }
        if (++i + 1 >= qn)
            return false;
        switch (q[i]) {
        case '"':
        case '\\':
            out[o++] = q[i];
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'x': {
            int hi = i + 2 < qn ? hexval(q[i + 1]) : -1;
            int lo = i + 2 < qn ? hexval(q[i + 2]) : -1;

            if (hi < 0 || lo < 0)
                return false;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
            break;
        }
        case 'u': {
            unsigned cp = 0;

            for (int k = 1; k <= 4; k++) {
                int v = i + (size_t)k < qn ? hexval(q[i + (size_t)k]) : -1;

                if (v < 0)
                    return false;
                cp = cp * 16 + (unsigned)v;
            }
            i += 4;
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xc0 | (cp >> 6));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[o++] = (char)(0xe0 | (cp >> 12));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return false;
        }
    }
    *out_len = o;
    return true;
}

/* ---- the value escaper -------------------------------------------------------- */

static const struct {
    const char *name;
    const char *value;
    size_t len; /* 0: strlen */
    const char *want;
} quote_cases[] = {
    {"plain text", "plain", 0, "\"plain\""},
    {"empty", "", 0, "\"\""},
    {"a quote", "a\"b", 0, "\"a\\\"b\""},
    {"a backslash", "a\\b", 0, "\"a\\\\b\""},
    {"a backslash before a quote", "\\\"", 0, "\"\\\\\\\"\""},
    {"a forged line", FORGED, 0,
     "\"x\\n2026-01-01T00:00:00.000Z level=error event=forged\""},
    {"CR and tab", "\r\t", 0, "\"\\r\\t\""},
    {"other control bytes", "\x01\x1b[31m\x1f\x7f", 0, "\"\\u0001\\u001b[31m\\u001f\\u007f\""},
    {"a NUL byte inside", "a\0b", 3, "\"a\\u0000b\""},
    {"UTF-8 kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    {"a lone lead byte", "a\xc3", 0, "\"a\\ufffd\""},
    {"a lone continuation byte", "\x80x", 0, "\"\\ufffdx\""},
    {"an overlong '/'", "\xc0\xaf", 0, "\"\\ufffd\\ufffd\""},
    {"an overlong 3-byte form", "\xe0\x80\xaf", 0, "\"\\ufffd\\ufffd\\ufffd\""},
    {"a UTF-16 surrogate", "\xed\xa0\x80", 0, "\"\\ufffd\\ufffd\\ufffd\""},
    {"above U+10FFFF", "\xf4\x90\x80\x80", 0, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"a truncated sequence", "\xe2\x82", 0, "\"\\ufffd\\ufffd\""},
    {"0xff", "\xff", 0, "\"\\ufffd\""},
    {"C1 control NEL", "a\xc2\x85z", 0, "\"a\\u0085z\""},
    {"LINE SEPARATOR", "\xe2\x80\xa8", 0, "\"\\u2028\""},
    {"PARAGRAPH SEPARATOR", "\xe2\x80\xa9", 0, "\"\\u2029\""},
};

static void
test_quote(void)
{
    char buf[256];

    for (size_t i = 0; i < sizeof quote_cases / sizeof quote_cases[0]; i++) {
        size_t len = quote_cases[i].len ? quote_cases[i].len : strlen(quote_cases[i].value);
        size_t n = conf_log_quote(buf, sizeof buf, quote_cases[i].value, len);

        is_str(buf, quote_cases[i].want, "quote: %s", quote_cases[i].name);
        is_int((long long)n, (long long)strlen(quote_cases[i].want), "quote: %s: length",
               quote_cases[i].name);
    }
    /* Too small a buffer: cut between escapes, still closed. */
    {
        size_t n = conf_log_quote(buf, 8, "ab\ncd", 5);

        is_str(buf, "\"ab\\nc\"", "quote: cut short, still closed");
        ok(n == 7 && buf[n] == '\0', "quote: cut: length and NUL");
        n = conf_log_quote(buf, 7, "ab\ncd", 5);
        is_str(buf, "\"ab\\n\"", "quote: never half an escape");
        n = conf_log_quote(buf, 6, "ab\ncd", 5);
        is_str(buf, "\"ab\"", "quote: an escape that does not fit is left out whole");
        n = conf_log_quote(buf, 3, "abc", 3);
        is_str(buf, "\"\"", "quote: the smallest buffer holds the quotes");
    }
}

/* ---- the format walker ------------------------------------------------------- */

static void
test_format(void)
{
    char buf[512];
    static const char big[] = "0123456789";
    const char *volatile nothing = NULL; /* volatile: the compiler would refuse a literal NULL */

    conf_log_format(buf, sizeof buf, "app=\"%s\"", "x\"y");
    is_str(buf, "app=\"x\\\"y\"", "format: a quote inside the format's quotes is escaped");
    conf_log_format(buf, sizeof buf, "driver=\"%.64s\" app=\"%.64s\"", "d\\", FORGED);
    is_str(buf,
           "driver=\"d\\\\\" app=\"x\\n2026-01-01T00:00:00.000Z level=error event=forged\"",
           "format: the forged appName stays one value on one line");
    conf_log_format(buf, sizeof buf, "peer=%s", "127.0.0.1:5");
    is_str(buf, "peer=127.0.0.1:5", "format: a plain bare value is written as is");
    conf_log_format(buf, sizeof buf, "principal=%s state=%s", "bob level=error", "ok");
    is_str(buf, "principal=\"bob level=error\" state=ok",
           "format: a bare value with a blank is quoted (no forged pair)");
    conf_log_format(buf, sizeof buf, "ns=%s", "d.c=1");
    is_str(buf, "ns=\"d.c=1\"", "format: a bare value with '=' is quoted");
    conf_log_format(buf, sizeof buf, "ns=%s x=1", "a\"b");
    is_str(buf, "ns=\"a\\\"b\" x=1", "format: a bare value with a quote is quoted and escaped");
    conf_log_format(buf, sizeof buf, "ns=%s", "");
    is_str(buf, "ns=\"\"", "format: an empty bare value is \"\"");
    conf_log_format(buf, sizeof buf, "ns=%s", "caf\xc3\xa9");
    is_str(buf, "ns=\"caf\xc3\xa9\"", "format: non-ASCII bare values are quoted");
    conf_log_format(buf, sizeof buf, "ns=%s", nothing);
    is_str(buf, "ns=(null)", "format: NULL");
    conf_log_format(buf, sizeof buf, "cmd=%.3s db=%.*s", "abcdef", 2, "xyz");
    is_str(buf, "cmd=abc db=xy", "format: precision and .* cut the value before escaping");
    conf_log_format(buf, sizeof buf, "cmd=%.3s", "a\nbcd");
    is_str(buf, "cmd=\"a\\nb\"", "format: ... and the cut value is still escaped");
    conf_log_format(buf, sizeof buf, "a=%d b=%u c=%lld d=%llu e=%zu f=%x g=%" PRIu64 " h=%" PRId64,
                    -5, 7u, -9000000000LL, 18446744073709551615ULL, (size_t)42, 255u,
                    UINT64_C(12345678901234), INT64_C(-3));
    is_str(buf,
           "a=-5 b=7 c=-9000000000 d=18446744073709551615 e=42 f=ff g=12345678901234 h=-3",
           "format: integer conversions");
    conf_log_format(buf, sizeof buf, "w=%5d p=%05.1f pct=100%% c=%c", 42, 2.25, 'z');
    is_str(buf, "w=\"   42\" p=002.2 pct=100% c=z", "%s",
           "format: width (a padded value is quoted), float, %%, %c");
    conf_log_format(buf, sizeof buf, "c=%c next", '\n');
    is_str(buf, "c=\"\\n\" next", "%s", "format: a control byte from %c is escaped; a key alone");
    conf_log_format(buf, sizeof buf, "literal=a\nb\x1b");
    is_str(buf, "literal=\"a\\nb\\u001b\"",
           "format: control bytes in the format itself are escaped");
    conf_log_format(buf, sizeof buf, "namespace=%s.%s index=%s", "d b", "c", "i");
    is_str(buf, "namespace=\"d b.c\" index=i", "format: a value of several parts is quoted whole");
    conf_log_format(buf, sizeof buf, "v=%s", "null");
    is_str(buf, "v=\"null\"", "format: the word null is quoted");
    conf_log_format(buf, sizeof buf, "n=%s s=%s m=%d", "a b", "c\td", 3);
    is_str(buf, "n=\"a b\" s=\"c\\td\" m=3", "format: arguments after quoted ones stay in step");

    /* A line too long is cut and says so, quotes closed. */
    {
        char small[48];
        size_t n = conf_log_format(small, sizeof small, "v=\"%s%s%s\" after=1", big, big, big);

        ok(n < sizeof small && small[n] == '\0', "format: a long line fits its buffer (%zu)", n);
        ok(strstr(small, "\" truncated=true") != NULL && strstr(small, "after=1") == NULL,
           "format: cut inside the format's quotes: quote closed, truncated=true: %s", small);
        n = conf_log_format(small, sizeof small, "k=%s", "a b c d e f g h i j k l m n o p");
        ok(strstr(small, "\" truncated=true") != NULL && n < sizeof small,
           "format: cut inside an auto-quoted value: quote closed: %s", small);
        n = conf_log_format(small, sizeof small, "k=%s", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
        ok(no_control(small, n) && strstr(small, "truncated=true") != NULL,
           "format: cut between escapes: %s", small);
    }
}

/* ---- random values ------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void
test_random(void)
{
    static const char pool[] = "\"\\\n\r\t\x01\x7f=  ab\xc3\xa9\xc2\x85\xe2\x80\xa8\xff\xc0";
    int lossless = 0, clean = 0, one_value = 0;
    const int rounds = 20000;

    for (int r = 0; r < rounds; r++) {
        char value[64];
        size_t n = next_random() % sizeof value;
        char quoted[64 * 6 + 3];
        char back[sizeof quoted];
        size_t back_len = 0;
        char want[64 * 3];
        size_t want_len = 0;
        size_t qn;
        char line[sizeof quoted + 16];
        size_t ln;

        for (size_t i = 0; i < n; i++)
            value[i] = next_random() % 4 == 0 ? (char)(next_random() & 0xff)
                                              : pool[next_random() % (sizeof pool - 1)];
        qn = conf_log_quote(quoted, sizeof quoted, value, n);
        sanitize(value, n, want, &want_len);
        if (unquote(quoted, qn, back, &back_len) && back_len == want_len &&
            memcmp(back, want, want_len) == 0)
            lossless++;
        else if (lossless == r)
            diag("not lossless: %s", quoted);
        clean += no_control(quoted, qn);
        /* As a bare value: either plain or exactly the quoted form. */
        value[n] = '\0';
        if (memchr(value, '\0', n) == NULL) {
            ln = conf_log_format(line, sizeof line, "k=%s", value);
            one_value += ln >= 2 && strncmp(line, "k=", 2) == 0 &&
                         (strcmp(line + 2, quoted) == 0 ||
                          (strchr(line + 2, '"') == NULL && strchr(line + 2, ' ') == NULL &&
                           strchr(line + 2, '=') == NULL && no_control(line, ln)));
        } else {
            one_value++;
        }
    }
    is_int(lossless, rounds,
           "random values: unescaping gives back every byte (U+FFFD for each not UTF-8)");
    is_int(clean, rounds, "random values: never a raw control byte");
    is_int(one_value, rounds, "random values: a bare value is one plain word or quoted");
}

/* ---- conf_log ---------------------------------------------------------------------- */

/*
 * Runs conf_log(INFO, conn 7, "client_hello", driver/app) with stderr
 * captured; cut: app at most 64 bytes, as proxy/handshake.c logs it.
 */
static size_t
capture_hello(const char *driver, const char *app, bool cut, char *out, size_t len)
{
    char path[] = "/tmp/test_conf_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    ssize_t got;

    fflush(stderr);
    dup2(fd, 2);
    if (cut)
        conf_log(CONF_LOG_INFO, 7, "client_hello", "driver=\"%.64s\" app=\"%.64s\"", driver,
                 app);
    else
        conf_log(CONF_LOG_INFO, 7, "client_hello", "driver=\"%s\" app=\"%s\"", driver, app);
    conf_log(CONF_LOG_DEBUG, 7, "request", "hidden=1");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    got = pread(fd, out, len - 1, 0);
    close(fd);
    unlink(path);
    out[got > 0 ? got : 0] = '\0';
    return got > 0 ? (size_t)got : 0;
}

static void
test_conf_log(void)
{
    char out[4096];
    size_t n;
    int newlines = 0;
    char *long_value = malloc(10000);

    conf_log_set_level(CONF_LOG_INFO);
    n = capture_hello("drv\"q\\", FORGED, true, out, sizeof out);
    for (size_t i = 0; i < n; i++)
        newlines += out[i] == '\n';
    ok(newlines == 1 && n > 0 && out[n - 1] == '\n', "conf_log: one line for the forged appName");
    ok(strstr(out, "level=info conn=7 event=client_hello driver=\"drv\\\"q\\\\\" app=\"x\\n2026-"
                   "01-01T00:00:00.000Z level=error event=forged\"\n") != NULL,
       "conf_log: the values are escaped: %s", out);
    ok(strstr(out, "event=request") == NULL, "conf_log: debug lines are not written at info");
    ok(n > 27 && strncmp(out, "ts=", 3) == 0 && out[7] == '-' && out[13] == 'T' && out[26] == 'Z',
       "conf_log: timestamp first, as ts=");

    memset(long_value, 'a', 9999);
    long_value[9999] = '\0';
    n = capture_hello("d", long_value, false, out, sizeof out);
    ok(n > 0 && n <= CONF_LOG_LINE_MAX + 1 && out[n - 1] == '\n' &&
           strstr(out, "\" truncated=true\n") != NULL,
       "conf_log: a long line is cut to CONF_LOG_LINE_MAX and says so (%zu bytes)", n);
    free(long_value);
}

/* ---- both formats, whole lines, hostile values --------------------------------- */

/* One pair of a parsed logfmt line. */
struct lf_pair {
    char key[64];
    char val[CONF_LOG_LINE_MAX * 3];
    size_t len;
    bool has_val; /* false: a key alone */
};

#define LF_MAX 16

/* Appends code point cp to out as UTF-8. */
static size_t
put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

/*
 * A strict logfmt reader (go-logfmt's rules): pairs separated by blanks; a
 * key is bytes above ' ' but '=' and '"'; key alone, key=bare (bytes above
 * ' ' but '=' and '"') or key="quoted" with the escapes \" \\ \/ \b \f \n
 * \r \t \uXXXX and no raw control byte. False when line is not that.
 */
static bool
logfmt_parse(const char *line, struct lf_pair *pairs, int *n_pairs)
{
    const unsigned char *p = (const unsigned char *)line;
    int n = 0;

    for (;;) {
        struct lf_pair *pr;
        size_t k = 0;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (n == LF_MAX)
            return false;
        pr = &pairs[n++];
        pr->len = 0;
        pr->has_val = false;
        while (*p > ' ' && *p != '=' && *p != '"') {
            if (k + 1 >= sizeof pr->key)
                return false;
            pr->key[k++] = (char)*p++;
        }
        pr->key[k] = '\0';
        if (k == 0)
            return false;
        if (*p == ' ' || !*p)
            continue;
        if (*p != '=')
            return false;
        p++;
        pr->has_val = true;
        if (*p != '"') {
            while (*p > ' ') {
                if (*p == '=' || *p == '"' || *p == 0x7f)
                    return false;
                pr->val[pr->len++] = (char)*p++;
            }
            if (*p && *p != ' ')
                return false;
            continue;
        }
        p++;
        while (*p != '"') {
            if (*p < 0x20)
                return false; /* a raw control byte, or the line ended inside the quotes */
            if (*p != '\\') {
                pr->val[pr->len++] = (char)*p++;
                continue;
            }
            p++;
            switch (*p) {
            case '"':
            case '\\':
            case '/':
                pr->val[pr->len++] = (char)*p;
                break;
            case 'b':
                pr->val[pr->len++] = '\b';
                break;
            case 'f':
                pr->val[pr->len++] = '\f';
                break;
            case 'n':
                pr->val[pr->len++] = '\n';
                break;
            case 'r':
                pr->val[pr->len++] = '\r';
                break;
            case 't':
                pr->val[pr->len++] = '\t';
                break;
            case 'u': {
                uint32_t cp = 0;

                for (int i = 1; i <= 4; i++) {
                    int v = hexval((char)p[i]);

                    if (v < 0)
                        return false;
                    cp = cp * 16 + (uint32_t)v;
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    return false; /* never written */
                pr->len += put_utf8(pr->val + pr->len, cp);
                p += 4;
                break;
            }
            default:
                return false;
            }
            p++;
        }
        p++;
        if (*p && *p != ' ')
            return false;
    }
    *n_pairs = n;
    return true;
}

/*
 * Compares the JSON line with the logfmt line's pairs: the same keys in the
 * same order, strings equal byte for byte, numbers equal to the logfmt
 * text, true for a key alone. In a truncated line the value cut short (the
 * one before truncated) may be cut at another length in each format: one
 * must then begin the other. why receives the first difference.
 */
static bool
same_pairs(const char *json_line, const struct lf_pair *pairs, int n, char *why, size_t why_len)
{
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)json_line, -1, &error);
    bson_iter_t it;
    int i = 0;
    bool same = true;

    if (!doc) {
        snprintf(why, why_len, "JSON not parsed: %.100s", error.message);
        return false;
    }
    if (!bson_iter_init(&it, doc)) {
        bson_destroy(doc);
        return false;
    }
    while (same && bson_iter_next(&it)) {
        const struct lf_pair *pr = &pairs[i];
        char num[64];

        if (i >= n || strcmp(bson_iter_key(&it), pr->key) != 0) {
            snprintf(why, why_len, "key %d: %s in JSON, %s in logfmt", i, bson_iter_key(&it),
                     i < n ? pr->key : "(none)");
            same = false;
            break;
        }
        switch (bson_iter_type(&it)) {
        case BSON_TYPE_UTF8: {
            uint32_t len;
            const char *s = bson_iter_utf8(&it, &len);

            if (n >= 2 && i == n - 2 && strcmp(pairs[n - 1].key, "truncated") == 0)
                same = pr->has_val && memcmp(s, pr->val, len < pr->len ? len : pr->len) == 0;
            else
                same = pr->has_val && len == pr->len && memcmp(s, pr->val, len) == 0;
            break;
        }
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64:
            snprintf(num, sizeof num, "%lld", (long long)bson_iter_as_int64(&it));
            same = pr->has_val && strlen(num) == pr->len && memcmp(num, pr->val, pr->len) == 0;
            break;
        case BSON_TYPE_DOUBLE:
            snprintf(num, sizeof num, "%.*s", (int)pr->len, pr->val);
            same = pr->has_val && strtod(num, NULL) == bson_iter_double(&it);
            break;
        case BSON_TYPE_BOOL:
            /* a key alone, or the writer's own truncated=true */
            same = bson_iter_bool(&it) &&
                   (!pr->has_val || (pr->len == 4 && memcmp(pr->val, "true", 4) == 0));
            break;
        default:
            same = false;
            break;
        }
        if (!same)
            snprintf(why, why_len, "value of %s differs", pr->key);
        i++;
    }
    if (same && i != n) {
        snprintf(why, why_len, "%d keys in JSON, %d in logfmt", i, n);
        same = false;
    }
    bson_destroy(doc);
    return same;
}

/* Renders one of the templates below with value v in kind into buf. */
static size_t
render(int which, int kind, const char *v, char *buf, size_t len)
{
    const char *ts = "2026-12-06T22:00:00.000Z";

    switch (which) {
    case 0:
        return conf_log_render(buf, len, kind, ts, CONF_LOG_INFO, 7, "client_hello",
                               "driver=\"%.64s\" v=\"%s\" n=%d", v, v, -5);
    case 1:
        return conf_log_render(buf, len, kind, ts, CONF_LOG_WARN, 0, "auth_failure",
                               "v=%s state=%s queued=%zu", v, "failed", (size_t)42);
    case 2:
        return conf_log_render(buf, len, kind, ts, CONF_LOG_INFO, 9, "slow_request",
                               "duration_ms=%.1f ns=%s.%s v=%s shape=%s flag request_id=%d",
                               412.25, v, "c", v, "find d.c {a: ?}", 3);
    default:
        return conf_log_render(buf, len, kind, ts, CONF_LOG_ERROR, 0, "upstream_lost",
                               "upstream=%s v=\"%s\" msg=\"closing; the driver reconnects\" "
                               "pct=100%% hex=%x",
                               "127.0.0.1:1", v, 255u);
    }
}

static void
test_kinds(void)
{
    static const char *const hostile[] = {
        "plain",
        "",
        "null",
        "a b",
        "k=v",
        "\"}, {\\\"level\\\": \\\"error\\\"",
        "back\\slash\\",
        FORGED,
        "\r\t\x01\x1b[31m\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "bad \xc3 \x80 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xff",
        "a\xc2\x85z \xe2\x80\xa8 \xe2\x80\xa9",
        "\" level=error event=forged x=\"",
        "{\"ts\":\"x\",\"level\":\"error\"}",
        NULL, /* a long value, built below */
    };
    char *long_value = malloc(6001);
    int parsed_json = 0, parsed_logfmt = 0, same = 0, clean = 0, back = 0, truncated = 0;
    int total = 0;

    for (int i = 0; i < 6000; i++)
        long_value[i] = "ab\"\\\n\xff\xc3\xa9 ="[i % 10];
    long_value[6000] = '\0';
    for (size_t h = 0; h < sizeof hostile / sizeof hostile[0]; h++) {
        const char *v = hostile[h] ? hostile[h] : long_value;
        char want[6000 * 3];
        size_t want_len;

        sanitize(v, strlen(v), want, &want_len);
        for (int t = 0; t < 4; t++) {
            static char lf[CONF_LOG_LINE_MAX + 1], js[CONF_LOG_LINE_MAX + 1];
            static struct lf_pair pairs[LF_MAX];
            size_t lf_len = render(t, CONF_LOG_KIND_LOGFMT, v, lf, sizeof lf);
            size_t js_len = render(t, CONF_LOG_KIND_JSON, v, js, sizeof js);
            char why[300] = "";
            int n = 0;
            bson_error_t error;
            bson_t *doc;

            total++;
            clean += no_control(lf, lf_len) && no_control(js, js_len) &&
                     bson_utf8_validate(js, js_len, false) && js[0] == '{' && js[js_len - 1] == '}';
            doc = bson_new_from_json((const uint8_t *)js, (ssize_t)js_len, &error);
            if (doc)
                parsed_json++;
            else
                diag("JSON line not parsed (%s): %s", error.message, js);
            bson_destroy(doc);
            if (!logfmt_parse(lf, pairs, &n)) {
                diag("logfmt line not parsed: %s", lf);
                continue;
            }
            parsed_logfmt++;
            if (same_pairs(js, pairs, n, why, sizeof why))
                same++;
            else
                diag("template %d, value %zu: %s\n#   %s\n#   %s", t, h, why, lf, js);
            if (hostile[h]) {
                for (int k = 0; k < n; k++)
                    if (strcmp(pairs[k].key, "v") == 0 && pairs[k].len == want_len &&
                        memcmp(pairs[k].val, want, want_len) == 0)
                        back++;
            } else {
                truncated += n > 0 && strcmp(pairs[n - 1].key, "truncated") == 0 &&
                             lf_len <= CONF_LOG_LINE_MAX && js_len <= CONF_LOG_LINE_MAX;
            }
        }
    }
    is_int(clean, total, "both formats: no raw control byte, JSON valid UTF-8 and one object");
    is_int(parsed_json, total, "both formats: every JSON line parses (libbson's JSON reader)");
    is_int(parsed_logfmt, total, "both formats: every logfmt line parses (strict logfmt)");
    is_int(same, total, "both formats: the same keys, in order, with the same values");
    is_int(back, total - 4, "both formats: each hostile value reads back (U+FFFD for non-UTF-8)");
    is_int(truncated, 4, "both formats: a long value is cut, the line says truncated, last");
    free(long_value);

    /* Numbers are JSON numbers where they are numbers, strings otherwise. */
    {
        char js[512];

        conf_log_render(js, sizeof js, CONF_LOG_KIND_JSON, "T", CONF_LOG_INFO, 7, "e",
                        "a=%d b=%.1f c=%5d d=%x e=%llu f=\"%d\" g=%d.%d h=%f", -5, 2.25, 42,
                        255u, 18446744073709551615ULL, 1, 1, 2, (double)INFINITY);
        is_str(js,
               "{\"ts\":\"T\",\"level\":\"info\",\"conn\":7,\"event\":\"e\",\"a\":-5,\"b\":2.2,"
               "\"c\":\"   42\",\"d\":\"ff\",\"e\":18446744073709551615,\"f\":\"1\","
               "\"g\":\"1.2\",\"h\":\"inf\"}",
               "json: numbers, and what is not a JSON number as a string");
        conf_log_render(js, sizeof js, CONF_LOG_KIND_LOGFMT, "T", CONF_LOG_INFO, 0, "e",
                        "a=%d", 1);
        is_str(js, "ts=T level=info event=e a=1", "logfmt: no conn without a connection");
    }
}

/* conf_log after conf_log_set_kind(JSON): one JSON object per line on stderr; and back. */
static void
test_switch(void)
{
    char out[4096];
    char *nl;
    size_t n;
    bson_error_t error;
    bson_t *doc;
    int kind = -1;

    ok(conf_log_kind_parse("json", &kind) && kind == CONF_LOG_KIND_JSON &&
           conf_log_kind_parse("logfmt", &kind) && kind == CONF_LOG_KIND_LOGFMT &&
           !conf_log_kind_parse("JSON", &kind) && !conf_log_kind_parse("text", &kind),
       "kind names: logfmt and json only");
    conf_log_set_kind(CONF_LOG_KIND_JSON);
    n = capture_hello("drv", FORGED, true, out, sizeof out);
    conf_log_set_kind(CONF_LOG_KIND_LOGFMT);
    nl = strchr(out, '\n');
    ok(n > 0 && nl == out + n - 1, "switch: one JSON line for the forged appName");
    if (nl)
        *nl = '\0';
    doc = bson_new_from_json((const uint8_t *)out, -1, &error);
    ok(doc != NULL && strncmp(out, "{\"ts\":\"", 7) == 0 &&
           strstr(out, "\"app\":\"x\\n2026-01-01T00:00:00.000Z level=error event=forged\"}"),
       "switch: conf_log writes JSON after conf_log_set_kind: %s", out);
    bson_destroy(doc);
    n = capture_hello("drv", "a", true, out, sizeof out);
    ok(n > 3 && strncmp(out, "ts=", 3) == 0, "switch: and logfmt again after switching back");
}

int
main(void)
{
    test_quote();
    test_format();
    test_random();
    test_conf_log();
    test_kinds();
    test_switch();
    return done_testing();
}
