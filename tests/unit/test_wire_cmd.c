/*
 * tests/unit/test_wire_cmd.c: owns the tests of wire/cmd.c: command name,
 * $db, collection, session/transaction fields, duplicate top-level keys and
 * the hello-name check. It does not test BSON validation (test_wire_doc.c).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "tests/unit/cmd_same.h"
#include "wire/cmd.h"
#include "wire/frame.h"

#include <stdlib.h>
#include <string.h>

enum flag {
    TXN = 1 << 1,
    AUTOCOMMIT = 1 << 2,
    DUP = 1 << 4,
};

struct cmd_case {
    const char *name;
    const char *body;
    uint32_t code; /* 0: parses */
    const char *cmd_name;
    const char *db;
    const char *coll;
    unsigned flags;
};

/* 64 bytes of key: with one more byte, a key whose length is 1 mod 64. */
#define K64 "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"

static const struct cmd_case cmd_cases[] = {
    {"find with $db", "{'find': 'users', 'filter': {'a': 1}, '$db': 'test'}", 0, "find", "test",
     "users", 0},
    {"ping has no collection", "{'ping': 1, '$db': 'admin'}", 0, "ping", "admin", NULL, 0},
    {"no $db", "{'hello': 1}", 0, "hello", NULL, NULL, 0},
    {"$db before the rest", "{'count': 'c', '$db': 'x', 'query': {}}", 0, "count", "x", "c", 0},
    {"empty collection string", "{'find': '', '$db': 'd'}", 0, "find", "d", "", 0},
    {"collection that is a document is not a collection", "{'aggregate': {'a': 1}, '$db': 'd'}",
     0, "aggregate", "d", NULL, 0},
    {"collection that is a number is not a collection", "{'find': 1, '$db': 'd'}", 0, "find",
     "d", NULL, 0},
    {"session and transaction fields",
     "{'find': 'c', 'lsid': {'id': 1}, 'txnNumber': 5, 'autocommit': false, "
     "'startTransaction': true, '$db': 'd'}",
     0, "find", "d", "c", TXN | AUTOCOMMIT},
    {"lsid only", "{'find': 'c', 'lsid': {'id': 1}, '$db': 'd'}", 0, "find", "d", "c", 0},
    {"transaction fields inside a subdocument do not count",
     "{'find': 'c', 'filter': {'lsid': 1, 'txnNumber': 2}, '$db': 'd'}", 0, "find", "d", "c", 0},
    {"field names are case-sensitive", "{'find': 'c', 'LSID': 1, 'TxnNumber': 1}", 0, "find",
     NULL, "c", 0},
    {"duplicate key", "{'find': 'a', 'find': 'b', '$db': 'd'}", 0, "find", "d", "a", DUP},
    {"duplicate $db (the last one wins)", "{'find': 'a', '$db': 'd', '$db': 'e'}", 0, "find",
     "e", "a", DUP},
    {"duplicate non-adjacent", "{'a': 1, 'b': 2, 'c': 3, 'a': 4}", 0, "a", NULL, NULL, DUP},
    {"names and keys one byte off them are no duplicates",
     "{'find': 'c', 'finD': 1, 'lsid': 1, 'lsiD': 2, 'limit': 1, '$db': 'd', 'db': 1}", 0, "find",
     "d", "c", 0},
    {"a name repeated among other keys", "{'find': 'c', 'x': 1, 'lsid': 1, 'y': 2, 'lsid': 3}",
     0, "find", NULL, "c", DUP},
    {"an unknown key repeated among names", "{'find': 'c', 'x': 1, 'lsid': 1, 'x': 2}", 0,
     "find", NULL, "c", DUP},
    {"same key at different levels is no duplicate", "{'a': 1, 'b': {'a': 1}}", 0, "a", NULL,
     NULL, 0},
    {"keys differing only by prefix", "{'ab': 1, 'a': 1, 'abc': 1}", 0, "ab", NULL, NULL, 0},
    /* Unknown keys are compared only when two have lengths equal mod 64. */
    {"keys of 1 and 65 bytes (equal lengths mod 64) are no duplicates",
     "{'a': 1, '" K64 "x': 1, 'b': 1}", 0, "a", NULL, NULL, 0},
    {"two 65-byte keys one byte apart are no duplicates",
     "{'a': 1, '" K64 "x': 1, '" K64 "y': 1}", 0, "a", NULL, NULL, 0},
    {"a 65-byte key twice, after a 1-byte one",
     "{'a': 1, '" K64 "x': 1, '" K64 "x': 2}", 0, "a", NULL, NULL, DUP},
    {"a 65-byte key twice", "{'find': 'c', '" K64 "x': 1, '" K64 "x': 2}", 0, "find", NULL,
     "c", DUP},
    {"empty body", "{}", WIRE_ERR_COMMAND_NOT_FOUND, NULL, NULL, NULL, 0},
    {"$db is a number", "{'ping': 1, '$db': 1}", WIRE_ERR_TYPE_MISMATCH, NULL, NULL, NULL, 0},
    {"$db is null", "{'ping': 1, '$db': null}", WIRE_ERR_TYPE_MISMATCH, NULL, NULL, NULL, 0},
    {"$db is a document", "{'ping': 1, '$db': {'a': 'b'}}", WIRE_ERR_TYPE_MISMATCH, NULL, NULL,
     NULL, 0},
    {"$db first and a string", "{'$db': 'd'}", 0, "$db", "d", "d", 0},
    {"$db first and not a string", "{'$db': true}", WIRE_ERR_TYPE_MISMATCH, NULL, NULL, NULL, 0},
};

