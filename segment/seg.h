/*
 * seg.h -- the segment layer of logdex: the one public header of segment/.
 *
 * segment/ knows the on-disk format and nothing of HTTP, the command line,
 * the indexer or the searcher.  It provides:
 *   - errors: integer codes from one table, seg_strerror(), and a detail
 *     object (seg_err) that carries file, line and position;
 *   - byte helpers: varints and fixed-width little-endian integers
 *     (segment/seg_util.c is the only place that encodes bytes);
 *   - the tokenizer (seg_tok_*), shared by indexing and querying;
 *   - the NDJSON event scanner (seg_json_*): validates one line exactly as
 *     jansson would and hands out flattened field/value spans;
 *   - event time parsing (seg_time_*);
 *   - the segment writer (seg_builder_*) and reader (seg_reader_*);
 *   - the per-index manifest (seg_manifest_*).
 *
 * The byte-by-byte format is described in segment/seg_format.h and
 * docs/segment-format.md.  Ownership: every *_new/_open returns an object
 * the caller frees with the matching *_free/_close; all free functions
 * accept NULL.  Pointers returned by readers point into the mmap and live
 * as long as the reader.
 */
#ifndef LOGDEX_SEG_H
#define LOGDEX_SEG_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum {
    SEG_OK = 0,
    SEG_ENOMEM,     /* out of memory */
    SEG_EIO,        /* an operating-system call failed (errno in detail) */
    SEG_ECORRUPT,   /* a file failed a checksum or a structural check */
    SEG_EVERSION,   /* a file has an unknown magic or version */
    SEG_EINVAL,     /* bad argument from the caller */
    SEG_EJSON,      /* an input line is not valid JSON / not an object */
    SEG_EQUERY,     /* a malformed query or parameter */
    SEG_ENOENT,     /* no such index or file */
    SEG_ELOCKED,    /* the data directory is locked by another writer */
    SEG_ELIMIT,     /* an input exceeded a documented limit */
    SEG_EBUSY,      /* overloaded for now: retry later */
    SEG_ENOSPC,     /* no room to store durably (disk full, or below the
                       free-space watermark): retry once space is freed */
    SEG_EUNAVAIL,   /* writes cannot be made durable for now (the log's
                       disk failed): retry later */
    SEG_NCODES
};

/* The detail of an error.  The first error set wins: later calls to
 * seg_err_set() on an error that is already set do nothing. */
typedef struct seg_err {
    int code;            /* SEG_OK when no error */
    char file[256];      /* file concerned, "" if none */
    long line;           /* 1-based input line, 0 if none */
    long pos;            /* 1-based position in a query, 0 if none */
    char msg[512];       /* human-readable reason */
} seg_err;

const char *seg_strerror(int code);
void seg_err_clear(seg_err *e);
/* Sets e (if not already set) and returns code.  file may be NULL.
 * SEG_EIO whose message holds strerror(ENOSPC) or strerror(EDQUOT) is
 * set (and returned) as SEG_ENOSPC: a full disk told from a failing one. */
