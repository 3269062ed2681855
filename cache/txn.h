/*
 * cache/txn.h: transaction write sets. A write inside a multi-document
 * transaction bumps its generations at once, but the data it changed only
 * becomes visible at commit, so the commit (or abort) must bump them again.
 * The table remembers, per session (the command's lsid), the generation
 * records written since the transaction began.
 */
#ifndef MONGOCACHE_CACHE_TXN_H
#define MONGOCACHE_CACHE_TXN_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

struct cache_gen_rec;

/* Most records one write set holds; beyond that it is marked overflow. */
#define CACHE_TXN_MAX_RECS 64

/* Namespaces written inside one transaction. */
struct cache_txn_writes {
    struct cache_gen_rec *recs[CACHE_TXN_MAX_RECS]; /* each held (cache_gen_ref) */
    uint32_t n;
    bool overflow; /* more were written than recs holds: the end must bump everything */
};

/* The open write sets, by session. */
struct cache_txn;

/* An empty table. Free with cache_txn_destroy (NULL is a no-op). */
struct cache_txn *cache_txn_new(void);
void cache_txn_destroy(struct cache_txn *txn);

/*
 * How long the table, once its ring of forgotten transactions has itself
 * forgotten one, treats every transaction as possibly forgotten (below):
 * well past mongod's transaction lifetime (transactionLifetimeLimitSeconds,
 * 60 s by default), after which the server has aborted it.
 */
#define CACHE_TXN_LOST_WINDOW_MS (10 * 60 * 1000)

/*
 * The write set of the transaction named by body's lsid and txnNumber, or
 * NULL when body has no lsid document (or one too long to be ours). A
 * session has one set, for its latest transaction seen here. With create,
 * a set is opened when there is none (or the session's is for an earlier
 * transaction, which is over: that set is dropped); the number open is
 * bounded, so opening one more may forget the oldest: its end then finds
 * none and bumps everything, and if the transaction writes again first,
 * the set opened then would miss what was forgotten; so the table
 * remembers the last 4,096 transactions whose sets it forgot, and a set
 * opened by a statement that does not start its transaction (starts
 * false) for one of them (or for any, within CACHE_TXN_LOST_WINDOW_MS of
 * that memory running over; now_ms) is overflow from the start. Without
 * create, NULL when the transaction has no set. The pointer is valid
 * until cache_txn_drop or the next cache_txn_find with create.
 */
struct cache_txn_writes *cache_txn_find(struct cache_txn *txn, const bson_t *body, bool create,
                                        bool starts, uint64_t now_ms);

/* Adds rec to the set (once, held until the set is dropped), or marks the set overflow when it is full. */
void cache_txn_add(struct cache_txn_writes *writes, struct cache_gen_rec *rec);

/* The transaction ended: forgets its set. */
void cache_txn_drop(struct cache_txn *txn, struct cache_txn_writes *writes);

#endif