static bool
same_str(const char *got, uint32_t got_len, const char *want)
{
    if (!got || !want)
        return got == want;
    return got_len == strlen(want) && strcmp(got, want) == 0;
}

static void
test_cmd_cases(void)
{
    for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
        const struct cmd_case *c = &cmd_cases[i];
        bson_t *body = json(c->body);
        struct wire_cmd cmd;
        bson_error_t error;
        bool got = wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error);
        unsigned flags;

        if (c->code != 0) {
            ok(!got && error.domain == WIRE_ERROR_DOMAIN && error.code == c->code,
               "cmd rejected: %s (%s)", c->name, error.message);
            bson_destroy(body);
            continue;
        }
        if (!ok(got, "cmd parses: %s", c->name)) {
            diag("%s", error.message);
            bson_destroy(body);
            continue;
        }
        flags = (cmd.has_txn_number ? TXN : 0) | (cmd.has_autocommit ? AUTOCOMMIT : 0) |
                (cmd.has_duplicate_top_level_key ? DUP : 0);
        ok(strcmp(cmd.name, c->cmd_name) == 0 && same_str(cmd.db, cmd.db_len, c->db) &&
               same_str(cmd.coll, cmd.coll_len, c->coll) && flags == c->flags,
           "cmd fields: %s", c->name);
        ok(cmd.name > (const char *)bson_get_data(body) &&
               cmd.name < (const char *)bson_get_data(body) + body->len,
           "cmd name points inside the body: %s", c->name);
        bson_destroy(body);
    }
}

/* A body with n int32 keys "k0".."k{n-1}", plus a repeat of "k{dup}" when dup >= 0. */
static bson_t *
many_keys(int n, int dup)
{
    bson_t *b = bson_new();
    char key[16];

    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%d", i);
        BSON_APPEND_INT32(b, key, i);
    }
    if (dup >= 0) {
        snprintf(key, sizeof key, "k%d", dup);
        BSON_APPEND_INT32(b, key, -1);
    }
    return b;
}

static void
test_many_keys(void)
{
    /* Past 256 keys the check is skipped and a duplicate reported (uncacheable). */
    static const struct {
        int n, dup;
        bool reported;
    } sizes[] = {{31, -1, false},  {32, -1, false},  {33, -1, false},  {256, -1, false},
                 {257, -1, true},  {500, -1, true},  {31, 0, true},    {33, 32, true},
                 {256, 255, true}, {500, 250, true}, {5000, 4999, true}};

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bson_t *b = many_keys(sizes[i].n, sizes[i].dup);
        struct wire_cmd cmd;
        bson_error_t error;
        bool got = wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error);

        ok(got && cmd.has_duplicate_top_level_key == sizes[i].reported &&
               strcmp(cmd.name, "k0") == 0,
           "%d keys %s duplicate: %s", sizes[i].n, sizes[i].dup >= 0 ? "with a" : "without",
           sizes[i].reported ? "reported" : "not reported");
        bson_destroy(b);
    }
}

