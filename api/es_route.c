/*
 * es_route.c -- the Elasticsearch-compatible API's router, and its small
 * routes: the info answer, index setup (create, exists, get, mappings,
 * field capabilities), _cat, cluster health, refresh, and the template,
 * ILM and license routes that shippers call before they send events.
 *
 * Every answer here carries X-Elastic-Product: Elasticsearch (reply.es);
 * errors have ES's shape.  What the engine cannot do is an error that says
 * so (docs/elasticsearch.md lists them), never a silent success; setup
 * that has no meaning for logdex (shards, replicas, templates, ILM) is
 * acknowledged, as the issue of such a request to ES would be.
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <fnmatch.h>
#include <pthread.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Errors and helpers                                                   */
/* ------------------------------------------------------------------ */

static void fail_reply(reply *r, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_reply(reply *r, unsigned status, const char *type, const char *fmt, ...)
{
    es_err x = {0};
    va_list ap;
    va_start(ap, fmt);
    char reason[700];
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    es_fail(&x, status, type, "%s", reason);
    es_error_reply(r, &x);
}

typedef struct pchk {
    const char *const *allowed;
    const char *bad;
} pchk;

static enum MHD_Result param_cb(void *ud, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    pchk *p = ud;
    static const char *const common[] = {"pretty", "human", "error_trace", "filter_path", "source",
                                         "source_content_type", NULL};
    for (const char *const *a = common; *a; a++)
        if (!strcmp(*a, key))
            return MHD_YES;
    for (const char *const *a = p->allowed; a && *a; a++)
        if (!strcmp(*a, key))
            return MHD_YES;
    p->bad = key;
    return MHD_NO;
}

int es_check_params(struct MHD_Connection *c, const char *const *allowed, es_err *x)
{
    pchk p = {allowed, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_cb, &p);
    if (p.bad)
        return es_fail(x, 400, "illegal_argument_exception", "request contains unrecognized parameter: [%s]", p.bad);
    return 0;
}

int es_param_bool(struct MHD_Connection *c, const char *k, int dflt)
{
    const char *v = api_arg(c, k);
    if (!v)
        return dflt;
    return !*v || !strcmp(v, "true");
}

/* ------------------------------------------------------------------ */
/* Index expressions                                                    */
/* ------------------------------------------------------------------ */

static int has_name(char (*names)[72], size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return 1;
    return 0;
}

int es_view_open(const char *expr, int ignore_unavailable, es_view *v, es_err *x)
{
    memset(v, 0, sizeof *v);
    static char all[1024][72]; /* read only under the lock below */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    v->names = seg_calloc(1024, 72);
    if (!v->names)
        return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
    pthread_mutex_lock(&mu);
    size_t na = api_index_names(all, 1024);
    const char *p = expr && *expr ? expr : "_all";
    int rc = 0;
    while (*p && rc == 0) {
        size_t l = strcspn(p, ",");
        char item[256];
        if (l == 0 || l >= sizeof item) {
            rc = es_fail(x, 400, "invalid_index_name_exception", "invalid index expression [%s]", expr);
            break;
        }
        memcpy(item, p, l);
        item[l] = 0;
        p += l + (p[l] == ',');
        int neg = item[0] == '-' && v->n; /* -name excludes (after a first item) */
        const char *pat = neg ? item + 1 : item;
        if (!strcmp(pat, "_all"))
            pat = "*";
        if (strpbrk(pat, "*?")) {
            for (size_t i = 0; i < na; i++)
                if (!fnmatch(pat, all[i], 0)) {
                    if (neg) {
                        for (size_t k = 0; k < v->n; k++)
                            if (!strcmp(v->names[k], all[i]))
                                memmove(v->names[k], v->names[k + 1], (v->n-- - k - 1) * 72);
                    } else if (!has_name(v->names, v->n, all[i]) && v->n < 1024)
                        memcpy(v->names[v->n++], all[i], 72);
                }
        } else if (has_name(all, na, pat)) {
            if (neg) {
                for (size_t k = 0; k < v->n; k++)
                    if (!strcmp(v->names[k], pat))
                        memmove(v->names[k], v->names[k + 1], (v->n-- - k - 1) * 72);
            } else if (!has_name(v->names, v->n, pat) && v->n < 1024)
                snprintf(v->names[v->n++], 72, "%.71s", pat);
        } else if (!ignore_unavailable && !neg) {
            rc = es_fail(x, 404, "index_not_found_exception", "no such index [%s]", pat);
        }
    }
    pthread_mutex_unlock(&mu);
    if (rc) {
        es_view_close(v); /* a failed open leaves nothing to close */
        return rc;
    }
    if (v->n == 0)
        return 0;
    /* one view over every named index's snapshot */
    srch_index **parts = seg_calloc(v->n, sizeof *parts);
    if (!parts)
        return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
    size_t total = 0;
    for (size_t i = 0; i < v->n && rc == 0; i++) {
        seg_err e = {0};
        if (!(parts[i] = api_snapshot(v->names[i], &e)))
            rc = es_fail_seg(x, &e);
        else
            total += srch_index_nsegments(parts[i]);
    }
    if (rc == 0) {
        seg_reader **all_r = seg_malloc((total ? total : 1) * sizeof *all_r);
        v->rd = seg_malloc((total ? total : 1) * sizeof *v->rd);
        v->rk = seg_malloc((total ? total : 1) * sizeof *v->rk);
        if (!all_r || !v->rd || !v->rk)
            rc = es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        for (size_t i = 0; i < v->n && rc == 0; i++)
            for (size_t k = 0; k < srch_index_nsegments(parts[i]); k++) {
                all_r[v->nrd] = srch_index_segment(parts[i], k);
                v->rd[v->nrd] = all_r[v->nrd];
                v->rk[v->nrd++] = (uint32_t)i;
            }
        if (rc == 0) {
            seg_set *set = seg_set_new(all_r, v->nrd);
            seg_err e = {0};
            if (!set || srch_index_from_set(set, srch_index_pool(parts[0]), &v->ix, &e))
                rc = set ? es_fail_seg(x, &e) : es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
            seg_set_unref(set);
        }
        seg_free(all_r);
    }
    for (size_t i = 0; i < v->n; i++)
        srch_index_close(parts[i]);
    seg_free(parts);
    if (rc)
        es_view_close(v);
    return rc;
}

const char *es_view_index_of(const es_view *v, const seg_reader *r)
{
    for (size_t i = 0; i < v->nrd; i++)
        if (v->rd[i] == r)
            return v->names[v->rk[i]];
    return v->n ? v->names[0] : "";
}

void es_view_close(es_view *v)
{
    srch_index_close(v->ix);
    seg_free(v->names);
    seg_free(v->rd);
    seg_free(v->rk);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ */
/* Info, cluster, _cat                                                  */
/* ------------------------------------------------------------------ */

static void do_info(reply *r)
{
    api_put_s(&r->body, "{\"name\":\"logdex\",\"cluster_name\":\"logdex\",\"cluster_uuid\":\"bG9nZGV4LWNsdXN0ZXI\","
                        "\"version\":{\"number\":\"" ES_VERSION "\",\"build_flavor\":\"default\",\"build_type\":\"tar\","
                        "\"build_hash\":\"logdex\",\"build_date\":\"2023-11-04T10:04:57.184859352Z\","
                        "\"build_snapshot\":false,\"lucene_version\":\"9.8.0\","
                        "\"minimum_wire_compatibility_version\":\"7.17.0\","
                        "\"minimum_index_compatibility_version\":\"7.0.0\"},"
                        "\"tagline\":\"You Know, for Search\"}");
}

static void do_cluster_health(reply *r)
{
    char names[1024][72];
    size_t n = api_index_names(names, 1024);
    char b[600];
    snprintf(b, sizeof b,
             "{\"cluster_name\":\"logdex\",\"status\":\"green\",\"timed_out\":false,\"number_of_nodes\":1,"
             "\"number_of_data_nodes\":1,\"active_primary_shards\":%zu,\"active_shards\":%zu,"
             "\"relocating_shards\":0,\"initializing_shards\":0,\"unassigned_shards\":0,"
             "\"delayed_unassigned_shards\":0,\"number_of_pending_tasks\":0,\"number_of_in_flight_fetch\":0,"
             "\"task_max_waiting_in_queue_millis\":0,\"active_shards_percent_as_number\":100.0}",
             n, n);
    api_put_s(&r->body, b);
}

static void human_bytes(uint64_t v, int raw, char *out, size_t n)
{
    if (raw) {
        snprintf(out, n, "%llu", (unsigned long long)v);
        return;
    }
    const char *u[] = {"b", "kb", "mb", "gb", "tb"};
    double d = (double)v;
    int k = 0;
    while (d >= 1024 && k < 4) {
        d /= 1024;
        k++;
    }
    if (k == 0)
        snprintf(out, n, "%llub", (unsigned long long)v);
    else
        snprintf(out, n, "%.1f%s", d, u[k]);
}

/* One _cat row: its columns' names and values. */
#define CAT_COLS 12
typedef struct cat_row {
    const char *col[CAT_COLS];
    char val[CAT_COLS][96];
    int n;
} cat_row;

static void cat_set(cat_row *w, const char *col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat_set(cat_row *w, const char *col, const char *fmt, ...)
{
    if (w->n == CAT_COLS)
        return;
    w->col[w->n] = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->val[w->n], sizeof w->val[w->n], fmt, ap);
    va_end(ap);
    w->n++;
}

/* Writes rows as _cat does: JSON objects with format=json, else a text
 * table (with a header line for v); h=a,b picks columns. */
static int cat_answer(struct MHD_Connection *c, reply *r, cat_row *rows, size_t n, es_err *x)
{
    const char *fmt = api_arg(c, "format"), *h = api_arg(c, "h");
    int json = fmt && !strcmp(fmt, "json");
    if (fmt && !json && strcmp(fmt, "txt") && strcmp(fmt, "text"))
        return es_fail(x, 400, "illegal_argument_exception", "format [%s] is not supported: use json or txt", fmt);
    int pick[CAT_COLS], np = 0;
    cat_row proto = n ? rows[0] : (cat_row){0};
    if (h && *h) {
        for (const char *p = h; *p;) {
            size_t l = strcspn(p, ",");
            int found = -1;
            for (int k = 0; k < proto.n || (n == 0 && k < 0); k++)
                if (strlen(proto.col[k]) == l && !memcmp(proto.col[k], p, l))
                    found = k;
            if (found < 0 && n)
                return es_fail(x, 400, "illegal_argument_exception", "unknown column [%.*s] in h", (int)l, p);
            if (found >= 0 && np < CAT_COLS)
                pick[np++] = found;
            p += l + (p[l] == ',');
        }
    } else {
        for (int k = 0; k < proto.n; k++)
            pick[np++] = k;
    }
    if (json) {
        api_put_s(&r->body, "[");
        for (size_t i = 0; i < n; i++) {
            api_put_s(&r->body, i ? ",{" : "{");
            for (int k = 0; k < np; k++) {
                api_put_s(&r->body, k ? "," : "");
                api_put_jstr(&r->body, rows[i].col[pick[k]], strlen(rows[i].col[pick[k]]));
                api_put_s(&r->body, ":");
                api_put_jstr(&r->body, rows[i].val[pick[k]], strlen(rows[i].val[pick[k]]));
            }
            api_put_s(&r->body, "}");
        }
        api_put_s(&r->body, "]");
        return 0;
    }
    r->ctype = "text/plain; charset=UTF-8";
    int width[CAT_COLS] = {0};
    int header = es_param_bool(c, "v", 0);
    for (int k = 0; k < np; k++) {
        width[k] = header ? (int)strlen(proto.col[pick[k]]) : 0;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(rows[i].val[pick[k]]) > width[k])
                width[k] = (int)strlen(rows[i].val[pick[k]]);
    }
    char line[CAT_COLS * 100];
    for (size_t i = header ? 0 : 1; i <= n; i++) {
        size_t o = 0;
        for (int k = 0; k < np; k++)
            o += (size_t)snprintf(line + o, sizeof line - o, "%s%-*s", k ? " " : "", width[k],
                                  i == 0 ? proto.col[pick[k]] : rows[i - 1].val[pick[k]]);
        while (o && line[o - 1] == ' ')
            o--;
        line[o++] = '\n';
        seg_buf_put(&r->body, line, o);
    }
    return 0;
}

static void do_cat_indices(struct MHD_Connection *c, const char *expr, reply *r)
{
    static const char *const ok[] = {"format", "h", "v", "bytes", "s", "health", "expand_wildcards", "local",
                                     "master_timeout", "pri", "include_unloaded_segments", "help", NULL};
    es_err x = {0};
    if (es_check_params(c, ok, &x))
        return es_error_reply(r, &x);
    const char *bytes = api_arg(c, "bytes");
    char names[1024][72];
    size_t n = api_index_names(names, 1024);
    cat_row *rows = seg_calloc(n ? n : 1, sizeof *rows);
    if (!rows)
        return fail_reply(r, 503, "es_rejected_execution_exception", "out of memory");
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (expr && *expr && fnmatch(expr, names[i], 0) && !strstr(expr, ","))
            continue;
        seg_err e = {0};
        srch_index *ix = api_snapshot(names[i], &e);
        if (!ix)
            continue;
        cat_row *w = &rows[nr++];
        char sz[32];
        human_bytes(srch_index_bytes(ix), bytes && !strcmp(bytes, "b"), sz, sizeof sz);
        cat_set(w, "health", "green");
        cat_set(w, "status", "open");
        cat_set(w, "index", "%s", names[i]);
        cat_set(w, "uuid", "%s", names[i]);
        cat_set(w, "pri", "1");
        cat_set(w, "rep", "0");
        cat_set(w, "docs.count", "%llu", (unsigned long long)srch_index_events(ix));
        cat_set(w, "docs.deleted", "0");
        cat_set(w, "store.size", "%s", sz);
        cat_set(w, "pri.store.size", "%s", sz);
        cat_set(w, "dataset.size", "%s", sz);
        srch_index_close(ix);
    }
    if (cat_answer(c, r, rows, nr, &x))
        es_error_reply(r, &x);
    seg_free(rows);
}

