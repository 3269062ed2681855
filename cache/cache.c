/*
 * cache/cache.c: the door between the proxy and the cache (see cache.h).
 * Owns the in-process tier (an LRU of immutable, reference-counted stored
 * replies), the generation table, resolving the per-namespace settings
 * (include and exclude lists, TTL overrides) into each namespace's TTL,
 * bumping what a write touches (again at a transaction's end), and the
 * counters. Parsing and matching the namespace lists is rules.c's; which
 * records a transaction wrote, by session, is txn.c's. Decides nothing
 * about the wire: the proxy hands it checked documents and whole reply
 * messages, and writes hits out itself.
 *
 * Validity: an entry records every generation it was filled under (its
 * namespaces, their databases, its principal, the whole cache). A hit is
 * served only if all are unchanged, its TTL has not passed, and its full key
 * material equals the request's. A fill is stored only if the generations
 * read at lookup are still current when the reply arrives.
 */
#include "config.h"

#include "cache/cache.h"

#include "cache/lru.h"
#include "cache/rules.h"
#include "cache/txn.h"
#include "conf/clock.h"
#include "conf/random.h"
#include "wire/frame.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cache_value {
    uint32_t refs;
    struct cache_gen_rec *deps[CACHE_MAX_DEPS];
    uint64_t gens[CACHE_MAX_DEPS];
    uint32_t n_deps;
    struct cache_gen_rec *ns;
    size_t material_len;
    size_t reply_len;
    uint8_t *material; /* inside this allocation */
    uint8_t *reply;    /* inside this allocation: a whole reply message, or for a
                        * drained cursor: n_docs + 1 offsets, the elements, the ns */
    /* With the Redis tier: the shared generations and epoch this copy is
     * valid under, checked with Redis (one small round trip) on every hit. */
    bool rvalid;
    uint64_t rgen[CACHE_MAX_DEPS];
    uint64_t repoch;
    uint64_t tag;      /* the storing miss's cache_pending.tag */
    uint32_t n_docs;   /* a drained cursor's documents; 0 for a reply message */
    bool docs;
    const uint8_t *offsets; /* n_docs + 1 uint32 element offsets, unaligned: read with memcpy */
    const uint8_t *elements; /* document i as array element "i" (type, key, document) */
    const char *cursor_ns;
};

/* A read that waits for an identical one in flight (its leader). */
struct cache_wait {
    struct cache_wait *next;
    struct cache_wait **prev;     /* NULL for a Redis lookup (not on a waiter list) */
    struct cache_inflight *owner;
    struct cache_redis_op *op;    /* a Redis lookup in flight */
    struct cache_pending *pending;
    struct cache_value *value;    /* an in-process copy being checked with Redis; one reference */
    struct cache *cache;
    struct event *timer;
    cache_wait_cb cb;
    void *arg;
};

/* A miss in flight that identical reads may wait for. */
struct cache_inflight {
    struct cache_inflight *next; /* hash chain */
    struct cache_pending *leader;
    struct cache_wait *waiters;
    struct cache_value *stored; /* what the leader's reply became, or NULL */
};

#define INFLIGHT_BUCKETS 1024

struct cache {
    bool enabled;
    size_t max_entry;
    int64_t ttl_ms;
    int64_t write_grace_ms;
    uint32_t conf_version;
    struct cache_rules include, exclude, ttl_overrides;
    struct cache_key_secret secret;
    struct cache_lru *lru;
    struct cache_gen *gen;
    struct cache_txn *txns; /* transaction write sets */
    struct event_base *base;
    int64_t coalesce_wait_ms;
    struct cache_redis *redis;   /* the shared tier, or NULL */
    bool redis_was_down;         /* in-process entries are dropped when Redis comes back */
    struct cache_inflight *inflight[INFLIGHT_BUCKETS];
    uint64_t counters[CACHE_CTR_COUNT];
    uint64_t bypass[CACHE_BYPASS_COUNT];
    /* The namespace labels of /metrics (cache_namespaces_labelled): sticky, at
     * most the largest metrics_namespaces asked for (<= CACHE_NS_LABELS_MAX). */
    struct cache_ns_label *labels;
    size_t n_labels;
    struct cache_ns_stats last_other; /* "other" as last rendered */
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

/* ---- values ---------------------------------------------------------------- */

const uint8_t *
cache_value_data(const struct cache_value *value, size_t *len)
{
    *len = value->reply_len;
    return value->reply;
}

uint64_t
cache_value_tag(const struct cache_value *value)
{
    return value->tag;
}

void
cache_value_ref(struct cache_value *value)
{
    value->refs++;
}

void
cache_value_unref(struct cache_value *value)
{
    if (!value || --value->refs > 0)
        return;
    for (uint32_t i = 0; i < value->n_deps; i++)
        cache_gen_unref(value->deps[i]);
    bson_free(value);
}

static void
lru_release(void *value)
{
    cache_value_unref(value);
}

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
    cache->enabled = conf->cache;
    cache->max_entry = (size_t)conf->cache_max_entry_bytes;
    cache->ttl_ms = conf->cache_ttl;
    cache->write_grace_ms = conf->cache_write_grace;
    cache->coalesce_wait_ms = conf->cache_coalesce_wait;
    cache->conf_version++;
    if (cache->lru)
        cache->counters[CACHE_CTR_evictions] +=
            cache_lru_set_budget(cache->lru, (size_t)conf->cache_memory);
    return true;
}

