#!/bin/bash
# t_http.sh -- black-box tests of `logdex serve` (TAP): every route, status
# and error body; gzip bodies; auth; crash rounds with kill -9 during
# concurrent ingest, after which every acknowledged event is present
# exactly once and verify passes; clean shutdown on SIGTERM.
TNAME=http
. "${top_srcdir:-.}/tests/tap.sh"
if ! command -v curl >/dev/null; then echo "1..0 # SKIP curl not installed"; exit 0; fi

code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

start "$T/d"
is "$(head -c 29 "$T/out")" "logdex listening on http://12" "prints the listening line"
is "$(curl -s "$U/health")" '{"status":"ok"}' "GET /health"

printf '%s\n' '{"@timestamp":"2024-01-02T03:04:05Z","_id":"a","msg":"disk full","status":500}' 'oops' '' \
  '{"@timestamp":"2024-01-02T03:04:06Z","_id":"a","msg":"again"}' '{"ts":1704164700,"msg":"Hello World","tags":["x"]}' > "$T/b1"
is "$(code -XPOST --data-binary @"$T/b1" "$U/api/v1/web/ingest")" 200 "ingest answers 200 with a bad line"
is "$(cat "$T/body")" '{"accepted":2,"rejected":1,"duplicates":1,"arrival_time":0,"errors":[{"line":2,"reason":"not a JSON object near byte 1"}]}' "ingest counts and the bad line's number"
is "$(code "$U/api/v1/web/search?q=hello")" 200 "search 200"
ok "$(grep -c '"total":1,"hits":\[{"_id":"[0-9a-f]\{19\}","_time":"2024-01-02T03:05:00.000Z","_source":{"ts":1704164700,"msg":"Hello World","tags":\["x"\]}}\],"cursor":null}' "$T/body" | sed 's/^1$/0/')" "read your writes: the hit, its _time and its _source as sent"
is "$(code "$U/api/v1/web/search?q=status:500&limit=1")" 200 "numeric field query"
ok "$(grep -c '"total":1' "$T/body" | sed 's/^1$/0/')" "status:500 found"
is "$(code "$U/api/v1/web/search?q=a%20AND")" 400 "malformed q is 400"
is "$(cat "$T/body")" '{"error":{"type":"bad_request","reason":"expected a term after AND at position 6"}}' "with its position"
is "$(code "$U/api/v1/web/search?q=x&limit=abc")" 400 "bad limit is 400"
is "$(code "$U/api/v1/web/search?q=x&start=yesterday")" 400 "bad start is 400"
is "$(code "$U/api/v1/web/search?q=x&cursor=zz")" 400 "bad cursor is 400"
is "$(code "$U/api/v1/nosuch/search?q=x")" 404 "unknown index is 404"
is "$(code "$U/api/v1/web/nosuch")" 404 "unknown route is 404"
is "$(code "$U/nosuch")" 404 "unknown path is 404"
is "$(code -XPOST "$U/api/v1/web/search")" 405 "wrong method is 405"
is "$(code "$U/api/v1/web/ingest")" 405 "GET on ingest is 405"
is "$(code "$U/api/v1/BAD/search")" 400 "invalid index name is 400"
is "$(code -XPOST -d '{"q":"*","start":"2024-01-02T03:00:00Z","end":"2024-01-02T03:10:00Z","aggs":{"m":{"date_histogram":{"interval":"5m"},"aggs":{"s":{"stats":{"field":"status"}}}},"t":{"terms":{"field":"msg"}}}}' "$U/api/v1/web/aggregate")" 200 "aggregate 200"
is "$(sed 's/"took_ms":[0-9.]*/"took_ms":T/' "$T/body")" '{"took_ms":T,"total":2,"aggs":{"m":{"buckets":[{"key":1704164400000,"key_as_string":"2024-01-02T03:00:00.000Z","count":1,"s":{"count":1,"min":500,"max":500,"sum":500,"avg":500}},{"key":1704164700000,"key_as_string":"2024-01-02T03:05:00.000Z","count":1,"s":{"count":0,"min":null,"max":null,"sum":0,"avg":null}}]},"t":{"buckets":[{"key":"Hello World","count":1},{"key":"disk full","count":1}]}}}' "aggregate: histogram with empty buckets, nested stats, terms"
is "$(code -XPOST -d '{"aggs":{"x":{"nosuch":{}}}}' "$U/api/v1/web/aggregate")" 400 "unknown aggregation is 400"
is "$(code -XPOST -d '{"start":"2020-01-01T00:00:00Z","end":"2024-01-01T00:00:00Z","aggs":{"x":{"date_histogram":{"interval":"1s"}}}}' "$U/api/v1/web/aggregate")" 400 "too many buckets is 400"
is "$(code "$U/api/v1/web/stats")" 200 "stats"
ok "$(grep -c '^{"events":2,"segments":[0-9]*,"buckets":1,"bytes":[0-9]*,"max_segments_per_bucket":[0-9]*,"per_bucket":\[{"start":"2024-01-02T03:00:00.000Z","segments":[0-9]*,"events":2,"bytes":[0-9]*}\]}$' "$T/body" | sed 's/^1$/0/')" "stats body"

