/*
 * api_http.c -- `logdex serve`: the HTTP API on libmicrohttpd.
 *
 * Threads: libmicrohttpd's pool (one poller per thread) runs the handlers;
 * a tick thread completes and starts background flushes; the main thread
 * waits for SIGTERM/SIGINT.  Shared state:
 *   - the index registry (srv.ix, srv.nix), guarded by srv.mu; an index's
 *     idx_writer is itself safe for concurrent idx_ingest / idx_snapshot /
 *     idx_tick calls;
 *   - counters for /metrics, updated with atomics;
 *   - the search pool (srch_pool), which runs one search's segments at a
 *     time and is safe to call from any thread.
 * Handlers only translate: parse the request, call indexer/ or searcher/,
 * write JSON.
 */
#define _GNU_SOURCE
#include "api/api_int.h"
#include "indexer/idx.h"
#include "searcher/srch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* libmicrohttpd's memory per connection: the request line and headers must
 * fit (beyond it, its own 431; a query, up to 64 KiB, must fit with room to
 * spare for our own 400).  It zeroes this pool for every request on a
 * kept-alive connection, so it is kept small: 256 KiB cost ~9% of the
 * server's time under many one-event requests. */
#define HTTP_CONN_MEMORY ((size_t)128 * 1024)

static const char *const usage_serve =
    "usage: logdex serve [--data DIR] [--listen HOST:PORT] [options]\n"
    "\n"
    "Serves the HTTP API (docs/http-api.md).  Prints 'logdex listening on\n"
    "http://HOST:PORT' once it accepts connections.  SIGTERM or SIGINT: stop\n"
    "accepting, finish requests in flight, flush everything, exit 0.\n"
    "\n"
    "  --data DIR          data directory (default ./data)\n"
    "  --listen HOST:PORT  address (default 127.0.0.1:9200; port 0: any free port)\n"
    "  --max-body BYTES    largest request body, after gzip decoding (default 64 MiB)\n"
    "  --auth-token TOKEN  require 'Authorization: Bearer TOKEN' (all but /health)\n"
    "  --auth-tokens FILE  tokens, one a line, each optionally marked 'read'\n"
    "                      (no ingest) or 'write' (ingest only)\n"
    "  --tls-cert FILE --tls-key FILE   serve HTTPS\n"
    "  --buffer-mb N       flush an index's buffer at N MiB (default 64)\n"
    "  --flush-age SECS    ... or when its oldest event is SECS old (default 10)\n"
    "  (at most 1000 connections)\n"
    "  --max-tails N       live tail streams at most, per index (default 256)\n"
    "  --retention DUR     delete buckets whose events are all older than DUR\n"
    "                      (e.g. 7d; checked every second; default: keep all)\n"
    "  --max-disk BYTES    delete the oldest buckets while segments take more\n"
    "                      (suffixes K, M, G, T; default: no limit)\n"
    "  --time-field F[,G...]  time fields of indexes created from now on, tried\n"
    "                      before @timestamp, timestamp, time, ts (PUT\n"
    "                      /api/v1/INDEX sets an index's own)\n"
    "  --min-free SIZE|N%  refuse ingest (507, Retry-After) while the data\n"
    "                      directory's disk has less free, keeping room for\n"
    "                      flushes and merges (default: 5% of the disk, at\n"
    "                      most 256M; 0: off); lifted once space is freed\n"
    "  --max-future DUR    reject events dated more than DUR ahead (default 1d)\n"
    "  --segment-target-mb N  merges build segments up to N MiB (default 512)\n"
    "  --merge-settle SECS    merge a bucket down once it got no new segment for\n"
    "                      SECS (default 60)\n"
    "  --no-merge          do not merge in the background\n"
    "  --merge-nice N      CPU niceness of the merge thread (default 5: requests\n"
    "                      get the cores first, merges still progress)\n"
    "  --block-cache-mb N  decoded event blocks kept for repeated and paged\n"
    "                      searches (default 64; 0: off)\n"
    "  --ingest-wait SECS  when both buffers are full (one being flushed), an\n"
    "                      ingest waits this long, then gets 429 (default 5)\n"
    "  --idle-timeout SECS close a connection idle (no byte in or out) this long\n"
    "                      (default 60; slow or stalled clients)\n"
    "  --quiet             no request log on standard error\n"
    "  --http-mode MODE    'events' (default): an epoll loop per core;\n"
    "                      requests handed to worker threads, small ingests\n"
    "                      logged on the loop and answered together after\n"
    "                      each shared log sync; 'threads': a thread per\n"
    "                      connection\n";

#define MAX_INDEXES 1024

typedef struct index_ent {
    char name[72];
    idx_writer *w;
    api_hub *hub;              /* live tails of this index */
} index_ent;

static struct server {
    char data[4096];
    pthread_mutex_t mu;        /* guards ix, nix */
    index_ent ix[MAX_INDEXES];
    size_t nix;
    idx_opts opts;
    srch_pool *pool;
    seg_tok *qtok[64];         /* query tokenizers, one per HTTP thread (by slot) */
    pthread_mutex_t tokmu;     /* guards qtok_used */
    int qtok_used[64];
    size_t max_body;
    int max_tails;
    int64_t retention_ns;
    uint64_t max_disk;
    int no_merge;
    int merge_nice;            /* CPU niceness of the merge thread */
    struct {
        char *tok;
        int rights;
    } tokens[1024];            /* --auth-token / --auth-tokens; none: open */
    size_t ntokens;
    unsigned idle_timeout;     /* seconds without a byte before a connection is closed */
    int quiet;
    int stopping;              /* atomic */
    int event_loop;            /* --http-mode events (see "Event loop") */
    /* metrics (atomics) */
    uint64_t requests, searches, search_ns, search_hist[12], ingest_requests, open_conns, http_errors;
    uint64_t failed_segments;
} srv;

static const double hist_bounds_ms[12] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 1e300};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Borrowing a tokenizer for query parsing (ICU state is per thread). */
int api_tok_take(void)
{
    pthread_mutex_lock(&srv.tokmu);
    for (int i = 0; i < 64; i++)
        if (!srv.qtok_used[i]) {
            if (!srv.qtok[i])
                srv.qtok[i] = seg_tok_new();
            if (!srv.qtok[i])
                break;
            srv.qtok_used[i] = 1;
            pthread_mutex_unlock(&srv.tokmu);
            return i;
        }
    pthread_mutex_unlock(&srv.tokmu);
    return -1;
}

seg_tok *api_tok(int slot) { return srv.qtok[slot]; }

void api_tok_give(int i)
{
    pthread_mutex_lock(&srv.tokmu);
    srv.qtok_used[i] = 0;
    pthread_mutex_unlock(&srv.tokmu);
}


void api_error(reply *r, unsigned status, const char *type, const char *reason)
{
    r->status = status;
    r->body.n = 0;
    r->ctype = "application/json";
    api_put_s(&r->body, "{\"error\":{\"type\":");
    api_put_jstr(&r->body, type, strlen(type));
    api_put_s(&r->body, ",\"reason\":");
    api_put_jstr(&r->body, reason, strlen(reason));
    api_put_s(&r->body, "}}");
    __atomic_add_fetch(&srv.http_errors, 1, __ATOMIC_RELAXED);
}

/* 413, saying the limit and what to do. */
static void too_large(reply *r, const char *what)
{
    char m[200];
    snprintf(m, sizeof m, "%s --max-body (%zu bytes): send smaller batches, or start the server with a larger --max-body",
             what, srv.max_body);
    api_error(r, 413, "payload_too_large", m);
}

void api_seg_error(reply *r, const seg_err *e)
{
    char buf[1024];
    seg_err_str(e, buf, sizeof buf);
    switch (e->code) {
    case SEG_EQUERY: api_error(r, 400, "bad_request", buf); break;
    case SEG_ELIMIT: api_error(r, 400, "limit_exceeded", buf); break;
    case SEG_ENOENT: api_error(r, 404, "index_not_found", buf); break;
    case SEG_ECORRUPT: api_error(r, 500, "corrupt_segment", buf); break;
    case SEG_ENOMEM: api_error(r, 503, "overloaded", buf); r->retry_after = "1"; break;
    case SEG_EBUSY: api_error(r, 429, "too_many_requests", buf); r->retry_after = "1"; break;
    case SEG_ENOSPC: api_error(r, 507, "insufficient_storage", buf); r->retry_after = "5"; break;
    case SEG_EUNAVAIL: api_error(r, 503, "unavailable", buf); r->retry_after = "5"; break;
    default: api_error(r, 500, "internal_error", buf); break;
    }
}

/* ------------------------------------------------------------------ */
/* Index registry                                                       */
/* ------------------------------------------------------------------ */

/* Finds (create: or creates) the live writer of an index; *hub (if not
 * NULL) receives its tail hub. */
static idx_writer *index_get_hub(const char *name, int create, api_hub **hub, seg_err *e)
{
    pthread_mutex_lock(&srv.mu);
    for (size_t i = 0; i < srv.nix; i++)
        if (!strcmp(srv.ix[i].name, name)) {
            idx_writer *w = srv.ix[i].w;
            if (hub)
                *hub = srv.ix[i].hub;
            pthread_mutex_unlock(&srv.mu);
            return w;
        }
    idx_writer *w = NULL;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s/manifest", srv.data, name);
    struct stat st;
    if (!create && stat(dir, &st) != 0) {
        seg_err_set(e, SEG_ENOENT, NULL, "no such index: %s", name);
    } else if (srv.nix >= MAX_INDEXES) {
        seg_err_set(e, SEG_ELIMIT, NULL, "too many indexes (%d)", MAX_INDEXES);
    } else if (idx_open(srv.data, name, &srv.opts, &w, e) == SEG_OK) {
        /* what replaying its log found wrong (torn tail, damage): said once */
        for (const char *r = idx_replay_report(w), *nl; *r; r = nl + 1) {
            nl = strchr(r, '\n');
            if (!nl)
                break;
            fprintf(stderr, "logdex serve: index %s: %.*s\n", name, (int)(nl - r), r);
        }
        api_hub *h = api_hub_new();
        if (!h) {
            idx_close(w, NULL);
            w = NULL;
            seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        } else {
            snprintf(srv.ix[srv.nix].name, sizeof srv.ix[srv.nix].name, "%s", name);
            srv.ix[srv.nix].hub = h;
            srv.ix[srv.nix++].w = w;
            if (hub)
                *hub = h;
        }
    }
    pthread_mutex_unlock(&srv.mu);
    return w;
}

