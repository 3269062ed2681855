/*
 * wire/reader.c: owns the forward-only BSON element reader of
 * wire/reader.h: the size of each element's value by its type (BSON
 * specification, bsonspec.org "Specification Version 1.1"), each checked
 * against the end of the document that holds it. It does not check UTF-8,
 * key uniqueness or array keys (wire/doc.c's job is structure, libbson's
 * the rest); it gives its readers what they read, cheaply.
 */
#include "config.h"

#include "wire/reader.h"

#include <string.h>

bool
wire_reader_init(struct wire_reader *r, const uint8_t *doc, uint32_t len)
{
    int32_t n;

    memset(r, 0, sizeof *r);
    if (doc == NULL || len < 5)
        return false;
    n = wire_frame_read_i32(doc);
    if (n < 5 || (uint32_t)n > len || doc[n - 1] != 0)
        return false;
    r->pos = doc + 4;
    r->end = doc + n - 1;
    return true;
}

/*
 * The size plus one of each fixed-size type's value, indexed by the type
 * byte; 0 for a type whose size is in its bytes, or that is unknown.
 */
const uint8_t wire_reader_fixed_sizes[256] = {
    [0x01] = 9,  /* double */
    [0x06] = 1,  /* undefined */
    [0x07] = 13, /* ObjectId */
    [0x08] = 2,  /* bool */
    [0x09] = 9,  /* date */
    [0x0A] = 1,  /* null */
    [0x10] = 5,  /* int32 */
    [0x11] = 9,  /* timestamp */
    [0x12] = 9,  /* int64 */
    [0x13] = 17, /* decimal128 */
    [0x7F] = 1,  /* maxKey */
    [0xFF] = 1,  /* minKey */
};

/* The size of a variable-size value of type at p, room bytes available; false when malformed. */
static bool
value_size(uint8_t type, const uint8_t *p, size_t room, uint32_t *size)
{
    const uint8_t *nul;
    int32_t n;

    switch (type) {
    case 0x02: /* string */
    case 0x0D: /* code */
    case 0x0E: /* symbol */
        *size = wire_reader_string_size(p, room);
        return *size != 0;
    case 0x03: /* document */
    case 0x04: /* array */
    case 0x0F: /* code with scope */
        if (room < 5 || (n = wire_frame_read_i32(p)) < 5 || (size_t)n > room || p[n - 1] != 0)
            return false;
        *size = (uint32_t)n;
        return true;
    case 0x05: /* binary: length, subtype, bytes */
        if (room < 5 || (n = wire_frame_read_i32(p)) < 0 || (size_t)n > room - 5)
            return false;
        *size = 5 + (uint32_t)n;
        return true;
    case 0x0B: /* regex: two C strings */
        nul = memchr(p, 0, room);
        if (nul == NULL)
            return false;
        nul = memchr(nul + 1, 0, room - (size_t)(nul + 1 - p));
        if (nul == NULL)
            return false;
        *size = (uint32_t)(nul + 1 - p);
        return true;
    case 0x0C: /* DBPointer: string and ObjectId */
        *size = wire_reader_string_size(p, room);
        if (*size == 0 || room - *size < 12)
            return false;
        *size += 12;
        return true;
    default:
        return false;
    }
}

bool
wire_reader_next_slow(struct wire_reader *r, const uint8_t *k)
{
    const uint8_t *end = r->end;
    uint32_t size;

    if (k >= end || !value_size(r->pos[0], k + 1, (size_t)(end - k - 1), &size)) {
        r->pos = end;
        r->malformed = true;
        return false;
    }
    wire_reader_step(r, k, size);
    return true;
}

bool
wire_reader_utf8(const struct wire_reader *r, const char **s, uint32_t *len)
{
    if (r->type != 0x02)
        return false;
    *s = (const char *)r->value + 4;
    *len = r->value_len - 5;
    return true;
}

bool
wire_reader_number(const struct wire_reader *r, double *v)
{
    uint64_t bits;
    double d;

    switch (r->type) {
    case 0x10:
        *v = (double)wire_frame_read_i32(r->value);
        return true;
    case 0x12:
    case 0x01:
        bits = (uint64_t)wire_frame_read_i64(r->value);
        if (r->type == 0x12) {
            *v = (double)(int64_t)bits;
        } else {
            memcpy(&d, &bits, sizeof d);
            *v = d;
        }
        return true;
    default:
        return false;
    }
}

bool
wire_reader_regex(const struct wire_reader *r, const char **pattern, const char **options)
{
    if (r->type != 0x0B)
        return false;
    *pattern = (const char *)r->value;
    *options = *pattern + strlen(*pattern) + 1;
    return true;
}

bool
wire_reader_find(const struct wire_reader *doc, const char *key, uint32_t key_len,
                 struct wire_reader *found)
{
    struct wire_reader it;

    if (!wire_reader_recurse(doc, &it))
        return false;
    while (wire_reader_next(&it)) {
        if (it.key_len == key_len && memcmp(it.key, key, key_len) == 0) {
            *found = it;
            return true;
        }
    }
    return false;
}