static void do_cat_count(struct MHD_Connection *c, const char *expr, reply *r)
{
    static const char *const ok[] = {"format", "h", "v", "help", "s", NULL};
    es_err x = {0};
    es_view v;
    if (es_check_params(c, ok, &x) || es_view_open(expr, 0, &v, &x))
        return es_error_reply(r, &x);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    cat_row w = {0};
    cat_set(&w, "epoch", "%lld", (long long)now);
    cat_set(&w, "timestamp", "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    cat_set(&w, "count", "%llu", (unsigned long long)(v.ix ? srch_index_events(v.ix) : 0));
    es_view_close(&v);
    if (cat_answer(c, r, &w, 1, &x))
        es_error_reply(r, &x);
}

static void do_cat_health(struct MHD_Connection *c, reply *r)
{
    static const char *const ok[] = {"format", "h", "v", "ts", "time", "local", "master_timeout", "help", NULL};
    es_err x = {0};
    if (es_check_params(c, ok, &x))
        return es_error_reply(r, &x);
    char names[1024][72];
    size_t n = api_index_names(names, 1024);
    cat_row w = {0};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    cat_set(&w, "epoch", "%lld", (long long)now);
    cat_set(&w, "timestamp", "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    cat_set(&w, "cluster", "logdex");
    cat_set(&w, "status", "green");
    cat_set(&w, "node.total", "1");
    cat_set(&w, "node.data", "1");
    cat_set(&w, "shards", "%zu", n);
    cat_set(&w, "pri", "%zu", n);
    cat_set(&w, "relo", "0");
    cat_set(&w, "init", "0");
    cat_set(&w, "unassign", "0");
    cat_set(&w, "active_shards_percent", "100.0%%");
    if (cat_answer(c, r, &w, 1, &x))
        es_error_reply(r, &x);
}

/* ------------------------------------------------------------------ */
/* Mappings and field capabilities                                      */
/* ------------------------------------------------------------------ */

typedef struct fields_acc {
    json_t *props;          /* mapping properties (nested objects) */
    json_t *caps;           /* _field_caps fields */
} fields_acc;

static const char *es_type_of(const char *name, unsigned flags)
{
    if (es_is_time_field(name))
        return "date";
    if (flags & SEG_F_STRING)
        return "text";
    if (flags & SEG_F_REAL)
        return "float";
    if (flags & SEG_F_INT)
        return "long";
    if (flags & SEG_F_BOOL)
        return "boolean";
    return "object";
}

static void put_cap(json_t *caps, const char *name, const char *type, int aggregatable)
{
    json_t *t = json_object();
    json_object_set_new(t, "type", json_string(type));
    json_object_set_new(t, "metadata_field", json_false());
    json_object_set_new(t, "searchable", json_true());
    json_object_set_new(t, "aggregatable", aggregatable ? json_true() : json_false());
    json_t *f = json_object_get(caps, name);
    if (!f) {
        f = json_object();
        json_object_set_new(caps, name, f);
    }
    json_object_set_new(f, type, t);
}

static void field_acc_cb(void *ud, const char *name, size_t len, unsigned flags, uint64_t docs)
{
    (void)docs;
    fields_acc *a = ud;
    char path[SEG_FIELD_MAX + 1];
    if (len > SEG_FIELD_MAX || (len == 3 && !memcmp(name, "_id", 3)))
        return;
    memcpy(path, name, len);
    path[len] = 0;
    const char *type = es_type_of(path, flags);
    if (a->caps) {
        put_cap(a->caps, path, type, strcmp(type, "text") != 0);
        if (!strcmp(type, "text")) {
            char kw[SEG_FIELD_MAX + 16];
            snprintf(kw, sizeof kw, "%s.keyword", path);
            put_cap(a->caps, kw, "keyword", 1);
        }
    }
    if (!a->props)
        return;
    /* nested properties: a.b.c -> a.properties.b.properties.c */
    json_t *cur = a->props;
    char *seg = path;
    for (;;) {
        char *dot = strchr(seg, '.');
        if (dot)
            *dot = 0;
        json_t *node = json_object_get(cur, seg);
        if (!dot) {
            if (node && json_object_get(node, "properties"))
                break; /* an object elsewhere: it stays one */
            json_t *m = json_object();
            json_object_set_new(m, "type", json_string(type));
            if (!strcmp(type, "text")) {
                json_t *kw = json_pack("{s:{s:s,s:i}}", "keyword", "type", "keyword", "ignore_above", 256);
                json_object_set_new(m, "fields", kw);
            }
            json_object_set_new(cur, seg, m);
            break;
        }
        if (!node || !json_object_get(node, "properties")) {
            node = json_object();
            json_object_set_new(node, "properties", json_object());
            json_object_set_new(cur, seg, node);
        }
        cur = json_object_get(node, "properties");
        seg = dot + 1;
    }
}

/* The mapping properties of an index's fields (NULL: no snapshot). */
static json_t *index_properties(const char *name)
{
    seg_err e = {0};
    srch_index *ix = api_snapshot(name, &e);
    if (!ix)
        return NULL;
    fields_acc a = {json_object(), NULL};
    srch_index_fields(ix, field_acc_cb, &a);
    srch_index_close(ix);
    return a.props;
}

static void do_mapping(struct MHD_Connection *c, const char *expr, reply *r)
{
    static const char *const ok[] = {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "local",
                                     "master_timeout", "include_type_name", NULL};
    es_err x = {0};
    es_view v;
    if (es_check_params(c, ok, &x) || es_view_open(expr, es_param_bool(c, "ignore_unavailable", 0), &v, &x))
        return es_error_reply(r, &x);
    json_t *out = json_object();
    for (size_t i = 0; i < v.n; i++) {
        json_t *props = index_properties(v.names[i]);
        if (props)
            json_object_set_new(out, v.names[i], json_pack("{s:{s:o}}", "mappings", "properties", props));
    }
    es_put_json(&r->body, out);
    json_decref(out);
    es_view_close(&v);
}

static void do_field_caps(struct MHD_Connection *c, const char *expr, reply *r)
{
    static const char *const ok[] = {"fields", "ignore_unavailable", "allow_no_indices", "expand_wildcards",
                                     "include_unmapped", "filters", "types", "include_empty_fields", NULL};
    es_err x = {0};
    es_view v;
    if (es_check_params(c, ok, &x) || es_view_open(expr, es_param_bool(c, "ignore_unavailable", 0), &v, &x))
        return es_error_reply(r, &x);
    const char *want = api_arg(c, "fields");
    fields_acc a = {NULL, json_object()};
    json_t *idx = json_array();
    for (size_t i = 0; i < v.n; i++) {
        seg_err e = {0};
        srch_index *ix = api_snapshot(v.names[i], &e);
        if (!ix)
            continue;
        json_array_append_new(idx, json_string(v.names[i]));
        srch_index_fields(ix, field_acc_cb, &a);
        srch_index_close(ix);
    }
    static const char *const meta[] = {"_id", "_index", "_source"};
    for (int k = 0; k < 3; k++) {
        json_t *t = json_pack("{s:{s:s,s:b,s:b,s:b}}", k == 0 ? "_id" : k == 1 ? "_index" : "_source", "type",
                              k == 0 ? "_id" : k == 1 ? "_index" : "_source", "metadata_field", 1, "searchable", k < 2,
                              "aggregatable", k == 1);
        json_object_set_new(a.caps, meta[k], t);
    }
    if (want && *want && strcmp(want, "*")) {
        /* only the fields asked for (a comma list of names and patterns) */
        json_t *keep = json_object();
        const char *key;
        json_t *val;
        json_object_foreach(a.caps, key, val)
        {
            for (const char *p = want; *p;) {
                size_t l = strcspn(p, ",");
                char pat[512];
                snprintf(pat, sizeof pat, "%.*s", (int)(l < 511 ? l : 511), p);
                if (!fnmatch(pat, key, 0)) {
                    json_object_set(keep, key, val);
                    break;
                }
                p += l + (p[l] == ',');
            }
        }
        json_decref(a.caps);
        a.caps = keep;
    }
    json_t *out = json_pack("{s:o,s:o}", "indices", idx, "fields", a.caps);
    es_put_json(&r->body, out);
    json_decref(out);
    es_view_close(&v);
}

/* ------------------------------------------------------------------ */
/* Index setup                                                          */
/* ------------------------------------------------------------------ */

static void do_index_put(struct MHD_Connection *c, const char *index, const seg_buf *body, reply *r)
{
    static const char *const ok[] = {"wait_for_active_shards", "timeout", "master_timeout", "include_type_name", NULL};
    es_err x = {0};
    json_t *j = NULL;
    if (es_check_params(c, ok, &x) || es_body_json(body, &j, &x))
        return es_error_reply(r, &x);
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "settings") && strcmp(key, "mappings") && strcmp(key, "aliases")) {
            es_fail(&x, 400, "parsing_exception", "unknown key [%s] for create index", key);
            break;
        }
    }
    json_decref(j);
    if (x.status)
        return es_error_reply(r, &x);
    if (!idx_name_valid(index))
        return fail_reply(r, 400, "invalid_index_name_exception",
                          "Invalid index name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}", index);
    if (api_index_exists(index))
        return fail_reply(r, 400, "resource_already_exists_exception", "index [%s] already exists", index);
    seg_err e = {0};
    if (api_index_create(index, &e)) {
        es_fail_seg(&x, &e);
        return es_error_reply(r, &x);
    }
    api_put_s(&r->body, "{\"acknowledged\":true,\"shards_acknowledged\":true,\"index\":");
    api_put_jstr(&r->body, index, strlen(index));
    api_put_s(&r->body, "}");
}

