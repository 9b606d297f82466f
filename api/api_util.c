/*
 * api_util.c -- small helpers shared by api/: JSON writers (answers are
 * built by appending to a seg_buf; event sources are copied in as sent),
 * time parameters, disk usage.
 */
#define _GNU_SOURCE
#include "api/api_int.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void api_put_s(seg_buf *b, const char *s) { seg_buf_put(b, s, strlen(s)); }

void api_put_jstr(seg_buf *b, const char *s, size_t n)
{
    /* printable ASCII without '"' or '\\' is its own JSON text (most ids,
     * names and keys): written as is, as jansson would write it */
    size_t k = 0;
    while (k < n && (unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x80 && s[k] != '"' && s[k] != '\\')
        k++;
    if (k == n) {
        seg_buf_put_u8(b, '"');
        seg_buf_put(b, s, n);
        seg_buf_put_u8(b, '"');
        return;
    }
    json_t *j = json_stringn_nocheck(s, n);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    api_put_s(b, d ? d : "\"\"");
    free(d);
    json_decref(j);
}

int api_parse_time(const char *key, const char *v, int64_t *out, seg_err *e)
{
    int rc = srch_parse_time(v, seg_time_now(), out, e);
    if (rc) {
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "%s", e->msg);
        snprintf(e->msg, sizeof e->msg, "%s: %.*s", key, (int)(sizeof e->msg - 16), m);
    }
    return rc;
}

uint64_t api_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    uint64_t n = 0;
    if (!d)
        return 0;
    struct dirent *de;
    char p[8300];
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            n += (uint64_t)st.st_size;
        else if (S_ISDIR(st.st_mode) && strlen(p) < 4200)
            n += api_dir_bytes(p);
    }
    closedir(d);
    return n;
}

void api_stats_json(seg_buf *b, srch_index *ix, const char *dir)
{
    srch_bucket *bk;
    size_t nb = srch_index_buckets(ix, &bk);
    uint32_t most = 0;
    for (size_t i = 0; i < nb; i++)
        if (bk[i].segments > most)
            most = bk[i].segments;
    char s[256];
    snprintf(s, sizeof s,
             "{\"events\":%llu,\"segments\":%zu,\"buckets\":%zu,\"bytes\":%llu,\"max_segments_per_bucket\":%u,"
             "\"per_bucket\":[",
             (unsigned long long)srch_index_events(ix), srch_index_nsegments(ix), nb,
             (unsigned long long)api_dir_bytes(dir), most);
    api_put_s(b, s);
    for (size_t i = 0; i < nb; i++) {
        char ts[40];
        seg_time_format(bk[i].start, ts);
        snprintf(s, sizeof s, "%s{\"start\":\"%s\",\"segments\":%u,\"events\":%llu,\"bytes\":%llu}",
                 i ? "," : "", ts, bk[i].segments, (unsigned long long)bk[i].events,
                 (unsigned long long)bk[i].bytes);
        api_put_s(b, s);
    }
    api_put_s(b, "]}");
    seg_free(bk);
}

int api_parse_duration(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t unit = 0;
    if (errno || end == s || v <= 0 || end[0] == 0 || end[1] != 0)
        return -1;
    switch (*end) {
    case 's': unit = 1000000000LL; break;
    case 'm': unit = 60000000000LL; break;
    case 'h': unit = 3600000000000LL; break;
    case 'd': unit = 86400000000000LL; break;
    default: return -1;
    }
    if (v > INT64_MAX / unit)
        return -1;
    *ns = v * unit;
    return 0;
}

int api_parse_bytes(const char *s, uint64_t *bytes)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return -1;
    }
    if (*end && end[1] != 0 && !(end[1] == 'B' && end[2] == 0) && !(end[1] == 'i' && end[2] == 'B' && end[3] == 0))
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *bytes = (uint64_t)v << shift;
    return 0;
}

