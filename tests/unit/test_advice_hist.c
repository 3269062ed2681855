/*
 * tests/unit/test_advice_hist.c: the shape table's latency histogram
 * (advice/hist.h): bucket edges, quantiles against a sorted list of the
 * same values, p50 <= p99 whatever was counted, hostile values (NaN,
 * infinities, negatives), saturation, and the table feeding it
 * (advice_table_top's p50/p99 and ordering).
 */
#include "advice/hist.h"

#include "advice/table.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The upper bound of the bucket a value falls in (what a quantile reports), capped at max. */
static double
reported(double v, double max)
{
    for (unsigned i = 0; i < ADVICE_HIST_BUCKETS - 1; i++)
        if (v <= advice_hist_bound(i))
            return advice_hist_bound(i) < max ? advice_hist_bound(i) : max;
    return max;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
test_empty_and_edges(void)
{
    struct advice_hist h;

    memset(&h, 0, sizeof h);
    ok(advice_hist_quantile(&h, 0.5) == 0 && advice_hist_count(&h) == 0,
       "an empty histogram: count 0, p50 0");
    advice_hist_add(&h, 0.1);
    ok(h.n[0] == 1, "0.1 ms (a bound) counts in the bucket it bounds");
    advice_hist_add(&h, 0.1000001);
    ok(h.n[1] == 1, "just above a bound goes to the next bucket");
    advice_hist_add(&h, 1e9);
    ok(h.n[ADVICE_HIST_BUCKETS - 1] == 1 && h.max_ms == 1e9,
       "a value above the last bound goes to the open bucket");
    ok(advice_hist_quantile(&h, 1.0) == 1e9, "p100 of an open-bucket value is the largest seen");
    ok(advice_hist_quantile(&h, 0.5) == 0.25,
       "p50 of {0.1, 0.1000001, 1e9} is the second bucket's bound");
}

static void
test_hostile(void)
{
    struct advice_hist h;

    memset(&h, 0, sizeof h);
    advice_hist_add(&h, NAN);
    advice_hist_add(&h, -5);
    advice_hist_add(&h, -INFINITY);
    advice_hist_add(&h, INFINITY);
    ok(h.n[0] == 4 && h.max_ms == 0, "NaN, negatives and infinities count as 0 ms");
    ok(advice_hist_quantile(&h, NAN) == 0 && advice_hist_quantile(&h, -1) == 0,
       "a NaN or negative q gives 0");
    ok(advice_hist_quantile(&h, 7) == advice_hist_quantile(&h, 1), "q above 1 is 1");
    h.n[3] = UINT32_MAX;
    advice_hist_add(&h, 0.9);
    ok(h.n[3] == UINT32_MAX, "a full bucket saturates instead of wrapping to 0");
}

/* Random values: the quantile equals the bucket bound of the true ranked value. */
static void
test_against_sorted(void)
{
    enum { N = 1000 };
    static double v[N];
    int bad = 0, order = 0;

    srand(8);
    for (int round = 0; round < 50; round++) {
        struct advice_hist h;
        int n = 1 + rand() % N;
        double max = 0;

        memset(&h, 0, sizeof h);
        for (int i = 0; i < n; i++) {
            /* log-uniform from 0.01 ms to 100 s */
            v[i] = 0.01 * pow(10, 7.0 * rand() / RAND_MAX);
            advice_hist_add(&h, v[i]);
            if (v[i] > max)
                max = v[i];
        }
        qsort(v, (size_t)n, sizeof v[0], cmp_double);
        for (int qi = 0; qi < 2; qi++) {
            double q = qi ? 0.99 : 0.5;
            int rank = (int)ceil(q * n);
            double want = reported(v[rank - 1], max), got = advice_hist_quantile(&h, q);

            if (got != want) {
                bad++;
                diag("round %d n %d q %.2f: got %g want %g (value %g)", round, n, q, got, want,
                     v[rank - 1]);
            }
            if (got < v[rank - 1])
                bad++;
        }
        if (advice_hist_quantile(&h, 0.5) > advice_hist_quantile(&h, 0.99))
            order++;
        if (advice_hist_count(&h) != (uint64_t)n)
            bad++;
    }
    ok(bad == 0, "50 random sets: p50 and p99 are the bound of the bucket of the true ranked "
                 "value, never below it; counts add up");
    ok(order == 0, "p50 <= p99 in every set");
}

/* The table feeds each shape's histogram from its round trips. */
static void
test_table(void)
{
    struct advice_table *t = advice_table_new(8);
    struct advice_shape a, b;
    struct advice_table_row rows[4];
    uint32_t n;

    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.db = bson_strdup("app");
    a.coll = bson_strdup("a");
    a.hash = advice_shape_hash(&a);
    b.db = bson_strdup("app");
    b.coll = bson_strdup("b");
    b.hash = advice_shape_hash(&b);
    for (int i = 0; i < 100; i++) {
        advice_table_record(t, &a, NULL, 0, 0, i);
        advice_table_reply(t, a.hash, i < 98 ? 0.3 : 40.0, 1);
    }
    advice_table_record(t, &b, NULL, 0, 0, 200);
    advice_table_reply(t, b.hash, 3000, 0);
    for (int i = 0; i < 9; i++)
        advice_table_hit(t, b.hash, 201);
    n = advice_table_top(t, ADVICE_TABLE_BY_COUNT, rows, 4);
    ok(n == 2 && rows[0].shape->hash == a.hash && rows[0].queries == 100,
       "by count: the shape sent 100 times first");
    ok(rows[0].p50_ms == 0.5 && rows[0].p99_ms == 40.0,
       "98 x 0.3 ms and 2 x 40 ms: p50 0.5 (bucket bound), p99 40 (the largest seen)");
    ok(rows[0].server_ms_max == 40.0 && rows[0].documents == 100, "max and documents kept");
    n = advice_table_top(t, ADVICE_TABLE_BY_SERVER_TIME, rows, 4);
    ok(n == 2 && rows[0].shape->hash == b.hash, "by server time: the 3 s shape first");
    n = advice_table_top(t, ADVICE_TABLE_BY_HIT_RATIO, rows, 1);
    ok(n == 1 && rows[0].shape->hash == b.hash && rows[0].hit_ratio == 0.9,
       "by hit ratio, limit 1: the shape with 9 hits of 10");
    advice_table_destroy(t);
    advice_shape_cleanup(&a);
    advice_shape_cleanup(&b);
}

int
main(void)
{
    plan(17);
    test_empty_and_edges();
    test_hostile();
    test_against_sorted();
    test_table();
    return done_testing();
}
