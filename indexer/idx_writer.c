/*
 * idx_writer.c -- buffering events per time bucket and flushing segments.
 *
 * Directory layout of an index (docs/segment-format.md):
 *   DATA/INDEX/lock          flock()ed by the one writer
 *   DATA/INDEX/manifest      the live segments (seg_manifest.c)
 *   DATA/INDEX/sSEQ.seg      segments, SEQ = 16 hex digits
 *
 * Crash safety of a flush: segments are written under temporary names,
 * fsynced and renamed; only then is the manifest replaced (atomically).
 * A crash before the manifest swap leaves segment files that no manifest
 * lists: the next writer deletes them, and those events were never
 * acknowledged as stored.
 */
#define _GNU_SOURCE
#include "indexer/idx_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUCKET_NS (3600LL * 1000000000LL)

typedef struct idslot {
    uint64_t hash;
    uint32_t off, len;      /* the id in the bucket's id arena */
} idslot;

typedef struct bucket {
    int64_t start;
    seg_builder *b;
    uint32_t sealed;        /* events already in in-memory segments */
} bucket;

/* The explicit _ids buffered since the last flush, exactly. */
typedef struct idset {
    seg_buf ids;
    idslot *slots;
    uint32_t n, mask;
} idset;

struct idx_writer {
    char *dir;
    int lockfd;
    seg_manifest man;
    idx_opts opts;
    idx_counts counts;
    bucket *buckets;
    size_t nbuckets, capbuckets;
    size_t buffered;
    uint32_t buffered_events;
    seg_json *js;
    seg_tok *tok;
    seg_store_cur *sc;
    /* _id de-duplication across the whole index (docs/architecture.md):
     * `pending` holds the buffered ids exactly; `stored` the XXH3 hashes of
     * every stored explicit id (loaded from the segments' IDS sections at
     * the first event with an _id); a hash hit is confirmed exactly in the
     * segments (`readers`, parallel to man.e, opened on demand). */
    idset pending;
    struct flush_batch *inflight;   /* the flush in the background, or NULL */
    uint64_t *stored;
    size_t nstored, stored_mask;
    int stored_loaded;
    seg_reader **readers;
    size_t nreaders;
    uint64_t auto_seq;
    int64_t auto_base;
    /* server mode (opts.wal): the idx_ingest / idx_snapshot / idx_tick
     * callers share the writer under mu, which guards every field above
     * and below (the flush batch is the flush thread's until joined) */
    pthread_mutex_t mu;
    pthread_cond_t flushed;         /* signalled when a flush thread is done */
    /* the flush threads: opts.threads of them, started by the first flush
     * and kept until idx_close (each keeps its tokenizer, and malloc keeps
     * its arena); they take the jobs of the batches in `queue` (linked by
     * qnext) oldest first */
    pthread_t *pool;
    int npool;
    int pool_stop;
    pthread_mutex_t pool_mu;        /* guards queue, pool_stop and the batches' next */
    pthread_cond_t pool_cv;         /* a batch queued, or stop */
    struct flush_batch *queue;      /* batches with jobs not yet taken, oldest first */
    idx_wal wal;
    uint64_t replayed;
    int64_t buffer_since;           /* arrival of the oldest buffered event */
    seg_reader **mem;               /* in-memory segments of sealed events */
    size_t nmem, capmem;
    seg_set *snap;                  /* cached snapshot, NULL when stale */
    /* lifecycle: touched[i] is when man.e[i] was added by a flush
     * (INT64_MIN: before this process), kept parallel to man.e */
    int64_t *touched;
    size_t ntouched;
    int merging;                    /* merges between plan and commit */
    struct mrange {                 /* the buckets they cover, [lo, hi) */
        int64_t lo, hi;
    } *mranges;                     /* (merging of them) */
    size_t capmranges;
    char (*unmergeable)[64];        /* segments a merge found corrupt: never */
    size_t nunmergeable;            /* picked again (their errors are reported once) */
    int cancel_merge;               /* atomic: idx_merge_cancel was called */
    idx_life life;                  /* counters for /metrics */
    /* settings (idx_settings.c): an immutable copy read without the lock
     * (the ingest parse); idx_set_time_fields publishes a new one and keeps
     * the old ones (prev) until close, as a reader may hold one */
    struct tset {
        idx_settings s;
        struct tset *prev;
    } *tset;
    /* disk full (server mode; see "Disk full" below) */
    uint64_t heal_seq;              /* ingest waits until man.wal_done reaches it */
    int heal_errno;                 /* the log failure being healed */
    int64_t heal_at;                /* idx_tick tries the recovery again from then */
    int low_space;                  /* free space under the watermark (last tick) */
    uint64_t disk_free, min_free;   /* at the last tick */
};

int idx_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '_' || c == '.' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

#define FLUSH_SPLIT_MIN 16384u /* the default of idx_opts.split_min (see flushing) */

void idx_opts_default(idx_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bucket_ns = DEFAULT_BUCKET_NS;
    o->buffer_bytes = 64u << 20;
    o->threads = 2;
    o->split_min = FLUSH_SPLIT_MIN;
    o->span_ns = 86400LL * 1000000000LL;
    o->max_age_ns = 10LL * 1000000000LL;
    o->max_future_ns = 86400LL * 1000000000LL;
    o->retention_ns = 0;
    o->segment_target = 512ull << 20;
    o->settle_ns = 60LL * 1000000000LL;
    o->ingest_wait_ns = 5LL * 1000000000LL;
    o->min_free_bytes = 256ull << 20;
    o->min_free_permille = 50;
}

/* The cached snapshot is stale: the next idx_snapshot builds a new one. */
static void snap_drop(idx_writer *w)
{
    seg_set_unref(w->snap);
    w->snap = NULL;
}

/* Keeps touched[] as long as man.e, new entries marked `when`. */
static int touch_sync(idx_writer *w, int64_t when)
{
    if (w->ntouched < w->man.n) {
        int64_t *t = seg_realloc(w->touched, w->man.n * sizeof *t);
        if (!t)
            return -1;
        for (size_t i = w->ntouched; i < w->man.n; i++)
            t[i] = when;
        w->touched = t;
    }
    w->ntouched = w->man.n;
    return 0;
}

/* Removes the manifest entries marked in drop[] from the writer's parallel
 * arrays (man.e, readers, touched), releasing the writer's readers; open
 * snapshots keep their own references. */
static void entries_remove(idx_writer *w, const uint8_t *drop)
{
    /* readers[] and touched[] may be shorter than man.e (readers are
     * opened on demand): an entry kept beyond their length stays beyond */
    size_t k = 0, kr = 0, kt = 0;
    for (size_t i = 0; i < w->man.n; i++) {
        seg_reader *r = i < w->nreaders ? w->readers[i] : NULL;
        if (drop[i]) {
            if (r)
                seg_reader_unref(r);
            continue;
        }
        w->man.e[k] = w->man.e[i];
        if (i < w->nreaders)
            w->readers[kr++] = r;
        if (i < w->ntouched)
            w->touched[kt++] = w->touched[i];
        k++;
    }
    w->man.n = k;
    /* a kept entry past the old readers[] end now sits at a smaller index;
     * readers[] only covers the prefix that was fully inside it */
    for (size_t i = kr; i < w->nreaders; i++)
        w->readers[i] = NULL;
    w->nreaders = kr <= k ? kr : k;
    w->ntouched = kt <= k ? kt : k;
}

/* Why an event time is refused, or NULL when it is accepted. */
static const char *time_refused(const idx_writer *w, int64_t t, int64_t now, char *buf, size_t n)
{
    char ts[40];
    if (w->opts.max_future_ns > 0 && t > now && t - now > w->opts.max_future_ns) {
        seg_time_format(t, ts);
        snprintf(buf, n, "event time %s is more than %llds ahead of the server's clock (--max-future)", ts,
                 (long long)(w->opts.max_future_ns / 1000000000LL));
        return buf;
    }
    if (w->opts.retention_ns > 0 && t < now - w->opts.retention_ns) {
        seg_time_format(t, ts);
        snprintf(buf, n, "event time %s is older than the retention period (--retention %llds)", ts,
                 (long long)(w->opts.retention_ns / 1000000000LL));
        return buf;
    }
    return NULL;
}

static int replay_event(void *ud, const char *json, size_t n, int64_t time, const char *id, size_t idlen,
                        int explicit_id, seg_err *e);