/*
 * Another proxy bumped a generation ("n:db.coll", "d:db", "u:user@db"; "*"
 * for everything): the in-process entries that depend on it must go.
 */
static void
remote_bump(void *arg, const char *name, size_t len)
{
    struct cache *cache = arg;

    if (len >= 2 && name[1] == ':' && (name[0] == 'n' || name[0] == 'd' || name[0] == 'u'))
        cache_gen_bump(cache_gen_get(cache->gen, name[0], name + 2, len - 2));
    else
        cache_gen_bump(cache_gen_global(cache->gen));
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
    cache->lru = cache_lru_new((size_t)conf->cache_memory, lru_release);
    cache->gen = cache_gen_new();
    cache->txns = cache_txn_new();
    if (conf->redis && conf->redis[0]) {
        cache->redis = cache_redis_new(base, conf, error);
        if (!cache->redis) {
            cache_destroy(cache);
            return NULL;
        }
        cache_redis_on_invalidation(cache->redis, remote_bump, cache);
    }
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
     * cache is; values and write sets release their records before the
     * table goes. */
    cache_lru_destroy(cache->lru);
    cache_txn_destroy(cache->txns);
    for (size_t i = 0; i < cache->n_labels; i++)
        cache_gen_unref(cache->labels[i].rec);
    bson_free(cache->labels);
    cache_gen_destroy(cache->gen);
    cache_rules_clear(&cache->include);
    cache_rules_clear(&cache->exclude);
    cache_rules_clear(&cache->ttl_overrides);
    bson_free(cache);
}

/* ---- coalescing --------------------------------------------------------------- */

static struct cache_inflight **
inflight_slot(struct cache *cache, const struct cache_key *key)
{
    return &cache->inflight[(key->lo ^ key->hi ^ (key->lo >> 29)) % INFLIGHT_BUCKETS];
}

static struct cache_inflight *
inflight_find(struct cache *cache, const struct cache_pending *p)
{
    for (struct cache_inflight *f = *inflight_slot(cache, &p->key); f; f = f->next) {
        const struct cache_pending *l = f->leader;

        if (cache_key_equal(&l->key, &p->key) && l->material.len == p->material.len &&
            memcmp(l->material.data, p->material.data, p->material.len) == 0)
            return f;
    }
    return NULL;
}

/*
 * Stops a wait: off its leader's list, timer and Redis op gone, no longer
 * tied to its pending read. Idempotent: a stopped wait stays allocated
 * until its one owner frees it (the cache just before calling its
 * callback, or the holder of the handle in cache_wait_cancel).
 */
static void
wait_unlink(struct cache_wait *w)
{
    if (w->prev) {
        *w->prev = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->prev = NULL;
        w->next = NULL;
    }
    if (w->timer)
        event_free(w->timer);
    w->timer = NULL;
    if (w->op)
        cache_redis_cancel(w->op);
    w->op = NULL;
    if (w->pending)
        w->pending->redis_wait = NULL;
    w->pending = NULL;
    cache_value_unref(w->value);
    w->value = NULL;
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_wait *w = arg;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;

    (void)fd;
    (void)what;
    w->cache->counters[CACHE_CTR_coalesced_timeouts]++;
    wait_unlink(w);
    bson_free(w);
    cb(cb_arg, CACHE_BYPASS, NULL);
}

void
cache_wait_cancel(struct cache_wait *w)
{
    if (!w)
        return;
    wait_unlink(w);
    bson_free(w);
}

