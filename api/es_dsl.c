/*
 * es_dsl.c -- Elasticsearch's query DSL translated into logdex's query
 * tree (srch_q_* constructors) and a time range.
 *
 * The mapping, as ES's dynamic mapping would type logdex's fields:
 *   - a string field is `text` (tokens: match, match_phrase, query_string)
 *     with a `FIELD.keyword` sub-field (the whole value: term, terms);
 *     `term` on the text field itself matches one token, case-sensitively
 *     as ES does (a value that is not its own case-folded token matches
 *     nothing);
 *   - numbers match numerically (term, terms, range), booleans by value;
 *   - @timestamp, timestamp, time, ts and _time are the event time: a
 *     range on them becomes the request's time bounds, which prune
 *     segments and seek within them (never a scan).  Such a range must be
 *     in a clause every hit must meet (a must or filter chain down from
 *     the top); elsewhere it is an error, not a silent approximation.
 * Scoring does not exist in logdex: `should` clauses beside must/filter
 * matter only through minimum_should_match; every hit's _score is 1.
 * Unknown queries and unknown keys are parsing_exception errors naming
 * them, as ES answers.
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_DEPTH 32

typedef struct tr {
    seg_tok *tok;
    int64_t now;
    es_query *out;
    es_err *x;
    int depth;
} tr;

int es_is_time_field(const char *f)
{
    return !strcmp(f, "@timestamp") || !strcmp(f, "timestamp") || !strcmp(f, "time") || !strcmp(f, "ts") ||
           !strcmp(f, "_time");
}

void es_query_free(es_query *q)
{
    srch_query_free(q->q);
    q->q = NULL;
}

static int seg_fail(tr *t, const seg_err *e, const char *what)
{
    if (e->code == SEG_EQUERY)
        return es_fail(t->x, 400, "query_shard_exception", "[%s] %s", what, e->msg);
    return es_fail_seg(t->x, e);
}

/* ------------------------------------------------------------------ */
/* Dates                                                                */
/* ------------------------------------------------------------------ */

/* A time zone: Z, UTC, GMT, Etc/UTC, or +HH:MM / -HHMM; *off in seconds. */
static int tz_offset(const char *tz, int64_t *off, es_err *x)
{
    *off = 0;
    if (!tz || !*tz || !strcmp(tz, "Z") || !strcasecmp(tz, "UTC") || !strcmp(tz, "GMT") || !strcmp(tz, "Etc/UTC"))
        return 0;
    int sign = tz[0] == '-' ? -1 : tz[0] == '+' ? 1 : 0;
    int h = 0, m = 0;
    if (sign && (sscanf(tz + 1, "%2d:%2d", &h, &m) == 2 || sscanf(tz + 1, "%2d%2d", &h, &m) == 2) && h < 24 &&
        m < 60) {
        *off = sign * (h * 3600 + m * 60);
        return 0;
    }
    return es_fail(x, 400, "illegal_argument_exception",
                   "time_zone [%s]: only UTC and fixed offsets (+01:00) are supported", tz);
}

/* Dates are kept in int64 nanoseconds: about the years 1678 to 2261. */
#define DATE_MAX_MS 9000000000000LL

static int ms_to_ns(int64_t ms, int64_t *ns, es_err *x)
{
    if (ms > DATE_MAX_MS || ms < -DATE_MAX_MS)
        return es_fail(x, 400, "parse_exception", "date out of range (years 1678 to 2261)");
    *ns = ms * 1000000;
    return 0;
}

/* Rounds ns down (or to the last ms of the unit, up) in the zone off. */
static int round_unit(int64_t *ns, char unit, int64_t off, int up, es_err *x)
{
    int64_t ms = *ns / 1000000 + off * 1000;
    int64_t lo;
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int64_t len = 0;
    switch (unit) {
    case 's': len = 1000; break;
    case 'm': len = 60000; break;
    case 'h': case 'H': len = 3600000; break;
    case 'd': len = 86400000; break;
    case 'w': {
        int wd = (tm.tm_wday + 6) % 7; /* Monday first, as ES */
        int64_t day = (ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000) - wd;
        lo = day * 86400000;
        return ms_to_ns((up ? lo + 7 * 86400000LL - 1 : lo) - off * 1000, ns, x);
    }
    case 'M': case 'y': {
        tm.tm_sec = tm.tm_min = tm.tm_hour = 0;
        tm.tm_mday = 1;
        if (unit == 'y')
            tm.tm_mon = 0;
        lo = (int64_t)timegm(&tm) * 1000;
        if (up) {
            if (unit == 'y')
                tm.tm_year++;
            else
                tm.tm_mon++;
            lo = (int64_t)timegm(&tm) * 1000 - 1;
        }
        return ms_to_ns(lo - off * 1000, ns, x);
    }
    default: return es_fail(x, 400, "parse_exception", "unknown date math unit [%c]", unit);
    }
    lo = (ms >= 0 ? ms / len : (ms - len + 1) / len) * len;
    return ms_to_ns((up ? lo + len - 1 : lo) - off * 1000, ns, x);
}

/* Date math after an anchor: (+|-)N unit ... [/unit]. */
static int date_math(const char *s, int64_t *ns, int64_t off, int up, es_err *x)
{
    while (*s) {
        if (*s == '/') {
            if (!s[1] || s[2])
                return es_fail(x, 400, "parse_exception", "bad rounding in date math [%s]", s);
            return round_unit(ns, s[1], off, up, x);
        }
        if (*s != '+' && *s != '-')
            return es_fail(x, 400, "parse_exception", "bad date math [%s]", s);
        int sign = *s++ == '-' ? -1 : 1;
        char *end;
        long long n = isdigit((unsigned char)*s) ? strtoll(s, &end, 10) : 1;
        if (!isdigit((unsigned char)*s))
            end = (char *)s;
        if (n > 100000000)
            return es_fail(x, 400, "parse_exception", "date math amount [%lld] too large", n);
        char u = *end;
        s = end + (u != 0);
        int64_t step;
        switch (u) {
        case 's': step = 1000; break;
        case 'm': step = 60000; break;
        case 'h': case 'H': step = 3600000; break;
        case 'd': step = 86400000; break;
        case 'w': step = 7 * 86400000LL; break;
        case 'M': case 'y': {
            time_t secs = (time_t)(*ns / 1000000000);
            int64_t rest = *ns - (int64_t)secs * 1000000000;
            struct tm tm;
            gmtime_r(&secs, &tm);
            if (u == 'y')
                tm.tm_year += (int)(sign * n);
            else
                tm.tm_mon += (int)(sign * n);
            int64_t sec = (int64_t)timegm(&tm);
            if (sec > DATE_MAX_MS / 1000 || sec < -DATE_MAX_MS / 1000)
                return es_fail(x, 400, "parse_exception", "date out of range (years 1678 to 2261)");
            *ns = sec * 1000000000 + rest;
            continue;
        }
        default: return es_fail(x, 400, "parse_exception", "unknown date math unit in [%s]", s);
        }
        int64_t ms = *ns / 1000000 + sign * n * step, r = *ns % 1000000;
        if (ms_to_ns(ms, ns, x))
            return -1;
        *ns += r;
    }
    return 0;
}