static void remove_orphans(idx_writer *w)
{
    DIR *d = opendir(w->dir);
    if (!d)
        return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        int tmp = n > 4 && !strcmp(de->d_name + n - 4, ".tmp");
        int seg = n > 4 && !strcmp(de->d_name + n - 4, ".seg");
        if (!tmp && !seg)
            continue;
        int live = 0;
        for (size_t i = 0; seg && i < w->man.n; i++)
            if (!strcmp(w->man.e[i].name, de->d_name))
                live = 1;
        if (live)
            continue;
        snprintf(path, sizeof path, "%s/%s", w->dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void check_space(idx_writer *w);

/* The time fields an event of w is timed by (never NULL after open). */
static const idx_settings *settings(const idx_writer *w)
{
    return &__atomic_load_n(&w->tset, __ATOMIC_ACQUIRE)->s;
}

static int settings_publish(idx_writer *w, const idx_settings *s, seg_err *e)
{
    struct tset *t = seg_calloc(1, sizeof *t);
    if (!t)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    t->s = *s;
    for (size_t i = 0; i < t->s.ntime; i++)
        t->s.time_ptr[i] = t->s.time_field[i];
    t->prev = w->tset;
    __atomic_store_n(&w->tset, t, __ATOMIC_RELEASE);
    return SEG_OK;
}

static int index_empty(const idx_writer *w)
{
    return w->man.n == 0 && w->nbuckets == 0 && !w->inflight && w->replayed == 0;
}

/* At open: INDEX/settings, or the ones asked for (see idx_opts.time_fields):
 * written when the index gets them (fresh is 1 for an index made now). */
static int settings_open(idx_writer *w, int fresh, seg_err *e)
{
    idx_settings cur, want;
    int have, rc;
    if ((rc = idx_settings_load(w->dir, &cur, &have, e)))
        return rc;
    const char *ask = w->opts.time_fields && *w->opts.time_fields ? w->opts.time_fields
                      : fresh && !have && w->opts.default_time_fields && *w->opts.default_time_fields
                          ? w->opts.default_time_fields
                          : NULL;
    if (ask) {
        if ((rc = idx_settings_parse_fields(ask, &want, e)))
            return rc;
        if (have && !idx_settings_equal(&cur, &want)) {
            char b[1200];
            idx_settings_format_fields(&cur, b, sizeof b);
            return seg_err_set(e, SEG_EINVAL, w->dir,
                               "this index's time field is %s (set when it was created); it cannot change "
                               "to %s",
                               b, ask);
        }
        if (!have) {
            if (w->man.n)
                return seg_err_set(e, SEG_EINVAL, w->dir,
                                   "this index already holds events timed by the built-in fields: a time field "
                                   "is set when an index is created (use a new index)");
            if ((rc = idx_settings_save(w->dir, &want, e)))
                return rc;
            cur = want;
        }
    }
    return settings_publish(w, &cur, e);
}

void idx_time_fields(idx_writer *w, char *out, size_t n)
{
    idx_settings_format_fields(settings(w), out, n);
}

int idx_set_time_fields(idx_writer *w, const char *csv, seg_err *e)
{
    idx_settings want;
    int rc = idx_settings_parse_fields(csv, &want, e);
    if (rc)
        return rc;
    pthread_mutex_lock(&w->mu);
    const idx_settings *cur = settings(w);
    if (!idx_settings_equal(cur, &want)) {
        if (!index_empty(w)) {
            char b[1200];
            idx_settings_format_fields(cur, b, sizeof b);
            rc = seg_err_set(e, SEG_EINVAL, w->dir,
                             "this index holds events already (timed by %s%s): a time field is set before "
                             "the first ingest (use a new index)",
                             *b ? b : "the built-in fields", *b ? " and the built-in fields" : "");
        } else if ((rc = idx_settings_save(w->dir, &want, e)) == SEG_OK) {
            rc = settings_publish(w, &want, e);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int idx_open(const char *datadir, const char *index, const idx_opts *o, idx_writer **out, seg_err *e)
{
    *out = NULL;
    if (!idx_name_valid(index))
        return seg_err_set(e, SEG_EINVAL, NULL,
                           "invalid index name '%s': use [a-z0-9][a-z0-9_.-]{0,63}", index);
    idx_writer *w = seg_calloc(1, sizeof *w);
    if (!w)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    w->lockfd = -1;
    if (o)
        w->opts = *o;
    else
        idx_opts_default(&w->opts);
    if (w->opts.threads < 1)
        w->opts.threads = 1;
    size_t dl = strlen(datadir) + strlen(index) + 2;
    w->dir = seg_malloc(dl);
    w->js = seg_json_new();
    w->tok = seg_tok_new();
    w->sc = seg_store_cur_new();
    int rc = SEG_OK;
    w->wal.fd = -1;
    if (!w->dir || !w->js || !w->tok || !w->sc) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (or ICU failed to start)");
        goto fail;
    }
    snprintf(w->dir, dl, "%s/%s", datadir, index);
    if ((rc = seg_mkdir_p(w->dir, e)))
        goto fail;
    char lp[4096];
    snprintf(lp, sizeof lp, "%s/lock", w->dir);
    w->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->lockfd < 0) {
        rc = seg_err_set(e, SEG_EIO, lp, "open: %s", strerror(errno));
        goto fail;
    }
    if (flock(w->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = seg_err_set(e, SEG_ELOCKED, w->dir,
                         "index is being written by another process (a running server?)");
        goto fail;
    }
    int exists;
    if ((rc = seg_manifest_load(w->dir, &w->man, &exists, e)))
        goto fail;
    if (!exists) {
        w->man.bucket_ns = w->opts.bucket_ns > 0 ? w->opts.bucket_ns : DEFAULT_BUCKET_NS;
        if ((rc = seg_manifest_save(w->dir, &w->man, e)))
            goto fail;
    }
    remove_orphans(w);
    if ((rc = settings_open(w, !exists, e)))
        goto fail;
    if (touch_sync(w, INT64_MIN)) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    w->auto_base = seg_time_now();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->flushed, NULL);
    pthread_mutex_init(&w->pool_mu, NULL);
    pthread_cond_init(&w->pool_cv, NULL);
    if (w->opts.wal) {
        w->wal.fd = -1;
        if ((rc = idx_wal_open(&w->wal, w->dir, w->man.wal_done, replay_event, w, &w->replayed, e)))
            goto fail;
        check_space(w);
    }
    *out = w;
    return SEG_OK;
fail:
    idx_close(w, NULL);
    return rc;
}

static int64_t bucket_of(const idx_writer *w, int64_t t)
{
    int64_t b = w->man.bucket_ns;
    int64_t q = t / b;
    if (t % b < 0)
        q--;
    return q * b;
}

static bucket *bucket_find(idx_writer *w, int64_t start)
{
    for (size_t i = 0; i < w->nbuckets; i++)
        if (w->buckets[i].start == start)
            return &w->buckets[i];
    return NULL;
}

/* A new bucket with a new builder, or NULL out of memory. */
static bucket *bucket_add(idx_writer *w, int64_t start)
{
    if (w->nbuckets == w->capbuckets) {
        size_t cap = w->capbuckets ? w->capbuckets * 2 : 16;
        bucket *nb = seg_realloc(w->buckets, cap * sizeof *nb);
        if (!nb)
            return NULL;
        w->buckets = nb;
        w->capbuckets = cap;
    }
    bucket *b = &w->buckets[w->nbuckets];
    memset(b, 0, sizeof *b);
    b->start = start;
    b->b = seg_builder_new();
    if (!b->b)
        return NULL;
    w->nbuckets++;
    return b;
}

static bucket *bucket_get(idx_writer *w, int64_t start)
{
    bucket *b = bucket_find(w, start);
    return b ? b : bucket_add(w, start);
}

static void bucket_free(bucket *b) { seg_builder_free(b->b); }

static void idset_clear(idset *s)
{
    seg_buf_free(&s->ids);
    seg_free(s->slots);
    memset(s, 0, sizeof *s);
}

/* 1 if id is in the set; else inserts it (0); -1 out of memory (the set
 * unchanged and still usable: a server goes on after one failed request) */
static int idset_seen(idset *s, const char *id, size_t n, uint64_t h)
{
    if (!s->slots) {
        s->mask = 255;
        s->slots = seg_calloc(256, sizeof *s->slots);
        if (!s->slots)
            return -1;
    }
    if ((s->n + 1) * 2 > s->mask) {
        /* room first: the table is never more than half full */
        uint32_t nm = s->mask * 2 + 1;
        idslot *ns = seg_calloc((size_t)nm + 1, sizeof *ns);
        if (!ns)
            return -1;
        for (uint32_t k = 0; k <= s->mask; k++) {
            if (!s->slots[k].hash)
                continue;
            uint32_t j = (uint32_t)s->slots[k].hash & nm;
            while (ns[j].hash)
                j = (j + 1) & nm;
            ns[j] = s->slots[k];
        }
        seg_free(s->slots);
        s->slots = ns;
        s->mask = nm;
    }
    h |= 1; /* 0 marks an empty slot */
    uint32_t i = (uint32_t)h & s->mask;
    while (s->slots[i].hash) {
        idslot *q = &s->slots[i];
        if (q->hash == h && q->len == n && !memcmp(s->ids.p + q->off, id, n))
            return 1;
        i = (i + 1) & s->mask;
    }
    if (seg_buf_reserve(&s->ids, n)) {
        seg_buf_truncate(&s->ids, s->ids.n); /* only this id failed */
        return -1;
    }
    s->slots[i].hash = h;
    s->slots[i].off = (uint32_t)s->ids.n;
    s->slots[i].len = (uint32_t)n;
    seg_buf_put(&s->ids, id, n);
    s->n++;
    return 0;
}

/* 1 if id is in the set (no insertion) */
static int idset_has(const idset *s, const char *id, size_t n, uint64_t h)
{
    if (!s->slots)
        return 0;
    h |= 1;
    for (uint32_t i = (uint32_t)h & s->mask; s->slots[i].hash; i = (i + 1) & s->mask) {
        const idslot *q = &s->slots[i];
        if (q->hash == h && q->len == n && !memcmp(s->ids.p + q->off, id, n))
            return 1;
    }
    return 0;
}

static int stored_add(idx_writer *w, uint64_t h)
{
    h |= 1;
    if ((w->nstored + 1) * 2 > w->stored_mask) {
        size_t nm = w->stored_mask ? w->stored_mask * 2 + 1 : 1023;
        uint64_t *ns = seg_calloc(nm + 1, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t k = 0; w->stored && k <= w->stored_mask; k++) {
            if (!w->stored[k])
                continue;
            size_t j = w->stored[k] & nm;
            while (ns[j])
                j = (j + 1) & nm;
            ns[j] = w->stored[k];
        }
        seg_free(w->stored);
        w->stored = ns;
        w->stored_mask = nm;
    }
    size_t j = h & w->stored_mask;
    while (w->stored[j]) {
        if (w->stored[j] == h)
            return 0;
        j = (j + 1) & w->stored_mask;
    }
    w->stored[j] = h;
    w->nstored++;
    return 0;
}

static int stored_has(const idx_writer *w, uint64_t h)
{
    if (!w->stored)
        return 0;
    h |= 1;
    for (size_t j = h & w->stored_mask; w->stored[j]; j = (j + 1) & w->stored_mask)
        if (w->stored[j] == h)
            return 1;
    return 0;
}

/* Opens the reader of manifest entry i (cached). */
static seg_reader *reader_at(idx_writer *w, size_t i, seg_err *e)
{
    if (w->nreaders < w->man.n) {
        seg_reader **nr = seg_realloc(w->readers, w->man.n * sizeof *nr);
        if (!nr) {
            seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            return NULL;
        }
        memset(nr + w->nreaders, 0, (w->man.n - w->nreaders) * sizeof *nr);
        w->readers = nr;
        w->nreaders = w->man.n;
    }
    if (!w->readers[i]) {
        char p[4096 + 80];
        snprintf(p, sizeof p, "%s/%s", w->dir, w->man.e[i].name);
        if (seg_reader_open(p, &w->readers[i], e))
            return NULL;
    }
    return w->readers[i];
}

static int load_stored(idx_writer *w, seg_err *e)
{
    w->stored_loaded = 1;
    for (size_t i = 0; i < w->man.n; i++) {
        seg_reader *r = reader_at(w, i, e);
        const uint8_t *recs;
        uint32_t n;
        if (!r || seg_reader_ids(r, &recs, &n, e))
            return e->code ? e->code : SEG_ENOMEM;
        for (uint32_t k = 0; k < n; k++)
            if (stored_add(w, seg_rd_u64(recs + (size_t)k * 12)))
                return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    return SEG_OK;
}

static int inflight_has(const idx_writer *w, const char *id, size_t n, uint64_t h);
static int flush_start(idx_writer *w, seg_err *e);
static int ingest_blocked(idx_writer *w, seg_err *e);

/* 1 when an event with this _id is already stored or buffered; 0 when new
 * (and now remembered); <0 on error. */
static int id_is_duplicate(idx_writer *w, const char *id, size_t n, seg_err *e)
{
    if (!w->stored_loaded && load_stored(w, e))
        return -1;
    uint64_t h = seg_hash64(id, n);
    if (stored_has(w, h)) {
        for (size_t i = 0; i < w->man.n; i++) {
            uint32_t doc;
            seg_reader *r = reader_at(w, i, e);
            int rc = r ? seg_reader_id_find(r, w->sc, id, n, &doc, e) : -1;
            if (rc != 0)
                return rc;
        }
    }
    if (inflight_has(w, id, n, h))
        return 1;
    int seen = idset_seen(&w->pending, id, n, h);
    if (seen < 0)
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    return seen;
}

/* An event's values as parsed from its bytes, kept so that the flush does
 * not parse it again: v[0..nv), or a record rec[0..len) of fl; or none. */
typedef struct parsed {
    const seg_jval *v;
    size_t nv;
    const seg_flat *fl;
    const uint8_t *rec;
    size_t len;
} parsed;

static int builder_add(seg_builder *b, const char *json, size_t n, int64_t t, const char *id, size_t idlen,
                       int explicit_id, const parsed *pv)
{
    if (pv && pv->v)
        return seg_builder_add_parsed(b, json, n, t, id, idlen, explicit_id, pv->v, pv->nv);
    if (pv && pv->fl)
        return seg_builder_add_flat(b, json, n, t, id, idlen, explicit_id, pv->fl, pv->rec, pv->len);
    return seg_builder_add(b, json, n, t, id, idlen, explicit_id);
}

/* Appends an accepted event to its bucket's buffer. */
static int buffer_event(idx_writer *w, const char *json, size_t n, int64_t t, const char *id, size_t idlen,
                        int explicit_id, const parsed *pv, seg_err *e)
{
    bucket *b = bucket_get(w, bucket_of(w, t));
    if (!b)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    int rc = builder_add(b->b, json, n, t, id, idlen, explicit_id, pv);
    if (rc)
        return seg_err_set(e, rc, NULL, "cannot buffer event: %s", seg_strerror(rc));
    if (!w->buffered)
        w->buffer_since = seg_time_now();
    w->buffered += n + idlen + 40;
    w->buffered_events++;
    snap_drop(w);
    return SEG_OK;
}

/* Events found in the write-ahead log at open: accepted before a crash. */
static int replay_event(void *ud, const char *json, size_t n, int64_t time, const char *id, size_t idlen,
                        int explicit_id, seg_err *e)
{
    idx_writer *w = ud;
    if (explicit_id && idset_seen(&w->pending, id, idlen, seg_hash64(id, idlen)) < 0)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    return buffer_event(w, json, n, time, id, idlen, explicit_id, NULL, e);
}

/* v in lower-case hex, at least width digits (zero-padded), at out;
 * returns the digits written. */
static size_t put_hex(char *out, uint64_t v, size_t width)
{
    char tmp[16];
    size_t n = 0;
    do
        tmp[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    while (n < width)
        tmp[n++] = '0';
    for (size_t k = 0; k < n; k++)
        out[k] = tmp[n - 1 - k];
    return n;
}

/* An engine-assigned id: writer start (ms) and a sequence, in hex (as
 * "%011llx%08llx", without printf on every event). */
/* The automatic id numbered seq (from the writer's counter). */
static size_t auto_id_at(const idx_writer *w, uint64_t seq, char out[40])
{
    size_t k = put_hex(out, (uint64_t)(w->auto_base / 1000000), 11);
    k += put_hex(out + k, seq, 8);
    out[k] = 0;
    return k;
}

static size_t auto_id(idx_writer *w, char out[40])
{
    return auto_id_at(w, __atomic_fetch_add(&w->auto_seq, 1, __ATOMIC_RELAXED), out);
}

int idx_add_line(idx_writer *w, const char *line, size_t n, long lineno, idx_reject_fn reject,
                 void *ud, seg_err *e)
{
    return idx_add_line_timed(w, line, n, lineno, NULL, reject, ud, e);
}

int idx_add_line_timed(idx_writer *w, const char *line, size_t n, long lineno, const idx_line_time *lt,
                       idx_reject_fn reject, void *ud, seg_err *e)
{
    /* blank lines (only JSON whitespace) are skipped */
    size_t k = 0;
    while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
        k++;
    if (k == n)
        return SEG_OK;
    w->counts.lines++;
    w->counts.bytes += n;
    const seg_jval *v;
    size_t nv;
    seg_err je = {0};
    int rc = seg_json_parse(w->js, line, n, &v, &nv, &je);
    if (rc == SEG_ENOMEM)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    if (rc) {
        w->counts.rejected++;
        if (reject)
            reject(ud, lineno, je.msg);
        return SEG_OK;
    }
    int64_t t, now = seg_time_now();
    const idx_settings *ts = settings(w);
    int arrival = !seg_event_time_ex(v, nv, ts->time_ptr, ts->ntime, now, &t);
    if (arrival && lt && lt->has) {
        t = lt->time;
        arrival = 0;
    }
    if (arrival)
        t = now;
    char why[160];
    if (time_refused(w, t, now, why, sizeof why)) {
        w->counts.rejected++;
        if (reject)
            reject(ud, lineno, why);
        return SEG_OK;
    }
    const char *id;
    size_t idlen;
    char autoid[40];
    int explicit_id = seg_event_id(v, nv, &id, &idlen);
    if (explicit_id) {
        int seen = id_is_duplicate(w, id, idlen, e);
        if (seen < 0)
            return e->code;
        if (seen) {
            w->counts.duplicates++;
            return SEG_OK;
        }
    } else {
        /* unique per index: writers are sequential (the lock), and each
         * starts at a later millisecond */
        idlen = auto_id(w, autoid);
        id = autoid;
    }
    parsed pv = {v, nv, NULL, NULL, 0};
    if ((rc = buffer_event(w, line, n, t, id, idlen, explicit_id, &pv, e)))
        return rc;
    w->counts.accepted++;
    w->counts.arrival += arrival;
    if (w->buffered >= w->opts.buffer_bytes ||
        (w->opts.flush_events && w->buffered_events >= w->opts.flush_events))
        return flush_start(w, e);
    return SEG_OK;
}

void idx_reject(idx_writer *w, long lineno, size_t bytes, const char *reason, idx_reject_fn reject,
                void *ud)
{
    w->counts.lines++;
    w->counts.bytes += bytes;
    w->counts.rejected++;
    if (reject)
        reject(ud, lineno, reason);
}

/* ------------------------------------------------------------------ */
/* Flushing, pipelined                                                   */
/*                                                                      */
/* A full buffer becomes a flush batch: the buffered buckets, the ids    */
/* buffered with them, and a name for each segment.  The writer's flush  */
/* threads (opts.threads, a pool kept from the first flush to close)    */
/* build and write the batch's segments while the writer's thread goes   */
/* on filling a new buffer.  One batch is in flight while the writer's   */
/* thread fills a buffer; handing over the next one, it joins the one in */
/* flight first (a server), or right after queueing the new one (offline,*/
/* several threads: the new batch's jobs take the cores the old batch's  */
/* last job leaves idle), and only then adds the joined batch's segments */
/* to the manifest and swaps it (so the manifest is only ever changed by */
/* one thread, in batch order).                                          */
/*                                                                      */
/* Work is shared out as jobs, largest first.  A bucket holding more     */
/* than its share of the batch (a live server's batch is mostly the      */
/* current hour) is split into slices of its time order, each its own    */
/* segment covering one stretch of time, so every builder thread has     */
/* work; the merger joins them later.  Buckets of opts.split_min events */
/* or fewer are never split.                                            */
/* ------------------------------------------------------------------ */

typedef struct flush_job {
    size_t bucket;          /* index into the batch's buckets */
    uint32_t lo, n;         /* slice [lo, lo + n) of the bucket's order */
    int whole;              /* the whole bucket (not sliced) */
} flush_job;

/* How many slices a bucket of c events becomes, when a job's share is
 * share events. */
static uint32_t slices_of(uint32_t c, uint64_t share)
{
    return c > share + share / 2 ? (uint32_t)((c + share - 1) / share) : 1;
}

typedef struct flush_part {  /* per bucket, for its slices */
    pthread_mutex_t mu;     /* guards order */
    uint32_t *order;        /* the bucket's time order, made by the first slice's job */
    uint32_t left;          /* jobs not yet finished (atomic) */
} flush_part;

typedef struct flush_batch {
    char *dir;
    bucket *buckets;
    size_t n;
    flush_part *parts;      /* per bucket */
    flush_job *jobs;        /* largest first */
    size_t njobs;
    seg_mentry *ents;       /* per job */
    int *done;              /* per job */
    idset ids;              /* explicit ids of the batch's events */
    struct flush_batch *qnext; /* the writer's queue (under pool_mu) */
    size_t next;            /* next job to take (under the writer's pool_mu) */
    size_t ndone;           /* jobs finished (atomic) */
    pthread_mutex_t lock;   /* guards err and done */
    seg_err err;
    sem_t over;             /* posted once every job is finished */
    int finished;           /* atomic: every job is finished */
    int inline_run;         /* run by the thread that started it (no flush thread) */
    uint64_t wal_seq;       /* WAL files <= this hold only this batch's events (and older) */
    pthread_mutex_t *wmu;   /* the writer's mutex and condition: finishing is */
    pthread_cond_t *wcv;    /* announced under it (back-pressure waiters) */
    seg_reader **mem;       /* in-memory segments of these events, visible until joined */
    size_t nmem, capmem;
    int keep_builders;      /* server mode: buckets' builders live until the join, so
                               that a snapshot can seal events no snapshot saw yet
                               (the flush threads only read them) */
    int failed;             /* server mode: joined with an error and kept in flight
                               for batch_retry (finished, over already taken) */
    int64_t retry_at;       /* a failed batch: idx_tick retries it from this time */
    int failures;           /* times it failed */
} flush_batch;

/* Runs job i of batch j (any thread; tok and js are that thread's). */
static void run_job(flush_batch *j, size_t i, seg_tok *tok, seg_json *js)
{
    const flush_job *job = &j->jobs[i];
    bucket *b = &j->buckets[job->bucket];
    flush_part *part = &j->parts[job->bucket];
    seg_err e = {0};
    seg_mentry *m = &j->ents[i];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->dir, m->name);
    uint64_t bytes = 0;
    int rc = SEG_OK, empty = job->n == 0; /* nothing to write (not an error) */
    if (empty)
        ;
    else if (!tok || !js)
        rc = seg_err_set(&e, SEG_ENOMEM, NULL, "out of memory");
    else if (job->whole)
        rc = seg_builder_write(b->b, tok, js, path, &bytes, &e);
    else {
        pthread_mutex_lock(&part->mu);
        if (!part->order && (part->order = seg_malloc((size_t)seg_builder_count(b->b) * sizeof *part->order)))
            seg_builder_order(b->b, part->order);
        pthread_mutex_unlock(&part->mu);
        rc = part->order ? seg_builder_write_slice(b->b, part->order + job->lo, job->n, tok, js, path, &bytes, &e)
                         : seg_err_set(&e, SEG_ENOMEM, NULL, "out of memory");
    }
    if (rc == SEG_OK && !empty) {
        /* the segment's time range, from its header */
        seg_reader *r;
        rc = seg_reader_open(path, &r, &e);
        if (rc == SEG_OK) {
            m->min_time = seg_reader_min_time(r);
            m->max_time = seg_reader_max_time(r);
            seg_reader_close(r);
        }
    }
    /* the events are in the file now: free the buffer early (unless
     * snapshots may still read it) after the bucket's last job */
    if (__atomic_sub_fetch(&part->left, 1, __ATOMIC_ACQ_REL) == 0 && !j->keep_builders) {
        seg_builder_free(b->b);
        b->b = NULL;
    }
    pthread_mutex_lock(&j->lock);
    if (rc)
        seg_err_set(&j->err, e.code, e.file[0] ? e.file : NULL, "%s", e.msg);
    else if (!empty) {
        m->bytes = bytes;
        j->done[i] = 1;
    }
    /* the batch's last job announces it (back-pressure waiters wait on
     * the writer's condition).  Once another job's count reaches njobs, j
     * may be freed at once: njobs is read before counting */
    size_t njobs = j->njobs;
    pthread_mutex_unlock(&j->lock);
    if (__atomic_add_fetch(&j->ndone, 1, __ATOMIC_ACQ_REL) == njobs) {
        /* run inline, the caller may hold the writer's mutex (a server's
         * ingest does): finished is set without it */
        int own = !j->inline_run;
        if (own)
            pthread_mutex_lock(j->wmu);
        __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(j->wcv);
        if (own)
            pthread_mutex_unlock(j->wmu);
        sem_post(&j->over);
    }
}

static void *pool_worker(void *arg)
{
    idx_writer *w = arg;
    seg_tok *tok = NULL;
    seg_json *js = NULL;
    pthread_mutex_lock(&w->pool_mu);
    for (;;) {
        flush_batch *j = w->queue;
        if (!j) {
            if (w->pool_stop)
                break;
            pthread_cond_wait(&w->pool_cv, &w->pool_mu);
            continue;
        }
        size_t i = j->next++;
        if (j->next == j->njobs)
            w->queue = j->qnext;
        pthread_mutex_unlock(&w->pool_mu);
        /* a thread lives as long as the writer: one that could not make
         * its tokenizer tries again rather than failing every later job */
        if (!tok)
            tok = seg_tok_new();
        if (!js)
            js = seg_json_new();
        run_job(j, i, tok, js);
        pthread_mutex_lock(&w->pool_mu);
    }
    pthread_mutex_unlock(&w->pool_mu);
    seg_tok_free(tok);
    seg_json_free(js);
    return NULL;
}

/* Starts the flush threads (once); returns how many run. */
static int pool_start(idx_writer *w)
{
    if (w->npool)
        return w->npool;
    int want = w->opts.threads < 1 ? 1 : w->opts.threads < 64 ? w->opts.threads : 64;
    if (!w->pool && !(w->pool = seg_calloc((size_t)want, sizeof *w->pool)))
        return 0;
    while (w->npool < want && pthread_create(&w->pool[w->npool], NULL, pool_worker, w) == 0)
        w->npool++;
    return w->npool;
}

/* Stops the flush threads (every batch joined). */
static void pool_stop(idx_writer *w)
{
    pthread_mutex_lock(&w->pool_mu);
    w->pool_stop = 1;
    pthread_cond_broadcast(&w->pool_cv);
    pthread_mutex_unlock(&w->pool_mu);
    for (int t = 0; t < w->npool; t++)
        pthread_join(w->pool[t], NULL);
    w->npool = 0;
    seg_free(w->pool);
    w->pool = NULL;
}

/* 1 while a flush thread is still writing (joining it would block). */
static int flush_running(const idx_writer *w)
{
    return w->inflight && !__atomic_load_n(&w->inflight->finished, __ATOMIC_ACQUIRE);
}

static int inflight_has(const idx_writer *w, const char *id, size_t n, uint64_t h)
{
    return w->inflight && idset_has(&w->inflight->ids, id, n, h);
}

static void batch_free(flush_batch *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        bucket_free(&j->buckets[i]);
        if (j->parts) {
            seg_free(j->parts[i].order);
            pthread_mutex_destroy(&j->parts[i].mu);
        }
    }
    seg_free(j->buckets);
    seg_free(j->parts);
    seg_free(j->jobs);
    seg_free(j->ents);
    seg_free(j->done);
    idset_clear(&j->ids);
    for (size_t i = 0; i < j->nmem; i++)
        seg_reader_unref(j->mem[i]);
    seg_free(j->mem);
    seg_free(j->dir);
    pthread_mutex_destroy(&j->lock);
    sem_destroy(&j->over);
    seg_free(j);
}

/* idx_tick retries a failed server batch this long after its failure,
 * doubled after each further failure up to FLUSH_RETRY_MAX_NS (a full disk
 * is not hammered, nor the log flooded); a flush, an ingest waiting for
 * room, or close retry it at once. */
#define FLUSH_RETRY_NS (1000LL * 1000000LL)
#define FLUSH_RETRY_MAX_NS (30LL * 1000000000LL)

/* Waits for batch j (in flight, or the one before it: flush_start), then
 * lists its segments in the manifest.
 *
 * A server's batch that fails (a job's error: out of memory, disk full; or
 * the manifest could not be saved) is not freed: it stays in flight,
 * marked failed, with everything it had (builders, in-memory segments for
 * snapshots, ids for de-duplication, the log files it covers, the
 * segments its successful jobs wrote), and batch_retry runs its failed
 * jobs again before any later batch starts.  Its events were acknowledged:
 * the log is dropped only up to a batch that is listed, in batch order, so
 * nothing of it can be lost while the process lives, and keeping it takes
 * no allocation (a second failure cannot lose it either).  Offline, the
 * error goes to the caller and the batch is freed. */
static int batch_join(idx_writer *w, flush_batch *j, seg_err *e)
{
    while (sem_wait(&j->over) != 0)
        ;
    if (w->inflight == j)
        w->inflight = NULL;
    int rc = SEG_OK;
    size_t n0 = w->man.n;
    uint64_t wal_done0 = w->man.wal_done;
    if (j->err.code) {
        rc = seg_err_set(e, j->err.code, j->err.file[0] ? j->err.file : NULL, "%s", j->err.msg);
        goto failed;
    }
    for (size_t i = 0; i < j->njobs; i++)
        if (j->done[i] && seg_manifest_add(&w->man, &j->ents[i])) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            goto failed;
        }
    if (j->wal_seq)
        w->man.wal_done = j->wal_seq;
    if ((rc = seg_manifest_save(w->dir, &w->man, e)))
        goto failed;
    /* listed: what fails from here on is reported, the batch is done */
    if (touch_sync(w, seg_time_now()))
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    seg_failpoint("flush-before-wal-drop");
    if (j->wal_seq)
        idx_wal_drop_upto(&w->wal, j->wal_seq);
    snap_drop(w);
    /* the batch's ids are stored now */
    for (uint32_t k = 0; w->stored_loaded && j->ids.slots && k <= j->ids.mask; k++)
        if (j->ids.slots[k].hash && stored_add(w, j->ids.slots[k].hash)) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
    batch_free(j);
    return rc;
failed:
    w->man.n = n0; /* the manifest as before the batch */
    w->man.wal_done = wal_done0;
    w->life.flush_failures++;
    if (!j->keep_builders) {
        batch_free(j);
        return rc;
    }
    j->failed = 1;
    int64_t wait = FLUSH_RETRY_NS << (j->failures < 5 ? j->failures : 5);
    j->retry_at = seg_time_now() + (wait < FLUSH_RETRY_MAX_NS ? wait : FLUSH_RETRY_MAX_NS);
    j->failures++;
    w->inflight = j;
    return rc;
}

static void batch_queue(idx_writer *w, flush_batch *j);

/* Runs again the jobs of failed batch j that wrote no segment (their
 * segments keep the names given at the start; the others' files are
 * kept), in the background like a new batch, or here when no flush
 * thread can be had. */
static void batch_retry(idx_writer *w, flush_batch *j)
{
    size_t k = 0;
    for (size_t i = 0; i < j->njobs; i++) {
        if (!j->done[i])
            continue;
        /* the jobs that are done first: the queue hands out j->next on */
        flush_job tj = j->jobs[i];
        seg_mentry te = j->ents[i];
        j->jobs[i] = j->jobs[k];
        j->ents[i] = j->ents[k];
        j->done[i] = j->done[k];
        j->jobs[k] = tj;
        j->ents[k] = te;
        j->done[k] = 1;
        k++;
    }
    for (size_t i = 0; i < j->n; i++)
        j->parts[i].left = 0;
    for (size_t i = k; i < j->njobs; i++)
        j->parts[j->jobs[i].bucket].left++;
    memset(&j->err, 0, sizeof j->err);
    j->failed = 0;
    j->next = k;
    j->ndone = k;
    j->qnext = NULL;
    __atomic_store_n(&j->finished, 0, __ATOMIC_RELEASE);
    w->inflight = j;
    if (k == j->njobs) { /* only the manifest failed: nothing to run */
        __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
        sem_post(&j->over);
        return;
    }
    batch_queue(w, j);
}

/* Joins the batch in flight (a failed one is retried first). */
static int flush_join(idx_writer *w, seg_err *e)
{
    if (!w->inflight)
        return SEG_OK;
    if (w->inflight->failed)
        batch_retry(w, w->inflight);
    return batch_join(w, w->inflight, e);
}

/* Hands batch j's jobs from j->next on to the flush threads, or runs them
 * here when no thread can be had (then none before either). */
static void batch_queue(idx_writer *w, flush_batch *j)
{
    if (pool_start(w) == 0) {
        /* the caller may or may not hold the writer's mutex (a server's
         * ingest does, idx_flush does not): the jobs do not take it */
        seg_tok *tok = seg_tok_new();
        seg_json *js = seg_json_new();
        j->inline_run = 1;
        for (size_t i = j->next; i < j->njobs; i++)
            run_job(j, i, tok, js);
        j->next = j->njobs;
        seg_tok_free(tok);
        seg_json_free(js);
        return;
    }
    j->inline_run = 0;
    pthread_mutex_lock(&w->pool_mu);
    flush_batch **tail = &w->queue;
    while (*tail)
        tail = &(*tail)->qnext;
    *tail = j;
    pthread_cond_broadcast(&w->pool_cv);
    pthread_mutex_unlock(&w->pool_mu);
}

/* Hands the buffered buckets to a background flush.  The batch before it
 * is joined first, except offline with several builders: there the new
 * batch starts first and the previous one is joined after, so that the
 * new batch's jobs keep the cores busy while the previous batch's last
 * job finishes (the writer's thread waited there with one core idle:
 * ~1.8 of 13 core-seconds of a 2-builder ingest).  Memory stays as
 * before: the writer's thread fills no new buffer until the previous
 * batch is joined.  A server (opts.wal) keeps one batch in flight: its
 * snapshots and id checks see exactly one. */
static int flush_start(idx_writer *w, seg_err *e)
{
    flush_batch *prev = NULL;
    int rc = SEG_OK;
    if (w->inflight && w->inflight->failed) {
        /* a server's failed batch goes first; the buffer waits for it */
        batch_retry(w, w->inflight);
        return SEG_OK;
    }
    if (w->inflight && !w->opts.wal && w->opts.threads > 1 && w->nbuckets)
        prev = w->inflight;
    else if ((rc = flush_join(w, e)) || !w->nbuckets)
        return rc;
    flush_batch *j = seg_calloc(1, sizeof *j);
    if (!j)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&j->lock, NULL);
    sem_init(&j->over, 0, 0);
    /* the jobs: a bucket over its share (half a thread's part of the
     * batch) becomes slices of about that share */
    uint64_t total = 0;
    for (size_t i = 0; i < w->nbuckets; i++)
        total += seg_builder_count(w->buckets[i].b);
    int threads = w->opts.threads < 64 ? w->opts.threads : 64;
    uint64_t share = threads > 1 && w->opts.split_min
                         ? (total + 2 * (uint64_t)threads - 1) / (2 * (uint64_t)threads)
                         : UINT64_MAX;
    if (share < w->opts.split_min)
        share = w->opts.split_min;
    size_t njobs = 0;
    for (size_t i = 0; i < w->nbuckets; i++)
        njobs += slices_of(seg_builder_count(w->buckets[i].b), share);
    j->dir = seg_strndup(w->dir, strlen(w->dir));
    j->parts = seg_calloc(w->nbuckets, sizeof *j->parts);
    j->jobs = seg_calloc(njobs, sizeof *j->jobs);
    j->ents = seg_calloc(njobs, sizeof *j->ents);
    j->done = seg_calloc(njobs, sizeof *j->done);
    if (!j->dir || !j->parts || !j->jobs || !j->ents || !j->done) {
        seg_free(j->parts);
        j->parts = NULL;
        batch_free(j);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0, k = 0; i < w->nbuckets; i++) {
        pthread_mutex_init(&j->parts[i].mu, NULL);
        uint32_t c = seg_builder_count(w->buckets[i].b);
        uint32_t np = slices_of(c, share);
        j->parts[i].left = np;
        if (np > 1)
            w->life.flush_slices += np;
        for (uint32_t p = 0; p < np; p++, k++) {
            /* even slices: the first c % np get one more */
            flush_job *jb = &j->jobs[k];
            uint32_t base = c / np, extra = c % np;
            jb->bucket = i;
            jb->whole = np == 1;
            jb->lo = p * base + (p < extra ? p : extra);
            jb->n = base + (p < extra);
        }
    }
    j->njobs = njobs;
    /* largest first, so that the last job to start is a small one */
    for (size_t a = 1; a < njobs; a++) {
        flush_job x = j->jobs[a];
        size_t b = a;
        for (; b > 0 && j->jobs[b - 1].n < x.n; b--)
            j->jobs[b] = j->jobs[b - 1];
        j->jobs[b] = x;
    }
    for (size_t k = 0; k < njobs; k++) {
        const flush_job *jb = &j->jobs[k];
        seg_mentry *m = &j->ents[k];
        snprintf(m->name, sizeof m->name, "s%016llx.seg", (unsigned long long)w->man.next_seq++);
        m->bucket = w->buckets[jb->bucket].start;
        m->docs = jb->n;
    }
    int healed = 0;
    if (w->opts.wal && (rc = idx_wal_rotate(&w->wal, &j->wal_seq, &healed, e))) {
        batch_free(j);
        return rc;
    }
    if (healed) {
        /* the buffer holds events the failed log lost (refused to their
         * clients): ingest waits until this batch is listed, so that no
         * retry of them is answered "duplicate" before they are durable */
        w->heal_seq = j->wal_seq;
        w->heal_errno = healed;
    }
    j->buckets = w->buckets;
    j->n = w->nbuckets;
    j->ids = w->pending;
    j->keep_builders = w->opts.wal;
    j->mem = w->mem;
    j->nmem = w->nmem;
    j->capmem = w->capmem;
    j->wmu = &w->mu;
    j->wcv = &w->flushed;
    w->mem = NULL;
    w->nmem = w->capmem = 0;
    memset(&w->pending, 0, sizeof w->pending);
    w->buckets = NULL;
    w->nbuckets = w->capbuckets = 0;
    w->buffered = 0;
    w->buffered_events = 0;
    w->inflight = j;
    batch_queue(w, j);
    if (j->inline_run) /* flushed here (no flush thread, so no prev either) */
        return flush_join(w, e);
    return prev ? batch_join(w, prev, e) : SEG_OK;
}

int idx_flush(idx_writer *w, seg_err *e)
{
    /* a failed batch in flight is retried first, then the buffer flushed */
    int retried = w->inflight && w->inflight->failed;
    int rc = flush_start(w, e);
    if (rc == SEG_OK)
        rc = flush_join(w, e);
    if (rc == SEG_OK && retried && w->nbuckets && (rc = flush_start(w, e)) == SEG_OK)
        rc = flush_join(w, e);
    return rc;
}

int idx_close(idx_writer *w, seg_err *e)
{
    if (!w)
        return SEG_OK;
    int rc = SEG_OK;
    if (w->lockfd >= 0 && w->man.bucket_ns && (w->nbuckets || w->inflight))
        rc = idx_flush(w, e);
    if (w->inflight && !w->inflight->failed) {
        /* a failed open or flush: still wait for the thread */
        seg_err ignore = {0};
        flush_join(w, &ignore);
    }
    if (w->inflight) {
        /* a server's batch that failed again: its events stay in the log,
         * which the next open replays */
        batch_free(w->inflight);
        w->inflight = NULL;
    }
    if (w->npool)
        pool_stop(w);
    if (w->opts.wal)
        idx_wal_close(&w->wal);
    for (size_t i = 0; i < w->nmem; i++)
        seg_reader_unref(w->mem[i]);
    seg_free(w->mem);
    seg_set_unref(w->snap);
    if (w->lockfd >= 0 && w->dir) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->flushed);
        pthread_mutex_destroy(&w->pool_mu);
        pthread_cond_destroy(&w->pool_cv);
    }
    for (size_t i = 0; i < w->nbuckets; i++)
        bucket_free(&w->buckets[i]);
    seg_free(w->buckets);
    idset_clear(&w->pending);
    seg_free(w->stored);
    seg_free(w->touched);
    seg_free(w->unmergeable);
    seg_free(w->mranges);
    for (size_t i = 0; i < w->nreaders; i++)
        seg_reader_close(w->readers[i]);
    seg_free(w->readers);
    seg_manifest_free(&w->man);
    seg_json_free(w->js);
    seg_tok_free(w->tok);
    seg_store_cur_free(w->sc);
    if (w->lockfd >= 0)
        close(w->lockfd);
    for (struct tset *t = w->tset, *prev; t; t = prev) {
        prev = t->prev;
        seg_free(t);
    }
    seg_free(w->dir);
    seg_free(w);
    return rc;
}

