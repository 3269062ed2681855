/*
 * cache/gen.h: generation counters, the invalidation mechanism. Every
 * namespace ("n:db.coll"), database ("d:db"), principal ("u:user@db") and
 * the whole cache ("*") has a counter. A cached entry remembers the counters
 * it was filled under; a write bumps the counters it may affect, which makes
 * every older entry invalid at once, without finding them. A fill whose
 * counters moved while its query was in flight is refused (the cache-aside
 * race). Records also carry each namespace's hit and miss counts.
 *
 * This is the in-process table. A record is held (cache_gen_ref) by
 * everything that keeps a pointer to it: stored values and the reads,
 * writes and transactions in flight that depend on it, so a hit compares
 * integers, not names. A record nothing holds is idle: forgetting it loses
 * nothing, because no entry depends on its generation, so beyond
 * CACHE_GEN_MAX_IDLE idle records the least recently used are freed (never
 * one inside a w:0 write's grace period). Names from clients cannot grow
 * the table without bound.
 */
#ifndef MONGOCACHE_CACHE_GEN_H
#define MONGOCACHE_CACHE_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* Idle records kept (least recently used beyond this are freed). */
#define CACHE_GEN_MAX_IDLE 4096

struct cache_gen;

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
    uint32_t refs;             /* holders (cache_gen_ref); 0: idle */
    bool late_bump;            /* inval.c holds it for a bump in Redis at no_fill_until */
    struct cache_gen *gen;     /* its table, private */
    TAILQ_ENTRY(cache_gen_rec) idle_link; /* on the table's idle list while refs == 0, private */
    struct cache_gen_rec *next; /* hash chain, private */
    size_t name_len;
    char name[];               /* "n:db.coll", NUL-terminated */
};

/* An empty table. Free with cache_gen_destroy. */
struct cache_gen *cache_gen_new(void);
void cache_gen_destroy(struct cache_gen *gen);

/*
 * The record named kind + name ("n" + "db.coll" -> "n:db.coll"), created on
 * first use. The pointer is valid until the next cache_gen_get or
 * cache_gen_unref (which may free idle records) unless the caller holds it
 * with cache_gen_ref; the record returned is never the one freed.
 */
struct cache_gen_rec *cache_gen_get(struct cache_gen *gen, char kind, const char *name,
                                    size_t name_len);

/* The record for the whole cache ("*"): never freed before the table. */
struct cache_gen_rec *cache_gen_global(struct cache_gen *gen);

/* Holds rec: it is not freed until released as many times. */
void cache_gen_ref(struct cache_gen_rec *rec);

/* Releases rec; when nothing holds it, it is idle and may be freed. */
void cache_gen_unref(struct cache_gen_rec *rec);

static inline void
cache_gen_bump(struct cache_gen_rec *rec)
{
    rec->value++;
}

/* Calls fn for every record of the given kind (for statistics). */
void cache_gen_foreach(const struct cache_gen *gen, char kind,
                       void (*fn)(const struct cache_gen_rec *rec, void *arg), void *arg);

/* Number of records, and of idle records freed so far. */
size_t cache_gen_count(const struct cache_gen *gen);

/*
 * The bytes of the records held (by stored values' snapshots, misses in
 * flight, labels): what the cache's budget counts beside its values. Idle
 * records are bounded by CACHE_GEN_MAX_IDLE instead.
 */
size_t cache_gen_held_bytes(const struct cache_gen *gen);
uint64_t cache_gen_forgotten(const struct cache_gen *gen);

/* The per-namespace statistics ("n:" records' STAT_NAMESPACE fields) summed. */
struct cache_gen_ns_sums {
#define STAT_NAMESPACE(name, kind, unit, prom, help) uint64_t name;
#include "conf/counters.def"
};

/*
 * What the "n:" records freed so far had counted, summed: with the live
 * records, the namespace counters' totals since start (they only grow).
 */
void cache_gen_forgotten_ns(const struct cache_gen *gen, struct cache_gen_ns_sums *out);

#endif
