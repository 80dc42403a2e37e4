#!/usr/bin/env bash
# rock.sh [--check]: pack a binary rock of trio-asyncio from a clean copy of
# the checkout (`luarocks make --pack-binary-rock`), into build/rock/.  The
# rock holds the built core and the Lua modules: `luarocks install FILE.rock`
# needs neither the checkout nor a compiler.
#
# --check: then install that rock into an empty tree from an empty
# directory, require it there with only the tree on the module paths, and
# run `luarocks test` (the busted suite against the installed rock).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rockspec=rockspec/trio-asyncio-scm-1.rockspec
lr() { luarocks --lua-version 5.4 "$@"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only what the rockspec builds from, so a file it forgets to name fails here.
mkdir "$tmp/src"
cp -r csrc lua rockspec "$tmp/src/"
(cd "$tmp/src" && lr make --pack-binary-rock "$rockspec") >"$tmp/pack.log" 2>&1 \
  || { cat "$tmp/pack.log"; exit 1; }
mkdir -p build/rock
rm -f build/rock/*.rock
mv "$tmp"/src/*.rock build/rock/
rock=$(ls "$root"/build/rock/*.rock)
echo "packed ${rock#"$root"/}"
[ "${1:-}" = --check ] || exit 0

# Install from an empty directory into an empty tree.
mkdir "$tmp/empty" "$tmp/tree"
cd "$tmp/empty"
lr --tree "$tmp/tree" install "$rock" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; exit 1; }
[ -z "$(ls -A .)" ] || { echo "rock.sh: luarocks install left files in the current directory"; exit 1; }

# Only the tree's paths (and the system's): nothing of the checkout.
eval "$(lr --tree "$tmp/tree" path)"
TREE="$tmp/tree" lua5.4 -e '
  local trio = require "trio"
  for _, m in ipairs { "trio", "asyncio", "trio_asyncio", "trio.testing" } do
    local where = package.searchpath(m, package.path)
    assert(where and where:find(os.getenv("TREE"), 1, true), m .. " not from the tree: " .. tostring(where))
  end
  local core = package.searchpath("trio_asyncio.core", package.cpath)
  assert(core and core:find(os.getenv("TREE"), 1, true), "core not from the tree: " .. tostring(core))
  assert(trio.run(function() trio.sleep(0) return 42 end) == 42)
  require "asyncio"
  local ta = require "trio_asyncio"
  assert(ta._VERSION == trio._VERSION)
  print("installed " .. trio._VERSION .. " into an empty tree; require \"trio\" from an empty directory: ok")'

# luarocks test: the suite against the installed rock (never apt-get).
cd "$root"
echo "luarocks test (the busted suite against the installed rock):"
lr test "$rockspec" >"$tmp/test.log" 2>&1 || { cat "$tmp/test.log"; echo "rock.sh: luarocks test failed"; exit 1; }
grep -E 'skipped: needs the build|^[0-9]+ passed, [0-9]+ failed' "$tmp/test.log" | sed 's/^/  /'
