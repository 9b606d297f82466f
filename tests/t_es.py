#!/usr/bin/python3
# t_es.py -- the Elasticsearch-compatible API against a brute-force model
# (TAP).  A generated corpus (fixed times: nothing here reads the clock) is
# sent with the official Python client's bulk helper (gzip on); then every
# query form, aggregation, paging route (from/size, search_after,
# helpers.scan, scroll), _msearch as Grafana's data source builds it, the
# setup routes and the wire details real clients depend on are checked
# against what the model computes from the events sent.  DSL queries are
# also compared with the equal native query (/api/v1/.../search).
#
# Runs under /usr/bin/python3 (Debian's python3-elasticsearch); without that
# package the client checks are skipped and the HTTP ones still run.
import gzip
import http.client
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
import es_model as M  # noqa: E402

n = 0
failed = 0


def ok(cond, name, detail=None):
    global n, failed
    n += 1
    if cond:
        print("ok %d - %s" % (n, name))
    else:
        failed += 1
        print("not ok %d - %s" % (n, name))
        if detail is not None:
            for line in str(detail)[:3000].splitlines():
                print("# " + line)
    sys.stdout.flush()
    return cond


def is_(got, want, name):
    return ok(got == want, name, "got:      %r\nexpected: %r" % (got, want))


def skip(name, why):
    global n
    n += 1
    print("ok %d - %s # SKIP %s" % (n, name, why))


top = os.environ.get("top_builddir", ".")
binary = os.path.join(top, "logdex")
tmp = tempfile.mkdtemp(prefix="logdex-t-es-")
srv = subprocess.Popen([binary, "serve", "--data", tmp + "/d", "--listen", "127.0.0.1:0", "--quiet"],
                       stdout=subprocess.PIPE, stderr=open(tmp + "/err", "w"))
line = srv.stdout.readline().decode()
m = re.search(r"http://([0-9.]+):(\d+)", line)
if not m:
    print("Bail out! the server did not start: %r" % line)
    sys.exit(1)
HOST, PORT = m.group(1), int(m.group(2))
URL = "http://%s:%d" % (HOST, PORT)


def req(method, path, body=None, headers=None, raw=False):
    c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    if raw:
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    return r.status, (json.loads(data) if data and data[:1] in (b"{", b"[") else data)


