-- Ported from CPython (python/cpython):
--   Lib/test/test_concurrent_futures/test_future.py (FutureTests) at
--     1b09aecae25aba8fca987d99fd78549c421ce923;
--   Lib/test/test_concurrent_futures/test_shutdown.py (ExecutorShutdownTest,
--     ThreadPoolShutdownTest) at f71bb1cbeff9e27cd7dea853cbb90129bced4cef;
--   Lib/test/test_concurrent_futures/test_interpreter_pool.py (AsyncioTest:
--     its interpreters, like the worker states here, get copies of values)
--     at c13733cf46b08754aa852e66a3a5b8f1b3c550ed;
--   Lib/test/test_asyncio/test_base_events.py (BaseEventLoopTests) and
--   Lib/test/test_asyncio/test_events.py (EventLoopTestsMixin).
--
-- concurrent.futures.Future is asyncio.ConcurrentFuture here and
-- ThreadPoolExecutor is asyncio.ThreadPoolExecutor (docs/SEMANTICS.md).
-- Python's RUNNING_FUTURE is a future whose job a worker runs (blocked on a
-- file the test creates); its other module-level futures are made with
-- set_result / set_exception / cancel.  time.sleep in a worker is
-- os.execute("sleep ...") (a worker has the standard libraries only).
--
-- Left out:
--   FutureTests.test_result_with_cancel, test_exception_with_success
--                 another thread cancels or finishes a pending future: no
--                 other thread can hold it (a worker gets copies of plain
--                 values); test_result_with_success is ported with the job
--                 as the thread that completes the future
--   ExecutorShutdownTest.test_interpreter_shutdown, test_submit_after_interpreter_shutdown,
--   test_hang_gh83386; ThreadPoolShutdownTest.test_cancel_futures_wait_false
--                 atexit hooks and the interpreter's exit joining the pool's
--                 threads (lua_close abandons the jobs still running)
--   ThreadPoolShutdownTest.test_threads_terminate, test_thread_names_assigned,
--   test_thread_names_default
--                 the executor's private _threads (it has no threads of its own)
--   ThreadPoolShutdownTest.test_context_manager_shutdown, test_del_shutdown,
--   test_shutdown_no_wait
--                 Executor.map, which is not there
--   AsyncioTest.test_run_in_executor_cancel's patched loop.call_soon:
--                 a loop's methods cannot be replaced; the port checks that
--                 nothing reaches the closed loop instead
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local assert_raises = H.assert_raises
local CancelledError, TimeoutError, InvalidStateError, RuntimeError =
  H.CancelledError, H.TimeoutError, H.InvalidStateError, H.RuntimeError
local OSError = asyncio.OSError

local support = require "support"
local new_path = support.new_path

-- The futures of util.py, made fresh for each test.
local function module_futures()
  local F = {}
  F.PENDING = asyncio.ConcurrentFuture()
  F.CANCELLED = asyncio.ConcurrentFuture()
  F.CANCELLED:cancel()
  F.EXCEPTION = asyncio.ConcurrentFuture()
  F.EXCEPTION:set_exception(OSError("os error"))
  F.SUCCESSFUL = asyncio.ConcurrentFuture()
  F.SUCCESSFUL:set_result(42)
  return F
end

-- A future whose job a worker runs until release() (RUNNING_FUTURE).
local function running_future()
  local ex = asyncio.ThreadPoolExecutor(1)
  local gate = new_path()
  local f = ex:submit(support.wait_for_file, gate)
  local deadline = os.time() + 10
  while not f:running() do
    assert(os.time() <= deadline, "the job did not start")
    os.execute("sleep 0.005")
  end
  local function release()
    assert(io.open(gate, "w")):close()
    ex:shutdown(true)
    os.remove(gate)
  end
  return f, release
end

