/*
 * conf/conf.c: owns struct conf's life (defaults, loading, reload,
 * destruction), the order of the layers (default < file < environment <
 * flag), the lists of errors and warnings a load finds (every layer is
 * read to its end, so that every bad value is reported at once), the
 * checks that involve more than one option, and the two generated
 * outputs: --help (conf_usage) and --check-config (conf_print). Parsing of
 * single values is conf/parse.c (which also calls the users' check
 * installed with conf_set_check); the layers are file.c, env.c and cli.c.
 */
#include "config.h"

#include "conf/conf.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf/cli.h"
#include "conf/env.h"
#include "conf/file.h"
#include "conf/parse.h"
#include "wire/compress.h"

struct conf *
conf_new(void)
{
    struct conf *conf = bson_malloc0(sizeof *conf);

    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        bson_error_t error;

        if (!conf_parse_set(conf, (enum conf_opt_id)id, conf_parse_desc(id)->def,
                            CONF_SRC_DEFAULT, "default", &error)) {
            /* options.def itself is wrong: the unit tests catch this. */
            fprintf(stderr, "mongocache: bad default in options.def: %s\n", error.message);
            abort();
        }
    }
    return conf;
}

void
conf_set_check(struct conf *conf, conf_check_fn check)
{
    conf->check = check;
}

static void
free_flags(struct conf *conf)
{
    for (int i = 0; i < conf->n_flags; i++) {
        bson_zero_free(conf->flags[i], strlen(conf->flags[i]));
    }
    bson_free(conf->flags);
    conf->flags = NULL;
    conf->n_flags = 0;
}

void
conf_destroy(struct conf *conf)
{
    if (conf == NULL) {
        return;
    }
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);

        switch (d->type) {
        case CONF_TYPE_STRING:
        case CONF_TYPE_SECRET:
        case CONF_TYPE_ADDR:
        case CONF_TYPE_URI:
            conf_parse_free_value((enum conf_opt_id)id, *(char **)((char *)conf + d->offset));
            break;
        default:
            break;
        }
        bson_free(conf->source[id]);
    }
    bson_free(conf->config_path);
    free_flags(conf);
    conf_notes_clear(&conf->errors);
    conf_notes_clear(&conf->warnings);
    bson_free(conf);
}

bool
conf_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return strcmp(host, "localhost") == 0;
}

