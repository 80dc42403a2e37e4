--- asyncio's face of the system resources: executors (loop:run_in_executor
-- and asyncio.to_thread run a Lua function on a worker OS thread,
-- csrc/io/thread.c, with the rules of trio.to_thread.run_sync: the
-- function's only upvalue may be _ENV, and arguments, results and errors
-- are copied; ThreadPoolExecutor and wrap_future in asyncio/executor.lua),
-- files (asyncio.open_file), subprocesses and signals.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

return function(asyncio, implicit_loop)
  local LoopMT = core.metatable("trio_asyncio.Loop")
  local Loop = LoopMT.__index
  local class_of, bad_self = errors.class_of, errors.bad_self

  -- ThreadPoolExecutor, ConcurrentFuture, wrap_future (lua/asyncio/executor.lua)
  local executors = require "asyncio.executor" (asyncio, implicit_loop)

  -- loop -> the executor set with set_default_executor
  local default_executors = setmetatable({}, { __mode = "k" })

  --- loop:set_default_executor(executor): run_in_executor(nil, ...) uses
  -- this ThreadPoolExecutor from now on.
  function Loop:set_default_executor(executor)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "set_default_executor") end
    if not executors.is_executor(executor) then
      errors.argerror(1, "set_default_executor", "asyncio.ThreadPoolExecutor expected, got " .. type(executor))
    end
    default_executors[self] = executor
  end

  --- loop:run_in_executor(executor, fn, ...) -> a Future of fn(...)'s
  -- results, computed on a worker thread: executor is nil (the default
  -- executor), a ThreadPoolExecutor or a trio_asyncio.TrioExecutor.
  -- Cancelling the Future does not stop a job a worker runs: its results
  -- are dropped.
  function Loop:run_in_executor(executor, fn, ...)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "run_in_executor") end
    local trio_executor = type(executor) == "table" and executor._trio_executor
    if executor ~= nil and not trio_executor and not executors.is_executor(executor) then
      errors.argerror(1, "run_in_executor", "nil (the default executor), an asyncio.ThreadPoolExecutor or a "
        .. "trio_asyncio.TrioExecutor expected, got " .. type(executor))
    end
    if self:is_closed() then error(errors.RuntimeError("run_in_executor: Event loop is closed"), 2) end
    if trio_executor then
      core.thread_job("run_in_executor", 2, fn, ...) -- what cannot be copied raises now
      return self:run_trio(executor.submit, executor, fn, ...)
    end
    executor = executor or default_executors[self]
    if executor ~= nil then
      return asyncio.wrap_future(executors.submit_job(executor, "run_in_executor", 2, fn, ...), self)
    end
    local req = core.thread_job("run_in_executor", 2, fn, ...)
    core.thread_submit(req)
    return core.io_future(self, req)
  end

  --- asyncio.open_file(path [, mode="r"]) -> an async file whose methods
  -- are asyncio-flavored (beyond Python: lua/trio/files.lua).
  asyncio.open_file = require("trio.files").asyncio_open_file

  -- subprocesses (lua/asyncio/subprocess.lua)
  require "asyncio.subprocess" (asyncio)

  -- loop:add_signal_handler / remove_signal_handler (lua/trio/signals.lua)
  require("trio.signals").install_asyncio()

  --- asyncio.to_thread(fn, ...) -> fn(...)'s results (asyncio-flavored).
  function asyncio.to_thread(fn, ...)
    core.check_aio("asyncio.to_thread")
    local loop = asyncio.get_running_loop()
    local req = core.thread_job("to_thread", 1, fn, ...)
    core.thread_submit(req)
    return core.io_future(loop, req):await()
  end
end
