/*
 * tests/unit/json.h: test documents written as JSON with single quotes for
 * readability ('a' becomes "a"). A malformed test document is the test's own
 * bug, so it aborts. Header-only; include after tests/unit/tap.h.
 */
#ifndef MONGOCACHE_TESTS_JSON_H
#define MONGOCACHE_TESTS_JSON_H

#include <bson/bson.h>
#include <stdlib.h>

/* A new document from text; free with bson_destroy. */
static inline bson_t *
json(const char *text)
{
    char *copy = bson_strdup(text);
    bson_error_t error;
    bson_t *doc;

    for (char *p = copy; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    doc = bson_new_from_json((const uint8_t *)copy, -1, &error);
    if (!doc) {
        diag("bad test JSON %s: %s", text, error.message);
        abort();
    }
    bson_free(copy);
    return doc;
}

#endif
