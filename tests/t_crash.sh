#!/bin/bash
# t_crash.sh -- crash safety of the segment lifecycle (TAP).  The server is
# killed (SIGKILL, from inside, via LOGDEX_FAILPOINT) at each step of a
# flush, a merge, a manifest swap and a retention deletion while clients
# ingest; then it is restarted, and at the end every acknowledged event
# must be present exactly once, no stray file may be left, and verify must
# pass.  Random kill -9 rounds while merges run complete the picture.
TNAME=crash
. "${top_srcdir:-.}/tests/tap.sh"
if ! command -v curl >/dev/null; then echo "1..0 # SKIP curl not installed"; exit 0; fi

D="$T/d"
: > "$T/acked"
# the shared start (tests/tap.sh) on $D, flushing and settling fast
cstart() { start "$D" --flush-age 0.05 --merge-settle 0.3 "$@"; }

# ingest TAG MAX [TIME]: batches of 5 events until the server dies (0) or
# MAX batches went in (1).  Acknowledged ids go to $T/acked.  Every 7th
# batch is ~70 KB (a 14 KB field per event): the write-ahead log writes
# such records from the request's own buffer, not a copy.
PAD=$(head -c 14000 /dev/zero | tr '\0' 'p')
ingest() {
  local tag=$1 max=$2 ts=${3:-}
  for i in $(seq 1 "$max"); do
    local body="" ids="" pad=""
    [ $((i % 7)) -eq 0 ] && pad="\"pad\":\"$PAD\","
    for k in 1 2 3 4 5; do
      body="$body{\"_id\":\"$tag-$i-$k\",${ts:+\"@timestamp\":\"$ts\",}$pad\"msg\":\"crash test $tag batch $i\",\"n\":$k}"$'\n'
      ids="$ids$tag-$i-$k"$'\n'
    done
    out=$(printf '%s' "$body" | curl -s -m 5 -XPOST --data-binary @- "$U/api/v1/c/ingest") || return 0
    case "$out" in *'"accepted":5'*) printf '%s' "$ids" >> "$T/acked" ;; esac
    kill -0 $PID 2>/dev/null || return 0
    sleep 0.01
  done
  return 1
}

# A round: run with the failpoint set until it kills the server.
round() { # FAILPOINT [server options...]
  local fp=$1; shift
  LOGDEX_FAILPOINT=$fp cstart "$@"
  ingest "r$n" 400
  local alive=$?
  if [ $alive = 1 ]; then kill -9 $PID; fi
  wait $PID 2>/dev/null; PID=
  ok "$(grep -q "failpoint ${fp%%:*}: killing" "$T/err"; echo $?)" "the server died at failpoint $fp"
  # restart: leftovers cleaned, write-ahead log replayed; let it settle a bit
  cstart
  ingest "after$n" 3 >/dev/null
  sleep 0.4
  stop; ok $? "restart after $fp, then a clean stop"
}

for fp in segment-mid-write:1 segment-before-rename:2 file-before-rename:4 flush-before-wal-drop:2 \
          segment-mid-write:9 merge-before-manifest:1 merge-before-manifest:3 merge-mid-unlink:1 \
          segment-before-rename:12; do
  round "$fp"
done

# retention: old buckets (3 days) written first, then deleted with a crash
# between the manifest swap and the unlinks, and between two unlinks
OLD=$(date -u -d '3 days ago' +%Y-%m-%dT%H:00:00Z)
cstart
ingest old 20 "$OLD" >/dev/null
stop
: > "$T/old.acked"; grep '^old-' "$T/acked" > "$T/old.acked"; grep -v '^old-' "$T/acked" > "$T/acked.new"; mv "$T/acked.new" "$T/acked"
is "$(wc -l < "$T/old.acked" | tr -d ' ')" 100 "100 old events acknowledged"
for fp in retention-before-unlink:1 retention-mid-unlink:1; do
  LOGDEX_FAILPOINT=$fp cstart --retention 2d
  for i in $(seq 1 60); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  wait $PID 2>/dev/null; PID=
  ok "$(grep -q "failpoint ${fp%%:*}: killing" "$T/err"; echo $?)" "the server died at failpoint $fp"
  if [ $fp = retention-before-unlink:1 ]; then
    # put old events back for the next round (as a new bucket's segments)
    cstart; ingest old2 20 "$OLD" >/dev/null; stop
    grep -v '^old2-' "$T/acked" > "$T/acked.new"; mv "$T/acked.new" "$T/acked"
  fi
