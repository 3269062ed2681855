/*
 * tests/unit/test_advice_fixtures.c: owns running advice_shape_extract over
 * real traffic and over hostile variations of it, the way the proxy calls
 * it: every request in tests/fixtures/wire/ (recorded between pymongo,
 * Mongoose and FerretDB) is parsed with wire_msg_parse and wire_cmd_parse,
 * and its shapes must be the ones in the table below; then
 *   - mutations: random single and multiple byte changes anywhere in each
 *     request; whatever wire_msg_parse still accepts goes through extract;
 *   - generated commands: random filters, sorts and pipelines of random
 *     operators, types, depths (up to what wire_doc_check allows) and
 *     sizes, in the body and in document sequences;
 *   - value independence: the same generated structure with other scalar
 *     values gives the same hashes.
 * Every shape produced must keep the invariants (counts, path lengths,
 * stored hash = advice_shape_hash, copy equal, display non-empty). Run
 * under ASan (--enable-asan) this is the robustness test; the seed is
 * printed and can be set with ADVICE_SEED. The shape rules themselves are
 * tested in test_advice_shape.c.
 */
#include "config.h"

#include "advice/shape.h"
#include "tests/unit/tap.h"
#include "wire/cmd.h"
#include "wire/doc.h"
#include "wire/frame.h"
#include "wire/msg.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIXTURE_DIR "tests/fixtures/wire"
#define MAX_FIXTURES 128
#define MUTATIONS_PER_FIXTURE 20000
#define GENERATED 20000

/* What each recorded request must give (requests not listed must give none). */
static const struct {
    const char *file;
    const char *shapes[2];
} expects[] = {
    {"mongoose-c2s-06-op_msg-find.bin", {"find fixt.cats {name: ?}"}},
    {"pymongo-c2s-09-op_msg-find.bin", {"find fixt.t {x: {$gte: ?}}"}},
    {"pymongo-c2s-15-op_msg-aggregate.bin", {"aggregate fixt.t {x: {$gt: ?}}"}},
    {"pymongo-c2s-07-op_msg-update.bin", {"update fixt.t {_id: ?}"}},
    {"pymongo-c2s-08-op_msg-delete.bin", {"delete fixt.t {_id: ?}"}},
};

#define N_EXPECTS (sizeof expects / sizeof expects[0])

/* ---- a deterministic generator ------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t
rnd(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static uint32_t
below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

/* ---- the invariants ------------------------------------------------------------------------- */

static uint64_t checked_shapes;

/* Everything that must hold of any extract result; a reason, or NULL. */
static const char *
invariants(const struct advice_shapes *out)
{
    if (out->n > ADVICE_MAX_SHAPES_PER_COMMAND)
        return "more shapes than the maximum";
    for (uint32_t i = 0; i < out->n; i++) {
        const struct advice_shape *s = &out->shape[i];
        struct advice_shape copy;
        char *d;
        bool same;

        checked_shapes++;
        if (s->n_paths > ADVICE_SHAPE_MAX_PATHS || s->n_sort > ADVICE_SHAPE_MAX_SORT)
            return "too many paths or sort keys";
        if (s->n_paths == 0 && s->n_sort == 0)
            return "an empty shape";
        if (!s->db || !s->coll || strlen(s->db) == 0 || strlen(s->coll) == 0)
            return "no namespace";
        for (uint32_t j = 0; j < s->n_paths; j++) {
            if (!s->paths[j].path || strlen(s->paths[j].path) > ADVICE_SHAPE_MAX_PATH_LEN)
                return "a path missing or too long";
            if ((unsigned)s->paths[j].op > ADVICE_OP_UNINDEXABLE || s->paths[j].ops == 0)
                return "a path without class or operators";
        }
        for (uint32_t j = 0; j < s->n_sort; j++) {
            if (!s->sort[j].path || strlen(s->sort[j].path) > ADVICE_SHAPE_MAX_PATH_LEN ||
                s->sort[j].dir < -1 || s->sort[j].dir > 1 ||
                (s->sort[j].dir == 0 && !s->sort_unusable))
                return "a bad sort key";
        }
        if (s->hash != advice_shape_hash(s))
            return "stored hash is not advice_shape_hash";
        for (uint32_t j = 0; j < i; j++) {
            if (out->shape[j].hash == s->hash)
                return "two shapes with one hash";
        }
        advice_shape_copy(&copy, s);
        same = advice_shape_hash(&copy) == s->hash;
        advice_shape_cleanup(&copy);
        if (!same)
            return "a copy hashes differently";
        d = advice_shape_display(s);
        same = d && strlen(d) > 0;
        for (const char *p = d; p && *p; p++) {
            if ((unsigned char)*p < 0x20)
                same = false;
        }
        bson_free(d);
        if (!same)
            return "display empty or holding a control byte";
    }
    return NULL;
}

