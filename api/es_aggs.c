/*
 * es_aggs.c -- Elasticsearch aggregations over logdex's aggregation engine.
 *
 * Native: date_histogram (on the time field), terms, avg, min, max, sum,
 * value_count, stats, percentiles and cardinality, nested in any mix of
 * those, are one srch_aggregate call for all the aggregations of a level:
 * the engine computes them in one pass, exactly (terms counts) or within
 * its documented error (percentiles, cardinality).  ES's options are
 * applied to the engine's answer here: min_doc_count, extended_bounds and
 * hard_bounds on histograms (the engine fills every bucket of the request's
 * range; ES fills between the data and the bounds), terms order and size
 * (the engine is asked for up to 10,000 keys, so ordering by key or by a
 * sub-metric and sum_other_doc_count are exact below that many distinct
 * values), key formats.
 *
 * Refined: filter, filters, range, date_range and top_hits, and any
 * aggregation under them, run as their own queries: the parent's query
 * ANDed with the bucket's condition (a filter, a numeric range, a time
 * range), answered by the same engine.  A native bucket aggregation with
 * such a sub-aggregation runs the sub-aggregation once per bucket, with
 * the bucket as a condition (a terms key as its whole value, a histogram
 * bucket as a time range): at most ES_AGG_MAX_CALLS queries per request.
 * Nothing is approximated: what is not listed is an error naming it.
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ES_AGG_MAX_CALLS 2000
#define ES_TERMS_FETCH 10000   /* keys asked of the engine per terms */
#define ES_MAX_BUCKETS 65536   /* ES's search.max_buckets */

enum { K_DATE_HIST = 1, K_TERMS, K_AVG, K_MIN, K_MAX, K_SUM, K_VCOUNT, K_STATS, K_PCT, K_CARD,
       K_FILTER, K_FILTERS, K_RANGE, K_DATE_RANGE, K_TOP_HITS, K_HIST };

static const struct {
    const char *name;
    int kind;
} kinds[] = {{"date_histogram", K_DATE_HIST}, {"terms", K_TERMS}, {"avg", K_AVG}, {"min", K_MIN}, {"max", K_MAX},
             {"sum", K_SUM}, {"value_count", K_VCOUNT}, {"stats", K_STATS}, {"percentiles", K_PCT},
             {"cardinality", K_CARD}, {"filter", K_FILTER}, {"filters", K_FILTERS}, {"range", K_RANGE},
             {"date_range", K_DATE_RANGE}, {"top_hits", K_TOP_HITS}, {"histogram", K_HIST}};

static int native_kind(int k) { return k >= K_DATE_HIST && k <= K_CARD; }
static int bucket_kind(int k) { return k == K_DATE_HIST || k == K_TERMS; }

/* One aggregation of the request, parsed. */
typedef struct anode {
    const char *name;
    int kind;
    const json_t *body;           /* its parameters */
    const json_t *meta;
    struct anode *subs;
    size_t nsubs;
    int all_native;               /* it and everything under it are native */
    /* native: */
    char field[SEG_FIELD_MAX + 1];
    int64_t interval_ns;
    size_t size;                  /* terms: what ES asked */
    double percents[SRCH_AGG_MAX_PERCENTS];
    size_t npercents;
    int keyed;                    /* percentiles: an object (default) */
    int epoch_ms_keys;            /* date_histogram format epoch_millis */
    long min_doc_count;
    int has_ext, has_hard;
    int64_t ext_lo, ext_hi, hard_lo, hard_hi; /* ns */
    int order_key, order_desc;    /* terms: _key, or _count / a sub-metric */
    int show_error;               /* terms: show_term_doc_count_error (each bucket's bound, 0) */
    char order_sub[128];          /* terms: sub-metric name[.property] */
} anode;

typedef struct actx {
    es_view *v;
    seg_tok *tok;
    int64_t now;
    es_err *x;
    int calls;
    size_t buckets;
} actx;

static void anodes_free(anode *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        anodes_free(a[i].subs, a[i].nsubs);
    seg_free(a);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                              */
/* ------------------------------------------------------------------ */

static int keys_ok(actx *a, const json_t *o, const char *what, const char *const *allowed)
{
    const char *k = api_unknown_key(o, allowed);
    return k ? es_fail(a->x, 400, "parsing_exception", "[%s] aggregation does not support [%s]", what, k) : 0;
}

/* An interval: N and a unit (ms s m h d), or a named one (minute, hour,
 * day; 1m 1h 1d as calendar units, 1w refused: weeks start on Monday). */
static int parse_interval(actx *a, const char *s, int calendar, int64_t *ns)
{
    static const struct {
        const char *n;
        int64_t ns;
    } named[] = {{"second", 1000000000LL}, {"minute", 60000000000LL}, {"hour", 3600000000000LL},
                 {"day", 86400000000000LL}};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (!strcmp(s, named[i].n)) {
            *ns = named[i].ns;
            return 0;
        }
    char *end;
    double v = strtod(s, &end);
    int64_t unit = !strcmp(end, "ms") ? 1000000LL : !strcmp(end, "s") ? 1000000000LL : !strcmp(end, "m") ? 60000000000LL
                   : !strcmp(end, "h") ? 3600000000000LL : !strcmp(end, "d") ? 86400000000000LL : 0;
    if (end == s || !(v > 0) || !unit || (calendar && v != 1)) {
        if (!strcmp(s, "week") || !strcmp(s, "1w") || !strcmp(s, "month") || !strcmp(s, "1M") ||
            !strcmp(s, "quarter") || !strcmp(s, "1q") || !strcmp(s, "year") || !strcmp(s, "1y"))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "calendar interval [%s] is not supported yet (minute, hour and day are)", s);
        return es_fail(a->x, 400, "illegal_argument_exception", "failed to parse interval [%s]", s);
    }
    *ns = (int64_t)llround(v * (double)unit);
    return *ns > 0 ? 0 : es_fail(a->x, 400, "illegal_argument_exception", "interval [%s] too small", s);
}

static int field_of(actx *a, const json_t *body, const char *what, char *out)
{
    json_t *f = json_object_get(body, "field");
    if (!json_is_string(f))
        return es_fail(a->x, 400, "parsing_exception", "[%s] requires [field]", what);
    const char *s = json_string_value(f);
    size_t l = strlen(s);
    if (l > SEG_FIELD_MAX)
        return es_fail(a->x, 400, "parsing_exception", "[%s] field name too long", what);
    memcpy(out, s, l + 1);
    if (l > 8 && !strcmp(out + l - 8, ".keyword"))
        out[l - 8] = 0; /* the whole values: what terms counts anyway */
    return 0;
}

static int bound_ns(actx *a, const json_t *o, const char *k, const char *fmt, int64_t *ns)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return 1; /* absent */
    return es_parse_date(v, fmt, NULL, a->now, 0, ns, a->x) ? -1 : 0;
}

static int parse_level(actx *a, const json_t *aggs, anode **out, size_t *nout, int depth);

