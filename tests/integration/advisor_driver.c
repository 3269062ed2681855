/*
 * tests/integration/advisor_driver.c: drives advice/advisor.c (with the
 * shape table of advice/table.c) against real FerretDB servers for
 * tests/integration/test_advisor.sh. It owns only the scenarios:
 *
 *   advice   a 5,000-document collection with an unindexed equality + sort
 *            + range query gets exactly its index (evidence "indexes":
 *            FerretDB's explain is not a mongod plan); _id lookups, an
 *            indexed query and a small collection get none; createIndex on
 *            the server withdraws it at the next run, dropIndexes brings it
 *            back; verdicts are kept between runs and forgotten when a
 *            namespace's indexes change (seen, or told by the table);
 *            explain off sends none; at most max_shapes explains per run;
 *            reconfigure.
 *   tls      FerretDB behind TLS: the guard stream sits above libmongoc's
 *            TLS stream (the advice comes, with tlsCAFile; the certificate
 *            is still verified without it).
 *   auth     FerretDB with authentication: credentials in the URI work,
 *            none or a wrong password give "unauthorized"; no error text
 *            holds a credential; a URI that does not parse is refused.
 *   faults   a FerretDB this program starts, kills (unreachable, backoff
 *            doubling, runs skipped, advice kept), restarts (ok again),
 *            pauses with SIGSTOP (the run times out, the loop keeps its
 *            10 ms ticks, destroy returns in bounded time mid-run).
 *   junk     advisor_fake.py answering junk: state error (or what each
 *            fault is), the advisor keeps working, nothing crashes; also
 *            when the handshake itself is junk (libmongoc 1.23 would crash
 *            on it: advice/guard.c refuses it first).
 *
 * It prints "PLAN n", then "RESULT 0|1 name" per check and "# "
 * diagnostics; the script turns them into TAP. Everything on 127.0.0.1,
 * every wait bounded. The libmongoc client used to seed data is the test's
 * own (this program's main thread), never the advisor's.
 *
 *   advisor_driver FERRET_URI AUTH_HOSTPORT USER PASSWORD FAKE_PORT BADHELLO_PORT
 *                  BADSTREAM_PORT FERRETDB DIR PORT PIDFILE TLS_HOSTPORT CA_FILE
 * FAKE_PORT, BADHELLO_PORT, BADSTREAM_PORT: advisor_fake.py, with no mode,
 * badhello and badstream.
 * DIR/PORT: where the faults scenario runs its own FerretDB; PIDFILE gets
 * its pid (it also dies with this program: PR_SET_PDEATHSIG).
 */
#include "config.h"

#include "advice/advisor.h"
#include "advice/shape.h"
#include "advice/table.h"
#include "conf/clock.h"
#include "wire/cmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_CHECKS 68
#define REPORT_WAIT_MS 20000
#define DB "advtest"

/* The scenarios' state: one loop, the last report, the check count, the spawned FerretDB. */
struct drv {
    struct event_base *base;
    int checks;
    struct advice_report *last; /* owned */
    int reports;
    struct event *ticker;
    int64_t last_tick_ms;
    int64_t max_gap_ms;
    const char *ferretdb;
    const char *dir;
    int port;
    const char *pidfile;
    pid_t child;
};

