/*
 * es_search.c -- _search, _count, _msearch, scroll and GET _doc of the
 * Elasticsearch-compatible API, over srch_search and srch_aggregate.
 *
 * Order: hits come newest first (by event time, ties in the engine's
 * stable order), which is what `sort: @timestamp desc` asks and what every
 * request without a sort gets (there is no relevance score: _score is 1
 * for every hit, null when a sort is given, as ES does).  A sort's first
 * key may be a numeric field or the time ascending (the engine's
 * srch_sort.c); hits' sort values are then [value, cursor].
 *
 * Paging: from + size up to 10,000 (ES's max_result_window); past that,
 * search_after with the hit's `sort` values ([time ms, cursor]) or a
 * scroll.  A scroll id holds its whole state (the index expression, the
 * request, the cursor after the last hit, and `now` for date math), so no
 * server keeps anything for it; a scroll sees events ingested after it
 * started only where they are older than its position.
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct sreq {
    es_query q;                /* the hits' query (with post_filter) */
    es_query aq;               /* the aggregations' query, when post_filter */
    int has_post;
    size_t from, size;
    int sorted;                /* a sort was asked: sort values, _score null */
    int nkeys;                 /* sort keys other than tie-breakers */
    char sort_field[SEG_FIELD_MAX + 1]; /* "": newest first; else the engine's
                                  sort_field (a numeric field, or _time) */
    int sort_asc;
    char *cursor;              /* search_after / scroll position */
    int src;                   /* 0 no _source, 1 whole, 2 filtered */
    json_t *incl, *excl;       /* arrays of patterns (owned) */
    json_t *fields;            /* requested fields (owned array), or NULL */
    const json_t *aggs;        /* borrowed from the body */
    int total_int;             /* rest_total_hits_as_int */
} sreq;

static void sreq_free(sreq *s)
{
    es_query_free(&s->q);
    es_query_free(&s->aq);
    seg_free(s->cursor);
    json_decref(s->incl);
    json_decref(s->excl);
    json_decref(s->fields);
    memset(s, 0, sizeof *s);
}

static int64_t now_ns(void) { return seg_time_now(); }

/* ------------------------------------------------------------------ */
/* Request parsing                                                      */
/* ------------------------------------------------------------------ */

static int size_value(const json_t *v, const char *what, size_t *out, es_err *x)
{
    long long n;
    if (json_is_integer(v))
        n = json_integer_value(v);
    else if (json_is_string(v) && *json_string_value(v)) {
        char *end;
        n = strtoll(json_string_value(v), &end, 10);
        if (*end)
            return es_fail(x, 400, "illegal_argument_exception", "[%s] must be a whole number", what);
    } else
        return es_fail(x, 400, "parsing_exception", "[%s] must be a whole number", what);
    if (n < 0)
        return es_fail(x, 400, "illegal_argument_exception", "[%s] parameter cannot be negative, found [%lld]", what, n);
    *out = (size_t)(n > 1000000 ? 1000000 : n);
    return 0;
}

/* One sort entry: the first key orders (a time field either way, or a
 * numeric field: the engine's srch_sort.c); after it, the time descending,
 * _doc and _score are tie-breakers the engine's order already has.  Other
 * later keys are refused (one key and time are what the engine sorts by). */
static int sort_entry(const char *field, const char *order, sreq *s, es_err *x)
{
    s->sorted = 1;
    if (!strcmp(field, "_doc") || !strcmp(field, "_score") || !strcmp(field, "_shard_doc"))
        return 0; /* tie-breakers: the engine's order is total */
    int is_time = es_is_time_field(field);
    if (order && strcasecmp(order, "asc") && strcasecmp(order, "desc"))
        return es_fail(x, 400, "parsing_exception", "[sort] order must be asc or desc, not [%s]", order);
    /* Elasticsearch's default: descending for _score, ascending for fields
     * (a time field too) */
    int asc = order ? !strcasecmp(order, "asc") : 1;
    if (s->nkeys++) {
        if (is_time && !asc && s->sort_field[0] && strcmp(s->sort_field, "_time"))
            return 0; /* a field, then newest first: the engine's own tie-break */
        return es_fail(x, 400, "illegal_argument_exception",
                       "sort by [%s] after another key is not supported: one key (a numeric field or the time), "
                       "ties newest first",
                       field);
    }
    size_t l = strlen(field);
    if (!is_time && l > 8 && !strcmp(field + l - 8, ".keyword"))
        l -= 8;
    if (is_time && !asc)
        s->sort_field[0] = 0; /* newest first: the default order */
    else
        snprintf(s->sort_field, sizeof s->sort_field, "%.*s", (int)l, is_time ? "_time" : field);
    s->sort_asc = asc;
    return 0;
}

/* The engine's request gets the sort. */
static void request_sort(const sreq *s, srch_request *rq)
{
    if (s->sort_field[0]) {
        rq->sort_field = s->sort_field;
        rq->sort_asc = s->sort_asc;
    }
}