static idx_writer *index_get(const char *name, int create, seg_err *e) { return index_get_hub(name, create, NULL, e); }

/* ------------------------------------------------------------------ */
/* Query strings                                                        */
/* ------------------------------------------------------------------ */

static const char *arg(struct MHD_Connection *c, const char *k);

const char *api_arg(struct MHD_Connection *c, const char *k) { return arg(c, k); }

static const char *arg(struct MHD_Connection *c, const char *k)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

typedef struct pcheck {
    const char *const *known;
    char bad[80];
} pcheck;

static enum MHD_Result pcheck_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    pcheck *p = cls;
    for (const char *const *k = p->known; *k; k++)
        if (!strcmp(*k, key))
            return MHD_YES;
    snprintf(p->bad, sizeof p->bad, "%s", key);
    return MHD_NO;
}

/* 0 when every query parameter is among known (NULL-ended); else the 400
 * naming the first other one (a near miss suggested) is set on r. */
static int check_params(struct MHD_Connection *c, reply *r, const char *const *known)
{
    pcheck p = {known, ""};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, pcheck_one, &p);
    if (!p.bad[0])
        return 0;
    char m[400];
    api_unknown_msg("parameter", p.bad, known, m, sizeof m);
    api_error(r, 400, "bad_request", m);
    return -1;
}

static int parse_time_arg(struct MHD_Connection *c, const char *k, int64_t *out, int *has, seg_err *e)
{
    const char *v = arg(c, k);
    *has = v && *v;
    if (!*has)
        return SEG_OK;
    return api_parse_time(k, v, out, e);
}

/* ------------------------------------------------------------------ */
/* Routes                                                               */
/* ------------------------------------------------------------------ */

/* 1 for a POST to an ingest route (the only route that writes). */
static int is_ingest(const char *method, const char *url)
{
    size_t ul = strlen(url);
    return !strcmp(method, "POST") && ul > 7 && !strcmp(url + ul - 7, "/ingest");
}

/* A request.  In event-loop mode (see "Event loop" below) its answer may be
 * made on another thread while the connection is suspended: state 1 while
 * it is being worked on, 2 when r (or stream) holds the answer. */
typedef struct req {
    seg_buf body;
    int too_large;
    int refused;               /* an answer was queued before the body */
    struct timespec t0;
    /* event-loop mode */
    int state;
    struct MHD_Connection *c;
    const char *method, *url;  /* libmicrohttpd's, valid while the request lives */
    reply r;
    struct MHD_Response *stream;
    int inline_ok;             /* may run on the event thread (small ingest) */
    int pending;               /* an ingest waits for the log: the committer answers */
    idx_writer *w;             /* ... on this index */
    api_hub *hub;
    idx_batch b;
    /* an ingest whose answer another route makes (api_ingest_defer) */
    api_answer_fn answer;
    void (*release)(void *);
    void *actx;
    struct req *next;          /* work or commit queue */
} req;

static void ingest_answer(reply *r, api_hub *hub, idx_batch *b, int rc, seg_err *e);

static void do_ingest_lines(reply *r, req *q, const char *index, const char *body, size_t n,
                            const idx_line_time *lt, size_t nlt);

/* An ingest body in format fmt (INGEST_*): a BOM, a JSON array and plain
 * text lines become NDJSON lines first (docs/http-api.md, "Inputs"). */
enum { INGEST_NDJSON, INGEST_TEXT, INGEST_COMBINED };
static void do_ingest(reply *r, req *q, const char *index, const char *body, size_t n, int fmt)
{
    seg_buf conv = {0}, times = {0};
    size_t bom = api_bom(body, n);
    int rc = 0;
    if (fmt == INGEST_TEXT || fmt == INGEST_COMBINED)
        rc = api_text_to_ndjson(body, n, seg_time_now(), fmt == INGEST_COMBINED, &conv, &times);
    else if ((rc = api_array_to_ndjson(body + bom, n - bom, &conv)) == 0)
        conv.oom = 0; /* not an array: the body as it is */
    if (rc < 0) {
        if (conv.oom || times.oom)
            api_error(r, 503, "overloaded", "out of memory"), r->retry_after = "1";
        else
            api_error(r, 400, "bad_request",
                      "the body starts with '[' but is not a JSON array of values: send NDJSON (one object a "
                      "line) or one JSON array");
    } else if (fmt != INGEST_NDJSON || rc == 1) {
        do_ingest_lines(r, q, index, (const char *)conv.p, conv.n, (const idx_line_time *)(void *)times.p,
                        times.n / sizeof(idx_line_time));
    } else {
        do_ingest_lines(r, q, index, body + bom, n - bom, NULL, 0);
    }
    /* the engine keeps no pointer into the body past idx_ingest_start */
    seg_buf_free(&conv);
    seg_buf_free(&times);
}

static void do_ingest_lines(reply *r, req *q, const char *index, const char *body, size_t n,
                            const idx_line_time *lt, size_t nlt)
{
    seg_err e = {0};
    api_hub *hub = NULL;
    idx_writer *w = index_get_hub(index, 1, &hub, &e);
    if (!w) {
        api_seg_error(r, &e);
        return;
    }
    __atomic_add_fetch(&srv.ingest_requests, 1, __ATOMIC_RELAXED);
    if (q && q->state == 1) {
        /* event loop: parse, buffer and log now, answer once the log is
         * synced (the committer thread) */
        idx_batch *b = &q->b;
        memset(b, 0, sizeof *b);
        b->want_events = api_hub_wants_events(hub);
        b->no_block = q->inline_ok; /* the event thread must not wait for room */
        b->line_times = lt;
        b->nline_times = nlt;
        int rc = idx_ingest_start(w, body, n, b, &e);
        if (rc && b->would_block) {
            idx_batch_free(b);
            q->pending = -1; /* to a worker, which may wait */
            return;
        }
        if (b->ticket) {
            /* ev_work hands it to the committer: from that push on, q
             * may be answered and freed on other threads */
            q->w = w;
            q->hub = hub;
            q->pending = 1;
            return;
        }
        rc = idx_ingest_finish(w, b, &e);
        ingest_answer(r, hub, b, rc, &e);
        return;
    }
    idx_batch b = {0};
    b.want_events = api_hub_wants_events(hub);
    b.line_times = lt;
    b.nline_times = nlt;
    int rc = idx_ingest(w, body, n, &b, &e);
    ingest_answer(r, hub, &b, rc, &e);
}

/* Durable events of an ingest to the live tails (the hub takes them). */
static void publish(api_hub *hub, idx_batch *b)
{
    if (!b->events)
        return;
    int slot = api_tok_take();
    seg_json *js = seg_json_new();
    if (slot >= 0 && js) {
        api_hub_publish(hub, b->events, srv.qtok[slot], js);
        b->events = NULL; /* the hub's now */
    }
    seg_json_free(js);
    if (slot >= 0)
        api_tok_give(slot);
}

/* The answer to an ingest whose log record is synced (or that failed). */
static void ingest_answer(reply *r, api_hub *hub, idx_batch *bp, int rc, seg_err *ep)
{
    idx_batch b = *bp;
    memset(bp, 0, sizeof *bp);
    seg_err e = *ep;
    if (rc) {
        idx_batch_free(&b);
        if (e.code == SEG_ENOMEM) {
            api_error(r, 503, "overloaded", e.msg);
            r->retry_after = "1";
        } else {
            api_seg_error(r, &e);
        }
        return;
    }
    char head[200];
    snprintf(head, sizeof head,
             "{\"accepted\":%llu,\"rejected\":%llu,\"duplicates\":%llu,\"arrival_time\":%llu,\"errors\":[",
             (unsigned long long)b.accepted, (unsigned long long)b.rejected, (unsigned long long)b.duplicates,
             (unsigned long long)b.arrival);
    api_put_s(&r->body, head);
    for (size_t i = 0; i < b.nerrors; i++) {
        char l[64];
        snprintf(l, sizeof l, "%s{\"line\":%ld,\"reason\":", i ? "," : "", b.errors[i].line);
        api_put_s(&r->body, l);
        api_put_jstr(&r->body, b.errors[i].reason, strlen(b.errors[i].reason));
        api_put_s(&r->body, "}");
    }
    api_put_s(&r->body, "]}");
    publish(hub, &b);
    idx_batch_free(&b);
}

int api_ingest_defer(void *reqp, const char *index, const char *body, size_t n, const idx_batch *in,
                     api_answer_fn answer, void (*release)(void *), void *ctx, seg_err *e)
{
    req *q = reqp;
    if (!q || q->state != 1)
        return 0; /* a thread per connection: the caller waits itself */
    api_hub *hub = NULL;
    idx_writer *w = index_get_hub(index, 1, &hub, e);
    if (!w)
        return -1;
    __atomic_add_fetch(&srv.ingest_requests, 1, __ATOMIC_RELAXED);
    idx_batch *b = &q->b;
    *b = *in;
    b->want_events = api_hub_wants_events(hub);
    b->no_block = q->inline_ok; /* the event thread must not wait for room */
    int rc = idx_ingest_start(w, body, n, b, e); /* its result comes back from idx_ingest_finish */
    if (rc && b->would_block) {
        idx_batch_free(b);
        q->pending = -1; /* to a worker, which may wait: the route runs again there */
        return 2;
    }
    q->w = w;
    q->hub = hub;
    q->answer = answer;
    q->release = release;
    q->actx = ctx;
    q->pending = 1;
    return 1;
}

