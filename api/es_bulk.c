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
#include <sys/random.h>
#include <time.h>

enum { A_INDEX = 1, A_CREATE, A_UPDATE, A_DELETE };

/* One action (kept small: a 5 MB body holds ~20,000 of them). */
typedef struct item {
    int action;
    int group;                 /* -1: answered without ingest (err set) */
    uint32_t line;             /* 1-based line of its source in the group */
    uint32_t name;             /* bulk.names[name]: where it goes */
    char *id;                  /* the action's _id (a copy), or NULL */
    size_t id_len;
    es_err *err;               /* its error (item_err), or NULL */
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
    char (*names)[130];        /* the index names the items went to */
    size_t nnames;
    es_err oom;                /* the error of items whose own could not be allocated */
    struct timespec t0;        /* when the request started (took) */
    unsigned filter;           /* filter_path (bulk_filter), 0: the whole answer */
} bulk;

/* The item's error, allocated on first use. */
static es_err *item_err(bulk *b, item *it)
{
    if (!it->err && !(it->err = seg_calloc(1, sizeof *it->err))) {
        it->err = &b->oom;
        b->oom = (es_err){0};
        es_fail(&b->oom, 503, "es_rejected_execution_exception", "out of memory");
    }
    return it->err;
}

/* The number of an index name in b->names (added when new). */
static uint32_t name_ref(bulk *b, const char *name)
{
    for (size_t i = 0; i < b->nnames; i++)
        if (!strcmp(b->names[i], name))
            return (uint32_t)i;
    char (*nn)[130] = seg_realloc(b->names, (b->nnames + 1) * sizeof *nn);
    if (!nn)
        return 0; /* (names[0] is then shown: the item's answer names another index) */
    b->names = nn;
    snprintf(b->names[b->nnames], sizeof *nn, "%s", name);
    return (uint32_t)b->nnames++;
}

