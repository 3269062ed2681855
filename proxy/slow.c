/*
 * proxy/slow.c: the slow-request log line (see slow.h). Owns the decision
 * (elapsed time against slow_request_ms), the outcome of a request as the
 * line names it, and the line itself. It does not time anything but the
 * reply's moment: started_us is set where the request is created
 * (proxy/client.c push_request), and the shape display comes from index
 * advice's table (proxy_advice_shape_display), never from the request's
 * bytes, so no value of the query can reach the log.
 *
 * Outcomes:
 *   hit    answered from the cache (a stored reply or a proxy cursor of one)
 *   miss   a cacheable read that went to the server (drained or relayed)
 *   error  the reply is an error (ok is not 1), the server's or the proxy's
 *   pass   anything else the server answered (writes, commands, uncacheable reads)
 */
#include "config.h"

#include "proxy/slow.h"

#include "cache/cache.h"
#include "proxy/advice.h"
#include "proxy/client_internal.h"
#include "proxy/log.h"
#include "wire/cmd.h"
#include "wire/frame.h"
#include "wire/msg.h"

#include <string.h>
#include <time.h>

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies n bytes of s into out (size bytes), cut to fit, NUL-terminated. */
static void
copy_cut(char *out, size_t size, const char *s, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void
proxy_slow_note(struct proxy_client *c, struct proxy_request *req, const struct wire_cmd *cmd)
{
    size_t n;

    if (c->server->conf->slow_request_ms <= 0 || !cmd || !cmd->name)
        return;
    copy_cut(req->log_cmd, sizeof req->log_cmd, cmd->name, strlen(cmd->name));
    if (!cmd->db)
        return;
    copy_cut(req->log_ns, sizeof req->log_ns, cmd->db, cmd->db_len);
    n = strlen(req->log_ns);
    if (cmd->coll && n + 1 < sizeof req->log_ns) {
        req->log_ns[n] = '.';
        copy_cut(req->log_ns + n + 1, sizeof req->log_ns - n - 1, cmd->coll, cmd->coll_len);
    }
}

/* Whether body's ok field is 1 (a success). */
static bool
reply_ok(const bson_t *body)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, body, "ok") && bson_iter_as_double(&it) == 1.0;
}

/* Whether req's canned reply (an OP_MSG or OP_REPLY of the proxy's or the server's) is a success.
 */
static bool
canned_ok(const struct proxy_client *c, const struct proxy_request *req)
{
    uint32_t depth = (uint32_t)c->server->conf->max_bson_depth;
    bson_error_t error;
    bson_t body;

    if (req->legacy) {
        struct wire_reply r;

        if (!wire_msg_parse_reply(req->canned, req->canned_len, depth, &r, &error) ||
            r.n_returned < 1 ||
            !bson_init_static(&body, r.docs, (size_t)wire_frame_read_i32(r.docs)))
            return false;
    } else {
        struct wire_msg m;

        if (!wire_msg_parse(req->canned, req->canned_len, depth, &m, &error) ||
            !bson_init_static(&body, m.body, m.body_len))
            return false;
    }
    return reply_ok(&body);
}

static const char *
outcome(const struct proxy_client *c, const struct proxy_request *req, const bson_t *reply)
{
    if (req->hit)
        return req->miss ? "miss" : "hit"; /* a drained miss is served like a hit */
    if (reply ? !reply_ok(reply) : (!req->canned || !canned_ok(c, req)))
        return "error";
    if (req->miss)
        return "miss";
    /* A getMore the proxy answered itself (proxy/lookup.c): a stored result's next batch. */
    if (req->canned && strcmp(req->log_cmd, "getMore") == 0)
        return "hit";
    return "pass";
}

/* Logs req when it is slow; its outcome from outcome() unless given (forced). */
static void
log_if_slow(struct proxy_client *c, const struct proxy_request *req, const bson_t *reply,
            const char *forced)
{
    int64_t limit_ms = c->server->conf->slow_request_ms;
    int64_t elapsed_us;
    uint64_t shape = 0;
    char *display = NULL;

    if (limit_ms <= 0 || req->started_us == 0 || req->internal)
        return;
    elapsed_us = now_us() - req->started_us;
    if (elapsed_us <= limit_ms * 1000)
        return;
    /* The shape the request recorded (a miss or a pass-through), else the one its hit was
     * stored with. */
    if (req->shapes[0] != 0)
        shape = req->shapes[0];
    else if (req->hit)
        shape = cache_value_tag(req->hit);
    if (shape != 0)
        display = proxy_advice_shape_display(c->server->advice, shape);
    proxy_log(PROXY_LOG_INFO, c->id, "slow_request",
              "duration_ms=%.1f threshold_ms=%lld outcome=%s cmd=%s ns=%s shape=%s request_id=%d",
              (double)elapsed_us / 1000.0, (long long)limit_ms,
              forced ? forced : outcome(c, req, reply), req->log_cmd[0] ? req->log_cmd : "-",
              req->log_ns[0] ? req->log_ns : "-", display ? display : "-", req->request_id);
    bson_free(display);
}

void
proxy_slow_reply(struct proxy_client *c, const struct proxy_request *req, const bson_t *reply)
{
    log_if_slow(c, req, reply, NULL);
}

void
proxy_slow_error(struct proxy_client *c, const struct proxy_request *req)
{
    log_if_slow(c, req, NULL, "error");
}
