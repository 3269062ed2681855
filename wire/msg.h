/*
 * wire/msg.h: OP_MSG (sections, flag bits, checksum) and the legacy
 * OP_QUERY / OP_REPLY pair used only by old-style handshakes.
 * Spec: source/message/OP_MSG.md; mongod's OpMsg::parse rules are
 * mirrored here one for one.
 *
 * Every parser takes a whole message (header included, exactly
 * header.length bytes) that it borrows: the parsed struct points into it and
 * is valid only while those bytes are.
 */
#ifndef MONGOCACHE_WIRE_MSG_H
#define MONGOCACHE_WIRE_MSG_H

#include "wire/doc.h"
#include "wire/frame.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MSG_CHECKSUM_PRESENT (1u << 0)
#define WIRE_MSG_MORE_TO_COME (1u << 1)
#define WIRE_MSG_EXHAUST_ALLOWED (1u << 16)
/* The low 16 bits are "required": an unknown one set is an error. */
#define WIRE_MSG_REQUIRED_BITS 0xffffu
#define WIRE_MSG_KNOWN_BITS \
    (WIRE_MSG_CHECKSUM_PRESENT | WIRE_MSG_MORE_TO_COME | WIRE_MSG_EXHAUST_ALLOWED)

/* More kind-1 sections than this in one message is an error. */
#define WIRE_MSG_MAX_SEQUENCES 8

/* OP_REPLY responseFlags bit: the query failed, documents[0] is {$err}. */
#define WIRE_REPLY_QUERY_FAILURE (1 << 1)

/* One kind-1 section: a named sequence of documents. */
struct wire_seq {
    const char *id;       /* NUL-terminated, inside the message */
    const uint8_t *docs;  /* first document */
    uint32_t docs_len;    /* bytes of all documents */
    uint32_t count;       /* number of documents */
};

struct wire_msg {
    struct wire_header header;
    uint32_t flags;
    const uint8_t *body;  /* the kind-0 document */
    uint32_t body_len;
    struct wire_seq seqs[WIRE_MSG_MAX_SEQUENCES]; /* the first n_seqs are set */
    uint32_t n_seqs;
    struct wire_doc_top top; /* the body's top-level elements, as its check found them */
};

struct wire_query {
    struct wire_header header;
    int32_t flags;
    const char *full_collection; /* "admin.$cmd", NUL-terminated, inside the message */
    int32_t skip;
    int32_t n_return;
    const uint8_t *query;
    uint32_t query_len;
    const uint8_t *selector; /* optional returnFieldsSelector, or NULL */
    uint32_t selector_len;
};

struct wire_reply {
    struct wire_header header;
    int32_t flags;
    int64_t cursor_id;
    int32_t starting_from;
    int32_t n_returned;
    const uint8_t *docs; /* n_returned documents back to back */
    uint32_t docs_len;
};

/*
 * Parses and validates an OP_MSG: required flag bits, exactly one kind-0
 * body, kind-1 sequences (unique identifiers, none also a body field, ids
 * NUL-terminated in bounds), no other kind, nothing past the end or into the
 * checksum, CRC-32C verified when present, every document checked with
 * wire_doc_check(max_depth) (the body's top level recorded in msg->top, for
 * wire_cmd_parse_top). error->code is mongod's code for the same fault
 * (40430, 40431, 40432, 40433, 40587, ...).
 */
bool wire_msg_parse(const uint8_t *data, size_t len, uint32_t max_depth, struct wire_msg *msg,
                    bson_error_t *error) __attribute__((warn_unused_result));

/*
 * Parses an OP_QUERY: header, flags, collection name, skip, nReturn, query
 * and optional selector.
 */
bool wire_msg_parse_query(const uint8_t *data, size_t len, uint32_t max_depth,
                          struct wire_query *query, bson_error_t *error)
    __attribute__((warn_unused_result));

/* Parses an OP_REPLY and checks that exactly n_returned documents fill the rest. */
bool wire_msg_parse_reply(const uint8_t *data, size_t len, uint32_t max_depth,
                          struct wire_reply *reply, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * A reply body's "ok" (body_len bytes at body, a document that passed
 * wire_doc_check): 1 when its first "ok" is true or a number other than
 * zero (int32, int64, double, decimal128; NaN is not), as mongod writes and
 * reads it (it writes 1.0 or 0.0); 0 when it is anything else (false, zero,
 * NaN, a string, a document, null, ...); -1 when there is none. Read with
 * wire/reader.h, not bson_iter: it runs once per upstream reply.
 */
int wire_msg_ok(const uint8_t *body, uint32_t body_len);

/*
 * wire_msg_ok from the body's top-level elements as its check recorded them
 * (struct wire_msg's top): no walk; the same answer.
 */
int wire_msg_ok_top(const uint8_t *body, uint32_t body_len, const struct wire_doc_top *top);

/*
 * Whether the checked body has a top-level key (key_len bytes), read from
 * top's records when they hold every element (no walk), else by a walk.
 */
bool wire_msg_top_has(const uint8_t *body, uint32_t body_len, const struct wire_doc_top *top,
                      const char *key, uint32_t key_len);

/*
 * Clears the flag bits `bits` of the OP_MSG at data (len bytes, already
 * parsed) in place, recomputing the checksum trailer when one is present.
 * checksumPresent itself is never cleared (the trailer cannot be dropped in
 * place): use wire_msg_rebuild to get a message without a checksum.
 */
void wire_msg_clear_flags(uint8_t *data, size_t len, uint32_t bits);

/*
 * Builds a new OP_MSG: the header of msg with the same requestID and
 * responseTo, msg's flags minus checksumPresent, `body` in place of msg's
 * body, and msg's sequences unchanged (written after the body). Returns a
 * buffer the caller frees with bson_free; its length in *out_len. NULL only
 * when the result would exceed INT32_MAX bytes.
 */
uint8_t *wire_msg_rebuild(const struct wire_msg *msg, const bson_t *body, size_t *out_len);

/*
 * Builds a new OP_QUERY like query but with `doc` as the query document.
 * Returns a buffer freed with bson_free; its length in *out_len (NULL as
 * for wire_msg_rebuild).
 */
uint8_t *wire_msg_rebuild_query(const struct wire_query *query, const bson_t *doc,
                                size_t *out_len);

#endif
