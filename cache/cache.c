/*
 * cache/cache.c: the door between the proxy and the cache (see cache.h).
 * Owns the read path: deciding what a read depends on, its key, the
 * in-process tier (an LRU of stored values, cache/value.c), asking the
 * Redis tier, storing a miss's reply when its generations held, the
 * pending read's life, resolving the per-namespace settings (include and
 * exclude lists, TTL overrides) into each namespace's TTL, and the
 * counters. The rooms it calls: policy.c (cacheable or not), key.c (key,
 * digest), deps.c (the shared dependency snapshots), value.c (stored
 * values), coalesce.c (identical reads in flight), inval.c (everything a
 * write, a drop or another proxy's bump does), rules.c (namespace lists),
 * redis.c (the shared tier). Decides nothing about the wire: the proxy
 * hands it checked documents and whole reply messages, and writes hits
 * out itself.
 *
 * Validity: an entry's snapshot records every generation it was filled
 * under (its namespaces, their databases, its principal, the whole cache).
 * A hit is served only if all are unchanged, its TTL has not passed, and
 * its key and digest equal the request's (key.h: why that is enough). A
 * fill is stored only if the generations read at lookup are still current
 * when the reply arrives (cache_inval_fill_allowed).
 */
#include "config.h"

#include "cache/cache.h"

#include "cache/coalesce.h"
#include "cache/deps.h"
#include "cache/lru.h"
#include "cache/rules.h"
#include "conf/clock.h"
#include "conf/random.h"

#include <event2/event.h>
#include <string.h>

/*
 * A read looked up and not yet over: what it depends on, its key and
 * material, and its place among coalescing and Redis waits. Made by
 * cache_lookup (MISS and WAIT), freed by cache_pending_free. A lookup
 * starts one on its stack and moves it to the heap (keep_pending) only
 * when the read is not answered from the LRU at once: a hit allocates
 * nothing.
 */
struct cache_pending {
    struct cache_key key;
    uint64_t digest;
    struct cache_key_material material;
    struct cache_gen_rec *deps[CACHE_MAX_DEPS]; /* each held until release_deps */
    uint64_t snapshot[CACHE_MAX_DEPS];          /* their generations at the lookup */
    uint32_t n_deps;
    struct cache_gen_rec *ns; /* the command's own namespace (deps[0]; statistics) */
    int64_t ttl_ms;
    uint64_t looked_up_ms; /* the lookup's clock: a read begun in a write's grace is not stored */
    struct cache_inflight *inflight; /* identical reads wait on this one */
    /* the Redis tier's view, for the fill */
    struct cache_redis_gen rgens[CACHE_MAX_DEPS];
    bool redis_fill;
    uint64_t redis_epoch;
    struct cache_wait *redis_wait;
    uint64_t tag; /* the caller's (cache_pending_set_tag), kept with the stored value */
};

/*
 * A namespace record found by a lookup, remembered by the raw bytes of the
 * $db and collection it was found from (the same bytes give the same
 * "db.coll" text, so the same record). It holds no reference: it is good
 * only while the generation table has freed no record since it was taken
 * (cache_gen_forgotten unchanged; records are freed nowhere else), and the
 * record was then in the table, the one record of its name.
 */
#define NS_MEMO_SLOTS 8
#define NS_MEMO_ROOM 48
struct ns_memo {
    struct cache_gen_rec *rec; /* NULL: empty */
    uint64_t forgotten;        /* cache_gen_forgotten when rec was found */
    uint32_t db_len, coll_len; /* the raw parts, db then coll, in bytes */
    char bytes[NS_MEMO_ROOM];
};

struct cache {
    bool enabled;
    size_t max_entry;
    int64_t ttl_ms;
    uint32_t conf_version;
    struct cache_rules include, exclude, ttl_overrides;
    struct cache_key_secret secret;
    struct cache_lru *lru;
    struct cache_gen *gen;
    struct cache_deps_table *deps;   /* the stored values' dependency snapshots */
    struct cache_coalesce *coalesce; /* identical reads in flight */
    struct cache_inval_ctx *inval;   /* writes, drops, remote bumps */
    struct event_base *base;
    int64_t coalesce_wait_ms;
    int64_t write_grace_ms;
    struct cache_redis *redis;   /* the shared tier, or NULL */
    bool redis_was_down;         /* in-process entries are dropped when Redis comes back */
    uint64_t counters[CACHE_CTR_COUNT];
    uint64_t bypass[CACHE_BYPASS_COUNT];
    /* The namespace labels of /metrics (cache_namespaces_labelled): sticky, at
     * most the largest metrics_namespaces asked for (<= CACHE_NS_LABELS_MAX). */
    struct cache_ns_label *labels;
    size_t n_labels;
    struct cache_ns_stats last_other; /* "other" as last rendered */
    struct ns_memo ns_memo[NS_MEMO_SLOTS]; /* the last lookups' namespace records (ns_record) */
};

/*
 * A namespace given a label: its record is held (never forgotten, so its
 * counts only grow) and its labelled value is the record's counts less
 * start (what it had counted before the label, and is still counted in
 * "other" so that "other" never steps down).
 */
struct cache_ns_label {
    struct cache_gen_rec *rec;
    struct cache_ns_stats start;
};

/* ---- namespace settings ------------------------------------------------------ */