static int all_digits(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

int es_parse_date(const json_t *v, const char *format, const char *tz, int64_t now, int round_up, int64_t *ns,
                  es_err *x)
{
    int secs = format && strstr(format, "epoch_second") && !strstr(format, "epoch_millis");
    int64_t off;
    if (tz_offset(tz, &off, x))
        return -1;
    if (json_is_number(v)) {
        double d = json_number_value(v) * (secs ? 1000 : 1);
        if (!isfinite(d) || fabs(d) > (double)DATE_MAX_MS)
            return es_fail(x, 400, "parse_exception", "date [%g] is out of range", json_number_value(v));
        *ns = (int64_t)llround(d * 1e6);
        return 0;
    }
    if (!json_is_string(v))
        return es_fail(x, 400, "parse_exception", "a date must be a string or a number");
    const char *s = json_string_value(v);
    char buf[128];
    if (strlen(s) >= sizeof buf)
        return es_fail(x, 400, "parse_exception", "failed to parse date field [%.60s...]", s);
    if (all_digits(s) && (!format || strstr(format, "epoch"))) {
        long long k = strtoll(s, NULL, 10);
        if (k > DATE_MAX_MS || k < -DATE_MAX_MS)
            return es_fail(x, 400, "parse_exception", "date [%s] is out of range", s);
        return ms_to_ns(secs ? k * 1000 : k, ns, x);
    }
    const char *math = NULL;
    if (!strncmp(s, "now", 3)) {
        *ns = now;
        math = s + 3;
    } else {
        const char *bar = strstr(s, "||");
        size_t n = bar ? (size_t)(bar - s) : strlen(s);
        if (n == 0)
            return es_fail(x, 400, "parse_exception", "failed to parse date field [%s]: empty", s);
        memcpy(buf, s, n);
        buf[n] = 0;
        math = bar ? bar + 2 : "";
        int date_only = n == 10 && buf[4] == '-' && buf[7] == '-';
        if (date_only) {
            memcpy(buf + 10, "T00:00:00", 10);
            n = 19;
        }
        /* no offset: the request's time zone */
        int has_off = buf[n - 1] == 'Z' || buf[n - 1] == 'z' ||
                      (n > 6 && (buf[n - 6] == '+' || buf[n - 6] == '-') && buf[n - 3] == ':');
        if (!has_off)
            snprintf(buf + n, sizeof buf - n, "Z");
        if (seg_time_parse_rfc3339(buf, strlen(buf), ns))
            return es_fail(x, 400, "parse_exception",
                           "failed to parse date field [%s]: use RFC 3339 (strict_date_optional_time), epoch millis or now-1h",
                           s);
        if (!has_off)
            *ns -= off * 1000000000;
        if (date_only && round_up && !*math)
            return round_unit(ns, 'd', off, 1, x);
    }
    return date_math(math, ns, off, round_up, x);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* The one key of a query object ({"match": {...}}) and its value. */
static int single(tr *t, const json_t *obj, const char *what, const char **key, json_t **val)
{
    if (!json_is_object(obj))
        return es_fail(t->x, 400, "parsing_exception", "[%s] query malformed, no start_object after query name",
                       what);
    if (json_object_size(obj) != 1)
        return es_fail(t->x, 400, "parsing_exception",
                       "[%s] query malformed: expected one field name, found %zu", what, json_object_size(obj));
    void *it = json_object_iter((json_t *)obj);
    *key = json_object_iter_key(it);
    *val = json_object_iter_value(it);
    return 0;
}

/* Checks that an object's keys are among allowed (NULL-ended). */
static int keys_ok(tr *t, const json_t *o, const char *what, const char *const *allowed)
{
    const char *k = api_unknown_key(o, allowed);
    return k ? es_fail(t->x, 400, "parsing_exception", "[%s] query does not support [%s]", what, k) : 0;
}

/* A scalar as text: strings as they are, numbers and booleans spelt. */
static int scalar_text(tr *t, const json_t *v, const char *what, char *buf, size_t cap, const char **s, size_t *n)
{
    if (json_is_string(v)) {
        *s = json_string_value(v);
        *n = json_string_length(v);
        return 0;
    }
    if (json_is_integer(v))
        *n = (size_t)snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        *n = (size_t)snprintf(buf, cap, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        *n = (size_t)snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        return es_fail(t->x, 400, "parsing_exception", "[%s] value must be a string, number or boolean", what);
    *s = buf;
    return 0;
}

/* FIELD.keyword -> FIELD (into out); 1 when it was a keyword sub-field. */
static int keyword_field(const char *f, char *out, size_t cap)
{
    size_t l = strlen(f);
    if (l > 8 && !strcmp(f + l - 8, ".keyword") && l - 8 < cap) {
        memcpy(out, f, l - 8);
        out[l - 8] = 0;
        return 1;
    }
    snprintf(out, cap, "%s", f);
    return 0;
}

static int any_field(const char *f) { return !strcmp(f, "*") || !strcmp(f, "_all"); }

/* A field's query parameters: the value itself, or an object with the
 * value under vkey (and other keys checked against allowed). */
static int field_params(tr *t, json_t *val, const char *what, const char *vkey, const char *const *allowed,
                        json_t **v, json_t **params)
{
    *params = NULL;
    if (json_is_object(val)) {
        if (keys_ok(t, val, what, allowed))
            return -1;
        *params = val;
        *v = json_object_get(val, vkey);
        if (!*v)
            return es_fail(t->x, 400, "parsing_exception", "[%s] query requires [%s]", what, vkey);
        return 0;
    }
    *v = val;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Query kinds                                                          */
/* ------------------------------------------------------------------ */

static srch_query *node(tr *t, const json_t *q, int conj);

/* The query a constructor made (qp is read after the call: arguments
 * are evaluated in no fixed order), or NULL with the error in t->x. */
static srch_query *mk(tr *t, int rc, srch_query **qp, const seg_err *e, const char *what)
{
    if (rc) {
        seg_fail(t, e, what);
        return NULL;
    }
    return *qp;
}

static srch_query *q_all(tr *t)
{
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_all(&q, &e), &q, &e, "match_all");
}

static srch_query *q_none(tr *t)
{
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_none(&q, &e), &q, &e, "match_none");
}

/* term on one value */
static srch_query *term_value(tr *t, const char *field, const json_t *v, const char *what)
{
    char num[64], f[SEG_FIELD_MAX + 1];
    const char *s;
    size_t n;
    if (scalar_text(t, v, what, num, sizeof num, &s, &n))
        return NULL;
    srch_query *q = NULL;
    seg_err e = {0};
    if (!strcmp(field, "_id")) {
        const char *ids[1] = {s};
        size_t lens[1] = {n};
        return mk(t, srch_q_ids(ids, lens, 1, &q, &e), &q, &e, what);
    }
    if (keyword_field(field, f, sizeof f))
        return mk(t, srch_q_exact(t->tok, f, s, n, &q, &e), &q, &e, what);
    if (any_field(field))
        return es_fail(t->x, 400, "query_shard_exception", "[%s] needs a field name, not [%s]", what, field), NULL;
    if (!json_is_string(v)) /* a number or boolean: its value */
        return mk(t, srch_q_text(t->tok, field, s, n, 0, &q, &e), &q, &e, what);
    /* a text field: one token, exactly as written (ES does not analyze a
     * term); tokens are case-folded, so "Error" finds nothing, as in ES */
    srch_query *w = NULL;
    if (srch_q_words(t->tok, field, s, n, 1, &w, &e))
        return mk(t, -1, NULL, &e, what);
    seg_buf dump = {0};
    srch_query_dump(w, &dump);
    /* (TEXT @field tok): one token equal to the value */
    char want[SEG_FIELD_MAX + 600];
    int wl = snprintf(want, sizeof want, "(TEXT @%s %.*s)", field, (int)n, s);
    int same = wl > 0 && (size_t)wl == dump.n && !memcmp(dump.p, want, dump.n);
    seg_buf_free(&dump);
    if (same)
        return w;
    srch_query_free(w);
    return q_none(t);
}

static srch_query *q_term(tr *t, const json_t *body)
{
    const char *field;
    json_t *val, *v, *params;
    static const char *const ok[] = {"value", "boost", "_name", "case_insensitive", NULL};
    if (single(t, body, "term", &field, &val) || field_params(t, val, "term", "value", ok, &v, &params))
        return NULL;
    if (params && json_is_true(json_object_get(params, "case_insensitive")))
        return es_fail(t->x, 400, "query_shard_exception", "[term] case_insensitive is not supported"), NULL;
    return term_value(t, field, v, "term");
}

static srch_query *q_terms(tr *t, const json_t *body)
{
    if (!json_is_object(body))
        return es_fail(t->x, 400, "parsing_exception", "[terms] query malformed"), NULL;
    const char *field = NULL, *k;
    json_t *vals = NULL, *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (!strcmp(k, "boost") || !strcmp(k, "_name"))
            continue;
        if (field)
            return es_fail(t->x, 400, "parsing_exception", "[terms] query does not support multiple fields"), NULL;
        field = k;
        vals = v;
    }
    if (!field || !json_is_array(vals))
        return es_fail(t->x, 400, "parsing_exception", "[terms] query requires a field and an array of values"),
               NULL;
    size_t n = json_array_size(vals);
    if (n > 65536)
        return es_fail(t->x, 400, "illegal_argument_exception", "[terms] at most 65536 values"), NULL;
    srch_query **kids = seg_calloc(n ? n : 1, sizeof *kids);
    if (!kids)
        return es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory"), NULL;
    size_t i;
    for (i = 0; i < n; i++)
        if (!(kids[i] = term_value(t, field, json_array_get(vals, i), "terms")))
            break;
    srch_query *q = NULL;
    if (i == n) {
        seg_err e = {0};
        q = mk(t, srch_q_bool(0, kids, n, &q, &e), &q, &e, "terms");
    } else {
        for (size_t k2 = 0; k2 < i; k2++)
            srch_query_free(kids[k2]);
    }
    seg_free(kids);
    return q;
}

static srch_query *q_ids(tr *t, const json_t *body)
{
    static const char *const ok[] = {"values", "boost", "_name", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "ids", ok))
        return es_fail(t->x, 400, "parsing_exception", "[ids] query malformed"), NULL;
    json_t *vals = json_object_get(body, "values");
    if (!json_is_array(vals))
        return es_fail(t->x, 400, "parsing_exception", "[ids] query requires [values], an array"), NULL;
    size_t n = json_array_size(vals);
    const char **ids = seg_calloc(n ? n : 1, sizeof *ids);
    size_t *lens = seg_calloc(n ? n : 1, sizeof *lens);
    srch_query *q = NULL;
    if (ids && lens) {
        size_t i;
        for (i = 0; i < n; i++) {
            json_t *s = json_array_get(vals, i);
            if (!json_is_string(s))
                break;
            ids[i] = json_string_value(s);
            lens[i] = json_string_length(s);
        }
        seg_err e = {0};
        if (i < n)
            es_fail(t->x, 400, "parsing_exception", "[ids] values must be strings");
        else
            q = mk(t, srch_q_ids(ids, lens, n, &q, &e), &q, &e, "ids");
    } else {
        es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory");
    }
    seg_free(ids);
    seg_free(lens);
    return q;
}

