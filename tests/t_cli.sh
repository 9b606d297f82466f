#!/bin/sh
# t_cli.sh -- black-box tests of the logdex binary (TAP).
TNAME=cli
. "${top_srcdir:-.}/tests/tap.sh"

"$LOGDEX" --help >/dev/null; ok $? "logdex --help"
for c in ingest search agg stats compact verify dump serve; do "$LOGDEX" $c --help >/dev/null; ok $? "logdex $c --help"; done
"$LOGDEX" nosuch >/dev/null 2>&1; is $? 2 "unknown command exits 2"

# a batch with bad lines, a blank line, a duplicate, a final line without newline
printf '%s\n' \
  '{"@timestamp":"2024-01-02T03:04:05.678Z","_id":"a","msg":"disk full on web-1","status":500}' \
  '{"@timestamp":"2024-01-02T03:05:00+01:00","_id":"b","msg":"user login failed","status":401,"ok":false}' \
  'this is not json' \
  '' \
  '{"@timestamp":"2024-01-02T05:00:00Z","_id":"a","msg":"resent"}' \
  '[1,2,3]' \
  '{"ts":1704164645,"msg":"東京のサーバー error","tags":["x y","z"]}' > "$T/in.ndjson"
printf '%s' '{"timestamp":1704171845000,"msg":"last line without newline","latency":12.5}' >> "$T/in.ndjson"

out=$("$LOGDEX" ingest --data "$T/d" "$T/in.ndjson" 2>"$T/err")
ok $? "ingest exits 0 despite bad lines"
is "$(echo "$out" | sed 's/"seconds":[0-9.e+-]*/"seconds":S/')" '{"accepted":4,"rejected":2,"duplicates":1,"arrival_time":0,"bytes":'"$(wc -c < "$T/in.ndjson" | tr -d ' ')"',"seconds":S}' "ingest summary line"
is "$(cat "$T/err")" "$T/in.ndjson:3: not a JSON object near byte 1
$T/in.ndjson:6: not a JSON object near byte 1" "rejected lines reported with their line numbers"

is "$("$LOGDEX" search --data "$T/d" --count '*')" 4 "count of all"
is "$("$LOGDEX" search --data "$T/d" --count error)" 1 "error (non-ASCII neighbours)"
is "$("$LOGDEX" search --data "$T/d" 'status:>=401' | head -1)" '{"@timestamp":"2024-01-02T03:04:05.678Z","_id":"a","msg":"disk full on web-1","status":500}' "range query prints the original event"
is "$("$LOGDEX" search --data "$T/d" --count 'tags:"y z"')" 0 "no phrase across array elements"
is "$("$LOGDEX" search --data "$T/d" --count 'tags:"x y"')" 1 "phrase within one element"
is "$("$LOGDEX" search --data "$T/d" --count -- '-error')" 3 "a negated query after --"
is "$("$LOGDEX" search --data "$T/d" --count '東京')" 1 "Japanese word"
is "$("$LOGDEX" search --data "$T/d" --count 'ok:false')" 1 "boolean through a field"
is "$("$LOGDEX" search --data "$T/d" --count 'false')" 0 "booleans are not words"
is "$("$LOGDEX" search --data "$T/d" --limit 2 '*' | wc -l)" 2 "--limit"
first=$("$LOGDEX" search --data "$T/d" --limit 1 '*')
is "$first" '{"timestamp":1704171845000,"msg":"last line without newline","latency":12.5}' "newest first (final line without newline counted)"
is "$("$LOGDEX" search --data "$T/d" --count --start 2024-01-02T03:00:00Z --end 2024-01-02T03:05:00Z '*')" 2 "time range: start inclusive, end exclusive"
is "$("$LOGDEX" search --data "$T/d" --count --start 1704164700 '*')" 1 "epoch seconds start"

"$LOGDEX" search --data "$T/d" 'a AND' >/dev/null 2>"$T/qerr"; is $? 2 "a malformed query exits 2"
is "$(cat "$T/qerr")" "logdex search: expected a term after AND at position 6" "and names the position"
"$LOGDEX" search --data "$T/d" --start yesterday x >/dev/null 2>&1; is $? 2 "a bad time exits 2"
"$LOGDEX" search --data "$T/d" --index nope x >/dev/null 2>&1; is $? 1 "an unknown index is an error"
"$LOGDEX" ingest --data "$T/d" --index BAD </dev/null >/dev/null 2>&1; is $? 1 "an invalid index name is refused"