const idx_counts *idx_get_counts(const idx_writer *w) { return &w->counts; }
size_t idx_buffered_bytes(const idx_writer *w) { return w->buffered; }
int64_t idx_bucket_ns(const idx_writer *w) { return w->man.bucket_ns; }

/* ------------------------------------------------------------------ */
/* Server mode                                                          */
/* ------------------------------------------------------------------ */

typedef struct prep {
    long line;
    const char *json;
    size_t len;
    int64_t time;
    int has_time;
    int skip;               /* 1 refused for its time, 2 a duplicate */
    size_t id_off, id_len;  /* in the request's id buffer (automatic ids too) */
    int explicit_id;
    size_t flat_off, flat_len; /* its values, in the request's records */
} prep;

/* The write-ahead log record of the events not skipped. */
static void record_events(seg_buf *rec, const prep *p, size_t np, const seg_buf *ids)
{
    for (size_t i = 0; i < np; i++)
        if (!p[i].skip)
            idx_wal_record_event(rec, p[i].time, p[i].explicit_id, (const char *)ids->p + p[i].id_off, p[i].id_len,
                                 p[i].json, p[i].len);
}

void idx_batch_free(idx_batch *b)
{
    if (!b)
        return;
    seg_free(b->errors);
    seg_free(b->lines);
    seg_builder_free(b->events);
    seg_buf_free(&b->rec); /* (idx_ingest_finish has freed it already) */
    memset(b, 0, sizeof *b);
}

