/*
 * logdex.c -- the command line: ingest, search, stats, verify, dump.
 *
 * api/ only translates: arguments and files in, calls into indexer/ and
 * searcher/, JSON or NDJSON out.  No engine logic lives here.
 */
#define _GNU_SOURCE
#include "api/api_int.h"
#include "indexer/idx.h"
#include "searcher/srch.h"

#include <ctype.h>
#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <zlib.h>
#include <zstd.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (64u << 20)

static const char *const usage_main =
    "usage: logdex COMMAND [OPTIONS]\n"
    "\n"
    "A time-series log search engine: NDJSON events in, search over time-bucketed\n"
    "immutable segments out.\n"
    "\n"
    "commands:\n"
    "  ingest   load NDJSON files into an index\n"
    "  search   print the events matching a query, newest first\n"
    "  agg      aggregate: histograms over time, top values, stats, percentiles\n"
    "  tail     follow a server: print matching events as they are ingested\n"
    "  stats    print an index's event, segment, bucket and byte counts\n"
    "  fields   print an index's fields (types, counts) and time fields\n"
    "  indexes  list the indexes of a data directory with their counts\n"
    "  compact  merge the small segments of each bucket (offline)\n"
    "  verify   check every checksum and structure of a data directory\n"
    "  dump     describe the sections of one segment file\n"
    "  serve    serve the HTTP API\n"
    "\n"
    "'logdex COMMAND --help' describes each command's options.\n";

static const char *const usage_ingest =
    "usage: logdex ingest [--data DIR] [--index NAME] [FILE ...]\n"
    "\n"
    "Loads NDJSON (one JSON object a line; '-' or no FILE reads standard input;\n"
    "gzip files, and zstd files named *.zst, are read decompressed)\n"
    "into DIR/NAME.  The server must not be running on DIR.  Bad lines are\n"
    "reported on standard error as FILE:LINE: reason; the others are stored.\n"
    "Prints {\"accepted\":N,\"rejected\":M,\"duplicates\":D,\"arrival_time\":A,\n"
    "\"bytes\":B,\"seconds\":S}: A of the accepted events had no time field that\n"
    "parsed and are timed by their arrival.  The first 20 rejected lines are\n"
    "printed, the others counted by reason.  Exit 1 when every line was\n"
    "rejected.\n"
    "\n"
    "  --data DIR        data directory (default ./data)\n"
    "  --index NAME      index name (default 'default'; [a-z0-9][a-z0-9_.-]{0,63})\n"
    "  --format F        ndjson (default; a file that is one JSON array also\n"
    "                    works) or text: each line stored as {\"message\":LINE},\n"
    "                    timed by a leading timestamp when one parses; or\n"
    "                    combined: Apache/nginx access log lines parsed into\n"
    "                    fields (ECS names), timed by their [time]\n"
    "  --url URL         send to a running server (URL/api/v1/NAME/ingest, in\n"
    "                    batches of 4 MiB; a batch refused for now is sent again\n"
    "                    after the server's Retry-After) instead of --data\n"
    "  --token T         with --url: a bearer token\n"
    "  --time-field F[,G...]  the index's time fields, tried in order before the\n"
    "                    built-in @timestamp, timestamp, time, ts (a.b: nested);\n"
    "                    set once, when the index is created\n"
    "  --bucket DUR      bucket width for a new index: 10m, 1h (default), 1d\n"
    "  --buffer-mb N     flush segments every N MiB of events (default 64)\n"
    "  --threads N       segment builders (default 2)\n"
    "  --flush-every N   also write segments every N events (to test and measure\n"
    "                    stores made of many small flushes)\n"
    "  --max-future DUR  reject events dated more than DUR ahead of the clock\n"
    "                    (default 1d; 0 = accept any time)\n"
    "  --quiet           no progress bar\n";

static const char *const usage_fields =
    "usage: logdex fields [--data DIR] [--index NAME]\n"
    "\n"
    "Prints {\"fields\":[{\"name\",\"types\",\"count\"}],\"time_field\":[...]}: the\n"
    "index's fields with their value types and the number of events holding\n"
    "each, and the fields that time its events, in the order tried (as GET\n"
    "/api/v1/INDEX/fields).\n";

static const char *const usage_indexes =
    "usage: logdex indexes [--data DIR]\n"
    "\n"
    "Prints {\"indexes\":[{\"name\",\"stats\":{...}}]}: every index of DIR with\n"
    "its counts (as GET /api/v1/indexes and logdex stats).\n";

static const char *const usage_compact =
    "usage: logdex compact [--data DIR] [--index NAME] [--target-mb N] [--threads N]\n"
    "\n"
    "Merges the small segments of every bucket of DIR/NAME into larger ones and\n"
    "rewrites the others with their events compressed for size (~20% smaller),\n"
    "as the server does in the background once a bucket has settled (e.g. after\n"
    "a bulk load).  The server must not be running on DIR.  Prints\n"
    "{\"merges\":N,\"rewrites\":R,\"segments_before\":A,\"segments_after\":B,...}.\n"
    "\n"
    "  --data DIR        data directory (default ./data)\n"
    "  --index NAME      index name (default 'default')\n"
    "  --target-mb N     largest segment a merge builds, in MiB (default 512)\n"
    "  --threads N       merges at once, each in its own bucket (default 2)\n";

static const char *const usage_search =
    "usage: logdex search [--data DIR] [--index NAME] [--start T] [--end T]\n"
    "                     [--limit N] [--count] [--cursor C] QUERY\n"
    "\n"
    "Prints the matching events, newest first: on a terminal a readable line\n"
    "each (time, level, message), else one original JSON object a line.\n"
    "QUERY uses the query language (docs/query-language.md); '' or '*' is all.\n"
    "\n"
    "  --start T, --end T  time range, start inclusive, end exclusive: RFC 3339,\n"
    "                      epoch seconds or ms, a date (2024-06-01), now, now-15m\n"
    "                      (units s m h d w)\n"
    "  --limit N           at most N events (default 100; 0: all)\n"
    "  --sort F[:asc|desc] order by a numeric field (ascending unless :desc;\n"
    "                      events without it last, ties newest first) or by\n"
    "                      _time (newest first unless :asc)\n"
    "  --json              one original JSON object a line (the default when the\n"
    "                      output is not a terminal)\n"
    "  --human             a line per event: time, level, message (the default\n"
    "                      on a terminal; with --fields: time and those fields)\n"
    "  --fields a,b.c      print only these fields of each event (shell patterns;\n"
    "                      a field brings what is under it)\n"
    "  --count             print only the number of matching events\n"
    "  --cursor C          continue after a previous page (see --page-info)\n"
    "  --page-info         also print {\"total\":N,\"cursor\":C} on standard error\n"
    "  --threads N         search threads (default: one per core)\n";