/*
 * n keys that differ only in length (growing "d", "dd", ... and shrinking
 * "eee...", each a prefix of the one before) or only in their last byte, so
 * that a check that compared prefixes, first bytes or lengths alone would
 * see duplicates that are not there; key j is a copy of key i when i >= 0.
 */
static bson_t *
keys_body(int n, int i, int j)
{
    bson_t *b = bson_new();
    char key[80];

    for (int k = 0; k < n; k++) {
        int src = k == j ? i : k;

        if (src % 3 == 0) { /* longer and longer: d, dd, ddd, ... */
            memset(key, 'd', (size_t)(src / 3 + 1));
            key[src / 3 + 1] = '\0';
        } else if (src % 3 == 1) { /* shorter and shorter: each a prefix of the one before */
            memset(key, 'e', (size_t)(40 - src / 3));
            key[40 - src / 3] = '\0';
        } else { /* same length, last byte differs: kA, kB, ... */
            snprintf(key, sizeof key, "k%c", 'A' + src / 3);
        }
        BSON_APPEND_INT32(b, key, k);
    }
    return b;
}

/*
 * A duplicate found at every pair of positions for 2 to 64 keys (pairwise up
 * to 16 keys, sorted past that), and none reported when the
 * keys differ, even only in length.
 */
static void
test_duplicate_positions(void)
{
    for (int n = 2; n <= 64; n++) {
        unsigned pairs = 0, found = 0, clean = 0;
        struct wire_cmd cmd;
        bson_error_t error;
        bson_t *b = keys_body(n, -1, -1);

        clean = wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) &&
                !cmd.has_duplicate_top_level_key;
        bson_destroy(b);
        for (int j = 1; j < n; j++) {
            for (int i = 0; i < j; i++) {
                b = keys_body(n, i, j);
                pairs++;
                if (wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) &&
                    cmd.has_duplicate_top_level_key)
                    found++;
                else if (pairs - found <= 3)
                    diag("%d keys: key %d repeated at %d not reported", n, i, j);
                bson_destroy(b);
            }
        }
        ok(clean && found == pairs,
           "%d keys: no duplicate when all differ, the duplicate found at each of %u pairs (%u)",
           n, pairs, found);
    }
}

/* FNV-1a, as wire/cmd.c spreads keys over its table (to choose keys that collide there). */
static uint32_t
fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/*
 * 256 keys of one length that all land in one slot of wire/cmd.c's table
 * (a body built to make the check slow): still found, or not, exactly; the
 * check then sorts instead of probing 256 * 255 / 2 times. Key j is a copy
 * of key i when i >= 0.
 */
static bson_t *
colliding_keys(int i, int j)
{
    static char keys[256][8];
    static int found; /* keys chosen so far (once per run) */
    bson_t *b = bson_new();

    for (unsigned c = 0; found < 256; c++) {
        snprintf(keys[found], sizeof keys[found], "x%06u", c);
        if ((fnv1a(keys[found], 7) & 511) == 7)
            found++;
    }
    for (int k = 0; k < 256; k++)
        BSON_APPEND_INT32(b, keys[k == j ? i : k], k);
    return b;
}

static void
test_colliding_keys(void)
{
    static const int pairs[][2] = {{-1, -1}, {0, 1}, {0, 255}, {254, 255}, {100, 200}, {3, 17}};

    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        bson_t *b = colliding_keys(pairs[p][0], pairs[p][1]);
        struct wire_cmd cmd;
        bson_error_t error;

        ok(wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) &&
               cmd.has_duplicate_top_level_key == (pairs[p][0] >= 0),
           "256 keys in one hash slot, key %d repeated at %d (-1: none): %s", pairs[p][0],
           pairs[p][1], pairs[p][0] >= 0 ? "found" : "none found");
        bson_destroy(b);
    }
}

