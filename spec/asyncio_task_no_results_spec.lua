-- A Task (or Future) that finishes with no results keeps no list of them:
-- every way of reading its outcome still gives no values (result, await,
-- a Trio task waiting on it), and gather reports nil for it.
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local core = require "trio_asyncio.core"

local function count(...) return select("#", ...) end

describe("a Task that returns nothing", function()
  it("gives no values to result() and await, again and again", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(0) end)
      assert.equal(0, count(t:await()))
      assert.equal(0, count(t:await()))
      assert.equal(0, count(t:result()))
      assert.is_true(t:done())
      assert.is_nil(t:exception())
    end)
  end)

  it("gives no values to a Task that awaits it before it is done", function()
    asyncio.run(function()
      local done = asyncio.create_task(function() asyncio.sleep(0) end)
      local waiter = asyncio.create_task(function() return count(done:await()), "after" end)
      assert.same({ 0, "after" }, { waiter:await() })
    end)
  end)

  it("is nil in gather's list, which still counts it", function()
    local r = asyncio.run(function()
      return asyncio.gather(function() end, function() return 1, 2 end, function() return "x" end)
    end)
    assert.equal(3, r.n)
    assert.same({ nil, 1, "x" }, { r[1], r[2], r[3] })
  end)

  it("gives no values to a Trio task that waits for it", function()
    local n = ta.run(function()
      return count(ta.aio_as_trio(function() asyncio.sleep(0) end)())
    end)
    assert.equal(0, n)
  end)
end)

describe("a Future set with no results", function()
  it("gives no values to result() and to its awaiting Task", function()
    asyncio.run(function()
      local fut = asyncio.get_running_loop():create_future()
      local waiter = asyncio.create_task(function() return count(fut:await()) end)
      asyncio.sleep(0)
      core.future_set_results(fut)
      assert.equal(0, waiter:await())
      assert.equal(0, count(fut:result()))
    end)
  end)
end)
