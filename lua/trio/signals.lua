--- Signals for both flavors: trio.open_signal_receiver and
-- loop:add_signal_handler / remove_signal_handler, on the SignalWatch of
-- csrc/io/signal.c (uv_signal_t).  A signal is named ("SIGUSR1") or
-- numbered; SIGKILL and SIGSTOP cannot be caught.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local class_of, bad_self = errors.class_of, errors.bad_self

local numbers = core.signal_numbers
local names = {}
for name, num in pairs(numbers) do names[num] = name end

local M = {}

--- The number of a signal given by name or number; nil and a reason when
-- it is unknown or (unless `uncatchable_ok`) cannot be caught.
local function signum(sig, uncatchable_ok)
  local n = sig
  if type(sig) == "string" then
    n = numbers[sig] or numbers["SIG" .. sig]
    if n == nil then return nil, ("unknown signal '%s'"):format(sig) end
  elseif math.type(sig) ~= "integer" then
    return nil, ("signal name or number expected, got %s"):format(type(sig))
  elseif sig < 1 or sig > 64 then
    return nil, ("invalid signal number %d"):format(sig)
  end
  if not uncatchable_ok and (n == numbers.SIGKILL or n == numbers.SIGSTOP) then
    return nil, ("%s cannot be caught"):format(names[n])
  end
  return n
end
M.signum = signum

--- A signal's name ("SIGUSR1"), or its number as a string for one
-- without a name here.
local function signame(n) return names[n] or tostring(n) end
M.signame = signame

-- ---------------------------------------------------------------------
-- Trio: trio.open_signal_receiver(signals, fn)
local Receiver = { __name = "trio.SignalReceiver" }
Receiver.__index = Receiver

--- for name in receiver:iter() do ... end: the names of the signals
-- received, in order (a signal repeated before it is read may come once).
function Receiver:iter()
  if class_of(self) ~= Receiver then bad_self(self, Receiver, "iter") end
  return function()
    if self._closed then
      error(errors.RuntimeError("the open_signal_receiver block has exited"), 2)
    end
    core.check_trio("trio.SignalReceiver:iter")
    core.checkpoint_if_cancelled()
    local n = core.io_wait(core.signal_next(self._watch), true)
    if n == nil then return nil end
    return signame(n)
  end
end

--- receiver:pending() -> how many signals are queued, not yet read.
function Receiver:pending()
  return core.signal_pending(self._watch)
end

function Receiver:__tostring()
  return ("trio.SignalReceiver (%s)"):format(self._closed and "closed" or table.concat(self._names, ", "))
end

local function finish(receiver, ok, ...)
  receiver._closed = true
  core.signal_close(receiver._watch)
  if not ok then error((...), 0) end
  return ...
end

--- trio.open_signal_receiver(signals, fn) -> fn(receiver)'s results.  While
-- fn runs, the signals are caught and queued for receiver:iter(); on exit
-- their previous handling comes back.
function M.open_signal_receiver(signals, fn)
  if type(signals) ~= "table" or #signals == 0 then
    error(("bad argument #1 to 'open_signal_receiver' (non-empty list of signals expected, got %s)")
      :format(type(signals) == "table" and "an empty table" or type(signals)), 2)
  end
  if not errors.is_callable(fn) then
    error(("bad argument #2 to 'open_signal_receiver' (function expected, got %s)"):format(type(fn)), 2)
  end
  local nums, list = {}, {}
  for i, sig in ipairs(signals) do
    local n, why = signum(sig)
    if n == nil then
      error(("bad argument #1 to 'open_signal_receiver' (item %d: %s)"):format(i, why), 2)
    end
    nums[i], list[i] = n, signame(n)
  end
  core.check_trio("trio.open_signal_receiver")
  local receiver = setmetatable({ _watch = core.signal_watch(nums), _names = list, _closed = false }, Receiver)
  return finish(receiver, pcall(fn, receiver))
end

-- ---------------------------------------------------------------------
-- asyncio: loop:add_signal_handler / remove_signal_handler
function M.install_asyncio()
  local LoopMT = core.metatable("trio_asyncio.Loop")
  local Loop = LoopMT.__index
  local handlers = setmetatable({}, { __mode = "k" }) -- loop -> {[signum] = entry}

  local function arm(loop, entry)
    local fut = core.io_future(loop, core.signal_next(entry.watch))
    entry.fut = fut
    fut:add_done_callback(function(f)
      if entry.removed or f:cancelled() or f:result() == nil then return end
      arm(loop, entry)
      -- the handler runs as a loop callback: its errors go to the
      -- exception handler
      loop:call_soon(entry.callback, table.unpack(entry.args, 1, entry.args.n))
    end)
  end

  local function remove(loop, n)
    local set = handlers[loop]
    local entry = set and set[n]
    if entry == nil then return false end
    set[n] = nil
    entry.removed = true
    core.signal_close(entry.watch)
    return true
  end

  local function check_sig(sig, fname, uncatchable_ok)
    local n, why = signum(sig, uncatchable_ok)
    if n == nil then errors.argerror(1, fname, why) end
    return n
  end

  --- loop:add_signal_handler(sig, callback, ...): callback(...) runs from
  -- the loop each time sig arrives (replacing a handler already set).
  function Loop:add_signal_handler(sig, callback, ...)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "add_signal_handler") end
    local n = check_sig(sig, "add_signal_handler")
    if not errors.is_callable(callback) then
      errors.argerror(2, "add_signal_handler", "function expected, got " .. type(callback))
    end
    if self:is_closed() then error(errors.RuntimeError("add_signal_handler: Event loop is closed"), 2) end
    remove(self, n)
    local entry = { watch = core.signal_watch({ n }), callback = callback, args = table.pack(...) }
    handlers[self] = handlers[self] or {}
    handlers[self][n] = entry
    arm(self, entry)
  end

  --- loop:remove_signal_handler(sig) -> true if a handler was removed
  -- (false for SIGKILL or SIGSTOP, which never have one, as asyncio's).
  function Loop:remove_signal_handler(sig)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "remove_signal_handler") end
    return remove(self, check_sig(sig, "remove_signal_handler", true))
  end

  -- close() removes the loop's signal handlers, as asyncio's does
  local close = Loop.close
  function Loop:close()
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "close") end
    if not self:is_running() and handlers[self] then
      for n in pairs(handlers[self]) do remove(self, n) end
      handlers[self] = nil
    end
    return close(self)
  end
end

return M
