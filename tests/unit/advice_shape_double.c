/*
 * tests/unit/advice_shape_double.c: TEST DOUBLE, temporary. advice_shape_copy
 * and advice_shape_cleanup as advice/shape.h specifies them, so that the
 * table's test links before advice/shape.c (branch wt-advcore) is merged.
 * Removed once the real shape.c is in.
 */
#include "config.h"

#include "advice/shape.h"

#include <string.h>

void
advice_shape_copy(struct advice_shape *dst, const struct advice_shape *src)
{
    *dst = *src;
    dst->db = bson_strdup(src->db);
    dst->coll = bson_strdup(src->coll);
    for (uint32_t i = 0; i < src->n_paths; i++)
        dst->paths[i].path = bson_strdup(src->paths[i].path);
    for (uint32_t i = 0; i < src->n_sort; i++)
        dst->sort[i].path = bson_strdup(src->sort[i].path);
}

void
advice_shape_cleanup(struct advice_shape *shape)
{
    bson_free(shape->db);
    bson_free(shape->coll);
    for (uint32_t i = 0; i < shape->n_paths; i++)
        bson_free(shape->paths[i].path);
    for (uint32_t i = 0; i < shape->n_sort; i++)
        bson_free(shape->sort[i].path);
    memset(shape, 0, sizeof *shape);
}
