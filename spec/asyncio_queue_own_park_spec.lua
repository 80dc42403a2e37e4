-- Each side of an asyncio.Queue has a park of its own in the queue's state
-- (csrc/asyncio/queue.c): the first asyncio Task to wait on that side parks
-- there; a Task that waits on the same side while that park is taken (its
-- Task parked, or woken and not yet run) gets a separate waiter object.
-- Covered here: the hand-over between the two kinds of waiter, in FIFO
-- order, with cancellation after a wake-up, and a long mixed run.
local asyncio = require "asyncio"
local support = require "support"
local errof = support.errof
local run = support.aio_run_bounded -- fn in the main Task, 10 seconds at most

describe("an asyncio.Queue side's own park", function()
  it("a getter waiting while the first is woken but not yet run waits behind it, then the own park serves again", function()
    local got = run(function()
      local q = asyncio.Queue()
      local out = {}
      local a = asyncio.create_task(function() local v = q:get(); out[#out + 1] = "a:" .. v end)
      asyncio.sleep(0) -- a parks in the own park
      q:put_nowait(1) -- wakes a, which has not run yet
      local b = asyncio.create_task(function() local v = q:get(); out[#out + 1] = "b:" .. v end)
      local c = asyncio.create_task(function() local v = q:get(); out[#out + 1] = "c:" .. v end)
      asyncio.sleep(0) -- a takes 1; b and c wait in other waiters
      local mid = tostring(q)
      q:put_nowait(2)
      q:put_nowait(3)
      a:await(); b:await(); c:await()
      local d = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0) -- d waits in the own park again
      local waiting = tostring(q)
      q:put_nowait(4)
      return { out, mid, waiting, d:await(), tostring(q) }
    end)
    assert.same({ { "a:1", "b:2", "c:3" },
      "Queue (maxsize:0, qsize:0, getters:2, putters:0, unfinished:1)",
      "Queue (maxsize:0, qsize:0, getters:1, putters:0, unfinished:3)", 4,
      "Queue (maxsize:0, qsize:0, getters:0, putters:0, unfinished:4)" }, got)
  end)

  it("a getter woken in the own park and then cancelled passes the item to the getter behind it", function()
    local got = run(function()
      local q = asyncio.Queue()
      local a = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0) -- a: the own park
      local b = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0) -- b: another waiter
      q:put_nowait("x") -- wakes a...
      a:cancel() -- ...cancelled before it runs: b gets the wake-up
      local e = errof(a.await, a)
      return { asyncio.CancelledError:is(e), a:cancelled(), b:await(), q:qsize(), tostring(q) }
    end)
    assert.same({ true, true, "x", 0,
      "Queue (maxsize:0, qsize:0, getters:0, putters:0, unfinished:1)" }, got)
  end)

  it("a putter parked in the own park and cancelled leaves the deque; the next putter waits there", function()
    local got = run(function()
      local q = asyncio.Queue(1)
      q:put_nowait("first")
      local function parked_putter(item) -- a Task that waits to put item, once it parked
        local t = asyncio.create_task(function() q:put(item) end)
        asyncio.sleep(0)
        return t
      end
      local a = parked_putter("a") -- in the own park of the putters
      a:cancel()
      local e = errof(a.await, a)
      local after_cancel = tostring(q)
      local b = parked_putter("b") -- in the own park again
      local v = q:get_nowait() -- wakes b
      b:await()
      return { asyncio.CancelledError:is(e), after_cancel, v, q:get_nowait(), q:qsize() }
    end)
    assert.same({ true, "Queue (maxsize:1, qsize:1, getters:0, putters:0, unfinished:1)",
      "first", "b", 0 }, got)
  end)

  it("many producers and consumers on a Queue(1) hand every item over once, in order per producer", function()
    local P, N = 3, 200
    local got = run(function()
      local q = asyncio.Queue(1)
      local tasks, seen = {}, {}
      for p = 1, P do
        tasks[#tasks + 1] = asyncio.create_task(function()
          for i = 1, N do q:put({ p, i }) end
        end)
        tasks[#tasks + 1] = asyncio.create_task(function()
          for _ = 1, N do
            local item = q:get()
            seen[#seen + 1] = item
            if item[2] % 7 == 0 then asyncio.sleep(0) end
          end
        end)
      end
      asyncio.gather(table.unpack(tasks))
      return { seen = seen, q = tostring(q) }
    end)
    local last, count = {}, 0
    for _, item in ipairs(got.seen) do
      local p, i = item[1], item[2]
      assert.equal((last[p] or 0) + 1, i)
      last[p] = i
      count = count + 1
    end
    assert.equal(P * N, count)
    assert.equal("Queue (maxsize:1, qsize:0, getters:0, putters:0, unfinished:600)", got.q)
  end)
end)