/* One body parsed from the check's top-level records and by walking: the same result. */
static bool
parse_both(const bson_t *b, const char *name)
{
    struct wire_doc_top top;
    struct wire_cmd walked, located;
    bson_error_t e1, e2;
    uint32_t len;
    bool w, l;

    if (!wire_doc_check_top(bson_get_data(b), b->len, 0, &len, &top, &e1)) {
        diag("%s: %s", name, e1.message);
        return false;
    }
    w = wire_cmd_parse(bson_get_data(b), b->len, &walked, &e1);
    l = wire_cmd_parse_top(bson_get_data(b), b->len, &top, &located, &e2);
    if (w != l || (!w && e1.code != e2.code) || (w && !cmd_same(&walked, &located))) {
        diag("%s: walked %d (%s), located %d (%s)", name, w, w ? "" : e1.message, l,
             l ? "" : e2.message);
        return false;
    }
    return true;
}

static void
test_parse_top(void)
{
    static const int sizes[] = {1, 2, 16, 17, 31, 32, 33, 300};
    size_t same = 0, n = sizeof cmd_cases / sizeof cmd_cases[0];

    for (size_t i = 0; i < n; i++) {
        bson_t *b = json(cmd_cases[i].body);

        same += parse_both(b, cmd_cases[i].name);
        bson_destroy(b);
    }
    ok(same == n, "every case parses alike from the check's records and by a walk (%zu of %zu)",
       same, n);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bson_t *b = many_keys(sizes[i], -1);
        bson_t *d = many_keys(sizes[i], sizes[i] - 1);

        ok(parse_both(b, "many keys") && parse_both(d, "many keys, one repeated"),
           "%d keys, with and without a duplicate: the same from records and by a walk",
           sizes[i]);
        bson_destroy(b);
        bson_destroy(d);
    }
}

/* The command name is classified once, exactly (wire/names.h). */
static void
test_name_id(void)
{
    static const struct {
        const char *body;
        enum wire_name id;
    } cases[] = {
        {"{'find': 'c'}", WIRE_NAME_FIND},
        {"{'aggregate': 'c'}", WIRE_NAME_AGGREGATE},
        {"{'isMaster': 1}", WIRE_NAME_IS_MASTER},
        {"{'ismaster': 1}", WIRE_NAME_ISMASTER},
        {"{'mongocacheStats': 1}", WIRE_NAME_MONGOCACHE_STATS},
        {"{'Find': 'c'}", WIRE_NAME_UNKNOWN},
        {"{'finds': 'c'}", WIRE_NAME_UNKNOWN},
        {"{'fin': 'c'}", WIRE_NAME_UNKNOWN},
        {"{'ping': 1}", WIRE_NAME_UNKNOWN},
        {"{'lsid': {}, 'find': 'c'}", WIRE_NAME_LSID},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *b = json(cases[i].body);
        struct wire_cmd cmd;
        bson_error_t error;

        ok(wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) && cmd.name_id == cases[i].id,
           "name id of %s", cases[i].body);
        bson_destroy(b);
    }
}

/* The located elements: each offset is its element's type byte, in order; all of them up to 32. */
static void
test_elements(void)
{
    static const int sizes[] = {1, 2, 31, 32, 33, 300};

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bson_t *b = many_keys(sizes[i], -1);
        struct wire_cmd cmd;
        bson_error_t error;
        bson_iter_t it;
        uint32_t k = 0;
        bool same = wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) &&
                    bson_iter_init(&it, b);

        while (same && k < cmd.n_elems && bson_iter_next(&it)) {
            same = cmd.elem_off[k] == bson_iter_key(&it) - 1 - (const char *)bson_get_data(b);
            k++;
        }
        ok(same && k == (uint32_t)(sizes[i] < WIRE_CMD_MAX_ELEMS ? sizes[i] : WIRE_CMD_MAX_ELEMS) &&
               cmd.elems_all == (sizes[i] <= WIRE_CMD_MAX_ELEMS),
           "%d keys: %u elements located, %s", sizes[i], k, cmd.elems_all ? "all" : "not all");
        bson_destroy(b);
    }
}

