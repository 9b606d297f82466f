/* t_tokenize.c -- the tokenizer: scripts, folding, limits, fast path. */
#include "segment/seg.h"
#include "tests/tap.h"

#include <ctype.h>

typedef struct acc {
    char buf[8192];
    size_t n;
    int count;
} acc;

static void on_tok(void *ud, const char *t, size_t n)
{
    acc *a = ud;
    if (a->n + n + 2 < sizeof a->buf) {
        if (a->count)
            a->buf[a->n++] = '|';
        memcpy(a->buf + a->n, t, n);
        a->n += n;
        a->buf[a->n] = 0;
    }
    a->count++;
}

static const char *toks(seg_tok *t, const char *s, size_t n)
{
    static acc a;
    memset(&a, 0, sizeof a);
    seg_tok_run(t, s, n, on_tok, &a);
    return a.buf;
}

#define T(in, want) is_str(toks(t, in, strlen(in)), want, "tokens of " #in)

int main(void)
{
    seg_tok *t = seg_tok_new();
    ok(t != NULL, "tokenizer starts");
    T("Hello, World! GET /api/v1/users?id=42", "hello|world|get|api|v1|users|id|42");
    T("error_code=E1234 x86_64", "error|code|e1234|x86|64");
    T("3.14 and -17", "3|14|and|17");
    T("", "");
    T("  ...  ", "");
    T("Straße STRASSE", "strasse|strasse");            /* full case folding */
    T("ÉCOLE école", "école|école");
    T("ﬁle ＡＢＣ１２３", "file|abc123");                 /* NFKC: ligature, full width */
    T("안녕하세요 세계", "안녕하세요|세계");              /* Korean has spaces */
    T("東京都に住んでいます", "東京|都|に|住|んで|い|ます"); /* ICU 72 dictionary */
    T("我爱北京天安门", "我|爱|北京|天安门");
    T("ภาษาไทยง่ายนิดเดียว", "ภาษา|ไทย|ง่าย|นิด|เดียว");
    T("log😀line 🚀launch", "log|line|launch");          /* emoji separate */
    T("e\xcc\x81t\xc3\xa9", "\xc3\xa9t\xc3\xa9");       /* combining mark: in the token, composed */
    T("abc\xff\xfe" "def \xc3(x", "abc|def|x");          /* invalid UTF-8 separates */
    T("カタカナのコーヒー", "カタカナ|の|コーヒー");
    T("ServerError500 in db-01", "servererror500|in|db|01");

    /* a very long token is cut at SEG_TOK_MAX bytes on a char boundary */
    char longw[2000];
    memset(longw, 'a', 1000);
    longw[1000] = 0;
    const char *r = toks(t, longw, 1000);
    is_int(strlen(r), SEG_TOK_MAX, "a 1000-byte token is cut to SEG_TOK_MAX bytes");
    char longu[2000];
    size_t k = 0;
    while (k + 2 < 1000) {
        longu[k++] = (char)0xc3;
        longu[k++] = (char)0xa9;
    }
    r = toks(t, longu, k);
    ok(strlen(r) <= SEG_TOK_MAX && strlen(r) % 2 == 0, "a long non-ASCII token is cut on a character boundary");

    /* the ASCII fast path gives the same tokens as ICU, over random mixed text */
    seg_tok *slow = seg_tok_new();
    seg_tok_set_fastpath(slow, 0);
    static const char *const pieces[] = {"abc", "ABC", "Zz9", " ", "-", "_", ".", "é", "Ü", "東京", "ß",
                                          "😀", "\t", "x1", "42", "İ", "ǅ", "\xff", "ﬁ", "Ⅻ", "½", "a\xcc\x81"};
    unsigned seed = 12345;
    int same = 1;
    for (int round = 0; round < 3000 && same; round++) {
        char s[512];
        size_t n = 0;
        int parts = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 12;
        for (int p = 0; p < parts; p++) {
            const char *pc = pieces[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof pieces / sizeof *pieces)];
            size_t l = strlen(pc);
            memcpy(s + n, pc, l);
            n += l;
        }
        static acc a1, a2;
        memset(&a1, 0, sizeof a1);
        memset(&a2, 0, sizeof a2);
        seg_tok_run(t, s, n, on_tok, &a1);
        seg_tok_run(slow, s, n, on_tok, &a2);
        if (strcmp(a1.buf, a2.buf) || a1.count != a2.count) {
            same = 0;
            tap_diag("fast '%s' vs ICU '%s' on '%.*s'", a1.buf, a2.buf, (int)n, s);
        }
    }
    ok(same, "ASCII fast path equals the ICU path on 3000 mixed strings");

    /* tokenizing a token again gives the same token (queries depend on it) */
    const char *samples[] = {"Straße", "ﬁle", "ÉCOLE", "東京都に住んでいます", "ＡＢＣ", "ǅemal"};
    int idem = 1;
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        char first[8192];
        snprintf(first, sizeof first, "%s", toks(t, samples[i], strlen(samples[i])));
        char *save, *tk = strtok_r(first, "|", &save);
        while (tk) {
            const char *again = toks(t, tk, strlen(tk));
            if (strcmp(again, tk)) {
                idem = 0;
                tap_diag("'%s' re-tokenizes to '%s'", tk, again);
            }
            tk = strtok_r(NULL, "|", &save);
        }
    }
    ok(idem, "tokens are fixed points of the tokenizer");

    /* every ASCII byte between two letters, against the rule itself (ASCII
     * token characters are exactly letters and digits), not against the
     * ICU path: both paths share the scan that finds a run's ends */
    int ascii_ok = 1;
    for (int c = 1; c < 128; c++) {
        char in[4] = {'x', (char)c, 'Y', 0}, want[8];
        if (isalnum(c))
            snprintf(want, sizeof want, "x%cy", (char)tolower(c));
        else
            snprintf(want, sizeof want, "x|y");
        const char *got = toks(t, in, 3);
        if (strcmp(got, want)) {
            ascii_ok = 0;
            tap_diag("byte %d: '%s', want '%s'", c, got, want);
        }
    }
    ok(ascii_ok, "each ASCII byte is a token character exactly when it is a letter or digit");
    seg_tok_free(slow);
    seg_tok_free(t);
    return tap_done();
}