static const char *const usage_agg =
    "usage: logdex agg [--data DIR] [--index NAME] JSON\n"
    "\n"
    "Runs an aggregation request, the same JSON as POST /api/v1/{index}/aggregate\n"
    "(docs/aggregations.md), and prints the same answer.  Example:\n"
    "  logdex agg '{\"q\":\"level:error\",\"aggs\":{\"per_min\":{\"date_histogram\":{\"interval\":\"1m\"}}}}'\n";

static const char *const usage_tail =
    "usage: logdex tail [--url URL] [--index NAME] [--backfill N] [--token TOKEN] [--retries N] QUERY\n"
    "\n"
    "Connects to a running server (default http://127.0.0.1:9200) and prints\n"
    "the events matching QUERY as NDJSON lines, as they are ingested; with\n"
    "--backfill N, first the N newest stored matches.  Reconnects after a\n"
    "dropped connection, resuming after the last event seen.  A server that\n"
    "cannot be reached is tried again every second, saying so on standard\n"
    "error, --retries times in a row at most (default 30), then tail exits 1.\n"
    "Ctrl-C stops.\n";

static const char *const usage_stats =
    "usage: logdex stats [--data DIR] [--index NAME]\n"
    "\n"
    "Prints {\"events\":N,\"segments\":S,\"buckets\":K,\"bytes\":B,\n"
    "\"max_segments_per_bucket\":M,\"per_bucket\":[{\"start\",\"segments\",\"events\",\n"
    "\"bytes\"},...]}: bytes counts every file the index keeps on disk;\n"
    "per_bucket lists the time buckets, oldest first.\n";

static const char *const usage_verify =
    "usage: logdex verify [--data DIR]\n"
    "\n"
    "Checks every manifest and every segment of every index in DIR: checksums,\n"
    "structure, postings, columns and stored events.  Prints each problem with its\n"
    "file; exits 0 only when everything is sound.\n";

static const char *const usage_dump =
    "usage: logdex dump FILE.seg\n"
    "\n"
    "Describes a segment: header, sections, fields and its first terms.\n";

static int usage_err(const char *u)
{
    fputs(u, stderr);
    return 2;
}

/* The words of argv[from..argc) joined by spaces, NUL-terminated, in *out
 * (a query given as several arguments). */
static void join_args(int argc, char **argv, int from, seg_buf *out)
{
    for (int i = from; i < argc; i++) {
        if (i > from)
            seg_buf_put_u8(out, ' ');
        seg_buf_put(out, argv[i], strlen(argv[i]));
    }
    seg_buf_put_u8(out, 0);
}

/* Options of the commands that take only --data, --index and --help:
 * -1 when the command goes on, else its exit status. */
static int data_index_opts(int argc, char **argv, const char *cmd, const char *usage, const char **data,
                           const char **index)
{
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"index", 1, 0, 'i'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    *data = "./data";
    *index = "default";
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': *data = optarg; break;
        case 'i': *index = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: return usage_err(usage);
        }
    }
    if (!idx_name_valid(*index)) {
        fprintf(stderr, "logdex %s: invalid index name '%s'\n", cmd, *index);
        return 2;
    }
    return -1;
}

/* The same for the commands that take only --data and --help (no other
 * argument). */
static int data_opts(int argc, char **argv, const char *usage, const char **data)
{
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    *data = "./data";
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': *data = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: return usage_err(usage);
        }
    }
    return optind < argc ? usage_err(usage) : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_err(const char *what, const seg_err *e)
{
    char buf[1024];
    fprintf(stderr, "logdex %s: %s\n", what, seg_err_str(e, buf, sizeof buf));
}

/* ------------------------------------------------------------------ */
/* ingest                                                               */
/* ------------------------------------------------------------------ */

typedef struct ingest_ctx {
    const char *file;
    int progress;
    double t0, last;
    uint64_t bytes_read;
    int text;                  /* --format text (1) or combined (2) */
    int64_t now;
    seg_buf line;              /* text: the line's event */
    /* rejected lines: the first REJECT_SHOWN are printed, the rest counted
     * by reason (the reason's text up to " near byte") */
    uint64_t nrej;
    struct {
        char why[96];
        uint64_t n;
    } rej[16];
    int nkinds;
    uint64_t rej_other;
    cli_sender *snd;           /* --url: lines go to a server */
    uint64_t local_rejects;    /* --url: lines refused here (too long) */
    uint64_t file_size;        /* the current file's size (0: unknown) */
    uint64_t file_start;       /* bytes_read when it was opened */
} ingest_ctx;

#define REJECT_SHOWN 20

/* ---- input files: plain, gzip (any file: zlib reads plain ones through)
 * or zstd (by the .zst name) ---- */
typedef struct src {
    FILE *f;
    gzFile gz;
    ZSTD_DCtx *z;
    char *zin;
    ZSTD_inBuffer in;
    int zeof;
} src;

#define ZIN_CAP ((size_t)1 << 17)

static int src_open(src *s, FILE *f, const char *name, seg_err *e)
{
    memset(s, 0, sizeof *s);
    s->f = f;
    size_t l = strlen(name);
    if (l > 4 && !strcmp(name + l - 4, ".zst")) {
        s->z = ZSTD_createDCtx();
        s->zin = malloc(ZIN_CAP);
        if (!s->z || !s->zin)
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        return SEG_OK;
    }
    int fd = dup(fileno(f));
    if (fd < 0 || !(s->gz = gzdopen(fd, "rb"))) {
        if (fd >= 0)
            close(fd);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (zlib)");
    }
    gzbuffer(s->gz, 1u << 17);
    return SEG_OK;
}

/* Bytes read into buf (0 at the end), or -1 with e set. */
static ssize_t src_read(src *s, char *buf, size_t cap, const char *name, seg_err *e)
{
    if (s->gz) {
        int n = gzread(s->gz, buf, (unsigned)(cap < (1u << 30) ? cap : (1u << 30)));
        if (n < 0) {
            int zerr;
            const char *m = gzerror(s->gz, &zerr);
            seg_err_set(e, zerr == Z_ERRNO ? SEG_EIO : SEG_ECORRUPT, name, "read: %s",
                        zerr == Z_ERRNO ? strerror(errno) : m);
            return -1;
        }
        return n;
    }
    ZSTD_outBuffer out = {buf, cap, 0};
    while (out.pos == 0) {
        if (s->in.pos == s->in.size) {
            if (s->zeof)
                return 0;
            size_t got = fread(s->zin, 1, ZIN_CAP, s->f);
            if (got == 0) {
                if (ferror(s->f)) {
                    seg_err_set(e, SEG_EIO, name, "read: %s", strerror(errno));
                    return -1;
                }
                s->zeof = 1;
                continue;
            }
            s->in = (ZSTD_inBuffer){s->zin, got, 0};
        }
        size_t r = ZSTD_decompressStream(s->z, &out, &s->in);
        if (ZSTD_isError(r)) {
            seg_err_set(e, SEG_ECORRUPT, name, "zstd: %s", ZSTD_getErrorName(r));
            return -1;
        }
    }
    return (ssize_t)out.pos;
}