/* match and match_phrase on one field (or any field) */
static srch_query *match_field(tr *t, const char *field, const char *s, size_t n, int phrase, int all,
                               const char *what)
{
    char f[SEG_FIELD_MAX + 1];
    srch_query *q = NULL;
    seg_err e = {0};
    if (keyword_field(field, f, sizeof f))
        return mk(t, srch_q_exact(t->tok, f, s, n, &q, &e), &q, &e, what);
    const char *fp = any_field(field) ? NULL : field;
    if (phrase) {
        /* a phrase of no token matches nothing, as ES's zero_terms_query none */
        int rc = srch_q_text(t->tok, fp, s, n, 1, &q, &e);
        if (rc == SEG_EQUERY)
            return q_none(t);
        return mk(t, rc, &q, &e, what);
    }
    return mk(t, srch_q_words(t->tok, fp, s, n, all, &q, &e), &q, &e, what);
}

/* minimum_should_match of n optional clauses: the number required (ES:
 * an integer, a negative integer, or a percentage, rounded down). */
static int msm_value(tr *t, const json_t *v, size_t n, long *k)
{
    if (json_is_integer(v))
        *k = (long)json_integer_value(v);
    else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        double d = strtod(s, &end);
        if (end == s || (*end && strcmp(end, "%")))
            return es_fail(t->x, 400, "parsing_exception",
                           "minimum_should_match [%s]: an integer or a percentage (combinations: not supported)", s);
        *k = *end ? (long)(d < 0 ? -floor(-d * (double)n / 100) : floor(d * (double)n / 100)) : (long)d;
    } else
        return es_fail(t->x, 400, "parsing_exception", "minimum_should_match must be an integer or a string");
    if (*k < 0)
        *k += (long)n;
    return 0;
}

