/*
 * idx_merge.c -- which segments to merge, and merging them.
 *
 * Policy (idx_merge_plan), per bucket; merges cross buckets only as
 * spans (below).  A
 * segment of at least target/2 bytes is "full" and left alone.  Of the
 * others ("small"):
 *
 *   tiered   -- sizes are grouped in levels of factor 4 (level 0: up to
 *               1 MiB, level 1: up to 4 MiB, ...).  When a level holds 4
 *               or more small segments, up to 32 of its smallest are merged
 *               (as long as their sum stays within target).  This keeps a
 *               bucket that is still being written to at O(log n)
 *               segments, each byte rewritten O(log n) times.
 *   settled  -- a bucket that got no new segment for `settle` (or every
 *               bucket, for `logdex compact`) is merged down: starting
 *               from the smallest, segments join while the next one is at
 *               most 4 times the sum so far, or the sum stays within
 *               target/8 (64 MiB by default: cheap to rewrite), or while
 *               more than 3 would otherwise stay behind; the sum stays
 *               within target.  So a settled bucket keeps at most 4 small
 *               segments (one, below target/8), and one late event does
 *               not rewrite a large segment.
 *
 * Of all the buckets' candidates, the one with the most inputs goes first.
 *
 *   spans    -- (idx_merge_plan_span) sparse data makes many tiny
 *               segments, one per bucket (14k events over two months in
 *               1-hour buckets: 1,218 segments of ~11 events, 0.9 of the
 *               raw bytes on disk, mostly per-segment fixed costs).  When
 *               no merge within a bucket is left, the settled segments of
 *               at most 256 KiB of one aligned window (1 day by default;
 *               the retention period in whole buckets when shorter) are
 *               merged into one segment that spans their buckets (the
 *               manifest's END); a window with a larger or unsettled
 *               segment is left alone, so a dense day keeps its hourly
 *               segments.  Such a segment is one bucket for retention:
 *               dropped when its last bucket has passed.
 * A merge in a settled bucket writes a compact segment (its events
 * compressed for size: seg_builder_set_compact).  When there is nothing to
 * merge, a settled bucket's segment that is not yet compact (a lone flush,
 * a full segment, one of an older build) is rewritten alone, one a step,
 * smallest first: so every settled bucket ends up compact, and each byte
 * pays the slow compression once.
 *
 * Merging (idx_merge_build) reads the inputs' stored events and builds a
 * new segment from them, as a flush would: postings, columns, field
 * statistics and the _id index are all rebuilt.  A lone rewrite of a
 * segment of this version keeps its index sections as they are and
 * compresses only its events again (seg_rewrite_compact).  Events with the same
 * explicit _id in two inputs (possible after a crash between a flush and
 * the write-ahead log's deletion) are kept once.
 */
#define _GNU_SOURCE
#include "indexer/idx_int.h"

#include <stdlib.h>
#include <string.h>

#define LEVEL_BASE (1u << 20)

static int level_of(uint64_t bytes)
{
    int l = 0;
    for (uint64_t lim = LEVEL_BASE; bytes > lim && l < 30; lim *= 4)
        l++;
    return l;
}

typedef struct cand {
    size_t idx;
    uint64_t bytes;
    int level;
} cand;