describe("test_future.py", function()
  local T = "test_future.py::FutureTests."

  it(T .. "test_done_callback_with_result", function()
    local callback_result
    local f = asyncio.ConcurrentFuture()
    f:add_done_callback(function(cf) callback_result = cf:result() end)
    f:set_result(5)
    assert.equal(5, callback_result)
  end)

  it(T .. "test_done_callback_with_exception", function()
    local callback_exception
    local f = asyncio.ConcurrentFuture()
    f:add_done_callback(function(cf) callback_exception = cf:exception() end)
    f:set_exception(H.TestError("test"))
    assert.equal("test", callback_exception.message)
  end)

  it(T .. "test_done_callback_with_cancel", function()
    local was_cancelled
    local f = asyncio.ConcurrentFuture()
    f:add_done_callback(function(cf) was_cancelled = cf:cancelled() end)
    assert.is_true(f:cancel())
    assert.is_true(was_cancelled)
  end)

  -- (outside any loop, a failing callback is written to stderr)
  local captured_stderr = H.captured_stderr

  it(T .. "test_done_callback_raises", function()
    local raising_was_called, fn_was_called = false, false
    local stderr = captured_stderr(function()
      local f = asyncio.ConcurrentFuture()
      f:add_done_callback(function()
        raising_was_called = true
        error(H.TestError("doh!"))
      end)
      f:add_done_callback(function() fn_was_called = true end)
      f:set_result(5)
    end)
    assert.is_true(raising_was_called)
    assert.is_true(fn_was_called)
    assert.truthy(stderr:find("TestError: doh!", 1, true), stderr)
  end)

  it(T .. "test_done_callback_already_successful", function()
    local callback_result
    local f = asyncio.ConcurrentFuture()
    f:set_result(5)
    f:add_done_callback(function(cf) callback_result = cf:result() end)
    assert.equal(5, callback_result)
  end)

  it(T .. "test_done_callback_already_failed", function()
    local callback_exception
    local f = asyncio.ConcurrentFuture()
    f:set_exception(H.TestError("test"))
    f:add_done_callback(function(cf) callback_exception = cf:exception() end)
    assert.equal("test", callback_exception.message)
  end)

  it(T .. "test_done_callback_already_cancelled", function()
    local was_cancelled
    local f = asyncio.ConcurrentFuture()
    assert.is_true(f:cancel())
    f:add_done_callback(function(cf) was_cancelled = cf:cancelled() end)
    assert.is_true(was_cancelled)
  end)

  it(T .. "test_done_callback_raises_already_succeeded", function()
    local stderr = captured_stderr(function()
      local f = asyncio.ConcurrentFuture()
      f:set_result(5)
      f:add_done_callback(function() error(H.TestError("doh!")) end)
    end)
    assert.truthy(stderr:find("exception calling callback for", 1, true), stderr)
    assert.truthy(stderr:find("doh!", 1, true), stderr)
  end)

  it(T .. "test_repr", function()
    local F = module_futures()
    local running, release = running_future()
    assert.matches("^<ConcurrentFuture at 0x%x+ state=pending>$", tostring(F.PENDING))
    assert.matches("^<ConcurrentFuture at 0x%x+ state=running>$", tostring(running))
    assert.matches("^<ConcurrentFuture at 0x%x+ state=cancelled>$", tostring(F.CANCELLED))
    assert.matches("^<ConcurrentFuture at 0x%x+ state=finished raised OSError>$", tostring(F.EXCEPTION))
    assert.matches("^<ConcurrentFuture at 0x%x+ state=finished returned number>$", tostring(F.SUCCESSFUL))
    release()
  end)

  it(T .. "test_cancel", function()
    local F = module_futures()
    local running, release = running_future()
    assert.is_true(F.PENDING:cancel())
    assert.is_true(F.PENDING:cancelled())
    assert.is_false(running:cancel())
    assert.is_true(running:running())
    assert.is_true(F.CANCELLED:cancel())
    assert.is_true(F.CANCELLED:cancelled())
    assert.is_false(F.EXCEPTION:cancel())
    assert.is_false(F.EXCEPTION:cancelled())
    assert.is_false(F.SUCCESSFUL:cancel())
    assert.is_false(F.SUCCESSFUL:cancelled())
    release()
  end)

  it(T .. "test_cancelled", function()
    local F = module_futures()
    local running, release = running_future()
    assert.is_false(F.PENDING:cancelled())
    assert.is_false(running:cancelled())
    assert.is_true(F.CANCELLED:cancelled())
    assert.is_false(F.EXCEPTION:cancelled())
    assert.is_false(F.SUCCESSFUL:cancelled())
    release()
  end)

  it(T .. "test_done", function()
    local F = module_futures()
    local running, release = running_future()
    assert.is_false(F.PENDING:done())
    assert.is_false(running:done())
    assert.is_true(F.CANCELLED:done())
    assert.is_true(F.EXCEPTION:done())
    assert.is_true(F.SUCCESSFUL:done())
    release()
  end)

  it(T .. "test_running", function()
    local F = module_futures()
    local running, release = running_future()
    assert.is_false(F.PENDING:running())
    assert.is_true(running:running())
    assert.is_false(F.CANCELLED:running())
    assert.is_false(F.EXCEPTION:running())
    assert.is_false(F.SUCCESSFUL:running())
    release()
    assert.is_false(running:running())
  end)

  it(T .. "test_result_with_timeout", function()
    local F = module_futures()
    local running, release = running_future()
    assert_raises(TimeoutError, F.PENDING.result, F.PENDING, 0)
    assert_raises(TimeoutError, running.result, running, 0)
    assert_raises(CancelledError, F.CANCELLED.result, F.CANCELLED, 0)
    assert_raises(OSError, F.EXCEPTION.result, F.EXCEPTION, 0)
    assert.equal(42, F.SUCCESSFUL:result(0))
    release()
  end)

  it(T .. "test_result_with_success", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local f1 = ex:submit(function()
      os.execute("sleep 0.1") -- until the main thread waits for the result
      return 42
    end)
    assert.equal(42, f1:result(5))
    ex:shutdown(true)
  end)

  it(T .. "test_exception_with_timeout", function()
    local F = module_futures()
    local running, release = running_future()
    assert_raises(TimeoutError, F.PENDING.exception, F.PENDING, 0)
    assert_raises(TimeoutError, running.exception, running, 0)
    assert_raises(CancelledError, F.CANCELLED.exception, F.CANCELLED, 0)
    assert.is_true(OSError:is(F.EXCEPTION:exception(0)))
    assert.is_nil(F.SUCCESSFUL:exception(0))
    release()
  end)

  it(T .. "test_multiple_set_result", function()
    local f = asyncio.ConcurrentFuture()
    f:set_result(1)
    local e = assert_raises(InvalidStateError, f.set_result, f, 2)
    assert.matches("<ConcurrentFuture at 0x%x+ state=finished returned number>", e.message)
    assert.is_true(f:done())
    assert.equal(1, f:result())
  end)

  it(T .. "test_multiple_set_exception", function()
    local f = asyncio.ConcurrentFuture()
    local e = H.ValueError("v")
    f:set_exception(e)
    local err = assert_raises(InvalidStateError, f.set_exception, f, H.TestError("other"))
    assert.matches("<ConcurrentFuture at 0x%x+ state=finished raised ValueError>", err.message)
    assert.equal(e, f:exception())
  end)
end)

