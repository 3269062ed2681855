/*
 * tests/unit/test_proxy_request.c: a request's life (proxy/request.c). The
 * transition table is exactly the one drawn in request.c; a transition
 * outside it aborts; leaving a state frees that state's payload (a held
 * message, a drain, a reply), so destroy in any state frees each payload
 * once (the ASan build's leak and double-free checks see to "once"); which
 * states may take the upstream's next reply.
 */
#include "proxy/request.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Blocks allocated through libbson and not yet freed: each payload is freed once. */
static long live;

static void *
count_malloc(size_t n)
{
    live++;
    return malloc(n);
}

static void *
count_calloc(size_t n, size_t size)
{
    live++;
    return calloc(n, size);
}

static void *
count_realloc(void *p, size_t n)
{
    if (!p)
        live++;
    return realloc(p, n);
}

static void
count_free(void *p)
{
    if (p)
        live--;
    free(p);
}

enum {
    P = PROXY_REQUEST_PARSED,
    WC = PROXY_REQUEST_WAITING_CACHE,
    U = PROXY_REQUEST_UPSTREAM,
    DR = PROXY_REQUEST_DRAINING,
    WA = PROXY_REQUEST_WAITING_WRITE_ACK,
    R = PROXY_REQUEST_READY,
    D = PROXY_REQUEST_DONE,
    N = PROXY_REQUEST_STATE_COUNT,
};

/* The transitions drawn in request.c's diagram, and no others. */
static const int expected[][2] = {
    {P, WC}, {P, U},  {P, WA}, {P, R},  {WC, U}, {WC, R}, {U, DR},
    {U, WA}, {U, D},  {DR, R}, {DR, D}, {WA, R}, {R, D},
};

static bool
expected_has(int from, int to)
{
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (expected[i][0] == from && expected[i][1] == to)
            return true;
    return false;
}

static void
test_table(void)
{
    int wrong = 0;

    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++)
            if (proxy_request_transition_allowed((enum proxy_request_state)from,
                                                 (enum proxy_request_state)to) !=
                expected_has(from, to)) {
                diag("%s -> %s", proxy_request_state_name((enum proxy_request_state)from),
                     proxy_request_state_name((enum proxy_request_state)to));
                wrong++;
            }
    is_int(wrong, 0, "the transition table is the one drawn in request.c");
    ok(!proxy_request_transition_allowed(PROXY_REQUEST_DONE, PROXY_REQUEST_PARSED) &&
           !proxy_request_transition_allowed(PROXY_REQUEST_STATE_COUNT, PROXY_REQUEST_PARSED),
       "nothing leaves DONE; an unknown state goes nowhere");
}

static struct proxy_request *
new_req(void)
{
    return proxy_request_new(NULL, NULL, 7, PROXY_ROUTE_FORWARD, false, NULL);
}

/* Runs from -> to in a child: true when the child aborted. */
static bool
aborts(enum proxy_request_state from, enum proxy_request_state to)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        struct proxy_request *req = new_req();

        req->state = from;
        fclose(stderr); /* the assertion's message is expected */
        proxy_request_set_state(req, to);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void
test_illegal_aborts(void)
{
    ok(aborts(PROXY_REQUEST_READY, PROXY_REQUEST_UPSTREAM), "READY -> UPSTREAM aborts");
    ok(aborts(PROXY_REQUEST_DONE, PROXY_REQUEST_READY), "DONE -> READY aborts");
    ok(aborts(PROXY_REQUEST_UPSTREAM, PROXY_REQUEST_WAITING_CACHE),
       "UPSTREAM -> WAITING_CACHE aborts");
    ok(!aborts(PROXY_REQUEST_UPSTREAM, PROXY_REQUEST_DONE), "UPSTREAM -> DONE does not");
}

