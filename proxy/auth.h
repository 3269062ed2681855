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
    PROXY_AUTH_UNKNOWN,     /* several principals, overlapping conversations, or a
                             * mechanism the proxy cannot follow: final */
};

/* Which step of a conversation a request or its reply is. */
enum proxy_auth_step {
    PROXY_AUTH_STEP_START,    /* saslStart, or hello with speculativeAuthenticate */
    PROXY_AUTH_STEP_CONTINUE, /* saslContinue */
};

/*
 * One connection's authentication as observed. A verdict is bound to the
 * conversation it ends: the user named by the saslStart whose reply opened
 * that conversation (its conversationId), credited only by a done:true reply
 * to a step of that same conversation. Drivers authenticate one step at a
 * time, so a step sent while another is still awaiting its reply (a client
 * pipelining SCRAM to have one user's verdict credited to another) makes the
 * state UNKNOWN for good: the connection never uses the cache.
 */
struct proxy_auth {
    enum proxy_auth_state state;
    uint32_t in_flight;   /* steps sent whose replies have not come back */
    bool open;            /* a conversation is open: its saslStart reply came back */
    bool have_conv_id;    /* that reply named a conversationId */
    int64_t conv_id;      /* ... which every saslContinue must carry */
    char *pending;        /* the conversation's principal (cache_key_principal), owned */
    char *pending_name;   /* ... as "user@db", for logs, owned */
    char *principal;      /* the confirmed principal (cache_key_principal), owned, or NULL */
    char *principal_name; /* ... as "user@db", for logs, owned */
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

/* A saslContinue (cmd, checked) is on its way up. */
void proxy_auth_continue(struct proxy_auth *auth, const bson_t *cmd);

/*
 * The upstream answered a step (for a hello carrying speculativeAuthenticate:
 * pass STEP_START and the speculativeAuthenticate subdocument with ok:1
 * added). reply is the reply body. Returns the new state.
 */
enum proxy_auth_state proxy_auth_reply(struct proxy_auth *auth, enum proxy_auth_step step,
                                       const bson_t *reply);

/* A speculative attempt the upstream ignored (its hello reply has none): the driver starts over. */
void proxy_auth_abandon(struct proxy_auth *auth);

/* An authentication the proxy cannot follow (authenticate, X.509, logout): final. */
void proxy_auth_unknown(struct proxy_auth *auth);

const char *proxy_auth_state_name(enum proxy_auth_state state);

#endif
