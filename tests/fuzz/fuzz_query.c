/* fuzz_query.c -- the query and time-parameter parsers never crash, and
 * every error carries a position inside the query. */
#include "searcher/srch.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static seg_tok *tok;
    if (!tok)
        tok = seg_tok_new();
    srch_query *q;
    seg_err e = {0};
    if (srch_query_parse((const char *)d, n, tok, &q, &e) == SEG_OK) {
        seg_buf b = {0};
        srch_query_dump(q, &b);
        seg_buf_free(&b);
        srch_query_free(q);
    } else if (e.code == SEG_EQUERY && (e.pos < 1 || (size_t)e.pos > n + 1)) {
        abort();
    }
    char s[128];
    size_t k = n < sizeof s - 1 ? n : sizeof s - 1;
    memcpy(s, d, k);
    s[k] = 0;
    int64_t t;
    seg_err te = {0};
    srch_parse_time(s, 1700000000000000000LL, &t, &te);
    seg_time_parse_rfc3339((const char *)d, n, &t);
    return 0;
}
