/*
 * api_int.h -- internal to api/: the live tail hub (api_tail.c).
 */
#ifndef LOGDEX_API_INT_H
#define LOGDEX_API_INT_H

#include "api/api.h"

#include <microhttpd.h>
#include <pthread.h>

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

#endif
