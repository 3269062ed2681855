/*
 * proxy/action.c: owns an operator's actions (see action.h): reading the
 * in-band commands and the HTTP requests that ask for them, deciding who
 * may take them (admin_users, admin_commands, http_token), taking them
 * (through cache_admin_drop: what a flush or an invalidation does to the
 * cache is cache/cache.c's), answering, and the one audit line per action.
 * It does not route commands (router.c sends mongocacheStats,
 * mongocacheFlush and mongocacheInvalidate here), does not queue replies
 * (client.c sends the answer as any reply the proxy makes, in order, under
 * the client's output limits) and does not serve the other HTTP routes
 * (admin.c).
 *
 * With the Redis tier, a flush or an invalidation is answered only once
 * Redis confirmed its bump, as a write's ack is (else a read through
 * another proxy could still find the old entry after the operator was told
 * ok); when Redis is unusable or does not confirm within redis_timeout the
 * answer is an error (the entries held here are dropped either way). The
 * in-band answer waits as a write's ack does (the request's write_wait,
 * which client.c cancels if the client goes away); an HTTP answer waits in
 * an http_wait, which the connection's close callback cancels.
 *
 * Everything read here comes from a peer: a command's values are checked
 * for type, length, NUL and control bytes before use; a namespace is
 * copied only after proxy_action_ns_check; a refused action changes
 * nothing. Replies are small and bounded (the stats document is /stats,
 * itself bounded: see admin.c).
 */
#include "config.h"

#include "proxy/action.h"

#include "cache/cache.h"
#include "cache/key.h"
#include "conf/error.h"
#include "conf/log.h"
#include "proxy/client_internal.h"
#include "proxy/http.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

/* MongoDB error codes used in replies (error_codes.yml). */
#define CODE_BAD_VALUE 2
#define CODE_HOST_UNREACHABLE 6
#define CODE_UNAUTHORIZED 13
#define CODE_TYPE_MISMATCH 14
#define CODE_COMMAND_NOT_FOUND 59

static const struct {
    const char *name;
    enum proxy_action_kind kind;
} commands[] = {
    {"mongocacheStats", PROXY_ACTION_STATS},
    {"mongocacheFlush", PROXY_ACTION_FLUSH},
    {"mongocacheInvalidate", PROXY_ACTION_INVALIDATE},
};

static const char *
kind_name(enum proxy_action_kind kind)
{
    switch (kind) {
    case PROXY_ACTION_STATS:
        return "stats";
    case PROXY_ACTION_FLUSH:
        return "flush";
    case PROXY_ACTION_INVALIDATE:
        return "invalidate";
    default:
        return "none";
    }
}

enum proxy_action_kind
proxy_action_kind_of(const char *name)
{
    if (name == NULL || name[0] != 'm')
        return PROXY_ACTION_NONE;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].kind;
    return PROXY_ACTION_NONE;
}

bool
proxy_action_ns_check(const char *ns, size_t len, bson_error_t *error)
{
    const char *dot;
    size_t db_len;

    if (ns == NULL || len == 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the namespace is empty: give \"db.coll\"");
        return false;
    }
    if (len > PROXY_ACTION_NS_MAX) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the namespace is %zu bytes long: at most %d are accepted", len,
                       PROXY_ACTION_NS_MAX);
        return false;
    }
    if (memchr(ns, '\0', len) != NULL) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the namespace holds a NUL byte");
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)ns[i] < 0x20 || ns[i] == 0x7f) {
            bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                           "the namespace holds a control byte");
            return false;
        }
    }
    if (!bson_utf8_validate(ns, len, false)) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the namespace is not UTF-8");
        return false;
    }
    dot = memchr(ns, '.', len);
    if (dot == NULL) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the namespace has no '.': give \"db.coll\" (database, dot, collection)");
        return false;
    }
    db_len = (size_t)(dot - ns);
    if (db_len == 0 || db_len > 64) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the database name must be 1 to 64 bytes long (it is %zu)", db_len);
        return false;
    }
    for (size_t i = 0; i < db_len; i++) {
        if (strchr("/\\\" $", ns[i]) != NULL) {
            bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                           "the database name holds a character MongoDB does not allow in one "
                           "(/ \\ . \" $ or space)");
            return false;
        }
    }
    if (db_len + 1 == len) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the collection name is empty");
        return false;
    }
    if (memchr(dot + 1, '$', len - db_len - 1) != NULL) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_BAD_VALUE,
                       "the collection name holds a '$'");
        return false;
    }
    return true;
}

