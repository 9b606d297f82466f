/*
 * api_int.h -- internal to api/: the live tail hub (api_tail.c), and the
 * server's services that route files other than api_http.c use (the
 * Elasticsearch-compatible routes, es_*.c).
 */
#ifndef LOGDEX_API_INT_H
#define LOGDEX_API_INT_H

#include "api/api.h"
#include "indexer/idx.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

/* The first key of object o not among allowed (NULL-ended), or NULL. */
const char *api_unknown_key(const json_t *o, const char *const *allowed);
/* "unknown WHAT 'key' (did you mean 'k'?); known: a, b" into out: the
 * near miss by other engines' names (query: q, size: limit, ...) or by at
 * most two edits. */
void api_unknown_msg(const char *what, const char *key, const char *const *known, char *out, size_t n);
/* Appends the event json[0..n) with only the members whose path matches
 * an fnmatch pattern of incl (a jansson array; empty: all) and none of
 * excl; a pattern names a field and everything under it.  Values are
 * copied byte for byte.  Returns the members written, -1 when json is not
 * an object this reads (out then holds a partial copy). */
int api_filter_source(const char *json, size_t n, const json_t *incl, const json_t *excl, seg_buf *out);

/* sort=FIELD[:asc|desc] (search's, logdex search --sort): the field into
 * field[n], *asc (by default ascending for a field, newest first for
 * _time and @timestamp).  -1 when malformed. */
int api_parse_sort(const char *s, char *field, size_t n, int *asc);
/* [{"name","types","count"}...]: the fields of ix (GET /fields). */
void api_fields_json(seg_buf *b, srch_index *ix);
/* ["F",...,"@timestamp","timestamp","time","ts"]: an index's time fields
 * (csv, as idx_time_fields gives them), then the built-in ones. */
void api_time_fields_json(seg_buf *b, const char *csv);

/* ---- cli_send.c: logdex ingest --url ---- */
typedef struct cli_sender cli_sender;
typedef struct cli_send_counts {
    uint64_t accepted, rejected, duplicates, arrival;
} cli_send_counts;
/* A rejected line, with its file and line number. */
typedef void (*cli_reject_fn)(void *ud, const char *file, long line, const char *reason);
/* Batches to URL/api/v1/INDEX/ingest (?format=text when text); token: a
 * bearer token or NULL. */
cli_sender *cli_sender_new(const char *url, const char *index, const char *token, int text /* 1 text, 2 combined */, cli_reject_fn reject,
                           void *ud, seg_err *e);
/* Adds a line (line lineno of file, which must outlive the sender); sends
 * the batch when it is full. */
int cli_sender_line(cli_sender *s, const char *file, long lineno, const char *line, size_t n, seg_err *e);
/* Sends what is gathered (retrying what the server refuses for now). */
int cli_sender_flush(cli_sender *s, seg_err *e);
/* PUT URL/api/v1/INDEX {"time_field":[...]} (csv "F,G"). */
int cli_sender_put_time_fields(cli_sender *s, const char *url, const char *index, const char *csv, seg_err *e);
const cli_send_counts *cli_sender_counts(const cli_sender *s);
void cli_sender_free(cli_sender *s);

/* Inputs other than NDJSON (docs/http-api.md, "Inputs"). */
/* 3 when p starts with a UTF-8 byte order mark, else 0. */
size_t api_bom(const char *p, size_t n);
/* {"message":"LINE"}: the line as a JSON string (bytes that are not UTF-8,
 * and NUL, become U+FFFD; other control characters escaped). */
void api_text_event(seg_buf *out, const char *s, size_t n);
/* Plain text lines (a BOM skipped, \r\n too; combined: see
 * api_line_event) as NDJSON events
 * {"message":line}, line for line (blank lines stay blank); times gets an
 * idx_line_time per line, from a leading timestamp (seg_time_parse_text).
 * -1 out of memory. */
int api_text_to_ndjson(const char *p, size_t n, int64_t now, int combined, seg_buf *out, seg_buf *times);
/* One text line's event into out: {"message":line} timed by a leading
 * timestamp, or (combined) an Apache/nginx combined or common log line
 * parsed into ECS fields (source.address, user.name, http.request.method,
 * http.request.referrer, http.version, http.response.status_code,
 * http.response.body.bytes, url.original, user_agent.original) timed by
 * its [time]; a line that is not one is a text event.  *lt: its time.
 * Returns 0 for a blank line (nothing written), 1 otherwise. */
int api_line_event(seg_buf *out, const char *s, size_t n, int combined, int64_t now, idx_line_time *lt);
/* A body that is one JSON array ([{..},{..}], a BOM allowed) as NDJSON,
 * each element's bytes on a line of its own (raw newlines, whitespace
 * between tokens, made spaces).  0: not an array (out untouched); 1 done;
 * -1 malformed or out of memory. */
int api_array_to_ndjson(const char *p, size_t n, seg_buf *out);

typedef struct api_hub api_hub;       /* one per index; thread-safe */

