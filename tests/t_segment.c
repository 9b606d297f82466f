/* t_segment.c -- the segment writer and reader, section by section. */
#include "segment/seg.h"
#include "segment/seg_format.h" /* codec numbers: a white-box test of the layer */
#include "tests/tap.h"
#include "tests/testdir.h"

#include <stdlib.h>
#include <unistd.h>

#define N 1000
#define T0 1714557600000000000LL /* 2024-05-01T10:00:00Z */

struct numcheck {
    const char *const *vals;
    int n, exact;
};
void on_exact(void *ud, uint32_t doc, double v);

static void dump_line(void *ud, const char *line)
{
    (*(int *)ud)++;
    (void)line;
}

static void find_storedict(void *ud, const char *line)
{
    if (strstr(line, "STOREDICT"))
        *(int *)ud = 1;
}

/* Events handed over pre-parsed (seg_builder_add_parsed) must give the
 * very bytes of a segment built from the JSON alone: escapes, non-ASCII,
 * nesting, arrays, every value type, repeated and changing paths. */
static void parsed_equals_plain(const char *dir, seg_tok *tok, seg_json *js)
{
    static const char *const shapes[] = {
        "{\"msg\":\"plain %d words\",\"n\":%d,\"lvl\":\"info\"}",
        "{\"msg\":\"esc\\\"aped\\n\\u00e9t\\u00E9 %d\",\"n\":-%d,\"ok\":true}",
        "{\"http\":{\"status\":%d,\"dur\":%d.5,\"req\":{\"path\":\"/a/b\"}},\"ok\":false}",
        "{\"tags\":[\"x y\",\"z\",[\"deep %d\"]],\"n\":%d,\"e\":{},\"a\":[]}",
        "{\"msg\":\"日本語のログ %d\",\"n\":%de3,\"nul\":null}",
        "{\"k\":\"first\",\"k\":\"second %d\",\"m\":%d}",
        "{\"lvl\":\"warn\",\"msg\":\"%d\",\"n\":%d}",
    };
    /* a: JSON only; p: pre-parsed; f: records of a separate seg_flat (as
     * the server encodes them outside its lock); c: copied event by event
     * from p (the server's snapshots) */
    seg_builder *a = seg_builder_new(), *p = seg_builder_new(), *f = seg_builder_new(), *c = seg_builder_new();
    seg_flat *fl = seg_flat_new();
    seg_buf rec = {0};
    char line[512], id[32];
    int added = 0;
    for (int i = 0; i < 8000; i++) { /* ~500 KB: enough for a store dictionary */
        snprintf(line, sizeof line, shapes[(i * 5) % 7], i, i);
        snprintf(id, sizeof id, "p%05d", i);
        const seg_jval *v;
        size_t nv;
        seg_err je = {0};
        if (seg_json_parse(js, line, strlen(line), &v, &nv, &je) != SEG_OK)
            continue;
        int64_t t = T0 + (int64_t)(i % 50) * 1000000LL;
        rec.n = 0;
        if (seg_builder_add_parsed(p, line, strlen(line), t, id, strlen(id), i % 3 == 0, v, nv) == SEG_OK &&
            seg_builder_add(a, line, strlen(line), t, id, strlen(id), i % 3 == 0) == SEG_OK &&
            seg_flat_encode(fl, line, strlen(line), v, nv, &rec) == SEG_OK &&
            seg_builder_add_flat(f, line, strlen(line), t, id, strlen(id), i % 3 == 0, fl, rec.p, rec.n) == SEG_OK)
            added++;
    }
    for (uint32_t k = 0; k < seg_builder_count(p); k++)
        if (seg_builder_add_from(c, p, k) != SEG_OK)
            added = -1;
    uint8_t bad[3] = {0x7f, SEG_JV_INT, 0}; /* a path id the seg_flat never gave */
    ok(seg_builder_add_flat(f, "{}", 2, T0, "x", 1, 0, fl, bad, sizeof bad) == SEG_EINVAL,
       "a record naming an unknown path is refused");
    /* damaged records (every byte of one, changed in turn) are refused or
     * make a segment that writes and verifies: a builder is never left
     * holding values it cannot index */
    {
        const char *ev = "{\"msg\":\"a b\",\"n\":7,\"r\":1.5,\"t\":true,\"e\":\"q\\\"q\"}";
        const seg_jval *v;
        size_t nv;
        seg_err je = {0};
        seg_flat *df = seg_flat_new();
        seg_buf good = {0};
        int fine = df && seg_json_parse(js, ev, strlen(ev), &v, &nv, &je) == SEG_OK &&
                   seg_flat_encode(df, ev, strlen(ev), v, nv, &good) == SEG_OK;
        int refused = 0, kept = 0;
        for (size_t at = 0; fine && at < good.n; at++)
            for (int delta = 1; delta < 256; delta += 37) {
                uint8_t recb[256];
                memcpy(recb, good.p, good.n);
                recb[at] = (uint8_t)(recb[at] + delta);
                seg_builder *db = seg_builder_new();
                int rc = seg_builder_add_flat(db, ev, strlen(ev), T0, "d", 1, 0, df, recb, good.n);
                if (rc == SEG_EINVAL) {
                    refused++;
                } else if (rc == SEG_OK) {
                    seg_buf mem = {0};
                    seg_err we = {0};
                    if (seg_builder_write_mem(db, tok, js, &mem, &we) == SEG_OK)
                        kept++;
                    else {
                        fine = 0;
                        tap_diag("byte %zu + %d: accepted, then the write failed: %s", at, delta, we.msg);
                    }
                    seg_buf_free(&mem);
                } else {
                    fine = 0;
                }
                seg_builder_free(db);
            }
        ok(fine && refused > 0 && kept > 0,
           "damaged value records: %d refused when added, %d accepted and written, none breaks a write", refused,
           kept);
        seg_flat_free(df);
        seg_buf_free(&good);
    }
    seg_flat_free(fl);
    seg_buf_free(&rec);
    /* files, not memory: only file segments have the zstd store and its
     * dictionary sampled by size */
    seg_builder *bs[4] = {a, p, f, c};
    uint8_t *m[4] = {NULL};
    size_t mn[4] = {0};
    int wrote = 0;
    for (int k = 0; k < 4; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/way%d.seg", dir, k);
        seg_err we = {0};
        uint64_t nb = 0;
        if (seg_builder_write(bs[k], tok, js, path, &nb, &we) == SEG_OK && (m[k] = test_slurp(path, &mn[k])))
            wrote++;
        else
            tap_diag("way %d: %s", k, we.msg);
        if (k == 1) {
            int dict = 0;
            seg_reader_dump(path, find_storedict, &dict);
            ok(dict, "the segment has a store dictionary");
        }
        unlink(path);
    }
    ok(added == 8000 && wrote == 4, "8000 events of 7 shapes built four ways");
    for (int k = 1; k < 4; k++)
        ok(m[0] && m[k] && mn[0] > 0 && mn[k] == mn[0] && memcmp(m[k], m[0], mn[0]) == 0,
           "%s: the same segment bytes as parsing at write (%zu / %zu bytes)",
           k == 1 ? "pre-parsed values" : k == 2 ? "records of a separate seg_flat" : "events copied from a builder",
           mn[k], mn[0]);
    for (int k = 0; k < 4; k++)
        free(m[k]);
    seg_builder_free(a);
    seg_builder_free(p);
    seg_builder_free(f);
    seg_builder_free(c);
}

