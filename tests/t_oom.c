/*
 * t_oom.c -- running out of memory anywhere in ingest, flush, merge and
 * search: each allocation of a small scenario is made to fail in turn
 * (seg_fault_inject), the first 400 one by one and then every ~5%.  Every
 * run must end without a crash (and, under AddressSanitizer, without a
 * leak or a bad access), report the failure as an error rather than
 * success, and leave an index whose listed segments all verify and which
 * a writer and a searcher open again.
 */
#include "api/api.h"
#include "indexer/idx.h"
#include "searcher/srch.h"
#include "tests/tap.h"
#include "tests/testdir.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_EVENTS 300

/* 1 if a search for q (newest limit) over ix fails, else 0. */
static int search_fails(srch_index *ix, const srch_query *q, size_t limit)
{
    seg_err e = {0};
    srch_request rq = {q, 0, 0, 0, 0, limit, NULL, 0, NULL, 0};
    srch_result res;
    if (srch_search(ix, &rq, &res, &e) != SEG_OK)
        return 1;
    srch_result_free(&res);
    return 0;
}

/* The scenario: ingest (several flushes on two threads, some repeated
 * _ids), close, merge everything down, then two searches.  Returns the
 * number of steps that reported an error. */
static int scenario(const char *dir)
{
    int errors = 0;
    idx_opts o;
    idx_opts_default(&o);
    o.threads = 2;
    o.flush_events = 70;
    seg_err e = {0};
    idx_writer *w = NULL;
    if (idx_open(dir, "m", &o, &w, &e) != SEG_OK) {
        idx_close(w, NULL);
        return 1;
    }
    for (int i = 0; i < N_EVENTS; i++) {
        char line[300];
        int len = snprintf(line, sizeof line,
                           "{\"_id\":\"id%d\",\"@timestamp\":%lld,\"msg\":\"user %d failed login from host-%d\","
                           "\"http\":{\"status\":%d,\"ms\":%d.5},\"tags\":[\"a%d\",\"b\"],\"ok\":%s}",
                           i % 280, 1717200000000LL + (long long)(i % 7) * 3600000LL + i, i % 13, i % 5,
                           200 + i % 4 * 100, i, i % 3, i % 2 ? "true" : "false");
        if (idx_add_line(w, line, (size_t)len, i + 1, NULL, NULL, &e) != SEG_OK)
            errors++;
    }
    if (idx_close(w, &e) != SEG_OK)
        errors++;
    if (idx_open(dir, "m", &o, &w, &e) != SEG_OK) {
        idx_close(w, NULL);
        return errors + 1;
    }
    if (idx_compact(w, 2, &e) != SEG_OK)
        errors++;
    if (idx_close(w, &e) != SEG_OK)
        errors++;
    srch_index *ix = NULL;
    seg_tok *tok = seg_tok_new();
    if (!tok || srch_index_open(dir, "m", NULL, &ix, &e) != SEG_OK) {
        seg_tok_free(tok);
        return errors + 1;
    }
    const char *qs[] = {"failed AND http.status:[300 TO 500] -host", "\"failed login\" OR tags:a1*"};
    for (size_t k = 0; k < 2; k++) {
        srch_query *q = NULL;
        if (srch_query_parse(qs[k], strlen(qs[k]), tok, &q, &e) != SEG_OK) {
            errors++;
            continue;
        }
        errors += search_fails(ix, q, 10);
        srch_query_free(q);
    }
    srch_index_close(ix);
    seg_tok_free(tok);
    return errors;
}

/* Server mode: batches through idx_ingest (write-ahead log), a snapshot
 * searched between them, ticks, and flushes by size.  *acked: events of
 * batches that returned success (they must survive: the log). */
