/*
 * seg_write.c -- builds one segment from a set of events and writes it.
 *
 * The builder keeps the events' raw bytes, each with a record of its
 * values when the caller had already scanned it (seg_builder_add_parsed,
 * _add_flat, _add_from); seg_builder_write() sorts the events (time
 * descending, then _id ascending), takes each one's values from its record
 * (or scans the JSON when it has none), tokenizes its string values into
 * an in-memory term table, collects numeric columns and field statistics,
 * then writes the sections described in seg_format.h.  Records change
 * nothing in the output: a segment is the same bytes either way.
 *
 * Memory: the raw events and their records, plus the term table (64-byte
 * entries, key bytes, one growing posting stream per term), plus the
 * numeric and keyword columns.  One builder is used by one thread at a
 * time.
 */
#define _GNU_SOURCE
#include "seg.h"
#include "seg_format.h"
#include "seg_idtab.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>
/* The term table hashes every token: XXH3 inlined here (the library call
 * and its length dispatch were ~6% of ingest).  Same function, same values
 * as seg_hash64. */
#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct ev {
    const char *json;      /* in a chunk of the builder */
    const char *id;        /* follows the JSON bytes */
    uint32_t len;
    uint32_t id_len;
    int64_t time;
    uint8_t explicit_id;
    uint8_t parsed;        /* its values follow the id, pre-parsed */
    uint32_t flat_len;     /* their bytes */
    const uint32_t *pmap;  /* NULL: the values' path ids are the builder's; else
                              they are a foreign table's, and pmap[0] is how many
                              it had, pmap[1 + id] the builder's id (in a chunk) */
} ev;

/* Event bytes live in chunks that never move (a growing contiguous arena
 * copied itself at every doubling: ~8% of ingest time). */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    size_t mapped;         /* 0: from seg_malloc; else the mmap()ed length */
    char data[];
} chunk;

/* A builder's first chunks come from malloc and grow from CHUNK_MIN (a
 * bucket holding a few late events keeps little); once it holds
 * CHUNK_SIZE, chunks are HUGE_CHUNK-aligned mappings that ask for
 * transparent huge pages: each 4 KiB page of a fresh chunk was a page
 * fault, ~6% of ingest CPU on a virtual machine (first touch of every
 * buffer), one fault per 2 MiB instead. */
#define CHUNK_MIN ((size_t)64 << 10)
#define CHUNK_SIZE ((size_t)1 << 20)
#define HUGE_CHUNK ((size_t)2 << 20)

/* Pre-parsed events (seg_builder_add_parsed, _add_flat): the caller has
 * already scanned the event, so its flattened values are kept after the
 * id, and the write does not scan the JSON again.  A record, per value:
 *   varint path id (an index into a seg_flat's path table), u8 type, then
 *   SEG_JV_STRING  varint x: x even: the string is the JSON bytes at offset
 *                  x/2, varint length follows; x odd: x/2 decoded bytes
 *                  follow (the string had escapes)
 *   SEG_JV_INT     varint zigzag(value)
 *   SEG_JV_REAL    8 bytes, the double's bits, little-endian
 *   TRUE, FALSE    nothing.
 * Memory only: never written to a file. */
typedef struct ppath {
    uint32_t off, len;     /* in paths */
} ppath;

/* A path table and its encoder state.  A builder keeps its own (records
 * in its chunks use its ids); one made by seg_flat_new encodes records
 * off the builder (outside a writer's lock), re-numbered when added. */
struct seg_flat {
    seg_buf paths;
    ppath *pp;
    uint32_t npp, cappp;
    idtab ptab;
    uint32_t *prev;         /* path ids of the previous event's values */
    size_t nprev, capprev;
    uint64_t serial;        /* unique: identifies the table in id maps */
};

struct seg_builder {
    chunk *chunks;          /* newest first */
    size_t bytes;           /* bytes held in chunks */
    size_t ev_bytes;        /* of which events and ids (no pre-parsed values) */
    ev *ev;
    uint32_t n, cap;
    const int *cancel;      /* when *cancel turns non-zero, a write stops */
    int compact;            /* files: the STORE compressed for size (SEG_FLAG_COMPACT) */
    /* pre-parsed events: the paths, a scratch record, and the map of
     * path ids from the foreign table last added from (map_serial; in a
     * chunk, as ev.pmap) */
    seg_flat enc;
    seg_buf flat;
    const uint32_t *map;
    uint64_t map_serial;
};

static void flat_clear(seg_flat *f);

void seg_builder_set_cancel(seg_builder *b, const int *flag) { b->cancel = flag; }
void seg_builder_set_compact(seg_builder *b, int on) { b->compact = on != 0; }

seg_builder *seg_builder_new(void) { return seg_calloc(1, sizeof(seg_builder)); }

void seg_builder_free(seg_builder *b)
{
    if (!b)
        return;
    for (chunk *c = b->chunks, *next; c; c = next) {
        next = c->next;
        if (c->mapped)
            munmap(c, c->mapped);
        else
            seg_free(c);
    }
    seg_free(b->ev);
    flat_clear(&b->enc);
    seg_buf_free(&b->flat);
    seg_free(b);
}

/* A chunk of HUGE_CHUNK-aligned memory for at least n bytes, or NULL. */
static chunk *chunk_map(size_t n)
{
    size_t len = (sizeof(chunk) + n + HUGE_CHUNK - 1) & ~(HUGE_CHUNK - 1);
    uint8_t *p = mmap(NULL, len + HUGE_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* keep the aligned part */
    size_t head = (HUGE_CHUNK - ((uintptr_t)p & (HUGE_CHUNK - 1))) & (HUGE_CHUNK - 1);
    if (head)
        munmap(p, head);
    if (HUGE_CHUNK - head)
        munmap(p + head + len, HUGE_CHUNK - head);
    chunk *c = (chunk *)(void *)(p + head);
#ifdef MADV_HUGEPAGE
    madvise(c, len, MADV_HUGEPAGE); /* a hint: without huge pages, plain pages */
#endif
    c->mapped = len;
    c->cap = len - sizeof *c;
    return c;
}

/* Room for n bytes that will not move, or NULL. */
static char *chunk_take(seg_builder *b, size_t n)
{
    chunk *c = b->chunks;
    if (!c || c->cap - c->used < n) {
        c = b->bytes >= CHUNK_SIZE ? chunk_map(n) : NULL;
        if (!c) {
            size_t cap = b->bytes < CHUNK_MIN ? CHUNK_MIN : b->bytes < CHUNK_SIZE ? b->bytes : CHUNK_SIZE;
            if (cap < n)
                cap = n;
            if (!(c = seg_malloc(sizeof *c + cap)))
                return NULL;
            c->mapped = 0;
            c->cap = cap;
        }
        c->used = 0;
        c->next = b->chunks;
        b->chunks = c;
    }
    char *p = c->data + c->used;
    c->used += n;
    b->bytes += n;
    return p;
}

uint32_t seg_builder_count(const seg_builder *b) { return b->n; }

void seg_builder_event(const seg_builder *b, uint32_t i, const char **json, size_t *len, int64_t *time,
                       const char **id, size_t *idlen, int *explicit_id)
{
    const ev *e = &b->ev[i];
    *json = e->json;
    *len = e->len;
    *time = e->time;
    *id = e->id;
    *idlen = e->id_len;
    *explicit_id = e->explicit_id;
}
size_t seg_builder_bytes(const seg_builder *b) { return b->bytes + (size_t)b->n * sizeof(ev); }

static int add_event(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                     size_t idlen, int explicit_id, const uint8_t *flat, size_t fl, const uint32_t *pmap)
{
    if (b->n == UINT32_MAX - 1 || n > UINT32_MAX || idlen > UINT32_MAX || fl > UINT32_MAX)
        return SEG_ELIMIT;
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 1024;
        ev *e = seg_realloc(b->ev, (size_t)cap * sizeof *e);
        if (!e)
            return SEG_ENOMEM;
        b->ev = e;
        b->cap = cap;
    }
    char *p = chunk_take(b, n + idlen + fl);
    if (!p)
        return SEG_ENOMEM;
    memcpy(p, json, n);
    memcpy(p + n, id, idlen);
    if (fl)
        memcpy(p + n + idlen, flat, fl);
    ev *e = &b->ev[b->n];
    e->json = p;
    e->len = (uint32_t)n;
    e->id = p + n;
    e->id_len = (uint32_t)idlen;
    e->time = time_ns;
    e->explicit_id = (uint8_t)(explicit_id != 0);
    e->parsed = flat != NULL;
    b->ev_bytes += n + idlen;
    e->flat_len = (uint32_t)fl;
    e->pmap = pmap;
    b->n++;
    return SEG_OK;
}

int seg_builder_add(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                    size_t idlen, int explicit_id)
{
    return add_event(b, json, n, time_ns, id, idlen, explicit_id, NULL, 0, NULL);
}

static int path_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const seg_flat *f = ctx;
    return f->pp[id].len == n && !memcmp(f->paths.p + f->pp[id].off, key, n);
}

static uint64_t path_hash(const void *ctx, uint32_t id)
{
    const seg_flat *f = ctx;
    return XXH3_64bits(f->paths.p + f->pp[id].off, f->pp[id].len);
}

/* Reads one value of a record after its path id: the type byte and what
 * follows (see above), into v (a span of json[0..n), or bytes inside the
 * record).  SEG_EINVAL when the bytes do not make a value. */
static int rec_value(seg_cur *c, const char *json, size_t n, seg_jval *v)
{
    if (c->bad || c->p >= c->end)
        return SEG_EINVAL;
    v->type = *c->p++;
    v->top = 0;
    switch (v->type) {
    case SEG_JV_STRING: {
        uint64_t a = seg_get_varint(c);
        if (a & 1) {
            if ((uint64_t)(c->end - c->p) < a >> 1)
                return SEG_EINVAL;
            v->str = (const char *)c->p;
            v->str_len = (uint32_t)(a >> 1);
            c->p += a >> 1;
        } else {
            uint64_t l = seg_get_varint(c);
            if ((a >> 1) > n || l > n - (a >> 1)) /* inside the event's bytes */
                return SEG_EINVAL;
            v->str = json + (a >> 1);
            v->str_len = (uint32_t)l;
        }
        break;
    }
    case SEG_JV_INT: v->i = seg_unzigzag(seg_get_varint(c)); break;
    case SEG_JV_REAL: v->d = seg_get_f64(c); break;
    case SEG_JV_TRUE:
    case SEG_JV_FALSE: break;
    default: return SEG_EINVAL;
    }
    return c->bad ? SEG_EINVAL : SEG_OK;
}

static uint64_t flat_serials;

static int flat_init(seg_flat *f)
{
    f->serial = __atomic_add_fetch(&flat_serials, 1, __ATOMIC_RELAXED);
    return idtab_init(&f->ptab, 64);
}

static void flat_clear(seg_flat *f)
{
    seg_buf_free(&f->paths);
    seg_free(f->pp);
    seg_free(f->ptab.slot);
    seg_free(f->prev);
}

seg_flat *seg_flat_new(void)
{
    seg_flat *f = seg_calloc(1, sizeof *f);
    if (f && flat_init(f)) {
        seg_free(f);
        f = NULL;
    }
    return f;
}

void seg_flat_free(seg_flat *f)
{
    if (f) {
        flat_clear(f);
        seg_free(f);
    }
}