static int parse_one(actx *a, const char *name, const json_t *def, anode *n, int depth)
{
    memset(n, 0, sizeof *n);
    n->name = name;
    if (!json_is_object(def))
        return es_fail(a->x, 400, "parsing_exception", "aggregation [%s] must be an object", name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)def, k, v)
    {
        if (!strcmp(k, "aggs") || !strcmp(k, "aggregations")) {
            if (n->subs)
                return es_fail(a->x, 400, "parsing_exception", "[%s]: aggs given twice", name);
            if (parse_level(a, v, &n->subs, &n->nsubs, depth + 1))
                return -1;
            continue;
        }
        if (!strcmp(k, "meta")) {
            n->meta = v;
            continue;
        }
        if (n->kind)
            return es_fail(a->x, 400, "parsing_exception",
                           "Found two aggregation type definitions in [%s]: [%s] and [%s]", name,
                           json_object_iter_key(json_object_iter((json_t *)def)), k);
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
            if (!strcmp(kinds[i].name, k))
                n->kind = kinds[i].kind;
        if (!n->kind)
            return es_fail(a->x, 400, "parsing_exception", "Unknown aggregation type [%s] did you mean [terms]?", k);
        n->body = v;
    }
    if (!n->kind)
        return es_fail(a->x, 400, "parsing_exception", "Missing definition for aggregation [%s]", name);
    if (!json_is_object(n->body))
        return es_fail(a->x, 400, "parsing_exception", "[%s]: the aggregation's parameters must be an object", name);
    const json_t *b = n->body;
    switch (n->kind) {
    case K_DATE_HIST: {
        static const char *const ok[] = {"field", "fixed_interval", "calendar_interval", "interval", "min_doc_count",
                                         "extended_bounds", "hard_bounds", "time_zone", "offset", "format", "keyed",
                                         "order", "missing", NULL};
        if (keys_ok(a, b, "date_histogram", ok) || field_of(a, b, "date_histogram", n->field))
            return -1;
        if (!es_is_time_field(n->field))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[date_histogram] on [%s]: only the event time (@timestamp) is supported", n->field);
        json_t *fi = json_object_get(b, "fixed_interval"), *ci = json_object_get(b, "calendar_interval"),
               *li = json_object_get(b, "interval");
        json_t *iv = fi ? fi : ci ? ci : li;
        if (!json_is_string(iv))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[date_histogram] requires [fixed_interval] or [calendar_interval]");
        if (parse_interval(a, json_string_value(iv), ci != NULL, &n->interval_ns))
            return -1;
        json_t *tz = json_object_get(b, "time_zone"), *off = json_object_get(b, "offset"),
               *fm = json_object_get(b, "format"), *mdc = json_object_get(b, "min_doc_count");
        if (tz && !(json_is_string(tz) && (!strcasecmp(json_string_value(tz), "UTC") ||
                                           !strcmp(json_string_value(tz), "Z") || !strcmp(json_string_value(tz), "+00:00") ||
                                           !strcmp(json_string_value(tz), "Etc/UTC"))))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[date_histogram] time_zone other than UTC is not supported yet (buckets are aligned to UTC)");
        if (off && !(json_is_string(off) && (!strcmp(json_string_value(off), "0") ||
                                             !strcmp(json_string_value(off), "+0s") || !*json_string_value(off))) &&
            !(json_is_integer(off) && json_integer_value(off) == 0))
            return es_fail(a->x, 400, "illegal_argument_exception", "[date_histogram] offset is not supported yet");
        if (fm) {
            const char *f = json_string_value(fm);
            if (!f)
                return es_fail(a->x, 400, "parsing_exception", "[date_histogram] format must be a string");
            if (!strcmp(f, "epoch_millis"))
                n->epoch_ms_keys = 1;
            else if (strcmp(f, "strict_date_optional_time") && strcmp(f, "date_optional_time") &&
                     strcmp(f, "strict_date_time") && strcmp(f, "date_time") &&
                     strcmp(f, "strict_date_optional_time_nanos"))
                return es_fail(a->x, 400, "illegal_argument_exception",
                               "[date_histogram] format [%s] is not supported (epoch_millis, strict_date_optional_time)",
                               f);
        }
        if (json_object_get(b, "keyed") && json_is_true(json_object_get(b, "keyed")))
            return es_fail(a->x, 400, "illegal_argument_exception", "[date_histogram] keyed is not supported yet");
        if (json_object_get(b, "order") || json_object_get(b, "missing"))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[date_histogram] order and missing are not supported yet");
        n->min_doc_count = mdc ? (long)json_integer_value(mdc) : 0;
        if (mdc && json_is_string(mdc))
            n->min_doc_count = atol(json_string_value(mdc));
        const char *fmt = json_is_string(fm) ? json_string_value(fm) : NULL;
        json_t *eb = json_object_get(b, "extended_bounds"), *hb = json_object_get(b, "hard_bounds");
        if (eb) {
            int r1 = bound_ns(a, eb, "min", fmt, &n->ext_lo), r2 = bound_ns(a, eb, "max", fmt, &n->ext_hi);
            if (r1 < 0 || r2 < 0)
                return -1;
            if (r1 || r2)
                return es_fail(a->x, 400, "illegal_argument_exception", "[extended_bounds] needs min and max");
            n->has_ext = 1;
        }
        if (hb) {
            int r1 = bound_ns(a, hb, "min", fmt, &n->hard_lo), r2 = bound_ns(a, hb, "max", fmt, &n->hard_hi);
            if (r1 < 0 || r2 < 0)
                return -1;
            if (r1)
                n->hard_lo = INT64_MIN;
            if (r2)
                n->hard_hi = INT64_MAX;
            n->has_hard = 1;
        }
        break;
    }
    case K_TERMS: {
        static const char *const ok[] = {"field", "size", "order", "min_doc_count", "shard_size", "missing",
                                         "show_term_doc_count_error", "execution_hint", "collect_mode",
                                         "shard_min_doc_count", "value_type", NULL};
        if (keys_ok(a, b, "terms", ok) || field_of(a, b, "terms", n->field))
            return -1;
        json_t *sz = json_object_get(b, "size"), *mdc = json_object_get(b, "min_doc_count");
        n->size = 10;
        if (sz) {
            long long s = json_is_integer(sz) ? json_integer_value(sz) : json_is_string(sz) ? atoll(json_string_value(sz)) : -1;
            if (s < 1 || s > ES_TERMS_FETCH)
                return es_fail(a->x, 400, "illegal_argument_exception", "[terms] size must be from 1 to %d",
                               ES_TERMS_FETCH);
            n->size = (size_t)s;
        }
        n->min_doc_count = mdc ? (json_is_string(mdc) ? atol(json_string_value(mdc)) : (long)json_integer_value(mdc)) : 1;
        n->show_error = json_is_true(json_object_get(b, "show_term_doc_count_error"));
        if (json_object_get(b, "missing"))
            return es_fail(a->x, 400, "illegal_argument_exception", "[terms] missing is not supported yet");
        n->order_desc = 1;
        json_t *ord = json_object_get(b, "order");
        if (json_is_array(ord) && json_array_size(ord) >= 1)
            ord = json_array_get(ord, 0); /* the first order decides; ties go by count then key */
        if (ord) {
            if (!json_is_object(ord) || json_object_size(ord) != 1)
                return es_fail(a->x, 400, "parsing_exception", "[terms] order must be {\"KEY\": \"asc|desc\"}");
            void *it = json_object_iter(ord);
            const char *ok2 = json_object_iter_key(it);
            const char *dir = json_string_value(json_object_iter_value(it));
            if (!dir || (strcasecmp(dir, "asc") && strcasecmp(dir, "desc")))
                return es_fail(a->x, 400, "parsing_exception", "[terms] order direction must be asc or desc");
            n->order_desc = !strcasecmp(dir, "desc");
            if (!strcmp(ok2, "_key") || !strcmp(ok2, "_term"))
                n->order_key = 1;
            else if (strcmp(ok2, "_count"))
                snprintf(n->order_sub, sizeof n->order_sub, "%s", ok2);
        }
        break;
    }
    case K_AVG: case K_MIN: case K_MAX: case K_SUM: case K_VCOUNT: case K_STATS: case K_CARD: {
        /* value_type: a type hint for scripts and unmapped fields; with a
         * field it changes nothing */
        static const char *const ok[] = {"field", "missing", "format", "precision_threshold", "script", "value_type",
                                         NULL};
        if (keys_ok(a, b, "metric", ok) || field_of(a, b, "metric", n->field))
            return -1;
        if (json_object_get(b, "missing") || json_object_get(b, "script"))
            return es_fail(a->x, 400, "illegal_argument_exception", "[%s] missing and script are not supported", name);
        if (n->kind != K_CARD && json_object_get(b, "precision_threshold"))
            return es_fail(a->x, 400, "parsing_exception", "[%s] does not support [precision_threshold]", name);
        break;
    }
    case K_PCT: {
        static const char *const ok[] = {"field", "percents", "keyed", "tdigest", "hdr", "missing", "format", NULL};
        if (keys_ok(a, b, "percentiles", ok) || field_of(a, b, "percentiles", n->field))
            return -1;
        json_t *ps = json_object_get(b, "percents");
        static const double dflt[] = {1, 5, 25, 50, 75, 95, 99};
        if (!ps) {
            memcpy(n->percents, dflt, sizeof dflt);
            n->npercents = 7;
        } else {
            if (!json_is_array(ps) || json_array_size(ps) == 0 || json_array_size(ps) > SRCH_AGG_MAX_PERCENTS)
                return es_fail(a->x, 400, "parsing_exception", "[percentiles] percents: 1 to %d numbers",
                               SRCH_AGG_MAX_PERCENTS);
            for (size_t i = 0; i < json_array_size(ps); i++) {
                json_t *p = json_array_get(ps, i);
                if (!json_is_number(p) || json_number_value(p) < 0 || json_number_value(p) > 100)
                    return es_fail(a->x, 400, "illegal_argument_exception", "[percentiles] percents must be 0 to 100");
                n->percents[n->npercents++] = json_number_value(p);
            }
        }
        n->keyed = !json_is_false(json_object_get(b, "keyed"));
        if (json_object_get(b, "missing"))
            return es_fail(a->x, 400, "illegal_argument_exception", "[percentiles] missing is not supported");
        break;
    }
    case K_FILTER: break; /* the query, checked when it runs */
    case K_FILTERS: {
        static const char *const ok[] = {"filters", "other_bucket", "other_bucket_key", "keyed", NULL};
        if (keys_ok(a, b, "filters", ok))
            return -1;
        json_t *f = json_object_get(b, "filters");
        if (!json_is_object(f) && !json_is_array(f))
            return es_fail(a->x, 400, "parsing_exception", "[filters] requires [filters], an object or an array");
        break;
    }
    case K_RANGE: case K_DATE_RANGE: {
        static const char *const ok[] = {"field", "ranges", "keyed", "format", "time_zone", "missing", NULL};
        if (keys_ok(a, b, n->kind == K_RANGE ? "range" : "date_range", ok) || field_of(a, b, "range", n->field))
            return -1;
        if (!json_is_array(json_object_get(b, "ranges")))
            return es_fail(a->x, 400, "parsing_exception", "[range] requires [ranges], an array");
        if (n->kind == K_DATE_RANGE && !es_is_time_field(n->field))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[date_range] on [%s]: only the event time (@timestamp) is supported", n->field);
        if (json_object_get(b, "missing"))
            return es_fail(a->x, 400, "illegal_argument_exception", "[range] missing is not supported");
        break;
    }
    case K_HIST: {
        static const char *const ok[] = {"field", "interval", "offset", "min_doc_count", "extended_bounds",
                                         "hard_bounds", "keyed", "format", NULL};
        if (keys_ok(a, b, "histogram", ok) || field_of(a, b, "histogram", n->field))
            return -1;
        json_t *iv = json_object_get(b, "interval");
        if (!json_is_number(iv) || !(json_number_value(iv) > 0))
            return es_fail(a->x, 400, "illegal_argument_exception", "[histogram] requires [interval], a number > 0");
        if (es_is_time_field(n->field))
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[histogram] on the time field: use date_histogram");
        break;
    }
    case K_TOP_HITS: {
        static const char *const ok[] = {"size", "from", "sort", "_source", "fields", "docvalue_fields", NULL};
        if (keys_ok(a, b, "top_hits", ok))
            return -1;
        if (n->nsubs)
            return es_fail(a->x, 400, "aggregation_initialization_exception",
                           "Aggregator [%s] of type [top_hits] cannot accept sub-aggregations", name);
        break;
    }
    }
    if (!bucket_kind(n->kind) && n->kind != K_FILTER && n->kind != K_FILTERS && n->kind != K_RANGE &&
        n->kind != K_DATE_RANGE && n->kind != K_HIST && n->nsubs)
        return es_fail(a->x, 400, "aggregation_initialization_exception",
                       "Aggregator [%s] of a metric type cannot accept sub-aggregations", name);
    n->all_native = native_kind(n->kind);
    for (size_t i = 0; i < n->nsubs; i++)
        n->all_native = n->all_native && n->subs[i].all_native;
    return 0;
}

