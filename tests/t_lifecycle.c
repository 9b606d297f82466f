/*
 * t_lifecycle.c -- the segment lifecycle: the merge policy, merges that
 * remove repeated _ids, retention by age and by disk size, and the event
 * time limits (--max-future, --retention) at ingest.
 * (Merging while searching is checked against the model in t_diff.c;
 * crashes at every step of flush, merge and retention in t_crash.sh.)
 */
#include "indexer/idx_int.h"
#include "searcher/srch.h"
#include "tests/tap.h"
#include "tests/testdir.h"

#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#define HOUR (3600LL * 1000000000LL)
#define MIB (1ull << 20)

/* ---- the policy ---- */

static void ent(seg_mentry *e, int64_t bucket, uint64_t bytes)
{
    memset(e, 0, sizeof *e);
    e->bucket = bucket;
    e->bytes = bytes;
    e->docs = 1;
}

static int same_bucket(const seg_mentry *e, const size_t *pick, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (e[pick[i]].bucket != e[pick[0]].bucket)
            return 0;
    return 1;
}

static void test_plan(void)
{
    seg_mentry e[64];
    int64_t touched[64];
    uint8_t busy[64] = {0};
    size_t pick[IDX_MERGE_MAX];
    int st = 0;
    const uint64_t target = 512 * MIB;
    const int64_t now = 1000 * HOUR, settle = 60LL * 1000000000LL;
    size_t n = 0;
    /* bucket 0: five 100 KB flush segments (one level) and a full one */
    for (int i = 0; i < 5; i++)
        ent(&e[n++], 0, 100000 + (uint64_t)i);
    ent(&e[n++], 0, 300 * MIB);
    /* bucket 1: three small ones */
    for (int i = 0; i < 3; i++)
        ent(&e[n++], HOUR, 50000);
    /* bucket 2: a tiny late segment beside a large one */
    ent(&e[n++], 2 * HOUR, 1000);
    ent(&e[n++], 2 * HOUR, 200 * MIB);
    for (size_t i = 0; i < n; i++)
        touched[i] = now; /* just written: nothing is settled */
    size_t k = idx_merge_plan(e, n, NULL, NULL, now, settle, touched, 0, target, pick, &st);
    ok(k == 5 && same_bucket(e, pick, k) && e[pick[0]].bucket == 0,
       "tiered: a level with 5 small segments is merged, the full one left (%zu)", k);
    int full = 0;
    for (size_t i = 0; i < k; i++)
        full |= e[pick[i]].bytes >= target / 2;
    ok(!full, "a segment of target/2 or more is never an input");
    busy[0] = busy[1] = 1;
    k = idx_merge_plan(e, n, busy, NULL, now, settle, touched, 0, target, pick, &st);
    is_int(k, 0, "busy segments are not picked (3 of one level left: below the tier)");
    memset(busy, 0, sizeof busy);
    /* settle bucket 1 and 2 only */
    for (size_t i = 0; i < 6; i++)
        touched[i] = now;
    for (size_t i = 6; i < n; i++)
        touched[i] = now - 2 * settle;
    busy[0] = busy[1] = 1; /* keep bucket 0 below the tier */
    k = idx_merge_plan(e, n, busy, NULL, now, settle, touched, 0, target, pick, &st);
    ok(k == 3 && e[pick[0]].bucket == HOUR && same_bucket(e, pick, k), "settled: a bucket's 3 small segments merge");
    /* bucket 2 alone: 1 KB beside 200 MiB stays as is */
    size_t k2 = idx_merge_plan(e + 9, 2, NULL, NULL, now, settle, touched + 9, 0, target, pick, &st);
    is_int(k2, 0, "settled: one tiny late segment does not rewrite a 200 MiB one");
    /* force (compact) */
    k = idx_merge_plan(e + 6, 3, NULL, NULL, now, settle, touched, 1, target, pick, &st);
    is_int(k, 3, "force merges an unsettled bucket down");
    /* more than 3 would stay behind: they join even when sizes differ */
    n = 0;
    ent(&e[n++], 0, 1000);
    ent(&e[n++], 0, 150 * MIB);
    ent(&e[n++], 0, 150 * MIB);
    ent(&e[n++], 0, 150 * MIB);
    ent(&e[n++], 0, 150 * MIB);
    k = idx_merge_plan(e, n, NULL, NULL, now, settle, NULL, 1, target, pick, &st);
    ok(k >= 2 && k <= 4, "settled with 5 small segments: some merge (%zu), the sum stays in target", k);
    uint64_t sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += e[pick[i]].bytes;
    ok(sum <= target, "merge output within target (%llu MiB)", (unsigned long long)(sum / MIB));
    /* never across buckets, whatever the sizes */
    n = 0;
    for (int i = 0; i < 40; i++)
        ent(&e[n++], (i % 8) * HOUR, 1000 + (uint64_t)i);
    k = idx_merge_plan(e, n, NULL, NULL, now, settle, NULL, 1, target, pick, &st);
    ok(k == 5 && same_bucket(e, pick, k), "8 buckets of 5: a merge takes one bucket's (%zu)", k);

    /* compact rewrites: settled buckets end up compact, one segment a step */
    uint8_t compact[64];
    memset(busy, 0, sizeof busy);
    n = 0;
    ent(&e[n++], 0, 300 * MIB);         /* bucket 0: a full one, settled */
    ent(&e[n++], HOUR, 3 * MIB);        /* bucket 1: two small ones, settled */
    ent(&e[n++], HOUR, 2 * MIB);
    ent(&e[n++], 2 * HOUR, 3 * MIB);    /* bucket 2: still written to */
    for (size_t i = 0; i < n; i++) {
        touched[i] = i == 3 ? now : now - 2 * settle;
        compact[i] = 0;
    }
    k = idx_merge_plan(e, n, NULL, compact, now, settle, touched, 0, target, pick, &st);
    ok(k == 2 && e[pick[0]].bucket == HOUR && st, "a settled bucket's merge comes first and is compact (%zu)", k);
    k = idx_merge_plan(e, n, NULL, NULL, now, settle, touched, 0, target, pick, &st);
    ok(k == 2 && e[pick[0]].bucket == HOUR && st, "the same without compactness known");
    compact[1] = 1;
    k = idx_merge_plan(e + 1, 1, NULL, compact + 1, now, settle, touched + 1, 0, target, pick, &st);
    is_int(k, 0, "a compact segment alone stays");
    k = idx_merge_plan(e + 2, 1, NULL, compact + 2, now, settle, touched + 2, 0, target, pick, &st);
    ok(k == 1 && pick[0] == 0 && st, "a settled segment alone, not compact, is rewritten");
    busy[1] = busy[2] = 1; /* bucket 1 being merged */
    k = idx_merge_plan(e, n, busy, compact, now, settle, touched, 0, target, pick, &st);
    ok(k == 1 && pick[0] == 0 && st, "a full segment is rewritten too (once; never merged)");
    compact[0] = 1;
    k = idx_merge_plan(e, n, busy, compact, now, settle, touched, 0, target, pick, &st);
    is_int(k, 0, "a bucket still written to is not rewritten");
    k = idx_merge_plan(e, n, busy, compact, now, settle, touched, 1, target, pick, &st);
    ok(k == 1 && pick[0] == 3 && st, "unless forced (compact)");
    busy[1] = busy[2] = 0;
    compact[0] = 0;
    busy[0] = busy[1] = busy[2] = 1;
    compact[1] = compact[2] = 1;
    k = idx_merge_plan(e, n, busy, compact, now, settle, touched, 0, target, pick, &st);
    is_int(k, 0, "a busy segment is not rewritten");
    busy[0] = 0;
    touched[3] = now - 2 * settle;
    ent(&e[n], 2 * HOUR, 5 * MIB);
    touched[n] = now - 2 * settle;
    compact[n++] = 0;
    compact[3] = 0;
    ent(&e[n], 2 * HOUR, 4 * MIB);
    touched[n] = now - 2 * settle;
    compact[n++] = 1;
    k = idx_merge_plan(e, n, NULL, compact, now, settle, touched, 0, target, pick, &st);
    ok(k == 3 && e[pick[0]].bucket == 2 * HOUR && st, "merges go before rewrites, compact inputs included (%zu)", k);
}