/* The proxy's path: parse the message, then its command, then extract. */
static bool
extract_message(const uint8_t *data, size_t len, struct advice_shapes *out, bool *parsed)
{
    struct advice_sequence seqs[WIRE_MSG_MAX_SEQUENCES];
    struct wire_msg msg;
    struct wire_cmd cmd;
    bson_error_t error;
    bson_t body;

    out->n = 0;
    *parsed = false;
    if (!wire_msg_parse(data, len, 0, &msg, &error) ||
        !wire_cmd_parse(msg.body, msg.body_len, &cmd, &error) ||
        !bson_init_static(&body, msg.body, msg.body_len))
        return false;
    for (uint32_t i = 0; i < msg.n_seqs; i++) {
        seqs[i].id = msg.seqs[i].id;
        seqs[i].docs = msg.seqs[i].docs;
        seqs[i].len = msg.seqs[i].docs_len;
    }
    *parsed = true;
    advice_shape_extract(&body, &cmd, seqs, msg.n_seqs, out);
    return true;
}

/* ---- the recorded traffic ---------------------------------------------------------------------
 */

struct fixture {
    char name[256];
    uint8_t *data;
    size_t len;
};

static struct fixture fixtures[MAX_FIXTURES];
static size_t n_fixtures;

static uint8_t *
read_file(const char *path, size_t *len)
{
    struct stat st;
    uint8_t *data;
    FILE *f = fopen(path, "rb");

    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > WIRE_MAX_MESSAGE_LEN) {
        fclose(f);
        return NULL;
    }
    data = malloc((size_t)st.st_size);
    if (data && fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *len = (size_t)st.st_size;
    return data;
}

static int
fixture_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fixture *)a)->name, ((const struct fixture *)b)->name);
}

/* The OP_MSG requests of the directory (the only ones that carry queries). */
static void
load(const char *dir)
{
    char path[4096];
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!ok(d != NULL, "opendir %s", dir))
        return;
    while ((de = readdir(d)) != NULL && n_fixtures < MAX_FIXTURES) {
        size_t n = strlen(de->d_name);

        if (n < 5 || n >= sizeof fixtures[0].name || strcmp(de->d_name + n - 4, ".bin") != 0 ||
            strstr(de->d_name, "-c2s-") == NULL || strstr(de->d_name, "op_msg") == NULL)
            continue;
        memcpy(fixtures[n_fixtures].name, de->d_name, n + 1);
        n_fixtures++;
    }
    closedir(d);
    qsort(fixtures, n_fixtures, sizeof fixtures[0], fixture_cmp);
    for (size_t i = 0; i < n_fixtures; i++) {
        int w = snprintf(path, sizeof path, "%s/%s", dir, fixtures[i].name);

        if (w > 0 && (size_t)w < sizeof path)
            fixtures[i].data = read_file(path, &fixtures[i].len);
        ok(fixtures[i].data != NULL, "%s reads", fixtures[i].name);
    }
    ok(n_fixtures >= 10, "%zu OP_MSG requests recorded", n_fixtures);
}

