/*
 * t_diff.c -- the differential test: the engine against the brute-force
 * model (tests/model.c) on every query form.
 *
 * 1. Generated corpus: events over 6 hours (several 1-hour buckets), a small
 *    flush buffer so that each bucket holds several segments, two ingest
 *    runs (the second resends ids of the first), late events, equal times,
 *    fields that are numbers in some events and strings in others, nested
 *    objects, arrays of strings and of objects, null/[]/{} values, several
 *    languages.  Random queries of every form, with and without time
 *    ranges, compared on: total, the first page in order, and (for some)
 *    every page walked through the cursor.
 * 2. Real logs from ../shared/data when present (skipped otherwise): counts
 *    and hit sets of queries made from the data's own tokens and fields.
 * After each ingest every segment is verified.
 */
#include "indexer/idx.h"
#include "searcher/srch.h"
#include "searcher/srch_exec.h"
#include "tests/model.h"
#include "tests/tap.h"
#include "tests/testdir.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rs = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return n ? (unsigned)(rs % n) : 0;
}

static const char *const words[] = {
    "error", "request", "user", "login", "failed", "timeout", "connection", "database", "server", "started",
    "stopped", "GET", "POST", "cache", "miss", "hit", "disk", "full", "retry", "upstream", "refused", "token",
    "expired", "payment", "order", "created", "deleted", "queue", "worker", "panic", "null", "true", "500",
    "404", "v2", "api", "東京", "café", "Straße", "안녕", "naïve", "データ", "ERROR", "Timeout", "db-01",
    "x86_64", "error42", "reset", "peer", "slow",
    /* tokens of hex digits (packed two a byte in the dictionary), with
     * shared prefixes, odd lengths and a non-hex tail */
    "deadbeef", "deadbeefc", "dead", "deadbeefz", "c0ffee42", "0f", "a", "abcdef0123456789a", "7"};
#define NWORDS (sizeof words / sizeof *words)

static const char *zipf_word(void)
{
    /* roughly Zipf: small indexes much more often */
    unsigned a = rnd(NWORDS), b = rnd(NWORDS);
    return words[a < b ? a : b];
}

static void put_str(seg_buf *b, const char *s) { seg_buf_put(b, s, strlen(s)); }

static void json_str(seg_buf *b, const char *s)
{
    seg_buf_put_u8(b, '"');
    put_str(b, s);
    seg_buf_put_u8(b, '"');
}

#define T0 1709251200000000000LL /* 2024-03-01T00:00:00Z */
#define SPAN (6LL * 3600 * 1000000000LL)

typedef struct gen_ev {
    char *line;
    int64_t time;
} gen_ev;

static void fmt_time(seg_buf *b, int64_t t, int style)
{
    char buf[64];
    if (style == 0) {
        char tb[40];
        seg_time_format(t, tb);
        /* seg_time_format gives ms: write the full ns fraction ourselves */
        snprintf(buf, sizeof buf, "\"%.19s.%09lldZ\"", tb, (long long)(t % 1000000000LL));
    } else if (style == 1) {
        /* +02:00 offset */
        char tb[40];
        seg_time_format(t + 7200000000000LL, tb);
        snprintf(buf, sizeof buf, "\"%.19s.%09lld+02:00\"", tb, (long long)(t % 1000000000LL));
    } else {
        snprintf(buf, sizeof buf, "%lld", (long long)(t / 1000000)); /* epoch ms */
    }
    put_str(b, buf);
}

/* One generated event.  id < 0: no _id (then the time is unique). */
static char *gen_line(long id, int64_t t, int time_style)
{
    seg_buf b = {0};
    char num[64];
    put_str(&b, "{");
    if (time_style == 2) {
        put_str(&b, "\"ts\":");
    } else {
        put_str(&b, "\"@timestamp\":");
    }
    fmt_time(&b, t, time_style);
    if (id >= 0) {
        snprintf(num, sizeof num, ",\"_id\":\"id-%ld\"", id);
        put_str(&b, num);
    }
    put_str(&b, ",\"msg\":\"");
    int nw = 3 + (int)rnd(8);
    for (int i = 0; i < nw; i++) {
        if (i)
            put_str(&b, rnd(5) ? " " : ", ");
        put_str(&b, zipf_word());
    }
    put_str(&b, "\"");
    static const char *const levels[] = {"info", "warn", "error", "debug"};
    put_str(&b, ",\"level\":");
    json_str(&b, levels[rnd(4)]);
    static const char *const svc[] = {"api", "db", "web-01", "auth-service"};
    put_str(&b, ",\"service\":");
    json_str(&b, svc[rnd(4)]);
    snprintf(num, sizeof num, ",\"host\":{\"name\":\"web-%u\",\"ip\":\"10.0.0.%u\"}", 1 + rnd(5), rnd(256));
    put_str(&b, num);
    static const int st[] = {200, 201, 301, 404, 500, 503};
    snprintf(num, sizeof num, ",\"status\":%d", st[rnd(6)]);
    put_str(&b, num);
    if (rnd(3))
        snprintf(num, sizeof num, ",\"latency\":%u.%u", rnd(1000), rnd(10));
    else
        snprintf(num, sizeof num, ",\"latency\":%u", rnd(1000));
    put_str(&b, num);
    if (rnd(4)) {
        put_str(&b, ",\"tags\":[");
        int nt = (int)rnd(4);
        for (int i = 0; i < nt; i++) {
            if (i)
                put_str(&b, ",");
            json_str(&b, zipf_word());
        }
        put_str(&b, "]");
    }
    put_str(&b, rnd(2) ? ",\"ok\":true" : ",\"ok\":false");
    switch (rnd(4)) { /* a field that is a number here and a string there */
    case 0: snprintf(num, sizeof num, ",\"user\":%u", rnd(100)); break;
    case 1: snprintf(num, sizeof num, ",\"user\":\"user%u\"", rnd(100)); break;
    case 2: snprintf(num, sizeof num, ",\"user\":\"%u\"", rnd(100)); break;
    default: num[0] = 0;
    }
    put_str(&b, num);
    if (rnd(3)) {
        /* integers spanning more than 2^32 within a column block */
        snprintf(num, sizeof num, ",\"big\":%lld", ((long long)rnd(600) - 20) * 10000000000LL + (long long)rnd(10));
        put_str(&b, num);
    }
    switch (rnd(5)) {
    case 0: put_str(&b, ",\"code\":500"); break;
    case 1: put_str(&b, ",\"code\":\"E500\""); break;
    case 2: put_str(&b, ",\"code\":-12.5"); break;
    default: break;
    }
    switch (rnd(6)) {
    case 0: put_str(&b, ",\"extra\":null"); break;
    case 1: put_str(&b, ",\"extra\":[]"); break;
    case 2: put_str(&b, ",\"extra\":{}"); break;
    case 3: put_str(&b, ",\"extra\":\"\""); break;
    default: break;
    }
    if (!rnd(3)) {
        put_str(&b, ",\"nested\":{\"a\":{\"b\":");
        json_str(&b, zipf_word());
        put_str(&b, "}}");
    }
    if (!rnd(4)) {
        put_str(&b, ",\"arr\":[{\"k\":");
        json_str(&b, zipf_word());
        put_str(&b, "},{\"k\":");
        json_str(&b, zipf_word());
        put_str(&b, ",\"n\":");
        snprintf(num, sizeof num, "%u", rnd(50));
        put_str(&b, num);
        put_str(&b, "}]");
    }
    put_str(&b, "}");
    seg_buf_put_u8(&b, 0);
    return (char *)b.p;
}

/* ---- query generation ---- */

static const char *const text_fields[] = {"msg", "level", "service", "host.name", "tags", "user", "code",
                                          "nested.a.b", "arr.k", "host.ip"};
static const char *const num_fields[] = {"status", "latency", "user", "code", "arr.n", "big"};
static const char *const all_fields[] = {"msg", "user", "code", "extra", "nested.a.b", "tags", "arr.n",
                                         "nested", "missing", "ok", "latency"};

