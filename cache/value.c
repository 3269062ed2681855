/*
 * cache/value.c: owns the stored value (see value.h): its layout in one
 * allocation, its reference count, and the drained cursor's layout inside
 * the payload:
 *
 *   n_docs (u32) | n_docs + 1 element offsets (u32, unaligned: read with
 *   memcpy) | the documents as array elements (type 0x03, key "i", doc) |
 *   the namespace, NUL-terminated
 *
 * It does not decide whether a value may be stored or served (cache.c),
 * nor what its dependencies are (deps.c: it only holds the snapshot).
 */
#include "config.h"

#include "cache/value.h"

#include "cache/deps.h"
#include "cache/lru.h"
#include "wire/frame.h"

#include <bson/bson.h>
#include <stddef.h>
#include <string.h>

struct cache_value {
    struct cache_lru_node node; /* the in-process tier's: links, key, expiry */
    uint32_t refs : 31;
    uint32_t docs : 1;          /* a drained cursor's documents, not a reply message */
    uint32_t len;               /* payload bytes */
    uint64_t digest;            /* the key material's second digest (key.h) */
    struct cache_deps *deps;    /* one reference; also the storing miss's tag */
    uint8_t payload[];
};

_Static_assert(offsetof(struct cache_value, node) == 0, "cache_value_of_node casts");

static struct cache_value *
alloc(size_t len, uint64_t digest, struct cache_deps *deps)
{
    struct cache_value *v = bson_malloc(sizeof *v + len);

    memset(v, 0, sizeof *v);
    v->refs = 1;
    v->len = (uint32_t)len;
    v->digest = digest;
    v->deps = deps;
    return v;
}

struct cache_value *
cache_value_new(const uint8_t *reply, size_t len, uint64_t digest, struct cache_deps *deps)
{
    struct cache_value *v;

    BSON_ASSERT(len <= UINT32_MAX); /* a message is at most 48 MB */
    v = alloc(len, digest, deps);
    memcpy(v->payload, reply, len);
    return v;
}

static uint32_t
read_u32(const uint8_t *p)
{
    uint32_t x;

    memcpy(&x, p, sizeof x);
    return x;
}

/* The element offsets, the elements, and where element i starts (i == n: where they end). */
static const uint8_t *
offsets_of(const struct cache_value *v)
{
    return v->payload + sizeof(uint32_t);
}

static uint32_t
element_offset(const struct cache_value *v, uint32_t i)
{
    return read_u32(offsets_of(v) + (size_t)i * sizeof(uint32_t));
}

static const uint8_t *
elements_of(const struct cache_value *v)
{
    return offsets_of(v) + ((size_t)cache_value_n_docs(v) + 1) * sizeof(uint32_t);
}

struct cache_value *
cache_value_new_docs(const uint8_t *docs, size_t docs_len, uint32_t n_docs, const char *ns,
                     uint64_t digest, struct cache_deps *deps)
{
    size_t ns_len = strlen(ns) + 1;
    size_t head_len = ((size_t)n_docs + 2) * sizeof(uint32_t);
    size_t elems_len = docs_len;
    struct cache_value *v;
    uint8_t *offsets, *data;
    size_t at = 0, out = 0;
    char key[16];
    const char *key_str;

    /* Each document becomes the array element it is in a batch from 0:
     * type 0x03, its index as the key, the document. */
    for (uint32_t i = 0; i < n_docs; i++)
        elems_len += 2 + bson_uint32_to_string(i, &key_str, key, sizeof key);
    if (elems_len > UINT32_MAX || head_len + elems_len + ns_len > UINT32_MAX) {
        cache_deps_unref(deps);
        return NULL;
    }
    v = alloc(head_len + elems_len + ns_len, digest, deps);
    v->docs = 1;
    memcpy(v->payload, &n_docs, sizeof n_docs);
    offsets = v->payload + sizeof n_docs;
    data = v->payload + head_len;
    for (uint32_t i = 0; i < n_docs; i++) {
        uint32_t len, offset = (uint32_t)out;
        size_t key_len = bson_uint32_to_string(i, &key_str, key, sizeof key);

        /* The documents were checked as part of their replies; a wrong count is our bug. */
        if (docs_len - at < 5 || (len = (uint32_t)wire_frame_read_i32(docs + at)) < 5 ||
            len > docs_len - at) {
            cache_value_unref(v);
            return NULL;
        }
        memcpy(offsets + (size_t)i * sizeof offset, &offset, sizeof offset);
        data[out++] = BSON_TYPE_DOCUMENT;
        memcpy(data + out, key_str, key_len + 1);
        out += key_len + 1;
        memcpy(data + out, docs + at, len);
        out += len;
        at += len;
    }
    if (at != docs_len) {
        cache_value_unref(v);
        return NULL;
    }
    {
        uint32_t end = (uint32_t)out;

        memcpy(offsets + (size_t)n_docs * sizeof end, &end, sizeof end);
    }
    memcpy(data + elems_len, ns, ns_len);
    return v;
}

const uint8_t *
cache_value_data(const struct cache_value *v, size_t *len)
{
    *len = v->len;
    return v->payload;
}

uint64_t
cache_value_tag(const struct cache_value *v)
{
    return cache_deps_tag(v->deps);
}

void
cache_value_ref(struct cache_value *v)
{
    v->refs++;
}

void
cache_value_unref(struct cache_value *v)
{
    if (!v || --v->refs > 0)
        return;
    cache_deps_unref(v->deps);
    bson_free(v);
}

bool
cache_value_is_docs(const struct cache_value *v)
{
    return v->docs;
}

uint32_t
cache_value_n_docs(const struct cache_value *v)
{
    return v->docs ? read_u32(v->payload) : 0;
}

const uint8_t *
cache_value_doc(const struct cache_value *v, uint32_t i, uint32_t *len)
{
    const uint8_t *elem = elements_of(v) + element_offset(v, i);
    const uint8_t *doc = elem + 1 + strlen((const char *)elem + 1) + 1;

    *len = (uint32_t)wire_frame_read_i32(doc);
    return doc;
}

const uint8_t *
cache_value_elements(const struct cache_value *v, uint32_t k, size_t *len)
{
    *len = element_offset(v, k) - element_offset(v, 0);
    return elements_of(v);
}

const char *
cache_value_ns(const struct cache_value *v)
{
    return (const char *)elements_of(v) + element_offset(v, cache_value_n_docs(v));
}

size_t
cache_value_payload_len(const struct cache_value *v)
{
    return v->len;
}

uint64_t
cache_value_digest(const struct cache_value *v)
{
    return v->digest;
}

const struct cache_deps *
cache_value_deps(const struct cache_value *v)
{
    return v->deps;
}

struct cache_lru_node *
cache_value_node(struct cache_value *v)
{
    return &v->node;
}

struct cache_value *
cache_value_of_node(const struct cache_lru_node *node)
{
    /* node is the first member */
    return (struct cache_value *)(uintptr_t)node;
}

void
cache_value_lru_release(struct cache_lru_node *node)
{
    cache_value_unref(cache_value_of_node(node));
}

size_t
cache_value_overhead(void)
{
    return sizeof(struct cache_value) + cache_lru_overhead();
}

size_t
cache_value_lru_charge(const struct cache_lru_node *node)
{
    return cache_value_overhead() + cache_value_of_node(node)->len;
}
