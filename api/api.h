/*
 * api.h -- the outside interfaces of logdex (api/): they translate
 * requests into calls to indexer/ and searcher/ and results into JSON.
 */
#ifndef LOGDEX_API_H
#define LOGDEX_API_H

#include "searcher/srch.h"

/* Appending JSON text: a C string as is; bytes as a JSON string. */
void api_put_s(seg_buf *b, const char *s);
void api_put_jstr(seg_buf *b, const char *s, size_t n);
/* A time parameter (srch_parse_time); an error's message names key. */
int api_parse_time(const char *key, const char *v, int64_t *out, seg_err *e);
/* Durations "30s", "10m", "12h", "7d" (a positive integer and a unit) in
 * ns; sizes "1048576", "500K", "20M", "3G", "1T" (binary units) in bytes.
 * 0 or -1 (malformed). */
int api_parse_duration(const char *s, int64_t *ns);
int api_parse_bytes(const char *s, uint64_t *bytes);
/* Bytes of every file under dir (recursively): what an index keeps on disk. */
uint64_t api_dir_bytes(const char *dir);

/* The stats answer of an index: {"events","segments","buckets","bytes",
 * "max_segments_per_bucket","per_bucket":[{"start","segments","events",
 * "bytes"}, ...]} (bytes: what dir holds on disk). */
void api_stats_json(seg_buf *b, srch_index *ix, const char *dir);

/* `logdex serve`: argc/argv start at the command's first option. */
int api_serve(int argc, char **argv);

/* Runs an aggregation request body {"q","start","end","aggs"} over ix and
 * writes the answer {"took_ms","total","aggs"} to out.  tok is the calling
 * thread's tokenizer.  SEG_EQUERY (with a reason) for a bad request. */
int api_aggregate(srch_index *ix, seg_tok *tok, const char *body, size_t n, seg_buf *out, srch_stats *st,
                  seg_err *e);
/* Appends ,"partial":{"failed_segments":N,"reason":"..."} when corrupt
 * segments were left out of an answer (nothing otherwise). */
void api_put_partial(seg_buf *b, const srch_stats *st);

#endif