bool
proxy_action_cmd_parse(const bson_t *body, struct proxy_action_cmd *out, bson_error_t *error)
{
    bson_iter_t it;
    const char *ns;
    uint32_t len;

    memset(out, 0, sizeof *out);
    if (!bson_iter_init(&it, body) || !bson_iter_next(&it) ||
        (out->kind = proxy_action_kind_of(bson_iter_key(&it))) == PROXY_ACTION_NONE) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_COMMAND_NOT_FOUND,
                       "not a mongocache command");
        return false;
    }
    if (out->kind != PROXY_ACTION_INVALIDATE)
        return true; /* {mongocacheStats: <any>}, as mongod takes {ping: <any>} */
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        bson_set_error(error, CONF_ERROR_DOMAIN_COMMAND, CODE_TYPE_MISMATCH,
                       "mongocacheInvalidate takes a namespace string, \"db.coll\"");
        return false;
    }
    ns = bson_iter_utf8(&it, &len);
    if (!proxy_action_ns_check(ns, len, error))
        return false;
    memcpy(out->ns, ns, len);
    out->ns[len] = '\0';
    out->ns_len = len;
    return true;
}

/* The next entry of a comma-separated list, spaces trimmed: *s moves past it. */
static bool
next_entry(const char **s, const char **start, size_t *len)
{
    const char *p = *s, *end;

    while (*p == ' ' || *p == ',' || *p == '\t')
        p++;
    if (*p == '\0')
        return false;
    end = p;
    while (*end != '\0' && *end != ',')
        end++;
    *s = end;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *start = p;
    *len = (size_t)(end - p);
    return true;
}

/* The last '@' of an entry, or NULL. */
static const char *
last_at(const char *entry, size_t len)
{
    for (size_t i = len; i > 0; i--)
        if (entry[i - 1] == '@')
            return entry + i - 1;
    return NULL;
}

bool
proxy_action_user_listed(const char *admin_users, const char *principal)
{
    const char *s = admin_users, *entry, *at;
    size_t len;

    if (admin_users == NULL || principal == NULL || principal[0] == '\0')
        return false;
    while (next_entry(&s, &entry, &len)) {
        char *key;
        bool same;

        at = last_at(entry, len);
        if (at == NULL || at == entry || at == entry + len - 1)
            continue;
        key = cache_key_principal(entry, (size_t)(at - entry), at + 1,
                                  (size_t)(entry + len - at - 1));
        same = strcmp(key, principal) == 0;
        bson_free(key);
        if (same)
            return true;
    }
    return false;
}

/* ---- the actions ------------------------------------------------------------- */

/* What an operator is told when the other proxies may not have seen the action. */
#define NOT_SHARED_MSG                                                                             \
    "mongocache dropped the entries it held, but the shared tier (Redis) is unusable now: "        \
    "the other proxies were not told and may still serve them; retry once Redis is back"
#define UNCONFIRMED_MSG                                                                            \
    "mongocache dropped the entries it held, but Redis did not confirm the invalidation "          \
    "within redis_timeout: the other proxies may still serve them; retry"

/*
 * Takes a flush (ns NULL) or an invalidation (see cache_admin_drop): the
 * entries dropped here in *dropped; WAITING: cb(arg, ok) will say whether
 * Redis confirmed it, *wait its handle.
 */
static enum cache_drop_state
take(struct proxy_server *server, const char *ns, size_t ns_len, cache_drop_done_cb cb, void *arg,
     struct cache_write_wait **wait, size_t *dropped)
{
    *wait = NULL;
    *dropped = 0;
    if (server->cache == NULL)
        return CACHE_DROP_DONE;
    return cache_admin_drop(server->cache, ns, ns_len, cb, arg, wait, dropped);
}