/* The id of path s[0..n) in f (added when new), or UINT32_MAX. */
static uint32_t path_id(seg_flat *f, const char *s, size_t n)
{
    uint32_t *slot = idtab_probe(&f->ptab, XXH3_64bits(s, n), path_eq, f, s, n);
    if (*slot)
        return *slot - 1;
    if (f->npp == f->cappp) {
        uint32_t cap = f->cappp ? f->cappp * 2 : 64;
        ppath *q = seg_realloc(f->pp, (size_t)cap * sizeof *q);
        if (!q)
            return UINT32_MAX;
        f->pp = q;
        f->cappp = cap;
    }
    if (f->paths.n + n > UINT32_MAX)
        return UINT32_MAX;
    if (seg_buf_reserve(&f->paths, n ? n : 1)) {
        seg_buf_truncate(&f->paths, f->paths.n); /* only this path failed */
        return UINT32_MAX;
    }
    f->pp[f->npp].off = (uint32_t)f->paths.n;
    f->pp[f->npp].len = (uint32_t)n;
    seg_buf_put(&f->paths, s, n);
    *slot = ++f->npp;
    return idtab_grow(&f->ptab, f->npp, path_hash, f) ? UINT32_MAX : f->npp - 1;
}

int seg_flat_encode(seg_flat *fl, const char *json, size_t n, const seg_jval *v, size_t nv, seg_buf *f)
{
    if (nv > fl->capprev) {
        uint32_t *q = seg_realloc(fl->prev, nv * sizeof *q);
        if (!q)
            return SEG_ENOMEM;
        fl->prev = q;
        fl->capprev = nv;
    }
    for (size_t k = 0; k < nv; k++) {
        const seg_jval *x = &v[k];
        /* events of one source repeat their paths in order: the previous
         * event's path at this position is tried before the table */
        uint32_t pid;
        if (k < fl->nprev && fl->pp[fl->prev[k]].len == x->path_len &&
            !memcmp(fl->paths.p + fl->pp[fl->prev[k]].off, x->path, x->path_len))
            pid = fl->prev[k];
        else if ((pid = path_id(fl, x->path, x->path_len)) == UINT32_MAX)
            return SEG_ENOMEM;
        fl->prev[k] = pid;
        seg_buf_put_varint(f, pid);
        seg_buf_put_u8(f, x->type);
        switch (x->type) {
        case SEG_JV_STRING:
            if ((uintptr_t)x->str >= (uintptr_t)json && (uintptr_t)x->str + x->str_len <= (uintptr_t)json + n) {
                seg_buf_put_varint(f, (uint64_t)(x->str - json) << 1);
                seg_buf_put_varint(f, x->str_len);
            } else {
                seg_buf_put_varint(f, (uint64_t)x->str_len << 1 | 1);
                seg_buf_put(f, x->str, x->str_len);
            }
            break;
        case SEG_JV_INT:
            seg_buf_put_varint(f, ((uint64_t)x->i << 1) ^ (uint64_t)(x->i >> 63));
            break;
        case SEG_JV_REAL:
            seg_buf_put_f64(f, x->d);
            break;
        }
    }
    fl->nprev = nv;
    return f->oom ? SEG_ENOMEM : SEG_OK;
}

int seg_builder_add_parsed(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                           size_t idlen, int explicit_id, const seg_jval *v, size_t nv)
{
    if (!b->enc.ptab.slot && flat_init(&b->enc))
        return SEG_ENOMEM;
    seg_buf_reset(&b->flat); /* one failed event must not fail the builder's later ones */
    int rc = seg_flat_encode(&b->enc, json, n, v, nv, &b->flat);
    if (rc == SEG_OK && b->flat.oom)
        rc = SEG_ENOMEM;
    return rc ? rc : add_event(b, json, n, time_ns, id, idlen, explicit_id, b->flat.p, b->flat.n, NULL);
}

/* A record's path id read through an event's pmap (see ev): the
 * builder's id, or UINT64_MAX when the foreign table had no such id. */
static inline uint64_t map_pid(const uint32_t *pmap, uint64_t pid)
{
    if (!pmap)
        return pid;
    return pid < pmap[0] ? pmap[1 + pid] : UINT64_MAX;
}

/* The map from src's path ids to b's (see ev.pmap), made once per
 * foreign table (and again when it has grown), or NULL. */
static const uint32_t *map_of(seg_builder *b, const seg_flat *src)
{
    if (b->map && b->map_serial == src->serial && b->map[0] == src->npp)
        return b->map;
    uint32_t *m = (uint32_t *)(void *)chunk_take(b, ((size_t)src->npp + 1) * sizeof *m + sizeof *m);
    if (!m)
        return NULL;
    m = (uint32_t *)(((uintptr_t)m + 3) & ~(uintptr_t)3); /* aligned (chunk_take hands out bytes) */
    m[0] = src->npp;
    for (uint32_t k = 0; k < src->npp; k++) {
        uint32_t old = b->map && b->map_serial == src->serial && k < b->map[0] ? b->map[1 + k] : UINT32_MAX;
        m[1 + k] = old != UINT32_MAX ? old
                                     : path_id(&b->enc, (const char *)src->paths.p + src->pp[k].off, src->pp[k].len);
        if (m[1 + k] == UINT32_MAX)
            return NULL;
    }
    b->map = m;
    b->map_serial = src->serial;
    return m;
}

/* Record rec (path ids of table src, read through pmap when not NULL)
 * again in b->flat, with b's own path ids. */
static int reencode(seg_builder *b, const char *json, size_t n, const seg_flat *src, const uint32_t *pmap,
                    const uint8_t *rec, size_t len)
{
    const uint32_t *m = map_of(b, src);
    if (!m)
        return SEG_ENOMEM;
    seg_buf *f = &b->flat;
    seg_buf_reset(f);
    seg_cur c = {rec, rec + len, 0};
    while (c.p < c.end) {
        uint64_t pid = map_pid(pmap, seg_get_varint(&c));
        if (c.bad || pid >= m[0])
            return SEG_EINVAL;
        const uint8_t *v0 = c.p;
        seg_jval v;
        if (rec_value(&c, json, n, &v))
            return SEG_EINVAL;
        seg_buf_put_varint(f, m[1 + pid]);
        seg_buf_put(f, v0, (size_t)(c.p - v0));
    }
    return f->oom ? SEG_ENOMEM : SEG_OK;
}

/* The record is kept as src encoded it, with a map to b's path ids made
 * once per src: an event costs a check and a copy, not a re-encoding
 * (this runs under the server's writer lock).  A damaged record is
 * refused here, so that it cannot fail a segment's build later. */
int seg_builder_add_flat(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                         size_t idlen, int explicit_id, const seg_flat *src, const uint8_t *rec, size_t len)
{
    seg_cur c = {rec, rec + len, 0};
    while (c.p < c.end) {
        uint64_t pid = seg_get_varint(&c);
        seg_jval v;
        if (c.bad || pid >= src->npp || rec_value(&c, json, n, &v))
            return SEG_EINVAL;
    }
    if (!b->enc.ptab.slot && flat_init(&b->enc))
        return SEG_ENOMEM;
    const uint32_t *m = map_of(b, src);
    if (!m)
        return SEG_ENOMEM;
    return add_event(b, json, n, time_ns, id, idlen, explicit_id, rec, len, m);
}

int seg_builder_add_from(seg_builder *b, const seg_builder *src, uint32_t i)
{
    const ev *e = &src->ev[i];
    if (!e->parsed)
        return add_event(b, e->json, e->len, e->time, e->id, e->id_len, e->explicit_id, NULL, 0, NULL);
    if (!b->enc.ptab.slot && flat_init(&b->enc))
        return SEG_ENOMEM;
    int rc = reencode(b, e->json, e->len, &src->enc, e->pmap, (const uint8_t *)e->id + e->id_len, e->flat_len);
    return rc ? rc : add_event(b, e->json, e->len, e->time, e->id, e->id_len, e->explicit_id, b->flat.p, b->flat.n, NULL);
}

/* ------------------------------------------------------------------ */
/* Term table                                                           */
/* ------------------------------------------------------------------ */

/* A term while building: one 64-byte cache line, holding the key's first
 * 16 bytes so that a lookup of a short key (nearly all) reads no other
 * memory.  Its postings stream p[0..n), in memory only: per doc a varint
 * gap (doc - previous doc - 1), then for TEXT terms the positions as
 * varints (first: pos + 1, then pos - previous pos; never 0), ended by a 0
 * when the term's next doc starts (or by the end of the stream). */
typedef struct term {
    uint8_t head[16];      /* key bytes 0..15, zero-padded */
    uint64_t key_off;      /* the whole key, in build.keys */
    uint32_t key_len;
    uint32_t df;
    uint32_t last_doc1;    /* last doc + 1; 0: none yet */
    uint32_t last_pos1;    /* last position + 1 in that doc; 0: none */
    uint8_t *p;
    uint32_t n, cap;
    uint8_t kind;
} __attribute__((aligned(64))) term;

typedef struct fieldinfo {
    uint64_t name_off;
    uint32_t name_len;
    uint8_t flags;
    uint32_t docs;
    int64_t last_doc;
    uint32_t nnum;
    double min, max;
    int all_int;
    int dec_scale;     /* largest decimal scale its reals need; > SEG_NUM_MAX_SCALE: none fits */
    uint32_t next_pos; /* the field's next token position in doc last_doc */
    uint8_t want;      /* partial segments: WANT_* */
    seg_buf nums;      /* (u32 doc, u8 isint, 8 bytes value) records */
    seg_buf kws;       /* (u32 doc, u32 value id) records: keyword values */
    uint32_t nkw_distinct;
    uint64_t nkw_bytes;        /* bytes of those distinct values */
    int no_keycol;     /* too many distinct values: no KEYCOL for this field */
    uint32_t exists_term; /* 1 + its EXISTS key's term, 0 until looked up */
} fieldinfo;

#define TOK_BATCH 16

typedef struct build {
    seg_builder *b;
    seg_tok *tok;
    seg_buf keys;          /* key bytes of terms and field names */
    term *terms;           /* in terms_mem, 64-byte aligned */
    void *terms_mem;
    uint32_t nterms, capterms;
    uint64_t *tslot;       /* hash slots: term index + 1 (low 32 bits) and
                            * the key's hash high 32 bits (compared first) */
    uint32_t tmask;
    fieldinfo *fields;
    uint32_t nfields, capfields;
    idtab ftab;
    /* distinct keyword values (field, bytes) -> id, for KEYCOL */
    struct kv {
        uint64_t off;
        uint32_t len;
        uint32_t field;
    } *kv;
    uint32_t nkv, capkv;
    idtab ktab;
    /* per token callback */
    uint32_t cur_doc;
    uint32_t cur_field;
    uint32_t pos;
    int oom;
    const seg_index_only *only;  /* partial segment, or NULL */
    /* tokens waiting for their lookup (on_token) */
    uint8_t tb_key[TOK_BATCH][SEG_MAX_KEY];
    uint16_t tb_len[TOK_BATCH];
    uint64_t tb_hash[TOK_BATCH];
    uint32_t tb_n;
    /* pre-parsed events: decoded values, their fields, field by path id */
    seg_jval *vals;
    uint32_t *vfield;
    size_t capvals;
    uint32_t *pidf;
    uint32_t npidf;
} build;

/* What a partial segment indexes of a field. */
enum { WANT_NONE = 0, WANT_TEXT = 1, WANT_ALL = 2 };

/* Whether the n bytes at a and b are equal (keys are >= 4 bytes: every
 * key ends with its field and kind).  Keys of 4 to 16 bytes compare as
 * two overlapping words. */
