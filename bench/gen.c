/*
 * gen.c -- deterministic generator of realistic NDJSON log events.
 *
 *   bench/gen [--events N] [--seed S] [--start EPOCH_S] [--hours H]
 *
 * About 300 bytes an event on average: ~55% web access logs (nested http
 * fields, numbers), ~45% application logs (levels, services, messages from
 * templates with Zipf-distributed words, trace ids, nested errors, a few in
 * German, Spanish, Japanese and Russian).  Event times increase with small
 * jitter (a few events arrive late) across H hours.  Same arguments, same
 * bytes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t s = 42;
static uint64_t next(void)
{
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}
static unsigned rnd(unsigned n) { return (unsigned)(next() % n); }

#define VOCAB 4096
static char vocab[VOCAB][12];
static double zipf_cdf[VOCAB];

static void init_vocab(void)
{
    static const char cons[] = "bcdfghklmnprstvz", vow[] = "aeiou";
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) {
        int len = 2 + (int)rnd(3), k = 0;
        for (int j = 0; j < len; j++) {
            vocab[i][k++] = cons[rnd(16)];
            vocab[i][k++] = vow[rnd(5)];
        }
        vocab[i][k] = 0;
        sum += 1.0 / (i + 1);
        zipf_cdf[i] = sum;
    }
    for (int i = 0; i < VOCAB; i++)
        zipf_cdf[i] /= sum;
}

static const char *zipf(void)
{
    double u = (double)(next() >> 11) / 9007199254740992.0;
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (zipf_cdf[m] < u)
            lo = m + 1;
        else
            hi = m;
    }
    return vocab[lo];
}

static void iso(char *out, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    sprintf(out + n, ".%03dZ", (int)(ms % 1000));
}

static const char *const methods[] = {"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"};
static const char *const paths[] = {"/api/v1/users", "/api/v1/orders", "/api/v1/cart", "/static/app.js",
                                    "/static/style.css", "/login", "/health", "/api/v2/search", "/checkout"};
static const int statuses[] = {200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503};
static const char *const agents[] = {"Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
                                     "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/605.1.15",
                                     "curl/8.4.0", "Go-http-client/1.1", "kube-probe/1.28"};
static const char *const services[] = {"payment", "checkout", "auth", "inventory", "search", "gateway", "mailer"};
static const char *const levels[] = {"INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"};
static const char *const templates[] = {
    "request %s processed in %u ms for user %u",
    "connection to %s-db:5432 refused, retrying in %u s (attempt %u)",
    "cache miss for key %s:%u, loading from store %u",
    "user %s logged in from new device %u (session %u)",
    "payment %s declined: insufficient funds, amount %u cents, card %u",
    "timeout waiting for %s upstream after %u ms (pool %u)",
    "order %s shipped via carrier %u, %u items",
    "Verbindung zu %s fehlgeschlagen nach %u Versuchen, Fehler %u",
    "no se pudo procesar el pedido %s del cliente %u, código %u",
    "ユーザー %s のログインに失敗しました（試行 %u 回、コード %u）",
    "не удалось подключиться к %s после %u попыток, код %u",
};

int main(int argc, char **argv)
{
    long n = 200000;
    long long start = 1717200000; /* 2024-06-01T00:00:00Z */
    double hours = 24;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--events"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            s = strtoull(argv[i + 1], NULL, 10) | 1;
        else if (!strcmp(argv[i], "--start"))
            start = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--hours"))
            hours = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: gen [--events N] [--seed S] [--start EPOCH_S] [--hours H]\n");
            return 2;
        }
    }
    init_vocab();
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    double span_ms = hours * 3600e3;
    for (long i = 0; i < n; i++) {
        int64_t ms = start * 1000 + (int64_t)(span_ms * (double)i / (double)n);
        if (rnd(100) == 0)
            ms -= rnd(600000); /* late by up to 10 minutes */
        else
            ms += rnd(50);
        char ts[40];
        iso(ts, ms);
        if (rnd(100) < 55) {
            printf("{\"@timestamp\":\"%s\",\"service\":\"nginx\",\"host\":\"web-%02u\",\"client\":{\"ip\":\"10.%u.%u.%u\"},"
                   "\"http\":{\"method\":\"%s\",\"path\":\"%s/%u\",\"status\":%d,\"bytes\":%u,\"duration_ms\":%u.%u},"
                   "\"user_agent\":\"%s\"}\n",
                   ts, rnd(16), rnd(4), rnd(256), rnd(256), methods[rnd(8)], paths[rnd(9)], rnd(5000),
                   statuses[rnd(sizeof statuses / sizeof *statuses)], 200 + rnd(40000), rnd(800), rnd(10),
                   agents[rnd(5)]);
        } else {
            char msg[256];
            unsigned t = rnd(100) < 85 ? rnd(7) : 7 + rnd(4);
            snprintf(msg, sizeof msg, templates[t], zipf(), rnd(2000), rnd(100000));
            const char *lvl = levels[rnd(7)];
            printf("{\"@timestamp\":\"%s\",\"level\":\"%s\",\"service\":\"%s\",\"trace_id\":\"%08x%08x\","
                   "\"msg\":\"%s %s %s\",\"user\":{\"id\":%u,\"plan\":\"%s\"}",
                   ts, lvl, services[rnd(7)], (unsigned)next(), (unsigned)next(), msg, zipf(), zipf(), rnd(100000),
                   rnd(3) ? "free" : "pro");
            if (!strcmp(lvl, "ERROR"))
                printf(",\"error\":{\"type\":\"%s\",\"stack\":[\"at %s.handle(%s.java:%u)\",\"at %s.run(%s.java:%u)\"]}",
                       rnd(2) ? "TimeoutException" : "IllegalStateException", zipf(), zipf(), rnd(900), zipf(), zipf(),
                       rnd(900));
            printf(",\"tags\":[\"%s\",\"%s\"]}\n", rnd(2) ? "prod" : "canary", rnd(2) ? "eu-west-1" : "us-east-2");
        }
    }
    return 0;
}
