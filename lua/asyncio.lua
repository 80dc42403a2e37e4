--- asyncio: the asyncio-flavored event loop for Lua 5.4.
--
-- The loop (ready queue, timers, readers/writers), Futures and Tasks are C
-- (trio_asyncio.core); this file adds the loop's lifecycle (run_until_complete,
-- run_forever, stop, close, exception handling) and the helpers (sleep,
-- gather, wait_for, wait, as_completed, shield, timeout).
--
-- One driver for both flavors: a loop runs only while a Trio task drives it.
-- run_until_complete and run_forever start a Trio run whose main task drives
-- the loop until the future is done or stop() is called; the loop keeps its
-- tasks, callbacks and timers between runs.  trio_asyncio.open_loop drives a
-- loop inside the caller's Trio run instead.
local version = require "trio_asyncio.version" -- first: the Lua-version guard
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local trio = require "trio"

local pack, unpack = table.pack, table.unpack

local asyncio = {}
asyncio._VERSION = version._VERSION

-- ---------------------------------------------------------------------
-- errors
asyncio.CancelledError = errors.class("asyncio.CancelledError", errors.Error, "cancelled")
asyncio.TimeoutError = errors.class("asyncio.TimeoutError", errors.Error, "timed out")
asyncio.InvalidStateError = errors.class("asyncio.InvalidStateError", errors.Error)
asyncio.IncompleteReadError = errors.class("asyncio.IncompleteReadError", errors.Error)
asyncio.LimitOverrunError = errors.class("asyncio.LimitOverrunError", errors.Error)
asyncio.OSError = errors.OSError -- the same class as trio_asyncio.OSError
asyncio.RuntimeError = errors.RuntimeError
core.set_aio_cancelled(asyncio.CancelledError)

local CancelledError, TimeoutError = asyncio.CancelledError, asyncio.TimeoutError

local argerror, is_callable = errors.argerror, errors.is_callable
local class_of, bad_self = errors.class_of, errors.bad_self

local LoopMT = core.metatable("trio_asyncio.Loop")

-- ensure_future for the helpers that take an awaitable: an argument error
-- names the helper (fname) and the argument's position (n; none when nil).
local function ensure(x, loop, fname, n)
  if core.is_future(x) then
    if loop ~= nil and x:get_loop() ~= loop then -- it would wait for a loop that does not run
      error(require("asyncio.sync").ValueError(fname .. ": the future belongs to a different loop "
        .. "than the running one"), 3)
    end
    return x
  end
  if is_callable(x) then return core.create_task(loop or asyncio.get_running_loop(), x) end
  error(("bad argument %sto '%s' (Future, Task or function expected, got %s)"):format(
    n and ("#" .. n .. " ") or "", fname, type(x)), 3)
end

-- ---------------------------------------------------------------------
-- the loop
local Loop = LoopMT.__index

local loop_state = require "asyncio.loop_state"
local attrs = loop_state.of

function Loop:create_future()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "create_future") end
  if self:is_closed() then error(errors.RuntimeError("create_future: Event loop is closed"), 2) end
  return core.future_new(self)
end

Loop.create_task = core.create_task

function Loop:is_running()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "is_running") end
  return attrs(self).running == true
end

function Loop:get_debug()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "get_debug") end
  return attrs(self).debug == true
end

--- set_debug(enabled): report callbacks slower than
-- loop.slow_callback_duration (0.1 s) and record where Tasks are created
-- (shown when a Task's error is never retrieved or it dies pending).
function Loop:set_debug(enabled)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "set_debug") end
  attrs(self).debug = not not enabled
  core.loop_set_debug(self, enabled, attrs(self).slow_callback_duration)
end

function Loop:set_exception_handler(handler)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "set_exception_handler") end
  if handler ~= nil and not is_callable(handler) then
    argerror(1, "set_exception_handler", "function or nil expected")
  end
  attrs(self).exception_handler = handler
end

function Loop:get_exception_handler()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "get_exception_handler") end
  return attrs(self).exception_handler
