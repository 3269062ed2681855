/*
 * cache/siphash.c: SipHash-2-4 (see siphash.h), written from the paper's
 * description: four 64-bit words of state started from the key and the
 * constants "somepseudorandomlygeneratedbytes", two rounds per 8-byte word
 * of input, the last word carrying the length's low byte, four rounds to
 * finish (the 128-bit variant marks v1 with 0xee at the start and v2 with
 * 0xee at the end, and draws its second word after v1 ^= 0xdd and four
 * more rounds). The whole words of each part are mixed on local copies of
 * the state (the input bytes cannot alias them). Owns nothing else.
 */
#include "cache/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND(v0, v1, v2, v3)                                                                  \
    do {                                                                                          \
        v0 += v1;                                                                                 \
        v1 = ROTL(v1, 13);                                                                        \
        v1 ^= v0;                                                                                 \
        v0 = ROTL(v0, 32);                                                                        \
        v2 += v3;                                                                                 \
        v3 = ROTL(v3, 16);                                                                        \
        v3 ^= v2;                                                                                 \
        v0 += v3;                                                                                 \
        v3 = ROTL(v3, 21);                                                                        \
        v3 ^= v0;                                                                                 \
        v2 += v1;                                                                                 \
        v1 = ROTL(v1, 17);                                                                        \
        v1 ^= v2;                                                                                 \
        v2 = ROTL(v2, 32);                                                                        \
    } while (0)

/* One word m through two rounds (the compression step). */
static inline void
block(struct cache_siphash *s, uint64_t m)
{
    s->v3 ^= m;
    SIPROUND(s->v0, s->v1, s->v2, s->v3);
    SIPROUND(s->v0, s->v1, s->v2, s->v3);
    s->v0 ^= m;
}

static inline void
rounds4(struct cache_siphash *s)
{
    for (int i = 0; i < 4; i++)
        SIPROUND(s->v0, s->v1, s->v2, s->v3);
}

void
cache_siphash_init(struct cache_siphash *s, const struct cache_siphash_key *key, bool wide)
{
    s->v0 = key->k0 ^ UINT64_C(0x736f6d6570736575);
    s->v1 = key->k1 ^ UINT64_C(0x646f72616e646f6d) ^ (wide ? 0xee : 0);
    s->v2 = key->k0 ^ UINT64_C(0x6c7967656e657261);
    s->v3 = key->k1 ^ UINT64_C(0x7465646279746573);
    s->tail = 0;
    s->n_tail = 0;
    s->total = 0;
}

void
cache_siphash_absorb(struct cache_siphash *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0, v1, v2, v3;

    s->total += len;
    if (s->n_tail > 0) {
        size_t need = 8 - s->n_tail;

        if (len < need) {
            /* Not a whole word yet: the bytes join the pending ones. */
            for (size_t i = 0; i < len; i++)
                s->tail |= (uint64_t)p[i] << (8 * (s->n_tail + i));
            s->n_tail += len;
            return;
        }
        if (len >= 8) {
            /* A whole word is readable: its first `need` bytes complete the tail. */
            s->tail |= cache_siphash_le64(p) << (8 * s->n_tail);
        } else {
            for (size_t i = 0; i < need; i++)
                s->tail |= (uint64_t)p[i] << (8 * (s->n_tail + i));
        }
        block(s, s->tail);
        p += need;
        len -= need;
        s->tail = 0;
        s->n_tail = 0;
    }
    v0 = s->v0;
    v1 = s->v1;
    v2 = s->v2;
    v3 = s->v3;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t m = cache_siphash_le64(p);

        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    s->v0 = v0;
    s->v1 = v1;
    s->v2 = v2;
    s->v3 = v3;
    for (size_t i = 0; i < len; i++)
        s->tail |= (uint64_t)p[i] << (8 * i);
    s->n_tail = len;
}

uint64_t
cache_siphash_final64(struct cache_siphash *s)
{
    block(s, s->total << 56 | s->tail);
    s->v2 ^= 0xff;
    rounds4(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* v as 8 little-endian bytes at p. */
static void
put_le64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, sizeof v);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}

void
cache_siphash_final128(struct cache_siphash *s, uint8_t out[16])
{
    uint64_t m = s->total << 56 | s->tail;
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;

    /* On locals: the state's words in memory would be loaded and stored
     * at every one of the ten rounds. */
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
    v2 ^= 0xee;
    for (int i = 0; i < 4; i++)
        SIPROUND(v0, v1, v2, v3);
    put_le64(out, v0 ^ v1 ^ v2 ^ v3);
    v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        SIPROUND(v0, v1, v2, v3);
    put_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
    s->v0 = v0;
    s->v1 = v1;
    s->v2 = v2;
    s->v3 = v3;
}

uint64_t
cache_siphash_24(const struct cache_siphash_key *key, const void *data, size_t len)
{
    struct cache_siphash s;

    cache_siphash_init(&s, key, false);
    cache_siphash_absorb(&s, data, len);
    return cache_siphash_final64(&s);
}
