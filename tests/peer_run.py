#!/usr/bin/python3
# peer_run.py -- runs the peer REST test suites in ../shared/peer-tests
# against logdex: Elastic's client YAML tests (elasticsearch-clients-tests)
# and OpenSearch's API test stories (opensearch-api-specification).  Each
# test (a YAML test with its setup and teardown, or a story) runs against a
# fresh server on an empty data dir, so tests stay independent without
# deleting indexes (which logdex does not do yet).
#
#   peer_run.py [--list FILE] [--min-pass N] PEER_TESTS_DIR
#
# Prints one line per test (PASS/FAIL with the first failed step and why),
# then "peer tests: P passed, F failed of T".  --list writes the failures
# as a Markdown list; --min-pass makes the exit status 1 below N passes.
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import http.client

import yaml

top = os.environ.get("top_builddir", ".")
BINARY = os.path.join(top, "logdex")

# Elasticsearch API names -> (method, path templates); the first template
# whose parts are all given is used.
APIS = {
    "bulk": ("POST", ["/{index}/_bulk", "/_bulk"]),
    "count": ("POST", ["/{index}/_count", "/_count"]),
    "search": ("POST", ["/{index}/_search", "/_search"]),
    "msearch": ("POST", ["/{index}/_msearch", "/_msearch"]),
    "scroll": ("POST", ["/_search/scroll"]),
    "clear_scroll": ("DELETE", ["/_search/scroll"]),
    "index": ("PUT", ["/{index}/_doc/{id}", "POST /{index}/_doc"]),
    "create": ("PUT", ["/{index}/_create/{id}"]),
    "get": ("GET", ["/{index}/_doc/{id}"]),
    "exists": ("HEAD", ["/{index}/_doc/{id}"]),
    "delete": ("DELETE", ["/{index}/_doc/{id}"]),
    "update": ("POST", ["/{index}/_update/{id}"]),
    "info": ("GET", ["/"]),
    "ping": ("HEAD", ["/"]),
    "field_caps": ("GET", ["/{index}/_field_caps", "/_field_caps"]),
    "indices.create": ("PUT", ["/{index}"]),
    "indices.delete": ("DELETE", ["/{index}"]),
    "indices.exists": ("HEAD", ["/{index}"]),
    "indices.get": ("GET", ["/{index}"]),
    "indices.refresh": ("POST", ["/{index}/_refresh", "/_refresh"]),
    "indices.put_mapping": ("PUT", ["/{index}/_mapping"]),
    "indices.get_mapping": ("GET", ["/{index}/_mapping", "/_mapping"]),
    "indices.put_index_template": ("PUT", ["/_index_template/{name}"]),
    "indices.get_index_template": ("GET", ["/_index_template/{name}", "/_index_template"]),
    "indices.exists_index_template": ("HEAD", ["/_index_template/{name}"]),
    "indices.delete_index_template": ("DELETE", ["/_index_template/{name}"]),
    "indices.put_template": ("PUT", ["/_template/{name}"]),
    "indices.get_template": ("GET", ["/_template/{name}", "/_template"]),
    "indices.exists_template": ("HEAD", ["/_template/{name}"]),
    "indices.delete_template": ("DELETE", ["/_template/{name}"]),
    "indices.create_data_stream": ("PUT", ["/_data_stream/{name}"]),
    "indices.delete_data_stream": ("DELETE", ["/_data_stream/{name}"]),
    "indices.reload_search_analyzers": ("POST", ["/{index}/_reload_search_analyzers"]),
    "ilm.put_lifecycle": ("PUT", ["/_ilm/policy/{policy}"]),
    "ilm.get_lifecycle": ("GET", ["/_ilm/policy/{policy}", "/_ilm/policy"]),
    "ilm.delete_lifecycle": ("DELETE", ["/_ilm/policy/{policy}"]),
    "cat.health": ("GET", ["/_cat/health"]),
    "cat.indices": ("GET", ["/_cat/indices/{index}", "/_cat/indices"]),
    "cat.count": ("GET", ["/_cat/count/{index}", "/_cat/count"]),
    "cluster.health": ("GET", ["/_cluster/health/{index}", "/_cluster/health"]),
}
# Stories that test what INTERFACE.md does not promise (the peer suite's
# README: skip those and say why).  Listed as SKIP with the reason.
SKIP = {
    "min_value_type.yaml": "aggregations over scripts (value_type describes a script's output): no scripting",
    "max_value_type.yaml": "aggregations over scripts (value_type describes a script's output): no scripting",
    "min_script.yaml": "aggregations over scripts: no scripting",
    "terms_script.yaml": "terms over a script: no scripting",
    "terms_aggregate_unsigned_long.yaml": "OpenSearch's unsigned_long field type",
    "terms_partition.yaml": "terms partitions (OpenSearch/ES's include.partition)",
    "nested.yaml": "the nested field type and nested aggregation",
}
CATCH = {"bad_request": (400, 400), "missing": (404, 404), "conflict": (409, 409), "forbidden": (403, 403),
         "unauthorized": (401, 401), "request": (400, 599), "param": (400, 400)}


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="logdex-peer-")
        self.p = subprocess.Popen([BINARY, "serve", "--data", self.dir + "/d", "--listen", "127.0.0.1:0", "--quiet"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        m = re.search(r"http://([0-9.]+):(\d+)", self.p.stdout.readline().decode())
        self.host, self.port = m.group(1), int(m.group(2))

    def call(self, method, path, body=None, ctype="application/json", headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Content-Type": ctype}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return r.status, parsed

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
        subprocess.run(["rm", "-rf", self.dir])


def qs(params):
    out = {}
    for k, v in params.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, list):
            v = ",".join(str(x) for x in v)
        out[k] = str(v)
    return ("?" + urllib.parse.urlencode(out)) if out else ""


def ndjson(lines):
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)


# ---- Elastic's YAML tests ----

def yaml_path(obj, path, stash):
    if path == "$body":
        return obj
    parts = re.split(r"(?<!\\)\.", path)
    for p in parts:
        p = p.replace("\\.", ".")
        if p.startswith("$") and p[1:] in stash:
            p = str(stash[p[1:]])
        if isinstance(obj, list):
            obj = obj[int(p)]
        elif isinstance(obj, dict):
            obj = obj[p]
        else:
            raise KeyError(path)
    return obj


def subst(v, stash):
    if isinstance(v, str) and v.startswith("$") and v[1:] in stash:
        return stash[v[1:]]
    if isinstance(v, dict):
        return dict((k, subst(x, stash)) for k, x in v.items())
    if isinstance(v, list):
        return [subst(x, stash) for x in v]
    return v


def yaml_do(srv, spec, stash):
    spec = dict(spec)
    catch = spec.pop("catch", None)
    headers = spec.pop("headers", None)
    spec.pop("warnings", None)
    spec.pop("allowed_warnings", None)
    (api, args), = spec.items()
    args = subst(dict(args or {}), stash)
    if api not in APIS:
        return None, "API %s is not in the runner's table" % api
    method, templates = APIS[api]
    body = args.pop("body", None)
    path = None
    for t in templates:
        m = method
        if " " in t:
            m, t = t.split(" ", 1)
        names = re.findall(r"{(\w+)}", t)
        if all(n in args for n in names):
            path = t
            for n in names:
                v = args.pop(n)
                path = path.replace("{%s}" % n, urllib.parse.quote(",".join(v) if isinstance(v, list) else str(v), safe=",*"))
            method = m
            break
    if path is None:
        return None, "no path for %s with %s" % (api, sorted(args))
    ctype = "application/json"
    if isinstance(body, list):
        body, ctype = ndjson(body), "application/x-ndjson"
    elif isinstance(body, (dict,)):
        body = json.dumps(body)
    st, r = srv.call(method, path + qs(args), body, ctype, headers)
    if catch:
        lo, hi = CATCH.get(catch, (400, 599))
        if catch.startswith("/"):
            ok = st >= 400 and re.search(catch.strip("/"), json.dumps(r)) is not None
        else:
            ok = lo <= st <= hi
        return (st, r), None if ok else "expected catch %s, got %d %s" % (catch, st, json.dumps(r)[:200])
    if st >= 400 and not (method == "HEAD" and st == 404):
        return (st, r), "%s %s answered %d: %s" % (method, path, st, json.dumps(r)[:300])
    return (st, r), None


def yaml_value_eq(got, want):
    if isinstance(want, str) and len(want) > 1 and want.startswith("/") and want.rstrip().endswith("/"):
        return re.search(want.strip().strip("/"), str(got), re.X) is not None
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return float(got) == float(want)
    return got == want


def run_yaml_test(srv, steps, stash):
    last = (None, None)
    for step in steps:
        (kind, arg), = step.items()
        if kind == "do":
            last, err = yaml_do(srv, arg, stash)
            if err:
                return err
            continue
        if kind == "skip":
            continue
        st, body = last if last else (None, None)
        if kind == "set":
            for path, name in arg.items():
                try:
                    stash[name] = yaml_path(body, path, stash)
                except Exception:
                    return "set: no %s in the answer" % path
            continue
        if kind in ("is_true", "is_false"):
            try:
                v = yaml_path(body, arg, stash) if arg else body
            except Exception:
                v = None
            good = v not in (None, False, "", 0, "false") if kind == "is_true" else v in (None, False, "", 0, "false")
            if kind == "is_true" and arg == "" and st == 200:
                good = True
            if not good:
                return "%s %s: %r" % (kind, arg, v)
            continue
        if kind in ("match", "length", "gt", "gte", "lt", "lte"):
            for path, want in arg.items():
                want = subst(want, stash)
                try:
                    got = yaml_path(body, path, stash)
                except Exception:
                    return "%s: no %s in the answer %s" % (kind, path, json.dumps(body)[:300])
                if kind == "match":
                    good = yaml_value_eq(got, want)
                elif kind == "length":
                    good = len(got) == want
                else:
                    good = {"gt": got > want, "gte": got >= want, "lt": got < want, "lte": got <= want}[kind]
                if not good:
                    return "%s %s: got %r, want %r" % (kind, path, got, want)
            continue
        return "step %s not supported by the runner" % kind
    return None


def run_yaml_file(path, results):
    docs = list(yaml.safe_load_all(open(path)))
    req = docs[0].get("requires", {}) if docs and "requires" in (docs[0] or {}) else {}
    if req and not req.get("stack", True):
        return
    setup, teardown, tests = [], [], []
    for d in docs:
        if not d or "requires" in d:
            continue
        for k, v in d.items():
            if k == "setup":
                setup = v
            elif k == "teardown":
                teardown = v
            else:
                tests.append((k, v))
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(path))))
    for name, steps in tests:
        srv = Server()
        stash = {}
        try:
            err = run_yaml_test(srv, setup, stash)
            if err:
                err = "setup: " + err
            else:
                err = run_yaml_test(srv, steps, stash)
            run_yaml_test(srv, teardown, stash)  # (teardown failures are not the test's)
        except Exception as e:  # noqa: BLE001
            err = "runner: %r" % e
        finally:
            srv.stop()
        results.append(("elastic " + rel, name, err))