static int batch_error(idx_batch *out, long line, const char *reason)
{
    idx_line_error *ne = seg_realloc(out->errors, (out->nerrors + 1) * sizeof *ne);
    if (!ne)
        return -1;
    out->errors = ne;
    ne[out->nerrors].line = line;
    snprintf(ne[out->nerrors].reason, sizeof ne[out->nerrors].reason, "%s", reason);
    out->nerrors++;
    out->rejected++;
    return 0;
}

static int line_cmp(const void *a, const void *b)
{
    long x = ((const idx_line_out *)a)->line, y = ((const idx_line_out *)b)->line;
    return (x > y) - (x < y);
}

/* out->lines: the parsed lines' outcomes and the first nparse errors (the
 * lines that did not parse), in line order. */
static int batch_lines(idx_batch *out, const prep *p, size_t np, uint64_t nparse, const seg_buf *ids)
{
    size_t n = np + (size_t)nparse;
    idx_line_out *l = seg_calloc(n ? n : 1, sizeof *l);
    if (!l)
        return -1;
    for (size_t i = 0; i < np; i++) {
        l[i].line = p[i].line;
        l[i].outcome = p[i].skip == 1 ? IDX_LINE_REJECTED : p[i].skip == 2 ? IDX_LINE_DUPLICATE : IDX_LINE_ACCEPTED;
        if (!p[i].skip && !p[i].explicit_id && p[i].id_len < sizeof l[i].auto_id)
            memcpy(l[i].auto_id, (const char *)ids->p + p[i].id_off, p[i].id_len);
    }
    for (size_t k = 0; k < nparse; k++) {
        l[np + k].line = out->errors[k].line;
        l[np + k].outcome = IDX_LINE_REJECTED;
    }
    qsort(l, n, sizeof *l, line_cmp);
    out->lines = l;
    out->nlines = n;
    return 0;
}

