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
 *
 * Event times in text (seg_time_parse_text) also take the forms logs
 * carry: ISO 8601 with a space or 'T', a '.' or ',' fraction and an
 * optional zone (none: UTC; +hh:mm, +hhmm or +hh), as in
 * "2015-10-18 18:01:47,978"; Apache/nginx "10/Oct/2000:13:55:36 -0700"
 * (brackets optional); syslog (RFC 3164) "Jun 14 15:16:01", which has no
 * year: the year of `now`, or the one before when that would put the time
 * more than a day after `now` (a December line read in January).
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

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int month_of(const char *s, size_t n, size_t at)
{
    if (at + 3 > n)
        return 0;
    for (int m = 0; m < 12; m++)
        if ((s[at] | 0x20) == (months[m][0] | 0x20) && (s[at + 1] | 0x20) == months[m][1] &&
            (s[at + 2] | 0x20) == months[m][2])
            return m + 1;
    return 0;
}

static int date_ok(int Y, int M, int D, int h, int mi, int se)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || se > 60)
        return 0;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    return !(M == 2 && D == 29 && !leap);
}

/* ns of a civil time minus off seconds, or -1 when out of range */
static int civil_ns(int Y, int M, int D, int h, int mi, int se, int64_t frac, int64_t off, int64_t *ns)
{
    if (se == 60) {
        se = 59;
        frac = 999999999;
    }
    int64_t secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + se - off;
    if (secs < -9223372036LL || secs > 9223372035LL)
        return -1;
    *ns = secs * 1000000000LL + frac;
    return 0;
}

/* A fraction at *i ('.' or ',' then digits), into ns; 0 when none. */
static int fraction(const char *s, size_t n, size_t *i, int64_t *frac)
{
    *frac = 0;
    if (*i >= n || (s[*i] != '.' && s[*i] != ','))
        return 0;
    size_t j = *i + 1, st = j;
    int k = 0;
    while (j < n && s[j] >= '0' && s[j] <= '9') {
        if (k < 9) {
            *frac = *frac * 10 + (s[j] - '0');
            k++;
        }
        j++;
    }
    if (j == st)
        return -1;
    while (k++ < 9)
        *frac *= 10;
    *i = j;
    return 0;
}

/* A zone at *i: Z, +hh:mm, +hhmm, +hh (sign - too); none is UTC. */
static int zone(const char *s, size_t n, size_t *i, int64_t *off)
{
    *off = 0;
    size_t j = *i;
    if (j < n && j > 0 && s[j] == ' ' && j + 1 < n && (s[j + 1] == '+' || s[j + 1] == '-'))
        j++; /* "... 13:55:36 -0700" */
    if (j < n && (s[j] == 'Z' || s[j] == 'z')) {
        *i = j + 1;
        return 0;
    }
    if (j >= n || (s[j] != '+' && s[j] != '-'))
        return 0;
    int oh, om = 0;
    size_t k = j + 1;
    if (digits(s, n, k, 2, &oh))
        return 0; /* not a zone: the text goes on */
    k += 2;
    if (k < n && s[k] == ':') {
        if (digits(s, n, k + 1, 2, &om))
            return -1;
        k += 3;
    } else if (!digits(s, n, k, 2, &om)) {
        k += 2;
    }
    if (oh > 23 || om > 59)
        return -1;
    *off = (int64_t)(oh * 60 + om) * 60 * (s[j] == '-' ? -1 : 1);
    *i = k;
    return 0;
}

static int iso_text(const char *s, size_t n, int64_t *ns, size_t *used)
{
    int Y, M, D, h, mi, se;
    if (n < 19 || digits(s, n, 0, 4, &Y) || s[4] != '-' || digits(s, n, 5, 2, &M) || s[7] != '-' ||
        digits(s, n, 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s, n, 11, 2, &h) ||
        s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' || digits(s, n, 17, 2, &se) ||
        !date_ok(Y, M, D, h, mi, se))
        return -1;
    size_t i = 19;
    int64_t frac, off;
    if (fraction(s, n, &i, &frac) || zone(s, n, &i, &off))
        return -1;
    *used = i;
    return civil_ns(Y, M, D, h, mi, se, frac, off, ns);
}

