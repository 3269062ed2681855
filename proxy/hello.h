/*
 * proxy/hello.h: the handshake persona. The proxy answers hello / isMaster
 * as a mongos would, so that drivers given only its address never discover
 * the replica-set members behind it and connect around it, while retryable
 * writes and transactions stay available (a mongos supports both).
 * Spec: source/mongodb-handshake/handshake.md,
 * source/server-discovery-and-monitoring/server-discovery-and-monitoring.md,
 * source/load-balancers/load-balancers.md.
 */
#ifndef MONGOCACHE_PROXY_HELLO_H
#define MONGOCACHE_PROXY_HELLO_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* What the client's hello asked for, read while preparing it for the upstream. */
struct proxy_hello_request {
    bool load_balanced;          /* loadBalanced: true */
    bool had_compression;        /* a compression list was stripped */
    bool speculative_auth;       /* speculativeAuthenticate present */
};

/*
 * Copies the client's hello command (checked) into out (an initialised,
 * empty bson_t) without `compression` (mongocache never negotiates
 * compression) and without `loadBalanced` (answered by the proxy itself).
 * Returns true when anything was removed, so the caller must forward out
 * instead of the original bytes.
 */
bool proxy_hello_prepare(const bson_t *cmd, bson_t *out, struct proxy_hello_request *req);

/*
 * Builds the persona reply in out (an initialised, empty bson_t) from the
 * upstream's reply (checked): every field kept but the replica-set topology
 * (setName, setVersion, hosts, passives, arbiters, primary, me, secondary,
 * arbiterOnly, passive, hidden, tags, electionId, lastWrite, isreplicaset),
 * topologyVersion (so drivers poll instead of streaming), and compression;
 * then msg: "isdbgrid", and serviceId when the client is load balanced.
 * A reply without ok:1 is copied unchanged. service_id is the proxy's id.
 */
void proxy_hello_rewrite(const bson_t *reply, const struct proxy_hello_request *req,
                         const bson_oid_t *service_id, bson_t *out);

#endif
