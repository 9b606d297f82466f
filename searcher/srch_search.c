/*
 * srch_search.c -- searching an index: snapshot, parallel segments, merge.
 *
 * Order of hits: event time descending, then _id ascending (bytewise).
 * Every segment stores its events in that order, so a segment's first k
 * matching docs are its k best, and the global answer is a merge.
 *
 * Cursor: "c1" + 16 hex digits (the last hit's time as u64) + the hex of
 * its _id.  The next page is every match strictly after that (time, _id)
 * in the order above; it does not depend on which segments hold the
 * events, so pages stay exact when segments change between requests.
 */
#define _GNU_SOURCE
#include "searcher/srch_exec.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Thread pool                                                          */
/* ------------------------------------------------------------------ */

struct srch_pool {
    pthread_mutex_t mu;        /* guards everything below */
    pthread_cond_t work, done;
    pthread_mutex_t run_mu;    /* one job at a time */
    pthread_t *th;
    int nth;
    int stop;
    uint64_t gen;              /* job generation */
    void (*fn)(void *, size_t);
    void *arg;
    size_t n, next, finished;
};

static void pool_work(srch_pool *p)
{
    /* called with p->mu held */
    while (p->next < p->n) {
        size_t i = p->next++;
        void (*fn)(void *, size_t) = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, i);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->n)
            pthread_cond_broadcast(&p->done);
    }
}

