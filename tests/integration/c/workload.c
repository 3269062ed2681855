/*
 * tests/integration/c/workload.c URI DBNAME
 *
 * Scripted workload with libmongoc (1.23, Debian's libmongoc-dev). Prints one
 * canonical Extended JSON line per operation: the server's reply (or the
 * documents read) or the error (domain, code, message and the reply), plus
 * the commands libmongoc sent for it (APM), so that a run straight against
 * FerretDB and a run through mongocache can be diffed. Normalized: cluster
 * and operation times, connection ids, cursor ids (nonzero -> "<cursorId>"),
 * the database name ("<db>"). Every _id is fixed.
 *
 * Built by tests/integration/test_workload.sh:
 *   cc workload.c $(pkg-config --cflags --libs libmongoc-1.0)
 * Exit status: 0 when the transcript was written.
 */
#define _POSIX_C_SOURCE 200809L
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bson_string_t *out;    /* the whole transcript */
static bson_string_t *cmds;   /* commands sent in the current step, or NULL */
static int nstep;
static char seen_ids[64][32]; /* cursor ids seen, replaced in messages */
static int nseen;
static const char *db_name;

/* ---- normalization --------------------------------------------------------- */

static int drop_key(const char *k)
{
    static const char *const keys[] = {"$clusterTime", "operationTime", "connectionId", "localTime",
                                       "electionId",   "lastWrite",     "opTime",       NULL};
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i])) return 1;
    return 0;
}

static int cursor_id_list(const char *k)
{
    return !strcmp(k, "cursorsKilled") || !strcmp(k, "cursorsNotFound") || !strcmp(k, "cursorsAlive") ||
           !strcmp(k, "cursorsUnknown");
}

static void note_cursor_id(int64_t id)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long) id);
    for (int i = 0; i < nseen; i++)
        if (!strcmp(seen_ids[i], buf)) return;
    if (nseen < 64) strcpy(seen_ids[nseen++], buf);
}

static void append_cursor_id(bson_t *dst, const char *k, const bson_iter_t *it)
{
    int64_t id = bson_iter_as_int64(it);
    if (id == 0) {
        BSON_APPEND_INT32(dst, k, 0);
    } else {
        note_cursor_id(id);
        BSON_APPEND_UTF8(dst, k, "<cursorId>");
    }
}

static void norm_into(bson_t *dst, const bson_t *src, const char *parent, int is_id_list)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, src)) return;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (drop_key(k)) continue;
        if (is_id_list || (parent && !strcmp(parent, "cursor") && !strcmp(k, "id"))) {
            append_cursor_id(dst, k, &it);
        } else if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
            uint32_t len;
            const uint8_t *data;
            bson_t sub, child;
            int arr = BSON_ITER_HOLDS_ARRAY(&it);
            if (arr)
                bson_iter_array(&it, &len, &data);
            else
                bson_iter_document(&it, &len, &data);
            if (!bson_init_static(&sub, data, len)) continue;
            if (arr)
                bson_append_array_begin(dst, k, -1, &child);
            else
                bson_append_document_begin(dst, k, -1, &child);
            norm_into(&child, &sub, k, arr && cursor_id_list(k));
            if (arr)
                bson_append_array_end(dst, &child);
            else
                bson_append_document_end(dst, &child);
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
}

static char *json_of(const bson_t *doc)
{
    bson_t n = BSON_INITIALIZER;
    norm_into(&n, doc, NULL, 0);
    char *s = bson_as_canonical_extended_json(&n, NULL);
    bson_destroy(&n);
    return s;
}

static void append_json_string(bson_string_t *s, const char *v)
{
    bson_string_append_c(s, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') bson_string_append_c(s, '\\');
        if ((unsigned char) *p < 0x20)
            bson_string_append_printf(s, "\\u%04x", (unsigned char) *p);
        else
            bson_string_append_c(s, *p);
    }
    bson_string_append_c(s, '"');
}

/* ---- steps ------------------------------------------------------------------- */

static void begin(void)
{
    cmds = bson_string_new("");
}

