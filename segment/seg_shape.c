/*
 * seg_shape.c -- the event store's column layout (STORE codec 2,
 * SEG_CODEC_ZSTD_COLS, segment version >= 4).
 *
 * Events of one source repeat their keys and punctuation and vary in their
 * values.  A raw STORE block (per doc: varint id length, id bytes, varint
 * JSON length, JSON bytes) interleaves the two, so a fast zstd level finds
 * only short matches.  Before compression the writer lays a block out by
 * columns, and a reader lays it back byte for byte:
 *
 *   varint ndocs                  the block's records (= the block index's
 *                                 doc count)
 *   varint nshapes                1 .. ndocs
 *   nshapes x {shape bytes, 0x0A} the distinct shapes, in order of first use
 *   ndocs x varint shape          each record's shape (< nshapes)
 *   ndocs x {varint id length, id bytes}
 *   varint ncols
 *   ncols x varint (length << 1 | dictionary)   of each column's bytes
 *   the columns' bytes            column 0 first, no gaps
 *
 * A record's SHAPE is its JSON text with each string value (quotes
 * included) replaced by the byte 0x01 and each number by 0x02; keys,
 * punctuation, whitespace, true, false and null stay.  Outside strings, a
 * number is a '-' or a digit and the bytes 0-9 + - . e E that follow it.
 * Records with equal shapes share one.  Every string left in a shape is a
 * key.  Reading a shape: '"' opens a key, which ends at the next '"' that
 * is not taken by a backslash ('\' takes the byte after it as it is).
 *
 * A value goes to the COLUMN of its key: the last key before it in its
 * shape (the empty key when there is none; keys compare as their bytes
 * between the quotes).  Columns are numbered in the order their keys first
 * own a placeholder, reading shape 0, then 1, ..., each from its start (a
 * key that owns none, such as an object's, takes no number).  A column's values are in record order; a value is a string's
 * bytes between its quotes (escapes as written) or a number's text.  A
 * plain column (dictionary bit 0) is its values, each followed by 0x0A.  A
 * dictionary column (bit 1: few distinct values, such as levels, methods,
 * hosts) is varint ndict (1..256), ndict distinct values each followed by
 * 0x0A, then packed(index of each value) (seg.h: u8 bit width, then the
 * indexes LSB first); the number of values is the column's uses counted
 * over the records' shapes.  The record's JSON is its shape with each 0x01
 * replaced by '"', the next value of the column, '"', and each 0x02 by the
 * next value.
 *
 * The writer lays out a block so only when no JSON of it holds the byte
 * 0x01, 0x02 or 0x0A, no string holds a byte below 0x20 (escaped or not)
 * and every string is closed (true of every valid JSON line); otherwise
 * it stores the block raw (codec 1).  Whatever the bytes, the reader
 * either rebuilds exactly the block index's raw length from them or
 * reports the block corrupt: counts, lengths, shape indexes,
 * column numbers and dictionary indexes are checked against what is there,
 * every column must be used up exactly, and the values may not outnumber
 * the raw bytes (each gives at least one).
 *
 * Why: on bench/gen's events a 32 KiB block laid out by columns compresses
 * ~20% smaller at zstd level 1 (plain columns ~15%; zstd spends bytes on
 * each repeat of a short value, a dictionary index costs its bits); see
 * docs/performance.md.
 */
#include "segment/seg.h"
#include "segment/seg_idtab.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum { SH_STR = 1, SH_NUM = 2, SH_END = 0x0A };
/* A column is written as a dictionary when it has at least SH_DICT_MIN
 * values and at most a quarter as many distinct ones, and no more than
 * SH_DICT_MAX (indexes of at most 8 bits). */
#define SH_DICT_MIN 8
#define SH_DICT_MAX 256

/* ---- keys to column numbers (both directions) ---- */

typedef struct {
    uint64_t h;
    uint32_t off, len; /* key bytes in keys */
} km_ent;

typedef struct {
    seg_buf keys;
    km_ent *e;         /* by column number */
    uint32_t n, cap;
    idtab tab;
} keymap;

static int km_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const keymap *m = ctx;
    return m->e[id].len == n && (n == 0 || !memcmp(m->keys.p + m->e[id].off, key, n));
}

static uint64_t km_hash(const void *ctx, uint32_t id) { return ((const keymap *)ctx)->e[id].h; }