/* ---- merges remove repeated explicit _ids ---- */

static void test_merge_dedupe(void)
{
    char dir[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char ixdir[4200];
    snprintf(ixdir, sizeof ixdir, "%s/x", dir);
    idx_opts o;
    idx_opts_default(&o);
    seg_err e = {0};
    idx_writer *w;
    /* 1. 100 events with ids, 50 without; flushed into one segment */
    ok(idx_open(dir, "x", &o, &w, &e) == SEG_OK, "open");
    char line[256];
    for (int i = 0; i < 150; i++) {
        int n = i < 100 ? snprintf(line, sizeof line,
                                   "{\"_id\":\"id-%d\",\"@timestamp\":\"2024-05-01T10:%02d:00Z\",\"msg\":\"hello %d\"}",
                                   i, i % 60, i)
                        : snprintf(line, sizeof line, "{\"@timestamp\":\"2024-05-01T10:%02d:30Z\",\"msg\":\"plain\"}",
                                   i % 60);
        idx_add_line(w, line, (size_t)n, i + 1, NULL, NULL, &e);
    }
    ok(idx_close(w, &e) == SEG_OK, "close");
    /* 2. a copy of that segment listed under another name: the state a
     * lost dedupe decision would leave (same ids in two segments) */
    seg_manifest m;
    int exists;
    ok(seg_manifest_load(ixdir, &m, &exists, &e) == SEG_OK && m.n == 1, "one segment");
    char a[4400], b[4400], cmd[9000];
    snprintf(a, sizeof a, "%s/%s", ixdir, m.e[0].name);
    seg_mentry copy = m.e[0];
    snprintf(copy.name, sizeof copy.name, "s%016llx.seg", (unsigned long long)m.next_seq++);
    snprintf(b, sizeof b, "%s/%s", ixdir, copy.name);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", a, b);
    ok(system(cmd) == 0, "copy segment");
    seg_manifest_add(&m, &copy);
    ok(seg_manifest_save(ixdir, &m, &e) == SEG_OK, "manifest lists both");
    seg_manifest_free(&m);
    /* 3. compact */
    ok(idx_open(dir, "x", &o, &w, &e) == SEG_OK, "reopen");
    idx_merge_info mi;
    ok(idx_merge_step(w, 1, &mi, &e) == SEG_OK && mi.inputs == 2, "merged the two (%u inputs)", mi.inputs);
    is_int(mi.dups, 100, "the 100 repeated ids removed");
    is_int(mi.docs, 200, "200 events left: 100 with ids, 2 x 50 without (not deduplicated: no _id)");
    ok(idx_merge_step(w, 1, &mi, &e) == SEG_OK && mi.inputs == 0, "nothing more to merge");
    /* the stored-id check still finds every id */
    idx_counts before = *idx_get_counts(w);
    snprintf(line, sizeof line, "{\"_id\":\"id-7\",\"@timestamp\":\"2024-05-01T10:07:00Z\",\"msg\":\"again\"}");
    idx_add_line(w, line, strlen(line), 1, NULL, NULL, &e);
    is_int(idx_get_counts(w)->duplicates - before.duplicates, 1, "an id of the merged segment is still a duplicate");
    ok(idx_close(w, &e) == SEG_OK, "close");
    is_int(test_verify_index(ixdir), 0, "verify passes");
    /* no leftover files: manifest, lock, one segment (wal not used) */
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | grep -c '\\.seg$') -eq 1", ixdir);
    ok(system(cmd) == 0, "the inputs were deleted");
    test_rm_rf(dir);
}

