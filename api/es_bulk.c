/*
 * es_bulk.c -- _bulk, _doc and _create of the Elasticsearch-compatible API.
 *
 * A bulk body is action lines, each `index` or `create` followed by its
 * source line.  The sources are grouped by index (in order) and each group
 * is one native ingest (api_ingest: the write-ahead log, de-duplication by
 * _id, live tails), so a bulk request is answered once every accepted event
 * is durable, like POST .../ingest.  An action's _id is the event's identity
 * (handed to the engine beside the source, which is stored as sent); the
 * engine's per-line outcomes become the items, one per action, in order:
 *   stored          201 "created" (with the engine's _id when none was given)
 *   _id already in  index: 200 "noop" (events are immutable: the first stays);
 *                   create: 409 version_conflict_engine_exception
 *   bad source      400 document_parsing_exception (the others are stored)
 *   update, delete  400: events are immutable
 * The request's answer is 200 whatever the items say (shippers resend a
 * whole batch on a 4xx/5xx); only a body that is not bulk at all is a 400.
 */
#define _GNU_SOURCE
#include "api/es.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { A_INDEX = 1, A_CREATE, A_UPDATE, A_DELETE };

typedef struct item {
    int action;
    int group;                 /* -1: answered without ingest (err set) */
    uint32_t line;             /* 1-based line of its source in the group */
    const char *id;            /* the action's _id (in the request's JSON), or NULL */
    size_t id_len;
    es_err err;
    unsigned status;
    char auto_id[24];
} item;

typedef struct group {
    char name[72];
    seg_buf body;              /* the sources, one a line */
    const char **ids;
    uint32_t *id_lens;
    size_t n, cap;
} group;

typedef struct bulk {
    item *items;
    size_t n, cap;
    group *groups;
    size_t ngroups;
    json_t **actions;          /* parsed action lines (own the _id strings) */
    size_t nact;
} bulk;

static void bulk_free(bulk *b)
{
    for (size_t i = 0; i < b->ngroups; i++) {
        seg_buf_free(&b->groups[i].body);
        seg_free(b->groups[i].ids);
        seg_free(b->groups[i].id_lens);
    }
    seg_free(b->groups);
    seg_free(b->items);
    for (size_t i = 0; i < b->nact; i++)
        json_decref(b->actions[i]);
    seg_free(b->actions);
}

static group *group_of(bulk *b, const char *name)
{
    for (size_t i = 0; i < b->ngroups; i++)
        if (!strcmp(b->groups[i].name, name))
            return &b->groups[i];
    group *g = seg_realloc(b->groups, (b->ngroups + 1) * sizeof *g);
    if (!g)
        return NULL;
    b->groups = g;
    g = &b->groups[b->ngroups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

static item *new_item(bulk *b, int action)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        item *ni = seg_realloc(b->items, nc * sizeof *ni);
        if (!ni)
            return NULL;
        b->items = ni;
        b->cap = nc;
    }
    item *it = &b->items[b->n++];
    memset(it, 0, sizeof *it);
    it->action = action;
    it->group = -1;
    return it;
}

/* 1 when the source has a top-level "_id" key (ES refuses it: _id is
 * metadata); the bytes are searched first, so only such lines are parsed. */
static int source_has_id(const char *s, size_t n)
{
    if (!memmem(s, n, "\"_id\"", 5))
        return 0;
    json_t *j = json_loadb(s, n, 0, NULL);
    int has = j && json_object_get(j, "_id") != NULL;
    json_decref(j);
    return has;
}

/* Adds one source to its index's group. */
static int add_source(bulk *b, item *it, const char *index, const char *src, size_t n)
{
    group *g = group_of(b, index);
    if (!g)
        return -1;
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 256;
        const char **ni = seg_realloc(g->ids, nc * sizeof *ni);
        if (!ni)
            return -1;
        g->ids = ni;
        uint32_t *nl = seg_realloc(g->id_lens, nc * sizeof *nl);
        if (!nl)
            return -1;
        g->id_lens = nl;
        g->cap = nc;
    }
    g->ids[g->n] = it->id;
    g->id_lens[g->n] = (uint32_t)it->id_len;
    g->n++;
    seg_buf_put(&g->body, src, n);
    seg_buf_put_u8(&g->body, '\n');
    it->group = (int)(g - b->groups);
    it->line = (uint32_t)g->n;
    return g->body.oom ? -1 : 0;
}

static const char *const bulk_params[] = {"refresh", "timeout", "wait_for_active_shards", "routing", "pipeline",
                                          "require_alias", "require_data_stream", "_source", "_source_includes",
                                          "_source_excludes", "list_executed_pipelines", NULL};

/* Parses the body into items and groups; -1 with x for a body that is not
 * bulk (ES refuses those whole). */
