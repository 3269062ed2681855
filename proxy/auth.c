/*
 * proxy/auth.c: the SCRAM observer. Owns a connection's authentication state
 * machine (none -> in progress -> ok | failed, or unknown when it cannot
 * tell) and the conversation a verdict belongs to (see struct proxy_auth).
 * Does not forward anything, log anything, or touch passwords: the only
 * part of a SCRAM payload it reads is the user name of client-first. How a
 * principal is named for the cache is cache/key.c's.
 */
#include "proxy/auth.h"

#include "cache/key.h"

#include <string.h>

static const char *const state_names[] = {"none", "in_progress", "ok", "failed", "unknown"};

/* Forgets the conversation in progress (not the confirmed principal). */
static void
conversation_clear(struct proxy_auth *auth)
{
    bson_free(auth->pending);
    bson_free(auth->pending_name);
    auth->pending = NULL;
    auth->pending_name = NULL;
    auth->open = false;
    auth->have_conv_id = false;
    auth->conv_id = 0;
}

void
proxy_auth_init(struct proxy_auth *auth)
{
    memset(auth, 0, sizeof *auth);
}

void
proxy_auth_cleanup(struct proxy_auth *auth)
{
    conversation_clear(auth);
    bson_free(auth->principal);
    bson_free(auth->principal_name);
    memset(auth, 0, sizeof *auth);
}

const char *
proxy_auth_state_name(enum proxy_auth_state state)
{
    return state_names[state];
}

char *
proxy_auth_scram_user(const uint8_t *payload, uint32_t len)
{
    const char *p = (const char *)payload;
    const char *end = p + len;
    const char *name;
    char *user;
    size_t n = 0;

    /* gs2 header: "n," or "y," then an optional "a=authzid", then ",". */
    if (len < 3 || (p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return NULL;
    p += 2;
    while (p < end && *p != ',')
        p++;
    if (p >= end)
        return NULL;
    p++;
    if (end - p < 2 || p[0] != 'n' || p[1] != '=')
        return NULL;
    name = p + 2;
    for (p = name; p < end && *p != ','; p++)
        ;
    if (p >= end || p == name)
        return NULL;

    user = bson_malloc((size_t)(p - name) + 1);
    for (const char *q = name; q < p; q++) {
        if (*q == '\0') {
            bson_free(user);
            return NULL;
        }
        if (*q == '=') {
            /* RFC 5802: only "=2C" (",") and "=3D" ("=") may follow '='. */
            if (p - q >= 3 && q[1] == '2' && q[2] == 'C')
                user[n++] = ',';
            else if (p - q >= 3 && q[1] == '3' && q[2] == 'D')
                user[n++] = '=';
            else {
                bson_free(user);
                return NULL;
            }
            q += 2;
            continue;
        }
        user[n++] = *q;
    }
    user[n] = '\0';
    return user;
}

/* A conversationId as sent or answered (an int32 for mongod, int64 allowed). */
static bool
conversation_id(const bson_t *doc, int64_t *id)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, "conversationId"))
        return false;
    if (BSON_ITER_HOLDS_INT32(&it))
        *id = bson_iter_int32(&it);
    else if (BSON_ITER_HOLDS_INT64(&it))
        *id = bson_iter_int64(&it);
    else
        return false;
    return true;
}

/*
 * Counts a step on its way up. A step sent while another awaits its reply
 * is an overlap no driver produces: the state becomes unknown for good.
 * Returns false when the step is not to be followed.
 */
static bool
step_sent(struct proxy_auth *auth)
{
    bool overlap = auth->in_flight > 0;

    auth->in_flight++;
    if (auth->state == PROXY_AUTH_UNKNOWN)
        return false;
    if (overlap) {
        proxy_auth_unknown(auth);
        return false;
    }
    return true;
}

