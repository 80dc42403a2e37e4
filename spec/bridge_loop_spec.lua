-- trio_asyncio.open_loop: the loop inside the block, the shutdown order on
-- exit (queued callbacks, asyncio tasks, Trio tasks started from asyncio,
-- then close), several loops at once, the closed-loop errors, errors that
-- reach the default exception handler, trio_asyncio.run and current_flavor.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local MyError = errors.class("spec.LoopError", errors.Error)

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
  return nil
end

describe("open_loop: inside the block", function()
  it("passes the loop to fn; get_running_loop and current_loop return it", function()
    local seen = {}
    trio.run(function()
      seen.before = ta.current_loop()
      ta.open_loop(function(loop)
        seen.loop = loop
        seen.running = asyncio.get_running_loop()
        seen.current = ta.current_loop()
        seen.is_running = loop:is_running()
        seen.is_closed = loop:is_closed()
      end)
      seen.after = ta.current_loop()
    end)
    assert.is_nil(seen.before)
    assert.is_not_nil(seen.loop)
    assert.equal(seen.loop, seen.running)
    assert.equal(seen.loop, seen.current)
    assert.is_true(seen.is_running)
    assert.is_false(seen.is_closed)
    assert.is_nil(seen.after)
  end)

  it("asyncio tasks, callbacks and Trio tasks started from asyncio see the loop", function()
    local seen = {}
    trio.run(function()
      ta.open_loop(function(loop)
        ta.aio_as_trio(function()
          seen.task = asyncio.get_running_loop()
          local fut = loop:create_future()
          loop:call_soon(function()
            seen.callback = asyncio.get_running_loop()
            seen.callback_current = ta.current_loop()
            fut:set_result(true)
          end)
          fut:await()
          ta.trio_as_aio(function()
            seen.trio_child = ta.current_loop()
          end)()
        end)()
        seen.loop = loop
      end)
    end)
    assert.equal(seen.loop, seen.task)
    assert.equal(seen.loop, seen.callback)
    assert.equal(seen.loop, seen.callback_current)
    assert.equal(seen.loop, seen.trio_child)
  end)

  it("returns all of fn's results, nils included", function()
    local n, a, b, c, d = trio.run(function()
      return select("#", ta.open_loop(function() return 1, nil, "three", nil end)),
        ta.open_loop(function() return 1, nil, "three", nil end)
    end)
    assert.equal(4, n)
    assert.equal(1, a)
    assert.is_nil(b)
    assert.equal("three", c)
    assert.is_nil(d)
  end)

  it("the loop is closed once open_loop has returned", function()
    local loop = trio.run(function()
      return ta.open_loop(function(l) return l end)
    end)
    assert.is_true(loop:is_closed())
    assert.is_false(loop:is_running())
  end)

  it("raises an argument error for a non-function", function()
    local e = errof(trio.run, function() ta.open_loop(42) end)
    assert_has(e, "open_loop")
  end)

  it("raises FlavorError when called from an asyncio task", function()
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local ok, err = pcall(ta.open_loop, function() end)
        assert(not ok)
        return err
      end)()
    end)
    assert.is_true(ta.FlavorError:is(e))
  end)
end)

