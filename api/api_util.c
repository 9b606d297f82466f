/*
 * api_util.c -- small helpers shared by api/: JSON writers (answers are
 * built by appending to a seg_buf; event sources are copied in as sent),
 * time parameters, disk usage.
 */
#define _GNU_SOURCE
#include "api/api.h"

#include <dirent.h>
#include <errno.h>
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
