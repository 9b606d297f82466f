/*
 * srch_exec.c -- evaluates a query tree over one segment.
 *
 * A query becomes a tree of iterators over doc ids, each with next() and
 * seek(target) (advance to the first doc >= target):
 *   post     one term's postings (seek skips whole 128-doc blocks)
 *   list     a sorted doc array (numeric ranges, wide prefix unions)
 *   all      every doc
 *   or       union of children
 *   and      intersection: leapfrog from the cheapest child, plus
 *            "excluded" children (NOT) that must not hold the doc
 *   phrase   intersection whose positions must follow each other
 * Pruning happens while building: a field the segment lacks, or a range
 * outside the field's min/max, gives the empty iterator, and empties fold
 * away (AND with empty is empty, OR drops them).
 */
#include "searcher/srch_int.h"
#include "searcher/srch_exec.h"

#include <stdlib.h>
#include <string.h>

#define END SEG_DOC_END
#define PREFIX_MAX_TERMS 100000
#define PREFIX_INLINE 16

typedef struct it it;
typedef struct it_ops {
    uint32_t (*next)(it *);
    uint32_t (*seek)(it *, uint32_t);
    void (*free)(it *);
    int (*positions)(it *, const uint32_t **, uint32_t *);
} it_ops;

struct it {
    const it_ops *ops;
    uint32_t doc;
    uint64_t cost;
    int empty;       /* the empty iterator */
    int all;         /* matches every doc */
};

static void it_free(it *i)
{
    if (i)
        i->ops->free(i);
}

static int no_positions(it *i, const uint32_t **p, uint32_t *n)
{
    (void)i;
    (void)p;
    *n = 0;
    return 0;
}

/* ---- empty ---- */
static uint32_t none_next(it *i) { return i->doc = END; }
static uint32_t none_seek(it *i, uint32_t t)
{
    (void)t;
    return i->doc = END;
}
static void plain_free(it *i) { seg_free(i); }
static const it_ops none_ops = {none_next, none_seek, plain_free, no_positions};

static it *it_none(void)
{
    it *i = seg_calloc(1, sizeof *i);
    if (i) {
        i->ops = &none_ops;
        i->doc = END;
        i->empty = 1;
    }
    return i;
}

/* ---- all ---- */
typedef struct it_all_t {
    it b;
    uint32_t n;
} it_all_t;
static uint32_t all_next(it *i)
{
    it_all_t *a = (it_all_t *)i;
    return i->doc = (i->doc + 1 < a->n) ? i->doc + 1 : END;
}
static uint32_t all_seek(it *i, uint32_t t)
{
    it_all_t *a = (it_all_t *)i;
    if (i->doc != END && i->doc < t)
        i->doc = t < a->n ? t : END;
    return i->doc;
}
static const it_ops all_ops = {all_next, all_seek, plain_free, no_positions};

static it *it_all(uint32_t n)
{
    it_all_t *a = seg_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->b.ops = &all_ops;
    a->n = n;
    a->b.doc = n ? 0 : END;
    a->b.cost = n;
    a->b.all = 1;
    return &a->b;
}

/* ---- postings ---- */
typedef struct it_post_t {
    it b;
    seg_post *p;
} it_post_t;
static uint32_t post_next(it *i) { return i->doc = seg_post_next(((it_post_t *)i)->p); }
static uint32_t post_seek(it *i, uint32_t t) { return i->doc = seg_post_seek(((it_post_t *)i)->p, t); }
static void post_free(it *i)
{
    seg_post_free(((it_post_t *)i)->p);
    seg_free(i);
}
static int post_positions(it *i, const uint32_t **p, uint32_t *n) { return seg_post_positions(((it_post_t *)i)->p, p, n); }
static const it_ops post_ops = {post_next, post_seek, post_free, post_positions};

static it *it_post(seg_reader *r, const seg_term *t, seg_err *e)
{
    seg_post *p;
    if (seg_post_open(r, t, &p, e))
        return NULL;
    it_post_t *i = seg_calloc(1, sizeof *i);
    if (!i) {
        seg_post_free(p);
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    i->b.ops = &post_ops;
    i->p = p;
    i->b.doc = seg_post_doc(p);
    i->b.cost = t->df;
    return &i->b;
}

/* ---- sorted list ---- */
typedef struct it_list_t {
    it b;
    uint32_t *d;
    size_t n, k;
} it_list_t;
static uint32_t list_next(it *i)
{
    it_list_t *l = (it_list_t *)i;
    if (i->doc == END)
        return END;
    l->k++;
    return i->doc = l->k < l->n ? l->d[l->k] : END;
}
static uint32_t list_seek(it *i, uint32_t t)
{
    it_list_t *l = (it_list_t *)i;
    if (i->doc == END || i->doc >= t)
        return i->doc;
    /* galloping search forward */
    size_t lo = l->k, step = 1, hi;
    while (lo + step < l->n && l->d[lo + step] < t)
        step *= 2;
    hi = lo + step < l->n ? lo + step : l->n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (l->d[m] < t)
            lo = m + 1;
        else
            hi = m;
    }
    l->k = lo;
    return i->doc = lo < l->n ? l->d[lo] : END;
}
static void list_free(it *i)
{
    seg_free(((it_list_t *)i)->d);
    seg_free(i);
}
static const it_ops list_ops = {list_next, list_seek, list_free, no_positions};

