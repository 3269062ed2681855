/*
 * conf/env.c: owns the environment layer: each option's MONGOCACHE_*
 * variable (named in options.def), MONGOCACHE_CONFIG, the config file used
 * when there is no --config flag, and the warning for any other
 * MONGOCACHE_* variable (a misspelt one would otherwise be ignored without
 * a word). Values of unknown variables are never shown: they may be secrets.
 */
#include "config.h"

#include "conf/env.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/parse.h"

#define PREFIX "MONGOCACHE_"
#define PREFIX_LEN (sizeof PREFIX - 1)

/* Warns about one unknown MONGOCACHE_* variable (name is len bytes). */
static void
warn_unknown(struct conf *conf, const char *name, size_t len)
{
    const char *rest = name + PREFIX_LEN;
    size_t rest_len = len - PREFIX_LEN;
    const char *config = "config"; /* MONGOCACHE_CONFIG, compared as option names are */
    const char *near = NULL;
    int id = conf_parse_suggest(rest, rest_len);
    unsigned d_config;
    unsigned d_option = 0;

    if (id >= 0) {
        const struct conf_opt_desc *desc = conf_parse_desc((enum conf_opt_id)id);

        near = desc->env;
        (void)conf_parse_near(rest, rest_len, desc->name, &d_option);
    }
    if (conf_parse_near(rest, rest_len, config, &d_config) &&
        (near == NULL || d_config < d_option)) {
        near = CONF_ENV_CONFIG;
    }
    if (near != NULL) {
        conf_notes_add(&conf->warnings,
                       "unknown environment variable %.*s is ignored; did you mean %s?",
                       len > 96 ? 96 : (int)len, name, near);
    } else {
        conf_notes_add(&conf->warnings,
                       "unknown environment variable %.*s is ignored (--help lists the "
                       "variables)",
                       len > 96 ? 96 : (int)len, name);
    }
}

bool
conf_env_load(struct conf *conf)
{
    size_t errors_before = conf->errors.n;

    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        const char *value = getenv(d->env);
        char *source;
        bson_error_t error;

        if (value == NULL) {
            continue;
        }
        source = bson_strdup_printf("env %s", d->env);
        if (!conf_parse_set(conf, (enum conf_opt_id)id, value, CONF_SRC_ENV, source, &error)) {
            conf_notes_add(&conf->errors, "%s", error.message);
        }
        bson_free(source);
    }
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        bool known = len == strlen(CONF_ENV_CONFIG) && strncmp(*e, CONF_ENV_CONFIG, len) == 0;

        if (len <= PREFIX_LEN || strncmp(*e, PREFIX, PREFIX_LEN) != 0) {
            continue;
        }
        for (int id = 0; id < CONF_OPT_COUNT && !known; id++) {
            const char *env = conf_parse_desc((enum conf_opt_id)id)->env;

            known = strlen(env) == len && strncmp(*e, env, len) == 0;
        }
        if (!known) {
            warn_unknown(conf, *e, len);
        }
    }
    return conf->errors.n == errors_before;
}

const char *
conf_env_config_path(void)
{
    const char *path = getenv(CONF_ENV_CONFIG);

    return path != NULL && path[0] != '\0' ? path : NULL;
}
