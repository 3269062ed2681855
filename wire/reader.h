/*
 * wire/reader.h: a forward-only reader of the elements of one BSON
 * document, for the code that reads requests on the event loop (the index
 * advice's shapes, the cache policy's scan), where libbson's bson_iter
 * (which re-validates every element it steps over) was half the cost of
 * advice_shape_extract. It is meant for documents that passed
 * wire_doc_check, but trusts nothing: every length is checked against the
 * enclosing document's end before it is used, and anything malformed ends
 * the document (next returns false). It reads, never allocates, never
 * recurses by itself.
 */
#ifndef MONGOCACHE_WIRE_READER_H
#define MONGOCACHE_WIRE_READER_H

#include "wire/frame.h" /* wire_frame_read_i32 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/*
 * A position in a document, and the element last read (valid after a next
 * that returned true). Pointers are into the document: valid while it is.
 */
struct wire_reader {
    const uint8_t *pos; /* the next element */
    const uint8_t *end; /* the document's final NUL */
    uint8_t type;       /* BSON type of the current element */
    const char *key;    /* NUL-terminated, inside the document */
    uint32_t key_len;
    const uint8_t *value; /* the value's bytes */
    uint32_t value_len;
    bool malformed; /* next returned false at something malformed, not at the end */
};

/* Starts before the first element of the document at doc (len bytes available). */
bool wire_reader_init(struct wire_reader *r, const uint8_t *doc, uint32_t len);

/*
 * Steps to the next element: false at the end, or (for good) at anything
 * malformed. Inline, as it runs for every element the shape code reads on
 * the loop: the key's NUL is searched (wire_reader_key_end) up to the
 * document's own final NUL (checked by init) at the latest; values of
 * a fixed size are sized from a table, documents, arrays and strings here,
 * the rarer types by wire_reader_next_slow. Every length is checked
 * against the document's end as in the slow path.
 */
extern const uint8_t wire_reader_fixed_sizes[256]; /* size + 1; 0: not fixed */
bool wire_reader_next_slow(struct wire_reader *r, const uint8_t *key_end);

/*
 * The NUL that ends the key at k, stop being the enclosing document's final
 * NUL (so there is one at stop at the latest). Sixteen bytes at a time (SSE2)
 * or eight (a little-endian word) while that many lie before stop, then
 * byte by byte: a key is 2 to 12 bytes, and this runs for every element
 * read or checked.
 */
static inline const uint8_t *
wire_reader_key_end(const uint8_t *k, const uint8_t *stop)
{
#if defined(__SSE2__)
    while (stop - k >= 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(const void *)k);
        unsigned nul = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_setzero_si128()));

        if (nul != 0)
            return k + __builtin_ctz(nul);
        k += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (stop - k >= 8) {
        uint64_t x, zero;

        memcpy(&x, k, sizeof x);
        /* The lowest byte flagged is the first NUL: a borrow only runs upwards. */
        zero = (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
        if (zero != 0)
            return k + (__builtin_ctzll(zero) >> 3);
        k += 8;
    }
#endif
    while (*k != 0)
        k++;
    return k;
}

/*
 * Bytes of the length-prefixed string (int32 length, bytes, NUL) at p, room
 * bytes available, or 0 when malformed. Shared by this reader and
 * wire_doc_check.
 */
static inline uint32_t
wire_reader_string_size(const uint8_t *p, size_t room)
{
    int32_t n;

    if (room < 5)
        return 0;
    n = wire_frame_read_i32(p);
    if (n < 1 || (size_t)n > room - 4 || p[4 + (size_t)n - 1] != 0)
        return 0;
    return 4 + (uint32_t)n;
}

/* The element at r->pos, its key ending at k, its value size bytes: current, and r past it. */
static inline void
wire_reader_step(struct wire_reader *r, const uint8_t *k, uint32_t size)
{
    const uint8_t *p = r->pos;

    r->type = p[0];
    r->key = (const char *)(p + 1);
    r->key_len = (uint32_t)(k - p - 1);
    r->value = k + 1;
    r->value_len = size;
    r->pos = k + 1 + size;
}

static inline __attribute__((always_inline)) bool
wire_reader_next(struct wire_reader *r)
{
    const uint8_t *p = r->pos, *end = r->end, *k;
    size_t room;
    uint32_t size;
    int32_t n;

    if (p == NULL || p >= end)
        return false;
    k = wire_reader_key_end(p + 1, end);
    if (k >= end)
        return wire_reader_next_slow(r, k); /* the key ran into the end: malformed */
    room = (size_t)(end - k - 1);
    size = wire_reader_fixed_sizes[p[0]];
    if (size > 0) {
        if (--size > room)
            goto malformed;
    } else if (p[0] == 0x03 || p[0] == 0x04) { /* document, array: length, elements, NUL */
        if (room < 5 || (n = wire_frame_read_i32(k + 1)) < 5 || (size_t)n > room || k[n] != 0)
            goto malformed;
        size = (uint32_t)n;
    } else if (p[0] == 0x02) { /* string: length, bytes, NUL */
        if ((size = wire_reader_string_size(k + 1, room)) == 0)
            goto malformed;
    } else {
        return wire_reader_next_slow(r, k);
    }
    wire_reader_step(r, k, size);
    return true;
malformed:
    r->pos = end;
    r->malformed = true;
    return false;
}

/* Whether the current element is a document (0x03) or an array (0x04). */
static inline bool
wire_reader_is_doc(const struct wire_reader *r)
{
    return r->type == 0x03;
}

static inline bool
wire_reader_is_array(const struct wire_reader *r)
{
    return r->type == 0x04;
}

/*
 * A reader over the current element's document or array; false (child
 * empty) for another type. The value's length and final NUL were checked
 * by next, and are checked again, as for any document.
 */
static inline bool
wire_reader_recurse(const struct wire_reader *r, struct wire_reader *child)
{
    const uint8_t *v = r->value;
    uint32_t n = r->value_len;

    child->type = 0;
    child->key = NULL;
    child->key_len = 0;
    child->value = NULL;
    child->value_len = 0;
    child->malformed = false;
    if ((r->type != 0x03 && r->type != 0x04) || v == NULL || n < 5 ||
        (uint32_t)wire_frame_read_i32(v) != n || v[n - 1] != 0) {
        child->pos = child->end = NULL;
        return false;
    }
    child->pos = v + 4;
    child->end = v + n - 1;
    return true;
}

/* The current element's string (UTF-8 type; len without the NUL; may hold NULs). */
bool wire_reader_utf8(const struct wire_reader *r, const char **s, uint32_t *len);

/* The current element's number (double, int32, int64) as a double; false otherwise. */
bool wire_reader_number(const struct wire_reader *r, double *v);

/* The current element's regular expression: pattern and options, NUL-terminated. */
bool wire_reader_regex(const struct wire_reader *r, const char **pattern, const char **options);

/*
 * The first element of doc's document whose key is key (keylen bytes), into
 * found; false when there is none. r is not moved.
 */
bool wire_reader_find(const struct wire_reader *doc, const char *key, uint32_t key_len,
                      struct wire_reader *found);

#endif
