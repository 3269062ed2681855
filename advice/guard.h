/*
 * advice/guard.h: a libmongoc stream that lets libmongoc read only whole
 * server messages that wire/ has checked. libmongoc 1.23 (Debian 12) parses
 * a server's OP_MSG without bounds (an unknown section kind, a third
 * section, a section length past the end: a crash), so every message the
 * advisor's server sends goes through wire_msg_parse / wire_msg_parse_reply
 * first, and anything libmongoc could mishandle (a kind-1 section, a
 * checksum, moreToCome, OP_COMPRESSED, another opcode, a bad length) kills
 * the connection instead: libmongoc sees a network error, the guard counts
 * the message as junk and keeps why.
 *
 * Used through a single-threaded mongoc_client_t's stream initiator, which
 * covers every connection (commands and monitoring): a client pool's
 * monitors cannot be given one. One thread only: the guard and its streams
 * belong to the thread that owns the client.
 */
#ifndef MONGOCACHE_ADVICE_GUARD_H
#define MONGOCACHE_ADVICE_GUARD_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

/* What the guard saw, and what its initiator needs. Owned by the caller. */
struct advice_guard {
    mongoc_client_t *client; /* for mongoc_client_default_stream_initiator (borrowed) */
    uint64_t junk;           /* messages refused so far */
    char reason[160];        /* why the last one was refused */
};

/*
 * A mongoc_stream_initiator_t (user_data: a struct advice_guard that
 * outlives the client): libmongoc's default stream (TCP or UNIX, TLS when
 * asked), wrapped by advice_guard_stream_new.
 */
mongoc_stream_t *advice_guard_initiator(const mongoc_uri_t *uri, const mongoc_host_list_t *host,
                                        void *user_data, bson_error_t *error);

/*
 * Wraps base (taken: destroyed with the new stream). Reads hand libmongoc
 * the bytes of a message only once all of it has arrived and passed the
 * checks; writes, timeouts, polling and TLS go to base. guard is borrowed
 * for the stream's life.
 */
mongoc_stream_t *advice_guard_stream_new(mongoc_stream_t *base, struct advice_guard *guard);

#endif
