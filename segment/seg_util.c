/*
 * seg_util.c -- errors, allocation, byte encoding helpers and file helpers.
 *
 * Every integer that logdex writes to disk goes through the helpers here:
 * fixed-width integers are little-endian; varints are unsigned LEB128
 * (7 bits a byte, low group first, high bit = more follows, at most 10
 * bytes); signed values are zigzag-mapped before varint encoding.
 */
#define _GNU_SOURCE
#include "seg.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static const char *const seg_codes[SEG_NCODES] = {
    [SEG_OK] = "ok",
    [SEG_ENOMEM] = "out of memory",
    [SEG_EIO] = "I/O error",
    [SEG_ECORRUPT] = "corrupt file",
    [SEG_EVERSION] = "unknown file format or version",
    [SEG_EINVAL] = "invalid argument",
    [SEG_EJSON] = "invalid event",
    [SEG_EQUERY] = "invalid query",
    [SEG_ENOENT] = "not found",
    [SEG_ELOCKED] = "locked by another writer",
    [SEG_ELIMIT] = "limit exceeded",
    [SEG_EBUSY] = "busy: retry later",
    [SEG_ENOSPC] = "insufficient storage: retry later",
    [SEG_EUNAVAIL] = "storage unavailable: retry later",
};

const char *seg_strerror(int code)
{
    if (code < 0 || code >= SEG_NCODES)
        return "unknown error";
    return seg_codes[code];
}