static int scenario_server(const char *dir, uint64_t *acked)
{
    int errors = 0;
    *acked = 0;
    idx_opts o;
    idx_opts_default(&o);
    o.wal = 1;
    o.threads = 2;
    o.buffer_bytes = 24 << 10; /* several flushes */
    seg_err e = {0};
    idx_writer *w = NULL;
    if (idx_open(dir, "m", &o, &w, &e) != SEG_OK) {
        idx_close(w, NULL);
        return 1;
    }
    seg_tok *tok = seg_tok_new();
    srch_query *q = NULL;
    if (!tok || srch_query_parse("failed", 6, tok, &q, &e) != SEG_OK)
        errors++;
    char body[64 << 10];
    for (int b = 0; b < 6; b++) {
        size_t n = 0;
        for (int i = b * 50; i < b * 50 + 50; i++)
            n += (size_t)snprintf(body + n, sizeof body - n,
                                  "{\"_id\":\"s%d\",\"@timestamp\":%lld,\"msg\":\"user %d failed\",\"v\":%d}\n", i,
                                  1717200000000LL + (long long)(i % 5) * 3600000LL + i, i % 9, i);
        idx_batch out = {0};
        if (idx_ingest(w, body, n, &out, &e) == SEG_OK)
            *acked += out.accepted;
        else
            errors++;
        idx_batch_free(&out);
        seg_set *set = NULL;
        srch_index *ix = NULL;
        if (idx_snapshot(w, &set, &e) != SEG_OK) {
            errors++;
        } else {
            if (srch_index_from_set(set, NULL, &ix, &e) != SEG_OK) {
                errors++;
            } else if (q) {
                errors += search_fails(ix, q, 5);
            }
            srch_index_close(ix);
            seg_set_unref(set);
        }
        if (idx_tick(w, &e) != SEG_OK)
            errors++;
    }
    srch_query_free(q);
    seg_tok_free(tok);
    if (idx_close(w, &e) != SEG_OK)
        errors++;
    return errors;
}

/* Events a search for "*" finds in ix (closed here), or UINT64_MAX. */
static uint64_t count_in(srch_index *ix)
{
    seg_err e = {0};
    seg_tok *tok = seg_tok_new();
    srch_query *q = NULL;
    srch_result res = {0};
    srch_request rq = {NULL, 0, 0, 0, 0, 0, NULL, 1, NULL, 0};
    uint64_t n = UINT64_MAX;
    if (ix && tok && srch_query_parse("*", 1, tok, &q, &e) == SEG_OK) {
        rq.q = q;
        if (srch_search(ix, &rq, &res, &e) == SEG_OK) {
            n = res.total;
            srch_result_free(&res);
        }
    }
    srch_query_free(q);
    srch_index_close(ix);
    seg_tok_free(tok);
    return n;
}

/* Events in dir/m, read by a searcher; UINT64_MAX if it does not open. */
static uint64_t count_events(const char *dir)
{
    seg_err e = {0};
    srch_index *ix = NULL;
    return srch_index_open(dir, "m", NULL, &ix, &e) == SEG_OK ? count_in(ix) : UINT64_MAX;
}

/* The same, after a fresh writer has replayed the log. */
static uint64_t count_all(const char *dir)
{
    idx_opts o;
    idx_opts_default(&o);
    o.wal = 1;
    seg_err e = {0};
    idx_writer *w = NULL;
    if (idx_open(dir, "m", &o, &w, &e) != SEG_OK || idx_close(w, &e) != SEG_OK)
        return UINT64_MAX;
    return count_events(dir);
}

/* Events a search of writer w's snapshot finds (buffered, in flight and
 * listed), or UINT64_MAX. */
static uint64_t count_snapshot(idx_writer *w)
{
    seg_err e = {0};
    seg_set *set = NULL;
    srch_index *ix = NULL;
    uint64_t n = UINT64_MAX;
    if (idx_snapshot(w, &set, &e) == SEG_OK && srch_index_from_set(set, NULL, &ix, &e) == SEG_OK)
        n = count_in(ix);
    seg_set_unref(set);
    return n;
}

/* Server mode, one flush thread (a deterministic order): the k1-th
 * allocation of a flush fails, and the run1 - 1 after it (the flush's
 * clean-up and whatever keeps its events must not need memory); more
 * events come; the k2-th allocation of
 * the next flush (which retries the failed batch first) fails too (k2 0:
 * no second fault); more events; a last flush.  After each failure every
 * acknowledged event must be visible to a search of the writer's snapshot;
 * after the last flush every one must be listed in segments (the log not
 * needed), and exactly once after a reopen replays the log.  Returns the
 * events found after the reopen (all 150 were acknowledged), or -1; *fails
 * counts the flushes that failed, *invisible the failures after which a
 * search missed events, *unlisted 1 when the last flush left events out
 * of the segments. */
