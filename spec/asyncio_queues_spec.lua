-- asyncio.Queue, LifoQueue, PriorityQueue: order, bounds, nowait errors,
-- task_done/join, and the cancellation races of CPython's asyncio/queues.py
-- (a cancelled get loses no item, a cancelled put loses no free slot).
local asyncio = require "asyncio"
local trio = require "trio"
local errors = require "trio.errors"
local queues = require "asyncio.queues"
local sync = require "asyncio.sync"
local support = require "support"
local errof = support.errof

local Queue, LifoQueue, PriorityQueue = queues.Queue, queues.LifoQueue, queues.PriorityQueue
local CancelledError = asyncio.CancelledError

--- Awaits a task, failing (not hanging) if it does not finish within 1 s.
local function within(task)
  return asyncio.wait_for(task, 1)
end

local function ends_cancelled(task)
  local ok, e = pcall(task.await, task)
  return not ok and CancelledError:is(e) and task:cancelled()
end

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

describe("asyncio queues wiring", function()
  it("asyncio exposes the constructors of asyncio.queues once wired", function()
    for _, name in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
      assert.is_function(queues[name], name)
      if asyncio[name] ~= nil then assert.equal(queues[name], asyncio[name], name) end
    end
  end)
end)

describe("asyncio.Queue", function()
  it("is FIFO; qsize, empty, full, maxsize", function()
    local r = asyncio.run(function()
      local q = Queue(3)
      local r = { q.maxsize, q:qsize(), q:empty(), q:full() }
      q:put(1)
      q:put_nowait("two")
      q:put(false)
      r[#r + 1] = q:qsize()
      r[#r + 1] = q:empty()
      r[#r + 1] = q:full()
      r[#r + 1] = q:get()
      r[#r + 1] = q:get_nowait()
      r[#r + 1] = q:get()
      r[#r + 1] = q:empty()
      return r
    end)
    assert.same({ 3, 0, true, false, 3, false, true, 1, "two", false, true }, r)
  end)

  it("maxsize 0 (the default) or negative is unbounded", function()
    local r = asyncio.run(function()
      local q, q2 = Queue(), Queue(-1)
      for i = 1, 1000 do q:put_nowait(i) q2:put_nowait(i) end
      return { q.maxsize, q:full(), q:qsize(), q2:full(), q2:qsize() }
    end)
    assert.same({ 0, false, 1000, false, 1000 }, r)
  end)

  it("keeps FIFO order across wrap-arounds of its storage", function()
    local r = asyncio.run(function()
      local q = Queue()
      local out, n = {}, 0
      for round = 1, 50 do
        for _ = 1, round % 7 + 1 do n = n + 1 q:put_nowait(n) end
        for _ = 1, round % 5 do
          if not q:empty() then out[#out + 1] = q:get_nowait() end
        end
      end
      for _, v in ipairs(drain(q)) do out[#out + 1] = v end
      return { n, out }
    end)
    local expected = {}
    for i = 1, r[1] do expected[i] = i end
    assert.same(expected, r[2])
  end)

  it("put_nowait on a full queue raises QueueFull; get_nowait on an empty one QueueEmpty", function()
    local r = asyncio.run(function()
      local q = Queue(1)
      local e1 = errof(q.get_nowait, q)
      q:put_nowait("x")
      local e2 = errof(q.put_nowait, q, "y")
      return { asyncio.QueueEmpty:is(e1), e1.message, asyncio.QueueFull:is(e2), e2.message, q:qsize() }
    end)
    assert.same({ true, "Queue:get_nowait: the queue is empty", true,
      "Queue:put_nowait: the queue is full", 1 }, r)
  end)

  it("get waits for a put, put waits for a free slot", function()
    local log = {}
    asyncio.run(function()
      local q = Queue(1)
      local consumer = asyncio.create_task(function()
        for _ = 1, 3 do
          local v = q:get()
          log[#log + 1] = "got " .. v
        end
      end)
      asyncio.sleep(0)
      for i = 1, 3 do
        q:put(i)
        log[#log + 1] = "put " .. i
      end
      consumer:await()
    end)
    -- put 1 fills the slot and wakes the getter; put 2 waits until the
    -- consumer has taken 1 (and waits again on the empty queue), and so on
    assert.same({ "put 1", "got 1", "put 2", "got 2", "put 3", "got 3" }, log)
  end)

  it("several getters are served in FIFO order", function()
    local log = {}
    asyncio.run(function()
      local q = Queue()
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = asyncio.create_task(function()
          local v = q:get()
          log[#log + 1] = ("g%d:%s"):format(i, v)
        end)
      end
      asyncio.sleep(0)
      for _, v in ipairs { "a", "b", "c" } do q:put_nowait(v) end
      for i = 1, 3 do within(tasks[i]) end
    end)
    assert.same({ "g1:a", "g2:b", "g3:c" }, log)
  end)

  it("waits again and again on one queue: after a wake-up, a cancelled wait and a shutdown", function()
    local r = asyncio.run(function()
      local q = Queue(1)
      local got = {}
      local getter = function() got[#got + 1] = q:get() end
      for i = 1, 3 do -- each wait after the first takes the future the last one used
        local a = asyncio.create_task(getter)
        asyncio.sleep(0)
        q:put_nowait(i)
        within(a)
      end
      local c = asyncio.create_task(getter) -- cancelled while waiting
      asyncio.sleep(0)
      c:cancel()
      local c_cancelled = ends_cancelled(c)
      local shown = tostring(q)
      local d = asyncio.create_task(getter) -- the next wait still works
      asyncio.sleep(0)
      q:put_nowait(4)
      within(d)
      local e = asyncio.create_task(getter) -- and a shutdown wakes it
      asyncio.sleep(0)
      q:shutdown()
      local err = errof(within, e)
      return { got, c_cancelled, shown, asyncio.QueueShutDown:is(err), err.message }
    end)
    assert.same({ { 1, 2, 3, 4 }, true,
      "Queue (maxsize:1, qsize:0, getters:0, putters:0, unfinished:3)", true,
      "Queue:get: the queue is shut down" }, r)
  end)

  it("waits on the loop that runs it when the last wait was on another loop", function()
    local q = Queue(1)
    for round = 1, 3 do
      local r = asyncio.run(function()
        local a = asyncio.create_task(function() return q:get() end)
        asyncio.sleep(0)
        q:put_nowait(round)
        return within(a)
      end)
      assert.equal(round, r)
    end
  end)

  it("a getter cancelled in the same tick as the put loses no item", function()
    local r = asyncio.run(function()
      local q = Queue()
      local got = {}
      local a = asyncio.create_task(function() local v = q:get() got[#got + 1] = "a:" .. v end)
      local b = asyncio.create_task(function() local v = q:get() got[#got + 1] = "b:" .. v end)
      asyncio.sleep(0)
      q:put_nowait("item") -- wakes a...
      a:cancel()           -- ...which is cancelled before it runs
      local a_cancelled = ends_cancelled(a)
      within(b)            -- the wake-up went on to b
      return { a_cancelled, got, q:qsize() }
    end)
    assert.same({ true, { "b:item" }, 0 }, r)
  end)

  it("a getter cancelled in the same tick as the put keeps the item in the queue when alone", function()
    local r = asyncio.run(function()
      local q = Queue()
      local a = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put_nowait("item")
      a:cancel()
      return { ends_cancelled(a), q:qsize(), q:get_nowait() }
    end)
    assert.same({ true, 1, "item" }, r)
  end)

  it("a cancelled pending get leaves the getter list", function()
    local r = asyncio.run(function()
      local q = Queue()
      local a = asyncio.create_task(function() return q:get() end)
      local b = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      local before = tostring(q):match("getters:(%d+)")
      a:cancel()
      local a_cancelled = ends_cancelled(a)
      local after = tostring(q):match("getters:(%d+)")
      q:put_nowait(42)
      return { before, a_cancelled, after, within(b) }
    end)
    assert.same({ "2", true, "1", 42 }, r)
  end)

  it("a putter cancelled in the same tick as the get passes the free slot on", function()
    local r = asyncio.run(function()
      local q = Queue(1)
      q:put_nowait("first")
      local a = asyncio.create_task(function() q:put("from a") end)
      local b = asyncio.create_task(function() q:put("from b") end)
      asyncio.sleep(0)
      local v = q:get_nowait() -- wakes a...
      a:cancel()               -- ...which is cancelled before it runs
      local a_cancelled = ends_cancelled(a)
      within(b)
      return { v, a_cancelled, drain(q) }
    end)
    assert.same({ "first", true, { "from b" } }, r)
  end)

  it("a woken getter that finds the queue empty again waits again", function()
    local r = asyncio.run(function()
      local q = Queue()
      local a = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put_nowait(1)
      local stolen = q:get_nowait() -- taken before a runs
      asyncio.sleep(0)
      local waiting = not a:done()
      q:put_nowait(2)
      return { stolen, waiting, within(a) }
    end)
    assert.same({ 1, true, 2 }, r)
  end)

  it("task_done and join", function()
    local log = {}
    asyncio.run(function()
      local q = Queue()
      local e0 = errof(q.task_done, q)
      log[#log + 1] = sync.ValueError:is(e0) and e0.message
      q:join() -- nothing unfinished: returns at once
      log[#log + 1] = "joined empty"
      for i = 1, 3 do q:put_nowait(i) end
      local worker = asyncio.create_task(function()
        while true do
          local v = q:get()
          asyncio.sleep(0.001)
          log[#log + 1] = "done " .. v
          q:task_done()
        end
      end)
      q:join()
      log[#log + 1] = "joined"
      worker:cancel()
      ends_cancelled(worker)
      local e = errof(q.task_done, q)
      log[#log + 1] = e.message
    end)
    assert.same({ "Queue:task_done: task_done() called too many times", "joined empty",
      "done 1", "done 2", "done 3", "joined",
      "Queue:task_done: task_done() called too many times" }, log)
  end)

  it("join waits for items put after it started", function()
    local log = {}
    asyncio.run(function()
      local q = Queue()
      q:put_nowait("a")
      local joiner = asyncio.create_task(function() q:join() log[#log + 1] = "joined" end)
      asyncio.sleep(0)
      q:get_nowait()
      q:put_nowait("b")
      q:task_done()
      asyncio.sleep(0.001)
      log[#log + 1] = "one left"
      q:get_nowait()
      q:task_done()
      within(joiner)
    end)
    assert.same({ "one left", "joined" }, log)
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'Queue' (number expected for maxsize, got string)",
      errof(Queue, "1"), 1, true)
    assert.matches("bad argument #1 to 'LifoQueue' (number expected for maxsize, got table)",
      errof(LifoQueue, {}), 1, true)
  end)

  it("get and put from a trio task raise FlavorError naming the method", function()
    local e1, e2 = trio.run(function()
      local q = Queue()
      return errof(q.get, q), errof(q.put, q, 1)
    end)
    assert.is_true(errors.FlavorError:is(e1))
    assert.matches("Queue:get", e1.message, 1, true)
    assert.is_true(errors.FlavorError:is(e2))
    assert.matches("Queue:put", e2.message, 1, true)
  end)

  it("ping-pongs many round trips over two Queue(1)", function()
    local n = asyncio.run(function()
      local req, rep = Queue(1), Queue(1)
      local server = asyncio.create_task(function()
        for _ = 1, 2000 do rep:put(req:get() + 1) end
      end)
      local ok = 0
      for i = 1, 2000 do
        req:put(i)
        if rep:get() == i + 1 then ok = ok + 1 end
      end
      server:await()
      return ok
    end)
    assert.equal(2000, n)
  end)
end)

describe("asyncio.LifoQueue", function()
  it("returns the newest item first", function()
    local r = asyncio.run(function()
      local q = LifoQueue(3)
      for i = 1, 3 do q:put(i) end
      local full = q:full()
      local e = errof(q.put_nowait, q, 4)
      local out = drain(q)
      return { full, e.message, out, errof(q.get_nowait, q).message }
    end)
    assert.same({ true, "LifoQueue:put_nowait: the queue is full", { 3, 2, 1 },
      "LifoQueue:get_nowait: the queue is empty" }, r)
  end)

  it("hands an item to a waiting getter", function()
    local r = asyncio.run(function()
      local q = LifoQueue()
      local t = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put("x")
      return within(t)
    end)
    assert.equal("x", r)
  end)
end)

describe("asyncio.PriorityQueue", function()
  it("returns the smallest item first", function()
    local r = asyncio.run(function()
      local q = PriorityQueue()
      for _, v in ipairs { 5, 1, 4, 2, 3, 9, 0, 7, 6, 8 } do q:put(v) end
      return drain(q)
    end)
    assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, r)
  end)

  it("orders {priority, value} tables by priority, ties in insertion order", function()
    local r = asyncio.run(function()
      local q = PriorityQueue()
      local f = function() end -- values are never compared
      q:put { 2, "b1" }
      q:put { 1, "a1" }
      q:put { 2, "b2", f }
      q:put { 1, "a2" }
      q:put { 3, "c" }
      q:put { 1, "a3" }
      q:put { 2, "b3" }
      local out = {}
      for _, item in ipairs(drain(q)) do out[#out + 1] = item[2] end
      return out
    end)
    assert.same({ "a1", "a2", "a3", "b1", "b2", "b3", "c" }, r)
  end)

  it("sorts a large random load like table.sort (stable on ties)", function()
    local r = asyncio.run(function()
      local q = PriorityQueue()
      local items = {}
      local seed = 12345
      for i = 1, 2000 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        items[i] = { seed % 50, i }
        q:put_nowait(items[i])
        if i % 3 == 0 then q:put_nowait(q:get_nowait()) end -- churn
      end
      local out = drain(q)
      return { items, out }
    end)
    local items, out = r[1], r[2]
    assert.equal(#items, #out)
    for i = 2, #out do
      assert.is_true(out[i - 1][1] <= out[i][1], "priority order at " .. i)
    end
    -- ties keep the order in which they were (last) put: check with a
    -- direct simulation of the same put/get sequence
    local sim, seq = {}, 0
    local function sim_put(item) seq = seq + 1 sim[#sim + 1] = { item, seq } end
    local function sim_get()
      local best = 1
      for i = 2, #sim do
        local a, b = sim[i], sim[best]
        if a[1][1] < b[1][1] or (a[1][1] == b[1][1] and a[2] < b[2]) then best = i end
      end
      return table.remove(sim, best)[1]
    end
    for i = 1, #items do
      sim_put(items[i])
      if i % 3 == 0 then sim_put(sim_get()) end
    end
    for i = 1, #out do assert.equal(sim_get(), out[i], "item " .. i) end
  end)

  it("compares tables with __lt themselves", function()
    local mt = { __lt = function(a, b) return a.w < b.w end }
    local r = asyncio.run(function()
      local q = PriorityQueue()
      for _, w in ipairs { 3, 1, 2 } do q:put(setmetatable({ w = w }, mt)) end
      local out = {}
      for _, item in ipairs(drain(q)) do out[#out + 1] = item.w end
      return out
    end)
    assert.same({ 1, 2, 3 }, r)
  end)

  it("rejects items without a priority, and incomparable priorities, leaving the queue intact", function()
    local r = asyncio.run(function()
      local q = PriorityQueue()
      local e1 = errof(q.put_nowait, q, nil)
      local e2 = errof(q.put_nowait, q, { nil, "v" })
      for _, v in ipairs { 3, 1, 2 } do q:put_nowait({ v, v }) end
      local e3 = errof(q.put_nowait, q, { "high", "v" })
      -- put names itself too
      local e4 = errof(q.put, q, nil)
      local e5 = errof(q.put, q, { "high", "v" })
      local out = {}
      for _, item in ipairs(drain(q)) do out[#out + 1] = item[2] end
      return { e1, e2, e3, e4, e5, out }
    end)
    assert.matches("bad argument #1 to 'PriorityQueue:put_nowait' (item expected, got nil)", r[1], 1, true)
    assert.matches("bad argument #1 to 'PriorityQueue:put_nowait' (table item without a priority: item[1] is nil)",
      r[2], 1, true)
    assert.matches("PriorityQueue:put_nowait: cannot order this item's priority against the queued ones", r[3], 1, true)
    assert.matches("bad argument #1 to 'PriorityQueue:put' (item expected, got nil)", r[4], 1, true)
    assert.matches("PriorityQueue:put: cannot order this item's priority against the queued ones", r[5], 1, true)
    assert.same({ 1, 2, 3 }, r[6])
  end)

  it("is bounded and hands items to waiting getters", function()
    local r = asyncio.run(function()
      local q = PriorityQueue(2)
      local t = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put(5)
      local first = within(t)
      q:put(2)
      q:put(1)
      local e = errof(q.put_nowait, q, 0)
      return { first, q:full(), e.message, drain(q) }
    end)
    assert.same({ 5, true, "PriorityQueue:put_nowait: the queue is full", { 1, 2 } }, r)
  end)
end)

describe("Queue:shutdown", function()
  it("wakes every blocked getter and putter with QueueShutDown", function()
    local r = asyncio.run(function()
      local empty, full = Queue(), Queue(1)
      full:put_nowait("x")
      local tasks = {
        asyncio.create_task(empty.get, empty), asyncio.create_task(empty.get, empty),
        asyncio.create_task(full.put, full, "y"), asyncio.create_task(full.put, full, "z"),
      }
      asyncio.sleep(0)
      empty:shutdown()
      full:shutdown()
      local out = {}
      for i, t in ipairs(tasks) do
        local e = errof(within, t)
        out[i] = asyncio.QueueShutDown:is(e) and e.message or tostring(e)
      end
      out[#out + 1] = full:get() -- what was queued can still be got
      out[#out + 1] = tostring(full):match("shutdown") or "no shutdown in tostring"
      return out
    end)
    assert.same({ "Queue:get: the queue is shut down", "Queue:get: the queue is shut down",
      "Queue:put: the queue is shut down", "Queue:put: the queue is shut down", "x", "shutdown" }, r)
  end)

  it("immediate drops the items, counts them done and ends join()", function()
    local r = asyncio.run(function()
      local q = PriorityQueue()
      for _, v in ipairs { 3, 1, 2 } do q:put_nowait(v) end
      local joiner = asyncio.create_task(q.join, q)
      asyncio.sleep(0)
      local was_done = joiner:done()
      q:shutdown(true)
      within(joiner)
      return { was_done, q:qsize(), asyncio.QueueShutDown:is(errof(q.get_nowait, q)) }
    end)
    assert.same({ false, 0, true }, r)
  end)
end)

describe("asyncio queue objects", function()
  it("check self: a method called on something else names the method and what it got", function()
    for _, new in ipairs { Queue, LifoQueue, PriorityQueue } do
      local q = new()
      for _, m in ipairs { "put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full",
        "task_done", "join", "shutdown" } do
        for _, bad in ipairs { { nil, "nil" }, { {}, "table" }, { asyncio.Event(), "asyncio.Event" } } do
          local ok, e = pcall(q[m], bad[1], 1)
          assert.is_false(ok)
          assert.equal(("bad argument #1 to 'Queue:%s' (asyncio.Queue expected, got %s)"):format(m, bad[2]), e)
        end
      end
    end
  end)

  it("check self's state: a queue-like table holding something else is refused, never used", function()
    local q = Queue(1)
    local mt = getmetatable(q)
    local forged = {
      setmetatable({}, mt), setmetatable({ io.stdout }, mt), setmetatable({ "x" }, mt),
      setmetatable({ asyncio.Event() }, mt),
    }
    for _, bad in ipairs(forged) do
      for _, m in ipairs { "put_nowait", "get_nowait", "qsize", "shutdown" } do
        local ok, e = pcall(q[m], bad, 1)
        assert.is_false(ok)
        assert.equal(("bad argument #1 to 'Queue:%s' (asyncio.Queue expected, got trio_asyncio.Queue)")
          :format(m), e)
      end
    end
    q[1] = io.stdout -- a queue whose state was replaced is refused too
    local ok, e = pcall(q.qsize, q)
    assert.is_false(ok)
    assert.matches("Queue:qsize", e, 1, true)
  end)

  it("show maxsize as a field of every kind, as given", function()
    assert.equal(3, Queue(3).maxsize)
    assert.equal(0, LifoQueue().maxsize)
    assert.equal(2.5, PriorityQueue(2.5).maxsize)
    assert.equal(math.type(2.0), math.type(Queue(2.0).maxsize))
  end)

  it("keep maxsize as given and show it in tostring; reject a maxsize that is no number", function()
    assert.equal(2, Queue(2).maxsize)
    assert.equal(math.type(2), math.type(Queue(2).maxsize))
    assert.equal(2.5, LifoQueue(2.5).maxsize)
    assert.equal(0, PriorityQueue().maxsize)
    assert.equal(math.maxinteger, Queue(math.maxinteger).maxsize)
    assert.equal(math.mininteger, Queue(math.mininteger).maxsize)
    assert.is_false(Queue(math.maxinteger):full())
    assert.equal("LifoQueue (maxsize:2.5, qsize:0, getters:0, putters:0, unfinished:0)",
      tostring(LifoQueue(2.5)))
    assert.matches("bad argument #1 to 'Queue' (number expected for maxsize, got string)",
      select(2, pcall(Queue, "3")), 1, true)
    assert.matches("bad argument #1 to 'PriorityQueue' (number expected for maxsize, got NaN)",
      select(2, pcall(PriorityQueue, 0 / 0)), 1, true)
  end)

  it("join waits again once items are put after everything was done", function()
    local r = asyncio.run(function()
      local q = Queue()
      q:join() -- nothing unfinished: at once
      local r = {}
      for round = 1, 2 do
        q:put_nowait(round)
        local joiner = asyncio.create_task(q.join, q)
        asyncio.sleep(0)
        r[round] = not joiner:done()
        q:get_nowait()
        q:task_done()
        within(joiner)
      end
      r[3] = asyncio.ValueError:is(errof(q.task_done, q))
      return r
    end)
    assert.same({ true, true, true }, r)
  end)
end)
