/*
 * es_util.c -- helpers of the Elasticsearch-compatible routes that need
 * no server: errors in ES's shape, JSON in and out.  (Apart from es_route.c
 * so that the DSL's fuzz target links without the HTTP server.)
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int es_fail(es_err *x, unsigned status, const char *type, const char *fmt, ...)
{
    if (x->status) /* the first error is the one reported */
        return -1;
    x->status = status;
    snprintf(x->type, sizeof x->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->reason, sizeof x->reason, fmt, ap);
    va_end(ap);
    return -1;
}

int es_fail_seg(es_err *x, const seg_err *e)
{
    char b[700];
    seg_err_str(e, b, sizeof b);
    switch (e->code) {
    case SEG_EQUERY: return es_fail(x, 400, "query_shard_exception", "%s", b);
    case SEG_ELIMIT: return es_fail(x, 400, "illegal_argument_exception", "%s", b);
    case SEG_ENOENT: return es_fail(x, 404, "index_not_found_exception", "%s", b);
    case SEG_ENOMEM: return es_fail(x, 503, "es_rejected_execution_exception", "%s", b);
    case SEG_EBUSY: return es_fail(x, 429, "es_rejected_execution_exception", "%s", b);
    /* Elasticsearch's flood-stage block answers 429 (shippers retry it) */
    case SEG_ENOSPC: return es_fail(x, 429, "cluster_block_exception", "%s", b);
    case SEG_EUNAVAIL: return es_fail(x, 503, "unavailable_shards_exception", "%s", b);
    default: return es_fail(x, 500, "exception", "%s", b);
    }
}

void es_put_error_obj(seg_buf *b, const es_err *x)
{
    api_put_s(b, "{\"type\":");
    api_put_jstr(b, x->type, strlen(x->type));
    api_put_s(b, ",\"reason\":");
    api_put_jstr(b, x->reason, strlen(x->reason));
    api_put_s(b, "}");
}

void es_error_reply(reply *r, const es_err *x)
{
    r->status = x->status ? x->status : 500;
    r->body.n = 0;
    r->ctype = NULL;
    r->es = 1;
    if (x->status == 429 || x->status == 503)
        r->retry_after = "1";
    api_put_s(&r->body, "{\"error\":{\"root_cause\":[");
    es_put_error_obj(&r->body, x);
    r->body.n--; /* the root cause is the error itself */
    api_put_s(&r->body, "}],\"type\":");
    api_put_jstr(&r->body, x->type, strlen(x->type));
    api_put_s(&r->body, ",\"reason\":");
    api_put_jstr(&r->body, x->reason, strlen(x->reason));
    char tail[48];
    snprintf(tail, sizeof tail, "},\"status\":%u}", r->status);
    api_put_s(&r->body, tail);
}

double es_ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    seg_buf_put(ud, p, n);
    return 0;
}

void es_put_json(seg_buf *b, const json_t *v)
{
    json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

int es_body_json(const seg_buf *body, json_t **out, es_err *x)
{
    *out = NULL;
    size_t k = 0;
    while (k < body->n && (body->p[k] == ' ' || body->p[k] == '\n' || body->p[k] == '\r' || body->p[k] == '\t'))
        k++;
    if (k == body->n)
        return 0;
    json_error_t je;
    json_t *j = json_loadb((const char *)body->p, body->n, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return es_fail(x, 400, "parsing_exception", "the request body is not valid JSON: %s (line %d, column %d)",
                       je.text, je.line, je.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return es_fail(x, 400, "parsing_exception", "the request body must be a JSON object");
    }
    *out = j;
    return 0;
}