static void *pool_main(void *arg)
{
    srch_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    uint64_t seen = 0;
    while (!p->stop) {
        if (p->gen != seen && p->next < p->n) {
            pool_work(p);
            seen = p->gen;
            continue;
        }
        seen = p->gen;
        pthread_cond_wait(&p->work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

srch_pool *srch_pool_new(int threads)
{
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (int)nc : 1;
    }
    srch_pool *p = seg_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    /* the caller's thread works too: start threads - 1 helpers */
    p->th = seg_calloc((size_t)threads, sizeof *p->th);
    if (!p->th) {
        seg_free(p);
        return NULL;
    }
    for (int i = 0; i < threads - 1; i++)
        if (pthread_create(&p->th[p->nth], NULL, pool_main, p) == 0)
            p->nth++;
    return p;
}

void srch_pool_free(srch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    seg_free(p->th);
    seg_free(p);
}

void srch_pool_run(srch_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    if (n == 0)
        return;
    if (!p || p->nth == 0 || n == 1) {
        for (size_t i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->next = 0;
    p->finished = 0;
    p->gen++;
    pthread_cond_broadcast(&p->work);
    pool_work(p);
    while (p->finished < p->n)
        pthread_cond_wait(&p->done, &p->mu);
    p->n = 0;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
}

/* ------------------------------------------------------------------ */
/* Index snapshot                                                       */
/* ------------------------------------------------------------------ */

/* A page's events are fetched by up to FETCH_CHUNKS pool tasks (each
 * fetch decodes a store block: ~20 us for a zstd block of 32 KiB). */
#define FETCH_CHUNKS 4
#define FETCH_MIN_PER_CHUNK 8

struct srch_index {
    seg_set *set;              /* the snapshot searched (one reference) */
    seg_reader **segs;         /* its readers, newest first */
    size_t nsegs;
    int64_t bucket_ns;         /* 0 when unknown */
    srch_pool *pool;
    seg_store_cur *spare[FETCH_CHUNKS]; /* warm store cursors for merges (atomic swaps) */
};

static int seg_newer(const void *a, const void *b)
{
    const seg_reader *x = *(seg_reader *const *)a, *y = *(seg_reader *const *)b;
    int64_t tx = seg_reader_max_time(x), ty = seg_reader_max_time(y);
    return tx > ty ? -1 : tx < ty;
}

int srch_index_from_set(seg_set *set, srch_pool *pool, srch_index **out, seg_err *e)
{
    *out = NULL;
    srch_index *ix = seg_calloc(1, sizeof *ix);
    size_t n = seg_set_count(set);
    seg_reader **segs = seg_malloc((n ? n : 1) * sizeof *segs);
    if (!ix || !segs) {
        seg_free(ix);
        seg_free(segs);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        segs[i] = seg_set_at(set, i);
    if (n > 1)
        qsort(segs, n, sizeof *segs, seg_newer);
    seg_set_ref(set);
    ix->set = set;
    ix->segs = segs;
    ix->nsegs = n;
    ix->pool = pool;
    *out = ix;
    return SEG_OK;
}

int srch_index_open(const char *datadir, const char *index, srch_pool *pool, srch_index **out,
                    seg_err *e)
{
    *out = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", datadir, index);
    seg_manifest man;
    seg_reader **r = NULL;
    size_t k = 0;
    int rc;
    /* A writer that merges or deletes segments unlinks files after it has
     * replaced the manifest: a file that vanished between reading the
     * manifest and opening it means a newer manifest; read it again. */
    for (int attempt = 0;; attempt++) {
        int exists;
        if ((rc = seg_manifest_load(dir, &man, &exists, e)))
            return rc;
        if (!exists) {
            seg_manifest_free(&man);
            return seg_err_set(e, SEG_ENOENT, NULL, "no such index: %s (looked in data directory %s)", index,
                               datadir);
        }
        r = seg_calloc(man.n ? man.n : 1, sizeof *r);
        k = 0;
        if (!r)
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        int vanished = 0;
        for (size_t i = 0; rc == SEG_OK && i < man.n; i++) {
            char p[4096 + 80];
            snprintf(p, sizeof p, "%s/%s", dir, man.e[i].name);
            if ((rc = seg_reader_open(p, &r[k], e)) == SEG_OK)
                k++;
            else
                vanished = access(p, F_OK) != 0 && errno == ENOENT;
        }
        if (rc == SEG_OK || !vanished || attempt == 20)
            break;
        for (size_t i = 0; i < k; i++)
            seg_reader_unref(r[i]);
        seg_free(r);
        seg_manifest_free(&man);
        if (e)
            memset(e, 0, sizeof *e);
    }
    seg_set *set = NULL;
    if (rc == SEG_OK && !(set = seg_set_new(r, k)))
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < k; i++)
        seg_reader_unref(r[i]); /* the set holds them now */
    seg_free(r);
    if (rc == SEG_OK)
        rc = srch_index_from_set(set, pool, out, e);
    seg_set_unref(set);
    if (rc == SEG_OK)
        (*out)->bucket_ns = man.bucket_ns;
    seg_manifest_free(&man);
    return rc;
}

void srch_index_close(srch_index *ix)
{
    if (!ix)
        return;
    seg_set_unref(ix->set);
    seg_free(ix->segs);
    for (size_t i = 0; i < FETCH_CHUNKS; i++)
        seg_store_cur_free(ix->spare[i]);
    seg_free(ix);
}

size_t srch_index_nsegments(const srch_index *ix) { return ix->nsegs; }
seg_reader *srch_index_segment(const srch_index *ix, size_t i) { return ix->segs[i]; }
srch_pool *srch_index_pool(const srch_index *ix) { return ix->pool; }

uint64_t srch_index_events(const srch_index *ix)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ix->nsegs; i++)
        n += seg_reader_ndocs(ix->segs[i]);
    return n;
}

uint64_t srch_index_bytes(const srch_index *ix)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ix->nsegs; i++)
        n += seg_reader_bytes(ix->segs[i]);
    return n;
}

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

void srch_index_set_bucket_ns(srch_index *ix, int64_t ns) { ix->bucket_ns = ns; }

static int cmp_bucket(const void *a, const void *b)
{
    const srch_bucket *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

size_t srch_index_buckets(const srch_index *ix, srch_bucket **out)
{
    *out = seg_malloc((ix->nsegs ? ix->nsegs : 1) * sizeof **out);
    if (!*out)
        return 0;
    srch_bucket *b = *out;
    size_t n = 0;
    for (size_t i = 0; i < ix->nsegs; i++) {
        seg_reader *r = ix->segs[i];
        int64_t t = seg_reader_min_time(r);
        int64_t start = ix->bucket_ns > 0 ? floordiv(t, ix->bucket_ns) * ix->bucket_ns : t;
        b[n].start = start;
        b[n].segments = 1;
        b[n].events = seg_reader_ndocs(r);
        b[n].bytes = seg_reader_bytes(r);
        n++;
    }
    qsort(b, n, sizeof *b, cmp_bucket);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && b[k - 1].start == b[i].start) {
            b[k - 1].segments++;
            b[k - 1].events += b[i].events;
            b[k - 1].bytes += b[i].bytes;
        } else {
            b[k++] = b[i];
        }
    }
    return k;
}

size_t srch_index_nbuckets(const srch_index *ix)
{
    srch_bucket *b;
    size_t n = srch_index_buckets(ix, &b);
    seg_free(b);
    return n;
}

