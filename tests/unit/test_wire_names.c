/*
 * tests/unit/test_wire_names.c: owns the tests of wire/names.c: every name
 * the proxy acts on maps to its id and back, and nothing else maps to any
 * id (prefixes, suffixes, a changed case, an embedded NUL, the empty string,
 * a 1 KB name). The lists below are the tables the callers used to strcmp
 * against (wire/cmd.c, cache/policy.c, cache/key.c, proxy/router.c,
 * proxy/client.c, proxy/hello.c), kept here apart from wire/names.h so that a name lost or
 * misspelt there shows.
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/names.h"

#include <ctype.h>
#include <string.h>

static const char *const expected[] = {
    /* wire/cmd.c */
    "$db", "lsid", "txnNumber", "autocommit", "startTransaction", "hello", "isMaster", "ismaster",
    /* cache/policy.c: reads and their options */
    "find", "aggregate", "count", "distinct", "explain", "readConcern", "tailable", "awaitData",
    "exhaust", "allowPartialResults", "comment", "level", "afterClusterTime", "atClusterTime",
    "afterOpTime", "db", "coll", "from", "id",
    /* cache/policy.c: operators and stages */
    "$where", "$function", "$accumulator", "$rand", "$sample", "$sampleRate", "$out", "$merge",
    "$currentOp", "$listSessions", "$listLocalSessions", "$collStats", "$indexStats",
    "$planCacheStats", "$changeStream", "$changeStreamSplitLargeEvent", "$listCatalog",
    "$listClusterCatalog", "$listSampledQueries", "$listSearchIndexes", "$queryStats",
    "$shardedDataDistribution", "$operationMetrics", "$search", "$searchMeta", "$vectorSearch",
    "$meta", "$lookup", "$graphLookup", "$unionWith",
    /* cache/policy.c: replies */
    "ok", "writeConcernError", "cursor",
    /* cache/policy.c: writes */
    "insert", "update", "delete", "findAndModify", "findandmodify", "createIndexes",
    "dropIndexes", "deleteIndexes", "compact", "validate", "drop", "create", "collMod",
    "convertToCapped", "cloneCollectionAsCapped", "dropDatabase", "createUser", "updateUser",
    "dropUser", "grantRolesToUser", "revokeRolesFromUser", "dropAllUsersFromDatabase",
    "createRole", "updateRole", "dropRole", "dropAllRolesFromDatabase", "grantPrivilegesToRole",
    "revokePrivilegesFromRole", "grantRolesToRole", "revokeRolesFromRole", "applyOps",
    "commitTransaction", "abortTransaction", "mapReduce", "mapreduce", "bulkWrite",
    "renameCollection", "replace", "merge", "reduce",
    /* proxy/router.c */
    "saslStart", "saslContinue", "authenticate", "logout", "mongocacheStats", "mongocacheFlush",
    "mongocacheInvalidate",
    /* cache/key.c */
    "$clusterTime", "maxTimeMS",
    /* proxy/hello.c */
    "topologyVersion", "compression", "serviceId", "setName", "setVersion", "hosts", "passives",
    "arbiters", "primary", "me", "secondary", "arbiterOnly", "passive", "hidden", "tags",
    "electionId", "lastWrite", "isreplicaset", "msg", "loadBalanced", "speculativeAuthenticate",
    "maxMessageSizeBytes", "maxBsonObjectSize",
    /* proxy/lookup.c, proxy/cursor.c */
    "getMore", "killCursors", "batchSize",
};

/* A few ids pinned to their text, so that two swapped ids in the list show. */
static const struct {
    enum wire_name id;
    const char *text;
} pinned[] = {
    {WIRE_NAME_DOLLAR_DB, "$db"},
    {WIRE_NAME_FIND, "find"},
    {WIRE_NAME_IS_MASTER, "isMaster"},
    {WIRE_NAME_ISMASTER, "ismaster"},
    {WIRE_NAME_MAP_REDUCE, "mapReduce"},
    {WIRE_NAME_MAPREDUCE, "mapreduce"},
    {WIRE_NAME_FIND_AND_MODIFY, "findAndModify"},
    {WIRE_NAME_FINDANDMODIFY, "findandmodify"},
    {WIRE_NAME_DOLLAR_MERGE, "$merge"},
    {WIRE_NAME_MERGE, "merge"},
    {WIRE_NAME_DOLLAR_OUT, "$out"},
    {WIRE_NAME_DOLLAR_CHANGE_STREAM_SPLIT_LARGE_EVENT, "$changeStreamSplitLargeEvent"},
    {WIRE_NAME_DOLLAR_SEARCH, "$search"},
    {WIRE_NAME_DOLLAR_SEARCH_META, "$searchMeta"},
    {WIRE_NAME_MONGOCACHE_INVALIDATE, "mongocacheInvalidate"},
};

