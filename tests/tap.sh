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
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
is() { n=$((n + 1)); if [ "$1" = "$2" ]; then echo "ok $n - $3"; else echo "not ok $n - $3"; echo "# got:      $1"; echo "# expected: $2"; failed=$((failed + 1)); fi; }
done_testing() { echo "1..$n"; [ $failed -eq 0 ]; }