static void km_reset(keymap *m)
{
    seg_buf_reset(&m->keys);
    idtab_clear(&m->tab);
    m->n = 0;
}

static void km_free(keymap *m)
{
    seg_buf_free(&m->keys);
    seg_free(m->e);
    seg_free(m->tab.slot);
}

/* The column of key k (numbered in order of first use).  0, or -1 when
 * out of memory. */
static int km_col(keymap *m, const uint8_t *k, uint32_t len, uint32_t *col)
{
    if (!m->tab.slot && idtab_init(&m->tab, 64))
        return -1;
    uint64_t h = seg_hash64(k, len);
    uint32_t *slot = idtab_probe(&m->tab, h, km_eq, m, k, len);
    if (*slot) {
        *col = *slot - 1;
        return 0;
    }
    size_t off = m->keys.n;
    seg_buf_put(&m->keys, k, len);
    km_ent *e = m->keys.oom ? NULL : seg_grow(m->e, m->n, &m->cap, 16, sizeof *e);
    if (!e) {
        seg_buf_truncate(&m->keys, off);
        return -1;
    }
    m->e = e;
    m->e[m->n] = (km_ent){h, (uint32_t)off, len};
    *slot = ++m->n;
    *col = m->n - 1;
    /* a table that cannot grow would fill: fail the block instead */
    return idtab_grow(&m->tab, m->n, km_hash, m);
}

/* ---- reading a shape (the one rule both directions share) ---- */

typedef struct {
    uint32_t at;  /* offset of the placeholder in the shape */
    uint32_t col;
    uint8_t kind; /* SH_STR or SH_NUM */
} slot;

typedef struct {
    slot *v;
    uint32_t n, cap;
} slots;

/* Appends the placeholders of shape s[0..n) to out, each with its column
 * (new keys numbered on from m).  0; 1 when a key is not closed; -1 out of
 * memory. */
static int shape_slots(const uint8_t *s, uint32_t n, keymap *m, slots *out)
{
    const uint8_t *key = (const uint8_t *)"";
    uint32_t klen = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"') {
            uint32_t k = i + 1;
            while (k < n && s[k] != '"')
                k += s[k] == '\\' ? 2 : 1;
            if (k >= n)
                return 1;
            key = s + i + 1;
            klen = k - i - 1;
            i = k;
        } else if (c == SH_STR || c == SH_NUM) {
            slot *v = seg_grow(out->v, out->n, &out->cap, 64, sizeof *v);
            if (!v)
                return -1;
            out->v = v;
            slot *sl = &out->v[out->n];
            if (km_col(m, key, klen, &sl->col))
                return -1;
            sl->at = i;
            sl->kind = c;
            out->n++;
        }
    }
    return 0;
}

/* ---- writer ---- */

typedef struct {
    uint64_t h;
    uint32_t off, len;      /* in shapes (without the 0x0A) */
    uint32_t slot0, nslots; /* in the slots array */
} shape_ent;

typedef struct {
    uint32_t off, len; /* in the JSON: the value's bytes (no quotes) */
} span;

struct seg_shaper {
    seg_buf cur;      /* the current record's shape */
    span *vals;       /* its values */
    uint32_t nvals, capvals;
    seg_buf shapes;   /* the block's shapes, each followed by 0x0A */
    shape_ent *sh;
    uint32_t nsh, capsh;
    idtab shtab;      /* shape bytes -> index */
    slots sl;         /* every shape's placeholders */
    keymap km;
    seg_buf docshape, ids;
    seg_buf *cols;
    uint32_t *ncount;  /* values in each column */
    uint32_t capcols;
    seg_buf body;      /* the columns as written */
    uint64_t *clen;    /* each column's length << 1 | dictionary */
    /* a dictionary column being written: its values' indexes, its
     * distinct values (in the column dcol) and their table */
    uint32_t *idx;
    uint32_t capidx;
    span dv[SH_DICT_MAX];
    const uint8_t *dcol;
    idtab dtab;
};

seg_shaper *seg_shaper_new(void) { return seg_calloc(1, sizeof(seg_shaper)); }