static void
check_recorded(const struct fixture *fx)
{
    struct advice_shapes out;
    const char *const *want = NULL;
    uint32_t n_want = 0;
    bool parsed;
    const char *why;

    for (size_t i = 0; i < N_EXPECTS; i++) {
        if (strcmp(expects[i].file, fx->name) == 0)
            want = expects[i].shapes;
    }
    while (want && n_want < 2 && want[n_want])
        n_want++;
    extract_message(fx->data, fx->len, &out, &parsed);
    ok(parsed, "%s: parses", fx->name);
    is_int(out.n, n_want, "%s: %u shape(s)", fx->name, n_want);
    for (uint32_t i = 0; i < n_want && i < out.n; i++) {
        char *d = advice_shape_display(&out.shape[i]);

        is_str(d, want[i], "%s: shape %u", fx->name, i);
        bson_free(d);
        /* a statement sent in a sequence is kept by itself, inside the message */
        ok(out.query[i] >= fx->data && out.query[i] + out.query_len[i] <= fx->data + fx->len &&
               out.query_len[i] >= 5,
           "%s: query %u lies inside the message", fx->name, i);
    }
    why = invariants(&out);
    if (!ok(why == NULL, "%s: invariants", fx->name))
        diag("%s", why);
    advice_shapes_cleanup(&out);
}

/* Random byte changes anywhere in the message; what still parses must extract sanely. */
static void
check_mutations(const struct fixture *fx)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x0b, 0x10,
                                          0x12, 0x24, 0x2e, 0x5e, 0x7f, 0x80, 0xff};
    uint8_t *buf = malloc(fx->len);
    uint32_t accepted = 0, bad = 0;

    for (uint32_t m = 0; m < MUTATIONS_PER_FIXTURE; m++) {
        struct advice_shapes out;
        uint32_t edits = 1 + below(4);
        bool parsed;
        const char *why;

        memcpy(buf, fx->data, fx->len);
        for (uint32_t e = 0; e < edits; e++) {
            /* leave the 16-byte header alone most of the time: past it is where the documents are
             */
            size_t at = fx->len > 20 && below(8) ? 20 + below((uint32_t)(fx->len - 20))
                                                 : below((uint32_t)fx->len);

            buf[at] = below(2) ? interesting[below(sizeof interesting)] : (uint8_t)rnd();
        }
        extract_message(buf, fx->len, &out, &parsed);
        if (parsed)
            accepted++;
        why = invariants(&out);
        if (why != NULL) {
            if (bad++ < 5)
                diag("%s: mutation %u: %s", fx->name, m, why);
        }
        advice_shapes_cleanup(&out);
    }
    free(buf);
    is_int(bad, 0, "%s: %d mutations (%u still parse): every result sane", fx->name,
           MUTATIONS_PER_FIXTURE, accepted);
}

/* ---- generated commands -------------------------------------------------------------------- */

static const char *const field_names[] = {"a",       "b",    "c",    "a.b",  "x.y.z", "_id",
                                          "",        "$bad", "a..b", "tags", "k\x01", "caf\xc3\xa9",
                                          "\xff\xfe"};
static const char *const operators[] = {
    "$eq",    "$in",      "$gt",        "$gte",   "$lt",        "$lte",        "$ne",
    "$nin",   "$not",     "$exists",    "$type",  "$size",      "$all",        "$mod",
    "$regex", "$options", "$elemMatch", "$near",  "$geoWithin", "$bitsAllSet", "$foo",
    "$and",   "$or",      "$nor",       "$where", "$expr",      "$text",       "$comment"};
static const char *const top_ops[] = {"$and",  "$or",         "$nor",     "$where",     "$expr",
                                      "$text", "$jsonSchema", "$comment", "$alwaysTrue"};

