/*
 * idx_settings.c -- an index's settings (internal to indexer/): the file
 * INDEX/settings, written once when the index is given settings (at its
 * creation, or before its first event), replaced atomically.
 *
 * Text, like the manifest:
 *   logdex-settings 1
 *   time_field NAME          zero to IDX_TIME_FIELDS_MAX lines, in order:
 *                            the fields tried for an event's time before
 *                            the built-in @timestamp, timestamp, time, ts
 *   end HASH                 16 hex digits: XXH3-64 of every byte before
 *                            this line
 * NAME is a flattened field path (a.b for {"a":{"b":..}}): 1..127 bytes,
 * none of them a space, tab, newline or comma.  A reader refuses a file
 * whose magic, version, checksum or lines are wrong, and an unknown key
 * (a newer writer's setting this reader would ignore).  No file: no
 * settings (the built-in time fields only).
 */
#include "indexer/idx_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(((idx_settings *)0)->time_field[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == ',' || s[i] == 0)
            return 0;
    return 1;
}

static void fix_ptrs(idx_settings *s)
{
    for (size_t i = 0; i < s->ntime; i++)
        s->time_ptr[i] = s->time_field[i];
}

int idx_settings_parse_fields(const char *csv, idx_settings *s, seg_err *e)
{
    memset(s, 0, sizeof *s);
    for (const char *p = csv; *p;) {
        size_t l = strcspn(p, ",");
        const char *q = p;
        size_t ql = l;
        while (ql && (*q == ' ' || *q == '\t'))
            q++, ql--;
        while (ql && (q[ql - 1] == ' ' || q[ql - 1] == '\t'))
            ql--;
        if (!name_ok(q, ql))
            return seg_err_set(e, SEG_EINVAL, NULL,
                               "bad time field '%.*s': a field name of 1 to 127 bytes, no spaces or commas "
                               "(a.b for a nested field)",
                               (int)l, p);
        if (s->ntime == IDX_TIME_FIELDS_MAX)
            return seg_err_set(e, SEG_EINVAL, NULL, "at most %d time fields", IDX_TIME_FIELDS_MAX);
        memcpy(s->time_field[s->ntime], q, ql);
        s->time_field[s->ntime][ql] = 0;
        s->ntime++;
        p += l + (p[l] == ',');
    }
    if (!s->ntime)
        return seg_err_set(e, SEG_EINVAL, NULL, "empty time field list");
    fix_ptrs(s);
    return SEG_OK;
}

int idx_settings_equal(const idx_settings *a, const idx_settings *b)
{
    if (a->ntime != b->ntime)
        return 0;
    for (size_t i = 0; i < a->ntime; i++)
        if (strcmp(a->time_field[i], b->time_field[i]))
            return 0;
    return 1;
}

void idx_settings_format_fields(const idx_settings *s, char *out, size_t n)
{
    size_t at = 0;
    out[0] = 0;
    for (size_t i = 0; i < s->ntime && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? "," : "", s->time_field[i]);
}

int idx_settings_save(const char *indexdir, const idx_settings *s, seg_err *e)
{
    seg_buf b = {0};
    seg_buf_put(&b, "logdex-settings 1\n", 18);
    for (size_t i = 0; i < s->ntime; i++) {
        seg_buf_put(&b, "time_field ", 11);
        seg_buf_put(&b, s->time_field[i], strlen(s->time_field[i]));
        seg_buf_put(&b, "\n", 1);
    }
    char end[32];
    snprintf(end, sizeof end, "end %016llx\n", (unsigned long long)seg_hash64(b.p, b.n));
    seg_buf_put(&b, end, strlen(end));
    if (b.oom) {
        seg_buf_free(&b);
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/settings", indexdir);
    int rc = seg_write_file_atomic(path, b.p, b.n, e);
    seg_buf_free(&b);
    return rc;
}

int idx_settings_load(const char *indexdir, idx_settings *s, int *exists, seg_err *e)
{
    memset(s, 0, sizeof *s);
    *exists = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/settings", indexdir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return SEG_OK;
        return seg_err_set(e, SEG_EIO, path, "open: %s", strerror(errno));
    }
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big)
        return seg_err_set(e, SEG_ECORRUPT, path, "settings file too large");
    buf[n] = 0;
    const char *endl = NULL;
    for (const char *p = buf; (p = strstr(p, "end ")) != NULL; p++)
        if (p == buf || p[-1] == '\n')
            endl = p;
    unsigned long long h;
    char tail;
    if (!endl || strncmp(buf, "logdex-settings 1\n", 18) || sscanf(endl, "end %16llx%c", &h, &tail) != 2 ||
        tail != '\n' || endl + 21 != buf + n || seg_hash64(buf, (size_t)(endl - buf)) != h)
        return seg_err_set(e, SEG_ECORRUPT, path, "bad settings file (magic, version or checksum)");
    for (const char *p = buf + 18; p < endl;) {
        const char *nl = memchr(p, '\n', (size_t)(endl - p));
        if (!nl)
            return seg_err_set(e, SEG_ECORRUPT, path, "bad settings line");
        size_t l = (size_t)(nl - p);
        if (l > 11 && !memcmp(p, "time_field ", 11) && name_ok(p + 11, l - 11) && s->ntime < IDX_TIME_FIELDS_MAX) {
            memcpy(s->time_field[s->ntime], p + 11, l - 11);
            s->time_field[s->ntime++][l - 11] = 0;
        } else {
            return seg_err_set(e, SEG_ECORRUPT, path, "unknown or bad settings line: %.*s", (int)(l < 80 ? l : 80),
                               p);
        }
        p = nl + 1;
    }
    fix_ptrs(s);
    *exists = 1;
    return SEG_OK;
}

int idx_read_time_fields(const char *datadir, const char *index, char *out, size_t n, seg_err *e)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", datadir, index);
    idx_settings s;
    int have, rc = idx_settings_load(dir, &s, &have, e);
    out[0] = 0;
    if (rc == SEG_OK)
        idx_settings_format_fields(&s, out, n);
    return rc;
}
