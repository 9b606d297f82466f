/*
 * t_corrupt.c -- corrupt segments are detected, named, and never crash.
 *
 * 1. A byte flipped in each section (and in the header and directory) makes
 *    `verify` report the file, and a search over the index fails with an
 *    error naming it instead of answering wrongly.
 * 2. Every single-byte flip anywhere in the file is detected (every byte is
 *    under a checksum).
 * 3. Hostile bytes behind valid checksums: random mutations re-sealed with
 *    correct checksums must give errors or answers, never a crash or an
 *    out-of-bounds read (run under ASan by .ci/run).
 */
#include "indexer/idx.h"
#include "searcher/srch.h"
#include "tests/tap.h"
#include "tests/reseal.h"
#include "tests/testdir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rs = 0x243F6A8885A308D3ULL;
static unsigned rnd(unsigned n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return n ? (unsigned)(rs % n) : 0;
}

static void spit(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static int reported;
static char last_file[4096];
static void report(void *ud, const char *file, const char *problem)
{
    (void)ud;
    (void)problem;
    reported++;
    snprintf(last_file, sizeof last_file, "%s", file);
}

static const char *queries[] = {"*", "error", "\"disk full\"", "msg:err*", "status:500", "status:[100 TO 300]",
                                "user:*", "NOT error", "ok:true", "latency:>5"};

/* Runs every query; returns the number that failed with an error. */
static int search_all(const char *data, seg_tok *tok, srch_pool *pool, int *crashed_wrong)
{
    srch_index *ix;
    seg_err e = {0};
    int errors = 0;
    if (srch_index_open(data, "c", pool, &ix, &e))
        return (int)(sizeof queries / sizeof *queries);
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        srch_query *q;
        seg_err qe = {0};
        if (srch_query_parse(queries[i], strlen(queries[i]), tok, &q, &qe))
            continue;
        srch_request rq = {q, 0, 0, 0, 0, 50, NULL, 0, NULL, 0};
        srch_result res;
        seg_err se = {0};
        if (srch_search(ix, &rq, &res, &se) != SEG_OK) {
            errors++;
            if (se.code != SEG_ECORRUPT && se.code != SEG_ENOMEM && se.code != SEG_ELIMIT)
                (*crashed_wrong)++;
        } else {
            srch_result_free(&res);
        }
        srch_query_free(q);
    }
    srch_index_close(ix);
    return errors;
}

/* Two segments, one corrupt in `kind`: the search answers from the
 * healthy one and says which file it left out. */