static model *M;

static void set_text(mq *q, const char *s) { snprintf(q->text, sizeof q->text, "%s", s); }

/* a word safe to write bare in a query */
static const char *bare_word(void)
{
    for (;;) {
        const char *w = zipf_word();
        if (strcmp(w, "null") && strcmp(w, "true"))
            return w;
    }
}

/* two consecutive words of some event's msg (so phrases have hits) */
static void phrase_from_data(mq *q)
{
    size_t i = rnd((unsigned)model_count(M));
    for (size_t j = 0; j < model_nvalues(M, i); j++) {
        const char *path, *str;
        size_t sl;
        int isn, isb;
        double num;
        model_value(M, i, j, &path, &str, &sl, &isn, &num, &isb);
        if (!str || strcmp(path, "msg"))
            continue;
        /* take a word boundary window of the raw string */
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(sl < 255 ? sl : 255), str);
        char *save, *w1 = strtok_r(tmp, " ,", &save);
        int skip = (int)rnd(3);
        while (w1 && skip--)
            w1 = strtok_r(NULL, " ,", &save);
        char *w2 = w1 ? strtok_r(NULL, " ,", &save) : NULL;
        if (w1 && w2) {
            snprintf(q->text, sizeof q->text, "%s %s", w1, w2);
            return;
        }
    }
    snprintf(q->text, sizeof q->text, "%s %s", bare_word(), bare_word());
}

/* A wildcard pattern from a data word: its first token (cut at a
 * separator), then a leading '*', a '?' for one ASCII character, or a '*'
 * inside; at least one letter or digit stays. */
static void wild_from_data(mq *q)
{
    const char *w = bare_word();
    size_t l = strlen(w), cut = l;
    for (size_t i = 0; i < l; i++)
        if ((w[i] == '-' || w[i] == '_') && cut == l)
            cut = i;
    char t[128];
    snprintf(t, sizeof t, "%.*s", (int)cut, w);
    size_t n = strlen(t);
    switch (rnd(3)) {
    case 0: { /* *suffix (the suffix starts on a character boundary) */
        size_t k = n > 2 ? rnd((unsigned)(n - 1)) : 0;
        while (k && ((unsigned char)t[k] & 0xC0) == 0x80)
            k--;
        snprintf(q->text, sizeof q->text, "*%s", t + k);
        break;
    }
    case 1: { /* one ASCII character as '?' */
        size_t k = rnd((unsigned)n);
        if ((unsigned char)t[k] < 0x80 && n > 1)
            t[k] = '?';
        snprintf(q->text, sizeof q->text, "%s%s", t, strchr(t, '?') ? "" : "*x*");
        break;
    }
    default: { /* head*tail */
        size_t a = n > 1 ? 1 + rnd((unsigned)(n - 1)) : n;
        while (a < n && ((unsigned char)t[a] & 0xC0) == 0x80)
            a++;
        snprintf(q->text, sizeof q->text, "%.*s*%s", (int)a, t, rnd(2) ? t + n - (n > a ? 1 : 0) : "");
        if (((unsigned char)q->text[strlen(q->text) - 1] & 0xC0) == 0x80 || q->text[strlen(q->text) - 1] == '*')
            snprintf(q->text, sizeof q->text, "%.*s*%c", (int)a, t, 'e');
        break;
    }
    }
    if (!rnd(3))
        snprintf(q->field, sizeof q->field, "%s", rnd(2) ? "msg" : "tags");
}

/* A regular expression from data words: one token with a '.', a tail
 * '.*', a class, or an alternation of two tokens. */
static void regex_from_data(mq *q)
{
    char t[2][128];
    for (int k = 0; k < 2; k++) {
        const char *w = bare_word();
        size_t l = strlen(w), cut = l;
        for (size_t i = 0; i < l; i++)
            if ((w[i] == '-' || w[i] == '_') && cut == l)
                cut = i;
        snprintf(t[k], sizeof t[k], "%.*s", (int)cut, w);
    }
    size_t n = strlen(t[0]);
    switch (rnd(4)) {
    case 0: { /* one ASCII character as '.' */
        size_t k = rnd((unsigned)n);
        if ((unsigned char)t[0][k] < 0x80)
            t[0][k] = '.';
        snprintf(q->text, sizeof q->text, "%s", t[0]);
        break;
    }
    case 1: { /* head.* */
        size_t a = n > 1 ? 1 + rnd((unsigned)(n - 1)) : n;
        while (a < n && ((unsigned char)t[0][a] & 0xC0) == 0x80)
            a++;
        snprintf(q->text, sizeof q->text, "%.*s.*", (int)a, t[0]);
        break;
    }
    case 2: /* a letter, then letters or digits */
        snprintf(q->text, sizeof q->text, "%c[a-z0-9]+", ((unsigned char)t[0][0] < 0x80 && isalpha((unsigned char)t[0][0])) ? t[0][0] : 'e');
        break;
    default:
        snprintf(q->text, sizeof q->text, "(%s|%s)", t[0], t[1]);
        break;
    }
    if (!rnd(3))
        snprintf(q->field, sizeof q->field, "%s", rnd(2) ? "msg" : "tags");
}

static mq *gen_leaf(void)
{
    mq *q;
    switch (rnd(14)) {
    case 13:
        q = mq_new(M_REGEX);
        regex_from_data(q);
        return q;
    case 12:
        q = mq_new(M_WILD);
        wild_from_data(q);
        return q;
    case 0:
    case 1:
        q = mq_new(M_WORD);
        set_text(q, bare_word());
        return q;
    case 2:
        q = mq_new(M_PHRASE);
        phrase_from_data(q);
        return q;
    case 3: /* a phrase across array elements must not match */
        q = mq_new(M_PHRASE);
        snprintf(q->field, sizeof q->field, "%s", rnd(2) ? "tags" : "");
        snprintf(q->text, sizeof q->text, "%s %s", bare_word(), bare_word());
        return q;
    case 4:
        q = mq_new(M_WORD);
        snprintf(q->field, sizeof q->field, "%s", text_fields[rnd(sizeof text_fields / sizeof *text_fields)]);
        if (!strcmp(q->field, "host.name"))
            snprintf(q->text, sizeof q->text, "web-%u", 1 + rnd(5));
        else if (!strcmp(q->field, "user"))
            snprintf(q->text, sizeof q->text, rnd(2) ? "%u" : "user%u", rnd(100));
        else if (!strcmp(q->field, "code"))
            set_text(q, rnd(2) ? "500" : (rnd(2) ? "E500" : "-12.5"));
        else if (!strcmp(q->field, "level"))
            set_text(q, rnd(2) ? "error" : "INFO");
        else if (!strcmp(q->field, "service"))
            set_text(q, rnd(2) ? "web-01" : "auth");
        else
            set_text(q, bare_word());
        return q;
    case 5: {
        q = mq_new(M_WORD);
        static const char *const nv[] = {"status:500", "status:404", "latency:12", "ok:true", "ok:false",
                                         "status:5e2", "arr.n:7", "user:42"};
        const char *s = nv[rnd(sizeof nv / sizeof *nv)];
        const char *c = strchr(s, ':');
        snprintf(q->field, sizeof q->field, "%.*s", (int)(c - s), s);
        set_text(q, c + 1);
        return q;
    }
    case 6: {
        q = mq_new(M_PREFIX);
        const char *w = bare_word();
        size_t l = strlen(w);
        /* one token: stop at a separator; ASCII words are cut to 2-4 chars */
        int ascii = 1;
        size_t cut = l;
        for (size_t i = 0; i < l; i++) {
            ascii &= (unsigned char)w[i] < 0x80;
            if ((w[i] == '-' || w[i] == '_') && cut == l)
                cut = i;
        }
        if (ascii && cut > 2)
            cut = 2 + rnd(3) < cut ? 2 + rnd(3) : cut;
        snprintf(q->text, sizeof q->text, "%.*s", (int)cut, w);
        if (!rnd(3))
            snprintf(q->field, sizeof q->field, "%s", rnd(2) ? "msg" : "tags");
        return q;
    }
    case 7:
    case 8: {
        q = mq_new(M_RANGE);
        snprintf(q->field, sizeof q->field, "%s", num_fields[rnd(sizeof num_fields / sizeof *num_fields)]);
        double a = (double)rnd(600) - 20, b = a + rnd(400);
        if (!strcmp(q->field, "latency") && rnd(2)) {
            a += 0.5;
            b += 0.5;
        }
        if (!strcmp(q->field, "big")) {
            a = a * 1e10 + rnd(10);
            b = b * 1e10 + rnd(10);
        }
        q->form = (int)rnd(5);
        q->lo = a;
        q->hi = b;
        switch (q->form) {
        case R_GT: q->hi_open = 1; break;
        case R_GE: q->lo_incl = 1; q->hi_open = 1; break;
        case R_LT: q->lo_open = 1; break;
        case R_LE: q->lo_open = 1; q->hi_incl = 1; break;
        default:
            q->lo_incl = (int)rnd(2);
            q->hi_incl = (int)rnd(2);
            q->lo_open = !rnd(5);
            q->hi_open = !q->lo_open && !rnd(5);
            if (q->lo_open)
                q->lo_incl = 1;
            if (q->hi_open)
                q->hi_incl = 1;
        }
        return q;
    }
    case 9:
        q = mq_new(M_EXISTS);
        snprintf(q->field, sizeof q->field, "%s", all_fields[rnd(sizeof all_fields / sizeof *all_fields)]);
        return q;
    case 10:
        q = mq_new(M_ALL);
        return q;
    default:
        q = mq_new(M_WORD);
        set_text(q, rnd(2) ? "zzzunknown" : "db-01");
        return q;
    }
}

