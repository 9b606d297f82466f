/*
 * seg_read.c -- reads segment files (format: seg_format.h).
 *
 * A reader mmaps the whole file.  At open it checks the header's magic,
 * version and checksum, and the directory's checksum and bounds.  Each
 * section's checksum is verified the first time the section is used; a
 * mismatch marks the reader failed (sticky) and every later use returns
 * SEG_ECORRUPT naming the file.  Every offset and length read from the file
 * is bounds-checked before use: hostile bytes give errors, never crashes.
 *
 * Concurrency: a reader is immutable after open except for the per-section
 * "verified" states, which are set with atomic operations; any number of
 * threads may use one reader at once.  Iterators and store cursors belong
 * to one thread.
 */
#define _GNU_SOURCE
#include "seg.h"
#include "seg_format.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

typedef struct section {
    uint32_t kind, arg;
    uint64_t off, len, sum;
    int state;                 /* 0 unchecked, 1 good, 2 bad (atomic) */
} section;

struct seg_reader {
    char *path;
    const uint8_t *map;
    size_t size;
    int in_memory;             /* map is seg_malloc'd, not mmapped */
    int refs;                  /* atomic */
    uint64_t gen;              /* unique id for cursor caches */
    uint32_t ndocs;
    uint32_t version;
    uint32_t flags;            /* header flags (SEG_FLAG_*) */
    int64_t min_time, max_time;
    section *sec;
    uint32_t nsec;
    int s_fields, s_times, s_dict, s_post, s_store, s_ids, s_sdict;  /* index or -1 */
    int *s_num;                /* per field: NUMCOL section index or -1 */
    int *s_key;                /* per field: KEYCOL section index or -1 */
    int *s_kcount;             /* per field: KEYCOUNT section index or -1 */
    seg_field *fields;
    uint32_t nfields;
    uint32_t *fslot;
    uint32_t fmask;
    int failed;
    char failmsg[256];
};

static uint64_t reader_gen;

#define CORRUPT(r, e, ...) seg_err_set((e), SEG_ECORRUPT, (r)->path, __VA_ARGS__)

static void mark_failed(seg_reader *r, const char *msg)
{
    if (!__atomic_exchange_n(&r->failed, 1, __ATOMIC_ACQ_REL))
        snprintf(r->failmsg, sizeof r->failmsg, "%s", msg);
}

int seg_reader_failed(const seg_reader *r, seg_err *e)
{
    if (!__atomic_load_n(&r->failed, __ATOMIC_ACQUIRE))
        return 0;
    seg_err_set(e, SEG_ECORRUPT, r->path, "%s", r->failmsg);
    return 1;
}

/* Packed runs of the reader's version: with exceptions from version 3 on
 * (seg_get_xpacked), plain before (seg_get_packed). */
static int get_packed_v(const seg_reader *r, seg_cur *c, uint32_t *out, size_t n)
{
    return r->version >= 3 ? seg_get_xpacked(c, out, n) : seg_get_packed(c, out, n);
}

/* Returns the bytes of section i after verifying its checksum once. */
static int sec_get(seg_reader *r, int i, seg_cur *c, seg_err *e)
{
    if (i < 0) {
        mark_failed(r, "a required section is missing");
        return CORRUPT(r, e, "a required section is missing");
    }
    section *s = &r->sec[i];
    int st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (st == 0) {
        st = seg_hash64(r->map + s->off, s->len) == s->sum ? 1 : 2;
        __atomic_store_n(&s->state, st, __ATOMIC_RELEASE);
        if (st == 2) {
            char m[128];
            snprintf(m, sizeof m, "checksum mismatch in section %u (kind %u)", (unsigned)i, s->kind);
            mark_failed(r, m);
        }
    }
    if (st == 2)
        return CORRUPT(r, e, "checksum mismatch in section %u (kind %u)", (unsigned)i, s->kind);
    c->p = r->map + s->off;
    c->end = c->p + s->len;
    c->bad = 0;
    return SEG_OK;
}

static int parse_fields(seg_reader *r, seg_err *e)
{
    seg_cur c;
    int rc = sec_get(r, r->s_fields, &c, e);
    if (rc)
        return rc;
    uint32_t n = seg_get_u32(&c);
    if (c.bad || n > SEG_MAX_FIELDS || (uint64_t)n * 27 > (uint64_t)(c.end - c.p))
        return CORRUPT(r, e, "bad field count");
    r->fields = seg_calloc(n ? n : 1, sizeof *r->fields);
    uint32_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    r->fslot = seg_calloc(cap, sizeof *r->fslot);
    r->s_num = seg_malloc((n ? n : 1) * sizeof(int));
    r->s_key = seg_malloc((n ? n : 1) * sizeof(int));
    r->s_kcount = seg_malloc((n ? n : 1) * sizeof(int));
    if (!r->fields || !r->fslot || !r->s_num || !r->s_key || !r->s_kcount)
        return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
    r->fmask = cap - 1;
    for (uint32_t f = 0; f < n; f++) {
        seg_field *fi = &r->fields[f];
        fi->name_len = seg_get_u16(&c);
        fi->name = (const char *)seg_get_bytes(&c, fi->name_len);
        fi->flags = seg_get_u8(&c);
        fi->docs = seg_get_u32(&c);
        fi->nnum = seg_get_u32(&c);
        fi->num_min = seg_get_f64(&c);
        fi->num_max = seg_get_f64(&c);
        if (c.bad || fi->docs > r->ndocs)
            return CORRUPT(r, e, "bad field entry %u", f);
        r->s_num[f] = -1;
        r->s_key[f] = -1;
        r->s_kcount[f] = -1;
        uint32_t j = (uint32_t)seg_hash64(fi->name, fi->name_len) & r->fmask;
        while (r->fslot[j])
            j = (j + 1) & r->fmask;
        r->fslot[j] = f + 1;
    }
    r->nfields = n;
    return SEG_OK;
}

static int reader_init(seg_reader *r, seg_err *e);

int seg_reader_open(const char *path, seg_reader **out, seg_err *e)
{
    *out = NULL;
    seg_reader *r = seg_calloc(1, sizeof *r);
    if (!r)
        return seg_err_set(e, SEG_ENOMEM, path, "out of memory");
    r->path = seg_strndup(path, strlen(path));
    r->refs = 1;
    int rc = SEG_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = seg_err_set(e, errno == ENOENT ? SEG_ENOENT : SEG_EIO, path, "open: %s", strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = seg_err_set(e, SEG_EIO, path, "stat: %s", strerror(errno));
        close(fd);
        goto fail;
    }
    r->size = (size_t)st.st_size;
    if (r->size < SEG_HEADER_SIZE) {
        close(fd);
        rc = CORRUPT(r, e, "file too short for a segment header (%zu bytes)", r->size);
        goto fail;
    }
    void *m = mmap(NULL, r->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        rc = seg_err_set(e, SEG_EIO, path, "mmap: %s", strerror(errno));
        goto fail;
    }
    r->map = m;
    if ((rc = reader_init(r, e)))
        goto fail;
    *out = r;
    return SEG_OK;
fail:
    seg_reader_close(r);
    return rc;
}

int seg_reader_open_mem(const char *name, uint8_t *buf, size_t n, seg_reader **out, seg_err *e)
{
    *out = NULL;
    seg_reader *r = seg_calloc(1, sizeof *r);
    if (!r) {
        seg_free(buf);
        return seg_err_set(e, SEG_ENOMEM, name, "out of memory");
    }
    r->path = seg_strndup(name, strlen(name));
    r->refs = 1;
    r->in_memory = 1;
    r->map = buf;
    r->size = n;
    int rc = n < SEG_HEADER_SIZE ? CORRUPT(r, e, "too short for a segment header") : reader_init(r, e);
    if (rc) {
        seg_reader_close(r);
        return rc;
    }
    *out = r;
    return SEG_OK;
}