static inline int key_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t x, y, u, v;
    if (n > 16 || n < 4)
        return !memcmp(a, b, n);
    if (n >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return ((x ^ y) | (u ^ v)) == 0;
    }
    uint32_t x4, y4, u4, v4;
    memcpy(&x4, a, 4);
    memcpy(&y4, b, 4);
    memcpy(&u4, a + n - 4, 4);
    memcpy(&v4, b + n - 4, 4);
    return ((x4 ^ y4) | (u4 ^ v4)) == 0;
}

/* The term table's hash (memory only, never stored) of a key made by
 * seg_key_make: token bytes tok[0..len) and the 4-byte suffix (0, field
 * high, field low, kind) given as suf, the little-endian word of those
 * bytes.  The suffix is taken from a register, not read back from the key
 * just written byte by byte: a wide load of bytes that recent narrow
 * stores wrote waits for the stores to retire (a store-forwarding stall,
 * ~18% of build_write's own time at the EXISTS key).  Tokens of up to 16
 * bytes (nearly all) are read as two words that together cover every
 * byte, mixed with suf and len by one 64x64->128-bit multiply; longer ones
 * go through XXH3 seeded with them. */
static inline uint32_t key_suffix(uint16_t field, uint8_t kind)
{
    return ((uint32_t)(field >> 8) << 8) | ((uint32_t)(field & 0xff) << 16) | ((uint32_t)kind << 24);
}

static inline uint64_t key_hash(const uint8_t *tok, size_t len, uint32_t suf)
{
    uint64_t a, b;
    if (len > 16)
        return XXH3_64bits_withSeed(tok, len, ((uint64_t)suf << 32) | len);
    if (len >= 8) {
        memcpy(&a, tok, 8);
        memcpy(&b, tok + len - 8, 8);
    } else if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, tok, 4);
        memcpy(&hi, tok + len - 4, 4);
        a = lo;
        b = hi;
    } else {
        a = len ? (uint64_t)tok[0] | (uint64_t)tok[len >> 1] << 8 | (uint64_t)tok[len - 1] << 16 : 0;
        b = a;
    }
    unsigned __int128 m = (unsigned __int128)(a ^ 0x9E3779B97F4A7C15ull ^ ((uint64_t)suf << 32)) *
                          (b ^ 0xC2B2AE3D27D4EB4Full ^ suf ^ ((uint64_t)len << 40));
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static uint32_t term_get_h(build *x, const uint8_t *key, size_t n, uint64_t h)
{
    uint64_t tag = h & 0xffffffff00000000ull;
    uint32_t i = (uint32_t)(tag >> 32) & x->tmask;
    for (;;) {
        uint64_t s = x->tslot[i];
        if (!s)
            break;
        if ((s & 0xffffffff00000000ull) == tag) {
            const term *t = &x->terms[(uint32_t)s - 1];
            if (t->key_len == n &&
                (n <= 16 ? key_eq(t->head, key, n) : key_eq(x->keys.p + t->key_off, key, n)))
                return (uint32_t)s - 1;
        }
        i = (i + 1) & x->tmask;
    }
    if (x->nterms == x->capterms) {
        /* cache-line aligned: realloc would not keep the alignment */
        uint32_t cap = x->capterms ? x->capterms * 2 : 4096;
        term *t = NULL;
        if (cap < x->capterms || !(t = seg_malloc((size_t)cap * sizeof *t + 64))) {
            x->oom = 1;
            return UINT32_MAX;
        }
        term *at = (term *)(void *)(((uintptr_t)t + 63) & ~(uintptr_t)63);
        if (x->nterms)
            memcpy(at, x->terms, (size_t)x->nterms * sizeof *at);
        seg_free(x->terms_mem);
        x->terms_mem = t;
        x->terms = at;
        x->capterms = cap;
    }
    if (seg_buf_reserve(&x->keys, n)) { /* the key's bytes first: a term never points past them */
        x->oom = 1;
        return UINT32_MAX;
    }
    term *t = &x->terms[x->nterms];
    memset(t, 0, sizeof *t);
    memcpy(t->head, key, n < 16 ? n : 16);
    t->key_off = x->keys.n;
    t->key_len = (uint32_t)n;
    t->kind = key[n - 1];
    seg_buf_put(&x->keys, key, n);
    x->tslot[i] = tag | ++x->nterms;
    if (x->nterms * 2 > x->tmask) {
        /* grow: the tags keep the hashes, no key is re-read */
        uint32_t nmask = x->tmask * 2 + 1;
        uint64_t *ns = seg_calloc((size_t)nmask + 1, sizeof *ns);
        if (!ns) {
            x->oom = 1;
            return x->nterms - 1;
        }
        for (uint32_t k = 0; k <= x->tmask; k++) {
            uint64_t v = x->tslot[k];
            if (!v)
                continue;
            uint32_t j = (uint32_t)(v >> 32) & nmask;
            while (ns[j])
                j = (j + 1) & nmask;
            ns[j] = v;
        }
        seg_free(x->tslot);
        x->tslot = ns;
        x->tmask = nmask;
    }
    return x->nterms - 1;
}

static int field_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const build *x = ctx;
    return x->fields[id].name_len == n && !memcmp(x->keys.p + x->fields[id].name_off, key, n);
}

static uint64_t field_hash(const void *ctx, uint32_t id)
{
    const build *x = ctx;
    return XXH3_64bits(x->keys.p + x->fields[id].name_off, x->fields[id].name_len);
}

/* The field named name[0..n) (added when new); UINT32_MAX past
 * SEG_MAX_FIELDS fields (its values are not indexed) or out of memory. */
static uint32_t field_get(build *x, const char *name, size_t n)
{
    uint32_t *slot = idtab_probe(&x->ftab, XXH3_64bits(name, n), field_eq, x, name, n);
    if (*slot)
        return *slot - 1;
    if (x->nfields >= SEG_MAX_FIELDS)
        return UINT32_MAX;
    if (seg_buf_reserve(&x->keys, n ? n : 1)) { /* the name's bytes first: a field never points past them */
        x->oom = 1;
        return UINT32_MAX;
    }
    if (x->nfields == x->capfields) {
        uint32_t cap = x->capfields ? x->capfields * 2 : 64;
        fieldinfo *f = seg_realloc(x->fields, (size_t)cap * sizeof *f);
        if (!f) {
            x->oom = 1;
            return UINT32_MAX;
        }
        x->fields = f;
        x->capfields = cap;
    }
    fieldinfo *f = &x->fields[x->nfields];
    memset(f, 0, sizeof *f);
    f->name_off = x->keys.n;
    f->name_len = (uint32_t)n;
    f->last_doc = -1;
    f->all_int = 1;
    f->want = WANT_ALL;
    if (x->only) {
        f->want = x->only->any_text ? WANT_TEXT : WANT_NONE;
        for (size_t k = 0; k < x->only->nfields; k++)
            if (strlen(x->only->fields[k]) == n && !memcmp(x->only->fields[k], name, n))
                f->want = WANT_ALL;
    }
    seg_buf_put(&x->keys, name, n);
    *slot = ++x->nfields;
    if (idtab_grow(&x->ftab, x->nfields, field_hash, x))
        x->oom = 1;
    return x->nfields - 1;
}

size_t seg_key_make(uint8_t *out, const char *tok, size_t toklen, uint16_t field, uint8_t kind)
{
    memcpy(out, tok, toklen);
    out[toklen] = 0;
    out[toklen + 1] = (uint8_t)(field >> 8);
    out[toklen + 2] = (uint8_t)field;
    out[toklen + 3] = kind;
    return toklen + 4;
}