int seg_err_set(seg_err *e, int code, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Formats "file: msg" etc. into buf. */
const char *seg_err_str(const seg_err *e, char *buf, size_t n);

/* ------------------------------------------------------------------ */
/* Memory: one allocation wrapper; aborts never, returns NULL.         */
/* ------------------------------------------------------------------ */
void *seg_malloc(size_t n);
void *seg_calloc(size_t n, size_t m);
void *seg_realloc(void *p, size_t n);
void seg_free(void *p);
char *seg_strndup(const char *s, size_t n);
/* arr (*cap elements of elem bytes, n of them used) with room for one
 * more: doubled from first when full.  NULL when out of memory (arr is
 * then unchanged and still the caller's). */
void *seg_grow(void *arr, uint32_t n, uint32_t *cap, uint32_t first, size_t elem);
/* Test hook: fail the Nth allocation from now (0 = never). */
void seg_fault_inject(unsigned long nth);
/* Test hook: fail count allocations in a row, from the Nth from now. */
void seg_fault_inject_run(unsigned long nth, unsigned long count);
/* Allocations still to pass before the injected failure (0: it happened,
 * or none was asked for). */
unsigned long seg_fault_left(void);
/* Crash points for crash-safety tests.  When the environment variable
 * LOGDEX_FAILPOINT is "NAME" or "NAME:N", the N-th (default first) call of
 * seg_failpoint("NAME") in the process kills it with SIGKILL, as a power
 * cut or kill -9 would; "NAME~MS" sleeps MS milliseconds at every call
 * instead (a slow disk); "NAME!N" makes the first N calls return 1, which
 * the points before a rename (segment-before-rename, file-before-rename)
 * and the creation of the next write-ahead log (wal-rotate-create) report
 * as an I/O error, and the log's write (wal-sync) as ENOSPC (a full or
 * failing disk).  Returns 0 otherwise.
 * Unset, a call costs one cached load. */
int seg_failpoint(const char *name);

/* Growable byte buffer.  Sticky error: after a failed allocation every
 * append is a no-op and .oom is set. */
typedef struct seg_buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} seg_buf;
void seg_buf_free(seg_buf *b);
/* Little-endian loads and stores (inline: hot in every decoder). */
static inline uint32_t seg_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t seg_rd_u64(const uint8_t *p)
{
    return (uint64_t)seg_rd_u32(p) | (uint64_t)seg_rd_u32(p + 4) << 32;
}
static inline void seg_wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void seg_wr_u64(uint8_t *p, uint64_t v)
{
    seg_wr_u32(p, (uint32_t)v);
    seg_wr_u32(p + 4, (uint32_t)(v >> 32));
}

/* Cuts b back to its first n bytes and clears a past allocation failure
 * (a failed growth keeps the bytes held, so those n are intact): undoes a
 * failed append, so that one failure does not fail every later one. */
static inline void seg_buf_truncate(seg_buf *b, size_t n)
{
    b->n = n;
    b->oom = 0;
}
/* Empties b for reuse (a buffer reused across calls). */
static inline void seg_buf_reset(seg_buf *b) { seg_buf_truncate(b, 0); }
/* Grows b to hold extra more bytes (the slow path of seg_buf_reserve). */
int seg_buf_grow(seg_buf *b, size_t extra);
/* The appends are inline (a build makes tens of millions of small ones:
 * out of line, their calls and a generic memmove each were ~4% of ingest). */
static inline int seg_buf_reserve(seg_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    return extra <= b->cap - b->n ? 0 : seg_buf_grow(b, extra);
}
static inline void seg_buf_put(seg_buf *b, const void *p, size_t n)
{
    if (n == 0 || seg_buf_reserve(b, n))
        return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static inline void seg_buf_put_u8(seg_buf *b, uint8_t v)
{
    if (seg_buf_reserve(b, 1) == 0)
        b->p[b->n++] = v;
}
static inline void seg_buf_put_u16(seg_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    seg_buf_put(b, x, 2);
}
static inline void seg_buf_put_u32(seg_buf *b, uint32_t v)
{
    uint8_t x[4];
    seg_wr_u32(x, v);
    seg_buf_put(b, x, 4);
}
static inline void seg_buf_put_u64(seg_buf *b, uint64_t v)
{
    uint8_t x[8];
    seg_wr_u64(x, v);
    seg_buf_put(b, x, 8);
}
static inline void seg_buf_put_f64(seg_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    seg_buf_put_u64(b, u);
}
/* Stores v as a varint at p (room for 10 bytes); returns the end. */
static inline uint8_t *seg_wr_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}
/* Bytes of v as a varint (1..10). */
static inline unsigned seg_varint_len(uint64_t v)
{
    unsigned n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static inline void seg_buf_put_varint(seg_buf *b, uint64_t v)
{
    if (seg_buf_reserve(b, 10))
        return;
    b->n = (size_t)(seg_wr_varint(b->p + b->n, v) - b->p);
}

/* Decoding helpers.  A seg_cur reads bytes within [p, end); any read past
 * the end sets .bad and returns 0, never touches memory outside. */
typedef struct seg_cur {
    const uint8_t *p, *end;
    int bad;
} seg_cur;
uint8_t seg_get_u8(seg_cur *c);
uint16_t seg_get_u16(seg_cur *c);
uint32_t seg_get_u32(seg_cur *c);
uint64_t seg_get_u64(seg_cur *c);
double seg_get_f64(seg_cur *c);
uint64_t seg_get_varint_slow(seg_cur *c);
/* A varint: one-byte values (most of them) inline, others out of line. */
static inline uint64_t seg_get_varint(seg_cur *c)
{
    if (!c->bad && c->p < c->end && *c->p < 0x80)
        return *c->p++;
    return seg_get_varint_slow(c);
}
const uint8_t *seg_get_bytes(seg_cur *c, size_t n);
static inline uint64_t seg_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t seg_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }
uint64_t seg_hash64(const void *p, size_t n); /* XXH3 64-bit */
/* XXH3 64-bit of the concatenation a + b (without copying). */
uint64_t seg_hash64_2(const void *a, size_t an, const void *b, size_t bn);

