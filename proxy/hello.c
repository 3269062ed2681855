/*
 * proxy/hello.c: rewriting the handshake both ways (see hello.h for the
 * persona each kind of upstream gets, and why). Pure document
 * transformations: no I/O, no state. Wire versions,
 * logicalSessionTimeoutMinutes, connectionId, saslSupportedMechs,
 * speculativeAuthenticate, $clusterTime and operationTime pass through as
 * the upstream sent them; the size limits only ever go down.
 *
 * Does not own: where the reply goes (handshake.c re-frames it as OP_MSG or
 * OP_REPLY, whichever the client's hello came in), logging, statistics.
 */
#include "proxy/hello.h"

#include "wire/names.h"

#include <string.h>

/* Drivers' defaults when a hello reply lacks the limits (handshake.md). */
#define HELLO_DEFAULT_MAX_MESSAGE 48000000
#define HELLO_DEFAULT_MAX_BSON (16 * 1024 * 1024)

/*
 * What a message holds besides its largest document: a server accepts a
 * command up to 16 KiB larger than maxBsonObjectSize (for the fields around
 * the documents), plus the wire framing (header, flag bits, section kinds,
 * a document sequence's size and name, checksum), rounded up to 64 bytes.
 */
#define HELLO_ENVELOPE (16 * 1024 + 64)

/* Dropped whatever the persona: what the proxy does not support or answers itself. */
static bool
dropped_always(enum wire_name key)
{
    switch (key) {
    case WIRE_NAME_TOPOLOGY_VERSION:
    case WIRE_NAME_COMPRESSION:
    case WIRE_NAME_SERVICE_ID:
        return true;
    default:
        return false;
    }
}

/* Dropped for the mongos persona of a replica-set member: the set's topology. */
static bool
dropped_member(enum wire_name key)
{
    switch (key) {
    case WIRE_NAME_SET_NAME:
    case WIRE_NAME_SET_VERSION:
    case WIRE_NAME_HOSTS:
    case WIRE_NAME_PASSIVES:
    case WIRE_NAME_ARBITERS:
    case WIRE_NAME_PRIMARY:
    case WIRE_NAME_ME:
    case WIRE_NAME_SECONDARY:
    case WIRE_NAME_ARBITER_ONLY:
    case WIRE_NAME_PASSIVE:
    case WIRE_NAME_HIDDEN:
    case WIRE_NAME_TAGS:
    case WIRE_NAME_ELECTION_ID:
    case WIRE_NAME_LAST_WRITE:
    case WIRE_NAME_ISREPLICASET:
    case WIRE_NAME_MSG:
        return true;
    default:
        return false;
    }
}

void
proxy_hello_read_compressors(const bson_iter_t *field, struct proxy_hello_request *req)
{
    uint32_t seen = 0;
    bson_iter_t it;

    for (uint8_t i = 0; i < req->n_compressors; i++)
        seen |= 1u << req->compressors[i];
    if (!BSON_ITER_HOLDS_ARRAY(field) || !bson_iter_recurse(field, &it))
        return;
    while (bson_iter_next(&it) && req->n_compressors < WIRE_COMPRESSOR_COUNT) {
        uint32_t len;
        const char *name;
        int id;

        if (!BSON_ITER_HOLDS_UTF8(&it))
            continue;
        name = bson_iter_utf8(&it, &len);
        id = wire_compress_lookup(name, len);
        if (id < 0 || (seen & (1u << id)))
            continue;
        seen |= 1u << id;
        req->compressors[req->n_compressors++] = (uint8_t)id;
    }
}

uint32_t
proxy_hello_agreed(const struct proxy_hello_request *req, uint32_t offer)
{
    uint32_t mask = 0;

    for (uint8_t i = 0; i < req->n_compressors; i++)
        mask |= 1u << req->compressors[i];
    return mask & offer;
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
        enum wire_name id = wire_names_lookup(key, bson_iter_key_len(&it));

        if (id == WIRE_NAME_COMPRESSION) {
            req->had_compression = true;
            changed = true;
            proxy_hello_read_compressors(&it, req);
            continue;
        }
        if (id == WIRE_NAME_LOAD_BALANCED) {
            req->load_balanced = bson_iter_as_bool(&it);
            changed = true;
            continue;
        }
        if (id == WIRE_NAME_SPECULATIVE_AUTHENTICATE)
            req->speculative_auth = true;
        bson_append_iter(out, key, (int)bson_iter_key_len(&it), &it);
    }
    return changed;
}

