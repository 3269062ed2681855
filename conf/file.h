/*
 * conf/file.h: reading a config file of "name = value" lines into a
 * struct conf. Blank lines and lines starting with '#' are skipped; a value
 * may be quoted ("..." with \" and \\ escapes, or '...' taken literally);
 * an unquoted value ends at a '#' that follows a space. Each value's source
 * is "PATH:LINE"; an unknown name (with the nearest option's name when one
 * is close) or a line without '=' is an error naming PATH:LINE.
 */
#ifndef MONGOCACHE_CONF_FILE_H
#define MONGOCACHE_CONF_FILE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdio.h>

#include "conf/conf.h"

/*
 * Reads path into conf. origin says where the path came from ("flag
 * --config", "env MONGOCACHE_CONFIG") for the error when it cannot be
 * opened. Every line is read: each bad one adds a line to conf->errors
 * naming PATH:LINE, and the good ones are applied. Returns false when
 * it added any error.
 */
bool conf_file_load(struct conf *conf, const char *path, const char *origin);

/* Same for an open stream; name is used in sources and errors in place of a path. */
bool conf_file_read(struct conf *conf, FILE *in, const char *name);

#endif
