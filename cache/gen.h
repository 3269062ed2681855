/*
 * cache/gen.h: generation counters, the invalidation mechanism. Every
 * namespace ("n:db.coll"), database ("d:db"), principal ("u:user@db") and
 * the whole cache ("*") has a counter. A cached entry remembers the counters
 * it was filled under; a write bumps the counters it may affect, which makes
 * every older entry invalid at once, without finding them. A fill whose
 * counters moved while its query was in flight is refused (the cache-aside
 * race). Records also carry each namespace's hit and miss counts.
 *
 * This is the in-process table: records live as long as the table, so
 * pointers to them stay valid and a hit compares integers, not names.
 */
#ifndef MONGOCACHE_CACHE_GEN_H
#define MONGOCACHE_CACHE_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_gen_rec {
    uint64_t value;          /* the generation */
    uint64_t no_fill_until;  /* monotonic ms: fills refused before this (w:0 grace) */
    /* per-namespace settings, resolved by cache.c when conf_version changes */
    uint32_t conf_version;
    int64_t ttl_ms;
    /* per-namespace statistics (used on "n:" records) */
    uint64_t hits;
    uint64_t misses;
    uint64_t fills;
    uint64_t invalidations;
    struct cache_gen_rec *next; /* hash chain, private */
    size_t name_len;
    char name[];               /* "n:db.coll", NUL-terminated */
};

struct cache_gen;

/* An empty table. Free with cache_gen_destroy. */
struct cache_gen *cache_gen_new(void);
void cache_gen_destroy(struct cache_gen *gen);

/*
 * The record named kind + name ("n" + "db.coll" -> "n:db.coll"), created on
 * first use. The pointer stays valid until cache_gen_destroy.
 */
struct cache_gen_rec *cache_gen_get(struct cache_gen *gen, char kind, const char *name,
                                    size_t name_len);

/* The record for the whole cache ("*"). */
struct cache_gen_rec *cache_gen_global(struct cache_gen *gen);

static inline void
cache_gen_bump(struct cache_gen_rec *rec)
{
    rec->value++;
}

/* Calls fn for every record of the given kind (for statistics). */
void cache_gen_foreach(const struct cache_gen *gen, char kind,
                       void (*fn)(const struct cache_gen_rec *rec, void *arg), void *arg);

/* Number of records. */
size_t cache_gen_count(const struct cache_gen *gen);

#endif