/* Appends varint v to term t's posting stream. */
static inline void post_varint(build *x, term *t, uint64_t v)
{
    if (t->cap - t->n < 10) {
        uint32_t cap = t->cap ? t->cap * 2 : 16;
        uint8_t *p = cap > t->cap ? seg_realloc(t->p, cap) : NULL;
        if (!p) {
            x->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    uint8_t *p = t->p + t->n;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    t->n = (uint32_t)(p - t->p);
}

/* Records that term ti occurs in the current doc (at pos, for TEXT). */
static void add_occ(build *x, uint32_t ti, uint32_t pos)
{
    if (ti == UINT32_MAX)
        return;
    term *t = &x->terms[ti];
    uint32_t doc = x->cur_doc;
    if (t->last_doc1 != doc + 1) {
        if (t->kind == SEG_K_TEXT && t->last_doc1)
            post_varint(x, t, 0);
        post_varint(x, t, doc - t->last_doc1);  /* doc - last doc - 1 */
        t->last_doc1 = doc + 1;
        t->last_pos1 = 0;
        t->df++;
    } else if (t->kind != SEG_K_TEXT) {
        return;
    }
    if (t->kind == SEG_K_TEXT) {
        post_varint(x, t, (uint64_t)pos + 1 - t->last_pos1);  /* pos - last pos */
        t->last_pos1 = pos + 1;
    }
}

/* The term of key (made by seg_key_make from tok, len, field, kind). */
static uint32_t term_get(build *x, const uint8_t *key, size_t n, const char *tok, size_t len, uint16_t field,
                         uint8_t kind)
{
    return term_get_h(x, key, n, key_hash((const uint8_t *)tok, len, key_suffix(field, kind)));
}

/* The tokens of a value are looked up in batches: their hash slots are
 * prefetched as they arrive and read when the batch is full (or the value
 * ends), so the cache misses of one batch overlap instead of queueing. */
static void tokens_flush(build *x)
{
    /* the slots are in cache by now: prefetch the terms they point to */
    for (uint32_t i = 0; i < x->tb_n; i++) {
        uint64_t sl = x->tslot[(uint32_t)(x->tb_hash[i] >> 32) & x->tmask];
        if (sl && ((sl ^ x->tb_hash[i]) & 0xffffffff00000000ull) == 0)
            __builtin_prefetch(&x->terms[(uint32_t)sl - 1]);
    }
    for (uint32_t i = 0; i < x->tb_n; i++)
        add_occ(x, term_get_h(x, x->tb_key[i], x->tb_len[i], x->tb_hash[i]), x->pos++);
    x->tb_n = 0;
}

static void on_token(void *ud, const char *tok, size_t len)
{
    build *x = ud;
    uint32_t i = x->tb_n;
    size_t n = seg_key_make(x->tb_key[i], tok, len, (uint16_t)x->cur_field, SEG_K_TEXT);
    uint64_t h = key_hash((const uint8_t *)tok, len, key_suffix((uint16_t)x->cur_field, SEG_K_TEXT));
    __builtin_prefetch(&x->tslot[(uint32_t)(h >> 32) & x->tmask]);
    x->tb_len[i] = (uint16_t)n;
    x->tb_hash[i] = h;
    if (++x->tb_n == TOK_BATCH)
        tokens_flush(x);
}

static void add_value_term(build *x, uint32_t f, const char *txt, size_t len)
{
    uint8_t key[SEG_MAX_KEY];
    size_t n = seg_key_make(key, txt, len, (uint16_t)f, SEG_K_VALUE);
    add_occ(x, term_get(x, key, n, txt, len, (uint16_t)f, SEG_K_VALUE), 0);
}

/* Keyword values are keyed by (field, bytes). */
typedef struct kvkey {
    uint32_t field;
    const char *s;
} kvkey;

static inline uint64_t kv_hash_of(uint32_t f, const void *s, size_t n)
{
    return XXH3_64bits(s, n) ^ ((uint64_t)f * 0x9E3779B97F4A7C15ULL);
}

static int kv_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const build *x = ctx;
    const kvkey *k = key;
    const struct kv *v = &x->kv[id];
    return v->field == k->field && v->len == n && !memcmp(x->keys.p + v->off, k->s, n);
}

static uint64_t kv_hash(const void *ctx, uint32_t id)
{
    const build *x = ctx;
    const struct kv *v = &x->kv[id];
    return kv_hash_of(v->field, x->keys.p + v->off, v->len);
}

/* The id of keyword value s of field f (added when new). */
static uint32_t kv_get(build *x, uint32_t f, const char *s, size_t n)
{
    kvkey key = {f, s};
    uint32_t *slot = idtab_probe(&x->ktab, kv_hash_of(f, s, n), kv_eq, x, &key, n);
    if (*slot)
        return *slot - 1;
    if (x->nkv == x->capkv) {
        uint32_t cap = x->capkv ? x->capkv * 2 : 1024;
        struct kv *k = seg_realloc(x->kv, (size_t)cap * sizeof *k);
        if (!k) {
            x->oom = 1;
            return UINT32_MAX;
        }
        x->kv = k;
        x->capkv = cap;
    }
    if (seg_buf_reserve(&x->keys, n ? n : 1)) {
        x->oom = 1;
        return UINT32_MAX;
    }
    struct kv *k = &x->kv[x->nkv];
    k->off = x->keys.n;
    k->len = (uint32_t)n;
    k->field = f;
    seg_buf_put(&x->keys, s, n);
    *slot = ++x->nkv;
    if (idtab_grow(&x->ktab, x->nkv, kv_hash, x))
        x->oom = 1;
    return x->nkv - 1;
}

/* Decimal columns hold values below this in magnitude: their mantissa
 * at any scale stays below 2^53, exact in a double. */
#define DEC_LIMIT (9007199254740992.0 / 1e6)

/* The smallest scale s (<= SEG_NUM_MAX_SCALE) with d == m / 10^s for an
 * integer m, or SEG_NUM_MAX_SCALE + 1. */
static int dec_scale(double d)
{
    if (!(fabs(d) < DEC_LIMIT))
        return SEG_NUM_MAX_SCALE + 1;
    for (int s = 0; s <= SEG_NUM_MAX_SCALE; s++) {
        double m = (double)llround(d * seg_pow10[s]);
        if (m / seg_pow10[s] == d)
            return s;
    }
    return SEG_NUM_MAX_SCALE + 1;
}

static void add_num(build *x, uint32_t doc, uint32_t f, int isint, int64_t i, double d)
{
    fieldinfo *fi = &x->fields[f];
    double v = isint ? (double)i : d;
    if (fi->nnum == 0 || v < fi->min)
        fi->min = v;
    if (fi->nnum == 0 || v > fi->max)
        fi->max = v;
    fi->nnum++;
    if (!isint) {
        fi->all_int = 0;
        if (fi->dec_scale <= SEG_NUM_MAX_SCALE) {
            int sc = dec_scale(d);
            if (sc > fi->dec_scale)
                fi->dec_scale = sc;
        }
    } else if (!(fabs((double)i) < DEC_LIMIT)) {
        fi->dec_scale = SEG_NUM_MAX_SCALE + 1;
    }
    uint8_t rec[13];
    seg_wr_u32(rec, doc);
    rec[4] = (uint8_t)isint;
    uint64_t u;
    if (isint)
        u = (uint64_t)i;
    else
        memcpy(&u, &d, 8);
    seg_wr_u64(rec + 5, u);
    seg_buf_put(&fi->nums, rec, 13);
}

/* The tokens of string value v of field f, at the field's next positions;
 * one position is skipped after it (no phrase across two values). */
static int index_text(build *x, uint32_t f, const seg_jval *v)
{
    fieldinfo *fi = &x->fields[f];
    x->cur_field = f;
    x->pos = fi->next_pos;
    if (seg_tok_run(x->tok, v->str, v->str_len, on_token, x) < 0)
        return -1;
    tokens_flush(x);
    fi->next_pos = x->pos + 1;
    return 0;
}

/* Decodes the pre-parsed values of event ev (see seg_builder_add_parsed)
 * into x->vals, with their fields in x->vfield. */
static int decode_parsed(build *x, const ev *ev, size_t *nv)
{
    const seg_builder *b = x->b;
    seg_cur c = {(const uint8_t *)ev->id + ev->id_len, (const uint8_t *)ev->id + ev->id_len + ev->flat_len, 0};
    size_t k = 0;
    while (c.p < c.end && !c.bad) {
        if (k == x->capvals) {
            size_t cap = x->capvals ? x->capvals * 2 : 64;
            seg_jval *nvals = seg_realloc(x->vals, cap * sizeof *nvals);
            uint32_t *nf = seg_realloc(x->vfield, cap * sizeof *nf);
            if (nvals)
                x->vals = nvals;
            if (nf)
                x->vfield = nf;
            if (!nvals || !nf)
                return SEG_ENOMEM;
            x->capvals = cap;
        }
        seg_jval *v = &x->vals[k];
        uint64_t pid = map_pid(ev->pmap, seg_get_varint(&c));
        if (c.bad || pid >= b->enc.npp || rec_value(&c, ev->json, ev->len, v))
            return SEG_EINVAL;
        v->path = (const char *)b->enc.paths.p + b->enc.pp[pid].off;
        v->path_len = b->enc.pp[pid].len;
        /* the path's field, looked up once per segment */
        if (pid >= x->npidf) {
            uint32_t n = b->enc.npp;
            uint32_t *q = seg_realloc(x->pidf, (size_t)n * sizeof *q);
            if (!q)
                return SEG_ENOMEM;
            for (uint32_t j = x->npidf; j < n; j++)
                q[j] = UINT32_MAX - 1;
            x->pidf = q;
            x->npidf = n;
        }
        if (x->pidf[pid] == UINT32_MAX - 1)
            x->pidf[pid] = field_get(x, v->path, v->path_len);
        x->vfield[k] = x->pidf[pid];
        k++;
    }
    if (c.bad)
        return SEG_EINVAL;
    *nv = k;
    return SEG_OK;
}

/* Indexes one event as doc `doc`. */
static int index_doc(build *x, seg_json *js, uint32_t doc, const ev *ev, seg_err *e)
{
    const seg_jval *v;
    size_t nv;
    seg_err je = {0};
    const uint32_t *vf = NULL;
    if (ev->parsed) {
        int rc = decode_parsed(x, ev, &nv);
        if (rc)
            return seg_err_set(e, rc, NULL, rc == SEG_ENOMEM ? "out of memory" : "pre-parsed event %u is damaged", doc);
        v = x->vals;
        vf = x->vfield;
    } else if (seg_json_parse(js, ev->json, ev->len, &v, &nv, &je) != SEG_OK) {
        /* events were validated on the way in; a failure here is ours */
        return seg_err_set(e, je.code == SEG_ENOMEM ? SEG_ENOMEM : SEG_EINVAL, NULL,
                           "stored event %u no longer parses: %s", doc, je.msg);
    }
    x->cur_doc = doc;
    for (size_t i = 0; i < nv; i++) {
        uint32_t f = vf ? vf[i] : field_get(x, v[i].path, v[i].path_len);
        if (f == UINT32_MAX)
            continue;
        fieldinfo *fi = &x->fields[f];
        int first = fi->last_doc != doc; /* the field's first value in doc */
        if (first) {
            fi->last_doc = doc;
            fi->next_pos = 0;
        }
        if (fi->want != WANT_ALL) {
            /* partial segments: only the tokens of this string, if wanted */
            if (fi->want == WANT_TEXT && v[i].type == SEG_JV_STRING && index_text(x, f, &v[i]))
                return seg_err_set(e, SEG_EINVAL, NULL, "tokenizer failed on event %u", doc);
            continue;
        }
        if (first) {
            fi->docs++;
            uint32_t t = fi->exists_term - 1;
            if (!fi->exists_term) { /* looked up once a build: term ids never move */
                uint8_t key[8];
                size_t kn = seg_key_make(key, "", 0, (uint16_t)f, SEG_K_EXISTS);
                t = term_get(x, key, kn, "", 0, (uint16_t)f, SEG_K_EXISTS); /* UINT32_MAX: out of memory */
                if (t != UINT32_MAX)
                    fi->exists_term = t + 1;
            }
            add_occ(x, t, 0);
        }
        switch (v[i].type) {
        case SEG_JV_STRING:
            fi->flags |= SEG_F_STRING;
            if (index_text(x, f, &v[i]))
                return seg_err_set(e, SEG_EINVAL, NULL, "tokenizer failed on event %u", doc);
            if (v[i].str_len <= SEG_KEYWORD_MAX && !fi->no_keycol && !x->only) {
                uint32_t before = x->nkv;
                uint32_t id = kv_get(x, f, v[i].str, v[i].str_len);
                if (x->nkv != before) { /* a new distinct value */
                    fi->nkw_bytes += v[i].str_len;
                    if (++fi->nkw_distinct > SEG_KEYCOL_MAX_DISTINCT && fi->nkw_distinct > fi->kws.n / 8 / 8) {
                        /* mostly distinct values (ids, messages, times): a
                         * dictionary would only repeat the stored events */
                        fi->no_keycol = 1;
                        seg_buf_free(&fi->kws);
                        break;
                    }
                }
                uint8_t rec[8];
                seg_wr_u32(rec, doc);
                seg_wr_u32(rec + 4, id);
                seg_buf_put(&fi->kws, rec, 8);
            }
            break;
        case SEG_JV_INT: /* numbers go to the column only: equality is a range */
            fi->flags |= SEG_F_INT;
            add_num(x, doc, f, 1, v[i].i, 0);
            break;
        case SEG_JV_REAL:
            fi->flags |= SEG_F_REAL;
            add_num(x, doc, f, 0, 0, v[i].d);
            break;
        case SEG_JV_TRUE:
        case SEG_JV_FALSE:
            fi->flags |= SEG_F_BOOL;
            add_value_term(x, f, v[i].type == SEG_JV_TRUE ? "true" : "false",
                           v[i].type == SEG_JV_TRUE ? 4 : 5);
            break;
        }
    }
    if (x->oom || x->keys.oom)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory while indexing");
    return SEG_OK;
}

/* ------------------------------------------------------------------ */
/* Sorting                                                              */
/* ------------------------------------------------------------------ */

static int ev_cmp(const void *pa, const void *pb, void *ctx)
{
    const seg_builder *sort_b = ctx;
    const ev *a = &sort_b->ev[*(const uint32_t *)pa], *b = &sort_b->ev[*(const uint32_t *)pb];
    if (a->time != b->time)
        return a->time > b->time ? -1 : 1;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c)
        return c;
    return a->id_len < b->id_len ? -1 : a->id_len > b->id_len;
}

void seg_builder_order(const seg_builder *b, uint32_t *order)
{
    for (uint32_t i = 0; i < b->n; i++)
        order[i] = i;
    qsort_r(order, b->n, sizeof *order, ev_cmp, (void *)b);
}

/* Terms sort by key bytes.  Each carries its first 8 bytes as a
 * big-endian number (zero-padded), so most comparisons touch neither the
 * term nor its key. */
typedef struct tsort {
    uint64_t pre;
    uint32_t i;
} tsort;