static void src_close(src *s)
{
    if (s->gz)
        gzclose(s->gz);
    ZSTD_freeDCtx(s->z);
    free(s->zin);
}

static void on_reject(void *ud, long line, const char *reason)
{
    ingest_ctx *c = ud;
    if (c->nrej++ < REJECT_SHOWN) {
        fprintf(stderr, "%s:%ld: %s\n", c->file, line, reason);
        return;
    }
    const char *cut = strstr(reason, " near byte");
    int l = cut ? (int)(cut - reason) : (int)strlen(reason);
    for (int k = 0; k < c->nkinds; k++)
        if ((int)strlen(c->rej[k].why) == (l < 95 ? l : 95) && !strncmp(c->rej[k].why, reason, (size_t)(l < 95 ? l : 95))) {
            c->rej[k].n++;
            return;
        }
    if (c->nkinds < 16) {
        snprintf(c->rej[c->nkinds].why, sizeof c->rej[0].why, "%.*s", l, reason);
        c->rej[c->nkinds++].n = 1;
    } else {
        c->rej_other++;
    }
}

/* A line the server rejected (--url): reported as the ones refused here. */
static void on_remote_reject(void *ud, const char *file, long line, const char *reason)
{
    ingest_ctx *c = ud;
    const char *keep = c->file;
    c->file = file;
    on_reject(c, line, reason);
    c->file = keep;
}

/* After the run: the rejected lines past the first REJECT_SHOWN, by reason. */
static void reject_summary(const ingest_ctx *c)
{
    if (c->nrej <= REJECT_SHOWN)
        return;
    fprintf(stderr, "... and %llu more rejected lines:", (unsigned long long)(c->nrej - REJECT_SHOWN));
    for (int k = 0; k < c->nkinds; k++)
        fprintf(stderr, "%s %llu '%s'", k ? "," : "", (unsigned long long)c->rej[k].n, c->rej[k].why);
    if (c->rej_other)
        fprintf(stderr, ", %llu for other reasons", (unsigned long long)c->rej_other);
    fputc('\n', stderr);
}

static void progress(ingest_ctx *c, idx_writer *w, int final)
{
    double t = now_s();
    if (!c->progress || (!final && t - c->last < 0.2))
        return;
    c->last = t;
    uint64_t acc = w ? idx_get_counts(w)->accepted : cli_sender_counts(c->snd)->accepted;
    double mb = (double)c->bytes_read / 1048576.0, dt = t - c->t0 > 1e-9 ? t - c->t0 : 1e-9;
    uint64_t done = c->bytes_read - c->file_start;
    if (c->file_size && done <= c->file_size && done) {
        /* a plain file of known size: how far, and how long still */
        double f = (double)done / (double)c->file_size;
        fprintf(stderr, "\r%s: %3.0f%%, %llu events, %.1f MB/s, ETA %.0f s%s", c->file, f * 100,
                (unsigned long long)acc, mb / dt, dt / f - dt, final ? "\n" : "   ");
        return;
    }
    fprintf(stderr, "\r%llu events, %.1f MB, %.1f MB/s%s", (unsigned long long)acc, mb, mb / dt,
            final ? "\n" : "   ");
}

/* One line, refused past MAX_LINE: the read buffer grows by doubling
 * (to 128 MiB), so a line between the limit and the buffer's size must be
 * refused here, not only one that overflows the buffer. */
static int add_line_limited(idx_writer *w, const char *line, size_t n, long lineno, ingest_ctx *c, seg_err *e)
{
    if (n > MAX_LINE) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %u bytes", MAX_LINE);
        if (c->snd) {
            c->local_rejects++;
            on_reject(c, lineno, why);
        } else {
            idx_reject(w, lineno, n, why, on_reject, c);
        }
        return SEG_OK;
    }
    if (c->snd) /* the server turns text lines into events itself */
        return cli_sender_line(c->snd, c->file, lineno, line, n, e);
    if (!c->text)
        return idx_add_line(w, line, n, lineno, on_reject, c, e);
    /* --format text or combined: the line's event, timed by its own time */
    if (n && line[n - 1] == '\r')
        n--;
    idx_line_time lt = {0, 0};
    c->line.n = 0;
    if (!api_line_event(&c->line, line, n, c->text == 2, c->now, &lt))
        return SEG_OK;
    if (c->line.oom)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    return idx_add_line_timed(w, (const char *)c->line.p, c->line.n, lineno, &lt, on_reject, c, e);
}

/* A file that is one JSON array ([{...},{...}], pretty-printed or not):
 * read whole (head: what was read already), each element stored as a
 * line of its own. */
static int ingest_array(idx_writer *w, src *in, const char *head, size_t hn, ingest_ctx *c, seg_err *e)
{
    seg_buf all = {0}, nd = {0};
    seg_buf_put(&all, head, hn);
    int rc = SEG_OK;
    for (;;) {
        if (seg_buf_reserve(&all, 1u << 20)) {
            rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
            break;
        }
        ssize_t got = src_read(in, (char *)all.p + all.n, all.cap - all.n, c->file, e);
        if (got < 0) {
            rc = e->code;
            break;
        }
        if (got == 0)
            break;
        all.n += (size_t)got;
        c->bytes_read += (uint64_t)got;
    }
    if (rc == SEG_OK) {
        int a = api_array_to_ndjson((const char *)all.p, all.n, &nd);
        if (a < 0)
            rc = nd.oom ? seg_err_set(e, SEG_ENOMEM, NULL, "out of memory")
                        : seg_err_set(e, SEG_EJSON, c->file, "starts with '[' but is not a JSON array of values");
    }
    long lineno = 0;
    for (size_t at = 0; rc == SEG_OK && at < nd.n;) {
        const char *nl = memchr(nd.p + at, '\n', nd.n - at);
        size_t end = nl ? (size_t)(nl - (const char *)nd.p) : nd.n;
        rc = c->snd ? cli_sender_line(c->snd, c->file, ++lineno, (const char *)nd.p + at, end - at, e)
                    : idx_add_line(w, (const char *)nd.p + at, end - at, ++lineno, on_reject, c, e);
        at = end + 1;
    }
    seg_buf_free(&all);
    seg_buf_free(&nd);
    return rc;
}

