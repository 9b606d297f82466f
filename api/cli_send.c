/*
 * cli_send.c -- `logdex ingest --url`: the lines of files sent to a running
 * server's ingest route in batches (libcurl), instead of written to a data
 * directory.
 *
 * Batches: lines are gathered up to SEND_BATCH bytes (a line is never cut;
 * one longer line goes alone) and POSTed to URL/api/v1/INDEX/ingest
 * (?format=text or ?format=combined: the server turns lines into events).
 * The answer's counts are summed; its rejected lines (numbered within the
 * batch) are reported with their line in the file.  A batch refused for
 * now (429, 503, 507: busy, overloaded, disk full) is sent again after the
 * server's Retry-After (else 1 s, doubling to 30 s), up to SEND_TRIES
 * times; a batch refused as too large (413: the server's --max-body under
 * 4 MiB) is sent in halves; any other failure stops the run with the
 * server's reason.  A batch
 * whose answer was lost (a timeout, a dropped connection) is sent again too:
 * events with an _id are then stored once, others may be stored twice (at
 * least once, as every shipper).
 */
#include "api/api_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEND_BATCH ((size_t)4 << 20)
#define SEND_TRIES 20

struct cli_sender {
    CURL *curl;
    struct curl_slist *hdr;
    char url[4400];
    seg_buf body;              /* the batch */
    long *lines;               /* file line of each batch line */
    const char **files;        /* ... and its file name */
    size_t nlines, caplines;
    seg_buf answer;
    cli_send_counts k;
    cli_reject_fn reject;
    void *ud;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    seg_buf *b = ud;
    seg_buf_put(b, p, sz * n);
    return b->oom ? 0 : sz * n;
}

cli_sender *cli_sender_new(const char *url, const char *index, const char *token, int text, cli_reject_fn reject,
                           void *ud, seg_err *e)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cli_sender *s = seg_calloc(1, sizeof *s);
    if (!s || !(s->curl = curl_easy_init())) {
        seg_free(s);
        seg_err_set(e, SEG_ENOMEM, NULL, "out of memory (libcurl)");
        return NULL;
    }
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    snprintf(s->url, sizeof s->url, "%.*s/api/v1/%s/ingest%s", (int)ul, url, index, text == 2 ? "?format=combined" : text ? "?format=text" : "");
    s->hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    s->hdr = curl_slist_append(s->hdr, "Expect:"); /* no 100-continue round trip */
    if (token) {
        char h[600];
        snprintf(h, sizeof h, "Authorization: Bearer %s", token);
        s->hdr = curl_slist_append(s->hdr, h);
    }
    curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->hdr);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &s->answer);
    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    s->reject = reject;
    s->ud = ud;
    return s;
}

/* The answer of a 200: counts summed, rejected lines reported. */
static int take_answer(cli_sender *s, seg_err *e)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)s->answer.p, s->answer.n, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return seg_err_set(e, SEG_EIO, s->url, "the server's answer is not JSON: %.200s",
                           s->answer.p ? (const char *)s->answer.p : "");
    }
    s->k.accepted += (uint64_t)json_integer_value(json_object_get(j, "accepted"));
    s->k.rejected += (uint64_t)json_integer_value(json_object_get(j, "rejected"));
    s->k.duplicates += (uint64_t)json_integer_value(json_object_get(j, "duplicates"));
    s->k.arrival += (uint64_t)json_integer_value(json_object_get(j, "arrival_time"));
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(j, "errors"), i, x) {
        json_int_t l = json_integer_value(json_object_get(x, "line"));
        const char *why = json_string_value(json_object_get(x, "reason"));
        if (l >= 1 && (size_t)l <= s->nlines && s->reject)
            s->reject(s->ud, s->files[l - 1], s->lines[l - 1], why ? why : "rejected");
    }
    json_decref(j);
    return SEG_OK;
}

static int send_batch(cli_sender *s, seg_err *e);

/* A batch the server refused as too large (413, a --max-body under the
 * batch): sent again in halves, cut at a line end, down to one line. */
static int send_halves(cli_sender *s, seg_err *e)
{
    if (s->nlines < 2)
        return seg_err_set(e, SEG_ELIMIT, s->url, "line %s:%ld alone is larger than the server's --max-body",
                           s->files[0], s->lines[0]);
    seg_buf all = s->body;
    long *lines = s->lines;
    const char **files = s->files;
    size_t n = s->nlines, half = n / 2, cut = 0;
    for (size_t i = 0, k = 0; i < all.n && k < half; i++)
        if (all.p[i] == '\n' && ++k == half)
            cut = i + 1;
    int rc = SEG_OK;
    for (int part = 0; part < 2 && rc == SEG_OK; part++) {
        seg_buf b = {0};
        seg_buf_put(&b, part ? all.p + cut : all.p, part ? all.n - cut : cut);
        s->body = b;
        s->lines = part ? lines + half : lines;
        s->files = part ? files + half : files;
        s->nlines = part ? n - half : half;
        rc = b.oom ? seg_err_set(e, SEG_ENOMEM, NULL, "out of memory") : send_batch(s, e);
        seg_buf_free(&s->body);
    }
    s->body = all;
    s->lines = lines;
    s->files = files;
    s->nlines = n;
    return rc;
}