/* A segment rewritten compact (seg_rewrite_compact: index sections copied,
 * events compressed again) is the very file a compact build of the same
 * events writes; a cancelled rewrite leaves nothing. */
static void rewrite_equals_compact(const char *dir, seg_tok *tok, seg_json *js)
{
    seg_builder *b = seg_builder_new();
    char line[256], id[32], pn[4200], pc[4200], pr[4200], tmp[4300];
    for (int i = 0; i < 6000; i++) { /* ~400 KB of records: a store dictionary */
        snprintf(line, sizeof line,
                 "{\"msg\":\"request %d from %x took %d ms\",\"status\":%d,\"tags\":[\"t%d\",\"u\"],\"d\":%d.%d}",
                 i, (unsigned)i * 2654435761u, i % 977, 200 + (i % 5) * 100, i % 7, i % 300, i % 10);
        snprintf(id, sizeof id, "r%05d", i);
        seg_builder_add(b, line, strlen(line), T0 + (int64_t)(i % 400) * 1000000LL, id, strlen(id), i % 2);
    }
    snprintf(pn, sizeof pn, "%s/plain.seg", dir);
    snprintf(pc, sizeof pc, "%s/compact.seg", dir);
    snprintf(pr, sizeof pr, "%s/rewritten.seg", dir);
    seg_err e = {0};
    int built = seg_builder_write(b, tok, js, pn, NULL, &e) == SEG_OK;
    seg_builder_set_compact(b, 1);
    built = built && seg_builder_write(b, tok, js, pc, NULL, &e) == SEG_OK;
    seg_reader *r = NULL;
    built = built && seg_reader_open(pn, &r, &e) == SEG_OK;
    ok(built, "a segment written plain and compact (%s)", e.msg);
    int cancel = 1;
    snprintf(tmp, sizeof tmp, "%s.tmp", pr);
    ok(r && seg_rewrite_compact(r, pr, &cancel, NULL, &e) == SEG_EBUSY && access(pr, F_OK) != 0 &&
           access(tmp, F_OK) != 0,
       "a cancelled rewrite stops and leaves no file");
    seg_err_clear(&e);
    uint64_t bytes = 0;
    ok(r && seg_rewrite_compact(r, pr, NULL, &bytes, &e) == SEG_OK, "rewritten compact (%s)", e.msg);
    size_t nn = 0, nc = 0, nr = 0;
    uint8_t *mn = test_slurp(pn, &nn), *mc = test_slurp(pc, &nc), *mr = test_slurp(pr, &nr);
    ok(mn && mc && mr && nr == bytes && nr == nc && !memcmp(mr, mc, nc) && nc < nn,
       "the rewrite is byte for byte the compact build (%zu bytes; plain %zu)", nr, nn);
    seg_reader *rr = NULL;
    ok(seg_reader_open(pr, &rr, &e) == SEG_OK && (seg_reader_flags(rr) & SEG_FLAG_COMPACT) &&
           !(seg_reader_flags(r) & SEG_FLAG_COMPACT) && seg_reader_verify(pr, NULL, NULL) == 0,
       "its header says compact, and it verifies");
    if (rr)
        seg_reader_close(rr);
    if (r)
        seg_reader_close(r);
    free(mn);
    free(mc);
    free(mr);
    unlink(pn);
    unlink(pc);
    unlink(pr);
    seg_builder_free(b);
}