void seg_shaper_free(seg_shaper *s)
{
    if (!s)
        return;
    seg_buf_free(&s->cur);
    seg_free(s->vals);
    seg_buf_free(&s->shapes);
    seg_free(s->sh);
    seg_free(s->shtab.slot);
    seg_free(s->sl.v);
    km_free(&s->km);
    seg_buf_free(&s->docshape);
    seg_buf_free(&s->ids);
    for (uint32_t i = 0; i < s->capcols; i++)
        seg_buf_free(&s->cols[i]);
    seg_free(s->cols);
    seg_free(s->ncount);
    seg_free(s->clen);
    seg_free(s->idx);
    seg_free(s->dtab.slot);
    seg_buf_free(&s->body);
    seg_free(s);
}

static int add_val(seg_shaper *s, size_t off, size_t len)
{
    span *v = seg_grow(s->vals, s->nvals, &s->capvals, 64, sizeof *v);
    if (!v)
        return -1;
    s->vals = v;
    s->vals[s->nvals++] = (span){(uint32_t)off, (uint32_t)len};
    return 0;
}

static int is_num_byte(uint8_t c)
{
    return (uint8_t)(c - '0') < 10 || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Index of the closing quote of the string whose contents start at j[i],
 * or n when the string is not closed or holds a byte below 0x20 (0x01,
 * 0x02 and 0x0A among them: such a record is not laid out). */
static size_t string_end(const uint8_t *j, size_t i, size_t n)
{
    for (;;) {
#ifdef __SSE2__
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
        while (n - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(j + i));
            /* unsigned v <= 0x1F: max(v, 0x1F) == 0x1F */
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                     _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
            int bits = _mm_movemask_epi8(m);
            if (bits) {
                i += (size_t)__builtin_ctz((unsigned)bits);
                break;
            }
            i += 16;
        }
#endif
        while (i < n && j[i] != '"' && j[i] != '\\' && j[i] >= 0x20)
            i++;
        if (i >= n || j[i] < 0x20)
            return n;
        if (j[i] == '"')
            return i;
        /* a backslash takes the next byte, which must not be a control
         * byte either (a 0x0A there would end the value's column entry) */
        if (i + 1 >= n || j[i + 1] < 0x20)
            return n;
        i += 2;
    }
}

/* Splits one JSON text into s->cur (its shape) and s->vals.  0, 1 when it
 * cannot be laid out, -1 out of memory. */
static int lex(seg_shaper *s, const uint8_t *j, size_t n)
{
    seg_buf_reset(&s->cur);
    s->nvals = 0;
    if (n > UINT32_MAX)
        return 1;
    size_t lit = 0; /* start of the bytes not yet copied to the shape */
    for (size_t i = 0; i < n;) {
        uint8_t c = j[i];
        if (c == '"') {
            size_t e = string_end(j, i + 1, n);
            if (e >= n)
                return 1;
            size_t k = e + 1;
            while (k < n && (j[k] == ' ' || j[k] == '\t' || j[k] == '\r'))
                k++;
            if (k < n && j[k] == ':') { /* a key: stays in the shape */
                i = e + 1;
                continue;
            }
            seg_buf_put(&s->cur, j + lit, i - lit);
            seg_buf_put_u8(&s->cur, SH_STR);
            if (add_val(s, i + 1, e - i - 1))
                return -1;
            i = lit = e + 1;
        } else if (c == '-' || (uint8_t)(c - '0') < 10) {
            size_t k = i + 1;
            while (k < n && is_num_byte(j[k]))
                k++;
            seg_buf_put(&s->cur, j + lit, i - lit);
            seg_buf_put_u8(&s->cur, SH_NUM);
            if (add_val(s, i, k - i))
                return -1;
            i = lit = k;
        } else if (c == SH_STR || c == SH_NUM || c == SH_END) {
            return 1;
        } else {
            i++;
        }
    }
    seg_buf_put(&s->cur, j + lit, n - lit);
    return s->cur.oom ? -1 : 0;
}

static int shape_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const seg_shaper *s = ctx;
    return s->sh[id].len == n && !memcmp(s->shapes.p + s->sh[id].off, key, n);
}

static uint64_t shape_hash(const void *ctx, uint32_t id) { return ((const seg_shaper *)ctx)->sh[id].h; }

/* The index of the current shape among the block's, added if new.  -1 out
 * of memory, -2 cannot be laid out. */