void srch_index_fields(const srch_index *ix, void (*fn)(void *ud, const char *name, size_t len, unsigned flags,
                                                        uint64_t docs),
                       void *ud)
{
    /* merge the segments' field tables by name (small: a linear list) */
    typedef struct fa {
        const char *name;
        size_t len;
        unsigned flags;
        uint64_t docs;
    } fa;
    fa *all = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < ix->nsegs; i++) {
        seg_reader *r = ix->segs[i];
        for (uint32_t f = 0; f < seg_reader_nfields(r); f++) {
            const seg_field *sf = seg_reader_field(r, f);
            size_t k = 0;
            while (k < n && !(all[k].len == sf->name_len && !memcmp(all[k].name, sf->name, sf->name_len)))
                k++;
            if (k == n) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    fa *q = seg_realloc(all, cap * sizeof *q);
                    if (!q) {
                        seg_free(all);
                        return;
                    }
                    all = q;
                }
                all[n++] = (fa){sf->name, sf->name_len, 0, 0};
            }
            all[k].flags |= sf->flags;
            all[k].docs += sf->docs;
        }
    }
    for (size_t k = 0; k < n; k++)
        fn(ud, all[k].name, all[k].len, all[k].flags, all[k].docs);
    seg_free(all);
}

/* ------------------------------------------------------------------ */
/* Cursor                                                               */
/* ------------------------------------------------------------------ */

static char *cursor_make(int64_t t, const char *id, size_t n)
{
    char *c = seg_malloc(2 + 16 + 2 * n + 1);
    if (!c)
        return NULL;
    int k = sprintf(c, "c1%016llx", (unsigned long long)t);
    for (size_t i = 0; i < n; i++)
        k += sprintf(c + k, "%02x", (unsigned char)id[i]);
    return c;
}

char *srch_cursor_of(const srch_hit *h) { return cursor_make(h->time, h->id, h->id_len); }

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int cursor_parse(const char *c, int64_t *t, char **id, size_t *n, seg_err *e)
{
    size_t l = strlen(c);
    if (l < 18 || c[0] != 'c' || c[1] != '1' || (l - 18) % 2 || l > 18 + 2 * 4096)
        return seg_err_set(e, SEG_EQUERY, NULL, "malformed cursor");
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        int h = hexv(c[2 + i]);
        if (h < 0)
            return seg_err_set(e, SEG_EQUERY, NULL, "malformed cursor");
        v = v << 4 | (uint64_t)h;
    }
    *t = (int64_t)v;
    *n = (l - 18) / 2;
    *id = seg_malloc(*n + 1);
    if (!*id)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        int a = hexv(c[18 + 2 * i]), b = hexv(c[19 + 2 * i]);
        if (a < 0 || b < 0) {
            seg_free(*id);
            *id = NULL;
            return seg_err_set(e, SEG_EQUERY, NULL, "malformed cursor");
        }
        (*id)[i] = (char)(a << 4 | b);
    }
    return SEG_OK;
}

static int id_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* ------------------------------------------------------------------ */
/* Search                                                               */
/* ------------------------------------------------------------------ */

typedef struct task {
    seg_reader *r;
    srch_seg_out out;          /* matching docs (the first `limit`) */
    int64_t *times;            /* their times */
    seg_err e;
    int rc;
    int failed;                /* left out: the segment is corrupt */
} task;

typedef struct job {
    const srch_request *rq;
    task *t;
    int has_cursor;
    int64_t ct;
    const char *cid;
    size_t cidlen;
} job;

static int cursor_from(job *j, seg_reader *r, seg_store_cur *sc, uint32_t lo, uint32_t hi,
                       uint32_t *from, seg_err *e)
{
    if (!j->has_cursor) {
        *from = lo;
        return SEG_OK;
    }
    uint32_t d;
    if (seg_reader_time_seek_le(r, j->ct, &d, e))
        return e->code;
    while (d < hi) {
        int64_t t;
        if (seg_reader_time(r, d, &t, e))
            return e->code;
        if (t != j->ct)
            break;
        const char *id;
        size_t il;
        if (seg_reader_doc(r, sc, d, &id, &il, NULL, NULL, e))
            return e->code;
        if (id_cmp(id, il, j->cid, j->cidlen) > 0)
            break;
        d++;
    }
    *from = d > lo ? d : lo;
    return SEG_OK;
}