void api_put_partial(seg_buf *b, const srch_stats *st)
{
    if (!st->segments_failed)
        return;
    char f[80];
    snprintf(f, sizeof f, ",\"partial\":{\"failed_segments\":%zu,\"reason\":", st->segments_failed);
    api_put_s(b, f);
    api_put_jstr(b, st->failure, strlen(st->failure));
    api_put_s(b, "}");
}

const char *api_unknown_key(const json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int ok = 0;
        for (const char *const *p = allowed; *p && !ok; p++)
            ok = !strcmp(*p, k);
        if (!ok)
            return k;
    }
    return NULL;
}

/* Edit distance of a and b, stopping early past 3 (names are short). */
static int edits(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    int d[33][33];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

void api_unknown_msg(const char *what, const char *key, const char *const *known, char *out, size_t n)
{
    /* what other engines call them */
    static const char *const alias[][2] = {{"query", "q"},    {"size", "limit"}, {"from", "cursor"},
                                           {"order", "sort"}, {"_source", "fields"}, {"aggregations", "aggs"},
                                           {"search_after", "cursor"}};
    const char *near = NULL;
    for (size_t i = 0; i < sizeof alias / sizeof *alias && !near; i++)
        if (!strcmp(key, alias[i][0]))
            for (const char *const *k = known; *k; k++)
                if (!strcmp(*k, alias[i][1]))
                    near = *k;
    int best = 3;
    for (const char *const *k = known; *k && !near; k++) {
        int d = edits(key, *k);
        if (d < best && d < (int)strlen(*k)) {
            best = d;
            near = *k;
        }
    }
    size_t at = (size_t)snprintf(out, n, "unknown %s '%.64s'", what, key);
    if (near && at < n)
        at += (size_t)snprintf(out + at, n - at, " (did you mean '%s'?)", near);
    if (at < n)
        at += (size_t)snprintf(out + at, n - at, "; known: ");
    for (const char *const *k = known; *k && at < n; k++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", k == known ? "" : ", ", *k);
}

/* ------------------------------------------------------------------ */
/* _source filtering on the event's own bytes (values stay as sent)     */
/* ------------------------------------------------------------------ */

/* The end of the JSON value at p (< end); NULL when malformed. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    do {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',' || *p == ':'))
            p++;
        if (p >= end)
            return NULL;
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return NULL;
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
            continue;
        } else if (*p == '}' || *p == ']') {
            depth--;
            p++;
        } else {
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
                p++;
        }
    } while (depth > 0);
    return p;
}

static int pat_match(const json_t *pats, const char *path)
{
    for (size_t i = 0; i < json_array_size(pats); i++) {
        const char *pt = json_string_value(json_array_get(pats, i));
        size_t l = strlen(pt);
        /* a pattern names a field and everything under it */
        if (!fnmatch(pt, path, 0) || (!strncmp(path, pt, l) && path[l] == '.'))
            return 1;
    }
    return 0;
}

/* Appends the members of the object at [p, end) that pass incl/excl;
 * prefix is the object's path.  Returns the members written, -1 when the
 * text is not an object this reads. */
static int filter_object(const char *p, const char *end, const char *prefix, const json_t *incl,
                         const json_t *excl, seg_buf *out)
{
    while (p < end && *p != '{')
        p++;
    if (p >= end)
        return -1;
    p++;
    int written = 0;
    seg_buf_put_u8(out, '{');
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ','))
            p++;
        if (p >= end)
            return -1;
        if (*p == '}')
            break;
        if (*p != '"')
            return -1;
        const char *k0 = p + 1, *k1 = k0;
        while (k1 < end && *k1 != '"')
            k1 += *k1 == '\\' ? 2 : 1;
        if (k1 >= end)
            return -1;
        const char *v0 = k1 + 1;
        while (v0 < end && (*v0 == ' ' || *v0 == ':'))
            v0++;
        const char *v1 = skip_value(v0, end);
        if (!v1)
            return -1;
        char path[SEG_FIELD_MAX + 2];
        int pl = snprintf(path, sizeof path, "%s%s%.*s", prefix, *prefix ? "." : "", (int)(k1 - k0), k0);
        p = v1;
        if (pl < 0 || (size_t)pl >= sizeof path)
            continue;
        if (json_array_size(excl) && pat_match(excl, path))
            continue;
        int in = !json_array_size(incl) || pat_match(incl, path);
        size_t mark = out->n;
        if (written)
            seg_buf_put_u8(out, ',');
        seg_buf_put(out, k0 - 1, (size_t)(k1 + 1 - (k0 - 1)));
        seg_buf_put_u8(out, ':');
        if (*v0 == '{' && (json_array_size(excl) || !in)) {
            /* something under it may be left out, or be the only thing in */
            int n = filter_object(v0, v1, path, in ? NULL : incl, excl, out);
            if (n < 0)
                return -1;
            if (n == 0 && !in) {
                out->n = mark;
                continue;
            }
        } else if (in) {
            seg_buf_put(out, v0, (size_t)(v1 - v0));
        } else {
            out->n = mark;
            continue;
        }
        written++;
    }
    seg_buf_put_u8(out, '}');
    return written;
}