end

--- The default handler writes the context to stderr (asyncio logs it).
-- A loop may install a `default_handler_hook` attribute (the bridge does,
-- to make open_loop raise what reaches it); the context is written to
-- stderr only when the hook returns false (it did not take it).
function Loop:default_exception_handler(context)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "default_exception_handler") end
  if type(context) ~= "table" then argerror(1, "default_exception_handler", "table expected") end
  local hook = attrs(self).default_handler_hook
  if hook and hook(self, context) ~= false then return end
  local parts = { context.message or "Unhandled exception in event loop" }
  for _, key in ipairs { "handle", "future", "task" } do
    if context[key] ~= nil then parts[#parts + 1] = key .. ": " .. tostring(context[key]) end
  end
  if context.exception ~= nil then parts[#parts + 1] = tostring(context.exception) end
  if context.source_traceback ~= nil then parts[#parts + 1] = context.source_traceback end
  io.stderr:write("asyncio: ", table.concat(parts, "\n  "), "\n")
end

function Loop:call_exception_handler(context)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "call_exception_handler") end
  if type(context) ~= "table" then argerror(1, "call_exception_handler", "table expected") end
  local handler = attrs(self).exception_handler
  if handler == nil then return self:default_exception_handler(context) end
  local ok, err = pcall(handler, self, context)
  if not ok then
    self:default_exception_handler {
      message = "Unhandled error in exception handler", exception = err, context = context,
    }
  end
end

local function check_sync(loop, fname)
  if attrs(loop).bridged then error(errors.RuntimeError(fname .. ": This is not a sync loop"), 3) end
  if loop:is_closed() then error(errors.RuntimeError(fname .. ": Event loop is closed"), 3) end
  if loop:is_running() then error(errors.RuntimeError(fname .. ": This event loop is already running"), 3) end
  if core.is_running() and not attrs(loop).background then
    error(errors.RuntimeError(fname .. ": cannot run a loop inside a running trio run "
      .. "(use trio_asyncio.open_loop)"), 3)
  end
end

--- Runs a Trio run whose main task drives the loop until `until_done()`
-- is true or stop() is called; attrs.wake is an Event set whenever that may
-- have changed.
local function drive(loop, until_done)
  local a = attrs(loop)
  a.running, a.wake = true, trio.Event() -- a stop() already asked for stays asked
  core.loop_stop_driver(loop, false)
  local status, err = core.run(function()
    trio.open_nursery(function(n)
      n:start_soon(core.loop_drive, loop)
      while not until_done() and not a.stopping do
        a.wake:wait()
        a.wake = trio.Event()
      end
      core.loop_stop_driver(loop)
    end)
  end, nil, nil, "trio")
  a.running, a.wake, a.stopping = false, nil, false
  -- Ctrl-C comes out of the driving run's nursery in a group: asyncio raises it bare
  if status ~= "ok" then error(errors.interrupt_in(err) or err, 0) end
end

function Loop:run_until_complete(x)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "run_until_complete") end
  check_sync(self, "run_until_complete")
  local fut = ensure(x, self, "run_until_complete", 1)
  local a = attrs(self)
  -- As asyncio's stop callback: the loop ends after the batch that runs
  -- this callback (the driver stops there, not after one more batch).
  local function wakeup()
    if a.running then
      if a.drive then core.loop_pause(self) else core.loop_stop_driver(self) end
    end
    if a.wake then a.wake:set() end
  end
  fut:add_done_callback(wakeup)
  local ok, err = pcall(a.drive or drive, self, function() return fut:done() end)
  if not ok then a.running, a.stopping = false, false end -- (a driver that raised midway)
  fut:remove_done_callback(wakeup)
  if not ok then error(err, 0) end
  if not fut:done() then
    error(errors.RuntimeError("run_until_complete: Event loop stopped before Future completed."), 2)
  end
  return fut:result()
end

function Loop:run_forever()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "run_forever") end
  check_sync(self, "run_forever")
  local a = attrs(self);
  (a.drive or drive)(self, function() return false end)
