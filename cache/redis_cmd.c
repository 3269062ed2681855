/*
 * cache/redis_cmd.c: the Redis tier's commands and replies (see
 * redis_cmd.h). It owns the key names, the RESP encoding of every command
 * the tier sends after the handshake, the Lua scripts, and what a reply
 * must look like. It does not send (redis_conn.c), time anything out or
 * decide what an outcome means (redis.c), nor know the value blob's format
 * (redis_blob.c).
 *
 * Encoding. A command is written as RESP ("*argc", then "$len" and the
 * bytes of each argument) straight from the caller's buffers into a buffer:
 * nothing is copied first. Reads use one buffer that the tier reuses (no
 * allocation once it has grown to the largest read); the value and epoch
 * keys are kept as whole arguments, copied in one piece. A fill leaves its
 * value's space at the command's end for the caller to write the value
 * into (cache_redis_cmd_fill): the reply is copied once, there, and the
 * buffer is sent as it is. Numbers are written by hand (no printf). The
 * only random numbers sent are the bases of counters the slow paths (the
 * lookup script, a bump, the epoch bump) may create; a read's fast path
 * (MGET) and a fill send none.
 */
#include "config.h"

#include "cache/redis_cmd.h"

#include "cache/redis_resp.h"

#include <string.h>

/*
 * KEYS: value, epoch, gens...  ARGV: epoch base, gen bases... Returns
 * {value or nil, epoch, gens...}; creates missing counters at their base.
 * A key of another type (pcall: WRONGTYPE) reads as "": a value so read is
 * refused by the decoder, a counter so read by cache_redis_cmd_read (a
 * miss for that entry, counted), never an error that looks like a broken
 * Redis; and it is left as it is (a bump re-makes it).
 */
static const char lookup_lua[] =
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'table' then v = '' end\n"
    "local r = {v}\n"
    "for i = 2, #KEYS do\n"
    "  local g = redis.pcall('GET', KEYS[i])\n"
    "  if type(g) == 'table' then g = ''\n"
    "  elseif not g then g = ARGV[i - 1]; redis.call('SET', KEYS[i], g) end\n"
    "  r[i] = g\n"
    "end\n"
    "return r\n";

/*
 * KEYS: value, epoch, gens...  ARGV: ttl ms, epoch, gens..., value (last,
 * so that the value is encoded in place at the command's end). Returns 1
 * stored, 0 refused (a counter changed, or of another type).
 */
static const char fill_lua[] =
    "for i = 2, #KEYS do\n"
    "  if redis.pcall('GET', KEYS[i]) ~= ARGV[i] then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[#ARGV], 'PX', ARGV[1])\n"
    "return 1\n";

/*
 * KEYS: gens...  ARGV: channel, message, gen bases... A counter missing, of
 * another type or not an integer INCR accepts is re-made at its base (SET
 * replaces any type) and bumped: a fresh random base is a bump like any
 * other (see redis.c), so a junk key never turns a write into a failure.
 */
static const char bump_lua[] =
    "for i = 1, #KEYS do\n"
    "  local n = nil\n"
    "  if redis.call('EXISTS', KEYS[i]) == 1 then n = redis.pcall('INCR', KEYS[i]) end\n"
    "  if type(n) ~= 'number' then\n"
    "    redis.call('SET', KEYS[i], ARGV[i + 2])\n"
    "    redis.call('INCR', KEYS[i])\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], ARGV[2])\n"
    "return #KEYS\n";

/*
 * KEYS: epoch  ARGV: base, channel, message. Returns the new epoch as text:
 * Lua numbers are doubles, which cannot hold a 62-bit counter exactly. An
 * epoch key that is not a counter is re-made as in the bump script.
 */
static const char epoch_lua[] =
    "local n = nil\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then n = redis.pcall('INCR', KEYS[1]) end\n"
    "if type(n) ~= 'number' then\n"
    "  redis.call('SET', KEYS[1], ARGV[1])\n"
    "  redis.call('INCR', KEYS[1])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
    "return redis.call('GET', KEYS[1])\n";

static const char *const script_text[CACHE_REDIS_SCRIPT_COUNT] = {lookup_lua, fill_lua, bump_lua,
                                                                  epoch_lua};

/* The value key of a check: never a value's (values are named by 32 hex digits). */
static const char check_name[33] = "check---------------------------";

