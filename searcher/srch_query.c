/*
 * srch_query.c -- the query language parser (docs/query-language.md).
 *
 * Grammar (precedence NOT > AND > OR; juxtaposition is AND):
 *   query   := ws* [ or ] ws*
 *   or      := and ( "OR" and )*
 *   and     := unary ( ["AND"] unary )*
 *   unary   := "NOT" unary | "-" unary | primary
 *   primary := "(" or ")" | term
 *   term    := "*" | '"' phrase '"' | word | word "*"
 *            | field ":" ( '"' phrase '"' | word | word "*" | "*"
 *                        | ("["|"{") num "TO" num ("]"|"}")
 *                        | (">"|">="|"<"|"<=") num )
 *   field   := [letters digits _ . - @]+ (bytes >= 0x80 count as letters)
 *   num     := a JSON number, or "*" for an open end (in ranges)
 * Keywords AND OR NOT are upper case.  A word is a run of bytes up to
 * white space or a parenthesis.  Errors carry the 1-based byte position.
 */
#include "searcher/srch_int.h"

#include <ctype.h>
#include <pthread.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <limits.h>
#include <stdio.h>
#include <strings.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_QUERY 65536

typedef struct P {
    const char *s;
    size_t n, i;
    seg_tok *tok;
    seg_err *e;
    int depth;
    /* srch_query_parse_opts: where unqualified terms search (NULL: any
     * field; also the field of a `field:( ... )` group), and the dialect */
    const char *dfield;
    size_t dflen;
    int lucene, default_and;
} P;

static qnode *node_new(int type, size_t pos)
{
    qnode *q = seg_calloc(1, sizeof *q);
    if (q) {
        q->type = type;
        q->pos = (int)pos + 1;
    }
    return q;
}

static void node_free(qnode *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->ntoks; i++)
        seg_free(q->toks[i]);
    seg_free(q->toks);
    seg_free(q->tok_lens);
    seg_free(q->field);
    seg_free(q->vkey);
    seg_free(q->str);
    pcre2_code_free(q->re);
    for (size_t i = 0; i < q->nkids; i++)
        node_free(q->kids[i]);
    seg_free(q->kids);
    seg_free(q);
}

void srch_query_free(srch_query *q)
{
    if (!q)
        return;
    node_free(q->root);
    seg_free(q);
}

static qnode *perr(P *p, size_t at, const char *fmt, const char *arg)
{
    if (p->e && !p->e->code) {
        seg_err_set(p->e, SEG_EQUERY, NULL, fmt, arg);
        p->e->pos = (long)at + 1;
        char tail[64];
        snprintf(tail, sizeof tail, " at position %zu", at + 1);
        size_t l = strlen(p->e->msg);
        snprintf(p->e->msg + l, sizeof p->e->msg - l, "%s", tail);
    }
    return NULL;
}

static qnode *oom(P *p)
{
    if (p->e && !p->e->code)
        seg_err_set(p->e, SEG_ENOMEM, NULL, "out of memory");
    return NULL;
}

static int add_kid(qnode *q, qnode *k)
{
    qnode **nk = seg_realloc(q->kids, (q->nkids + 1) * sizeof *nk);
    if (!nk)
        return -1;
    q->kids = nk;
    q->kids[q->nkids++] = k;
    return 0;
}

static void skip_ws(P *p)
{
    while (p->i < p->n && isspace((unsigned char)p->s[p->i]))
        p->i++;
}

static int is_delim(P *p, size_t j)
{
    return j >= p->n || isspace((unsigned char)p->s[j]) || p->s[j] == '(' || p->s[j] == ')';
}

static int is_field_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-' || c == '@' || c >= 0x80;
}

static int keyword(P *p, const char *kw)
{
    size_t l = strlen(kw);
    return p->i + l <= p->n && !memcmp(p->s + p->i, kw, l) && is_delim(p, p->i + l) ? (int)l : 0;
}

/* strict JSON number syntax, then strtod */
static int parse_num(const char *s, size_t n, double *out, int *is_int, int64_t *iv)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    size_t d0 = i;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    if (i == d0)
        return -1;
    int frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t f0 = i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == f0)
            return -1;
        frac = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == e0)
            return -1;
        frac = 1;
    }
    if (i != n || n > 400)
        return -1;
    char buf[512];
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    if (!isfinite(*out))
        return -1;
    *is_int = 0;
    if (!frac) {
        char *end;
        long long v = strtoll(buf, &end, 10);
        if (*end == 0 && !(v == LLONG_MAX || v == LLONG_MIN)) {
            *is_int = 1;
            *iv = v;
        } else if (*end == 0) {
            /* at the limits strtoll saturates: re-check exactly */
            int neg = buf[0] == '-';
            const char *lim = neg ? "-9223372036854775808" : "9223372036854775807";
            if (!strcmp(buf, lim)) {
                *is_int = 1;
                *iv = v;
            }
        }
    }
    return 0;
}

typedef struct tokacc {
    qnode *q;
    int oom;
} tokacc;

static void on_tok(void *ud, const char *t, size_t n)
{
    tokacc *a = ud;
    qnode *q = a->q;
    char **nt = seg_realloc(q->toks, (q->ntoks + 1) * sizeof *nt);
    size_t *nl = nt ? seg_realloc(q->tok_lens, (q->ntoks + 1) * sizeof *nl) : NULL;
    if (nt)
        q->toks = nt;
    if (!nt || !nl) {
        a->oom = 1;
        return;
    }
    q->tok_lens = nl;
    q->toks[q->ntoks] = seg_strndup(t, n);
    if (!q->toks[q->ntoks]) {
        a->oom = 1;
        return;
    }
    q->tok_lens[q->ntoks++] = n;
}