/* Bit packing: u8 bit width w (0..32), then the n values, w bits each,
 * least significant bit first, in ceil(n * w / 8) bytes. */
void seg_buf_put_packed(seg_buf *b, const uint32_t *v, size_t n);
/* Reads n packed values; returns 0, or -1 (and c->bad) on bad bytes. */
int seg_get_packed(seg_cur *c, uint32_t *out, size_t n);
/* Bit packing with exceptions (segment version >= 3): u8 h (bits 0..5:
 * the width w, 0..32; bit 7: exceptions follow; bit 6: 0), the n values'
 * low w bits as above, then when bit 7 is set: varint count (1..n), and
 * per exception, in increasing index order, varint (index - previous
 * index - 1; previous = -1) and varint (value >> w, >= 1).  The writer
 * picks the w that makes the bytes fewest: a few large values (the jump
 * after a run of adjacent docs) no longer widen every value. */
void seg_buf_put_xpacked(seg_buf *b, const uint32_t *v, size_t n);
int seg_get_xpacked(seg_cur *c, uint32_t *out, size_t n);

/* Files: write to a temporary name, fsync, rename, fsync the directory. */
int seg_fsync_dir(const char *dir, seg_err *e);
int seg_write_file_atomic(const char *path, const void *p, size_t n, seg_err *e);
int seg_mkdir_p(const char *path, seg_err *e);

/* ------------------------------------------------------------------ */
/* Tokenizer                                                           */
/* ------------------------------------------------------------------ */

/* Longest token kept, in bytes of folded UTF-8; longer tokens are cut at
 * a character boundary at this length, on both the index and query side. */
#define SEG_TOK_MAX 255

typedef struct seg_tok seg_tok;        /* one per thread: holds ICU state */
typedef void (*seg_tok_fn)(void *ud, const char *tok, size_t len);

seg_tok *seg_tok_new(void);
void seg_tok_free(seg_tok *t);
/* For tests: 0 disables the ASCII fast path (every run goes through ICU). */
void seg_tok_set_fastpath(seg_tok *t, int on);
/* Tokenizes UTF-8 text s[0..n) (invalid sequences are separators) and
 * calls fn for every token in order.  Returns the number of tokens, or -1
 * on an ICU failure. */
long seg_tok_run(seg_tok *t, const char *s, size_t n, seg_tok_fn fn, void *ud);

/* ------------------------------------------------------------------ */
/* Event scanner                                                       */
/* ------------------------------------------------------------------ */

enum { SEG_JV_STRING = 1, SEG_JV_INT, SEG_JV_REAL, SEG_JV_TRUE, SEG_JV_FALSE };

/* Length of the valid UTF-8 sequence at p (< end), or 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
int seg_utf8_len(const uint8_t *p, const uint8_t *end);

/* Limits applied to events on top of JSON validity. */
#define SEG_JSON_MAX_DEPTH 2048      /* same as jansson's parser */
#define SEG_FIELD_MAX 1024           /* longest dotted field path, bytes */
#define SEG_KEYWORD_MAX 256          /* longest string kept in a keyword column */
#define SEG_EVENT_MAX_VALUES 100000  /* values (leaves) in one event */

/* One value of a flattened event.  path is the dotted path of keys (array
 * levels add nothing); str is the decoded string for SEG_JV_STRING.
 * top is 1 for a value directly under a top-level key (not in an array). */
