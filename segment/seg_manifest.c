/*
 * seg_manifest.c -- the list of live segments of one index.
 *
 * File INDEXDIR/manifest, text, replaced atomically (write "manifest.tmp",
 * fsync, rename, fsync the directory).  Lines:
 *
 *   logdex-manifest 1                      magic and version
 *   next SEQ                               next segment sequence number
 *   bucket NS                              bucket width in ns
 *   wal SEQ                                write-ahead log files with
 *                                          sequence <= SEQ are in segments
 *                                          (optional; 0 when absent)
 *   seg NAME BUCKET DOCS MIN MAX BYTES [END]
 *                                          one per live segment; END (only
 *                                          in version 2) is the end of the
 *                                          buckets a span segment holds:
 *                                          [BUCKET, END), exclusive
 *   end XXH3                               16 hex digits: XXH3-64 of all
 *                                          bytes before this line
 *
 * Version 2 is written only when a segment spans buckets (so that data
 * without spans stays readable by version-1 readers); both are read.
 * Numbers are decimal (times in ns since the epoch).  A reader refuses a
 * file whose magic, version or checksum is wrong.  Bump the version on any
 * change; readers refuse versions they do not know.
 */
#include "seg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAGIC "logdex-manifest 1\n"
#define MANIFEST_MAGIC2 "logdex-manifest 2\n" /* same length */

void seg_manifest_free(seg_manifest *m)
{
    if (!m)
        return;
    seg_free(m->e);
    memset(m, 0, sizeof *m);
}

int seg_manifest_add(seg_manifest *m, const seg_mentry *ent)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        seg_mentry *e = seg_realloc(m->e, cap * sizeof *e);
        if (!e)
            return SEG_ENOMEM;
        m->e = e;
        m->cap = cap;
    }
    m->e[m->n++] = *ent;
    return SEG_OK;
}

int seg_manifest_parse(const char *text, size_t n, const char *path, seg_manifest *m, seg_err *e)
{
    memset(m, 0, sizeof *m);
    m->next_seq = 1;
    char *s = seg_malloc(n + 1);
    if (!s)
        return seg_err_set(e, SEG_ENOMEM, path, "out of memory");
    memcpy(s, text, n);
    s[n] = 0;
    size_t len = n;
    int rc = SEG_OK;
    if (memchr(s, 0, n)) {
        rc = seg_err_set(e, SEG_ECORRUPT, path, "manifest holds a NUL byte");
        goto out;
    }
    int version = len >= strlen(MANIFEST_MAGIC) && !memcmp(s, MANIFEST_MAGIC, strlen(MANIFEST_MAGIC))     ? 1
                  : len >= strlen(MANIFEST_MAGIC2) && !memcmp(s, MANIFEST_MAGIC2, strlen(MANIFEST_MAGIC2)) ? 2
                                                                                                           : 0;
    if (!version) {
        rc = seg_err_set(e, SEG_EVERSION, path, "not a logdex manifest, or an unknown version");
        goto out;
    }
    /* the end line is the last line */
    char *endl = NULL;
    for (char *q = s + len - 1; q > s && !endl; q--)
        if (*q == '\n' && q < s + len - 1 && !strncmp(q, "\nend ", 5))
            endl = q;
    if (!endl) {
        rc = seg_err_set(e, SEG_ECORRUPT, path, "manifest has no end line (torn write?)");
        goto out;
    }
    endl++;
    uint64_t want = strtoull(endl + 4, NULL, 16);
    if (seg_hash64(s, (size_t)(endl - s)) != want) {
        rc = seg_err_set(e, SEG_ECORRUPT, path, "manifest checksum mismatch");
        goto out;
    }
    char *line = s + strlen(MANIFEST_MAGIC);
    while (line < endl) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = 0;
        seg_mentry ent;
        memset(&ent, 0, sizeof ent);
        unsigned long long nx;
        long long bn;
        int nf = 0;
        if (sscanf(line, "next %llu", &nx) == 1) {
            m->next_seq = nx;
        } else if (sscanf(line, "bucket %lld", &bn) == 1) {
            m->bucket_ns = bn;
        } else if (sscanf(line, "wal %llu", &nx) == 1) {
            m->wal_done = nx;
        } else if ((nf = sscanf(line, "seg %63s %" SCNd64 " %" SCNu32 " %" SCNd64 " %" SCNd64 " %" SCNu64 " %" SCNd64,
                                ent.name, &ent.bucket, &ent.docs, &ent.min_time, &ent.max_time, &ent.bytes,
                                &ent.bucket_end)) == 6 ||
                   (nf == 7 && version >= 2)) {
            if (strchr(ent.name, '/') || ent.name[0] == '.') {
                rc = seg_err_set(e, SEG_ECORRUPT, path, "bad segment name in manifest");
                goto out;
            }
            if (nf == 7 && ent.bucket_end <= ent.bucket) {
                rc = seg_err_set(e, SEG_ECORRUPT, path, "bad bucket span in manifest");
                goto out;
            }
            if (seg_manifest_add(m, &ent)) {
                rc = seg_err_set(e, SEG_ENOMEM, path, "out of memory");
                goto out;
            }
        } else {
            rc = seg_err_set(e, SEG_ECORRUPT, path, "bad manifest line: %.80s", line);
            goto out;
        }
        line = nl + 1;
    }
    if (m->bucket_ns <= 0)
        rc = seg_err_set(e, SEG_ECORRUPT, path, "manifest has no bucket width");
