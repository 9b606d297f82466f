#!/bin/bash
# bench/lifecycle.sh [--events N] [--flushes F] [--out DIR]: what merging buys.
# Loads the same N events (default 2,000,000, bench/gen) twice: in one bulk
# ingest, and in F small flushes (default 10,000: `ingest --flush-every
# N/F`), then settles the second store with `logdex compact` and compares
# bench/queries.tsv on both (qbench: median of 15 warm runs each), before
# and after compaction (the lowest of three interleaved medians per query).
# Prints a table: query, bulk ms, small-flush ms
# before and after compaction, and the after/bulk ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000000; F=10000; OUT=bench/out
while [ $# -gt 0 ]; do case $1 in --events) N=$2; shift 2;; --flushes) F=$2; shift 2;; --out) OUT=$2; shift 2;;
  *) echo "usage: $0 [--events N] [--flushes F] [--out DIR]"; exit 2;; esac; done
make -s bench >/dev/null
mkdir -p "$OUT"
CORPUS="$OUT/corpus-$N.ndjson"
[ -s "$CORPUS" ] || ./bench/gen --events "$N" > "$CORPUS"
rm -rf "$OUT/lc-bulk" "$OUT/lc-small"
t0=$(date +%s.%N)
./logdex ingest --quiet --data "$OUT/lc-bulk" "$CORPUS" > /dev/null
t1=$(date +%s.%N)
./logdex ingest --quiet --flush-every $((N / F)) --data "$OUT/lc-small" "$CORPUS" > /dev/null
t2=$(date +%s.%N)
seg() { ./logdex stats --data "$1" | grep -o '"segments":[0-9]*' | head -1 | cut -d: -f2; }
echo "bulk ingest: $(echo "$t1 - $t0" | bc | cut -c1-6) s, $(seg "$OUT/lc-bulk") segments"
echo "$F small flushes: $(echo "$t2 - $t1" | bc | cut -c1-6) s, $(seg "$OUT/lc-small") segments"
# three interleaved qbench runs per store; per query the lowest median
# counts (the machines are noisy; interleaving spreads the noise evenly)
: > "$OUT/lc-bulk.json"
for r in 1 2 3; do
  ./bench/qbench --data "$OUT/lc-bulk" --runs 15 bench/queries.tsv >> "$OUT/lc-bulk.json"
  [ $r = 1 ] && ./bench/qbench --data "$OUT/lc-small" --runs 15 bench/queries.tsv > "$OUT/lc-before.json"
done
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$OUT/lc-time" ./logdex compact --data "$OUT/lc-small" > "$OUT/lc-compact.json"
echo "compact: $(cat "$OUT/lc-compact.json") ($(cat "$OUT/lc-time"))"
: > "$OUT/lc-after.json"
for r in 1 2 3; do
  ./bench/qbench --data "$OUT/lc-small" --runs 15 bench/queries.tsv >> "$OUT/lc-after.json"
  ./bench/qbench --data "$OUT/lc-bulk" --runs 15 bench/queries.tsv >> "$OUT/lc-bulk.json"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def load(n):
    best = {}
    for r in map(json.loads, open(f"{out}/{n}.json")):
        if r["name"] not in best or r["median_ms"] < best[r["name"]]["median_ms"]:
            best[r["name"]] = r
    return best
b, x, a = load("lc-bulk"), load("lc-before"), load("lc-after")
print("| query | bulk ms | small flushes ms | after compact ms | after/bulk |")
print("|---|---:|---:|---:|---:|")
worst = 0
for k in b:
    if b[k]["total"] != a[k]["total"] or b[k]["total"] != x[k]["total"]:
        print(f"COUNT MISMATCH {k}: bulk {b[k]['total']} before {x[k]['total']} after {a[k]['total']}")
    r = a[k]["median_ms"] / max(b[k]["median_ms"], 1e-3)
    worst = max(worst, r)
    print(f"| {k} | {b[k]['median_ms']:.3f} | {x[k]['median_ms']:.3f} | {a[k]['median_ms']:.3f} | {r:.2f} |")
print(f"worst after/bulk ratio: {worst:.2f} (target <= 1.5)")
PY
