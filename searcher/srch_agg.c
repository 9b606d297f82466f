/*
 * srch_agg.c -- aggregations: date histograms, terms, stats, percentiles,
 * cardinality, nested.
 *
 * Per segment (on the pool): the matching docs of the query in the time
 * range, ascending (= newest first).  Each aggregation reads only the
 * columns it needs: TIMES for date_histogram, KEYCOL and NUMCOL of its
 * field for terms, NUMCOL for stats and percentiles, both for cardinality;
 * it meets the doc list in a merge join (both are in doc order).  Bucket
 * aggregations split the doc list per bucket and run their sub-aggregations
 * on each part.  The partial states of all segments are then merged
 * exactly: counts and sums add; DDSketch stores add (relative error
 * SRCH_PCT_ALPHA); HyperLogLog registers take the maximum (standard error
 * 1.04/sqrt(16384) = 0.8%); terms keep every key until the final cut, so
 * terms counts are exact.
 */
#include "searcher/srch_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HLL_P 14
#define HLL_M (1u << HLL_P)

/* ------------------------------------------------------------------ */
/* DDSketch                                                             */
/* ------------------------------------------------------------------ */

typedef struct store {
    int32_t lo;                /* index of counts[0] */
    uint64_t *counts;
    uint32_t n;
} store;

typedef struct dds {
    store pos, neg;
    uint64_t zeros, total;
} dds;

static double dds_gamma(void) { return (1 + SRCH_PCT_ALPHA) / (1 - SRCH_PCT_ALPHA); }

static int store_add(store *s, int32_t idx, uint64_t c)
{
    if (!s->counts) {
        s->counts = seg_calloc(64, sizeof *s->counts);
        if (!s->counts)
            return -1;
        s->lo = idx - 32;
        s->n = 64;
    }
    if (idx < s->lo || idx >= s->lo + (int32_t)s->n) {
        int32_t nlo = idx < s->lo ? idx - 16 : s->lo;
        int32_t nhi = idx >= s->lo + (int32_t)s->n ? idx + 16 : s->lo + (int32_t)s->n;
        uint32_t nn = (uint32_t)(nhi - nlo);
        uint64_t *q = seg_calloc(nn, sizeof *q);
        if (!q)
            return -1;
        memcpy(q + (s->lo - nlo), s->counts, s->n * sizeof *q);
        seg_free(s->counts);
        s->counts = q;
        s->lo = nlo;
        s->n = nn;
    }
    s->counts[idx - s->lo] += c;
    return 0;
}

static int dds_add(dds *d, double v)
{
    d->total++;
    double a = fabs(v);
    if (a < 1e-12) {
        d->zeros++;
        return 0;
    }
    int32_t idx = (int32_t)ceil(log(a) / log(dds_gamma()));
    return store_add(v > 0 ? &d->pos : &d->neg, idx, 1);
}

static int dds_merge(dds *d, const dds *o)
{
    d->zeros += o->zeros;
    d->total += o->total;
    for (uint32_t i = 0; i < o->pos.n; i++)
        if (o->pos.counts[i] && store_add(&d->pos, o->pos.lo + (int32_t)i, o->pos.counts[i]))
            return -1;
    for (uint32_t i = 0; i < o->neg.n; i++)
        if (o->neg.counts[i] && store_add(&d->neg, o->neg.lo + (int32_t)i, o->neg.counts[i]))
            return -1;
    return 0;
}

static double dds_value(int32_t idx) { return 2 * pow(dds_gamma(), idx) / (dds_gamma() + 1); }

/* The value at rank q * (total - 1) (0-based), within SRCH_PCT_ALPHA. */
static double dds_quantile(const dds *d, double q)
{
    if (!d->total)
        return NAN;
    double rank = floor(q * (double)(d->total - 1));
    uint64_t cum = 0;
    for (uint32_t i = d->neg.n; i-- > 0;) {
        cum += d->neg.counts[i];
        if ((double)cum > rank)
            return -dds_value(d->neg.lo + (int32_t)i);
    }
    cum += d->zeros;
    if ((double)cum > rank)
        return 0;
    for (uint32_t i = 0; i < d->pos.n; i++) {
        cum += d->pos.counts[i];
        if ((double)cum > rank)
            return dds_value(d->pos.lo + (int32_t)i);
    }
    return NAN;
}

static void dds_free(dds *d)
{
    seg_free(d->pos.counts);
    seg_free(d->neg.counts);
}

/* ------------------------------------------------------------------ */
/* HyperLogLog                                                          */
/* ------------------------------------------------------------------ */

static void hll_add(uint8_t *reg, uint64_t h)
{
    uint32_t idx = (uint32_t)(h >> (64 - HLL_P));
    uint64_t w = (h << HLL_P) | (1ull << (HLL_P - 1));
    uint8_t rho = (uint8_t)(__builtin_clzll(w) + 1);
    if (rho > reg[idx])
        reg[idx] = rho;
}

static uint64_t hll_estimate(const uint8_t *reg)
{
    double sum = 0;
    uint32_t zeros = 0;
    for (uint32_t i = 0; i < HLL_M; i++) {
        sum += ldexp(1.0, -reg[i]);
        zeros += reg[i] == 0;
    }
    double m = HLL_M, alpha = 0.7213 / (1 + 1.079 / m);
    double est = alpha * m * m / sum;
    if (est <= 2.5 * m && zeros)
        est = m * log(m / zeros); /* linear counting for small sets */
    return (uint64_t)llround(est);
}

/* ------------------------------------------------------------------ */
/* Partial states                                                       */
/* ------------------------------------------------------------------ */

typedef struct part part;

