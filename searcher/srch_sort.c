/*
 * srch_sort.c -- search in another order than newest first: by a numeric
 * field (ascending or descending) or by time ascending (srch_request's
 * sort_field / sort_asc; srch_search hands such requests here).
 *
 * Order: the key (a field's value: the least of a doc's values when
 * ascending, the greatest when descending, as Elasticsearch does; or the
 * time), docs without the field last in both directions, then time
 * descending (ascending when the key is the time), then _id ascending.
 *
 * Segments store events newest first and are not ordered by any field, so
 * each segment's task takes every match in the time range, reads the key of
 * each (the numeric column, in one merge join), drops what is not after
 * the cursor, and keeps its best `limit` (within one segment, equal (key,
 * time) are in _id order already: doc order).  The merge fetches the _ids
 * of the kept candidates (ties across segments need them), sorts, and
 * fetches the page's events.  Cost: every match of every segment in the
 * range is visited (no early stop as in time order): O(matches) time and
 * 24 bytes of memory per match of the largest segment.
 *
 * Cursor: "s1" + 'f' (field) or 't' (time ascending) + '1' (has a key) or
 * '0' (missing) + 16 hex digits (the key's double bits, or the time) + 16
 * hex digits (the time) + the hex of the _id.  The next page is every match
 * strictly after it in the order above.
 *
 * A field with string values and no number in any segment searched is
 * refused (SEG_EQUERY): byte-order sorting of strings is not built.  Where
 * a field holds both, events with only strings in it sort as missing.
 */
#define _GNU_SOURCE
#include "searcher/srch_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scand {
    int has;                   /* the doc has the key */
    double v;                  /* the key (field sorts) */
    int64_t time;
    uint32_t task, doc;
    char *id;                  /* fetched for the merge */
    size_t id_len;
} scand;

typedef struct sort_spec {
    int by_time;               /* time ascending */
    int asc;
    const char *field;
} sort_spec;

typedef struct scursor {
    int set;
    scand c;                   /* the last hit of the previous page (id: cid) */
} scursor;

static int id_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    return c ? c : an < bn ? -1 : an > bn;
}

/* The order of the top, without the _id (0: tie on key and time). */
static int key_cmp(const sort_spec *s, const scand *a, const scand *b)
{
    if (s->by_time)
        return a->time != b->time ? (a->time < b->time ? -1 : 1) : 0;
    if (a->has != b->has)
        return a->has ? -1 : 1; /* missing last */
    if (a->has && a->v != b->v)
        return (a->v < b->v) == s->asc ? -1 : 1;
    return a->time != b->time ? (a->time > b->time ? -1 : 1) : 0;
}

static int full_cmp(const sort_spec *s, const scand *a, const scand *b)
{
    int c = key_cmp(s, a, b);
    if (c)
        return c;
    if (a->id && b->id)
        return id_cmp(a->id, a->id_len, b->id, b->id_len);
    if (a->task == b->task) /* one segment: doc order is _id order for equal times */
        return a->doc < b->doc ? -1 : a->doc > b->doc;
    return 0;
}

static int cmp_r(const void *pa, const void *pb, void *ctx) { return full_cmp(ctx, pa, pb); }

/* ---- cursor ---- */

static void hex16(char *o, uint64_t v)
{
    static const char h[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        o[i] = h[v & 15];
}

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int get16(const char *s, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 16; i++) {
        int h = unhex(s[i]);
        if (h < 0)
            return -1;
        *v = *v << 4 | (uint64_t)h;
    }
    return 0;
}

static char *cursor_make(const sort_spec *s, const scand *c)
{
    size_t n = 4 + 32 + 2 * c->id_len + 1;
    char *o = seg_malloc(n);
    if (!o)
        return NULL;
    uint64_t bits;
    memcpy(&bits, &c->v, 8);
    o[0] = 's', o[1] = '1', o[2] = s->by_time ? 't' : 'f', o[3] = c->has ? '1' : '0';
    hex16(o + 4, s->by_time ? 0 : bits);
    hex16(o + 20, (uint64_t)c->time);
    for (size_t i = 0; i < c->id_len; i++) {
        static const char h[] = "0123456789abcdef";
        o[36 + 2 * i] = h[(unsigned char)c->id[i] >> 4];
        o[37 + 2 * i] = h[(unsigned char)c->id[i] & 15];
    }
    o[n - 1] = 0;
    return o;
}

static int cursor_parse(const sort_spec *s, const char *p, scursor *cu, seg_err *e)
{
    size_t l = strlen(p);
    uint64_t bits, t;
    if (l < 36 || (l - 36) % 2 || p[0] != 's' || p[1] != '1' || p[2] != (s->by_time ? 't' : 'f') ||
        (p[3] != '0' && p[3] != '1') || get16(p + 4, &bits) || get16(p + 20, &t))
        return seg_err_set(e, SEG_EQUERY, NULL, "malformed cursor (or one of another sort order)");
    cu->c.has = p[3] == '1';
    memcpy(&cu->c.v, &bits, 8);
    cu->c.time = (int64_t)t;
    cu->c.id_len = (l - 36) / 2;
    cu->c.id = seg_malloc(cu->c.id_len + 1);
    if (!cu->c.id)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < cu->c.id_len; i++) {
        int a = unhex(p[36 + 2 * i]), b = unhex(p[37 + 2 * i]);
        if (a < 0 || b < 0)
            return seg_err_set(e, SEG_EQUERY, NULL, "malformed cursor");
        cu->c.id[i] = (char)(a << 4 | b);
    }
    cu->set = 1;
    return SEG_OK;
}