/* Takes a bitmap of ndocs bits (freed here) and makes a list iterator. */
static it *it_from_bitmap(uint64_t *bm, uint32_t ndocs, seg_err *e)
{
    size_t cnt = 0, words = ((size_t)ndocs + 63) / 64;
    for (size_t w = 0; w < words; w++)
        cnt += (size_t)__builtin_popcountll(bm[w]);
    if (cnt == 0) {
        seg_free(bm);
        return it_none();
    }
    it_list_t *l = seg_calloc(1, sizeof *l);
    uint32_t *d = seg_malloc(cnt * sizeof *d);
    if (!l || !d) {
        seg_free(l);
        seg_free(d);
        seg_free(bm);
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t x = bm[w]; x; x &= x - 1)
            d[k++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
    seg_free(bm);
    l->b.ops = &list_ops;
    l->d = d;
    l->n = cnt;
    l->b.doc = d[0];
    l->b.cost = cnt;
    return &l->b;
}

/* ---- union ---- */
typedef struct it_or_t {
    it b;
    it **k;
    size_t n;
    uint32_t *pos;
    size_t poscap;
} it_or_t;
static uint32_t or_min(it_or_t *o)
{
    uint32_t m = END;
    for (size_t i = 0; i < o->n; i++)
        if (o->k[i]->doc < m)
            m = o->k[i]->doc;
    return o->b.doc = m;
}
static uint32_t or_next(it *i)
{
    it_or_t *o = (it_or_t *)i;
    uint32_t cur = i->doc;
    if (cur == END)
        return END;
    for (size_t j = 0; j < o->n; j++)
        if (o->k[j]->doc == cur)
            o->k[j]->ops->next(o->k[j]);
    return or_min(o);
}
static uint32_t or_seek(it *i, uint32_t t)
{
    it_or_t *o = (it_or_t *)i;
    if (i->doc == END || i->doc >= t)
        return i->doc;
    for (size_t j = 0; j < o->n; j++)
        o->k[j]->ops->seek(o->k[j], t);
    return or_min(o);
}
static void or_free(it *i)
{
    it_or_t *o = (it_or_t *)i;
    for (size_t j = 0; j < o->n; j++)
        it_free(o->k[j]);
    seg_free(o->k);
    seg_free(o->pos);
    seg_free(o);
}
static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}
static int or_positions(it *i, const uint32_t **p, uint32_t *n)
{
    it_or_t *o = (it_or_t *)i;
    size_t cnt = 0;
    for (size_t j = 0; j < o->n; j++) {
        if (o->k[j]->doc != i->doc)
            continue;
        const uint32_t *kp;
        uint32_t kn;
        int rc = o->k[j]->ops->positions(o->k[j], &kp, &kn);
        if (rc)
            return rc;
        if (cnt + kn > o->poscap) {
            size_t cap = (cnt + kn) * 2;
            uint32_t *q = seg_realloc(o->pos, cap * sizeof *q);
            if (!q)
                return SEG_ENOMEM;
            o->pos = q;
            o->poscap = cap;
        }
        if (kn)
            memcpy(o->pos + cnt, kp, kn * sizeof *kp);
        cnt += kn;
    }
    if (cnt > 1)
        qsort(o->pos, cnt, sizeof *o->pos, u32_cmp);
    *p = o->pos;
    *n = (uint32_t)cnt;
    return 0;
}
static const it_ops or_ops = {or_next, or_seek, or_free, or_positions};

/* Frees n iterators and their array. */
static void free_arr(it **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        it_free(a[i]);
    seg_free(a);
}