/* The cursor after hit h in s's order (seg_free it). */
static char *hit_cursor(const sreq *s, const srch_hit *h)
{
    if (!s->sort_field[0])
        return srch_cursor_of(h);
    srch_request rq = {0};
    request_sort(s, &rq);
    return srch_sort_cursor_of(&rq, h);
}

static int parse_sort(const json_t *v, sreq *s, es_err *x)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (json_is_string(e)) {
            char f[SEG_FIELD_MAX + 16];
            snprintf(f, sizeof f, "%s", json_string_value(e));
            char *colon = strrchr(f, ':');
            if (colon)
                *colon = 0;
            if (sort_entry(f, colon ? colon + 1 : NULL, s, x))
                return -1;
        } else if (json_is_object(e)) {
            /* {"f": order, "g": order}: one entry per key, in order (as
             * Grafana sends it) */
            const char *f;
            json_t *o;
            json_object_foreach((json_t *)e, f, o)
            {
            const char *order = json_is_string(o) ? json_string_value(o) : NULL;
            if (json_is_object(o)) {
                const char *k;
                json_t *kv;
                json_object_foreach(o, k, kv)
                {
                    if (!strcmp(k, "order"))
                        order = json_string_value(kv);
                    else if (strcmp(k, "unmapped_type") && strcmp(k, "format") && strcmp(k, "numeric_type") &&
                             strcmp(k, "missing"))
                        return es_fail(x, 400, "parsing_exception", "[sort] option [%s] is not supported", k);
                }
            }
            if (sort_entry(f, order, s, x))
                return -1;
            }
        } else
            return es_fail(x, 400, "parsing_exception", "[sort] malformed entry");
    }
    return 0;
}

/* search_after: [time ms, cursor] as hits' sort values, or [time ms]
 * (then every hit strictly older than that millisecond). */
static int parse_search_after(const json_t *v, sreq *s, es_err *x)
{
    if (!json_is_array(v) || json_array_size(v) < 1)
        return es_fail(x, 400, "parsing_exception", "[search_after] must be a non-empty array");
    json_t *c = json_array_get(v, 1);
    if (json_is_string(c) && (!strncmp(json_string_value(c), "c1", 2) || !strncmp(json_string_value(c), "s1", 2))) {
        seg_free(s->cursor);
        if (!(s->cursor = seg_strndup(json_string_value(c), json_string_length(c))))
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        return 0;
    }
    json_t *t = json_array_get(v, 0);
    if (s->sort_field[0])
        return es_fail(x, 400, "parsing_exception",
                       "[search_after] in a field's order takes the hits' sort values as they came (two values)");
    if (!json_is_integer(t))
        return es_fail(x, 400, "parsing_exception", "[search_after] the first value must be a time in epoch millis");
    int64_t end = (int64_t)json_integer_value(t) * 1000000;
    if (!s->q.has_end || end < s->q.end)
        s->q.end = end, s->q.has_end = 1;
    return 0;
}

/* _source: false, true, a pattern, a list, or {includes, excludes}. */
static int parse_source(const json_t *v, sreq *s, es_err *x)
{
    if (json_is_boolean(v)) {
        s->src = json_is_true(v);
        return 0;
    }
    json_t *in = NULL, *ex = NULL;
    if (json_is_string(v) || json_is_array(v))
        in = (json_t *)v;
    else if (json_is_object(v)) {
        in = json_object_get(v, "includes");
        if (!in)
            in = json_object_get(v, "include");
        ex = json_object_get(v, "excludes");
        if (!ex)
            ex = json_object_get(v, "exclude");
    } else
        return es_fail(x, 400, "parsing_exception", "[_source] must be a boolean, a string, an array or an object");
    s->src = 2;
    json_decref(s->incl);
    json_decref(s->excl);
    s->incl = json_array();
    s->excl = json_array();
    const json_t *lists[2] = {in, ex};
    for (int k = 0; k < 2; k++) {
        const json_t *l = lists[k];
        size_t n = json_is_array(l) ? json_array_size(l) : l ? 1 : 0;
        for (size_t i = 0; i < n; i++) {
            const json_t *p = json_is_array(l) ? json_array_get(l, i) : l;
            if (!json_is_string(p))
                return es_fail(x, 400, "parsing_exception", "[_source] patterns must be strings");
            json_array_append(k ? s->excl : s->incl, (json_t *)p);
        }
    }
    return 0;
}

static int csv_to_array(const char *v, json_t **out)
{
    json_t *a = json_array();
    for (const char *p = v; *p;) {
        size_t l = strcspn(p, ",");
        if (l)
            json_array_append_new(a, json_stringn(p, l));
        p += l + (p[l] == ',');
    }
    json_decref(*out);
    *out = a;
    return 0;
}

/* fields / docvalue_fields: names, or {"field": name, "format": ...}. */
static int parse_fields(const json_t *v, sreq *s, es_err *x)
{
    if (!json_is_array(v))
        return es_fail(x, 400, "parsing_exception", "[fields] must be an array");
    if (!s->fields)
        s->fields = json_array();
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_object(e))
            e = json_object_get(e, "field");
        if (!json_is_string(e))
            return es_fail(x, 400, "parsing_exception", "[fields] entries must name a field");
        json_array_append(s->fields, e);
    }
    return 0;
}