/* ---- a corrupt segment is left out of later merges ---- */

static void test_merge_corrupt(void)
{
    char dir[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char ixdir[4200], line[256];
    snprintf(ixdir, sizeof ixdir, "%s/x", dir);
    idx_opts o;
    idx_opts_default(&o);
    seg_err e = {0};
    idx_writer *w;
    ok(idx_open(dir, "x", &o, &w, &e) == SEG_OK, "open");
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof line, "{\"@timestamp\":\"2024-05-01T10:%02d:00Z\",\"msg\":\"event %d\"}", i % 60, i);
        idx_add_line(w, line, (size_t)n, i + 1, NULL, NULL, &e);
    }
    ok(idx_close(w, &e) == SEG_OK, "one segment written");
    /* a byte in the middle of it changed: a section's checksum now fails
     * (the header and directory still open) */
    seg_manifest m;
    int exists;
    ok(seg_manifest_load(ixdir, &m, &exists, &e) == SEG_OK && m.n == 1, "one segment listed");
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", ixdir, m.e[0].name);
    seg_manifest_free(&m);
    FILE *f = fopen(path, "r+b");
    long size = 0;
    if (f && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (f && size > 0 && fseek(f, size / 2, SEEK_SET) == 0) {
        int c = fgetc(f);
        fseek(f, size / 2, SEEK_SET);
        fputc(c ^ 0x5a, f);
    }
    if (f)
        fclose(f);
    ok(size > 0, "a byte in the middle of the segment changed");
    ok(idx_open(dir, "x", &o, &w, &e) == SEG_OK, "reopen");
    idx_merge_info mi;
    seg_err_clear(&e);
    int rc1 = idx_merge_step(w, 1, &mi, &e);
    ok(rc1 == SEG_ECORRUPT, "the compact rewrite finds it corrupt (%s)", e.msg);
    seg_err_clear(&e);
    ok(idx_merge_step(w, 1, &mi, &e) == SEG_OK && mi.inputs == 0, "and does not pick it again");
    ok(idx_close(w, &e) == SEG_OK, "close");
    test_rm_rf(dir);
}

