/*
 * proxy/slow.c: the slow-request log line (see slow.h). Owns the decision
 * (elapsed time against slow_request_ms) and the line itself. It times
 * nothing and decides no outcome: proxy_client_observe (client_internal.h)
 * hands it the time since started_us and the outcome the latency
 * histograms count (hit, miss, pass_through, error: proxy/stats.h), and
 * the shape display comes from index advice's table
 * (proxy_advice_shape_display), never from the request's bytes, so no
 * value of the query can reach the log.
 */
#include "config.h"

#include "proxy/slow.h"

#include "cache/cache.h"
#include "conf/log.h"
#include "proxy/advice.h"
#include "proxy/client_internal.h"
#include "wire/cmd.h"

#include <string.h>

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

/*
 * Logs req when it was slow: elapsed_us since it was taken from the
 * client's buffer, outcome as the latency histograms count it.
 */
void
proxy_slow_log(struct proxy_client *c, const struct proxy_request *req,
               enum proxy_outcome outcome, int64_t elapsed_us)
{
    int64_t limit_ms = c->server->conf->slow_request_ms;
    uint64_t shape = 0;
    char *display = NULL;

    if (limit_ms <= 0 || req->internal || elapsed_us <= limit_ms * 1000)
        return;
    /* The shape the request recorded (a miss or a pass-through), else the one its hit was
     * stored with. */
    if (req->shapes[0] != 0)
        shape = req->shapes[0];
    else if (req->hit)
        shape = cache_value_tag(req->hit);
    if (shape != 0)
        display = proxy_advice_shape_display(c->server->advice, shape);
    conf_log(CONF_LOG_INFO, c->id, "slow_request",
             "duration_ms=%.1f threshold_ms=%lld outcome=%s cmd=%s ns=%s shape=%s request_id=%d",
             (double)elapsed_us / 1000.0, (long long)limit_ms, proxy_stats_outcome_name(outcome),
             req->log_cmd[0] ? req->log_cmd : "-", req->log_ns[0] ? req->log_ns : "-",
             display ? display : "-", req->request_id);
    bson_free(display);
}
