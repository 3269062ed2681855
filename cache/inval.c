/*
 * cache/inval.c: owns invalidation (see inval.h): turning a write's scope
 * (inval_scope.c says which namespaces, databases or principal a command
 * changes) into held generation records, the first bump before
 * the write is forwarded and the second at its end, the transaction write
 * sets (through txn.c) that make a commit bump again, the grace period
 * of a w:0 write and of a write whose reply was lost (with the shared tier,
 * a late bump in Redis when it ends), an operator's drop, the bumps heard
 * from other proxies, sending our bumps to the Redis tier, and the
 * generation check a fill passes
 * before it is stored. It does not decide what is cacheable (policy.c),
 * and it never stores or serves anything (cache.c).
 */
#include "config.h"

#include "cache/inval.h"

#include "cache/deps.h"
#include "cache/gen.h"
#include "cache/key.h"
#include "cache/lru.h"
#include "cache/redis.h"
#include "cache/txn.h"
#include "cache/value.h"
#include "conf/clock.h"

#include <event2/event.h>
#include <string.h>

/* The late bumps' timer fires at most this often (ms): a later bump is as safe. */
#define LATE_BUMP_MIN_INTERVAL_MS 100

struct cache_inval_ctx {
    struct cache_gen *gen;     /* borrowed */
    struct cache_lru *lru;     /* borrowed: a drop removes from it */
    struct cache_redis *redis; /* borrowed, or NULL */
    struct cache_txn *txns;    /* transaction write sets, by session */
    int64_t write_grace_ms;
    uint64_t invalidations; /* writes and drops that bumped something */
    /* Records whose grace ends in a bump in Redis (late_bump set, each held
     * with cache_gen_ref until then), and the timer that sends them. */
    struct cache_gen_rec **late;
    uint32_t n_late, cap_late;
    struct event *late_timer; /* NULL without the shared tier */
};

static void late_timer_cb(evutil_socket_t fd, short what, void *arg);

struct cache_inval_ctx *
cache_inval_new(struct cache_gen *gen, struct cache_lru *lru, struct cache_redis *redis,
                struct event_base *base)
{
    struct cache_inval_ctx *ctx = bson_malloc0(sizeof *ctx);

    ctx->gen = gen;
    ctx->lru = lru;
    ctx->redis = redis;
    ctx->txns = cache_txn_new();
    if (redis && base)
        ctx->late_timer = evtimer_new(base, late_timer_cb, ctx);
    return ctx;
}

void
cache_inval_destroy(struct cache_inval_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->late_timer)
        event_free(ctx->late_timer);
    for (uint32_t i = 0; i < ctx->n_late; i++) {
        ctx->late[i]->late_bump = false;
        cache_gen_unref(ctx->late[i]);
    }
    bson_free(ctx->late);
    cache_txn_destroy(ctx->txns); /* releases its records: before the generation table goes */
    bson_free(ctx);
}

void
cache_inval_set_grace(struct cache_inval_ctx *ctx, int64_t write_grace_ms)
{
    ctx->write_grace_ms = write_grace_ms;
}

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
redis_bump(struct cache_inval_ctx *ctx, const struct cache_inval *inv, cache_redis_done_cb cb,
           void *arg)
{
    struct cache_redis_gen gens[CACHE_MAX_INVAL];

    if (!ctx->redis || inv->n == 0)
        return NULL;
    for (uint32_t i = 0; i < inv->n; i++) {
        gens[i].name = inv->recs[i]->name;
        gens[i].name_len = inv->recs[i]->name_len;
        gens[i].value = 0;
    }
    return cache_redis_bump(ctx->redis, gens, inv->n, cb, arg);
}

/*
 * The late bumps. A w:0 write, or one whose reply was lost, may be applied
 * by the server after its second bump; this proxy refuses fills of what it
 * touches until rec->no_fill_until, but another proxy sharing the tier
 * does not know, and may fill (in Redis or in its own process) what it
 * read before the write landed. So when the grace ends, the generations
 * are bumped once more in Redis (and published): whatever was filled
 * meanwhile, anywhere, is then stale. A record waits here once (held,
 * late_bump set), however many writes extend its grace.
 */
