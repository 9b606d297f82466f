/* t_util.c -- byte helpers, errors, time parsing and the manifest. */
#include "segment/seg.h"
#include "tests/tap.h"

#include <math.h>
#include <unistd.h>

static void test_varint(void)
{
    static const uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    seg_buf b = {0};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        seg_buf_put_varint(&b, vals[i]);
    seg_cur c = {b.p, b.p + b.n, 0};
    int good = 1;
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        good &= seg_get_varint(&c) == vals[i];
    ok(good && !c.bad && c.p == c.end, "varints round-trip");
    seg_get_varint(&c);
    ok(c.bad, "reading past the end sets bad, touches nothing");
    uint8_t over[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0};
    seg_cur o = {over, over + 11, 0};
    seg_get_varint(&o);
    ok(o.bad, "an over-long varint is refused");
    int zz = 1;
    for (int64_t v = -1000; v <= 1000; v++)
        zz &= seg_unzigzag(seg_zigzag(v)) == v;
    zz &= seg_unzigzag(seg_zigzag(INT64_MIN)) == INT64_MIN && seg_unzigzag(seg_zigzag(INT64_MAX)) == INT64_MAX;
    ok(zz, "zigzag round-trips");
    seg_buf_free(&b);
}

static void test_packed(void)
{
    unsigned long long st = 7;
    int good = 1;
    for (int round = 0; round < 2000 && good; round++) {
        uint32_t v[300], w[300];
        size_t n = (size_t)(st % 300);
        unsigned bits = (unsigned)((st >> 9) % 33);
        for (size_t i = 0; i < n; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            v[i] = bits == 32 ? (uint32_t)(st >> 32) : (uint32_t)(st >> 32) & ((1u << bits) - 1);
        }
        seg_buf b = {0};
        seg_buf_put_packed(&b, v, n);
        seg_cur c = {b.p, b.p + b.n, 0};
        good = seg_get_packed(&c, w, n) == 0 && c.p == c.end && (n == 0 || !memcmp(v, w, n * 4));
        seg_buf_free(&b);
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    ok(good, "bit packing round-trips at every width and length");
    uint8_t bad[3] = {33, 0, 0};
    seg_cur c = {bad, bad + 3, 0};
    uint32_t out[4];
    ok(seg_get_packed(&c, out, 4) < 0, "a width over 32 is refused");
    uint8_t shortb[3] = {7, 0xff, 0xff};
    seg_cur c2 = {shortb, shortb + 3, 0};
    ok(seg_get_packed(&c2, out, 4) < 0, "packed values past the end are refused");
}

/* packing with exceptions: round trips for runs with outliers, picks fewer
 * bytes than plain packing for them, refuses hostile bytes */
static void test_xpacked(void)
{
    unsigned long long st = 11;
    int good = 1, smaller = 1;
    for (int round = 0; round < 3000 && good; round++) {
        uint32_t v[400], w[400];
        size_t n = (size_t)(st % 400);
        unsigned bits = (unsigned)((st >> 9) % 33), outl = (unsigned)((st >> 20) % 5);
        for (size_t i = 0; i < n; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t x = (uint32_t)(st >> 32);
            v[i] = (st >> 24) % 16 < outl ? x : bits == 32 ? x : x & ((1u << bits) - 1);
        }
        seg_buf b = {0}, pb = {0};
        seg_buf_put_xpacked(&b, v, n);
        seg_buf_put_packed(&pb, v, n);
        seg_cur c = {b.p, b.p + b.n, 0};
        memset(w, 0xa5, sizeof w);
        good = seg_get_xpacked(&c, w, n) == 0 && c.p == c.end && (n == 0 || !memcmp(v, w, n * 4));
        if (b.n > pb.n)
            smaller = 0;
        seg_buf_free(&b);
        seg_buf_free(&pb);
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    ok(good, "packing with exceptions round-trips (widths 0..32, 0..15 outliers in 16)");
    ok(smaller, "and never takes more bytes than plain packing");
    /* 127 zeros and one 1000: width 0 and one exception */
    uint32_t v[128] = {0}, w[128];
    v[77] = 1000;
    seg_buf b = {0};
    seg_buf_put_xpacked(&b, v, 128);
    is_int((long)b.n, 5, "a run with one jump takes 5 bytes (plain: 161)");
    seg_cur c = {b.p, b.p + b.n, 0};
    ok(seg_get_xpacked(&c, w, 128) == 0 && w[77] == 1000 && w[76] == 0, "and decodes");
    seg_buf_free(&b);
    uint32_t out[4];
    static const uint8_t bad[][8] = {
        {0x40},                   /* reserved bit */
        {33},                     /* width over 32 */
        {0xa0, 0, 0, 0, 0, 0, 0, 0}, /* exceptions with width 32 */
        {0x80, 0},                /* zero exceptions */
        {0x80, 5, 0, 1},          /* more exceptions than values */
        {0x80, 1, 4, 1},          /* index past the end */
        {0x80, 1, 0, 0},          /* an exception of 0 */
        {0x9f, 0, 0, 0, 0, 1, 0, 2}, /* high bits past 32 */
        {0x80, 2, 0, 1},          /* cut short */
    };
    static const size_t badn[] = {1, 1, 8, 2, 4, 4, 4, 8, 4};
    int refused = 0;
    for (size_t k = 0; k < sizeof badn / sizeof *badn; k++) {
        seg_cur bc = {bad[k], bad[k] + badn[k], 0};
        refused += seg_get_xpacked(&bc, out, k == 7 ? 1 : 4) < 0;
    }
    is_int(refused, (long)(sizeof badn / sizeof *badn), "hostile headers, counts, indexes and values are refused");
}

static void test_err(void)
{
    seg_err e = {0};
    seg_err_set(&e, SEG_ECORRUPT, "a.seg", "first %d", 1);
    seg_err_set(&e, SEG_EIO, "b.seg", "second");
    is_int(e.code, SEG_ECORRUPT, "the first error wins");
    is_str(e.msg, "first 1", "its message is kept");
    char b[600];
    is_str(seg_err_str(&e, b, sizeof b), "a.seg: first 1", "error string names the file");
    ok(strcmp(seg_strerror(SEG_ECORRUPT), "corrupt file") == 0 && seg_strerror(999), "strerror");
}

static void test_time(void)
{
    int64_t t;
    ok(seg_time_parse_rfc3339("2024-01-02T03:04:05.678Z", 24, &t) == 0 && t == 1704164645678000000LL, "RFC 3339 with ms");
    ok(seg_time_parse_rfc3339("2024-01-02T05:04:05+02:00", 25, &t) == 0 && t == 1704164645000000000LL, "offset");
    ok(seg_time_parse_rfc3339("2024-01-02t03:04:05.123456789z", 30, &t) == 0 && t == 1704164645123456789LL, "ns fraction, lower case");
    ok(seg_time_parse_rfc3339("1969-12-31T23:59:59Z", 20, &t) == 0 && t == -1000000000LL, "before the epoch");
    ok(seg_time_parse_rfc3339("2023-02-29T00:00:00Z", 20, &t) != 0, "no Feb 29 in 2023");
    ok(seg_time_parse_rfc3339("2024-01-02T03:04:05", 19, &t) != 0, "an offset is required");
    ok(seg_time_parse_rfc3339("2024-01-02T03:04:05.Z", 21, &t) != 0, "empty fraction refused");
    /* the forms logs carry (seg_time_parse_text); now = 2024-01-02T03:04:05Z */
    const int64_t now = 1704164645000000000LL;
#define TXT(str, want, what) ok(seg_time_parse_text(str, strlen(str), now, &t, NULL) == 0 && t == (want), what)
#define NOTXT(str, what) ok(seg_time_parse_text(str, strlen(str), now, &t, NULL) != 0, what)
    TXT("2024-01-02T03:04:05.678Z", 1704164645678000000LL, "text: RFC 3339");
    TXT("2015-10-18 18:01:47,978", 1445191307978000000LL, "text: space, comma fraction, no zone is UTC");
    TXT("2015-10-18T18:01:47+0200", 1445184107000000000LL, "text: +hhmm");
    TXT("2015-10-18 18:01:47 -07", 1445216507000000000LL, "text: a spaced -hh");
    TXT("10/Oct/2000:13:55:36 -0700", 971211336000000000LL, "text: Apache");
    TXT("[10/Oct/2000:13:55:36 -0700]", 971211336000000000LL, "text: Apache in brackets");
    TXT("Jan  2 03:00:00", 1704164400000000000LL, "text: syslog, padded day, this year");
    TXT("Dec 31 23:59:59", 1704067199000000000LL, "text: syslog in December read in January: last year");
    TXT("Jan  3 03:04:05", 1704251045000000000LL, "text: syslog up to a day ahead: this year");
    TXT("Jan  4 03:04:06", 1672801446000000000LL, "text: syslog more than a day ahead: last year");
    NOTXT("Feb 30 00:00:00", "text: no Feb 30");
    NOTXT("2015-10-18", "text: a date alone is not an event time");
    NOTXT("10/Oct/2000:13:55:36 -0700x", "text: trailing bytes refused (whole string)");
    NOTXT("Jux 14 15:16:01", "text: unknown month");
    size_t used = 0;
    ok(seg_time_parse_text("Jun 14 15:16:01 host app: hi", 28, now, &t, &used) == 0 && used == 15,
       "text: a leading syslog time and its length");
    ok(seg_time_parse_text("2015-10-18 18:01:47,978 INFO x", 30, now, &t, &used) == 0 && used == 23,
       "text: a leading ISO time and its length");
    ok(seg_time_parse_text("2015-10-18 18:01:47abc", 22, now, &t, &used) != 0, "text: a prefix must end a word");
#undef TXT
#undef NOTXT
    ok(seg_time_from_int(1704164645, &t) == 0 && t == 1704164645000000000LL, "epoch seconds");
    ok(seg_time_from_int(1704164645678LL, &t) == 0 && t == 1704164645678000000LL, "epoch ms");
    ok(seg_time_from_int(1704164645678901LL, &t) == 0 && t == 1704164645678901000LL, "epoch us");
    ok(seg_time_from_int(1704164645678901234LL, &t) == 0 && t == 1704164645678901234LL, "epoch ns");
    ok(seg_time_from_number(1704164645.5, &t) == 0 && t == 1704164645500000000LL, "fractional seconds");
    ok(seg_time_from_number(NAN, &t) != 0, "NaN refused");
    char out[40];
    seg_time_format(1704164645678000000LL, out);
    is_str(out, "2024-01-02T03:04:05.678Z", "format");
    seg_time_format(-1, out);
    is_str(out, "1969-12-31T23:59:59.999Z", "format before the epoch");
    char c[40];
    seg_num_canon_real(500.0, c);
    is_str(c, "500", "500.0 is canonically 500");
    seg_num_canon_real(0.1, c);
    is_str(c, "0.10000000000000001", "0.1 keeps 17 digits");
    seg_num_canon_real(-0.0, c);
    is_str(c, "0", "-0 is 0");
}

static void test_manifest(void)
{
    char dir[] = "/tmp/logdex-t-util-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    seg_manifest m = {0}, l;
    m.next_seq = 7;
    m.bucket_ns = 3600000000000LL;
    seg_mentry e1 = {.name = "s0000000000000001.seg", .bucket = 0, .docs = 10, .min_time = -5, .max_time = 99,
                     .bytes = 1234};
    seg_manifest_add(&m, &e1);
    seg_err e = {0};
    int exists;
    ok(seg_manifest_save(dir, &m, &e) == SEG_OK, "manifest saved");
    ok(seg_manifest_load(dir, &l, &exists, &e) == SEG_OK && exists, "manifest loaded");
    ok(l.n == 1 && l.next_seq == 7 && l.bucket_ns == m.bucket_ns && l.e[0].docs == 10 &&
           l.e[0].min_time == -5 && !strcmp(l.e[0].name, e1.name),
       "manifest round-trips");
    seg_manifest_free(&l);
    char p[512], head[32] = {0};
    snprintf(p, sizeof p, "%s/manifest", dir);
    FILE *f = fopen(p, "r");
    ok(f && fgets(head, sizeof head, f) && !strcmp(head, "logdex-manifest 1\n"), "without spans: version 1");
    if (f)
        fclose(f);
    /* a segment spanning buckets: version 2, END kept */
    seg_mentry e2s = {.name = "s0000000000000002.seg", .bucket = 3600000000000LL, .bucket_end = 4 * 3600000000000LL,
                      .docs = 3, .min_time = 3600000000001LL, .max_time = 3 * 3600000000000LL, .bytes = 99};
    seg_manifest_add(&m, &e2s);
    ok(seg_manifest_save(dir, &m, &e) == SEG_OK && seg_manifest_load(dir, &l, &exists, &e) == SEG_OK && l.n == 2 &&
           l.e[0].bucket_end == 0 && l.e[1].bucket_end == e2s.bucket_end && l.e[1].bucket == e2s.bucket,
       "a span round-trips");
    seg_manifest_free(&l);
    f = fopen(p, "r");
    ok(f && fgets(head, sizeof head, f) && !strcmp(head, "logdex-manifest 2\n"), "with a span: version 2");
    if (f)
        fclose(f);
    m.n = 1;
    ok(seg_manifest_save(dir, &m, &e) == SEG_OK, "saved without the span again");
    f = fopen(p, "r+");
    fseek(f, 25, SEEK_SET);
    fputc('9', f);
    fclose(f);
    seg_err e2 = {0};
    ok(seg_manifest_load(dir, &l, &exists, &e2) == SEG_ECORRUPT, "a changed manifest fails its checksum");
    seg_manifest_free(&m);
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    test_varint();
    test_packed();
    test_xpacked();
    test_err();
    test_time();
    test_manifest();
    return tap_done();
}