/* The TTL for namespace record rec (its name is "n:db.coll"): 0 means not cached. */
static int64_t
ns_ttl(struct cache *cache, struct cache_gen_rec *rec)
{
    const char *ns = rec->name + 2;
    size_t len = rec->name_len - 2;
    const struct cache_rule *rule;

    if (rec->conf_version == cache->conf_version)
        return rec->ttl_ms;
    rec->conf_version = cache->conf_version;
    rec->ttl_ms = cache->ttl_ms;
    if (cache->include.n && !cache_rules_match(&cache->include, ns, len))
        rec->ttl_ms = 0;
    else if (cache_rules_match(&cache->exclude, ns, len))
        rec->ttl_ms = 0;
    else if ((rule = cache_rules_match(&cache->ttl_overrides, ns, len)))
        rec->ttl_ms = rule->ttl_ms;
    return rec->ttl_ms;
}

/* ---- life cycle -------------------------------------------------------------- */

static bool
apply_conf(struct cache *cache, const struct conf *conf, bson_error_t *error)
{
    struct cache_rules include, exclude, ttls;

    if (!cache_rules_parse(&include, conf->cache_include, false, "cache_include", error))
        return false;
    if (!cache_rules_parse(&exclude, conf->cache_exclude, false, "cache_exclude", error)) {
        cache_rules_clear(&include);
        return false;
    }
    if (!cache_rules_parse(&ttls, conf->cache_ttl_overrides, true, "cache_ttl_overrides", error)) {
        cache_rules_clear(&include);
        cache_rules_clear(&exclude);
        return false;
    }
    cache_rules_clear(&cache->include);
    cache_rules_clear(&cache->exclude);
    cache_rules_clear(&cache->ttl_overrides);
    cache->include = include;
    cache->exclude = exclude;
    cache->ttl_overrides = ttls;
    if (cache->enabled && !conf->cache && !cache->redis) {
        /* Turned off without a Redis tier: the proxy will classify no
         * command (proxy/lookup.c), so nothing kept could be told stale:
         * drop it all, and bump "*" so that no read in flight is stored. */
        struct cache_write_wait *wait;
        size_t dropped;

        (void)cache_inval_drop(cache->inval, NULL, 0, (uint64_t)conf_clock_ms(), NULL, NULL,
                               &wait, &dropped);
    }
    cache->enabled = conf->cache;
    cache->max_entry = (size_t)conf->cache_max_entry_bytes;
    cache->ttl_ms = conf->cache_ttl;
    cache->write_grace_ms = conf->cache_write_grace;
    if (cache->inval)
        cache_inval_set_grace(cache->inval, cache->write_grace_ms);
    cache->coalesce_wait_ms = conf->cache_coalesce_wait;
    cache->conf_version++;
    if (cache->lru)
        cache->counters[CACHE_CTR_evictions] +=
            cache_lru_set_budget(cache->lru, (size_t)conf->cache_memory);
    return true;
}

