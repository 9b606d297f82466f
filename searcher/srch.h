/*
 * srch.h -- the searcher layer: queries in, results out.  The one public
 * header of searcher/.  searcher/ reads segments through segment/ and never
 * includes indexer/.
 *
 * Concurrency model: an srch_index is a snapshot of one index (its manifest
 * and open segment readers) taken at srch_index_open(); segments are
 * immutable, so any number of threads may search one snapshot at once
 * without locks.  A search runs its segments on the srch_pool's threads;
 * each task has its own iterators and store cursor.  The pool's job queue
 * is guarded by its mutex.
 */
#ifndef LOGDEX_SRCH_H
#define LOGDEX_SRCH_H

#include "segment/seg.h"

/* ---- thread pool ---- */
typedef struct srch_pool srch_pool;
/* threads <= 0: one per core. */
srch_pool *srch_pool_new(int threads);
void srch_pool_free(srch_pool *p);
/* Runs fn(arg, i) for i in [0, n) on the pool and the calling thread;
 * returns when all are done. */
void srch_pool_run(srch_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg);

/* ---- queries ---- */
typedef struct srch_query srch_query;
/* Parses the query language (docs/query-language.md).  On error returns
 * SEG_EQUERY with e->pos the 1-based byte position and e->msg the reason.
 * tok is the calling thread's tokenizer. */
int srch_query_parse(const char *q, size_t n, seg_tok *tok, srch_query **out, seg_err *e);
void srch_query_free(srch_query *q);
/* A deep copy of q (SEG_ENOMEM). */
int srch_query_clone(const srch_query *q, srch_query **out, seg_err *e);
/* The same parser with options: the dialect of Elasticsearch's
 * query_string (docs/elasticsearch.md).  default_field: where a term
 * without a field searches (NULL or "*": any field).  lucene: juxtaposed
 * clauses follow Lucene (a clause marked '+' is required, '-' or NOT
 * excluded, the others optional: at least one must match when nothing
 * is required; default_and makes them required instead), and
 * `_exists_:FIELD` is FIELD:*. */
typedef struct srch_parse_opts {
    const char *default_field;
    int lucene;
    int default_and;
} srch_parse_opts;
int srch_query_parse_opts(const char *q, size_t n, seg_tok *tok, const srch_parse_opts *o, srch_query **out,
                          seg_err *e);

/* Building a query tree directly (the Elasticsearch query DSL): each
 * returns SEG_OK and *out, or an error code with e set (SEG_EQUERY with a
 * reason for a value that cannot be searched).  field NULL: any field.
 *   srch_q_all / srch_q_none: every / no event;
 *   srch_q_text: s as the query language's field:"s" (phrase=1) or
 *     field:s (phrase=0: a number or true/false also matches that value);
 *   srch_q_words: each token of s in field, all of them (all=1) or any;
 *     no token at all matches nothing;
 *   srch_q_exact: a string value of field equal to s whole (field set);
 *   srch_q_prefix: a token of field starting with s (one token);
 *   srch_q_range: a numeric value of field in the range;
 *   srch_q_exists: field has a value;
 *   srch_q_bool: and=1 every kid matches, else any (takes the kids, also
 *     on error; n == 0: every event for and, none for or);
 *   srch_q_not: kid does not match (takes kid). */
int srch_q_all(srch_query **out, seg_err *e);
int srch_q_none(srch_query **out, seg_err *e);
int srch_q_text(seg_tok *tok, const char *field, const char *s, size_t n, int phrase, srch_query **out, seg_err *e);
int srch_q_words(seg_tok *tok, const char *field, const char *s, size_t n, int all, srch_query **out, seg_err *e);
int srch_q_exact(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e);
int srch_q_prefix(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e);
/* A token of field (NULL: any) matching the pattern s ('*' any run, '?' one
 * character; within one token), as the query language's wildcards. */
int srch_q_wild(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e);
/* A token of field (NULL: any) matching the regular expression s whole
 * (PCRE2 syntax, caseless), as the query language's /s/. */
