/*
 * proxy/advice.h: index advice as the proxy runs it. The shapes of every
 * command that reaches the server are counted in the shape table on the
 * loop thread (advice/table.h), with the server time of its round trip and
 * the documents it returned; cache hits are counted by the shape stored
 * with the entry. Every advice_interval the table's snapshot goes to the
 * advisor thread (advice/advisor.h), whose report comes back here and is
 * served by GET /advice. With advice off nothing of this exists: no table,
 * no thread, no command to the server.
 */
#ifndef MONGOCACHE_PROXY_ADVICE_H
#define MONGOCACHE_PROXY_ADVICE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct advice_report;
struct advice_table;
struct evbuffer;
struct proxy_server;
struct proxy_advice;
struct wire_cmd;
struct wire_msg;

/* Most shapes of one request whose round trip is counted (the first ones). */
#define PROXY_ADVICE_SHAPES 4

/*
 * Starts advice from server->conf (the advisor on advice_uri, or on the
 * upstream URI when that is empty). Returns NULL with error->code 0 when
 * advice is off, NULL with error set when it cannot start. Free with
 * proxy_advice_destroy.
 */
struct proxy_advice *proxy_advice_new(struct proxy_server *server, bson_error_t *error);

/* False when the advisor's thread was left behind (advice_advisor_destroy):
 * libmongoc may still be in use, so mongoc_cleanup must not run. */
bool proxy_advice_destroy(struct proxy_advice *advice);

/* A reloaded configuration: interval, thresholds and explain apply from the next run. */
void proxy_advice_reconfigure(struct proxy_advice *advice);

/*
 * A command is on its way to the server: its shapes are counted, and their
 * hashes (at most max) written to hashes for proxy_advice_reply. Returns
 * how many were written; when some were, *sent_us is the monotonic clock
 * (microseconds) they were counted at, for the round trip, and *weight how
 * many commands they count for. A pass-through (sample: true) may be
 * passed over when more than advice_exact_rate a second go by, one in k
 * then counting for k (advice/sampler.h); a miss (sample: false) never is,
 * as its stored entry needs its shape. Cheap when the command has no shape
 * or is passed over (the clock is not read then).
 */
uint32_t proxy_advice_record(struct proxy_advice *advice, const struct wire_msg *msg,
                             const struct wire_cmd *cmd, const bson_t *body, bool sample,
                             uint64_t *hashes, uint32_t max, int64_t *sent_us, uint32_t *weight);

/*
 * The documents of a reply's first batch (cursor.firstBatch, or nextBatch),
 * counted without libbson: the reply is read once, key by key, and every
 * length is checked against the enclosing document. 0 when it has none.
 */
uint64_t proxy_advice_batch_documents(const uint8_t *reply, uint32_t len);

/*
 * The reply to a recorded command came after server_ms, with documents
 * documents; weight as proxy_advice_record gave it.
 */
void proxy_advice_reply(struct proxy_advice *advice, const uint64_t *hashes, uint32_t n,
                        double server_ms, uint64_t documents, uint32_t weight);

/*
 * An index change passed through (its reply ok): db.coll's indexes are
 * re-read at the advisor's next run, which comes soon (coll NULL: all of db).
 */
void proxy_advice_indexes_changed(struct proxy_advice *advice, const char *db, const char *coll);

/* A cache hit of an entry stored with this shape hash (0: none), at now_ms
 * (conf_clock_ms; 0: the clock is read here, only when the hit is noted). */
void proxy_advice_hit(struct proxy_advice *advice, uint64_t hash, int64_t now_ms);

/*
 * The display text of the shape of this hash (advice_shape_display: values
 * shown as "?"), freed with bson_free; NULL when advice is NULL (off) or
 * the shape is not kept (never recorded, or evicted since).
 */
char *proxy_advice_shape_display(struct proxy_advice *advice, uint64_t hash);

/* The shape table, for GET /shapes (proxy/shapes.c): loop thread only. */
struct advice_table *proxy_advice_table(struct proxy_advice *advice);

/* The advisor's latest report, or NULL before the first; valid until the next report. */
const struct advice_report *proxy_advice_report(const struct proxy_advice *advice);

/* GET /advice: the latest report as JSON (see the README). */
void proxy_advice_json(struct proxy_advice *advice, struct evbuffer *out);

/* The STAT_ADVICE rows of conf/counters.def. */
enum proxy_advice_stat {
#define STAT_ADVICE(name, kind, unit, prom, help) PROXY_ADVICE_STAT_##name,
#include "conf/counters.def"
    PROXY_ADVICE_STAT_COUNT
};

/* The value of one STAT_ADVICE row now; 0 when advice is NULL (advice = off). */
uint64_t proxy_advice_stat(const struct proxy_advice *advice, enum proxy_advice_stat id);

/*
 * Appends the /stats section "advice" to doc: {"enabled": false, "open": 0}
 * with advice NULL, else "enabled", the STAT_ADVICE rows and "state" (after
 * "shapes", where it always was).
 */
void proxy_advice_stats_bson(struct proxy_advice *advice, bson_t *doc);

#endif
