/*
 * conf/file.c: owns the config file syntax: "name = value" lines, '#'
 * comments, blank lines, quoted values, and the PATH:LINE that names each
 * value's source and each syntax error. Values are handed to
 * conf_parse_set, which parses them by type (and runs the users' check).
 * A bad line does not stop the reading: every one is reported.
 */
#include "config.h"

#include "conf/file.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/parse.h"

/*
 * Takes the value starting at p (after "name =" and blanks) out of line,
 * unquoting it in place. Returns the value, or NULL with *what set to the
 * syntax error.
 */
static char *
take_value(char *p, const char **what)
{
    char *end;

    if (*p == '"' || *p == '\'') {
        char quote = *p;
        char *out = p;
        char *in = p + 1;

        for (;;) {
            if (*in == '\0') {
                *what = "missing closing quote";
                return NULL;
            }
            if (*in == quote) {
                break;
            }
            if (quote == '"' && *in == '\\' && (in[1] == '"' || in[1] == '\\')) {
                in++;
            }
            *out++ = *in++;
        }
        *out = '\0';
        for (in++; *in == ' ' || *in == '\t'; in++) {
        }
        if (*in != '\0' && *in != '#') {
            *what = "unexpected text after the closing quote";
            return NULL;
        }
        return p;
    }
    /* Unquoted: up to a '#' after a blank, trailing blanks dropped. */
    for (end = p; *end != '\0'; end++) {
        if (*end == '#' && end > p && (end[-1] == ' ' || end[-1] == '\t')) {
            break;
        }
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *end = '\0';
    return p;
}

/* Records the problem of line lineno of name in conf->errors. */
static void
line_error(struct conf *conf, const char *name, unsigned lineno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
line_error(struct conf *conf, const char *name, unsigned lineno, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    what = bson_strdupv_printf(fmt, ap);
    va_end(ap);
    conf_notes_add(&conf->errors, "%s:%u: %s", name, lineno, what);
    bson_free(what);
}

bool
conf_file_read(struct conf *conf, FILE *in, const char *name)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    unsigned lineno = 0;
    size_t errors_before = conf->errors.n;

    while ((got = getline(&line, &cap, in)) >= 0) {
        char *p = line;
        char *key;
        size_t key_len;
        const char *what = NULL;
        char *value;
        int id;

        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) {
            line[--got] = '\0';
        }
        if (lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0) {
            p += 3; /* UTF-8 byte order mark */
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        key = p;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
            p++;
        }
        key_len = (size_t)(p - key);
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (key_len == 0 || *p != '=') {
            line_error(conf, name, lineno, "expected \"name = value\"");
            continue;
        }
        id = conf_parse_lookup(key, key_len);
        if (id < 0) {
            int near = conf_parse_suggest(key, key_len);

            line_error(conf, name, lineno, "unknown option \"%.*s\"%s%s%s",
                       key_len > 64 ? 64 : (int)key_len, key, near >= 0 ? " (did you mean " : "",
                       near >= 0 ? conf_parse_desc((enum conf_opt_id)near)->name : "",
                       near >= 0 ? "?)" : "");
            continue;
        }
        for (p++; *p == ' ' || *p == '\t'; p++) {
        }
        value = take_value(p, &what);
        if (value == NULL) {
            line_error(conf, name, lineno, "%s for %s", what,
                       conf_parse_desc((enum conf_opt_id)id)->name);
            continue;
        }
        {
            char *source = bson_strdup_printf("%s:%u", name, lineno);
            bson_error_t error;

            if (!conf_parse_set(conf, (enum conf_opt_id)id, value, CONF_SRC_FILE, source,
                                &error)) {
                conf_notes_add(&conf->errors, "%s", error.message);
            }
            bson_free(source);
        }
    }
    if (ferror(in)) {
        conf_notes_add(&conf->errors, "cannot read %s: %s", name, strerror(errno));
    }
    if (line != NULL) {
        /* The line may have held a secret. */
        bson_zero_free(line, cap);
    }
    return conf->errors.n == errors_before;
}

bool
conf_file_load(struct conf *conf, const char *path, const char *origin)
{
    FILE *in = fopen(path, "re");
    bool ok;

    if (in == NULL) {
        conf_notes_add(&conf->errors, "cannot read config file \"%s\" (from %s): %s", path,
                       origin, strerror(errno));
        return false;
    }
    ok = conf_file_read(conf, in, path);
    fclose(in);
    return ok;
}