static long failed_flushes(const char *dir, unsigned long k1, unsigned long run1, unsigned long k2, int *fails,
                           int *invisible, int *unlisted)
{
    idx_opts o;
    idx_opts_default(&o);
    o.wal = 1;
    o.threads = 1;
    seg_err e = {0};
    idx_writer *w = NULL;
    if (idx_open(dir, "m", &o, &w, &e) != SEG_OK)
        return -1;
    char body[16 << 10];
    long acked = 0;
    for (int b = 0; b < 3; b++) {
        size_t n = 0;
        for (int i = b * 50; i < b * 50 + 50; i++)
            n += (size_t)snprintf(body + n, sizeof body - n,
                                  "{\"@timestamp\":%lld,\"msg\":\"no id %d\"}\n", 1717200000000LL + i * 1000LL, i);
        idx_batch out = {0};
        if (idx_ingest(w, body, n, &out, &e) == SEG_OK)
            acked += (long)out.accepted;
        idx_batch_free(&out);
        unsigned long k = b == 0 ? k1 : b == 1 ? k2 : 0;
        if (b == 0 && k == ULONG_MAX) { /* measuring: how many allocations the flush makes */
            seg_fault_inject(1ul << 40);
            idx_flush(w, &e);
            *fails = (int)((1ul << 40) - seg_fault_left());
            seg_fault_inject(0);
        } else if (b < 2 && k) {
            seg_fault_inject_run(k, b == 0 ? run1 : 1);
            int failed = idx_flush(w, &e) != SEG_OK;
            seg_fault_inject(0);
            *fails += failed;
            if (failed && count_snapshot(w) != (uint64_t)acked)
                (*invisible)++;
        }
    }
    if (idx_flush(w, &e) != SEG_OK) {
        idx_close(w, &e);
        return -1;
    }
    *unlisted = count_events(dir) != 150;
    if (idx_close(w, &e) != SEG_OK)
        return -1;
    uint64_t have = count_all(dir);
    return acked == 150 && have != UINT64_MAX ? (long)have : -1;
}

/* A builder of n varied events: text with repeated words (postings of
 * several blocks, positions), keywords (KEYCOL), numbers, booleans, ids. */
static seg_builder *writer_builder(int n)
{
    static const char *words[] = {"alpha", "beta", "gamma", "delta", "cache", "miss", "disk", "full"};
    seg_builder *b = seg_builder_new();
    for (int i = 0; b && i < n; i++) {
        char line[400], id[32];
        int len = snprintf(line, sizeof line,
                           "{\"_id\":\"w%d\",\"@timestamp\":%lld,\"level\":\"%s\",\"msg\":\"%s %s %s %d\","
                           "\"status\":%d,\"ms\":%d.%d,\"ok\":%s,\"tags\":[\"t%d\",\"%s\"]}",
                           i, 1717200000000LL + i * 7LL, i % 3 ? "info" : "error", words[i % 8], words[(i * 3) % 8],
                           words[(i * 5) % 7], i % 11, 200 + i % 4 * 100, i % 50, i % 10, i % 2 ? "true" : "false",
                           i % 5, words[i % 4]);
        int il = snprintf(id, sizeof id, "w%d", i);
        if (seg_builder_add(b, line, (size_t)len, (1717200000000LL + i * 7LL) * 1000000LL, id, (size_t)il, 1)) {
            seg_builder_free(b);
            return NULL;
        }
    }
    return b;
}

/* The segment writer alone, one thread, so the order of allocations is
 * the same each time: the k-th allocation of a write fails, for every k.
 * A write that reports success must leave a file that verifies; one that
 * fails must leave no file; and the same builder, written again without a
 * fault (what a server's retried flush does), must give a file equal byte
 * for byte to a clean write's. */