static mq *gen_query(int depth)
{
    if (depth >= 3 || rnd(3) == 0)
        return gen_leaf();
    unsigned k = rnd(5);
    if (k == 0) {
        mq *q = mq_new(M_NOT);
        q->minus = (int)rnd(2);
        q->k[q->nk++] = gen_query(depth + 1);
        return q;
    }
    mq *q = mq_new(k <= 2 ? M_AND : M_OR);
    q->implicit = (int)rnd(2);
    int n = 2 + (int)rnd(2);
    for (int i = 0; i < n; i++)
        q->k[q->nk++] = gen_query(depth + 1);
    return q;
}

/* ---- comparing ---- */

typedef struct mhit {
    int64_t t;
    const char *id;
    const char *json;
    size_t len;
} mhit;

static int mhit_cmp(const void *pa, const void *pb)
{
    const mhit *a = pa, *b = pb;
    if (a->t != b->t)
        return a->t > b->t ? -1 : 1;
    if (a->id && b->id)
        return strcmp(a->id, b->id);
    return 0;
}

static int json_cmp(const void *pa, const void *pb)
{
    const mhit *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->json, b->json, n);
    return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

static seg_tok *TOK;
static srch_pool *POOL;

/* Runs the engine; returns its hits in *hits (order kept). */
static int engine(srch_index *ix, const char *qs, int has_s, int64_t s, int has_e, int64_t e, size_t limit,
                  const char *cursor, srch_result *res, char *err, size_t errn)
{
    srch_query *q;
    seg_err se = {0};
    if (srch_query_parse(qs, strlen(qs), TOK, &q, &se)) {
        snprintf(err, errn, "parse: %s", se.msg);
        return -1;
    }
    srch_request rq = {q, has_s, has_e, s, e, limit, cursor, 0, NULL, 0};
    int rc = srch_search(ix, &rq, res, &se);
    srch_query_free(q);
    if (rc)
        snprintf(err, errn, "search: %s", se.msg);
    return rc;
}

static int check_generated(srch_index *ix, int nq)
{
    long bad = 0, walked = 0, nonempty = 0;
    mhit *exp = malloc(model_count(M) * sizeof *exp);
    for (int qi = 0; qi < nq; qi++) {
        mq *q = gen_query(0);
        char qs[8192];
        snprintf(qs, sizeof qs, "%s", mq_render(q));
        int has_s = 0, has_e = 0;
        int64_t s = 0, e = 0;
        if (rnd(3) == 0) {
            has_s = (int)rnd(2);
            has_e = !has_s || rnd(2);
            s = T0 + (int64_t)rnd(6 * 60) * 60000000000LL;
            e = s + (int64_t)(1 + rnd(180)) * 60000000000LL;
        }
        size_t ne = 0;
        for (size_t i = 0; i < model_count(M); i++) {
            int64_t t = model_time(M, i);
            if ((has_s && t < s) || (has_e && t >= e) || !model_match(M, i, q))
                continue;
            exp[ne].t = t;
            exp[ne].id = model_id(M, i);
            exp[ne].json = model_json(M, i, &exp[ne].len);
            ne++;
        }
        qsort(exp, ne, sizeof *exp, mhit_cmp);
        nonempty += ne > 0;
        srch_result res;
        char err[1024];
        size_t limit = 10;
        if (engine(ix, qs, has_s, s, has_e, e, limit, NULL, &res, err, sizeof err)) {
            if (bad++ < 10)
                tap_diag("query '%s': %s", qs, err);
            mq_free(q);
            continue;
        }
        int good = res.total == ne && res.nhits == (ne < limit ? ne : limit);
        for (size_t k = 0; good && k < res.nhits; k++)
            good = res.hits[k].json_len == exp[k].len && !memcmp(res.hits[k].json, exp[k].json, exp[k].len);
        good = good && ((ne > limit) == (res.cursor != NULL));
        if (!good && bad++ < 10)
            tap_diag("query '%s' [%s%lld,%s%lld): engine total %llu (%zu hits), model %zu", qs, has_s ? "" : "-",
                     (long long)(has_s ? (s - T0) / 60000000000LL : 0), has_e ? "" : "+",
                     (long long)(has_e ? (e - T0) / 60000000000LL : 0), (unsigned long long)res.total, res.nhits, ne);
        /* walk every page for some queries */
        if (good && rnd(3) == 0 && ne > 0 && ne <= 300) {
            walked++;
            size_t seen = 0;
            char *cur = res.cursor ? strdup(res.cursor) : NULL;
            seen = res.nhits;
            while (cur && good) {
                srch_result page;
                if (engine(ix, qs, has_s, s, has_e, e, 7, cur, &page, err, sizeof err)) {
                    good = 0;
                    break;
                }
                for (size_t k = 0; good && k < page.nhits; k++, seen++)
                    good = seen < ne && page.hits[k].json_len == exp[seen].len &&
                           !memcmp(page.hits[k].json, exp[seen].json, exp[seen].len);
                free(cur);
                cur = page.cursor ? strdup(page.cursor) : NULL;
                good = good && page.total == ne && page.nhits > 0;
                srch_result_free(&page);
            }
            free(cur);
            if (!(good && seen == ne)) {
                if (bad++ < 10)
                    tap_diag("query '%s': walking pages gave %zu of %zu in order", qs, seen, ne);
            }
        }
        srch_result_free(&res);
        mq_free(q);
    }
    free(exp);
    if (nq >= 100)
        tap_diag("%d generated queries, %ld with matches, %ld walked through every page", nq, nonempty, walked);
    return (int)bad;
}

/* ---- other orders (sort=FIELD:asc|desc, _time:asc) against the model ---- */

static size_t event_nums(size_t i, const char *f, double *out, size_t max);

typedef struct sexp {
    int has;
    double v;
    int64_t t;
    const char *id;
    const char *json;
    size_t len;
} sexp;

static int SORT_ASC, SORT_TIME;