/* ---- per segment ---- */

typedef struct stask {
    seg_reader *r;
    scand *c;                  /* kept candidates (best first) */
    size_t n;
    uint64_t total, after;     /* matches in range; of them, after the cursor */
    int saw_num, saw_str;      /* the field has numbers / only strings here */
    int rc;
    seg_err e;
} stask;

typedef struct sjob {
    const srch_request *rq;
    const sort_spec *s;
    const scursor *cu;
    stask *t;
} sjob;

typedef struct kjoin {
    const uint32_t *docs;
    size_t n, i;
    scand *c;
    int asc;
} kjoin;

static void key_join(void *ud, uint32_t doc, double v)
{
    kjoin *j = ud;
    while (j->i < j->n && j->docs[j->i] < doc)
        j->i++;
    if (j->i < j->n && j->docs[j->i] == doc && !isnan(v)) {
        scand *c = &j->c[j->i];
        if (!c->has || (j->asc ? v < c->v : v > c->v))
            c->v = v;
        c->has = 1;
    }
}

static void run_stask(void *arg, size_t i)
{
    sjob *j = arg;
    stask *t = &j->t[i];
    const srch_request *rq = j->rq;
    const sort_spec *s = j->s;
    seg_reader *r = t->r;
    seg_err *e = &t->e;
    uint32_t n = seg_reader_ndocs(r), lo = 0, hi = n;
    srch_seg_out out = {0};
    seg_store_cur *sc = NULL;
    if (rq->has_end && (t->rc = seg_reader_time_seek_lt(r, rq->end, &lo, e)))
        return;
    if (rq->has_start && (t->rc = seg_reader_time_seek_lt(r, rq->start, &hi, e)))
        return;
    if (lo >= hi)
        return;
    if ((t->rc = srch_exec_segment(r, rq->q, lo, hi, lo, SIZE_MAX, &out, e)))
        goto done;
    t->total = out.total;
    if (!out.nhits)
        goto done;
    scand *c = seg_calloc(out.nhits, sizeof *c);
    int64_t *times = seg_malloc((size_t)(hi - lo) * sizeof *times);
    if (!c || !times) {
        seg_free(c);
        seg_free(times);
        t->rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto done;
    }
    t->c = c;
    if ((t->rc = seg_reader_times(r, lo, hi, times, e))) {
        seg_free(times);
        goto done;
    }
    for (size_t k = 0; k < out.nhits; k++) {
        c[k].time = times[out.docs[k] - lo];
        c[k].task = (uint32_t)i;
        c[k].doc = out.docs[k];
    }
    seg_free(times);
    if (!s->by_time) {
        int f = seg_reader_field_find(r, s->field, strlen(s->field));
        if (f >= 0) {
            const seg_field *fi = seg_reader_field(r, (uint32_t)f);
            t->saw_num = fi->nnum != 0;
            t->saw_str = !fi->nnum && (fi->flags & SEG_F_STRING);
            kjoin kj = {out.docs, out.nhits, 0, c, s->asc};
            if (fi->nnum && (t->rc = seg_reader_num_scan(r, (uint32_t)f, -INFINITY, 1, INFINITY, 1, key_join, &kj,
                                                         e)))
                goto done;
        }
    }
    size_t m = out.nhits;
    if (j->cu->set) { /* keep what is strictly after the cursor */
        if (!(sc = seg_store_cur_new())) {
            t->rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            goto done;
        }
        size_t w = 0;
        for (size_t k = 0; k < m; k++) {
            int cmp = key_cmp(s, &c[k], &j->cu->c);
            if (cmp == 0) {
                const char *id;
                size_t il;
                if ((t->rc = seg_reader_doc(r, sc, c[k].doc, &id, &il, NULL, NULL, e)))
                    goto done;
                cmp = id_cmp(id, il, j->cu->c.id, j->cu->c.id_len);
            }
            if (cmp > 0)
                c[w++] = c[k];
        }
        m = w;
    }
    t->after = m;
    qsort_r(c, m, sizeof *c, cmp_r, (void *)s);
    t->n = m < rq->limit ? m : rq->limit;
done:
    seg_store_cur_free(sc);
    seg_free(out.docs);
}

static sort_spec spec_of(const srch_request *rq)
{
    const char *f = rq->sort_field;
    sort_spec s = {0, rq->sort_asc, f};
    if (!f || !*f || !strcmp(f, "_time") || !strcmp(f, "@timestamp"))
        s.by_time = 1; /* srch_search sends time descending its own way */
    return s;
}

