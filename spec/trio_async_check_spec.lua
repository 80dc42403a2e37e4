-- The check every async primitive makes first (ta_async_check_in): inline
-- for a task of the right flavor on its own thread where it can yield;
-- every other case takes the full check, which raises the error, before
-- anything is queued or parked, so the channel and the task stay usable.
-- Memory channels are one of its inline callers.
local trio = require "trio"
local asyncio = require "asyncio"
local trio_asyncio = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local assert_has = support.assert_has

-- After a refused call: a real round trip over the same channels works,
-- and the run ends (nothing was left queued or parked).
local function round_trip(nursery, tx, rx)
  nursery:start_soon(function() tx:send("after") end)
  return rx:receive()
end

describe("async check of a memory channel operation", function()
  it("passes on the task's own thread, also inside pcall", function()
    local got = trio.run(function()
      local tx, rx = trio.open_memory_channel(0)
      local out = {}
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          for i = 1, 3 do assert(pcall(tx.send, tx, i)) end
        end)
        for _ = 1, 3 do
          local ok, v = pcall(rx.receive, rx)
          assert(ok, v)
          out[#out + 1] = v
        end
      end)
      return table.concat(out, ",")
    end)
    assert.equal("1,2,3", got)
  end)

  it("refuses a send where the task cannot yield (a table.sort comparator)", function()
    local e, after = trio.run(function()
      local tx, rx = trio.open_memory_channel(0)
      local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
        tx:send(a)
        return a < b
      end)
      assert(not ok)
      local v
      trio.open_nursery(function(nursery) v = round_trip(nursery, tx, rx) end)
      return err, v
    end)
    assert.is_true(errors.RuntimeError:is(e))
    assert_has(e, "MemorySendChannel:send: cannot suspend the task here")
    assert.equal("after", after)
  end)

  it("refuses a receive from a plain coroutine inside a task", function()
    local e, after = trio.run(function()
      local tx, rx = trio.open_memory_channel(1)
      local co = coroutine.create(function() return rx:receive() end)
      local ok, err = coroutine.resume(co)
      assert(not ok)
      local v
      trio.open_nursery(function(nursery) v = round_trip(nursery, tx, rx) end)
      return err, v
    end)
    assert_has(e, "MemoryReceiveChannel:receive: async function called from a plain Lua coroutine")
    assert.equal("after", after)
  end)

  it("refuses a receive from an asyncio task with a FlavorError", function()
    local tx, rx = trio.run(function() return trio.open_memory_channel(1) end)
    local e = asyncio.run(function()
      local ok, err = pcall(rx.receive, rx)
      assert(not ok)
      return err
    end)
    assert.is_true(trio_asyncio.FlavorError:is(e))
    assert_has(e, "trio-flavored MemoryReceiveChannel:receive called from asyncio task")
    -- the channel still works in a Trio task
    local v = trio.run(function()
      tx:send("later")
      return rx:receive()
    end)
    assert.equal("later", v)
  end)

  it("refuses a send outside trio.run", function()
    local tx = trio.run(function() return trio.open_memory_channel(1) end)
    local ok, e = pcall(tx.send, tx, 1)
    assert.is_false(ok)
    assert_has(e, "MemorySendChannel:send: async function called outside trio.run")
  end)
end)