int api_ingest(const char *index, const char *body, size_t n, idx_batch *b, seg_err *e)
{
    api_hub *hub = NULL;
    idx_writer *w = index_get_hub(index, 1, &hub, e);
    if (!w)
        return e->code;
    __atomic_add_fetch(&srv.ingest_requests, 1, __ATOMIC_RELAXED);
    b->want_events = api_hub_wants_events(hub);
    int rc = idx_ingest(w, body, n, b, e);
    if (rc == SEG_OK)
        publish(hub, b);
    return rc;
}


/* Parses the query parameter q (absent: the empty query) with a pooled
 * tokenizer; NULL with the error reply set (400 with the position, or 503
 * when every tokenizer is busy). */
static srch_query *parse_q(reply *r, const char *q, seg_err *e)
{
    int slot = api_tok_take();
    if (slot < 0) {
        api_error(r, 503, "overloaded", "too many concurrent requests");
        r->retry_after = "1";
        return NULL;
    }
    srch_query *pq = NULL;
    int rc = srch_query_parse(q ? q : "", q ? strlen(q) : 0, srv.qtok[slot], &pq, e);
    api_tok_give(slot);
    if (rc)
        api_seg_error(r, e);
    return rc ? NULL : pq;
}

/* GET /api/v1/{index}/tail: the event-stream response, or NULL and an error
 * reply. */
static struct MHD_Response *do_tail(reply *r, struct MHD_Connection *c, const char *index)
{
    seg_err e = {0};
    api_hub *hub = NULL;
    if (!index_get_hub(index, 0, &hub, &e)) {
        api_seg_error(r, &e);
        return NULL;
    }
    const char *q = arg(c, "q"), *bf = arg(c, "backfill"), *hb = arg(c, "heartbeat");
    size_t backfill = 0;
    double heartbeat = 15;
    if (bf && *bf) {
        char *end;
        long long v = strtoll(bf, &end, 10);
        if (*end || v < 0 || v > 10000) {
            api_error(r, 400, "bad_request", "backfill must be a whole number from 0 to 10000");
            return NULL;
        }
        backfill = (size_t)v;
    }
    if (hb && *hb) {
        char *end;
        heartbeat = strtod(hb, &end);
        if (*end || !(heartbeat >= 0.05 && heartbeat <= 3600)) {
            api_error(r, 400, "bad_request", "heartbeat must be from 0.05 to 3600 seconds");
            return NULL;
        }
    }
    srch_query *pq = parse_q(r, q, &e);
    if (!pq)
        return NULL;
    srch_index *snap = backfill ? api_snapshot(index, &e) : NULL;
    if (backfill && !snap) {
        srch_query_free(pq);
        api_seg_error(r, &e);
        return NULL;
    }
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    unsigned status = 0;
    if (srv.idle_timeout && heartbeat > srv.idle_timeout / 2.0)
        heartbeat = srv.idle_timeout / 2.0; /* a quiet stream must not look idle */
    struct MHD_Response *resp = api_tail_open(hub, srv.max_tails, pq, snap, backfill, last, heartbeat,
                                              srv.event_loop ? c : NULL, &status, &e);
    srch_index_close(snap);
    if (!resp) {
        char b[1024];
        api_error(r, status ? status : 503, status == 503 ? "overloaded" : "internal_error", seg_err_str(&e, b, sizeof b));
        if (status == 503)
            r->retry_after = "5";
    }
    return resp;
}

/* Opens a searchable snapshot of an index. */
srch_index *api_snapshot(const char *index, seg_err *e)
{
    idx_writer *w = index_get(index, 0, e);
    if (!w)
        return NULL;
    seg_set *set;
    if (idx_snapshot(w, &set, e))
        return NULL;
    srch_index *ix = NULL;
    if (srch_index_from_set(set, srv.pool, &ix, e) == SEG_OK)
        srch_index_set_bucket_ns(ix, idx_bucket_ns(w));
    seg_set_unref(set);
    return ix;
}

/* Counts and logs corrupt segments left out of an answer. */
void api_note_failed(const srch_stats *st, const char *what)
{
    if (!st->segments_failed)
        return;
    __atomic_add_fetch(&srv.failed_segments, st->segments_failed, __ATOMIC_RELAXED);
    if (!srv.quiet)
        fprintf(stderr, "%s: %zu corrupt segment(s) left out: %s\n", what, st->segments_failed, st->failure);
}

static void do_search(reply *r, struct MHD_Connection *c, const char *index)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    seg_err e = {0};
    srch_request rq;
    memset(&rq, 0, sizeof rq);
    const char *q = arg(c, "q"), *lim = arg(c, "limit");
    rq.limit = 100;
    if (lim && *lim) {
        char *end;
        long long v = strtoll(lim, &end, 10);
        if (*end || v < 0 || v > 10000) {
            api_error(r, 400, "bad_request", "limit must be a whole number from 0 to 10000");
            return;
        }
        rq.limit = (size_t)v;
    }
    rq.cursor = arg(c, "cursor");
    /* sort=FIELD[:asc|desc] (a field: ascending by default; _time or
     * @timestamp: newest first by default) */
    char sortf[SEG_FIELD_MAX + 1];
    const char *so = arg(c, "sort");
    if (so && *so) {
        if (api_parse_sort(so, sortf, sizeof sortf, &rq.sort_asc)) {
            api_error(r, 400, "bad_request", "sort must be FIELD, FIELD:asc or FIELD:desc (a numeric field, or _time)");
            return;
        }
        rq.sort_field = sortf;
    }
    if (parse_time_arg(c, "start", &rq.start, &rq.has_start, &e) ||
        parse_time_arg(c, "end", &rq.end, &rq.has_end, &e)) {
        api_error(r, 400, "bad_request", e.msg);
        return;
    }
    /* fields=a,b.c: each hit's _source holds only those (and what is
     * under them; * and ? as in shell patterns) */
    const char *fl = arg(c, "fields");
    json_t *incl = NULL;
    if (fl && *fl) {
        incl = json_array();
        for (const char *p = fl; *p;) {
            size_t l = strcspn(p, ",");
            if (l)
                json_array_append_new(incl, json_stringn(p, l));
            p += l + (p[l] == ',');
        }
    }
    srch_query *pq = parse_q(r, q, &e);
    if (!pq) {
        json_decref(incl);
        return;
    }
    rq.q = pq;
    srch_index *ix = api_snapshot(index, &e);
    srch_result res;
    if (!ix || srch_search(ix, &rq, &res, &e)) {
        srch_index_close(ix);
        srch_query_free(pq);
        json_decref(incl);
        api_seg_error(r, &e);
        return;
    }
    double took = ms_since(&t0);
    char head[128];
    snprintf(head, sizeof head, "{\"took_ms\":%.3f,\"total\":%llu,\"hits\":[", took, (unsigned long long)res.total);
    api_put_s(&r->body, head);
    for (size_t i = 0; i < res.nhits; i++) {
        const srch_hit *h = &res.hits[i];
        char ts[40];
        seg_time_format(h->time, ts);
        api_put_s(&r->body, i ? ",{\"_id\":" : "{\"_id\":");
        api_put_jstr(&r->body, h->id, h->id_len);
        api_put_s(&r->body, ",\"_time\":\"");
        api_put_s(&r->body, ts);
        api_put_s(&r->body, "\",\"_source\":");
        size_t mark = r->body.n;
        if (!incl || api_filter_source(h->json, h->json_len, incl, NULL, &r->body) < 0) {
            r->body.n = mark;
            seg_buf_put(&r->body, h->json, h->json_len); /* the event as sent */
        }
        api_put_s(&r->body, "}");
    }
    json_decref(incl);
    api_put_s(&r->body, "],\"cursor\":");
    if (res.cursor)
        api_put_jstr(&r->body, res.cursor, strlen(res.cursor));
    else
        api_put_s(&r->body, "null");
    api_put_partial(&r->body, &res.stats);
    api_note_failed(&res.stats, "search");
    api_put_s(&r->body, "}");
    srch_result_free(&res);
    srch_index_close(ix);
    srch_query_free(pq);
    __atomic_add_fetch(&srv.searches, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&srv.search_ns, (uint64_t)(took * 1e6), __ATOMIC_RELAXED);
    for (int k = 0; k < 12; k++)
        if (took <= hist_bounds_ms[k]) {
            __atomic_add_fetch(&srv.search_hist[k], 1, __ATOMIC_RELAXED);
            break;
        }
}

static void stats_json(seg_buf *b, const char *index, srch_index *ix)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", srv.data, index);
    api_stats_json(b, ix, dir);
}

void api_index_stats(seg_buf *b, const char *index, srch_index *ix) { stats_json(b, index, ix); }

static int name_cmp(const void *a, const void *b) { return strcmp(a, b); }

size_t api_index_names(char (*names)[72], size_t max)
{
    pthread_mutex_lock(&srv.mu);
    size_t n = srv.nix < max ? srv.nix : max;
    for (size_t i = 0; i < n; i++)
        memcpy(names[i], srv.ix[i].name, 72);
    pthread_mutex_unlock(&srv.mu);
    qsort(names, n, 72, name_cmp);
    return n;
}

int api_index_exists(const char *index)
{
    seg_err e = {0};
    return idx_name_valid(index) && index_get(index, 0, &e) != NULL;
}

int api_index_create(const char *index, seg_err *e) { return index_get(index, 1, e) ? SEG_OK : e->code; }

size_t api_max_body(void) { return srv.max_body; }

static void do_aggregate(reply *r, const char *index, const char *body, size_t n)
{
    seg_err e = {0};
    srch_index *ix = api_snapshot(index, &e);
    if (!ix) {
        api_seg_error(r, &e);
        return;
    }
    int slot = api_tok_take();
    if (slot < 0) {
        srch_index_close(ix);
        api_error(r, 503, "overloaded", "too many concurrent searches");
        r->retry_after = "1";
        return;
    }
    srch_stats st;
    if (api_aggregate(ix, srv.qtok[slot], body, n, &r->body, &st, &e)) {
        r->body.n = 0;
        api_seg_error(r, &e);
    } else {
        api_note_failed(&st, "aggregate");
    }
    api_tok_give(slot);
    srch_index_close(ix);
}