is "$(code "$U/api/v1/web/fields")" 200 "fields"
ok "$(grep -c '{"name":"status","types":\["integer"\],"count":1}' "$T/body" | sed 's/^1$/0/')" "fields lists names, types and counts"
is "$(code "$U/api/v1/indexes")" 200 "indexes"
ok "$(grep -c '"name":"web"' "$T/body" | sed 's/^1$/0/')" "indexes lists web"
is "$(code "$U/metrics")" 200 "metrics"
ok "$(grep -c '^logdex_events_ingested_total{index="web"} 2$' "$T/body" | sed 's/^1$/0/')" "metrics in Prometheus text"
ok "$(grep -c '^logdex_block_cache_\(hits_total\|misses_total\|bytes\) [0-9]' "$T/body" | sed 's/^3$/0/')" "block cache counters in /metrics"
"$LOGDEX" serve --block-cache-mb -1 >/dev/null 2>&1; is $? 2 "serve refuses a negative --block-cache-mb"

# gzip bodies (as log shippers send them)
printf '{"_id":"gz1","msg":"compressed body"}\n' | gzip > "$T/gz"
is "$(code -XPOST -H 'Content-Encoding: gzip' --data-binary @"$T/gz" "$U/api/v1/web/ingest")" 200 "gzip body accepted"
is "$(cat "$T/body")" '{"accepted":1,"rejected":0,"duplicates":0,"arrival_time":1,"errors":[]}' "gzip body decoded"
printf 'not gzip' > "$T/notgz"
is "$(code -XPOST -H 'Content-Encoding: gzip' --data-binary @"$T/notgz" "$U/api/v1/web/ingest")" 400 "undecodable body is 400"

# logdex ingest --url: files sent to this server in batches (issue 20)
printf '{"u":1}\nnot json\n{"u":2}\n' > "$T/u1.nd"; gzip -c "$T/u1.nd" > "$T/u1.nd.gz"
out=$("$LOGDEX" ingest --quiet --url "$U" --index viaurl "$T/u1.nd" "$T/u1.nd.gz" 2> "$T/u.err")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*')" '"accepted":4,"rejected":2' "ingest --url: plain and gzip files sent, counts summed"
is "$(cat "$T/u.err" | tr '\n' '|')" "$T/u1.nd:2: not a JSON object near byte 1|$T/u1.nd.gz:2: not a JSON object near byte 1|" "  ... the server's rejected lines named by file and line"
is "$(curl -s "$U/api/v1/viaurl/search?q=u:2&limit=0" | grep -o '"total":[0-9]*')" '"total":2' "  ... and searchable"
printf 'Jun 14 15:16:01 h x\n' | "$LOGDEX" ingest --quiet --url "$U/" --index viatext --format text > /dev/null
is "$(curl -s "$U/api/v1/viatext/search?q=*" | grep -o '"_time":"[0-9-]*T15:16:01.000Z"' | wc -l | tr -d ' ')" 1 "ingest --url --format text: timed by the server from the line"
"$LOGDEX" ingest --quiet --url http://127.0.0.1:1 --index x "$T/u1.nd" > /dev/null 2> "$T/u.err"; is $? 1 "ingest --url to nothing exits 1"
ok "$(grep -c "http://127.0.0.1:1/api/v1/x/ingest: Couldn't connect to server" "$T/u.err" | sed 's/^1$/0/')" "  ... saying where it could not connect"