/* A secret for this process alone, when none is configured. */
static void
random_secret(struct cache_key_secret *secret)
{
    char text[65];
    uint8_t raw[32];

    if (!conf_random_bytes(raw, sizeof raw)) {
        /* No kernel randomness: an ObjectId (time, host, counter) is still unique. */
        bson_oid_t oid;

        bson_oid_init(&oid, NULL);
        memset(raw, 0, sizeof raw);
        memcpy(raw, oid.bytes, sizeof oid.bytes);
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(text + 2 * i, 3, "%02x", raw[i]);
    cache_key_secret_init(secret, text);
}

/*
 * What the stored values hold in common beyond their own charge: the
 * dependency snapshots and the generation records held. The budget counts
 * it (cache_lru_set_shared), so a flood of entries that share nothing (one
 * namespace each) is evicted for what it really holds, not 80 bytes each.
 */
static size_t
shared_bytes(void *arg)
{
    const struct cache *cache = arg;

    return cache_deps_bytes(cache->deps) + cache_gen_held_bytes(cache->gen);
}

struct cache *
cache_new(const struct conf *conf, struct event_base *base, bson_error_t *error)
{
    struct cache *cache = bson_malloc0(sizeof *cache);

    cache->base = base;
    if (!apply_conf(cache, conf, error)) {
        bson_free(cache);
        return NULL;
    }
    if (conf->cache_key_secret && conf->cache_key_secret[0])
        cache_key_secret_init(&cache->secret, conf->cache_key_secret);
    else
        random_secret(&cache->secret);
    cache->lru = cache_lru_new((size_t)conf->cache_memory, cache_value_lru_release,
                               cache_value_lru_charge);
    cache->gen = cache_gen_new();
    cache->deps = cache_deps_table_new();
    cache_lru_set_shared(cache->lru, shared_bytes, cache);
    cache->coalesce = cache_coalesce_new(base);
    if (conf->redis && conf->redis[0]) {
        cache->redis = cache_redis_new(base, conf, error);
        if (!cache->redis) {
            cache_destroy(cache);
            return NULL;
        }
    }
    cache->inval = cache_inval_new(cache->gen, cache->lru, cache->redis, cache->base);
    cache_inval_set_grace(cache->inval, cache->write_grace_ms);
    if (cache->redis)
        cache_redis_on_invalidation(cache->redis, cache_inval_remote, cache->inval);
    return cache;
}

bool
cache_reconfigure(struct cache *cache, const struct conf *conf, bson_error_t *error)
{
    if (!apply_conf(cache, conf, error))
        return false;
    if (cache->redis)
        cache_redis_reconfigure(cache->redis, conf);
    return true;
}

void
cache_destroy(struct cache *cache)
{
    if (!cache)
        return;
    cache_redis_destroy(cache->redis);
    /* Clients (and so pendings, waits and proxy cursors) are gone before the
     * cache is; values (their snapshots) and write sets release their
     * records before the table goes. */
    cache_lru_destroy(cache->lru);
    cache_inval_destroy(cache->inval);
    cache_coalesce_destroy(cache->coalesce);
    cache_deps_table_destroy(cache->deps);
    for (size_t i = 0; i < cache->n_labels; i++)
        cache_gen_unref(cache->labels[i].rec);
    bson_free(cache->labels);
    cache_gen_destroy(cache->gen);
    cache_rules_clear(&cache->include);
    cache_rules_clear(&cache->exclude);
    cache_rules_clear(&cache->ttl_overrides);
    bson_free(cache);
}

/* ---- reads -------------------------------------------------------------------- */

/* p holds rec (cache_gen_ref) until release_deps. */
static void
add_dep(struct cache_pending *p, struct cache_gen_rec *rec)
{
    for (uint32_t i = 0; i < p->n_deps; i++)
        if (p->deps[i] == rec)
            return;
    cache_gen_ref(rec);
    p->deps[p->n_deps] = rec;
    p->snapshot[p->n_deps] = rec->value;
    p->n_deps++;
}

static void
release_deps(struct cache_pending *p)
{
    for (uint32_t i = 0; i < p->n_deps; i++)
        cache_gen_unref(p->deps[i]);
    p->n_deps = 0;
    p->ns = NULL;
}

/* True when no generation the miss depends on moved since its lookup. */
static bool
still_current(struct cache *cache, const struct cache_pending *p)
{
    if (cache_inval_fill_allowed(p->deps, p->snapshot, p->n_deps, p->looked_up_ms))
        return true;
    cache->counters[CACHE_CTR_fills_refused_generation]++;
    return false;
}

/*
 * The dependency snapshot of a value for miss p: its records at the
 * lookup's generations and, when vouched (the Redis tier gave the shared
 * generations at epoch), those too. One reference.
 */
static struct cache_deps *
deps_for(struct cache *cache, const struct cache_pending *p, bool vouched, uint64_t epoch)
{
    uint64_t rgens[CACHE_MAX_DEPS];

    for (uint32_t i = 0; vouched && i < p->n_deps; i++)
        rgens[i] = p->rgens[i].value;
    return cache_deps_intern(cache->deps, p->deps, p->snapshot, vouched ? rgens : NULL,
                             p->n_deps, epoch, p->tag);
}

/* Puts v (the caller's reference is kept) in the LRU and hands it to waiting reads. */
static void
value_insert(struct cache *cache, struct cache_pending *p, struct cache_value *v)
{
    uint32_t evicted = 0;

    if (p->inflight) /* waiting reads get this reply even if the LRU refuses it */
        cache_coalesce_stored(p->inflight, v);
    if (cache->redis && !cache_deps_redis_vouched(cache_value_deps(v)))
        return; /* a copy Redis never vouched for could not be checked: not kept */
    cache_value_ref(v);
    if (cache_lru_put(cache->lru, &p->key, cache_value_node(v),
                      (uint64_t)conf_clock_ms() + (uint64_t)p->ttl_ms, &evicted)) {
        cache->counters[CACHE_CTR_fills]++;
        p->ns->fills++;
    }
    cache->counters[CACHE_CTR_evictions] += evicted;
}

/* The shared tier answered a lookup (see redis_lookup). */
static void
redis_answer(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
             const uint8_t *material, size_t material_len, uint64_t epoch, int64_t ttl_left_ms)
{
    struct cache_wait *w = arg;
    struct cache *cache = w->ctx;
    struct cache_pending *p = w->pending;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;
    struct cache_value *v = NULL;

    w->op = NULL; /* answered: nothing to cancel */
    cache_coalesce_wait_free(w);
    if (status == CACHE_REDIS_HIT &&
        (material_len != p->material.len ||
         memcmp(material, p->material.data, material_len) != 0)) {
        cache->counters[CACHE_CTR_collisions]++;
        status = CACHE_REDIS_MISS;
    }
    if (status == CACHE_REDIS_HIT && still_current(cache, p)) {
        /* Kept in process too (the next hit needs no round trip), no longer
         * than the stored value lives: its TTL counts from its fill. */
        if (ttl_left_ms < p->ttl_ms)
            p->ttl_ms = ttl_left_ms;
        v = cache_value_new(reply, reply_len, p->digest, deps_for(cache, p, true, epoch));
        value_insert(cache, p, v);
        p->ns->hits++;
        cache->counters[CACHE_CTR_hits]++;
        cb(cb_arg, CACHE_HIT, v);
        return;
    }
    /* A miss: the fill goes to Redis only when Redis gave the snapshot. */
    p->redis_fill = status == CACHE_REDIS_MISS;
    p->redis_epoch = epoch;
    p->ns->misses++;
    cache->counters[CACHE_CTR_misses]++;
    cb(cb_arg, CACHE_MISS, NULL);
}

/*
 * Whether Redis's answer to a check (status, the current values in gens,
 * epoch) confirms deps: its generations in Redis and in process have not
 * moved.
 */
static bool
redis_confirms(const struct cache_deps *deps, enum cache_redis_status status,
               const struct cache_redis_gen *gens, uint32_t n, uint64_t epoch)
{
    uint64_t rgens[CACHE_MAX_DEPS];

    if (status != CACHE_REDIS_MISS)
        return false;
    for (uint32_t i = 0; i < n; i++)
        rgens[i] = gens[i].value;
    return cache_deps_redis_same(deps, rgens, n, epoch) && cache_deps_current(deps);
}

/* Redis answered the check of an in-process copy (see redis_check). */
static void
redis_checked(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
              const uint8_t *material, size_t material_len, uint64_t epoch, int64_t ttl_left_ms)
{
    struct cache_wait *w = arg;
    struct cache *cache = w->ctx;
    struct cache_pending *p = w->pending;
    struct cache_value *v = w->value;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;

    (void)reply;
    (void)reply_len;
    (void)material;
    (void)material_len;
    (void)ttl_left_ms; /* a check reads no value */
    w->op = NULL;
    w->value = NULL; /* ours now */
    cache_coalesce_wait_free(w);
    if (redis_confirms(cache_value_deps(v), status, p->rgens, p->n_deps, epoch)) {
        p->ns->hits++;
        cache->counters[CACHE_CTR_hits]++;
        cb(cb_arg, CACHE_HIT, v);
        return;
    }
    /* Moved on elsewhere: the copy goes; the fresh generations are the fill's snapshot. */
    cache->counters[CACHE_CTR_stale_entries_dropped]++;
    cache_lru_remove(cache->lru, &p->key);
    cache_value_unref(v);
    p->redis_fill = status == CACHE_REDIS_MISS;
    p->redis_epoch = epoch;
    p->ns->misses++;
    cache->counters[CACHE_CTR_misses]++;
    cb(cb_arg, CACHE_MISS, NULL);
}

static void
redis_gens_from(struct cache_pending *p)
{
    for (uint32_t i = 0; i < p->n_deps; i++) {
        p->rgens[i].name = p->deps[i]->name;
        p->rgens[i].name_len = p->deps[i]->name_len;
        p->rgens[i].value = 0;
    }
}

/* A wait for the Redis tier's answer about p. */
static struct cache_wait *
redis_wait_new(struct cache *cache, struct cache_pending *p, cache_wait_cb cb, void *arg)
{
    struct cache_wait *w = cache_coalesce_wait_new(cb, arg);

    w->ctx = cache;
    w->pending = p;
    return w;
}

/* The wait's Redis op is on its way: p points at it until either is over. */
static void
redis_wait_start(struct cache_pending *p, struct cache_wait *w, struct cache_wait **wait)
{
    w->backref = &p->redis_wait;
    p->redis_wait = w;
    *wait = w;
}

/* Asks Redis whether in-process copy v may be served. True when cb will say. */
static bool
redis_check(struct cache *cache, struct cache_pending *p, struct cache_value *v, cache_wait_cb cb,
            void *arg, struct cache_wait **wait)
{
    struct cache_wait *w;

    redis_gens_from(p);
    w = redis_wait_new(cache, p, cb, arg);
    w->op = cache_redis_check(cache->redis, p->rgens, p->n_deps, redis_checked, w);
    if (!w->op) {
        cache_coalesce_wait_free(w);
        return false;
    }
    cache_value_ref(v);
    w->value = v;
    redis_wait_start(p, w, wait);
    return true;
}

/*
 * An in-process miss with the shared tier on: ask Redis, in one round trip,
 * for the value and the current generations. True when the answer will come
 * through cb (then *wait is its handle).
 */
static bool
redis_lookup(struct cache *cache, struct cache_pending *p, cache_wait_cb cb, void *arg,
             struct cache_wait **wait)
{
    struct cache_wait *w;

    redis_gens_from(p);
    w = redis_wait_new(cache, p, cb, arg);
    w->op = cache_redis_lookup(cache->redis, &p->key, p->rgens, p->n_deps, redis_answer, w);
    if (!w->op) {
        cache_coalesce_wait_free(w);
        return false;
    }
    redis_wait_start(p, w, wait);
    return true;
}

void
cache_wait_cancel(struct cache_wait *w)
{
    cache_coalesce_wait_free(w);
}

const char *
cache_bypass_name(int reason)
{
    if (reason >= 0 && reason < CACHE_POLICY_REASON_COUNT)
        return cache_policy_reason_name((enum cache_policy_reason)reason);
    switch (reason) {
    case CACHE_BYPASS_OFF:
        return "cache_off";
    case CACHE_BYPASS_EXCLUDED:
        return "namespace_excluded";
    case CACHE_BYPASS_AUTH:
        return "auth_state";
    case CACHE_BYPASS_REDIS:
        return "redis_unavailable";
    default:
        return "unknown";
    }
}

/* A read not cached: counted by reason, which req keeps for the caller's log; p (if any) goes. */
static enum cache_outcome
bypass(struct cache *cache, struct cache_request *req, struct cache_pending *p, int reason)
{
    cache->bypass[reason]++;
    cache->counters[CACHE_CTR_bypassed]++;
    req->bypass_reason = reason;
    cache_pending_free(cache, p);
    return CACHE_BYPASS;
}

/*
 * "db.coll" into buf, each part up to its first NUL (as the writes' "%.*s"
 * names it); its length, or 0 when it does not fit with a NUL in size bytes.
 */
static size_t
ns_text(char *buf, size_t size, const struct cache_ns_ref *ref)
{
    size_t db_len = strnlen(ref->db, ref->db_len), coll_len = strnlen(ref->coll, ref->coll_len);

    if (db_len + 1 + coll_len >= size)
        return 0;
    memcpy(buf, ref->db, db_len);
    buf[db_len] = '.';
    memcpy(buf + db_len + 1, ref->coll, coll_len);
    buf[db_len + 1 + coll_len] = '\0';
    return db_len + 1 + coll_len;
}

/*
 * The namespace record ("n:db.coll") of ref, or NULL when its text does not
 * fit (ns_text). A lookup's namespace is usually one of the last few: its
 * record is taken from the memo (two short compares) rather than formatted
 * and hashed again.
 */
static struct cache_gen_rec *
ns_record(struct cache *cache, const struct cache_ns_ref *ref)
{
    uint32_t db_len = ref->db_len, coll_len = ref->coll_len;
    struct ns_memo *m = &cache->ns_memo[(db_len * 7 + coll_len +
                                         (coll_len ? (uint8_t)ref->coll[coll_len - 1] : 0)) &
                                        (NS_MEMO_SLOTS - 1)];
    struct cache_gen_rec *rec;
    char ns[512];
    size_t n;

    if (m->rec && m->db_len == db_len && m->coll_len == coll_len &&
        m->forgotten == cache_gen_forgotten(cache->gen) && memcmp(m->bytes, ref->db, db_len) == 0 &&
        memcmp(m->bytes + db_len, ref->coll, coll_len) == 0)
        return m->rec;
    n = ns_text(ns, sizeof ns, ref);
    if (n == 0)
        return NULL;
    rec = cache_gen_get(cache->gen, 'n', ns, n);
    if ((size_t)db_len + coll_len <= sizeof m->bytes) {
        m->rec = rec;
        m->forgotten = cache_gen_forgotten(cache->gen); /* after the get: it may free idle ones */
        m->db_len = db_len;
        m->coll_len = coll_len;
        memcpy(m->bytes, ref->db, db_len);
        memcpy(m->bytes + db_len, ref->coll, coll_len);
    }
    return rec;
}

/*
 * A read not answered at once: local (on the lookup's stack: its key,
 * digest, namespace record and TTL) moves to the heap, with the key
 * material built now (a hit never builds it: coalescing and the Redis tier
 * compare it), and takes every generation the read depends on. NULL when
 * the read is bypassed after all (counted; req says why).
 */
static struct cache_pending *
keep_pending(struct cache *cache, struct cache_pending *local, const struct cache_read *read,
             struct cache_request *req)
{
    struct cache_pending *p = bson_malloc0(sizeof *p);
    char ns[512];
    size_t n;

    p->key = local->key;
    p->digest = local->digest;
    p->ns = local->ns;
    p->ttl_ms = local->ttl_ms;
    p->looked_up_ms = local->looked_up_ms;
    p->deps[0] = local->deps[0];
    p->snapshot[0] = local->snapshot[0];
    p->n_deps = local->n_deps; /* the reference moves with it */
    local->n_deps = 0;
    cache_key_material_build(req->principal, req->db, read->ns[0].coll, read->ns[0].coll_len,
                             req->body, req->cmd, &p->material);
    for (uint32_t i = 0; i < read->n_ns; i++) {
        const struct cache_ns_ref *ref = &read->ns[i];

        if (i > 0) {
            n = ns_text(ns, sizeof ns, ref);
            if (n == 0) {
                bypass(cache, req, p, CACHE_POLICY_NO_COLLECTION);
                return NULL;
            }
            add_dep(p, cache_gen_get(cache->gen, 'n', ns, n));
        }
        add_dep(p, cache_gen_get(cache->gen, 'd', ref->db, ref->db_len));
    }
    add_dep(p, cache_gen_get(cache->gen, 'u', req->principal, strlen(req->principal)));
    add_dep(p, cache_gen_global(cache->gen));
    return p;
}

enum cache_outcome
cache_lookup(struct cache *cache, struct cache_request *req, struct cache_pending **pending,
             struct cache_value **hit, cache_wait_cb cb, void *arg, struct cache_wait **wait)
{
    struct cache_inflight *f;
    struct cache_read read;
    enum cache_policy_reason reason;
    struct cache_lru_node *node;
    struct cache_pending local, *p = NULL;

    *hit = NULL;
    *wait = NULL;
    *pending = NULL;
    req->bypass_reason = 0;
    if (!cache->enabled) {
        /* Not counted here: see cache_bypass_count. */
        req->bypass_reason = CACHE_BYPASS_OFF;
        return CACHE_BYPASS;
    }
    reason = cache_policy_request(req->body, req->cmd, req->db, req->n_sequences, &read);
    if (reason != CACHE_POLICY_OK)
        return bypass(cache, req, NULL, (int)reason);
    if (!req->principal)
        return bypass(cache, req, NULL, CACHE_BYPASS_AUTH);
    if (cache->redis) {
        /* Without the shared tier (and its invalidations) nothing cached is
         * trusted: other proxies' writes are not being heard. */
        if (!cache_redis_usable(cache->redis) || !cache_redis_subscribed(cache->redis)) {
            cache->redis_was_down = true;
            return bypass(cache, req, NULL, CACHE_BYPASS_REDIS);
        }
        if (cache->redis_was_down) {
            cache->redis_was_down = false;
            cache_inval_everything(cache->inval);
        }
    }
    /* The command's own namespace first: its TTL decides whether the read
     * is cached at all, and its record counts the hit. */
    local.ns = ns_record(cache, &read.ns[0]);
    if (!local.ns)
        return bypass(cache, req, NULL, CACHE_POLICY_NO_COLLECTION);
    local.n_deps = 0;
    local.ttl_ms = ns_ttl(cache, local.ns);
    if (local.ttl_ms <= 0)
        return bypass(cache, req, NULL, CACHE_BYPASS_EXCLUDED);
    add_dep(&local, local.ns); /* held: a stale entry's removal may free idle records */
    cache_key_build(&cache->secret, req->principal, req->db, read.ns[0].coll, read.ns[0].coll_len,
                    req->body, req->cmd, NULL, &local.key, &local.digest);
    local.looked_up_ms = (uint64_t)(req->now_ms > 0 ? req->now_ms : conf_clock_ms());
    node = cache_lru_get(cache->lru, &local.key, local.looked_up_ms);
    if (node) {
        struct cache_value *v = cache_value_of_node(node);
        const struct cache_deps *deps = cache_value_deps(v);

        if (cache_value_digest(v) != local.digest) {
            /* Another query's entry under the same key: never served. */
            cache->counters[CACHE_CTR_collisions]++;
        } else if (!cache_deps_current(deps)) {
            cache->counters[CACHE_CTR_stale_entries_dropped]++;
            cache_lru_remove(cache->lru, &local.key);
        } else if (!cache->redis) {
            cache_value_ref(v);
            *hit = v;
            local.ns->hits++;
            cache->counters[CACHE_CTR_hits]++;
            release_deps(&local);
            return CACHE_HIT;
        } else if (cb && cache_deps_redis_vouched(deps)) {
            /*
             * With the shared tier, the truth about generations is in Redis:
             * the in-process copy is served only once Redis confirms that no
             * proxy has moved them (a bump may still be on its way by pub/sub).
             */
            p = keep_pending(cache, &local, &read, req);
            if (!p)
                return CACHE_BYPASS;
            if (redis_check(cache, p, v, cb, arg, wait)) {
                *pending = p;
                return CACHE_WAIT;
            }
        }
    }
    if (!p)
        p = keep_pending(cache, &local, &read, req);
    if (!p)
        return CACHE_BYPASS;
    *pending = p;
    if (cache->coalesce_wait_ms > 0 && cb) {
        f = cache_coalesce_find(cache->coalesce, &p->key, p->material.data, p->material.len);
        if (f) {
            *wait = cache_coalesce_follow(cache->coalesce, f, cache->coalesce_wait_ms, cb, arg);
            return CACHE_WAIT;
        }
        p->inflight =
            cache_coalesce_lead(cache->coalesce, &p->key, p->material.data, p->material.len);
    }
    if (cache->redis && cb && redis_lookup(cache, p, cb, arg, wait))
        return CACHE_WAIT;
    p->ns->misses++;
    cache->counters[CACHE_CTR_misses]++;
    return CACHE_MISS;
}

void
cache_pending_set_tag(struct cache_pending *p, uint64_t tag)
{
    p->tag = tag;
}

void
cache_store(struct cache *cache, struct cache_pending *p, const uint8_t *reply, size_t len,
            const bson_t *reply_body)
{
    enum cache_policy_reason reason;
    struct cache_value *v;
    bool vouched = cache->redis && p->redis_fill;

    reason = cache_policy_reply(reply_body, len, cache->max_entry);
    if (reason != CACHE_POLICY_OK) {
        cache->bypass[reason]++;
        cache->counters[CACHE_CTR_fills_refused_reply]++;
        return;
    }
    if (vouched)
        cache_redis_fill(cache->redis, &p->key, p->material.data, p->material.len, reply, len,
                         p->rgens, p->n_deps, p->redis_epoch, p->ttl_ms);
    if (!still_current(cache, p))
        return;
    v = cache_value_new(reply, len, p->digest, deps_for(cache, p, vouched, p->redis_epoch));
    value_insert(cache, p, v);
    cache_value_unref(v);
}

struct cache_value *
cache_store_docs(struct cache *cache, struct cache_pending *p, const uint8_t *docs,
                 size_t docs_len, uint32_t n_docs, const char *ns, bool complete)
{
    struct cache_value *v =
        cache_value_new_docs(docs, docs_len, n_docs, ns, p->digest, deps_for(cache, p, false, 0));

    if (!v)
        return NULL;
    if (!complete || docs_len > cache->max_entry) {
        cache->bypass[complete ? CACHE_POLICY_REPLY_TOO_LARGE : CACHE_POLICY_REPLY_OPEN_CURSOR]++;
        cache->counters[CACHE_CTR_fills_refused_reply]++;
    } else if (still_current(cache, p)) {
        value_insert(cache, p, v);
    }
    return v;
}

/*
 * Reads that followed a leader whose reply was stored, with the shared tier
 * on, waiting for Redis to confirm the value's generations (see
 * followers_finish). One Redis check for all of them; never cancelled (the
 * tier calls back once, FAILED at its destroy at the latest).
 */
struct followers {
    struct cache *cache;
    struct cache_inflight *f;  /* detached: no read joins it any more */
    struct cache_value *value; /* one reference */
    struct cache_gen_rec *ns;  /* held: its hits are counted */
    struct cache_redis_gen rgens[CACHE_MAX_DEPS]; /* names: the value's records' */
    uint32_t n;
};

/* Followers answered: with the value when hit, else sent to the server. */
static void
followers_end(struct followers *g, bool hit)
{
    uint64_t hits = cache_coalesce_answer(g->f, hit ? g->value : NULL);

    g->cache->counters[CACHE_CTR_hits] += hits;
    g->ns->hits += hits;
    cache_value_unref(g->value);
    cache_gen_unref(g->ns);
    bson_free(g);
}

static void
followers_checked(void *arg, enum cache_redis_status status, const uint8_t *reply,
                  size_t reply_len, const uint8_t *material, size_t material_len, uint64_t epoch,
                  int64_t ttl_left_ms)
{
    struct followers *g = arg;

    (void)reply;
    (void)reply_len;
    (void)material;
    (void)material_len;
    (void)ttl_left_ms; /* a check reads no value */
    followers_end(g, redis_confirms(cache_value_deps(g->value), status, g->rgens, g->n, epoch));
}

/*
 * The leader p's miss is over and f's followers wait. In process alone they
 * get what it stored (a write through this proxy since would have refused
 * the fill). With the shared tier, a follower came after the leader was
 * sent, and a write acknowledged through another proxy since is in Redis
 * before this proxy hears of it by pub/sub: as an in-process copy is
 * (redis_check), the value is served only once Redis confirms that its
 * generations have not moved; otherwise the followers go to the server.
 */
static void
followers_finish(struct cache *cache, struct cache_pending *p, struct cache_inflight *f)
{
    struct cache_value *v = cache_coalesce_value(f);
    struct followers *g;
    uint64_t hits;

    if (!cache->redis || !v || !cache_coalesce_waited(f)) {
        hits = cache_coalesce_finish(cache->coalesce, f);
        cache->counters[CACHE_CTR_hits] += hits;
        p->ns->hits += hits;
        return;
    }
    cache_coalesce_detach(cache->coalesce, f);
    g = bson_malloc0(sizeof *g);
    g->cache = cache;
    g->f = f;
    cache_value_ref(v);
    g->value = v;
    cache_gen_ref(p->ns);
    g->ns = p->ns;
    if (!cache_deps_redis_vouched(cache_value_deps(v))) {
        followers_end(g, false); /* nothing Redis said to compare with */
        return;
    }
    /* The names are the records' (held by the value's snapshot). */
    redis_gens_from(p);
    memcpy(g->rgens, p->rgens, p->n_deps * sizeof *g->rgens);
    g->n = p->n_deps;
    if (!cache_redis_check(cache->redis, g->rgens, g->n, followers_checked, g))
        followers_end(g, false);
}

void
cache_pending_free(struct cache *cache, struct cache_pending *p)
{
    if (!p)
        return;
    /* A Redis wait on this read is stopped, not freed: its handle's holder
     * frees it (cache_wait_cancel), whichever of the two calls comes first. */
    if (p->redis_wait)
        cache_coalesce_wait_stop(p->redis_wait);
    if (p->inflight) {
        /* The followers answered with the stored value are hits of this namespace. */
        struct cache_inflight *f = p->inflight;

        p->inflight = NULL;
        followers_finish(cache, p, f);
    }
    release_deps(p);
    cache_key_material_cleanup(&p->material);
    bson_free(p);
}

/* ---- writes: the door to inval.c -------------------------------------------------- */

bool
cache_write_begin(struct cache *cache, const bson_t *body, const struct wire_cmd *cmd,
                  const char *db, const char *const *seq_ids, const uint8_t *const *seq_docs,
                  const uint32_t *seq_lens, uint32_t n_seqs, bool oneway,
                  struct cache_inval *inv)
{
    return cache_inval_write_begin(cache->inval, body, cmd, db, seq_ids, seq_docs, seq_lens,
                                   n_seqs, oneway, inv);
}

void
cache_write_end(struct cache *cache, struct cache_inval *inv)
{
    cache_inval_write_end(cache->inval, inv);
}

void
cache_write_lost(struct cache *cache, struct cache_inval *inv)
{
    cache_inval_write_lost(cache->inval, inv, (uint64_t)conf_clock_ms());
}

bool
cache_write_end_async(struct cache *cache, struct cache_inval *inv, cache_write_done_cb cb,
                      void *arg, struct cache_write_wait **wait)
{
    return cache_inval_write_end_async(cache->inval, inv, cb, arg, wait);
}

void
cache_write_cancel(struct cache_write_wait *wait)
{
    cache_inval_write_cancel(wait);
}

enum cache_drop_state
cache_admin_drop(struct cache *cache, const char *ns, size_t ns_len, cache_drop_done_cb cb,
                 void *arg, struct cache_write_wait **wait, size_t *dropped)
{
    return cache_inval_drop(cache->inval, ns, ns_len, (uint64_t)conf_clock_ms(), cb, arg, wait,
                            dropped);
}

/* ---- statistics --------------------------------------------------------------- */

/*
 * The most read namespaces: a bounded min-heap on reads, one pass over the
 * records; what leaves the heap or never enters it is summed as "other".
 */
struct ns_top {
    const struct cache_gen_rec **heap;
    size_t n, cap;
    struct cache_ns_stats *other;
    uint64_t n_other;
};

static uint64_t
ns_reads(const struct cache_gen_rec *rec)
{
    return rec->hits + rec->misses;
}

static void
heap_down(struct ns_top *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;

        if (l < t->n && ns_reads(t->heap[l]) < ns_reads(t->heap[min]))
            min = l;
        if (r < t->n && ns_reads(t->heap[r]) < ns_reads(t->heap[min]))
            min = r;
        if (min == i)
            return;
        {
            const struct cache_gen_rec *x = t->heap[i];

            t->heap[i] = t->heap[min];
            t->heap[min] = x;
        }
        i = min;
    }
}