/*
 * When vary is set, scalars get other values of the same type and sign (the
 * structure stays): drawn from a counter, never from the generator, so that
 * both runs make the same choices.
 */
static bool vary;
static uint32_t vary_counter;

static void gen_filter(bson_t *doc, int depth, int budget);

static void
gen_scalar(bson_t *doc, const char *key)
{
    uint32_t v = vary ? 1 + (vary_counter++ * 2654435761u) % 100000 : 7;

    switch (below(6)) {
    case 0:
        BSON_APPEND_INT32(doc, key, (int32_t)v);
        break;
    case 1:
        BSON_APPEND_UTF8(doc, key, vary ? "another" : "x");
        break;
    case 2:
        BSON_APPEND_DOUBLE(doc, key, v / 3.0);
        break;
    case 3:
        BSON_APPEND_BOOL(doc, key, v & 1);
        break;
    case 4:
        BSON_APPEND_NULL(doc, key);
        break;
    default:
        BSON_APPEND_INT64(doc, key, (int64_t)v << 20);
        break;
    }
}

/* A value: scalar, regex, array, subdocument or operator document. */
static void
gen_value(bson_t *doc, const char *key, int depth, int budget)
{
    bson_t sub;
    uint32_t kind = depth > 90 ? 0 : below(10);

    if (kind <= 3) {
        gen_scalar(doc, key);
    } else if (kind == 4) {
        static const char *const pats[] = {"^abc", "abc", "^a|b", "\\Ax", "^", "^.*", "^a?"};

        /* the BSON_APPEND_ macros evaluate their arguments twice: draw first */
        const char *pat = pats[below(7)];
        const char *flags = below(2) ? "" : (below(2) ? "i" : "m");

        BSON_APPEND_REGEX(doc, key, pat, flags);
    } else if (kind == 5) {
        BSON_APPEND_ARRAY_BEGIN(doc, key, &sub);
        for (uint32_t i = 0, n = below(4); i < n; i++) {
            char idx[12];

            snprintf(idx, sizeof idx, "%u", i);
            gen_value(&sub, idx, depth + 1, budget / 2);
        }
        bson_append_array_end(doc, &sub);
    } else {
        /* an operator document, or a filter-looking subdocument */
        BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
        for (uint32_t i = 0, n = 1 + below(3); i < n && budget > 0; i++, budget--) {
            const char *op = operators[below(sizeof operators / sizeof operators[0])];

            if (kind == 9) {
                gen_value(&sub, field_names[below(sizeof field_names / sizeof field_names[0])],
                          depth + 1, budget / 2);
            } else if (strcmp(op, "$elemMatch") == 0 || strcmp(op, "$not") == 0) {
                bson_t inner;

                BSON_APPEND_DOCUMENT_BEGIN(&sub, op, &inner);
                gen_filter(&inner, depth + 1, budget / 2);
                bson_append_document_end(&sub, &inner);
            } else if (strcmp(op, "$regex") == 0 && below(2)) {
                const char *pat = below(2) ? "^pre" : "mid";

                BSON_APPEND_UTF8(&sub, op, pat);
            } else {
                gen_value(&sub, op, depth + 1, budget / 2);
            }
        }
        bson_append_document_end(doc, &sub);
    }
}

static void
gen_filter(bson_t *doc, int depth, int budget)
{
    uint32_t n = below(6);

    if (depth > 90) /* two BSON levels per step: stay inside wire_doc_check's 200 */
        return;
    for (uint32_t i = 0; i < n && budget > 0; i++, budget--) {
        if (below(4) == 0) {
            const char *op = top_ops[below(sizeof top_ops / sizeof top_ops[0])];
            bson_t arr, elem;

            if (strcmp(op, "$and") == 0 || strcmp(op, "$or") == 0 || strcmp(op, "$nor") == 0) {
                BSON_APPEND_ARRAY_BEGIN(doc, op, &arr);
                for (uint32_t j = 0, m = below(5); j < m; j++) {
                    char idx[12];

                    snprintf(idx, sizeof idx, "%u", j);
                    bson_append_document_begin(&arr, idx, -1, &elem);
                    gen_filter(&elem, depth + 2, budget / 2);
                    bson_append_document_end(&arr, &elem);
                }
                bson_append_array_end(doc, &arr);
            } else {
                gen_value(doc, op, depth + 1, budget / 2);
            }
        } else {
            gen_value(doc, field_names[below(sizeof field_names / sizeof field_names[0])],
                      depth + 1, budget);
        }
    }
}