static void
late_arm(struct cache_inval_ctx *ctx, uint64_t now_ms)
{
    uint64_t due = UINT64_MAX;
    struct timeval tv;

    for (uint32_t i = 0; i < ctx->n_late; i++)
        if (ctx->late[i]->no_fill_until < due)
            due = ctx->late[i]->no_fill_until;
    if (due == UINT64_MAX)
        return;
    due = due > now_ms ? due - now_ms : 0;
    if (due < LATE_BUMP_MIN_INTERVAL_MS)
        due = LATE_BUMP_MIN_INTERVAL_MS;
    tv = conf_clock_tv((int64_t)due);
    evtimer_add(ctx->late_timer, &tv);
}

static void
late_add(struct cache_inval_ctx *ctx, struct cache_gen_rec *rec, uint64_t now_ms)
{
    if (!ctx->late_timer || rec->late_bump)
        return;
    if (ctx->n_late == ctx->cap_late) {
        ctx->cap_late = ctx->cap_late ? ctx->cap_late * 2 : 16;
        ctx->late = bson_realloc(ctx->late, ctx->cap_late * sizeof *ctx->late);
    }
    cache_gen_ref(rec);
    rec->late_bump = true;
    ctx->late[ctx->n_late++] = rec;
    if (!evtimer_pending(ctx->late_timer, NULL))
        late_arm(ctx, now_ms);
}

static void
late_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_inval_ctx *ctx = arg;
    uint64_t now_ms = (uint64_t)conf_clock_ms();
    struct cache_inval batch;
    uint32_t i = 0;

    (void)fd;
    (void)what;
    batch.n = 0;
    while (i < ctx->n_late) {
        struct cache_gen_rec *rec = ctx->late[i];

        if (rec->no_fill_until > now_ms) {
            i++;
            continue;
        }
        ctx->late[i] = ctx->late[--ctx->n_late];
        rec->late_bump = false;
        /* batch takes over the hold (released by cache_inval_write_end's release) */
        batch.recs[batch.n++] = rec;
        if (batch.n == CACHE_MAX_INVAL) {
            cache_inval_write_end(ctx, &batch);
            batch.n = 0;
        }
    }
    if (batch.n)
        cache_inval_write_end(ctx, &batch);
    late_arm(ctx, now_ms);
}

/* The first bump (a write before it is forwarded, or a drop), in process. */
static void
bump_all(struct cache_inval_ctx *ctx, struct cache_inval *inv, bool oneway, uint64_t now_ms)
{
    uint64_t until = now_ms + (uint64_t)ctx->write_grace_ms;

    for (uint32_t i = 0; i < inv->n; i++) {
        cache_gen_bump(inv->recs[i]);
        inv->recs[i]->invalidations++;
        if (oneway && inv->recs[i]->no_fill_until < until)
            inv->recs[i]->no_fill_until = until;
        if (oneway)
            late_add(ctx, inv->recs[i], now_ms);
    }
    if (inv->n)
        ctx->invalidations++;
}