int api_filter_source(const char *json, size_t n, const json_t *incl, const json_t *excl, seg_buf *out)
{
    return filter_object(json, json + n, "", incl, excl, out);
}

/* ------------------------------------------------------------------ */
/* Inputs other than NDJSON: plain text lines, a JSON array, a BOM        */
/* ------------------------------------------------------------------ */

size_t api_bom(const char *p, size_t n)
{
    return n >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF ? 3
                                                                                                                : 0;
}

/* The length of the valid UTF-8 sequence at p (< end), 0 when invalid
 * (RFC 3629: no overlong forms, no surrogates, up to U+10FFFF). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t l;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        l = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        l = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        l = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < l || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < l; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return l;
}

/* s as a JSON string: NUL and bytes that are not UTF-8 become U+FFFD,
 * control characters are escaped. */
static void put_text_str(seg_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    seg_buf_put_u8(out, '"');
    while (p < end) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            seg_buf_put(out, e, 2);
            p++;
        } else if (c == '\t') {
            seg_buf_put(out, "\\t", 2);
            p++;
        } else if (c == 0) { /* jansson (and so logdex) refuses \u0000 in strings */
            seg_buf_put(out, "\xEF\xBF\xBD", 3);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            seg_buf_put(out, e, 6);
            p++;
        } else {
            size_t l = utf8_len(p, end);
            if (l) {
                seg_buf_put(out, p, l);
                p += l;
            } else { /* not UTF-8: U+FFFD, as a reader would show it */
                seg_buf_put(out, "\xEF\xBF\xBD", 3);
                p++;
            }
        }
    }
    seg_buf_put_u8(out, '"');
}

void api_text_event(seg_buf *out, const char *s, size_t n)
{
    api_put_s(out, "{\"message\":");
    put_text_str(out, s, n);
    api_put_s(out, "}");
}

/* Apache/nginx "combined" (or "common") log line: host ident user [time]
 * "request" status bytes ["referer" "user agent"].  0 with the event in
 * out (ECS field names) and the time in *lt; -1 when the line is not one
 * (out untouched). */
