/*
 * api_agg.c -- translates aggregation requests (JSON) into srch_agg trees
 * and their results into JSON; used by POST /api/v1/{index}/aggregate and
 * `logdex agg`.
 */
#define _GNU_SOURCE
#include "api/api_int.h"
#include "searcher/srch.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 8
#define MAX_AGGS 64

static void agg_free(srch_agg *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        seg_free(a[i].name);
        seg_free(a[i].field);
        agg_free(a[i].subs, a[i].nsubs);
    }
    seg_free(a);
}

static int bad(seg_err *e, const char *fmt, const char *a, const char *b)
{
    seg_err_set(e, SEG_EQUERY, NULL, fmt, a, b);
    return SEG_EQUERY;
}

/* "1m", "30s", "500ms", "1h", "1d", "1w", or "auto" (0) */
static int parse_interval(const char *s, int64_t *ns)
{
    if (!strcmp(s, "auto")) {
        *ns = 0;
        return 0;
    }
    char *end;
    double v = strtod(s, &end);
    int64_t unit;
    if (end == s || v <= 0)
        return -1;
    if (!strcmp(end, "ms"))
        unit = 1000000LL;
    else if (!strcmp(end, "s"))
        unit = 1000000000LL;
    else if (!strcmp(end, "m"))
        unit = 60000000000LL;
    else if (!strcmp(end, "h"))
        unit = 3600000000000LL;
    else if (!strcmp(end, "d"))
        unit = 86400000000000LL;
    else if (!strcmp(end, "w"))
        unit = 604800000000000LL;
    else
        return -1;
    double x = v * (double)unit;
    if (x < 1e6 || x > 3.2e17)
        return -1;
    *ns = (int64_t)x;
    return 0;
}

static int parse_aggs(json_t *obj, srch_agg **out, size_t *n, int depth, seg_err *e)
{
    *out = NULL;
    *n = 0;
    if (!json_is_object(obj))
        return bad(e, "\"aggs\" must be an object of named aggregations%s%s", "", "");
    if (depth > MAX_DEPTH)
        return bad(e, "aggregations nested deeper than 8 levels%s%s", "", "");
    size_t cnt = json_object_size(obj);
    if (cnt > MAX_AGGS)
        return bad(e, "more than 64 aggregations in one object%s%s", "", "");
    srch_agg *a = seg_calloc(cnt ? cnt : 1, sizeof *a);
    if (!a)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    size_t k = 0;
    const char *name;
    json_t *def;
    int rc = SEG_OK;
    json_object_foreach(obj, name, def)
    {
        srch_agg *x = &a[k++];
        x->name = seg_strndup(name, strlen(name));
        if (!x->name) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
        if (!json_is_object(def)) {
            rc = bad(e, "aggregation '%s' must be an object%s", name, "");
            break;
        }
        const char *kind;
        json_t *body;
        int kinds = 0;
        json_object_foreach(def, kind, body)
        {
            if (!strcmp(kind, "aggs"))
                continue;
            kinds++;
            if (!strcmp(kind, "date_histogram"))
                x->type = SRCH_AGG_DATE_HISTOGRAM;
            else if (!strcmp(kind, "terms"))
                x->type = SRCH_AGG_TERMS;
            else if (!strcmp(kind, "stats"))
                x->type = SRCH_AGG_STATS;
            else if (!strcmp(kind, "percentiles"))
                x->type = SRCH_AGG_PERCENTILES;
            else if (!strcmp(kind, "cardinality"))
                x->type = SRCH_AGG_CARDINALITY;
            else {
                rc = bad(e, "aggregation '%s': unknown kind '%s' (date_histogram, terms, stats, percentiles, cardinality)", name, kind);
                break;
            }
            if (!json_is_object(body)) {
                rc = bad(e, "aggregation '%s': '%s' must be an object", name, kind);
                break;
            }
            if (x->type == SRCH_AGG_DATE_HISTOGRAM) {
                json_t *iv = json_object_get(body, "interval");
                if (!iv)
                    iv = json_object_get(body, "fixed_interval");
                if (!json_is_string(iv) || parse_interval(json_string_value(iv), &x->interval_ns)) {
                    rc = bad(e, "aggregation '%s': interval must be like \"1m\", \"30s\", \"1h\", \"1d\" or \"auto\"%s", name, "");
                    break;
                }
                continue;
            }
            json_t *f = json_object_get(body, "field");
            if (!json_is_string(f) || !json_string_length(f)) {
                rc = bad(e, "aggregation '%s': \"field\" is required%s", name, "");
                break;
            }
            x->field = seg_strndup(json_string_value(f), json_string_length(f));
            if (!x->field) {
                rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                break;
            }
            if (x->type == SRCH_AGG_TERMS) {
                json_t *sz = json_object_get(body, "size");
                x->size = 10;
                if (sz && (!json_is_integer(sz) || json_integer_value(sz) < 1 || json_integer_value(sz) > 10000)) {
                    rc = bad(e, "aggregation '%s': size must be 1..10000%s", name, "");
                    break;
                }
                if (sz)
                    x->size = (size_t)json_integer_value(sz);
            }
            if (x->type == SRCH_AGG_PERCENTILES) {
                json_t *ps = json_object_get(body, "percents");
                static const double def_p[] = {1, 5, 25, 50, 75, 95, 99};
                if (!ps) {
                    memcpy(x->percents, def_p, sizeof def_p);
                    x->npercents = 7;
                } else if (!json_is_array(ps) || json_array_size(ps) == 0 || json_array_size(ps) > SRCH_AGG_MAX_PERCENTS) {
                    rc = bad(e, "aggregation '%s': percents must be an array of 1..32 numbers%s", name, "");
                    break;
                } else {
                    size_t i;
                    json_t *p;
                    json_array_foreach(ps, i, p)
                    {
                        double v = json_number_value(p);
                        if (!json_is_number(p) || v < 0 || v > 100) {
                            rc = bad(e, "aggregation '%s': each percent must be from 0 to 100%s", name, "");
                            break;
                        }
                        x->percents[x->npercents++] = v;
                    }
                    if (rc)
                        break;
                }
            }
        }
        if (rc)
            break;
        if (kinds != 1) {
            rc = bad(e, "aggregation '%s' needs exactly one kind%s", name, "");
            break;
        }
        json_t *subs = json_object_get(def, "aggs");
        if (subs && (rc = parse_aggs(subs, &x->subs, &x->nsubs, depth + 1, e)))
            break;
        if (subs && (x->type == SRCH_AGG_STATS || x->type == SRCH_AGG_PERCENTILES || x->type == SRCH_AGG_CARDINALITY)) {
            rc = bad(e, "aggregation '%s': only date_histogram and terms take sub-aggregations%s", name, "");
            break;
        }
    }
    if (rc) {
        agg_free(a, k);
        return rc;
    }
    *out = a;
    *n = cnt;
    return SEG_OK;
}