static int ingest_fd(idx_writer *w, FILE *f, ingest_ctx *c, seg_err *e)
{
    size_t cap = 4u << 20, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    src in;
    long lineno = 0;
    int skipping = 0, rc = SEG_OK, first = 1;
    if ((rc = src_open(&in, f, c->file, e))) {
        src_close(&in);
        free(buf);
        return rc;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_LINE + (4u << 20)) {
                /* a line longer than the limit: reject it, skip to its end */
                char why[64];
                snprintf(why, sizeof why, "line longer than %u bytes", MAX_LINE);
                idx_reject(w, ++lineno, len, why, on_reject, c);
                skipping = 1;
                len = 0;
            } else {
                cap *= 2;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    rc = seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
                    break;
                }
                buf = nb;
            }
        }
        ssize_t sgot = src_read(&in, buf + len, cap - len, c->file, e);
        if (sgot < 0) {
            rc = e->code;
            break;
        }
        size_t got = (size_t)sgot;
        c->bytes_read += got;
        int eof = got == 0;
        len += got;
        size_t start = 0;
        if (first && (len >= 3 || eof)) {
            first = 0;
            start = api_bom(buf, len); /* a UTF-8 byte order mark */
            size_t k = start;
            while (k < len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\n' || buf[k] == '\r'))
                k++;
            if (!c->text && k < len && buf[k] == '[') {
                rc = ingest_array(w, &in, buf + start, len - start, c, e);
                goto out;
            }
        }
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (!nl)
                break;
            size_t end = (size_t)(nl - buf);
            if (skipping) {
                skipping = 0;
            } else {
                lineno++;
                if ((rc = add_line_limited(w, buf + start, end - start, lineno, c, e)))
                    goto out;
            }
            start = end + 1;
        }
        if (eof) {
            if (start < len && !skipping) {
                lineno++;
                rc = add_line_limited(w, buf + start, len - start, lineno, c, e);
            }
            break;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        progress(c, w, 0);
    }
out:
    src_close(&in);
    free(buf);
    return rc;
}

