/*
 * cache/lru.c: owns the in-process tier's index: the links of the entry
 * nodes (embedded in the caller's values), the chained hash table (two
 * tables while growing, moved a few buckets per operation), the intrusive
 * LRU list, the byte total against the budget and the lazy expiry. It does
 * not own the values (handed back through the release callback, sized by
 * the charge callback), does not compute keys (cache/key.c) and does not
 * check key digests (cache/value.c): a cache_key is the whole identity here.
 */
#include "config.h"

#include "cache/lru.h"

#include <bson/bson.h>

/* Buckets in a new map's table; a power of two. */
#define FIRST_SIZE 8
/* Buckets moved from the old table to the new one per operation while growing. */
#define STEP 8

struct table {
    struct cache_lru_node **buckets; /* NULL when unused */
    size_t mask;           /* number of buckets - 1 */
};

/*
 * While growing, t[1] is the new table and bucket i of t[0] has been moved
 * when i < moved. A key lives in exactly one place: t[1] if its t[0] bucket
 * has been moved, else t[0] (new keys go there too; they move with it).
 */
struct cache_lru {
    struct table t[2];
    size_t moved;
    struct cache_lru_node *head; /* most recently used */
    struct cache_lru_node *tail; /* least recently used */
    size_t count;
    size_t bytes;
    size_t budget;
    cache_lru_release_fn release;
    cache_lru_charge_fn charge;
    cache_lru_shared_fn shared; /* may be NULL */
    void *shared_arg;
};