/* Checks the header and directory of r->map and loads the field table. */
static int reader_init(seg_reader *r, seg_err *e)
{
    const char *path = r->path;
    int rc = SEG_OK;
    r->s_fields = r->s_times = r->s_dict = r->s_post = r->s_store = r->s_ids = r->s_sdict = -1;
    r->gen = __atomic_add_fetch(&reader_gen, 1, __ATOMIC_RELAXED);
    const uint8_t *h = r->map;
    if (memcmp(h, SEG_MAGIC, 8) != 0) {
        rc = seg_err_set(e, SEG_EVERSION, path, "not a logdex segment (bad magic)");
        goto fail;
    }
    if (seg_hash64(h, 56) != seg_rd_u64(h + 56)) {
        rc = CORRUPT(r, e, "header checksum mismatch");
        goto fail;
    }
    uint32_t ver = seg_rd_u32(h + 8);
    if (ver < SEG_VERSION_MIN || ver > SEG_VERSION) {
        rc = seg_err_set(e, SEG_EVERSION, path, "segment version %u, this build reads %u to %u", ver,
                         SEG_VERSION_MIN, SEG_VERSION);
        goto fail;
    }
    r->version = ver;
    r->flags = seg_rd_u32(h + 12);
    r->ndocs = seg_rd_u32(h + 16);
    r->nsec = seg_rd_u32(h + 20);
    r->min_time = (int64_t)seg_rd_u64(h + 24);
    r->max_time = (int64_t)seg_rd_u64(h + 32);
    uint64_t diroff = seg_rd_u64(h + 40);
    if (r->nsec > 1u << 20 || diroff > r->size ||
        (uint64_t)r->nsec * SEG_DIRENT_SIZE > r->size - diroff) {
        rc = CORRUPT(r, e, "section directory out of bounds");
        goto fail;
    }
    if (seg_hash64(r->map + diroff, (size_t)r->nsec * SEG_DIRENT_SIZE) != seg_rd_u64(h + 48)) {
        rc = CORRUPT(r, e, "section directory checksum mismatch");
        goto fail;
    }
    r->sec = seg_calloc(r->nsec ? r->nsec : 1, sizeof *r->sec);
    if (!r->sec) {
        rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < r->nsec; i++) {
        const uint8_t *d = r->map + diroff + (size_t)i * SEG_DIRENT_SIZE;
        section *s = &r->sec[i];
        s->kind = seg_rd_u32(d);
        s->arg = seg_rd_u32(d + 4);
        s->off = seg_rd_u64(d + 8);
        s->len = seg_rd_u64(d + 16);
        s->sum = seg_rd_u64(d + 24);
        if (s->off > r->size || s->len > r->size - s->off) {
            rc = CORRUPT(r, e, "section %u out of bounds", i);
            goto fail;
        }
        int *slot = NULL;
        switch (s->kind) {
        case SEG_S_FIELDS: slot = &r->s_fields; break;
        case SEG_S_TIMES: slot = &r->s_times; break;
        case SEG_S_TERMDICT: slot = &r->s_dict; break;
        case SEG_S_POSTINGS: slot = &r->s_post; break;
        case SEG_S_STORE: slot = &r->s_store; break;
        case SEG_S_IDS: slot = &r->s_ids; break;
        case SEG_S_STOREDICT: slot = &r->s_sdict; break;
        default: break;
        }
        if (slot)
            *slot = (int)i;
    }
    if (r->ndocs == 0 || r->min_time > r->max_time) {
        rc = CORRUPT(r, e, "bad header: %u events, time range inverted", r->ndocs);
        goto fail;
    }
    /* every event takes at least a byte of the time column (a varint, or
     * 12 bytes in the block index for a block's first): a header claiming
     * more events than that is damaged, and readers size per-event arrays
     * by this count */
    if (r->s_times < 0 || r->ndocs > r->sec[r->s_times].len) {
        rc = CORRUPT(r, e, "bad header: %u events, more than the time column holds", r->ndocs);
        goto fail;
    }
    if ((rc = parse_fields(r, e)))
        goto fail;
    for (uint32_t i = 0; i < r->nsec; i++)
        if (r->sec[i].kind == SEG_S_NUMCOL) {
            if (r->sec[i].arg >= r->nfields) {
                rc = CORRUPT(r, e, "numeric column for unknown field %u", r->sec[i].arg);
                goto fail;
            }
            r->s_num[r->sec[i].arg] = (int)i;
        } else if (r->sec[i].kind == SEG_S_KEYCOL) {
            if (r->sec[i].arg >= r->nfields) {
                rc = CORRUPT(r, e, "keyword column for unknown field %u", r->sec[i].arg);
                goto fail;
            }
            r->s_key[r->sec[i].arg] = (int)i;
        } else if (r->sec[i].kind == SEG_S_KEYCOUNT && r->version >= 2) {
            if (r->sec[i].arg >= r->nfields) {
                rc = CORRUPT(r, e, "keyword counts for unknown field %u", r->sec[i].arg);
                goto fail;
            }
            r->s_kcount[r->sec[i].arg] = (int)i;
        }
fail:
    return rc;
}

void seg_reader_close(seg_reader *r)
{
    if (!r)
        return;
    if (r->map && r->in_memory)
        seg_free((void *)r->map);
    else if (r->map)
        munmap((void *)r->map, r->size);
    seg_free(r->path);
    seg_free(r->sec);
    seg_free(r->fields);
    seg_free(r->fslot);
    seg_free(r->s_num);
    seg_free(r->s_key);
    seg_free(r->s_kcount);
    seg_free(r);
}

void seg_reader_ref(seg_reader *r) { __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED); }

void seg_reader_unref(seg_reader *r)
{
    if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
        seg_reader_close(r);
}

struct seg_set {
    int refs;                  /* atomic */
    size_t n;
    seg_reader *r[];
};

seg_set *seg_set_new(seg_reader *const *r, size_t n)
{
    seg_set *s = seg_malloc(sizeof *s + n * sizeof(seg_reader *));
    if (!s)
        return NULL;
    s->refs = 1;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->r[i] = r[i];
        seg_reader_ref(r[i]);
    }
    return s;
}

void seg_set_ref(seg_set *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED); }

void seg_set_unref(seg_set *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        seg_reader_unref(s->r[i]);
    seg_free(s);
}

size_t seg_set_count(const seg_set *s) { return s->n; }
seg_reader *seg_set_at(const seg_set *s, size_t i) { return s->r[i]; }

const char *seg_reader_path(const seg_reader *r) { return r->path; }
uint32_t seg_reader_ndocs(const seg_reader *r) { return r->ndocs; }
int64_t seg_reader_min_time(const seg_reader *r) { return r->min_time; }
int64_t seg_reader_max_time(const seg_reader *r) { return r->max_time; }
uint64_t seg_reader_bytes(const seg_reader *r) { return r->size; }
uint32_t seg_reader_flags(const seg_reader *r) { return r->flags; }
uint32_t seg_reader_version(const seg_reader *r) { return r->version; }
uint32_t seg_reader_nsections(const seg_reader *r) { return r->nsec; }

int seg_reader_section(seg_reader *r, uint32_t i, uint32_t *kind, uint32_t *arg, const uint8_t **p, size_t *n,
                       seg_err *e)
{
    if (i >= r->nsec)
        return seg_err_set(e, SEG_EINVAL, r->path, "no section %u", i);
    seg_cur c;
    if (sec_get(r, (int)i, &c, e))
        return SEG_ECORRUPT;
    *kind = r->sec[i].kind;
    *arg = r->sec[i].arg;
    *p = c.p;
    *n = (size_t)(c.end - c.p);
    return SEG_OK;
}
uint32_t seg_reader_nfields(const seg_reader *r) { return r->nfields; }
const seg_field *seg_reader_field(const seg_reader *r, uint32_t id) { return id < r->nfields ? &r->fields[id] : NULL; }