int srch_q_regex(seg_tok *tok, const char *field, const char *s, size_t n, srch_query **out, seg_err *e);
int srch_q_range(const char *field, double lo, int lo_incl, double hi, int hi_incl, srch_query **out, seg_err *e);
int srch_q_exists(const char *field, srch_query **out, seg_err *e);
int srch_q_bool(int and, srch_query **kids, size_t n, srch_query **out, seg_err *e);
int srch_q_not(srch_query *kid, srch_query **out, seg_err *e);
/* The events whose _id is one of ids[0..n) (ids given by the event or at
 * ingest; not the ids the engine assigns). */
int srch_q_ids(const char *const *ids, const size_t *lens, size_t n, srch_query **out, seg_err *e);
/* A canonical rendering of the parsed tree, for tests and debugging. */
void srch_query_dump(const srch_query *q, seg_buf *out);
/* What a partial segment must index for q to match exactly as over a full
 * one (seg_builder_write_partial): the fields q names, and any_text when a
 * word, phrase or prefix has no field.  Adds to *need (names not already
 * there, seg_malloc'd); 0 or SEG_ENOMEM. */
int srch_query_need(const srch_query *q, seg_index_only *need);
/* 1 when a partial segment indexed for `have` answers a query needing `want`. */
int srch_need_covers(const seg_index_only *have, const seg_index_only *want);
void srch_need_free(seg_index_only *need);

/* Time parameters: RFC 3339, epoch seconds or milliseconds, "now",
 * "now-15m" (units s m h d w), a bare date (its midnight UTC), or a time in
 * the forms seg_time_parse_text reads.  Returns SEG_EQUERY on a bad value. */
int srch_parse_time(const char *s, int64_t now, int64_t *out, seg_err *e);

/* ---- searching ---- */
typedef struct srch_index srch_index;
int srch_index_open(const char *datadir, const char *index, srch_pool *pool, srch_index **out,
                    seg_err *e);
/* A searchable view of a snapshot (takes a reference on set). */
int srch_index_from_set(seg_set *set, srch_pool *pool, srch_index **out, seg_err *e);
/* Fields of the snapshot: calls fn for each distinct field with its type
 * flags (SEG_F_*) and the number of events holding it. */
void srch_index_fields(const srch_index *ix, void (*fn)(void *ud, const char *name, size_t len,
                                                        unsigned flags, uint64_t docs),
                       void *ud);
void srch_index_close(srch_index *ix);
size_t srch_index_nsegments(const srch_index *ix);
/* Segment i (newest first) and the pool of a snapshot (to make a view of
 * several snapshots: seg_set_new over their segments). */
seg_reader *srch_index_segment(const srch_index *ix, size_t i);
srch_pool *srch_index_pool(const srch_index *ix);
uint64_t srch_index_events(const srch_index *ix);
uint64_t srch_index_bytes(const srch_index *ix);
size_t srch_index_nbuckets(const srch_index *ix);
/* Bucket width, for counting buckets of an index made from a seg_set. */
void srch_index_set_bucket_ns(srch_index *ix, int64_t ns);
/* The segments grouped by time bucket (of their oldest event), oldest
 * bucket first; *out is seg_malloc'd (seg_free).  Returns the count. */
typedef struct srch_bucket {
    int64_t start;
    uint32_t segments;
    uint64_t events, bytes;
} srch_bucket;
size_t srch_index_buckets(const srch_index *ix, srch_bucket **out);

typedef struct srch_request {
    const srch_query *q;
    int has_start, has_end;
    int64_t start, end;        /* ns; start inclusive, end exclusive */
    size_t limit;              /* hits to return (0 with count_only) */
    const char *cursor;        /* from a previous result, or NULL */
    int count_only;
    /* order (srch_sort.c): NULL, "_time" or "@timestamp" sorts by time
     * (newest first unless sort_asc); another name sorts by that numeric
     * field (the events without it last; then newest first), ascending
     * when sort_asc.  Cursors belong to their order. */
    const char *sort_field;
    int sort_asc;
} srch_request;

typedef struct srch_hit {
    int64_t time;
    char *id;
    size_t id_len;
    char *json;
    size_t json_len;
    const seg_reader *seg;     /* its segment (valid while the index is open):
                                  which index a hit of a union came from */
    int sort_has;              /* sorted by a field (srch_sort.c): the hit's */
    double sort_v;             /* key, when it has one */
} srch_hit;

