/*
 * wire/doc.h: structural validation of one untrusted BSON document, done
 * iteratively (an explicit stack, no recursion) so that a deeply nested
 * document can never exhaust the C stack. Every document from a client, the
 * upstream or a cache must pass this before any libbson call touches it
 * (Debian's bson_validate recurses and can be crashed by depth).
 */
#ifndef MONGOCACHE_WIRE_DOC_H
#define MONGOCACHE_WIRE_DOC_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* Nesting depth allowed by default: the top-level document has depth 1. */
#define WIRE_DOC_MAX_DEPTH 200

/*
 * Checks that buf[0..avail) starts with one well-formed BSON document:
 * lengths consistent and in bounds, every element type known, strings
 * length-prefixed and NUL-terminated, keys terminated inside the document,
 * booleans 0 or 1, code-with-scope sizes consistent, nesting <= max_depth.
 * On success stores the document's length in *doc_len (may be < avail).
 * Returns false with error set otherwise (WIRE_ERR_INVALID_BSON, or
 * WIRE_ERR_OVERFLOW when too deep). Never reads past buf + avail.
 * max_depth 0, or above WIRE_DOC_MAX_DEPTH (the explicit stack's size), means
 * WIRE_DOC_MAX_DEPTH.
 */
bool wire_doc_check(const uint8_t *buf, size_t avail, uint32_t max_depth, uint32_t *doc_len,
                    bson_error_t *error) __attribute__((warn_unused_result));

/* Top-level elements wire_doc_check_top records: drivers send 5 to 12. */
#define WIRE_DOC_TOP_MAX 32

/*
 * Where the top-level elements of a checked document are, as its check
 * walked past them, so that a reader of the top level (wire_cmd_parse_msg)
 * need not walk it again: the offset of each element's type byte and its
 * key's length, in order. all: every element is recorded (n of them);
 * otherwise only the first WIRE_DOC_TOP_MAX.
 */
struct wire_doc_top {
    uint32_t n;
    bool all;
    uint32_t off[WIRE_DOC_TOP_MAX];
    uint32_t key_len[WIRE_DOC_TOP_MAX];
};

/* wire_doc_check, recording the top-level elements in *top (set only on success). */
bool wire_doc_check_top(const uint8_t *buf, size_t avail, uint32_t max_depth, uint32_t *doc_len,
                        struct wire_doc_top *top, bson_error_t *error)
    __attribute__((warn_unused_result));

#endif