static int tokenize_into(P *p, qnode *q, const char *s, size_t n)
{
    tokacc a = {q, 0};
    if (seg_tok_run(p->tok, s, n, on_tok, &a) < 0 || a.oom)
        return -1;
    return 0;
}

static int set_field(qnode *q, const char *f, size_t n)
{
    if (!f)
        return 0;
    q->field = seg_strndup(f, n);
    q->field_len = n;
    return q->field ? 0 : -1;
}

/* A text value (word or phrase), with value matching for fielded words. */
static qnode *text_node(P *p, size_t at, const char *field, size_t flen, const char *s, size_t n,
                        int quoted)
{
    qnode *q = node_new(Q_TEXT, at);
    if (!q || set_field(q, field, flen) || tokenize_into(p, q, s, n)) {
        node_free(q);
        return oom(p);
    }
    if (field && !quoted) {
        double d;
        int isint;
        int64_t iv;
        char canon[40];
        size_t cl = 0;
        if (parse_num(s, n, &d, &isint, &iv) == 0) {
            q->has_num = 1;
            q->num = isint ? (double)iv : d;
        } else if (n == 4 && !strncasecmp(s, "true", 4))
            cl = (size_t)snprintf(canon, sizeof canon, "true");
        else if (n == 5 && !strncasecmp(s, "false", 5))
            cl = (size_t)snprintf(canon, sizeof canon, "false");
        if (cl) {
            q->vkey = seg_strndup(canon, cl);
            q->vkey_len = cl;
            if (!q->vkey) {
                node_free(q);
                return oom(p);
            }
        }
    }
    if (q->ntoks == 0 && !q->vkey && !q->has_num) {
        char w[80];
        snprintf(w, sizeof w, "%.*s", (int)(n < 60 ? n : 60), s);
        node_free(q);
        return perr(p, at, "'%s' has no searchable characters (letters or digits)", w);
    }
    return q;
}

static qnode *prefix_node(P *p, size_t at, const char *field, size_t flen, const char *s, size_t n)
{
    qnode *q = node_new(Q_PREFIX, at);
    if (!q || set_field(q, field, flen) || tokenize_into(p, q, s, n)) {
        node_free(q);
        return oom(p);
    }
    if (q->ntoks != 1) {
        node_free(q);
        return perr(p, at, "a prefix query must be a single token before '*'%s", "");
    }
    return q;
}

/* 1 when the word has a wildcard other than one trailing '*' (a prefix). */
static int is_wild(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '?' || (s[i] == '*' && i + 1 < n))
            return 1;
    return 0;
}

/* A pattern over one token: '*' any run, '?' one character.  ASCII letters
 * are lower-cased (tokens are case-folded).  A pattern stays within a
 * token: an ASCII character other than a letter or digit (they separate
 * tokens) is refused; other scripts are taken as given (a pattern mixing
 * scripts can match nothing: tokens break between scripts). */
static qnode *wild_node(P *p, size_t at, const char *field, size_t flen, const char *s, size_t n)
{
    char pat[256];
    if (n >= sizeof pat)
        return perr(p, at, "a wildcard pattern is at most 255 bytes%s", "");
    size_t lit = n, nlit = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int w = c == '*' || c == '?';
        if (!w && c < 0x80 && !isalnum(c)) {
            char b[64];
            snprintf(b, sizeof b, "%.*s", (int)(n < 60 ? n : 60), s);
            return perr(p, at, "a wildcard pattern matches within one token: '%s' holds characters that split tokens",
                        b);
        }
        if (w && lit == n)
            lit = i;
        nlit += !w;
        pat[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
    }
    if (!nlit)
        return perr(p, at, "a wildcard pattern needs a letter or digit%s", "");
    qnode *q = node_new(Q_WILD, at);
    if (!q || set_field(q, field, flen) || tokenize_into(p, q, "x", 1) || q->ntoks != 1) {
        node_free(q);
        return oom(p);
    }
    /* toks[0]: the literal prefix (where the term dictionary is entered) */
    seg_free(q->toks[0]);
    q->toks[0] = seg_strndup(pat, lit);
    q->tok_lens[0] = lit;
    q->str = seg_strndup(pat, n);
    q->str_len = n;
    if (!q->toks[0] || !q->str) {
        node_free(q);
        return oom(p);
    }
    return q;
}

/* ---- regular expressions over tokens (PCRE2) ----
 * Compiled caseless (tokens are case-folded), UTF-8, anchored at both ends
 * (the whole token matches), JIT when the platform has it.  A match gives
 * up past REGEX_MATCH_LIMIT backtracking steps (and a depth limit), so a
 * pathological pattern costs bounded time per token; srch_exec reports
 * it as an error naming the pattern. */
#define REGEX_MATCH_LIMIT 100000u

static void *regex_compile(const char *s, size_t n, char *err, size_t errn)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, n,
                                   PCRE2_CASELESS | PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_AUTO_CAPTURE,
                                   &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR m[160];
        pcre2_get_error_message(ec, m, sizeof m);
        snprintf(err, errn, "%s at offset %zu of the expression", (const char *)m, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* no JIT: interpreted, same answers */
    return re;
}

/* The limits of every match: one context, made once and only read by
 * matches afterwards (so shared by the searching threads). */
static pcre2_match_context *regex_limits;
static pthread_once_t regex_limits_once = PTHREAD_ONCE_INIT;

