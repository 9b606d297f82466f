/*
 * seg_format.h -- the segment file format (internal to segment/).
 *
 * A segment holds the events of one time bucket.  It is written once
 * (to "NAME.tmp", fsynced, renamed, directory fsynced) and never changed.
 * docs/segment-format.md is the same description for readers of the
 * project; keep both in step.
 *
 * Conventions: fixed-width integers are little-endian; "varint" is
 * unsigned LEB128 (at most 10 bytes); "zigzag" maps signed to unsigned as
 * (v << 1) ^ (v >> 63).  Checksums are XXH3-64 (seed 0).  Offsets are
 * from the start of the file unless said otherwise.
 *
 * Doc ids are 0..ndocs-1 in the segment's event order: event time
 * descending, then _id ascending (bytewise).  Doc 0 is the newest event.
 *
 * HEADER (64 bytes at offset 0)
 *   0   8  magic "LOGDXSEG"
 *   8   4  version (SEG_VERSION; this build also reads SEG_VERSION_MIN..)
 *   12  4  flags: bit 0 (SEG_FLAG_COMPACT) the STORE was compressed for
 *          size (a settled bucket; zstd level 9, ~32 KiB blocks); other
 *          bits 0.  Informational: readers decode every file the same way
 *   16  4  ndocs
 *   20  4  nsections
 *   24  8  min event time, ns since the epoch (i64)
 *   32  8  max event time (i64)
 *   40  8  offset of the section directory
 *   48  8  checksum of the directory (nsections * 32 bytes)
 *   56  8  checksum of header bytes 0..55
 *
 * SECTION DIRECTORY: nsections entries of 32 bytes
 *   0  4  kind (SEG_S_*)
 *   4  4  arg (field id for per-field sections, else 0)
 *   8  8  offset of the section
 *   16 8  length in bytes
 *   24 8  checksum of the section's bytes
 * A section's checksum is verified the first time the section is used.
 *
 * FIELDS (kind 1): u32 nfields, then per field id 0..nfields-1:
 *   u16 name length, name bytes (the dotted path), u8 flags (1 string,
 *   2 integer, 4 real, 8 boolean), u32 docs with a value, u32 numeric
 *   values, f64 numeric min, f64 numeric max (0 when no numeric value).
 *
 * TIMES (kind 2): u32 ndocs, u32 nblocks, u64 unit (version >= 2: the
 *   gcd of the differences; version 1: absent, 1); nblocks * {i64 first
 *   time, u32 offset into the data}; data: per block of 128 docs, (count -
 *   1) varints of (previous time - time) / unit, >= 0 since times descend.
 *
 * TERMDICT (kind 3): u32 nterms, u32 nblocks, nblocks * u32 offset (from
 *   the start of the block area, which follows the offsets); blocks of up
 *   to 32 terms in key order.  A term, version >= 3: varint shared (bytes
 *   of the token shared with the previous term's token of the block; 0 for
 *   the first), varint (suffix length << 1 | hex), the suffix: hex = 0 its
 *   bytes, hex = 1 that many lower-case hex digits [0-9a-f] two a byte,
 *   high nibble first (an odd count leaves the last low nibble 0); varint
 *   (field id << 2 | kind); varint df; then for df >= 2 varint postings
 *   offset (within POSTINGS) and varint postings length, for df == 1 the
 *   postings inline: varint doc, and for TEXT varint tf and tf varints of
 *   positions (the first, then differences).  Versions 1 and 2: varint
 *   shared and varint suffix length over the whole key (below), the
 *   suffix bytes, varint df; version 1 always has offset and length,
 *   version 2 inlines df == 1 as above.
 *   A key is: token bytes (folded UTF-8), 0x00, field id (u16 big-endian),
 *   kind (1 byte); readers of version 3 rebuild it from the token, field
 *   and kind.  Keys sort bytewise, so all fields of one token are
 *   adjacent and a prefix query is a range scan.  Kinds:
 *     0 TEXT    a token of a string value; postings carry positions;
 *     1 VALUE   "true"/"false" for booleans; no positions (numbers
 *               are in NUMCOL only: equality is a one-value range);
 *     2 EXISTS  token "" : the events in which the field has a value.
 *
 * POSTINGS (kind 4): for each term, blocks of up to 128 docs:
 *   varint last doc of the block, varint docs length, varint positions
 *   length; docs: X gaps (doc - previous doc - 1, previous = -1 at the
 *   start of the term; it carries across blocks), then for TEXT terms
 *   X (tf - 1); positions (TEXT only): version >= 3 varint base, then X
 *   values, per doc tf of them: the first position (less base), then
 *   differences.  X is xpacked (seg_buf_put_xpacked) in version >= 3,
 *   packed in versions 1 and 2 (which have no base).  Positions number the
 *   tokens of one field of an event (version >= 2; version 1: of the whole
 *   event) across its string values in order; each value starts one
 *   position after the previous value's last token + 1, so no phrase can
 *   span two values, and a phrase in any field is matched field by field.
 *   Two terms may point at the same bytes (a list equal to an earlier
 *   one's is written once: EXISTS terms of fields that always occur
 *   together); lists need not be disjoint nor in dictionary order.
 *
 * NUMCOL (kind 5, arg = field id): u32 nvalues, u8 type (0 integers,
 *   1 reals, 2 decimals: version >= 2), for type 2 only u8 scale (0..6),
 *   u32 nblocks, nblocks * {f64 min, f64 max, u32 first doc, u32 offset
 *   into the data}; data: per block of up to 128 values, in doc order.
 *   A value is m (type 0) or m / 10^scale computed in binary64 (type 2:
 *   chosen by the writer only when that gives back every value exactly),
 *   or an f64 (type 1).  Version >= 3: xpacked(doc - previous doc;
 *   previous = first doc at the block start), then type 1: count f64;
 *   types 0 and 2: u8 mode, mode 0 (SEG_NUMBLK_PACKED): varint
 *   zigzag(base), the block's least m, then xpacked(m - base); mode 1
 *   (SEG_NUMBLK_DELTAS, when the values span more than 2^32 - 1): count
 *   varints zigzag(m - previous m; previous = 0 at the block start).
 *   Versions 1 and 2: per value, varint (doc - previous doc), then types 0
 *   and 2 the zigzag varint of (m - previous m) as in mode 1, type 1 an
 *   f64.
 *
 * STORE (kind 6): u32 ndocs, u32 nblocks, nblocks * {u32 first doc,
 *   u32 raw length, u64 offset into the data, u32 compressed length,
 *   u32 codec}; data: the compressed blocks; raw: per doc varint id
 *   length, id bytes, varint JSON length, the original JSON bytes.
 *   Codec 0 (SEG_CODEC_LZ4): an LZ4 block (version 1 files, in which this
 *   field was reserved 0; in-memory segments).  Codec 1 (SEG_CODEC_ZSTD,
 *   version >= 2): one zstd frame holding the raw size, compressed with
 *   the STOREDICT bytes as a raw-content dictionary when that section
 *   exists.  Codec 2 (SEG_CODEC_ZSTD_COLS, version >= 4): the same, over
 *   the block laid out by columns (segment/seg_shape.c: shapes, ids and
 *   one column of values per key); the raw length is that of the records
 *   it lays back into.  Files of version 4 write codec 2, and codec 1 for
 *   a block that cannot be laid out so.
 *
 * KEYCOUNT (kind 10, arg = field id, version >= 2, optional): u32 ndict,
 *   then per ordinal of the field's KEYCOL a u32: the docs holding that
 *   value (terms over all events without decoding the pairs).
 *
 * STOREDICT (kind 9, version >= 2, optional): <= 64 KiB: the dictionary
 *   of every zstd block of STORE.  The writer samples records evenly from
 *   the segment's events and stores them raw (the format above; versions 2
 *   and 3) or laid out by columns as one codec 2 block, cut at 64 KiB
 *   (version 4, when they can be); readers use the bytes as they are.
 *
 * IDS (kind 7): u32 n, n * {u64 XXH3 of the _id, u32 doc} sorted by hash
 *   then doc: the events whose _id came from the event (for de-dupe).
 *
 * KEYCOL (kind 8, arg = field id): the field's string values of at most
 *   SEG_KEYWORD_MAX bytes, dictionary-encoded: u32 npairs, u32 ndict,
 *   (ndict + 1) * u32 offsets into the value bytes, the value bytes (values
 *   sorted bytewise, distinct), u32 nblocks, nblocks * {u32 first doc,
 *   u32 offset into the data}; data: per block of up to 128 (doc, ordinal)
 *   pairs in doc order, version >= 3: xpacked(doc - previous doc; previous
 *   = first doc at the block start), xpacked(ordinal); versions 1 and 2:
 *   packed(doc - first doc), packed(ordinal).
 *
 * Packed: u8 bit width w, then the values, w bits each, LSB first, in
 *   ceil(n * w / 8) bytes (seg_buf_put_packed).  Xpacked: packed with
 *   exceptions (seg_buf_put_xpacked, described in seg.h).
 */