static void put_num(seg_buf *b, double v)
{
    char s[40];
    if (!isfinite(v)) {
        api_put_s(b, "null");
        return;
    }
    if (v == floor(v) && fabs(v) < 9e15)
        snprintf(s, sizeof s, "%.0f", v);
    else
        snprintf(s, sizeof s, "%.17g", v);
    api_put_s(b, s);
}

static void write_results(seg_buf *b, const srch_agg *a, const srch_agg_result *r, size_t n);

static void write_one(seg_buf *b, const srch_agg *a, const srch_agg_result *r)
{
    char s[128];
    switch (a->type) {
    case SRCH_AGG_STATS:
        snprintf(s, sizeof s, "{\"count\":%llu,\"min\":", (unsigned long long)r->count);
        api_put_s(b, s);
        put_num(b, r->count ? r->min : NAN);
        api_put_s(b, ",\"max\":");
        put_num(b, r->count ? r->max : NAN);
        api_put_s(b, ",\"sum\":");
        put_num(b, r->sum);
        api_put_s(b, ",\"avg\":");
        put_num(b, r->count ? r->sum / (double)r->count : NAN);
        api_put_s(b, "}");
        return;
    case SRCH_AGG_PERCENTILES:
        api_put_s(b, "{\"values\":{");
        for (size_t i = 0; i < a->npercents; i++) {
            snprintf(s, sizeof s, "%s\"%g\":", i ? "," : "", a->percents[i]);
            api_put_s(b, s);
            put_num(b, r->pvalues[i]);
        }
        api_put_s(b, "}}");
        return;
    case SRCH_AGG_CARDINALITY:
        snprintf(s, sizeof s, "{\"value\":%llu}", (unsigned long long)r->cardinality);
        api_put_s(b, s);
        return;
    default:
        break;
    }
    api_put_s(b, "{\"buckets\":[");
    for (size_t i = 0; i < r->nbuckets; i++) {
        const srch_agg_bucket *k = &r->buckets[i];
        api_put_s(b, i ? ",{\"key\":" : "{\"key\":");
        if (a->type == SRCH_AGG_DATE_HISTOGRAM) {
            int64_t ms = k->key_time / 1000000 - (k->key_time % 1000000 < 0);
            char ts[40];
            seg_time_format(k->key_time, ts);
            snprintf(s, sizeof s, "%lld,\"key_as_string\":\"%s\"", (long long)ms, ts);
            api_put_s(b, s);
        } else if (k->key_is_str) {
            api_put_jstr(b, k->key_str, k->key_len);
        } else {
            put_num(b, k->key_num);
        }
        snprintf(s, sizeof s, ",\"count\":%llu", (unsigned long long)k->count);
        api_put_s(b, s);
        if (a->nsubs) {
            api_put_s(b, ",");
            write_results(b, a->subs, k->subs, a->nsubs);
        }
        api_put_s(b, "}");
    }
    api_put_s(b, "]}");
}