static void
gen_sort(bson_t *doc, const char *key)
{
    bson_t sort;

    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sort);
    for (uint32_t i = 0, n = below(4); i < n; i++) {
        const char *f = field_names[below(sizeof field_names / sizeof field_names[0])];

        int32_t dir = below(2) ? 1 : -1;

        if (below(6) == 0)
            gen_value(&sort, f, 80, 1);
        else
            BSON_APPEND_INT32(&sort, f, dir);
    }
    bson_append_document_end(doc, &sort);
}

/*
 * A filter nested as deep as wire_doc_check allows, each level a random
 * wrapper ($and, $or, $nor, $elemMatch, $not, a subdocument, an array), a
 * random filter at the bottom.
 */
static void
gen_chain(bson_t *doc, int levels)
{
    bson_t a, b;
    const char *f = field_names[below(sizeof field_names / sizeof field_names[0])];
    const char *logical = below(2) ? "$and" : (below(2) ? "$or" : "$nor");
    const char *wrapper = below(3) ? "$elemMatch" : "$not";

    if (levels <= 0) {
        gen_filter(doc, 88, 6);
        return;
    }
    switch (below(6)) {
    case 0:
    case 1:
    case 2:
        BSON_APPEND_ARRAY_BEGIN(doc, logical, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&a, "0", &b);
        gen_chain(&b, levels - 1);
        bson_append_document_end(&a, &b);
        bson_append_array_end(doc, &a);
        break;
    case 3:
    case 4:
        BSON_APPEND_DOCUMENT_BEGIN(doc, f, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&a, wrapper, &b);
        gen_chain(&b, levels - 1);
        bson_append_document_end(&a, &b);
        bson_append_document_end(doc, &a);
        break;
    default:
        BSON_APPEND_DOCUMENT_BEGIN(doc, f, &a);
        gen_chain(&a, levels - 1);
        bson_append_document_end(doc, &a);
        break;
    }
    if (below(2))
        gen_scalar(doc, "side");
}