/* ---- retention ---- */

static void test_retention(void)
{
    char dir[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    idx_opts o;
    idx_opts_default(&o);
    seg_err e = {0};
    idx_writer *w;
    int64_t now = seg_time_now();
    /* 5 days of events, one every 7 minutes, into 1-hour buckets */
    const int64_t step = 7LL * 60 * 1000000000LL, span = 5 * 24 * HOUR;
    const int64_t keep = 2 * 24 * HOUR;
    uint64_t total = 0, expect_kept = 0;
    ok(idx_open(dir, "r", &o, &w, &e) == SEG_OK, "open");
    for (int64_t t = now - span; t < now; t += step) {
        char line[200], ts[40];
        seg_time_format(t, ts);
        int n = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\",\"msg\":\"tick\"}", ts);
        idx_add_line(w, line, (size_t)n, 1, NULL, NULL, &e);
        /* events of ms precision: the stored time is t rounded down to ms */
        int64_t tm = t - ((t % 1000000) + 1000000) % 1000000;
        int64_t bucket = tm / HOUR * HOUR;
        total++;
        expect_kept += bucket + HOUR > now - keep;
    }
    ok(idx_close(w, &e) == SEG_OK, "close");
    ok(idx_open(dir, "r", &o, &w, &e) == SEG_OK, "reopen");
    idx_drop_info d = {0};
    ok(idx_retain(&w, 1, now, keep, 0, &d, &e) == SEG_OK, "retention pass");
    is_int(d.events, total - expect_kept, "events of buckets entirely older than 2 days deleted");
    ok(d.buckets >= 71 && d.buckets <= 73, "about 72 buckets deleted (%llu)", (unsigned long long)d.buckets);
    idx_metrics mm;
    idx_get_metrics(w, &mm);
    is_int(mm.life.dropped_events, d.events, "metrics count the deleted events");
    /* size limit: about half of what is left */
    uint64_t half = mm.segment_bytes / 2;
    idx_drop_info d2 = {0};
    ok(idx_retain(&w, 1, now, 0, half, &d2, &e) == SEG_OK, "max-disk pass");
    idx_get_metrics(w, &mm);
    ok(mm.segment_bytes <= half && d2.buckets > 0, "segments now within max-disk (%llu <= %llu)",
       (unsigned long long)mm.segment_bytes, (unsigned long long)half);
    ok(idx_close(w, &e) == SEG_OK, "close");
    srch_index *ix;
    ok(srch_index_open(dir, "r", NULL, &ix, &e) == SEG_OK, "open for search");
    is_int(srch_index_events(ix), expect_kept - d2.events, "what is left is what was not deleted");
    /* the oldest buckets went first: every event left is newer than every deleted one */
    srch_bucket *bk;
    size_t nb = srch_index_buckets(ix, &bk);
    int64_t oldest_left = nb ? bk[0].start : 0;
    ok(nb > 0 && oldest_left == (now - keep) / HOUR * HOUR + (int64_t)d2.buckets * HOUR,
       "max-disk deleted the oldest buckets");
    seg_free(bk);
    srch_index_close(ix);
    char ixdir[4200];
    snprintf(ixdir, sizeof ixdir, "%s/r", dir);
    is_int(test_verify_index(ixdir), 0, "verify passes");
    test_rm_rf(dir);
}

