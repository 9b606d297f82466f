/*
 * idx_wal.c -- the write-ahead log of one index (internal to indexer/).
 *
 * Files INDEX/wal/wSEQ.log (SEQ: 16 hex digits, increasing).  A file is:
 *   8 bytes magic "LOGDXWAL", u32 version (1), u32 0
 *   records: u32 magic 0x57584444 ("DDXW"), u32 payload length,
 *            u64 XXH3-64 of the payload, payload
 *   payload: varint count, then per event: varint zigzag(time ns),
 *            u8 explicit id (0/1), varint id length, id, varint JSON
 *            length, JSON bytes
 * A record is appended to the pending list (in the order of appends, which
 * idx_ingest makes under the writer's mutex) and acknowledged only after
 * a write and an fdatasync that cover it.  Concurrent appenders share
 * them (group commit): whoever finds no sync running takes the list,
 * writes it with one writev() and syncs, then wakes the others; a group
 * of N requests costs one write and one fdatasync, not N writes.  An
 * appender that finds a sync running sleeps on a semaphore of its own
 * (wal_waiter, on its stack); the leader posts exactly the ones its sync
 * covered, telling each the outcome, so that they return without taking
 * the mutex again (a condition variable's broadcast had every waiter
 * queue for the mutex in turn: under 100 one-event clients, a sixth of
 * the server's time), and posts one uncovered waiter to lead next.  Small
 * records are copied into the list's buffer; a large one (>= 64 KiB) is
 * written from its appender's buffer, which stays valid because the
 * appender waits in idx_wal_sync until the record is written.
 *
 * Failures (a full disk, a failing one).  When a write or fdatasync fails
 * the log is broken: the file may end in part of a record, so nothing more
 * is appended to it.  The pending list is dropped and the generation ends:
 * each ticket carries the generation it was taken in, and a ticket of an
 * ended generation is acknowledged only if the last good sync covered it
 * (gen_synced); the others get the error, also an appender that had not
 * reached idx_wal_sync yet when the failure came.  Appends are refused
 * (SEG_ENOSPC for ENOSPC and EDQUOT, else SEG_EUNAVAIL) until
 * idx_wal_rotate starts a fresh file: that is the recovery, which the
 * writer runs with the flush of what the failed file held (see
 * idx_writer.c, "Disk full").
 *
 * Replay reads files in order.  A record is good when its magic, its
 * length (within the file) and its checksum hold.  At a bad one, replay
 * looks for the next good record further on: when there is none, the rest
 * is a torn tail (the last write, cut by a crash or a failure; never
 * acknowledged) and is dropped; when there is one, the bytes in between
 * are damage in the middle of the log (never expected: a disk or a person
 * changed the file): the file is kept aside (a hard link, wSEQ.damaged),
 * and replay goes on from the good record.  Each finding is counted in
 * the report (for /metrics) with its file, offset and length (for the
 * server's log).  A file shorter than its header (created, never written)
 * is a torn tail too; a full header that is not the log's is damage.
 * The manifest's "wal SEQ" line says that every file <= SEQ is in segments;
 * such files are deleted after the manifest is saved.
 *
 * Concurrency: all fields are guarded by mu, except that the leader's
 * write and fdatasync run without it (the fd cannot be closed meanwhile:
 * rotation waits until no sync is running, then writes what is pending
 * before switching files).
 */
#define _GNU_SOURCE
#include "indexer/idx_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <semaphore.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define WAL_MAGIC "LOGDXWAL"
#define WAL_VERSION 1u
#define WAL_REC_MAGIC 0x57584444u

/* An appender waiting for a sync in progress (see the top). */
typedef struct wal_waiter {
    struct wal_waiter *next;
    uint64_t ticket;
    sem_t sem;
    int woke;                  /* set before the post: WOKE_* */
} wal_waiter;
enum { WOKE_SYNCED = 1, WOKE_LEAD, WOKE_BROKEN };

/* Under mu, after synced or broken changed: posts the waiters covered (or
 * all, when broken), and one other to lead the next sync when none runs.
 * A waiter is not touched after its post (it may be gone). */
