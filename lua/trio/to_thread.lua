--- trio.to_thread: run a Lua function on a worker OS thread (Trio-flavored).
--
-- The function runs in a lua_State of its own on one of the engine's
-- worker threads (csrc/io/thread.c): arguments, results and errors are
-- copied, so it shares nothing with the caller.  The task waits without
-- blocking the scheduler.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local sync = require "trio.sync"

local is_callable = errors.is_callable
local select = select

local M = {}

-- The default limiter of each run, by its root task (Trio keeps it in a
-- RunVar): a CapacityLimiter(40).
local limiters = setmetatable({}, { __mode = "k" })

--- trio.to_thread.current_default_thread_limiter() -> the run's limiter.
function M.current_default_thread_limiter()
  local root = core.current_root_task()
  if root == nil then
    error("current_default_thread_limiter: must be called inside trio.run", 2)
  end
  local limiter = limiters[root]
  if limiter == nil then
    limiter = sync.CapacityLimiter(40)
    limiters[root] = limiter
  end
  return limiter
end

-- Gives the token back, then returns the worker's results or raises its
-- error.  A release that raises wins; the worker's error is then its
-- `context` (Python's implicit __context__) when it is an error object.
local function finish(limiter, borrower, ok, ...)
  local released, release_err = pcall(limiter.release_on_behalf_of, limiter, borrower)
  if not released then
    if not ok and errors.is_error(release_err) and release_err.context == nil then
      release_err.context = (...)
    end
    error(release_err, 0)
  end
  if not ok then error((...), 0) end
  return ...
end

local function check_opts(opts)
  for k in pairs(opts) do
    if k ~= "cancellable" and k ~= "limiter" then
      error(("bad argument #1 to 'run_sync' (unknown option '%s': cancellable, limiter)"):format(tostring(k)), 3)
    end
  end
  local limiter = opts.limiter
  if limiter ~= nil and (type(limiter) ~= "table" or type(limiter.acquire_on_behalf_of) ~= "function"
      or type(limiter.release_on_behalf_of) ~= "function") then
    error("bad argument #1 to 'run_sync' (opts.limiter must be a CapacityLimiter, got "
      .. type(limiter) .. ")", 3)
  end
end

--- trio.to_thread.run_sync([opts,] fn, ...) -> fn(...)'s results, computed
-- on a worker thread.  opts: {cancellable=false, limiter=}.
function M.run_sync(...)
  local opts, first = nil, 1
  local a1 = ...
  if type(a1) == "table" and not is_callable(a1) then
    opts, first = a1, 2
    check_opts(opts)
  end
  core.check_trio("trio.to_thread.run_sync")
  -- copies fn and its arguments now: what cannot be copied raises at once
  local req = core.thread_job("run_sync", first, select(first, ...))
  core.checkpoint_if_cancelled()
  local limiter = opts and opts.limiter or M.current_default_thread_limiter()
  local borrower = {}
  limiter:acquire_on_behalf_of(borrower)
  local ok, err = pcall(core.thread_submit, req)
  if not ok then
    limiter:release_on_behalf_of(borrower)
    error(err, 0)
  end
  return finish(limiter, borrower, pcall(core.io_wait, req, opts ~= nil and opts.cancellable))
end

return M