static void regex_limits_make(void)
{
    regex_limits = pcre2_match_context_create(NULL);
    if (regex_limits) {
        pcre2_set_match_limit(regex_limits, REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(regex_limits, 10000);
    }
}

void *srch_regex_scratch(const void *re)
{
    pthread_once(&regex_limits_once, regex_limits_make);
    return regex_limits ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
}

void srch_regex_scratch_free(void *md) { pcre2_match_data_free(md); }

int srch_regex_match(const void *re, void *md, const char *t, size_t n)
{
    int r = pcre2_match(re, (PCRE2_SPTR)t, n, 0, 0, md, regex_limits);
    return r >= 0 ? 1 : r == PCRE2_ERROR_NOMATCH || r == PCRE2_ERROR_BADUTFOFFSET || (r <= PCRE2_ERROR_UTF8_ERR1 && r >= PCRE2_ERROR_UTF8_ERR21) ? 0 : -1;
}

/* /regex/ at p->i (on '/'): to the next '/' not escaped by '\' ("\/" is a
 * slash in the expression). */
static qnode *regex_node(P *p, size_t at, const char *field, size_t flen)
{
    size_t a = ++p->i;
    seg_buf b = {0};
    while (p->i < p->n && p->s[p->i] != '/') {
        if (p->s[p->i] == '\\' && p->i + 1 < p->n && p->s[p->i + 1] == '/')
            p->i++;
        else if (p->s[p->i] == '\\' && p->i + 1 < p->n)
            seg_buf_put_u8(&b, (uint8_t)p->s[p->i++]);
        seg_buf_put_u8(&b, (uint8_t)p->s[p->i++]);
    }
    if (p->i >= p->n) {
        seg_buf_free(&b);
        return perr(p, a - 1, "unterminated regular expression: it ends at the next '/'%s", "");
    }
    p->i++;
    if (b.oom) {
        seg_buf_free(&b);
        return oom(p);
    }
    char err[300];
    void *re = regex_compile(b.p ? (const char *)b.p : "", b.n, err, sizeof err);
    if (!re) {
        seg_buf_free(&b);
        return perr(p, a - 1, "bad regular expression: %s", err);
    }
    qnode *q = node_new(Q_REGEX, at);
    if (!q || set_field(q, field, flen) || tokenize_into(p, q, "x", 1) || q->ntoks != 1) {
        pcre2_code_free(re);
        seg_buf_free(&b);
        node_free(q);
        return oom(p);
    }
    q->re = re;
    seg_free(q->toks[0]);
    q->toks[0] = seg_strndup("", 0);
    q->tok_lens[0] = 0;
    q->str = seg_strndup(b.p ? (const char *)b.p : "", b.n);
    q->str_len = b.n;
    seg_buf_free(&b);
    if (!q->toks[0] || !q->str) {
        node_free(q);
        return oom(p);
    }
    return q;
}

/* Reads a quoted string starting at p->i (on '"'); returns the content
 * (escapes \" and \\ resolved) in a new buffer. */
static char *quoted(P *p, size_t *len)
{
    size_t at = p->i++;
    seg_buf b = {0};
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\' && p->i + 1 < p->n && (p->s[p->i + 1] == '"' || p->s[p->i + 1] == '\\'))
            p->i++;
        seg_buf_put_u8(&b, (uint8_t)p->s[p->i++]);
    }
    if (p->i >= p->n) {
        seg_buf_free(&b);
        perr(p, at, "unterminated quoted phrase%s", "");
        return NULL;
    }
    p->i++;
    seg_buf_put_u8(&b, 0);
    if (b.oom) {
        seg_buf_free(&b);
        oom(p);
        return NULL;
    }
    *len = b.n - 1;
    return (char *)b.p;
}

static qnode *range_value(P *p, size_t at, const char *s, size_t n, double *v, int *open)
{
    double d;
    int isint;
    int64_t iv;
    if (n == 1 && s[0] == '*') {
        *open = 1;
        return (qnode *)1;
    }
    *open = 0;
    if (parse_num(s, n, &d, &isint, &iv)) {
        char w[80];
        snprintf(w, sizeof w, "%.*s", (int)(n < 60 ? n : 60), s);
        return perr(p, at, "'%s' is not a number", w);
    }
    *v = d;
    return (qnode *)1;
}

static qnode *range_node(P *p, size_t at, const char *field, size_t flen)
{
    char open_c = p->s[p->i++];
    size_t a0, a1, b0, b1;
    skip_ws(p);
    a0 = p->i;
    while (p->i < p->n && !isspace((unsigned char)p->s[p->i]) && p->s[p->i] != ']' && p->s[p->i] != '}')
        p->i++;
    a1 = p->i;
    skip_ws(p);
    if (!(p->i + 2 <= p->n && !memcmp(p->s + p->i, "TO", 2) &&
          (p->i + 2 == p->n || isspace((unsigned char)p->s[p->i + 2]) || p->s[p->i + 2] == ']' ||
           p->s[p->i + 2] == '}')))
        return perr(p, p->i, "expected 'TO' in range%s", "");
    p->i += 2;
    skip_ws(p);
    b0 = p->i;
    while (p->i < p->n && !isspace((unsigned char)p->s[p->i]) && p->s[p->i] != ']' && p->s[p->i] != '}')
        p->i++;
    b1 = p->i;
    skip_ws(p);
    if (p->i >= p->n || (p->s[p->i] != ']' && p->s[p->i] != '}'))
        return perr(p, p->i, "expected ']' or '}' to close the range%s", "");
    if (a0 == a1)
        return perr(p, a0, "expected a lower bound in the range%s", "");
    if (b0 == b1)
        return perr(p, b0, "expected an upper bound after TO%s", "");
    char close_c = p->s[p->i++];
    qnode *q = node_new(Q_RANGE, at);
    if (!q || set_field(q, field, flen)) {
        node_free(q);
        return oom(p);
    }
    int lo_open, hi_open;
    if (!range_value(p, a0, p->s + a0, a1 - a0, &q->lo, &lo_open) ||
        !range_value(p, b0, p->s + b0, b1 - b0, &q->hi, &hi_open)) {
        node_free(q);
        return NULL;
    }
    q->lo_incl = open_c == '[';
    q->hi_incl = close_c == ']';
    if (lo_open) {
        q->lo = -INFINITY;
        q->lo_incl = 1;
    }
    if (hi_open) {
        q->hi = INFINITY;
        q->hi_incl = 1;
    }
    return q;
}

