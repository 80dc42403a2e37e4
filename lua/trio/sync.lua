--- Trio's synchronization primitives, built on the C parking lot.
--
-- Every blocking acquire parks in a FIFO ParkingLot; release hands the
-- resource straight to the first waiter (it owns it from then on, even if
-- it is cancelled before it runs), so nothing is granted twice or lost.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local ParkingLot = core.ParkingLot
-- the lot's methods, called directly (a lookup on a lot runs its __index)
local lot_mt = core.metatable("trio_asyncio.ParkingLot")
local lot_park, lot_unpark, lot_len = lot_mt.__methods.park, lot_mt.__methods.unpark, lot_mt.__len
local lot_unpark_all = lot_mt.__methods.unpark_all
local current_task = core.current_task
local checkpoint = core.checkpoint
local checkpoint_if_cancelled = core.checkpoint_if_cancelled
local cancel_shielded_checkpoint = core.cancel_shielded_checkpoint
local class_of, bad_self = errors.class_of, errors.bad_self

local M = {}

local function class(name)
  local cls = { __name = name }
  cls.__index = cls
  cls.__tostring = function(self) return ("%s (%s)"):format(name, self:statistics_line()) end
  return cls
end

local function finish_with(self, ok, ...)
  self:release()
  if not ok then error((...), 0) end
  return ...
end