describe("open_loop: on exit", function()
  it("callbacks already queued still run before open_loop returns", function()
    local log = {}
    trio.run(function()
      ta.open_loop(function(loop)
        loop:call_soon(function() log[#log + 1] = "cb1" end)
        loop:call_soon(function(x) log[#log + 1] = x end, "cb2")
      end)
      log[#log + 1] = "returned"
    end)
    assert.same({ "cb1", "cb2", "returned" }, log)
  end)

  it("pending asyncio tasks are cancelled and awaited, their cleanup may await", function()
    local log, task = {}, nil
    trio.run(function()
      ta.open_loop(function(loop)
        task = loop:create_task(function()
          log[#log + 1] = "started"
          local _, e = pcall(asyncio.sleep, 100)
          log[#log + 1] = asyncio.CancelledError:is(e) and "got CancelledError" or ("other: " .. tostring(e))
          asyncio.sleep(0.01)
          log[#log + 1] = "cleanup slept"
          asyncio.sleep(0)
          log[#log + 1] = "cleanup done"
          error(e, 0)
        end)
        trio.sleep(0.01)
      end)
      log[#log + 1] = "returned"
    end)
    assert.same({ "started", "got CancelledError", "cleanup slept", "cleanup done", "returned" }, log)
    assert.is_true(task:done())
    assert.is_true(task:cancelled())
  end)

  it("a pending task that swallows the cancellation ends with its value", function()
    local task
    trio.run(function()
      ta.open_loop(function(loop)
        task = loop:create_task(function()
          pcall(asyncio.sleep, 100)
          asyncio.sleep(0)
          return "kept"
        end)
        trio.sleep(0.01)
      end)
    end)
    assert.is_true(task:done())
    assert.is_false(task:cancelled())
    assert.equal("kept", task:result())
  end)

  it("Trio tasks started from asyncio (run_trio_task) are cancelled and awaited", function()
    local log = {}
    trio.run(function()
      ta.open_loop(function(loop)
        ta.aio_as_trio(function()
          loop:run_trio_task(function()
            log[#log + 1] = "trio started"
            local _, e = pcall(trio.sleep_forever)
            log[#log + 1] = trio.Cancelled:is(e) and "trio cancelled" or ("other: " .. tostring(e))
            trio.CancelScope { shield = true }:run(trio.sleep, 0.01)
            log[#log + 1] = "trio cleanup done"
            error(e, 0)
          end)
          asyncio.sleep(0.01)
        end)()
      end)
      log[#log + 1] = "returned"
    end)
    assert.same({ "trio started", "trio cancelled", "trio cleanup done", "returned" }, log)
  end)

  it("Trio tasks started through run_trio are cancelled and awaited; the future ends cancelled", function()
    local log, fut = {}, nil
    trio.run(function()
      ta.open_loop(function(loop)
        ta.aio_as_trio(function()
          fut = loop:run_trio(function()
            local _, e = pcall(trio.sleep_forever)
            log[#log + 1] = "trio cancelled"
            trio.CancelScope { shield = true }:run(trio.sleep, 0.01)
            log[#log + 1] = "trio cleanup done"
            error(e, 0)
          end)
          asyncio.sleep(0.01)
        end)()
      end)
      log[#log + 1] = "returned"
    end)
    assert.same({ "trio cancelled", "trio cleanup done", "returned" }, log)
    assert.is_true(fut:done())
    assert.is_true(fut:cancelled())
  end)

  it("runs the steps in order: callbacks, asyncio tasks, Trio tasks, close", function()
    local log = {}
    local the_loop
    trio.run(function()
      ta.open_loop(function(loop)
        the_loop = loop
        loop:create_task(function()
          local _, e = pcall(asyncio.sleep, 100)
          asyncio.sleep(0.005)
          log[#log + 1] = "aio cleanup (closed=" .. tostring(loop:is_closed()) .. ")"
          error(e, 0)
        end)
        ta.aio_as_trio(function()
          loop:run_trio_task(function()
            local _, e = pcall(trio.sleep_forever)
            trio.CancelScope { shield = true }:run(trio.sleep, 0.005)
            log[#log + 1] = "trio cleanup (closed=" .. tostring(loop:is_closed()) .. ")"
            error(e, 0)
          end)
        end)()
        trio.sleep(0.01)
        loop:call_soon(function() log[#log + 1] = "queued callback" end)
      end)
      log[#log + 1] = "closed=" .. tostring(the_loop:is_closed())
    end)
    assert.same({
      "queued callback",
      "aio cleanup (closed=false)",
      "trio cleanup (closed=false)",
      "closed=true",
    }, log)
  end)

  it("an error in the body propagates after the cleanup", function()
    local log = {}
    local ok, e = pcall(trio.run, function()
      ta.open_loop(function(loop)
        loop:create_task(function()
          local _, err = pcall(asyncio.sleep, 100)
          asyncio.sleep(0.005)
          log[#log + 1] = "aio cleanup"
          error(err, 0)
        end)
        ta.aio_as_trio(function()
          loop:run_trio_task(function()
            local _, err = pcall(trio.sleep_forever)
            trio.CancelScope { shield = true }:run(trio.sleep, 0.005)
            log[#log + 1] = "trio cleanup"
            error(err, 0)
          end)
        end)()
        trio.sleep(0.005)
        error("body failed", 0)
      end)
    end)
    assert.is_false(ok)
    assert.equal("body failed", e)
    assert.same({ "aio cleanup", "trio cleanup" }, log)
  end)

  it("an error object from the body keeps its class and message", function()
    local e = errof(trio.run, function()
      ta.open_loop(function() error(MyError("custom")) end)
    end)
    assert.is_true(MyError:is(e))
    assert.equal("custom", e.message)
  end)

  it("the error can be caught around open_loop inside the same run", function()
    local r = trio.run(function()
      local ok, e = pcall(ta.open_loop, function() error("inner", 0) end)
      return (ok and "no error" or e) .. " / still running"
    end)
    assert.equal("inner / still running", r)
  end)

  it("a cancelled open_loop still cleans up both flavors", function()
    local log = {}
    local caught = trio.run(function()
      local scope = trio.move_on_after(0.02, function()
        ta.open_loop(function(loop)
          loop:create_task(function()
            local _, e = pcall(asyncio.sleep, 100)
            asyncio.sleep(0)
            log[#log + 1] = "aio cleanup"
            error(e, 0)
          end)
          ta.aio_as_trio(function()
            loop:run_trio_task(function()
              local _, e = pcall(trio.sleep_forever)
              log[#log + 1] = "trio cleanup"
              error(e, 0)
            end)
          end)()
          trio.sleep_forever()
        end)
      end)
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.same({ "aio cleanup", "trio cleanup" }, log)
  end)
end)

describe("several loops", function()
  it("nested loops are distinct; the outer one is current again after the inner closes", function()
    local seen = {}
    trio.run(function()
      ta.open_loop(function(outer)
        ta.open_loop(function(inner)
          seen.inner_running = asyncio.get_running_loop()
          seen.inner_task = ta.aio_as_trio(function() return asyncio.get_running_loop() end)()
          seen.inner = inner
        end)
        seen.outer = outer
        seen.outer_running = asyncio.get_running_loop()
        seen.outer_task = ta.aio_as_trio(function() return asyncio.get_running_loop() end)()
        seen.inner_closed = seen.inner:is_closed()
        seen.outer_closed = outer:is_closed()
      end)
    end)
    assert.are_not.equal(seen.outer, seen.inner)
    assert.equal(seen.inner, seen.inner_running)
    assert.equal(seen.inner, seen.inner_task)
    assert.equal(seen.outer, seen.outer_running)
    assert.equal(seen.outer, seen.outer_task)
    assert.is_true(seen.inner_closed)
    assert.is_false(seen.outer_closed)
  end)

  it("closing the inner loop does not touch the outer loop's tasks", function()
    local log = {}
    trio.run(function()
      ta.open_loop(function(outer)
        local t = outer:create_task(function()
          for i = 1, 3 do asyncio.sleep(0.002); log[#log + 1] = "outer tick " .. i end
          return "outer done"
        end)
        ta.open_loop(function(inner)
          inner:create_task(function()
            local _, e = pcall(asyncio.sleep, 100)
            log[#log + 1] = "inner task cancelled"
            error(e, 0)
          end)
          trio.sleep(0)
        end)
        local r = ta.run_aio_future(t)
        log[#log + 1] = r
        assert(not t:cancelled())
      end)
    end)
    assert.is_not_nil(index_of(log, "inner task cancelled"))
    assert.equal("outer done", log[#log])
    for i = 1, 3 do assert.is_not_nil(index_of(log, "outer tick " .. i)) end
  end)

  it("side-by-side loops interleave, each task and callback sees its own loop", function()
    local result = {}
    trio.run(function()
      trio.open_nursery(function(n)
        for _, name in ipairs { "A", "B" } do
          n:start_soon(function()
            ta.open_loop(function(loop)
              local r = { loop = loop, ok = 0 }
              result[name] = r
              for _ = 1, 5 do
                local from_task = ta.aio_as_trio(function()
                  asyncio.sleep(0)
                  return asyncio.get_running_loop()
                end)()
                local fut = loop:create_future()
                loop:call_soon(function() fut:set_result(asyncio.get_running_loop()) end)
                local from_cb = ta.run_aio_future(fut)
                if from_task == loop and from_cb == loop and ta.current_loop() == loop then
                  r.ok = r.ok + 1
                end
                trio.sleep(0)
              end
            end)
          end)
        end
      end)
    end)
    assert.are_not.equal(result.A.loop, result.B.loop)
    assert.equal(5, result.A.ok)
    assert.equal(5, result.B.ok)
  end)

  it("one side-by-side loop failing does not lose the other loop's cleanup", function()
    local log = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          ta.open_loop(function(loop)
            loop:create_task(function()
              local _, err = pcall(asyncio.sleep, 100)
              log[#log + 1] = "B cleanup"
              error(err, 0)
            end)
            trio.sleep_forever()
          end)
        end)
        n:start_soon(function()
          ta.open_loop(function()
            trio.sleep(0.01)
            error("A failed", 0)
          end)
        end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.equal("A failed", e.exceptions[1])
    assert.same({ "B cleanup" }, log)
  end)
end)

describe("a closed loop", function()
  local function closed_loop()
    return trio.run(function()
      return ta.open_loop(function(loop) return loop end)
    end)
  end

  for _, c in ipairs {
    { "call_soon", function(l) l:call_soon(function() end) end },
    { "call_later", function(l) l:call_later(0.1, function() end) end },
    { "call_at", function(l) l:call_at(l:time() + 0.1, function() end) end },
    { "call_soon_threadsafe", function(l) l:call_soon_threadsafe(function() end) end },
    { "create_task", function(l) l:create_task(function() end) end },
  } do
    it(c[1] .. " raises 'Event loop is closed'", function()
      local loop = closed_loop()
      local e = errof(c[2], loop)
      assert_has(e, "Event loop is closed")
    end)
  end

  it("run_aio_coroutine raises 'Event loop is closed' in a task that outlived the loop", function()
    local e = trio.run(function()
      local err
      local loop_closed = trio.Event()
      trio.open_nursery(function(n)
        ta.open_loop(function()
          -- The child inherits this context (the loop) and outlives it.
          n:start_soon(function()
            loop_closed:wait()
            local ok, x = pcall(ta.run_aio_coroutine, function() return 1 end)
            err = ok and "no error" or x
          end)
        end)
        loop_closed:set()
      end)
      return err
    end)
    assert_has(e, "Event loop is closed")
  end)

  it("run_until_complete and run_forever on an open_loop loop raise 'This is not a sync loop'", function()
    local e1, e2 = trio.run(function()
      return ta.open_loop(function(loop)
        local _, a = pcall(loop.run_until_complete, loop, function() end)
        local _, b = pcall(loop.run_forever, loop)
        return a, b
      end)
    end)
    assert_has(e1, "This is not a sync loop")
    assert_has(e2, "This is not a sync loop")
  end)

  it("run_until_complete and run_forever on a closed open_loop loop still say 'This is not a sync loop'", function()
    local loop = trio.run(function() return ta.open_loop(function(l) return l end) end)
    assert_has(errof(loop.run_until_complete, loop, function() end), "This is not a sync loop")
    assert_has(errof(loop.run_forever, loop), "This is not a sync loop")
  end)

  it("close() while the loop is running raises an error saying to stop it first", function()
    local e, still_open = trio.run(function()
      return ta.open_loop(function(loop)
        local ok, err = pcall(loop.close, loop)
        assert(not ok)
        return err, not loop:is_closed()
      end)
    end)
    assert_has(e, "stop")
    assert.is_true(still_open)
  end)

  it("close() from an asyncio task of the loop raises too", function()
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local loop = asyncio.get_running_loop()
        local ok, err = pcall(loop.close, loop)
        assert(not ok)
        return err
      end)()
    end)
    assert_has(e, "running")
  end)
end)

-- A regression here makes open_loop's shielded exit wait forever, which
-- no cancellation can end: these tests run in a process of their own.
local isolated = require("conformance.trio_asyncio_helpers").isolated

describe("loop:stop() and wait_stopped() on an open_loop loop", function()
  it("stop() from a call_soon callback: aio_as_trio still works, a second stop() returns, open_loop exits", function()
    isolated(10, function()
      local trio, asyncio, ta = require "trio", require "asyncio", require "trio_asyncio" -- luacheck: ignore
      local log = {}
      trio.run(function()
        local scope = trio.move_on_after(5, ta.open_loop, function(loop)
          local stopped = trio.Event()
          loop:call_soon(function()
            loop:stop()
            stopped:set()
          end)
          stopped:wait()
          loop:wait_stopped()
          log[#log + 1] = "running=" .. tostring(loop:is_running())
          log[#log + 1] = ta.aio_as_trio(function() asyncio.sleep(0.001) return "aio works" end)()
          local ev = loop:stop()
          ev:wait()
          log[#log + 1] = "second stop returned"
          loop:synchronize()
        end)
        log[#log + 1] = "exited, cancelled_caught=" .. tostring(scope.cancelled_caught)
      end)
      assert.same({ "running=false", "aio works", "second stop returned",
        "exited, cancelled_caught=false" }, log)
    end)
  end)

  it("stop() returns a trio.Event set once the callbacks queued before it have run", function()
    isolated(10, function()
      local trio, ta = require "trio", require "trio_asyncio" -- luacheck: ignore
      local log = {}
      trio.run(function()
        trio.fail_after(5, ta.open_loop, function(loop)
          local ev
          loop:call_soon(function()
            log[#log + 1] = ("cb1: set=%s running=%s"):format(ev:is_set(), loop:is_running())
          end)
          ev = loop:stop()
          log[#log + 1] = "set at once: " .. tostring(ev:is_set())
          assert.equal(ev, loop:stop()) -- the same event again
          loop:call_soon(function()
            log[#log + 1] = ("cb2: set=%s running=%s"):format(ev:is_set(), loop:is_running())
          end)
          ev:wait()
          loop:synchronize()
          log[#log + 1] = "stopped"
        end)
      end)
      assert.same({ "set at once: false", "cb1: set=false running=true",
        "cb2: set=true running=false", "stopped" }, log)
    end)
  end)

  it("stop(event) sets the given trio.Event; stop() after the loop ended sets it at once", function()
    isolated(10, function()
      local trio, ta = require "trio", require "trio_asyncio" -- luacheck: ignore
      trio.run(function()
        local the_loop
        trio.fail_after(5, ta.open_loop, function(loop)
          the_loop = loop
          local h = trio.Event()
          assert.equal(h, loop:stop(h))
          h:wait()
        end)
        local late = trio.Event()
        the_loop:stop(late)
        assert.is_true(late:is_set())
      end)
    end)
  end)

  it("after stop(), close() is allowed in the block and open_loop exits", function()
    isolated(10, function()
      local trio, ta = require "trio", require "trio_asyncio" -- luacheck: ignore
      trio.run(function()
        local closed = trio.fail_after(5, ta.open_loop, function(loop)
          loop:stop():wait()
          loop:close()
          return loop:is_closed()
        end)
        assert.is_true(closed)
      end)
    end)
  end)

  it("run_trio on a loop the block closed raises RuntimeError naming run_trio and starts nothing", function()
    isolated(10, function()
      local trio, ta = require "trio", require "trio_asyncio" -- luacheck: ignore
      local errs = require "trio.errors" -- (a new Lua state: the file's upvalues are not here)
      trio.run(function()
        local started = false
        local ok, e = trio.fail_after(5, ta.open_loop, function(loop)
          loop:stop():wait()
          loop:close()
          return pcall(loop.run_trio, loop, function() started = true end)
        end)
        trio.sleep(0.001)
        assert.is_false(ok)
        assert.is_true(errs.RuntimeError:is(e))
        assert.equal("run_trio: Event loop is closed", e.message)
        assert.is_false(started)
      end)
    end)
  end)

  it("a stop() asked for while the block ends has its event set once open_loop returns", function()
    local ev
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        loop:create_task(function()
          local _, e = pcall(asyncio.sleep, 10)
          ev = loop:stop() -- in the cleanup, after the shutdown's synchronize
          error(e, 0)
        end)
        trio.sleep(0.001)
      end)
    end)
    assert.is_true(ev:is_set())
  end)

  it("wait_stopped() in another task returns when open_loop ends", function()
    local log = {}
    trio.run(function()
      trio.fail_after(5, trio.open_nursery, function(n)
        local loop = n:start(function(task_status)
          ta.open_loop(function(l)
            task_status:started(l)
            trio.sleep(0.01)
          end)
          log[#log + 1] = "open_loop returned"
        end)
        loop:wait_stopped()
        log[#log + 1] = "wait_stopped returned"
      end)
    end)
    assert.same({ "open_loop returned", "wait_stopped returned" }, log)
  end)

  it("wait_stopped() is Trio-flavored and only for open_loop loops", function()
    local sync = ta.new_event_loop()
    local e = errof(trio.run, function() sync:wait_stopped() end)
    sync:close()
    assert_has(e, "wait_stopped")
  end)
end)

describe("errors reaching the default exception handler", function()
  it("an error in an asyncio callback makes open_loop raise it", function()
    local log = {}
    local e = errof(trio.run, function()
      ta.open_loop(function(loop)
        loop:call_soon(function() error(MyError("callback failed")) end)
        local _, err = pcall(trio.sleep, 5)
        log[#log + 1] = trio.Cancelled:is(err) and "body cancelled" or "body not cancelled"
        error(err, 0)
      end)
    end)
    assert.is_true(MyError:is(e))
    assert.equal("callback failed", e.message)
    assert.same({ "body cancelled" }, log)
  end)

  it("a plain string error in a callback comes out too", function()
    local e = errof(trio.run, function()
      ta.open_loop(function(loop)
        loop:call_later(0.001, function() error("cb string error", 0) end)
        trio.sleep(5)
      end)
    end)
    assert_has(e, "cb string error")
  end)

  it("an error in a callback queued just before exit is not lost", function()
    local e = errof(trio.run, function()
      ta.open_loop(function(loop)
        loop:call_soon(function() error("late callback error", 0) end)
      end)
    end)
    assert_has(e, "late callback error")
  end)

  it("a never-retrieved task error makes open_loop raise it", function()
    local e = errof(trio.run, function()
      ta.open_loop(function(loop)
        do
          local t = loop:create_task(function() error(MyError("never retrieved")) end)
          loop:synchronize()
          trio.sleep(0.001)
          assert(t:done())
        end
        collectgarbage("collect")
        collectgarbage("collect")
        trio.sleep(0.01)
      end)
    end)
    assert.is_true(MyError:is(e))
    assert.equal("never retrieved", e.message)
  end)

  it("after open_loop has returned, the default handler writes the context to stderr", function()
    local loop = trio.run(function() return ta.open_loop(function(l) return l end) end)
    local out = {}
    local real = io.stderr
    io.stderr = { write = function(_, ...) for _, x in ipairs { ... } do out[#out + 1] = tostring(x) end end } -- luacheck: ignore
    local ok, err = pcall(loop.call_exception_handler, loop, { message = "reported after close" })
    io.stderr = real -- luacheck: ignore
    assert(ok, err)
    assert_has(table.concat(out), "reported after close")
  end)

  it("a custom exception handler receives the error and open_loop returns normally", function()
    local got
    local r = trio.run(function()
      return ta.open_loop(function(loop)
        loop:set_exception_handler(function(_l, ctx) got = ctx.exception end)
        loop:call_soon(function() error("handled", 0) end)
        loop:synchronize()
        trio.sleep(0)
        return "fine"
      end)
    end)
    assert.equal("fine", r)
    assert_has(got, "handled")
  end)
end)

describe("trio_asyncio.run", function()
  it("runs fn with its arguments Trio-flavored inside an open loop and returns its results", function()
    local a, b, flavor, has_loop = ta.run(function(x, y)
      trio.sleep(0)
      return x + y, x .. y, ta.current_flavor(), asyncio.get_running_loop() == ta.current_loop()
    end, 2, 3)
    assert.equal(5, a)
    assert.equal("23", b)
    assert.equal("trio", flavor)
    assert.is_true(has_loop)
  end)

  it("raises fn's error after cleanup", function()
    local log = {}
    local e = errof(ta.run, function()
      asyncio.get_running_loop():create_task(function()
        local _, err = pcall(asyncio.sleep, 10)
        log[#log + 1] = "cleanup"
        error(err, 0)
      end)
      trio.sleep(0.001)
      error(MyError("run failed"))
    end)
    assert.is_true(MyError:is(e))
    assert.same({ "cleanup" }, log)
  end)

  it("can be called again after it returned", function()
    for i = 1, 3 do
      assert.equal(i, ta.run(function() return ta.aio_as_trio(function() return i end)() end))
    end
  end)
end)

describe("current_flavor", function()
  it("is nil outside any run", function()
    local f = ta.current_flavor()
    assert.is_nil(f)
  end)

  it("is 'trio' in Trio tasks and 'asyncio' in asyncio tasks", function()
    local seen = {}
    ta.run(function()
      seen.root = ta.current_flavor()
      trio.open_nursery(function(n)
        n:start_soon(function() seen.child = ta.current_flavor() end)
      end)
      ta.aio_as_trio(function()
        seen.aio = ta.current_flavor()
        seen.aio_after_sleep = (asyncio.sleep(0) or true) and ta.current_flavor()
        ta.trio_as_aio(function() seen.trio_from_aio = ta.current_flavor() end)()
        local t = asyncio.create_task(function() seen.aio_child = ta.current_flavor() end)
        t:await()
      end)()
      seen.root_after = ta.current_flavor()
    end)
    assert.same({
      root = "trio", child = "trio", aio = "asyncio", aio_after_sleep = "asyncio",
      trio_from_aio = "trio", aio_child = "asyncio", root_after = "trio",
    }, seen)
  end)

  it("is 'trio' in plain trio.run without a loop", function()
    assert.equal("trio", trio.run(function() return ta.current_flavor() end))
  end)

  it("is nil again after a run ended", function()
    ta.run(function() end)
    local f = ta.current_flavor()
    assert.is_nil(f)
  end)
end)

describe("open_loop in a scope already cancelled", function()
  -- (found by the fuzzer, seeds 3, 18, 72 and 97: nursery:start of the
  -- service nursery raised Cancelled before the shutdown that stops the
  -- shielded driver was reached, so open_loop's nursery waited forever)
  it("raises Cancelled into the scope, which catches it: the body never runs, the loop is closed", function()
    isolated(10, function()
      local trio, ta = require "trio", require "trio_asyncio" -- luacheck: ignore
      local log = {}
      trio.run(function()
        local scope = trio.CancelScope()
        trio.open_nursery(function(n)
          n:start_soon(function()
            scope:run(ta.open_loop, function()
              log[#log + 1] = "body ran"
              trio.sleep(1)
            end)
            log[#log + 1] = "cancelled_caught=" .. tostring(scope.cancelled_caught)
          end)
          scope:cancel() -- before the child's first step
        end)
        trio.move_on_after(0, ta.open_loop, function() log[#log + 1] = "past deadline: body ran" end)
        log[#log + 1] = "after"
      end)
      assert.same({ "cancelled_caught=true", "after" }, log)
    end)
  end)
end)
