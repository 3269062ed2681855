/*
 * wire/names.c: owns matching a name read off the wire against WIRE_NAMES
 * (wire/names.h). The names are listed in order of length, so those of one
 * length are a run of ids: run_start[len] is the first id of length len,
 * counted at compile time from the list itself, and a lookup compares the
 * first and last bytes, then memcmp, only within that run (at most twelve
 * names). A name out of order would fall outside
 * its run and never be found: tests/unit/test_wire_names.c looks every id's
 * text up. It does not know what a name means to anyone: callers switch on
 * the id.
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

/* Each name's first and last byte, so that a lookup calls memcmp only on a likely match. */
static const char firsts[WIRE_NAMES_COUNT] = {
    0,
#define NAME_FIRST(a, id, text) text[0],
    WIRE_NAMES(NAME_FIRST, 0)
#undef NAME_FIRST
};

static const char lasts[WIRE_NAMES_COUNT] = {
    0,
#define NAME_LAST(a, id, text) text[NAME_LEN(text) - 1],
    WIRE_NAMES(NAME_LAST, 0)
#undef NAME_LAST
};

/* The first id of the names of length len: 1 + how many names are shorter. */
#define SHORTER(len, id, text) +(NAME_LEN(text) < (size_t)(len))
#define RUN_START(len) (1 WIRE_NAMES(SHORTER, len))

/* Every name fits in run_start. */
#define NAME_CHECK(a, id, text)                                                                    \
    _Static_assert(NAME_LEN(text) > 0 && NAME_LEN(text) <= WIRE_NAMES_MAX_LEN,                     \
                   "empty or longer than WIRE_NAMES_MAX_LEN: " text);
WIRE_NAMES(NAME_CHECK, 0)
#undef NAME_CHECK

static const uint8_t run_start[WIRE_NAMES_MAX_LEN + 2] = {
    RUN_START(0),  RUN_START(1),  RUN_START(2),  RUN_START(3),  RUN_START(4),  RUN_START(5),
    RUN_START(6),  RUN_START(7),  RUN_START(8),  RUN_START(9),  RUN_START(10), RUN_START(11),
    RUN_START(12), RUN_START(13), RUN_START(14), RUN_START(15), RUN_START(16), RUN_START(17),
    RUN_START(18), RUN_START(19), RUN_START(20), RUN_START(21), RUN_START(22), RUN_START(23),
    RUN_START(24), RUN_START(25), RUN_START(26), RUN_START(27), RUN_START(28), RUN_START(29),
};
_Static_assert(WIRE_NAMES_MAX_LEN == 28, "run_start lists RUN_START(0..WIRE_NAMES_MAX_LEN + 1)");
_Static_assert(WIRE_NAMES_COUNT <= UINT8_MAX, "run_start holds ids in a byte");

enum wire_name
wire_names_lookup(const char *s, size_t len)
{
    if (len == 0 || len > WIRE_NAMES_MAX_LEN)
        return WIRE_NAME_UNKNOWN;
    for (unsigned id = run_start[len]; id < run_start[len + 1]; id++) {
        if (firsts[id] == s[0] && lasts[id] == s[len - 1] && memcmp(texts[id], s, len) == 0)
            return (enum wire_name)id;
    }
    return WIRE_NAME_UNKNOWN;
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