static void test_writer_faults(const char *base)
{
    char ref[4300], path[4300];
    snprintf(ref, sizeof ref, "%s/ref.seg", base);
    snprintf(path, sizeof path, "%s/w.seg", base);
    seg_tok *tok = seg_tok_new();
    seg_json *js = seg_json_new();
    seg_builder *b = writer_builder(700);
    seg_err e = {0};
    uint64_t bytes = 0;
    if (!ok(tok && js && b && seg_builder_write(b, tok, js, ref, &bytes, &e) == SEG_OK, "segment writer: a clean write"))
        return;
    size_t refn = 0, n = 0;
    uint8_t *refb = test_slurp(ref, &refn);
    seg_fault_inject(1ul << 40);
    seg_builder_write(b, tok, js, path, &bytes, &e);
    unsigned long allocs = (1ul << 40) - seg_fault_left();
    seg_fault_inject(0);
    unsigned long failed = 0, bad = 0, left = 0, differ = 0, again = 0;
    for (unsigned long k = 1; k <= allocs; k++) {
        unlink(path);
        seg_err fe = {0};
        seg_fault_inject(k);
        int rc = seg_builder_write(b, tok, js, path, &bytes, &fe);
        seg_fault_inject(0);
        if (rc != SEG_OK) {
            failed++;
            left += access(path, F_OK) == 0;
        } else if (seg_reader_verify(path, NULL, NULL) != 0 && !bad++) {
            tap_diag("allocation %lu of the write failed, the write succeeded, the file does not verify", k);
        }
        seg_err ae = {0};
        uint8_t *got = NULL;
        if (seg_builder_write(b, tok, js, path, &bytes, &ae) != SEG_OK)
            again++;
        else if (!(got = test_slurp(path, &n)) || !refb || n != refn || memcmp(got, refb, n)) {
            if (!differ++)
                tap_diag("allocation %lu failed, then a clean write of the same builder differs from the reference", k);
        }
        free(got);
    }
    tap_diag("segment writer: %lu allocations in a write of 700 events, %lu faults failed it", allocs, failed);
    ok(allocs > 50 && failed > allocs / 2, "segment writer: most faults fail the write (%lu of %lu)", failed, allocs);
    is_int((long)bad, 0, "segment writer: a write that reports success after a fault leaves a file that verifies");
    is_int((long)left, 0, "segment writer: a failed write leaves no file");
    is_int((long)again, 0, "segment writer: the builder writes again after a failed write");
    is_int((long)differ, 0, "segment writer: ... to the same bytes as a clean write");
    free(refb);
    seg_builder_free(b);
    seg_json_free(js);
    seg_tok_free(tok);
}

/* An aggregation answer without its "took_ms" (which varies). */
static void strip_took(char *s)
{
    char *p = strstr(s, "\"took_ms\":");
    if (!p)
        return;
    char *q = strchr(p, ',');
    if (q)
        memmove(p, q + 1, strlen(q + 1) + 1);
}

/* A search's answer as text (total, hits, cursor), in r's buffer. */
static void search_text(const srch_result *res, seg_buf *o)
{
    char n[64];
    snprintf(n, sizeof n, "%llu|%zu|", (unsigned long long)res->total, res->stats.segments_failed);
    seg_buf_put(o, n, strlen(n));
    for (size_t i = 0; i < res->nhits; i++) {
        seg_buf_put(o, res->hits[i].id, res->hits[i].id_len);
        seg_buf_put(o, res->hits[i].json, res->hits[i].json_len);
        seg_buf_put(o, "|", 1);
    }
    if (res->cursor)
        seg_buf_put(o, res->cursor, strlen(res->cursor));
    seg_buf_put(o, "", 1);
}

/* Searches of every query form, a time range and a second page: each
 * allocation fails in turn; the answer is an out-of-memory error or the
 * fault-free answer, byte for byte.  Returns the faults made; counts the
 * other outcomes. */