static void run_task(void *arg, size_t i)
{
    job *j = arg;
    task *t = &j->t[i];
    const srch_request *rq = j->rq;
    seg_reader *r = t->r;
    seg_err *e = &t->e;
    uint32_t n = seg_reader_ndocs(r), lo = 0, hi = n, from = 0;
    seg_store_cur *sc = seg_store_cur_new();
    if (!sc) {
        t->rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return;
    }
    if (rq->has_end && (t->rc = seg_reader_time_seek_lt(r, rq->end, &lo, e)))
        goto out;
    if (rq->has_start && (t->rc = seg_reader_time_seek_lt(r, rq->start, &hi, e)))
        goto out;
    if ((t->rc = cursor_from(j, r, sc, lo, hi, &from, e)))
        goto out;
    size_t limit = rq->count_only ? 0 : rq->limit;
    if ((t->rc = srch_exec_segment(r, rq->q, lo, hi, from, limit, &t->out, e)))
        goto out;
    /* only times here: events are fetched for the final page alone */
    if (t->out.nhits && !(t->times = seg_malloc(t->out.nhits * sizeof *t->times))) {
        t->rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < t->out.nhits; k++)
        if ((t->rc = seg_reader_time(r, t->out.docs[k], &t->times[k], e)))
            goto out;
out:
    seg_store_cur_free(sc);
}

/* A candidate hit during the merge. */
typedef struct cand {
    int64_t time;
    uint32_t task, doc;
    const char *id;            /* fetched only where times tie */
    size_t id_len;
} cand;

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->time != b->time)
        return a->time > b->time ? -1 : 1;
    if (a->id && b->id)
        return id_cmp(a->id, a->id_len, b->id, b->id_len);
    /* same segment: doc order is id order */
    if (a->task == b->task)
        return a->doc < b->doc ? -1 : a->doc > b->doc;
    return 0;
}

static void hit_free(srch_hit *h)
{
    seg_free(h->id);
    seg_free(h->json);
}

static int fetch_cmp(const void *pa, const void *pb, void *ctx)
{
    const cand *c = ctx, *a = &c[*(const uint32_t *)pa], *b = &c[*(const uint32_t *)pb];
    if (a->task != b->task)
        return a->task < b->task ? -1 : 1;
    return a->doc < b->doc ? -1 : a->doc > b->doc;
}

/* A warm store cursor of slot k, or a new one (NULL when out of memory). */
static seg_store_cur *cur_take(srch_index *ix, size_t k)
{
    seg_store_cur *sc = __atomic_exchange_n(&ix->spare[k], NULL, __ATOMIC_ACQ_REL);
    return sc ? sc : seg_store_cur_new();
}

static void cur_give(srch_index *ix, size_t k, seg_store_cur *sc)
{
    if (sc)
        seg_store_cur_free(__atomic_exchange_n(&ix->spare[k], sc, __ATOMIC_ACQ_REL)); /* another merge returned one first */
}

typedef struct fetch_job {
    srch_index *ix;
    task *t;
    const cand *c;
    const uint32_t *ord;
    size_t keep;
    srch_result *out;
    size_t nchunks;
    seg_store_cur *cur[FETCH_CHUNKS];
    int rc[FETCH_CHUNKS];
    seg_err e[FETCH_CHUNKS];
} fetch_job;

/* Fetches the events of chunk k of the page (a range of fetch order). */
static void run_fetch(void *arg, size_t k)
{
    fetch_job *fj = arg;
    size_t from = fj->keep * k / fj->nchunks, to = fj->keep * (k + 1) / fj->nchunks;
    if (!fj->cur[k]) {
        fj->rc[k] = seg_err_set(&fj->e[k], SEG_ENOMEM, NULL, "out of memory");
        return;
    }
    for (size_t oi = from; oi < to; oi++) {
        size_t i = fj->ord[oi];
        const cand *ci = &fj->c[i];
        const char *id, *js;
        size_t il, jl;
        if ((fj->rc[k] = seg_reader_doc(fj->t[ci->task].r, fj->cur[k], ci->doc, &id, &il, &js, &jl, &fj->e[k])))
            return;
        srch_hit *h = &fj->out->hits[i];
        h->time = ci->time;
        h->seg = fj->t[ci->task].r;
        h->id = seg_strndup(id, il);
        h->id_len = il;
        h->json = seg_strndup(js, jl);
        h->json_len = jl;
        if (!h->id || !h->json) {
            fj->rc[k] = seg_err_set(&fj->e[k], SEG_ENOMEM, NULL, "out of memory");
            return;
        }
    }
}

