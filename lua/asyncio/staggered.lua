--- asyncio.staggered: staggered_race, with the semantics of CPython's
-- asyncio/staggered.py.  Functions run as Tasks whose starts are
-- staggered; the first to return wins and the others are cancelled.
-- loop:create_connection's Happy Eyeballs (happy_eyeballs_delay=) races
-- its connection attempts with it.
--
-- The racing Task waits on one Future at a time, woken when an attempt's
-- Task ends or a stagger delay runs out; it looks at the race's state
-- each time it wakes.  It never returns while an attempt's Task is still
-- running: cancelled, it cancels them, waits for their end and then
-- raises its cancellation.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local argerror, is_callable = errors.argerror, errors.is_callable

local M = {}

--- asyncio.staggered.staggered_race(fns, delay [, loop]) -> winner_result,
-- winner_index, exceptions.  fns is a list of functions; fns[1] starts at
-- once, each next one when the one started before it has failed or
-- `delay` seconds after that one started (delay nil: only when it
-- failed).  The first to return wins: the others are cancelled and
-- awaited.  exceptions holds an entry per attempt started, in order: the
-- error it raised, or false for the winner.  No winner: winner_result and
-- winner_index are nil.
function M.staggered_race(fns, delay, loop)
  if type(fns) ~= "table" then argerror(1, "staggered_race", "list of functions expected, got " .. type(fns)) end
  for i, fn in ipairs(fns) do
    if not is_callable(fn) then
      argerror(1, "staggered_race", ("function expected at index %d, got %s"):format(i, type(fn)))
    end
  end
  if delay ~= nil and (type(delay) ~= "number" or not (delay >= 0)) then
    argerror(2, "staggered_race", "delay must be nil or a non-negative number")
  end
  core.check_aio("asyncio.staggered.staggered_race")
  local asyncio = require "asyncio"
  loop = loop or asyncio.get_running_loop()

  local exceptions = {}
  local winner_result, winner_index
  local running = {} -- the attempts' Tasks still running
  local ended = {}   -- index -> true once that attempt's Task has ended
  local wakeup       -- the Future the racing Task waits on, or nil
  local interruption -- the error (a cancellation) the racing Task got

  local function wake()
    if wakeup ~= nil and not wakeup:done() then wakeup:set_result(nil) end
  end

  local function attempt(i)
    local ok, value = pcall(fns[i])
    if not ok then
      exceptions[i] = value
    elseif winner_index == nil then
      winner_result, winner_index = value, i
      local me = asyncio.current_task()
      for task in pairs(running) do
        if task ~= me then task:cancel() end
      end
    else -- it ignored its cancellation; the race was won already
      exceptions[i] = asyncio.CancelledError("staggered_race: another attempt won")
    end
  end

  local function start(i)
    exceptions[i] = false
    local task = loop:create_task(attempt, i)
    running[task] = true
    task:add_done_callback(function()
      running[task] = nil
      ended[i] = true
      if task:cancelled() and exceptions[i] == false then -- cancelled before it started
        exceptions[i] = select(2, pcall(task.result, task))
      end
      wake()
    end)
  end

  -- Waits until woken (by an attempt's end, or after `timeout` seconds);
  -- a cancellation is kept in `interruption` and passed on to the attempts.
  local function wait_for_change(timeout)
    wakeup = loop:create_future()
    local timer = timeout and loop:call_later(timeout, wake)
    local ok, err = pcall(wakeup.await, wakeup)
    wakeup = nil
    if timer then timer:cancel() end
    if not ok then
      interruption = err
      for task in pairs(running) do task:cancel() end
    end
  end

  for i = 1, #fns do
    if winner_index ~= nil or interruption ~= nil then break end
    start(i)
    local deadline = delay and loop:time() + delay
    while not (ended[i] or winner_index ~= nil or interruption ~= nil) do
      local left = deadline and deadline - loop:time()
      if left and left <= 0 then break end
      wait_for_change(left)
    end
  end
  while next(running) ~= nil do wait_for_change(nil) end
  if interruption ~= nil then error(interruption, 0) end
  return winner_result, winner_index, exceptions
end

return M
