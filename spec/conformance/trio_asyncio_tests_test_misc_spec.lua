-- Ported from trio-asyncio tests/test_misc.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation: `async with open_loop() as loop` is ta.open_loop(function(loop));
-- the `loop` fixture is H.with_loop; `loop.trio_as_future` is loop:run_trio
-- (DESIGN 4.3); `with pytest.raises(E)` is errof + E:is; try/finally is pcall
-- then re-raise.  Python's RuntimeError/ValueError/KeyError/IndexError are
-- trio.RuntimeError and error classes made here.  SystemExit (a
-- BaseException that is not Cancelled) has no Lua counterpart:
-- trio.KeyboardInterrupt, the other one, stands in for it.
--
-- Left out: nothing.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local H = require "conformance.trio_asyncio_helpers"
local errof = H.errof

local RuntimeError = trio.RuntimeError
local ValueError = errors.class("spec.ValueError", errors.Error)
local KeyError = errors.class("spec.KeyError", errors.Error)
local IndexError = errors.class("spec.IndexError", errors.Error)

local F = "tests/test_misc.py::"

it(F .. "test_close_no_stop", function()
  H.run(function()
    ta.open_loop(function(loop)
      local triggered = trio.Event()
      local function close_no_stop()
        local e = errof(loop.close, loop)
        assert.is_true(RuntimeError:is(e))
        triggered:set()
      end
      loop:call_soon(close_no_stop)
      triggered:wait()
    end)
  end)
end)

-- A regression makes open_loop's shielded exit wait forever: run apart.
it(F .. "test_too_many_stops", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      local scope = trio.move_on_after(1, ta.open_loop, function(loop)
        trio.lowlevel.checkpoint()
        loop:stop()
      end)
      assert(not scope.cancelled_caught, "Possible deadlock after manual call to loop.stop")
    end)
  end)
end)

it(F .. "test_err1", function()
  H.with_loop(function()
    local function raise_err() error(RuntimeError("Foo")) end
    local e = errof(ta.aio_as_trio(raise_err))
    assert.is_true(RuntimeError:is(e))
    assert.equal("Foo", e.message)
  end)
end)

it(F .. "test_err3", function()
  H.with_loop(function()
    local owch = 0
    local function nest()
      owch = 1
      error(RuntimeError("Hello"))
    end
    local function call_nested()
      local e = errof(ta.trio_as_aio(nest))
      assert.is_true(RuntimeError:is(e))
      assert.equal("Hello", e.message)
    end
    ta.aio_as_trio(call_nested)()
    assert.equal(1, owch)
  end)
end)

it(F .. "test_run", function()
  H.with_loop(function()
    local owch = 0
    local function nest()
      trio.sleep(0.01)
      owch = 1
    end
    local function call_nested()
      ta.trio_as_aio(nest)()
    end
    ta.aio_as_trio(call_nested)()
    assert.equal(1, owch)
  end)
end)

it(F .. "test_run2", function()
  local owch = 0
  local function _test_run()
    local function nest()
      trio.sleep(0.01)
      owch = 1
    end
    local function call_nested()
      ta.trio_as_aio(nest)()
    end
    trio.fail_after(H.LIMIT, ta.aio_as_trio(call_nested))
    assert.equal(1, owch)
  end
  ta.run(_test_run)
  assert.equal(1, owch)
end)

it(F .. "test_run_task", function()
  H.run(function()
    local owch = 0
    local function nest(x) owch = owch + x end

    local e = errof(ta.run_trio_task, nest, 100)
    assert.is_true(RuntimeError:is(e))

    -- Python: a plain `with` on the async context manager fails.  Lua: an
    -- open_loop without its body function fails, and nest never runs.
    errof(function()
      ta.open_loop()
      nest(1000)
    end)

    ta.open_loop(function()
      ta.run_trio_task(nest, 1)
    end)
    trio.sleep(0.05)
    assert.equal(1, owch)
  end)
end)

it(F .. "test_err2", function()
  H.with_loop(function()
    local owch = 0
    local function nest()
      owch = 1
      error(RuntimeError("Hello"))
    end
    local function call_nested()
      ta.aio_as_trio(nest)()
    end
    local function call_more_nested()
      local e = errof(ta.trio_as_aio(call_nested))
      assert.is_true(RuntimeError:is(e))
      assert.equal("Hello", e.message)
    end
    ta.aio_as_trio(call_more_nested)()
    assert.equal(1, owch)
  end)
end)

it(F .. "test_run3", function()
  H.with_loop(function()
    local owch = 0
    local function nest() owch = 1 end
    local function call_nested() ta.aio_as_trio(nest)() end
    local function call_more_nested() ta.trio_as_aio(call_nested)() end
    ta.aio_as_trio(call_more_nested)()
    assert.equal(1, owch)
  end)
end)

