/*
 * tests/fuzz/fuzz_upstream_reply.c: the upstream's fuzz target: what the
 * proxy does with the upstream's replies (PgBouncer CVE-2026-6666: the
 * server side is untrusted too). The input is the byte stream of one
 * upstream connection, cut into messages as proxy/client.c does (each
 * copied into a buffer of exactly its size); each reply goes through
 *   OP_REPLY (the legacy handshake's answer): wire_msg_parse_reply and its
 *            first document as the body;
 *   OP_MSG:  wire_msg_parse, moreToCome refused;
 * then what proxy_client_on_reply does with a body: the cursor reading of
 * proxy_drain_open_cursor and the batch copy of proxy_drain_step,
 * cache_policy_reply, the reply's ok (wire_msg_ok), and for a storable
 * reply the hit that replays it (wire_reply_restamp on a copy).
 * Properties: a parsed reply's body is a valid document; every document
 * the drain copies out of a batch passes wire_doc_check on its own (the
 * proxy stores and serves them); the two ways of asking
 * proxy_drain_open_cursor agree; a reply over max_entry_bytes is never
 * storable; a restamped stored reply parses with the same body; wire_msg_ok
 * reads a parsed body's ok as reply_ok below does with libbson, and reads
 * any bytes (the whole message as if it were a document) within them.
 * Not covered: the hello persona rewrite and SCRAM observation (their
 * owners are changing them; add them here when they settle).
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "cache/policy.h"
#include "proxy/drain.h"
#include "wire/doc.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <math.h>
#include <string.h>

/* The batch copy of proxy_drain_step: every array element that is a document, back to back. */
/*
 * The reply's ok by the rule wire_msg_ok follows, read with libbson: -1
 * none; 1 true or a number other than zero (NaN is not; a decimal128 by its
 * printed form: a digit 1-9 before any exponent, or Infinity); 0 otherwise.
 */
static int
reply_ok(const bson_t *reply)
{
    bson_iter_t it;
    bson_decimal128_t dec;
    char text[BSON_DECIMAL128_STRING];
    double d;

    if (!bson_iter_init_find(&it, reply, "ok"))
        return -1;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_BOOL:
        return bson_iter_bool(&it) ? 1 : 0;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
        d = bson_iter_as_double(&it);
        return d != 0.0 && !isnan(d) ? 1 : 0;
    case BSON_TYPE_DECIMAL128:
        if (!bson_iter_decimal128(&it, &dec))
            return 0;
        bson_decimal128_to_string(&dec, text);
        if (strstr(text, "Inf"))
            return 1;
        for (const char *c = text; *c && *c != 'E'; c++)
            if (*c >= '1' && *c <= '9')
                return 1;
        return 0;
    default:
        return 0;
    }
}

static void
drain_batch(const bson_iter_t *batch)
{
    struct proxy_drain_docs d = {NULL, 0, 0, 0};
    uint32_t n = proxy_drain_docs_append(&d, batch);
    uint8_t *docs = d.data;
    size_t used = d.len;

    FUZZ_CHECK(n == d.n);
    /* What the proxy's cursors later serve, one document at a time. */
    for (size_t at = 0; at < used;) {
        uint32_t doc_len;
        bson_error_t error;

        FUZZ_CHECK(wire_doc_check(docs + at, used - at, WIRE_DOC_MAX_DEPTH, &doc_len, &error));
        at += doc_len;
        n--;
    }
    FUZZ_CHECK(n == 0);
    bson_free(docs);
}

/* A stored reply is served again with a new header: it must still parse, body unchanged. */
static void
replay_stored(const uint8_t *data, size_t len, const struct wire_header *h, uint32_t body_off,
              uint32_t body_len)
{
    uint8_t *copy = bson_malloc(len);
    struct wire_msg m;
    bson_error_t error;

    memcpy(copy, data, len);
    wire_reply_restamp(copy, (int32_t)((uint32_t)h->request_id + 1), h->response_to ^ 0x77);
    FUZZ_CHECK(wire_msg_parse(copy, len, WIRE_DOC_MAX_DEPTH, &m, &error));
    FUZZ_CHECK(m.header.response_to == (h->response_to ^ 0x77));
    FUZZ_CHECK(m.body == copy + body_off && m.body_len == body_len);
    bson_free(copy);
}

