/*
 * tests/unit/test_conf_thread.c: owns the tests of conf/thread.c's bounded
 * stop: a worker that ends in time is joined and its owner frees the shared
 * object; one that does not is left behind (conf_thread_stop returns after
 * the wait, not after the worker) and frees the object itself when it ends.
 */
#include "config.h"

#include "conf/clock.h"
#include "conf/thread.h"
#include "tests/unit/tap.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Set by the test's shared objects when the worker freed one (what it frees is the test's). */
static atomic_int freed_by_worker;

/* The object a worker shares with its owner. */
struct shared {
    struct conf_thread_end end;
    int64_t work_ms; /* how long the worker runs */
};

static void *
worker(void *arg)
{
    struct shared *s = arg;

    usleep((useconds_t)(s->work_ms * 1000));
    if (conf_thread_exiting(&s->end)) {
        conf_thread_end_cleanup(&s->end);
        free(s);
        atomic_fetch_add(&freed_by_worker, 1);
    }
    return NULL;
}

/* Starts a worker running work_ms and stops it with wait_ms; true when it was joined. */
static bool
run(int64_t work_ms, int64_t wait_ms, int64_t *waited_ms)
{
    struct shared *s = calloc(1, sizeof *s);
    pthread_t thread;
    int64_t t0;
    bool joined;

    s->work_ms = work_ms;
    conf_thread_end_init(&s->end);
    if (conf_thread_spawn(&thread, worker, s, "mc-test") != 0) {
        diag("cannot start a thread");
        conf_thread_end_cleanup(&s->end);
        free(s);
        return false;
    }
    t0 = conf_clock_ms();
    joined = conf_thread_stop(thread, &s->end, wait_ms);
    *waited_ms = conf_clock_ms() - t0;
    if (joined) {
        conf_thread_end_cleanup(&s->end);
        free(s);
    }
    return joined;
}

int
main(void)
{
    int64_t waited;
    bool joined;

    joined = run(10, 2000, &waited);
    ok(joined && waited < 2000, "a worker that ends in time is joined (%lld ms)",
       (long long)waited);
    is_int(atomic_load(&freed_by_worker), 0, "... and its owner frees the object");

    joined = run(1500, 100, &waited);
    ok(!joined && waited >= 100 && waited < 1400,
       "a worker still running after the wait is left behind (stop returned after %lld ms)",
       (long long)waited);
    for (int i = 0; i < 300 && atomic_load(&freed_by_worker) == 0; i++)
        usleep(10 * 1000);
    is_int(atomic_load(&freed_by_worker), 1, "... and frees the object itself when it ends");
    return done_testing();
}
