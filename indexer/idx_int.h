/*
 * idx_int.h -- internal to indexer/: the write-ahead log (idx_wal.c).
 */
#ifndef LOGDEX_IDX_INT_H
#define LOGDEX_IDX_INT_H

#include "indexer/idx.h"

#include <pthread.h>

/* What replay found wrong in the log at open (see idx_wal.c's top). */
typedef struct idx_wal_report {
    uint64_t torn, torn_bytes;       /* files ending in a partial record */
    uint64_t damaged, damaged_bytes; /* bad bytes followed by good records */
    seg_buf text;                    /* one line per finding, for the log */
} idx_wal_report;

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
    int broken;                /* a write or sync failed: the file may end
                                  in a partial record, so nothing more is
                                  appended to it; appends are refused until
                                  idx_wal_rotate starts a fresh file */
    int err_no;                /* the failure's errno (ENOSPC: disk full) */
    uint64_t gen;              /* generation: each failure starts a new one */
    uint64_t gen_synced;       /* synced when the last generation ended: its
                                  tickets above this were lost */
    uint64_t failures, recoveries;
    idx_wal_report rep;        /* what replay at open found */
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
 * the log's memory; *ticket and *gen are what idx_wal_sync must cover (the
 * sync writes and fdatasyncs every record appended so far: one write and
 * one fdatasync for a whole group of concurrent appenders).  Refused
 * (SEG_ENOSPC or SEG_EUNAVAIL) while the log is broken. */
int idx_wal_append(idx_wal *w, uint32_t count, const seg_buf *events, uint64_t *ticket, uint64_t *gen,
                   seg_err *e);
/* Returns once the record of (ticket, gen) is on disk (group commit), or
 * an error when a failure lost it.  Every successful idx_wal_append must
 * be followed by this call before the events buffer is freed or changed:
 * a large record is written from it. */
int idx_wal_sync(idx_wal *w, uint64_t ticket, uint64_t gen, seg_err *e);
/* Closes the current file (synced) and starts the next; *closed_seq is
 * the closed file's sequence number.  On a broken log this is the
 * recovery: the failed file is left as it is (what it holds beyond the
 * last sync was never acknowledged), a fresh one is started and appends
 * are taken again; *healed is then the failure's errno (else 0). */
int idx_wal_rotate(idx_wal *w, uint64_t *closed_seq, int *healed, seg_err *e);
/* 0 when appends are taken; else the errno of the failure that broke the
 * log (EIO when it gave none). */
int idx_wal_broken(idx_wal *w);
/* Deletes files with sequence <= seq. */
void idx_wal_drop_upto(idx_wal *w, uint64_t seq);
void idx_wal_close(idx_wal *w);

/* ---- idx_settings.c: INDEX/settings ---- */

#define IDX_TIME_FIELDS_MAX 8

typedef struct idx_settings {
    char time_field[IDX_TIME_FIELDS_MAX][128]; /* tried in order for an event's time */
    const char *time_ptr[IDX_TIME_FIELDS_MAX];  /* -> time_field[i], for seg_event_time_ex */
    size_t ntime;
} idx_settings;

/* "a,b.c" (spaces around names ignored) into s. */
int idx_settings_parse_fields(const char *csv, idx_settings *s, seg_err *e);
int idx_settings_equal(const idx_settings *a, const idx_settings *b);
/* "a,b.c" */
void idx_settings_format_fields(const idx_settings *s, char *out, size_t n);
/* Loads INDEX/settings; *exists 0 (and s empty) when there is none. */
int idx_settings_load(const char *indexdir, idx_settings *s, int *exists, seg_err *e);
/* Writes INDEX/settings atomically. */
int idx_settings_save(const char *indexdir, const idx_settings *s, seg_err *e);

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
