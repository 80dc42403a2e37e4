--- trio_asyncio: an asyncio loop running on the Trio scheduler, and explicit
-- wrappers to call a function of the other flavor.
--
--   trio_asyncio.open_loop(fn)      Trio: fn(loop) with an asyncio loop open
--   trio_asyncio.aio_as_trio(f)     asyncio-flavored f -> Trio-flavored function
--   trio_asyncio.trio_as_aio(f)     Trio-flavored f -> asyncio-flavored function
--
-- A loop opened here is driven by a Trio task of the caller's run (the same
-- driver asyncio.run uses, see lua/asyncio.lua).  Trio tasks started from
-- asyncio code run in the loop's own shielded "service" nursery.
local version = require "trio_asyncio.version" -- first: the Lua-version guard
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local trio = require "trio"
local asyncio = require "asyncio"

local pack, unpack = table.pack, table.unpack
local loop_state = require "asyncio.loop_state"
local attrs = loop_state.of
local current_loop_var = asyncio._current_loop_var
local LoopMT = core.metatable("trio_asyncio.Loop")
local Loop = LoopMT.__index

local M = {}
M._VERSION = version._VERSION

M.FlavorError = errors.FlavorError
--- The base class of every error class of trio, asyncio and trio_asyncio.
M.Error = errors.Error
-- OS errors: OSError and its subclasses (errno, code, message, filename).
for _, name in ipairs(errors.OS_ERRORS) do M[name] = errors[name] end

--- "trio", "asyncio" or nil for the running task (what sniffio answers).
M.current_flavor = core.current_flavor

local argerror, is_callable = errors.argerror, errors.is_callable
local class_of, bad_self = errors.class_of, errors.bad_self

--- The loop of this context (the innermost open_loop, or the loop running
-- the current asyncio task or callback), nil if none.
local running_loop, ctx_get = core.running_loop, core.ctx_get
local function current_loop()
  local loop = running_loop() or ctx_get(current_loop_var)
  if getmetatable(loop) == LoopMT then return loop end -- (the hot path)
  return current_loop_var:get() -- unset, or set to nil
end
M.current_loop = current_loop

local function need_loop(fname)
  local loop = current_loop()
  if loop == nil then
    error(errors.RuntimeError(fname .. ": no asyncio loop is open here (use trio_asyncio.open_loop)"), 3)
  end
  return loop
end

-- ---------------------------------------------------------------------
-- Trio -> asyncio

--- run_aio_future(fut): Trio-flavored wait for an asyncio Future or Task.
-- Trio cancellation cancels it and waits for it to finish.
M.run_aio_future = core.future_wait

