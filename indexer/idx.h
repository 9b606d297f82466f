/*
 * idx.h -- the indexer layer: events in, segments out.  The one public
 * header of indexer/.
 *
 * An idx_writer owns one index directory (DATA/INDEX/) for writing: it
 * takes an exclusive lock (DATA/INDEX/lock, flock) so that one writer at a
 * time changes an index.  Events are validated, given a time and an _id,
 * de-duplicated by _id, and buffered per time bucket; a flush writes one
 * segment per buffered bucket and then replaces the manifest.  Readers
 * (searcher/) never take the lock: they read the manifest, and segments are
 * immutable, so a reader sees either the old or the new list.
 *
 * Concurrency: an idx_writer is used by one thread.  idx_flush() builds the
 * buckets' segments on up to `threads` threads of its own.
 */
#ifndef LOGDEX_IDX_H
#define LOGDEX_IDX_H

#include "segment/seg.h"

typedef struct idx_writer idx_writer;

typedef struct idx_opts {
    int64_t bucket_ns;      /* bucket width for a new index (default 1 h) */
    size_t buffer_bytes;    /* flush when buffered events exceed this */
    int threads;            /* segment builders in a flush (default 2) */
    int wal;                /* server mode: write-ahead log, snapshots, ticks */
    int64_t max_age_ns;     /* server mode: flush buffers older than this (10 s) */
    int64_t max_future_ns;  /* reject events later than now + this (1 d; 0 = no limit) */
    int64_t retention_ns;   /* reject events older than now - this (0 = keep all) */
    uint64_t segment_target;/* merges build segments up to this size (512 MiB) */
    int64_t settle_ns;      /* a bucket without new segments this long is merged down (60 s) */
    uint32_t flush_events;  /* also flush every this many buffered events (0: off) */
    int64_t ingest_wait_ns; /* server mode: how long an ingest waits for buffer room
                               before SEG_EBUSY (5 s) */
    int64_t span_ns;        /* settled segments of at most 256 KiB within one window of
                               this width are merged into one spanning their buckets
                               (1 day; 0 or not above the bucket width: never; cut
                               to retention_ns in whole buckets when that is shorter) */
    uint64_t min_free_bytes;    /* server mode: refuse ingest while the index's
                                   filesystem has less free than this ... */
    uint32_t min_free_permille; /* ... or than this share of its size, per mille;
                                   both set: the smaller; both 0: no watermark
                                   (default 256 MiB and 50: 5%, up to 256 MiB) */
    const char *time_fields;    /* "F,G": the index's time fields, tried before
                                   the built-in ones; kept in INDEX/settings.
                                   An index that has other ones, or events
                                   already, is refused (SEG_EINVAL) */
    const char *default_time_fields; /* the same for an index created now (a
                                   server's default); ignored for others */
    uint32_t split_min;     /* a flush splits a bucket holding more than its share of
                               the work into time slices, each its own segment, but
                               never one of this many events or fewer (16384; 0:
                               never split) */
} idx_opts;

typedef struct idx_counts {
    uint64_t accepted, rejected, duplicates, bytes, lines;
    uint64_t arrival;             /* of the accepted: timed by arrival (no time field parsed) */
} idx_counts;

/* Called for each rejected line, with its 1-based number and the reason. */
typedef void (*idx_reject_fn)(void *ud, long line, const char *reason);

/* Index names: [a-z0-9][a-z0-9_.-]{0,63}.  Returns 1 when valid. */
int idx_name_valid(const char *name);

void idx_opts_default(idx_opts *o);
/* Opens (creating when needed) DATA/INDEX for writing.  Removes files left
 * by an interrupted flush (temporary files, segments not in the manifest). */
int idx_open(const char *datadir, const char *index, const idx_opts *o, idx_writer **out,
             seg_err *e);
/* A line's own time (plain text: its leading timestamp), used when the
 * event's time fields give none. */
typedef struct idx_line_time {
    int64_t time;
    int has;
} idx_line_time;

/* Adds one NDJSON line (without its newline).  Blank lines are skipped.
 * Returns SEG_OK; a bad line is counted as rejected and reported through
 * reject(); a fatal error (I/O, memory) returns its code. */
int idx_add_line(idx_writer *w, const char *line, size_t n, long lineno, idx_reject_fn reject,
                 void *ud, seg_err *e);
/* The same; lt (may be NULL) times the event when its fields do not. */
int idx_add_line_timed(idx_writer *w, const char *line, size_t n, long lineno, const idx_line_time *lt,
                       idx_reject_fn reject, void *ud, seg_err *e);
/* Counts a line the caller could not even hand over (e.g. over the line
 * length limit) as rejected, and reports it. */