static void
ns_other(struct ns_top *t, const struct cache_gen_rec *rec)
{
    t->n_other++;
#define STAT_NAMESPACE(name, kind, unit, prom, help) t->other->name += rec->name;
#include "conf/counters.def"
}

static void
ns_top_one(const struct cache_gen_rec *rec, void *arg)
{
    struct ns_top *t = arg;

    if (ns_reads(rec) == 0 && rec->invalidations == 0)
        return;
    if (t->n < t->cap) {
        size_t i = t->n++;

        t->heap[i] = rec;
        while (i > 0 && ns_reads(t->heap[(i - 1) / 2]) > ns_reads(t->heap[i])) {
            const struct cache_gen_rec *x = t->heap[i];

            t->heap[i] = t->heap[(i - 1) / 2];
            t->heap[(i - 1) / 2] = x;
            i = (i - 1) / 2;
        }
    } else if (ns_reads(rec) > ns_reads(t->heap[0])) {
        ns_other(t, t->heap[0]);
        t->heap[0] = rec;
        heap_down(t, 0);
    } else {
        ns_other(t, rec);
    }
}

void
cache_namespaces_top(struct cache *cache, size_t top, cache_ns_cb cb, void *arg,
                     struct cache_ns_stats *other, uint64_t *n_other)
{
    struct ns_top t;
    size_t n;

