/*
 * cache/key.c: key material and its XXH3-128 hash (see key.h). Owns the
 * list of per-request fields left out of the key, the material's layout and
 * its two hashes (the key and the digest: key.h says why both);
 * does not decide whether a command is cacheable (policy.c) or store
 * anything (cache.c). Reads the body's elements in place: the material is
 * the raw bytes of each kept element, never a re-encoding.
 */
#include "config.h"

#include "cache/key.h"

#include "wire/names.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_generateSecret is in the "experimental" part in 0.8.1 */
#include <xxhash.h>

/*
 * Fields that vary per request but never change the answer, and the only
 * values of them left out of the key: the ones a server accepts. Any other
 * value (a comment that is not a string, maxTimeMS "abc" or -1) stays in the
 * key, so that command reaches the server, whose error is never stored,
 * instead of being answered with the reply to its valid twin.
 */
static bool
valid_max_time_ms(const bson_iter_t *it)
{
    double d;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        return bson_iter_int32(it) >= 0;
    case BSON_TYPE_INT64:
        return bson_iter_int64(it) >= 0 && bson_iter_int64(it) <= INT32_MAX;
    case BSON_TYPE_DOUBLE:
        d = bson_iter_double(it);
        return d >= 0 && d <= INT32_MAX && d == (double)(int64_t)d;
    default:
        return false;
    }
}

/* A session id as drivers send it: {id: <UUID binary>, ...} (mongod refuses an empty lsid). */
static bool
valid_lsid(const bson_iter_t *it)
{
    bson_iter_t sub;

    return BSON_ITER_HOLDS_DOCUMENT(it) && bson_iter_recurse(it, &sub) &&
           bson_iter_find(&sub, "id") && BSON_ITER_HOLDS_BINARY(&sub);
}

static bool
is_volatile(const bson_iter_t *it)
{
    switch (wire_names_lookup(bson_iter_key(it), bson_iter_key_len(it))) {
    case WIRE_NAME_LSID:
        return valid_lsid(it);
    case WIRE_NAME_DOLLAR_CLUSTER_TIME:
        return BSON_ITER_HOLDS_DOCUMENT(it);
    case WIRE_NAME_TXN_NUMBER:
        return BSON_ITER_HOLDS_INT64(it);
    case WIRE_NAME_DOLLAR_DB:
    case WIRE_NAME_COMMENT:
        return BSON_ITER_HOLDS_UTF8(it);
    case WIRE_NAME_MAX_TIME_MS:
        return valid_max_time_ms(it);
    default:
        return false;
    }
}

void
cache_key_secret_init(struct cache_key_secret *secret, const char *text)
{
    static const char fallback[] = "mongocache";
    const char *seed = text && text[0] ? text : fallback;

    XXH3_generateSecret(secret->bytes, sizeof secret->bytes, seed, strlen(seed));
    /* The digest's seed: from the same text, through another function and
     * domain, so that neither number says anything about the other. */
    secret->digest_seed = XXH64(seed, strlen(seed), UINT64_C(0x6d632d6469676573));
}

char *
cache_key_principal(const char *user, size_t user_len, const char *db, size_t db_len)
{
    return bson_strdup_printf("%zu:%.*s@%.*s", user_len, (int)user_len, user, (int)db_len, db);
}

void
cache_key_material_cleanup(struct cache_key_material *material)
{
    bson_free(material->data);
    memset(material, 0, sizeof *material);
}

static void
append(struct cache_key_material *m, const void *data, size_t len)
{
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 256;

        while (cap < m->len + len)
            cap *= 2;
        m->data = bson_realloc(m->data, cap);
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
}

/* A part of the material: its length (4 bytes, little-endian), then its bytes. */
static void
append_part(struct cache_key_material *m, const void *data, size_t len)
{
    uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};

    append(m, prefix, sizeof prefix);
    append(m, data, len);
}

void
cache_key_build(const struct cache_key_secret *secret, const char *principal, const char *db,
                const char *coll, uint32_t coll_len, const bson_t *body,
                struct cache_key_material *material, struct cache_key *key, uint64_t *digest)
{
    const uint8_t *raw = bson_get_data(body);
    bson_iter_t it;
    XXH128_hash_t h;

    material->len = 0;
    append_part(material, principal, strlen(principal));
    append_part(material, db, strlen(db));
    append_part(material, coll, coll_len);
    if (bson_iter_init(&it, body)) {
        while (bson_iter_next(&it)) {
            if (is_volatile(&it))
                continue;
            /* The element as sent: type byte, key, value. */
            append_part(material, raw + it.off, it.next_off - it.off);
        }
    }
    h = XXH3_128bits_withSecret(material->data, material->len, secret->bytes,
                                sizeof secret->bytes);
    key->hi = h.high64;
    key->lo = h.low64;
    *digest = XXH64(material->data, material->len, secret->digest_seed);
#ifdef MONGOCACHE_TINY_KEYS
    /* Test build: 8 significant bits, so that collisions happen all the time. */
    key->hi = 0;
    key->lo &= 0xff;
#endif
}

unsigned
cache_key_bits(void)
{
#ifdef MONGOCACHE_TINY_KEYS
    return 8;
#else
    return 128;
#endif
}
