-- Ported from CPython Lib/test/test_asyncio/test_timeouts.py
-- (python/cpython at commit 0285c70b76438374ee626d4142cdc6341a94d496).
--
-- Each test is named "test_timeouts.py::TimeoutTests.<test>".  In Lua,
-- asyncio.timeout(delay, fn, ...) runs fn under the deadline (it is not an
-- async context manager and gives no Timeout object, see docs/SEMANTICS.md):
-- where upstream also checks cm.expired() or cm.when(), the TimeoutError
-- (or its absence) is what is checked.  Python's time.sleep() (the loop
-- blocked) is H.block.
--
-- Left out (the Timeout object has no counterpart):
--   test_reschedule                  cm.reschedule() and cm.when()
--   test_repr_active, test_repr_expired, test_repr_finished, test_repr_disabled
--                                    repr() of the Timeout object
--   test_timeout_already_entered, test_timeout_double_enter
--                                    re-entering a Timeout object
--   test_timeout_finished, test_timeout_not_entered
--                                    cm.reschedule() on a finished / unentered Timeout
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local CancelledError, TimeoutError = H.CancelledError, H.TimeoutError
local assert_raises, try_finally, except_cancelled = H.assert_raises, H.try_finally, H.except_cancelled
local pending = H.pending(pending, it)

local T = "test_timeouts.py::TimeoutTests."