/* by size (hence by level too: levels grow with size), then position */
static int cmp_bytes(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_bucket(const void *a, const void *b, void *ud)
{
    const seg_mentry *e = ud;
    const size_t *x = a, *y = b;
    if (e[*x].bucket != e[*y].bucket)
        return e[*x].bucket < e[*y].bucket ? -1 : 1;
    return *x < *y ? -1 : *x > *y;
}

/* The end of the bucket group starting at ord[i] (entries sorted by
 * bucket), and in *settled whether that bucket got no new segment for
 * settle_ns (force: always; touched NULL or INT64_MIN: written before this
 * process). */
static size_t bucket_group(const seg_mentry *e, const size_t *ord, size_t i, size_t n, const int64_t *touched,
                           int force, int64_t now, int64_t settle_ns, int *settled)
{
    size_t j = i;
    int64_t last = INT64_MIN;
    while (j < n && e[ord[j]].bucket == e[ord[i]].bucket) {
        if (touched && touched[ord[j]] > last)
            last = touched[ord[j]];
        j++;
    }
    *settled = force || last == INT64_MIN || now - last >= settle_ns;
    return j;
}

/* The candidate of one bucket's small segments c[0..n) (sorted by size):
 * fills pick, returns its length (0: none). */
static size_t plan_bucket(cand *c, size_t n, int settled, uint64_t target, size_t *pick)
{
    /* tiered: the lowest level with 4 or more */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && c[j].level == c[i].level)
            j++;
        if (j - i >= 4) {
            uint64_t sum = 0;
            size_t k = 0;
            for (size_t x = i; x < j && k < IDX_MERGE_MAX; x++) {
                if (k >= 2 && sum + c[x].bytes > target)
                    break;
                sum += c[x].bytes;
                pick[k++] = c[x].idx;
            }
            if (k >= 2)
                return k;
        }
        i = j;
    }
    if (!settled || n < 2)
        return 0;
    /* settled: smallest first */
    uint64_t sum = c[0].bytes;
    size_t k = 1;
    pick[0] = c[0].idx;
    while (k < n && k < IDX_MERGE_MAX) {
        uint64_t next = c[k].bytes;
        if (sum + next > target)
            break;
        if (!(next <= 4 * sum || sum + next <= target / 8 || n - k > 3))
            break;
        sum += next;
        pick[k] = c[k].idx;
        k++;
    }
    return k >= 2 ? k : 0;
}

size_t idx_merge_plan(const seg_mentry *e, size_t n, const uint8_t *busy, const uint8_t *compact, int64_t now,
                      int64_t settle_ns, const int64_t *touched, int force, uint64_t target, size_t *pick,
                      int *settled_out)
{
    *settled_out = 0;
    if (n < 1)
        return 0;
    size_t *ord = seg_malloc(n * sizeof *ord);
    cand *c = seg_malloc(n * sizeof *c);
    size_t *tmp = seg_malloc(IDX_MERGE_MAX * sizeof *tmp);
    size_t best = 0, lone = SIZE_MAX; /* lone: a settled, not compact segment */
    int best_settled = 0;
    if (!ord || !c || !tmp)
        goto out;
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    qsort_r(ord, n, sizeof *ord, cmp_bucket, (void *)e);
    for (size_t i = 0; i < n;) {
        int settled;
        size_t j = bucket_group(e, ord, i, n, touched, force, now, settle_ns, &settled);
        size_t nc = 0;
        for (size_t x = i; x < j; x++) {
            size_t k = ord[x];
            if (busy && busy[k])
                continue;
            if (settled && compact && !compact[k] && (lone == SIZE_MAX || e[k].bytes < e[lone].bytes))
                lone = k;
            if (e[k].bytes >= target / 2)
                continue;
            c[nc].idx = k;
            c[nc].bytes = e[k].bytes;
            c[nc].level = level_of(e[k].bytes);
            nc++;
        }
        if (nc >= 2) {
            qsort(c, nc, sizeof *c, cmp_bytes);
            size_t k = plan_bucket(c, nc, settled, target, tmp);
            if (k > best) {
                best = k;
                best_settled = settled;
                memcpy(pick, tmp, k * sizeof *pick);
            }
        }
        i = j;
    }
    if (best == 0 && lone != SIZE_MAX) {
        best = 1;
        best_settled = 1;
        pick[0] = lone;
    }
    *settled_out = best_settled;
out:
    seg_free(ord);
    seg_free(c);
    seg_free(tmp);
    return best;
}

/* floor(t / span) */
static int64_t window_of(int64_t t, int64_t span) { return t >= 0 ? t / span : -((-(t + 1)) / span) - 1; }