/* ---- event time limits at ingest ---- */

static char last_reason[512];
static long last_line;
static void on_reject(void *ud, long line, const char *reason)
{
    (void)ud;
    last_line = line;
    snprintf(last_reason, sizeof last_reason, "%s", reason);
}

static void test_time_limits(void)
{
    char dir[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    idx_opts o;
    idx_opts_default(&o);
    o.retention_ns = 24 * HOUR;
    seg_err e = {0};
    idx_writer *w;
    ok(idx_open(dir, "t", &o, &w, &e) == SEG_OK, "open");
    int64_t now = seg_time_now();
    char line[200], ts[40];
    seg_time_format(now + 2 * 24 * HOUR, ts);
    int n = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\"}", ts);
    idx_add_line(w, line, (size_t)n, 3, on_reject, NULL, &e);
    ok(last_line == 3 && strstr(last_reason, "--max-future"), "2 days ahead: rejected at line 3 (%s)", last_reason);
    seg_time_format(now + 2 * HOUR, ts);
    n = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\"}", ts);
    last_line = 0;
    idx_add_line(w, line, (size_t)n, 4, on_reject, NULL, &e);
    is_int(last_line, 0, "2 hours ahead: accepted");
    seg_time_format(now - 3 * 24 * HOUR, ts);
    n = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\"}", ts);
    idx_add_line(w, line, (size_t)n, 5, on_reject, NULL, &e);
    ok(last_line == 5 && strstr(last_reason, "retention"), "older than retention: rejected (%s)", last_reason);
    const idx_counts *c = idx_get_counts(w);
    ok(c->accepted == 1 && c->rejected == 2, "1 accepted, 2 rejected");
    /* an ingest whose first allocation fails (the builder for a live
     * tail's copy of the events) reports it and stores nothing */
    idx_batch b = {.want_events = 1};
    seg_time_format(now, ts);
    n = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\"}\n", ts);
    seg_fault_inject(1);
    int irc = idx_ingest(w, line, (size_t)n, &b, &e);
    seg_fault_inject(0);
    ok(irc == SEG_ENOMEM && b.accepted == 0 && c->accepted == 1, "out of memory at the start of an ingest: an error");
    idx_batch_free(&b);
    ok(idx_close(w, &e) == SEG_OK, "close");
    test_rm_rf(dir);
}

/* ---- spans: sparse settled buckets merged across one day ---- */

/* Merges w down as `logdex compact` does: the number of merges. */
static int merge_all(idx_writer *w, seg_err *e)
{
    int steps = 0;
    for (;;) {
        idx_merge_info mi;
        if (idx_merge_step(w, 1, &mi, e) != SEG_OK || !mi.inputs)
            return steps;
        steps++;
    }
}

static size_t count_where(srch_index *ix, const char *q, int64_t start, int64_t end)
{
    seg_tok *tok = seg_tok_new();
    srch_query *pq = NULL;
    seg_err e = {0};
    size_t n = (size_t)-1;
    if (tok && srch_query_parse(q, strlen(q), tok, &pq, &e) == SEG_OK) {
        srch_request rq = {pq, start != INT64_MIN, end != INT64_MAX, start, end, 0, NULL, 1, NULL, 0};
        srch_result res;
        if (srch_search(ix, &rq, &res, &e) == SEG_OK) {
            n = (size_t)res.total;
            srch_result_free(&res);
        }
    }
    srch_query_free(pq);
    seg_tok_free(tok);
    return n;
}