static unsigned long search_sweep(srch_index *ix, seg_tok *tok, unsigned long *nomem, unsigned long *misreported,
                                  unsigned long *wrong)
{
    static const char *queries[] = {"request", "\"request 17 done\"", "req*", "ms:[10 TO 50]",
                                    "level:error -service:api", "service:web AND ms:>20", "user.id:3 OR user.id:5", "*"};
    unsigned long faults = 0;
    for (size_t qi = 0; qi < sizeof queries / sizeof *queries * 2; qi++) {
        const char *qt = queries[qi % (sizeof queries / sizeof *queries)];
        int second = qi >= sizeof queries / sizeof *queries; /* the second page, in a time range */
        seg_err e = {0};
        srch_query *q = NULL;
        if (srch_query_parse(qt, strlen(qt), tok, &q, &e) != SEG_OK) {
            (*wrong)++;
            continue;
        }
        srch_request rq = {q, second, second, 1717200600000000000LL, 1717209000000000000LL, 7, NULL, 0, NULL, 0};
        srch_result res = {0};
        seg_buf ref = {0};
        char *cursor = NULL;
        if (second) { /* the first page's cursor */
            if (srch_search(ix, &rq, &res, &e) == SEG_OK && res.cursor)
                cursor = strdup(res.cursor);
            srch_result_free(&res);
            rq.cursor = cursor;
        }
        if (srch_search(ix, &rq, &res, &e) != SEG_OK) {
            tap_diag("search '%s' fails without a fault: %s", qt, e.msg);
            (*wrong)++;
        } else {
            search_text(&res, &ref);
            srch_result_free(&res);
            seg_fault_inject(1ul << 40);
            if (srch_search(ix, &rq, &res, &e) == SEG_OK)
                srch_result_free(&res);
            unsigned long allocs = (1ul << 40) - seg_fault_left();
            seg_fault_inject(0);
            for (unsigned long k = 1; k <= allocs; k++) {
                seg_err fe = {0};
                memset(&res, 0, sizeof res);
                seg_fault_inject(k);
                int rc = srch_search(ix, &rq, &res, &fe);
                seg_fault_inject(0);
                faults++;
                if (rc == SEG_ENOMEM) {
                    (*nomem)++;
                    continue;
                }
                if (rc != SEG_OK) {
                    if (!(*misreported)++)
                        tap_diag("search '%s', allocation %lu failed: error %d (%s)", qt, k, rc, fe.msg);
                    continue;
                }
                seg_buf got = {0};
                search_text(&res, &got);
                srch_result_free(&res);
                if ((got.oom || ref.oom || strcmp((char *)got.p, (char *)ref.p)) && (*wrong)++ < 5)
                    tap_diag("search '%s' (page %d), allocation %lu failed, the answer differs: %.80s vs %.80s (%s)", qt, second + 1, k, (char *)got.p, (char *)ref.p, res.stats.failure);
                seg_buf_free(&got);
            }
        }
        seg_buf_free(&ref);
        free(cursor);
        srch_query_free(q);
    }
    return faults;
}

/* Aggregations (the searcher, then the api layer's answer writing): each
 * allocation of a request fails in turn.  jansson's own allocations (the
 * request's parse) are left alone: routed through the fault hook, jansson
 * 2.14 asserts in its lexer (load.c lex_scan_string) when an append to
 * its token buffer fails.  The answer is then either an
 * out-of-memory error, never a "bad request" or another error, or exactly
 * the answer without a fault. */