static qnode *compare_node(P *p, size_t at, const char *field, size_t flen)
{
    int lt = p->s[p->i] == '<';
    p->i++;
    int eq = 0;
    if (p->i < p->n && p->s[p->i] == '=') {
        eq = 1;
        p->i++;
    }
    size_t v0 = p->i;
    while (!is_delim(p, p->i))
        p->i++;
    double v;
    int open;
    if (v0 == p->i)
        return perr(p, v0, "expected a number after the comparison%s", "");
    if (!range_value(p, v0, p->s + v0, p->i - v0, &v, &open))
        return NULL;
    if (open)
        return perr(p, v0, "a comparison needs a number, not '*'%s", "");
    qnode *q = node_new(Q_RANGE, at);
    if (!q || set_field(q, field, flen)) {
        node_free(q);
        return oom(p);
    }
    if (lt) {
        q->lo = -INFINITY;
        q->lo_incl = 1;
        q->hi = v;
        q->hi_incl = eq;
    } else {
        q->lo = v;
        q->lo_incl = eq;
        q->hi = INFINITY;
        q->hi_incl = 1;
    }
    return q;
}

static qnode *parse_unary(P *p);
static qnode *parse_or(P *p);

static qnode *exists_node(P *p, size_t at, const char *field, size_t flen)
{
    qnode *q = node_new(Q_EXISTS, at);
    if (!q || set_field(q, field, flen)) {
        node_free(q);
        return oom(p);
    }
    return q;
}

/* Lucene dialect: FIELD.keyword:value or FIELD.keyword:"value" is the
 * whole string value (Q_EXACT); FIELD.keyword:* its presence. */
static qnode *keyword_node(P *p, size_t at, const char *field, size_t flen)
{
    char *s;
    size_t n;
    if (p->s[p->i] == '"') {
        if (!(s = quoted(p, &n)))
            return NULL;
    } else {
        size_t v0 = p->i;
        while (!is_delim(p, p->i))
            p->i++;
        n = p->i - v0;
        if (n == 1 && p->s[v0] == '*')
            return exists_node(p, at, field, flen);
        if (!(s = seg_strndup(p->s + v0, n)))
            return oom(p);
    }
    qnode *q = node_new(Q_EXACT, at);
    if (!q || set_field(q, field, flen) || tokenize_into(p, q, s, n)) {
        node_free(q);
        seg_free(s);
        return oom(p);
    }
    q->str = s;
    q->str_len = n;
    return q;
}

static qnode *parse_term(P *p)
{
    size_t at = p->i;
    if (p->s[p->i] == '"') {
        size_t len;
        char *s = quoted(p, &len);
        if (!s)
            return NULL;
        qnode *q = text_node(p, at, p->dfield, p->dflen, s, len, 1);
        seg_free(s);
        return q;
    }
    size_t j = p->i;
    while (j < p->n && is_field_char((unsigned char)p->s[j]))
        j++;
    if (j > p->i && j < p->n && p->s[j] == ':') {
        const char *field = p->s + p->i;
        size_t flen = j - p->i;
        p->i = j + 1;
        if (is_delim(p, p->i) && !(p->i < p->n && p->s[p->i] == '('))
            return perr(p, p->i, "missing value after '%s:'", "field");
        char c = p->s[p->i];
        if (p->lucene && flen > 8 && !memcmp(field + flen - 8, ".keyword", 8) && c != '(' && c != '[' &&
            c != '{' && c != '>' && c != '<')
            return keyword_node(p, at, field, flen - 8);
        if (c == '"') {
            size_t len;
            char *s = quoted(p, &len);
            if (!s)
                return NULL;
            qnode *q = text_node(p, at, field, flen, s, len, 1);
            seg_free(s);
            return q;
        }
        if (c == '[' || c == '{')
            return range_node(p, at, field, flen);
        if (c == '/')
            return regex_node(p, at, field, flen);
        if (c == '(') {
            /* a group under one field: its unqualified terms search it */
            const char *sf = p->dfield;
            size_t sl = p->dflen;
            p->dfield = field;
            p->dflen = flen;
            qnode *q = parse_unary(p);
            p->dfield = sf;
            p->dflen = sl;
            return q;
        }
        if (c == '>' || c == '<')
            return compare_node(p, at, field, flen);
        size_t v0 = p->i;
        while (!is_delim(p, p->i))
            p->i++;
        size_t vn = p->i - v0;
        if (p->lucene && flen == 8 && !memcmp(field, "_exists_", 8)) /* _exists_:FIELD */
            return exists_node(p, at, p->s + v0, vn);
        if (vn == 1 && p->s[v0] == '*')
            return exists_node(p, at, field, flen);
        if (is_wild(p->s + v0, vn))
            return wild_node(p, at, field, flen, p->s + v0, vn);
        if (vn > 1 && p->s[v0 + vn - 1] == '*')
            return prefix_node(p, at, field, flen, p->s + v0, vn - 1);
        return text_node(p, at, field, flen, p->s + v0, vn, 0);
    }
    if (p->i < p->n && p->s[p->i] == '/')
        return regex_node(p, at, p->dfield, p->dflen);
    size_t w0 = p->i;
    while (!is_delim(p, p->i))
        p->i++;
    size_t wn = p->i - w0;
    if (wn == 1 && p->s[w0] == '*')
        return p->dfield ? exists_node(p, at, p->dfield, p->dflen) : node_new(Q_ALL, at);
    if (is_wild(p->s + w0, wn))
        return wild_node(p, at, p->dfield, p->dflen, p->s + w0, wn);
    if (wn > 1 && p->s[w0 + wn - 1] == '*')
        return prefix_node(p, at, p->dfield, p->dflen, p->s + w0, wn - 1);
    return text_node(p, at, p->dfield, p->dflen, p->s + w0, wn, 0);
}