-- A function whose only result is a Future (a sync function handing out a
-- future, the Lua form of Python's "returns an awaitable") is awaited, as
-- trio-asyncio awaits what the function returns.
local function await_returned(first, ...)
  if select("#", ...) == 0 and core.is_future(first) then return core.future_wait(first) end
  return first, ...
end

--- run_aio_coroutine(fn, ...): run an asyncio-flavored function as a Task
-- on the current loop and return its results (a Future it returns is
-- awaited).  Given a Future or Task, waits for it.
function M.run_aio_coroutine(fn, ...)
  core.check_trio("trio_asyncio.run_aio_coroutine")
  local is_fut = core.is_future(fn)
  if not is_fut and not is_callable(fn) then
    argerror(1, "run_aio_coroutine", "function, Future or Task expected")
  end
  local loop = need_loop("run_aio_coroutine")
  if loop:is_closed() then error(errors.RuntimeError("run_aio_coroutine: Event loop is closed"), 2) end
  if is_fut then return core.future_wait(fn) end
  return await_returned(core.future_wait(core.create_task(loop, fn, ...)))
end

--- aio_as_trio(f): a Trio-flavored function running f(...) as an asyncio
-- Task (a Future it returns is awaited).  For a Future or Task, a function
-- that waits for it.  An iterator function works too:
-- `for v in aio_as_trio(iter) do` runs each step.
-- (C closures, the function and the caller it makes: core.make_aio_as_trio
-- in csrc/asyncio/future.c; these helpers serve what is not the hot path)
local future_wait = core.future_wait
M.aio_as_trio = core.make_aio_as_trio {
  name = "aio_as_trio",
  check = function(x)
    if core.is_future(x) then return function() return future_wait(x) end end
    if is_callable(x) then return true end
    return nil, "function, Future or Task expected"
  end,
  context_var = current_loop_var, need_loop = need_loop,
}

-- ---------------------------------------------------------------------
-- asyncio -> Trio

local function service_nursery(loop, fname)
  local a = attrs(loop)
  if not a.service then
    error(errors.RuntimeError(fname .. ": the loop is not running inside Trio "
      .. "(open it with trio_asyncio.open_loop)"), 3)
  end
  return a.service
end

-- A Trio task started from asyncio code sees `loop` as its current loop.
-- It usually inherits it; setting copies the task's context (a hot path).
local function see_loop(loop)
  if ctx_get(current_loop_var) ~= loop then current_loop_var:set(loop) end
end

local function is_cancelled(e) return trio.Cancelled:is(e) end

-- What Python calls a BaseException: it must keep propagating in Trio
-- instead of going to an asyncio future or exception handler.
local function is_base(e) return trio.Cancelled:is(e) or trio.KeyboardInterrupt:is(e) end

--- loop:run_trio(fn, ...): start fn as a Trio task; an asyncio Future of its
-- results.  Cancelling the future cancels the Trio task; the future ends
-- when the task has ended (cancelled if it ended through that cancellation).
-- The Trio task behind loop:run_trio runs fn in scope unless the future
-- was cancelled before it started, then settles the future.  Like every
-- Trio task started from asyncio code, it sees `loop` as its current loop
-- (so aio_as_trio works in it, also on a sync loop).
-- (The hot path of trio_as_aio: the C functions are called directly, not
-- through the objects' __index.)
local future_new, future_done = core.future_new, core.future_done
local set_cancel_hook, future_set_results = core.future_set_cancel_hook, core.future_set_results
local scope_settle = trio._scope_settle
local cancelled_caught = core.scope_cancelled_caught
local loop_is_closed = Loop.is_closed

-- settle_outcome(fut, scope, ok, ...): fut gets what pcall(scope.run,
-- scope, fn, ...) gave (passed on as arguments: no table per call).  Only
-- cancel() consults the future's cancel hook, so the hook is cleared before
-- fut:cancel() (which would otherwise ask the ended task to stop and leave
-- fut pending); a future settled otherwise is done and keeps it.
local function settle_outcome(fut, scope, ok, ...)
  if ok then
    if not future_done(fut) then
      if select("#", ...) == 0 and cancelled_caught(scope) then
        set_cancel_hook(fut, nil)
        fut:cancel()
      else
        future_set_results(fut, ...)
      end
    end
    return
  end
  set_cancel_hook(fut, nil)
  local cancelled, rest = errors.split((...), is_cancelled)
  if not future_done(fut) then
    if rest ~= nil then fut:set_exception(rest) else fut:cancel() end
  end
  if cancelled ~= nil then error(cancelled, 0) end
end

-- The Trio task's body (a C closure, made by core.make_scope_task in
-- csrc/trio/scope.c): body(scope, loop, fut, fn, ...) runs fn(...) in
-- scope, fn at depth 1 of the task's thread; its results go to fut unless
-- fut was cancelled meanwhile; its error leaves the scope as scope:run
-- would and settles fut (settle_outcome).
-- start_trio_task(nursery, loop, fut, fn, ...) -> scope: a new scope, and
-- that body started in the nursery (one C call).
local start_trio_task = core.make_scope_task {
  context_var = current_loop_var,
  enter_context = function(loop) current_loop_var:set(loop) end,
  not_started = function(fut) -- its scope was cancelled before it started
    set_cancel_hook(fut, nil)
    if not future_done(fut) then fut:cancel() end
  end,
  raised = function(fut, scope, err) return settle_outcome(fut, scope, scope_settle(scope, false, err)) end,
}

-- start_trio(loop, fname, fn, ...): loop:run_trio once its arguments are
-- checked.
local function start_trio(loop, fname, fn, ...)
  local nursery = attrs(loop).service or service_nursery(loop, fname) -- (the latter raises)
  if loop_is_closed(loop) then error(errors.RuntimeError(fname .. ": Event loop is closed"), 3) end
  local fut = future_new(loop)
  -- cancelling fut cancels the scope
  set_cancel_hook(fut, start_trio_task(nursery, loop, fut, fn, ...))
  return fut
end

function Loop:run_trio(fn, ...)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "run_trio") end
  if type(fn) ~= "function" and not is_callable(fn) then argerror(1, "run_trio", "function expected") end
  return start_trio(self, "run_trio", fn, ...)