void
proxy_auth_start(struct proxy_auth *auth, const bson_t *cmd, const char *db)
{
    bson_iter_t it;
    const char *mech = NULL;
    const uint8_t *payload = NULL;
    uint32_t payload_len = 0;
    bson_subtype_t subtype;
    char *user;

    if (!step_sent(auth))
        return;
    /* A new saslStart ends any earlier conversation (the server keeps one). */
    conversation_clear(auth);
    if (bson_iter_init_find(&it, cmd, "mechanism") && BSON_ITER_HOLDS_UTF8(&it))
        mech = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, cmd, "payload")) {
        if (BSON_ITER_HOLDS_BINARY(&it))
            bson_iter_binary(&it, &subtype, &payload_len, &payload);
        else if (BSON_ITER_HOLDS_UTF8(&it))
            payload = (const uint8_t *)bson_iter_utf8(&it, &payload_len);
    }
    if (!mech || strncmp(mech, "SCRAM-SHA-", 10) != 0 || !payload || !db) {
        proxy_auth_unknown(auth);
        return;
    }
    user = proxy_auth_scram_user(payload, payload_len);
    if (!user) {
        proxy_auth_unknown(auth);
        return;
    }
    auth->pending = cache_key_principal(user, strlen(user), db, strlen(db));
    auth->pending_name = bson_strdup_printf("%s@%s", user, db);
    bson_free(user);
    /* Logged in already, as this very user: its reads stay its own. As
     * another (a second user, which servers before 6.0 allow), reads
     * meanwhile may run with both users' rights: they bypass the cache
     * until the verdict (and a second user is UNKNOWN then: credit). */
    if (auth->state != PROXY_AUTH_OK || strcmp(auth->principal, auth->pending) != 0)
        auth->state = PROXY_AUTH_IN_PROGRESS;
}

void
proxy_auth_continue(struct proxy_auth *auth, const bson_t *cmd)
{
    int64_t id;

    if (!step_sent(auth) || !auth->open)
        return; /* outside a conversation the server refuses it: nothing to credit */
    if (auth->have_conv_id && (!conversation_id(cmd, &id) || id != auth->conv_id))
        proxy_auth_unknown(auth); /* a step of some other conversation */
}

/* done:true ended the open conversation: its principal is the connection's. */
static void
credit(struct proxy_auth *auth)
{
    if (auth->principal && strcmp(auth->principal, auth->pending) != 0) {
        proxy_auth_unknown(auth); /* a second user on one connection */
        return;
    }
    bson_free(auth->principal);
    bson_free(auth->principal_name);
    auth->principal = auth->pending;
    auth->principal_name = auth->pending_name;
    auth->pending = NULL;
    auth->pending_name = NULL;
    auth->state = PROXY_AUTH_OK;
    conversation_clear(auth);
}

enum proxy_auth_state
proxy_auth_reply(struct proxy_auth *auth, enum proxy_auth_step step, const bson_t *reply)
{
    bson_iter_t it;
    bool ok = false;
    bool done = false;

    if (auth->in_flight > 0)
        auth->in_flight--;
    if (auth->state == PROXY_AUTH_UNKNOWN)
        return auth->state;
    if (bson_iter_init_find(&it, reply, "ok"))
        ok = bson_iter_as_bool(&it);
    if (bson_iter_init_find(&it, reply, "done"))
        done = bson_iter_as_bool(&it);

    if (!ok) {
        conversation_clear(auth);
        /* A refused attempt after a success leaves the earlier login in force
         * upstream, but the proxy treats the mixed state as unknown. */
        auth->state = auth->principal ? PROXY_AUTH_UNKNOWN : PROXY_AUTH_FAILED;
        return auth->state;
    }
    if (step == PROXY_AUTH_STEP_START) {
        if (!auth->pending)
            return auth->state;
        auth->open = true;
        auth->have_conv_id = conversation_id(reply, &auth->conv_id);
    } else if (!auth->open) {
        /* A login the server confirms in a conversation the proxy does not
         * know (it forgot one, or never saw its start): nobody to credit. */
        if (done)
            proxy_auth_unknown(auth);
        return auth->state;
    }
    if (done)
        credit(auth);
    return auth->state;
}

void
proxy_auth_abandon(struct proxy_auth *auth)
{
    if (auth->in_flight > 0)
        auth->in_flight--;
    conversation_clear(auth);
    if (auth->state == PROXY_AUTH_IN_PROGRESS)
        auth->state = auth->principal ? PROXY_AUTH_OK : PROXY_AUTH_NONE;
}

void
proxy_auth_unknown(struct proxy_auth *auth)
{
    conversation_clear(auth);
    auth->state = PROXY_AUTH_UNKNOWN;
}