# paging through the cursor
"$LOGDEX" search --data "$T/d" --limit 3 --page-info '*' >/dev/null 2>"$T/page"
cur=$(sed 's/.*"cursor":"\([^"]*\)".*/\1/' "$T/page")
is "$("$LOGDEX" search --data "$T/d" --limit 3 --cursor "$cur" '*' | wc -l)" 1 "the next page holds the rest"

is "$("$LOGDEX" agg --data "$T/d" '{"q":"*","aggs":{"st":{"stats":{"field":"status"}},"lv":{"terms":{"field":"msg","size":1}}}}' | sed 's/"took_ms":[0-9.]*/"took_ms":T/')" '{"took_ms":T,"total":4,"aggs":{"st":{"count":2,"min":401,"max":500,"sum":901,"avg":450.5},"lv":{"buckets":[{"key":"disk full on web-1","count":1}]}}}' "logdex agg"
"$LOGDEX" agg --data "$T/d" '{"aggs":{"x":{"stats":{}}}}' >/dev/null 2>&1; is $? 2 "a bad aggregation exits 2"
meta=$("$LOGDEX" agg --data "$T/d" '{"aggs":{"d":{"date_histogram":{"interval":"1d"}}}}' | sed 's/"took_ms":[0-9.]*//')
cols=$("$LOGDEX" agg --data "$T/d" '{"q":"NOT zzzqqq","aggs":{"d":{"date_histogram":{"interval":"1d"}}}}' | sed 's/"took_ms":[0-9.]*//')
is "$meta" "$cols" "a histogram answered from segment headers equals the one read from columns"
stats=$("$LOGDEX" stats --data "$T/d")
is "$(echo "$stats" | sed 's/"bytes":[0-9]*/"bytes":B/g')" '{"events":4,"segments":3,"buckets":3,"bytes":B,"max_segments_per_bucket":1,"per_bucket":[{"start":"2024-01-02T02:00:00.000Z","segments":1,"events":1,"bytes":B},{"start":"2024-01-02T03:00:00.000Z","segments":1,"events":2,"bytes":B},{"start":"2024-01-02T05:00:00.000Z","segments":1,"events":1,"bytes":B}]}' "stats (02:05, 03:04 and 05:04 are three hours)"

# events 300 years apart: their times differ by more than int64 holds in
# ns; a histogram over them is refused cleanly (no overflow: UBSan aborts
# the sanitizer suite on one), also from the segment headers alone
printf '{"ts":-7883658900,"msg":"old"}\n{"ts":1700001480,"msg":"new"}\n' > "$T/far.ndjson"
"$LOGDEX" ingest --quiet --data "$T/far" "$T/far.ndjson" >/dev/null
for q in '' '"q":"msg:*",'; do
  "$LOGDEX" agg --data "$T/far" "{$q\"aggs\":{\"h\":{\"date_histogram\":{\"interval\":\"1d\"}}}}" >/dev/null 2>"$T/far.err"
  is $? 2 "a histogram over 300 years of days is refused${q:+ (from columns)}"
  ok "$(grep -c 'buckets, at most 100000\|more than 100000 buckets' "$T/far.err" | sed 's/^1$/0/')" "with the reason"
done

# compact: three small ingests into one bucket, merged into one segment
for i in 1 2 3; do
  printf '{"_id":"c%d","@timestamp":"2024-03-01T10:0%d:00Z","msg":"compact me %d"}\n' $i $i $i > "$T/c$i"
  "$LOGDEX" ingest --data "$T/d" --index comp "$T/c$i" >/dev/null
