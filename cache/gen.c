/*
 * cache/gen.c: the in-process generation table (see gen.h). A chained hash
 * table of records that are never freed before the table itself, so callers
 * may keep pointers. It grows by doubling; names are few (one per
 * namespace, database and principal seen), so a rehash is short. Whether a
 * write should bump, and which records, is cache.c's and policy.c's call.
 */
#include "config.h"

#include "cache/gen.h"

#include <bson/bson.h>
#include <string.h>
#include <xxhash.h>

struct cache_gen {
    struct cache_gen_rec **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    struct cache_gen_rec *global;
};

struct cache_gen *
cache_gen_new(void)
{
    struct cache_gen *gen = bson_malloc0(sizeof *gen);

    gen->n_buckets = 64;
    gen->buckets = bson_malloc0(gen->n_buckets * sizeof *gen->buckets);
    gen->global = cache_gen_get(gen, '*', "", 0);
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
            goto out;
    rec = bson_malloc0(sizeof *rec + len + 1);
    memcpy(rec->name, full, len + 1);
    rec->name_len = len;
    /* Generations start at 1: 0 is never a valid snapshot. */
    rec->value = 1;
    rec->next = gen->buckets[s];
    gen->buckets[s] = rec;
    if (++gen->count > gen->n_buckets)
        grow(gen);
out:
    if (full != stack)
        bson_free(full);
    return rec;
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
cache_gen_count(const struct cache_gen *gen)
{
    return gen->count;
}