    memset(other, 0, sizeof *other);
    memset(&t, 0, sizeof t);
    t.cap = top ? top : 1;
    t.heap = bson_malloc(t.cap * sizeof *t.heap);
    t.other = other;
    cache_gen_foreach(cache->gen, 'n', ns_top_one, &t);
    /* Most read first: pop the min-heap from the back. */
    n = t.n;
    while (t.n > 1) {
        const struct cache_gen_rec *x = t.heap[0];

        t.heap[0] = t.heap[--t.n];
        t.heap[t.n] = x;
        heap_down(&t, 0);
    }
    for (size_t i = 0; i < n; i++) {
        const struct cache_gen_rec *rec = t.heap[i];
        struct cache_ns_stats s;

#define STAT_NAMESPACE(name, kind, unit, prom, help) s.name = rec->name;
#include "conf/counters.def"
        cb(rec->name + 2, rec->name_len - 2, &s, arg);
    }
    *n_other = t.n_other;
    bson_free(t.heap);
}

/* ---- the namespace labels of /metrics ---- */

/* The grand totals: the live "n:" records plus what the freed ones had counted. */
static void
ns_grand_one(const struct cache_gen_rec *rec, void *arg)
{
    struct cache_ns_stats *t = arg;

#define STAT_NAMESPACE(name, kind, unit, prom, help) t->name += rec->name;
#include "conf/counters.def"
}