static void test_spans(void)
{
    seg_mentry e[64];
    int64_t touched[64];
    size_t pick[IDX_MERGE_MAX];
    const int64_t day = 24 * HOUR, now = 100 * day, settle = 60LL * 1000000000LL;
    /* the planner: day 0 has 5 tiny hourly segments, day 1 three and a
     * large one, day 2 four of which one was just written */
    size_t n = 0;
    for (int h = 0; h < 5; h++)
        ent(&e[n++], h * 3 * HOUR, 4000);
    for (int h = 0; h < 3; h++)
        ent(&e[n++], day + h * HOUR, 4000);
    ent(&e[n++], day + 5 * HOUR, 2 * MIB);
    for (int h = 0; h < 4; h++)
        ent(&e[n++], 2 * day + h * HOUR, 4000);
    for (size_t i = 0; i < n; i++)
        touched[i] = now - 2 * settle;
    touched[n - 1] = now;
    size_t k = idx_merge_plan_span(e, n, NULL, now, settle, touched, 0, HOUR, day, IDX_SPAN_SMALL, pick);
    int day0 = k == 5;
    for (size_t i = 0; i < k; i++)
        day0 &= e[pick[i]].bucket < day;
    ok(day0, "spans: the settled day of tiny segments is picked whole (%zu)", k);
    k = idx_merge_plan_span(e + 5, n - 5, NULL, now, settle, touched + 5, 0, HOUR, day, IDX_SPAN_SMALL, pick);
    is_int(k, 0, "a day with a segment over 256 KiB, or one not settled, is left alone");
    k = idx_merge_plan_span(e + 5, n - 5, NULL, now, settle, touched + 5, 1, HOUR, day, IDX_SPAN_SMALL, pick);
    is_int(k, 4, "force: the day of 4 tiny segments (the unsettled one too) is picked");
    k = idx_merge_plan_span(e, n, NULL, now, settle, touched, 1, day, day, IDX_SPAN_SMALL, pick);
    is_int(k, 0, "no spans when buckets are as wide as the window");

    /* a writer: 3 events in each of 30 hours (two days), then compact */
    char dir[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    idx_opts o;
    idx_opts_default(&o);
    seg_err er = {0};
    idx_writer *w;
    const int64_t t0 = (seg_time_now() - 10 * day) / day * day;
    ok(idx_open(dir, "sp", &o, &w, &er) == SEG_OK, "open");
    for (int h = 0; h < 30; h++)
        for (int i = 0; i < 3; i++) {
            char line[200], ts[40];
            seg_time_format(t0 + h * HOUR + i * 60000000000LL, ts);
            int len = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\",\"msg\":\"sparse h%d\",\"i\":%d}", ts, h, i);
            idx_add_line(w, line, (size_t)len, 1, NULL, NULL, &er);
        }
    ok(idx_flush(w, &er) == SEG_OK, "flush: one segment per hour");
    idx_metrics m;
    idx_get_metrics(w, &m);
    is_int((long)m.segments, 30, "30 segments before");
    int spans = 0, steps = merge_all(w, &er);
    idx_get_metrics(w, &m);
    ok(m.segments == 2, "compact: two segments, one per day (%d merges)", steps);
    ok(idx_close(w, &er) == SEG_OK, "close");
    seg_manifest man;
    int exists = 0;
    char ixdir[4200];
    snprintf(ixdir, sizeof ixdir, "%s/sp", dir);
    ok(seg_manifest_load(ixdir, &man, &exists, &er) == SEG_OK, "the manifest loads (version 2)");
    for (size_t i = 0; i < man.n; i++)
        spans += man.e[i].bucket_end == man.e[i].bucket + (man.e[i].bucket == t0 ? day : 6 * HOUR);
    is_int(spans, 2, "the manifest gives each its span: a whole day, and the 6 hours of the second");
    seg_manifest_free(&man);
    is_int(test_verify_index(ixdir), 0, "verify passes");
    srch_index *ix;
    ok(srch_index_open(dir, "sp", NULL, &ix, &er) == SEG_OK, "open for search");
    is_int((long)count_where(ix, "*", INT64_MIN, INT64_MAX), 90, "all 90 events found");
    is_int((long)count_where(ix, "sparse", t0 + 5 * HOUR, t0 + 6 * HOUR), 3, "an hour inside a span: its 3 events");
    is_int((long)count_where(ix, "h27", INT64_MIN, INT64_MAX), 3, "a token of the second day's span");
    srch_index_close(ix);

    /* a late event inside the first day's span, then compact again */
    ok(idx_open(dir, "sp", &o, &w, &er) == SEG_OK, "reopen");
    {
        char line[200], ts[40];
        seg_time_format(t0 + 3 * HOUR + 30 * 60000000000LL, ts);
        int len = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\",\"msg\":\"late one\"}", ts);
        idx_add_line(w, line, (size_t)len, 1, NULL, NULL, &er);
    }
    ok(idx_flush(w, &er) == SEG_OK, "flush the late event");
    merge_all(w, &er);
    idx_get_metrics(w, &m);
    is_int((long)m.segments, 2, "the late event joined its day's span");
    /* retention: a span goes only when its last bucket has passed */
    idx_drop_info d = {0};
    ok(idx_retain(&w, 1, t0 + 12 * HOUR, 1, 0, &d, &er) == SEG_OK && d.segments == 0,
       "retention at the middle of the first day keeps its span");
    int rrc = idx_retain(&w, 1, t0 + day + 1, 1, 0, &d, &er);
    ok(rrc == SEG_OK && d.events == 73, "retention at its end drops it (%llu events)", (unsigned long long)d.events);
    ok(idx_close(w, &er) == SEG_OK, "close");
    is_int(test_verify_index(ixdir), 0, "verify passes");
    test_rm_rf(dir);

    /* a retention shorter than the window: spans of the retention's width
     * in whole buckets (6 hours here), so that none keeps events a day
     * past their time.  30 hourly segments ingested without a retention,
     * then merged by a writer opened with one */
    char dir2[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(dir2) != NULL, "temp dir");
    idx_opts_default(&o);
    ok(idx_open(dir2, "sp", &o, &w, &er) == SEG_OK, "open");
    for (int h = 0; h < 30; h++) {
        char line[200], ts[40];
        seg_time_format(t0 + h * HOUR + 60000000000LL, ts);
        int len = snprintf(line, sizeof line, "{\"@timestamp\":\"%s\",\"msg\":\"short h%d\"}", ts, h);
        idx_add_line(w, line, (size_t)len, 1, NULL, NULL, &er);
    }
    ok(idx_flush(w, &er) == SEG_OK && idx_close(w, &er) == SEG_OK, "30 hourly segments");
    o.retention_ns = 6 * HOUR + HOUR / 2; /* whole buckets: 6 hours */
    ok(idx_open(dir2, "sp", &o, &w, &er) == SEG_OK, "reopen with a 6.5-hour retention");
    merge_all(w, &er);
    ok(idx_close(w, &er) == SEG_OK, "close");
    snprintf(ixdir, sizeof ixdir, "%s/sp", dir2);
    ok(seg_manifest_load(ixdir, &man, &exists, &er) == SEG_OK, "the manifest loads");
    int six = 0;
    size_t nseg = man.n;
    for (size_t i = 0; i < man.n; i++)
        six += man.e[i].bucket_end - man.e[i].bucket == 6 * HOUR && man.e[i].bucket % (6 * HOUR) == 0;
    seg_manifest_free(&man);
    ok(nseg == 5 && six == 5, "five spans of 6 aligned hours, not one a day (%zu segments, %d of 6 hours)", nseg,
       six);
    is_int(test_verify_index(ixdir), 0, "verify passes");
    test_rm_rf(dir2);
}