/* The decoded-block cache: every event read back the same with it on (a
 * second pass served from it), off, and too small for the segment (LRU
 * evictions, random order). */
static uint64_t read_all(seg_reader *r, int shuffled)
{
    seg_store_cur *sc = seg_store_cur_new();
    uint32_t n = seg_reader_ndocs(r);
    uint64_t h = 0;
    seg_err e = {0};
    for (uint32_t k = 0; k < n; k++) {
        uint32_t d = shuffled ? (uint32_t)(((uint64_t)k * 7919) % n) : k;
        const char *id, *js;
        size_t il, jl;
        if (seg_reader_doc(r, sc, d, &id, &il, &js, &jl, &e) != SEG_OK)
            return 0;
        h += seg_hash64_2(id, il, js, jl) * (d + 1);
    }
    seg_store_cur_free(sc);
    return h;
}

static void block_cache(const char *dir, seg_tok *tok, seg_json *js)
{
    seg_builder *b = seg_builder_new();
    char line[256], path[4200];
    for (int i = 0; i < 5000; i++) { /* 7919 is prime to 5000: the shuffle visits every doc */
        snprintf(line, sizeof line, "{\"msg\":\"event %d of a run, value %x\",\"n\":%d}", i,
                 (unsigned)i * 2654435761u, i);
        seg_builder_add(b, line, strlen(line), T0 + i, "", 0, 0);
    }
    snprintf(path, sizeof path, "%s/bc.seg", dir);
    seg_err e = {0};
    seg_reader *r = NULL;
    ok(seg_builder_write(b, tok, js, path, NULL, &e) == SEG_OK && seg_reader_open(path, &r, &e) == SEG_OK,
       "a segment for the block cache");
    uint64_t h0 = 0, m0 = 0, h1 = 0, m1 = 0;
    size_t bytes;
    seg_block_cache_stats(&h0, &m0, &bytes);
    uint64_t first = r ? read_all(r, 0) : 0, second = r ? read_all(r, 0) : 1;
    seg_block_cache_stats(&h1, &m1, &bytes);
    ok(first && first == second && h1 > h0 && bytes > 0, "a second pass reads the same events from the cache (%llu hits)",
       (unsigned long long)(h1 - h0));
    seg_block_cache_set(0);
    seg_block_cache_stats(&h0, &m0, &bytes);
    uint64_t off = r ? read_all(r, 1) : 0;
    ok(off == first && bytes == 0, "the same with the cache off (and emptied)");
    seg_block_cache_set(40000); /* a few 8 KiB blocks: evictions all along */
    uint64_t tiny = r ? read_all(r, 1) : 0;
    seg_block_cache_stats(&h1, &m1, &bytes);
    ok(tiny == first && bytes <= 40000, "and with a cache too small for the segment (%zu bytes held)", bytes);
    seg_block_cache_set((size_t)64 << 20);
    if (r)
        seg_reader_close(r);
    unlink(path);
    seg_builder_free(b);
}