static void count_tok(void *ud, const char *s, size_t n)
{
    (void)ud;
    (void)s;
    (void)n;
}

static srch_query *q_match(tr *t, const json_t *body, int phrase)
{
    const char *what = phrase ? "match_phrase" : "match";
    const char *field;
    json_t *val, *v, *params;
    static const char *const okm[] = {"query", "operator", "minimum_should_match", "boost", "_name", "lenient",
                                      "zero_terms_query", "auto_generate_synonyms_phrase_query", "analyzer",
                                      "fuzziness", "prefix_length", "max_expansions", "fuzzy_transpositions", NULL};
    static const char *const okp[] = {"query", "slop", "boost", "_name", "zero_terms_query", "analyzer", NULL};
    if (single(t, body, what, &field, &val) || field_params(t, val, what, "query", phrase ? okp : okm, &v, &params))
        return NULL;
    int all = 0;
    if (params) {
        json_t *op = json_object_get(params, "operator"), *msm = json_object_get(params, "minimum_should_match"),
               *slop = json_object_get(params, "slop"), *an = json_object_get(params, "analyzer"),
               *fz = json_object_get(params, "fuzziness"), *zt = json_object_get(params, "zero_terms_query");
        if (op && (!json_is_string(op) || (strcasecmp(json_string_value(op), "and") &&
                                           strcasecmp(json_string_value(op), "or"))))
            return es_fail(t->x, 400, "parsing_exception", "[%s] operator must be and or or", what), NULL;
        all = op && !strcasecmp(json_string_value(op), "and");
        if (slop && json_integer_value(slop) != 0)
            return es_fail(t->x, 400, "query_shard_exception", "[match_phrase] slop other than 0 is not supported"),
                   NULL;
        if (an && !(json_is_string(an) && !strcmp(json_string_value(an), "standard")))
            return es_fail(t->x, 400, "query_shard_exception",
                           "[%s] analyzers are not supported: logdex has one tokenizer (docs/elasticsearch.md)", what),
                   NULL;
        if (fz && !(json_is_integer(fz) && json_integer_value(fz) == 0) &&
            !(json_is_string(fz) && !strcmp(json_string_value(fz), "0")))
            return es_fail(t->x, 400, "query_shard_exception", "[%s] fuzziness is not supported", what), NULL;
        if (zt && !(json_is_string(zt) && !strcasecmp(json_string_value(zt), "none")))
            return es_fail(t->x, 400, "query_shard_exception", "[%s] zero_terms_query other than none is not supported",
                           what),
                   NULL;
        if (msm) {
            /* resolved against the query's token count */
            char num[64];
            const char *s;
            size_t n;
            if (scalar_text(t, v, what, num, sizeof num, &s, &n))
                return NULL;
            long ntok = seg_tok_run(t->tok, s, n, count_tok, NULL);
            long k;
            if (msm_value(t, msm, ntok > 0 ? (size_t)ntok : 0, &k))
                return NULL;
            if (k >= ntok && ntok > 1)
                all = 1;
            else if (k > 1)
                return es_fail(t->x, 400, "query_shard_exception",
                               "[%s] minimum_should_match [%ld] of %ld terms: only 1 or all are supported", what, k,
                               ntok),
                       NULL;
        }
    }
    char num[64];
    const char *s;
    size_t n;
    if (scalar_text(t, v, what, num, sizeof num, &s, &n))
        return NULL;
    return match_field(t, field, s, n, phrase, all, what);
}

