#!/bin/sh
# check-layering.sh -- fails when a layer includes what it must not (TAP).
#   segment/   nothing of indexer/ searcher/ api/, nor jansson or microhttpd
#   indexer/   nothing of searcher/ api/
#   searcher/  nothing of indexer/ api/
top_srcdir=${top_srcdir:-.}
n=0
failed=0
check() {
  dir=$1; shift
  n=$((n + 1))
  bad=$(grep -nE "#include [<\"]($*)" "$top_srcdir/$dir"/*.c "$top_srcdir/$dir"/*.h 2>/dev/null)
  if [ -z "$bad" ]; then echo "ok $n - $dir/ includes nothing forbidden"; else
    echo "not ok $n - $dir/ includes something forbidden"; echo "$bad" | sed 's/^/# /'; failed=$((failed + 1)); fi
}
check segment 'indexer/|searcher/|api/|jansson|microhttpd'
check indexer 'searcher/|api/|microhttpd'
check searcher 'indexer/|api/|microhttpd'
# every file name is unique across the tree
n=$((n + 1))
dups=$(cd "$top_srcdir" && ls segment indexer searcher api tests bench 2>/dev/null | grep -E '\.(c|h)$' | sort | uniq -d)
if [ -z "$dups" ]; then echo "ok $n - file names are unique"; else echo "not ok $n - duplicate file names: $dups"; failed=$((failed + 1)); fi
echo "1..$n"
[ $failed -eq 0 ]