/* Which string fields get a keyword column in a small segment: not one
 * whose values are mostly distinct and long (it would copy the events,
 * uncompressed); short or repeated values keep theirs. */
static void keycol_choice(const char *dir, seg_tok *tok, seg_json *js)
{
    seg_builder *b = seg_builder_new();
    char line[256], path[4200];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof line,
                 "{\"url\":\"https://example.org/a/very/long/path/%d\",\"svc\":\"s%d\",\"code\":\"c%d\"}", i,
                 i % 3, i % 50);
        seg_builder_add(b, line, strlen(line), T0 + i, "", 0, 0);
    }
    snprintf(path, sizeof path, "%s/kc.seg", dir);
    seg_err e = {0};
    seg_reader *r = NULL;
    int has[3] = {-1, -1, -1};
    if (seg_builder_write(b, tok, js, path, NULL, &e) == SEG_OK && seg_reader_open(path, &r, &e) == SEG_OK) {
        static const char *const f[3] = {"url", "svc", "code"};
        for (int k = 0; k < 3; k++) {
            seg_keycol kc;
            int id = seg_reader_field_find(r, f[k], strlen(f[k]));
            has[k] = id < 0 ? -1 : seg_reader_keycol(r, (uint32_t)id, &kc, &e);
        }
        seg_reader_close(r);
    }
    ok(has[0] == 0 && has[1] == 1 && has[2] == 1,
       "100 events: no keyword column for 100 distinct urls, one for 3 services and for 50 short codes (%d %d %d)",
       has[0], has[1], has[2]);
    unlink(path);
    seg_builder_free(b);
}

/* raw STORE records of the JSON texts, ids "i0", "i1", ... */
static void put_records(seg_buf *raw, const char *const *js, int n)
{
    for (int k = 0; k < n; k++) {
        char id[16];
        int il = snprintf(id, sizeof id, "i%d", k);
        seg_buf_put_varint(raw, (uint64_t)il);
        seg_buf_put(raw, id, (size_t)il);
        seg_buf_put_varint(raw, strlen(js[k]));
        seg_buf_put(raw, js[k], strlen(js[k]));
    }
}

/* The column layout of STORE blocks (segment/seg_shape.c): split and join
 * give back every byte; blocks that cannot be laid out are refused (and
 * the writer stores them raw); damaged layouts are errors, never crashes
 * nor a wrong length. */