# unknown parameters and keys are 400s naming them (issue 20)
is "$(code "$U/api/v1/web/search?query=status:500")" 400 "an unknown search parameter is 400"
is "$(cat "$T/body")" '{"error":{"type":"bad_request","reason":"unknown parameter '"'"'query'"'"' (did you mean '"'"'q'"'"'?); known: q, start, end, limit, cursor, fields, sort"}}' "  ... naming it and the one meant"
is "$(code "$U/api/v1/web/search?q=x&limt=3")" 400 "a misspelt one too"
ok "$(grep -c "unknown parameter 'limt' (did you mean 'limit'?)" "$T/body" | sed 's/^1$/0/')" "  ... with the near miss"
is "$(code "$U/api/v1/web/stats?x=1")" 400 "stats takes no parameters"
is "$(code "$U/api/v1/web/tail?q=x&backfil=3")" 400 "tail's parameters are checked too"
is "$(code -XPOST -d '{"query":"status:500","aggs":{"t":{"terms":{"field":"msg"}}}}' "$U/api/v1/web/aggregate")" 400 "an aggregate body with an unknown key is 400"
ok "$(grep -c "unknown key 'query' (did you mean 'q'?); known: q, start, end, aggs" "$T/body" | sed 's/^1$/0/')" "  ... naming it"
# sort= (the differential test checks the orders; here the route)
for i in 1 2 3 4 5; do printf '{"_id":"so%d","@timestamp":"2024-03-01T00:00:0%dZ","lat":%d,"who":"w%d"}\n' $i $i $(( (i * 3) % 5 )) $i; done > "$T/so"
curl -s -XPOST --data-binary @"$T/so" "$U/api/v1/so/ingest" > /dev/null
is "$(curl -s "$U/api/v1/so/search?q=*&sort=lat:desc&limit=2" | grep -o '"who":"w[0-9]"' | tr '\n' ' ')" '"who":"w3" "who":"w1" ' "sort=lat:desc"
c=$(curl -s "$U/api/v1/so/search?q=*&sort=lat:desc&limit=2" | sed 's/.*"cursor":"\([^"]*\)".*/\1/')
is "$(curl -s "$U/api/v1/so/search?q=*&sort=lat:desc&limit=2&cursor=$c" | grep -o '"who":"w[0-9]"' | tr '\n' ' ')" '"who":"w4" "who":"w2" ' "  ... its cursor gives the next page"
is "$(curl -s "$U/api/v1/so/search?q=*&sort=_time:asc&limit=2" | grep -o '"who":"w[0-9]"' | tr '\n' ' ')" '"who":"w1" "who":"w2" ' "sort=_time:asc: oldest first"
is "$(code "$U/api/v1/so/search?q=*&sort=who")" 400 "sorting by a string field is 400 (not built)"
is "$(code "$U/api/v1/so/search?q=*&sort=lat:up")" 400 "a bad direction is 400"

# fields=: each hit's _source holds only those fields (values byte for byte)
is "$(curl -s "$U/api/v1/web/search?q=status:500&fields=msg,status" | grep -o '"_source":{[^}]*}')" '"_source":{"msg":"disk full","status":500}' "fields= keeps only the named fields"

# inputs (issue 20): plain text, one JSON array, a BOM
printf '2015-10-18 18:01:47,978 INFO started\r\n\nno time here\n' > "$T/txt"
is "$(code -XPOST --data-binary @"$T/txt" "$U/api/v1/txt/ingest?format=text")" 200 "ingest?format=text"
is "$(cat "$T/body")" '{"accepted":2,"rejected":0,"duplicates":0,"arrival_time":1,"errors":[]}' "  ... a line an event, one timed by arrival"
is "$(curl -s "$U/api/v1/txt/search?q=started&start=2015-10-18" | grep -o '"_time":"[^"]*","_source":{[^}]*}')" '"_time":"2015-10-18T18:01:47.978Z","_source":{"message":"2015-10-18 18:01:47,978 INFO started"}' "  ... timed by its leading timestamp"
printf '\357\273\277[{"j":1},\n {"j":2}]' > "$T/arr"
is "$(code -XPOST --data-binary @"$T/arr" "$U/api/v1/arr/ingest")" 200 "a body that is one JSON array (with a BOM)"
is "$(cat "$T/body")" '{"accepted":2,"rejected":0,"duplicates":0,"arrival_time":2,"errors":[]}' "  ... each element an event"
is "$(code -XPOST --data-binary '[{"j":1},' "$U/api/v1/arr/ingest")" 400 "a broken array is 400"
is "$(code -XPOST --data-binary '[1,{"j":3}]' "$U/api/v1/arr/ingest")" 200 "an array with an element that is not an object"
is "$(cat "$T/body")" '{"accepted":1,"rejected":1,"duplicates":0,"arrival_time":1,"errors":[{"line":1,"reason":"not a JSON object near byte 1"}]}' "  ... rejects that element by its number"
is "$(code -XPOST --data-binary x "$U/api/v1/arr/ingest?format=csv")" 400 "an unknown format is 400"
printf '%s\n' '10.1.2.3 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 503 12 "-" "curl/8"' > "$T/acc"
is "$(code -XPOST --data-binary @"$T/acc" "$U/api/v1/acc/ingest?format=combined")" 200 "ingest?format=combined"
is "$(curl -s "$U/api/v1/acc/search?q=http.response.status_code:503&fields=source,url" | grep -o '"_time":"[^"]*","_source":{.*}}' )" '"_time":"2000-10-10T20:55:36.000Z","_source":{"source":{"address":"10.1.2.3"},"url":{"original":"/x"}}}' "  ... fields and time from the access log line"