/* 10/Oct/2000:13:55:36 -0700, in brackets or not */
static int apache_text(const char *s, size_t n, int64_t *ns, size_t *used)
{
    size_t b = n && s[0] == '[';
    int Y, M, D, h, mi, se;
    if (n < b + 20 || digits(s, n, b, 2, &D) || s[b + 2] != '/' || !(M = month_of(s, n, b + 3)) ||
        s[b + 6] != '/' || digits(s, n, b + 7, 4, &Y) || s[b + 11] != ':' || digits(s, n, b + 12, 2, &h) ||
        s[b + 14] != ':' || digits(s, n, b + 15, 2, &mi) || s[b + 17] != ':' || digits(s, n, b + 18, 2, &se) ||
        !date_ok(Y, M, D, h, mi, se))
        return -1;
    size_t i = b + 20;
    int64_t frac, off;
    if (fraction(s, n, &i, &frac) || zone(s, n, &i, &off))
        return -1;
    if (b) {
        if (i >= n || s[i] != ']')
            return -1;
        i++;
    }
    *used = i;
    return civil_ns(Y, M, D, h, mi, se, frac, off, ns);
}

/* Jun 14 15:16:01 (or "Jun  4 ..."): the year by the rule at the top */
static int syslog_text(const char *s, size_t n, int64_t now, int64_t *ns, size_t *used)
{
    int M = month_of(s, n, 0), D, h, mi, se;
    if (!M || n < 15 || s[3] != ' ')
        return -1;
    size_t i = 4;
    if (s[4] == ' ') {
        if (digits(s, n, 5, 1, &D))
            return -1;
        i = 6;
    } else if (digits(s, n, 4, 2, &D)) {
        return -1;
    } else {
        i = 6;
    }
    if (i + 9 > n || s[i] != ' ' || digits(s, n, i + 1, 2, &h) || s[i + 3] != ':' || digits(s, n, i + 4, 2, &mi) ||
        s[i + 6] != ':' || digits(s, n, i + 7, 2, &se))
        return -1;
    i += 9;
    int64_t frac;
    if (fraction(s, n, &i, &frac))
        return -1;
    char b[40];
    seg_time_format(now, b);
    int Y = (b[0] - '0') * 1000 + (b[1] - '0') * 100 + (b[2] - '0') * 10 + (b[3] - '0');
    for (int k = 0; k < 2; k++, Y--) {
        if (!date_ok(Y, M, D, h, mi, se) || civil_ns(Y, M, D, h, mi, se, frac, 0, ns))
            continue; /* Feb 29 of a year without one: the year before */
        if (*ns <= now + 86400LL * 1000000000LL) {
            *used = i;
            return 0;
        }
    }
    return -1;
}

int seg_time_parse_text(const char *s, size_t n, int64_t now, int64_t *ns, size_t *used)
{
    size_t u = 0;
    int r = -1;
    if (n && s[0] >= '0' && s[0] <= '9')
        r = n > 4 && s[4] == '-' ? iso_text(s, n, ns, &u) : apache_text(s, n, ns, &u);
    else if (n && s[0] == '[')
        r = apache_text(s, n, ns, &u);
    else
        r = syslog_text(s, n, now, ns, &u);
    if (r)
        return -1;
    if (used) {
        /* a prefix: it must end at a word's end */
        if (u < n && ((s[u] >= '0' && s[u] <= '9') || ((s[u] | 0x20) >= 'a' && (s[u] | 0x20) <= 'z')))
            return -1;
        *used = u;
        return 0;
    }
    return u == n ? 0 : -1;
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

int seg_event_time_ex(const seg_jval *v, size_t n, const char *const *fields, size_t nfields, int64_t now,
                      int64_t *ns)
{
    static const char *const keys[4] = {"@timestamp", "timestamp", "time", "ts"};
    for (size_t k = 0; k < nfields + 4; k++) {
        const char *key = k < nfields ? fields[k] : keys[k - nfields];
        size_t kl = strlen(key);
        for (size_t i = 0; i < n; i++) {
            /* a named field may be nested ("event.created"); built-in names
             * are top-level */
            if ((k >= nfields && !v[i].top) || v[i].path_len != kl || memcmp(v[i].path, key, kl))
                continue;
            int ok = -1;
            if (v[i].type == SEG_JV_STRING)
                ok = seg_time_parse_text(v[i].str, v[i].str_len, now, ns, NULL);
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

int seg_event_time(const seg_jval *v, size_t n, int64_t *ns)
{
    return seg_event_time_ex(v, n, NULL, 0, seg_time_now(), ns);
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
