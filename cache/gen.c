/*
 * cache/gen.c: the in-process generation table (see gen.h). A chained hash
 * table of reference-counted records, plus the list of idle records (held
 * by nothing) in least recently used order, from which records beyond
 * CACHE_GEN_MAX_IDLE are freed. It grows by doubling. Whether a write
 * should bump, and which records, is cache.c's and policy.c's call; who
 * holds a record is the holder's.
 */
#include "config.h"

#include "cache/gen.h"
#include "conf/clock.h"

#include <bson/bson.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

TAILQ_HEAD(cache_gen_idle, cache_gen_rec);

struct cache_gen {
    struct cache_gen_rec **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    struct cache_gen_rec *global;
    struct cache_gen_idle idle; /* records held by nothing, least recently used first */
    size_t n_idle;
    uint64_t forgotten;
    struct cache_gen_ns_sums forgotten_ns; /* what freed "n:" records had counted */
    size_t held_bytes; /* the allocations of the records held (refs > 0) */
};

/* What rec's allocation takes (the record and its name). */
static size_t
rec_bytes(const struct cache_gen_rec *rec)
{
    return sizeof *rec + rec->name_len + 1;
}

struct cache_gen *
cache_gen_new(void)
{
    struct cache_gen *gen = bson_malloc0(sizeof *gen);

    gen->n_buckets = 64;
    gen->buckets = bson_malloc0(gen->n_buckets * sizeof *gen->buckets);
    TAILQ_INIT(&gen->idle);
    gen->global = cache_gen_get(gen, '*', "", 0);
    cache_gen_ref(gen->global); /* held by the table itself */
    return gen;
}

void
cache_gen_destroy(struct cache_gen *gen)
{
    if (!gen)
        return;
    for (size_t i = 0; i < gen->n_buckets; i++) {
        struct cache_gen_rec *rec = gen->buckets[i];

        while (rec) {
            struct cache_gen_rec *next = rec->next;

            bson_free(rec);
            rec = next;
        }
    }
    bson_free(gen->buckets);
    bson_free(gen);
}

static size_t
slot(const struct cache_gen *gen, const char *name, size_t len)
{
    return (size_t)XXH3_64bits(name, len) & (gen->n_buckets - 1);
}

static void
grow(struct cache_gen *gen)
{
    struct cache_gen_rec **old = gen->buckets;
    size_t old_n = gen->n_buckets;

    gen->n_buckets *= 2;
    gen->buckets = bson_malloc0(gen->n_buckets * sizeof *gen->buckets);
    for (size_t i = 0; i < old_n; i++) {
        struct cache_gen_rec *rec = old[i];

        while (rec) {
            struct cache_gen_rec *next = rec->next;
            size_t s = slot(gen, rec->name, rec->name_len);

            rec->next = gen->buckets[s];
            gen->buckets[s] = rec;
            rec = next;
        }
    }
    bson_free(old);
}

/* Unhooks rec from its hash chain and frees it (it is idle and off the list). */
static void
rec_free(struct cache_gen *gen, struct cache_gen_rec *rec)
{
    struct cache_gen_rec **link = &gen->buckets[slot(gen, rec->name, rec->name_len)];

    while (*link != rec)
        link = &(*link)->next;
    *link = rec->next;
    gen->count--;
    gen->forgotten++;
    if (rec->name[0] == 'n') {
#define STAT_NAMESPACE(name, kind, unit, prom, help) gen->forgotten_ns.name += rec->name;
#include "conf/counters.def"
    }
    bson_free(rec);
}

/*
 * Frees the least recently used idle records beyond CACHE_GEN_MAX_IDLE,
 * never keep and never one inside a w:0 grace period (those go to the
 * back; each idle record is looked at once at most).
 */