#ifndef LOGDEX_SEG_FORMAT_H
#define LOGDEX_SEG_FORMAT_H

#define SEG_MAGIC "LOGDXSEG"
/* Bump SEG_VERSION on any change to the bytes above; readers refuse
 * versions they do not know.  Keep a golden file of every released
 * version in tests/golden/. */
#define SEG_VERSION 4u
#define SEG_VERSION_MIN 1u         /* oldest version this build reads */
#define SEG_HEADER_SIZE 64
#define SEG_DIRENT_SIZE 32

enum {
    SEG_S_FIELDS = 1,
    SEG_S_TIMES = 2,
    SEG_S_TERMDICT = 3,
    SEG_S_POSTINGS = 4,
    SEG_S_NUMCOL = 5,
    SEG_S_STORE = 6,
    SEG_S_IDS = 7,
    SEG_S_KEYCOL = 8,
    SEG_S_STOREDICT = 9,
    SEG_S_KEYCOUNT = 10,
};

/* NUMCOL value types. */
enum {
    SEG_NUM_INT = 0,
    SEG_NUM_REAL = 1,
    SEG_NUM_DECIMAL = 2,       /* version >= 2 */
};
#define SEG_NUM_MAX_SCALE 6
/* 10^scale for NUMCOL type 2 (exact doubles) */
static const double seg_pow10[SEG_NUM_MAX_SCALE + 1] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* NUMCOL block modes (version >= 3), for types 0 and 2. */
enum {
    SEG_NUMBLK_PACKED = 0,
    SEG_NUMBLK_DELTAS = 1,
};