/* A random command and, for update/delete, maybe its statements as a sequence. */
static void
gen_command(bson_t *body, uint8_t **seq, size_t *seq_len, const char **seq_id)
{
    static const char *const names[] = {"find",   "aggregate", "count",         "distinct",
                                        "update", "delete",    "findAndModify", "insert"};
    const char *name = names[below(sizeof names / sizeof names[0])];
    bson_t sub, arr, stage;
    uint32_t budget = 20 + below(200);

    *seq = NULL;
    *seq_len = 0;
    *seq_id = NULL;
    bson_init(body);
    if (below(20) == 0) {
        BSON_APPEND_INT32(body, name, 1);
    } else {
        const char *coll = below(10) ? "coll" : "c\x01ll";

        BSON_APPEND_UTF8(body, name, coll);
    }
    if (strcmp(name, "aggregate") == 0) {
        BSON_APPEND_ARRAY_BEGIN(body, "pipeline", &arr);
        for (uint32_t i = 0, n = below(5); i < n; i++) {
            char idx[12];
            uint32_t kind = below(4);

            snprintf(idx, sizeof idx, "%u", i);
            bson_append_document_begin(&arr, idx, -1, &stage);
            if (kind == 0) {
                BSON_APPEND_DOCUMENT_BEGIN(&stage, "$match", &sub);
                gen_filter(&sub, 3, (int)budget);
                bson_append_document_end(&stage, &sub);
            } else if (kind == 1) {
                gen_sort(&stage, "$sort");
            } else if (kind == 2) {
                BSON_APPEND_DOCUMENT_BEGIN(&stage, "$lookup", &sub);
                const char *from = below(2) ? "other" : "";
                const char *field = field_names[below(5)];

                if (below(4))
                    BSON_APPEND_UTF8(&sub, "from", from);
                /* a field name, or junk of another type: never a value */
                if (below(4))
                    BSON_APPEND_UTF8(&sub, "foreignField", field);
                else if (below(2))
                    BSON_APPEND_INT32(&sub, "foreignField", 1);
                bson_append_document_end(&stage, &sub);
            } else {
                BSON_APPEND_INT32(&stage, "$limit", 5);
            }
            bson_append_document_end(&arr, &stage);
        }
        bson_append_array_end(body, &arr);
    } else if (strcmp(name, "update") == 0 || strcmp(name, "delete") == 0) {
        const char *key = name[0] == 'u' ? "updates" : "deletes";
        bool in_seq = below(2);

        if (!in_seq)
            BSON_APPEND_ARRAY_BEGIN(body, key, &arr);
        for (uint32_t i = 0, n = below(6); i < n; i++) {
            bson_t st = BSON_INITIALIZER;

            BSON_APPEND_DOCUMENT_BEGIN(&st, "q", &sub);
            gen_filter(&sub, 4, (int)budget);
            bson_append_document_end(&st, &sub);
            if (below(3) == 0)
                gen_sort(&st, "sort");
            if (below(4) == 0)
                gen_value(&st, below(2) ? "hint" : "collation", 80, 1);
            if (in_seq) {
                *seq = realloc(*seq, *seq_len + st.len);
                memcpy(*seq + *seq_len, bson_get_data(&st), st.len);
                *seq_len += st.len;
            } else {
                char idx[12];

                snprintf(idx, sizeof idx, "%u", i);
                BSON_APPEND_DOCUMENT(&arr, idx, &st);
            }
            bson_destroy(&st);
        }
        if (!in_seq)
            bson_append_array_end(body, &arr);
        else
            *seq_id = key;
    } else {
        BSON_APPEND_DOCUMENT_BEGIN(body, name[0] == 'f' && name[4] == '\0' ? "filter" : "query",
                                   &sub);
        if (below(25) == 0)
            gen_chain(&sub, 70 + (int)below(60)); /* some of these pass 200 levels: refused */
        else
            gen_filter(&sub, 2, (int)budget);
        bson_append_document_end(body, &sub);
        if (below(2))
            gen_sort(body, "sort");
    }
    if (below(5) == 0)
        gen_value(body, "collation", 80, 1);
    if (below(5) == 0)
        gen_value(body, "hint", 80, 1);
    {
        const char *db = below(10) ? "db"
                                   : "d\xff"
                                     "b";

        if (below(30))
            BSON_APPEND_UTF8(body, "$db", db);
    }
}

/* Extract from a generated command; false when wire_doc_check refuses it (not a failure). */
static bool
extract_generated(const bson_t *body, const uint8_t *seq, size_t seq_len, const char *seq_id,
                  struct advice_shapes *out)
{
    struct advice_sequence s = {seq_id, seq, (uint32_t)seq_len};
    struct wire_cmd cmd;
    bson_error_t error;
    uint32_t len;

    out->n = 0;
    if (!wire_doc_check(bson_get_data(body), body->len, 0, &len, &error) ||
        !wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error)) {
        if (getenv("ADVICE_DEBUG"))
            diag("refused: %s", error.message);
        return false;
    }
    /* the proxy checks sequence documents too (wire_msg_parse) */
    for (size_t off = 0; seq && off < seq_len; off += len) {
        if (!wire_doc_check(seq + off, seq_len - off, 0, &len, &error))
            return false;
    }
    advice_shape_extract(body, &cmd, seq_id ? &s : NULL, seq_id ? 1 : 0, out);
    return true;
}

