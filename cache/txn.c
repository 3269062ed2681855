/*
 * cache/txn.c: the transaction write sets (see txn.h): a list of sets, one
 * per session, found by the raw bytes of the command's lsid, newest first,
 * and bounded (the oldest is forgotten). It does not own deciding what a
 * command writes or whether it is inside a transaction (policy.c), nor the
 * bumps themselves (cache.c): it only remembers records.
 */
#include "config.h"

#include "cache/txn.h"

#include "cache/gen.h"

#include <string.h>

#define MAX_OPEN_TXNS 1024

/* One session's write set. */
struct txn_entry {
    struct txn_entry *next;
    uint8_t lsid[64];
    uint32_t lsid_len;
    struct cache_txn_writes writes;
};

struct cache_txn {
    struct txn_entry *txns; /* newest first */
    uint32_t n_txns;
    bool lost;        /* a set was forgotten, at lost_ms */
    uint64_t lost_ms;
};

/* Frees an entry and releases the records its set held. */
static void
entry_free(struct txn_entry *t)
{
    for (uint32_t i = 0; i < t->writes.n; i++)
        cache_gen_unref(t->writes.recs[i]);
    bson_free(t);
}

struct cache_txn *
cache_txn_new(void)
{
    struct cache_txn *txn = bson_malloc0(sizeof *txn);

    return txn;
}

void
cache_txn_destroy(struct cache_txn *txn)
{
    if (!txn)
        return;
    while (txn->txns) {
        struct txn_entry *next = txn->txns->next;

        entry_free(txn->txns);
        txn->txns = next;
    }
    bson_free(txn);
}

/* The raw bytes of the command's lsid value, or false. */
static bool
find_lsid(const bson_t *body, const uint8_t **data, uint32_t *len)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, body, "lsid") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    bson_iter_document(&it, len, data);
    return *len <= sizeof(((struct txn_entry *)0)->lsid);
}

struct cache_txn_writes *
cache_txn_find(struct cache_txn *txn, const bson_t *body, bool create, bool starts,
               uint64_t now_ms)
{
    const uint8_t *lsid = NULL;
    uint32_t len = 0;
    struct txn_entry *t;

    if (!find_lsid(body, &lsid, &len))
        return NULL;
    for (t = txn->txns; t; t = t->next)
        if (t->lsid_len == len && memcmp(t->lsid, lsid, len) == 0)
            return &t->writes;
    if (!create)
        return NULL;
    if (txn->n_txns >= MAX_OPEN_TXNS) {
        /* Forget the oldest: its commit will then bump everything, which is
         * safe; a write of it before that opens a set marked overflow. */
        struct txn_entry **last = &txn->txns;

        while ((*last)->next)
            last = &(*last)->next;
        entry_free(*last);
        *last = NULL;
        txn->n_txns--;
        txn->lost = true;
        txn->lost_ms = now_ms;
    }
    t = bson_malloc0(sizeof *t);
    memcpy(t->lsid, lsid, len);
    t->lsid_len = len;
    /* Its first statement seen here did not start it: this may be the
     * forgotten set's session, whose earlier writes are not known here. */
    t->writes.overflow =
        !starts && txn->lost && now_ms - txn->lost_ms < (uint64_t)CACHE_TXN_LOST_WINDOW_MS;
    t->next = txn->txns;
    txn->txns = t;
    txn->n_txns++;
    return &t->writes;
}

void
cache_txn_add(struct cache_txn_writes *writes, struct cache_gen_rec *rec)
{
    for (uint32_t j = 0; j < writes->n; j++)
        if (writes->recs[j] == rec)
            return;
    if (writes->n < sizeof writes->recs / sizeof writes->recs[0]) {
        cache_gen_ref(rec);
        writes->recs[writes->n++] = rec;
    } else
        writes->overflow = true;
}

void
cache_txn_drop(struct cache_txn *txn, struct cache_txn_writes *writes)
{
    struct txn_entry **link = &txn->txns;
    struct txn_entry *t;

    while (&(*link)->writes != writes)
        link = &(*link)->next;
    t = *link;
    *link = t->next;
    entry_free(t);
    txn->n_txns--;
}