int idx_ingest(idx_writer *w, const char *body, size_t n, idx_batch *out, seg_err *e)
{
    out->no_block = 0;
    idx_ingest_start(w, body, n, out, e);
    return idx_ingest_finish(w, out, e);
}

int idx_ingest_finish(idx_writer *w, idx_batch *out, seg_err *e)
{
    int rc = out->rc;
    /* wait until the log is on disk (shared fsync); also after a later
     * failure: the log may write the record from rec until then */
    if (out->ticket) {
        seg_err se = {0};
        int src = idx_wal_sync(&w->wal, out->ticket, out->ticket_gen, rc == SEG_OK ? e : &se);
        if (rc == SEG_OK)
            rc = src;
        out->ticket = 0;
    }
    seg_buf_free(&out->rec);
    out->rc = rc;
    return rc;
}

int idx_ingest_start(idx_writer *w, const char *body, size_t n, idx_batch *out, seg_err *e)
{
    int want = out->want_events, no_block = out->no_block, want_lines = out->want_lines;
    const char *const *line_ids = out->line_ids;
    const uint32_t *line_id_lens = out->line_id_lens;
    size_t nline_ids = out->nline_ids;
    const idx_line_time *line_times = out->line_times;
    size_t nline_times = out->nline_times;
    memset(out, 0, sizeof *out);
    if (want && !(out->events = seg_builder_new()))
        return out->rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory"); /* idx_ingest_finish returns it */
    seg_json *js = seg_json_new();
    seg_flat *enc = seg_flat_new();
    prep *p = NULL;
    size_t np = 0, cap = 0;
    seg_buf ids = {0}, rec = {0}, flat = {0};
    int rc = SEG_OK;
    if (!js || !enc) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    /* 1. parse every line, without the lock */
    long lineno = 0;
    const idx_settings *ts = settings(w);
    int64_t now = seg_time_now();
    for (size_t at = 0; at < n;) {
        const char *nl = memchr(body + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - body) : n;
        const char *line = body + at;
        size_t len = end - at;
        at = end + 1;
        lineno++;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
            k++;
        if (k == len)
            continue;
        const seg_jval *v;
        size_t nv;
        seg_err je = {0};
        int prc = seg_json_parse(js, line, len, &v, &nv, &je);
        if (prc == SEG_ENOMEM) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            goto out;
        }
        if (prc) {
            if (batch_error(out, lineno, je.msg)) {
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                goto out;
            }
            continue;
        }
        if (np == cap) {
            cap = cap ? cap * 2 : 256;
            prep *q = seg_realloc(p, cap * sizeof *q);
            if (!q) {
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                goto out;
            }
            p = q;
        }
        prep *x = &p[np++];
        x->skip = 0;
        x->line = lineno;
        x->json = line;
        x->len = len;
        x->has_time = seg_event_time_ex(v, nv, ts->time_ptr, ts->ntime, now, &x->time);
        if (!x->has_time && line_times && (size_t)lineno <= nline_times && line_times[lineno - 1].has) {
            x->time = line_times[lineno - 1].time;
            x->has_time = 1;
        }
        const char *id;
        size_t il;
        x->explicit_id = seg_event_id(v, nv, &id, &il);
        if (line_ids && (size_t)lineno <= nline_ids && line_ids[lineno - 1]) {
            id = line_ids[lineno - 1];
            il = line_id_lens[lineno - 1];
            x->explicit_id = 1;
        }
        x->id_off = ids.n;
        x->id_len = x->explicit_id ? il : 0;
        if (x->explicit_id)
            seg_buf_put(&ids, id, il);
        /* its values, for the builder (this parse is the only one) */
        x->flat_off = flat.n;
        if (seg_flat_encode(enc, line, len, v, nv, &flat)) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            goto out;
        }
        x->flat_len = flat.n - x->flat_off;
    }
    /* 2. still without the lock: times checked, automatic ids drawn (a
     * range of the writer's counter) and the log record written as if
     * every event were accepted.  A duplicate found under the lock (rare)
     * has the record rewritten without it. */
    uint64_t parse_rejected = out->rejected;
    size_t nauto = 0;
    for (size_t i = 0; i < np; i++) {
        prep *x = &p[i];
        char why[160];
        if (!x->has_time)
            x->time = now;
        if (time_refused(w, x->time, now, why, sizeof why)) {
            x->skip = 1;
            if (batch_error(out, x->line, why)) {
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                goto out;
            }
        } else if (!x->explicit_id)
            nauto++;
    }
    uint64_t seq = nauto ? __atomic_fetch_add(&w->auto_seq, nauto, __ATOMIC_RELAXED) : 0;
    for (size_t i = 0; i < np; i++) {
        prep *x = &p[i];
        if (x->skip || x->explicit_id)
            continue;
        char autoid[40];
        x->id_off = ids.n;
        x->id_len = auto_id_at(w, seq++, autoid);
        seg_buf_put(&ids, autoid, x->id_len);
    }
    if (ids.oom) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    /* the log record: the events plus ~10% (ids, times, lengths), sized
     * once rather than grown by doubling copies */
    seg_buf_reserve(&rec, n + n / 4 + 64);
    record_events(&rec, p, np, &ids);
    /* 3. de-duplicate, buffer and log, under the lock */
    uint64_t ticket = 0, ticket_gen = 0;
    pthread_mutex_lock(&w->mu);
    rc = ingest_blocked(w, e);
    /* back-pressure: a full buffer waits for the flush in flight */
    if (rc) {
        /* refused: nothing stored */
    } else if (no_block && w->buffered >= w->opts.buffer_bytes && flush_running(w)) {
        out->would_block = 1;
        rc = seg_err_set(e, SEG_EBUSY, NULL, "ingest buffer full");
    } else if (w->buffered >= w->opts.buffer_bytes) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + w->opts.ingest_wait_ns;
        until.tv_sec += ns / 1000000000LL;
        until.tv_nsec = ns % 1000000000LL;
        while (rc == SEG_OK && w->buffered >= w->opts.buffer_bytes) {
            if (!flush_running(w)) {
                rc = flush_start(w, e);
                continue;
            }
            if (no_block) { /* a failed flush retried just now */
                out->would_block = 1;
                rc = seg_err_set(e, SEG_EBUSY, NULL, "ingest buffer full");
                break;
            }
            if (pthread_cond_timedwait(&w->flushed, &w->mu, &until) == ETIMEDOUT && flush_running(w)) {
                rc = seg_err_set(e, SEG_EBUSY, NULL,
                                 "ingest buffer full (%zu MiB) while the previous flush is still being written; "
                                 "retry shortly", w->opts.buffer_bytes >> 20);
                w->life.busy_refusals++;
            }
        }
    }
    uint32_t nacc = 0;
    for (size_t i = 0; i < np && rc == SEG_OK; i++) {
        prep *x = &p[i];
        if (x->skip)
            continue;
        int64_t t = x->time;
        const char *id = (const char *)ids.p + x->id_off;
        size_t il = x->id_len;
        if (x->explicit_id) {
            int dup = id_is_duplicate(w, id, il, e);
            if (dup < 0) {
                rc = e->code;
                break;
            }
            if (dup) {
                out->duplicates++;
                x->skip = 2;
                continue;
            }
        }
        parsed pv = {NULL, 0, enc, flat.p + x->flat_off, x->flat_len};
        if ((rc = buffer_event(w, x->json, x->len, t, id, il, x->explicit_id, &pv, e)))
            break;
        out->arrival += !x->has_time;
        if (out->events && builder_add(out->events, x->json, x->len, t, id, il, x->explicit_id, &pv)) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
        nacc++;
    }
    if (rc == SEG_OK && out->duplicates) { /* the record again, without them */
        rec.n = 0;
        record_events(&rec, p, np, &ids);
    }
    if (rc == SEG_OK && nacc)
        rc = idx_wal_append(&w->wal, nacc, &rec, &ticket, &ticket_gen, e);
    if (rc == SEG_OK && want_lines && batch_lines(out, p, np, parse_rejected, &ids))
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    if (rc == SEG_OK) {
        out->accepted = nacc;
        w->counts.accepted += nacc;
        w->counts.arrival += out->arrival;
        w->counts.duplicates += out->duplicates;
        w->counts.rejected += out->rejected;
        w->counts.lines += np + parse_rejected;
        w->counts.bytes += n;
        if (w->buffered >= w->opts.buffer_bytes && !flush_running(w))
            rc = flush_start(w, e);
    }
    pthread_mutex_unlock(&w->mu);
    /* 4. the wait for the log is idx_ingest_finish's, which also frees
     * the record */
    out->ticket = ticket;
    out->ticket_gen = ticket_gen;
    out->rec = rec;
    memset(&rec, 0, sizeof rec);
