/*
 * cache/siphash.h: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed
 * pseudorandom function from any byte string to 64 bits under a 128-bit
 * key. Someone who does not know the key can do no better than guess at
 * its outputs, so cannot make two inputs meet on purpose (a collision costs
 * about 2^64 tries that must each be checked against the key's holder).
 * Used for the key material's digest (cache/key.h).
 */
#ifndef MONGOCACHE_CACHE_SIPHASH_H
#define MONGOCACHE_CACHE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 128-bit key: k0 is the key's first 8 bytes read little-endian, k1 the next 8. */
struct cache_siphash_key {
    uint64_t k0;
    uint64_t k1;
};

/* SipHash-2-4 of len bytes at data (NULL allowed when len is 0) under key. */
uint64_t cache_siphash_24(const struct cache_siphash_key *key, const void *data, size_t len);

#endif
