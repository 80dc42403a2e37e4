--- trio_helpers.lua: what the ported Trio tests share (require
-- "conformance.trio_helpers").  The counterparts of Trio's test fixtures and
-- of pytest's raises/RaisesGroup, written for our Lua API.
--
-- Every run made through H.run has a watchdog: a system task that ends the
-- run with a TrioInternalError after H.LIMIT seconds (real clock), or after
-- a jump past 1e9 mock seconds (mock clock, which then autojumps after
-- H.LIMIT real seconds of idleness unless the test chose a threshold), so a
-- test that hangs fails on its own time limit instead of blocking the file.
local trio = require "trio"
local errors = require "trio.errors"
local core = require "trio_asyncio.core"

local H = {}
-- 10 s, or 120 s under a wrapper such as valgrind (scripts/test.sh's
-- TA_WRAP), which runs the tests 20 to 50 times slower.
H.LIMIT = (os.getenv("TA_WRAP") or "") ~= "" and 120 or 10
H.MOCK_WATCHDOG = 1e9 -- when the watchdog of a run on a mock clock fires (its clock time)

-- Error classes standing in for Python's builtin exceptions in the tests.
H.KeyError = errors.class("test.KeyError", errors.Error)
H.ValueError = errors.class("test.ValueError", errors.Error)
H.IndexError = errors.class("test.IndexError", errors.Error)
H.StopIteration = errors.class("test.StopIteration", errors.Error)

local function watchdog(mock)
  core.spawn_system_task(function()
    if mock then trio.sleep_until(H.MOCK_WATCHDOG) else trio.sleep(H.LIMIT) end
    core.run_sync_soon(function()
      error(("watchdog: the test did not finish within %s s"):format(
        mock and "1e9 mock" or tostring(H.LIMIT)), 0)
    end)
  end)
end

--- H.mock_clock([autojump_threshold]): Trio's mock_clock fixture (no
-- autojump: the threshold only serves as the watchdog) or, with a
-- threshold, the autojump_clock fixture.
function H.mock_clock(threshold)
  return trio.testing.MockClock { autojump_threshold = threshold or H.LIMIT }
end

--- H.run(fn, ...) or H.run({clock=, instruments=}, fn, ...): trio.run with
-- the watchdog; returns fn's results or raises its error.
function H.run(opts, ...)
  local fn, args
  if type(opts) == "table" and getmetatable(opts) == nil then
    fn, args = ..., table.pack(select(2, ...))
  else
    fn, args, opts = opts, table.pack(...), {}
  end
  return trio.lowlevel.run {
    clock = opts.clock,
    instruments = opts.instruments,
    args = args,
    fn = function(...)
      watchdog(opts.clock ~= nil)
      return fn(...)
    end,
  }
end

-- ---------------------------------------------------------------------
-- pytest.raises / RaisesGroup

local function describe_err(e)
  return tostring(e):match("^[^\n]*")
end

--- H.matches(e, m): m is a class (m:is(e)), a predicate function, a plain
-- string (e is that string, or an error whose message is it) or a group
-- matcher made by H.group.
function H.matches(e, m)
  if type(m) == "function" then return m(e) and true or false end
  if type(m) == "string" then
    return e == m or (type(e) == "table" and e.message == m)
  end
  if type(m) == "table" and m.__group_matcher then return m:match(e) end
  return m:is(e)
end

-- Every element of errs matched by one matcher each (any order).
local function match_all(errs, ms)
  if #errs ~= #ms then return false end
  local used = {}
  local function try(i)
    if i > #errs then return true end
    for j, m in ipairs(ms) do
      if not used[j] and H.matches(errs[i], m) then
        used[j] = true
        if try(i + 1) then return true end
        used[j] = nil
      end
    end
    return false
  end
  return try(1)
end

--- H.group(m1, m2, ...): matches a trio.ExceptionGroup whose exceptions
-- are matched one to one by the matchers, in any order (RaisesGroup).
-- A table {message=...} as first argument also checks the group's message.
function H.group(...)
  local ms = { ... }
  local message
  if type(ms[1]) == "table" and getmetatable(ms[1]) == nil and not ms[1].__group_matcher then
    message = table.remove(ms, 1).message
  end
  return {
    __group_matcher = true,
    match = function(_, e)
      if not trio.ExceptionGroup:is(e) then return false end
      if message ~= nil and e.message ~= message then return false end
      return match_all(e.exceptions, ms)
    end,
  }
end

