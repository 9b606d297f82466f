/*
 * model.h -- a brute-force model of logdex's search, for differential
 * tests.  It shares only the tokenizer with the engine: events are parsed
 * with jansson and flattened here, queries are trees built here and
 * rendered to query text for the engine, and matching is a plain scan.
 */
#ifndef LOGDEX_TEST_MODEL_H
#define LOGDEX_TEST_MODEL_H

#include "segment/seg.h"

enum { M_ALL, M_WORD, M_PHRASE, M_PREFIX, M_RANGE, M_EXISTS, M_AND, M_OR, M_NOT, M_WILD /* text: a pattern, * and ? */,
       M_REGEX /* text: a regular expression (PCRE2, whole token, caseless) */ };
enum { R_BRACKETS, R_GT, R_GE, R_LT, R_LE };

typedef struct mq mq;
struct mq {
    int type;
    char field[64];            /* "" = any field */
    char text[128];
    double lo, hi;             /* RANGE */
    int lo_incl, hi_incl, lo_open, hi_open, form;
    mq *k[4];
    int nk;
    int minus;                 /* NOT rendered as "-" */
    int implicit;              /* AND rendered by juxtaposition */
    char **qt;                 /* tokens of text, computed once */
    size_t nqt;
    int qt_done;
    void *re;                  /* M_REGEX: compiled once */
};

typedef struct model model;

model *model_new(seg_tok *tok);
void model_free(model *m);
/* Adds an event; returns 0 if stored, 1 if its _id was seen before (then
 * it is not stored), -1 if it is not a JSON object. */
int model_add(model *m, const char *line, size_t n, int64_t time_ns);
size_t model_count(const model *m);
const char *model_json(const model *m, size_t i, size_t *len);
int64_t model_time(const model *m, size_t i);
const char *model_id(const model *m, size_t i);     /* NULL without _id */
int model_match(model *m, size_t i, const mq *q);

/* Query text for the engine; the result is static, valid until next call. */
const char *mq_render(const mq *q);
mq *mq_new(int type);
void mq_free(mq *q);

/* Helpers to build queries from the data. */
size_t model_nvalues(const model *m, size_t i);
/* Value j of event i: path, and either a string (str non-NULL) or a
 * number (is_num) or a boolean. */
void model_value(const model *m, size_t i, size_t j, const char **path, const char **str, size_t *slen,
                 int *is_num, double *num, int *is_bool);

#endif