typedef struct pbucket {
    int is_str;
    int64_t tkey;
    double nkey;
    char *skey;
    size_t slen;
    uint64_t count;
    part *subs;                /* nsubs */
} pbucket;

struct part {
    uint64_t count;
    double min, max, sum;
    dds sk;
    uint8_t *hll;
    pbucket *b;
    size_t nb, capb;
    uint32_t *slot;            /* hash index over b (b index + 1) */
    uint32_t mask;
};

static void part_free(part *p, const srch_agg *a)
{
    for (size_t i = 0; i < p->nb; i++) {
        seg_free(p->b[i].skey);
        for (size_t s = 0; s < a->nsubs; s++)
            part_free(&p->b[i].subs[s], &a->subs[s]);
        seg_free(p->b[i].subs);
    }
    seg_free(p->b);
    seg_free(p->slot);
    dds_free(&p->sk);
    seg_free(p->hll);
}

static uint64_t bkey_hash(int is_str, int64_t t, double n, const char *s, size_t l)
{
    if (is_str)
        return seg_hash64(s, l) ^ 0x5bd1e995;
    if (t)
        return seg_hash64(&t, sizeof t);
    return seg_hash64(&n, sizeof n) ^ 0x1b873593;
}

static pbucket *bucket_find(part *p, int is_str, int64_t t, double n, const char *s, size_t l, uint64_t h)
{
    if (!p->slot)
        return NULL;
    for (uint32_t i = (uint32_t)h & p->mask; p->slot[i]; i = (i + 1) & p->mask) {
        pbucket *b = &p->b[p->slot[i] - 1];
        if (b->is_str == is_str && b->tkey == t && (is_str ? b->slen == l && !memcmp(b->skey, s, l) : b->nkey == n))
            return b;
    }
    return NULL;
}

/* The bucket with this key (created when new); NULL on no memory. */
static pbucket *bucket_get(part *p, const srch_agg *a, int is_str, int64_t t, double n, const char *s, size_t l)
{
    if (n == 0)
        n = 0; /* -0 and 0 are one key */
    uint64_t h = bkey_hash(is_str, t, n, s, l);
    pbucket *found = bucket_find(p, is_str, t, n, s, l, h);
    if (found)
        return found;
    if (p->nb == p->capb) {
        size_t cap = p->capb ? p->capb * 2 : 16;
        pbucket *nb = seg_realloc(p->b, cap * sizeof *nb);
        if (!nb)
            return NULL;
        p->b = nb;
        p->capb = cap;
    }
    if ((p->nb + 1) * 2 > (size_t)p->mask) {
        uint32_t nm = p->mask ? p->mask * 2 + 1 : 31;
        uint32_t *ns = seg_calloc((size_t)nm + 1, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < p->nb; i++) {
            pbucket *b = &p->b[i];
            uint32_t j = (uint32_t)bkey_hash(b->is_str, b->tkey, b->nkey, b->skey, b->slen) & nm;
            while (ns[j])
                j = (j + 1) & nm;
            ns[j] = (uint32_t)i + 1;
        }
        seg_free(p->slot);
        p->slot = ns;
        p->mask = nm;
    }
    pbucket *b = &p->b[p->nb];
    memset(b, 0, sizeof *b);
    b->is_str = is_str;
    b->tkey = t;
    b->nkey = n;
    if (is_str && !(b->skey = seg_strndup(s, l)))
        return NULL;
    b->slen = l;
    if (a->nsubs && !(b->subs = seg_calloc(a->nsubs, sizeof *b->subs))) {
        seg_free(b->skey);
        return NULL;
    }
    uint32_t j = (uint32_t)h & p->mask;
    while (p->slot[j])
        j = (j + 1) & p->mask;
    p->slot[j] = (uint32_t)p->nb + 1;
    p->nb++;
    return b;
}