static void do_index_get(struct MHD_Connection *c, const char *expr, reply *r)
{
    es_err x = {0};
    es_view v;
    if (es_view_open(expr, es_param_bool(c, "ignore_unavailable", 0), &v, &x))
        return es_error_reply(r, &x);
    json_t *out = json_object();
    for (size_t i = 0; i < v.n; i++) {
        json_t *props = index_properties(v.names[i]);
        if (!props)
            continue;
        json_object_set_new(
            out, v.names[i],
            json_pack("{s:{},s:{s:o},s:{s:{s:s,s:s,s:s,s:s}}}", "aliases", "mappings", "properties", props,
                      "settings", "index", "number_of_shards", "1", "number_of_replicas", "0", "provided_name",
                      v.names[i], "uuid", v.names[i]));
    }
    es_put_json(&r->body, out);
    json_decref(out);
    es_view_close(&v);
}

static void acknowledged(reply *r) { api_put_s(&r->body, "{\"acknowledged\":true}"); }

/* ------------------------------------------------------------------ */
/* Templates and ILM policies: kept as given, in memory, not applied     */
/* ------------------------------------------------------------------ */

/* Shippers put their index templates and ILM policies at each start and
 * read them back to decide whether to: they are kept (until the server
 * stops) and answered as ES does, and change nothing in how events are
 * indexed (docs/elasticsearch.md). */