static srch_query *q_multi_match(tr *t, const json_t *body)
{
    static const char *const ok[] = {"query", "fields", "type", "operator", "boost", "_name", "lenient",
                                     "tie_breaker", "zero_terms_query", "auto_generate_synonyms_phrase_query",
                                     "minimum_should_match", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "multi_match", ok))
        return es_fail(t->x, 400, "parsing_exception", "[multi_match] query malformed"), NULL;
    json_t *qv = json_object_get(body, "query"), *fields = json_object_get(body, "fields"),
           *type = json_object_get(body, "type"), *op = json_object_get(body, "operator");
    if (!qv)
        return es_fail(t->x, 400, "parsing_exception", "[multi_match] requires [query]"), NULL;
    const char *ty = json_is_string(type) ? json_string_value(type) : "best_fields";
    int phrase = !strcmp(ty, "phrase");
    if (!phrase && strcmp(ty, "best_fields") && strcmp(ty, "most_fields") && strcmp(ty, "cross_fields"))
        return es_fail(t->x, 400, "query_shard_exception", "[multi_match] type [%s] is not supported", ty), NULL;
    int all = json_is_string(op) && !strcasecmp(json_string_value(op), "and");
    char num[64];
    const char *s;
    size_t n;
    if (scalar_text(t, qv, "multi_match", num, sizeof num, &s, &n))
        return NULL;
    size_t nf = json_is_array(fields) ? json_array_size(fields) : 0;
    if (nf == 0)
        return match_field(t, "*", s, n, phrase, all, "multi_match");
    srch_query **kids = seg_calloc(nf, sizeof *kids);
    if (!kids)
        return es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory"), NULL;
    size_t i;
    for (i = 0; i < nf; i++) {
        json_t *f = json_array_get(fields, i);
        if (!json_is_string(f)) {
            es_fail(t->x, 400, "parsing_exception", "[multi_match] fields must be strings");
            break;
        }
        char name[SEG_FIELD_MAX + 1];
        snprintf(name, sizeof name, "%s", json_string_value(f));
        char *caret = strchr(name, '^'); /* boosts mean nothing without scores */
        if (caret)
            *caret = 0;
        if (strchr(name, '*') && !any_field(name)) {
            es_fail(t->x, 400, "query_shard_exception", "[multi_match] field patterns other than * are not supported");
            break;
        }
        /* over the fields, `and` applies per field as in best_fields */
        if (!(kids[i] = match_field(t, name, s, n, phrase, all, "multi_match")))
            break;
    }
    srch_query *q = NULL;
    if (i == nf) {
        seg_err e = {0};
        q = mk(t, srch_q_bool(0, kids, nf, &q, &e), &q, &e, "multi_match");
    } else
        for (size_t k = 0; k < i; k++)
            srch_query_free(kids[k]);
    seg_free(kids);
    return q;
}

int es_dsl_query_string(const char *q, const char *default_field, int default_and, seg_tok *tok, srch_query **out,
                        es_err *x)
{
    srch_parse_opts o = {default_field, 1, default_and};
    seg_err e = {0};
    *out = NULL;
    if (srch_query_parse_opts(q, strlen(q), tok, &o, out, &e)) {
        if (e.code == SEG_EQUERY)
            return es_fail(x, 400, "query_shard_exception", "Failed to parse query [%s]: %s", q, e.msg);
        return es_fail_seg(x, &e);
    }
    return 0;
}

static srch_query *q_query_string(tr *t, const json_t *body, int simple)
{
    static const char *const ok[] = {"query", "default_field", "fields", "default_operator", "analyze_wildcard",
                                     "lenient", "boost", "_name", "allow_leading_wildcard", "time_zone",
                                     "auto_generate_synonyms_phrase_query", "flags", "minimum_should_match",
                                     "escape", "fuzzy_max_expansions", "max_determinized_states",
                                     "enable_position_increments", "phrase_slop", "analyzer", "quote_analyzer",
                                     "type", "tie_breaker", NULL};
    const char *what = simple ? "simple_query_string" : "query_string";
    if (!json_is_object(body) || keys_ok(t, body, what, ok))
        return es_fail(t->x, 400, "parsing_exception", "[%s] query malformed", what), NULL;
    json_t *qv = json_object_get(body, "query"), *df = json_object_get(body, "default_field"),
           *fields = json_object_get(body, "fields"), *op = json_object_get(body, "default_operator");
    if (!json_is_string(qv))
        return es_fail(t->x, 400, "parsing_exception", "[%s] requires [query], a string", what), NULL;
    const char *dfield = json_is_string(df) ? json_string_value(df) : NULL;
    if (json_is_array(fields) && json_array_size(fields) > 0) {
        if (json_array_size(fields) > 1)
            return es_fail(t->x, 400, "query_shard_exception", "[%s] one field in [fields] is supported (or *)", what),
                   NULL;
        dfield = json_string_value(json_array_get(fields, 0));
    }
    int dand = json_is_string(op) && !strcasecmp(json_string_value(op), "and");
    const char *text = json_string_value(qv);
    seg_buf conv = {0};
    if (simple) {
        /* simple_query_string: | is OR, + AND (the default operator
         * joins the rest) */
        int inq = 0;
        for (const char *p = text; *p; p++) {
            if (*p == '"')
                inq = !inq;
            if (!inq && *p == '|')
                api_put_s(&conv, " OR ");
            else if (!inq && *p == '+' && (p == text || isspace((unsigned char)p[-1])) && isspace((unsigned char)p[1]))
                api_put_s(&conv, " AND ");
            else
                seg_buf_put_u8(&conv, (uint8_t)*p);
        }
        seg_buf_put_u8(&conv, 0);
        if (conv.oom) {
            seg_buf_free(&conv);
            return es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory"), NULL;
        }
        text = (const char *)conv.p;
    }
    char f[SEG_FIELD_MAX + 1];
    if (dfield && keyword_field(dfield, f, sizeof f)) {
        /* the whole query text is one keyword value */
        seg_buf_free(&conv);
        return match_field(t, dfield, json_string_value(qv), json_string_length(qv), 0, 0, what);
    }
    srch_query *q = NULL;
    es_dsl_query_string(text, dfield, dand, t->tok, &q, t->x);
    seg_buf_free(&conv);
    return q;
}

static srch_query *q_exists(tr *t, const json_t *body)
{
    static const char *const ok[] = {"field", "boost", "_name", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "exists", ok) || !json_is_string(json_object_get(body, "field")))
        return es_fail(t->x, 400, "parsing_exception", "[exists] query requires [field], a string"), NULL;
    char f[SEG_FIELD_MAX + 1];
    keyword_field(json_string_value(json_object_get(body, "field")), f, sizeof f);
    if (es_is_time_field(f))
        return q_all(t); /* every event has a time */
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_exists(f, &q, &e), &q, &e, "exists");
}

/* regexp: a token of the field matches the expression whole (the
 * searcher's /regex/: PCRE2 syntax, which covers Lucene's regexp syntax
 * bar its operators ~ & <> @ #; caseless, as tokens are case-folded) */