done
cstart; ingest old3 10 "$OLD" >/dev/null; stop
grep -v '^old3-' "$T/acked" > "$T/acked.new"; mv "$T/acked.new" "$T/acked"
cstart --retention 2d; sleep 1.5
curl -s "$U/metrics" > "$T/metrics"
stop
ok "$(grep -q '^logdex_retention_deleted_events_total{index="c"} [1-9]' "$T/metrics"; echo $?)" "metrics count retention deletions"

# random kill -9 while merges run under ingest
for r in 1 2 3 4 5; do
  cstart --merge-settle 0.05
  ( ingest "k$r" 200 >/dev/null ) &
  ING=$!
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 $PID; wait $PID 2>/dev/null; PID=
  wait $ING 2>/dev/null
done
cstart; sleep 0.5; stop

# 300 small ingests, each its own segment (`logdex ingest` of one event),
# settle in the server to at most 4 segments per bucket
for i in $(seq 1 300); do
  printf '{"_id":"s%d","@timestamp":"2024-01-01T10:30:00Z","msg":"small ingest %d"}\n' $i $i | "$LOGDEX" ingest --data "$T/small" --index s - > /dev/null
done
peak=$("$LOGDEX" stats --data "$T/small" --index s | grep -o '"max_segments_per_bucket":[0-9]*' | cut -d: -f2)
start "$T/small" --merge-settle 0.5
for k in $(seq 1 150); do
  most=$(curl -s "$U/api/v1/s/stats" | grep -o '"max_segments_per_bucket":[0-9]*' | cut -d: -f2)
  [ "$most" -le 4 ] && break; sleep 0.2
done
ok "$([ "$peak" -ge 300 ] && [ "$most" -le 4 ]; echo $?)" "300 small ingests ($peak segments in one bucket) settle to at most 4 segments per bucket ($most)"
is "$(curl -s "$U/api/v1/s/search?q=small&limit=0" | grep -o '"total":[0-9]*')" '"total":300' "all 300 events, once each"
stop
"$LOGDEX" verify --data "$T/small" > /dev/null; ok $? "verify passes"

# the end state
"$LOGDEX" verify --data "$D" > "$T/verify"; ok $? "verify passes after every crash"
"$LOGDEX" search --data "$D" --index c --limit 0 '*' | grep -o '"_id":"[^"]*"' | sed 's/"_id":"//; s/"$//' | sort > "$T/stored"
sort -u "$T/acked" > "$T/acked.s"
missing=$(comm -23 "$T/acked.s" "$T/stored" | wc -l | tr -d ' ')
is "$missing" 0 "every acknowledged event ($(wc -l < "$T/acked.s" | tr -d ' ')) is present"
is "$(uniq -d "$T/stored" | wc -l | tr -d ' ')" 0 "no event is stored twice"
is "$(grep -c '^old' "$T/stored")" 0 "the events older than the retention period are gone"
segs=$("$LOGDEX" stats --data "$D" --index c | grep -o '"segments":[0-9]*' | head -1 | cut -d: -f2)
is "$(ls "$D/c" | grep -c '\.seg$')" "$segs" "no segment file outside the manifest"
is "$(find "$D" -name '*.tmp' | wc -l | tr -d ' ')" 0 "no temporary file left"
most=$("$LOGDEX" stats --data "$D" --index c | grep -o '"max_segments_per_bucket":[0-9]*' | cut -d: -f2)
ok "$([ "$most" -le 4 ]; echo $?)" "settled: at most 4 segments per bucket ($most)"

done_testing