#define MAX_KEPT 1024
static struct {
    pthread_mutex_t mu;
    struct {
        char kind[24];              /* "_index_template", "_template", ... */
        char name[256];
        json_t *body;
    } e[MAX_KEPT];
    size_t n;
} kept = {PTHREAD_MUTEX_INITIALIZER, {{{0}, {0}, NULL}}, 0};

static void kept_route(struct MHD_Connection *c, const char *kind, const char *name, const char *method,
                       const seg_buf *body, reply *r)
{
    (void)c;
    es_err x = {0};
    if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
        json_t *j = NULL;
        if (!name)
            return fail_reply(r, 405, "method_not_allowed_exception", "PUT needs a name");
        if (es_body_json(body, &j, &x))
            return es_error_reply(r, &x);
        pthread_mutex_lock(&kept.mu);
        size_t i;
        for (i = 0; i < kept.n; i++)
            if (!strcmp(kept.e[i].kind, kind) && !strcmp(kept.e[i].name, name))
                break;
        if (i == kept.n && kept.n < MAX_KEPT) {
            snprintf(kept.e[i].kind, sizeof kept.e[i].kind, "%s", kind);
            snprintf(kept.e[i].name, sizeof kept.e[i].name, "%s", name);
            kept.n++;
        }
        if (j && json_is_string(json_object_get(j, "index_patterns"))) /* ES keeps a list */
            json_object_set_new(j, "index_patterns", json_pack("[O]", json_object_get(j, "index_patterns")));
        if (i < kept.n) {
            json_decref(kept.e[i].body);
            kept.e[i].body = j ? j : json_object();
        } else
            json_decref(j);
        pthread_mutex_unlock(&kept.mu);
        return acknowledged(r);
    }
    int del = !strcmp(method, "DELETE"), head = !strcmp(method, "HEAD");
    json_t *out = !strcmp(kind, "_template") || !strcmp(kind, "_ilm") ? json_object() : json_array();
    int found = 0;
    pthread_mutex_lock(&kept.mu);
    for (size_t i = 0; i < kept.n; i++) {
        if (strcmp(kept.e[i].kind, kind) || (name && strcmp(kept.e[i].name, name) &&
                                             fnmatch(name, kept.e[i].name, 0)))
            continue;
        found++;
        if (del) {
            json_decref(kept.e[i].body);
            kept.e[i] = kept.e[--kept.n];
            i--;
            continue;
        }
        json_t *b = kept.e[i].body;
        const char *nm = kept.e[i].name;
        if (!strcmp(kind, "_template"))
            json_object_set(out, nm, b);
        else if (!strcmp(kind, "_ilm"))
            json_object_set_new(out, nm, json_pack("{s:i,s:s,s:O}", "version", 1, "modified_date",
                                                   "2024-01-01T00:00:00.000Z", "policy",
                                                   json_object_get(b, "policy") ? json_object_get(b, "policy") : b));
        else if (!strcmp(kind, "_index_template"))
            json_array_append_new(out, json_pack("{s:s,s:O}", "name", nm, "index_template", b));
        else
            json_array_append_new(out, json_pack("{s:s,s:O}", "name", nm, "component_template", b));
    }
    pthread_mutex_unlock(&kept.mu);
    if (!found && (name || del)) {
        json_decref(out);
        if (head) {
            r->status = 404;
            return;
        }
        return fail_reply(r, 404, "resource_not_found_exception", "%s [%s] not found",
                          !strcmp(kind, "_ilm") ? "Lifecycle policy" : "index template", name ? name : "");
    }
    if (del || head) {
        json_decref(out);
        return del ? acknowledged(r) : (void)0;
    }
    if (!strcmp(kind, "_index_template"))
        out = json_pack("{s:o}", "index_templates", out);
    else if (!strcmp(kind, "_component_template"))
        out = json_pack("{s:o}", "component_templates", out);
    es_put_json(&r->body, out);
    json_decref(out);
}