static int sexp_cmp(const void *pa, const void *pb)
{
    const sexp *a = pa, *b = pb;
    if (SORT_TIME) {
        if (a->t != b->t)
            return a->t < b->t ? -1 : 1;
    } else {
        if (a->has != b->has)
            return a->has ? -1 : 1;
        if (a->has && a->v != b->v)
            return (a->v < b->v) == SORT_ASC ? -1 : 1;
        if (a->t != b->t)
            return a->t > b->t ? -1 : 1;
    }
    if (a->id && b->id)
        return strcmp(a->id, b->id);
    return 0;
}

/* Queries in other orders: the first page and, for some, every page (7 a
 * page) equal the model's order. */
static int check_sorted(srch_index *ix, int nq)
{
    long bad = 0, walked = 0;
    sexp *exp = malloc(model_count(M) * sizeof *exp);
    for (int qi = 0; qi < nq; qi++) {
        mq *q = gen_query(0);
        char qs[8192];
        snprintf(qs, sizeof qs, "%s", rnd(3) == 0 ? "*" : mq_render(q));
        SORT_TIME = rnd(4) == 0;
        SORT_ASC = SORT_TIME || rnd(2);
        const char *field = SORT_TIME ? "_time" : num_fields[rnd(sizeof num_fields / sizeof *num_fields)];
        size_t ne = 0;
        for (size_t i = 0; i < model_count(M); i++) {
            if (strcmp(qs, "*") && !model_match(M, i, q))
                continue;
            sexp *x = &exp[ne++];
            memset(x, 0, sizeof *x);
            x->t = model_time(M, i);
            x->id = model_id(M, i);
            x->json = model_json(M, i, &x->len);
            double v[64];
            size_t nv = SORT_TIME ? 0 : event_nums(i, field, v, 64);
            for (size_t k = 0; k < nv; k++)
                if (!x->has || (SORT_ASC ? v[k] < x->v : v[k] > x->v))
                    x->v = v[k], x->has = 1;
        }
        qsort(exp, ne, sizeof *exp, sexp_cmp);
        srch_query *pq;
        seg_err se = {0};
        if (srch_query_parse(qs, strlen(qs), TOK, &pq, &se)) {
            if (bad++ < 10)
                tap_diag("sorted query '%s': parse: %s", qs, se.msg);
            mq_free(q);
            continue;
        }
        int walk = rnd(4) == 0 && ne <= 400;
        size_t seen = 0, limit = walk ? 7 : 10;
        char *cur = NULL;
        int good = 1;
        do {
            srch_request rq = {pq, 0, 0, 0, 0, limit, cur, 0, field, SORT_ASC};
            srch_result res;
            seg_err e2 = {0};
            if (srch_search(ix, &rq, &res, &e2)) {
                if (bad++ < 10)
                    tap_diag("sorted query '%s' by %s %s: %s", qs, field, SORT_ASC ? "asc" : "desc", e2.msg);
                good = -1;
                break;
            }
            good = res.total == ne;
            for (size_t k = 0; good && k < res.nhits; k++, seen++)
                good = seen < ne && res.hits[k].json_len == exp[seen].len &&
                       !memcmp(res.hits[k].json, exp[seen].json, exp[seen].len);
            free(cur);
            cur = res.cursor ? strdup(res.cursor) : NULL;
            srch_result_free(&res);
        } while (good == 1 && walk && cur);
        free(cur);
        if (good == 1 && (walk ? seen != ne : seen != (ne < limit ? ne : limit)))
            good = 0;
        walked += walk && good == 1;
        if (good == 0 && bad++ < 10)
            tap_diag("sorted query '%s' by %s %s: %zu of %zu in the model's order", qs, field,
                     SORT_ASC ? "asc" : "desc", seen, ne);
        srch_query_free(pq);
        mq_free(q);
    }
    free(exp);
    tap_diag("%d sorted queries, %ld walked through every page", nq, walked);
    return (int)bad;
}

/* ---- aggregations against the model ---- */

typedef struct mkey {
    int is_str;
    const char *s;
    size_t n;
    double v;
} mkey;

static int mkey_eq(const mkey *a, const mkey *b)
{
    return a->is_str == b->is_str && (a->is_str ? a->n == b->n && !memcmp(a->s, b->s, a->n) : a->v == b->v);
}

/* The next value of field f in event i from value *j on: 1 (and *j past
 * it), or 0 at the end. */
static int next_value(size_t i, const char *f, size_t *j, const char **str, size_t *sl, int *isn, double *num)
{
    for (; *j < model_nvalues(M, i); (*j)++) {
        const char *path;
        int isb;
        model_value(M, i, *j, &path, str, sl, isn, num, &isb);
        if (!strcmp(path, f)) {
            (*j)++;
            return 1;
        }
    }
    return 0;
}

/* The keys of field f in event i (strings up to 256 bytes, numbers),
 * each once. */
static size_t event_keys(size_t i, const char *f, mkey *out, size_t max)
{
    size_t k = 0, j = 0;
    const char *str;
    size_t sl;
    int isn;
    double num;
    while (k < max && next_value(i, f, &j, &str, &sl, &isn, &num)) {
        mkey key = {str != NULL, str, sl, num == 0 ? 0 : num};
        if (!str && !isn)
            continue;
        if (str && sl > SEG_KEYWORD_MAX)
            continue;
        int dup = 0;
        for (size_t q = 0; q < k && !dup; q++)
            dup = mkey_eq(&out[q], &key);
        if (!dup)
            out[k++] = key;
    }
    return k;
}

/* Distinct keys of field f over the events idx[0..n). */
static size_t distinct_keys(const size_t *idx, size_t n, const char *f)
{
    mkey *keys = malloc((n * 8 + 1) * sizeof *keys);
    size_t nk = 0;
    for (size_t k = 0; k < n; k++) {
        mkey ek[8];
        size_t m = event_keys(idx[k], f, ek, 8);
        for (size_t q = 0; q < m; q++) {
            int dup = 0;
            for (size_t z = 0; z < nk && !dup; z++)
                dup = mkey_eq(&keys[z], &ek[q]);
            if (!dup)
                keys[nk++] = ek[q];
        }
    }
    free(keys);
    return nk;
}

