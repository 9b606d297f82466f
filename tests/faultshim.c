/*
 * faultshim.c -- an LD_PRELOAD library for tests/t_faultsweep.sh: fails one
 * chosen file-system call of a process with ENOSPC, as a full disk would.
 *
 * Counted ("eligible") calls: open/openat with O_CREAT or a write mode,
 * rename/renameat, link, mkdir, unlink of a path under FAULTSHIM_DIR; and
 * write/writev/pwrite/fsync/fdatasync/ftruncate on a descriptor of a
 * regular file (sockets, pipes and terminals are never failed).
 *   FAULTSHIM_AT=N     fail the N-th eligible call (1-based); 0: none
 *   FAULTSHIM_COUNT=F  at exit, write to F the number of eligible calls and
 *                      the kind of call failed ("-": none)
 * A failed write writes nothing.  The count is shared by all threads
 * (atomic), so which call is the N-th may differ from run to run when
 * threads race; a sweep over N still fails each kind of call somewhere.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long at, calls;
static const char *failed; /* the kind of call failed, for the report */
static const char *dir;
static size_t dirlen;
static const char *count_file;

static void report(void)
{
    if (!count_file)
        return;
    FILE *f = fopen(count_file, "w");
    if (f) {
        fprintf(f, "%lu %s\n", __atomic_load_n(&calls, __ATOMIC_RELAXED), failed ? failed : "-");
        fclose(f);
    }
}

__attribute__((constructor)) static void init(void)
{
    const char *s = getenv("FAULTSHIM_AT");
    at = s ? strtoul(s, NULL, 10) : 0;
    dir = getenv("FAULTSHIM_DIR");
    dirlen = dir ? strlen(dir) : 0;
    count_file = getenv("FAULTSHIM_COUNT");
    atexit(report);
}

/* 1 when this eligible call (of kind what) is the one to fail. */
static int hit(const char *what)
{
    unsigned long n = __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    if (at && n == at) {
        failed = what;
        errno = ENOSPC;
        return 1;
    }
    return 0;
}

static int path_ok(const char *p) { return dir && p && !strncmp(p, dir, dirlen); }

static int fd_ok(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* fsync of a directory too (a rename's durability) */
static int sync_ok(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
}

/* the next definition of name (libc's), looked up once */
#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static int open_counted(const char *p, int flags)
{
    return path_ok(p) && (flags & (O_CREAT | O_WRONLY | O_RDWR));
}

/* the mode argument of open/openat, present with O_CREAT or O_TMPFILE */
#define OPEN_MODE(m, flags)                                                                                    \
    mode_t m = 0;                                                                                              \
    if ((flags) & (O_CREAT | O_TMPFILE)) {                                                                     \
        va_list ap;                                                                                            \
        va_start(ap, flags);                                                                                   \
        m = va_arg(ap, mode_t);                                                                                \
        va_end(ap);                                                                                            \
    }

int open(const char *p, int flags, ...)
{
    REAL(open);
    OPEN_MODE(m, flags);
    if (open_counted(p, flags) && hit("open"))
        return -1;
    return real_open(p, flags, m);
}
int open64(const char *p, int flags, ...) __attribute__((alias("open")));

int openat(int d, const char *p, int flags, ...)
{
    REAL(openat);
    OPEN_MODE(m, flags);
    if (open_counted(p, flags) && hit("openat"))
        return -1;
    return real_openat(d, p, flags, m);
}
int openat64(int d, const char *p, int flags, ...) __attribute__((alias("openat")));

FILE *fopen(const char *p, const char *mode)
{
    REAL(fopen);
    if (path_ok(p) && strpbrk(mode, "wa+") && hit("fopen"))
        return NULL;
    return real_fopen(p, mode);
}
FILE *fopen64(const char *p, const char *mode) __attribute__((alias("fopen")));

ssize_t write(int fd, const void *b, size_t n)
{
    REAL(write);
    if (fd_ok(fd) && hit("write"))
        return -1;
    return real_write(fd, b, n);
}

ssize_t writev(int fd, const struct iovec *v, int n)
{
    REAL(writev);
    if (fd_ok(fd) && hit("writev"))
        return -1;
    return real_writev(fd, v, n);
}

ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{
    REAL(pwrite);
    if (fd_ok(fd) && hit("pwrite"))
        return -1;
    return real_pwrite(fd, b, n, o);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) __attribute__((alias("pwrite")));

int fsync(int fd)
{
    REAL(fsync);
    if (sync_ok(fd) && hit("fsync"))
        return -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    if (sync_ok(fd) && hit("fdatasync"))
        return -1;
    return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len)
{
    REAL(ftruncate);
    if (fd_ok(fd) && hit("ftruncate"))
        return -1;
    return real_ftruncate(fd, len);
}
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

int rename(const char *a, const char *b)
{
    REAL(rename);
    if (path_ok(b) && hit("rename"))
        return -1;
    return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
    REAL(renameat);
    if (path_ok(b) && hit("renameat"))
        return -1;
    return real_renameat(da, a, db, b);
}

int link(const char *a, const char *b)
{
    REAL(link);
    if (path_ok(b) && hit("link"))
        return -1;
    return real_link(a, b);
}

int mkdir(const char *p, mode_t m)
{
    REAL(mkdir);
    if (path_ok(p) && hit("mkdir"))
        return -1;
    return real_mkdir(p, m);
}