/* One transcript line: result (ok) or error with its reply. */
static void emit(const char *op, bool ok, const bson_t *doc, const bson_error_t *err)
{
    bson_string_append_printf(out, "{\"n\":%d,\"op\":", ++nstep);
    append_json_string(out, op);
    if (ok) {
        bson_string_append(out, ",\"result\":");
        if (doc) {
            char *j = json_of(doc);
            bson_string_append(out, j);
            bson_free(j);
        } else {
            bson_string_append(out, "null");
        }
    } else {
        bson_string_append_printf(out, ",\"error\":{\"domain\":%u,\"code\":%u,\"message\":", err->domain, err->code);
        append_json_string(out, err->message);
        bson_string_append(out, ",\"reply\":");
        if (doc && !bson_empty(doc)) {
            char *j = json_of(doc);
            bson_string_append(out, j);
            bson_free(j);
        } else {
            bson_string_append(out, "null");
        }
        bson_string_append(out, "}");
    }
    bson_string_append_printf(out, ",\"cmds\":[%s]}\n", cmds ? cmds->str : "");
    if (cmds) bson_string_free(cmds, true);
    cmds = NULL;
}

static void add_cmd(const char *name, int failed)
{
    static const char *const ignore[] = {"hello", "isMaster", "ismaster", "ping", "endSessions",
                                         "saslStart", "saslContinue", NULL};
    if (!cmds) return;
    for (int i = 0; ignore[i]; i++)
        if (!strcmp(name, ignore[i])) return;
    bson_string_append_printf(cmds, "%s\"%s%s\"", cmds->len ? "," : "", name, failed ? "!" : "");
}

static void on_ok(const mongoc_apm_command_succeeded_t *e)
{
    add_cmd(mongoc_apm_command_succeeded_get_command_name(e), 0);
}

static void on_fail(const mongoc_apm_command_failed_t *e)
{
    add_cmd(mongoc_apm_command_failed_get_command_name(e), 1);
}

/* libmongoc's own warnings (e.g. FerretDB has no endSessions) stay quiet */
static void log_handler(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void) data;
    if (level <= MONGOC_LOG_LEVEL_ERROR) fprintf(stderr, "libmongoc: %s: %s\n", domain, message);
}

static bson_t *J(const char *json)
{
    bson_error_t err;
    bson_t *b = bson_new_from_json((const uint8_t *) json, -1, &err);
    if (!b) {
        fprintf(stderr, "workload.c: bad JSON in script: %s: %s\n", json, err.message);
        exit(1);
    }
    return b;
}

/* A command on the database; the reply is recorded. */
static void command(mongoc_database_t *db, const char *op, const char *json)
{
    bson_t *cmd = J(json);
    bson_t reply;
    bson_error_t err;
    begin();
    bool ok = mongoc_database_command_simple(db, cmd, NULL, &reply, &err);
    emit(op, ok, &reply, &err);
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* Reads a whole cursor: either every document, or only count, first and last. */
static void read_cursor(const char *op, mongoc_cursor_t *cur, int summary)
{
    const bson_t *doc;
    bson_t res = BSON_INITIALIZER, arr;
    bson_error_t err;
    int n = 0;
    bson_t *first = NULL, *last = NULL;
    if (!summary) bson_append_array_begin(&res, "docs", -1, &arr);
    while (mongoc_cursor_next(cur, &doc)) {
        if (summary) {
            if (!first) first = bson_copy(doc);
            if (last) bson_destroy(last);
            last = bson_copy(doc);
        } else {
            char key[16];
            const char *k;
            bson_uint32_to_string((uint32_t) n, &k, key, sizeof key);
            bson_append_document(&arr, k, -1, doc);
        }
        n++;
    }
    if (!summary) bson_append_array_end(&res, &arr);
    BSON_APPEND_INT32(&res, "n", n);
    if (first) BSON_APPEND_DOCUMENT(&res, "first", first);
    if (last) BSON_APPEND_DOCUMENT(&res, "last", last);
    const bson_t *reply = NULL;
    if (mongoc_cursor_error_document(cur, &err, &reply)) {
        emit(op, false, reply, &err);
    } else {
        emit(op, true, &res, NULL);
    }
    if (first) bson_destroy(first);
    if (last) bson_destroy(last);
    bson_destroy(&res);
}

static void find(mongoc_collection_t *c, const char *op, const char *filter, const char *opts, int summary)
{
    bson_t *f = J(filter), *o = opts ? J(opts) : NULL;
    begin();
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, o, NULL);
    read_cursor(op, cur, summary);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    if (o) bson_destroy(o);
}