static srch_query *q_regexp(tr *t, const json_t *body)
{
    const char *field;
    json_t *val, *v, *params;
    static const char *const ok[] = {"value", "flags", "max_determinized_states", "boost", "_name", "rewrite",
                                     "case_insensitive", NULL};
    if (single(t, body, "regexp", &field, &val) || field_params(t, val, "regexp", "value", ok, &v, &params))
        return NULL;
    if (!json_is_string(v))
        return es_fail(t->x, 400, "parsing_exception", "[regexp] value must be a string"), NULL;
    char f[SEG_FIELD_MAX + 1];
    if (keyword_field(field, f, sizeof f))
        return es_fail(t->x, 400, "query_shard_exception",
                       "[regexp] on a keyword sub-field [%s] is not supported yet: use the text field", field),
               NULL;
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_regex(t->tok, any_field(f) ? NULL : f, json_string_value(v), json_string_length(v), &q, &e),
              &q, &e, "regexp");
}

static srch_query *q_prefix(tr *t, const json_t *body, int wildcard)
{
    const char *what = wildcard ? "wildcard" : "prefix";
    const char *field;
    json_t *val, *v, *params;
    static const char *const ok[] = {"value", "wildcard", "boost", "_name", "rewrite", "case_insensitive", NULL};
    if (single(t, body, what, &field, &val))
        return NULL;
    if (json_is_object(val) && !json_object_get(val, "value") && json_object_get(val, "wildcard"))
        v = json_object_get(val, "wildcard"), params = val;
    else if (field_params(t, val, what, "value", ok, &v, &params))
        return NULL;
    if (!json_is_string(v))
        return es_fail(t->x, 400, "parsing_exception", "[%s] value must be a string", what), NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char f[SEG_FIELD_MAX + 1];
    int kw = keyword_field(field, f, sizeof f);
    if (wildcard) {
        /* a trailing * is a prefix; * alone presence; other patterns
         * match tokens (srch_q_wild) */
        if (n == 1 && s[0] == '*') {
            srch_query *q = NULL;
            seg_err e = {0};
            return mk(t, srch_q_exists(f, &q, &e), &q, &e, what);
        }
        if (n < 2 || s[n - 1] != '*' || memchr(s, '?', n) || memchr(s, '*', n - 1)) {
            /* leading, infix, '?': the searcher's token patterns */
            if (kw)
                return es_fail(t->x, 400, "query_shard_exception",
                               "[wildcard] on a keyword sub-field [%s] is not supported yet: use the text field", field),
                       NULL;
            srch_query *q = NULL;
            seg_err e = {0};
            return mk(t, srch_q_wild(t->tok, any_field(f) ? NULL : f, s, n, &q, &e), &q, &e, what);
        }
        n--;
    }
    if (kw)
        return es_fail(t->x, 400, "query_shard_exception",
                       "[%s] on a keyword sub-field [%s] is not supported yet: use [%s] on the text field", what, field,
                       what),
               NULL;
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_prefix(t->tok, any_field(f) ? NULL : f, s, n, &q, &e), &q, &e, what);
}

/* A numeric bound: a number, or a string holding one. */
static int num_bound(tr *t, const json_t *v, const char *field, double *d)
{
    if (json_is_number(v)) {
        *d = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        *d = strtod(s, &end);
        if (end != s && !*end)
            return 0;
    }
    return es_fail(t->x, 400, "query_shard_exception",
                   "[range] on [%s]: bounds must be numbers (ranges of dates apply to the time field, of strings are "
                   "not supported)",
                   field);
}

static srch_query *q_range(tr *t, const json_t *body, int conj)
{
    const char *field;
    json_t *p;
    static const char *const ok[] = {"gt", "gte", "lt", "lte", "from", "to", "include_lower", "include_upper",
                                     "format", "time_zone", "boost", "_name", "relation", NULL};
    if (single(t, body, "range", &field, &p))
        return NULL;
    if (!json_is_object(p) || keys_ok(t, p, "range", ok))
        return NULL;
    json_t *gt = json_object_get(p, "gt"), *gte = json_object_get(p, "gte"), *lt = json_object_get(p, "lt"),
           *lte = json_object_get(p, "lte"), *from = json_object_get(p, "from"), *to = json_object_get(p, "to");
    json_t *il = json_object_get(p, "include_lower"), *iu = json_object_get(p, "include_upper");
    /* from/to (with include_*) are the older spelling of the bounds */
    if (from && !json_is_null(from)) {
        if (il && json_is_false(il))
            gt = from;
        else
            gte = from;
    }
    if (to && !json_is_null(to)) {
        if (iu && json_is_false(iu))
            lt = to;
        else
            lte = to;
    }
    if (gt && json_is_null(gt))
        gt = NULL;
    if (gte && json_is_null(gte))
        gte = NULL;
    if (lt && json_is_null(lt))
        lt = NULL;
    if (lte && json_is_null(lte))
        lte = NULL;
    if (es_is_time_field(field)) {
        if (!conj)
            return es_fail(t->x, 400, "query_shard_exception",
                           "[range] on the time field [%s] is supported where every hit must meet it (query, must, "
                           "filter), not under should or must_not",
                           field),
                   NULL;
        json_t *fm = json_object_get(p, "format"), *tz = json_object_get(p, "time_zone");
        const char *fmt = json_is_string(fm) ? json_string_value(fm) : NULL;
        const char *zone = json_is_string(tz) ? json_string_value(tz) : NULL;
        es_query *o = t->out;
        int64_t v;
        /* ES compares milliseconds: an event's time counts as its ms */
        if (gte || gt) {
            if (es_parse_date(gte ? gte : gt, fmt, zone, t->now, gt && !gte, &v, t->x))
                return NULL;
            int64_t ms = v >= 0 ? v / 1000000 : (v - 999999) / 1000000;
            int64_t s = (gte ? ms : ms + 1) * 1000000;
            if (!o->has_start || s > o->start)
                o->start = s;
            o->has_start = 1;
        }
        if (lte || lt) {
            if (es_parse_date(lte ? lte : lt, fmt, zone, t->now, lte != NULL, &v, t->x))
                return NULL;
            int64_t ms = v >= 0 ? v / 1000000 : (v - 999999) / 1000000;
            int64_t s = (lte ? ms + 1 : ms) * 1000000;
            if (!o->has_end || s < o->end)
                o->end = s;
            o->has_end = 1;
        }
        return q_all(t);
    }
    char f[SEG_FIELD_MAX + 1];
    keyword_field(field, f, sizeof f);
    double lo = -INFINITY, hi = INFINITY;
    int lo_incl = 1, hi_incl = 1;
    if ((gte || gt) && num_bound(t, gte ? gte : gt, field, &lo))
        return NULL;
    if (gt && !gte)
        lo_incl = 0;
    if ((lte || lt) && num_bound(t, lte ? lte : lt, field, &hi))
        return NULL;
    if (lt && !lte)
        hi_incl = 0;
    srch_query *q = NULL;
    seg_err e = {0};
    return mk(t, srch_q_range(f, lo, lo_incl, hi, hi_incl, &q, &e), &q, &e, "range");
}