/* Registers p as the read others may wait for. */
static void
inflight_lead(struct cache *cache, struct cache_pending *p)
{
    struct cache_inflight **slot = inflight_slot(cache, &p->key);
    struct cache_inflight *f = bson_malloc0(sizeof *f);

    f->leader = p;
    f->next = *slot;
    *slot = f;
    p->inflight = f;
}

static struct cache_wait *
inflight_follow(struct cache *cache, struct cache_inflight *f, cache_wait_cb cb, void *arg)
{
    struct cache_wait *w = bson_malloc0(sizeof *w);
    struct timeval tv;

    w->cache = cache;
    w->owner = f;
    w->cb = cb;
    w->arg = arg;
    w->next = f->waiters;
    if (w->next)
        w->next->prev = &w->next;
    w->prev = &f->waiters;
    f->waiters = w;
    w->timer = evtimer_new(cache->base, wait_timeout_cb, w);
    tv.tv_sec = cache->coalesce_wait_ms / 1000;
    tv.tv_usec = (cache->coalesce_wait_ms % 1000) * 1000;
    evtimer_add(w->timer, &tv);
    cache->counters[CACHE_CTR_coalesced]++;
    return w;
}

/*
 * The leader's miss is over: unhook it, then release every waiter with the
 * stored reply, or to go upstream. The callbacks may start new lookups;
 * the entry is out of the table before any runs.
 */
