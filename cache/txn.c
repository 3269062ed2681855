/*
 * cache/txn.c: the transaction write sets (see txn.h): a list of sets, one
 * per session, found by the raw bytes of the command's lsid, newest first,
 * and bounded (the oldest is forgotten), each for one transaction of its
 * session (txnNumber); and a ring remembering the transactions whose sets
 * were forgotten. It does not own deciding what a command writes or
 * whether it is inside a transaction (policy.c), nor the bumps themselves
 * (cache.c): it only remembers records.
 */
#include "config.h"

#include "cache/txn.h"

#include "cache/gen.h"

#include <string.h>

#define MAX_OPEN_TXNS 1024
/* Transactions whose sets were forgotten, remembered (16 bytes each). */
#define FORGOTTEN 4096

/* One session's write set, for its transaction txn_number. */
struct txn_entry {
    struct txn_entry *next;
    uint8_t lsid[64];
    uint32_t lsid_len;
    int64_t txn_number;
    struct cache_txn_writes writes;
};

/* A transaction whose set was forgotten: its session (a hash of the lsid's bytes) and number. */
struct forgotten {
    uint64_t session;
    int64_t txn_number;
};

struct cache_txn {
    struct txn_entry *txns; /* newest first */
    uint32_t n_txns;
    struct forgotten ring[FORGOTTEN];
    uint32_t ring_next, ring_n;
    bool ring_lost;          /* the ring overwrote one, at ring_lost_ms */
    uint64_t ring_lost_ms;
};

/* Releases the records a set holds and empties it. */
static void
writes_clear(struct cache_txn_writes *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        cache_gen_unref(w->recs[i]);
    w->n = 0;
    w->overflow = false;
}

/* Frees an entry and releases the records its set held. */
static void
entry_free(struct txn_entry *t)
{
    writes_clear(&t->writes);
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

/* The raw bytes of the command's lsid value and its txnNumber (0 without one), or false. */
static bool
find_session(const bson_t *body, const uint8_t **data, uint32_t *len, int64_t *txn_number)
{
    bson_iter_t it;
    bool found = false;

    *txn_number = 0;
    if (!bson_iter_init(&it, body))
        return false;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (!found && strcmp(key, "lsid") == 0) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                return false;
            bson_iter_document(&it, len, data);
            found = true;
        } else if (strcmp(key, "txnNumber") == 0 && BSON_ITER_HOLDS_NUMBER(&it)) {
            *txn_number = bson_iter_as_int64(&it);
        }
    }
    return found && *len <= sizeof(((struct txn_entry *)0)->lsid);
}

/* FNV-1a of the lsid's bytes: two sessions that meet only look forgotten (safe). */
static uint64_t
session_hash(const uint8_t *lsid, uint32_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (uint32_t i = 0; i < len; i++)
        h = (h ^ lsid[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void
remember_forgotten(struct cache_txn *txn, const struct txn_entry *t, uint64_t now_ms)
{
    if (txn->ring_n == FORGOTTEN) {
        txn->ring_lost = true; /* the oldest remembered goes */
        txn->ring_lost_ms = now_ms;
    } else {
        txn->ring_n++;
    }
    txn->ring[txn->ring_next].session = session_hash(t->lsid, t->lsid_len);
    txn->ring[txn->ring_next].txn_number = t->txn_number;
    txn->ring_next = (txn->ring_next + 1) % FORGOTTEN;
}

/*
 * Whether the set of (lsid, txn_number) may have been forgotten: it is in
 * the ring, or the ring itself forgot one within CACHE_TXN_LOST_WINDOW_MS.
 */
static bool
maybe_forgotten(const struct cache_txn *txn, const uint8_t *lsid, uint32_t len,
                int64_t txn_number, uint64_t now_ms)
{
    uint64_t h = session_hash(lsid, len);

    if (txn->ring_lost && now_ms - txn->ring_lost_ms < (uint64_t)CACHE_TXN_LOST_WINDOW_MS)
        return true;
    for (uint32_t i = 0; i < txn->ring_n; i++)
        if (txn->ring[i].session == h && txn->ring[i].txn_number == txn_number)
            return true;
    return false;
}

struct cache_txn_writes *
cache_txn_find(struct cache_txn *txn, const bson_t *body, bool create, bool starts,
               uint64_t now_ms)
{
    const uint8_t *lsid = NULL;
    uint32_t len = 0;
    int64_t number;
    struct txn_entry *t;

    if (!find_session(body, &lsid, &len, &number))
        return NULL;
    for (t = txn->txns; t; t = t->next)
        if (t->lsid_len == len && memcmp(t->lsid, lsid, len) == 0)
            break;
    if (t && t->txn_number == number)
        return &t->writes;
    if (!create)
        return NULL; /* none, or the set of another of its transactions */
    if (t) {
        /* The session's earlier transaction is over (a session runs one at
         * a time; the server ends an open one when the next starts): its
         * set is dropped, not forgotten, and serves this one. */
        writes_clear(&t->writes);
    } else {
        if (txn->n_txns >= MAX_OPEN_TXNS) {
            /* Forget the oldest: its commit then finds no set and bumps
             * everything; a write of it before that finds it in the ring. */
            struct txn_entry **last = &txn->txns;

            while ((*last)->next)
                last = &(*last)->next;
            remember_forgotten(txn, *last, now_ms);
            entry_free(*last);
            *last = NULL;
            txn->n_txns--;
        }
        t = bson_malloc0(sizeof *t);
        memcpy(t->lsid, lsid, len);
        t->lsid_len = len;
        t->next = txn->txns;
        txn->txns = t;
        txn->n_txns++;
    }
    t->txn_number = number;
    /* Its first statement seen here did not start it: if its set was
     * forgotten, its earlier writes are not known here. */
    t->writes.overflow = !starts && maybe_forgotten(txn, lsid, len, number, now_ms);
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