# the index's time field over HTTP (issue 20)
is "$(code -XPUT -d '{"time_field":["created_at","payload.at"]}' "$U/api/v1/gh")" 200 "PUT /api/v1/{index} sets its time field"
is "$(cat "$T/body")" '{"acknowledged":true,"index":"gh","time_field":["created_at","payload.at","@timestamp","timestamp","time","ts"]}' "  ... and answers the fields tried, in order"
is "$(code -XPUT -d '{"time_feild":"x"}' "$U/api/v1/gh")" 400 "an unknown key is 400"
is "$(cat "$T/body")" '{"error":{"type":"bad_request","reason":"unknown key '"'"'time_feild'"'"' (known: time_field)"}}' "  ... naming it"
is "$(code -XPUT -d '{"time_field":3}' "$U/api/v1/gh")" 400 "a time_field that is not a name is 400"
printf '%s\n' '{"created_at":"2015-01-01 15:00:02,500","n":1}' '{"payload":{"at":1420124403},"n":2}' '{"n":3}' > "$T/gh"
is "$(code -XPOST --data-binary @"$T/gh" "$U/api/v1/gh/ingest")" 200 "ingest"
is "$(cat "$T/body")" '{"accepted":3,"rejected":0,"duplicates":0,"arrival_time":1,"errors":[]}' "  ... says how many fell back to arrival time"
is "$(curl -s "$U/api/v1/gh/search?q=n:1%20OR%20n:2&start=2015-01-01T00:00:00Z&end=2015-01-02T00:00:00Z" | grep -o '"_time":"[^"]*"' | tr '\n' ' ')" '"_time":"2015-01-01T15:00:03.000Z" "_time":"2015-01-01T15:00:02.500Z" ' "events timed by the index's fields"
ok "$(curl -s "$U/api/v1/gh/fields" | grep -c '],"time_field":\["created_at","payload.at","@timestamp","timestamp","time","ts"\]}$' | sed 's/^1$/0/')" "/fields says which fields time the events"
is "$(code -XPUT -d '{"time_field":"other"}' "$U/api/v1/gh")" 400 "changing it once the index holds events is 400"
ok "$(grep -c 'holds events already' "$T/body" | sed 's/^1$/0/')" "  ... saying why"
is "$(code -XPUT -d '{"time_field":["created_at","payload.at"]}' "$U/api/v1/gh")" 200 "the same fields again are fine (idempotent)"
is "$(code "$U/api/v1/gh")" 200 "GET /api/v1/{index}"
is "$(code "$U/api/v1/nosuchindex")" 404 "GET of an unknown index is 404"
is "$(code -XDELETE "$U/api/v1/gh/x")" 404 "unknown route under an index is still 404"

# paging over HTTP: every match once
for i in $(seq 1 25); do printf '{"_id":"p%02d","@timestamp":"2024-02-01T00:00:%02dZ","msg":"page me"}\n' $i $((i % 7)); done > "$T/pages"
curl -s -XPOST --data-binary @"$T/pages" "$U/api/v1/web/ingest" > /dev/null
cur=""; seen=""
for i in $(seq 1 10); do
  curl -s "$U/api/v1/web/search?q=page&limit=4${cur:+&cursor=$cur}" > "$T/page"
  seen="$seen $(grep -o '{"_id":"p[0-9]*","_time"' "$T/page" | tr '\n' ' ')"
  cur=$(grep -o '"cursor":"[^"]*"' "$T/page" | sed 's/"cursor":"//; s/"$//')
  [ -z "$cur" ] && break
done
is "$(echo $seen | tr ' ' '\n' | sort | uniq | wc -l | tr -d ' ')" 25 "walking the cursor yields all 25 matches"
is "$(echo $seen | tr ' ' '\n' | wc -l | tr -d ' ')" 25 "each exactly once"

# live tail: matching and non-matching events, backfill seam, two tails
printf '%s\n' '{"_id":"t1","msg":"tail old error A"}' '{"_id":"t2","msg":"tail old fine"}' '{"_id":"t3","msg":"tail old error B"}' > "$T/t0"
curl -s -XPOST --data-binary @"$T/t0" "$U/api/v1/live/ingest" > /dev/null
curl -s -N -m 3 "$U/api/v1/live/tail?q=error&backfill=2&heartbeat=0.2" > "$T/tail1" &
TA=$!
curl -s -N -m 3 "$U/api/v1/live/tail?q=fine&heartbeat=0.2" > "$T/tail2" &
TB=$!
sleep 0.5
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 0 ]; then w=error; else w=fine; fi
  printf '{"_id":"L%d","msg":"tail live %s %d"}\n' $i $w $i
