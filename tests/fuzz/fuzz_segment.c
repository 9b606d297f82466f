/* fuzz_segment.c -- the segment reader on hostile bytes.  The input is
 * XORed over a valid segment built at start-up and the checksums are
 * recomputed (so the mutations reach the structures behind them); then
 * every reading path runs.  Errors are fine; crashes and out-of-bounds
 * reads (ASan) are not. */
#include "searcher/srch.h"
#include "tests/reseal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static seg_buf base;
static seg_tok *tok;

/* A segment as files have it (zstd store with its dictionary, keyword
 * counts), of enough events for the dictionary: written to a temporary
 * file and read back. */
static void build_base(void)
{
    seg_builder *b = seg_builder_new();
    seg_json *js = seg_json_new();
    tok = seg_tok_new();
    char line[512], id[32];
    for (int i = 0; i < 1500; i++) {
        /* big: a column spanning more than 2^32 (zigzag deltas); trace:
         * hex tokens (packed in the dictionary) */
        snprintf(line, sizeof line,
                 "{\"msg\":\"error %d disk full on node-%d while writing block %d\",\"n\":%d,\"r\":%d.5,"
                 "\"svc\":\"s%d\",\"ok\":%s,\"tags\":[\"a\",\"b%d\"],\"host\":{\"name\":\"web-%d\"},"
                 "\"big\":%lld,\"trace\":\"%08x%07x\"}",
                 i, i % 17, i * 7, i, i, i % 5, i % 2 ? "true" : "false", i % 3, i % 9,
                 (long long)(i % 7) * 10000000007LL - 30000000000LL, (unsigned)i * 2654435761u, (unsigned)i);
        snprintf(id, sizeof id, "id%d", i);
        seg_builder_add(b, line, strlen(line), 1700000000000000000LL + (int64_t)i * 1000000000LL, id, strlen(id), i % 2);
    }
    char path[] = "/tmp/logdex-fuzz-seg-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    seg_err e = {0};
    if (fd >= 0 && seg_builder_write(b, tok, js, path, NULL, &e) == SEG_OK) {
        FILE *f = fopen(path, "rb");
        char chunk[65536];
        size_t k;
        while (f && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
            seg_buf_put(&base, chunk, k);
        if (f)
            fclose(f);
    }
    unlink(path);
    seg_builder_free(b);
    seg_json_free(js);
    if (!base.n) {
        fprintf(stderr, "fuzz_segment: cannot build the base segment: %s\n", e.msg);
        abort();
    }
}

static void noop_num(void *ud, uint32_t doc, double v)
{
    (void)ud;
    (void)doc;
    (void)v;
}

static void noop_kw(void *ud, uint32_t doc, uint32_t ord)
{
    (void)ud;
    (void)doc;
    (void)ord;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (!base.n)
        build_base();
    uint8_t *p = seg_malloc(base.n);
    memcpy(p, base.p, base.n);
    /* the input: (3-byte offset, xor byte) quads */
    for (size_t i = 0; i + 3 < n; i += 4) {
        size_t at = ((size_t)d[i] << 16 | (size_t)d[i + 1] << 8 | d[i + 2]) % base.n;
        p[at] ^= d[i + 3];
    }
    if (n % 2)
        test_reseal(p, base.n);
    seg_reader *r;
    seg_err e = {0};
    if (seg_reader_open_mem("(fuzz)", p, base.n, &r, &e))
        return 0;
    seg_dict_iter *it;
    if (seg_dict_iter_open(r, NULL, 0, &it, &e) == SEG_OK) {
        seg_term t;
        int k = 0;
        while (k++ < 2000 && seg_dict_iter_next(it, &t, &e) == 1) {
            seg_post *ps;
            if (seg_post_open(r, &t, &ps, &e))
                continue;
            for (uint32_t doc = seg_post_doc(ps); doc != SEG_DOC_END; doc = seg_post_next(ps)) {
                const uint32_t *pos;
                uint32_t np;
                seg_post_positions(ps, &pos, &np);
            }
            seg_post_free(ps);
        }
        seg_dict_iter_free(it);
    }
    for (uint32_t f = 0; f < seg_reader_nfields(r); f++) {
        seg_err fe = {0};
        seg_reader_num_scan(r, f, -INFINITY, 1, INFINITY, 1, noop_num, NULL, &fe);
        seg_keycol kc;
        if (seg_reader_keycol(r, f, &kc, &fe) == 1) {
            seg_reader_keycol_scan(r, &kc, noop_kw, NULL, &fe);
            const uint8_t *cnts;
            seg_reader_keycol_counts(r, f, &kc, &cnts, &fe);
        }
    }
    seg_store_cur *sc = seg_store_cur_new();
    for (uint32_t doc = 0; doc < seg_reader_ndocs(r) && doc < 400; doc++) {
        const char *id, *js;
        size_t il, jl;
        seg_err de = {0};
        int64_t t;
        seg_reader_time(r, doc, &t, &de);
        if (seg_reader_doc(r, sc, doc, &id, &il, &js, &jl, &de))
            break;
    }
    seg_store_cur_free(sc);
    /* and a few searches through the whole searcher */
    seg_set *set = seg_set_new(&r, 1);
    srch_index *ix;
    if (set && srch_index_from_set(set, NULL, &ix, &e) == SEG_OK) {
        static const char *const qs[] = {"error", "\"disk full\"", "n:[10 TO 50]", "svc:s1*", "ok:true -tags:b1", "*"};
        for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
            srch_query *q;
            seg_err qe = {0};
            if (srch_query_parse(qs[i], strlen(qs[i]), tok, &q, &qe))
                continue;
            srch_request rq = {q, 0, 0, 0, 0, 20, NULL, 0, NULL, 0};
            srch_result res;
            if (srch_search(ix, &rq, &res, &qe) == SEG_OK)
                srch_result_free(&res);
            srch_query_free(q);
        }
        /* aggregations over `*`: time seeks, keyword counts, columns */
        srch_query *all;
        seg_err ae = {0};
        if (srch_query_parse("*", 1, tok, &all, &ae) == SEG_OK) {
            srch_agg aggs[4] = {
                {SRCH_AGG_DATE_HISTOGRAM, "h", NULL, 60000000000LL, 0, {0}, 0, NULL, 0},
                {SRCH_AGG_TERMS, "t", "svc", 0, 10, {0}, 0, NULL, 0},
                {SRCH_AGG_STATS, "s", "r", 0, 0, {0}, 0, NULL, 0},
                {SRCH_AGG_TERMS, "u", "host.name", 0, 10, {0}, 0, NULL, 0},
            };
            srch_request rq = {all, 0, 0, 0, 0, 0, NULL, 1, NULL, 0};
            srch_agg_result *res;
            uint64_t total;
            for (size_t k = 1; k <= 4; k++) /* the histogram alone, then with the others */
                if (srch_aggregate(ix, &rq, aggs, k, &res, &total, NULL, &ae) == SEG_OK)
                    srch_agg_results_free(res, k);
            srch_query_free(all);
        }
        srch_index_close(ix);
    }
    seg_set_unref(set);
    seg_reader_unref(r);
    return 0;
}
