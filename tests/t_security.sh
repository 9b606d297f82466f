#!/bin/bash
# t_security.sh -- hostile requests against a live server (TAP): a table of
# requests, each with the status it must get and (for errors) a JSON body
# with a reason; then the server must still answer correctly.  Also: read
# and write tokens from a token file, constant answers for wrong tokens,
# a stalled client cut by --idle-timeout, and HTTPS with curl.
TNAME=security
. "${top_srcdir:-.}/tests/tap.sh"
if ! command -v curl >/dev/null; then echo "1..0 # SKIP curl not installed"; exit 0; fi


printf 'admin-secret\n# a comment\n\nreader-token read\nshipper-token   write\n' > "$T/tokens"
start "$T/d" --max-body 2000000 --auth-tokens "$T/tokens" --idle-timeout 1
A=(-H 'Authorization: Bearer admin-secret')

# h STATUS DESCRIPTION CURL-ARGS...: one row of the table
h() {
  local want=$1 what=$2; shift 2
  local got
  got=$(curl -s -o "$T/body" -w '%{http_code}' "${A[@]}" "$@")
  is "$got" "$want" "$what"
  if [ "$want" -ge 400 ] && [ "$want" != 431 ]; then
    ok "$(grep -q '^{"error":{"type":"[a-z_]*","reason":"[^"]' "$T/body"; echo $?)" "  ... answered with a JSON error and a reason"
  fi
}
# r DESCRIPTION FILE: an ingest whose one line must be rejected (200)
r() {
  local what=$1 file=$2
  h 200 "$what: the batch is answered" -XPOST --data-binary @"$file" "$U/api/v1/sec/ingest"
  ok "$(grep -q '"accepted":0,"rejected":1,' "$T/body" && grep -q '"errors":\[{"line":1,"reason":"[^"]' "$T/body"; echo $?)" "  ... the line is rejected with its number and reason"
}

# a known state to check against at the end
for i in $(seq 1 50); do printf '{"_id":"k%d","msg":"known event %d","n":%d}\n' $i $i $i; done > "$T/known"
h 200 "ingest 50 known events" -XPOST --data-binary @"$T/known" "$U/api/v1/sec/ingest"

# bodies
head -c 2100000 /dev/zero | tr '\0' 'x' > "$T/huge"
h 413 "body over --max-body" -XPOST --data-binary @"$T/huge" "$U/api/v1/sec/ingest"
head -c 5000000 /dev/zero | gzip > "$T/bomb"
h 413 "gzip body that inflates past --max-body" -XPOST -H 'Content-Encoding: gzip' --data-binary @"$T/bomb" "$U/api/v1/sec/ingest"
printf 'not gzip at all' > "$T/notgz"
h 400 "undecodable gzip body" -XPOST -H 'Content-Encoding: gzip' --data-binary @"$T/notgz" "$U/api/v1/sec/ingest"
h 415 "unknown Content-Encoding" -XPOST -H 'Content-Encoding: br' --data-binary @"$T/known" "$U/api/v1/sec/ingest"
python3 -c 'print("{\"a\":" + "[" * 3000 + "]" * 3000 + "}")' > "$T/deep"
r "JSON nested 3000 deep" "$T/deep"
printf '{"msg":"\xff\xfe bad"}\n' > "$T/badutf"
r "invalid UTF-8 in a string" "$T/badutf"
printf '{"msg":"a\0b"}\n' > "$T/nul"
r "a NUL byte in a line" "$T/nul"
python3 -c 'import json; print(json.dumps({"v": list(range(100001))}))' > "$T/wide"
r "100,001 values in one event" "$T/wide"
python3 -c 'print("{\"" + "k" * 1100 + "\":1}")' > "$T/longkey"
r "a field name over 1024 bytes" "$T/longkey"
printf '42\n' > "$T/notobj"  # (a body [1,2] is one JSON array: t_http.sh)
r "a line that is not an object" "$T/notobj"

# queries
h 400 "query over 64 KiB" "$U/api/v1/sec/search?q=$(head -c 70000 /dev/zero | tr '\0' 'a')"
h 400 "query nested 100 deep" "$U/api/v1/sec/search?q=$(printf '%.0s(' $(seq 100))a$(printf '%.0s)' $(seq 100))"
h 400 "query with invalid UTF-8" "$U/api/v1/sec/search?q=%ff%fe"
h 400 "unbalanced query" "$U/api/v1/sec/search?q=(a"
h 400 "limit over 10000" "$U/api/v1/sec/search?q=a&limit=10001"
h 400 "negative limit" "$U/api/v1/sec/search?q=a&limit=-1"
h 400 "bad start" "$U/api/v1/sec/search?q=a&start=2024-13-45T00:00:00Z"
h 400 "bad cursor" "$U/api/v1/sec/search?q=a&cursor=..%00"
python3 -c 'import json; print(json.dumps({"msg": " ".join("w%d" % i for i in range(100001))}))' > "$T/manyterms"
h 200 "ingest an event with 100,001 distinct words" -XPOST --data-binary @"$T/manyterms" "$U/api/v1/sec/ingest"
h 400 "a prefix matching more than 100,000 terms (the cap says so)" "$U/api/v1/sec/search?q=w*"
ok "$(grep -q 'matches more than 100000 terms' "$T/body"; echo $?)" "  ... and names the cap"
h 200 "a longer prefix is fine" "$U/api/v1/sec/search?q=w9999*"
h 400 "aggregation over 100,000 buckets" -XPOST -d '{"start":"2020-01-01T00:00:00Z","end":"2024-01-01T00:00:00Z","aggs":{"x":{"date_histogram":{"interval":"1s"}}}}' "$U/api/v1/sec/aggregate"
nest=$(python3 -c 'import json; a={}
for i in range(10): a={"t%d"%i:{"terms":{"field":"msg"},"aggs":a}} if a else {"t%d"%i:{"terms":{"field":"msg"}}}
print(json.dumps({"aggs":a}))')
h 400 "aggregations nested 10 deep" -XPOST -d "$nest" "$U/api/v1/sec/aggregate"
h 400 "aggregate body that is not JSON" -XPOST -d '{"aggs":' "$U/api/v1/sec/aggregate"
h 400 "invalid index name" "$U/api/v1/$(head -c 70 /dev/zero | tr '\0' 'a')/search?q=x"
h 404 "unknown index" "$U/api/v1/nosuch/search?q=x"
h 404 "unknown route" "$U/api/v1/sec/nosuch"
h 405 "wrong method" -XPUT "$U/api/v1/sec/search"
python3 -c 'print("X-Big: " + "x" * 300000)' > "$T/hdr"
h 431 "a 300 KB header (libmicrohttpd's own answer)" -H @"$T/hdr" "$U/health"

# tokens
is "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" 200 "/health needs no token"
is "$(curl -s -o /dev/null -w '%{http_code}' "$U/api/v1/sec/search?q=x")" 401 "no token: 401"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer admin-secreT' "$U/api/v1/sec/search?q=x")" 401 "a token one letter off: 401"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer admin-secret-and-more' "$U/api/v1/sec/search?q=x")" 401 "a longer token: 401"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer reader-token' "$U/api/v1/sec/search?q=x")" 200 "a read token searches"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer reader-token' -XPOST --data-binary @"$T/known" "$U/api/v1/sec/ingest")" 403 "a read token may not ingest"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer shipper-token' -XPOST --data-binary @"$T/known" "$U/api/v1/sec/ingest")" 200 "a write token ingests"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer shipper-token' "$U/api/v1/sec/search?q=x")" 403 "a write token may not search"
ok "$(grep -c -e admin-secret -e reader-token -e shipper-token "$T/err" | grep -qx 0; echo $?)" "tokens never appear in the server's output"

# a stalled client: the connection is closed after --idle-timeout
hp=${U#http://}
if exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}"; then
  printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&3
  t0=$(date +%s%N)
  timeout 10 cat <&3 > /dev/null
  el=$(( ($(date +%s%N) - t0) / 1000000 ))
  exec 3<&-
  ok "$([ $el -lt 5000 ]; echo $?)" "a client stalled mid-header is cut after the idle timeout (${el} ms)"
else
  ok 1 "connect for the stalled-client test"
fi

# still correct after all that
is "$(curl -s "${A[@]}" "$U/api/v1/sec/search?q=known&limit=0" | grep -o '"total":[0-9]*')" '"total":50' "the server still answers correctly (50 known events, the resent ones stored once)"
stop; ok $? "clean stop"
"$LOGDEX" verify --data "$T/d" > /dev/null; ok $? "verify passes"
start "$T/d2" --auth-token solo --listen 0.0.0.0:0 2>/dev/null; stop
start "$T/d2" --listen 0.0.0.0:0; sleep 0.2; stop
ok "$(grep -q 'warning: listening on 0.0.0.0 without --auth-token' "$T/err"; echo $?)" "a non-loopback address without a token is warned about"

# HTTPS
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
  start "$T/tls" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --auth-token tls-token
  is "${U%%:*}" https "prints an https address"
  is "$(curl -s --cacert "$T/cert.pem" "$U/health")" '{"status":"ok"}' "health over TLS, certificate checked"
  is "$(curl -s --cacert "$T/cert.pem" -H 'Authorization: Bearer tls-token' -XPOST --data-binary @"$T/known" "$U/api/v1/t/ingest" | grep -o '"accepted":[0-9]*')" '"accepted":50' "ingest over TLS"
  is "$(curl -s --cacert "$T/cert.pem" -H 'Authorization: Bearer tls-token' "$U/api/v1/t/search?q=known&limit=0" | grep -o '"total":[0-9]*')" '"total":50' "search over TLS"
  is "$(curl -s -o /dev/null -w '%{http_code}' "http${U#https}/health")" 000 "plain HTTP to the TLS port gets no answer"
  stop; ok $? "clean stop (TLS)"
else
  echo "# openssl not installed: TLS part skipped"
fi

done_testing
