-- asyncio.Queue makes its deques of waiters on the first wait and the Event
-- join() waits on on the first join() that has to wait, and a FIFO or LIFO
-- queue with a small integer maxsize keeps its items in slots of its state
-- instead of a table: these specs pin the behaviour on both sides of those
-- choices.
local asyncio = require "asyncio"
local support = require "support"
local errof = support.errof

local Queue = asyncio.Queue
local CancelledError = asyncio.CancelledError

local function within(task) return asyncio.wait_for(task, 1) end

describe("asyncio.Queue objects made on demand", function()
  it("task_done and shutdown before any join() leave join() consistent", function()
    local log = asyncio.run(function()
      local q = Queue()
      local log = {}
      q:put_nowait("a")
      q:get_nowait()
      q:task_done() -- unfinished back to 0 with no Event yet
      q:join() -- at once
      log[#log + 1] = "joined at once"
      q:put_nowait("b")
      q:shutdown(true) -- drops "b", counted done: join() still at once
      q:join()
      log[#log + 1] = "joined after shutdown"
      log[#log + 1] = asyncio.QueueShutDown:is(errof(q.put_nowait, q, "c"))
      return log
    end)
    assert.same({ "joined at once", "joined after shutdown", true }, log)
  end)

  it("two joiners share one Event; a cancelled joiner leaves the other waiting", function()
    local log = asyncio.run(function()
      local q = Queue()
      local log = {}
      q:put_nowait(1)
      local j1 = asyncio.create_task(function() q:join() log[#log + 1] = "j1" end)
      local j2 = asyncio.create_task(function() q:join() log[#log + 1] = "j2" end)
      asyncio.sleep(0)
      j1:cancel()
      asyncio.sleep(0)
      log[#log + 1] = j1:cancelled() and not j2:done()
      local ok, e = pcall(j1.await, j1)
      log[#log + 1] = not ok and CancelledError:is(e)
      q:get_nowait()
      q:task_done()
      within(j2)
      q:put_nowait(2) -- clears the Event again: a new join() waits
      local j3 = asyncio.create_task(function() q:join() log[#log + 1] = "j3" end)
      asyncio.sleep(0)
      log[#log + 1] = not j3:done()
      q:get_nowait()
      q:task_done()
      within(j3)
      return log
    end)
    assert.same({ true, true, "j2", true, "j3" }, log)
  end)

  it("a queue waited on only by getters makes no putter deque, and the other way round", function()
    local got = asyncio.run(function()
      local q = Queue(1)
      local got = {}
      local getter = asyncio.create_task(function() got[#got + 1] = q:get() end)
      asyncio.sleep(0)
      q:put_nowait("x") -- wakes the getter: the getters' deque exists
      within(getter)
      q:put_nowait("y")
      local putter = asyncio.create_task(function() q:put("z") end) -- first putter wait
      asyncio.sleep(0)
      got[#got + 1] = putter:done()
      got[#got + 1] = q:get_nowait()
      within(putter)
      got[#got + 1] = q:get_nowait()
      got[#got + 1] = tostring(q)
      return got
    end)
    assert.same({ "x", false, "y", "z",
      "Queue (maxsize:1, qsize:0, getters:0, putters:0, unfinished:3)" }, got)
  end)
end)

describe("asyncio queues with a small integer maxsize (items in slots)", function()
  -- every maxsize around the slot limit, integer or not, FIFO and LIFO:
  -- the same order, bounds and wrap-around as the table-backed queues
  local function churn(ctor, maxsize)
    local q = ctor(maxsize)
    local out = {}
    local next_in = 0
    for round = 1, 12 do
      while not q:full() and next_in < round * 3 do
        next_in = next_in + 1
        q:put_nowait(next_in)
      end
      out[#out + 1] = q:get_nowait()
      if round % 4 == 0 then
        while not q:empty() do out[#out + 1] = q:get_nowait() end
      end
    end
    return out, q:qsize(), q.maxsize
  end

  for _, maxsize in ipairs { 1, 2, 3, 4, 5, 2.0, 2.5 } do
    it("Queue(" .. tostring(maxsize) .. ") and LifoQueue(" .. tostring(maxsize) .. ") keep their order", function()
      local cap = math.ceil(maxsize)
      -- the model: a plain Lua list used as FIFO / LIFO with the same bound
      local function model(lifo)
        local items, out, next_in = {}, {}, 0
        for round = 1, 12 do
          while #items < cap and next_in < round * 3 do
            next_in = next_in + 1
            items[#items + 1] = next_in
          end
          out[#out + 1] = table.remove(items, lifo and #items or 1)
          if round % 4 == 0 then
            while #items > 0 do out[#out + 1] = table.remove(items, lifo and #items or 1) end
          end
        end
        return out, #items
      end
      local got, left, shown = asyncio.run(function() return churn(Queue, maxsize) end)
      local want, want_left = model(false)
      assert.same(want, got)
      assert.equal(want_left, left)
      assert.equal(maxsize, shown)
      assert.equal(math.type(maxsize), math.type(shown))
      got, left = asyncio.run(function() return churn(asyncio.LifoQueue, maxsize) end)
      want, want_left = model(true)
      assert.same(want, got)
      assert.equal(want_left, left)
    end)
  end

  it("a full Queue(3) refuses put_nowait and holds false and tables as items", function()
    local r = asyncio.run(function()
      local q = Queue(3)
      local t = {}
      q:put_nowait(false)
      q:put_nowait(t)
      q:put_nowait("s")
      local e = support.errof(q.put_nowait, q, "x")
      return { asyncio.QueueFull:is(e), q:get_nowait() == false, q:get_nowait() == t,
        q:get_nowait(), asyncio.QueueEmpty:is(support.errof(q.get_nowait, q)) }
    end)
    assert.same({ true, true, true, "s", true }, r)
  end)

  it("a cancelled get loses no item and a blocked put goes in once a slot frees", function()
    local log = asyncio.run(function()
      local q = Queue(2)
      local log = {}
      local getter = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put_nowait("a") -- wakes the getter...
      getter:cancel() -- ...which is cancelled before it runs: "a" stays
      log[#log + 1] = select(2, pcall(getter.await, getter)) ~= nil and getter:cancelled()
      q:put_nowait("b")
      local putter = asyncio.create_task(function() q:put("c") log[#log + 1] = "put c" end)
      asyncio.sleep(0)
      log[#log + 1] = q:get_nowait()
      within(putter)
      log[#log + 1] = q:get_nowait()
      log[#log + 1] = q:get_nowait()
      return log
    end)
    assert.same({ true, "a", "put c", "b", "c" }, log)
  end)

  it("shutdown(true) drops the items in slots and counts them done", function()
    local r = asyncio.run(function()
      local q = asyncio.LifoQueue(4)
      for i = 1, 4 do q:put_nowait(i) end
      local top = q:get_nowait()
      local joiner = asyncio.create_task(q.join, q)
      q:shutdown(true) -- the three left count as done; `top` is not yet
      asyncio.sleep(0)
      local waiting = not joiner:done()
      q:task_done()
      within(joiner)
      return { top, waiting, q:qsize(), q:empty() }
    end)
    assert.same({ 4, true, 0, true }, r)
  end)
end)

describe("asyncio.Queue deques of waiters (slot 1 apart from the rest)", function()
  it("three getters: the first cancelled, the others served in order", function()
    local log = asyncio.run(function()
      local q = Queue(1)
      local log = {}
      local getters = {}
      for i = 1, 3 do
        getters[i] = asyncio.create_task(function()
          local item = q:get()
          log[#log + 1] = ("g%d:%s"):format(i, item)
        end)
      end
      asyncio.sleep(0)
      getters[1]:cancel() -- leaves slot 1: the two in the table move up
      asyncio.sleep(0)
      log[#log + 1] = tostring(q)
      q:put_nowait("a")
      asyncio.sleep(0)
      q:put_nowait("b")
      within(getters[2])
      within(getters[3])
      log[#log + 1] = getters[1]:cancelled()
      return log
    end)
    assert.same({ "Queue (maxsize:1, qsize:0, getters:2, putters:0, unfinished:0)",
      "g2:a", "g3:b", true }, log)
  end)

  it("three putters: the middle one cancelled, the others put in order", function()
    local got = asyncio.run(function()
      local q = Queue(1)
      q:put_nowait(0)
      local putters = {}
      for i = 1, 3 do putters[i] = asyncio.create_task(function() q:put(i) end) end
      asyncio.sleep(0)
      putters[2]:cancel()
      asyncio.sleep(0)
      local got = {}
      for _ = 1, 3 do
        got[#got + 1] = q:get() -- frees the slot: the next putter goes in
        asyncio.sleep(0)
      end
      within(putters[1])
      within(putters[3])
      got[#got + 1] = putters[2]:cancelled()
      got[#got + 1] = q:qsize()
      return got
    end)
    assert.same({ 0, 1, 3, true, 0 }, got)
  end)

  it("shutdown wakes every waiting getter, each raising QueueShutDown", function()
    local r = asyncio.run(function()
      local q = Queue(2)
      local getters = {}
      for i = 1, 4 do getters[i] = asyncio.create_task(q.get, q) end
      asyncio.sleep(0)
      q:shutdown()
      local r = {}
      for i = 1, 4 do
        local ok, e = pcall(within, getters[i])
        r[i] = not ok and asyncio.QueueShutDown:is(e)
      end
      return r
    end)
    assert.same({ true, true, true, true }, r)
  end)
end)
