/*
 * advice/shape.h: a query's shape, for index advice. A shape is what an
 * index can serve of a query, with every value removed: the namespace, each
 * filter path with its operator class, the sort keys with their directions,
 * and whether a collation or a hint was given. Two queries that differ only
 * in their values have one shape (and one hash).
 *
 * Where shapes come from (advice_shape_extract): find; aggregate (its
 * leading $match and/or $sort, and each $lookup's foreignField, an equality
 * on the foreign collection); count; distinct (its query); the q of each
 * update and delete statement (in the body or in the OP_MSG document
 * sequence); findAndModify. $and merges into one shape; each $or (and
 * $nor is unindexable) branch becomes a shape of its own, merged with the
 * paths outside the $or; $elemMatch gives dotted paths.
 *
 * Operator classes: equality (a value, $eq, an $elemMatch equality, a
 * document or array compared whole); $in; range ($gt, $gte, $lt, $lte, a
 * $regex or /re/ anchored with ^ and a literal prefix); unindexable ($ne,
 * $nin, $not, $exists:false, $type, $mod, $size, $all, an unanchored
 * $regex, $where, $expr, $text, $jsonSchema, geo operators). A path given
 * several operators keeps the most useful class (equality > $in > range >
 * unindexable). Paths are kept in the order they first appear.
 *
 * Pure functions: no I/O, no state. Everything in a shape is owned by it
 * (see strings below for how).
 */
#ifndef MONGOCACHE_ADVICE_SHAPE_H
#define MONGOCACHE_ADVICE_SHAPE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wire_cmd;

enum advice_op {
    ADVICE_OP_EQ,          /* equality */
    ADVICE_OP_IN,          /* $in */
    ADVICE_OP_RANGE,       /* $gt/$gte/$lt/$lte, anchored $regex prefix */
    ADVICE_OP_UNINDEXABLE, /* see the file comment */
};

/* Most paths and sort keys one shape keeps; more make the shape "truncated". */
#define ADVICE_SHAPE_MAX_PATHS 32
#define ADVICE_SHAPE_MAX_SORT 32
/* Longest path kept (bytes); longer paths make the shape "truncated". */
#define ADVICE_SHAPE_MAX_PATH_LEN 256

/*
 * The operators given for a path, one bit each (a path may have several:
 * {year: {$gte: 1, $lt: 2}}). They are part of the shape, as in mongod's own
 * query shapes ($gt and $gte are two shapes that one index serves), and
 * advice_shape_display shows them. A path whose name starts with '$' is a
 * top-level operator ($where, $expr, $text, $nor, $jsonSchema, ...).
 */
#define ADVICE_OPS_EQ (1u << 0) /* a value, $eq, a document or array compared whole */
#define ADVICE_OPS_IN (1u << 1)
#define ADVICE_OPS_GT (1u << 2)
#define ADVICE_OPS_GTE (1u << 3)
#define ADVICE_OPS_LT (1u << 4)
#define ADVICE_OPS_LTE (1u << 5)
#define ADVICE_OPS_REGEX_PREFIX (1u << 6) /* /^abc/: a range */
#define ADVICE_OPS_REGEX (1u << 7)        /* unanchored, case-insensitive or multi-line */
#define ADVICE_OPS_NE (1u << 8)
#define ADVICE_OPS_NIN (1u << 9)
#define ADVICE_OPS_NOT (1u << 10)
#define ADVICE_OPS_EXISTS (1u << 11)
#define ADVICE_OPS_TYPE (1u << 12)
#define ADVICE_OPS_SIZE (1u << 13)
#define ADVICE_OPS_ALL (1u << 14)
#define ADVICE_OPS_MOD (1u << 15)
#define ADVICE_OPS_BITS (1u << 16)  /* $bitsAllSet and the three others */
#define ADVICE_OPS_GEO (1u << 17)   /* $near, $nearSphere, $geoWithin, $geoIntersects, ... */
#define ADVICE_OPS_OTHER (1u << 18) /* a top-level operator, or one unknown to mongod */

struct advice_path {
    char *path; /* dotted; owned */
    enum advice_op op;
    uint32_t ops; /* ADVICE_OPS_* bits; 0 in a hand-built shape: displayed by op */
};

struct advice_sort_key {
    char *path; /* dotted; owned */
    int dir;    /* 1 or -1; 0 for $meta or another non-numeric value (then sort_unusable) */
};

/* What command a shape came from (for the display and for explain). */
enum advice_source {
    ADVICE_SRC_FIND,
    ADVICE_SRC_AGGREGATE,
    ADVICE_SRC_COUNT,
    ADVICE_SRC_DISTINCT,
    ADVICE_SRC_UPDATE,
    ADVICE_SRC_DELETE,
    ADVICE_SRC_FIND_AND_MODIFY,
    ADVICE_SRC_LOOKUP, /* a $lookup's foreignField on the foreign collection */
};

struct advice_shape {
    char *db;   /* owned */
    char *coll; /* owned */
    enum advice_source source;
    struct advice_path paths[ADVICE_SHAPE_MAX_PATHS];
    uint32_t n_paths;
    struct advice_sort_key sort[ADVICE_SHAPE_MAX_SORT];
    uint32_t n_sort;
    bool sort_unusable; /* a sort no index can serve ($meta, a non-numeric direction) */
    bool collation;     /* a collation was given */
    bool hint;          /* a hint was given */
    bool truncated;     /* more paths or sort keys than kept, or a path too long */
    void *strings;      /* the one block holding db, coll and every path (advice_shape_extract
                         * and advice_shape_copy make shapes so), or NULL when each string
                         * is its own bson_malloc'd block (a shape built by hand: start from
                         * a zeroed struct); advice_shape_cleanup frees either way */
    uint64_t hash;      /* XXH3-64 of the canonical form (advice_shape_hash): equal shapes,
                         * equal hashes; the order of the filter paths does not matter,
                         * the order of the sort keys does */
};

