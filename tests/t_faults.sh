#!/bin/bash
# t_faults.sh -- faults a server meets (TAP; issue 21): the write-ahead log
# failing (injected, then a real full filesystem) is refused with 507 and
# Retry-After while searches go on, and ingest resumes by itself once a
# write succeeds again, every acknowledged event kept exactly once; the
# --min-free watermark; a torn tail and damage in the middle of a log
# reported at start (stderr, /metrics) with the damaged file kept aside.
# The real-filesystem parts mount a small tmpfs, so they need root (else
# they are skipped and say so).
TNAME=faults
. "${top_srcdir:-.}/tests/tap.sh"
if ! command -v curl >/dev/null; then echo "1..0 # SKIP curl not installed"; exit 0; fi
MNT=
cleanup2() { [ -n "$PID" ] && kill -9 $PID 2>/dev/null; [ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$T"; }
trap cleanup2 EXIT

code() { curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$@"; }
# every stored _id of index $2 in data dir $1, one a line, sorted
stored() { "$LOGDEX" search --data "$1" --index "$2" --limit 0 '*' | grep -o '"_id":"[^"]*"' | sed 's/"_id":"//; s/"$//' | sort; }
# ingest of events with ids $2..$3 (prefix $1) into index $4; prints the status
batch() {
  local p=$1 a=$2 b=$3 ix=$4 body="" k
  for k in $(seq "$a" "$b"); do body="$body{\"_id\":\"$p$k\",\"k\":\"$p$k\",\"pad\":\"$PAD\"}"$'\n'; done
  printf '%s' "$body" | curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -XPOST --data-binary @- "$U/api/v1/$ix/ingest"
}
PAD=padding
# batches f1- .. f150- of 50 events with 1 KB of random text each
# (incompressible, so that a few MiB fill the small filesystem below)
rbatches() {
  mkdir -p "$T/rb"
  python3 -c 'import sys, os, base64
for b in range(1, 151):
    with open("%s/%d" % (sys.argv[1], b), "w") as f:
        for k in range(1, 51):
            f.write("{\"_id\":\"f%d-%d\",\"k\":\"f%d-%d\",\"pad\":\"%s\"}\n" % (b, k, b, k, base64.b64encode(os.urandom(750)).decode()))' "$T/rb"
}

# --- 1. the log's sync fails (injected ENOSPC, twice) -------------------
LOGDEX_FAILPOINT='wal-sync!2' start "$T/w" --flush-age 1000
is "$(batch a 1 3 w)" 507 "a failed log write is 507"
ok "$(grep -ci '^retry-after: 5' "$T/hdr" | sed 's/^1$/0/')" "  ... with Retry-After"
ok "$(grep -c '"type":"insufficient_storage","reason":".*No space left on device.*retry' "$T/body" | sed 's/^1$/0/')" "  ... and a reason naming the cause"
ok "$(curl -s "$U/health" | grep -c '^{"status":"degraded","ingest":"refused","indexes":\[{"index":"w","reason":"wal_failed"' | sed 's/^1$/0/')" "/health says degraded, which index and why"
is "$(code "$U/api/v1/w/search?q=*&limit=0")" 200 "searches still answer meanwhile"
# recovery: a fresh log (the second injected failure hits its first sync)
got=""; for i in $(seq 1 60); do got=$(batch b 1 3 w); [ "$got" = 200 ] && break; sleep 0.1; done
is "$got" 200 "ingest resumes by itself (no restart)"
is "$(batch c 1 3 w)" 200 "  ... and goes on"
is "$(cat "$T/body")" '{"accepted":3,"rejected":0,"duplicates":0,"arrival_time":3,"errors":[]}' "  ... storing what it acknowledges"
is "$(curl -s "$U/health")" '{"status":"ok"}' "/health is ok again"
# a refused request's events may be stored (at least once), never twice: a
# retry with the same _ids is accepted or answered duplicate
for i in $(seq 1 30); do got=$(batch a 1 3 w); [ "$got" = 200 ] && break; sleep 0.1; done
is "$got" 200 "the refused batch retried"
ok "$(grep -c '"accepted":[0-3],"rejected":0,"duplicates":[0-3]' "$T/body" | sed 's/^1$/0/')" "  ... accepted or duplicate: $(cat "$T/body")"
m=$(curl -s "$U/metrics")
ok "$(echo "$m" | grep -c '^logdex_wal_failures_total{index="w"} 2$' | sed 's/^1$/0/')" "/metrics counts the log failures"
ok "$(echo "$m" | grep -c '^logdex_wal_recoveries_total{index="w"} [12]$' | sed 's/^1$/0/')" "  ... and the recoveries"
ok "$(echo "$m" | grep -c '^logdex_ingest_blocked{index="w"} 0$' | sed 's/^1$/0/')" "  ... and ingest_blocked 0 now"
stop; is $? 0 "SIGTERM exits 0 after the recovery"
is "$(stored "$T/w" w | tr '\n' ' ')" "a1 a2 a3 b1 b2 b3 c1 c2 c3 " "each event once after a restart"
"$LOGDEX" verify --data "$T/w" > /dev/null; is $? 0 "verify passes"

# --- 2. torn tail and damage in the middle of a log ---------------------
start "$T/t" --flush-age 1000
for i in $(seq 1 6); do batch t "$i" "$i" t >/dev/null; done
kill -9 $PID; wait $PID 2>/dev/null; PID=
log=$(ls "$T"/t/t/wal/*.log | tail -1)
python3 - "$log" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
off = 16                               # records follow the 16-byte header
for k in range(2):                     # the third record (event t3) ...
    off += 16 + int.from_bytes(b[off + 4:off + 8], 'little')
b[off + 20] ^= 0xff                    # ... gets a flipped byte
b += bytes([0x44, 0x44, 0x58, 0x57, 0x10, 0, 0])  # and a torn record at the end
open(p, 'wb').write(b)
EOF
start "$T/t" --flush-age 1000
ok "$(grep -c "index t: write-ahead log .*: DAMAGED at offset [0-9]*: [0-9]* bytes" "$T/err" | sed 's/^1$/0/')" "damage in the middle is reported loudly at start"
ok "$(grep -c "index t: write-ahead log .*: kept aside as .*\.damaged" "$T/err" | sed 's/^1$/0/')" "  ... and the file kept aside"
ok "$(grep -c "index t: write-ahead log .*: torn tail at offset [0-9]* (7 bytes), dropped" "$T/err" | sed 's/^1$/0/')" "a torn tail is reported with offset and bytes"
m=$(curl -s "$U/metrics")
ok "$(echo "$m" | grep -c '^logdex_wal_replay_torn_total{index="t"} 1$' | sed 's/^1$/0/')" "/metrics: one torn tail"
ok "$(echo "$m" | grep -c '^logdex_wal_replay_torn_bytes_total{index="t"} 7$' | sed 's/^1$/0/')" "  ... of 7 bytes"
ok "$(echo "$m" | grep -c '^logdex_wal_replay_damaged_total{index="t"} 1$' | sed 's/^1$/0/')" "/metrics: one damaged stretch"
stop
is "$(stored "$T/t" t | tr '\n' ' ')" "t1 t2 t4 t5 t6 " "records after the damage are replayed (only the damaged one is lost)"
ls "$T"/t/t/wal/*.damaged > /dev/null 2>&1; is $? 0 "the damaged file is still there after the flush deleted the log"
start "$T/t" --flush-age 1000; stop
is "$(grep -c 'write-ahead log' "$T/err")" 0 "the next start reports nothing"

# --- 3. a real full disk: a small tmpfs --------------------------------
MNT="$T/mnt"; mkdir -p "$MNT"
if ! mount -t tmpfs -o size=24m tmpfs "$MNT" 2>/dev/null; then
  MNT=
  n=$((n + 1)); echo "ok $n # SKIP a full disk for real needs root (mount -t tmpfs)"
else
  dd if=/dev/zero of="$MNT/ballast" bs=1M count=19 2>/dev/null
  start "$MNT/d" --min-free 0 --buffer-mb 1 --flush-age 0.2 --merge-settle 0.3
  : > "$T/acked"; refused=0; b=0
  rbatches
  while [ $b -lt 150 ] && [ $refused -lt 8 ]; do
    b=$((b + 1)); c=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -XPOST --data-binary @"$T/rb/$b" "$U/api/v1/f/ingest")
    if [ "$c" = 200 ]; then seq -f "f$b-%g" 1 50 >> "$T/acked"; else refused=$((refused + 1)); last=$c; cp "$T/hdr" "$T/hdr.last"; fi
  done
  is "$last" 507 "a full disk: ingest refused with 507 (after $(wc -l < "$T/acked") events)"
  ok "$(grep -ci '^retry-after:' "$T/hdr.last" | sed 's/^1$/0/')" "  ... with Retry-After"
  is "$(code "$U/api/v1/f/search?q=*&limit=0")" 200 "searches answer on a full disk"
  rm -f "$MNT/ballast"
  got=""; for i in $(seq 1 100); do got=$(batch g 1 20 f); [ "$got" = 200 ] && break; sleep 0.2; done
  is "$got" 200 "space freed: ingest resumes without a restart"
  seq -f "g%g" 1 20 >> "$T/acked"
  for r in 1 2 3; do [ "$(batch "h$r-" 1 20 f)" = 200 ] && seq -f "h$r-%g" 1 20 >> "$T/acked"; done
  m=$(curl -s "$U/metrics")
  f=$(echo "$m" | awk '/^logdex_(wal|flush)_failures_total{index="f"}/ { s += $2 } END { print s + 0 }')
  ok "$([ "${f:-0}" -gt 0 ] && echo 0 || echo 1)" "writes really failed on the full disk ($f log or flush failures)"
  stop; is $? 0 "SIGTERM exits 0"
  start "$MNT/d"; stop
  "$LOGDEX" verify --data "$MNT/d" > /dev/null; is $? 0 "verify passes"
  stored "$MNT/d" f > "$T/stored"
  sort -u "$T/acked" > "$T/acked.s"
  is "$(comm -23 "$T/acked.s" "$T/stored" | wc -l | tr -d ' ')" 0 "every acknowledged event ($(wc -l < "$T/acked.s" | tr -d ' ')) is present"
  is "$(uniq -d "$T/stored" | wc -l | tr -d ' ')" 0 "none twice"

  # --- 4. the --min-free watermark ---------------------------------------
  rm -rf "$MNT/d"
  start "$MNT/d" --min-free 12M
  is "$(batch m 1 2 m)" 200 "above the watermark: ingest taken"
  dd if=/dev/zero of="$MNT/ballast" bs=1M count=14 2>/dev/null
  sleep 0.6   # the next check of the free space (every 0.25 s)
  is "$(batch m 3 4 m)" 507 "under --min-free: 507"
  ok "$(grep -c '"reason":".*under the --min-free watermark of 12 MiB' "$T/body" | sed 's/^1$/0/')" "  ... naming the watermark"
  ok "$(curl -s "$U/health" | grep -c '"reason":"low_space","free_bytes":[0-9]*,"min_free_bytes":12582912}' | sed 's/^1$/0/')" "/health: low_space with the figures"
  ok "$(curl -s "$U/metrics" | grep -c '^logdex_ingest_blocked{index="m"} 1$' | sed 's/^1$/0/')" "/metrics: ingest_blocked 1"
  rm -f "$MNT/ballast"; sleep 0.6
  is "$(batch m 3 4 m)" 200 "space freed: taken again"
  stop
  is "$(stored "$MNT/d" m | tr '\n' ' ')" "m1 m2 m3 m4 " "the refused batch was not stored"
fi
"$LOGDEX" serve --min-free 5x > /dev/null 2>&1; is $? 2 "a bad --min-free is refused"
done_testing
