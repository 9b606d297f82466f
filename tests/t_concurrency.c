/*
 * t_concurrency.c -- the server-mode writer under concurrent use, as
 * `logdex serve` uses it: 8 threads ingest batches (with _ids, some sent
 * twice), 8 threads take snapshots and search, a ticker flushes by age and
 * a merger merges, all at once.  Checked: every search sees at least every
 * event acknowledged before it started and never more than were sent
 * (read your writes, nothing twice); at the end exactly the distinct ids
 * are stored, once each, and every segment verifies.  Meant to be run
 * under ThreadSanitizer too (./configure --enable-sanitizers=thread; CI
 * does, for 30 s: LOGDEX_CONC_SECONDS=30), where it checks the locking of
 * writer, flush, merge, write-ahead log and snapshots.
 */
#include "indexer/idx.h"
#include "searcher/srch.h"
#include "tests/tap.h"
#include "tests/testdir.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define INGESTERS 8
#define SEARCHERS 8
#define BATCHES 40
#define PER_BATCH 50
static char PAD[1501]; /* 1500 x "p", filled in main */

static idx_writer *W;
static srch_pool *POOL;
static uint64_t acked;          /* atomic: distinct events acknowledged */
static int stop_bg;             /* atomic */
static int failures;            /* atomic */
static double seconds = 0;      /* LOGDEX_CONC_SECONDS: keep ingesting this long */
static int batches_done[INGESTERS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const seg_err *e)
{
    if (__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED) <= 5)
        tap_diag("%s: %s", what, e ? e->msg : "");
}

static void *ingester(void *arg)
{
    long k = (long)arg;
    seg_buf body = {0};
    double until = now_s() + seconds;
    int b;
    for (b = 0; b < BATCHES || now_s() < until; b++) {
        body.n = 0;
        for (int i = 0; i < PER_BATCH; i++) {
            char line[2048];
            /* every 4th batch resends the previous batch's ids: duplicates;
             * odd threads send ~80 KB batches (a 1.5 KB field per event),
             * which the write-ahead log writes from the request's buffer */
            int bb = (b % 4 == 3) ? b - 1 : b;
            int n = snprintf(line, sizeof line,
                             "{\"_id\":\"t%ld-b%d-%d\",\"@timestamp\":\"2024-07-01T%02d:%02d:00Z\",\"msg\":\"thread %ld "
                             "batch %d\",\"n\":%d,\"pad\":\"%.*s\"}\n",
                             k, bb, i, (int)(k % 3), i % 60, k, bb, i, k % 2 ? 1500 : 0, PAD);
            seg_buf_put(&body, line, (size_t)n);
        }
        idx_batch out = {0};
        seg_err e = {0};
        int rc = idx_ingest(W, (const char *)body.p, body.n, &out, &e);
        if (rc == SEG_EBUSY) {
            b--; /* back-pressure: retry */
            usleep(10000);
            continue;
        }
        if (rc) {
            fail("ingest", &e);
        } else {
            if (out.accepted + out.duplicates != PER_BATCH || out.rejected)
                fail("ingest counts", NULL);
            __atomic_add_fetch(&acked, out.accepted, __ATOMIC_RELEASE);
        }
        idx_batch_free(&out);
    }
    batches_done[k] = b;
    seg_buf_free(&body);
    return NULL;
}