static void
forget_idle(struct cache_gen *gen, const struct cache_gen_rec *keep)
{
    uint64_t now = 0;
    size_t looked = 0, n = gen->n_idle;

    while (gen->n_idle > CACHE_GEN_MAX_IDLE && looked++ < n) {
        struct cache_gen_rec *rec = TAILQ_FIRST(&gen->idle);

        TAILQ_REMOVE(&gen->idle, rec, idle_link);
        if (rec == keep ||
            (rec->no_fill_until &&
             rec->no_fill_until > (now ? now : (now = (uint64_t)conf_clock_ms())))) {
            TAILQ_INSERT_TAIL(&gen->idle, rec, idle_link);
            continue;
        }
        gen->n_idle--;
        rec_free(gen, rec);
    }
}

struct cache_gen_rec *
cache_gen_get(struct cache_gen *gen, char kind, const char *name, size_t name_len)
{
    char stack[256];
    char *full = name_len + 3 <= sizeof stack ? stack : bson_malloc(name_len + 3);
    size_t len = name_len + 2;
    struct cache_gen_rec *rec;
    size_t s;

    full[0] = kind;
    full[1] = ':';
    memcpy(full + 2, name, name_len);
    full[len] = '\0';
    s = slot(gen, full, len);
    for (rec = gen->buckets[s]; rec; rec = rec->next)
        if (rec->name_len == len && memcmp(rec->name, full, len) == 0)
            break;
    if (rec) {
        if (rec->refs == 0) {
            /* Used again: to the back of the idle list. */
            TAILQ_REMOVE(&gen->idle, rec, idle_link);
            TAILQ_INSERT_TAIL(&gen->idle, rec, idle_link);
        }
        goto out;
    }
    rec = bson_malloc0(sizeof *rec + len + 1);
    memcpy(rec->name, full, len + 1);
    rec->name_len = len;
    rec->gen = gen;
    /* Generations start at 1: 0 is never a valid snapshot. */
    rec->value = 1;
    rec->next = gen->buckets[s];
    gen->buckets[s] = rec;
    TAILQ_INSERT_TAIL(&gen->idle, rec, idle_link);
    gen->n_idle++;
    if (++gen->count > gen->n_buckets)
        grow(gen);
    forget_idle(gen, rec);
out:
    if (full != stack)
        bson_free(full);
    return rec;
}

void
cache_gen_ref(struct cache_gen_rec *rec)
{
    if (rec->refs++ == 0) {
        TAILQ_REMOVE(&rec->gen->idle, rec, idle_link);
        rec->gen->n_idle--;
        rec->gen->held_bytes += rec_bytes(rec);
    }
}

void
cache_gen_unref(struct cache_gen_rec *rec)
{
    struct cache_gen *gen = rec->gen;

    BSON_ASSERT(rec->refs > 0);
    if (--rec->refs > 0)
        return;
    gen->held_bytes -= rec_bytes(rec);
    TAILQ_INSERT_TAIL(&gen->idle, rec, idle_link);
    gen->n_idle++;
    forget_idle(gen, rec);
}

struct cache_gen_rec *
cache_gen_global(struct cache_gen *gen)
{
    return gen->global;
}

void
cache_gen_foreach(const struct cache_gen *gen, char kind,
                  void (*fn)(const struct cache_gen_rec *rec, void *arg), void *arg)
{
    for (size_t i = 0; i < gen->n_buckets; i++)
        for (const struct cache_gen_rec *rec = gen->buckets[i]; rec; rec = rec->next)
            if (rec->name[0] == kind)
                fn(rec, arg);
}

size_t
cache_gen_held_bytes(const struct cache_gen *gen)
{
    return gen->held_bytes;
}

size_t
cache_gen_count(const struct cache_gen *gen)
{
    return gen->count;
}

uint64_t
cache_gen_forgotten(const struct cache_gen *gen)
{
    return gen->forgotten;
}

void
cache_gen_forgotten_ns(const struct cache_gen *gen, struct cache_gen_ns_sums *out)
{
    *out = gen->forgotten_ns;
}
