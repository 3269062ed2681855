/*
 * tests/unit/test_conf_random.c: conf/random's bytes come from the kernel
 * and its pool refills: buffers of every size up to past the pool are
 * filled (not left as they were), two fills differ, and a pool drawn
 * across several refills never repeats a value.
 */
#include "config.h"

#include "conf/random.h"
#include "tests/unit/tap.h"

#include <stdlib.h>
#include <string.h>

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int
main(void)
{
    static const size_t sizes[] = {1, 8, 32, 256, 257, 1000};
    enum { DRAWS = 4 * CONF_RANDOM_POOL / 8 + 3 };
    struct conf_random_pool pool;
    uint64_t *seen = malloc(DRAWS * sizeof *seen);
    uint8_t a[1001], b[1001];
    size_t repeats = 0;

    plan((int)(2 * (sizeof sizes / sizeof sizes[0])) + 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        bool filled;

        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        filled = conf_random_bytes(a, n) && conf_random_bytes(b, n);
        ok(filled && a[n] == 0, "%zu bytes: filled, and not one byte past", n);
        /* one byte equal by chance is 1/256: compare 8 or more */
        ok(n < 8 || memcmp(a, b, n) != 0, "%zu bytes: two fills differ", n);
    }
    conf_random_pool_init(&pool);
    for (size_t i = 0; i < DRAWS; i++)
        seen[i] = conf_random_pool_u64(&pool);
    qsort(seen, DRAWS, sizeof *seen, cmp_u64);
    for (size_t i = 1; i < DRAWS; i++)
        repeats += seen[i] == seen[i - 1];
    ok(repeats == 0, "a pool drawn %d times across refills repeats nothing (%zu repeats)", DRAWS,
       repeats);
    free(seen);
    return 0;
}
