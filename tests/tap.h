/*
 * tap.h -- minimal TAP producer for the C tests (run by automake's TAP
 * driver).  Each test program prints "1..N" at the end (done_testing).
 */
#ifndef LOGDEX_TAP_H
#define LOGDEX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

static int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

static void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static int tap_done(void) __attribute__((unused));
static int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#define ok(c, ...) tap_ok(!!(c), __VA_ARGS__)
#define is_int(a, b, name)                                                                      \
    do {                                                                                        \
        long long _a = (long long)(a), _b = (long long)(b);                                     \
        if (!tap_ok(_a == _b, "%s", name))                                                      \
            tap_diag("got %lld, expected %lld", _a, _b);                                        \
    } while (0)
#define is_str(a, b, name)                                                                      \
    do {                                                                                        \
        const char *_a = (a), *_b = (b);                                                        \
        if (!tap_ok(_a && _b && !strcmp(_a, _b), "%s", name))                                   \
            tap_diag("got '%s', expected '%s'", _a ? _a : "(null)", _b ? _b : "(null)");        \
    } while (0)

#endif