static qnode *parse_unary(P *p)
{
    skip_ws(p);
    size_t at = p->i;
    if (p->i >= p->n)
        return perr(p, at, "expected a term%s", "");
    int kl = keyword(p, "NOT");
    /* "-" directly before a term or "(" negates it */
    int minus = !kl && p->s[p->i] == '-' &&
                (!is_delim(p, p->i + 1) || (p->i + 1 < p->n && p->s[p->i + 1] == '('));
    if (kl || minus) {
        p->i += kl ? (size_t)kl : 1;
        if (++p->depth > MAX_DEPTH)
            return perr(p, at, "query nested too deeply%s", "");
        qnode *k = parse_unary(p);
        p->depth--;
        if (!k)
            return NULL;
        qnode *q = node_new(Q_NOT, at);
        if (!q || add_kid(q, k)) {
            node_free(q);
            node_free(k);
            return oom(p);
        }
        return q;
    }
    if (p->lucene && p->s[p->i] == '+' && !is_delim(p, p->i + 1)) {
        p->i++; /* a required clause */
        if (++p->depth > MAX_DEPTH)
            return perr(p, at, "query nested too deeply%s", "");
        qnode *k = parse_unary(p);
        p->depth--;
        if (k)
            k->must = 1;
        return k;
    }
    if (p->s[p->i] == '(') {
        p->i++;
        if (++p->depth > MAX_DEPTH)
            return perr(p, at, "query nested too deeply%s", "");
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ')')
            return perr(p, at, "empty parentheses%s", "");
        qnode *q = parse_or(p);
        p->depth--;
        if (!q)
            return NULL;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ')') {
            node_free(q);
            return perr(p, at, "unbalanced '('%s", "");
        }
        p->i++;
        return q;
    }
    if (p->s[p->i] == ')')
        return perr(p, at, "unexpected ')'%s", "");
    if (keyword(p, "AND") || keyword(p, "OR"))
        return perr(p, at, "expected a term before the operator%s", "");
    return parse_term(p);
}

static qnode *combine(P *p, int type, qnode *a, qnode *b, size_t at)
{
    if (a->type == type) {
        if (add_kid(a, b)) {
            node_free(a);
            node_free(b);
            return oom(p);
        }
        return a;
    }
    qnode *q = node_new(type, at);
    if (!q || add_kid(q, a) || add_kid(q, b)) {
        if (q && q->nkids == 1)
            q->nkids = 0;
        node_free(q);
        node_free(a);
        node_free(b);
        return oom(p);
    }
    return q;
}

static qnode *parse_and(P *p)
{
    size_t at = p->i;
    qnode *a = parse_unary(p);
    while (a) {
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] == ')' || keyword(p, "OR"))
            break;
        int kl = keyword(p, "AND");
        if (!kl && p->lucene && !p->default_and)
            break; /* juxtaposed: a clause of its own (lucene_clauses) */
        if (kl) {
            p->i += (size_t)kl;
            skip_ws(p);
            if (p->i >= p->n) {
                node_free(a);
                return perr(p, p->i, "expected a term after AND%s", "");
            }
        }
        qnode *b = parse_unary(p);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = combine(p, Q_AND, a, b, at);
    }
    return a;
}

/* Lucene's clauses (default operator OR): after `first`, the juxtaposed
 * or OR-joined clauses up to the end of the group.  Required ('+') and
 * excluded (NOT, '-') clauses are ANDed; the optional ones are ORed and
 * required only when no clause is required. */
static qnode *lucene_clauses(P *p, qnode *first, size_t at)
{
    qnode *must = node_new(Q_AND, at), *should = node_new(Q_OR, at);
    int positive = 0;
    qnode *x = first;
    if (!must || !should)
        goto fail_oom;
    for (;;) {
        int req = x->must || x->type == Q_NOT;
        positive += x->must && x->type != Q_NOT;
        if (add_kid(req ? must : should, x)) {
            node_free(x);
            goto fail_oom;
        }
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] == ')')
            break;
        int kl = keyword(p, "OR");
        if (kl) {
            p->i += (size_t)kl;
            skip_ws(p);
            if (p->i >= p->n) {
                node_free(must);
                node_free(should);
                return perr(p, p->i, "expected a term after OR%s", "");
            }
        }
        if (!(x = parse_and(p))) {
            node_free(must);
            node_free(should);
            return NULL;
        }
    }
    if (positive || !should->nkids) {
        node_free(should);
    } else if (should->nkids == 1 && !must->nkids) {
        node_free(must);
        qnode *one = should->kids[0];
        should->nkids = 0;
        node_free(should);
        return one;
    } else if (add_kid(must, should)) {
        node_free(should);
        goto fail_oom;
    }
    if (must->nkids == 1 && must->kids[0]->type != Q_NOT) {
        qnode *one = must->kids[0];
        must->nkids = 0;
        node_free(must);
        return one;
    }
    return must;
fail_oom:
    node_free(must);
    node_free(should);
    return oom(p);
}