static const char *const body_keys[] = {
    "query", "size", "from", "sort", "search_after", "_source", "fields", "docvalue_fields", "stored_fields",
    "aggs", "aggregations", "track_total_hits", "timeout", "highlight", "script_fields", "version",
    "seq_no_primary_term", "explain", "track_scores", "post_filter", "profile", "runtime_mappings", "ext",
    "stats", "terminate_after", "min_score", "collapse", "pit", "suggest", "rescore", "indices_boost", NULL};

static int parse_body(const json_t *b, sreq *s, seg_tok *tok, int64_t now, es_err *x)
{
    const char *k = api_unknown_key(b, body_keys);
    json_t *v;
    if (k)
        return es_fail(x, 400, "parsing_exception", "Unknown key for a START_OBJECT in [%s].", k);
    json_object_foreach((json_t *)b, k, v)
    {
        /* accepted keys that logdex cannot honour are errors when they
         * would change the answer */
        if ((!strcmp(k, "script_fields") || !strcmp(k, "runtime_mappings") || !strcmp(k, "ext")) &&
            !(json_is_object(v) && json_object_size(v) == 0))
            return es_fail(x, 400, "illegal_argument_exception", "[%s] is not supported", k);
        if ((!strcmp(k, "explain") || !strcmp(k, "profile")) && json_is_true(v))
            return es_fail(x, 400, "illegal_argument_exception", "[%s] is not supported", k);
        if (!strcmp(k, "min_score") || !strcmp(k, "collapse") || !strcmp(k, "pit") || !strcmp(k, "suggest") ||
            !strcmp(k, "rescore") || !strcmp(k, "indices_boost") || !strcmp(k, "terminate_after"))
            return es_fail(x, 400, "illegal_argument_exception", "[%s] is not supported by logdex", k);
    }
    if (es_dsl_query(json_object_get(b, "query"), tok, now, &s->q, x))
        return -1;
    json_t *pf = json_object_get(b, "post_filter");
    if (pf) {
        /* aggregations see the query alone; hits the query and the filter */
        es_query f;
        if (es_dsl_query(json_object_get(b, "query"), tok, now, &s->aq, x) || es_dsl_query(pf, tok, now, &f, x) ||
            es_query_and(&s->q, &f, x))
            return -1;
        s->has_post = 1;
    }
    if ((v = json_object_get(b, "size")) && !json_is_null(v) && size_value(v, "size", &s->size, x))
        return -1;
    if ((v = json_object_get(b, "from")) && !json_is_null(v) && size_value(v, "from", &s->from, x))
        return -1;
    if ((v = json_object_get(b, "sort")) && parse_sort(v, s, x))
        return -1;
    if ((v = json_object_get(b, "search_after")) && parse_search_after(v, s, x))
        return -1;
    if ((v = json_object_get(b, "_source")) && parse_source(v, s, x))
        return -1;
    if ((v = json_object_get(b, "fields")) && parse_fields(v, s, x))
        return -1;
    if ((v = json_object_get(b, "docvalue_fields")) && parse_fields(v, s, x))
        return -1;
    s->aggs = json_object_get(b, "aggs");
    if (!s->aggs)
        s->aggs = json_object_get(b, "aggregations");
    if (s->aggs && !json_is_object(s->aggs))
        return es_fail(x, 400, "parsing_exception", "[aggs] must be an object");
    return 0;
}

static const char *const search_params[] = {
    "q", "df", "default_operator", "analyze_wildcard", "lenient", "size", "from", "sort", "_source",
    "_source_includes", "_source_excludes", "scroll", "track_total_hits", "rest_total_hits_as_int",
    "ignore_unavailable", "allow_no_indices", "expand_wildcards", "typed_keys", "search_type", "preference",
    "routing", "request_cache", "timeout", "batched_reduce_size", "pre_filter_shard_size",
    "max_concurrent_shard_requests", "ccs_minimize_roundtrips", "allow_partial_search_results",
    "seq_no_primary_term", "version", "track_scores", "stored_fields", "docvalue_fields", "ignore_throttled",
    NULL};