static void test_agg_faults(const char *base)
{
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/agg", base);
    mkdir(dir, 0755);
    idx_opts o;
    idx_opts_default(&o);
    o.flush_events = 150; /* several segments */
    seg_err e = {0};
    idx_writer *w = NULL;
    int built = idx_open(dir, "m", &o, &w, &e) == SEG_OK;
    for (int i = 0; built && i < 400; i++) {
        char line[300];
        int len = snprintf(line, sizeof line,
                           "{\"@timestamp\":%lld,\"service\":\"%s\",\"level\":\"%s\",\"ms\":%d.%d,"
                           "\"user\":{\"id\":%d},\"msg\":\"request %d done\"}",
                           1717200000000LL + (long long)i * 27000LL, i % 3 ? "api" : i % 2 ? "auth" : "web",
                           i % 7 ? "info" : "error", i % 97, i % 10, i % 13, i);
        built = idx_add_line(w, line, (size_t)len, i + 1, NULL, NULL, &e) == SEG_OK;
    }
    built = idx_close(w, &e) == SEG_OK && built;
    srch_index *ix = NULL;
    seg_tok *tok = seg_tok_new();
    if (!ok(built && tok && srch_index_open(dir, "m", NULL, &ix, &e) == SEG_OK, "aggregations: an index of 400 events")) {
        seg_tok_free(tok);
        return;
    }
    static const char *bodies[] = {
        "{\"aggs\":{\"h\":{\"date_histogram\":{\"interval\":\"10m\"},\"aggs\":{\"s\":{\"stats\":{\"field\":\"ms\"}}}}}}",
        "{\"q\":\"level:error OR service:web\",\"aggs\":{\"t\":{\"terms\":{\"field\":\"service\",\"size\":2},"
        "\"aggs\":{\"p\":{\"percentiles\":{\"field\":\"ms\",\"percents\":[50,95]}}}}}}",
        "{\"start\":\"2024-06-01T00:30:00Z\",\"end\":\"2024-06-01T02:00:00Z\",\"aggs\":{\"u\":{\"terms\":{\"field\":"
        "\"user.id\"}},\"l\":{\"terms\":{\"field\":\"level\"},\"aggs\":{\"h\":{\"date_histogram\":{\"interval\":"
        "\"30m\"}}}}}}",
    };
    unsigned long faults = 0, nomem = 0, misreported = 0, wrong = 0;
    for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
        seg_buf ref = {0};
        seg_err re = {0};
        if (api_aggregate(ix, tok, bodies[b], strlen(bodies[b]), &ref, NULL, &re) != SEG_OK) {
            tap_diag("aggregation %zu fails without a fault: %s", b, re.msg);
            wrong++;
            seg_buf_free(&ref);
            continue;
        }
        seg_buf_put(&ref, "", 1);
        strip_took((char *)ref.p);
        seg_fault_inject(1ul << 40);
        seg_buf scratch = {0};
        api_aggregate(ix, tok, bodies[b], strlen(bodies[b]), &scratch, NULL, &re);
        unsigned long allocs = (1ul << 40) - seg_fault_left();
        seg_fault_inject(0);
        seg_buf_free(&scratch);
        for (unsigned long k = 1; k <= allocs; k++) {
            seg_buf out = {0};
            seg_err fe = {0};
            seg_fault_inject(k);
            int rc = api_aggregate(ix, tok, bodies[b], strlen(bodies[b]), &out, NULL, &fe);
            seg_fault_inject(0);
            faults++;
            if (rc == SEG_ENOMEM) {
                nomem++;
            } else if (rc != SEG_OK) {
                if (!misreported++)
                    tap_diag("aggregation %zu, allocation %lu failed: error %d (%s), not out of memory", b, k, rc,
                             fe.msg);
            } else {
                seg_buf_put(&out, "", 1);
                if (!out.oom)
                    strip_took((char *)out.p);
                if ((out.oom || strcmp((char *)out.p, (char *)ref.p)) && !wrong++)
                    tap_diag("aggregation %zu, allocation %lu failed, the answer differs: %s", b, k,
                             out.oom ? "(oom)" : (char *)out.p);
            }
            seg_buf_free(&out);
        }
        seg_buf_free(&ref);
    }
    tap_diag("aggregations: %lu faults, %lu answered out of memory", faults, nomem);
    unsigned long snomem = 0, smis = 0, swrong = 0;
    unsigned long sfaults = search_sweep(ix, tok, &snomem, &smis, &swrong);
    tap_diag("searches: %lu faults, %lu answered out of memory", sfaults, snomem);
    ok(sfaults > 300 && snomem > sfaults / 2, "searches: most faults fail the search (%lu of %lu)", snomem, sfaults);
    is_int((long)smis, 0, "searches: a failed allocation is reported as out of memory");
    is_int((long)swrong, 0, "searches: an answer given despite a fault is the right one, byte for byte");
    ok(faults > 300 && nomem > faults / 2, "aggregations: most faults fail the request (%lu of %lu)", nomem, faults);
    is_int((long)misreported, 0, "aggregations: a failed allocation is reported as out of memory (not a bad request)");
    is_int((long)wrong, 0, "aggregations: an answer given despite a fault is the right one");
    srch_index_close(ix);
    seg_tok_free(tok);
}