int cli_sender_flush(cli_sender *s, seg_err *e)
{
    if (!s->nlines)
        return SEG_OK;
    int rc = send_batch(s, e);
    s->body.n = 0;
    s->nlines = 0;
    return rc;
}

/* Sends s's batch (body, lines) until answered (see the top). */
static int send_batch(cli_sender *s, seg_err *e)
{
    if (s->body.oom)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    int64_t wait_ms = 1000;
    for (int t = 1;; t++) {
        s->answer.n = 0;
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, (const char *)s->body.p);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.n);
        CURLcode cc = curl_easy_perform(s->curl);
        long status = 0;
        curl_off_t ra = -1;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(s->curl, CURLINFO_RETRY_AFTER, &ra);
            if (status == 200)
                return take_answer(s, e);
            if (status == 413)
                return send_halves(s, e);
        }
        int again = cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR ||
                    cc == CURLE_GOT_NOTHING || status == 429 || status == 503 || status == 507;
        if (!again || t == SEND_TRIES) {
            seg_buf_put_u8(&s->answer, 0);
            if (cc != CURLE_OK)
                return seg_err_set(e, SEG_EIO, s->url, "%s", curl_easy_strerror(cc));
            return seg_err_set(e, status == 404 || status == 400 ? SEG_EINVAL : SEG_EIO, s->url,
                               "the server answered %ld%s: %.300s", status, again ? " (gave up retrying)" : "",
                               (const char *)s->answer.p);
        }
        int64_t ms = ra > 0 ? (int64_t)ra * 1000 : wait_ms;
        fprintf(stderr, "logdex ingest: the server answered %ld%s; sending the batch again in %lld ms\n", status,
                cc != CURLE_OK ? curl_easy_strerror(cc) : "", (long long)ms);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        wait_ms = wait_ms * 2 < 30000 ? wait_ms * 2 : 30000;
    }
}

int cli_sender_line(cli_sender *s, const char *file, long lineno, const char *line, size_t n, seg_err *e)
{
    if (s->nlines && s->body.n + n + 1 > SEND_BATCH) {
        int rc = cli_sender_flush(s, e);
        if (rc)
            return rc;
    }
    if (s->nlines == s->caplines) {
        size_t c = s->caplines ? s->caplines * 2 : 4096;
        long *l = seg_realloc(s->lines, c * sizeof *l);
        if (l)
            s->lines = l;
        const char **f = l ? seg_realloc(s->files, c * sizeof *f) : NULL;
        if (!l || !f)
            return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
        s->files = f;
        s->caplines = c;
    }
    s->lines[s->nlines] = lineno;
    s->files[s->nlines++] = file;
    seg_buf_put(&s->body, line, n);
    seg_buf_put_u8(&s->body, '\n');
    return s->body.oom ? seg_err_set(e, SEG_ENOMEM, NULL, "out of memory") : SEG_OK;
}

int cli_sender_put_time_fields(cli_sender *s, const char *url, const char *index, const char *csv, seg_err *e)
{
    json_t *a = json_array();
    for (const char *p = csv; *p;) {
        size_t l = strcspn(p, ",");
        json_array_append_new(a, json_stringn(p, l));
        p += l + (p[l] == ',');
    }
    json_t *j = json_pack("{s:o}", "time_field", a);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return seg_err_set(e, SEG_ENOMEM, NULL, "out of memory");
    char u[4400];
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    snprintf(u, sizeof u, "%.*s/api/v1/%s", (int)ul, url, index);
    s->answer.n = 0;
    curl_easy_setopt(s->curl, CURLOPT_URL, u);
    curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    CURLcode cc = curl_easy_perform(s->curl);
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
    free(body);
    seg_buf_put_u8(&s->answer, 0);
    if (cc != CURLE_OK)
        return seg_err_set(e, SEG_EIO, u, "%s", curl_easy_strerror(cc));
    if (status != 200)
        return seg_err_set(e, SEG_EINVAL, u, "the server answered %ld: %.300s", status, (const char *)s->answer.p);
    return SEG_OK;
}

const cli_send_counts *cli_sender_counts(const cli_sender *s) { return &s->k; }

void cli_sender_free(cli_sender *s)
{
    if (!s)
        return;
    curl_slist_free_all(s->hdr);
    curl_easy_cleanup(s->curl);
    seg_buf_free(&s->body);
    seg_buf_free(&s->answer);
    seg_free(s->lines);
    seg_free(s->files);
    seg_free(s);
    curl_global_cleanup();
}
