#!/bin/bash
# bench/http.sh [--events N]: the HTTP server's figures (needs wrk and curl).
#  1. 100 clients sending one event per request for 10 s (wrk): events/s.
#  2. 1 MiB NDJSON batches, 4 at a time, vs `logdex ingest` of the same file.
#  3. a rare-term search over HTTP (wrk, 1 connection) vs in process (qbench).
#  4. 50 search clients (a rotation of 5 queries) for 15 s while 1 MiB
#     batches are ingested: errors and latency percentiles.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000; OUT=bench/out
while [ $# -gt 0 ]; do case $1 in --events) N=$2; shift 2;; *) echo "usage: $0 [--events N]"; exit 2;; esac; done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }
make -s bench >/dev/null
mkdir -p "$OUT"
CORPUS="$OUT/corpus-$N.ndjson"
[ -s "$CORPUS" ] || ./bench/gen --events "$N" > "$CORPUS"
D=$(mktemp -d /tmp/logdex-http-bench-XXXXXX)
trap 'kill $PID 2>/dev/null; rm -rf "$D"' EXIT
serve() { rm -rf "$D/data"; ./logdex serve --data "$D/data" --listen 127.0.0.1:0 --quiet "$@" > "$D/out" 2>&1 & PID=$!
  for i in $(seq 100); do grep -q listening "$D/out" && break; sleep 0.05; done; U=$(sed 's/.* //' "$D/out"); }
split -C 1M -d -a 4 "$CORPUS" "$D/chunk."

echo "## 1. 100 clients, one event per request (wrk -t2 -c100 -d10s)"
serve
wrk -t2 -c100 -d10s -s bench/wrk/ingest1.lua "$U" | grep -E 'Requests/sec|Non-2xx|Latency|requests in'
curl -s "$U/metrics" | grep -E '^logdex_wal_fsyncs_total|^logdex_events_ingested_total'
kill $PID; wait $PID 2>/dev/null || true

echo "## 2. 1 MiB batches over HTTP (4 at a time) vs offline ingest"
BYTES=$(stat -L -c %s "$CORPUS")
serve
t0=$(date +%s.%N)
ls "$D"/chunk.* | xargs -P4 -I{} curl -s -o /dev/null -XPOST --data-binary @{} "$U/api/v1/load/ingest"
t1=$(date +%s.%N)
http=$(echo "$BYTES / 1048576 / ($t1 - $t0)" | bc -l)
rm -rf "$D/off"
t2=$(date +%s.%N)
./logdex ingest --quiet --data "$D/off" "$CORPUS" > /dev/null
t3=$(date +%s.%N)
off=$(echo "$BYTES / 1048576 / ($t3 - $t2)" | bc -l)
printf 'HTTP %.1f MB/s, offline %.1f MB/s: %.0f%%\n' "$http" "$off" "$(echo "100 * $http / $off" | bc -l)"

echo "## 3. rare term: HTTP vs in process"
curl -s "$U/api/v1/load/search?q=nidoze&limit=100" | grep -o '"total":[0-9]*'
wrk -t1 -c1 -d5s --latency -s bench/wrk/rare.lua "$U" | grep -E '^ +50%|^ +99%|Requests/sec'
kill $PID; wait $PID 2>/dev/null || true
printf 'rare_token\ttop100\tnidoze\n' > "$D/q.tsv"
./bench/qbench --data "$D/data" --index load --runs 200 "$D/q.tsv"

echo "## 4. 50 search clients for 15 s while ingesting 1 MiB batches"
serve
ls "$D"/chunk.* | head -40 | xargs -P2 -I{} curl -s -o /dev/null -XPOST --data-binary @{} "$U/api/v1/load/ingest"
( while :; do for f in $(ls "$D"/chunk.* | tail -n +41); do curl -s -o /dev/null -XPOST --data-binary @"$f" "$U/api/v1/load/ingest"; done; done ) &
ING=$!
wrk -t2 -c50 -d15s --latency -s bench/wrk/search.lua "$U" | grep -E '^ +(50|90|99)%|Requests/sec|Non-2xx|Socket errors|requests in'
kill $ING 2>/dev/null; wait $ING 2>/dev/null || true
curl -s "$U/metrics" | grep -E '^logdex_events_ingested_total|^logdex_http_errors_total|^logdex_ingest_busy_total'
