/*
 * t_json.c -- the event scanner against jansson: on generated documents and
 * on their mutations, both must accept exactly the same lines, and the
 * scanner's flattened values must equal a flattening of jansson's tree.
 */
#include "segment/seg.h"
#include "tests/tap.h"

#include <jansson.h>
#include <math.h>

static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* ---- flattening jansson's tree with the scanner's rules ---- */
typedef struct fv {
    char path[1100];
    size_t plen;
    int type, top;
    char *str;
    size_t slen;
    long long i;
    double d;
} fv;

static fv vals[20000];
static size_t nvals;

/* Paths: a top-level key is the path; below it, parent "." key. */
static void flat(json_t *v, const char *path, size_t plen, int top)
{
    if (nvals >= 20000)
        return;
    fv *f = &vals[nvals];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            char p[1100];
            size_t kl = strlen(k), n = (size_t)snprintf(p, sizeof p, "%.*s.", (int)plen, path);
            memcpy(p + n, k, kl);
            flat(c, p, n + kl, 0);
        }
        return;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) flat(c, path, plen, 0);
        return;
    }
    case JSON_NULL:
        return;
    default:
        break;
    }
    memcpy(f->path, path, plen);
    f->plen = plen;
    f->top = top;
    switch (json_typeof(v)) {
    case JSON_STRING:
        f->type = SEG_JV_STRING;
        f->str = (char *)json_string_value(v);
        f->slen = json_string_length(v);
        break;
    case JSON_INTEGER: f->type = SEG_JV_INT; f->i = json_integer_value(v); break;
    case JSON_REAL: f->type = SEG_JV_REAL; f->d = json_real_value(v); break;
    case JSON_TRUE: f->type = SEG_JV_TRUE; break;
    default: f->type = SEG_JV_FALSE; break;
    }
    nvals++;
}

static void flat_top(json_t *obj)
{
    nvals = 0;
    const char *k;
    json_t *c;
    json_object_foreach(obj, k, c)
    {
        size_t kl = strlen(k);
        if (json_is_object(c)) {
            flat(c, k, kl, 0);
        } else {
            flat(c, k, kl, 1);
        }
    }
}

/* ---- generating documents ---- */
static void gen_string(seg_buf *b)
{
    static const char *const parts[] = {"abc", "Hello", " ", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9",
                                         "\\ud83d\\ude00", "é", "東京", "😀", "\\t", "x", "\\u0041", "0", "\\b"};
    seg_buf_put_u8(b, '"');
    int n = (int)rnd(5);
    for (int i = 0; i < n; i++) {
        const char *p = parts[rnd(sizeof parts / sizeof *parts)];
        seg_buf_put(b, p, strlen(p));
    }
    seg_buf_put_u8(b, '"');
}

static void gen_number(seg_buf *b)
{
    static const char *const nums[] = {"0", "-0", "1", "-1", "42", "9223372036854775807", "-9223372036854775808",
                                        "9223372036854775808", "1.5", "-2.25e3", "1e400", "1E-400", "0.1",
                                        "123456789012345678901234567890", "3.0", "6.02e23", "-0.0", "1e5"};
    const char *s = nums[rnd(sizeof nums / sizeof *nums)];
    seg_buf_put(b, s, strlen(s));
}

static void ws(seg_buf *b)
{
    static const char *const w[] = {"", "", "", " ", "\t", "\r\n ", "  "};
    const char *s = w[rnd(7)];
    seg_buf_put(b, s, strlen(s));
}

static void gen_value(seg_buf *b, int depth);

static void gen_object(seg_buf *b, int depth)
{
    static const char *const keys[] = {"a", "b", "msg", "x.y", "", "é", "status", "time", "_id", "a"};
    seg_buf_put_u8(b, '{');
    int n = (int)rnd(5);
    for (int i = 0; i < n; i++) {
        if (i)
            seg_buf_put_u8(b, ',');
        ws(b);
        seg_buf_put_u8(b, '"');
        const char *k = keys[rnd(sizeof keys / sizeof *keys)];
        seg_buf_put(b, k, strlen(k));
        seg_buf_put_u8(b, '"');
        ws(b);
        seg_buf_put_u8(b, ':');
        ws(b);
        gen_value(b, depth + 1);
        ws(b);
    }
    seg_buf_put_u8(b, '}');
}

