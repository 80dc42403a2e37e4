-- Ported from CPython Lib/test/test_asyncio/test_waitfor.py
-- (python/cpython at commit 0290362ed203e43a541d4a3a4fefe95617b96421).
--
-- Each test is named "test_waitfor.py::<Class>.<test>".  A coroutine
-- passed to wait_for becomes a function (wait_for runs it as a Task, as
-- asyncio wraps a coroutine).  TimeoutError's __context__/__cause__ is the
-- error's `cause`.
--
-- Left out: none.
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local CancelledError, TimeoutError = H.CancelledError, H.TimeoutError
local assert_raises, try_finally, except_cancelled = H.assert_raises, H.try_finally, H.except_cancelled

-- A very small timeout: passes "timeout > 0", costs almost nothing.
local EPSILON = 0.0001

--- A task body that runs for TASK_TIMEOUT seconds, ignoring cancellation.
local function SlowTask()
  local self = { TASK_TIMEOUT = 0.2, exited = false }
  function self.run()
    local loop = asyncio.get_running_loop()
    local exitat = loop:time() + self.TASK_TIMEOUT
    while true do
      local tosleep = exitat - loop:time()
      if tosleep <= 0 then break end
      except_cancelled(asyncio.sleep, function() end, tosleep)
    end
    self.exited = true
  end
  return self
end

local T = "test_waitfor.py::AsyncioWaitForTest."

