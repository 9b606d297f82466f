#!/usr/bin/env python3
"""bench/tail_delay.py URL [N] -- delay from an ingest answer to the event's
arrival at a live tail client (the server must be running at URL, e.g.
http://127.0.0.1:9200).  Sends N one-event ingests one after another and
prints the median and p99 delay in ms."""
import http.client, json, statistics, sys, threading, time, urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
arrived, answered = {}, {}
ready = threading.Event()

def reader():
    c = http.client.HTTPConnection(url.hostname, url.port)
    c.request("GET", "/api/v1/taildelay/tail?q=probe&heartbeat=1")
    r = c.getresponse()
    ready.set()
    while len(arrived) < n:
        line = r.fp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            src = json.loads(line[6:])["_source"]
            arrived[src["k"]] = time.perf_counter()

c = http.client.HTTPConnection(url.hostname, url.port)
c.request("POST", "/api/v1/taildelay/ingest", body=b'{"msg":"warm-up"}\n')
c.getresponse().read()
t = threading.Thread(target=reader, daemon=True)
t.start()
ready.wait(5)
time.sleep(0.2)
for k in range(n):
    c.request("POST", "/api/v1/taildelay/ingest", body=json.dumps({"msg": "probe", "k": k}).encode() + b"\n")
    c.getresponse().read()
    answered[k] = time.perf_counter()
    time.sleep(0.005)
t.join(10)
d = sorted((arrived[k] - answered[k]) * 1e3 for k in answered if k in arrived)
print(f"{len(d)} of {n} events arrived; delay after the ingest answer: median {statistics.median(d):.2f} ms, "
      f"p99 {d[min(len(d) - 1, int(0.99 * (len(d) - 1)))]:.2f} ms, max {d[-1]:.2f} ms")