static void gen_value(seg_buf *b, int depth)
{
    unsigned k = rnd(depth > 4 ? 6 : 9);
    switch (k) {
    case 0: case 1: gen_string(b); break;
    case 2: case 3: gen_number(b); break;
    case 4: seg_buf_put(b, "true", 4); break;
    case 5:
        if (rnd(2))
            seg_buf_put(b, "false", 5);
        else
            seg_buf_put(b, "null", 4);
        break;
    case 6: case 7: gen_object(b, depth); break;
    default: {
        seg_buf_put_u8(b, '[');
        int n = (int)rnd(4);
        for (int i = 0; i < n; i++) {
            if (i)
                seg_buf_put_u8(b, ',');
            ws(b);
            gen_value(b, depth + 1);
        }
        seg_buf_put_u8(b, ']');
    }
    }
}

static void mutate(seg_buf *b)
{
    static const char inter[] = "{}[],:\"\\0123456789eE.+- \tnu\x01\x7f";
    int m = 1 + (int)rnd(3);
    for (int k = 0; k < m && b->n; k++) {
        size_t at = rnd((unsigned)b->n);
        switch (rnd(5)) {
        case 0: b->p[at] = (uint8_t)inter[rnd(sizeof inter - 1)]; break;
        case 1: b->p[at] = (uint8_t)(0x80 + rnd(128)); break;
        case 2: memmove(b->p + at, b->p + at + 1, b->n - at - 1); b->n--; break;
        case 3: b->n = at; break;
        default:
            seg_buf_put_u8(b, 0);
            memmove(b->p + at + 1, b->p + at, b->n - at - 1);
            b->p[at] = (uint8_t)inter[rnd(sizeof inter - 1)];
        }
    }
}

/* for diagnostics: the document with control bytes escaped */
static const char *esc(const uint8_t *p, size_t n)
{
    static char out[4096];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof out; i++)
        o += (size_t)(p[i] < 0x20 ? snprintf(out + o, 5, "\\x%02x", p[i]) : snprintf(out + o, 2, "%c", p[i]));
    out[o] = 0;
    return out;
}

static int same_values(const seg_jval *v, size_t n, char *why, size_t whyn)
{
    if (n != nvals) {
        snprintf(why, whyn, "%zu values vs jansson's %zu", n, nvals);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const fv *f = &vals[i];
        int eq = v[i].path_len == f->plen && !memcmp(v[i].path, f->path, f->plen) && v[i].type == f->type &&
                 v[i].top == f->top;
        if (eq && f->type == SEG_JV_STRING)
            eq = v[i].str_len == f->slen && !memcmp(v[i].str, f->str, f->slen);
        if (eq && f->type == SEG_JV_INT)
            eq = v[i].i == f->i;
        if (eq && f->type == SEG_JV_REAL)
            eq = v[i].d == f->d && signbit(v[i].d) == signbit(f->d);
        if (!eq) {
            snprintf(why, whyn, "value %zu differs (path '%.*s' vs '%.*s', type %d vs %d)", i, (int)v[i].path_len,
                     v[i].path, (int)f->plen, f->path, v[i].type, f->type);
            return 0;
        }
    }
    return 1;
}

