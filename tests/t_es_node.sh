#!/bin/bash
# t_es_node.sh -- the official Node.js Elasticsearch client (npm's
# @elastic/elasticsearch 8) against logdex (TAP from tests/es_node.mjs).
# Needs node and the client: LOGDEX_NPM names a node_modules holding it
# (.ci/run installs it there); without them the test is skipped.
TNAME=esnode
. "${top_srcdir:-.}/tests/tap.sh"
if ! command -v node >/dev/null || [ -z "${LOGDEX_NPM:-}" ] || [ ! -d "$LOGDEX_NPM/@elastic/elasticsearch" ]; then
  echo "1..0 # SKIP node or @elastic/elasticsearch not installed (LOGDEX_NPM=${LOGDEX_NPM:-})"; exit 0
fi
start "$T/d"
LOGDEX_NPM="$LOGDEX_NPM" node "${top_srcdir:-.}/tests/es_node.mjs" "$U"
rc=$?
stop || rc=1
exit $rc
