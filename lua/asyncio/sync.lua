--- asyncio's synchronization primitives: Event, Lock, Semaphore,
-- BoundedSemaphore, Condition, Barrier (the semantics of CPython's
-- asyncio/locks.py).
--
-- Every wait is a Future of the running loop, awaited inside pcall so that a
-- cancelled waiter takes itself off the waiter list before the error goes on.
-- As in CPython, release() only *wakes* the first waiter (sets its future);
-- the woken task takes the resource when it runs.  A waiter cancelled after
-- it was woken passes the wake-up on to the next waiter, so a release is
-- never lost and a lock is never left held by a task that gave up.
--
-- This module is merged into `asyncio` (asyncio.Event, asyncio.Lock, ...);
-- it does not require "asyncio" at load time (no require cycle).
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local pcall, error, type, getmetatable, setmetatable = pcall, error, type, getmetatable, setmetatable
local check_aio = core.check_aio
local running_loop = core.running_loop
local future_new = core.future_new
local Future = core.metatable("trio_asyncio.Future").__index
local fut_await, fut_done, fut_set_result = Future.await, Future.done, Future.set_result
local fut_cancelled = Future.cancelled

local M = {}

--- asyncio.ValueError: BoundedSemaphore released too many times,
-- Queue:task_done() called too many times.
local ValueError = errors.class("asyncio.ValueError", errors.Error)
M.ValueError = ValueError

local asyncio_mod
local function aio()
  asyncio_mod = asyncio_mod or require "asyncio"
  return asyncio_mod
end

--- A new future of the running loop, after checking that the caller is an
-- asyncio Task (raises FlavorError naming `fname` otherwise).
local function new_waiter(fname)
  check_aio(fname)
  local loop = running_loop() or aio().get_running_loop()
  return future_new(loop)
end
M._new_waiter = new_waiter

--- The same without the flavor check (the caller made it).
local function loop_waiter()
  return future_new(running_loop() or aio().get_running_loop())
end
M._loop_waiter = loop_waiter
M._Future = Future

local is_callable, argerror = errors.is_callable, errors.argerror
local class_of, bad_self = errors.class_of, errors.bad_self

local function cancelled_error(e)
  return aio().CancelledError:is(e)
end

-- ---------------------------------------------------------------------
-- waiter lists: arrays in FIFO order; removal is O(1) at the head (the
-- common case: the woken waiter is the first one) and a scan otherwise.
local function list_remove(list, fut)
  local n = #list
  if n == 0 then return false end
  if list[1] == fut then
    table.remove(list, 1)
    return true
  end
  for i = 2, n do
    if list[i] == fut then
      table.remove(list, i)
      return true
    end
  end
  return false
end

local function class(name)
  local cls = { __name = name }
  cls.__index = cls
  return cls
end

