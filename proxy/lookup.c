/*
 * proxy/lookup.c: the query cache's part of the request pipeline (see the
 * diagram in request.c). A forwarded command is looked up (read) or bumps
 * the generations it may change (write); the end of a read's wait for an
 * identical one in flight (or for Redis) moves the request (READY on a
 * hit); getMore and killCursors on the proxy's own cursors are answered
 * here; a stored reply is written back to the client (compressed at the
 * hit for a client whose request came compressed: the stored value stays
 * the server's plain reply); a write's ack is made
 * READY once its bump reached Redis. The ends of waits are told to the
 * client through the request's ops (proxy/request.h): this file never calls
 * client.c.
 *
 * Owns: the calls into cache/cache.h and proxy/cursor.h for one request.
 * Does not own the client, its request list or its sockets (client.c), the
 * request's payloads (request.c), nor reading an open cursor to its end
 * (drain.c).
 */
#include "proxy/lookup.h"

#include "cache/cache.h"
#include "cache/policy.h"
#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/advice.h"
#include "proxy/client_internal.h"
#include "proxy/compress.h"
#include "proxy/conn.h"
#include "proxy/cursor.h"
#include "proxy/io.h"
#include "proxy/server.h"
#include "wire/cmd.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/names.h"
#include "wire/reply.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <sys/uio.h>

/* The principal cache entries are keyed by; NULL when the cache must not be used. */
const char *
proxy_lookup_principal(const struct proxy_client *c)
{
    switch (c->auth.state) {
    case PROXY_AUTH_NONE:
        return "";
    case PROXY_AUTH_OK:
        return c->auth.principal;
    case PROXY_AUTH_IN_PROGRESS:
    case PROXY_AUTH_FAILED:
    case PROXY_AUTH_UNKNOWN:
        break;
    }
    return NULL;
}

static void cache_resolved(void *arg, enum cache_outcome outcome, struct cache_value *hit);

/* The (first) lsid document of a command, borrowed from body, or NULL. */
static const uint8_t *
lsid_of(const struct wire_cmd *cmd, const bson_t *body, uint32_t *len)
{
    struct wire_cmd_walk walk;
    struct wire_cmd_elem e;

    *len = 0;
    wire_cmd_walk_init(&walk, cmd, bson_get_data(body), body->len);
    while (wire_cmd_walk_next(&walk, &e)) {
        if (e.id != WIRE_NAME_LSID)
            continue;
        if (e.type != BSON_TYPE_DOCUMENT)
            return NULL;
        *len = (uint32_t)wire_frame_read_i32(e.value); /* checked by the parse */
        return e.value;
    }
    return NULL;
}

/*
 * Keeps what a cacheable read's proxy cursor needs (a drained miss, a hit
 * of drained documents): the batchSize it asked for, and a copy of its lsid
 * (its drain and its proxy cursor belong to that session).
 */
static void
keep_session(struct proxy_request *req, const struct wire_cmd *cmd, const bson_t *body)
{
    uint32_t len;
    const uint8_t *data = lsid_of(cmd, body, &len);

    req->batch_size = proxy_cursor_requested_batch(body, cmd);
    if (!data || req->lsid)
        return;
    req->lsid = bson_malloc(len);
    memcpy(req->lsid, data, len);
    req->lsid_len = len;
}

/*
 * The cache's part of a forwarded command: a write bumps the generations
 * it may change (req remembers it, to bump again at the end); a read is
 * looked up.
 *
 * cache = off: with a Redis tier, writes are still classified and bumped
 * (other proxies sharing it must not serve what they changed) and reads go
 * by. Without one, no cache function runs at all: turning the cache off
 * dropped every entry (cache_reconfigure), so nothing this proxy keeps can
 * be made stale; what is left is a reload back to on while commands sent
 * unclassified are still running upstream. Those are counted
 * (server->untracked, a moreToCome one by the write grace it would have
 * had), and until they are over the cache, back on, classifies writes but
 * looks no read up: no read can store a reply from before such a write.
 */
/* Whether the policy would judge a command named id as a read (its one list). */
static bool
is_read_name(enum wire_name id)
{
    switch (id) {
#define READ_CASE(name) case name:
        CACHE_POLICY_READS(READ_CASE)
#undef READ_CASE
        return true;
    default:
        return false;
    }
}