static void aggregate(mongoc_collection_t *c, const char *op, const char *pipeline, const char *opts, int summary)
{
    bson_t *p = J(pipeline), *o = opts ? J(opts) : NULL;
    begin();
    mongoc_cursor_t *cur = mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, p, o, NULL);
    read_cursor(op, cur, summary);
    mongoc_cursor_destroy(cur);
    bson_destroy(p);
    if (o) bson_destroy(o);
}

static void finish(void)
{
    /* replace the database name, then cursor ids in messages */
    char *s = bson_strdup(out->str);
    const char *needles[65];
    int nn = 0;
    needles[nn++] = db_name;
    for (int i = 0; i < nseen; i++) needles[nn++] = seen_ids[i];
    for (int i = 0; i < nn; i++) {
        const char *needle = needles[i], *with = i == 0 ? "<db>" : "<cursorId>";
        size_t nl = strlen(needle);
        bson_string_t *r = bson_string_new("");
        const char *p = s, *q;
        while ((q = strstr(p, needle))) {
            /* cursor ids: whole numbers only */
            int whole = i == 0 || ((q == s || q[-1] < '0' || q[-1] > '9') && (q[nl] < '0' || q[nl] > '9'));
            bson_string_append_printf(r, "%.*s%s", (int) (q - p), p, whole ? with : needle);
            p = q + nl;
        }
        bson_string_append(r, p);
        bson_free(s);
        s = bson_string_free(r, false);
    }
    fputs(s, stdout);
    bson_free(s);
}