static int part_merge(part *d, part *o, const srch_agg *a)
{
    if (o->count) {
        if (!d->count || o->min < d->min)
            d->min = o->min;
        if (!d->count || o->max > d->max)
            d->max = o->max;
    }
    d->count += o->count;
    d->sum += o->sum;
    if (dds_merge(&d->sk, &o->sk))
        return -1;
    if (o->hll) {
        if (!d->hll && !(d->hll = seg_calloc(HLL_M, 1)))
            return -1;
        for (uint32_t i = 0; i < HLL_M; i++)
            if (o->hll[i] > d->hll[i])
                d->hll[i] = o->hll[i];
    }
    for (size_t i = 0; i < o->nb; i++) {
        pbucket *ob = &o->b[i];
        pbucket *db = bucket_get(d, a, ob->is_str, ob->tkey, ob->nkey, ob->skey, ob->slen);
        if (!db)
            return -1;
        db->count += ob->count;
        for (size_t s = 0; s < a->nsubs; s++)
            if (part_merge(&db->subs[s], &ob->subs[s], &a->subs[s]))
                return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Per segment                                                          */
/* ------------------------------------------------------------------ */

typedef struct segctx {
    seg_reader *r;
    uint32_t lo;               /* times[] holds docs [lo, hi) */
    int64_t *times;
    int64_t interval;          /* resolved date_histogram interval (per node: see eval) */
    seg_err *e;
    uint32_t all_lo;           /* a dlist without d[]: docs [all_lo, all_lo + n) */
    uint32_t *alld;            /* ... made into a list on first need */
} segctx;

typedef struct dlist {
    uint32_t *d;
    size_t n;
} dlist;

/* values of a field for the docs of a list, in a merge join */
typedef struct vjoin {
    const uint32_t *docs;
    size_t n, i;
    void (*num)(void *ud, uint32_t di, double v);
    void (*str)(void *ud, uint32_t di, uint32_t ord);
    void *ud;
} vjoin;

static void join_num(void *ud, uint32_t doc, double v)
{
    vjoin *j = ud;
    while (j->i < j->n && j->docs[j->i] < doc)
        j->i++;
    if (j->i < j->n && j->docs[j->i] == doc)
        j->num(j->ud, (uint32_t)j->i, v);
}

static void join_str(void *ud, uint32_t doc, uint32_t ord)
{
    vjoin *j = ud;
    while (j->i < j->n && j->docs[j->i] < doc)
        j->i++;
    if (j->i < j->n && j->docs[j->i] == doc)
        j->str(j->ud, (uint32_t)j->i, ord);
}

typedef struct metric_ud {
    part *p;
    const srch_agg *a;
    seg_keycol *kc;
    int oom;
} metric_ud;

static void metric_num(void *ud, uint32_t di, double v)
{
    (void)di;
    metric_ud *m = ud;
    part *p = m->p;
    switch (m->a->type) {
    case SRCH_AGG_STATS:
        if (!p->count || v < p->min)
            p->min = v;
        if (!p->count || v > p->max)
            p->max = v;
        p->count++;
        p->sum += v;
        break;
    case SRCH_AGG_PERCENTILES:
        p->count++;
        if (dds_add(&p->sk, v))
            m->oom = 1;
        break;
    case SRCH_AGG_CARDINALITY: {
        char c[40];
        size_t n = seg_num_canon_real(v, c);
        hll_add(p->hll, seg_hash64_2("n", 1, c, n));
        break;
    }
    }
}

static void metric_str(void *ud, uint32_t di, uint32_t ord)
{
    (void)di;
    metric_ud *m = ud;
    const char *s;
    size_t n;
    if (seg_keycol_value(m->kc, ord, &s, &n) == 0)
        hll_add(m->p->hll, seg_hash64_2("s", 1, s, n));
}

/* terms: per doc index, the keys of the doc (numbers or string ordinals) */
typedef struct tkey {
    uint32_t di;
    int is_str;
    uint32_t ord;
    double num;
} tkey;

typedef struct terms_ud {
    tkey *k;
    size_t n, cap;
    int is_str;
    int oom;
} terms_ud;

static void terms_add(terms_ud *t, uint32_t di, int is_str, uint32_t ord, double num)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        tkey *q = seg_realloc(t->k, cap * sizeof *q);
        if (!q) {
            t->oom = 1;
            return;
        }
        t->k = q;
        t->cap = cap;
    }
    t->k[t->n++] = (tkey){di, is_str, ord, num};
}

static void terms_num(void *ud, uint32_t di, double v) { terms_add(ud, di, 0, 0, v); }

static int tkey_cmp(const void *pa, const void *pb)
{
    const tkey *a = pa, *b = pb;
    if (a->is_str != b->is_str)
        return a->is_str - b->is_str;
    if (a->is_str ? a->ord != b->ord : a->num != b->num)
        return a->is_str ? (a->ord < b->ord ? -1 : 1) : (a->num < b->num ? -1 : 1);
    return a->di < b->di ? -1 : a->di > b->di;
}

static int eval(segctx *c, const srch_agg *a, part *p, const dlist *dl);
static int eval_subs(segctx *c, const srch_agg *a, pbucket *b, const dlist *dl);

/* terms over numeric values: (doc, value) pairs sorted by value */
static int terms_numbers(segctx *c, const srch_agg *a, part *p, const dlist *dl, int f)
{
    terms_ud t = {0};
    vjoin j = {dl->d, dl->n, 0, terms_num, NULL, &t};
    if (seg_reader_num_scan(c->r, (uint32_t)f, -INFINITY, 1, INFINITY, 1, join_num, &j, c->e))
        return -1;
    if (t.oom) {
        seg_free(t.k);
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
    }
    if (t.n > 1)
        qsort(t.k, t.n, sizeof *t.k, tkey_cmp);
    uint32_t *sub = a->nsubs ? seg_malloc((t.n ? t.n : 1) * sizeof *sub) : NULL;
    int rc = 0;
    if (a->nsubs && !sub)
        rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < t.n && rc == 0;) {
        size_t k = i + 1;
        while (k < t.n && t.k[k].num == t.k[i].num)
            k++;
        pbucket *b = bucket_get(p, a, 0, 0, t.k[i].num, NULL, 0);
        if (!b) {
            rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
        size_t nd = 0;
        for (size_t q = i; q < k; q++) {
            if (q > i && t.k[q].di == t.k[q - 1].di)
                continue; /* a doc counts once per key */
            b->count++;
            if (sub)
                sub[nd++] = dl->d[t.k[q].di];
        }
        if (a->nsubs) {
            dlist sd = {sub, nd};
            rc = eval_subs(c, a, b, &sd);
        }
        i = k;
    }
    seg_free(sub);
    seg_free(t.k);
    return rc;
}

typedef struct ord_ud {
    uint32_t *cnt, *last, *pairs_di, *pairs_ord;
    size_t n, cap;
    int oom, collect;
} ord_ud;

static void ord_pair(void *ud, uint32_t di, uint32_t ord)
{
    ord_ud *o = ud;
    if (o->last[ord] == di + 1)
        return; /* a doc counts once per value */
    o->last[ord] = di + 1;
    o->cnt[ord]++;
    if (!o->collect)
        return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        uint32_t *a = seg_realloc(o->pairs_di, cap * sizeof *a), *b = a ? seg_realloc(o->pairs_ord, cap * sizeof *b) : NULL;
        if (a)
            o->pairs_di = a;
        if (!a || !b) {
            o->oom = 1;
            return;
        }
        o->pairs_ord = b;
        o->cap = cap;
    }
    o->pairs_di[o->n] = di;
    o->pairs_ord[o->n++] = ord;
}