static int cmd_ingest(int argc, char **argv)
{
    const char *data = "./data", *index = "default";
    idx_opts o;
    idx_opts_default(&o);
    int quiet = 0;
    static const struct option opts[] = {{"data", 1, 0, 'd'},    {"index", 1, 0, 'i'},
                                         {"bucket", 1, 0, 'b'},  {"buffer-mb", 1, 0, 'm'},
                                         {"threads", 1, 0, 't'}, {"quiet", 0, 0, 'q'},
                                         {"max-future", 1, 0, 'f'}, {"flush-every", 1, 0, 'F'},
                                         {"time-field", 1, 0, 'T'}, {"format", 1, 0, 'o'},
                                         {"url", 1, 0, 'u'},     {"token", 1, 0, 'k'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int text = 0;
    const char *url = NULL, *token = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'i': index = optarg; break;
        case 'T': o.time_fields = optarg; break;
        case 'u': url = optarg; break;
        case 'k': token = optarg; break;
        case 'o':
            if (!strcmp(optarg, "text"))
                text = 1;
            else if (!strcmp(optarg, "combined"))
                text = 2;
            else if (strcmp(optarg, "ndjson") && strcmp(optarg, "json")) {
                fprintf(stderr, "logdex ingest: bad --format '%s' (ndjson, text or combined)\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (api_parse_duration(optarg, &o.bucket_ns)) {
                fprintf(stderr, "logdex ingest: bad --bucket '%s' (e.g. 10m, 1h, 1d)\n", optarg);
                return 2;
            }
            break;
        case 'm': o.buffer_bytes = (size_t)strtoull(optarg, NULL, 10) << 20; break;
        case 't': o.threads = atoi(optarg); break;
        case 'f':
            if (!strcmp(optarg, "0"))
                o.max_future_ns = 0;
            else if (api_parse_duration(optarg, &o.max_future_ns)) {
                fprintf(stderr, "logdex ingest: bad --max-future '%s' (e.g. 1h, 1d, 0)\n", optarg);
                return 2;
            }
            break;
        case 'F': o.flush_events = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(usage_ingest, stdout); return 0;
        default: return usage_err(usage_ingest);
        }
    }
    if (o.buffer_bytes == 0)
        o.buffer_bytes = 1u << 20;
    seg_err e = {0};
    idx_writer *w = NULL;
    ingest_ctx c = {.file = "-", .progress = !quiet && isatty(2), .t0 = now_s(), .text = text, .now = seg_time_now()};
    if (url) {
        if (!idx_name_valid(index)) {
            fprintf(stderr, "logdex ingest: invalid index name '%s'\n", index);
            return 2;
        }
        if (!(c.snd = cli_sender_new(url, index, token, text, on_remote_reject, &c, &e)) ||
            (o.time_fields && cli_sender_put_time_fields(c.snd, url, index, o.time_fields, &e))) {
            print_err("ingest", &e);
            cli_sender_free(c.snd);
            return 1;
        }
    } else if (idx_open(data, index, &o, &w, &e)) {
        print_err("ingest", &e);
        return 1;
    }
    int rc = SEG_OK;
    if (optind >= argc) {
        rc = ingest_fd(w, stdin, &c, &e);
    }
    for (int i = optind; rc == SEG_OK && i < argc; i++) {
        c.file = argv[i];
        FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "rb") : stdin;
        if (!f) {
            rc = seg_err_set(&e, SEG_EIO, argv[i], "open: %s", strerror(errno));
            break;
        }
        struct stat fst;
        size_t nl = strlen(argv[i]);
        int packed = (nl > 3 && !strcmp(argv[i] + nl - 3, ".gz")) || (nl > 4 && !strcmp(argv[i] + nl - 4, ".zst"));
        c.file_size = !packed && fstat(fileno(f), &fst) == 0 && S_ISREG(fst.st_mode) ? (uint64_t)fst.st_size : 0;
        c.file_start = c.bytes_read;
        rc = ingest_fd(w, f, &c, &e);
        if (f != stdin)
            fclose(f);
    }
    seg_buf_free(&c.line);
    if (c.snd && rc == SEG_OK)
        rc = cli_sender_flush(c.snd, &e);
    reject_summary(&c);
    idx_counts k = {0};
    int crc = SEG_OK;
    if (c.snd) {
        const cli_send_counts *sk = cli_sender_counts(c.snd);
        k.accepted = sk->accepted;
        k.rejected = sk->rejected + c.local_rejects;
        k.duplicates = sk->duplicates;
        k.arrival = sk->arrival;
        cli_sender_free(c.snd);
    } else {
        k = *idx_get_counts(w);
        crc = idx_close(w, rc ? NULL : &e);
    }
    if (!rc)
        rc = crc;
    if (rc) {
        print_err("ingest", &e);
        return 1;
    }
    if (c.progress)
        fprintf(stderr, "\r%llu events, %.1f MB\n", (unsigned long long)k.accepted, (double)c.bytes_read / 1048576.0);
    json_t *j = json_pack("{sIsIsIsIsIsf}", "accepted", (json_int_t)k.accepted, "rejected",
                          (json_int_t)k.rejected, "duplicates", (json_int_t)k.duplicates, "arrival_time",
                          (json_int_t)k.arrival, "bytes", (json_int_t)c.bytes_read, "seconds", now_s() - c.t0);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    puts(s);
    free(s);
    json_decref(j);
    if (k.rejected && !k.accepted && !k.duplicates) {
        /* nothing stored, lines given: the wrong file or format */
        fprintf(stderr, "logdex ingest: every line was rejected (%llu)%s\n", (unsigned long long)k.rejected,
                text ? "" : "; plain text logs: --format text");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* search                                                               */
/* ------------------------------------------------------------------ */

/* The value of top-level field name (one of names[]) in v, as text: 1
 * when found. */
static int top_value(const seg_jval *v, size_t nv, const char *const *names, char *out, size_t n)
{
    for (const char *const *k = names; *k; k++) {
        size_t kl = strlen(*k);
        for (size_t i = 0; i < nv; i++) {
            if (v[i].path_len != kl || memcmp(v[i].path, *k, kl))
                continue;
            switch (v[i].type) {
            case SEG_JV_STRING: snprintf(out, n, "%.*s", (int)v[i].str_len, v[i].str); return 1;
            case SEG_JV_INT: snprintf(out, n, "%lld", (long long)v[i].i); return 1;
            case SEG_JV_REAL: snprintf(out, n, "%.17g", v[i].d); return 1;
            default: break;
            }
        }
    }
    return 0;
}

/* One readable line of a hit (a terminal): its time, level (coloured
 * when color) and message, or, with --fields, those fields as k=v; an
 * event without a message field shows whole. */
static void print_human(const srch_hit *h, const char *fields, seg_json *js, int color)
{
    char ts[40];
    seg_time_format(h->time, ts);
    const seg_jval *v;
    size_t nv;
    seg_err e = {0};
    if (seg_json_parse(js, h->json, h->json_len, &v, &nv, &e)) {
        printf("%s %.*s\n", ts, (int)h->json_len, h->json);
        return;
    }
    if (fields) {
        printf("%s", ts);
        for (const char *p = fields; *p;) {
            size_t l = strcspn(p, ",");
            char f[SEG_FIELD_MAX + 1], val[2048];
            snprintf(f, sizeof f, "%.*s", (int)l, p);
            const char *names[2] = {f, NULL};
            if (l && top_value(v, nv, names, val, sizeof val))
                printf(" %s=%s", f, val);
            p += l + (p[l] == ',');
        }
        putchar('\n');
        return;
    }
    static const char *const lv[] = {"level", "log.level", "severity", "severity_text", "lvl", "loglevel", NULL};
    static const char *const msg[] = {"message", "msg", "log", "body", "text", NULL};
    char level[64], m[8192];
    int hl = top_value(v, nv, lv, level, sizeof level), hm = top_value(v, nv, msg, m, sizeof m);
    const char *col = "";
    if (color && hl) {
        char c = (char)(level[0] | 0x20);
        col = c == 'e' || c == 'f' || c == 'c' ? "\033[31m" : c == 'w' ? "\033[33m" : c == 'd' || c == 't' ? "\033[2m" : "";
    }
    printf("%s %s%-5s%s ", ts, col, hl ? level : "-", *col ? "\033[0m" : "");
    if (hm)
        printf("%s\n", m);
    else
        printf("%.*s\n", (int)h->json_len, h->json);
}

static int cmd_search(int argc, char **argv)
{
    const char *data = "./data", *index = "default", *start = NULL, *end = NULL, *cursor = NULL;
    long long limit = 100;
    int count = 0, page_info = 0, threads = 0;
    static const struct option opts[] = {
        {"data", 1, 0, 'd'},  {"index", 1, 0, 'i'},  {"start", 1, 0, 's'},     {"end", 1, 0, 'e'},
        {"limit", 1, 0, 'l'}, {"count", 0, 0, 'c'},  {"cursor", 1, 0, 'u'},    {"page-info", 0, 0, 'p'},
        {"threads", 1, 0, 't'}, {"fields", 1, 0, 'f'}, {"sort", 1, 0, 'o'}, {"json", 0, 0, 'j'},
        {"human", 0, 0, 'H'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *fields = NULL, *sort = NULL;
    int human = isatty(1); /* a terminal: readable lines; piped: JSON */
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'i': index = optarg; break;
        case 'f': fields = optarg; break;
        case 'o': sort = optarg; break;
        case 'j': human = 0; break;
        case 'H': human = 1; break;
        case 's': start = optarg; break;
        case 'e': end = optarg; break;
        case 'l': {
            char *x;
            limit = strtoll(optarg, &x, 10);
            if (*x || limit < 0) {
                fprintf(stderr, "logdex search: bad --limit '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'c': count = 1; break;
        case 'u': cursor = optarg; break;
        case 'p': page_info = 1; break;
        case 't': threads = atoi(optarg); break;
        case 'h': fputs(usage_search, stdout); return 0;
        default: return usage_err(usage_search);
        }
    }
    /* the query is the remaining arguments joined by spaces */
    seg_buf qb = {0};
    join_args(argc, argv, optind, &qb);
    if (!idx_name_valid(index)) {
        fprintf(stderr, "logdex search: invalid index name '%s'\n", index);
        return 2;
    }
    seg_err e = {0};
    seg_tok *tok = seg_tok_new();
    srch_query *q = NULL;
    srch_request rq;
    memset(&rq, 0, sizeof rq);
    int64_t now = seg_time_now();
    if (!tok || srch_query_parse((const char *)qb.p, qb.n - 1, tok, &q, &e) ||
        (start && srch_parse_time(start, now, &rq.start, &e)) ||
        (end && srch_parse_time(end, now, &rq.end, &e))) {
        if (!tok)
            seg_err_set(&e, SEG_ENOMEM, NULL, "cannot start the tokenizer");
        print_err("search", &e);
        srch_query_free(q);
        seg_tok_free(tok);
        seg_buf_free(&qb);
        return 2;
    }
    rq.has_start = start != NULL;
    rq.has_end = end != NULL;
    rq.q = q;
    char sortf[SEG_FIELD_MAX + 1];
    if (sort) { /* FIELD[:asc|desc], as the HTTP sort= */
        if (api_parse_sort(sort, sortf, sizeof sortf, &rq.sort_asc)) {
            fprintf(stderr, "logdex search: bad --sort '%s' (FIELD, FIELD:asc or FIELD:desc)\n", sort);
            srch_query_free(q);
            seg_tok_free(tok);
            seg_buf_free(&qb);
            return 2;
        }
        rq.sort_field = sortf;
    }
    rq.limit = count ? 0 : (limit == 0 ? SIZE_MAX / 64 : (size_t)limit);
    rq.count_only = count;
    rq.cursor = cursor;
    srch_pool *pool = srch_pool_new(threads);
    srch_index *ix = NULL;
    srch_result res;
    int rc = srch_index_open(data, index, pool, &ix, &e);
    if (rc == SEG_OK)
        rc = srch_search(ix, &rq, &res, &e);
    if (rc == SEG_OK) {
        if (count) {
            printf("%llu\n", (unsigned long long)res.total);
        } else {
            /* --fields a,b.c: only those members (as the HTTP fields=) */
            json_t *incl = NULL;
            for (const char *p = fields; p && *p;) {
                size_t l = strcspn(p, ",");
                if (!incl)
                    incl = json_array();
                if (l)
                    json_array_append_new(incl, json_stringn(p, l));
                p += l + (p[l] == ',');
            }
            seg_buf fb = {0};
            seg_json *hjs = human ? seg_json_new() : NULL;
            for (size_t i = 0; i < res.nhits && hjs; i++)
                print_human(&res.hits[i], fields, hjs, isatty(1));
            seg_json_free(hjs);
            for (size_t i = 0; i < res.nhits && !human; i++) {
                fb.n = 0;
                if (incl && api_filter_source(res.hits[i].json, res.hits[i].json_len, incl, NULL, &fb) >= 0 &&
                    !fb.oom)
                    fwrite(fb.p, 1, fb.n, stdout);
                else
                    fwrite(res.hits[i].json, 1, res.hits[i].json_len, stdout);
                fputc('\n', stdout);
            }
            seg_buf_free(&fb);
            json_decref(incl);
        }
        if (page_info)
            fprintf(stderr, "{\"total\":%llu,\"cursor\":%s%s%s}\n", (unsigned long long)res.total,
                    res.cursor ? "\"" : "", res.cursor ? res.cursor : "null", res.cursor ? "\"" : "");
        srch_result_free(&res);
    } else {
        print_err("search", &e);
    }
    srch_index_close(ix);
    srch_pool_free(pool);
    srch_query_free(q);
    seg_tok_free(tok);
    seg_buf_free(&qb);
    return rc == SEG_OK ? 0 : (rc == SEG_EQUERY ? 2 : 1);
}

/* ------------------------------------------------------------------ */
/* tail: a minimal HTTP/1.1 client for the event stream                 */
/* ------------------------------------------------------------------ */

static void url_encode(seg_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            seg_buf_put_u8(b, c);
        } else {
            char x[4];
            snprintf(x, sizeof x, "%%%02X", c);
            seg_buf_put(b, x, 3);
        }
    }
}

/* Handles one SSE line; returns 0, or -1 on a line that is not ours. */
static void tail_line(const char *l, size_t n, char *last_id, size_t last_cap)
{
    if (n >= 4 && !memcmp(l, "id: ", 4)) {
        snprintf(last_id, last_cap, "%.*s", (int)(n - 4), l + 4);
    } else if (n >= 6 && !memcmp(l, "data: ", 6)) {
        const char *src = memmem(l, n, ",\"_source\":", 11);
        if (src && l[n - 1] == '}') {
            /* the event exactly as sent: between "_source": and the last } */
            fwrite(src + 11, 1, (size_t)(l + n - 1 - (src + 11)), stdout);
            fputc('\n', stdout);
            fflush(stdout);
        } else if (memmem(l, n, "\"dropped\"", 9)) {
            fprintf(stderr, "logdex tail: the server dropped events for this slow reader: %.*s\n", (int)(n - 6), l + 6);
        }
    }
}

static int tail_once(const char *host, int port, const char *index, const char *q, long backfill, const char *token,
                     char *last_id, size_t last_cap)
{
    struct addrinfo hints, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0) {
        fprintf(stderr, "logdex tail: cannot resolve %s\n", host);
        return 1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        errno = err;
        return -2; /* not reached: try again (errno says why) */
    }
    freeaddrinfo(ai);
    seg_buf rq = {0};
    char line[512];
    snprintf(line, sizeof line, "GET /api/v1/%s/tail?backfill=%ld&q=", index, last_id[0] ? 0 : backfill);
    seg_buf_put(&rq, line, strlen(line));
    url_encode(&rq, q);
    snprintf(line, sizeof line, " HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n", host, port);
    seg_buf_put(&rq, line, strlen(line));
    if (last_id[0]) {
        snprintf(line, sizeof line, "Last-Event-ID: %s\r\n", last_id);
        seg_buf_put(&rq, line, strlen(line));
    }
    if (token) {
        snprintf(line, sizeof line, "Authorization: Bearer %.400s\r\n", token);
        seg_buf_put(&rq, line, strlen(line));
    }
    seg_buf_put(&rq, "\r\n", 2);
    ssize_t w = write(fd, rq.p, rq.n);
    seg_buf_free(&rq);
    if (w < 0) {
        close(fd);
        return -1;
    }
    /* headers, then a chunked body of SSE lines */
    seg_buf in = {0}, body = {0};
    char buf[65536];
    int headers_done = 0, chunked = 0, status = 0, rc = -1, skip_crlf = 0;
    size_t chunk_left = 0;
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k <= 0)
            break;
        seg_buf_put(&in, buf, (size_t)k);
        size_t at = 0;
        if (!headers_done) {
            char *end = memmem(in.p, in.n, "\r\n\r\n", 4);
            if (!end)
                continue;
            sscanf((const char *)in.p, "HTTP/1.%*d %d", &status);
            chunked = memmem(in.p, (size_t)(end - (char *)in.p), "chunked", 7) != NULL;
            at = (size_t)(end - (char *)in.p) + 4;
            headers_done = 1;
            if (status != 200) {
                fprintf(stderr, "logdex tail: HTTP %d: %.*s\n", status, (int)(in.n - at), (const char *)in.p + at);
                rc = 1;
                break;
            }
        }
        /* de-chunk what we have into body: size line, data, CRLF */
        while (at < in.n) {
            if (!chunked) {
                seg_buf_put(&body, in.p + at, in.n - at);
                at = in.n;
            } else if (skip_crlf) {
                if (in.n - at < 2)
                    break;
                at += 2;
                skip_crlf = 0;
            } else if (!chunk_left) {
                char *crlf = memmem(in.p + at, in.n - at, "\r\n", 2);
                if (!crlf)
                    break;
                chunk_left = strtoul((const char *)in.p + at, NULL, 16);
                at = (size_t)(crlf - (char *)in.p) + 2;
                if (!chunk_left) { /* the last chunk */
                    at = in.n;
                    break;
                }
            } else {
                size_t take = in.n - at < chunk_left ? in.n - at : chunk_left;
                seg_buf_put(&body, in.p + at, take);
                at += take;
                chunk_left -= take;
                skip_crlf = chunk_left == 0;
            }
        }
        if (at) {
            memmove(in.p, in.p + at, in.n - at);
            in.n -= at;
        }
        /* complete lines */
        size_t s = 0;
        while (s < body.n) {
            char *nl = memchr(body.p + s, '\n', body.n - s);
            if (!nl)
                break;
            tail_line((const char *)body.p + s, (size_t)(nl - (char *)body.p) - s, last_id, last_cap);
            s = (size_t)(nl - (char *)body.p) + 1;
        }
        if (s) {
            memmove(body.p, body.p + s, body.n - s);
            body.n -= s;
        }
    }
    seg_buf_free(&in);
    seg_buf_free(&body);
    close(fd);
    return rc;
}