static int combined_event(seg_buf *out, const char *s, size_t n, int64_t now, idx_line_time *lt)
{
    const char *p = s, *e = s + n, *f[3];
    size_t fl[3];
    for (int k = 0; k < 3; k++) { /* host, ident, user */
        f[k] = p;
        while (p < e && *p != ' ')
            p++;
        fl[k] = (size_t)(p - f[k]);
        if (!fl[k] || p >= e)
            return -1;
        p++;
    }
    if (p >= e || *p != '[')
        return -1;
    const char *t0 = p;
    while (p < e && *p != ']')
        p++;
    if (p >= e)
        return -1;
    p++;
    idx_line_time when = {0, 0};
    if (seg_time_parse_text(t0, (size_t)(p - t0), now, &when.time, NULL))
        return -1;
    when.has = 1;
    const char *q[3];
    size_t ql[3];
    int nq = 0;
    long status = -1;
    long long bytes = -1;
    /* "request" status bytes ["referer" "agent"] */
    for (int part = 0; part < 5 && p < e; part++) {
        while (p < e && *p == ' ')
            p++;
        if (p >= e)
            break;
        if (part == 1 || part == 2) {
            const char *d = p;
            while (p < e && *p != ' ')
                p++;
            char b[24];
            size_t dl = (size_t)(p - d);
            if (!dl || dl >= sizeof b)
                return -1;
            memcpy(b, d, dl);
            b[dl] = 0;
            char *x;
            long long v = strtoll(b, &x, 10);
            if (*x && strcmp(b, "-"))
                return -1;
            if (part == 1)
                status = *x ? -1 : (long)v;
            else
                bytes = *x ? -1 : v;
            continue;
        }
        if (*p != '"')
            return -1;
        const char *a = ++p;
        while (p < e && *p != '"')
            p += *p == '\\' && p + 1 < e ? 2 : 1;
        if (p >= e)
            return -1;
        q[nq] = a;
        ql[nq++] = (size_t)(p - a);
        p++;
    }
    if (nq < 1 || status < 0)
        return -1;
    api_put_s(out, "{\"message\":");
    put_text_str(out, s, n);
    api_put_s(out, ",\"source\":{\"address\":");
    put_text_str(out, f[0], fl[0]);
    api_put_s(out, "}");
    if (!(fl[2] == 1 && f[2][0] == '-')) {
        api_put_s(out, ",\"user\":{\"name\":");
        put_text_str(out, f[2], fl[2]);
        api_put_s(out, "}");
    }
    /* the request line: METHOD TARGET PROTOCOL/VERSION */
    const char *r = q[0], *re = q[0] + ql[0], *m = r;
    while (r < re && *r != ' ')
        r++;
    size_t ml = (size_t)(r - m);
    while (r < re && *r == ' ')
        r++;
    const char *u = r;
    while (r < re && *r != ' ')
        r++;
    size_t ul = (size_t)(r - u);
    while (r < re && *r == ' ')
        r++;
    const char *v = memchr(r, '/', (size_t)(re - r));
    api_put_s(out, ",\"http\":{\"request\":{");
    int k = 0;
    if (ml && ul) {
        api_put_s(out, "\"method\":");
        put_text_str(out, m, ml);
        k++;
    }
    if (nq >= 2 && !(ql[1] == 1 && q[1][0] == '-')) {
        api_put_s(out, k++ ? ",\"referrer\":" : "\"referrer\":");
        put_text_str(out, q[1], ql[1]);
    }
    api_put_s(out, "}");
    if (v && v + 1 < re) {
        api_put_s(out, ",\"version\":");
        put_text_str(out, v + 1, (size_t)(re - v - 1));
    }
    char num[80];
    snprintf(num, sizeof num, ",\"response\":{\"status_code\":%ld", status);
    api_put_s(out, num);
    if (bytes >= 0) {
        snprintf(num, sizeof num, ",\"body\":{\"bytes\":%lld}", bytes);
        api_put_s(out, num);
    }
    api_put_s(out, "}}");
    if (ml && ul) {
        api_put_s(out, ",\"url\":{\"original\":");
        put_text_str(out, u, ul);
        api_put_s(out, "}");
    }
    if (nq >= 3 && !(ql[2] == 1 && q[2][0] == '-')) {
        api_put_s(out, ",\"user_agent\":{\"original\":");
        put_text_str(out, q[2], ql[2]);
        api_put_s(out, "}");
    }
    api_put_s(out, "}");
    *lt = when;
    return 0;
}

int api_line_event(seg_buf *out, const char *s, size_t n, int combined, int64_t now, idx_line_time *lt)
{
    lt->has = 0;
    size_t k = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t'))
        k++;
    if (k == n)
        return 0;
    if (combined) {
        size_t mark = out->n;
        if (combined_event(out, s, n, now, lt) == 0)
            return 1;
        out->n = mark;
    }
    size_t used;
    lt->has = seg_time_parse_text(s + k, n - k, now, &lt->time, &used) == 0;
    api_text_event(out, s, n);
    return 1;
}

