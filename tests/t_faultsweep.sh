#!/bin/bash
# t_faultsweep.sh -- every file-system call on the write path failed in turn
# (TAP; issue 21).  tests/faultshim.so (LD_PRELOAD) fails the N-th
# open/write/writev/pwrite/fsync/fdatasync/ftruncate/rename/link/mkdir of a
# server with ENOSPC, for N = 1 .. the number a clean run makes (~80: start,
# ingests, a flush, a merge, shutdown).  In each round a client ingests
# with explicit _ids, retrying what is refused, as shippers do; then:
#   - the server started and answered, or refused to start with an error
#     (never a crash); it stopped with 0 or 1, never a signal;
#   - every ingest it acknowledged is present after a restart, each event
#     exactly once (so nothing acknowledged was lost, nothing written
#     into the wrong file), and verify passes;
#   - after the fault, ingest succeeded again without a restart.
# Skipped in sanitizer builds (a preloaded library and the sanitizers'
# own interceptors; CI runs it in the plain build) and without the shim.
TNAME=faultsweep
. "${top_srcdir:-.}/tests/tap.sh"
SHIM="$top_builddir/tests/faultshim.so"
if ! command -v curl >/dev/null; then echo "1..0 # SKIP curl not installed"; exit 0; fi
if [ ! -f "$SHIM" ]; then echo "1..0 # SKIP tests/faultshim.so not built"; exit 0; fi
if ldd "$LOGDEX" 2>/dev/null | grep -q 'lib[at]san'; then echo "1..0 # SKIP sanitizer build (run in the plain build)"; exit 0; fi

# one round: fault at call $1 (0: none) into data dir $2; prints a problem or nothing
round() {
  local at=$1 d=$2 i k got
  FAULTSHIM_AT=$at FAULTSHIM_DIR="$d" FAULTSHIM_COUNT="$T/count" LD_PRELOAD="$SHIM" \
    "$LOGDEX" serve --data "$d" --listen 127.0.0.1:0 --quiet --flush-age 0.1 --merge-settle 0.2 --min-free 0 \
    > "$T/out" 2> "$T/err" &
  PID=$!
  for i in $(seq 1 100); do grep -q listening "$T/out" 2>/dev/null && break; kill -0 $PID 2>/dev/null || break; sleep 0.05; done
  if ! grep -q listening "$T/out"; then
    wait $PID; local rc=$?; PID=
    if [ $rc -ge 128 ] || [ ! -s "$T/err" ]; then echo "start failed without an error message (exit $rc)"; fi
    return   # refused to start, with an error: fine (nothing was acknowledged)
  fi
  U=$(sed 's/^logdex listening on //' "$T/out")
  for i in 1 2 3 4 5; do
    [ $i = 5 ] && sleep 0.4   # the flush and the merge of what came before
    got=""
    for k in $(seq 1 40); do
      got=$(printf '{"_id":"e%s-1","n":1}\n{"_id":"e%s-2","n":2}\n' $i $i |
            curl -s -m 10 -o "$T/body" -w '%{http_code}' -XPOST --data-binary @- "$U/api/v1/s/ingest")
      [ "$got" = 200 ] && break
      case "$got" in 507|503) ;; *) echo "ingest $i answered $got: $(head -c 200 "$T/body")"; break;; esac
      sleep 0.1
    done
    if [ "$got" = 200 ]; then echo "e$i-1" >> "$T/acked"; echo "e$i-2" >> "$T/acked"
    else echo "ingest $i not taken again after the fault ($got)"; fi
  done
  kill -TERM $PID; wait $PID; local rc=$?; PID=
  [ $rc -le 1 ] || echo "the server stopped with $rc"
}

# the clean run: how many eligible calls there are
: > "$T/acked"
p=$(round 0 "$T/d0")
total=$(cut -d' ' -f1 "$T/count")
is "$p" "" "a clean run: every ingest taken"
ok "$([ "${total:-0}" -gt 20 ] && echo 0 || echo 1)" "the clean run makes $total eligible calls"
max=$((total + 3))
for at in $(seq 1 $max); do
  d="$T/d$at"; : > "$T/acked"; rm -f "$T/count"
  p=$(round "$at" "$d")
  what=$(cut -d' ' -f2 "$T/count" 2>/dev/null)
  if [ -d "$d" ]; then
    start "$d" --min-free 0; stop || p="$p; restart failed"
    "$LOGDEX" verify --data "$d" > "$T/verify" 2>&1 || p="$p; verify: $(head -3 "$T/verify")"
    if [ -d "$d/s" ]; then
      "$LOGDEX" search --data "$d" --index s --limit 0 '*' | grep -o '"_id":"[^"]*"' | sed 's/"_id":"//; s/"$//' | sort > "$T/stored"
    else : > "$T/stored"; fi
    sort -u "$T/acked" > "$T/acked.s"
    miss=$(comm -23 "$T/acked.s" "$T/stored" | tr '\n' ' ')
    dups=$(uniq -d "$T/stored" | tr '\n' ' ')
    [ -z "$miss" ] || p="$p; acknowledged but missing: $miss"
    [ -z "$dups" ] || p="$p; stored twice: $dups"
  fi
  is "$p" "" "fault at call $at (${what:-none}) of $total"
  rm -rf "$d"
done
done_testing