static void wake_waiters(idx_wal *w)
{
    wal_waiter **pp = &w->waiters;
    int lead = w->syncing;
    while (*pp) {
        wal_waiter *x = *pp;
        int why = w->broken ? WOKE_BROKEN : x->ticket <= w->synced ? WOKE_SYNCED : !lead ? WOKE_LEAD : 0;
        if (!why) {
            pp = &x->next;
            continue;
        }
        lead |= why == WOKE_LEAD;
        *pp = x->next;
        x->woke = why;
        sem_post(&x->sem);
    }
}

/* A record at least this large is written from its appender's buffer. */
#define WAL_BYREF (64u * 1024)

typedef struct wal_part {
    const uint8_t *ext;        /* NULL: bytes [off, off + len) of pend */
    uint64_t off, len;
} wal_part;

/* 0, or -1 with errno: writes the parts in order (writev, IOV_MAX at a
 * time, resuming after short writes). */
static int write_parts(int fd, const seg_buf *pend, const seg_buf *parts)
{
    const wal_part *pt = (const wal_part *)(const void *)parts->p;
    size_t np = parts->n / sizeof *pt, i = 0, done = 0; /* bytes of part i written */
    while (i < np) {
        struct iovec iov[64];
        int k = 0;
        for (size_t j = i; j < np && k < 64; j++, k++) {
            const uint8_t *b = pt[j].ext ? pt[j].ext : pend->p + pt[j].off;
            size_t skip = j == i ? done : 0;
            iov[k].iov_base = (void *)(b + skip);
            iov[k].iov_len = pt[j].len - skip;
        }
        ssize_t w = writev(fd, iov, k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        size_t left = (size_t)w;
        while (left && i < np) {
            size_t rest = pt[i].len - done;
            if (left >= rest) {
                left -= rest;
                i++;
                done = 0;
            } else {
                done += left;
                left = 0;
            }
        }
    }
    return 0;
}

/* Keeps the larger of *spare and *used (up to 64 MiB) as the next
 * leader's buffer, frees the other. */
static void keep_spare(seg_buf *spare, seg_buf *used)
{
    if (used->cap > spare->cap && used->cap <= (64u << 20) && !used->oom) {
        seg_buf_free(spare);
        *spare = *used;
    } else {
        seg_buf_free(used);
    }
}

/* Drops what is pending (the log broke: nothing of it is acknowledged). */
static void drop_pending(idx_wal *w)
{
    w->pend.n = 0;
    w->parts.n = 0;
}

/* Under mu: a write or sync failed with errno err.  Ends the generation
 * (tickets above synced are lost) and drops what is pending. */
static void wal_break(idx_wal *w, int err)
{
    w->err_no = err ? err : EIO;
    __atomic_store_n(&w->broken, 1, __ATOMIC_RELEASE);
    w->gen_synced = w->synced;
    w->gen++;
    w->failures++;
    drop_pending(w);
}

/* The error for an append or sync refused by a broken log. */
static int broken_err(const idx_wal *w, seg_err *e)
{
    int space = w->err_no == ENOSPC || w->err_no == EDQUOT;
    return seg_err_set(e, space ? SEG_ENOSPC : SEG_EUNAVAIL, w->dir,
                       "the write-ahead log cannot be written (%s); nothing of this request was acknowledged; "
                       "ingest resumes by itself once a write succeeds again: retry",
                       strerror(w->err_no));
}

/* A ticket of generation gen, ended: acknowledged when the last good sync
 * of its generation covered it (only the last ended generation is known;
 * older ones are refused, which loses nothing: the caller retries). */
static int ended_gen(const idx_wal *w, uint64_t ticket, uint64_t gen, seg_err *e)
{
    if (gen + 1 == w->gen && ticket <= w->gen_synced)
        return SEG_OK;
    return broken_err(w, e);
}

int idx_wal_broken(idx_wal *w)
{
    /* without the mutex (every ingest asks): err_no is set before broken
     * (release), and idx_wal_append checks again under the mutex */
    return __atomic_load_n(&w->broken, __ATOMIC_ACQUIRE) ? w->err_no : 0;
}

static void add_part(idx_wal *w, const uint8_t *ext, uint64_t off, uint64_t len)
{
    wal_part p = {ext, off, len};
    seg_buf_put(&w->parts, &p, sizeof p);
}

static void wal_path(const idx_wal *w, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s/w%016llx.log", w->dir, (unsigned long long)seq);
}

/* Creates log file seq with its header, durably, into *fdp.  On failure
 * nothing is left: no descriptor, no file (a half-written header would
 * read as a damaged log at the next start). */
static int wal_create(idx_wal *w, uint64_t seq, int *fdp, seg_err *e)
{
    char p[4200];
    wal_path(w, seq, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return seg_err_set(e, SEG_EIO, p, "create write-ahead log: %s", strerror(errno));
    uint8_t h[16];
    memcpy(h, WAL_MAGIC, 8);
    seg_wr_u32(h + 8, WAL_VERSION);
    seg_wr_u32(h + 12, 0);
    int rc = SEG_OK;
    if (write(fd, h, 16) != 16 || fdatasync(fd) != 0)
        rc = seg_err_set(e, SEG_EIO, p, "write write-ahead log: %s", strerror(errno));
    else
        rc = seg_fsync_dir(w->dir, e);
    if (rc) {
        close(fd);
        unlink(p);
        return rc;
    }
    *fdp = fd;
    return SEG_OK;
}

static int wal_open_file(idx_wal *w, uint64_t seq, seg_err *e)
{
    int fd;
    int rc = wal_create(w, seq, &fd, e);
    if (rc == SEG_OK) {
        w->fd = fd;
        w->seq = seq;
    }
    return rc;
}

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the sequence numbers of the WAL files, sorted. */
static int wal_list(const char *dir, uint64_t **seqs, size_t *n)
{
    *seqs = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(d))) {
        unsigned long long s;
        char tail[8];
        if (sscanf(de->d_name, "w%16llx.%7s", &s, tail) == 2 && !strcmp(tail, "log") && strlen(de->d_name) == 21) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *q = seg_realloc(*seqs, cap * sizeof *q);
                if (!q) {
                    closedir(d);
                    return -1;
                }
                *seqs = q;
            }
            (*seqs)[(*n)++] = s;
        }
    }
    closedir(d);
    if (*n > 1)
        qsort(*seqs, *n, sizeof **seqs, seq_cmp);
    return 0;
}

