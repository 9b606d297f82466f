/* fuzz_tok.c -- the tokenizer on any bytes: no crash; every token is
 * non-empty, at most SEG_TOK_MAX bytes, and the fast path equals ICU. */
#include "segment/seg.h"

#include <stdlib.h>
#include <string.h>

typedef struct acc {
    seg_buf b;
} acc;

static void on_tok(void *ud, const char *t, size_t n)
{
    acc *a = ud;
    if (n == 0 || n > SEG_TOK_MAX)
        abort();
    seg_buf_put(&a->b, t, n);
    seg_buf_put_u8(&a->b, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static seg_tok *fast, *slow;
    if (!fast) {
        fast = seg_tok_new();
        slow = seg_tok_new();
        seg_tok_set_fastpath(slow, 0);
    }
    acc a = {{0}}, b = {{0}};
    seg_tok_run(fast, (const char *)d, n, on_tok, &a);
    seg_tok_run(slow, (const char *)d, n, on_tok, &b);
    if (a.b.n != b.b.n || (a.b.n && memcmp(a.b.p, b.b.p, a.b.n)))
        abort();
    seg_buf_free(&a.b);
    seg_buf_free(&b.b);
    return 0;
}
