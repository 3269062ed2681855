/*
 * advice/probe.c: owns the advisor's commands and what their answers must
 * look like (see probe.h): listIndexes and its cursor (read by hand, so
 * that every bound is ours: entries, getMores, empty batches), count, and
 * explain; and which errors mean "unreachable", "unauthorized" or "not a
 * collection". Every reply is checked with wire_doc_check before libbson
 * iterates it, on top of what the guard (advice/guard.c) checked of the
 * message. It does not keep anything between calls, count commands, decide
 * the advisor's state or back off: advice/advisor.c does.
 */
#include "config.h"

#include "advice/probe.h"

#include "wire/doc.h"

#include <math.h>
#include <string.h>

/* Server error codes. */
#define CODE_UNAUTHORIZED 13
#define CODE_AUTH_FAILED 18
#define CODE_NAMESPACE_NOT_FOUND 26
#define CODE_INVALID_NAMESPACE 73
#define CODE_NOT_ON_VIEW 166 /* CommandNotSupportedOnView */

/* The server answered the command with an error of its own (ok: 0). */
static bool
server_said(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY ||
           e->domain == MONGOC_ERROR_COMMAND;
}

/* The server says db.coll is not a collection (see ADVICE_PROBE_NONE). */
static bool
not_collection(const bson_error_t *e)
{
    return server_said(e) &&
           (e->code == CODE_NAMESPACE_NOT_FOUND || e->code == CODE_INVALID_NAMESPACE ||
            e->code == CODE_NOT_ON_VIEW);
}

bool
advice_probe_unreachable(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM;
}

bool
advice_probe_unauthorized(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_SASL || e->domain == MONGOC_ERROR_SCRAM)
        return true;
    if (e->domain == MONGOC_ERROR_CLIENT)
        return e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE;
    return server_said(e) && (e->code == CODE_UNAUTHORIZED || e->code == CODE_AUTH_FAILED);
}

static bool
junk(bson_error_t *error, const char *what)
{
    bson_set_error(error, ADVICE_PROBE_JUNK_DOMAIN, CONF_ERROR_ADVICE_JUNK, "%s", what);
    return false;
}

/* Checks a document from the server like any untrusted input, before libbson reads it. */
static bool
doc_ok(const bson_t *doc)
{
    bson_error_t error;
    uint32_t len = 0;

    return wire_doc_check(bson_get_data(doc), doc->len, 0, &len, &error) && len == doc->len;
}

/*
 * Sends cmd to db. True when the server answered ok: 1 with a well-formed
 * document (reply: the answer). False with error set otherwise. reply is
 * initialised either way.
 */
static bool
send_command(const struct advice_probe *p, const char *db, const bson_t *cmd, bson_t *reply,
             bson_error_t *error)
{
    uint64_t refused = p->guard->junk;
    bool ok = mongoc_client_command_simple(p->client, db, cmd, NULL, reply, error);

    if (!ok && p->guard->junk != refused)
        return junk(error, p->guard->reason);
    if (ok && !doc_ok(reply))
        return junk(error, "an answer that is not valid BSON");
    return ok;
}

/*
 * Finds cursor.id and cursor.<batch_name> (an array) in a checked reply.
 * Returns NULL, or what is wrong with it.
 */
static const char *
read_cursor(const bson_t *reply, const char *batch_name, int64_t *id, bson_iter_t *batch)
{
    bson_iter_t it, c;
    bool have_id = false, have_batch = false;

    if (!bson_iter_init_find(&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &c))
        return "an answer without a cursor";
    while (bson_iter_next(&c)) {
        const char *key = bson_iter_key(&c);

        if (strcmp(key, "id") == 0) {
            if (BSON_ITER_HOLDS_INT64(&c))
                *id = bson_iter_int64(&c);
            else if (BSON_ITER_HOLDS_INT32(&c))
                *id = bson_iter_int32(&c);
            else
                return "a cursor id that is not an integer";
            have_id = true;
        } else if (strcmp(key, batch_name) == 0) {
            if (!BSON_ITER_HOLDS_ARRAY(&c))
                return "a cursor batch that is not an array";
            *batch = c;
            have_batch = true;
        }
    }
    return have_id && have_batch ? NULL : "an answer without a cursor";
}

/* Adds the index specs of a batch to out (checked, at most ADVICE_PROBE_MAX_INDEXES in all). */
static const char *
take_batch(const bson_iter_t *batch, struct advice_indexes *out, uint32_t *taken)
{
    bson_iter_t it;

    *taken = 0;
    if (!bson_iter_recurse(batch, &it))
        return "a cursor batch that is not an array";
    while (bson_iter_next(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t spec;

        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            return "an index entry that is not a document";
        if (out->n == ADVICE_PROBE_MAX_INDEXES)
            return "more than 64 indexes";
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&spec, data, len))
            return "an index entry that is not valid BSON";
        if (!advice_index_from_spec(&spec, &out->index[out->n]))
            return "an index entry without a usable key";
        out->n++;
        (*taken)++;
    }
    return NULL;
}

