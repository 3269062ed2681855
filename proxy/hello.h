/*
 * proxy/hello.h: the handshake persona. The proxy forwards each client's
 * hello / isMaster on the client's own upstream connection, and what the
 * upstream's reply says it is decides what the client is told:
 *
 *   upstream (SDAM type)                   persona
 *   standalone mongod                      standalone: the reply as it is
 *   replica-set member (primary,           mongos: msg "isdbgrid", none of the
 *     secondary, arbiter, other, ghost)      set's topology fields
 *   mongos                                 mongos: the reply as it is
 *
 * A replica-set member's own reply would make drivers discover the members
 * and connect to them around the proxy; as a mongos, retryable writes and
 * transactions stay available. A standalone stays a standalone because a
 * standalone mongod refuses what drivers add for a mongos (txnNumber on
 * every retryable write: code 20 "Transaction numbers are only allowed on a
 * replica set member or mongos"). Every member state maps to the same
 * persona because a driver in a Sharded topology removes a server whose
 * type turns into anything but Mongos or Unknown: an election must not
 * make drivers drop the proxy.
 *
 * Whatever the persona, the proxy strips what it does not support
 * (topologyVersion, which would turn on streaming hello), answers the
 * client's compression list with its own intersection (the upstream's list
 * is the upstream link's business), answers loadBalanced clients with its
 * own serviceId, and lowers the size limits to its own max_message_size.
 *
 * Spec: source/mongodb-handshake/handshake.md,
 * source/server-discovery-and-monitoring/server-discovery-and-monitoring.md
 * ("Parsing a hello or legacy hello response", "TopologyType table"),
 * source/retryable-writes/retryable-writes.md ("Determining Retryable Write
 * Support"), source/load-balancers/load-balancers.md.
 */
#ifndef MONGOCACHE_PROXY_HELLO_H
#define MONGOCACHE_PROXY_HELLO_H

#include "wire/compress.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* What the client's hello asked for, read while preparing it for the upstream. */
struct proxy_hello_request {
    bool load_balanced;          /* loadBalanced: true */
    bool had_compression;        /* a compression list was stripped */
    bool speculative_auth;       /* speculativeAuthenticate present */
    /* The compressors the client's `compression` list names (OP_COMPRESSED.md ids), in its
     * order, each once; names the proxy does not know are left out. */
    uint8_t n_compressors;
    uint8_t compressors[WIRE_COMPRESSOR_COUNT];
};

/*
 * What a hello reply says the upstream is: the server types of SDAM
 * "Parsing a hello or legacy hello response", in the order it checks them.
 */
enum proxy_hello_upstream {
    PROXY_HELLO_UPSTREAM_UNKNOWN,      /* no ok:1 (an error reply) */
    PROXY_HELLO_UPSTREAM_MONGOS,       /* msg: "isdbgrid" */
    PROXY_HELLO_UPSTREAM_RS_GHOST,     /* isreplicaset: true */
    PROXY_HELLO_UPSTREAM_RS_PRIMARY,   /* setName, isWritablePrimary (or ismaster): true */
    PROXY_HELLO_UPSTREAM_RS_SECONDARY, /* setName, secondary: true */
    PROXY_HELLO_UPSTREAM_RS_ARBITER,   /* setName, arbiterOnly: true */
    PROXY_HELLO_UPSTREAM_RS_OTHER,     /* setName, hidden, or none of the above */
    PROXY_HELLO_UPSTREAM_STANDALONE,   /* none of the above */
};

/* What the client is told it is talking to. */
enum proxy_hello_persona {
    PROXY_HELLO_PERSONA_NONE,       /* an error reply, relayed unchanged */
    PROXY_HELLO_PERSONA_STANDALONE, /* the upstream's reply minus what the proxy lacks */
    PROXY_HELLO_PERSONA_MONGOS,     /* msg: "isdbgrid", no replica-set fields */
};