describe("test_waitfor.py", function()
  it(T .. "test_asyncio_wait_for_cancelled", function()
    H.run(function()
      local t = SlowTask()
      local waitfortask = asyncio.create_task(asyncio.wait_for, t.run, t.TASK_TIMEOUT * 2)
      asyncio.sleep(0)
      waitfortask:cancel()
      asyncio.wait({ waitfortask })
      assert.is_true(t.exited)
    end)
  end)

  it(T .. "test_asyncio_wait_for_timeout", function()
    H.run(function()
      local t = SlowTask()
      local ok, e = pcall(asyncio.wait_for, t.run, t.TASK_TIMEOUT / 2)
      if not ok and not TimeoutError:is(e) then error(e, 0) end
      assert.is_true(t.exited)
    end)
  end)

  it(T .. "test_wait_for_timeout_less_then_0_or_0_future_done", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      fut:set_result("done")
      local t0 = loop:time()
      local ret = asyncio.wait_for(fut, 0)
      local t1 = loop:time()
      assert.equal("done", ret)
      assert.is_true(fut:done())
      assert.is_true(t1 - t0 < 0.1)
    end)
  end)

  it(T .. "test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local foo_started = false
      local function foo() foo_started = true end
      local t0 = loop:time()
      assert_raises(TimeoutError, asyncio.wait_for, foo, 0)
      local t1 = loop:time()
      assert.is_false(foo_started)
      assert.is_true(t1 - t0 < 0.1)
    end)
  end)

  it(T .. "test_wait_for_timeout_less_then_0_or_0", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      for _, timeout in ipairs { 0, -1 } do
        local foo_running = nil
        local started = loop:create_future()
        local function foo()
          foo_running = true
          started:set_result(nil)
          try_finally(asyncio.sleep, function() foo_running = false end, 10)
          return "done"
        end
        local fut = asyncio.create_task(foo)
        started:await()
        local t0 = loop:time()
        assert_raises(TimeoutError, asyncio.wait_for, fut, timeout)
        local t1 = loop:time()
        assert.is_true(fut:done(), "timeout " .. timeout)
        -- it should have been cancelled due to the timeout
        assert.is_true(fut:cancelled(), "timeout " .. timeout)
        assert.equal(false, foo_running)
        assert.is_true(t1 - t0 < 0.1)
      end
    end)
  end)

  it(T .. "test_wait_for", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local foo_running = nil
      local function foo()
        foo_running = true
        try_finally(asyncio.sleep, function() foo_running = false end, 10)
        return "done"
      end
      local fut = asyncio.create_task(foo)
      local t0 = loop:time()
      assert_raises(TimeoutError, asyncio.wait_for, fut, 0.1)
      local t1 = loop:time()
      assert.is_true(fut:done())
      -- it should have been cancelled due to the timeout
      assert.is_true(fut:cancelled())
      assert.is_true(t1 - t0 < 0.5)
      assert.equal(false, foo_running)
    end)
  end)

  it(T .. "test_wait_for_blocking", function()
    H.run(function()
      local res = asyncio.wait_for(function() return "done" end, nil)
      assert.equal("done", res)
    end)
  end)

  it(T .. "test_wait_for_race_condition", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      loop:call_later(0.1, fut.set_result, fut, "ok")
      local res = asyncio.wait_for(fut, 0.2)
      assert.equal("ok", res)
    end)
  end)

  it(T .. "test_wait_for_cancellation_race_condition", function()
    H.run(function()
      local function inner()
        assert_raises(CancelledError, asyncio.sleep, 1)
        return 1
      end
      local result = asyncio.wait_for(inner, 0.01)
      assert.equal(1, result)
    end)
  end)

  it(T .. "test_wait_for_waits_for_task_cancellation", function()
    H.run(function()
      local task_done = false
      local function inner()
        try_finally(function()
          except_cancelled(asyncio.sleep, function(e)
            asyncio.sleep(EPSILON)
            error(e, 0)
          end, 10)
        end, function() task_done = true end)
      end
      local inner_task = asyncio.create_task(inner)
      local e = assert_raises(TimeoutError, asyncio.wait_for, inner_task, EPSILON)
      assert.is_true(task_done)
      assert.is_true(CancelledError:is(e.cause))
    end)
  end)

  it(T .. "test_wait_for_waits_for_task_cancellation_w_timeout_0", function()
    H.run(function()
      local task_done = false
      local function foo()
        local function inner()
          try_finally(function()
            except_cancelled(asyncio.sleep, function(e)
              asyncio.sleep(EPSILON)
              error(e, 0)
            end, 10)
          end, function() task_done = true end)
        end
        local inner_task = asyncio.create_task(inner)
        asyncio.sleep(EPSILON)
        asyncio.wait_for(inner_task, 0)
      end
      local e = assert_raises(TimeoutError, foo)
      assert.is_true(task_done)
      assert.is_true(CancelledError:is(e.cause))
    end)
  end)

  it(T .. "test_wait_for_reraises_exception_during_cancellation", function()
    H.run(function()
      local function foo()
        local function inner()
          try_finally(asyncio.sleep, function() error(H.FooException()) end, 0.2)
        end
        local inner_task = asyncio.create_task(inner)
        asyncio.wait_for(inner_task, EPSILON)
      end
      assert_raises(H.FooException, foo)
    end)
  end)

  it(T .. "test_wait_for_self_cancellation", function()
    H.run(function()
      local function inner()
        except_cancelled(asyncio.sleep, function()
          except_cancelled(asyncio.sleep, function() asyncio.sleep(0.3) end, 0.3)
        end, 0.3)
        return 42
      end
      local inner_task = asyncio.create_task(inner)
      -- wait_for itself is cancellable even when the task it waits for
      -- holds up the cancellation
      local task = asyncio.create_task(asyncio.wait_for, inner_task, 0.1)
      task:cancel()
      assert_raises(CancelledError, task.await, task)
      assert.equal(42, inner_task:await())
    end)
  end)

  local function check_cancel_wait_for(timeout)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local function blocking_coroutine()
        local fut = loop:create_future()
        fut:await() -- never set
      end
      local task = asyncio.create_task(blocking_coroutine)
      local wait = asyncio.create_task(asyncio.wait_for, task, timeout)
      loop:call_soon(wait.cancel, wait)
      assert_raises(CancelledError, wait.await, wait)
      -- cancelling the wait cancels the task too (Python issue #23219)
      assert.is_true(task:cancelled())
    end)
  end

  it(T .. "test_cancel_blocking_wait_for", function()
    check_cancel_wait_for(nil)
  end)

  it(T .. "test_cancel_wait_for", function()
    check_cancel_wait_for(60.0)
  end)

  it(T .. "test_wait_for_cancel_suppressed", function()
    H.run(function()
      local function return_42()
        return except_cancelled(asyncio.sleep, function() return 42 end, 10)
      end
      local res = asyncio.wait_for(return_42, 0.1)
      assert.equal(42, res)
    end)
  end)

  it(T .. "test_wait_for_issue86296", function()
    H.run(function()
      local function inner() end
      local reached_end = false
      local function wait_for_coro()
        asyncio.wait_for(inner, 100)
        asyncio.sleep(1)
        reached_end = true
      end
      local task = asyncio.create_task(wait_for_coro)
      asyncio.sleep(0)
      assert.is_false(task:done())
      task:cancel()
      assert_raises(CancelledError, task.await, task)
      assert.is_false(reached_end)
    end)
  end)
end)
