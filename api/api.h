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
/* Bytes of every file under dir (recursively): what an index keeps on disk. */
uint64_t api_dir_bytes(const char *dir);

/* `logdex serve`: argc/argv start at the command's first option. */
int api_serve(int argc, char **argv);

/* Runs an aggregation request body {"q","start","end","aggs"} over ix and
 * writes the answer {"took_ms","total","aggs"} to out.  tok is the calling
 * thread's tokenizer.  SEG_EQUERY (with a reason) for a bad request. */
int api_aggregate(srch_index *ix, seg_tok *tok, const char *body, size_t n, seg_buf *out, seg_err *e);

#endif