static int cmd_tail(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:9200", *index = "default", *token = NULL;
    long backfill = 0, retries = 30;
    static const struct option opts[] = {{"url", 1, 0, 'u'},   {"index", 1, 0, 'i'}, {"backfill", 1, 0, 'b'},
                                         {"token", 1, 0, 't'}, {"retries", 1, 0, 'r'}, {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 'i': index = optarg; break;
        case 'b': backfill = atol(optarg); break;
        case 't': token = optarg; break;
        case 'r': {
            char *end;
            retries = strtol(optarg, &end, 10);
            if (*end || retries < 0 || retries > 1000000) {
                fprintf(stderr, "logdex tail: --retries wants a whole number from 0\n");
                return 2;
            }
            break;
        }
        case 'h': fputs(usage_tail, stdout); return 0;
        default: return usage_err(usage_tail);
        }
    }
    seg_buf qb = {0};
    join_args(argc, argv, optind, &qb);
    char host[256];
    int port = 80;
    if (strncmp(url, "http://", 7) || sscanf(url + 7, "%255[^:/]:%d", host, &port) < 1 || !idx_name_valid(index)) {
        fprintf(stderr, "logdex tail: --url must be http://HOST:PORT (HTTPS: use curl -N)\n");
        seg_buf_free(&qb);
        return 2;
    }
    char last[64] = "";
    int rc;
    /* a dropped stream is resumed after the last event at once; a server
     * that cannot be reached is tried once a second, saying so, at most
     * `retries` times in a row */
    for (long failed = 0;;) {
        rc = tail_once(host, port, index, (const char *)qb.p, backfill, token, last, sizeof last);
        if (rc > 0)
            break;
        if (rc == -2) {
            if (++failed > retries) {
                fprintf(stderr, "logdex tail: giving up: %s:%d not reachable %ld times in a row\n", host, port, failed);
                rc = 1;
                break;
            }
            fprintf(stderr, "logdex tail: cannot connect to %s:%d (%s); retrying in 1 s (%ld of %ld)\n", host, port,
                    strerror(errno), failed, retries);
        } else {
            failed = 0;
            fprintf(stderr, "logdex tail: connection to %s:%d dropped; reconnecting\n", host, port);
        }
        sleep(1);
    }
    seg_buf_free(&qb);
    return rc;
}

