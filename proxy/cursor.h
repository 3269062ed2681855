/*
 * proxy/cursor.h: cursors the proxy serves itself. When a cacheable find or
 * aggregate returns an open cursor, the proxy drains it (drain.c) and
 * keeps the whole result as one cache value; every client reading that
 * result, from the server or from the cache, gets firstBatch and then each
 * getMore from a cursor of the proxy's own, honouring batchSize, as the
 * server would. killCursors on those ids works. A result that was only
 * partly drained (too large, or the server stopped) hands the client over
 * to the server's cursor once the drained part is served.
 * Spec: source/find_getmore_killcursors_commands/find_getmore_killcursors_commands.md
 */
#ifndef MONGOCACHE_PROXY_CURSOR_H
#define MONGOCACHE_PROXY_CURSOR_H

#include "wire/cmd.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct cache_value;
struct proxy_cursors;

/* Default first batch, as the server's: 101 documents. */
#define PROXY_CURSOR_DEFAULT_FIRST_BATCH 101
/* Most bytes of documents in one batch (the server's 16 MiB). */
#define PROXY_CURSOR_MAX_BATCH_BYTES (16 * 1024 * 1024)

/*
 * Who may read a cursor, as mongod binds its own: the principal that opened
 * it and the session it was opened in. Its namespace is the result's.
 */
struct proxy_cursor_owner {
    const char *principal; /* cache_key_principal's name, "" unauthenticated, NULL: unusable */
    const uint8_t *lsid;   /* the opening command's lsid document, or NULL; borrowed */
    uint32_t lsid_len;
};

/*
 * The table of open proxy cursors. shared (borrowed for the table's life)
 * counts the bytes of results its first batches queue by reference (see
 * proxy_io_add_value). Free with proxy_cursors_destroy.
 */
struct proxy_cursors *proxy_cursors_new(struct event_base *base, size_t *shared);
void proxy_cursors_destroy(struct proxy_cursors *cursors);

/*
 * Caps the bytes of one batch (documents and their array entries) below
 * PROXY_CURSOR_MAX_BATCH_BYTES, so that every reply fits the message size
 * the proxy advertises to its clients (hello.c): drivers refuse a reply
 * larger than maxMessageSizeBytes. A batch still holds at least one
 * document.
 */
void proxy_cursors_set_max_batch_bytes(struct proxy_cursors *cursors, size_t bytes);

/*
 * Whether PROXY_CURSORS_MAX cursors are open, once those idle for ten
 * minutes are dropped (looked for at most once a second while full): then
 * a drained result is not served from the cache nor a reply drained
 * (lookup.c, client.c), and the server answers with a cursor of its own.
 * The cursors of hits already answered but not yet written still open, so
 * the table passes the mark by at most those.
 */
#define PROXY_CURSORS_MAX 100000
bool proxy_cursor_full(struct proxy_cursors *cursors);

/*
 * Appends to out the reply to the command that produced value (a drained
 * result): an OP_MSG with firstBatch (batch_size documents, or 101 when
 * batch_size < 0), whose documents are added by reference to value (out
 * holds a reference until they are sent), and a new proxy cursor for owner
 * when documents remain, or when upstream_id is not 0 (the server's cursor
 * to continue with). Cursor ids are random: another client cannot guess one.
 * Returns the reply's length.
 */
size_t proxy_cursor_first(struct proxy_cursors *cursors, struct cache_value *value,
                          int64_t batch_size, int64_t upstream_id,
                          const struct proxy_cursor_owner *owner, int32_t request_id,
                          int32_t response_to, struct evbuffer *out);

/*
 * A getMore (checked body, its $db) for a cursor of the proxy's: the reply
 * (nextBatch) or the error mongod gives when the cursor is another user's,
 * another namespace's or another session's. Returns NULL when the id is not
 * a proxy cursor, so the getMore goes to the server.
 */
uint8_t *proxy_cursor_get_more(struct proxy_cursors *cursors, const bson_t *body, const char *db,
                               const struct proxy_cursor_owner *owner, int32_t request_id,
                               int32_t response_to, size_t *len);

/*
 * A killCursors (checked body, its $db): when every id is a proxy cursor's,
 * kills those owner may kill (others are reported as not found, as the
 * server would) and returns the reply; otherwise kills the proxy's among
 * them and returns NULL, so the command goes to the server (which reports
 * the proxy's ids as not found).
 */
uint8_t *proxy_cursor_kill(struct proxy_cursors *cursors, const bson_t *body, const char *db,
                           const struct proxy_cursor_owner *owner, int32_t request_id,
                           int32_t response_to, size_t *len);

/* Open proxy cursors (statistics). */
size_t proxy_cursor_count(const struct proxy_cursors *cursors);

/*
 * The batchSize a find or aggregate asked for, or -1. cmd is body as
 * wire_cmd_parse read it (its located elements spare a walk), or NULL.
 */
int64_t proxy_cursor_requested_batch(const bson_t *body, const struct wire_cmd *cmd);

#endif