out:
    if (rc)
        seg_manifest_free(m);
    seg_free(s);
    return rc;
}


int seg_manifest_load(const char *dir, seg_manifest *m, int *exists, seg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest", dir);
    memset(m, 0, sizeof *m);
    m->next_seq = 1;
    *exists = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return SEG_OK;
        return seg_err_set(e, SEG_EIO, path, "open: %s", strerror(errno));
    }
    seg_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        seg_buf_put(&b, chunk, k);
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr || b.oom) {
        seg_buf_free(&b);
        return seg_err_set(e, ioerr ? SEG_EIO : SEG_ENOMEM, path, "read failed");
    }
    int rc = seg_manifest_parse((const char *)b.p, b.n, path, m, e);
    seg_buf_free(&b);
    if (rc == SEG_OK)
        *exists = 1;
    return rc;
}

int seg_manifest_save(const char *dir, const seg_manifest *m, seg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest", dir);
    seg_buf b = {0};
    char line[512];
    int spans = 0;
    for (size_t i = 0; i < m->n; i++)
        spans |= m->e[i].bucket_end != 0;
    seg_buf_put(&b, spans ? MANIFEST_MAGIC2 : MANIFEST_MAGIC, strlen(MANIFEST_MAGIC));
    int k = snprintf(line, sizeof line, "next %llu\nbucket %lld\n", (unsigned long long)m->next_seq,
                     (long long)m->bucket_ns);
    if (m->wal_done)
        k += snprintf(line + k, sizeof line - (size_t)k, "wal %llu\n", (unsigned long long)m->wal_done);
    seg_buf_put(&b, line, (size_t)k);
    for (size_t i = 0; i < m->n; i++) {
        const seg_mentry *s = &m->e[i];
        k = snprintf(line, sizeof line, "seg %s %" PRId64 " %" PRIu32 " %" PRId64 " %" PRId64 " %" PRIu64, s->name,
                     s->bucket, s->docs, s->min_time, s->max_time, s->bytes);
        if (s->bucket_end)
            k += snprintf(line + k, sizeof line - (size_t)k, " %" PRId64, s->bucket_end);
        line[k++] = '\n';
        seg_buf_put(&b, line, (size_t)k);
    }
    if (b.oom) {
        seg_buf_free(&b);
        return seg_err_set(e, SEG_ENOMEM, path, "out of memory");
    }
    k = snprintf(line, sizeof line, "end %016llx\n", (unsigned long long)seg_hash64(b.p, b.n));
    seg_buf_put(&b, line, (size_t)k);
    int rc = b.oom ? seg_err_set(e, SEG_ENOMEM, path, "out of memory")
                   : seg_write_file_atomic(path, b.p, b.n, e);
    seg_buf_free(&b);
    return rc;
}
