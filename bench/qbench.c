/*
 * qbench.c -- runs a file of queries against an index in one process and
 * prints median and p95 latency (process start excluded, warm cache).
 *
 *   bench/qbench --data DIR [--index NAME] [--runs N] [--threads N] QUERYFILE
 *
 * QUERYFILE lines: NAME<TAB>MODE<TAB>QUERY[<TAB>START<TAB>END]
 *   MODE is "count" (exact total only), "top100" (total and the newest
 *   100 hits, with their stored events), or "agg" (QUERY is an aggregation
 *   request body, as for `logdex agg`).  START/END as for `logdex search`.
 * Output: one JSON object a line per query:
 *   {"name":..,"median_ms":..,"p95_ms":..,"total":..,"runs":..}
 */
#define _GNU_SOURCE
#include "api/api.h"
#include "searcher/srch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *data = NULL, *index = "default", *file = NULL;
    int runs = 9, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--index") && i + 1 < argc)
            index = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block-cache-mb") && i + 1 < argc)
            seg_block_cache_set((size_t)atol(argv[++i]) << 20); /* 0: every fetch decodes its block */
        else
            file = argv[i];
    }
    if (!data || !file || runs < 1) {
        fprintf(stderr, "usage: qbench --data DIR [--index NAME] [--runs N] [--threads N] [--block-cache-mb N] QUERYFILE\n");
        return 2;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 1;
    }
    seg_tok *tok = seg_tok_new();
    srch_pool *pool = srch_pool_new(threads);
    srch_index *ix;
    seg_err e = {0};
    if (srch_index_open(data, index, pool, &ix, &e)) {
        fprintf(stderr, "qbench: %s\n", e.msg);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    double *t = calloc((size_t)runs, sizeof *t);
    int64_t now = seg_time_now();
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *fields[5] = {0};
        int nf = 0;
        for (char *p = line; nf < 5; nf++) {
            fields[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = 0;
            p = tab + 1;
        }
        if (nf < 3) {
            fprintf(stderr, "qbench: bad line (need NAME, MODE, QUERY)\n");
            continue;
        }
        if (!strcmp(fields[1], "agg")) {
            for (int r = -1; r < runs; r++) {
                seg_buf out = {0};
                seg_err ae = {0};
                double t0 = now_ms();
                int rc = api_aggregate(ix, tok, fields[2], strlen(fields[2]), &out, NULL, &ae);
                double dt = now_ms() - t0;
                seg_buf_free(&out);
                if (rc) {
                    fprintf(stderr, "qbench: %s: %s\n", fields[0], ae.msg);
                    break;
                }
                if (r >= 0)
                    t[r] = dt;
            }
            qsort(t, (size_t)runs, sizeof *t, dcmp);
            printf("{\"name\":\"%s\",\"median_ms\":%.3f,\"p95_ms\":%.3f,\"runs\":%d}\n", fields[0], t[runs / 2],
                   t[(int)((runs - 1) * 0.95 + 0.5)], runs);
            fflush(stdout);
            continue;
        }
        srch_query *q;
        seg_err qe = {0};
        if (srch_query_parse(fields[2], strlen(fields[2]), tok, &q, &qe)) {
            fprintf(stderr, "qbench: %s: %s\n", fields[0], qe.msg);
            continue;
        }
        srch_request rq = {q, 0, 0, 0, 0, 100, NULL, strcmp(fields[1], "count") == 0};
        if (nf >= 5 && fields[3][0] && fields[4][0]) {
            rq.has_start = srch_parse_time(fields[3], now, &rq.start, &qe) == 0;
            rq.has_end = srch_parse_time(fields[4], now, &rq.end, &qe) == 0;
        }
        uint64_t total = 0;
        size_t searched = 0, segs = 0, failed = 0;
        for (int r = -1; r < runs; r++) { /* one warm-up run */
            srch_result res;
            seg_err se = {0};
            double t0 = now_ms();
            if (srch_search(ix, &rq, &res, &se)) {
                fprintf(stderr, "qbench: %s: %s\n", fields[0], se.msg);
                break;
            }
            double dt = now_ms() - t0;
            if (r >= 0)
                t[r] = dt;
            total = res.total;
            searched = res.stats.segments_searched;
            segs = res.stats.segments_total;
            failed = res.stats.segments_failed;
            srch_result_free(&res);
        }
        qsort(t, (size_t)runs, sizeof *t, dcmp);
        int p95 = (int)((runs - 1) * 0.95 + 0.5);
        /* a search leaves corrupt segments out: say so, the total is short */
        if (failed)
            fprintf(stderr, "qbench: %s: %zu segments failed and were left out\n", fields[0], failed);
        printf("{\"name\":\"%s\",\"median_ms\":%.3f,\"p95_ms\":%.3f,\"total\":%llu,\"segments_searched\":%zu,"
               "\"segments\":%zu,\"segments_failed\":%zu,\"runs\":%d}\n",
               fields[0], t[runs / 2], t[p95], (unsigned long long)total, searched, segs, failed, runs);
        fflush(stdout);
        srch_query_free(q);
    }
    free(line);
    free(t);
    fclose(f);
    srch_index_close(ix);
    srch_pool_free(pool);
    seg_tok_free(tok);
    return 0;
}