typedef struct seg_jval {
    const char *path;
    uint32_t path_len;
    uint8_t type;
    uint8_t top;
    const char *str;
    uint32_t str_len;
    int64_t i;
    double d;
} seg_jval;

typedef struct seg_json seg_json;     /* reusable parser state (per thread) */
seg_json *seg_json_new(void);
void seg_json_free(seg_json *j);
/* Parses one line.  Returns SEG_OK and fills *vals and *nvals (valid until the
 * next call), or SEG_EJSON / SEG_ELIMIT with a reason in e->msg.
 * A document that is not an object is an error.  Duplicate keys keep the
 * last value, as jansson does. */
int seg_json_parse(seg_json *j, const char *s, size_t n,
                   const seg_jval **vals, size_t *nvals, seg_err *e);

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/* Parses an RFC 3339 timestamp into ns since the epoch.  Returns 0 ok. */
int seg_time_parse_rfc3339(const char *s, size_t n, int64_t *ns);
/* Epoch seconds / ms / us / ns told apart by magnitude. */
int seg_time_from_number(double v, int64_t *ns);
int seg_time_from_int(int64_t v, int64_t *ns);
/* Formats ns as "2024-01-02T03:04:05.678Z" (millisecond precision). */
void seg_time_format(int64_t ns, char out[40]);
int64_t seg_time_now(void);
/* An event time in text: RFC 3339 and the forms logs carry (ISO 8601 with
 * a space, a ',' fraction or no zone; Apache's "10/Oct/2000:13:55:36
 * -0700"; syslog's "Jun 14 15:16:01", its year from now; seg_time.c).
 * used NULL: the whole of s must be the time; else a leading time, which
 * must end at a word's end, and *used its length.  Returns 0 ok. */
int seg_time_parse_text(const char *s, size_t n, int64_t now, int64_t *ns, size_t *used);
/* Event time rule: the first of fields[0..nfields) (a flattened path: may
 * be nested), then of @timestamp, timestamp, time, ts (top-level), that is
 * present and parses (strings by seg_time_parse_text, numbers by
 * magnitude).  Returns 1 and *ns if found, 0 otherwise. */
int seg_event_time_ex(const seg_jval *v, size_t n, const char *const *fields, size_t nfields, int64_t now,
                      int64_t *ns);
/* The same with no named fields, now = the clock. */
int seg_event_time(const seg_jval *v, size_t n, int64_t *ns);
/* The event's string "_id" at top level, if any. */
int seg_event_id(const seg_jval *v, size_t n, const char **id, size_t *len);

/* Canonical text of a number for the numeric-equality terms. */
size_t seg_num_canon_int(int64_t v, char out[32]);
size_t seg_num_canon_real(double v, char out[40]);

/* ------------------------------------------------------------------ */
/* Segment writer                                                      */
/* ------------------------------------------------------------------ */

typedef struct seg_builder seg_builder;

seg_builder *seg_builder_new(void);
void seg_builder_free(seg_builder *b);
/* Adds an event (copied).  explicit_id: 1 when id came from the event's
 * "_id" field (enters the id index used for de-duplication). */
int seg_builder_add(seg_builder *b, const char *json, size_t n, int64_t time_ns,
                    const char *id, size_t idlen, int explicit_id);
/* The same, with the event's values as seg_json_parse gave them for these
 * very bytes (v[k].str inside json or decoded elsewhere): kept in a compact
 * form so that the write does not scan the JSON again. */
int seg_builder_add_parsed(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                           size_t idlen, int explicit_id, const seg_jval *v, size_t nv);
/* Pre-parsed values made off the builder: a seg_flat numbers field paths
 * and encodes an event's values as a record (appended to out) that
 * seg_builder_add_flat takes with the same seg_flat (the builder copies
 * what it needs).  One seg_flat is used by one thread at a time. */
typedef struct seg_flat seg_flat;
seg_flat *seg_flat_new(void);
void seg_flat_free(seg_flat *f);
int seg_flat_encode(seg_flat *f, const char *json, size_t n, const seg_jval *v, size_t nv, seg_buf *out);
int seg_builder_add_flat(seg_builder *b, const char *json, size_t n, int64_t time_ns, const char *id,
                         size_t idlen, int explicit_id, const seg_flat *f, const uint8_t *rec, size_t len);