/* Checks that need more than one option; each failure is one line of conf->errors. */
static void
validate(struct conf *conf)
{
    if (conf->listen[0] == '\0' && conf->listen_unix[0] == '\0') {
        conf_notes_add(&conf->errors,
                       "nothing to listen on: listen (from %s) and listen_unix (from %s) are "
                       "both empty",
                       conf->source[CONF_OPT_listen], conf->source[CONF_OPT_listen_unix]);
    }
    if (conf->redis[0] != '\0' && conf->cache_key_secret[0] == '\0') {
        /* A random per-process secret would make every proxy's values unreadable to the others. */
        conf_notes_add(&conf->errors,
                       "cache_key_secret must be set when redis (from %s) is: the same secret on "
                       "every proxy sharing that Redis",
                       conf->source[CONF_OPT_redis]);
    }
    {
        /* admin_users: each entry "user@db" (proxy/action.c reads it so, at the last '@'). */
        const char *p = conf->admin_users, *start;
        size_t len;

        while (conf_parse_list_next(&p, &start, &len)) {
            const char *end = start + len, *at = NULL;

            for (const char *q = start; q < end; q++)
                if (*q == '@')
                    at = q;
            if (at == NULL || at == start || at == end - 1) {
                conf_notes_add(&conf->errors,
                               "admin_users (from %s): \"%.*s\" is not user@db (a user, '@', "
                               "the database it authenticates on)",
                               conf->source[CONF_OPT_admin_users],
                               (int)(end - start > 128 ? 128 : end - start), start);
                break;
            }
        }
    }
    if (conf->http_listen[0] != '\0' && conf->http_token[0] == '\0') {
        char *host = NULL;
        uint16_t port;
        bool loopback =
            conf_split_addr(conf->http_listen, &host, &port) && conf_host_is_loopback(host);

        bson_free(host);
        if (!loopback) {
            conf_notes_add(&conf->errors,
                           "http_token must be set when http_listen \"%s\" (from %s) is not a "
                           "loopback address",
                           conf->http_listen, conf->source[CONF_OPT_http_listen]);
        }
    }
    {
        /* compressors: names of OP_COMPRESSED.md; one this build lacks is skipped with a
         * warning (proxy/compress.c offers only what is built). */
        const char *p = conf->compressors, *start;
        size_t len;

        while (conf_parse_list_next(&p, &start, &len)) {
            const char *end = start + len;
            int id = wire_compress_lookup(start, len);

            if (id < 0) {
                conf_notes_add(&conf->errors,
                               "invalid value \"%.128s\" for compressors (from %s): \"%.*s\" "
                               "is not a compressor (snappy, zstd, zlib or noop)",
                               conf->compressors, conf->source[CONF_OPT_compressors],
                               (int)(end - start > 64 ? 64 : end - start), start);
                break;
            }
            if (!wire_compress_built(id) &&
                conf->source_kind[CONF_OPT_compressors] != CONF_SRC_DEFAULT)
                conf_notes_add(&conf->warnings,
                               "compressors (from %s): %s is not built into this mongocache "
                               "(configure did not find its library); not offered",
                               conf->source[CONF_OPT_compressors], wire_compress_name(id));
        }
    }
    if (strcmp(conf->log_format, "logfmt") != 0 && strcmp(conf->log_format, "json") != 0) {
        conf_notes_add(&conf->errors, "log_format \"%s\" (from %s) must be logfmt or json",
                       conf->log_format, conf->source[CONF_OPT_log_format]);
    }
}

/*
 * Applies file, environment and conf->flags on top of conf's current
 * values, every problem going to conf->errors and conf->warnings. A command
 * line that does not parse stops there: which file to read is not known.
 */
static void
load_layers(struct conf *conf, enum conf_action *action)
{
    struct conf_cli_args args;
    const char *path;
    const char *origin;
    bool ok;

    conf_notes_clear(&conf->errors);
    conf_notes_clear(&conf->warnings);
    ok = conf_cli_parse(conf->n_flags, conf->flags, &args, &conf->errors);
    *action = args.action;
    if (args.action == CONF_ACTION_HELP || args.action == CONF_ACTION_VERSION) {
        conf_notes_clear(&conf->errors);
        conf_cli_args_clear(&args);
        return;
    }
    if (!ok) {
        conf_cli_args_clear(&args);
        return;
    }
    if (args.config != NULL) {
        path = args.config[0] != '\0' ? args.config : NULL; /* --config= reads no file */
        origin = "flag --config";
    } else {
        path = conf_env_config_path();
        origin = "env " CONF_ENV_CONFIG;
    }
    bson_free(conf->config_path);
    conf->config_path = path != NULL ? bson_strdup(path) : NULL;

    if (path != NULL) {
        (void)conf_file_load(conf, path, origin);
    }
    (void)conf_env_load(conf);
    (void)conf_cli_apply(conf, &args);
    validate(conf);
    conf_cli_args_clear(&args);
}

/* Sets error to conf's first error, and how many more there are. */
static void
first_error(const struct conf *conf, bson_error_t *error)
{
    uint32_t code = CONF_ERROR_INVALID;

    if (conf->errors.n > 1) {
        bson_set_error(error, CONF_ERROR_DOMAIN, code, "%s (and %zu more problems)",
                       conf->errors.lines[0], conf->errors.n - 1);
    } else {
        bson_set_error(error, CONF_ERROR_DOMAIN, code, "%s", conf->errors.lines[0]);
    }
}