void idx_reject(idx_writer *w, long lineno, size_t bytes, const char *reason, idx_reject_fn reject,
                void *ud);
/* Writes every buffered bucket as a segment and replaces the manifest. */
int idx_flush(idx_writer *w, seg_err *e);
/* Flushes and closes; w is freed even on error.  NULL is accepted. */
int idx_close(idx_writer *w, seg_err *e);
const idx_counts *idx_get_counts(const idx_writer *w);
size_t idx_buffered_bytes(const idx_writer *w);
int64_t idx_bucket_ns(const idx_writer *w);

/* ---- server mode (opts.wal): one idx_writer shared by many threads ---- */

typedef struct idx_line_error {
    long line;
    char reason[512];
} idx_line_error;

/* What became of one line of a batch (idx_batch.want_lines). */
enum { IDX_LINE_ACCEPTED = 1, IDX_LINE_DUPLICATE, IDX_LINE_REJECTED };
typedef struct idx_line_out {
    long line;                    /* 1-based */
    int outcome;                  /* IDX_LINE_* */
    char auto_id[24];             /* accepted without an _id: the one assigned */
} idx_line_out;

typedef struct idx_batch {
    int want_events;              /* in: also return the accepted events */
    int want_lines;               /* in: also fill lines (the _bulk API's items) */
    const char *const *line_ids;  /* in, optional: line_ids[k] (line_id_lens[k]
                                     bytes), when not NULL, is the _id of the
                                     event on line k + 1 (the _bulk API's
                                     action _id), as an _id field would be */
    const uint32_t *line_id_lens;
    size_t nline_ids;
    const idx_line_time *line_times; /* in, optional: line_times[k] times the
                                     event on line k + 1 when its fields do not */
    size_t nline_times;
    int no_block;                 /* in (idx_ingest_start): when the buffer is
                                     full and a flush is running, fail at once
                                     (SEG_EBUSY, would_block set) instead of
                                     waiting for room */
    int would_block;              /* out: see no_block (nothing was stored) */
    uint64_t accepted, rejected, duplicates;
    uint64_t arrival;             /* of the accepted: timed by arrival (no time field parsed) */
    idx_line_error *errors;       /* the rejected lines (a time refused after
                                     every unparsable line) */
    size_t nerrors;
    idx_line_out *lines;          /* want_lines: every non-blank line, in order */
    size_t nlines;
    seg_builder *events;          /* out (want_events): accepted events in
                                     ingest order, with times and ids */
    /* between idx_ingest_start and idx_ingest_finish: */
    uint64_t ticket;              /* the log record's, 0: none */
    uint64_t ticket_gen;          /* the log's generation when it was taken */
    seg_buf rec;                  /* the record (the log may write from it) */
    int rc;                       /* idx_ingest_start's result */
} idx_batch;

/* Ingests an NDJSON body (out->want_events set by the caller, the rest
 * filled here).  Back-pressure: when a full buffer waits for the previous
 * flush to finish (so two buffers are in memory), the call waits up to
 * ingest_wait_ns for room, then fails with SEG_EBUSY having stored
 * nothing.  Returns SEG_OK once every accepted event is in
 * the write-ahead log on disk (fsync shared with concurrent callers) and
 * in the buffer seen by snapshots taken after the return.  Bad lines are
 * counted and listed in out; only I/O or memory failures are errors. */
int idx_ingest(idx_writer *w, const char *body, size_t n, idx_batch *out, seg_err *e);
/* idx_ingest in two halves, for callers that must not block while the
 * log is synced (an event loop): _start parses, de-duplicates, buffers and
 * appends the log record (events visible to searches now, not yet
 * durable); _finish waits until the record is on disk (shared fsync) and
 * returns the ingest's result.  _finish must follow every _start (it
 * frees the record the log may still be writing from), from any thread. */
int idx_ingest_start(idx_writer *w, const char *body, size_t n, idx_batch *out, seg_err *e);
int idx_ingest_finish(idx_writer *w, idx_batch *out, seg_err *e);
void idx_batch_free(idx_batch *b);
/* A snapshot of every stored and buffered event (buffered ones are sealed
 * into in-memory segments first).  Release with seg_set_unref(). */
int idx_snapshot(idx_writer *w, seg_set **out, seg_err *e);
/* Periodic work: completes a finished background flush, and starts one
 * for a buffer older than max_age_ns. */
int idx_tick(idx_writer *w, seg_err *e);
/* ---- lifecycle: merging and retention (docs/architecture.md) ---- */

typedef struct idx_merge_info {
    int64_t bucket;
    uint32_t inputs, docs;
    uint64_t in_bytes, out_bytes, dups;
    int compact;            /* the output's events are compressed for size */
    double ms;
} idx_merge_info;

