/*
 * testdir.h -- index directories in the C tests: verify every segment a
 * manifest lists, and remove a temporary tree.
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
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

#endif