bool
conf_load(struct conf *conf, int argc, char **argv, enum conf_action *action,
          bson_error_t *error)
{
    int n = argc > 1 ? argc - 1 : 0;

    free_flags(conf);
    conf->flags = bson_malloc0(sizeof(char *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        conf->flags[i] = bson_strdup(argv[i + 1]);
    }
    conf->n_flags = n;
    conf_cli_scrub(n, argv + 1);
    load_layers(conf, action);
    if (conf->errors.n > 0) {
        first_error(conf, error);
        return false;
    }
    return true;
}

struct conf *
conf_reload(const struct conf *old, bson_error_t *error)
{
    struct conf *conf = conf_new();
    enum conf_action action;

    conf->flags = bson_malloc0(sizeof(char *) * (size_t)(old->n_flags + 1));
    for (int i = 0; i < old->n_flags; i++) {
        conf->flags[i] = bson_strdup(old->flags[i]);
    }
    conf->n_flags = old->n_flags;
    conf->check = old->check;
    load_layers(conf, &action);
    if (conf->errors.n > 0) {
        first_error(conf, error);
        conf_destroy(conf);
        return NULL;
    }
    return conf;
}

bool
conf_is_reloadable(enum conf_opt_id id)
{
    return conf_parse_desc(id)->reloadable;
}

const char *
conf_opt_name(enum conf_opt_id id)
{
    return conf_parse_desc(id)->name;
}

bool
conf_differs(const struct conf *a, const struct conf *b, enum conf_opt_id id)
{
    const struct conf_opt_desc *d = conf_parse_desc(id);
    const void *fa = (const char *)a + d->offset;
    const void *fb = (const char *)b + d->offset;

    switch (d->type) {
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET:
    case CONF_TYPE_ADDR:
    case CONF_TYPE_URI: {
        const char *sa = *(char *const *)fa;
        const char *sb = *(char *const *)fb;

        return strcmp(sa ? sa : "", sb ? sb : "") != 0;
    }
    case CONF_TYPE_INT:
    case CONF_TYPE_SIZE:
    case CONF_TYPE_DURATION:
        return *(const int64_t *)fa != *(const int64_t *)fb;
    case CONF_TYPE_BOOL:
        return *(const bool *)fa != *(const bool *)fb;
    case CONF_TYPE_LOGLEVEL:
        return *(const int *)fa != *(const int *)fb;
    }
    return false;
}

/* Bytes of an option's field in struct conf (its CONF_CTYPE). */
static size_t
field_size(enum conf_type type)
{
    switch (type) {
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET:
    case CONF_TYPE_ADDR:
    case CONF_TYPE_URI:
        return sizeof(char *);
    case CONF_TYPE_INT:
    case CONF_TYPE_SIZE:
    case CONF_TYPE_DURATION:
        return sizeof(int64_t);
    case CONF_TYPE_BOOL:
        return sizeof(bool);
    case CONF_TYPE_LOGLEVEL:
        return sizeof(int);
    }
    return 0;
}

void
conf_reload_merge(struct conf *old, struct conf *next, conf_reload_report_fn report, void *arg)
{
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        if (report && conf_differs(old, next, (enum conf_opt_id)id))
            report((enum conf_opt_id)id, conf_is_reloadable((enum conf_opt_id)id), arg);
    }
    /* Keep the values that need a restart (swapped: old still frees a string); take the rest. */
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        char *fo = (char *)old + d->offset;
        char *fn = (char *)next + d->offset;
        char tmp[sizeof(int64_t) > sizeof(char *) ? sizeof(int64_t) : sizeof(char *)];
        size_t n = field_size(d->type);

        if (conf_is_reloadable((enum conf_opt_id)id) || n == 0 || n > sizeof tmp)
            continue;
        memcpy(tmp, fn, n);
        memcpy(fn, fo, n);
        memcpy(fo, tmp, n);
    }
}

static const char *
metavar(enum conf_type type)
{
    switch (type) {
    case CONF_TYPE_STRING:
        return "TEXT";
    case CONF_TYPE_SECRET:
        return "SECRET";
    case CONF_TYPE_ADDR:
        return "HOST:PORT";
    case CONF_TYPE_URI:
        return "URI";
    case CONF_TYPE_INT:
        return "N";
    case CONF_TYPE_SIZE:
        return "SIZE";
    case CONF_TYPE_DURATION:
        return "DURATION";
    case CONF_TYPE_BOOL:
        return "BOOL";
    case CONF_TYPE_LOGLEVEL:
        return "LEVEL";
    }
    return "VALUE";
}