static int parse_level(actx *a, const json_t *aggs, anode **out, size_t *nout, int depth)
{
    *out = NULL;
    *nout = 0;
    if (!json_is_object(aggs))
        return es_fail(a->x, 400, "parsing_exception", "[aggs] must be an object");
    if (depth > 8)
        return es_fail(a->x, 400, "illegal_argument_exception", "aggregations nested deeper than 8 levels");
    size_t n = json_object_size(aggs);
    anode *arr = seg_calloc(n ? n : 1, sizeof *arr);
    if (!arr)
        return es_fail(a->x, 503, "es_rejected_execution_exception", "out of memory");
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)aggs, k, v)
    {
        if (parse_one(a, k, v, &arr[i], depth)) {
            anodes_free(arr, i + 1);
            return -1;
        }
        i++;
    }
    *out = arr;
    *nout = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Running                                                              */
/* ------------------------------------------------------------------ */

static void put_num(seg_buf *b, double d)
{
    char t[40];
    if (!isfinite(d)) {
        api_put_s(b, "null");
        return;
    }
    /* the shortest form that reads back the same */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    if (!strpbrk(t, ".eEn") && fabs(d) < 1e15) /* ES prints doubles with a point */
        strcat(t, ".0");
    api_put_s(b, t);
}

static void put_u64(seg_buf *b, uint64_t v)
{
    char t[32];
    snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    api_put_s(b, t);
}

