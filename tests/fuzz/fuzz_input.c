/* fuzz_input.c -- the parsers of inputs other than NDJSON and of the
 * write-ahead log, on hostile bytes:
 *   - seg_time_parse_text (whole string and leading time): a time found
 *     ends within the input;
 *   - api_text_to_ndjson (plain text lines, and combined access log lines
 *     when the first byte has bit 1): every event it makes is a
 *     JSON object that seg_json_parse accepts, and there is a time per line;
 *   - api_array_to_ndjson (a body that is one JSON array): no crash, no
 *     read past the input;
 *   - srch_glob (the query language's token patterns): no read past the
 *     pattern or the token (split at the input's first NUL);
 *   - the write-ahead log's replay (indexer/idx_wal.c) of the input as a
 *     log file: torn tails and damage are told apart without a crash, and
 *     each replayed event lies inside the file. */
#include "api/api_int.h"
#include "indexer/idx_int.h"
#include "searcher/srch_int.h"
#include "segment/seg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t *file_lo, *file_hi;

static int on_event(void *ud, const char *json, size_t n, int64_t time, const char *id, size_t idlen,
                    int explicit_id, seg_err *e)
{
    (void)ud, (void)time, (void)explicit_id, (void)e;
    (void)id;
    if (n > (size_t)(file_hi - file_lo) || idlen > (size_t)(file_hi - file_lo))
        abort();
    if (n)
        (void)*(volatile const char *)(json + n - 1); /* ASan: the bytes are readable */
    return SEG_OK;
}

static char dir[64];

static void cleanup(void)
{
    char w[96];
    snprintf(w, sizeof w, "%s/wal", dir);
    rmdir(w);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    const char *s = (const char *)d;
    int64_t t, now = 1704164645000000000LL;
    size_t used = 0;
    if (seg_time_parse_text(s, n, now, &t, &used) == 0 && used > n)
        abort();
    seg_time_parse_text(s, n, now, &t, NULL);

    /* token patterns (srch_glob): pattern, then a NUL, then the token */
    const uint8_t *z = memchr(d, 0, n);
    if (z)
        srch_glob(s, (size_t)(z - d), s + (z - d) + 1, n - (size_t)(z - d) - 1);

    seg_buf out = {0}, times = {0};
    if (api_text_to_ndjson(s, n, now, n && (d[0] & 2), &out, &times) == 0) {
        seg_json *js = seg_json_new();
        size_t lines = 0;
        for (size_t at = 0; at < out.n;) {
            const char *nl = memchr(out.p + at, '\n', out.n - at);
            if (!nl)
                abort(); /* every line ends */
            size_t l = (size_t)(nl - (const char *)out.p) - at;
            lines++;
            if (l) {
                const seg_jval *v;
                size_t nv;
                seg_err e = {0};
                if (seg_json_parse(js, (const char *)out.p + at, l, &v, &nv, &e) != SEG_OK)
                    abort(); /* a text line always makes a valid event */
            }
            at += l + 1;
        }
        if (times.n != lines * sizeof(idx_line_time))
            abort();
        seg_json_free(js);
    }
    seg_buf_free(&out);
    seg_buf_free(&times);

    seg_buf arr = {0};
    api_array_to_ndjson(s, n, &arr);
    seg_buf_free(&arr);

    /* the input as a write-ahead log file (half the time behind a valid
     * header, so that records are reached) */
    if (!dir[0]) {
        atexit(cleanup);
        snprintf(dir, sizeof dir, "/tmp/fuzz_input.%d", (int)getpid());
        char w[96];
        snprintf(w, sizeof w, "%s/wal", dir);
        seg_err e = {0};
        if (seg_mkdir_p(w, &e))
            abort();
    }
    char p[128];
    snprintf(p, sizeof p, "%s/wal/w0000000000000001.log", dir);
    FILE *f = fopen(p, "wb");
    if (!f)
        abort();
    if (n && (d[0] & 1))
        fwrite("LOGDXWAL\1\0\0\0\0\0\0\0", 1, 16, f);
    fwrite(d, 1, n, f);
    fclose(f);
    file_lo = d;
    file_hi = d + n + 16;
    idx_wal w;
    uint64_t replayed;
    seg_err e = {0};
    idx_wal_open(&w, dir, 0, on_event, NULL, &replayed, &e);
    idx_wal_close(&w);
    /* leave the directory as found: no log files, no kept-aside copies */
    for (int k = 1; k <= 3; k++) {
        snprintf(p, sizeof p, "%s/wal/w%016x.log", dir, k);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/wal/w0000000000000001.damaged", dir);
    unlink(p);
    return 0;
}