const char *
cache_redis_cmd_script_text(enum cache_redis_script script)
{
    return script_text[script];
}

/* ---- keys ------------------------------------------------------------------------------ */

/* Writes v in decimal at out; returns the length (at most 20). */
static size_t
decimal(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    if (v < 10) { /* argument counts and most lengths: no division */
        out[0] = (char)('0' + v);
        return 1;
    }
    if (v < 100) {
        out[0] = (char)('0' + v / 10);
        out[1] = (char)('0' + v % 10);
        return 2;
    }
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static char *
key_new(const char *prefix, size_t plen, const char *kind, size_t extra, size_t *len)
{
    size_t klen = strlen(kind);
    char *s = bson_malloc(plen + klen + extra + 1);

    memcpy(s, prefix, plen);
    memcpy(s + plen, kind, klen);
    memset(s + plen + klen, '0', extra);
    s[plen + klen + extra] = '\0';
    *len = plen + klen + extra;
    return s;
}

/*
 * name (taken) as a whole RESP argument "$len\r\n" name "\r\n"; *at: where
 * name starts in it. bson_free.
 */
static char *
arg_new(char *name, size_t len, size_t *arg_len, size_t *at)
{
    char head[24];
    size_t h = 0;
    char *a;

    head[h++] = '$';
    h += decimal(head + h, len);
    head[h++] = '\r';
    head[h++] = '\n';
    a = bson_malloc(h + len + 3);
    memcpy(a, head, h);
    memcpy(a + h, name, len);
    memcpy(a + h + len, "\r\n", 3);
    bson_free(name);
    *arg_len = h + len + 2;
    *at = h;
    return a;
}

void
cache_redis_keys_init(struct cache_redis_keys *keys, const char *prefix)
{
    size_t plen = strlen(prefix);
    size_t at;

    keys->value = key_new(prefix, plen, "v:", 32, &keys->value_len);
    keys->value_arg = arg_new(keys->value, keys->value_len, &keys->value_arg_len, &at);
    keys->value = keys->value_arg + at;
    keys->epoch = key_new(prefix, plen, "epoch", 0, &keys->epoch_len);
    keys->epoch_arg = arg_new(keys->epoch, keys->epoch_len, &keys->epoch_arg_len, &at);
    keys->epoch = keys->epoch_arg + at;
    keys->inval = key_new(prefix, plen, "inval", 0, &keys->inval_len);
    keys->gen = key_new(prefix, plen, "g:", 0, &keys->gen_len);
}

void
cache_redis_keys_cleanup(struct cache_redis_keys *keys)
{
    bson_free(keys->value_arg);
    bson_free(keys->epoch_arg);
    bson_free(keys->inval);
    bson_free(keys->gen);
    memset(keys, 0, sizeof *keys);
}

/* Eight lowercase hex digits of v as a word that, stored, reads most significant first. */
static uint64_t
hex32(uint32_t v)
{
    uint64_t x = v;
    uint64_t letters;

    /* Nibble i of v into byte i of x (v's bytes to 16-bit lanes, then each to two bytes). */
    x = (x | (x << 16)) & UINT64_C(0x0000ffff0000ffff);
    x = (x | (x << 8)) & UINT64_C(0x00ff00ff00ff00ff);
    x = (x | (x << 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    /* Each byte n to '0' + n, plus 'a' - '0' - 10 where n > 9 (n + 6 carries into bit 4). */
    letters = ((x + UINT64_C(0x0606060606060606)) >> 4) & UINT64_C(0x0101010101010101);
    x += UINT64_C(0x3030303030303030) + letters * (uint64_t)('a' - '0' - 10);
    return BSON_UINT64_TO_BE(x); /* nibble 7 (byte 7) at the lowest address */
}

/* Sixteen lowercase hex digits of v at out (every read writes 32 for its key). */
static void
hex64(char *out, uint64_t v)
{
    uint64_t hi = hex32((uint32_t)(v >> 32));
    uint64_t lo = hex32((uint32_t)v);

    memcpy(out, &hi, 8);
    memcpy(out + 8, &lo, 8);
}

void
cache_redis_keys_hex(char hex[32], const struct cache_key *key)
{
    if (!key) {
        memcpy(hex, check_name, 32);
        return;
    }
    hex64(hex, key->hi);
    hex64(hex + 16, key->lo);
}

void
cache_redis_keys_set_value(struct cache_redis_keys *keys, const struct cache_key *key)
{
    cache_redis_keys_hex(keys->value + keys->value_len - 32, key);
}

/* ---- encoding ---------------------------------------------------------------------------- */

void
cache_redis_cmd_cleanup(struct cache_redis_cmd *cmd)
{
    bson_free(cmd->buf);
    memset(cmd, 0, sizeof *cmd);
}

static void
reserve(struct cache_redis_cmd *cmd, size_t more)
{
    size_t cap = cmd->cap ? cmd->cap : 256;

    if (more <= cmd->cap - cmd->len)
        return;
    while (cap - cmd->len < more)
        cap *= 2;
    cmd->buf = bson_realloc(cmd->buf, cap);
    cmd->cap = cap;
}

static void
put(struct cache_redis_cmd *cmd, const void *p, size_t len)
{
    reserve(cmd, len);
    if (len)
        memcpy(cmd->buf + cmd->len, p, len);
    cmd->len += len;
}

/* Writes a "<c><n>\r\n" line. */
static void
line(struct cache_redis_cmd *cmd, char c, uint64_t n)
{
    reserve(cmd, 24);
    cmd->buf[cmd->len++] = c;
    cmd->len += decimal(cmd->buf + cmd->len, n);
    cmd->buf[cmd->len++] = '\r';
    cmd->buf[cmd->len++] = '\n';
}

static void
begin(struct cache_redis_cmd *cmd, int argc)
{
    cmd->len = 0;
    cmd->tail = 0;
    cmd->argc = argc;
    line(cmd, '*', (uint64_t)argc);
}

/* One argument made of two parts (a key's prefix and name, or one part and b_len 0). */
static void
arg2(struct cache_redis_cmd *cmd, const void *a, size_t a_len, const void *b, size_t b_len)
{
    line(cmd, '$', a_len + b_len);
    put(cmd, a, a_len);
    put(cmd, b, b_len);
    put(cmd, "\r\n", 2);
}

static void
arg(struct cache_redis_cmd *cmd, const void *a, size_t len)
{
    arg2(cmd, a, len, NULL, 0);
}

/* A number as Redis writes integers: signed 64-bit decimal. */
static void
arg_int(struct cache_redis_cmd *cmd, uint64_t v)
{
    char buf[24];
    size_t n = 0;

    if ((int64_t)v < 0) {
        buf[n++] = '-';
        v = (uint64_t)0 - v;
    }
    n += decimal(buf + n, v);
    arg(cmd, buf, n);
}

/* "EVALSHA sha nkeys" (or "EVAL text nkeys" when sha is NULL); marks the tail. */
static void
script_begin(struct cache_redis_cmd *cmd, enum cache_redis_script script, const char *sha,
             int argc, uint32_t nkeys)
{
    begin(cmd, argc);
    if (sha) {
        arg(cmd, "EVALSHA", 7);
        arg(cmd, sha, 40);
    } else {
        arg(cmd, "EVAL", 4);
        arg(cmd, script_text[script], strlen(script_text[script]));
    }
    cmd->tail = cmd->len;
    arg_int(cmd, nkeys);
}

/*
 * The epoch's key, then each generation's, at at (room made by the caller:
 * a generation's argument is "$", at most 20 digits, CRLF, prefix, name,
 * CRLF); returns the end.
 */
static char *
counter_keys(char *at, const struct cache_redis_keys *keys, const struct cache_redis_gen *gens,
             uint32_t n)
{
    memcpy(at, keys->epoch_arg, keys->epoch_arg_len);
    at += keys->epoch_arg_len;
    for (uint32_t i = 0; i < n; i++) {
        *at++ = '$';
        at += decimal(at, keys->gen_len + gens[i].name_len);
        *at++ = '\r';
        *at++ = '\n';
        memcpy(at, keys->gen, keys->gen_len);
        at += keys->gen_len;
        memcpy(at, gens[i].name, gens[i].name_len);
        at += gens[i].name_len;
        *at++ = '\r';
        *at++ = '\n';
    }
    return at;
}

/* The room counter_keys needs. */
static size_t
counter_keys_len(const struct cache_redis_keys *keys, const struct cache_redis_gen *gens,
                 uint32_t n)
{
    size_t need = keys->epoch_arg_len;

    for (uint32_t i = 0; i < n; i++)
        need += 25 + keys->gen_len + gens[i].name_len;
    return need;
}

/*
 * The keys every read names: value, epoch, then each generation. Every
 * read (a hit too) encodes them: room is made once, then they are written
 * without a check per part.
 */
static void
read_keys(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys, const struct cache_key *key,
          const struct cache_redis_gen *gens, uint32_t n)
{
    char *at;

    reserve(cmd, keys->value_arg_len + counter_keys_len(keys, gens, n));
    cache_redis_keys_set_value(keys, key);
    at = cmd->buf + cmd->len;
    memcpy(at, keys->value_arg, keys->value_arg_len);
    at += keys->value_arg_len;
    cmd->len = (size_t)(counter_keys(at, keys, gens, n) - cmd->buf);
}

void
cache_redis_cmd_mget(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                     const struct cache_key *key, const struct cache_redis_gen *gens, uint32_t n)
{
    begin(cmd, 3 + (int)n);
    put(cmd, "$4\r\nMGET\r\n", 10);
    read_keys(cmd, keys, key, gens, n);
}

void
cache_redis_cmd_mget_batch(struct cache_redis_cmd *cmd, const struct cache_redis_keys *keys,
                           const char *const *hex, uint32_t k, const struct cache_redis_gen *names,
                           uint32_t n)
{
    /* The value key's digits end its argument: 32 of them, then CRLF. */
    size_t digits = keys->value_arg_len - 34;
    char *at;

    begin(cmd, 2 + (int)k + (int)n);
    put(cmd, "$4\r\nMGET\r\n", 10);
    reserve(cmd, (size_t)k * keys->value_arg_len + counter_keys_len(keys, names, n));
    at = cmd->buf + cmd->len;
    for (uint32_t i = 0; i < k; i++) {
        memcpy(at, keys->value_arg, keys->value_arg_len);
        memcpy(at + digits, hex[i], 32);
        at += keys->value_arg_len;
    }
    cmd->len = (size_t)(counter_keys(at, keys, names, n) - cmd->buf);
}

bool
cache_redis_cmd_batch_shape_ok(uint32_t k, uint32_t n, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        return true;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)k + 1 + n)
        return false;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING &&
            reply->element[i]->type != REDIS_REPLY_NIL &&
            (i >= k || reply->element[i]->type != CACHE_REDIS_REPLY_SPILLED))
            return false;
    return true;
}

