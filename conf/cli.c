/*
 * conf/cli.c: owns the command line: recognising option flags (--name
 * value, --name=value) and the four others (--config, --check-config,
 * --help, --version), applying option flags with source "flag --name", and
 * scrubbing secret values out of argv once they have been copied.
 */
#include "config.h"

#include "conf/cli.h"

#include <string.h>

#include "conf/parse.h"

#define FLAG_NAME_MAX 64

void
conf_cli_flag_name(enum conf_opt_id id, char *buf, size_t len)
{
    const char *name = conf_parse_desc(id)->name;
    size_t o = 0;

    if (len < 3) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return;
    }
    buf[o++] = '-';
    buf[o++] = '-';
    for (; *name != '\0' && o + 1 < len; name++) {
        buf[o++] = *name == '_' ? '-' : *name;
    }
    buf[o] = '\0';
}

/* The option id of "--name" or "--name=value" (setting *inline_value), or -1. */
static int
match_option(const char *arg, const char **inline_value)
{
    const char *name;
    const char *eq;
    size_t len;
    int id;

    *inline_value = NULL;
    if (strncmp(arg, "--", 2) != 0) {
        return -1;
    }
    name = arg + 2;
    eq = strchr(name, '=');
    len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (memchr(name, '_', len) != NULL) {
        return -1; /* flags are written with '-' only */
    }
    id = conf_parse_lookup(name, len);
    if (id < 0 && len == 4 && strncmp(name, "http", 4) == 0) {
        id = CONF_OPT_http_listen; /* --http ADDR:PORT, the short spelling */
    }
    if (id >= 0 && eq != NULL) {
        *inline_value = eq + 1;
    }
    return id;
}

/* True for "--config" (value in the next argument) or "--config=FILE" (*inline_value). */
static bool
match_config(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    if (strcmp(arg, "--config") == 0) {
        return true;
    }
    if (strncmp(arg, "--config=", 9) == 0) {
        *inline_value = arg + 9;
        return true;
    }
    return false;
}

void
conf_cli_args_clear(struct conf_cli_args *args)
{
    bson_free(args->items);
    memset(args, 0, sizeof *args);
}

/* Records an unknown flag in errors, with the nearest option's flag when one is close. */
static void
unknown_flag(const char *arg, struct conf_notes *errors)
{
    /* Never echo what follows '=': it may be a mistyped secret flag's value. */
    size_t len = strcspn(arg, "=");
    int near = -1;
    char flag[FLAG_NAME_MAX];

    if (strncmp(arg, "--", 2) == 0) {
        near = conf_parse_suggest(arg + 2, len - 2);
    }
    if (near >= 0) {
        conf_cli_flag_name((enum conf_opt_id)near, flag, sizeof flag);
    }
    conf_notes_add(errors, "unknown flag \"%.*s\"%s%s%s (see --help)", len > 64 ? 64 : (int)len,
                   arg, near >= 0 ? " (did you mean " : "", near >= 0 ? flag : "",
                   near >= 0 ? "?)" : "");
}

bool
conf_cli_parse(int n, char *const *flags, struct conf_cli_args *args, struct conf_notes *errors)
{
    bool failed = false;

    memset(args, 0, sizeof *args);
    args->action = CONF_ACTION_RUN;
    args->items = bson_malloc0(sizeof(struct conf_cli_item) * (size_t)(n > 0 ? n : 1));

    for (int i = 0; i < n; i++) {
        const char *arg = flags[i];
        const char *inline_value;
        int id;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            args->action = CONF_ACTION_HELP;
            return true;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            args->action = CONF_ACTION_VERSION;
            return true;
        }
        if (strcmp(arg, "--check-config") == 0) {
            args->action = CONF_ACTION_CHECK;
            continue;
        }
        if (match_config(arg, &inline_value)) {
            if (inline_value == NULL && i + 1 >= n) {
                conf_notes_add(errors, "flag --config needs a value (a file name)");
                failed = true;
                continue;
            }
            args->config = inline_value != NULL ? inline_value : flags[++i];
            continue;
        }
        id = match_option(arg, &inline_value);
        if (id >= 0) {
            const char *value = inline_value;
            char flag[FLAG_NAME_MAX];

            if (value == NULL && i + 1 < n) {
                value = flags[++i];
            }
            if (value == NULL) {
                conf_cli_flag_name((enum conf_opt_id)id, flag, sizeof flag);
                conf_notes_add(errors, "flag %s needs a value (see --help)", flag);
                failed = true;
                continue;
            }
            args->items[args->n_items].id = (enum conf_opt_id)id;
            args->items[args->n_items].value = value;
            args->n_items++;
            continue;
        }
        if (arg[0] == '-') {
            unknown_flag(arg, errors);
        } else {
            conf_notes_add(errors,
                           "unexpected argument %d: not a flag (options are written "
                           "--name value or --name=value; see --help)",
                           i + 1);
        }
        failed = true;
    }
    return !failed;
}

bool
conf_cli_apply(struct conf *conf, const struct conf_cli_args *args)
{
    size_t errors_before = conf->errors.n;

    for (int i = 0; i < args->n_items; i++) {
        char flag[FLAG_NAME_MAX];
        char source[FLAG_NAME_MAX + 8];
        bson_error_t error;

        conf_cli_flag_name(args->items[i].id, flag, sizeof flag);
        bson_snprintf(source, sizeof source, "flag %s", flag);
        if (!conf_parse_set(conf, args->items[i].id, args->items[i].value, CONF_SRC_FLAG, source,
                            &error)) {
            conf_notes_add(&conf->errors, "%s", error.message);
        }
    }
    return conf->errors.n == errors_before;
}

void
conf_cli_scrub(int n, char **flags)
{
    for (int i = 0; i < n; i++) {
        const char *inline_value;
        char *value;
        int id;

        if (match_config(flags[i], &inline_value)) {
            if (inline_value == NULL) {
                i++;
            }
            continue;
        }
        id = match_option(flags[i], &inline_value);
        if (id < 0) {
            continue;
        }
        if (inline_value != NULL) {
            value = flags[i] + (inline_value - flags[i]);
        } else if (i + 1 < n) {
            value = flags[++i];
        } else {
            continue;
        }
        switch (conf_parse_desc((enum conf_opt_id)id)->type) {
        case CONF_TYPE_SECRET:
            if (strncmp(value, "file:", 5) != 0) {
                memset(value, 'x', strlen(value));
            }
            break;
        case CONF_TYPE_URI: {
            size_t start;
            size_t len;

            if (conf_parse_uri_password(value, &start, &len)) {
                memset(value + start, 'x', len);
            }
            break;
        }
        default:
            break;
        }
    }
}