/* The engine aggregation of a native node (and its native subs). */
static int to_srch(actx *a, const anode *n, srch_agg *s)
{
    memset(s, 0, sizeof *s);
    s->name = (char *)n->name;
    switch (n->kind) {
    case K_DATE_HIST:
        s->type = SRCH_AGG_DATE_HISTOGRAM;
        s->interval_ns = n->interval_ns;
        s->sparse = 1; /* gaps and bounds are filled here, as ES does */
        break;
    case K_TERMS: s->type = SRCH_AGG_TERMS; s->size = ES_TERMS_FETCH; break;
    case K_PCT:
        s->type = SRCH_AGG_PERCENTILES;
        memcpy(s->percents, n->percents, sizeof s->percents);
        s->npercents = n->npercents;
        break;
    case K_CARD: s->type = SRCH_AGG_CARDINALITY; break;
    default: s->type = SRCH_AGG_STATS; break;
    }
    if (n->kind != K_DATE_HIST)
        s->field = (char *)n->field;
    size_t nn = 0;
    for (size_t i = 0; i < n->nsubs; i++)
        nn += native_kind(n->subs[i].kind);
    if (nn) {
        s->subs = seg_calloc(nn, sizeof *s->subs);
        if (!s->subs)
            return es_fail(a->x, 503, "es_rejected_execution_exception", "out of memory");
        for (size_t i = 0; i < n->nsubs; i++)
            if (native_kind(n->subs[i].kind) && to_srch(a, &n->subs[i], &s->subs[s->nsubs++]))
                return -1;
    }
    return 0;
}

static void srch_tree_free(srch_agg *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        srch_tree_free(s[i].subs, s[i].nsubs);
    seg_free(s);
}

static int run_level(actx *a, const anode *aggs, size_t n, const es_query *q, int empty, seg_buf *out);

/* A refined copy of q: q AND more (consumed). */
static int refine(actx *a, const es_query *q, srch_query *more, int64_t lo, int64_t hi, int has_lo, int has_hi,
                  es_query *out)
{
    memset(out, 0, sizeof *out);
    srch_query *copy = NULL;
    seg_err e = {0};
    if (srch_query_clone(q->q, &copy, &e)) {
        srch_query_free(more);
        return es_fail_seg(a->x, &e);
    }
    out->q = copy;
    out->has_start = q->has_start;
    out->start = q->start;
    out->has_end = q->has_end;
    out->end = q->end;
    out->empty = q->empty;
    es_query m = {more, has_lo, has_hi, lo, hi, 0};
    if (!more) {
        seg_err e2 = {0};
        if (srch_q_all(&m.q, &e2)) {
            es_query_free(out);
            return es_fail_seg(a->x, &e2);
        }
    }
    if (es_query_and(out, &m, a->x)) {
        es_query_free(out);
        return -1;
    }
    return 0;
}

static int count_of(actx *a, const es_query *q, uint64_t *n)
{
    *n = 0;
    if (!a->v->ix || q->empty)
        return 0;
    if (++a->calls > ES_AGG_MAX_CALLS)
        return es_fail(a->x, 400, "illegal_argument_exception",
                       "the aggregations need more than %d queries (a per-bucket sub-aggregation under many buckets)",
                       ES_AGG_MAX_CALLS);
    srch_request rq;
    es_request(q, 0, &rq);
    rq.count_only = 1;
    srch_result res;
    seg_err e = {0};
    if (srch_search(a->v->ix, &rq, &res, &e))
        return es_fail_seg(a->x, &e);
    *n = res.total;
    srch_result_free(&res);
    return 0;
}

/* The value a terms order by sub-metric reads ("sub" or "sub.prop"). */
static double sub_value(const anode *n, const srch_agg_bucket *bk)
{
    char name[128];
    snprintf(name, sizeof name, "%s", n->order_sub);
    char *prop = strchr(name, '.');
    if (prop)
        *prop++ = 0;
    size_t k = 0;
    for (size_t i = 0; i < n->nsubs; i++) {
        if (!native_kind(n->subs[i].kind))
            continue;
        if (!strcmp(n->subs[i].name, name)) {
            const srch_agg_result *r = &bk->subs[k];
            const anode *s = &n->subs[i];
            double c = (double)r->count;
            int kind = s->kind;
            if (kind == K_STATS && prop)
                kind = !strcmp(prop, "min") ? K_MIN : !strcmp(prop, "max") ? K_MAX : !strcmp(prop, "sum") ? K_SUM
                       : !strcmp(prop, "count") ? K_VCOUNT : K_AVG;
            switch (kind) {
            case K_AVG: return c ? r->sum / c : -INFINITY;
            case K_MIN: return c ? r->min : -INFINITY;
            case K_MAX: return c ? r->max : -INFINITY;
            case K_SUM: return r->sum;
            case K_VCOUNT: return c;
            case K_CARD: return (double)r->cardinality;
            case K_PCT:
                for (size_t p = 0; p < s->npercents; p++)
                    if (prop && strtod(prop, NULL) == s->percents[p])
                        return r->count ? r->pvalues[p] : -INFINITY;
                return -INFINITY;
            default: return (double)bk->count;
            }
        }
        k++;
    }
    return (double)bk->count;
}

typedef struct ord_ctx {
    const anode *n;
    const srch_agg_bucket *b;
} ord_ctx;

static int key_cmp(const srch_agg_bucket *x, const srch_agg_bucket *y)
{
    if (x->key_is_str != y->key_is_str)
        return x->key_is_str ? 1 : -1; /* numbers before strings */
    if (!x->key_is_str)
        return (x->key_num > y->key_num) - (x->key_num < y->key_num);
    size_t m = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key_str, y->key_str, m);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int order_cmp(const void *pa, const void *pb, void *ud)
{
    const ord_ctx *o = ud;
    const srch_agg_bucket *x = &o->b[*(const uint32_t *)pa], *y = &o->b[*(const uint32_t *)pb];
    int c = 0;
    if (o->n->order_key)
        c = key_cmp(x, y);
    else if (o->n->order_sub[0]) {
        double vx = sub_value(o->n, x), vy = sub_value(o->n, y);
        c = (vx > vy) - (vx < vy);
    } else
        c = (x->count > y->count) - (x->count < y->count);
    if (o->n->order_desc)
        c = -c;
    if (c)
        return c;
    c = (x->count < y->count) - (x->count > y->count); /* ties: more docs first, then key */
    return c ? c : key_cmp(x, y);
}

/* The sub-aggregations of one bucket: the native ones from the engine's
 * results (NULL: an empty bucket), the others refined by cond. */
static int put_subs(actx *a, const anode *n, const srch_agg_result *subs, const es_query *bq, int empty,
                    seg_buf *out);

