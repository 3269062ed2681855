/*
 * conf/parse.h: the option table (generated from options.def, with the
 * numeric ranges) and the parsers that turn one option's text into its
 * typed value. Every layer (file, environment, flags) stores values
 * through conf_parse_set, so each type is parsed and reported one way.
 */
#ifndef MONGOCACHE_CONF_PARSE_H
#define MONGOCACHE_CONF_PARSE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/error.h"

/* bson_error_t domain and codes set by conf/. */
#define CONF_ERROR_DOMAIN CONF_ERROR_DOMAIN_CONF /* conf/error.h */
enum conf_error_code {
    CONF_ERROR_VALUE = 1,  /* a value that does not parse or is out of range */
    CONF_ERROR_FILE = 2,   /* a config file that cannot be read or has bad syntax */
    CONF_ERROR_FLAG = 3,   /* an unknown flag, a flag without its value */
    CONF_ERROR_INVALID = 4 /* options that are fine alone but not together */
};

enum conf_type {
    CONF_TYPE_STRING,
    CONF_TYPE_SECRET,
    CONF_TYPE_ADDR,
    CONF_TYPE_URI,
    CONF_TYPE_INT,
    CONF_TYPE_SIZE,
    CONF_TYPE_DURATION,
    CONF_TYPE_BOOL,
    CONF_TYPE_LOGLEVEL,
};

/* One row of options.def. */
struct conf_opt_desc {
    const char *name;
    enum conf_type type;
    const char *def;
    const char *env;
    bool reloadable;
    const char *help;
    size_t offset; /* of the value in struct conf */
};

/* Longest secret read from a "file:/path" value. */
#define CONF_SECRET_FILE_MAX 65536

/* The option table, indexed by enum conf_opt_id. */
const struct conf_opt_desc *conf_parse_desc(enum conf_opt_id id);
/* Option id for a config-file key (name, '-' also accepted for '_'), or -1. */
int conf_parse_lookup(const char *name, size_t len);
/*
 * True when typed (len bytes; case ignored, '-' read as '_') is near
 * enough to name (lower case) to be a likely misspelling of it: a few
 * letters added, dropped, changed or swapped (1 up to 4 letters, 2 up to 8,
 * else 3). *distance receives the edit distance.
 */
bool conf_parse_near(const char *typed, size_t len, const char *name, unsigned *distance);
/*
 * The option whose name typed (len bytes) is a likely misspelling of (the
 * nearest), else the one option whose name typed starts (4 letters at
 * least), else -1.
 */
int conf_parse_suggest(const char *typed, size_t len);
/*
 * Accepted range of a numeric (INT, SIZE, DURATION in milliseconds) option.
 * Returns false when id has no range entry (a non-numeric option, or a
 * numeric one someone forgot: the unit tests check there is none).
 */
bool conf_parse_range(enum conf_opt_id id, int64_t *min, int64_t *max);

/*
 * The parsers. Each returns false when text is not valid for the type (and
 * range); conf_parse_reason then describes what was expected.
 */
bool conf_parse_int(const char *text, int64_t min, int64_t max, int64_t *out);
/* Bytes; suffixes K, M, G (powers of 1000) and KiB, MiB, GiB (powers of 1024). */
bool conf_parse_size(const char *text, int64_t min, int64_t max, int64_t *out);
/* Milliseconds; suffixes ms, s, m, h; no suffix means seconds. */
bool conf_parse_duration(const char *text, int64_t min, int64_t max, int64_t *out);
bool conf_parse_bool(const char *text, bool *out);
bool conf_parse_loglevel(const char *text, int *out);
/* "HOST:PORT", "[v6]:PORT" or "" (disabled). */
bool conf_parse_addr(const char *text);
/* A MongoDB URI accepted by libmongoc; on failure why holds libmongoc's reason,
 * with any password in it redacted. */
bool conf_parse_uri(const char *text, char *why, size_t why_len);

/* What a valid value of option id looks like, for error messages. */
void conf_parse_reason(enum conf_opt_id id, char *buf, size_t len);

/*
 * Finds the password in a MongoDB URI by its text alone, so that it also
 * works on URIs libmongoc refuses. Sets *start and *len and returns true
 * when there is one. Errs toward finding too much rather than too little.
 */
bool conf_parse_uri_password(const char *uri, size_t *start, size_t *len);

/*
 * The next entry of a comma-separated list (admin_users, compressors): from
 * *p, skips commas and blanks, sets *start and *len to the entry (trailing
 * blanks trimmed) and moves *p past it. False at the end of the list.
 */
bool conf_parse_list_next(const char **p, const char **start, size_t *len);

/* Writes a duration (ms) or size (bytes) the way a config file would. */
void conf_parse_format_duration(int64_t ms, char *buf, size_t len);
void conf_parse_format_size(int64_t bytes, char *buf, size_t len);

/*
 * Parses text for option id and, when valid for its type and for
 * conf->check (when set), stores it in conf together with its source (kind
 * and description, e.g. "env MONGOCACHE_LISTEN"). SECRET values written
 * "file:/path" are read from that file (a file others may read adds a
 * warning to conf->warnings). On failure sets error to 'invalid value
 * "TEXT" for NAME (from SOURCE): REASON' (secret values never shown, URI
 * passwords redacted) and leaves conf's values as they were.
 */
bool conf_parse_set(struct conf *conf, enum conf_opt_id id, const char *text,
                    enum conf_source_kind kind, const char *source, bson_error_t *error);

/* Frees a string value, zeroing it first when it may hold a secret. */
void conf_parse_free_value(enum conf_opt_id id, char *value);

#endif