end

--- stop(): the running loop returns after the current batch of callbacks.
-- A loop may install a `stop_hook` attribute (the bridge does: an open_loop
-- loop is not driven by run_forever).
function Loop:stop(...)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "stop") end
  local a = attrs(self)
  if a.stop_hook then return a.stop_hook(self, ...) end
  a.stopping = true
  if a.running then
    -- the driver returns (or, for a driver that must survive, yields) after
    -- the current batch: callbacks scheduled now run at the next run
    if a.drive then core.loop_pause(self) else core.loop_stop_driver(self) end
  end
  if a.wake then a.wake:set() end
end

asyncio._drive = drive

function Loop:close()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "close") end
  if self:is_running() then
    error(errors.RuntimeError("close: Cannot close a running event loop; stop it first"), 2)
  end
  local a = attrs(self)
  if a.on_close then a.on_close(self) end
  if a.transports ~= nil then asyncio._drop_transports(self) end
  core.loop_close(self)
end

-- ---------------------------------------------------------------------
-- the current loop
local current_loop_var = trio.ContextVar("trio_asyncio.current_loop", nil)
asyncio._current_loop_var = current_loop_var
local event_loop -- the loop set with set_event_loop

function asyncio.get_running_loop()
  local loop = core.running_loop()
  if loop then return loop end
  loop = current_loop_var:get()
  if loop then return loop end
  error(errors.RuntimeError("get_running_loop: no running event loop"), 2)
end

function asyncio.new_event_loop()
  return loop_state.new_loop()
end

function asyncio.get_event_loop()
  local loop = core.running_loop() or current_loop_var:get()
  if loop then return loop end
  if event_loop == nil or event_loop:is_closed() then event_loop = asyncio.new_event_loop() end
  return event_loop
end

function asyncio.set_event_loop(loop)
  if loop ~= nil and getmetatable(loop) ~= core.metatable("trio_asyncio.Loop") then
    argerror(1, "set_event_loop", "event loop or nil expected")
  end
  event_loop = loop
end

--- The loop for what is called without one: the running loop, else the
-- loop set with set_event_loop; RuntimeError when there is neither.
local function implicit_loop(fname)
  local loop = core.running_loop() or current_loop_var:get()
  if loop then return loop end
  if event_loop ~= nil and not event_loop:is_closed() then return event_loop end
  error(errors.RuntimeError(fname .. ": There is no current event loop"), 3)
end

-- ---------------------------------------------------------------------
-- tasks and futures

--- asyncio.Future([loop]): a new Future of loop (default: the running
-- loop, else the one set with set_event_loop).
asyncio.Future = function(loop)
  if loop ~= nil and getmetatable(loop) ~= LoopMT then
    argerror(1, "Future", "event loop or nil expected, got " .. type(loop))
  end
  return (loop or implicit_loop("Future")):create_future()
end
asyncio.isfuture = core.is_future