static int64_t shape_find(seg_shaper *s)
{
    if (!s->shtab.slot && idtab_init(&s->shtab, 64))
        return -1;
    uint64_t h = seg_hash64(s->cur.p, s->cur.n);
    uint32_t *slot = idtab_probe(&s->shtab, h, shape_eq, s, s->cur.p, s->cur.n);
    if (*slot)
        return *slot - 1;
    shape_ent *sv = seg_grow(s->sh, s->nsh, &s->capsh, 16, sizeof *sv);
    if (!sv)
        return -1;
    s->sh = sv;
    shape_ent *x = &s->sh[s->nsh];
    x->h = h;
    x->off = (uint32_t)s->shapes.n;
    x->len = (uint32_t)s->cur.n;
    x->slot0 = s->sl.n;
    int rc = shape_slots(s->cur.p, (uint32_t)s->cur.n, &s->km, &s->sl);
    if (rc)
        return rc < 0 ? -1 : -2;
    x->nslots = s->sl.n - x->slot0;
    seg_buf_put(&s->shapes, s->cur.p, s->cur.n);
    seg_buf_put_u8(&s->shapes, SH_END);
    if (s->shapes.oom || s->shapes.n > UINT32_MAX)
        return -1;
    *slot = ++s->nsh;
    return idtab_grow(&s->shtab, s->nsh, shape_hash, s) ? -1 : (int64_t)s->nsh - 1;
}

static void shaper_reset(seg_shaper *s)
{
    seg_buf_reset(&s->shapes);
    s->nsh = 0;
    idtab_clear(&s->shtab);
    s->sl.n = 0;
    km_reset(&s->km);
    seg_buf_reset(&s->docshape);
    seg_buf_reset(&s->ids);
    for (uint32_t i = 0; i < s->capcols; i++) {
        seg_buf_reset(&s->cols[i]);
        s->ncount[i] = 0;
    }
    seg_buf_reset(&s->body);
}

static int cols_grow(seg_shaper *s)
{
    uint32_t cap = s->capcols ? s->capcols : 16;
    while (cap < s->km.n)
        cap *= 2;
    seg_buf *nc = seg_realloc(s->cols, (size_t)cap * sizeof *nc);
    if (!nc)
        return -1;
    s->cols = nc;
    memset(nc + s->capcols, 0, (size_t)(cap - s->capcols) * sizeof *nc);
    uint32_t *cnt = seg_realloc(s->ncount, (size_t)cap * sizeof *cnt);
    if (!cnt)
        return -1;
    s->ncount = cnt;
    memset(cnt + s->capcols, 0, (size_t)(cap - s->capcols) * sizeof *cnt);
    uint64_t *cl = seg_realloc(s->clen, (size_t)cap * sizeof *cl);
    if (!cl)
        return -1;
    s->clen = cl;
    s->capcols = cap;
    return 0;
}

/* Writes column i to s->body as a dictionary when that pays (few
 * distinct values): varint ndict, the values each followed by 0x0A, then
 * packed(index of each value).  1 when written, 0 when the column is
 * better plain, -1 out of memory. */
static int dict_eq(const void *ctx, uint32_t id, const void *key, size_t n)
{
    const seg_shaper *s = ctx;
    return s->dv[id].len == n && !memcmp(s->dcol + s->dv[id].off, key, n);
}

static int put_dict(seg_shaper *s, uint32_t i)
{
    const seg_buf *c = &s->cols[i];
    uint32_t count = s->ncount[i], lim = count / 4;
    if (count < SH_DICT_MIN)
        return 0;
    if (lim > SH_DICT_MAX)
        lim = SH_DICT_MAX;
    if (count > s->capidx) {
        uint32_t *ni = seg_realloc(s->idx, (size_t)count * sizeof *ni);
        if (!ni)
            return -1;
        s->idx = ni;
        s->capidx = count;
    }
    /* never over half full: at most SH_DICT_MAX of 2 * SH_DICT_MAX slots */
    if (!s->dtab.slot && idtab_init(&s->dtab, 2 * SH_DICT_MAX))
        return -1;
    idtab_clear(&s->dtab);
    s->dcol = c->p;
    uint32_t nd = 0;
    const uint8_t *p = c->p, *end = c->p + c->n;
    for (uint32_t k = 0; k < count; k++) {
        const uint8_t *e = memchr(p, SH_END, (size_t)(end - p));
        if (!e)
            return 0; /* cannot happen: every value was ended */
        uint32_t len = (uint32_t)(e - p);
        uint32_t *slot = idtab_probe(&s->dtab, seg_hash64(p, len), dict_eq, s, p, len);
        if (!*slot) {
            if (nd == lim)
                return 0;
            s->dv[nd] = (span){(uint32_t)(p - c->p), len};
            *slot = ++nd;
        }
        s->idx[k] = *slot - 1;
        p = e + 1;
    }
    seg_buf_put_varint(&s->body, nd);
    for (uint32_t k = 0; k < nd; k++) {
        seg_buf_put(&s->body, c->p + s->dv[k].off, s->dv[k].len);
        seg_buf_put_u8(&s->body, SH_END);
    }
    seg_buf_put_packed(&s->body, s->idx, count);
    return s->body.oom ? -1 : 1;
}