end

-- The handle loop:run_trio_task returns: cancel() cancels the Trio task
-- (or keeps it from starting).
local TrioTaskHandle = { __name = "trio_asyncio.TrioTaskHandle" }
TrioTaskHandle.__index = TrioTaskHandle

function TrioTaskHandle:cancel()
  self._cancelled = true
  self._scope:cancel()
end

function TrioTaskHandle:cancelled() return self._cancelled end

function TrioTaskHandle:__tostring()
  return ("trio_asyncio.TrioTaskHandle (%s%s)"):format(self._name, self._cancelled and ", cancelled" or "")
end

local function describe_fn(fn)
  local info = type(fn) == "function" and debug.getinfo(fn, "S")
  if info and info.what ~= "C" then return ("%s:%d"):format(info.short_src, info.linedefined) end
  return tostring(fn)
end

-- The Trio task behind loop:run_trio_task: an error goes to the loop's
-- exception handler (the default one of an open_loop loop raises it out of
-- the block); Cancelled and KeyboardInterrupt keep propagating.
local function run_trio_task_body(loop, handle, fn, ...)
  see_loop(loop) -- aio_as_trio works in it, also on a sync loop
  -- the task keeps the name of fn ("file:line"), as if fn ran directly
  if type(fn) == "function" and debug.getinfo(fn, "S").what ~= "C" then
    trio.lowlevel.current_task().name = handle._name
  end
  local scope = handle._scope
  if scope.cancel_called then return end
  local ok, err = pcall(scope.run, scope, fn, ...)
  if ok then return end
  local base, rest = errors.split(err, is_base)
  if rest ~= nil then
    loop:call_exception_handler {
      message = "Exception in callback " .. handle._name, exception = rest, handle = handle,
    }
  end
  if base ~= nil then error(base, 0) end
end

--- loop:run_trio_task(fn, ...): start fn as a Trio task in the loop's
-- nursery; returns a handle whose cancel() cancels it.  Its error goes to
-- the loop's exception handler (by default, it ends the open_loop block).
function Loop:run_trio_task(fn, ...)
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "run_trio_task") end
  if not is_callable(fn) then argerror(1, "run_trio_task", "function expected") end
  local nursery = service_nursery(self, "run_trio_task")
  local handle = setmetatable({ _scope = core.CancelScope(), _cancelled = false,
    _name = describe_fn(fn) }, TrioTaskHandle)
  nursery:start_soon(run_trio_task_body, self, handle, fn, ...)
  return handle
end

--- trio_asyncio.run_trio_task(fn, ...): loop:run_trio_task on the current
-- loop; returns nothing.
function M.run_trio_task(fn, ...)
  local loop = M.current_loop()
  if loop == nil then
    error(errors.RuntimeError("run_trio_task: you are not within a trio_asyncio loop"), 2)
  end
  loop:run_trio_task(fn, ...)