static void
test_leaving_frees(void)
{
    struct proxy_request *req = new_req();
    uint8_t *held;
    size_t len;

    is_str(proxy_request_state_name(req->state), "parsed", "a new request is PARSED");
    ok(req->batch_size == -1 && req->request_id == 7, "its fields are set");

    /* A wait that ends in a hit: the held message is freed on leaving. */
    proxy_request_set_state(req, PROXY_REQUEST_WAITING_CACHE);
    req->held = bson_malloc(16);
    req->held_len = 16;
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    ok(req->held == NULL && req->held_len == 0, "WAITING_CACHE -> READY frees the held message");
    req->canned = bson_malloc(32);
    proxy_request_set_state(req, PROXY_REQUEST_DONE);
    ok(req->canned == NULL, "READY -> DONE frees an unwritten reply");
    proxy_request_destroy(req, NULL, NULL);

    /* A wait that ends in a miss: the held message is taken, then sent. */
    req = new_req();
    proxy_request_set_state(req, PROXY_REQUEST_WAITING_CACHE);
    req->held = bson_malloc(16);
    req->held_len = 16;
    held = proxy_request_take_held(req, &len);
    ok(held && len == 16 && !req->held, "the held message is taken whole");
    bson_free(held);
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    ok(proxy_request_awaits_upstream(req), "UPSTREAM awaits the upstream's reply");
    {
        struct proxy_request *kept = new_req();

        ok(!proxy_request_awaits_upstream(kept), "PARSED does not await the upstream");
        proxy_request_set_state(kept, PROXY_REQUEST_WAITING_CACHE);
        ok(!proxy_request_awaits_upstream(kept), "WAITING_CACHE (not sent) does not either");
        proxy_request_destroy(kept, NULL, NULL);
    }

    /* A drain: its documents are freed on leaving. */
    proxy_request_set_state(req, PROXY_REQUEST_DRAINING);
    req->drain = bson_malloc0(sizeof *req->drain);
    req->drain->ns = bson_strdup("db.coll");
    req->drain->docs.data = bson_malloc(64);
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    ok(req->drain == NULL, "DRAINING -> READY frees the drain");
    ok(!proxy_request_awaits_upstream(req), "READY does not await the upstream");
    proxy_request_destroy(req, NULL, NULL);

    /* A write's ack held back: the reply survives the move to READY. */
    req = new_req();
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    req->canned = bson_malloc(8);
    proxy_request_set_state(req, PROXY_REQUEST_WAITING_WRITE_ACK);
    ok(!proxy_request_awaits_upstream(req), "WAITING_WRITE_ACK does not await the upstream");
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    ok(req->canned != NULL, "WAITING_WRITE_ACK -> READY keeps the held-back reply");
    proxy_request_destroy(req, NULL, NULL);
}

/* Destroy in every state with that state's payload: each freed, once. */
static void
test_destroy_any_state(void)
{
    struct proxy_request *req;
    long before = live;

    req = new_req();
    req->lsid = bson_malloc(5);
    req->index_db = bson_strdup("db");
    proxy_request_destroy(req, NULL, NULL); /* PARSED */

    req = new_req();
    proxy_request_set_state(req, PROXY_REQUEST_WAITING_CACHE);
    req->held = bson_malloc(16);
    proxy_request_destroy(req, NULL, NULL);

    req = new_req();
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    proxy_request_set_state(req, PROXY_REQUEST_DRAINING);
    req->drain = bson_malloc0(sizeof *req->drain);
    req->drain->ns = bson_strdup("db.coll");
    proxy_request_destroy(req, NULL, NULL);

    req = new_req();
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    req->canned = bson_malloc(8);
    proxy_request_set_state(req, PROXY_REQUEST_WAITING_WRITE_ACK);
    proxy_request_destroy(req, NULL, NULL);

    req = new_req();
    req->canned = bson_malloc(8);
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    proxy_request_destroy(req, NULL, NULL);
    proxy_request_destroy(NULL, NULL, NULL);
    is_int(live - before, 0, "destroy in every state frees every payload (no leak)");
}

