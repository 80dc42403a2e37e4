-- A get or put of an asyncio.Queue that has to wait parks its asyncio Task
-- in a small waiter object of the queue (a qpark, csrc/asyncio/queue.c;
-- ta_aio_park in csrc/asyncio/future.c), with no Future; a Trio task in
-- allow_asyncio mode awaits a Future instead, and both kinds can wait in
-- one deque.  Covered here: the order of mixed waiters, Task:cancel()
-- before and after a wake-up (CPython's queues.py rules), a Task that
-- cancelled itself and then waits, asyncio.run's end, and the Task's and
-- queue's lives (GC) while and after it waits.
local asyncio = require "asyncio"
local trio = require "trio"
local trio_asyncio = require "trio_asyncio"
local support = require "support"
local CancelledError = asyncio.CancelledError

local run = support.aio_run_bounded -- fn in the main Task, 10 seconds at most
local ends_cancelled = support.ends_cancelled

describe("an asyncio.Queue wait parked in the queue", function()
  it("a Task cancelled while parked is skipped by the next put, which wakes the next getter", function()
    local got = run(function()
      local q = asyncio.Queue()
      local out = {}
      local a = asyncio.create_task(function() out[#out + 1] = "a:" .. q:get() end)
      local b = asyncio.create_task(function() out[#out + 1] = "b:" .. q:get() end)
      asyncio.sleep(0) -- both park
      assert.is_true(a:cancel("not needed"))
      q:put_nowait("x") -- a is cancelled but has not run yet: b gets the wake-up
      local a_cancelled = ends_cancelled(a)
      b:await()
      return { a_cancelled, out, q:qsize(), tostring(q) }
    end)
    assert.same({ true, { "b:x" }, 0,
      "Queue (maxsize:0, qsize:0, getters:0, putters:0, unfinished:1)" }, got)
  end)

  it("a putter woken and then cancelled passes its free slot to the next putter", function()
    local got = run(function()
      local q = asyncio.Queue(1)
      q:put_nowait("first")
      local a = asyncio.create_task(function() q:put("a") end)
      local b = asyncio.create_task(function() q:put("b") end)
      asyncio.sleep(0) -- both park, full
      local v = q:get_nowait() -- wakes a...
      a:cancel() -- ...cancelled before it runs
      local a_cancelled = ends_cancelled(a)
      b:await()
      return { v, a_cancelled, q:get_nowait(), q:qsize() }
    end)
    assert.same({ "first", true, "b", 0 }, got)
  end)

  it("a Task that cancelled itself raises CancelledError at its get; the queue stays usable", function()
    local got = run(function()
      local q = asyncio.Queue()
      local seen
      local t = asyncio.create_task(function()
        asyncio.current_task():cancel("self")
        local ok, e = pcall(q.get, q)
        seen = ok and "returned" or CancelledError:is(e) and e.message or tostring(e)
        error(e, 0)
      end)
      local t_cancelled = ends_cancelled(t)
      q:put_nowait(1)
      local later = asyncio.create_task(function() return q:get() end)
      return { t_cancelled, seen, q:qsize(), later:await(), tostring(q) }
    end)
    assert.same({ true, "self", 1, 1,
      "Queue (maxsize:0, qsize:0, getters:0, putters:0, unfinished:1)" }, got)
  end)

  it("Tasks and Trio tasks (allow_asyncio mode) wait in one deque, woken in order", function()
    local got = trio.run(function()
      local out = {}
      local function took(who, v) out[#out + 1] = who .. ":" .. v end
      trio_asyncio.open_loop(function(loop)
        local q = trio_asyncio.run_aio_coroutine(function() return asyncio.Queue() end)
        local function put(v) trio_asyncio.run_aio_coroutine(function() q:put_nowait(v) end) end
        trio.open_nursery(function(nursery)
          local t1 = loop:create_task(function() took("task1", q:get()) end)
          trio.sleep(0.01)
          nursery:start_soon(function()
            trio_asyncio.allow_asyncio(function() took("trio", q:get()) end)
          end)
          trio.sleep(0.01)
          local t2 = loop:create_task(function() took("task2", q:get()) end)
          trio.sleep(0.01)
          out[#out + 1] = tostring(q)
          put(1) -- one item at a time: each goes to the first waiter left
          trio_asyncio.aio_as_trio(function() return t1:await() end)()
          put(2)
          trio.sleep(0.01)
          put(3)
          trio_asyncio.aio_as_trio(function() return t2:await() end)()
        end)
      end)
      return out
    end)
    assert.same({ "Queue (maxsize:0, qsize:0, getters:3, putters:0, unfinished:0)",
      "task1:1", "trio:2", "task2:3" }, got)
  end)

  it("asyncio.run's end cancels a get and a put still parked, each seeing CancelledError", function()
    local seen = {}
    local function record(name, fn, ...)
      local ok, e = pcall(fn, ...)
      seen[name] = ok and "returned" or CancelledError:is(e) and "cancelled" or tostring(e)
      error(e, 0)
    end
    asyncio.run(function()
      local empty, full = asyncio.Queue(), asyncio.Queue(1)
      full:put_nowait("x")
      asyncio.create_task(record, "get", empty.get, empty)
      asyncio.create_task(record, "put", full.put, full, "y")
      asyncio.sleep(0)
    end)
    assert.same({ get = "cancelled", put = "cancelled" }, seen)
  end)

  it("a parked Task nothing else refers to lives while its queue does, and is reported once both go", function()
    local weak = setmetatable({}, { __mode = "v" })
    local got = run(function()
      local q = asyncio.Queue()
      weak.task = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      collectgarbage("collect")
      local alive = weak.task ~= nil -- held by the queue alone
      q:put_nowait("alive")
      return { alive, weak.task:await() }
    end)
    assert.same({ true, "alive" }, got)
    local loop = asyncio.new_event_loop()
    local ctxs = support.collected_task_reports(loop, function()
      asyncio.Queue():get() -- the queue and the Task parked in it are garbage
    end)
    loop:close()
    assert.equal(1, #ctxs)
    assert.equal("Task was destroyed but it is pending!", ctxs[1].message)
  end)

  it("keeps the last Task that waited on a side until another Task waits there", function()
    local weak = setmetatable({}, { __mode = "v" })
    local got = run(function()
      local q = asyncio.Queue()
      local function waits_once(name)
        local t = asyncio.create_task(function() return q:get() end)
        asyncio.sleep(0)
        q:put_nowait(name)
        return t, t:await()
      end
      local first, v1 = waits_once("one")
      weak.first = first
      first = nil -- luacheck: ignore
      for _ = 1, 4 do collectgarbage("collect") end
      local kept = weak.first ~= nil -- the queue's spare waiter still holds it
      local _, v2 = waits_once("two")
      for _ = 1, 4 do collectgarbage("collect") end
      return { v1, kept, v2, weak.first == nil }
    end)
    assert.same({ "one", true, "two", true }, got)
  end)

  it("a Task that ends with an error while its queue keeps it is reported when the queue goes", function()
    local reports = {}
    local loop = asyncio.new_event_loop()
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
    loop:run_until_complete(function()
      local q = asyncio.Queue()
      asyncio.create_task(function()
        q:get()
        error("boom after the get", 0)
      end)
      asyncio.sleep(0)
      q:put_nowait(1)
      asyncio.sleep(0)
      asyncio.sleep(0)
    end)
    for _ = 1, 4 do collectgarbage("collect") end
    loop:close()
    assert.same({ "Task exception was never retrieved" }, reports)
  end)

  it("a put on another loop wakes a Task parked on a closed loop harmlessly; the next getter waits", function()
    local q = asyncio.Queue()
    local weak = setmetatable({}, { __mode = "v" })
    local old = asyncio.new_event_loop()
    old:set_exception_handler(function() end) -- its Task is destroyed pending
    old:run_until_complete(function()
      weak.task = asyncio.create_task(function() q:get() error("never resumed", 0) end)
      asyncio.sleep(0)
    end)
    old:close()
    local got = asyncio.run(function()
      q:put_nowait(1) -- wakes the Task of the closed loop, which never runs
      local t = asyncio.create_task(function() return q:get() end)
      asyncio.sleep(0)
      q:put_nowait(2)
      return { q:qsize(), asyncio.wait_for(t, 5), q:qsize(), weak.task:done() }
    end)
    old = nil -- luacheck: ignore
    q = nil -- luacheck: ignore (it keeps the last Task that waited in a get)
    for _ = 1, 4 do collectgarbage("collect") end
    assert.same({ 1, 1, 1, false }, got)
    assert.is_nil(weak.task)
  end)

  it("one queue waited on by Tasks of two loops in turn wakes each on its own loop", function()
    local q = asyncio.Queue()
    local got = {}
    for round = 1, 3 do
      local loop = asyncio.new_event_loop()
      got[#got + 1] = loop:run_until_complete(function()
        local t = asyncio.create_task(function() return q:get() end)
        asyncio.sleep(0)
        asyncio.get_running_loop():call_soon(function() q:put_nowait(round * 10) end)
        return asyncio.wait_for(t, 5)
      end)
      loop:close()
    end
    assert.same({ 10, 20, 30 }, got)
  end)
end)
