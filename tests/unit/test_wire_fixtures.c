/*
 * tests/unit/test_wire_fixtures.c: owns running the wire/ parsers over real
 * traffic: the messages in tests/fixtures/wire/ that capture.py recorded
 * between pymongo, the Node driver, Mongoose and FerretDB. For every file:
 * the header (wire_frame_header), the parser of its opcode, the command name
 * in the file name against wire_cmd_parse, the flags, sequences and counts in
 * the table below, request/reply pairing, rejection of truncated copies,
 * single-byte corruptions of section kinds and lengths (rejected, or accepted
 * consistently) and the wire_msg_rebuild / wire_msg_rebuild_query round
 * trips. The fixtures are found through $abs_top_srcdir (set by make check),
 * never the working directory. It does not test each parser rule on its own
 * (test_wire_msg.c, test_wire_doc.c, test_wire_cmd.c do).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/cmd.h"
#include "wire/doc.h"
#include "wire/frame.h"
#include "wire/msg.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIXTURE_DIR "tests/fixtures/wire"
#define MAX_FIXTURES 128
#define MAX_NAME 256
/* Evenly spread cut positions per message, plus the header and section edges. */
#define N_CUTS 20
#define MAX_CUTS (N_CUTS + 32)
#define MAX_EDITS 64
#define MAX_EDGES (WIRE_MSG_MAX_SEQUENCES + 2)
#define OP_REPLY_DOCS_AT (WIRE_HEADER_LEN + 20)
#define OP_MSG_SECTIONS_AT (WIRE_HEADER_LEN + 4)
/* A failure reason: room for a bson_error_t message and some words around it. */
#define WHY_LEN 640

/*
 * What each captured message must parse to. Every .bin in the directory must
 * have a row and every row a file, so a fixture cannot go missing unseen.
 */
struct expect {
    const char *file;
    const char *first_key; /* first key of the OP_MSG body / OP_QUERY query / first reply doc */
    uint32_t flags;        /* OP_MSG flag word (0 for the legacy opcodes) */
    const char *seq_id;    /* the one kind-1 section, or NULL when there is none */
    int32_t count;         /* documents in seq_id; for OP_REPLY numberReturned */
    bool lsid;             /* the body carries an lsid */
};

static const struct expect expects[] = {
    {"mongoose-c2s-06-op_msg-find.bin", "find", 0, NULL, 0, true},
    {"mongoose-s2c-06-op_msg.bin", "cursor", 0, NULL, 0, false},
    {"node-c2s-01-op_query-ismaster.bin", "ismaster", 0, NULL, 0, false},
    {"node-c2s-03-op_msg-insert.bin", "insert", 0, NULL, 0, true}, /* documents in the body */
    {"node-s2c-01-op_reply.bin", "helloOk", 0, NULL, 1, false},
    {"pymongo-auth-c2s-03-op_msg-saslStart.bin", "saslStart", 0, NULL, 0, false},
    {"pymongo-auth-c2s-04-op_msg-saslContinue.bin", "saslContinue", 0, NULL, 0, false},
    {"pymongo-auth-s2c-03-op_msg.bin", "conversationId", 0, NULL, 0, false},
    {"pymongo-auth-s2c-04-op_msg.bin", "conversationId", 0, NULL, 0, false},
    {"pymongo-c2s-01-op_msg-ismaster.bin", "ismaster", 0, NULL, 0, false},
    {"pymongo-c2s-02-op_msg-hello.bin", "hello", 0, NULL, 0, false},
    {"pymongo-c2s-06-op_msg-insert.bin", "insert", 0, "documents", 10, true},
    {"pymongo-c2s-07-op_msg-update.bin", "update", 0, "updates", 1, true},
    {"pymongo-c2s-08-op_msg-delete.bin", "delete", 0, "deletes", 1, true},
    {"pymongo-c2s-09-op_msg-find.bin", "find", 0, NULL, 0, true},
    {"pymongo-c2s-10-op_msg-getMore.bin", "getMore", 0, NULL, 0, true},
    {"pymongo-c2s-14-op_msg-killCursors.bin", "killCursors", 0, NULL, 0, true},
    {"pymongo-c2s-15-op_msg-aggregate.bin", "aggregate", 0, NULL, 0, true},
    /* w:0: moreToCome, and no lsid (unacknowledged writes carry no session) */
    {"pymongo-c2s-17-op_msg-insert.bin", "insert", WIRE_MSG_MORE_TO_COME, "documents", 1, false},
    {"pymongo-s2c-01-op_msg.bin", "helloOk", 0, NULL, 0, false},
    {"pymongo-s2c-02-op_msg.bin", "isWritablePrimary", 0, NULL, 0, false},
    {"pymongo-s2c-06-op_msg.bin", "n", 0, NULL, 0, false},
    {"pymongo-s2c-09-op_msg.bin", "cursor", 0, NULL, 0, false},
    {"pymongo-s2c-10-op_msg.bin", "cursor", 0, NULL, 0, false},
    {"pymongo-s2c-14-op_msg.bin", "cursorsKilled", 0, NULL, 0, false},
    {"pymongo-s2c-15-op_msg.bin", "cursor", 0, NULL, 0, false},
    /* FerretDB answers the moreToCome insert above, which mongod never does */
    {"pymongo-s2c-17-op_msg.bin", "n", 0, NULL, 0, false},
};

