/*
 * conf/random.h: the one source of random bytes. Bytes come from the
 * kernel (getrandom(2), or /dev/urandom where getrandom is missing or
 * refused, as under an old kernel or a seccomp filter); when neither
 * answers, conf_random_bytes says so and the caller picks what unique,
 * if guessable, value stands in (each caller's comment says which).
 * A pool (struct conf_random_pool) fetches many bytes in one call for
 * callers that draw often (cursor ids); its fallback is documented below.
 * No globals: a pool lives in its owner's struct.
 */
#ifndef MONGOCACHE_CONF_RANDOM_H
#define MONGOCACHE_CONF_RANDOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_RANDOM_POOL 512 /* bytes fetched at once by a pool */

/*
 * Fills buf with len bytes from the kernel. False (buf's contents then
 * unspecified) when neither getrandom nor /dev/urandom gave all of them.
 */
bool conf_random_bytes(void *buf, size_t len) __attribute__((warn_unused_result));

/*
 * Random 64-bit values drawn CONF_RANDOM_POOL bytes at a time. Embedded in
 * its owner; conf_random_pool_init before use, nothing to clean up.
 */
struct conf_random_pool {
    uint8_t bytes[CONF_RANDOM_POOL]; /* kernel bytes, used from at on */
    size_t at;
    uint64_t fallback; /* a counter mixed in if the kernel gives nothing */
};

void conf_random_pool_init(struct conf_random_pool *pool);

/*
 * 64 bits from the kernel. Should the kernel refuse, a splitmix64 of the
 * pool's counter and the clock's nanoseconds: never repeated by this pool,
 * if less unguessable; the next call asks the kernel again.
 */
uint64_t conf_random_pool_u64(struct conf_random_pool *pool);

#endif