/* Candidates for new labels: the most read namespaces not labelled yet. */
struct ns_candidates {
    struct cache *cache;
    size_t max;
    struct cache_ns_stats *other; /* grand total less the labelled values now */
};

static void
ns_candidate(const char *name, size_t name_len, const struct cache_ns_stats *s, void *arg)
{
    struct ns_candidates *c = arg;
    struct cache *cache = c->cache;
    struct cache_ns_label *l;
    struct cache_gen_rec *rec;

    (void)s;
    if (cache->n_labels >= c->max)
        return;
    /* The record exists (we are told its name from it): no record is made or freed here. */
    rec = cache_gen_get(cache->gen, 'n', name, name_len);
    for (size_t i = 0; i < cache->n_labels; i++)
        if (cache->labels[i].rec == rec)
            return;
    l = &cache->labels[cache->n_labels++];
    l->rec = rec;
    cache_gen_ref(rec);
    /* The label takes as much of the namespace's counts as "other" can give
     * without going below what it last showed; the rest stays in "other". */
#define STAT_NAMESPACE(name, kind, unit, prom, help)                                               \
    {                                                                                              \
        uint64_t room = c->other->name - cache->last_other.name;                                   \
        uint64_t give = rec->name < room ? rec->name : room;                                       \
                                                                                                   \
        l->start.name = rec->name - give;                                                          \
        c->other->name -= give;                                                                    \
    }
#include "conf/counters.def"
}

