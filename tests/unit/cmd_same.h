/*
 * tests/unit/cmd_same.h: whether two parses of one command body agree
 * (wire_cmd_parse's walk and wire_cmd_parse_top's records), shared by
 * test_wire_cmd.c and the client_msg fuzz target.
 */
#ifndef MONGOCACHE_TESTS_UNIT_CMD_SAME_H
#define MONGOCACHE_TESTS_UNIT_CMD_SAME_H

#include "wire/cmd.h"

#include <stdbool.h>
#include <stdint.h>

/* Whether two parses of one body agree on every field and every element record. */
static inline bool
cmd_same(const struct wire_cmd *a, const struct wire_cmd *b)
{
    if (a->name != b->name || a->name_id != b->name_id || a->db != b->db ||
        a->db_len != b->db_len || a->coll != b->coll || a->coll_len != b->coll_len ||
        a->has_txn_number != b->has_txn_number || a->has_autocommit != b->has_autocommit ||
        a->has_duplicate_top_level_key != b->has_duplicate_top_level_key ||
        a->body != b->body || a->body_len != b->body_len || a->elems_all != b->elems_all ||
        a->n_elems != b->n_elems)
        return false;
    for (uint32_t i = 0; i < a->n_elems; i++) {
        if (a->elem_off[i] != b->elem_off[i] || a->elem_key_len[i] != b->elem_key_len[i] ||
            a->elem_id[i] != b->elem_id[i])
            return false;
    }
    return true;
}

#endif
