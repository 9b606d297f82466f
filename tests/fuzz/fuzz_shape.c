/* fuzz_shape.c -- the event store's column layout (segment/seg_shape.c).
 * The first byte picks a mode.  Even: the rest is NDJSON-ish text, one
 * record a line (id "id<k>"); whatever seg_shape_split lays out,
 * seg_shape_join must give back byte for byte.  Odd: the rest is hostile
 * column bytes for seg_shape_join (the raw length from the next two bytes,
 * the doc count the bytes claim); errors are fine, crashes and out-of-bounds accesses (ASan)
 * are not, and a success fills exactly the raw length. */
#include "segment/seg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static seg_shaper *sh;
    if (!sh)
        sh = seg_shaper_new();
    if (n < 1)
        return 0;
    if ((d[0] & 1) == 0) {
        seg_buf raw = {0}, cols = {0};
        const uint8_t *p = d + 1, *end = d + n;
        for (int k = 0; p <= end; k++) {
            const uint8_t *nl = memchr(p, 0xFF, (size_t)(end - p)); /* 0xFF: never in a record's JSON here */
            const uint8_t *e = nl ? nl : end;
            char id[16];
            int il = snprintf(id, sizeof id, "id%d", k);
            seg_buf_put_varint(&raw, (uint64_t)il);
            seg_buf_put(&raw, id, (size_t)il);
            seg_buf_put_varint(&raw, (uint64_t)(e - p));
            seg_buf_put(&raw, p, (size_t)(e - p));
            if (!nl)
                break;
            p = nl + 1;
        }
        uint32_t ndocs = 0;
        seg_cur c = {raw.p, raw.p + raw.n, 0};
        while (c.p < c.end && !c.bad) {
            seg_get_bytes(&c, seg_get_varint(&c));
            seg_get_bytes(&c, seg_get_varint(&c));
            ndocs++;
        }
        if (seg_shape_split(sh, raw.p, raw.n, &cols) == SEG_OK) {
            uint8_t *back = malloc(raw.n + 1);
            if (!back || seg_shape_join(cols.p, cols.n, ndocs, back, raw.n) != SEG_OK ||
                memcmp(back, raw.p, raw.n) != 0)
                abort();
            free(back);
        }
        seg_buf_free(&raw);
        seg_buf_free(&cols);
        return 0;
    }
    if (n < 3)
        return 0;
    /* the doc count the layout claims (its first varint), so that the
     * bytes behind it are reached */
    seg_cur c = {d + 3, d + n, 0};
    uint64_t ndocs = seg_get_varint(&c);
    uint32_t rawlen = (uint32_t)d[1] << 8 | d[2];
    uint8_t *dst = malloc(rawlen + 1);
    if (dst && ndocs <= UINT32_MAX) {
        int rc = seg_shape_join(d + 3, n - 3, (uint32_t)ndocs, dst, rawlen);
        if (rc != SEG_OK && rc != SEG_ECORRUPT && rc != SEG_ENOMEM)
            abort();
    }
    free(dst);
    return 0;
}