--- obj:with(fn, ...): acquire, run fn(...), release on every exit path;
-- returns fn's results; and a Condition's methods that are its lock's
-- (the same helpers as trio's primitives).
local make_with, lock_methods = require("trio.sync").make_with, require("trio.sync").lock_methods

-- ---------------------------------------------------------------------
-- Event, Lock, Semaphore and BoundedSemaphore: C objects
-- (csrc/asyncio/sync.c) with every method in C; these are their classes.
-- sync_state(obj) -> count, number of waiters.
local sync_state = core.sync_state

local Event = class("asyncio.Event")
M._Event = Event

function Event:__tostring()
  local set, n = sync_state(self)
  return ("asyncio.Event (%s, waiters:%d)"):format(set == 1 and "set" or "unset", n)
end

local Lock = class("asyncio.Lock")
M._Lock = Lock

Lock.with = make_with("Lock:with", Lock)

function Lock:__tostring()
  local held, n = sync_state(self)
  return ("asyncio.Lock (%s, waiters:%d)"):format(held == 1 and "locked" or "unlocked", n)
end

local Semaphore = class("asyncio.Semaphore")
M._Semaphore = Semaphore
local BoundedSemaphore = class("asyncio.BoundedSemaphore")
M._BoundedSemaphore = BoundedSemaphore

--- The initial value of a semaphore: a non-negative integer (a float with
-- an integral value is taken), 1 when nil.
local function check_value(value, fname)
  if value == nil then return 1 end
  if math.type(value) ~= "integer" then
    if type(value) == "number" and value == math.floor(value) and value >= 0 and value < math.huge then
      local v = math.tointeger(value)
      if v == nil then argerror(1, fname, "value out of the integer range, got " .. tostring(value)) end
      return v
    end
    argerror(1, fname, "non-negative integer expected, got " .. (type(value) == "number" and tostring(value) or type(value)))
  end
  if value < 0 then argerror(1, fname, "value must be >= 0, got " .. value) end
  return value
end

local new_lock, new_event, new_semaphore, new_bounded = core.sync_setup(
  { Lock, Event, Semaphore, BoundedSemaphore },
  function() return aio().get_running_loop() end)
M.Lock, M.Event = new_lock, new_event

function M.Semaphore(value)
  return new_semaphore(check_value(value, "Semaphore"))
end

function M.BoundedSemaphore(value)
  return new_bounded(check_value(value, "BoundedSemaphore"))
end

Semaphore.with = make_with("Semaphore:with", Semaphore)
BoundedSemaphore.with = make_with("BoundedSemaphore:with", BoundedSemaphore)

local function sem_tostring(self)
  local value, n = sync_state(self)
  return ("%s (value:%d, waiters:%d)"):format(getmetatable(self).__name, value, n)
end
Semaphore.__tostring, BoundedSemaphore.__tostring = sem_tostring, sem_tostring

-- ---------------------------------------------------------------------
-- Condition
local Condition = class("asyncio.Condition")
M._Condition = Condition

function M.Condition(lock)
  if lock == nil then
    lock = M.Lock()
  elseif getmetatable(lock) ~= Lock then
    argerror(1, "Condition", "asyncio.Lock or nil expected, got "
      .. (type(lock) == "table" and getmetatable(lock) and tostring(getmetatable(lock).__name) or type(lock)))
  end
  return setmetatable({ _lock = lock, _waiters = {} }, Condition)
end

lock_methods(Condition, "Condition:", { "locked", "acquire", "release" })

Condition.with = make_with("Condition:with", Condition)

local function cond_notify(self, n)
  local ws, woken = self._waiters, 0
  for i = 1, #ws do
    if woken >= n then break end
    local fut = ws[i]
    if not fut_done(fut) then
      woken = woken + 1
      fut_set_result(fut, false)
    end
  end
end

--- wait(): release the lock, wait for a notify, re-acquire the lock (even
-- when cancelled); returns true.  The lock must be held.
function Condition:wait()
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:wait") end
  check_aio("Condition:wait")
  if not self._lock:locked() then
    error(errors.RuntimeError("Condition:wait: cannot wait on un-acquired lock"), 2)
  end
  self._lock:release()
  local fut = new_waiter("Condition:wait")
  local ws = self._waiters
  ws[#ws + 1] = fut
  local ok, err = pcall(fut_await, fut)
  list_remove(self._waiters, fut)
  -- Must re-acquire the lock even if the wait is cancelled; only a
  -- cancellation of the acquire is retried (anything else goes out at once).
  local acq_err
  while true do
    local aok, e = pcall(self._lock.acquire, self._lock)
    if aok then break end
    if not cancelled_error(e) then error(e, 0) end
    acq_err = e
  end
  if acq_err ~= nil then ok, err = false, acq_err end
  if not ok then
    -- We were notified but raise instead of returning: notify another task
    -- instead, so the notification is not lost.
    if fut_done(fut) and not fut_cancelled(fut) then cond_notify(self, 1) end
    error(err, 0)
  end
  return true
end

--- wait_for(predicate): wait until predicate() is truthy; returns its value.
function Condition:wait_for(predicate)
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:wait_for") end
  if not is_callable(predicate) then
    argerror(1, "Condition:wait_for", "function expected, got " .. type(predicate))
  end
  local result = predicate()
  while not result do
    self:wait()
    result = predicate()
  end
  return result
end

--- notify(n=1): wake up to n waiting tasks.  The lock must be held.
function Condition:notify(n)
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:notify") end
  if n == nil then
    n = 1
  elseif type(n) ~= "number" or n ~= n then
    argerror(1, "Condition:notify", "number expected, got " .. type(n))
  end
  if not self._lock:locked() then
    error(errors.RuntimeError("Condition:notify: cannot notify on un-acquired lock"), 2)
  end
  cond_notify(self, n)
end

--- notify_all(): wake every waiting task.  The lock must be held.
function Condition:notify_all()
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:notify_all") end
  if not self._lock:locked() then
    error(errors.RuntimeError("Condition:notify_all: cannot notify on un-acquired lock"), 2)
  end
  cond_notify(self, #self._waiters)
end

function Condition:__tostring()
  return ("asyncio.Condition (%s, waiters:%d)"):format(
    self._lock:locked() and "locked" or "unlocked", #self._waiters)
end

-- ---------------------------------------------------------------------
-- Barrier (CPython 3.11's asyncio.Barrier): `parties` tasks wait, then
-- all go on together.  Its state changes under a Condition: "filling"
-- (tasks arrive), "draining" (the last one came: the waiters leave; new
-- arrivals wait for the end of it), "resetting" (reset() while tasks are
-- inside: they leave with BrokenBarrierError), "broken" (abort()).

--- asyncio.BrokenBarrierError: the barrier was reset or aborted while a
-- task waited, or is broken (a RuntimeError, as in Python).
local BrokenBarrierError = errors.class("asyncio.BrokenBarrierError", errors.RuntimeError)
M.BrokenBarrierError = BrokenBarrierError

local Barrier = { __name = "asyncio.Barrier" }
M._Barrier = Barrier

local barrier_fields = {
  parties = function(self) return self._parties end,
  --- the tasks waiting for the barrier to fill (0 while it drains)
  n_waiting = function(self)
    if self._state == "filling" then return self._count end
    return 0
  end,
  broken = function(self) return self._state == "broken" end,
}

function Barrier.__index(self, k)
  local get = barrier_fields[k]
  if get then return get(self) end
  return Barrier[k]
end

function M.Barrier(parties)
  if math.type(parties) ~= "integer" then
    local as_int = type(parties) == "number" and math.tointeger(parties) or nil
    if as_int ~= nil then
      parties = as_int
    else
      argerror(1, "Barrier", "integer expected, got "
        .. (type(parties) == "number" and tostring(parties) or type(parties)))
    end
  end
  if parties < 1 then argerror(1, "Barrier", "parties must be >= 1, got " .. parties) end
  return setmetatable({ _cond = M.Condition(), _parties = parties, _state = "filling", _count = 0 }, Barrier)
end

-- Blocks while the barrier drains or resets; raises if it is broken.
local function barrier_block(self)
  self._cond:wait_for(function() return self._state ~= "draining" and self._state ~= "resetting" end)
  if self._state == "broken" then error(BrokenBarrierError("Barrier:wait: Barrier aborted"), 0) end
end

-- Waits until the barrier is released; raises if it was reset or broken
-- meanwhile.
local function barrier_wait_release(self)
  self._cond:wait_for(function() return self._state ~= "filling" end)
  if self._state == "broken" or self._state == "resetting" then
    error(BrokenBarrierError("Barrier:wait: Abort or reset of barrier"), 0)
  end
end

-- The last task out of the barrier ends draining or resetting, and wakes
-- the tasks waiting for that.
local function barrier_exit(self)
  if self._count == 0 then
    if self._state == "resetting" or self._state == "draining" then self._state = "filling" end
    self._cond:notify_all()
  end
end

local function barrier_wait_locked(self)
  barrier_block(self)
  local index = self._count
  self._count = index + 1
  local ok, err = pcall(function()
    if index + 1 == self._parties then
      -- the last one: release the waiters (draining until all left)
      self._state = "draining"
      self._cond:notify_all()
    else
      barrier_wait_release(self)
    end
  end)
  self._count = self._count - 1
  barrier_exit(self)
  if not ok then error(err, 0) end
  return index
end

--- wait() -> index: wait until `parties` tasks wait, then return this
-- task's arrival index (0 .. parties-1).  Raises BrokenBarrierError when
-- the barrier is reset or aborted meanwhile, or is broken.
function Barrier:wait()
  if class_of(self) ~= Barrier then bad_self(self, Barrier, "Barrier:wait") end
  check_aio("Barrier:wait")
  return self._cond:with(barrier_wait_locked, self)
end

--- with(fn, ...): `async with barrier as i`: waits, then returns
-- fn(index, ...).
function Barrier:with(fn, ...)
  if class_of(self) ~= Barrier then bad_self(self, Barrier, "Barrier:with") end
  if not is_callable(fn) then argerror(1, "Barrier:with", "function expected, got " .. type(fn)) end
  return fn(self:wait(), ...)
end

local function barrier_reset_locked(self)
  if self._count > 0 then
    -- the tasks inside leave with BrokenBarrierError; the last one out
    -- makes it filling again
    self._state = "resetting"
  else
    self._state = "filling"
  end
  self._cond:notify_all()
end

--- reset(): back to the empty filling state; tasks waiting get
-- BrokenBarrierError.
function Barrier:reset()
  if class_of(self) ~= Barrier then bad_self(self, Barrier, "Barrier:reset") end
  check_aio("Barrier:reset")
  self._cond:with(barrier_reset_locked, self)
end

local function barrier_abort_locked(self)
  self._state = "broken"
  self._cond:notify_all()
end

--- abort(): break the barrier: waiting tasks and every later wait() get
-- BrokenBarrierError (until reset()).
function Barrier:abort()
  if class_of(self) ~= Barrier then bad_self(self, Barrier, "Barrier:abort") end
  check_aio("Barrier:abort")
  self._cond:with(barrier_abort_locked, self)
end

function Barrier:__tostring()
  if self._state == "broken" then return "asyncio.Barrier (broken)" end
  return ("asyncio.Barrier (%s, waiters:%d/%d)"):format(self._state, self.n_waiting, self._parties)
end

-- keep the helpers out of the asyncio namespace when merged
local exports = {
  Event = M.Event, Lock = M.Lock, Semaphore = M.Semaphore,
  BoundedSemaphore = M.BoundedSemaphore, Condition = M.Condition, ValueError = ValueError,
  Barrier = M.Barrier, BrokenBarrierError = BrokenBarrierError,
}
setmetatable(exports, { __index = M })
return exports