/* ------------------------------------------------------------------ */
/* agg                                                                  */
/* ------------------------------------------------------------------ */

static int cmd_agg(int argc, char **argv)
{
    const char *data, *index;
    int rc0 = data_index_opts(argc, argv, "agg", usage_agg, &data, &index);
    if (rc0 >= 0)
        return rc0;
    if (optind + 1 != argc)
        return usage_err(usage_agg);
    seg_err e = {0};
    seg_tok *tok = seg_tok_new();
    srch_pool *pool = srch_pool_new(0);
    srch_index *ix = NULL;
    seg_buf out = {0};
    int rc = !tok ? seg_err_set(&e, SEG_ENOMEM, NULL, "cannot start the tokenizer")
                  : srch_index_open(data, index, pool, &ix, &e);
    srch_stats st;
    if (rc == SEG_OK)
        rc = api_aggregate(ix, tok, argv[optind], strlen(argv[optind]), &out, &st, &e);
    if (rc == SEG_OK && st.segments_failed)
        fprintf(stderr, "logdex agg: %zu corrupt segment(s) left out: %s\n", st.segments_failed, st.failure);
    if (rc == SEG_OK)
        printf("%.*s\n", (int)out.n, (const char *)out.p);
    else
        print_err("agg", &e);
    seg_buf_free(&out);
    srch_index_close(ix);
    srch_pool_free(pool);
    seg_tok_free(tok);
    return rc == SEG_OK ? 0 : (rc == SEG_EQUERY ? 2 : 1);
}

/* ------------------------------------------------------------------ */
/* stats                                                                */
/* ------------------------------------------------------------------ */

