/*
 * tests/unit/test_cache_policy.c: owns the tests of cache/policy.c, the
 * cacheability table (requests and replies, one TAP line per row), and of
 * cache/inval_scope.c, the write-scope table. It does not test key
 * building, generations or the cache door (their own test programs).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "cache/inval_scope.h"
#include "cache/policy.h"
#include "wire/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R(x) CACHE_POLICY_##x

/* db field of a row: NULL means "d"; NO_DB passes NULL. */
#define NO_DB "-"

struct req_case {
    const char *name;
    const char *body;
    enum cache_policy_reason want;
    const char *ns; /* when OK: "db.coll,db.coll" in order */
    const char *db;
    uint32_t n_seq;
};

static const struct req_case req_cases[] = {
    /* the four cacheable commands, plain and with their options */
    {"find plain", "{'find': 'c', 'filter': {'a': 1}, '$db': 'd'}", R(OK), "d.c", NULL, 0},
    {"aggregate plain", "{'aggregate': 'c', 'pipeline': [{'$match': {'a': 1}}], 'cursor': {}}",
     R(OK), "d.c", NULL, 0},
    {"count plain", "{'count': 'c', 'query': {'a': 1}}", R(OK), "d.c", NULL, 0},
    {"distinct plain", "{'distinct': 'c', 'key': 'a', 'query': {}}", R(OK), "d.c", NULL, 0},
    {"find no filter", "{'find': 'c'}", R(OK), "d.c", NULL, 0},
    {"find sort projection skip limit",
     "{'find': 'c', 'filter': {}, 'sort': {'a': -1, 'b': 1}, 'projection': {'a': 1}, 'skip': 5, "
     "'limit': 10}",
     R(OK), "d.c", NULL, 0},
    {"find hint", "{'find': 'c', 'filter': {'a': 1}, 'hint': {'a': 1}}", R(OK), "d.c", NULL, 0},
    {"find collation", "{'find': 'c', 'collation': {'locale': 'fr', 'strength': 2}}", R(OK), "d.c",
     NULL, 0},
    {"find let with $$var",
     "{'find': 'c', 'filter': {'$expr': {'$eq': ['$a', '$$x']}}, "
     "'let': {'x': 1}}",
     R(OK), "d.c", NULL, 0},
    {"aggregate let",
     "{'aggregate': 'c', 'pipeline': [{'$match': {'$expr': {'$gt': ['$a', "
     "'$$min']}}}], 'let': {'min': 3}, 'cursor': {}}",
     R(OK), "d.c", NULL, 0},
    {"find batchSize singleBatch", "{'find': 'c', 'batchSize': 101, 'singleBatch': true}", R(OK),
     "d.c", NULL, 0},
    {"find lsid without transaction", "{'find': 'c', 'lsid': {'id': 1}}", R(OK), "d.c", NULL, 0},
    {"find maxTimeMS and other comment", "{'find': 'c', 'maxTimeMS': 100, 'comment': 'hi'}", R(OK),
     "d.c", NULL, 0},
    {"find $readPreference", "{'find': 'c', '$readPreference': {'mode': 'secondary'}}", R(OK),
     "d.c", NULL, 0},
    {"find $clusterTime",
     "{'find': 'c', '$clusterTime': {'clusterTime': {'$timestamp': {'t': "
     "1, 'i': 1}}}}",
     R(OK), "d.c", NULL, 0},
    {"count hint limit skip", "{'count': 'c', 'query': {}, 'hint': 'a_1', 'limit': 3, 'skip': 1}",
     R(OK), "d.c", NULL, 0},
    {"distinct collation", "{'distinct': 'c', 'key': 'a', 'collation': {'locale': 'en'}}", R(OK),
     "d.c", NULL, 0},
    {"aggregate group sum",
     "{'aggregate': 'c', 'pipeline': [{'$group': {'_id': '$a', 'n': "
     "{'$sum': 1}}}, {'$sort': {'n': -1}}], 'cursor': {}}",
     R(OK), "d.c", NULL, 0},
    {"aggregate allowDiskUse",
     "{'aggregate': 'c', 'pipeline': [], 'allowDiskUse': true, "
     "'cursor': {}}",
     R(OK), "d.c", NULL, 0},
    {"find tailable false", "{'find': 'c', 'tailable': false}", R(OK), "d.c", NULL, 0},
    {"find allowPartialResults false", "{'find': 'c', 'allowPartialResults': false}", R(OK), "d.c",
     NULL, 0},
    {"aggregate explain false", "{'aggregate': 'c', 'pipeline': [], 'explain': false}", R(OK),
     "d.c", NULL, 0},
    {"db from $db when none given", "{'find': 'c', '$db': 'e'}", R(OK), "e.c", NO_DB, 0},
    {"field named where without $", "{'find': 'c', 'filter': {'where': 1, 'rand': 2}}", R(OK),
     "d.c", NULL, 0},
    {"$$NOW inside a longer literal string", "{'find': 'c', 'filter': {'a': 'x$$NOW'}}", R(OK),
     "d.c", NULL, 0},
    {"readConcern local", "{'find': 'c', 'readConcern': {'level': 'local'}}", R(OK), "d.c", NULL,
     0},
    {"readConcern available", "{'find': 'c', 'readConcern': {'level': 'available'}}", R(OK), "d.c",
     NULL, 0},
    {"readConcern majority", "{'find': 'c', 'readConcern': {'level': 'majority'}}", R(OK), "d.c",
     NULL, 0},
    {"readConcern empty", "{'find': 'c', 'readConcern': {}}", R(OK), "d.c", NULL, 0},

    /* commands that are not cacheable reads */
    {"getMore", "{'getMore': {'$numberLong': '5'}, 'collection': 'c'}", R(NOT_A_READ), NULL, NULL,
     0},
    {"killCursors", "{'killCursors': 'c', 'cursors': [{'$numberLong': '5'}]}", R(NOT_A_READ), NULL,
     NULL, 0},
    {"hello", "{'hello': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"isMaster", "{'isMaster': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"ismaster", "{'ismaster': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"saslStart", "{'saslStart': 1, 'mechanism': 'SCRAM-SHA-256', 'payload': ''}", R(NOT_A_READ),
     NULL, NULL, 0},
    {"saslContinue", "{'saslContinue': 1, 'conversationId': 1, 'payload': ''}", R(NOT_A_READ), NULL,
     NULL, 0},
    {"authenticate", "{'authenticate': 1, 'mechanism': 'MONGODB-X509'}", R(NOT_A_READ), NULL, NULL,
     0},
    {"logout", "{'logout': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"getnonce", "{'getnonce': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"connectionStatus", "{'connectionStatus': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"whatsmyuri", "{'whatsmyuri': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"serverStatus", "{'serverStatus': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"currentOp command", "{'currentOp': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"usersInfo", "{'usersInfo': 'u'}", R(NOT_A_READ), NULL, NULL, 0},
    {"rolesInfo", "{'rolesInfo': 1}", R(NOT_A_READ), NULL, NULL, 0},
    {"insert", "{'insert': 'c', 'documents': [{'a': 1}]}", R(NOT_A_READ), NULL, NULL, 0},
    {"update", "{'update': 'c', 'updates': [{'q': {}, 'u': {'$set': {'a': 1}}}]}", R(NOT_A_READ),
     NULL, NULL, 0},
    {"delete", "{'delete': 'c', 'deletes': [{'q': {}, 'limit': 0}]}", R(NOT_A_READ), NULL, NULL, 0},
    {"findAndModify", "{'findAndModify': 'c', 'query': {}, 'remove': true}", R(NOT_A_READ), NULL,
     NULL, 0},
    {"listCollections", "{'listCollections': 1, 'filter': {}}", R(NOT_A_READ), NULL, NULL, 0},
    {"listIndexes", "{'listIndexes': 'c'}", R(NOT_A_READ), NULL, NULL, 0},
    {"mapReduce inline", "{'mapReduce': 'c', 'map': 'f', 'reduce': 'g', 'out': {'inline': 1}}",
     R(NOT_A_READ), NULL, NULL, 0},
    {"command names are case-sensitive", "{'Find': 'c'}", R(NOT_A_READ), NULL, NULL, 0},
    {"empty body", "{}", R(NOT_A_READ), NULL, NULL, 0},
    {"explain command", "{'explain': {'find': 'c'}, 'verbosity': 'queryPlanner'}", R(EXPLAIN), NULL,
     NULL, 0},
    {"find explain true", "{'find': 'c', 'explain': true}", R(EXPLAIN), NULL, NULL, 0},
    {"aggregate explain true", "{'aggregate': 'c', 'pipeline': [], 'explain': true}", R(EXPLAIN),
     NULL, NULL, 0},

    /* the collection argument */
    {"aggregate: 1 on a database",
     "{'aggregate': 1, 'pipeline': [{'$documents': [{'a': 1}]}], 'cursor': {}}", R(NO_COLLECTION),
     NULL, NULL, 0},
    {"find: 1", "{'find': 1}", R(NO_COLLECTION), NULL, NULL, 0},
    {"find by UUID (binary subtype 4)",
     "{'find': {'$binary': {'base64': 'AAECAwQFBgcICQoLDA0ODw==', 'subType': '04'}}}",
     R(NO_COLLECTION), NULL, NULL, 0},
    {"count with a document", "{'count': {'c': 1}}", R(NO_COLLECTION), NULL, NULL, 0},
    {"distinct null", "{'distinct': null, 'key': 'a'}", R(NO_COLLECTION), NULL, NULL, 0},
    {"empty collection name", "{'find': ''}", R(NO_COLLECTION), NULL, NULL, 0},
    {"no db anywhere", "{'find': 'c'}", R(NO_COLLECTION), NULL, NO_DB, 0},
    {"system.profile", "{'find': 'system.profile'}", R(SYSTEM_NAMESPACE), NULL, NULL, 0},
    {"local.oplog.rs", "{'find': 'oplog.rs'}", R(SYSTEM_NAMESPACE), NULL, "local", 0},
    {"config database", "{'find': 'chunks'}", R(SYSTEM_NAMESPACE), NULL, "config", 0},
    {"admin.system.users", "{'count': 'system.users'}", R(SYSTEM_NAMESPACE), NULL, "admin", 0},
    {"$lookup from system.views",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': "
     "'system.views', 'as': 'v', 'pipeline': []}}]}",
     R(SYSTEM_NAMESPACE), NULL, NULL, 0},

    /* document sequences */
    {"find with one document sequence", "{'find': 'c'}", R(SEQUENCES), NULL, NULL, 1},

    /* transactions */
    {"txnNumber", "{'find': 'c', 'txnNumber': {'$numberLong': '1'}}", R(TRANSACTION), NULL, NULL,
     0},
    {"autocommit false", "{'find': 'c', 'autocommit': false}", R(TRANSACTION), NULL, NULL, 0},
    {"startTransaction", "{'find': 'c', 'startTransaction': true}", R(TRANSACTION), NULL, NULL, 0},
    {"lsid txnNumber autocommit",
     "{'find': 'c', 'lsid': {'id': 1}, 'txnNumber': 2, "
     "'autocommit': false}",
     R(TRANSACTION), NULL, NULL, 0},
    {"aggregate in a transaction",
     "{'aggregate': 'c', 'pipeline': [], 'txnNumber': 3, "
     "'autocommit': false, 'startTransaction': true}",
     R(TRANSACTION), NULL, NULL, 0},
    {"count in a transaction", "{'count': 'c', 'txnNumber': 3, 'autocommit': false}",
     R(TRANSACTION), NULL, NULL, 0},

    /* read concern */
    {"readConcern snapshot", "{'find': 'c', 'readConcern': {'level': 'snapshot'}}", R(READ_CONCERN),
     NULL, NULL, 0},
    {"readConcern linearizable", "{'find': 'c', 'readConcern': {'level': 'linearizable'}}",
     R(READ_CONCERN), NULL, NULL, 0},
    {"readConcern unknown level", "{'find': 'c', 'readConcern': {'level': 'fresh'}}",
     R(READ_CONCERN), NULL, NULL, 0},
    {"readConcern level a number", "{'find': 'c', 'readConcern': {'level': 1}}", R(READ_CONCERN),
     NULL, NULL, 0},
    {"readConcern a string", "{'find': 'c', 'readConcern': 'majority'}", R(READ_CONCERN), NULL,
     NULL, 0},
    {"readConcern unknown field", "{'find': 'c', 'readConcern': {'level': 'local', 'x': 1}}",
     R(READ_CONCERN), NULL, NULL, 0},
    {"afterClusterTime",
     "{'find': 'c', 'readConcern': {'level': 'majority', "
     "'afterClusterTime': {'$timestamp': {'t': 1, 'i': 1}}}}",
     R(CLUSTER_TIME), NULL, NULL, 0},
    {"atClusterTime without level",
     "{'find': 'c', 'readConcern': {'atClusterTime': "
     "{'$timestamp': {'t': 1, 'i': 1}}}}",
     R(CLUSTER_TIME), NULL, NULL, 0},
    {"snapshot at a cluster time",
     "{'find': 'c', 'readConcern': {'level': 'snapshot', "
     "'atClusterTime': {'$timestamp': {'t': 1, 'i': 1}}}}",
     R(READ_CONCERN), NULL, NULL, 0},
    {"afterClusterTime on distinct",
     "{'distinct': 'c', 'key': 'a', 'readConcern': "
     "{'afterClusterTime': {'$timestamp': {'t': 2, 'i': 1}}}}",
     R(CLUSTER_TIME), NULL, NULL, 0},

    /* cursor flags */
    {"tailable", "{'find': 'c', 'tailable': true}", R(TAILABLE), NULL, NULL, 0},
    {"awaitData", "{'find': 'c', 'tailable': true, 'awaitData': true}", R(TAILABLE), NULL, NULL, 0},
    {"tailable 1", "{'find': 'c', 'tailable': 1}", R(TAILABLE), NULL, NULL, 0},
    {"exhaust", "{'find': 'c', 'exhaust': true}", R(EXHAUST), NULL, NULL, 0},
    {"allowPartialResults", "{'find': 'c', 'allowPartialResults': true}", R(PARTIAL), NULL, NULL,
     0},
    {"transaction wins over tailable", "{'find': 'c', 'tailable': true, 'txnNumber': 1}",
     R(TRANSACTION), NULL, NULL, 0},

    /* the scan first sifts each top-level document for a '$' byte: one found
     * in a value alone is walked and passes; an operator deep in a document
     * whose first elements hold no '$' is still found, at its end too */
    {"'$' only inside values and an int 36 ('$')",
     "{'find': 'c', 'filter': {'a': 'x$y', 'b': 36, 'c': {'d': '$$y'}}, 'sort': {'e': 36}}", R(OK),
     "d.c", NULL, 0},
    {"$where after 300 plain bytes",
     "{'find': 'c', 'filter': {'a': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'b': {'c': [1, {'d': "
     "{'$where': 'true'}}]}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$$NOW the last value of a plain document",
     "{'find': 'c', 'projection': {'a': 1, 'b': {'c': {'d': 1, 'e': '$$NOW'}}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$where in the second of two plain documents",
     "{'find': 'c', 'sort': {'a': 1}, 'filter': {'b': 1, 'c': {'$where': 'true'}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},

    /* nondeterministic operators, at any depth */
    {"$where in filter", "{'find': 'c', 'filter': {'$where': 'this.a > 1'}}", R(NONDETERMINISTIC),
     NULL, NULL, 0},
    {"$where nested in $and",
     "{'find': 'c', 'filter': {'$and': [{'a': 1}, {'$or': [{'$where': "
     "'true'}]}]}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$where in $elemMatch", "{'find': 'c', 'filter': {'a': {'$elemMatch': {'$where': 'true'}}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$function in $expr",
     "{'find': 'c', 'filter': {'$expr': {'$function': {'body': 'f', "
     "'args': [], 'lang': 'js'}}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$accumulator in $group",
     "{'aggregate': 'c', 'pipeline': [{'$group': {'_id': 1, 'x': "
     "{'$accumulator': {'init': 'f'}}}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$rand in $expr", "{'find': 'c', 'filter': {'$expr': {'$lt': [{'$rand': {}}, 0.5]}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$rand in projection", "{'find': 'c', 'projection': {'r': {'$rand': {}}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$sample stage", "{'aggregate': 'c', 'pipeline': [{'$sample': {'size': 3}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$sampleRate", "{'find': 'c', 'filter': {'$sampleRate': 0.5}}", R(NONDETERMINISTIC), NULL,
     NULL, 0},
    {"$$NOW in $expr", "{'find': 'c', 'filter': {'$expr': {'$lt': ['$t', '$$NOW']}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$$CLUSTER_TIME in $addFields",
     "{'aggregate': 'c', 'pipeline': [{'$addFields': {'t': "
     "'$$CLUSTER_TIME'}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$$NOW in let", "{'find': 'c', 'let': {'now': '$$NOW'}}", R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$$NOW in an array",
     "{'aggregate': 'c', 'pipeline': [{'$project': {'d': {'$subtract': "
     "['$$NOW', '$t']}}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$$NOW prefix", "{'find': 'c', 'filter': {'$expr': {'$eq': ['$a', '$$NOW.x']}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$meta randVal in sort", "{'find': 'c', 'sort': {'r': {'$meta': 'randVal'}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$where in count query", "{'count': 'c', 'query': {'$where': 'true'}}", R(NONDETERMINISTIC),
     NULL, NULL, 0},
    {"$function in distinct query",
     "{'distinct': 'c', 'key': 'a', 'query': {'$expr': "
     "{'$function': {}}}}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$where in $lookup sub-pipeline",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': "
     "'o', 'as': 'x', 'pipeline': [{'$match': {'$where': "
     "'true'}}]}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$rand in $facet",
     "{'aggregate': 'c', 'pipeline': [{'$facet': {'a': [{'$project': {'r': "
     "{'$rand': {}}}}]}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},
    {"$sample in $unionWith pipeline",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': "
     "{'coll': 'u', 'pipeline': [{'$sample': {'size': 1}}]}}]}",
     R(NONDETERMINISTIC), NULL, NULL, 0},

    /* write stages and server state */
    {"$out", "{'aggregate': 'c', 'pipeline': [{'$match': {}}, {'$out': 'o'}]}", R(WRITE_STAGE),
     NULL, NULL, 0},
    {"$out to another db",
     "{'aggregate': 'c', 'pipeline': [{'$out': {'db': 'e', 'coll': "
     "'o'}}]}",
     R(WRITE_STAGE), NULL, NULL, 0},
    {"$merge", "{'aggregate': 'c', 'pipeline': [{'$merge': {'into': 'm'}}]}", R(WRITE_STAGE), NULL,
     NULL, 0},
    {"$merge inside $facet",
     "{'aggregate': 'c', 'pipeline': [{'$facet': {'a': [{'$merge': "
     "'m'}]}}]}",
     R(WRITE_STAGE), NULL, NULL, 0},
    {"$currentOp", "{'aggregate': 'c', 'pipeline': [{'$currentOp': {}}]}", R(SERVER_STATE), NULL,
     NULL, 0},
    {"$listSessions", "{'aggregate': 'c', 'pipeline': [{'$listSessions': {}}]}", R(SERVER_STATE),
     NULL, NULL, 0},
    {"$listLocalSessions", "{'aggregate': 'c', 'pipeline': [{'$listLocalSessions': {}}]}",
     R(SERVER_STATE), NULL, NULL, 0},
    {"$collStats", "{'aggregate': 'c', 'pipeline': [{'$collStats': {'count': {}}}]}",
     R(SERVER_STATE), NULL, NULL, 0},
    {"$indexStats", "{'aggregate': 'c', 'pipeline': [{'$indexStats': {}}]}", R(SERVER_STATE), NULL,
     NULL, 0},
    {"$planCacheStats", "{'aggregate': 'c', 'pipeline': [{'$planCacheStats': {}}]}",
     R(SERVER_STATE), NULL, NULL, 0},
    {"$changeStream", "{'aggregate': 'c', 'pipeline': [{'$changeStream': {}}]}", R(SERVER_STATE),
     NULL, NULL, 0},
    {"$search", "{'aggregate': 'c', 'pipeline': [{'$search': {'text': {}}}]}", R(SERVER_STATE),
     NULL, NULL, 0},

    /* namespaces read by $lookup, $graphLookup, $unionWith */
    {"$lookup from",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': 'o', 'localField': "
     "'a', 'foreignField': 'b', 'as': 'x'}}]}",
     R(OK), "d.c,d.o", NULL, 0},
    {"$lookup from the same collection",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': "
     "'c', 'localField': 'a', 'foreignField': 'b', 'as': "
     "'x'}}]}",
     R(OK), "d.c", NULL, 0},
    {"two $lookup from one collection",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': "
     "'o', 'as': 'x', 'pipeline': []}}, {'$lookup': {'from': "
     "'o', 'as': 'y', 'pipeline': []}}]}",
     R(OK), "d.c,d.o", NULL, 0},
    {"$lookup from {db, coll}",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': {'db': "
     "'e', 'coll': 'o'}, 'as': 'x', 'pipeline': []}}]}",
     R(OK), "d.c,e.o", NULL, 0},
    {"$lookup without from",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'as': 'x', "
     "'pipeline': [{'$documents': [{'a': 1}]}]}}]}",
     R(OK), "d.c", NULL, 0},
    {"$lookup nested in $lookup",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': 'o', "
     "'as': 'x', 'pipeline': [{'$lookup': {'from': 'p', 'as': "
     "'y', 'pipeline': []}}]}}]}",
     R(OK), "d.c,d.o,d.p", NULL, 0},
    {"$lookup inside $facet",
     "{'aggregate': 'c', 'pipeline': [{'$facet': {'a': [{'$lookup': "
     "{'from': 'f', 'as': 'x', 'pipeline': []}}]}}]}",
     R(OK), "d.c,d.f", NULL, 0},
    {"$graphLookup",
     "{'aggregate': 'c', 'pipeline': [{'$graphLookup': {'from': 'g', "
     "'startWith': '$a', 'connectFromField': 'a', 'connectToField': 'b', "
     "'as': 'x'}}]}",
     R(OK), "d.c,d.g", NULL, 0},
    {"$unionWith string", "{'aggregate': 'c', 'pipeline': [{'$unionWith': 'u'}]}", R(OK), "d.c,d.u",
     NULL, 0},
    {"$unionWith {coll, pipeline}",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': {'coll': "
     "'u', 'pipeline': [{'$match': {'a': 1}}]}}]}",
     R(OK), "d.c,d.u", NULL, 0},
    {"$lookup inside $unionWith",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': {'coll': "
     "'u', 'pipeline': [{'$lookup': {'from': 'o', 'as': 'x', "
     "'pipeline': []}}]}}]}",
     R(OK), "d.c,d.u,d.o", NULL, 0},
    {"$unionWith on $documents only",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': "
     "{'pipeline': [{'$documents': [{'a': 1}]}]}}]}",
     R(OK), "d.c", NULL, 0},
    {"eight namespaces",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': 'n1'}, {'$unionWith': 'n2'}, "
     "{'$unionWith': 'n3'}, {'$unionWith': 'n4'}, {'$unionWith': 'n5'}, {'$unionWith': 'n6'}, "
     "{'$unionWith': 'n7'}, {'$unionWith': 'n1'}]}",
     R(OK), "d.c,d.n1,d.n2,d.n3,d.n4,d.n5,d.n6,d.n7", NULL, 0},
    {"nine namespaces",
     "{'aggregate': 'c', 'pipeline': [{'$unionWith': 'n1'}, {'$unionWith': 'n2'}, "
     "{'$unionWith': 'n3'}, {'$unionWith': 'n4'}, {'$lookup': {'from': 'n5', 'as': 'x', "
     "'pipeline': [{'$lookup': {'from': 'n6', 'as': 'y', 'pipeline': []}}]}}, "
     "{'$graphLookup': {'from': 'n7', 'as': 'z'}}, {'$unionWith': 'n8'}]}",
     R(TOO_MANY_NAMESPACES), NULL, NULL, 0},
    {"$lookup from a number",
     "{'aggregate': 'c', 'pipeline': [{'$lookup': {'from': 5, 'as': "
     "'x'}}]}",
     R(NO_COLLECTION), NULL, NULL, 0},
    {"$lookup not a document", "{'aggregate': 'c', 'pipeline': [{'$lookup': 'o'}]}",
     R(NO_COLLECTION), NULL, NULL, 0},
    {"$graphLookup without from",
     "{'aggregate': 'c', 'pipeline': [{'$graphLookup': {'as': "
     "'x'}}]}",
     R(NO_COLLECTION), NULL, NULL, 0},
    {"$unionWith a number", "{'aggregate': 'c', 'pipeline': [{'$unionWith': 1}]}", R(NO_COLLECTION),
     NULL, NULL, 0},
    {"filter not a document", "{'find': 'c', 'filter': 5}", R(OK), "d.c", NULL, 0},
    {"pipeline not an array", "{'aggregate': 'c', 'pipeline': {'$match': {}}}", R(OK), "d.c", NULL,
     0},

    /* the skip comment */
    {"skip comment", "{'find': 'c', 'comment': 'mongocache:nocache'}", R(SKIP_REQUESTED), NULL,
     NULL, 0},
    {"skip comment with a suffix", "{'find': 'c', 'comment': 'mongocache:nocache; why'}",
     R(SKIP_REQUESTED), NULL, NULL, 0},
    {"skip comment on aggregate",
     "{'aggregate': 'c', 'pipeline': [], 'comment': "
     "'mongocache:nocache'}",
     R(SKIP_REQUESTED), NULL, NULL, 0},
    {"a comment that is not the skip", "{'find': 'c', 'comment': 'mongocache'}", R(OK), "d.c", NULL,
     0},
    {"a comment document is not the skip",
     "{'find': 'c', 'comment': {'m': "
     "'mongocache:nocache'}}",
     R(OK), "d.c", NULL, 0},
};

/* "db.coll,..." for the namespaces of a read, or of a write ("db" when coll is NULL). */
static void
format_ns(const struct cache_ns_ref *ns, uint32_t n, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (uint32_t i = 0; i < n && len < size; i++) {
        int w;

        if (ns[i].coll)
            w = snprintf(out + len, size - len, "%s%.*s.%.*s", i ? "," : "", (int)ns[i].db_len,
                         ns[i].db, (int)ns[i].coll_len, ns[i].coll);
        else
            w = snprintf(out + len, size - len, "%s%.*s", i ? "," : "", (int)ns[i].db_len,
                         ns[i].db);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static bool
inside(const char *p, const bson_t *doc)
{
    const char *start = (const char *)bson_get_data(doc);

    return p >= start && p < start + doc->len;
}

/*
 * The verdict and namespaces of body judged by walking every element (the
 * parse's records not used), as "reason ns,ns": the policy skips elements
 * it finds plainly fine only when it has the records, so each row checks
 * that this skipping changes nothing.
 */
static void
walked_verdict(const bson_t *body, const char *db, uint32_t n_seq, char *out, size_t size)
{
    struct wire_cmd cmd;
    struct cache_read read;
    bson_error_t error;
    enum cache_policy_reason r;
    char ns[512];

    if (!wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error)) {
        snprintf(out, size, "%s ", cache_policy_reason_name(CACHE_POLICY_NOT_A_READ));
        return;
    }
    cmd.elems_all = false; /* walk */
    r = cache_policy_request(body, &cmd, db, n_seq, &read);
    format_ns(read.ns, r == CACHE_POLICY_OK ? read.n_ns : 0, ns, sizeof ns);
    snprintf(out, size, "%s %s", cache_policy_reason_name(r), ns);
}

/* Runs one request row: one TAP line. */
static void
check_request(const char *name, const bson_t *body, const char *db, uint32_t n_seq,
              enum cache_policy_reason want, const char *want_ns)
{
    struct cache_read read;
    enum cache_policy_reason got;
    char ns[512], walked[600], located[600];
    bool pass, pointers = true;

    memset(&read, 0xa5, sizeof read);
    got = cache_policy_request(body, NULL, db, n_seq, &read);
    format_ns(read.ns, got == CACHE_POLICY_OK ? read.n_ns : 0, ns, sizeof ns);
    snprintf(located, sizeof located, "%s %s", cache_policy_reason_name(got), ns);
    walked_verdict(body, db, n_seq, walked, sizeof walked);
    if (got == CACHE_POLICY_OK) {
        format_ns(read.ns, read.n_ns, ns, sizeof ns);
        for (uint32_t i = 0; i < read.n_ns; i++) {
            if (!inside(read.ns[i].coll, body) ||
                (read.ns[i].db != db && !inside(read.ns[i].db, body)))
                pointers = false;
        }
    } else {
        snprintf(ns, sizeof ns, "(n_ns %u)", read.n_ns);
    }
    pass = got == want &&
           (want == CACHE_POLICY_OK ? strcmp(ns, want_ns) == 0 && pointers : read.n_ns == 0) &&
           strcmp(located, walked) == 0;
    if (!ok(pass, "request: %s -> %s", name, cache_policy_reason_name(want)))
        diag("got %s, namespaces %s%s (want %s); walking every element: %s",
             cache_policy_reason_name(got), ns, pointers ? "" : " not inside the body",
             want_ns ? want_ns : "none", walked);
}

static int
test_request_table(void)
{
    int rows = 0;

    for (size_t i = 0; i < sizeof req_cases / sizeof req_cases[0]; i++) {
        const struct req_case *c = &req_cases[i];
        const char *db = c->db == NULL ? "d" : strcmp(c->db, NO_DB) == 0 ? NULL : c->db;
        bson_t *body = json(c->body);

        check_request(c->name, body, db, c->n_seq, c->want, c->ns);
        bson_destroy(body);
        rows++;
    }
    return rows;
}

/* Rows JSON cannot write: duplicate top-level keys. */
static int
test_request_duplicates(void)
{
    bson_t *b;
    bson_t sub;

    b = bson_new();
    BSON_APPEND_UTF8(b, "find", "c");
    BSON_APPEND_UTF8(b, "find", "other");
    check_request("duplicate command key", b, "d", 0, CACHE_POLICY_DUPLICATE_FIELD, NULL);
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_UTF8(b, "find", "c");
    BSON_APPEND_DOCUMENT_BEGIN(b, "filter", &sub);
    BSON_APPEND_INT32(&sub, "a", 1);
    bson_append_document_end(b, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(b, "filter", &sub);
    BSON_APPEND_UTF8(&sub, "$where", "true");
    bson_append_document_end(b, &sub);
    check_request("duplicate filter", b, "d", 0, CACHE_POLICY_DUPLICATE_FIELD, NULL);
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_UTF8(b, "count", "c");
    BSON_APPEND_UTF8(b, "$db", "d");
    BSON_APPEND_UTF8(b, "$db", "e");
    check_request("duplicate $db", b, "d", 0, CACHE_POLICY_DUPLICATE_FIELD, NULL);
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_UTF8(b, "find", "c");
    BSON_APPEND_BOOL(b, "tailable", false);
    BSON_APPEND_BOOL(b, "tailable", true);
    check_request("duplicate tailable", b, "d", 0, CACHE_POLICY_DUPLICATE_FIELD, NULL);
    bson_destroy(b);
    return 4;
}

struct reply_case {
    const char *name;
    const char *body;
    size_t len;
    enum cache_policy_reason want;
};

#define MAX_ENTRY 1000

static const struct reply_case reply_cases[] = {
    {"ok 1 cursor id 0",
     "{'cursor': {'firstBatch': [{'a': 1}], 'id': {'$numberLong': '0'}, "
     "'ns': 'd.c'}, 'ok': 1.0}",
     100, R(OK)},
    {"ok 1 cursor id int32 0", "{'cursor': {'firstBatch': [], 'id': 0, 'ns': 'd.c'}, 'ok': 1}", 100,
     R(OK)},
    {"cursor id nonzero",
     "{'cursor': {'firstBatch': [], 'id': {'$numberLong': '77'}, 'ns': "
     "'d.c'}, 'ok': 1.0}",
     100, R(REPLY_OPEN_CURSOR)},
    {"cursor id negative", "{'cursor': {'id': {'$numberLong': '-1'}}, 'ok': 1.0}", 100,
     R(REPLY_OPEN_CURSOR)},
    {"cursor without id", "{'cursor': {'firstBatch': []}, 'ok': 1.0}", 100, R(REPLY_OPEN_CURSOR)},
    {"cursor id a double", "{'cursor': {'id': 0.0}, 'ok': 1.0}", 100, R(REPLY_OPEN_CURSOR)},
    {"cursor not a document", "{'cursor': 0, 'ok': 1.0}", 100, R(REPLY_OPEN_CURSOR)},
    {"ok 0", "{'ok': 0.0, 'errmsg': 'bad', 'code': 2, 'codeName': 'BadValue'}", 100,
     R(REPLY_ERROR)},
    {"ok missing", "{'cursor': {'id': 0}}", 100, R(REPLY_MALFORMED)},
    {"empty reply", "{}", 5, R(REPLY_MALFORMED)},
    {"ok a string", "{'ok': '1'}", 100, R(REPLY_MALFORMED)},
    {"ok true", "{'n': 1, 'ok': true}", 100, R(OK)},
    {"ok false", "{'ok': false}", 100, R(REPLY_ERROR)},
    {"ok int64 1", "{'n': 1, 'ok': {'$numberLong': '1'}}", 100, R(OK)},
    {"ok 2", "{'ok': 2}", 100, R(REPLY_ERROR)},
    {"writeConcernError", "{'ok': 1.0, 'writeConcernError': {'code': 64, 'errmsg': 'x'}}", 100,
     R(REPLY_WRITE_CONCERN_ERROR)},
    {"too large", "{'cursor': {'id': 0}, 'ok': 1.0}", MAX_ENTRY + 1, R(REPLY_TOO_LARGE)},
    {"exactly max_entry_bytes", "{'cursor': {'id': 0}, 'ok': 1.0}", MAX_ENTRY, R(OK)},
    {"error wins over size", "{'ok': 0.0}", MAX_ENTRY + 1, R(REPLY_ERROR)},
    {"count reply without cursor", "{'n': 42, 'ok': 1.0}", 100, R(OK)},
    {"distinct reply without cursor", "{'values': ['a', 'b'], 'ok': 1.0}", 100, R(OK)},
};

static int
test_reply_table(void)
{
    int rows = 0;

    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        bson_t *body = json(c->body);
        enum cache_policy_reason got = cache_policy_reply(body, c->len, MAX_ENTRY);

        if (!ok(got == c->want, "reply: %s -> %s", c->name, cache_policy_reason_name(c->want)))
            diag("got %s", cache_policy_reason_name(got));
        bson_destroy(body);
        rows++;
    }
    return rows;
}

/* Replies JSON cannot write: duplicate ok or cursor. */
static int
test_reply_duplicates(void)
{
    bson_t *b;
    bson_t sub;

    b = bson_new();
    BSON_APPEND_DOUBLE(b, "ok", 0.0);
    BSON_APPEND_DOUBLE(b, "ok", 1.0);
    ok(cache_policy_reply(b, 100, MAX_ENTRY) == CACHE_POLICY_REPLY_MALFORMED,
       "reply: duplicate ok -> reply_malformed");
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(b, "cursor", &sub);
    BSON_APPEND_INT64(&sub, "id", 0);
    bson_append_document_end(b, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(b, "cursor", &sub);
    BSON_APPEND_INT64(&sub, "id", 9);
    bson_append_document_end(b, &sub);
    BSON_APPEND_DOUBLE(b, "ok", 1.0);
    ok(cache_policy_reply(b, 100, MAX_ENTRY) == CACHE_POLICY_REPLY_MALFORMED,
       "reply: duplicate cursor -> reply_malformed");
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(b, "cursor", &sub);
    BSON_APPEND_INT64(&sub, "id", 0);
    BSON_APPEND_INT64(&sub, "id", 9);
    bson_append_document_end(b, &sub);
    BSON_APPEND_DOUBLE(b, "ok", 1.0);
    ok(cache_policy_reply(b, 100, MAX_ENTRY) == CACHE_POLICY_REPLY_OPEN_CURSOR,
       "reply: duplicate cursor.id, one nonzero -> reply_cursor_open");
    bson_destroy(b);
    return 3;
}

/* ---- writes ------------------------------------------------------------- */

#define W(x) CACHE_WRITE_##x

struct write_case {
    const char *name;
    const char *body;
    enum cache_write_scope scope;
    const char *ns;   /* "db.coll,..." or "db,..." for DB scope; "" for none */
    const char *user; /* USER scope */
    bool in_txn;
    const char *db;  /* NULL: "d"; NO_DB: none */
    const char *seq; /* nsInfo sequence: documents separated by ';' */
};

static const struct write_case write_cases[] = {
    {"insert", "{'insert': 'c', 'documents': [{'a': 1}]}", W(NS), "d.c", NULL, false, NULL, NULL},
    {"update", "{'update': 'c', 'updates': [{'q': {}, 'u': {}}]}", W(NS), "d.c", NULL, false, NULL,
     NULL},
    {"delete", "{'delete': 'c', 'deletes': [{'q': {}, 'limit': 1}]}", W(NS), "d.c", NULL, false,
     NULL, NULL},
    {"findAndModify", "{'findAndModify': 'c', 'query': {}, 'update': {'$inc': {'n': 1}}}", W(NS),
     "d.c", NULL, false, NULL, NULL},
    {"findandmodify alias", "{'findandmodify': 'c', 'query': {}, 'remove': true}", W(NS), "d.c",
     NULL, false, NULL, NULL},
    {"createIndexes", "{'createIndexes': 'c', 'indexes': []}", W(NS), "d.c", NULL, false, NULL,
     NULL},
    {"dropIndexes", "{'dropIndexes': 'c', 'index': '*'}", W(NS), "d.c", NULL, false, NULL, NULL},
    {"compact", "{'compact': 'c'}", W(NS), "d.c", NULL, false, NULL, NULL},
    {"validate", "{'validate': 'c'}", W(NS), "d.c", NULL, false, NULL, NULL},
    {"insert by UUID is the whole db",
     "{'insert': {'$binary': {'base64': 'AAECAwQFBgcICQoLDA0ODw==', 'subType': '04'}}}", W(DB), "d",
     NULL, false, NULL, NULL},
    {"insert in a transaction",
     "{'insert': 'c', 'txnNumber': 1, 'autocommit': false, "
     "'startTransaction': true}",
     W(NS), "d.c", NULL, true, NULL, NULL},
    {"retryable insert is not a transaction", "{'insert': 'c', 'txnNumber': 1}", W(NS), "d.c", NULL,
     false, NULL, NULL},
    {"insert with $db only", "{'insert': 'c', '$db': 'e'}", W(NS), "e.c", NULL, false, NO_DB, NULL},
    {"insert without any db", "{'insert': 'c'}", W(ALL), "", NULL, false, NO_DB, NULL},
    {"aggregate $out string", "{'aggregate': 'c', 'pipeline': [{'$out': 'o'}]}", W(NS), "d.o", NULL,
     false, NULL, NULL},
    {"aggregate $out {db, coll}",
     "{'aggregate': 'c', 'pipeline': [{'$out': {'db': 'e', "
     "'coll': 'o'}}]}",
     W(NS), "e.o", NULL, false, NULL, NULL},
    {"aggregate $merge string", "{'aggregate': 'c', 'pipeline': [{'$merge': 'm'}]}", W(NS), "d.m",
     NULL, false, NULL, NULL},
    {"aggregate $merge into string",
     "{'aggregate': 'c', 'pipeline': [{'$merge': {'into': "
     "'m', 'on': '_id'}}]}",
     W(NS), "d.m", NULL, false, NULL, NULL},
    {"aggregate $merge into {db, coll}",
     "{'aggregate': 'c', 'pipeline': [{'$merge': {'into': "
     "{'db': 'e', 'coll': 'm'}}}]}",
     W(NS), "e.m", NULL, false, NULL, NULL},
    {"aggregate:1 $documents $out",
     "{'aggregate': 1, 'pipeline': [{'$documents': []}, "
     "{'$out': 'o'}]}",
     W(NS), "d.o", NULL, false, NULL, NULL},
    {"aggregate without a write stage", "{'aggregate': 'c', 'pipeline': [{'$match': {}}]}", W(NONE),
     "", NULL, false, NULL, NULL},
    {"aggregate $out a number", "{'aggregate': 'c', 'pipeline': [{'$out': 1}]}", W(ALL), "", NULL,
     false, NULL, NULL},
    {"aggregate $merge without into",
     "{'aggregate': 'c', 'pipeline': [{'$merge': {'on': "
     "'_id'}}]}",
     W(ALL), "", NULL, false, NULL, NULL},
    {"bulkWrite nsInfo sequence", "{'bulkWrite': 1, 'ops': []}", W(NS), "a.b,c.d", NULL, false,
     "admin", "{'ns': 'a.b'};{'ns': 'c.d'};{'ns': 'a.b'}"},
    {"bulkWrite nsInfo in the body",
     "{'bulkWrite': 1, 'ops': [], 'nsInfo': [{'ns': 'a.b.c'}, "
     "{'ns': 'e.f'}]}",
     W(NS), "a.b.c,e.f", NULL, false, "admin", NULL},
    {"bulkWrite ns without a dot", "{'bulkWrite': 1}", W(ALL), "", NULL, false, "admin",
     "{'ns': 'ab'}"},
    {"bulkWrite ns ending in a dot", "{'bulkWrite': 1, 'nsInfo': [{'ns': 'a.'}]}", W(ALL), "", NULL,
     false, "admin", NULL},
    {"bulkWrite without nsInfo", "{'bulkWrite': 1, 'ops': []}", W(ALL), "", NULL, false, "admin",
     NULL},
    {"bulkWrite ns not a string", "{'bulkWrite': 1}", W(ALL), "", NULL, false, "admin",
     "{'ns': 1}"},
    {"drop", "{'drop': 'c'}", W(DB), "d", NULL, false, NULL, NULL},
    {"create view", "{'create': 'v', 'viewOn': 'c', 'pipeline': []}", W(DB), "d", NULL, false, NULL,
     NULL},
    {"collMod", "{'collMod': 'v', 'viewOn': 'c', 'pipeline': []}", W(DB), "d", NULL, false, NULL,
     NULL},
    {"convertToCapped", "{'convertToCapped': 'c', 'size': 100}", W(DB), "d", NULL, false, NULL,
     NULL},
    {"cloneCollectionAsCapped",
     "{'cloneCollectionAsCapped': 'c', 'toCollection': 'k', 'size': "
     "100}",
     W(DB), "d", NULL, false, NULL, NULL},
    {"dropDatabase", "{'dropDatabase': 1}", W(DB), "d", NULL, false, NULL, NULL},
    {"renameCollection across dbs", "{'renameCollection': 'a.x', 'to': 'b.y'}", W(DB), "a,b", NULL,
     false, "admin", NULL},
    {"renameCollection in one db",
     "{'renameCollection': 'a.x', 'to': 'a.y', 'dropTarget': "
     "true}",
     W(DB), "a", NULL, false, "admin", NULL},
    {"renameCollection without to", "{'renameCollection': 'a.x'}", W(ALL), "", NULL, false, "admin",
     NULL},
    {"renameCollection not dotted", "{'renameCollection': 'x', 'to': 'a.y'}", W(ALL), "", NULL,
     false, "admin", NULL},
    {"createUser", "{'createUser': 'u', 'pwd': 'p', 'roles': []}", W(USER), "d", "u", false, NULL,
     NULL},
    {"updateUser", "{'updateUser': 'u', 'roles': ['read']}", W(USER), "d", "u", false, NULL, NULL},
    {"dropUser", "{'dropUser': 'u'}", W(USER), "d", "u", false, NULL, NULL},
    {"grantRolesToUser", "{'grantRolesToUser': 'u', 'roles': ['read']}", W(USER), "d", "u", false,
     NULL, NULL},
    {"revokeRolesFromUser", "{'revokeRolesFromUser': 'u', 'roles': ['read']}", W(USER), "d", "u",
     false, NULL, NULL},
    {"createUser not a string", "{'createUser': 1}", W(ALL), "", NULL, false, NULL, NULL},
    {"dropAllUsersFromDatabase", "{'dropAllUsersFromDatabase': 1}", W(ALL), "", NULL, false, NULL,
     NULL},
    {"createRole", "{'createRole': 'r', 'privileges': [], 'roles': []}", W(ALL), "", NULL, false,
     NULL, NULL},
    {"updateRole", "{'updateRole': 'r', 'roles': []}", W(ALL), "", NULL, false, NULL, NULL},
    {"dropRole", "{'dropRole': 'r'}", W(ALL), "", NULL, false, NULL, NULL},
    {"dropAllRolesFromDatabase", "{'dropAllRolesFromDatabase': 1}", W(ALL), "", NULL, false, NULL,
     NULL},
    {"grantPrivilegesToRole", "{'grantPrivilegesToRole': 'r', 'privileges': []}", W(ALL), "", NULL,
     false, NULL, NULL},
    {"revokePrivilegesFromRole", "{'revokePrivilegesFromRole': 'r', 'privileges': []}", W(ALL), "",
     NULL, false, NULL, NULL},
    {"grantRolesToRole", "{'grantRolesToRole': 'r', 'roles': []}", W(ALL), "", NULL, false, NULL,
     NULL},
    {"revokeRolesFromRole", "{'revokeRolesFromRole': 'r', 'roles': []}", W(ALL), "", NULL, false,
     NULL, NULL},
    {"applyOps", "{'applyOps': []}", W(ALL), "", NULL, false, "admin", NULL},
    {"commitTransaction", "{'commitTransaction': 1, 'txnNumber': 4, 'autocommit': false}",
     W(TXN_END), "", NULL, true, "admin", NULL},
    {"abortTransaction", "{'abortTransaction': 1, 'txnNumber': 4, 'autocommit': false}", W(TXN_END),
     "", NULL, true, "admin", NULL},
    {"mapReduce out string", "{'mapReduce': 'c', 'map': 'f', 'reduce': 'g', 'out': 'o'}", W(NS),
     "d.o", NULL, false, NULL, NULL},
    {"mapReduce out replace in db", "{'mapReduce': 'c', 'out': {'replace': 'o', 'db': 'e'}}", W(NS),
     "e.o", NULL, false, NULL, NULL},
    {"mapReduce out merge", "{'mapReduce': 'c', 'out': {'merge': 'o'}}", W(NS), "d.o", NULL, false,
     NULL, NULL},
    {"mapReduce inline", "{'mapReduce': 'c', 'out': {'inline': 1}}", W(NONE), "", NULL, false, NULL,
     NULL},
    {"mapReduce out a number", "{'mapReduce': 'c', 'out': 1}", W(ALL), "", NULL, false, NULL, NULL},
    {"find", "{'find': 'c'}", W(NONE), "", NULL, false, NULL, NULL},
    {"find in a transaction", "{'find': 'c', 'txnNumber': 1, 'autocommit': false}", W(NONE), "",
     NULL, true, NULL, NULL},
    {"ping", "{'ping': 1}", W(NONE), "", NULL, false, NULL, NULL},
    {"hello", "{'hello': 1}", W(NONE), "", NULL, false, NULL, NULL},
    {"unknown command", "{'fooBar': 'c'}", W(NONE), "", NULL, false, NULL, NULL},
};

/* Concatenates the ';'-separated JSON documents into one kind-1 payload. */
static uint8_t *
build_sequence(const char *text, uint32_t *len)
{
    char *copy = bson_strdup(text);
    uint8_t *out = NULL;
    char *save = NULL;

    *len = 0;
    for (char *part = strtok_r(copy, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
        bson_t *doc = json(part);

        out = bson_realloc(out, *len + doc->len);
        memcpy(out + *len, bson_get_data(doc), doc->len);
        *len += doc->len;
        bson_destroy(doc);
    }
    bson_free(copy);
    return out;
}

/* Runs one write: one TAP line. */
static void
check_write(const char *name, const bson_t *body, const char *db, const uint8_t *seq,
            uint32_t seq_len, enum cache_write_scope scope, const char *want_ns,
            const char *want_user, bool in_txn)
{
    const char *ids[] = {"ops", "nsInfo"};
    const uint8_t *docs[] = {NULL, seq};
    uint32_t lens[] = {0, seq_len};
    struct cache_write w;
    char ns[2048];
    bool user_ok;

    memset(&w, 0xa5, sizeof w);
    cache_inval_scope_classify(body, NULL, db, ids, docs, lens, seq ? 2 : 0, &w);
    format_ns(w.ns, w.n_ns, ns, sizeof ns);
    user_ok = want_user ? w.user && w.user_len == strlen(want_user) &&
                              memcmp(w.user, want_user, w.user_len) == 0 && inside(w.user, body)
                        : w.user == NULL;
    if (!ok(w.scope == scope && strcmp(ns, want_ns) == 0 && user_ok && w.in_transaction == in_txn,
            "write: %s -> scope %d %s", name, (int)scope, want_ns))
        diag("got scope %d, namespaces \"%s\", user %s, in_transaction %d", (int)w.scope, ns,
             user_ok ? "ok" : "wrong", (int)w.in_transaction);
}

static int
test_write_table(void)
{
    int rows = 0;

    for (size_t i = 0; i < sizeof write_cases / sizeof write_cases[0]; i++) {
        const struct write_case *c = &write_cases[i];
        const char *db = c->db == NULL ? "d" : strcmp(c->db, NO_DB) == 0 ? NULL : c->db;
        bson_t *body = json(c->body);
        uint32_t seq_len = 0;
        uint8_t *seq = c->seq ? build_sequence(c->seq, &seq_len) : NULL;

        check_write(c->name, body, db, seq, seq_len, c->scope, c->ns, c->user, c->in_txn);
        bson_free(seq);
        bson_destroy(body);
        rows++;
    }
    return rows;
}

/* bulkWrite with n distinct namespaces in its nsInfo sequence. */
static void
check_bulk_write_n(int n, enum cache_write_scope scope)
{
    char text[4096], want[2048], name[64];
    size_t tl = 0, wl = 0;
    bson_t *body = json("{'bulkWrite': 1, 'ops': []}");
    uint8_t *seq;
    uint32_t seq_len;

    text[0] = want[0] = '\0';
    for (int i = 0; i < n; i++) {
        tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s{'ns': 'db%d.c%d'}", i ? ";" : "",
                               i % 3, i);
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%sdb%d.c%d", i ? "," : "", i % 3, i);
    }
    seq = build_sequence(text, &seq_len);
    snprintf(name, sizeof name, "bulkWrite with %d namespaces", n);
    check_write(name, body, "admin", seq, seq_len, scope, scope == CACHE_WRITE_NS ? want : "", NULL,
                false);
    bson_free(seq);
    bson_destroy(body);
}

/* Writes JSON cannot express: limits, duplicate keys, a truncated sequence. */
static int
test_write_special(void)
{
    static const uint8_t truncated[] = {0x20, 0, 0, 0, 0x02, 'n', 's', 0};
    bson_t *b;

    check_bulk_write_n(CACHE_INVAL_SCOPE_MAX_NS, CACHE_WRITE_NS);
    check_bulk_write_n(CACHE_INVAL_SCOPE_MAX_NS + 1, CACHE_WRITE_ALL);

    b = bson_new();
    BSON_APPEND_UTF8(b, "insert", "a");
    BSON_APPEND_UTF8(b, "insert", "b");
    check_write("insert with duplicate keys", b, "d", NULL, 0, CACHE_WRITE_ALL, "", NULL, false);
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_UTF8(b, "find", "a");
    BSON_APPEND_UTF8(b, "find", "b");
    check_write("find with duplicate keys writes nothing", b, "d", NULL, 0, CACHE_WRITE_NONE, "",
                NULL, false);
    bson_destroy(b);

    b = json("{'bulkWrite': 1}");
    check_write("bulkWrite with a truncated nsInfo sequence", b, "admin", truncated,
                sizeof truncated, CACHE_WRITE_ALL, "", NULL, false);
    bson_destroy(b);
    return 5;
}

static int
test_reason_names(void)
{
    bool distinct = true, named = true;

    for (int i = 0; i < CACHE_POLICY_REASON_COUNT; i++) {
        const char *a = cache_policy_reason_name((enum cache_policy_reason)i);

        if (!a || !*a || strcmp(a, "unknown") == 0)
            named = false;
        for (int j = 0; j < i; j++) {
            if (a && strcmp(a, cache_policy_reason_name((enum cache_policy_reason)j)) == 0)
                distinct = false;
        }
    }
    ok(named && distinct, "reason names: every reason has its own name");
    is_str(cache_policy_reason_name(CACHE_POLICY_OK), "cacheable", "reason names: OK");
    is_str(cache_policy_reason_name(CACHE_POLICY_REPLY_MALFORMED), "reply_malformed",
           "reason names: the last one");
    is_str(cache_policy_reason_name(CACHE_POLICY_REASON_COUNT), "unknown",
           "reason names: out of range");
    return 4;
}

int
main(void)
{
    int request_rows, reply_rows, write_rows;

    request_rows = test_request_table() + test_request_duplicates();
    reply_rows = test_reply_table() + test_reply_duplicates();
    write_rows = test_write_table() + test_write_special();
    test_reason_names();
    diag("%d request rows, %d reply rows, %d write rows", request_rows, reply_rows, write_rows);
    ok(request_rows + reply_rows >= 80 && write_rows >= 30,
       "table sizes: at least 80 cacheability rows and 30 write rows");
    return done_testing();
}