void
cache_namespaces_labelled(struct cache *cache, size_t max_labels, cache_ns_cb cb, void *arg,
                          struct cache_ns_stats *other)
{
    struct cache_gen_ns_sums forgotten;
    struct cache_ns_stats unused;
    uint64_t n_unused;

    if (max_labels < 1)
        max_labels = 1;
    if (max_labels > CACHE_NS_LABELS_MAX)
        max_labels = CACHE_NS_LABELS_MAX;
    if (!cache->labels)
        cache->labels = bson_malloc0(CACHE_NS_LABELS_MAX * sizeof *cache->labels);
    memset(other, 0, sizeof *other);
    cache_gen_foreach(cache->gen, 'n', ns_grand_one, other);
    cache_gen_forgotten_ns(cache->gen, &forgotten);
#define STAT_NAMESPACE(name, kind, unit, prom, help) other->name += forgotten.name;
#include "conf/counters.def"
    for (size_t i = 0; i < cache->n_labels; i++) {
        const struct cache_ns_label *l = &cache->labels[i];

#define STAT_NAMESPACE(name, kind, unit, prom, help) other->name -= l->rec->name - l->start.name;
#include "conf/counters.def"
    }
    if (cache->n_labels < max_labels) {
        struct ns_candidates c = {cache, max_labels, other};

        cache_namespaces_top(cache, max_labels, ns_candidate, &c, &unused, &n_unused);
    }
    for (size_t i = 0; i < cache->n_labels; i++) {
        const struct cache_ns_label *l = &cache->labels[i];
        struct cache_ns_stats s;

#define STAT_NAMESPACE(name, kind, unit, prom, help) s.name = l->rec->name - l->start.name;
#include "conf/counters.def"
        cb(l->rec->name + 2, l->rec->name_len - 2, &s, arg);
    }
    cache->last_other = *other;
}

