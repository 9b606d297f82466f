/*
 * seg_json.c -- the NDJSON event scanner of the ingest hot path.
 *
 * One pass over one line: validates it as JSON with exactly jansson's
 * rules (flags 0), and flattens it into a list of values, each with the
 * dotted path of its keys.  No tree is built.  Strings without escapes
 * are handed out as spans of the input (zero copy); others are decoded
 * into a scratch arena reused from line to line.
 *
 * jansson's rules kept here (tests/t_json.c proves equality against
 * jansson itself on generated and mutated inputs):
 *   - whitespace is space, tab, LF, CR; text after the value is an error;
 *   - UTF-8 must be valid everywhere (no overlongs, no surrogates, nothing
 *     above U+10FFFF);
 *   - strings: no raw byte below 0x20; escapes \" \\ \/ \b \f \n \r \t
 *     \uXXXX; \u0000 is refused; a high surrogate escape must be followed
 *     by a low surrogate escape; a lone low surrogate is refused;
 *   - numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; without a
 *     fraction or exponent it is an integer and must fit int64; otherwise a
 *     double from strtod, and overflow to infinity is refused;
 *   - nesting deeper than 2048 arrays/objects is refused;
 *   - a key given twice keeps its first position and its last value.
 * The top-level value must be an object (an event).
 *
 * Duplicate keys are rare, so they are handled by a second pass: the
 * first pass notices a possible duplicate (a 64-bit mask of key hashes per
 * object, then exact compare) and restarts in a mode that records each
 * object's members and rearranges the flattened values at the object's end.
 */
#include "seg.h"

#include <errno.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

typedef struct jv_raw {      /* a value while parsing: offsets, not pointers */
    uint32_t path_off, path_len;
    uint8_t type, top, str_in_arena;
    uint64_t str_off;        /* offset in the line or in the arena */
    uint32_t str_len;
    int64_t i;
    double d;
} jv_raw;

typedef struct member {      /* slow mode: one key of an object */
    uint64_t hash;
    uint32_t key_off, key_len;   /* decoded key in the arena */
    size_t vstart, vend;         /* its values in the raw list */
} member;

struct seg_json {
    jv_raw *raw;
    size_t nraw, capraw;
    seg_jval *out;
    size_t capout;
    seg_buf arena;
    seg_buf members;         /* slow mode member stack */
    seg_buf tmp;             /* scratch for value rearrangement */
    char path[SEG_FIELD_MAX + 8];
    size_t plen;
    uint64_t path_gen, last_gen;
    uint32_t last_path_off;
    /* per-parse */
    const uint8_t *s, *p, *end;
    int slow, dup_seen;
    const char *why;
    int code;
};

seg_json *seg_json_new(void) { return seg_calloc(1, sizeof(seg_json)); }

void seg_json_free(seg_json *j)
{
    if (!j)
        return;
    seg_free(j->raw);
    seg_free(j->out);
    seg_buf_free(&j->arena);
    seg_buf_free(&j->members);
    seg_buf_free(&j->tmp);
    seg_free(j);
}

#define FAIL(j, msg) do { if (!(j)->why) { (j)->why = (msg); (j)->code = SEG_EJSON; } return -1; } while (0)

static inline void skip_ws(seg_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

int seg_utf8_len(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0];
    int n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        n = 2;
        cp = c & 0x1F;
    } else if (c < 0xF0) {
        n = 3;
        cp = c & 0x0F;
    } else if (c < 0xF5) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (end - p < n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    return n;
}

static int hexval(const uint8_t *p, uint32_t *v)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        r <<= 4;
        if (c >= '0' && c <= '9')
            r |= c - '0';
        else if (c >= 'a' && c <= 'f')
            r |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            r |= c - 'A' + 10;
        else
            return -1;
    }
    *v = r;
    return 0;
}

