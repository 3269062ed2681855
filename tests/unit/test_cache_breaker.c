/*
 * tests/unit/test_cache_breaker.c: the Redis tier's circuit breaker
 * (cache/redis_breaker.c), a pure state machine, driven by tables of steps:
 * each step admits a command (keeping its ticket in a numbered slot) or
 * feeds a slot's outcome, at a given time, and states what must follow
 * (admitted or not, the event, the state, the failures counted). The
 * batch rule is here: the failures of one pipelined batch count once.
 */
#include "config.h"

#include "cache/redis_breaker.h"

#include "tests/unit/tap.h"

#include <string.h>

enum step_kind {
    ADMIT,  /* admit at t into slot; want: admitted (1) or refused (0), want_probe */
    ANSWER, /* slot's command answered at t */
    FAIL,   /* slot's command failed at t (timeout, connection lost) */
    RESET,  /* the connection was (re)made */
};

struct step {
    enum step_kind kind;
    uint64_t t;
    int slot;
    int want_admit; /* ADMIT: 1 admitted, 0 refused */
    int want_probe; /* ADMIT: 1 when it must be the probe */
    enum cache_redis_breaker_event want_event; /* ANSWER / FAIL */
    enum cache_redis_breaker_state want_state; /* after the step */
    int64_t want_consecutive;                  /* after the step; -1: not checked */
};

struct table {
    const char *name;
    int64_t threshold;
    int64_t cooldown_ms;
    struct step steps[24];
};

#define C CACHE_REDIS_BREAKER_STATE_CLOSED
#define O CACHE_REDIS_BREAKER_STATE_OPEN
#define H CACHE_REDIS_BREAKER_STATE_HALF_OPEN
#define NONE CACHE_REDIS_BREAKER_NONE
#define TRIP CACHE_REDIS_BREAKER_TRIPPED
#define CLOSE CACHE_REDIS_BREAKER_CLOSES
#define END {.kind = RESET, .t = UINT64_MAX}

static const struct table tables[] = {
    {"three failures one after the other open it",
     3,
     1000,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {FAIL, 10, 0, 0, 0, NONE, C, 1},
         {ADMIT, 10, 1, 1, 0, NONE, C, 1},
         {FAIL, 20, 1, 0, 0, NONE, C, 2},
         {ADMIT, 20, 2, 1, 0, NONE, C, 2},
         {FAIL, 30, 2, 0, 0, TRIP, O, 3},
         {ADMIT, 500, 3, 0, 0, NONE, O, -1},
         {ADMIT, 1029, 3, 0, 0, NONE, O, -1},
         END,
     }},
    {"an answer in between resets the count",
     2,
     1000,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {FAIL, 1, 0, 0, 0, NONE, C, 1},
         {ADMIT, 2, 1, 1, 0, NONE, C, 1},
         {ANSWER, 3, 1, 0, 0, NONE, C, 0},
         {ADMIT, 4, 2, 1, 0, NONE, C, 0},
         {FAIL, 5, 2, 0, 0, NONE, C, 1},
         END,
     }},
    {"a failed pipelined batch counts as one failure, not one per command",
     2,
     1000,
     {
         /* five commands pipelined: all in flight together */
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {ADMIT, 0, 1, 1, 0, NONE, C, 0},
         {ADMIT, 0, 2, 1, 0, NONE, C, 0},
         {ADMIT, 0, 3, 1, 0, NONE, C, 0},
         {ADMIT, 0, 4, 1, 0, NONE, C, 0},
         /* the connection drops: every one fails, for one cause */
         {FAIL, 7, 0, 0, 0, NONE, C, 1},
         {FAIL, 7, 1, 0, 0, NONE, C, 1},
         {FAIL, 7, 2, 0, 0, NONE, C, 1},
         {FAIL, 7, 3, 0, 0, NONE, C, 1},
         {FAIL, 7, 4, 0, 0, NONE, C, 1},
         /* the next batch failing is the second failure: it opens */
         {ADMIT, 8, 5, 1, 0, NONE, C, 1},
         {ADMIT, 8, 6, 1, 0, NONE, C, 1},
         {FAIL, 9, 5, 0, 0, TRIP, O, 2},
         {FAIL, 9, 6, 0, 0, NONE, O, 2},
         END,
     }},
    {"a batch partly answered: its later failure still counts once",
     2,
     1000,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {ADMIT, 0, 1, 1, 0, NONE, C, 0},
         {ADMIT, 0, 2, 1, 0, NONE, C, 0},
         {ANSWER, 1, 0, 0, 0, NONE, C, 0},
         {FAIL, 2, 1, 0, 0, NONE, C, 1},
         {FAIL, 2, 2, 0, 0, NONE, C, 1},
         /* sent after the answer: a new batch */
         {ADMIT, 3, 3, 1, 0, NONE, C, 1},
         {FAIL, 4, 3, 0, 0, TRIP, O, 2},
         END,
     }},
    {"cooldown over: one probe; its answer closes",
     1,
     100,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {FAIL, 5, 0, 0, 0, TRIP, O, 1},
         {ADMIT, 104, 1, 0, 0, NONE, O, -1},
         {ADMIT, 105, 1, 1, 1, NONE, H, -1},
         {ADMIT, 105, 2, 0, 0, NONE, H, -1},
         {ADMIT, 150, 2, 0, 0, NONE, H, -1},
         {ANSWER, 160, 1, 0, 0, CLOSE, C, 0},
         {ADMIT, 161, 2, 1, 0, NONE, C, 0},
         END,
     }},
    {"the probe fails: open again for a new cooldown",
     3,
     100,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {FAIL, 1, 0, 0, 0, NONE, C, 1},
         {ADMIT, 1, 1, 1, 0, NONE, C, 1},
         {FAIL, 2, 1, 0, 0, NONE, C, 2},
         {ADMIT, 2, 2, 1, 0, NONE, C, 2},
         {FAIL, 3, 2, 0, 0, TRIP, O, 3},
         {ADMIT, 103, 3, 1, 1, NONE, H, -1},
         {FAIL, 150, 3, 0, 0, TRIP, O, -1},
         {ADMIT, 249, 4, 0, 0, NONE, O, -1},
         {ADMIT, 250, 4, 1, 1, NONE, H, -1},
         END,
     }},
    {"a straggler of the failed batch does not re-open a half-open breaker",
     1,
     100,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {ADMIT, 0, 1, 1, 0, NONE, C, 0},
         {FAIL, 10, 0, 0, 0, TRIP, O, 1},
         {ADMIT, 110, 2, 1, 1, NONE, H, -1},
         /* slot 1 was in the batch that tripped it: its late failure is the same cause */
         {FAIL, 111, 1, 0, 0, NONE, H, -1},
         {ANSWER, 112, 2, 0, 0, CLOSE, C, 0},
         END,
     }},
    {"a reset closes it at once",
     1,
     10000,
     {
         {ADMIT, 0, 0, 1, 0, NONE, C, 0},
         {FAIL, 1, 0, 0, 0, TRIP, O, 1},
         {ADMIT, 2, 1, 0, 0, NONE, O, -1},
         {RESET, 3, 0, 0, 0, NONE, C, 0},
         {ADMIT, 4, 1, 1, 0, NONE, C, 0},
         END,
     }},
};