/* Adds event i of src (its values pre-parsed when they were). */
int seg_builder_add_from(seg_builder *b, const seg_builder *src, uint32_t i);
uint32_t seg_builder_count(const seg_builder *b);
/* A write of b stops with SEG_EBUSY ("cancelled") soon after *flag turns
 * non-zero (read atomically); nothing is left on disk. */
void seg_builder_set_cancel(seg_builder *b, const int *flag);
/* on: the file's STORE is compressed for size rather than speed (zstd
 * level 9 instead of 1 on the same ~32 KiB blocks: ~16% smaller, ~7x the
 * compression time) and its header says so (SEG_FLAG_COMPACT).
 * For buckets that have settled; in-memory segments ignore it. */
void seg_builder_set_compact(seg_builder *b, int on);
/* The JSON bytes and time of the i-th added event (in order of adding). */
void seg_builder_event(const seg_builder *b, uint32_t i, const char **json, size_t *len, int64_t *time,
                       const char **id, size_t *idlen, int *explicit_id);
size_t seg_builder_bytes(const seg_builder *b);
/* The order of the events in the segment the builder writes: order[d] is
 * the index (in order of adding) of the event that becomes doc d (time
 * descending, then _id ascending).  order has count entries. */
void seg_builder_order(const seg_builder *b, uint32_t *order);
/* Sorts, indexes and writes the segment to path (temp name, fsync,
 * rename, directory fsync).  tok and js are the calling thread's. */
int seg_builder_write(seg_builder *b, seg_tok *tok, seg_json *js,
                      const char *path, uint64_t *bytes_out, seg_err *e);
/* The same for a part of the events: slice[0..n) is a run of the order
 * seg_builder_order gives (so the segment covers one stretch of time);
 * the builder is only read, so threads may write disjoint slices of one
 * builder at once. */
int seg_builder_write_slice(seg_builder *b, const uint32_t *slice, uint32_t n, seg_tok *tok, seg_json *js,
                            const char *path, uint64_t *bytes_out, seg_err *e);

/* The same, into memory (out receives the whole file's bytes): for the
 * in-memory segments that make buffered events searchable. */
int seg_builder_write_mem(seg_builder *b, seg_tok *tok, seg_json *js, seg_buf *out, seg_err *e);

/* A partial in-memory segment, only for matching (the live tail): the
 * named fields indexed fully (terms, existence, numbers), and when
 * any_text is set the tokens of every string field; no other field, no
 * STORE and no KEYCOL sections.  Events are not fetched from it.  only
 * NULL: everything, as seg_builder_write_mem. */
typedef struct seg_index_only {
    char **fields;
    size_t nfields;
    int any_text;
} seg_index_only;
int seg_builder_write_partial(seg_builder *b, seg_tok *tok, seg_json *js, const seg_index_only *only,
                              seg_buf *out, seg_err *e);

/* The event store's column layout (STORE codec 2; segment/seg_shape.c
 * describes it byte by byte).  seg_shape_split lays out one raw block (per
 * record: varint id length, id, varint JSON length, JSON) by columns,
 * appending to out: SEG_OK; 1 when the block cannot be laid out so (a JSON
 * holds 0x01, 0x02 or 0x0A, a string a byte below 0x20, or a string is not
 * closed: store it raw); SEG_EINVAL
 * for records that do not parse; SEG_ENOMEM.  The shaper is scratch reused
 * across blocks (one per thread).  seg_shape_join lays src[0..n) back into
 * exactly rawlen bytes of records at dst: SEG_OK, SEG_ECORRUPT when the
 * bytes do not describe ndocs records of rawlen bytes, or SEG_ENOMEM. */
typedef struct seg_shaper seg_shaper;
seg_shaper *seg_shaper_new(void);
void seg_shaper_free(seg_shaper *s);
int seg_shape_split(seg_shaper *s, const uint8_t *raw, size_t n, seg_buf *out);
int seg_shape_join(const uint8_t *src, size_t n, uint32_t ndocs, uint8_t *dst, size_t rawlen);

