/*
 * wire/names.h: the command, option, operator and stage names the proxy
 * acts on, each with an id, so that a name read off the wire is matched
 * once (wire_names_lookup) and the code above switches on the id instead of
 * running a chain of strcmp. The match is exact: same length, same bytes,
 * case-sensitive; a key is taken with its length from the wire, so a NUL
 * inside it never shortens it. Which names mean what (readable, a write,
 * nondeterministic) stays with the code that decides it (cache/policy.c,
 * proxy/router.c, ...): this file only names them.
 */
#ifndef MONGOCACHE_WIRE_NAMES_H
#define MONGOCACHE_WIRE_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Every name once: X(a, ID, "text"), a being passed through for the callers
 * that need an argument. Kept in order of length, for the reader; a new
 * name goes among the names of its length.
 */
#define WIRE_NAMES(X, a) \
    X(a, DB, "db") \
    X(a, ID, "id") \
    X(a, ME, "me") \
    X(a, OK, "ok") \
    X(a, DOLLAR_DB, "$db") \
    X(a, MSG, "msg") \
    X(a, DOLLAR_OUT, "$out") \
    X(a, COLL, "coll") \
    X(a, DROP, "drop") \
    X(a, FIND, "find") \
    X(a, FROM, "from") \
    X(a, LSID, "lsid") \
    X(a, TAGS, "tags") \
    X(a, DOLLAR_META, "$meta") \
    X(a, DOLLAR_RAND, "$rand") \
    X(a, COUNT, "count") \
    X(a, HELLO, "hello") \
    X(a, HOSTS, "hosts") \
    X(a, LEVEL, "level") \
    X(a, MERGE, "merge") \
    X(a, DOLLAR_MERGE, "$merge") \
    X(a, DOLLAR_WHERE, "$where") \
    X(a, CREATE, "create") \
    X(a, CURSOR, "cursor") \
    X(a, DELETE, "delete") \
    X(a, HIDDEN, "hidden") \
    X(a, INSERT, "insert") \
    X(a, LOGOUT, "logout") \
    X(a, REDUCE, "reduce") \
    X(a, UPDATE, "update") \
    X(a, DOLLAR_LOOKUP, "$lookup") \
    X(a, DOLLAR_SAMPLE, "$sample") \
    X(a, DOLLAR_SEARCH, "$search") \
    X(a, COLL_MOD, "collMod") \
    X(a, COMMENT, "comment") \
    X(a, COMPACT, "compact") \
    X(a, EXHAUST, "exhaust") \
    X(a, EXPLAIN, "explain") \
    X(a, GET_MORE, "getMore") \
    X(a, PASSIVE, "passive") \
    X(a, PRIMARY, "primary") \
    X(a, REPLACE, "replace") \
    X(a, SET_NAME, "setName") \
    X(a, APPLY_OPS, "applyOps") \
    X(a, ARBITERS, "arbiters") \
    X(a, DISTINCT, "distinct") \
    X(a, DROP_ROLE, "dropRole") \
    X(a, DROP_USER, "dropUser") \
    X(a, IS_MASTER, "isMaster") \
    X(a, ISMASTER, "ismaster") \
    X(a, PASSIVES, "passives") \
    X(a, TAILABLE, "tailable") \
    X(a, VALIDATE, "validate") \
    X(a, DOLLAR_FUNCTION, "$function") \
    X(a, AGGREGATE, "aggregate") \
    X(a, AWAIT_DATA, "awaitData") \
    X(a, BATCH_SIZE, "batchSize") \
    X(a, BULK_WRITE, "bulkWrite") \
    X(a, LAST_WRITE, "lastWrite") \
    X(a, MAP_REDUCE, "mapReduce") \
    X(a, MAPREDUCE, "mapreduce") \
    X(a, MAX_TIME_MS, "maxTimeMS") \
    X(a, SASL_START, "saslStart") \
    X(a, SECONDARY, "secondary") \
    X(a, SERVICE_ID, "serviceId") \
    X(a, TXN_NUMBER, "txnNumber") \
    X(a, DOLLAR_COLL_STATS, "$collStats") \
    X(a, DOLLAR_CURRENT_OP, "$currentOp") \
    X(a, DOLLAR_UNION_WITH, "$unionWith") \
    X(a, AUTOCOMMIT, "autocommit") \
    X(a, CREATE_ROLE, "createRole") \
    X(a, CREATE_USER, "createUser") \
    X(a, ELECTION_ID, "electionId") \
    X(a, SET_VERSION, "setVersion") \
    X(a, UPDATE_ROLE, "updateRole") \
    X(a, UPDATE_USER, "updateUser") \
    X(a, DOLLAR_INDEX_STATS, "$indexStats") \
    X(a, DOLLAR_QUERY_STATS, "$queryStats") \
    X(a, DOLLAR_SAMPLE_RATE, "$sampleRate") \
    X(a, DOLLAR_SEARCH_META, "$searchMeta") \
    X(a, AFTER_OP_TIME, "afterOpTime") \
    X(a, ARBITER_ONLY, "arbiterOnly") \
    X(a, COMPRESSION, "compression") \
    X(a, DROP_INDEXES, "dropIndexes") \
    X(a, KILL_CURSORS, "killCursors") \
    X(a, READ_CONCERN, "readConcern") \
    X(a, DOLLAR_ACCUMULATOR, "$accumulator") \
    X(a, DOLLAR_CLUSTER_TIME, "$clusterTime") \
    X(a, DOLLAR_GRAPH_LOOKUP, "$graphLookup") \
    X(a, DOLLAR_LIST_CATALOG, "$listCatalog") \
    X(a, AUTHENTICATE, "authenticate") \
    X(a, DROP_DATABASE, "dropDatabase") \
    X(a, ISREPLICASET, "isreplicaset") \
    X(a, LOAD_BALANCED, "loadBalanced") \
    X(a, SASL_CONTINUE, "saslContinue") \
    X(a, DOLLAR_CHANGE_STREAM, "$changeStream") \
    X(a, DOLLAR_LIST_SESSIONS, "$listSessions") \
    X(a, DOLLAR_VECTOR_SEARCH, "$vectorSearch") \
    X(a, AT_CLUSTER_TIME, "atClusterTime") \
    X(a, CREATE_INDEXES, "createIndexes") \
    X(a, DELETE_INDEXES, "deleteIndexes") \
    X(a, FIND_AND_MODIFY, "findAndModify") \
    X(a, FINDANDMODIFY, "findandmodify") \
    X(a, DOLLAR_PLAN_CACHE_STATS, "$planCacheStats") \
    X(a, CONVERT_TO_CAPPED, "convertToCapped") \
    X(a, MONGOCACHE_FLUSH, "mongocacheFlush") \
    X(a, MONGOCACHE_STATS, "mongocacheStats") \
    X(a, TOPOLOGY_VERSION, "topologyVersion") \
    X(a, ABORT_TRANSACTION, "abortTransaction") \
    X(a, AFTER_CLUSTER_TIME, "afterClusterTime") \
    X(a, GRANT_ROLES_TO_ROLE, "grantRolesToRole") \
    X(a, GRANT_ROLES_TO_USER, "grantRolesToUser") \
    X(a, RENAME_COLLECTION, "renameCollection") \
    X(a, START_TRANSACTION, "startTransaction") \
    X(a, DOLLAR_OPERATION_METRICS, "$operationMetrics") \
    X(a, COMMIT_TRANSACTION, "commitTransaction") \
    X(a, MAX_BSON_OBJECT_SIZE, "maxBsonObjectSize") \
    X(a, WRITE_CONCERN_ERROR, "writeConcernError") \
    X(a, DOLLAR_LIST_LOCAL_SESSIONS, "$listLocalSessions") \
    X(a, DOLLAR_LIST_SEARCH_INDEXES, "$listSearchIndexes") \
    X(a, DOLLAR_LIST_CLUSTER_CATALOG, "$listClusterCatalog") \
    X(a, DOLLAR_LIST_SAMPLED_QUERIES, "$listSampledQueries") \
    X(a, ALLOW_PARTIAL_RESULTS, "allowPartialResults") \
    X(a, MAX_MESSAGE_SIZE_BYTES, "maxMessageSizeBytes") \
    X(a, REVOKE_ROLES_FROM_ROLE, "revokeRolesFromRole") \
    X(a, REVOKE_ROLES_FROM_USER, "revokeRolesFromUser") \
    X(a, MONGOCACHE_INVALIDATE, "mongocacheInvalidate") \
    X(a, GRANT_PRIVILEGES_TO_ROLE, "grantPrivilegesToRole") \
    X(a, CLONE_COLLECTION_AS_CAPPED, "cloneCollectionAsCapped") \
    X(a, SPECULATIVE_AUTHENTICATE, "speculativeAuthenticate") \
    X(a, DOLLAR_SHARDED_DATA_DISTRIBUTION, "$shardedDataDistribution") \
    X(a, DROP_ALL_ROLES_FROM_DATABASE, "dropAllRolesFromDatabase") \
    X(a, DROP_ALL_USERS_FROM_DATABASE, "dropAllUsersFromDatabase") \
    X(a, REVOKE_PRIVILEGES_FROM_ROLE, "revokePrivilegesFromRole") \
    X(a, DOLLAR_CHANGE_STREAM_SPLIT_LARGE_EVENT, "$changeStreamSplitLargeEvent")