static qnode *parse_or(P *p)
{
    size_t at = p->i;
    qnode *a = parse_and(p);
    if (a && p->lucene && !p->default_and)
        return lucene_clauses(p, a, at);
    while (a) {
        skip_ws(p);
        int kl = keyword(p, "OR");
        if (!kl)
            break;
        p->i += (size_t)kl;
        skip_ws(p);
        if (p->i >= p->n) {
            node_free(a);
            return perr(p, p->i, "expected a term after OR%s", "");
        }
        qnode *b = parse_and(p);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = combine(p, Q_OR, a, b, at);
    }
    return a;
}

int srch_query_parse(const char *q, size_t n, seg_tok *tok, srch_query **out, seg_err *e)
{
    return srch_query_parse_opts(q, n, tok, NULL, out, e);
}

int srch_query_parse_opts(const char *q, size_t n, seg_tok *tok, const srch_parse_opts *o, srch_query **out,
                          seg_err *e)
{
    *out = NULL;
    P p = {q, n, 0, tok, e, 0, NULL, 0, 0, 0};
    if (o) {
        if (o->default_field && strcmp(o->default_field, "*")) {
            p.dfield = o->default_field;
            p.dflen = strlen(o->default_field);
        }
        p.lucene = o->lucene;
        p.default_and = o->default_and;
    }
    if (n > MAX_QUERY) {
        seg_err_set(e, SEG_EQUERY, NULL, "query longer than %d bytes", MAX_QUERY);
        e->pos = MAX_QUERY;
        return SEG_EQUERY;
    }
    for (size_t i = 0; i < n;) {
        int k = seg_utf8_len((const uint8_t *)q + i, (const uint8_t *)q + n);
        if (k == 0 || (k == 1 && q[i] == 0)) {
            seg_err_set(e, SEG_EQUERY, NULL, "the query is not valid UTF-8 (or holds a NUL) at position %zu", i + 1);
            e->pos = (long)i + 1;
            return SEG_EQUERY;
        }
        i += (size_t)k;
    }
    srch_query *r = seg_calloc(1, sizeof *r);
    if (!r)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    skip_ws(&p);
    if (p.i >= n) {
        r->root = node_new(Q_ALL, 0);
    } else {
        r->root = parse_or(&p);
        if (r->root) {
            skip_ws(&p);
            if (p.i < n) {
                perr(&p, p.i, "unexpected '%s'", p.s[p.i] == ')' ? ")" : "text");
                node_free(r->root);
                r->root = NULL;
            }
        }
    }
    if (!r->root) {
        seg_free(r);
        if (!e->code)
            seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return e->code;
    }
    *out = r;
    return SEG_OK;
}

static void dump(const qnode *q, seg_buf *o)
{
    static const char *const names[] = {"",      "ALL", "NONE", "TEXT", "PREFIX", "RANGE",
                                        "EXISTS", "AND", "OR",   "NOT",  "EXACT", "IDS", "REGEX", "WILD"};
    seg_buf_put_u8(o, '(');
    seg_buf_put(o, names[q->type], strlen(names[q->type]));
    if (q->field) {
        seg_buf_put(o, " @", 2);
        seg_buf_put(o, q->field, q->field_len);
    }
    for (size_t i = 0; i < q->ntoks; i++) {
        seg_buf_put(o, " ", 1);
        seg_buf_put(o, q->toks[i], q->tok_lens[i]);
    }
    if (q->str) {
        seg_buf_put(o, " ==", 3);
        seg_buf_put(o, q->str, q->str_len);
    }
    if (q->vkey) {
        seg_buf_put(o, " =", 2);
        seg_buf_put(o, q->vkey, q->vkey_len);
    }
    if (q->has_num) {
        char c[40];
        size_t cl = seg_num_canon_real(q->num, c);
        seg_buf_put(o, " =", 2);
        seg_buf_put(o, c, cl);
    }
    if (q->type == Q_RANGE) {
        char b[128];
        int k = snprintf(b, sizeof b, " %c%g,%g%c", q->lo_incl ? '[' : '{', q->lo, q->hi, q->hi_incl ? ']' : '}');
        seg_buf_put(o, b, (size_t)k);
    }
    for (size_t i = 0; i < q->nkids; i++) {
        seg_buf_put_u8(o, ' ');
        dump(q->kids[i], o);
    }
    seg_buf_put_u8(o, ')');
}

void srch_query_dump(const srch_query *q, seg_buf *out) { dump(q->root, out); }

int srch_parse_time(const char *s, int64_t now, int64_t *out, seg_err *e)
{
    size_t n = strlen(s);
    if (n >= 3 && !strncmp(s, "now", 3)) {
        if (n == 3) {
            *out = now;
            return SEG_OK;
        }
        if (s[3] == '-' || s[3] == '+') {
            char *end;
            long long k = strtoll(s + 4, &end, 10);
            int64_t unit = 0;
            if (end > s + 4 && end[0] && !end[1]) {
                switch (end[0]) {
                case 's': unit = 1000000000LL; break;
                case 'm': unit = 60LL * 1000000000LL; break;
                case 'h': unit = 3600LL * 1000000000LL; break;
                case 'd': unit = 86400LL * 1000000000LL; break;
                case 'w': unit = 7LL * 86400LL * 1000000000LL; break;
                }
            }
            if (unit && k >= 0 && k <= 100000LL * 365) {
                int64_t d = (int64_t)k * unit;
                if (d / unit == k) {
                    *out = s[3] == '-' ? now - d : now + d;
                    return SEG_OK;
                }
            }
        }
        return seg_err_set(e, SEG_EQUERY, NULL,
                           "bad time '%.64s': use now, now-15m (units s m h d w), RFC 3339, a date (2024-06-01) or epoch", s);
    }
    double d;
    int isint;
    int64_t iv;
    if (parse_num(s, n, &d, &isint, &iv) == 0) {
        int64_t ns;
        int rc = isint ? seg_time_from_int(iv, &ns) : seg_time_from_number(d, &ns);
        if (rc == 0) {
            *out = ns;
            return SEG_OK;
        }
    } else if (seg_time_parse_rfc3339(s, n, out) == 0) {
        return SEG_OK;
    } else if (n == 10 && s[4] == '-' && s[7] == '-') { /* a bare date: its midnight, UTC */
        char b[32];
        snprintf(b, sizeof b, "%.10sT00:00:00Z", s);
        if (seg_time_parse_rfc3339(b, 20, out) == 0)
            return SEG_OK;
    } else if (seg_time_parse_text(s, n, now, out, NULL) == 0) { /* no zone: UTC; log forms */
        return SEG_OK;
    }
    return seg_err_set(e, SEG_EQUERY, NULL,
                       "bad time '%.64s': use now, now-15m (units s m h d w), RFC 3339, a date (2024-06-01) or epoch",
                       s);
}