#define N_EXPECTS (sizeof expects / sizeof expects[0])

/* One .bin file: what its name says and its bytes. */
struct fixture {
    char name[MAX_NAME];
    char client[64];
    bool c2s;
    unsigned long nn;
    int32_t opcode;          /* from the <opcode> part of the name */
    char cmd[64];            /* <cmdname> for requests, "" for replies */
    const struct expect *row;
    uint8_t *data;           /* exactly len bytes, so ASan sees any over-read */
    size_t len;
    struct wire_header header;
    bool header_ok;
};

static struct fixture fixtures[MAX_FIXTURES];
static size_t n_fixtures;

/* ---- loading -------------------------------------------------------------- */

static int32_t
opcode_of(const char *token)
{
    if (strcmp(token, "op_msg") == 0)
        return WIRE_OP_MSG;
    if (strcmp(token, "op_query") == 0)
        return WIRE_OP_QUERY;
    if (strcmp(token, "op_reply") == 0)
        return WIRE_OP_REPLY;
    if (strcmp(token, "op_compressed") == 0)
        return WIRE_OP_COMPRESSED;
    return -1;
}

/*
 * Splits <client>-c2s-NN-<opcode>-<cmdname>.bin or <client>-s2c-NN-<opcode>.bin
 * (the client may itself contain dashes). False when the name has another shape.
 */
static bool
parse_name(const char *name, struct fixture *fx)
{
    char stem[MAX_NAME];
    const char *dir;
    char *p, *end, *dash;
    size_t n = strlen(name);

    if (n < 5 || n >= sizeof stem || strcmp(name + n - 4, ".bin") != 0)
        return false;
    memcpy(stem, name, n - 4);
    stem[n - 4] = '\0';
    dir = strstr(stem, "-c2s-");
    if (!dir)
        dir = strstr(stem, "-s2c-");
    if (!dir || (size_t)(dir - stem) >= sizeof fx->client)
        return false;
    memcpy(fx->client, stem, (size_t)(dir - stem));
    fx->client[dir - stem] = '\0';
    fx->c2s = dir[1] == 'c';

    p = stem + (dir - stem) + 5;
    errno = 0;
    fx->nn = strtoul(p, &end, 10);
    if (end == p || *end != '-' || errno != 0)
        return false;
    p = end + 1;
    dash = strchr(p, '-');
    if (dash)
        *dash = '\0';
    fx->opcode = opcode_of(p);
    if (fx->opcode < 0)
        return false;
    fx->cmd[0] = '\0';
    if (fx->c2s) {
        if (!dash || dash[1] == '\0' || strlen(dash + 1) >= sizeof fx->cmd)
            return false;
        strcpy(fx->cmd, dash + 1);
    } else if (dash) {
        return false;
    }
    return true;
}

/* Reads path into a buffer of exactly its size. */
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