static void put_utf8(seg_buf *b, uint32_t cp)
{
    uint8_t x[4];
    size_t n;
    if (cp < 0x80) {
        x[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        x[0] = (uint8_t)(0xC0 | cp >> 6);
        x[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        x[0] = (uint8_t)(0xE0 | cp >> 12);
        x[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        x[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        x[0] = (uint8_t)(0xF0 | cp >> 18);
        x[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        x[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        x[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    seg_buf_put(b, x, n);
}

/* Parses a string at j->p (on the opening quote).  On success *in_arena
 * tells where the decoded bytes are: the input at *off, or the arena. */
static int parse_string(seg_json *j, uint64_t *off, uint32_t *len, uint8_t *in_arena)
{
    const uint8_t *p = ++j->p, *end = j->end;
    const uint8_t *start = p;
    /* fast scan: plain bytes up to the closing quote */
    for (;;) {
#ifdef __SSE2__
        /* 16 bytes at a time while none is a quote, a backslash, a control
         * byte or non-ASCII (a signed compare below 0x20 catches the last
         * two at once) */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                      space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                     _mm_cmplt_epi8(v, space));
            int bits = _mm_movemask_epi8(m);
            if (bits) {
                p += __builtin_ctz((unsigned)bits);
                break;
            }
            p += 16;
        }
#endif
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            FAIL(j, "premature end of input in string");
        if (*p == '"') {
            if (p - start > UINT32_MAX)
                FAIL(j, "string too long");
            *off = (uint64_t)(start - j->s);
            *len = (uint32_t)(p - start);
            *in_arena = 0;
            j->p = p + 1;
            return 0;
        }
        if (*p >= 0x80) {
            int n = seg_utf8_len(p, end);
            if (!n)
                FAIL(j, "invalid UTF-8 in string");
            p += n;
            continue;
        }
        if (*p < 0x20)
            FAIL(j, "control character in string");
        break; /* backslash: decode */
    }
    seg_buf *a = &j->arena;
    size_t aoff = a->n;
    seg_buf_put(a, start, (size_t)(p - start));
    while (p < end && *p != '"') {
        if (*p == '\\') {
            p++;
            if (p >= end)
                FAIL(j, "premature end of input in string");
            uint8_t c = *p++;
            switch (c) {
            case '"': seg_buf_put_u8(a, '"'); break;
            case '\\': seg_buf_put_u8(a, '\\'); break;
            case '/': seg_buf_put_u8(a, '/'); break;
            case 'b': seg_buf_put_u8(a, '\b'); break;
            case 'f': seg_buf_put_u8(a, '\f'); break;
            case 'n': seg_buf_put_u8(a, '\n'); break;
            case 'r': seg_buf_put_u8(a, '\r'); break;
            case 't': seg_buf_put_u8(a, '\t'); break;
            case 'u': {
                uint32_t v, w;
                if (end - p < 4 || hexval(p, &v))
                    FAIL(j, "invalid \\u escape");
                p += 4;
                if (v == 0)
                    FAIL(j, "\\u0000 is not allowed");
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hexval(p + 2, &w) ||
                        w < 0xDC00 || w > 0xDFFF)
                        FAIL(j, "invalid Unicode surrogate escape");
                    p += 6;
                    v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                } else if (v >= 0xDC00 && v <= 0xDFFF) {
                    FAIL(j, "invalid Unicode surrogate escape");
                }
                put_utf8(a, v);
                break;
            }
            default:
                FAIL(j, "invalid escape in string");
            }
        } else if (*p < 0x20) {
            FAIL(j, "control character in string");
        } else if (*p >= 0x80) {
            int n = seg_utf8_len(p, end);
            if (!n)
                FAIL(j, "invalid UTF-8 in string");
            seg_buf_put(a, p, (size_t)n);
            p += n;
        } else {
            const uint8_t *q = p;
            while (q < end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
                q++;
            seg_buf_put(a, p, (size_t)(q - p));
            p = q;
        }
    }
    if (p >= end)
        FAIL(j, "premature end of input in string");
    if (a->oom) {
        j->code = SEG_ENOMEM;
        j->why = "out of memory";
        return -1;
    }
    j->p = p + 1;
    *off = aoff;
    *len = (uint32_t)(a->n - aoff);
    *in_arena = 1;
    return 0;
}

static jv_raw *push_val(seg_json *j, uint8_t type, int top)
{
    if (j->nraw >= SEG_EVENT_MAX_VALUES) {
        if (!j->why) {
            j->code = SEG_ELIMIT;
            j->why = "more than 100000 values in one event";
        }
        return NULL;
    }
    if (j->nraw == j->capraw) {
        size_t cap = j->capraw ? j->capraw * 2 : 64;
        jv_raw *r = seg_realloc(j->raw, cap * sizeof *r);
        if (!r) {
            j->code = SEG_ENOMEM;
            j->why = "out of memory";
            return NULL;
        }
        j->raw = r;
        j->capraw = cap;
    }
    jv_raw *v = &j->raw[j->nraw++];
    memset(v, 0, sizeof *v);
    v->type = type;
    v->top = (uint8_t)top;
    if (j->last_gen != j->path_gen || j->nraw == 1) {
        j->last_path_off = (uint32_t)j->arena.n;
        seg_buf_put(&j->arena, j->path, j->plen);
        j->last_gen = j->path_gen;
    }
    v->path_off = j->last_path_off;
    v->path_len = (uint32_t)j->plen;
    return v;
}

static int parse_number(seg_json *j, int top)
{
    const uint8_t *p = j->p, *end = j->end, *start = p;
    int is_real = 0;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        FAIL(j, "invalid token");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            FAIL(j, "invalid token");
    } else {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            FAIL(j, "invalid token");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        is_real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            FAIL(j, "invalid token");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        is_real = 1;
    }
    j->p = p;
    if (!is_real) {
        /* int64 with overflow detection, like strtoll */
        const uint8_t *q = start;
        int neg = *q == '-';
        if (neg)
            q++;
        uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (; q < p; q++) {
            uint64_t d = (uint64_t)(*q - '0');
            if (v > (lim - d) / 10)
                FAIL(j, neg ? "too big negative integer" : "too big integer");
            v = v * 10 + d;
        }
        jv_raw *r = push_val(j, SEG_JV_INT, top);
        if (!r)
            return -1;
        r->i = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    char buf[128], *heap = NULL, *s = buf;
    size_t n = (size_t)(p - start);
    if (n >= sizeof buf) {
        heap = s = seg_malloc(n + 1);
        if (!heap) {
            j->code = SEG_ENOMEM;
            j->why = "out of memory";
            return -1;
        }
    }
    memcpy(s, start, n);
    s[n] = 0;
    errno = 0;
    double d = strtod(s, NULL);
    int range = errno == ERANGE;
    seg_free(heap);
    if (range && isinf(d))
        FAIL(j, "real number overflow");
    jv_raw *r = push_val(j, SEG_JV_REAL, top);
    if (!r)
        return -1;
    r->d = d;
    return 0;
}

static int parse_value(seg_json *j, int depth, int top);

/* Slow mode: rearranges values [base..nraw) of an object whose members
 * are in the member stack from mbase: each key keeps the position of its
 * first occurrence and the values of its last. */
static int fix_duplicates(seg_json *j, size_t mbase, size_t vbase)
{
    member *m = (member *)(void *)(j->members.p + mbase);
    size_t nm = (j->members.n - mbase) / sizeof(member);
    size_t nv = j->nraw - vbase;
    seg_buf_reset(&j->tmp);
    if (seg_buf_reserve(&j->tmp, nv * sizeof(jv_raw) + 1))
        return -1;
    jv_raw *out = (jv_raw *)(void *)j->tmp.p;
    size_t o = 0;
    for (size_t a = 0; a < nm; a++) {
        int seen_before = 0;
        for (size_t b = 0; b < a && !seen_before; b++)
            if (m[b].hash == m[a].hash && m[b].key_len == m[a].key_len &&
                !memcmp(j->arena.p + m[b].key_off, j->arena.p + m[a].key_off, m[a].key_len))
                seen_before = 1;
        if (seen_before)
            continue;
        size_t last = a;
        for (size_t b = a + 1; b < nm; b++)
            if (m[b].hash == m[a].hash && m[b].key_len == m[a].key_len &&
                !memcmp(j->arena.p + m[b].key_off, j->arena.p + m[a].key_off, m[a].key_len))
                last = b;
        for (size_t v = m[last].vstart; v < m[last].vend; v++)
            out[o++] = j->raw[v];
    }
    if (o)
        memcpy(j->raw + vbase, out, o * sizeof(jv_raw));
    j->nraw = vbase + o;
    return 0;
}

/* is_top: the event itself; its keys start paths and its values are "top". */
static int parse_object(seg_json *j, int depth, int is_top)
{
    j->p++; /* '{' */
    uint64_t mask = 0;
    size_t mbase = j->members.n, vbase = j->nraw;
    size_t saved = j->plen;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"')
            FAIL(j, "string or '}' expected");
        uint64_t koff;
        uint32_t klen;
        uint8_t karena;
        if (parse_string(j, &koff, &klen, &karena))
            return -1;
        const uint8_t *kp = karena ? j->arena.p + koff : j->s + koff;
        /* arena may move below; copy the key into the path first */
        size_t sep = is_top ? 0 : 1;
        size_t np = saved + sep + klen;
        if (np > SEG_FIELD_MAX) {
            j->why = "field name too long";
            j->code = SEG_ELIMIT;
            return -1;
        }
        if (sep)
            j->path[saved] = '.';
        memcpy(j->path + saved + sep, kp, klen);
        j->plen = np;
        j->path_gen++;
        uint64_t h = seg_hash64(kp, klen);
        if (j->slow) {
            member mm = {h, (uint32_t)j->arena.n, klen, j->nraw, 0};
            /* from the path's copy: kp may point into the arena, which
             * this put can move (fuzz_json found the use after free) */
            seg_buf_put(&j->arena, j->path + saved + sep, klen);
            seg_buf_put(&j->members, &mm, sizeof mm);
        } else if (mask & (1ull << (h & 63))) {
            /* possible duplicate: exact check needs the keys; restart slow */
            j->dup_seen = 1;
            j->why = "duplicate";
            return -1;
        }
        mask |= 1ull << (h & 63);
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':')
            FAIL(j, "':' expected");
        j->p++;
        skip_ws(j);
        if (parse_value(j, depth, is_top))
            return -1;
        if (j->slow) {
            member *last = (member *)(void *)(j->members.p + j->members.n - sizeof(member));
            last->vend = j->nraw;
        }
        j->plen = saved;
        j->path_gen++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        FAIL(j, "',' or '}' expected");
    }
    if (j->slow) {
        if (j->members.oom || fix_duplicates(j, mbase, vbase)) {
            j->code = SEG_ENOMEM;
            j->why = "out of memory";
            return -1;
        }
        j->members.n = mbase;
    }
    return 0;
}

static int parse_array(seg_json *j, int depth)
{
    j->p++; /* '[' */
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        skip_ws(j);
        if (parse_value(j, depth, 0))
            return -1;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }
        FAIL(j, "',' or ']' expected");
    }
}

static int lit(seg_json *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
        FAIL(j, "invalid token");
    j->p += n;
    return 0;
}

/* top: 1 when the value sits directly under a top-level key. */
static int parse_value(seg_json *j, int depth, int top)
{
    if (j->p >= j->end)
        FAIL(j, "unexpected end of input");
    switch (*j->p) {
    case '{':
        if (depth + 1 > SEG_JSON_MAX_DEPTH)
            FAIL(j, "maximum parsing depth reached");
        return parse_object(j, depth + 1, 0);
    case '[':
        if (depth + 1 > SEG_JSON_MAX_DEPTH)
            FAIL(j, "maximum parsing depth reached");
        return parse_array(j, depth + 1);
    case '"': {
        uint64_t off;
        uint32_t len;
        uint8_t ar;
        if (parse_string(j, &off, &len, &ar))
            return -1;
        jv_raw *r = push_val(j, SEG_JV_STRING, top);
        if (!r)
            return -1;
        r->str_off = off;
        r->str_len = len;
        r->str_in_arena = ar;
        return 0;
    }
    case 't':
        if (lit(j, "true", 4))
            return -1;
        return push_val(j, SEG_JV_TRUE, top) ? 0 : -1;
    case 'f':
        if (lit(j, "false", 5))
            return -1;
        return push_val(j, SEG_JV_FALSE, top) ? 0 : -1;
    case 'n':
        return lit(j, "null", 4);
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return parse_number(j, top);
        if (*j->p >= 0x80 && !seg_utf8_len(j->p, j->end))
            FAIL(j, "invalid UTF-8");
        FAIL(j, "invalid token");
    }
}

static int parse_doc(seg_json *j)
{
    j->nraw = 0;
    seg_buf_reset(&j->arena);
    seg_buf_reset(&j->members);
    j->plen = 0;
    j->path_gen = 1;
    j->last_gen = 0;
    j->why = NULL;
    j->code = SEG_OK;
    j->p = j->s;
    skip_ws(j);
    if (j->p >= j->end)
        FAIL(j, "empty line");
    if (*j->p != '{')
        FAIL(j, "not a JSON object");
    if (parse_object(j, 1, 1))
        return -1;
    skip_ws(j);
    if (j->p != j->end)
        FAIL(j, "end of file expected");
    if (j->arena.oom) {
        j->code = SEG_ENOMEM;
        j->why = "out of memory";
        return -1;
    }
    return 0;
}

int seg_json_parse(seg_json *j, const char *s, size_t n, const seg_jval **vals, size_t *nvals,
                   seg_err *e)
{
    j->s = (const uint8_t *)s;
    j->end = j->s + n;
    j->slow = 0;
    j->dup_seen = 0;
    int rc = parse_doc(j);
    if (rc && j->dup_seen) {
        /* possible duplicate key: a full check in slow mode */
        j->slow = 1;
        j->dup_seen = 0;
        rc = parse_doc(j);
    }
    if (rc) {
        *vals = NULL;
        *nvals = 0;
        long at = (long)(j->p - j->s) + 1;
        return seg_err_set(e, j->code ? j->code : SEG_EJSON, NULL, "%s near byte %ld",
                           j->why ? j->why : "invalid JSON", at);
    }
    if (j->nraw > j->capout) {
        seg_jval *o = seg_realloc(j->out, j->nraw * sizeof *o);
        if (!o)
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        j->out = o;
        j->capout = j->nraw;
    }
    for (size_t i = 0; i < j->nraw; i++) {
        const jv_raw *r = &j->raw[i];
        seg_jval *v = &j->out[i];
        v->path = (const char *)j->arena.p + r->path_off;
        v->path_len = r->path_len;
        v->type = r->type;
        v->top = r->top;
        v->str = r->type == SEG_JV_STRING
                     ? (const char *)(r->str_in_arena ? j->arena.p : j->s) + r->str_off
                     : NULL;
        v->str_len = r->str_len;
        v->i = r->i;
        v->d = r->d;
        if (!v->path_len)
            v->path = "";
    }
    *vals = j->out;
    *nvals = j->nraw;
    return SEG_OK;
}