/* ------------------------------------------------------------------ */
/* What a query needs of a partial segment                              */
/* ------------------------------------------------------------------ */

static int need_has(const seg_index_only *n, const char *f, size_t len)
{
    for (size_t i = 0; i < n->nfields; i++)
        if (strlen(n->fields[i]) == len && !memcmp(n->fields[i], f, len))
            return 1;
    return 0;
}

static int need_add(seg_index_only *n, const char *f, size_t len)
{
    if (need_has(n, f, len))
        return 0;
    char **g = seg_realloc(n->fields, (n->nfields + 1) * sizeof *g);
    if (!g)
        return SEG_ENOMEM;
    n->fields = g;
    if (!(g[n->nfields] = seg_strndup(f, len)))
        return SEG_ENOMEM;
    n->nfields++;
    return 0;
}

static int need_node(const qnode *q, seg_index_only *n)
{
    if (q->field) {
        if (need_add(n, q->field, q->field_len))
            return SEG_ENOMEM;
    } else if (q->type == Q_TEXT || q->type == Q_PREFIX || q->type == Q_WILD || q->type == Q_REGEX) {
        n->any_text = 1;
    }
    for (size_t i = 0; i < q->nkids; i++)
        if (need_node(q->kids[i], n))
            return SEG_ENOMEM;
    return 0;
}

int srch_query_need(const srch_query *q, seg_index_only *need) { return need_node(q->root, need); }

int srch_need_covers(const seg_index_only *have, const seg_index_only *want)
{
    if (want->any_text && !have->any_text)
        return 0;
    for (size_t i = 0; i < want->nfields; i++)
        if (!need_has(have, want->fields[i], strlen(want->fields[i])))
            return 0;
    return 1;
}

void srch_need_free(seg_index_only *need)
{
    for (size_t i = 0; i < need->nfields; i++)
        seg_free(need->fields[i]);
    seg_free(need->fields);
    memset(need, 0, sizeof *need);
}

/* ------------------------------------------------------------------ */
/* Building queries directly (the Elasticsearch query DSL)              */
/*                                                                      */
/* The nodes are the parser's own (text_node, prefix_node, ...), so a   */
/* DSL query and the equal query-language text give the same tree.      */
/* ------------------------------------------------------------------ */

static int wrap(qnode *n, srch_query **out, seg_err *e)
{
    *out = NULL;
    if (!n) {
        if (e->code == SEG_EQUERY) { /* a value, not a position in a text */
            char *x = strstr(e->msg, " at position ");
            if (x)
                *x = 0;
            e->pos = 0;
        }
        return e->code ? e->code : seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    srch_query *r = seg_calloc(1, sizeof *r);
    if (!r) {
        node_free(n);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    r->root = n;
    *out = r;
    return SEG_OK;
}

static void bp_init(P *p, seg_tok *tok, seg_err *e)
{
    memset(p, 0, sizeof *p);
    p->s = "";
    p->tok = tok;
    p->e = e;
}

static size_t flen_of(const char *field) { return field ? strlen(field) : 0; }

int srch_q_all(srch_query **out, seg_err *e) { return wrap(node_new(Q_ALL, 0), out, e); }
int srch_q_none(srch_query **out, seg_err *e) { return wrap(node_new(Q_NONE, 0), out, e); }

int srch_q_text(seg_tok *tok, const char *field, const char *s, size_t n, int phrase, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, tok, e);
    return wrap(text_node(&p, 0, field, flen_of(field), s, n, phrase), out, e);
}

int srch_q_words(seg_tok *tok, const char *field, const char *s, size_t n, int all, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, tok, e);
    double d;
    int isint;
    int64_t iv;
    if (field && (parse_num(s, n, &d, &isint, &iv) == 0 || (n == 4 && !strncasecmp(s, "true", 4)) ||
                  (n == 5 && !strncasecmp(s, "false", 5))))
        return wrap(text_node(&p, 0, field, strlen(field), s, n, 0), out, e); /* the value too */
    qnode *t = node_new(Q_TEXT, 0);
    if (!t || tokenize_into(&p, t, s, n)) {
        node_free(t);
        return wrap(oom(&p), out, e);
    }
    if (t->ntoks == 0) {
        node_free(t);
        return wrap(node_new(Q_NONE, 0), out, e);
    }
    if (t->ntoks == 1)
        return wrap(set_field(t, field, flen_of(field)) ? (node_free(t), oom(&p)) : t, out, e);
    qnode *b = node_new(all ? Q_AND : Q_OR, 0);
    for (size_t i = 0; b && i < t->ntoks; i++) {
        qnode *k = text_node(&p, 0, field, flen_of(field), t->toks[i], t->tok_lens[i], 1);
        if (!k || add_kid(b, k)) {
            node_free(k);
            node_free(b);
            b = NULL;
        }
    }
    node_free(t);
    return wrap(b ? b : oom(&p), out, e);
}