/* Lists dir, loads every .bin in it; one TAP case per file plus one for the listing. */
static bool
load_fixtures(const char *dir)
{
    char path[4096];
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!ok(d != NULL, "opendir %s", dir)) {
        diag("%s", strerror(errno));
        return false;
    }
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);

        if (n < 5 || strcmp(de->d_name + n - 4, ".bin") != 0)
            continue;
        if (n_fixtures == MAX_FIXTURES) {
            diag("more than %d fixtures; raise MAX_FIXTURES", MAX_FIXTURES);
            break;
        }
        if (n >= MAX_NAME)
            continue;
        memcpy(fixtures[n_fixtures].name, de->d_name, n + 1);
        n_fixtures++;
    }
    closedir(d);
    qsort(fixtures, n_fixtures, sizeof fixtures[0], fixture_cmp);
    ok(n_fixtures > 0, "found %zu .bin fixtures", n_fixtures);

    for (size_t i = 0; i < n_fixtures; i++) {
        struct fixture *fx = &fixtures[i];
        int w = snprintf(path, sizeof path, "%s/%s", dir, fx->name);
        bool named = parse_name(fx->name, fx);

        if (w > 0 && (size_t)w < sizeof path)
            fx->data = read_file(path, &fx->len);
        ok(named && fx->data != NULL, "%s: name has the capture.py shape and the file reads",
           fx->name);
    }
    return n_fixtures > 0;
}

/* ---- one parse, whatever the opcode ----------------------------------------- */

union parsed {
    struct wire_msg msg;
    struct wire_query query;
    struct wire_reply reply;
};

/* Whether cmd's body has a top-level element named id. */
static bool
has_elem(const struct wire_cmd *cmd, enum wire_name id)
{
    for (uint32_t i = 0; i < cmd->n_elems; i++)
        if (cmd->elem_id[i] == id)
            return true;
    return false;
}

static bool
parse_any(int32_t opcode, const uint8_t *data, size_t len, union parsed *out,
          bson_error_t *error)
{
    memset(error, 0, sizeof *error);
    switch (opcode) {
    case WIRE_OP_MSG:
        return wire_msg_parse(data, len, 0, &out->msg, error);
    case WIRE_OP_QUERY:
        return wire_msg_parse_query(data, len, 0, &out->query, error);
    case WIRE_OP_REPLY:
        return wire_msg_parse_reply(data, len, 0, &out->reply, error);
    default:
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_PROTOCOL, "no parser for opcode %d",
                       (int)opcode);
        return false;
    }
}

/* True when p[0..n) lies inside data[0..len). */
static bool
inside(const uint8_t *data, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;

    return q >= data && q <= data + len && n <= (size_t)(data + len - q);
}

/*
 * Offsets where a section of the (valid) OP_MSG at data ends, or for an
 * OP_QUERY where the query document ends: a prefix cut there is itself a
 * complete message and may legitimately parse.
 */
static size_t
section_edges(int32_t opcode, const uint8_t *data, size_t len, size_t *edges)
{
    size_t n = 0;

    if (opcode == WIRE_OP_MSG) {
        size_t pos = OP_MSG_SECTIONS_AT;

        while (pos + 5 <= len && n < MAX_EDGES) {
            int32_t size = wire_frame_read_i32(data + pos + 1);

            if (size < 5)
                break;
            pos += 1 + (size_t)size;
            edges[n++] = pos;
        }
    } else if (opcode == WIRE_OP_QUERY) {
        const uint8_t *nul = memchr(data + OP_MSG_SECTIONS_AT, 0, len - OP_MSG_SECTIONS_AT);

        size_t q = nul ? (size_t)(nul - data) + 1 + 8 : len;

        if (q + 4 <= len && wire_frame_read_i32(data + q) >= 5)
            edges[n++] = q + (size_t)wire_frame_read_i32(data + q);
    }
    return n;
}

/* ---- expectations ------------------------------------------------------------ */

static bool
ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n > t && strcmp(s + n - t, tail) == 0;
}

static const struct expect *
find_row(const char *name)
{
    for (size_t i = 0; i < N_EXPECTS; i++) {
        if (strcmp(expects[i].file, name) == 0)
            return &expects[i];
    }
    return NULL;
}