/* What cache = off without a Redis tier does to a forwarded command: count it. */
static enum proxy_lookup_verdict
untracked(struct proxy_server *server, const struct wire_cmd *cmd, struct proxy_request *req,
          bool oneway)
{
    if (req && !oneway) {
        req->untracked = true;
        server->untracked++;
    } else
        server->untracked_oneway_until_ms = conf_clock_ms() + server->conf->cache_write_grace;
    if (req && is_read_name(cmd->name_id))
        proxy_stats_add(&server->stats, PROXY_STAT_cache_off_passes, 1);
    return PROXY_LOOKUP_FORWARD;
}

/* Whether commands sent unclassified may still be running upstream (see above). */
static bool
untracked_running(struct proxy_server *server)
{
    if (server->untracked > 0)
        return true;
    if (server->untracked_oneway_until_ms == 0)
        return false;
    if (conf_clock_ms() < server->untracked_oneway_until_ms)
        return true;
    server->untracked_oneway_until_ms = 0; /* past: no clock read from now on */
    return false;
}

#define HELD_LOG_EVERY_MS 10000

/*
 * The cache is on, but a read is not looked up while commands sent with it
 * off still run (see above): one long command can hold every client's
 * lookups back until it ends (message_timeout does not bound a command the
 * server is running), so the operator is told, once per HELD_LOG_EVERY_MS.
 */
static void
note_held(struct proxy_server *server)
{
    int64_t now = conf_clock_ms();

    server->lookups_held = true;
    if (server->held_logged_ms != 0 && now - server->held_logged_ms < HELD_LOG_EVERY_MS)
        return;
    server->held_logged_ms = now;
    conf_log(CONF_LOG_WARN, 0, "lookups_held",
             "running=%llu msg=\"commands sent while the cache was off still run upstream; "
             "reads are not looked up in the cache until they end\"",
             (unsigned long long)server->untracked);
}

/* The first read looked up again after note_held: said once. */
static void
note_resumed(struct proxy_server *server)
{
    server->lookups_held = false;
    server->held_logged_ms = 0; /* a later hold is logged at once, not muted by this one */
    conf_log(CONF_LOG_INFO, 0, "lookups_resumed",
             "msg=\"the commands sent while the cache was off have ended; reads are looked up "
             "again\"");
}

/*
 * Whether hit, a stored result, is a drained one and the proxy's cursor
 * table is full (proxy_cursor_full): then the hit is let go (its
 * reference released, counted) and the server answers, with a cursor of
 * its own.
 */
static bool
no_cursor_room(struct proxy_server *server, struct cache_value *hit)
{
    if (!cache_value_is_docs(hit) || !proxy_cursor_full(server->cursors))
        return false;
    cache_value_unref(hit);
    proxy_stats_add(&server->stats, PROXY_STAT_cursors_full, 1);
    return true;
}

