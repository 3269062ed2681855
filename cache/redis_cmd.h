/*
 * cache/redis_cmd.h: what the Redis tier (cache/redis.h) sends and what it
 * accepts back. The key names, the commands encoded as RESP straight into
 * a buffer the tier reuses (no argument copied, no allocation once the
 * buffer has grown), the four Lua scripts, and the checks every reply
 * passes (its shape, its counters). No I/O, no event loop, no clock.
 *
 * Keys under the prefix P: "P v:<32 hex digits>" a value, "P g:<name>" a
 * generation, "P epoch", and the channel "P inval" (see cache/redis.h).
 */
#ifndef MONGOCACHE_CACHE_REDIS_CMD_H
#define MONGOCACHE_CACHE_REDIS_CMD_H

#include "cache/key.h"
#include "cache/redis.h"
#include "cache/redis_blob.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The scripts, loaded with SCRIPT LOAD on connect and run with EVALSHA (EVAL on NOSCRIPT). */
enum cache_redis_script {
    CACHE_REDIS_SCRIPT_LOOKUP, /* the slow path of a read: creates missing counters */
    CACHE_REDIS_SCRIPT_FILL,   /* compare-and-set of a value */
    CACHE_REDIS_SCRIPT_BUMP,   /* INCR generations, PUBLISH their names */
    CACHE_REDIS_SCRIPT_EPOCH,  /* INCR the epoch, PUBLISH "*" */
    CACHE_REDIS_SCRIPT_COUNT
};

/* A script's text (for SCRIPT LOAD and EVAL). */
const char *cache_redis_cmd_script_text(enum cache_redis_script script);

/* What a command is, so its reply's shape can be checked. */
enum cache_redis_cmd_kind {
    CACHE_REDIS_CMD_MGET,   /* MGET value epoch gens...: {value|nil, (counter|nil) x 1+n} */
    CACHE_REDIS_CMD_LOOKUP, /* the lookup script: {value|nil, counter x 1+n} */
    CACHE_REDIS_CMD_FILL,   /* integer */
    CACHE_REDIS_CMD_BUMP,   /* integer */
    CACHE_REDIS_CMD_EPOCH,  /* the new epoch as a string */
};

/*
 * The key names of one prefix, built once, the value's and the epoch's
 * also as whole RESP arguments (copied into a command in one piece): the
 * value key's buffer is rewritten per lookup (only its 32 hex digits).
 * Init copies prefix; free with cache_redis_keys_cleanup.
 */
struct cache_redis_keys {
    char *value; /* "P v:" + 32 hex digits, inside value_arg (no NUL after it) */
    size_t value_len;
    char *value_arg; /* the same as a whole RESP argument: "$len\r\n" value "\r\n" */
    size_t value_arg_len;
    char *epoch; /* "P epoch", inside epoch_arg */
    size_t epoch_len;
    char *epoch_arg; /* "$len\r\n" epoch "\r\n" */
    size_t epoch_arg_len;
    char *inval; /* "P inval" */
    size_t inval_len;
    char *gen; /* "P g:" (a generation's name follows) */
    size_t gen_len;
};

void cache_redis_keys_init(struct cache_redis_keys *keys, const char *prefix);
void cache_redis_keys_cleanup(struct cache_redis_keys *keys);

/* Writes key's 32 hex digits into keys->value (or "check" padding when key is NULL). */
void cache_redis_keys_set_value(struct cache_redis_keys *keys, const struct cache_key *key);
/* The same 32 digits at hex. */
void cache_redis_keys_hex(char hex[32], const struct cache_key *key);

/*
 * An encoded command: RESP bytes in a buffer that grows and is reused
 * (init zeroes; free with cache_redis_cmd_cleanup). tail: where the
 * arguments after "EVALSHA sha" begin, for the EVAL fallback.
 */
struct cache_redis_cmd {
    char *buf;
    size_t len;
    size_t cap;
    size_t tail;
    int argc;
};

void cache_redis_cmd_cleanup(struct cache_redis_cmd *cmd);

/*
 * MGET of the value (of key; key NULL: a value key that never holds a value,
 * for a check of the generations only), the epoch and every generation.
 */
void cache_redis_cmd_mget(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                          const struct cache_key *key, const struct cache_redis_gen *gens,
                          uint32_t n);