done
before=$("$LOGDEX" search --data "$T/d" --index comp '*')
is "$("$LOGDEX" stats --data "$T/d" --index comp | grep -o '"segments":[0-9]*' | head -1)" '"segments":3' "three ingests, three segments"
is "$("$LOGDEX" compact --data "$T/d" --index comp | sed 's/,"bytes_before".*//')" '{"merges":1,"rewrites":0,"segments_before":3,"segments_after":1,"duplicates_removed":0' "compact merges them"
seg=$(ls "$T/d/comp/"*.seg)
is "$("$LOGDEX" dump "$seg" | head -1 | grep -o 'compact store')" "compact store" "into a compact segment"
is "$("$LOGDEX" compact --data "$T/d" --index comp | sed 's/,"segments_after".*//')" '{"merges":0,"rewrites":0,"segments_before":1' "compacting again does nothing"
is "$("$LOGDEX" search --data "$T/d" --index comp '*')" "$before" "the same answer after compaction"
is "$(ls "$T/d/comp" | grep -c '\.seg$')" 1 "the inputs are deleted"
"$LOGDEX" compact --data "$T/d" --index nosuch >/dev/null 2>&1; is $? 1 "compact of a missing index fails"
printf '{"@timestamp":"2099-01-01T00:00:00Z","msg":"far future"}\n' > "$T/future"
is "$("$LOGDEX" ingest --data "$T/d" --index comp "$T/future" 2>&1 | head -1)" "$T/future:1: event time 2099-01-01T00:00:00.000Z is more than 86400s ahead of the server's clock (--max-future)" "an event beyond --max-future is rejected with its line"
is "$("$LOGDEX" ingest --data "$T/d" --index comp --max-future 0 "$T/future" | sed 's/,"bytes".*//')" '{"accepted":1,"rejected":0,"duplicates":0,"arrival_time":0' "--max-future 0 accepts it"

# standard input, and the same ids again: all duplicates
out=$(grep '_id' "$T/in.ndjson" | "$LOGDEX" ingest --data "$T/d" - 2>/dev/null | sed 's/,"bytes".*//')
is "$out" '{"accepted":0,"rejected":0,"duplicates":3,"arrival_time":0' "resent ids are duplicates (standard input)"

"$LOGDEX" verify --data "$T/d" >/dev/null; ok $? "verify passes"

# the writer lock
if command -v flock >/dev/null 2>&1; then
  flock "$T/d/default/lock" sleep 3 &
  sleep 0.5
  "$LOGDEX" ingest --data "$T/d" "$T/in.ndjson" >/dev/null 2>"$T/lockerr"; is $? 1 "a second writer is refused"
  ok "$(grep -c 'another process' "$T/lockerr" | tr -d ' ' | sed 's/^1$/0/')" "with a clear reason"
  wait
fi

# round trip: every accepted event comes back byte-identical
gen_lines() { i=0; while [ $i -lt 300 ]; do printf '{"ts":%d,"i":%d,"msg":"line %d \\u00e9 \\"q\\"","v":[%d,{"k":null}]}\n' $((1704164645 + i * 37)) $i $i $i; i=$((i + 1)); done; }
gen_lines > "$T/rt.ndjson"
"$LOGDEX" ingest --data "$T/rt" "$T/rt.ndjson" >/dev/null
"$LOGDEX" search --data "$T/rt" --limit 0 '*' | sort > "$T/rt.out"
sort "$T/rt.ndjson" > "$T/rt.in"
cmp -s "$T/rt.in" "$T/rt.out"; ok $? "300 events round-trip byte-identical"

# a corrupted segment is named by verify and search fails cleanly
seg=$(ls "$T/rt/default/"*.seg | head -1)
size=$(stat -c %s "$seg")
printf 'X' | dd of="$seg" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
"$LOGDEX" verify --data "$T/rt" > "$T/verr"; is $? 1 "verify fails on a corrupt segment"
ok "$(grep -c "$seg" "$T/verr" | sed 's/^[1-9][0-9]*$/0/')" "and names the file"
"$LOGDEX" search --data "$T/rt" --count '*' >/dev/null 2>&1
rc=$?; [ $rc -le 2 ]; ok $? "search over it exits cleanly (status $rc)"

