--- asyncio's thread pools: asyncio.ThreadPoolExecutor, asyncio.ConcurrentFuture
-- (Python's concurrent.futures.Future) and asyncio.wrap_future.
--
-- A ThreadPoolExecutor runs its jobs on the engine's worker threads
-- (csrc/io/thread.c) with the rules of trio.to_thread.run_sync (a function
-- whose only upvalue is _ENV; arguments, results and errors copied); its
-- max_workers is a limit on the shared pool (a job group there), not
-- threads of its own.
--
-- A ConcurrentFuture with a job behind it learns of the job's end when its
-- results are delivered in this Lua state, by the first of:
--  * a call that blocks (result, exception, executor:shutdown(true)): it
--    waits for the worker and delivers the job itself, so it never needs
--    an event loop to run and cannot deadlock;
--  * a call that looks (done, running, cancel);
--  * a loop watching it (wrap_future, or add_done_callback in a running
--    loop): a Future of that loop set when the job completes (core.io_notify),
--    whose callback delivers the job.
-- Its done callbacks run then, in this state (Python runs them in the
-- worker thread that completes the future).
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local pack, unpack = table.pack, table.unpack
local argerror, class_of, bad_self = errors.argerror, errors.class_of, errors.bad_self

return function(asyncio, implicit_loop)
  local LoopMT = core.metatable("trio_asyncio.Loop")
  local CancelledError, TimeoutError = asyncio.CancelledError, asyncio.TimeoutError
  local InvalidStateError = asyncio.InvalidStateError

  -- ---------------------------------------------------------------------
  -- ConcurrentFuture

  local ConcurrentFuture = { __name = "asyncio.ConcurrentFuture" }
  ConcurrentFuture.__index = ConcurrentFuture

  --- asyncio.ConcurrentFuture() -> a pending concurrent future (the shape
  -- of Python's concurrent.futures.Future), settled with set_result or
  -- set_exception; ThreadPoolExecutor:submit returns ones its job settles.
  function asyncio.ConcurrentFuture()
    return setmetatable({ _state = "pending", _callbacks = {} }, ConcurrentFuture)
  end

  local function check(self, fname)
    if class_of(self) ~= ConcurrentFuture then bad_self(self, ConcurrentFuture, "ConcurrentFuture:" .. fname) end
  end

  local function check_timeout(timeout, fname)
    if timeout ~= nil and type(timeout) ~= "number" then
      argerror(1, fname, "timeout: number of seconds or nil expected, got " .. type(timeout))
    end
  end

  local function report_callback_error(self, err)
    local loop = core.running_loop()
    local message = "exception calling callback for " .. tostring(self)
    if loop ~= nil then
      loop:call_exception_handler({ message = message, exception = err, future = self })
    else
      io.stderr:write(message, ": ", tostring(err), "\n")
    end
  end

  -- The future is done: its executor forgets it, its callbacks run (in order;
  -- an error in one is reported and the others still run).
  local function finish(self)
    local executor = self._executor
    if executor ~= nil then executor._pending[self] = nil end
    self._req, self._watch, self._executor = nil, nil, nil
    local callbacks = self._callbacks
    self._callbacks = {}
    for i = 1, #callbacks do
      local ok, err = pcall(callbacks[i], self)
      if not ok then report_callback_error(self, err) end
    end
  end

  -- The job's delivery (core.thread_result after its `true`).
  local function settle_from_job(self, ok, ...)
    if ok then
      self._state, self._results = "finished", pack(...)
    else
      self._state, self._exception = "finished", (...)
    end
    finish(self)
  end

  local function settle_if_finished(self, finished, ...)
    if finished then settle_from_job(self, ...) end
  end

  -- Delivers the job when it has finished, waiting up to timeout seconds
  -- (nil: as long as it runs; 0: not at all).
  local function sync(self, timeout)
    if self._req ~= nil then settle_if_finished(self, core.thread_result(self._req, timeout)) end
  end

  -- A loop's Future set when the job completes; its callback delivers it.
  -- One loop watches at a time (the request has one waiter); a closed
  -- loop's watch is replaced.
  local function watch(self, loop)
    if self._req == nil or loop:is_closed() then return end
    local current = self._watch
    if current ~= nil and not current:get_loop():is_closed() then return end
    local notified = core.io_notify(loop, self._req)
    self._watch = notified
    notified:add_done_callback(function() sync(self, 0) end)
  end

  local function is_done(self)
    return self._state == "finished" or self._state == "cancelled"
  end

  -- Waits for the outcome (result and exception share it).
  local function wait(self, timeout, fname)
    check_timeout(timeout, fname)
    if self._state == "pending" then
      if self._req ~= nil then
        sync(self, timeout ~= nil and math.max(timeout, 0) or nil)
      elseif timeout == nil then
        error(InvalidStateError(fname .. ": the future is pending and nothing can complete it while "
          .. "this Lua state waits (it has no job on a worker thread): set its result or "
          .. "exception before waiting for it"), 3)
      end
    end
    if self._state == "cancelled" then error(CancelledError(), 3) end
    if self._state == "pending" then error(TimeoutError(fname .. ": timed out"), 3) end
  end

  --- cf:result([timeout]) -> the results; raises the future's error,
  -- CancelledError, or TimeoutError after timeout seconds.
  function ConcurrentFuture:result(timeout)
    check(self, "result")
    wait(self, timeout, "result")
    if self._exception ~= nil then error(self._exception, 0) end
    return unpack(self._results, 1, self._results.n)
  end

  --- cf:exception([timeout]) -> the future's error, or nil.
  function ConcurrentFuture:exception(timeout)
    check(self, "exception")
    wait(self, timeout, "exception")
    return self._exception
  end

  --- cf:done() -> true once finished or cancelled.
  function ConcurrentFuture:done()
    check(self, "done")
    sync(self, 0)
    return is_done(self)
  end

  --- cf:cancelled() -> true when cancelled.
  function ConcurrentFuture:cancelled()
    check(self, "cancelled")
    return self._state == "cancelled"
  end

  --- cf:running() -> true while a worker thread runs its job.
  function ConcurrentFuture:running()
    check(self, "running")
    sync(self, 0)
    return self._req ~= nil and core.thread_stage(self._req) == "running"
  end

  --- cf:cancel() -> true when the future is (now) cancelled: a job no
  -- worker has started yet never runs; a running or finished one is not
  -- cancelled (false).
  function ConcurrentFuture:cancel()
    check(self, "cancel")
    sync(self, 0)
    if self._state == "cancelled" then return true end
    if self._state == "finished" then return false end
    if self._req ~= nil and not core.thread_cancel(self._req) then return false end
    self._state = "cancelled"
    finish(self)
    return true
  end

  --- cf:add_done_callback(fn): fn(cf) once the future is done (at once when
  -- it is).  In a running loop, that loop watches the job.
  function ConcurrentFuture:add_done_callback(fn)
    check(self, "add_done_callback")
    if not errors.is_callable(fn) then argerror(1, "add_done_callback", "function expected, got " .. type(fn)) end
    sync(self, 0)
    if is_done(self) then
      local ok, err = pcall(fn, self)
      if not ok then report_callback_error(self, err) end
      return
    end
    self._callbacks[#self._callbacks + 1] = fn
    local loop = core.running_loop()
    if loop ~= nil then watch(self, loop) end
  end

  local function check_settable(self, fname)
    if self._req ~= nil then
      error(InvalidStateError(fname .. ": the future's outcome comes from its job on a worker thread"), 3)
    end
    if self._state ~= "pending" then
      error(InvalidStateError(fname .. ": invalid state: " .. tostring(self)), 3)
    end
  end

  --- cf:set_result(...): finishes the future with these results.
  function ConcurrentFuture:set_result(...)
    check(self, "set_result")
    check_settable(self, "set_result")
    self._state, self._results = "finished", pack(...)
    finish(self)
  end

  --- cf:set_exception(err): finishes the future with an error.
  function ConcurrentFuture:set_exception(err)
    check(self, "set_exception")
    if err == nil then argerror(1, "set_exception", "exception expected, got nil") end
    check_settable(self, "set_exception")
    self._state, self._exception = "finished", err
    finish(self)
  end

  --- "<ConcurrentFuture at 0x... state=...>" as Python's repr: pending,
  -- running, cancelled, "finished raised <class>" or "finished returned <type>".
  function ConcurrentFuture:__tostring()
    local state = self._state
    if state == "pending" and self._req ~= nil and core.thread_stage(self._req) == "running" then
      state = "running"
    elseif state == "finished" then
      local err = self._exception
      if err ~= nil then
        local cls = getmetatable(err)
        state = "finished raised " .. (errors.is_error(err) and rawget(cls, "__name"):match("[^.]+$") or type(err))
      else
        state = "finished returned " .. (self._results.n == 0 and "nothing" or type(self._results[1]))
      end
    end
    return ("<ConcurrentFuture at %p state=%s>"):format(self, state)
  end

  -- ---------------------------------------------------------------------
  -- ThreadPoolExecutor

  local ThreadPoolExecutor = { __name = "asyncio.ThreadPoolExecutor" }
  ThreadPoolExecutor.__index = ThreadPoolExecutor

  --- asyncio.ThreadPoolExecutor([max_workers]) -> an executor running at
  -- most max_workers jobs at once (default: min(32, CPUs + 4), as Python)
  -- on the engine's worker threads.
  function asyncio.ThreadPoolExecutor(max_workers)
    if max_workers == nil then
      max_workers = math.min(32, core.cpu_count() + 4)
    elseif math.type(max_workers) ~= "integer" then
      argerror(1, "ThreadPoolExecutor", "max_workers: integer or nil expected, got "
        .. (math.type(max_workers) or type(max_workers)))
    elseif max_workers < 1 then
      argerror(1, "ThreadPoolExecutor", "max_workers must be greater than 0")
    end
    return setmetatable({
      _max_workers = max_workers,
      _group = core.thread_group(math.min(max_workers, 1 << 30)), -- (the pool has fewer threads)
      _pending = {}, -- its futures whose jobs were not delivered -> order of submission
      _submitted = 0,
      _shutdown = false,
    }, ThreadPoolExecutor)
  end

  local function check_executor(self, fname)
    if class_of(self) ~= ThreadPoolExecutor then
      bad_self(self, ThreadPoolExecutor, "ThreadPoolExecutor:" .. fname)
    end
  end

  -- A job of the executor for fn(...), fn being argument #argn of fname.
  local function submit_job(self, fname, argn, fn, ...)
    if self._shutdown then
      error(errors.RuntimeError(fname .. ": cannot schedule new futures after shutdown"), 3)
    end
    local req = core.thread_job(fname, argn, fn, ...)
    core.thread_submit(req, self._group)
    local cf = setmetatable({ _state = "pending", _callbacks = {}, _req = req, _executor = self },
      ConcurrentFuture)
    self._submitted = self._submitted + 1
    self._pending[cf] = self._submitted
    return cf
  end

  --- executor:submit(fn, ...) -> a ConcurrentFuture of fn(...)'s results,
  -- computed on a worker thread.
  function ThreadPoolExecutor:submit(fn, ...)
    check_executor(self, "submit")
    return submit_job(self, "submit", 1, fn, ...)
  end

  --- executor:shutdown([wait=true [, cancel_futures=false]]): refuses new
  -- jobs; cancel_futures cancels the jobs no worker started; wait waits
  -- for the others (blocking this thread, as Python does).
  function ThreadPoolExecutor:shutdown(wait_for_jobs, cancel_futures)
    check_executor(self, "shutdown")
    if wait_for_jobs ~= nil and type(wait_for_jobs) ~= "boolean" then
      argerror(1, "shutdown", "wait: boolean or nil expected, got " .. type(wait_for_jobs))
    end
    if cancel_futures ~= nil and type(cancel_futures) ~= "boolean" then
      argerror(2, "shutdown", "cancel_futures: boolean or nil expected, got " .. type(cancel_futures))
    end
    self._shutdown = true
    local pending = {}
    for cf in pairs(self._pending) do pending[#pending + 1] = cf end
    table.sort(pending, function(a, b) return self._pending[a] < self._pending[b] end) -- queue order
    if cancel_futures then -- all of them first: meanwhile workers would start more
      for _, cf in ipairs(pending) do cf:cancel() end
    end
    if wait_for_jobs ~= false then
      for _, cf in ipairs(pending) do sync(cf, nil) end
    end
  end

  --- `local ex <close> = asyncio.ThreadPoolExecutor(n)`: shutdown(true) at
  -- the end of the block.
  function ThreadPoolExecutor:__close()
    self:shutdown(true)
  end

  function ThreadPoolExecutor:__tostring()
    return ("<ThreadPoolExecutor max_workers=%d%s %s>"):format(self._max_workers,
      self._shutdown and " shutdown" or "", string.format("%p", self))
  end

  -- ---------------------------------------------------------------------
  -- wrap_future: an asyncio Future that follows a ConcurrentFuture (both
  -- ways for cancellation), as CPython's futures._chain_future.

  -- dest (an asyncio Future) takes source's outcome, unless cancelled.
  local function copy_state(source, dest)
    if dest:cancelled() then return end
    if source._state == "cancelled" then
      dest:cancel()
    elseif source._exception ~= nil then
      dest:set_exception(source._exception)
    else
      core.future_set_results(dest, unpack(source._results, 1, source._results.n)) -- every value
    end
  end

  local function chain(source, dest)
    local dest_loop = dest:get_loop()
    dest:add_done_callback(function()
      if dest:cancelled() then source:cancel() end
    end)
    watch(source, dest_loop)
    source:add_done_callback(function()
      if dest_loop:is_closed() then return end
      dest_loop:call_soon_threadsafe(copy_state, source, dest)
    end)
  end

  --- asyncio.wrap_future(future [, loop]) -> an asyncio Future of loop
  -- (default: the running loop, else the one set with set_event_loop)
  -- following a ConcurrentFuture; an asyncio Future is returned as it is.
  function asyncio.wrap_future(future, loop)
    if core.is_future(future) then return future end
    if class_of(future) ~= ConcurrentFuture then
      argerror(1, "wrap_future", "asyncio.ConcurrentFuture or asyncio.Future expected, got " .. type(future))
    end
    if loop ~= nil and class_of(loop) ~= LoopMT then
      argerror(2, "wrap_future", "event loop or nil expected, got " .. type(loop))
    end
    loop = loop or implicit_loop("wrap_future")
    local dest = loop:create_future()
    chain(future, dest)
    return dest
  end

  -- for loop:run_in_executor (lua/asyncio/system.lua)
  return {
    is_executor = function(x) return class_of(x) == ThreadPoolExecutor end,
    submit_job = submit_job,
  }
end
