--- fuzzlib.lua: the runtime side of the fuzzer (tests/fuzz/gen.lua writes
-- programs that use it).  It checks the invariants while a generated
-- program runs and at its end:
--
--   * errors: every error a construct can raise on purpose is caught by a
--     guard that knows which kinds it may see (the deliberate FuzzError,
--     TooSlowError, asyncio.TimeoutError, BrokenResourceError); any other
--     error (an internal "attempt to index", a TrioInternalError, a
--     FlavorError, a nil error...) is a violation; cancellation goes on.
--   * channels: nothing lost or duplicated (received is a subset of what
--     was sent; all of it once a receiver saw the end of the channel).
--   * locks, semaphores, limiters: never more holders than allowed, none
--     left held or waiting afterwards.
--   * tasks: every Trio task spawned has exited, every asyncio Task
--     created is done, and no task, handle or run is left in the engine.
--   * the top-level run returns normally.
--
-- A violation prints "VIOLATION: ..." at once (stderr) and the program
-- ends with "FUZZ FAIL" and exit status 3; a clean run prints "FUZZ OK".
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

local F = { trio = trio, asyncio = asyncio, ta = ta }
local pack, unpack = table.pack, table.unpack

F.FuzzError = errors.class("fuzz.FuzzError", errors.Error)

local nviolations = 0
local function violation(fmt, ...)
  nviolations = nviolations + 1
  local msg = fmt:format(...)
  io.stderr:write("VIOLATION: ", msg, "\n")
  io.stderr:flush()
end
F.violation = violation

local function short(e)
  local ok, s = pcall(tostring, e)
  if not ok then s = "(error whose tostring fails)" end
  return (s:gsub("\n.*", ""))
end

-- ---------------------------------------------------------------------
-- errors

local function is_cancel(e)
  return trio.Cancelled:is(e) or asyncio.CancelledError:is(e) or trio.KeyboardInterrupt:is(e)
end

local function kind_of(e)
  if F.FuzzError:is(e) then return "fuzz" end
  if trio.TooSlowError:is(e) then return "tooslow" end
  if asyncio.TimeoutError:is(e) then return "timeout" end
  if trio.BrokenResourceError:is(e) or trio.ClosedResourceError:is(e) then return "broken" end
  return nil
end