bool
cache_enabled(const struct cache *cache)
{
    return cache->enabled;
}

const struct cache_redis *
cache_redis_tier(const struct cache *cache)
{
    return cache->redis;
}

uint64_t
cache_bypass_count(const struct cache *cache, int reason)
{
    return reason >= 0 && reason < CACHE_BYPASS_COUNT ? cache->bypass[reason] : 0;
}

size_t
cache_records(const struct cache *cache)
{
    return cache_gen_count(cache->gen);
}

uint64_t
cache_records_forgotten(const struct cache *cache)
{
    return cache_gen_forgotten(cache->gen);
}

uint64_t
cache_counter(const struct cache *cache, enum cache_counter counter)
{
    switch (counter) {
    case CACHE_CTR_entries:
        return cache_lru_count(cache->lru);
    case CACHE_CTR_bytes:
        return cache_lru_bytes(cache->lru) + cache_deps_bytes(cache->deps) +
               cache_gen_held_bytes(cache->gen);
    case CACHE_CTR_coalesced:
        return cache_coalesce_count(cache->coalesce);
    case CACHE_CTR_coalesced_timeouts:
        return cache_coalesce_timeouts(cache->coalesce);
    case CACHE_CTR_invalidations:
        return cache_inval_count(cache->inval);
    case CACHE_CTR_records:
        return cache_gen_count(cache->gen);
    case CACHE_CTR_records_forgotten:
        return cache_gen_forgotten(cache->gen);
    default:
        return cache->counters[counter];
    }
}
