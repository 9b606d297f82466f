/*
 * seg_time.c -- event time: RFC 3339 strings and epoch numbers.
 *
 * Times are int64 nanoseconds since 1970-01-01T00:00:00Z (range roughly
 * years 1678..2261).  RFC 3339: YYYY-MM-DD('T'|'t'|' ')hh:mm:ss(.frac)?
 * ('Z'|'z'|(+|-)hh:mm); the fraction keeps up to 9 digits (more are
 * accepted and ignored).  A leap second (ss = 60) is taken as :59.999999999.
 *
 * Numbers are told apart by magnitude: |v| < 1e11 seconds, < 1e14
 * milliseconds, < 1e17 microseconds, otherwise nanoseconds.
 */
#include "seg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* days from 1970-01-01 to y-m-d (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static int digits(const char *s, size_t n, size_t at, int cnt, int *out)
{
    if (at + (size_t)cnt > n)
        return -1;
    int v = 0;
    for (int i = 0; i < cnt; i++) {
        char c = s[at + (size_t)i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

int seg_time_parse_rfc3339(const char *s, size_t n, int64_t *ns)
{
    int Y, M, D, h, mi, se;
    if (digits(s, n, 0, 4, &Y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &M) || s[7] != '-' ||
        digits(s, n, 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &se))
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || se > 60)
        return -1;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap)
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t st = i;
        int k = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (k < 9) {
                frac = frac * 10 + (s[i] - '0');
                k++;
            }
            i++;
        }
        if (i == st)
            return -1;
        while (k < 9) {
            frac *= 10;
            k++;
        }
    }
    if (se == 60) {
        se = 59;
        frac = 999999999;
    }
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (int64_t)(oh * 60 + om) * 60;
        if (s[i] == '-')
            off = -off;
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + se - off;
    /* int64 ns covers 1677-09-21 .. 2262-04-11 */
    if (secs < -9223372036LL || secs > 9223372035LL)
        return -1;
    *ns = secs * 1000000000LL + frac;
    return 0;
}

int seg_time_from_number(double v, int64_t *ns)
{
    if (!isfinite(v))
        return -1;
    double a = fabs(v), x;
    if (a < 1e11)
        x = v * 1e9;
    else if (a < 1e14)
        x = v * 1e6;
    else if (a < 1e17)
        x = v * 1e3;
    else
        x = v;
    if (x >= 9.2e18 || x <= -9.2e18)
        return -1;
    *ns = (int64_t)llround(x);
    return 0;
}

int seg_time_from_int(int64_t v, int64_t *ns)
{
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int64_t mul;
    if (a < 100000000000ULL)
        mul = 1000000000;
    else if (a < 100000000000000ULL)
        mul = 1000000;
    else if (a < 100000000000000000ULL)
        mul = 1000;
    else
        mul = 1;
    if (mul > 1 && (v > INT64_MAX / mul || v < INT64_MIN / mul))
        return -1;
    *ns = v * mul;
    return 0;
}

void seg_time_format(int64_t ns, char out[40])
{
    int64_t secs = ns / 1000000000LL, rem = ns % 1000000000LL;
    if (rem < 0) {
        rem += 1000000000LL;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 40, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem / 1000000));
}

int64_t seg_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int seg_event_time(const seg_jval *v, size_t n, int64_t *ns)
{
    static const char *const keys[4] = {"@timestamp", "timestamp", "time", "ts"};
    for (int k = 0; k < 4; k++) {
        size_t kl = strlen(keys[k]);
        for (size_t i = 0; i < n; i++) {
            if (!v[i].top || v[i].path_len != kl || memcmp(v[i].path, keys[k], kl))
                continue;
            int ok = -1;
            if (v[i].type == SEG_JV_STRING)
                ok = seg_time_parse_rfc3339(v[i].str, v[i].str_len, ns);
            else if (v[i].type == SEG_JV_INT)
                ok = seg_time_from_int(v[i].i, ns);
            else if (v[i].type == SEG_JV_REAL)
                ok = seg_time_from_number(v[i].d, ns);
            if (ok == 0)
                return 1;
            break; /* present but does not parse: try the next name */
        }
    }
    return 0;
}

int seg_event_id(const seg_jval *v, size_t n, const char **id, size_t *len)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].top && v[i].type == SEG_JV_STRING && v[i].path_len == 3 &&
            !memcmp(v[i].path, "_id", 3)) {
            *id = v[i].str;
            *len = v[i].str_len;
            return 1;
        }
    return 0;
}

size_t seg_num_canon_int(int64_t v, char out[32]) { return (size_t)snprintf(out, 32, "%lld", (long long)v); }

size_t seg_num_canon_real(double v, char out[40])
{
    if (v == 0)
        return (size_t)snprintf(out, 40, "0");
    if (v == floor(v) && fabs(v) < 9.2e18)
        return seg_num_canon_int((int64_t)v, out);
    return (size_t)snprintf(out, 40, "%.17g", v);
}
