/*
 * proxy/handshake.c: what the proxy makes of one client's hello and
 * authentication as they pass through the request pipeline (see the diagram
 * in client.c): the hello sent upstream is prepared (compression and
 * the client's loadBalanced stripped, loadBalanced: true when the upstream
 * is a load balancer, the proxy's own compressors for the upstream
 * offered, a speculative SCRAM start noted, the driver logged; the
 * upstream's choice read from its reply), the hello reply is rewritten for the persona hello.c picks from
 * it (with the proxy's serviceId, max_message_size and the compressors it
 * offers; the upstream's kind is logged when it changes; the compressors
 * agreed are recorded in the client), and each authentication reply's
 * verdict is recorded in the client's auth state.
 *
 * Owns: the calls into proxy/hello.h and proxy/auth.h for one client, and
 * the auth_* and hello_rewritten statistics and log lines. Does not own the
 * persona or the SCRAM parsing themselves (hello.c, auth.c), nor framing,
 * routing or relaying the messages (client.c).
 */
#include "proxy/handshake.h"

#include "conf/log.h"
#include "proxy/auth.h"
#include "proxy/client_internal.h"
#include "proxy/compress.h"
#include "proxy/hello.h"
#include "proxy/server.h"
#include "proxy/topology.h"
#include "proxy/upstream.h"
#include "wire/compress.h"
#include "wire/frame.h"
#include "wire/reply.h"

#include <string.h>

/* Logs the driver and application named in a handshake's client metadata. */
static void
log_client_metadata(struct proxy_client *c, const bson_t *cmd)
{
    bson_iter_t it;
    const char *app = "";
    const char *driver = "";

    if (!conf_log_enabled(CONF_LOG_INFO) || !bson_iter_init(&it, cmd) ||
        !bson_iter_find_descendant(&it, "client.driver.name", &it))
        return;
    if (BSON_ITER_HOLDS_UTF8(&it))
        driver = bson_iter_utf8(&it, NULL);
    if (bson_iter_init(&it, cmd) &&
        bson_iter_find_descendant(&it, "client.application.name", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        app = bson_iter_utf8(&it, NULL);
    conf_log(CONF_LOG_INFO, c->id, "client_hello", "driver=\"%.64s\" app=\"%.64s\"", driver,
             app);
}

/*
 * Prepares a hello for the upstream: notes what the client asked for and
 * any speculative SCRAM start. Returns the rewritten command in *stripped
 * (initialised here) and true when it differs from cmd.
 */
bool
proxy_handshake_prepare_hello(struct proxy_client *c, const bson_t *cmd,
                              struct proxy_request *req, bson_t *stripped)
{
    bson_iter_t it;
    bool changed;

    bool started = false;

    bson_init(stripped);
    changed = proxy_hello_prepare(cmd, stripped, &req->hello);
    if (proxy_server_upstream_load_balanced(c->server)) {
        /* Behind a load balancer, a connection's first hello must say so
         * (else mongos answers LoadBalancerSupportMismatch and closes it);
         * later ones may: every one does. The client's own loadBalanced is
         * the proxy's business (its serviceId), stripped above. */
        BSON_APPEND_BOOL(stripped, "loadBalanced", true);
        changed = true;
    }
    if (c->server->upstream_n_compressors > 0) {
        /* The proxy's own offer to the upstream, whatever the client asked of the proxy. */
        proxy_compress_upstream_offer(c->server, stripped);
        changed = true;
    }
    log_client_metadata(c, cmd);
    if (req->hello.speculative_auth && bson_iter_init_find(&it, cmd, "speculativeAuthenticate") &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t sub;
        bson_iter_t db_it;
        const char *db = NULL;

        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&sub, data, len)) {
            if (bson_iter_init_find(&db_it, &sub, "db") && BSON_ITER_HOLDS_UTF8(&db_it))
                db = bson_iter_utf8(&db_it, NULL);
            proxy_auth_start(&c->auth, &sub, db);
            started = true;
        }
    }
    /* The reply is read as a step's only when one was started (and counted). */
    req->hello.speculative_auth = started;
    return changed;
}