static void do_stats(reply *r, const char *index)
{
    seg_err e = {0};
    srch_index *ix = api_snapshot(index, &e);
    if (!ix) {
        api_seg_error(r, &e);
        return;
    }
    stats_json(&r->body, index, ix);
    srch_index_close(ix);
}

static void put_time_fields(seg_buf *b, const char *index);

static void do_fields(reply *r, const char *index)
{
    seg_err e = {0};
    srch_index *ix = api_snapshot(index, &e);
    if (!ix) {
        api_seg_error(r, &e);
        return;
    }
    api_put_s(&r->body, "{\"fields\":");
    api_fields_json(&r->body, ix);
    api_put_s(&r->body, ",");
    srch_index_close(ix);
    put_time_fields(&r->body, index);
    api_put_s(&r->body, "}");
}

/* "time_field":["F",...,"@timestamp","timestamp","time","ts"]: every field
 * an event of index is timed by, in the order tried (the index's own,
 * then the built-in ones). */
static void put_time_fields(seg_buf *b, const char *index)
{
    seg_err e = {0};
    idx_writer *w = index_get(index, 0, &e);
    char tf[1200] = "";
    if (w)
        idx_time_fields(w, tf, sizeof tf);
    api_put_s(b, "\"time_field\":");
    api_time_fields_json(b, tf);
}

/* GET /api/v1/{index}: its settings; PUT: sets them (the index is created
 * when new).  Body: {"time_field":"F" or ["F","G"]}. */
static void do_index(reply *r, const char *method, const char *index, const char *body, size_t n)
{
    seg_err e = {0};
    if (!strcmp(method, "PUT")) {
        json_error_t je;
        json_t *j = n ? json_loadb(body, n, 0, &je) : json_object();
        if (!j || !json_is_object(j)) {
            json_decref(j);
            return api_error(r, 400, "bad_request", "the body must be a JSON object: {\"time_field\":\"F\"}");
        }
        static const char *const allowed[] = {"time_field", NULL};
        const char *bad = api_unknown_key(j, allowed);
        if (bad) {
            char m[300];
            snprintf(m, sizeof m, "unknown key '%.100s' (known: time_field)", bad);
            json_decref(j);
            return api_error(r, 400, "bad_request", m);
        }
        json_t *tf = json_object_get(j, "time_field");
        char csv[1200] = "";
        size_t at = 0;
        int okv = 1;
        if (json_is_string(tf)) {
            snprintf(csv, sizeof csv, "%s", json_string_value(tf));
        } else if (json_is_array(tf) && json_array_size(tf)) {
            size_t i;
            json_t *x;
            json_array_foreach(tf, i, x) {
                if (!json_is_string(x) || strchr(json_string_value(x), ','))
                    okv = 0;
                else if (at < sizeof csv)
                    at += (size_t)snprintf(csv + at, sizeof csv - at, "%s%s", i ? "," : "", json_string_value(x));
            }
        } else if (tf) {
            okv = 0;
        }
        json_decref(j);
        if (!okv)
            return api_error(r, 400, "bad_request", "time_field: a field name or a non-empty array of them");
        idx_writer *w = index_get(index, 1, &e);
        if (!w)
            return api_seg_error(r, &e);
        if (*csv && idx_set_time_fields(w, csv, &e))
            return e.code == SEG_EINVAL ? api_error(r, 400, "bad_request", e.msg) : api_seg_error(r, &e);
        api_put_s(&r->body, "{\"acknowledged\":true,\"index\":");
    } else {
        if (!index_get(index, 0, &e))
            return api_seg_error(r, &e);
        api_put_s(&r->body, "{\"index\":");
    }
    api_put_jstr(&r->body, index, strlen(index));
    api_put_s(&r->body, ",");
    put_time_fields(&r->body, index);
    api_put_s(&r->body, "}");
}

static void do_indexes(reply *r)
{
    api_put_s(&r->body, "{\"indexes\":[");
    pthread_mutex_lock(&srv.mu);
    size_t n = srv.nix;
    char names[MAX_INDEXES][72];
    for (size_t i = 0; i < n; i++)
        memcpy(names[i], srv.ix[i].name, 72);
    pthread_mutex_unlock(&srv.mu);
    for (size_t i = 0; i < n; i++) {
        seg_err e = {0};
        srch_index *ix = api_snapshot(names[i], &e);
        if (!ix)
            continue;
        api_put_s(&r->body, i ? ",{\"name\":" : "{\"name\":");
        api_put_jstr(&r->body, names[i], strlen(names[i]));
        api_put_s(&r->body, ",\"stats\":");
        stats_json(&r->body, names[i], ix);
        api_put_s(&r->body, "}");
        srch_index_close(ix);
    }
    api_put_s(&r->body, "]}");
}

