#!/usr/bin/env bash
# check_layers.sh [ROOT]: the C core's dependency rules (docs/ARCHITECTURE.md).
# Each layer of csrc/ may include the headers of the layers below it only:
#
#   engine/   engine
#   io/       engine, io
#   trio/     engine, io, trio
#   asyncio/  engine, io, asyncio      (trio/ and asyncio/ never see each other)
#   embed/    engine, embed, and the public header trio_asyncio.h
#
# A function of another layer can only be called through its header (the
# build treats an undeclared function as an error), so checking the
# #include lines checks the calls.  Prints every broken rule and exits 1.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
status=0

allowed() {  # allowed LAYER -> the include prefixes it may use
  case $1 in
    engine)  echo "engine/" ;;
    io)      echo "engine/ io/" ;;
    trio)    echo "engine/ io/ trio/" ;;
    asyncio) echo "engine/ io/ asyncio/" ;;
    embed)   echo "engine/ embed/ trio_asyncio.h" ;;
  esac
}

for layer in engine io trio asyncio embed; do
  dir="$root/csrc/$layer"
  [ -d "$dir" ] || { echo "check_layers: csrc/$layer is missing"; status=1; continue; }
  ok=$(allowed "$layer")
  # Every quoted include: "file:line:#include \"x\"".
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    inc=$(sed -n 's/.*#include *"\([^"]*\)".*/\1/p' <<<"$hit")
    good=0
    for prefix in $ok; do
      case $inc in "$prefix"*) good=1 ;; esac
    done
    if [ $good = 0 ]; then
      echo "check_layers: ${hit%%:#*} includes \"$inc\": csrc/$layer/ may include only: $ok"
      status=1
    fi
  done < <(cd "$root" && grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "csrc/$layer"/*.[ch] 2>/dev/null)
done
exit $status
