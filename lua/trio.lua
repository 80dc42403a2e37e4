--- trio: structured concurrency for Lua 5.4 (Trio-flavored API).
--
-- The scheduler, tasks, cancel scopes, nurseries, channels and parking lots
-- are C (trio_asyncio.core); this file is the thin, documented face:
-- argument shapes, error grouping, and the primitives that read best in Lua
-- (sync objects, ContextVar, instruments).  See docs/ARCHITECTURE.md.
local version = require "trio_asyncio.version" -- first: the Lua-version guard
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local class_of, bad_self = errors.class_of, errors.bad_self

local pack, unpack = table.pack, table.unpack
local Cancelled, ExceptionGroup = errors.Cancelled, errors.ExceptionGroup

core.set_error_factory(errors.factory)
errors.use_traceback(core.traceback)

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
-- instruments: a list per run; the C core calls one dispatcher.  As in
-- Trio, an instrument's methods are looked up once, when it is added (an
-- error there is add_instrument's, and the instrument is not added), so a
-- method set on it later is used only after removing and adding it again.
local HOOK_NAMES = {
  "before_run", "after_run", "task_spawned", "task_scheduled", "before_task_step",
  "after_task_step", "task_exited", "before_io_wait", "after_io_wait",
}
local instruments = {} -- in the order they were added
local hooks_of = {}    -- instrument -> {hook name = its method}

local function remove_at(i)
  hooks_of[instruments[i]] = nil
  table.remove(instruments, i)
  if #instruments == 0 then core.set_hook(nil) end
end

local function dispatch(event, arg)
  for i = #instruments, 1, -1 do
    local inst = instruments[i]
    local method = inst and hooks_of[inst][event]
    if method then
      local ok, err = pcall(method, inst, arg)
      if not ok then
        remove_at(i)
        io.stderr:write(("trio: instrument %s raised in %s and was removed: %s\n"):format(
          tostring(inst), event, tostring(err)))
      end
    end
  end
end

