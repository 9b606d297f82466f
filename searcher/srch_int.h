/*
 * srch_int.h -- internal to searcher/: the query tree shared by the parser
 * (srch_query.c) and the executor (srch_exec.c).
 */
#ifndef LOGDEX_SRCH_INT_H
#define LOGDEX_SRCH_INT_H

#include "searcher/srch.h"

enum {
    Q_ALL = 1,     /* every event */
    Q_NONE,        /* no event (internal) */
    Q_TEXT,        /* toks[0..ntoks): one token, or a phrase; field optional;
                      with a field, a number (has_num: num) also matches a
                      numeric value and vkey ("true"/"false") a boolean */
    Q_PREFIX,      /* toks[0] is a prefix of a token; field optional */
    Q_RANGE,       /* numeric range over field */
    Q_EXISTS,      /* field has a value */
    Q_AND,
    Q_OR,
    Q_NOT,
    Q_EXACT,       /* a string value of field equals str[0..str_len) whole,
                      byte for byte (ES's term on a keyword); toks hold its
                      tokens, which narrow the candidates */
    Q_IDS,         /* the event's _id is one of toks[0..ntoks) (raw bytes) */
    Q_REGEX,       /* a token of field (optional) matches the regular
                      expression str[0..str_len) whole (PCRE2, caseless,
                      UTF-8; re: compiled); toks[0] "" */
    Q_WILD,        /* a token of field (optional) matches the pattern
                      str[0..str_len): '*' any run, '?' one character (UTF-8),
                      ASCII letters lower-cased; toks[0] is its literal
                      prefix (what comes before the first wildcard) */
};

/* Q_REGEX: the match data one thread's matches of re write (made once per
 * scan of the term dictionary, not per term); NULL when out of memory. */
void *srch_regex_scratch(const void *re);
void srch_regex_scratch_free(void *md);
/* 1 when token t[0..n) matches re whole, 0 when not, -1 when the match
 * went past its limits (a pathological pattern). */
int srch_regex_match(const void *re, void *md, const char *t, size_t n);

/* 1 when token t[0..n) matches pattern p[0..pn) ('*', '?': see Q_WILD). */
int srch_glob(const char *p, size_t pn, const char *t, size_t n);

typedef struct qnode qnode;
struct qnode {
    int type;
    int pos;                   /* 1-based position in the query text */
    char *field;               /* NULL: any field */
    size_t field_len;
    char **toks;
    size_t *tok_lens;
    size_t ntoks;
    char *vkey;                /* boolean value term, or NULL */
    size_t vkey_len;
    int has_num;               /* the word is a number: equality on columns */
    double num;
    double lo, hi;
    int lo_incl, hi_incl;
    char *str;                 /* Q_EXACT: the whole value */
    size_t str_len;
    int must;                  /* parser, Lucene dialect: marked '+' */
    void *re;                  /* Q_REGEX: the pcre2_code (srch_query.c) */
    qnode **kids;
    size_t nkids;
};

struct srch_query {
    qnode *root;
};

#endif
