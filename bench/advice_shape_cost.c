/*
 * bench/advice_shape_cost.c: what recording a query's shape costs the event
 * loop: advice_shape_extract_known (the shape already kept, as for nearly
 * every command the proxy sees) and advice_shapes_cleanup on a typical find
 * (three filter paths and a sort, with the fields a driver adds) and on the
 * _id lookup bench/mcload sends (workload W1), in a loop; a new shape's
 * extract (copied out) on the typical find; and wire_cmd_parse of the
 * typical find for scale. Run it under callgrind and
 * read the inclusive cost of the one_* functions per call:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out bench/advice_shape_cost 10000
 *   callgrind_annotate --inclusive=yes cg.out | grep one_
 *
 * Without valgrind it prints nanoseconds per call (wall clock, noisy on a
 * shared machine). Built as a noinst program; it owns nothing else.
 */
#include "config.h"

#include "advice/shape.h"
#include "wire/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The body pymongo sends for find({author, year >= , status}).sort(year -1).limit(20). */
static bson_t *
typical_find(void)
{
    bson_t *b = bson_new(), filter, range, sort, lsid;
    static const uint8_t uuid[16] = {0x70, 0xcf, 0x60, 0xaf, 0x83, 0x4a, 0x42, 0xe8,
                                     0xab, 0x3e, 0x1a, 0x1b, 0x3f, 0x0e, 0x94, 0x64};

    BSON_APPEND_UTF8(b, "find", "books");
    BSON_APPEND_DOCUMENT_BEGIN(b, "filter", &filter);
    BSON_APPEND_UTF8(&filter, "author", "Ursula K. Le Guin");
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "year", &range);
    BSON_APPEND_INT32(&range, "$gte", 1970);
    bson_append_document_end(&filter, &range);
    BSON_APPEND_UTF8(&filter, "status", "published");
    bson_append_document_end(b, &filter);
    BSON_APPEND_DOCUMENT_BEGIN(b, "sort", &sort);
    BSON_APPEND_INT32(&sort, "year", -1);
    bson_append_document_end(b, &sort);
    BSON_APPEND_INT32(b, "limit", 20);
    BSON_APPEND_DOCUMENT_BEGIN(b, "lsid", &lsid);
    bson_append_binary(&lsid, "id", 2, BSON_SUBTYPE_UUID, uuid, sizeof uuid);
    bson_append_document_end(b, &lsid);
    BSON_APPEND_UTF8(b, "$db", "app");
    return b;
}

/* What bench/mcload sends for find_one({_id: k}) (W1): lsid, $clusterTime, $readPreference. */
static bson_t *
id_lookup(void)
{
    bson_t *b = bson_new(), filter, lsid, ct, sig, rp;
    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t zero_hash[20];

    BSON_APPEND_UTF8(b, "find", "w1");
    BSON_APPEND_DOCUMENT_BEGIN(b, "filter", &filter);
    BSON_APPEND_INT32(&filter, "_id", 42);
    bson_append_document_end(b, &filter);
    BSON_APPEND_INT32(b, "limit", 1);
    BSON_APPEND_BOOL(b, "singleBatch", true);
    BSON_APPEND_DOCUMENT_BEGIN(b, "lsid", &lsid);
    BSON_APPEND_BINARY(&lsid, "id", BSON_SUBTYPE_UUID, uuid, 16);
    bson_append_document_end(b, &lsid);
    BSON_APPEND_DOCUMENT_BEGIN(b, "$clusterTime", &ct);
    BSON_APPEND_TIMESTAMP(&ct, "clusterTime", 1700000000, 1);
    BSON_APPEND_DOCUMENT_BEGIN(&ct, "signature", &sig);
    BSON_APPEND_BINARY(&sig, "hash", BSON_SUBTYPE_BINARY, zero_hash, sizeof zero_hash);
    BSON_APPEND_INT64(&sig, "keyId", 0);
    bson_append_document_end(&ct, &sig);
    bson_append_document_end(b, &ct);
    BSON_APPEND_DOCUMENT_BEGIN(b, "$readPreference", &rp);
    BSON_APPEND_UTF8(&rp, "mode", "primaryPreferred");
    bson_append_document_end(b, &rp);
    BSON_APPEND_UTF8(b, "$db", "bench");
    return b;
}

/* The proxy's table already keeps every shape here (its steady state): hashed, not copied. */
static bool
known_all(void *arg, uint64_t hash)
{
    (void)arg;
    (void)hash;
    return true;
}

/* One shape recorded, as the proxy does once its table holds the shape. */
__attribute__((noinline)) static uint32_t
one_extract(const bson_t *body, const struct wire_cmd *cmd, struct advice_shapes *out)
{
    uint32_t n = advice_shape_extract_known(body, cmd, NULL, 0, known_all, NULL, out);

    advice_shapes_cleanup(out);
    return n;
}

/* The same for the _id lookup (arguments in another order, so that the compiler keeps two). */
__attribute__((noinline)) static uint32_t
one_extract_id(struct advice_shapes *out, const struct wire_cmd *cmd, const bson_t *body)
{
    uint32_t n = advice_shape_extract_known(body, cmd, NULL, 0, known_all, NULL, out);

    advice_shapes_cleanup(out);
    return n;
}

/* A shape seen for the first time: copied out (the table then copies it again). */
__attribute__((noinline)) static uint32_t
one_extract_new(const bson_t *body, const struct wire_cmd *cmd, struct advice_shapes *out)
{
    uint32_t n = advice_shape_extract(body, cmd, NULL, 0, out);

    advice_shapes_cleanup(out);
    return n;
}

/* For scale: what the proxy already does to every command body. */
__attribute__((noinline)) static bool
one_cmd_parse(const bson_t *body, struct wire_cmd *cmd)
{
    bson_error_t error;

    return wire_cmd_parse(bson_get_data(body), body->len, cmd, &error);
}

static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    bson_t *body = typical_find(), *id = id_lookup();
    struct advice_shapes *out = malloc(sizeof *out);
    struct wire_cmd cmd, id_cmd;
    uint64_t shapes = 0;
    double t0, t1, t2, t3, t4;

    if (!out || !one_cmd_parse(body, &cmd) || !one_cmd_parse(id, &id_cmd)) {
        fprintf(stderr, "advice_shape_cost: setup failed\n");
        return 1;
    }
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        shapes += one_extract(body, &cmd, out);
    t1 = now_ns();
    for (long i = 0; i < n; i++)
        shapes += one_extract_id(out, &id_cmd, id);
    t2 = now_ns();
    for (long i = 0; i < n; i++)
        shapes += one_cmd_parse(body, &cmd);
    t3 = now_ns();
    for (long i = 0; i < n; i++)
        shapes += one_extract_new(body, &cmd, out);
    t4 = now_ns();
    printf("%ld calls; extract+cleanup of a kept shape: typical find (%u bytes) %.1f ns, _id "
           "lookup (%u bytes) %.1f ns; a new shape (typical find) %.1f ns; wire_cmd_parse of "
           "the typical find %.1f ns (%llu)\n",
           n, body->len, (t1 - t0) / (double)n, id->len, (t2 - t1) / (double)n,
           (t4 - t3) / (double)n, (t3 - t2) / (double)n, (unsigned long long)shapes);
    free(out);
    bson_destroy(body);
    bson_destroy(id);
    return 0;
}