/* Data streams: a data stream is an index of that name (logdex's indexes
 * are already append-only and time-ordered). */
static void data_stream_route(const char *name, const char *method, reply *r)
{
    if (!strcmp(method, "PUT")) {
        if (!name || !idx_name_valid(name))
            return fail_reply(r, 400, "invalid_index_name_exception",
                              "Invalid data stream name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}", name ? name : "");
        if (api_index_exists(name))
            return fail_reply(r, 400, "resource_already_exists_exception", "data_stream [%s] already exists", name);
        seg_err e = {0};
        if (api_index_create(name, &e)) {
            es_err x = {0};
            es_fail_seg(&x, &e);
            return es_error_reply(r, &x);
        }
        return acknowledged(r);
    }
    if (!strcmp(method, "DELETE"))
        return fail_reply(r, 400, "illegal_argument_exception",
                          "deleting data stream [%s] is not supported yet (logdex drops old data by --retention)",
                          name ? name : "");
    char names[1024][72];
    size_t n = api_index_names(names, 1024);
    api_put_s(&r->body, "{\"data_streams\":[");
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (name && fnmatch(name, names[i], 0))
            continue;
        api_put_s(&r->body, k++ ? ",{\"name\":" : "{\"name\":");
        api_put_jstr(&r->body, names[i], strlen(names[i]));
        api_put_s(&r->body, ",\"timestamp_field\":{\"name\":\"@timestamp\"},\"indices\":[{\"index_name\":");
        api_put_jstr(&r->body, names[i], strlen(names[i]));
        api_put_s(&r->body, "}],\"generation\":1,\"status\":\"GREEN\",\"hidden\":false,\"system\":false}");
    }
    api_put_s(&r->body, "]}");
    if (name && !k && !strpbrk(name, "*?")) {
        r->body.n = 0;
        fail_reply(r, 404, "index_not_found_exception", "no such index [%s]", name);
    }
}