/* The header, then the parser of the opcode and everything the table says. */
static void
check_fixture(struct fixture *fx)
{
    bson_error_t error;
    union parsed p;
    struct wire_cmd cmd;
    const uint8_t *doc = NULL;
    uint32_t doc_len = 0;
    enum wire_status st;

    st = wire_frame_header(fx->data, fx->len, WIRE_MAX_MESSAGE_LEN, &fx->header, &error);
    fx->header_ok = st == WIRE_OK && (size_t)fx->header.length == fx->len &&
                    fx->header.opcode == fx->opcode;
    if (!ok(fx->header_ok, "%s: header: %zu bytes, opcode %d", fx->name, fx->len,
            (int)fx->opcode))
        diag("status %d, length %d, opcode %d", (int)st, (int)fx->header.length,
             (int)fx->header.opcode);
    if (fx->len > WIRE_HEADER_LEN) {
        struct wire_header h;

        is_int(wire_frame_header(fx->data, fx->len, (int32_t)fx->len - 1, &h, &error),
               WIRE_ERROR, "%s: header refused under max_len = length - 1", fx->name);
    }
    is_int(fx->header.response_to == 0, fx->c2s, "%s: responseTo is %s", fx->name,
           fx->c2s ? "0 (a request)" : "set (a reply)");

    fx->row = find_row(fx->name);
    ok(fx->row != NULL, "%s: has a row in the expectation table", fx->name);
    if (!ok(parse_any(fx->opcode, fx->data, fx->len, &p, &error), "%s: parses", fx->name)) {
        diag("code %u: %s", (unsigned)error.code, error.message);
        return;
    }

    switch (fx->opcode) {
    case WIRE_OP_MSG:
        doc = p.msg.body;
        doc_len = p.msg.body_len;
        break;
    case WIRE_OP_QUERY:
        doc = p.query.query;
        doc_len = p.query.query_len;
        ok(ends_with(p.query.full_collection, ".$cmd"),
           "%s: OP_QUERY goes to a $cmd namespace (%s)", fx->name, p.query.full_collection);
        break;
    case WIRE_OP_REPLY:
        if (p.reply.n_returned > 0) {
            doc = p.reply.docs;
            doc_len = (uint32_t)wire_frame_read_i32(p.reply.docs);
        }
        is_int(p.reply.flags & WIRE_REPLY_QUERY_FAILURE, 0, "%s: no QueryFailure flag",
               fx->name);
        break;
    default:
        break;
    }
    if (!ok(doc != NULL && wire_cmd_parse(doc, doc_len, &cmd, &error),
            "%s: wire_cmd_parse reads the first document", fx->name)) {
        diag("code %u: %s", (unsigned)error.code, error.message);
        return;
    }
    if (fx->c2s) {
        is_str(cmd.name, fx->cmd, "%s: command name matches the file name", fx->name);
        if (fx->opcode == WIRE_OP_MSG)
            ok(cmd.db != NULL && cmd.db_len > 0, "%s: OP_MSG request carries $db", fx->name);
        if (strcmp(fx->cmd, "hello") == 0 || strcmp(fx->cmd, "ismaster") == 0)
            ok(wire_cmd_is_hello(cmd.name), "%s: wire_cmd_is_hello", fx->name);
        ok(!cmd.has_duplicate_top_level_key, "%s: no duplicate top-level key", fx->name);
    }
    if (!fx->row)
        return;
    is_str(cmd.name, fx->row->first_key, "%s: first key", fx->name);
    if (fx->c2s)
        is_int(has_elem(&cmd, WIRE_NAME_LSID), fx->row->lsid, "%s: lsid %s", fx->name,
               fx->row->lsid ? "present" : "absent");

    if (fx->opcode == WIRE_OP_MSG) {
        is_int(p.msg.flags, fx->row->flags, "%s: flag word 0x%x%s", fx->name,
               (unsigned)fx->row->flags,
               (fx->row->flags & WIRE_MSG_MORE_TO_COME) ? " (moreToCome)" : "");
        is_int(p.msg.n_seqs, fx->row->seq_id ? 1 : 0, "%s: %s kind-1 section", fx->name,
               fx->row->seq_id ? "one" : "no");
        if (fx->row->seq_id && p.msg.n_seqs == 1) {
            is_str(p.msg.seqs[0].id, fx->row->seq_id, "%s: sequence identifier", fx->name);
            is_int(p.msg.seqs[0].count, fx->row->count, "%s: %d documents in the sequence",
                   fx->name, (int)fx->row->count);
        }
    } else if (fx->opcode == WIRE_OP_REPLY) {
        is_int(p.reply.n_returned, fx->row->count, "%s: numberReturned", fx->name);
    }
}

