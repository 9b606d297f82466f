/*
 * reseal.h -- for tests of hostile segments: recomputes every checksum of a
 * segment image (sections, directory, header) so that mutated bytes reach
 * the structures behind the checksums.  Offsets out of bounds are left as
 * they are.
 */
#ifndef LOGDEX_TEST_RESEAL_H
#define LOGDEX_TEST_RESEAL_H

#include "segment/seg.h"

static inline void test_reseal(uint8_t *b, size_t n)
{
    if (n < 64)
        return;
    uint64_t diroff = seg_rd_u64(b + 40);
    uint32_t nsec = seg_rd_u32(b + 20);
    if (diroff > n || (uint64_t)nsec * 32 > n - diroff)
        return;
    for (uint32_t i = 0; i < nsec; i++) {
        uint8_t *d = b + diroff + (size_t)i * 32;
        uint64_t off = seg_rd_u64(d + 8), len = seg_rd_u64(d + 16);
        if (off <= n && len <= n - off)
            seg_wr_u64(d + 24, seg_hash64(b + off, len));
    }
    seg_wr_u64(b + 48, seg_hash64(b + diroff, (size_t)nsec * 32));
    seg_wr_u64(b + 56, seg_hash64(b, 56));
}

#endif
