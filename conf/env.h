/*
 * conf/env.h: the MONGOCACHE_* environment variables. Every option has
 * one (options.def's env column); a variable that is set, even to the empty
 * string, overrides the config file. MONGOCACHE_CONFIG names the config
 * file when --config is not given. Any other MONGOCACHE_* variable gets a
 * warning naming it (and the nearest known name when one is close).
 */
#ifndef MONGOCACHE_CONF_ENV_H
#define MONGOCACHE_CONF_ENV_H

#include <bson/bson.h>
#include <stdbool.h>

#include "conf/conf.h"

#define CONF_ENV_CONFIG "MONGOCACHE_CONFIG"

/*
 * Applies every option's variable that is set, with source "env NAME";
 * each bad value adds a line to conf->errors, each unknown MONGOCACHE_*
 * variable one to conf->warnings. Returns false when it added any error.
 */
bool conf_env_load(struct conf *conf);

/* The value of MONGOCACHE_CONFIG, or NULL when it is unset or empty. */
const char *conf_env_config_path(void);

#endif