/* The URL's parameters, over what the body said (as ES does). */
static int parse_params(struct MHD_Connection *c, sreq *s, seg_tok *tok, es_err *x)
{
    const char *v;
    if ((v = api_arg(c, "q"))) {
        const char *op = api_arg(c, "default_operator");
        srch_query *q;
        if (es_dsl_query_string(v, api_arg(c, "df"), op && !strcasecmp(op, "and"), tok, &q, x))
            return -1;
        es_query more = {q, 0, 0, 0, 0, 0};
        if (es_query_and(&s->q, &more, x))
            return -1;
    }
    if ((v = api_arg(c, "size"))) {
        json_t *j = json_string(v);
        int rc = size_value(j, "size", &s->size, x);
        json_decref(j);
        if (rc)
            return -1;
    }
    if ((v = api_arg(c, "from"))) {
        json_t *j = json_string(v);
        int rc = size_value(j, "from", &s->from, x);
        json_decref(j);
        if (rc)
            return -1;
    }
    if ((v = api_arg(c, "sort"))) {
        json_t *a = NULL;
        csv_to_array(v, &a);
        int rc = parse_sort(a, s, x);
        json_decref(a);
        if (rc)
            return -1;
    }
    if ((v = api_arg(c, "_source"))) {
        if (!strcmp(v, "false") || !strcmp(v, "true"))
            s->src = !strcmp(v, "true");
        else {
            s->src = 2;
            csv_to_array(v, &s->incl);
            if (!s->excl)
                s->excl = json_array();
        }
    }
    if ((v = api_arg(c, "_source_includes"))) {
        s->src = 2;
        csv_to_array(v, &s->incl);
        if (!s->excl)
            s->excl = json_array();
    }
    if ((v = api_arg(c, "_source_excludes"))) {
        if (s->src != 2) {
            s->src = 2;
            json_decref(s->incl);
            s->incl = json_array();
        }
        csv_to_array(v, &s->excl);
    }
    if ((v = api_arg(c, "docvalue_fields"))) {
        json_t *a = NULL;
        csv_to_array(v, &a);
        int rc = parse_fields(a, s, x);
        json_decref(a);
        if (rc)
            return -1;
    }
    s->total_int = es_param_bool(c, "rest_total_hits_as_int", 0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Answers                                                              */
/* ------------------------------------------------------------------ */

static void put_fields(seg_buf *b, const srch_hit *h, const json_t *want, seg_json *js)
{
    const seg_jval *v;
    size_t nv;
    seg_err e = {0};
    if (seg_json_parse(js, h->json, h->json_len, &v, &nv, &e))
        return;
    api_put_s(b, ",\"fields\":{");
    int nf = 0;
    for (size_t w = 0; w < json_array_size(want); w++) {
        char pat[SEG_FIELD_MAX + 16];
        snprintf(pat, sizeof pat, "%s", json_string_value(json_array_get(want, w)));
        size_t pl = strlen(pat);
        if (pl > 8 && !strcmp(pat + pl - 8, ".keyword"))
            pat[pl - 8] = 0;
        /* each distinct matching path once, with all its values */
        for (size_t i = 0; i < nv; i++) {
            char path[SEG_FIELD_MAX + 1];
            snprintf(path, sizeof path, "%.*s", (int)v[i].path_len, v[i].path);
            if (fnmatch(pat, path, 0))
                continue;
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++)
                seen = v[k].path_len == v[i].path_len && !memcmp(v[k].path, v[i].path, v[i].path_len) &&
                       !fnmatch(pat, path, 0);
            if (seen)
                continue;
            api_put_s(b, nf++ ? "," : "");
            api_put_jstr(b, path, strlen(path));
            api_put_s(b, ":[");
            int nvals = 0;
            for (size_t k = i; k < nv; k++) {
                if (v[k].path_len != v[i].path_len || memcmp(v[k].path, v[i].path, v[i].path_len))
                    continue;
                api_put_s(b, nvals++ ? "," : "");
                char num[64];
                switch (v[k].type) {
                case SEG_JV_STRING: api_put_jstr(b, v[k].str, v[k].str_len); break;
                case SEG_JV_INT: snprintf(num, sizeof num, "%lld", (long long)v[k].i); api_put_s(b, num); break;
                case SEG_JV_REAL: snprintf(num, sizeof num, "%.17g", v[k].d); api_put_s(b, num); break;
                case SEG_JV_TRUE: api_put_s(b, "true"); break;
                default: api_put_s(b, "false"); break;
                }
            }
            api_put_s(b, "]");
        }
    }
    api_put_s(b, "}");
}

static void put_hit(seg_buf *b, const es_view *v, const srch_hit *h, const sreq *s, seg_json *js, int first)
{
    api_put_s(b, first ? "{\"_index\":" : ",{\"_index\":");
    const char *ix = es_view_index_of(v, h->seg);
    api_put_jstr(b, ix, strlen(ix));
    api_put_s(b, ",\"_id\":");
    api_put_jstr(b, h->id, h->id_len);
    api_put_s(b, s->sorted ? ",\"_score\":null" : ",\"_score\":1.0");
    if (s->src == 1) {
        api_put_s(b, ",\"_source\":");
        seg_buf_put(b, h->json, h->json_len);
    } else if (s->src == 2) {
        api_put_s(b, ",\"_source\":");
        size_t mark = b->n;
        if (api_filter_source(h->json, h->json_len, s->incl, s->excl, b) < 0) {
            b->n = mark; /* not readable here: the whole event */
            seg_buf_put(b, h->json, h->json_len);
        }
    }
    if (s->fields && js)
        put_fields(b, h, s->fields, js);
    if (s->sorted) {
        char *cur = hit_cursor(s, h);
        char t[64];
        int64_t ms = h->time >= 0 ? h->time / 1000000 : (h->time - 999999) / 1000000;
        if (s->sort_field[0] && strcmp(s->sort_field, "_time")) {
            if (h->sort_has && h->sort_v == (double)(long long)h->sort_v && fabs(h->sort_v) < 9e15)
                snprintf(t, sizeof t, ",\"sort\":[%lld,", (long long)h->sort_v);
            else if (h->sort_has)
                snprintf(t, sizeof t, ",\"sort\":[%.17g,", h->sort_v);
            else
                snprintf(t, sizeof t, ",\"sort\":[null,");
        } else {
            snprintf(t, sizeof t, ",\"sort\":[%lld,", (long long)ms);
        }
        api_put_s(b, t);
        if (cur)
            api_put_jstr(b, cur, strlen(cur));
        else
            b->oom = 1;
        api_put_s(b, "]");
        seg_free(cur);
    }
    api_put_s(b, "}");
}

static void put_total(seg_buf *b, uint64_t total, int as_int)
{
    char t[96];
    if (as_int)
        snprintf(t, sizeof t, "\"total\":%llu", (unsigned long long)total);
    else
        snprintf(t, sizeof t, "\"total\":{\"value\":%llu,\"relation\":\"eq\"}", (unsigned long long)total);
    api_put_s(b, t);
}

/* base64url without padding, for scroll ids */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put_b64(seg_buf *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char c[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], b64[v >> 6 & 63], b64[v & 63]};
        seg_buf_put(b, c, i + 2 < n ? 4 : i + 1 < n ? 3 : 2);
    }
}