/* ------------------------------------------------------------------ */
/* Segment reader                                                      */
/* ------------------------------------------------------------------ */

typedef struct seg_reader seg_reader;

/* Field statistics (the FIELDS section). */
enum { SEG_F_STRING = 1, SEG_F_INT = 2, SEG_F_REAL = 4, SEG_F_BOOL = 8 };
typedef struct seg_field {
    const char *name;
    uint32_t name_len;
    uint8_t flags;          /* SEG_F_* */
    uint32_t docs;          /* events in which the field has a value */
    uint32_t nnum;          /* numeric values */
    double num_min, num_max;
} seg_field;

/* Term key kinds (last byte of every key). */
enum { SEG_K_TEXT = 0, SEG_K_VALUE = 1, SEG_K_EXISTS = 2 };

int seg_reader_open(const char *path, seg_reader **out, seg_err *e);
/* Opens a segment held in memory; takes ownership of buf (seg_malloc'd),
 * freed with the reader.  name is used in messages. */
int seg_reader_open_mem(const char *name, uint8_t *buf, size_t n, seg_reader **out, seg_err *e);
/* Closes the reader (the caller's only reference). */
void seg_reader_close(seg_reader *r);
/* Reference counting for readers shared between snapshots: a reader is
 * opened with one reference; unref closes it at zero. */
void seg_reader_ref(seg_reader *r);
void seg_reader_unref(seg_reader *r);

/* A snapshot: a reference-counted set of readers (each referenced). */
typedef struct seg_set seg_set;
seg_set *seg_set_new(seg_reader *const *r, size_t n);
void seg_set_ref(seg_set *s);
void seg_set_unref(seg_set *s);
size_t seg_set_count(const seg_set *s);
seg_reader *seg_set_at(const seg_set *s, size_t i);
const char *seg_reader_path(const seg_reader *r);
uint32_t seg_reader_ndocs(const seg_reader *r);
int64_t seg_reader_min_time(const seg_reader *r);
int64_t seg_reader_max_time(const seg_reader *r);
uint64_t seg_reader_bytes(const seg_reader *r);
/* The header's flags: SEG_FLAG_COMPACT when the STORE was written for size. */
uint32_t seg_reader_flags(const seg_reader *r);
enum { SEG_FLAG_COMPACT = 1 };
uint32_t seg_reader_version(const seg_reader *r);
/* The process's cache of decoded event-store blocks (file segments): its
 * capacity in bytes (default 64 MiB; 0 turns it off and empties it), and
 * its counters. */
void seg_block_cache_set(size_t bytes);
void seg_block_cache_stats(uint64_t *hits, uint64_t *misses, size_t *bytes);
/* The file's sections in directory order: section i's kind, arg and bytes
 * (its checksum verified first: SEG_ECORRUPT when it fails). */
uint32_t seg_reader_nsections(const seg_reader *r);
int seg_reader_section(seg_reader *r, uint32_t i, uint32_t *kind, uint32_t *arg, const uint8_t **p, size_t *n,
                       seg_err *e);
/* Writes r's segment again to path (temp name, fsync, rename, directory
 * fsync) with its events compressed for size (SEG_FLAG_COMPACT); every
 * other section is copied as it is, after its checksum is verified, so the
 * index is not rebuilt (a fraction of a merge's work).  Only for segments
 * of this build's version (SEG_EVERSION otherwise: merge them instead).
 * A write stops with SEG_EBUSY soon after *cancel turns non-zero. */
int seg_rewrite_compact(seg_reader *r, const char *path, const int *cancel, uint64_t *bytes_out, seg_err *e);
uint32_t seg_reader_nfields(const seg_reader *r);
const seg_field *seg_reader_field(const seg_reader *r, uint32_t id);
int seg_reader_field_find(seg_reader *r, const char *name, size_t n); /* -1 */
/* Sticky: once a section failed its check, the reader reports it. */
int seg_reader_failed(const seg_reader *r, seg_err *e);

