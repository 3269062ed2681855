/*
 * proxy/action.h: an operator's actions on the cache, and who may take
 * them. Two doors, one effect (cache_admin_drop: the generation bump of a
 * write, so every proxy sharing the Redis tier drops the entries too; the
 * answer is ok only once Redis confirmed that bump, an error otherwise):
 *   - HTTP: POST /cache/flush and POST /cache/invalidate?namespace=db.coll,
 *     with "Authorization: Bearer <http_token>" (403 when no http_token is
 *     configured: the actions are never open to anyone who can connect);
 *   - in-band, sent through the proxy by a MongoDB shell or driver on the
 *     admin database: {mongocacheStats: 1}, {mongocacheFlush: 1},
 *     {mongocacheInvalidate: "db.coll"}, answered by the proxy (never
 *     forwarded) and allowed to a connection authenticated as a principal
 *     listed in admin_users, or to any connection with admin_commands on.
 * Every action taken or refused is logged at info, one line (event=admin_action).
 */
#ifndef MONGOCACHE_PROXY_ACTION_H
#define MONGOCACHE_PROXY_ACTION_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evhttp_request;
struct proxy_client;
struct proxy_request;
struct proxy_server;

enum proxy_action_kind {
    PROXY_ACTION_NONE, /* not an admin command */
    PROXY_ACTION_STATS,
    PROXY_ACTION_FLUSH,
    PROXY_ACTION_INVALIDATE,
};

/* Longest namespace accepted ("db.coll"; MongoDB's own limit is 255 bytes). */
#define PROXY_ACTION_NS_MAX 255

/* A parsed in-band command. */
struct proxy_action_cmd {
    enum proxy_action_kind kind;
    char ns[PROXY_ACTION_NS_MAX + 1]; /* PROXY_ACTION_INVALIDATE: the namespace */
    size_t ns_len;
};

/* Which admin command a command name is (NULL allowed): NONE for every other command. */
enum proxy_action_kind proxy_action_kind_of(const char *name);

/*
 * Whether ns (len bytes, not necessarily NUL-terminated) is a namespace an
 * action accepts: "db.coll", 3..PROXY_ACTION_NS_MAX bytes of UTF-8 without
 * NUL or control bytes, a database name of 1..64 bytes without any of
 * / \ . " $ space, a collection name that is not empty and has no '$'.
 * False with error->message saying why (error->code: 2, BadValue).
 */
bool proxy_action_ns_check(const char *ns, size_t len, bson_error_t *error);

/*
 * Reads an admin command's body (checked BSON): the first element names
 * it; mongocacheInvalidate's value must be a namespace string
 * (proxy_action_ns_check). False with error set (error->code: the MongoDB
 * code to answer with: 14 TypeMismatch, 2 BadValue, 59 CommandNotFound);
 * out->kind is set whenever the first key names an admin command.
 */
bool proxy_action_cmd_parse(const bson_t *body, struct proxy_action_cmd *out, bson_error_t *error);

/*
 * Whether principal (as cache_key_principal makes it: "5:alice@admin") is
 * one of admin_users ("user@db" entries separated by commas, spaces around
 * them ignored; the last '@' of an entry separates the user from its
 * database). NULL or empty principal: false.
 */
bool proxy_action_user_listed(const char *admin_users, const char *principal);

/*
 * Answers an in-band admin command (body checked, kind not NONE; db its
 * $db) sent by client c as request req: req->canned is the reply (an
 * OP_MSG, ok: 1, or ok: 0 with code, codeName and errmsg as mongod would),
 * req->outcome says whether it is an error. The action is taken here, and
 * logged. With the Redis tier a flush's or an invalidation's ok reply is
 * held by req->write_wait, as a write's ack, until Redis confirmed the
 * bump; if Redis does not, the reply becomes an error (6, HostUnreachable),
 * as it is at once when the tier is unusable.
 */
void proxy_action_answer(struct proxy_client *c, struct proxy_request *req, const bson_t *body,
                         const char *db);

/* POST /cache/flush and POST /cache/invalidate: evhttp callbacks, arg the server. */
void proxy_action_http_flush(struct evhttp_request *req, void *arg);
void proxy_action_http_invalidate(struct evhttp_request *req, void *arg);

#endif
