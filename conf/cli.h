/*
 * conf/cli.h: command-line flags. Each option is a flag --name (with '_'
 * written '-') taking a value as "--name value" or "--name=value"; besides
 * them: --config FILE, --check-config, -h/--help and -V/--version. Anything
 * else is an error.
 */
#ifndef MONGOCACHE_CONF_CLI_H
#define MONGOCACHE_CONF_CLI_H

#include <bson/bson.h>
#include <stdbool.h>

#include "conf/conf.h"

/* One option flag, in command-line order. value points into the parsed array. */
struct conf_cli_item {
    enum conf_opt_id id;
    const char *value;
};

struct conf_cli_args {
    enum conf_action action;
    const char *config; /* the last --config value, or NULL */
    int n_items;
    struct conf_cli_item *items;
};

/*
 * Parses n flags (argv without argv[0]). --help and --version win over
 * anything else on the line, errors included. Every unknown flag, flag
 * without its value or stray argument adds a line to errors; returns false
 * when there was any. Free args with conf_cli_args_clear, also after a
 * failure.
 */
bool conf_cli_parse(int n, char *const *flags, struct conf_cli_args *args,
                    struct conf_notes *errors);
/*
 * Applies the parsed option flags to conf, later ones winning, source
 * "flag --name"; each bad value adds a line to conf->errors. Returns false
 * when it added any.
 */
bool conf_cli_apply(struct conf *conf, const struct conf_cli_args *args);
void conf_cli_args_clear(struct conf_cli_args *args);

/*
 * Overwrites in place, with 'x', the values of SECRET flags (except
 * "file:/path" ones, which only name a file) and the password of URI
 * flags, so that /proc/PID/cmdline no longer shows them.
 */
void conf_cli_scrub(int n, char **flags);

/* Writes "--name" for option id into buf. */
void conf_cli_flag_name(enum conf_opt_id id, char *buf, size_t len);

#endif