size_t idx_merge_plan_span(const seg_mentry *e, size_t n, const uint8_t *busy, int64_t now, int64_t settle_ns,
                           const int64_t *touched, int force, int64_t bucket_ns, int64_t span_ns, uint64_t small,
                           size_t *pick)
{
    if (span_ns <= bucket_ns || bucket_ns <= 0 || n < 2)
        return 0;
    size_t *ord = seg_malloc(n * sizeof *ord), best = 0;
    if (!ord)
        return 0;
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    qsort_r(ord, n, sizeof *ord, cmp_bucket, (void *)e);
    for (size_t i = 0; i < n;) {
        int64_t win = window_of(e[ord[i]].bucket, span_ns);
        size_t j = i;
        int ok = 1;
        while (j < n && window_of(e[ord[j]].bucket, span_ns) == win)
            j++;
        /* every segment of the window: small, idle, its bucket settled */
        for (size_t g = i; g < j && ok;) {
            int settled;
            size_t ge = bucket_group(e, ord, g, j, touched, force, now, settle_ns, &settled);
            for (; g < ge && ok; g++) {
                size_t k = ord[g];
                ok = settled && !(busy && busy[k]) && e[k].bytes <= small &&
                     window_of(seg_mentry_end(&e[k], bucket_ns) - 1, span_ns) == win; /* never past the window */
            }
        }
        size_t cnt = j - i < IDX_MERGE_MAX ? j - i : IDX_MERGE_MAX;
        if (ok && cnt >= 2 && cnt > best) {
            best = cnt;
            for (size_t x = 0; x < cnt; x++)
                pick[x] = ord[i + x];
        }
        i = j;
    }
    seg_free(ord);
    return best;
}

/* ---- building ---- */

typedef struct idrec {
    uint64_t hash;
    uint32_t seg, doc;
} idrec;

