/*
 * advice/sampler.c: owns choosing k, the sampling of pass-through shapes
 * (advice/sampler.h); taking a request is inline in the header.
 */
#include "config.h"

#include "advice/sampler.h"

void
advice_sampler_init(struct advice_sampler *s, uint32_t exact, int64_t now_ms)
{
    s->exact = exact;
    s->k = 1;
    s->left = 0;
    s->seen = 0;
    s->second_ms = now_ms;
    s->skipped = 0;
}

void
advice_sampler_set_exact(struct advice_sampler *s, uint32_t exact)
{
    s->exact = exact;
    if (exact == 0)
        s->k = 1;
}

uint32_t
advice_sampler_k(uint32_t exact, uint64_t seen, int64_t elapsed_ms)
{
    uint64_t rate;

    /* A clock that went back, or no limit: every one. */
    if (exact == 0 || elapsed_ms <= 0)
        return 1;
    /* A quiet spell longer than a second lowers the rate it shows. */
    rate = elapsed_ms >= 1000 ? seen * 1000 / (uint64_t)elapsed_ms : seen;
    if (rate <= exact)
        return 1;
    rate = (rate + exact - 1) / exact;
    return rate > UINT32_MAX ? UINT32_MAX : (uint32_t)rate;
}