static int clauses_push(srch_query ***arr, size_t *n, size_t *cap, srch_query *q)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        srch_query **g = seg_realloc(*arr, nc * sizeof *g);
        if (!g)
            return -1;
        *arr = g;
        *cap = nc;
    }
    (*arr)[(*n)++] = q;
    return 0;
}

/* The clauses of one bool occurrence (an object or an array of them). */
static int clauses(tr *t, const json_t *v, int conj, int negate, srch_query ***arr, size_t *n, size_t *cap)
{
    size_t m = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < m; i++) {
        const json_t *c = json_is_array(v) ? json_array_get(v, i) : v;
        srch_query *q = node(t, c, conj);
        if (q && negate) {
            seg_err e = {0};
            srch_query *nq = NULL;
            q = mk(t, srch_q_not(q, &nq, &e), &nq, &e, "bool");
        }
        if (!q)
            return -1;
        if (clauses_push(arr, n, cap, q)) {
            srch_query_free(q);
            return es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory");
        }
    }
    return 0;
}

static void free_all(srch_query **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        srch_query_free(a[i]);
    seg_free(a);
}

#define MSM_MAX_COMBINATIONS 1000

/* minimum_should_match k of the n clauses c[] (1 < k < n): the OR of the
 * ANDs of every k of them (copies; c stays the caller's), at most
 * MSM_MAX_COMBINATIONS of them. */
static srch_query *k_of_n(tr *t, srch_query **c, size_t n, size_t k)
{
    double comb = 1;
    for (size_t i = 0; i < k; i++)
        comb = comb * (double)(n - i) / (double)(i + 1);
    if (comb > MSM_MAX_COMBINATIONS)
        return es_fail(t->x, 400, "query_shard_exception",
                       "[bool] minimum_should_match %zu of %zu should clauses makes %.0f combinations (at most %d)", k,
                       n, comb, MSM_MAX_COMBINATIONS),
               NULL;
    size_t nc = (size_t)(comb + 0.5), idx[64], m = 0;
    srch_query **ors = seg_calloc(nc, sizeof *ors);
    seg_err e = {0};
    if (!ors || k > 64)
        return seg_free(ors), es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory"), NULL;
    for (size_t i = 0; i < k; i++)
        idx[i] = i;
    int rc = SEG_OK;
    while (rc == SEG_OK && m < nc) {
        srch_query *ands[64];
        size_t na = 0;
        for (size_t j = 0; j < k && rc == SEG_OK; j++)
            if ((rc = srch_query_clone(c[idx[j]], &ands[na], &e)) == SEG_OK)
                na++;
        if (rc == SEG_OK)
            rc = srch_q_bool(1, ands, na, &ors[m++], &e);
        else
            for (size_t j = 0; j < na; j++)
                srch_query_free(ands[j]);
        /* the next combination, in lexicographic order */
        size_t j = k;
        while (j > 0 && idx[j - 1] == n - k + j - 1)
            j--;
        if (j == 0)
            break;
        idx[j - 1]++;
        for (size_t l = j; l < k; l++)
            idx[l] = idx[l - 1] + 1;
    }
    srch_query *q = NULL;
    if (rc == SEG_OK)
        rc = srch_q_bool(0, ors, m, &q, &e);
    else
        for (size_t i = 0; i < m; i++)
            srch_query_free(ors[i]);
    seg_free(ors);
    return mk(t, rc, &q, &e, "bool");
}

static srch_query *q_bool(tr *t, const json_t *body, int conj)
{
    static const char *const ok[] = {"must", "filter", "should", "must_not", "minimum_should_match", "boost",
                                     "_name", "adjust_pure_negative", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "bool", ok))
        return es_fail(t->x, 400, "parsing_exception", "[bool] query malformed"), NULL;
    srch_query **req = NULL, **opt = NULL;
    size_t nr = 0, cr = 0, no = 0, co = 0;
    json_t *must = json_object_get(body, "must"), *filter = json_object_get(body, "filter"),
           *should = json_object_get(body, "should"), *must_not = json_object_get(body, "must_not"),
           *msm = json_object_get(body, "minimum_should_match");
    if ((must && clauses(t, must, conj, 0, &req, &nr, &cr)) || (filter && clauses(t, filter, conj, 0, &req, &nr, &cr)) ||
        (must_not && clauses(t, must_not, 0, 1, &req, &nr, &cr)) || (should && clauses(t, should, 0, 0, &opt, &no, &co))) {
        free_all(req, nr);
        free_all(opt, no);
        return NULL;
    }
    int has_pos = (must && (json_is_object(must) || json_array_size(must))) ||
                  (filter && (json_is_object(filter) || json_array_size(filter)));
    long k = has_pos ? 0 : 1;
    if (msm && msm_value(t, msm, no, &k)) {
        free_all(req, nr);
        free_all(opt, no);
        return NULL;
    }
    seg_err e = {0};
    srch_query *q = NULL;
    if (no && k > 0) {
        srch_query *o = NULL;
        if (k > 1 && k < (long)no) {
            /* k of n: the OR of every AND of k clauses (each a copy) */
            o = k_of_n(t, opt, no, (size_t)k);
            free_all(opt, no);
            opt = NULL;
            no = 0;
            if (!o) {
                free_all(req, nr);
                return NULL;
            }
        } else if (k > (long)no) {
            free_all(opt, no);
            opt = NULL;
            no = 0;
            o = q_none(t);
        } else {
            if (srch_q_bool(k > 1, opt, no, &o, &e)) {
                seg_free(opt);
                free_all(req, nr);
                return mk(t, -1, NULL, &e, "bool");
            }
            seg_free(opt);
            opt = NULL;
            no = 0;
        }
        if (!o || clauses_push(&req, &nr, &cr, o)) {
            srch_query_free(o);
            free_all(req, nr);
            return t->x->status ? NULL : (es_fail(t->x, 503, "es_rejected_execution_exception", "out of memory"), NULL);
        }
    }
    free_all(opt, no);
    q = mk(t, srch_q_bool(1, req, nr, &q, &e), &q, &e, "bool");
    seg_free(req);
    return q;
}

