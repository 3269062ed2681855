/*
 * cache/key.c: key material, and its key (XXH3-128) and digest (SipHash-2-4)
 * of it: see key.h. Owns the list of per-request fields left out of the key,
 * the material's layout and its hash; does not decide whether a command is
 * cacheable (policy.c) or store anything (cache.c). Reads the body's
 * elements in place: the material is the raw bytes of each kept element,
 * never a re-encoding, and a hit hashes them where they lie (gathered on
 * the stack), building no material.
 */
#include "config.h"

#include "cache/key.h"

#include "cache/siphash.h"
#include "wire/names.h"
#include "wire/reader.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_generateSecret, XXH3_state_t on the stack (0.8.1) */
#include <xxhash.h>

/*
 * Fields that vary per request but never change the answer, and the only
 * values of them left out of the key: the ones a server accepts. Any other
 * value (a comment that is not a string, maxTimeMS "abc" or -1) stays in the
 * key, so that command reaches the server, whose error is never stored,
 * instead of being answered with the reply to its valid twin.
 */
static __attribute__((noinline)) bool
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
static __attribute__((noinline)) bool
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

/* Whether an element with this key may be volatile (is_volatile then looks at its value). */
static inline bool
maybe_volatile(enum wire_name id)
{
    switch (id) {
    case WIRE_NAME_LSID:
    case WIRE_NAME_DOLLAR_CLUSTER_TIME:
    case WIRE_NAME_TXN_NUMBER:
    case WIRE_NAME_DOLLAR_DB:
    case WIRE_NAME_COMMENT:
    case WIRE_NAME_MAX_TIME_MS:
        return true;
    default:
        return false;
    }
}

/*
 * Whether the element is left out of the material (its key is one
 * maybe_volatile names). Inline, with the usual lsid decided here: its
 * first element a binary named id, whole inside it, is what valid_lsid
 * would find first.
 */