local function add_instrument(inst)
  if type(inst) ~= "table" then
    error(("bad argument #1 to 'add_instrument' (table expected, got %s)"):format(type(inst)), 2)
  end
  if hooks_of[inst] then return end
  local hooks = {}
  for _, name in ipairs(HOOK_NAMES) do hooks[name] = inst[name] end
  hooks_of[inst] = hooks
  instruments[#instruments + 1] = inst
  core.set_hook(dispatch)
end

local function remove_instrument(inst)
  for i, v in ipairs(instruments) do
    if v == inst then return remove_at(i) end
  end
  error("remove_instrument: instrument not found", 2)
end

-- The instruments of a run's options: if one cannot be added, none stays.
local function add_run_instruments(list)
  for _, inst in ipairs(list or {}) do
    local ok, err = pcall(add_instrument, inst)
    if not ok then
      instruments, hooks_of = {}, {}
      core.set_hook(nil)
      error(err, 0)
    end
  end
end

-- ---------------------------------------------------------------------
-- running
local trio_token -- the TrioToken of the current run

local function finish_run(status, ...)
  instruments, hooks_of = {}, {}
  if trio_token then trio_token._finished = true end -- its run is over, even if another starts
  trio_token = nil
  core.set_hook(nil)
  if status == "ok" then return ... end
  if status == "internal" then
    local cause = ...
    local what = tostring(errors.is_error(cause) and cause.message or cause):match("[^\n]*")
    error(errors.TrioInternalError { message = "a system task or callback raised: " .. what, cause = cause }, 0)
  end
  error((...), 0)
end

-- Runs cannot nest: raises at the caller of the caller.
local SYNC_LOOP_OPEN = "a sync asyncio loop (asyncio.new_event_loop() with trio_asyncio loaded) is "
  .. "still open: its run is paused between run_until_complete calls; close it with loop:close() first"
trio._SYNC_LOOP_OPEN = SYNC_LOOP_OPEN

local function check_no_run()
  local running, sync_loop = core.is_running()
  if sync_loop then error("trio.run: " .. SYNC_LOOP_OPEN, 3) end
  if running then
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

-- Scopes whose run() raises TooSlowError when they caught their own
-- cancellation (those of fail_after / fail_at).
local fail_scopes = setmetatable({}, { __mode = "k" })

-- A scope that catches its own cancellation strips Cancelled from the
-- error; if it removed any, it caught it (cancelled_caught), even when
-- other errors go on (as Trio's split of the group does).
-- Nesting past Lua's limit of nested C calls (about 200: each scope and
-- nursery is a pcall): one short error, the same for scopes and nurseries,
-- instead of "C stack overflow" wrapped in a group per nursery level.
local TOO_DEEP = "cancel scopes and nurseries nested too deep in one task (Lua allows about "
  .. "195 levels: each is a protected call, and Lua limits nested C calls to 200; "
  .. "see docs/SEMANTICS.md)"

local function too_deep(err)
  if type(err) == "string" then return err:find("C stack overflow", 1, true) ~= nil end
  return errors.RuntimeError:is(err) and err.message == TOO_DEEP
end

local function nesting_error() return errors.RuntimeError(TOO_DEEP) end

local function scope_finish(scope, ok, ...)
  local catches = core.scope_exit(scope)
  if ok then return ... end
  local err = ...
  if too_deep(err) then error(nesting_error(), 0) end
  if catches then
    local rest = strip_cancelled(err)
    if rest ~= err then core.scope_caught(scope) end
    if rest == nil then
      if fail_scopes[scope] then error(errors.TooSlowError("deadline exceeded"), 0) end
      return
    end
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
  if type(fn) ~= "function" then check_callable(fn, 1, "run") end -- (a hot path)
  core.scope_enter(scope)
  return scope_finish(scope, pcall(fn, ...))
end

--- trio._scope_settle(scope, ok, ...): after core.scope_enter(scope) and
-- ok, ... = pcall(fn, ...) in it, leaves the scope and returns what
-- pcall(scope.run, scope, fn, ...) would have.  For the task body that
-- trio_asyncio's run_trio makes with core.make_scope_task (csrc/trio/scope.c),
-- which runs fn in its scope in C: this is its path when fn raised.
function trio._scope_settle(scope, ok, ...)
  return pcall(scope_finish, scope, ok, ...)
end

local function check_number(x, n, fname, what)
  if type(x) ~= "number" then
    error(("bad argument #%d to '%s' (%s must be a number, got %s)"):format(n, fname, what, type(x)), 3)
  end
end

--- trio.CancelScope{deadline=, relative_deadline=, shield=}: a relative
-- deadline counts from when the scope is entered.
function trio.CancelScope(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'CancelScope' (table expected, got %s)"):format(type(opts)), 2)
  end
  if opts.deadline ~= nil then check_number(opts.deadline, 1, "CancelScope", "deadline") end
  if opts.relative_deadline ~= nil then check_number(opts.relative_deadline, 1, "CancelScope", "relative_deadline") end
  return core.CancelScope(opts.deadline, opts.shield, opts.relative_deadline)
end

-- The optional options of the timeout functions: a plain table (a
-- callable table is the body).
local function timeout_opts(x, fname)
  if type(x) ~= "table" or getmetatable(x) ~= nil then return nil end
  if x.shield ~= nil and type(x.shield) ~= "boolean" then
    error(("bad argument #2 to '%s' (shield must be a boolean, got %s)"):format(fname, type(x.shield)), 3)
  end
  return x
end

-- A timeout function's scope alone when no body follows, else the scope
-- after running the body in it, and the body's results.
local function timeout_run(scope, fname, argn, fn, ...)
  if fn == nil and select("#", ...) == 0 then return scope end
  check_callable(fn, argn, fname)
  return scope, scope:run(fn, ...)
end

local function check_timeout(seconds, fname)
  check_seconds(seconds, 1, fname)
  if seconds < 0 then error(("bad argument #1 to '%s' (timeout must be non-negative)"):format(fname), 3) end
end

local function after_scope(seconds, opts, fail)
  local scope = core.CancelScope(nil, opts and opts.shield, seconds)
  if fail then fail_scopes[scope] = true end
  return scope
end

local function at_scope(deadline, opts, fail)
  local scope = core.CancelScope(deadline, opts and opts.shield)
  if fail then fail_scopes[scope] = true end
  return scope
end

--- trio.move_on_at(deadline [, {shield=}] [, fn, ...]): with fn, runs
-- fn(...) in a scope with that deadline and returns the scope and fn's
-- results; without, returns the scope (unentered).
function trio.move_on_at(deadline, opts, ...)
  check_seconds(deadline, 1, "move_on_at")
  local o = timeout_opts(opts, "move_on_at")
  if o then return timeout_run(at_scope(deadline, o), "move_on_at", 3, ...) end
  return timeout_run(at_scope(deadline), "move_on_at", 2, opts, ...)
end

--- trio.move_on_after(seconds [, {shield=}] [, fn, ...]): the same with a
-- relative deadline (counted from when the scope is entered).
function trio.move_on_after(seconds, opts, ...)
  check_timeout(seconds, "move_on_after")
  local o = timeout_opts(opts, "move_on_after")
  if o then return timeout_run(after_scope(seconds, o), "move_on_after", 3, ...) end
  return timeout_run(after_scope(seconds), "move_on_after", 2, opts, ...)
end

-- fail_*'s body: like move_on's, but returns only fn's results (the
-- scope's run raises TooSlowError on timeout).
local function fail_run(scope, fname, argn, fn, ...)
  if fn == nil and select("#", ...) == 0 then return scope end
  check_callable(fn, argn, fname)
  return scope:run(fn, ...)
end

--- trio.fail_at(deadline [, {shield=}] [, fn, ...]): like move_on_at, but
-- raises trio.TooSlowError on timeout and returns fn's results; without
-- fn, a scope whose run() does so.
function trio.fail_at(deadline, opts, ...)
  check_seconds(deadline, 1, "fail_at")
  local o = timeout_opts(opts, "fail_at")
  if o then return fail_run(at_scope(deadline, o, true), "fail_at", 3, ...) end
  return fail_run(at_scope(deadline, nil, true), "fail_at", 2, opts, ...)
end

--- trio.fail_after(seconds [, {shield=}] [, fn, ...])
function trio.fail_after(seconds, opts, ...)
  check_timeout(seconds, "fail_after")
  local o = timeout_opts(opts, "fail_after")
  if o then return fail_run(after_scope(seconds, o, true), "fail_after", 3, ...) end
  return fail_run(after_scope(seconds, nil, true), "fail_after", 2, opts, ...)
end

-- ---------------------------------------------------------------------
-- nurseries
local Nursery = core.metatable("trio_asyncio.Nursery").__methods

--- trio._start_soon(nursery, fn, ...): nursery:start_soon(fn, ...) without
-- the method lookup, for trio_asyncio's run_trio (a hot path: a Trio task
-- per trio_as_aio call).
trio._start_soon = Nursery.start_soon

-- xpcall handler: keep the traceback of plain (string) errors (as
-- debug.traceback("", 2):sub(2) has it, without its search of every loaded
-- module for the functions' names).
local Captured = {}
local traceback = core.traceback
local function capture(e)
  if type(e) == "table" then return e end
  return setmetatable({ err = e, tb = traceback(2) }, Captured)
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
  -- Nested too deep (and nothing else but cancellation): that alone, not a
  -- group per level.
  local deep, other = false, false
  for _, e in ipairs(errs) do
    if too_deep(e) then deep = true elseif strip_cancelled(e) ~= nil then other = true end
  end
  if deep and not other then error(nesting_error(), 0) end
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

local TaskStatus = { __name = "trio.TaskStatus" }
TaskStatus.__index = TaskStatus

--- task_status:started([value]): the task is ready; nursery:start returns
-- value, and the task moves into the nursery it was started in.
function TaskStatus:started(value)
  if class_of(self) ~= TaskStatus then bad_self(self, TaskStatus, "started") end
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

--- True for what nursery:start passes as the last argument (or
-- TASK_STATUS_IGNORED): the serve functions find it among their arguments.
function trio._is_task_status(x)
  return getmetatable(x) == TaskStatus or x == trio.TASK_STATUS_IGNORED
end

--- nursery:start(fn, ...): run fn(..., task_status) and wait until it calls
-- task_status:started(value); returns value.  An error before that is
-- raised here.
local NurseryMT = core.metatable("trio_asyncio.Nursery")

function Nursery.start(target, fn, ...)
  if getmetatable(target) ~= NurseryMT then
    error(("bad argument #1 to 'start' (trio.Nursery expected, got %s)"):format(type(target)), 2)
  end
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
    core.nursery_set_target(tmp, target)
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
local ReceiveMT = core.metatable("trio_asyncio.MemoryReceiveChannel")
local Receive = ReceiveMT.__index

--- for v in receive:iter() do ... end  -- ends when every sender is closed
function Receive.iter(self)
  if class_of(self) ~= ReceiveMT then bad_self(self, ReceiveMT, "iter") end
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
  if class_of(self) ~= ContextVar then bad_self(self, ContextVar, "ContextVar:get") end
  local v = core.ctx_get(self)
  if v == NIL then return nil end
  if v ~= nil then return v end
  if select("#", ...) > 0 then return (...) end
  if self._has_default then return self._default end
  error(trio.LookupError(("ContextVar '%s' has no value"):format(self.name)), 2)
end

function ContextVar:set(value)
  if class_of(self) ~= ContextVar then bad_self(self, ContextVar, "ContextVar:set") end
  if value == nil then value = NIL end
  return { var = self, old = core.ctx_set(self, value) }
end

function ContextVar:reset(token)
  if class_of(self) ~= ContextVar then bad_self(self, ContextVar, "ContextVar:reset") end
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
  add_parking_lot_breaker = core.add_parking_lot_breaker,
  remove_parking_lot_breaker = core.remove_parking_lot_breaker,
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

-- The clock of a run without one: the engine's real monotonic clock, with
-- the methods of Trio's Clock interface (trio.abc.Clock).
local SystemClock = { __name = "trio.lowlevel.SystemClock" }
SystemClock.__index = SystemClock
function SystemClock:start_clock() end
function SystemClock:current_time() return core.monotonic() end
function SystemClock:deadline_to_sleep_time(deadline) return deadline - core.monotonic() end
function SystemClock:__tostring() return "trio.lowlevel.SystemClock" end
local system_clock = setmetatable({}, SystemClock)

--- trio.lowlevel.current_clock() -> the run's clock: the one it was
-- given, or the system clock.
function lowlevel.current_clock()
  return core.current_clock() or system_clock
end

--- trio.lowlevel.current_statistics() -> {tasks_living=, tasks_runnable=,
-- seconds_to_next_deadline=, run_sync_soon_queue_size=, io_statistics=}
lowlevel.current_statistics = core.current_statistics

--- trio.lowlevel.in_trio_run(): true where current_trio_token() works
-- (inside a run: its tasks, callbacks, and a guest run's host code).
function lowlevel.in_trio_run()
  return core.is_running()
end

--- trio.lowlevel.in_trio_task(): true where current_task() works (in a
-- Trio-flavored task of the run).
function lowlevel.in_trio_task()
  return core.is_running() and (pcall(core.current_task))
end

--- trio.lowlevel.task_tree() -> the live tasks of the run as a tree:
-- nodes {name=, flavor=, kind="task", where=, task=, children={...}} (where:
-- see core.task_where), the root task first, then the system tasks as
-- children of the root; nil outside a run.
local function task_node(task)
  local node = { name = task.name, flavor = task.flavor, kind = "task",
    where = core.task_where(task), task = task, children = {} }
  for _, nursery in ipairs(task.child_nurseries) do
    for _, child in ipairs(nursery.child_tasks) do node.children[#node.children + 1] = task_node(child) end
  end
  return node
end

function lowlevel.task_tree()
  local root = core.current_root_task()
  if root == nil then return nil end
  local tree = task_node(root)
  for _, t in ipairs(core.system_tasks()) do tree.children[#tree.children + 1] = task_node(t) end
  return tree
end

--- trio.lowlevel.dump_tasks([write [, tree]]): prints the task tree, one task a
-- line ("name [flavor kind] where"), with io.write by default.
function lowlevel.dump_tasks(write, tree)
  if write ~= nil then check_callable(write, 1, "dump_tasks") end
  if tree ~= nil and (type(tree) ~= "table" or type(rawget(tree, "children")) ~= "table") then
    error(("bad argument #2 to 'dump_tasks' (task tree expected, got %s)"):format(type(tree)), 2)
  end
  write = write or io.write
  tree = tree or lowlevel.task_tree()
  if tree == nil then write("(no trio run)\n") return end
  local function walk(node, depth)
    write(("%s%s [%s %s] %s\n"):format(("  "):rep(depth), node.name, node.flavor, node.kind, node.where))
    for _, child in ipairs(node.children) do walk(child, depth + 1) end
  end
  walk(tree, 0)
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
    or core.function_name(fn) or ("task-%d"):format(task.id)
  return task
end

local TrioToken = { __name = "trio.TrioToken" }
TrioToken.__index = TrioToken

-- The options of run_sync_soon: a last argument that is a plain table
-- holding a boolean `idempotent` and nothing else.
local function is_soon_opts(t)
  if type(t) ~= "table" or getmetatable(t) ~= nil or type(t.idempotent) ~= "boolean" then
    return false
  end
  for k in pairs(t) do
    if k ~= "idempotent" then return false end
  end
  return true
end

local function same_args(a, b)
  if a.n ~= b.n then return false end
  for i = 1, a.n do
    if a[i] ~= b[i] then return false end
  end
  return true
end

--- token:run_sync_soon(fn, ... [, {idempotent=true}]): call fn(...) from
-- the scheduler soon.  Idempotent: nothing is queued when the same fn
-- with equal arguments is queued already (and not yet started).
function TrioToken:run_sync_soon(fn, ...)
  if class_of(self) ~= TrioToken then bad_self(self, TrioToken, "run_sync_soon") end
  check_callable(fn, 1, "run_sync_soon")
  if self._finished then
    error(errors.RunFinishedError("run_sync_soon: the run of this token has finished"), 2)
  end
  local args = pack(...)
  if args.n > 0 and is_soon_opts(args[args.n]) then
    local idempotent = args[args.n].idempotent
    args[args.n] = nil
    args.n = args.n - 1
    if idempotent then
      local queued = self._idempotent
      local list = queued[fn]
      if list then
        for _, a in ipairs(list) do
          if same_args(a, args) then return end
        end
      end
      core.run_sync_soon(function()
        local l = queued[fn]
        for i = 1, #l do
          if l[i] == args then
            table.remove(l, i)
            break
          end
        end
        if #l == 0 then queued[fn] = nil end
        fn(unpack(args, 1, args.n))
      end)
      if list == nil then
        list = {}
        queued[fn] = list
      end
      list[#list + 1] = args
      return
    end
  end
  core.run_sync_soon(function() fn(unpack(args, 1, args.n)) end)
end

function lowlevel.current_trio_token()
  if not core.is_running() then error("current_trio_token: must be called inside trio.run", 2) end
  trio_token = trio_token or setmetatable({ _idempotent = {} }, TrioToken)
  return trio_token
end

-- The clock option, checked before the core starts a run (a bad clock
-- found later would leave the run half started): a MockClock, or an
-- object with the methods of Trio's Clock interface.
local MockClockMT = core.metatable("trio_asyncio.MockClock")
local CLOCK_METHODS = { "start_clock", "current_time", "deadline_to_sleep_time" }
local function check_clock(clock, fname)
  if clock == nil or getmetatable(clock) == MockClockMT then return end
  for _, m in ipairs(CLOCK_METHODS) do
    local ok, f = pcall(function() return clock[m] end)
    if not (ok and errors.is_callable(f)) then
      error(("bad argument #1 to '%s' (clock must be a trio.testing.MockClock or an object with "
        .. "start_clock, current_time and deadline_to_sleep_time methods; %s has no %s)"):format(
        fname, type(clock), m), 3)
    end
  end
end

-- The clock for the core: a clock of the user's is started here (an error
-- of its start_clock is the run's TrioInternalError, as in Trio) and
-- wrapped for the engine.
local function start_clock(clock)
  if clock == nil or getmetatable(clock) == MockClockMT then return clock end
  local ok, err = pcall(clock.start_clock, clock)
  if not ok then
    error(errors.TrioInternalError { message = "the run's clock raised in start_clock", cause = err }, 0)
  end
  return core.user_clock(clock)
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
  if opts.args ~= nil and type(opts.args) ~= "table" then
    error(("bad argument #1 to 'run' (args must be a list, got %s)"):format(type(opts.args)), 2)
  end
  local clock = start_clock(opts.clock)
  add_run_instruments(opts.instruments)
  local args = opts.args or {}
  args.n = args.n or #args
  return finish_run(core.run(opts.fn, args, clock, opts.flavor))
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
  local clock = start_clock(opts.clock)
  add_run_instruments(opts.instruments)
  local args = opts.args or {}
  args.n = args.n or #args
  core.start_guest_run(fn, args, clock, opts.flavor, function(status, ...)
    local r = pack(pcall(finish_run, status, ...))
    if r[1] then done(true, unpack(r, 2, r.n)) else done(false, r[2]) end
  end)
end

trio.lowlevel = lowlevel

trio.testing = {
  --- MockClock{rate=0, autojump_threshold=math.huge}
  MockClock = function(opts)
    opts = opts or {}
    if type(opts) ~= "table" then
      error(("bad argument #1 to 'MockClock' (table expected, got %s)"):format(type(opts)), 2)
    end
    return core.MockClock(opts.rate, opts.autojump_threshold)
  end,
  wait_all_tasks_blocked = core.wait_all_tasks_blocked,
}
-- it, trio_test: running a test body in a run (lua/trio/testing.lua)
for k, v in pairs(require "trio.testing") do trio.testing[k] = v end
package.loaded["trio.testing"] = trio.testing -- require "trio.testing" gives all of it

-- ---------------------------------------------------------------------
-- I/O, installed on first use (lua/trio_asyncio/lazy.lua): the lookup of a
-- name trio, trio.testing or trio.lowlevel lacks installs these parts in
-- order until one adds it (the small ones first, networking and TLS last).
require("trio_asyncio.lazy").defer({
  function() trio.to_thread = require "trio.to_thread" end, -- worker threads (lua/trio/to_thread.lua)
  function() trio.open_signal_receiver = require("trio.signals").open_signal_receiver end,
  function() -- child processes (lua/trio/process.lua)
    local process = require("trio.process").install(trio)
    trio.run_process = process.run_process
    trio.CalledProcessError = process.CalledProcessError
    lowlevel.open_process = process.open_process
  end,
  function() -- files (lua/trio/files.lua)
    local files = require "trio.files"
    trio.open_file = files.trio_open_file
    trio.Path = files.Path
  end,
  function() -- networking: trio.socket, streams and their testing tools
    trio.socket = require "trio.socket"
    require "trio.streams"(trio)
    require "trio.ssl"(trio) -- SSLStream and the TLS-over-TCP helpers
    require "trio.testing_streams"(trio, trio.testing)
  end,
}, trio, trio.testing, lowlevel)

return trio