-- The leaves of an error: an ExceptionGroup's exceptions, recursively.
local function leaves(e, out)
  out = out or {}
  if trio.ExceptionGroup:is(e) then
    for _, sub in ipairs(e.exceptions) do leaves(sub, out) end
    if #e.exceptions == 0 then out[#out + 1] = e end
  else
    out[#out + 1] = e
  end
  return out
end

--- guard(allowed, fn, ...): runs fn; an error whose leaves are all of the
-- allowed kinds (a comma-separated list) or cancellations is fine, and a
-- cancellation among them is raised again, alone (it belongs to an
-- enclosing scope).  Anything else is a violation.
function F.guard(allowed, fn, ...)
  local r = pack(pcall(fn, ...))
  if r[1] then return unpack(r, 2, r.n) end
  local err, cancelled = r[2], nil
  for _, leaf in ipairs(leaves(err)) do
    if is_cancel(leaf) then
      cancelled = cancelled or leaf
    else
      local k = kind_of(leaf)
      if k == nil or not allowed:find(k, 1, true) then
        violation("unexpected error (allowed here: %s): %s", allowed == "" and "none" or allowed, short(leaf))
        if F.verbose then io.stderr:write(tostring(err), "\n") end
      end
    end
  end
  -- only the cancellation goes on: the allowed errors stop here
  if cancelled then error(cancelled, 0) end
end

function F.raise(tag)
  error(F.FuzzError("deliberate error " .. tag), 0)
end

-- ---------------------------------------------------------------------
-- tasks

local spawned, exited, aio_tasks = 0, 0, {}
local Exit = { __close = function() exited = exited + 1 end }

--- spawn(nursery, fn, ...): start_soon, counting the task's exit.
function F.spawn(nursery, fn, ...)
  spawned = spawned + 1
  nursery:start_soon(function(...)
    local _ <close> = setmetatable({}, Exit)
    return fn(...)
  end, ...)
end

--- task(fn, ...): asyncio.create_task, remembered for the final check.
function F.task(fn, ...)
  local t = asyncio.create_task(fn, ...)
  aio_tasks[#aio_tasks + 1] = t
  return t
end

--- await_child(t, allowed): await a child Task; its own cancellation
-- (it was cancelled) is fine.
function F.await_child(t, allowed)
  local ok, err = pcall(t.await, t)
  if ok then return end
  if asyncio.CancelledError:is(err) and t:cancelled() then return end
  F.guard(allowed, error, err, 0)
end

--- wait_future(fut): Trio-flavored wait for an asyncio future; its being
-- cancelled from asyncio (fut:cancel()) is fine.
function F.wait_future(fut)
  local ok, err = pcall(ta.run_aio_future, fut)
  if ok then return end
  if asyncio.CancelledError:is(err) and fut:cancelled() then return end
  F.guard("", error, err, 0)
end

-- ---------------------------------------------------------------------
-- channels

function F.channel(cap)
  local send, recv = trio.open_memory_channel(cap)
  return { send = send, recv = recv, sent = {}, received = {}, nsent = 0, nreceived = 0, eoc = 0 }
end

function F.producer(ch, s, p, k, pause)
  local _ <close> = s
  for i = 1, k do
    local v = p * 1000 + i
    local ok, err = pcall(s.send, s, v)
    if not ok then
      if trio.BrokenResourceError:is(err) then return end
      error(err, 0)
    end
    ch.sent[v] = true
    ch.nsent = ch.nsent + 1
    if pause then trio.sleep(0) end
  end
end

function F.consumer(ch, r, pause)
  local _ <close> = r
  for v in r:iter() do
    if ch.received[v] then violation("channel: value %s received twice", tostring(v)) end
    ch.received[v] = true
    ch.nreceived = ch.nreceived + 1
    if pause then trio.sleep(0) end
  end
  ch.eoc = ch.eoc + 1
end

function F.channel_check(ch)
  for v in pairs(ch.received) do
    if not ch.sent[v] then violation("channel: value %s received but its send did not complete", tostring(v)) end
  end
  if ch.eoc > 0 and ch.nreceived ~= ch.nsent then
    violation("channel: %d values sent, %d received although a receiver saw the end of the channel",
      ch.nsent, ch.nreceived)
  end
end

-- ---------------------------------------------------------------------
-- sync primitives

--- A critical section of capacity `cap`: enter() counts holders (a
-- violation beyond cap), the returned value leaves on close.
function F.section(cap)
  local s = { inside = 0, cap = cap, entered = 0 }
  s.leave = setmetatable({}, { __close = function() s.inside = s.inside - 1 end })
  return s
end

function F.enter(s)
  s.inside = s.inside + 1
  s.entered = s.entered + 1
  if s.inside > s.cap then violation("%d holders inside a section of capacity %d", s.inside, s.cap) end
  return s.leave
end

function F.section_check(s, prim, what)
  if s.inside ~= 0 then violation("%s: %d holders left inside", what, s.inside) end
  if prim.locked and prim:locked() and what ~= "Semaphore" then violation("%s left locked", what) end
  local st = prim.statistics and prim:statistics()
  if st and st.tasks_waiting and st.tasks_waiting > 0 then
    violation("%s: %d tasks left waiting", what, st.tasks_waiting)
  end
  if st and st.borrowed_tokens and st.borrowed_tokens > 0 then
    violation("%s: %d tokens left borrowed", what, st.borrowed_tokens)
  end
end

-- ---------------------------------------------------------------------
-- garbage collection at random points

function F.gc(what)
  if what == "generational" or what == "incremental" then collectgarbage(what)
  elseif what == "step" then collectgarbage("step", 0)
  else collectgarbage("collect") end
end

-- ---------------------------------------------------------------------
-- instruments: Trio's rule that a task is never scheduled while it is
-- already scheduled (a task stepped twice would be a crash later).

function F.scheduling_instrument()
  local scheduled = {}
  return {
    task_scheduled = function(_, t)
      if scheduled[t] then violation("task %s scheduled while already scheduled", short(t)) end
      scheduled[t] = true
    end,
    before_task_step = function(_, t) scheduled[t] = nil end,
    task_exited = function(_, t) scheduled[t] = nil end,
  }
end

-- ---------------------------------------------------------------------
-- the top level

local DONE = "fuzz: done"
F.DONE = DONE

--- top(mode, fn, opts): runs fn at the top in the given mode; it must
-- return F.DONE.  Modes: trio, mock (MockClock with autojump), ta
-- (trio_asyncio.run), asyncio, sync (fn is a list of functions, each run
-- with run_until_complete of one sync loop).
function F.top(mode, fn, opts)
  opts = opts or {}
  local instruments = opts.instrument and { F.scheduling_instrument() } or nil
  local r
  if mode == "trio" then
    r = pack(pcall(trio.lowlevel.run, { fn = fn, instruments = instruments }))
  elseif mode == "mock" then
    r = pack(pcall(trio.lowlevel.run, { fn = fn, instruments = instruments,
      clock = trio.testing.MockClock { autojump_threshold = 0 } }))
  elseif mode == "ta" then
    r = pack(pcall(trio.lowlevel.run, { fn = function() return ta.open_loop(fn) end, instruments = instruments }))
  elseif mode == "asyncio" then
    r = pack(pcall(asyncio.run, fn))
  elseif mode == "sync" then
    local loop = asyncio.new_event_loop()
    r = { n = 2, true, DONE }
    for i, f in ipairs(fn) do
      local ri = pack(pcall(loop.run_until_complete, loop, f))
      if not ri[1] or ri[2] ~= DONE then r = ri break end
      if opts.gc_between then F.gc(opts.gc_between) end
    end
    -- As asyncio.run does: Tasks the program left behind (a child whose
    -- parent was cancelled before awaiting it) are cancelled and awaited;
    -- again while that made new ones (a Task that catches its
    -- cancellation may go on and create Tasks, which asyncio.run would
    -- leave pending), at most 10 rounds.
    local ok, err = pcall(loop.run_until_complete, loop, function()
      for _ = 1, 10 do
        local rest, me = asyncio.all_tasks(), asyncio.current_task()
        for i = #rest, 1, -1 do if rest[i] == me then table.remove(rest, i) else rest[i]:cancel() end end
        if #rest == 0 then break end
        rest[#rest + 1] = { return_exceptions = true }
        asyncio.gather(table.unpack(rest))
      end
    end)
    if not ok then violation("cancelling the sync loop's leftover tasks failed: %s", short(err)) end
    ok, err = pcall(loop.close, loop)
    if not ok then violation("sync loop close failed: %s", short(err)) end
  else
    error("unknown mode " .. tostring(mode))
  end
  if not r[1] then
    violation("the top level raised: %s", short(r[2]))
    if F.verbose then io.stderr:write(tostring(r[2]), "\n") end
  elseif r[2] ~= DONE then
    violation("the top level returned %s instead of finishing its body", short(r[2]))
  end
end

function F.finish()
  collectgarbage("collect")
  collectgarbage("collect")
  if spawned ~= exited then violation("%d Trio tasks spawned, %d exited", spawned, exited) end
  for _, t in ipairs(aio_tasks) do
    if not t:done() then violation("asyncio %s was never finished", short(t)) end
  end
  local st = core.debug_state()
  if st.running then violation("a run is still active after the program") end
  if st.tasks > 0 then violation("%d live task(s) after the program", st.tasks) end
  if st.handles > 0 then violation("%d libuv handle(s) left open", st.handles) end
  local ok, v = pcall(trio.run, function() trio.sleep(0) return 7 end)
  if not ok or v ~= 7 then violation("the state is not usable afterwards: %s", short(v)) end
  if nviolations > 0 then
    print(("FUZZ FAIL %d violation(s)"):format(nviolations))
    io.stdout:flush()
    os.exit(3)
  end
  print(("FUZZ OK (%d Trio tasks, %d asyncio tasks)"):format(spawned, #aio_tasks))
end

return F