--- H.raises(m, fn, ...): fn(...) must raise an error matched by m;
-- returns the error.
function H.raises(m, fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then error("expected an error, but the call returned normally", 2) end
  if not H.matches(e, m) then
    error("the call raised an unexpected error: " .. tostring(e), 2)
  end
  return e
end

--- H.any: matches every error (pytest.raises(Exception) where our error
-- has no matching class, e.g. Python's TypeError/ValueError for bad
-- arguments, which are "bad argument" errors here).
function H.any() return true end

--- H.msg(pattern): matches an error whose text (tostring) finds pattern
-- (plain text).
function H.msg(pattern)
  return function(e) return tostring(e):find(pattern, 1, true) ~= nil end
end

--- H.assert_group(e, m1, m2, ...): e is a group matched by H.group(m1, ...).
function H.assert_group(e, ...)
  if not H.group(...):match(e) then
    error("unexpected error (wanted an ExceptionGroup of the given errors): " .. tostring(e), 2)
  end
  return e
end

--- H.raises_group(fn, m1, m2, ...): fn must raise such a group.
function H.raises_group(fn, ...)
  local ok, e = pcall(fn)
  if ok then error("expected an ExceptionGroup, but the call returned normally", 2) end
  if not H.group(...):match(e) then
    error("unexpected error (wanted an ExceptionGroup of the given errors): " .. tostring(e), 2)
  end
  return e
end

--- H.with_replaced(tbl, key, value, fn): fn() with tbl[key] replaced by
-- value, restored afterwards (Trio's monkeypatch fixture, and its custom
-- socket factory / hostname resolver: trio.socket's functions replaced for
-- a call); returns fn's results or raises its error.
function H.with_replaced(tbl, key, value, fn)
  local saved = tbl[key]
  tbl[key] = value
  local r = table.pack(pcall(fn))
  tbl[key] = saved
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- ---------------------------------------------------------------------
-- sequences and sets

--- H.set{...}: an unordered group of items for check_sequence_matches.
function H.set(items)
  return { __set = true, items = items }
end

--- tutil.check_sequence_matches: seq equals template, where a H.set in
-- the template matches its items in any order.
function H.check_sequence_matches(seq, template)
  local i = 1
  for _, pattern in ipairs(template) do
    if type(pattern) == "table" and pattern.__set then
      local want = {}
      for _, v in ipairs(pattern.items) do want[v] = (want[v] or 0) + 1 end
      for _ = 1, #pattern.items do
        local got = seq[i]
        if not want[got] or want[got] == 0 then
          error(("sequence item %d is %s, not one of the expected set"):format(i, tostring(got)), 2)
        end
        want[got] = want[got] - 1
        i = i + 1
      end
    else
      if seq[i] ~= pattern then
        error(("sequence item %d is %s, expected %s"):format(i, tostring(seq[i]), tostring(pattern)), 2)
      end
      i = i + 1
    end
  end
  if seq[i] ~= nil then error(("sequence has extra items from %d on"):format(i), 2) end
end

--- Sorted copy of a list (numbers or strings).
function H.sorted(t)
  local c = { table.unpack(t) }
  table.sort(c)
  return c
end

--- Keys of a set-like table, sorted.
function H.keys(t)
  local c = {}
  for k in pairs(t) do c[#c + 1] = k end
  table.sort(c, function(a, b) return tostring(a) < tostring(b) end)
  return c
end

function H.range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

-- ---------------------------------------------------------------------
-- trio.testing.assert_checkpoints: our API has no checkpoint counters, so
-- this checks that fn(...) let the scheduler run (the current task was
-- stepped again), which every checkpoint does.
function H.assert_checkpoints(fn, ...)
  local me = trio.lowlevel.current_task()
  local steps = 0
  local inst = { before_task_step = function(_, t) if t == me then steps = steps + 1 end end }
  trio.lowlevel.add_instrument(inst)
  local r = table.pack(pcall(fn, ...))
  trio.lowlevel.remove_instrument(inst)
  if not r[1] then error(r[2], 0) end
  if steps == 0 then error("assert_checkpoints: the call did not checkpoint", 2) end
  return table.unpack(r, 2, r.n)
end

-- test_run.py's own sleep_forever: returns what the task is rescheduled
-- with.
function H.sleep_forever()
  return trio.lowlevel.wait_task_rescheduled(function() return trio.lowlevel.Abort.SUCCEEDED end)
end

-- ---------------------------------------------------------------------
-- Guest mode: test_guest_mode.py's trivial_guest_run.  The "host" is this
-- loop: it runs the functions queued with in_host(fn), in order, between
-- steps of the guest run (core.guest_step, the stepping a C host does with
-- trio_asyncio_step), and returns the run's results or raises its error.
function H.trivial_guest_run(trio_fn, opts)
  opts = opts or {}
  local todo = {}
  local function in_host(fn) todo[#todo + 1] = fn end
  local done
  trio.lowlevel.start_guest_run(trio_fn, {
    args = { in_host, n = 1 },
    clock = opts.clock,
    instruments = opts.instruments,
    done_callback = function(...) done = table.pack(...) end,
  })
  local give_up = os.time() + H.LIMIT + 1
  local ok, err = pcall(function()
    if opts.in_host_after_start then opts.in_host_after_start() end
    while not done do
      while #todo > 0 do table.remove(todo, 1)() end
      if done then break end
      core.guest_step(0.05)
      if os.time() > give_up and not done then
        error("trivial_guest_run: the guest run did not finish in time", 0)
      end
    end
  end)
  if not ok then
    -- The host failed: end the run (an internal error cancels everything)
    -- so that the next test starts clean, then raise the host's error.
    if not done then
      core.run_sync_soon(function() error("trivial_guest_run: the host failed", 0) end)
      local stop = os.time() + 5
      while not done and os.time() <= stop do core.guest_step(0.05) end
    end
    error(err, 0)
  end
  if done[1] then return table.unpack(done, 2, done.n) end
  error(done[2], 0)
end

-- ---------------------------------------------------------------------
-- Ctrl-C: runs a Lua script in a child process (so that a lost SIGINT
-- cannot kill the test runner); the script gets `trio`, `H` and
-- `interrupt([delay])`, which has SIGINT sent to its own process after
-- delay seconds (default 0.1) from a background shell (system() ignores
-- SIGINT in the caller while it waits, so a synchronous kill is lost).
-- Returns the script's output (stdout and stderr) and its exit line.
function H.run_script(body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath))
  f:write([[
local trio = require "trio"
local H = require "conformance.trio_helpers"
local sf = assert(io.open("/proc/self/stat"))
local pid = sf:read("l"):match("^(%d+)")
sf:close()
local function interrupt(delay)
  os.execute(("(sleep %s; kill -INT %s) >/dev/null 2>&1 &"):format(delay or 0.1, pid))
end
]])
  f:write(body)
  f:close()
  local p = io.popen("timeout 30 lua5.4 " .. path .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

H.describe_err = describe_err

return H