static void shape_layout(const char *dir, seg_tok *tok, seg_json *js)
{
    static const char *const ev[] = {
        "{\"@timestamp\":\"2024-06-01T00:00:00Z\",\"msg\":\"a \\\"quoted\\\" word\",\"n\":-12.5e3,\"ok\":true}",
        "{\"@timestamp\":\"2024-06-01T00:00:01Z\",\"msg\":\"\",\"n\":0,\"ok\":false}",
        "{ \"k\\\"ey\" : [ \"x\" , 1 , [ 2 , \"y\" ] , { \"in\" : null } ] , \"e\":{} ,\"u\":\"\u00e9\u6771\xe4\xba\xac \xf0\x9f\x98\x80\"}\t",
        "{\"a\":{\"b\":{\"c\":\"deep\"}},\"a2\":[[[\"q\"]]],\"dup\":1,\"dup\":\"two\"}",
        "{\"@timestamp\":\"2024-06-01T00:00:02Z\",\"msg\":\"same shape as the first\",\"n\":7,\"ok\":true}",
        "{}",
        "{\"\":\"empty key\",\"x\":\"\\\\\",\"y\":\"\\n\\u0041\"}",
        /* a column of few values (a dictionary column) */
        "{\"level\":\"info\",\"n\":1}", "{\"level\":\"warn\",\"n\":2}", "{\"level\":\"info\",\"n\":3}",
        "{\"level\":\"info\",\"n\":4}", "{\"level\":\"warn\",\"n\":5}", "{\"level\":\"info\",\"n\":6}",
        "{\"level\":\"info\",\"n\":7}", "{\"level\":\"error\",\"n\":8}", "{\"level\":\"info\",\"n\":9}",
        "{\"level\":\"info\",\"n\":10}", "{\"level\":\"info\",\"n\":11}", "{\"level\":\"warn\",\"n\":12}",
    };
    const int nev = (int)(sizeof ev / sizeof *ev);
    seg_shaper *sh = seg_shaper_new();
    seg_buf raw = {0}, cols = {0};
    put_records(&raw, ev, nev);
    ok(seg_shape_split(sh, raw.p, raw.n, &cols) == SEG_OK, "a block of %d varied events is laid out by columns", nev);
    uint8_t *back = malloc(raw.n);
    ok(back && seg_shape_join(cols.p, cols.n, (uint32_t)nev, back, raw.n) == SEG_OK && !memcmp(back, raw.p, raw.n),
       "and laid back byte for byte (%zu bytes, %zu laid out)", raw.n, cols.n);
    ok(seg_shape_join(cols.p, cols.n, (uint32_t)nev + 1, back, raw.n) == SEG_ECORRUPT &&
           seg_shape_join(cols.p, cols.n, (uint32_t)nev, back, raw.n - 1) == SEG_ECORRUPT &&
           seg_shape_join(cols.p, cols.n - 1, (uint32_t)nev, back, raw.n) == SEG_ECORRUPT,
       "a wrong doc count, raw length or a cut layout is corrupt");
    /* every byte of the layout changed in turn: an error, or exactly the
     * raw length (a value's byte changed) */
    int bad = 0, errors = 0;
    for (size_t i = 0; i < cols.n; i++) {
        for (int x = 1; x < 256; x <<= 2) {
            cols.p[i] ^= (uint8_t)x;
            int rc = seg_shape_join(cols.p, cols.n, (uint32_t)nev, back, raw.n);
            errors += rc != SEG_OK;
            bad += rc != SEG_OK && rc != SEG_ECORRUPT;
            cols.p[i] ^= (uint8_t)x;
        }
    }
    ok(bad == 0 && errors > 0, "%zu bytes x 4 flips: %d corrupt, none other than an error or a full block", cols.n,
       errors);
    /* refused: a raw newline, the bytes 0x01 and 0x02, an unclosed string */
    static const char *const no[] = {"{\"a\":\"x\"}\n", "{\"a\":\"\x01\"}", "{\"a\":\x02}", "{\"a\":\"open}",
                                     "{\"a\":\"x\\\ny\"}", "{\"k\\\n\":1}"};
    int refused = 0;
    for (int k = 0; k < 6; k++) {
        seg_buf r1 = {0};
        put_records(&r1, &no[k], 1);
        seg_buf_reset(&cols);
        refused += seg_shape_split(sh, r1.p, r1.n, &cols) == 1;
        seg_buf_free(&r1);
    }
    is_int(refused, 6, "a newline (also after a backslash, in a value or a key), 0x01, 0x02 or an unclosed string: the block is not laid out");
    free(back);
    seg_buf_free(&raw);
    seg_buf_free(&cols);
    seg_shaper_free(sh);

    /* a segment whose blocks mix both: every event comes back as added */
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/shape.seg", dir);
    seg_builder *b = seg_builder_new();
    int n = 3000;
    for (int i = 0; i < n; i++) {
        if (i == 1500)
            snprintf(line, sizeof line, "{\"odd\":\n\"newline as white space\",\"i\":%d}", i);
        else
            snprintf(line, sizeof line, "{\"i\":%d,\"msg\":\"event number %d of %s\",\"v\":%d.%d}", i, i,
                     i % 3 ? "web" : "db", i % 97, i % 10);
        seg_builder_add(b, line, strlen(line), T0 + i, "", 0, 0);
    }
    seg_err e = {0};
    seg_reader *r = NULL;
    int same = 0;
    if (seg_builder_write(b, tok, js, path, NULL, &e) == SEG_OK && seg_reader_open(path, &r, &e) == SEG_OK) {
        seg_store_cur *sc = seg_store_cur_new();
        for (uint32_t d = 0; d < (uint32_t)n; d++) {
            const char *jj;
            size_t jl;
            int i = n - 1 - (int)d;
            if (i == 1500)
                snprintf(line, sizeof line, "{\"odd\":\n\"newline as white space\",\"i\":%d}", i);
            else
                snprintf(line, sizeof line, "{\"i\":%d,\"msg\":\"event number %d of %s\",\"v\":%d.%d}", i, i,
                         i % 3 ? "web" : "db", i % 97, i % 10);
            same += seg_reader_doc(r, sc, d, NULL, NULL, &jj, &jl, &e) == SEG_OK && jl == strlen(line) &&
                    !memcmp(jj, line, jl);
        }
        seg_store_cur_free(sc);
    }
    ok(same == n, "a segment with a block that cannot be laid out: all %d events read back exactly (%d%s%s)", n, same,
       e.msg[0] ? ": " : "", e.msg);
    int stats[3] = {0};
    if (r)
        seg_reader_store_codecs(r, stats);
    ok(stats[SEG_CODEC_ZSTD_COLS] > 0 && stats[SEG_CODEC_ZSTD] == 1,
       "its blocks: %d laid out by columns, %d raw (the one with the newline)", stats[SEG_CODEC_ZSTD_COLS],
       stats[SEG_CODEC_ZSTD]);
    ok(seg_reader_verify(path, NULL, NULL) == 0, "and it verifies");
    seg_reader_close(r);
    seg_builder_free(b);
    unlink(path);
}