static void
run_table(const struct table *t)
{
    struct cache_redis_breaker b;
    struct cache_redis_breaker_ticket slots[16];
    bool good = true;

    memset(slots, 0, sizeof slots);
    cache_redis_breaker_init(&b, t->threshold, t->cooldown_ms);
    for (size_t i = 0; i < sizeof t->steps / sizeof t->steps[0]; i++) {
        const struct step *s = &t->steps[i];
        enum cache_redis_breaker_event ev = NONE;
        bool admitted;

        if (s->kind == RESET && s->t == UINT64_MAX)
            break;
        switch (s->kind) {
        case ADMIT: {
            bool would = cache_redis_breaker_would_admit(&b, s->t);

            admitted = cache_redis_breaker_admit(&b, s->t, &slots[s->slot]);
            if (admitted != (s->want_admit == 1) || would != admitted ||
                (admitted && slots[s->slot].probe != (s->want_probe == 1))) {
                diag("%s: step %zu: admitted %d (would %d) probe %d", t->name, i, admitted,
                     would, admitted ? slots[s->slot].probe : -1);
                good = false;
            }
            break;
        }
        case ANSWER:
        case FAIL:
            ev = cache_redis_breaker_result(&b, s->t, &slots[s->slot], s->kind == ANSWER);
            if (ev != s->want_event) {
                diag("%s: step %zu: event %d, want %d", t->name, i, ev, s->want_event);
                good = false;
            }
            break;
        case RESET:
            cache_redis_breaker_reset(&b);
            break;
        }
        if (b.state != s->want_state ||
            (s->want_consecutive >= 0 && b.consecutive != s->want_consecutive)) {
            diag("%s: step %zu: state %s consecutive %lld, want %s %lld", t->name, i,
                 cache_redis_breaker_state_name(b.state), (long long)b.consecutive,
                 cache_redis_breaker_state_name(s->want_state), (long long)s->want_consecutive);
            good = false;
        }
    }
    ok(good, "%s", t->name);
}

static void
test_wait_and_configure(void)
{
    struct cache_redis_breaker b;
    struct cache_redis_breaker_ticket tk;

    cache_redis_breaker_init(&b, 0, -5);
    is_int(b.threshold, 1, "a threshold below 1 is 1");
    is_int(b.cooldown_ms, 0, "a negative cooldown is 0");
    cache_redis_breaker_configure(&b, 2, 300);
    ok(cache_redis_breaker_admit(&b, 1000, &tk), "closed admits");
    is_int((long long)cache_redis_breaker_wait_ms(&b, 1000), 0, "closed: nothing to wait");
    (void)cache_redis_breaker_result(&b, 1000, &tk, false);
    ok(cache_redis_breaker_admit(&b, 1000, &tk), "one failure of two: still closed");
    is_int(cache_redis_breaker_result(&b, 1000, &tk, false), TRIP, "the second trips it");
    is_int((long long)cache_redis_breaker_wait_ms(&b, 1100), 200, "200 ms of the cooldown left");
    is_int((long long)cache_redis_breaker_wait_ms(&b, 1400), 0, "none once it is over");
    cache_redis_breaker_configure(&b, 5, 10);
    is_int(b.state, O, "a reload keeps the state");
    is_str(cache_redis_breaker_state_name(H), "half_open", "state names");
    is_str(cache_redis_breaker_state_name((enum cache_redis_breaker_state)9), "unknown",
           "an unknown state has a name too");
}

int
main(void)
{
    plan((int)(sizeof tables / sizeof tables[0]) + 11);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        run_table(&tables[i]);
    test_wait_and_configure();
    return done_testing();
}