static void
one_reply(const uint8_t *data, size_t len, const struct wire_header *h)
{
    const uint8_t *body;
    uint32_t body_len;
    uint32_t flags = 0;
    bson_error_t error;
    bson_t reply;
    bson_iter_t batch;
    const char *ns = NULL;
    int64_t id = -1;
    bool open_plain, open_full;
    enum cache_policy_reason reason;

    if (h->opcode == WIRE_OP_REPLY) {
        struct wire_reply r;

        if (!wire_msg_parse_reply(data, len, WIRE_DOC_MAX_DEPTH, &r, &error) || r.n_returned < 1)
            return; /* upstream_protocol_error: client told, connection closed */
        FUZZ_CHECK(r.docs == data + WIRE_HEADER_LEN + 20 && r.docs_len == len - 36);
        body = r.docs;
        body_len = (uint32_t)wire_frame_read_i32(r.docs);
        FUZZ_CHECK(body_len >= 5 && body_len <= r.docs_len);
    } else if (h->opcode == WIRE_OP_MSG) {
        struct wire_msg m;

        if (!wire_msg_parse(data, len, WIRE_DOC_MAX_DEPTH, &m, &error))
            return;
        if (m.flags & WIRE_MSG_MORE_TO_COME)
            return; /* exhaust is never allowed: protocol error */
        body = m.body;
        body_len = m.body_len;
        flags = m.flags;
    } else {
        return; /* wrong opcode for the request: protocol error */
    }
    FUZZ_CHECK(bson_init_static(&reply, body, body_len));
    FUZZ_CHECK(wire_msg_ok(body, body_len) == reply_ok(&reply));

    /* client.c asks without out-parameters, drain.c with them: they must agree. */
    open_plain = proxy_drain_open_cursor(&reply, NULL, NULL, NULL);
    open_full = proxy_drain_open_cursor(&reply, &id, &batch, &ns);
    if (open_plain)
        FUZZ_CHECK(open_full && id != 0);
    if (open_full) {
        FUZZ_CHECK(ns != NULL && strchr(ns, '.') != NULL);
        FUZZ_CHECK((const uint8_t *)ns > body && (const uint8_t *)ns < body + body_len);
        FUZZ_CHECK(open_plain == (id != 0));
        drain_batch(&batch);
    }

    reason = cache_policy_reply(&reply, len, len);
    FUZZ_CHECK((unsigned)reason < CACHE_POLICY_REASON_COUNT);
    FUZZ_CHECK(cache_policy_reply(&reply, len, len - 1) != CACHE_POLICY_OK);
    if (reason == CACHE_POLICY_OK) {
        FUZZ_CHECK(!open_plain); /* an open cursor is never stored as a reply */
        if (h->opcode == WIRE_OP_MSG && !(flags & WIRE_MSG_CHECKSUM_PRESENT))
            replay_stored(data, len, h, (uint32_t)(body - data), body_len);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    while (size >= WIRE_HEADER_LEN) {
        struct wire_header h;
        bson_error_t error;
        uint8_t *msg;

        if (wire_frame_header(data, size, WIRE_MAX_MESSAGE_LEN, &h, &error) != WIRE_OK)
            break;
        if ((size_t)h.length > size)
            break;
        msg = bson_malloc((size_t)h.length);
        memcpy(msg, data, (size_t)h.length);
        (void)wire_msg_ok(msg, (uint32_t)h.length);
        one_reply(msg, (size_t)h.length, &h);
        bson_free(msg);
        data += h.length;
        size -= (size_t)h.length;
    }
    return 0;
}
