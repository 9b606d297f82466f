/*
 * testdir.h -- index directories in the C tests: verify every segment a
 * manifest lists, remove a temporary tree, read a whole file.
 */
#ifndef LOGDEX_TEST_TESTDIR_H
#define LOGDEX_TEST_TESTDIR_H

#include "segment/seg.h"

#include <stdio.h>
#include <stdlib.h>

/* Problems found in the segments listed by dir/manifest (1 without one). */
static inline long test_verify_index(const char *dir)
{
    seg_manifest m;
    int exists;
    seg_err e = {0};
    if (seg_manifest_load(dir, &m, &exists, &e) || !exists)
        return 1;
    long problems = 0;
    for (size_t i = 0; i < m.n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, m.e[i].name);
        problems += seg_reader_verify(p, NULL, NULL);
    }
    seg_manifest_free(&m);
    return problems;
}

static inline int test_rm_rf(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* The whole file at p (malloc'd, *n bytes), or NULL. */
static inline uint8_t *test_slurp(const char *p, size_t *n)
{
    *n = 0;
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    uint8_t *b = NULL;
    long l = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (l >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc(l ? (size_t)l : 1)) &&
        fread(b, 1, (size_t)l, f) != (size_t)l) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        *n = (size_t)l;
    return b;
}

#endif