int main(void)
{
    char dir[] = "/tmp/logdex-t-seg-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char path[4200];
    snprintf(path, sizeof path, "%s/s1.seg", dir);
    seg_builder *b = seg_builder_new();
    char line[512], id[32];
    for (int i = 0; i < N; i++) {
        /* every 3rd event says "alpha beta", every event has n = i; equal
         * times for pairs (i, i^1) to exercise the id tie-break */
        int64_t t = T0 + (int64_t)(i / 2) * 1000000000LL;
        snprintf(line, sizeof line, "{\"i\":%d,\"msg\":\"%s word%d\",\"n\":%d,\"r\":%d.25,\"arr\":[\"x y\",\"z\"]}",
                 i, i % 3 == 0 ? "alpha beta" : "gamma", i, i, i);
        snprintf(id, sizeof id, "id%04d", i);
        seg_builder_add(b, line, strlen(line), t, id, strlen(id), i % 2);
    }
    seg_tok *tok = seg_tok_new();
    seg_json *js = seg_json_new();
    seg_err e = {0};
    uint64_t bytes;
    ok(seg_builder_write(b, tok, js, path, &bytes, &e) == SEG_OK, "segment written (%s)", e.msg);
    ok(access(path, F_OK) == 0, "renamed into place");
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ok(access(tmp, F_OK) != 0, "no temporary file left");

    seg_reader *r;
    ok(seg_reader_open(path, &r, &e) == SEG_OK, "opened");
    is_int(seg_reader_ndocs(r), N, "event count");
    is_int(seg_reader_max_time(r), T0 + (N / 2 - 1) * 1000000000LL, "max time");
    is_int(seg_reader_min_time(r), T0, "min time");
    is_int(seg_reader_bytes(r), bytes, "size matches what was written");

    /* order: newest first, then id ascending: doc 0 is id0998, doc 1 id0999 */
    seg_store_cur *sc = seg_store_cur_new();
    const char *sid, *sjs;
    size_t sl, jl;
    ok(seg_reader_doc(r, sc, 0, &sid, &sl, &sjs, &jl, &e) == SEG_OK && sl == 6 && !memcmp(sid, "id0998", 6),
       "doc 0 is the newest, lowest id");
    ok(seg_reader_doc(r, sc, 1, &sid, &sl, &sjs, &jl, &e) == SEG_OK && !memcmp(sid, "id0999", 6), "doc 1 ties on time, next id");
    ok(seg_reader_doc(r, sc, N - 1, &sid, &sl, &sjs, &jl, &e) == SEG_OK && !memcmp(sid, "id0001", 6), "last doc is the oldest");
    snprintf(line, sizeof line, "{\"i\":%d,\"msg\":\"%s word%d\",\"n\":%d,\"r\":%d.25,\"arr\":[\"x y\",\"z\"]}", 1, "gamma", 1, 1, 1);
    ok(jl == strlen(line) && !memcmp(sjs, line, jl), "stored event is byte-identical");

    /* time seeks */
    uint32_t d;
    ok(seg_reader_time_seek_le(r, T0 + 10 * 1000000000LL, &d, &e) == SEG_OK && d == N - 22, "seek_le finds the first doc at or before t");
    ok(seg_reader_time_seek_lt(r, T0 + 10 * 1000000000LL, &d, &e) == SEG_OK && d == N - 20, "seek_lt finds the first doc before t");
    ok(seg_reader_time_seek_lt(r, T0, &d, &e) == SEG_OK && d == N, "nothing before the oldest");
    ok(seg_reader_time_seek_le(r, T0 + 999999999999LL, &d, &e) == SEG_OK && d == 0, "everything at or before the future");
    int64_t t;
    ok(seg_reader_time(r, 500, &t, &e) == SEG_OK && t == T0 + (int64_t)((N - 1 - 500) / 2) * 1000000000LL, "time of doc 500");

    /* a term over many postings blocks: "alpha" in msg */
    int f = seg_reader_field_find(r, "msg", 3);
    ok(f >= 0, "field msg found");
    uint8_t key[64];
    size_t kn = seg_key_make(key, "alpha", 5, (uint16_t)f, SEG_K_TEXT);
    seg_term term;
    ok(seg_dict_get(r, key, kn, &term, &e) == 1, "term alpha found");
    is_int(term.df, (N + 2) / 3, "df of alpha");
    seg_post *p;
    ok(seg_post_open(r, &term, &p, &e) == SEG_OK, "postings open");
    uint32_t cnt = 0, prev = 0;
    int order = 1;
    for (uint32_t x = seg_post_doc(p); x != SEG_DOC_END; x = seg_post_next(p), cnt++) {
        if (cnt && x <= prev)
            order = 0;
        prev = x;
    }
    ok(order && cnt == term.df && !seg_post_error(p), "iterating yields df increasing docs");
    seg_post_free(p);
    seg_post_open(r, &term, &p, &e);
    uint32_t s1 = seg_post_seek(p, 700);
    const uint32_t *pos;
    uint32_t np;
    seg_post_positions(p, &pos, &np);
    /* doc d holds event i = 998 - 2 * (d / 2) + d % 2; alpha is in i % 3 == 0 */
    uint32_t want = 700;
    while ((998 - 2 * (want / 2) + want % 2) % 3)
        want++;
    ok(s1 == want && np == 1 && pos[0] == 0, "seek skips blocks and lands on doc %u; positions are right", want);
    ok(seg_post_seek(p, N + 5) == SEG_DOC_END, "seek past the end is END");
    seg_post_free(p);

    /* phrase positions: "x y" inside one array element, "y z" across two */
    int fa = seg_reader_field_find(r, "arr", 3);
    kn = seg_key_make(key, "z", 1, (uint16_t)fa, SEG_K_TEXT);
    ok(seg_dict_get(r, key, kn, &term, &e) == 1 && seg_post_open(r, &term, &p, &e) == SEG_OK, "term z");
    seg_post_positions(p, &pos, &np);
    uint32_t zpos = pos[0];
    seg_post_free(p);
    kn = seg_key_make(key, "y", 1, (uint16_t)fa, SEG_K_TEXT);
    seg_dict_get(r, key, kn, &term, &e);
    seg_post_open(r, &term, &p, &e);
    seg_post_positions(p, &pos, &np);
    ok(zpos > pos[0] + 1, "a gap separates two array elements (y at %u, z at %u)", pos[0], zpos);
    seg_post_free(p);

    /* numeric column */
    int fn = seg_reader_field_find(r, "n", 1);
    const seg_field *fi = seg_reader_field(r, (uint32_t)fn);
    ok(fi->flags == SEG_F_INT && fi->nnum == N && fi->num_min == 0 && fi->num_max == N - 1, "field stats of n");
    /* count values in [100, 200) */
    struct counter {
        long n;
    } c = {0};
    /* docs are newest first: doc d holds event 299 - d */
void on_exact(void *ud, uint32_t doc, double v)
{
    struct numcheck *nc = ud;
    double want = strtod(nc->vals[(299 - doc) % 6], NULL);
    nc->n++;
    nc->exact += memcmp(&want, &v, sizeof v) == 0;
}

void on_num(void *ud, uint32_t doc, double v);
    ok(seg_reader_num_scan(r, (uint32_t)fn, 100, 1, 200, 0, on_num, &c, &e) == SEG_OK && c.n == 100, "range scan [100, 200) finds 100 values");
    int fr = seg_reader_field_find(r, "r", 1);
    c.n = 0;
    ok(seg_reader_num_scan(r, (uint32_t)fr, 10.25, 0, 12.25, 1, on_num, &c, &e) == SEG_OK && c.n == 2, "real column, exclusive low end");

    /* value terms and existence */
    kn = seg_key_make(key, "42", 2, (uint16_t)fn, SEG_K_VALUE);
    ok(seg_dict_get(r, key, kn, &term, &e) == 0, "numbers are not dictionary terms (equality reads the column)");
    c.n = 0;
    ok(seg_reader_num_scan(r, (uint32_t)fn, 42, 1, 42, 1, on_num, &c, &e) == SEG_OK && c.n == 1, "n = 42 through the column");
    kn = seg_key_make(key, "", 0, (uint16_t)fn, SEG_K_EXISTS);
    ok(seg_dict_get(r, key, kn, &term, &e) == 1 && term.df == N, "existence postings of n");
    /* fields present in the same events share one copy of their postings */
    int fi_ = seg_reader_field_find(r, "i", 1);
    seg_term ti;
    kn = seg_key_make(key, "", 0, (uint16_t)fi_, SEG_K_EXISTS);
    ok(seg_dict_get(r, key, kn, &ti, &e) == 1 && !ti.inl && !term.inl && ti.post_off == term.post_off &&
           ti.post_len == term.post_len,
       "i and n exist in the same events: their postings are one copy (offsets %llu, %llu)",
       (unsigned long long)ti.post_off, (unsigned long long)term.post_off);
    cnt = 0;
    if (seg_post_open(r, &ti, &p, &e) == SEG_OK) {
        for (uint32_t x = seg_post_doc(p); x != SEG_DOC_END && x == cnt; x = seg_post_next(p))
            cnt++;
        seg_post_free(p);
    }
    is_int(cnt, N, "and the shared list reads back every doc");

    /* explicit ids only (odd i) are in the id index */
    ok(seg_reader_id_find(r, sc, "id0007", 6, &d, &e) == 1, "explicit id found");
    ok(seg_reader_id_find(r, sc, "id0008", 6, &d, &e) == 0, "engine-assigned ids are not in the id index");
    ok(seg_reader_id_find(r, sc, "nope", 4, &d, &e) == 0, "unknown id not found");

    /* dictionary range scan from a prefix */
    seg_dict_iter *it;
    ok(seg_dict_iter_open(r, (const uint8_t *)"word1", 5, &it, &e) == SEG_OK, "dict iterator from 'word1'");
    int words = 0, rc;
    while ((rc = seg_dict_iter_next(it, &term, &e)) == 1 && term.key_len >= 9 && !memcmp(term.key, "word1", 5))
        words++;
    seg_dict_iter_free(it);
    is_int(words, 111, "111 terms start with word1 (word1, word10-19, word100-199)");

    int lines = 0;
    ok(seg_reader_dump(path, dump_line, &lines) == 0 && lines > 10, "dump describes the segment (%d lines)", lines);
    ok(seg_reader_verify(path, NULL, NULL) == 0, "verify passes");

    seg_store_cur_free(sc);
    seg_reader_close(r);
    seg_builder_free(b);

    /* numeric columns give back every value bit for bit, whether stored as
     * decimals (m / 10^scale), reals or integers */
    static const char *const cols[][6] = {
        {"0.1", "444.5", "-3.25", "7", "1e-6", "123456.789"},       /* decimals, scale 6 */
        {"0.1", "2.5", "1e-7", "3", "-0.3", "5"},                  /* 1e-7: reals */
        {"1.5", "9007199254", "3", "2.25", "4", "8"},             /* too large for a decimal */
        {"0.30000000000000004", "1.1", "2", "3", "4", "5"},       /* not a short decimal */
        {"-9007199254740991", "9007199254740991", "0", "1", "-1", "2"}, /* integers */
        {"1e300", "-1e-300", "2.5", "0", "6.02214076e23", "1"},
    };
    int exact = 0, total = 0;
    for (size_t k = 0; k < sizeof cols / sizeof *cols; k++) {
        snprintf(path, sizeof path, "%s/n%zu.seg", dir, k);
        b = seg_builder_new();
        for (int i = 0; i < 300; i++) {
            snprintf(line, sizeof line, "{\"v\":%s}", cols[k][i % 6]);
            seg_builder_add(b, line, strlen(line), T0 + i, "", 0, 0);
        }
        if (seg_builder_write(b, tok, js, path, NULL, &e) != SEG_OK || seg_reader_open(path, &r, &e) != SEG_OK) {
            seg_builder_free(b);
            continue;
        }
        struct numcheck nc = {0};
        nc.vals = cols[k];
        int fv = seg_reader_field_find(r, "v", 1);
        if (fv >= 0 && seg_reader_num_scan(r, (uint32_t)fv, -1.0 / 0.0, 1, 1.0 / 0.0, 1, on_exact, &nc, &e) == SEG_OK)
            exact += nc.exact, total += nc.n;
        seg_reader_close(r);
        seg_builder_free(b);
        unlink(path);
    }
    ok(exact == 6 * 300, "6 numeric columns x 300 values: every value read back exactly (%d of %d)", exact, total);
    parsed_equals_plain(dir, tok, js);
    rewrite_equals_compact(dir, tok, js);
    keycol_choice(dir, tok, js);
    block_cache(dir, tok, js);
    shape_layout(dir, tok, js);
    seg_json_free(js);
    seg_tok_free(tok);
    unlink(path);
    rmdir(dir);
    return tap_done();
}

/* docs are newest first: doc d holds event 299 - d */
void on_exact(void *ud, uint32_t doc, double v)
{
    struct numcheck *nc = ud;
    double want = strtod(nc->vals[(299 - doc) % 6], NULL);
    nc->n++;
    nc->exact += memcmp(&want, &v, sizeof v) == 0;
}

void on_num(void *ud, uint32_t doc, double v)
{
    (void)doc;
    (void)v;
    ((long *)ud)[0]++;
}