enum proxy_lookup_verdict
proxy_lookup_consult(struct proxy_client *c, const struct wire_msg *msg, const struct wire_cmd *cmd,
                     const bson_t *body, struct proxy_request *req, bool oneway)
{
    struct cache *cache = c->server->cache;
    const char *ids[WIRE_MSG_MAX_SEQUENCES];
    const uint8_t *docs[WIRE_MSG_MAX_SEQUENCES];
    uint32_t lens[WIRE_MSG_MAX_SEQUENCES];
    struct cache_inval inval;
    struct cache_request read;
    struct cache_pending *pending;
    enum cache_outcome outcome;
    enum proxy_lookup_verdict verdict = PROXY_LOOKUP_FORWARD;

    if (!c->server->conf->cache && !(c->server->conf->redis && c->server->conf->redis[0]))
        return untracked(c->server, cmd, req, oneway);
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        ids[i] = msg->seqs[i].id;
        docs[i] = msg->seqs[i].docs;
        lens[i] = msg->seqs[i].docs_len;
    }
    if (cache_write_begin(cache, body, cmd, cmd->db, ids, docs, lens, msg->n_seqs, oneway,
                          &inval)) {
        req->inval = bson_malloc(sizeof inval);
        *req->inval = inval;
        c->writes_open++; /* until its end is bumped or lost (client.c: pop_request, on_reply) */
        return PROXY_LOOKUP_FORWARD;
    }
    if (oneway || inval.write || !req)
        return PROXY_LOOKUP_FORWARD;
    if (c->writes_open > 0) {
        /* Behind a write of its own still on its way: the server runs this
         * read after that write, but an entry another client filled while
         * the write ran may not show it (its fill was taken between the
         * write's two bumps). Sent on, with nothing looked up or stored. */
        if (is_read_name(cmd->name_id))
            proxy_stats_add(&c->server->stats, PROXY_STAT_reads_behind_write, 1);
        return PROXY_LOOKUP_FORWARD;
    }
    if (!c->server->conf->cache || untracked_running(c->server)) {
        /* cache = off with a Redis tier, or back on while unclassified
         * commands may still run: a read looks nothing up and allocates
         * nothing for the cache; it is counted as the cache would count it. */
        if (is_read_name(cmd->name_id)) {
            proxy_stats_add(&c->server->stats, PROXY_STAT_cache_off_passes, 1);
            if (c->server->conf->cache)
                note_held(c->server);
        }
        return PROXY_LOOKUP_FORWARD;
    }
    if (c->server->lookups_held)
        note_resumed(c->server);
    read.body = body;
    read.cmd = cmd; /* parsed once, in client.c */
    read.db = cmd->db;
    read.n_sequences = msg->n_seqs;
    read.principal = proxy_lookup_principal(c);
    read.bypass_reason = 0;
    /* One clock read per request: the time it was taken from the client's
     * buffer (push_request) when it was timed, microseconds ago. */
    read.now_ms = req->started_us > 0 ? req->started_us / 1000 : conf_clock_ms();
    proxy_stats_add(&c->server->stats, PROXY_STAT_cache_lookups, 1);
    outcome = cache_lookup(cache, &read, &pending, &req->hit, cache_resolved, req, &req->wait);
    if (conf_log_enabled(CONF_LOG_DEBUG))
        conf_log(CONF_LOG_DEBUG, c->id, "cache", "request_id=%d outcome=%s reason=%s",
                 req->request_id,
                 outcome == CACHE_HIT    ? "hit"
                 : outcome == CACHE_MISS ? "miss"
                 : outcome == CACHE_WAIT ? "wait"
                                         : "bypass",
                 outcome == CACHE_BYPASS ? cache_bypass_name(read.bypass_reason) : "-");
    switch (outcome) {
    case CACHE_MISS:
        req->miss = pending;
        keep_session(req, cmd, body);
        return PROXY_LOOKUP_FORWARD;
    case CACHE_HIT:
        if (no_cursor_room(c->server, req->hit)) {
            req->hit = NULL;
            break;
        }
        proxy_advice_hit(c->server->advice, cache_value_tag(req->hit), read.now_ms);
        if (cache_value_is_docs(req->hit))
            keep_session(req, cmd, body); /* its proxy cursor belongs to this session */
        proxy_request_set_state(req, PROXY_REQUEST_READY);
        verdict = PROXY_LOOKUP_ANSWERED;
        break;
    case CACHE_WAIT:
        /* Kept: a wait for Redis may end in a miss, whose reply is stored. */
        req->miss = pending;
        keep_session(req, cmd, body);
        proxy_request_set_state(req, PROXY_REQUEST_WAITING_CACHE);
        return PROXY_LOOKUP_WAITING;
    case CACHE_BYPASS:
        break;
    }
    /* Hits and bypasses never fill (and have no pending). */
    cache_pending_free(cache, pending);
    return verdict;
}

/*
 * The cache decided on a read that waited for an identical one (or for the
 * Redis tier): a hit makes req READY; otherwise its held message is the
 * client's to send. Either way the client hears of it through req->ops.
 */
static void
cache_resolved(void *arg, enum cache_outcome outcome, struct cache_value *hit)
{
    struct proxy_request *req = arg;
    struct proxy_server *server = req->client->server;

    req->wait = NULL; /* the cache has let go of it: nothing to cancel */
    if (outcome == CACHE_HIT && no_cursor_room(server, hit))
        outcome = CACHE_BYPASS;
    if (outcome != CACHE_MISS)
        proxy_request_drop_miss(req, server->cache);
    if (outcome == CACHE_HIT) {
        req->hit = hit;
        proxy_advice_hit(server->advice, cache_value_tag(hit), 0);
        proxy_request_set_state(req, PROXY_REQUEST_READY); /* frees the held message */
    }
    req->ops->resolved(req);
}

/*
 * getMore and killCursors on the proxy's own cursors are answered here;
 * true when req got its reply (req->canned).
 */
bool
proxy_lookup_answer_cursor(struct proxy_client *c, const struct wire_cmd *cmd, const bson_t *body,
                           struct proxy_request *req)
{
    struct proxy_cursor_owner owner;
    int32_t id;