static size_t event_nums(size_t i, const char *f, double *out, size_t max)
{
    size_t k = 0, j = 0;
    const char *str;
    size_t sl;
    int isn;
    double num;
    while (k < max && next_value(i, f, &j, &str, &sl, &isn, &num))
        if (isn)
            out[k++] = num;
    return k;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Compares the metric aggregation a's result r with the model over the
 * events idx[0..n). */
static int check_metric(const srch_agg *a, const srch_agg_result *r, const size_t *idx, size_t n, char *why,
                        size_t whyn)
{
    double *vals = malloc((n * 8 + 1) * sizeof *vals);
    size_t nv = 0;
    for (size_t k = 0; k < n; k++)
        nv += event_nums(idx[k], a->field, vals + nv, 8);
    int good = 1;
    if (a->type == SRCH_AGG_STATS) {
        double mn = 0, mx = 0, sum = 0;
        for (size_t k = 0; k < nv; k++) {
            if (!k || vals[k] < mn)
                mn = vals[k];
            if (!k || vals[k] > mx)
                mx = vals[k];
            sum += vals[k];
        }
        good = r->count == nv && (!nv || (r->min == mn && r->max == mx && fabs(r->sum - sum) <= 1e-6 * (1 + fabs(sum))));
        if (!good)
            snprintf(why, whyn, "stats: count %llu/%zu min %g/%g max %g/%g sum %g/%g", (unsigned long long)r->count, nv,
                     r->min, mn, r->max, mx, r->sum, sum);
    } else if (a->type == SRCH_AGG_PERCENTILES) {
        qsort(vals, nv, sizeof *vals, dcmp);
        for (size_t p = 0; p < a->npercents && good; p++) {
            if (!nv) {
                good = isnan(r->pvalues[p]);
                continue;
            }
            double exact = vals[(size_t)floor(a->percents[p] / 100.0 * (double)(nv - 1))];
            good = fabs(r->pvalues[p] - exact) <= SRCH_PCT_ALPHA * fabs(exact) + 1e-9;
            if (!good)
                snprintf(why, whyn, "p%g: %g, exact %g (%zu values)", a->percents[p], r->pvalues[p], exact, nv);
        }
    } else if (a->type == SRCH_AGG_CARDINALITY) {
        size_t nk = distinct_keys(idx, n, a->field);
        double err = fabs((double)r->cardinality - (double)nk);
        good = err <= 0.02 * (double)nk + 1;
        if (!good)
            snprintf(why, whyn, "cardinality %llu, exact %zu", (unsigned long long)r->cardinality, nk);
    }
    free(vals);
    return good;
}

/* Bucketed aggregation (with subs) against the model. */
static int check_agg(const srch_agg *a, const srch_agg_result *r, const size_t *idx, size_t n, char *why, size_t whyn)
{
    if (a->type != SRCH_AGG_DATE_HISTOGRAM && a->type != SRCH_AGG_TERMS)
        return check_metric(a, r, idx, n, why, whyn);
    size_t *sub = malloc((n + 1) * sizeof *sub);
    int good = 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < r->nbuckets && good; b++) {
        const srch_agg_bucket *bk = &r->buckets[b];
        size_t ns = 0;
        for (size_t k = 0; k < n; k++) {
            if (a->type == SRCH_AGG_DATE_HISTOGRAM) {
                int64_t t = model_time(M, idx[k]);
                if (t >= bk->key_time && t < bk->key_time + r->interval_ns)
                    sub[ns++] = idx[k];
            } else {
                mkey ek[8];
                size_t m = event_keys(idx[k], a->field, ek, 8);
                mkey want = {bk->key_is_str, bk->key_str, bk->key_len, bk->key_num};
                for (size_t q = 0; q < m; q++)
                    if (mkey_eq(&ek[q], &want)) {
                        sub[ns++] = idx[k];
                        break;
                    }
            }
        }
        seen += ns;
        if (bk->count != ns) {
            good = 0;
            snprintf(why, whyn, "bucket %zu: count %llu, model %zu", b, (unsigned long long)bk->count, ns);
        }
        if (b > 0 && a->type == SRCH_AGG_TERMS && bk->count > r->buckets[b - 1].count) {
            good = 0;
            snprintf(why, whyn, "terms not sorted by count");
        }
        for (size_t s = 0; s < a->nsubs && good; s++)
            good = check_agg(&a->subs[s], &bk->subs[s], sub, ns, why, whyn);
    }
    /* every matching event falls in some histogram bucket */
    if (good && a->type == SRCH_AGG_DATE_HISTOGRAM && seen != n) {
        good = 0;
        snprintf(why, whyn, "histogram buckets hold %llu of %zu events", (unsigned long long)seen, n);
    }
    /* terms: size large enough to see every key: compare the key count */
    if (good && a->type == SRCH_AGG_TERMS && a->size >= 1000) {
        size_t nk = distinct_keys(idx, n, a->field);
        if (nk != r->nbuckets) {
            good = 0;
            snprintf(why, whyn, "terms: %zu buckets, model %zu keys", r->nbuckets, nk);
        }
    }
    free(sub);
    return good;
}

static int check_aggregations(srch_index *ix, int nq)
{
    static const char *const tfields[] = {"level", "service", "host.name", "user", "code", "tags", "status", "arr.k", "nested.a.b"};
    static const char *const nfields[] = {"latency", "status", "user", "code", "arr.n", "big"};
    static const int64_t ivs[] = {60000000000LL, 300000000000LL, 3600000000000LL, 0};
    long bad = 0, histo_only = 0;
    size_t *idx = malloc(model_count(M) * sizeof *idx);
    for (int qi = 0; qi < nq; qi++) {
        mq *q = rnd(3) ? gen_query(1) : mq_new(M_ALL);
        char qs[8192];
        snprintf(qs, sizeof qs, "%s", mq_render(q));
        int has_s = 0, has_e = 0;
        int64_t s = 0, e = 0;
        if (rnd(2)) {
            has_s = has_e = 1;
            s = T0 + (int64_t)rnd(5 * 60) * 60000000000LL;
            e = s + (int64_t)(1 + rnd(120)) * 60000000000LL;
        }
        size_t n = 0;
        for (size_t i = 0; i < model_count(M); i++) {
            int64_t t = model_time(M, i);
            if ((has_s && t < s) || (has_e && t >= e) || !model_match(M, i, q))
                continue;
            idx[n++] = i;
        }
        /* one aggregation of each kind, and a nested one */
        srch_agg inner_stats = {SRCH_AGG_STATS, "st", (char *)nfields[rnd(6)], 0, 0, {0}, 0, NULL, 0};
        srch_agg inner_hist = {SRCH_AGG_DATE_HISTOGRAM, "h", NULL, 3600000000000LL, 0, {0}, 0, &inner_stats, 1};
        srch_agg aggs[6] = {
            {SRCH_AGG_DATE_HISTOGRAM, "hist", NULL, ivs[rnd(4)], 0, {0}, 0, NULL, 0},
            {SRCH_AGG_TERMS, "terms", (char *)tfields[rnd(9)], 0, 1000, {0}, 0, NULL, 0},
            {SRCH_AGG_STATS, "stats", (char *)nfields[rnd(6)], 0, 0, {0}, 0, NULL, 0},
            {SRCH_AGG_PERCENTILES, "pct", (char *)nfields[rnd(6)], 0, 0, {1, 50, 95, 99, 100}, 5, NULL, 0},
            {SRCH_AGG_CARDINALITY, "card", (char *)tfields[rnd(9)], 0, 0, {0}, 0, NULL, 0},
            {SRCH_AGG_TERMS, "nested", "service", 0, 1000, {0}, 0, &inner_hist, 1},
        };
        srch_query *pq;
        seg_err se = {0};
        if (srch_query_parse(qs, strlen(qs), TOK, &pq, &se)) {
            if (bad++ < 10)
                tap_diag("agg query '%s': %s", qs, se.msg);
            mq_free(q);
            continue;
        }
        srch_request rq = {pq, has_s, has_e, s, e, 0, NULL, 1, NULL, 0};
        srch_agg_result *res;
        uint64_t total;
        if (srch_aggregate(ix, &rq, aggs, 6, &res, &total, NULL, &se)) {
            if (bad++ < 10)
                tap_diag("aggregate for '%s': %s", qs, se.msg);
        } else {
            char why[1024] = "";
            int good = total == n;
            if (!good)
                snprintf(why, sizeof why, "total %llu, model %zu", (unsigned long long)total, n);
            for (int k = 0; k < 6 && good; k++)
                if (!check_agg(&aggs[k], &res[k], idx, n, why, sizeof why))
                    good = 0;
            if (!good && bad++ < 10)
                tap_diag("aggregations for '%s': %s", qs, why);
            srch_agg_results_free(res, 6);
        }
        /* histograms alone (answered by time seeks when q is *), at
         * every interval, one and two at once */
        srch_agg hists[2] = {
            {SRCH_AGG_DATE_HISTOGRAM, "h1", NULL, ivs[rnd(4)], 0, {0}, 0, NULL, 0},
            {SRCH_AGG_DATE_HISTOGRAM, "h2", NULL, ivs[rnd(4)], 0, {0}, 0, NULL, 0},
        };
        size_t nh = 1 + rnd(2);
        if (srch_aggregate(ix, &rq, hists, nh, &res, &total, NULL, &se)) {
            if (bad++ < 10)
                tap_diag("histograms for '%s': %s", qs, se.msg);
        } else {
            char why[1024] = "";
            int good = total == n;
            for (size_t k = 0; k < nh && good; k++)
                good = check_agg(&hists[k], &res[k], idx, n, why, sizeof why);
            if (!good && bad++ < 10)
                tap_diag("histograms alone for '%s' [%lld, %lld): %s (total %llu, model %zu)", qs,
                         has_s ? (long long)s : -1LL, has_e ? (long long)e : -1LL, why, (unsigned long long)total, n);
            srch_agg_results_free(res, nh);
        }
        histo_only += q->type == M_ALL;
        srch_query_free(pq);
        mq_free(q);
    }
    tap_diag("%ld of %d histogram-only requests with q=*", histo_only, nq);
    free(idx);
    return (int)bad;
}