static void
audit(uint64_t conn, const char *via, const char *who, enum proxy_action_kind kind, const char *ns,
      const char *result, size_t dropped)
{
    conf_log(CONF_LOG_INFO, conn, "admin_action",
             "via=%s who=\"%s\" action=%s namespace=%s result=%s dropped=%zu", via, who,
             kind_name(kind),
             ns                           ? ns
             : kind == PROXY_ACTION_FLUSH ? "*"
                                           : "-",
             result, dropped);
}

/* ---- in-band ------------------------------------------------------------------ */

static uint8_t *
error_reply(struct proxy_client *c, int32_t response_to, int32_t code, const char *errmsg,
            size_t *len)
{
    const char *name = code == CODE_UNAUTHORIZED           ? "Unauthorized"
                       : code == CODE_TYPE_MISMATCH        ? "TypeMismatch"
                       : code == CODE_COMMAND_NOT_FOUND    ? "CommandNotFound"
                       : code == CODE_HOST_UNREACHABLE     ? "HostUnreachable"
                       : code == WIRE_CODE_EXCEEDED_MEMORY ? "ExceededMemoryLimit"
                                                           : "BadValue";

    return proxy_request_make_error(c->server, response_to, false, code, name, errmsg, len);
}

/* The /stats document as BSON (bson_destroy). */
static bson_t *
stats_doc(struct proxy_server *server)
{
    bson_t *doc = bson_new();

    proxy_metrics_stats_bson(server, server->started, doc);
    return doc;
}

/* "via=wire who=..." of client c. */
static const char *
wire_who(const struct proxy_client *c)
{
    return c->auth.state == PROXY_AUTH_OK && c->auth.principal_name ? c->auth.principal_name
                                                                    : "unauthenticated";
}

/*
 * Redis confirmed (ok) an in-band flush's or invalidation's bump, or gave
 * up: req's ok reply (canned, held by write_wait) goes out, or is replaced
 * by an error. The action and its figures are read back from that reply,
 * parsed as any OP_MSG is (wire_msg_parse: every length checked), since
 * the wait's one argument is req.
 */
static void
inband_confirmed(void *arg, bool ok)
{
    struct proxy_request *req = arg;
    struct proxy_client *c = req->client;
    struct wire_msg msg;
    bson_error_t error;
    bson_t reply;
    bson_iter_t it;
    const char *ns = NULL;
    int64_t dropped = 0;

    req->write_wait = NULL;
    if (req->canned &&
        wire_msg_parse(req->canned, req->canned_len,
                       (uint32_t)c->server->conf->max_bson_depth, &msg, &error) &&
        bson_init_static(&reply, msg.body, msg.body_len)) {
        if (bson_iter_init_find(&it, &reply, "namespace") && BSON_ITER_HOLDS_UTF8(&it))
            ns = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, &reply, "dropped") && BSON_ITER_HOLDS_INT64(&it))
            dropped = bson_iter_int64(&it);
    }
    audit(c->id, "wire", wire_who(c), ns ? PROXY_ACTION_INVALIDATE : PROXY_ACTION_FLUSH, ns,
          ok ? "ok" : "unconfirmed", (size_t)dropped);
    if (!ok) {
        size_t len;
        uint8_t *bytes = error_reply(c, req->request_id, CODE_HOST_UNREACHABLE, UNCONFIRMED_MSG,
                                     &len);

        proxy_request_set_reply(req, bytes, len); /* ns pointed into the old one: unused now */
        req->outcome = PROXY_OUTCOME_ERROR;
    }
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    req->ops->acked(req); /* the client sends it in turn (action.c never calls client.c) */
}

