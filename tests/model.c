/*
 * model.c -- the brute-force model (see model.h).  Deliberately simple:
 * every query is answered by looking at every value of every event.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "tests/model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct mval {
    char *path;
    int kind;                  /* 0 string, 1 number, 2 bool */
    char *str;
    size_t slen;
    double num;
    int b;
    char **toks;
    size_t ntoks;
} mval;

typedef struct mev {
    int64_t time;
    char *id;
    char *json;
    size_t jlen;
    mval *v;
    size_t nv, cap;
} mev;

struct model {
    seg_tok *tok;
    mev *ev;
    size_t n, cap;
};

model *model_new(seg_tok *tok)
{
    model *m = calloc(1, sizeof *m);
    m->tok = tok;
    return m;
}

static void ev_free(mev *e)
{
    for (size_t i = 0; i < e->nv; i++) {
        free(e->v[i].path);
        free(e->v[i].str);
        for (size_t k = 0; k < e->v[i].ntoks; k++)
            free(e->v[i].toks[k]);
        free(e->v[i].toks);
    }
    free(e->v);
    free(e->id);
    free(e->json);
}

void model_free(model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        ev_free(&m->ev[i]);
    free(m->ev);
    free(m);
}

typedef struct tl {
    char **t;
    size_t n;
} tl;

static void on_tok(void *ud, const char *t, size_t n)
{
    tl *l = ud;
    l->t = realloc(l->t, (l->n + 1) * sizeof *l->t);
    l->t[l->n] = strndup(t, n);
    l->n++;
}

static tl tokens(model *m, const char *s, size_t n)
{
    tl l = {0, 0};
    seg_tok_run(m->tok, s, n, on_tok, &l);
    return l;
}

static void tl_free(tl *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->t[i]);
    free(l->t);
}

static mval *add_val(mev *e, const char *path)
{
    if (e->nv == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->v = realloc(e->v, e->cap * sizeof *e->v);
    }
    mval *v = &e->v[e->nv++];
    memset(v, 0, sizeof *v);
    v->path = strdup(path);
    return v;
}

/* A top-level key is the path; below it, parent "." key; arrays add nothing. */
static void flatten(model *m, mev *e, json_t *j, const char *path)
{
    const char *k;
    json_t *c;
    size_t i;
    char p[2048];
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        json_object_foreach(j, k, c)
        {
            snprintf(p, sizeof p, "%s.%s", path, k);
            flatten(m, e, c, p);
        }
        break;
    case JSON_ARRAY:
        json_array_foreach(j, i, c) flatten(m, e, c, path);
        break;
    case JSON_STRING: {
        mval *v = add_val(e, path);
        v->kind = 0;
        v->slen = json_string_length(j);
        v->str = malloc(v->slen + 1);
        memcpy(v->str, json_string_value(j), v->slen + 1);
        tl l = tokens(m, v->str, v->slen);
        v->toks = l.t;
        v->ntoks = l.n;
        break;
    }
    case JSON_INTEGER:
        add_val(e, path)->kind = 1;
        e->v[e->nv - 1].num = (double)json_integer_value(j);
        break;
    case JSON_REAL:
        add_val(e, path)->kind = 1;
        e->v[e->nv - 1].num = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        add_val(e, path)->kind = 2;
        e->v[e->nv - 1].b = json_is_true(j);
        break;
    default:
        break;
    }
}