static void
check_generated(void)
{
    uint32_t bad = 0, refused = 0, with_shapes = 0, unstable = 0;

    for (uint32_t i = 0; i < GENERATED; i++) {
        struct advice_shapes out, again;
        uint64_t state;
        uint8_t *seq, *seq2;
        size_t seq_len, seq2_len;
        const char *seq_id, *seq2_id, *why;
        bson_t body, body2;

        /* the same command twice from one state: once with its values, once with others */
        state = rng_state;
        vary = false;
        gen_command(&body, &seq, &seq_len, &seq_id);
        rng_state = state;
        vary = true;
        gen_command(&body2, &seq2, &seq2_len, &seq2_id);
        if (!extract_generated(&body, seq, seq_len, seq_id, &out)) {
            refused++;
        } else {
            if (out.n > 0)
                with_shapes++;
            why = invariants(&out);
            if (why && bad++ < 5) {
                char *j = bson_as_relaxed_extended_json(&body, NULL);

                diag("generated %u: %s: %s", i, why, j);
                bson_free(j);
            }
            if (extract_generated(&body2, seq2, seq2_len, seq2_id, &again)) {
                bool same = again.n == out.n;

                for (uint32_t k = 0; same && k < out.n; k++)
                    same = again.shape[k].hash == out.shape[k].hash;
                if (!same && unstable++ < 3) {
                    char *j = bson_as_relaxed_extended_json(&body, NULL);

                    diag("generated %u: other values, other shapes: %s", i, j);
                    bson_free(j);
                }
                advice_shapes_cleanup(&again);
            }
        }
        advice_shapes_cleanup(&out);
        bson_destroy(&body);
        bson_destroy(&body2);
        free(seq);
        free(seq2);
        rng_state ^= (uint64_t)i * 0x9e3779b97f4a7c15ull; /* the next command from elsewhere */
        if (rng_state == 0)
            rng_state = 1;
    }
    is_int(bad, 0, "%d generated commands (%u refused by wire_doc_check, %u with shapes): sane",
           GENERATED, refused, with_shapes);
    is_int(unstable, 0, "the same commands with other values: the same shapes and hashes");
}

int
main(void)
{
    const char *top = getenv("abs_top_srcdir");
    const char *seed_env = getenv("ADVICE_SEED");
    char dir[4096];
    int w;

    rng_state = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed5eedull;
    if (rng_state == 0)
        rng_state = 1;
    diag("seed 0x%llx (set ADVICE_SEED to change it)", (unsigned long long)rng_state);
    if (!ok(top != NULL && top[0] != '\0', "abs_top_srcdir is set (run through make check)"))
        return done_testing();
    w = snprintf(dir, sizeof dir, "%s/%s", top, FIXTURE_DIR);
    if (!ok(w > 0 && (size_t)w < sizeof dir, "fixture path fits"))
        return done_testing();
    load(dir);
    for (size_t i = 0; i < N_EXPECTS; i++) {
        bool found = false;

        for (size_t j = 0; j < n_fixtures; j++)
            found = found || strcmp(fixtures[j].name, expects[i].file) == 0;
        ok(found, "%s is in the directory", expects[i].file);
    }
    for (size_t i = 0; i < n_fixtures; i++) {
        if (fixtures[i].data)
            check_recorded(&fixtures[i]);
    }
    for (size_t i = 0; i < n_fixtures; i++) {
        if (fixtures[i].data)
            check_mutations(&fixtures[i]);
    }
    check_generated();
    ok(checked_shapes > 1000, "%llu shapes checked in all", (unsigned long long)checked_shapes);
    for (size_t i = 0; i < n_fixtures; i++)
        free(fixtures[i].data);
    return done_testing();
}
