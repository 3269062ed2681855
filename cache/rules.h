/*
 * cache/rules.h: namespace rules, the lists of namespaces that the settings
 * cache_include, cache_exclude and cache_ttl_overrides name ("db.coll",
 * "db.*", with a TTL for the overrides), and matching a namespace against
 * them. What a match means for caching is cache.c's call.
 */
#ifndef MONGOCACHE_CACHE_RULES_H
#define MONGOCACHE_CACHE_RULES_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One namespace rule from cache_include, cache_exclude or cache_ttl_overrides. */
struct cache_rule {
    char *db;
    char *coll; /* NULL: every collection of db */
    int64_t ttl_ms;
};

/* A parsed list; n == 0 when empty. Free with cache_rules_clear. */
struct cache_rules {
    struct cache_rule *rules;
    size_t n;
};

/* Frees the rules and leaves r empty. */
void cache_rules_clear(struct cache_rules *r);

/*
 * Parses "db.coll, db.*" (with_ttl: "db.coll=30s, db.*=0") into r.
 * option names the setting in error messages. Returns false with error set
 * (and r empty) when an entry is malformed.
 */
bool cache_rules_parse(struct cache_rules *r, const char *text, bool with_ttl, const char *option,
                       bson_error_t *error) __attribute__((warn_unused_result));

/* The most specific rule for db.coll (an exact collection beats db.*), or NULL. */
const struct cache_rule *cache_rules_match(const struct cache_rules *r, const char *ns,
                                           size_t ns_len);

#endif
