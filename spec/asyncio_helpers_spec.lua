-- asyncio helpers: sleep, gather, wait_for, wait, as_completed, shield,
-- timeout and ensure_future.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local assert_has = support.assert_has

local CancelledError, TimeoutError = asyncio.CancelledError, asyncio.TimeoutError

local function catch(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return e
end

--- A task that sleeps d seconds, logs name, and returns value.
local function sleeper(log, name, d, value)
  return asyncio.create_task(function()
    asyncio.sleep(d)
    log[#log + 1] = name
    return value
  end)
end

describe("asyncio.sleep", function()
  it("returns its result argument (nil by default)", function()
    local r = asyncio.run(function()
      return { asyncio.sleep(0.001, "res"), asyncio.sleep(0, "zero"), asyncio.sleep(0.001) }
    end)
    assert.same({ "res", "zero" }, r)
  end)

  it("waits at least the delay", function()
    local elapsed = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      asyncio.sleep(0.02)
      return loop:time() - t0
    end)
    assert.is_true(elapsed >= 0.019, "slept " .. elapsed)
    assert.is_true(elapsed < 2)
  end)

  it("sleepers wake in order of their deadlines", function()
    local log = {}
    asyncio.run(function()
      local ts = { sleeper(log, "c", 0.03), sleeper(log, "a", 0.01), sleeper(log, "b", 0.02) }
      for _, t in ipairs(ts) do t:await() end
    end)
    assert.same({ "a", "b", "c" }, log)
  end)

  it("sleep(0) lets other tasks run", function()
    local log = {}
    asyncio.run(function()
      local t = asyncio.create_task(function() log[#log + 1] = "other" end)
      log[#log + 1] = "before"
      asyncio.sleep(0)
      log[#log + 1] = "after"
      t:await()
    end)
    assert.same({ "before", "other", "after" }, log)
  end)

  it("returns its result argument after a delay", function()
    assert.equal("later", asyncio.run(function() return asyncio.sleep(0.001, "later") end))
  end)

  it("a negative delay behaves like sleep(0)", function()
    assert.equal("neg", asyncio.run(function() return asyncio.sleep(-1, "neg") end))
  end)

  it("a cancelled sleep raises CancelledError", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      t:cancel()
      assert.is_true(CancelledError:is(catch(t.await, t)))
    end)
  end)

  it("a cancelled sleep wakes at once, with the message, and the task can sleep again", function()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local t = asyncio.create_task(function()
        local t0 = loop:time()
        local e = catch(asyncio.sleep, 10)
        local waited = loop:time() - t0
        return e, waited, asyncio.sleep(0.001, "again")
      end)
      asyncio.sleep(0.001)
      t:cancel("wake up")
      local e, waited, again = t:await()
      assert.is_true(CancelledError:is(e))
      assert.equal("wake up", e.message)
      assert.is_true(waited < 5, "waited " .. waited)
      assert.equal("again", again)
    end)
  end)

  it("a task that cancels itself and then sleeps is cancelled at once", function()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      local t
      t = asyncio.create_task(function()
        t:cancel()
        asyncio.sleep(10)
      end)
      assert.is_true(CancelledError:is(catch(t.await, t)))
      assert.is_true(loop:time() - t0 < 5)
    end)
  end)

  it("a sleeping task nobody holds is kept until it wakes", function()
    local log = {}
    asyncio.run(function()
      for i = 1, 3 do
        asyncio.create_task(function()
          local v = asyncio.sleep(0.01 * i, i)
          log[#log + 1] = v
        end)
      end
      asyncio.sleep(0)
      collectgarbage()
      collectgarbage()
      asyncio.sleep(0.05)
    end)
    assert.same({ 1, 2, 3 }, log)
  end)

  it("a sleep and a call_later with the same deadline wake in the order they were armed", function()
    local log = {}
    local loop = asyncio.new_event_loop()
    local t = loop:create_task(function()
      loop:call_later(0.01, function() log[#log + 1] = "handle first" end)
      asyncio.sleep(0.01)
      log[#log + 1] = "task"
    end)
    local later
    loop:call_soon(function()
      later = loop:call_later(0.01, function() log[#log + 1] = "handle after" end)
    end)
    loop:run_until_complete(t)
    loop:run_until_complete(function() asyncio.sleep(0.02) end)
    loop:close()
    assert.is_false(later:cancelled())
    assert.same({ "handle first", "task", "handle after" }, log)
  end)

  it("closing the loop while a task sleeps leaves the task pending, then collectable", function()
    local loop = asyncio.new_event_loop()
    local ctxs = {}
    loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
    local t = loop:create_task(function() asyncio.sleep(10) end)
    loop:run_until_complete(function() asyncio.sleep(0) end)
    loop:close()
    assert.is_false(t:done())
    t = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.equal(1, #ctxs)
    assert_has(ctxs[1].message, "Task was destroyed but it is pending!")
  end)

  it("rejects NaN and non-numbers", function()
    asyncio.run(function()
      assert_has(catch(asyncio.sleep, 0 / 0), "sleep")
      assert_has(catch(asyncio.sleep, "1"), "sleep")
    end)
  end)
end)

describe("asyncio.gather", function()
  it("returns the results in argument order, whatever the completion order", function()
    local log = {}
    local r = asyncio.run(function()
      return asyncio.gather(sleeper(log, "slow", 0.02, "S"), sleeper(log, "fast", 0.001, "F"),
        function() return "fn" end)
    end)
    assert.same({ "fast", "slow" }, log)
    assert.equal(3, r.n)
    assert.same({ "S", "F", "fn" }, { r[1], r[2], r[3] })
  end)

  it("accepts futures, tasks and functions", function()
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      loop:call_soon(function() fut:set_result("future") end)
      local t = asyncio.create_task(function() return "task" end)
      return asyncio.gather(fut, t, function() asyncio.sleep(0); return "function" end)
    end)
    assert.same({ "future", "task", "function" }, { r[1], r[2], r[3] })
  end)

  -- The loop iteration of each event is asyncio's: a child's done callbacks
  -- run in the iteration after it finished, gather's among them in the order
  -- they were added, and the awaiting task resumes in the iteration after
  -- gather's callback for the last child (the callbacks that only count a
  -- child are not queued, which must not show).
  it("completes in the loop iteration asyncio completes it in", function()
    local log = {}
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local ticks, resumed = 0, false
      local function tick()
        ticks = ticks + 1
        log[#log + 1] = "tick" .. ticks
        if not resumed then loop:call_soon(tick) end
      end
      local t1 = asyncio.create_task(asyncio.sleep, 0)
      local t2 = asyncio.create_task(function() asyncio.sleep(0); asyncio.sleep(0) end)
      local t3 = asyncio.create_task(asyncio.sleep, 0)
      t1:add_done_callback(function() log[#log + 1] = "t1 done" end)
      t2:add_done_callback(function() log[#log + 1] = "t2 done" end)
      local done = loop:create_future()
      done:set_result("done")
      loop:call_soon(tick)
      local r = asyncio.gather(done, t1, t2, t3, t1)
      assert.equal("done", r[1])
      resumed = true
      log[#log + 1] = "gathered " .. r.n
    end)
    assert.same({ "tick1", "tick2", "t1 done", "tick3", "t2 done", "tick4", "gathered 5", "tick5" }, log)
  end)

  it("with nothing to gather returns an empty list", function()
    local r = asyncio.run(function() return asyncio.gather() end)
    assert.equal(0, #r)
  end)

  it("a future passed twice counts once, pending or already done", function()
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local pending, done = loop:create_future(), loop:create_future()
      done:set_result("D")
      loop:call_soon(function() pending:set_result("P") end)
      return asyncio.gather(pending, done, pending, done)
    end)
    assert.equal(4, r.n)
    assert.same({ "P", "D", "P", "D" }, { r[1], r[2], r[3], r[4] })
  end)

  it("a child with several results contributes its first", function()
    local r = asyncio.run(function()
      return asyncio.gather(function() return 1, 2, 3 end, function() end)
    end)
    assert.equal(2, r.n)
    assert.equal(1, r[1])
    assert.is_nil(r[2])
  end)

  it("rejects what is not awaitable, and the futures passed with it stay usable", function()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      fut:set_result("ok")
      assert_has(catch(asyncio.gather, fut, 42), "bad argument to 'gather' (Future, Task or function expected, got number)")
      local r = asyncio.gather(fut, fut)
      assert.same({ "ok", "ok" }, { r[1], r[2] })
    end)
  end)

  it("takes only a plain table last as its options; an object there is an awaitable", function()
    asyncio.run(function()
      local r = asyncio.gather(function() error("bad", 0) end, { return_exceptions = true })
      assert.equal(1, r.n)
      assert.equal("bad", r[1])
      local obj = setmetatable({}, { __index = {} })
      assert_has(catch(asyncio.gather, function() end, obj),
        "bad argument to 'gather' (Future, Task or function expected, got table)")
    end)
  end)

  it("keeps nil results in place (n field)", function()
    local r = asyncio.run(function()
      return asyncio.gather(function() return nil end, function() return 2 end)
    end)
    assert.equal(2, r.n)
    assert.is_nil(r[1])
    assert.equal(2, r[2])
  end)

  it("an error propagates to the caller; the other children are not cancelled", function()
    local log = {}
    asyncio.run(function()
      local slow = sleeper(log, "slow", 0.02, "S")
      local e = catch(asyncio.gather, function()
        asyncio.sleep(0.001)
        error("child failed", 0)
      end, slow)
      assert.equal("child failed", e)
      assert.is_false(slow:cancelled())
      assert.equal("S", slow:await())
    end)
    assert.same({ "slow" }, log)
  end)

  it("return_exceptions puts errors (and cancellations) in the result list", function()
    local r = asyncio.run(function()
      local victim = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.get_running_loop():call_later(0.005, function() victim:cancel() end)
      return asyncio.gather(function() return 1 end, function() error("bad", 0) end, victim,
        { return_exceptions = true })
    end)
    assert.equal(3, r.n)
    assert.equal(1, r[1])
    assert.equal("bad", r[2])
    assert.is_true(CancelledError:is(r[3]))
  end)

  it("a cancelled child makes gather raise CancelledError", function()
    asyncio.run(function()
      local victim = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.get_running_loop():call_later(0.005, function() victim:cancel() end)
      local e = catch(asyncio.gather, victim, function() return 1 end)
      assert.is_true(CancelledError:is(e))
    end)
  end)

  it("cancelling the task awaiting gather cancels its children", function()
    local log = {}
    asyncio.run(function()
      local c1 = asyncio.create_task(function()
        local _, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "c1 " .. tostring(CancelledError:is(e))
        error(e, 0)
      end)
      local c2 = asyncio.create_task(function()
        local _, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "c2 " .. tostring(CancelledError:is(e))
        error(e, 0)
      end)
      local outer = asyncio.create_task(function() return asyncio.gather(c1, c2) end)
      asyncio.sleep(0.005)
      outer:cancel()
      assert.is_true(CancelledError:is(catch(outer.await, outer)))
      assert.is_true(CancelledError:is(catch(c1.await, c1)))
      assert.is_true(CancelledError:is(catch(c2.await, c2)))
      assert.is_true(c1:cancelled() and c2:cancelled())
    end)
    table.sort(log)
    assert.same({ "c1 true", "c2 true" }, log)
  end)
end)

describe("asyncio.wait_for", function()
  it("returns the results when in time", function()
    local r = table.pack(asyncio.run(function()
      return asyncio.wait_for(function() asyncio.sleep(0.001); return 1, 2 end, 5)
    end))
    assert.same({ n = 2, 1, 2 }, r)
  end)

  it("on timeout raises asyncio.TimeoutError and cancels the inner task", function()
    local log = {}
    asyncio.run(function()
      local inner = asyncio.create_task(function()
        local _, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "inner cancelled " .. tostring(CancelledError:is(e))
        error(e, 0)
      end)
      local e = catch(asyncio.wait_for, inner, 0.01)
      assert.is_true(TimeoutError:is(e), tostring(e))
      assert.is_true(inner:cancelled())
      assert.is_false(asyncio.current_task():cancelled())
      assert.equal(0, asyncio.current_task():cancelling())
    end)
    assert.same({ "inner cancelled true" }, log)
  end)

  it("the inner error propagates unchanged", function()
    asyncio.run(function()
      local err = errors.RuntimeError("inner err")
      assert.equal(err, catch(asyncio.wait_for, function() error(err) end, 1))
    end)
  end)

  it("timeout nil waits as long as it takes", function()
    assert.equal("late", asyncio.run(function()
      return asyncio.wait_for(function() asyncio.sleep(0.01); return "late" end, nil)
    end))
  end)

  it("with a done future and timeout 0 returns its result", function()
    assert.equal(3, asyncio.run(function()
      local fut = asyncio.get_running_loop():create_future()
      fut:set_result(3)
      return asyncio.wait_for(fut, 0)
    end))
  end)

  it("cancelling the caller cancels the inner task and raises CancelledError, not TimeoutError", function()
    asyncio.run(function()
      local inner = asyncio.create_task(function() asyncio.sleep(10) end)
      local caller = asyncio.create_task(function() return asyncio.wait_for(inner, 5) end)
      asyncio.sleep(0.005)
      caller:cancel()
      local e = catch(caller.await, caller)
      assert.is_true(CancelledError:is(e))
      assert.is_false(TimeoutError:is(e))
      assert.is_true(inner:cancelled())
    end)
  end)

  it("rejects a NaN timeout", function()
    asyncio.run(function()
      assert_has(catch(asyncio.wait_for, function() end, 0 / 0), "wait_for")
    end)
  end)

  -- issue #11: wait_for(fn, 0) ran fn instead of raising TimeoutError
  it("timeout 0 (or less) with a function: TimeoutError at once, the function never runs", function()
    local ran = false
    asyncio.run(function()
      for _, timeout in ipairs { 0, -1 } do
        local e = catch(asyncio.wait_for, function() ran = true end, timeout)
        assert.is_true(TimeoutError:is(e), tostring(e))
        assert.is_true(CancelledError:is(e.cause))
      end
      asyncio.sleep(0)
    end)
    assert.is_false(ran)
  end)

  it("timeout 0 with a pending task cancels it and waits until it is done", function()
    local log = {}
    asyncio.run(function()
      local t = asyncio.create_task(function()
        local _, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "cleanup"
        asyncio.sleep(0.001) -- cleanup that awaits
        error(e, 0)
      end)
      asyncio.sleep(0)
      local e = catch(asyncio.wait_for, t, 0)
      assert.is_true(TimeoutError:is(e), tostring(e))
      assert.is_true(t:cancelled())
    end)
    assert.same({ "cleanup" }, log)
  end)

  it("a function runs in the calling Task, as asyncio awaits a coroutine there", function()
    asyncio.run(function()
      local me = asyncio.current_task()
      assert.equal(me, asyncio.wait_for(function() return asyncio.current_task() end, 1))
    end)
  end)

  -- issue #11 reported that cancelling the caller "is lost" when the inner
  -- task ignores its cancellation.  Since Python 3.12, wait_for is
  -- `async with timeout(t): return await fut`: the caller's cancel() goes to
  -- the task it awaits, and if that task returns anyway so does wait_for,
  -- with the caller's cancellation request still counted (cancelling()).
  -- (Python 3.11's wait_for raised CancelledError there; CPython's own
  -- test_wait_for_self_cancellation was changed with it.)
  it("cancelling the caller while the inner task ignores its cancellation: the result, as asyncio 3.12+", function()
    asyncio.run(function()
      local inner = asyncio.create_task(function()
        pcall(asyncio.sleep, 0.05)
        return 7
      end)
      local caller = asyncio.create_task(asyncio.wait_for, inner, 5)
      asyncio.sleep(0.01)
      assert.is_true(caller:cancel())
      assert.equal(7, caller:await())
      assert.equal(1, caller:cancelling())
      assert.is_false(caller:cancelled())
    end)
  end)
end)

describe("asyncio.wait", function()
  it("ALL_COMPLETED (default) returns every future as done", function()
    asyncio.run(function()
      local log = {}
      local a, b = sleeper(log, "a", 0.002, 1), sleeper(log, "b", 0.001, 2)
      local done, pending = asyncio.wait({ a, b })
      assert.equal(2, #done)
      assert.equal(0, #pending)
      assert.is_true(a:done() and b:done())
    end)
  end)

  it("FIRST_COMPLETED returns as soon as one is done", function()
    asyncio.run(function()
      local log = {}
      local fast, slow = sleeper(log, "fast", 0.001, 1), sleeper(log, "slow", 10, 2)
      local done, pending = asyncio.wait({ slow, fast }, { return_when = asyncio.FIRST_COMPLETED })
      assert.same({ fast }, done)
      assert.same({ slow }, pending)
      assert.is_false(slow:done())
      slow:cancel()
      catch(slow.await, slow)
    end)
  end)

  it("FIRST_EXCEPTION returns when one fails", function()
    asyncio.run(function()
      local log = {}
      local ok1 = sleeper(log, "ok1", 0.001, 1)
      local bad = asyncio.create_task(function() asyncio.sleep(0.005); error("failed", 0) end)
      local slow = sleeper(log, "slow", 10, 3)
      local done, pending = asyncio.wait({ ok1, bad, slow }, { return_when = asyncio.FIRST_EXCEPTION })
      assert.equal(2, #done)
      assert.same({ slow }, pending)
      assert.equal("failed", bad:exception())
      slow:cancel()
      catch(slow.await, slow)
    end)
  end)

  it("FIRST_EXCEPTION without any failure waits for all", function()
    asyncio.run(function()
      local log = {}
      local done, pending = asyncio.wait({ sleeper(log, "a", 0.001), sleeper(log, "b", 0.003) },
        { return_when = asyncio.FIRST_EXCEPTION })
      assert.equal(2, #done)
      assert.equal(0, #pending)
    end)
  end)

  it("a timeout returns what is done and leaves the rest pending, not cancelled", function()
    asyncio.run(function()
      local log = {}
      local fast, slow = sleeper(log, "fast", 0.001, 1), sleeper(log, "slow", 10, 2)
      local done, pending = asyncio.wait({ fast, slow }, { timeout = 0.02 })
      assert.same({ fast }, done)
      assert.same({ slow }, pending)
      assert.is_false(slow:cancelled())
      slow:cancel()
      catch(slow.await, slow)
    end)
  end)

  it("FIRST_COMPLETED with one already done returns at once", function()
    asyncio.run(function()
      local fut = asyncio.get_running_loop():create_future()
      fut:set_result(1)
      local slow = asyncio.create_task(function() asyncio.sleep(10) end)
      local done, pending = asyncio.wait({ fut, slow }, { return_when = "FIRST_COMPLETED" })
      assert.same({ fut }, done)
      assert.same({ slow }, pending)
      slow:cancel()
      catch(slow.await, slow)
    end)
  end)

  it("rejects an empty list and an unknown return_when", function()
    asyncio.run(function()
      assert_has(catch(asyncio.wait, {}), "wait")
      local t = asyncio.create_task(function() end)
      assert_has(catch(asyncio.wait, { t }, { return_when = "SOMETIMES" }), "wait")
      t:await()
    end)
  end)

  -- issue #11: an already failed future did not end a FIRST_EXCEPTION wait
  it("FIRST_EXCEPTION returns at once when a future has already failed", function()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local bad = asyncio.create_task(function() error("boom") end)
      local slow = asyncio.create_task(asyncio.sleep, 10)
      asyncio.sleep(0)
      assert.is_true(bad:done())
      local t0 = loop:time()
      local done, pending = asyncio.wait({ bad, slow }, { return_when = asyncio.FIRST_EXCEPTION })
      assert.is_true(loop:time() - t0 < 1)
      assert.same({ bad }, done)
      assert.same({ slow }, pending)
      slow:cancel()
      asyncio.wait({ slow })
    end)
  end)

  it("a future listed twice is waited for once and listed once", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() return 1 end)
      local done, pending = asyncio.wait({ t, t })
      assert.same({ t }, done)
      assert.same({}, pending)
    end)
  end)
end)

describe("asyncio.as_completed", function()
  it("yields the futures in completion order", function()
    local r = asyncio.run(function()
      local log = {}
      local aws = { sleeper(log, "c", 0.03, "C"), sleeper(log, "a", 0.01, "A"), sleeper(log, "b", 0.02, "B") }
      local out = {}
      for fut in asyncio.as_completed(aws) do out[#out + 1] = fut:result() end
      return out
    end)
    assert.same({ "A", "B", "C" }, r)
  end)

  it("includes already-done futures and failures", function()
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local done = loop:create_future()
      done:set_result("ready")
      local bad = asyncio.create_task(function() asyncio.sleep(0.005); error("x", 0) end)
      local out = {}
      for fut in asyncio.as_completed({ bad, done }) do
        out[#out + 1] = fut:exception() or fut:result()
      end
      return out
    end)
    assert.same({ "ready", "x" }, r)
  end)

  it("after its timeout yields one TimeoutError future per future not done", function()
    local reported = {}
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) reported[#reported + 1] = ctx.message end)
      local log = {}
      local aws = { sleeper(log, "slow", 10), sleeper(log, "fast", 0.005, "F"), sleeper(log, "slower", 20) }
      local out = {}
      for fut in asyncio.as_completed(aws, { timeout = 0.05 }) do
        local ok, v = pcall(fut.await, fut)
        out[#out + 1] = ok and v or (TimeoutError:is(v) and "timeout" or tostring(v))
      end
      -- the TimeoutError futures count as retrieved: dropped unawaited,
      -- they report nothing
      for _ in asyncio.as_completed(aws, { timeout = 0.001 }) do end
      collectgarbage()
      collectgarbage()
      for _, t in ipairs(aws) do t:cancel() end
      asyncio.sleep(0)
      return out
    end)
    assert.same({ "F", "timeout", "timeout" }, r)
    assert.same({}, reported)
  end)

  it("checks its options", function()
    asyncio.run(function()
      assert_has(catch(asyncio.as_completed, {}, 5), "bad argument #2 to 'as_completed'")
      assert_has(catch(asyncio.as_completed, {}, { timeout = "x" }), "timeout must be a number or nil")
      -- no futures: nothing to wait for, even with a timeout
      for _ in asyncio.as_completed({}, { timeout = 0 }) do error("no futures were given") end
    end)
  end)
end)

describe("asyncio.shield", function()
  it("returns the inner result when nobody cancels", function()
    assert.equal("inner", asyncio.run(function()
      return asyncio.shield(function() asyncio.sleep(0.001); return "inner" end)
    end))
  end)

  it("protects the inner task from the caller's cancellation", function()
    asyncio.run(function()
      local inner = asyncio.create_task(function()
        asyncio.sleep(0.01)
        return "finished anyway"
      end)
      local caller = asyncio.create_task(function() return asyncio.shield(inner) end)
      asyncio.sleep(0.001)
      caller:cancel()
      assert.is_true(CancelledError:is(catch(caller.await, caller)))
      assert.is_false(inner:cancelled())
      assert.equal("finished anyway", inner:await())
    end)
  end)

  it("the inner error reaches the caller", function()
    asyncio.run(function()
      assert.equal("shielded error", catch(asyncio.shield, function()
        asyncio.sleep(0)
        error("shielded error", 0)
      end))
    end)
  end)

  it("cancelling the inner task itself cancels the caller", function()
    asyncio.run(function()
      local inner = asyncio.create_task(function() asyncio.sleep(10) end)
      local caller = asyncio.create_task(function() return asyncio.shield(inner) end)
      asyncio.sleep(0.001)
      inner:cancel()
      assert.is_true(CancelledError:is(catch(caller.await, caller)))
    end)
  end)
end)

describe("asyncio.timeout", function()
  it("a deadline already past cancels before a task that only yielded runs again", function()
    asyncio.run(function()
      for _, d in ipairs { 0, -11 } do
        local e = catch(asyncio.timeout, d, asyncio.sleep, 0)
        assert.is_true(TimeoutError:is(e), tostring(e))
      end
    end)
  end)

  it("returns fn's results when in time", function()
    local r = table.pack(asyncio.run(function()
      return asyncio.timeout(1, function(a, b)
        asyncio.sleep(0.001)
        return a, b
      end, "x", "y")
    end))
    assert.same({ n = 2, "x", "y" }, r)
  end)

  it("raises TimeoutError when the deadline expires, and the task is usable afterwards", function()
    asyncio.run(function()
      local reached = false
      local e = catch(asyncio.timeout, 0.01, function()
        asyncio.sleep(10)
        reached = true
      end)
      assert.is_true(TimeoutError:is(e), tostring(e))
      assert.is_false(reached)
      assert.equal(0, asyncio.current_task():cancelling())
      assert.equal("ok", asyncio.sleep(0.001, "ok")) -- not cancelled anymore
    end)
  end)

  it("the body may clean up when the deadline expires", function()
    local log = {}
    asyncio.run(function()
      local e = catch(asyncio.timeout, 0.005, function()
        local _, err = pcall(asyncio.sleep, 10)
        log[#log + 1] = "cleanup " .. tostring(CancelledError:is(err))
        asyncio.sleep(0)
        error(err, 0)
      end)
      assert.is_true(TimeoutError:is(e))
    end)
    assert.same({ "cleanup true" }, log)
  end)

  it("a delay of nil means no deadline", function()
    assert.equal(5, asyncio.run(function()
      return asyncio.timeout(nil, function() asyncio.sleep(0.005); return 5 end)
    end))
  end)

  it("errors of the body pass through unchanged", function()
    asyncio.run(function()
      assert.equal("body error", catch(asyncio.timeout, 1, function() error("body error", 0) end))
    end)
  end)

  it("an outer cancellation is not turned into TimeoutError", function()
    asyncio.run(function()
      local t = asyncio.create_task(function()
        return asyncio.timeout(10, function() asyncio.sleep(10) end)
      end)
      asyncio.sleep(0.001)
      t:cancel()
      local e = catch(t.await, t)
      assert.is_true(CancelledError:is(e))
      assert.is_false(TimeoutError:is(e))
    end)
  end)
end)

describe("asyncio.ensure_future", function()
  it("returns futures and tasks unchanged and wraps functions in Tasks", function()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      local task = asyncio.create_task(function() end)
      assert.equal(fut, asyncio.ensure_future(fut))
      assert.equal(task, asyncio.ensure_future(task))
      local wrapped = asyncio.ensure_future(function() return "wrapped" end)
      assert.is_true(asyncio.isfuture(wrapped))
      assert.is_not_nil(wrapped.get_name)
      assert.equal("wrapped", wrapped:await())
      task:await()
    end)
  end)

  it("uses the given loop outside a running loop", function()
    local loop = asyncio.new_event_loop()
    local t = asyncio.ensure_future(function() return 1 end, loop)
    assert.equal(loop, t:get_loop())
    assert.equal(1, loop:run_until_complete(t))
    loop:close()
  end)

  it("rejects other values", function()
    asyncio.run(function()
      assert_has(catch(asyncio.ensure_future, 42), "ensure_future")
    end)
  end)
end)