static uint64_t
hash(const struct cache_key *key)
{
    uint64_t h = key->lo ^ key->hi;

    /* The murmur3 finalizer, so that small keys (tiny-key builds) spread too. */
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static bool
growing(const struct cache_lru *lru)
{
    return lru->t[1].buckets != NULL;
}

/* The bucket where a key with hash h lives (or would be inserted). */
static struct cache_lru_node **
slot(struct cache_lru *lru, uint64_t h)
{
    size_t i = (size_t)h & lru->t[0].mask;

    if (growing(lru) && i < lru->moved)
        return &lru->t[1].buckets[(size_t)h & lru->t[1].mask];
    return &lru->t[0].buckets[i];
}

/* The link pointing at key's node in its bucket, or at the bucket's NULL end. */
static struct cache_lru_node **
find(struct cache_lru *lru, const struct cache_key *key)
{
    struct cache_lru_node **link = slot(lru, hash(key));

    while (*link != NULL && !cache_key_equal(&(*link)->key, key))
        link = &(*link)->chain;
    return link;
}

static void
table_init(struct table *t, size_t size)
{
    t->buckets = bson_malloc0(size * sizeof *t->buckets);
    t->mask = size - 1;
}

/* Moves up to STEP buckets into the new table; swaps tables when all are moved. */
static void
step(struct cache_lru *lru)
{
    size_t size = lru->t[0].mask + 1;
    size_t stop;

    if (!growing(lru))
        return;
    stop = lru->moved + STEP < size ? lru->moved + STEP : size;
    for (; lru->moved < stop; lru->moved++) {
        struct cache_lru_node *n = lru->t[0].buckets[lru->moved];

        while (n != NULL) {
            struct cache_lru_node *next = n->chain;
            struct cache_lru_node **b = &lru->t[1].buckets[(size_t)hash(&n->key) & lru->t[1].mask];

            n->chain = *b;
            *b = n;
            n = next;
        }
        lru->t[0].buckets[lru->moved] = NULL;
    }
    if (lru->moved == size) {
        bson_free(lru->t[0].buckets);
        lru->t[0] = lru->t[1];
        lru->t[1].buckets = NULL;
        lru->t[1].mask = 0;
        lru->moved = 0;
    }
}

/* Starts growing once the load factor passes 1. */
static void
grow(struct cache_lru *lru)
{
    size_t size = lru->t[0].mask + 1;

    if (growing(lru) || lru->count <= size || size > SIZE_MAX / 2 / sizeof(struct cache_lru_node *))
        return;
    table_init(&lru->t[1], size * 2);
    lru->moved = 0;
}

static void
list_unlink(struct cache_lru *lru, struct cache_lru_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        lru->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        lru->tail = n->prev;
}

static void
list_push(struct cache_lru *lru, struct cache_lru_node *n)
{
    n->prev = NULL;
    n->next = lru->head;
    if (lru->head != NULL)
        lru->head->prev = n;
    else
        lru->tail = n;
    lru->head = n;
}

static void
touch(struct cache_lru *lru, struct cache_lru_node *n)
{
    if (lru->head == n)
        return;
    list_unlink(lru, n);
    list_push(lru, n);
}

static void
give_back(struct cache_lru *lru, struct cache_lru_node *n)
{
    if (lru->release != NULL)
        lru->release(n);
}

/* Removes n (whose bucket link is *link, or NULL to look it up) and releases its value. */
static void
drop(struct cache_lru *lru, struct cache_lru_node **link, struct cache_lru_node *n)
{
    if (link == NULL) {
        link = slot(lru, hash(&n->key));
        while (*link != n)
            link = &(*link)->chain;
    }
    *link = n->chain;
    list_unlink(lru, n);
    lru->count--;
    lru->bytes -= lru->charge(n);
    give_back(lru, n);
}

/*
 * Evicts from the LRU end until the charges and the shared bytes fit the
 * budget, never keep (the entry just stored, which fits alone: the shared
 * bytes, held by others too, may stay over the budget whatever is
 * evicted); returns how many.
 */
static uint32_t
shed(struct cache_lru *lru, const struct cache_lru_node *keep)
{
    uint32_t evicted = 0;

    while (lru->tail != NULL && lru->tail != keep &&
           lru->bytes + (lru->shared ? lru->shared(lru->shared_arg) : 0) > lru->budget) {
        drop(lru, NULL, lru->tail);
        evicted++;
    }
    return evicted;
}

struct cache_lru *
cache_lru_new(size_t budget, cache_lru_release_fn release, cache_lru_charge_fn charge)
{
    struct cache_lru *lru = bson_malloc0(sizeof *lru);

    table_init(&lru->t[0], FIRST_SIZE);
    lru->budget = budget;
    lru->release = release;
    lru->charge = charge;
    return lru;
}

void
cache_lru_set_shared(struct cache_lru *lru, cache_lru_shared_fn shared, void *arg)
{
    lru->shared = shared;
    lru->shared_arg = arg;
}

void
cache_lru_destroy(struct cache_lru *lru)
{
    struct cache_lru_node *n;

    if (lru == NULL)
        return;
    n = lru->head;
    while (n != NULL) {
        struct cache_lru_node *next = n->next;

        give_back(lru, n);
        n = next;
    }
    bson_free(lru->t[0].buckets);
    bson_free(lru->t[1].buckets);
    bson_free(lru);
}

bool
cache_lru_put(struct cache_lru *lru, const struct cache_key *key, struct cache_lru_node *n,
              uint64_t expires_ms, uint32_t *evicted)
{
    struct cache_lru_node **link;
    size_t bytes = lru->charge(n);
    uint32_t shed_count;

    if (evicted != NULL)
        *evicted = 0;
    step(lru);
    link = find(lru, key);
    if (*link != NULL) {
        /* The key's old value goes (stale now, even if the new one is refused). */
        drop(lru, link, *link);
        link = find(lru, key);
    }
    if (bytes > lru->budget) {
        give_back(lru, n);
        return false;
    }
    n->chain = NULL;
    n->key = *key;
    n->expires_ms = expires_ms;
    *link = n;
    list_push(lru, n);
    lru->count++;
    lru->bytes += bytes;
    grow(lru);
    /* The new entry is at the MRU end and fits alone, so it is never shed. */
    shed_count = shed(lru, n);
    if (evicted != NULL)
        *evicted = shed_count;
    return true;
}

struct cache_lru_node *
cache_lru_get(struct cache_lru *lru, const struct cache_key *key, uint64_t now_ms)
{
    struct cache_lru_node **link;
    struct cache_lru_node *n;

    step(lru);
    link = find(lru, key);
    n = *link;
    if (n == NULL)
        return NULL;
    if (n->expires_ms <= now_ms) {
        drop(lru, link, n);
        return NULL;
    }
    touch(lru, n);
    return n;
}

bool
cache_lru_remove(struct cache_lru *lru, const struct cache_key *key)
{
    struct cache_lru_node **link;

    step(lru);
    link = find(lru, key);
    if (*link == NULL)
        return false;
    drop(lru, link, *link);
    return true;
}

size_t
cache_lru_remove_if(struct cache_lru *lru,
                    bool (*match)(const struct cache_lru_node *node, void *arg), void *arg)
{
    struct cache_lru_node *n = lru->tail;
    size_t removed = 0;

    while (n != NULL) {
        struct cache_lru_node *cur = n;

        n = n->prev; /* read before cur may be freed */
        if (match(cur, arg)) {
            drop(lru, NULL, cur);
            removed++;
        }
    }
    return removed;
}

uint32_t
cache_lru_expire(struct cache_lru *lru, uint64_t now_ms, uint32_t max_checks)
{
    struct cache_lru_node *n = lru->tail;
    uint32_t removed = 0;

    for (; n != NULL && max_checks > 0; max_checks--) {
        struct cache_lru_node *cur = n;

        n = n->prev; /* the next newer one, read before cur may be freed */
        if (cur->expires_ms <= now_ms) {
            drop(lru, NULL, cur);
            removed++;
        }
    }
    return removed;
}

uint32_t
cache_lru_set_budget(struct cache_lru *lru, size_t budget)
{
    lru->budget = budget;
    return shed(lru, NULL);
}

size_t
cache_lru_bytes(const struct cache_lru *lru)
{
    return lru->bytes;
}

size_t
cache_lru_count(const struct cache_lru *lru)
{
    return lru->count;
}

size_t
cache_lru_overhead(void)
{
    return sizeof(struct cache_lru_node *);
}
