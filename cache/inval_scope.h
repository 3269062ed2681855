/*
 * cache/inval_scope.h: the write side of the policy: which commands write,
 * and what they may change (namespaces, databases, a principal, or
 * everything), so what cache/inval.c must bump. Leans one way: a write
 * whose targets cannot be read is scoped to everything, never to less.
 * Pure functions over checked documents: no I/O, no state.
 */
#ifndef MONGOCACHE_CACHE_INVAL_SCOPE_H
#define MONGOCACHE_CACHE_INVAL_SCOPE_H

#include "cache/policy.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* What a command may change, so what the proxy must invalidate. */
enum cache_write_scope {
    CACHE_WRITE_NONE,      /* a read or a command that changes no data */
    CACHE_WRITE_NS,        /* the collections in ns[] */
    CACHE_WRITE_DB,        /* whole databases: the db fields of ns[] (DDL) */
    CACHE_WRITE_USER,      /* the entries of principal user@db (user management) */
    CACHE_WRITE_ALL,       /* everything (role changes, unknown scope, too many namespaces) */
    CACHE_WRITE_TXN_END,   /* commitTransaction/abortTransaction: the session's writes */
};

#define CACHE_INVAL_SCOPE_MAX_NS 16

struct cache_write {
    enum cache_write_scope scope;
    struct cache_ns_ref ns[CACHE_INVAL_SCOPE_MAX_NS]; /* the first n_ns are set */
    uint32_t n_ns;
    const char *user;     /* CACHE_WRITE_USER: the user name, inside the command */
    uint32_t user_len;
    bool in_transaction;  /* txnNumber with autocommit:false: bump again at commit */
    bool starts_transaction; /* in_transaction, with startTransaction: true */
};

/*
 * Classifies a command by what it may write. body is checked; cmd as for
 * cache_policy_request (NULL: read again from body); db its $db;
 * seqs/n_seqs its OP_MSG kind-1 sections (the 8.0 bulkWrite names its
 * namespaces in an nsInfo sequence), passed as (id, first document, bytes).
 *   insert, update, delete, findAndModify, createIndexes, dropIndexes,
 *   compact, validate -> NS (db.coll);
 *   aggregate with $out / $merge -> NS (the target, in its own db if given);
 *   bulkWrite (admin) -> NS for each nsInfo.ns ("db.coll" strings);
 *   drop, create, collMod, convertToCapped, cloneCollectionAsCapped,
 *   dropDatabase -> DB (the command's db); renameCollection -> DB for the
 *   databases of `renameCollection` and `to` ("db.coll" strings);
 *   createUser, updateUser, dropUser, grantRolesToUser, revokeRolesFromUser
 *   -> USER (user points at the user named; ns[0].db is db);
 *   dropAllUsersFromDatabase, createRole, updateRole, dropRole,
 *   dropAllRolesFromDatabase, grantPrivilegesToRole,
 *   revokePrivilegesFromRole, grantRolesToRole, revokeRolesFromRole,
 *   applyOps -> ALL;
 *   mapReduce with an output collection (out: "coll" or {replace|merge|
 *   reduce: coll, db}) -> NS (the output); out: {inline: 1} -> NONE;
 *   commitTransaction, abortTransaction -> TXN_END;
 *   any other command (reads, and commands that change no data) -> NONE.
 * The aliases findandmodify, deleteIndexes and mapreduce count as their
 * commands. A listed command whose targets cannot be read (a malformed
 * target, duplicate top-level keys, no db, more than
 * CACHE_INVAL_SCOPE_MAX_NS namespaces) -> ALL. An NS command whose
 * collection is not a string (a UUID) -> DB. For DB scope ns[] holds
 * databases only (coll NULL). in_transaction is set for any command
 * carrying txnNumber together with autocommit: false (a read too),
 * starts_transaction when it also carries startTransaction: true.
 */
void cache_inval_scope_classify(const bson_t *body, const struct wire_cmd *cmd, const char *db,
                                const char *const *seq_ids, const uint8_t *const *seq_docs,
                                const uint32_t *seq_lens, uint32_t n_seqs,
                                struct cache_write *write);

#endif
