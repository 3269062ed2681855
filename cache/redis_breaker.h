/*
 * cache/redis_breaker.h: the Redis tier's circuit breaker (cache/redis.h),
 * as a pure state machine: no I/O, no clock (every call that needs the
 * time is given it, in monotonic milliseconds), no log, no allocation. The
 * tier asks it before sending, tells it each command's outcome, and logs or
 * counts the transitions it reports.
 *
 *                 failures >= threshold
 *      CLOSED ───────────────────────────> OPEN
 *        ^  ^                               │ cooldown over: the next admit
 *        │  └─ answered ── HALF_OPEN <──────┘ goes out as the one probe
 *        │                    │
 *        └── reset            └── failed ──> OPEN (a new cooldown)
 *
 * An outcome is "answered" when Redis replied at all (an error reply is an
 * answer: Redis is alive) and "failed" when the command timed out or its
 * connection was lost. Failures count only while they are consecutive.
 *
 * Batches. Commands sent between two outcomes the breaker has seen are one
 * pipelined batch: they travel together, and when Redis stalls or the
 * connection drops they all fail for one cause. So a batch's failures count
 * as ONE failure: the first one counted, the others of that batch (or of an
 * older one) ignored. Each admit hands out the current batch in a ticket;
 * every outcome the breaker acts on starts a new batch for what is sent
 * after it.
 */
#ifndef MONGOCACHE_CACHE_REDIS_BREAKER_H
#define MONGOCACHE_CACHE_REDIS_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum cache_redis_breaker_state {
    CACHE_REDIS_BREAKER_STATE_CLOSED,    /* everything goes to Redis */
    CACHE_REDIS_BREAKER_STATE_OPEN,      /* nothing goes, until the cooldown is over */
    CACHE_REDIS_BREAKER_STATE_HALF_OPEN, /* one probe goes; its outcome closes or re-opens */
};

/* What a result changed, for the caller to log and count. */
enum cache_redis_breaker_event {
    CACHE_REDIS_BREAKER_NONE,
    CACHE_REDIS_BREAKER_TRIPPED, /* now OPEN (from CLOSED or HALF_OPEN) */
    CACHE_REDIS_BREAKER_CLOSES,  /* HALF_OPEN -> CLOSED: the probe was answered */
};

/* Given at admission, handed back with the outcome: plain data kept with the command. */
struct cache_redis_breaker_ticket {
    uint64_t batch;
    bool probe; /* the half-open probe */
};

/* Embedded by its owner; all fields are the machine's own. */
struct cache_redis_breaker {
    enum cache_redis_breaker_state state;
    int64_t threshold;      /* consecutive failures that open it (>= 1) */
    int64_t cooldown_ms;    /* how long it stays open (>= 0) */
    int64_t consecutive;    /* failures counted since the last answer */
    uint64_t open_until_ms; /* OPEN: when the cooldown ends */
    bool probe_out;         /* HALF_OPEN: the probe is in flight */
    uint64_t batch;         /* the batch commands are admitted into now */
    uint64_t failed_batch;  /* the newest batch whose failure was counted (0: none) */
};

/* A closed breaker with threshold and cooldown (clamped to >= 1 and >= 0). No destructor. */
void cache_redis_breaker_init(struct cache_redis_breaker *b, int64_t threshold,
                              int64_t cooldown_ms);

/* New threshold and cooldown (a reload); the state is kept. */
void cache_redis_breaker_configure(struct cache_redis_breaker *b, int64_t threshold,
                                   int64_t cooldown_ms);

/* Closed, nothing counted, no probe out (the connection was (re)made). */
void cache_redis_breaker_reset(struct cache_redis_breaker *b);

/*
 * May a command go to Redis at now_ms? When OPEN and the cooldown is over
 * it becomes HALF_OPEN; while HALF_OPEN only one command is admitted, as
 * the probe, until its outcome. True with *ticket filled (hand it back to
 * cache_redis_breaker_result exactly once), or false (nothing to hand back).
 */
bool cache_redis_breaker_admit(struct cache_redis_breaker *b, uint64_t now_ms,
                               struct cache_redis_breaker_ticket *ticket)
    __attribute__((warn_unused_result));

/* A ticket whose command could not be sent after all: forgotten (a probe may go again). */
void cache_redis_breaker_unadmit(struct cache_redis_breaker *b,
                                 const struct cache_redis_breaker_ticket *ticket);

/* Whether cache_redis_breaker_admit would admit at now_ms; changes nothing. */
bool cache_redis_breaker_would_admit(const struct cache_redis_breaker *b, uint64_t now_ms);

/* The outcome of a command admitted with ticket: answered (Redis replied) or failed. */
enum cache_redis_breaker_event
cache_redis_breaker_result(struct cache_redis_breaker *b, uint64_t now_ms,
                           const struct cache_redis_breaker_ticket *ticket, bool answered);

/* Milliseconds until the cooldown ends at now_ms (0 unless OPEN). */
uint64_t cache_redis_breaker_wait_ms(const struct cache_redis_breaker *b, uint64_t now_ms);

/* "closed", "open", "half_open". */
const char *cache_redis_breaker_state_name(enum cache_redis_breaker_state state);

#endif
