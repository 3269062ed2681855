/*
 * advice/filter.h: a query filter ({author: "x", year: {$gte: 1990}, $or:
 * [...]}) read into the paths an index could serve, with every value left
 * out, for advice/shape.c. The filter becomes a disjunction of
 * conjunctions (each $or branch its own), each conjunction the paths of one
 * future shape with their operator classes and operators (advice/shape.h).
 *
 * The caller embeds the scratch area (struct advice_filter, about 29 KB:
 * on the stack) so that reading allocates nothing: paths point into the
 * filter's bytes, or into the area's arena for the dotted paths $elemMatch
 * composes, and are valid while both are. Nothing is freed.
 */
#ifndef MONGOCACHE_ADVICE_FILTER_H
#define MONGOCACHE_ADVICE_FILTER_H

#include "wire/reader.h"
#include "advice/shape.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Conjunctions in flight while $or branches are expanded: each nesting level
 * of $or holds a copy of its base while its branch is read, so this is more
 * than the 32 levels of nesting read.
 */
#define ADVICE_FILTER_MAX_CONJ 48
/* Bytes for the dotted paths $elemMatch composes, per reset. */
#define ADVICE_FILTER_ARENA 4096

/* One path: not owned (in the filter, or in the arena). 16 bytes. */
struct advice_filter_path {
    const char *p;
    uint32_t ops; /* ADVICE_OPS_* */
    uint16_t len; /* <= ADVICE_SHAPE_MAX_PATH_LEN */
    uint8_t op;   /* enum advice_op */
};

/* One conjunction: the paths of one future shape. */
struct advice_filter_conj {
    uint32_t n;
    bool truncated; /* a path or a branch of it was left out */
    struct advice_filter_path paths[ADVICE_SHAPE_MAX_PATHS];
};

/*
 * The scratch area. After advice_filter_walk, conj[0..n_conj) are the
 * conjunctions (an empty filter leaves one empty conjunction). budget
 * counts the elements still allowed to be visited, across resets: when it
 * runs out, reading stops and truncated is set.
 */
struct advice_filter {
    struct advice_filter_conj conj[ADVICE_FILTER_MAX_CONJ];
    uint32_t n_conj;
    char arena[ADVICE_FILTER_ARENA];
    uint32_t arena_used;
    uint32_t budget;
    bool truncated; /* the budget ran out during this query */
};

/* Sets the budget (elements visited in all) and resets. */
void advice_filter_init(struct advice_filter *f, uint32_t budget);

/* One empty conjunction, the arena emptied, truncated cleared; the budget goes on. */
void advice_filter_reset(struct advice_filter *f);

/*
 * Reads the filter document at doc (a reader on a document element)
 * into every conjunction: plain paths are added to each, $and members read
 * in turn, $or multiplies the conjunctions by its branches, $elemMatch
 * gives dotted paths. At most 32 levels of $and/$or/$elemMatch are read
 * (the recursion's only source), ADVICE_SHAPE_MAX_PATHS paths per
 * conjunction, paths of at most ADVICE_SHAPE_MAX_PATH_LEN bytes; past a
 * bound the conjunction is marked truncated, and $or branches that do not
 * fit are dropped (the others marked truncated).
 */
void advice_filter_walk(struct advice_filter *f, const struct wire_reader *doc);

/* Adds one path (not copied: it must outlive f's use) to every conjunction. */
void advice_filter_add(struct advice_filter *f, const char *path, uint32_t len, enum advice_op op,
                       uint32_t ops);

/* One more element visited: false (and truncated set) when the budget is spent. */
static inline bool
advice_filter_spend(struct advice_filter *f)
{
    if (f->budget == 0) {
        f->truncated = true;
        return false;
    }
    f->budget--;
    return true;
}

/*
 * Whether an index could have path as a key: not empty, no empty component
 * ("a..b", "a."), no component starting with '$' but the DBRef fields
 * ($id, $ref, $db); mongod refuses the others in a key pattern.
 */
bool advice_filter_indexable_path(const char *path, uint32_t len);

#endif