/* terms over a keyword column: counts by ordinal; doc lists per ordinal
 * (a counting sort) only when there are sub-aggregations */
static int terms_ordinals(segctx *c, const srch_agg *a, part *p, const dlist *dl, const seg_keycol *kc)
{
    ord_ud o = {0};
    o.collect = a->nsubs != 0;
    o.cnt = seg_calloc(kc->ndict ? kc->ndict : 1, sizeof *o.cnt);
    o.last = seg_calloc(kc->ndict ? kc->ndict : 1, sizeof *o.last);
    int rc = 0;
    uint32_t *start = NULL, *docs = NULL;
    if (!o.cnt || !o.last) {
        rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    vjoin j = {dl->d, dl->n, 0, NULL, ord_pair, &o};
    if (!o.collect && dl->n == seg_reader_ndocs(c->r)) {
        /* every doc: count the ordinals, no join with the doc list */
        if (seg_reader_keycol_count(c->r, kc, o.cnt, o.last, c->e)) {
            rc = -1;
            goto out;
        }
    } else if (seg_reader_keycol_scan(c->r, kc, join_str, &j, c->e)) {
        rc = -1;
        goto out;
    }
    if (o.oom) {
        rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    if (o.collect) {
        start = seg_calloc((size_t)kc->ndict + 1, sizeof *start);
        docs = seg_malloc((o.n ? o.n : 1) * sizeof *docs);
        if (!start || !docs) {
            rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
            goto out;
        }
        for (uint32_t k = 0; k < kc->ndict; k++)
            start[k + 1] = start[k] + o.cnt[k];
        for (size_t q = 0; q < o.n; q++) /* pairs come in doc order: lists stay sorted */
            docs[start[o.pairs_ord[q]]++] = dl->d[o.pairs_di[q]];
        for (uint32_t k = kc->ndict; k > 0; k--)
            start[k] = start[k - 1];
        start[0] = 0;
    }
    for (uint32_t k = 0; k < kc->ndict && rc == 0; k++) {
        if (!o.cnt[k])
            continue;
        const char *s;
        size_t sl;
        if (seg_keycol_value(kc, k, &s, &sl)) {
            rc = seg_err_set(c->e, SEG_ECORRUPT, seg_reader_path(c->r), "bad keyword ordinal");
            break;
        }
        pbucket *b = bucket_get(p, a, 1, 0, 0, s, sl);
        if (!b) {
            rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
        b->count += o.cnt[k];
        if (o.collect) {
            dlist sd = {docs + start[k], o.cnt[k]};
            rc = eval_subs(c, a, b, &sd);
        }
    }
out:
    seg_free(o.cnt);
    seg_free(o.last);
    seg_free(o.pairs_di);
    seg_free(o.pairs_ord);
    seg_free(start);
    seg_free(docs);
    return rc;
}

/* String values of a field without a keyword column (mostly distinct
 * values): read from the stored events of the docs.  Slow, but exact. */
static int strings_from_store(segctx *c, const srch_agg *a, part *p, const dlist *dl, int f)
{
    const seg_field *fi = seg_reader_field(c->r, (uint32_t)f);
    seg_store_cur *sc = seg_store_cur_new();
    seg_json *js = seg_json_new();
    uint32_t *one = seg_malloc(sizeof *one);
    int rc = 0;
    if (!sc || !js || !one)
        rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < dl->n && rc == 0; i++) {
        const char *id, *json;
        size_t il, jl;
        if (seg_reader_doc(c->r, sc, dl->d[i], &id, &il, &json, &jl, c->e)) {
            rc = -1;
            break;
        }
        const seg_jval *v;
        size_t nv;
        seg_err je = {0};
        if (seg_json_parse(js, json, jl, &v, &nv, &je))
            continue; /* stored events were valid when stored */
        for (size_t k = 0; k < nv && rc == 0; k++) {
            if (v[k].type != SEG_JV_STRING || v[k].str_len > SEG_KEYWORD_MAX || v[k].path_len != fi->name_len ||
                memcmp(v[k].path, fi->name, fi->name_len))
                continue;
            int dup = 0; /* once per doc and value */
            for (size_t q = 0; q < k && !dup; q++)
                dup = v[q].type == SEG_JV_STRING && v[q].path_len == v[k].path_len &&
                      !memcmp(v[q].path, v[k].path, v[k].path_len) && v[q].str_len == v[k].str_len &&
                      !memcmp(v[q].str, v[k].str, v[k].str_len);
            if (dup)
                continue;
            if (a->type == SRCH_AGG_CARDINALITY) {
                hll_add(p->hll, seg_hash64_2("s", 1, v[k].str, v[k].str_len));
                continue;
            }
            pbucket *b = bucket_get(p, a, 1, 0, 0, v[k].str, v[k].str_len);
            if (!b) {
                rc = seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory");
                break;
            }
            b->count++;
            if (a->nsubs) {
                one[0] = dl->d[i];
                dlist sd = {one, 1};
                rc = eval_subs(c, a, b, &sd);
            }
        }
    }
    seg_free(one);
    seg_json_free(js);
    seg_store_cur_free(sc);
    return rc;
}

static int eval_subs(segctx *c, const srch_agg *a, pbucket *b, const dlist *dl)
{
    for (size_t s = 0; s < a->nsubs; s++)
        if (eval(c, &a->subs[s], &b->subs[s], dl))
            return -1;
    return 0;
}

/* The start of t's bucket of width iv (floor, also below zero). */
/* the start of t's bucket of width iv (a multiple of iv, <= t); within one
 * interval of the earliest time int64 holds, that earliest time */
static int64_t floor_to(int64_t t, int64_t iv)
{
    int64_t k = t / iv * iv;
    if (t % iv < 0 && __builtin_sub_overflow(k, iv, &k))
        k = INT64_MIN;
    return k;
}

/* terms over every doc of a segment from its stored per-value counts */
static int terms_stored_counts(segctx *c, const srch_agg *a, part *p, const seg_keycol *kc, const uint8_t *cnts)
{
    for (uint32_t k = 0; k < kc->ndict; k++) {
        uint32_t n = seg_rd_u32(cnts + (size_t)k * 4);
        if (!n)
            continue;
        const char *s;
        size_t sl;
        if (seg_keycol_value(kc, k, &s, &sl))
            return seg_err_set(c->e, SEG_ECORRUPT, seg_reader_path(c->r), "bad keyword ordinal"), -1;
        pbucket *b = bucket_get(p, a, 1, 0, 0, s, sl);
        if (!b)
            return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
        b->count += n;
    }
    return 0;
}

static int eval(segctx *c, const srch_agg *a, part *p, const dlist *dl)
{
    seg_reader *r = c->r;
    if (!dl->d) {
        /* the query `*`: a terms count over a whole keyword column needs
         * no doc list; anything else gets one */
        int f = a->type == SRCH_AGG_TERMS && !a->nsubs && dl->n == seg_reader_ndocs(r)
                    ? seg_reader_field_find(r, a->field, strlen(a->field))
                    : -1;
        seg_keycol kc;
        if (f >= 0 && !seg_reader_field(r, (uint32_t)f)->nnum) {
            int has = seg_reader_keycol(r, (uint32_t)f, &kc, c->e);
            const uint8_t *cnts;
            int hc = has > 0 ? seg_reader_keycol_counts(r, (uint32_t)f, &kc, &cnts, c->e) : 0;
            if (has < 0 || hc < 0)
                return -1;
            if (hc)
                return terms_stored_counts(c, a, p, &kc, cnts);
            if (has)
                return terms_ordinals(c, a, p, dl, &kc);
        }
        if (!c->alld) {
            if (!(c->alld = seg_malloc((dl->n ? dl->n : 1) * sizeof *c->alld)))
                return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
            for (size_t i = 0; i < dl->n; i++)
                c->alld[i] = c->all_lo + (uint32_t)i;
        }
        dlist full = {c->alld, dl->n};
        return eval(c, a, p, &full);
    }
    if (a->type == SRCH_AGG_DATE_HISTOGRAM) {
        /* docs descend in time: equal bucket keys are adjacent */
        for (size_t i = 0; i < dl->n;) {
            int64_t key = floor_to(c->times[dl->d[i] - c->lo], a->interval_ns);
            size_t j = i + 1;
            while (j < dl->n) {
                int64_t tj = c->times[dl->d[j] - c->lo];
                if (tj < key || (uint64_t)tj - (uint64_t)key >= (uint64_t)a->interval_ns)
                    break;
                j++;
            }
            pbucket *b = bucket_get(p, a, 0, key, 0, NULL, 0);
            if (!b)
                return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
            b->count += j - i;
            dlist sub = {dl->d + i, j - i};
            if (a->nsubs && eval_subs(c, a, b, &sub))
                return -1;
            i = j;
        }
        return 0;
    }
    int f = seg_reader_field_find(r, a->field, strlen(a->field));
    if (f < 0 || dl->n == 0)
        return 0;
    seg_keycol kc;
    int has_kc = (a->type == SRCH_AGG_TERMS || a->type == SRCH_AGG_CARDINALITY)
                     ? seg_reader_keycol(r, (uint32_t)f, &kc, c->e)
                     : 0;
    if (has_kc < 0)
        return -1;
    if (a->type == SRCH_AGG_TERMS) {
        int rc = terms_numbers(c, a, p, dl, f);
        if (rc == 0 && has_kc)
            rc = terms_ordinals(c, a, p, dl, &kc);
        else if (rc == 0 && (seg_reader_field(r, (uint32_t)f)->flags & SEG_F_STRING))
            rc = strings_from_store(c, a, p, dl, f);
        return rc;
    }
    if (a->type == SRCH_AGG_CARDINALITY && !p->hll && !(p->hll = seg_calloc(HLL_M, 1)))
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
    metric_ud m = {p, a, has_kc ? &kc : NULL, 0};
    vjoin j = {dl->d, dl->n, 0, metric_num, metric_str, &m};
    if (seg_reader_num_scan(r, (uint32_t)f, -INFINITY, 1, INFINITY, 1, join_num, &j, c->e))
        return -1;
    j.i = 0;
    if (has_kc && seg_reader_keycol_scan(r, &kc, join_str, &j, c->e))
        return -1;
    if (!has_kc && a->type == SRCH_AGG_CARDINALITY && (seg_reader_field(r, (uint32_t)f)->flags & SEG_F_STRING) &&
        strings_from_store(c, a, p, dl, f))
        return -1;
    if (m.oom)
        return seg_err_set(c->e, SEG_ENOMEM, NULL, "out of memory"), -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Driving                                                              */
/* ------------------------------------------------------------------ */

typedef struct atask {
    seg_reader *r;
    part *parts;               /* naggs */
    uint64_t total;
    seg_err e;
    int rc;
} atask;

typedef struct ajob {
    const srch_request *rq;
    const srch_agg *aggs;
    size_t naggs;
    int need_times;
    atask *t;
} ajob;

static int need_times(const srch_agg *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].type == SRCH_AGG_DATE_HISTOGRAM || need_times(a[i].subs, a[i].nsubs))
            return 1;
    return 0;
}

/* Fast path for the query `*` with only top-level date histograms without
 * sub-aggregations (a dashboard's events-over-time panel): a segment's
 * events are sorted by time, so each bucket's count is the distance
 * between two time seeks (binary search over the TIMES block index, one
 * block decoded).  Docs [lo, hi) are those in the requested time range.
 * Used when the buckets are few against the docs; returns 0 to fall back
 * to reading the column. */
static int answer_by_seeks(const ajob *j, atask *t, uint32_t lo, uint32_t hi)
{
    const srch_request *rq = j->rq;
    seg_reader *r = t->r;
    if (rq->q->root->type != Q_ALL)
        return 0;
    for (size_t k = 0; k < j->naggs; k++)
        if (j->aggs[k].type != SRCH_AGG_DATE_HISTOGRAM || j->aggs[k].nsubs)
            return 0;
    int64_t tmin = seg_reader_min_time(r), tmax = seg_reader_max_time(r);
    if (rq->has_start && rq->start > tmin)
        tmin = rq->start;
    if (rq->has_end && rq->end - 1 < tmax)
        tmax = rq->end - 1;
    for (size_t k = 0; k < j->naggs; k++) {
        int64_t iv = j->aggs[k].interval_ns;
        uint64_t nb = (uint64_t)(floor_to(tmax, iv) - floor_to(tmin, iv)) / (uint64_t)iv + 1;
        if (nb > 1 && nb > (hi - lo) / 32 + 1)
            return 0;
    }
    for (size_t k = 0; k < j->naggs; k++) {
        const srch_agg *a = &j->aggs[k];
        int64_t iv = a->interval_ns;
        /* buckets newest first: doc ranges follow each other from lo */
        uint32_t top = lo;
        for (int64_t key = floor_to(tmax, iv);; key -= iv) {
            uint32_t below = hi; /* first doc older than the bucket */
            if (key > tmin && (t->rc = seg_reader_time_seek_lt(r, key, &below, &t->e)))
                return 1;
            if (below > hi)
                below = hi;
            if (below > top) {
                pbucket *b = bucket_get(&t->parts[k], a, 0, key, 0, NULL, 0);
                if (!b) {
                    t->rc = seg_err_set(&t->e, SEG_ENOMEM, NULL, "out of memory");
                    return 1;
                }
                b->count += below - top;
                top = below;
            }
            if (key <= tmin || top >= hi)
                break;
        }
    }
    t->total = hi - lo;
    return 1;
}

static void run_atask(void *arg, size_t i)
{
    ajob *j = arg;
    atask *t = &j->t[i];
    const srch_request *rq = j->rq;
    seg_reader *r = t->r;
    uint32_t lo = 0, hi = seg_reader_ndocs(r);
    srch_seg_out out = {0};
    segctx c = {r, 0, NULL, 0, &t->e, 0, NULL};
    if ((rq->has_end && (t->rc = seg_reader_time_seek_lt(r, rq->end, &lo, &t->e))) ||
        (rq->has_start && (t->rc = seg_reader_time_seek_lt(r, rq->start, &hi, &t->e))))
        return;
    if (hi <= lo || answer_by_seeks(j, t, lo, hi))
        return;
    if (rq->q->root->type == Q_ALL) {
        /* every doc of [lo, hi): no list unless an aggregation needs one */
        out.nhits = out.total = hi - lo;
        c.all_lo = lo;
    } else if ((t->rc = srch_exec_segment(r, rq->q, lo, hi, lo, SIZE_MAX, &out, &t->e))) {
        goto done;
    }
    t->total = out.total;
    if (j->need_times && out.nhits) {
        c.lo = lo;
        c.times = seg_malloc((size_t)(hi - lo) * sizeof *c.times);
        if (!c.times) {
            t->rc = seg_err_set(&t->e, SEG_ENOMEM, NULL, "out of memory");
            goto done;
        }
        if ((t->rc = seg_reader_times(r, lo, hi, c.times, &t->e)))
            goto done;
    }
    dlist dl = {out.docs, out.nhits};
    for (size_t k = 0; k < j->naggs; k++)
        if (eval(&c, &j->aggs[k], &t->parts[k], &dl)) {
            t->rc = t->e.code ? t->e.code : SEG_ENOMEM;
            break;
        }
done:
    seg_free(c.times);
    seg_free(c.alld);
    seg_free(out.docs);
}

static int bucket_cmp_terms(const void *pa, const void *pb)
{
    const srch_agg_bucket *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    /* ties: numbers before strings, then by key */
    if (a->key_is_str != b->key_is_str)
        return a->key_is_str - b->key_is_str;
    if (!a->key_is_str)
        return a->key_num < b->key_num ? -1 : a->key_num > b->key_num;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key_str, b->key_str, n);
    return c ? c : (a->key_len < b->key_len ? -1 : a->key_len > b->key_len);
}