static int put_result(actx *a, const anode *n, const srch_agg_result *r, const es_query *q, int empty, seg_buf *out);

static int put_bucket_subs(actx *a, const anode *n, const srch_agg_bucket *bk, const es_query *q, srch_query *cond,
                           int64_t lo, int64_t hi, int has_time, seg_buf *out)
{
    int need_refine = 0;
    for (size_t i = 0; i < n->nsubs; i++)
        need_refine |= !native_kind(n->subs[i].kind) || !n->subs[i].all_native;
    if (!need_refine || !bk || !bk->count) {
        srch_query_free(cond);
        return put_subs(a, n, bk ? bk->subs : NULL, NULL, !bk || !bk->count, out);
    }
    es_query bq;
    if (refine(a, q, cond, lo, hi, has_time, has_time, &bq))
        return -1;
    int rc = put_subs(a, n, bk->subs, &bq, 0, out);
    es_query_free(&bq);
    return rc;
}

static void put_key_time(seg_buf *out, const anode *n, int64_t key_ns)
{
    int64_t ms = key_ns >= 0 ? key_ns / 1000000 : (key_ns - 999999) / 1000000;
    char t[96];
    snprintf(t, sizeof t, "{\"key_as_string\":\"");
    api_put_s(out, t);
    if (n->epoch_ms_keys)
        snprintf(t, sizeof t, "%lld", (long long)ms);
    else
        seg_time_format(key_ns, t);
    api_put_s(out, t);
    snprintf(t, sizeof t, "\",\"key\":%lld,\"doc_count\":", (long long)ms);
    api_put_s(out, t);
}

static int floor_div(int64_t v, int64_t d, int64_t *out)
{
    *out = (v >= 0 ? v / d : (v - d + 1) / d) * d;
    return 0;
}

static int put_date_hist(actx *a, const anode *n, const srch_agg_result *r, const es_query *q, seg_buf *out)
{
    int64_t iv = n->interval_ns;
    size_t nb = r ? r->nbuckets : 0;
    /* the range of keys: the data's, extended, then hard-bounded */
    int have = 0;
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < nb; i++)
        if (r->buckets[i].count) {
            if (!have)
                lo = r->buckets[i].key_time;
            hi = r->buckets[i].key_time;
            have = 1;
        }
    if (n->has_ext) {
        int64_t elo, ehi;
        floor_div(n->ext_lo, iv, &elo);
        floor_div(n->ext_hi, iv, &ehi);
        if (!have || elo < lo)
            lo = elo;
        if (!have || ehi > hi)
            hi = ehi;
        have = elo <= ehi || have;
    }
    if (n->has_hard && have) {
        int64_t hlo = n->hard_lo, hhi = n->hard_hi;
        if (hlo != INT64_MIN) {
            floor_div(hlo, iv, &hlo);
            if (lo < hlo)
                lo = hlo;
        }
        if (hhi != INT64_MAX) {
            floor_div(hhi, iv, &hhi);
            if (hi > hhi)
                hi = hhi;
        }
    }
    api_put_s(out, "{\"buckets\":[");
    if (have && hi >= lo) {
        if ((uint64_t)((hi - lo) / iv) + 1 > ES_MAX_BUCKETS)
            return es_fail(a->x, 400, "too_many_buckets_exception",
                           "Trying to create too many buckets. Must be less than or equal to: [%d] but was [%llu].",
                           ES_MAX_BUCKETS, (unsigned long long)((hi - lo) / iv + 1));
        size_t k = 0, written = 0;
        for (int64_t key = lo; key <= hi; key += iv) {
            while (k < nb && r->buckets[k].key_time < key)
                k++;
            const srch_agg_bucket *bk = k < nb && r->buckets[k].key_time == key ? &r->buckets[k] : NULL;
            uint64_t cnt = bk ? bk->count : 0;
            if ((long)cnt < n->min_doc_count)
                continue;
            if (++a->buckets > ES_MAX_BUCKETS)
                return es_fail(a->x, 400, "too_many_buckets_exception",
                               "Trying to create too many buckets. Must be less than or equal to: [%d].", ES_MAX_BUCKETS);
            api_put_s(out, written++ ? "," : "");
            put_key_time(out, n, key);
            put_u64(out, cnt);
            if (put_bucket_subs(a, n, bk, q, NULL, key, key + iv, 1, out))
                return -1;
            api_put_s(out, "}");
        }
    }
    api_put_s(out, "]}");
    return 0;
}