void
cache_redis_cmd_lookup(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys,
                       const char *sha, const struct cache_key *key,
                       const struct cache_redis_gen *gens, uint32_t n,
                       uint64_t (*base)(void *base_arg), void *base_arg)
{
    script_begin(cmd, CACHE_REDIS_SCRIPT_LOOKUP, sha, 6 + 2 * (int)n, 2 + n);
    read_keys(cmd, keys, key, gens, n);
    for (uint32_t i = 0; i <= n; i++)
        arg_int(cmd, base(base_arg));
}

uint8_t *
cache_redis_cmd_fill(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys, const char *sha,
                     size_t blob_len, int64_t ttl_ms, uint64_t epoch,
                     const struct cache_redis_gen *gens, uint32_t n)
{
    uint8_t *blob;

    /* The value key was set by the caller (the blob is sealed for it). */
    script_begin(cmd, CACHE_REDIS_SCRIPT_FILL, sha, 3 + 2 * (2 + (int)n) + 1, 2 + n);
    put(cmd, keys->value_arg, keys->value_arg_len);
    put(cmd, keys->epoch_arg, keys->epoch_arg_len);
    for (uint32_t i = 0; i < n; i++)
        arg2(cmd, keys->gen, keys->gen_len, gens[i].name, gens[i].name_len);
    arg_int(cmd, (uint64_t)ttl_ms);
    arg_int(cmd, epoch);
    for (uint32_t i = 0; i < n; i++)
        arg_int(cmd, gens[i].value);
    /* The value last: its space is the command's end, nothing appended after it. */
    line(cmd, '$', blob_len);
    reserve(cmd, blob_len + 2);
    blob = (uint8_t *)cmd->buf + cmd->len;
    cmd->len += blob_len;
    cmd->buf[cmd->len++] = '\r';
    cmd->buf[cmd->len++] = '\n';
    return blob;
}