describe("test_timeouts.py", function()
  it(T .. "test_timeout_basic", function()
    H.run(function()
      assert_raises(TimeoutError, asyncio.timeout, 0.01, asyncio.sleep, 10)
    end)
  end)

  it(T .. "test_timeout_at_basic", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local deadline = loop:time() + 0.01
      assert_raises(TimeoutError, asyncio.timeout_at, deadline, asyncio.sleep, 10)
    end)
  end)

  it(T .. "test_nested_timeouts", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local cancelled = false
      local deadline = loop:time() + 0.01
      assert_raises(TimeoutError, asyncio.timeout_at, deadline, function()
        -- only the outermost timeout raises TimeoutError
        except_cancelled(asyncio.timeout_at, function(e)
          cancelled = true
          error(e, 0)
        end, deadline, asyncio.sleep, 10)
      end)
      assert.is_true(cancelled)
    end)
  end)

  it(T .. "test_waiter_cancelled", function()
    H.run(function()
      local cancelled = false
      assert_raises(TimeoutError, asyncio.timeout, 0.01, function()
        except_cancelled(asyncio.sleep, function(e)
          cancelled = true
          error(e, 0)
        end, 10)
      end)
      assert.is_true(cancelled)
    end)
  end)

  it(T .. "test_timeout_not_called", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      asyncio.timeout(10, asyncio.sleep, 0.01) -- no TimeoutError
      assert.is_true(loop:time() - t0 < 10)
    end)
  end)

  it(T .. "test_timeout_disabled", function()
    H.run(function()
      asyncio.timeout(nil, asyncio.sleep, 0.01)
    end)
  end)

  it(T .. "test_timeout_at_disabled", function()
    H.run(function()
      asyncio.timeout_at(nil, asyncio.sleep, 0.01)
    end)
  end)

  it(T .. "test_timeout_zero", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      assert_raises(TimeoutError, asyncio.timeout, 0, asyncio.sleep, 10)
      local t1 = loop:time()
      assert.is_true(t1 - t0 < 1)
    end)
  end)

  it(T .. "test_timeout_zero_sleep_zero", function()
    H.run(function()
      assert_raises(TimeoutError, asyncio.timeout, 0, asyncio.sleep, 0)
    end)
  end)

  it(T .. "test_timeout_in_the_past_sleep_zero", function()
    H.run(function()
      assert_raises(TimeoutError, asyncio.timeout, -11, asyncio.sleep, 0)
    end)
  end)

  it(T .. "test_foreign_exception_passed", function()
    H.run(function()
      assert_raises(H.KeyError, asyncio.timeout, 0.01, function() error(H.KeyError()) end)
    end)
  end)

  it(T .. "test_foreign_exception_on_timeout", function()
    H.run(function()
      local function crash()
        try_finally(asyncio.sleep, function() error(H.ZeroDivisionError()) end, 1)
      end
      assert_raises(H.ZeroDivisionError, asyncio.timeout, 0.01, crash)
    end)
  end)

  it(T .. "test_foreign_cancel_doesnt_timeout_if_not_expired", function()
    H.run(function()
      assert_raises(CancelledError, asyncio.timeout, 10, function()
        asyncio.current_task():cancel()
        asyncio.sleep(10)
      end)
    end)
  end)

  it(T .. "test_outer_task_is_not_cancelled", function()
    H.run(function()
      local function outer()
        assert_raises(TimeoutError, asyncio.timeout, 0.001, asyncio.sleep, 10)
      end
      local task = asyncio.create_task(outer)
      task:await()
      assert.is_false(task:cancelled())
      assert.is_true(task:done())
    end)
  end)

  it(T .. "test_nested_timeouts_concurrent", function()
    H.run(function()
      assert_raises(TimeoutError, asyncio.timeout, 0.002, function()
        assert_raises(TimeoutError, asyncio.timeout, 0.1, function()
          H.block(0.01) -- pretend we crunch some numbers
          asyncio.sleep(1)
        end)
      end)
    end)
  end)

  it(T .. "test_nested_timeouts_loop_busy", function()
    H.run(function()
      -- after the inner timeout comes an expensive operation, which the
      -- outer timeout stops
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      assert_raises(TimeoutError, asyncio.timeout, 0.1, function() -- (1)
        assert_raises(TimeoutError, asyncio.timeout, 0.01, function() -- (2)
          H.block(0.1) -- pretend the loop is busy for a while
          asyncio.sleep(1)
        end)
        -- TimeoutError was caught by (2)
        asyncio.sleep(10) -- interrupted by (1)
      end)
      local t1 = loop:time()
      assert.is_true(t0 <= t1 and t1 <= t0 + 1)
    end)
  end)

  it(T .. "test_nested_timeout_in_finally", function()
    H.run(function()
      assert_raises(TimeoutError, asyncio.timeout, 0.01, function()
        try_finally(asyncio.sleep, function()
          assert_raises(TimeoutError, asyncio.timeout, 0.01, asyncio.sleep, 10)
        end, 1)
      end)
    end)
  end)

  it(T .. "test_timeout_after_cancellation", function()
    H.run(function()
      try_finally(function()
        except_cancelled(function()
          asyncio.current_task():cancel()
          asyncio.sleep(1) -- work which will be cancelled
        end, function() end)
      end, function()
        assert_raises(TimeoutError, asyncio.timeout, 0.0, asyncio.sleep, 1) -- some cleanup
      end)
    end)
  end)

  it(T .. "test_cancel_in_timeout_after_cancellation", function()
    H.run(function()
      try_finally(function()
        except_cancelled(function()
          asyncio.current_task():cancel()
          asyncio.sleep(1) -- work which will be cancelled
        end, function() end)
      end, function()
        assert_raises(CancelledError, asyncio.timeout, 1.0, function()
          asyncio.current_task():cancel()
          asyncio.sleep(2) -- some cleanup
        end)
      end)
    end)
  end)

  it(T .. "test_timeout_exception_cause", function()
    H.run(function()
      local e = assert_raises(TimeoutError, asyncio.timeout, 0, asyncio.sleep, 1)
      assert.is_true(CancelledError:is(e.cause))
    end)
  end)

  it(T .. "test_timeout_without_task", function()
    -- entering a timeout outside a Task (in a loop callback) fails
    H.with_loop(function(loop)
      local e
      loop:call_soon(function()
        e = H.catch(asyncio.timeout, 0.01, function() end)
      end)
      H.run_briefly(loop)
      assert.is_true(H.RuntimeError:is(e), tostring(e))
      assert.matches("Task", e.message)
    end)
  end)
end)