/* Every table row names a file that is there. */
static void
check_table_covered(void)
{
    size_t missing = 0;

    for (size_t i = 0; i < N_EXPECTS; i++) {
        bool found = false;

        for (size_t j = 0; j < n_fixtures && !found; j++)
            found = strcmp(fixtures[j].name, expects[i].file) == 0;
        if (!found) {
            diag("no file for table row %s", expects[i].file);
            missing++;
        }
    }
    is_int((long long)missing, 0, "every one of the %zu table rows has its file", N_EXPECTS);
}

/* A reply captured with its request answers that request's requestID. */
static void
check_pairs(void)
{
    for (size_t i = 0; i < n_fixtures; i++) {
        const struct fixture *rep = &fixtures[i];

        if (rep->c2s || !rep->header_ok)
            continue;
        for (size_t j = 0; j < n_fixtures; j++) {
            const struct fixture *req = &fixtures[j];

            if (req->c2s && req->header_ok && req->nn == rep->nn &&
                strcmp(req->client, rep->client) == 0)
                is_int(rep->header.response_to, req->header.request_id,
                       "%s answers %s (responseTo = requestID)", rep->name, req->name);
        }
    }
}

/* ---- truncation ----------------------------------------------------------------- */

static size_t
add_cut(size_t *cuts, size_t n, size_t cut, size_t len)
{
    if (cut >= len || n == MAX_CUTS)
        return n;
    for (size_t i = 0; i < n; i++) {
        if (cuts[i] == cut)
            return n;
    }
    cuts[n] = cut;
    return n + 1;
}

/*
 * A shorter message cut from fx at a section edge keeps fx's first document
 * (OP_MSG body or OP_QUERY query) at the same offset with the same bytes.
 */
static bool
same_first_doc(const struct fixture *fx, const union parsed *cut, const uint8_t *buf)
{
    bson_error_t error;
    union parsed whole;
    const uint8_t *a, *b;
    uint32_t a_len, b_len;

    if (!parse_any(fx->opcode, fx->data, fx->len, &whole, &error))
        return false;
    if (fx->opcode == WIRE_OP_MSG) {
        a = whole.msg.body;
        a_len = whole.msg.body_len;
        b = cut->msg.body;
        b_len = cut->msg.body_len;
    } else if (fx->opcode == WIRE_OP_QUERY) {
        a = whole.query.query;
        a_len = whole.query.query_len;
        b = cut->query.query;
        b_len = cut->query.query_len;
    } else {
        return false;
    }
    return a - fx->data == b - buf && a_len == b_len && memcmp(a, b, a_len) == 0;
}

/*
 * Every prefix of a sample of lengths (evenly spread, the header fields,
 * each section edge and the byte before it): with the original length field
 * the parser must refuse it; with the length field patched to the prefix it
 * must refuse it unless the cut falls exactly on a section edge (then the
 * prefix is a whole, shorter message with the same first document). A prefix
 * shorter than a header is NEED_MORE.
 */
static void
check_truncations(const struct fixture *fx)
{
    size_t cuts[MAX_CUTS], edges[MAX_EDGES];
    size_t n = 0, n_edges = section_edges(fx->opcode, fx->data, fx->len, edges);
    size_t kept_bad = 0, patched_bad = 0, patched_ok = 0;
    const size_t fixed[] = {0, 1, 3, 4, 15, 16, 17, 19, 20, 21, 25, 36};

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        n = add_cut(cuts, n, fixed[i], fx->len);
    for (size_t i = 1; i < N_CUTS; i++)
        n = add_cut(cuts, n, fx->len * i / N_CUTS, fx->len);
    n = add_cut(cuts, n, fx->len - 1, fx->len);
    for (size_t e = 0; e < n_edges; e++) {
        n = add_cut(cuts, n, edges[e], fx->len);
        n = add_cut(cuts, n, edges[e] - 1, fx->len);
    }

    for (size_t i = 0; i < n; i++) {
        size_t cut = cuts[i];
        uint8_t *buf = malloc(cut ? cut : 1);
        bson_error_t error;
        struct wire_header h;
        union parsed p;
        bool edge = false;

        if (!buf)
            abort();
        memcpy(buf, fx->data, cut);
        if (cut < WIRE_HEADER_LEN) {
            if (wire_frame_header(buf, cut, 0, &h, &error) != WIRE_NEED_MORE) {
                diag("%s: a %zu-byte prefix is not NEED_MORE", fx->name, cut);
                kept_bad++;
            }
        }
        if (parse_any(fx->opcode, buf, cut, &p, &error)) {
            diag("%s: prefix of %zu bytes (length field %zu) accepted", fx->name, cut,
                 fx->len);
            kept_bad++;
        }
        if (cut >= WIRE_HEADER_LEN) {
            wire_frame_write_i32(buf, (int32_t)cut);
            for (size_t e = 0; e < n_edges; e++)
                edge = edge || edges[e] == cut;
            if (parse_any(fx->opcode, buf, cut, &p, &error)) {
                if (edge && same_first_doc(fx, &p, buf)) {
                    patched_ok++;
                } else {
                    diag("%s: prefix of %zu bytes with a matching length accepted", fx->name,
                         cut);
                    patched_bad++;
                }
            }
        }
        free(buf);
    }
    is_int((long long)kept_bad, 0, "%s: all %zu truncations refused (length field kept)",
           fx->name, n);
    is_int((long long)patched_bad, 0,
           "%s: truncations with a patched length refused (%zu accepted: cut at a section "
           "edge, a whole shorter message)",
           fx->name, patched_ok);
}

