/*
 * api_tail.c -- live tail: GET /api/v1/{index}/tail as Server-Sent Events.
 *
 * One hub per index.  After an ingest request's events are durable (its
 * write-ahead log record is fsynced), api_hub_publish() builds one small
 * in-memory segment of the accepted events, numbers them (the SSE `id:`,
 * increasing per index in ingest order) and runs every subscriber's query
 * over that segment with the searcher: the tokenization is shared by all
 * subscribers and the matching is exactly search's.  The segment is
 * partial: it indexes only what the subscribers' queries read (the fields
 * they name; every string field's tokens if a word has no field), and a
 * subscriber that needs more has the batch re-indexed fully first.  Matches are formatted
 * and appended to each subscriber's bounded queue; a subscriber whose queue
 * is full loses events and is told so (`event: dropped`).
 *
 * The hub keeps the last TAIL_WINDOW batches, so that a client that comes
 * back with Last-Event-ID gets what it missed while those are kept.
 *
 * Concurrency: hub->mu guards the subscriber list, the window and the
 * sequence; sub->mu guards a subscriber's queue (the MHD connection thread
 * of the subscriber waits on sub->cv).  Lock order: hub->mu, then sub->mu.
 */
#define _GNU_SOURCE
#include "api/api_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAIL_WINDOW 64                 /* batches kept for reconnects */
#define TAIL_QUEUE_BYTES (8u << 20)    /* per subscriber */

typedef struct wbatch {
    uint64_t first;                    /* seq of its first event */
    uint32_t n;
    seg_reader *seg;                   /* in-memory segment */
    seg_index_only have;               /* what seg indexes, unless full */
    int full;                          /* seg indexes everything */
    seg_builder *events;               /* the events, in ingest order */
    uint32_t *pos;                     /* doc -> position in ingest order */
} wbatch;

typedef struct sub sub;
struct sub {
    api_hub *hub;
    srch_query *q;
    seg_index_only need;               /* what q needs of a batch's segment */
    pthread_mutex_t mu;                /* guards everything below */
    pthread_cond_t cv;
    seg_buf queue;                     /* formatted SSE text not yet sent */
    size_t sent;                       /* bytes of queue already sent */
    uint64_t dropped;
    int done;
    char **seam;                       /* backfilled ids, not sent again live */
    size_t nseam;
    double heartbeat_s;
    struct MHD_Connection *conn;       /* non-blocking stream (see api_tail_open) */
    int suspended;                     /* conn suspended by the reader */
    int64_t next_ping_ns;              /* non-blocking: when a heartbeat is due */
    sub *next;
};

/* Under s->mu: something to send (or the end): wakes the stream. */
static void wake(sub *s)
{
    pthread_cond_broadcast(&s->cv);
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

struct api_hub {
    pthread_mutex_t mu;
    sub *subs;
    int nsubs;
    int stopping;
    uint64_t next_seq;                 /* seq of the next published event */
    wbatch win[TAIL_WINDOW];
    size_t nwin, winpos;
    int64_t last_sub_ns;               /* keep the window while tails come and go */
    seg_tok *tok;                      /* for rebuilding a batch fully (under mu) */
    seg_json *js;
};

api_hub *api_hub_new(void)
{
    api_hub *h = seg_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->next_seq = 1;
    return h;
}

static void wbatch_free(wbatch *b)
{
    seg_reader_unref(b->seg);
    srch_need_free(&b->have);
    seg_builder_free(b->events);
    seg_free(b->pos);
    memset(b, 0, sizeof *b);
}

void api_hub_free(api_hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < TAIL_WINDOW; i++)
        wbatch_free(&h->win[i]);
    seg_tok_free(h->tok);
    seg_json_free(h->js);
    pthread_mutex_destroy(&h->mu);
    seg_free(h);
}

int api_hub_count(api_hub *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->nsubs;
    pthread_mutex_unlock(&h->mu);
    return n;
}

int api_hub_wants_events(api_hub *h)
{
    pthread_mutex_lock(&h->mu);
    int want = h->nsubs > 0 || seg_time_now() - h->last_sub_ns < 60LL * 1000000000LL;
    pthread_mutex_unlock(&h->mu);
    return want;
}