end

--- loop:synchronize(): Trio-flavored; returns once every asyncio callback
-- queued before the call has run.
function Loop:synchronize()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "synchronize") end
  core.check_trio("loop:synchronize")
  local fut = self:create_future()
  self:call_soon(fut.set_result, fut, true)
  core.future_wait(fut)
end

--- trio_as_aio(f): an asyncio-flavored function running f(...) as a Trio
-- task; Trio's Cancelled comes back as asyncio.CancelledError.
-- (C closures, the function and the caller it makes: core.make_trio_as_aio
-- in csrc/asyncio/future.c does what start_trio does, and calls start_trio
-- for what may raise)
M.trio_as_aio = core.make_trio_as_aio {
  name = "trio_as_aio",
  check = function(f)
    if is_callable(f) then return true end
    return nil, "function expected"
  end,
  start_task = start_trio_task, service_key = "service",
  start = function(fn, ...)
    return start_trio(running_loop() or asyncio.get_running_loop(), "trio_as_aio", fn, ...)
  end,
}

-- ---------------------------------------------------------------------
-- open_loop

-- The loop's service nursery, shielded: Trio tasks started from asyncio
-- code (run_trio, run_trio_task) run here until the loop closes.
local function service_body(a)
  return function(task_status)
    trio.lowlevel.current_task().name = "trio_asyncio service nursery"
    local shield = trio.CancelScope { shield = true }
    local ok, err = pcall(shield.run, shield, trio.open_nursery, function(service)
        a.service = service
        a.service_ready:set()
        if task_status then task_status:started(service) end
        trio.sleep_forever()
      end)
    a.service_exited:set()
    if not ok then error(err, 0) end
  end
end


-- The default exception handler of an open_loop loop: the first error that
-- reaches it ends the block, which then raises it.  Once the block has
-- ended, it is only written to stderr (returns false), as asyncio does.
local function raise_from_loop(loop, context)
  local a = attrs(loop)
  if a.service == nil then return false end
  if a.pending_error == nil then
    local e = context.exception
    if e == nil then e = errors.RuntimeError(context.message or "error in asyncio loop") end
    a.pending_error = e
    if a.body_scope then a.body_scope:cancel() end
  end
end

-- Returns the KeyboardInterrupt that came during it (the shutdown goes on:
-- open_loop raises it once done).
local function shutdown(loop, a)
  local interrupt
  -- A loop that the body stopped and closed is left as it is: its callbacks
  -- and tasks are dropped (trio-asyncio does the same).
  if not loop:is_closed() then
    -- 1. callbacks already queued still run
    loop:synchronize()
    -- 2. pending asyncio tasks are cancelled and awaited (their cleanup may await)
    local pending = core.loop_tasks(loop)
    for _, t in ipairs(pending) do t:cancel() end
    for _, t in ipairs(pending) do
      local ok, e = pcall(core.future_wait, t)
      if not ok and trio.KeyboardInterrupt:is(e) then interrupt = interrupt or e end
    end
    -- its transports and servers close: peers read EOF, ports refuse
    if attrs(loop).transports ~= nil then pcall(M.run_aio_coroutine, asyncio._close_transports, loop) end
  end
  -- 3. Trio tasks started from asyncio code are cancelled and awaited
  a.service_ready:wait()
  a.service.cancel_scope:cancel()
  a.service_exited:wait()
  -- 4. the driver stops
  core.loop_stop_driver(loop)
  return interrupt
end