static int un_b64(const char *s, seg_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (; *s; s++) {
        const char *k = strchr(b64, *s);
        if (!k)
            return -1;
        acc = acc << 6 | (uint32_t)(k - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            seg_buf_put_u8(out, (uint8_t)(acc >> bits));
        }
    }
    return out->oom ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* One search                                                           */
/* ------------------------------------------------------------------ */

/* Runs one search request (body may be NULL; c NULL: no URL parameters,
 * as in _msearch) and appends its answer object to out.  scroll: keep
 * the state in a _scroll_id (with the original body, expr and now). */
static int run_search(struct MHD_Connection *c, const char *expr, int ignore_unavailable, const json_t *body,
                      int64_t now, const char *cursor, int scroll, seg_buf *out, es_err *x)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sreq s;
    memset(&s, 0, sizeof s);
    s.size = 10;
    s.src = 1;
    int slot = api_tok_take();
    if (slot < 0)
        return es_fail(x, 429, "es_rejected_execution_exception", "too many concurrent searches");
    seg_tok *tok = api_tok(slot);
    json_t *empty = json_object();
    int rc = parse_body(body ? body : empty, &s, tok, now, x);
    if (rc == 0 && c)
        rc = parse_params(c, &s, tok, x);
    if (rc == 0 && cursor)
        seg_free(s.cursor);
    if (rc == 0 && cursor && !(s.cursor = seg_strndup(cursor, strlen(cursor))))
        rc = es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
    if (rc == 0 && s.from + s.size > ES_MAX_WINDOW)
        rc = es_fail(x, 400, "illegal_argument_exception",
                     "Result window is too large, from + size must be less than or equal to: [%d] but was [%zu]. "
                     "Use search_after or scroll to page further.",
                     ES_MAX_WINDOW, s.from + s.size);
    es_view v;
    memset(&v, 0, sizeof v);
    if (rc == 0)
        rc = es_view_open(expr, ignore_unavailable, &v, x);
    srch_result res;
    memset(&res, 0, sizeof res);
    int have_res = 0;
    if (rc == 0 && v.ix && !s.q.empty) {
        srch_request rq;
        es_request(&s.q, s.from + s.size, &rq);
        request_sort(&s, &rq);
        rq.count_only = rq.limit == 0;
        rq.cursor = s.cursor;
        seg_err e = {0};
        if (srch_search(v.ix, &rq, &res, &e))
            rc = es_fail_seg(x, &e);
        else {
            have_res = 1;
            api_note_failed(&res.stats, "_search");
        }
    }
    if (rc == 0) {
        api_put_s(out, "{");
        if (scroll) {
            /* the next page's state: expr, body, now, cursor after the last hit */
            json_t *st = json_pack("{s:s,s:O,s:I,s:s?}", "i", expr ? expr : "_all", "b", body ? body : empty, "t",
                                   (json_int_t)now, "c",
                                   have_res && res.nhits ? NULL : s.cursor);
            if (st && have_res && res.nhits) {
                char *cur = hit_cursor(&s, &res.hits[res.nhits - 1]);
                if (cur)
                    json_object_set_new(st, "c", json_string(cur));
                seg_free(cur);
            }
            if (st && !have_res)
                json_object_set_new(st, "done", json_true());
            seg_buf tmp = {0};
            es_put_json(&tmp, st);
            json_decref(st);
            api_put_s(out, "\"_scroll_id\":\"ld1");
            put_b64(out, tmp.p, tmp.n);
            api_put_s(out, "\",");
            seg_buf_free(&tmp);
        }
        char head[200];
        snprintf(head, sizeof head,
                 "\"took\":%lld,\"timed_out\":false,\"_shards\":{\"total\":%zu,\"successful\":%zu,\"skipped\":0,"
                 "\"failed\":0},\"hits\":{",
                 (long long)es_ms_since(&t0), v.n ? v.n : 0, v.n ? v.n : 0);
        api_put_s(out, head);
        put_total(out, have_res ? res.total : 0, s.total_int);
        size_t first = s.from < res.nhits ? s.from : res.nhits;
        api_put_s(out, s.sorted || res.nhits <= first ? ",\"max_score\":null,\"hits\":[" : ",\"max_score\":1.0,\"hits\":[");
        seg_json *js = s.fields ? seg_json_new() : NULL;
        for (size_t i = first; i < res.nhits; i++)
            put_hit(out, &v, &res.hits[i], &s, js, i == first);
        seg_json_free(js);
        api_put_s(out, "]}");
        if (s.aggs && json_object_size(s.aggs)) {
            api_put_s(out, ",");
            if (es_aggs_run(s.aggs, &v, s.has_post ? &s.aq : &s.q, tok, now, out, x))
                rc = -1;
        }
        api_put_s(out, "}");
    }
    if (have_res)
        srch_result_free(&res);
    es_view_close(&v);
    api_tok_give(slot);
    json_decref(empty);
    sreq_free(&s);
    return rc;
}

