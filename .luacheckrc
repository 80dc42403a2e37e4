-- luacheck configuration: `luacheck lua spec examples` (CI runs it and
-- expects zero warnings; Debian package lua-check).
std = "lua54"
max_line_length = 132      -- a few spec tables read best one case per line
self = false               -- methods need not use self
ignore = {
  "212/_.*",               -- unused arguments named _x document a callback's shape
  "581",                   -- `not (a < b)`: deliberate where only __lt is defined (queue keys)
}
-- spec/conformance/ (the ported upstream suites, written in parallel) is
-- left out until it is lint-clean: then drop it from this list.
exclude_files = { "build*/**", "spec/.tmp/**", "spec/conformance/**" }

files["spec/**/*.lua"] = { std = "+busted" }
files["examples/**/*_spec.lua"] = { std = "+busted" }

-- Requiring trio installs the guarded coroutine.yield (see lua/trio.lua).
files["lua/trio.lua"] = { globals = { coroutine = { fields = { "yield" } } } }
-- A test swaps io.stderr to capture what the loop reports.
files["spec/asyncio_loop_spec.lua"] = { globals = { io = { fields = { "stderr" } } } }