/* ---- compact on several threads: the same segments as on one ---- */

/* An index under dir: 6 dense hours of 8 small segments each (a flush
 * every 30 events), and 20 sparse hours of another day (spans); explicit
 * _ids throughout, so two builds are byte for byte the same. */
static int build_many(const char *dir, int64_t t0)
{
    idx_opts o;
    idx_opts_default(&o);
    o.flush_events = 30;
    seg_err e = {0};
    idx_writer *w;
    if (idx_open(dir, "c", &o, &w, &e) != SEG_OK)
        return -1;
    int rc = 0;
    for (int i = 0; i < 280 && rc == 0; i++) {
        char line[200], ts[40];
        int64_t t = i < 240 ? t0 + (i % 6) * HOUR + i * 1000000000LL : t0 + 24 * HOUR + (i - 240) / 2 * HOUR + i;
        seg_time_format(t, ts);
        int len = snprintf(line, sizeof line, "{\"_id\":\"e%d\",\"@timestamp\":\"%s\",\"msg\":\"word%d common\",\"n\":%d}",
                           i, ts, i % 17, i);
        rc = idx_add_line(w, line, (size_t)len, i + 1, NULL, NULL, &e);
    }
    if (idx_close(w, &e) != SEG_OK)
        rc = -1;
    return rc;
}