/* ---- corruption ------------------------------------------------------------------ */

struct edit {
    size_t at;
    uint8_t value;
    bool unknown_kind; /* must fail with WIRE_ERR_UNKNOWN_SECTION */
};

static size_t
add_edit(struct edit *edits, size_t n, size_t at, uint8_t value, bool unknown_kind)
{
    if (n == MAX_EDITS)
        return n;
    edits[n].at = at;
    edits[n].value = value;
    edits[n].unknown_kind = unknown_kind;
    return n + 1;
}

/* Edits of the little-endian int32 length at `at`: off by one each way, huge, negative. */
static size_t
length_edits(struct edit *edits, size_t n, const uint8_t *data, size_t at)
{
    n = add_edit(edits, n, at, (uint8_t)(data[at] + 1), false);
    n = add_edit(edits, n, at, (uint8_t)(data[at] - 1), false);
    n = add_edit(edits, n, at + 1, (uint8_t)(data[at + 1] + 1), false);
    n = add_edit(edits, n, at + 3, 0x7f, false);
    n = add_edit(edits, n, at + 3, 0xff, false);
    return n;
}

/* Section kinds and length fields of the message, each to be changed alone. */
static size_t
plan_edits(const struct fixture *fx, struct edit *edits)
{
    size_t n = 0;
    const uint8_t *d = fx->data;

    if (fx->opcode == WIRE_OP_MSG) {
        size_t pos = OP_MSG_SECTIONS_AT;

        while (pos + 5 <= fx->len) {
            int32_t size = wire_frame_read_i32(d + pos + 1);

            if (size < 5)
                break;
            n = add_edit(edits, n, pos, d[pos] == 0 ? 1 : 0, false);
            n = add_edit(edits, n, pos, 2, true);
            n = add_edit(edits, n, pos, 0x80, true);
            n = add_edit(edits, n, pos, 0xff, true);
            n = length_edits(edits, n, d, pos + 1);
            if (d[pos] == 1) {
                /* the first document of the sequence, after the identifier */
                const uint8_t *nul = memchr(d + pos + 5, 0, fx->len - pos - 5);

                if (nul && (size_t)(nul - d) + 5 <= fx->len)
                    n = length_edits(edits, n, d, (size_t)(nul - d) + 1);
            }
            pos += 1 + (size_t)size;
        }
    } else if (fx->opcode == WIRE_OP_QUERY) {
        const uint8_t *nul = memchr(d + OP_MSG_SECTIONS_AT, 0, fx->len - OP_MSG_SECTIONS_AT);

        size_t q = nul ? (size_t)(nul - d) + 1 + 8 : fx->len;

        if (q + 4 <= fx->len) {
            n = add_edit(edits, n, (size_t)(nul - d), 'x', false); /* name unterminated */
            n = length_edits(edits, n, d, q);
        }
    } else if (fx->opcode == WIRE_OP_REPLY && fx->len >= OP_REPLY_DOCS_AT) {
        n = length_edits(edits, n, d, 32); /* numberReturned */
        if (fx->len >= OP_REPLY_DOCS_AT + 5)
            n = length_edits(edits, n, d, OP_REPLY_DOCS_AT);
    }
    return n;
}