/* 1 when a good record starts at off of m[0..n) (see the top); *len is
 * its payload's length. */
static int record_at(const uint8_t *m, size_t n, size_t off, uint32_t *len)
{
    if (n - off < 16 || seg_rd_u32(m + off) != WAL_REC_MAGIC)
        return 0;
    uint32_t l = seg_rd_u32(m + off + 4);
    if (l > n - off - 16 || seg_hash64(m + off + 16, l) != seg_rd_u64(m + off + 8))
        return 0;
    *len = l;
    return 1;
}

/* The offset of the next good record after off, or n. */
static size_t next_record(const uint8_t *m, size_t n, size_t off)
{
    uint8_t mg[4];
    seg_wr_u32(mg, WAL_REC_MAGIC);
    for (size_t k = off + 1; k + 16 <= n; k++) {
        const uint8_t *q = memchr(m + k, mg[0], n - 16 - k + 1);
        if (!q)
            break;
        k = (size_t)(q - m);
        uint32_t l;
        if (!memcmp(q, mg, 4) && record_at(m, n, k, &l))
            return k;
    }
    return n;
}

static void report(idx_wal *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(idx_wal *w, const char *fmt, ...)
{
    char b[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    seg_buf_put(&w->rep.text, b, strlen(b));
    seg_buf_put(&w->rep.text, "\n", 1);
}

/* Keeps damaged file p aside for inspection: a hard link wSEQ.damaged
 * (.1, .2, ... when taken), which outlives the file's deletion once its
 * events are in segments. */
static void set_aside(idx_wal *w, const char *p, uint64_t seq)
{
    char q[4300];
    for (int k = 0; k < 100; k++) {
        if (k)
            snprintf(q, sizeof q, "%s/w%016llx.damaged.%d", w->dir, (unsigned long long)seq, k);
        else
            snprintf(q, sizeof q, "%s/w%016llx.damaged", w->dir, (unsigned long long)seq);
        if (link(p, q) == 0) {
            report(w, "write-ahead log %s: kept aside as %s for inspection", p, q);
            return;
        }
        if (errno != EEXIST)
            break;
    }
    report(w, "write-ahead log %s: could not keep it aside (%s)", p, strerror(errno));
}

/* Replays log file p (sequence seq) through fn, reporting what it finds
 * wrong (see the top). */
static int replay_file(idx_wal *w, const char *p, uint64_t seq, idx_wal_replay_fn fn, void *ud, uint64_t *replayed,
                       seg_err *e)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return seg_err_set(e, SEG_EIO, p, "open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return seg_err_set(e, SEG_EIO, p, "stat: %s", strerror(err));
    }
    size_t n = (size_t)st.st_size;
    if (n < 16) { /* created, header never (fully) written: nothing acknowledged */
        close(fd);
        if (n) {
            w->rep.torn++;
            w->rep.torn_bytes += n;
            report(w, "write-ahead log %s: torn header (%zu bytes), dropped: never acknowledged", p, n);
        }
        return SEG_OK;
    }
    const uint8_t *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return seg_err_set(e, SEG_EIO, p, "mmap: %s", strerror(errno));
    int rc = SEG_OK, aside = 0;
    size_t off = 16;
    if (memcmp(m, WAL_MAGIC, 8) || seg_rd_u32(m + 8) != WAL_VERSION)
        off = 0; /* not the log's header: damage, unless records follow */
    while (off < n && rc == SEG_OK) {
        uint32_t len;
        if (!record_at(m, n, off, &len)) {
            size_t next = next_record(m, n, off);
            if (next == n) {
                w->rep.torn++;
                w->rep.torn_bytes += n - off;
                report(w,
                       "write-ahead log %s: torn tail at offset %zu (%zu bytes), dropped: the last write before a "
                       "crash or a failed write, never acknowledged",
                       p, off, n - off);
                break;
            }
            w->rep.damaged++;
            w->rep.damaged_bytes += next - off;
            report(w,
                   "write-ahead log %s: DAMAGED at offset %zu: %zu bytes that are not a valid record, followed by "
                   "valid records (replayed); events in those bytes are lost",
                   p, off, next - off);
            if (!aside++)
                set_aside(w, p, seq);
            off = next;
            continue;
        }
        seg_cur c = {m + off + 16, m + off + 16 + len, 0};
        off += 16 + (size_t)len;
        uint64_t cnt = seg_get_varint(&c);
        for (uint64_t k = 0; k < cnt && !c.bad && rc == SEG_OK; k++) {
            int64_t t = seg_unzigzag(seg_get_varint(&c));
            int ex = seg_get_u8(&c);
            uint64_t il = seg_get_varint(&c);
            const uint8_t *id = seg_get_bytes(&c, il);
            uint64_t jl = seg_get_varint(&c);
            const uint8_t *js = seg_get_bytes(&c, jl);
            if (c.bad)
                break;
            rc = fn(ud, (const char *)js, jl, t, (const char *)id, il, ex, e);
            (*replayed)++;
        }
    }
    munmap((void *)m, n);
    return rc;
}

int idx_wal_open(idx_wal *w, const char *indexdir, uint64_t done_seq, idx_wal_replay_fn fn, void *ud,
                 uint64_t *replayed, seg_err *e)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    snprintf(w->dir, sizeof w->dir, "%s/wal", indexdir);
    int rc = seg_mkdir_p(w->dir, e);
    if (rc)
        return rc;
    uint64_t *seqs;
    size_t n;
    if (wal_list(w->dir, &seqs, &n))
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    uint64_t maxseq = done_seq;
    *replayed = 0;
    for (size_t i = 0; i < n && rc == SEG_OK; i++) {
        if (seqs[i] > maxseq)
            maxseq = seqs[i];
        char p[4200];
        wal_path(w, seqs[i], p, sizeof p);
        if (seqs[i] <= done_seq) {
            unlink(p); /* already in segments: a crash before its deletion */
            continue;
        }
        rc = replay_file(w, p, seqs[i], fn, ud, replayed, e);
    }
    seg_free(seqs);
    if (rc)
        return rc;
    return wal_open_file(w, maxseq + 1, e);
}