/* The answer wire_names_lookup must give, found the slow way. */
static enum wire_name
reference(const char *s, size_t len)
{
    for (int id = 1; id < WIRE_NAMES_COUNT; id++) {
        const char *t = wire_names_text((enum wire_name)id);

        if (strlen(t) == len && memcmp(t, s, len) == 0)
            return (enum wire_name)id;
    }
    return WIRE_NAME_UNKNOWN;
}

static unsigned n_checked, n_wrong, n_unknown;

/*
 * The lookup of s with bytes readable past it (as a key in a document has):
 * the word-wide read of its first eight bytes must see only its own.
 */
static enum wire_name
lookup_padded(const char *s, size_t len)
{
    char padded[1100 + 16];

    if (len > 1100)
        return WIRE_NAME_UNKNOWN;
    if (len > 0)
        memcpy(padded, s, len);
    memset(padded + len, 's', 16); /* a byte that would extend a name if read as one */
    return wire_names_lookup_in(padded, len, len + 16);
}

/* Checks one near-miss: the lookups agree with the reference, and wire_names_is with them. */
static void
check(const char *s, size_t len, const char *what, const char *of)
{
    enum wire_name want = reference(s, len), got = wire_names_lookup(s, len);

    if (got == want && lookup_padded(s, len) != want) {
        if (n_wrong++ < 10)
            diag("%s of \"%s\" (%zu bytes), bytes after it: id %d, want %d", what, of, len,
                 (int)lookup_padded(s, len), (int)want);
        return;
    }

    n_checked++;
    if (want == WIRE_NAME_UNKNOWN)
        n_unknown++;
    if (got != want) {
        if (n_wrong++ < 10)
            diag("%s of \"%s\" (%zu bytes): id %d, want %d", what, of, len, (int)got, (int)want);
        return;
    }
    for (int id = 1; id < WIRE_NAMES_COUNT; id++) {
        if (wire_names_is(s, len, (enum wire_name)id) != (id == (int)want)) {
            if (n_wrong++ < 10)
                diag("%s of \"%s\": wire_names_is(id %d) wrong", what, of, id);
            return;
        }
    }
}

static void
test_every_name(void)
{
    unsigned found = 0, back = 0, pinned_ok = 0;

    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        enum wire_name id = wire_names_lookup(expected[i], strlen(expected[i]));

        if (id != WIRE_NAME_UNKNOWN)
            found++;
        else
            diag("\"%s\" is unknown", expected[i]);
        if (wire_names_text(id) && strcmp(wire_names_text(id), expected[i]) == 0 &&
            wire_names_is(expected[i], strlen(expected[i]), id))
            back++;
    }
    is_int(found, sizeof expected / sizeof expected[0], "every name the callers match has an id");
    is_int(back, sizeof expected / sizeof expected[0], "and its id has that name back");
    is_int(WIRE_NAMES_COUNT - 1, sizeof expected / sizeof expected[0],
           "wire/names.h lists those names and no others");

    for (int id = 1; id < WIRE_NAMES_COUNT; id++) {
        const char *t = wire_names_text((enum wire_name)id);

        if (!t || wire_names_lookup(t, strlen(t)) != (enum wire_name)id) {
            diag("id %d (%s) does not map back", id, t ? t : "NULL");
            break;
        }
        if (id == WIRE_NAMES_COUNT - 1)
            ok(true, "every id's text maps back to the id");
    }
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
        pinned_ok += wire_names_text(pinned[i].id) && strcmp(wire_names_text(pinned[i].id), pinned[i].text) == 0;
    is_int(pinned_ok, sizeof pinned / sizeof pinned[0], "pinned ids have their text");
    ok(wire_names_text(WIRE_NAME_UNKNOWN) == NULL && wire_names_text(WIRE_NAMES_COUNT) == NULL &&
           wire_names_text((enum wire_name)-1) == NULL,
       "no text for unknown or out-of-range ids");
    ok(!wire_names_is("find", 4, WIRE_NAME_UNKNOWN) && !wire_names_is("", 0, WIRE_NAME_UNKNOWN) &&
           !wire_names_is("find", 4, WIRE_NAMES_COUNT),
       "wire_names_is is false for unknown and out-of-range ids");
}