-- loop:stop([event]) of an open_loop loop.  The loop is not driven by
-- run_forever, so stop() does not end its driver: once the callbacks queued
-- before it have run, the loop counts as stopped (is_running() is false,
-- close() is allowed, wait_stopped() returns) and `event` (a trio.Event,
-- made if not given) is set.  Callbacks and tasks go on running.  Returns
-- the event; without an argument, a second stop() returns the first one's.
local function bridged_stop(loop, waiter)
  local a = attrs(loop)
  if waiter == nil then
    if a.stop_wait ~= nil then return a.stop_wait end
    waiter = trio.Event()
    a.stop_wait = waiter
  elseif type(waiter) ~= "table" or not is_callable(waiter.set) then
    argerror(1, "stop", "trio.Event or nil expected")
  end
  if not a.running or loop:is_closed() then
    waiter:set()
  else
    a.stop_waiters[waiter] = true -- open_loop sets what is left when it ends
    loop:call_soon(function()
      a.running = false
      a.stopped:set()
      a.stop_waiters[waiter] = nil
      waiter:set()
    end)
  end
  return waiter
end

--- loop:wait_stopped(): Trio-flavored; returns once the open_loop loop has
-- stopped (stop() took effect, or the open_loop block has ended).
function Loop:wait_stopped()
  if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "wait_stopped") end
  core.check_trio("loop:wait_stopped")
  local stopped = attrs(self).stopped
  if stopped == nil then
    error(errors.RuntimeError("wait_stopped: not a loop of trio_asyncio.open_loop"), 2)
  end
  stopped:wait()
end

--- open_loop(fn): Trio-flavored; runs fn(loop) with an asyncio loop driven
-- by this Trio run.  On exit (normal, error or cancellation): queued
-- callbacks run, asyncio tasks are cancelled and awaited, Trio tasks
-- started from asyncio are cancelled and awaited, the loop closes; then
-- fn's results or error come out.
function M.open_loop(fn)
  core.check_trio("trio_asyncio.open_loop")
  if not is_callable(fn) then argerror(1, "open_loop", "function expected") end
  local loop = loop_state.new_loop()
  local a = attrs(loop)
  a.bridged, a.running = true, true
  a.default_handler_hook = raise_from_loop
  a.stop_hook, a.stopped, a.stop_waiters = bridged_stop, trio.Event(), {}
  a.service_ready, a.service_exited = trio.Event(), trio.Event()
  local token = current_loop_var:set(loop)
  local r, interrupt
  local ok, err = pcall(trio.open_nursery, function(n)
    n:start_soon(function()
      trio.lowlevel.current_task().name = "trio_asyncio loop driver"
      trio.CancelScope { shield = true }:run(core.loop_drive, loop)
    end)
    -- (not nursery:start: in a scope already cancelled, start raises before
    -- the service exists, and the shutdown below must still stop the driver)
    n:start_soon(service_body(a))
    a.body_scope = trio.CancelScope()
    r = pack(pcall(function()
      a.service_ready:wait()
      return a.body_scope:run(fn, loop)
    end))
    interrupt = trio.CancelScope { shield = true }:run(shutdown, loop, a)
  end)
  a.running = false
  a.service = nil
  a.stopped:set()
  for waiter in pairs(a.stop_waiters) do waiter:set() end
  if a.transports ~= nil then asyncio._drop_transports(loop) end
  core.loop_close(loop)
  current_loop_var:reset(token)
  if interrupt then error(interrupt, 0) end -- a Ctrl-C during the shutdown
  if not ok then error(err, 0) end
  if not r[1] then error(r[2], 0) end
  if a.pending_error ~= nil then error(a.pending_error, 0) end
  return unpack(r, 2, r.n)
end

--- trio_asyncio.run(fn, ...): trio.run + open_loop, fn Trio-flavored.
function M.run(fn, ...)
  if not is_callable(fn) then argerror(1, "run", "function expected") end
  local args = pack(...)
  local info = debug.getinfo(fn, "S")
  return trio.run(function()
    if info and info.what ~= "C" then
      trio.lowlevel.current_task().name = ("%s:%d"):format(info.short_src, info.linedefined)
    end
    return M.open_loop(function() return fn(unpack(args, 1, args.n)) end)
  end)
end

