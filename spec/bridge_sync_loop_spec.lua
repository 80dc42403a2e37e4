-- The sync loop: trio_asyncio.new_event_loop() (and asyncio.new_event_loop()
-- once trio_asyncio is loaded) outside any Trio run; run_until_complete
-- again and again, Trio tasks that survive between calls, close().
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local assert_has = support.assert_has

-- Runs fn(loop) with a new sync loop, closing it whatever happens.
local function with_loop(fn, make)
  local loop = (make or ta.new_event_loop)()
  local ok, e = pcall(fn, loop)
  if not loop:is_closed() then loop:close() end
  if not ok then error(e, 0) end
end

describe("the sync loop", function()
  it("run_until_complete can be called again and again", function()
    with_loop(function(loop)
      for i = 1, 5 do
        local v = loop:run_until_complete(function()
          asyncio.sleep(0)
          return i * i
        end)
        assert.equal(i * i, v)
      end
      assert.is_false(loop:is_running())
      assert.is_false(loop:is_closed())
    end)
  end)

  it("run_until_complete accepts a Future", function()
    with_loop(function(loop)
      local fut = loop:create_future()
      loop:call_later(0.002, function() fut:set_result("future value") end)
      assert.equal("future value", loop:run_until_complete(fut))
    end)
  end)

  it("the running loop inside is the sync loop", function()
    with_loop(function(loop)
      local same, current = loop:run_until_complete(function()
        return asyncio.get_running_loop() == loop, ta.current_loop() == loop
      end)
      assert.is_true(same)
      assert.is_true(current)
    end)
  end)

  it("trio_as_aio works inside run_until_complete", function()
    with_loop(function(loop)
      local v = loop:run_until_complete(function()
        return ta.trio_as_aio(function(x) trio.sleep(0.001) return x .. " via trio" end)("value")
      end)
      assert.equal("value via trio", v)
    end)
  end)

  it("a Trio task started through run_trio_task keeps running between calls and close() ends it", function()
    local count, log = 0, {}
    with_loop(function(loop)
      loop:run_until_complete(function()
        asyncio.get_running_loop():run_trio_task(function()
          local _, e = pcall(function()
            while true do trio.sleep(0.001); count = count + 1 end
          end)
          log[#log + 1] = trio.Cancelled:is(e) and "counter cancelled" or ("counter: " .. tostring(e))
          error(e, 0)
        end)
        asyncio.sleep(0.01)
      end)
      local after_first = count
      assert.is_true(after_first >= 1)
      -- between calls the loop is paused: the counter does not move
      local t0 = os.clock()
      while os.clock() - t0 < 0.01 do end
      assert.equal(after_first, count)
      loop:run_until_complete(function() asyncio.sleep(0.02) end)
      assert.is_true(count > after_first, ("count %d after %d"):format(count, after_first))
      assert.same({}, log)
      loop:close()
      assert.same({ "counter cancelled" }, log)
      assert.is_true(loop:is_closed())
    end)
  end)

  it("a Trio task started through trio_as_aio in one call finishes in a later call", function()
    with_loop(function(loop)
      local ev = trio.Event()
      local t = loop:run_until_complete(function()
        local task = asyncio.create_task(ta.trio_as_aio(function() ev:wait(); return "released" end))
        asyncio.sleep(0.001)
        return task
      end)
      assert.is_false(t:done())
      local v = loop:run_until_complete(function()
        asyncio.get_running_loop():call_soon(function() ev:set() end)
        return t:await()
      end)
      assert.equal("released", v)
    end)
  end)

  it("asyncio tasks created in one call keep progressing in the next", function()
    with_loop(function(loop)
      local ticks = 0
      local t = loop:run_until_complete(function()
        return asyncio.create_task(function()
          for _ = 1, 5 do asyncio.sleep(0.001); ticks = ticks + 1 end
          return "ticked"
        end)
      end)
      assert.is_true(ticks < 5)
      assert.equal("ticked", loop:run_until_complete(t))
      assert.equal(5, ticks)
    end)
  end)

  it("run_forever returns after stop() and the loop can run again", function()
    with_loop(function(loop)
      local log = {}
      loop:call_soon(function() log[#log + 1] = "cb" end)
      loop:call_later(0.005, function() log[#log + 1] = "stop"; loop:stop() end)
      loop:run_forever()
      assert.same({ "cb", "stop" }, log)
      assert.equal("again", loop:run_until_complete(function() return "again" end))
    end)
  end)

  it("an error from the function comes out and the loop stays usable", function()
    with_loop(function(loop)
      local ok, e = pcall(loop.run_until_complete, loop, function() asyncio.sleep(0) error("task failed", 0) end)
      assert.is_false(ok)
      assert_has(e, "task failed")
      assert.equal(2, loop:run_until_complete(function() return 2 end))
    end)
  end)

  it("after close(), run_until_complete and call_soon raise 'Event loop is closed'", function()
    local loop = ta.new_event_loop()
    loop:run_until_complete(function() end)
    loop:close()
    local ok1, e1 = pcall(loop.run_until_complete, loop, function() end)
    local ok2, e2 = pcall(loop.call_soon, loop, function() end)
    assert.is_false(ok1)
    assert.is_false(ok2)
    assert_has(e1, "Event loop is closed")
    assert_has(e2, "Event loop is closed")
  end)

  it("close() of a loop that never ran works", function()
    local loop = ta.new_event_loop()
    loop:close()
    assert.is_true(loop:is_closed())
  end)

  it("run_until_complete inside a Trio run raises instead of hanging", function()
    with_loop(function(loop)
      local e = trio.run(function()
        local ok, err = pcall(loop.run_until_complete, loop, function() end)
        assert(not ok)
        return err
      end)
      assert.is_not_nil(e)
      assert.equal(3, loop:run_until_complete(function() return 3 end))
    end)
  end)

  it("run_until_complete from inside the running loop raises", function()
    with_loop(function(loop)
      local e = loop:run_until_complete(function()
        local ok, err = pcall(loop.run_until_complete, loop, function() end)
        assert(not ok)
        return err
      end)
      assert_has(e, "running")
    end)
  end)
end)

describe("asyncio.new_event_loop with trio_asyncio loaded", function()
  it("returns a sync loop where trio_as_aio works and Trio tasks survive between calls", function()
    with_loop(function(loop)
      local ev = trio.Event()
      local log = {}
      loop:run_until_complete(function()
        asyncio.get_running_loop():run_trio_task(function()
          ev:wait()
          log[#log + 1] = "trio task woke"
        end)
      end)
      loop:run_until_complete(function()
        ev:set()
        return ta.trio_as_aio(function() trio.sleep(0.001) end)()
      end)
      assert.same({ "trio task woke" }, log)
    end, asyncio.new_event_loop)
  end)

  it("asyncio.new_event_loop is trio_asyncio.new_event_loop", function()
    assert.equal(ta.new_event_loop, asyncio.new_event_loop)
  end)
end)