void api_hub_stop(api_hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    for (sub *s = h->subs; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        wake(s);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

void api_hub_tick(api_hub *h)
{
    int64_t now = seg_time_now();
    pthread_mutex_lock(&h->mu);
    for (sub *s = h->subs; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        if (s->suspended && now >= s->next_ping_ns)
            wake(s);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&h->mu);
}


/* Appends one SSE event (seq 0: no id line). */
static void sse_event(seg_buf *b, uint64_t seq, int64_t t, const char *id, size_t il, const char *json, size_t jl)
{
    char head[64], ts[40];
    if (seq) {
        snprintf(head, sizeof head, "id: %llu\n", (unsigned long long)seq);
        api_put_s(b, head);
    }
    seg_time_format(t, ts);
    api_put_s(b, "data: {\"_id\":");
    api_put_jstr(b, id, il);
    api_put_s(b, ",\"_time\":\"");
    api_put_s(b, ts);
    api_put_s(b, "\",\"_source\":");
    seg_buf_put(b, json, jl); /* one line: NDJSON events have no newline */
    api_put_s(b, "}\n\n");
}

static int in_seam(const sub *s, const char *id, size_t n)
{
    for (size_t i = 0; i < s->nseam; i++)
        if (strlen(s->seam[i]) == n && !memcmp(s->seam[i], id, n))
            return 1;
    return 0;
}

static int u32cmp(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* The in-memory segment of a batch's events, indexing what `only` says
 * (NULL: everything), or NULL. */
static seg_reader *batch_segment(seg_builder *events, seg_tok *tok, seg_json *js, const seg_index_only *only)
{
    seg_buf mem = {0};
    seg_reader *r = NULL;
    seg_err e = {0};
    if (seg_builder_write_partial(events, tok, js, only, &mem, &e) ||
        seg_reader_open_mem("(tail batch)", mem.p, mem.n, &r, &e)) {
        if (!r)
            seg_buf_free(&mem);
        return NULL;
    }
    return r;
}

/* Makes b's segment index everything (a subscriber needs what the batch
 * was not indexed for: it came after the batch was published).  Called
 * with hub->mu held. */
static int wbatch_full(api_hub *h, wbatch *b)
{
    if (!h->tok)
        h->tok = seg_tok_new();
    if (!h->js)
        h->js = seg_json_new();
    seg_reader *r = h->tok && h->js ? batch_segment(b->events, h->tok, h->js, NULL) : NULL;
    if (!r)
        return -1;
    seg_reader_unref(b->seg);
    b->seg = r;
    b->full = 1;
    return 0;
}

/* Queues the events of batch b that match s's query and come after seq
 * `after`, in ingest order.  Called with hub->mu held. */
static void deliver(sub *s, wbatch *b, uint64_t after)
{
    uint32_t *docs;
    size_t nd;
    seg_err e = {0};
    if (!b->full && !srch_need_covers(&b->have, &s->need) && wbatch_full(s->hub, b))
        return;
    if (srch_match_docs(b->seg, s->q, &docs, &nd, &e) || !nd) {
        seg_free(docs);
        return;
    }
    for (size_t i = 0; i < nd; i++)
        docs[i] = b->pos[docs[i]];
    if (nd > 1)
        qsort(docs, nd, sizeof *docs, u32cmp);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < nd; i++) {
        uint64_t seq = b->first + docs[i];
        if (seq <= after)
            continue;
        const char *json, *id;
        size_t jl, il;
        int64_t t;
        int ex;
        seg_builder_event(b->events, docs[i], &json, &jl, &t, &id, &il, &ex);
        if (s->nseam && in_seam(s, id, il))
            continue;
        if (s->queue.n - s->sent > TAIL_QUEUE_BYTES) {
            s->dropped++;
            continue;
        }
        size_t n0 = s->queue.n;
        sse_event(&s->queue, seq, t, id, il, json, jl);
        if (s->queue.oom) { /* not a part of an event: none, and told so */
            seg_buf_truncate(&s->queue, n0);
            s->dropped++;
        }
    }
    wake(s);
    pthread_mutex_unlock(&s->mu);
    seg_free(docs);
}

/* Takes ownership of events. */
void api_hub_publish(api_hub *h, seg_builder *events, seg_tok *tok, seg_json *js)
{
    uint32_t n = seg_builder_count(events);
    if (!n) {
        seg_builder_free(events);
        return;
    }
    wbatch b;
    memset(&b, 0, sizeof b);
    b.n = n;
    b.events = events;
    /* index only what the current subscribers' queries read (with none,
     * nothing: a reconnect that needs more rebuilds the batch) */
    int ok = 1;
    pthread_mutex_lock(&h->mu);
    for (sub *s = h->subs; s && ok; s = s->next)
        ok = srch_query_need(s->q, &b.have) == 0;
    pthread_mutex_unlock(&h->mu);
    /* doc d of the batch's segment is event pos[d] of the batch (the
     * builder's own order: no need to read ids back from the store) */
    b.pos = seg_malloc((size_t)n * sizeof *b.pos);
    if (!ok || !b.pos || !(b.seg = batch_segment(events, tok, js, &b.have))) {
        wbatch_free(&b);
        return;
    }
    seg_builder_order(events, b.pos);
    pthread_mutex_lock(&h->mu);
    b.first = h->next_seq;
    h->next_seq += n;
    for (sub *s = h->subs; s; s = s->next)
        deliver(s, &b, 0);
    wbatch_free(&h->win[h->winpos]);
    h->win[h->winpos] = b;
    h->winpos = (h->winpos + 1) % TAIL_WINDOW;
    if (h->nwin < TAIL_WINDOW)
        h->nwin++;
    pthread_mutex_unlock(&h->mu);
}

/* ------------------------------------------------------------------ */
/* The stream                                                           */
/* ------------------------------------------------------------------ */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sub *s = cls;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->hub->stopping || s->done) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (s->dropped) {
            char m[96];
            snprintf(m, sizeof m, "event: dropped\ndata: {\"dropped\":%llu}\n\n", (unsigned long long)s->dropped);
            s->dropped = 0;
            /* in front of what is queued */
            seg_buf nq = {0};
            api_put_s(&nq, m);
            seg_buf_put(&nq, s->queue.p + s->sent, s->queue.n - s->sent);
            seg_buf_free(&s->queue);
            s->queue = nq;
            s->sent = 0;
        }
        if (s->queue.n > s->sent) {
            size_t k = s->queue.n - s->sent < max ? s->queue.n - s->sent : max;
            memcpy(buf, s->queue.p + s->sent, k);
            s->sent += k;
            if (s->sent == s->queue.n)
                s->queue.n = s->sent = 0;
            s->next_ping_ns = seg_time_now() + (int64_t)(s->heartbeat_s * 1e9);
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)k;
        }
        if (s->conn) {
            /* non-blocking: a heartbeat when due, else suspend until an
             * event, the heartbeat (api_hub_tick) or the end resumes */
            int64_t now = seg_time_now();
            if (now >= s->next_ping_ns) {
                static const char ping[] = ": ping\n\n";
                size_t k = sizeof ping - 1 < max ? sizeof ping - 1 : max;
                memcpy(buf, ping, k);
                s->next_ping_ns = now + (int64_t)(s->heartbeat_s * 1e9);
                pthread_mutex_unlock(&s->mu);
                return (ssize_t)k;
            }
            s->suspended = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double until = (double)ts.tv_nsec / 1e9 + s->heartbeat_s;
        ts.tv_sec += (time_t)until;
        ts.tv_nsec = (long)((until - (double)(time_t)until) * 1e9);
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0 && s->queue.n == s->sent && !s->hub->stopping) {
            /* idle: a comment keeps proxies from closing the stream, and
             * tells us when the client is gone (the write fails) */
            static const char ping[] = ": ping\n\n";
            size_t k = sizeof ping - 1 < max ? sizeof ping - 1 : max;
            memcpy(buf, ping, k);
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)k;
        }
    }
}