static void test_compact_threads(void)
{
    char d1[] = "/tmp/logdex-t-life-XXXXXX", d2[] = "/tmp/logdex-t-life-XXXXXX";
    ok(mkdtemp(d1) && mkdtemp(d2), "temp dirs");
    const int64_t t0 = (seg_time_now() - 10 * 24 * HOUR) / (24 * HOUR) * (24 * HOUR);
    ok(build_many(d1, t0) == 0 && build_many(d2, t0) == 0, "two identical indexes of many small segments");
    idx_opts o;
    idx_opts_default(&o);
    seg_err e = {0};
    idx_writer *w1, *w2;
    idx_metrics m1, m2, b1;
    ok(idx_open(d1, "c", &o, &w1, &e) == SEG_OK && idx_open(d2, "c", &o, &w2, &e) == SEG_OK, "open both");
    idx_get_metrics(w1, &b1);
    ok(idx_compact(w1, 1, &e) == SEG_OK, "compact on one thread");
    ok(idx_compact(w2, 3, &e) == SEG_OK, "compact on three threads");
    idx_get_metrics(w1, &m1);
    idx_get_metrics(w2, &m2);
    ok(b1.segments >= 60 && m1.segments < 10, "one thread: %llu segments -> %llu",
       (unsigned long long)b1.segments, (unsigned long long)m1.segments);
    is_int((long)m2.segments, (long)m1.segments, "three threads: as many segments");
    ok(idx_close(w1, &e) == SEG_OK && idx_close(w2, &e) == SEG_OK, "close both");
    /* the same entries, and each file the same bytes */
    char x1[4200], x2[4200];
    snprintf(x1, sizeof x1, "%s/c", d1);
    snprintf(x2, sizeof x2, "%s/c", d2);
    seg_manifest a, b;
    int ex = 0, same = 0, spans = 0;
    uint64_t docs = 0;
    if (ok(seg_manifest_load(x1, &a, &ex, &e) == SEG_OK && seg_manifest_load(x2, &b, &ex, &e) == SEG_OK,
           "both manifests load")) {
        same = a.n == b.n;
        for (size_t i = 0; same && i < a.n; i++) {
            size_t j = 0;
            while (j < b.n && (b.e[j].bucket != a.e[i].bucket || b.e[j].bucket_end != a.e[i].bucket_end))
                j++;
            if (j == b.n || b.e[j].docs != a.e[i].docs || b.e[j].bytes != a.e[i].bytes) {
                same = 0;
                break;
            }
            spans += a.e[i].bucket_end != 0;
            docs += a.e[i].docs;
            char p1[4300], p2[4300];
            snprintf(p1, sizeof p1, "%s/%s", x1, a.e[i].name);
            snprintf(p2, sizeof p2, "%s/%s", x2, b.e[j].name);
            FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
            int c1 = 0, c2 = 0;
            while (f1 && f2 && (c1 = getc(f1)) == (c2 = getc(f2)) && c1 != EOF)
                ;
            same = f1 && f2 && c1 == EOF && c2 == EOF;
            if (f1)
                fclose(f1);
            if (f2)
                fclose(f2);
        }
        seg_manifest_free(&a);
        seg_manifest_free(&b);
    }
    ok(same && spans == 2 && docs == 280, "the same segments, byte for byte (two spans, a day each: %d; %llu events)",
       spans, (unsigned long long)docs);
    is_int(test_verify_index(x2), 0, "verify passes");
    test_rm_rf(d1);
    test_rm_rf(d2);
}

int main(void)
{
    test_plan();
    test_merge_dedupe();
    test_merge_corrupt();
    test_retention();
    test_time_limits();
    test_spans();
    test_compact_threads();
    return tap_done();
}