/* Two parses of the same bytes agree, and what they point at stays inside the message. */
static bool
msg_consistent(const uint8_t *data, size_t len, const struct wire_msg *a, char *why,
               size_t why_len)
{
    struct wire_msg b;
    bson_error_t error;
    uint32_t doc_len;

    if (!wire_msg_parse(data, len, 0, &b, &error)) {
        snprintf(why, why_len, "second parse failed: %s", error.message);
        return false;
    }
    if (a->flags != b.flags || a->body != b.body || a->body_len != b.body_len ||
        a->n_seqs != b.n_seqs) {
        snprintf(why, why_len, "second parse differs");
        return false;
    }
    if (!inside(data, len, a->body, a->body_len) ||
        !wire_doc_check(a->body, a->body_len, 0, &doc_len, &error) || doc_len != a->body_len) {
        snprintf(why, why_len, "body out of bounds or invalid");
        return false;
    }
    for (uint32_t i = 0; i < a->n_seqs; i++) {
        const struct wire_seq *s = &a->seqs[i];

        if (s->id != b.seqs[i].id || s->docs != b.seqs[i].docs ||
            s->docs_len != b.seqs[i].docs_len || s->count != b.seqs[i].count ||
            !inside(data, len, s->id, strlen(s->id) + 1) ||
            !inside(data, len, s->docs, s->docs_len)) {
            snprintf(why, why_len, "sequence %u differs or is out of bounds", (unsigned)i);
            return false;
        }
    }
    return true;
}

/*
 * Rebuilds msg with its own body and parses the result: same flags (less
 * checksumPresent), body bytes, sequence identifiers, documents and counts.
 * *identical tells whether the rebuilt bytes equal data[0..len).
 */
static bool
msg_round_trip(const uint8_t *data, size_t len, const struct wire_msg *msg, bool *identical,
               char *why, size_t why_len)
{
    struct wire_msg again;
    bson_error_t error;
    size_t out_len = 0;
    uint8_t *out;
    bson_t body;
    bool same = false;

    *identical = false;
    if (!bson_init_static(&body, msg->body, msg->body_len)) {
        snprintf(why, why_len, "bson_init_static refused the body");
        return false;
    }
    out = wire_msg_rebuild(msg, &body, &out_len);
    if (!out) {
        snprintf(why, why_len, "wire_msg_rebuild returned NULL");
        return false;
    }
    if (!wire_msg_parse(out, out_len, 0, &again, &error)) {
        snprintf(why, why_len, "rebuilt message refused: %s", error.message);
    } else if (again.flags != (msg->flags & ~WIRE_MSG_CHECKSUM_PRESENT) ||
               again.header.request_id != msg->header.request_id ||
               again.header.response_to != msg->header.response_to) {
        snprintf(why, why_len, "flags or header ids changed");
    } else if (again.body_len != msg->body_len ||
               memcmp(again.body, msg->body, msg->body_len) != 0) {
        snprintf(why, why_len, "body changed");
    } else if (again.n_seqs != msg->n_seqs) {
        snprintf(why, why_len, "%u sequences instead of %u", (unsigned)again.n_seqs,
                 (unsigned)msg->n_seqs);
    } else {
        same = true;
        for (uint32_t i = 0; i < msg->n_seqs && same; i++) {
            const struct wire_seq *s = &msg->seqs[i], *t = &again.seqs[i];

            same = strcmp(s->id, t->id) == 0 && s->docs_len == t->docs_len &&
                   s->count == t->count && memcmp(s->docs, t->docs, s->docs_len) == 0;
            if (!same)
                snprintf(why, why_len, "sequence %s changed", s->id);
        }
    }
    *identical = same && out_len == len && memcmp(out, data, len) == 0;
    bson_free(out);
    return same;
}

/*
 * Each single-byte edit of a section kind or a length field: refused (an
 * unknown kind with 40432), or accepted consistently: a second parse agrees,
 * everything points inside the message and the rebuild round trip holds.
 */