int main(void)
{
    alarm(900); /* a fault that leaves a loop spinning fails the test, not CI */
    char base[] = "/tmp/logdex-t-oom-XXXXXX";
    if (!ok(mkdtemp(base) != NULL, "temp dir"))
        return tap_done();
    test_writer_faults(base);
    test_agg_faults(base);
    /* without a fault: no error, every event stored */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/clean", base);
    mkdir(dir, 0755);
    seg_fault_inject(1ul << 40);
    is_int(scenario(dir), 0, "the scenario without a fault reports no error");
    unsigned long allocs = (1ul << 40) - seg_fault_left();
    seg_fault_inject(0);
    tap_diag("the scenario makes %lu allocations", allocs);
    unsigned long runs = 0, fired = 0, unreported = 0, broken = 0, reopen = 0, silent = 0;
    unsigned long n = 1;
    for (;; n = n < 400 ? n + 1 : n + n / 20) {
        snprintf(dir, sizeof dir, "%s/f%lu", base, n);
        mkdir(dir, 0755);
        seg_fault_inject(n);
        int errors = scenario(dir);
        int hit = seg_fault_left() == 0;
        seg_fault_inject(0);
        runs++;
        if (!hit) /* the scenario made fewer than n allocations: done */
            break;
        fired++;
        /* the index left behind: every listed segment verifies */
        char ix[4300];
        snprintf(ix, sizeof ix, "%s/m", dir);
        char man[4400];
        snprintf(man, sizeof man, "%s/manifest", ix);
        if (access(man, F_OK) == 0 && test_verify_index(ix) != 0)
            broken++;
        /* the index opens again for writing and searching */
        idx_opts o;
        idx_opts_default(&o);
        seg_err e = {0};
        idx_writer *w = NULL;
        srch_index *sx = NULL;
        if (access(ix, F_OK) == 0) {
            if (idx_open(dir, "m", &o, &w, &e) != SEG_OK || idx_close(w, &e) != SEG_OK ||
                srch_index_open(dir, "m", NULL, &sx, &e) != SEG_OK) {
                if (!reopen++)
                    tap_diag("fault at allocation %lu: the index does not open again: %s", n, e.msg);
            }
            srch_index_close(sx);
        }
        if (errors == 0) {
            /* no step reported the fault: then nothing may be missing */
            unreported++;
            uint64_t have = count_events(dir);
            if (have != 280 && !silent++)
                tap_diag("fault at allocation %lu reported no error, yet the index holds %llu events of 280", n,
                         (unsigned long long)(have == UINT64_MAX ? 0 : have));
        }
        test_rm_rf(dir);
    }
    ok(fired > 100, "%lu runs, %lu with a failed allocation (the scenario makes about %lu)", runs, fired, n);
    is_int((long)broken, 0, "every segment a manifest lists verifies after each fault");
    is_int((long)reopen, 0, "the index opens again after each fault");
    is_int((long)silent, 0, "a fault no step reported lost no event");

    /* server mode: an acknowledged batch survives any later fault */
    snprintf(dir, sizeof dir, "%s/sclean", base);
    mkdir(dir, 0755);
    uint64_t acked = 0;
    seg_fault_inject(1ul << 40);
    int serr = scenario_server(dir, &acked);
    allocs = (1ul << 40) - seg_fault_left();
    seg_fault_inject(0);
    ok(serr == 0 && acked == 300 && count_all(dir) == 300, "server scenario without a fault: 300 events (%lu allocations)",
       allocs);
    unsigned long sfired = 0, lost = 0, unopened = 0, max_at = 0;
    int max_errors = 0;
    for (n = 1;; n = n < 300 ? n + 1 : n + n / 20) {
        snprintf(dir, sizeof dir, "%s/s%lu", base, n);
        mkdir(dir, 0755);
        seg_fault_inject(n);
        int errors = scenario_server(dir, &acked);
        int hit = seg_fault_left() == 0;
        seg_fault_inject(0);
        if (!hit)
            break;
        sfired++;
        if (errors > max_errors) {
            max_errors = errors;
            max_at = n;
        }
        char ix[4300], man[4400];
        snprintf(ix, sizeof ix, "%s/m", dir);
        snprintf(man, sizeof man, "%s/manifest", ix);
        if (access(ix, F_OK) == 0) {
            uint64_t have = count_all(dir);
            if (have == UINT64_MAX) {
                if (!unopened++)
                    tap_diag("server, fault at allocation %lu: the index does not open again", n);
            } else if (have < acked || (errors == 0 && have != 300)) {
                if (!lost++)
                    tap_diag("server, fault at allocation %lu: %llu events acknowledged, %llu found (%d errors)", n,
                             (unsigned long long)acked, (unsigned long long)have, errors);
            }
            if (access(man, F_OK) == 0 && test_verify_index(ix) != 0 && !broken++) {
                /* kept for a look: the base directory is removed at the end */
                char cmd[9000];
                snprintf(cmd, sizeof cmd, "rm -rf '%s-broken' && cp -r '%s' '%s-broken'", base, ix, base);
                tap_diag("server, fault at allocation %lu: a listed segment does not verify (index copied to "
                         "%s-broken)",
                         n, base);
                if (system(cmd) != 0)
                    tap_diag("could not copy it");
            }
        }
        test_rm_rf(dir);
    }
    /* a flush that fails keeps its events (they were acknowledged), and
     * so does its retry when that fails too */
    unsigned long failed = 0, kept = 0, run_failed = 0, run_kept = 0, twice = 0, twice_kept = 0, invisible = 0,
                  unlisted = 0;
    /* the first 60 allocations of the flush, and its last 40 (the join:
     * the manifest saved, the log dropped) */
    int flush_allocs = 0, unused = 0;
    snprintf(dir, sizeof dir, "%s/ffm", base);
    mkdir(dir, 0755);
    failed_flushes(dir, ULONG_MAX, 1, 0, &flush_allocs, &unused, &unused);
    test_rm_rf(dir);
    tap_diag("a flush of 50 events makes %d allocations", flush_allocs);
    for (unsigned long k = 1; k <= 60 || (k >= (unsigned long)flush_allocs - 40 && k <= (unsigned long)flush_allocs);
         k = k == 60 && flush_allocs > 100 ? (unsigned long)flush_allocs - 40 : k + 1) {
        for (unsigned long k2 = 0; k2 <= (k % 6 == 1 ? 40 : 0); k2 += k2 < 10 ? 1 : 5) {
            /* k2 0: once a single failure, once a run of 20 */
            for (unsigned long run = 1; run <= (k2 ? 1 : 20); run += 19) {
            snprintf(dir, sizeof dir, "%s/ff%lu-%lu-%lu", base, k, k2, run);
            mkdir(dir, 0755);
            int fails = 0, inv = 0, unl = 0;
            long have = failed_flushes(dir, k, run, k2, &fails, &inv, &unl);
            invisible += inv;
            unlisted += fails && unl;
            if (fails == 1 && !k2 && run == 1) {
                failed++;
                kept += have == 150;
            }
            if (fails == 1 && run > 1) {
                run_failed++;
                run_kept += have == 150;
            }
            if (fails == 2) {
                twice++;
                twice_kept += have == 150;
            }
            if (fails && have != 150)
                tap_diag("flush allocations %lu (%lu in a row) then %lu failed (%d flushes): %ld of 150 "
                         "acknowledged events found",
                         k, run, k2, fails, have);
            test_rm_rf(dir);
            }
        }
    }
    ok(failed > 20 && kept == failed, "a failed flush loses nothing once a later flush succeeds (%lu of %lu)", kept,
       failed);
    ok(run_failed > 20 && run_kept == run_failed,
       "a flush that fails with 20 allocations in a row failing loses nothing (%lu of %lu)", run_kept, run_failed);
    ok(twice > 20 && twice_kept == twice,
       "a failed flush whose retry fails too loses nothing either (%lu of %lu; no event twice after the log replays)",
       twice_kept, twice);
    is_int((long)invisible, 0, "after each failed flush a search still finds every acknowledged event");
    is_int((long)unlisted, 0, "after a failed flush, the next successful one lists every event (no log replay needed)");
    ok(sfired > 100, "server: %lu faults", sfired);
    /* one failed allocation fails the step it hit (and a flush it spoils
     * may fail again at close), never every step after it: the writer
     * recovers (a flush thread that lost its tokenizer makes it again) */
    ok(max_errors <= 3, "server: one fault fails at most 3 of the 20 steps (%d at allocation %lu)", max_errors,
       max_at);
    is_int((long)lost, 0, "server: every acknowledged event is there after each fault (the log replayed)");
    is_int((long)unopened, 0, "server: the index opens again after each fault");
    is_int((long)broken, 0, "server: every listed segment verifies");
    tap_diag("%lu of %lu faults reported no error (a cache or an optional structure given up)", unreported, fired);
    test_rm_rf(base);
    return tap_done();
}
