# es_model.py -- the brute-force model behind tests/t_es.py: a generated
# corpus with fixed times, and for each query, aggregation and Grafana
# request the answer computed directly from the events (no engine).
#
# Tokens: the corpus is ASCII, so a token is a run of [a-z0-9] after
# lower-casing (what logdex's tokenizer gives for such text).
import json
import math
import random
import re
import urllib.parse

BASE_MS = 1714521600000  # 2024-05-01T00:00:00Z
STEP_MS = 37113

SERVICES = ["checkout", "auth", "cart", "web-frontend", "billing"]
LEVELS = ["info", "info", "info", "warn", "error", "debug"]
WORDS = ["payment", "declined", "login", "failed", "timeout", "order", "created", "cache", "miss", "disk",
         "full", "retry", "slow", "query", "paypal", "tiny"]
HOSTS = ["web-01", "web-02", "db-01"]
TAGS = ["eu", "us", "security", "beta"]


def ms(e):
    return BASE_MS + e["n"] * STEP_MS + (e["n"] * 7919) % 1000


def iso(t):
    import datetime
    d = datetime.datetime.fromtimestamp(t / 1000.0, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t % 1000)


def corpus(count, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        e = {"@timestamp": None, "n": i, "service": rnd.choice(SERVICES), "level": rnd.choice(LEVELS),
             "msg": " ".join(rnd.sample(WORDS, rnd.randint(2, 4))), "status": rnd.choice([200, 200, 200, 404, 500, 503]),
             "host": rnd.choice(HOSTS), "user": {"id": rnd.randint(1, 50)}}
        e["@timestamp"] = iso(ms(e))
        if rnd.random() < 0.9:
            e["latency_ms"] = rnd.randint(1, 2000)
        if rnd.random() < 0.3:
            e["tags"] = rnd.sample(TAGS, rnd.randint(1, 2))
        out.append(e)
    return out


def toks(s):
    return re.findall(r"[a-z0-9]+", str(s).lower())


def phrase(s, p):
    t, q = toks(s), toks(p)
    return any(t[i:i + len(q)] == q for i in range(len(t) - len(q) + 1))


def newest(evs):
    return sorted(evs, key=lambda e: -ms(e))


def quote(s):
    return urllib.parse.quote(s, safe="")


def any_tok(e, w):
    """w is a token of some string value of e (any field)."""
    def walk(v):
        if isinstance(v, str):
            return w in toks(v)
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False
    return walk(e)


def query_cases():
    lat = lambda e, lo, hi: "latency_ms" in e and lo <= e["latency_ms"] < hi
    return [
        ("match_all", {"match_all": {}}, lambda e: True),
        ("term on FIELD.keyword: the whole value", {"term": {"service.keyword": "web-frontend"}},
         lambda e: e["service"] == "web-frontend"),
        ("term on a text field: one token", {"term": {"level": "error"}}, lambda e: e["level"] == "error"),
        ("term on a text field is case-sensitive, as in ES", {"term": {"service": "Checkout"}}, lambda e: False),
        ("term with {value}", {"term": {"host.keyword": {"value": "db-01"}}}, lambda e: e["host"] == "db-01"),
        ("terms on a number", {"terms": {"status": [500, 503]}}, lambda e: e["status"] in (500, 503)),
        ("terms on keywords", {"terms": {"service.keyword": ["auth", "cart", "nope"]}},
         lambda e: e["service"] in ("auth", "cart")),
        ("match (OR)", {"match": {"msg": "payment timeout"}},
         lambda e: "payment" in toks(e["msg"]) or "timeout" in toks(e["msg"])),
        ("match operator and", {"match": {"msg": {"query": "payment timeout", "operator": "and"}}},
         lambda e: "payment" in toks(e["msg"]) and "timeout" in toks(e["msg"])),
        ("match minimum_should_match 100%", {"match": {"msg": {"query": "retry slow", "minimum_should_match": "100%"}}},
         lambda e: "retry" in toks(e["msg"]) and "slow" in toks(e["msg"])),
        ("match on a number", {"match": {"status": 404}}, lambda e: e["status"] == 404),
        ("match_phrase", {"match_phrase": {"msg": "payment declined"}}, lambda e: phrase(e["msg"], "payment declined")),
        ("query_string AND of fields", {"query_string": {"query": "level:error AND service:checkout"}},
         lambda e: e["level"] == "error" and e["service"] == "checkout"),
        ("query_string Lucene clauses: optional and excluded", {"query_string": {"query": "payment -timeout"}},
         lambda e: any_tok(e, "payment") and not any_tok(e, "timeout")),
        ("query_string OR by default", {"query_string": {"query": "paypal tiny"}},
         lambda e: any_tok(e, "paypal") or any_tok(e, "tiny")),
        ("query_string required +", {"query_string": {"query": "+paypal tiny"}}, lambda e: any_tok(e, "paypal")),
        ("query_string default_operator AND", {"query_string": {"query": "paypal tiny", "default_operator": "AND"}},
         lambda e: any_tok(e, "paypal") and any_tok(e, "tiny")),
        ("query_string field group", {"query_string": {"query": "status:(500 OR 503)"}}, lambda e: e["status"] in (500, 503)),
        ("query_string _exists_", {"query_string": {"query": "_exists_:tags"}}, lambda e: "tags" in e),
        ("query_string default_field", {"query_string": {"query": "error warn", "default_field": "level"}},
         lambda e: e["level"] in ("error", "warn")),
        ("query_string FIELD.keyword:value", {"query_string": {"query": "service.keyword:\"web-frontend\""}},
         lambda e: e["service"] == "web-frontend"),
        ("query_string range", {"query_string": {"query": "latency_ms:[100 TO 499]"}}, lambda e: lat(e, 100, 500)),
        ("query_string * (Grafana's empty query)", {"query_string": {"query": "*", "analyze_wildcard": True}},
         lambda e: True),
        ("simple_query_string |", {"simple_query_string": {"query": "paypal | tiny"}},
         lambda e: any_tok(e, "paypal") or any_tok(e, "tiny")),
        ("range on a number", {"range": {"latency_ms": {"gte": 100, "lt": 500}}}, lambda e: lat(e, 100, 500)),
        ("range from/to (older spelling)", {"range": {"latency_ms": {"from": 100, "to": 500, "include_upper": False}}},
         lambda e: lat(e, 100, 500)),
        ("range on a nested field", {"range": {"user.id": {"gt": 45}}}, lambda e: e["user"]["id"] > 45),
        ("exists", {"exists": {"field": "tags"}}, lambda e: "tags" in e),
        ("exists on FIELD.keyword", {"exists": {"field": "latency_ms"}}, lambda e: "latency_ms" in e),
        ("prefix", {"prefix": {"msg": "pay"}}, lambda e: any(t.startswith("pay") for t in toks(e["msg"]))),
        ("wildcard with a trailing *", {"wildcard": {"host": {"value": "db*"}}}, lambda e: e["host"] == "db-01"),
        ("wildcard with a leading *", {"wildcard": {"msg": {"value": "*out"}}},
         lambda e: any(t.endswith("out") for t in toks(e["msg"]))),
        ("wildcard with ? and an infix *", {"wildcard": {"msg": "p?y*nt"}},
         lambda e: any(len(t) >= 5 and t[0] == "p" and t[2] == "y" and t.endswith("nt") for t in toks(e["msg"]))),
        ("query_string with a leading wildcard", {"query_string": {"query": "msg:*isk"}},
         lambda e: any(t.endswith("isk") for t in toks(e["msg"]))),
        ("regexp", {"regexp": {"msg": {"value": "pay(ment|pal)"}}},
         lambda e: any(t in ("payment", "paypal") for t in toks(e["msg"]))),
        ("query_string with a /regex/", {"query_string": {"query": "msg:/t[a-z]*t/"}},
         lambda e: any(len(t) >= 2 and t[0] == "t" and t[-1] == "t" and t.isalpha() for t in toks(e["msg"]))),
        ("bool must, filter, must_not",
         {"bool": {"must": [{"match": {"level": "error"}}], "filter": {"term": {"service.keyword": "checkout"}},
                   "must_not": [{"exists": {"field": "tags"}}]}},
         lambda e: e["level"] == "error" and e["service"] == "checkout" and "tags" not in e),
        ("bool should, minimum_should_match 2 of 3",
         {"bool": {"should": [{"term": {"level.keyword": "error"}}, {"term": {"service.keyword": "cart"}},
                              {"range": {"latency_ms": {"gte": 500}}}], "minimum_should_match": 2}},
         lambda e: (e["level"] == "error") + (e["service"] == "cart") + (e.get("latency_ms", -1) >= 500) >= 2),
        ("bool filter with should, minimum_should_match 66%",
         {"bool": {"filter": [{"exists": {"field": "latency_ms"}}],
                   "should": [{"match": {"msg": "payment"}}, {"match": {"msg": "timeout"}}, {"match": {"msg": "disk"}}],
                   "minimum_should_match": "66%"}},
         lambda e: "latency_ms" in e and sum(w in toks(e["msg"]) for w in ("payment", "timeout", "disk")) >= 1),
        ("bool should alone (one must match)",
         {"bool": {"should": [{"term": {"level.keyword": "error"}}, {"term": {"level.keyword": "warn"}}]}},
         lambda e: e["level"] in ("error", "warn")),
        ("bool should beside filter: no effect without minimum_should_match",
         {"bool": {"filter": [{"term": {"host.keyword": "db-01"}}], "should": [{"term": {"level.keyword": "error"}}]}},
         lambda e: e["host"] == "db-01"),
        ("bool should with minimum_should_match 1",
         {"bool": {"filter": [{"term": {"host.keyword": "db-01"}}], "should": [{"term": {"level.keyword": "error"}}],
                   "minimum_should_match": 1}},
         lambda e: e["host"] == "db-01" and e["level"] == "error"),
        ("bool nested in bool",
         {"bool": {"must": [{"bool": {"should": [{"match": {"msg": "disk"}}, {"match": {"msg": "cache"}}]}}],
                   "must_not": {"bool": {"filter": [{"term": {"status": 200}}]}}}},
         lambda e: (any_tok(e, "disk") or any_tok(e, "cache")) and e["status"] != 200),
        ("ids", {"ids": {"values": ["e2", "e4", "e12", "nope"]}}, lambda e: e["n"] in (2, 4, 12)),
        ("multi_match", {"multi_match": {"query": "error", "fields": ["level", "msg^2"]}},
         lambda e: e["level"] == "error" or "error" in toks(e["msg"])),
        ("term on a nested number", {"term": {"user.id": 7}}, lambda e: e["user"]["id"] == 7),
        ("constant_score", {"constant_score": {"filter": {"term": {"host.keyword": "db-01"}}, "boost": 2}},
         lambda e: e["host"] == "db-01"),
        ("dis_max", {"dis_max": {"queries": [{"match": {"msg": "paypal"}}, {"match": {"level": "debug"}}]}},
         lambda e: "paypal" in toks(e["msg"]) or e["level"] == "debug"),
        ("match_none", {"match_none": {}}, lambda e: False),
    ]


def native_pairs():
    return [
        ({"match": {"msg": "payment"}}, "msg:payment"),
        ({"match_phrase": {"msg": "payment declined"}}, 'msg:"payment declined"'),
        ({"bool": {"must": [{"term": {"level": "error"}}], "must_not": [{"match": {"service": "auth"}}]}},
         "level:error -service:auth"),
        ({"range": {"latency_ms": {"gte": 100, "lte": 200}}}, "latency_ms:[100 TO 200]"),
        ({"exists": {"field": "tags"}}, "tags:*"),
        ({"prefix": {"msg": "tim"}}, "msg:tim*"),
        ({"query_string": {"query": "status:(500 OR 503) AND level:error"}}, "status:(500 OR 503) AND level:error"),
        ({"terms": {"status": [404, 503]}}, "status:404 OR status:503"),
        ({"match_all": {}}, "*"),
    ]


# ---- aggregations ----

def hist(evs, iv, lo=None, hi=None, min_doc_count=0):
    """ES date_histogram: {key_ms: count} from the data's first to last
    bucket, extended to [lo, hi] (ms) when given."""
    keys = [ms(e) // iv * iv for e in evs]
    cnt = {}
    for k in keys:
        cnt[k] = cnt.get(k, 0) + 1
    if not cnt and lo is None:
        return []
    a = min(cnt) if cnt else lo // iv * iv
    b = max(cnt) if cnt else hi // iv * iv
    if lo is not None:
        a, b = min(a, lo // iv * iv), max(b, hi // iv * iv)
    out = [(k, cnt.get(k, 0)) for k in range(a, b + 1, iv)]
    return [x for x in out if x[1] >= min_doc_count]


def buckets_of(agg):
    return [(b["key"], b["doc_count"]) for b in agg["buckets"]]


def top_terms(values, size, order="count"):
    cnt = {}
    for v in values:
        cnt[v] = cnt.get(v, 0) + 1
    if order == "count":
        items = sorted(cnt.items(), key=lambda kv: (-kv[1], str(kv[0]) if isinstance(kv[0], str) else kv[0]))
    else:
        items = sorted(cnt.items(), key=lambda kv: kv[0])
    return items[:size], sum(c for _, c in items[size:])


def close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def stats(vals):
    if not vals:
        return {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
    return {"count": len(vals), "min": min(vals), "max": max(vals), "avg": sum(vals) / len(vals), "sum": float(sum(vals))}


def agg_cases(app):
    H = 3600 * 1000
    lats = [e["latency_ms"] for e in app if "latency_ms" in e]
    cases = []

    def c(label, body, check):
        cases.append((label, body, check))

    want = hist(app, H)
    c("date_histogram 1h, min_doc_count 0: every bucket between the data's ends",
      {"size": 0, "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h", "min_doc_count": 0}}}},
      lambda a: (buckets_of(a["h"]) == want, (buckets_of(a["h"])[:3], want[:3])))
    lo, hi = BASE_MS + 5 * H + 123, BASE_MS + 9 * H + 456
    sub = [e for e in app if lo <= ms(e) <= hi]
    want2 = hist(sub, H, lo - 2 * H, hi + 2 * H)
    c("date_histogram with extended_bounds past the query's range",
      {"size": 0, "query": {"range": {"@timestamp": {"gte": lo, "lte": hi, "format": "epoch_millis"}}},
       "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h", "min_doc_count": 0,
                                         "extended_bounds": {"min": lo - 2 * H, "max": hi + 2 * H}}}}},
      lambda a: (buckets_of(a["h"]) == want2, (buckets_of(a["h"]), want2)))
    want3 = hist(app, 600000, min_doc_count=1)
    c("date_histogram 10m with min_doc_count 1 and key_as_string",
      {"size": 0, "aggs": {"h": {"date_histogram": {"field": "@timestamp", "interval": "10m", "min_doc_count": 1}}}},
      lambda a: (buckets_of(a["h"]) == want3 and a["h"]["buckets"][0]["key_as_string"] == iso(want3[0][0]),
                 (buckets_of(a["h"])[:3], want3[:3])))
    top, other = top_terms([e["service"] for e in app], 3)
    c("terms size 3 with sum_other_doc_count",
      {"size": 0, "aggs": {"t": {"terms": {"field": "service.keyword", "size": 3}}}},
      lambda a: (buckets_of(a["t"]) == top and a["t"]["sum_other_doc_count"] == other, (a["t"], top, other)))
    topk, _ = top_terms([e["status"] for e in app], 10, order="key")
    c("terms on a number ordered by _key",
      {"size": 0, "aggs": {"t": {"terms": {"field": "status", "order": {"_key": "asc"}}}}},
      lambda a: ([(b["key"], b["doc_count"]) for b in a["t"]["buckets"]] == topk, (a["t"], topk)))
    avg_by = {}
    for s in SERVICES:
        v = [e["latency_ms"] for e in app if e["service"] == s and "latency_ms" in e]
        avg_by[s] = sum(v) / len(v)
    order = sorted(SERVICES, key=lambda s: -avg_by[s])
    c("terms ordered by a sub-aggregation (avg desc)",
      {"size": 0, "aggs": {"t": {"terms": {"field": "service.keyword", "order": {"a": "desc"}},
                                 "aggs": {"a": {"avg": {"field": "latency_ms"}}}}}},
      lambda a: ([b["key"] for b in a["t"]["buckets"]] == order and
                 all(close(b["a"]["value"], avg_by[b["key"]]) for b in a["t"]["buckets"]), (a["t"], order)))
    st = stats(lats)
    c("avg, min, max, sum, value_count, stats",
      {"size": 0, "aggs": {"avg": {"avg": {"field": "latency_ms"}}, "min": {"min": {"field": "latency_ms"}},
                           "max": {"max": {"field": "latency_ms"}}, "sum": {"sum": {"field": "latency_ms"}},
                           "vc": {"value_count": {"field": "latency_ms"}}, "st": {"stats": {"field": "latency_ms"}}}},
      lambda a: (close(a["avg"]["value"], st["avg"]) and a["min"]["value"] == st["min"] and
                 a["max"]["value"] == st["max"] and close(a["sum"]["value"], st["sum"]) and
                 a["vc"]["value"] == st["count"] and a["st"]["count"] == st["count"] and
                 close(a["st"]["avg"], st["avg"]), (a, st)))
    c("metrics over no value: null (sum 0)",
      {"size": 0, "query": {"match_none": {}}, "aggs": {"avg": {"avg": {"field": "latency_ms"}},
                                                       "sum": {"sum": {"field": "latency_ms"}}}},
      lambda a: (a["avg"]["value"] is None and a["sum"]["value"] == 0, a))
    users = len(set(e["user"]["id"] for e in app))
    c("cardinality",
      {"size": 0, "aggs": {"c": {"cardinality": {"field": "user.id"}}}},
      lambda a: (abs(a["c"]["value"] - users) <= max(1, users // 100), (a["c"], users)))
    lo_k, hi_k = (min(lats) // 100) * 100, (max(lats) // 100) * 100
    hwant = [(float(k), sum(1 for v in lats if k <= v < k + 100)) for k in range(int(lo_k), int(hi_k) + 1, 100)]
    c("histogram interval 100: every bucket between the data's ends, keys as doubles",
      {"size": 0, "aggs": {"h": {"histogram": {"field": "latency_ms", "interval": 100}}}},
      lambda a: ([(b["key"], b["doc_count"]) for b in a["h"]["buckets"]] == hwant, (a["h"]["buckets"][:3], hwant[:3])))
    hwant2 = [(k, n) for k, n in [(float(k) + 50, sum(1 for e in app if e["level"] == "error" and "latency_ms" in e
                                                        and k + 50 <= e["latency_ms"] < k + 250))
                                  for k in range(int(lo_k) - 200, int(hi_k) + 200, 200)] if n >= 1]
    c("histogram with offset, min_doc_count 1 and a sub-aggregation",
      {"size": 0, "query": {"term": {"level": "error"}},
       "aggs": {"h": {"histogram": {"field": "latency_ms", "interval": 200, "offset": 50, "min_doc_count": 1},
                      "aggs": {"m": {"max": {"field": "latency_ms"}}}}}},
      lambda a: ([(b["key"], b["doc_count"]) for b in a["h"]["buckets"]] == hwant2 and
                 all(b["key"] <= b["m"]["value"] < b["key"] + 200 for b in a["h"]["buckets"]),
                 (a["h"]["buckets"][:3], hwant2[:3])))
    srt = sorted(lats)

    def pct_ok(a):
        for p in (50, 95, 99):
            exact = srt[int(math.floor(p / 100.0 * (len(srt) - 1)))]
            got = a["p"]["values"]["%.1f" % p]
            if abs(got - exact) > 0.006 * exact + 1e-9:
                return False, (p, got, exact)
        return True, None
    c("percentiles (within the sketch's 0.5%)",
      {"size": 0, "aggs": {"p": {"percentiles": {"field": "latency_ms", "percents": [50, 95, 99]}}}}, pct_ok)
    errs = [e for e in app if e["level"] == "error"]
    et, _ = top_terms([e["service"] for e in errs], 10)
    c("filter with a terms sub-aggregation",
      {"size": 0, "aggs": {"f": {"filter": {"term": {"level.keyword": "error"}},
                                 "aggs": {"s": {"terms": {"field": "service.keyword"}}}}}},
      lambda a: (a["f"]["doc_count"] == len(errs) and buckets_of(a["f"]["s"]) == et, (a["f"], len(errs), et)))
    ne = sum(1 for e in app if e["level"] == "error")
    nw = sum(1 for e in app if e["level"] == "warn")
    c("filters keyed, with other_bucket",
      {"size": 0, "aggs": {"f": {"filters": {"filters": {"e": {"match": {"level": "error"}}, "w": {"match": {"level": "warn"}}},
                                             "other_bucket_key": "rest"}}}},
      lambda a: ((a["f"]["buckets"]["e"]["doc_count"], a["f"]["buckets"]["w"]["doc_count"],
                  a["f"]["buckets"]["rest"]["doc_count"]) == (ne, nw, len(app) - ne - nw), a["f"]))
    r1 = sum(1 for v in lats if v < 100)
    r2 = sum(1 for v in lats if 100 <= v < 500)
    r3 = sum(1 for v in lats if v >= 500)
    c("range",
      {"size": 0, "aggs": {"r": {"range": {"field": "latency_ms", "ranges": [{"to": 100}, {"from": 100, "to": 500},
                                                                             {"from": 500}]}}}},
      lambda a: ([(b["key"], b["doc_count"]) for b in a["r"]["buckets"]] ==
                 [("*-100.0", r1), ("100.0-500.0", r2), ("500.0-*", r3)], a["r"]))
    mid = BASE_MS + 12 * H
    d1 = sum(1 for e in app if ms(e) < mid)
    c("date_range",
      {"size": 0, "aggs": {"d": {"date_range": {"field": "@timestamp", "ranges": [{"to": iso(mid)}, {"from": iso(mid)}]}}}},
      lambda a: ([b["doc_count"] for b in a["d"]["buckets"]] == [d1, len(app) - d1] and
                 a["d"]["buckets"][0]["to"] == mid, a["d"]))
    newest_by = {}
    for e in newest(app):
        newest_by.setdefault(e["service"], []).append(e["n"])
    c("top_hits under terms (per bucket, newest first)",
      {"size": 0, "aggs": {"t": {"terms": {"field": "service.keyword"}, "aggs": {"h": {"top_hits": {"size": 2}}}}}},
      lambda a: (all([h["_source"]["n"] for h in b["h"]["hits"]["hits"]] == newest_by[b["key"]][:2] and
                     b["h"]["hits"]["total"]["value"] == b["doc_count"] for b in a["t"]["buckets"]), a["t"]["buckets"][:1]))

    def nested_ok(a):
        for b in a["h"]["buckets"]:
            evs = [e for e in app if ms(e) // (6 * H) * (6 * H) == b["key"]]
            tt, _ = top_terms([e["level"] for e in evs], 10)
            if buckets_of(b["l"]) != tt:
                return False, (b, tt)
            for lb in b["l"]["buckets"]:
                v = [e["latency_ms"] for e in evs if e["level"] == lb["key"] and "latency_ms" in e]
                if lb["m"]["value"] != (max(v) if v else None):
                    return False, (lb, v)
            errs6 = sum(1 for e in evs if e["level"] == "error")
            if b["e"]["doc_count"] != errs6:
                return False, (b["e"], errs6)
        return True, None
    c("date_histogram > terms > max, and a filter per bucket",
      {"size": 0, "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "6h"},
                                 "aggs": {"l": {"terms": {"field": "level.keyword"}, "aggs": {"m": {"max": {"field": "latency_ms"}}}},
                                          "e": {"filter": {"term": {"level.keyword": "error"}}}}}}},
      nested_ok)
    return cases


def grafana_cases(app):
    H = 3600 * 1000
    lo, hi = BASE_MS + 2 * H + 1, BASE_MS + 20 * H - 1
    sub = [e for e in app if lo <= ms(e) <= hi]
    header = {"search_type": "query_then_fetch", "ignore_unavailable": True, "index": "es-app"}
    rng = {"range": {"@timestamp": {"gte": lo, "lte": hi, "format": "epoch_millis"}}}
    dh = {"field": "@timestamp", "min_doc_count": 0, "extended_bounds": {"min": lo, "max": hi}, "format": "epoch_millis",
          "fixed_interval": "30m"}
    cases = []
    want = hist(sub, 30 * 60000, lo, hi)

    def ts_ok(r):
        b = r[0]["aggregations"]["2"]["buckets"]
        got = [(x["key"], x["doc_count"]) for x in b]
        return got == want and all(x["key_as_string"] == str(x["key"]) for x in b), (got[:3], want[:3])
    cases.append(("Grafana time series: count over time (_msearch, epoch_millis, extended_bounds)",
                  [header, {"size": 0, "query": {"bool": {"filter": [rng, {"query_string": {"analyze_wildcard": True, "query": "*"}}]}},
                            "aggs": {"2": {"date_histogram": dh, "aggs": {}}}}], ts_ok))
    avg_by = {}
    for s in SERVICES:
        v = [e["latency_ms"] for e in sub if e["service"] == s and "latency_ms" in e]
        if v:
            avg_by[s] = sum(v) / len(v)
    order = sorted(avg_by, key=lambda s: -avg_by[s])[:3]

    def terms_ok(r):
        b = r[0]["aggregations"]["3"]["buckets"]
        if [x["key"] for x in b] != order:
            return False, ([x["key"] for x in b], order)
        for x in b:
            evs = [e for e in sub if e["service"] == x["key"]]
            if [(y["key"], y["doc_count"]) for y in x["2"]["buckets"]] != hist(evs, 30 * 60000, lo, hi):
                return False, x["key"]
        return True, None
    cases.append(("Grafana: terms ordered by a metric, with a histogram per term",
                  [header, {"size": 0, "query": {"bool": {"filter": [rng, {"query_string": {"analyze_wildcard": True, "query": "*"}}]}},
                            "aggs": {"3": {"terms": {"field": "service.keyword", "size": 3, "order": {"1": "desc"}, "min_doc_count": 1},
                                           "aggs": {"1": {"avg": {"field": "latency_ms"}}, "2": {"date_histogram": dh}}}}}],
                  terms_ok))
    errs = newest([e for e in sub if e["level"] == "error"])
    whist = hist(errs, H, lo, hi)

    def logs_ok(r):
        x = r[0]
        got = [h["_source"]["n"] for h in x["hits"]["hits"]]
        h = [(b["key"], b["doc_count"]) for b in x["aggregations"]["1"]["buckets"]]
        f = x["hits"]["hits"][0].get("fields", {}).get("@timestamp")
        return (got == [e["n"] for e in errs[:100]] and x["hits"]["total"]["value"] == len(errs) and h == whist and
                f == [errs[0]["@timestamp"]]), (got[:5], x["hits"]["total"], f)
    cases.append(("Grafana logs: sort object, highlight, script_fields, docvalue_fields, fields, a histogram",
                  [header, {"size": 100, "query": {"bool": {"filter": [rng, {"query_string": {"analyze_wildcard": True, "query": "level:error"}}]}},
                            "sort": {"@timestamp": {"order": "desc", "unmapped_type": "boolean"}, "_doc": {"order": "desc"}},
                            "script_fields": {}, "docvalue_fields": ["@timestamp"],
                            "fields": [{"field": "@timestamp", "format": "strict_date_optional_time_nanos"}],
                            "highlight": {"pre_tags": ["@HIGHLIGHT@"], "post_tags": ["@/HIGHLIGHT@"],
                                          "fragment_size": 2147483647, "fields": {"*": {}}},
                            "aggs": {"1": {"date_histogram": dict(dh, fixed_interval="1h")}}}], logs_ok))

    def multi_ok(r):
        a = len(sub)
        b = sum(1 for e in sub if e["host"] == "db-01")
        return ([x["hits"]["total"]["value"] for x in r] == [a, b]), [x["hits"]["total"] for x in r]
    cases.append(("Grafana: two queries in one _msearch",
                  [header, {"size": 0, "track_total_hits": True, "query": {"bool": {"filter": [rng]}}},
                   header, {"size": 0, "query": {"bool": {"filter": [rng, {"query_string": {"query": "host.keyword:db-01"}}]}}}],
                  multi_ok))
    return cases