--- start_guest_run(fn, opts): trio.lowlevel.start_guest_run with an
-- asyncio loop opened around fn (fn(loop) runs Trio-flavored).
function M.start_guest_run(fn, opts)
  if not is_callable(fn) then argerror(1, "start_guest_run", "function expected") end
  return trio.lowlevel.start_guest_run(function(...)
    local args = pack(...)
    return M.open_loop(function(loop) return fn(loop, unpack(args, 1, args.n)) end)
  end, opts)
end

--- allow_asyncio(fn, ...): Trio-flavored; fn runs in a task where both
-- flavors may be called directly (a Future it returns is awaited; given a
-- Future or Task, waits for it).
function M.allow_asyncio(fn, ...)
  core.check_trio("trio_asyncio.allow_asyncio")
  if core.is_future(fn) then return core.future_wait(fn) end
  if not is_callable(fn) then argerror(1, "allow_asyncio", "function, Future or Task expected") end
  local args, r = pack(...), nil
  local ok, err = pcall(trio.open_nursery, function(n)
    core.nursery_spawn_both(n, function()
      r = pack(await_returned(fn(unpack(args, 1, args.n))))
    end)
  end)
  if not ok then
    if trio.ExceptionGroup:is(err) and #err.exceptions == 1 then err = err.exceptions[1] end
    error(err, 0)
  end
  return unpack(r, 1, r.n)
end

-- ---------------------------------------------------------------------
-- Introspection: both flavors in one tree

local function aio_node(t)
  return {
    name = t:get_name(), flavor = "asyncio", kind = "task",
    where = core.task_where(t), task = t, children = {},
  }
end