/* Merges the tasks' candidates into the final page: order by time, fetch
 * the _ids of candidates whose times tie (the order then needs them), and
 * fetch the events of the page only. */
static int merge(srch_index *ix, task *t, size_t nt, size_t limit, srch_result *out, seg_err *e)
{
    size_t n = 0;
    for (size_t i = 0; i < nt; i++)
        n += t[i].out.nhits;
    if (n == 0 || limit == 0)
        return SEG_OK;
    cand *c = seg_malloc(n * sizeof *c);
    /* one cursor serves the ties (fetches go segment by segment) */
    seg_store_cur *sc = cur_take(ix, 0);
    int rc = SEG_OK;
    if (!c || !sc) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < nt; i++)
        for (size_t j = 0; j < t[i].out.nhits; j++)
            c[k++] = (cand){t[i].times[j], (uint32_t)i, t[i].out.docs[j], NULL, 0};
    qsort(c, n, sizeof *c, cand_cmp);
    size_t keep = n < limit ? n : limit;
    size_t m = keep; /* and the candidates tied with the last kept one */
    while (m < n && c[m].time == c[keep - 1].time)
        m++;
    int ties = 0;
    for (size_t i = 0; i < m; i++) {
        int tie = (i > 0 && c[i].time == c[i - 1].time) || (i + 1 < m && c[i].time == c[i + 1].time);
        if (!tie)
            continue;
        ties = 1;
        task *tk = &t[c[i].task];
        const char *id;
        size_t il;
        if ((rc = seg_reader_doc(tk->r, sc, c[i].doc, &id, &il, NULL, NULL, e)))
            goto out;
        /* the cursor's block may change: keep a copy */
        c[i].id = seg_strndup(id, il);
        c[i].id_len = il;
        if (!c[i].id) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            goto out;
        }
    }
    if (ties)
        qsort(c, m, sizeof *c, cand_cmp);
    out->hits = seg_calloc(keep, sizeof *out->hits);
    uint32_t *ord = seg_malloc(keep * sizeof *ord);
    if (!out->hits || !ord) {
        seg_free(ord);
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    /* fetch in (segment, doc) order so that events of one block share its
     * decompression; place each at its rank.  Contiguous ranges of that
     * order go to the pool's threads. */
    for (uint32_t i = 0; i < keep; i++)
        ord[i] = i;
    qsort_r(ord, keep, sizeof *ord, fetch_cmp, c);
    out->nhits = keep;
    fetch_job fj = {ix, t, c, ord, keep, out, 1, {sc}, {0}, {{0}}};
    while (fj.nchunks < FETCH_CHUNKS && keep / (fj.nchunks + 1) >= FETCH_MIN_PER_CHUNK)
        fj.nchunks++;
    for (size_t k = 1; k < fj.nchunks; k++)
        fj.cur[k] = cur_take(ix, k);
    srch_pool_run(ix->pool, fj.nchunks, run_fetch, &fj);
    for (size_t k = 0; k < fj.nchunks; k++) {
        if (fj.rc[k] && rc == SEG_OK) {
            rc = fj.rc[k];
            *e = fj.e[k];
        }
        if (k)
            cur_give(ix, k, fj.cur[k]);
    }
    seg_free(ord);
out:
    if (c)
        for (size_t i = 0; i < n; i++)
            seg_free((char *)c[i].id);
    cur_give(ix, 0, sc);
    seg_free(c);
    return rc;
}

void srch_result_free(srch_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nhits; i++)
        hit_free(&r->hits[i]);
    seg_free(r->hits);
    seg_free(r->cursor);
    memset(r, 0, sizeof *r);
}

int srch_match_docs(seg_reader *r, const srch_query *q, uint32_t **docs, size_t *n, seg_err *e)
{
    srch_seg_out out;
    uint32_t nd = seg_reader_ndocs(r);
    int rc = srch_exec_segment(r, q, 0, nd, 0, SIZE_MAX, &out, e);
    *docs = rc ? NULL : out.docs;
    *n = rc ? 0 : out.nhits;
    if (rc)
        seg_free(out.docs);
    return rc;
}