# the golden indexes of earlier versions (tests/golden, see
# docs/segment-format.md): each still verifies and answers exactly as
# recorded, also after compaction rewrites it in the current version, and a
# fresh ingest of the same events (current version) answers the same
G="${top_srcdir:-.}/tests/golden"
golden_answers() {
  while IFS= read -r q; do
    echo "## $q"
    "$LOGDEX" search --data "$1" --limit 1000 -- "$q" | md5sum | cut -c1-32
    "$LOGDEX" search --data "$1" --count -- "$q"
  done < "$G/queries.txt"
  "$LOGDEX" agg --data "$1" '{"q":"*","aggs":{"h":{"date_histogram":{"interval":"10m"}},"t":{"terms":{"field":"service","size":5}},"s":{"stats":{"field":"http.duration_ms"}},"p":{"percentiles":{"field":"http.bytes","percents":[50,99]}}}}' | sed 's/"took_ms":[0-9.]*/"took_ms":T/'
}
version_of() { "$LOGDEX" dump "$(ls "$1"/default/*.seg | head -1)" | head -1 | grep -o 'version [0-9]*\|compact store' | tr '\n' ' '; }
for v in 1 2 3; do
  cp -R "$G/v$v" "$T/g$v"
  "$LOGDEX" verify --data "$T/g$v" >/dev/null; ok $? "a version $v index verifies"
  is "$(version_of "$T/g$v")" "version $v " "and is version $v"
  golden_answers "$T/g$v" > "$T/g$v.out"
  cmp -s "$G/v1.expected" "$T/g$v.out"; ok $? "version $v answers as recorded ($(wc -l < "$G/queries.txt" | tr -d ' ') queries, 4 aggregations)"
  "$LOGDEX" compact --data "$T/g$v" >/dev/null 2>&1; ok $? "compact over version $v segments"
  golden_answers "$T/g$v" > "$T/g${v}c.out"
  cmp -s "$G/v1.expected" "$T/g${v}c.out"; ok $? "answers unchanged after compaction"
  "$LOGDEX" verify --data "$T/g$v" >/dev/null; ok $? "and the compacted index verifies"
  is "$(version_of "$T/g$v")" "version 4 compact store " "and is version 4, compact"
done
"$LOGDEX" ingest --quiet --data "$T/gn" "$G/v1.ndjson" >/dev/null
is "$(version_of "$T/gn")" "version 4 " "a fresh ingest writes version 4"
golden_answers "$T/gn" > "$T/gn.out"
cmp -s "$G/v1.expected" "$T/gn.out"; ok $? "and answers the same"
# current-version segments alone in their buckets: rewritten, index kept
is "$("$LOGDEX" compact --data "$T/gn" | sed 's/,"segments_before".*//')" '{"merges":0,"rewrites":2' "compact rewrites the fresh segments"
"$LOGDEX" verify --data "$T/gn" >/dev/null; ok $? "they verify"
is "$(version_of "$T/gn")" "version 4 compact store " "and are compact"
golden_answers "$T/gn" > "$T/gnc.out"
cmp -s "$G/v1.expected" "$T/gnc.out"; ok $? "and answer the same"

# a line over the 64 MiB limit is refused whatever the read buffer's size
# (the buffer doubles to 128 MiB: a 70 MB line once fitted and was stored)
{ printf '{"big":"'; head -c 70000000 /dev/zero | tr '\0' 'x'; printf '"}\n{"msg":"after the big line"}\n'; } > "$T/big.ndjson"
out=$("$LOGDEX" ingest --quiet --data "$T/bigd" "$T/big.ndjson" 2>"$T/big.err")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*')" '"accepted":1,"rejected":1' "a 70 MB line is refused, the next line stored"
ok "$(grep -q 'big.ndjson:1: line longer than 67108864 bytes' "$T/big.err"; echo $?)" "with its line number and the limit"
rm -f "$T/big.ndjson"

# tail against a server that is not there: says so, and gives up
t0=$(date +%s)
"$LOGDEX" tail --url http://127.0.0.1:1 --retries 2 x > /dev/null 2> "$T/tail.err"; rc=$?
is "$rc" 1 "tail gives up on a server it cannot reach"
ok "$(grep -c 'cannot connect to 127.0.0.1:1 (Connection refused); retrying' "$T/tail.err" | sed 's/^2$/0/')" "saying so at each try"
ok "$(grep -q 'giving up: 127.0.0.1:1 not reachable 3 times in a row' "$T/tail.err"; echo $?)" "and why it stops"
ok "$([ $(( $(date +%s) - t0 )) -le 10 ]; echo $?)" "within its bound (--retries 2: about 2 s)"

# the index's time field (issue 20): GitHub events carry created_at
printf '%s\n' '{"created_at":"2015-01-01T15:00:01Z","type":"PushEvent"}' \
  '{"created_at":"2015-01-01 15:00:02,500","type":"IssuesEvent"}' \
  '{"payload":{"at":"[01/Jan/2015:16:00:03 +0100]"},"type":"nested"}' \
  '{"@timestamp":"2015-01-01T15:00:04Z","type":"builtin"}' '{"type":"none"}' > "$T/gh.ndjson"