char *srch_sort_cursor_of(const srch_request *rq, const srch_hit *h)
{
    sort_spec s = spec_of(rq);
    scand c = {h->sort_has, h->sort_v, h->time, 0, 0, h->id, h->id_len};
    return cursor_make(&s, &c);
}

int srch_search_sorted(srch_index *ix, const srch_request *rq, srch_result *out, seg_err *e)
{
    memset(out, 0, sizeof *out);
    sort_spec s = spec_of(rq);
    const char *f = rq->sort_field;
    scursor cu = {0};
    int rc = SEG_OK;
    if (rq->cursor && rq->cursor[0] && (rc = cursor_parse(&s, rq->cursor, &cu, e))) {
        seg_free(cu.c.id);
        return rc;
    }
    size_t ns = srch_index_nsegments(ix);
    stask *t = seg_calloc(ns ? ns : 1, sizeof *t);
    if (!t) {
        seg_free(cu.c.id);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    size_t nt = 0;
    for (size_t i = 0; i < ns; i++) {
        seg_reader *r = srch_index_segment(ix, i);
        if (srch_out_of_range(r, rq)) {
            out->stats.segments_pruned++;
            continue;
        }
        t[nt++].r = r;
    }
    out->stats.segments_total = ns;
    out->stats.segments_searched = nt;
    sjob j = {rq, &s, &cu, t};
    srch_pool_run(srch_index_pool(ix), nt, run_stask, &j);
    uint64_t after = 0;
    size_t nc = 0;
    int saw_num = 0, saw_str = 0;
    for (size_t i = 0; i < nt; i++) {
        saw_num |= t[i].saw_num;
        saw_str |= t[i].saw_str;
    }
    if (saw_str && !saw_num)
        rc = seg_err_set(e, SEG_EQUERY, NULL,
                         "sort: '%s' holds strings only; sorting is by a numeric field or by time (_time): "
                         "strings are not sortable yet",
                         f);
    for (size_t i = 0; i < nt; i++) {
        if (t[i].rc == SEG_ECORRUPT) { /* left out and reported, as in time order */
            if (out->stats.segments_failed++ == 0) {
                char b[600];
                snprintf(out->stats.failure, sizeof out->stats.failure, "%s", seg_err_str(&t[i].e, b, sizeof b));
            }
            t[i].n = 0;
            continue;
        }
        if (t[i].rc && rc == SEG_OK)
            rc = seg_err_set(e, t[i].e.code ? t[i].e.code : t[i].rc, t[i].e.file[0] ? t[i].e.file : NULL, "%s",
                             t[i].e.msg);
        out->total += t[i].total;
        after += t[i].after;
        nc += t[i].n;
    }
    scand *c = NULL;
    seg_store_cur *sc = NULL;
    if (rc == SEG_OK && nc && !rq->count_only && rq->limit) {
        c = seg_calloc(nc, sizeof *c);
        sc = seg_store_cur_new();
        if (!c || !sc)
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        size_t k = 0;
        for (size_t i = 0; rc == SEG_OK && i < nt; i++)
            for (size_t x = 0; x < t[i].n && rc == SEG_OK; x++) {
                c[k] = t[i].c[x];
                const char *id;
                size_t il;
                if ((rc = seg_reader_doc(t[i].r, sc, c[k].doc, &id, &il, NULL, NULL, e)) == SEG_OK &&
                    !(c[k].id = seg_strndup(id, il)))
                    rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                c[k++].id_len = il;
            }
        if (rc == SEG_OK)
            qsort_r(c, nc, sizeof *c, cmp_r, &s);
        size_t keep = nc < rq->limit ? nc : rq->limit;
        if (rc == SEG_OK && !(out->hits = seg_calloc(keep, sizeof *out->hits)))
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        for (size_t i = 0; rc == SEG_OK && i < keep; i++) {
            const char *id, *js;
            size_t il, jl;
            srch_hit *h = &out->hits[i];
            if ((rc = seg_reader_doc(t[c[i].task].r, sc, c[i].doc, &id, &il, &js, &jl, e)))
                break;
            h->time = c[i].time;
            h->sort_has = c[i].has;
            h->sort_v = c[i].v;
            h->seg = t[c[i].task].r;
            h->id = seg_strndup(id, il);
            h->id_len = il;
            h->json = seg_strndup(js, jl);
            h->json_len = jl;
            out->nhits = i + 1;
            if (!h->id || !h->json)
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        }
        if (rc == SEG_OK && after > keep && keep && !(out->cursor = cursor_make(&s, &c[keep - 1])))
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; c && i < nc; i++)
        seg_free(c[i].id);
    seg_free(c);
    seg_store_cur_free(sc);
    for (size_t i = 0; i < nt; i++)
        seg_free(t[i].c);
    seg_free(t);
    seg_free(cu.c.id);
    if (rc)
        srch_result_free(out);
    return rc;
}
