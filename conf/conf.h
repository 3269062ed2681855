/*
 * conf/conf.h: the proxy's configuration. Every option is declared once in
 * conf/options.def; values come from the defaults, then a config file, then
 * MONGOCACHE_* environment variables, then command-line flags (later wins).
 * A bad value is refused with the option's name, the value and where it
 * came from; every bad value is reported, not only the first. Secrets
 * (SECRET options, passwords in URIs) are never printed.
 *
 * conf/ checks each value's type and range. What the code that uses a value
 * would refuse beyond that (a namespace list, a Redis URL, an upstream the
 * proxy cannot serve) is checked by a hook that code supplies
 * (conf_set_check), called for every value as it is read: so --check-config,
 * start-up and SIGHUP run the very same checks, and conf/ includes nothing
 * of the folders above it.
 */
#ifndef MONGOCACHE_CONF_CONF_H
#define MONGOCACHE_CONF_CONF_H

#include "conf/log.h"
#include "conf/notes.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
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

/* LOGLEVEL values: enum conf_log_level (conf/log.h), most severe first. */

enum conf_opt_id {
#define CONF_OPT(name, type, def, env, reload, help) CONF_OPT_##name,
#include "conf/options.def"
#undef CONF_OPT
    CONF_OPT_COUNT
};

struct conf;

/*
 * A check of one value beyond its type, by the code that will use it (see
 * conf_set_check). value is the text of option id, already valid for its
 * type (for a SECRET, after a file: was read); source says where it came
 * from. Returns false, with why (why_len bytes, NUL-terminated) saying
 * what is wrong, when start-up would refuse the value. May add warnings
 * (conf_notes_add on conf->warnings) naming source. Must not keep value.
 */
typedef bool (*conf_check_fn)(struct conf *conf, enum conf_opt_id id, const char *value,
                              const char *source, char *why, size_t why_len);

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
    /* The users' check of each value (conf_set_check), or NULL; kept by conf_reload. */
    conf_check_fn check;
    /*
     * What the last conf_load or conf_reload found: every error (each makes
     * the configuration invalid) and every warning (a secret file others
     * can read, an unknown MONGOCACHE_* variable, an upstream option with
     * no effect). Secrets are never in them.
     */
    struct conf_notes errors;
    struct conf_notes warnings;
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
 * Installs the check that every value read from now on must also pass
 * (the defaults were set by conf_new without it). NULL: none.
 */
void conf_set_check(struct conf *conf, conf_check_fn check);

/*
 * Loads the whole configuration: --config FILE (or MONGOCACHE_CONFIG), then
 * the environment, then argv's flags, and validates the result. Flags take
 * "--name value" and "--name=value". After reading, secrets found in argv
 * (SECRET flags, passwords in URIs) are overwritten in place so that
 * /proc/PID/cmdline no longer shows them. Every layer is read to its end:
 * each bad line, variable or flag, and each bad combination, is one line of
 * conf->errors naming the option, the value and its source; warnings go to
 * conf->warnings. Returns false when there is any error, with
 * error->message holding the first (and how many more there are).
 */
bool conf_load(struct conf *conf, int argc, char **argv, enum conf_action *action,
               bson_error_t *error) __attribute__((warn_unused_result));

/*
 * Reads the file and environment again and re-applies the saved flags into
 * a new configuration (for SIGHUP), with old's check. Returns NULL with
 * error set (the first error, and how many more) when the new configuration
 * is invalid; the old one stays in force. Free with conf_destroy. The new
 * configuration's warnings are in its ->warnings.
 */
struct conf *conf_reload(const struct conf *old, bson_error_t *error)
    __attribute__((warn_unused_result));

/* True when option id may change on reload. */
bool conf_is_reloadable(enum conf_opt_id id);
/* Name of option id ("max_clients"). */
const char *conf_opt_name(enum conf_opt_id id);
/* True when option id has a different value in a and b. */
bool conf_differs(const struct conf *a, const struct conf *b, enum conf_opt_id id);

/*
 * Told of one option whose value differs between the running configuration
 * and the reloaded one: applied true when the new value is taken, false
 * when the option needs a restart and the running value stays.
 */
typedef void (*conf_reload_report_fn)(enum conf_opt_id id, bool applied, void *arg);

/*
 * Merges a configuration read by conf_reload into the running one: first
 * calls report (NULL: none) for every option that differs, in options.def
 * order; then, for every option that needs a restart, gives next old's
 * value (strings are swapped, so each struct still owns what it holds).
 * Both stay the caller's: next is the one to run with, old is for
 * conf_destroy.
 */
void conf_reload_merge(struct conf *old, struct conf *next, conf_reload_report_fn report,
                       void *arg);

/* Writes --help text, generated from options.def, to out. */
void conf_usage(FILE *out, const char *argv0);
/* Writes every option as "name = value  # source", secrets as "<redacted>". */
void conf_print(const struct conf *conf, FILE *out);

/*
 * Copies uri with any password (and the value of tlsCertificateKeyFilePassword)
 * replaced by "<redacted>", for logs.
 * Returns a string freed with bson_free.
 */
char *conf_redact_uri(const char *uri);

/*
 * Splits "HOST:PORT" (or "[v6]:PORT") into a host (bson_free) and port.
 * Returns false when it is not of that form.
 */
bool conf_split_addr(const char *addr, char **host, uint16_t *port);

/*
 * True when host (as conf_split_addr returns it) is a loopback address:
 * an IPv4 address in 127.0.0.0/8, the IPv6 loopback, or "localhost".
 */
bool conf_host_is_loopback(const char *host);

#endif
