-- Ported from CPython Lib/test/test_asyncio/test_tasks.py
-- (python/cpython at commit 871838b30b132737810cc334f9b4cf53f70fe038).
--
-- Each test is named "test_tasks.py::<Class>.<test>".  Upstream runs
-- BaseTaskTests against every mix of the C and Python Task and Future
-- (CTask_CFuture_Tests, PyTask_PyFuture_Tests, ...) and BaseCurrentLoopTests
-- against both Tasks: here there is one Task and one Future, so those tests
-- carry the base class name.  GatherTestsBase runs twice, as upstream
-- (FutureGatherTests: gather of futures, CoroutineGatherTests: of
-- coroutines, here functions).
--
-- Translation: a coroutine object is a function (or, where the same object
-- is passed twice, a Task not started yet); `await x` is x:await() or a
-- call.  Tests on upstream's fake-clock loop (new_test_loop(gen)) run on
-- real short times: the times upstream asserts are checked within a
-- tolerance (H.assert_time), and where upstream moves the fake clock on to
-- finish a 10 s sleep, the sleeper is cancelled instead.  asyncio.gather
-- and asyncio.shield await in Lua: where a test needs the future they
-- return in Python, H.gather_future / H.shield_future make it.  Sets are
-- lists compared as sets.  A CancelledError's args are its message: a
-- non-string message arrives as a string (tostring), no message is
-- "cancelled" (docs/SEMANTICS.md).  Python's TypeError/ValueError for a bad
-- argument is a luaL_argerror-style message naming the function.
--
-- Left out (Python-only machinery, or a Python API shape with no Lua
-- counterpart):
--   BaseTaskTests.test_generic_alias            Python typing (Task[str])
--   BaseTaskTests.test_task_cancel_message_setter  sets the private _cancel_message
--   BaseTaskTests.test_task_del_collect         __del__ calling gc.collect()
--   BaseTaskTests.test_ensure_future_awaitable  an object with __await__
--   BaseTaskTests.test_get_stack                Python frames (get_stack/print_stack)
--   BaseTaskTests.test_task_repr, test_task_repr_wait_for
--                                               repr() format of the Python object
--   BaseTaskTests.test_exception_chaining_after_await,
--   test_exception_chaining_after_await_with_context_cycle
--                                               Python's implicit __context__ chaining
--   BaseTaskTests.test_log_traceback            the private _log_traceback
--   BaseTaskTests.test_wait_with_iterator_of_tasks  a Python iterator (wait takes a list)
--   BaseTaskTests.test_as_completed_reverse_wait, test_as_completed_concurrent
--                                               list(as_completed(...)) up front: in Lua
--                                               as_completed is an iterator that waits
--   BaseTaskTests.test_sleep_cancel             monkeypatches loop.call_later to reach
--                                               the sleep's timer handle (internal here)
--   BaseTaskTests.test_baseexception_during_cancel  a BaseException (SystemExit) escaping
--                                               the loop: Lua errors have no such tier
--   BaseTaskTests.test_iscoroutinefunction, test_coroutine_non_gen_function
--                                               iscoroutinefunction / coroutine objects
--   BaseTaskTests.test_shield_coroutine_use_running_loop,
--   test_shield_coroutine_use_global_loop       shield() returning a future outside an await
--   BaseTaskTests.test_task_source_traceback    the private _source_traceback
--   BaseTaskTests.test_cancel_gather_1          cancel() of the gathering future itself
--                                               (Lua's gather returns no future)
--   BaseTaskTests.test_error_in_call_soon       monkeypatches loop.call_soon
--   BaseTaskTests.test_create_task_with_asynclike_function  an object with send/throw
--   BaseTaskTests.test_context_4, test_context_5, test_context_6
--                                               contextvars.copy_context() objects and
--                                               create_task(context=)
--   BaseTaskTests.test_get_coro                 Task.get_coro() (coroutine objects)
--   *_SubclassTests.test_subclasses_ctask_cfuture  subclassing Task and Future
--   SetMethodsTest.test_set_result_causes_invalid_state,
--   test_set_exception_causes_invalid_state     Future.set_result(task) bypassing Task
--   CTask_CFuture_Tests.test_refleaks_in_task___init__,
--   test_del__log_destroy_pending_segfault      refcounts, __init__ again, private attributes
--   CTask_Future_Tests.test_foobar              a Future subclass whose get_loop raises
--   BaseTaskIntrospectionTests (10 tests)       the private _register_task, _enter_task,
--                                               _leave_task, _unregister_task
--   GenericTaskTests.test_asyncio_module_compiled  the _asyncio C module
--   FutureGatherTests.test_env_var_debug, CoroutineGatherTests.test_env_var_debug
--                                               PYTHONASYNCIODEBUG in a child interpreter
--   FutureGatherTests.test_constructor_empty_sequence_use_global_loop,
--   CoroutineGatherTests.test_constructor_use_global_loop
--                                               gather() called outside a Task
local asyncio = require "asyncio"
local trio = require "trio"
local H = require "conformance.cpython_helpers"
local support = require "support"

local CancelledError, TimeoutError, RuntimeError = H.CancelledError, H.TimeoutError, H.RuntimeError
local assert_raises, except_cancelled = H.assert_raises, H.except_cancelled
local assert_has = support.assert_has
local pending = H.pending(pending, it)

--- The cases of the cancel-message tests: cancel()'s arguments and the
-- message the CancelledError then carries.
local MESSAGE_CASES = {
  { args = table.pack(), message = "cancelled" },
  { args = table.pack(nil), message = "cancelled" },
  { args = table.pack("my message"), message = "my message" },
  -- a non-string value arrives as its string
  { args = table.pack(5), message = "5" },
}

--- The results of a gather, as a plain list.
local function list(r) return { table.unpack(r, 1, r.n) } end

describe("test_tasks.py", function()
  local T = "test_tasks.py::BaseTaskTests."

  it(T .. "test_task_cancel_message_getter", function()
    -- (upstream reads the private _cancel_message; here the message the
    -- CancelledError carries)
    H.with_loop(function(loop)
      local t = loop:create_task(function() end)
      t:cancel("my message")
      local e = assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.equal("my message", e.message)
    end)
  end)

  it(T .. "test_other_loop_future", function()
    H.with_loop(function(loop)
      local other_loop = asyncio.new_event_loop()
      local fut = other_loop:create_future()
      local e = H.catch(loop.run_until_complete, loop, function() fut:await() end)
      other_loop:close()
      assert.is_true(RuntimeError:is(e), tostring(e))
      assert.matches("attached to a different loop", e.message)
    end)
  end)

  it(T .. "test_task_awaits_on_itself", function()
    H.with_loop(function(loop)
      local task
      task = asyncio.ensure_future(function() task:await() end, loop)
      local e = H.catch(loop.run_until_complete, loop, task)
      assert.is_true(RuntimeError:is(e), tostring(e))
      assert.matches("cannot await itself", e.message)
    end)
  end)

  it(T .. "test_task_class", function()
    H.with_loop(function(loop)
      local function notmuch() return "ok" end
      local t = loop:create_task(notmuch)
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("ok", t:result())
      assert.equal(loop, t:get_loop())

      local loop2 = asyncio.new_event_loop()
      t = loop2:create_task(notmuch)
      assert.equal(loop2, t:get_loop())
      loop2:run_until_complete(t)
      loop2:close()
    end)
  end)

  it(T .. "test_ensure_future_coroutine", function()
    H.with_loop(function(loop)
      local function notmuch() return "ok" end
      local t = asyncio.ensure_future(notmuch, loop)
      assert.equal(loop, t:get_loop())
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("ok", t:result())

      local e = assert_raises(RuntimeError, asyncio.ensure_future, notmuch)
      assert.matches("There is no current event loop", e.message)

      t = loop:run_until_complete(function() return asyncio.ensure_future(notmuch) end)
      assert.equal(loop, t:get_loop())
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("ok", t:result())

      asyncio.set_event_loop(loop)
      local ok, t2 = pcall(asyncio.ensure_future, notmuch)
      asyncio.set_event_loop(nil)
      assert(ok, t2)
      assert.equal(loop, t2:get_loop())
      loop:run_until_complete(t2)
      assert.is_true(t2:done())
      assert.equal("ok", t2:result())
    end)
  end)

  it(T .. "test_ensure_future_future", function()
    H.with_loop(function(loop)
      local f_orig = loop:create_future()
      f_orig:set_result("ko")
      local f = asyncio.ensure_future(f_orig)
      loop:run_until_complete(f)
      assert.is_true(f:done())
      assert.equal("ko", f:result())
      assert.equal(f_orig, f)

      local loop2 = asyncio.new_event_loop()
      local e = H.catch(asyncio.ensure_future, f_orig, loop2)
      loop2:close()
      assert.is_true(H.ValueError:is(e), tostring(e))

      f = asyncio.ensure_future(f_orig, loop)
      assert.equal(f_orig, f)
    end)
  end)

  it(T .. "test_ensure_future_task", function()
    H.with_loop(function(loop)
      local t_orig = loop:create_task(function() return "ok" end)
      local t = asyncio.ensure_future(t_orig)
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("ok", t:result())
      assert.equal(t_orig, t)

      local loop2 = asyncio.new_event_loop()
      local e = H.catch(asyncio.ensure_future, t_orig, loop2)
      loop2:close()
      assert.is_true(H.ValueError:is(e), tostring(e))

      t = asyncio.ensure_future(t_orig, loop)
      assert.equal(t_orig, t)
    end)
  end)

  it(T .. "test_ensure_future_neither", function()
    assert_raises("ensure_future", asyncio.ensure_future, "ok")
  end)

  it(T .. "test_ensure_future_error_msg", function()
    H.with_loop(function(loop)
      local loop2 = asyncio.new_event_loop()
      local f = loop:create_future()
      local e = H.catch(asyncio.ensure_future, f, loop2)
      loop2:close()
      assert.is_true(H.ValueError:is(e), tostring(e))
      assert_has(e.message, "The future belongs to a different loop than the one specified as the loop argument")
      f:cancel()
    end)
  end)

  it(T .. "test_task_repr_autogenerated", function()
    -- (upstream reads the names from repr())
    H.with_loop(function(loop)
      local function notmuch() return 123 end
      local t1 = loop:create_task(notmuch)
      local t2 = loop:create_task(notmuch)
      assert.not_equal(t1:get_name(), t2:get_name())
      local n1 = t1:get_name():match("^Task%-(%d+)$")
      local n2 = t2:get_name():match("^Task%-(%d+)$")
      assert.is_not_nil(n1)
      assert.is_not_nil(n2)
      -- autogenerated names have increasing numbers
      assert.is_true(tonumber(n1) < tonumber(n2))
      loop:run_until_complete(t1)
      loop:run_until_complete(t2)
    end)
  end)

  it(T .. "test_task_repr_name_not_str", function()
    H.with_loop(function(loop)
      local t = loop:create_task(function() return 123 end)
      t:set_name(setmetatable({}, { __tostring = function() return "{6}" end }))
      assert.equal("{6}", t:get_name())
      loop:run_until_complete(t)
    end)
  end)

  it(T .. "test_task_basics", function()
    H.with_loop(function(loop)
      local function inner1() return 42 end
      local function inner2() return 1000 end
      local function outer()
        local a = inner1()
        local b = inner2()
        return a + b
      end
      assert.equal(1042, loop:run_until_complete(outer))
    end)
  end)

  it(T .. "test_cancelling", function()
    H.with_loop(function(loop)
      local t = loop:create_task(function() asyncio.sleep(10) end)
      assert.equal(0, t:cancelling())
      assert.is_true(t:cancel())
      assert.is_true(t:cancelling() > 0)
      assert.is_true(t:cancel())
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
    end)
  end)

  it(T .. "test_uncancel", function()
    -- (upstream sees "cancelling" in repr() while cancelling() > 0)
    H.with_loop(function(loop)
      local function task()
        except_cancelled(asyncio.sleep, function()
          asyncio.current_task():uncancel()
          asyncio.sleep(10)
        end, 10)
      end
      local t = loop:create_task(task)
      loop:run_until_complete(function() asyncio.sleep(0.01) end)
      assert.is_true(t:cancel()) -- cancel the first sleep
      assert.is_true(t:cancelling() > 0)
      loop:run_until_complete(function() asyncio.sleep(0.01) end)
      assert.equal(0, t:cancelling()) -- after uncancel()
      assert.is_true(t:cancel()) -- cancel the second sleep
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
    end)
  end)

  it(T .. "test_cancel", function()
    H.with_loop(function(loop)
      local t = loop:create_task(function()
        asyncio.sleep(10.0)
        return 12
      end)
      loop:call_soon(t.cancel, t)
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  local function check_cancel_message(get)
    for _, case in ipairs(MESSAGE_CASES) do
      H.with_loop(function(loop)
        local function sleep() asyncio.sleep(10) end
        local function coro()
          local task = loop:create_task(sleep)
          asyncio.sleep(0)
          task:cancel(table.unpack(case.args, 1, case.args.n))
          asyncio.wait({ task })
          get(task)
        end
        local task = loop:create_task(coro)
        local e = assert_raises(CancelledError, loop.run_until_complete, loop, task)
        assert.equal(case.message, e.message)
      end)
    end
  end

  it(T .. "test_cancel_with_message_then_future_result", function()
    check_cancel_message(function(task) return task:result() end)
  end)

  it(T .. "test_cancel_with_message_then_future_exception", function()
    check_cancel_message(function(task) return task:exception() end)
  end)

  it(T .. "test_cancellation_exception_context", function()
    H.with_loop(function(loop)
      local fut = loop:create_future()
      local function sleep()
        fut:set_result(nil)
        asyncio.sleep(10)
      end
      local function coro()
        local inner_task = loop:create_task(sleep)
        fut:await()
        loop:call_soon(inner_task.cancel, inner_task, "msg")
        except_cancelled(inner_task.await, function(ex)
          error(H.ValueError { message = "cancelled", cause = ex }, 0)
        end, inner_task)
      end
      local task = loop:create_task(coro)
      local e = assert_raises(H.ValueError, loop.run_until_complete, loop, task)
      assert.equal("cancelled", e.message)
      assert.is_true(CancelledError:is(e.cause))
      assert.equal("msg", e.cause.message)
    end)
  end)

  it(T .. "test_cancel_with_message_before_starting_task", function()
    H.with_loop(function(loop)
      local function sleep() asyncio.sleep(10) end
      local function coro()
        local task = loop:create_task(sleep)
        -- no sleep here: the task has not started
        task:cancel("my message")
        asyncio.wait({ task })
        task:exception()
      end
      local task = loop:create_task(coro)
      local e = assert_raises(CancelledError, loop.run_until_complete, loop, task)
      assert.equal("my message", e.message)
    end)
  end)

  it(T .. "test_cancel_yield", function()
    H.with_loop(function(loop)
      local t = loop:create_task(function()
        asyncio.sleep(0)
        asyncio.sleep(0)
        return 12
      end)
      H.run_briefly(loop) -- start the task
      t:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  it(T .. "test_cancel_inner_future", function()
    H.with_loop(function(loop)
      local f = loop:create_future()
      local t = loop:create_task(function()
        f:await()
        return 12
      end)
      H.run_briefly(loop) -- start the task
      f:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(f:cancelled())
      assert.is_true(t:cancelled())
    end)
  end)

  it(T .. "test_cancel_both_task_and_inner_future", function()
    H.with_loop(function(loop)
      local f = loop:create_future()
      local t = loop:create_task(function()
        f:await()
        return 12
      end)
      H.run_briefly(loop)
      f:cancel()
      t:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(t:done())
      assert.is_true(f:cancelled())
      assert.is_true(t:cancelled())
    end)
  end)

  it(T .. "test_cancel_task_catching", function()
    -- (upstream also checks the private _fut_waiter between the steps)
    H.with_loop(function(loop)
      local fut1, fut2 = loop:create_future(), loop:create_future()
      local t = loop:create_task(function()
        fut1:await()
        return except_cancelled(fut2.await, function() return 42 end, fut2)
      end)
      H.run_briefly(loop)
      fut1:set_result(nil)
      H.run_briefly(loop)
      t:cancel()
      assert.is_true(fut2:cancelled())
      assert.equal(42, loop:run_until_complete(t))
      assert.is_false(t:cancelled())
    end)
  end)

  it(T .. "test_cancel_task_ignoring", function()
    -- (upstream also checks the private _fut_waiter between the steps)
    H.with_loop(function(loop)
      local fut1, fut2, fut3 = loop:create_future(), loop:create_future(), loop:create_future()
      local t = loop:create_task(function()
        fut1:await()
        except_cancelled(fut2.await, function() end, fut2)
        local res = fut3:await()
        return res
      end)
      H.run_briefly(loop)
      fut1:set_result(nil)
      H.run_briefly(loop)
      t:cancel()
      assert.is_true(fut2:cancelled())
      H.run_briefly(loop)
      fut3:set_result(42)
      assert.equal(42, loop:run_until_complete(t))
      assert.is_false(fut3:cancelled())
      assert.is_false(t:cancelled())
    end)
  end)

  it(T .. "test_cancel_current_task", function()
    -- (upstream also checks the private _must_cancel)
    H.with_loop(function(loop)
      local t
      t = loop:create_task(function()
        t:cancel()
        -- the sleep is cancelled at once
        asyncio.sleep(100)
        return 12
      end)
      assert.is_false(t:cancelled())
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  it(T .. "test_cancel_at_end", function()
    -- the function ends right after its task is cancelled
    H.with_loop(function(loop)
      local t
      t = loop:create_task(function()
        t:cancel()
        return 12
      end)
      assert.is_false(t:cancelled())
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  it(T .. "test_cancel_awaited_task", function()
    -- a Task cancelled while it is not blocked (it cancels itself) must
    -- cancel whatever it awaits next (Python bpo-34872)
    H.with_loop(function(loop)
      local task, nested_task
      local fut = loop:create_future()
      local function nested() fut:await() end
      local function coro()
        -- a sub-task, and let it run
        nested_task = loop:create_task(nested)
        asyncio.sleep(0)
        -- cancel the current task ...
        task:cancel()
        -- ... then await the nested task, which is cancelled at once
        nested_task:await()
      end
      task = loop:create_task(coro)
      assert_raises(CancelledError, loop.run_until_complete, loop, task)
      assert.is_true(task:cancelled())
      assert.is_true(nested_task:cancelled())
      assert.is_true(fut:cancelled())
    end)
  end)

  --- The line after the one calling this.
  local function next_line() return debug.getinfo(2, "l").currentline + 1 end
  local SPEC = "cpython_test_tasks_spec.lua:"

  it(T .. "test_cancel_traceback_for_future_result", function()
    -- the traceback of result() on a cancelled Task shows the line that was
    -- interrupted, and the await in between
    H.with_loop(function(loop)
      local sleep_line, await_line
      local function nested()
        sleep_line = next_line()
        asyncio.sleep(10) -- cancelled at once
      end
      local function coro()
        local task = loop:create_task(nested)
        asyncio.sleep(0)
        task:cancel()
        await_line = next_line()
        task:await() -- search target
      end
      local task = loop:create_task(coro)
      local e = assert_raises(CancelledError, loop.run_until_complete, loop, task)
      assert_has(tostring(e), SPEC .. sleep_line)
      assert_has(tostring(e), SPEC .. await_line)
    end)
  end)

  it(T .. "test_cancel_traceback_for_future_exception", function()
    H.with_loop(function(loop)
      local sleep_line, exception_line
      local function nested()
        sleep_line = next_line()
        asyncio.sleep(10) -- cancelled at once
      end
      local function coro()
        local task = loop:create_task(nested)
        asyncio.sleep(0)
        task:cancel()
        asyncio.wait({ task })
        exception_line = next_line()
        task:exception() -- search target
      end
      local task = loop:create_task(coro)
      local e = assert_raises(CancelledError, loop.run_until_complete, loop, task)
      assert_has(tostring(e), SPEC .. sleep_line)
      assert_has(tostring(e), SPEC .. exception_line)
    end)
  end)

  it(T .. "test_stop_while_run_in_complete", function()
    H.with_loop(function(loop)
      local x = 0
      local t = loop:create_task(function()
        while x < 10 do
          asyncio.sleep(0.1)
          x = x + 1
          if x == 2 then loop:stop() end
        end
      end)
      local e = assert_raises(RuntimeError, loop.run_until_complete, loop, t)
      assert_has(e.message, "Event loop stopped before Future completed.")
      assert.is_false(t:done())
      assert.equal(2, x)
      t:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, t)
    end)
  end)

  it(T .. "test_wait", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 0.1)
      local b = loop:create_task(asyncio.sleep, 0.15)
      local function foo()
        local done, still = asyncio.wait({ b, a })
        H.assert_same_set({ a, b }, done)
        assert.same({}, still)
        return 42
      end
      local t0 = loop:time()
      local res = loop:run_until_complete(loop:create_task(foo))
      assert.equal(42, res)
      H.assert_time(0.15, loop:time() - t0)
      -- again: takes no time, and goes another way
      t0 = loop:time()
      res = loop:run_until_complete(loop:create_task(foo))
      H.assert_time(0, loop:time() - t0)
      assert.equal(42, res)
    end)
  end)

  it(T .. "test_wait_duplicate_coroutines", function()
    H.with_loop(function(loop)
      local function coro(s) return s end
      local c = loop:create_task(coro, "test")
      local task = loop:create_task(asyncio.wait, { c, c, loop:create_task(coro, "spam") })
      local done, still = loop:run_until_complete(task)
      assert.same({}, still)
      local results = {}
      for _, f in ipairs(done) do results[f:result()] = true end
      assert.same({ test = true, spam = true }, results)
    end)
  end)

  it(T .. "test_wait_errors", function()
    H.with_loop(function(loop)
      assert_raises("wait", loop.run_until_complete, loop, function() return asyncio.wait({}) end)
      -- -1 is an invalid return_when
      assert_raises("wait", loop.run_until_complete, loop, function()
        return asyncio.wait({ function() asyncio.sleep(10.0) end }, { return_when = -1 })
      end)
    end)
  end)

  it(T .. "test_wait_first_completed", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 10.0)
      local b = loop:create_task(asyncio.sleep, 0.1)
      local task = loop:create_task(asyncio.wait, { b, a }, { return_when = asyncio.FIRST_COMPLETED })
      local t0 = loop:time()
      local done, still = loop:run_until_complete(task)
      H.assert_same_set({ b }, done)
      H.assert_same_set({ a }, still)
      assert.is_false(a:done())
      assert.is_true(b:done())
      assert.is_nil(b:result())
      H.assert_time(0.1, loop:time() - t0)
      -- (upstream moves the fake clock on instead)
      a:cancel()
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_wait_really_done", function()
    -- some tasks of the pending list may have become done with their
    -- callbacks not all called yet
    H.with_loop(function(loop)
      local function coro1() asyncio.sleep(0) end
      local function coro2()
        asyncio.sleep(0)
        asyncio.sleep(0)
      end
      local a = loop:create_task(coro1)
      local b = loop:create_task(coro2)
      local task = loop:create_task(asyncio.wait, { b, a }, { return_when = asyncio.FIRST_COMPLETED })
      local done = loop:run_until_complete(task)
      H.assert_same_set({ a, b }, done)
      assert.is_true(a:done())
      assert.is_nil(a:result())
      assert.is_true(b:done())
      assert.is_nil(b:result())
    end)
  end)

  it(T .. "test_wait_first_exception", function()
    H.with_loop(function(loop)
      -- FIRST_EXCEPTION, a task already has an exception
      local a = loop:create_task(asyncio.sleep, 10.0)
      local b = loop:create_task(function() error(H.ZeroDivisionError("err")) end)
      local task = loop:create_task(asyncio.wait, { b, a }, { return_when = asyncio.FIRST_EXCEPTION })
      local t0 = loop:time()
      local done, still = loop:run_until_complete(task)
      H.assert_same_set({ b }, done)
      H.assert_same_set({ a }, still)
      H.assert_time(0, loop:time() - t0)
      -- (upstream moves the fake clock on instead)
      a:cancel()
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_wait_first_exception_in_wait", function()
    H.with_loop(function(loop)
      -- FIRST_EXCEPTION, the exception comes while waiting
      local a = loop:create_task(asyncio.sleep, 10.0)
      local b = loop:create_task(function()
        asyncio.sleep(0.01)
        error(H.ZeroDivisionError("err"))
      end)
      local t0 = loop:time()
      local done, still = loop:run_until_complete(function()
        return asyncio.wait({ b, a }, { return_when = asyncio.FIRST_EXCEPTION })
      end)
      H.assert_same_set({ b }, done)
      H.assert_same_set({ a }, still)
      H.assert_time(0.01, loop:time() - t0)
      a:cancel()
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_wait_with_exception", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 0.1)
      local b = loop:create_task(function()
        asyncio.sleep(0.15)
        error(H.ZeroDivisionError("really"))
      end)
      local function foo()
        local done, still = asyncio.wait({ b, a })
        assert.equal(2, #done)
        assert.same({}, still)
        local errors = 0
        for _, f in ipairs(done) do
          if f:exception() ~= nil then errors = errors + 1 end
        end
        assert.equal(1, errors)
      end
      local t0 = loop:time()
      loop:run_until_complete(loop:create_task(foo))
      H.assert_time(0.15, loop:time() - t0)
      t0 = loop:time()
      loop:run_until_complete(loop:create_task(foo))
      H.assert_time(0, loop:time() - t0)
    end)
  end)

  it(T .. "test_wait_with_timeout", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 0.1)
      local b = loop:create_task(asyncio.sleep, 0.15)
      local function foo()
        local done, still = asyncio.wait({ b, a }, { timeout = 0.11 })
        H.assert_same_set({ a }, done)
        H.assert_same_set({ b }, still)
      end
      local t0 = loop:time()
      loop:run_until_complete(loop:create_task(foo))
      H.assert_time(0.11, loop:time() - t0)
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_wait_concurrent_complete", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 0.1)
      local b = loop:create_task(asyncio.sleep, 0.15)
      local t0 = loop:time()
      local done, still = loop:run_until_complete(function()
        return asyncio.wait({ b, a }, { timeout = 0.1 })
      end)
      H.assert_same_set({ a }, done)
      H.assert_same_set({ b }, still)
      H.assert_time(0.1, loop:time() - t0)
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_as_completed", function()
    H.with_loop(function(loop)
      local function sleeper(dt, x)
        return function()
          asyncio.sleep(dt)
          return x
        end
      end
      -- (upstream moves the fake clock 0.14 s on once a and b are done)
      local a, b, c = sleeper(0.01, "a"), sleeper(0.01, "b"), sleeper(0.15, "c")
      local function foo()
        local values = {}
        for f in asyncio.as_completed({ b, c, a }) do values[#values + 1] = f:await() end
        return values
      end
      local t0 = loop:time()
      local res = loop:run_until_complete(loop:create_task(foo))
      H.assert_time(0.15, loop:time() - t0)
      local first = { [res[1]] = true, [res[2]] = true }
      assert.same({ a = true, b = true }, first)
      assert.equal("c", res[3])
    end)
  end)

  it(T .. "test_as_completed_with_timeout", function()
    H.with_loop(function(loop)
      local a = loop:create_task(asyncio.sleep, 0.1, "a")
      local b = loop:create_task(asyncio.sleep, 0.15, "b")
      local function foo()
        local values = {}
        for f in asyncio.as_completed({ a, b }, { timeout = 0.12 }) do
          local ok, v = pcall(f.await, f)
          if ok then
            values[#values + 1] = { 1, v }
          elseif TimeoutError:is(v) then
            values[#values + 1] = { 2, v }
          else
            error(v, 0)
          end
        end
        return values
      end
      local t0 = loop:time()
      local res = loop:run_until_complete(loop:create_task(foo))
      assert.equal(2, #res)
      assert.same({ 1, "a" }, res[1])
      assert.equal(2, res[2][1])
      assert.is_true(TimeoutError:is(res[2][2]))
      H.assert_time(0.12, loop:time() - t0)
      loop:run_until_complete(function() asyncio.wait({ a, b }) end)
    end)
  end)

  it(T .. "test_as_completed_with_unused_timeout", function()
    H.with_loop(function(loop)
      local function a() return asyncio.sleep(0.01, "a") end
      local function foo()
        for f in asyncio.as_completed({ a }, { timeout = 1 }) do
          assert.equal("a", f:await())
        end
      end
      loop:run_until_complete(loop:create_task(foo))
    end)
  end)

  it(T .. "test_as_completed_duplicate_coroutines", function()
    H.with_loop(function(loop)
      local function coro(s) return s end
      local function runner()
        local result = {}
        local c = loop:create_task(coro, "ham") -- one coroutine, listed twice
        for f in asyncio.as_completed({ c, c, loop:create_task(coro, "spam") }) do
          result[#result + 1] = f:await()
        end
        return result
      end
      local fut = loop:create_task(runner)
      loop:run_until_complete(fut)
      local result = fut:result()
      local set = {}
      for _, v in ipairs(result) do set[v] = true end
      assert.same({ ham = true, spam = true }, set)
      assert.equal(2, #result)
    end)
  end)

  it(T .. "test_as_completed_coroutine_without_loop", function()
    local function coro() return 42 end
    local e = H.catch(function()
      for _ in asyncio.as_completed({ coro }) do end
    end)
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.matches("event loop", e.message)
  end)

  it(T .. "test_as_completed_coroutine_use_running_loop", function()
    H.with_loop(function(loop)
      local function coro() return 42 end
      loop:run_until_complete(function()
        local futs = {}
        for f in asyncio.as_completed({ coro }) do futs[#futs + 1] = f end
        assert.equal(1, #futs)
        assert.equal(42, futs[1]:await())
      end)
    end)
  end)

  it(T .. "test_sleep", function()
    H.with_loop(function(loop)
      local function sleeper(dt, arg)
        asyncio.sleep(dt / 2)
        local res = asyncio.sleep(dt / 2, arg)
        return res
      end
      local t = loop:create_task(sleeper, 0.1, "yeah")
      local t0 = loop:time()
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("yeah", t:result())
      H.assert_time(0.1, loop:time() - t0)
    end)
  end)

  it(T .. "test_task_cancel_sleeping_task", function()
    H.with_loop(function(loop)
      local function sleep(dt) asyncio.sleep(dt) end
      local function doit()
        local sleeper = loop:create_task(sleep, 5000)
        loop:call_later(0.1, sleeper.cancel, sleeper)
        return except_cancelled(function()
          sleeper:await()
          return "slept in"
        end, function() return "cancelled" end)
      end
      local t0 = loop:time()
      assert.equal("cancelled", loop:run_until_complete(doit))
      H.assert_time(0.1, loop:time() - t0)
    end)
  end)

  it(T .. "test_task_cancel_waiter_future", function()
    -- (upstream also checks the private _fut_waiter)
    H.with_loop(function(loop)
      local fut = loop:create_future()
      local task = loop:create_task(function() fut:await() end)
      H.run_briefly(loop)
      task:cancel()
      H.run_briefly(loop)
      assert_raises(CancelledError, loop.run_until_complete, loop, task)
      assert.is_true(fut:cancelled())
    end)
  end)

  it(T .. "test_task_set_methods", function()
    H.with_loop(function(loop)
      local task = loop:create_task(function() return "ko" end)
      local e = assert_raises(RuntimeError, task.set_result, task, "ok")
      assert.matches("not support set_result", e.message)
      e = assert_raises(RuntimeError, task.set_exception, task, H.ValueError())
      assert.matches("not support set_exception", e.message)
      assert.equal("ko", loop:run_until_complete(task))
    end)
  end)

  it(T .. "test_step_result_future", function()
    -- a Task awaiting a future waits for it and gets its result (upstream
    -- also checks, with a Future subclass, that the Task added a done
    -- callback to it)
    H.with_loop(function(loop)
      local fut = loop:create_future()
      local result
      local t = loop:create_task(function() result = fut:await() end)
      H.run_briefly(loop)
      local res = {}
      fut:set_result(res)
      H.run_briefly(loop)
      assert.equal(res, result)
      assert.is_true(t:done())
      assert.is_nil(t:result())
    end)
  end)

  it(T .. "test_coroutine_non_gen_function_return_future", function()
    H.with_loop(function(loop)
      local fut = loop:create_future()
      local t1 = loop:create_task(function() return fut end)
      local t2 = loop:create_task(function() fut:set_result("test") end)
      local res = loop:run_until_complete(t1)
      assert.equal(fut, res)
      assert.is_nil(t2:result())
    end)
  end)

  it(T .. "test_current_task", function()
    H.with_loop(function(loop)
      assert.is_nil(asyncio.current_task(loop))
      local task
      task = loop:create_task(function()
        assert.equal(task, asyncio.current_task())
        assert.equal(task, asyncio.current_task(nil))
        assert.equal(task, asyncio.current_task())
      end)
      loop:run_until_complete(task)
      assert.is_nil(asyncio.current_task(loop))
    end)
  end)

  it(T .. "test_current_task_with_interleaving_tasks", function()
    H.with_loop(function(loop)
      local fut1, fut2 = loop:create_future(), loop:create_future()
      local task1, task2
      task1 = loop:create_task(function()
        assert.equal(task1, asyncio.current_task())
        fut1:await()
        assert.equal(task1, asyncio.current_task())
        fut2:set_result(true)
      end)
      task2 = loop:create_task(function()
        assert.equal(task2, asyncio.current_task())
        fut1:set_result(true)
        fut2:await()
        assert.equal(task2, asyncio.current_task())
      end)
      loop:run_until_complete(function() asyncio.wait({ task1, task2 }) end)
      assert.is_nil(task1:exception())
      assert.is_nil(task2:exception())
    end)
  end)

  -- cancellation through coroutines, tasks and wait()

  it(T .. "test_yield_future_passes_cancel", function()
    -- cancelling outer() cancels inner(), which cancels the waiter
    H.with_loop(function(loop)
      local proof = 0
      local waiter = loop:create_future()
      local function inner()
        local ok, e = pcall(waiter.await, waiter)
        if ok then error("got past sleep() in inner()") end
        if CancelledError:is(e) then proof = proof + 1 end
        error(e, 0)
      end
      local function outer()
        local ok, e = pcall(inner)
        if ok then
          proof = proof + 10
        elseif CancelledError:is(e) then
          proof = proof + 100 -- the expected path
        else
          error(e, 0)
        end
      end
      local f = asyncio.ensure_future(outer, loop)
      H.run_briefly(loop)
      f:cancel()
      loop:run_until_complete(f)
      assert.equal(101, proof)
      assert.is_true(waiter:cancelled())
    end)
  end)

  it(T .. "test_yield_wait_does_not_shield_cancel", function()
    -- cancelling outer() makes wait() return early and leaves inner() running
    H.with_loop(function(loop)
      local proof = 0
      local waiter = loop:create_future()
      local function inner()
        waiter:await()
        proof = proof + 1
      end
      local function outer()
        asyncio.wait({ asyncio.create_task(inner) })
        proof = proof + 100
      end
      local f = asyncio.ensure_future(outer, loop)
      H.run_briefly(loop)
      f:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, f)
      waiter:set_result(nil)
      H.run_briefly(loop)
      assert.equal(1, proof)
    end)
  end)

  it(T .. "test_shield_result", function()
    H.with_loop(function(loop)
      local inner = loop:create_future()
      local outer = H.shield_future(loop, inner)
      inner:set_result(42)
      assert.equal(42, loop:run_until_complete(outer))
    end)
  end)

  it(T .. "test_shield_exception", function()
    H.with_loop(function(loop)
      local inner = loop:create_future()
      local outer = H.shield_future(loop, inner)
      H.run_briefly(loop)
      local exc = H.TestError("expected")
      inner:set_exception(exc)
      H.run_briefly(loop)
      assert.equal(exc, outer:exception())
    end)
  end)

  it(T .. "test_shield_cancel_inner", function()
    H.with_loop(function(loop)
      local inner = loop:create_future()
      local outer = H.shield_future(loop, inner)
      H.run_briefly(loop)
      inner:cancel()
      H.run_briefly(loop)
      assert.is_true(outer:cancelled())
    end)
  end)

  it(T .. "test_shield_cancel_outer", function()
    -- (upstream also checks that the private outer._callbacks is empty)
    H.with_loop(function(loop)
      local inner = loop:create_future()
      local outer = H.shield_future(loop, inner)
      H.run_briefly(loop)
      outer:cancel()
      H.run_briefly(loop)
      assert.is_true(outer:cancelled())
      assert.is_false(inner:done())
    end)
  end)

  it(T .. "test_shield_shortcut", function()
    H.with_loop(function(loop)
      local fut = loop:create_future()
      fut:set_result(42)
      assert.equal(42, loop:run_until_complete(function() return asyncio.shield(fut) end))
    end)
  end)

  it(T .. "test_shield_effect", function()
    -- cancelling outer() does not affect inner()
    H.with_loop(function(loop)
      local proof = 0
      local waiter = loop:create_future()
      local function inner()
        waiter:await()
        proof = proof + 1
      end
      local function outer()
        asyncio.shield(inner)
        proof = proof + 100
      end
      local f = asyncio.ensure_future(outer, loop)
      H.run_briefly(loop)
      f:cancel()
      assert_raises(CancelledError, loop.run_until_complete, loop, f)
      waiter:set_result(nil)
      H.run_briefly(loop)
      assert.equal(1, proof)
    end)
  end)

  it(T .. "test_shield_gather", function()
    H.with_loop(function(loop)
      local child1, child2 = loop:create_future(), loop:create_future()
      local parent = H.gather_future(loop, child1, child2)
      local outer = H.shield_future(loop, parent)
      H.run_briefly(loop)
      outer:cancel()
      H.run_briefly(loop)
      assert.is_true(outer:cancelled())
      child1:set_result(1)
      child2:set_result(2)
      H.run_briefly(loop)
      assert.same({ 1, 2 }, list(parent:result()))
    end)
  end)

  it(T .. "test_gather_shield", function()
    H.with_loop(function(loop)
      local child1, child2 = loop:create_future(), loop:create_future()
      local inner1 = H.shield_future(loop, child1)
      local inner2 = H.shield_future(loop, child2)
      local parent = H.gather_future(loop, inner1, inner2)
      H.run_briefly(loop)
      parent:cancel()
      -- this cancels inner1 and inner2, not child1 and child2
      H.run_briefly(loop)
      assert.is_true(CancelledError:is(parent:exception()))
      assert.is_true(inner1:cancelled())
      assert.is_true(inner2:cancelled())
      assert.is_false(child1:done())
      child1:set_result(1)
      child2:set_result(2)
      H.run_briefly(loop)
    end)
  end)

  it(T .. "test_shield_coroutine_without_loop", function()
    -- (shield is an async function in Lua: outside a Task it fails like
    -- one, naming itself)
    assert_raises("asyncio.shield", asyncio.shield, function() return 42 end)
  end)

  it(T .. "test_as_completed_invalid_args", function()
    H.with_loop(function(loop)
      local fut = loop:create_future()
      -- as_completed() takes a list of futures, not a future
      assert_raises("as_completed", asyncio.as_completed, fut)
      assert_raises("as_completed", asyncio.as_completed, function() end)
      fut:cancel()
    end)
  end)

  it(T .. "test_wait_invalid_args", function()
    H.with_loop(function(loop)
      local fut = loop:create_future()
      -- wait() takes a list of futures, not a future
      assert_raises("wait", loop.run_until_complete, loop, function() return asyncio.wait(fut) end)
      assert_raises("wait", loop.run_until_complete, loop, function()
        return asyncio.wait(function() end)
      end)
      -- wait() needs at least one future
      assert_raises("wait", loop.run_until_complete, loop, function() return asyncio.wait({}) end)
      fut:cancel()
    end)
  end)

  it(T .. "test_log_destroyed_pending_task", function()
    H.with_loop(function(loop)
      local function kill_me(lp)
        local future = lp:create_future()
        future:await()
        -- here the only reference to the task is the future's callback
        error("code never reached")
      end
      local calls = H.capture_handler(loop)
      loop:set_debug(true)
      -- schedule the task
      local task = asyncio.ensure_future(function() return kill_me(loop) end, loop)
      assert.same({ task }, asyncio.all_tasks(loop))
      -- run the task until it waits for its future
      H.run_briefly(loop)
      task = nil -- luacheck: ignore
      -- nothing refers to the task any more: the GC destroys it
      collectgarbage("collect")
      collectgarbage("collect")
      assert.same({}, asyncio.all_tasks(loop))
      loop:set_debug(false)
      assert.equal(1, #calls)
      assert.equal("Task was destroyed but it is pending!", calls[1].message)
      assert.is_not_nil(calls[1].task)
      assert.is_not_nil(calls[1].source_traceback)
    end)
  end)

  it(T .. "test_tb_logger_not_called_after_cancel", function()
    H.with_loop(function(loop)
      local calls = H.capture_handler(loop)
      local function coro() error(H.TestError("TypeError")) end
      local function runner()
        local task = loop:create_task(coro)
        asyncio.sleep(0.05)
        task:cancel()
        task = nil -- luacheck: ignore
      end
      loop:run_until_complete(runner)
      collectgarbage("collect")
      collectgarbage("collect")
      assert.same({}, calls)
    end)
  end)

  it(T .. "test_cancel_gather_2", function()
    for _, case in ipairs(MESSAGE_CASES) do
      H.with_loop(function(loop)
        local function test()
          local time = 0
          while true do
            time = time + 0.05
            asyncio.gather(function() asyncio.sleep(0.05) end, { return_exceptions = true })
            if time > 1 then return end
          end
        end
        local function main()
          local qwe = loop:create_task(test)
          asyncio.sleep(0.2)
          qwe:cancel(table.unpack(case.args, 1, case.args.n))
          qwe:await()
        end
        local e = H.catch(loop.run_until_complete, loop, main)
        assert(CancelledError:is(e), "gather() does not propagate CancelledError raised "
          .. "by the inner task to the gather() caller: " .. tostring(e))
        assert.equal(case.message, e.message)
      end)
    end
  end)

  it(T .. "test_exception_traceback", function()
    -- Python issue 28843
    H.with_loop(function(loop)
      local function foo() error(H.ZeroDivisionError()) end
      local function main()
        local task = loop:create_task(foo)
        asyncio.sleep(0) -- skip one loop iteration
        assert.is_not_nil(task:exception().traceback)
      end
      loop:run_until_complete(main)
    end)
  end)

  it(T .. "test_create_task_with_noncoroutine", function()
    H.with_loop(function(loop)
      -- twice: nothing cached breaks it
      for _ = 1, 2 do
        local e = assert_raises("create_task", loop.create_task, loop, 123)
        assert_has(e, "function expected")
      end
    end)
  end)

  it(T .. "test_create_task_with_async_function", function()
    H.with_loop(function(loop)
      local function coro() end
      for _ = 1, 2 do
        local task = loop:create_task(coro)
        assert.is_true(H.is_task(task))
        loop:run_until_complete(task)
      end
    end)
  end)

  it(T .. "test_bare_create_task", function()
    H.with_loop(function(loop)
      local function inner() return 1 end
      loop:run_until_complete(function()
        local task = asyncio.create_task(inner)
        assert.is_true(H.is_task(task))
        local ret = task:await()
        assert.equal(1, ret)
      end)
    end)
  end)

  it(T .. "test_bare_create_named_task", function()
    -- (create_task passes its extra arguments to the function: the name is
    -- set right after, instead of create_task(..., name=))
    H.with_loop(function(loop)
      local function coro_noop() end
      loop:run_until_complete(function()
        local task = asyncio.create_task(coro_noop)
        task:set_name("No-op")
        assert.equal("No-op", task:get_name())
        task:await()
      end)
    end)
  end)

  it(T .. "test_context_1", function()
    H.with_loop(function(loop)
      local cvar = trio.ContextVar("cvar", "nope")
      local function sub()
        asyncio.sleep(0.01)
        assert.equal("nope", cvar:get())
        cvar:set("something else")
      end
      local function main()
        assert.equal("nope", cvar:get())
        local subtask = loop:create_task(sub)
        cvar:set("yes")
        assert.equal("yes", cvar:get())
        subtask:await()
        assert.equal("yes", cvar:get())
      end
      loop:run_until_complete(loop:create_task(main))
    end)
  end)

  it(T .. "test_context_2", function()
    local cvar = trio.ContextVar("cvar", "nope")
    H.with_loop(function(loop)
      local function main()
        local function fut_on_done()
          -- this change must not reach the context of main()
          cvar:set("something else")
        end
        assert.equal("nope", cvar:get())
        for j = 0, 1 do
          local fut = loop:create_future()
          fut:add_done_callback(fut_on_done)
          cvar:set("yes" .. j)
          loop:call_soon(fut.set_result, fut, nil)
          fut:await()
          assert.equal("yes" .. j, cvar:get())
          for i = 0, 2 do
            -- the task passed its context to add_done_callback
            cvar:set(("yes%d-%d"):format(i, j))
            asyncio.sleep(0.001)
            assert.equal(("yes%d-%d"):format(i, j), cvar:get())
          end
        end
      end
      loop:run_until_complete(loop:create_task(main))
    end)
    assert.equal("nope", cvar:get())
  end)

  it(T .. "test_context_3", function()
    -- 100 Tasks at once, each changing cvar
    local cvar = trio.ContextVar("cvar", -1)
    H.with_loop(function(loop)
      local function sub(num)
        for i = 0, 9 do
          cvar:set(num + i)
          asyncio.sleep(0.001 + math.random() * 0.049)
          assert.equal(num + i, cvar:get())
        end
      end
      local function main()
        local tasks = {}
        for i = 1, 100 do tasks[i] = loop:create_task(sub, math.random(0, 10)) end
        asyncio.gather(table.unpack(tasks))
      end
      loop:run_until_complete(main)
    end)
    assert.equal(-1, cvar:get())
  end)

  -- RunCoroutineThreadsafeTests: a thread submits a coroutine to the loop
  -- with run_coroutine_threadsafe and waits on the concurrent future it
  -- gets.  The bodies assume asyncio.run_coroutine_threadsafe(fn, loop)
  -- usable from a loop:run_in_executor worker.
  T = "test_tasks.py::RunCoroutineThreadsafeTests."
  local THREADSAFE = " [feature missing: asyncio.run_coroutine_threadsafe from a worker thread (a "
    .. "worker gets copies of plain values, not the loop)]"

  --- Waits 0.05 s and returns a + b (or fails, or cancels itself).
  local function add(a, b, fail, cancel)
    asyncio.sleep(0.05)
    if fail then error(H.TestError("Fail!")) end
    if cancel then
      asyncio.current_task():cancel()
      asyncio.sleep(0)
    end
    return a + b
  end

  --- Runs add in the loop from a worker thread; returns its result.
  local function target(loop, opts)
    opts = opts or {}
    local future = asyncio.run_coroutine_threadsafe(function()
      return add(1, 2, opts.fail, opts.cancel)
    end, loop)
    local r = table.pack(pcall(future.result, future, opts.timeout))
    if not future:done() then future:cancel() end
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end

  pending(T .. "test_run_coroutine_threadsafe" .. THREADSAFE, function()
    H.with_loop(function(loop)
      local future = loop:run_in_executor(nil, target, loop)
      assert.equal(3, loop:run_until_complete(future))
    end)
  end)

  pending(T .. "test_run_coroutine_threadsafe_with_exception" .. THREADSAFE, function()
    H.with_loop(function(loop)
      local future = loop:run_in_executor(nil, target, loop, { fail = true })
      local e = assert_raises(H.TestError, loop.run_until_complete, loop, future)
      assert.equal("Fail!", e.message)
    end)
  end)

  pending(T .. "test_run_coroutine_threadsafe_with_timeout" .. THREADSAFE, function()
    H.with_loop(function(loop)
      local future = loop:run_in_executor(nil, target, loop, { timeout = 0 })
      assert_raises(TimeoutError, loop.run_until_complete, loop, future)
      H.run_briefly(loop)
      -- no task is left pending (add was cancelled)
      for _, task in ipairs(asyncio.all_tasks(loop)) do assert.is_true(task:done()) end
    end)
  end)

  pending(T .. "test_run_coroutine_threadsafe_task_cancelled" .. THREADSAFE, function()
    H.with_loop(function(loop)
      local future = loop:run_in_executor(nil, target, loop, { cancel = true })
      assert_raises(CancelledError, loop.run_until_complete, loop, future)
    end)
  end)

  pending(T .. "test_run_coroutine_threadsafe_task_factory_exception" .. THREADSAFE, function()
    H.with_loop(function(loop)
      local run = loop:run_in_executor(nil, target, loop)
      local calls = H.capture_handler(loop)
      local NameError = H.KeyError
      loop:set_task_factory(function() error(NameError()) end)
      local e = assert_raises(NameError, loop.run_until_complete, loop, run)
      loop:set_task_factory(nil)
      assert.equal(1, #calls)
      assert.equal(e, calls[1].exception)
    end)
  end)

  it("test_tasks.py::SleepTests.test_sleep_zero", function()
    H.with_loop(function(loop)
      local result = 0
      local function inc_result(num) result = result + num end
      local function coro()
        loop:call_soon(inc_result, 1)
        assert.equal(0, result)
        local num = asyncio.sleep(0, 10)
        assert.equal(1, result) -- incremented by call_soon
        inc_result(num) -- num is 10: 11
      end
      loop:run_until_complete(coro)
      assert.equal(11, result)
    end)
  end)

  T = "test_tasks.py::BaseCurrentLoopTests."

  it(T .. "test_current_task_no_running_loop", function()
    H.with_loop(function(loop)
      assert.is_nil(asyncio.current_task(loop))
    end)
  end)

  it(T .. "test_current_task_no_running_loop_implicit", function()
    -- (an async function outside any Task fails naming itself)
    assert_raises("asyncio.current_task", asyncio.current_task)
  end)

  it(T .. "test_current_task_with_implicit_loop", function()
    H.with_loop(function(loop)
      local task
      task = loop:create_task(function()
        assert.equal(task, asyncio.current_task(loop))
        assert.equal(task, asyncio.current_task(nil))
        assert.equal(task, asyncio.current_task())
      end)
      loop:run_until_complete(task)
      assert.is_nil(asyncio.current_task(loop))
    end)
  end)

  it("test_tasks.py::GenericTaskTests.test_future_subclass", function()
    -- a Task is a Future: it has every method of one
    H.with_loop(function(loop)
      local t = loop:create_task(function() end)
      assert.is_true(asyncio.isfuture(t))
      for _, m in ipairs { "result", "exception", "done", "cancelled", "cancel", "set_result",
        "set_exception", "add_done_callback", "remove_done_callback", "get_loop", "await" } do
        assert.is_function(t[m], m)
      end
      loop:run_until_complete(t)
    end)
  end)

  -- GatherTestsBase, for futures and for coroutines
  local function wrap_as_is(...) return { ... } end
  local function wrap_as_coroutines(...)
    local coros = {}
    for i, fut in ipairs { ... } do coros[i] = function() return fut:await() end end
    return coros
  end

  for _, variant in ipairs {
    { name = "FutureGatherTests", wrap = wrap_as_is },
    { name = "CoroutineGatherTests", wrap = wrap_as_coroutines },
  } do
    T = "test_tasks.py::" .. variant.name .. "."
    local wrap = variant.wrap

    --- gather(wrap(futs...) [, opts]) as the future Python returns.
    local function gather(loop, futs, opts)
      local args = wrap(table.unpack(futs))
      if opts then args[#args + 1] = opts end
      return H.gather_future(loop, table.unpack(args))
    end

    --- A done callback counting its calls (test_utils.MockCallback).
    local function mock_callback()
      local cb = { calls = 0 }
      setmetatable(cb, { __call = function(self, f)
        self.calls = self.calls + 1
        self.arg = f
      end })
      return cb
    end

    local function futures(loop, n)
      local fs = {}
      for i = 1, n do fs[i] = loop:create_future() end
      return fs
    end

    local function check_success(opts)
      H.with_loop(function(loop)
        local a, b, c = table.unpack(futures(loop, 3))
        local fut = gather(loop, { a, b, c }, opts)
        local cb = mock_callback()
        fut:add_done_callback(cb)
        b:set_result(1)
        a:set_result(2)
        H.run_loop(loop)
        assert.equal(0, cb.calls)
        assert.is_false(fut:done())
        c:set_result(3)
        H.run_loop(loop)
        assert.equal(1, cb.calls)
        assert.equal(fut, cb.arg)
        assert.same({ 2, 1, 3 }, list(fut:result()))
      end)
    end

    it(T .. "test_success", function()
      check_success()
      check_success({ return_exceptions = false })
    end)

    it(T .. "test_result_exception_success", function()
      check_success({ return_exceptions = true })
    end)

    it(T .. "test_one_exception", function()
      H.with_loop(function(loop)
        local a, b, c, d, e = table.unpack(futures(loop, 5))
        local fut = gather(loop, { a, b, c, d, e })
        local cb = mock_callback()
        fut:add_done_callback(cb)
        local exc = H.ZeroDivisionError()
        a:set_result(1)
        b:set_exception(exc)
        H.run_loop(loop)
        assert.is_true(fut:done())
        assert.equal(1, cb.calls)
        assert.equal(fut, cb.arg)
        assert.equal(exc, fut:exception())
        -- does nothing
        c:set_result(3)
        d:cancel()
        e:set_exception(H.TestError())
        e:exception()
      end)
    end)

    it(T .. "test_return_exceptions", function()
      H.with_loop(function(loop)
        local a, b, c, d = table.unpack(futures(loop, 4))
        local fut = gather(loop, { a, b, c, d }, { return_exceptions = true })
        local cb = mock_callback()
        fut:add_done_callback(cb)
        local exc, exc2 = H.ZeroDivisionError(), H.TestError()
        b:set_result(1)
        c:set_exception(exc)
        a:set_result(3)
        H.run_loop(loop)
        assert.is_false(fut:done())
        d:set_exception(exc2)
        H.run_loop(loop)
        assert.is_true(fut:done())
        assert.equal(1, cb.calls)
        assert.equal(fut, cb.arg)
        local r = fut:result()
        assert.equal(3, r[1])
        assert.equal(1, r[2])
        assert.equal(exc, r[3])
        assert.equal(exc2, r[4])
      end)
    end)
  end

  T = "test_tasks.py::FutureGatherTests."

  it(T .. "test_constructor_empty_sequence_without_loop", function()
    -- (gather awaits in Lua: outside a Task it fails naming itself)
    assert_raises("asyncio.gather", asyncio.gather)
  end)

  it(T .. "test_constructor_empty_sequence_use_running_loop", function()
    H.with_loop(function(loop)
      local r = loop:run_until_complete(function() return asyncio.gather() end)
      assert.same({ n = 0 }, r)
    end)
  end)

  it(T .. "test_constructor_heterogenous_futures", function()
    H.with_loop(function(loop)
      local other_loop = asyncio.new_event_loop()
      local fut1, fut2 = loop:create_future(), other_loop:create_future()
      local e = H.catch(loop.run_until_complete, loop, function() return asyncio.gather(fut1, fut2) end)
      other_loop:close()
      assert.is_true(H.ValueError:is(e), tostring(e))
    end)
  end)

  it(T .. "test_constructor_homogenous_futures", function()
    H.with_loop(function(other_loop)
      local children = { other_loop:create_future(), other_loop:create_future(), other_loop:create_future() }
      for _ = 1, 2 do
        local fut = H.gather_future(other_loop, table.unpack(children))
        assert.equal(other_loop, fut:get_loop())
        H.run_loop(other_loop)
        assert.is_false(fut:done())
      end
    end)
  end)

  it(T .. "test_one_cancellation", function()
    H.with_loop(function(loop)
      local fs = {}
      for i = 1, 5 do fs[i] = loop:create_future() end
      local a, b, c, d, e = table.unpack(fs)
      local fut = H.gather_future(loop, a, b, c, d, e)
      local calls = 0
      fut:add_done_callback(function() calls = calls + 1 end)
      a:set_result(1)
      b:cancel()
      H.run_loop(loop)
      assert.is_true(fut:done())
      assert.equal(1, calls)
      assert.is_false(fut:cancelled())
      assert.is_true(CancelledError:is(fut:exception()))
      -- does nothing
      c:set_result(3)
      d:cancel()
      e:set_exception(H.TestError())
      e:exception()
    end)
  end)

  it(T .. "test_result_exception_one_cancellation", function()
    H.with_loop(function(loop)
      local fs = {}
      for i = 1, 6 do fs[i] = loop:create_future() end
      local a, b, c, d, e, f = table.unpack(fs)
      local fut = H.gather_future(loop, a, b, c, d, e, f, { return_exceptions = true })
      local calls = 0
      fut:add_done_callback(function() calls = calls + 1 end)
      a:set_result(1)
      local zde = H.ZeroDivisionError()
      b:set_exception(zde)
      c:cancel()
      H.run_loop(loop)
      assert.is_false(fut:done())
      d:set_result(3)
      e:cancel()
      local rte = H.TestError()
      f:set_exception(rte)
      local res = loop:run_until_complete(fut)
      assert.is_true(CancelledError:is(res[3]))
      assert.is_true(CancelledError:is(res[5]))
      assert.equal(1, res[1])
      assert.equal(zde, res[2])
      assert.equal(3, res[4])
      assert.equal(rte, res[6])
      assert.equal(1, calls)
    end)
  end)

  T = "test_tasks.py::CoroutineGatherTests."

  it(T .. "test_constructor_without_loop", function()
    local function coro() return "abc" end
    assert_raises("asyncio.gather", asyncio.gather, coro, coro)
  end)

  it(T .. "test_constructor_use_running_loop", function()
    -- (upstream checks the loop of the future gather returns; here the
    -- coroutines run on the running loop)
    H.with_loop(function(loop)
      local function coro()
        assert.equal(loop, asyncio.get_running_loop())
        return "abc"
      end
      local r = loop:run_until_complete(function() return asyncio.gather(coro, coro) end)
      assert.same({ "abc", "abc" }, list(r))
    end)
  end)

  it(T .. "test_duplicate_coroutines", function()
    H.with_loop(function(loop)
      local function coro(s) return s end
      local c = loop:create_task(coro, "abc") -- one coroutine, listed three times
      local fut = H.gather_future(loop, c, c, function() return coro("def") end, c)
      H.run_loop(loop)
      assert.same({ "abc", "abc", "def", "abc" }, list(fut:result()))
    end)
  end)

  it(T .. "test_cancellation_broadcast", function()
    -- cancelling outer() cancels all the children
    H.with_loop(function(loop)
      local proof = 0
      local waiter = loop:create_future()
      local function inner()
        waiter:await()
        proof = proof + 1
      end
      local child1 = asyncio.ensure_future(inner, loop)
      local child2 = asyncio.ensure_future(inner, loop)
      local function outer()
        asyncio.gather(child1, child2)
        proof = proof + 100
      end
      local f = asyncio.ensure_future(outer, loop)
      H.run_briefly(loop)
      assert.is_true(f:cancel())
      assert_raises(CancelledError, loop.run_until_complete, loop, f)
      -- (upstream also checks that the gathering future, done by now,
      -- refuses cancel())
      assert.is_true(waiter:cancelled())
      assert.is_true(child1:cancelled())
      assert.is_true(child2:cancelled())
      H.run_briefly(loop)
      assert.equal(0, proof)
    end)
  end)

  it(T .. "test_exception_marking", function()
    H.with_loop(function(loop)
      local function inner(f)
        f:await()
        error(H.TestError("should not be ignored"))
      end
      local a, b = loop:create_future(), loop:create_future()
      local function outer()
        asyncio.gather(function() return inner(a) end, function() return inner(b) end)
      end
      local f = asyncio.ensure_future(outer, loop)
      H.run_briefly(loop)
      a:set_result(nil)
      H.run_briefly(loop)
      b:set_result(nil)
      H.run_briefly(loop)
      assert.is_true(H.TestError:is(f:exception()))
    end)
  end)

  it(T .. "test_issue46672", function()
    -- a bad argument raises at once and leaves no error for the exception
    -- handler (upstream passes a dict; a Lua table as the last argument is
    -- gather's options, so a number stands in)
    H.with_loop(function(loop)
      local calls = H.capture_handler(loop)
      local function coro(s) return s end
      assert_raises("gather", loop.run_until_complete, loop, function()
        return asyncio.gather(function() return coro("abc") end, 42)
      end)
      H.run_loop(loop)
      assert.same({}, calls)
    end)
  end)
end)
