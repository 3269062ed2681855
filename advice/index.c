/*
 * advice/index.c: owns an index's key pattern as the advice code handles
 * it (advice/index.h): reading a listIndexes entry, which comes from the
 * server and is checked like any untrusted input (types, counts, lengths,
 * NULs), mongod's default index name, the keys as BSON, and the prefix
 * test. It does not decide which index a query needs (advice/recommend.c)
 * nor ask the server for its indexes (advice/advisor.c).
 */
#include "config.h"

#include "advice/index.h"

#include <string.h>

/* A wildcard key path: "$**" or "a.b.$**". */
static bool
is_wildcard(const char *path)
{
    size_t n = strlen(path);

    return (n == 3 && strcmp(path, "$**") == 0) || (n > 4 && strcmp(path + n - 4, ".$**") == 0);
}

/* A numeric field that is "true": a boolean true or a non-zero number. */
static bool
truthy(const bson_iter_t *it)
{
    if (BSON_ITER_HOLDS_BOOL(it))
        return bson_iter_bool(it);
    if (BSON_ITER_HOLDS_NUMBER(it))
        return bson_iter_as_double(it) != 0;
    return false;
}

/* A collation that is not the simple (binary) one. */
static bool
real_collation(const bson_iter_t *it)
{
    bson_iter_t sub;
    uint32_t len;
    const char *locale;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub) || !bson_iter_next(&sub))
        return false;
    if (!bson_iter_recurse(it, &sub) || !bson_iter_find(&sub, "locale") ||
        !BSON_ITER_HOLDS_UTF8(&sub))
        return true;
    locale = bson_iter_utf8(&sub, &len);
    return !(len == 6 && memcmp(locale, "simple", 6) == 0);
}

/* Reads the key pattern at it into index; false on anything that is not a valid one. */
static bool
read_keys(const bson_iter_t *key, struct advice_index *index)
{
    bson_iter_t it;

    if (!BSON_ITER_HOLDS_DOCUMENT(key) || !bson_iter_recurse(key, &it))
        return false;
    while (bson_iter_next(&it)) {
        const char *path = bson_iter_key(&it);
        size_t len = bson_iter_key_len(&it);
        struct advice_index_key *k;

        if (index->n_keys == ADVICE_INDEX_MAX_KEYS || len == 0 || len > ADVICE_INDEX_MAX_PATH_LEN)
            return false;
        k = &index->keys[index->n_keys];
        if (BSON_ITER_HOLDS_NUMBER(&it)) {
            k->dir = bson_iter_as_double(&it) < 0 ? -1 : 1;
            if (is_wildcard(path)) {
                k->dir = 0;
                index->special = true;
            }
        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
            k->dir = 0;
            index->special = true;
        } else {
            return false;
        }
        k->path = bson_strndup(path, len);
        index->n_keys++;
    }
    return index->n_keys > 0;
}

bool
advice_index_from_spec(const bson_t *spec, struct advice_index *index)
{
    bson_iter_t it;
    bool have_key = false, have_name = false;

    memset(index, 0, sizeof *index);
    if (spec == NULL || !bson_iter_init(&it, spec))
        return false;
    while (bson_iter_next(&it)) {
        const char *field = bson_iter_key(&it);

        if (strcmp(field, "key") == 0 && !have_key) {
            have_key = true;
            if (!read_keys(&it, index))
                goto fail;
        } else if (strcmp(field, "name") == 0 && !have_name) {
            const char *name;
            uint32_t len;

            if (!BSON_ITER_HOLDS_UTF8(&it))
                goto fail;
            name = bson_iter_utf8(&it, &len);
            if (len == 0 || len > ADVICE_INDEX_MAX_NAME_LEN || memchr(name, '\0', len) != NULL)
                goto fail;
            index->name = bson_strndup(name, len);
            have_name = true;
        } else if (strcmp(field, "unique") == 0) {
            index->unique = truthy(&it);
        } else if (strcmp(field, "sparse") == 0) {
            index->sparse = truthy(&it);
        } else if (strcmp(field, "hidden") == 0) {
            index->hidden = truthy(&it);
        } else if (strcmp(field, "partialFilterExpression") == 0) {
            index->partial = true;
        } else if (strcmp(field, "expireAfterSeconds") == 0) {
            index->ttl = true;
        } else if (strcmp(field, "collation") == 0) {
            index->collation = real_collation(&it);
        }
    }
    if (have_key && have_name)
        return true;
fail:
    advice_index_cleanup(index);
    return false;
}

void
advice_index_copy(struct advice_index *dst, const struct advice_index *src)
{
    *dst = *src;
    dst->name = src->name ? bson_strdup(src->name) : NULL;
    if (dst->n_keys > ADVICE_INDEX_MAX_KEYS)
        dst->n_keys = ADVICE_INDEX_MAX_KEYS;
    for (uint32_t i = 0; i < dst->n_keys; i++)
        dst->keys[i].path = bson_strdup(src->keys[i].path);
}

void
advice_index_cleanup(struct advice_index *index)
{
    if (index == NULL)
        return;
    bson_free(index->name);
    for (uint32_t i = 0; i < index->n_keys && i < ADVICE_INDEX_MAX_KEYS; i++)
        bson_free(index->keys[i].path);
    memset(index, 0, sizeof *index);
}

void
advice_indexes_cleanup(struct advice_indexes *indexes)
{
    if (indexes == NULL)
        return;
    for (uint32_t i = 0; i < indexes->n; i++)
        advice_index_cleanup(&indexes->index[i]);
    bson_free(indexes->index);
    indexes->index = NULL;
    indexes->n = 0;
}

char *
advice_index_default_name(const struct advice_index *index)
{
    bson_string_t *s = bson_string_new(NULL);

    for (uint32_t i = 0; i < index->n_keys && i < ADVICE_INDEX_MAX_KEYS; i++)
        bson_string_append_printf(s, "%s%s_%d", i ? "_" : "", index->keys[i].path,
                                  index->keys[i].dir);
    return bson_string_free(s, false);
}

void
advice_index_keys_bson(const struct advice_index *index, bson_t *out)
{
    bson_init(out);
    for (uint32_t i = 0; i < index->n_keys && i < ADVICE_INDEX_MAX_KEYS; i++)
        BSON_APPEND_INT32(out, index->keys[i].path, index->keys[i].dir);
}

bool
advice_index_is_prefix(const struct advice_index *a, const struct advice_index *b)
{
    if (a->special || b->special || a->n_keys == 0 || a->n_keys > b->n_keys)
        return false;
    for (uint32_t i = 0; i < a->n_keys; i++) {
        if (a->keys[i].dir != b->keys[i].dir || strcmp(a->keys[i].path, b->keys[i].path) != 0)
            return false;
    }
    return true;
}