static int put_terms(actx *a, const anode *n, const srch_agg_result *r, const es_query *q, seg_buf *out)
{
    size_t nb = r ? r->nbuckets : 0;
    uint32_t *ord = seg_malloc((nb ? nb : 1) * sizeof *ord);
    if (!ord)
        return es_fail(a->x, 503, "es_rejected_execution_exception", "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < nb; i++)
        if ((long)r->buckets[i].count >= n->min_doc_count)
            ord[m++] = (uint32_t)i;
    ord_ctx oc = {n, r ? r->buckets : NULL};
    if (m > 1)
        qsort_r(ord, m, sizeof *ord, order_cmp, &oc);
    size_t keep = m < n->size ? m : n->size;
    uint64_t other = 0;
    for (size_t i = keep; i < m; i++)
        other += r->buckets[ord[i]].count;
    api_put_s(out, "{\"doc_count_error_upper_bound\":0,\"sum_other_doc_count\":");
    put_u64(out, other);
    api_put_s(out, ",\"buckets\":[");
    int rc = 0;
    for (size_t i = 0; i < keep && rc == 0; i++) {
        const srch_agg_bucket *bk = &r->buckets[ord[i]];
        if (++a->buckets > ES_MAX_BUCKETS) {
            rc = es_fail(a->x, 400, "too_many_buckets_exception",
                         "Trying to create too many buckets. Must be less than or equal to: [%d].", ES_MAX_BUCKETS);
            break;
        }
        api_put_s(out, i ? ",{\"key\":" : "{\"key\":");
        if (bk->key_is_str)
            api_put_jstr(out, bk->key_str, bk->key_len);
        else
            put_num(out, bk->key_num);
        api_put_s(out, ",\"doc_count\":");
        put_u64(out, bk->count);
        if (n->show_error)
            api_put_s(out, ",\"doc_count_error_upper_bound\":0"); /* counts are exact */
        /* the bucket as a condition: its whole value */
        srch_query *cond = NULL;
        seg_err e = {0};
        int need = 0;
        for (size_t s = 0; s < n->nsubs; s++)
            need |= !n->subs[s].all_native;
        if (need) {
            if (bk->key_is_str ? srch_q_exact(a->tok, n->field, bk->key_str, bk->key_len, &cond, &e)
                               : srch_q_range(n->field, bk->key_num, 1, bk->key_num, 1, &cond, &e)) {
                rc = es_fail_seg(a->x, &e);
                break;
            }
        }
        rc = put_bucket_subs(a, n, bk, q, cond, 0, 0, 0, out);
        api_put_s(out, "}");
    }
    api_put_s(out, "]}");
    seg_free(ord);
    return rc;
}

static void put_pct_key(seg_buf *out, double p)
{
    char t[40];
    if (p == floor(p))
        snprintf(t, sizeof t, "%.1f", p);
    else
        snprintf(t, sizeof t, "%g", p);
    api_put_s(out, t);
}

static int put_native(actx *a, const anode *n, const srch_agg_result *r, const es_query *q, seg_buf *out)
{
    uint64_t c = r ? r->count : 0;
    switch (n->kind) {
    case K_DATE_HIST: return put_date_hist(a, n, r, q, out);
    case K_TERMS: return put_terms(a, n, r, q, out);
    case K_AVG: api_put_s(out, "{\"value\":"); put_num(out, c ? r->sum / (double)c : NAN); break;
    case K_MIN: api_put_s(out, "{\"value\":"); put_num(out, c ? r->min : NAN); break;
    case K_MAX: api_put_s(out, "{\"value\":"); put_num(out, c ? r->max : NAN); break;
    case K_SUM: api_put_s(out, "{\"value\":"); put_num(out, c ? r->sum : 0.0); break;
    case K_VCOUNT: api_put_s(out, "{\"value\":"); put_u64(out, c); break;
    case K_CARD: api_put_s(out, "{\"value\":"); put_u64(out, r ? r->cardinality : 0); break;
    case K_STATS:
        api_put_s(out, "{\"count\":");
        put_u64(out, c);
        api_put_s(out, ",\"min\":");
        put_num(out, c ? r->min : NAN);
        api_put_s(out, ",\"max\":");
        put_num(out, c ? r->max : NAN);
        api_put_s(out, ",\"avg\":");
        put_num(out, c ? r->sum / (double)c : NAN);
        api_put_s(out, ",\"sum\":");
        put_num(out, c ? r->sum : 0.0);
        break;
    case K_PCT:
        api_put_s(out, n->keyed ? "{\"values\":{" : "{\"values\":[");
        for (size_t i = 0; i < n->npercents; i++) {
            api_put_s(out, i ? "," : "");
            if (n->keyed) {
                api_put_s(out, "\"");
                put_pct_key(out, n->percents[i]);
                api_put_s(out, "\":");
            } else {
                api_put_s(out, "{\"key\":");
                put_num(out, n->percents[i]);
                api_put_s(out, ",\"value\":");
            }
            put_num(out, c ? r->pvalues[i] : NAN);
            if (!n->keyed)
                api_put_s(out, "}");
        }
        api_put_s(out, n->keyed ? "}" : "]");
        break;
    }
    api_put_s(out, "}");
    return 0;
}

/* The rest of a refined bucket, after its opening (key, bounds): counts
 * rq (nothing when empty), writes "doc_count", the sub-aggregations under
 * rq, and the closing brace. */
static int put_bucket_rest(actx *a, const anode *n, const es_query *rq, int empty, seg_buf *out)
{
    uint64_t cnt = 0;
    if (!empty && count_of(a, rq, &cnt))
        return -1;
    api_put_s(out, "\"doc_count\":");
    put_u64(out, cnt);
    int rc = run_level(a, n->subs, n->nsubs, rq, empty || !cnt, out);
    api_put_s(out, "}");
    return rc;
}

/* A range bucket's bound: "NAME":v, and "NAME_as_string" for a time. */
static void put_bound(seg_buf *out, const char *name, double v, const char *as_string)
{
    api_put_s(out, "\"");
    api_put_s(out, name);
    api_put_s(out, "\":");
    put_num(out, v);
    if (as_string) {
        api_put_s(out, ",\"");
        api_put_s(out, name);
        api_put_s(out, "_as_string\":");
        api_put_jstr(out, as_string, strlen(as_string));
    }
    api_put_s(out, ",");
}

/* histogram over a numeric field, as refined range buckets: the field's
 * min and max under q (one stats aggregation), then a bucket
 * [key, key + interval) for every key = offset + k * interval from the
 * min's to the max's (extended_bounds widen, hard_bounds cut), each counted
 * by the engine with the range ANDed to q; min_doc_count drops buckets
 * under it (default 0: every bucket between the data's ends, as ES). */
static int put_histogram(actx *a, const anode *n, const es_query *q, int empty, seg_buf *out)
{
    const json_t *b = n->body;
    double iv = json_number_value(json_object_get(b, "interval"));
    double off = json_is_number(json_object_get(b, "offset")) ? json_number_value(json_object_get(b, "offset")) : 0;
    json_int_t mdc = json_is_integer(json_object_get(b, "min_doc_count"))
                         ? json_integer_value(json_object_get(b, "min_doc_count"))
                         : 0;
    int keyed = json_is_true(json_object_get(b, "keyed"));
    /* format: a DecimalFormat pattern ("##0.0"): keys as strings with its
     * digits after the point (grouping and the rest are not applied) */
    const char *fmt = json_string_value(json_object_get(b, "format"));
    int decimals = -1;
    if (fmt) {
        const char *dot = strchr(fmt, '.');
        decimals = 0;
        for (const char *c = dot ? dot + 1 : ""; *c == '0' || *c == '#'; c++)
            decimals++;
    }
    double lo = INFINITY, hi = -INFINITY;
    if (!empty && !q->empty && a->v->ix) {
        srch_agg st = {SRCH_AGG_STATS, "s", (char *)n->field, 0, 0, {0}, 0, NULL, 0, 0};
        srch_request rq;
        es_request(q, 0, &rq);
        srch_agg_result *res = NULL;
        uint64_t total;
        srch_stats sst;
        seg_err e = {0};
        if (++a->calls > ES_AGG_MAX_CALLS)
            return es_fail(a->x, 400, "illegal_argument_exception", "the aggregations need more than %d queries",
                           ES_AGG_MAX_CALLS);
        if (srch_aggregate(a->v->ix, &rq, &st, 1, &res, &total, &sst, &e))
            return es_fail_seg(a->x, &e);
        if (res[0].count)
            lo = res[0].min, hi = res[0].max;
        srch_agg_results_free(res, 1);
    }
    const json_t *eb = json_object_get(b, "extended_bounds"), *hb = json_object_get(b, "hard_bounds");
    if (json_is_number(json_object_get(eb, "min")) && json_number_value(json_object_get(eb, "min")) < lo)
        lo = json_number_value(json_object_get(eb, "min"));
    if (json_is_number(json_object_get(eb, "max")) && json_number_value(json_object_get(eb, "max")) > hi)
        hi = json_number_value(json_object_get(eb, "max"));
    if (json_is_number(json_object_get(hb, "min")) && json_number_value(json_object_get(hb, "min")) > lo)
        lo = json_number_value(json_object_get(hb, "min"));
    if (json_is_number(json_object_get(hb, "max")) && json_number_value(json_object_get(hb, "max")) < hi)
        hi = json_number_value(json_object_get(hb, "max"));
    api_put_s(out, keyed ? "{\"buckets\":{" : "{\"buckets\":[");
    int rc = 0;
    if (lo <= hi) {
        double k0 = floor((lo - off) / iv), k1 = floor((hi - off) / iv);
        if (k1 - k0 + 1 > ES_AGG_MAX_CALLS)
            return es_fail(a->x, 400, "illegal_argument_exception",
                           "[histogram] would make %.0f buckets (at most %d): use a larger interval", k1 - k0 + 1,
                           ES_AGG_MAX_CALLS);
        int nb = 0;
        for (double k = k0; k <= k1 && rc == 0; k++) {
            double key = off + k * iv;
            srch_query *cond = NULL;
            seg_err e = {0};
            if (srch_q_range(n->field, key, 1, key + iv, 0, &cond, &e)) {
                rc = es_fail_seg(a->x, &e);
                break;
            }
            es_query rq;
            if (refine(a, q, cond, 0, 0, 0, 0, &rq)) {
                rc = -1;
                break;
            }
            uint64_t cnt = 0;
            if (mdc > 0 && !empty && count_of(a, &rq, &cnt)) {
                es_query_free(&rq);
                rc = -1;
                break;
            }
            if (mdc > 0 && cnt < (uint64_t)mdc) {
                es_query_free(&rq);
                continue;
            }
            seg_buf kb = {0};
            put_num(&kb, key);
            if (kb.n && !memchr(kb.p, '.', kb.n) && !memchr(kb.p, 'e', kb.n))
                api_put_s(&kb, ".0"); /* ES writes keys as doubles */
            api_put_s(out, nb++ ? "," : "");
            if (keyed) {
                api_put_jstr(out, (const char *)kb.p, kb.n);
                api_put_s(out, ":{");
            } else {
                api_put_s(out, "{\"key\":");
                seg_buf_put(out, kb.p, kb.n);
                api_put_s(out, ",");
            }
            seg_buf_free(&kb);
            if (decimals >= 0) {
                char ks[64];
                snprintf(ks, sizeof ks, "%.*f", decimals, key);
                api_put_s(out, "\"key_as_string\":");
                api_put_jstr(out, ks, strlen(ks));
                api_put_s(out, ",");
            }
            rc = put_bucket_rest(a, n, &rq, empty, out);
            es_query_free(&rq);
        }
    }
    api_put_s(out, keyed ? "}}" : "]}");
    return rc;
}

/* filter / filters / range / date_range / top_hits / histogram under
 * query q. */
static int put_refined(actx *a, const anode *n, const es_query *q, int empty, seg_buf *out)
{
    const json_t *b = n->body;
    int rc = 0;
    if (n->kind == K_FILTER) {
        es_query f, rq;
        if (es_dsl_query(b, a->tok, a->now, &f, a->x))
            return -1;
        if (refine(a, q, f.q, f.start, f.end, f.has_start, f.has_end, &rq))
            return -1;
        api_put_s(out, "{");
        rc = put_bucket_rest(a, n, &rq, empty, out);
        es_query_free(&rq);
        return rc;
    }
    if (n->kind == K_FILTERS) {
        const json_t *fs = json_object_get(b, "filters");
        int keyed = json_is_object(fs) && !json_is_false(json_object_get(b, "keyed"));
        int other = json_is_true(json_object_get(b, "other_bucket")) || json_object_get(b, "other_bucket_key");
        const char *other_key = json_string_value(json_object_get(b, "other_bucket_key"));
        size_t nf = json_is_object(fs) ? json_object_size(fs) : json_array_size(fs);
        srch_query **nots = other ? seg_calloc(nf ? nf : 1, sizeof *nots) : NULL;
        api_put_s(out, keyed ? "{\"buckets\":{" : "{\"buckets\":[");
        void *it = json_is_object(fs) ? json_object_iter((json_t *)fs) : NULL;
        for (size_t i = 0; i < nf && rc == 0; i++) {
            const char *key = it ? json_object_iter_key(it) : NULL;
            const json_t *fq = it ? json_object_iter_value(it) : json_array_get(fs, i);
            if (it)
                it = json_object_iter_next((json_t *)fs, it);
            es_query f, rq;
            if (es_dsl_query(fq, a->tok, a->now, &f, a->x)) {
                rc = -1;
                break;
            }
            if (other && (f.has_start || f.has_end)) {
                es_query_free(&f);
                rc = es_fail(a->x, 400, "illegal_argument_exception",
                             "[filters] other_bucket with a time range filter is not supported");
                break;
            }
            if (other) {
                seg_err e = {0};
                if (srch_query_clone(f.q, &nots[i], &e)) {
                    es_query_free(&f);
                    rc = es_fail_seg(a->x, &e);
                    break;
                }
            }
            if (refine(a, q, f.q, f.start, f.end, f.has_start, f.has_end, &rq)) {
                rc = -1;
                break;
            }
            api_put_s(out, i ? "," : "");
            if (keyed) {
                api_put_jstr(out, key, strlen(key));
                api_put_s(out, ":");
            }
            api_put_s(out, "{");
            rc = put_bucket_rest(a, n, &rq, empty, out);
            es_query_free(&rq);
        }
        if (rc == 0 && other) {
            srch_query *any = NULL, *none = NULL;
            seg_err e = {0};
            es_query rq;
            if (srch_q_bool(0, nots, nf, &any, &e) || srch_q_not(any, &none, &e)) {
                rc = es_fail_seg(a->x, &e);
            } else if ((rc = refine(a, q, none, 0, 0, 0, 0, &rq)) == 0) {
                api_put_s(out, nf ? "," : "");
                if (keyed) {
                    const char *ok = other_key ? other_key : "_other_";
                    api_put_jstr(out, ok, strlen(ok));
                    api_put_s(out, ":");
                }
                api_put_s(out, "{");
                rc = put_bucket_rest(a, n, &rq, empty, out);
                es_query_free(&rq);
            }
            seg_free(nots); /* its queries were taken by srch_q_bool */
            nots = NULL;
        } else if (nots) {
            for (size_t i = 0; i < nf; i++)
                srch_query_free(nots[i]);
        }
        seg_free(nots);
        api_put_s(out, keyed ? "}}" : "]}");
        return rc;
    }
    if (n->kind == K_RANGE || n->kind == K_DATE_RANGE) {
        const json_t *ranges = json_object_get(b, "ranges");
        int keyed = json_is_true(json_object_get(b, "keyed"));
        int is_time = es_is_time_field(n->field);
        const char *fmt = json_string_value(json_object_get(b, "format"));
        api_put_s(out, keyed ? "{\"buckets\":{" : "{\"buckets\":[");
        for (size_t i = 0; i < json_array_size(ranges) && rc == 0; i++) {
            const json_t *rg = json_array_get(ranges, i);
            json_t *from = json_object_get(rg, "from"), *to = json_object_get(rg, "to");
            if (from && json_is_null(from))
                from = NULL;
            if (to && json_is_null(to))
                to = NULL;
            char key[256], fs[64] = "*", ts[64] = "*";
            double fv = -INFINITY, tv = INFINITY;
            int64_t fns = 0, tns = 0;
            es_query rq;
            srch_query *cond = NULL;
            if (is_time) {
                if ((from && es_parse_date(from, fmt, NULL, a->now, 0, &fns, a->x)) ||
                    (to && es_parse_date(to, fmt, NULL, a->now, 0, &tns, a->x))) {
                    rc = -1;
                    break;
                }
                if (from)
                    seg_time_format(fns, fs);
                if (to)
                    seg_time_format(tns, ts);
            } else {
                if ((from && !json_is_number(from)) || (to && !json_is_number(to))) {
                    rc = es_fail(a->x, 400, "parsing_exception", "[range] from and to must be numbers");
                    break;
                }
                if (from) {
                    fv = json_number_value(from);
                    seg_buf tb = {0};
                    put_num(&tb, fv);
                    snprintf(fs, sizeof fs, "%.*s", (int)tb.n, (const char *)tb.p);
                    seg_buf_free(&tb);
                }
                if (to) {
                    tv = json_number_value(to);
                    seg_buf tb = {0};
                    put_num(&tb, tv);
                    snprintf(ts, sizeof ts, "%.*s", (int)tb.n, (const char *)tb.p);
                    seg_buf_free(&tb);
                }
                seg_err e = {0};
                if (srch_q_range(n->field, fv, 1, tv, 0, &cond, &e)) {
                    rc = es_fail_seg(a->x, &e);
                    break;
                }
            }
            const char *given = json_string_value(json_object_get(rg, "key"));
            if (given)
                snprintf(key, sizeof key, "%s", given);
            else
                snprintf(key, sizeof key, "%s-%s", fs, ts);
            if (refine(a, q, cond, fns, tns, is_time && from, is_time && to, &rq)) {
                rc = -1;
                break;
            }
            api_put_s(out, i ? "," : "");
            if (keyed) {
                api_put_jstr(out, key, strlen(key));
                api_put_s(out, ":{");
            } else {
                api_put_s(out, "{\"key\":");
                api_put_jstr(out, key, strlen(key));
                api_put_s(out, ",");
            }
            if (from)
                put_bound(out, "from", is_time ? (double)(fns / 1000000) : fv, is_time ? fs : NULL);
            if (to)
                put_bound(out, "to", is_time ? (double)(tns / 1000000) : tv, is_time ? ts : NULL);
            rc = put_bucket_rest(a, n, &rq, empty, out);
            es_query_free(&rq);
        }
        api_put_s(out, keyed ? "}}" : "]}");
        return rc;
    }
    if (n->kind == K_HIST)
        return put_histogram(a, n, q, empty, out);
    /* top_hits: newest first */
    json_t *opts = json_deep_copy(b);
    if (!json_object_get(opts, "size"))
        json_object_set_new(opts, "size", json_integer(3));
    rc = es_top_hits(a->v, q, opts, empty, out, a->x);
    json_decref(opts);
    return rc;
}

/* put_refined, then the aggregation's meta (echoed, as ES does). */
static int put_refined_meta(actx *a, const anode *n, const es_query *q, int empty, seg_buf *out)
{
    if (put_refined(a, n, q, empty, out))
        return -1;
    if (n->meta) {
        out->n--; /* the closing brace */
        api_put_s(out, ",\"meta\":");
        es_put_json(out, n->meta);
        api_put_s(out, "}");
    }
    return 0;
}

static int put_subs(actx *a, const anode *n, const srch_agg_result *subs, const es_query *bq, int empty, seg_buf *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n->nsubs; i++) {
        const anode *s = &n->subs[i];
        api_put_s(out, ",");
        api_put_jstr(out, s->name, strlen(s->name));
        api_put_s(out, ":");
        if (native_kind(s->kind)) {
            if (put_result(a, s, subs && !empty ? &subs[k] : NULL, bq, empty, out))
                return -1;
            k++;
        } else if (put_refined_meta(a, s, bq, empty || !bq, out))
            return -1;
    }
    return 0;
}