int seg_shape_split(seg_shaper *s, const uint8_t *raw, size_t n, seg_buf *out)
{
    shaper_reset(s);
    seg_cur c = {raw, raw + n, 0};
    uint64_t ndocs = 0;
    while (c.p < c.end) {
        uint64_t il = seg_get_varint(&c);
        const uint8_t *id = seg_get_bytes(&c, il);
        uint64_t jl = seg_get_varint(&c);
        const uint8_t *js = seg_get_bytes(&c, jl);
        if (c.bad)
            return SEG_EINVAL;
        int rc = lex(s, js, jl);
        if (rc)
            return rc < 0 ? SEG_ENOMEM : 1;
        int64_t x = shape_find(s);
        if (x < 0)
            return x == -1 ? SEG_ENOMEM : 1;
        const shape_ent *sh = &s->sh[x];
        if (sh->nslots != s->nvals)
            return 1; /* cannot happen: the shape was read from these values */
        if (s->km.n > s->capcols && cols_grow(s))
            return SEG_ENOMEM;
        for (uint32_t v = 0; v < s->nvals; v++) {
            uint32_t ci = s->sl.v[sh->slot0 + v].col;
            seg_buf_put(&s->cols[ci], js + s->vals[v].off, s->vals[v].len);
            seg_buf_put_u8(&s->cols[ci], SH_END);
            s->ncount[ci]++;
        }
        seg_buf_put_varint(&s->docshape, (uint64_t)x);
        seg_buf_put_varint(&s->ids, il);
        seg_buf_put(&s->ids, id, il);
        ndocs++;
    }
    int oom = s->docshape.oom || s->ids.oom;
    for (uint32_t i = 0; i < s->km.n; i++) {
        size_t at = s->body.n;
        oom |= s->cols[i].oom;
        int dict = oom ? 0 : put_dict(s, i);
        if (dict < 0)
            return SEG_ENOMEM;
        if (!dict)
            seg_buf_put(&s->body, s->cols[i].p, s->cols[i].n);
        s->clen[i] = (uint64_t)(s->body.n - at) << 1 | (uint64_t)dict;
    }
    seg_buf_put_varint(out, ndocs);
    seg_buf_put_varint(out, s->nsh);
    seg_buf_put(out, s->shapes.p, s->shapes.n);
    seg_buf_put(out, s->docshape.p, s->docshape.n);
    seg_buf_put(out, s->ids.p, s->ids.n);
    seg_buf_put_varint(out, s->km.n);
    for (uint32_t i = 0; i < s->km.n; i++)
        seg_buf_put_varint(out, s->clen[i]);
    seg_buf_put(out, s->body.p, s->body.n);
    return oom || s->body.oom || out->oom ? SEG_ENOMEM : SEG_OK;
}

/* ---- reader ---- */

/* The first 0x0A in [p, end), or NULL.  Values are short: eight bytes at a
 * time (a zero byte of x ^ 0x0A...0A marks it). */
static const uint8_t *find_nl(const uint8_t *p, const uint8_t *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL, nl = 0x0A0A0A0A0A0A0A0AULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= nl;
        uint64_t z = (w - ones) & ~w & highs;
        if (z)
            return p + (__builtin_ctzll(z) >> 3);
        p += 8;
    }
    while (p < end && *p != SH_END)
        p++;
    return p < end ? p : NULL;
}

/* memcpy of len bytes; most values and shape pieces are short, so with
 * room to spare on both sides sixteen bytes are copied at once (an
 * inlined move) instead of calling memcpy for each. */
