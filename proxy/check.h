/*
 * proxy/check.h: what the proxy would refuse to start with, beyond each
 * value's type: the check main.c installs into the configuration
 * (conf_set_check) before loading it, so that --check-config, start-up
 * and SIGHUP reload all run it, on every value as it is read.
 */
#ifndef MONGOCACHE_PROXY_CHECK_H
#define MONGOCACHE_PROXY_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

/*
 * A conf_check_fn (see conf/conf.h): false, with why set, for a value of
 * option id that start-up would refuse; adds a warning to conf->warnings
 * for upstream URI options that have no effect.
 */
bool proxy_check_option(struct conf *conf, enum conf_opt_id id, const char *value,
                        const char *source, char *why, size_t why_len);

#endif
