/*
 * seg_tok.c -- the tokenizer, shared by indexing and querying.
 *
 * A token is a maximal run of Unicode letters (L*), marks (M*) and decimal
 * digits (Nd).  Every other code point, and every invalid UTF-8 byte,
 * separates tokens.  Each run is normalized with ICU's NFKC_Casefold
 * (NFKC + full case folding + removal of default-ignorables); because
 * normalization can itself produce separators (e.g. U+FDFA becomes several
 * words), the normalized text is split again by the same rule.
 *
 * Runs of the scripts written without spaces (Han, Hiragana, Katakana,
 * Thai, Lao, Khmer, Myanmar) are cut further with ICU's dictionary-based
 * word break iterator.  Marks and "common" letters (like U+30FC, the
 * prolonged sound mark) belong to the script of the preceding character.
 *
 * ASCII fast path: a run made only of [A-Za-z0-9] is lower-cased directly;
 * NFKC_Casefold of such a run is exactly its ASCII lower case, so the
 * tokens are identical (tests/t_tokenize.c checks it over mixed text).
 *
 * Tokens longer than SEG_TOK_MAX bytes are cut at the last character
 * boundary within SEG_TOK_MAX bytes.
 *
 * Thread safety: a seg_tok is used by one thread at a time (it holds a
 * break iterator and scratch buffers).  The normalizer is ICU's shared
 * immutable instance.
 */
#include "seg.h"

#include <string.h>
#include <unicode/ubrk.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>
#include <unicode/utf16.h>

struct seg_tok {
    const UNormalizer2 *nfkc_cf;
    UBreakIterator *brk;
    int fast;
    UChar *u16;          /* the run in UTF-16 */
    int32_t u16cap;
    UChar *norm;         /* normalized piece */
    int32_t normcap;
    char out[SEG_TOK_MAX * 4 + 8];
};

seg_tok *seg_tok_new(void)
{
    seg_tok *t = seg_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    UErrorCode st = U_ZERO_ERROR;
    t->nfkc_cf = unorm2_getNFKCCasefoldInstance(&st);
    if (U_FAILURE(st))
        goto fail;
    t->brk = ubrk_open(UBRK_WORD, "", NULL, 0, &st);
    if (U_FAILURE(st))
        goto fail;
    t->fast = 1;
    return t;
fail:
    seg_tok_free(t);
    return NULL;
}

void seg_tok_free(seg_tok *t)
{
    if (!t)
        return;
    if (t->brk)
        ubrk_close(t->brk);
    seg_free(t->u16);
    seg_free(t->norm);
    seg_free(t);
}

void seg_tok_set_fastpath(seg_tok *t, int on) { t->fast = on; }

/* ASCII bytes that are token characters: letters and digits. */
static const uint8_t ascii_tok[128] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline int is_tok_cp(UChar32 c)
{
    if (c < 0x80)
        return c >= 0 && ascii_tok[c];
    return (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_M_MASK | U_GC_ND_MASK)) != 0;
}

static int is_dict_script(UChar32 c, int prev)
{
    UErrorCode st = U_ZERO_ERROR;
    UScriptCode sc = uscript_getScript(c, &st);
    switch (sc) {
    case USCRIPT_HAN:
    case USCRIPT_HIRAGANA:
    case USCRIPT_KATAKANA:
    case USCRIPT_KATAKANA_OR_HIRAGANA:
    case USCRIPT_THAI:
    case USCRIPT_LAO:
    case USCRIPT_KHMER:
    case USCRIPT_MYANMAR:
        return 1;
    case USCRIPT_COMMON:
    case USCRIPT_INHERITED:
        return prev;
    default:
        return 0;
    }
}