/* The proxy's own side of every hello reply. */
struct proxy_hello_self {
    bson_oid_t service_id;    /* given to loadBalanced clients */
    int64_t max_message_size; /* the proxy's limit on one wire message, both ways */
    uint32_t compressors;     /* the compressors offered to clients: bit (1 << id); read only
                               * when the client's hello listed some */
};

/*
 * Copies the client's hello command (checked) into out (an initialised,
 * empty bson_t) without `compression` (negotiated by the proxy itself, its
 * list kept in req; the upstream link negotiates its own) and without
 * `loadBalanced` (answered by the proxy itself).
 * Returns true when anything was removed, so the caller must forward out
 * instead of the original bytes.
 */
bool proxy_hello_prepare(const bson_t *cmd, bson_t *out, struct proxy_hello_request *req);

/*
 * Keeps in req the compressors a `compression` array (field: at it, in a
 * hello or its reply) names, in its order, each once, after those req
 * holds. Anything else in it (an unknown name, a non-string, not an array)
 * is skipped: the spec has drivers leave out what they do not support, and
 * a server ignores what it does not know.
 */
void proxy_hello_read_compressors(const bson_iter_t *field, struct proxy_hello_request *req);

/* The compressors both req's list and offer (bit (1 << id)) name, as such a mask. */
uint32_t proxy_hello_agreed(const struct proxy_hello_request *req, uint32_t offer);

/* Reads the upstream's server type from its hello reply (checked, borrowed). */
enum proxy_hello_upstream proxy_hello_classify(const bson_t *reply);

/* The persona a reply from this kind of upstream gets (see the table above). */
enum proxy_hello_persona proxy_hello_persona_for(enum proxy_hello_upstream upstream);

/* Lower-case names for logs: "rs_secondary", "mongos", ... (static strings). */
const char *proxy_hello_upstream_name(enum proxy_hello_upstream upstream);
const char *proxy_hello_persona_name(enum proxy_hello_persona persona);

/*
 * The limits advertised for an upstream limit and the proxy's
 * max_message_size: maxMessageSizeBytes is the smaller of the two;
 * maxBsonObjectSize leaves room, inside the proxy's limit, for the wire
 * framing and the command around the largest document (drivers split
 * batches by maxBsonObjectSize as well as maxMessageSizeBytes, and a server
 * accepts a command 16 KiB over maxBsonObjectSize). upstream <= 0 means
 * "not in the reply" and stands for the drivers' defaults (48000000 and
 * 16 MiB).
 */
int64_t proxy_hello_max_message_size(int64_t upstream, int64_t proxy_max);
int64_t proxy_hello_max_bson_size(int64_t upstream, int64_t proxy_max);

/*
 * Builds the reply for the client in out (an initialised, empty bson_t)
 * from the upstream's reply (checked, borrowed), and returns the persona it
 * was given. A reply without ok:1 is copied unchanged (PERSONA_NONE).
 * Otherwise, for every persona: topologyVersion (so drivers poll instead
 * of streaming), the upstream's compression and serviceId are dropped, the
 * proxy's own `compression` is added when the client listed compressors
 * that self->compressors offers (the intersection, in the client's order:
 * proxy_hello_agreed; OP_COMPRESSED.md "MongoDB Handshake Amendment";
 * none in common: no field), maxMessageSizeBytes
 * and maxBsonObjectSize are lowered to the proxy's limits (added when the
 * reply lacks them and the default is above the limit), and a load-balanced
 * client gets self->service_id. The mongos persona of a replica-set member
 * also drops setName, setVersion, hosts, passives, arbiters, primary, me,
 * secondary, arbiterOnly, passive, hidden, tags, electionId, lastWrite and
 * isreplicaset, and adds msg: "isdbgrid". *upstream (may be NULL) receives
 * the classification.
 */
enum proxy_hello_persona proxy_hello_rewrite(const bson_t *reply,
                                             const struct proxy_hello_request *req,
                                             const struct proxy_hello_self *self, bson_t *out,
                                             enum proxy_hello_upstream *upstream);

#endif