int model_add(model *m, const char *line, size_t n, int64_t time_ns)
{
    json_error_t je;
    json_t *j = json_loadb(line, n, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    json_t *id = json_object_get(j, "_id");
    if (id && json_is_string(id)) {
        for (size_t i = 0; i < m->n; i++)
            if (m->ev[i].id && strlen(m->ev[i].id) == json_string_length(id) &&
                !memcmp(m->ev[i].id, json_string_value(id), json_string_length(id))) {
                json_decref(j);
                return 1;
            }
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->ev = realloc(m->ev, m->cap * sizeof *m->ev);
    }
    mev *e = &m->ev[m->n++];
    memset(e, 0, sizeof *e);
    e->time = time_ns;
    e->id = id && json_is_string(id) ? strndup(json_string_value(id), json_string_length(id)) : NULL;
    e->json = strndup(line, n);
    e->jlen = n;
    const char *k;
    json_t *c;
    json_object_foreach(j, k, c) flatten(m, e, c, k);
    json_decref(j);
    return 0;
}

size_t model_count(const model *m) { return m->n; }
const char *model_json(const model *m, size_t i, size_t *len)
{
    *len = m->ev[i].jlen;
    return m->ev[i].json;
}
int64_t model_time(const model *m, size_t i) { return m->ev[i].time; }
const char *model_id(const model *m, size_t i) { return m->ev[i].id; }
size_t model_nvalues(const model *m, size_t i) { return m->ev[i].nv; }

void model_value(const model *m, size_t i, size_t j, const char **path, const char **str, size_t *slen,
                 int *is_num, double *num, int *is_bool)
{
    const mval *v = &m->ev[i].v[j];
    *path = v->path;
    *str = v->kind == 0 ? v->str : NULL;
    *slen = v->slen;
    *is_num = v->kind == 1;
    *num = v->num;
    *is_bool = v->kind == 2;
}

/* a strict JSON number */
static int strict_num(const char *s, double *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return 0;
    *out = strtod(s, NULL);
    return 1;
}

static int field_ok(const mq *q, const mval *v) { return !q->field[0] || !strcmp(q->field, v->path); }

static int seq_in(const mval *v, const tl *t)
{
    if (t->n == 0 || v->ntoks < t->n)
        return 0;
    for (size_t s = 0; s + t->n <= v->ntoks; s++) {
        size_t k = 0;
        while (k < t->n && !strcmp(v->toks[s + k], t->t[k]))
            k++;
        if (k == t->n)
            return 1;
    }
    return 0;
}

/* The next code point of s (at *i < n), advancing *i. */
static unsigned cp_next(const char *s, size_t n, size_t *i)
{
    unsigned char c = (unsigned char)s[(*i)++];
    int more = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    unsigned v = more ? c & (0x3F >> more) : c;
    while (more-- && *i < n)
        v = v << 6 | ((unsigned char)s[(*i)++] & 0x3F);
    return v;
}

/* Pattern p (ASCII letters lower-cased here, as the engine does) against a
 * token, by code points: '*' any run, '?' one code point.  Recursive: the
 * model's own, not the engine's. */
static int wild_match(const char *p, size_t pn, const char *t, size_t tn)
{
    if (pn == 0)
        return tn == 0;
    if (p[0] == '*')
        for (size_t k = 0;; ) {
            if (wild_match(p + 1, pn - 1, t + k, tn - k))
                return 1;
            if (k >= tn)
                return 0;
            cp_next(t, tn, &k);
        }
    if (tn == 0)
        return 0;
    size_t pi = 0, ti = 0;
    unsigned a = p[0] == '?' ? 0 : cp_next(p, pn, &pi), b = cp_next(t, tn, &ti);
    if (p[0] == '?')
        pi = 1;
    else if (a < 128 && a >= 'A' && a <= 'Z')
        a += 32;
    return (p[0] == '?' || a == b) && wild_match(p + pi, pn - pi, t + ti, tn - ti);
}

static const tl *query_tokens(model *m, const mq *q)
{
    mq *w = (mq *)q; /* a cache inside the query node */
    if (!w->qt_done) {
        tl t = tokens(m, q->text, strlen(q->text));
        w->qt = t.t;
        w->nqt = t.n;
        w->qt_done = 1;
    }
    return (const tl *)(const void *)&w->qt;
}

int model_match(model *m, size_t i, const mq *q)
{
    mev *e = &m->ev[i];
    switch (q->type) {
    case M_ALL:
        return 1;
    case M_AND:
        for (int k = 0; k < q->nk; k++)
            if (!model_match(m, i, q->k[k]))
                return 0;
        return 1;
    case M_OR:
        for (int k = 0; k < q->nk; k++)
            if (model_match(m, i, q->k[k]))
                return 1;
        return 0;
    case M_NOT:
        return !model_match(m, i, q->k[0]);
    case M_EXISTS:
        for (size_t j = 0; j < e->nv; j++)
            if (!strcmp(e->v[j].path, q->field))
                return 1;
        return 0;
    case M_RANGE:
        for (size_t j = 0; j < e->nv; j++) {
            const mval *v = &e->v[j];
            if (v->kind != 1 || strcmp(v->path, q->field))
                continue;
            int lo = q->lo_open || v->num > q->lo || (q->lo_incl && v->num == q->lo);
            int hi = q->hi_open || v->num < q->hi || (q->hi_incl && v->num == q->hi);
            if (lo && hi)
                return 1;
        }
        return 0;
    case M_REGEX: {
        mq *w = (mq *)q;
        if (!w->re) {
            int ec;
            PCRE2_SIZE eo;
            w->re = pcre2_compile((PCRE2_SPTR)q->text, PCRE2_ZERO_TERMINATED,
                                  PCRE2_CASELESS | PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &ec, &eo, NULL);
            if (!w->re)
                return 0;
        }
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        int hit = 0;
        for (size_t j = 0; j < e->nv && !hit; j++) {
            const mval *v = &e->v[j];
            if (v->kind != 0 || !field_ok(q, v))
                continue;
            for (size_t k = 0; k < v->ntoks && !hit; k++)
                hit = pcre2_match(w->re, (PCRE2_SPTR)v->toks[k], strlen(v->toks[k]), 0, 0, md, NULL) >= 0;
        }
        pcre2_match_data_free(md);
        return hit;
    }
    case M_WILD:
        for (size_t j = 0; j < e->nv; j++) {
            const mval *v = &e->v[j];
            if (v->kind != 0 || !field_ok(q, v))
                continue;
            for (size_t k = 0; k < v->ntoks; k++)
                if (wild_match(q->text, strlen(q->text), v->toks[k], strlen(v->toks[k])))
                    return 1;
        }
        return 0;
    case M_PREFIX: {
        const tl *t = query_tokens(m, q);
        int hit = 0;
        size_t pl = t->n ? strlen(t->t[0]) : 0;
        for (size_t j = 0; t->n == 1 && j < e->nv && !hit; j++) {
            const mval *v = &e->v[j];
            if (v->kind != 0 || !field_ok(q, v))
                continue;
            for (size_t k = 0; k < v->ntoks && !hit; k++)
                hit = !strncmp(v->toks[k], t->t[0], pl);
        }
        return hit;
    }
    case M_WORD:
    case M_PHRASE: {
        const tl *t = query_tokens(m, q);
        double num = 0;
        int isnum = q->type == M_WORD && q->field[0] && strict_num(q->text, &num);
        int isbool = q->type == M_WORD && q->field[0] &&
                     (!strcasecmp(q->text, "true") || !strcasecmp(q->text, "false"));
        int bv = isbool && !strcasecmp(q->text, "true");
        int hit = 0;
        for (size_t j = 0; j < e->nv && !hit; j++) {
            const mval *v = &e->v[j];
            if (!field_ok(q, v))
                continue;
            if (v->kind == 0)
                hit = seq_in(v, t);
            else if (v->kind == 1)
                hit = isnum && v->num == num;
            else
                hit = isbool && v->b == bv;
        }
        return hit;
    }
    }
    return 0;
}

mq *mq_new(int type)
{
    mq *q = calloc(1, sizeof *q);
    q->type = type;
    return q;
}

void mq_free(mq *q)
{
    if (!q)
        return;
    for (int k = 0; k < q->nk; k++)
        mq_free(q->k[k]);
    tl t = {q->qt, q->nqt};
    tl_free(&t);
    pcre2_code_free(q->re);
    free(q);
}

static void fmt_num(char *b, size_t n, double v) { snprintf(b, n, "%.17g", v); }

static void render(const mq *q, seg_buf *o, int parent)
{
    char b[512];
    int paren = (q->type == M_OR && parent == M_AND) || (q->type == M_OR && parent == M_NOT) ||
                (q->type == M_AND && parent == M_NOT);
    if (paren)
        seg_buf_put_u8(o, '(');
    const char *f = q->field;
    switch (q->type) {
    case M_ALL:
        seg_buf_put_u8(o, '*');
        break;
    case M_WORD:
        snprintf(b, sizeof b, "%s%s%s", f, *f ? ":" : "", q->text);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_PHRASE:
        snprintf(b, sizeof b, "%s%s\"%s\"", f, *f ? ":" : "", q->text);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_PREFIX:
        snprintf(b, sizeof b, "%s%s%s*", f, *f ? ":" : "", q->text);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_REGEX:
        snprintf(b, sizeof b, "%s%s/%s/", f, *f ? ":" : "", q->text);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_WILD:
        snprintf(b, sizeof b, "%s%s%s", f, *f ? ":" : "", q->text);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_EXISTS:
        snprintf(b, sizeof b, "%s:*", f);
        seg_buf_put(o, b, strlen(b));
        break;
    case M_RANGE: {
        char lo[64], hi[64];
        fmt_num(lo, sizeof lo, q->lo);
        fmt_num(hi, sizeof hi, q->hi);
        switch (q->form) {
        case R_GT: snprintf(b, sizeof b, "%s:>%s", f, lo); break;
        case R_GE: snprintf(b, sizeof b, "%s:>=%s", f, lo); break;
        case R_LT: snprintf(b, sizeof b, "%s:<%s", f, hi); break;
        case R_LE: snprintf(b, sizeof b, "%s:<=%s", f, hi); break;
        default:
            snprintf(b, sizeof b, "%s:%c%s TO %s%c", f, q->lo_incl ? '[' : '{', q->lo_open ? "*" : lo,
                     q->hi_open ? "*" : hi, q->hi_incl ? ']' : '}');
        }
        seg_buf_put(o, b, strlen(b));
        break;
    }
    case M_NOT:
        seg_buf_put(o, q->minus ? "-" : "NOT ", q->minus ? 1 : 4);
        render(q->k[0], o, M_NOT);
        break;
    case M_AND:
    case M_OR:
        for (int k = 0; k < q->nk; k++) {
            if (k)
                seg_buf_put(o, q->type == M_OR ? " OR " : (q->implicit ? " " : " AND "),
                            q->type == M_OR ? 4 : (q->implicit ? 1 : 5));
            render(q->k[k], o, q->type);
        }
        break;
    }
    if (paren)
        seg_buf_put_u8(o, ')');
}

const char *mq_render(const mq *q)
{
    static char out[8192];
    seg_buf b = {0};
    render(q, &b, -1);
    snprintf(out, sizeof out, "%.*s", (int)b.n, (const char *)b.p);
    seg_buf_free(&b);
    return out;
}