static int parse_bulk(const char *path_index, const char *p, size_t len, bulk *b, es_err *x)
{
    const char *end = p + len;
    long lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *line = p;
        size_t n = (size_t)(le - p);
        p = nl ? nl + 1 : end;
        lineno++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
            k++;
        if (k == n)
            continue; /* blank lines between entries */
        json_error_t je;
        json_t *a = json_loadb(line, n, 0, &je);
        if (!a || !json_is_object(a) || json_object_size(a) != 1 ||
            !json_is_object(json_object_iter_value(json_object_iter(a)))) {
            json_decref(a);
            return es_fail(x, 400, "illegal_argument_exception",
                           "Malformed action/metadata line [%ld], expected START_OBJECT with one action", lineno);
        }
        json_t **na = seg_realloc(b->actions, (b->nact + 1) * sizeof *na);
        if (!na) {
            json_decref(a);
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        }
        b->actions = na;
        b->actions[b->nact++] = a;
        const char *act = json_object_iter_key(json_object_iter(a));
        json_t *meta = json_object_iter_value(json_object_iter(a));
        int kind = !strcmp(act, "index") ? A_INDEX : !strcmp(act, "create") ? A_CREATE
                   : !strcmp(act, "update") ? A_UPDATE : !strcmp(act, "delete") ? A_DELETE : 0;
        if (!kind)
            return es_fail(x, 400, "illegal_argument_exception",
                           "Malformed action/metadata line [%ld], expected one of [create, delete, index, update] but "
                           "found [%s]",
                           lineno, act);
        item *it = new_item(b, kind);
        if (!it)
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        /* its source (none for delete) */
        const char *src = NULL;
        size_t sn = 0;
        if (kind != A_DELETE) {
            while (p < end) {
                const char *nl2 = memchr(p, '\n', (size_t)(end - p));
                const char *le2 = nl2 ? nl2 : end;
                const char *s0 = p;
                size_t l2 = (size_t)(le2 - p);
                p = nl2 ? nl2 + 1 : end;
                lineno++;
                size_t k2 = 0;
                while (k2 < l2 && (s0[k2] == ' ' || s0[k2] == '\t' || s0[k2] == '\r'))
                    k2++;
                if (k2 < l2) {
                    src = s0;
                    sn = l2;
                    break;
                }
            }
            if (!src)
                return es_fail(x, 400, "illegal_argument_exception",
                               "The bulk request must be terminated by a newline [\\n]: the action on line %ld has no "
                               "source",
                               lineno);
        }
        const char *index = path_index;
        json_t *ji = json_object_get(meta, "_index"), *jid = json_object_get(meta, "_id");
        if (json_is_string(ji))
            index = json_string_value(ji);
        if (jid && !json_is_null(jid)) {
            if (!json_is_string(jid) || json_string_length(jid) == 0 || json_string_length(jid) > 512) {
                es_fail(&it->err, 400, "illegal_argument_exception", "_id must be a string of 1 to 512 bytes");
                continue;
            }
            it->id = json_string_value(jid);
            it->id_len = json_string_length(jid);
        }
        const char *mk;
        json_t *mv;
        json_object_foreach(meta, mk, mv)
        {
            if (strcmp(mk, "_index") && strcmp(mk, "_id") && strcmp(mk, "_type") && strcmp(mk, "routing") &&
                strcmp(mk, "require_alias") && strcmp(mk, "retry_on_conflict") && strcmp(mk, "op_type") &&
                strcmp(mk, "dynamic_templates") && strcmp(mk, "pipeline") && strcmp(mk, "version") &&
                strcmp(mk, "version_type") && strcmp(mk, "if_seq_no") && strcmp(mk, "if_primary_term")) {
                es_fail(&it->err, 400, "illegal_argument_exception", "Action/metadata line [%ld] contains an unknown "
                        "parameter [%s]", lineno, mk);
                break;
            }
            if (!strcmp(mk, "pipeline") || !strcmp(mk, "version") || !strcmp(mk, "if_seq_no")) {
                es_fail(&it->err, 400, "illegal_argument_exception", "[%s] is not supported: events are stored as sent",
                        mk);
                break;
            }
        }
        if (it->err.status)
            continue;
        if (kind == A_UPDATE || kind == A_DELETE) {
            es_fail(&it->err, 400, "illegal_argument_exception",
                    "[%s] is not supported: logdex events are immutable (index and create are)", act);
            continue;
        }
        if (!index) {
            es_fail(&it->err, 400, "action_request_validation_exception", "Validation Failed: 1: index is missing;");
            continue;
        }
        if (!idx_name_valid(index)) {
            es_fail(&it->err, 400, "invalid_index_name_exception",
                    "Invalid index name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}", index);
            continue;
        }
        if (source_has_id(src, sn)) {
            es_fail(&it->err, 400, "document_parsing_exception",
                    "[1:2] Field [_id] is a metadata field and cannot be added inside a document. Use the index API "
                    "request parameters.");
            continue;
        }
        if (add_source(b, it, index, src, sn))
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
    }
    return 0;
}