out:
    out->rc = rc;
    seg_json_free(js);
    seg_flat_free(enc);
    seg_free(p);
    seg_buf_free(&ids);
    seg_buf_free(&rec);
    seg_buf_free(&flat);
    return rc;
}

/* A new builder holding events [from, to) of src (copies), or NULL. */
static seg_builder *copy_range(const seg_builder *src, uint32_t from, uint32_t to)
{
    seg_builder *nb = seg_builder_new();
    for (uint32_t k = from; nb && k < to; k++) {
        if (seg_builder_add_from(nb, src, k)) {
            seg_builder_free(nb);
            nb = NULL;
        }
    }
    return nb;
}

/* Indexes builder nb (consumed) into an in-memory segment appended to
 * (*arr, *n, *cap).  label names it in messages.  Called under mu. */
static int seal_into(idx_writer *w, seg_builder *nb, const char *label, seg_reader ***arr, size_t *n, size_t *cap,
                     seg_err *e)
{
    seg_buf mem = {0};
    seg_reader *r = NULL;
    int rc = seg_builder_write_mem(nb, w->tok, w->js, &mem, e);
    seg_builder_free(nb);
    if (rc == SEG_OK) {
        rc = seg_reader_open_mem(label, mem.p, mem.n, &r, e);
        mem.p = NULL;
    }
    seg_buf_free(&mem);
    if (rc)
        return rc;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        seg_reader **q = seg_realloc(*arr, nc * sizeof *q);
        if (!q) {
            seg_reader_unref(r);
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        }
        *arr = q;
        *cap = nc;
    }
    (*arr)[(*n)++] = r;
    return SEG_OK;
}

/* Seals the events of buckets bs[0..n) that no in-memory segment holds
 * yet into in-memory segments appended to (*arr, *na, *cap); what names
 * them in messages.  Called under mu. */
static int seal_buckets(idx_writer *w, bucket *bs, size_t n, const char *what, seg_reader ***arr, size_t *na,
                        size_t *cap, seg_err *e)
{
    char label[4200];
    for (size_t i = 0; i < n; i++) {
        bucket *b = &bs[i];
        uint32_t end = b->b ? seg_builder_count(b->b) : 0;
        if (b->sealed >= end)
            continue;
        seg_builder *nb = copy_range(b->b, b->sealed, end);
        if (!nb)
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        snprintf(label, sizeof label, "%s/(%s %lld+%u)", w->dir, what, (long long)b->start, b->sealed);
        int rc = seal_into(w, nb, label, arr, na, cap, e);
        if (rc)
            return rc;
        b->sealed = end;
    }
    return SEG_OK;
}

/* Makes every buffered event visible to snapshots: those of the flush in
 * flight (whose builders its threads only read, and which live until the
 * join, which takes mu), then those of the buffer.  Called under mu. */
static int seal(idx_writer *w, seg_err *e)
{
    flush_batch *j = w->inflight;
    int rc = SEG_OK;
    if (j && j->keep_builders)
        rc = seal_buckets(w, j->buckets, j->n, "flushing buffer", &j->mem, &j->nmem, &j->capmem, e);
    if (rc == SEG_OK)
        rc = seal_buckets(w, w->buckets, w->nbuckets, "buffer", &w->mem, &w->nmem, &w->capmem, e);
    return rc;
}