int seg_reader_field_find(seg_reader *r, const char *name, size_t n)
{
    uint32_t j = (uint32_t)seg_hash64(name, n) & r->fmask;
    while (r->fslot[j]) {
        const seg_field *f = &r->fields[r->fslot[j] - 1];
        if (f->name_len == n && !memcmp(f->name, name, n))
            return (int)(r->fslot[j] - 1);
        j = (j + 1) & r->fmask;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Times                                                                */
/* ------------------------------------------------------------------ */

/* Decodes time block blk into t[] (up to 128); returns count or -1. */
/* The TIMES header: leaves c at the block index. */
static int times_open(seg_reader *r, seg_cur *c, uint32_t *nb, uint64_t *unit, seg_err *e)
{
    if (sec_get(r, r->s_times, c, e))
        return -1;
    uint32_t n = seg_get_u32(c);
    *nb = seg_get_u32(c);
    *unit = r->version >= 2 ? seg_get_u64(c) : 1;
    if (c->bad || n != r->ndocs || *nb != (n + SEG_TIME_BLOCK - 1) / SEG_TIME_BLOCK || *unit == 0 ||
        *unit > (uint64_t)INT64_MAX || (uint64_t)*nb * 12 > (uint64_t)(c->end - c->p)) {
        mark_failed(r, "bad time column");
        return CORRUPT(r, e, "bad time column"), -1;
    }
    return 0;
}

static int time_block(seg_reader *r, uint32_t blk, int64_t *t, seg_err *e)
{
    seg_cur c;
    uint32_t nb;
    uint64_t unit;
    if (times_open(r, &c, &nb, &unit, e))
        return -1;
    uint32_t n = r->ndocs;
    if (blk >= nb) {
        mark_failed(r, "bad time column");
        return CORRUPT(r, e, "bad time column"), -1;
    }
    const uint8_t *ix = c.p + (size_t)blk * 12;
    const uint8_t *data = c.p + (size_t)nb * 12;
    uint32_t off = seg_rd_u32(ix + 8);
    if (off > (size_t)(c.end - data)) {
        mark_failed(r, "bad time block offset");
        return CORRUPT(r, e, "bad time block offset"), -1;
    }
    seg_cur d = {data + off, c.end, 0};
    uint32_t cnt = n - blk * SEG_TIME_BLOCK < SEG_TIME_BLOCK ? n - blk * SEG_TIME_BLOCK : SEG_TIME_BLOCK;
    t[0] = (int64_t)seg_rd_u64(ix);
    for (uint32_t k = 1; k < cnt; k++) {
        uint64_t g = seg_get_varint(&d);
        /* room below t[k - 1] before INT64_MIN, computed unsigned */
        uint64_t room = (uint64_t)t[k - 1] - (uint64_t)INT64_MIN;
        if (g > (uint64_t)INT64_MAX / unit || g * unit > room) {
            d.bad = 1;
            break;
        }
        t[k] = t[k - 1] - (int64_t)(g * unit);
    }
    if (d.bad) {
        mark_failed(r, "truncated time block");
        return CORRUPT(r, e, "truncated time block"), -1;
    }
    return (int)cnt;
}

int seg_reader_time(seg_reader *r, uint32_t doc, int64_t *t, seg_err *e)
{
    int64_t buf[SEG_TIME_BLOCK];
    if (doc >= r->ndocs)
        return seg_err_set(e, SEG_EINVAL, r->path, "doc %u out of range", doc);
    if (time_block(r, doc / SEG_TIME_BLOCK, buf, e) < 0)
        return SEG_ECORRUPT;
    *t = buf[doc % SEG_TIME_BLOCK];
    return SEG_OK;
}

/* First doc whose time satisfies time <= t (strict: time < t). */
static int time_seek(seg_reader *r, int64_t t, int strict, uint32_t *doc, seg_err *e)
{
    seg_cur c;
    uint32_t nb, n = r->ndocs;
    uint64_t unit;
    if (times_open(r, &c, &nb, &unit, e))
        return SEG_ECORRUPT;
#define OK_T(x) (strict ? (x) < t : (x) <= t)
    /* first block whose first time satisfies; the answer is in the block before or at its start */
    uint32_t lo = 0, hi = nb;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int64_t ft = (int64_t)seg_rd_u64(c.p + (size_t)mid * 12);
        if (OK_T(ft))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0) {
        *doc = 0;
        return SEG_OK;
    }
    int64_t buf[SEG_TIME_BLOCK];
    int cnt = time_block(r, lo - 1, buf, e);
    if (cnt < 0)
        return SEG_ECORRUPT;
    for (int k = 0; k < cnt; k++)
        if (OK_T(buf[k])) {
            *doc = (lo - 1) * SEG_TIME_BLOCK + (uint32_t)k;
            return SEG_OK;
        }
    *doc = lo < nb ? lo * SEG_TIME_BLOCK : n;
#undef OK_T
    return SEG_OK;
}

int seg_reader_time_seek_le(seg_reader *r, int64_t t, uint32_t *doc, seg_err *e) { return time_seek(r, t, 0, doc, e); }
int seg_reader_time_seek_lt(seg_reader *r, int64_t t, uint32_t *doc, seg_err *e) { return time_seek(r, t, 1, doc, e); }

/* ------------------------------------------------------------------ */
/* Term dictionary                                                      */
/* ------------------------------------------------------------------ */

struct seg_dict_iter {
    seg_reader *r;
    const uint8_t *blocks, *end;
    const uint8_t *offs;
    uint32_t nterms, nblocks;
    uint32_t blk, in_blk;      /* current block, entries consumed in it */
    seg_cur c;
    uint8_t key[SEG_MAX_KEY + 16];
    uint32_t key_len;
    const uint8_t *from;
    size_t from_len;
    int done;
};

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int dict_open_block(seg_dict_iter *it, uint32_t blk)
{
    uint32_t off = seg_rd_u32(it->offs + (size_t)blk * 4);
    if (off > (size_t)(it->end - it->blocks))
        return -1;
    it->blk = blk;
    it->in_blk = 0;
    it->c.p = it->blocks + off;
    it->c.end = it->end;
    it->c.bad = 0;
    return 0;
}

/* Reads the next entry into it->key and *t.  1 ok, 0 end, -1 corrupt. */
static int dict_read(seg_dict_iter *it, seg_term *t)
{
    uint32_t per = SEG_DICT_BLOCK;
    uint64_t index = (uint64_t)it->blk * per + it->in_blk;
    if (index >= it->nterms)
        return 0;
    if (it->in_blk == per) {
        if (it->blk + 1 >= it->nblocks || dict_open_block(it, it->blk + 1))
            return -1;
    }
    seg_cur *c = &it->c;
    if (it->r->version >= 3) {
        /* token: shared prefix, suffix (maybe hex-packed); then field and
         * kind; the canonical key is rebuilt after the token */
        uint64_t shared = seg_get_varint(c), sl = seg_get_varint(c);
        uint64_t suf = sl >> 1, tprev = it->in_blk ? it->key_len - 4 : 0;
        if (c->bad || shared > tprev || shared + suf > SEG_MAX_KEY - 4)
            return -1;
        uint8_t *d = it->key + shared;
        if (sl & 1) {
            static const char hex[16] = "0123456789abcdef";
            const uint8_t *s = seg_get_bytes(c, (suf + 1) / 2);
            if (!s)
                return -1;
            for (uint64_t k = 0; k < suf; k++)
                d[k] = (uint8_t)hex[(s[k / 2] >> (k & 1 ? 0 : 4)) & 15];
        } else {
            const uint8_t *s = seg_get_bytes(c, suf);
            if (!s)
                return -1;
            memcpy(d, s, suf);
        }
        uint64_t fk = seg_get_varint(c);
        if (c->bad || (fk >> 2) > SEG_MAX_FIELDS || (fk & 3) > SEG_K_EXISTS)
            return -1;
        d += suf;
        d[0] = 0;
        d[1] = (uint8_t)(fk >> 10);
        d[2] = (uint8_t)(fk >> 2);
        d[3] = (uint8_t)(fk & 3);
        it->key_len = (uint32_t)(shared + suf + 4);
    } else {
        uint64_t shared = seg_get_varint(c), suf = seg_get_varint(c);
        if (c->bad || shared > it->key_len || (it->in_blk == 0 && shared) ||
            shared + suf > SEG_MAX_KEY + 8 || shared + suf < 4)
            return -1;
        const uint8_t *s = seg_get_bytes(c, suf);
        if (!s)
            return -1;
        memcpy(it->key + shared, s, suf);
        it->key_len = (uint32_t)(shared + suf);
    }
    t->df = (uint32_t)seg_get_varint(c);
    t->kind = it->key[it->key_len - 1];
    t->inl = NULL;
    t->inl_len = 0;
    if (t->df == 1 && it->r->version >= 2) {
        /* a singleton, inline: varint doc, TEXT: varint tf, tf positions */
        const uint8_t *start = c->p;
        seg_get_varint(c);
        if (t->kind == SEG_K_TEXT) {
            uint64_t tf = seg_get_varint(c);
            if (tf == 0 || tf > (uint64_t)(c->end - c->p))
                return -1;
            for (uint64_t k = 0; k < tf; k++)
                seg_get_varint(c);
        }
        t->inl = start;
        t->inl_len = (uint32_t)(c->p - start);
        t->post_off = t->post_len = 0;
    } else {
        t->post_off = seg_get_varint(c);
        t->post_len = seg_get_varint(c);
    }
    if (c->bad)
        return -1;
    t->key = it->key;
    t->key_len = it->key_len;
    it->in_blk++;
    return 1;
}

int seg_dict_iter_open(seg_reader *r, const uint8_t *from, size_t from_len, seg_dict_iter **out,
                       seg_err *e)
{
    *out = NULL;
    seg_cur c;
    if (sec_get(r, r->s_dict, &c, e))
        return SEG_ECORRUPT;
    seg_dict_iter *it = seg_calloc(1, sizeof *it);
    if (!it)
        return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
    it->r = r;
    it->nterms = seg_get_u32(&c);
    it->nblocks = seg_get_u32(&c);
    if (c.bad || it->nblocks != (it->nterms + SEG_DICT_BLOCK - 1) / SEG_DICT_BLOCK ||
        (uint64_t)it->nblocks * 4 > (uint64_t)(c.end - c.p)) {
        seg_free(it);
        mark_failed(r, "bad term dictionary header");
        return CORRUPT(r, e, "bad term dictionary header");
    }
    it->offs = c.p;
    it->blocks = c.p + (size_t)it->nblocks * 4;
    it->end = c.end;
    it->from = from;
    it->from_len = from_len;
    if (it->nterms == 0) {
        it->done = 1;
        *out = it;
        return SEG_OK;
    }
    /* binary search: last block whose first key <= from */
    uint32_t lo = 0, hi = it->nblocks;
    if (from_len) {
        while (hi - lo > 1) {
            uint32_t mid = (lo + hi) / 2;
            seg_term t;
            if (dict_open_block(it, mid) || dict_read(it, &t) != 1) {
                seg_free(it);
                mark_failed(r, "corrupt term dictionary block");
                return CORRUPT(r, e, "corrupt term dictionary block");
            }
            if (key_cmp(t.key, t.key_len, from, from_len) <= 0)
                lo = mid;
            else
                hi = mid;
        }
    }
    if (dict_open_block(it, lo)) {
        seg_free(it);
        mark_failed(r, "corrupt term dictionary block");
        return CORRUPT(r, e, "corrupt term dictionary block");
    }
    *out = it;
    return SEG_OK;
}

int seg_dict_iter_next(seg_dict_iter *it, seg_term *t, seg_err *e)
{
    if (it->done)
        return 0;
    for (;;) {
        int rc = dict_read(it, t);
        if (rc == 0) {
            it->done = 1;
            return 0;
        }
        if (rc < 0) {
            it->done = 1;
            mark_failed(it->r, "corrupt term dictionary entry");
            CORRUPT(it->r, e, "corrupt term dictionary entry");
            return -1;
        }
        if (it->from_len && key_cmp(t->key, t->key_len, it->from, it->from_len) < 0)
            continue;
        it->from_len = 0;
        return 1;
    }
}

void seg_dict_iter_free(seg_dict_iter *it) { seg_free(it); }

int seg_dict_get(seg_reader *r, const uint8_t *key, size_t n, seg_term *t, seg_err *e)
{
    seg_dict_iter *it;
    if (seg_dict_iter_open(r, key, n, &it, e))
        return -1;
    int rc = seg_dict_iter_next(it, t, e);
    if (rc == 1 && key_cmp(t->key, t->key_len, key, n) != 0)
        rc = 0;
    if (rc == 1) {
        /* t->key points into the iterator: callers only need the numbers */
        t->key = NULL;
    }
    seg_dict_iter_free(it);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Postings                                                             */
/* ------------------------------------------------------------------ */

struct seg_post {
    seg_reader *r;
    const uint8_t *next, *end;     /* next block header, end of the term */
    int text;
    uint32_t df, remaining;        /* docs in blocks not yet loaded */
    uint32_t ndocs;
    int64_t base;                  /* last doc of the previous block */
    uint32_t blk_last, blk_n, blk_i;
    uint32_t docs[SEG_POST_BLOCK]; /* the loaded block, decoded */
    uint32_t tfs[SEG_POST_BLOCK];
    uint32_t tfoff[SEG_POST_BLOCK + 1];
    seg_cur pc;                    /* the block's packed positions */
    uint32_t *bpos;                /* ... unpacked on first use */
    uint32_t bposcap;
    int bpos_loaded;
    uint64_t pos_base;             /* version >= 3: added to each doc's first */
    uint32_t doc, tf;
    uint32_t *pos;                 /* absolute positions of the current doc */
    uint32_t poscap;
    int err;
};

/* positions per block are bounded so that hostile tf values cannot make
 * us allocate without limit */
#define POST_MAX_BLOCK_POSITIONS (1u << 26)

static void post_corrupt(seg_post *p)
{
    p->err = 1;
    p->doc = SEG_DOC_END;
    mark_failed(p->r, "corrupt postings");
}

/* Loads and decodes the next block (docs and tfs; positions lazily). */
static int post_load_block(seg_post *p)
{
    if (p->remaining == 0) {
        p->doc = SEG_DOC_END;
        return 0;
    }
    seg_cur c = {p->next, p->end, 0};
    uint64_t last = seg_get_varint(&c), dl = seg_get_varint(&c), pl = seg_get_varint(&c);
    if (c.bad || last >= p->ndocs || (int64_t)last <= p->base || dl > (uint64_t)(c.end - c.p) ||
        pl > (uint64_t)(c.end - c.p) - dl) {
        post_corrupt(p);
        return -1;
    }
    uint32_t n = p->remaining < SEG_POST_BLOCK ? p->remaining : SEG_POST_BLOCK;
    seg_cur dc = {c.p, c.p + dl, 0};
    if (get_packed_v(p->r, &dc, p->docs, n) || (p->text && get_packed_v(p->r, &dc, p->tfs, n)) || dc.p != dc.end) {
        post_corrupt(p);
        return -1;
    }
    int64_t d = p->base;
    uint64_t off = 0;
    for (uint32_t k = 0; k < n; k++) {
        d += 1 + (int64_t)p->docs[k];
        if (d > (int64_t)last) {
            post_corrupt(p);
            return -1;
        }
        p->docs[k] = (uint32_t)d;
        if (p->text) {
            p->tfoff[k] = (uint32_t)off;
            off += (uint64_t)p->tfs[k] + 1;
            p->tfs[k] += 1;
        }
    }
    if (d != (int64_t)last || off > POST_MAX_BLOCK_POSITIONS) {
        post_corrupt(p);
        return -1;
    }
    p->tfoff[n] = (uint32_t)off;
    p->blk_last = (uint32_t)last;
    p->blk_n = n;
    p->blk_i = 0;
    p->remaining -= n;
    p->pc = (seg_cur){c.p + dl, c.p + dl + pl, 0};
    p->bpos_loaded = 0;
    p->next = c.p + dl + pl;
    p->tf = 0;
    return 0;
}

/* Moves to the next doc of the loaded block. */
static uint32_t post_decode(seg_post *p)
{
    p->doc = p->docs[p->blk_i];
    p->tf = p->text ? p->tfs[p->blk_i] : 0;
    p->blk_i++;
    return p->doc;
}

/* A singleton's postings from its inline dictionary bytes (see dict_read):
 * one loaded block of one doc, its positions already unpacked. */
static int post_inline(seg_post *p, const seg_term *t)
{
    seg_cur c = {t->inl, t->inl + t->inl_len, 0};
    uint64_t doc = seg_get_varint(&c), tf = p->text ? seg_get_varint(&c) : 0;
    if (c.bad || doc >= p->ndocs || (p->text && (tf == 0 || tf > t->inl_len)))
        return -1;
    if (tf) {
        if (!(p->bpos = seg_malloc((size_t)tf * sizeof *p->bpos)))
            return SEG_ENOMEM; /* not the segment's fault: it must not be marked failed */
        p->bposcap = (uint32_t)tf;
        for (uint64_t k = 0; k < tf; k++)
            p->bpos[k] = (uint32_t)seg_get_varint(&c);
    }
    if (c.bad || c.p != c.end)
        return -1;
    p->docs[0] = (uint32_t)doc;
    p->tfs[0] = (uint32_t)tf;
    p->tfoff[0] = 0;
    p->tfoff[1] = (uint32_t)tf;
    p->blk_last = (uint32_t)doc;
    p->blk_n = 1;
    p->blk_i = 0;
    p->remaining = 0;
    p->bpos_loaded = 1;
    p->next = p->end = NULL;
    post_decode(p);
    return 0;
}

int seg_post_open(seg_reader *r, const seg_term *t, seg_post **out, seg_err *e)
{
    *out = NULL;
    seg_cur c = {0};
    if (!t->inl) {
        if (sec_get(r, r->s_post, &c, e))
            return SEG_ECORRUPT;
        if (t->post_off > (uint64_t)(c.end - c.p) || t->post_len > (uint64_t)(c.end - c.p) - t->post_off ||
            t->df == 0 || t->df > r->ndocs) {
            mark_failed(r, "postings out of bounds");
            return CORRUPT(r, e, "postings out of bounds");
        }
    }
    seg_post *p = seg_calloc(1, sizeof *p);
    if (!p)
        return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
    p->r = r;
    p->text = t->kind == SEG_K_TEXT;
    p->df = p->remaining = t->df;
    p->ndocs = r->ndocs;
    p->base = -1;
    if (t->inl) {
        int rc = post_inline(p, t);
        if (rc == SEG_ENOMEM) {
            seg_post_free(p);
            return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
        }
        if (rc) {
            seg_post_free(p);
            mark_failed(r, "corrupt inline postings");
            return CORRUPT(r, e, "corrupt inline postings");
        }
    } else {
        p->next = c.p + t->post_off;
        p->end = p->next + t->post_len;
        if (post_load_block(p) == 0)
            post_decode(p);
        if (p->err) {
            seg_post_free(p);
            return CORRUPT(r, e, "corrupt postings");
        }
    }
    *out = p;
    return SEG_OK;
}

void seg_post_free(seg_post *p)
{
    if (!p)
        return;
    seg_free(p->bpos);
    seg_free(p->pos);
    seg_free(p);
}

uint32_t seg_post_doc(const seg_post *p) { return p->doc; }
uint32_t seg_post_df(const seg_post *p) { return p->df; }
int seg_post_error(const seg_post *p) { return p->err; }

uint32_t seg_post_next(seg_post *p)
{
    if (p->doc == SEG_DOC_END)
        return p->doc;
    if (p->blk_i == p->blk_n) {
        p->base = p->blk_last;
        if (post_load_block(p))
            return SEG_DOC_END;
        if (p->doc == SEG_DOC_END)
            return p->doc;
    }
    return post_decode(p);
}

uint32_t seg_post_seek(seg_post *p, uint32_t target)
{
    if (p->doc == SEG_DOC_END || p->doc >= target)
        return p->doc;
    while (p->blk_last < target) {
        /* skip whole blocks by their last doc, without decoding them */
        p->base = p->blk_last;
        if (p->remaining == 0) {
            p->doc = SEG_DOC_END;
            return p->doc;
        }
        seg_cur c = {p->next, p->end, 0};
        uint64_t last = seg_get_varint(&c), dl = seg_get_varint(&c), pl = seg_get_varint(&c);
        uint32_t n = p->remaining < SEG_POST_BLOCK ? p->remaining : SEG_POST_BLOCK;
        if (!c.bad && last < target && last < p->ndocs && (int64_t)last > p->base &&
            dl <= (uint64_t)(c.end - c.p) && pl <= (uint64_t)(c.end - c.p) - dl && p->remaining > n) {
            p->blk_last = (uint32_t)last;
            p->remaining -= n;
            p->next = c.p + dl + pl;
            continue;
        }
        if (post_load_block(p))
            return SEG_DOC_END;
        if (p->doc == SEG_DOC_END)
            return p->doc;
    }
    /* the loaded block holds a doc >= target: binary search it */
    uint32_t lo = p->blk_i, hi = p->blk_n;
    while (lo < hi) {
        uint32_t m = (lo + hi) / 2;
        if (p->docs[m] < target)
            lo = m + 1;
        else
            hi = m;
    }
    p->blk_i = lo;
    return post_decode(p);
}

int seg_post_positions(seg_post *p, const uint32_t **pos, uint32_t *n)
{
    if (p->doc == SEG_DOC_END || !p->text) {
        *n = 0;
        return 0;
    }
    uint32_t k = p->blk_i - 1, total = p->tfoff[p->blk_n];
    if (!p->bpos_loaded) {
        if (total > p->bposcap) {
            uint32_t *q = seg_realloc(p->bpos, (size_t)total * sizeof *q);
            if (!q)
                return SEG_ENOMEM;
            p->bpos = q;
            p->bposcap = total;
        }
        /* version >= 3: varint base (added to each doc's first), values
         * with exceptions; before: plain packed values */
        p->pos_base = p->r->version >= 3 ? seg_get_varint(&p->pc) : 0;
        if (get_packed_v(p->r, &p->pc, p->bpos, total) || p->pc.bad || p->pc.p != p->pc.end || p->pos_base > UINT32_MAX) {
            post_corrupt(p);
            *n = 0;
            return SEG_ECORRUPT;
        }
        p->bpos_loaded = 1;
    }
    if (p->tf > p->poscap) {
        uint32_t cap = p->tf < 64 ? 64 : p->tf;
        uint32_t *q = seg_realloc(p->pos, (size_t)cap * sizeof *q);
        if (!q)
            return SEG_ENOMEM;
        p->pos = q;
        p->poscap = cap;
    }
    const uint32_t *src = p->bpos + p->tfoff[k];
    uint64_t at = (uint64_t)src[0] + p->pos_base;
    if (at > UINT32_MAX) {
        post_corrupt(p);
        *n = 0;
        return SEG_ECORRUPT;
    }
    p->pos[0] = (uint32_t)at;
    for (uint32_t i = 1; i < p->tf; i++) {
        at += src[i];
        if (src[i] == 0 || at > UINT32_MAX) {
            post_corrupt(p);
            *n = 0;
            return SEG_ECORRUPT;
        }
        p->pos[i] = (uint32_t)at;
    }
    *pos = p->pos;
    *n = p->tf;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Numeric columns                                                      */
/* ------------------------------------------------------------------ */

/* One version 3 block (seg_format.h, NUMCOL): gaps, then the values. */
static int num_block_v3(seg_reader *r, seg_cur *d, int type, int scale, uint32_t doc, uint32_t cnt, double lo,
                        int lo_incl, double hi, int hi_incl, seg_num_fn fn, void *ud)
{
    uint32_t gaps[SEG_NUM_BLOCK], rel[SEG_NUM_BLOCK];
    double v[SEG_NUM_BLOCK];
    if (seg_get_xpacked(d, gaps, cnt))
        return -1;
    if (type == SEG_NUM_REAL) {
        for (uint32_t k = 0; k < cnt; k++)
            v[k] = seg_get_f64(d);
    } else {
        uint8_t mode = seg_get_u8(d);
        if (mode == SEG_NUMBLK_PACKED) {
            uint64_t base = (uint64_t)seg_unzigzag(seg_get_varint(d));
            if (seg_get_xpacked(d, rel, cnt))
                return -1;
            for (uint32_t k = 0; k < cnt; k++) {
                int64_t m = (int64_t)(base + rel[k]);
                v[k] = type == SEG_NUM_INT ? (double)m : (double)m / seg_pow10[scale];
            }
        } else if (mode == SEG_NUMBLK_DELTAS) {
            int64_t m = 0;
            for (uint32_t k = 0; k < cnt; k++) {
                m = (int64_t)((uint64_t)m + (uint64_t)seg_unzigzag(seg_get_varint(d)));
                v[k] = type == SEG_NUM_INT ? (double)m : (double)m / seg_pow10[scale];
            }
        } else {
            return -1;
        }
    }
    if (d->bad)
        return -1;
    uint64_t dd = doc;
    for (uint32_t k = 0; k < cnt; k++) {
        dd += gaps[k];
        if (dd >= r->ndocs)
            return -1;
    }
    dd = doc;
    for (uint32_t k = 0; k < cnt; k++) {
        dd += gaps[k];
        if ((v[k] > lo || (v[k] == lo && lo_incl)) && (v[k] < hi || (v[k] == hi && hi_incl)))
            fn(ud, (uint32_t)dd, v[k]);
    }
    return 0;
}

int seg_reader_num_scan(seg_reader *r, uint32_t field, double lo, int lo_incl, double hi,
                        int hi_incl, seg_num_fn fn, void *ud, seg_err *e)
{
    if (field >= r->nfields || r->s_num[field] < 0)
        return SEG_OK;
    seg_cur c;
    if (sec_get(r, r->s_num[field], &c, e))
        return SEG_ECORRUPT;
    uint32_t n = seg_get_u32(&c);
    uint8_t type = seg_get_u8(&c);
    uint8_t scale = type == SEG_NUM_DECIMAL ? seg_get_u8(&c) : 0;
    uint32_t nb = seg_get_u32(&c);
    if (c.bad || type > SEG_NUM_DECIMAL || (type == SEG_NUM_DECIMAL && r->version < 2) ||
        scale > SEG_NUM_MAX_SCALE || nb != (n + SEG_NUM_BLOCK - 1) / SEG_NUM_BLOCK ||
        (uint64_t)nb * 24 > (uint64_t)(c.end - c.p)) {
        mark_failed(r, "bad numeric column");
        return CORRUPT(r, e, "bad numeric column for field %u", field);
    }
    const uint8_t *ix = c.p, *data = c.p + (size_t)nb * 24;
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *ie = ix + (size_t)b * 24;
        double mn, mx;
        uint64_t u = seg_rd_u64(ie);
        memcpy(&mn, &u, 8);
        u = seg_rd_u64(ie + 8);
        memcpy(&mx, &u, 8);
        if (mx < lo || (mx == lo && !lo_incl) || mn > hi || (mn == hi && !hi_incl))
            continue;
        uint32_t doc = seg_rd_u32(ie + 16), off = seg_rd_u32(ie + 20);
        if (off > (size_t)(c.end - data)) {
            mark_failed(r, "bad numeric block");
            return CORRUPT(r, e, "bad numeric block offset");
        }
        seg_cur d = {data + off, c.end, 0};
        uint32_t cnt = n - b * SEG_NUM_BLOCK < SEG_NUM_BLOCK ? n - b * SEG_NUM_BLOCK : SEG_NUM_BLOCK;
        int64_t prev = 0;
        if (r->version >= 3) {
            if (num_block_v3(r, &d, type, scale, doc, cnt, lo, lo_incl, hi, hi_incl, fn, ud)) {
                mark_failed(r, "bad numeric block");
                return CORRUPT(r, e, "corrupt numeric block for field %u", field);
            }
            continue;
        }
        for (uint32_t k = 0; k < cnt; k++) {
            doc += (uint32_t)seg_get_varint(&d);
            double v;
            if (type == SEG_NUM_REAL) {
                v = seg_get_f64(&d);
            } else {
                prev = (int64_t)((uint64_t)prev + (uint64_t)seg_unzigzag(seg_get_varint(&d)));
                v = type == SEG_NUM_INT ? (double)prev : (double)prev / seg_pow10[scale];
            }
            if (d.bad || doc >= r->ndocs) {
                mark_failed(r, "bad numeric block");
                return CORRUPT(r, e, "corrupt numeric block for field %u", field);
            }
            if ((v > lo || (v == lo && lo_incl)) && (v < hi || (v == hi && hi_incl)))
                fn(ud, doc, v);
        }
    }
    return SEG_OK;
}

/* ------------------------------------------------------------------ */
/* Keyword columns and time ranges                                      */
/* ------------------------------------------------------------------ */

int seg_reader_keycol(seg_reader *r, uint32_t field, seg_keycol *kc, seg_err *e)
{
    if (field >= r->nfields || r->s_key[field] < 0)
        return 0;
    seg_cur c;
    if (sec_get(r, r->s_key[field], &c, e))
        return -1;
    kc->npairs = seg_get_u32(&c);
    kc->ndict = seg_get_u32(&c);
    if (c.bad || (uint64_t)kc->ndict * 4 + 4 > (uint64_t)(c.end - c.p))
        goto bad;
    kc->offs = c.p;
    c.p += (size_t)kc->ndict * 4 + 4;
    kc->vals_len = seg_rd_u32(kc->offs + (size_t)kc->ndict * 4);
    kc->vals = seg_get_bytes(&c, kc->vals_len);
    kc->nblocks = seg_get_u32(&c);
    if (c.bad || kc->nblocks != (kc->npairs + SEG_KEY_BLOCK - 1) / SEG_KEY_BLOCK ||
        (uint64_t)kc->nblocks * 8 > (uint64_t)(c.end - c.p))
        goto bad;
    kc->index = c.p;
    kc->data = c.p + (size_t)kc->nblocks * 8;
    kc->end = c.end;
    return 1;
bad:
    mark_failed(r, "bad keyword column");
    CORRUPT(r, e, "bad keyword column for field %u", field);
    return -1;
}

int seg_keycol_value(const seg_keycol *kc, uint32_t ord, const char **p, size_t *n)
{
    if (ord >= kc->ndict)
        return -1;
    uint32_t a = seg_rd_u32(kc->offs + (size_t)ord * 4), b = seg_rd_u32(kc->offs + (size_t)ord * 4 + 4);
    if (a > b || b > kc->vals_len)
        return -1;
    *p = (const char *)kc->vals + a;
    *n = b - a;
    return 0;
}

int seg_reader_keycol_scan(seg_reader *r, const seg_keycol *kc, seg_kw_fn fn, void *ud, seg_err *e)
{
    uint32_t docs[SEG_KEY_BLOCK], ords[SEG_KEY_BLOCK];
    for (uint32_t b = 0; b < kc->nblocks; b++) {
        uint32_t first = seg_rd_u32(kc->index + (size_t)b * 8), off = seg_rd_u32(kc->index + (size_t)b * 8 + 4);
        uint32_t cnt = kc->npairs - b * SEG_KEY_BLOCK < SEG_KEY_BLOCK ? kc->npairs - b * SEG_KEY_BLOCK : SEG_KEY_BLOCK;
        if (off > (size_t)(kc->end - kc->data)) {
            mark_failed(r, "bad keyword block");
            return CORRUPT(r, e, "bad keyword column block");
        }
        seg_cur c = {kc->data + off, kc->end, 0};
        if (get_packed_v(r, &c, docs, cnt) || get_packed_v(r, &c, ords, cnt)) {
            mark_failed(r, "bad keyword block");
            return CORRUPT(r, e, "bad keyword column block");
        }
        uint64_t d = first;
        for (uint32_t k = 0; k < cnt; k++) {
            /* version >= 3: gaps from the previous pair; before: offsets */
            d = r->version >= 3 ? d + docs[k] : (uint64_t)first + docs[k];
            if (d >= r->ndocs || ords[k] >= kc->ndict) {
                mark_failed(r, "bad keyword block");
                return CORRUPT(r, e, "bad keyword column entry");
            }
            fn(ud, (uint32_t)d, ords[k]);
        }
    }
    return SEG_OK;
}

int seg_reader_keycol_counts(seg_reader *r, uint32_t field, const seg_keycol *kc, const uint8_t **counts,
                             seg_err *e)
{
    if (field >= r->nfields || r->s_kcount[field] < 0)
        return 0;
    seg_cur c;
    if (sec_get(r, r->s_kcount[field], &c, e))
        return -1;
    uint32_t nd = seg_get_u32(&c);
    if (c.bad || nd != kc->ndict || (uint64_t)nd * 4 != (uint64_t)(c.end - c.p)) {
        mark_failed(r, "bad keyword counts");
        return CORRUPT(r, e, "bad keyword counts for field %u", field), -1;
    }
    *counts = c.p;
    return 1;
}

typedef struct kwcount {
    uint32_t *cnt, *last;
} kwcount;

static void kw_count(void *ud, uint32_t doc, uint32_t ord)
{
    kwcount *k = ud;
    if (k->last[ord] != doc + 1) {
        k->last[ord] = doc + 1;
        k->cnt[ord]++;
    }
}

int seg_reader_keycol_count(seg_reader *r, const seg_keycol *kc, uint32_t *cnt, uint32_t *last, seg_err *e)
{
    kwcount k = {cnt, last};
    return seg_reader_keycol_scan(r, kc, kw_count, &k, e);
}

int seg_reader_times(seg_reader *r, uint32_t lo, uint32_t hi, int64_t *out, seg_err *e)
{
    int64_t buf[SEG_TIME_BLOCK];
    if (hi > r->ndocs || lo > hi)
        return seg_err_set(e, SEG_EINVAL, r->path, "doc range out of bounds");
    for (uint32_t d = lo; d < hi;) {
        uint32_t b = d / SEG_TIME_BLOCK;
        int cnt = time_block(r, b, buf, e);
        if (cnt < 0)
            return SEG_ECORRUPT;
        for (uint32_t k = d % SEG_TIME_BLOCK; k < (uint32_t)cnt && d < hi; k++, d++)
            out[d - lo] = buf[k];
    }
    return SEG_OK;
}

/* ------------------------------------------------------------------ */
/* Stored events                                                        */
/* ------------------------------------------------------------------ */

struct seg_store_cur {
    uint64_t gen;              /* reader the cached block belongs to */
    uint32_t blk;
    uint32_t first;            /* first doc of the block */
    uint32_t count;            /* docs in the block */
    const uint8_t *src;        /* the block's compressed bytes */
    uint32_t clen, rawlen;
    uint32_t have;             /* bytes of raw decoded so far */
    uint32_t codec;            /* SEG_CODEC_* of the block */
    const uint8_t *dict;       /* the segment's store dictionary, or NULL */
    uint32_t dictlen;
    char *raw;
    size_t rawcap;
    uint8_t *cols;             /* a codec 2 block before it is laid back */
    size_t colscap;
    ZSTD_DCtx *zd;             /* made at the first zstd block */
};

seg_store_cur *seg_store_cur_new(void) { return seg_calloc(1, sizeof(seg_store_cur)); }

void seg_store_cur_free(seg_store_cur *c)
{
    if (!c)
        return;
    seg_free(c->raw);
    seg_free(c->cols);
    ZSTD_freeDCtx(c->zd);
    seg_free(c);
}

/* Makes the cursor point at the block holding doc (nothing decoded yet if
 * the block changed). */
static int store_block(seg_reader *r, seg_store_cur *sc, uint32_t doc, seg_err *e)
{
    seg_cur c;
    if (sec_get(r, r->s_store, &c, e))
        return SEG_ECORRUPT;
    uint32_t n = seg_get_u32(&c), nb = seg_get_u32(&c);
    if (c.bad || n != r->ndocs || nb == 0 || (uint64_t)nb * 24 > (uint64_t)(c.end - c.p)) {
        mark_failed(r, "bad event store");
        return CORRUPT(r, e, "bad event store header");
    }
    const uint8_t *ix = c.p, *data = c.p + (size_t)nb * 24;
    uint32_t lo = 0, hi = nb;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (seg_rd_u32(ix + (size_t)mid * 24) <= doc)
            lo = mid;
        else
            hi = mid;
    }
    if (sc->gen == r->gen && sc->blk == lo)
        return SEG_OK;
    const uint8_t *ie = ix + (size_t)lo * 24;
    uint32_t first = seg_rd_u32(ie), rawlen = seg_rd_u32(ie + 4), clen = seg_rd_u32(ie + 16);
    uint32_t codec = seg_rd_u32(ie + 20);
    uint64_t off = seg_rd_u64(ie + 8);
    if (first > doc || off > (uint64_t)(c.end - data) || clen > (uint64_t)(c.end - data) - off ||
        rawlen > (1u << 30) || clen > (1u << 30) || codec > SEG_CODEC_ZSTD_COLS ||
        (codec != SEG_CODEC_LZ4 && r->version < 2) || (codec == SEG_CODEC_ZSTD_COLS && r->version < 4)) {
        mark_failed(r, "bad event store block");
        return CORRUPT(r, e, "bad event store block %u", lo);
    }
    if (rawlen > sc->rawcap) {
        char *p = seg_realloc(sc->raw, rawlen);
        if (!p)
            return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
        sc->raw = p;
        sc->rawcap = rawlen;
    }
    uint32_t next_first = lo + 1 < nb ? seg_rd_u32(ix + (size_t)(lo + 1) * 24) : n;
    if (next_first <= doc || next_first > n) {
        mark_failed(r, "bad event store block");
        return CORRUPT(r, e, "bad event store block %u", lo);
    }
    sc->dict = NULL;
    sc->dictlen = 0;
    if (r->s_sdict >= 0) {
        seg_cur dc;
        if (sec_get(r, r->s_sdict, &dc, e))
            return SEG_ECORRUPT;
        sc->dict = dc.p;
        sc->dictlen = (uint32_t)(dc.end - dc.p);
    }
    sc->gen = r->gen;
    sc->codec = codec;
    sc->blk = lo;
    sc->first = first;
    sc->count = next_first - first;
    sc->src = data + off;
    sc->clen = clen;
    sc->rawlen = rawlen;
    sc->have = 0;
    return SEG_OK;
}

/* ---- the decoded-block cache ----
 *
 * Decoded zstd blocks of file segments, shared by every reader of the
 * process: a hit copies ~32 KiB instead of decoding it again (a repeated
 * or paged query, many hits in one block).  Keyed by (reader generation,
 * block): generations are never reused, so a block of a closed or
 * re-opened file is never served for another; stale entries age out.
 * Entries are copied in and out under one mutex (never referenced
 * outside it), so no reader holds an entry the cache may free.  LRU,
 * bounded by bytes (seg_block_cache_set; 0 turns it off). */
typedef struct bc_ent {
    uint64_t gen;
    uint32_t blk, len;
    struct bc_ent *hnext, *prev, *next;
    char data[];
} bc_ent;

#define BC_BUCKETS 4096
static pthread_mutex_t bc_mu = PTHREAD_MUTEX_INITIALIZER;
static bc_ent *bc_tab[BC_BUCKETS];
static bc_ent bc_lru = {.prev = &bc_lru, .next = &bc_lru}; /* most recent first */
static size_t bc_bytes, bc_cap = (size_t)64 << 20;
static uint64_t bc_hits, bc_misses;

static size_t bc_slot(uint64_t gen, uint32_t blk) { return (size_t)((gen * 0x9E3779B97F4A7C15ULL) ^ blk) % BC_BUCKETS; }

static void bc_unlink(bc_ent *x)
{
    x->prev->next = x->next;
    x->next->prev = x->prev;
}

static void bc_front(bc_ent *x)
{
    x->next = bc_lru.next;
    x->prev = &bc_lru;
    bc_lru.next->prev = x;
    bc_lru.next = x;
}

/* drops least recent entries until the bytes fit cap (mutex held) */
static void bc_trim(size_t cap)
{
    while (bc_bytes > cap && bc_lru.prev != &bc_lru) {
        bc_ent *x = bc_lru.prev;
        bc_unlink(x);
        bc_ent **pp = &bc_tab[bc_slot(x->gen, x->blk)];
        while (*pp != x)
            pp = &(*pp)->hnext;
        *pp = x->hnext;
        bc_bytes -= x->len;
        seg_free(x);
    }
}

void seg_block_cache_set(size_t bytes)
{
    pthread_mutex_lock(&bc_mu);
    __atomic_store_n(&bc_cap, bytes, __ATOMIC_RELAXED);
    bc_trim(bytes);
    pthread_mutex_unlock(&bc_mu);
}

void seg_block_cache_stats(uint64_t *hits, uint64_t *misses, size_t *bytes)
{
    pthread_mutex_lock(&bc_mu);
    *hits = bc_hits;
    *misses = bc_misses;
    *bytes = bc_bytes;
    pthread_mutex_unlock(&bc_mu);
}

/* 1 and the block copied into dst (len bytes) when cached */
static int bc_get(uint64_t gen, uint32_t blk, char *dst, uint32_t len)
{
    int found = 0;
    pthread_mutex_lock(&bc_mu);
    for (bc_ent *x = bc_tab[bc_slot(gen, blk)]; x; x = x->hnext)
        if (x->gen == gen && x->blk == blk && x->len == len) {
            memcpy(dst, x->data, len);
            bc_unlink(x);
            bc_front(x);
            found = 1;
            break;
        }
    if (found)
        bc_hits++;
    else
        bc_misses++;
    pthread_mutex_unlock(&bc_mu);
    return found;
}

static void bc_put(uint64_t gen, uint32_t blk, const char *src, uint32_t len)
{
    if (__atomic_load_n(&bc_cap, __ATOMIC_RELAXED) < (size_t)len * 4)
        return; /* off, or too small to hold a few blocks */
    bc_ent *n = seg_malloc(sizeof *n + len);
    if (!n)
        return;
    n->gen = gen;
    n->blk = blk;
    n->len = len;
    memcpy(n->data, src, len);
    pthread_mutex_lock(&bc_mu);
    size_t h = bc_slot(gen, blk);
    for (bc_ent *x = bc_tab[h]; x; x = x->hnext)
        if (x->gen == gen && x->blk == blk) { /* another thread was first */
            pthread_mutex_unlock(&bc_mu);
            seg_free(n);
            return;
        }
    n->hnext = bc_tab[h];
    bc_tab[h] = n;
    bc_front(n);
    bc_bytes += len;
    bc_trim(__atomic_load_n(&bc_cap, __ATOMIC_RELAXED));
    pthread_mutex_unlock(&bc_mu);
}

/* A codec 2 block: zstd into sc->cols, then laid back into sc->raw
 * (seg_shape_join).  *got is rawlen, or -1 when the bytes are bad;
 * returns an error only for a lack of memory. */
static int store_cols(seg_reader *r, seg_store_cur *sc, int *got, seg_err *e)
{
    *got = -1;
    unsigned long long cl = ZSTD_getFrameContentSize(sc->src, sc->clen);
    /* a layout is at most about twice its records (a number of one digit
     * and its comma, "1,", become 0x02 "," and "1" 0x0A) */
    if (cl == ZSTD_CONTENTSIZE_UNKNOWN || cl == ZSTD_CONTENTSIZE_ERROR ||
        cl > 2 * (unsigned long long)sc->rawlen + 16 * (unsigned long long)sc->count + 64)
        return SEG_OK;
    if (cl > sc->colscap) {
        uint8_t *p = seg_realloc(sc->cols, (size_t)cl);
        if (!p)
            return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
        sc->cols = p;
        sc->colscap = (size_t)cl;
    }
    size_t zr = ZSTD_decompress_usingDict(sc->zd, sc->cols, (size_t)cl, sc->src, sc->clen, sc->dict, sc->dictlen);
    if (ZSTD_isError(zr) || zr != cl)
        return SEG_OK;
    int rc = seg_shape_join(sc->cols, (size_t)cl, sc->count, (uint8_t *)sc->raw, sc->rawlen);
    if (rc == SEG_ENOMEM)
        return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
    if (rc == SEG_OK)
        *got = (int)sc->rawlen;
    return SEG_OK;
}

/* Decodes the block at least up to `want` bytes (LZ4 can stop early; a
 * later call that needs more decodes again from the start; zstd blocks,
 * ~32 KiB, are decoded whole, with the segment's dictionary). */
static int store_decode(seg_reader *r, seg_store_cur *sc, uint32_t want, seg_err *e)
{
    if (want > sc->rawlen)
        want = sc->rawlen;
    if (sc->have >= want)
        return SEG_OK;
    uint32_t target = want;
    int got;
    if (sc->codec != SEG_CODEC_LZ4) {
        /* zstd blocks are decoded whole (and codec 2 laid back) */
        target = sc->rawlen;
        if (!r->in_memory && bc_get(r->gen, sc->blk, sc->raw, sc->rawlen)) {
            got = (int)sc->rawlen;
        } else {
            if (!sc->zd && !(sc->zd = ZSTD_createDCtx()))
                return seg_err_set(e, SEG_ENOMEM, r->path, "out of memory");
            if (sc->codec == SEG_CODEC_ZSTD) {
                size_t zr = ZSTD_decompress_usingDict(sc->zd, sc->raw, sc->rawlen, sc->src, sc->clen, sc->dict,
                                                      sc->dictlen);
                got = ZSTD_isError(zr) ? -1 : (int)zr;
            } else {
                int rc = store_cols(r, sc, &got, e);
                if (rc)
                    return rc;
            }
            if (got == (int)sc->rawlen && !r->in_memory)
                bc_put(r->gen, sc->blk, sc->raw, sc->rawlen);
        }
    } else if (target >= sc->rawlen) {
        got = LZ4_decompress_safe((const char *)sc->src, sc->raw, (int)sc->clen, (int)sc->rawlen);
    } else {
        got = LZ4_decompress_safe_partial((const char *)sc->src, sc->raw, (int)sc->clen, (int)target,
                                          (int)sc->rawlen);
    }
    if (got < (int)want || (target >= sc->rawlen && got != (int)sc->rawlen)) {
        sc->gen = 0;
        mark_failed(r, "event store block does not decompress");
        return CORRUPT(r, e, "event store block %u does not decompress", sc->blk);
    }
    sc->have = (uint32_t)got;
    return SEG_OK;
}

int seg_reader_doc(seg_reader *r, seg_store_cur *sc, uint32_t doc, const char **id, size_t *idlen,
                   const char **json, size_t *jlen, seg_err *e)
{
    if (doc >= r->ndocs)
        return seg_err_set(e, SEG_EINVAL, r->path, "doc %u out of range", doc);
    int rc = store_block(r, sc, doc, e);
    if (rc)
        return rc;
    /* walk the records, decoding more of the block as needed; an average
     * event needs about half a block */
    uint64_t est = (uint64_t)sc->rawlen * (doc - sc->first + 1) / sc->count;
    est += est / 8 + 512;
    if (est > sc->rawlen)
        est = sc->rawlen;
    if ((rc = store_decode(r, sc, (uint32_t)est, e)))
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        seg_cur c = {(const uint8_t *)sc->raw, (const uint8_t *)sc->raw + sc->have, 0};
        for (uint32_t d = sc->first;; d++) {
            uint64_t il = seg_get_varint(&c);
            const uint8_t *ip = seg_get_bytes(&c, il);
            uint64_t jl = seg_get_varint(&c);
            const uint8_t *jp = seg_get_bytes(&c, jl);
            if (c.bad)
                break;
            if (d == doc) {
                if (id) {
                    *id = (const char *)ip;
                    *idlen = il;
                }
                if (json) {
                    *json = (const char *)jp;
                    *jlen = jl;
                }
                return SEG_OK;
            }
        }
        if (sc->have == sc->rawlen)
            break;
        if ((rc = store_decode(r, sc, sc->rawlen, e)))
            return rc;
    }
    sc->gen = 0;
    mark_failed(r, "corrupt event record");
    return CORRUPT(r, e, "corrupt event record in store");
}

