--- trio.testing helpers for test suites (what pytest-trio is to Trio):
-- run a test body inside trio.run, optionally on an autojumping MockClock,
-- check that it left no task, libuv handle or file descriptor behind, and
-- hand busted a lone assertion failure from a child task as a Failure.
--
--   trio.testing.it(name, fn [, opts])    a busted `it` whose body runs in a Trio run
--   trio.testing.trio_test(fn [, opts])   the same as a plain function, for any framework
--
-- opts: clock (a MockClock), autojump (true, or a threshold in seconds: a
-- MockClock that jumps when every task is blocked), timeout (seconds of
-- the run's clock before the body is cancelled and the test fails),
-- instruments (a list), leak_check (default true).
-- The body is called with the MockClock (nil without one).
-- These fields are merged into trio.testing by lua/trio.lua.
local M = {}

local pack, unpack = table.pack, table.unpack

local function is_callable(f)
  local mt = getmetatable(f)
  return type(f) == "function" or (type(mt) == "table" and mt.__call ~= nil)
end

-- busted marks assertion failures and pending() with a metatable whose
-- __type is "failure" or "pending"; anything else is an error to it.
local function busted_kind(e)
  local mt = getmetatable(e)
  if type(mt) ~= "table" then return nil end
  local kind = rawget(mt, "__type")
  if kind == "failure" or kind == "pending" then return kind end
  return nil
end

--- The error a test should raise for err: a group that holds (through
-- nested groups) a single busted failure or pending marker becomes that
-- marker, so busted counts a Failure (or Pending) and not an Error.
function M._unwrap_failure(err)
  local ExceptionGroup = require("trio.errors").ExceptionGroup
  local e = err
  while ExceptionGroup:is(e) and #e.exceptions == 1 do e = e.exceptions[1] end
  if e ~= err and busted_kind(e) then return e end
  return err
end

-- Open file descriptors of this process (Linux /proc; nil elsewhere).
local function count_fds()
  local ok, lfs = pcall(require, "lfs")
  if not ok then return nil end
  local ok2, n = pcall(function()
    local c = 0
    for _ in lfs.dir("/proc/self/fd") do c = c + 1 end
    return c
  end)
  return ok2 and n or nil
end

local function snapshot()
  collectgarbage("collect")
  collectgarbage("collect")
  local st = require("trio_asyncio.core").debug_state()
  return { tasks = st.tasks, handles = st.handles, fds = count_fds() }
end

-- Raises (at the test) if more tasks, handles or fds are live than before.
local function check_leaks(before, who)
  local after = snapshot()
  local problems = {}
  if after.tasks > before.tasks then
    problems[#problems + 1] = ("%d live task(s)"):format(after.tasks - before.tasks)
  end
  if after.handles > before.handles then
    problems[#problems + 1] = ("%d open libuv handle(s)"):format(after.handles - before.handles)
  end
  if before.fds and after.fds and after.fds > before.fds then
    problems[#problems + 1] = ("%d file descriptor(s)"):format(after.fds - before.fds)
  end
  if #problems > 0 then
    error(("%s: the test left %s behind"):format(who, table.concat(problems, ", ")), 0)
  end
end

--- Checks opts (argument #argn of fname); returns it (a table).
function M._check_opts(opts, fname, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (options table expected, got %s)"):format(argn, fname, type(opts)), 3)
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout ~= opts.timeout
      or opts.timeout < 0) then
    error(("bad argument #%d to '%s' (opts.timeout must be a non-negative number)"):format(argn, fname), 3)
  end
  local aj = opts.autojump
  if aj ~= nil and aj ~= true and aj ~= false and type(aj) ~= "number" then
    error(("bad argument #%d to '%s' (opts.autojump must be true or a threshold in seconds)")
      :format(argn, fname), 3)
  end
  return opts
end

--- Runs body(clock) in trio.run the way opts say (clock, timeout,
-- instruments), re-raising a lone failure as itself and checking for
-- leaks; returns body's results.  `who` names the caller in messages.
function M._run_test(body, opts, who)
  local trio = require "trio"
  local before = opts.leak_check ~= false and snapshot()
  local clock = opts.clock
  if clock == nil and opts.autojump then
    clock = trio.testing.MockClock { autojump_threshold = opts.autojump == true and 0 or opts.autojump }
  end
  local timeout = opts.timeout
  local fn = body
  if timeout then
    fn = function(...)
      local scope = trio.CancelScope { deadline = trio.current_time() + timeout }
      local r = pack(scope:run(body, ...))
      if scope.cancelled_caught then
        error(("%s: the test did not finish within %g s"):format(who, timeout), 0)
      end
      return unpack(r, 1, r.n)
    end
  end
  local r = pack(pcall(trio.lowlevel.run, {
    fn = fn, args = { clock, n = 1 }, clock = clock, instruments = opts.instruments,
  }))
  if not r[1] then error(M._unwrap_failure(r[2]), 0) end
  if before then check_leaks(before, who) end
  return unpack(r, 2, r.n)
end

--- trio.testing.trio_test(fn [, opts]) -> a function that runs fn in a
-- fresh Trio run (see the options above); for any test framework.
function M.trio_test(fn, opts)
  if not is_callable(fn) then
    error(("bad argument #1 to 'trio_test' (function expected, got %s)"):format(type(fn)), 2)
  end
  opts = M._check_opts(opts, "trio_test", 2)
  return function() return M._run_test(fn, opts, "trio.testing") end
end

-- The running busted's `it`, or an error naming the caller.
function M._busted_it(fname)
  local ok, busted = pcall(require, "busted")
  local it = ok and type(busted) == "table" and busted.it
  if not it then
    error(fname .. ": must be called while busted loads a spec file "
      .. "(with another framework, wrap the body with trio.testing.trio_test)", 3)
  end
  return it
end

-- An `it(name, fn [, opts])` for busted (named fname in its errors) whose
-- body is make_test(fn, opts); trio_asyncio.testing.it is one too.
function M._make_it(fname, make_test)
  return function(name, fn, opts)
    if type(name) ~= "string" then
      error(("bad argument #1 to 'it' (string expected, got %s)"):format(type(name)), 2)
    end
    if not is_callable(fn) then
      error(("bad argument #2 to 'it' (function expected, got %s)"):format(type(fn)), 2)
    end
    local it = M._busted_it(fname)
    local test = make_test(fn, M._check_opts(opts, "it", 3))
    return it(name, test) -- a tail call: busted records the spec's line, not this one
  end
end

--- trio.testing.it(name, fn [, opts]): a busted test whose body runs in a
-- fresh Trio run (see the options above).
M.it = M._make_it("trio.testing.it", M.trio_test)

return M