static inline uint8_t *copy(uint8_t *o, const uint8_t *oend, const uint8_t *p, const uint8_t *pend, size_t len)
{
    if (len <= 16 && oend - o >= 16 && pend - p >= 16)
        memcpy(o, p, 16);
    else
        memcpy(o, p, len);
    return o + len;
}

/* A column as the reader walks it. */
typedef struct {
    const uint8_t *p, *end; /* plain: the next value; dictionary: unused */
    uint64_t count;         /* values in the column (from the shapes) */
    uint32_t dict;          /* 1: dictionary-coded */
    uint32_t ndict;
    span *dv;               /* dictionary values (offsets into src) */
    uint32_t *idx;          /* dictionary: each value's index */
    uint64_t k;             /* values taken so far */
} rcol;

/* Reads dictionary column c (its bytes at c->p..c->end): the values and
 * the packed indexes, all below ndict.  0, SEG_ECORRUPT or SEG_ENOMEM. */
static int read_dict(const uint8_t *src, rcol *c)
{
    seg_cur cc = {c->p, c->end, 0};
    uint64_t nd = seg_get_varint(&cc);
    if (cc.bad || nd == 0 || nd > SH_DICT_MAX || nd > c->count)
        return SEG_ECORRUPT;
    c->ndict = (uint32_t)nd;
    if (!(c->dv = seg_malloc(nd * sizeof *c->dv)) || !(c->idx = seg_malloc((c->count + 1) * sizeof *c->idx)))
        return SEG_ENOMEM;
    for (uint32_t k = 0; k < nd; k++) {
        const uint8_t *e = find_nl(cc.p, cc.end);
        if (!e)
            return SEG_ECORRUPT;
        c->dv[k] = (span){(uint32_t)(cc.p - src), (uint32_t)(e - cc.p)};
        cc.p = e + 1;
    }
    if (seg_get_packed(&cc, c->idx, c->count) || cc.p != cc.end)
        return SEG_ECORRUPT;
    for (uint64_t k = 0; k < c->count; k++)
        if (c->idx[k] >= nd)
            return SEG_ECORRUPT;
    return SEG_OK;
}

