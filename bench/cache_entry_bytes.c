/*
 * bench/cache_entry_bytes.c: what one in-process cache entry costs beyond
 * its reply (issue 9's memory target: at most 96 bytes). Fills a cache with
 * N (default 100,000) entries of one namespace and one principal, distinct
 * filters, each a small reply, through the door the proxy uses
 * (cache_lookup, cache_store, cache_pending_free), and prints three
 * measures per entry, each less the reply's bytes:
 *
 *   accounted  the cache's own accounting (cache_bytes: values as charged,
 *              dependency snapshots, their table), the number the unit test
 *              test_cache_cache asserts on;
 *   malloc     what glibc's allocator handed out meanwhile (mallinfo2
 *              uordblks: chunk headers and rounding included);
 *   rss        the process's resident set growth (VmRSS).
 *
 * Bytes, not time: nothing here depends on what else runs on the machine.
 * Usage: bench/cache_entry_bytes [N]. It owns no cache logic.
 */
#include "config.h"

#include "cache/cache.h"
#include "conf/conf.h"
#include "wire/reply.h"

#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The process's resident set in KiB, or -1. */
static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    fclose(f);
    return kib;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    char *args[] = {"cache_entry_bytes", "--cache-memory", "4294967296"};
    enum conf_action action;
    bson_error_t error;
    struct event_base *base = event_base_new();
    struct conf *conf = conf_new();
    struct cache *cache;
    bson_t *reply_body;
    uint8_t *reply;
    size_t reply_len;
    struct mallinfo2 m0, m1;
    long r0, r1;
    double entries;

    if (n < 1 || !conf_load(conf, 3, args, &action, &error) ||
        !(cache = cache_new(conf, base, &error))) {
        fprintf(stderr, "cache_entry_bytes: %s\n", n < 1 ? "N must be positive" : error.message);
        return 1;
    }
    reply_body = BCON_NEW("cursor", "{", "firstBatch", "[", "{", "v", BCON_INT32(1), "}", "]",
                          "id", BCON_INT64(0), "ns", "d.c", "}", "ok", BCON_DOUBLE(1));
    reply = wire_reply_msg(1, 2, reply_body, &reply_len);
    malloc_trim(0);
    m0 = mallinfo2();
    r0 = rss_kib();
    for (long i = 0; i < n; i++) {
        bson_t *cmd = BCON_NEW("find", "c", "filter", "{", "a", BCON_INT64(i), "}", "$db", "d");
        struct cache_request req = {cmd, NULL, "d", 0, "5:alice@d", 0, 0};
        struct cache_pending *pending;
        struct cache_value *hit;
        struct cache_wait *wait;

        if (cache_lookup(cache, &req, &pending, &hit, NULL, NULL, &wait) == CACHE_MISS)
            cache_store(cache, pending, reply, reply_len, reply_body);
        cache_pending_free(cache, pending);
        cache_value_unref(hit);
        bson_destroy(cmd);
    }
    m1 = mallinfo2();
    r1 = rss_kib();
    entries = (double)cache_counter(cache, CACHE_CTR_entries);
    printf("entries %.0f, reply %zu bytes; per entry beyond its reply:\n", entries, reply_len);
    printf("accounted %.1f\nmalloc %.1f\nrss %.1f\n",
           (double)cache_counter(cache, CACHE_CTR_bytes) / entries - (double)reply_len,
           (double)(m1.uordblks - m0.uordblks) / entries - (double)reply_len,
           (double)(r1 - r0) * 1024.0 / entries - (double)reply_len);
    bson_free(reply);
    bson_destroy(reply_body);
    cache_destroy(cache);
    conf_destroy(conf);
    event_base_free(base);
    return 0;
}