static void partial_answers(const char *data, seg_tok *tok, srch_pool *pool)
{
    seg_err e = {0};
    idx_writer *w;
    ok(idx_open(data, "two", NULL, &w, &e) == SEG_OK, "writer (two buckets)");
    for (int i = 0; i < 400; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"@timestamp\":\"2024-05-01T%02d:%02d:00Z\",\"msg\":\"event %d of hour %d\"}",
                 10 + i % 2, i / 2 % 60, i, 10 + i % 2);
        idx_add_line(w, line, strlen(line), i + 1, NULL, NULL, &e);
    }
    ok(idx_close(w, &e) == SEG_OK, "two segments written");
    static const uint32_t kinds[] = {3, 6}; /* TERMDICT: the matching fails; STORE: the fetch does */
    static const char *const kn[] = {"TERMDICT", "STORE"};
    for (int k = 0; k < 2; k++) {
        seg_manifest m;
        int exists;
        char dir[4200], p[4400];
        snprintf(dir, sizeof dir, "%s/two", data);
        if (!ok(seg_manifest_load(dir, &m, &exists, &e) == SEG_OK && m.n == 2, "manifest lists 2"))
            return;
        snprintf(p, sizeof p, "%s/%s", dir, m.e[1].name);
        uint32_t healthy = m.e[0].docs;
        seg_manifest_free(&m);
        size_t n = 0;
        uint8_t *b = test_slurp(p, &n), *orig = malloc(n);
        memcpy(orig, b, n);
        uint64_t diroff = seg_rd_u64(b + 40);
        uint32_t nsec = seg_rd_u32(b + 20);
        for (uint32_t i = 0; i < nsec; i++) {
            const uint8_t *de = b + diroff + (size_t)i * 32;
            if (seg_rd_u32(de) == kinds[k])
                b[seg_rd_u64(de + 8) + seg_rd_u64(de + 16) / 2] ^= 0xff;
        }
        spit(p, b, n);
        srch_index *ix;
        ok(srch_index_open(data, "two", pool, &ix, &e) == SEG_OK, "open");
        srch_query *q;
        srch_query_parse("event", 5, tok, &q, &e);
        srch_request rq = {q, 0, 0, 0, 0, 500, NULL, 0, NULL, 0};
        srch_result res;
        seg_err se = {0};
        int rc = srch_search(ix, &rq, &res, &se);
        ok(rc == SEG_OK, "%s corrupt in one of two segments: the search still answers (%s)", kn[k], se.msg);
        if (rc == SEG_OK) {
            is_int(res.stats.segments_failed, 1, "one segment left out");
            ok(strstr(res.stats.failure, p) != NULL, "the failure names the file (%s)", res.stats.failure);
            ok(res.total == healthy && res.nhits == healthy, "the healthy segment's %u events answer (%llu, %zu)",
               healthy, (unsigned long long)res.total, res.nhits);
            srch_result_free(&res);
        }
        if (k == 0) {
            /* an aggregation leaves the segment out too (its TERMDICT
             * fails when the query is matched) */
            srch_agg ag;
            memset(&ag, 0, sizeof ag);
            ag.type = SRCH_AGG_CARDINALITY;
            ag.name = "c";
            ag.field = "msg";
            srch_agg_result *ar = NULL;
            uint64_t total = 0;
            srch_stats st;
            seg_err ae = {0};
            int arc = srch_aggregate(ix, &rq, &ag, 1, &ar, &total, &st, &ae);
            ok(arc == SEG_OK && st.segments_failed == 1 && total == healthy && strstr(st.failure, p),
               "an aggregation answers from the healthy segment and names the corrupt one (%s)",
               arc ? ae.msg : st.failure);
            if (arc == SEG_OK)
                srch_agg_results_free(ar, 1);
        }
        srch_query_free(q);
        srch_index_close(ix);
        spit(p, orig, n);
        free(b);
        free(orig);
    }
}

