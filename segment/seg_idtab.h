/*
 * seg_idtab.h -- an open-addressing table of ids, internal to segment/
 * (the writer's paths, fields, keyword values and shared postings; the
 * column layout's keys and shapes).
 *
 * Ids are 0..count-1 and name entries the caller keeps (with their key
 * bytes); a slot holds id + 1, 0 is empty.  The caller compares keys (eq)
 * and gives an entry's hash back when the table doubles (hash).  Use:
 * probe; if *slot is 0, add the entry as id count, set *slot = ++count,
 * then grow.
 */
#ifndef LOGDEX_SEG_IDTAB_H
#define LOGDEX_SEG_IDTAB_H

#include "seg.h"

typedef struct idtab {
    uint32_t *slot;
    uint32_t mask;
} idtab;

typedef int (*idtab_eq_fn)(const void *ctx, uint32_t id, const void *key, size_t n);
typedef uint64_t (*idtab_hash_fn)(const void *ctx, uint32_t id);

/* The slot of key (hash h): *slot is its id + 1, or 0 where it goes. */
static inline uint32_t *idtab_probe(const idtab *t, uint64_t h, idtab_eq_fn eq, const void *ctx, const void *key,
                                    size_t n)
{
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask)
        if (!t->slot[i] || eq(ctx, t->slot[i] - 1, key, n))
            return &t->slot[i];
}

/* Before the first probe: an empty table of size slots (a power of 2). */
static inline int idtab_init(idtab *t, uint32_t size)
{
    t->mask = size - 1;
    return (t->slot = seg_calloc(size, sizeof *t->slot)) ? 0 : -1;
}

/* Empties the table for reuse (its size kept). */
static inline void idtab_clear(idtab *t)
{
    if (t->slot)
        memset(t->slot, 0, ((size_t)t->mask + 1) * sizeof *t->slot);
}

/* After an insert made count ids: doubles the table when over half full. */
static inline int idtab_grow(idtab *t, uint32_t count, idtab_hash_fn hash, const void *ctx)
{
    if (count * 2 <= t->mask)
        return 0;
    uint32_t nmask = t->mask * 2 + 1;
    uint32_t *ns = seg_calloc((size_t)nmask + 1, sizeof *ns);
    if (!ns)
        return -1;
    for (uint32_t id = 0; id < count; id++) {
        uint32_t j = (uint32_t)hash(ctx, id) & nmask;
        while (ns[j])
            j = (j + 1) & nmask;
        ns[j] = id + 1;
    }
    seg_free(t->slot);
    t->slot = ns;
    t->mask = nmask;
    return 0;
}

#endif