out=$("$LOGDEX" ingest --quiet --data "$T/tf" --index gh --time-field 'created_at, payload.at' "$T/gh.ndjson")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*,"duplicates":[0-9]*,"arrival_time":[0-9]*')" '"accepted":5,"rejected":0,"duplicates":0,"arrival_time":1' "--time-field: the answer counts the events timed by arrival"
is "$("$LOGDEX" search --data "$T/tf" --index gh --start 2015-01-01T00:00:00Z --end 2015-01-02T00:00:00Z '*' | grep -o '"type":"[^"]*"' | tr '\n' ' ')" '"type":"builtin" "type":"nested" "type":"IssuesEvent" "type":"PushEvent" ' "events are timed by the named fields (nested, Apache and comma forms), then the built-in ones"
is "$("$LOGDEX" search --data "$T/tf" --index gh --start 2015-01-01T15:00:02.500Z --end 2015-01-01T15:00:02.501Z '*' | grep -o '"type":"[^"]*"')" '"type":"IssuesEvent"' "  ... to the millisecond"
is "$(cat "$T/tf/gh/settings" | sed -n 2,3p | tr '\n' ' ')" "time_field created_at time_field payload.at " "kept in the index's settings file"
printf '{"created_at":"2015-01-01T15:00:05Z"}\n' > "$T/gh2.ndjson"
out=$("$LOGDEX" ingest --quiet --data "$T/tf" --index gh "$T/gh2.ndjson")
is "$("$LOGDEX" search --data "$T/tf" --index gh --count --start 2015-01-01T15:00:05Z --end 2015-01-01T15:00:06Z '*')" 1 "a later ingest without the flag keeps the index's time field"
"$LOGDEX" ingest --quiet --data "$T/tf" --index gh --time-field other "$T/gh2.ndjson" > /dev/null 2> "$T/tf.err"
is "$?" 1 "another time field for an existing index is refused"
ok "$(grep -q "time field is created_at,payload.at (set when it was created); it cannot change to other" "$T/tf.err"; echo $?)" "  ... saying which it has"
"$LOGDEX" ingest --quiet --data "$T/tf" --index plain "$T/gh2.ndjson" > /dev/null
"$LOGDEX" ingest --quiet --data "$T/tf" --index plain --time-field created_at "$T/gh2.ndjson" > /dev/null 2> "$T/tf.err"
is "$?" 1 "an index holding events gets no time field afterwards"
"$LOGDEX" ingest --quiet --data "$T/tf" --index bad --time-field 'a b' "$T/gh2.ndjson" > /dev/null 2> "$T/tf.err"
is "$?" 1 "a bad time field name is refused"

is "$("$LOGDEX" search --data "$T/tf" --index gh --fields 'type,payload' --start 2015-01-01 --end 2015-01-02 nested)" '{"payload":{"at":"[01/Jan/2015:16:00:03 +0100]"},"type":"nested"}' "search --fields prints only those fields (a bare date as a bound)"

# inputs people have (issue 20): gzip and zstd files, a JSON array, a BOM, plain text
printf '{"a":1,"@timestamp":"2015-01-01T00:00:01Z"}\n{"a":2,"@timestamp":"2015-01-01T00:00:02Z"}\n' > "$T/in2.ndjson"
gzip -c "$T/in2.ndjson" > "$T/in2.ndjson.gz"
is "$("$LOGDEX" ingest --quiet --data "$T/inp" --index gz "$T/in2.ndjson.gz" | grep -o '"accepted":[0-9]*')" '"accepted":2' "a .gz file is read decompressed"
if command -v zstd >/dev/null; then
  zstd -q -c "$T/in2.ndjson" > "$T/in2.ndjson.zst"
  is "$("$LOGDEX" ingest --quiet --data "$T/inp" --index zs "$T/in2.ndjson.zst" | grep -o '"accepted":[0-9]*')" '"accepted":2' "a .zst file is read decompressed"
else
  n=$((n + 1)); echo "ok $n # SKIP zstd (the command) not installed"
fi
printf 'not zstd' > "$T/bad.zst"
"$LOGDEX" ingest --quiet --data "$T/inp" --index zs2 "$T/bad.zst" > /dev/null 2> "$T/zs.err"
is "$?" 1 "a damaged .zst file is an error"
ok "$(grep -q 'bad.zst: zstd: ' "$T/zs.err"; echo $?)" "  ... naming the file"
printf '\357\273\277[\n  {"b": 1,\n   "s": "x\\ny"},\n  {"b": 2}\n]\n' > "$T/arr.json"
is "$("$LOGDEX" ingest --quiet --data "$T/inp" --index arr "$T/arr.json" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*')" '"accepted":2,"rejected":0' "a file holding one JSON array (with a BOM, pretty-printed)"
is "$("$LOGDEX" search --data "$T/inp" --index arr 'b:1')" '{"b": 1,    "s": "x\ny"}' "  ... each element stored as sent (its newlines between tokens made spaces)"
printf '\357\273\277{"c":1}\n' | "$LOGDEX" ingest --quiet --data "$T/inp" --index bom > "$T/bom.out"
is "$(grep -o '"accepted":[0-9]*,"rejected":[0-9]*' "$T/bom.out")" '"accepted":1,"rejected":0' "NDJSON with a byte order mark"
printf 'Jun 14 15:16:01 host sshd[1]: "failure" \\ x\r\n\n2015-10-18 18:01:47,978 INFO started\n[10/Oct/2000:13:55:36 -0700] GET /\nno time \377 here\n' > "$T/app.log"
out=$("$LOGDEX" ingest --quiet --format text --data "$T/inp" --index txt "$T/app.log")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*,"duplicates":[0-9]*,"arrival_time":[0-9]*')" '"accepted":4,"rejected":0,"duplicates":0,"arrival_time":1' "--format text: a line an event, blank lines skipped, one without a time"
is "$("$LOGDEX" search --data "$T/inp" --index txt --start 2015-10-18T18:01:47.978Z --end 2015-10-18T18:01:47.979Z '*')" '{"message":"2015-10-18 18:01:47,978 INFO started"}' "  ... timed by its leading timestamp"
is "$("$LOGDEX" search --data "$T/inp" --index txt --start 2000-10-10T20:55:36Z --end 2000-10-10T20:55:37Z '*')" '{"message":"[10/Oct/2000:13:55:36 -0700] GET /"}' "  ... Apache's too"
is "$("$LOGDEX" search --data "$T/inp" --index txt sshd)" '{"message":"Jun 14 15:16:01 host sshd[1]: \"failure\" \\ x"}' "  ... escaped as JSON, the CR dropped"
is "$("$LOGDEX" search --data "$T/inp" --index txt here)" "$(printf '{"message":"no time \357\277\275 here"}')" "  ... bytes that are not UTF-8 become U+FFFD"
"$LOGDEX" ingest --quiet --format csv --data "$T/inp" --index x "$T/app.log" > /dev/null 2>&1; is $? 2 "an unknown --format is refused"

is "$("$LOGDEX" search --data "$T/inp" --index arr --sort b:desc '*' | tr '\n' ' ')" '{"b": 2} {"b": 1,    "s": "x\ny"} ' "search --sort b:desc"
is "$("$LOGDEX" search --data "$T/inp" --index arr --sort b '*' | head -1)" '{"b": 1,    "s": "x\ny"}' "search --sort b (ascending)"
"$LOGDEX" search --data "$T/inp" --index arr --sort b:up '*' > /dev/null 2>&1; is $? 2 "a bad --sort exits 2"

# --format combined: Apache/nginx access log lines into fields (ECS names)
cat > "$T/access.log" <<'EOF2'
127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "POST /api/x HTTP/1.1" 404 - "-" "curl/8.0"
not an access log line
EOF2
out=$("$LOGDEX" ingest --quiet --format combined --data "$T/cb" --index c "$T/access.log")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*,"duplicates":[0-9]*,"arrival_time":[0-9]*')" '"accepted":3,"rejected":0,"duplicates":0,"arrival_time":1' "--format combined: a line that is not one is a text event timed by arrival"
is "$("$LOGDEX" search --data "$T/cb" --index c --fields 'source,user,http,url,user_agent' 'http.response.status_code:200')" '{"source":{"address":"127.0.0.1"},"user":{"name":"frank"},"http":{"request":{"method":"GET","referrer":"http://www.example.com/start.html"},"version":"1.0","response":{"status_code":200,"body":{"bytes":2326}}},"url":{"original":"/apache_pb.gif"},"user_agent":{"original":"Mozilla/4.08 [en] (Win98; I ;Nav)"}}' "  ... its fields, numbers as numbers"
is "$("$LOGDEX" search --data "$T/cb" --index c --count --start 2000-10-10T20:55:37Z --end 2000-10-10T20:55:38Z 'http.request.method:POST')" 1 "  ... timed by its [time]"
is "$("$LOGDEX" search --data "$T/cb" --index c --count 'http.response.status_code:>=400')" 1 "  ... the status a number"

# the command line on a terminal, and its messages (issue 20)
printf '%s\n' '{"@timestamp":"2024-02-01T00:00:01Z","level":"error","msg":"disk full","host":"a"}' \
  '{"@timestamp":"2024-02-01T00:00:02Z","message":"no level here"}' '{"@timestamp":"2024-02-01T00:00:03Z","x":1}' > "$T/hu.ndjson"
"$LOGDEX" ingest --quiet --data "$T/hu" --index h "$T/hu.ndjson" > /dev/null
is "$("$LOGDEX" search --human --data "$T/hu" --index h '*' | tr '\n' '|')" '2024-02-01T00:00:03.000Z -     {"@timestamp":"2024-02-01T00:00:03Z","x":1}|2024-02-01T00:00:02.000Z -     no level here|2024-02-01T00:00:01.000Z error disk full|' "search --human: time, level, message a line (the default on a terminal)"
is "$("$LOGDEX" search --human --fields host,level --data "$T/hu" --index h disk)" '2024-02-01T00:00:01.000Z host=a level=error' "  ... with --fields: those fields"
is "$("$LOGDEX" search --data "$T/hu" --index h --limit 1 '*')" '{"@timestamp":"2024-02-01T00:00:03Z","x":1}' "piped: the JSON objects as before"
out=$("$LOGDEX" fields --data "$T/hu" --index h)
is "$(echo "$out" | grep -o '{"name":"[^"]*","types":\[[^]]*\],"count":[0-9]*}' | sort | tr '\n' ' ')" '{"name":"@timestamp","types":["string"],"count":3} {"name":"host","types":["string"],"count":1} {"name":"level","types":["string"],"count":1} {"name":"message","types":["string"],"count":1} {"name":"msg","types":["string"],"count":1} {"name":"x","types":["integer"],"count":1} ' "logdex fields: names, types, counts"
ok "$(echo "$out" | grep -q '\],"time_field":\["@timestamp","timestamp","time","ts"\]}$'; echo $?)" "  ... and the time fields"
is "$("$LOGDEX" indexes --data "$T/hu" | grep -o '"name":"[a-z]*","stats":{"events":[0-9]*')" '"name":"h","stats":{"events":3' "logdex indexes"
"$LOGDEX" search --data "$T/hu" --index nope x 2> "$T/nope.err"; is $? 1 "a missing index"
is "$(cat "$T/nope.err")" "logdex search: no such index: nope (looked in data directory $T/hu)" "  ... names the data directory it looked in"
is "$("$LOGDEX" dump "$T/nofile.seg")" "error: $T/nofile.seg: open: No such file or directory" "dump names the file"
for i in $(seq 1 25); do echo "bad line $i"; done > "$T/bad25"
"$LOGDEX" ingest --quiet --data "$T/b25" "$T/bad25" > /dev/null 2> "$T/b25.err"; is $? 1 "a file whose every line is rejected exits 1"
is "$(grep -c "bad25:[0-9]*: not a JSON object" "$T/b25.err")" 20 "  ... the first 20 rejected lines are shown"
ok "$(grep -q "^\.\.\. and 5 more rejected lines: 5 'not a JSON object'$" "$T/b25.err"; echo $?)" "  ... the rest counted by reason"
ok "$(grep -q "every line was rejected (25); plain text logs: --format text" "$T/b25.err"; echo $?)" "  ... and a hint"

# help texts say what the commands do
ok "$("$LOGDEX" stats --help | grep -q 'max_segments_per_bucket.*per_bucket'; echo $?)" "stats --help lists every key"
ok "$("$LOGDEX" serve --help | grep -q 'one thread per connection, at most'; [ $? -ne 0 ]; echo $?)" "serve --help no longer calls threads the default"

done_testing