int idx_snapshot(idx_writer *w, seg_set **out, seg_err *e)
{
    *out = NULL;
    pthread_mutex_lock(&w->mu);
    int rc = SEG_OK;
    if (!w->snap) {
        rc = seal(w, e);
        size_t n = w->man.n + w->nmem + (w->inflight ? w->inflight->nmem : 0), k = 0;
        seg_reader **r = rc ? NULL : seg_malloc((n ? n : 1) * sizeof *r);
        if (!rc && !r)
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        for (size_t i = 0; rc == SEG_OK && i < w->man.n; i++) {
            seg_reader *x = reader_at(w, i, e);
            if (!x)
                rc = e->code ? e->code : SEG_ENOMEM;
            else
                r[k++] = x;
        }
        for (size_t i = 0; rc == SEG_OK && w->inflight && i < w->inflight->nmem; i++)
            r[k++] = w->inflight->mem[i];
        for (size_t i = 0; rc == SEG_OK && i < w->nmem; i++)
            r[k++] = w->mem[i];
        if (rc == SEG_OK && !(w->snap = seg_set_new(r, k)))
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        seg_free(r);
    }
    if (rc == SEG_OK) {
        seg_set_ref(w->snap);
        *out = w->snap;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Disk full (server mode)                                              */
/*                                                                      */
/* Two states refuse ingest (SEG_ENOSPC or SEG_EUNAVAIL: the API's 507 or */
/* 503 with Retry-After) while searches go on:                          */
/* - low space: the index's filesystem has less free than the watermark */
/*   (opts.min_free_*), read by each idx_tick; what is left is room for */
/*   the flushes and merges already due.  Lifted at the first tick that  */
/*   finds enough free.                                                  */
/* - a failed log (idx_wal.c, "Failures"): the events of the requests   */
/*   that failed may sit in the buffer (they were refused, so at least   */
/*   once allows them to be stored), not in any durable log.  The        */
/*   recovery is a flush: its rotation starts a fresh log (idx_wal_rotate */
/*   heals it), and ingest stays refused until that batch is listed in  */
/*   the manifest (heal_seq), so that a retry with the same _id is never */
/*   answered "duplicate" while the first copy could still be lost.      */
/*   idx_tick tries every second (HEAL_RETRY_NS) while the disk is full; */
/*   a failed flush is retried at that pace too while ingest waits on it. */
/* Acknowledged events are untouched throughout: they are in a synced   */
/* log file (replayed after a crash) and in the buffer (flushed).        */
/* ------------------------------------------------------------------ */

#define HEAL_RETRY_NS (1000LL * 1000000LL)

/* Under mu: SEG_OK, or why ingest is refused now (counted). */
static int ingest_blocked(idx_writer *w, seg_err *e)
{
    if (!w->opts.wal)
        return SEG_OK;
    int err = idx_wal_broken(&w->wal);
    if (err || w->man.wal_done < w->heal_seq) {
        if (!err)
            err = w->heal_errno;
        w->life.wal_refusals++;
        return seg_err_set(e, err == ENOSPC || err == EDQUOT ? SEG_ENOSPC : SEG_EUNAVAIL, w->dir,
                           "ingest refused: the write-ahead log failed (%s); logdex is writing what it held to "
                           "segments and starts a fresh log by itself; retry",
                           strerror(err));
    }
    if (w->low_space) {
        w->life.space_refusals++;
        return seg_err_set(e, SEG_ENOSPC, w->dir,
                           "ingest refused: %llu MiB free on the data directory's disk, under the --min-free "
                           "watermark of %llu MiB (kept for flushes and merges); ingest resumes by itself once "
                           "space is freed",
                           (unsigned long long)(w->disk_free >> 20), (unsigned long long)(w->min_free >> 20));
    }
    return SEG_OK;
}

/* Under mu, from idx_tick: the free space against the watermark. */
static void check_space(idx_writer *w)
{
    struct statvfs st;
    if (statvfs(w->dir, &st) != 0)
        return;
    uint64_t total = (uint64_t)st.f_blocks * st.f_frsize, avail = (uint64_t)st.f_bavail * st.f_frsize;
    uint64_t a = w->opts.min_free_bytes, b = total / 1000 * w->opts.min_free_permille;
    w->min_free = a && b ? (a < b ? a : b) : a ? a : b;
    w->disk_free = avail;
    w->low_space = w->min_free && avail < w->min_free;
}

/* Under mu, from idx_tick: the recovery of a failed log, when due. */
static int heal(idx_writer *w, int64_t now, seg_err *e)
{
    if (!idx_wal_broken(&w->wal) || now < w->heal_at || w->inflight)
        return SEG_OK; /* a batch in flight is joined (or retried) first */
    w->heal_at = now + HEAL_RETRY_NS;
    if (w->nbuckets)
        return flush_start(w, e); /* its rotation heals */
    uint64_t closed;
    int healed;
    return idx_wal_rotate(&w->wal, &closed, &healed, e);
}

const char *idx_replay_report(idx_writer *w)
{
    seg_buf *t = &w->wal.rep.text;
    if (!t->n || t->oom)
        return "";
    if (t->p[t->n - 1]) /* NUL-terminated once, outside its length */
        seg_buf_put(t, "", 1), t->n--;
    return t->oom ? "" : (const char *)t->p;
}

int idx_tick(idx_writer *w, seg_err *e)
{
    int rc = SEG_OK;
    pthread_mutex_lock(&w->mu);
    int64_t now = seg_time_now();
    if (w->opts.wal)
        check_space(w);
    int healing = w->man.wal_done < w->heal_seq;
    if (w->inflight && w->inflight->failed) {
        /* while ingest waits on it, every HEAL_RETRY_NS: space may be back */
        if (now >= w->inflight->retry_at || (healing && now >= w->heal_at)) {
            w->heal_at = now + HEAL_RETRY_NS;
            batch_retry(w, w->inflight);
        }
    } else if (w->inflight && __atomic_load_n(&w->inflight->finished, __ATOMIC_ACQUIRE)) {
        rc = flush_join(w, e);
    }
    if (rc == SEG_OK && w->opts.wal)
        rc = heal(w, now, e);
    if (rc == SEG_OK && w->nbuckets && !w->inflight &&
        (seg_time_now() - w->buffer_since >= w->opts.max_age_ns || w->buffered >= w->opts.buffer_bytes))
        rc = flush_start(w, e);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void idx_get_metrics(idx_writer *w, idx_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_lock(&w->mu);
    m->counts = w->counts;
    m->buffered_bytes = w->buffered;
    m->segments = w->man.n;
    m->replayed = w->replayed;
    for (size_t i = 0; i < w->man.n; i++)
        m->segment_bytes += w->man.e[i].bytes;
    m->life = w->life;
    m->disk_free = w->disk_free;
    m->min_free = w->min_free;
    int healing = w->opts.wal && w->man.wal_done < w->heal_seq;
    m->blocked = w->low_space ? IDX_BLOCK_LOW_SPACE : IDX_BLOCK_NONE;
    if (healing)
        m->blocked = IDX_BLOCK_WAL, m->wal_errno = w->heal_errno;
    pthread_mutex_unlock(&w->mu);
    if (w->opts.wal) {
        pthread_mutex_lock(&w->wal.mu);
        m->wal_bytes = w->wal.bytes_total;
        m->wal_fsyncs = w->wal.fsyncs;
        m->wal_fsync_ns = w->wal.fsync_ns_total;
        m->wal_failures = w->wal.failures;
        m->wal_recoveries = w->wal.recoveries;
        m->wal_torn = w->wal.rep.torn;
        m->wal_torn_bytes = w->wal.rep.torn_bytes;
        m->wal_damaged = w->wal.rep.damaged;
        m->wal_damaged_bytes = w->wal.rep.damaged_bytes;
        if (w->wal.broken)
            m->blocked = IDX_BLOCK_WAL, m->wal_errno = w->wal.err_no;
        pthread_mutex_unlock(&w->wal.mu);
    }
}

/* ------------------------------------------------------------------ */
/* Lifecycle: merging and retention                                      */
/*                                                                      */
/* Both change the manifest under mu (as flush_join does), so the        */
/* manifest has one writer at a time.  Order on disk, for crash safety:  */
/* a merge's output is complete and fsynced under its final name before  */
/* the manifest lists it; inputs and dropped segments are unlinked only  */
/* after the manifest that no longer lists them is durable.  A crash at  */
/* any point leaves a manifest that lists each event once; files it does */
/* not list are deleted at the next open (remove_orphans).              */
/* ------------------------------------------------------------------ */

/* Replaces the manifest, on disk first (atomically), then in memory: the
 * entries marked in drop[] leave, *add (when given) joins.  When the save
 * fails nothing has changed.  Called under mu. */
static int manifest_replace(idx_writer *w, const uint8_t *drop, const seg_mentry *add, seg_err *e)
{
    seg_manifest nm = w->man;
    nm.cap = w->man.n + 1;
    nm.n = 0;
    nm.e = seg_malloc(nm.cap * sizeof *nm.e);
    if (!nm.e)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < w->man.n; i++)
        if (!drop[i])
            nm.e[nm.n++] = w->man.e[i];
    if (add)
        nm.e[nm.n++] = *add;
    int rc = seg_manifest_save(w->dir, &nm, e);
    seg_free(nm.e);
    if (rc)
        return rc;
    entries_remove(w, drop);
    snap_drop(w);
    if (add && (seg_manifest_add(&w->man, add) || touch_sync(w, INT64_MIN)))
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (the manifest on disk is right)");
    return SEG_OK;
}

static long entry_find(const idx_writer *w, const char *name)
{
    for (size_t i = 0; i < w->man.n; i++)
        if (!strcmp(w->man.e[i].name, name))
            return (long)i;
    return -1;
}

static void unlink_names(const char *dir, char (*names)[64], size_t n, const char *failpoint)
{
    char path[4096 + 80];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
        if (i == 0)
            seg_failpoint(failpoint);
    }
    seg_err ignore = {0};
    if (n)
        seg_fsync_dir(dir, &ignore);
}

int idx_merges_running(idx_writer *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->merging;
    pthread_mutex_unlock(&w->mu);
    return n;
}

typedef struct compact_job {
    idx_writer *w;
    int failed;             /* atomic: some thread failed, the others stop */
    pthread_mutex_t mu;     /* guards e */
    seg_err e;
} compact_job;

/* One compact thread: merge steps until none is left, which is known only
 * when no merge was running before and after a step that found nothing
 * (a running merge may leave work: its bucket's next step, or spans). */
static void *compact_thread(void *arg)
{
    compact_job *c = arg;
    while (!__atomic_load_n(&c->failed, __ATOMIC_ACQUIRE)) {
        idx_merge_info mi;
        seg_err e = {0};
        int running = idx_merges_running(c->w);
        if (idx_merge_step(c->w, 1, &mi, &e)) {
            pthread_mutex_lock(&c->mu);
            if (!c->e.code)
                c->e = e;
            pthread_mutex_unlock(&c->mu);
            __atomic_store_n(&c->failed, 1, __ATOMIC_RELEASE);
            break;
        }
        if (mi.inputs)
            continue;
        if (running == 0 && idx_merges_running(c->w) == 0)
            break;
        usleep(2000);
    }
    return NULL;
}

int idx_compact(idx_writer *w, int threads, seg_err *e)
{
    compact_job cj = {.w = w};
    pthread_mutex_init(&cj.mu, NULL);
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++)
        if (pthread_create(&th[started], NULL, compact_thread, &cj) == 0)
            started++;
    compact_thread(&cj);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&cj.mu);
    if (cj.e.code)
        return seg_err_set(e, cj.e.code, cj.e.file[0] ? cj.e.file : NULL, "%s", cj.e.msg);
    return SEG_OK;
}

void idx_merge_cancel(idx_writer *w) { __atomic_store_n(&w->cancel_merge, 1, __ATOMIC_RELEASE); }