static void bulk_free(bulk *b)
{
    for (size_t i = 0; i < b->ngroups; i++) {
        seg_buf_free(&b->groups[i].body);
        seg_free(b->groups[i].ids);
        seg_free(b->groups[i].id_lens);
    }
    seg_free(b->groups);
    for (size_t i = 0; i < b->n; i++) {
        seg_free(b->items[i].id);
        if (b->items[i].err != &b->oom)
            seg_free(b->items[i].err);
    }
    seg_free(b->items);
    seg_free(b->names);
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

/* One action line, read. */
typedef struct action {
    int kind;
    int has_index;
    char index[130];           /* longer names are invalid anyway (cut here) */
    char *id;                  /* seg_malloc'd, or NULL */
    size_t id_len;
    es_err err;                /* the item's own error (an unknown key, a bad _id) */
} action;

static const char *const meta_keys[] = {"_index", "_id", "_type", "routing", "require_alias", "retry_on_conflict",
                                        "op_type", "dynamic_templates", "pipeline", "version", "version_type",
                                        "if_seq_no", "if_primary_term", NULL};

static int kind_of(const char *s, size_t n)
{
    return n == 5 && !memcmp(s, "index", 5) ? A_INDEX : n == 6 && !memcmp(s, "create", 6) ? A_CREATE
           : n == 6 && !memcmp(s, "update", 6) ? A_UPDATE : n == 6 && !memcmp(s, "delete", 6) ? A_DELETE : 0;
}

/* Checks one metadata key and takes _index and _id. */
static void meta_key(action *a, long lineno, const char *k, size_t kl, const char *sv, size_t sl, int is_str,
                     int is_null)
{
    int known = 0;
    for (const char *const *m = meta_keys; *m && !known; m++)
        known = strlen(*m) == kl && !memcmp(*m, k, kl);
    if (!known) {
        es_fail(&a->err, 400, "illegal_argument_exception",
                "Action/metadata line [%ld] contains an unknown parameter [%.*s]", lineno, (int)kl, k);
        return;
    }
    if ((kl == 8 && !memcmp(k, "pipeline", 8)) || (kl == 7 && !memcmp(k, "version", 7)) ||
        (kl == 9 && !memcmp(k, "if_seq_no", 9))) {
        es_fail(&a->err, 400, "illegal_argument_exception", "[%.*s] is not supported: events are stored as sent",
                (int)kl, k);
        return;
    }
    if (kl == 6 && !memcmp(k, "_index", 6) && is_str) {
        snprintf(a->index, sizeof a->index, "%.*s", (int)(sl < sizeof a->index ? sl : sizeof a->index - 1), sv);
        a->has_index = 1;
    }
    if (kl == 3 && !memcmp(k, "_id", 3) && !is_null) {
        if (!is_str || sl == 0 || sl > 512) {
            es_fail(&a->err, 400, "illegal_argument_exception", "_id must be a string of 1 to 512 bytes");
            return;
        }
        seg_free(a->id);
        a->id = seg_strndup(sv, sl);
        a->id_len = sl;
    }
}

/* Reads an action line: {"ACTION":{META}}.  The usual lines (every value
 * a string directly under the action, or an empty object) are read with
 * the engine's own scanner (seg_json, as fast as an event); anything else
 * with jansson.  -1 with x for a line that is not an action at all. */
static int parse_action(seg_json *js, const char *line, size_t n, long lineno, action *a, es_err *x)
{
    memset(a, 0, sizeof *a);
    const seg_jval *v;
    size_t nv;
    seg_err je = {0};
    int fast = 0;
    if (js && seg_json_parse(js, line, n, &v, &nv, &je) == SEG_OK && nv > 0) {
        const char *dot = memchr(v[0].path, '.', v[0].path_len);
        size_t al = dot ? (size_t)(dot - v[0].path) : 0;
        fast = al > 0 && (a->kind = kind_of(v[0].path, al)) != 0;
        for (size_t i = 0; fast && i < nv; i++)
            fast = v[i].type == SEG_JV_STRING && v[i].path_len > al + 1 && !memcmp(v[i].path, v[0].path, al + 1) &&
                   !memchr(v[i].path + al + 1, '.', v[i].path_len - al - 1);
        for (size_t i = 0; fast && i < nv; i++)
            meta_key(a, lineno, v[i].path + al + 1, v[i].path_len - al - 1, v[i].str, v[i].str_len, 1, 0);
    } else if (js && je.code == 0 && n < 64) {
        /* {"index":{}} and the like: no value at all */
        char c[64];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
                c[k++] = line[i];
        c[k] = 0;
        fast = 1;
        if (!strcmp(c, "{\"index\":{}}"))
            a->kind = A_INDEX;
        else if (!strcmp(c, "{\"create\":{}}"))
            a->kind = A_CREATE;
        else
            fast = 0;
    }
    if (fast) {
        if (a->id == NULL && a->err.status == 0 && a->id_len)
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        return 0;
    }
    seg_free(a->id);
    memset(a, 0, sizeof *a);
    json_error_t jerr;
    json_t *j = json_loadb(line, n, 0, &jerr);
    if (!j || !json_is_object(j) || json_object_size(j) != 1 ||
        !json_is_object(json_object_iter_value(json_object_iter(j)))) {
        json_decref(j);
        return es_fail(x, 400, "illegal_argument_exception",
                       "Malformed action/metadata line [%ld], expected START_OBJECT with one action", lineno);
    }
    const char *act = json_object_iter_key(json_object_iter(j));
    json_t *meta = json_object_iter_value(json_object_iter(j));
    a->kind = kind_of(act, strlen(act));
    if (!a->kind) {
        es_fail(x, 400, "illegal_argument_exception",
                "Malformed action/metadata line [%ld], expected one of [create, delete, index, update] but found [%s]",
                lineno, act);
        json_decref(j);
        return -1;
    }
    const char *mk;
    json_t *mv;
    json_object_foreach(meta, mk, mv)
    {
        meta_key(a, lineno, mk, strlen(mk), json_is_string(mv) ? json_string_value(mv) : NULL,
                 json_is_string(mv) ? json_string_length(mv) : 0, json_is_string(mv), json_is_null(mv));
        if (a->err.status)
            break;
    }
    json_decref(j);
    if (a->id_len && !a->id && !a->err.status)
        return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
    return 0;
}

/* A new id as ES makes them: 20 characters of base64url, 15 random bytes
 * (from getrandom; the time if it fails). */
static void es_new_id(char out[24])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[15];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        for (size_t i = 0; i < sizeof r; i++, v = v * 6364136223846793005ull + 1442695040888963407ull)
            r[i] = (uint8_t)(v >> 56);
    }
    for (int i = 0; i < 5; i++) {
        uint32_t v = (uint32_t)r[3 * i] << 16 | (uint32_t)r[3 * i + 1] << 8 | r[3 * i + 2];
        out[4 * i] = b64[v >> 18 & 63];
        out[4 * i + 1] = b64[v >> 12 & 63];
        out[4 * i + 2] = b64[v >> 6 & 63];
        out[4 * i + 3] = b64[v & 63];
    }
    out[20] = 0;
}

