/*
 * cache/redis_blob.c: the stored value's format (see redis_blob.h): its
 * encoding, sealed with its MAC, written straight into the space the caller
 * gives (the fill's command buffer: the reply is copied once), and its
 * decoding as untrusted input (the MAC verified before anything else is
 * read, then every length checked against the limits, nothing left over,
 * the reply re-checked as a wire message). It does not own the MAC itself
 * (redis_mac.c), talking to Redis, comparing the decoded generations and
 * epoch with the current ones (redis.c), nor comparing the key material
 * (the caller, cache.c).
 */
#include "config.h"

#include "cache/redis_blob.h"
#include "wire/msg.h"

#include <string.h>

#define BLOB_MAGIC "MCV4"
#define BLOB_FIXED (4 + 8 + 8 + 4 + 4 + 4) /* magic, epoch, expires, n_gens, material_len, reply_len */

/* ---- encoding ------------------------------------------------------------ */

static uint8_t *
put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *
put_bytes(uint8_t *p, const void *data, size_t len)
{
    if (len)
        memcpy(p, data, len);
    return p + len;
}

size_t
cache_redis_blob_size(const struct cache_redis_blob *blob)
{
    size_t total = BLOB_FIXED + blob->material_len + blob->reply_len + CACHE_REDIS_MAC_LEN;

    if (blob->n_gens > CACHE_REDIS_MAX_GENS || blob->material_len > CACHE_REDIS_MAX_MATERIAL ||
        blob->reply_len > CACHE_REDIS_MAX_REPLY)
        return 0;
    for (uint32_t i = 0; i < blob->n_gens; i++) {
        if (blob->gens[i].name_len == 0 || blob->gens[i].name_len > CACHE_REDIS_MAX_NAME)
            return 0;
        total += 4 + blob->gens[i].name_len + 8;
    }
    return total;
}

void
cache_redis_blob_write(const struct cache_redis_blob *blob, const struct cache_redis_mac *mac,
                       const char *rkey, size_t rkey_len, uint8_t *out, size_t size)
{
    uint8_t *p = out;

    p = put_bytes(p, BLOB_MAGIC, 4);
    p = put_u64(p, blob->epoch);
    p = put_u64(p, blob->expires_ms);
    p = put_u32(p, blob->n_gens);
    for (uint32_t i = 0; i < blob->n_gens; i++) {
        p = put_u32(p, (uint32_t)blob->gens[i].name_len);
        p = put_bytes(p, blob->gens[i].name, blob->gens[i].name_len);
        p = put_u64(p, blob->gens[i].value);
    }
    p = put_u32(p, (uint32_t)blob->material_len);
    p = put_bytes(p, blob->material, blob->material_len);
    p = put_u32(p, (uint32_t)blob->reply_len);
    p = put_bytes(p, blob->reply, blob->reply_len);
    BSON_ASSERT((size_t)(p - out) + CACHE_REDIS_MAC_LEN == size);
    cache_redis_mac_compute(mac, rkey, rkey_len, out, (size_t)(p - out), p);
}

uint8_t *
cache_redis_blob_encode(const struct cache_redis_blob *blob, const struct cache_redis_mac *mac,
                        const char *rkey, size_t rkey_len, size_t *len)
{
    size_t total = cache_redis_blob_size(blob);
    uint8_t *buf;

    if (total == 0)
        return NULL;
    buf = bson_malloc(total);
    cache_redis_blob_write(blob, mac, rkey, rkey_len, buf, total);
    *len = total;
    return buf;
}

/* ---- decoding ------------------------------------------------------------ */

/* A cursor over untrusted bytes: every take is bounds-checked. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static const uint8_t *
take(struct reader *r, size_t n)
{
    const uint8_t *p = r->p;

    if (n > r->left)
        return NULL;
    r->p += n;
    r->left -= n;
    return p;
}

static bool
take_u32(struct reader *r, uint32_t *v)
{
    const uint8_t *p = take(r, 4);

    if (!p)
        return false;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return true;
}

static bool
take_u64(struct reader *r, uint64_t *v)
{
    uint32_t lo;
    uint32_t hi;

    if (!take_u32(r, &lo) || !take_u32(r, &hi))
        return false;
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* Takes a u32 length (at most max) and that many bytes. */
static bool
take_field(struct reader *r, uint32_t max, const uint8_t **data, size_t *len)
{
    uint32_t n;

    if (!take_u32(r, &n) || n > max || !(*data = take(r, n)))
        return false;
    *len = n;
    return true;
}

static bool
blob_fail(bson_error_t *error, const char *what)
{
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_BLOB_MALFORMED,
                   "stored value refused: %s", what);
    return false;
}

bool
cache_redis_blob_decode(const uint8_t *data, size_t len, const struct cache_redis_mac *mac,
                        const char *rkey, size_t rkey_len, struct cache_redis_blob *blob,
                        bson_error_t *error)
{
    struct reader r = {data, len};
    const uint8_t *magic;
    struct wire_msg msg;
    bson_error_t why;

    memset(blob, 0, sizeof *blob);
    if (len > CACHE_REDIS_MAX_BLOB)
        return blob_fail(error, "too large");
    if (!(magic = take(&r, 4)) || memcmp(magic, BLOB_MAGIC, 4) != 0)
        return blob_fail(error, "not an MCV4 value");
    if (len < BLOB_FIXED + CACHE_REDIS_MAC_LEN)
        return blob_fail(error, "truncated");
    /* Nothing of a value is read before it is known to be ours. */
    r.left -= CACHE_REDIS_MAC_LEN;
    if (!cache_redis_mac_verify(mac, rkey, rkey_len, data, len - CACHE_REDIS_MAC_LEN,
                                data + len - CACHE_REDIS_MAC_LEN)) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_BLOB_BAD_MAC,
                       "stored value refused: its MAC does not verify");
        return false;
    }
    if (!take_u64(&r, &blob->epoch) || !take_u64(&r, &blob->expires_ms) ||
        !take_u32(&r, &blob->n_gens))
        return blob_fail(error, "truncated header");
    if (blob->n_gens > CACHE_REDIS_MAX_GENS)
        return blob_fail(error, "too many generations");
    for (uint32_t i = 0; i < blob->n_gens; i++) {
        struct cache_redis_gen *g = &blob->gens[i];
        const uint8_t *name;

        if (!take_field(&r, CACHE_REDIS_MAX_NAME, &name, &g->name_len) || g->name_len == 0 ||
            !take_u64(&r, &g->value))
            return blob_fail(error, "bad generation");
        g->name = (const char *)name;
    }
    if (!take_field(&r, CACHE_REDIS_MAX_MATERIAL, &blob->material, &blob->material_len))
        return blob_fail(error, "bad key material");
    if (!take_field(&r, CACHE_REDIS_MAX_REPLY, &blob->reply, &blob->reply_len))
        return blob_fail(error, "bad reply length");
    if (r.left != 0)
        return blob_fail(error, "trailing bytes");
    if (!wire_msg_parse(blob->reply, blob->reply_len, CACHE_REDIS_MAX_DEPTH, &msg, &why))
        return blob_fail(error, why.message);
    return true;
}