static int key_cmp(const void *pa, const void *pb, void *ctx)
{
    const tsort *ta = pa, *tb = pb;
    if (ta->pre != tb->pre)
        return ta->pre < tb->pre ? -1 : 1;
    const build *sort_x = ctx;
    const term *a = &sort_x->terms[ta->i], *b = &sort_x->terms[tb->i];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(sort_x->keys.p + a->key_off, sort_x->keys.p + b->key_off, n);
    if (c)
        return c;
    return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

/* torder[i]: the i-th term in key order. */
static int sort_terms(build *x, uint32_t *torder)
{
    tsort *t = seg_malloc((size_t)(x->nterms ? x->nterms : 1) * sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < x->nterms; i++) {
        const uint8_t *k = x->terms[i].head; /* the key's first bytes, zero-padded */
        uint64_t pre = 0;
        for (uint32_t j = 0; j < 8; j++)
            pre = pre << 8 | k[j];
        t[i].pre = pre;
        t[i].i = i;
    }
    if (x->nterms > 1)
        qsort_r(t, x->nterms, sizeof *t, key_cmp, x);
    for (uint32_t i = 0; i < x->nterms; i++)
        torder[i] = t[i].i;
    seg_free(t);
    return 0;
}

typedef struct idrec {
    uint64_t h;
    uint32_t doc;
} idrec;

static int id_cmp(const void *pa, const void *pb)
{
    const idrec *a = pa, *b = pb;
    if (a->h != b->h)
        return a->h < b->h ? -1 : 1;
    return a->doc < b->doc ? -1 : a->doc > b->doc;
}

/* ------------------------------------------------------------------ */
/* Section encoders                                                     */
/* ------------------------------------------------------------------ */

static void enc_fields(build *x, seg_buf *o)
{
    seg_buf_put_u32(o, x->nfields);
    for (uint32_t f = 0; f < x->nfields; f++) {
        fieldinfo *fi = &x->fields[f];
        seg_buf_put_u16(o, (uint16_t)fi->name_len);
        seg_buf_put(o, x->keys.p + fi->name_off, fi->name_len);
        seg_buf_put_u8(o, fi->flags);
        seg_buf_put_u32(o, fi->docs);
        seg_buf_put_u32(o, fi->nnum);
        seg_buf_put_f64(o, fi->nnum ? fi->min : 0);
        seg_buf_put_f64(o, fi->nnum ? fi->max : 0);
    }
}

static void enc_times(const seg_builder *b, const uint32_t *order, uint32_t n, seg_buf *o)
{
    uint32_t nb = (n + SEG_TIME_BLOCK - 1) / SEG_TIME_BLOCK;
    /* the unit: the gcd of the differences (1e6 for times in whole ms) */
    uint64_t unit = 0;
    for (uint32_t d = 1; d < n && unit != 1; d++) {
        uint64_t g = (uint64_t)(b->ev[order[d - 1]].time - b->ev[order[d]].time);
        while (g) {
            uint64_t t = unit % g;
            unit = g;
            g = t;
        }
    }
    if (unit == 0)
        unit = 1;
    seg_buf_put_u32(o, n);
    seg_buf_put_u32(o, nb);
    seg_buf_put_u64(o, unit);
    size_t idx = o->n;
    seg_buf_reserve(o, (size_t)nb * 12);
    if (o->oom)
        return;
    o->n += (size_t)nb * 12;
    size_t data0 = o->n;
    for (uint32_t blk = 0; blk < nb; blk++) {
        uint32_t s = blk * SEG_TIME_BLOCK, e = s + SEG_TIME_BLOCK < n ? s + SEG_TIME_BLOCK : n;
        int64_t first = b->ev[order[s]].time;
        uint32_t off = (uint32_t)(o->n - data0);
        for (uint32_t d = s + 1; d < e; d++)
            seg_buf_put_varint(o, (uint64_t)(b->ev[order[d - 1]].time - b->ev[order[d]].time) / unit);
        if (o->oom)
            return;
        seg_wr_u64(o->p + idx + (size_t)blk * 12, (uint64_t)first);
        seg_wr_u32(o->p + idx + (size_t)blk * 12 + 8, off);
    }
}

/* Re-encodes one term's in-memory stream into bit-packed blocks of 128
 * docs; appends to post. */
static int enc_postings(const term *t, int text, seg_buf *post, seg_buf *docs, seg_buf *pos)
{
    seg_cur c = {t->p, t->p + t->n, 0};
    int64_t doc = -1;
    uint32_t left = t->df;
    uint32_t gaps[SEG_POST_BLOCK], tfs[SEG_POST_BLOCK], first[SEG_POST_BLOCK];
    seg_buf pv = {0};          /* the block's positions, as u32 */
    int rc = 0;
    while (left && rc == 0) {
        uint32_t cnt = left < SEG_POST_BLOCK ? left : SEG_POST_BLOCK;
        docs->n = pos->n = pv.n = 0;
        int64_t last = doc;
        for (uint32_t k = 0; k < cnt; k++) {
            uint64_t gap = seg_get_varint(&c);
            last = last + 1 + (int64_t)gap;
            gaps[k] = (uint32_t)gap;
            if (text) {
                /* positions until a 0 or the end; the first is pos + 1 */
                uint32_t tf = 0;
                first[k] = (uint32_t)(pv.n / 4);
                while (c.p < c.end && *c.p != 0) {
                    uint32_t d = (uint32_t)seg_get_varint(&c);
                    uint32_t v = tf == 0 ? d - 1 : d;
                    seg_buf_put(&pv, &v, 4);
                    tf++;
                }
                if (c.p < c.end)
                    c.p++; /* the 0 */
                if (tf == 0)
                    rc = -1;
                tfs[k] = tf - 1;
            }
        }
        if (c.bad || pv.oom)
            rc = -1;
        seg_buf_put_xpacked(docs, gaps, cnt);
        if (text && rc == 0) {
            seg_buf_put_xpacked(docs, tfs, cnt);
            /* positions: each doc's first less the block's least first
             * (a token at the same place in every value costs 0 bits) */
            uint32_t *pvv = (uint32_t *)(void *)pv.p, base = UINT32_MAX;
            for (uint32_t k = 0; k < cnt; k++)
                base = pvv[first[k]] < base ? pvv[first[k]] : base;
            for (uint32_t k = 0; k < cnt; k++)
                pvv[first[k]] -= base;
            seg_buf_put_varint(pos, base);
            seg_buf_put_xpacked(pos, pvv, pv.n / 4);
        }
        /* scratch that missed an append would leave the block short */
        if (docs->oom || pos->oom)
            rc = -1;
        seg_buf_put_varint(post, (uint64_t)last);
        seg_buf_put_varint(post, docs->n);
        seg_buf_put_varint(post, pos->n);
        seg_buf_put(post, docs->p, docs->n);
        seg_buf_put(post, pos->p, pos->n);
        doc = last;
        left -= cnt;
    }
    seg_buf_free(&pv);
    return rc;
}

/* A term of one doc, inline in its dictionary entry: varint doc, and for
 * TEXT varint tf, then the positions (the first, then differences). */
static int enc_single(const term *t, int text, seg_buf *o)
{
    seg_cur c = {t->p, t->p + t->n, 0};
    seg_buf_put_varint(o, seg_get_varint(&c)); /* gap from -1: the doc */
    if (!text)
        return c.bad ? -1 : 0;
    /* positions until the end: the first is pos + 1, then differences */
    const uint8_t *p0 = c.p;
    uint32_t tf = 0;
    while (c.p < c.end) {
        seg_get_varint(&c);
        tf++;
    }
    if (c.bad || tf == 0)
        return -1;
    seg_buf_put_varint(o, tf);
    c.p = p0;
    for (uint32_t k = 0; k < tf; k++) {
        uint64_t d = seg_get_varint(&c);
        seg_buf_put_varint(o, k == 0 ? d - 1 : d);
    }
    return 0;
}

/* A suffix of lower-case hex digits (ids, hashes, numbers) of two or more
 * is stored two digits a byte; every other suffix as it is.  Writes the
 * length varint (length << 1 | packed) and the bytes. */
static int is_hex_digit(uint8_t c) { return (uint8_t)(c - '0') < 10 || (uint8_t)(c - 'a') < 6; }
static unsigned hex_nibble(uint8_t c) { return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10); }

static void put_token_suffix(seg_buf *o, const uint8_t *s, uint32_t n)
{
    uint32_t k = 0;
    if (n >= 2)
        while (k < n && is_hex_digit(s[k]))
            k++;
    if (n < 2 || k < n) {
        seg_buf_put_varint(o, (uint64_t)n << 1);
        seg_buf_put(o, s, n);
        return;
    }
    seg_buf_put_varint(o, (uint64_t)n << 1 | 1);
    if (seg_buf_reserve(o, (n + 1) / 2))
        return;
    uint8_t *d = o->p + o->n;
    for (k = 0; k + 1 < n; k += 2)
        *d++ = (uint8_t)(hex_nibble(s[k]) << 4 | hex_nibble(s[k + 1]));
    if (n & 1)
        *d++ = (uint8_t)(hex_nibble(s[n - 1]) << 4);
    o->n += (n + 1) / 2;
}

/* Posting lists already written, by their bytes: a term whose encoded
 * postings equal an earlier term's points at those bytes instead of
 * writing them again.  Most such pairs are the EXISTS terms of fields that
 * always occur together (the fields of one kind of event: each list is a
 * doc set of thousands of events). */
typedef struct {
    uint64_t h, off, len;
} pdup_ent;

typedef struct {
    idtab tab;
    pdup_ent *e;
    uint32_t n, cap;
    int given_up;        /* sharing stopped (out of memory) */
    const seg_buf *post;
} pdup;

static int pdup_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const pdup *d = ctx;
    return d->e[id].len == n && !memcmp(d->post->p + d->e[id].off, key, n);
}

static uint64_t pdup_hash(const void *ctx, uint32_t id) { return ((const pdup *)ctx)->e[id].h; }

/* The offset of an identical list written before (the new copy is cut
 * off post), or the new list's own offset (then remembered).  A failed
 * allocation only gives up sharing. */
static uint64_t pdup_share(pdup *d, seg_buf *post, uint64_t off)
{
    uint64_t len = post->n - off;
    if (len < 8 || post->oom || d->given_up)
        return off; /* too short to be worth an entry */
    if (!d->tab.slot && idtab_init(&d->tab, 256))
        return off;
    pdup_ent *ne = seg_grow(d->e, d->n, &d->cap, 128, sizeof *ne);
    if (!ne) {
        d->given_up = 1;
        return off;
    }
    d->e = ne;
    d->post = post;
    uint64_t h = seg_hash64(post->p + off, len);
    uint32_t *slot = idtab_probe(&d->tab, h, pdup_eq, d, post->p + off, len);
    if (*slot) {
        seg_buf_truncate(post, off);
        return d->e[*slot - 1].off;
    }
    d->e[d->n] = (pdup_ent){h, off, len};
    *slot = ++d->n;
    if (idtab_grow(&d->tab, d->n, pdup_hash, d))
        d->given_up = 1; /* a table that cannot grow must not fill */
    return off;
}