/* The longest name above (wire/names.c checks it). */
#define WIRE_NAMES_MAX_LEN 28

enum wire_name {
    WIRE_NAME_UNKNOWN = 0, /* not one of WIRE_NAMES */
#define WIRE_NAME_ENUM(a, id, text) WIRE_NAME_##id,
    WIRE_NAMES(WIRE_NAME_ENUM, 0)
#undef WIRE_NAME_ENUM
        WIRE_NAMES_COUNT /* how many ids, WIRE_NAME_UNKNOWN included */
};

/*
 * The id of the len bytes at s (need not be NUL-terminated; NULL only with
 * len 0), or WIRE_NAME_UNKNOWN when they are not exactly one of WIRE_NAMES.
 */
enum wire_name wire_names_lookup(const char *s, size_t len);

/*
 * wire_names_lookup when avail (>= len) bytes can be read at s: with eight
 * there, the first eight are read as one word (a key in a document always
 * has its NUL and the document's after it).
 */
enum wire_name wire_names_lookup_in(const char *s, size_t len, size_t avail);

/* True when the len bytes at s are exactly the name id (cheaper than a lookup for one name). */
bool wire_names_is(const char *s, size_t len, enum wire_name id);

/* The text of id (a static string), or NULL for WIRE_NAME_UNKNOWN or out of range. */
const char *wire_names_text(enum wire_name id);

#endif
