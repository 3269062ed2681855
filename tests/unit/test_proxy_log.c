/*
 * tests/unit/test_proxy_log.c: the log line writer cannot be made to write
 * a second line or a forged pair. Table-driven: the value escaper
 * (quotes, backslashes, control characters, bytes that are not UTF-8,
 * C1 controls and Unicode line separators), the format walker (string
 * arguments inside the format's quotes and bare, precision, numbers,
 * control bytes in the format itself), cutting long lines; then random
 * values, which must come back byte for byte when unescaped and never
 * hold a raw control byte; then proxy_log itself writing to stderr.
 */
#include "config.h"

#include "proxy/log.h"
#include "tests/unit/tap.h"

#include <fcntl.h>
#include <inttypes.h>
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
 * Undoes proxy_log_quote: q (a quoted value) back into out (*out_len
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
            if (cp < 0x800) {
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
    {"other control bytes", "\x01\x1b[31m\x1f\x7f", 0, "\"\\x01\\x1b[31m\\x1f\\x7f\""},
    {"a NUL byte inside", "a\0b", 3, "\"a\\x00b\""},
    {"UTF-8 kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    {"a lone lead byte", "a\xc3", 0, "\"a\\xc3\""},
    {"a lone continuation byte", "\x80x", 0, "\"\\x80x\""},
    {"an overlong '/'", "\xc0\xaf", 0, "\"\\xc0\\xaf\""},
    {"an overlong 3-byte form", "\xe0\x80\xaf", 0, "\"\\xe0\\x80\\xaf\""},
    {"a UTF-16 surrogate", "\xed\xa0\x80", 0, "\"\\xed\\xa0\\x80\""},
    {"above U+10FFFF", "\xf4\x90\x80\x80", 0, "\"\\xf4\\x90\\x80\\x80\""},
    {"a truncated sequence", "\xe2\x82", 0, "\"\\xe2\\x82\""},
    {"0xff", "\xff", 0, "\"\\xff\""},
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
        size_t n = proxy_log_quote(buf, sizeof buf, quote_cases[i].value, len);

        is_str(buf, quote_cases[i].want, "quote: %s", quote_cases[i].name);
        is_int((long long)n, (long long)strlen(quote_cases[i].want), "quote: %s: length",
               quote_cases[i].name);
    }
    /* Too small a buffer: cut between escapes, still closed. */
    {
        size_t n = proxy_log_quote(buf, 8, "ab\ncd", 5);

        is_str(buf, "\"ab\\nc\"", "quote: cut short, still closed");
        ok(n == 7 && buf[n] == '\0', "quote: cut: length and NUL");
        n = proxy_log_quote(buf, 7, "ab\ncd", 5);
        is_str(buf, "\"ab\\n\"", "quote: never half an escape");
        n = proxy_log_quote(buf, 6, "ab\ncd", 5);
        is_str(buf, "\"ab\"", "quote: an escape that does not fit is left out whole");
        n = proxy_log_quote(buf, 3, "abc", 3);
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

    proxy_log_format(buf, sizeof buf, "app=\"%s\"", "x\"y");
    is_str(buf, "app=\"x\\\"y\"", "format: a quote inside the format's quotes is escaped");
    proxy_log_format(buf, sizeof buf, "driver=\"%.64s\" app=\"%.64s\"", "d\\", FORGED);
    is_str(buf,
           "driver=\"d\\\\\" app=\"x\\n2026-01-01T00:00:00.000Z level=error event=forged\"",
           "format: the forged appName stays one value on one line");
    proxy_log_format(buf, sizeof buf, "peer=%s", "127.0.0.1:5");
    is_str(buf, "peer=127.0.0.1:5", "format: a plain bare value is written as is");
    proxy_log_format(buf, sizeof buf, "principal=%s state=%s", "bob level=error", "ok");
    is_str(buf, "principal=\"bob level=error\" state=ok",
           "format: a bare value with a blank is quoted (no forged pair)");
    proxy_log_format(buf, sizeof buf, "ns=%s", "d.c=1");
    is_str(buf, "ns=\"d.c=1\"", "format: a bare value with '=' is quoted");
    proxy_log_format(buf, sizeof buf, "ns=%s x=1", "a\"b");
    is_str(buf, "ns=\"a\\\"b\" x=1", "format: a bare value with a quote is quoted and escaped");
    proxy_log_format(buf, sizeof buf, "ns=%s", "");
    is_str(buf, "ns=\"\"", "format: an empty bare value is \"\"");
    proxy_log_format(buf, sizeof buf, "ns=%s", "caf\xc3\xa9");
    is_str(buf, "ns=\"caf\xc3\xa9\"", "format: non-ASCII bare values are quoted");
    proxy_log_format(buf, sizeof buf, "ns=%s", nothing);
    is_str(buf, "ns=(null)", "format: NULL");
    proxy_log_format(buf, sizeof buf, "cmd=%.3s db=%.*s", "abcdef", 2, "xyz");
    is_str(buf, "cmd=abc db=xy", "format: precision and .* cut the value before escaping");
    proxy_log_format(buf, sizeof buf, "cmd=%.3s", "a\nbcd");
    is_str(buf, "cmd=\"a\\nb\"", "format: ... and the cut value is still escaped");
    proxy_log_format(buf, sizeof buf, "a=%d b=%u c=%lld d=%llu e=%zu f=%x g=%" PRIu64 " h=%" PRId64,
                     -5, 7u, -9000000000LL, 18446744073709551615ULL, (size_t)42, 255u,
                     UINT64_C(12345678901234), INT64_C(-3));
    is_str(buf,
           "a=-5 b=7 c=-9000000000 d=18446744073709551615 e=42 f=ff g=12345678901234 h=-3",
           "format: integer conversions");
    proxy_log_format(buf, sizeof buf, "w=%5d p=%05.1f pct=100%% c=%c", 42, 2.25, 'z');
    is_str(buf, "w=   42 p=002.2 pct=100% c=z", "%s", "format: width, float, %%, %c");
    proxy_log_format(buf, sizeof buf, "c=%c next", '\n');
    is_str(buf, "c=\\x0a next", "%s", "format: a control byte from %c is escaped");
    proxy_log_format(buf, sizeof buf, "literal=a\nb\x1b");
    is_str(buf, "literal=a\\x0ab\\x1b", "format: control bytes in the format itself are escaped");
    proxy_log_format(buf, sizeof buf, "n=%s s=%s m=%d", "a b", "c\td", 3);
    is_str(buf, "n=\"a b\" s=\"c\\td\" m=3", "format: arguments after quoted ones stay in step");

    /* A line too long is cut and says so, quotes closed. */
    {
        char small[48];
        size_t n = proxy_log_format(small, sizeof small, "v=\"%s%s%s\" after=1", big, big, big);

        ok(n < sizeof small && small[n] == '\0', "format: a long line fits its buffer (%zu)", n);
        ok(strstr(small, "\" truncated=true") != NULL && strstr(small, "after=1") == NULL,
           "format: cut inside the format's quotes: quote closed, truncated=true: %s", small);
        n = proxy_log_format(small, sizeof small, "k=%s", "a b c d e f g h i j k l m n o p");
        ok(strstr(small, "\" truncated=true") != NULL && n < sizeof small,
           "format: cut inside an auto-quoted value: quote closed: %s", small);
        n = proxy_log_format(small, sizeof small, "k=%s", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
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
        size_t qn;
        char line[sizeof quoted + 16];
        size_t ln;

        for (size_t i = 0; i < n; i++)
            value[i] = next_random() % 4 == 0 ? (char)(next_random() & 0xff)
                                              : pool[next_random() % (sizeof pool - 1)];
        qn = proxy_log_quote(quoted, sizeof quoted, value, n);
        if (unquote(quoted, qn, back, &back_len) && back_len == n && memcmp(back, value, n) == 0)
            lossless++;
        else if (lossless == r)
            diag("not lossless: %s", quoted);
        clean += no_control(quoted, qn);
        /* As a bare value: either plain or exactly the quoted form. */
        value[n] = '\0';
        if (memchr(value, '\0', n) == NULL) {
            ln = proxy_log_format(line, sizeof line, "k=%s", value);
            one_value += ln >= 2 && strncmp(line, "k=", 2) == 0 &&
                         (strcmp(line + 2, quoted) == 0 ||
                          (strchr(line + 2, '"') == NULL && strchr(line + 2, ' ') == NULL &&
                           strchr(line + 2, '=') == NULL && no_control(line, ln)));
        } else {
            one_value++;
        }
    }
    is_int(lossless, rounds, "random values: unescaping gives back every byte");
    is_int(clean, rounds, "random values: never a raw control byte");
    is_int(one_value, rounds, "random values: a bare value is one plain word or quoted");
}

/* ---- proxy_log ---------------------------------------------------------------------- */

/*
 * Runs proxy_log(INFO, conn 7, "client_hello", driver/app) with stderr
 * captured; cut: app at most 64 bytes, as proxy/handshake.c logs it.
 */
static size_t
capture_hello(const char *driver, const char *app, bool cut, char *out, size_t len)
{
    char path[] = "/tmp/test_proxy_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    ssize_t got;

    fflush(stderr);
    dup2(fd, 2);
    if (cut)
        proxy_log(PROXY_LOG_INFO, 7, "client_hello", "driver=\"%.64s\" app=\"%.64s\"", driver,
                  app);
    else
        proxy_log(PROXY_LOG_INFO, 7, "client_hello", "driver=\"%s\" app=\"%s\"", driver, app);
    proxy_log(PROXY_LOG_DEBUG, 7, "request", "hidden=1");
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
test_proxy_log(void)
{
    char out[4096];
    size_t n;
    int newlines = 0;
    char *long_value = malloc(10000);

    proxy_log_set_level(PROXY_LOG_INFO);
    n = capture_hello("drv\"q\\", FORGED, true, out, sizeof out);
    for (size_t i = 0; i < n; i++)
        newlines += out[i] == '\n';
    ok(newlines == 1 && n > 0 && out[n - 1] == '\n', "proxy_log: one line for the forged appName");
    ok(strstr(out, "level=info conn=7 event=client_hello driver=\"drv\\\"q\\\\\" app=\"x\\n2026-"
                   "01-01T00:00:00.000Z level=error event=forged\"\n") != NULL,
       "proxy_log: the values are escaped: %s", out);
    ok(strstr(out, "event=request") == NULL, "proxy_log: debug lines are not written at info");
    ok(n > 24 && out[4] == '-' && out[10] == 'T' && out[23] == 'Z', "proxy_log: timestamp first");

    memset(long_value, 'a', 9999);
    long_value[9999] = '\0';
    n = capture_hello("d", long_value, false, out, sizeof out);
    ok(n > 0 && n <= PROXY_LOG_LINE_MAX + 1 && out[n - 1] == '\n' &&
           strstr(out, "\" truncated=true\n") != NULL,
       "proxy_log: a long line is cut to PROXY_LOG_LINE_MAX and says so (%zu bytes)", n);
    free(long_value);
}

int
main(void)
{
    test_quote();
    test_format();
    test_random();
    test_proxy_log();
    return done_testing();
}