static void on_reject(void *ud, long line, const char *reason)
{
    (void)ud;
    tap_diag("unexpected reject at line %ld: %s", line, reason);
}

/* ---- merging while searching ---- */

typedef struct merger_arg {
    const char *dir;
    int done;                 /* atomic */
    int rounds;               /* atomic: search rounds done */
    int rc;
    unsigned merges;
} merger_arg;

static void *merger_main(void *p)
{
    merger_arg *a = p;
    seg_err e = {0};
    idx_writer *w;
    idx_opts o;
    idx_opts_default(&o);
    a->rc = idx_open(a->dir, "gen", &o, &w, &e);
    while (a->rc == SEG_OK) {
        idx_merge_info mi;
        if ((a->rc = idx_merge_step(w, 1, &mi, &e)) || !mi.inputs)
            break;
        a->merges++;
        /* let searches start after this swap and run into the next merge */
        int r0 = __atomic_load_n(&a->rounds, __ATOMIC_ACQUIRE);
        while (__atomic_load_n(&a->rounds, __ATOMIC_ACQUIRE) < r0 + 2)
            usleep(1000);
    }
    if (a->rc)
        tap_diag("merge: %s", e.msg);
    idx_close(w, NULL);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A writer merges the index's segments (as `logdex compact` does) while
 * this thread opens the index again and again and checks queries against
 * the model: every search sees each event exactly once, before, during and
 * after each manifest swap. */
static void test_merge_while_searching(const char *dir)
{
    merger_arg a = {dir, 0, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, merger_main, &a);
    int rounds = 0, bad = 0, openfail = 0;
    while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE) || rounds == 0) {
        srch_index *ix;
        seg_err e = {0};
        if (srch_index_open(dir, "gen", POOL, &ix, &e)) {
            if (openfail++ < 5)
                tap_diag("open during merge: %s", e.msg);
            continue;
        }
        bad += srch_index_events(ix) != model_count(M);
        bad += check_generated(ix, 4);
        srch_index_close(ix);
        rounds++;
        __atomic_store_n(&a.rounds, rounds, __ATOMIC_RELEASE);
    }
    pthread_join(th, NULL);
    tap_diag("%u merges while %d rounds of searches ran", a.merges, rounds);
    is_int(a.rc, SEG_OK, "merges ran");
    ok(a.merges > 0, "there was something to merge");
    is_int(openfail, 0, "the index opened every time while segments were merged away");
    is_int(bad, 0, "every round of 4 queries during the merges agrees with the model");
    srch_index *ix;
    seg_err e = {0};
    if (!ok(srch_index_open(dir, "gen", POOL, &ix, &e) == SEG_OK, "open merged index"))
        return;
    /* the 6 hourly buckets of one day, each well under 256 KiB once
     * compact, become one segment spanning them (idx_merge_plan_span): the
     * queries below run over it */
    is_int(srch_index_nsegments(ix), 1, "after compaction: the day's small buckets are one span segment");
    is_int(srch_index_events(ix), model_count(M), "merged: event count equals the model's");
    is_int(check_generated(ix, 400), 0, "400 generated queries on the merged index agree with the model");
    is_int(check_aggregations(ix, 8), 0, "8 aggregation requests on the merged index agree with the model");
    srch_index_close(ix);
    char ixdir[4096];
    snprintf(ixdir, sizeof ixdir, "%s/gen", dir);
    is_int(test_verify_index(ixdir), 0, "verify passes after merging");
}

/* The live tail's partial segments (only what the query reads is
 * indexed: srch_query_need) match exactly what the model says, query by
 * query, over a batch of the model's first 1000 events. */
static void test_partial(int nq)
{
    size_t n = model_count(M) < 1000 ? model_count(M) : 1000;
    seg_builder *b = seg_builder_new();
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *js = model_json(M, i, &len);
        const char *id = model_id(M, i);
        char auto_id[32];
        if (!id) {
            snprintf(auto_id, sizeof auto_id, "auto%zu", i);
            id = auto_id;
        }
        seg_builder_add(b, js, len, model_time(M, i), id, strlen(id), model_id(M, i) != NULL);
    }
    uint32_t *order = malloc(n * sizeof *order);
    seg_builder_order(b, order);
    seg_json *js = seg_json_new();
    char *want = malloc(n), *got = malloc(n);
    long bad = 0, partial_smaller = 0, fields_total = 0;
    seg_buf full = {0};
    seg_err e = {0};
    seg_builder_write_mem(b, TOK, js, &full, &e);
    for (int qi = 0; qi < nq; qi++) {
        mq *q = gen_query(0);
        const char *qs = mq_render(q);
        srch_query *pq = NULL;
        seg_index_only need = {0};
        seg_buf mem = {0};
        seg_reader *r = NULL;
        uint32_t *docs = NULL;
        size_t nd = 0;
        if (srch_query_parse(qs, strlen(qs), TOK, &pq, &e) || srch_query_need(pq, &need) ||
            seg_builder_write_partial(b, TOK, js, &need, &mem, &e) ||
            seg_reader_open_mem("(partial)", mem.p, mem.n, &r, &e) || srch_match_docs(r, pq, &docs, &nd, &e)) {
            if (bad++ < 5)
                tap_diag("partial: query '%s': %s", qs, e.msg);
        } else {
            partial_smaller += mem.n < full.n / 2;
            fields_total += (long)need.nfields;
            memset(got, 0, n);
            for (size_t i = 0; i < nd; i++)
                got[order[docs[i]]] = 1;
            for (size_t i = 0; i < n; i++)
                want[i] = (char)model_match(M, i, q);
            if (memcmp(want, got, n) && bad++ < 5)
                tap_diag("partial: query '%s' (%zu fields%s) disagrees with the model", qs, need.nfields,
                         need.any_text ? ", any text" : "");
        }
        if (!r)
            seg_buf_free(&mem);
        seg_reader_unref(r);
        seg_free(docs);
        srch_need_free(&need);
        srch_query_free(pq);
        mq_free(q);
    }
    ok(bad == 0, "%d queries over partial segments (only the fields each reads) agree with the model (%ld not)", nq, bad);
    ok(partial_smaller > nq / 4, "and partial segments are smaller (%ld of %d under half the full one's %zu bytes)",
       partial_smaller, nq, full.n);
    seg_buf_free(&full);
    free(want);
    free(got);
    free(order);
    seg_json_free(js);
    seg_builder_free(b);
}

/* Round trip: every event of the model comes back from the index byte
 * for byte (as a multiset: the stored JSON sorted against the model's). */
static int round_trip(srch_index *ix)
{
    srch_result all;
    char err[1024];
    int rt = engine(ix, "*", 0, 0, 0, 0, model_count(M) + 10, NULL, &all, err, sizeof err) == 0;
    if (!rt)
        return 0;
    mhit *a = malloc(all.nhits * sizeof *a + 1), *b = malloc(model_count(M) * sizeof *b + 1);
    for (size_t i = 0; i < all.nhits; i++) {
        a[i].json = all.hits[i].json;
        a[i].len = all.hits[i].json_len;
    }
    for (size_t i = 0; i < model_count(M); i++)
        b[i].json = model_json(M, i, &b[i].len);
    qsort(a, all.nhits, sizeof *a, json_cmp);
    qsort(b, model_count(M), sizeof *b, json_cmp);
    rt = all.nhits == model_count(M);
    for (size_t i = 0; rt && i < all.nhits; i++)
        rt = a[i].len == b[i].len && !memcmp(a[i].json, b[i].json, a[i].len);
    free(a);
    free(b);
    srch_result_free(&all);
    return rt;
}

