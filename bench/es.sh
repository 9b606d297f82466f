#!/bin/bash
# bench/es.sh [--events N]: the Elasticsearch-compatible routes against the
# native ones, on the same events, in one run (needs wrk):
#  1. ~5 MB bodies over 4 kept-alive connections (bench/post): the corpus
#     through POST /api/v1/load/ingest, then the same events as _bulk bodies
#     (an {"index":{}} line before each) through POST /load/_bulk, also with
#     the filter_path Beats send (errors,items.*.error,items.*.status); events/s.
#  2. 100 clients, one event per request, 10 s (wrk): /ingest vs /_bulk.
#  3. a rare-term search on 1 connection, 10 s (wrk): GET /api/v1/load/search
#     vs GET /load/_search with the same query; mean and p99 latency.
# Alternates the two routes twice in 1 and 3; prints every run.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000; OUT=bench/out
while [ $# -gt 0 ]; do case $1 in --events) N=$2; shift 2;; *) echo "usage: $0 [--events N]"; exit 2;; esac; done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }
make -s bench >/dev/null
mkdir -p "$OUT"
CORPUS="$OUT/corpus-$N.ndjson"
[ -s "$CORPUS" ] || ./bench/gen --events "$N" > "$CORPUS"
D=$(mktemp -d /tmp/logdex-es-bench-XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
serve() { rm -rf "$D/data"; ./logdex serve --data "$D/data" --listen 127.0.0.1:0 --quiet "$@" > "$D/out" 2>&1 & PID=$!
  for i in $(seq 100); do grep -q listening "$D/out" && break; sleep 0.05; done; U=$(sed 's/.* //' "$D/out"); HP=${U#http://}; }
halt() { kill $PID; wait $PID 2>/dev/null || true; PID=; }
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' /proc/$PID/stat; } # the server's CPU seconds so far
mkdir -p "$D/native" "$D/bulk"
split -C 5M -d -a 4 "$CORPUS" "$D/native/c."
for f in "$D"/native/c.*; do awk '{print "{\"index\":{}}"; print}' "$f" > "$D/bulk/$(basename "$f")"; done
echo "corpus: $N events, $(du -b "$CORPUS" | cut -f1) bytes, $(ls "$D/native" | wc -l) bodies of ~5 MB"

echo "## 1. ~5 MB bodies, 4 connections (bench/post)"
for round in 1 2; do
  for route in native bulk bulk-fp; do
    serve
    path=/api/v1/load/ingest; [ $route = bulk ] && path=/load/_bulk
    # as Beats and Logstash send it: the answer trimmed to errors
    [ $route = bulk-fp ] && path='/load/_bulk?filter_path=errors,items.*.error,items.*.status'
    dir=$route; [ $route = bulk-fp ] && dir=bulk
    r=$(./bench/post -c 4 "$HP" "$path" "$D/$dir"/c.*)
    s=$(echo "$r" | sed 's/.*"seconds":\([0-9.]*\).*/\1/')
    cnt=$(curl -s "$U/api/v1/load/search?q=*&limit=0" | sed 's/.*"total":\([0-9]*\).*/\1/')
    echo "$route round $round: $(python3 -c "print('%.0f events/s' % ($N / $s))") ($s s, server CPU $(cpu) s; $cnt events stored) $r"
    halt
  done
done

echo "## 2. 100 clients, one event per request (wrk -t2 -c100 -d10s)"
for route in native bulk; do
  serve
  lua=bench/wrk/ingest1.lua; [ $route = bulk ] && lua=bench/wrk/es_bulk1.lua
  echo "$route:"; wrk -t2 -c100 -d10s -s "$lua" "$U" | grep -E 'Requests/sec|Non-2xx|Latency'
  halt
done

echo "## 3. a rare-term search, 1 connection (wrk -t1 -c1 -d10s --latency)"
serve
./bench/post -c 4 "$HP" /api/v1/load/ingest "$D"/native/c.* > /dev/null
curl -s "$U/api/v1/load/search?q=nidoze&limit=0" | grep -o '"total":[0-9]*'
for round in 1 2; do
  for route in native es; do
    lua=bench/wrk/rare.lua; [ $route = es ] && lua=bench/wrk/es_rare.lua
    echo "$route round $round:"; wrk -t1 -c1 -d10s --latency -s "$lua" "$U" | grep -E 'Requests/sec|Latency  |99%|Non-2xx'
  done
done
halt
