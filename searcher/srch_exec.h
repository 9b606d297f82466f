/*
 * srch_exec.h -- internal to searcher/: evaluating a query on one segment.
 */
#ifndef LOGDEX_SRCH_EXEC_H
#define LOGDEX_SRCH_EXEC_H

#include "searcher/srch_int.h"

typedef struct srch_seg_out {
    uint64_t total;      /* matches in [lo, hi) */
    uint64_t after;      /* matches in [max(lo, from), hi) */
    uint32_t *docs;      /* first `limit` of those, ascending (= newest first) */
    size_t nhits;
} srch_seg_out;

/* Evaluates q over docs [lo, hi) of r; collects up to limit docs >= from.
 * out->docs is allocated here; the caller frees it with seg_free(). */

int srch_exec_segment(seg_reader *r, const srch_query *q, uint32_t lo, uint32_t hi, uint32_t from,
                      size_t limit, srch_seg_out *out, seg_err *e);

/* 1 when segment r holds no event of rq's time range (its time bounds). */
int srch_out_of_range(const seg_reader *r, const srch_request *rq);
/* srch_search for another order than time descending (srch_sort.c). */
int srch_search_sorted(srch_index *ix, const srch_request *rq, srch_result *out, seg_err *e);

#endif