# ---- OpenSearch's test stories ----

def subset(got, want):
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and subset(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(subset(g, w) for g, w in zip(got, want))
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return float(got) == float(want)
    return got == want


def story_subst(v, outs):
    """${id.name} in a story: an earlier request's output."""
    if isinstance(v, str):
        def one(m):
            a, b = m.group(1).split(".", 1)
            return str(outs.get(a, {}).get(b, m.group(0)))
        return re.sub(r"\$\{([\w-]+\.[\w.-]+)\}", one, v)
    if isinstance(v, dict):
        return dict((k, story_subst(x, outs)) for k, x in v.items())
    if isinstance(v, list):
        return [story_subst(x, outs) for x in v]
    return v


def story_output(ch, body, outs):
    if ch.get("id") and ch.get("output"):
        got = {}
        for name, path in ch["output"].items():
            v = {"payload": body}
            for p in path.split("."):
                v = v.get(p) if isinstance(v, dict) else None
            got[name] = v
        outs[ch["id"]] = got


def story_call(srv, ch, outs):
    ch = story_subst(ch, outs)
    params = dict(ch.get("parameters") or {})
    path = ch["path"]
    for n in re.findall(r"{(\w+)}", path):
        v = params.pop(n, "")
        path = path.replace("{%s}" % n, urllib.parse.quote(",".join(v) if isinstance(v, list) else str(v), safe=",*"))
    reqd = ch.get("request") or {}
    payload = reqd.get("payload")
    ctype = reqd.get("content_type", "application/json")
    if payload is not None:
        body = ndjson(payload) if ctype == "application/x-ndjson" else json.dumps(payload)
    else:
        body = None
    methods = ch["method"] if isinstance(ch["method"], list) else [ch["method"]]
    out = []
    for m in methods:
        out.append(srv.call(m, path + qs(params), body, ctype, reqd.get("headers")))
        story_output(ch, out[-1][1], outs)
    return out


def run_story(path, results):
    st = yaml.safe_load(open(path))
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(path)))))
    if os.path.basename(path) in SKIP:
        for ch in st.get("chapters") or []:
            results.append(("opensearch " + rel, "%s: %s" % (st.get("description", ""), ch.get("synopsis", "")),
                            "SKIP " + SKIP[os.path.basename(path)]))
        return
    srv = Server()
    outs = {}
    try:
        err = None
        for pro in st.get("prologues") or []:
            for code, body in story_call(srv, pro, outs):
                if code not in (pro.get("status") or [200, 201]):
                    err = "prologue %s %s: %d %s" % (pro.get("method"), pro["path"], code, json.dumps(body)[:300])
                    break
            if err:
                break
        chapters = st.get("chapters") or []
        for i, ch in enumerate(chapters):
            name = "%s: %s" % (st.get("description", ""), ch.get("synopsis", "chapter %d" % i))
            if err:
                results.append(("opensearch " + rel, name, err))
                continue
            cerr = None
            want = ch.get("response") or {}
            for code, body in story_call(srv, ch, outs):
                if code != want.get("status", 200):
                    cerr = "status %d (want %d): %s" % (code, want.get("status", 200), json.dumps(body)[:400])
                elif "payload" in want and not subset(body, want["payload"]):
                    cerr = "payload differs: got %s; want %s" % (json.dumps(body)[:400], json.dumps(want["payload"])[:300])
                if cerr:
                    break
            results.append(("opensearch " + rel, name, cerr))
        for epi in st.get("epilogues") or []:
            story_call(srv, epi, outs)
    except Exception as e:  # noqa: BLE001
        results.append(("opensearch " + rel, "story", "runner: %r" % e))
    finally:
        srv.stop()


