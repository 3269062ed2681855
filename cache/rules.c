/*
 * cache/rules.c: namespace rules (see rules.h): parsing the comma-separated
 * lists of cache_include, cache_exclude and cache_ttl_overrides (each TTL a
 * duration as conf/parse.c reads them, within cache_ttl's range) and
 * finding the most specific rule for a namespace. It does not own what a
 * rule means (cache.c resolves a namespace's TTL from the three lists), nor
 * when the lists are read (conf/, cache_reconfigure).
 */
#include "config.h"

#include "cache/rules.h"
#include "conf/error.h"
#include "conf/parse.h"

#include <stdlib.h>
#include <string.h>

void
cache_rules_clear(struct cache_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        bson_free(r->rules[i].db);
        bson_free(r->rules[i].coll);
    }
    bson_free(r->rules);
    memset(r, 0, sizeof *r);
}

bool
cache_rules_parse(struct cache_rules *r, const char *text, bool with_ttl, const char *option,
                  bson_error_t *error)
{
    char *copy = bson_strdup(text ? text : "");
    char *save = NULL;

    memset(r, 0, sizeof *r);
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq, *dot, *end;
        char shown[128]; /* the entry as written, for the error */
        struct cache_rule rule = {0};

        while (*item == ' ' || *item == '\t')
            item++;
        end = item + strlen(item);
        while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*item)
            continue;
        bson_strncpy(shown, item, sizeof shown);
        eq = strchr(item, '=');
        if (with_ttl) {
            /* A duration as every other is written (conf/parse.c), in cache_ttl's range. */
            int64_t min, max;
            char *ttl = eq ? eq + 1 : NULL;

            if (!eq || !conf_parse_range(CONF_OPT_cache_ttl, &min, &max))
                goto bad;
            for (*eq = '\0'; eq > item && (eq[-1] == ' ' || eq[-1] == '\t');)
                *--eq = '\0';
            while (*ttl == ' ' || *ttl == '\t')
                ttl++;
            if (!conf_parse_duration(ttl, min, max, &rule.ttl_ms))
                goto bad;
        } else if (eq) {
            goto bad;
        }
        dot = strchr(item, '.');
        if (!dot || dot == item || dot[1] == '\0')
            goto bad;
        *dot = '\0';
        rule.db = bson_strdup(item);
        rule.coll = strcmp(dot + 1, "*") == 0 ? NULL : bson_strdup(dot + 1);
        r->rules = bson_realloc(r->rules, (r->n + 1) * sizeof *r->rules);
        r->rules[r->n++] = rule;
        continue;
bad:
        bson_set_error(error, CONF_ERROR_DOMAIN_CACHE, CONF_ERROR_CACHE_RULE,
                       "invalid entry \"%s\" in %s: expected %s, comma-separated", shown, option,
                       with_ttl ? "db.coll=DURATION or db.*=DURATION (a whole number with ms, "
                                  "s, m or h, up to 168h)"
                                : "db.coll or db.*");
        bson_free(copy);
        cache_rules_clear(r);
        return false;
    }
    bson_free(copy);
    return true;
}

const struct cache_rule *
cache_rules_match(const struct cache_rules *r, const char *ns, size_t ns_len)
{
    const struct cache_rule *wild = NULL;
    const char *dot = memchr(ns, '.', ns_len);
    size_t db_len = dot ? (size_t)(dot - ns) : ns_len;

    for (size_t i = 0; i < r->n; i++) {
        const struct cache_rule *rule = &r->rules[i];

        if (strlen(rule->db) != db_len || memcmp(rule->db, ns, db_len) != 0)
            continue;
        if (!rule->coll) {
            wild = wild ? wild : rule;
            continue;
        }
        if (dot && strlen(rule->coll) == ns_len - db_len - 1 &&
            memcmp(rule->coll, dot + 1, ns_len - db_len - 1) == 0)
            return rule;
    }
    return wild;
}
