/*
 * advice/index.h: an index's key pattern as the advice code handles it:
 * the ordered key paths with their directions, from listIndexes or from a
 * recommendation. Special indexes (text, 2d, 2dsphere, hashed, wildcard)
 * keep their type so they are never taken for an ordinary one.
 */
#ifndef MONGOCACHE_ADVICE_INDEX_H
#define MONGOCACHE_ADVICE_INDEX_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#define ADVICE_INDEX_MAX_KEYS 32

struct advice_index_key {
    char *path; /* owned */
    int dir;    /* 1 or -1; 0 for a special key (see special) */
};

struct advice_index {
    char *name; /* owned; NULL for a recommendation until advice_index_default_name */
    struct advice_index_key keys[ADVICE_INDEX_MAX_KEYS];
    uint32_t n_keys;
    bool special; /* a text, geo, hashed or wildcard key: serves no shape here */
    bool partial; /* a partialFilterExpression: may not serve every query */
    bool sparse;
    bool unique;
    bool hidden;    /* hidden from the planner: present, but serves nothing */
    bool collation; /* a collation other than simple: serves only queries with it */
    bool ttl;       /* expireAfterSeconds: deletes documents, so never redundant */
};

/* The indexes of one namespace (owned; advice_indexes_cleanup). */
struct advice_indexes {
    struct advice_index *index;
    uint32_t n;
};

/*
 * Reads one listIndexes entry ({v, key, name, ...}; untrusted) into index
 * (owned; advice_index_cleanup). Returns false (index left empty) when key
 * is missing or not a document, has no keys or too many, a key path is
 * empty or longer than ADVICE_INDEX_MAX_PATH_LEN, a key value is neither a
 * number nor a string, or name is missing, not a string, empty, longer than
 * ADVICE_INDEX_MAX_NAME_LEN or holds a NUL (mongod always names an index).
 * A string key value ("text", "2dsphere", "hashed", ...) or a wildcard path
 * ("$**", "a.$**") makes the index special; a numeric one gives dir 1 or -1
 * by its sign (0 counts as 1, as old mongod versions did).
 */
#define ADVICE_INDEX_MAX_PATH_LEN 1024
#define ADVICE_INDEX_MAX_NAME_LEN 1024
bool advice_index_from_spec(const bson_t *spec, struct advice_index *index)
    __attribute__((warn_unused_result));

void advice_index_copy(struct advice_index *dst, const struct advice_index *src);
void advice_index_cleanup(struct advice_index *index);
void advice_indexes_cleanup(struct advice_indexes *indexes);

/*
 * mongod's default name: "a_1_b_-1" (a string freed with bson_free). A
 * special key (dir 0), whose type is not kept, shows as "_0".
 */
char *advice_index_default_name(const struct advice_index *index);

/* {a: 1, b: -1} as a BSON document (int32 values), into out (initialised here). */
void advice_index_keys_bson(const struct advice_index *index, bson_t *out);

/*
 * True when a's keys (paths and directions) are a prefix of b's (or equal).
 * False when either is special, or a has no keys.
 */
bool advice_index_is_prefix(const struct advice_index *a, const struct advice_index *b);

#endif