void es_search_route(struct MHD_Connection *c, const char *method, const char *expr, const seg_buf *body, reply *r)
{
    es_err x = {0};
    json_t *b = NULL;
    if (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "HEAD"))
        es_fail(&x, 405, "method_not_allowed_exception", "use GET or POST for _search");
    else if (es_check_params(c, search_params, &x) || es_body_json(body, &b, &x))
        ;
    else {
        const char *scroll = api_arg(c, "scroll");
        run_search(c, expr, es_param_bool(c, "ignore_unavailable", 0), b, now_ns(), NULL, scroll != NULL, &r->body,
                   &x);
    }
    json_decref(b);
    if (x.status)
        es_error_reply(r, &x);
}

void es_scroll_route(struct MHD_Connection *c, const char *method, const char *id, const seg_buf *body, reply *r)
{
    static const char *const ok[] = {"scroll", "scroll_id", "rest_total_hits_as_int", NULL};
    es_err x = {0};
    json_t *b = NULL;
    if (es_check_params(c, ok, &x) || es_body_json(body, &b, &x))
        return es_error_reply(r, &x);
    json_t *ids = json_array();
    if (id)
        json_array_append_new(ids, json_string(id));
    if (api_arg(c, "scroll_id"))
        json_array_append_new(ids, json_string(api_arg(c, "scroll_id")));
    json_t *bid = b ? json_object_get(b, "scroll_id") : NULL;
    if (json_is_string(bid))
        json_array_append(ids, bid);
    else if (json_is_array(bid))
        json_array_extend(ids, bid);
    if (!strcmp(method, "DELETE")) {
        /* nothing is kept for a scroll: each id is freed at once */
        char t[96];
        snprintf(t, sizeof t, "{\"succeeded\":true,\"num_freed\":%zu}", json_array_size(ids));
        api_put_s(&r->body, t);
    } else if (json_array_size(ids) != 1 || !json_is_string(json_array_get(ids, 0))) {
        es_fail(&x, 400, "action_request_validation_exception", "Validation Failed: 1: scrollId is missing;");
    } else {
        const char *sid = json_string_value(json_array_get(ids, 0));
        seg_buf raw = {0};
        json_t *st = NULL;
        if (strncmp(sid, "ld1", 3) || un_b64(sid + 3, &raw) ||
            !(st = json_loadb((const char *)raw.p, raw.n, 0, NULL)) || !json_is_object(st))
            es_fail(&x, 404, "search_context_missing_exception", "No search context found for id [%.80s]", sid);
        else if (json_is_true(json_object_get(st, "done"))) {
            api_put_s(&r->body, "{\"_scroll_id\":");
            api_put_jstr(&r->body, sid, strlen(sid));
            api_put_s(&r->body, ",\"took\":0,\"timed_out\":false,\"_shards\":{\"total\":1,\"successful\":1,"
                                "\"skipped\":0,\"failed\":0},\"hits\":{");
            put_total(&r->body, 0, es_param_bool(c, "rest_total_hits_as_int", 0));
            api_put_s(&r->body, ",\"max_score\":null,\"hits\":[]}}");
        } else {
            json_t *sb = json_deep_copy(json_object_get(st, "b"));
            json_object_del(sb, "from"); /* pages after the first continue by cursor */
            json_object_del(sb, "search_after");
            json_object_del(sb, "aggs");
            json_object_del(sb, "aggregations");
            const char *cur = json_string_value(json_object_get(st, "c"));
            run_search(NULL, json_string_value(json_object_get(st, "i")), 1, sb,
                       (int64_t)json_integer_value(json_object_get(st, "t")), cur, 1, &r->body, &x);
            json_decref(sb);
        }
        json_decref(st);
        seg_buf_free(&raw);
    }
    json_decref(ids);
    json_decref(b);
    if (x.status)
        es_error_reply(r, &x);
}