static void
test_near_misses(void)
{
    char buf[1100];

    n_checked = n_wrong = n_unknown = 0;
    for (int id = 1; id < WIRE_NAMES_COUNT; id++) {
        const char *t = wire_names_text((enum wire_name)id);
        size_t len = strlen(t);

        /* prefixes and tails: every shorter length from either end */
        for (size_t k = 0; k < len; k++) {
            check(t, k, "prefix", t);
            check(t + len - k, k, "tail", t);
        }
        /* suffixed by each of a few bytes, and prefixed */
        for (const char *c = "xX$\0s"; ; c++) {
            memcpy(buf, t, len);
            buf[len] = *c;
            check(buf, len + 1, "suffix", t);
            buf[0] = *c;
            memcpy(buf + 1, t, len);
            check(buf, len + 1, "prefixed", t);
            if (*c == '\0')
                break;
        }
        /* one byte changed: its case, a NUL in its place, the next byte value */
        for (size_t k = 0; k < len; k++) {
            memcpy(buf, t, len);
            if (isalpha((unsigned char)t[k])) {
                buf[k] = (char)(islower((unsigned char)t[k]) ? toupper((unsigned char)t[k])
                                                             : tolower((unsigned char)t[k]));
                check(buf, len, "case changed", t);
            }
            buf[k] = '\0';
            check(buf, len, "NUL inside", t);
            buf[k] = (char)(t[k] + 1);
            check(buf, len, "byte changed", t);
        }
        /* the whole name in the other case */
        for (size_t k = 0; k < len; k++)
            buf[k] = (char)toupper((unsigned char)t[k]);
        check(buf, len, "upper case", t);
        /* the name, then a NUL and more: a C string compare would stop at the NUL */
        memcpy(buf, t, len);
        memcpy(buf + len, "\0tail", 5);
        check(buf, len + 5, "NUL then more", t);
        /* 1 KB starting with the name */
        memset(buf, 'a', 1024);
        memcpy(buf, t, len);
        check(buf, 1024, "1 KB from", t);
        check(buf, WIRE_NAMES_MAX_LEN + 1, "one past the longest from", t);
    }
    memset(buf, 'a', 1024);
    check(buf, 1024, "1 KB", "a...");
    check("", 0, "empty", "");
    is_int(wire_names_lookup(NULL, 0), WIRE_NAME_UNKNOWN, "NULL with length 0 is unknown");
    is_int(n_wrong, 0, "%u near-misses looked up: each as the slow exact compare says", n_checked);
    ok(n_unknown + 200 > n_checked && n_unknown > 0,
       "and nearly all of them (%u of %u) are unknown", n_unknown, n_checked);
}

/* Hand-picked near-misses that must all be unknown, whatever the list holds. */
static void
test_unknown(void)
{
    static const struct {
        const char *s;
        size_t len;
    } misses[] = {
        {"Find", 4},         {"FIND", 4},        {"fin", 3},           {"finds", 5},
        {"find\0", 5},       {"fi\0d", 4},       {"\0find", 5},        {"$DB", 3},
        {"db ", 3},          {" find", 5},       {"isMASTER", 8},      {"Hello", 5},
        {"$Out", 4},         {"out", 3},         {"$mergee", 7},       {"$", 1},
        {"$$NOW", 5},        {"mapReduc", 8},    {"mongocacheStat", 14}, {"d", 1},
        {"$changeStreamSplitLargeEventx", 29},   {"$changeStreamSplitLargeEven", 27},
    };
    unsigned unknown = 0;

    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        if (wire_names_lookup(misses[i].s, misses[i].len) == WIRE_NAME_UNKNOWN)
            unknown++;
        else
            diag("\"%s\" (%zu bytes) is known", misses[i].s, misses[i].len);
    }
    is_int(unknown, sizeof misses / sizeof misses[0], "hand-picked near-misses are unknown");
}

int
main(void)
{
    test_every_name();
    test_near_misses();
    test_unknown();
    return done_testing();
}
