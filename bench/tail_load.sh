#!/bin/bash
# bench/tail_load.sh [--events N] [--subscribers S]: what live tails cost
# ingest.  Ingests the corpus in 1 MiB batches (4 at a time) three times on
# fresh servers: with no subscriber, with S subscribers of selective queries
# (http.status:400 .. 400+S-1, each a different query), and with S
# subscribers of a common word (every subscriber receives thousands of
# events a second).  Prints MB/s for each and the drop from the first.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000; S=100; OUT=bench/out
while [ $# -gt 0 ]; do case $1 in --events) N=$2; shift 2;; --subscribers) S=$2; shift 2;;
  *) echo "usage: $0 [--events N] [--subscribers S]"; exit 2;; esac; done
make -s bench >/dev/null
mkdir -p "$OUT"
CORPUS="$OUT/corpus-$N.ndjson"
[ -s "$CORPUS" ] || ./bench/gen --events "$N" > "$CORPUS"
D=$(mktemp -d /tmp/logdex-tail-bench-XXXXXX)
PID=; TAILS=()
cleanup() { [ ${#TAILS[@]} -gt 0 ] && kill "${TAILS[@]}" 2>/dev/null; [ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
split -C 1M -d -a 4 "$CORPUS" "$D/chunk."
BYTES=$(stat -L -c %s "$CORPUS")
run() { # run MODE: prints MB/s
  rm -rf "$D/data"
  ./logdex serve --data "$D/data" --listen 127.0.0.1:0 --quiet --max-tails 1000 > "$D/out" 2>&1 & PID=$!
  for i in $(seq 100); do grep -q listening "$D/out" && break; sleep 0.05; done
  U=$(sed 's/.* //' "$D/out")
  curl -s -o /dev/null -XPOST -d '{"msg":"create"}' "$U/api/v1/t/ingest"
  TAILS=()
  for i in $(seq 0 $((S - 1))); do
    case $1 in
      none) break ;;
      selective) q="http.status:$((400 + i))" ;;
      common) q="get" ;;
    esac
    curl -s -N "$U/api/v1/t/tail?q=$q" > /dev/null & TAILS+=($!)
  done
  sleep 1
  t0=$(date +%s.%N)
  ls "$D"/chunk.* | xargs -P4 -I{} curl -s -o /dev/null -XPOST --data-binary @{} "$U/api/v1/t/ingest"
  t1=$(date +%s.%N)
  [ ${#TAILS[@]} -gt 0 ] && kill "${TAILS[@]}" 2>/dev/null; TAILS=()
  kill $PID; wait $PID 2>/dev/null || true; PID=
  echo "$BYTES / 1048576 / ($t1 - $t0)" | bc -l
}
base=$(run none); sel=$(run selective); com=$(run common)
printf '| subscribers | ingest MB/s | change |\n|---|---:|---:|\n'
printf '| none | %.1f | |\n' "$base"
printf '| %d selective (http.status:4xx, each different) | %.1f | %+.0f%% |\n' "$S" "$sel" "$(echo "100 * ($sel / $base - 1)" | bc -l)"
printf '| %d of a common word (get) | %.1f | %+.0f%% |\n' "$S" "$com" "$(echo "100 * ($com / $base - 1)" | bc -l)"