static void test_generated(void)
{
    char dir[] = "/tmp/logdex-t-diff-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    idx_opts o;
    idx_opts_default(&o);
    o.buffer_bytes = 96 << 10; /* many small segments */
    M = model_new(TOK);
    const int N = 4000;
    long dups_expected = 0;
    int64_t prev_t = T0;
    for (int run = 0; run < 2; run++) {
        seg_err e = {0};
        idx_writer *w;
        if (run == 1) {
            /* flushes split buckets into time slices (as a live server's
             * flush of one large bucket does): every query below also runs
             * over such segments */
            o.threads = 8;
            o.split_min = 8;
        }
        if (!ok(idx_open(dir, "gen", &o, &w, &e) == SEG_OK, "open writer (run %d) %s", run, e.msg))
            return;
        for (int i = 0; i < N / 2; i++) {
            long gi = run * (N / 2) + i;
            int64_t t;
            long id = gi;
            if (gi % 10 == 9) {
                id = -1; /* no _id: a unique time (an odd microsecond) */
                t = T0 + (int64_t)rnd(SPAN / 1000000000LL) * 1000000000LL + (gi * 2 + 1) * 1000;
            } else if (gi % 7 == 3) {
                t = prev_t; /* equal times: ties broken by _id */
            } else {
                t = T0 + (int64_t)rnd(SPAN / 1000000LL) * 1000000LL;
            }
            if (run == 1 && i % 25 == 0) {
                id = rnd(N / 2); /* resend an id of the first run */
            }
            prev_t = t;
            int style = id < 0 ? (int)rnd(2) : (int)rnd(3);
            if (id >= 0 && style == 2)
                t -= t % 1000000; /* epoch ms has ms precision */
            char *line = gen_line(id, t, style);
            int dup = model_add(M, line, strlen(line), t);
            dups_expected += dup == 1;
            if (idx_add_line(w, line, strlen(line), i + 1, on_reject, NULL, &e) != SEG_OK)
                tap_diag("add failed: %s", e.msg);
            free(line);
        }
        idx_counts k = *idx_get_counts(w);
        ok(idx_flush(w, &e) == SEG_OK, "flush (run %d)", run);
        idx_metrics im;
        idx_get_metrics(w, &im);
        if (run == 1)
            ok(im.life.flush_slices > 0, "buckets were split into time slices (%llu segments)",
               (unsigned long long)im.life.flush_slices);
        else
            is_int((long)im.life.flush_slices, 0, "no bucket split with the default split_min");
        ok(idx_close(w, &e) == SEG_OK, "close writer (run %d)", run);
        ok(k.rejected == 0, "no line rejected (run %d)", run);
        char ixdir[4096];
        snprintf(ixdir, sizeof ixdir, "%s/gen", dir);
        is_int(test_verify_index(ixdir), 0, "verify passes after ingest run");
    }
    srch_index *ix;
    seg_err e = {0};
    if (!ok(srch_index_open(dir, "gen", POOL, &ix, &e) == SEG_OK, "open index"))
        return;
    tap_diag("%zu segments in %zu buckets; %zu events; %ld duplicates resent", srch_index_nsegments(ix),
             srch_index_nbuckets(ix), model_count(M), dups_expected);
    ok(srch_index_nbuckets(ix) >= 6 && srch_index_nsegments(ix) > srch_index_nbuckets(ix),
       "several buckets, several segments per bucket");
    is_int(srch_index_events(ix), model_count(M), "duplicates stored once: event count equals the model's");

    ok(round_trip(ix), "every stored event comes back byte-identical");

    is_int(check_generated(ix, 1500), 0, "1500 generated queries agree with the model");
    is_int(check_sorted(ix, 300), 0, "300 queries sorted by a numeric field or by time ascending agree with the model");
    is_int(check_aggregations(ix, 60), 0,
           "60 aggregation requests (histogram, terms, stats, percentiles, cardinality, nested; histograms alone) agree with the model");
    srch_index_close(ix);
    test_partial(600);
    test_merge_while_searching(dir);
    model_free(M);
    M = NULL;
    test_rm_rf(dir);
}

/* ---- real data ---- */

static int real_queries(srch_index *ix, const char *name, int nq)
{
    long bad = 0, nonempty = 0;
    size_t n = model_count(M);
    mhit *exp = malloc(n * sizeof *exp);
    for (int qi = 0; qi < nq; qi++) {
        size_t i = rnd((unsigned)n);
        size_t nv = model_nvalues(M, i);
        if (!nv)
            continue;
        size_t j = rnd((unsigned)nv);
        const char *path, *str;
        size_t sl;
        int isn, isb;
        double num;
        model_value(M, i, j, &path, &str, &sl, &isn, &num, &isb);
        int fieldok = strlen(path) < 60;
        for (const char *c = path; *c && fieldok; c++)
            fieldok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '_' || *c == '.' || *c == '-' || *c == '@';
        mq *q;
        unsigned kind = rnd(6);
        if (isn && fieldok) {
            q = mq_new(M_RANGE);
            snprintf(q->field, sizeof q->field, "%s", path);
            q->form = R_BRACKETS;
            q->lo = num - rnd(10);
            q->hi = num + rnd(10);
            q->lo_incl = q->hi_incl = 1;
        } else if (!str || kind == 5) {
            q = mq_new(fieldok ? M_EXISTS : M_ALL);
            snprintf(q->field, sizeof q->field, "%s", path);
        } else {
            /* a token window from this string value */
            typedef struct {
                char t[20][128];
                int n;
            } toks_t;
            static toks_t tt;
            tt.n = 0;
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(sl < 1000 ? sl : 1000), str);
            struct cb {
                toks_t *t;
            } c = {&tt};
            (void)c;
            /* tokenize through the model's tokenizer by querying a phrase */
            q = mq_new(kind < 2 ? M_WORD : (kind < 4 ? M_PHRASE : M_PREFIX));
            if (fieldok && rnd(2))
                snprintf(q->field, sizeof q->field, "%s", path);
            /* pick 1-2 alphanumeric ASCII runs from the value */
            char *p = buf, *runs[64];
            int nr = 0;
            while (*p && nr < 64) {
                while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                    p++;
                if (!*p)
                    break;
                runs[nr++] = p;
                while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
                    p++;
                if (*p)
                    *p++ = 0;
            }
            if (nr == 0) {
                mq_free(q);
                continue;
            }
            int s = (int)rnd((unsigned)nr);
            if (q->type == M_PHRASE && s + 1 < nr && runs[s + 1] - runs[s] < 100 && strlen(runs[s]) + strlen(runs[s + 1]) < 100)
                snprintf(q->text, sizeof q->text, "%.60s %.60s", runs[s], runs[s + 1]);
            else if (q->type == M_PREFIX)
                snprintf(q->text, sizeof q->text, "%.*s", (int)(strlen(runs[s]) > 3 ? 3 : strlen(runs[s])), runs[s]);
            else
                snprintf(q->text, sizeof q->text, "%.100s", runs[s]);
            if (q->type == M_WORD && (!strcmp(q->text, "AND") || !strcmp(q->text, "OR") || !strcmp(q->text, "NOT")))
                q->type = M_PHRASE;
        }
        if (rnd(4) == 0) { /* combine with NOT or OR */
            mq *o = mq_new(rnd(2) ? M_OR : M_AND);
            o->k[o->nk++] = q;
            mq *nq2 = mq_new(M_NOT);
            nq2->k[nq2->nk++] = mq_new(M_EXISTS);
            snprintf(nq2->k[0]->field, sizeof nq2->k[0]->field, "%s", fieldok ? path : "missing");
            o->k[o->nk++] = nq2;
            q = o;
        }
        const char *qs = mq_render(q);
        size_t ne = 0;
        for (size_t k = 0; k < n; k++)
            if (model_match(M, k, q)) {
                exp[ne].json = model_json(M, k, &exp[ne].len);
                ne++;
            }
        nonempty += ne > 0;
        srch_result res;
        char err[1024];
        if (engine(ix, qs, 0, 0, 0, 0, n + 1, NULL, &res, err, sizeof err)) {
            if (bad++ < 10)
                tap_diag("%s: query '%s': %s", name, qs, err);
            mq_free(q);
            continue;
        }
        int good = res.total == ne && res.nhits == ne;
        if (good) {
            mhit *got = malloc((res.nhits + 1) * sizeof *got);
            for (size_t k = 0; k < res.nhits; k++) {
                got[k].json = res.hits[k].json;
                got[k].len = res.hits[k].json_len;
                if (k && res.hits[k].time > res.hits[k - 1].time)
                    good = 0; /* newest first */
            }
            qsort(got, res.nhits, sizeof *got, json_cmp);
            qsort(exp, ne, sizeof *exp, json_cmp);
            for (size_t k = 0; good && k < ne; k++)
                good = got[k].len == exp[k].len && !memcmp(got[k].json, exp[k].json, exp[k].len);
            free(got);
        }
        if (!good && bad++ < 10)
            tap_diag("%s: query '%s': engine %llu, model %zu", name, qs, (unsigned long long)res.total, ne);
        srch_result_free(&res);
        mq_free(q);
    }
    free(exp);
    tap_diag("%s: %d queries, %ld with matches", name, nq, nonempty);
    return (int)bad;
}