/* Two element lists are the same when every field of every element is. */
static bool
same_elems(const struct wire_cmd_elem *a, const struct wire_cmd_elem *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (a[i].start != b[i].start || a[i].len != b[i].len || a[i].type != b[i].type ||
            a[i].key != b[i].key || a[i].key_len != b[i].key_len || a[i].id != b[i].id ||
            a[i].value != b[i].value || a[i].doc != b[i].doc || a[i].doc_len != b[i].doc_len)
            return false;
    }
    return true;
}

/* Walks body (cmd as given) into e[]; the number of elements. */
static uint32_t
walk_all(const struct wire_cmd *cmd, const bson_t *body, struct wire_cmd_elem *e, uint32_t max)
{
    struct wire_cmd_walk w;
    uint32_t n = 0;

    wire_cmd_walk_init(&w, cmd, bson_get_data(body), body->len);
    while (n < max && wire_cmd_walk_next(&w, &e[n]))
        n++;
    return n;
}

/*
 * wire_cmd_walk: from the records and by walking the body, the same
 * elements, each the bytes bson_iter sees, with its key's id; a record of
 * another body, or an incomplete one, is not used.
 */
static void
test_walk(void)
{
    static const char *const bodies[] = {
        "{'find': 'users', 'filter': {'a': {'$gt': 1}}, 'sort': {'b': -1}, 'batchSize': 2, "
        "'lsid': {'id': 1}, 'comment': 'x', 'tags': [1, 'two', {'three': 3.5}], "
        "'aNameLongerThanAnyKnownName_0123456789': true, 'n': null, '$db': 'test'}",
        "{'ping': 1}",
    };
    struct wire_cmd_elem located[64], walked[64], other[64];

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        bson_t *b = json(bodies[i]);
        struct wire_cmd cmd, copy;
        bson_error_t error;
        bson_iter_t it, at;
        uint32_t n, m, k = 0;
        bool same = true;

        if (!wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error)) {
            ok(false, "body %zu parses: %s", i, error.message);
            continue;
        }
        copy = cmd;
        copy.elems_all = false;
        n = walk_all(&cmd, b, located, 64);
        m = walk_all(&copy, b, walked, 64);
        ok(n == m && n == cmd.n_elems && same_elems(located, walked, n),
           "body %zu: %u elements from the records, %u by walking, the same", i, n, m);
        n = walk_all(NULL, b, other, 64);
        ok(n == m && same_elems(other, walked, n), "body %zu: a walk without cmd too", i);
        (void)bson_iter_init(&it, b);
        while (same && k < m && bson_iter_next(&it)) {
            same = located[k].start == bson_get_data(b) + it.off &&
                   located[k].len == it.next_off - it.off &&
                   located[k].type == (uint8_t)bson_iter_type(&it) &&
                   strcmp(located[k].key, bson_iter_key(&it)) == 0 &&
                   located[k].id == wire_names_lookup(bson_iter_key(&it), bson_iter_key_len(&it)) &&
                   wire_cmd_elem_iter(&located[k], &at) && at.off == it.off &&
                   at.next_off == it.next_off && bson_iter_type(&at) == bson_iter_type(&it);
            k++;
        }
        ok(same && k == m, "body %zu: each element is the one bson_iter sees (%u of %u)", i, k, m);
        bson_destroy(b);
    }

    /* Records of another body are not read: the walk sees this one. */
    {
        bson_t *a = json("{'find': 'a', '$db': 'x'}");
        bson_t *b = json("{'count': 'bb', 'query': {}, '$db': 'y'}");
        struct wire_cmd cmd_a;
        bson_error_t error;
        uint32_t n;

        n = wire_cmd_parse(bson_get_data(a), a->len, &cmd_a, &error)
                ? walk_all(&cmd_a, b, other, 64)
                : 0;
        ok(n == 3 && other[0].id == WIRE_NAME_COUNT && other[2].id == WIRE_NAME_DOLLAR_DB,
           "another body's records are not used (%u elements)", n);
        bson_destroy(a);
        bson_destroy(b);
    }

    /* Past WIRE_CMD_MAX_ELEMS the records are incomplete: every element by walking. */
    {
        bson_t *b = many_keys(WIRE_CMD_MAX_ELEMS + 8, -1);
        struct wire_cmd cmd;
        bson_error_t error;
        uint32_t n;

        n = wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) ? walk_all(&cmd, b, other, 64)
                                                                   : 0;
        ok(n == WIRE_CMD_MAX_ELEMS + 8 && !cmd.elems_all, "%u keys: all %u walked",
           WIRE_CMD_MAX_ELEMS + 8, n);
        bson_destroy(b);
    }
}