/* Takes ownership of the kids array; drops empty kids. */
static it *it_or(it **k, size_t n, seg_err *e)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i]->empty)
            it_free(k[i]);
        else
            k[m++] = k[i];
    }
    if (m == 0) {
        seg_free(k);
        return it_none();
    }
    if (m == 1) {
        it *x = k[0];
        seg_free(k);
        return x;
    }
    for (size_t i = 0; i < m; i++)
        if (k[i]->all) {
            /* OR with everything: keep only the "all" iterator */
            it *x = k[i];
            for (size_t j = 0; j < m; j++)
                if (j != i)
                    it_free(k[j]);
            seg_free(k);
            return x;
        }
    it_or_t *o = seg_calloc(1, sizeof *o);
    if (!o) {
        free_arr(k, m);
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    o->b.ops = &or_ops;
    o->k = k;
    o->n = m;
    for (size_t i = 0; i < m; i++)
        o->b.cost += k[i]->cost;
    or_min(o);
    return &o->b;
}

/* ---- intersection (with exclusions) and phrase ---- */
typedef struct it_and_t {
    it b;
    it **k;
    size_t n;
    it **x;
    size_t nx;
    int phrase;          /* kids are the phrase's tokens in order */
    uint32_t **pp;       /* phrase: positions per kid */
    uint32_t *pn;
    seg_err *e;          /* where a phrase's failure to read positions goes */
} it_and_t;

/* 1 when the kids' current doc holds the phrase, 0 when not, -1 when
 * positions could not be read (out of memory, corrupt: set in a->e, and
 * the search fails rather than missing the doc). */
static int phrase_match(it_and_t *a)
{
    const uint32_t *p0;
    uint32_t n0;
    int rc = a->k[0]->ops->positions(a->k[0], &p0, &n0);
    /* every kid owns its position buffer (one iterator per phrase token) */
    for (size_t j = 1; j < a->n && rc == 0; j++) {
        const uint32_t *pj;
        uint32_t nj;
        rc = a->k[j]->ops->positions(a->k[j], &pj, &nj);
        a->pp[j] = (uint32_t *)pj;
        a->pn[j] = nj;
    }
    if (rc) {
        if (!a->e->code)
            seg_err_set(a->e, rc == SEG_ECORRUPT ? SEG_ECORRUPT : SEG_ENOMEM, NULL,
                        rc == SEG_ECORRUPT ? "corrupt positions" : "out of memory");
        return -1;
    }
    for (uint32_t s = 0; s < n0; s++) {
        uint32_t base = p0[s];
        size_t j;
        for (j = 1; j < a->n; j++) {
            uint32_t want = base + (uint32_t)j;
            const uint32_t *pj = a->pp[j];
            uint32_t lo = 0, hi = a->pn[j];
            while (lo < hi) {
                uint32_t m = (lo + hi) / 2;
                if (pj[m] < want)
                    lo = m + 1;
                else
                    hi = m;
            }
            if (lo >= a->pn[j] || pj[lo] != want)
                break;
        }
        if (j == a->n)
            return 1;
    }
    return 0;
}

static uint32_t and_align(it_and_t *a, uint32_t target)
{
    for (;;) {
        uint32_t d = a->k[0]->ops->seek(a->k[0], target);
        if (d == END)
            return a->b.doc = END;
        int ok = 1;
        for (size_t j = 1; j < a->n; j++) {
            uint32_t dj = a->k[j]->ops->seek(a->k[j], d);
            if (dj == END)
                return a->b.doc = END;
            if (dj > d) {
                target = dj;
                ok = 0;
                break;
            }
        }
        if (!ok)
            continue;
        for (size_t j = 0; j < a->nx && ok; j++)
            if (a->x[j]->ops->seek(a->x[j], d) == d)
                ok = 0;
        if (ok && a->phrase) {
            int m = phrase_match(a);
            if (m < 0)
                return a->b.doc = END;
            ok = m;
        }
        if (ok)
            return a->b.doc = d;
        if (d == END - 1)
            return a->b.doc = END;
        target = d + 1;
    }
}
static uint32_t and_next(it *i)
{
    if (i->doc == END)
        return END;
    return and_align((it_and_t *)i, i->doc + 1);
}
static uint32_t and_seek(it *i, uint32_t t)
{
    if (i->doc == END || i->doc >= t)
        return i->doc;
    return and_align((it_and_t *)i, t);
}
static void and_free(it *i)
{
    it_and_t *a = (it_and_t *)i;
    for (size_t j = 0; j < a->n; j++)
        it_free(a->k[j]);
    for (size_t j = 0; j < a->nx; j++)
        it_free(a->x[j]);
    seg_free(a->k);
    seg_free(a->x);
    seg_free(a->pp);
    seg_free(a->pn);
    seg_free(a);
}
static const it_ops and_ops = {and_next, and_seek, and_free, no_positions};

static int cost_cmp(const void *pa, const void *pb)
{
    const it *a = *(it *const *)pa, *b = *(it *const *)pb;
    return a->cost < b->cost ? -1 : a->cost > b->cost;
}