/* ------------------------------------------------------------------ */
/* The router                                                           */
/* ------------------------------------------------------------------ */

#define MAX_PARTS 6

/* Splits a path into its parts ("/a/b" -> "a", "b"); -1 when too deep. */
static int split(const char *url, char parts[MAX_PARTS][512])
{
    int n = 0;
    const char *p = url;
    while (*p == '/')
        p++;
    while (*p) {
        size_t l = strcspn(p, "/");
        if (n == MAX_PARTS || l >= 512)
            return -1;
        memcpy(parts[n], p, l);
        parts[n++][l] = 0;
        p += l;
        while (*p == '/')
            p++;
    }
    return n;
}

int es_is_bulk(const char *method, const char *url)
{
    size_t n = strlen(url);
    return (!strcmp(method, "POST") || !strcmp(method, "PUT")) &&
           ((n >= 6 && !strcmp(url + n - 6, "/_bulk")) || (n >= 7 && !strcmp(url + n - 7, "/_bulk/")));
}

int es_is_write(const char *method, const char *url)
{
    int post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
    if (!post && !put && strcmp(method, "DELETE"))
        return 0;
    if (strstr(url, "/_search") || strstr(url, "/_count") || strstr(url, "/_msearch") || strstr(url, "/_field_caps") ||
        strstr(url, "/_refresh") || strstr(url, "/_mapping"))
        return 0;
    return 1; /* _bulk, _doc, _create, index creation, templates, ILM */
}