/* Leaves a task's segment out of the answer, recording why. */
static void fail_task(srch_result *out, task *t, const seg_err *why)
{
    t->failed = 1;
    t->out.nhits = 0;
    if (out->stats.segments_failed++ == 0) {
        char b[600];
        snprintf(out->stats.failure, sizeof out->stats.failure, "%s", seg_err_str(why, b, sizeof b));
    }
}

int srch_out_of_range(const seg_reader *r, const srch_request *rq)
{
    return (rq->has_end && seg_reader_min_time(r) >= rq->end) || (rq->has_start && seg_reader_max_time(r) < rq->start) ||
           (rq->has_start && rq->has_end && rq->start >= rq->end);
}

int srch_search(srch_index *ix, const srch_request *rq, srch_result *out, seg_err *e)
{
    const char *sf = rq->sort_field;
    int by_time = !sf || !*sf || !strcmp(sf, "_time") || !strcmp(sf, "@timestamp");
    if (!rq->count_only && (!by_time || rq->sort_asc))
        return srch_search_sorted(ix, rq, out, e);
    memset(out, 0, sizeof *out);
    job j = {rq, NULL, 0, 0, NULL, 0};
    char *cid = NULL;
    int rc = SEG_OK;
    if (rq->cursor && rq->cursor[0]) {
        if ((rc = cursor_parse(rq->cursor, &j.ct, &cid, &j.cidlen, e)))
            return rc;
        j.has_cursor = 1;
        j.cid = cid;
    }
    out->stats.segments_total = ix->nsegs;
    task *t = seg_calloc(ix->nsegs ? ix->nsegs : 1, sizeof *t);
    if (!t) {
        seg_free(cid);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    size_t nt = 0;
    for (size_t i = 0; i < ix->nsegs; i++) {
        seg_reader *r = ix->segs[i];
        if (srch_out_of_range(r, rq)) {
            out->stats.segments_pruned++;
            continue;
        }
        t[nt++].r = r;
    }
    out->stats.segments_searched = nt;
    j.t = t;
    srch_pool_run(ix->pool, nt, run_task, &j);
    /* A corrupt segment is left out and reported (stats.segments_failed):
     * the healthy segments still answer.  Any other error fails the
     * search. */
    uint64_t after = 0;
    for (size_t i = 0; i < nt; i++) {
        if (t[i].rc == SEG_ECORRUPT) {
            fail_task(out, &t[i], &t[i].e);
            continue;
        }
        if (t[i].rc && !rc) /* the task's code when its error says none */
            rc = seg_err_set(e, t[i].e.code ? t[i].e.code : t[i].rc, t[i].e.file[0] ? t[i].e.file : NULL, "%s",
                             t[i].e.msg[0] ? t[i].e.msg : seg_strerror(t[i].rc));
        out->total += t[i].out.total;
        after += t[i].out.after;
    }
    /* the page's events may sit in a store block that fails its check:
     * leave that segment out too, and merge again */
    for (size_t tries = 0; rc == SEG_OK && !rq->count_only; tries++) {
        seg_err me = {0};
        rc = merge(ix, t, nt, rq->limit, out, &me);
        if (rc != SEG_ECORRUPT || tries > nt) {
            if (rc)
                seg_err_set(e, me.code, me.file[0] ? me.file : NULL, "%s", me.msg);
            break;
        }
        int dropped = 0;
        for (size_t i = 0; i < nt; i++) {
            seg_err fe = {0};
            if (!t[i].failed && seg_reader_failed(t[i].r, &fe)) {
                out->total -= t[i].out.total;
                after -= t[i].out.after;
                fail_task(out, &t[i], &fe);
                dropped = 1;
            }
        }
        for (size_t i = 0; i < out->nhits; i++)
            hit_free(&out->hits[i]);
        seg_free(out->hits);
        out->hits = NULL;
        out->nhits = 0;
        rc = dropped ? SEG_OK : seg_err_set(e, me.code, me.file[0] ? me.file : NULL, "%s", me.msg);
    }
    if (rc == SEG_OK && !rq->count_only && after > out->nhits && out->nhits > 0) {
        srch_hit *last = &out->hits[out->nhits - 1];
        out->cursor = cursor_make(last->time, last->id, last->id_len);
        if (!out->cursor)
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < nt; i++) {
        seg_free(t[i].out.docs);
        seg_free(t[i].times);
    }
    seg_free(t);
    seg_free(cid);
    if (rc)
        srch_result_free(out);
    return rc;
}