int main(void)
{
    char data[] = "/tmp/logdex-t-corrupt-XXXXXX";
    ok(mkdtemp(data) != NULL, "temp dir");
    seg_err e = {0};
    idx_writer *w;
    ok(idx_open(data, "c", NULL, &w, &e) == SEG_OK, "writer");
    static const char *const msgs[] = {"disk full on node", "error reading block", "user login ok", "cache miss"};
    /* enough events (~330 KiB) for the store to get its dictionary */
    for (int i = 0; i < 2000; i++) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"@timestamp\":\"2024-05-01T10:%02d:%02d.%03dZ\",\"_id\":\"e%d\",\"msg\":\"%s %d\",\"status\":%d,"
                 "\"latency\":%d.5,\"ok\":%s,\"user\":\"u%d\"}",
                 i / 60 % 60, i % 60, i % 1000, i, msgs[i % 4], i, i % 3 ? 200 : 500, i % 17, i % 2 ? "true" : "false",
                 i % 9);
        idx_add_line(w, line, strlen(line), i + 1, NULL, NULL, &e);
    }
    ok(idx_close(w, &e) == SEG_OK, "one segment written");
    char dir[4200], segp[4600] = "";
    snprintf(dir, sizeof dir, "%s/c", data);
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".seg"))
            snprintf(segp, sizeof segp, "%s/%s", dir, de->d_name);
    closedir(d);
    size_t n = 0;
    uint8_t *orig = test_slurp(segp, &n);
    ok(orig && n > 1000, "segment read back (%zu bytes)", n);
    reported = 0;
    is_int(seg_reader_verify(segp, report, NULL), 0, "the sound segment verifies");

    seg_tok *tok = seg_tok_new();
    srch_pool *pool = srch_pool_new(2);
    int wrong = 0;
    is_int(search_all(data, tok, pool, &wrong), 0, "the sound segment answers every query");

    /* 1. one flip in the header, the directory and each section */
    uint64_t diroff = seg_rd_u64(orig + 40);
    uint32_t nsec = seg_rd_u32(orig + 20);
    size_t spots[64];
    const char *names[64];
    size_t ns = 0;
    spots[ns] = 20;
    names[ns++] = "header";
    spots[ns] = (size_t)diroff + 5;
    names[ns++] = "directory";
    static const char *const kinds[] = {"?",     "FIELDS", "TIMES", "TERMDICT", "POSTINGS",
                                        "NUMCOL", "STORE", "IDS",   "KEYCOL",   "STOREDICT", "KEYCOUNT"};
    int has_dict = 0;
    for (uint32_t i = 0; i < nsec && ns < 64; i++) {
        const uint8_t *de2 = orig + diroff + (size_t)i * 32;
        uint32_t kind = seg_rd_u32(de2);
        uint64_t off = seg_rd_u64(de2 + 8), len = seg_rd_u64(de2 + 16);
        if (!len)
            continue;
        spots[ns] = (size_t)(off + len / 2);
        names[ns++] = kind < sizeof kinds / sizeof *kinds ? kinds[kind] : "?";
        has_dict |= kind == 9;
    }
    ok(has_dict, "the segment has a store dictionary (flipped below)");
    uint8_t *b = malloc(n);
    for (size_t s = 0; s < ns; s++) {
        memcpy(b, orig, n);
        b[spots[s]] ^= 0x5a;
        spit(segp, b, n);
        reported = 0;
        last_file[0] = 0;
        long k = seg_reader_verify(segp, report, NULL);
        ok(k > 0 && !strcmp(last_file, segp), "flip in %s: verify names the file", names[s]);
        wrong = 0;
        int errs = search_all(data, tok, pool, &wrong);
        ok(wrong == 0, "flip in %s: searches fail only with 'corrupt' errors (%d failed)", names[s], errs);
    }

    /* 2. every byte position, one flip each (sampled stride for speed) */
    long undetected = 0, tried = 0;
    for (size_t pos = 0; pos < n; pos += 1 + pos % (n / 2000 + 1)) {
        memcpy(b, orig, n);
        b[pos] ^= (uint8_t)(1u << (pos % 8));
        spit(segp, b, n);
        tried++;
        if (seg_reader_verify(segp, NULL, NULL) == 0)
            undetected++;
    }
    is_int(undetected, 0, "every single-bit flip is detected by verify");
    tap_diag("%ld positions flipped", tried);

    /* truncations */
    long trunc_missed = 0;
    for (size_t cut = 0; cut < n; cut += n / 40 + 1) {
        spit(segp, orig, cut);
        if (seg_reader_verify(segp, NULL, NULL) == 0)
            trunc_missed++;
    }
    is_int(trunc_missed, 0, "truncated files are detected");

    /* 3. hostile bytes behind valid checksums */
    long hostile_ok = 0, hostile_err = 0;
    for (int round = 0; round < 400; round++) {
        memcpy(b, orig, n);
        int m = 1 + (int)rnd(4);
        for (int k = 0; k < m; k++) {
            size_t pos = 64 + rnd((unsigned)(n - 64));
            if (rnd(2))
                b[pos] = (uint8_t)rnd(256);
            else
                b[pos] ^= (uint8_t)(1u << rnd(8));
        }
        test_reseal(b, n);
        spit(segp, b, n);
        seg_reader_verify(segp, NULL, NULL);
        wrong = 0;
        int errs = search_all(data, tok, pool, &wrong);
        if (errs)
            hostile_err++;
        else
            hostile_ok++;
    }
    ok(1, "400 re-sealed hostile segments: no crash (%ld answered, %ld refused)", hostile_ok, hostile_err);

    /* a header claiming far more events than the file holds (checksums
     * right): refused at open, before anything sizes arrays by it (the
     * segment fuzzer found an aggregation asking for 14 GB) */
    memcpy(b, orig, n);
    seg_wr_u32(b + 16, 0x7fffffffu);
    test_reseal(b, n);
    spit(segp, b, n);
    seg_reader *big = NULL;
    seg_err be = {0};
    int brc = seg_reader_open(segp, &big, &be);
    ok(brc != SEG_OK && strstr(be.msg, "more than the time column"), "a header claiming 2^31 events is refused (%s)",
       be.msg);
    if (big)
        seg_reader_close(big);

    /* a file that is not a segment at all */
    spit(segp, (const uint8_t *)"hello, not a segment at all, just some bytes padding the header out....", 72);
    reported = 0;
    ok(seg_reader_verify(segp, report, NULL) > 0, "a non-segment file is reported");

    spit(segp, orig, n);
    free(b);
    free(orig);
    partial_answers(data, tok, pool);
    srch_pool_free(pool);
    seg_tok_free(tok);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd))
        tap_diag("cleanup failed");
    return tap_done();
}
