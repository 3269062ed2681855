/*
 * conf/conf.h: the proxy's configuration. Every option is declared once in
 * conf/options.def; values come from the defaults, then a config file, then
 * MONGOCACHE_* environment variables, then command-line flags (later wins).
 * A bad value is refused with the option's name, the value and where it
 * came from. Secrets (SECRET options, passwords in URIs) are never printed.
 */
#ifndef MONGOCACHE_CONF_CONF_H
#define MONGOCACHE_CONF_CONF_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* C type of each option type. DURATION is milliseconds, SIZE bytes. */
#define CONF_CTYPE_STRING char *
#define CONF_CTYPE_SECRET char *
#define CONF_CTYPE_ADDR char *
#define CONF_CTYPE_URI char *
#define CONF_CTYPE_INT int64_t
#define CONF_CTYPE_SIZE int64_t
#define CONF_CTYPE_DURATION int64_t
#define CONF_CTYPE_BOOL bool
#define CONF_CTYPE_LOGLEVEL int

/* LOGLEVEL values, most severe first (same numbering as proxy/log.h). */
enum conf_log_level {
    CONF_LOG_ERROR = 0,
    CONF_LOG_WARN = 1,
    CONF_LOG_INFO = 2,
    CONF_LOG_DEBUG = 3,
};

enum conf_opt_id {
#define CONF_OPT(name, type, def, env, reload, help) CONF_OPT_##name,
#include "conf/options.def"
#undef CONF_OPT
    CONF_OPT_COUNT
};

/* Where an option's value came from. */
enum conf_source_kind {
    CONF_SRC_DEFAULT,
    CONF_SRC_FILE,
    CONF_SRC_ENV,
    CONF_SRC_FLAG,
};

struct conf {
    /* One field per option, named as in options.def. Strings are owned. */
#define CONF_OPT(name, type, def, env, reload, help) CONF_CTYPE_##type name;
#include "conf/options.def"
#undef CONF_OPT
    /* Where each value came from, e.g. "default", "/etc/mongocache.conf:12",
     * "env MONGOCACHE_LISTEN", "flag --listen". Owned. */
    enum conf_source_kind source_kind[CONF_OPT_COUNT];
    char *source[CONF_OPT_COUNT];
    char *config_path; /* the --config file, or NULL */
    /* Command-line flags kept (secrets included) for SIGHUP reloads. Owned. */
    int n_flags;
    char **flags;
};

/* What the command line asked for. */
enum conf_action {
    CONF_ACTION_RUN,
    CONF_ACTION_HELP,
    CONF_ACTION_VERSION,
    CONF_ACTION_CHECK,
};

/* A new configuration holding the defaults. Free with conf_destroy. */
struct conf *conf_new(void);
void conf_destroy(struct conf *conf);

/*
 * Loads the whole configuration: --config FILE (or MONGOCACHE_CONFIG), then
 * the environment, then argv's flags, and validates the result. Flags take
 * "--name value" and "--name=value". After reading, secrets found in argv
 * (SECRET flags, passwords in URIs) are overwritten in place so that
 * /proc/PID/cmdline no longer shows them. Returns false with error->message
 * naming the option, the value and its source.
 */
bool conf_load(struct conf *conf, int argc, char **argv, enum conf_action *action,
               bson_error_t *error) __attribute__((warn_unused_result));

/*
 * Reads the file and environment again and re-applies the saved flags into
 * a new configuration (for SIGHUP). Returns NULL with error set when the new
 * configuration is invalid; the old one stays in force. Free with conf_destroy.
 */
struct conf *conf_reload(const struct conf *old, bson_error_t *error)
    __attribute__((warn_unused_result));

/* True when option id may change on reload. */
bool conf_is_reloadable(enum conf_opt_id id);
/* Name of option id ("max_clients"). */
const char *conf_opt_name(enum conf_opt_id id);
/* True when option id has a different value in a and b. */
bool conf_differs(const struct conf *a, const struct conf *b, enum conf_opt_id id);

/* Writes --help text, generated from options.def, to out. */
void conf_usage(FILE *out, const char *argv0);
/* Writes every option as "name = value  # source", secrets as "<redacted>". */
void conf_print(const struct conf *conf, FILE *out);

/*
 * Copies uri with any password replaced by "<redacted>", for logs.
 * Returns a string freed with bson_free.
 */
char *conf_redact_uri(const char *uri);

/*
 * Splits "HOST:PORT" (or "[v6]:PORT") into a host (bson_free) and port.
 * Returns false when it is not of that form.
 */
bool conf_split_addr(const char *addr, char **host, uint16_t *port);

#endif
