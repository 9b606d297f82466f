#!/bin/bash
# bench/core.sh [--events N] [--out DIR]: logdex's own figures, one command.
# Generates N events (default 2,000,000) with bench/gen, ingests them with
# one and two builder threads (wall time, MB/s, peak RSS), reports the size
# on disk and runs bench/queries.tsv with bench/qbench (median and p95 of 15
# runs, warm, in one process) after ingest and again once every bucket is
# settled (`logdex compact`), and times aggregations (median of 5 runs of
# `logdex agg`, each a fresh process).  Never part of `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000000; OUT=bench/out
while [ $# -gt 0 ]; do case $1 in --events) N=$2; shift 2;; --out) OUT=$2; shift 2;; *) echo "usage: $0 [--events N] [--out DIR]"; exit 2;; esac; done
make -s bench >/dev/null
mkdir -p "$OUT"
CORPUS="$OUT/corpus-$N.ndjson"
[ -s "$CORPUS" ] || ./bench/gen --events "$N" > "$CORPUS"
RAW=$(stat -c %s "$CORPUS")
echo "corpus: $N events, $RAW bytes ($(( RAW / N )) bytes/event)"
for th in 1 2; do
  rm -rf "$OUT/data"
  /usr/bin/time -f "%e %M" -o "$OUT/time" ./logdex ingest --quiet --threads $th --data "$OUT/data" "$CORPUS" > /dev/null
  read -r secs rss < "$OUT/time"
  echo "ingest, $th builder thread(s): $secs s, $(echo "$RAW / 1048576 / $secs" | bc -l | cut -c1-5) MB/s, peak RSS $((rss / 1024)) MB"
done
on_disk() {
  BYTES=$(./logdex stats --data "$OUT/data" | grep -o '"bytes":[0-9]*' | head -1 | cut -d: -f2)
  echo "on disk $1: $BYTES bytes = $(echo "$BYTES / $RAW" | bc -l | cut -c1-5) x raw"
}
queries() {
  echo "queries (ms), $1:"
  ./bench/qbench --data "$OUT/data" --runs 15 bench/queries.tsv | sed 's/^/  /'
}
on_disk "after ingest"
queries "after ingest"
# settle every bucket, as the server does once a bucket gets no new events
# (merges, events recompressed for size)
/usr/bin/time -f "%e %M" -o "$OUT/time" ./logdex compact --data "$OUT/data" > "$OUT/compact.json"
read -r secs rss < "$OUT/time"
echo "compact (settle every bucket): $secs s, peak RSS $((rss / 1024)) MB: $(cat "$OUT/compact.json")"
on_disk "settled"
./logdex stats --data "$OUT/data"
queries "settled"
echo "aggregations (ms, median of 5 fresh processes, settled):"
while IFS=$'\t' read -r name body; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  for i in 1 2 3 4 5; do ./logdex agg --data "$OUT/data" "$body" | grep -o '"took_ms":[0-9.]*' | cut -d: -f2; done | sort -n | sed -n 3p | sed "s/^/  $name: /"
done < bench/aggs.tsv