/* Runs each group's ingest and sets every item's status. */
static void ingest_groups(bulk *b)
{
    for (size_t gi = 0; gi < b->ngroups; gi++) {
        group *g = &b->groups[gi];
        idx_batch batch;
        memset(&batch, 0, sizeof batch);
        batch.want_lines = 1;
        batch.line_ids = g->ids;
        batch.line_id_lens = g->id_lens;
        batch.nline_ids = g->n;
        seg_err e = {0};
        int rc = api_ingest(g->name, (const char *)g->body.p, g->body.n, &batch, &e);
        es_err gerr = {0};
        if (rc)
            es_fail_seg(&gerr, &e);
        for (size_t i = 0; i < b->n; i++) {
            item *it = &b->items[i];
            if (it->group != (int)gi)
                continue;
            if (rc) {
                it->err = gerr;
                continue;
            }
            const idx_line_out *lo = NULL;
            for (size_t k = 0; k < batch.nlines && !lo; k++) /* lines are in order: usually k == line-1 */
                if (batch.lines[(it->line - 1 + k) % batch.nlines].line == (long)it->line)
                    lo = &batch.lines[(it->line - 1 + k) % batch.nlines];
            if (!lo) {
                es_fail(&it->err, 500, "exception", "the engine gave no outcome for this document");
                continue;
            }
            if (lo->outcome == IDX_LINE_ACCEPTED) {
                it->status = 201;
                memcpy(it->auto_id, lo->auto_id, sizeof it->auto_id);
            } else if (lo->outcome == IDX_LINE_DUPLICATE) {
                if (it->action == A_CREATE)
                    es_fail(&it->err, 409, "version_conflict_engine_exception",
                            "[%.*s]: version conflict, document already exists (current version [1])", (int)it->id_len,
                            it->id);
                else
                    it->status = 200;
            } else {
                const char *why = "the document cannot be stored";
                for (size_t k = 0; k < batch.nerrors; k++)
                    if (batch.errors[k].line == (long)it->line)
                        why = batch.errors[k].reason;
                es_fail(&it->err, 400, "document_parsing_exception", "failed to parse: %s", why);
            }
        }
        idx_batch_free(&batch);
    }
}

static void put_item(seg_buf *o, const item *it, const char *index, int first)
{
    static const char *const names[] = {"", "index", "create", "update", "delete"};
    api_put_s(o, first ? "{\"" : ",{\"");
    api_put_s(o, names[it->action]);
    api_put_s(o, "\":{\"_index\":");
    api_put_jstr(o, index ? index : "", index ? strlen(index) : 0);
    if (it->id) {
        api_put_s(o, ",\"_id\":");
        api_put_jstr(o, it->id, it->id_len);
    } else if (it->auto_id[0]) {
        api_put_s(o, ",\"_id\":");
        api_put_jstr(o, it->auto_id, strlen(it->auto_id));
    }
    char t[200];
    if (it->err.status) {
        snprintf(t, sizeof t, ",\"status\":%u,\"error\":", it->err.status);
        api_put_s(o, t);
        es_put_error_obj(o, &it->err);
        api_put_s(o, "}}");
        return;
    }
    snprintf(t, sizeof t,
             ",\"_version\":1,\"result\":\"%s\",\"_shards\":{\"total\":1,\"successful\":%d,\"failed\":0},"
             "\"_seq_no\":0,\"_primary_term\":1,\"status\":%u}}",
             it->status == 201 ? "created" : "noop", it->status == 201, it->status);
    api_put_s(o, t);
}

/* The index an item went to, for its answer. */
static const char *item_index(const bulk *b, size_t i, const char *path_index)
{
    const item *it = &b->items[i];
    if (it->group >= 0)
        return b->groups[it->group].name;
    json_t *meta = json_object_iter_value(json_object_iter(b->actions[i]));
    json_t *ji = json_object_get(meta, "_index");
    return json_is_string(ji) ? json_string_value(ji) : path_index;
}