static int method_is(const char *m, const char *a, const char *b)
{
    return !strcmp(m, a) || (b && !strcmp(m, b));
}

static void wrong_method(reply *r, const char *url, const char *method, const char *allowed)
{
    fail_reply(r, 405, "method_not_allowed_exception", "Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]",
               url, method, allowed);
}

void es_route(struct MHD_Connection *c, const char *method, const char *url, const seg_buf *raw, void *req,
              reply *r)
{
    r->es = 1;
    /* request bodies: gzip decoded here for every ES route */
    seg_buf plain = {0};
    const seg_buf *body = raw;
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip"))) {
        int g = api_gunzip(raw->p, raw->n, api_max_body(), &plain);
        if (g) {
            seg_buf_free(&plain);
            return fail_reply(r, g > 0 ? 413 : 400, g > 0 ? "content_too_long_exception" : "parse_exception",
                              "%s", g > 0 ? "the decoded body is larger than --max-body" : "the gzip body cannot be decoded");
        }
        body = &plain;
    } else if (enc && strcasecmp(enc, "identity")) {
        return fail_reply(r, 415, "illegal_argument_exception", "Content-Encoding [%s] is not supported: use gzip", enc);
    }
    char parts[MAX_PARTS][512];
    int n = split(url, parts);
    const char *m = method;
    int get = method_is(m, "GET", "HEAD"), post = !strcmp(m, "POST"), put = !strcmp(m, "PUT"),
        del = !strcmp(m, "DELETE"), head = !strcmp(m, "HEAD");
    if (n < 0) {
        fail_reply(r, 400, "illegal_argument_exception", "no handler found for uri [%s] and method [%s]", url, m);
    } else if (n == 0) {
        if (get)
            do_info(r);
        else
            wrong_method(r, url, m, "GET, HEAD");
    } else if (parts[0][0] == '_') {
        /* routes without an index */
        const char *a = parts[0];
        if (!strcmp(a, "_bulk") && n == 1) {
            if (post || put)
                es_bulk_route(c, NULL, body, req, r);
            else
                wrong_method(r, url, m, "POST, PUT");
        } else if (!strcmp(a, "_search") && n == 1) {
            es_search_route(c, m, NULL, body, r);
        } else if (!strcmp(a, "_search") && n >= 2 && !strcmp(parts[1], "scroll")) {
            es_scroll_route(c, m, n == 3 ? parts[2] : NULL, body, r);
        } else if (!strcmp(a, "_count") && n == 1) {
            es_count_route(c, NULL, body, r);
        } else if (!strcmp(a, "_msearch") && n == 1) {
            es_msearch_route(c, NULL, body, r);
        } else if (!strcmp(a, "_mapping") && n == 1 && get) {
            do_mapping(c, NULL, r);
        } else if (!strcmp(a, "_field_caps") && n == 1) {
            do_field_caps(c, NULL, r);
        } else if (!strcmp(a, "_refresh") && n == 1) {
            api_put_s(&r->body, "{\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0}}");
        } else if (!strcmp(a, "_cat") && n >= 2 && !strcmp(parts[1], "indices") && get) {
            do_cat_indices(c, n >= 3 ? parts[2] : NULL, r);
        } else if (!strcmp(a, "_cat") && n == 2 && !strcmp(parts[1], "health") && get) {
            do_cat_health(c, r);
        } else if (!strcmp(a, "_cluster") && n >= 2 && !strcmp(parts[1], "health") && get) {
            do_cluster_health(r);
        } else if (!strcmp(a, "_cluster") && n == 2 && !strcmp(parts[1], "settings")) {
            if (get)
                api_put_s(&r->body, "{\"persistent\":{},\"transient\":{}}");
            else
                acknowledged(r);
        } else if ((!strcmp(a, "_index_template") || !strcmp(a, "_template") || !strcmp(a, "_component_template")) &&
                   n <= 2) {
            kept_route(c, a, n == 2 ? parts[1] : NULL, m, body, r);
        } else if (!strcmp(a, "_ilm") && n >= 2 && n <= 3 && !strcmp(parts[1], "policy")) {
            kept_route(c, "_ilm", n == 3 ? parts[2] : NULL, m, body, r);
        } else if (!strcmp(a, "_data_stream") && n <= 2) {
            data_stream_route(n == 2 ? parts[1] : NULL, m, r);
        } else if (!strcmp(a, "_cat") && n >= 2 && !strcmp(parts[1], "count") && get) {
            do_cat_count(c, n >= 3 ? parts[2] : NULL, r);
        } else if (!strcmp(a, "_license") && n == 1 && get) {
            api_put_s(&r->body, "{\"license\":{\"status\":\"active\",\"uid\":\"logdex\",\"type\":\"basic\","
                                "\"issue_date\":\"2024-01-01T00:00:00.000Z\",\"issue_date_in_millis\":1704067200000,"
                                "\"max_nodes\":1000,\"max_resource_units\":null,\"issued_to\":\"logdex\","
                                "\"issuer\":\"logdex\",\"start_date_in_millis\":-1}}");
        } else if (!strcmp(a, "_xpack") && n == 1 && get) {
            api_put_s(&r->body, "{\"build\":{\"hash\":\"logdex\",\"date\":\"2023-11-04T10:04:57.184859352Z\"},"
                                "\"license\":{\"uid\":\"logdex\",\"type\":\"basic\",\"mode\":\"basic\",\"status\":\"active\"},"
                                "\"features\":{}}");
        } else {
            fail_reply(r, 400, "illegal_argument_exception", "no handler found for uri [%s] and method [%s]", url, m);
        }
    } else {
        /* routes under an index expression */
        const char *ix = parts[0];
        const char *a = n >= 2 ? parts[1] : "";
        if (n == 1) {
            if (head) {
                if (!api_index_exists(ix))
                    r->status = 404;
            } else if (get)
                do_index_get(c, ix, r);
            else if (put)
                do_index_put(c, ix, body, r);
            else if (del)
                fail_reply(r, 400, "illegal_argument_exception",
                           "deleting index [%s] is not supported yet (logdex drops old data by --retention)", ix);
            else
                wrong_method(r, url, m, "GET, HEAD, PUT");
        } else if (!strcmp(a, "_bulk") && n == 2) {
            if (post || put)
                es_bulk_route(c, ix, body, req, r);
            else
                wrong_method(r, url, m, "POST, PUT");
        } else if (!strcmp(a, "_search") && n == 2) {
            es_search_route(c, m, ix, body, r);
        } else if (!strcmp(a, "_count") && n == 2) {
            es_count_route(c, ix, body, r);
        } else if (!strcmp(a, "_msearch") && n == 2) {
            es_msearch_route(c, ix, body, r);
        } else if (!strcmp(a, "_doc") && n == 2) {
            if (post)
                es_doc_route(c, ix, NULL, 0, body, r);
            else
                wrong_method(r, url, m, "POST");
        } else if (!strcmp(a, "_doc") && n == 3) {
            if (post || put)
                es_doc_route(c, ix, parts[2], 0, body, r);
            else if (get)
                es_get_doc_route(m, ix, parts[2], r);
            else
                wrong_method(r, url, m, "GET, HEAD, PUT, POST");
        } else if (!strcmp(a, "_create") && n == 3) {
            if (post || put)
                es_doc_route(c, ix, parts[2], 1, body, r);
            else
                wrong_method(r, url, m, "PUT, POST");
        } else if (!strcmp(a, "_mapping") && n == 2) {
            if (get)
                do_mapping(c, ix, r);
            else if (put || post)
                acknowledged(r); /* fields are typed as they arrive (docs/elasticsearch.md) */
            else
                wrong_method(r, url, m, "GET, PUT");
        } else if (!strcmp(a, "_field_caps") && n == 2) {
            do_field_caps(c, ix, r);
        } else if (!strcmp(a, "_reload_search_analyzers") && n == 2 && (post || get)) {
            /* one tokenizer, nothing to reload */
            api_put_s(&r->body, "{\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0},\"reload_details\":[{\"index\":");
            api_put_jstr(&r->body, ix, strlen(ix));
            api_put_s(&r->body, ",\"reloaded_analyzers\":[],\"reloaded_node_ids\":[]}]}");
        } else if (!strcmp(a, "_refresh") && n == 2) {
            es_err x = {0};
            es_view v;
            if (es_view_open(ix, 0, &v, &x))
                es_error_reply(r, &x);
            else {
                char b[120];
                snprintf(b, sizeof b, "{\"_shards\":{\"total\":%zu,\"successful\":%zu,\"failed\":0}}", v.n, v.n);
                api_put_s(&r->body, b);
                es_view_close(&v);
            }
        } else {
            fail_reply(r, 400, "illegal_argument_exception", "no handler found for uri [%s] and method [%s]", url, m);
        }
    }
    seg_buf_free(&plain);
}
