/*
 * proxy/auth.h: observing SCRAM authentication as it passes through, to know
 * which principal ("user@db") a connection is authenticated as. The proxy
 * never knows a password and never changes an auth message: it reads the
 * user name from the SCRAM client-first message (saslStart, or
 * speculativeAuthenticate inside hello) and believes it only when the
 * upstream answers ok:1 with done:true on the same connection.
 * Spec: source/auth/auth.md (SCRAM-SHA-1, SCRAM-SHA-256, speculative auth).
 */
#ifndef MONGOCACHE_PROXY_AUTH_H
#define MONGOCACHE_PROXY_AUTH_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

enum proxy_auth_state {
    PROXY_AUTH_NONE,        /* nothing attempted */
    PROXY_AUTH_IN_PROGRESS, /* a conversation has started, no verdict yet */
    PROXY_AUTH_OK,          /* exactly one principal, confirmed by the upstream */
    PROXY_AUTH_FAILED,      /* the last attempt was refused */
    PROXY_AUTH_UNKNOWN,     /* several principals, or a mechanism the proxy cannot follow */
};

struct proxy_auth {
    enum proxy_auth_state state;
    char *pending;   /* "user@db" of the conversation in progress, owned, or NULL */
    char *principal; /* "user@db" once confirmed, owned, or NULL */
};

void proxy_auth_init(struct proxy_auth *auth);
void proxy_auth_cleanup(struct proxy_auth *auth);

/*
 * Reads the user name from a SCRAM client-first message
 * ("n,,n=USER,r=NONCE", with "=2C" and "=3D" decoded). Returns a string
 * freed with bson_free, or NULL if payload is not such a message.
 */
char *proxy_auth_scram_user(const uint8_t *payload, uint32_t len);

/*
 * A saslStart (or the saslStart inside speculativeAuthenticate) is on its way
 * up. cmd is that command document (checked), db the database it
 * authenticates against.
 */
void proxy_auth_start(struct proxy_auth *auth, const bson_t *cmd, const char *db);

/*
 * The upstream answered a saslStart/saslContinue (or a hello carrying
 * speculativeAuthenticate: pass the speculativeAuthenticate subdocument and
 * ok=true). reply is the reply body. Returns the new state.
 */
enum proxy_auth_state proxy_auth_reply(struct proxy_auth *auth, const bson_t *reply);

/* A speculative attempt the upstream ignored: the driver starts over. */
void proxy_auth_abandon(struct proxy_auth *auth);

/* An authentication the proxy cannot follow (authenticate, X.509, logout). */
void proxy_auth_unknown(struct proxy_auth *auth);

const char *proxy_auth_state_name(enum proxy_auth_state state);

#endif