void
conf_usage(FILE *out, const char *argv0)
{
    const char *prog = argv0 != NULL && argv0[0] != '\0' ? argv0 : "mongocache";
    const char *slash = strrchr(prog, '/');

    if (slash != NULL && slash[1] != '\0') {
        prog = slash + 1;
    }
    fprintf(out,
            "Usage: %s [--config FILE] [--check-config] [--NAME VALUE | --NAME=VALUE]...\n"
            "       %s --help | --version\n"
            "\n"
            "A caching proxy for MongoDB clients. Each option below is taken from, later\n"
            "winning: its default, the config file (\"name = value\" lines), its MONGOCACHE_*\n"
            "environment variable, its flag. SIGHUP re-reads the file and environment;\n"
            "options marked (reloadable) then take effect, the others need a restart.\n"
            "\n"
            "  --config FILE   read options from FILE (env %s)\n"
            "  --check-config  print the effective configuration with each value's source,\n"
            "                  then exit; exit status 2 when it is invalid\n"
            "  -h, --help      print this help and exit\n"
            "  -V, --version   print the version and exit\n"
            "\n"
            "Values: DURATION is a whole number with ms, s, m or h (no unit: seconds); SIZE\n"
            "is bytes, optionally with K, M, G (x1000) or KiB, MiB, GiB (x1024); a SECRET\n"
            "written file:/path is read from that file; URI passwords and secrets are\n"
            "never printed.\n"
            "\n"
            "Options:\n",
            prog, prog, CONF_ENV_CONFIG);
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        char flag[64];

        conf_cli_flag_name((enum conf_opt_id)id, flag, sizeof flag);
        fprintf(out, "  %s %s\n      %s\n      env %s, default \"%s\"%s\n", flag,
                metavar(d->type), d->help, d->env, d->def, d->reloadable ? " (reloadable)" : "");
    }
}

/* Writes s as a config-file value: bare when that reads back the same, else in "quotes". */
static void
print_string(FILE *out, const char *s)
{
    size_t len = strlen(s);
    bool bare = len > 0 && s[0] != ' ' && s[0] != '\t' && s[0] != '"' && s[0] != '\'' &&
                s[len - 1] != ' ' && s[len - 1] != '\t' && strpbrk(s, "#\n\r") == NULL;

    if (bare) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

void
conf_print(const struct conf *conf, FILE *out)
{
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        const void *field = (const char *)conf + d->offset;
        char buf[64];

        fprintf(out, "%s = ", d->name);
        switch (d->type) {
        case CONF_TYPE_STRING:
        case CONF_TYPE_ADDR:
            print_string(out, *(char *const *)field);
            break;
        case CONF_TYPE_SECRET:
            fputs((*(char *const *)field)[0] != '\0' ? "<redacted>" : "\"\"", out);
            break;
        case CONF_TYPE_URI: {
            char *redacted = conf_redact_uri(*(char *const *)field);

            print_string(out, redacted);
            bson_free(redacted);
            break;
        }
        case CONF_TYPE_INT:
            fprintf(out, "%" PRId64, *(const int64_t *)field);
            break;
        case CONF_TYPE_SIZE:
            conf_parse_format_size(*(const int64_t *)field, buf, sizeof buf);
            fputs(buf, out);
            break;
        case CONF_TYPE_DURATION:
            conf_parse_format_duration(*(const int64_t *)field, buf, sizeof buf);
            fputs(buf, out);
            break;
        case CONF_TYPE_BOOL:
            fputs(*(const bool *)field ? "true" : "false", out);
            break;
        case CONF_TYPE_LOGLEVEL: {
            static const char *const names[] = {"error", "warn", "info", "debug"};
            int level = *(const int *)field;

            fputs(level >= 0 && level <= 3 ? names[level] : "?", out);
            break;
        }
        }
        fprintf(out, "  # %s\n", conf->source[id]);
    }
}