static int grow16(UChar **p, int32_t *cap, int32_t need)
{
    if (need <= *cap)
        return 0;
    int32_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    UChar *q = seg_realloc(*p, (size_t)c * sizeof(UChar));
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Emits a UTF-8 token, cut at SEG_TOK_MAX on a character boundary. */
static void emit8(const char *s, size_t n, seg_tok_fn fn, void *ud, long *count)
{
    if (n == 0)
        return;
    if (n > SEG_TOK_MAX) {
        n = SEG_TOK_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    fn(ud, s, n);
    (*count)++;
}

/* Normalizes u[0..n) and emits the tokens of the result. */
static int emit_norm(seg_tok *t, const UChar *u, int32_t n, seg_tok_fn fn, void *ud, long *count)
{
    UErrorCode st = U_ZERO_ERROR;
    int32_t need = unorm2_normalize(t->nfkc_cf, u, n, t->norm, t->normcap, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        if (grow16(&t->norm, &t->normcap, need + 1))
            return -1;
        st = U_ZERO_ERROR;
        need = unorm2_normalize(t->nfkc_cf, u, n, t->norm, t->normcap, &st);
    }
    if (U_FAILURE(st))
        return -1;
    /* split the normalized text again and convert each piece to UTF-8 */
    int32_t i = 0;
    while (i < need) {
        UChar32 c;
        int32_t start = i;
        U16_NEXT(t->norm, i, need, c);
        if (!is_tok_cp(c))
            continue;
        int32_t end = i;
        while (end < need) {
            int32_t k = end;
            U16_NEXT(t->norm, k, need, c);
            if (!is_tok_cp(c))
                break;
            end = k;
        }
        /* convert norm[start..end) to UTF-8, at most SEG_TOK_MAX bytes + a char */
        size_t o = 0;
        int32_t k = start;
        while (k < end && o <= SEG_TOK_MAX) {
            U16_NEXT(t->norm, k, end, c);
            UBool err = 0;
            U8_APPEND((uint8_t *)t->out, o, sizeof t->out, c, err);
            if (err)
                break;
        }
        emit8(t->out, o, fn, ud, count);
        i = end;
    }
    return 0;
}

/* A run of token characters that is not pure ASCII. */
static int icu_run(seg_tok *t, const char *s, size_t n, seg_tok_fn fn, void *ud, long *count)
{
    if (grow16(&t->u16, &t->u16cap, (int32_t)n + 1))
        return -1;
    UErrorCode st = U_ZERO_ERROR;
    int32_t len = 0;
    u_strFromUTF8(t->u16, t->u16cap, &len, s, (int32_t)n, &st);
    if (U_FAILURE(st))
        return -1;
    int32_t i = 0;
    while (i < len) {
        /* a sub-run of one class: dictionary script or not */
        int32_t start = i;
        UChar32 c;
        U16_NEXT(t->u16, i, len, c);
        int dict = is_dict_script(c, 0);
        while (i < len) {
            int32_t k = i;
            U16_NEXT(t->u16, k, len, c);
            if (is_dict_script(c, dict) != dict)
                break;
            i = k;
        }
        if (!dict) {
            if (emit_norm(t, t->u16 + start, i - start, fn, ud, count))
                return -1;
            continue;
        }
        st = U_ZERO_ERROR;
        ubrk_setText(t->brk, t->u16 + start, i - start, &st);
        if (U_FAILURE(st))
            return -1;
        int32_t a = ubrk_first(t->brk);
        for (int32_t b = ubrk_next(t->brk); b != UBRK_DONE; a = b, b = ubrk_next(t->brk))
            if (emit_norm(t, t->u16 + start + a, b - a, fn, ud, count))
                return -1;
    }
    return 0;
}


long seg_tok_run(seg_tok *t, const char *s, size_t n, seg_tok_fn fn, void *ud)
{
    long count = 0;
    size_t i = 0;
    const uint8_t *u = (const uint8_t *)s;
    if (n > INT32_MAX / 2)
        return -1;
    while (i < n) {
        /* ASCII separators: skipped by table */
        while (i < n && u[i] < 0x80 && !ascii_tok[u[i]])
            i++;
        if (i >= n)
            break;
        /* find the start of a run */
        UChar32 c;
        size_t start = i;
        if (u[i] < 0x80) {
            c = u[i++];
        } else {
            int32_t k = (int32_t)i;
            U8_NEXT(u, k, (int32_t)n, c);
            i = (size_t)k;
        }
        if (c < 0 || !is_tok_cp(c))
            continue;
        int ascii = c < 0x80;
        while (i < n) {
            if (u[i] < 0x80) {
                if (!ascii_tok[u[i]])
                    break;
                i++;
                continue;
            }
            int32_t kk = (int32_t)i;
            U8_NEXT(u, kk, (int32_t)n, c);
            if (c < 0 || !is_tok_cp(c))
                break;
            ascii = 0;
            i = (size_t)kk;
        }
        if (ascii && t->fast) {
            size_t len = i - start;
            if (len > SEG_TOK_MAX)
                len = SEG_TOK_MAX;
            for (size_t k = 0; k < len; k++) {
                uint8_t ch = u[start + k];
                t->out[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
            }
            fn(ud, t->out, len);
            count++;
        } else if (icu_run(t, s + start, i - start, fn, ud, &count)) {
            return -1;
        }
    }
    return count;
}