static srch_query *q_constant_score(tr *t, const json_t *body, int conj)
{
    static const char *const ok[] = {"filter", "boost", "_name", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "constant_score", ok) || !json_object_get(body, "filter"))
        return es_fail(t->x, 400, "parsing_exception", "[constant_score] requires [filter]"), NULL;
    return node(t, json_object_get(body, "filter"), conj);
}

static srch_query *q_dis_max(tr *t, const json_t *body)
{
    static const char *const ok[] = {"queries", "tie_breaker", "boost", "_name", NULL};
    if (!json_is_object(body) || keys_ok(t, body, "dis_max", ok) || !json_is_array(json_object_get(body, "queries")))
        return es_fail(t->x, 400, "parsing_exception", "[dis_max] requires [queries], an array"), NULL;
    srch_query **k = NULL;
    size_t n = 0, cap = 0;
    if (clauses(t, json_object_get(body, "queries"), 0, 0, &k, &n, &cap)) {
        free_all(k, n);
        return NULL;
    }
    srch_query *q = NULL;
    seg_err e = {0};
    q = mk(t, srch_q_bool(0, k, n, &q, &e), &q, &e, "dis_max");
    seg_free(k);
    return q;
}

static srch_query *node(tr *t, const json_t *q, int conj)
{
    const char *kind;
    json_t *body;
    if (!json_is_object(q) || json_object_size(q) == 0)
        return es_fail(t->x, 400, "parsing_exception", "query malformed, empty clause found"), NULL;
    if (json_object_size(q) != 1) {
        void *it = json_object_iter_next((json_t *)q, json_object_iter((json_t *)q));
        return es_fail(t->x, 400, "parsing_exception", "[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME]",
                       json_object_iter_key(it)),
               NULL;
    }
    if (++t->depth > MAX_DEPTH)
        return es_fail(t->x, 400, "parsing_exception", "query nested deeper than %d", MAX_DEPTH), NULL;
    void *it = json_object_iter((json_t *)q);
    kind = json_object_iter_key(it);
    body = json_object_iter_value(it);
    srch_query *r;
    if (!strcmp(kind, "match_all"))
        r = q_all(t);
    else if (!strcmp(kind, "match_none"))
        r = q_none(t);
    else if (!strcmp(kind, "bool"))
        r = q_bool(t, body, conj);
    else if (!strcmp(kind, "term"))
        r = q_term(t, body);
    else if (!strcmp(kind, "terms"))
        r = q_terms(t, body);
    else if (!strcmp(kind, "match"))
        r = q_match(t, body, 0);
    else if (!strcmp(kind, "match_phrase"))
        r = q_match(t, body, 1);
    else if (!strcmp(kind, "multi_match"))
        r = q_multi_match(t, body);
    else if (!strcmp(kind, "query_string"))
        r = q_query_string(t, body, 0);
    else if (!strcmp(kind, "simple_query_string"))
        r = q_query_string(t, body, 1);
    else if (!strcmp(kind, "range"))
        r = q_range(t, body, conj);
    else if (!strcmp(kind, "exists"))
        r = q_exists(t, body);
    else if (!strcmp(kind, "prefix"))
        r = q_prefix(t, body, 0);
    else if (!strcmp(kind, "wildcard"))
        r = q_prefix(t, body, 1);
    else if (!strcmp(kind, "regexp"))
        r = q_regexp(t, body);
    else if (!strcmp(kind, "ids"))
        r = q_ids(t, body);
    else if (!strcmp(kind, "constant_score"))
        r = q_constant_score(t, body, conj);
    else if (!strcmp(kind, "dis_max"))
        r = q_dis_max(t, body);
    else
    {
        es_fail(t->x, 400, "parsing_exception", "unknown query [%s]", kind);
        r = NULL;
    }
    t->depth--;
    return r;
}

int es_dsl_query(const json_t *query, seg_tok *tok, int64_t now, es_query *out, es_err *x)
{
    memset(out, 0, sizeof *out);
    tr t = {tok, now, out, x, 0};
    out->q = query && !json_is_null(query) ? node(&t, query, 1) : q_all(&t);
    if (!out->q) {
        if (!x->status)
            es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        return -1;
    }
    out->empty = out->has_start && out->has_end && out->start >= out->end;
    return 0;
}

int es_query_and(es_query *out, const es_query *more, es_err *x)
{
    /* more is consumed: its tree moves into out */
    srch_query *k[2] = {out->q, more->q};
    srch_query *q = NULL;
    seg_err e = {0};
    out->q = NULL;
    if (srch_q_bool(1, k, 2, &q, &e))
        return es_fail_seg(x, &e);
    out->q = q;
    if (more->has_start && (!out->has_start || more->start > out->start))
        out->start = more->start, out->has_start = 1;
    if (more->has_end && (!out->has_end || more->end < out->end))
        out->end = more->end, out->has_end = 1;
    out->empty = out->empty || more->empty || (out->has_start && out->has_end && out->start >= out->end);
    return 0;
}

void es_request(const es_query *q, size_t limit, srch_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->q = q->q;
    rq->has_start = q->has_start;
    rq->start = q->start;
    rq->has_end = q->has_end;
    rq->end = q->end;
    rq->limit = limit;
}
