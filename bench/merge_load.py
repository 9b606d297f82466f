#!/usr/bin/env python3
"""bench/merge_load.py [--corpus FILE] [--seconds S] [--clients C]
What background merging costs the requests: runs `logdex serve` twice on a
fresh data directory -- with merging off (--no-merge) and on -- while C
clients ingest the corpus in 2000-event batches for S seconds and one client
searches without pause (a rotation of bench/queries.tsv's query texts).
Flushes are frequent (--flush-age 1) and buckets settle fast (--merge-settle
2), so merges run throughout the second run; with --now every event lands
in the current bucket, whose segments merge again and again.  Prints ingest events/s,
search median and p99 for both runs, the merges done, and the ratios."""
import argparse, re, http.client, json, os, statistics, subprocess, sys, tempfile, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--corpus", default="bench/out/corpus-2000000.ndjson")
ap.add_argument("--seconds", type=float, default=30)
ap.add_argument("--clients", type=int, default=2)
ap.add_argument("--logdex", default="./logdex")
ap.add_argument("--now", action="store_true",
                help="drop the events' @timestamp: everything lands in the current bucket, "
                     "whose segments then merge again and again (the hot-bucket case)")
a = ap.parse_args()

lines = []
with open(a.corpus, "rb") as f:
    for i, l in enumerate(f):
        if i >= 600000:
            break
        if a.now:
            l = re.sub(rb'"@timestamp":"[^"]*",?', b"", l)
        lines.append(l)
batches = [b"".join(lines[i:i + 2000]) for i in range(0, len(lines), 2000)]
queries = [l.split("\t")[2].strip() for l in open("bench/queries.tsv") if l.strip() and not l.startswith("#")]

def run(extra):
    d = tempfile.mkdtemp(prefix="logdex-mload-")
    p = subprocess.Popen([a.logdex, "serve", "--data", d, "--listen", "127.0.0.1:0", "--flush-age", "1",
                          "--merge-settle", "2"] + extra, stdout=subprocess.PIPE,
                         stderr=open(os.path.join(tempfile.gettempdir(), "merge_load.err"), "w"))
    u = urllib.parse.urlparse(p.stdout.readline().decode().split()[-1])
    stop = time.time() + a.seconds
    sent = [0] * a.clients
    lat = []
    def ingest(k):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        i = k
        while time.time() < stop:
            c.request("POST", "/api/v1/m/ingest", body=batches[i % len(batches)])
            r = json.loads(c.getresponse().read())
            sent[k] += r["accepted"] + r["duplicates"]
            i += a.clients
    def search():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        time.sleep(1)
        i = 0
        while time.time() < stop:
            q = urllib.parse.quote(queries[i % len(queries)])
            t0 = time.perf_counter()
            c.request("GET", f"/api/v1/m/search?q={q}&limit=20")
            c.getresponse().read()
            lat.append((time.perf_counter() - t0) * 1e3)
            i += 1
    th = [threading.Thread(target=ingest, args=(k,)) for k in range(a.clients)] + [threading.Thread(target=search)]
    t0 = time.time()
    for t in th: t.start()
    for t in th: t.join()
    secs = time.time() - t0
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("GET", "/metrics")
    m = c.getresponse().read().decode()
    merges = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("logdex_merges_total{"))
    segments = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("logdex_segments{"))
    p.terminate(); p.wait()
    subprocess.run(["rm", "-rf", d])
    lat.sort()
    return {"events_s": sum(sent) / secs, "search_median_ms": statistics.median(lat),
            "search_p99_ms": lat[int(0.99 * (len(lat) - 1))], "searches": len(lat), "merges": merges,
            "segments_at_end": segments}

off = run(["--no-merge"])
on = run([])
print("| | merging off | merging on | on/off |")
print("|---|---:|---:|---:|")
for k in ("events_s", "search_median_ms", "search_p99_ms", "searches", "merges", "segments_at_end"):
    r = on[k] / off[k] if off[k] else float("nan")
    print(f"| {k} | {off[k]:.1f} | {on[k]:.1f} | {r:.2f} |")
print(f"ingest throughput change: {100 * (on['events_s'] / off['events_s'] - 1):+.0f}% (target >= -25%); "
      f"search p99 ratio {on['search_p99_ms'] / off['search_p99_ms']:.2f} (target <= 2)")
