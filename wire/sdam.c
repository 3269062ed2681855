/*
 * wire/sdam.c: classifies a reply's state-change error (see sdam.h). Owns
 * the two code lists of the SDAM specification and its message fallback;
 * it does not decide what follows (proxy/client.c, proxy/topology.c).
 */
#include "config.h"

#include "wire/sdam.h"

#include <string.h>

/* One error: its code (0 when absent) and message (NULL when absent). */
static enum wire_sdam_error
classify_one(int32_t code, bool has_code, const char *msg)
{
    if (has_code) {
        switch (code) {
        case 10107: /* NotWritablePrimary */
        case 13435: /* NotPrimaryNoSecondaryOk */
        case 10058: /* LegacyNotPrimary */
            return WIRE_SDAM_NOT_PRIMARY;
        case 11602: /* InterruptedDueToReplStateChange */
        case 13436: /* NotPrimaryOrSecondary */
        case 189:   /* PrimarySteppedDown */
            return WIRE_SDAM_RECOVERING;
        case 11600: /* InterruptedAtShutdown */
        case 91:    /* ShutdownInProgress */
            return WIRE_SDAM_SHUTDOWN;
        default:
            return WIRE_SDAM_NONE;
        }
    }
    if (msg == NULL)
        return WIRE_SDAM_NONE;
    if (strstr(msg, "node is recovering") || strstr(msg, "not master or secondary"))
        return WIRE_SDAM_RECOVERING;
    if (strstr(msg, "not master"))
        return WIRE_SDAM_NOT_PRIMARY;
    return WIRE_SDAM_NONE;
}

/*
 * An error code as servers send it: an int32, or an int64 or an integral
 * double within int32's range (anything else, NaN, 1e300 or 2^32+10107, is
 * no code: never cast out of range).
 */
static bool
code_value(const bson_iter_t *it, int32_t *out)
{
    int64_t v;
    double d;

    if (BSON_ITER_HOLDS_INT32(it)) {
        *out = bson_iter_int32(it);
        return true;
    }
    if (BSON_ITER_HOLDS_INT64(it)) {
        v = bson_iter_int64(it);
    } else if (BSON_ITER_HOLDS_DOUBLE(it)) {
        d = bson_iter_double(it);
        if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d)
            return false;
        v = (int32_t)d;
    } else {
        return false;
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

/* Reads code and errmsg from the document it iterates (the reply, or its writeConcernError). */
static enum wire_sdam_error
classify_doc(bson_iter_t *it, bool *ok_false, int32_t *code)
{
    bool has_code = false;
    int32_t c = 0;
    const char *msg = NULL;
    enum wire_sdam_error e;

    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);

        if (strcmp(key, "code") == 0 && code_value(it, &c)) {
            has_code = true;
        } else if (strcmp(key, "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(it)) {
            msg = bson_iter_utf8(it, NULL);
        } else if (ok_false && strcmp(key, "ok") == 0) {
            *ok_false = !bson_iter_as_bool(it);
        }
    }
    e = classify_one(c, has_code, msg);
    if (e != WIRE_SDAM_NONE && code)
        *code = has_code ? c : 0;
    return e;
}

enum wire_sdam_error
wire_sdam_classify(const bson_t *reply, int32_t *code)
{
    bson_iter_t it, sub;
    bool ok_false = false;
    enum wire_sdam_error e;

    if (code)
        *code = 0;
    if (!bson_iter_init(&it, reply))
        return WIRE_SDAM_NONE;
    e = classify_doc(&it, &ok_false, code);
    if (ok_false && e != WIRE_SDAM_NONE)
        return e;
    if (bson_iter_init_find(&it, reply, "writeConcernError") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sub))
        return classify_doc(&sub, NULL, code);
    if (code)
        *code = 0;
    return WIRE_SDAM_NONE;
}

const char *
wire_sdam_name(enum wire_sdam_error e)
{
    switch (e) {
    case WIRE_SDAM_NOT_PRIMARY:
        return "NotWritablePrimary";
    case WIRE_SDAM_RECOVERING:
        return "NodeIsRecovering";
    case WIRE_SDAM_SHUTDOWN:
        return "ShutdownInProgress";
    default:
        return "";
    }
}
