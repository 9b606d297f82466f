/* fuzz_json.c -- the event scanner against jansson (differential): both
 * must accept the same inputs (a NUL byte is refused by the scanner, see
 * segment/seg_json.c), and the scanner must never crash. */
#include "segment/seg.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static seg_json *js;
    if (!js)
        js = seg_json_new();
    const seg_jval *v;
    size_t nv;
    seg_err e = {0};
    int ours = seg_json_parse(js, (const char *)d, n, &v, &nv, &e) == SEG_OK;
    if (ours) {
        int64_t t;
        const char *id;
        size_t il;
        seg_event_time(v, nv, &t);
        seg_event_id(v, nv, &id, &il);
    }
    if (e.code == SEG_ELIMIT)
        return 0; /* our own limits (field path length) */
    json_error_t je;
    json_t *j = memchr(d, 0, n) ? NULL : json_loadb((const char *)d, n, 0, &je);
    int theirs = j && json_is_object(j);
    json_decref(j);
    if (!memchr(d, 0, n) && ours != theirs)
        abort();
    return 0;
}