int idx_merge_step(idx_writer *w, int force, idx_merge_info *info, seg_err *e)
{
    memset(info, 0, sizeof *info);
    size_t pick[IDX_MERGE_MAX];
    char names[IDX_MERGE_MAX][64], out_name[64], path[4096 + 80];
    seg_reader *in[IDX_MERGE_MAX];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&w->mu);
    if (w->man.n == 0 || __atomic_load_n(&w->cancel_merge, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&w->mu);
        return SEG_OK;
    }
    if ((size_t)w->merging == w->capmranges) {
        size_t cap = w->capmranges * 2 + 2;
        struct mrange *r = seg_realloc(w->mranges, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&w->mu);
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        }
        w->mranges = r;
        w->capmranges = cap;
    }
    uint64_t target = w->opts.segment_target ? w->opts.segment_target : (512ull << 20);
    /* which segments are compact already (their headers; the readers stay
     * open for searches) */
    uint8_t *compact = seg_malloc(w->man.n), *busy = seg_calloc(w->man.n, 1);
    if (!compact || !busy) {
        pthread_mutex_unlock(&w->mu);
        seg_free(compact);
        seg_free(busy);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < w->man.n; i++) {
        for (size_t k = 0; k < w->nunmergeable; k++)
            if (!strcmp(w->unmergeable[k], w->man.e[i].name))
                busy[i] = 1;
        /* a bucket another merge is at is left to it (concurrent merges,
         * `logdex compact --threads`: one merge per bucket at a time, so
         * each bucket goes through the steps a lone merger would take) */
        int64_t lo = w->man.e[i].bucket, hi = seg_mentry_end(&w->man.e[i], w->man.bucket_ns);
        for (int k = 0; k < w->merging; k++)
            if (lo < w->mranges[k].hi && w->mranges[k].lo < hi)
                busy[i] = 1;
        seg_reader *r = reader_at(w, i, e);
        if (!r) {
            /* unreadable: never a merge input for size alone */
            compact[i] = 1;
            seg_err_clear(e);
            continue;
        }
        compact[i] = (seg_reader_flags(r) & SEG_FLAG_COMPACT) != 0;
    }
    int settled = 0;
    int64_t now = seg_time_now();
    size_t np = idx_merge_plan(w->man.e, w->man.n, busy, compact, now, w->opts.settle_ns, w->touched, force,
                               target, pick, &settled);
    if (np <= 1 && w->merging == 0) {
        /* nothing to merge within a bucket (and no other merge running,
         * which may yet leave some): sparse buckets into spans
         * before lone compact rewrites (a span's output is compact).
         * The window: never longer than the retention period (retention
         * drops a span only once its last bucket has passed, so a span
         * keeps up to its width of events past their time), in whole
         * buckets */
        int64_t span = w->opts.span_ns;
        if (w->opts.retention_ns > 0 && w->opts.retention_ns < span && w->man.bucket_ns > 0)
            span = w->opts.retention_ns / w->man.bucket_ns * w->man.bucket_ns;
        size_t sp[IDX_MERGE_MAX];
        size_t ns = idx_merge_plan_span(w->man.e, w->man.n, busy, now, w->opts.settle_ns, w->touched, force,
                                        w->man.bucket_ns, span, IDX_SPAN_SMALL, sp);
        if (ns >= 2) {
            np = ns;
            memcpy(pick, sp, ns * sizeof *sp);
            settled = 1;
        }
    }
    seg_free(compact);
    seg_free(busy);
    int rc = SEG_OK;
    size_t got = 0;
    for (; got < np; got++) {
        seg_reader *r = reader_at(w, pick[got], e);
        if (!r) {
            rc = e->code ? e->code : SEG_ENOMEM;
            break;
        }
        seg_reader_ref(r);
        in[got] = r;
        memcpy(names[got], w->man.e[pick[got]].name, 64);
    }
    if (rc || np == 0) {
        pthread_mutex_unlock(&w->mu);
        for (size_t k = 0; k < got; k++)
            seg_reader_unref(in[k]);
        return rc;
    }
    /* the output's buckets: one, or the span of the inputs' */
    int64_t bucket = w->man.e[pick[0]].bucket, bucket_end = 0;
    for (size_t k = 0; k < np; k++) {
        const seg_mentry *x = &w->man.e[pick[k]];
        int64_t end = seg_mentry_end(x, w->man.bucket_ns);
        if (x->bucket < bucket)
            bucket = x->bucket;
        if (end > bucket_end)
            bucket_end = end;
    }
    if (bucket_end == bucket + w->man.bucket_ns)
        bucket_end = 0;
    snprintf(out_name, sizeof out_name, "s%016llx.seg", (unsigned long long)w->man.next_seq++);
    snprintf(path, sizeof path, "%s/%s", w->dir, out_name);
    w->mranges[w->merging].lo = bucket;
    w->mranges[w->merging].hi = bucket_end ? bucket_end : bucket + w->man.bucket_ns;
    w->merging++;
    pthread_mutex_unlock(&w->mu);

    idx_merge_out mo;
    rc = idx_merge_build(in, np, path, &w->cancel_merge, settled, &mo, e);
    int cancelled = rc == SEG_EBUSY;
    if (cancelled)
        rc = SEG_OK; /* not an error: nothing changed */
    seg_failpoint("merge-before-manifest");

    pthread_mutex_lock(&w->mu);
    for (int k = 0; k < w->merging; k++)
        if (w->mranges[k].lo == bucket) { /* ranges of running merges never overlap */
            w->mranges[k] = w->mranges[--w->merging];
            break;
        }
    if (rc == SEG_ECORRUPT) {
        /* an input failed its checks: leave it out of later merges (the
         * error is reported now; searches report it on their own) */
        for (size_t k = 0; k < np; k++) {
            seg_err fe = {0};
            if (!seg_reader_failed(in[k], &fe))
                continue;
            char (*u)[64] = seg_realloc(w->unmergeable, (w->nunmergeable + 1) * sizeof *u);
            if (u) {
                w->unmergeable = u;
                memcpy(u[w->nunmergeable++], names[k], 64);
            }
        }
    }
    uint8_t *drop = rc ? NULL : seg_calloc(w->man.n + 1, 1);
    if (rc == SEG_OK && !drop)
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    int gone = 0;
    for (size_t k = 0; rc == SEG_OK && k < np; k++) {
        long i = entry_find(w, names[k]);
        if (i < 0)
            gone = 1; /* retention dropped the bucket meanwhile */
        else
            drop[i] = 1;
    }
    if (rc == SEG_OK && !gone && !cancelled) {
        /* the inputs out, the output in */
        seg_mentry m = {0};
        memcpy(m.name, out_name, sizeof out_name);
        m.bucket = bucket;
        m.bucket_end = bucket_end;
        m.docs = mo.docs;
        m.min_time = mo.min_time;
        m.max_time = mo.max_time;
        m.bytes = mo.bytes;
        rc = manifest_replace(w, drop, &m, e);
        if (rc == SEG_OK) {
            w->life.merges++;
            w->life.merged_inputs += np;
            w->life.merge_bytes_in += mo.in_bytes;
            w->life.merge_bytes_out += mo.bytes;
            w->life.merge_dups += mo.dups;
            w->life.rewrites += np == 1;
        }
    }
    pthread_mutex_unlock(&w->mu);
    seg_free(drop);
    for (size_t k = 0; k < np; k++)
        seg_reader_unref(in[k]);
    if (rc || gone || cancelled) {
        unlink(path); /* not listed: never seen by anyone */
        return rc;
    }
    unlink_names(w->dir, names, np, "merge-mid-unlink");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    info->bucket = bucket;
    info->inputs = (uint32_t)np;
    info->docs = mo.docs;
    info->in_bytes = mo.in_bytes;
    info->out_bytes = mo.bytes;
    info->dups = mo.dups;
    info->compact = settled;
    info->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return SEG_OK;
}

/* 1 when an entry before e[i] (among those marked in mask, when given)
 * has e[i]'s bucket: counts each bucket once. */
static int bucket_before(const seg_mentry *e, size_t i, const uint8_t *mask)
{
    for (size_t k = 0; k < i; k++)
        if ((!mask || mask[k]) && e[k].bucket == e[i].bucket)
            return 1;
    return 0;
}

/* Drops every segment of w whose bucket satisfies `ends at or before
 * cutoff` (when only == INT64_MIN) or equals `only`. */
static int drop_buckets(idx_writer *w, int64_t cutoff, int64_t only, idx_drop_info *info, seg_err *e)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->man.n, nd = 0;
    uint8_t *drop = seg_calloc(n + 1, 1);
    char (*names)[64] = seg_malloc((n + 1) * 64);
    int rc = SEG_OK;
    if (!drop || !names) {
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        goto out;
    }
    int64_t bw = w->man.bucket_ns;
    idx_drop_info d = {0};
    for (size_t i = 0; i < n; i++) {
        const seg_mentry *m = &w->man.e[i];
        int hit = only != INT64_MIN ? m->bucket == only : seg_mentry_end(m, bw) <= cutoff;
        if (!hit)
            continue;
        drop[i] = 1;
        memcpy(names[nd++], m->name, 64);
        d.segments++;
        d.events += m->docs;
        d.bytes += m->bytes;
        d.buckets += !bucket_before(w->man.e, i, drop);
    }
    if (!nd || (rc = manifest_replace(w, drop, NULL, e)))
        goto out;
    seg_failpoint("retention-before-unlink");
    w->life.dropped_segments += d.segments;
    w->life.dropped_events += d.events;
    w->life.dropped_bytes += d.bytes;
    info->buckets += d.buckets;
    info->segments += d.segments;
    info->events += d.events;
    info->bytes += d.bytes;
out:
    pthread_mutex_unlock(&w->mu);
    if (rc == SEG_OK && nd)
        unlink_names(w->dir, names, nd, "retention-mid-unlink");
    seg_free(drop);
    seg_free(names);
    return rc;
}

/* Segment bytes, oldest bucket and number of buckets of w. */
static void disk_of(idx_writer *w, uint64_t *bytes, int64_t *oldest, size_t *nbuckets)
{
    pthread_mutex_lock(&w->mu);
    *bytes = 0;
    *oldest = INT64_MAX;
    *nbuckets = 0;
    for (size_t i = 0; i < w->man.n; i++) {
        const seg_mentry *m = &w->man.e[i];
        *bytes += m->bytes;
        *nbuckets += !bucket_before(w->man.e, i, NULL);
        if (m->bucket < *oldest)
            *oldest = m->bucket;
    }
    pthread_mutex_unlock(&w->mu);
}

int idx_retain(idx_writer *const *ws, size_t n, int64_t now, int64_t retention_ns, uint64_t max_disk,
               idx_drop_info *info, seg_err *e)
{
    int rc = SEG_OK;
    if (retention_ns > 0)
        for (size_t i = 0; i < n && rc == SEG_OK; i++)
            rc = drop_buckets(ws[i], now - retention_ns, INT64_MIN, info, e);
    while (rc == SEG_OK && max_disk > 0) {
        uint64_t total = 0;
        size_t buckets = 0, oldest_w = 0;
        int64_t oldest = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            uint64_t b;
            int64_t o;
            size_t nb;
            disk_of(ws[i], &b, &o, &nb);
            total += b;
            buckets += nb;
            if (nb && o < oldest) {
                oldest = o;
                oldest_w = i;
            }
        }
        if (total <= max_disk || buckets <= 1)
            break;
        rc = drop_buckets(ws[oldest_w], 0, oldest, info, e);
    }
    return rc;
}
