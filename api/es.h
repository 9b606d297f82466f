/*
 * es.h -- internal to the Elasticsearch-compatible routes (api/es_*.c).
 *
 * These files only translate: an ES request becomes the native engine's
 * calls (idx_ingest through api_ingest, srch_search, srch_aggregate) and
 * their results become ES's answer shapes.  The DSL becomes a srch_query
 * tree built with the searcher's own constructors (srch_q_*), never a
 * second engine.  docs/elasticsearch.md describes what is supported and
 * every known difference.
 *
 *   es_route.c   the router, info, setup routes, mappings, _cat, errors
 *   es_bulk.c    _bulk, _doc, _create
 *   es_dsl.c     the query DSL (and query_string) -> srch_query + time range
 *   es_search.c  _search, _count, _msearch, scroll, hits and _source
 *   es_aggs.c    aggregations -> srch_agg, results -> ES's shapes
 */
#ifndef LOGDEX_ES_H
#define LOGDEX_ES_H

#include "api/api_int.h"

#include <jansson.h>

/* The version logdex reports as (clients check the major version). */
#define ES_VERSION "8.11.0"
#define ES_MAX_WINDOW 10000          /* from + size, as index.max_result_window */

/* An error in ES's shape: status, type ("parsing_exception", ...) and
 * reason. */
typedef struct es_err {
    unsigned status;
    char type[64];
    char reason[700];
} es_err;

/* Sets x; returns -1 (for `return es_fail(...)`). */
int es_fail(es_err *x, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an engine error: a missing index 404 index_not_found_exception, a
 * bad query 400, overload 429/503, else 500. */
int es_fail_seg(es_err *x, const seg_err *e);
/* Writes {"error":{"root_cause":[..],"type","reason"},"status"} to r. */
void es_error_reply(reply *r, const es_err *x);
/* Appends x as {"type","reason"} (the error object of an item). */
void es_put_error_obj(seg_buf *b, const es_err *x);

/* Indexes a search route names: a comma list of names and * patterns
 * ("_all" and "*": every index), resolved against the open indexes, and
 * their snapshots as one searchable view. */
typedef struct es_view {
    srch_index *ix;                 /* NULL when no index matched */
    size_t n;
    char (*names)[72];
    const seg_reader **rd;          /* which index each segment is of */
    uint32_t *rk;
    size_t nrd;
} es_view;
/* ignore_unavailable: a missing concrete name is left out instead of a 404.
 * On failure (-1, x set) v holds nothing: there is nothing to close. */
int es_view_open(const char *expr, int ignore_unavailable, es_view *v, es_err *x);
const char *es_view_index_of(const es_view *v, const seg_reader *r);
void es_view_close(es_view *v);

/* ---- the query DSL (es_dsl.c) ---- */

/* The time field names: a range on one of them bounds event time. */
int es_is_time_field(const char *f);

typedef struct es_query {
    srch_query *q;
    int has_start, has_end;
    int64_t start, end;             /* ns; start inclusive, end exclusive */
    int empty;                      /* the time bounds exclude everything */
} es_query;
/* Translates a DSL query object (NULL: match_all).  Ranges on the time
 * field that every match must meet become the time bounds; elsewhere
 * they are an error.  tok: a pooled tokenizer. */
int es_dsl_query(const json_t *query, seg_tok *tok, int64_t now, es_query *out, es_err *x);
/* query_string text with ES's defaults (OR between clauses). */
int es_dsl_query_string(const char *q, const char *default_field, int default_and, seg_tok *tok,
                        srch_query **out, es_err *x);
/* ANDs more into out (a post_filter, a filter aggregation's query). */
int es_query_and(es_query *out, const es_query *more, es_err *x);
void es_query_free(es_query *q);
/* The engine's request for q (its tree, borrowed, and time bounds), with
 * limit hits; the rest zero. */
void es_request(const es_query *q, size_t limit, srch_request *rq);
/* A date value of a range or a bound: epoch millis (number or digits
 * with format epoch_millis), epoch_second, RFC 3339 / strict_date_optional_time,
 * a bare date, or date math now-1h/h; time_zone for values without an
 * offset.  round_up: rounding (/d) goes to the end of the unit. */
int es_parse_date(const json_t *v, const char *format, const char *tz, int64_t now, int round_up, int64_t *ns,
                  es_err *x);

/* ---- searching (es_search.c) ---- */
void es_search_route(struct MHD_Connection *c, const char *method, const char *expr, const seg_buf *body,
                     reply *r);
void es_count_route(struct MHD_Connection *c, const char *expr, const seg_buf *body, reply *r);
void es_msearch_route(struct MHD_Connection *c, const char *expr, const seg_buf *body, reply *r);
void es_scroll_route(struct MHD_Connection *c, const char *method, const char *id, const seg_buf *body, reply *r);
void es_get_doc_route(const char *method, const char *index, const char *id, reply *r);
/* top_hits: {"hits":{"total","max_score","hits"}} of q over v, newest
 * first; opts: size, from, sort, _source, fields (empty: no search). */
int es_top_hits(es_view *v, const es_query *q, const json_t *opts, int empty, seg_buf *out, es_err *x);

/* ---- aggregations (es_aggs.c) ---- */
/* Runs the request's aggregations over v (query q and its time bounds)
 * and appends "aggregations":{...} to out. */
int es_aggs_run(const json_t *aggs, es_view *v, const es_query *q, seg_tok *tok, int64_t now, seg_buf *out,
                es_err *x);

/* ---- ingest (es_bulk.c) ---- */
/* req: the server's request, for a deferred answer (api_ingest_defer). */
void es_bulk_route(struct MHD_Connection *c, const char *path_index, const seg_buf *body, void *req, reply *r);
/* POST {index}/_doc, PUT {index}/_doc/{id}, PUT|POST {index}/_create/{id} */
void es_doc_route(struct MHD_Connection *c, const char *index, const char *id, int create, const seg_buf *body,
                  reply *r);

/* ---- small helpers (es_route.c) ---- */
/* Checks the request's query parameters against allowed (a NULL-ended
 * list, plus the ones every route takes: pretty, human, error_trace,
 * filter_path, format...); -1 with x naming the first unknown one. */
int es_check_params(struct MHD_Connection *c, const char *const *allowed, es_err *x);
/* A boolean parameter: "true", "" (present without a value) or "false". */
int es_param_bool(struct MHD_Connection *c, const char *k, int dflt);
/* The JSON text of a jansson value appended to b (compact). */
void es_put_json(seg_buf *b, const json_t *v);
/* Parses a request body as one JSON object (empty: *out NULL). */
int es_body_json(const seg_buf *body, json_t **out, es_err *x);
double es_ms_since(const struct timespec *t0);

#endif
