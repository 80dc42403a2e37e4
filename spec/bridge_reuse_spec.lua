-- What trio_as_aio / loop:run_trio reuse from one call to the next (the
-- task body's cancel scope, csrc/trio/scope.c): a later call must behave as
-- if everything were new, whatever happened to the earlier one (returned,
-- raised, cancelled, its future cancelled once done, a collection between).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

local CancelledError = asyncio.CancelledError

-- Polls (asyncio-flavored) until started() is true: at most 5000 sleeps
-- of a millisecond or more.
local function aio_wait_until(started)
  for _ = 1, 5000 do
    if started() then return end
    asyncio.sleep(0.001)
  end
  error("the Trio task did not start in time")
end

local function in_aio(fn)
  return ta.run(function() return ta.run_aio_coroutine(fn) end)
end

-- trio_as_aio(slow)() in a Task that is cancelled once slow runs: what
-- slow's Trio side and the Task saw.
local function cancelled_call()
  local started, trio_saw = false, nil
  local task = asyncio.create_task(function()
    return ta.trio_as_aio(function()
      started = true
      local ok, e = pcall(trio.sleep, 100)
      trio_saw = ok and "no error" or (trio.Cancelled:is(e) and "Cancelled" or tostring(e))
      error(e, 0)
    end)()
  end)
  aio_wait_until(function() return started end)
  task:cancel()
  local ok, e = pcall(task.await, task)
  return trio_saw, (not ok and CancelledError:is(e)) and "CancelledError" or tostring(e)
end

describe("trio_as_aio calls one after the other", function()
  it("each call's Trio task is cancellable when the one before returned", function()
    local results, saw = in_aio(function()
      local r = {}
      for i = 1, 3 do r[i] = ta.trio_as_aio(function(x) return x * 2 end)(i) end
      return r, { cancelled_call() }
    end)
    assert.same({ 2, 4, 6 }, results)
    assert.same({ "Cancelled", "CancelledError" }, saw)
  end)

  it("a call after one whose Trio task was cancelled starts uncancelled", function()
    local first, second, after = in_aio(function()
      local a = { cancelled_call() }
      local value = ta.trio_as_aio(function()
        trio.sleep(0.001) -- a checkpoint: raises if its scope were still cancelled
        return "ran"
      end)()
      return a, value, { cancelled_call() }
    end)
    assert.same({ "Cancelled", "CancelledError" }, first)
    assert.equal("ran", second)
    assert.same({ "Cancelled", "CancelledError" }, after)
  end)

  it("a call after one that raised returns and is cancellable", function()
    local err, value, saw = in_aio(function()
      local ok, e = pcall(ta.trio_as_aio(function() error("boom", 0) end))
      assert.is_false(ok)
      local v = ta.trio_as_aio(function() trio.sleep(0); return 7 end)()
      return e, v, { cancelled_call() }
    end)
    assert.equal("boom", err)
    assert.equal(7, value)
    assert.same({ "Cancelled", "CancelledError" }, saw)
  end)

  it("a Trio task whose scope was cancelled but that returned leaves the next call uncancelled", function()
    local first, inner_saw, second = in_aio(function()
      local started, saw = false, nil
      local task = asyncio.create_task(function()
        return ta.trio_as_aio(function()
          started = true
          -- shielded: the cancellation of its scope does not reach it, and
          -- it returns without a checkpoint after
          trio.CancelScope { shield = true }:run(trio.sleep, 0.05)
          saw = trio.lowlevel.current_task() ~= nil and "returned"
          return "ignored"
        end)()
      end)
      aio_wait_until(function() return started end)
      task:cancel()
      local ok, e = pcall(task.await, task)
      local v = ta.trio_as_aio(function() trio.sleep(0.001); return "fresh" end)()
      return ok and e or ("raised " .. tostring(e)), saw, v
    end)
    assert.equal("ignored", first)
    assert.equal("returned", inner_saw)
    assert.equal("fresh", second)
  end)

  it("a collection between calls changes nothing", function()
    local values = in_aio(function()
      local r = {}
      for i = 1, 4 do
        r[i] = ta.trio_as_aio(function() trio.sleep(0); return i end)()
        collectgarbage()
        collectgarbage()
      end
      return r
    end)
    assert.same({ 1, 2, 3, 4 }, values)
  end)
end)

describe("trio_as_aio calls on two loops", function()
  local function call_in(loop)
    return ta.run_aio_coroutine(function()
      local v = ta.trio_as_aio(function()
        trio.sleep(0)
        return ta.current_loop()
      end)()
      return v, asyncio.get_running_loop() == loop
    end)
  end

  it("a call in an inner loop after one in the outer loop, and back", function()
    local seen = ta.run(function()
      return ta.open_loop(function(outer)
        local r = {}
        local function check(loop)
          local v, same = call_in(loop)
          r[#r + 1] = v == loop and same
        end
        check(outer)
        ta.open_loop(check) -- the inner loop
        check(outer)
        return r
      end)
    end)
    assert.same({ true, true, true }, seen)
  end)
end)

describe("loop:run_trio futures one after the other", function()
  it("cancelling a future already done does not reach the Trio task of a later one", function()
    local result = ta.run(function()
      local loop = ta.current_loop()
      return ta.run_aio_coroutine(function()
        local fut1 = loop:run_trio(function() return "first" end)
        assert.equal("first", fut1:await())
        local reached = false
        local fut2 = loop:run_trio(function()
          reached = true
          trio.sleep(0.01)
          return "second"
        end)
        aio_wait_until(function() return reached end)
        assert.is_false(fut1:cancel())
        return fut2:await(), fut2:cancelled()
      end)
    end)
    assert.equal("second", result)
  end)

  it("many Trio tasks at once, each cancellable on its own", function()
    local log = ta.run(function()
      local loop = ta.current_loop()
      return ta.run_aio_coroutine(function()
        local futs, started = {}, 0
        for i = 1, 6 do
          futs[i] = loop:run_trio(function()
            started = started + 1
            trio.sleep(i % 2 == 0 and 100 or 0.005)
            return i
          end)
        end
        aio_wait_until(function() return started == 6 end)
        for i = 2, 6, 2 do futs[i]:cancel() end
        local out = {}
        for i = 1, 6 do
          local ok, v = pcall(futs[i].await, futs[i])
          out[i] = ok and v or (CancelledError:is(v) and "cancelled" or tostring(v))
        end
        -- and a call after all that
        out[7] = ta.trio_as_aio(function() trio.sleep(0); return "after" end)()
        return out
      end)
    end)
    assert.same({ 1, "cancelled", 3, "cancelled", 5, "cancelled", "after" }, log)
  end)
end)

describe("Trio tasks waiting on one future", function()
  it("the first waiter, a second one and a done callback all get the outcome", function()
    local log = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      local got = {}
      fut:add_done_callback(function(f) got[#got + 1] = "callback " .. f:result() end)
      trio.open_nursery(function(n)
        for i = 1, 2 do
          n:start_soon(function()
            local v = ta.run_aio_future(fut)
            got[#got + 1] = ("waiter %d %s"):format(i, v)
          end)
        end
        trio.sleep(0.01)
        loop:call_soon(function() fut:set_result("done") end)
      end)
      local again = ta.run_aio_future(fut) -- done already: no wait
      table.sort(got)
      got[#got + 1] = again
      return got
    end)
    assert.same({ "callback done", "waiter 1 done", "waiter 2 done", "done" }, log)
  end)

  it("a waiter that is alone on the future gets its error", function()
    local err = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_soon(function() fut:set_exception(asyncio.InvalidStateError("nope")) end)
      local ok, e = pcall(ta.run_aio_future, fut)
      assert.is_false(ok)
      return e
    end)
    assert.is_true(asyncio.InvalidStateError:is(err))
  end)
end)