/* Takes ownership of k[] and x[].  phrase: keep order, check positions. */
static it *it_and(it **k, size_t n, it **x, size_t nx, int phrase, seg_err *e)
{
    int empty = 0;
    for (size_t i = 0; i < n; i++)
        empty |= k[i]->empty;
    for (size_t i = 0; i < nx; i++)
        empty |= x[i]->all;
    /* drop excluded empties */
    size_t mx = 0;
    for (size_t i = 0; i < nx; i++) {
        if (x[i]->empty)
            it_free(x[i]);
        else
            x[mx++] = x[i];
    }
    nx = mx;
    if (empty) {
        free_arr(k, n);
        free_arr(x, nx);
        return it_none();
    }
    if (!phrase && n > 1) {
        /* "all" kids add nothing to an intersection: keep one only if alone */
        size_t m = 0;
        it *keep_all = NULL;
        for (size_t i = 0; i < n; i++) {
            if (!k[i]->all)
                k[m++] = k[i];
            else if (!keep_all)
                keep_all = k[i];
            else
                it_free(k[i]);
        }
        if (m == 0)
            k[m++] = keep_all;
        else
            it_free(keep_all);
        n = m;
    }
    if (n == 1 && nx == 0) {
        it *r = k[0];
        seg_free(k);
        seg_free(x);
        return r;
    }
    it_and_t *a = seg_calloc(1, sizeof *a);
    if (a && phrase) {
        a->pp = seg_calloc(n, sizeof *a->pp);
        a->pn = seg_calloc(n, sizeof *a->pn);
    }
    if (!a || (phrase && (!a->pp || !a->pn))) {
        if (a) {
            seg_free(a->pp);
            seg_free(a->pn);
            seg_free(a);
        }
        free_arr(k, n);
        free_arr(x, nx);
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    a->b.ops = &and_ops;
    a->k = k;
    a->n = n;
    a->x = x;
    a->nx = nx;
    a->phrase = phrase;
    a->e = e;
    if (!phrase)
        qsort(k, n, sizeof *k, cost_cmp);
    a->b.cost = k[0]->cost;
    for (size_t i = 1; i < n; i++)
        if (k[i]->cost < a->b.cost)
            a->b.cost = k[i]->cost;
    a->b.doc = 0;
    and_align(a, 0);
    return &a->b;
}

/* ------------------------------------------------------------------ */
/* Compiling a query tree for one segment                               */
/* ------------------------------------------------------------------ */

typedef struct cx {
    seg_reader *r;
    seg_err *e;
} cx;

static int push(it ***arr, size_t *n, size_t *cap, it *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        it **a = seg_realloc(*arr, c * sizeof *a);
        if (!a)
            return -1;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = x;
    return 0;
}

/* The field's id in this segment, -1 if absent. */
static int fid_of(cx *c, const qnode *q)
{
    return seg_reader_field_find(c->r, q->field, q->field_len);
}

/* Iterator for one exact key. */
static it *key_iter(cx *c, const char *tok, size_t n, uint16_t f, uint8_t kind)
{
    uint8_t key[SEG_TOK_MAX + 8];
    if (n > SEG_TOK_MAX)
        return it_none();
    size_t kn = seg_key_make(key, tok, n, f, kind);
    seg_term t;
    int rc = seg_dict_get(c->r, key, kn, &t, c->e);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        return it_none();
    t.kind = kind;
    return it_post(c->r, &t, c->e);
}

/* The TEXT terms of a token in every field (key pointers cleared: they
 * last only while the dictionary iterator does).  Returns 0 or -1. */
typedef struct fterm {
    seg_term t;
    uint32_t field;
} fterm;

static int token_terms(cx *c, const char *tok, size_t n, fterm **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (n > SEG_TOK_MAX)
        return 0;
    uint8_t from[SEG_TOK_MAX + 8];
    memcpy(from, tok, n);
    from[n] = 0;
    seg_dict_iter *di;
    if (seg_dict_iter_open(c->r, from, n + 1, &di, c->e))
        return -1;
    fterm *v = NULL;
    size_t nv = 0, cap = 0;
    seg_term t;
    int rc;
    while ((rc = seg_dict_iter_next(di, &t, c->e)) == 1) {
        if (t.key_len != n + 4 || memcmp(t.key, from, n + 1))
            break;
        if (t.kind != SEG_K_TEXT)
            continue;
        if (nv == cap) {
            cap = cap ? cap * 2 : 8;
            fterm *g = seg_realloc(v, cap * sizeof *v);
            if (!g) {
                seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
                rc = -1;
                break;
            }
            v = g;
        }
        v[nv].field = (uint32_t)(t.key[n + 1] << 8 | t.key[n + 2]);
        v[nv].t = t;
        v[nv++].t.key = NULL;
    }
    seg_dict_iter_free(di);
    if (rc < 0) {
        seg_free(v);
        return -1;
    }
    *out = v;
    *nout = nv;
    return 0;
}

static it *phrase_iter(cx *c, const qnode *q, int f);

/* The union, over the fields holding token tok: its postings, or when
 * phrase is set, that phrase within the field (positions of two fields
 * are not comparable). */
static it *any_field_iter(cx *c, const char *tok, size_t n, const qnode *phrase)
{
    fterm *ts;
    size_t nt;
    if (token_terms(c, tok, n, &ts, &nt))
        return NULL;
    it **k = NULL;
    size_t nk = 0, cap = 0;
    for (size_t i = 0; i < nt; i++) {
        it *x = phrase ? phrase_iter(c, phrase, (int)ts[i].field) : it_post(c->r, &ts[i].t, c->e);
        if (!x || push(&k, &nk, &cap, x)) {
            it_free(x);
            seg_free(ts);
            free_arr(k, nk);
            if (!c->e->code)
                seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
            return NULL;
        }
    }
    seg_free(ts);
    return it_or(k, nk, c->e);
}

/* One token, in field f (>= 0) or in any field (f < 0). */
static it *token_iter(cx *c, const char *tok, size_t n, int f)
{
    if (f >= 0)
        return key_iter(c, tok, n, (uint16_t)f, SEG_K_TEXT);
    return any_field_iter(c, tok, n, NULL);
}

static void set_bit(void *ud, uint32_t doc, double v)
{
    (void)v;
    uint64_t *bm = ud;
    bm[doc / 64] |= 1ull << (doc % 64);
}

/* Docs with a numeric value of field f in the range (pruned by the field's
 * min/max, then by each column block's min/max). */
static it *num_iter(cx *c, int f, double lo, int lo_incl, double hi, int hi_incl)
{
    const seg_field *fi = seg_reader_field(c->r, (uint32_t)f);
    if (!fi->nnum || fi->num_max < lo || (fi->num_max == lo && !lo_incl) || fi->num_min > hi ||
        (fi->num_min == hi && !hi_incl))
        return it_none();
    uint32_t nd = seg_reader_ndocs(c->r);
    uint64_t *bm = seg_calloc(((size_t)nd + 63) / 64, 8);
    if (!bm)
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
    if (seg_reader_num_scan(c->r, (uint32_t)f, lo, lo_incl, hi, hi_incl, set_bit, bm, c->e)) {
        seg_free(bm);
        return NULL;
    }
    return it_from_bitmap(bm, nd, c->e);
}

/* The phrase of q's tokens in field f: positions count within a field
 * (each of its values starts one past the previous value's last token). */
static it *phrase_iter(cx *c, const qnode *q, int f)
{
    it **k = seg_calloc(q->ntoks, sizeof *k);
    if (!k)
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
    for (size_t i = 0; i < q->ntoks; i++) {
        k[i] = token_iter(c, q->toks[i], q->tok_lens[i], f);
        if (!k[i]) {
            free_arr(k, i);
            return NULL;
        }
    }
    return it_and(k, q->ntoks, NULL, 0, 1, c->e);
}

static it *text_iter(cx *c, const qnode *q)
{
    int f = -1;
    if (q->field) {
        f = fid_of(c, q);
        if (f < 0)
            return it_none();
    }
    it *txt;
    if (q->ntoks == 0) {
        txt = it_none();
    } else if (q->ntoks == 1) {
        txt = token_iter(c, q->toks[0], q->tok_lens[0], f);
    } else if (f >= 0) {
        txt = phrase_iter(c, q, f);
    } else {
        txt = any_field_iter(c, q->toks[0], q->tok_lens[0], q);
    }
    if (!txt || (!q->vkey && !q->has_num))
        return txt;
    it *val = q->vkey ? key_iter(c, q->vkey, q->vkey_len, (uint16_t)f, SEG_K_VALUE)
                      : num_iter(c, f, q->num, 1, q->num, 1);
    if (!val) {
        it_free(txt);
        return NULL;
    }
    it **k = seg_malloc(2 * sizeof *k);
    if (!k) {
        it_free(txt);
        it_free(val);
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
    }
    k[0] = txt;
    k[1] = val;
    return it_or(k, 2, c->e);
}

/* A UTF-8 sequence's length from its lead byte (1 for stray bytes). */
static size_t u8len(unsigned char c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

int srch_glob(const char *p, size_t pn, const char *t, size_t n)
{
    /* iterative, backtracking to the last '*' only: O(pn * n) at worst */
    size_t pi = 0, ti = 0, star = SIZE_MAX, mark = 0;
    while (ti < n) {
        if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = ti;
        } else if (pi < pn && p[pi] == '?') {
            pi++;
            ti += u8len((unsigned char)t[ti]);
        } else if (pi < pn && p[pi] == t[ti]) {
            pi++;
            ti++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            mark += u8len((unsigned char)t[mark]);
            ti = mark;
        } else {
            return 0;
        }
    }
    if (ti > n)
        return 0;
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

static it *prefix_iter(cx *c, const qnode *q)
{
    int f = -1;
    if (q->field) {
        f = fid_of(c, q);
        if (f < 0)
            return it_none();
    }
    const char *pre = q->toks[0];
    size_t pn = q->tok_lens[0];
    seg_dict_iter *di;
    if (seg_dict_iter_open(c->r, (const uint8_t *)pre, pn, &di, c->e))
        return NULL;
    it **k = NULL;
    size_t nk = 0, cap = 0, nterms = 0;
    uint32_t nd = seg_reader_ndocs(c->r);
    uint64_t *bm = NULL;
    seg_term t;
    int rc;
    int wild = q->type == Q_WILD, rx = q->type == Q_REGEX;
    void *md = rx ? srch_regex_scratch(q->re) : NULL;
    if (rx && !md) {
        seg_dict_iter_free(di);
        seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    while ((rc = seg_dict_iter_next(di, &t, c->e)) == 1) {
        if (t.key_len < pn + 4 || memcmp(t.key, pre, pn))
            break;
        if (t.kind != SEG_K_TEXT)
            continue;
        if (f >= 0 && (t.key[t.key_len - 3] << 8 | t.key[t.key_len - 2]) != f)
            continue;
        /* the key: the token, then 4 bytes (kind, field, ...) */
        if (wild && !srch_glob(q->str, q->str_len, (const char *)t.key, t.key_len - 4))
            continue;
        if (rx) {
            int m = srch_regex_match(q->re, md, (const char *)t.key, t.key_len - 4);
            if (m < 0) {
                seg_err_set(c->e, SEG_ELIMIT, NULL,
                            "regular expression /%.*s/ took too many steps on a token (a pattern that backtracks "
                            "without bound?): make it simpler",
                            (int)(q->str_len < 200 ? q->str_len : 200), q->str);
                rc = -1;
                break;
            }
            if (!m)
                continue;
        }
        if (++nterms > PREFIX_MAX_TERMS) {
            if (wild || rx)
                seg_err_set(c->e, SEG_ELIMIT, NULL, "pattern '%.*s' matches more than %d terms in %s; make it narrower",
                            (int)q->str_len, q->str, PREFIX_MAX_TERMS, seg_reader_path(c->r));
            else
                seg_err_set(c->e, SEG_ELIMIT, NULL, "prefix '%.*s*' matches more than %d terms in %s; make it longer",
                            (int)pn, pre, PREFIX_MAX_TERMS, seg_reader_path(c->r));
            rc = -1;
            break;
        }
        it *x = it_post(c->r, &t, c->e);
        if (!x) {
            rc = -1;
            break;
        }
        if (nk < PREFIX_INLINE) {
            if (push(&k, &nk, &cap, x)) {
                it_free(x);
                rc = -1;
                break;
            }
            continue;
        }
        /* many terms: fold them into a bitmap */
        if (!bm) {
            bm = seg_calloc(((size_t)nd + 63) / 64, 8);
            if (!bm) {
                it_free(x);
                rc = -1;
                break;
            }
            for (size_t i = 0; i < nk; i++)
                for (uint32_t d = k[i]->doc; d != END; d = k[i]->ops->next(k[i]))
                    bm[d / 64] |= 1ull << (d % 64);
            free_arr(k, nk);
            k = NULL;
            nk = cap = 0;
            nk = PREFIX_INLINE; /* stay in bitmap mode */
        }
        for (uint32_t d = x->doc; d != END; d = x->ops->next(x))
            bm[d / 64] |= 1ull << (d % 64);
        it_free(x);
    }
    seg_dict_iter_free(di);
    srch_regex_scratch_free(md);
    if (rc < 0) {
        if (!bm)
            free_arr(k, nk);
        seg_free(bm);
        if (!c->e->code)
            seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    if (bm)
        return it_from_bitmap(bm, nd, c->e);
    return it_or(k, nk, c->e);
}

static it *range_iter(cx *c, const qnode *q)
{
    int f = fid_of(c, q);
    if (f < 0)
        return it_none();
    return num_iter(c, f, q->lo, q->lo_incl, q->hi, q->hi_incl);
}

static it *compile(cx *c, const qnode *q);

typedef struct kw_pick {
    uint64_t *bm;
    uint32_t ord;
} kw_pick;

static void kw_pick_cb(void *ud, uint32_t doc, uint32_t ord)
{
    kw_pick *k = ud;
    if (ord == k->ord)
        k->bm[doc / 64] |= 1ull << (doc % 64);
}

/* Q_EXACT: the docs holding a string value of the field equal to q->str.
 * With a keyword column in this segment (its dictionary is sorted by
 * bytes and holds every value of up to SEG_KEYWORD_MAX bytes), one binary
 * search and a scan of the column.  Without one (a field of mostly
 * distinct values, or a longer value), the docs holding q's tokens in the
 * field (the field's presence when the value has none) are candidates,
 * each checked against its stored event: cost grows with the candidates,
 * not with the segment. */
static it *exact_iter(cx *c, const qnode *q)
{
    int f = fid_of(c, q);
    if (f < 0)
        return it_none();
    uint32_t nd = seg_reader_ndocs(c->r);
    uint64_t *bm = seg_calloc(((size_t)nd + 63) / 64, 8);
    if (!bm)
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
    seg_keycol kc;
    int has = q->str_len <= SEG_KEYWORD_MAX ? seg_reader_keycol(c->r, (uint32_t)f, &kc, c->e) : 0;
    if (has < 0) {
        seg_free(bm);
        return NULL;
    }
    if (has) {
        uint32_t lo = 0, hi = kc.ndict;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            const char *v;
            size_t vn;
            if (seg_keycol_value(&kc, mid, &v, &vn)) {
                seg_free(bm);
                return seg_err_set(c->e, SEG_ECORRUPT, NULL, "keyword column: ordinal out of bounds"), NULL;
            }
            size_t m = vn < q->str_len ? vn : q->str_len;
            int cmp = memcmp(v, q->str, m);
            if (!cmp)
                cmp = vn < q->str_len ? -1 : vn > q->str_len;
            if (cmp == 0) {
                kw_pick k = {bm, mid};
                if (seg_reader_keycol_scan(c->r, &kc, kw_pick_cb, &k, c->e)) {
                    seg_free(bm);
                    return NULL;
                }
                break;
            }
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return it_from_bitmap(bm, nd, c->e);
    }
    qnode cand = *q;
    cand.type = q->ntoks ? Q_TEXT : Q_EXISTS;
    cand.str = NULL;
    it *ci = compile(c, &cand);
    seg_store_cur *sc = seg_store_cur_new();
    seg_json *js = seg_json_new();
    int rc = ci && sc && js ? SEG_OK : SEG_ENOMEM;
    for (uint32_t d = ci && rc == SEG_OK ? ci->ops->seek(ci, 0) : END; d != END; d = ci->ops->next(ci)) {
        const char *id, *json;
        size_t il, jl;
        const seg_jval *v;
        size_t nv;
        seg_err je = {0};
        if ((rc = seg_reader_doc(c->r, sc, d, &id, &il, &json, &jl, c->e)))
            break;
        int prc = seg_json_parse(js, json, jl, &v, &nv, &je);
        if (prc == SEG_ENOMEM) {
            rc = prc;
            break;
        }
        for (size_t i = 0; prc == SEG_OK && i < nv; i++)
            if (v[i].type == SEG_JV_STRING && v[i].path_len == q->field_len &&
                !memcmp(v[i].path, q->field, q->field_len) && v[i].str_len == q->str_len &&
                !memcmp(v[i].str, q->str, q->str_len)) {
                bm[d / 64] |= 1ull << (d % 64);
                break;
            }
    }
    if (ci)
        it_free(ci);
    seg_store_cur_free(sc);
    seg_json_free(js);
    if (rc || (!ci && c->e->code)) {
        seg_free(bm);
        if (!c->e->code)
            seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    return it_from_bitmap(bm, nd, c->e);
}

/* Q_IDS: each id looked up in the segment's explicit-id index. */
static it *ids_iter(cx *c, const qnode *q)
{
    uint32_t nd = seg_reader_ndocs(c->r);
    uint64_t *bm = seg_calloc(((size_t)nd + 63) / 64, 8);
    seg_store_cur *sc = seg_store_cur_new();
    if (!bm || !sc) {
        seg_free(bm);
        seg_store_cur_free(sc);
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
    }
    for (size_t i = 0; i < q->ntoks; i++) {
        uint32_t doc;
        int rc = seg_reader_id_find(c->r, sc, q->toks[i], q->tok_lens[i], &doc, c->e);
        if (rc < 0) {
            seg_free(bm);
            seg_store_cur_free(sc);
            return NULL;
        }
        if (rc == 1 && doc < nd)
            bm[doc / 64] |= 1ull << (doc % 64);
    }
    seg_store_cur_free(sc);
    return it_from_bitmap(bm, nd, c->e);
}

static it *compile_bool(cx *c, const qnode *q)
{
    it **k = NULL, **x = NULL;
    size_t nk = 0, ck = 0, nx = 0, cxp = 0;
    for (size_t i = 0; i < q->nkids; i++) {
        const qnode *kid = q->kids[i];
        int excl = q->type == Q_AND && kid->type == Q_NOT;
        it *ii = compile(c, excl ? kid->kids[0] : kid);
        if (!ii || (excl ? push(&x, &nx, &cxp, ii) : push(&k, &nk, &ck, ii))) {
            it_free(ii);
            free_arr(k, nk);
            free_arr(x, nx);
            if (!c->e->code)
                seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
            return NULL;
        }
    }
    if (q->type == Q_OR)
        return it_or(k, nk, c->e);
    if (nk == 0) {
        it *all = it_all(seg_reader_ndocs(c->r));
        if (!all || push(&k, &nk, &ck, all)) {
            it_free(all);
            free_arr(x, nx);
            return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
        }
    }
    return it_and(k, nk, x, nx, 0, c->e);
}

static it *compile(cx *c, const qnode *q)
{
    switch (q->type) {
    case Q_ALL:
        return it_all(seg_reader_ndocs(c->r));
    case Q_NONE:
        return it_none();
    case Q_TEXT:
        return text_iter(c, q);
    case Q_PREFIX:
    case Q_WILD:
    case Q_REGEX:
        return prefix_iter(c, q);
    case Q_RANGE:
        return range_iter(c, q);
    case Q_EXACT:
        return exact_iter(c, q);
    case Q_IDS:
        return ids_iter(c, q);
    case Q_EXISTS: {
        int f = fid_of(c, q);
        if (f < 0)
            return it_none();
        return key_iter(c, "", 0, (uint16_t)f, SEG_K_EXISTS);
    }
    case Q_AND:
    case Q_OR:
        return compile_bool(c, q);
    case Q_NOT: {
        it *inner = compile(c, q->kids[0]);
        if (!inner)
            return NULL;
        it **k = seg_malloc(sizeof *k), **x = seg_malloc(sizeof *x);
        it *all = it_all(seg_reader_ndocs(c->r));
        if (!k || !x || !all) {
            seg_free(k);
            seg_free(x);
            it_free(all);
            it_free(inner);
            return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), NULL;
        }
        k[0] = all;
        x[0] = inner;
        return it_and(k, 1, x, 1, 0, c->e);
    }
    }
    seg_err_set(c->e, SEG_EINVAL, NULL, "unknown query node %d", q->type);
    return NULL;
}

static int add_hit(srch_seg_out *out, size_t *cap, uint32_t d)
{
    if (out->nhits == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        uint32_t *n = seg_realloc(out->docs, c * sizeof *n);
        if (!n)
            return SEG_ENOMEM;
        out->docs = n;
        *cap = c;
    }
    out->docs[out->nhits++] = d;
    return SEG_OK;
}

int srch_exec_segment(seg_reader *r, const srch_query *q, uint32_t lo, uint32_t hi, uint32_t from,
                      size_t limit, srch_seg_out *out, seg_err *e)
{
    memset(out, 0, sizeof *out);
    cx c = {r, e};
    it *i = compile(&c, q->root);
    if (!i)
        return e->code ? e->code : seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    size_t cap = 0;
    int rc = SEG_OK;
    if (i->all) {
        /* every doc in [lo, hi) */
        out->total = hi > lo ? hi - lo : 0;
        uint32_t s = from > lo ? from : lo;
        out->after = hi > s ? hi - s : 0;
        for (uint32_t d = s; d < hi && out->nhits < limit && rc == SEG_OK; d++)
            rc = add_hit(out, &cap, d);
    } else {
        for (uint32_t d = i->ops->seek(i, lo); d < hi && rc == SEG_OK; d = i->ops->next(i)) {
            out->total++;
            if (d >= from) {
                out->after++;
                if (out->nhits < limit)
                    rc = add_hit(out, &cap, d);
            }
        }
    }
    it_free(i);
    if (rc)
        return seg_err_set(e, rc, NULL, "out of memory");
    if (seg_reader_failed(r, e))
        return SEG_ECORRUPT;
    if (e->code) /* an iterator failed part-way (a phrase's positions) */
        return e->code;
    return SEG_OK;
}