void
proxy_handshake_observe_auth(struct proxy_client *c, enum proxy_auth_step step,
                             const bson_t *reply)
{
    enum proxy_auth_state before = c->auth.state;
    char *attempt = c->auth.pending_name ? bson_strdup(c->auth.pending_name) : NULL;
    enum proxy_auth_state after = proxy_auth_reply(&c->auth, step, reply);

    if (after == PROXY_AUTH_OK && before != PROXY_AUTH_OK) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_auth_success, 1);
        conf_log(CONF_LOG_INFO, c->id, "auth_success", "principal=%s",
                 c->auth.principal_name);
    } else if (after == PROXY_AUTH_FAILED || (after == PROXY_AUTH_UNKNOWN && before != after)) {
        if (after == PROXY_AUTH_FAILED)
            proxy_stats_add(&c->server->stats, PROXY_STAT_auth_failure, 1);
        conf_log(after == PROXY_AUTH_FAILED ? CONF_LOG_WARN : CONF_LOG_INFO, c->id,
                 after == PROXY_AUTH_FAILED ? "auth_failure" : "auth_unknown",
                 "attempted=%s state=%s", attempt ? attempt : "-", proxy_auth_state_name(after));
    }
    bson_free(attempt);
}

/*
 * Logs the persona a hello reply got: every one at debug; at info (warn for
 * a member that is not the primary) when the upstream's kind differs from
 * the previous reply's, whichever client it came to, so that a restart or
 * an election shows once; and once per process when a load-balanced client
 * sits behind a standalone, which will refuse its retryable writes.
 */
static void
log_persona(struct proxy_client *c, const struct proxy_request *req,
            enum proxy_hello_upstream upstream, enum proxy_hello_persona persona)
{
    struct proxy_server *server = c->server;
    bool usable = upstream == PROXY_HELLO_UPSTREAM_STANDALONE ||
                  upstream == PROXY_HELLO_UPSTREAM_MONGOS ||
                  upstream == PROXY_HELLO_UPSTREAM_RS_PRIMARY;

    if (conf_log_enabled(CONF_LOG_DEBUG))
        conf_log(CONF_LOG_DEBUG, c->id, "hello_persona",
                 "upstream=%s persona=%s load_balanced=%d legacy=%d",
                 proxy_hello_upstream_name(upstream), proxy_hello_persona_name(persona),
                 req->hello.load_balanced, req->legacy);
    if (upstream != PROXY_HELLO_UPSTREAM_UNKNOWN && (int)upstream != server->hello_upstream) {
        server->hello_upstream = (int)upstream;
        if (usable)
            conf_log(CONF_LOG_INFO, c->id, "upstream_kind", "upstream=%s persona=%s",
                     proxy_hello_upstream_name(upstream), proxy_hello_persona_name(persona));
        else
            conf_log(CONF_LOG_WARN, c->id, "upstream_kind",
                     "upstream=%s persona=%s msg=\"the upstream is a replica-set member that "
                     "is not the primary: writes and reads with the primary read preference "
                     "get its errors; name the set in upstream (its members and replicaSet=) "
                     "so that connections follow its primary, or a mongos\"",
                     proxy_hello_upstream_name(upstream), proxy_hello_persona_name(persona));
    }
    if (req->hello.load_balanced && upstream == PROXY_HELLO_UPSTREAM_STANDALONE &&
        !server->hello_warned_lb_standalone) {
        server->hello_warned_lb_standalone = true;
        conf_log(CONF_LOG_WARN, c->id, "load_balanced_standalone",
                 "msg=\"a loadBalanced client is behind a standalone upstream: the driver "
                 "adds txnNumber to retryable writes, which a standalone mongod refuses "
                 "(code 20); such clients need retryWrites=false\"");
    }
}