void es_count_route(struct MHD_Connection *c, const char *expr, const seg_buf *body, reply *r)
{
    static const char *const ok[] = {"q", "df", "default_operator", "analyze_wildcard", "lenient",
                                     "ignore_unavailable", "allow_no_indices", "expand_wildcards", "preference",
                                     "routing", "min_score", "terminate_after", "ignore_throttled", NULL};
    es_err x = {0};
    json_t *b = NULL;
    if (es_check_params(c, ok, &x) || es_body_json(body, &b, &x))
        return es_error_reply(r, &x);
    const char *k;
    json_t *val;
    json_object_foreach(b, k, val)
    {
        if (strcmp(k, "query")) {
            es_fail(&x, 400, "parsing_exception", "request does not support [%s]", k);
            break;
        }
    }
    json_t *q = json_pack("{s:O?,s:i}", "query", b ? json_object_get(b, "query") : NULL, "size", 0);
    seg_buf tmp = {0};
    if (!x.status)
        run_search(c, expr, es_param_bool(c, "ignore_unavailable", 0), q, now_ns(), NULL, 0, &tmp, &x);
    if (!x.status) {
        /* the count out of the search answer's hits.total */
        json_t *a = json_loadb((const char *)tmp.p, tmp.n, 0, NULL);
        json_t *tot = json_object_get(json_object_get(json_object_get(a, "hits"), "total"), "value");
        json_t *sh = json_object_get(a, "_shards");
        api_put_s(&r->body, "{\"count\":");
        char n[32];
        snprintf(n, sizeof n, "%lld", (long long)json_integer_value(tot));
        api_put_s(&r->body, n);
        api_put_s(&r->body, ",\"_shards\":");
        es_put_json(&r->body, sh);
        api_put_s(&r->body, "}");
        json_decref(a);
    }
    seg_buf_free(&tmp);
    json_decref(q);
    json_decref(b);
    if (x.status)
        es_error_reply(r, &x);
}

void es_msearch_route(struct MHD_Connection *c, const char *expr, const seg_buf *body, reply *r)
{
    static const char *const ok[] = {"max_concurrent_searches", "max_concurrent_shard_requests", "typed_keys",
                                     "rest_total_hits_as_int", "search_type", "ccs_minimize_roundtrips",
                                     "pre_filter_shard_size", "ignore_unavailable", "allow_no_indices",
                                     "expand_wildcards", "ignore_throttled", NULL};
    es_err x = {0};
    if (es_check_params(c, ok, &x))
        return es_error_reply(r, &x);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    seg_buf items = {0};
    int64_t now = now_ns();
    const char *p = (const char *)body->p, *end = p + body->n;
    size_t n = 0;
    json_t *header = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        const char *line = p;
        size_t len = (size_t)(le - p);
        p = nl ? nl + 1 : end;
        if (q == le)
            continue; /* blank lines between entries */
        json_error_t je;
        json_t *j = json_loadb(line, len, 0, &je);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            json_decref(header);
            seg_buf_free(&items);
            es_fail(&x, 400, "parsing_exception", "_msearch: line is not a JSON object: %s", j ? "" : je.text);
            return es_error_reply(r, &x);
        }
        if (!header) {
            header = j;
            continue;
        }
        /* one search: its header then its body */
        es_err one = {0};
        const json_t *hi = json_object_get(header, "index");
        char ixbuf[4096];
        const char *ix = expr;
        if (json_is_string(hi))
            ix = json_string_value(hi);
        else if (json_is_array(hi)) {
            size_t o = 0;
            ixbuf[0] = 0;
            for (size_t k = 0; k < json_array_size(hi) && o < sizeof ixbuf - 80; k++)
                o += (size_t)snprintf(ixbuf + o, sizeof ixbuf - o, "%s%s", k ? "," : "",
                                      json_string_value(json_array_get(hi, k)));
            ix = ixbuf;
        }
        const char *hk;
        json_t *hv;
        json_object_foreach(header, hk, hv)
        {
            if (strcmp(hk, "index") && strcmp(hk, "search_type") && strcmp(hk, "preference") && strcmp(hk, "routing") &&
                strcmp(hk, "request_cache") && strcmp(hk, "ignore_unavailable") && strcmp(hk, "allow_no_indices") &&
                strcmp(hk, "expand_wildcards") && strcmp(hk, "allow_partial_search_results") &&
                strcmp(hk, "ccs_minimize_roundtrips")) {
                es_fail(&one, 400, "illegal_argument_exception", "key [%s] is not supported in the metadata section",
                        hk);
                break;
            }
        }
        int iu = json_is_true(json_object_get(header, "ignore_unavailable"));
        api_put_s(&items, n++ ? "," : "");
        size_t mark = items.n;
        if (!one.status && run_search(NULL, ix, iu, j, now, NULL, 0, &items, &one) == 0) {
            items.n--; /* the closing brace: a status follows */
            api_put_s(&items, ",\"status\":200}");
        } else {
            items.n = mark;
            api_put_s(&items, "{\"error\":{\"root_cause\":[");
            es_put_error_obj(&items, &one);
            api_put_s(&items, "],\"type\":");
            api_put_jstr(&items, one.type, strlen(one.type));
            api_put_s(&items, ",\"reason\":");
            api_put_jstr(&items, one.reason, strlen(one.reason));
            char st[48];
            snprintf(st, sizeof st, "},\"status\":%u}", one.status);
            api_put_s(&items, st);
        }
        json_decref(header);
        json_decref(j);
        header = NULL;
    }
    if (header) {
        json_decref(header);
        seg_buf_free(&items);
        es_fail(&x, 400, "parsing_exception", "_msearch: a header line without its body (the last line)");
        return es_error_reply(r, &x);
    }
    char head[64];
    snprintf(head, sizeof head, "{\"took\":%lld,\"responses\":[", (long long)es_ms_since(&t0));
    api_put_s(&r->body, head);
    seg_buf_put(&r->body, items.p, items.n);
    api_put_s(&r->body, "]}");
    seg_buf_free(&items);
}

