/*
 * conf/file.c: owns the config file syntax: "name = value" lines, '#'
 * comments, blank lines, quoted values, and the PATH:LINE that names each
 * value's source and each syntax error. Values are handed to
 * conf_parse_set, which parses them by type.
 */
#include "config.h"

#include "conf/file.h"

#include <ctype.h>
#include <errno.h>
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

bool
conf_file_read(struct conf *conf, FILE *in, const char *name, bson_error_t *error)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    unsigned lineno = 0;
    bool ok = true;

    while (ok && (got = getline(&line, &cap, in)) >= 0) {
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
            bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_FILE,
                           "%s:%u: expected \"name = value\"", name, lineno);
            ok = false;
            break;
        }
        id = conf_parse_lookup(key, key_len);
        if (id < 0) {
            bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_FILE,
                           "%s:%u: unknown option \"%.*s\"", name, lineno,
                           key_len > 64 ? 64 : (int)key_len, key);
            ok = false;
            break;
        }
        for (p++; *p == ' ' || *p == '\t'; p++) {
        }
        value = take_value(p, &what);
        if (value == NULL) {
            bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_FILE, "%s:%u: %s for %s", name,
                           lineno, what, conf_opt_name((enum conf_opt_id)id));
            ok = false;
            break;
        }
        {
            char *source = bson_strdup_printf("%s:%u", name, lineno);

            ok = conf_parse_set(conf, (enum conf_opt_id)id, value, CONF_SRC_FILE, source, error);
            bson_free(source);
        }
    }
    if (ok && ferror(in)) {
        bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_FILE, "cannot read %s: %s", name,
                       strerror(errno));
        ok = false;
    }
    if (line != NULL) {
        /* The line may have held a secret. */
        bson_zero_free(line, cap);
    }
    return ok;
}

bool
conf_file_load(struct conf *conf, const char *path, const char *origin, bson_error_t *error)
{
    FILE *in = fopen(path, "re");
    bool ok;

    if (in == NULL) {
        bson_set_error(error, CONF_ERROR_DOMAIN, CONF_ERROR_FILE,
                       "cannot read config file \"%s\" (from %s): %s", path, origin,
                       strerror(errno));
        return false;
    }
    ok = conf_file_read(conf, in, path, error);
    fclose(in);
    return ok;
}