/*
 * A destroyed request kept in the spares is a later one's memory, cleared:
 * nothing of the old request shows (a reply, shapes, the slow log's name,
 * the state), and every payload it held was freed. The list keeps at most
 * PROXY_REQUEST_SPARES_MAX (requests in flight at once on many connections
 * reuse theirs; a burst beyond goes back to the allocator). Under ASan
 * nothing is kept (a late use must be seen), and the same holds of a fresh
 * one.
 */
static void
test_spares(void)
{
    struct proxy_request_spares spares = {NULL, 0};
    struct proxy_request *req, *again, *many[PROXY_REQUEST_SPARES_MAX + 8];
    long before = live;
    bool asan = false;
    size_t i, n = sizeof many / sizeof many[0];

#if defined(__SANITIZE_ADDRESS__)
    asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    asan = true;
#endif
#endif
    req = proxy_request_new(NULL, NULL, 7, PROXY_ROUTE_HELLO, true, &spares);
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    proxy_request_set_reply(req, bson_malloc(16), 16);
    req->n_shapes = 3;
    req->batch_size = 10;
    req->index_db = bson_strdup("db");
    strcpy(req->log_cmd, "find");
    proxy_request_set_state(req, PROXY_REQUEST_DONE);
    proxy_request_destroy(req, NULL, &spares);
    ok(asan ? spares.head == NULL && spares.n == 0 : spares.head == req && spares.n == 1,
       "a destroyed request is kept in the spares%s", asan ? " (not under ASan)" : "");
    is_int(live - before, asan ? 0 : 1, "every payload it held is freed; only its memory is kept");
    again = proxy_request_new(NULL, NULL, 9, PROXY_ROUTE_FORWARD, false, &spares);
    ok(spares.head == NULL && spares.n == 0 && (asan || again == req),
       "the next request takes it");
    ok(again->state == PROXY_REQUEST_PARSED && again->request_id == 9 &&
           again->route == PROXY_ROUTE_FORWARD && !again->legacy && again->canned == NULL &&
           again->n_shapes == 0 && again->batch_size == -1 && again->index_db == NULL &&
           again->log_cmd[0] == '\0' && again->client == NULL,
       "and nothing of the old request shows in it");
    proxy_request_destroy(again, NULL, &spares);

    /* A burst: more requests at once than the list keeps. */
    for (i = 0; i < n; i++)
        many[i] = proxy_request_new(NULL, NULL, (int32_t)i, PROXY_ROUTE_FORWARD, false, &spares);
    ok(spares.head == NULL && spares.n == 0, "a burst takes every spare");
    for (i = 0; i < n; i++)
        proxy_request_destroy(many[i], NULL, &spares);
    is_int(spares.n, asan ? 0 : PROXY_REQUEST_SPARES_MAX, "the spares keep at most %d",
           PROXY_REQUEST_SPARES_MAX);
    is_int(live - before, asan ? 0 : PROXY_REQUEST_SPARES_MAX,
           "the burst's others went back to the allocator");
    for (i = 0; i < n; i++) {
        many[i] = proxy_request_new(NULL, NULL, 1, PROXY_ROUTE_FORWARD, false, &spares);
        proxy_request_set_state(many[i], PROXY_REQUEST_UPSTREAM);
    }
    is_int(live - before, (long)n, "the next burst reuses them and allocates the rest");
    for (i = 0; i < n; i++)
        proxy_request_destroy(many[i], NULL, &spares);
    proxy_request_free_spares(&spares);
    ok(spares.head == NULL && spares.n == 0 && live == before,
       "the spares are freed with their owner");
}

int
main(void)
{
    bson_mem_vtable_t vt = {count_malloc, count_calloc, count_realloc, count_free, NULL, {NULL}};
    long before;

    bson_mem_set_vtable(&vt);
    test_table();
    test_illegal_aborts();
    before = live;
    test_leaving_frees();
    is_int(live - before, 0, "every request and payload of the lives above is freed");
    test_destroy_any_state();
    test_spares();
    return done_testing();
}
