/*
 * api_json.c -- the small JSON writers shared by api/ (answers are built
 * by appending to a seg_buf; event sources are copied in as sent).
 */
#include "api/api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void api_put_s(seg_buf *b, const char *s) { seg_buf_put(b, s, strlen(s)); }

void api_put_jstr(seg_buf *b, const char *s, size_t n)
{
    json_t *j = json_stringn_nocheck(s, n);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    api_put_s(b, d ? d : "\"\"");
    free(d);
    json_decref(j);
}