void
proxy_action_answer(struct proxy_client *c, struct proxy_request *req, const bson_t *body,
                    const char *db)
{
    struct proxy_server *server = c->server;
    const struct conf *conf = server->conf;
    int32_t response_to = req->request_id;
    size_t *len = &req->canned_len;
    struct cache_write_wait *wait = NULL;
    enum cache_drop_state state = CACHE_DROP_DONE;
    struct proxy_action_cmd cmd;
    bson_error_t error;
    const char *who, *ns;
    char errmsg[512];
    bool listed, parsed, open_to_all;
    bson_t reply = BSON_INITIALIZER, *stats = NULL;
    const bson_t *out = &reply;
    size_t dropped = 0;

    /* Every refusal is an error reply (counted as one). */
    req->outcome = PROXY_OUTCOME_ERROR;

    listed = c->auth.state == PROXY_AUTH_OK &&
             proxy_action_user_listed(conf->admin_users, c->auth.principal);
    who = wire_who(c);
    /* Who may comes first: a refused connection learns nothing of its arguments. */
    parsed = proxy_action_cmd_parse(body, &cmd, &error);
    if (cmd.kind == PROXY_ACTION_NONE) {
        audit(c->id, "wire", who, PROXY_ACTION_NONE, NULL, "bad_command", 0);
        req->canned = error_reply(c, response_to, (int32_t)error.code, error.message, len);
        return;
    }
    ns = parsed && cmd.kind == PROXY_ACTION_INVALIDATE ? cmd.ns : NULL;
    if (db == NULL || strcmp(db, "admin") != 0) {
        audit(c->id, "wire", who, cmd.kind, ns, "refused_not_admin_db", 0);
        snprintf(errmsg, sizeof errmsg, "%s may only be run against the admin database.",
                 commands[cmd.kind - 1].name);
        req->canned = error_reply(c, response_to, CODE_UNAUTHORIZED, errmsg, len);
        return;
    }
    /* admin_commands is for an upstream without authentication: once a client
     * has tried to authenticate through this proxy (any mechanism), the upstream
     * evidently has it, and only admin_users are admitted. */
    open_to_all = conf->admin_commands && !server->auth_seen;
    if (!listed && !open_to_all) {
        audit(c->id, "wire", who, cmd.kind, ns, "refused_unauthorized", 0);
        snprintf(errmsg, sizeof errmsg,
                 "not authorized on admin to execute command { %s }: mongocache admits the "
                 "principals in admin_users%s",
                 commands[cmd.kind - 1].name,
                 c->auth.state == PROXY_AUTH_OK ? "" : " (this connection is not authenticated)");
        req->canned = error_reply(c, response_to, CODE_UNAUTHORIZED, errmsg, len);
        return;
    }
    if (!parsed) {
        audit(c->id, "wire", who, cmd.kind, NULL, "bad_argument", 0);
        req->canned = error_reply(c, response_to, (int32_t)error.code, error.message, len);
        return;
    }
    if (cmd.kind == PROXY_ACTION_STATS) {
        stats = stats_doc(server);
        if (stats->len > PROXY_MEMORY_SMALL && proxy_server_memory_over(server, stats->len)) {
            bson_destroy(stats);
            audit(c->id, "wire", who, cmd.kind, NULL, "refused_memory", 0);
            req->canned =
                error_reply(c, response_to, WIRE_CODE_EXCEEDED_MEMORY,
                            "mongocache: the proxy's buffers are at max_memory; retry later", len);
            return;
        }
        BSON_APPEND_DOUBLE(stats, "ok", 1.0);
        out = stats;
    } else {
        state = take(server, ns, cmd.ns_len, inband_confirmed, req, &wait, &dropped);
        if (state == CACHE_DROP_NOT_SENT) {
            audit(c->id, "wire", who, cmd.kind, ns, "not_shared", dropped);
            req->canned = error_reply(c, response_to, CODE_HOST_UNREACHABLE, NOT_SHARED_MSG, len);
            return;
        }
        if (ns)
            BSON_APPEND_UTF8(&reply, "namespace", ns);
        BSON_APPEND_INT64(&reply, "dropped", (int64_t)dropped);
        BSON_APPEND_DOUBLE(&reply, "ok", 1.0);
    }
    /* WAITING: the ok reply is held (as a write's ack) until inband_confirmed. */
    if (state != CACHE_DROP_WAITING)
        audit(c->id, "wire", who, cmd.kind, ns, "ok", dropped);
    req->write_wait = wait;
    req->outcome = PROXY_OUTCOME_PASS;
    req->canned = wire_reply_msg(proxy_server_reply_id(c->server), response_to, out, len);
    bson_destroy(&reply);
    if (stats)
        bson_destroy(stats);
}

