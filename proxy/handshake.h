/*
 * proxy/handshake.h: a client's hello and authentication as seen by the
 * request pipeline (see the diagram in request.c): prepare a hello for the
 * upstream, rewrite its reply for the persona, note authentication verdicts.
 */
#ifndef MONGOCACHE_PROXY_HANDSHAKE_H
#define MONGOCACHE_PROXY_HANDSHAKE_H

#include "proxy/auth.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_client;
struct proxy_request;
struct wire_header;

/*
 * Prepares a hello for the upstream: notes what the client asked for and
 * any speculative SCRAM start. Returns the rewritten command in *stripped
 * (initialised here) and true when it differs from cmd.
 */
bool proxy_handshake_prepare_hello(struct proxy_client *c, const bson_t *cmd,
                                   struct proxy_request *req, bson_t *stripped);

/* Notes the verdict of the reply to an authentication step in the client's auth state. */
void proxy_handshake_observe_auth(struct proxy_client *c, enum proxy_auth_step step,
                                  const bson_t *reply);

/* Rewrites a hello reply for the persona. Returns the new message (bson_free). */
uint8_t *proxy_handshake_rewrite_hello(struct proxy_client *c, struct proxy_request *req,
                                       const struct wire_header *h, const bson_t *reply,
                                       int32_t reply_flags, size_t *out_len);

#endif
