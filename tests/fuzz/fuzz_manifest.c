/* fuzz_manifest.c -- the manifest parser (segment/seg_manifest.c) on
 * hostile bytes.  An input whose first byte is odd is wrapped as a
 * manifest body: the magic in front and a correct end line behind, so that
 * the fuzzer reaches the line parser past the checksum.  Whatever parses
 * must hold what a reader relies on: valid names, spans that end after
 * they start, a positive bucket width. */
#include "segment/seg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    seg_buf b = {0};
    if (n && (d[0] & 1)) {
        seg_buf_put(&b, (d[0] & 2) ? "logdex-manifest 2\n" : "logdex-manifest 1\n", 18);
        seg_buf_put(&b, d + 1, n - 1);
        char end[40];
        int k = snprintf(end, sizeof end, "end %016llx\n", (unsigned long long)seg_hash64(b.p, b.n));
        seg_buf_put(&b, end, (size_t)k);
    } else {
        seg_buf_put(&b, d, n);
    }
    if (b.oom)
        abort();
    seg_manifest m;
    seg_err e = {0};
    if (seg_manifest_parse(b.p ? (const char *)b.p : "", b.n, "fuzz", &m, &e) == SEG_OK) {
        if (m.bucket_ns <= 0)
            abort();
        for (size_t i = 0; i < m.n; i++) {
            const seg_mentry *x = &m.e[i];
            if (!x->name[0] || strchr(x->name, '/') || x->name[0] == '.' || memchr(x->name, 0, sizeof x->name) == NULL)
                abort();
            if (x->bucket_end && x->bucket_end <= x->bucket)
                abort();
        }
        seg_manifest_free(&m);
    } else if (!e.code) {
        abort(); /* a refusal always says why */
    }
    seg_buf_free(&b);
    return 0;
}