static void metric(seg_buf *b, const char *name, const char *type, const char *help, const char *labels,
                   double v)
{
    char s[512];
    if (type) {
        snprintf(s, sizeof s, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        api_put_s(b, s);
    }
    snprintf(s, sizeof s, "%s%s %.17g\n", name, labels ? labels : "", v);
    api_put_s(b, s);
}

static size_t writers(idx_writer **w, char (*names)[72]);

/* GET /health: {"status":"ok"}, or "degraded" (still 200: searches are
 * answered) with the indexes that refuse ingest and why. */
static void do_health(reply *r)
{
    idx_writer *w[MAX_INDEXES];
    char names[MAX_INDEXES][72];
    size_t n = writers(w, names), nb = 0;
    seg_buf *b = &r->body;
    for (size_t i = 0; i < n; i++) {
        idx_metrics m;
        idx_get_metrics(w[i], &m);
        if (m.blocked == IDX_BLOCK_NONE)
            continue;
        api_put_s(b, nb++ ? "," : "{\"status\":\"degraded\",\"ingest\":\"refused\",\"indexes\":[");
        char t[512];
        if (m.blocked == IDX_BLOCK_LOW_SPACE)
            snprintf(t, sizeof t, ",\"reason\":\"low_space\",\"free_bytes\":%llu,\"min_free_bytes\":%llu}",
                     (unsigned long long)m.disk_free, (unsigned long long)m.min_free);
        else
            snprintf(t, sizeof t, ",\"reason\":\"wal_failed\",\"error\":\"%s\",\"free_bytes\":%llu}",
                     strerror(m.wal_errno ? m.wal_errno : EIO), (unsigned long long)m.disk_free);
        api_put_s(b, "{\"index\":");
        api_put_jstr(b, names[i], strlen(names[i]));
        api_put_s(b, t);
    }
    api_put_s(b, nb ? "]}" : "{\"status\":\"ok\"}");
}

static void do_metrics(reply *r)
{
    seg_buf *b = &r->body;
    r->ctype = "text/plain; version=0.0.4";
    pthread_mutex_lock(&srv.mu);
    size_t n = srv.nix;
    idx_metrics m[MAX_INDEXES];
    char names[MAX_INDEXES][72];
    int tails[MAX_INDEXES];
    for (size_t i = 0; i < n; i++) {
        idx_get_metrics(srv.ix[i].w, &m[i]);
        memcpy(names[i], srv.ix[i].name, 72);
        tails[i] = api_hub_count(srv.ix[i].hub);
    }
    pthread_mutex_unlock(&srv.mu);
    static const struct {
        const char *name, *type, *help;
        int field;
    } per[] = {
        {"logdex_events_ingested_total", "counter", "Events accepted.", 0},
        {"logdex_events_rejected_total", "counter", "Lines rejected.", 1},
        {"logdex_events_duplicate_total", "counter", "Events not stored again (same _id).", 2},
        {"logdex_bytes_ingested_total", "counter", "Bytes of NDJSON received.", 3},
        {"logdex_wal_bytes_total", "counter", "Bytes appended to write-ahead logs.", 4},
        {"logdex_wal_fsyncs_total", "counter", "fdatasync calls on write-ahead logs.", 5},
        {"logdex_wal_fsync_seconds_total", "counter", "Time in write-ahead log fdatasync.", 6},
        {"logdex_buffer_bytes", "gauge", "Events buffered, not yet in segments.", 7},
        {"logdex_segments", "gauge", "Segments in the manifest.", 8},
        {"logdex_tail_subscribers", "gauge", "Live tail streams open.", 9},
        {"logdex_segment_bytes", "gauge", "Bytes of the segments in the manifest.", 10},
        {"logdex_merges_total", "counter", "Merges done.", 11},
        {"logdex_merge_input_segments_total", "counter", "Segments merged into others.", 12},
        {"logdex_merge_bytes_read_total", "counter", "Bytes of merge inputs.", 13},
        {"logdex_merge_bytes_written_total", "counter", "Bytes of merge outputs.", 14},
        {"logdex_merge_duplicates_removed_total", "counter", "Events with a repeated _id dropped by merges.", 15},
        {"logdex_retention_deleted_segments_total", "counter", "Segments deleted by --retention or --max-disk.", 16},
        {"logdex_retention_deleted_events_total", "counter", "Events deleted by --retention or --max-disk.", 17},
        {"logdex_retention_deleted_bytes_total", "counter", "Bytes deleted by --retention or --max-disk.", 18},
        {"logdex_ingest_busy_total", "counter", "Ingests refused with 429: buffers full while a flush was running.", 19},
        {"logdex_merge_rewrites_total", "counter", "Of the merges: one settled segment rewritten compact.", 20},
        {"logdex_flush_slices_total", "counter", "Segments flushed as a time slice of a large bucket (shared among builders).", 21},
        {"logdex_flush_failures_total", "counter", "Flushes that failed (out of memory, disk full); each is retried, its events kept.", 22},
        {"logdex_ingest_blocked", "gauge", "1 while ingest is refused: 507/503 (disk under --min-free, or the write-ahead log failed and is recovering).", 23},
        {"logdex_disk_free_bytes", "gauge", "Free bytes on the index directory's filesystem (last check).", 24},
        {"logdex_disk_min_free_bytes", "gauge", "The --min-free watermark for that filesystem (0: none).", 25},
        {"logdex_ingest_refused_low_space_total", "counter", "Ingests refused: free space under --min-free.", 26},
        {"logdex_ingest_refused_wal_total", "counter", "Ingests refused: the write-ahead log failed, not recovered yet.", 27},
        {"logdex_wal_failures_total", "counter", "Write-ahead log writes or syncs that failed (disk full, I/O error).", 28},
        {"logdex_wal_recoveries_total", "counter", "Fresh write-ahead logs started after a failure.", 29},
        {"logdex_wal_replay_torn_total", "counter", "Torn log tails dropped at start (never acknowledged).", 30},
        {"logdex_wal_replay_torn_bytes_total", "counter", "Bytes of those torn tails.", 31},
        {"logdex_wal_replay_damaged_total", "counter", "Damaged stretches inside a log found at start (the file is kept aside).", 32},
        {"logdex_wal_replay_damaged_bytes_total", "counter", "Bytes of those damaged stretches (their events are lost).", 33},
    };
    for (size_t k = 0; k < sizeof per / sizeof *per; k++) {
        for (size_t i = 0; i < n; i++) {
            double v = 0;
            switch (per[k].field) {
            case 0: v = (double)m[i].counts.accepted; break;
            case 1: v = (double)m[i].counts.rejected; break;
            case 2: v = (double)m[i].counts.duplicates; break;
            case 3: v = (double)m[i].counts.bytes; break;
            case 4: v = (double)m[i].wal_bytes; break;
            case 5: v = (double)m[i].wal_fsyncs; break;
            case 6: v = (double)m[i].wal_fsync_ns / 1e9; break;
            case 7: v = (double)m[i].buffered_bytes; break;
            case 8: v = (double)m[i].segments; break;
            case 9: v = (double)tails[i]; break;
            case 10: v = (double)m[i].segment_bytes; break;
            case 11: v = (double)m[i].life.merges; break;
            case 12: v = (double)m[i].life.merged_inputs; break;
            case 13: v = (double)m[i].life.merge_bytes_in; break;
            case 14: v = (double)m[i].life.merge_bytes_out; break;
            case 15: v = (double)m[i].life.merge_dups; break;
            case 21: v = (double)m[i].life.flush_slices; break;
            case 22: v = (double)m[i].life.flush_failures; break;
            case 16: v = (double)m[i].life.dropped_segments; break;
            case 17: v = (double)m[i].life.dropped_events; break;
            case 18: v = (double)m[i].life.dropped_bytes; break;
            case 19: v = (double)m[i].life.busy_refusals; break;
            case 23: v = m[i].blocked != IDX_BLOCK_NONE; break;
            case 24: v = (double)m[i].disk_free; break;
            case 25: v = (double)m[i].min_free; break;
            case 26: v = (double)m[i].life.space_refusals; break;
            case 27: v = (double)m[i].life.wal_refusals; break;
            case 28: v = (double)m[i].wal_failures; break;
            case 29: v = (double)m[i].wal_recoveries; break;
            case 30: v = (double)m[i].wal_torn; break;
            case 31: v = (double)m[i].wal_torn_bytes; break;
            case 32: v = (double)m[i].wal_damaged; break;
            case 33: v = (double)m[i].wal_damaged_bytes; break;
            default: v = (double)m[i].life.rewrites; break;
            }
            char l[128];
            snprintf(l, sizeof l, "{index=\"%s\"}", names[i]);
            metric(b, per[k].name, i == 0 ? per[k].type : NULL, per[k].help, l, v);
        }
    }
    metric(b, "logdex_http_requests_total", "counter", "HTTP requests.", NULL,
           (double)__atomic_load_n(&srv.requests, __ATOMIC_RELAXED));
    metric(b, "logdex_http_errors_total", "counter", "HTTP answers with an error status.", NULL,
           (double)__atomic_load_n(&srv.http_errors, __ATOMIC_RELAXED));
    metric(b, "logdex_open_connections", "gauge", "Open HTTP connections.", NULL,
           (double)__atomic_load_n(&srv.open_conns, __ATOMIC_RELAXED));
    {
        uint64_t hits, misses;
        size_t bytes;
        seg_block_cache_stats(&hits, &misses, &bytes);
        metric(b, "logdex_block_cache_hits_total", "counter", "Event blocks served decoded from the cache.", NULL,
               (double)hits);
        metric(b, "logdex_block_cache_misses_total", "counter", "Event blocks decoded (not in the cache).", NULL,
               (double)misses);
        metric(b, "logdex_block_cache_bytes", "gauge", "Bytes of decoded event blocks cached.", NULL, (double)bytes);
    }
    metric(b, "logdex_search_failed_segments_total", "counter",
           "Corrupt segments left out of search answers (each answer says so under \"partial\").", NULL,
           (double)__atomic_load_n(&srv.failed_segments, __ATOMIC_RELAXED));
    api_put_s(b, "# HELP logdex_search_seconds Search latency.\n# TYPE logdex_search_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < 12; k++) {
        cum += __atomic_load_n(&srv.search_hist[k], __ATOMIC_RELAXED);
        char l[64];
        if (k < 11)
            snprintf(l, sizeof l, "{le=\"%g\"}", hist_bounds_ms[k] / 1e3);
        else
            snprintf(l, sizeof l, "{le=\"+Inf\"}");
        metric(b, "logdex_search_seconds_bucket", NULL, NULL, l, (double)cum);
    }
    metric(b, "logdex_search_seconds_sum", NULL, NULL, NULL,
           (double)__atomic_load_n(&srv.search_ns, __ATOMIC_RELAXED) / 1e9);
    metric(b, "logdex_search_seconds_count", NULL, NULL, NULL,
           (double)__atomic_load_n(&srv.searches, __ATOMIC_RELAXED));
}

/* ------------------------------------------------------------------ */
/* Request plumbing                                                     */
/* ------------------------------------------------------------------ */

/* Inflates a gzip body into out, at most max bytes.  0 ok, 1 too large,
 * -1 undecodable. */
int api_gunzip(const uint8_t *in, size_t n, size_t max, seg_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    int rc = 0;
    for (;;) {
        if (seg_buf_reserve(out, 1 << 16)) {
            rc = -1;
            break;
        }
        z.next_out = out->p + out->n;
        z.avail_out = 1 << 16;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->n += (1 << 16) - z.avail_out;
        if (out->n > max) {
            rc = 1;
            break;
        }
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0)
                break;
            inflateReset(&z); /* concatenated members */
            continue;
        }
        if (zr != Z_OK) {
            rc = -1;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

/* Queues r.  The body's buffer passes to libmicrohttpd, which frees it
 * (seg_buf memory is malloc's): a large answer (a _bulk's items, a page
 * of hits) is not copied again. */
static enum MHD_Result send_reply(struct MHD_Connection *c, reply *r)
{
    struct MHD_Response *resp;
    if (r->body.p && r->body.n) {
        resp = MHD_create_response_from_buffer(r->body.n, r->body.p, MHD_RESPMEM_MUST_FREE);
        if (resp)
            memset(&r->body, 0, sizeof r->body);
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    if (r->es)
        MHD_add_response_header(resp, "X-Elastic-Product", "Elasticsearch");
    if (r->retry_after)
        MHD_add_response_header(resp, "Retry-After", r->retry_after);
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Rights of the request's bearer token: AUTH_READ | AUTH_WRITE for a
 * token without a mark, one of them for a token marked `read` or `write`,
 * 0 for a missing or unknown token.  Every configured token is compared,
 * each in constant time over its length, so the time taken does not tell
 * how much of a token matched. */
enum { AUTH_READ = 1, AUTH_WRITE = 2 };
static int auth_rights(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return 0;
    const char *t = h + 7;
    size_t a = strlen(t);
    int rights = 0;
    for (size_t k = 0; k < srv.ntokens; k++) {
        const char *tok = srv.tokens[k].tok;
        size_t b = strlen(tok);
        unsigned diff = (unsigned)(a ^ b);
        for (size_t i = 0; i < b; i++)
            diff |= (unsigned)(unsigned char)tok[i] ^ (unsigned)(unsigned char)(i < a ? t[i] : 0);
        rights |= diff == 0 ? srv.tokens[k].rights : 0;
    }
    return rights;
}

static int add_token(const char *tok, size_t n, int rights)
{
    if (n == 0 || n > 4096 || srv.ntokens == sizeof srv.tokens / sizeof *srv.tokens)
        return -1;
    char *d = seg_strndup(tok, n);
    if (!d)
        return -1;
    srv.tokens[srv.ntokens].tok = d;
    srv.tokens[srv.ntokens].rights = rights;
    srv.ntokens++;
    return 0;
}

/* A token file: one token a line, optionally followed by blanks and `read`
 * or `write` (default: both); blank lines and lines starting with # are
 * skipped.  Returns 0, or -1 with a message on standard error. */
static int load_tokens(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "logdex serve: --auth-tokens %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        size_t tl = strcspn(p, " \t");
        char *mark = p + tl;
        while (*mark == ' ' || *mark == '\t')
            mark++;
        int rights = !*mark ? AUTH_READ | AUTH_WRITE : !strcmp(mark, "read") ? AUTH_READ
                                                     : !strcmp(mark, "write") ? AUTH_WRITE : -1;
        if (rights < 0 || add_token(p, tl, rights)) {
            /* the line is not echoed: it holds a secret */
            fprintf(stderr, "logdex serve: --auth-tokens %s:%d: want 'TOKEN [read|write]' (at most %zu tokens)\n",
                    path, lineno, sizeof srv.tokens / sizeof *srv.tokens);
            rc = -1;
            break;
        }
    }
    fclose(f);
    if (rc == 0 && srv.ntokens == 0) {
        fprintf(stderr, "logdex serve: --auth-tokens %s: no token in the file\n", path);
        rc = -1;
    }
    return rc;
}

/* Routes a complete request.  A live tail sets *stream instead of r. */
static void route(struct MHD_Connection *c, const char *method, const char *url, req *q, reply *r,
                  struct MHD_Response **stream)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    /* GET /health and /metrics are logdex's; other methods on those paths
     * are an index of that name in the Elasticsearch API (PUT /metrics) */
    if (!strcmp(url, "/health") && get)
        return do_health(r);
    if (!strcmp(url, "/metrics") && get)
        return do_metrics(r);
    if (!strcmp(url, "/api/v1/indexes")) {
        static const char *const none[] = {NULL};
        if (!get)
            return api_error(r, 405, "method_not_allowed", "use GET");
        if (check_params(c, r, none))
            return;
        return do_indexes(r);
    }
    const char *p = url;
    if (strncmp(p, "/api/v1/", 8))
        return es_route(c, method, url, &q->body, q, r);
    p += 8;
    const char *slash = strchr(p, '/');
    if (!slash) { /* /api/v1/{index} */
        if (!idx_name_valid(p))
            return api_error(r, 400, "bad_request", "invalid index name: use [a-z0-9][a-z0-9_.-]{0,63}");
        if (!get && strcmp(method, "PUT"))
            return api_error(r, 405, "method_not_allowed", "use GET or PUT");
        static const char *const none[] = {NULL};
        if (check_params(c, r, none))
            return;
        return do_index(r, method, p, (const char *)q->body.p, q->body.n);
    }
    char index[80];
    size_t il = (size_t)(slash - p);
    if (il >= sizeof index)
        return api_error(r, 400, "bad_request", "invalid index name: use [a-z0-9][a-z0-9_.-]{0,63}");
    memcpy(index, p, il);
    index[il] = 0;
    const char *action = slash + 1;
    static const char *const known[] = {"ingest", "search", "stats", "fields", "aggregate", "tail"};
    int k = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(action, known[i]))
            k = i;
    if (k < 0)
        return api_error(r, 404, "not_found", "no such route");
    if (!idx_name_valid(index))
        return api_error(r, 400, "bad_request", "invalid index name: use [a-z0-9][a-z0-9_.-]{0,63}");
    if ((k == 0 || k == 4) ? !post : !get)
        return api_error(r, 405, "method_not_allowed", (k == 0 || k == 4) ? "use POST" : "use GET");
    /* the query parameters each route takes: any other is a 400 */
    static const char *const none[] = {NULL};
    static const char *const p_search[] = {"q", "start", "end", "limit", "cursor", "fields", "sort", NULL};
    static const char *const p_tail[] = {"q", "backfill", "heartbeat", NULL};
    static const char *const p_ingest[] = {"format", NULL};
    const char *const *params = k == 0 ? p_ingest : k == 1 ? p_search : k == 5 ? p_tail : none;
    if (check_params(c, r, params))
        return;
    switch (k) {
    case 0: {
        const char *fs = arg(c, "format");
        int fmt = !fs || !*fs || !strcmp(fs, "ndjson") || !strcmp(fs, "json") ? INGEST_NDJSON
                  : !strcmp(fs, "text")                                      ? INGEST_TEXT
                  : !strcmp(fs, "combined")                                  ? INGEST_COMBINED
                                                                             : -1;
        if (fmt < 0)
            return api_error(r, 400, "bad_request",
                             "format must be ndjson (the default: also one JSON array), text or combined");
        const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
        if (enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip"))) {
            seg_buf plain = {0};
            int g = api_gunzip(q->body.p, q->body.n, srv.max_body, &plain);
            if (g == 1) {
                seg_buf_free(&plain);
                return too_large(r, "the decoded body is larger than");
            }
            if (g < 0) {
                seg_buf_free(&plain);
                return api_error(r, 400, "bad_request", "the gzip body cannot be decoded");
            }
            do_ingest(r, q, index, (const char *)plain.p, plain.n, fmt);
            seg_buf_free(&plain);
            return;
        }
        if (enc && strcasecmp(enc, "identity"))
            return api_error(r, 415, "unsupported_encoding", "Content-Encoding must be gzip or identity");
        return do_ingest(r, q, index, (const char *)q->body.p, q->body.n, fmt);
    }
    case 1: return do_search(r, c, index);
    case 2: return do_stats(r, index);
    case 3: return do_fields(r, index);
    case 4: return do_aggregate(r, index, (const char *)q->body.p, q->body.n);
    default: *stream = do_tail(r, c, index); return;
    }
}


/* ------------------------------------------------------------------ */
/* Event loop (--http-mode events)                                      */
/*                                                                      */
/* libmicrohttpd runs an epoll loop on a pool of threads (one per core)   */
/* instead of a thread per connection.  A complete request is suspended  */
/* and handed to a worker thread (which may block: searches, stats);     */
/* the worker puts the answer in the request and resumes the connection, */
/* whose handler then queues it.  A small ingest runs on the loop's own   */
/* thread up to its log append (idx_ingest_start; a full buffer sends it  */
/* to a worker instead); then the committer thread syncs the log for     */
/* every ingest waiting (idx_ingest_finish: one fdatasync for all) and   */
/* resumes them together, so that a round of group commit costs a few    */
/* thread wake-ups, not two per request.                               */
/* Live tails never block a loop thread: with nothing to send, a stream  */
/* suspends its connection; events, the end, and a ticker thread (when a */
/* heartbeat is due, every 20 ms) resume it (api_tail.c).               */
/* ------------------------------------------------------------------ */

#define EV_WORKERS 16
#define EV_INLINE_MAX (64u * 1024) /* ingest bodies up to this run on the loop */

typedef struct ev_queue {
    req *head, *tail;
    pthread_cond_t cv;         /* signalled on a push */
} ev_queue;

static struct {
    pthread_mutex_t mu;        /* guards the queues, stop and inflight */
    ev_queue work, commit;
    int stop;
    pthread_t th[EV_WORKERS], committer, tick;
    int nth;
    int inflight;              /* requests suspended (both queues and running) */
} ev;

static void route(struct MHD_Connection *c, const char *method, const char *url, req *q, reply *r,
                  struct MHD_Response **stream);

static void ev_push(ev_queue *qu, req *q)
{
    pthread_mutex_lock(&ev.mu);
    q->next = NULL;
    if (qu->tail)
        qu->tail->next = q;
    else
        qu->head = q;
    qu->tail = q;
    pthread_cond_signal(&qu->cv);
    pthread_mutex_unlock(&ev.mu);
}

/* Waits for work on qu and takes one request (or, all: the whole list);
 * NULL once stopping and qu is empty (a queue is drained first). */
static req *ev_wait(ev_queue *qu, int all)
{
    pthread_mutex_lock(&ev.mu);
    while (!qu->head && !ev.stop)
        pthread_cond_wait(&qu->cv, &ev.mu);
    req *q = qu->head;
    if (q && all)
        qu->head = qu->tail = NULL;
    else if (q && !(qu->head = q->next))
        qu->tail = NULL;
    pthread_mutex_unlock(&ev.mu);
    return q;
}

/* The answer is in q: back to the loop. */
static void ev_resume(req *q)
{
    q->state = 2;
    pthread_mutex_lock(&ev.mu);
    ev.inflight--;
    pthread_mutex_unlock(&ev.mu);
    MHD_resume_connection(q->c);
}

/* Works on q (any thread): its answer, or a hand-off to the committer. */
static void ev_work(req *q)
{
    q->pending = 0;
    route(q->c, q->method, q->url, q, &q->r, &q->stream);
    seg_failpoint("http-after-route"); /* t_http: a slow worker here */
    if (q->pending == 1) {
        /* the committer answers; q is not touched here after the push
         * (it may be resumed, answered and freed before push returns) */
        ev_push(&ev.commit, q);
        return;
    }
    if (q->pending == -1) {
        /* an ingest that would wait for buffer room: a worker does it */
        q->pending = 0;
        q->inline_ok = 0;
        q->r.body.n = 0;
        ev_push(&ev.work, q);
        return;
    }
    ev_resume(q);
}

static void *ev_worker(void *arg)
{
    (void)arg;
    for (req *q; (q = ev_wait(&ev.work, 0));)
        ev_work(q);
    return NULL;
}

/* Syncs the log for every ingest queued (the first finish of an index
 * does the fdatasync, the others find their record covered) and answers
 * them all. */
static void *ev_committer(void *arg)
{
    (void)arg;
    for (req *list; (list = ev_wait(&ev.commit, 1));)
        for (req *q = list, *next; q; q = next) {
            next = q->next;
            seg_err e = {0};
            int rc = idx_ingest_finish(q->w, &q->b, &e);
            if (q->answer) {
                if (rc == SEG_OK)
                    publish(q->hub, &q->b);
                q->answer(q->actx, &q->b, rc, &e, &q->r);
                idx_batch_free(&q->b);
                q->release(q->actx);
                q->answer = NULL;
                q->actx = NULL;
            } else {
                ingest_answer(&q->r, q->hub, &q->b, rc, &e);
            }
            ev_resume(q);
        }
    return NULL;
}

/* Live tails' heartbeats: a suspended stream is resumed when one is due. */
static void *ev_ticker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&ev.mu);
        int stop = ev.stop;
        pthread_mutex_unlock(&ev.mu);
        if (stop)
            break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&srv.mu);
        for (size_t i = 0; i < srv.nix; i++)
            api_hub_tick(srv.ix[i].hub);
        pthread_mutex_unlock(&srv.mu);
    }
    return NULL;
}

