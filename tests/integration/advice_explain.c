/*
 * tests/integration/advice_explain.c: the advice/ code as the advisor will
 * run it, for tests/integration/test_advice_explain.sh to drive against a
 * real server. Two modes, one JSON document per input line:
 *
 *   advice_explain commands   command bodies in, for each shape that
 *                             advice_shape_extract finds: "<db>\t<source>\t
 *                             <the explain command, canonical JSON>" out
 *                             (built by advice_plan_shape_command from the
 *                             query and statement extract gave)
 *   advice_explain verdict    explain replies in, advice_plan_read's verdict
 *                             name out
 *
 * It owns nothing else; exits 1 on input it cannot parse.
 */
#include "config.h"

#include "advice/plan.h"
#include "advice/shape.h"
#include "wire/cmd.h"
#include "wire/doc.h"

#include <stdio.h>
#include <string.h>

#define MAX_LINE (1 << 20)

static bool
commands(const bson_t *body)
{
    struct advice_shapes out;
    struct wire_cmd cmd;
    bson_error_t error;
    uint32_t len;

    out.n = 0;
    if (!wire_doc_check(bson_get_data(body), body->len, 0, &len, &error) ||
        !wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error)) {
        fprintf(stderr, "advice_explain: %s\n", error.message);
        return false;
    }
    advice_shape_extract(body, &cmd, NULL, 0, &out);
    for (uint32_t i = 0; i < out.n; i++) {
        bson_t query, explain;
        char *j;

        if (!bson_init_static(&query, out.query[i], out.query_len[i]) ||
            !advice_plan_shape_command(&out.shape[i], &query, out.statement[i], &explain)) {
            printf("%s\t%s\t-\n", out.shape[i].db, advice_source_name(out.shape[i].source));
            bson_destroy(&explain);
            continue;
        }
        j = bson_as_canonical_extended_json(&explain, NULL);
        printf("%s\t%s\t%s\n", out.shape[i].db, advice_source_name(out.shape[i].source), j);
        bson_free(j);
        bson_destroy(&explain);
    }
    advice_shapes_cleanup(&out);
    return true;
}

int
main(int argc, char **argv)
{
    static char line[MAX_LINE];
    bool verdict = argc == 2 && strcmp(argv[1], "verdict") == 0;

    if (argc != 2 || (!verdict && strcmp(argv[1], "commands") != 0)) {
        fprintf(stderr, "usage: advice_explain commands|verdict < json-lines\n");
        return 2;
    }
    while (fgets(line, sizeof line, stdin)) {
        bson_error_t error;
        bson_t *doc;

        if (line[0] == '\n')
            continue;
        doc = bson_new_from_json((const uint8_t *)line, -1, &error);
        if (!doc) {
            fprintf(stderr, "advice_explain: bad JSON: %s\n", error.message);
            return 1;
        }
        if (verdict) {
            printf("%s\n", advice_plan_verdict_name(advice_plan_read(doc)));
        } else if (!commands(doc)) {
            bson_destroy(doc);
            return 1;
        }
        bson_destroy(doc);
        fflush(stdout);
    }
    return 0;
}