-- Hangs each loop (with its Tasks) under the Trio task that drives it.
local function graft_loops(node, loops_by_driver)
  for _, child in ipairs(node.children) do graft_loops(child, loops_by_driver) end
  local loop = loops_by_driver[node.task]
  if loop then
    node.kind = "loop driver"
    local lnode = { name = tostring(loop), flavor = "asyncio", kind = "loop", where = "", children = {} }
    for _, t in ipairs(core.loop_tasks(loop)) do lnode.children[#lnode.children + 1] = aio_node(t) end
    node.children[#node.children + 1] = lnode
  end
end

--- task_tree() -> the live tasks of both flavors as one tree (the nodes of
-- trio.lowlevel.task_tree); asyncio tasks appear under the loop that runs
-- them.  nil outside a run.
function M.task_tree()
  local tree = trio.lowlevel.task_tree()
  if tree == nil then return nil end
  local loops_by_driver = {}
  for _, loop in ipairs(core.live_loops()) do
    local driver = core.loop_driver(loop)
    if driver then loops_by_driver[driver] = loop end
  end
  graft_loops(tree, loops_by_driver)
  return tree
end

--- dump_tasks([write]): print the task tree (to io.write by default).
function M.dump_tasks(write)
  if write ~= nil and not is_callable(write) then
    argerror(1, "dump_tasks", "function expected, got " .. type(write))
  end
  trio.lowlevel.dump_tasks(write, M.task_tree())
end

-- ---------------------------------------------------------------------
-- The sync loop: usable outside any Trio run, run_until_complete again and
-- again.  It keeps a Trio run of its own, started at its first use and
-- paused between calls (a guest run stepped from run_until_complete), so
-- Trio tasks started through trio_as_aio survive between calls.  No OS
-- thread.  While it is open, this Lua state has that run active.

local function start_background(loop, a)
  a.background = true
  a.background_stop = trio.Event()
  a.service_ready, a.service_exited = trio.Event(), trio.Event()
  core.start_guest_run(function()
    trio.open_nursery(function(n)
      a.service = n:start(service_body(a))
      n:start_soon(core.loop_drive, loop)
      a.background_stop:wait()
      a.service.cancel_scope:cancel()
      a.service_exited:wait()
      core.loop_stop_driver(loop)
    end)
  end, nil, nil, "trio", function(status, err)
    a.background, a.service = false, nil
    if status ~= "ok" then a.background_error = err end
  end, true) -- a Ctrl-C interrupts run_until_complete, not the loop's own run
end

local function drive_sync(loop, until_done)
  local a = attrs(loop)
  if not a.background then
    local running, sync_loop = core.is_running()
    if sync_loop then error(errors.RuntimeError("run_until_complete: " .. trio._SYNC_LOOP_OPEN), 0) end
    if running then
      error(errors.RuntimeError("run_until_complete: a trio run is already active in this Lua state "
        .. "(inside trio, use trio_asyncio.open_loop)"), 0)
    end
    start_background(loop, a)
  end
  a.running = true
  -- One step without waiting first (a stop() already asked for, or a done
  -- future, still lets queued callbacks run once), then block between steps.
  local wait = 0
  while a.background do
    -- (a run that ended although its done callback did not say so: the
    -- callback failed, not enough memory, and guest_step raised that)
    if not core.guest_step(wait) then a.background = false end
    wait = -1
    if core.take_interrupt() then -- as asyncio: out of run_until_complete; the loop stays usable
      a.running, a.stopping = false, false
      error(errors.KeyboardInterrupt("interrupted by Ctrl-C (SIGINT)"), 0)
    end
    if until_done() or a.stopping then break end
  end
  a.running, a.stopping = false, false
  if a.background_error ~= nil then
    local e = a.background_error
    a.background_error = nil
    error(e, 0)
  end
end

local function close_sync(loop)
  local a = attrs(loop)
  if not a.background then return end
  a.background_stop:set()
  while a.background do
    if not core.guest_step(-1) then a.background = false end
  end
end

-- A sync loop whose close() raised (not enough memory) gives up its run,
-- so that the state stays usable (asyncio.run does this for its loop).
local function abandon_sync(loop)
  local a = attrs(loop)
  if a.background then
    a.background = false
    core.abandon_paused_run()
  end
end

function M.new_event_loop()
  local loop = loop_state.new_loop()
  local a = attrs(loop)
  a.drive, a.on_close, a.abandon = drive_sync, close_sync, abandon_sync
  return loop
end

-- With trio_asyncio loaded, asyncio.new_event_loop returns sync loops.
asyncio.new_event_loop = M.new_event_loop

-- ---------------------------------------------------------------------
-- TrioExecutor: loop:run_in_executor through trio.to_thread.run_sync

local TrioExecutor = { __name = "trio_asyncio.TrioExecutor", _trio_executor = true }
TrioExecutor.__index = TrioExecutor

--- trio_asyncio.TrioExecutor{limiter=, max_workers=}: an executor for
-- loop:run_in_executor that runs its jobs with trio.to_thread.run_sync
-- under the limiter (a new CapacityLimiter(max_workers) when only
-- max_workers is given; else the run's default limiter).
function M.TrioExecutor(opts)
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "TrioExecutor", "table expected, got " .. type(opts)) end
  local limiter = opts.limiter
  if limiter == nil and opts.max_workers ~= nil then limiter = trio.CapacityLimiter(opts.max_workers) end
  return setmetatable({ _limiter = limiter, _running = true }, TrioExecutor)
end

--- executor:submit(fn, ...) -> fn(...)'s results (Trio-flavored).
function TrioExecutor:submit(fn, ...)
  if not self._running then error(errors.RuntimeError("submit: Executor is down"), 2) end
  return trio.to_thread.run_sync({ limiter = self._limiter }, fn, ...)
end

--- executor:shutdown([wait]): refuses new jobs.
function TrioExecutor:shutdown() self._running = false end

-- it, aio_test: asyncio test bodies in a run (lua/trio_asyncio/testing.lua)
M.testing = require "trio_asyncio.testing"
M.ssl = require "trio_asyncio.ssl"

return M
