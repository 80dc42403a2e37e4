--- trio_asyncio_helpers.lua: what the ported trio-asyncio tests share
-- (require "conformance.trio_asyncio_helpers").
--
-- The upstream suite runs each test under pytest-trio, most of them with
-- the `loop` fixture (an open_loop around the test).  Here:
--   H.with_loop(fn [, seconds])   trio.run + open_loop(fn), bounded in time
--   H.run(fn [, seconds])         trio.run(fn), bounded in time
--   H.run_autojump(fn [, secs])   the same on a MockClock that jumps ahead
--                                 whenever every task is blocked
--                                 (pytest-trio's `autojump_clock`)
--   H.isolated(seconds, fn)       fn in a separate lua5.4 process, for the
--                                 tests whose failure mode is a hang that no
--                                 cancellation can end (a shielded wait)
--   H.Seen()                      the upstream `Seen` class: a flag word
--   H.errof, H.assert_has         from spec/support.lua
local trio = require "trio"
local ta = require "trio_asyncio"
local support = require "support"

local H = {}

--- The trio-asyncio commit the ported tests come from (HEAD of the mirror).
H.UPSTREAM_COMMIT = "4b0074272edcf892893a955c01b49d664e29b309"

H.errof, H.assert_has = support.errof, support.assert_has

--- Default time limit of one test, in seconds.
H.LIMIT = 5

--- trio.run(fn) that fails with trio.TooSlowError after `seconds`.
function H.run(fn, seconds)
  return trio.run(function()
    return trio.fail_after(seconds or H.LIMIT, fn)
  end)
end

--- The `loop` fixture: fn(loop) inside trio.run + open_loop, bounded in
-- time (the limit is outside open_loop, so its exit is bounded too as long
-- as it can be cancelled).
function H.with_loop(fn, seconds)
  return trio.run(function()
    return trio.fail_after(seconds or H.LIMIT, ta.open_loop, fn)
  end)
end

--- pytest-trio's `autojump_clock`: trio.run(fn) on a MockClock with
-- autojump_threshold 0, so virtual time jumps to the next deadline as soon
-- as every task is blocked.  Bounded by `seconds` of virtual time.
function H.run_autojump(fn, seconds)
  return trio.lowlevel.run {
    fn = function() return trio.fail_after(seconds or 1000, fn) end,
    clock = trio.testing.MockClock { autojump_threshold = 0 },
  }
end

-- ---------------------------------------------------------------------
-- Isolated tests

--- The source text of a Lua function defined in a file (from its first
-- `function` keyword on its first line to its last `end` on its last line).
local function function_source(fn)
  local info = debug.getinfo(fn, "S")
  assert(info.source:sub(1, 1) == "@", "isolated: the function must come from a file")
  local lines, n = {}, 0
  for line in io.lines(info.source:sub(2)) do
    n = n + 1
    if n >= info.linedefined then lines[#lines + 1] = line end
    if n == info.lastlinedefined then break end
  end
  -- the last "function" on the first line, up to the last "end" of the last line
  local first = lines[1]
  local start
  for pos in first:gmatch("()function%s*%(") do start = pos end
  assert(start, "isolated: the function must start on its own line")
  lines[1] = first:sub(start)
  local last = lines[#lines]
  local stop
  for pos in last:gmatch("()end") do stop = pos end
  lines[#lines] = last:sub(1, stop + 2)
  -- keep line numbers: pad with blank lines
  return ("\n"):rep(info.linedefined - 1) .. "return " .. table.concat(lines, "\n"), info.source
end

local PRELUDE = [[
local build = os.getenv("TA_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath:gsub("%./%?%.so;?", "")
assert = require "luassert"
local f = assert(io.open(arg[1]))
local src = f:read("a")
f:close()
local fn = assert(load(src, arg[2]))()
local ok, err = xpcall(fn, debug.traceback)
io.stdout:write(ok and "ISOLATED OK\n" or ("ISOLATED FAILED: " .. tostring(err) .. "\n"))
io.stdout:flush()
os.exit(ok and 0 or 1, true)
]]

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Runs fn in a fresh lua5.4 process that is killed after `seconds`, and
-- fails if fn failed or did not finish in time.  fn must be self-contained
-- (no upvalues: it requires what it uses); it may use busted's `assert`.
-- For tests whose failure mode is a wait that no Trio cancellation can end.
function H.isolated(seconds, fn)
  for i = 1, math.huge do
    local up = debug.getupvalue(fn, i)
    if up == nil then break end
    assert(up == "_ENV", "isolated: the function must not use upvalues (uses " .. up .. ")")
  end
  local src, name = function_source(fn)
  local prelude_file, src_file = os.tmpname(), os.tmpname()
  local f = assert(io.open(prelude_file, "w")); f:write(PRELUDE); f:close()
  f = assert(io.open(src_file, "w")); f:write(src); f:close()
  local cmd = ("timeout -k 2 %d lua5.4 %s %s %s 2>&1"):format(seconds,
    shell_quote(prelude_file), shell_quote(src_file), shell_quote(name))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, how, code = p:close()
  os.remove(prelude_file)
  os.remove(src_file)
  if how == "exit" and code == 124 or how == "signal" then
    error(("isolated test did not finish within %d s (hang)\n%s"):format(seconds, out), 2)
  end
  if not out:find("ISOLATED OK\n", 1, true) then
    error("isolated test failed:\n" .. out, 2)
  end
end

-- ---------------------------------------------------------------------
-- Small translations of upstream helpers

--- `Seen`: an object with an integer flag word.
function H.Seen() return { flag = 0 } end

--- A boolean as Python prints it, for the ids of parametrized tests.
function H.py(b) return b and "True" or "False" end

--- A list of the values of a `for`-style iterator (async_gen_to_list).
function H.collect(iter, state, control)
  local out = {}
  for v in iter, state, control do out[#out + 1] = v end
  return out
end

return H
