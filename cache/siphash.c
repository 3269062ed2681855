/*
 * cache/siphash.c: SipHash-2-4 (see siphash.h), written from the paper's
 * description: four 64-bit words of state started from the key and the
 * constants "somepseudorandomlygeneratedbytes", two rounds per 8-byte word
 * of input, the last word carrying the length's low byte, four rounds to
 * finish. Owns nothing else.
 */
#include "cache/siphash.h"

#include <string.h>

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

/* 8 bytes at p as a little-endian word, whatever the host's order. */
static uint64_t
le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;

    memcpy(&w, p, sizeof w);
    return w;
#else
    uint64_t w = 0;

    for (int i = 7; i >= 0; i--)
        w = (w << 8) | p[i];
    return w;
#endif
}

uint64_t
cache_siphash_24(const struct cache_siphash_key *key, const void *data, size_t len)
{
    const uint8_t *p = data;
    const uint8_t *end = p + (len & ~(size_t)7);
    uint64_t v0 = key->k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = key->k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = key->k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = key->k1 ^ UINT64_C(0x7465646279746573);
    uint64_t m, last = (uint64_t)len << 56;

    for (; p != end; p += 8) {
        m = le64(p);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    switch (len & 7) { /* the last 0 to 7 bytes, little-endian, under the length's byte */
    case 7:
        last |= (uint64_t)p[6] << 48;
        /* fall through */
    case 6:
        last |= (uint64_t)p[5] << 40;
        /* fall through */
    case 5:
        last |= (uint64_t)p[4] << 32;
        /* fall through */
    case 4:
        last |= (uint64_t)p[3] << 24;
        /* fall through */
    case 3:
        last |= (uint64_t)p[2] << 16;
        /* fall through */
    case 2:
        last |= (uint64_t)p[1] << 8;
        /* fall through */
    case 1:
        last |= (uint64_t)p[0];
        break;
    default:
        break;
    }
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}
