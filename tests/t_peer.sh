#!/bin/bash
# t_peer.sh -- the peer REST suites (../shared/peer-tests: Elastic's client
# YAML tests, OpenSearch's API test stories) run by tests/peer_run.py (TAP:
# one check).  Each test runs against a fresh server.  The check fails when
# fewer tests pass than the floor below (the count when it was last raised:
# a regression guard); docs/peer-tests.md lists every test that does not
# pass and why.  Skipped when the suites or Debian's python3-yaml are absent.
TNAME=peer
. "${top_srcdir:-.}/tests/tap.sh"
FLOOR=68
PEER=${LOGDEX_PEER_TESTS:-${top_srcdir:-.}/../shared/peer-tests}
if [ ! -d "$PEER/elasticsearch-clients-tests" ] || ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  echo "1..0 # SKIP the peer suites ($PEER) or python3-yaml are not here"; exit 0
fi
/usr/bin/python3 "${top_srcdir:-.}/tests/peer_run.py" --min-pass $FLOOR "$PEER" > "$T/peer.out" 2>&1
rc=$?
sed 's/^/# /' "$T/peer.out" | grep -v '^# PASS' | head -150
ok $rc "peer suites: at least $FLOOR tests pass ($(tail -1 "$T/peer.out"))"
done_testing
