/*
 * api_util.c -- small helpers shared by api/: JSON writers (answers are
 * built by appending to a seg_buf; event sources are copied in as sent),
 * time parameters, disk usage.
 */
#define _GNU_SOURCE
#include "api/api.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void api_put_s(seg_buf *b, const char *s) { seg_buf_put(b, s, strlen(s)); }

void api_put_jstr(seg_buf *b, const char *s, size_t n)
{
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
