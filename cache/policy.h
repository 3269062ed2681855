/*
 * cache/policy.h: what may be cached (what a write invalidates is
 * cache/inval_scope.h). An allowlist: find, aggregate, count and distinct,
 * only under the conditions below (docs/compatibility.md lists them for
 * users); every other command passes through. Every
 * decision has a reason, which the proxy counts and logs at debug level.
 * Pure functions over checked command and reply documents: no I/O, no state.
 */
#ifndef MONGOCACHE_CACHE_POLICY_H
#define MONGOCACHE_CACHE_POLICY_H

#include "wire/cmd.h"
#include "wire/names.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Why a request or reply is (not) cacheable. CACHE_POLICY_REASONS(X) lists
 * them once: X(enum suffix, "name used in stats and logs").
 */
#define CACHE_POLICY_REASONS(X) \
    X(OK, "cacheable") \
    X(NOT_A_READ, "not_a_cacheable_command") \
    X(NO_COLLECTION, "no_collection") \
    X(SYSTEM_NAMESPACE, "system_namespace") \
    X(DUPLICATE_FIELD, "duplicate_top_level_field") \
    X(SEQUENCES, "document_sequences") \
    X(TRANSACTION, "transaction") \
    X(READ_CONCERN, "read_concern") \
    X(CLUSTER_TIME, "after_or_at_cluster_time") \
    X(TAILABLE, "tailable_or_await") \
    X(EXHAUST, "exhaust") \
    X(PARTIAL, "allow_partial_results") \
    X(NONDETERMINISTIC, "nondeterministic_operator") \
    X(WRITE_STAGE, "out_or_merge_stage") \
    X(SERVER_STATE, "server_state_stage") \
    X(TOO_MANY_NAMESPACES, "too_many_namespaces") \
    X(EXPLAIN, "explain") \
    X(SKIP_REQUESTED, "skip_requested") \
    X(REPLY_ERROR, "reply_not_ok") \
    X(REPLY_WRITE_CONCERN_ERROR, "reply_write_concern_error") \
    X(REPLY_OPEN_CURSOR, "reply_cursor_open") \
    X(REPLY_TOO_LARGE, "reply_too_large") \
    X(REPLY_MALFORMED, "reply_malformed")

enum cache_policy_reason {
#define CACHE_POLICY_ENUM(name, text) CACHE_POLICY_##name,
    CACHE_POLICY_REASONS(CACHE_POLICY_ENUM)
#undef CACHE_POLICY_ENUM
        CACHE_POLICY_REASON_COUNT
};

const char *cache_policy_reason_name(enum cache_policy_reason reason);

/*
 * The commands the policy judges as reads, each X(WIRE_NAME_...): every
 * other command is CACHE_POLICY_NOT_A_READ (explain: CACHE_POLICY_EXPLAIN).
 * A list of names, not code: proxy/lookup.c expands it to count the reads
 * it forwards with the cache off without calling the cache.
 */
#define CACHE_POLICY_READS(X) \
    X(WIRE_NAME_FIND) \
    X(WIRE_NAME_AGGREGATE) \
    X(WIRE_NAME_COUNT) \
    X(WIRE_NAME_DISTINCT)

/* A command's `comment` with this value (or starting with it) skips the cache. */
#define CACHE_POLICY_SKIP_COMMENT "mongocache:nocache"

/* Most namespaces one cached read may depend on ($lookup, $unionWith, ...). */
#define CACHE_POLICY_MAX_NAMESPACES 8

/* A namespace, pointing into the checked command (not NUL-terminated). */
struct cache_ns_ref {
    const char *db;
    uint32_t db_len;
    const char *coll;
    uint32_t coll_len;
};

/* What a cacheable read depends on. */
struct cache_read {
    struct cache_ns_ref ns[CACHE_POLICY_MAX_NAMESPACES]; /* ns[0] is the command's own */
    uint32_t n_ns;
};

/*
 * Decides whether the command body (checked; its first key is the command
 * name) may be answered from the cache. cmd is body already read with
 * wire_cmd_parse (NULL: read it here). db is the command's $db. n_sequences
 * is the number of OP_MSG kind-1 sections with it (reads never have any).
 * On CACHE_POLICY_OK fills read with the namespaces the result depends on:
 * the command's own collection first, then every collection named by
 * $lookup (from), $graphLookup (from) and $unionWith (coll), at any depth
 * of nested pipelines (a `{db, coll}` form is honoured), deduplicated.
 *
 * Not cacheable (the reason says which): a command other than find,
 * aggregate, count, distinct; the collection argument not a string (a UUID,
 * or aggregate: 1 on a database); duplicate top-level keys; any document
 * sequence; lsid with txnNumber, autocommit or startTransaction (a
 * transaction); readConcern level other than local, available or majority,
 * or with afterClusterTime or atClusterTime; tailable, awaitData, exhaust,
 * allowPartialResults; explain; $where, $function, $accumulator, $rand,
 * $sample, $$NOW, $$CLUSTER_TIME anywhere in the command; $out or $merge
 * stages; $currentOp, $listSessions, $listLocalSessions, $collStats,
 * $indexStats, $planCacheStats, $changeStream stages; more than
 * CACHE_POLICY_MAX_NAMESPACES namespaces; a comment that asks to skip.
 * Also not cacheable: any namespace the server writes by itself (system.*
 * collections such as system.profile, and the local and config databases),
 * which no write through the proxy invalidates. tailable, awaitData,
 * exhaust, allowPartialResults and explain count when true (false, 0 and
 * null are the defaults). When several reasons apply, the one found first
 * is returned: the command, its collection, duplicates, sequences, the own
 * namespace, the skip comment, then the top-level options (the one listed
 * first above wins), then the operators and stages anywhere in the body.
 * The exhaustAllowed flag of OP_MSG is not in the body: the caller checks it.
 */
enum cache_policy_reason cache_policy_request(const bson_t *body, const struct wire_cmd *cmd,
                                              const char *db, uint32_t n_sequences,
                                              struct cache_read *read);

/*
 * Decides whether a reply body (checked) to a cacheable request may be
 * stored: ok is 1, no writeConcernError, and a cursor (when there is one)
 * with id 0. reply_len is the whole reply message's length, compared with
 * max_entry_bytes.
 */
enum cache_policy_reason cache_policy_reply(const bson_t *reply, size_t reply_len,
                                            size_t max_entry_bytes);

/*
 * Reads a namespace given as a string (a collection in def_db) or as a
 * document {db, <coll_key>} (db optional), pointing into the value. Sets
 * *found to false when the value is a document without <coll_key>. False
 * when the value cannot name a namespace. Shared with the write side
 * (cache/inval_scope.c), which reads $out and mapReduce targets the same way.
 */
bool cache_policy_ns_value(const bson_iter_t *value, enum wire_name coll_key, const char *def_db,
                           uint32_t def_db_len, const char **db, uint32_t *db_len,
                           const char **coll, uint32_t *coll_len, bool *found);

#endif