static void enc_dict_and_postings(build *x, const uint32_t *order, seg_buf *dict, seg_buf *post)
{
    uint32_t n = x->nterms, nb = (n + SEG_DICT_BLOCK - 1) / SEG_DICT_BLOCK;
    seg_buf docs = {0}, pos = {0}, blocks = {0};
    pdup dup = {0};
    seg_buf_put_u32(dict, n);
    seg_buf_put_u32(dict, nb);
    const uint8_t *prev = NULL;
    uint32_t prevlen = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* terms come in key order, scattered in memory: fetch ahead the
         * term 16 places on, and the key and postings of the one 8 on */
        if (i + 16 < n)
            __builtin_prefetch(&x->terms[order[i + 16]]);
        if (i + 8 < n) {
            const term *ahead = &x->terms[order[i + 8]];
            __builtin_prefetch(x->keys.p + ahead->key_off);
            __builtin_prefetch(ahead->p);
        }
        const term *t = &x->terms[order[i]];
        const uint8_t *key = x->keys.p + t->key_off;
        if (i % SEG_DICT_BLOCK == 0) {
            seg_buf_put_u32(dict, (uint32_t)blocks.n);
            prev = NULL;
            prevlen = 0;
        }
        /* the key's token, prefix-shared and hex-packed, then its field
         * and kind as one varint (format: seg_format.h, TERMDICT) */
        uint32_t tlen = t->key_len - 4, shared = 0;
        if (prev)
            while (shared < prevlen && shared < tlen && prev[shared] == key[shared])
                shared++;
        int text = key[t->key_len - 1] == SEG_K_TEXT;
        seg_buf_put_varint(&blocks, shared);
        put_token_suffix(&blocks, key + shared, tlen - shared);
        uint32_t fid = (uint32_t)key[tlen + 1] << 8 | key[tlen + 2];
        seg_buf_put_varint(&blocks, fid << 2 | key[tlen + 3]);
        seg_buf_put_varint(&blocks, t->df);
        if (t->df == 1) {
            if (enc_single(t, text, &blocks))
                post->oom = 1;
        } else {
            uint64_t off = post->n;
            if (enc_postings(t, text, post, &docs, &pos))
                post->oom = 1;
            uint64_t len = post->n - off;
            seg_buf_put_varint(&blocks, pdup_share(&dup, post, off));
            seg_buf_put_varint(&blocks, len);
        }
        prev = key;
        prevlen = tlen;
    }
    seg_buf_put(dict, blocks.p, blocks.n);
    if (blocks.oom)
        dict->oom = 1;
    seg_buf_free(&docs);
    seg_buf_free(&pos);
    seg_buf_free(&blocks);
    seg_free(dup.tab.slot);
    seg_free(dup.e);
}

static void enc_numcol(fieldinfo *fi, seg_buf *o)
{
    uint32_t n = fi->nnum, nb = (n + SEG_NUM_BLOCK - 1) / SEG_NUM_BLOCK;
    int type = fi->all_int ? SEG_NUM_INT : fi->dec_scale <= SEG_NUM_MAX_SCALE ? SEG_NUM_DECIMAL : SEG_NUM_REAL;
    seg_buf_put_u32(o, n);
    seg_buf_put_u8(o, (uint8_t)type);
    if (type == SEG_NUM_DECIMAL)
        seg_buf_put_u8(o, (uint8_t)fi->dec_scale);
    seg_buf_put_u32(o, nb);
    size_t idx = o->n;
    seg_buf_reserve(o, (size_t)nb * 24);
    if (o->oom)
        return;
    o->n += (size_t)nb * 24;
    size_t data0 = o->n;
    const uint8_t *r = fi->nums.p;
    uint32_t gaps[SEG_NUM_BLOCK], rel[SEG_NUM_BLOCK];
    int64_t m[SEG_NUM_BLOCK];
    for (uint32_t blk = 0; blk < nb; blk++) {
        uint32_t s = blk * SEG_NUM_BLOCK, e = s + SEG_NUM_BLOCK < n ? s + SEG_NUM_BLOCK : n, cnt = e - s;
        uint32_t first = seg_rd_u32(r + (size_t)s * 13), prevdoc = first;
        double mn = 0, mx = 0;
        int64_t mmin = 0, mmax = 0;
        uint32_t off = (uint32_t)(o->n - data0);
        for (uint32_t k = s; k < e; k++) {
            const uint8_t *q = r + (size_t)k * 13;
            uint32_t doc = seg_rd_u32(q);
            uint64_t u = seg_rd_u64(q + 5);
            double v;
            if (q[4]) {
                v = (double)(int64_t)u;
            } else {
                memcpy(&v, &u, 8);
            }
            gaps[k - s] = doc - prevdoc;
            prevdoc = doc;
            if (type == SEG_NUM_REAL) {
                memcpy(&m[k - s], &v, 8);
            } else {
                /* integers as they are; decimals as their mantissa */
                int64_t iv = type == SEG_NUM_INT ? (int64_t)u : llround(v * seg_pow10[fi->dec_scale]);
                m[k - s] = iv;
                if (k == s || iv < mmin)
                    mmin = iv;
                if (k == s || iv > mmax)
                    mmax = iv;
            }
            if (k == s || v < mn)
                mn = v;
            if (k == s || v > mx)
                mx = v;
        }
        seg_buf_put_xpacked(o, gaps, cnt);
        if (type == SEG_NUM_REAL) {
            for (uint32_t k = 0; k < cnt; k++)
                seg_buf_put_u64(o, (uint64_t)m[k]);
        } else if ((uint64_t)mmax - (uint64_t)mmin <= UINT32_MAX) {
            /* frame of reference: the block's least value, then each
             * value's distance from it, bit-packed */
            seg_buf_put_u8(o, SEG_NUMBLK_PACKED);
            seg_buf_put_varint(o, seg_zigzag(mmin));
            for (uint32_t k = 0; k < cnt; k++)
                rel[k] = (uint32_t)((uint64_t)m[k] - (uint64_t)mmin);
            seg_buf_put_xpacked(o, rel, cnt);
        } else {
            seg_buf_put_u8(o, SEG_NUMBLK_DELTAS);
            int64_t previ = 0;
            for (uint32_t k = 0; k < cnt; k++) {
                seg_buf_put_varint(o, seg_zigzag((int64_t)((uint64_t)m[k] - (uint64_t)previ)));
                previ = m[k];
            }
        }
        if (o->oom)
            return;
        uint8_t *ie = o->p + idx + (size_t)blk * 24;
        uint64_t u;
        memcpy(&u, &mn, 8);
        seg_wr_u64(ie, u);
        memcpy(&u, &mx, 8);
        seg_wr_u64(ie + 8, u);
        seg_wr_u32(ie + 16, first);
        seg_wr_u32(ie + 20, off);
    }
}