static void result_free(srch_agg_result *r, size_t n);

/* Turns merged partial state into a result. has_range: [rs, re) bounds
 * the empty date buckets. */
static int bucket_cmp_time(const void *x, const void *y)
{
    int64_t a = ((const srch_agg_bucket *)x)->key_time, b = ((const srch_agg_bucket *)y)->key_time;
    return (a > b) - (a < b);
}

static int finish(const srch_agg *a, part *p, srch_agg_result *r, int has_range, int64_t rs, int64_t re)
{
    memset(r, 0, sizeof *r);
    r->type = a->type;
    r->count = p->count;
    r->min = p->min;
    r->max = p->max;
    r->sum = p->sum;
    r->interval_ns = a->interval_ns;
    if (a->type == SRCH_AGG_PERCENTILES) {
        r->pvalues = seg_malloc((a->npercents ? a->npercents : 1) * sizeof *r->pvalues);
        if (!r->pvalues)
            return -1;
        for (size_t i = 0; i < a->npercents; i++)
            r->pvalues[i] = dds_quantile(&p->sk, a->percents[i] / 100.0);
    }
    if (a->type == SRCH_AGG_CARDINALITY)
        r->cardinality = p->hll ? hll_estimate(p->hll) : 0;
    if (a->type != SRCH_AGG_DATE_HISTOGRAM && a->type != SRCH_AGG_TERMS)
        return 0;
    size_t nb = p->nb;
    int64_t first = 0, last = -1;
    if (a->type == SRCH_AGG_DATE_HISTOGRAM && a->sparse) {
        r->buckets = seg_calloc(nb ? nb : 1, sizeof *r->buckets);
        if (!r->buckets)
            return -1;
        for (size_t i = 0; i < nb; i++) {
            r->buckets[i].key_time = p->b[i].tkey;
            r->buckets[i].count = p->b[i].count;
        }
        if (nb > 1)
            qsort(r->buckets, nb, sizeof *r->buckets, bucket_cmp_time);
    } else if (a->type == SRCH_AGG_DATE_HISTOGRAM) {
        /* every bucket between the range's ends (or the data's) */
        int64_t iv = a->interval_ns;
        int have = 0;
        for (size_t i = 0; i < p->nb; i++) {
            if (!have || p->b[i].tkey < first)
                first = p->b[i].tkey;
            if (!have || p->b[i].tkey > last)
                last = p->b[i].tkey;
            have = 1;
        }
        if (has_range) {
            int64_t e1;
            if (__builtin_sub_overflow(rs / iv * iv, rs % iv < 0 ? iv : 0, &first) ||
                __builtin_sub_overflow(re, 1, &e1) ||
                __builtin_sub_overflow(e1 / iv * iv, e1 % iv < 0 ? iv : 0, &last))
                return -2;
        }
        /* times from a hostile segment may span more than int64 holds:
         * too many buckets, not an overflow */
        int64_t span, q = 0;
        if (have || has_range) {
            if (__builtin_sub_overflow(last, first, &span))
                return -2;
            q = span / iv + 1;
        }
        if (q < 0 || q > (int64_t)SRCH_AGG_MAX_BUCKETS)
            return -2;
        nb = (size_t)q;
    }
    if (!r->buckets && !(r->buckets = seg_calloc(nb ? nb : 1, sizeof *r->buckets)))
        return -1;
    if (a->type == SRCH_AGG_DATE_HISTOGRAM && a->sparse) {
        /* (filled above) */
    } else if (a->type == SRCH_AGG_DATE_HISTOGRAM) {
        for (size_t i = 0; i < nb; i++)
            r->buckets[i].key_time = first + (int64_t)i * a->interval_ns;
        for (size_t i = 0; i < p->nb; i++) {
            int64_t k = p->b[i].tkey;
            if (k < first || k > last)
                continue;
            r->buckets[(size_t)((k - first) / a->interval_ns)].count = p->b[i].count;
        }
    } else {
        for (size_t i = 0; i < nb; i++) {
            srch_agg_bucket *b = &r->buckets[i];
            b->key_is_str = p->b[i].is_str;
            b->key_num = p->b[i].nkey;
            b->key_str = p->b[i].skey;
            b->key_len = p->b[i].slen;
            b->count = p->b[i].count;
            b->key_time = (int64_t)i; /* the partial bucket, for sub-results */
        }
        if (nb > 1)
            qsort(r->buckets, nb, sizeof *r->buckets, bucket_cmp_terms);
        if (nb > a->size)
            nb = a->size;
    }
    r->nbuckets = nb;
    /* terms: the kept buckets' string keys pass to the result, all of them
     * before anything can fail (a key owned by both would be freed twice) */
    for (size_t i = 0; a->type == SRCH_AGG_TERMS && i < nb; i++)
        p->b[r->buckets[i].key_time].skey = NULL;
    /* sub-results */
    for (size_t i = 0; i < nb; i++) {
        srch_agg_bucket *b = &r->buckets[i];
        pbucket *pb;
        if (a->type == SRCH_AGG_TERMS) {
            pb = &p->b[b->key_time];
            b->key_time = 0;
        } else {
            pb = bucket_find(p, 0, b->key_time, 0, NULL, 0, bkey_hash(0, b->key_time, 0, NULL, 0));
        }
        if (!a->nsubs)
            continue;
        b->subs = seg_calloc(a->nsubs, sizeof *b->subs);
        if (!b->subs)
            return -1;
        b->nsubs = a->nsubs;
        for (size_t s = 0; s < a->nsubs; s++) {
            part empty;
            memset(&empty, 0, sizeof empty);
            int rc = finish(&a->subs[s], pb ? &pb->subs[s] : &empty, &b->subs[s], has_range, rs, re);
            if (rc)
                return rc;
        }
    }
    /* terms cut by size keep their keys in the partial state, freed there */
    return 0;
}