/* "NAME":{...},... without the enclosing braces */
static void write_results(seg_buf *b, const srch_agg *a, const srch_agg_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            api_put_s(b, ",");
        api_put_jstr(b, a[i].name, strlen(a[i].name));
        api_put_s(b, ":");
        write_one(b, &a[i], &r[i]);
    }
}

static int time_field(json_t *j, const char *k, int64_t *out, int *has, seg_err *e)
{
    json_t *v = json_object_get(j, k);
    *has = v && !json_is_null(v);
    if (!*has)
        return SEG_OK;
    char buf[64];
    if (json_is_string(v))
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
    else
        return bad(e, "\"%s\" must be a time (RFC 3339, epoch seconds or ms, now-15m)%s", k, "");
    return api_parse_time(k, buf, out, e);
}

int api_aggregate(srch_index *ix, seg_tok *tok, const char *body, size_t n, seg_buf *out, srch_stats *st,
                  seg_err *e)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_error_t je;
    json_t *j = json_loadb(body, n, 0, &je);
    if (!j && json_error_code(&je) == json_error_out_of_memory)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    if (!j || !json_is_object(j)) {
        json_decref(j);
        seg_err_set(e, SEG_EQUERY, NULL, "the body must be a JSON object: %s", j ? "not an object" : je.text);
        return SEG_EQUERY;
    }
    srch_request rq;
    memset(&rq, 0, sizeof rq);
    srch_query *q = NULL;
    srch_agg *aggs = NULL;
    size_t naggs = 0;
    srch_agg_result *res = NULL;
    uint64_t total = 0;
    int rc = SEG_OK;
    static const char *const known[] = {"q", "start", "end", "aggs", NULL};
    const char *unk = NULL;
    const char *kk;
    json_t *kv;
    json_object_foreach(j, kk, kv) {
        int hit = !strcmp(kk, "aggregations");
        for (const char *const *k = known; *k && !hit; k++)
            hit = !strcmp(*k, kk);
        if (!hit && !unk)
            unk = kk;
    }
    if (unk) {
        char m[400];
        api_unknown_msg("key", unk, known, m, sizeof m);
        rc = bad(e, "%s%s", m, "");
        goto out;
    }
    json_t *qs = json_object_get(j, "q");
    if (qs && !json_is_string(qs) && !json_is_null(qs)) {
        rc = bad(e, "\"q\" must be a string%s%s", "", "");
        goto out;
    }
    const char *qt = json_is_string(qs) ? json_string_value(qs) : "";
    if ((rc = srch_query_parse(qt, strlen(qt), tok, &q, e)) || (rc = time_field(j, "start", &rq.start, &rq.has_start, e)) ||
        (rc = time_field(j, "end", &rq.end, &rq.has_end, e)))
        goto out;
    json_t *ag = json_object_get(j, "aggs");
    if (!ag)
        ag = json_object_get(j, "aggregations");
    if (!ag) {
        rc = bad(e, "\"aggs\" is required%s%s", "", "");
        goto out;
    }
    if ((rc = parse_aggs(ag, &aggs, &naggs, 0, e)))
        goto out;
    rq.q = q;
    srch_stats local;
    if ((rc = srch_aggregate(ix, &rq, aggs, naggs, &res, &total, st ? st : &local, e)))
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char head[128];
    snprintf(head, sizeof head, "{\"took_ms\":%.3f,\"total\":%llu,\"aggs\":{",
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, (unsigned long long)total);
    api_put_s(out, head);
    write_results(out, aggs, res, naggs);
    api_put_s(out, "}");
    api_put_partial(out, st ? st : &local);
    api_put_s(out, "}");
    if (out->oom)
        rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
out:
    srch_agg_results_free(res, naggs);
    agg_free(aggs, naggs);
    srch_query_free(q);
    json_decref(j);
    return rc;
}
