/* fuzz_dsl.c -- the Elasticsearch query DSL translator (api/es_dsl.c) and
 * the Lucene query_string dialect never crash or leak: any JSON is either
 * a query tree (dumped, cloned and freed) or an ES error with a status and
 * a type; any text is a query_string tree or a 400 naming the position. */
#include "api/es.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static seg_tok *tok;
    if (!tok)
        tok = seg_tok_new();
    json_t *j = json_loadb((const char *)d, n, JSON_DECODE_ANY, NULL);
    if (j) {
        es_query q;
        es_err x = {0};
        if (es_dsl_query(j, tok, 1700000000000000000LL, &q, &x) == 0) {
            seg_buf b = {0};
            srch_query_dump(q.q, &b);
            srch_query *c = NULL;
            seg_err e = {0};
            if (srch_query_clone(q.q, &c, &e) == SEG_OK) {
                seg_buf b2 = {0};
                srch_query_dump(c, &b2);
                if (b.n != b2.n || memcmp(b.p, b2.p, b.n))
                    abort(); /* a clone is the same tree */
                seg_buf_free(&b2);
                srch_query_free(c);
            }
            seg_buf_free(&b);
            es_query_free(&q);
        } else if (x.status < 400 || !x.type[0]) {
            abort(); /* every refusal is an ES error */
        }
        json_decref(j);
    }
    char *s = malloc(n + 1);
    if (!s)
        return 0;
    memcpy(s, d, n);
    s[n] = 0;
    if (strlen(s) == n) {
        srch_query *q = NULL;
        es_err x = {0};
        if (es_dsl_query_string(s, (n & 1) ? "msg" : NULL, (n & 2) != 0, tok, &q, &x) == 0)
            srch_query_free(q);
        else if (x.status != 400 && x.status != 503)
            abort();
        json_t *v = json_string(s);
        int64_t t;
        es_err dx = {0};
        if (v)
            es_parse_date(v, (n & 4) ? "epoch_millis" : NULL, (n & 8) ? "+05:30" : NULL, 1700000000000000000LL,
                          (n & 16) != 0, &t, &dx);
        json_decref(v);
    }
    free(s);
    return 0;
}
