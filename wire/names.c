/*
 * wire/names.c: owns matching a name read off the wire against WIRE_NAMES
 * (wire/names.h): a table of the names by length and first eight bytes,
 * built once before main, where a lookup compares one word per slot it
 * probes (then memcmp past eight bytes). It does not know what a name means
 * to anyone: callers switch on the id.
 */
#include "config.h"

#include "wire/names.h"

#include <stdint.h>
#include <string.h>

#define NAME_LEN(text) (sizeof(text) - 1)

static const char *const texts[WIRE_NAMES_COUNT] = {
    NULL,
#define NAME_TEXT(a, id, text) text,
    WIRE_NAMES(NAME_TEXT, 0)
#undef NAME_TEXT
};

static const uint8_t lens[WIRE_NAMES_COUNT] = {
    0,
#define NAME_LENGTH(a, id, text) NAME_LEN(text),
    WIRE_NAMES(NAME_LENGTH, 0)
#undef NAME_LENGTH
};

/*
 * Each name's first eight bytes (fewer when shorter, the rest zero), byte i
 * at bits 8i: a lookup compares one word (and the length) per slot it
 * probes, and calls memcmp only for the bytes past eight of a name that
 * long.
 */
#define HEAD_BYTE(text, i)                                                                         \
    (NAME_LEN(text) > (i) ? (uint64_t)(uint8_t)(text)[NAME_LEN(text) > (i) ? (i) : 0] << (8 * (i)) \
                          : 0)
static const uint64_t heads[WIRE_NAMES_COUNT] = {
    0,
#define NAME_HEAD(a, id, text)                                                                     \
    HEAD_BYTE(text, 0) | HEAD_BYTE(text, 1) | HEAD_BYTE(text, 2) | HEAD_BYTE(text, 3) |            \
        HEAD_BYTE(text, 4) | HEAD_BYTE(text, 5) | HEAD_BYTE(text, 6) | HEAD_BYTE(text, 7),
    WIRE_NAMES(NAME_HEAD, 0)
#undef NAME_HEAD
};

/* Every name is 1 to WIRE_NAMES_MAX_LEN bytes: longer keys are not looked up. */
#define NAME_CHECK(a, id, text)                                                                    \
    _Static_assert(NAME_LEN(text) > 0 && NAME_LEN(text) <= WIRE_NAMES_MAX_LEN,                     \
                   "empty or longer than WIRE_NAMES_MAX_LEN: " text);
WIRE_NAMES(NAME_CHECK, 0)
#undef NAME_CHECK

_Static_assert(WIRE_NAMES_COUNT <= UINT8_MAX, "slots hold ids in a byte");

/*
 * An open-addressing table of every id by (length, first eight bytes),
 * SLOTS slots for about 140 names, 0 for an empty slot. It is filled once,
 * before main (build_slots), and only read after: a lookup hashes the key
 * and compares one word per slot it probes, usually one or two. Keys a
 * client chooses cannot lengthen a probe: the table holds only the names.
 */
#define SLOTS 512
_Static_assert(WIRE_NAMES_COUNT * 2 <= SLOTS, "slots at most half full");
static uint8_t slots[SLOTS];

static inline unsigned
slot_of(uint64_t head, size_t len)
{
    return (unsigned)(((head ^ (uint64_t)len) * 0x9e3779b97f4a7c15ull) >> 55) & (SLOTS - 1);
}

__attribute__((constructor)) static void
build_slots(void)
{
    for (unsigned id = 1; id < WIRE_NAMES_COUNT; id++) {
        unsigned h = slot_of(heads[id], lens[id]);

        while (slots[h] != 0)
            h = (h + 1) & (SLOTS - 1);
        slots[h] = (uint8_t)id;
    }
}

/* The first eight bytes of s (fewer when len is less, the rest zero) as heads[] holds them. */
static inline uint64_t
head_of(const char *s, size_t len, size_t avail)
{
    size_t n = len < 8 ? len : 8;
    uint64_t w = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (avail >= 8) {
        memcpy(&w, s, sizeof w);
        return n == 8 ? w : w & ((1ull << (8 * n)) - 1);
    }
#else
    (void)avail;
#endif
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    return w;
}

/*
 * The rest of a lookup whose key is longer than eight bytes, from slot h
 * where a name of its length and first eight bytes is: apart, so that the
 * common lookup (a key of eight bytes or fewer, or no match) calls nothing.
 */
static __attribute__((noinline)) enum wire_name
lookup_long(const char *s, size_t len, uint64_t head, unsigned h)
{
    for (unsigned id; (id = slots[h]) != 0; h = (h + 1) & (SLOTS - 1)) {
        if (heads[id] == head && lens[id] == len && memcmp(texts[id] + 8, s + 8, len - 8) == 0)
            return (enum wire_name)id;
    }
    return WIRE_NAME_UNKNOWN;
}

enum wire_name
wire_names_lookup_in(const char *s, size_t len, size_t avail)
{
    uint64_t head;

    if (len == 0 || len > WIRE_NAMES_MAX_LEN)
        return WIRE_NAME_UNKNOWN;
    head = head_of(s, len, avail);
    for (unsigned h = slot_of(head, len), id; (id = slots[h]) != 0; h = (h + 1) & (SLOTS - 1)) {
        if (heads[id] == head && lens[id] == len)
            return len <= 8 ? (enum wire_name)id : lookup_long(s, len, head, h);
    }
    return WIRE_NAME_UNKNOWN;
}

enum wire_name
wire_names_lookup(const char *s, size_t len)
{
    return wire_names_lookup_in(s, len, len);
}

bool
wire_names_is(const char *s, size_t len, enum wire_name id)
{
    return (unsigned)id < WIRE_NAMES_COUNT && id != WIRE_NAME_UNKNOWN && len == lens[id] &&
           memcmp(texts[id], s, len) == 0;
}

const char *
wire_names_text(enum wire_name id)
{
    if ((unsigned)id >= WIRE_NAMES_COUNT)
        return NULL;
    return texts[id];
}