int srch_q_exact(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, tok, e);
    qnode *q = node_new(Q_EXACT, 0);
    if (!q || set_field(q, field, strlen(field)) || !(q->str = seg_malloc(n + 1)) || tokenize_into(&p, q, s, n)) {
        node_free(q);
        return wrap(oom(&p), out, e);
    }
    memcpy(q->str, s, n);
    q->str[n] = 0;
    q->str_len = n;
    return wrap(q, out, e);
}

int srch_q_prefix(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, tok, e);
    return wrap(prefix_node(&p, 0, field, flen_of(field), s, n), out, e);
}

int srch_q_wild(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, tok, e);
    return wrap(wild_node(&p, 0, field, flen_of(field), s, n), out, e);
}

int srch_q_regex(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e)
{
    /* as the query language's /s/: the text between the slashes */
    seg_buf b = {0};
    seg_buf_put_u8(&b, '/');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/')
            seg_buf_put_u8(&b, '\\');
        seg_buf_put_u8(&b, (uint8_t)s[i]);
    }
    seg_buf_put_u8(&b, '/');
    if (b.oom) {
        seg_buf_free(&b);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    P p;
    bp_init(&p, tok, e);
    p.s = (const char *)b.p;
    p.n = b.n;
    int rc = wrap(regex_node(&p, 0, field, flen_of(field)), out, e);
    seg_buf_free(&b);
    return rc;
}

int srch_q_range(const char *field, double lo, int lo_incl, double hi, int hi_incl, srch_query **out, seg_err *e)
{
    qnode *q = node_new(Q_RANGE, 0);
    if (q && set_field(q, field, strlen(field))) {
        node_free(q);
        q = NULL;
    }
    if (q) {
        q->lo = lo;
        q->lo_incl = lo_incl;
        q->hi = hi;
        q->hi_incl = hi_incl;
    }
    return wrap(q, out, e);
}

int srch_q_exists(const char *field, srch_query **out, seg_err *e)
{
    P p;
    bp_init(&p, NULL, e);
    return wrap(exists_node(&p, 0, field, strlen(field)), out, e);
}

int srch_q_bool(int and, srch_query **kids, size_t n, srch_query **out, seg_err *e)
{
    if (n == 1) {
        *out = kids[0];
        return SEG_OK;
    }
    qnode *b = node_new(n == 0 ? (and ? Q_ALL : Q_NONE) : and ? Q_AND : Q_OR, 0);
    for (size_t i = 0; i < n; i++) {
        if (b && add_kid(b, kids[i]->root) == 0)
            kids[i]->root = NULL;
        else {
            node_free(b);
            b = NULL;
        }
        srch_query_free(kids[i]);
    }
    if (!b)
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    return wrap(b, out, e);
}

int srch_q_not(srch_query *kid, srch_query **out, seg_err *e)
{
    qnode *q = node_new(Q_NOT, 0);
    if (q && add_kid(q, kid->root) == 0)
        kid->root = NULL;
    else {
        node_free(q);
        q = NULL;
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    srch_query_free(kid);
    return wrap(q, out, e);
}

int srch_q_ids(const char *const *ids, const size_t *lens, size_t n, srch_query **out, seg_err *e)
{
    qnode *q = node_new(n ? Q_IDS : Q_NONE, 0);
    if (q && n) {
        q->toks = seg_calloc(n, sizeof *q->toks);
        q->tok_lens = seg_calloc(n, sizeof *q->tok_lens);
        for (size_t i = 0; q->toks && q->tok_lens && i < n; i++) {
            if (!(q->toks[i] = seg_strndup(ids[i], lens[i])))
                break;
            q->tok_lens[i] = lens[i];
            q->ntoks++;
        }
        if (q->ntoks != n) {
            node_free(q);
            q = NULL;
            seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        }
    }
    return wrap(q, out, e);
}

static qnode *clone_node(const qnode *q)
{
    qnode *c = node_new(q->type, 0);
    if (!c)
        return NULL;
    c->pos = q->pos;
    c->has_num = q->has_num;
    c->num = q->num;
    c->lo = q->lo;
    c->hi = q->hi;
    c->lo_incl = q->lo_incl;
    c->hi_incl = q->hi_incl;
    c->must = q->must;
    int bad = (q->field && set_field(c, q->field, q->field_len)) ||
              (q->vkey && !(c->vkey = seg_strndup(q->vkey, q->vkey_len))) ||
              (q->str && !(c->str = seg_strndup(q->str, q->str_len)));
    c->vkey_len = q->vkey_len;
    c->str_len = q->str_len;
    if (!bad && q->re) {
        char err[300];
        bad = !(c->re = regex_compile(q->str, q->str_len, err, sizeof err));
    }
    if (!bad && q->ntoks) {
        c->toks = seg_calloc(q->ntoks, sizeof *c->toks);
        c->tok_lens = seg_calloc(q->ntoks, sizeof *c->tok_lens);
        bad = !c->toks || !c->tok_lens;
        for (size_t i = 0; !bad && i < q->ntoks; i++) {
            if (!(c->toks[i] = seg_strndup(q->toks[i], q->tok_lens[i])))
                bad = 1;
            else {
                c->tok_lens[i] = q->tok_lens[i];
                c->ntoks++;
            }
        }
    }
    for (size_t i = 0; !bad && i < q->nkids; i++) {
        qnode *k = clone_node(q->kids[i]);
        if (!k || add_kid(c, k)) {
            node_free(k);
            bad = 1;
        }
    }
    if (bad) {
        node_free(c);
        return NULL;
    }
    return c;
}

int srch_query_clone(const srch_query *q, srch_query **out, seg_err *e)
{
    qnode *c = clone_node(q->root);
    if (!c)
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    return wrap(c, out, e);
}