static int kv_cmp(const void *pa, const void *pb, void *ctx)
{
    const build *x = ctx;
    const struct kv *a = &x->kv[*(const uint32_t *)pa], *b = &x->kv[*(const uint32_t *)pb];
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(x->keys.p + a->off, x->keys.p + b->off, n);
    return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

/* KEYCOL: the field's distinct values sorted, then (doc, ordinal) pairs in
 * bit-packed blocks.  ord_of is scratch of nkv entries. */
static void enc_keycol(build *x, fieldinfo *fi, uint32_t *ord_of, seg_buf *o, seg_buf *counts)
{
    size_t npairs = fi->kws.n / 8;
    const uint8_t *rec = fi->kws.p;
    /* distinct ids of this field, sorted by value */
    seg_buf ids = {0};
    for (size_t k = 0; k < npairs; k++)
        ord_of[seg_rd_u32(rec + k * 8 + 4)] = UINT32_MAX;
    for (size_t k = 0; k < npairs; k++) {
        uint32_t id = seg_rd_u32(rec + k * 8 + 4);
        if (ord_of[id] == UINT32_MAX) {
            ord_of[id] = 0;
            seg_buf_put(&ids, &id, 4);
        }
    }
    if (ids.oom) { /* values left out would all read as ordinal 0 */
        o->oom = 1;
        seg_buf_free(&ids);
        return;
    }
    uint32_t nd = (uint32_t)(ids.n / 4);
    uint32_t *d = (uint32_t *)(void *)ids.p;
    if (nd > 1)
        qsort_r(d, nd, 4, kv_cmp, x);
    seg_buf_put_u32(o, (uint32_t)npairs);
    seg_buf_put_u32(o, nd);
    uint32_t off = 0;
    for (uint32_t i = 0; i < nd; i++) {
        ord_of[d[i]] = i;
        seg_buf_put_u32(o, off);
        off += x->kv[d[i]].len;
    }
    seg_buf_put_u32(o, off);
    for (uint32_t i = 0; i < nd; i++)
        seg_buf_put(o, x->keys.p + x->kv[d[i]].off, x->kv[d[i]].len);
    uint32_t nb = (uint32_t)((npairs + SEG_KEY_BLOCK - 1) / SEG_KEY_BLOCK);
    seg_buf_put_u32(o, nb);
    size_t idx = o->n;
    if (seg_buf_reserve(o, (size_t)nb * 8)) {
        seg_buf_free(&ids);
        return;
    }
    o->n += (size_t)nb * 8;
    size_t data0 = o->n;
    /* KEYCOUNT: per ordinal, the docs holding it (pairs come in doc order) */
    uint32_t *cnt = seg_calloc(nd ? nd : 1, sizeof *cnt), *lastdoc = seg_calloc(nd ? nd : 1, sizeof *lastdoc);
    if (!cnt || !lastdoc) {
        seg_free(cnt);
        seg_free(lastdoc);
        o->oom = counts->oom = 1; /* the pairs are not written */
        seg_buf_free(&ids);
        return;
    }
    uint32_t docs[SEG_KEY_BLOCK], ords[SEG_KEY_BLOCK];
    for (uint32_t b = 0; b < nb; b++) {
        size_t s = (size_t)b * SEG_KEY_BLOCK, e = s + SEG_KEY_BLOCK < npairs ? s + SEG_KEY_BLOCK : npairs;
        uint32_t first = seg_rd_u32(rec + s * 8), prevdoc = first;
        for (size_t k = s; k < e; k++) {
            uint32_t doc = seg_rd_u32(rec + k * 8), ord = ord_of[seg_rd_u32(rec + k * 8 + 4)];
            docs[k - s] = doc - prevdoc; /* pairs come in doc order */
            prevdoc = doc;
            ords[k - s] = ord;
            if (lastdoc[ord] != doc + 1) { /* a doc counts once per value */
                lastdoc[ord] = doc + 1;
                cnt[ord]++;
            }
        }
        uint32_t boff = (uint32_t)(o->n - data0);
        seg_buf_put_xpacked(o, docs, e - s);
        seg_buf_put_xpacked(o, ords, e - s);
        if (o->oom)
            break;
        seg_wr_u32(o->p + idx + (size_t)b * 8, first);
        seg_wr_u32(o->p + idx + (size_t)b * 8 + 4, boff);
    }
    seg_buf_put_u32(counts, nd);
    for (uint32_t i = 0; i < nd; i++)
        seg_buf_put_u32(counts, cnt[i]);
    seg_free(cnt);
    seg_free(lastdoc);
    seg_buf_free(&ids);
}

/* The store's dictionary: whole records of events spread evenly over the
 * segment, at most a 32nd of its records and SEG_STORE_DICT bytes, laid
 * out by columns as the blocks are (sh; raw when they cannot be); every
 * block is compressed with it as a prefix, so small blocks compress about
 * as well as large ones and a lookup decodes only a small block.  Empty
 * (no STOREDICT section) when the events are too few for it to pay. */
static int store_dict(const seg_builder *b, const uint32_t *order, uint32_t n, seg_shaper *sh, seg_buf *o)
{
    uint64_t total = 4 * (uint64_t)n; /* records: ~4 bytes of lengths each */
    if (n == b->n)
        total += b->ev_bytes;
    else
        for (uint32_t d = 0; d < n; d++)
            total += b->ev[order[d]].len + b->ev[order[d]].id_len;
    if (total < 4 * (uint64_t)SEG_STORE_DICT)
        return 0;
    /* at most a 32nd of the records: blocks laid out by columns compress
     * repetitive logs so well that a full 64 KiB dictionary can outweigh
     * a small segment's whole store (the HDFS sample: 16 KiB of blocks, 50
     * KiB of dictionary) */
    uint64_t cap = total / 32 < SEG_STORE_DICT ? total / 32 : SEG_STORE_DICT;
    /* take every step-th event, step chosen to spread the sample */
    uint64_t avg = total / n + 1;
    uint64_t want = cap / avg + 1;
    uint32_t step = (uint32_t)(n / want);
    if (step == 0)
        step = 1;
    for (uint32_t d = step / 2; d < n; d += step) {
        const ev *e = &b->ev[order[d]];
        if (o->n + e->len + e->id_len + 20 > cap)
            continue;
        seg_buf_put_varint(o, e->id_len);
        seg_buf_put(o, e->id, e->id_len);
        seg_buf_put_varint(o, e->len);
        seg_buf_put(o, e->json, e->len);
    }
    if (o->oom)
        return -1;
    /* laid out by columns as the blocks will be, so that their columns
     * find their kind in it (raw when the sample cannot be) */
    if (sh) {
        seg_buf cols = {0};
        int rc = seg_shape_split(sh, o->p, o->n, &cols);
        if (rc == SEG_OK) {
            seg_buf_reset(o);
            seg_buf_put(o, cols.p, cols.n < SEG_STORE_DICT ? cols.n : SEG_STORE_DICT);
        }
        seg_buf_free(&cols);
        if (rc == SEG_ENOMEM || o->oom)
            return -1;
    }
    /* zstd would take bytes starting with its dictionary magic for a
     * formatted dictionary (unlikely from either layout; belt and braces) */
    if (o->n >= 4 && seg_rd_u32(o->p) == ZSTD_MAGIC_DICTIONARY)
        o->n = 0;
    return 0;
}

/* Compresses one raw block into *cbuf (grown as needed): zstd with the
 * segment's dictionary for files, LZ4's fast encoder for in-memory
 * segments.  Returns the compressed length, or -1. */
static int store_compress(const seg_buf *raw, int codec, int level, ZSTD_CCtx *zc, const ZSTD_CDict *zd,
                          char **cbuf, size_t *cap)
{
    size_t need = codec != SEG_CODEC_LZ4 ? ZSTD_compressBound(raw->n) : (size_t)LZ4_compressBound((int)raw->n);
    if (need == 0 || need > INT32_MAX)
        return -1;
    if (need > *cap) {
        char *c = seg_realloc(*cbuf, need);
        if (!c)
            return -1;
        *cbuf = c;
        *cap = need;
    }
    if (codec == SEG_CODEC_LZ4)
        return LZ4_compress_default((const char *)raw->p, *cbuf, (int)raw->n, (int)*cap);
    size_t cl = zd ? ZSTD_compress_usingCDict(zc, *cbuf, *cap, raw->p, raw->n, zd)
                   : ZSTD_compressCCtx(zc, *cbuf, *cap, raw->p, raw->n, level);
    return ZSTD_isError(cl) ? -1 : (int)cl;
}

static int enc_store(const seg_builder *b, const uint32_t *order, uint32_t n, int fast, seg_buf *o, seg_buf *dict)
{
    seg_buf raw = {0}, cols = {0}, idx = {0}, data = {0};
    seg_shaper *sh = NULL;
    uint32_t nb = 0, first = 0;
    char *cbuf = NULL;
    size_t cap = 0;
    int rc = 0;
    int codec = fast ? SEG_CODEC_LZ4 : SEG_CODEC_ZSTD;
    int compact = !fast && b->compact;
    uint32_t block = fast ? SEG_STORE_BLOCK_MEM : compact ? SEG_STORE_BLOCK_COMPACT : SEG_STORE_BLOCK;
    int level = compact ? SEG_STORE_ZSTD_LEVEL_COMPACT : SEG_STORE_ZSTD_LEVEL;
    ZSTD_CCtx *zc = NULL;
    ZSTD_CDict *zd = NULL;
    dict->n = 0;
    if (!fast) {
        zc = ZSTD_createCCtx();
        sh = seg_shaper_new();
        if (!zc || !sh || store_dict(b, order, n, sh, dict) ||
            (dict->n && !(zd = ZSTD_createCDict(dict->p, dict->n, level))))
            rc = -1;
    }
    for (uint32_t d = 0; d <= n && rc == 0; d++) {
        if (d == n || raw.n >= block) {
            if (raw.n) {
                /* files: the block laid out by columns (seg_shape.c),
                 * or raw when it cannot be */
                int bc = codec;
                const seg_buf *in = &raw;
                if (sh) {
                    seg_buf_reset(&cols);
                    int sr = seg_shape_split(sh, raw.p, raw.n, &cols);
                    if (sr == SEG_OK) {
                        bc = SEG_CODEC_ZSTD_COLS;
                        in = &cols;
                    } else if (sr != 1) {
                        rc = -1;
                        break;
                    }
                }
                int cl = store_compress(in, bc, level, zc, zd, &cbuf, &cap);
                if (cl <= 0) {
                    rc = -1;
                    break;
                }
                seg_buf_put_u32(&idx, first);
                seg_buf_put_u32(&idx, (uint32_t)raw.n);
                seg_buf_put_u64(&idx, data.n);
                seg_buf_put_u32(&idx, (uint32_t)cl);
                seg_buf_put_u32(&idx, (uint32_t)bc);
                seg_buf_put(&data, cbuf, (size_t)cl);
                nb++;
                raw.n = 0;
            }
            first = d;
            if (d == n)
                break;
        }
        const ev *e = &b->ev[order[d]];
        seg_buf_put_varint(&raw, e->id_len);
        seg_buf_put(&raw, e->id, e->id_len);
        seg_buf_put_varint(&raw, e->len);
        seg_buf_put(&raw, e->json, e->len);
        if (raw.oom)
            rc = -1;
    }
    seg_buf_put_u32(o, n);
    seg_buf_put_u32(o, nb);
    seg_buf_put(o, idx.p, idx.n);
    seg_buf_put(o, data.p, data.n);
    if (idx.oom || data.oom)
        rc = -1;
    ZSTD_freeCDict(zd);
    ZSTD_freeCCtx(zc);
    seg_shaper_free(sh);
    seg_buf_free(&cols);
    seg_buf_free(&raw);
    seg_buf_free(&idx);
    seg_buf_free(&data);
    seg_free(cbuf);
    return rc;
}

static void enc_ids(const seg_builder *b, const uint32_t *order, uint32_t n, seg_buf *o)
{
    uint32_t cnt = 0;
    for (uint32_t d = 0; d < n; d++)
        cnt += b->ev[order[d]].explicit_id;
    idrec *r = seg_malloc((size_t)cnt * sizeof *r);
    if (!r) {
        o->oom = 1;
        return;
    }
    uint32_t k = 0;
    for (uint32_t d = 0; d < n; d++) {
        const ev *e = &b->ev[order[d]];
        if (e->explicit_id) {
            r[k].h = seg_hash64(e->id, e->id_len);
            r[k].doc = d;
            k++;
        }
    }
    if (cnt > 1)
        qsort(r, cnt, sizeof *r, id_cmp);
    seg_buf_put_u32(o, cnt);
    for (uint32_t i = 0; i < cnt; i++) {
        seg_buf_put_u64(o, r[i].h);
        seg_buf_put_u32(o, r[i].doc);
    }
    seg_free(r);
}

/* ------------------------------------------------------------------ */
/* Writing the file                                                     */
/* ------------------------------------------------------------------ */

typedef struct wfile {
    int fd;
    seg_buf *mem;          /* writing to memory instead of fd */
    uint64_t off;
    seg_buf dir;
    uint32_t nsec;
    const char *path;
    seg_err *e;
} wfile;

static int wr_all(wfile *w, const void *p, size_t n)
{
    if (w->mem) {
        seg_buf_put(w->mem, p, n);
        w->off += n;
        return w->mem->oom ? seg_err_set(w->e, SEG_ENOMEM, NULL, "out of memory") : SEG_OK;
    }
    const uint8_t *q = p;
    while (n) {
        ssize_t k = write(w->fd, q, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return seg_err_set(w->e, SEG_EIO, w->path, "write: %s", strerror(errno));
        }
        q += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
    return SEG_OK;
}

/* A section of bytes: its directory entry, then the bytes. */
static int wr_bytes(wfile *w, uint32_t kind, uint32_t arg, const uint8_t *p, size_t n)
{
    seg_buf_put_u32(&w->dir, kind);
    seg_buf_put_u32(&w->dir, arg);
    seg_buf_put_u64(&w->dir, w->off);
    seg_buf_put_u64(&w->dir, n);
    seg_buf_put_u64(&w->dir, seg_hash64(p, n));
    w->nsec++;
    return wr_all(w, p, n);
}

static int wr_section(wfile *w, uint32_t kind, uint32_t arg, seg_buf *s)
{
    if (s->oom)
        return seg_err_set(w->e, SEG_ENOMEM, w->path, "out of memory building section %u", kind);
    int rc = wr_bytes(w, kind, arg, s->p, s->n);
    seg_buf_free(s);
    return rc;
}

/* After the last section: writes the directory and fills the header
 * (HEADER in seg_format.h), which goes in place at the end. */
static int wr_tail(wfile *w, uint8_t *hdr, uint32_t flags, uint32_t ndocs, int64_t tmin, int64_t tmax)
{
    uint64_t diroff = w->off;
    if (w->dir.oom)
        return seg_err_set(w->e, SEG_ENOMEM, w->path, "out of memory");
    int rc = wr_all(w, w->dir.p, w->dir.n);
    if (rc)
        return rc;
    memcpy(hdr, SEG_MAGIC, 8);
    seg_wr_u32(hdr + 8, SEG_VERSION);
    seg_wr_u32(hdr + 12, flags);
    seg_wr_u32(hdr + 16, ndocs);
    seg_wr_u32(hdr + 20, w->nsec);
    seg_wr_u64(hdr + 24, (uint64_t)tmin);
    seg_wr_u64(hdr + 32, (uint64_t)tmax);
    seg_wr_u64(hdr + 40, diroff);
    seg_wr_u64(hdr + 48, seg_hash64(w->dir.p, w->dir.n));
    seg_wr_u64(hdr + 56, seg_hash64(hdr, 56));
    return SEG_OK;
}

/* On failure: the temporary file closed and removed. */
static void wr_abandon(wfile *w, const char *tmp)
{
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
        unlink(tmp);
    }
}

/* Puts the header in place, fsyncs and closes the temporary file, renames
 * it to path and fsyncs the directory. */
static int wr_finish(wfile *w, const uint8_t *hdr, const char *tmp, const char *path)
{
    if (pwrite(w->fd, hdr, SEG_HEADER_SIZE, 0) != (ssize_t)SEG_HEADER_SIZE)
        return seg_err_set(w->e, SEG_EIO, tmp, "write header: %s", strerror(errno));
    if (fsync(w->fd) != 0)
        return seg_err_set(w->e, SEG_EIO, tmp, "fsync: %s", strerror(errno));
    close(w->fd);
    w->fd = -1;
    if (seg_failpoint("segment-before-rename"))
        return seg_err_set(w->e, SEG_EIO, path, "rename: input/output error (failpoint)");
    if (rename(tmp, path) != 0)
        return seg_err_set(w->e, SEG_EIO, path, "rename: %s", strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl)
        *sl = 0;
    else
        strcpy(dir, ".");
    return seg_fsync_dir(dir, w->e);
}

/* Builds the segment and writes it to path (temp, fsync, rename) or, when
 * mem is set, into mem. */
/* Builds the segment of events slice[0..n) of the builder's order (time
 * descending, from seg_builder_order), or of all its events when slice is
 * NULL. */
static int build_write(seg_builder *b, const uint32_t *slice, uint32_t n, seg_tok *tok, seg_json *js,
                       const char *path, seg_buf *mem, const seg_index_only *only, uint64_t *bytes_out,
                       seg_err *e)
{
    int rc = SEG_OK;
    build x;
    memset(&x, 0, sizeof x);
    x.b = b;
    x.tok = tok;
    x.only = only;
    uint32_t *order = NULL, *torder = NULL;
    seg_buf sec = {0}, post = {0};
    char tmp[4096];
    wfile w = {.fd = -1, .mem = mem, .path = path ? path : "(memory)", .e = e};
    if (!path)
        path = "(memory)";

    if (!slice)
        n = b->n;
    if (n == 0)
        return seg_err_set(e, SEG_EINVAL, path, "empty segment");
    order = seg_malloc((size_t)n * sizeof *order);
    x.tmask = 4095;
    x.tslot = seg_calloc(4096, sizeof *x.tslot);
    int tabs = idtab_init(&x.ftab, 64) | idtab_init(&x.ktab, 1024);
    if (!order || !x.tslot || tabs) {
        rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
        goto out;
    }
    if (slice)
        memcpy(order, slice, (size_t)n * sizeof *order);
    else
        seg_builder_order(b, order);
    for (uint32_t d = 0; d < n; d++) {
        if (b->cancel && (d & 1023) == 0 && __atomic_load_n(b->cancel, __ATOMIC_ACQUIRE)) {
            rc = seg_err_set(e, SEG_EBUSY, path, "cancelled");
            goto out;
        }
        rc = index_doc(&x, js, d, &b->ev[order[d]], e);
        if (rc)
            goto out;
    }
    /* a column that missed an append (its buffer's sticky oom) would be
     * encoded from fewer records than it counted */
    int col_oom = 0;
    for (uint32_t f = 0; f < x.nfields; f++)
        col_oom |= x.fields[f].nums.oom | x.fields[f].kws.oom;
    torder = seg_malloc((size_t)(x.nterms ? x.nterms : 1) * sizeof *torder);
    if (!torder || x.keys.oom || col_oom || sort_terms(&x, torder)) {
        rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
        goto out;
    }

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!mem) {
        w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (w.fd < 0) {
            rc = seg_err_set(e, SEG_EIO, tmp, "create: %s", strerror(errno));
            goto out;
        }
        w.path = tmp;
    }
    uint8_t hdr[SEG_HEADER_SIZE] = {0};
    if ((rc = wr_all(&w, hdr, sizeof hdr)))
        goto out;

    enc_fields(&x, &sec);
    if ((rc = wr_section(&w, SEG_S_FIELDS, 0, &sec)))
        goto out;
    enc_times(b, order, n, &sec);
    if ((rc = wr_section(&w, SEG_S_TIMES, 0, &sec)))
        goto out;
    enc_dict_and_postings(&x, torder, &sec, &post);
    if ((rc = wr_section(&w, SEG_S_TERMDICT, 0, &sec)))
        goto out;
    if ((rc = wr_section(&w, SEG_S_POSTINGS, 0, &post)))
        goto out;
    for (uint32_t f = 0; f < x.nfields; f++) {
        if (!x.fields[f].nnum)
            continue;
        enc_numcol(&x.fields[f], &sec);
        if ((rc = wr_section(&w, SEG_S_NUMCOL, f, &sec)))
            goto out;
    }
    {
        uint32_t *ord_of = seg_malloc((size_t)(x.nkv ? x.nkv : 1) * sizeof *ord_of);
        if (!ord_of) {
            rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
            goto out;
        }
        for (uint32_t f = 0; f < x.nfields && rc == SEG_OK && !only; f++) {
            fieldinfo *fi = &x.fields[f];
            /* mostly distinct values: no column (see SEG_KEYCOL_MAX_DISTINCT) */
            uint64_t npairs = fi->kws.n / 8;
            if (!fi->kws.n || fi->no_keycol ||
                ((uint64_t)fi->nkw_distinct * 4 > npairs &&
                 (fi->nkw_distinct > SEG_KEYCOL_MIN_DISTINCT || fi->nkw_bytes > 8 * npairs)))
                continue;
            seg_buf counts = {0};
            enc_keycol(&x, &x.fields[f], ord_of, &sec, &counts);
            rc = wr_section(&w, SEG_S_KEYCOL, f, &sec);
            /* counts only where counting the pairs would cost */
            if (rc == SEG_OK && npairs >= SEG_KEYCOUNT_MIN_PAIRS)
                rc = wr_section(&w, SEG_S_KEYCOUNT, f, &counts);
            seg_buf_free(&counts);
        }
        seg_free(ord_of);
        if (rc)
            goto out;
    }
    if (!only) {
        seg_buf dict = {0};
        if (enc_store(b, order, n, mem != NULL, &sec, &dict)) {
            seg_buf_free(&dict);
            rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory compressing events");
            goto out;
        }
        if ((rc = wr_section(&w, SEG_S_STORE, 0, &sec)) == SEG_OK && dict.n)
            rc = wr_section(&w, SEG_S_STOREDICT, 0, &dict);
        seg_buf_free(&dict);
        if (rc)
            goto out;
    }
    enc_ids(b, order, n, &sec);
    if ((rc = wr_section(&w, SEG_S_IDS, 0, &sec)))
        goto out;

    /* directory, then the header in place */
    if (!mem)
        seg_failpoint("segment-mid-write");
    if ((rc = wr_tail(&w, hdr, !mem && b->compact ? SEG_FLAG_COMPACT : 0, n, b->ev[order[n - 1]].time,
                      b->ev[order[0]].time)))
        goto out;
    if (mem) {
        memcpy(mem->p, hdr, sizeof hdr);
        if (bytes_out)
            *bytes_out = w.off;
        goto out;
    }
    if ((rc = wr_finish(&w, hdr, tmp, path)))
        goto out;
    if (bytes_out)
        *bytes_out = w.off;
out:
    wr_abandon(&w, tmp);
    seg_buf_free(&sec);
    seg_buf_free(&post);
    seg_buf_free(&w.dir);
    seg_free(order);
    seg_free(torder);
    for (uint32_t i = 0; i < x.nterms; i++)
        seg_free(x.terms[i].p);
    seg_free(x.terms_mem);
    seg_free(x.tslot);
    for (uint32_t f = 0; f < x.nfields; f++) {
        seg_buf_free(&x.fields[f].nums);
        seg_buf_free(&x.fields[f].kws);
    }
    seg_free(x.fields);
    seg_free(x.ftab.slot);
    seg_free(x.kv);
    seg_free(x.ktab.slot);
    seg_free(x.vals);
    seg_free(x.vfield);
    seg_free(x.pidf);
    seg_buf_free(&x.keys);
    return rc;
}