bool
cache_inval_write_begin(struct cache_inval_ctx *ctx, const bson_t *body,
                        const struct wire_cmd *cmd, const char *db, const char *const *seq_ids,
                        const uint8_t *const *seq_docs, const uint32_t *seq_lens,
                        uint32_t n_seqs, bool oneway, struct cache_inval *inv)
{
    struct cache_write w;
    char ns[512];
    int n;

    cache_inval_scope_classify(body, cmd, db, seq_ids, seq_docs, seq_lens, n_seqs, &w);
    if (w.scope == CACHE_WRITE_NONE) {
        /* Every read: nothing held (recs is read only up to n). */
        inv->n = 0;
        inv->write = false;
        return false;
    }
    memset(inv, 0, sizeof *inv);
    switch (w.scope) {
    case CACHE_WRITE_NONE:
        return false;
    case CACHE_WRITE_NS:
        for (uint32_t i = 0; i < w.n_ns; i++) {
            n = snprintf(ns, sizeof ns, "%.*s.%.*s", (int)w.ns[i].db_len, w.ns[i].db,
                         (int)w.ns[i].coll_len, w.ns[i].coll);
            if (n < 0 || (size_t)n >= sizeof ns) {
                inval_add(inv, cache_gen_global(ctx->gen));
                continue;
            }
            inval_add(inv, cache_gen_get(ctx->gen, 'n', ns, (size_t)n));
        }
        break;
    case CACHE_WRITE_DB:
        for (uint32_t i = 0; i < w.n_ns; i++)
            inval_add(inv, cache_gen_get(ctx->gen, 'd', w.ns[i].db, w.ns[i].db_len));
        break;
    case CACHE_WRITE_USER: {
        const char *udb = db ? db : "admin";
        char *principal = cache_key_principal(w.user, w.user_len, udb, strlen(udb));

        inval_add(inv, cache_gen_get(ctx->gen, 'u', principal, strlen(principal)));
        bson_free(principal);
        break;
    }
    case CACHE_WRITE_ALL:
        inval_add(inv, cache_gen_global(ctx->gen));
        break;
    case CACHE_WRITE_TXN_END: {
        struct cache_txn_writes *t = cache_txn_find(ctx->txns, body, false, false, 0);

        if (!t || t->overflow || t->n > CACHE_MAX_INVAL) {
            /* The session's writes are not known here, or more than one
             * invalidation holds: everything may have changed. */
            inval_add(inv, cache_gen_global(ctx->gen));
        } else {
            for (uint32_t i = 0; i < t->n; i++)
                inval_add(inv, t->recs[i]);
        }
        if (t)
            cache_txn_drop(ctx->txns, t);
        break;
    }
    }
    if (w.in_transaction && w.scope != CACHE_WRITE_TXN_END) {
        struct cache_txn_writes *t =
            cache_txn_find(ctx->txns, body, true, w.starts_transaction,
                           (uint64_t)conf_clock_ms());

        if (!t) {
            inval_add(inv, cache_gen_global(ctx->gen));
        } else {
            for (uint32_t i = 0; i < inv->n; i++)
                cache_txn_add(t, inv->recs[i]);
        }
    }
    bump_all(ctx, inv, oneway, (uint64_t)conf_clock_ms());
    /* Before forwarding: fire and forget (a failure leaves the tier dirty). */
    redis_bump(ctx, inv, NULL, NULL);
    inv->write = inv->n > 0;
    if (oneway)
        inval_release(inv); /* nothing reports its end: the grace period covers it */
    return inv->n > 0;
}

void
cache_inval_write_end(struct cache_inval_ctx *ctx, struct cache_inval *inv)
{
    for (uint32_t i = 0; i < inv->n; i++)
        cache_gen_bump(inv->recs[i]);
    redis_bump(ctx, inv, NULL, NULL);
    inval_release(inv);
}

void
cache_inval_write_lost(struct cache_inval_ctx *ctx, struct cache_inval *inv, uint64_t now_ms)
{
    uint64_t until = now_ms + (uint64_t)ctx->write_grace_ms;

    /* The server may apply it after the connection is gone (it runs an
     * operation to its end, or to its next interruption check): fills read
     * before that would keep the old data past the second bump. */
    for (uint32_t i = 0; i < inv->n; i++) {
        if (inv->recs[i]->no_fill_until < until)
            inv->recs[i]->no_fill_until = until;
        late_add(ctx, inv->recs[i], now_ms);
    }
    cache_inval_write_end(ctx, inv);
}

/*
 * An acknowledged write waiting for Redis to confirm its second bump, or an
 * operator's drop waiting for Redis to confirm its bump: one of the two
 * callbacks is set.
 */
struct cache_write_wait {
    cache_write_done_cb cb;     /* a write; NULL once cancelled */
    cache_drop_done_cb drop_cb; /* a drop; NULL once cancelled */
    void *arg;
};

static void
write_confirmed(void *arg, bool ok)
{
    struct cache_write_wait *ww = arg;
    cache_write_done_cb cb = ww->cb;
    cache_drop_done_cb drop_cb = ww->drop_cb;
    void *cb_arg = ww->arg;

    bson_free(ww);
    /* A write's ack goes out either way (the write was made): not confirmed,
     * the tier is dirty here, so nothing stale is served from it by this
     * proxy. A drop is only an answer: it says whether Redis saw it. */
    if (cb)
        cb(cb_arg);
    else if (drop_cb)
        drop_cb(cb_arg, ok);
}

