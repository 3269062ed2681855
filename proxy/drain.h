/*
 * proxy/drain.h: reading a cacheable read's open cursor to its end on the
 * client's own upstream connection, so the whole result can be stored and
 * served from a cursor of the proxy's own (proxy/cursor.h).
 */
#ifndef MONGOCACHE_PROXY_DRAIN_H
#define MONGOCACHE_PROXY_DRAIN_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

struct proxy_client;
struct proxy_request;

/* The requestID the upstream's next reply for req answers. */
int32_t proxy_drain_expected_id(const struct proxy_request *req);

/*
 * True when reply is ok:1 with a cursor whose id is not 0; sets the id, the
 * batch array (firstBatch or nextBatch) and the namespace when asked.
 */
bool proxy_drain_open_cursor(const bson_t *reply, int64_t *id, bson_iter_t *batch,
                             const char **ns);

/* Documents read from a cursor's batches, back to back. */
struct proxy_drain_docs {
    uint8_t *data; /* bson_malloc'd; bson_free when done */
    size_t len;
    size_t cap;
    uint32_t n;
};

/*
 * Appends every document of a batch array (an iterator on firstBatch or
 * nextBatch, from a checked reply) to docs; elements that are not
 * documents are skipped. Returns how many were appended.
 */
uint32_t proxy_drain_docs_append(struct proxy_drain_docs *docs, const bson_iter_t *batch);

/*
 * Takes one batch (the first reply, or a getMore's) of a cursor being
 * drained: the first moves req from UPSTREAM to DRAINING (the client reads
 * no further until the end). True when the drain is over: req is READY,
 * served from the stored result (req->hit) or an error (req->canned).
 */
bool proxy_drain_step(struct proxy_client *c, struct proxy_request *req, const bson_t *reply);

#endif