/*
 * The read batch's MGET (cache/redis.c): k values (the 32 hex digits of
 * value i's key at hex[i]), then the epoch and the n generations named in
 * names[] (their values unused), each once. Its reply: the k values, then
 * the epoch and the n counters, in that order.
 */
void cache_redis_cmd_mget_batch(struct cache_redis_cmd *cmd, const struct cache_redis_keys *keys,
                                const char *const *hex, uint32_t k,
                                const struct cache_redis_gen *names, uint32_t n);

/*
 * Whether reply can answer a read batch of k values and n generations (an
 * error reply can; a value may have spilled: cache/redis_resp.h).
 */
bool cache_redis_cmd_batch_shape_ok(uint32_t k, uint32_t n, const redisReply *reply);

/*
 * The lookup script over the same keys as cache_redis_cmd_mget; sha NULL:
 * EVAL with the text. base(arg) is called for each counter (epoch first):
 * what it is created at if missing.
 */
void cache_redis_cmd_lookup(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                            const char *sha, const struct cache_key *key,
                            const struct cache_redis_gen *gens, uint32_t n,
                            uint64_t (*base)(void *base_arg), void *base_arg);

/*
 * The fill script (compare-and-set): a value of blob_len bytes under key if
 * epoch and gens[] are unchanged. Returns where the value's blob_len bytes
 * go, inside cmd->buf (the caller writes them there: the value is encoded
 * once, in place); valid until cmd is encoded into again or cleaned up.
 */
uint8_t *cache_redis_cmd_fill(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                              const char *sha, size_t blob_len, int64_t ttl_ms, uint64_t epoch,
                              const struct cache_redis_gen *gens, uint32_t n);

/*
 * The bump script: INCR each generation (created at base(arg), called once
 * per generation, when missing) and PUBLISH "@instance\nname..." (a name
 * holding '\n' or NUL travels as "*").
 */
void cache_redis_cmd_bump(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                          const char *sha, const char instance[16],
                          const struct cache_redis_gen *gens, uint32_t n,
                          uint64_t (*base)(void *base_arg), void *base_arg);

/* The epoch script: INCR the epoch (created at base) and PUBLISH "@instance\n*". */
void cache_redis_cmd_epoch(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                           const char *sha, const char instance[16], uint64_t base);

/*
 * Rewrites a script command encoded with EVALSHA (from bytes/len, its tail
 * at tail, argc arguments) into cmd as EVAL with script's text.
 */
void cache_redis_cmd_as_eval(struct cache_redis_cmd *cmd, enum cache_redis_script script,
                             const char *bytes, size_t len, size_t tail, int argc);

/* Whether reply can answer a command of kind over n generations (an error reply always can). */
bool cache_redis_cmd_shape_ok(enum cache_redis_cmd_kind kind, uint32_t n,
                              const redisReply *reply);

/* What a read's reply (MGET or the lookup script, shape already checked) says. */
enum cache_redis_cmd_read {
    CACHE_REDIS_CMD_READ_OK,        /* *epoch and gens[].value filled */
    CACHE_REDIS_CMD_READ_MISSING,   /* a counter does not exist: take the slow path */
    CACHE_REDIS_CMD_READ_MALFORMED, /* a counter that is not a canonical integer, or of
                                       another type (read by the lookup script as "") */
};

enum cache_redis_cmd_read cache_redis_cmd_read(const redisReply *reply,
                                               struct cache_redis_gen *gens, uint32_t n,
                                               uint64_t *epoch);

/* One counter element of a read's reply: OK (*value set), MISSING (nil) or MALFORMED. */
enum cache_redis_cmd_read cache_redis_cmd_counter(const redisReply *e, uint64_t *value);

/* What two counters say together: a missing one wins over junk, junk over OK. */
enum cache_redis_cmd_read cache_redis_cmd_worse(enum cache_redis_cmd_read a,
                                                enum cache_redis_cmd_read b);

/*
 * Redis's decimal integer text as INCR writes it, as a uint64 (two's
 * complement). Anything else is refused, "007" or "+7" too: the fill script
 * compares counters as strings, so a counter read as 7 from "007" would
 * refuse every fill until the next bump.
 */
bool cache_redis_cmd_parse_int(const char *s, size_t len, uint64_t *out);

/* True when the blob's generations are exactly gens[0..n) (names and values, any order). */
bool cache_redis_cmd_gens_match(const struct cache_redis_blob *blob,
                                const struct cache_redis_gen *gens, uint32_t n);

#endif