def main():
    args = sys.argv[1:]
    listf, minpass = None, None
    while args and args[0].startswith("--"):
        if args[0] == "--list":
            listf = args[1]
            args = args[2:]
        elif args[0] == "--min-pass":
            minpass = int(args[1])
            args = args[2:]
        else:
            sys.exit("usage: peer_run.py [--list FILE] [--min-pass N] PEER_TESTS_DIR")
    root = args[0]
    results = []
    for d, _, files in sorted(os.walk(os.path.join(root, "elasticsearch-clients-tests", "tests"))):
        for f in sorted(files):
            if f.endswith((".yml", ".yaml")):
                run_yaml_file(os.path.join(d, f), results)
    for d, _, files in sorted(os.walk(os.path.join(root, "opensearch-api-specification", "tests"))):
        for f in sorted(files):
            if f.endswith((".yml", ".yaml")):
                run_story(os.path.join(d, f), results)
    passed = sum(1 for r in results if r[2] is None)
    skipped = sum(1 for r in results if r[2] is not None and r[2].startswith("SKIP "))
    failed = len(results) - passed - skipped
    for suite, name, err in results:
        kind = "PASS" if err is None else "SKIP" if err.startswith("SKIP ") else "FAIL"
        print("%s %s :: %s%s" % (kind, suite, name, "" if err is None else "\n    " + (err[5:] if kind == "SKIP" else err)))
    print("peer tests: %d passed, %d failed, %d skipped of %d" % (passed, failed, skipped, len(results)))
    if listf:
        with open(listf, "w") as f:
            for suite, name, err in results:
                if err is not None and not err.startswith("SKIP "):
                    f.write("- `%s` — %s: %s\n" % (suite, name, err.replace("\n", " ")[:240]))
    if minpass is not None and passed < minpass:
        sys.exit(1)


if __name__ == "__main__":
    main()