api_hub *api_hub_new(void);
void api_hub_free(api_hub *h);
int api_hub_count(api_hub *h);        /* subscribers */
/* 1 when published events are wanted (subscribers now or lately). */
int api_hub_wants_events(api_hub *h);
/* Matches the accepted (durable) events of one ingest against every
 * subscriber and queues them.  Takes ownership of events (kept in the
 * reconnect window).  tok and js are the caller's. */
void api_hub_publish(api_hub *h, seg_builder *events, seg_tok *tok, seg_json *js);
/* Ends every stream (server shutdown). */
void api_hub_stop(api_hub *h);
/* Subscribes and returns the event-stream response; takes q.  snap (may
 * be NULL) serves backfill.  On failure NULL with *status and e set.
 * conn: NULL when the stream may block its thread (a thread per
 * connection); else the stream never blocks: with nothing to send it
 * suspends conn, and events, a due heartbeat (api_hub_tick) or the end
 * resume it. */
struct MHD_Response *api_tail_open(api_hub *h, int max_tails, srch_query *q, srch_index *snap, size_t backfill,
                                   const char *last_id, double heartbeat_s, struct MHD_Connection *conn,
                                   unsigned *status, seg_err *e);
/* Resumes the suspended streams whose heartbeat is due (call it every few
 * tens of ms when streams are opened with a conn). */
void api_hub_tick(api_hub *h);

/* ---- the server (api_http.c), for the route files ---- */

typedef struct reply {
    unsigned status;
    seg_buf body;
    const char *ctype;         /* NULL: application/json */
    const char *retry_after;
    int es;                    /* an Elasticsearch-compatible route: the
                                  answer carries X-Elastic-Product */
} reply;

/* A native error answer {"error":{"type","reason"}}; api_seg_error maps
 * a seg_err's code to its status. */
void api_error(reply *r, unsigned status, const char *type, const char *reason);
void api_seg_error(reply *r, const seg_err *e);
/* A query tokenizer borrowed from the server's pool (ICU state is per
 * thread): a slot, or -1 when all are busy; api_tok(slot) is it. */
int api_tok_take(void);
seg_tok *api_tok(int slot);
void api_tok_give(int slot);
/* A searchable snapshot of an index (SEG_ENOENT when there is none). */
srch_index *api_snapshot(const char *index, seg_err *e);
/* The open indexes' names (every index of the data dir), sorted; at most
 * max.  Returns the count. */
size_t api_index_names(char (*names)[72], size_t max);
/* 1 when the index exists; api_index_create makes it (0 or an error). */
int api_index_exists(const char *index);
int api_index_create(const char *index, seg_err *e);
/* Ingests NDJSON into an index (created when new), as POST .../ingest
 * does: returns once the accepted events are durable; live tails see
 * them.  b's inputs (want_lines, line_ids) are the caller's. */
int api_ingest(const char *index, const char *body, size_t n, idx_batch *b, seg_err *e);
/* Event-loop mode: starts an ingest into index (created when new), as
 * api_ingest does with in's inputs, for the request being worked on (req,
 * as es_route received it), and hands the request to the committer
 * thread: it waits for the shared log sync with the other ingests of that
 * round (one fdatasync for all), shows the events to live tails, calls
 * answer(ctx, b, rc, e, r) to make the reply, then release(ctx).  Returns
 * 1 when handed over (ctx and body are the committer's until release),
 * 0 when the caller must ingest itself (a thread per connection), 2 when
 * the request was on the event thread and would wait for buffer room (it
 * is routed again on a worker: the caller drops its work), -1 with e
 * when the index cannot be opened. */
typedef void (*api_answer_fn)(void *ctx, idx_batch *b, int rc, const seg_err *e, reply *r);
int api_ingest_defer(void *req, const char *index, const char *body, size_t n, const idx_batch *in,
                     api_answer_fn answer, void (*release)(void *), void *ctx, seg_err *e);
/* The stats answer of an index (api_stats_json with its directory). */
void api_index_stats(seg_buf *b, const char *index, srch_index *ix);
/* Inflates a gzip body, at most max bytes: 0, 1 too large, -1 bad. */
int api_gunzip(const uint8_t *in, size_t n, size_t max, seg_buf *out);
size_t api_max_body(void);
/* Counts and logs corrupt segments left out of an answer. */
void api_note_failed(const srch_stats *st, const char *what);
/* The request's query-string value of k, or NULL. */
const char *api_arg(struct MHD_Connection *c, const char *k);

/* ---- the Elasticsearch-compatible routes (es_route.c) ---- */

/* 1 when method and url are an ES route that writes (the token must allow
 * ingest). */
int es_is_write(const char *method, const char *url);
/* 1 for a _bulk request (small ones run on the event thread, as small
 * native ingests do). */
int es_is_bulk(const char *method, const char *url);
/* Answers an ES route (every url outside /api/v1/, /health, /metrics). */
void es_route(struct MHD_Connection *c, const char *method, const char *url, const seg_buf *body, void *req,
              reply *r);

#endif