/* Resolves auto intervals and checks bucket counts, recursively. */
static int plan(srch_agg *a, size_t n, int64_t lo, int64_t hi, seg_err *e)
{
    static const int64_t nice[] = {1000000000LL, 5000000000LL, 10000000000LL, 30000000000LL, 60000000000LL,
                                   300000000000LL, 600000000000LL, 1800000000000LL, 3600000000000LL,
                                   10800000000000LL, 43200000000000LL, 86400000000000LL, 604800000000000LL};
    for (size_t i = 0; i < n; i++) {
        if (a[i].type == SRCH_AGG_DATE_HISTOGRAM) {
            int64_t span = 1;
            if (hi > lo && __builtin_sub_overflow(hi, lo, &span))
                span = INT64_MAX; /* times centuries apart: too many buckets below */
            if (a[i].interval_ns <= 0) {
                size_t k = 0;
                while (k + 1 < sizeof nice / sizeof *nice && span / nice[k] > 100)
                    k++;
                a[i].interval_ns = nice[k];
            }
            if (!a[i].sparse && span / a[i].interval_ns + 2 > SRCH_AGG_MAX_BUCKETS)
                return seg_err_set(e, SEG_EQUERY, NULL,
                                   "aggregation '%s': the interval is too fine for the time range (%lld buckets, at most %d)",
                                   a[i].name, (long long)(span / a[i].interval_ns + 1), SRCH_AGG_MAX_BUCKETS);
        }
        int rc = plan(a[i].subs, a[i].nsubs, lo, hi, e);
        if (rc)
            return rc;
    }
    return SEG_OK;
}

