-- Cancellation across the bridge, as DESIGN.md 4.3 states it: Trio
-- cancelling an aio_as_trio call, asyncio cancelling on its own, asyncio
-- cancelling a task that awaits a trio_as_aio call / a run_trio future,
-- and a loop closed while tasks of both flavors are pending.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local CancelledError = asyncio.CancelledError

-- Waits until started() is true (at most 5 s), in asyncio or in Trio: the
-- other flavor's task must be running before it is cancelled, and under
-- valgrind no fixed delay is always enough for it to start.
local function aio_wait_until(started)
  local loop = asyncio.get_running_loop()
  local give_up = loop:time() + 5
  while not started() do
    assert(loop:time() < give_up, "the other task did not start within 5 s")
    asyncio.sleep(0.001)
  end
end

local function trio_wait_until(started)
  trio.fail_after(5, function()
    while not started() do trio.sleep(0.001) end
  end)
end

local function kind(e)
  if trio.Cancelled:is(e) then return "trio.Cancelled" end
  if CancelledError:is(e) then return "asyncio.CancelledError" end
  return "other: " .. tostring(e)
end

describe("Trio cancels an aio_as_trio call", function()
  it("the asyncio task gets one CancelledError, cleans up (awaiting), then the caller gets Cancelled", function()
    local log, task = {}, nil
    local caught = ta.run(function()
      local scope = trio.CancelScope()
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope:run(function()
            local _, e = pcall(ta.aio_as_trio(function()
              task = asyncio.current_task()
              local _, err = pcall(asyncio.sleep, 100)
              log[#log + 1] = "aio got " .. kind(err)
              for i = 1, 3 do
                local ok3, err3 = pcall(asyncio.sleep, 0.002)
                log[#log + 1] = ok3 and ("cleanup await " .. i) or ("cleanup interrupted: " .. kind(err3))
              end
              error(err, 0)
            end))
            log[#log + 1] = "trio caller got " .. kind(e)
            error(e, 0)
          end)
        end)
        -- once the asyncio task waits in its sleep (it sets `task` just
        -- before): under valgrind it may start later than any fixed delay
        trio.fail_after(5, function()
          while task == nil do trio.sleep(0.001) end
        end)
        log[#log + 1] = "cancel"
        scope:cancel()
      end)
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.same({
      "cancel", "aio got asyncio.CancelledError",
      "cleanup await 1", "cleanup await 2", "cleanup await 3",
      "trio caller got trio.Cancelled",
    }, log)
    assert.is_true(task:cancelled())
  end)

  -- The deadlines below leave the asyncio task time to start and reach
  -- its wait, even under valgrind: cancelled before it starts, it would
  -- never run (and clean up) at all.
  it("works with move_on_after and a deadline", function()
    local log = {}
    local caught = ta.run(function()
      local scope = trio.move_on_after(0.25, ta.aio_as_trio(function()
        local _, err = pcall(asyncio.sleep, 100)
        asyncio.sleep(0.005)
        log[#log + 1] = "cleanup after " .. kind(err)
        error(err, 0)
      end))
      log[#log + 1] = "after scope"
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.same({ "cleanup after asyncio.CancelledError", "after scope" }, log)
  end)

  it("fail_after around an aio_as_trio call raises TooSlowError after the cleanup", function()
    local log = {}
    local e = errof(ta.run, function()
      trio.fail_after(0.25, ta.aio_as_trio(function()
        local _, err = pcall(asyncio.sleep, 100)
        asyncio.sleep(0)
        log[#log + 1] = "cleanup"
        error(err, 0)
      end))
    end)
    assert.is_true(trio.TooSlowError:is(e))
    assert.same({ "cleanup" }, log)
  end)

  it("if the asyncio code swallows the cancellation, the caller gets its value; Cancelled comes at the next checkpoint", function()
    local log = {}
    local caught = ta.run(function()
      local scope = trio.move_on_after(0.25, function()
        local v = ta.aio_as_trio(function()
          local _, err = pcall(asyncio.sleep, 100)
          log[#log + 1] = "aio swallowed " .. kind(err)
          asyncio.sleep(0)
          return "value despite cancel"
        end)()
        log[#log + 1] = "caller got " .. tostring(v)
        local _, e = pcall(trio.sleep, 0)
        log[#log + 1] = "next checkpoint: " .. kind(e)
        error(e, 0)
      end)
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.same({
      "aio swallowed asyncio.CancelledError",
      "caller got value despite cancel",
      "next checkpoint: trio.Cancelled",
    }, log)
  end)

  it("an already-cancelled scope cancels the call before the asyncio function runs far", function()
    local log = {}
    ta.run(function()
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(function()
        local _, e = pcall(ta.aio_as_trio(function()
          log[#log + 1] = "aio started"
          -- bounded, so that a missed cancellation fails the test instead of hanging it
          local _, err = pcall(asyncio.sleep, 0.2)
          log[#log + 1] = "aio " .. kind(err)
          error(err, 0)
        end))
        log[#log + 1] = "caller " .. kind(e)
      end)
    end)
    assert.equal("caller trio.Cancelled", log[#log])
    for _, l in ipairs(log) do assert.is_nil(l:find("other", 1, true)) end
  end)

  it("cancelling a run_aio_future wait cancels the future", function()
    local fut
    local caught = ta.run(function()
      fut = ta.current_loop():create_future()
      local scope = trio.move_on_after(0.005, ta.run_aio_future, fut)
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.is_true(fut:cancelled())
  end)

  it("the cancellation reaches a Trio task several levels down and comes back as Cancelled", function()
    local log = {}
    local caught = ta.run(function()
      local scope = trio.move_on_after(0.25, ta.aio_as_trio(function()
        local _, err = pcall(ta.trio_as_aio(function()
          local _, e2 = pcall(trio.sleep_forever)
          log[#log + 1] = "inner trio " .. kind(e2)
          trio.CancelScope { shield = true }:run(trio.sleep, 0.002)
          log[#log + 1] = "inner trio cleanup done"
          error(e2, 0)
        end))
        log[#log + 1] = "middle aio " .. kind(err)
        asyncio.sleep(0)
        error(err, 0)
      end))
      log[#log + 1] = "outer"
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
    assert.same({
      "inner trio trio.Cancelled", "inner trio cleanup done",
      "middle aio asyncio.CancelledError", "outer",
    }, log)
  end)
end)

describe("asyncio cancels on its own", function()
  it("the Trio caller gets asyncio.CancelledError and its scope is not marked cancelled", function()
    local log = {}
    ta.run(function()
      local scope = trio.CancelScope()
      local _, e = pcall(scope.run, scope, ta.aio_as_trio(function()
        local me = asyncio.current_task()
        asyncio.get_running_loop():call_later(0.002, function() me:cancel() end)
        asyncio.sleep(100)
      end))
      log[#log + 1] = kind(e)
      log[#log + 1] = "cancel_called=" .. tostring(scope.cancel_called)
      log[#log + 1] = "cancelled_caught=" .. tostring(scope.cancelled_caught)
      trio.sleep(0.001) -- not cancelled: a checkpoint passes
      log[#log + 1] = "checkpoint passed"
    end)
    assert.same({
      "asyncio.CancelledError", "cancel_called=false", "cancelled_caught=false", "checkpoint passed",
    }, log)
  end)

  it("a Task cancelled by another asyncio task surfaces as asyncio.CancelledError through aio_as_trio(task)", function()
    local e = ta.run(function()
      local loop = ta.current_loop()
      local t = loop:create_task(function() asyncio.sleep(100) end)
      loop:create_task(function() asyncio.sleep(0.002); t:cancel() end)
      local ok, err = pcall(ta.aio_as_trio(t))
      assert(not ok)
      trio.sleep(0)
      return err
    end)
    assert.is_true(CancelledError:is(e))
    assert.is_false(trio.Cancelled:is(e))
  end)

  it("run_aio_future of a cancelled Future raises asyncio.CancelledError", function()
    local e = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_soon(function() fut:cancel() end)
      local _, err = pcall(ta.run_aio_future, fut)
      return err
    end)
    assert.is_true(CancelledError:is(e))
  end)

  it("the asyncio.CancelledError can be caught and the Trio task goes on", function()
    local v = ta.run(function()
      local ok = pcall(ta.aio_as_trio(function()
        asyncio.current_task():cancel()
        asyncio.sleep(0)
      end))
      assert(not ok)
      return ta.aio_as_trio(function() asyncio.sleep(0) return "next call works" end)()
    end)
    assert.equal("next call works", v)
  end)
end)

describe("asyncio cancels the task awaiting a trio_as_aio call", function()
  it("the Trio task is cancelled and asyncio sees CancelledError after its cleanup", function()
    local log = {}
    ta.run(function()
      ta.aio_as_trio(function()
        local started = false
        local t = asyncio.create_task(function()
          local _, e = pcall(ta.trio_as_aio(function()
            started = true
            local _, e2 = pcall(trio.sleep_forever)
            log[#log + 1] = "trio " .. kind(e2)
            trio.CancelScope { shield = true }:run(trio.sleep, 0.002)
            log[#log + 1] = "trio cleanup done"
            error(e2, 0)
          end))
          log[#log + 1] = "aio " .. kind(e)
          error(e, 0)
        end)
        aio_wait_until(function() return started end)
        t:cancel()
        local _, e = pcall(t.await, t)
        log[#log + 1] = "awaiter " .. kind(e)
        log[#log + 1] = "task cancelled=" .. tostring(t:cancelled())
      end)()
    end)
    assert.same({
      "trio trio.Cancelled", "trio cleanup done", "aio asyncio.CancelledError",
      "awaiter asyncio.CancelledError", "task cancelled=true",
    }, log)
  end)

  it("asyncio.wait_for timing out a trio_as_aio call cancels the Trio task", function()
    local log = {}
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local _, err = pcall(asyncio.wait_for, ta.trio_as_aio(function()
          local _, e2 = pcall(trio.sleep_forever)
          log[#log + 1] = "trio " .. kind(e2)
          error(e2, 0)
        end), 0.25) -- time for the Trio task to start, even under valgrind
        return err
      end)()
    end)
    assert.is_true(asyncio.TimeoutError:is(e))
    assert.same({ "trio trio.Cancelled" }, log)
  end)

  it("the run_trio future stays pending until the Trio task exits, then ends cancelled", function()
    local log = {}
    ta.run(function()
      ta.aio_as_trio(function()
        local loop = asyncio.get_running_loop()
        local started = false
        local fut = loop:run_trio(function()
          started = true
          local _, e = pcall(trio.sleep_forever)
          log[#log + 1] = "trio " .. kind(e)
          trio.CancelScope { shield = true }:run(trio.sleep, 0.005)
          log[#log + 1] = "trio exits"
          error(e, 0)
        end)
        aio_wait_until(function() return started end)
        fut:cancel()
        log[#log + 1] = "after cancel: done=" .. tostring(fut:done())
        asyncio.sleep(0.001)
        log[#log + 1] = "while unwinding: done=" .. tostring(fut:done())
        local _, e = pcall(fut.await, fut)
        log[#log + 1] = "await " .. kind(e) .. ", cancelled=" .. tostring(fut:cancelled())
      end)()
    end)
    assert.same({
      "after cancel: done=false", "trio trio.Cancelled", "while unwinding: done=false",
      "trio exits", "await asyncio.CancelledError, cancelled=true",
    }, log)
  end)

  it("a Trio task that finishes anyway (shielded) gives the future its result", function()
    local r = ta.run(function()
      return ta.aio_as_trio(function()
        local started = false
        local fut = asyncio.get_running_loop():run_trio(function()
          started = true
          return trio.CancelScope { shield = true }:run(function()
            trio.sleep(0.005)
            return "finished anyway"
          end)
        end)
        aio_wait_until(function() return started end)
        fut:cancel()
        local v = fut:await()
        return { v = v, cancelled = fut:cancelled() }
      end)()
    end)
    assert.same({ v = "finished anyway", cancelled = false }, r)
  end)

  it("a Trio task that catches the cancellation and returns gives the future its result", function()
    local v = ta.run(function()
      return ta.aio_as_trio(function()
        local started = false
        local fut = asyncio.get_running_loop():run_trio(function()
          started = true
          pcall(trio.sleep_forever)
          return "returned after cancel"
        end)
        aio_wait_until(function() return started end)
        fut:cancel()
        return fut:await()
      end)()
    end)
    assert.equal("returned after cancel", v)
  end)

  it("a Trio task that raises while unwinding gives the future that error", function()
    local e, cancelled = ta.run(function()
      return ta.aio_as_trio(function()
        local started = false
        local fut = asyncio.get_running_loop():run_trio(function()
          started = true
          pcall(trio.sleep_forever)
          error("failed while unwinding", 0)
        end)
        aio_wait_until(function() return started end)
        fut:cancel()
        local _, err = pcall(fut.await, fut)
        return err, fut:cancelled()
      end)()
    end)
    assert.equal("failed while unwinding", e)
    assert.is_false(cancelled)
  end)

  it("Cancelled never goes into a run_trio future's ExceptionGroup", function()
    local fut
    trio.run(function()
      trio.fail_after(5, trio.open_nursery, function(n)
        local loop, scope = table.unpack(n:start(function(task_status)
          local scope = trio.CancelScope()
          scope:run(ta.open_loop, function(l)
            task_status:started { l, scope }
            trio.sleep_forever()
          end)
        end))
        fut = loop:run_trio(function()
          trio.open_nursery(function(inner)
            inner:start_soon(trio.sleep_forever)
            pcall(trio.sleep_forever)
            error("raised while cancelled", 0)
          end)
        end)
        trio.testing.wait_all_tasks_blocked()
        scope:cancel() -- the loop's exit cancels the Trio task
      end)
    end)
    local e = fut:exception()
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.equal(1, #e.exceptions)
    assert.equal("raised while cancelled", e.exceptions[1])
  end)

  it("a run_trio future cancelled before its Trio task started never starts it", function()
    local log = {}
    ta.run(function()
      ta.aio_as_trio(function()
        local fut = asyncio.get_running_loop():run_trio(function() log[#log + 1] = "trio task ran" end)
        fut:cancel()
        asyncio.sleep(0.005)
        log[#log + 1] = "cancelled=" .. tostring(fut:cancelled())
      end)()
      trio.sleep(0.002)
    end)
    assert.same({ "cancelled=true" }, log)
  end)

  it("a trio_as_aio call whose task is cancelled before the Trio task started never starts it", function()
    local log = {}
    ta.run(function()
      ta.aio_as_trio(function()
        local t = asyncio.create_task(ta.trio_as_aio(function() log[#log + 1] = "trio ran" end))
        asyncio.sleep(0) -- t starts and awaits the run_trio future
        t:cancel()
        local _, e = pcall(t.await, t)
        log[#log + 1] = "task " .. kind(e)
      end)()
      trio.sleep(0.002)
    end)
    assert.same({ "task asyncio.CancelledError" }, log)
  end)
end)

describe("a loop closed while tasks of both flavors are pending", function()
  it("every pending task of both flavors is cancelled and cleaned up, open_loop returns", function()
    local log = {}
    local r = trio.run(function()
      return ta.open_loop(function(loop)
        local started = 0
        for i = 1, 2 do
          loop:create_task(function()
            started = started + 1
            local _, e = pcall(asyncio.sleep, 100)
            asyncio.sleep(0)
            log[#log + 1] = "aio " .. i .. " " .. kind(e)
            error(e, 0)
          end)
        end
        -- an asyncio task awaiting a Trio task
        loop:create_task(function()
          local _, e = pcall(ta.trio_as_aio(function()
            started = started + 1
            local _, e2 = pcall(trio.sleep_forever)
            log[#log + 1] = "trio under aio " .. kind(e2)
            error(e2, 0)
          end))
          log[#log + 1] = "aio awaiting trio " .. kind(e)
          error(e, 0)
        end)
        ta.aio_as_trio(function()
          loop:run_trio_task(function()
            local _, e = pcall(trio.sleep_forever)
            trio.CancelScope { shield = true }:run(trio.sleep, 0.001)
            log[#log + 1] = "trio service " .. kind(e)
            error(e, 0)
          end)
        end)()
        trio_wait_until(function() return started == 3 end)
        return "body done"
      end)
    end)
    assert.equal("body done", r)
    table.sort(log)
    assert.same({
      "aio 1 asyncio.CancelledError",
      "aio 2 asyncio.CancelledError",
      "aio awaiting trio asyncio.CancelledError",
      "trio service trio.Cancelled",
      "trio under aio trio.Cancelled",
    }, log)
  end)

  it("an asyncio task whose cleanup raises does not stop the other cleanups", function()
    local log = {}
    local ok, e = pcall(trio.run, function()
      ta.open_loop(function(loop)
        local started = 0
        loop:create_task(function()
          started = started + 1
          pcall(asyncio.sleep, 100)
          error("cleanup blew up", 0)
        end)
        loop:create_task(function()
          started = started + 1
          local _, err = pcall(asyncio.sleep, 100)
          asyncio.sleep(0)
          log[#log + 1] = "second cleanup"
          error(err, 0)
        end)
        ta.aio_as_trio(function()
          loop:run_trio_task(function()
            local _, err = pcall(trio.sleep_forever)
            log[#log + 1] = "trio cleanup"
            error(err, 0)
          end)
        end)()
        trio_wait_until(function() return started == 2 end)
      end)
    end)
    table.sort(log)
    assert.same({ "second cleanup", "trio cleanup" }, log)
    -- the failed task's error is never retrieved; whether it is reported at
    -- once or when collected, nothing else is lost.
    if not ok then assert_has(e, "cleanup blew up") end
  end)
end)
