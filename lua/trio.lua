--- trio: structured concurrency for Lua 5.4 (Trio-flavored API).
--
-- The scheduler, tasks, cancel scopes, nurseries, channels and parking lots
-- are C (trio_asyncio.core); this file is the thin, documented face:
-- argument shapes, error grouping, and the primitives that read best in Lua
-- (sync objects, ContextVar, instruments).  See docs/ARCHITECTURE.md.
local version = require "trio_asyncio.version" -- first: the Lua-version guard
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local pack, unpack = table.pack, table.unpack
local Cancelled, ExceptionGroup = errors.Cancelled, errors.ExceptionGroup

core.set_error_factory(errors.factory)

-- A raw coroutine.yield inside a task can only be another library's
-- suspension: raise FlavorError at the call site instead of confusing the
-- scheduler (which still catches yields made through an older copy).
coroutine.yield = core.guarded_yield

local trio = {}
trio._VERSION = version._VERSION

-- errors
for _, name in ipairs { "Cancelled", "TooSlowError", "ExceptionGroup", "ClosedResourceError",
  "BrokenResourceError", "BusyResourceError", "EndOfChannel", "WouldBlock",
  "RunFinishedError", "TrioInternalError", "KeyboardInterrupt", "RuntimeError" } do
  trio[name] = errors[name]
end
trio.LookupError = errors.class("trio.LookupError", errors.Error)
trio.OSError = errors.OSError -- the same class as trio_asyncio.OSError

local function check_callable(fn, n, fname)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error(("bad argument #%d to '%s' (function expected, got %s)"):format(n, fname, type(fn)), 3)
  end
end

local function check_seconds(s, n, fname)
  if type(s) ~= "number" or s ~= s then
    error(("bad argument #%d to '%s' (number expected, got %s)"):format(
      n, fname, s ~= s and "NaN" or type(s)), 3)
  end
end

-- ---------------------------------------------------------------------
-- time
trio.current_time = core.current_time
trio.sleep = core.sleep
trio.sleep_until = core.sleep_until
-- sleep_forever parks with no way to be woken but cancellation: a task
-- that reschedule()s it by mistake makes it raise RuntimeError in the
-- sleeper (as in Trio), instead of being refused in the waker.
local function abort_succeeded() return "SUCCEEDED" end
function trio.sleep_forever()
  core.check_trio("trio.sleep_forever")
  core.wait_task_rescheduled(abort_succeeded)
  error(errors.RuntimeError("trio.sleep_forever: the task was rescheduled, but nothing may wake it"), 0)
end
trio.current_effective_deadline = core.current_effective_deadline

-- ---------------------------------------------------------------------
-- instruments: a list per run; the C core calls one dispatcher.
local instruments = {}

local function dispatch(event, arg)
  for i = #instruments, 1, -1 do
    local inst = instruments[i]
    local method = inst[event]
    if method then
      local ok, err = pcall(method, inst, arg)
      if not ok then
        table.remove(instruments, i)
        io.stderr:write(("trio: instrument %s raised in %s and was removed: %s\n"):format(
          tostring(inst), event, tostring(err)))
        if #instruments == 0 then core.set_hook(nil) end
      end
    end
  end
end