enum advice_probe_result
advice_probe_indexes(const struct advice_probe *p, const char *db, const char *coll,
                     struct advice_indexes *out, bson_error_t *error)
{
    bson_t cmd = BSON_INITIALIZER;
    bson_t reply;
    bson_iter_t batch;
    int64_t id = 0;
    uint32_t taken = 0;
    const char *bad;

    out->index = bson_malloc0(ADVICE_PROBE_MAX_INDEXES * sizeof *out->index);
    out->n = 0;
    BSON_APPEND_UTF8(&cmd, "listIndexes", coll);
    if (!send_command(p, db, &cmd, &reply, error)) {
        bson_destroy(&cmd);
        bson_destroy(&reply);
        return not_collection(error) ? ADVICE_PROBE_NONE : ADVICE_PROBE_FAILED;
    }
    bson_destroy(&cmd);
    bad = read_cursor(&reply, "firstBatch", &id, &batch);
    if (bad == NULL)
        bad = take_batch(&batch, out, &taken);
    bson_destroy(&reply);
    while (bad == NULL && id != 0) {
        if (atomic_load(p->stop))
            return ADVICE_PROBE_STOPPED;
        bson_init(&cmd);
        BSON_APPEND_INT64(&cmd, "getMore", id);
        BSON_APPEND_UTF8(&cmd, "collection", coll);
        if (!send_command(p, db, &cmd, &reply, error)) {
            bson_destroy(&cmd);
            bson_destroy(&reply);
            return ADVICE_PROBE_FAILED;
        }
        bson_destroy(&cmd);
        bad = read_cursor(&reply, "nextBatch", &id, &batch);
        if (bad == NULL)
            bad = take_batch(&batch, out, &taken);
        if (bad == NULL && taken == 0 && id != 0)
            bad = "a cursor that does not end";
        bson_destroy(&reply);
    }
    if (bad != NULL) {
        junk(error, bad);
        return ADVICE_PROBE_FAILED;
    }
    return ADVICE_PROBE_OK;
}

enum advice_probe_result
advice_probe_count(const struct advice_probe *p, const char *db, const char *coll,
                   int64_t *documents, bson_error_t *error)
{
    bson_t cmd = BSON_INITIALIZER;
    bson_t reply;
    bson_iter_t it;
    bool sent;
    double n = -1;

    *documents = 0;
    BSON_APPEND_UTF8(&cmd, "count", coll);
    sent = send_command(p, db, &cmd, &reply, error);
    bson_destroy(&cmd);
    if (!sent) {
        bson_destroy(&reply);
        return not_collection(error) ? ADVICE_PROBE_NONE : ADVICE_PROBE_FAILED;
    }
    if (bson_iter_init_find(&it, &reply, "n")) {
        if (BSON_ITER_HOLDS_INT32(&it))
            n = bson_iter_int32(&it);
        else if (BSON_ITER_HOLDS_INT64(&it))
            n = (double)bson_iter_int64(&it);
        else if (BSON_ITER_HOLDS_DOUBLE(&it))
            n = bson_iter_double(&it);
    }
    bson_destroy(&reply);
    if (!isfinite(n) || n < 0 || n > 9.0e18) {
        junk(error, "an answer without a document count");
        return ADVICE_PROBE_FAILED;
    }
    *documents = (int64_t)n;
    return ADVICE_PROBE_OK;
}

enum advice_probe_result
advice_probe_explain(const struct advice_probe *p, const struct advice_shape *shape,
                     const uint8_t *query, uint32_t query_len, uint32_t statement,
                     enum advice_plan_verdict *verdict, bool *sent, bson_error_t *error)
{
    bson_t body, cmd, reply;
    bool answered;

    *verdict = ADVICE_PLAN_NOT_MONGOD;
    *sent = false;
    if (query == NULL)
        bson_init(&body); /* a $lookup's explain is built from its shape alone */
    else if (!bson_init_static(&body, query, query_len))
        return ADVICE_PROBE_OK;
    if (!advice_plan_shape_command(shape, &body, statement, &cmd)) {
        bson_destroy(&cmd);
        bson_destroy(&body);
        return ADVICE_PROBE_OK;
    }
    bson_destroy(&body);
    *sent = true;
    answered = send_command(p, shape->db, &cmd, &reply, error);
    bson_destroy(&cmd);
    if (!answered) {
        bson_destroy(&reply);
        /* the server refuses to plan this query: no mongod plan, not a failure */
        return server_said(error) && !advice_probe_unauthorized(error) ? ADVICE_PROBE_OK
                                                                       : ADVICE_PROBE_FAILED;
    }
    *verdict = advice_plan_read(&reply);
    bson_destroy(&reply);
    return ADVICE_PROBE_OK;
}
