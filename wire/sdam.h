/*
 * wire/sdam.h: a server's reply that says the server is not what the client
 * took it for: the "not writable primary" and "node is recovering" errors of
 * source/server-discovery-and-monitoring/server-discovery-and-monitoring.md
 * ("not writable primary" and "node is recovering"), read from a command
 * reply or its writeConcernError (never from writeErrors). proxy/client.c
 * tells the topology monitor to check again at once when a server it sends
 * new connections to answers so (proxy/topology.h).
 */
#ifndef MONGOCACHE_WIRE_SDAM_H
#define MONGOCACHE_WIRE_SDAM_H

#include <bson/bson.h>
#include <stdint.h>

enum wire_sdam_error {
    WIRE_SDAM_NONE = 0,
    WIRE_SDAM_NOT_PRIMARY, /* 10107 NotWritablePrimary, 13435, 10058; no code: "not master" */
    WIRE_SDAM_RECOVERING,  /* 11602, 13436, 189; no code: "node is recovering" or "not master
                            * or secondary" */
    WIRE_SDAM_SHUTDOWN,    /* 11600 InterruptedAtShutdown, 91 ShutdownInProgress */
};

/*
 * What reply (a command's reply document, borrowed) says: an error of the
 * lists above in its top level when ok is false, or in its
 * writeConcernError; the code found (0: matched by errmsg, or none) in
 * *code when not NULL. The code alone decides when there is one, as the
 * specification says; the message is read only without a code.
 */
enum wire_sdam_error wire_sdam_classify(const bson_t *reply, int32_t *code);

/* "NotWritablePrimary", "NodeIsRecovering", "ShutdownInProgress" or "" (NONE). */
const char *wire_sdam_name(enum wire_sdam_error e);

#endif