int seg_shape_join(const uint8_t *src, size_t n, uint32_t ndocs, uint8_t *dst, size_t rawlen)
{
    seg_cur c = {src, src + n, 0};
    int rc = SEG_ECORRUPT;
    struct sh {
        const uint8_t *p;
        uint32_t len, slot0, nslots;
        uint64_t docs;
    } *sh = NULL;
    uint32_t *docshape = NULL;
    rcol *col = NULL;
    uint64_t ncols = 0;
    span *vals = NULL;
    slots sl = {0};
    keymap km = {0};

    if (n > UINT32_MAX)
        goto out; /* offsets into src are 32 bits */
    uint64_t nd = seg_get_varint(&c), nsh = seg_get_varint(&c);
    if (c.bad || nd != ndocs || nsh == 0 || nsh > nd)
        goto out;
    /* every shape takes at least its 0x0A; every record a byte of shape
     * index and one of id length */
    if (nsh > (uint64_t)(c.end - c.p) || nd > (uint64_t)(c.end - c.p) / 2)
        goto out;
    if (!(sh = seg_calloc(nsh, sizeof *sh)) || !(docshape = seg_malloc(nd * sizeof *docshape))) {
        rc = SEG_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < nsh; i++) {
        const uint8_t *e = memchr(c.p, SH_END, (size_t)(c.end - c.p));
        if (!e)
            goto out;
        sh[i].p = c.p;
        sh[i].len = (uint32_t)(e - c.p);
        c.p = e + 1;
    }
    for (uint64_t d = 0; d < nd; d++) {
        uint64_t x = seg_get_varint(&c);
        if (c.bad || x >= nsh)
            goto out;
        docshape[d] = (uint32_t)x;
        sh[x].docs++;
    }
    seg_cur ids = c;
    for (uint64_t d = 0; d < nd; d++)
        seg_get_bytes(&c, seg_get_varint(&c));
    const uint8_t *ids_end = c.p;
    ncols = seg_get_varint(&c);
    if (c.bad || ncols > (uint64_t)(c.end - c.p)) {
        ncols = 0;
        goto out;
    }
    if (!(col = seg_calloc(ncols + 1, sizeof *col))) {
        ncols = 0;
        rc = SEG_ENOMEM;
        goto out;
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t v = seg_get_varint(&c), len = v >> 1;
        if (c.bad || len > (uint64_t)(c.end - c.p))
            goto out;
        col[i].dict = (uint32_t)(v & 1);
        col[i].end = (const uint8_t *)(uintptr_t)len; /* lengths first, pointers below */
        total += len;
    }
    if (c.bad || total != (uint64_t)(c.end - c.p))
        goto out;
    for (uint64_t i = 0; i < ncols; i++) {
        size_t len = (size_t)(uintptr_t)col[i].end;
        col[i].p = c.p;
        col[i].end = c.p + len;
        c.p += len;
    }
    /* each shape's placeholders and their columns; each column's count */
    uint32_t maxslots = 0;
    uint64_t values = 0;
    for (uint64_t i = 0; i < nsh; i++) {
        sh[i].slot0 = sl.n;
        int r = shape_slots(sh[i].p, sh[i].len, &km, &sl);
        if (r) {
            rc = r < 0 ? SEG_ENOMEM : SEG_ECORRUPT;
            goto out;
        }
        if (km.n > ncols)
            goto out;
        sh[i].nslots = sl.n - sh[i].slot0;
        maxslots = sh[i].nslots > maxslots ? sh[i].nslots : maxslots;
        for (uint32_t k = sh[i].slot0; k < sl.n; k++)
            col[sl.v[k].col].count += sh[i].docs;
        /* every value of a true layout gives a byte or more of JSON */
        values += (uint64_t)sh[i].nslots * sh[i].docs;
        if (values > rawlen)
            goto out;
    }
    for (uint64_t i = 0; i < ncols; i++)
        if (col[i].dict && (rc = read_dict(src, &col[i])) != SEG_OK)
            goto out;
    rc = SEG_ECORRUPT;
    if (!(vals = seg_malloc(((size_t)maxslots + 1) * sizeof *vals))) {
        rc = SEG_ENOMEM;
        goto out;
    }
    /* the records */
    uint8_t *o = dst, *oend = dst + rawlen;
    for (uint64_t d = 0; d < nd; d++) {
        const struct sh *s = &sh[docshape[d]];
        const slot *sv = s->nslots ? sl.v + s->slot0 : NULL;
        uint64_t il = seg_get_varint(&ids);
        const uint8_t *id = seg_get_bytes(&ids, il);
        if (ids.bad)
            goto out;
        /* find the values first: the JSON's length comes before it */
        uint64_t jl = (uint64_t)s->len - s->nslots;
        for (uint32_t k = 0; k < s->nslots; k++) {
            rcol *cc = &col[sv[k].col];
            if (cc->dict) {
                vals[k] = cc->dv[cc->idx[cc->k++]];
            } else {
                const uint8_t *e = find_nl(cc->p, cc->end);
                if (!e)
                    goto out;
                vals[k].off = (uint32_t)(cc->p - src);
                vals[k].len = (uint32_t)(e - cc->p);
                cc->p = e + 1;
            }
            jl += vals[k].len + (sv[k].kind == SH_STR ? 2 : 0);
        }
        if ((uint64_t)(oend - o) < seg_varint_len(il) + il + seg_varint_len(jl) + jl)
            goto out;
        o = seg_wr_varint(o, il);
        o = copy(o, oend, id, src + n, il);
        o = seg_wr_varint(o, jl);
        uint32_t at = 0;
        for (uint32_t k = 0; k < s->nslots; k++) {
            o = copy(o, oend, s->p + at, src + n, sv[k].at - at);
            if (sv[k].kind == SH_STR)
                *o++ = '"';
            o = copy(o, oend, src + vals[k].off, src + n, vals[k].len);
            if (sv[k].kind == SH_STR)
                *o++ = '"';
            at = sv[k].at + 1;
        }
        o = copy(o, oend, s->p + at, src + n, s->len - at);
    }
    if (o != oend || ids.p != ids_end)
        goto out;
    /* plain columns used up (dictionary ones were counted exactly) */
    for (uint64_t i = 0; i < ncols; i++)
        if (!col[i].dict && col[i].p != col[i].end)
            goto out;
    rc = SEG_OK;
out:
    for (uint64_t i = 0; i < ncols; i++) {
        seg_free(col[i].dv);
        seg_free(col[i].idx);
    }
    seg_free(col);
    seg_free(sh);
    seg_free(docshape);
    seg_free(vals);
    seg_free(sl.v);
    km_free(&km);
    return rc;
}