--- asyncio.current_task([loop]): the running Task (nil in a callback).
-- With a loop: the Task that loop is running now, nil if none (callable
-- from anywhere, as asyncio's current_task(loop)).
function asyncio.current_task(loop)
  local t = core.current_aio_task()
  if loop ~= nil then
    if getmetatable(loop) ~= core.metatable("trio_asyncio.Loop") then
      argerror(1, "current_task", "event loop or nil expected, got " .. type(loop))
    end
    if t and t:get_loop() == loop then return t end
    return nil
  end
  if t then return t end
  if core.in_loop_callback() then return nil end
  core.check_aio("asyncio.current_task")
  return nil
end

--- asyncio.all_tasks([loop]) -> the loop's pending Tasks, oldest first.
function asyncio.all_tasks(loop)
  if loop ~= nil and getmetatable(loop) ~= LoopMT then
    argerror(1, "all_tasks", "event loop or nil expected, got " .. type(loop))
  end
  return core.loop_tasks(loop or asyncio.get_running_loop())
end

--- asyncio.Task([loop,] fn, ...) -> a new Task running fn(...) on loop
-- (default: the running loop, else the one set with set_event_loop),
-- made whatever the loop's task factory (what a task factory calls).
function asyncio.Task(loop, ...)
  if getmetatable(loop) == core.metatable("trio_asyncio.Loop") then return core.new_task(loop, ...) end
  if not is_callable(loop) then
    argerror(1, "Task", "event loop or function expected, got " .. type(loop))
  end
  return core.new_task(implicit_loop("Task"), loop, ...)
end

--- asyncio.create_task(fn, ...) -> a Task running fn(...) on the running loop.
asyncio.create_task = core.make_create_task(asyncio.get_running_loop)

local ValueError = require("asyncio.sync").ValueError

--- ensure_future(x [, loop]): a Future or Task as is (it must belong to
-- loop when one is given); a function becomes a Task on loop (default: the
-- running loop, else the one set with set_event_loop).
function asyncio.ensure_future(x, loop)
  if loop ~= nil and getmetatable(loop) ~= LoopMT then
    argerror(2, "ensure_future", "event loop or nil expected, got " .. type(loop))
  end
  if core.is_future(x) then
    if loop ~= nil and x:get_loop() ~= loop then
      error(ValueError("ensure_future: The future belongs to a different loop than "
        .. "the one specified as the loop argument"), 2)
    end
    return x
  end
  if is_callable(x) then return core.create_task(loop or implicit_loop("ensure_future"), x) end
  argerror(1, "ensure_future", "Future, Task or function expected, got " .. type(x))
end

--- asyncio.await(x): wait for a future or task (x:await() does the same).
function asyncio.await(x)
  if not core.is_future(x) then argerror(1, "await", "Future or Task expected, got " .. type(x)) end
  return x:await()
end

local function set_result_unless_done(fut, value)
  if not fut:done() then fut:set_result(value) end
end

-- The general sleep, for an allow_asyncio Trio task sleeping a while (the
-- C sleep does the rest itself).
local function sleep_in_trio_task(delay, result)
  local loop = asyncio.get_running_loop()
  local fut = loop:create_future()
  local h = loop:call_later(delay, set_result_unless_done, fut, result)
  local ok, err = pcall(fut.await, fut)
  if not ok then
    h:cancel()
    error(err, 0)
  end
  return result
end

--- asyncio.sleep(delay [, result]) -> result, after delay seconds; a delay
-- <= 0 only lets the other tasks and callbacks run.
asyncio.sleep = core.make_aio_sleep(sleep_in_trio_task)

--- asyncio.gather(aw1, aw2, ... [, {return_exceptions=true}]) -> list of
-- results in argument order ({n = n, ...}).  Cancelling the gather cancels
-- the children.
asyncio.gather = core.make_gather(function(x, loop) return ensure(x, loop, "gather") end,
  asyncio.get_running_loop)

local function release_waiter(waiter)
  return function() if not waiter:done() then waiter:set_result(true) end end
end

--- Cancels fut and waits until it is done (whatever it does with the
-- cancellation); cancelling the caller meanwhile does not wait.
local function cancel_and_wait(loop, fut)
  local waiter = loop:create_future()
  local cb = release_waiter(waiter)
  fut:add_done_callback(cb)
  fut:cancel()
  local ok, err = pcall(waiter.await, waiter)
  fut:remove_done_callback(cb)
  if not ok then error(err, 0) end
end

--- asyncio.wait_for(aw, timeout): the results of aw, or TimeoutError after
-- cancelling it.  timeout nil waits forever.  As in asyncio (3.12 on), a
-- function runs in the calling Task under asyncio.timeout (as a coroutine
-- is awaited there), and a future is awaited under it; a timeout <= 0
-- cancels aw without running it (TimeoutError), unless it is already done.
function asyncio.wait_for(aw, timeout)
  core.check_aio("asyncio.wait_for")
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    argerror(2, "wait_for", "number or nil expected")
  end
  local loop = asyncio.get_running_loop()
  if timeout ~= nil and timeout <= 0 then
    local fut = ensure(aw, loop, "wait_for", 1)
    if fut:done() then return fut:result() end
    cancel_and_wait(loop, fut)
    local r = pack(pcall(fut.result, fut))
    if r[1] then return unpack(r, 2, r.n) end
    if CancelledError:is(r[2]) then
      error(TimeoutError { message = "wait_for: timed out", cause = r[2] }, 0)
    end
    error(r[2], 0)
  end
  if core.current_aio_task() then -- (an allow_asyncio Trio task has none)
    if core.is_future(aw) then return asyncio.timeout(timeout, aw.await, aw) end
    if not is_callable(aw) then
      argerror(1, "wait_for", "Future, Task or function expected, got " .. type(aw))
    end
    return asyncio.timeout(timeout, aw)
  end
  local fut = ensure(aw, loop, "wait_for", 1)
  if timeout == nil then return fut:await() end
  local expired = false
  local h = loop:call_later(math.max(timeout, 0), function()
    expired = true
    fut:cancel()
  end)
  local r = pack(pcall(fut.await, fut))
  h:cancel()
  if r[1] then return unpack(r, 2, r.n) end
  if expired and CancelledError:is(r[2]) then
    error(TimeoutError { message = "wait_for: timed out", cause = r[2] }, 0)
  end
  error(r[2], 0)
end

asyncio.FIRST_COMPLETED = "FIRST_COMPLETED"
asyncio.FIRST_EXCEPTION = "FIRST_EXCEPTION"
asyncio.ALL_COMPLETED = "ALL_COMPLETED"

--- The futures of the list aws, in list order: a future listed twice
-- counts once (asyncio takes a set); each function becomes a Task.
local function unique_futures(aws, loop)
  local futs, seen = {}, {}
  for _, aw in ipairs(aws) do
    local fut = asyncio.ensure_future(aw, loop)
    if not seen[fut] then
      seen[fut] = true
      futs[#futs + 1] = fut
    end
  end
  return futs
end

--- asyncio.wait(aws, {timeout=, return_when=}) -> done, pending (lists)
function asyncio.wait(aws, opts)
  core.check_aio("asyncio.wait")
  if type(aws) ~= "table" or #aws == 0 then argerror(1, "wait", "non-empty list of futures expected") end
  opts = opts or {}
  local when = opts.return_when or asyncio.ALL_COMPLETED
  if when ~= "FIRST_COMPLETED" and when ~= "FIRST_EXCEPTION" and when ~= "ALL_COMPLETED" then
    argerror(2, "wait", "invalid return_when " .. tostring(when))
  end
  local loop = asyncio.get_running_loop()
  local futs = unique_futures(aws, loop)
  -- As asyncio: every future gets the callback, done ones too (it runs
  -- soon), so a future that already failed ends a FIRST_EXCEPTION wait.
  local waiter = loop:create_future()
  local counter = #futs
  local h
  local function check(f)
    counter = counter - 1
    if counter <= 0 or when == "FIRST_COMPLETED"
        or (when == "FIRST_EXCEPTION" and not f:cancelled() and f:exception() ~= nil) then
      if h then h:cancel() end
      if not waiter:done() then waiter:set_result(true) end
    end
  end
  for _, f in ipairs(futs) do f:add_done_callback(check) end
  if opts.timeout then h = loop:call_later(opts.timeout, set_result_unless_done, waiter, false) end
  local ok, err = pcall(waiter.await, waiter)
  if h then h:cancel() end
  for _, f in ipairs(futs) do f:remove_done_callback(check) end
  if not ok then error(err, 0) end
  local done, still = {}, {}
  for _, f in ipairs(futs) do
    if f:done() then done[#done + 1] = f else still[#still + 1] = f end
  end
  return done, still
end

--- A done future holding TimeoutError: what as_completed yields for each
-- future still pending when its timeout expired.  It counts as retrieved
-- (like a coroutine that raises when awaited, it reports nothing if the
-- caller drops it).
local function timed_out_future(loop)
  local f = loop:create_future()
  f:set_exception(TimeoutError("as_completed: timed out"))
  f:exception()
  return f
end

--- for fut in asyncio.as_completed(aws [, {timeout=}]) do ... fut:result() end
-- yields the futures in the order they complete.  Once `timeout` seconds
-- have passed, each further step yields a future holding TimeoutError, one
-- per future not done by then.
function asyncio.as_completed(aws, opts)
  if type(aws) ~= "table" then argerror(1, "as_completed", "list of futures expected") end
  if opts ~= nil and type(opts) ~= "table" then argerror(2, "as_completed", "table or nil expected") end
  local timeout = opts and opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    argerror(2, "as_completed", "timeout must be a number or nil")
  end
  local loop = asyncio.get_running_loop()
  local futs = unique_futures(aws, loop)
  local order, waiter, taken, total = {}, nil, 0, #futs
  local timed_out, h = false, nil
  local function on_done(f)
    if timed_out then return end -- (scheduled before the timeout, run after)
    order[#order + 1] = f
    if #order == total and h then h:cancel() end
    if waiter and not waiter:done() then waiter:set_result(true) end
  end
  for _, fut in ipairs(futs) do fut:add_done_callback(on_done) end
  if total > 0 and timeout ~= nil then
    h = loop:call_later(timeout, function()
      timed_out = true
      for _, fut in ipairs(futs) do fut:remove_done_callback(on_done) end
      if waiter and not waiter:done() then waiter:set_result(true) end
    end)
  end
  return function()
    if taken == total then return nil end
    while #order <= taken and not timed_out do
      waiter = loop:create_future()
      waiter:await()
    end
    taken = taken + 1
    if taken <= #order then return order[taken] end
    return timed_out_future(loop)
  end
end

--- asyncio.shield(aw): wait for aw; cancelling the caller does not cancel aw.
function asyncio.shield(aw)
  core.check_aio("asyncio.shield")
  local loop = asyncio.get_running_loop()
  local inner = ensure(aw, loop, "shield", 1)
  if inner:done() then return inner:result() end
  local outer = loop:create_future()
  inner:add_done_callback(function(f)
    if outer:cancelled() then
      if not f:cancelled() then f:exception() end
      return
    end
    if f:cancelled() then outer:cancel()
    elseif f:exception() ~= nil then outer:set_exception(f:exception())
    else outer:set_result(f) end
  end)
  local done = outer:await()
  return done:result()
end

--- fn(...) in the calling Task with a deadline (nil: none) at loop time
-- t, or t seconds from now when `relative`; raises TimeoutError when it
-- expires.  What asyncio.timeout and timeout_at share (asyncio's Timeout
-- object, entered and left).
local function run_until_deadline(fname, relative, t, fn, ...)
  if core.in_loop_callback() then
    error(errors.RuntimeError("asyncio." .. fname .. ": must be used inside a Task"), 2)
  end
  core.check_aio("asyncio." .. fname)
  local task = asyncio.current_task()
  if t ~= nil and (type(t) ~= "number" or t ~= t) then
    argerror(1, fname, "number or nil expected")
  end
  if not is_callable(fn) then argerror(2, fname, "function expected") end
  local loop = asyncio.get_running_loop()
  local expired, h = false, nil
  local before = task:cancelling()
  if t ~= nil then
    local function on_timeout()
      expired = true
      task:cancel()
    end
    local when = relative and loop:time() + t or t
    -- a deadline already past cancels at the next iteration, as asyncio
    -- does (call_soon), before a task that just yielded runs again
    if when <= loop:time() then h = loop:call_soon(on_timeout) else h = loop:call_at(when, on_timeout) end
  end
  local r = pack(pcall(fn, ...))
  if h then h:cancel() end
  if expired and task:uncancel() <= before and not r[1] and CancelledError:is(r[2]) then
    error(TimeoutError { message = "asyncio." .. fname .. ": the deadline expired", cause = r[2] }, 0)
  end
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

--- asyncio.timeout(delay, fn, ...): fn(...) with a deadline; raises
-- TimeoutError when it expires (delay nil: no deadline).
function asyncio.timeout(delay, fn, ...)
  return run_until_deadline("timeout", true, delay, fn, ...)
end

--- asyncio.timeout_at(when, fn, ...): fn(...) with a deadline at loop
-- time `when` (the loop:time() clock); raises TimeoutError when it
-- expires (when nil: no deadline).
function asyncio.timeout_at(when, fn, ...)
  return run_until_deadline("timeout_at", false, when, fn, ...)
end

-- ---------------------------------------------------------------------
-- running

-- The main Task, then the leftover tasks and the transports of asyncio.run.
local function run_main(loop, fn, ...)
  local main = core.create_task(loop, fn, ...)
  local r = pack(pcall(loop.run_until_complete, loop, main))
  local leftovers = core.loop_tasks(loop)
  for _, t in ipairs(leftovers) do t:cancel() end
  if #leftovers > 0 then
    leftovers[#leftovers + 1] = { return_exceptions = true }
    pcall(loop.run_until_complete, loop, function() return asyncio.gather(unpack(leftovers)) end)
  end
  if attrs(loop).transports ~= nil then
    pcall(loop.run_until_complete, loop, function() asyncio._close_transports(loop) end)
  end
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- However run_main went, the loop closes; a loop whose close() raised (not
-- enough memory) gives up its run, so that the state stays usable.
local function close_run_loop(loop, ok, ...)
  local closed, err = pcall(loop.close, loop)
  if not closed and attrs(loop).abandon then attrs(loop).abandon(loop) end
  if not ok then error((...), 0) end
  if not closed then error(err, 0) end
  return ...
end

--- asyncio.run(fn, ...): a new loop runs fn(...) as its main Task; leftover
-- tasks are cancelled and awaited, then the loop is closed.
function asyncio.run(fn, ...)
  if not is_callable(fn) then argerror(1, "run", "function expected") end
  local running, sync_loop = core.is_running()
  if sync_loop and not core.running_loop() then
    error(errors.RuntimeError("asyncio.run: " .. trio._SYNC_LOOP_OPEN), 2)
  end
  if core.running_loop() or running then
    error(errors.RuntimeError("asyncio.run() cannot be called from a running event loop"), 2)
  end
  local loop = asyncio.new_event_loop()
  return close_run_loop(loop, pcall(run_main, loop, fn, ...))
end

for k, v in pairs(require "asyncio.sync") do asyncio[k] = v end
for k, v in pairs(require "asyncio.queues") do asyncio[k] = v end

--- req:wait([cancellable]): waits for an I/O request (the object
-- trio_asyncio_push_work pushes for C hosts) in the calling task's
-- flavor and returns its results.
core.metatable("trio_asyncio.IORequest").__index = {
  wait = function(req, cancellable)
    if core.current_flavor() == "asyncio" then
      return core.io_future(core.running_loop() or asyncio.get_running_loop(), req):await()
    end
    return core.io_wait(req, cancellable)
  end,
}

-- I/O, installed on first use (lua/trio_asyncio/lazy.lua): the lookup of a
-- name asyncio or the Loop class lacks installs these parts in order until
-- one adds it.
require("trio_asyncio.lazy").defer({
  function() require "asyncio.system" (asyncio, implicit_loop) end, -- executors, files, subprocesses, signals
  function() -- networking: the socket module is trio.socket's
    asyncio.socket = trio.socket
    asyncio.staggered = require "asyncio.staggered"
    require "asyncio.net"(asyncio, Loop)
    require "asyncio.sslproto"(asyncio, Loop) -- ssl=, start_tls
    require "asyncio.streams"(asyncio, Loop)
  end,
}, asyncio, Loop)

return asyncio