static const char *const bulk_params[] = {"refresh", "timeout", "wait_for_active_shards", "routing", "pipeline",
                                          "require_alias", "require_data_stream", "_source", "_source_includes",
                                          "_source_excludes", "list_executed_pipelines", NULL};

/* Parses the body into items and groups; -1 with x for a body that is not
 * bulk (ES refuses those whole). */
static int parse_bulk(const char *path_index, const char *p, size_t len, bulk *b, seg_json *js, es_err *x)
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
        action a;
        if (parse_action(js, line, n, lineno, &a, x))
            return -1;
        item *it = new_item(b, a.kind);
        if (!it) {
            seg_free(a.id);
            return es_fail(x, 503, "es_rejected_execution_exception", "out of memory");
        }
        it->id = a.id;
        it->id_len = a.id_len;
        int kind = a.kind;
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
        const char *index = a.has_index ? a.index : path_index;
        it->name = name_ref(b, index ? index : "");
        if (a.err.status) {
            *item_err(b, it) = a.err;
            continue;
        }
        const char *act = kind == A_UPDATE ? "update" : "delete";
        if (kind == A_UPDATE || kind == A_DELETE) {
            es_fail(item_err(b, it), 400, "illegal_argument_exception",
                    "[%s] is not supported: logdex events are immutable (index and create are)", act);
            continue;
        }
        if (!index) {
            es_fail(item_err(b, it), 400, "action_request_validation_exception", "Validation Failed: 1: index is missing;");
            continue;
        }
        if (!idx_name_valid(index)) {
            es_fail(item_err(b, it), 400, "invalid_index_name_exception",
                    "Invalid index name [%s], must match [a-z0-9][a-z0-9_.-]{0,63}", index);
            continue;
        }
        if (source_has_id(src, sn)) {
            es_fail(item_err(b, it), 400, "document_parsing_exception",
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
/* The items of group gi from its ingest's outcome. */
static void group_outcome(bulk *b, size_t gi, idx_batch *batch, int rc, const seg_err *e)
{
    es_err gerr = {0};
    if (rc)
        es_fail_seg(&gerr, e);
    for (size_t i = 0; i < b->n; i++) {
        item *it = &b->items[i];
        if (it->group != (int)gi)
            continue;
        if (rc) {
            *item_err(b, it) = gerr;
            continue;
        }
        const idx_line_out *lo = NULL;
        for (size_t k = 0; k < batch->nlines && !lo; k++) /* lines are in order: usually k == line-1 */
            if (batch->lines[(it->line - 1 + k) % batch->nlines].line == (long)it->line)
                lo = &batch->lines[(it->line - 1 + k) % batch->nlines];
        if (!lo) {
            es_fail(item_err(b, it), 500, "exception", "the engine gave no outcome for this document");
            continue;
        }
        if (lo->outcome == IDX_LINE_ACCEPTED) {
            it->status = 201;
            memcpy(it->auto_id, lo->auto_id, sizeof it->auto_id);
        } else if (lo->outcome == IDX_LINE_DUPLICATE) {
            if (it->action == A_CREATE)
                es_fail(item_err(b, it), 409, "version_conflict_engine_exception",
                        "[%.*s]: version conflict, document already exists (current version [1])", (int)it->id_len,
                        it->id);
            else
                it->status = 200;
        } else {
            const char *why = "the document cannot be stored";
            for (size_t k = 0; k < batch->nerrors; k++)
                if (batch->errors[k].line == (long)it->line)
                    why = batch->errors[k].reason;
            es_fail(item_err(b, it), 400, "document_parsing_exception", "failed to parse: %s", why);
        }
    }
}

static void batch_inputs(const group *g, idx_batch *batch)
{
    memset(batch, 0, sizeof *batch);
    batch->want_lines = 1;
    batch->line_ids = g->ids;
    batch->line_id_lens = g->id_lens;
    batch->nline_ids = g->n;
}

/* Runs each group's ingest (waiting for each) and sets every item's status. */
static void ingest_groups(bulk *b)
{
    for (size_t gi = 0; gi < b->ngroups; gi++) {
        group *g = &b->groups[gi];
        idx_batch batch;
        batch_inputs(g, &batch);
        seg_err e = {0};
        int rc = api_ingest(g->name, (const char *)g->body.p, g->body.n, &batch, &e);
        group_outcome(b, gi, &batch, rc, &e);
        idx_batch_free(&batch);
    }
}

/* filter_path on _bulk (what Beats and Logstash send, e.g.
 * errors,items.*.error,items.*.status): the parts of the answer written.
 * 0 writes everything: no filter_path, or one naming anything else (then
 * the whole answer, which is a superset). */
enum { F_TOOK = 1, F_ERRORS = 2, F_INDEX = 4, F_ID = 8, F_STATUS = 16, F_ERROR = 32, F_RESULT = 64, F_VERSION = 128,
       F_META = 256 /* _shards, _seq_no, _primary_term */ };
#define F_ITEM (F_INDEX | F_ID | F_STATUS | F_ERROR | F_RESULT | F_VERSION | F_META)

static unsigned bulk_filter(const char *fp)
{
    static const struct {
        const char *k;
        unsigned f;
    } keys[] = {{"_index", F_INDEX}, {"_id", F_ID}, {"status", F_STATUS}, {"error", F_ERROR}, {"result", F_RESULT},
                {"_version", F_VERSION}, {"_shards", F_META}, {"_seq_no", F_META}, {"_primary_term", F_META}};
    if (!fp || !*fp)
        return 0;
    unsigned f = 0;
    for (const char *p = fp; *p;) {
        size_t l = strcspn(p, ",");
        char w[64];
        if (l >= sizeof w)
            return 0;
        memcpy(w, p, l);
        w[l] = 0;
        p += l + (p[l] == ',');
        if (!strcmp(w, "took"))
            f |= F_TOOK;
        else if (!strcmp(w, "errors"))
            f |= F_ERRORS;
        else if (!strcmp(w, "items") || !strcmp(w, "items.*") || !strcmp(w, "items.*.*"))
            f |= F_ITEM;
        else if (!strncmp(w, "items.*.", 8)) {
            const char *k = w + 8;
            if (!strncmp(k, "error.", 6))
                k = "error"; /* (the error object is written whole) */
            unsigned kf = 0;
            for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
                if (!strcmp(keys[i].k, k))
                    kf = keys[i].f;
            if (!kf)
                return 0;
            f |= kf;
        } else
            return 0;
    }
    return f;
}

/* One item, with the parts f selects (0: all); nothing when none apply. */
static void put_item(seg_buf *o, const item *it, const char *index, int *first, unsigned f)
{
    static const char *const names[] = {"", "index", "create", "update", "delete"};
    unsigned want = f ? f & F_ITEM : F_ITEM;
    if (!(want & (F_INDEX | F_ID | F_STATUS | F_RESULT | F_VERSION | F_META)) && !(it->err && (want & F_ERROR)))
        return; /* only errors asked for, and it has none */
    api_put_s(o, *first ? "{\"" : ",{\"");
    *first = 0;
    api_put_s(o, names[it->action]);
    api_put_s(o, "\":{");
    const char *sep = "";
    if (want & F_INDEX) {
        api_put_s(o, "\"_index\":");
        api_put_jstr(o, index ? index : "", index ? strlen(index) : 0);
        sep = ",";
    }
    const char *id = it->id ? it->id : it->auto_id[0] ? it->auto_id : NULL;
    if ((want & F_ID) && id) {
        api_put_s(o, sep);
        api_put_s(o, "\"_id\":");
        api_put_jstr(o, id, it->id ? it->id_len : strlen(id));
        sep = ",";
    }
    char t[64];
    if (it->err) {
        if (want & F_STATUS) {
            snprintf(t, sizeof t, "%s\"status\":%u", sep, it->err->status);
            api_put_s(o, t);
            sep = ",";
        }
        if (want & F_ERROR) {
            api_put_s(o, sep);
            api_put_s(o, "\"error\":");
            es_put_error_obj(o, it->err);
        }
        api_put_s(o, "}}");
        return;
    }
    if (want == F_ITEM) {
        /* (constant text: ~20,000 items a 5 MB body, printf would cost
         * more than the rest of the answer) */
        api_put_s(o, it->status == 201 ? ",\"_version\":1,\"result\":\"created\",\"_shards\":{\"total\":1,\"successful\":1,"
                                         "\"failed\":0},\"_seq_no\":0,\"_primary_term\":1,\"status\":201}}"
                                       : ",\"_version\":1,\"result\":\"noop\",\"_shards\":{\"total\":1,\"successful\":0,"
                                         "\"failed\":0},\"_seq_no\":0,\"_primary_term\":1,\"status\":200}}");
        return;
    }
    if (want & F_VERSION) {
        api_put_s(o, sep);
        api_put_s(o, "\"_version\":1");
        sep = ",";
    }
    if (want & F_RESULT) {
        api_put_s(o, sep);
        api_put_s(o, it->status == 201 ? "\"result\":\"created\"" : "\"result\":\"noop\"");
        sep = ",";
    }
    if (want & F_META) {
        api_put_s(o, sep);
        api_put_s(o, it->status == 201 ? "\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0},\"_seq_no\":0,\"_primary_term\":1"
                                       : "\"_shards\":{\"total\":1,\"successful\":0,\"failed\":0},\"_seq_no\":0,\"_primary_term\":1");
        sep = ",";
    }
    if (want & F_STATUS) {
        snprintf(t, sizeof t, "%s\"status\":%u", sep, it->status);
        api_put_s(o, t);
    }
    api_put_s(o, "}}");
}

/* The bulk answer {"took","errors","items"} into r (what b->filter keeps). */
static void bulk_answer(const bulk *b, reply *r)
{
    int errors = 0;
    for (size_t i = 0; i < b->n; i++)
        errors |= b->items[i].err != NULL;
    unsigned f = b->filter;
    seg_buf_reserve(&r->body, b->n * (f ? 40 : 200) + 64); /* an item takes ~190 bytes: no doubling copies */
    char head[80];
    const char *sep = "";
    api_put_s(&r->body, "{");
    if (!f || (f & F_TOOK)) {
        snprintf(head, sizeof head, "\"took\":%lld", (long long)es_ms_since(&b->t0));
        api_put_s(&r->body, head);
        sep = ",";
    }
    if (!f || (f & F_ERRORS)) {
        api_put_s(&r->body, sep);
        api_put_s(&r->body, errors ? "\"errors\":true" : "\"errors\":false");
        sep = ",";
    }
    if (!f || (f & F_ITEM)) {
        size_t mark = r->body.n;
        api_put_s(&r->body, sep);
        api_put_s(&r->body, "\"items\":[");
        int first = 1;
        for (size_t i = 0; i < b->n; i++)
            put_item(&r->body, &b->items[i], b->names ? b->names[b->items[i].name] : "", &first, f);
        if (first && f)
            r->body.n = mark; /* nothing selected: no "items", as ES leaves it out */
        else
            api_put_s(&r->body, "]");
    }
    api_put_s(&r->body, "}");
}

/* A deferred bulk (one index, event loop): its answer once the log is synced. */
static void deferred_answer(void *ctx, idx_batch *batch, int rc, const seg_err *e, reply *r)
{
    bulk *b = ctx;
    group_outcome(b, 0, batch, rc, e);
    r->es = 1;
    bulk_answer(b, r);
}

static void bulk_release(void *ctx)
{
    bulk_free(ctx);
    seg_free(ctx);
}

void es_bulk_route(struct MHD_Connection *c, const char *path_index, const seg_buf *body, void *req, reply *r)
{
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
    bulk *b = seg_calloc(1, sizeof *b);
    if (!b)
        return es_fail(&x, 503, "es_rejected_execution_exception", "out of memory"), es_error_reply(r, &x);
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    b->filter = bulk_filter(api_arg(c, "filter_path"));
    seg_json *js = seg_json_new();
    int prc = parse_bulk(path_index, (const char *)body->p, body->n, b, js, &x);
    seg_json_free(js);
    if (prc || b->n == 0) {
        if (!prc)
            es_fail(&x, 400, "action_request_validation_exception", "Validation Failed: 1: no requests added;");
        bulk_release(b);
        return es_error_reply(r, &x);
    }
    if (b->ngroups == 1) {
        /* one index: the committer answers after the shared log sync, as
         * for a native ingest (many small bulks share one fdatasync) */
        idx_batch in;
        batch_inputs(&b->groups[0], &in);
        seg_err e = {0};
        int d = api_ingest_defer(req, b->groups[0].name, (const char *)b->groups[0].body.p, b->groups[0].body.n, &in,
                                 deferred_answer, bulk_release, b, &e);
        if (d == 1)
            return; /* b is the committer's now */
        if (d == 2) {
            bulk_release(b); /* routed again on a worker */
            return;
        }
        if (d < 0) {
            idx_batch none = {0};
            group_outcome(b, 0, &none, e.code ? e.code : SEG_EIO, &e);
            bulk_answer(b, r);
            bulk_release(b);
            return;
        }
    }
    ingest_groups(b);
    bulk_answer(b, r);
    bulk_release(b);
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
    it->name = name_ref(&b, index);
    char gen[24];
    if (!id) {
        /* POST {index}/_doc: an id made here, given to the engine like a
         * client's, so that GET _doc finds the event by the id answered */
        es_new_id(gen);
        id = gen;
    }
    if (id && !(it->id = seg_strndup(id, strlen(id))))
        es_fail(item_err(&b, it), 503, "es_rejected_execution_exception", "out of memory");
    it->id_len = id ? strlen(id) : 0;
    if (source_has_id((const char *)line.p, line.n))
        es_fail(item_err(&b, it), 400, "document_parsing_exception",
                "[1:2] Field [_id] is a metadata field and cannot be added inside a document. Use the index API "
                "request parameters.");
    else if (!it->err && add_source(&b, it, index, (const char *)line.p, line.n))
        es_fail(item_err(&b, it), 503, "es_rejected_execution_exception", "out of memory");
    seg_buf_free(&line);
    if (!it->err)
        ingest_groups(&b);
    it = &b.items[0];
    if (it->err) {
        es_err e2 = *it->err;
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
