/*
 * idx_int.h -- internal to indexer/: the write-ahead log (idx_wal.c).
 */
#ifndef LOGDEX_IDX_INT_H
#define LOGDEX_IDX_INT_H

#include "indexer/idx.h"

#include <pthread.h>

typedef struct idx_wal {
    char dir[4096];
    pthread_mutex_t mu;        /* guards everything below */
    pthread_cond_t cv;
    int fd;                    /* the file being appended */
    uint64_t seq;              /* its sequence number */
    uint64_t written, synced;  /* bytes appended / covered by fdatasync */
    seg_buf pend;              /* record heads and small records, copied */
    seg_buf parts;             /* wal_part[]: what to write, in order: a
                                * range of pend, or a large record's events
                                * in the appender's own buffer (it waits in
                                * idx_wal_sync until written, so the buffer
                                * outlives the reference) */
    seg_buf spare, spare_parts; /* the leader's last buffers, kept for reuse
                                * (fresh memory costs page faults) */
    int broken;                /* a write or sync failed: records may be
                                  lost, so nothing is acknowledged again */
    int syncing;
    struct wal_waiter *waiters; /* appenders sleeping until a sync covers them */
    uint64_t fsyncs, fsync_ns_total, bytes_total;
} idx_wal;

/* Called for each event found in the log at open. */
typedef int (*idx_wal_replay_fn)(void *ud, const char *json, size_t n, int64_t time, const char *id,
                                 size_t idlen, int explicit_id, seg_err *e);

/* Opens INDEX/wal: replays files with seq > done_seq through fn (deleting
 * older ones), then starts a new file. */
int idx_wal_open(idx_wal *w, const char *indexdir, uint64_t done_seq, idx_wal_replay_fn fn, void *ud,
                 uint64_t *replayed, seg_err *e);
/* Encodes one event of a record into events. */
void idx_wal_record_event(seg_buf *events, int64_t t, int explicit_id, const char *id, size_t il,
                          const char *json, size_t jl);
/* Appends a record of count events (encoded by idx_wal_record_event) to
 * the log's memory; *ticket is what idx_wal_sync must cover (the sync
 * writes and fdatasyncs every record appended so far: one write and one
 * fdatasync for a whole group of concurrent appenders). */
int idx_wal_append(idx_wal *w, uint32_t count, const seg_buf *events, uint64_t *ticket, seg_err *e);
/* Returns once the record of `ticket` is on disk (group commit).  Every
 * successful idx_wal_append must be followed by this call before the
 * events buffer is freed or changed: a large record is written from it. */
int idx_wal_sync(idx_wal *w, uint64_t ticket, seg_err *e);
/* Closes the current file (synced) and starts the next; *closed_seq is
 * the closed file's sequence number. */
int idx_wal_rotate(idx_wal *w, uint64_t *closed_seq, seg_err *e);
/* Deletes files with sequence <= seq. */
void idx_wal_drop_upto(idx_wal *w, uint64_t seq);
void idx_wal_close(idx_wal *w);

/* ---- idx_merge.c ---- */

#define IDX_MERGE_MAX 32       /* inputs of one merge at most */
#define IDX_SPAN_SMALL (256u << 10) /* segments up to this size may join a span */

/* Chooses one merge among the manifest's entries e[0..n): fills pick with
 * entry indexes (all of one bucket) and returns their count, or 0.  busy[i]
 * marks entries already being merged; compact[i] entries whose events are
 * already compressed for size (NULL: all are; then no lone rewrites);
 * touched[i] is when entry i was added (INT64_MIN: before this process);
 * force treats every bucket as settled.  *settled: the picked bucket has
 * settled, so the output is to be compact.  One pick alone is a rewrite of
 * a settled segment that is not compact yet. */
size_t idx_merge_plan(const seg_mentry *e, size_t n, const uint8_t *busy, const uint8_t *compact, int64_t now,
                      int64_t settle_ns, const int64_t *touched, int force, uint64_t target, size_t *pick,
                      int *settled);

/* Spans (sparse data): windows of span_ns (aligned to multiples of it,
 * from the epoch) in which every segment is settled, not busy and at most
 * `small` bytes, and which hold two or more segments: the window with the
 * most is picked whole (up to IDX_MERGE_MAX, oldest first), to become one
 * compact segment spanning its buckets.  0: none (also when span_ns is
 * not more than bucket_ns). */
size_t idx_merge_plan_span(const seg_mentry *e, size_t n, const uint8_t *busy, int64_t now, int64_t settle_ns,
                           const int64_t *touched, int force, int64_t bucket_ns, int64_t span_ns, uint64_t small,
                           size_t *pick);

typedef struct idx_merge_out {
    uint32_t docs, in_docs;
    uint64_t bytes, in_bytes, dups;
    int64_t min_time, max_time;
} idx_merge_out;

/* Writes the events of in[0..n) (less repeated explicit _ids) as one new
 * segment at path.  When *cancel (if given) turns non-zero, stops with
 * SEG_EBUSY and leaves nothing on disk. */
int idx_merge_build(seg_reader *const *in, size_t n, const char *path, const int *cancel, int compact,
                    idx_merge_out *out, seg_err *e);

#endif
