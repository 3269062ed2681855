/*
 * cache/deps.c: owns the interned dependency snapshots of stored values
 * (see deps.h): their table (chained, doubled when the snapshots outnumber
 * the buckets), their reference counts and the records they hold. It does
 * not decide what a read depends on (cache.c) nor bump anything (inval.c);
 * it only compares the generations it was given with the records' own.
 */
#include "config.h"

#include "cache/deps.h"

#include "cache/gen.h"

#include <bson/bson.h>
#include <string.h>

struct cache_dep {
    struct cache_gen_rec *rec; /* held */
    uint64_t gen;              /* its generation at the fill */
    uint64_t rgen;             /* the shared one Redis vouched for (when redis) */
};

struct cache_deps {
    struct cache_deps *chain; /* next in the table's bucket */
    struct cache_deps_table *table;
    uint64_t hash;
    uint64_t epoch; /* the Redis tier's epoch (when redis) */
    uint64_t tag;   /* the caller's */
    uint32_t refs;
    uint32_t n;
    bool redis;
    struct cache_dep dep[];
};

struct cache_deps_table {
    struct cache_deps **buckets;
    size_t mask;
    size_t count;
    size_t bytes; /* the snapshots' allocations */
};

#define FIRST_SIZE 16

static uint64_t
mix(uint64_t h, uint64_t x)
{
    h ^= x + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
    return h;
}

static uint64_t
hash_of(struct cache_gen_rec *const *recs, const uint64_t *gens, const uint64_t *rgens,
        uint32_t n, uint64_t epoch, uint64_t tag)
{
    uint64_t h = mix(n, tag);

    for (uint32_t i = 0; i < n; i++) {
        h = mix(h, (uint64_t)(uintptr_t)recs[i]);
        h = mix(h, gens[i]);
        if (rgens)
            h = mix(h, rgens[i]);
    }
    if (rgens)
        h = mix(h, epoch ^ UINT64_C(0x5bd1e995));
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static bool
same(const struct cache_deps *d, struct cache_gen_rec *const *recs, const uint64_t *gens,
     const uint64_t *rgens, uint32_t n, uint64_t epoch, uint64_t tag)
{
    if (d->n != n || d->tag != tag || d->redis != (rgens != NULL) || (rgens && d->epoch != epoch))
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (d->dep[i].rec != recs[i] || d->dep[i].gen != gens[i] ||
            (rgens && d->dep[i].rgen != rgens[i]))
            return false;
    return true;
}

struct cache_deps_table *
cache_deps_table_new(void)
{
    struct cache_deps_table *t = bson_malloc0(sizeof *t);

    t->buckets = bson_malloc0(FIRST_SIZE * sizeof *t->buckets);
    t->mask = FIRST_SIZE - 1;
    return t;
}

void
cache_deps_table_destroy(struct cache_deps_table *t)
{
    if (!t)
        return;
    /* Every snapshot was released with the values that held it. */
    BSON_ASSERT(t->count == 0);
    bson_free(t->buckets);
    bson_free(t);
}

/* Doubles the buckets once the snapshots outnumber them. */
static void
grow(struct cache_deps_table *t)
{
    size_t size = t->mask + 1;
    struct cache_deps **b;

    if (t->count <= size || size > SIZE_MAX / 4 / sizeof *b)
        return;
    b = bson_malloc0(2 * size * sizeof *b);
    for (size_t i = 0; i < size; i++) {
        struct cache_deps *d = t->buckets[i];

        while (d) {
            struct cache_deps *next = d->chain;
            struct cache_deps **slot = &b[d->hash & (2 * size - 1)];

            d->chain = *slot;
            *slot = d;
            d = next;
        }
    }
    bson_free(t->buckets);
    t->buckets = b;
    t->mask = 2 * size - 1;
}

struct cache_deps *
cache_deps_intern(struct cache_deps_table *t, struct cache_gen_rec *const *recs,
                  const uint64_t *gens, const uint64_t *rgens, uint32_t n, uint64_t epoch,
                  uint64_t tag)
{
    uint64_t h = hash_of(recs, gens, rgens, n, epoch, tag);
    struct cache_deps **slot = &t->buckets[h & t->mask];
    struct cache_deps *d;
    size_t size = sizeof *d + (size_t)n * sizeof d->dep[0];

    for (d = *slot; d; d = d->chain) {
        if (d->hash == h && same(d, recs, gens, rgens, n, epoch, tag)) {
            d->refs++;
            return d;
        }
    }
    d = bson_malloc0(size);
    d->table = t;
    d->hash = h;
    d->refs = 1;
    d->n = n;
    d->redis = rgens != NULL;
    d->epoch = rgens ? epoch : 0;
    d->tag = tag;
    for (uint32_t i = 0; i < n; i++) {
        d->dep[i].rec = recs[i];
        d->dep[i].gen = gens[i];
        d->dep[i].rgen = rgens ? rgens[i] : 0;
        cache_gen_ref(recs[i]);
    }
    d->chain = *slot;
    *slot = d;
    t->count++;
    t->bytes += size;
    grow(t);
    return d;
}

void
cache_deps_ref(struct cache_deps *d)
{
    d->refs++;
}

void
cache_deps_unref(struct cache_deps *d)
{
    struct cache_deps_table *t;
    struct cache_deps **link;

    if (!d || --d->refs > 0)
        return;
    t = d->table;
    link = &t->buckets[d->hash & t->mask];
    while (*link != d)
        link = &(*link)->chain;
    *link = d->chain;
    t->count--;
    t->bytes -= sizeof *d + (size_t)d->n * sizeof d->dep[0];
    for (uint32_t i = 0; i < d->n; i++)
        cache_gen_unref(d->dep[i].rec);
    bson_free(d);
}

bool
cache_deps_current(const struct cache_deps *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        if (d->dep[i].rec->value != d->dep[i].gen)
            return false;
    return true;
}

bool
cache_deps_has(const struct cache_deps *d, const struct cache_gen_rec *rec)
{
    for (uint32_t i = 0; i < d->n; i++)
        if (d->dep[i].rec == rec)
            return true;
    return false;
}

uint64_t
cache_deps_tag(const struct cache_deps *d)
{
    return d->tag;
}

struct cache_gen_rec *
cache_deps_ns(const struct cache_deps *d)
{
    return d->dep[0].rec;
}

bool
cache_deps_redis_vouched(const struct cache_deps *d)
{
    return d->redis;
}

bool
cache_deps_redis_same(const struct cache_deps *d, const uint64_t *rgens, uint32_t n,
                      uint64_t epoch)
{
    if (!d->redis || d->n != n || d->epoch != epoch)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (d->dep[i].rgen != rgens[i])
            return false;
    return true;
}

size_t
cache_deps_count(const struct cache_deps_table *t)
{
    return t->count;
}

size_t
cache_deps_bytes(const struct cache_deps_table *t)
{
    return t->bytes + (t->mask + 1) * sizeof *t->buckets;
}