bool
cache_inval_write_end_async(struct cache_inval_ctx *ctx, struct cache_inval *inv,
                            cache_write_done_cb cb, void *arg, struct cache_write_wait **wait)
{
    struct cache_write_wait *ww;
    struct cache_redis_op *op;

    *wait = NULL;
    if (!ctx->redis || inv->n == 0) {
        cache_inval_write_end(ctx, inv);
        return false;
    }
    for (uint32_t i = 0; i < inv->n; i++)
        cache_gen_bump(inv->recs[i]);
    ww = bson_malloc0(sizeof *ww);
    ww->cb = cb;
    ww->arg = arg;
    /* The Redis tier calls write_confirmed exactly once (FAILED at destroy
     * at the latest), which frees ww: the op itself is never cancelled. */
    op = redis_bump(ctx, inv, write_confirmed, ww);
    inval_release(inv);
    if (!op) {
        bson_free(ww);
        return false;
    }
    *wait = ww;
    return true;
}

void
cache_inval_write_cancel(struct cache_write_wait *ww)
{
    if (ww) {
        ww->cb = NULL;
        ww->drop_cb = NULL;
    }
}

/* For cache_lru_remove_if: a value that depends on rec (NULL: every value). */
static bool
depends_on(const struct cache_lru_node *node, void *arg)
{
    return arg == NULL || cache_deps_has(cache_value_deps(cache_value_of_node(node)), arg);
}

enum cache_drop_state
cache_inval_drop(struct cache_inval_ctx *ctx, const char *ns, size_t ns_len, uint64_t now_ms,
                 cache_drop_done_cb cb, void *arg, struct cache_write_wait **wait, size_t *dropped)
{
    struct cache_inval inv;
    struct cache_gen_rec *rec;
    struct cache_write_wait *ww = NULL;
    enum cache_drop_state state = CACHE_DROP_DONE;

    *wait = NULL;
    memset(&inv, 0, sizeof inv);
    rec = ns ? cache_gen_get(ctx->gen, 'n', ns, ns_len) : cache_gen_global(ctx->gen);
    inval_add(&inv, rec); /* held until the end: the walk compares with it */
    bump_all(ctx, &inv, false, now_ms);
    if (ctx->redis) {
        /* As a write's ack: the answer waits until Redis confirms (or gives
         * up: redis_timeout); the op is never cancelled and calls
         * write_confirmed exactly once, which frees ww. */
        ww = bson_malloc0(sizeof *ww);
        ww->drop_cb = cb;
        ww->arg = arg;
        if (redis_bump(ctx, &inv, write_confirmed, ww)) {
            *wait = ww;
            state = CACHE_DROP_WAITING;
        } else {
            bson_free(ww); /* not sent (disconnected, breaker open): the tier is dirty */
            state = CACHE_DROP_NOT_SENT;
        }
    }
    *dropped = cache_lru_remove_if(ctx->lru, depends_on, ns ? (void *)rec : NULL);
    inval_release(&inv);
    return state;
}

void
cache_inval_remote(void *arg, const char *name, size_t len)
{
    struct cache_inval_ctx *ctx = arg;

    if (len >= 2 && name[1] == ':' && (name[0] == 'n' || name[0] == 'd' || name[0] == 'u'))
        cache_gen_bump(cache_gen_get(ctx->gen, name[0], name + 2, len - 2));
    else
        cache_gen_bump(cache_gen_global(ctx->gen));
}

void
cache_inval_everything(struct cache_inval_ctx *ctx)
{
    cache_gen_bump(cache_gen_global(ctx->gen));
}

bool
cache_inval_fill_allowed(struct cache_gen_rec *const *recs, const uint64_t *snapshot, uint32_t n,
                         uint64_t looked_up_ms)
{
    for (uint32_t i = 0; i < n; i++)
        if (recs[i]->value != snapshot[i] || looked_up_ms < recs[i]->no_fill_until)
            return false;
    return true;
}

uint64_t
cache_inval_count(const struct cache_inval_ctx *ctx)
{
    return ctx->invalidations;
}