/* Times: doc ids are in (time desc, id asc) order. */
int seg_reader_time(seg_reader *r, uint32_t doc, int64_t *t, seg_err *e);
/* First doc whose time is <= t (i.e. at or older than t); ndocs if none. */
int seg_reader_time_seek_le(seg_reader *r, int64_t t, uint32_t *doc, seg_err *e);
/* First doc whose time is < t; ndocs if none. */
int seg_reader_time_seek_lt(seg_reader *r, int64_t t, uint32_t *doc, seg_err *e);

/* Term dictionary.  Keys are token bytes, 0x00, field id (u16 BE), kind. */
size_t seg_key_make(uint8_t *out, const char *tok, size_t toklen, uint16_t field, uint8_t kind);
typedef struct seg_term {
    const uint8_t *key;   /* valid until the next call on the iterator */
    uint32_t key_len;
    uint8_t kind;         /* SEG_K_*: the key's last byte */
    uint32_t df;
    uint64_t post_off, post_len;
    const uint8_t *inl;   /* df 1 (version >= 2): the doc and positions,
                           * inline in the dictionary; else NULL */
    uint32_t inl_len;
} seg_term;
typedef struct seg_dict_iter seg_dict_iter;
/* Iterates keys >= from (all keys if from_len==0) in order. */
int seg_dict_iter_open(seg_reader *r, const uint8_t *from, size_t from_len,
                       seg_dict_iter **out, seg_err *e);
/* 1 = a term in *t, 0 = end, <0 = error (in e). */
int seg_dict_iter_next(seg_dict_iter *it, seg_term *t, seg_err *e);
void seg_dict_iter_free(seg_dict_iter *it);
/* Exact lookup: 1 found, 0 not found, <0 error. */
int seg_dict_get(seg_reader *r, const uint8_t *key, size_t n, seg_term *t, seg_err *e);

/* Postings of one term. */
typedef struct seg_post seg_post;
#define SEG_DOC_END UINT32_MAX
/* Opens the postings of t (from the dictionary; t->kind says whether the
 * postings carry positions). */
int seg_post_open(seg_reader *r, const seg_term *t, seg_post **out, seg_err *e);
void seg_post_free(seg_post *p);
/* Current doc (SEG_DOC_END when exhausted). */
uint32_t seg_post_doc(const seg_post *p);
/* Advance to the next doc; returns the new doc. */
uint32_t seg_post_next(seg_post *p);
/* Advance to the first doc >= target (skipping whole blocks). */
uint32_t seg_post_seek(seg_post *p, uint32_t target);
/* Positions of the current doc (sorted). */
int seg_post_positions(seg_post *p, const uint32_t **pos, uint32_t *n);
/* Non-zero when decoding hit corrupt bytes (then the doc is END). */
int seg_post_error(const seg_post *p);
uint32_t seg_post_df(const seg_post *p);

/* Numeric columns: calls fn(ud, doc, value) for every value in
 * [lo, hi] (with the bounds' inclusivity), skipping blocks by min/max. */
typedef void (*seg_num_fn)(void *ud, uint32_t doc, double v);
int seg_reader_num_scan(seg_reader *r, uint32_t field, double lo, int lo_incl,
                        double hi, int hi_incl, seg_num_fn fn, void *ud, seg_err *e);

/* Keyword columns (dictionary-encoded string values, see seg_format.h). */
typedef struct seg_keycol {
    uint32_t npairs, ndict, nblocks;
    const uint8_t *offs, *vals, *index, *data, *end;
    uint32_t vals_len;
} seg_keycol;
/* 1 and *kc when the field has a keyword column, 0 when not, <0 error. */
int seg_reader_keycol(seg_reader *r, uint32_t field, seg_keycol *kc, seg_err *e);
/* Value of ordinal ord: 0, or -1 when out of bounds. */
int seg_keycol_value(const seg_keycol *kc, uint32_t ord, const char **p, size_t *n);
/* Calls fn(ud, doc, ordinal) for every pair, in doc order. */
typedef void (*seg_kw_fn)(void *ud, uint32_t doc, uint32_t ord);
int seg_reader_keycol_scan(seg_reader *r, const seg_keycol *kc, seg_kw_fn fn, void *ud, seg_err *e);
/* Counts, for every ordinal, the docs holding it (a doc with a value twice
 * counts once): cnt[] and last[] have kc->ndict entries, last[] zeroed
 * (it keeps doc + 1 of the latest count).  A terms count over all docs. */