it(F .. "test_cancel_sleep", function()
  H.with_loop(function(loop)
    local owch = 0
    local function do_not_run() owch = 1 end
    local function cancel_sleep()
      local h = loop:call_later(0.2, do_not_run)
      asyncio.sleep(0.01)
      h:cancel()
      asyncio.sleep(0.3)
    end
    ta.aio_as_trio(cancel_sleep)()
    assert.equal(0, owch)
  end)
end)

it(F .. "test_wrong_context_manager_order", function()
  H.run(function()
    local take_down = trio.Event()
    local function work_in_asyncio() asyncio.sleep(0) end
    local function runner(task_status)
      ta.aio_as_trio(work_in_asyncio)()
      local ok, e = pcall(function()
        task_status:started()
        take_down:wait()
      end)
      ta.aio_as_trio(work_in_asyncio)()
      if not ok then error(e, 0) end
    end
    trio.open_nursery(function(nursery)
      ta.open_loop(function()
        nursery:start(runner)
        take_down:set()
      end)
    end)
  end)
end)

-- Sends SIGINT to this process: run apart, so that a runtime that loses
-- the signal handler cannot kill the test runner.  The signal comes from a
-- background shell a moment later (os.execute ignores SIGINT while it
-- waits for its child, so a direct `kill` would be lost).
it(F .. "test_keyboard_interrupt_teardown", function()
  H.isolated(10, function()
    local trio, asyncio, ta = require "trio", require "asyncio", require "trio_asyncio"
    local asyncio_loop_closed = trio.Event()
    local late_error

    local function work_in_asyncio() asyncio.sleep(0) end

    local function work_in_trio_no_matter_what(task_status)
      ta.aio_as_trio(work_in_asyncio)()
      local ok, e = pcall(function()
        -- KeyboardInterrupt does not cancel this, thanks to the shield
        trio.CancelScope { shield = true }:run(function()
          task_status:started()
          asyncio_loop_closed:wait()
        end)
      end)
      -- so this call comes after run_asyncio_loop was cancelled
      local ok2, e2 = pcall(ta.aio_as_trio(work_in_asyncio))
      late_error = ok2 and "no error" or e2
      if not ok then error(e, 0) end
    end

    local function run_asyncio_loop(nursery, task_status)
      local cancel_scope = trio.CancelScope()
      local ok, e = pcall(cancel_scope.run, cancel_scope, ta.open_loop, function()
        -- started from here, it inherits the access to the asyncio loop
        nursery:start(work_in_trio_no_matter_what)
        task_status:started(cancel_scope)
        trio.sleep_forever()
      end)
      asyncio_loop_closed:set()
      if not ok then error(e, 0) end
    end

    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("n")
    f:close()
    local ok, err = pcall(trio.run, function()
      trio.open_nursery(function(nursery)
        nursery:start(run_asyncio_loop, nursery)
        -- a KeyboardInterrupt that should propagate across the tasks
        os.execute("(sleep 0.1; kill -INT " .. pid .. ") &")
      end)
    end)
    assert(not ok, "expected a KeyboardInterrupt")
    assert(trio.ExceptionGroup:is(err), tostring(err))
    assert.equal(1, #err.exceptions)
    assert(trio.KeyboardInterrupt:is(err.exceptions[1]), tostring(err))
    assert(trio.RuntimeError:is(late_error), tostring(late_error))
  end)
end)

for _, throw_another in ipairs { false, true } do
  it(F .. ("test_cancel_loop[%s]"):format(H.py(throw_another)), function()
    local fut
    H.run(function()
      local function manage_loop(task_status)
        local scope = trio.CancelScope()
        local ok, e = pcall(scope.run, scope, ta.open_loop, function(loop)
          task_status:started { loop, scope }
          trio.sleep_forever()
        end)
        assert.is_true(scope.cancelled_caught)
        if not ok then error(e, 0) end
      end

      -- Trio-flavored; runs as a task of the loop and is cancelled with it
      local function trio_task()
        trio.open_nursery(function(nursery)
          nursery:start_soon(trio.sleep_forever)
          local _, e = pcall(trio.sleep_forever)
          if trio.Cancelled:is(e) and throw_another then
            -- with the Cancelled of the background sleep_forever, this makes
            -- an ExceptionGroup escaping from trio_task
            error(ValueError("hi"))
          end
          error(e, 0)
        end)
      end

      trio.open_nursery(function(nursery)
        local r = nursery:start(manage_loop)
        local loop, scope = r[1], r[2]
        fut = loop:run_trio(trio_task)
        trio.testing.wait_all_tasks_blocked()
        scope:cancel()
      end)
    end)
    assert.is_true(fut:done())
    if throw_another then
      local e = errof(fut.result, fut)
      assert.is_true(trio.ExceptionGroup:is(e), tostring(e))
      assert.equal(1, #e.exceptions, tostring(e))
      assert.is_true(ValueError:is(e.exceptions[1]))
      assert.equal("hi", e.exceptions[1].message)
    else
      assert.is_true(fut:cancelled())
    end
  end)
end

it(F .. "test_trio_as_fut_throws_after_cancelled", function()
  H.run(function()
    local function trio_task()
      pcall(trio.sleep_forever)
      error(ValueError("hi"))
    end
    ta.open_loop(function(loop)
      local fut = loop:run_trio(trio_task)
      trio.testing.wait_all_tasks_blocked()
      fut:cancel()
      local e = errof(ta.run_aio_future, fut)
      assert.is_true(ValueError:is(e), tostring(e))
    end)
  end)
end)

it(F .. "test_run_trio_task_errors", function()
  H.run(function()
    local Loop -- the methods of every loop (TrioEventLoop in Python)
    ta.open_loop(function(loop)
      Loop = getmetatable(loop).__index
      -- never getting to start the task
      local handle = loop:run_trio_task(trio.sleep_forever)
      handle:cancel()
      -- cancelling the task
      handle = loop:run_trio_task(trio.sleep_forever)
      trio.testing.wait_all_tasks_blocked()
      handle:cancel()
    end)

    -- the rest covers a Trio task that raises
    local function raise_in_aio_loop(exc)
      local function raise_it() error(exc, 0) end
      ta.open_loop(function(loop)
        loop:run_trio_task(raise_it)
      end)
    end

    -- the default exception handler, patched to collect instead of raise
    local exceptions = {}
    local function collect_exceptions(_, context)
      if context.exception ~= nil then
        exceptions[#exceptions + 1] = context.exception
      else
        exceptions[#exceptions + 1] = RuntimeError(context.message or "unknown")
      end
    end
    local saved = Loop.default_exception_handler
    Loop.default_exception_handler = collect_exceptions
    local ok, err = pcall(function()
      local expected = { ValueError("hi"), ValueError("lo"), KeyError(), IndexError() }
      raise_in_aio_loop(expected[1])

      local function flat_leaves(e, out)
        out = out or {}
        if trio.ExceptionGroup:is(e) then
          for _, sub in ipairs(e.exceptions) do flat_leaves(sub, out) end
        else
          out[#out + 1] = e
        end
        return out
      end
      local function assert_group_of_interrupts(e)
        assert.is_true(trio.ExceptionGroup:is(e), tostring(e))
        local leaves = flat_leaves(e)
        assert.is_true(#leaves >= 1)
        for _, leaf in ipairs(leaves) do assert.is_true(trio.KeyboardInterrupt:is(leaf), tostring(e)) end
      end

      assert_group_of_interrupts(errof(raise_in_aio_loop, trio.KeyboardInterrupt()))
      local result = errof(raise_in_aio_loop,
        errors.group("", { expected[2], trio.KeyboardInterrupt() }))
      assert_group_of_interrupts(result)
      assert.equal(1, #result.exceptions)
      local function innermost_exception(item)
        if trio.ExceptionGroup:is(item) then return innermost_exception(item.exceptions[1]) end
        return item
      end
      assert.is_true(trio.KeyboardInterrupt:is(innermost_exception(result)))

      raise_in_aio_loop(errors.group("", { expected[3], expected[4] }))

      assert.equal(3, #exceptions)
      assert.equal(expected[1], exceptions[1])
      assert.is_true(trio.ExceptionGroup:is(exceptions[2]))
      assert.equal(1, #exceptions[2].exceptions)
      assert.equal(expected[2], exceptions[2].exceptions[1])
      assert.is_true(trio.ExceptionGroup:is(exceptions[3]))
      assert.equal(2, #exceptions[3].exceptions)
      assert.equal(expected[3], exceptions[3].exceptions[1])
      assert.equal(expected[4], exceptions[3].exceptions[2])
    end)
    Loop.default_exception_handler = saved
    if not ok then error(err, 0) end
  end)
end)

it(F .. "test_contextvars", function()
  H.run(function()
    local cvar = trio.ContextVar("test_cvar")
    cvar:set("outer")

    local function fudge_in_trio()
      assert.equal("middle", cvar:get())
      cvar:set("inner")
    end

    local function fudge_in_aio()
      assert.equal("outer", cvar:get())
      cvar:set("middle")
      ta.trio_as_aio(fudge_in_trio)()
      assert.equal("middle", cvar:get())
    end

    ta.open_loop(function()
      ta.aio_as_trio(fudge_in_aio)()
      assert.equal("outer", cvar:get())
    end)
  end)
end)
