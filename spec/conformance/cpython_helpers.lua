--- cpython_helpers.lua: what the specs ported from CPython's
-- Lib/test/test_asyncio/ share (require "conformance.cpython_helpers").
--
-- CPython's tests run either on a loop driven by hand (test_utils.TestCase:
-- loop.run_until_complete, test_utils.run_briefly) or inside a Task
-- (unittest.IsolatedAsyncioTestCase).  `with_loop` and `run` give both, with
-- a guard timer: a run that would hang is stopped after GUARD seconds and
-- the test fails, and leftover Tasks are cancelled and run out before the
-- loop closes (the spec helper checks that nothing is left behind).
local asyncio = require "asyncio"
local errors = require "trio.errors"
local core = require "trio_asyncio.core"

local H = {}

-- Seconds a test may keep a loop running: 5, or 60 under a wrapper such as
-- valgrind (scripts/test.sh's TA_WRAP), where making an SSL context alone
-- takes seconds.
H.GUARD = (os.getenv("TA_WRAP") or "") ~= "" and 60 or 5

H.CancelledError = asyncio.CancelledError
H.TimeoutError = asyncio.TimeoutError
H.InvalidStateError = asyncio.InvalidStateError
H.RuntimeError = errors.RuntimeError
H.ValueError = asyncio.ValueError

-- Stand-ins for the Python exception classes the tests raise themselves.
H.KeyError = errors.class("KeyError", errors.Error)
H.ZeroDivisionError = errors.class("ZeroDivisionError", errors.Error, "division by zero")
H.TestError = errors.class("TestError", errors.Error) -- RuntimeError('boom') and the like
H.FooException = errors.class("FooException", errors.Error)

--- pcall(fn, ...) returning only the error (nil when it succeeded).
function H.catch(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return e
end

--- Python's assertRaises(cls): fn(...) must raise an error of class cls,
-- which is returned; an error of another class goes on unchanged (as in
-- Python, where assertRaises lets other exceptions through).  cls may also
-- be a string: then the error's text must contain it.
function H.assert_raises(cls, fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then error(("%s not raised"):format(tostring(cls)), 2) end
  if type(cls) == "string" then
    if not tostring(e):find(cls, 1, true) then error(e, 0) end
    return e
  end
  if not cls:is(e) then error(e, 0) end
  return e
end

--- assertRaises(TypeError) for a bad argument: fn(...) must raise an
-- argument error ("bad argument ... to '<fname>'"), which is returned
-- (docs/SEMANTICS.md: argument errors stand for Python's TypeError).
function H.assert_argerror(fname, fn, ...)
  local e = H.catch(fn, ...)
  assert(e ~= nil, "no error raised")
  local text = tostring(e)
  assert(text:find("bad argument", 1, true) and text:find(fname, 1, true), text)
  return e
end

--- try/finally: fn(...), then always finally_fn(); fn's error goes on.
function H.try_finally(fn, finally_fn, ...)
  local r = table.pack(pcall(fn, ...))
  finally_fn()
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- try/except CancelledError: fn(...); a CancelledError is handed to
-- handler(e) (whose results are returned), any other error goes on.
function H.except_cancelled(fn, handler, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if not asyncio.CancelledError:is(r[2]) then error(r[2], 0) end
  return handler(r[2])
end

--- Cancels the loop's leftover Tasks and runs them out (bounded).
local function drain(loop)
  local left = asyncio.all_tasks(loop)
  if #left == 0 then return end
  for _, t in ipairs(left) do t:cancel() end
  local guard = loop:call_later(H.GUARD, function() loop:stop() end)
  pcall(loop.run_until_complete, loop, function()
    asyncio.wait(left)
  end)
  guard:cancel()
  for _, t in ipairs(left) do
    if t:done() and not t:cancelled() then t:exception() end -- no "never retrieved" noise
  end
end

--- with_loop(fn): a new event loop for fn(loop) (test_utils.TestCase with
-- self.loop), closed afterwards.  A loop that keeps running more than GUARD
-- seconds is stopped and the test fails.
function H.with_loop(fn)
  local loop = asyncio.new_event_loop()
  local fired = false
  local guard = loop:call_later(H.GUARD, function()
    fired = true
    loop:stop()
  end)
  local r = table.pack(pcall(fn, loop))
  guard:cancel()
  if not loop:is_closed() then
    if not loop:is_running() then drain(loop) end
    loop:close()
  end
  if fired then
    error(("the test ran its loop more than %g s (a hang): %s"):format(H.GUARD, tostring(r[2])), 0)
  end
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- run(fn): fn() as the main Task of a new loop
-- (IsolatedAsyncioTestCase); returns its results.
function H.run(fn)
  return H.with_loop(function(loop)
    return loop:run_until_complete(loop:create_task(fn))
  end)
end

--- test_utils.run_briefly: run the loop until a Task that does nothing is
-- done (two iterations in asyncio).
function H.run_briefly(loop)
  loop:run_until_complete(loop:create_task(function() end))
end

--- GatherTestsBase._run_loop: run the loop while it has work (here: a few
-- brief runs; the ready queue is private).
function H.run_loop(loop)
  for _ = 1, 5 do H.run_briefly(loop) end
end

--- The Future that Python's asyncio.gather(...) returns.  In Lua gather
-- awaits (it is an async function), so a Task awaits it and hands its
-- outcome to a plain Future.  As asyncio's gathering future, cancelling it
-- cancels the gather (through the core's cancel hook, which the bridge's
-- run_trio futures use too) and it ends with a CancelledError as its
-- exception once the gather has ended.  The result is gather's list
-- ({n = n, ...}).
function H.gather_future(loop, ...)
  local args = table.pack(...)
  local fut = loop:create_future()
  local cancel_requested = false
  local runner = loop:create_task(function()
    local r = table.pack(pcall(asyncio.gather, table.unpack(args, 1, args.n)))
    if fut:done() then return end
    if r[1] and cancel_requested then
      fut:set_exception(asyncio.CancelledError())
    elseif r[1] then
      fut:set_result(r[2])
    else
      fut:set_exception(r[2])
    end
  end)
  core.future_set_cancel_hook(fut, function()
    cancel_requested = true
    runner:cancel()
  end)
  return fut
end

--- The Future that Python's asyncio.shield(inner) returns: a Task awaiting
-- the shield (cancelling it leaves inner alone).
function H.shield_future(loop, inner)
  return loop:create_task(asyncio.shield, inner)
end

--- Captures the loop's exception handler calls; returns the list.
function H.capture_handler(loop)
  local calls = {}
  loop:set_exception_handler(function(_, ctx) calls[#calls + 1] = ctx end)
  return calls
end

--- assertAlmostEqual for times measured on a real clock: at least
-- expected - 0.005, at most expected + slack (a loaded machine is slow).
function H.assert_time(expected, actual, slack)
  slack = slack or 0.5
  assert(actual >= expected - 0.005 and actual <= expected + slack,
    ("expected about %.3f s, got %.3f s"):format(expected, actual))
end

--- Blocks the whole process for s seconds (Python's time.sleep in a
-- coroutine: the loop is busy).
function H.block(s)
  local ok, socket = pcall(require, "socket")
  if ok and socket.sleep then
    socket.sleep(s)
    return
  end
  local t = os.clock() + s
  repeat until os.clock() >= t
end

--- fn(), returning what it wrote to io.stderr (where asyncio's default
-- exception handler writes: Python's logger).  fn's error goes on.
function H.captured_stderr(fn)
  local out = {}
  local real = io.stderr
  io.stderr = { write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = tostring(s) end end }
  local ok, err = pcall(fn)
  io.stderr = real
  if not ok then error(err, 0) end
  return table.concat(out)
end

--- Compares two lists as sets (by identity of their elements).
function H.assert_same_set(expected, actual)
  local seen = {}
  for _, v in ipairs(actual) do seen[v] = true end
  for _, v in ipairs(expected) do
    assert(seen[v], "an expected element is missing")
    seen[v] = nil
  end
  assert(next(seen) == nil, "an unexpected element is present")
end

--- The number shown as `<key>:N` in tostring(obj): how many tasks wait on
-- a lock, event, semaphore or queue (Python reads len(obj._waiters)).
function H.count(obj, key)
  local n = tostring(obj):match((key or "waiters") .. ":(%-?%d+)")
  assert(n, ("tostring(%s) shows no %s count"):format(tostring(obj), key or "waiters"))
  return tonumber(n)
end

--- true for an asyncio Task (isinstance(t, asyncio.Task)).
function H.is_task(x)
  return asyncio.isfuture(x) and type(x.get_name) == "function"
end

--- `pending` that runs its body as an ordinary test when the environment
-- sets CPY_RUN_PENDING=1 (to see whether a pending test still fails).
function H.pending(pending, it)
  if os.getenv("CPY_RUN_PENDING") == "1" then return it end
  return pending
end

return H