/* Rewrites a hello reply for the persona. Returns the new message (bson_free). */
uint8_t *
proxy_handshake_rewrite_hello(struct proxy_client *c, struct proxy_request *req,
                              const struct wire_header *h, const bson_t *reply,
                              int32_t reply_flags, size_t *out_len)
{
    struct proxy_hello_self self;
    enum proxy_hello_upstream upstream;
    enum proxy_hello_persona persona;
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    uint8_t *bytes;

    if (req->hello.speculative_auth) {
        if (bson_iter_init_find(&it, reply, "speculativeAuthenticate") &&
            BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t sub, verdict = BSON_INITIALIZER;
            bson_iter_t sub_it;

            /* The saslStart reply inside hello: ok by being there. */
            bson_iter_document(&it, &len, &data);
            BSON_APPEND_BOOL(&verdict, "ok", true);
            if (bson_init_static(&sub, data, len) && bson_iter_init(&sub_it, &sub)) {
                while (bson_iter_next(&sub_it)) {
                    const char *key = bson_iter_key(&sub_it);

                    if (strcmp(key, "done") == 0 || strcmp(key, "conversationId") == 0)
                        bson_append_iter(&verdict, key, -1, &sub_it);
                }
            }
            proxy_handshake_observe_auth(c, PROXY_AUTH_STEP_START, &verdict);
            bson_destroy(&verdict);
        } else {
            proxy_auth_abandon(&c->auth);
        }
    }
    if (c->server->upstream_n_compressors > 0) {
        int pick = proxy_compress_upstream_pick(c->server, reply);

        if (pick >= 0 && pick != c->up_compressor) {
            c->up_compressor = pick;
            conf_log(CONF_LOG_DEBUG, c->id, "upstream_compression", "compressor=%s",
                     wire_compress_name(pick));
        }
    }
    self.service_id = c->server->service_id;
    self.max_message_size = c->server->conf->max_message_size;
    self.compressors =
        req->hello.n_compressors > 0 ? proxy_compress_offer(c->server->conf->compressors) : 0;
    persona = proxy_hello_rewrite(reply, &req->hello, &self, &out, &upstream);
    log_persona(c, req, upstream, persona);
    if (upstream == PROXY_HELLO_UPSTREAM_UNKNOWN && !c->server->hello_warned_lb_needed &&
        bson_iter_init_find(&it, reply, "code") && BSON_ITER_HOLDS_NUMBER(&it) &&
        bson_iter_as_int64(&it) == 354 /* LoadBalancerSupportMismatch: any numeric type */) {
        /* The client gets the server's error as it is; the operator gets the fix. */
        c->server->hello_warned_lb_needed = true;
        conf_log(CONF_LOG_WARN, c->id, "upstream_load_balancer",
                 "msg=\"the upstream is reached through a load balancer and refuses hellos "
                 "that do not say so: add loadBalanced=true to upstream\"");
    }
    if (c->up && (upstream == PROXY_HELLO_UPSTREAM_RS_SECONDARY ||
                  upstream == PROXY_HELLO_UPSTREAM_RS_ARBITER ||
                  upstream == PROXY_HELLO_UPSTREAM_RS_OTHER ||
                  upstream == PROXY_HELLO_UPSTREAM_RS_GHOST))
        /* A member new connections go to says it is not primary (a stepdown
         * the monitor has not seen yet): it checks again at once. */
        proxy_topology_recheck(c->server->topology, proxy_upstream_address(c->up),
                               "hello: not primary");
    if (persona != PROXY_HELLO_PERSONA_NONE && self.compressors != 0) {
        /* What the reply offered, the client may now send (and gets back in kind). */
        c->compressors |= proxy_hello_agreed(&req->hello, self.compressors);
        if (conf_log_enabled(CONF_LOG_DEBUG))
            conf_log(CONF_LOG_DEBUG, c->id, "compression_agreed", "mask=0x%x",
                     (unsigned)c->compressors);
    }
    if (req->legacy)
        bytes = wire_reply_op_reply(h->request_id, h->response_to, reply_flags, &out, out_len);
    else
        bytes = wire_reply_msg(h->request_id, h->response_to, &out, out_len);
    bson_destroy(&out);
    proxy_stats_add(&c->server->stats, PROXY_STAT_hello_rewritten, 1);
    return bytes;
}