/* Frees a subscriber that is not (or no longer) on the hub's list. */
static void sub_destroy(sub *s)
{
    srch_query_free(s->q);
    srch_need_free(&s->need);
    seg_buf_free(&s->queue);
    for (size_t i = 0; i < s->nseam; i++)
        seg_free(s->seam[i]);
    seg_free(s->seam);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    seg_free(s);
}

static void sub_free(void *cls)
{
    sub *s = cls;
    api_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    for (sub **p = &h->subs; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            h->nsubs--;
            break;
        }
    h->last_sub_ns = seg_time_now();
    pthread_mutex_unlock(&h->mu);
    sub_destroy(s);
}

struct MHD_Response *api_tail_open(api_hub *h, int max_tails, srch_query *q, srch_index *snap, size_t backfill,
                                   const char *last_id, double heartbeat_s, struct MHD_Connection *conn,
                                   unsigned *status, seg_err *e)
{
    sub *s = seg_calloc(1, sizeof *s);
    if (!s) {
        srch_query_free(q);
        *status = 503;
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    s->hub = h;
    s->q = q;
    s->heartbeat_s = heartbeat_s;
    s->conn = conn;
    s->next_ping_ns = seg_time_now() + (int64_t)(heartbeat_s * 1e9);
    if (srch_query_need(q, &s->need)) {
        sub_destroy(s);
        *status = 503;
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_lock(&h->mu);
    if (h->nsubs >= max_tails) {
        pthread_mutex_unlock(&h->mu);
        sub_destroy(s);
        *status = 503;
        seg_err_set(e, SEG_ELIMIT, NULL, "too many live tails (--max-tails %d)", max_tails);
        return NULL;
    }
    /* subscribe first, so that nothing published from now on is missed */
    s->next = h->subs;
    h->subs = s;
    h->nsubs++;
    h->last_sub_ns = seg_time_now();
    if (last_id && *last_id) {
        /* a reconnect: what the window still holds after last_id */
        uint64_t after = strtoull(last_id, NULL, 10);
        size_t start = (h->winpos + TAIL_WINDOW - h->nwin) % TAIL_WINDOW;
        if (h->nwin && h->win[start].first > after + 1) {
            pthread_mutex_lock(&s->mu);
            api_put_s(&s->queue, ": some events after the given Last-Event-ID are no longer kept\n\n");
            pthread_mutex_unlock(&s->mu);
        }
        for (size_t k = 0; k < h->nwin; k++) {
            wbatch *b = &h->win[(start + k) % TAIL_WINDOW];
            if (b->first + b->n > after + 1)
                deliver(s, b, after);
        }
    }
    pthread_mutex_unlock(&h->mu);
    if (backfill && snap && !(last_id && *last_id)) {
        /* the newest stored matches, oldest first; remembered so that the
         * live stream does not repeat them at the seam */
        srch_request rq = {q, 0, 0, 0, 0, backfill, NULL, 0, NULL, 0};
        srch_result res;
        if (srch_search(snap, &rq, &res, e) == SEG_OK) {
            seg_buf bf = {0};
            s->seam = seg_calloc(res.nhits ? res.nhits : 1, sizeof *s->seam);
            for (size_t i = res.nhits; i-- > 0;) {
                const srch_hit *hh = &res.hits[i];
                sse_event(&bf, 0, hh->time, hh->id, hh->id_len, hh->json, hh->json_len);
                if (s->seam && (s->seam[s->nseam] = seg_strndup(hh->id, hh->id_len)))
                    s->nseam++;
            }
            pthread_mutex_lock(&s->mu);
            /* live events queued meanwhile that backfill also has: drop them */
            seg_buf live = s->queue;
            s->queue = bf;
            s->sent = 0;
            size_t at = 0;
            while (at < live.n) {
                const char *end = memmem(live.p + at, live.n - at, "\n\n", 2);
                size_t len = end ? (size_t)(end - (const char *)live.p) + 2 - at : live.n - at;
                const char *idp = memmem(live.p + at, len, "data: {\"_id\":", 13);
                int dup = 0;
                if (idp) {
                    /* the _id is a JSON string: compare its encoded form */
                    for (size_t k = 0; k < s->nseam && !dup; k++) {
                        seg_buf enc = {0};
                        api_put_jstr(&enc, s->seam[k], strlen(s->seam[k]));
                        dup = enc.n <= len && !memcmp(idp + 13, enc.p, enc.n);
                        seg_buf_free(&enc);
                    }
                }
                if (!dup) {
                    seg_buf_put(&s->queue, live.p + at, len);
                    if (s->queue.oom) { /* lost, and told so (event: dropped) */
                        seg_buf_truncate(&s->queue, s->queue.n);
                        s->dropped++;
                    }
                }
                at += len;
            }
            seg_buf_free(&live);
            pthread_mutex_unlock(&s->mu);
            srch_result_free(&res);
        } else {
            sub_free(s);
            *status = e->code == SEG_ECORRUPT ? 500 : 503;
            return NULL;
        }
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, sub_free);
    if (!r) {
        sub_free(s);
        *status = 503;
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    *status = 200;
    return r;
}