/* The message's length: "@" instance, then "\n" and each name (or "*"). */
static bool
name_travels(const struct cache_redis_gen *g)
{
    return !memchr(g->name, '\n', g->name_len) && !memchr(g->name, '\0', g->name_len);
}

void
cache_redis_cmd_bump(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys, const char *sha,
                     const char instance[16], const struct cache_redis_gen *gens, uint32_t n,
                     uint64_t (*base)(void *base_arg), void *base_arg)
{
    size_t msg_len = 17;

    script_begin(cmd, CACHE_REDIS_SCRIPT_BUMP, sha, 5 + 2 * (int)n, n);
    for (uint32_t i = 0; i < n; i++)
        arg2(cmd, keys->gen, keys->gen_len, gens[i].name, gens[i].name_len);
    arg(cmd, keys->inval, keys->inval_len);
    for (uint32_t i = 0; i < n; i++)
        msg_len += 1 + (name_travels(&gens[i]) ? gens[i].name_len : 1);
    line(cmd, '$', msg_len);
    put(cmd, "@", 1);
    put(cmd, instance, 16);
    for (uint32_t i = 0; i < n; i++) {
        put(cmd, "\n", 1);
        if (name_travels(&gens[i]))
            put(cmd, gens[i].name, gens[i].name_len);
        else
            put(cmd, "*", 1);
    }
    put(cmd, "\r\n", 2);
    for (uint32_t i = 0; i < n; i++)
        arg_int(cmd, base(base_arg));
}