void es_get_doc_route(const char *method, const char *index, const char *id, reply *r)
{
    (void)method;
    es_err x = {0};
    es_view v;
    if (es_view_open(index, 0, &v, &x))
        return es_error_reply(r, &x);
    srch_query *q = NULL;
    seg_err e = {0};
    const char *ids[1] = {id};
    size_t lens[1] = {strlen(id)};
    srch_result res;
    memset(&res, 0, sizeof res);
    int found = 0;
    if (srch_q_ids(ids, lens, 1, &q, &e)) {
        es_fail_seg(&x, &e);
    } else if (v.ix) {
        srch_request rq;
        memset(&rq, 0, sizeof rq);
        rq.q = q;
        rq.limit = 1;
        if (srch_search(v.ix, &rq, &res, &e))
            es_fail_seg(&x, &e);
        else
            found = res.nhits > 0;
    }
    if (!x.status) {
        api_put_s(&r->body, "{\"_index\":");
        api_put_jstr(&r->body, index, strlen(index));
        api_put_s(&r->body, ",\"_id\":");
        api_put_jstr(&r->body, id, strlen(id));
        if (found) {
            api_put_s(&r->body, ",\"_version\":1,\"_seq_no\":0,\"_primary_term\":1,\"found\":true,\"_source\":");
            seg_buf_put(&r->body, res.hits[0].json, res.hits[0].json_len);
            api_put_s(&r->body, "}");
        } else {
            r->status = 404;
            api_put_s(&r->body, ",\"found\":false}");
        }
    }
    if (res.hits || res.cursor)
        srch_result_free(&res);
    srch_query_free(q);
    es_view_close(&v);
    if (x.status)
        es_error_reply(r, &x);
}

int es_top_hits(es_view *v, const es_query *q, const json_t *opts, int empty, seg_buf *out, es_err *x)
{
    sreq s;
    memset(&s, 0, sizeof s);
    s.size = 3;
    s.src = 1;
    json_t *val;
    int rc = 0;
    if ((val = json_object_get(opts, "size")) && size_value(val, "size", &s.size, x))
        rc = -1;
    if (rc == 0 && (val = json_object_get(opts, "from")) && size_value(val, "from", &s.from, x))
        rc = -1;
    if (rc == 0 && (val = json_object_get(opts, "sort")) && parse_sort(val, &s, x))
        rc = -1;
    if (rc == 0 && (val = json_object_get(opts, "_source")) && parse_source(val, &s, x))
        rc = -1;
    if (rc == 0 && (val = json_object_get(opts, "fields")) && parse_fields(val, &s, x))
        rc = -1;
    if (rc == 0 && (val = json_object_get(opts, "docvalue_fields")) && parse_fields(val, &s, x))
        rc = -1;
    if (rc == 0 && s.from + s.size > 100)
        rc = es_fail(x, 400, "illegal_argument_exception", "[top_hits] from + size must be at most 100");
    srch_result res;
    memset(&res, 0, sizeof res);
    int have = 0;
    if (rc == 0 && !empty && v->ix && !q->empty) {
        srch_request rq;
        es_request(q, s.from + s.size, &rq);
        request_sort(&s, &rq);
        rq.count_only = rq.limit == 0;
        seg_err e = {0};
        if (srch_search(v->ix, &rq, &res, &e))
            rc = es_fail_seg(x, &e);
        else
            have = 1;
    }
    if (rc == 0) {
        api_put_s(out, "{\"hits\":{");
        put_total(out, have ? res.total : 0, 0);
        size_t first = s.from < res.nhits ? s.from : res.nhits;
        api_put_s(out, s.sorted || res.nhits <= first ? ",\"max_score\":null,\"hits\":[" : ",\"max_score\":1.0,\"hits\":[");
        seg_json *js = s.fields ? seg_json_new() : NULL;
        for (size_t i = first; i < res.nhits; i++)
            put_hit(out, v, &res.hits[i], &s, js, i == first);
        seg_json_free(js);
        api_put_s(out, "]}}");
    }
    if (have)
        srch_result_free(&res);
    sreq_free(&s);
    return rc;
}