/* The boolean value of a top-level field; false when absent. */
static bool
field_true(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, doc, key) && bson_iter_as_bool(&it);
}

enum proxy_hello_upstream
proxy_hello_classify(const bson_t *reply)
{
    bson_iter_t it;

    if (!field_true(reply, "ok"))
        return PROXY_HELLO_UPSTREAM_UNKNOWN;
    /* SDAM: "any server is an RSGhost that reports isreplicaset: true". */
    if (field_true(reply, "isreplicaset"))
        return PROXY_HELLO_UPSTREAM_RS_GHOST;
    if (bson_iter_init_find(&it, reply, "setName")) {
        if (field_true(reply, "hidden"))
            return PROXY_HELLO_UPSTREAM_RS_OTHER;
        if (bson_iter_init_find(&it, reply, "isWritablePrimary") ||
            bson_iter_init_find(&it, reply, "ismaster")) {
            if (bson_iter_as_bool(&it))
                return PROXY_HELLO_UPSTREAM_RS_PRIMARY;
        }
        if (field_true(reply, "secondary"))
            return PROXY_HELLO_UPSTREAM_RS_SECONDARY;
        if (field_true(reply, "arbiterOnly"))
            return PROXY_HELLO_UPSTREAM_RS_ARBITER;
        return PROXY_HELLO_UPSTREAM_RS_OTHER;
    }
    if (bson_iter_init_find(&it, reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0)
        return PROXY_HELLO_UPSTREAM_MONGOS;
    return PROXY_HELLO_UPSTREAM_STANDALONE;
}

enum proxy_hello_persona
proxy_hello_persona_for(enum proxy_hello_upstream upstream)
{
    switch (upstream) {
    case PROXY_HELLO_UPSTREAM_UNKNOWN:
        return PROXY_HELLO_PERSONA_NONE;
    case PROXY_HELLO_UPSTREAM_STANDALONE:
        return PROXY_HELLO_PERSONA_STANDALONE;
    case PROXY_HELLO_UPSTREAM_MONGOS:
    case PROXY_HELLO_UPSTREAM_RS_GHOST:
    case PROXY_HELLO_UPSTREAM_RS_PRIMARY:
    case PROXY_HELLO_UPSTREAM_RS_SECONDARY:
    case PROXY_HELLO_UPSTREAM_RS_ARBITER:
    case PROXY_HELLO_UPSTREAM_RS_OTHER:
        return PROXY_HELLO_PERSONA_MONGOS;
    }
    return PROXY_HELLO_PERSONA_NONE;
}

const char *
proxy_hello_upstream_name(enum proxy_hello_upstream upstream)
{
    switch (upstream) {
    case PROXY_HELLO_UPSTREAM_UNKNOWN:
        return "unknown";
    case PROXY_HELLO_UPSTREAM_MONGOS:
        return "mongos";
    case PROXY_HELLO_UPSTREAM_RS_GHOST:
        return "rs_ghost";
    case PROXY_HELLO_UPSTREAM_RS_PRIMARY:
        return "rs_primary";
    case PROXY_HELLO_UPSTREAM_RS_SECONDARY:
        return "rs_secondary";
    case PROXY_HELLO_UPSTREAM_RS_ARBITER:
        return "rs_arbiter";
    case PROXY_HELLO_UPSTREAM_RS_OTHER:
        return "rs_other";
    case PROXY_HELLO_UPSTREAM_STANDALONE:
        return "standalone";
    }
    return "unknown";
}

const char *
proxy_hello_persona_name(enum proxy_hello_persona persona)
{
    switch (persona) {
    case PROXY_HELLO_PERSONA_NONE:
        return "none";
    case PROXY_HELLO_PERSONA_STANDALONE:
        return "standalone";
    case PROXY_HELLO_PERSONA_MONGOS:
        return "mongos";
    }
    return "none";
}

int64_t
proxy_hello_max_message_size(int64_t upstream, int64_t proxy_max)
{
    int64_t limit = upstream > 0 ? upstream : HELLO_DEFAULT_MAX_MESSAGE;

    return proxy_max > 0 && proxy_max < limit ? proxy_max : limit;
}

int64_t
proxy_hello_max_bson_size(int64_t upstream, int64_t proxy_max)
{
    int64_t limit = upstream > 0 ? upstream : HELLO_DEFAULT_MAX_BSON;
    int64_t cap;

    if (proxy_max <= 0)
        return limit;
    /* A tiny max_message_size (its floor is 16 bytes) still gets a positive limit. */
    cap = proxy_max - HELLO_ENVELOPE;
    if (cap < proxy_max / 2)
        cap = proxy_max / 2;
    return cap < limit ? cap : limit;
}

/*
 * Appends a size limit: the upstream's own element when the proxy does not
 * lower it (same value, same BSON type), else the proxy's as an int32.
 */
static void
append_limit(bson_t *out, const char *key, const bson_iter_t *it, int64_t advertised)
{
    if (it && BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == advertised) {
        bson_append_iter(out, key, -1, it);
        return;
    }
    BSON_APPEND_INT32(out, key, (int32_t)advertised);
}

/* The upstream's value of a limit, or 0 when absent or not a number. */
static int64_t
limit_value(const bson_iter_t *it)
{
    return BSON_ITER_HOLDS_NUMBER(it) ? bson_iter_as_int64(it) : 0;
}

enum proxy_hello_persona
proxy_hello_rewrite(const bson_t *reply, const struct proxy_hello_request *req,
                    const struct proxy_hello_self *self, bson_t *out,
                    enum proxy_hello_upstream *upstream)
{
    enum proxy_hello_upstream kind = proxy_hello_classify(reply);
    enum proxy_hello_persona persona = proxy_hello_persona_for(kind);
    bool member = persona == PROXY_HELLO_PERSONA_MONGOS && kind != PROXY_HELLO_UPSTREAM_MONGOS;
    bool seen_msg_size = false, seen_bson_size = false;
    bson_iter_t it;

    if (upstream)
        *upstream = kind;
    if (persona == PROXY_HELLO_PERSONA_NONE || !bson_iter_init(&it, reply)) {
        bson_concat(out, reply);
        return PROXY_HELLO_PERSONA_NONE;
    }
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        enum wire_name id = wire_names_lookup(key, bson_iter_key_len(&it));

        if (dropped_always(id) || (member && dropped_member(id)))
            continue;
        if (id == WIRE_NAME_OK) {
            /* Keep ok last, after the fields the proxy adds. */
            continue;
        }
        if (id == WIRE_NAME_MAX_MESSAGE_SIZE_BYTES) {
            seen_msg_size = true;
            append_limit(out, key, &it,
                         proxy_hello_max_message_size(limit_value(&it), self->max_message_size));
            continue;
        }
        if (id == WIRE_NAME_MAX_BSON_OBJECT_SIZE) {
            seen_bson_size = true;
            append_limit(out, key, &it,
                         proxy_hello_max_bson_size(limit_value(&it), self->max_message_size));
            continue;
        }
        bson_append_iter(out, key, (int)bson_iter_key_len(&it), &it);
    }
    /* A reply without the limits means the defaults; say so only when the proxy's are lower. */
    if (!seen_bson_size &&
        proxy_hello_max_bson_size(0, self->max_message_size) < HELLO_DEFAULT_MAX_BSON)
        append_limit(out, "maxBsonObjectSize", NULL,
                     proxy_hello_max_bson_size(0, self->max_message_size));
    if (!seen_msg_size &&
        proxy_hello_max_message_size(0, self->max_message_size) < HELLO_DEFAULT_MAX_MESSAGE)
        append_limit(out, "maxMessageSizeBytes", NULL,
                     proxy_hello_max_message_size(0, self->max_message_size));
    if (member)
        BSON_APPEND_UTF8(out, "msg", "isdbgrid");
    if (req->load_balanced)
        BSON_APPEND_OID(out, "serviceId", &self->service_id);
    if (req->n_compressors > 0 && proxy_hello_agreed(req, self->compressors) != 0) {
        bson_t list;
        uint32_t n = 0;

        BSON_APPEND_ARRAY_BEGIN(out, "compression", &list);
        for (uint8_t i = 0; i < req->n_compressors; i++) {
            char index[16];
            const char *key;

            if (!(self->compressors & (1u << req->compressors[i])))
                continue;
            bson_uint32_to_string(n++, &key, index, sizeof index);
            BSON_APPEND_UTF8(&list, key, wire_compress_name(req->compressors[i]));
        }
        bson_append_array_end(out, &list);
    }
    BSON_APPEND_DOUBLE(out, "ok", 1.0);
    return persona;
}