void idx_wal_record_event(seg_buf *events, int64_t t, int explicit_id, const char *id, size_t il,
                          const char *json, size_t jl)
{
    seg_buf_put_varint(events, seg_zigzag(t));
    seg_buf_put_u8(events, (uint8_t)(explicit_id != 0));
    seg_buf_put_varint(events, il);
    seg_buf_put(events, id, il);
    seg_buf_put_varint(events, jl);
    seg_buf_put(events, json, jl);
}

int idx_wal_append(idx_wal *w, uint32_t count, const seg_buf *events, uint64_t *ticket, uint64_t *gen,
                   seg_err *e)
{
    if (events->oom)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    /* record head + the payload's leading count; the checksum covers the
     * count and the events */
    uint8_t head[16 + 10];
    seg_buf cnt = {0};
    seg_buf_put_varint(&cnt, count);
    if (cnt.oom)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    size_t plen = cnt.n + events->n;
    if (plen > (1u << 30)) {
        seg_buf_free(&cnt);
        return seg_err_set(e, SEG_ELIMIT, NULL, "batch too large for one log record");
    }
    seg_wr_u32(head, WAL_REC_MAGIC);
    seg_wr_u32(head + 4, (uint32_t)plen);
    seg_wr_u64(head + 8, seg_hash64_2(cnt.p, cnt.n, events->p, events->n));
    memcpy(head + 16, cnt.p, cnt.n);
    size_t hl = 16 + cnt.n;
    seg_buf_free(&cnt);
    size_t total = hl + events->n;
    pthread_mutex_lock(&w->mu);
    if (w->broken) {
        int rc = broken_err(w, e);
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    size_t pn = w->pend.n, partn = w->parts.n;
    seg_buf_put(&w->pend, head, hl);
    if (events->n >= WAL_BYREF) {
        add_part(w, NULL, pn, hl);
        add_part(w, events->p, 0, events->n);
    } else {
        seg_buf_put(&w->pend, events->p, events->n);
        add_part(w, NULL, pn, total);
    }
    if (w->pend.oom || w->parts.oom) {
        /* take the record back out: nothing of it may be written */
        seg_buf_truncate(&w->pend, pn);
        seg_buf_truncate(&w->parts, partn);
        pthread_mutex_unlock(&w->mu);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (write-ahead log)");
    }
    w->written += total;
    w->bytes_total += total;
    *ticket = w->written;
    *gen = w->gen;
    pthread_mutex_unlock(&w->mu);
    return SEG_OK;
}

int idx_wal_sync(idx_wal *w, uint64_t ticket, uint64_t gen, seg_err *e)
{
    int rc = SEG_OK;
    pthread_mutex_lock(&w->mu);
    while (rc == SEG_OK) {
        if (gen != w->gen) { /* a failure ended the ticket's generation */
            rc = ended_gen(w, ticket, gen, e);
            break;
        }
        if (w->synced >= ticket)
            break;
        if (w->syncing) {
            wal_waiter me = {w->waiters, ticket, {{0}}, 0};
            sem_init(&me.sem, 0, 0);
            w->waiters = &me;
            pthread_mutex_unlock(&w->mu);
            while (sem_wait(&me.sem) != 0 && errno == EINTR)
                ;
            sem_destroy(&me.sem);
            if (me.woke == WOKE_SYNCED)
                return SEG_OK;
            pthread_mutex_lock(&w->mu); /* WOKE_LEAD or WOKE_BROKEN: look again */
            continue;
        }
        /* the leader: take what is pending, write it and sync */
        w->syncing = 1;
        uint64_t target = w->written;
        int fd = w->fd;
        seg_buf mine = w->pend, mparts = w->parts;
        w->pend = w->spare;
        w->parts = w->spare_parts;
        w->pend.n = w->parts.n = 0;
        memset(&w->spare, 0, sizeof w->spare);
        memset(&w->spare_parts, 0, sizeof w->spare_parts);
        pthread_mutex_unlock(&w->mu);
        struct timespec t0, t1;
        int r = write_parts(fd, &mine, &mparts);
        const char *what = "write";
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (r == 0 && seg_failpoint("wal-sync")) {
            errno = ENOSPC; /* a test's full disk */
            r = -1;
        }
        if (r == 0) {
            r = fdatasync(fd);
            what = "fsync";
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_mutex_lock(&w->mu);
        keep_spare(&w->spare, &mine);
        keep_spare(&w->spare_parts, &mparts);
        w->syncing = 0;
        w->fsyncs++;
        w->fsync_ns_total += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
        if (r != 0) {
            int err = errno;
            wal_break(w, err);
            rc = broken_err(w, e);
            (void)what;
        } else if (target > w->synced)
            w->synced = target;
        wake_waiters(w);
        pthread_cond_broadcast(&w->cv); /* a rotation waiting for no sync to run */
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int idx_wal_rotate(idx_wal *w, uint64_t *closed_seq, int *healed, seg_err *e)
{
    *healed = 0;
    pthread_mutex_lock(&w->mu);
    while (w->syncing)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = SEG_OK;
    if (!w->broken) {
        int r = write_parts(w->fd, &w->pend, &w->parts);
        if (r == 0 && seg_failpoint("wal-sync")) {
            errno = ENOSPC;
            r = -1;
        }
        if (r == 0)
            r = fdatasync(w->fd);
        if (r != 0) {
            wal_break(w, errno);
            rc = broken_err(w, e);
        } else {
            drop_pending(w);
            w->synced = w->written;
        }
    }
    if (w->broken) {
        /* the recovery (or the rotation of a log that broke just now):
         * tickets of the ended generation were answered by wal_break */
        rc = SEG_OK;
        seg_err_clear(e);
    }
    if (rc == SEG_OK) {
        /* the next file first: the current one is closed only once its
         * successor exists, so w->fd never names a closed descriptor (a
         * number the process may give to another file).  A failure leaves
         * the current log open (sound, or broken as it was); the caller's
         * flush is retried. */
        int nfd;
        if (seg_failpoint("wal-rotate-create"))
            rc = seg_err_set(e, SEG_EIO, w->dir, "create write-ahead log: injected failure (wal-rotate-create)");
        else
            rc = wal_create(w, w->seq + 1, &nfd, e);
        if (rc == SEG_OK) {
            close(w->fd);
            w->fd = nfd;
            *closed_seq = w->seq++;
            if (w->broken) {
                *healed = w->err_no;
                __atomic_store_n(&w->broken, 0, __ATOMIC_RELEASE);
                w->recoveries++;
            }
        }
    }
    wake_waiters(w);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void idx_wal_drop_upto(idx_wal *w, uint64_t seq)
{
    uint64_t *seqs;
    size_t n;
    if (wal_list(w->dir, &seqs, &n))
        return;
    for (size_t i = 0; i < n; i++)
        if (seqs[i] <= seq) {
            char p[4200];
            wal_path(w, seqs[i], p, sizeof p);
            unlink(p);
        }
    seg_free(seqs);
}

void idx_wal_close(idx_wal *w)
{
    if (w->fd >= 0) {
        if (!w->broken)
            write_parts(w->fd, &w->pend, &w->parts);
        fdatasync(w->fd);
        close(w->fd);
        w->fd = -1;
    }
    seg_buf_free(&w->pend);
    seg_buf_free(&w->parts);
    seg_buf_free(&w->spare);
    seg_buf_free(&w->spare_parts);
    seg_buf_free(&w->rep.text);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}
