-- Ported from CPython Lib/test/test_asyncio/test_futures.py
-- (python/cpython at commit 012819868449d48df37dc1de6406201cc067c7a3).
--
-- Each test is named "test_futures.py::<Class>.<test>"; upstream runs the
-- base classes against the C and the Python Future (CFutureTests,
-- PyFutureTests, ...): here there is one Future, so the tests carry the
-- base class name.  The loop's logger is the loop's exception handler here
-- (an unretrieved error is reported through it).
--
-- Left out (Python-only machinery):
--   DuckTests.test_wrap_future, DuckTests.test_ensure_future
--                                 duck-typed futures (_asyncio_future_blocking)
--   BaseFutureTests.test_generic_alias             Python typing (Future[str])
--   BaseFutureTests.test_constructor_positional    Python keyword-only arguments
--   BaseFutureTests.test_uninitialized             __new__ without __init__
--   BaseFutureTests.test_future_cancel_message_setter  sets the private _cancel_message
--   BaseFutureTests.test_stop_iteration_exception, test_stop_iteration_subclass_exception
--                                 StopIteration inside generators
--   BaseFutureTests.test_exception_class           an exception class instead of an instance
--   BaseFutureTests.test_yield_from_twice, test_iter, test_future_stop_iteration_args,
--   test_future_iter_throw, test_futureiter_send_after_throw_no_crash
--                                 generator-based coroutines and the iterator protocol
--   BaseFutureTests.test_future_repr               repr() format of the Python object
--   (BaseFutureTests.test_copy_state and test_copy_state_from_concurrent_futures
--   call the private _copy_future_state: ported through wrap_future, which
--   uses it)
--   BaseFutureTests.test_log_traceback             the private _log_traceback
--   BaseFutureTests.test_future_source_traceback   the private _source_traceback
--   BaseFutureTests.test_set_result_unless_cancelled  the private _set_result_unless_cancelled
--   BaseFutureTests.test_future_del_collect        __del__ calling gc.collect()
--   BaseFutureTests.test_future_cancelled_result_refcycles,
--   test_future_cancelled_exception_refcycles       gc.get_referrers
--   BaseFutureTests.test_future_disallow_multiple_initialization  calling __init__ again
--   CFutureTests.test_future_del_segfault, test_callbacks_copy
--                                 private attributes of the C Future
--   BaseFutureDoneCallbackTests.test_remove_done_callbacks_list_mutation,
--   test_remove_done_callbacks_list_clear, test_schedule_callbacks_list_mutation_2,
--   test_use_after_free_on_fut_callback_0_with_evil__eq__
--                                 an object whose __eq__ mutates the callbacks
--                                 (Lua compares callbacks by identity)
--   BaseFutureDoneCallbackTests.test_evil_call_soon_list_mutation,
--   test_use_after_free_on_fut_callback_0_with_evil__getattribute__
--                                 a loop subclass overriding call_soon / __getattribute__
--   BaseFutureInheritanceTests.test_inherit_without_calling_super_init
--                                 subclassing Future without calling __init__
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local CancelledError, InvalidStateError, RuntimeError =
  H.CancelledError, H.InvalidStateError, H.RuntimeError
local assert_raises = H.assert_raises
local pending = H.pending(pending, it)