/* seg_rewrite_compact: the events read back into a builder (doc order is
 * the order of adding, so `order` is the identity), a new STORE (and
 * STOREDICT) from them in the old STORE's place, every other section
 * copied. */
int seg_rewrite_compact(seg_reader *r, const char *path, const int *cancel, uint64_t *bytes_out, seg_err *e)
{
    /* version 3 differs from 4 only in the STORE, which is written anew:
     * its other sections are version 4's as they are */
    if (seg_reader_version(r) < 3)
        return seg_err_set(e, SEG_EVERSION, seg_reader_path(r), "a version %u segment is rebuilt, not rewritten",
                           seg_reader_version(r));
    uint32_t n = seg_reader_ndocs(r);
    int rc = SEG_OK;
    seg_builder *b = seg_builder_new();
    seg_store_cur *sc = seg_store_cur_new();
    uint32_t *order = seg_malloc(((size_t)n + 1) * sizeof *order);
    int64_t *times = seg_malloc(((size_t)n + 1) * sizeof *times);
    seg_buf sec = {0}, dict = {0};
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    wfile w = {.fd = -1, .path = tmp, .e = e};
    if (!b || !sc || !order || !times) {
        rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
        goto out;
    }
    b->compact = 1;
    if ((rc = seg_reader_times(r, 0, n, times, e)))
        goto out;
    for (uint32_t d = 0; d < n; d++) {
        if (cancel && (d & 1023) == 0 && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            rc = seg_err_set(e, SEG_EBUSY, path, "cancelled");
            goto out;
        }
        const char *id, *json;
        size_t il, jl;
        if ((rc = seg_reader_doc(r, sc, d, &id, &il, &json, &jl, e)))
            goto out;
        if ((rc = seg_builder_add(b, json, jl, times[d], id, il, 0))) {
            rc = seg_err_set(e, rc, path, "rewrite: %s", seg_strerror(rc));
            goto out;
        }
        order[d] = d;
    }
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        rc = seg_err_set(e, SEG_EIO, tmp, "create: %s", strerror(errno));
        goto out;
    }
    uint8_t hdr[SEG_HEADER_SIZE] = {0};
    if ((rc = wr_all(&w, hdr, sizeof hdr)))
        goto out;
    for (uint32_t i = 0; i < seg_reader_nsections(r); i++) {
        uint32_t kind, arg;
        const uint8_t *p;
        size_t len;
        if ((rc = seg_reader_section(r, i, &kind, &arg, &p, &len, e)))
            goto out;
        if (kind == SEG_S_STOREDICT)
            continue; /* a new one follows the new STORE */
        if (kind == SEG_S_STORE) {
            if (enc_store(b, order, n, 0, &sec, &dict)) {
                rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory compressing events");
                goto out;
            }
            if ((rc = wr_section(&w, SEG_S_STORE, 0, &sec)) ||
                (dict.n && (rc = wr_section(&w, SEG_S_STOREDICT, 0, &dict))))
                goto out;
            continue;
        }
        if ((rc = wr_bytes(&w, kind, arg, p, len))) /* straight from the mapped file */
            goto out;
    }
    if ((rc = wr_tail(&w, hdr, SEG_FLAG_COMPACT, n, seg_reader_min_time(r), seg_reader_max_time(r))) ||
        (rc = wr_finish(&w, hdr, tmp, path)))
        goto out;
    if (bytes_out)
        *bytes_out = w.off;
out:
    wr_abandon(&w, tmp);
    seg_buf_free(&sec);
    seg_buf_free(&dict);
    seg_buf_free(&w.dir);
    seg_free(order);
    seg_free(times);
    seg_store_cur_free(sc);
    seg_builder_free(b);
    return rc;
}

int seg_builder_write(seg_builder *b, seg_tok *tok, seg_json *js, const char *path,
                      uint64_t *bytes_out, seg_err *e)
{
    return build_write(b, NULL, 0, tok, js, path, NULL, NULL, bytes_out, e);
}

int seg_builder_write_slice(seg_builder *b, const uint32_t *slice, uint32_t n, seg_tok *tok, seg_json *js,
                            const char *path, uint64_t *bytes_out, seg_err *e)
{
    if (!slice)
        return seg_err_set(e, SEG_EINVAL, path, "no slice");
    for (uint32_t d = 0; d < n; d++)
        if (slice[d] >= b->n)
            return seg_err_set(e, SEG_EINVAL, path, "slice names event %u of %u", slice[d], b->n);
    return build_write(b, slice, n, tok, js, path, NULL, NULL, bytes_out, e);
}

int seg_builder_write_mem(seg_builder *b, seg_tok *tok, seg_json *js, seg_buf *out, seg_err *e)
{
    return build_write(b, NULL, 0, tok, js, NULL, out, NULL, NULL, e);
}

int seg_builder_write_partial(seg_builder *b, seg_tok *tok, seg_json *js, const seg_index_only *only,
                              seg_buf *out, seg_err *e)
{
    return build_write(b, NULL, 0, tok, js, NULL, out, only, NULL, e);
}