static int put_result(actx *a, const anode *n, const srch_agg_result *r, const es_query *q, int empty, seg_buf *out)
{
    (void)empty;
    size_t mark = out->n;
    if (put_native(a, n, r, q, out))
        return -1;
    if (n->meta) {
        out->n--; /* the closing brace */
        (void)mark;
        api_put_s(out, ",\"meta\":");
        es_put_json(out, n->meta);
        api_put_s(out, "}");
    }
    return 0;
}

/* Every aggregation of a level under query q: the native ones in one
 * engine call, the others refined.  empty: no event can match (every
 * result is empty, nothing runs). */
static int run_level(actx *a, const anode *aggs, size_t n, const es_query *q, int empty, seg_buf *out)
{
    size_t nn = 0;
    for (size_t i = 0; i < n; i++)
        nn += native_kind(aggs[i].kind);
    srch_agg *sa = NULL;
    srch_agg_result *res = NULL;
    int rc = 0;
    if (nn && !empty && a->v->ix && !q->empty) {
        sa = seg_calloc(nn, sizeof *sa);
        if (!sa)
            return es_fail(a->x, 503, "es_rejected_execution_exception", "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            if (native_kind(aggs[i].kind))
                rc = to_srch(a, &aggs[i], &sa[k++]);
        if (rc == 0) {
            if (++a->calls > ES_AGG_MAX_CALLS)
                rc = es_fail(a->x, 400, "illegal_argument_exception",
                             "the aggregations need more than %d queries", ES_AGG_MAX_CALLS);
        }
        if (rc == 0) {
            srch_request rq;
            es_request(q, 0, &rq);
            uint64_t total;
            srch_stats st;
            seg_err e = {0};
            if (srch_aggregate(a->v->ix, &rq, sa, nn, &res, &total, &st, &e))
                rc = es_fail_seg(a->x, &e);
            else
                api_note_failed(&st, "_search aggregations");
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        api_put_s(out, ",");
        api_put_jstr(out, aggs[i].name, strlen(aggs[i].name));
        api_put_s(out, ":");
        if (native_kind(aggs[i].kind)) {
            rc = put_result(a, &aggs[i], res ? &res[k] : NULL, q, res == NULL, out);
            k++;
        } else {
            rc = put_refined_meta(a, &aggs[i], q, empty || q->empty || !a->v->ix, out);
        }
    }
    if (res)
        srch_agg_results_free(res, nn);
    for (size_t i = 0; sa && i < nn; i++)
        srch_tree_free(sa[i].subs, sa[i].nsubs);
    seg_free(sa);
    return rc;
}

int es_aggs_run(const json_t *aggs, es_view *v, const es_query *q, seg_tok *tok, int64_t now, seg_buf *out, es_err *x)
{
    actx a = {v, tok, now, x, 0, 0};
    anode *nodes;
    size_t n;
    if (parse_level(&a, aggs, &nodes, &n, 0))
        return -1;
    api_put_s(out, "\"aggregations\":{");
    size_t mark = out->n;
    int rc = run_level(&a, nodes, n, q, 0, out);
    /* run_level writes ",name:..." for each: drop the first comma */
    if (rc == 0 && out->n > mark && out->p[mark] == ',')
        memmove(out->p + mark, out->p + mark + 1, out->n - mark - 1), out->n--;
    api_put_s(out, "}");
    anodes_free(nodes, n);
    return rc;
}