static int check_one(seg_json *js, const uint8_t *s, size_t n, long *acc, char *why, size_t whyn)
{
    json_error_t je;
    if (memchr(s, 0, n)) {
        /* jansson skips a NUL byte that follows a number or literal (its
         * lexer's unget treats NUL in its lookahead as "read more"); the
         * scanner refuses every NUL byte, which no valid JSON text has. */
        const seg_jval *v;
        size_t nv;
        seg_err e = {0};
        if (seg_json_parse(js, (const char *)s, n, &v, &nv, &e) == SEG_OK) {
            snprintf(why, whyn, "scanner accepts a NUL byte");
            return 0;
        }
        return 1;
    }
    json_t *j = json_loadb((const char *)s, n, 0, &je);
    int jans_ok = j && json_is_object(j);
    const seg_jval *v;
    size_t nv;
    seg_err e = {0};
    int ours_ok = seg_json_parse(js, (const char *)s, n, &v, &nv, &e) == SEG_OK;
    int good = 1;
    if (jans_ok != ours_ok) {
        snprintf(why, whyn, "jansson %s, scanner %s (%s)", jans_ok ? "accepts" : "refuses",
                 ours_ok ? "accepts" : "refuses", ours_ok ? "" : e.msg);
        good = 0;
    } else if (jans_ok) {
        flat_top(j);
        good = same_values(v, nv, why, whyn);
        (*acc)++;
    }
    json_decref(j);
    return good;
}