/* Takes a complete request off the loop: 1 when suspended (answer later). */
static int ev_dispatch(struct MHD_Connection *c, const char *method, const char *url, req *q)
{
    int ingest = is_ingest(method, url) || es_is_bulk(method, url);
    q->state = 1;
    q->c = c;
    q->method = method;
    q->url = url;
    q->inline_ok = ingest && q->body.n <= EV_INLINE_MAX;
    pthread_mutex_lock(&ev.mu);
    ev.inflight++;
    pthread_mutex_unlock(&ev.mu);
    MHD_suspend_connection(c);
    if (q->inline_ok) {
        ev_work(q);
        return 1;
    }
    ev_push(&ev.work, q);
    return 1;
}

static void ev_start(void)
{
    pthread_mutex_init(&ev.mu, NULL);
    pthread_cond_init(&ev.work.cv, NULL);
    pthread_cond_init(&ev.commit.cv, NULL);
    for (int i = 0; i < EV_WORKERS; i++)
        if (pthread_create(&ev.th[ev.nth], NULL, ev_worker, NULL) == 0)
            ev.nth++;
    pthread_create(&ev.committer, NULL, ev_committer, NULL);
    pthread_create(&ev.tick, NULL, ev_ticker, NULL);
}

/* After the loop has stopped taking requests: waits for those in flight,
 * then ends the threads. */
