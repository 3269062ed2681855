/*
 * advice/reader.h: a forward-only reader of the elements of one BSON
 * document, for the shape code on the event loop, where libbson's bson_iter
 * (which re-validates every element it steps over) was half the cost of
 * advice_shape_extract. It is meant for documents that passed
 * wire_doc_check, but trusts nothing: every length is checked against the
 * enclosing document's end before it is used, and anything malformed ends
 * the document (next returns false). It reads, never allocates, never
 * recurses by itself.
 */
#ifndef MONGOCACHE_ADVICE_READER_H
#define MONGOCACHE_ADVICE_READER_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A position in a document, and the element last read (valid after a next
 * that returned true). Pointers are into the document: valid while it is.
 */
struct advice_reader {
    const uint8_t *pos; /* the next element */
    const uint8_t *end; /* the document's final NUL */
    uint8_t type;       /* BSON type of the current element */
    const char *key;    /* NUL-terminated, inside the document */
    uint32_t key_len;
    const uint8_t *value; /* the value's bytes */
    uint32_t value_len;
};

/* Starts before the first element of the document at doc (len bytes available). */
bool advice_reader_init(struct advice_reader *r, const uint8_t *doc, uint32_t len);

/* Steps to the next element: false at the end, or (for good) at anything malformed. */
bool advice_reader_next(struct advice_reader *r);

/* Whether the current element is a document (0x03) or an array (0x04). */
bool advice_reader_is_doc(const struct advice_reader *r);
bool advice_reader_is_array(const struct advice_reader *r);

/* A reader over the current element's document or array; false for another type. */
bool advice_reader_recurse(const struct advice_reader *r, struct advice_reader *child);

/* The current element's string (UTF-8 type; len without the NUL; may hold NULs). */
bool advice_reader_utf8(const struct advice_reader *r, const char **s, uint32_t *len);

/* The current element's number (double, int32, int64) as a double; false otherwise. */
bool advice_reader_number(const struct advice_reader *r, double *v);

/* The current element's regular expression: pattern and options, NUL-terminated. */
bool advice_reader_regex(const struct advice_reader *r, const char **pattern, const char **options);

/*
 * The first element of doc's document whose key is key (keylen bytes), into
 * found; false when there is none. r is not moved.
 */
bool advice_reader_find(const struct advice_reader *doc, const char *key, uint32_t key_len,
                        struct advice_reader *found);

#endif