static void check(struct drv *d, bool good, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check(struct drv *d, bool good, const char *fmt, ...)
{
    va_list ap;

    d->checks++;
    printf("RESULT %d ", good ? 0 : 1);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct drv *d = arg;
    int64_t now = conf_clock_ms();

    (void)fd;
    (void)what;
    if (d->last_tick_ms != 0 && now - d->last_tick_ms > d->max_gap_ms)
        d->max_gap_ms = now - d->last_tick_ms;
    d->last_tick_ms = now;
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until d->reports passes since or ms pass. */
static bool
run_until_report(struct drv *d, int since, int ms)
{
    bool expired = false;
    struct event *ev = evtimer_new(d->base, deadline_cb, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
    while (d->reports == since && !expired)
        event_base_loop(d->base, EVLOOP_ONCE);
    event_free(ev);
    return d->reports != since;
}

/* Runs the loop for ms, whatever comes. */
static void
run_for(struct drv *d, int ms)
{
    bool expired = false;
    struct event *ev = evtimer_new(d->base, deadline_cb, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
    while (!expired)
        event_base_loop(d->base, EVLOOP_ONCE);
    event_free(ev);
}

static void
on_report(void *arg, struct advice_report *report)
{
    struct drv *d = arg;

    advice_report_destroy(d->last);
    d->last = report;
    d->reports++;
}

/* Submits a snapshot of t and waits for the report; NULL when none came. */
static const struct advice_report *
submit(struct drv *d, struct advice_advisor *adv, struct advice_table *t, int ms)
{
    int since = d->reports;

    advice_advisor_submit(adv, advice_table_snapshot(t, 64));
    return run_until_report(d, since, ms) ? d->last : NULL;
}

static void
show(const struct advice_report *r)
{
    if (r == NULL) {
        printf("# no report\n");
        return;
    }
    printf("# report: state %s, %u advice, runs %llu, errors %llu, explains %llu, "
           "listIndexes %llu, retry_in %lld ms, last_error %s\n",
           advice_state_name(r->state), r->n_items, (unsigned long long)r->runs,
           (unsigned long long)r->errors, (unsigned long long)r->explains,
           (unsigned long long)r->list_indexes, (long long)r->retry_in_ms,
           r->last_error ? r->last_error : "-");
    for (uint32_t i = 0; i < r->n_items; i++)
        printf("#   %s.%s %s (%s, %s) queries %llu docs %lld\n", r->items[i].db,
               r->items[i].coll, r->items[i].index.name ? r->items[i].index.name : "?",
               advice_reason_name(r->items[i].reason),
               advice_evidence_name(r->items[i].evidence),
               (unsigned long long)r->items[i].queries, (long long)r->items[i].documents);
    fflush(stdout);
}

static bool
is_state(const struct advice_report *r, enum advice_state s)
{
    return r != NULL && r->state == s;
}

/* ---- shapes ------------------------------------------------------------ */

/*
 * Records n queries (each taking ms on the server, returning one document)
 * of the query tmpl with "@DB@" replaced by db, as the proxy will: its
 * shape derived by advice_shape_extract, with the query and statement that
 * go with it.
 */
static void
record(struct advice_table *t, const char *db, const char *tmpl, int n, double ms)
{
    char json[512];
    const char *at = strstr(tmpl, "@DB@");
    bson_error_t error;
    bson_t *body;
    struct wire_cmd cmd;
    struct advice_shapes shapes;

    if (at == NULL)
        exit(2);
    snprintf(json, sizeof json, "%.*s%s%s", (int)(at - tmpl), tmpl, db, at + 4);
    body = bson_new_from_json((const uint8_t *)json, -1, &error);
    if (body == NULL || !wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error) ||
        advice_shape_extract(body, &cmd, NULL, 0, &shapes) != 1) {
        printf("# not one shape in %s\n", json);
        exit(2);
    }
    for (int i = 0; i < n; i++) {
        advice_table_record(t, &shapes.shape[0], shapes.query[0], shapes.query_len[0],
                            shapes.statement[0], 1, conf_clock_ms());
        advice_table_reply(t, shapes.shape[0].hash, ms, 1, 1);
    }
    advice_shapes_cleanup(&shapes);
    bson_destroy(body);
}

/* ---- the server, seen by the test's own client ---------------------------- */

static mongoc_client_t *
test_client(const char *uri)
{
    mongoc_client_t *c = mongoc_client_new(uri);

    if (c == NULL) {
        printf("# bad test URI\n");
        exit(2);
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

static bool
command(mongoc_client_t *c, const char *db, const char *json)
{
    bson_error_t error;
    bson_t *cmd = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_t reply;
    bool ok;

    if (cmd == NULL) {
        printf("# bad command json %s\n", json);
        return false;
    }
    ok = mongoc_client_command_simple(c, db, cmd, NULL, &reply, &error);
    if (!ok)
        printf("# %s: %s\n", json, error.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

/* (Re)creates db.coll with n documents {_id, author, year, pages, isbn, p1..p5}. */
static bool
seed(mongoc_client_t *c, const char *db, const char *coll, int n)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_bulk_operation_t *bulk;
    bson_error_t error;
    bson_t reply;
    bool ok;

    mongoc_collection_drop(col, NULL);
    bulk = mongoc_collection_create_bulk_operation_with_opts(col, NULL);
    for (int i = 0; i < n; i++) {
        char author[16], isbn[24];
        bson_t *doc;

        snprintf(author, sizeof author, "a%d", i % 50);
        snprintf(isbn, sizeof isbn, "isbn-%d", i);
        doc = BCON_NEW("_id", BCON_INT32(i), "author", BCON_UTF8(author), "year",
                       BCON_INT32(1900 + i % 120), "pages", BCON_INT32(i % 1000), "isbn",
                       BCON_UTF8(isbn), "p1", BCON_INT32(i % 7), "p2", BCON_INT32(i % 11), "p3",
                       BCON_INT32(i % 13), "p4", BCON_INT32(i % 17), "p5", BCON_INT32(i % 19));
        mongoc_bulk_operation_insert(bulk, doc);
        bson_destroy(doc);
    }
    ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
    if (!ok)
        printf("# seeding %s.%s: %s\n", db, coll, error.message);
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    mongoc_collection_destroy(col);
    return ok;
}

static struct advice_config
config(const char *uri)
{
    struct advice_config cfg = {
        .uri = uri,
        .interval_ms = 200,
        .min_documents = 1000,
        .explain = true,
        .max_shapes = 16,
        .timeout_ms = 3000,
    };
    return cfg;
}

/* ---- scenario: advice --------------------------------------------------- */

/* The queries (the database's name left to fill in). */
static const char Q_ESR[] =
    "{\"find\": \"books\", \"filter\": {\"author\": \"a1\", \"pages\": {\"$gte\": 100}}, "
    "\"sort\": {\"year\": -1}, \"$db\": \"@DB@\"}";
static const char Q_ID[] = "{\"find\": \"books\", \"filter\": {\"_id\": 7}, \"$db\": \"@DB@\"}";
static const char Q_INDEXED[] =
    "{\"find\": \"isbns\", \"filter\": {\"isbn\": \"isbn-7\"}, \"$db\": \"@DB@\"}";
static const char Q_SMALL[] =
    "{\"find\": \"small\", \"filter\": {\"author\": \"a3\"}, \"$db\": \"@DB@\"}";

static bool
keys_are(const struct advice_index *ix, const char *p0, int d0, const char *p1, int d1,
         const char *p2, int d2)
{
    return ix->n_keys == 3 && strcmp(ix->keys[0].path, p0) == 0 && ix->keys[0].dir == d0 &&
           strcmp(ix->keys[1].path, p1) == 0 && ix->keys[1].dir == d1 &&
           strcmp(ix->keys[2].path, p2) == 0 && ix->keys[2].dir == d2;
}

static void
scenario_advice(struct drv *d, const char *uri)
{
    mongoc_client_t *c = test_client(uri);
    struct advice_table *t = advice_table_new(64);
    struct advice_config cfg = config(uri);
    struct advice_advisor *adv;
    const struct advice_report *r;
    bson_error_t error;
    bool seeded;

    seeded = seed(c, DB, "books", 5000) && seed(c, DB, "isbns", 5000) &&
             seed(c, DB, "small", 100) && seed(c, DB, "many", 1500) &&
             command(c, DB,
                     "{\"createIndexes\": \"isbns\", \"indexes\": [{\"key\": {\"isbn\": 1}, "
                     "\"name\": \"isbn_1\"}]}");
    check(d, seeded,
          "advice: seeded books (5000), isbns (5000, indexed), small (100), many (1500)");

    record(t, DB, Q_ESR, 10, 5.0);
    record(t, DB, Q_ID, 50, 0.5);
    record(t, DB, Q_INDEXED, 20, 0.5);
    record(t, DB, Q_SMALL, 30, 1.0);

    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    check(d, adv != NULL, "advice: advisor started (%s)", adv ? "ok" : error.message);
    if (adv == NULL)
        exit(1);
    r = submit(d, adv, t, REPORT_WAIT_MS);
    show(r);
    check(d, is_state(r, ADVICE_STATE_OK), "advice: state ok after the first run");
    check(d, r && r->n_items == 1, "advice: exactly one advice (not _id, not indexed, not small)");
    if (r && r->n_items == 1) {
        const struct advice_item *it = &r->items[0];

        check(d, strcmp(it->db, DB) == 0 && strcmp(it->coll, "books") == 0,
              "advice: on " DB ".books");
        check(d, keys_are(&it->index, "author", 1, "year", -1, "pages", 1) &&
                     it->index.name && strcmp(it->index.name, "author_1_year_-1_pages_1") == 0,
              "advice: equality, sort, range: author_1_year_-1_pages_1 (got %s)",
              it->index.name ? it->index.name : "?");
        check(d, it->evidence == ADVICE_EVIDENCE_INDEXES &&
                     it->reason == ADVICE_REASON_NO_USABLE_INDEX,
              "advice: evidence indexes, reason no_usable_index (FerretDB's plan is not mongod's)");
        check(d, it->queries == 10 && it->documents == 5000 && it->server_ms > 49.0,
              "advice: its queries (10), server time (50 ms) and document count (5000)");
        check(d, it->mongosh && strstr(it->mongosh, "db.getSiblingDB(\"" DB "\").books.") != NULL,
              "advice: mongosh text (%s)", it->mongosh ? it->mongosh : "-");
    } else {
        for (int i = 0; i < 5; i++)
            check(d, false, "advice: (no single advice to inspect)");
    }
    check(d, r && r->explains == 2 && r->list_indexes == 3 && r->runs == 1,
          "advice: 2 explains (not the _id lookup, not the small collection), one listIndexes "
          "per namespace");

    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->n_items == 1 && r->explains == 2 && r->list_indexes == 6 && r->runs == 2,
          "advice: second run: same advice, no explain again (verdicts kept), listIndexes again");

    command(c, DB,
            "{\"createIndexes\": \"books\", \"indexes\": [{\"key\": {\"author\": 1, \"year\": -1, "
            "\"pages\": 1}, \"name\": \"author_1_year_-1_pages_1\"}]}");
    r = submit(d, adv, t, REPORT_WAIT_MS);
    show(r);
    check(d, r && r->n_items == 0, "advice: withdrawn at the next run after createIndex");
    check(d, r && r->explains == 3,
          "advice: the books shape explained again (its namespace's indexes changed)");

    advice_table_indexes_changed(t, DB, "isbns");
    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->explains == 4,
          "advice: a namespace the table says changed is explained again");
    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->explains == 4, "advice: and only once");

    command(c, DB, "{\"dropIndexes\": \"books\", \"index\": \"author_1_year_-1_pages_1\"}");
    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->n_items == 1 && r->explains == 5, "advice: back after dropIndexes");

    cfg.explain = false;
    advice_advisor_reconfigure(adv, &cfg);
    advice_table_indexes_changed(t, DB, "books");
    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->n_items == 1 && r->explains == 5,
          "advice: reconfigured explain off: advice from the indexes, no explain sent");
    cfg.min_documents = 10000;
    advice_advisor_reconfigure(adv, &cfg);
    r = submit(d, adv, t, REPORT_WAIT_MS);
    check(d, r && r->n_items == 0, "advice: reconfigured min_documents 10000: none");
    advice_advisor_destroy(adv);

    /* explain off from the start */
    cfg = config(uri);
    cfg.explain = false;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    r = r ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    check(d, r && r->n_items == 1 && r->explains == 0 && r->list_indexes == 6,
          "advice: explain off: the same advice, 0 explains over 2 runs");
    advice_advisor_destroy(adv);
    advice_table_destroy(t);

    /* at most max_shapes explains per run; shapes waiting for theirs are not advised yet */
    {
        static const char *const many[5] = {
            "{\"find\": \"many\", \"filter\": {\"p1\": 1}, \"$db\": \"@DB@\"}",
            "{\"find\": \"many\", \"filter\": {\"p2\": 1}, \"$db\": \"@DB@\"}",
            "{\"find\": \"many\", \"filter\": {\"p3\": 1}, \"$db\": \"@DB@\"}",
            "{\"find\": \"many\", \"filter\": {\"p4\": 1}, \"$db\": \"@DB@\"}",
            "{\"find\": \"many\", \"filter\": {\"p5\": 1}, \"$db\": \"@DB@\"}",
        };
        uint64_t ex[3] = {0};
        uint32_t items[3] = {0};

        t = advice_table_new(64);
        for (int i = 0; i < 5; i++)
            record(t, DB, many[i], 10 - i, 1.0);
        cfg = config(uri);
        cfg.max_shapes = 2;
        adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
        for (int i = 0; i < 3 && adv; i++) {
            r = submit(d, adv, t, REPORT_WAIT_MS);
            ex[i] = r ? r->explains : 0;
            items[i] = r ? r->n_items : 0;
        }
        check(d, ex[0] == 2 && ex[1] == 4 && ex[2] == 5,
              "advice: max_shapes 2: explains 2, 4, 5 over three runs (got %llu %llu %llu)",
              (unsigned long long)ex[0], (unsigned long long)ex[1], (unsigned long long)ex[2]);
        check(d, items[0] == 2 && items[1] == 4 && items[2] == 5,
              "advice: a shape is advised once explained (got %u %u %u)", items[0], items[1],
              items[2]);
        advice_advisor_destroy(adv);
        advice_table_destroy(t);
    }
    mongoc_client_destroy(c);
}

/* ---- scenario: tls ------------------------------------------------------ */

static void
scenario_tls(struct drv *d, const char *hostport, const char *ca_file)
{
    char *uri = bson_strdup_printf("mongodb://%s/?tls=true&tlsCAFile=%s", hostport, ca_file);
    char *no_ca = bson_strdup_printf("mongodb://%s/?tls=true", hostport);
    mongoc_client_t *c = test_client(uri);
    struct advice_table *t = advice_table_new(64);
    struct advice_config cfg = config(uri);
    struct advice_advisor *adv;
    const struct advice_report *r;
    bson_error_t error;

    check(d, seed(c, "tlsdb", "books", 1500), "tls: seeded tlsdb.books over TLS");
    record(t, "tlsdb", Q_ESR, 5, 2.0);
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    show(r);
    check(d, is_state(r, ADVICE_STATE_OK) && r->n_items == 1 && r->explains == 1,
          "tls: through the guard over TLS: state ok, the advice, one explain");
    advice_advisor_destroy(adv);

    cfg.uri = no_ca;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    show(r);
    check(d, is_state(r, ADVICE_STATE_UNREACHABLE) && r->last_error &&
                 strstr(r->last_error, "certificate") != NULL,
          "tls: without the CA the server's certificate is refused (unreachable)");
    advice_advisor_destroy(adv);
    advice_table_destroy(t);
    mongoc_client_destroy(c);
    bson_free(uri);
    bson_free(no_ca);
}

/* ---- scenario: auth --------------------------------------------------- */

static bool
no_secret(const struct advice_report *r, const char *user, const char *pw)
{
    return r == NULL || r->last_error == NULL ||
           ((pw[0] == '\0' || strstr(r->last_error, pw) == NULL) &&
            (user[0] == '\0' || strstr(r->last_error, user) == NULL));
}

static void
scenario_auth(struct drv *d, const char *hostport, const char *user, const char *pw)
{
    char *good = bson_strdup_printf("mongodb://%s:%s@%s/?authSource=admin", user, pw, hostport);
    char *none = bson_strdup_printf("mongodb://%s/", hostport);
    char *wrong =
        bson_strdup_printf("mongodb://%s:wrong-pw-4242@%s/?authSource=admin", user, hostport);
    char *bad = bson_strdup_printf("mongodb://%s:pw-in-bad-uri-99@/nohost?x", user);
    mongoc_client_t *c = test_client(good);
    struct advice_table *t = advice_table_new(64);
    struct advice_config cfg = config(good);
    struct advice_advisor *adv;
    const struct advice_report *r;
    bson_error_t error;

    check(d, seed(c, "authdb", "books", 1500), "auth: seeded authdb.books with credentials");
    record(t, "authdb", Q_ESR, 5, 2.0);

    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    show(r);
    check(d, is_state(r, ADVICE_STATE_OK) && r->n_items == 1,
          "auth: credentials in advice_uri: state ok, the advice given");
    advice_advisor_destroy(adv);

    cfg.uri = none;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    show(r);
    check(d, is_state(r, ADVICE_STATE_UNAUTHORIZED) && r->errors >= 1 && r->last_error,
          "auth: no credentials: state unauthorized, counted, last_error set");
    check(d, r && r->retry_in_ms > 0 && r->retry_in_ms <= 1000,
          "auth: backing off 1 s after the failed run");
    advice_advisor_destroy(adv);

    cfg.uri = wrong;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    show(r);
    check(d, is_state(r, ADVICE_STATE_UNAUTHORIZED), "auth: a wrong password: unauthorized");
    check(d, no_secret(r, user, "wrong-pw-4242"), "auth: last_error holds no credential");
    advice_advisor_destroy(adv);

    cfg.uri = bad;
    memset(&error, 0, sizeof error);
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    printf("# bad URI: %s\n", error.message);
    check(d, adv == NULL && error.message[0] != '\0' &&
                 strstr(error.message, "pw-in-bad-uri-99") == NULL,
          "auth: a URI that does not parse is refused, its password not in the error");
    advice_advisor_destroy(adv);

    advice_table_destroy(t);
    mongoc_client_destroy(c);
    bson_free(good);
    bson_free(none);
    bson_free(wrong);
    bson_free(bad);
}

/* ---- scenario: faults ------------------------------------------------------ */

static bool
port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Starts (or restarts) the scenario's FerretDB on d->port with its data in d->dir. */
static bool
ferret_start(struct drv *d)
{
    pid_t pid = fork();

    if (pid == 0) {
        char url[600], state[600], listen[64], log[600];
        int fd;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        snprintf(url, sizeof url, "--sqlite-url=file:%s/data/", d->dir);
        snprintf(state, sizeof state, "--state-dir=%s", d->dir);
        snprintf(listen, sizeof listen, "--listen-addr=127.0.0.1:%d", d->port);
        snprintf(log, sizeof log, "%s/ferretdb.log", d->dir);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(d->ferretdb, d->ferretdb, "--handler=sqlite", url, state, listen,
              "--telemetry=disable", "--debug-addr=-", "--log-level=WARN", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return false;
    d->child = pid;
    {
        FILE *f = fopen(d->pidfile, "w");

        if (f != NULL) {
            fprintf(f, "%d\n", (int)pid);
            fclose(f);
        }
    }
    for (int i = 0; i < 300; i++) {
        if (port_open(d->port))
            return true;
        usleep(100000);
    }
    return false;
}

static void
ferret_kill(struct drv *d)
{
    if (d->child > 0) {
        kill(d->child, SIGKILL);
        waitpid(d->child, NULL, 0);
        d->child = 0;
    }
}

/* Waits (at most 10 s) until the driver's FerretDB answers json on db. */
static void
wait_answering(struct drv *d, const char *db, const char *json)
{
    char *uri = bson_strdup_printf(
        "mongodb://127.0.0.1:%d/?connectTimeoutMS=1000&socketTimeoutMS=2000", d->port);
    int64_t t0 = conf_clock_ms();
    bool ok = false;

    while (!ok && conf_clock_ms() - t0 < 10000) {
        mongoc_client_t *c = test_client(uri); /* new each time: no cooldown after a failure */

        ok = command(c, db, json);
        mongoc_client_destroy(c);
        if (!ok)
            usleep(100000);
    }
    printf("# FerretDB %s after %lld ms\n", ok ? "answered" : "had not answered",
           (long long)(conf_clock_ms() - t0));
    bson_free(uri);
}

static void
scenario_faults(struct drv *d)
{
    char *uri = bson_strdup_printf("mongodb://127.0.0.1:%d/", d->port);
    struct advice_table *t = advice_table_new(64);
    struct advice_config cfg = config(uri);
    struct advice_advisor *adv;
    const struct advice_report *r;
    bson_error_t error;
    mongoc_client_t *c;
    int64_t retry1, retry2, t0, waited;
    uint64_t runs, errors;
    bool ok_again = false;
    char data[700];

    snprintf(data, sizeof data, "%s/data", d->dir);
    mkdir(data, 0700);
    check(d, ferret_start(d), "faults: own FerretDB started");
    c = test_client(uri);
    check(d, seed(c, "fault", "books", 1200), "faults: seeded fault.books (1200)");
    mongoc_client_destroy(c);
    record(t, "fault", Q_ESR, 5, 2.0);

    cfg.timeout_ms = 500;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
    check(d, is_state(r, ADVICE_STATE_OK) && r->n_items == 1, "faults: ok with one advice");

    /* killed */
    ferret_kill(d);
    t0 = conf_clock_ms();
    r = submit(d, adv, t, REPORT_WAIT_MS);
    show(r);
    check(d, is_state(r, ADVICE_STATE_UNREACHABLE) && r->errors >= 1,
          "faults: killed: state unreachable, counted (after %lld ms)",
          (long long)(conf_clock_ms() - t0));
    check(d, r && r->n_items == 1, "faults: the advice known is kept while unreachable");
    retry1 = r ? r->retry_in_ms : -1;
    runs = r ? r->runs : 0;
    check(d, retry1 > 0 && retry1 <= 1000, "faults: backoff 1 s (retry_in %lld ms)",
          (long long)retry1);
    run_for(d, 20);
    r = submit(d, adv, t, REPORT_WAIT_MS);
    show(r);
    check(d, r && r->runs == runs && r->retry_in_ms > 0 && r->retry_in_ms < retry1 &&
                 r->state == ADVICE_STATE_UNREACHABLE,
          "faults: a run during the backoff is skipped (no command), the report says so");
    run_for(d, (int)retry1 + 50);
    r = submit(d, adv, t, REPORT_WAIT_MS);
    retry2 = r ? r->retry_in_ms : -1;
    show(r);
    check(d, r && r->runs == runs + 1 && retry2 > 1000 && retry2 <= 2000,
          "faults: tried again after it, failed: backoff doubled (retry_in %lld ms)",
          (long long)retry2);

    /* restarted */
    check(d, ferret_start(d), "faults: FerretDB restarted");
    errors = r ? r->errors : 0;
    t0 = conf_clock_ms();
    /* Back means answering, not only listening: under load a fresh FerretDB
     * has taken seconds to answer its first commands (the advisor's 500 ms
     * timeout would count those as errors of a server that is not back). */
    wait_answering(d, "fault", "{\"listIndexes\": \"books\"}");
    while (conf_clock_ms() - t0 < 15000) {
        r = submit(d, adv, t, REPORT_WAIT_MS);
        if (is_state(r, ADVICE_STATE_OK)) {
            ok_again = true;
            break;
        }
        run_for(d, 200);
    }
    waited = conf_clock_ms() - t0;
    show(r);
    check(d, ok_again && r->retry_in_ms == 0 && r->n_items == 1 && r->last_error == NULL,
          "faults: ok again after the restart (%lld ms, backoff was %lld ms)", (long long)waited,
          (long long)retry2);
    check(d, ok_again && waited >= retry2 - 100,
          "faults: not before the backoff ended (%lld >= %lld ms)", (long long)waited,
          (long long)retry2);
    check(d, r && r->errors == errors, "faults: no error counted once the server is back");

    /* paused */
    kill(d->child, SIGSTOP);
    d->max_gap_ms = 0;
    d->last_tick_ms = 0;
    t0 = conf_clock_ms();
    r = submit(d, adv, t, REPORT_WAIT_MS);
    show(r);
    check(d, r && r->state != ADVICE_STATE_OK,
          "faults: paused: the run fails (state %s) after %lld ms",
          r ? advice_state_name(r->state) : "-", (long long)(conf_clock_ms() - t0));
    check(d, conf_clock_ms() - t0 < 5 * 500 + 2000, "faults: within the command timeout's bound");
    check(d, d->max_gap_ms < 150, "faults: the loop kept ticking every 10 ms (largest gap %lld ms)",
          (long long)d->max_gap_ms);
    /* a run stuck on the paused server, then destroy */
    run_for(d, r ? (int)r->retry_in_ms + 50 : 1000);
    advice_advisor_submit(adv, advice_table_snapshot(t, 64));
    run_for(d, 100);
    t0 = conf_clock_ms();
    advice_advisor_destroy(adv);
    waited = conf_clock_ms() - t0;
    check(d, waited < 3 * 500 + 1500, "faults: destroy mid-run returns in %lld ms",
          (long long)waited);
    /* A worker stuck longer than destroy waits (a command timeout of 30 s on
     * the paused server): destroy returns after ADVICE_ADVISOR_STOP_WAIT_MS,
     * leaving the worker behind to free the advisor when it ends. */
    cfg.timeout_ms = 30000;
    adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
    if (adv) {
        bool stopped;

        advice_advisor_submit(adv, advice_table_snapshot(t, 64));
        run_for(d, 300);
        t0 = conf_clock_ms();
        stopped = advice_advisor_destroy(adv);
        waited = conf_clock_ms() - t0;
        check(d, !stopped && waited >= ADVICE_ADVISOR_STOP_WAIT_MS - 50 &&
                     waited < ADVICE_ADVISOR_STOP_WAIT_MS + 1000,
              "faults: a worker stuck past the stop wait is left behind (%s after %lld ms)",
              stopped ? "joined" : "abandoned", (long long)waited);
    } else {
        check(d, false, "faults: a worker stuck past the stop wait is left behind (no advisor)");
    }
    kill(d->child, SIGCONT);
    ferret_kill(d);
    advice_table_destroy(t);
    bson_free(uri);
}

/* ---- scenario: junk -------------------------------------------------------- */

struct junk_case {
    const char *coll;
    enum advice_state state;
    const char *text; /* in last_error */
    uint32_t items;
    const char *reason; /* of the advice, when there is one to check */
};

static void
scenario_junk(struct drv *d, int fake_port, int badhello_port, int badstream_port)
{
    static const struct junk_case cases[] = {
        {"badcursor", ADVICE_STATE_ERROR, "listIndexes", 0, NULL},
        {"nokey", ADVICE_STATE_ERROR, "without a usable key", 0, NULL},
        {"toomany", ADVICE_STATE_ERROR, "more than 64", 0, NULL},
        {"deep", ADVICE_STATE_ERROR, "malformed OP_MSG", 0, NULL},
        {"endless", ADVICE_STATE_ERROR, "does not end", 0, NULL},
        {"badcount", ADVICE_STATE_ERROR, "document count", 0, NULL},
        {"negcount", ADVICE_STATE_ERROR, "document count", 0, NULL},
        {"unauth", ADVICE_STATE_UNAUTHORIZED, "not authorized", 0, NULL},
        {"garbage", ADVICE_STATE_ERROR, "malformed OP_MSG", 0, NULL},
        {"sections", ADVICE_STATE_ERROR, "document sequence", 0, NULL},
        {"checksum", ADVICE_STATE_ERROR, "flags 0x1", 0, NULL},
        {"close", ADVICE_STATE_UNREACHABLE, "listIndexes", 0, NULL},
        {"badexplain", ADVICE_STATE_OK, NULL, 1, NULL},
        {"errexplain", ADVICE_STATE_OK, NULL, 1, NULL},
        {"collscan", ADVICE_STATE_OK, NULL, 1, "collection_scan"},
        {"ixscan", ADVICE_STATE_OK, NULL, 0, NULL},
        {"view", ADVICE_STATE_OK, NULL, 0, NULL},
        {"missing", ADVICE_STATE_OK, NULL, 0, NULL},
    };
    char *uri = bson_strdup_printf("mongodb://127.0.0.1:%d/", fake_port);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct junk_case *k = &cases[i];
        struct advice_table *t = advice_table_new(8);
        struct advice_config cfg = config(uri);
        char fmt[200];
        struct advice_advisor *adv;
        const struct advice_report *r;
        bson_error_t error;
        bool good;

        snprintf(fmt, sizeof fmt, "{\"find\": \"%s\", \"filter\": {\"isbn\": \"x\"}, "
                 "\"$db\": \"@DB@\"}", k->coll);
        record(t, "junk", fmt, 3, 1.0);
        cfg.timeout_ms = 1000;
        adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
        r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
        show(r);
        good = is_state(r, k->state) && r->n_items == k->items &&
               (k->text == NULL ? r->last_error == NULL
                                : r->last_error && strstr(r->last_error, k->text) != NULL);
        if (good && k->reason != NULL)
            good = r->items[0].evidence == ADVICE_EVIDENCE_EXPLAIN &&
                   strcmp(advice_reason_name(r->items[0].reason), k->reason) == 0;
        /* the advisor keeps working: the next run (after the backoff) gives a report too */
        if (good && k->state != ADVICE_STATE_OK) {
            run_for(d, (int)r->retry_in_ms + 50);
            r = submit(d, adv, t, REPORT_WAIT_MS);
            good = r && r->runs == 2 && r->state == k->state;
        }
        check(d, good, "junk: %s: state %s%s%s%s%s, %u advice", k->coll,
              advice_state_name(k->state), k->text ? ", last_error mentions " : "",
              k->text ? k->text : "", k->reason ? ", evidence explain, reason " : "",
              k->reason ? k->reason : "", k->items);
        advice_advisor_destroy(adv);
        advice_table_destroy(t);
    }
    bson_free(uri);

    /* the handshake itself is junk: OP_REPLY with 3 documents announced, 1 sent */
    uri = bson_strdup_printf("mongodb://127.0.0.1:%d/", badhello_port);
    {
        struct advice_table *t = advice_table_new(8);
        struct advice_config cfg = config(uri);
        struct advice_advisor *adv;
        const struct advice_report *r;
        bson_error_t error;

        record(t, DB, Q_ESR, 3, 1.0);
        cfg.timeout_ms = 1000;
        adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
        r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
        show(r);
        check(d, is_state(r, ADVICE_STATE_ERROR) && r->last_error &&
                     strstr(r->last_error, "OP_REPLY") != NULL,
              "junk: a handshake answered with a malformed OP_REPLY: state error, no crash");
        advice_advisor_destroy(adv);
        advice_table_destroy(t);
    }
    bson_free(uri);

    /*
     * A server that would crash a libmongoc 1.23 client pool's monitor (it
     * announces a topologyVersion, then answers OP_MSG hello with junk):
     * the advisor's single-threaded client never streams hello, and is fine.
     */
    uri = bson_strdup_printf("mongodb://127.0.0.1:%d/", badstream_port);
    {
        struct advice_table *t = advice_table_new(8);
        struct advice_config cfg = config(uri);
        struct advice_advisor *adv;
        const struct advice_report *r;
        bson_error_t error;
        bool good = true;

        record(t, DB, Q_ESR, 3, 1.0);
        cfg.timeout_ms = 1000;
        adv = advice_advisor_new(d->base, &cfg, on_report, d, &error);
        for (int i = 0; i < 3 && good; i++) {
            r = adv ? submit(d, adv, t, REPORT_WAIT_MS) : NULL;
            good = is_state(r, ADVICE_STATE_OK) && r->list_indexes == (uint64_t)i + 1;
            if (!good)
                show(r);
            run_for(d, 600); /* past heartbeatFrequencyMS's floor (500 ms) */
        }
        check(d, good, "junk: a server whose OP_MSG hello is junk: three runs ok, no crash");
        advice_advisor_destroy(adv);
        advice_table_destroy(t);
    }
    bson_free(uri);
}

/* ADVISOR_ONLY=name (development): run that scenario alone (the plan then fails). */
static bool
wanted(const char *name)
{
    const char *only = getenv("ADVISOR_ONLY");

    return only == NULL || strcmp(only, name) == 0;
}

int
main(int argc, char **argv)
{
    struct drv d = {0};
    struct timeval tick = {0, 10000};

    if (argc != 14) {
        fprintf(stderr,
                "usage: %s FERRET_URI AUTH_HOSTPORT USER PASSWORD FAKE_PORT BADHELLO_PORT "
                "BADSTREAM_PORT FERRETDB DIR PORT PIDFILE TLS_HOSTPORT CA_FILE\n",
                argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    mongoc_init();
    d.base = event_base_new();
    d.ferretdb = argv[8];
    d.dir = argv[9];
    d.port = atoi(argv[10]);
    d.pidfile = argv[11];
    d.ticker = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
    event_add(d.ticker, &tick);
    printf("PLAN %d\n", N_CHECKS);
    fflush(stdout);

    if (wanted("advice"))
        scenario_advice(&d, argv[1]);
    if (wanted("tls"))
        scenario_tls(&d, argv[12], argv[13]);
    if (wanted("auth"))
        scenario_auth(&d, argv[2], argv[3], argv[4]);
    if (wanted("faults"))
        scenario_faults(&d);
    if (wanted("junk"))
        scenario_junk(&d, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));

    ferret_kill(&d);
    advice_report_destroy(d.last);
    event_free(d.ticker);
    event_base_free(d.base);
    mongoc_cleanup();
    if (d.checks != N_CHECKS) {
        printf("# ran %d checks, planned %d\n", d.checks, N_CHECKS);
        return 1;
    }
    return 0;
}
