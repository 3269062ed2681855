/*
 * tests/fuzz/fuzz_conf_file.c: fuzz target for the configuration parser:
 * conf/file.c's syntax (conf_file_read on the input as a whole file) and
 * conf/parse.c's typed value parsers (each line of the input given to every
 * one of them). Uses only the public parse API (conf_new, conf_file_read,
 * conf_print, conf_differs and the conf_parse_* value parsers), not the
 * validation of a whole configuration, which is being reworked.
 * Properties: a configuration that loaded prints (conf_print, what
 * --check-config shows) as a file that loads back to the same values; a
 * size or duration written by conf_parse_format_* parses back to itself; a
 * URI's password never appears in the redacted URI or in the reason a URI
 * was refused, raw or percent-decoded.
 * "file:" is rewritten to "fil_:" first, so that a SECRET value never opens
 * a path named by the input (a FIFO or /dev/stdin would block the fuzzer).
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "conf/conf.h"
#include "conf/file.h"
#include "conf/parse.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>

/* Occurrences of needle in hay (overlapping ones counted). */
static size_t
count(const char *hay, const char *needle)
{
    size_t c = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        c++;
    return c;
}

static int
hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string (bson_free). */
static char *
unescape(const char *s, size_t n)
{
    char *out = bson_malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out[o++] = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * secret (taken from input) must not show in shown: shown has fewer copies
 * of it than input (the one removed was the secret's own). Secrets under 6
 * bytes or inside the placeholder are too likely to appear by chance.
 */
static void
check_hidden(const char *input, const char *secret, const char *shown)
{
    size_t n = strlen(secret);

    if (n < 6 || strstr("<redacted>", secret) != NULL || memchr(secret, '\0', n) != NULL)
        return;
    FUZZ_CHECK(count(shown, secret) < count(input, secret) || count(input, secret) == 0);
}

static void
check_uri(const char *text)
{
    char why[256] = "";
    size_t start, len;
    bool ok = conf_parse_uri(text, why, sizeof why);
    char *redacted = conf_redact_uri(text);

    if (conf_parse_uri_password(text, &start, &len)) {
        char *raw = bson_strndup(text + start, len);
        char *plain = unescape(text + start, len);

        FUZZ_CHECK(start + len <= strlen(text));
        check_hidden(text, raw, redacted);
        if (!ok) {
            check_hidden(text, raw, why);
            /* libmongoc may quote the password decoded: that must not show either. */
            if (strcmp(plain, raw) != 0 && strstr(text, plain) == NULL)
                FUZZ_CHECK(strlen(plain) < 6 || strstr(why, plain) == NULL);
        }
        bson_free(raw);
        bson_free(plain);
    }
    bson_free(redacted);
}

/* Every typed parser on one line of text. */
static void
parse_values(const char *text)
{
    int64_t v, again;
    char buf[64];
    bool b;
    int level;
    char *host = NULL;
    uint16_t port;

    (void)conf_parse_int(text, INT64_MIN, INT64_MAX, &v);
    if (conf_parse_size(text, 0, INT64_MAX, &v)) {
        conf_parse_format_size(v, buf, sizeof buf);
        FUZZ_CHECK(conf_parse_size(buf, 0, INT64_MAX, &again) && again == v);
    }
    if (conf_parse_duration(text, 0, INT64_MAX, &v)) {
        conf_parse_format_duration(v, buf, sizeof buf);
        FUZZ_CHECK(conf_parse_duration(buf, 0, INT64_MAX, &again) && again == v);
    }
    (void)conf_parse_bool(text, &b);
    if (conf_parse_loglevel(text, &level))
        FUZZ_CHECK(level >= CONF_LOG_ERROR && level <= CONF_LOG_DEBUG);
    (void)conf_parse_addr(text);
    if (conf_split_addr(text, &host, &port))
        FUZZ_CHECK(host != NULL);
    bson_free(host);
    check_uri(text);
}

/* Name of the option a conf_print line is about, or -1. */
static int
line_option(const char *line)
{
    const char *eq = strstr(line, " = ");

    return eq ? conf_parse_lookup(line, (size_t)(eq - line)) : -1;
}

/* conf_print's output, less what it redacts, must load back to the same values. */
static void
check_print_roundtrip(const struct conf *conf)
{
    char *printed = NULL, *kept;
    size_t printed_len = 0, kept_len = 0;
    FILE *out = open_memstream(&printed, &printed_len);
    bool shown[CONF_OPT_COUNT] = {false};
    struct conf *again;
    FILE *in;

    FUZZ_CHECK(out != NULL);
    conf_print(conf, out);
    fclose(out);
    kept = bson_malloc(printed_len + 1);
    for (char *line = printed; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        int id;

        *(nl ? nl : line + n) = '\0';
        id = line_option(line);
        FUZZ_CHECK(id >= 0);
        if (conf_parse_desc(id)->type != CONF_TYPE_SECRET && strstr(line, "<redacted>") == NULL) {
            memcpy(kept + kept_len, line, strlen(line));
            kept_len += strlen(line);
            kept[kept_len++] = '\n';
            shown[id] = true;
        }
        line = nl ? nl + 1 : NULL;
    }
    again = conf_new();
    in = fmemopen(kept, kept_len ? kept_len : 1, "r");
    FUZZ_CHECK(in != NULL);
    if (!conf_file_read(again, in, "printed")) {
        fprintf(stderr, "printed configuration does not load: %s\n",
                again->errors.n ? again->errors.lines[0] : "?");
        FUZZ_CHECK(!"conf_print output loads back");
    }
    fclose(in);
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        if (shown[id] && conf_differs(conf, again, (enum conf_opt_id)id)) {
            fprintf(stderr, "option %s does not print back to itself\n",
                    conf_opt_name((enum conf_opt_id)id));
            FUZZ_CHECK(!"conf_print output loads back to the same values");
        }
    }
    conf_destroy(again);
    bson_free(kept);
    free(printed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = bson_malloc(size + 1);
    struct conf *conf;
    int n_lines = 0;
    FILE *in;

    /* libmongoc logs why a URI is refused; the fuzzer's output is no place for it. */
    mongoc_log_set_handler(NULL, NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *p = text; (p = memmem(p, (size_t)(text + size - p), "file:", 5)) != NULL; p += 5)
        p[3] = '_';

    conf = conf_new();
    in = fmemopen(text, size ? size : 1, "r");
    FUZZ_CHECK(in != NULL);
    /* Every bad line is an error naming its line; the good ones are applied, and
     * whatever was applied prints back to itself. */
    if (conf_file_read(conf, in, "fuzz.conf")) {
        FUZZ_CHECK(conf->errors.n == 0);
    } else {
        FUZZ_CHECK(conf->errors.n > 0);
        for (size_t i = 0; i < conf->errors.n; i++)
            FUZZ_CHECK(strncmp(conf->errors.lines[i], "fuzz.conf", 9) == 0 ||
                       conf->errors.lines[i][0] != '\0');
    }
    fclose(in);
    check_print_roundtrip(conf);
    conf_destroy(conf);

    /* The value parsers on their own, one line at a time (the first 64 lines). */
    for (char *line = text, *end = text + size; line < end && n_lines < 64; n_lines++) {
        char *nl = memchr(line, '\n', (size_t)(end - line));

        if (nl)
            *nl = '\0';
        parse_values(line);
        line = nl ? nl + 1 : end;
    }
    bson_free(text);
    return 0;
}