void
cache_redis_cmd_epoch(struct cache_redis_cmd *cmd, struct cache_redis_keys *keys, const char *sha,
                      const char instance[16], uint64_t base)
{
    script_begin(cmd, CACHE_REDIS_SCRIPT_EPOCH, sha, 7, 1);
    put(cmd, keys->epoch_arg, keys->epoch_arg_len);
    arg_int(cmd, base);
    arg(cmd, keys->inval, keys->inval_len);
    line(cmd, '$', 19);
    put(cmd, "@", 1);
    put(cmd, instance, 16);
    put(cmd, "\n*\r\n", 4);
}

void
cache_redis_cmd_as_eval(struct cache_redis_cmd *cmd, enum cache_redis_script script,
                        const char *bytes, size_t len, size_t tail, int argc)
{
    begin(cmd, argc);
    arg(cmd, "EVAL", 4);
    arg(cmd, script_text[script], strlen(script_text[script]));
    cmd->tail = cmd->len;
    put(cmd, bytes + tail, len - tail);
}

/* ---- replies ------------------------------------------------------------------------------- */

bool
cache_redis_cmd_shape_ok(enum cache_redis_cmd_kind kind, uint32_t n, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        return true;
    switch (kind) {
    case CACHE_REDIS_CMD_MGET:
    case CACHE_REDIS_CMD_LOOKUP:
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 + (size_t)n)
            return false;
        for (size_t i = 0; i < reply->elements; i++) {
            int t = reply->element[i]->type;

            /* A script never answers nil for a counter: it creates missing ones. */
            if (t != REDIS_REPLY_STRING &&
                !(t == REDIS_REPLY_NIL && (i == 0 || kind == CACHE_REDIS_CMD_MGET)))
                return false;
        }
        return true;
    case CACHE_REDIS_CMD_FILL:
    case CACHE_REDIS_CMD_BUMP:
        return reply->type == REDIS_REPLY_INTEGER;
    case CACHE_REDIS_CMD_EPOCH:
        return reply->type == REDIS_REPLY_STRING;
    }
    return false;
}

enum cache_redis_cmd_read
cache_redis_cmd_counter(const redisReply *e, uint64_t *value)
{
    if (e->type == REDIS_REPLY_NIL)
        return CACHE_REDIS_CMD_READ_MISSING;
    if (e->type != REDIS_REPLY_STRING || !cache_redis_cmd_parse_int(e->str, e->len, value))
        return CACHE_REDIS_CMD_READ_MALFORMED;
    return CACHE_REDIS_CMD_READ_OK;
}