static srch_agg *agg_copy(const srch_agg *a, size_t n)
{
    srch_agg *c = seg_calloc(n ? n : 1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        c[i] = a[i];
        c[i].subs = NULL;
        if (a[i].nsubs && !(c[i].subs = agg_copy(a[i].subs, a[i].nsubs))) {
            for (size_t k = 0; k < i; k++)
                seg_free(c[k].subs);
            seg_free(c);
            return NULL;
        }
    }
    return c;
}

static void agg_copy_free(srch_agg *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        agg_copy_free(c[i].subs, c[i].nsubs);
    seg_free(c);
}

int srch_aggregate(srch_index *ix, const srch_request *rq, const srch_agg *aggs, size_t naggs,
                   srch_agg_result **out, uint64_t *total, srch_stats *st, seg_err *e)
{
    *out = NULL;
    *total = 0;
    if (st)
        memset(st, 0, sizeof *st);
    size_t ns = srch_index_nsegments(ix);
    /* the time span: the request's, else the data's */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < ns; i++) {
        seg_reader *r = srch_index_segment(ix, i);
        if (seg_reader_min_time(r) < lo)
            lo = seg_reader_min_time(r);
        if (seg_reader_max_time(r) >= hi)
            hi = seg_reader_max_time(r) + 1;
    }
    if (rq->has_start)
        lo = rq->start;
    if (rq->has_end)
        hi = rq->end;
    srch_agg *a = agg_copy(aggs, naggs);
    if (!a)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    int rc = plan(a, naggs, lo, hi, e);
    atask *t = rc ? NULL : seg_calloc(ns ? ns : 1, sizeof *t);
    size_t nt = 0;
    if (!rc && !t)
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == SEG_OK && i < ns; i++) {
        seg_reader *r = srch_index_segment(ix, i);
        if ((rq->has_end && seg_reader_min_time(r) >= rq->end) || (rq->has_start && seg_reader_max_time(r) < rq->start))
            continue;
        t[nt].r = r;
        if (!(t[nt].parts = seg_calloc(naggs ? naggs : 1, sizeof(part))))
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        nt++;
    }
    if (rc == SEG_OK) {
        ajob j = {rq, a, naggs, need_times(a, naggs), t};
        srch_pool_run(srch_index_pool(ix), nt, run_atask, &j);
    }
    part *merged = rc ? NULL : seg_calloc(naggs ? naggs : 1, sizeof *merged);
    if (rc == SEG_OK && !merged)
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == SEG_OK && i < nt; i++) {
        if (t[i].rc && t[i].e.code == SEG_ECORRUPT && st) {
            /* left out, and said so: the healthy segments still answer */
            if (st->segments_failed++ == 0) {
                char b[600];
                snprintf(st->failure, sizeof st->failure, "%s", seg_err_str(&t[i].e, b, sizeof b));
            }
            continue;
        }
        if (t[i].rc) {
            rc = seg_err_set(e, t[i].e.code ? t[i].e.code : t[i].rc, t[i].e.file[0] ? t[i].e.file : NULL, "%s", t[i].e.msg);
            break;
        }
        *total += t[i].total;
        for (size_t k = 0; k < naggs && rc == SEG_OK; k++)
            if (part_merge(&merged[k], &t[i].parts[k], &a[k]))
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    srch_agg_result *res = NULL;
    if (rc == SEG_OK && !(res = seg_calloc(naggs ? naggs : 1, sizeof *res)))
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t k = 0; rc == SEG_OK && k < naggs; k++) {
        int f = finish(&a[k], &merged[k], &res[k], rq->has_start && rq->has_end, lo, hi);
        if (f == -2)
            rc = seg_err_set(e, SEG_EQUERY, NULL, "aggregation '%s': more than %d buckets", a[k].name, SRCH_AGG_MAX_BUCKETS);
        else if (f)
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; t && i < nt; i++) {
        for (size_t k = 0; t[i].parts && k < naggs; k++)
            part_free(&t[i].parts[k], &a[k]);
        seg_free(t[i].parts);
    }
    seg_free(t);
    for (size_t k = 0; merged && k < naggs; k++)
        part_free(&merged[k], &a[k]);
    seg_free(merged);
    agg_copy_free(a, naggs);
    if (rc) {
        result_free(res, res ? naggs : 0);
        seg_free(res);
        return rc;
    }
    *out = res;
    return SEG_OK;
}

static void result_free(srch_agg_result *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        for (size_t b = 0; b < r[i].nbuckets; b++) {
            seg_free(r[i].buckets[b].key_str);
            result_free(r[i].buckets[b].subs, r[i].buckets[b].nsubs);
            seg_free(r[i].buckets[b].subs);
        }
        seg_free(r[i].buckets);
        seg_free(r[i].pvalues);
    }
}

void srch_agg_results_free(srch_agg_result *r, size_t n)
{
    result_free(r, n);
    seg_free(r);
}
