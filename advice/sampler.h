/*
 * advice/sampler.h: which pass-through requests have their query shape
 * derived when there are many. Deriving a shape costs a pass-through a few
 * per cent of its CPU (bench/README.md); a proxy passing through tens of
 * thousands of requests a second would pay that for counts no advice
 * needs to that precision. So: up to `exact` requests a second, every one
 * is derived and counted exactly; above, one in k is, k set each second
 * from the last second's rate so that about `exact` a second are derived,
 * and each derived one counts for k (its shape's counts become estimates,
 * unbiased). Misses are never sampled: their stored entry needs its shape
 * for the hits to be counted. Loop thread only.
 */
#ifndef MONGOCACHE_ADVICE_SAMPLER_H
#define MONGOCACHE_ADVICE_SAMPLER_H

#include <stdint.h>

struct advice_sampler {
    uint32_t exact;    /* derived a second before sampling starts; 0: every one, always */
    uint32_t k;        /* one in k this second (1: every one) */
    uint32_t left;     /* requests to pass over before the next derived one */
    uint32_t seen;     /* requests this second */
    int64_t second_ms; /* when this second began */
    uint64_t skipped;  /* requests whose shape was not derived, in all */
};

/* Every request derived until the first second has shown the rate. */
void advice_sampler_init(struct advice_sampler *s, uint32_t exact, int64_t now_ms);

/* A new rate limit (a reload); the current second goes on. */
void advice_sampler_set_exact(struct advice_sampler *s, uint32_t exact);

/* The k of the second after one that saw `seen` requests in `elapsed_ms`. */
uint32_t advice_sampler_k(uint32_t exact, uint64_t seen, int64_t elapsed_ms);

/*
 * A request is about to go to the server: 0 to pass over its shape, else
 * how many requests its shape counts for. now_ms: a monotonic clock.
 */
static inline uint32_t
advice_sampler_take(struct advice_sampler *s, int64_t now_ms)
{
    int64_t elapsed = now_ms - s->second_ms;

    if (elapsed >= 1000 || elapsed < 0) {
        s->k = advice_sampler_k(s->exact, s->seen, elapsed);
        s->seen = 0;
        s->left = 0;
        s->second_ms = now_ms;
    }
    s->seen++;
    if (s->k <= 1)
        return 1;
    if (s->left > 0) {
        s->left--;
        s->skipped++;
        return 0;
    }
    s->left = s->k - 1;
    return s->k;
}

#endif