done > "$T/t1"
curl -s -XPOST --data-binary @"$T/t1" "$U/api/v1/live/ingest" > /dev/null
wait $TA $TB
is "$(grep -o '"_id":"[A-Za-z0-9]*","_time"' "$T/tail1" | cut -d'"' -f4 | tr '\n' ' ')" "t3 t1 L2 L4 L6 " "tail: backfill (oldest first; t1 and t3 tie in time, so by _id), then live matches in ingest order, no repeat at the seam"
is "$(grep -c '^id: ' "$T/tail1")" 3 "live events carry an id"
ok "$(grep -c '^: ping' "$T/tail1" | sed 's/^[1-9][0-9]*$/0/')" "heartbeat comments while idle"
is "$(grep -o '"_id":"[A-Za-z0-9]*","_time"' "$T/tail2" | cut -d'"' -f4 | tr '\n' ' ')" "L1 L3 L5 " "a second tail with another query, at the same time"
last=$(grep '^id: ' "$T/tail1" | head -1 | cut -d' ' -f2)
curl -s -N -m 1 -H "Last-Event-ID: $last" "$U/api/v1/live/tail?q=error&heartbeat=0.1" > "$T/tail3"
is "$(grep -o '"_id":"[A-Za-z0-9]*","_time"' "$T/tail3" | cut -d'"' -f4 | tr '\n' ' ')" "L4 L6 " "reconnect with Last-Event-ID resumes without gap or repeat"
is "$(code "$U/api/v1/live/tail?q=a%20AND")" 400 "tail with a malformed query is 400"
is "$(code "$U/api/v1/nosuch/tail?q=x")" 404 "tail of an unknown index is 404"
# the command line follows too
"$LOGDEX" tail --url "$U" --index live error > "$T/tail4" 2>&1 &
TC=$!
sleep 0.5
printf '{"_id":"C1","msg":"cli error"}\n{"_id":"C2","msg":"cli fine"}\n' | curl -s -XPOST --data-binary @- "$U/api/v1/live/ingest" > /dev/null
sleep 0.5
kill $TC; wait $TC 2>/dev/null
is "$(cat "$T/tail4")" '{"_id":"C1","msg":"cli error"}' "logdex tail prints matching events as sent"
# a stuck reader does not slow ingest, and is told what it lost
exec 3<>/dev/tcp/127.0.0.1/${U##*:}
printf 'GET /api/v1/live/tail?q=stuck HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 0.3
pad=$(head -c 300 /dev/zero | tr '\0' 'p')
for b in $(seq 1 12); do
  for i in $(seq 1 4000); do printf '{"msg":"stuck %s"}\n' "$pad"; done > "$T/stuck"
  curl -s -m 20 -XPOST --data-binary @"$T/stuck" "$U/api/v1/live/ingest" > "$T/stuckout"
done
ok "$(grep -c '"accepted":4000' "$T/stuckout" | sed 's/^1$/0/')" "ingest finishes while a tail reader is stuck"
timeout 3 cat <&3 > "$T/stucktail" 2>/dev/null
exec 3<&-
ok "$(grep -c 'event: dropped' "$T/stucktail" | sed 's/^[1-9][0-9]*$/0/')" "the stuck reader gets 'event: dropped' with a count"
# many short-lived tails: all freed (closed streams are noticed at their
# next heartbeat; the two above still wait for their 15 s one)
before=$(curl -s "$U/metrics" | grep '^logdex_tail_subscribers{index="live"}' | cut -d' ' -f2)
for i in $(seq 1 200); do echo $i; done | xargs -P 25 -I{} curl -s -o /dev/null -m 0.3 "$U/api/v1/live/tail?q=x{}&heartbeat=0.1"
sleep 1
after=$(curl -s "$U/metrics" | grep '^logdex_tail_subscribers{index="live"}' | cut -d' ' -f2)
[ "$after" -le "$before" ]; ok $? "200 tail connections came and went: none left ($before before, $after after)"
# and 2000 raw connect / subscribe / hang-up cycles (under ASan in CI: the
# clean exit below also proves that every subscriber's memory was freed)
hp=${U#http://}
for i in $(seq 1 2000); do
  exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}" || break
  printf 'GET /api/v1/live/tail?q=cycle%d&heartbeat=0.05 HTTP/1.1\r\nHost: x\r\n\r\n' $i >&3
  exec 3>&-
done
for k in $(seq 1 40); do
  after=$(curl -s "$U/metrics" | grep '^logdex_tail_subscribers{index="live"}' | cut -d' ' -f2)
  [ "$after" -le "$before" ] && break; sleep 0.1
done
[ "$after" -le "$before" ]; ok $? "2000 connect/hang-up cycles: every subscriber freed ($after left)"
is "$(curl -s "$U/health")" '{"status":"ok"}' "the server is fine after them"

stop; is $? 0 "SIGTERM: exit 0"
"$LOGDEX" verify --data "$T/d" > /dev/null; ok $? "verify passes after shutdown"
is "$("$LOGDEX" search --data "$T/d" --index web --count '*')" 28 "everything acknowledged is in segments after shutdown"

# limits and auth
start "$T/d" --max-body 1000 --auth-token s3cret
is "$(code "$U/health")" 200 "/health needs no token"
is "$(code "$U/api/v1/web/stats")" 401 "no token: 401"
is "$(code -H 'Authorization: Bearer nope' "$U/api/v1/web/stats")" 401 "wrong token: 401"
is "$(code -H 'Authorization: Bearer s3cret' "$U/api/v1/web/stats")" 200 "right token: 200"
head -c 5000 /dev/zero | tr '\0' 'x' > "$T/big"
is "$(code -XPOST -H 'Authorization: Bearer s3cret' --data-binary @"$T/big" "$U/api/v1/web/ingest")" 413 "body over --max-body: 413"
ok "$(grep -c 'larger than --max-body (1000 bytes): send smaller batches' "$T/body" | sed 's/^1$/0/')" "  ... saying the limit and what to do"
for i in $(seq 1 40); do printf '{"n":%d,"pad":"%s"}\n' $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done > "$T/many"; echo 'not json' >> "$T/many"
out=$("$LOGDEX" ingest --quiet --url "$U" --token s3cret --index halves "$T/many" 2> "$T/h.err")
is "$(echo "$out" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*')" '"accepted":40,"rejected":1' "ingest --url with a token: a batch over --max-body is sent in halves"
is "$(cat "$T/h.err")" "$T/many:41: not a JSON object near byte 1" "  ... its rejected line still named by its line in the file"
stop

# back-pressure: with flushes slowed to 2 s each (a slow disk), a third
# 1 MiB buffer cannot be taken: the ingest waits --ingest-wait, then 429
python3 -c 'import json
for i in range(6000): print(json.dumps({"msg": "back pressure %d" % i, "pad": "x" * 150}))' > "$T/mb"
LOGDEX_FAILPOINT='segment-before-rename~2000' start "$T/bp" --buffer-mb 1 --ingest-wait 0.3
codes=""
for i in 1 2 3 4; do
  c=$(curl -s -o "$T/bpbody$i" -D "$T/bphdr$i" -w '%{http_code}' -XPOST --data-binary @"$T/mb" "$U/api/v1/bp/ingest")
  codes="$codes $c"
  # the headers and body of the first refusal
  [ "$c" = 429 ] && [ ! -f "$T/bphdr" ] && cp "$T/bphdr$i" "$T/bphdr" && cp "$T/bpbody$i" "$T/bpbody"
done
ok "$(echo "$codes" | grep -q 429; echo $?)" "buffers full while a flush is slow: 429 (statuses:$codes)"
ok "$(grep -qi '^Retry-After: 1' "$T/bphdr" && grep -q '"type":"too_many_requests"' "$T/bpbody"; echo $?)" "  ... with Retry-After and a JSON reason"
accepted=$(( $(echo "$codes" | tr ' ' '\n' | grep -c 200) * 6000 ))
is "$(curl -s "$U/api/v1/bp/search?q=pressure&limit=0" | grep -o '"total":[0-9]*')" "\"total\":$accepted" "read your writes while those flushes are still being written"
sleep 4.5
is "$(curl -s -o /dev/null -w '%{http_code}' -XPOST --data-binary @"$T/mb" "$U/api/v1/bp/ingest")" 200 "after the flush, ingest is accepted again"
accepted=$((accepted + 6000))
is "$(curl -s "$U/api/v1/bp/search?q=pressure&limit=0" | grep -o '"total":[0-9]*')" "\"total\":$accepted" "exactly the accepted batches are stored (refused ones not at all)"
ok "$(curl -s "$U/metrics" | grep -q '^logdex_ingest_busy_total{index="bp"} [1-9]'; echo $?)" "refusals are counted in /metrics"
ok "$(curl -s "$U/metrics" | grep -q '^logdex_flush_failures_total{index="bp"} 0$'; echo $?)" "no flush failed (logdex_flush_failures_total 0)"
kill -9 $PID; wait $PID 2>/dev/null; PID=

# a disk that refuses segments (the first two segment renames fail as I/O
# errors): the flush is kept and retried (1 s after the failure, then 2 s),
# its events stay searchable meanwhile and end up stored exactly once
for i in $(seq 1 50); do printf '{"msg":"disk refuses %d"}\n' $i; done > "$T/df1"
for i in $(seq 51 75); do printf '{"msg":"disk refuses %d"}\n' $i; done > "$T/df2"
LOGDEX_FAILPOINT='segment-before-rename!2' start "$T/dfd" --flush-age 0.2 --no-merge
is "$(curl -s -XPOST --data-binary @"$T/df1" "$U/api/v1/df/ingest" | grep -o '"accepted":[0-9]*')" '"accepted":50' "refusing disk: the ingest is acknowledged"
for i in $(seq 1 40); do curl -s "$U/metrics" | grep -q '^logdex_flush_failures_total{index="df"} [1-9]' && break; sleep 0.05; done
ok "$(curl -s "$U/metrics" | grep -q '^logdex_flush_failures_total{index="df"} [1-9]'; echo $?)" "the failed flush is counted in /metrics"
is "$(curl -s "$U/api/v1/df/search?q=refuses&limit=0" | grep -o '"total":[0-9]*')" '"total":50' "its events stay searchable while it waits for a retry"
is "$(curl -s -XPOST --data-binary @"$T/df2" "$U/api/v1/df/ingest" | grep -o '"accepted":[0-9]*')" '"accepted":25' "ingest goes on meanwhile"
for i in $(seq 1 80); do curl -s "$U/metrics" | grep -q '^logdex_segments{index="df"} [1-9]' && break; sleep 0.1; done
ok "$(curl -s "$U/metrics" | grep -q '^logdex_segments{index="df"} [1-9]'; echo $?)" "a retry writes the segment once the disk takes it"
is "$(curl -s "$U/api/v1/df/search?q=refuses&limit=0" | grep -o '"total":[0-9]*')" '"total":75' "every acknowledged event, once"
ok "$(grep -q 'background flush: .*input/output error (failpoint)' "$T/err"; echo $?)" "the failure is logged with its file and reason"
stop; is $? 0 "the server stops cleanly"
start "$T/dfd"
is "$(curl -s "$U/api/v1/df/search?q=refuses&limit=0" | grep -o '"total":[0-9]*')" '"total":75' "after a restart: 75 events, none lost, none twice"
stop
"$LOGDEX" verify --data "$T/dfd" > /dev/null; is $? 0 "verify passes"

# the next write-ahead log cannot be created when a flush rotates to it (a
# full disk does that): the current log stays open and in use (before the
# fix its descriptor was closed and kept, so later ingests failed with "Bad
# file descriptor", or wrote into whatever file got the number next), the
# flush is retried, and every acknowledged event is there once
for i in $(seq 1 30); do printf '{"@timestamp":"2024-05-01T10:00:%02dZ","_id":"rot%d","msg":"rotation fails"}\n' $i $i; done > "$T/rot"
LOGDEX_FAILPOINT='wal-rotate-create!3' start "$T/rotd" --flush-age 0.05 --no-merge
codes=""
for k in 0 1 2; do
  sed -n "$((k * 10 + 1)),$((k * 10 + 10))p" "$T/rot" > "$T/rotb"
  codes="$codes $(curl -s -o "$T/body" -w '%{http_code}' -XPOST --data-binary @"$T/rotb" "$U/api/v1/rot/ingest"):$(grep -o '"accepted":[0-9]*' "$T/body")"
  sleep 0.3
done
is "$codes" ' 200:"accepted":10 200:"accepted":10 200:"accepted":10' "failed log rotations: every ingest is still acknowledged"
for i in $(seq 1 80); do curl -s "$U/metrics" | grep -q '^logdex_segments{index="rot"} [1-9]' && break; sleep 0.1; done
ok "$(curl -s "$U/metrics" | grep -q '^logdex_segments{index="rot"} [1-9]'; echo $?)" "a later flush rotates and writes the segment"
is "$(curl -s "$U/api/v1/rot/search?q=rotation&limit=0" | grep -o '"total":[0-9]*')" '"total":30' "30 events, once"
ok "$(grep -q 'wal-rotate-create' "$T/err"; echo $?)" "the failed rotation is logged"
stop; is $? 0 "the server stops cleanly"
start "$T/rotd"
is "$(curl -s "$U/api/v1/rot/search?q=rotation&limit=0" | grep -o '"total":[0-9]*')" '"total":30' "after a restart: 30 events, none lost, none twice"
stop
"$LOGDEX" verify --data "$T/rotd" > /dev/null; is $? 0 "verify passes"

# a worker slowed right after it made an ingest's answer (event loop):
# the committer answers, and the connection may be closed and its request
# freed, before the worker returns; the worker must not touch the request
# after handing it over (a use after free that ASan caught in CI)
head -600 "$T/mb" > "$T/mb600"   # over 64 KiB: not parsed on the loop thread
LOGDEX_FAILPOINT='http-after-route~150' start "$T/slow"
codes=""
for i in 1 2 3 4; do
  codes="$codes $(curl -s -o /dev/null -w '%{http_code}' -XPOST --data-binary @"$T/mb600" "$U/api/v1/slow/ingest")"
done
is "$codes" " 200 200 200 200" "ingests answered while their worker is still busy"
is "$(curl -s "$U/api/v1/slow/search?q=pressure&limit=0" | grep -o '"total":[0-9]*')" '"total":2400' "  ... and all stored"
stop
is "$?" 0 "  ... and the server stops cleanly afterwards"

# crash rounds: kill -9 during concurrent ingest
rounds=${LOGDEX_CRASH_ROUNDS:-20}
: > "$T/acked"
for r in $(seq 1 $rounds); do
  start "$T/c" --flush-age 0.3 --buffer-mb 1
  for c in 1 2 3 4; do
    ( i=0; while [ $i -lt 200 ]; do
        body=""; for k in 1 2 3 4 5; do body="$body{\"_id\":\"r$r-c$c-$i-$k\",\"msg\":\"crash round $r client $c\"}"$'\n'; done
        out=$(printf '%s' "$body" | curl -s -m 5 -XPOST --data-binary @- "$U/api/v1/crash/ingest") || break
        case "$out" in *'"accepted":5'*) for k in 1 2 3 4 5; do echo "r$r-c$c-$i-$k"; done >> "$T/acked.$c";; *) break;; esac
        i=$((i + 1)); done ) &
  done
  sleep 0.$((RANDOM % 7 + 2))
  kill -9 $PID; wait $PID 2>/dev/null; PID=
  wait
  cat "$T"/acked.* >> "$T/acked" 2>/dev/null; rm -f "$T"/acked.*
done
start "$T/c"; stop
"$LOGDEX" verify --data "$T/c" > /dev/null; ok $? "verify passes after $rounds kill -9 rounds"
"$LOGDEX" search --data "$T/c" --index crash --limit 0 '*' | grep -o '"_id":"[^"]*"' | sed 's/"_id":"//; s/"$//' | sort > "$T/stored"
sort -u "$T/acked" > "$T/acked.s"
missing=$(comm -23 "$T/acked.s" "$T/stored" | wc -l | tr -d ' ')
dups=$(uniq -d "$T/stored" | wc -l | tr -d ' ')
is "$missing" 0 "every acknowledged event ($(wc -l < "$T/acked.s" | tr -d ' ')) is present after the crashes"
is "$dups" 0 "no event is stored twice"

done_testing