static int cmp_idrec(const void *a, const void *b)
{
    const idrec *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

#define BIT_SET(m, i) ((m)[(i) >> 3] |= (uint8_t)(1u << ((i) & 7)))
#define BIT_GET(m, i) (((m)[(i) >> 3] >> ((i) & 7)) & 1u)

int idx_merge_build(seg_reader *const *in, size_t n, const char *path, const int *cancel, int compact,
                    idx_merge_out *out, seg_err *e)
{
    memset(out, 0, sizeof *out);
    if (n == 1 && compact) {
        /* one segment made compact: its index stays as it is, only the
         * events are compressed again; a segment of an older version is
         * rebuilt below instead (SEG_EVERSION) */
        out->docs = out->in_docs = seg_reader_ndocs(in[0]);
        out->in_bytes = seg_reader_bytes(in[0]);
        out->min_time = seg_reader_min_time(in[0]);
        out->max_time = seg_reader_max_time(in[0]);
        int rc = seg_rewrite_compact(in[0], path, cancel, &out->bytes, e);
        if (rc != SEG_EVERSION)
            return rc;
        seg_err_clear(e);
        memset(out, 0, sizeof *out);
    }
    out->min_time = INT64_MAX;
    out->max_time = INT64_MIN;
    int rc = SEG_OK;
    uint8_t **expl = seg_calloc(n, sizeof *expl), **drop = seg_calloc(n, sizeof *drop);
    idrec *ids = NULL;
    size_t nids = 0;
    seg_builder *b = seg_builder_new();
    seg_store_cur *c1 = seg_store_cur_new(), *c2 = seg_store_cur_new();
    seg_tok *tok = seg_tok_new();
    seg_json *js = seg_json_new();
    int64_t *times = NULL;
    if (!expl || !drop || !b || !c1 || !c2 || !tok || !js) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (merge)");
        goto out;
    }
    if (cancel)
        seg_builder_set_cancel(b, cancel);
    seg_builder_set_compact(b, compact);
    /* 1. the explicit ids of every input, sorted by hash */
    for (size_t s = 0; s < n; s++) {
        uint32_t nd = seg_reader_ndocs(in[s]);
        expl[s] = seg_calloc(nd / 8 + 1, 1);
        drop[s] = seg_calloc(nd / 8 + 1, 1);
        const uint8_t *recs;
        uint32_t nr;
        if (!expl[s] || !drop[s]) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (merge)");
            goto out;
        }
        if ((rc = seg_reader_ids(in[s], &recs, &nr, e)))
            goto out;
        idrec *q = seg_realloc(ids, (nids + nr + 1) * sizeof *q);
        if (!q) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (merge)");
            goto out;
        }
        ids = q;
        for (uint32_t k = 0; k < nr; k++) {
            uint32_t doc = seg_rd_u32(recs + (size_t)k * 12 + 8);
            if (doc >= nd) {
                rc = seg_err_set(e, SEG_ECORRUPT, seg_reader_path(in[s]), "id index names doc %u of %u",
                                 doc, nd);
                goto out;
            }
            BIT_SET(expl[s], doc);
            ids[nids].hash = seg_rd_u64(recs + (size_t)k * 12);
            ids[nids].seg = (uint32_t)s;
            ids[nids].doc = doc;
            nids++;
        }
    }
    if (nids)
        qsort(ids, nids, sizeof *ids, cmp_idrec);
    /* 2. equal hashes: compare the ids exactly; later copies are dropped */
    for (size_t i = 0; i < nids;) {
        size_t j = i + 1;
        while (j < nids && ids[j].hash == ids[i].hash)
            j++;
        for (size_t a = i; a < j; a++) {
            if (BIT_GET(drop[ids[a].seg], ids[a].doc))
                continue;
            const char *ia, *ja;
            size_t ial, jal;
            if ((rc = seg_reader_doc(in[ids[a].seg], c1, ids[a].doc, &ia, &ial, &ja, &jal, e)))
                goto out;
            for (size_t x = a + 1; x < j; x++) {
                const char *ib, *jb;
                size_t ibl, jbl;
                if ((rc = seg_reader_doc(in[ids[x].seg], c2, ids[x].doc, &ib, &ibl, &jb, &jbl, e)))
                    goto out;
                if (ibl == ial && !memcmp(ia, ib, ial) && !BIT_GET(drop[ids[x].seg], ids[x].doc)) {
                    BIT_SET(drop[ids[x].seg], ids[x].doc);
                    out->dups++;
                }
            }
        }
        i = j;
    }
    /* 3. every kept event into the builder */
    for (size_t s = 0; s < n; s++) {
        uint32_t nd = seg_reader_ndocs(in[s]);
        out->in_bytes += seg_reader_bytes(in[s]);
        out->in_docs += nd;
        seg_free(times);
        times = seg_malloc(((size_t)nd + 1) * sizeof *times);
        if (!times) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (merge)");
            goto out;
        }
        if (nd && (rc = seg_reader_times(in[s], 0, nd, times, e)))
            goto out;
        for (uint32_t d = 0; d < nd; d++) {
            if (cancel && (d & 1023) == 0 && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
                rc = seg_err_set(e, SEG_EBUSY, NULL, "merge cancelled");
                goto out;
            }
            if (BIT_GET(drop[s], d))
                continue;
            const char *id, *json;
            size_t il, jl;
            if ((rc = seg_reader_doc(in[s], c1, d, &id, &il, &json, &jl, e)))
                goto out;
            if ((rc = seg_builder_add(b, json, jl, times[d], id, il, (int)BIT_GET(expl[s], d)))) {
                rc = seg_err_set(e, rc, NULL, "merge: %s", seg_strerror(rc));
                goto out;
            }
            if (times[d] < out->min_time)
                out->min_time = times[d];
            if (times[d] > out->max_time)
                out->max_time = times[d];
        }
    }
    out->docs = seg_builder_count(b);
    if (out->docs == 0) {
        rc = seg_err_set(e, SEG_EINVAL, NULL, "merge: no events in the inputs");
        goto out;
    }
    rc = seg_builder_write(b, tok, js, path, &out->bytes, e);
out:
    for (size_t s = 0; s < n; s++) {
        if (expl)
            seg_free(expl[s]);
        if (drop)
            seg_free(drop[s]);
    }
    seg_free(expl);
    seg_free(drop);
    seg_free(ids);
    seg_free(times);
    seg_builder_free(b);
    seg_store_cur_free(c1);
    seg_store_cur_free(c2);
    seg_tok_free(tok);
    seg_json_free(js);
    return rc;
}
