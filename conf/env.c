/*
 * conf/env.c: owns the environment layer: each option's MONGOCACHE_*
 * variable (named in options.def) and MONGOCACHE_CONFIG, the config file
 * used when there is no --config flag.
 */
#include "config.h"

#include "conf/env.h"

#include <stdlib.h>

#include "conf/parse.h"

bool
conf_env_load(struct conf *conf, bson_error_t *error)
{
    for (int id = 0; id < CONF_OPT_COUNT; id++) {
        const struct conf_opt_desc *d = conf_parse_desc((enum conf_opt_id)id);
        const char *value = getenv(d->env);
        char *source;
        bool ok;

        if (value == NULL) {
            continue;
        }
        source = bson_strdup_printf("env %s", d->env);
        ok = conf_parse_set(conf, (enum conf_opt_id)id, value, CONF_SRC_ENV, source, error);
        bson_free(source);
        if (!ok) {
            return false;
        }
    }
    return true;
}

const char *
conf_env_config_path(void)
{
    const char *path = getenv(CONF_ENV_CONFIG);

    return path != NULL && path[0] != '\0' ? path : NULL;
}