enum cache_redis_cmd_read
cache_redis_cmd_worse(enum cache_redis_cmd_read a, enum cache_redis_cmd_read b)
{
    if (a == CACHE_REDIS_CMD_READ_MISSING || b == CACHE_REDIS_CMD_READ_MISSING)
        return CACHE_REDIS_CMD_READ_MISSING;
    return a == CACHE_REDIS_CMD_READ_OK ? b : a;
}

enum cache_redis_cmd_read
cache_redis_cmd_read(const redisReply *reply, struct cache_redis_gen *gens, uint32_t n,
                     uint64_t *epoch)
{
    enum cache_redis_cmd_read r = CACHE_REDIS_CMD_READ_OK;

    /* Every counter is looked at: a missing one wins over junk (the slow path re-reads). */
    for (size_t i = 1; i < reply->elements && r != CACHE_REDIS_CMD_READ_MISSING; i++) {
        uint64_t v;
        enum cache_redis_cmd_read c = cache_redis_cmd_counter(reply->element[i], &v);

        r = cache_redis_cmd_worse(r, c);
        if (c != CACHE_REDIS_CMD_READ_OK)
            continue;
        if (i == 1)
            *epoch = v;
        else if (i - 2 < n)
            gens[i - 2].value = v;
    }
    return r;
}

/*
 * Eight ASCII digits (p[0] the most significant) as their value, eight at a
 * time in one word (a read's counters are 62-bit random bases: 19 digits);
 * false when one is not a digit.
 */
static inline bool
digits8(const char *p, uint64_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t high = UINT64_C(0xF0F0F0F0F0F0F0F0);
    const uint64_t zeros = UINT64_C(0x3030303030303030);
    uint64_t x;

    memcpy(&x, p, 8);
    /* every byte 0x30..0x3F, and still so with 6 added: '0'..'9' */
    if ((x & high) != zeros || ((x + UINT64_C(0x0606060606060606)) & high) != zeros)
        return false;
    x -= zeros;
    x = (x * 10 + (x >> 8)) & UINT64_C(0x00FF00FF00FF00FF);     /* pairs */
    x = (x * 100 + (x >> 16)) & UINT64_C(0x0000FFFF0000FFFF);   /* fours */
    *out = (x * 10000 + (x >> 32)) & UINT64_C(0xFFFFFFFF);      /* eight */
    return true;
#else
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';

        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
#endif
}

bool
cache_redis_cmd_parse_int(const char *s, size_t len, uint64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    uint64_t v = 0;
    uint64_t eight;

    /*
     * Canonical only, as INCR writes: no sign but '-', no leading zero, no
     * "-0". At most 19 digits, which a uint64 holds without overflow.
     */
    if (i == len || len - i > 19 || (s[i] == '0' && (len - i > 1 || neg)))
        return false;
    for (; len - i >= 8; i += 8) {
        if (!digits8(s + i, &eight))
            return false;
        v = v * 100000000 + eight;
    }
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return false;
    *out = neg ? (uint64_t)0 - v : v;
    return true;
}

bool
cache_redis_cmd_gens_match(const struct cache_redis_blob *blob,
                           const struct cache_redis_gen *gens, uint32_t n)
{
    uint32_t same = 0;

    if (blob->n_gens != n)
        return false;
    /* The usual case: sealed in the order the read names them (one comparison each). */
    while (same < n && blob->gens[same].name_len == gens[same].name_len &&
           blob->gens[same].value == gens[same].value &&
           memcmp(blob->gens[same].name, gens[same].name, gens[same].name_len) == 0)
        same++;
    if (same == n)
        return true;
    for (uint32_t i = 0; i < n; i++) {
        bool found = false;

        for (uint32_t j = 0; j < n && !found; j++)
            found = blob->gens[j].name_len == gens[i].name_len &&
                    memcmp(blob->gens[j].name, gens[i].name, gens[i].name_len) == 0 &&
                    blob->gens[j].value == gens[i].value;
        if (!found)
            return false;
    }
    for (uint32_t j = 0; j < n; j++) {
        bool found = false;

        for (uint32_t i = 0; i < n && !found; i++)
            found = blob->gens[j].name_len == gens[i].name_len &&
                    memcmp(blob->gens[j].name, gens[i].name, gens[i].name_len) == 0;
        if (!found)
            return false;
    }
    return true;
}