static void
inflight_finish(struct cache *cache, struct cache_pending *p)
{
    struct cache_inflight *f = p->inflight;
    struct cache_inflight **link = inflight_slot(cache, &p->key);
    struct cache_wait *w;

    if (!f)
        return;
    p->inflight = NULL;
    while (*link != f)
        link = &(*link)->next;
    *link = f->next;
    while ((w = f->waiters)) {
        cache_wait_cb cb = w->cb;
        void *cb_arg = w->arg;

        wait_unlink(w);
        bson_free(w);
        if (f->stored) {
            cache_value_ref(f->stored);
            cache->counters[CACHE_CTR_hits]++;
            f->stored->ns->hits++;
            cb(cb_arg, CACHE_HIT, f->stored);
        } else {
            cb(cb_arg, CACHE_BYPASS, NULL);
        }
    }
    cache_value_unref(f->stored);
    bson_free(f);
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

static bool
value_current(const struct cache_value *v)
{
    for (uint32_t i = 0; i < v->n_deps; i++)
        if (v->deps[i]->value != v->gens[i])
            return false;
    return true;
}

static bool still_current(struct cache *cache, const struct cache_pending *p);
static struct cache_value *value_new(const struct cache_pending *p, size_t len);
static void value_insert(struct cache *cache, struct cache_pending *p, struct cache_value *v);

/* Records the shared generations copy v is valid under (it may then be served in process). */
static void
redis_stamp(struct cache_value *v, const struct cache_pending *p, uint64_t epoch)
{
    for (uint32_t i = 0; i < p->n_deps; i++)
        v->rgen[i] = p->rgens[i].value;
    v->repoch = epoch;
    v->rvalid = true;
}

/* The shared tier answered a lookup (see redis_lookup). */
static void
redis_answer(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
             const uint8_t *material, size_t material_len, uint64_t epoch)
{
    struct cache_wait *w = arg;
    struct cache *cache = w->cache;
    struct cache_pending *p = w->pending;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;
    struct cache_value *v = NULL;

    w->op = NULL; /* answered: nothing to cancel */
    wait_unlink(w);
    bson_free(w);
    if (status == CACHE_REDIS_HIT &&
        (material_len != p->material.len ||
         memcmp(material, p->material.data, material_len) != 0)) {
        cache->counters[CACHE_CTR_collisions]++;
        status = CACHE_REDIS_MISS;
    }
    if (status == CACHE_REDIS_HIT && still_current(cache, p)) {
        /* Kept in process too: the next hit needs no round trip. */
        v = value_new(p, reply_len);
        memcpy(v->reply, reply, reply_len);
        redis_stamp(v, p, epoch);
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

/* Redis answered the check of an in-process copy (see redis_check). */
static void
redis_checked(void *arg, enum cache_redis_status status, const uint8_t *reply, size_t reply_len,
              const uint8_t *material, size_t material_len, uint64_t epoch)
{
    struct cache_wait *w = arg;
    struct cache *cache = w->cache;
    struct cache_pending *p = w->pending;
    struct cache_value *v = w->value;
    cache_wait_cb cb = w->cb;
    void *cb_arg = w->arg;
    bool same = status == CACHE_REDIS_MISS && epoch == v->repoch;

    (void)reply;
    (void)reply_len;
    (void)material;
    (void)material_len;
    w->op = NULL;
    w->value = NULL; /* ours now */
    wait_unlink(w);
    bson_free(w);
    for (uint32_t i = 0; same && i < p->n_deps; i++)
        same = p->rgens[i].value == v->rgen[i];
    if (same && value_current(v)) {
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

/* Asks Redis whether in-process copy v may be served. True when cb will say. */
static bool
redis_check(struct cache *cache, struct cache_pending *p, struct cache_value *v, cache_wait_cb cb,
            void *arg, struct cache_wait **wait)
{
    struct cache_wait *w = bson_malloc0(sizeof *w);

    if (v->n_deps != p->n_deps) {
        bson_free(w);
        return false;
    }
    redis_gens_from(p);
    w->cache = cache;
    w->cb = cb;
    w->arg = arg;
    w->pending = p;
    w->op = cache_redis_check(cache->redis, p->rgens, p->n_deps, redis_checked, w);
    if (!w->op) {
        bson_free(w);
        return false;
    }
    cache_value_ref(v);
    w->value = v;
    p->redis_wait = w;
    *wait = w;
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
    struct cache_wait *w = bson_malloc0(sizeof *w);

    redis_gens_from(p);
    w->cache = cache;
    w->cb = cb;
    w->arg = arg;
    w->pending = p;
    w->op = cache_redis_lookup(cache->redis, &p->key, p->rgens, p->n_deps, redis_answer, w);
    if (!w->op) {
        bson_free(w);
        return false;
    }
    p->redis_wait = w;
    *wait = w;
    return true;
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

/* A read not cached: counted by reason, which p keeps for the caller's log. */
static enum cache_outcome
bypass(struct cache *cache, struct cache_pending *p, int reason)
{
    cache->bypass[reason]++;
    if (reason != CACHE_BYPASS_OFF)
        cache->counters[CACHE_CTR_bypassed]++;
    p->bypass_reason = reason;
    release_deps(p); /* a bypass needs no cache_pending_cleanup */
    return CACHE_BYPASS;
}

enum cache_outcome
cache_lookup(struct cache *cache, const struct cache_request *req, struct cache_pending *p,
             struct cache_value **hit, cache_wait_cb cb, void *arg, struct cache_wait **wait)
{
    struct cache_inflight *f;
    struct cache_read read;
    enum cache_policy_reason reason;
    struct cache_value *v;
    char ns[512];
    int n;

    *hit = NULL;
    *wait = NULL;
    memset(p, 0, sizeof *p);
    if (!cache->enabled)
        return bypass(cache, p, CACHE_BYPASS_OFF);
    reason = cache_policy_request(req->body, req->cmd, req->db, req->n_sequences, &read);
    if (reason != CACHE_POLICY_OK)
        return bypass(cache, p, (int)reason);
    if (!req->principal)
        return bypass(cache, p, CACHE_BYPASS_AUTH);
    if (cache->redis) {
        /* Without the shared tier (and its invalidations) nothing cached is
         * trusted: other proxies' writes are not being heard. */
        if (!cache_redis_usable(cache->redis) || !cache_redis_subscribed(cache->redis)) {
            cache->redis_was_down = true;
            return bypass(cache, p, CACHE_BYPASS_REDIS);
        }
        if (cache->redis_was_down) {
            cache->redis_was_down = false;
            cache_gen_bump(cache_gen_global(cache->gen));
        }
    }
    for (uint32_t i = 0; i < read.n_ns; i++) {
        const struct cache_ns_ref *ref = &read.ns[i];
        struct cache_gen_rec *rec;

        n = snprintf(ns, sizeof ns, "%.*s.%.*s", (int)ref->db_len, ref->db, (int)ref->coll_len,
                     ref->coll);
        if (n < 0 || (size_t)n >= sizeof ns)
            return bypass(cache, p, CACHE_POLICY_NO_COLLECTION);
        rec = cache_gen_get(cache->gen, 'n', ns, (size_t)n);
        if (i == 0) {
            p->ns = rec;
            p->ttl_ms = ns_ttl(cache, rec);
            if (p->ttl_ms <= 0)
                return bypass(cache, p, CACHE_BYPASS_EXCLUDED);
        }
        add_dep(p, rec);
        add_dep(p, cache_gen_get(cache->gen, 'd', ref->db, ref->db_len));
    }
    add_dep(p, cache_gen_get(cache->gen, 'u', req->principal, strlen(req->principal)));
    add_dep(p, cache_gen_global(cache->gen));

    cache_key_build(&cache->secret, req->principal, req->db, read.ns[0].coll,
                    read.ns[0].coll_len, req->body, &p->material, &p->key);
    v = cache_lru_get(cache->lru, &p->key, (uint64_t)conf_clock_ms());
    if (v) {
        if (v->material_len != p->material.len ||
            memcmp(v->material, p->material.data, v->material_len) != 0) {
            cache->counters[CACHE_CTR_collisions]++;
        } else if (!value_current(v)) {
            cache->counters[CACHE_CTR_stale_entries_dropped]++;
            cache_lru_remove(cache->lru, &p->key);
        } else if (!cache->redis) {
            cache_value_ref(v);
            *hit = v;
            p->ns->hits++;
            cache->counters[CACHE_CTR_hits]++;
            return CACHE_HIT;
        } else if (cb && v->rvalid && redis_check(cache, p, v, cb, arg, wait)) {
            /*
             * With the shared tier, the truth about generations is in Redis:
             * the in-process copy is served only once Redis confirms that no
             * proxy has moved them (a bump may still be on its way by pub/sub).
             */
            return CACHE_WAIT;
        }
    }
    if (cache->coalesce_wait_ms > 0 && cb) {
        if ((f = inflight_find(cache, p))) {
            *wait = inflight_follow(cache, f, cb, arg);
            return CACHE_WAIT;
        }
        inflight_lead(cache, p);
    }
    if (cache->redis && cb && redis_lookup(cache, p, cb, arg, wait))
        return CACHE_WAIT;
    p->ns->misses++;
    cache->counters[CACHE_CTR_misses]++;
    return CACHE_MISS;
}

/* True when no generation the miss depends on moved since its lookup. */
static bool
still_current(struct cache *cache, const struct cache_pending *p)
{
    uint64_t now = (uint64_t)conf_clock_ms();

    for (uint32_t i = 0; i < p->n_deps; i++) {
        if (p->deps[i]->value != p->snapshot[i] || now < p->deps[i]->no_fill_until) {
            cache->counters[CACHE_CTR_fills_refused_generation]++;
            return false;
        }
    }
    return true;
}

/* A value for miss p with `len` bytes of payload space, generations from p. */
static struct cache_value *
value_new(const struct cache_pending *p, size_t len)
{
    struct cache_value *v = bson_malloc0(sizeof *v + p->material.len + len);

    v->refs = 1;
    v->n_deps = p->n_deps;
    memcpy(v->deps, p->deps, p->n_deps * sizeof *p->deps);
    for (uint32_t i = 0; i < v->n_deps; i++)
        cache_gen_ref(v->deps[i]);
    memcpy(v->gens, p->snapshot, p->n_deps * sizeof *p->snapshot);
    v->ns = p->ns;
    v->tag = p->tag;
    v->material = (uint8_t *)(v + 1);
    v->material_len = p->material.len;
    memcpy(v->material, p->material.data, p->material.len);
    v->reply = v->material + v->material_len;
    v->reply_len = len;
    return v;
}

/* Puts v (the caller's reference is kept) in the LRU and hands it to waiting reads. */
static void
value_insert(struct cache *cache, struct cache_pending *p, struct cache_value *v)
{
    uint32_t evicted = 0;

    if (p->inflight && !p->inflight->stored) {
        /* Waiting reads get this reply even if the LRU refuses it. */
        cache_value_ref(v);
        p->inflight->stored = v;
    }
    if (cache->redis && !v->rvalid)
        return; /* a copy Redis never vouched for could not be checked: not kept */
    cache_value_ref(v);
    if (cache_lru_put(cache->lru, &p->key, v,
                      sizeof *v + v->material_len + v->reply_len + cache_lru_overhead(),
                      (uint64_t)conf_clock_ms() + (uint64_t)p->ttl_ms, &evicted)) {
        cache->counters[CACHE_CTR_fills]++;
        p->ns->fills++;
    }
    cache->counters[CACHE_CTR_evictions] += evicted;
}

void
cache_store(struct cache *cache, struct cache_pending *p, const uint8_t *reply, size_t len,
            const bson_t *reply_body)
{
    enum cache_policy_reason reason;
    struct cache_value *v;

    reason = cache_policy_reply(reply_body, len, cache->max_entry);
    if (reason != CACHE_POLICY_OK) {
        cache->bypass[reason]++;
        cache->counters[CACHE_CTR_fills_refused_reply]++;
        return;
    }
    if (cache->redis && p->redis_fill)
        cache_redis_fill(cache->redis, &p->key, p->material.data, p->material.len, reply, len,
                         p->rgens, p->n_deps, p->redis_epoch, p->ttl_ms);
    if (!still_current(cache, p))
        return;
    v = value_new(p, len);
    memcpy(v->reply, reply, len);
    if (cache->redis && p->redis_fill)
        redis_stamp(v, p, p->redis_epoch);
    value_insert(cache, p, v);
    cache_value_unref(v);
}

struct cache_value *
cache_store_docs(struct cache *cache, struct cache_pending *p, const uint8_t *docs,
                 size_t docs_len, uint32_t n_docs, const char *ns, bool complete)
{
    size_t ns_len = strlen(ns) + 1;
    size_t offsets_len = ((size_t)n_docs + 1) * sizeof(uint32_t);
    size_t elems_len = docs_len;
    struct cache_value *v;
    uint8_t *offsets, *data;
    size_t at = 0, out = 0;
    char key[16];
    const char *key_str;

    /* Each document becomes the array element it is in a batch from 0:
     * type 0x03, its index as the key, the document. */
    for (uint32_t i = 0; i < n_docs; i++)
        elems_len += 2 + bson_uint32_to_string(i, &key_str, key, sizeof key);
    if (elems_len > UINT32_MAX)
        return NULL;
    v = value_new(p, offsets_len + elems_len + ns_len);
    offsets = v->reply;
    data = v->reply + offsets_len;
    for (uint32_t i = 0; i < n_docs; i++) {
        uint32_t len, offset = (uint32_t)out;
        size_t key_len = bson_uint32_to_string(i, &key_str, key, sizeof key);

        /* The documents were checked as part of their replies; a wrong count is our bug. */
        if (docs_len - at < 5 || (len = (uint32_t)wire_frame_read_i32(docs + at)) < 5 ||
            len > docs_len - at) {
            cache_value_unref(v);
            return NULL;
        }
        memcpy(offsets + (size_t)i * sizeof offset, &offset, sizeof offset);
        data[out++] = BSON_TYPE_DOCUMENT;
        memcpy(data + out, key_str, key_len + 1);
        out += key_len + 1;
        memcpy(data + out, docs + at, len);
        out += len;
        at += len;
    }
    if (at != docs_len) {
        cache_value_unref(v);
        return NULL;
    }
    {
        uint32_t end = (uint32_t)out;

        memcpy(offsets + (size_t)n_docs * sizeof end, &end, sizeof end);
    }
    memcpy(data + elems_len, ns, ns_len);
    v->docs = true;
    v->n_docs = n_docs;
    v->offsets = offsets;
    v->elements = data;
    v->cursor_ns = (const char *)(data + elems_len);
    if (!complete || docs_len > cache->max_entry) {
        cache->bypass[complete ? CACHE_POLICY_REPLY_TOO_LARGE : CACHE_POLICY_REPLY_OPEN_CURSOR]++;
        cache->counters[CACHE_CTR_fills_refused_reply]++;
    } else if (still_current(cache, p)) {
        value_insert(cache, p, v);
    }
    return v;
}

bool
cache_value_is_docs(const struct cache_value *v)
{
    return v->docs;
}

uint32_t
cache_value_n_docs(const struct cache_value *v)
{
    return v->n_docs;
}

/* Where element i starts in v->elements (i == n_docs: where they end). */
static uint32_t
element_offset(const struct cache_value *v, uint32_t i)
{
    uint32_t at;

    memcpy(&at, v->offsets + (size_t)i * sizeof at, sizeof at);
    return at;
}

const uint8_t *
cache_value_doc(const struct cache_value *v, uint32_t i, uint32_t *len)
{
    const uint8_t *elem = v->elements + element_offset(v, i);
    const uint8_t *doc = elem + 1 + strlen((const char *)elem + 1) + 1;

    *len = (uint32_t)wire_frame_read_i32(doc);
    return doc;
}

const uint8_t *
cache_value_elements(const struct cache_value *v, uint32_t k, size_t *len)
{
    *len = element_offset(v, k) - element_offset(v, 0);
    return v->elements;
}

const char *
cache_value_ns(const struct cache_value *v)
{
    return v->cursor_ns;
}

void
cache_pending_cleanup(struct cache *cache, struct cache_pending *p)
{
    /* A Redis wait on this read is stopped, not freed: its handle's holder
     * frees it (cache_wait_cancel), whichever of the two calls comes first. */
    if (p->redis_wait)
        wait_unlink(p->redis_wait);
    inflight_finish(cache, p);
    release_deps(p);
    cache_key_material_cleanup(&p->material);
}

/* ---- writes ------------------------------------------------------------------- */

/* inv holds rec (cache_gen_ref) until inval_release. */
static void
inval_add(struct cache_inval *inv, struct cache_gen_rec *rec)
{
    for (uint32_t i = 0; i < inv->n; i++)
        if (inv->recs[i] == rec)
            return;
    if (inv->n < CACHE_MAX_INVAL) {
        cache_gen_ref(rec);
        inv->recs[inv->n++] = rec;
    }
}

static void
inval_release(struct cache_inval *inv)
{
    for (uint32_t i = 0; i < inv->n; i++)
        cache_gen_unref(inv->recs[i]);
    inv->n = 0;
}

/* Bumps inv's generations in Redis too; see cache_redis_bump. */
static struct cache_redis_op *
redis_bump(struct cache *cache, const struct cache_inval *inv, cache_redis_done_cb cb, void *arg)
{
    struct cache_redis_gen gens[CACHE_MAX_INVAL];

    if (!cache->redis || inv->n == 0)
        return NULL;
    for (uint32_t i = 0; i < inv->n; i++) {
        gens[i].name = inv->recs[i]->name;
        gens[i].name_len = inv->recs[i]->name_len;
        gens[i].value = 0;
    }
    return cache_redis_bump(cache->redis, gens, inv->n, cb, arg);
}

static void
bump_all(struct cache *cache, struct cache_inval *inv, bool oneway)
{
    uint64_t until = (uint64_t)conf_clock_ms() + (uint64_t)cache->write_grace_ms;

    for (uint32_t i = 0; i < inv->n; i++) {
        cache_gen_bump(inv->recs[i]);
        inv->recs[i]->invalidations++;
        if (oneway && inv->recs[i]->no_fill_until < until)
            inv->recs[i]->no_fill_until = until;
    }
    if (inv->n)
        cache->counters[CACHE_CTR_invalidations]++;
    /* Before forwarding: fire and forget (a failure leaves the tier dirty). */
    redis_bump(cache, inv, NULL, NULL);
}

bool
cache_write_begin(struct cache *cache, const bson_t *body, const struct wire_cmd *cmd,
                  const char *db,
                  const char *const *seq_ids, const uint8_t *const *seq_docs,
                  const uint32_t *seq_lens, uint32_t n_seqs, bool oneway,
                  struct cache_inval *inv)
{
    struct cache_write w;
    char ns[512];
    int n;

    memset(inv, 0, sizeof *inv);
    cache_policy_write(body, cmd, db, seq_ids, seq_docs, seq_lens, n_seqs, &w);
    switch (w.scope) {
    case CACHE_WRITE_NONE:
        return false;
    case CACHE_WRITE_NS:
        for (uint32_t i = 0; i < w.n_ns; i++) {
            n = snprintf(ns, sizeof ns, "%.*s.%.*s", (int)w.ns[i].db_len, w.ns[i].db,
                         (int)w.ns[i].coll_len, w.ns[i].coll);
            if (n < 0 || (size_t)n >= sizeof ns) {
                inval_add(inv, cache_gen_global(cache->gen));
                continue;
            }
            inval_add(inv, cache_gen_get(cache->gen, 'n', ns, (size_t)n));
        }
        break;
    case CACHE_WRITE_DB:
        for (uint32_t i = 0; i < w.n_ns; i++)
            inval_add(inv, cache_gen_get(cache->gen, 'd', w.ns[i].db, w.ns[i].db_len));
        break;
    case CACHE_WRITE_USER: {
        const char *udb = db ? db : "admin";
        char *principal = cache_key_principal(w.user, w.user_len, udb, strlen(udb));

        inval_add(inv, cache_gen_get(cache->gen, 'u', principal, strlen(principal)));
        bson_free(principal);
        break;
    }
    case CACHE_WRITE_ALL:
        inval_add(inv, cache_gen_global(cache->gen));
        break;
    case CACHE_WRITE_TXN_END: {
        struct cache_txn_writes *t = cache_txn_find(cache->txns, body, false);

        if (!t || t->overflow || t->n > CACHE_MAX_INVAL) {
            /* The session's writes are not known here, or more than one
             * invalidation holds: everything may have changed. */
            inval_add(inv, cache_gen_global(cache->gen));
        } else {
            for (uint32_t i = 0; i < t->n; i++)
                inval_add(inv, t->recs[i]);
        }
        if (t)
            cache_txn_drop(cache->txns, t);
        break;
    }
    }
    if (w.in_transaction && w.scope != CACHE_WRITE_TXN_END) {
        struct cache_txn_writes *t = cache_txn_find(cache->txns, body, true);

        if (!t) {
            inval_add(inv, cache_gen_global(cache->gen));
        } else {
            for (uint32_t i = 0; i < inv->n; i++)
                cache_txn_add(t, inv->recs[i]);
        }
    }
    bump_all(cache, inv, oneway);
    inv->write = inv->n > 0;
    if (oneway)
        inval_release(inv); /* nothing reports its end: the grace period covers it */
    return inv->n > 0;
}

void
cache_write_end(struct cache *cache, struct cache_inval *inv)
{
    for (uint32_t i = 0; i < inv->n; i++)
        cache_gen_bump(inv->recs[i]);
    redis_bump(cache, inv, NULL, NULL);
    inval_release(inv);
}

/* An acknowledged write waiting for Redis to confirm its second bump. */
struct cache_write_wait {
    cache_write_done_cb cb; /* NULL once cancelled */
    void *arg;
};

static void
write_confirmed(void *arg, bool ok)
{
    struct cache_write_wait *ww = arg;
    cache_write_done_cb cb = ww->cb;
    void *cb_arg = ww->arg;

    (void)ok; /* not confirmed: the tier is dirty, so nothing stale is served from it */
    bson_free(ww);
    if (cb)
        cb(cb_arg);
}

bool
cache_write_end_async(struct cache *cache, struct cache_inval *inv, cache_write_done_cb cb,
                      void *arg, struct cache_write_wait **wait)
{
    struct cache_write_wait *ww;
    struct cache_redis_op *op;

    *wait = NULL;
    if (!cache->redis || inv->n == 0) {
        cache_write_end(cache, inv);
        return false;
    }
    for (uint32_t i = 0; i < inv->n; i++)
        cache_gen_bump(inv->recs[i]);
    ww = bson_malloc(sizeof *ww);
    ww->cb = cb;
    ww->arg = arg;
    /* The Redis tier calls write_confirmed exactly once (FAILED at destroy
     * at the latest), which frees ww: the op itself is never cancelled. */
    op = redis_bump(cache, inv, write_confirmed, ww);
    inval_release(inv);
    if (!op) {
        bson_free(ww);
        return false;
    }
    *wait = ww;
    return true;
}

void
cache_write_cancel(struct cache_write_wait *ww)
{
    if (ww)
        ww->cb = NULL;
}

/* ---- an operator's flush and invalidation ---------------------------------- */

/* For cache_lru_remove_if: a value that depends on rec (NULL: every value). */
static bool
depends_on(const void *value, void *arg)
{
    const struct cache_value *v = value;

    if (arg == NULL)
        return true;
    for (uint32_t i = 0; i < v->n_deps; i++)
        if (v->deps[i] == arg)
            return true;
    return false;
}

size_t
cache_admin_drop(struct cache *cache, const char *ns, size_t ns_len)
{
    struct cache_inval inv;
    struct cache_gen_rec *rec;
    size_t dropped;

    memset(&inv, 0, sizeof inv);
    rec = ns ? cache_gen_get(cache->gen, 'n', ns, ns_len) : cache_gen_global(cache->gen);
    inval_add(&inv, rec); /* held until the end: the walk compares with it */
    bump_all(cache, &inv, false);
    dropped = cache_lru_remove_if(cache->lru, depends_on, ns ? (void *)rec : NULL);
    inval_release(&inv);
    return dropped;
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
        return cache_lru_bytes(cache->lru);
    case CACHE_CTR_records:
        return cache_gen_count(cache->gen);
    case CACHE_CTR_records_forgotten:
        return cache_gen_forgotten(cache->gen);
    default:
        return cache->counters[counter];
    }
}
