/*
 * conf/env.h: the MONGOCACHE_* environment variables. Every option has
 * one (options.def's env column); a variable that is set, even to the empty
 * string, overrides the config file. MONGOCACHE_CONFIG names the config
 * file when --config is not given.
 */
#ifndef MONGOCACHE_CONF_ENV_H
#define MONGOCACHE_CONF_ENV_H

#include <bson/bson.h>
#include <stdbool.h>

#include "conf/conf.h"

#define CONF_ENV_CONFIG "MONGOCACHE_CONFIG"

/* Applies every option's variable that is set, with source "env NAME". */
bool conf_env_load(struct conf *conf, bson_error_t *error);

/* The value of MONGOCACHE_CONFIG, or NULL when it is unset or empty. */
const char *conf_env_config_path(void);

#endif