static void *searcher(void *arg)
{
    (void)arg;
    seg_tok *tok = seg_tok_new();
    srch_query *q;
    seg_err e = {0};
    srch_query_parse("thread", 6, tok, &q, &e);
    uint64_t last = 0;
    while (!__atomic_load_n(&stop_bg, __ATOMIC_ACQUIRE)) {
        uint64_t before = __atomic_load_n(&acked, __ATOMIC_ACQUIRE);
        seg_set *set;
        srch_index *ix = NULL;
        if (idx_snapshot(W, &set, &e) || srch_index_from_set(set, POOL, &ix, &e)) {
            fail("snapshot", &e);
            break;
        }
        seg_set_unref(set);
        srch_request rq = {q, 0, 0, 0, 0, 5, NULL, 0, NULL, 0};
        srch_result res;
        if (srch_search(ix, &rq, &res, &e)) {
            fail("search", &e);
            srch_index_close(ix);
            break;
        }
        uint64_t after = __atomic_load_n(&acked, __ATOMIC_ACQUIRE);
        /* at most the batches in flight beyond what was acknowledged */
        if (res.total < before || res.total < last || res.total > after + (uint64_t)INGESTERS * PER_BATCH)
            fail("a search saw fewer events than acknowledged, fewer than before, or too many", NULL);
        last = res.total;
        srch_result_free(&res);
        srch_index_close(ix);
    }
    srch_query_free(q);
    seg_tok_free(tok);
    return NULL;
}

static void *background(void *arg)
{
    int merger = arg != NULL;
    while (!__atomic_load_n(&stop_bg, __ATOMIC_ACQUIRE)) {
        seg_err e = {0};
        if (merger) {
            idx_merge_info mi;
            if (idx_merge_step(W, 0, &mi, &e))
                fail("merge", &e);
            if (!mi.inputs)
                usleep(2000);
        } else {
            if (idx_tick(W, &e))
                fail("tick", &e);
            usleep(5000);
        }
    }
    return NULL;
}

int main(void)
{
    memset(PAD, 'p', sizeof PAD - 1);
    const char *sv = getenv("LOGDEX_CONC_SECONDS");
    if (sv)
        seconds = atof(sv);
    char dir[] = "/tmp/logdex-t-conc-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    idx_opts o;
    idx_opts_default(&o);
    o.wal = 1;
    o.buffer_bytes = 64 << 10;    /* many flushes */
    o.max_age_ns = 20000000;      /* and by age: 20 ms */
    o.settle_ns = 50000000;       /* settle fast: merges during the test */
    seg_err e = {0};
    if (!ok(idx_open(dir, "c", &o, &W, &e) == SEG_OK, "open writer (server mode)"))
        return tap_done();
    POOL = srch_pool_new(2);
    pthread_t ing[INGESTERS], srch[SEARCHERS], tick, merge;
    pthread_create(&tick, NULL, background, NULL);
    pthread_create(&merge, NULL, background, (void *)1);
    for (long i = 0; i < SEARCHERS; i++)
        pthread_create(&srch[i], NULL, searcher, NULL);
    for (long i = 0; i < INGESTERS; i++)
        pthread_create(&ing[i], NULL, ingester, (void *)i);
    for (int i = 0; i < INGESTERS; i++)
        pthread_join(ing[i], NULL);
    usleep(100000);
    __atomic_store_n(&stop_bg, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < SEARCHERS; i++)
        pthread_join(srch[i], NULL);
    pthread_join(tick, NULL);
    pthread_join(merge, NULL);
    is_int(failures, 0, "8 ingesters, 8 searchers, a ticker and a merger: every check held");
    uint64_t distinct = 0;
    for (int i = 0; i < INGESTERS; i++)
        for (int b = 0; b < batches_done[i]; b++)
            distinct += b % 4 == 3 ? 0 : PER_BATCH;
    is_int(acked, distinct, "each distinct id acknowledged once (resent ones counted as duplicates)");
    idx_metrics m;
    idx_get_metrics(W, &m);
    tap_diag("%llu merges, %llu segments at the end", (unsigned long long)m.life.merges, (unsigned long long)m.segments);
    ok(idx_close(W, &e) == SEG_OK, "close");
    srch_index *ix;
    ok(srch_index_open(dir, "c", POOL, &ix, &e) == SEG_OK, "reopen offline");
    is_int(srch_index_events(ix), distinct, "exactly the distinct events are stored");
    srch_index_close(ix);
    char ixdir[4200];
    snprintf(ixdir, sizeof ixdir, "%s/c", dir);
    is_int(test_verify_index(ixdir), 0, "every segment verifies");
    srch_pool_free(POOL);
    test_rm_rf(dir);
    return tap_done();
}
