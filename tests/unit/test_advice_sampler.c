/*
 * tests/unit/test_advice_sampler.c: owns the tests of advice/sampler: every
 * request taken up to the rate limit; above it, one in k with weight k, so
 * that the weights sum to the requests seen (within one group per second)
 * and about `exact` a second are taken; k follows the rate down as well as
 * up; 0 never samples; a clock that goes back starts a new second.
 */
#include "config.h"

#include "advice/sampler.h"
#include "tests/unit/tap.h"

/* Feeds rate requests a second, evenly, for seconds; the weights' sum and the requests taken. */
static void
feed(struct advice_sampler *s, int64_t *now, uint32_t rate, int seconds, uint64_t *sum,
     uint64_t *taken)
{
    *sum = 0;
    *taken = 0;
    for (int sec = 0; sec < seconds; sec++) {
        for (uint32_t i = 0; i < rate; i++) {
            uint32_t w = advice_sampler_take(s, *now + (int64_t)i * 1000 / rate);

            *sum += w;
            *taken += w > 0;
        }
        *now += 1000;
    }
}

static void
test_k(void)
{
    is_int(advice_sampler_k(5000, 4000, 1000), 1, "below the limit: every one");
    is_int(advice_sampler_k(5000, 5000, 1000), 1, "at the limit: every one");
    is_int(advice_sampler_k(5000, 5001, 1000), 2, "just above: one in 2");
    is_int(advice_sampler_k(5000, 65000, 1000), 13, "65,000 a second: one in 13");
    is_int(advice_sampler_k(5000, 65000, 10000), 2, "65,000 over 10 s is 6,500 a second");
    is_int(advice_sampler_k(0, 1000000, 1000), 1, "no limit: every one");
    is_int(advice_sampler_k(5000, 1000000, -5), 1, "a clock gone back: every one");
    is_int(advice_sampler_k(1, UINT32_MAX, 1000), UINT32_MAX, "the largest k");
}

static void
test_rates(void)
{
    struct advice_sampler s;
    int64_t now = 1000000;
    uint64_t sum, taken;

    advice_sampler_init(&s, 5000, now);
    feed(&s, &now, 3000, 3, &sum, &taken);
    ok(sum == 9000 && taken == 9000 && s.skipped == 0,
       "3,000 a second, limit 5,000: every one taken, weight 1 (%llu, %llu)",
       (unsigned long long)sum, (unsigned long long)taken);

    feed(&s, &now, 60000, 4, &sum, &taken);
    /* the first second still at k 1 (its rate is seen at its end), then one in 12 */
    ok(sum >= 240000 && sum <= 240000 + 3 * 12 && taken <= 60000 + 3 * 5001,
       "60,000 a second: weights sum to the requests (%llu of 240,000), %llu taken",
       (unsigned long long)sum, (unsigned long long)taken);
    is_int(s.k, 12, "k is 12 at 60,000 a second");
    is_int((long long)s.skipped, (long long)(240000 - taken), "the rest counted as passed over");

    feed(&s, &now, 1000, 2, &sum, &taken);
    ok(s.k == 1 && taken >= 1000, "back to 1,000 a second: every one again (k %u)", s.k);

    advice_sampler_set_exact(&s, 0);
    feed(&s, &now, 90000, 2, &sum, &taken);
    ok(sum == 180000 && taken == 180000, "limit 0: every one, whatever the rate");

    advice_sampler_set_exact(&s, 100);
    feed(&s, &now, 90000, 1, &sum, &taken);
    feed(&s, &now, 90000, 1, &sum, &taken);
    ok(s.k == 900 && sum >= 90000 && sum <= 90000 + 900 && taken <= 101,
       "a reload to 100: one in 900 from the next second (taken %llu)",
       (unsigned long long)taken);

    now -= 5000; /* the clock went back */
    is_int(advice_sampler_take(&s, now), 1, "a clock gone back: a new second, every one");
}

int
main(void)
{
    test_k();
    test_rates();
    return done_testing();
}