int api_text_to_ndjson(const char *p, size_t n, int64_t now, int combined, seg_buf *out, seg_buf *times)
{
    size_t at = api_bom(p, n);
    while (at < n) {
        const char *nl = memchr(p + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - p) : n, l = end - at;
        if (l && p[at + l - 1] == '\r')
            l--;
        idx_line_time lt = {0, 0};
        api_line_event(out, p + at, l, combined, now, &lt); /* blank lines stay blank (skipped, numbered) */
        seg_buf_put(times, &lt, sizeof lt);
        seg_buf_put_u8(out, '\n');
        at = end + 1;
    }
    return out->oom || times->oom ? -1 : 0;
}

int api_array_to_ndjson(const char *p, size_t n, seg_buf *out)
{
    const char *q = p + api_bom(p, n), *end = p + n;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
        q++;
    if (q >= end || *q != '[')
        return 0;
    q++;
    for (;;) {
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ','))
            q++;
        if (q >= end)
            return -1;
        if (*q == ']')
            break;
        const char *v = skip_value(q, end);
        if (!v)
            return -1;
        /* raw newlines can only be whitespace between tokens (JSON strings
         * escape theirs): spaces keep the element one line, bytes as sent */
        for (const char *c = q; c < v; c++)
            seg_buf_put_u8(out, *c == '\n' || *c == '\r' ? ' ' : *c);
        seg_buf_put_u8(out, '\n');
        q = v;
    }
    for (q++; q < end; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
            return -1;
    return out->oom ? -1 : 1;
}

/* ---- GET /fields and logdex fields ---- */

typedef struct fctx {
    seg_buf *b;
    int n;
} fctx;

static void field_cb(void *ud, const char *name, size_t len, unsigned flags, uint64_t docs)
{
    fctx *f = ud;
    api_put_s(f->b, f->n++ ? ",{\"name\":" : "{\"name\":");
    api_put_jstr(f->b, name, len);
    api_put_s(f->b, ",\"types\":[");
    static const char *const tn[4] = {"string", "integer", "real", "boolean"};
    int k = 0;
    for (int i = 0; i < 4; i++)
        if (flags & (1u << i)) {
            api_put_s(f->b, k++ ? ",\"" : "\"");
            api_put_s(f->b, tn[i]);
            api_put_s(f->b, "\"");
        }
    char c[64];
    snprintf(c, sizeof c, "],\"count\":%llu}", (unsigned long long)docs);
    api_put_s(f->b, c);
}

void api_fields_json(seg_buf *b, srch_index *ix)
{
    fctx f = {b, 0};
    api_put_s(b, "[");
    srch_index_fields(ix, field_cb, &f);
    api_put_s(b, "]");
}

void api_time_fields_json(seg_buf *b, const char *csv)
{
    api_put_s(b, "[");
    int k = 0;
    for (const char *p = csv; *p;) {
        size_t l = strcspn(p, ",");
        api_put_s(b, k++ ? "," : "");
        api_put_jstr(b, p, l);
        p += l + (p[l] == ',');
    }
    static const char *const builtin[] = {"@timestamp", "timestamp", "time", "ts"};
    for (int i = 0; i < 4; i++) {
        api_put_s(b, k++ ? ",\"" : "\"");
        api_put_s(b, builtin[i]);
        api_put_s(b, "\"");
    }
    api_put_s(b, "]");
}

int api_parse_sort(const char *s, char *field, size_t n, int *asc)
{
    const char *colon = strrchr(s, ':');
    size_t fl = colon ? (size_t)(colon - s) : strlen(s);
    if (!fl || fl >= n || (colon && strcmp(colon + 1, "asc") && strcmp(colon + 1, "desc")))
        return -1;
    memcpy(field, s, fl);
    field[fl] = 0;
    int by_time = !strcmp(field, "_time") || !strcmp(field, "@timestamp");
    *asc = colon ? !strcmp(colon + 1, "asc") : !by_time;
    return 0;
}
