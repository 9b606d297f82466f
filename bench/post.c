/*
 * post.c -- a lean HTTP load client for ingest figures: POSTs files as
 * request bodies over C kept-alive connections, with sendfile(), so that
 * on a small machine the client costs little of the CPU the server needs
 * (curl --parallel spends about a third of a core reading and sending
 * 500 MB; a log shipper would run on another host).
 *
 *   bench/post [-c CONNECTIONS] HOST:PORT PATH FILE...
 *
 * Every file is sent once, in order of the arguments, each connection
 * taking the next unsent file.  Prints one line:
 *   {"files":..,"bytes":..,"seconds":..,"mb_per_s":..,"accepted":..,"non200":..,"client_cpu_s":..}
 * Exit status 1 when a request fails or an answer is not 200.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static const char *path;
static char **files;
static int nfiles;
static int next_file;                 /* atomic */
static unsigned long long accepted, bytes_sent, non200, failures; /* atomic */
static int stop;                      /* atomic: the server cannot be reached */

static int connect_once(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one answer: status and body (Content-Length framed); 0 or -1. */
static int read_answer(int fd, int *status, char *body, size_t cap)
{
    char buf[65536];
    size_t n = 0;
    char *end = NULL;
    while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
        if (n == sizeof buf - 1)
            return -1;
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    buf[n] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1)
        return -1;
    size_t hlen = (size_t)(end + 4 - buf), clen = 0;
    for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2) {
        if (!strncasecmp(h, "Content-Length:", 15))
            clen = strtoull(h + 15, NULL, 10);
        if (!strstr(h, "\r\n"))
            break;
    }
    size_t have = n - hlen, got = 0;
    if (cap)
        body[0] = 0;
    if (have > clen)
        return -1; /* no pipelining here: nothing may follow */
    if (cap > 1) {
        got = have < cap - 1 ? have : cap - 1;
        memcpy(body, buf + hlen, got);
        body[got] = 0;
    }
    while (have < clen) {
        ssize_t r = recv(fd, buf, sizeof buf < clen - have ? sizeof buf : clen - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (got + 1 < cap) {
            size_t k = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
            memcpy(body + got, buf, k);
            got += k;
            body[got] = 0;
        }
        have += (size_t)r;
    }
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    int fd = -1;
    for (;;) {
        int i = __atomic_fetch_add(&next_file, 1, __ATOMIC_RELAXED);
        if (i >= nfiles || __atomic_load_n(&stop, __ATOMIC_RELAXED))
            break;
        int ffd = open(files[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (ffd < 0 || fstat(ffd, &st) != 0) {
            fprintf(stderr, "post: %s: %s\n", files[i], strerror(errno));
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
            if (ffd >= 0)
                close(ffd);
            continue;
        }
        int tries = 0, done = 0;
        while (!done && tries++ < 2) {
            if (fd < 0 && (fd = connect_once()) < 0) {
                if (!__atomic_exchange_n(&stop, 1, __ATOMIC_RELAXED))
                    fprintf(stderr, "post: cannot connect: %s\n", strerror(errno));
                break;
            }
            char head[1024];
            int hl = snprintf(head, sizeof head,
                              "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-ndjson\r\n"
                              "Content-Length: %lld\r\n\r\n",
                              path, (long long)st.st_size);
            off_t off = 0;
            int bad = send_all(fd, head, (size_t)hl) != 0;
            while (!bad && off < st.st_size) {
                ssize_t w = sendfile(fd, ffd, &off, (size_t)(st.st_size - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    bad = 1;
            }
            int status = 0;
            char body[4096];
            if (bad || read_answer(fd, &status, body, sizeof body) != 0) {
                close(fd); /* a closed kept-alive connection: once more on a new one */
                fd = -1;
                continue;
            }
            done = 1;
            __atomic_add_fetch(&bytes_sent, (unsigned long long)st.st_size, __ATOMIC_RELAXED);
            if (status != 200) {
                __atomic_add_fetch(&non200, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "post: %s: status %d: %.200s\n", files[i], status, body);
            }
            const char *a = strstr(body, "\"accepted\":");
            if (a)
                __atomic_add_fetch(&accepted, strtoull(a + 11, NULL, 10), __ATOMIC_RELAXED);
        }
        if (!done) {
            if (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
                fprintf(stderr, "post: %s: request failed\n", files[i]);
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
        }
        close(ffd);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int conns = 4, a = 1;
    if (a + 1 < argc && !strcmp(argv[a], "-c")) {
        conns = atoi(argv[a + 1]);
        a += 2;
    }
    if (argc - a < 3 || conns < 1 || conns > 256) {
        fprintf(stderr, "usage: bench/post [-c CONNECTIONS] HOST:PORT PATH FILE...\n");
        return 2;
    }
    char host[256];
    const char *colon = strrchr(argv[a], ':');
    if (!colon || (size_t)(colon - argv[a]) >= sizeof host) {
        fprintf(stderr, "post: HOST:PORT expected, not %s\n", argv[a]);
        return 2;
    }
    memcpy(host, argv[a], (size_t)(colon - argv[a]));
    host[colon - argv[a]] = 0;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "post: %s: an IPv4 address expected\n", host);
        return 2;
    }
    path = argv[a + 1];
    files = argv + a + 2;
    nfiles = argc - a - 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[256];
    int started = 0;
    for (int i = 0; i < conns; i++)
        if (pthread_create(&th[started], NULL, worker, NULL) == 0)
            started++;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"files\":%d,\"bytes\":%llu,\"seconds\":%.3f,\"mb_per_s\":%.1f,\"accepted\":%llu,\"non200\":%llu,"
           "\"failed\":%llu,\"client_cpu_s\":%.2f}\n",
           nfiles, bytes_sent, secs, secs > 0 ? (double)bytes_sent / 1048576.0 / secs : 0.0, accepted, non200,
           failures, cpu);
    return (non200 || failures || !started) ? 1 : 0;
}