int main(void)
{
    seg_json *js = seg_json_new();
    char why[1024];
    long accepted = 0;

    /* hand-picked cases */
    static const char *const cases[] = {
        "{}", " {\"a\":1} ", "{\"a\":1}x", "[1]", "1", "\"s\"", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":-}", "{\"a\":1e}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\t\"}", "{\"a\":\"\xc3\x28\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":[1,]}",
        "{\"a\":tru}", "{\"a\":nul}", "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1},\"c\":2,\"a\":3}",
        "{\"x\":{\"k\":1,\"j\":2,\"k\":[3,4]}}", "{\"a\":9223372036854775807}",
        "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775809}", "{\"a\":1e400}", "{\"a\":-1e400}",
        "{\"a\":1e-400}", "{\"\":{\"\":1}}", "{\"a\":\"\\x\"}", "{\"a\":\"abc", "{\"a\"", "\xef\xbb\xbf{}",
        "{\"a\":[[[]]],\"b\":{}}", "{\"a\":null}", "{\"a\":\"\\uD83D\\uDE00\"}", "{\"a\":1}\n", "{\"a\":1}\x00",
    };
    int all = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i]);
        if (i == sizeof cases / sizeof *cases - 1)
            n++; /* include the NUL byte */
        if (!check_one(js, (const uint8_t *)cases[i], n, &accepted, why, sizeof why)) {
            all = 0;
            tap_diag("case %zu '%s': %s", i, cases[i], why);
        }
    }
    ok(all, "hand-picked cases agree with jansson");

    /* keys with escapes (decoded into the scanner's arena) in an object
     * large enough to take the duplicate-checking path while the arena
     * grows: the key was copied from the arena into itself (a use after
     * free under ASan, found by fuzz_json) */
    {
        seg_buf b = {0};
        seg_buf_put_u8(&b, '{');
        for (int i = 0; i < 200; i++) {
            char k[320];
            int n = snprintf(k, sizeof k, "%s\"key\\f%03d", i ? "," : "", i);
            seg_buf_put(&b, k, (size_t)n);
            for (int q = 0; q < 250; q++)
                seg_buf_put_u8(&b, (uint8_t)('a' + (i + q) % 26));
            seg_buf_put(&b, "\":1", 3);
        }
        seg_buf_put_u8(&b, '}');
        why[0] = 0;
        ok(check_one(js, b.p, b.n, &accepted, why, sizeof why), "200 long escaped keys agree with jansson %s", why);
        seg_buf_free(&b);
    }

    /* nesting depth: 2048 levels accepted, 2049 refused, like jansson
     * (arrays, so that the field path stays short) */
    for (int depth = 2047; depth <= 2050; depth++) {
        seg_buf b = {0};
        seg_buf_put(&b, "{\"a\":", 5);
        for (int i = 0; i < depth - 1; i++)
            seg_buf_put_u8(&b, '[');
        for (int i = 0; i < depth - 1; i++)
            seg_buf_put_u8(&b, ']');
        seg_buf_put_u8(&b, '}');
        ok(check_one(js, b.p, b.n, &accepted, why, sizeof why), "depth %d agrees with jansson %s", depth, why);
        seg_buf_free(&b);
    }

    /* strings scanned 16 bytes at a time: one special byte (or sequence)
     * at every position of plain runs of 0..40 bytes, with the string at
     * several offsets in the line and ending at the line's end or not */
    static const char *const specials[] = {"\"", "\\n", "\\u00e9", "\x01", "\x1f", "\x7f", "\x80", "\xc3\xa9",
                                           "\xe6\x9d\xb1", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\\", " ", "\t"};
    long scan_bad = 0, scanned = 0;
    for (size_t len = 0; len <= 40; len++)
        for (size_t pos = 0; pos <= len; pos++)
            for (size_t k = 0; k < sizeof specials / sizeof *specials; k++)
                for (int pad = 0; pad < 3; pad++) {
                    seg_buf b = {0};
                    seg_buf_put(&b, "{\"k\":", 5);
                    for (int q = 0; q < pad * 7; q++)
                        seg_buf_put_u8(&b, ' ');
                    seg_buf_put_u8(&b, '"');
                    for (size_t q = 0; q <= len; q++) {
                        if (q == pos)
                            seg_buf_put(&b, specials[k], strlen(specials[k]));
                        if (q < len)
                            seg_buf_put_u8(&b, (uint8_t)('a' + q % 26));
                    }
                    seg_buf_put(&b, pad == 2 ? "\"}" : "\",\"z\":1}", pad == 2 ? 2 : 8);
                    scanned++;
                    if (!check_one(js, b.p, b.n, &accepted, why, sizeof why) && scan_bad++ < 5)
                        tap_diag("scan case '%s': %s", esc(b.p, b.n), why);
                    seg_buf_free(&b);
                }
    ok(scan_bad == 0, "%ld strings with a special byte at every offset agree with jansson (%ld differ)", scanned,
       scan_bad);

    long gen_bad = 0, mut_bad = 0, mutated = 0;
    for (int i = 0; i < 30000; i++) {
        seg_buf b = {0};
        ws(&b);
        gen_object(&b, 0);
        ws(&b);
        if (!check_one(js, b.p, b.n, &accepted, why, sizeof why)) {
            if (gen_bad++ < 5)
                tap_diag("generated '%s': %s", esc(b.p, b.n), why);
        }
        for (int m = 0; m < 2; m++) {
            seg_buf c = {0};
            seg_buf_put(&c, b.p, b.n);
            mutate(&c);
            mutated++;
            if (!check_one(js, c.p, c.n, &accepted, why, sizeof why)) {
                if (mut_bad++ < 5)
                    tap_diag("mutated '%s': %s", esc(c.p, c.n), why);
            }
            seg_buf_free(&c);
        }
        seg_buf_free(&b);
    }
    is_int(gen_bad, 0, "30000 generated documents: same acceptance and values as jansson");
    is_int(mut_bad, 0, "60000 mutated documents: same acceptance and values as jansson");
    tap_diag("%ld documents accepted by both and compared value by value", accepted);

    /* limits on top of validity */
    seg_buf b = {0};
    seg_buf_put(&b, "{\"", 2);
    for (int i = 0; i < 1100; i++)
        seg_buf_put_u8(&b, 'k');
    seg_buf_put(&b, "\":1}", 4);
    const seg_jval *v;
    size_t nv;
    seg_err e = {0};
    ok(seg_json_parse(js, (const char *)b.p, b.n, &v, &nv, &e) == SEG_ELIMIT, "a field path over %d bytes is refused with a reason", SEG_FIELD_MAX);
    seg_buf_free(&b);

    /* event rules */
    const char *ev = "{\"time\":\"bad\",\"ts\":1704164645,\"_id\":\"abc\",\"n\":{\"_id\":\"inner\"}}";
    seg_err e2 = {0};
    ok(seg_json_parse(js, ev, strlen(ev), &v, &nv, &e2) == SEG_OK, "event parses");
    int64_t t;
    ok(seg_event_time(v, nv, &t) == 1 && t == 1704164645000000000LL, "an unparsable time field falls through to ts");
    const char *id;
    size_t il;
    ok(seg_event_id(v, nv, &id, &il) && il == 3 && !memcmp(id, "abc", 3), "the top-level _id is the id");
    seg_json_free(js);
    return tap_done();
}
