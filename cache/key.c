/*
 * cache/key.c: key material, its XXH3-128 key and SipHash digest (see key.h). Owns the
 * list of per-request fields left out of the key, the material's layout and
 * its two hashes (the key and the digest: key.h says why both);
 * does not decide whether a command is cacheable (policy.c) or store
 * anything (cache.c). Reads the body's elements in place: the material is
 * the raw bytes of each kept element, never a re-encoding.
 */
#include "config.h"

#include "cache/key.h"

#include "cache/siphash.h"
#include "wire/names.h"
#include "wire/reader.h"

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
valid_max_time_ms(const struct wire_cmd_elem *e)
{
    bson_iter_t iter;
    const bson_iter_t *it = &iter;
    double d;

    if (!wire_cmd_elem_iter(e, &iter))
        return false;

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
valid_lsid(const struct wire_cmd_elem *e)
{
    struct wire_reader r;

    if (e->type != BSON_TYPE_DOCUMENT || !wire_reader_init(&r, e->value, e->len - 2 - e->key_len))
        return false;
    while (wire_reader_next(&r)) {
        if (r.key_len == 2 && memcmp(r.key, "id", 2) == 0)
            return r.type == BSON_TYPE_BINARY; /* the first id, as bson_iter_find finds it */
    }
    return false;
}

static bool
is_volatile(const struct wire_cmd_elem *e)
{
    switch (e->id) {
    case WIRE_NAME_LSID:
        return valid_lsid(e);
    case WIRE_NAME_DOLLAR_CLUSTER_TIME:
        return e->type == BSON_TYPE_DOCUMENT;
    case WIRE_NAME_TXN_NUMBER:
        return e->type == BSON_TYPE_INT64;
    case WIRE_NAME_DOLLAR_DB:
    case WIRE_NAME_COMMENT:
        return e->type == BSON_TYPE_UTF8;
    case WIRE_NAME_MAX_TIME_MS:
        return valid_max_time_ms(e);
    default:
        return false;
    }
}

void
cache_key_secret_init(struct cache_key_secret *secret, const char *text)
{
    static const char fallback[] = "mongocache";
    /* Fixed keys that only separate the two derived digest-key words (the
     * secret is the text: these are public). */
    static const struct cache_siphash_key derive0 = {UINT64_C(0x6d632d6469676573),
                                                     UINT64_C(0x742d6b65792d7730)};
    static const struct cache_siphash_key derive1 = {UINT64_C(0x6d632d6469676573),
                                                     UINT64_C(0x742d6b65792d7731)};
    const char *seed = text && text[0] ? text : fallback;
    size_t len = strlen(seed);

    XXH3_generateSecret(secret->bytes, sizeof secret->bytes, seed, len);
    /* The digest's SipHash key: from the same text, through another
     * function, so that neither number says anything about the other. */
    secret->digest_key.k0 = cache_siphash_24(&derive0, seed, len);
    secret->digest_key.k1 = cache_siphash_24(&derive1, seed, len);
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

/* Room for len more bytes in m. */
static void
reserve(struct cache_key_material *m, size_t len)
{
    size_t cap = m->cap ? m->cap : 256;

    if (m->len + len <= m->cap)
        return;
    while (cap < m->len + len)
        cap *= 2;
    m->data = bson_realloc(m->data, cap);
    m->cap = cap;
}

/* A part of the material: its length (4 bytes, little-endian), then its bytes. */
static inline void
append_part(struct cache_key_material *m, const void *data, size_t len)
{
    uint8_t *p;

    if (m->len + 4 + len > m->cap)
        reserve(m, 4 + len);
    p = m->data + m->len;
    p[0] = (uint8_t)len;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 24);
    memcpy(p + 4, data, len);
    m->len += 4 + len;
}

void
cache_key_build(const struct cache_key_secret *secret, const char *principal, const char *db,
                const char *coll, uint32_t coll_len, const bson_t *body, const struct wire_cmd *cmd,
                struct cache_key_material *material, struct cache_key *key, uint64_t *digest)
{
    struct wire_cmd_walk walk;
    struct wire_cmd_elem e;
    XXH128_hash_t h;

    material->len = 0;
    append_part(material, principal, strlen(principal));
    append_part(material, db, strlen(db));
    append_part(material, coll, coll_len);
    wire_cmd_walk_init(&walk, cmd, bson_get_data(body), body->len);
    while (wire_cmd_walk_next(&walk, &e)) {
        if (is_volatile(&e))
            continue;
        /* The element as sent: type byte, key, value. */
        append_part(material, e.start, e.len);
    }
    h = XXH3_128bits_withSecret(material->data, material->len, secret->bytes,
                                sizeof secret->bytes);
    key->hi = h.high64;
    key->lo = h.low64;
    *digest = cache_siphash_24(&secret->digest_key, material->data, material->len);
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