typedef struct srch_stats {
    size_t segments_total, segments_pruned, segments_searched;
    /* segments left out because they failed a checksum or structural check
     * (their matches are not in the answer); failure: the first one's
     * error, naming the file */
    size_t segments_failed;
    char failure[600];
} srch_stats;

typedef struct srch_result {
    uint64_t total;            /* exact number of matches in the range */
    srch_hit *hits;            /* newest first */
    size_t nhits;
    char *cursor;              /* next page, or NULL when none */
    srch_stats stats;
} srch_result;

int srch_search(srch_index *ix, const srch_request *rq, srch_result *out, seg_err *e);
/* The docs of one segment that match q, ascending, in *docs (seg_free it);
 * for matching small batches (live tail). */
int srch_match_docs(seg_reader *r, const srch_query *q, uint32_t **docs, size_t *n, seg_err *e);
void srch_result_free(srch_result *r);
/* The cursor that continues a search after hit h (as srch_result.cursor
 * does after the last hit): seg_malloc'd, NULL when out of memory. */
char *srch_cursor_of(const srch_hit *h);
/* The same for a hit of a request in another order (rq's sort_field and
 * sort_asc): the cursor after it in that order. */
char *srch_sort_cursor_of(const srch_request *rq, const srch_hit *h);

/* ---- aggregations (docs/aggregations.md) ---- */

enum {
    SRCH_AGG_DATE_HISTOGRAM = 1,  /* buckets of event time */
    SRCH_AGG_TERMS,               /* top values of a field (strings and numbers) */
    SRCH_AGG_STATS,               /* count, min, max, sum of numeric values */
    SRCH_AGG_PERCENTILES,         /* DDSketch, relative error SRCH_PCT_ALPHA */
    SRCH_AGG_CARDINALITY,         /* HyperLogLog, 2^14 registers */
};
#define SRCH_PCT_ALPHA 0.005
#define SRCH_AGG_MAX_BUCKETS 100000
#define SRCH_AGG_MAX_PERCENTS 32

typedef struct srch_agg srch_agg;
struct srch_agg {
    int type;
    char *name;
    char *field;                 /* all but date_histogram */
    int64_t interval_ns;         /* date_histogram; 0: auto (~100 buckets) */
    size_t size;                 /* terms: how many (default 10) */
    double percents[SRCH_AGG_MAX_PERCENTS];
    size_t npercents;
    srch_agg *subs;              /* sub-aggregations per bucket */
    size_t nsubs;
    int sparse;                  /* date_histogram: only the buckets holding
                                    events, in time order (the caller fills
                                    gaps as it wants); needs interval_ns */
};

typedef struct srch_agg_result srch_agg_result;
typedef struct srch_agg_bucket {
    int key_is_str;              /* terms: a string value, else a number */
    int64_t key_time;            /* date_histogram: bucket start, ns */
    double key_num;              /* terms on numbers */
    char *key_str;
    size_t key_len;
    uint64_t count;
    srch_agg_result *subs;       /* one per sub-aggregation */
    size_t nsubs;
} srch_agg_bucket;

struct srch_agg_result {
    int type;
    uint64_t count;              /* stats: values; percentiles: values */
    double min, max, sum;
    double *pvalues;             /* percentiles, in the order asked */
    uint64_t cardinality;
    int64_t interval_ns;         /* date_histogram: the interval used */
    srch_agg_bucket *buckets;
    size_t nbuckets;
};

/* Aggregates the events matching rq (q, start, end) with naggs top-level
 * aggregations; *out receives naggs results.  Bad requests (too many
 * buckets, ...) are SEG_EQUERY with a reason.  A corrupt segment is left
 * out and reported in st (segments_failed, failure) when st is given. */
int srch_aggregate(srch_index *ix, const srch_request *rq, const srch_agg *aggs, size_t naggs,
                   srch_agg_result **out, uint64_t *total, srch_stats *st, seg_err *e);
void srch_agg_results_free(srch_agg_result *r, size_t n);

#endif