static inline __attribute__((always_inline)) bool
is_volatile(const struct wire_cmd_elem *e)
{
    const uint8_t *v = e->value;
    uint32_t value_len = e->len - 2 - e->key_len;

    switch (e->id) {
    case WIRE_NAME_LSID:
        if (e->type == BSON_TYPE_DOCUMENT && value_len >= 14 && v[4] == BSON_TYPE_BINARY &&
            v[5] == 'i' && v[6] == 'd' && v[7] == 0) {
            int32_t n = wire_frame_read_i32(v), m = wire_frame_read_i32(v + 8);

            /* Its length, then the binary's (4), subtype, bytes, and the final NUL. */
            if (n >= 14 && (uint32_t)n <= value_len && v[n - 1] == 0 && m >= 0 && m <= n - 14)
                return true;
        }
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

/* Room for len more bytes at the end of the material at arg, taken: where to write them. */
static uint8_t *
append_room(void *arg, size_t len)
{
    struct cache_key_material *m = arg;
    uint8_t *p;

    if (m->len + len > m->cap)
        reserve(m, len);
    p = m->data + m->len;
    m->len += len;
    return p;
}

/* Appends len bytes at data to m. */
static void
append(void *arg, const void *data, size_t len)
{
    struct cache_key_material *m = arg;

    if (m->len + len > m->cap)
        reserve(m, len);
    if (len > 0)
        memcpy(m->data + m->len, data, len);
    m->len += len;
}

/*
 * Both hashes fed in pieces: the pieces are gathered in buf (on the stack)
 * and absorbed together, so a usual command's material (under FEED_ROOM
 * bytes) is hashed by one one-shot XXH3 and one SipHash call, not once per
 * piece. A longer one spills buf into XXH3's streaming state (made at the
 * first spill) and the SipHash state as it fills.
 */
#define FEED_ROOM 512
struct feed {
    const struct cache_key_secret *secret;
    struct cache_siphash s;
    bool streaming; /* xs holds what spilled so far */
    size_t n;
    uint8_t buf[FEED_ROOM];
    XXH3_state_t xs;
};

/* Absorbs len bytes at data into both hashes, as a part of a longer material. */
static void
feed_spill(struct feed *f, const void *data, size_t len)
{
    if (!f->streaming) {
        (void)XXH3_128bits_reset_withSecret(&f->xs, f->secret->bytes, sizeof f->secret->bytes);
        f->streaming = true;
    }
    (void)XXH3_128bits_update(&f->xs, data, len);
    cache_siphash_absorb(&f->s, data, len);
}

/* Room for len more bytes in the feed at arg, taken; NULL when len is more than it holds. */
static uint8_t *
feed_room(void *arg, size_t len)
{
    struct feed *f = arg;
    uint8_t *p;

    if (len > sizeof f->buf)
        return NULL;
    if (f->n + len > sizeof f->buf) {
        feed_spill(f, f->buf, f->n);
        f->n = 0;
    }
    p = f->buf + f->n;
    f->n += len;
    return p;
}

/* Adds len bytes at data to the feed at arg. */
static void
feed(void *arg, const void *data, size_t len)
{
    struct feed *f = arg;

    if (f->n + len > sizeof f->buf) {
        feed_spill(f, f->buf, f->n);
        f->n = 0;
        if (len > sizeof f->buf) {
            feed_spill(f, data, len);
            return;
        }
    }
    memcpy(f->buf + f->n, data, len);
    f->n += len;
}

/* The key and digest of everything fed. */
static void
feed_end(struct feed *f, struct cache_key *key, uint64_t *digest)
{
    XXH128_hash_t h;

    cache_siphash_absorb(&f->s, f->buf, f->n);
    *digest = cache_siphash_final64(&f->s);
    if (f->streaming) {
        (void)XXH3_128bits_update(&f->xs, f->buf, f->n);
        h = XXH3_128bits_digest(&f->xs);
    } else {
        h = XXH3_128bits_withSecret(f->buf, f->n, f->secret->bytes, sizeof f->secret->bytes);
    }
    key->hi = h.high64;
    key->lo = h.low64;
}

/* Writes len as 4 little-endian bytes at p; returns p past them. */
static inline uint8_t *
put_len(uint8_t *p, size_t len)
{
    p[0] = (uint8_t)len;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 24);
    return p + 4;
}

/*
 * The material, piece by piece, each given to sink(arg, bytes, len) in
 * order: first the head, the principal, the database and the collection,
 * each as its length (4 bytes, little-endian) then its bytes; then every
 * top-level element of the body that is not volatile, as sent (type byte,
 * key, value), a run of neighbours in one piece straight from the body.
 * The head's parts are length-prefixed and the elements follow it: the body
 * passed wire_doc_check, so each element's own bytes say where it ends (a
 * known type, a terminated key, a value whose size its type and length
 * fields give), and no two different inputs give the same material.
 * The head is written where room(arg, its length) says when it can be
 * (one piece, not six). Inlined into each caller, so room and sink are
 * direct calls.
 */
static inline __attribute__((always_inline)) void
each_piece(const char *principal, const char *db, const char *coll, uint32_t coll_len,
           const bson_t *body, const struct wire_cmd *cmd, uint8_t *(*room)(void *, size_t),
           void (*sink)(void *, const void *, size_t), void *arg)
{
    size_t principal_len = strlen(principal), db_len = strlen(db);
    const uint8_t *data = bson_get_data(body);
    struct wire_cmd_walk walk;
    struct wire_cmd_elem e;
    const uint8_t *run = NULL, *run_end = NULL;
    uint8_t *p = room(arg, 12 + principal_len + db_len + (size_t)coll_len);

    if (p) {
        p = put_len(p, principal_len);
        memcpy(p, principal, principal_len);
        p = put_len(p + principal_len, db_len);
        memcpy(p, db, db_len);
        p = put_len(p + db_len, coll_len);
        memcpy(p, coll, coll_len);
    } else {
        uint8_t len[4];

        put_len(len, principal_len);
        sink(arg, len, 4);
        sink(arg, principal, principal_len);
        put_len(len, db_len);
        sink(arg, len, 4);
        sink(arg, db, db_len);
        put_len(len, coll_len);
        sink(arg, len, 4);
        sink(arg, coll, coll_len);
    }
    wire_cmd_walk_init(&walk, cmd, data, body->len);
    if (walk.cmd) {
        /* The parse's records: only an element whose key may be volatile is looked at. */
        for (uint32_t i = 0; i < cmd->n_elems; i++) {
            uint32_t off = cmd->elem_off[i];

            if (maybe_volatile((enum wire_name)cmd->elem_id[i])) {
                walk.i = i;
                (void)wire_cmd_walk_next(&walk, &e);
                if (is_volatile(&e)) {
                    if (run)
                        sink(arg, run, (size_t)(data + off - run));
                    run = NULL;
                    continue;
                }
            }
            if (!run)
                run = data + off;
        }
        if (run) /* the last element ends at the body's final NUL */
            sink(arg, run, (size_t)(data + body->len - 1 - run));
        return;
    }
    while (wire_cmd_walk_next(&walk, &e)) {
        if (is_volatile(&e)) {
            if (run)
                sink(arg, run, (size_t)(run_end - run));
            run = NULL;
            continue;
        }
        if (!run)
            run = e.start;
        run_end = e.start + e.len; /* the walk gives the elements in order, end to start */
    }
    if (run)
        sink(arg, run, (size_t)(run_end - run));
}

void
cache_key_material_build(const char *principal, const char *db, const char *coll,
                         uint32_t coll_len, const bson_t *body, const struct wire_cmd *cmd,
                         struct cache_key_material *material)
{
    material->len = 0;
    each_piece(principal, db, coll, coll_len, body, cmd, append_room, append, material);
}

void
cache_key_build(const struct cache_key_secret *secret, const char *principal, const char *db,
                const char *coll, uint32_t coll_len, const bson_t *body, const struct wire_cmd *cmd,
                struct cache_key_material *material, struct cache_key *key, uint64_t *digest)
{
    struct feed f;

    f.secret = secret;
    cache_siphash_init(&f.s, &secret->digest_key, false);
    f.streaming = false;
    f.n = 0;
    if (material) {
        XXH128_hash_t h;

        cache_key_material_build(principal, db, coll, coll_len, body, cmd, material);
        h = XXH3_128bits_withSecret(material->data, material->len, secret->bytes,
                                    sizeof secret->bytes);
        key->hi = h.high64;
        key->lo = h.low64;
        cache_siphash_absorb(&f.s, material->data, material->len);
        *digest = cache_siphash_final64(&f.s);
    } else {
        each_piece(principal, db, coll, coll_len, body, cmd, feed_room, feed, &f);
        feed_end(&f, key, digest);
    }
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