static void test_real(const char *path, const char *name, size_t max_lines)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("ok %d - # SKIP %s not present (../shared/data is outside the project)\n", ++tap_n, path);
        return;
    }
    char dir[] = "/tmp/logdex-t-real-XXXXXX";
    if (!mkdtemp(dir)) {
        fclose(f);
        return;
    }
    M = model_new(TOK);
    idx_opts o;
    idx_opts_default(&o);
    o.buffer_bytes = 256 << 10;
    seg_err e = {0};
    idx_writer *w;
    if (idx_open(dir, "real", &o, &w, &e)) {
        fclose(f);
        ok(0, "open writer for %s: %s", name, e.msg);
        return;
    }
    char *line = NULL;
    size_t cap = 0, lines = 0;
    ssize_t len;
    while (lines < max_lines && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        if (len == 0)
            continue;
        lines++;
        /* the model needs the time only for ordering, not checked here */
        model_add(M, line, (size_t)len, 0);
        idx_add_line(w, line, (size_t)len, (long)lines, NULL, NULL, &e);
    }
    free(line);
    fclose(f);
    idx_counts k = *idx_get_counts(w);
    idx_close(w, &e);
    char ixdir[4200];
    snprintf(ixdir, sizeof ixdir, "%s/real", dir);
    is_int(test_verify_index(ixdir), 0, "verify passes after loading real data");
    is_int(k.accepted, model_count(M), "real data: every line the model accepts is stored");
    srch_index *ix;
    if (srch_index_open(dir, "real", POOL, &ix, &e) == SEG_OK) {
        ok(round_trip(ix), "real data (%s): every stored event comes back byte-identical", name);
        is_int(real_queries(ix, name, 300), 0, "real data: 300 queries from its own values agree with the model");
        srch_index_close(ix);
    }
    model_free(M);
    M = NULL;
    test_rm_rf(dir);
}

/* A field with mostly distinct strings gets no keyword column; terms and
 * cardinality then read the stored events and must stay exact. */
static void test_keycol_fallback(void)
{
    char dir[] = "/tmp/logdex-t-kc-XXXXXX";
    if (!mkdtemp(dir))
        return;
    idx_opts o;
    idx_opts_default(&o);
    seg_err e = {0};
    idx_writer *w;
    if (idx_open(dir, "kc", &o, &w, &e)) {
        ok(0, "writer: %s", e.msg);
        return;
    }
    for (int i = 0; i < 6000; i++) {
        char line[200];
        /* one hour bucket: 1699999200 is an hour boundary */
        snprintf(line, sizeof line, "{\"ts\":%d,\"rid\":\"req-%05d\",\"grp\":\"g%d\",\"n\":%d}", 1699999200 + i / 2,
                 i, i % 10, i % 3);
        idx_add_line(w, line, strlen(line), i + 1, NULL, NULL, &e);
    }
    idx_close(w, &e);
    srch_index *ix;
    if (srch_index_open(dir, "kc", POOL, &ix, &e)) {
        ok(0, "open: %s", e.msg);
        return;
    }
    ok(srch_index_nsegments(ix) == 1, "one segment");
    int rid = seg_reader_field_find(srch_index_segment(ix, 0), "rid", 3);
    int grp = seg_reader_field_find(srch_index_segment(ix, 0), "grp", 3);
    seg_keycol kc;
    ok(seg_reader_keycol(srch_index_segment(ix, 0), (uint32_t)rid, &kc, &e) == 0 &&
           seg_reader_keycol(srch_index_segment(ix, 0), (uint32_t)grp, &kc, &e) == 1,
       "6000 distinct values get no keyword column; 10 do");
    srch_query *q;
    srch_query_parse("*", 1, TOK, &q, &e);
    srch_agg aggs[3] = {
        {SRCH_AGG_TERMS, "rid", "rid", 0, 10000, {0}, 0, NULL, 0},
        {SRCH_AGG_CARDINALITY, "card", "rid", 0, 0, {0}, 0, NULL, 0},
        {SRCH_AGG_TERMS, "grp", "grp", 0, 10, {0}, 0, NULL, 0},
    };
    srch_request rq = {q, 0, 0, 0, 0, 0, NULL, 1, NULL, 0};
    srch_agg_result *res;
    uint64_t total;
    if (ok(srch_aggregate(ix, &rq, aggs, 3, &res, &total, NULL, &e) == SEG_OK, "aggregate over 6000 distinct values")) {
        int ones = 1;
        for (size_t i = 0; i < res[0].nbuckets; i++)
            ones &= res[0].buckets[i].count == 1 && res[0].buckets[i].key_is_str;
        ok(res[0].nbuckets == 6000 && ones, "terms without a keyword column: 6000 keys, each once (%zu)", res[0].nbuckets);
        ok(fabs((double)res[1].cardinality - 6000) <= 120, "cardinality without a keyword column: %llu of 6000",
           (unsigned long long)res[1].cardinality);
        ok(res[2].nbuckets == 10 && res[2].buckets[0].count == 600, "terms with a keyword column: 10 groups of 600");
        srch_agg_results_free(res, 3);
    }
    srch_query_free(q);
    srch_index_close(ix);
    test_rm_rf(dir);
}

int main(void)
{
    TOK = seg_tok_new();
    POOL = srch_pool_new(2);
    test_generated();
    test_keycol_fallback();
    /* real samples live outside the project: LOGDEX_SHARED_DATA, or
     * ../shared/data beside the source tree */
    const char *top = getenv("top_srcdir"), *sd = getenv("LOGDEX_SHARED_DATA");
    char base[4096], p[4600];
    if (sd && *sd)
        snprintf(base, sizeof base, "%s", sd);
    else
        snprintf(base, sizeof base, "%s/../shared/data", top ? top : ".");
    snprintf(p, sizeof p, "%s/hdfs-logs-quickwit-format/hdfs_with_array.json", base);
    test_real(p, "hdfs", 10000);
    snprintf(p, sizeof p, "%s/gharchive-tantivy/gh.json", base);
    test_real(p, "gharchive", 1000);
    snprintf(p, sizeof p, "%s/elastic-examples/nginx_json_plus_logs/nginxplus_json_logs", base);
    test_real(p, "nginx", 500);
    srch_pool_free(POOL);
    seg_tok_free(TOK);
    return tap_done();
}