try:
    events = M.corpus(2400, seed=7)
    es = None
    try:
        from elasticsearch import Elasticsearch, helpers
        es = Elasticsearch(URL, http_compress=True)
    except ImportError:
        pass

    # ---- ingest: the bulk helper (gzip), half the events with an _id ----
    def actions():
        for i, ev in enumerate(events):
            a = {"_index": "es-app" if i % 5 else "es-web", "_source": ev}
            if i % 2 == 0:
                a["_id"] = "e%d" % i
            if i % 7 == 0:
                a["_op_type"] = "create"
            yield a

    if es is not None:
        okc, errs = helpers.bulk(es, actions(), chunk_size=500)
        is_((okc, errs), (len(events), []), "helpers.bulk (gzip) stores every event")
        # again, those with an _id (ES too would store the others anew)
        again, errs = helpers.bulk(es, (a for a in actions() if "_id" in a), chunk_size=700, raise_on_error=False)
        dup_creates = sum(1 for i in range(len(events)) if i % 2 == 0 and i % 7 == 0)
        is_(len(errs), dup_creates, "a second bulk: create with a stored _id is a 409 per item, nothing else fails")
        ok(all(e.get("create", {}).get("status") == 409 for e in errs), "those items are 409 version conflicts", errs[:2])
    else:
        skip("helpers.bulk", "python3-elasticsearch not installed")
        lines = []
        for a in actions():
            meta = {"_index": a["_index"]}
            if "_id" in a:
                meta["_id"] = a["_id"]
            lines.append(json.dumps({a.get("_op_type", "index"): meta}))
            lines.append(json.dumps(a["_source"]))
        st, body = req("POST", "/_bulk", "\n".join(lines) + "\n", {"Content-Type": "application/x-ndjson"})
        is_((st, body.get("errors")), (200, False), "raw _bulk stores every event")
        for _ in range(3):
            pass

    app = [ev for i, ev in enumerate(events) if i % 5]
    web = [ev for i, ev in enumerate(events) if i % 5 == 0]
    both = events

    # ---- searches against the model: totals and the newest hits ----
    def check_search(index, query, model_events, pred, label, size=20, extra=None):
        body = {"query": query, "size": size, "track_total_hits": True}
        body.update(extra or {})
        st, r = req("POST", "/%s/_search" % index, body)
        want = M.newest([e for e in model_events if pred(e)])
        if not ok(st == 200, "%s: 200" % label, r):
            return None
        got_total = r["hits"]["total"]["value"]
        got = [h["_source"]["n"] for h in r["hits"]["hits"]]
        ok(got_total == len(want) and got == [e["n"] for e in want[:size]],
           "%s: total %d and the newest %d match the model" % (label, len(want), min(size, len(want))),
           "total %r vs %r; first %r vs %r" % (got_total, len(want), got[:8], [e["n"] for e in want[:8]]))
        return r

    for label, q, pred in M.query_cases():
        check_search("es-app", q, app, pred, label)
    check_search("es-*", {"match": {"msg": "timeout"}}, both, lambda e: "timeout" in M.toks(e["msg"]),
                 "index pattern es-* spans both indexes")
    check_search("es-app,es-web", {"match_all": {}}, both, lambda e: True, "a comma list of indexes")
    # _index of each hit
    st, r = req("POST", "/es-*/_search", {"size": 50})
    ok(all(h["_index"] == ("es-web" if h["_source"]["n"] % 5 == 0 else "es-app") for h in r["hits"]["hits"]),
       "each hit names its own index")

    # ---- time ranges (epoch_millis, RFC 3339, date math anchored to a date) ----
    lo, hi = M.BASE_MS + 3600 * 1000 * 3, M.BASE_MS + 3600 * 1000 * 9
    check_search("es-app", {"bool": {"filter": [{"range": {"@timestamp": {"gte": lo, "lte": hi, "format": "epoch_millis"}}}]}},
                 app, lambda e: lo <= M.ms(e) <= hi, "range on @timestamp, epoch_millis, gte/lte")
    check_search("es-app", {"range": {"@timestamp": {"gt": M.iso(lo), "lt": M.iso(hi)}}},
                 app, lambda e: lo < M.ms(e) < hi, "range on @timestamp, RFC 3339, gt/lt")
    day = M.iso(M.BASE_MS)[:10]
    check_search("es-app", {"range": {"@timestamp": {"gte": day + "||+6h", "lt": day + "||+1d/d"}}},
                 app, lambda e: M.BASE_MS + 6 * 3600000 <= M.ms(e) < M.BASE_MS + 86400000,
                 "range with date math on an anchor date (||+6h, /d)")
    st, r = req("POST", "/es-app/_search", {"query": {"bool": {"should": [{"range": {"@timestamp": {"gte": lo}}}]}}})
    ok(st == 400 and r["error"]["type"] == "query_shard_exception", "a time range under should is refused, not approximated", r)

    # ---- from/size, search_after, scroll, helpers.scan: every match once ----
    q = {"match": {"level": "error"}}
    want = [e["n"] for e in M.newest([e for e in app if e["level"] == "error"])]
    st, r = req("POST", "/es-app/_search", {"query": q, "from": 5, "size": 7})
    is_([h["_source"]["n"] for h in r["hits"]["hits"]], want[5:12], "from/size pages")
    seen, after = [], None
    while True:
        body = {"query": q, "size": 33, "sort": [{"@timestamp": "desc"}]}
        if after:
            body["search_after"] = after
        st, r = req("POST", "/es-app/_search", body)
        hits = r["hits"]["hits"]
        if not hits:
            break
        seen += [h["_source"]["n"] for h in hits]
        after = hits[-1]["sort"]
    is_(seen, want, "search_after walks every match once, newest first")
    seen, after = [], None
    while True:  # search_after with the time alone (as a client that kept only the ms)
        body = {"query": q, "size": 40, "sort": [{"@timestamp": "desc"}]}
        if after:
            body["search_after"] = [after[0]]
        st, r = req("POST", "/es-app/_search", body)
        hits = r["hits"]["hits"]
        if not hits:
            break
        seen += [h["_source"]["n"] for h in hits]
        after = hits[-1]["sort"]
    is_(seen, want, "search_after [ms] (distinct ms per event) walks every match once")
    st, r = req("POST", "/es-app/_search?scroll=1m", {"query": q, "size": 50})
    sid, seen = r.get("_scroll_id"), [h["_source"]["n"] for h in r["hits"]["hits"]]
    while True:
        st, r = req("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": sid})
        if st != 200 or not r["hits"]["hits"]:
            break
        sid = r["_scroll_id"]
        seen += [h["_source"]["n"] for h in r["hits"]["hits"]]
    is_(seen, want, "scroll walks every match once")
    st, r = req("DELETE", "/_search/scroll", {"scroll_id": [sid]})
    is_((st, r.get("succeeded")), (200, True), "DELETE scroll")
    if es is not None:
        got = sorted(h["_source"]["n"] for h in helpers.scan(es, index="es-app", query={"query": q}, size=64))
        is_(got, sorted(want), "helpers.scan returns every match once")
        r = es.count(index="es-app", body={"query": {"term": {"service.keyword": "web-frontend"}}})
        is_(r["count"], sum(1 for e in app if e["service"] == "web-frontend"), "client count")
        r = es.search(index="es-app", body={"query": {"match_phrase": {"msg": "payment declined"}}, "size": 5})
        is_(r["hits"]["total"]["value"], sum(1 for e in app if M.phrase(e["msg"], "payment declined")), "client search")
        r = es.msearch(body=[{"index": "es-app"}, {"query": {"match_all": {}}, "size": 0},
                             {"index": "es-web"}, {"query": {"match": {"level": "warn"}}, "size": 0}])
        is_([x["hits"]["total"]["value"] for x in r["responses"]],
            [len(app), sum(1 for e in web if e["level"] == "warn")], "client msearch")
        info = es.info()
        ok(info["version"]["number"].startswith("8.") and info["tagline"] == "You Know, for Search", "client info")
    else:
        for name in ("helpers.scan", "client count", "client search", "client msearch", "client info"):
            skip(name, "python3-elasticsearch not installed")

    # ---- _source filtering and fields ----
    st, r = req("POST", "/es-app/_search", {"size": 3, "_source": ["service", "user.*"]})
    ok(all(set(h["_source"]) <= {"service", "user"} and "id" in h["_source"].get("user", {"id": 0})
           for h in r["hits"]["hits"]), "_source includes (with a pattern)", r["hits"]["hits"][:1])
    st, r = req("POST", "/es-app/_search", {"size": 3, "_source": {"excludes": ["msg", "user.id"]}})
    ok(all("msg" not in h["_source"] and "id" not in h["_source"].get("user", {}) and "service" in h["_source"]
           for h in r["hits"]["hits"]), "_source excludes (nested too)", r["hits"]["hits"][:1])
    st, r = req("POST", "/es-app/_search", {"size": 2, "_source": False, "fields": ["service", "latency_ms"]})
    h = r["hits"]["hits"][0]
    want0 = M.newest(app)[0]
    ok("_source" not in h and h["fields"]["service"] == [want0["service"]] and
       ("latency_ms" not in want0 or h["fields"]["latency_ms"] == [want0["latency_ms"]]),
       "_source false with fields", h)
    big = {"@timestamp": M.iso(M.BASE_MS), "n": -1, "big": 9007199254740993, "f": 0.1, "s": "x"}
    st, r = req("PUT", "/es-raw/_doc/big1", json.dumps(big))
    is_(st, 201, "PUT _doc/{id}")
    st, hdrs, data = req("GET", "/es-raw/_search?_source_excludes=s", raw=True)
    ok(b'"big":9007199254740993' in data and b'"f":0.1' in data and b'"s"' not in data,
       "filtered _source keeps every value exactly as sent (integers past 2^53, 0.1)", data[:300])
    st, r = req("GET", "/es-raw/_doc/big1")
    is_((st, r.get("found"), r.get("_source", {}).get("n")), (200, True, -1), "GET _doc/{id}")
    st, r = req("GET", "/es-raw/_doc/nope")
    is_((st, r.get("found")), (404, False), "GET _doc of a missing id is 404 found:false")
    st, r = req("PUT", "/es-raw/_create/big1", json.dumps(big))
    is_((st, r["error"]["type"]), (409, "version_conflict_engine_exception"), "_create of a stored id is 409")
    st, r = req("PUT", "/es-raw/_doc/big1", json.dumps(big))
    is_((st, r.get("result")), (200, "noop"), "_doc again with a stored id: 200 noop (the first stays)")
    st, r = req("POST", "/es-raw/_doc", "{\n  \"@timestamp\": \"2024-05-01T00:00:00Z\",\n  \"pretty\": true\n}")
    is_((st, r.get("result")), (201, "created"), "POST _doc with a pretty-printed body")

    # ---- aggregations against the model ----
    for label, body, check in M.agg_cases(app):
        st, r = req("POST", "/es-app/_search", body)
        if st != 200:
            ok(False, label, r)
            continue
        good, detail = check(r["aggregations"])
        ok(good, label, detail)

    # ---- Grafana's data source: the _msearch bodies it sends ----
    for label, lines, check in M.grafana_cases(app):
        st, r = req("POST", "/_msearch", "\n".join(json.dumps(x) for x in lines) + "\n",
                    {"Content-Type": "application/x-ndjson"})
        if st != 200 or any(x.get("status") != 200 for x in r["responses"]):
            ok(False, label, r)
            continue
        good, detail = check(r["responses"])
        ok(good, label, detail)

    # ---- DSL and native queries agree (the same tree, the same hits) ----
    for dsl, native in M.native_pairs():
        st, a = req("POST", "/es-app/_search", {"query": dsl, "size": 30})
        st2, b = req("GET", "/api/v1/es-app/search?limit=30&q=" + M.quote(native))
        ok(st == 200 and st2 == 200 and a["hits"]["total"]["value"] == b["total"] and
           [h["_id"] for h in a["hits"]["hits"]] == [h["_id"] for h in b["hits"]],
           "DSL %s == native %r" % (json.dumps(dsl)[:60], native),
           "%r / %r" % (a.get("hits", {}).get("total"), b.get("total") if isinstance(b, dict) else b))

    # ---- mappings and field capabilities ----
    st, r = req("GET", "/es-app/_mapping")
    props = r["es-app"]["mappings"]["properties"]
    ok(props["@timestamp"]["type"] == "date" and props["service"]["type"] == "text" and
       props["service"]["fields"]["keyword"]["type"] == "keyword" and props["latency_ms"]["type"] == "long" and
       props["user"]["properties"]["id"]["type"] == "long", "_mapping types fields as ES's dynamic mapping would", props)
    st, r = req("GET", "/es-app/_field_caps?fields=*")
    f = r["fields"]
    ok(f["service.keyword"]["keyword"]["aggregatable"] and not f["service"]["text"]["aggregatable"] and
       f["@timestamp"]["date"]["searchable"], "_field_caps lists text, keyword and date fields")

    # ---- setup routes ----
    is_(req("HEAD", "/es-app")[0], 200, "HEAD an index that exists")
    is_(req("HEAD", "/es-none")[0], 404, "HEAD an index that does not")
    st, r = req("PUT", "/es-new", {"settings": {"number_of_shards": 1}, "mappings": {"properties": {}}})
    is_((st, r.get("acknowledged"), r.get("index")), (200, True, "es-new"), "PUT an index")
    st, r = req("PUT", "/es-new", {})
    is_((st, r["error"]["type"]), (400, "resource_already_exists_exception"), "PUT it again")
    st, r = req("GET", "/_cluster/health")
    is_((st, r["status"]), (200, "green"), "_cluster/health")
    st, r = req("GET", "/_cat/indices?format=json")
    cat = dict((x["index"], x["docs.count"]) for x in r)
    is_((cat.get("es-app"), cat.get("es-web")), (str(len(app)), str(len(web))), "_cat/indices counts")
    for path in ("/_index_template/t1", "/_template/t1", "/_ilm/policy/p1"):
        st, r = req("PUT", path, {"index_patterns": ["x-*"]})
        is_((st, r.get("acknowledged")), (200, True), "PUT %s acknowledged" % path)
    is_(req("POST", "/es-app/_refresh")[0], 200, "_refresh")

    # ---- errors in ES's shape ----
    st, r = req("POST", "/es-app/_search", {"query": {"nosuch": {}}})
    ok(st == 400 and r["error"]["type"] == "parsing_exception" and "nosuch" in r["error"]["reason"] and
       r["status"] == 400 and r["error"]["root_cause"][0]["type"] == "parsing_exception", "unknown query: parsing_exception", r)
    st, r = req("POST", "/es-app/_search", {"query": {"match_all": {}}, "bogus": 1})
    ok(st == 400 and "bogus" in r["error"]["reason"], "unknown body key is a 400 naming it", r)
    st, r = req("GET", "/es-app/_search?nosuch=1")
    ok(st == 400 and "nosuch" in r["error"]["reason"], "unknown parameter is a 400 naming it", r)
    st, r = req("GET", "/nope-*,missing/_search")
    ok(st == 404 and r["error"]["type"] == "index_not_found_exception", "a missing index: index_not_found_exception", r)
    st, r = req("GET", "/missing/_search?ignore_unavailable=true")
    ok(st == 200 and r["hits"]["total"]["value"] == 0, "ignore_unavailable: an empty answer")
    st, r = req("POST", "/es-app/_search", {"query": {"query_string": {"query": "level:(error"}}})
    ok(st == 400 and "position" in r["error"]["reason"], "a malformed query_string names the position", r)
    st, r = req("POST", "/es-app/_search", {"from": 9990, "size": 20})
    ok(st == 400 and "Result window is too large" in r["error"]["reason"], "from + size over 10,000", r)
    st, r = req("POST", "/es-app/_search", {"sort": [{"latency_ms": "asc"}, {"status": "desc"}]})
    ok(st == 400 and "not supported" in r["error"]["reason"], "a second sort key (a field) says it is not supported", r)

    # ---- sorted by a field or by time ascending, against the model, every page through search_after ----
    def sort_key(e, field, asc):
        v = e.get(field)
        return (v is None, 0 if v is None else (v if asc else -v), -M.ms(e) if field != "@timestamp" else M.ms(e))
    for field, order, q in (("latency_ms", "asc", None), ("latency_ms", "desc", "level:error"),
                            ("status", "desc", None), ("@timestamp", "asc", "service:cart"), ("n", "asc", "tags:eu")):
        asc = order == "asc"
        model = [e for e in app if q is None or M.any_tok(e, q.split(":")[1]) and
                 (q.split(":")[0] != "level" or e.get("level") == q.split(":")[1]) and
                 (q.split(":")[0] != "service" or e.get("service") == q.split(":")[1]) and
                 (q.split(":")[0] != "tags" or q.split(":")[1] in (e.get("tags") or []))]
        model.sort(key=lambda e: sort_key(e, field, asc))
        body = {"size": 50, "sort": [{field: order}]}
        if q:
            body["query"] = {"query_string": {"query": q}}
        got, after, pages = [], None, 0
        while True:
            b = dict(body)
            if after:
                b["search_after"] = after
            st, r = req("POST", "/es-app/_search", b)
            if st != 200:
                break
            hits = r["hits"]["hits"]
            pages += 1
            if not hits:
                break
            got += [h["_source"] for h in hits]
            after = hits[-1]["sort"]
        ok(st == 200 and [(sort_key(e, field, asc), e.get("n")) for e in got] ==
           [(sort_key(e, field, asc), e.get("n")) for e in model],
           "sort by %s %s%s: %d hits over %d pages in the model's order" % (field, order, " (%s)" % q if q else "",
                                                                              len(model), pages), (st, r if st != 200 else ""))

    # ---- wire behaviour ----
    st, h, data = req("GET", "/", raw=True)
    ok(st == 200 and h.get("x-elastic-product") == "Elasticsearch" and h.get("content-type", "").startswith("application/json"),
       "X-Elastic-Product and Content-Type on GET /", h)
    st, h, data = req("GET", "/es-nope/_search", raw=True)
    ok(st == 404 and h.get("x-elastic-product") == "Elasticsearch", "X-Elastic-Product on errors too", h)
    is_(req("HEAD", "/")[0], 200, "HEAD /")
    for ct in ("application/vnd.elasticsearch+json; compatible-with=8", "application/vnd.elasticsearch+json;compatible-with=7",
               "text/plain"):
        st, r = req("POST", "/es-app/_count", {"query": {"match_all": {}}}, {"Content-Type": ct, "Accept": ct})
        is_((st, r.get("count")), (200, len(app)), "_count with Content-Type %s" % ct)
    bulk = "".join('{"index":{"_index":"es-big"}}\n' + json.dumps({"@timestamp": M.iso(M.BASE_MS + i), "pad": "x" * 900, "k": i}) + "\n"
                   for i in range(2500))
    out = subprocess.run(["curl", "-s", "-XPOST", "-H", "Content-Type: application/x-ndjson", "--data-binary", "@-",
                          "-w", "\n%{http_code}", URL + "/_bulk"], input=bulk.encode(), capture_output=True)
    body, code = out.stdout.rsplit(b"\n", 1)
    ok(code == b"200" and json.loads(body)["errors"] is False and len(bulk) > 1 << 21,
       "a 2 MB _bulk through curl (Expect: 100-continue)", out.stdout[-200:])
    gz = gzip.compress(('{"index":{}}\n{"@timestamp":"2024-05-01T00:00:00Z","g":1}\n\n\n{ "index" : { "_id" : "sp1" } }\n{"g":2}\n').encode())
    st, r = req("POST", "/es-gz/_bulk", gz, {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    ok(st == 200 and not r["errors"] and len(r["items"]) == 2 and r["items"][1]["index"]["_id"] == "sp1",
       "gzip _bulk with blank lines and metadata with spaces, _index from the path", r)
    st, r = req("POST", "/_bulk", '{"index":{"_index":"es-gz"}}\n{"_id":"in-source","x":1}\n{"index":{"_index":"es-gz"}}\n{"x":\n',
                {"Content-Type": "application/x-ndjson"})
    ok(st == 200 and r["errors"] and [i["index"]["status"] for i in r["items"]] == [400, 400] and
       r["items"][0]["index"]["error"]["type"] == "document_parsing_exception",
       "bad documents are their items' 400s and the batch answers 200", r)
    fpb = '{"index":{"_index":"es-fp"}}\n{"a":1}\n{"create":{"_index":"es-fp","_id":"x"}}\n{"a":2}\n{"create":{"_index":"es-fp","_id":"x"}}\n{"a":3}\n'
    st, r = req("POST", "/_bulk?filter_path=errors,items.*.error,items.*.status", fpb, {"Content-Type": "application/x-ndjson"})
    ok(st == 200 and r == {"errors": True, "items": [{"index": {"status": 201}}, {"create": {"status": 201}},
                                                      {"create": {"status": 409, "error": r["items"][2]["create"].get("error")}}]}
       and r["items"][2]["create"]["error"]["type"] == "version_conflict_engine_exception",
       "_bulk with Beats' filter_path keeps errors and each item's status and error only", r)
    st, r = req("POST", "/_bulk?filter_path=items.*.error", fpb.replace('"x"', '"y"'), {"Content-Type": "application/x-ndjson"})
    ok(st == 200 and list(r) == ["items"] and len(r["items"]) == 1 and "error" in r["items"][0]["create"],
       "filter_path items.*.error: only the failed items", r)
    st, r = req("POST", "/_bulk", 'this is not bulk\n', {"Content-Type": "application/x-ndjson"})
    ok(st == 400 and r["error"]["type"] == "illegal_argument_exception", "a body that is not bulk is a 400", r)
    # keep-alive: several requests on one connection
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    codes = []
    for i in range(3):
        c.request("GET", "/es-app/_count")
        rr = c.getresponse()
        rr.read()
        codes.append(rr.status)
    c.close()
    is_(codes, [200, 200, 200], "keep-alive: three requests on one connection")
finally:
    srv.terminate()
    try:
        srv.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
    err = open(tmp + "/err").read()
    if "Sanitizer" in err:
        ok(False, "server stderr clean", err[-3000:])
    subprocess.run(["rm", "-rf", tmp])

print("1..%d" % n)
sys.exit(1 if failed else 0)