static void
check_corruptions(const struct fixture *fx)
{
    struct edit edits[MAX_EDITS];
    size_t n = plan_edits(fx, edits), bad = 0, refused = 0, accepted = 0;

    for (size_t i = 0; i < n; i++) {
        const struct edit *e = &edits[i];
        uint8_t *buf = malloc(fx->len);
        bson_error_t error;
        union parsed p;
        char why[WHY_LEN] = "";
        bool identical;

        if (!buf)
            abort();
        memcpy(buf, fx->data, fx->len);
        buf[e->at] = e->value;
        if (!parse_any(fx->opcode, buf, fx->len, &p, &error)) {
            refused++;
            if (error.domain != WIRE_ERROR_DOMAIN || error.code == 0 || error.message[0] == '\0')
                snprintf(why, sizeof why, "refused without a wire error");
            else if (e->unknown_kind && error.code != WIRE_ERR_UNKNOWN_SECTION)
                snprintf(why, sizeof why, "unknown kind refused with code %u: %s",
                         (unsigned)error.code, error.message);
        } else {
            accepted++;
            if (e->unknown_kind)
                snprintf(why, sizeof why, "unknown section kind accepted");
            else if (fx->opcode == WIRE_OP_MSG &&
                     msg_consistent(buf, fx->len, &p.msg, why, sizeof why))
                msg_round_trip(buf, fx->len, &p.msg, &identical, why, sizeof why);
            else if (fx->opcode == WIRE_OP_QUERY &&
                     !inside(buf, fx->len, p.query.query, p.query.query_len))
                snprintf(why, sizeof why, "query out of bounds");
            else if (fx->opcode == WIRE_OP_REPLY &&
                     !inside(buf, fx->len, p.reply.docs, p.reply.docs_len))
                snprintf(why, sizeof why, "documents out of bounds");
        }
        if (why[0] != '\0') {
            diag("%s: byte %zu set to 0x%02x: %s", fx->name, e->at, (unsigned)e->value, why);
            bad++;
        }
        free(buf);
    }
    is_int((long long)bad, 0,
           "%s: %zu single-byte corruptions of kinds/lengths: %zu refused, %zu accepted "
           "consistently",
           fx->name, n, refused, accepted);
}

/* ---- round trips ------------------------------------------------------------------ */

static void
check_round_trip(const struct fixture *fx)
{
    bson_error_t error;
    union parsed p;
    char why[WHY_LEN] = "";

    if (!parse_any(fx->opcode, fx->data, fx->len, &p, &error))
        return;
    if (fx->opcode == WIRE_OP_MSG) {
        bool identical = false;

        if (!ok(msg_round_trip(fx->data, fx->len, &p.msg, &identical, why, sizeof why),
                "%s: wire_msg_rebuild with its own body re-parses to the same body and "
                "sequences",
                fx->name))
            diag("%s", why);
        /* No driver here sends a checksum, and each puts the body first. */
        ok(identical, "%s: the rebuilt message is byte-identical", fx->name);
    } else if (fx->opcode == WIRE_OP_QUERY) {
        struct wire_query again;
        size_t out_len = 0;
        uint8_t *out;
        bson_t doc;

        if (!bson_init_static(&doc, p.query.query, p.query.query_len)) {
            ok(false, "%s: bson_init_static on the query", fx->name);
            return;
        }
        out = wire_msg_rebuild_query(&p.query, &doc, &out_len);
        ok(out != NULL && wire_msg_parse_query(out, out_len, 0, &again, &error) &&
               out_len == fx->len && memcmp(out, fx->data, fx->len) == 0,
           "%s: wire_msg_rebuild_query with its own query is byte-identical", fx->name);
        bson_free(out);
    }
}

int
main(void)
{
    const char *top = getenv("abs_top_srcdir");
    char dir[4096];
    int w;

    if (!ok(top != NULL && top[0] != '\0', "abs_top_srcdir is set (run through make check)"))
        return done_testing();
    w = snprintf(dir, sizeof dir, "%s/%s", top, FIXTURE_DIR);
    if (!ok(w > 0 && (size_t)w < sizeof dir, "fixture path fits"))
        return done_testing();

    if (load_fixtures(dir)) {
        for (size_t i = 0; i < n_fixtures; i++) {
            if (fixtures[i].data)
                check_fixture(&fixtures[i]);
        }
        check_table_covered();
        check_pairs();
        for (size_t i = 0; i < n_fixtures; i++) {
            if (fixtures[i].data && fixtures[i].header_ok) {
                check_truncations(&fixtures[i]);
                check_corruptions(&fixtures[i]);
                check_round_trip(&fixtures[i]);
            }
        }
    }
    for (size_t i = 0; i < n_fixtures; i++)
        free(fixtures[i].data);
    return done_testing();
}