/* ---- HTTP ----------------------------------------------------------------------- */

static void
http_error(struct evhttp_request *req, int code, const char *reason, const char *why)
{
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_BOOL(&doc, "ok", false);
    BSON_APPEND_UTF8(&doc, "error", why);
    proxy_http_send_bson(req, code, reason, &doc);
    bson_destroy(&doc);
}

/* "http:HOST:PORT" of the request's peer. */
static void
http_who(struct evhttp_request *req, char *out, size_t size)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *host = NULL;
    uint16_t port = 0;

    if (conn)
        evhttp_connection_get_peer(conn, &host, &port);
    snprintf(out, size, "http:%s:%u", host ? host : "?", (unsigned)port);
}

/*
 * The checks every admin POST passes: the method, an empty body, the token
 * (configured, and given). False when req was answered (refused).
 */
static bool
http_admitted(struct proxy_server *server, struct evhttp_request *req, enum proxy_action_kind kind,
              const char *who)
{
    const char *token = server->conf->http_token;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        audit(0, "http", who, kind, NULL, "refused_method", 0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        http_error(req, 405, "Method Not Allowed", "this route takes POST only");
        return false;
    }
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) != 0) {
        audit(0, "http", who, kind, NULL, "refused_body", 0);
        http_error(req, 413, "Payload Too Large", "an admin POST takes no body");
        return false;
    }
    if (token == NULL || token[0] == '\0') {
        audit(0, "http", who, kind, NULL, "refused_no_token_configured", 0);
        http_error(req, 403, "Forbidden",
                   "admin actions over HTTP need http_token to be configured");
        return false;
    }
    if (!proxy_http_authorized(server, req)) {
        audit(0, "http", who, kind, NULL, "refused_unauthorized", 0);
        http_error(req, 401, "Unauthorized",
                   "unauthorized: send the header \"Authorization: Bearer <http_token>\"");
        return false;
    }
    return true;
}

/* The answer to a flush or an invalidation taken: ok, or 503 when other proxies may not see it. */
static void
http_done(struct evhttp_request *req, const char *ns, size_t dropped, const char *why)
{
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_BOOL(&doc, "ok", why == NULL);
    if (why)
        BSON_APPEND_UTF8(&doc, "error", why);
    if (ns)
        BSON_APPEND_UTF8(&doc, "namespace", ns);
    BSON_APPEND_INT64(&doc, "dropped", (int64_t)dropped);
    if (why)
        proxy_http_send_bson(req, 503, "Service Unavailable", &doc);
    else
        proxy_http_send_bson(req, 200, "OK", &doc);
    bson_destroy(&doc);
}

/*
 * An HTTP flush or invalidation whose answer waits for Redis to confirm its
 * bump. It owns itself: freed by http_confirmed once answered, or by
 * http_closed when the connection goes first (evhttp then frees req).
 */
struct http_wait {
    struct evhttp_request *req;     /* evhttp's */
    struct evhttp_connection *conn; /* evhttp's: its close callback is http_closed */
    struct cache_write_wait *wait;  /* the cache's, until http_confirmed */
    enum proxy_action_kind kind;
    size_t dropped;
    char who[128];
    char ns[PROXY_ACTION_NS_MAX + 1]; /* "" for a flush */
};

static void
http_confirmed(void *arg, bool ok)
{
    struct http_wait *hw = arg;
    const char *ns = hw->ns[0] ? hw->ns : NULL;

    evhttp_connection_set_closecb(hw->conn, NULL, NULL);
    audit(0, "http", hw->who, hw->kind, ns, ok ? "ok" : "unconfirmed", hw->dropped);
    http_done(hw->req, ns, hw->dropped, ok ? NULL : UNCONFIRMED_MSG);
    bson_free(hw);
}