static void ev_stop(void)
{
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&ev.mu);
        int busy = ev.inflight;
        pthread_mutex_unlock(&ev.mu);
        if (!busy)
            break;
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&ev.mu);
    ev.stop = 1;
    pthread_cond_broadcast(&ev.work.cv);
    pthread_cond_broadcast(&ev.commit.cv);
    pthread_mutex_unlock(&ev.mu);
    for (int i = 0; i < ev.nth; i++)
        pthread_join(ev.th[i], NULL);
    pthread_join(ev.committer, NULL);
    pthread_join(ev.tick, NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    (void)cls;
    (void)version;
    req *q = *ctx;
    if (!q) {
        q = seg_calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &q->t0);
        *ctx = q;
        __atomic_add_fetch(&srv.requests, 1, __ATOMIC_RELAXED);
        reply r = {200, {0}, NULL, NULL, 0};
        int refuse = 0;
        int need = is_ingest(method, url) || es_is_write(method, url) ? AUTH_WRITE : AUTH_READ;
        int health = !strcmp(url, "/health") && (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
        int rights = srv.ntokens && !health ? auth_rights(c) : AUTH_READ | AUTH_WRITE;
        if (!rights) {
            api_error(&r, 401, "unauthorized", "missing or wrong 'Authorization: Bearer' token");
            refuse = 1;
        } else if (!(rights & need)) {
            api_error(&r, 403, "forbidden",
                        need == AUTH_WRITE ? "this token may only read" : "this token may only ingest");
            refuse = 1;
        } else {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > srv.max_body) {
                too_large(&r, "the body is larger than");
                refuse = 1;
            }
        }
        if (refuse) {
            /* answered before reading the body (also for Expect: 100-continue) */
            q->refused = 1;
            enum MHD_Result ret = send_reply(c, &r);
            if (!srv.quiet)
                fprintf(stderr, "%s %s %u %.1fms\n", method, url, r.status, ms_since(&q->t0));
            seg_buf_free(&r.body);
            return ret;
        }
        return MHD_YES;
    }
    if (q->refused) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->body.n == 0 && !q->body.cap) {
            /* the whole body at once: no doubling copies */
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
            if (want && want <= srv.max_body)
                seg_buf_reserve(&q->body, (size_t)want);
        }
        if (q->body.n + *upload_size > srv.max_body)
            q->too_large = 1;
        else
            seg_buf_put(&q->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    reply r = {200, {0}, NULL, NULL, 0};
    struct MHD_Response *stream = NULL;
    if (q->state == 2) {
        /* resumed: a worker or the committer made the answer */
        r = q->r;
        memset(&q->r, 0, sizeof q->r);
        stream = q->stream;
        q->stream = NULL;
    } else if (q->state == 1) {
        return MHD_YES; /* (not expected: a suspended request is not called) */
    } else if (srv.event_loop && !q->too_large && !q->body.oom && strcmp(url, "/health")) {
        q->r = r;
        ev_dispatch(c, method, url, q);
        return MHD_YES;
    } else if (q->too_large)
        too_large(&r, "the body is larger than");
    else if (q->body.oom)
        api_error(&r, 503, "overloaded", "out of memory"), r.retry_after = "1";
    else
        route(c, method, url, q, &r, &stream);
    if (stream) {
        enum MHD_Result ret = MHD_queue_response(c, 200, stream);
        MHD_destroy_response(stream);
        if (!srv.quiet)
            fprintf(stderr, "%s %s 200 (stream)\n", method, url);
        seg_buf_free(&r.body);
        return ret;
    }
    if (r.body.oom) {
        seg_buf_free(&r.body);
        r = (reply){503, {0}, NULL, "1", 0};
        api_error(&r, 503, "overloaded", "out of memory");
    }
    enum MHD_Result ret = send_reply(c, &r);
    if (!srv.quiet)
        fprintf(stderr, "%s %s %u %.1fms\n", method, url, r.status, ms_since(&q->t0));
    seg_buf_free(&r.body);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    req *q = *ctx;
    if (q) {
        /* an answer made on another thread that the connection, closed
         * meanwhile, never took (event-loop mode) */
        if (q->stream)
            MHD_destroy_response(q->stream);
        seg_buf_free(&q->r.body);
        idx_batch_free(&q->b);
        if (q->release && q->actx)
            q->release(q->actx);
        seg_buf_free(&q->body);
        seg_free(q);
        *ctx = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **sock_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)sock_ctx;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        __atomic_add_fetch(&srv.open_conns, 1, __ATOMIC_RELAXED);
        /* answers go out at once (no Nagle delay on keep-alive) */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            int one = 1;
            setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    } else {
        __atomic_sub_fetch(&srv.open_conns, 1, __ATOMIC_RELAXED);
    }
}

static void retention_pass(void);
static size_t writers(idx_writer **w, char (*names)[72]);

static void *ticker(void *arg)
{
    (void)arg;
    unsigned rounds = 0;
    while (!__atomic_load_n(&srv.stopping, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
        idx_writer *w[MAX_INDEXES];
        size_t n = writers(w, NULL);
        for (size_t i = 0; i < n; i++) {
            seg_err e = {0};
            if (idx_tick(w[i], &e)) {
                char b[1024];
                fprintf(stderr, "logdex serve: background flush: %s\n", seg_err_str(&e, b, sizeof b));
            }
        }
        if ((srv.retention_ns > 0 || srv.max_disk > 0) && ++rounds % 4 == 0)
            retention_pass();
    }
    return NULL;
}

/* The live writers (and names) at this moment: indexes are never closed
 * while the server runs, so the pointers stay valid. */
static size_t writers(idx_writer **w, char (*names)[72])
{
    pthread_mutex_lock(&srv.mu);
    size_t n = srv.nix;
    for (size_t i = 0; i < n; i++) {
        w[i] = srv.ix[i].w;
        if (names)
            memcpy(names[i], srv.ix[i].name, 72);
    }
    pthread_mutex_unlock(&srv.mu);
    return n;
}

/* The merge thread: one merge at a time over every index, at a lower CPU
 * priority than ingest and search (its throttle: at nice 5 the kernel
 * gives it about a third of a request thread's share when the cores are
 * busy; at nice 10 merges starved under saturated ingest and segments
 * piled up). */
static void *merger(void *arg)
{
    (void)arg;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), srv.merge_nice);
    static idx_writer *w[MAX_INDEXES];
    static char names[MAX_INDEXES][72];
    while (!__atomic_load_n(&srv.stopping, __ATOMIC_ACQUIRE)) {
        size_t n = writers(w, names);
        int did = 0;
        for (size_t i = 0; i < n && !__atomic_load_n(&srv.stopping, __ATOMIC_ACQUIRE); i++) {
            seg_err e = {0};
            idx_merge_info mi;
            char b[1024], ts[40];
            if (idx_merge_step(w[i], 0, &mi, &e)) {
                fprintf(stderr, "logdex serve: merge in %s: %s\n", names[i], seg_err_str(&e, b, sizeof b));
                continue;
            }
            if (!mi.inputs)
                continue;
            did = 1;
            if (!srv.quiet) {
                seg_time_format(mi.bucket, ts);
                if (mi.inputs == 1)
                    fprintf(stderr, "rewrite %s bucket %s: %.1f MB -> %.1f MB compact, %u events, %.0f ms\n", names[i],
                            ts, (double)mi.in_bytes / 1e6, (double)mi.out_bytes / 1e6, mi.docs, mi.ms);
                else
                    fprintf(stderr,
                            "merge %s bucket %s: %u segments (%.1f MB) -> 1%s (%.1f MB, %u events, %llu duplicates "
                            "removed) %.0f ms\n",
                            names[i], ts, mi.inputs, (double)mi.in_bytes / 1e6, mi.compact ? " compact" : "",
                            (double)mi.out_bytes / 1e6, mi.docs, (unsigned long long)mi.dups, mi.ms);
            }
        }
        if (!did)
            for (int k = 0; k < 5 && !__atomic_load_n(&srv.stopping, __ATOMIC_ACQUIRE); k++) {
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
            }
    }
    return NULL;
}

static void retention_pass(void)
{
    idx_writer *w[MAX_INDEXES];
    size_t n = writers(w, NULL);
    idx_drop_info d = {0};
    seg_err e = {0};
    char b[1024];
    if (idx_retain(w, n, seg_time_now(), srv.retention_ns, srv.max_disk, &d, &e))
        fprintf(stderr, "logdex serve: retention: %s\n", seg_err_str(&e, b, sizeof b));
    if (d.segments && !srv.quiet)
        fprintf(stderr, "retention: deleted %llu buckets (%llu segments, %llu events, %.1f MB)\n",
                (unsigned long long)d.buckets, (unsigned long long)d.segments, (unsigned long long)d.events,
                (double)d.bytes / 1e6);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    seg_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        seg_buf_put(&b, chunk, k);
    fclose(f);
    seg_buf_put_u8(&b, 0);
    return b.oom ? NULL : (char *)b.p;
}

