/*
 * cache/siphash.h: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed
 * pseudorandom function from any byte string to 64 bits (or, in its
 * 128-bit variant, 128) under a 128-bit key. Someone who does not know the
 * key can do no better than guess at its outputs, so cannot make two inputs
 * meet on purpose, nor forge a tag. The one implementation in the tree:
 * the key material's digest (cache/key.h, 64 bits, absorbed as the command
 * is read) and the Redis tier's value MAC (cache/redis_mac.h, 128 bits,
 * absorbed in parts).
 */
#ifndef MONGOCACHE_CACHE_SIPHASH_H
#define MONGOCACHE_CACHE_SIPHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The 128-bit key: k0 is the key's first 8 bytes read little-endian, k1 the next 8. */
struct cache_siphash_key {
    uint64_t k0;
    uint64_t k1;
};

/* A hash being computed: input absorbed in any number of parts. */
struct cache_siphash {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;  /* the last 0..7 bytes not yet absorbed, little-endian */
    size_t n_tail;  /* how many */
    uint64_t total; /* bytes absorbed so far (mod 2^64; only its low byte is used) */
};

/* Starts s under key; wide: the 128-bit variant (finish with cache_siphash_final128). */
void cache_siphash_init(struct cache_siphash *s, const struct cache_siphash_key *key, bool wide);
/* Absorbs len bytes at data (NULL allowed when len is 0). */
void cache_siphash_absorb(struct cache_siphash *s, const void *data, size_t len);
/* The 64-bit output of s (started with wide false). */
uint64_t cache_siphash_final64(struct cache_siphash *s);
/* The 128-bit output of s (started with wide true), little-endian words. */
void cache_siphash_final128(struct cache_siphash *s, uint8_t out[16]);

/* SipHash-2-4 (64-bit) of len bytes at data under key, in one call. */
uint64_t cache_siphash_24(const struct cache_siphash_key *key, const void *data, size_t len);

/* 8 bytes at p as a little-endian word, whatever the host's order. */
static inline uint64_t
cache_siphash_le64(const uint8_t *p)
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

#endif