int seg_reader_keycol_count(seg_reader *r, const seg_keycol *kc, uint32_t *cnt, uint32_t *last, seg_err *e);
/* The stored per-ordinal doc counts of field's keyword column (KEYCOUNT,
 * version >= 2): 1 with *counts at kc->ndict little-endian u32, 0 when the
 * segment has none, -1 when corrupt. */
int seg_reader_keycol_counts(seg_reader *r, uint32_t field, const seg_keycol *kc, const uint8_t **counts,
                             seg_err *e);
/* The times of docs [lo, hi) into out[0 .. hi-lo). */
int seg_reader_times(seg_reader *r, uint32_t lo, uint32_t hi, int64_t *out, seg_err *e);

/* Stored events.  A seg_store_cur caches one decompressed block; one per
 * thread.  *json and *id stay valid until the next read on the cursor. */
typedef struct seg_store_cur seg_store_cur;
seg_store_cur *seg_store_cur_new(void);
void seg_store_cur_free(seg_store_cur *c);
int seg_reader_doc(seg_reader *r, seg_store_cur *c, uint32_t doc,
                   const char **id, size_t *idlen, const char **json, size_t *jlen,
                   seg_err *e);

/* Explicit _id index: 1 and *doc when an event with this id is stored. */
int seg_reader_id_find(seg_reader *r, seg_store_cur *c, const char *id, size_t n,
                       uint32_t *doc, seg_err *e);

/* The explicit-id index: *recs points to n records of 12 bytes
 * (u64 hash, u32 doc), sorted by hash. */
int seg_reader_ids(seg_reader *r, const uint8_t **recs, uint32_t *n, seg_err *e);

/* Full check of every section's checksum and structure.  Calls report()
 * for each problem; returns the number of problems. */
typedef void (*seg_report_fn)(void *ud, const char *file, const char *problem);
long seg_reader_verify(const char *path, seg_report_fn report, void *ud);

/* Dump a human-readable description of the sections (for `logdex dump`). */
int seg_reader_dump(const char *path, void (*out)(void *ud, const char *line), void *ud);
/* Counts the STORE's blocks by codec (counts[0] LZ4, [1] zstd, [2] zstd
 * laid out by columns: seg_format.h).  SEG_OK or SEG_ECORRUPT. */
int seg_reader_store_codecs(seg_reader *r, int counts[3]);

/* ------------------------------------------------------------------ */
/* Manifest: the live segments of one index                            */
/* ------------------------------------------------------------------ */

typedef struct seg_mentry {
    char name[64];        /* file name within the index directory */
    int64_t bucket;       /* bucket start, ns */
    int64_t bucket_end;   /* 0: the segment holds one bucket; else the end
                             (exclusive, ns) of the buckets it spans (a
                             merge of sparse settled buckets) */
    uint32_t docs;
    int64_t min_time, max_time;
    uint64_t bytes;
} seg_mentry;

/* The end (exclusive, ns) of the buckets entry m holds; width: the
 * manifest's bucket width. */
static inline int64_t seg_mentry_end(const seg_mentry *m, int64_t width)
{
    return m->bucket_end ? m->bucket_end : m->bucket + width;
}

typedef struct seg_manifest {
    uint64_t next_seq;
    int64_t bucket_ns;
    uint64_t wal_done;    /* write-ahead log files <= this are in segments */
    seg_mentry *e;
    size_t n, cap;
} seg_manifest;

/* Loads dir/manifest; a missing file gives an empty manifest (exists=0). */
int seg_manifest_load(const char *dir, seg_manifest *m, int *exists, seg_err *e);
/* The same from the file's bytes text[0..n) (path names it in errors). */
int seg_manifest_parse(const char *text, size_t n, const char *path, seg_manifest *m, seg_err *e);
/* Replaces dir/manifest atomically. */
int seg_manifest_save(const char *dir, const seg_manifest *m, seg_err *e);
int seg_manifest_add(seg_manifest *m, const seg_mentry *ent);
void seg_manifest_free(seg_manifest *m);

#endif
