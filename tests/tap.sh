# tests/tap.sh -- sourced by the shell tests: TAP helpers, the binary under
# test and a temporary directory removed at exit (with a server left in
# $PID killed).  Set TNAME before sourcing; end with done_testing.
top_builddir=${top_builddir:-.}
LOGDEX="$top_builddir/logdex"
T=$(mktemp -d "/tmp/logdex-t-$TNAME-XXXXXX")
PID=
n=0
failed=0
cleanup() { [ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
# on a failure, the last server's stderr (a sanitizer report, a crash)
server_err() {
  [ -s "$T/err" ] || return 0
  if grep -q 'ERROR: .*Sanitizer' "$T/err"; then sed -n '/ERROR: .*Sanitizer/,/^SUMMARY/p' "$T/err" | head -40
  else tail -20 "$T/err"; fi | sed 's/^/# server: /'
}
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; server_err; failed=$((failed + 1)); fi; }
is() { n=$((n + 1)); if [ "$1" = "$2" ]; then echo "ok $n - $3"; else echo "not ok $n - $3"; echo "# got:      $1"; echo "# expected: $2"; server_err; failed=$((failed + 1)); fi; }
done_testing() { echo "1..$n"; [ $failed -eq 0 ]; }

# A server on a free port (later options win, so a test may pass --listen).
start() { # start DATA [options...]: sets PID (the server) and U (its URL)
  local data=$1; shift
  "$LOGDEX" serve --data "$data" --listen 127.0.0.1:0 --quiet "$@" > "$T/out" 2>"$T/err" &
  PID=$!
  for i in $(seq 1 100); do grep -q listening "$T/out" 2>/dev/null && break; sleep 0.05; done
  U=$(sed 's/^logdex listening on //' "$T/out")
}
stop() { kill -TERM $PID 2>/dev/null; wait $PID; local rc=$?; PID=; return $rc; }