int seg_reader_ids(seg_reader *r, const uint8_t **recs, uint32_t *n, seg_err *e)
{
    seg_cur c;
    if (sec_get(r, r->s_ids, &c, e))
        return SEG_ECORRUPT;
    uint32_t cnt = seg_get_u32(&c);
    if (c.bad || (uint64_t)cnt * 12 > (uint64_t)(c.end - c.p)) {
        mark_failed(r, "bad id index");
        return CORRUPT(r, e, "bad id index");
    }
    *recs = c.p;
    *n = cnt;
    return SEG_OK;
}

int seg_reader_id_find(seg_reader *r, seg_store_cur *sc, const char *id, size_t n, uint32_t *doc,
                       seg_err *e)
{
    const uint8_t *p;
    uint32_t cnt;
    if (seg_reader_ids(r, &p, &cnt, e))
        return -1;
    uint64_t h = seg_hash64(id, n);
    uint32_t lo = 0, hi = cnt;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (seg_rd_u64(p + (size_t)mid * 12) < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < cnt && seg_rd_u64(p + (size_t)lo * 12) == h; lo++) {
        uint32_t d = seg_rd_u32(p + (size_t)lo * 12 + 8);
        const char *sid;
        size_t sl;
        if (seg_reader_doc(r, sc, d, &sid, &sl, NULL, NULL, e))
            return -1;
        if (sl == n && !memcmp(sid, id, n)) {
            *doc = d;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* verify and dump                                                      */
/* ------------------------------------------------------------------ */

typedef struct vctx {
    seg_report_fn report;
    void *ud;
    const char *path;
    long problems;
} vctx;

static void vproblem(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vproblem(vctx *v, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    v->problems++;
    if (v->report)
        v->report(v->ud, v->path, buf);
}

static void verify_postings(seg_reader *r, vctx *v, const seg_term *t, uint64_t *occ)
{
    seg_err e = {0};
    seg_post *p;
    if (seg_post_open(r, t, &p, &e)) {
        vproblem(v, "%s", e.msg);
        return;
    }
    uint32_t cnt = 0, prev = 0;
    for (uint32_t d = seg_post_doc(p); d != SEG_DOC_END; d = seg_post_next(p)) {
        if (cnt && d <= prev) {
            vproblem(v, "postings not increasing");
            break;
        }
        prev = d;
        cnt++;
        const uint32_t *pos;
        uint32_t np;
        if (seg_post_positions(p, &pos, &np)) {
            vproblem(v, "corrupt positions");
            break;
        }
        *occ += np;
    }
    if (seg_post_error(p))
        vproblem(v, "corrupt postings (df %u)", t->df);
    else if (cnt != t->df)
        vproblem(v, "postings hold %u docs, dictionary says %u", cnt, t->df);
    if (p->next != p->end && !seg_post_error(p))
        vproblem(v, "postings have %zu trailing bytes", (size_t)(p->end - p->next));
    seg_post_free(p);
}

static void noop_kw(void *ud, uint32_t doc, uint32_t ord)
{
    (void)ud;
    (void)doc;
    (void)ord;
}

static void noop_num(void *ud, uint32_t doc, double v)
{
    (void)ud;
    (void)doc;
    (void)v;
}

long seg_reader_verify(const char *path, seg_report_fn report, void *ud)
{
    vctx v = {report, ud, path, 0};
    seg_err e = {0};
    seg_reader *r;
    if (seg_reader_open(path, &r, &e)) {
        vproblem(&v, "%s", e.msg);
        return v.problems;
    }
    for (uint32_t i = 0; i < r->nsec; i++) {
        seg_cur c;
        seg_err se = {0};
        if (sec_get(r, (int)i, &c, &se))
            vproblem(&v, "%s", se.msg);
    }
    if (v.problems)
        goto out;
    /* times: descending, within the header's range */
    int64_t buf[SEG_TIME_BLOCK], prev = INT64_MAX;
    for (uint32_t b = 0; b * SEG_TIME_BLOCK < r->ndocs; b++) {
        int cnt = time_block(r, b, buf, &e);
        if (cnt < 0) {
            vproblem(&v, "%s", e.msg);
            break;
        }
        for (int k = 0; k < cnt; k++) {
            if (buf[k] > prev || buf[k] < r->min_time || buf[k] > r->max_time) {
                vproblem(&v, "event times out of order or out of the header's range at doc %u",
                         b * SEG_TIME_BLOCK + (uint32_t)k);
                b = UINT32_MAX / SEG_TIME_BLOCK;
                break;
            }
            prev = buf[k];
        }
    }
    /* dictionary order and every posting list */
    seg_dict_iter *it;
    if (seg_dict_iter_open(r, NULL, 0, &it, &e) == SEG_OK) {
        seg_term t;
        uint8_t last[SEG_MAX_KEY + 16];
        uint32_t lastlen = 0, nterms = 0;
        uint64_t occ = 0;
        int rc;
        while ((rc = seg_dict_iter_next(it, &t, &e)) == 1) {
            if (nterms && key_cmp(last, lastlen, t.key, t.key_len) >= 0) {
                vproblem(&v, "term dictionary out of order at term %u", nterms);
                break;
            }
            uint8_t kind = t.key[t.key_len - 1];
            uint16_t fid = (uint16_t)(t.key[t.key_len - 3] << 8 | t.key[t.key_len - 2]);
            if (kind > SEG_K_EXISTS || fid >= r->nfields || t.key[t.key_len - 4] != 0) {
                vproblem(&v, "bad term key at term %u", nterms);
                break;
            }
            memcpy(last, t.key, t.key_len);
            lastlen = t.key_len;
            verify_postings(r, &v, &t, &occ);
            nterms++;
        }
        if (rc < 0)
            vproblem(&v, "%s", e.msg);
        else if (nterms != it->nterms)
            vproblem(&v, "dictionary holds %u terms, header says %u", nterms, it->nterms);
        seg_dict_iter_free(it);
    } else {
        vproblem(&v, "%s", e.msg);
    }
    /* numeric columns */
    for (uint32_t f = 0; f < r->nfields; f++) {
        if (r->s_num[f] < 0)
            continue;
        seg_err ne = {0};
        if (seg_reader_num_scan(r, f, -1.0 / 0.0, 1, 1.0 / 0.0, 1, noop_num, NULL, &ne) == SEG_OK)
            continue;
        vproblem(&v, "%s", ne.msg);
    }
    /* keyword columns: every pair and every value */
    for (uint32_t f = 0; f < r->nfields; f++) {
        seg_keycol kc;
        seg_err ke = {0};
        int has = seg_reader_keycol(r, f, &kc, &ke);
        if (has < 0 || (has && seg_reader_keycol_scan(r, &kc, noop_kw, NULL, &ke))) {
            vproblem(&v, "%s", ke.msg);
            continue;
        }
        for (uint32_t o = 0; has && o < kc.ndict; o++) {
            const char *p;
            size_t n;
            if (seg_keycol_value(&kc, o, &p, &n)) {
                vproblem(&v, "keyword column of field %u: bad value offsets", f);
                break;
            }
        }
        /* the stored counts agree with the pairs */
        const uint8_t *cnts;
        int hc = has ? seg_reader_keycol_counts(r, f, &kc, &cnts, &ke) : 0;
        if (hc < 0) {
            vproblem(&v, "%s", ke.msg);
        } else if (hc) {
            uint32_t *cnt = seg_calloc(kc.ndict ? kc.ndict : 1, sizeof *cnt);
            uint32_t *last = seg_calloc(kc.ndict ? kc.ndict : 1, sizeof *last);
            if (cnt && last && seg_reader_keycol_count(r, &kc, cnt, last, &ke) == SEG_OK)
                for (uint32_t o = 0; o < kc.ndict; o++)
                    if (seg_rd_u32(cnts + (size_t)o * 4) != cnt[o]) {
                        vproblem(&v, "keyword counts of field %u disagree with its column", f);
                        break;
                    }
            seg_free(cnt);
            seg_free(last);
        }
    }
    /* every stored event */
    seg_store_cur *sc = seg_store_cur_new();
    for (uint32_t d = 0; sc && d < r->ndocs; d++) {
        const char *id, *js;
        size_t il, jl;
        seg_err de = {0};
        /* every block is decoded whole: a partial decode could miss its end */
        if (seg_reader_doc(r, sc, d, &id, &il, &js, &jl, &de) || store_decode(r, sc, sc->rawlen, &de)) {
            vproblem(&v, "%s", de.msg);
            break;
        }
    }
    seg_store_cur_free(sc);
out:
    seg_reader_close(r);
    return v.problems;
}

int seg_reader_store_codecs(seg_reader *r, int counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    seg_err e = {0};
    seg_cur c;
    if (sec_get(r, r->s_store, &c, &e))
        return e.code;
    seg_get_u32(&c);
    uint32_t nb = seg_get_u32(&c);
    if (c.bad || (uint64_t)nb * 24 > (uint64_t)(c.end - c.p))
        return SEG_ECORRUPT;
    for (uint32_t i = 0; i < nb; i++) {
        uint32_t codec = seg_rd_u32(c.p + (size_t)i * 24 + 20);
        if (codec > SEG_CODEC_ZSTD_COLS)
            return SEG_ECORRUPT;
        counts[codec]++;
    }
    return SEG_OK;
}

int seg_reader_dump(const char *path, void (*out)(void *ud, const char *line), void *ud)
{
    seg_err e = {0};
    seg_reader *r;
    char line[1024];
    if (seg_reader_open(path, &r, &e)) {
        char m[900];
        if (e.file[0])
            seg_err_str(&e, m, sizeof m);
        else
            snprintf(m, sizeof m, "%s", e.msg);
        snprintf(line, sizeof line, "error: %s%s%s", e.file[0] ? "" : path, e.file[0] ? "" : ": ", m);
        out(ud, line);
        return e.code;
    }
    char a[40], b[40];
    seg_time_format(r->min_time, a);
    seg_time_format(r->max_time, b);
    snprintf(line, sizeof line, "segment %s: version %u, %u events, %s .. %s, %zu bytes%s", path,
             r->version, r->ndocs, a, b, r->size, r->flags & SEG_FLAG_COMPACT ? ", compact store" : "");
    out(ud, line);
    static const char *const names[] = {"?",     "FIELDS", "TIMES", "TERMDICT", "POSTINGS", "NUMCOL",
                                        "STORE", "IDS",    "KEYCOL", "STOREDICT", "KEYCOUNT"};
    for (uint32_t i = 0; i < r->nsec; i++) {
        section *s = &r->sec[i];
        snprintf(line, sizeof line, "section %u: %s arg %u offset %llu length %llu checksum %016llx", i,
                 s->kind < sizeof names / sizeof *names ? names[s->kind] : "?", s->arg, (unsigned long long)s->off,
                 (unsigned long long)s->len, (unsigned long long)s->sum);
        out(ud, line);
    }
    int codecs[3];
    if (seg_reader_store_codecs(r, codecs) == SEG_OK) {
        snprintf(line, sizeof line, "store: %d blocks: %d laid out by columns (zstd), %d zstd, %d lz4",
                 codecs[0] + codecs[1] + codecs[2], codecs[SEG_CODEC_ZSTD_COLS], codecs[SEG_CODEC_ZSTD],
                 codecs[SEG_CODEC_LZ4]);
        out(ud, line);
    }
    for (uint32_t f = 0; f < r->nfields; f++) {
        seg_field *fi = &r->fields[f];
        snprintf(line, sizeof line, "field %u: %.*s flags %s%s%s%s docs %u numbers %u [%g, %g]", f,
                 (int)fi->name_len, fi->name, fi->flags & SEG_F_STRING ? "s" : "",
                 fi->flags & SEG_F_INT ? "i" : "", fi->flags & SEG_F_REAL ? "r" : "",
                 fi->flags & SEG_F_BOOL ? "b" : "", fi->docs, fi->nnum, fi->num_min, fi->num_max);
        out(ud, line);
    }
    seg_dict_iter *it;
    if (seg_dict_iter_open(r, NULL, 0, &it, &e) == SEG_OK) {
        seg_term t;
        unsigned shown = 0;
        while (shown < 50 && seg_dict_iter_next(it, &t, &e) == 1) {
            uint16_t fid = (uint16_t)(t.key[t.key_len - 3] << 8 | t.key[t.key_len - 2]);
            if (t.inl)
                snprintf(line, sizeof line, "term %.*s field %u kind %u df 1 inline %u bytes",
                         (int)(t.key_len - 4), (const char *)t.key, fid, t.key[t.key_len - 1], t.inl_len);
            else
                snprintf(line, sizeof line, "term %.*s field %u kind %u df %u postings %llu+%llu",
                         (int)(t.key_len - 4), (const char *)t.key, fid, t.key[t.key_len - 1], t.df,
                         (unsigned long long)t.post_off, (unsigned long long)t.post_len);
            out(ud, line);
            shown++;
        }
        snprintf(line, sizeof line, "(%u terms in all; first %u shown)", it->nterms, shown);
        out(ud, line);
        seg_dict_iter_free(it);
    }
    seg_reader_close(r);
    return 0;
}