/* logdex fields: {"fields":[...],"time_field":[...]}, as GET /fields */
static int cmd_fields(int argc, char **argv)
{
    const char *data, *index;
    int rc0 = data_index_opts(argc, argv, "fields", usage_fields, &data, &index);
    if (rc0 >= 0)
        return rc0;
    seg_err e = {0};
    srch_index *ix;
    char tf[1200];
    if (srch_index_open(data, index, NULL, &ix, &e) || idx_read_time_fields(data, index, tf, sizeof tf, &e)) {
        print_err("fields", &e);
        return 1;
    }
    seg_buf b = {0};
    api_put_s(&b, "{\"fields\":");
    api_fields_json(&b, ix);
    api_put_s(&b, ",\"time_field\":");
    api_time_fields_json(&b, tf);
    api_put_s(&b, "}");
    srch_index_close(ix);
    if (b.oom) {
        fprintf(stderr, "logdex fields: out of memory\n");
        return 1;
    }
    printf("%.*s\n", (int)b.n, (const char *)b.p);
    seg_buf_free(&b);
    return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* logdex indexes: {"indexes":[{"name","stats"}]}, as GET /api/v1/indexes */
static int cmd_indexes(int argc, char **argv)
{
    const char *data;
    int rc0 = data_opts(argc, argv, usage_indexes, &data);
    if (rc0 >= 0)
        return rc0;
    DIR *d = opendir(data);
    if (!d) {
        fprintf(stderr, "logdex indexes: %s: %s\n", data, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[4400];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s/manifest", data, de->d_name);
        if (!idx_name_valid(de->d_name) || stat(p, &st) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **q = realloc(names, cap * sizeof *q);
            if (!q)
                break;
            names = q;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    seg_buf b = {0};
    api_put_s(&b, "{\"indexes\":[");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        seg_err e = {0};
        srch_index *ix;
        if (srch_index_open(data, names[i], NULL, &ix, &e)) {
            print_err("indexes", &e);
            rc = 1;
            continue;
        }
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/%s", data, names[i]);
        api_put_s(&b, i ? ",{\"name\":" : "{\"name\":");
        api_put_jstr(&b, names[i], strlen(names[i]));
        api_put_s(&b, ",\"stats\":");
        api_stats_json(&b, ix, dir);
        api_put_s(&b, "}");
        srch_index_close(ix);
    }
    api_put_s(&b, "]}");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    printf("%.*s\n", (int)b.n, (const char *)b.p);
    seg_buf_free(&b);
    return rc;
}

static int cmd_stats(int argc, char **argv)
{
    const char *data, *index;
    int rc0 = data_index_opts(argc, argv, "stats", usage_stats, &data, &index);
    if (rc0 >= 0)
        return rc0;
    seg_err e = {0};
    srch_index *ix;
    if (srch_index_open(data, index, NULL, &ix, &e)) {
        print_err("stats", &e);
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", data, index);
    seg_buf b = {0};
    api_stats_json(&b, ix, dir);
    srch_index_close(ix);
    if (b.oom) {
        fprintf(stderr, "logdex stats: out of memory\n");
        return 1;
    }
    printf("%.*s\n", (int)b.n, (const char *)b.p);
    seg_buf_free(&b);
    return 0;
}

/* ------------------------------------------------------------------ */
/* compact                                                              */
/* ------------------------------------------------------------------ */

static int cmd_compact(int argc, char **argv)
{
    const char *data = "./data", *index = "default";
    idx_opts o;
    idx_opts_default(&o);
    static const struct option opts[] = {{"data", 1, 0, 'd'},    {"index", 1, 0, 'i'}, {"target-mb", 1, 0, 't'},
                                         {"threads", 1, 0, 'T'}, {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int ch, threads = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'i': index = optarg; break;
        case 't': o.segment_target = strtoull(optarg, NULL, 10) << 20; break;
        case 'T': threads = atoi(optarg); break;
        case 'h': fputs(usage_compact, stdout); return 0;
        default: return usage_err(usage_compact);
        }
    }
    if (optind != argc || o.segment_target == 0 || threads < 1 || threads > 64)
        return usage_err(usage_compact);
    char dir[4096], man[4200];
    snprintf(dir, sizeof dir, "%s/%s", data, index);
    snprintf(man, sizeof man, "%s/manifest", dir);
    if (!idx_name_valid(index) || access(man, F_OK) != 0) {
        fprintf(stderr, "logdex compact: no such index: %s\n", dir);
        return 1;
    }
    seg_err e = {0};
    idx_writer *w;
    if (idx_open(data, index, &o, &w, &e)) {
        print_err("compact", &e);
        return 1;
    }
    double t0 = now_s();
    idx_metrics m0, m1;
    idx_get_metrics(w, &m0);
    int rc = idx_compact(w, threads, &e);
    idx_get_metrics(w, &m1);
    int crc = idx_close(w, rc ? NULL : &e);
    if (rc || crc) {
        print_err("compact", &e);
        return 1;
    }
    printf("{\"merges\":%llu,\"rewrites\":%llu,\"segments_before\":%llu,\"segments_after\":%llu,"
           "\"duplicates_removed\":%llu,\"bytes_before\":%llu,\"bytes_after\":%llu,\"seconds\":%.3f}\n",
           (unsigned long long)(m1.life.merges - m0.life.merges - (m1.life.rewrites - m0.life.rewrites)),
           (unsigned long long)(m1.life.rewrites - m0.life.rewrites), (unsigned long long)m0.segments,
           (unsigned long long)m1.segments, (unsigned long long)(m1.life.merge_dups - m0.life.merge_dups),
           (unsigned long long)m0.segment_bytes, (unsigned long long)m1.segment_bytes, now_s() - t0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* verify and dump                                                      */
/* ------------------------------------------------------------------ */

static void report(void *ud, const char *file, const char *problem)
{
    (void)ud;
    printf("%s: %s\n", file, problem);
}

static int cmd_verify(int argc, char **argv)
{
    const char *data;
    int rc0 = data_opts(argc, argv, usage_verify, &data);
    if (rc0 >= 0)
        return rc0;
    DIR *d = opendir(data);
    if (!d) {
        fprintf(stderr, "logdex verify: %s: %s\n", data, strerror(errno));
        return 1;
    }
    long problems = 0, segs = 0, indexes = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !idx_name_valid(de->d_name))
            continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", data, de->d_name);
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode))
            continue;
        seg_manifest m;
        int exists;
        seg_err e = {0};
        if (seg_manifest_load(dir, &m, &exists, &e)) {
            char b[1024];
            printf("%s\n", seg_err_str(&e, b, sizeof b));
            problems++;
            continue;
        }
        if (!exists) {
            seg_manifest_free(&m);
            continue;
        }
        indexes++;
        for (size_t i = 0; i < m.n; i++) {
            char p[4096 + 80];
            snprintf(p, sizeof p, "%s/%s", dir, m.e[i].name);
            long k = seg_reader_verify(p, report, NULL);
            problems += k;
            segs++;
            if (k == 0) {
                seg_reader *r;
                if (seg_reader_open(p, &r, &e) == SEG_OK) {
                    if (seg_reader_ndocs(r) != m.e[i].docs || seg_reader_min_time(r) != m.e[i].min_time ||
                        seg_reader_max_time(r) != m.e[i].max_time) {
                        printf("%s: does not match its manifest entry\n", p);
                        problems++;
                    }
                    seg_reader_close(r);
                }
            }
        }
        seg_manifest_free(&m);
    }
    closedir(d);
    if (problems) {
        printf("%ld problem%s found\n", problems, problems == 1 ? "" : "s");
        return 1;
    }
    printf("ok: %ld segment%s in %ld index%s verified\n", segs, segs == 1 ? "" : "s", indexes,
           indexes == 1 ? "" : "es");
    return 0;
}

static void dump_line(void *ud, const char *line)
{
    (void)ud;
    puts(line);
}

static int cmd_dump(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        fputs(usage_dump, argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    return seg_reader_dump(argv[1], dump_line, NULL) ? 1 : 0;
}

/* Segment builds, request bodies and log records allocate and free large
 * buffers all the time: keep them in the heap instead of returning them to
 * the kernel at every free (fresh pages fault, and faults are expensive on
 * virtual machines).  Measured: 13% of offline ingest time; for the server
 * under sustained 1 MiB batches, 230k -> 76k page faults and 20-30% less
 * CPU.  Memory freed stays with the process up to 256 MiB.
 * Arenas: glibc gives a thread that allocates while others do its own
 * arena, up to 8 per core; the server's HTTP workers, loop threads,
 * committer and builders then spread builder chunks and request buffers
 * over ~20 arenas, each growing and releasing its own heaps, so the
 * faults come back.  Two per core (at least 4: offline ingest has 3
 * allocating threads and slows down when two share one): the 2M events
 * in 1 MiB batches over HTTP, 153k -> 85k faults, sys 2.4 -> 1.6 s, wall
 * -13% (alternating runs); offline ingest unchanged. */
static void keep_heap(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#ifdef M_ARENA_MAX
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, ncpu > 2 ? (int)(2 * ncpu) : 4);
#endif
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    argv++;
    argc--;
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"ingest", cmd_ingest}, {"search", cmd_search},   {"stats", cmd_stats},
                {"agg", cmd_agg},       {"tail", cmd_tail},       {"compact", cmd_compact},
                {"verify", cmd_verify}, {"dump", cmd_dump},       {"serve", api_serve},
                {"fields", cmd_fields}, {"indexes", cmd_indexes}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(cmd, cmds[i].name)) {
            if (cmds[i].fn == cmd_ingest || cmds[i].fn == api_serve || cmds[i].fn == cmd_compact)
                keep_heap();
            return cmds[i].fn(argc, argv);
        }
    fprintf(stderr, "logdex: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