int api_serve(int argc, char **argv)
{
    const char *data = "./data", *listen = "127.0.0.1:9200", *cert = NULL, *key = NULL;
    memset(&srv, 0, sizeof srv);
    idx_opts_default(&srv.opts);
    srv.opts.wal = 1;
    srv.max_body = 64u << 20;
    srv.max_tails = 256;
    srv.idle_timeout = 60;
    {
        /* the default mode may come from the environment (the test suite
         * runs the HTTP tests in both) */
        const char *m = getenv("LOGDEX_HTTP_MODE");
        srv.event_loop = !(m && !strcmp(m, "threads"));
    }
    srv.merge_nice = 5;
    static const struct option opts[] = {
        {"data", 1, 0, 'd'},      {"listen", 1, 0, 'l'},    {"max-body", 1, 0, 'm'}, {"auth-token", 1, 0, 'a'}, {"auth-tokens", 1, 0, 'A'},
        {"tls-cert", 1, 0, 'c'},  {"tls-key", 1, 0, 'k'},   {"buffer-mb", 1, 0, 'b'}, {"flush-age", 1, 0, 'g'},
        {"quiet", 0, 0, 'q'},     {"retention", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {"max-tails", 1, 0, 'T'},
        {"max-disk", 1, 0, 'D'},  {"min-free", 1, 0, 'Z'}, {"time-field", 1, 0, 'Y'}, {"max-future", 1, 0, 'F'}, {"segment-target-mb", 1, 0, 'S'},
        {"merge-settle", 1, 0, 'M'}, {"no-merge", 0, 0, 'N'}, {"merge-nice", 1, 0, 'P'}, {"block-cache-mb", 1, 0, 'C'}, {"idle-timeout", 1, 0, 'I'}, {"ingest-wait", 1, 0, 'W'}, {"http-mode", 1, 0, 'H'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'm': srv.max_body = (size_t)strtoull(optarg, NULL, 10); break;
        case 'a':
            if (add_token(optarg, strlen(optarg), AUTH_READ | AUTH_WRITE)) {
                fprintf(stderr, "logdex serve: bad --auth-token\n");
                return 2;
            }
            break;
        case 'A':
            if (load_tokens(optarg))
                return 2;
            break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'Y': srv.opts.default_time_fields = optarg; break;
        case 'Z': {
            size_t l = strlen(optarg);
            char *end;
            if (l > 1 && optarg[l - 1] == '%') {
                double v = strtod(optarg, &end);
                if (end != optarg + l - 1 || !(v >= 0 && v < 100)) {
                    fprintf(stderr, "logdex serve: bad --min-free '%s' (e.g. 500M, 2G, 5%%, 0)\n", optarg);
                    return 2;
                }
                srv.opts.min_free_bytes = 0;
                srv.opts.min_free_permille = (uint32_t)(v * 10 + 0.5);
            } else {
                if (api_parse_bytes(optarg, &srv.opts.min_free_bytes)) {
                    fprintf(stderr, "logdex serve: bad --min-free '%s' (e.g. 500M, 2G, 5%%, 0)\n", optarg);
                    return 2;
                }
                srv.opts.min_free_permille = 0;
            }
            break;
        }
        case 'b': srv.opts.buffer_bytes = (size_t)strtoull(optarg, NULL, 10) << 20; break;
        case 'g': srv.opts.max_age_ns = (int64_t)(atof(optarg) * 1e9); break;
        case 'q': srv.quiet = 1; break;
        case 'T': srv.max_tails = atoi(optarg); break;
        case 'r':
            if (api_parse_duration(optarg, &srv.retention_ns) || srv.retention_ns <= 0) {
                fprintf(stderr, "logdex serve: bad --retention '%s' (e.g. 12h, 7d)\n", optarg);
                return 2;
            }
            srv.opts.retention_ns = srv.retention_ns;
            break;
        case 'F':
            if (!strcmp(optarg, "0"))
                srv.opts.max_future_ns = 0;
            else if (api_parse_duration(optarg, &srv.opts.max_future_ns)) {
                fprintf(stderr, "logdex serve: bad --max-future '%s' (e.g. 1h, 1d, 0)\n", optarg);
                return 2;
            }
            break;
        case 'D':
            if (api_parse_bytes(optarg, &srv.max_disk) || srv.max_disk == 0) {
                fprintf(stderr, "logdex serve: bad --max-disk '%s' (e.g. 500M, 20G)\n", optarg);
                return 2;
            }
            break;
        case 'S': srv.opts.segment_target = strtoull(optarg, NULL, 10) << 20; break;
        case 'M': srv.opts.settle_ns = (int64_t)(atof(optarg) * 1e9); break;
        case 'N': srv.no_merge = 1; break;
        case 'P': srv.merge_nice = atoi(optarg); break;
        case 'C': {
            long mb = atol(optarg);
            if (mb < 0 || mb > 1 << 20) {
                fprintf(stderr, "logdex serve: --block-cache-mb wants 0..1048576\n");
                return 2;
            }
            seg_block_cache_set((size_t)mb << 20);
            break;
        }
        case 'I': srv.idle_timeout = (unsigned)atoi(optarg); break;
        case 'H':
            if (strcmp(optarg, "events") && strcmp(optarg, "threads")) {
                fprintf(stderr, "logdex serve: --http-mode is 'threads' or 'events'\n");
                return 2;
            }
            srv.event_loop = !strcmp(optarg, "events");
            break;
        case 'W': srv.opts.ingest_wait_ns = (int64_t)(atof(optarg) * 1e9); break;
        case 'h': fputs(usage_serve, stdout); return 0;
        default: fputs(usage_serve, stderr); return 2;
        }
    }
    if (optind != argc || srv.max_body == 0 || (!cert) != (!key)) {
        fputs(usage_serve, stderr);
        return 2;
    }
    if (srv.opts.buffer_bytes == 0)
        srv.opts.buffer_bytes = 1u << 20;
    /* address */
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        fprintf(stderr, "logdex serve: --listen wants HOST:PORT\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    int port = atoi(colon + 1);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || port < 0 || port > 65535) {
        fprintf(stderr, "logdex serve: bad --listen address '%s' (IPv4 HOST:PORT)\n", listen);
        return 2;
    }
    if (strcmp(host, "127.0.0.1") && !srv.ntokens)
        fprintf(stderr, "logdex serve: warning: listening on %s without --auth-token: anyone who can reach it can read and write the logs\n", host);
    snprintf(srv.data, sizeof srv.data, "%s", data);
    seg_err e = {0};
    if (seg_mkdir_p(data, &e)) {
        char b[1024];
        fprintf(stderr, "logdex serve: %s\n", seg_err_str(&e, b, sizeof b));
        return 1;
    }
    pthread_mutex_init(&srv.mu, NULL);
    pthread_mutex_init(&srv.tokmu, NULL);
    srv.pool = srch_pool_new(0);
    /* open every existing index: replays write-ahead logs */
    DIR *d = opendir(data);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!idx_name_valid(de->d_name))
            continue;
        seg_err oe = {0};
        if (!index_get(de->d_name, 0, &oe) && oe.code != SEG_ENOENT) {
            char b[1024];
            fprintf(stderr, "logdex serve: index %s: %s\n", de->d_name, seg_err_str(&oe, b, sizeof b));
            closedir(d);
            return 1;
        }
    }
    if (d)
        closedir(d);
    /* signals are taken by the main thread only */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    char *certs = NULL, *keys = NULL;
    /* a thread per connection: handlers may block (waiting for a shared
     * fsync, or for events on a live tail) without stalling others */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    unsigned pool = 1;
    if (srv.event_loop) {
        flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                MHD_USE_ERROR_LOG;
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        pool = nc > 1 ? (unsigned)(nc < 16 ? nc : 16) : 1;
        ev_start();
    }
    if (cert) {
        certs = slurp(cert);
        keys = slurp(key);
        if (!certs || !keys) {
            fprintf(stderr, "logdex serve: cannot read --tls-cert or --tls-key\n");
            return 1;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_Daemon *daemon = cert
        ? MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                           MHD_OPTION_CONNECTION_LIMIT, 1000u,
                           MHD_OPTION_CONNECTION_TIMEOUT, srv.idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY,
                           MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
                           on_connection, NULL, MHD_OPTION_HTTPS_MEM_CERT, certs, MHD_OPTION_HTTPS_MEM_KEY, keys,
                           srv.event_loop ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool, MHD_OPTION_END)
        : MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                           MHD_OPTION_CONNECTION_LIMIT, 1000u,
                           MHD_OPTION_CONNECTION_TIMEOUT, srv.idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY,
                           MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
                           on_connection, NULL, srv.event_loop ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
                           MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "logdex serve: cannot listen on %s: %s\n", listen, strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    pthread_t tick, merge;
    pthread_create(&tick, NULL, ticker, NULL);
    if (!srv.no_merge)
        pthread_create(&merge, NULL, merger, NULL);
    printf("logdex listening on http%s://%s:%u\n", cert ? "s" : "", host, di ? di->port : (unsigned)port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    if (!srv.quiet)
        fprintf(stderr, "logdex serve: signal %d: stopping\n", sig);
    /* stop accepting, end live tails, let requests in flight finish, stop */
    MHD_quiesce_daemon(daemon);
    pthread_mutex_lock(&srv.mu);
    for (size_t i = 0; i < srv.nix; i++)
        api_hub_stop(srv.ix[i].hub);
    pthread_mutex_unlock(&srv.mu);
    for (int i = 0; i < 300; i++) {
        const union MHD_DaemonInfo *ci = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!ci || ci->num_connections == 0)
            break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (srv.event_loop)
        ev_stop(); /* requests in flight answered (their connections resumed) */
    MHD_stop_daemon(daemon);
    __atomic_store_n(&srv.stopping, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < srv.nix; i++)
        idx_merge_cancel(srv.ix[i].w); /* a long merge must not hold up the exit */
    pthread_join(tick, NULL);
    if (!srv.no_merge)
        pthread_join(merge, NULL);
    int rc = 0;
    for (size_t i = 0; i < srv.nix; i++) {
        seg_err ce = {0};
        api_hub_free(srv.ix[i].hub);
        if (idx_close(srv.ix[i].w, &ce)) {
            char b[1024];
            fprintf(stderr, "logdex serve: index %s: %s\n", srv.ix[i].name, seg_err_str(&ce, b, sizeof b));
            rc = 1;
        }
    }
    srch_pool_free(srv.pool);
    for (int i = 0; i < 64; i++)
        seg_tok_free(srv.qtok[i]);
    free(certs);
    free(keys);
    return rc;
}