static void
test_bad_bodies(void)
{
    /* {a: 1} handed over short, and a body whose second element is cut. */
    static const uint8_t short_len[] = "\x0c\0\0\0\x10" "a\0" "\x01\0\0\0" "\0";
    static const uint8_t bad_second[] = "\x10\0\0\0\x10" "a\0" "\x01\0\0\0" "\x02" "b\0" "\0\0";
    struct wire_cmd cmd;
    bson_error_t error;

    ok(!wire_cmd_parse(short_len, 11, &cmd, &error) && error.code == WIRE_ERR_INVALID_BSON,
       "cmd rejected: length field larger than the buffer");
    ok(!wire_cmd_parse(short_len, 3, &cmd, &error), "cmd rejected: 3-byte body");
    ok(!wire_cmd_parse(bad_second, sizeof bad_second - 1, &cmd, &error) &&
           error.code == WIRE_ERR_INVALID_BSON,
       "cmd rejected: unchecked body with a truncated second element (%s)", error.message);
}

/*
 * A $db holding a NUL (found by tests/fuzz/fuzz_client_msg): mongod refuses
 * such a name, but the cache key read $db as a C string and left the field
 * itself out, so {find: "c", $db: "app\0x"} had the key of $db "app" and was
 * answered from app.c's cached reply. wire_cmd_parse now refuses it (the
 * command then goes to the server uncached, which answers with its error).
 */
static void
test_db_with_nul(void)
{
    static const char with_nul[] = "app\0x";
    struct wire_cmd cmd;
    bson_error_t error;
    bson_t *b = bson_new();

    BSON_APPEND_UTF8(b, "find", "c");
    bson_append_utf8(b, "$db", 3, with_nul, (int)sizeof with_nul - 1);
    ok(!wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) &&
           error.domain == WIRE_ERROR_DOMAIN && error.code == WIRE_ERR_INVALID_NAMESPACE,
       "cmd rejected: $db with a NUL inside (%s)", error.message);
    bson_destroy(b);

    b = bson_new();
    BSON_APPEND_UTF8(b, "find", "c");
    bson_append_utf8(b, "$db", 3, with_nul, 3);
    ok(wire_cmd_parse(bson_get_data(b), b->len, &cmd, &error) && cmd.db_len == 3 &&
           strcmp(cmd.db, "app") == 0,
       "cmd parses: the same $db without the NUL");
    bson_destroy(b);
}

struct hello_case {
    const char *name;
    bool want;
};

static const struct hello_case hello_cases[] = {
    {"hello", true},     {"isMaster", true},  {"ismaster", true}, {"Hello", false},
    {"HELLO", false},    {"ISMASTER", false}, {"isMaster ", false}, {"helloo", false},
    {"hell", false},     {"", false},         {"ping", false},    {"IsMaster", false},
};

static void
test_is_hello(void)
{
    for (size_t i = 0; i < sizeof hello_cases / sizeof hello_cases[0]; i++)
        ok(wire_cmd_is_hello(hello_cases[i].name) == hello_cases[i].want, "is_hello(\"%s\") is %s",
           hello_cases[i].name, hello_cases[i].want ? "true" : "false");
    ok(!wire_cmd_is_hello(NULL), "is_hello(NULL) is false");
}

int
main(void)
{
    test_cmd_cases();
    test_many_keys();
    test_duplicate_positions();
    test_colliding_keys();
    test_name_id();
    test_parse_top();
    test_elements();
    test_walk();
    test_bad_bodies();
    test_db_with_nul();
    test_is_hello();
    return done_testing();
}