--- obj:with(fn, ...): acquire, run fn(...), release on every exit path.
-- `fname` names it in errors; self must be an instance of `cls` (or of
-- `subclass`, which shares cls's methods).
-- (shared with asyncio's primitives: require("trio.sync").make_with)
local function make_with(fname, cls, subclass)
  return function(self, fn, ...)
    local c = class_of(self)
    if c ~= cls and (subclass == nil or c ~= subclass) then bad_self(self, cls, fname) end
    if not errors.is_callable(fn) then
      errors.argerror(1, fname, "function expected, got " .. type(fn))
    end
    self:acquire()
    return finish_with(self, pcall(fn, ...))
  end
end

--- Defines the methods `names` of cls (a Condition) as the same methods of
-- its self._lock; `prefix` .. name names each in errors.
-- (shared with asyncio's Condition: require("trio.sync").lock_methods)
local function lock_methods(cls, prefix, names)
  for _, name in ipairs(names) do
    local fname = prefix .. name
    cls[name] = function(self)
      if class_of(self) ~= cls then bad_self(self, cls, fname) end
      local lock = self._lock
      return lock[name](lock)
    end
  end
end

-- ---------------------------------------------------------------------
local Event = class("trio.Event")
M.Event = function() return setmetatable({ _flag = false, _lot = ParkingLot() }, Event) end

function Event:set()
  if class_of(self) ~= Event then bad_self(self, Event, "Event:set") end
  if not self._flag then
    -- waiters first: if waking them fails (not enough memory), the event
    -- is still unset and set() can be called again
    lot_unpark_all(self._lot)
    self._flag = true
  end
end

function Event:is_set()
  if class_of(self) ~= Event then bad_self(self, Event, "Event:is_set") end
  return self._flag
end

function Event:wait()
  if class_of(self) ~= Event then bad_self(self, Event, "Event:wait") end
  if self._flag then checkpoint() else lot_park(self._lot) end
end

function Event:statistics()
  if class_of(self) ~= Event then bad_self(self, Event, "Event:statistics") end
  return { tasks_waiting = lot_len(self._lot) }
end
function Event:statistics_line() return self._flag and "set" or "unset" end

-- ---------------------------------------------------------------------
local Lock = class("trio.Lock")

local function new_lock(cls)
  return setmetatable({ _owner = nil, _lot = ParkingLot() }, cls)
end

M.Lock = function() return new_lock(Lock) end

-- StrictFIFOLock (below) shares Lock's methods: they accept both.
local StrictFIFOLock
local function is_lock(v)
  local c = class_of(v)
  return c == Lock or c == StrictFIFOLock
end

-- A lock whose owner exited without releasing it can never be acquired
-- again: say so (Trio raises BrokenResourceError there too).  While tasks
-- wait for it, its owner is a breaker of its parking lot, so that they get
-- the same error when the owner exits (Trio's parking-lot breakers).  The
-- owner is registered when the first task parks behind it (watch_owner),
-- not at every acquire as Trio does: an uncontended acquire and release
-- touch no registry, and an owner that exits with nobody waiting is found
-- by the next acquire (lock_try).
local function owner_lost(owner)
  return errors.BrokenResourceError("Owner of this lock exited without releasing: " .. tostring(owner))
end

local function watch_owner(self)
  if self._breaker == nil and self._owner ~= nil then
    core.add_parking_lot_breaker(self._owner, self._lot)
    self._breaker = self._owner
  end
end

local function lock_try(self, fname)
  local task, owner = current_task(), self._owner
  if owner == task then
    error(errors.RuntimeError(fname .. ": attempt to re-acquire an already held Lock"), 0)
  end
  if owner == nil then
    if lot_len(self._lot) > 0 then return false end
    self._owner = task
    return true
  end
  if owner.done then error(owner_lost(owner), 0) end
  return false
end

function Lock:acquire_nowait()
  if not is_lock(self) then bad_self(self, Lock, "Lock:acquire_nowait") end
  if not lock_try(self, "Lock:acquire_nowait") then
    error(errors.WouldBlock("Lock:acquire_nowait: the lock is held"), 0)
  end
end

function Lock:acquire()
  if not is_lock(self) then bad_self(self, Lock, "Lock:acquire") end
  checkpoint_if_cancelled()
  if lock_try(self, "Lock:acquire") then
    cancel_shielded_checkpoint()
  else
    -- release() makes us the owner before waking us
    watch_owner(self)
    local ok, e = pcall(lot_park, self._lot)
    if not ok then
      if errors.BrokenResourceError:is(e) then error(owner_lost(self._owner), 0) end
      error(e, 0)
    end
  end
end

function Lock:release()
  if not is_lock(self) then bad_self(self, Lock, "Lock:release") end
  if self._owner ~= current_task() then
    error(errors.RuntimeError("Lock:release: can't release a Lock you don't own"), 0)
  end
  local lot = self._lot
  if self._breaker ~= nil then
    core.remove_parking_lot_breaker(self._breaker, lot)
    self._breaker = nil
  end
  if lot_len(lot) == 0 then
    self._owner = nil
    return
  end
  self._owner = lot_unpark(lot)[1]
  if lot_len(lot) > 0 then watch_owner(self) end
end

function Lock:locked()
  if not is_lock(self) then bad_self(self, Lock, "Lock:locked") end
  return self._owner ~= nil
end

function Lock:statistics()
  if not is_lock(self) then bad_self(self, Lock, "Lock:statistics") end
  return { locked = self._owner ~= nil, owner = self._owner, tasks_waiting = lot_len(self._lot) }
end

function Lock:statistics_line() return self._owner and "locked" or "unlocked" end

StrictFIFOLock = setmetatable({ __name = "trio.StrictFIFOLock" }, { __index = Lock })
StrictFIFOLock.__index = StrictFIFOLock
StrictFIFOLock.__tostring = function(self)
  return ("trio.StrictFIFOLock (%s)"):format(self:statistics_line())
end
M.StrictFIFOLock = function() return new_lock(StrictFIFOLock) end
Lock.with = make_with("Lock:with", Lock, StrictFIFOLock)

-- ---------------------------------------------------------------------
local Semaphore = class("trio.Semaphore")

M.Semaphore = function(initial_value, max_value)
  if math.type(initial_value) ~= "integer" or initial_value < 0 then
    error("bad argument #1 to 'Semaphore' (non-negative integer expected)", 2)
  end
  if max_value ~= nil and (math.type(max_value) ~= "integer" or max_value < initial_value) then
    error("bad argument #2 to 'Semaphore' (integer >= initial_value expected)", 2)
  end
  return setmetatable({ _value = initial_value, _max = max_value, _lot = ParkingLot() }, Semaphore)
end

function Semaphore:acquire_nowait()
  if class_of(self) ~= Semaphore then bad_self(self, Semaphore, "Semaphore:acquire_nowait") end
  if self._value == 0 then error(errors.WouldBlock("Semaphore:acquire_nowait: value is 0"), 0) end
  self._value = self._value - 1
end

function Semaphore:acquire()
  if class_of(self) ~= Semaphore then bad_self(self, Semaphore, "Semaphore:acquire") end
  checkpoint_if_cancelled()
  if self._value == 0 then
    lot_park(self._lot) -- release handed us its token
  else
    self._value = self._value - 1
    cancel_shielded_checkpoint()
  end
end

function Semaphore:release()
  if class_of(self) ~= Semaphore then bad_self(self, Semaphore, "Semaphore:release") end
  if lot_len(self._lot) > 0 then
    lot_unpark(self._lot)
  else
    if self._max and self._value == self._max then
      error(errors.RuntimeError("Semaphore:release: released too many times"), 0)
    end
    self._value = self._value + 1
  end
end

function Semaphore:locked()
  if class_of(self) ~= Semaphore then bad_self(self, Semaphore, "Semaphore:locked") end
  return self._value == 0
end

function Semaphore:statistics()
  if class_of(self) ~= Semaphore then bad_self(self, Semaphore, "Semaphore:statistics") end
  return { tasks_waiting = lot_len(self._lot) }
end

function Semaphore:statistics_line() return "value " .. self._value end
Semaphore.with = make_with("Semaphore:with", Semaphore)
Semaphore.__index = function(self, k)
  if k == "value" then return rawget(self, "_value") end
  if k == "max_value" then return rawget(self, "_max") end
  return Semaphore[k]
end

-- ---------------------------------------------------------------------
local CapacityLimiter = class("trio.CapacityLimiter")

-- total_tokens: a non-negative integer or math.huge (0 lets nobody in
-- until it is raised, as in Trio).
local function check_tokens(v, what, level)
  if type(v) ~= "number" or (math.type(v) ~= "integer" and v ~= math.huge) then
    error(("%s (integer or math.huge expected, got %s)"):format(what,
      math.type(v) == "float" and "non-integer number" or type(v)), level + 1)
  end
  if v < 0 then error(what .. " (total_tokens must be >= 0)", level + 1) end
end

M.CapacityLimiter = function(total_tokens)
  check_tokens(total_tokens, "bad argument #1 to 'CapacityLimiter'", 2)
  return setmetatable({ _total = total_tokens, _borrowers = {}, _nborrowed = 0,
    _pending = {}, _lot = ParkingLot() }, CapacityLimiter)
end

-- A borrower is any value that can be a table key.
local function check_borrower(borrower, fname)
  if borrower == nil or borrower ~= borrower then
    error(("bad argument #1 to '%s' (borrower expected, got %s)"):format(fname,
      borrower == nil and "nil" or "NaN"), 3)
  end
end

local function limiter_try(self, borrower, fname)
  if self._borrowers[borrower] then
    error(errors.RuntimeError(fname .. ": this borrower already holds one of this limiter's tokens"), 0)
  end
  if self._nborrowed < self._total and lot_len(self._lot) == 0 then
    self._borrowers[borrower] = true
    self._nborrowed = self._nborrowed + 1
    return true
  end
  return false
end

function CapacityLimiter:acquire_on_behalf_of_nowait(borrower)
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:acquire_on_behalf_of_nowait") end
  check_borrower(borrower, "acquire_on_behalf_of_nowait")
  if not limiter_try(self, borrower, "CapacityLimiter:acquire_nowait") then
    error(errors.WouldBlock("CapacityLimiter:acquire_nowait: no tokens available"), 0)
  end
end

function CapacityLimiter:acquire_nowait()
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:acquire_nowait") end
  self:acquire_on_behalf_of_nowait(current_task())
end

function CapacityLimiter:acquire_on_behalf_of(borrower)
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:acquire_on_behalf_of") end
  check_borrower(borrower, "acquire_on_behalf_of")
  checkpoint_if_cancelled()
  if limiter_try(self, borrower, "CapacityLimiter:acquire") then
    cancel_shielded_checkpoint()
    return
  end
  local task = current_task()
  self._pending[task] = borrower
  local ok, err = pcall(lot_park, self._lot)
  if not ok then
    self._pending[task] = nil
    error(err, 0)
  end
end

function CapacityLimiter:acquire()
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:acquire") end
  self:acquire_on_behalf_of(current_task())
end

local function limiter_wake(self)
  while self._nborrowed < self._total and lot_len(self._lot) > 0 do
    local task = lot_unpark(self._lot)[1]
    self._borrowers[self._pending[task]] = true
    self._pending[task] = nil
    self._nborrowed = self._nborrowed + 1
  end
end

function CapacityLimiter:release_on_behalf_of(borrower)
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:release_on_behalf_of") end
  if not self._borrowers[borrower] then
    error(errors.RuntimeError("CapacityLimiter:release: this borrower isn't holding any of this limiter's tokens"), 0)
  end
  self._borrowers[borrower] = nil
  self._nborrowed = self._nborrowed - 1
  limiter_wake(self)
end

function CapacityLimiter:release()
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:release") end
  self:release_on_behalf_of(current_task())
end

function CapacityLimiter:statistics()
  if class_of(self) ~= CapacityLimiter then bad_self(self, CapacityLimiter, "CapacityLimiter:statistics") end
  local borrowers = {}
  for b in pairs(self._borrowers) do borrowers[#borrowers + 1] = b end
  return { borrowed_tokens = self._nborrowed, total_tokens = self._total,
    borrowers = borrowers, tasks_waiting = lot_len(self._lot) }
end

function CapacityLimiter:statistics_line()
  return ("%d/%s borrowed"):format(self._nborrowed, tostring(self._total))
end

CapacityLimiter.with = make_with("CapacityLimiter:with", CapacityLimiter)
local limiter_methods = CapacityLimiter
CapacityLimiter.__index = function(self, k)
  if k == "total_tokens" then return rawget(self, "_total") end
  if k == "borrowed_tokens" then return rawget(self, "_nborrowed") end
  if k == "available_tokens" then return rawget(self, "_total") - rawget(self, "_nborrowed") end
  return limiter_methods[k]
end
CapacityLimiter.__newindex = function(self, k, v)
  if k ~= "total_tokens" then error("CapacityLimiter: field '" .. tostring(k) .. "' cannot be set", 2) end
  check_tokens(v, "CapacityLimiter.total_tokens", 2)
  rawset(self, "_total", v)
  limiter_wake(self)
end

-- ---------------------------------------------------------------------
local Condition = class("trio.Condition")

M.Condition = function(lock)
  if lock == nil then lock = M.Lock() end
  if not is_lock(lock) then
    error("bad argument #1 to 'Condition' (trio.Lock expected)", 2)
  end
  return setmetatable({ _lock = lock, _lot = ParkingLot() }, Condition)
end

lock_methods(Condition, "Condition:", { "acquire", "acquire_nowait", "release", "locked" })

--- cond:wait(): release the lock, wait for notify, own the lock again.
-- notify moves the waiter into the lock's own queue, so it wakes up as the
-- lock's owner (Lock:release hands the lock to the first task queued).
-- Cancelled (or any error) while waiting: reacquire, shielded, then raise.
function Condition:wait()
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:wait") end
  if self._lock._owner ~= current_task() then
    error(errors.RuntimeError("Condition:wait: must hold the lock to wait"), 0)
  end
  self._lock:release()
  local ok, err = pcall(lot_park, self._lot)
  if not ok then
    core.CancelScope(nil, true):run(self._lock.acquire, self._lock)
    error(err, 0)
  end
end

function Condition:notify(n)
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:notify") end
  n = n or 1
  if math.type(n) ~= "integer" or n < 0 then error("bad argument #1 to 'notify' (non-negative integer expected)", 2) end
  if self._lock._owner ~= current_task() then
    error(errors.RuntimeError("Condition:notify: must hold the lock to notify"), 0)
  end
  self._lot:repark(self._lock._lot, n)
  if lot_len(self._lock._lot) > 0 then watch_owner(self._lock) end
end

function Condition:notify_all()
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:notify_all") end
  if self._lock._owner ~= current_task() then
    error(errors.RuntimeError("Condition:notify_all: must hold the lock to notify"), 0)
  end
  self._lot:repark_all(self._lock._lot)
  if lot_len(self._lock._lot) > 0 then watch_owner(self._lock) end
end

function Condition:statistics()
  if class_of(self) ~= Condition then bad_self(self, Condition, "Condition:statistics") end
  return { tasks_waiting = lot_len(self._lot), lock_statistics = self._lock:statistics() }
end

function Condition:statistics_line() return lot_len(self._lot) .. " waiting" end
Condition.with = make_with("Condition:with", Condition)

-- not part of the public names that trio copies from this module
setmetatable(M, { __index = { make_with = make_with, lock_methods = lock_methods } })

return M