describe("test_futures.py", function()
  local T = "test_futures.py::BaseFutureTests."

  it(T .. "test_isfuture", function()
    H.with_loop(function(loop)
      -- (upstream also checks duck-typed classes and mocks)
      assert.is_false(asyncio.isfuture(1))
      assert.is_false(asyncio.isfuture({}))
      local f = asyncio.Future(loop)
      assert.is_true(asyncio.isfuture(f))
      f:cancel()
    end)
  end)

  it(T .. "test_initial_state", function()
    H.with_loop(function(loop)
      local f = asyncio.Future(loop)
      assert.is_false(f:cancelled())
      assert.is_false(f:done())
      f:cancel()
      assert.is_true(f:cancelled())
    end)
  end)

  it(T .. "test_constructor_without_loop", function()
    local e = assert_raises(RuntimeError, asyncio.Future)
    assert.matches("no current event loop", e.message)
  end)

  it(T .. "test_constructor_use_running_loop", function()
    H.with_loop(function(loop)
      local f = loop:run_until_complete(function() return asyncio.Future() end)
      assert.equal(loop, f:get_loop())
    end)
  end)

  it(T .. "test_constructor_use_global_loop", function()
    H.with_loop(function(loop)
      asyncio.set_event_loop(loop)
      local ok, f = pcall(asyncio.Future)
      asyncio.set_event_loop(nil)
      assert(ok, f)
      assert.equal(loop, f:get_loop())
    end)
  end)

  it(T .. "test_future_cancel_message_getter", function()
    -- (upstream reads the private _cancel_message; here the message the
    -- CancelledError carries)
    H.with_loop(function(loop)
      local f = asyncio.Future(loop)
      f:cancel("my message")
      local e = assert_raises(CancelledError, loop.run_until_complete, loop, f)
      assert.equal("my message", e.message)
    end)
  end)

  it(T .. "test_cancel", function()
    H.with_loop(function(loop)
      local f = asyncio.Future(loop)
      assert.is_true(f:cancel())
      assert.is_true(f:cancelled())
      assert.is_true(f:done())
      assert_raises(CancelledError, f.result, f)
      assert_raises(CancelledError, f.exception, f)
      assert_raises(InvalidStateError, f.set_result, f, nil)
      assert_raises(InvalidStateError, f.set_exception, f, H.TestError())
      assert.is_false(f:cancel())
    end)
  end)

  it(T .. "test_result", function()
    H.with_loop(function(loop)
      local f = asyncio.Future(loop)
      assert_raises(InvalidStateError, f.result, f)
      f:set_result(42)
      assert.is_false(f:cancelled())
      assert.is_true(f:done())
      assert.equal(42, f:result())
      assert.is_nil(f:exception())
      assert_raises(InvalidStateError, f.set_result, f, nil)
      assert_raises(InvalidStateError, f.set_exception, f, H.TestError())
      assert.is_false(f:cancel())
    end)
  end)

  it(T .. "test_exception", function()
    H.with_loop(function(loop)
      local exc = H.TestError()
      local f = asyncio.Future(loop)
      assert_raises(InvalidStateError, f.exception, f)
      f:set_exception(exc)
      assert.is_false(f:cancelled())
      assert.is_true(f:done())
      assert.equal(exc, assert_raises(H.TestError, f.result, f))
      assert.equal(exc, f:exception())
      assert_raises(InvalidStateError, f.set_result, f, nil)
      assert_raises(InvalidStateError, f.set_exception, f, H.TestError())
      assert.is_false(f:cancel())
    end)
  end)

  --- Runs body(loop, calls) where calls lists what reached the loop's
  -- exception handler; futures body drops are collected afterwards.
  local function with_logger(body)
    return H.with_loop(function(loop)
      local calls = H.capture_handler(loop)
      body(loop, calls)
      collectgarbage("collect")
      collectgarbage("collect")
      return calls
    end)
  end

  it(T .. "test_tb_logger_abandoned", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  it(T .. "test_tb_logger_not_called_after_cancel", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_exception(H.TestError())
      fut:cancel()
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  it(T .. "test_tb_logger_result_unretrieved", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_result(42)
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  it(T .. "test_tb_logger_result_retrieved", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_result(42)
      fut:result()
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  it(T .. "test_tb_logger_exception_unretrieved", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_exception(H.TestError("boom"))
      fut = nil -- luacheck: ignore
      H.run_briefly(loop)
    end)
    assert.equal(1, #calls)
  end)

  it(T .. "test_tb_logger_exception_retrieved", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_exception(H.TestError("boom"))
      fut:exception()
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  it(T .. "test_tb_logger_exception_result_retrieved", function()
    local calls = with_logger(function(loop)
      local fut = asyncio.Future(loop)
      fut:set_exception(H.TestError("boom"))
      assert_raises(H.TestError, fut.result, fut)
      fut = nil -- luacheck: ignore
    end)
    assert.same({}, calls)
  end)

  -- asyncio.wrap_future wraps a concurrent future (as a thread pool's
  -- submit() returns) into an asyncio Future: asyncio.ThreadPoolExecutor(n),
  -- :submit(fn, ...) returning an asyncio.ConcurrentFuture, :shutdown(wait).

  local function run_in_worker(arg)
    return arg, tostring({}) -- the worker's own state shows in the address
  end

  it(T .. "test_wrap_future", function()
    H.with_loop(function(loop)
      local ex = asyncio.ThreadPoolExecutor(1)
      local f1 = ex:submit(run_in_worker, "oi")
      local f2 = asyncio.wrap_future(f1, loop)
      local res, ident = loop:run_until_complete(f2)
      assert.is_true(asyncio.isfuture(f2))
      assert.equal("oi", res)
      assert.matches("^table: ", ident)
      assert.not_equal(tostring({}), ident)
      ex:shutdown(true)
    end)
  end)

  it(T .. "test_wrap_future_future", function()
    H.with_loop(function(loop)
      local f1 = asyncio.Future(loop)
      local f2 = asyncio.wrap_future(f1)
      assert.equal(f1, f2)
      f1:cancel()
    end)
  end)

  it(T .. "test_wrap_future_without_loop", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local f1 = ex:submit(run_in_worker, "oi")
    local e = assert_raises(RuntimeError, asyncio.wrap_future, f1)
    assert.matches("no current event loop", e.message)
    ex:shutdown(true)
  end)

  it(T .. "test_wrap_future_use_running_loop", function()
    H.with_loop(function(loop)
      local ex = asyncio.ThreadPoolExecutor(1)
      local f1 = ex:submit(run_in_worker, "oi")
      local f2 = loop:run_until_complete(function() return asyncio.wrap_future(f1) end)
      assert.equal(loop, f2:get_loop())
      ex:shutdown(true)
    end)
  end)

  it(T .. "test_wrap_future_use_global_loop", function()
    H.with_loop(function(loop)
      asyncio.set_event_loop(loop)
      local ex = asyncio.ThreadPoolExecutor(1)
      local f1 = ex:submit(run_in_worker, "oi")
      local f2 = asyncio.wrap_future(f1)
      asyncio.set_event_loop(nil)
      assert.equal(loop, f2:get_loop())
      ex:shutdown(true)
    end)
  end)

  it(T .. "test_wrap_future_cancel", function()
    H.with_loop(function(loop)
      local f1 = asyncio.ConcurrentFuture()
      local f2 = asyncio.wrap_future(f1, loop)
      f2:cancel()
      H.run_briefly(loop)
      assert.is_true(f1:cancelled())
      assert.is_true(f2:cancelled())
    end)
  end)

  it(T .. "test_wrap_future_cancel2", function()
    H.with_loop(function(loop)
      local f1 = asyncio.ConcurrentFuture()
      local f2 = asyncio.wrap_future(f1, loop)
      f1:set_result(42)
      f2:cancel()
      H.run_briefly(loop)
      assert.is_false(f1:cancelled())
      assert.equal(42, f1:result())
      assert.is_true(f2:cancelled())
    end)
  end)

  -- upstream's newf: an asyncio Future that took src's state (wrap_future
  -- copies it with _copy_future_state)
  local function copied(loop, src)
    local newf = asyncio.wrap_future(src, loop)
    H.run_briefly(loop)
    return newf
  end

  it(T .. "test_copy_state", function()
    H.with_loop(function(loop)
      local f = asyncio.ConcurrentFuture()
      f:set_result(10)
      local newf = copied(loop, f)
      assert.is_true(newf:done())
      assert.equal(10, newf:result())

      local f_exception = asyncio.ConcurrentFuture()
      f_exception:set_exception(RuntimeError())
      local newf_exception = copied(loop, f_exception)
      assert.is_true(newf_exception:done())
      assert_raises(RuntimeError, newf_exception.result, newf_exception)

      local f_cancelled = asyncio.ConcurrentFuture()
      f_cancelled:cancel()
      assert.is_true(copied(loop, f_cancelled):cancelled())
    end)
  end)

  it(T .. "test_copy_state_from_concurrent_futures", function()
    H.with_loop(function(loop)
      local wrapped_result = asyncio.wrap_future((function()
        local f = asyncio.ConcurrentFuture()
        f:set_result(42)
        return f
      end)(), loop)
      local f_exc = asyncio.ConcurrentFuture()
      f_exc:set_exception(H.ValueError("test exception"))
      local wrapped_exc = asyncio.wrap_future(f_exc, loop)
      local f_cancelled = asyncio.ConcurrentFuture()
      f_cancelled:cancel()
      local wrapped_cancelled = asyncio.wrap_future(f_cancelled, loop)
      -- a destination already cancelled keeps its state
      local f_result = asyncio.ConcurrentFuture()
      local precancelled = asyncio.wrap_future(f_result, loop)
      precancelled:cancel()
      f_result:set_result(10)
      -- InvalidStateError is the same class in both (Python converts it)
      local f_invalid = asyncio.ConcurrentFuture()
      f_invalid:set_exception(InvalidStateError("invalid"))
      local wrapped_invalid = asyncio.wrap_future(f_invalid, loop)
      H.run_briefly(loop)
      assert.equal(42, wrapped_result:result())
      local e = assert_raises(H.ValueError, wrapped_exc.result, wrapped_exc)
      assert.equal("test exception", e.message)
      assert.is_true(wrapped_cancelled:cancelled())
      assert.is_true(precancelled:cancelled())
      e = assert_raises(InvalidStateError, wrapped_invalid.result, wrapped_invalid)
      assert.equal("invalid", e.message)
    end)
  end)

  local function check_future_exception_never_retrieved(debug)
    local exc = H.TestError("memory error")
    local calls = with_logger(function(loop)
      loop:set_debug(debug)
      local future = asyncio.Future(loop)
      future:set_exception(exc)
      future = nil -- luacheck: ignore
      H.run_briefly(loop)
      collectgarbage("collect")
      collectgarbage("collect")
    end)
    assert.equal(1, #calls)
    assert.matches("^Future exception was never retrieved", calls[1].message)
    assert.equal(exc, calls[1].exception)
  end

  it(T .. "test_future_exception_never_retrieved", function()
    check_future_exception_never_retrieved(false)
  end)

  it(T .. "test_future_exception_never_retrieved_debug", function()
    check_future_exception_never_retrieved(true)
  end)

  T = "test_futures.py::BaseFutureDoneCallbackTests."

  local function make_callback(bag, thing)
    return function() bag[#bag + 1] = thing end
  end

  it(T .. "test_callbacks_remove_first_callback", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      local cb1, cb2, cb3 = make_callback(bag, 42), make_callback(bag, 17), make_callback(bag, 100)
      f:add_done_callback(cb1)
      f:add_done_callback(cb2)
      f:add_done_callback(cb3)
      f:remove_done_callback(cb1)
      f:remove_done_callback(cb1)
      assert.same({}, bag)
      f:set_result("foo")
      H.run_briefly(loop)
      assert.same({ 17, 100 }, bag)
      assert.equal("foo", f:result())
    end)
  end)

  it(T .. "test_callbacks_remove_first_and_second_callback", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      local cb1, cb2, cb3 = make_callback(bag, 42), make_callback(bag, 17), make_callback(bag, 100)
      f:add_done_callback(cb1)
      f:add_done_callback(cb2)
      f:add_done_callback(cb3)
      f:remove_done_callback(cb1)
      f:remove_done_callback(cb2)
      f:remove_done_callback(cb1)
      assert.same({}, bag)
      f:set_result("foo")
      H.run_briefly(loop)
      assert.same({ 100 }, bag)
      assert.equal("foo", f:result())
    end)
  end)

  it(T .. "test_callbacks_remove_third_callback", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      local cb1, cb2, cb3 = make_callback(bag, 42), make_callback(bag, 17), make_callback(bag, 100)
      f:add_done_callback(cb1)
      f:add_done_callback(cb2)
      f:add_done_callback(cb3)
      f:remove_done_callback(cb3)
      f:remove_done_callback(cb3)
      assert.same({}, bag)
      f:set_result("foo")
      H.run_briefly(loop)
      assert.same({ 42, 17 }, bag)
      assert.equal("foo", f:result())
    end)
  end)

  it(T .. "test_callbacks_invoked_on_set_result", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      f:add_done_callback(make_callback(bag, 42))
      f:add_done_callback(make_callback(bag, 17))
      assert.same({}, bag)
      f:set_result("foo")
      H.run_briefly(loop)
      assert.same({ 42, 17 }, bag)
      assert.equal("foo", f:result())
    end)
  end)

  it(T .. "test_callbacks_invoked_on_set_exception", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      f:add_done_callback(make_callback(bag, 100))
      assert.same({}, bag)
      local exc = H.TestError()
      f:set_exception(exc)
      H.run_briefly(loop)
      assert.same({ 100 }, bag)
      assert.equal(exc, f:exception())
    end)
  end)

  it(T .. "test_remove_done_callback", function()
    H.with_loop(function(loop)
      local bag = {}
      local f = asyncio.Future(loop)
      local cb1, cb2, cb3 = make_callback(bag, 1), make_callback(bag, 2), make_callback(bag, 3)
      -- one cb1 and one cb2
      f:add_done_callback(cb1)
      f:add_done_callback(cb2)
      -- removing the cb2 leaves one cb1
      assert.equal(1, f:remove_done_callback(cb2))
      -- there never was a cb3
      assert.equal(0, f:remove_done_callback(cb3))
      -- then 6 cb1 and one cb2
      f:add_done_callback(cb2)
      for _ = 1, 5 do f:add_done_callback(cb1) end
      -- remove every cb1: one cb2 is left
      assert.equal(6, f:remove_done_callback(cb1))
      assert.same({}, bag)
      f:set_result("foo")
      H.run_briefly(loop)
      assert.same({ 2 }, bag)
      assert.equal("foo", f:result())
    end)
  end)

  it(T .. "test_schedule_callbacks_list_mutation_1", function()
    -- Python bpo-28963: a callback that removes other callbacks while the
    -- callbacks are being scheduled must not crash
    H.with_loop(function(loop)
      local function str() end
      local function mut(f) f:remove_done_callback(str) end
      local fut = asyncio.Future(loop)
      fut:add_done_callback(mut)
      fut:add_done_callback(str)
      fut:add_done_callback(str)
      fut:set_result(1)
      H.run_briefly(loop)
    end)
  end)
end)