void seg_err_clear(seg_err *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

int seg_err_set(seg_err *e, int code, const char *file, const char *fmt, ...)
{
    if (!e || e->code != SEG_OK)
        return code;
    e->code = code;
    if (file)
        snprintf(e->file, sizeof e->file, "%s", file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* an I/O error for lack of space is SEG_ENOSPC.  Every I/O error's
     * message carries strerror() of its cause, which survives the cleanup
     * calls (close, unlink) that may change errno before this call. */
    if (code == SEG_EIO && (strstr(e->msg, strerror(ENOSPC)) || strstr(e->msg, strerror(EDQUOT))))
        e->code = code = SEG_ENOSPC;
    return code;
}

const char *seg_err_str(const seg_err *e, char *buf, size_t n)
{
    if (e->file[0])
        snprintf(buf, n, "%s: %s", e->file, e->msg[0] ? e->msg : seg_strerror(e->code));
    else
        snprintf(buf, n, "%s", e->msg[0] ? e->msg : seg_strerror(e->code));
    return buf;
}

/* ---- allocation ---- */

static unsigned long fault_countdown;
static unsigned long fault_more; /* failures still to make after the countdown's */

void seg_fault_inject(unsigned long nth) { seg_fault_inject_run(nth, 1); }

void seg_fault_inject_run(unsigned long nth, unsigned long count)
{
    __atomic_store_n(&fault_more, nth && count ? count - 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fault_countdown, nth, __ATOMIC_RELAXED);
}

unsigned long seg_fault_left(void) { return __atomic_load_n(&fault_countdown, __ATOMIC_RELAXED); }

/* 1 for the allocation that takes the countdown from 1 to 0.  A
 * compare-and-swap: two threads that both read 1 must not both count down
 * (the second would wrap the countdown to ULONG_MAX). */
static int fault_now(void)
{
    unsigned long c = __atomic_load_n(&fault_countdown, __ATOMIC_RELAXED);
    while (c != 0)
        if (__atomic_compare_exchange_n(&fault_countdown, &c, c - 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return c == 1;
    /* past the countdown: the rest of a run */
    unsigned long m = __atomic_load_n(&fault_more, __ATOMIC_RELAXED);
    while (m != 0)
        if (__atomic_compare_exchange_n(&fault_more, &m, m - 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 1;
    return 0;
}

/* ---- crash points ---- */

static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static char fp_name[64];
static unsigned long fp_count;   /* hits of fp_name still to pass (atomic) */
static long fp_sleep_ms;         /* NAME~MS: sleep at every hit instead */
static unsigned long fp_fail;    /* NAME!N: hits still to fail as I/O errors (atomic) */

static void fp_init(void)
{
    const char *v = getenv("LOGDEX_FAILPOINT");
    if (!v || !*v)
        return;
    snprintf(fp_name, sizeof fp_name, "%s", v);
    char *tilde = strchr(fp_name, '~');
    if (tilde) {
        *tilde = 0;
        fp_sleep_ms = strtol(tilde + 1, NULL, 10);
        return;
    }
    char *bang = strchr(fp_name, '!');
    if (bang) {
        *bang = 0;
        fp_fail = strtoul(bang + 1, NULL, 10);
        return;
    }
    char *colon = strchr(fp_name, ':');
    fp_count = 1;
    if (colon) {
        *colon = 0;
        fp_count = strtoul(colon + 1, NULL, 10);
        if (fp_count == 0)
            fp_count = 1;
    }
}

int seg_failpoint(const char *name)
{
    pthread_once(&fp_once, fp_init);
    if (!fp_name[0] || strcmp(fp_name, name))
        return 0;
    if (fp_sleep_ms > 0) {
        struct timespec ts = {fp_sleep_ms / 1000, (fp_sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    unsigned long f = __atomic_load_n(&fp_fail, __ATOMIC_RELAXED);
    while (f != 0)
        if (__atomic_compare_exchange_n(&fp_fail, &f, f - 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return 1;
    if (fp_count && __atomic_sub_fetch(&fp_count, 1, __ATOMIC_ACQ_REL) == 0) {
        fprintf(stderr, "logdex: failpoint %s: killing the process\n", name);
        raise(SIGKILL);
    }
    return 0;
}

void *seg_malloc(size_t n) { return fault_now() ? NULL : malloc(n ? n : 1); }
void *seg_calloc(size_t n, size_t m) { return fault_now() ? NULL : calloc(n ? n : 1, m ? m : 1); }
void *seg_realloc(void *p, size_t n) { return fault_now() ? NULL : realloc(p, n ? n : 1); }
void seg_free(void *p) { free(p); }

void *seg_grow(void *arr, uint32_t n, uint32_t *cap, uint32_t first, size_t elem)
{
    if (n < *cap)
        return arr;
    uint32_t nc = *cap ? 2 * *cap : first;
    void *p = seg_realloc(arr, (size_t)nc * elem);
    if (p)
        *cap = nc;
    return p;
}

char *seg_strndup(const char *s, size_t n)
{
    char *d = seg_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* ---- growable buffer ---- */

void seg_buf_free(seg_buf *b)
{
    if (!b)
        return;
    seg_free(b->p);
    memset(b, 0, sizeof *b);
}

int seg_buf_grow(seg_buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra)
        cap *= 2;
    uint8_t *p = seg_realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- bounds-checked decoding ---- */

const uint8_t *seg_get_bytes(seg_cur *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *r = c->p;
    c->p += n;
    return r;
}

uint8_t seg_get_u8(seg_cur *c)
{
    const uint8_t *p = seg_get_bytes(c, 1);
    return p ? p[0] : 0;
}

uint16_t seg_get_u16(seg_cur *c)
{
    const uint8_t *p = seg_get_bytes(c, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t seg_get_u32(seg_cur *c)
{
    const uint8_t *p = seg_get_bytes(c, 4);
    return p ? seg_rd_u32(p) : 0;
}

uint64_t seg_get_u64(seg_cur *c)
{
    const uint8_t *p = seg_get_bytes(c, 8);
    return p ? seg_rd_u64(p) : 0;
}

double seg_get_f64(seg_cur *c)
{
    uint64_t u = seg_get_u64(c);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

uint64_t seg_get_varint_slow(seg_cur *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->bad || c->p >= c->end) {
            c->bad = 1;
            return 0;
        }
        uint8_t b = *c->p++;
        if (shift == 63 && b > 1) {
            c->bad = 1;
            return 0;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

uint64_t seg_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }

uint64_t seg_hash64_2(const void *a, size_t an, const void *b, size_t bn)
{
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, a, an);
    XXH3_64bits_update(&st, b, bn);
    return XXH3_64bits_digest(&st);
}

/* packs the low w bits of each value (the bytes of seg_buf_put_packed
 * after its width byte) */
static void put_bits(seg_buf *b, const uint32_t *v, size_t n, unsigned w)
{
    size_t bytes = (n * w + 7) / 8;
    if (!w || seg_buf_reserve(b, bytes + 8))
        return;
    uint8_t *p = b->p + b->n;
    memset(p, 0, bytes + 8);
    uint64_t acc = 0, mask = w == 32 ? 0xffffffffull : (1ull << w) - 1;
    unsigned have = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= ((uint64_t)v[i] & mask) << have;
        have += w;
        while (have >= 8) {
            p[o++] = (uint8_t)acc;
            acc >>= 8;
            have -= 8;
        }
    }
    if (have)
        p[o++] = (uint8_t)acc;
    b->n += bytes;
}

void seg_buf_put_packed(seg_buf *b, const uint32_t *v, size_t n)
{
    uint32_t all = 0;
    for (size_t i = 0; i < n; i++)
        all |= v[i];
    unsigned w = all ? 32 - (unsigned)__builtin_clz(all) : 0;
    seg_buf_put_u8(b, (uint8_t)w);
    put_bits(b, v, n, w);
}

/* the n values of width w (1..32) in the `bytes` bytes at p */
static void unpack_bits(const uint8_t *p, size_t bytes, uint32_t *out, size_t n, unsigned w)
{
    uint64_t mask = (w == 32) ? 0xffffffffull : ((1ull << w) - 1);
    size_t bit = 0, i = 0;
    /* fast path: 8-byte loads while they stay inside the bytes */
    for (; i < n && (bit >> 3) + 8 <= bytes; i++, bit += w) {
        uint64_t x;
        memcpy(&x, p + (bit >> 3), 8);
        out[i] = (uint32_t)((x >> (bit & 7)) & mask);
    }
    for (; i < n; i++, bit += w) {
        uint64_t x = 0;
        for (size_t k = 0; k < 8 && (bit >> 3) + k < bytes; k++)
            x |= (uint64_t)p[(bit >> 3) + k] << (8 * k);
        out[i] = (uint32_t)((x >> (bit & 7)) & mask);
    }
}

int seg_get_packed(seg_cur *c, uint32_t *out, size_t n)
{
    unsigned w = seg_get_u8(c);
    if (c->bad || w > 32) {
        c->bad = 1;
        return -1;
    }
    if (w == 0) {
        memset(out, 0, n * sizeof *out);
        return 0;
    }
    size_t bytes = (n * w + 7) / 8;
    const uint8_t *p = seg_get_bytes(c, bytes);
    if (!p)
        return -1;
    unpack_bits(p, bytes, out, n, w);
    return 0;
}

void seg_buf_put_xpacked(seg_buf *b, const uint32_t *v, size_t n)
{
    /* values by bit length; the cost of each width from that (an
     * exception's index delta counted as one byte: exact for n <= 128).
     * Only 0 and the lengths present are worth trying as widths.  Runs
     * of fewer than 8 values (most terms are rare) are packed plainly. */
    uint32_t all = 0;
    for (size_t i = 0; i < n; i++)
        all |= v[i];
    if (n < 8 || all == 0) {
        unsigned w = all ? 32 - (unsigned)__builtin_clz(all) : 0;
        seg_buf_put_u8(b, (uint8_t)w);
        put_bits(b, v, n, w);
        return;
    }
    size_t cnt[33] = {0};
    for (size_t i = 0; i < n; i++)
        cnt[v[i] ? 32 - __builtin_clz(v[i]) : 0]++;
    unsigned len[33], nl = 0;
    for (unsigned l = 1; l <= 32; l++)
        if (cnt[l])
            len[nl++] = l;
    unsigned maxw = nl ? len[nl - 1] : 0, best = maxw;
    size_t best_cost = (n * maxw + 7) / 8;
    for (unsigned k = 0; k < nl; k++) {
        unsigned w = k == 0 ? 0 : len[k - 1];
        size_t exc = 0, cost = (n * w + 7) / 8;
        for (unsigned j = k; j < nl; j++) {
            exc += cnt[len[j]];
            cost += cnt[len[j]] * (1 + (len[j] - w + 6) / 7);
        }
        cost += seg_varint_len(exc);
        if (cost < best_cost) {
            best_cost = cost;
            best = w;
        }
    }
    seg_buf_put_u8(b, (uint8_t)(best | (best < maxw ? 0x80 : 0)));
    put_bits(b, v, n, best);
    if (best == maxw)
        return;
    size_t exc = 0;
    for (size_t i = 0; i < n; i++)
        exc += (v[i] >> best) != 0;
    seg_buf_put_varint(b, exc);
    size_t prev = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if ((v[i] >> best) == 0)
            continue;
        seg_buf_put_varint(b, i - prev - 1);
        seg_buf_put_varint(b, v[i] >> best);
        prev = i;
    }
}

int seg_get_xpacked(seg_cur *c, uint32_t *out, size_t n)
{
    unsigned h = seg_get_u8(c), w = h & 0x3f;
    if (c->bad || (h & 0x40) || w > 32 || ((h & 0x80) && w == 32)) {
        c->bad = 1;
        return -1;
    }
    if (w == 0) {
        memset(out, 0, n * sizeof *out);
    } else {
        size_t bytes = (n * w + 7) / 8;
        const uint8_t *p = seg_get_bytes(c, bytes);
        if (!p)
            return -1;
        unpack_bits(p, bytes, out, n, w);
    }
    if (!(h & 0x80))
        return 0;
    uint64_t exc = seg_get_varint(c), at = (uint64_t)-1;
    if (c->bad || exc == 0 || exc > n) {
        c->bad = 1;
        return -1;
    }
    for (uint64_t k = 0; k < exc; k++) {
        uint64_t delta = seg_get_varint(c), hi = seg_get_varint(c);
        at += 1 + (delta < n ? delta : n);
        if (c->bad || at >= n || hi == 0 || hi >= (1ull << (32 - w))) {
            c->bad = 1;
            return -1;
        }
        out[at] |= (uint32_t)(hi << w);
    }
    return 0;
}

/* ---- files ---- */

int seg_fsync_dir(const char *dir, seg_err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return seg_err_set(e, SEG_EIO, dir, "open directory: %s", strerror(errno));
    if (fsync(fd) != 0) {
        int err = errno;
        close(fd);
        return seg_err_set(e, SEG_EIO, dir, "fsync directory: %s", strerror(err));
    }
    close(fd);
    return SEG_OK;
}

int seg_write_file_atomic(const char *path, const void *p, size_t n, seg_err *e)
{
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return seg_err_set(e, SEG_EIO, tmp, "create: %s", strerror(errno));
    const uint8_t *q = p;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, q, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            unlink(tmp);
            return seg_err_set(e, SEG_EIO, tmp, "write: %s", strerror(err));
        }
        q += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return seg_err_set(e, SEG_EIO, tmp, "fsync: %s", strerror(errno));
    }
    if (seg_failpoint("file-before-rename")) {
        unlink(tmp);
        return seg_err_set(e, SEG_EIO, path, "rename: input/output error (failpoint)");
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return seg_err_set(e, SEG_EIO, path, "rename: %s", strerror(errno));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    return seg_fsync_dir(dir, e);
}

int seg_mkdir_p(const char *path, seg_err *e)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return seg_err_set(e, SEG_EIO, buf, "mkdir: %s", strerror(errno));
            *s = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return seg_err_set(e, SEG_EIO, buf, "mkdir: %s", strerror(errno));
    return SEG_OK;
}