describe("test_shutdown.py", function()
  local T = "test_shutdown.py::ThreadPoolShutdownTest."
  local WORKERS = 5 -- ThreadPoolMixin.worker_count

  it(T .. "test_run_after_shutdown", function()
    local ex = asyncio.ThreadPoolExecutor(WORKERS)
    ex:shutdown()
    assert_raises(RuntimeError, ex.submit, ex, function(a, b) return a ^ b end, 2, 5)
  end)

  it(T .. "test_hang_issue12364", function()
    local ex = asyncio.ThreadPoolExecutor(WORKERS)
    local fs = {}
    for i = 1, 50 do fs[i] = ex:submit(function() os.execute("sleep 0.01") end) end
    ex:shutdown()
    for _, f in ipairs(fs) do f:result() end
  end)

  it(T .. "test_cancel_futures", function()
    local ex = asyncio.ThreadPoolExecutor(WORKERS)
    local fs = {}
    -- (upstream's jobs sleep 0.1 s; 0.5 s keeps the count of jobs started
    -- while the 50 are submitted low under sanitizers too)
    for i = 1, 50 do fs[i] = ex:submit(function() os.execute("sleep 0.5") end) end
    -- (upstream counts on a worker having taken the first job by now; on a
    -- loaded machine it may not have: wait for it, at most 5 s)
    local deadline = os.time() + 5
    while not fs[1]:running() and not fs[1]:done() and os.time() < deadline do os.execute("sleep 0.01") end
    ex:shutdown(true, true)
    local cancelled, others = 0, {}
    for _, f in ipairs(fs) do
      if f:cancelled() then cancelled = cancelled + 1 else others[#others + 1] = f end
    end
    assert.is_true(cancelled > 20, tostring(cancelled))
    for _, f in ipairs(others) do
      assert.is_true(f:done(), tostring(f))
      assert.is_nil(f:exception())
    end
    assert.is_true(#others > 0)
  end)

  it(T .. "test_hang_gh94440", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local int = function() return 0 end
    ex:submit(int):result()
    ex:submit(int):cancel()
    ex:shutdown(true) -- returns (a hang would trip the file's timeout)
  end)
end)

describe("executors on an event loop", function()
  it("test_base_events.py::BaseEventLoopTests.test_set_default_executor", function()
    H.with_loop(function(loop)
      local executor = asyncio.ThreadPoolExecutor()
      loop:set_default_executor(executor)
      -- (upstream reads the private _default_executor: the port sees the
      -- executor take the job, and refuse it once shut down)
      executor:shutdown()
      local e = assert_raises(RuntimeError, loop.run_in_executor, loop, nil, function() end)
      assert.matches("cannot schedule new futures after shutdown", e.message)
    end)
  end)

  it("test_base_events.py::BaseEventLoopTests.test_set_default_executor_error", function()
    H.with_loop(function(loop)
      local ok, err = pcall(loop.set_default_executor, loop, {})
      assert.is_false(ok)
      assert.matches("ThreadPoolExecutor expected", err)
      -- the default executor is still the engine's pool
      assert.equal(4, loop:run_until_complete(loop:run_in_executor(nil, function(x) return x * x end, 2)))
    end)
  end)

  it("test_events.py::EventLoopTestsMixin.test_run_in_executor (with a ThreadPoolExecutor)", function()
    H.with_loop(function(loop)
      local executor = asyncio.ThreadPoolExecutor(1)
      local f2 = loop:run_in_executor(executor, function(arg) return arg, tostring({}) end, "yo")
      local res, thread_id = loop:run_until_complete(f2)
      assert.equal("yo", res)
      assert.matches("^table: ", thread_id)
      assert.not_equal(tostring({}), thread_id)
      executor:shutdown(true)
    end)
  end)

  local T = "test_interpreter_pool.py::AsyncioTest."

  it(T .. "test_run_in_executor", function()
    H.with_loop(function(loop)
      local executor = asyncio.ThreadPoolExecutor()
      local fut = loop:run_in_executor(executor, function(arg) return tostring(_G), arg end, "yo")
      local interp, res = loop:run_until_complete(fut)
      assert.equal("yo", res)
      assert.not_equal(tostring(_G), interp)
      executor:shutdown(true)
    end)
  end)

  it(T .. "test_run_in_executor_cancel", function()
    local contexts = {}
    local executor = asyncio.ThreadPoolExecutor()
    local fut
    H.with_loop(function(loop)
      loop:set_exception_handler(function(_, ctx) contexts[#contexts + 1] = ctx end)
      fut = loop:run_in_executor(executor, function() os.execute("sleep 0.05") end)
      fut:cancel()
      H.run_briefly(loop)
    end)
    -- the loop is closed; the job's end must not reach it
    executor:shutdown(true)
    assert.is_true(fut:cancelled())
    assert.same({}, contexts)
  end)

  it(T .. "test_default_executor", function()
    H.with_loop(function(loop)
      local executor = asyncio.ThreadPoolExecutor()
      loop:set_default_executor(executor)
      local interp = loop:run_until_complete(loop:run_in_executor(nil, function() return tostring(_G) end))
      assert.not_equal(tostring(_G), interp)
      executor:shutdown(true)
    end)
  end)
end)