    if (cmd->name_id != WIRE_NAME_GET_MORE && cmd->name_id != WIRE_NAME_KILL_CURSORS)
        return false; /* every other command: nothing looked at */
    owner.principal = proxy_lookup_principal(c);
    id = proxy_server_reply_id(c->server);
    owner.lsid = lsid_of(cmd, body, &owner.lsid_len);
    if (cmd->name_id == WIRE_NAME_GET_MORE)
        req->canned = proxy_cursor_get_more(c->server->cursors, body, cmd->db, &owner, id,
                                            req->request_id, &req->canned_len);
    else
        req->canned = proxy_cursor_kill(c->server->cursors, body, cmd->db, &owner, id,
                                        req->request_id, &req->canned_len);
    if (!req->canned)
        return false;
    req->outcome = PROXY_OUTCOME_HIT; /* served from the proxy's cursor of a stored result */
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    return true;
}

/*
 * A hit for a client whose request came compressed: the reply (the stored
 * one with a fresh header, or a drained result's first batch) compressed
 * with the request's compressor, from the stored bytes, at the hit (the
 * cache keeps one plain copy whatever its readers negotiated). False when
 * compressing failed: the caller writes it plain.
 */
static bool
write_hit_compressed(struct proxy_client *c, struct proxy_request *req)
{
    struct evbuffer *out = c->scratch;
    uint8_t header[WIRE_HEADER_LEN], *packed;
    const uint8_t *data;
    size_t len, n;

    if (cache_value_is_docs(req->hit)) {
        struct proxy_cursor_owner owner = {proxy_lookup_principal(c), req->lsid, req->lsid_len};

        (void)proxy_cursor_first(c->server->cursors, req->hit, req->batch_size,
                                 req->cursor_upstream_id, &owner, proxy_server_reply_id(c->server),
                                 req->request_id, out);
        len = evbuffer_get_length(out);
        data = len >= WIRE_HEADER_LEN ? evbuffer_pullup(out, -1) : NULL;
        packed = data ? proxy_compress_reply(c->server, req->reply_compressor, data,
                                             data + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN, &n)
                      : NULL;
        if (packed) {
            evbuffer_drain(out, len);
            if (evbuffer_add(out, packed, n) != 0)
                proxy_conn_fail(c->conn, ENOMEM); /* nothing of it sent: the stream is cut */
            bson_free(packed);
            proxy_stats_add(&c->server->stats, PROXY_STAT_compressed_hits, 1);
        }
        proxy_conn_send(c->conn, out); /* plain when compressing failed */
        return true;
    }
    data = cache_value_data(req->hit, &len);
    memcpy(header, data, sizeof header);
    wire_reply_restamp(header, proxy_server_reply_id(c->server), req->request_id);
    packed = proxy_compress_reply(c->server, req->reply_compressor, header,
                                  data + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN, &n);
    if (!packed)
        return false;
    if (evbuffer_add(out, packed, n) != 0)
        proxy_conn_fail(c->conn, ENOMEM);
    else
        proxy_conn_send(c->conn, out);
    bson_free(packed);
    proxy_stats_add(&c->server->stats, PROXY_STAT_compressed_hits, 1);
    return true;
}

/*
 * Writes a stored reply for req: a fresh header (new requestID, responseTo
 * the client's request) and the stored bytes after it, in one sendmsg from
 * the stored value when nothing is queued before it (no buffer, no copy, no
 * allocation), now or at the end of the loop's turn (proxy_conn_send_value);
 * what the socket does not take is queued, the stored bytes by reference.
 */
void
proxy_lookup_write_hit(struct proxy_client *c, struct proxy_request *req)
{
    size_t len;
    const uint8_t *data = cache_value_data(req->hit, &len);
    uint8_t header[WIRE_HEADER_LEN];
    struct evbuffer *out = c->scratch;

    if (c->phase == PROXY_CLIENT_GONE)
        return;
    if (req->reply_compressor >= 0 && write_hit_compressed(c, req))
        return;
    if (cache_value_is_docs(req->hit)) {
        /* A drained cursor: its batches come from a cursor of the proxy's. */
        struct proxy_cursor_owner owner = {proxy_lookup_principal(c), req->lsid, req->lsid_len};

        (void)proxy_cursor_first(c->server->cursors, req->hit, req->batch_size,
                                 req->cursor_upstream_id, &owner, proxy_server_reply_id(c->server),
                                 req->request_id, out);
        proxy_conn_send(c->conn, out);
        return;
    }
    memcpy(header, data, sizeof header);
    wire_reply_restamp(header, proxy_server_reply_id(c->server), req->request_id);
    proxy_conn_send_value(c->conn, header, req->hit, &c->server->mem_referenced);
}

/* An acknowledged write's bump reached Redis (or gave up): its ack may go out. */
void
proxy_lookup_write_bumped(void *arg)
{
    struct proxy_request *req = arg;

    req->write_wait = NULL; /* the cache has let go of it: nothing to cancel */
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    req->ops->acked(req);
}