/*
 * The shapes of one command (owned; advice_shapes_cleanup). For each shape,
 * also what to keep for explain (advice_table_record's query and statement),
 * borrowed from the command (valid while its bytes are):
 *   - query: the command body; for an update or delete statement, the
 *     statement document itself ({q, u, ...}), wherever it was (in the
 *     body's array or in the document sequence), so that a bulk write
 *     keeps one statement and not the whole body;
 *   - statement: the index of that statement in updates/deletes; for a
 *     $lookup shape, the index of the $lookup stage in the pipeline; else 0.
 * advice_plan_shape_command (advice/plan.h) builds the explain from them.
 */
#define ADVICE_MAX_SHAPES_PER_COMMAND 16

/*
 * Whether the shape of this hash is kept already (by the caller's table):
 * advice_shape_extract_known then gives that shape its hash alone.
 */
typedef bool (*advice_shape_known_fn)(void *arg, uint64_t hash);

struct advice_shapes {
    struct advice_shape shape[ADVICE_MAX_SHAPES_PER_COMMAND];
    const uint8_t *query[ADVICE_MAX_SHAPES_PER_COMMAND];
    uint32_t query_len[ADVICE_MAX_SHAPES_PER_COMMAND];
    uint32_t statement[ADVICE_MAX_SHAPES_PER_COMMAND];
    uint32_t n;
    advice_shape_known_fn known; /* set by the extract functions */
    void *known_arg;
};

/* An OP_MSG kind-1 section, as the proxy has it (update and delete statements). */
struct advice_sequence {
    const char *id;
    const uint8_t *docs;
    uint32_t len;
};

/*
 * Derives every shape command body has (checked; cmd is its wire_cmd_parse
 * result; seqs its document sequences) into out (emptied first: out->n is
 * set to 0, whatever it held is not freed). Commands other than those in
 * the file comment, a collection argument that is not a string, a body
 * without $db, and an empty filter with no sort give no shape. Equal shapes
 * of one command (the statements of a bulk update, $or branches) are kept
 * once. Beyond ADVICE_MAX_SHAPES_PER_COMMAND shapes the rest are dropped.
 * The work is bounded whatever the body (elements visited, nesting, path
 * lengths); past a bound the shape is marked truncated. Allocates only the
 * shapes' own strings. Returns out->n.
 */
uint32_t advice_shape_extract(const bson_t *body, const struct wire_cmd *cmd,
                              const struct advice_sequence *seqs, uint32_t n_seqs,
                              struct advice_shapes *out);

/*
 * As advice_shape_extract, but a shape whose hash known(arg, hash) says is
 * kept already is not copied out: it gets its hash (and its query and
 * statement) only, with db NULL and nothing allocated. The proxy's table
 * knows nearly every shape it is shown, so most commands cost a walk and a
 * hash, no allocation.
 */
uint32_t advice_shape_extract_known(const bson_t *body, const struct wire_cmd *cmd,
                                    const struct advice_sequence *seqs, uint32_t n_seqs,
                                    advice_shape_known_fn known, void *arg,
                                    struct advice_shapes *out);

/* Frees what every shape of shapes owns; shapes is empty afterwards. */
void advice_shapes_cleanup(struct advice_shapes *shapes);

/*
 * The hash of shape's canonical form: namespace, source, each filter path
 * with its class and operators (in any order), the sort keys in order, and
 * the flags. What advice_shape_extract stores in shape->hash; for shapes
 * built by hand.
 */
uint64_t advice_shape_hash(const struct advice_shape *shape);

/* Deep copy of src into dst (dst's old contents are not freed). */
void advice_shape_copy(struct advice_shape *dst, const struct advice_shape *src);
void advice_shape_cleanup(struct advice_shape *shape);

/*
 * The shape as people read it, values shown as "?": for example
 *   find app.books {author: ?, year: {$gte: ?}} sort {year: -1}
 *   update app.books {isbn: {$in: ?}}
 *   find app.books {name: /^?/, "tags.k": ?} sort {score: {$meta: ?}} collation ? hint ?
 * Paths that are not plain identifiers are quoted; control bytes, quotes,
 * backslashes and bytes that are not UTF-8 are escaped (\x01), so the text
 * is valid UTF-8 without control bytes (a JSON writer still escapes its
 * quotes and backslashes). A truncated shape ends with " (truncated)".
 * A string freed with bson_free.
 */
char *advice_shape_display(const struct advice_shape *shape);

/*
 * For texts built from paths and names (the display above, the mongosh and
 * Mongoose texts of advice/recommend.c): whether s can stand unquoted as a
 * key ([A-Za-z_$][A-Za-z0-9_$]*), and s appended with '"' and '\\'
 * backslashed and control bytes, DEL and (when s is not UTF-8) bytes over
 * 0x7f written \xNN, which reads the same in JavaScript and leaves no
 * control byte in a log or JSON value.
 */
bool advice_shape_is_identifier(const char *s);
void advice_shape_append_escaped(bson_string_t *out, const char *s);

const char *advice_op_name(enum advice_op op);
const char *advice_source_name(enum advice_source source);

#endif