/* Does at most one merge of small segments within a bucket (the policy is
 * in idx_merge.c): picks the inputs under the writer's lock, builds the
 * new segment without it, then swaps the manifest and deletes the inputs
 * (open readers keep their mapped bytes).  info->inputs is 0 when there
 * was nothing to merge.  force: merge every bucket down as if settled.
 * Safe to call from threads of their own, offline or in server mode:
 * merges run concurrently in different buckets (a bucket with a merge
 * running is skipped), spans are planned only while no other merge runs.
 * So info->inputs == 0 is final only when idx_merges_running() was 0. */
int idx_merge_step(idx_writer *w, int force, idx_merge_info *info, seg_err *e);
/* How many idx_merge_step calls are between plan and commit. */
int idx_merges_running(idx_writer *w);
/* Merges every bucket down as if settled (idx_merge_step with force, until
 * nothing is left), on `threads` threads at once (1..64): `logdex
 * compact`.  The result is the same whatever the thread count. */
int idx_compact(idx_writer *w, int threads, seg_err *e);
/* Stops a merge in progress soon (it leaves nothing behind) and makes
 * later idx_merge_step calls do nothing: for a prompt shutdown. */
void idx_merge_cancel(idx_writer *w);

typedef struct idx_drop_info {
    uint64_t buckets, segments, events, bytes;
} idx_drop_info;

/* Retention over the writers of one data directory: drops every bucket
 * whose end is at or before now - retention_ns (when > 0), then, while
 * the segments of all writers take more than max_disk bytes (when > 0),
 * the oldest bucket of all (never the last one left).  Adds what went
 * to *info. */
int idx_retain(idx_writer *const *ws, size_t n, int64_t now, int64_t retention_ns, uint64_t max_disk,
               idx_drop_info *info, seg_err *e);

/* Figures for /metrics. */
typedef struct idx_life {
    uint64_t merges, merged_inputs, merge_bytes_in, merge_bytes_out, merge_dups;
    uint64_t rewrites;            /* of these merges: one settled segment made compact */
    uint64_t dropped_segments, dropped_events, dropped_bytes;
    uint64_t busy_refusals;       /* ingests refused with SEG_EBUSY */
    uint64_t flush_slices;        /* segments flushed as a time slice of a bucket */
    uint64_t flush_failures;      /* flushes that failed (a server's are retried) */
    uint64_t space_refusals;      /* ingests refused: free space below the watermark */
    uint64_t wal_refusals;        /* ingests refused: the log failed, not recovered yet */
} idx_life;

/* Why a server's writer refuses ingest for now (idx_ingest_start answers
 * SEG_ENOSPC or SEG_EUNAVAIL): searches go on meanwhile. */
enum {
    IDX_BLOCK_NONE = 0,
    IDX_BLOCK_LOW_SPACE,   /* free space under opts.min_free (checked by idx_tick) */
    IDX_BLOCK_WAL,         /* the log failed (disk full, disk error): a fresh log
                              file and the flush of what the failed one held
                              are needed first; idx_tick keeps trying */
};

typedef struct idx_metrics {
    idx_counts counts;
    uint64_t wal_bytes, wal_fsyncs, wal_fsync_ns, buffered_bytes, segments, replayed, segment_bytes;
    idx_life life;                /* merges, retention, back-pressure */
    int blocked;                  /* IDX_BLOCK_* */
    int wal_errno;                /* the log's failure (blocked == IDX_BLOCK_WAL) */
    uint64_t disk_free, min_free; /* bytes free for the index's directory at the
                                     last tick, and the watermark (0: none) */
    uint64_t wal_failures, wal_recoveries;
    uint64_t wal_torn, wal_torn_bytes, wal_damaged, wal_damaged_bytes; /* replay at open */
} idx_metrics;
void idx_get_metrics(idx_writer *w, idx_metrics *m);
/* The index's time fields ("F,G"; "" when only the built-in ones). */
void idx_time_fields(idx_writer *w, char *out, size_t n);
/* The same read from DATA/INDEX/settings without opening the index (no
 * lock: a server may hold it). */
int idx_read_time_fields(const char *datadir, const char *index, char *out, size_t n, seg_err *e);
/* Sets them (csv as idx_opts.time_fields) on an open index: SEG_OK when
 * they are its fields already, or when it holds no event yet (none
 * buffered, none in segments); else SEG_EINVAL naming the fields it has. */
int idx_set_time_fields(idx_writer *w, const char *csv, seg_err *e);
/* What replay of the write-ahead log found wrong at open (torn tails,
 * damage): lines for the server's log, "" when nothing. */
const char *idx_replay_report(idx_writer *w);

#endif