local function add_instrument(inst)
  if type(inst) ~= "table" then
    error(("bad argument #1 to 'add_instrument' (table expected, got %s)"):format(type(inst)), 2)
  end
  for _, v in ipairs(instruments) do if v == inst then return end end
  instruments[#instruments + 1] = inst
  core.set_hook(dispatch)
end

local function remove_instrument(inst)
  for i, v in ipairs(instruments) do
    if v == inst then
      table.remove(instruments, i)
      if #instruments == 0 then core.set_hook(nil) end
      return
    end
  end
  error("remove_instrument: instrument not found", 2)
end

-- ---------------------------------------------------------------------
-- running
local trio_token -- the TrioToken of the current run

local function finish_run(status, ...)
  instruments = {}
  if trio_token then trio_token._finished = true end -- its run is over, even if another starts
  trio_token = nil
  core.set_hook(nil)
  if status == "ok" then return ... end
  if status == "internal" then
    error(errors.TrioInternalError { message = "a system task or callback raised", cause = ... }, 0)
  end
  error((...), 0)
end

-- Runs cannot nest: raises at the caller of the caller.
local function check_no_run()
  if core.is_running() then
    error("trio.run: a run is already active in this Lua state (runs cannot nest; open a nursery instead)", 3)
  end
end

--- trio.run(fn, ...): run fn(...) as the root task; return its results or
-- raise its error.
function trio.run(fn, ...)
  check_callable(fn, 1, "run")
  check_no_run()
  return finish_run(core.run(fn, pack(...), nil, "trio"))
end

-- ---------------------------------------------------------------------
-- cancel scopes
local Scope = core.metatable("trio_asyncio.CancelScope").__methods

--- Removes Cancelled from an error (also inside groups); nil if nothing
-- else is left.  The error itself comes back when it held no Cancelled.
local function strip_cancelled(err)
  if Cancelled:is(err) then return nil end
  if ExceptionGroup:is(err) then
    local keep, tbs, changed = {}, {}, false
    for i, e in ipairs(err.exceptions) do
      local rest = strip_cancelled(e)
      if rest ~= e then changed = true end
      if rest ~= nil then
        keep[#keep + 1] = rest
        tbs[#tbs + 1] = err.tracebacks[i]
      end
    end
    if #keep == 0 then return nil end
    if not changed then return err end
    return errors.group(err.message, keep, tbs)
  end
  return err
end

-- A scope that catches its own cancellation strips Cancelled from the
-- error; if it removed any, it caught it (cancelled_caught), even when
-- other errors go on (as Trio's split of the group does).
local function scope_finish(scope, ok, ...)
  local catches = core.scope_exit(scope)
  if ok then return ... end
  local err = ...
  if catches then
    local rest = strip_cancelled(err)
    if rest ~= err then core.scope_caught(scope) end
    if rest == nil then return end
    err = rest
  end
  error(err, 0)
end

--- scope:run(fn, ...): run fn inside the scope; returns fn's results
-- (nothing when the scope caught its own cancellation).
local ScopeMT = core.metatable("trio_asyncio.CancelScope")

function Scope.run(scope, fn, ...)
  if getmetatable(scope) ~= ScopeMT then
    error(("bad argument #1 to 'run' (CancelScope expected, got %s)"):format(type(scope)), 2)
  end
  check_callable(fn, 1, "run")
  core.scope_enter(scope)
  return scope_finish(scope, pcall(fn, ...))
end

-- cancel_called of a scope that is active or not entered yet is true as
-- soon as its deadline has passed (the read cancels it, as in Trio), even
-- before the deadline timer could fire.
local scope_index = ScopeMT.__index
ScopeMT.__index = function(scope, k)
  local v = scope_index(scope, k)
  if k == "cancel_called" and not v and core.is_running()
      and scope_index(scope, "deadline") <= core.current_time()
      and not tostring(scope):find("^CancelScope %(exited") then
    Scope.cancel(scope)
    return true
  end
  return v
end

--- trio.CancelScope{deadline=, shield=}
function trio.CancelScope(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'CancelScope' (table expected, got %s)"):format(type(opts)), 2)
  end
  if opts.deadline ~= nil then check_seconds(opts.deadline, 1, "CancelScope") end
  return core.CancelScope(opts.deadline, opts.shield)
end

function trio.move_on_at(deadline, fn, ...)
  check_seconds(deadline, 1, "move_on_at")
  check_callable(fn, 2, "move_on_at")
  local scope = core.CancelScope(deadline)
  return scope, scope:run(fn, ...)
end

function trio.move_on_after(seconds, fn, ...)
  check_seconds(seconds, 1, "move_on_after")
  if seconds < 0 then error("bad argument #1 to 'move_on_after' (timeout must be non-negative)", 2) end
  check_callable(fn, 2, "move_on_after")
  local scope = core.CancelScope(core.current_time() + seconds)
  return scope, scope:run(fn, ...)
end

local function fail_finish(scope, ...)
  if scope.cancelled_caught then error(errors.TooSlowError("deadline exceeded"), 0) end
  return ...
end

function trio.fail_at(deadline, fn, ...)
  check_seconds(deadline, 1, "fail_at")
  check_callable(fn, 2, "fail_at")
  local scope = core.CancelScope(deadline)
  return fail_finish(scope, scope:run(fn, ...))
end

function trio.fail_after(seconds, fn, ...)
  check_seconds(seconds, 1, "fail_after")
  if seconds < 0 then error("bad argument #1 to 'fail_after' (timeout must be non-negative)", 2) end
  check_callable(fn, 2, "fail_after")
  local scope = core.CancelScope(core.current_time() + seconds)
  return fail_finish(scope, scope:run(fn, ...))
end

-- ---------------------------------------------------------------------
-- nurseries
local Nursery = core.metatable("trio_asyncio.Nursery").__methods

-- xpcall handler: keep the traceback of plain (string) errors.
local Captured = {}
local function capture(e)
  if type(e) == "table" then return e end
  return setmetatable({ err = e, tb = debug.traceback("", 2):sub(2) }, Captured)
end

local function uncapture(e)
  if getmetatable(e) == Captured then return e.err, e.tb end
  return e, type(e) == "table" and rawget(e, "traceback") or ""
end

-- nursery:start calls still waiting for their task's started(), by target
-- nursery, and the task waiting to close a nursery until they are done:
-- a nursery stays open while starts into it are pending (as in Trio).
local pending_starts = setmetatable({}, { __mode = "k" })
local start_waiter = setmetatable({}, { __mode = "k" })
local closed_nurseries = setmetatable({}, { __mode = "k" })

local function wait_pending_starts(n)
  start_waiter[n] = core.current_task()
  core.wait_task_rescheduled(function()
    -- like nursery_wait: cancellation goes to the nursery's children
    Scope.cancel(n.cancel_scope)
    return "FAILED"
  end)
end

local function start_finished(n)
  local left = pending_starts[n] - 1
  pending_starts[n] = left > 0 and left or nil
  local w = start_waiter[n]
  if left == 0 and w ~= nil then
    start_waiter[n] = nil
    core.reschedule(w)
  end
end

local function nursery_exit(n, ok, ...)
  if not ok then core.nursery_add_error(n, uncapture((...))) end
  core.nursery_wait(n)
  while pending_starts[n] do
    wait_pending_starts(n)
    core.nursery_wait(n)
  end
  local scope = n.cancel_scope
  local errs, tbs, catches = core.nursery_close(n)
  closed_nurseries[n] = true
  if errs == nil then return ... end
  if catches then
    local keep, ktbs = {}, {}
    for i, e in ipairs(errs) do
      local rest = strip_cancelled(e)
      if rest ~= e then core.scope_caught(scope) end
      if rest ~= nil then
        keep[#keep + 1] = rest
        ktbs[#ktbs + 1] = tbs[i]
      end
    end
    if #keep == 0 then return end
    errs, tbs = keep, ktbs
  end
  -- Only cancellation: let it through as itself so enclosing scopes see it.
  local all_cancelled = true
  for _, e in ipairs(errs) do
    if strip_cancelled(e) ~= nil then all_cancelled = false break end
  end
  if all_cancelled then error(errs[1], 0) end
  error(errors.group("errors in nursery", errs, tbs), 0)
end

--- trio.open_nursery(fn): fn(nursery); waits for every child; errors of
-- the body and children come out as one trio.ExceptionGroup.
function trio.open_nursery(body)
  check_callable(body, 1, "open_nursery")
  local n = core.nursery_open()
  return nursery_exit(n, xpcall(body, capture, n))
end

local TaskStatus = {}
TaskStatus.__index = TaskStatus

--- task_status:started([value]): the task is ready; nursery:start returns
-- value, and the task moves into the nursery it was started in.
function TaskStatus:started(value)
  if getmetatable(self) ~= TaskStatus then
    error(("bad argument #1 to 'started' (task_status expected, got %s)"):format(type(self)), 2)
  end
  if self._started then error(errors.RuntimeError("task_status:started() called twice"), 2) end
  self._started, self._value = true, value
  -- start() was cancelled: the task stays under start(), which raises
  -- Cancelled (moving a task whose Cancelled may be propagating into a
  -- nursery that is not cancelled would let it escape).
  if self._tmp.cancel_scope.cancel_called then return end
  core.nursery_reparent(self._tmp, self._target)
end

trio.TASK_STATUS_IGNORED = setmetatable({ started = function() end }, {
  __tostring = function() return "TASK_STATUS_IGNORED" end })

--- nursery:start(fn, ...): run fn(..., task_status) and wait until it calls
-- task_status:started(value); returns value.  An error before that is
-- raised here.
function Nursery.start(target, fn, ...)
  check_callable(fn, 1, "start")
  if closed_nurseries[target] then
    error(errors.RuntimeError("nursery:start: the nursery is closed to new arrivals"), 2)
  end
  local status = setmetatable({ _target = target }, TaskStatus)
  local args = pack(...)
  args.n = args.n + 1
  args[args.n] = status
  pending_starts[target] = (pending_starts[target] or 0) + 1
  local ok, err = pcall(trio.open_nursery, function(tmp)
    status._tmp = tmp
    tmp:start_soon(fn, unpack(args, 1, args.n))
  end)
  start_finished(target)
  if not ok then
    if ExceptionGroup:is(err) then
      if #err.exceptions ~= 1 then
        -- more than one task failed under start(): someone spawned into the
        -- start's own nursery (the task's parent_nursery before started())
        error(errors.TrioInternalError { message = "nursery:start: the start's own nursery "
          .. "should have a single task (tasks were spawned into it)", cause = err }, 0)
      end
      err = err.exceptions[1]
    end
    error(err, 0)
  end
  if not status._started then
    error(errors.RuntimeError("nursery:start: the task exited without calling task_status:started()"), 0)
  end
  return status._value
end

-- ---------------------------------------------------------------------
-- channels: the C endpoints, plus iteration
local Receive = core.metatable("trio_asyncio.MemoryReceiveChannel").__index

--- for v in receive:iter() do ... end  -- ends when every sender is closed
function Receive.iter(self)
  return function()
    local ok, v = pcall(self.receive, self)
    if ok then return v end
    if errors.EndOfChannel:is(v) then return nil end
    error(v, 0)
  end
end

trio.open_memory_channel = core.open_memory_channel

-- ---------------------------------------------------------------------
-- sync primitives and context variables
local sync = require "trio.sync"
for k, v in pairs(sync) do trio[k] = v end

local NIL = setmetatable({}, { __tostring = function() return "nil" end })
local ContextVar = {}
ContextVar.__index = ContextVar
ContextVar.__name = "trio.ContextVar"

--- trio.ContextVar(name [, default]): a task-local variable.  New tasks
-- start with a copy of their spawner's values; writes never leak back.
function trio.ContextVar(name, ...)
  if type(name) ~= "string" then
    error(("bad argument #1 to 'ContextVar' (string expected, got %s)"):format(type(name)), 2)
  end
  return setmetatable({ name = name, _has_default = select("#", ...) > 0, _default = ... }, ContextVar)
end

function ContextVar:get(...)
  local v = core.ctx_get(self)
  if v == NIL then return nil end
  if v ~= nil then return v end
  if select("#", ...) > 0 then return (...) end
  if self._has_default then return self._default end
  error(trio.LookupError(("ContextVar '%s' has no value"):format(self.name)), 2)
end

function ContextVar:set(value)
  if value == nil then value = NIL end
  return { var = self, old = core.ctx_set(self, value) }
end

function ContextVar:reset(token)
  if type(token) ~= "table" or token.var ~= self then
    error("bad argument #1 to 'reset' (token of this ContextVar expected)", 2)
  end
  if token.used then error("ContextVar:reset: this token was already used", 2) end
  token.used = true
  core.ctx_set(self, token.old)
end

function ContextVar:__tostring()
  return ("ContextVar '%s'"):format(self.name)
end

-- ---------------------------------------------------------------------
-- trio.lowlevel and trio.testing
local lowlevel = {
  current_task = core.current_task,
  current_root_task = core.current_root_task,
  checkpoint = core.checkpoint,
  checkpoint_if_cancelled = core.checkpoint_if_cancelled,
  cancel_shielded_checkpoint = core.cancel_shielded_checkpoint,
  wait_task_rescheduled = core.wait_task_rescheduled,
  reschedule = core.reschedule,
  Abort = { SUCCEEDED = "SUCCEEDED", FAILED = "FAILED" },
  ParkingLot = core.ParkingLot,
  wait_readable = core.wait_readable,
  wait_writable = core.wait_writable,
  notify_closing = core.notify_closing,
  add_instrument = add_instrument,
  remove_instrument = remove_instrument,
  current_flavor = core.current_flavor,
}

-- A system task's error ends the run with TrioInternalError (its cause);
-- the Cancelled with which the run ends its system tasks is no error.
local function system_task_body(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    err = strip_cancelled(err)
    if err ~= nil then
      core.run_sync_soon(function() error(err, 0) end)
      -- stay alive until the callback ran: a run whose last task exits
      -- ends without running the callbacks still queued
      core.cancel_shielded_checkpoint()
    end
  end
end

--- trio.lowlevel.spawn_system_task(fn, ...): a task of the run itself,
-- cancelled when the main task has exited; returns the task.
function lowlevel.spawn_system_task(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn_system_task' (function expected, got %s)"):format(type(fn)), 2)
  end
  local task = core.spawn_system_task(system_task_body, fn, ...)
  local info = debug.getinfo(fn, "S")
  task.name = info.what ~= "C" and ("%s:%d"):format(info.short_src, info.linedefined)
    or ("task-%d"):format(task.id)
  return task
end

local TrioToken = {}
TrioToken.__index = TrioToken

--- token:run_sync_soon(fn, ...): call fn(...) from the scheduler soon.
function TrioToken:run_sync_soon(fn, ...)
  check_callable(fn, 1, "run_sync_soon")
  if self._finished then
    error(errors.RunFinishedError("run_sync_soon: the run of this token has finished"), 2)
  end
  local args = pack(...)
  core.run_sync_soon(function() fn(unpack(args, 1, args.n)) end)
end

function lowlevel.current_trio_token()
  if not core.is_running() then error("current_trio_token: must be called inside trio.run", 2) end
  trio_token = trio_token or setmetatable({}, TrioToken)
  return trio_token
end

-- The clock option, checked before the core starts a run (a bad clock
-- found later would leave the run half started).
local MockClockMT = core.metatable("trio_asyncio.MockClock")
local function check_clock(clock, fname)
  if clock ~= nil and getmetatable(clock) ~= MockClockMT then
    error(("bad argument #1 to '%s' (clock must be a trio.testing.MockClock, got %s)"):format(
      fname, type(clock)), 3)
  end
end

--- trio.lowlevel.run{fn=, args=, clock=, instruments=}
function lowlevel.run(opts)
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'run' (table expected, got %s)"):format(type(opts)), 2)
  end
  check_callable(opts.fn, 1, "run")
  check_clock(opts.clock, "run")
  check_no_run()
  if opts.instruments ~= nil and type(opts.instruments) ~= "table" then
    error(("bad argument #1 to 'run' (instruments must be a list, got %s)"):format(type(opts.instruments)), 2)
  end
  for _, inst in ipairs(opts.instruments or {}) do add_instrument(inst) end
  local args = opts.args or {}
  args.n = args.n or #args
  return finish_run(core.run(opts.fn, args, opts.clock, opts.flavor))
end

--- trio.lowlevel.start_guest_run(fn, {done_callback=, args=, clock=,
-- instruments=}): start a run that returns at once; its tasks progress while
-- the host drives the engine (its own libuv loop after
-- trio_asyncio_use_loop, or trio_asyncio_step calls).  done_callback(true,
-- results...) or done_callback(false, err) is called when it ends.
function lowlevel.start_guest_run(fn, opts)
  check_callable(fn, 1, "start_guest_run")
  if type(opts) ~= "table" then
    error(("bad argument #2 to 'start_guest_run' (table expected, got %s)"):format(type(opts)), 2)
  end
  local done = opts.done_callback
  local mt = getmetatable(done)
  if type(done) ~= "function" and not (mt and mt.__call) then
    error(("start_guest_run: opts.done_callback must be a function, got %s (it receives "
      .. "true, results... or false, error when the run ends)"):format(type(done)), 2)
  end
  check_clock(opts.clock, "start_guest_run")
  if core.is_running() then
    error("start_guest_run: a run is already active in this Lua state (one run at a time)", 2)
  end
  for _, inst in ipairs(opts.instruments or {}) do add_instrument(inst) end
  local args = opts.args or {}
  args.n = args.n or #args
  core.start_guest_run(fn, args, opts.clock, opts.flavor, function(status, ...)
    local r = pack(pcall(finish_run, status, ...))
    if r[1] then done(true, unpack(r, 2, r.n)) else done(false, r[2]) end
  end)
end

trio.lowlevel = lowlevel

-- worker threads (lua/trio/to_thread.lua), files (lua/trio/files.lua)
trio.to_thread = require "trio.to_thread"
local files = require "trio.files"
trio.open_file = files.trio_open_file
trio.Path = files.Path
-- signals (lua/trio/signals.lua)
trio.open_signal_receiver = require("trio.signals").open_signal_receiver
-- child processes (lua/trio/process.lua)
local process = require("trio.process").install(trio)
trio.run_process = process.run_process
trio.CalledProcessError = process.CalledProcessError
lowlevel.open_process = process.open_process

trio.testing = {
  --- MockClock{rate=0, autojump_threshold=math.huge}
  MockClock = function(opts)
    opts = opts or {}
    return core.MockClock(opts.rate, opts.autojump_threshold)
  end,
  wait_all_tasks_blocked = core.wait_all_tasks_blocked,
}
-- it, trio_test: running a test body in a run (lua/trio/testing.lua)
for k, v in pairs(require "trio.testing") do trio.testing[k] = v end
package.loaded["trio.testing"] = trio.testing -- require "trio.testing" gives all of it

return trio