void es_bulk_route(struct MHD_Connection *c, const char *path_index, const seg_buf *body, reply *r)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    es_err x = {0};
    if (es_check_params(c, bulk_params, &x))
        return es_error_reply(r, &x);
    if (api_arg(c, "pipeline"))
        return es_fail(&x, 400, "illegal_argument_exception", "ingest pipelines are not supported: events are stored as sent"),
               es_error_reply(r, &x);
    if (path_index && !idx_name_valid(path_index))
        return es_fail(&x, 400, "invalid_index_name_exception",
                       "Invalid index name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}", path_index),
               es_error_reply(r, &x);
    bulk b;
    memset(&b, 0, sizeof b);
    if (parse_bulk(path_index, (const char *)body->p, body->n, &b, &x)) {
        bulk_free(&b);
        return es_error_reply(r, &x);
    }
    if (b.n == 0) {
        bulk_free(&b);
        es_fail(&x, 400, "action_request_validation_exception", "Validation Failed: 1: no requests added;");
        return es_error_reply(r, &x);
    }
    ingest_groups(&b);
    int errors = 0;
    for (size_t i = 0; i < b.n; i++)
        errors |= b.items[i].err.status != 0;
    char head[80];
    snprintf(head, sizeof head, "{\"took\":%lld,\"errors\":%s,\"items\":[", (long long)es_ms_since(&t0),
             errors ? "true" : "false");
    api_put_s(&r->body, head);
    for (size_t i = 0; i < b.n; i++)
        put_item(&r->body, &b.items[i], item_index(&b, i, path_index), i == 0);
    api_put_s(&r->body, "]}");
    bulk_free(&b);
}

void es_doc_route(struct MHD_Connection *c, const char *index, const char *id, int create, const seg_buf *body,
                  reply *r)
{
    static const char *const ok[] = {"refresh", "timeout", "wait_for_active_shards", "routing", "pipeline",
                                     "op_type", "require_alias", "version", "version_type", "if_seq_no",
                                     "if_primary_term", NULL};
    es_err x = {0};
    if (es_check_params(c, ok, &x))
        return es_error_reply(r, &x);
    const char *op = api_arg(c, "op_type");
    if (op && !strcmp(op, "create"))
        create = 1;
    else if (op && strcmp(op, "index"))
        es_fail(&x, 400, "illegal_argument_exception", "op_type must be index or create");
    if (api_arg(c, "pipeline") || api_arg(c, "version") || api_arg(c, "if_seq_no"))
        es_fail(&x, 400, "illegal_argument_exception", "pipeline, version and if_seq_no are not supported");
    if (!idx_name_valid(index))
        es_fail(&x, 400, "invalid_index_name_exception", "Invalid index name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}",
                index);
    if (id && (!*id || strlen(id) > 512))
        es_fail(&x, 400, "illegal_argument_exception", "_id must be 1 to 512 bytes");
    if (x.status)
        return es_error_reply(r, &x);
    /* one line: JSON text has no raw line breaks inside its strings, so
     * those of a pretty-printed body are white space */
    seg_buf line = {0};
    seg_buf_put(&line, body->p, body->n);
    for (size_t i = 0; i < line.n; i++)
        if (line.p[i] == '\n' || line.p[i] == '\r')
            line.p[i] = ' ';
    bulk b;
    memset(&b, 0, sizeof b);
    item *it = new_item(&b, create ? A_CREATE : A_INDEX);
    if (!it || line.oom) {
        seg_buf_free(&line);
        bulk_free(&b);
        es_fail(&x, 503, "es_rejected_execution_exception", "out of memory");
        return es_error_reply(r, &x);
    }
    if (id) {
        it->id = id;
        it->id_len = strlen(id);
    }
    if (source_has_id((const char *)line.p, line.n))
        es_fail(&it->err, 400, "document_parsing_exception",
                "[1:2] Field [_id] is a metadata field and cannot be added inside a document. Use the index API "
                "request parameters.");
    else if (add_source(&b, it, index, (const char *)line.p, line.n))
        es_fail(&it->err, 503, "es_rejected_execution_exception", "out of memory");
    seg_buf_free(&line);
    if (!it->err.status)
        ingest_groups(&b);
    it = &b.items[0];
    if (it->err.status) {
        es_err e2 = it->err;
        bulk_free(&b);
        return es_error_reply(r, &e2);
    }
    r->status = it->status;
    api_put_s(&r->body, "{\"_index\":");
    api_put_jstr(&r->body, index, strlen(index));
    api_put_s(&r->body, ",\"_id\":");
    const char *rid = it->id ? it->id : it->auto_id;
    api_put_jstr(&r->body, rid, strlen(rid));
    char t[200];
    snprintf(t, sizeof t,
             ",\"_version\":1,\"result\":\"%s\",\"_shards\":{\"total\":1,\"successful\":%d,\"failed\":0},"
             "\"_seq_no\":0,\"_primary_term\":1}",
             it->status == 201 ? "created" : "noop", it->status == 201);
    api_put_s(&r->body, t);
    bulk_free(&b);
}