/* Codecs of STORE blocks (the block index's last field). */
enum {
    SEG_CODEC_LZ4 = 0,
    SEG_CODEC_ZSTD = 1,
    SEG_CODEC_ZSTD_COLS = 2,   /* version >= 4 */
};

#define SEG_TIME_BLOCK 128
#define SEG_DICT_BLOCK 32
#define SEG_POST_BLOCK 128
#define SEG_NUM_BLOCK 128
#define SEG_KEY_BLOCK 128
/* A field gets a KEYCOL unless, while indexing, its distinct values pass
 * SEG_KEYCOL_MAX_DISTINCT and one in eight of its values, or, at the end,
 * they pass a quarter of its values and either SEG_KEYCOL_MIN_DISTINCT or,
 * in bytes, 8 per value (urls, ids, times, messages in small segments: the
 * column would mostly copy the events, uncompressed); then terms
 * aggregations read the stored events for it. */
#define SEG_KEYCOL_MAX_DISTINCT 4096
/* KEYCOUNT is written for a KEYCOL of at least this many pairs (below, a
 * terms aggregation counts the pairs: microseconds). */
#define SEG_KEYCOUNT_MIN_PAIRS 1024
#define SEG_KEYCOL_MIN_DISTINCT 256
/* Files: zstd (level 1) blocks of ~32 KiB raw sharing a dictionary of <= 64
 * KiB (compact files, below: level 9, same block size); in-memory segments
 * (sealed buffers, tail batches, which live seconds): LZ4's fast encoder,
 * 64 KiB blocks, no dictionary.  Level 1 on 32 KiB blocks compresses
 * smaller than level 3 on 8 KiB (0.177 against 0.186 of the raw events on
 * 10.8 MB of bench/gen's events) at 1.3x its speed; see performance.md. */
#define SEG_STORE_BLOCK (32 * 1024)
#define SEG_STORE_BLOCK_MEM (64 * 1024)
#define SEG_STORE_DICT (64 * 1024)
#define SEG_STORE_ZSTD_LEVEL 1
/* Compact files (settled buckets, SEG_FLAG_COMPACT): for size. */
#define SEG_STORE_BLOCK_COMPACT (32 * 1024)
#define SEG_STORE_ZSTD_LEVEL_COMPACT 9
#define SEG_MAX_FIELDS 65535
#define SEG_MAX_KEY (SEG_TOK_MAX + 4)

#endif