/* The connection goes (the proxy stops, or evhttp drops it) before Redis answered. */
static void
http_closed(struct evhttp_connection *conn, void *arg)
{
    struct http_wait *hw = arg;

    evhttp_connection_set_closecb(conn, NULL, NULL);
    cache_write_cancel(hw->wait);
    audit(0, "http", hw->who, hw->kind, hw->ns[0] ? hw->ns : NULL, "client_gone", hw->dropped);
    bson_free(hw);
}

/* Takes an admitted flush (ns NULL) or invalidation for req, and answers it now or once confirmed.
 */
static void
http_take(struct proxy_server *server, struct evhttp_request *req, enum proxy_action_kind kind,
          const char *who, const char *ns, size_t ns_len)
{
    struct http_wait *hw = bson_malloc0(sizeof *hw);
    struct cache_write_wait *wait;
    size_t dropped;

    switch (take(server, ns, ns_len, http_confirmed, hw, &wait, &dropped)) {
    case CACHE_DROP_WAITING:
        hw->req = req;
        hw->conn = evhttp_request_get_connection(req);
        hw->wait = wait;
        hw->kind = kind;
        hw->dropped = dropped;
        bson_strncpy(hw->who, who, sizeof hw->who);
        if (ns)
            memcpy(hw->ns, ns, ns_len + 1); /* checked: <= PROXY_ACTION_NS_MAX, no NUL */
        evhttp_connection_set_closecb(hw->conn, http_closed, hw);
        return;
    case CACHE_DROP_NOT_SENT:
        audit(0, "http", who, kind, ns, "not_shared", dropped);
        http_done(req, ns, dropped, NOT_SHARED_MSG);
        break;
    case CACHE_DROP_DONE:
        audit(0, "http", who, kind, ns, "ok", dropped);
        http_done(req, ns, dropped, NULL);
        break;
    }
    bson_free(hw);
}

void
proxy_action_http_flush(struct evhttp_request *req, void *arg)
{
    struct proxy_server *server = arg;
    char who[128];

    http_who(req, who, sizeof who);
    if (!http_admitted(server, req, PROXY_ACTION_FLUSH, who))
        return;
    if (evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) != NULL) {
        audit(0, "http", who, PROXY_ACTION_FLUSH, NULL, "bad_argument", 0);
        http_error(req, 400, "Bad Request", "/cache/flush takes no query parameter");
        return;
    }
    http_take(server, req, PROXY_ACTION_FLUSH, who, NULL, 0);
}

void
proxy_action_http_invalidate(struct evhttp_request *req, void *arg)
{
    struct proxy_server *server = arg;
    const char *query;
    char *ns;
    size_t ns_len = 0;
    bson_error_t error;
    char who[128];

    http_who(req, who, sizeof who);
    if (!http_admitted(server, req, PROXY_ACTION_INVALIDATE, who))
        return;
    /* One parameter, decoded here once, to its true length: a %00 is seen, not cut at. */
    query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query == NULL || strncmp(query, "namespace=", 10) != 0 || strpbrk(query, "&;") != NULL) {
        audit(0, "http", who, PROXY_ACTION_INVALIDATE, NULL, "bad_argument", 0);
        http_error(
            req, 400, "Bad Request",
            "give the namespace, and nothing else: POST /cache/invalidate?namespace=db.coll");
        return;
    }
    ns = evhttp_uridecode(query + 10, 0, &ns_len); /* "+" stays "+": a name may hold one */
    if (ns == NULL || !proxy_action_ns_check(ns, ns_len, &error)) {
        audit(0, "http", who, PROXY_ACTION_INVALIDATE, NULL, "bad_namespace", 0);
        http_error(req, 400, "Bad Request", ns ? error.message : "the namespace does not decode");
        free(ns);
        return;
    }
    http_take(server, req, PROXY_ACTION_INVALIDATE, who, ns, ns_len);
    free(ns);
}
