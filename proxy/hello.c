/*
 * proxy/hello.c: rewriting the handshake both ways for the mongos persona
 * (see hello.h for why). Pure document transformations: no I/O, no state.
 * Wire versions, size limits, logicalSessionTimeoutMinutes, connectionId,
 * saslSupportedMechs and speculativeAuthenticate pass through as the
 * upstream sent them.
 */
#include "proxy/hello.h"

#include <string.h>

/* Reply fields that describe a replica set, or would enable streaming. */
static const char *const dropped_reply_fields[] = {
    "setName", "setVersion", "hosts", "passives", "arbiters", "primary", "me", "secondary",
    "arbiterOnly", "passive", "hidden", "tags", "electionId", "lastWrite", "isreplicaset",
    "topologyVersion", "compression", "msg", "serviceId", NULL,
};

static bool
in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

bool
proxy_hello_prepare(const bson_t *cmd, bson_t *out, struct proxy_hello_request *req)
{
    bson_iter_t it;
    bool changed = false;

    memset(req, 0, sizeof *req);
    if (!bson_iter_init(&it, cmd))
        return false;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (strcmp(key, "compression") == 0) {
            req->had_compression = true;
            changed = true;
            continue;
        }
        if (strcmp(key, "loadBalanced") == 0) {
            req->load_balanced = bson_iter_as_bool(&it);
            changed = true;
            continue;
        }
        if (strcmp(key, "speculativeAuthenticate") == 0)
            req->speculative_auth = true;
        bson_append_iter(out, key, (int)bson_iter_key_len(&it), &it);
    }
    return changed;
}

void
proxy_hello_rewrite(const bson_t *reply, const struct proxy_hello_request *req,
                    const bson_oid_t *service_id, bson_t *out)
{
    bson_iter_t it;
    bool ok = false;

    if (bson_iter_init_find(&it, reply, "ok"))
        ok = bson_iter_as_bool(&it);
    if (!ok || !bson_iter_init(&it, reply)) {
        bson_concat(out, reply);
        return;
    }
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);

        if (in_list(key, dropped_reply_fields))
            continue;
        if (strcmp(key, "ok") == 0) {
            /* Keep ok last, after the fields the proxy adds. */
            continue;
        }
        bson_append_iter(out, key, (int)bson_iter_key_len(&it), &it);
    }
    BSON_APPEND_UTF8(out, "msg", "isdbgrid");
    if (req->load_balanced)
        BSON_APPEND_OID(out, "serviceId", service_id);
    BSON_APPEND_DOUBLE(out, "ok", 1.0);
}