/* ---- the workload ------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: workload URI DBNAME\n");
        return 2;
    }
    db_name = argv[2];
    mongoc_log_set_handler(log_handler, NULL);
    mongoc_init();
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &err);
    if (!uri) {
        fprintf(stderr, "workload.c: bad URI: %s\n", err.message);
        return 1;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 10000);
    mongoc_uri_set_option_as_utf8(uri, MONGOC_URI_APPNAME, "mongocache-workload-c");
    mongoc_client_t *client = mongoc_client_new_from_uri(uri);
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_succeeded_cb(cbs, on_ok);
    mongoc_apm_set_command_failed_cb(cbs, on_fail);
    mongoc_client_set_apm_callbacks(client, cbs, NULL);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    out = bson_string_new("");

    mongoc_database_t *db = mongoc_client_get_database(client, db_name);
    mongoc_collection_t *items = mongoc_client_get_collection(client, db_name, "items");
    mongoc_collection_t *big = mongoc_client_get_collection(client, db_name, "big");
    bson_t reply;
    bool ok;

    begin();
    ok = mongoc_database_drop_with_opts(db, NULL, &err);
    emit("dropDatabase(fresh)", ok, NULL, &err);

    /* ---- inserts ---- */
    {
        bson_t *d = J("{\"_id\": 1, \"name\": \"apple\", \"qty\": 5, \"price\": 1.25, \"tags\": [\"fruit\", \"red\"],"
                      " \"made\": {\"$date\": \"2024-01-02T03:04:05.678Z\"}, \"big\": {\"$numberLong\": \"1099511627776\"},"
                      " \"bin\": {\"$binary\": {\"base64\": \"AAH/\", \"subType\": \"00\"}},"
                      " \"oid\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"nested\": {\"a\": {\"b\": [1, {\"c\": 2}]}},"
                      " \"nul\": null, \"t\": true, \"d\": 2.0}");
        begin();
        ok = mongoc_collection_insert_one(items, d, NULL, &reply, &err);
        emit("insert_one", ok, &reply, &err);
        bson_destroy(&reply);
        begin();
        ok = mongoc_collection_insert_one(items, d, NULL, &reply, &err);
        emit("insert_one(duplicate _id)", ok, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(d);
    }
    for (int ordered = 1; ordered >= 0; ordered--) {
        const char *js[2][4] = {
            {"{\"_id\": 6, \"name\": \"eggplant\", \"qty\": 7, \"tags\": [\"vegetable\", \"purple\"]}",
             "{\"_id\": 1, \"name\": \"dup\"}",
             "{\"_id\": 7, \"name\": \"fig\", \"qty\": 30, \"tags\": [\"fruit\"]}",
             "{\"_id\": 8, \"name\": \"grape\", \"qty\": 3, \"tags\": [\"fruit\", \"purple\"]}"},
            {"{\"_id\": 2, \"name\": \"banana\", \"qty\": 12, \"tags\": [\"fruit\"]}",
             "{\"_id\": 1, \"name\": \"dup\"}",
             "{\"_id\": 3, \"name\": \"carrot\", \"qty\": 0, \"tags\": [\"vegetable\"]}",
             "{\"_id\": 4, \"name\": \"durian\", \"qty\": 1, \"tags\": []}"},
        };
        bson_t *docs[4];
        for (int i = 0; i < 4; i++) docs[i] = J(js[ordered][i]);
        bson_t *o = J(ordered ? "{\"ordered\": true}" : "{\"ordered\": false}");
        begin();
        ok = mongoc_collection_insert_many(items, (const bson_t **) docs, 4, o, &reply, &err);
        emit(ordered ? "insert_many(ordered, dup at 1)" : "insert_many(unordered, dup at 1)", ok, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(o);
        for (int i = 0; i < 4; i++) bson_destroy(docs[i]);
    }
    {
        mongoc_bulk_operation_t *b = mongoc_collection_create_bulk_operation_with_opts(big, NULL);
        for (int i = 0; i < 150; i++) {
            bson_t d = BSON_INITIALIZER;
            BSON_APPEND_INT32(&d, "_id", 1000 + i);
            BSON_APPEND_INT32(&d, "i", i);
            BSON_APPEND_BOOL(&d, "even", i % 2 == 0);
            BSON_APPEND_UTF8(&d, "pad", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + (i % 7));
            mongoc_bulk_operation_insert_with_opts(b, &d, NULL, NULL);
            bson_destroy(&d);
        }
        begin();
        ok = mongoc_bulk_operation_execute(b, &reply, &err) != 0;
        emit("bulk insert(150 docs)", ok, &reply, &err);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(b);
    }

    /* ---- finds ---- */
    find(items, "find(all, sort _id)", "{}", "{\"sort\": {\"_id\": 1}}", 0);
    find(items, "find(filter/sort/projection/skip/limit)", "{\"qty\": {\"$gte\": 0}}",
         "{\"sort\": {\"qty\": -1, \"_id\": 1}, \"projection\": {\"name\": 1, \"qty\": 1, \"_id\": 0}, \"skip\": 1, \"limit\": 3}", 0);
    find(items, "find($or/$exists/$type)", "{\"$or\": [{\"nested.a.b.c\": 2}, {\"tags\": {\"$size\": 0}}, {\"big\": {\"$type\": \"long\"}}]}",
         "{\"projection\": {\"name\": 1}, \"sort\": {\"_id\": -1}}", 0);

    /* ---- cursors ---- */
    find(big, "find(150 docs, batchSize 10, getMore)", "{}", "{\"sort\": {\"_id\": 1}, \"batchSize\": 10}", 1);
    find(big, "find(150 docs, default first batch, getMore)", "{}", "{\"sort\": {\"_id\": -1}}", 1);
    {
        bson_t *f = J("{}"), *o = J("{\"sort\": {\"_id\": 1}, \"batchSize\": 5}");
        const bson_t *doc;
        begin();
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(big, f, o, NULL);
        bson_t res = BSON_INITIALIZER, arr;
        bson_append_array_begin(&res, "got", -1, &arr);
        for (int i = 0; i < 7 && mongoc_cursor_next(cur, &doc); i++) {
            bson_iter_t it;
            char key[16];
            const char *k;
            bson_uint32_to_string((uint32_t) i, &k, key, sizeof key);
            if (bson_iter_init_find(&it, doc, "_id")) bson_append_iter(&arr, k, -1, &it);
        }
        bson_append_array_end(&res, &arr);
        mongoc_cursor_destroy(cur); /* sends killCursors */
        emit("find(batchSize 5, read 7, destroy -> killCursors)", true, &res, NULL);
        bson_destroy(&res);
        bson_destroy(f);
        bson_destroy(o);
    }
    {
        bson_t *cmd = J("{\"find\": \"big\", \"filter\": {\"i\": {\"$lt\": 20}}, \"sort\": {\"_id\": 1}, \"batchSize\": 3}");
        bson_iter_t it;
        int64_t id = 0;
        begin();
        ok = mongoc_database_command_simple(db, cmd, NULL, &reply, &err);
        if (ok && bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "cursor.id", &it))
            id = bson_iter_as_int64(&it);
        emit("command find(batchSize 3)", ok, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(cmd);
        char buf[256];
        snprintf(buf, sizeof buf, "{\"getMore\": {\"$numberLong\": \"%lld\"}, \"collection\": \"big\", \"batchSize\": 4}",
                 (long long) id);
        command(db, "command getMore(batchSize 4)", buf);
        snprintf(buf, sizeof buf, "{\"killCursors\": \"big\", \"cursors\": [{\"$numberLong\": \"%lld\"}]}", (long long) id);
        command(db, "command killCursors", buf);
        snprintf(buf, sizeof buf, "{\"getMore\": {\"$numberLong\": \"%lld\"}, \"collection\": \"big\"}", (long long) id);
        command(db, "command getMore(killed cursor)", buf);
        snprintf(buf, sizeof buf, "{\"killCursors\": \"big\", \"cursors\": [{\"$numberLong\": \"%lld\"}]}", (long long) id);
        command(db, "command killCursors(again)", buf);
    }

    /* ---- aggregate, count, distinct ---- */
    aggregate(items, "aggregate($match/$unwind/$group/$sort)",
              "[{\"$match\": {\"qty\": {\"$gte\": 0}}}, {\"$unwind\": \"$tags\"},"
              " {\"$group\": {\"_id\": \"$tags\", \"n\": {\"$sum\": 1}}}, {\"$sort\": {\"_id\": 1}}]", NULL, 0);
    aggregate(big, "aggregate(batchSize 20, $project/$limit)",
              "[{\"$match\": {\"even\": true}}, {\"$sort\": {\"_id\": 1}}, {\"$project\": {\"i\": 1}}, {\"$limit\": 60}]",
              "{\"batchSize\": 20}", 1);
    aggregate(items, "aggregate($lookup, not implemented)",
              "[{\"$lookup\": {\"from\": \"big\", \"localField\": \"_id\", \"foreignField\": \"i\", \"as\": \"x\"}}]", NULL, 0);
    {
        bson_t *f = J("{\"qty\": {\"$gte\": 1}}");
        begin();
        int64_t n = mongoc_collection_count_documents(items, f, NULL, NULL, &reply, &err);
        bson_t r = BSON_INITIALIZER;
        BSON_APPEND_INT64(&r, "count", n);
        emit("count_documents", n >= 0, n >= 0 ? &r : &reply, &err);
        bson_destroy(&r);
        bson_destroy(&reply);
        bson_destroy(f);
        begin();
        n = mongoc_collection_estimated_document_count(big, NULL, NULL, &reply, &err);
        emit("estimated_document_count", n >= 0, &reply, &err);
        bson_destroy(&reply);
    }
    command(db, "command count(query, skip)", "{\"count\": \"big\", \"query\": {\"even\": false}, \"skip\": 5}");
    command(db, "command distinct", "{\"distinct\": \"items\", \"key\": \"tags\", \"query\": {}}");

    /* ---- updates ---- */
    {
        struct {
            const char *op, *sel, *upd, *opts;
            int kind; /* 0 one, 1 many, 2 replace */
        } u[] = {
            {"update_one($set/$inc)", "{\"_id\": 1}", "{\"$set\": {\"color\": \"red\"}, \"$inc\": {\"qty\": 2}}", NULL, 0},
            {"update_one(upsert)", "{\"_id\": 9}", "{\"$set\": {\"name\": \"kiwi\"}}", "{\"upsert\": true}", 0},
            {"update_many($push)", "{\"qty\": {\"$gte\": 0}}", "{\"$push\": {\"tags\": \"x\"}}", NULL, 1},
            {"replace_one", "{\"_id\": 4}", "{\"name\": \"durian\", \"qty\": 100}", NULL, 2},
            {"update_one(bad operator $foo)", "{\"_id\": 1}", "{\"$foo\": {\"a\": 1}}", NULL, 0},
            {"update_many(no match)", "{\"_id\": 999}", "{\"$set\": {\"a\": 1}}", NULL, 1},
        };
        for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
            bson_t *s = J(u[i].sel), *d = J(u[i].upd), *o = u[i].opts ? J(u[i].opts) : NULL;
            begin();
            if (u[i].kind == 0)
                ok = mongoc_collection_update_one(items, s, d, o, &reply, &err);
            else if (u[i].kind == 1)
                ok = mongoc_collection_update_many(items, s, d, o, &reply, &err);
            else
                ok = mongoc_collection_replace_one(items, s, d, o, &reply, &err);
            emit(u[i].op, ok, &reply, &err);
            bson_destroy(&reply);
            bson_destroy(s);
            bson_destroy(d);
            if (o) bson_destroy(o);
        }
    }

    /* ---- findAndModify ---- */
    {
        bson_t *q = J("{\"_id\": 2}"), *upd = J("{\"$inc\": {\"qty\": -2}}");
        mongoc_find_and_modify_opts_t *fm = mongoc_find_and_modify_opts_new();
        mongoc_find_and_modify_opts_set_update(fm, upd);
        mongoc_find_and_modify_opts_set_flags(fm, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
        begin();
        ok = mongoc_collection_find_and_modify_with_opts(items, q, fm, &reply, &err);
        emit("find_and_modify(update, new)", ok, &reply, &err);
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(fm);
        bson_destroy(q);
        bson_destroy(upd);

        q = J("{\"qty\": {\"$gte\": 0}}");
        bson_t *sort = J("{\"qty\": 1, \"_id\": 1}");
        fm = mongoc_find_and_modify_opts_new();
        mongoc_find_and_modify_opts_set_sort(fm, sort);
        mongoc_find_and_modify_opts_set_flags(fm, MONGOC_FIND_AND_MODIFY_REMOVE);
        begin();
        ok = mongoc_collection_find_and_modify_with_opts(items, q, fm, &reply, &err);
        emit("find_and_modify(sort, remove)", ok, &reply, &err);
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(fm);
        bson_destroy(q);
        bson_destroy(sort);
    }
    command(db, "command findAndModify(upsert)",
            "{\"findAndModify\": \"items\", \"query\": {\"_id\": 10}, \"update\": {\"$set\": {\"name\": \"lemon\"}},"
            " \"upsert\": true, \"new\": true}");

    /* ---- bulk ---- */
    for (int ordered = 1; ordered >= 0; ordered--) {
        int base = ordered ? 100 : 200;
        bson_t *o = J(ordered ? "{\"ordered\": true}" : "{\"ordered\": false}");
        mongoc_bulk_operation_t *b = mongoc_collection_create_bulk_operation_with_opts(items, o);
        char buf[256];
        bson_t *d;
        snprintf(buf, sizeof buf, "{\"_id\": %d, \"name\": \"bulk%d\", \"qty\": 1}", base, base);
        d = J(buf);
        mongoc_bulk_operation_insert_with_opts(b, d, NULL, NULL);
        bson_destroy(d);
        snprintf(buf, sizeof buf, "{\"_id\": %d}", base);
        bson_t *sel = J(buf), *inc = J("{\"$inc\": {\"qty\": 10}}");
        mongoc_bulk_operation_update_one_with_opts(b, sel, inc, NULL, NULL);
        snprintf(buf, sizeof buf, "{\"_id\": %d, \"name\": \"dup\"}", base);
        d = J(buf);
        mongoc_bulk_operation_insert_with_opts(b, d, NULL, NULL);
        bson_destroy(d);
        snprintf(buf, sizeof buf, "{\"name\": \"replaced%d\"}", base);
        bson_t *rep = J(buf), *ups = J("{\"upsert\": true}");
        mongoc_bulk_operation_replace_one_with_opts(b, sel, rep, ups, NULL);
        snprintf(buf, sizeof buf, "{\"_id\": {\"$gte\": %d}}", base);
        bson_t *sel2 = J(buf), *set = J("{\"$set\": {\"bulk\": true}}");
        mongoc_bulk_operation_update_many_with_opts(b, sel2, set, NULL, NULL);
        mongoc_bulk_operation_remove_one_with_opts(b, sel, NULL, NULL);
        bson_t *selx = J("{\"_id\": {\"$gt\": 1000}}");
        mongoc_bulk_operation_remove_many_with_opts(b, selx, NULL, NULL);
        begin();
        ok = mongoc_bulk_operation_execute(b, &reply, &err) != 0;
        emit(ordered ? "bulk(ordered, dup at 2)" : "bulk(unordered, dup at 2)", ok, &reply, &err);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(b);
        bson_destroy(o);
        bson_destroy(sel);
        bson_destroy(inc);
        bson_destroy(rep);
        bson_destroy(ups);
        bson_destroy(sel2);
        bson_destroy(set);
        bson_destroy(selx);
    }

    /* ---- deletes ---- */
    {
        bson_t *s = J("{\"_id\": 3}");
        begin();
        ok = mongoc_collection_delete_one(items, s, NULL, &reply, &err);
        emit("delete_one", ok, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(s);
        s = J("{\"i\": {\"$gte\": 140}}");
        begin();
        ok = mongoc_collection_delete_many(big, s, NULL, &reply, &err);
        emit("delete_many", ok, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(s);
    }

    /* ---- indexes ---- */
    command(db, "command createIndexes",
            "{\"createIndexes\": \"items\", \"indexes\": [{\"key\": {\"name\": 1}, \"name\": \"name_1\", \"unique\": true},"
            " {\"key\": {\"qty\": -1, \"name\": 1}, \"name\": \"qty_name\"}]}");
    command(db, "command createIndexes(unique on duplicates)",
            "{\"createIndexes\": \"big\", \"indexes\": [{\"key\": {\"even\": 1}, \"name\": \"even_u\", \"unique\": true}]}");
    {
        begin();
        mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(items, NULL);
        read_cursor("listIndexes(items)", cur, 0);
        mongoc_cursor_destroy(cur);
    }
    command(db, "command dropIndexes", "{\"dropIndexes\": \"items\", \"index\": \"qty_name\"}");

    /* ---- errors ---- */
    command(db, "command unknown", "{\"mongocacheNoSuchCommand\": 1}");
    find(items, "find(bad operator $bogus)", "{\"qty\": {\"$bogus\": 1}}", NULL, 0);
    command(db, "command insert(documents not an array)", "{\"insert\": \"items\", \"documents\": 5}");

    /* ---- final state, drop ---- */
    find(items, "find(final items)", "{}", "{\"sort\": {\"_id\": 1}}", 0);
    command(db, "command listCollections(nameOnly)", "{\"listCollections\": 1, \"nameOnly\": true, \"filter\": {\"name\": \"items\"}}");
    begin();
    ok = mongoc_collection_drop_with_opts(items, NULL, &err);
    emit("drop(items)", ok, NULL, &err);
    begin();
    ok = mongoc_collection_drop_with_opts(big, NULL, &err);
    emit("drop(big)", ok, NULL, &err);
    begin();
    ok = mongoc_database_drop_with_opts(db, NULL, &err);
    emit("dropDatabase", ok, NULL, &err);

    finish();
    mongoc_collection_destroy(items);
    mongoc_collection_destroy(big);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_apm_callbacks_destroy(cbs);
    mongoc_uri_destroy(uri);
    bson_string_free(out, true);
    mongoc_cleanup();
    return 0;
}
