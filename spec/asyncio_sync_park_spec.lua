-- An asyncio.Lock, Event or Semaphore wait parks its asyncio Task in a
-- small waiter object (a sync_park, csrc/asyncio/sync.c; ta_aio_park in
-- csrc/asyncio/future.c), with no Future; a Trio task in allow_asyncio
-- mode awaits a Future instead, and both kinds wait in one FIFO.  Covered
-- here: FIFO order of mixed waiters, Task:cancel() before and after a
-- wake-up (CPython's locks.py rules: a wake-up is passed on, a
-- semaphore's value given back), a Task that cancelled itself and then
-- waits, asyncio.run's end, a wake onto a closed loop, and the Task's life
-- (GC) while it waits.
local asyncio = require "asyncio"
local trio = require "trio"
local trio_asyncio = require "trio_asyncio"
local support = require "support"
local CancelledError = asyncio.CancelledError

local run = support.aio_run_bounded -- fn in the main Task, 10 seconds at most
local ends_cancelled = support.ends_cancelled

describe("an asyncio.Lock, Event or Semaphore wait parked in the object", function()
  it("a Lock waiter woken and then cancelled passes the lock to the next waiter", function()
    local got = run(function()
      local lock, out = asyncio.Lock(), {}
      lock:acquire()
      local a = asyncio.create_task(function() lock:acquire() out[#out + 1] = "a" lock:release() end)
      local b = asyncio.create_task(function() lock:acquire() out[#out + 1] = "b" lock:release() end)
      asyncio.sleep(0) -- both park
      local parked = tostring(lock)
      lock:release() -- wakes a...
      local woken = tostring(lock) -- (a stays a waiter until it runs)
      a:cancel() -- ...cancelled before it runs
      local a_cancelled = ends_cancelled(a)
      b:await()
      return { parked, woken, a_cancelled, out, tostring(lock) }
    end)
    assert.same({ "asyncio.Lock (locked, waiters:2)", "asyncio.Lock (unlocked, waiters:2)", true, { "b" },
      "asyncio.Lock (unlocked, waiters:0)" }, got)
  end)

  it("a Task cancelled while parked leaves the middle of the FIFO; the others keep their order", function()
    local got = run(function()
      local lock, out = asyncio.Lock(), {}
      lock:acquire()
      local tasks = {}
      for _, name in ipairs({ "a", "b", "c", "d" }) do
        tasks[name] = asyncio.create_task(function()
          lock:acquire()
          out[#out + 1] = name
          asyncio.sleep(0)
          lock:release()
        end)
      end
      asyncio.sleep(0)
      tasks.b:cancel()
      tasks.c:cancel()
      local b_cancelled, c_cancelled = ends_cancelled(tasks.b), ends_cancelled(tasks.c)
      local left = tostring(lock)
      lock:release()
      tasks.a:await()
      tasks.d:await()
      return { b_cancelled, c_cancelled, left, out, lock:locked() }
    end)
    assert.same({ true, true, "asyncio.Lock (locked, waiters:2)", { "a", "d" }, false }, got)
  end)

  it("a Semaphore waiter woken and then cancelled gives its value back to the next waiter", function()
    local got = run(function()
      local sem, out = asyncio.Semaphore(0), {}
      local a = asyncio.create_task(function() sem:acquire() out[#out + 1] = "a" end)
      local b = asyncio.create_task(function() sem:acquire() out[#out + 1] = "b" end)
      asyncio.sleep(0)
      sem:release() -- a is woken and takes the value...
      local woken = tostring(sem)
      a:cancel() -- ...then gives it back, and b is woken with it
      local a_cancelled = ends_cancelled(a)
      b:await()
      return { woken, a_cancelled, out, tostring(sem) }
    end)
    assert.same({ "asyncio.Semaphore (value:0, waiters:2)", true, { "b" },
      "asyncio.Semaphore (value:0, waiters:0)" }, got)
  end)

  it("a Semaphore(3) lets 3 of 200 Tasks in at a time, in arrival order", function()
    local got = run(function()
      local sem, inside, most, order = asyncio.Semaphore(3), 0, 0, {}
      local tasks = {}
      for i = 1, 200 do
        tasks[i] = asyncio.create_task(function()
          sem:acquire()
          order[#order + 1] = i
          inside = inside + 1
          if inside > most then most = inside end
          asyncio.sleep(0)
          inside = inside - 1
          sem:release()
        end)
      end
      asyncio.gather(table.unpack(tasks))
      local in_order = true
      for i = 1, 200 do in_order = in_order and order[i] == i end
      return { most, #order, in_order, tostring(sem) }
    end)
    assert.same({ 3, 200, true, "asyncio.Semaphore (value:3, waiters:0)" }, got)
  end)

  it("Event:set() wakes 1,000 parked Tasks in the order they waited", function()
    local got = run(function()
      local ev, order, tasks = asyncio.Event(), {}, {}
      for i = 1, 1000 do
        tasks[i] = asyncio.create_task(function()
          assert(ev:wait() == true)
          order[#order + 1] = i
        end)
      end
      asyncio.sleep(0)
      local before = tostring(ev)
      ev:set()
      asyncio.gather(table.unpack(tasks))
      local in_order = #order == 1000
      for i = 1, #order do in_order = in_order and order[i] == i end
      return { before, in_order, tostring(ev) }
    end)
    assert.same({ "asyncio.Event (unset, waiters:1000)", true, "asyncio.Event (set, waiters:0)" }, got)
  end)

  it("a Task that cancelled itself raises CancelledError at its acquire; the Lock stays usable", function()
    local got = run(function()
      local lock, seen = asyncio.Lock(), nil
      lock:acquire()
      local t = asyncio.create_task(function()
        asyncio.current_task():cancel("self")
        local ok, e = pcall(lock.acquire, lock)
        seen = ok and "returned" or CancelledError:is(e) and e.message or tostring(e)
        error(e, 0)
      end)
      local t_cancelled = ends_cancelled(t)
      local state = tostring(lock)
      lock:release()
      local later = asyncio.create_task(function() lock:acquire() return lock:locked() end)
      return { t_cancelled, seen, state, later:await() }
    end)
    assert.same({ true, "self", "asyncio.Lock (locked, waiters:0)", true }, got)
  end)

  it("Tasks and Trio tasks (allow_asyncio mode) wait on one Lock in order; a Trio waiter cancelled leaves it", function()
    local got = trio.run(function()
      local out = {}
      trio_asyncio.open_loop(function(loop)
        local lock = trio_asyncio.run_aio_coroutine(function()
          local l = asyncio.Lock()
          l:acquire()
          return l
        end)
        local function holds(who)
          out[#out + 1] = who
          lock:release()
        end
        trio.open_nursery(function(nursery)
          local t1 = loop:create_task(function() lock:acquire() holds("task1") end)
          trio.sleep(0.01)
          local gone = trio.CancelScope()
          nursery:start_soon(function()
            gone:run(function() trio_asyncio.allow_asyncio(function() lock:acquire() end) end)
            out[#out + 1] = "trio-gone cancelled: " .. tostring(gone.cancelled_caught)
          end)
          trio.sleep(0.01)
          nursery:start_soon(function()
            trio_asyncio.allow_asyncio(function() lock:acquire() holds("trio") end)
          end)
          trio.sleep(0.01)
          local t2 = loop:create_task(function() lock:acquire() holds("task2") end)
          trio.sleep(0.01)
          out[#out + 1] = tostring(lock)
          gone:cancel()
          trio.sleep(0.01)
          out[#out + 1] = tostring(lock)
          trio_asyncio.run_aio_coroutine(function() lock:release() end)
          trio_asyncio.aio_as_trio(function() return t1:await() end)()
          trio_asyncio.aio_as_trio(function() return t2:await() end)()
        end)
        out[#out + 1] = tostring(lock)
      end)
      return out
    end)
    assert.same({ "asyncio.Lock (locked, waiters:4)", "trio-gone cancelled: true",
      "asyncio.Lock (locked, waiters:3)", "task1", "trio", "task2", "asyncio.Lock (unlocked, waiters:0)" }, got)
  end)

  it("a Trio task (allow_asyncio mode) waits on an Event that a Task sets", function()
    local got = trio.run(function()
      local out = {}
      trio_asyncio.open_loop(function(loop)
        local ev = trio_asyncio.run_aio_coroutine(function() return asyncio.Event() end)
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            local v = trio_asyncio.allow_asyncio(function() return ev:wait() end)
            out[#out + 1] = v
          end)
          trio.sleep(0.01)
          out[#out + 1] = tostring(ev)
          loop:create_task(function() ev:set() end)
        end)
      end)
      return out
    end)
    assert.same({ "asyncio.Event (unset, waiters:1)", true }, got)
  end)

  it("asyncio.run's end cancels a Lock, Event and Semaphore wait still parked, each seeing CancelledError", function()
    local seen = {}
    local function record(name, fn, ...)
      local ok, e = pcall(fn, ...)
      seen[name] = ok and "returned" or CancelledError:is(e) and "cancelled" or tostring(e)
      error(e, 0)
    end
    asyncio.run(function()
      local lock, ev, sem = asyncio.Lock(), asyncio.Event(), asyncio.BoundedSemaphore(1)
      lock:acquire()
      sem:acquire()
      asyncio.create_task(record, "lock", lock.acquire, lock)
      asyncio.create_task(record, "event", ev.wait, ev)
      asyncio.create_task(record, "semaphore", sem.acquire, sem)
      asyncio.sleep(0)
    end)
    assert.same({ lock = "cancelled", event = "cancelled", semaphore = "cancelled" }, seen)
  end)

  it("a parked Task nothing else refers to lives while its Event does, and is reported once both go", function()
    local weak = setmetatable({}, { __mode = "v" })
    local got = run(function()
      local ev = asyncio.Event()
      weak.task = asyncio.create_task(function() return ev:wait() end)
      asyncio.sleep(0)
      collectgarbage("collect")
      local alive = weak.task ~= nil -- held by the Event alone
      ev:set()
      return { alive, weak.task:await() }
    end)
    assert.same({ true, true }, got)
    local loop = asyncio.new_event_loop()
    local ctxs = support.collected_task_reports(loop, function()
      asyncio.Lock():acquire()
      asyncio.Event():wait() -- the Event and the Task parked in it are garbage
    end)
    loop:close()
    assert.equal(1, #ctxs)
    assert.equal("Task was destroyed but it is pending!", ctxs[1].message)
  end)

  it("keeps the last Task that waited (its spare waiter's) until another Task waits there", function()
    local weak = setmetatable({}, { __mode = "v" })
    local got = run(function()
      local ev = asyncio.Event()
      local function waits_once()
        ev:clear()
        local t = asyncio.create_task(function() return ev:wait() end)
        asyncio.sleep(0)
        ev:set()
        return t, t:await()
      end
      local first, v1 = waits_once()
      weak.first = first
      first = nil -- luacheck: ignore
      for _ = 1, 4 do collectgarbage("collect") end
      local kept = weak.first ~= nil -- the Event's spare waiter still holds it
      local _, v2 = waits_once()
      for _ = 1, 4 do collectgarbage("collect") end
      return { v1, kept, v2, weak.first == nil }
    end)
    assert.same({ true, true, true, true }, got)
  end)

  it("a set() on another loop wakes a Task parked on a closed loop harmlessly; the next waiter waits", function()
    local ev = asyncio.Event()
    local weak = setmetatable({}, { __mode = "v" })
    local old = asyncio.new_event_loop()
    old:set_exception_handler(function() end) -- its Task is destroyed pending
    old:run_until_complete(function()
      weak.task = asyncio.create_task(function() ev:wait() error("never resumed", 0) end)
      asyncio.sleep(0)
    end)
    old:close()
    local got = asyncio.run(function()
      local before = tostring(ev)
      ev:set() -- wakes the Task of the closed loop, which never runs
      ev:clear()
      local t = asyncio.create_task(function() return ev:wait() end)
      asyncio.sleep(0)
      local waiting = t:done()
      ev:set()
      return { before, waiting, asyncio.wait_for(t, 5), weak.task:done() }
    end)
    old = nil -- luacheck: ignore
    assert.same({ "asyncio.Event (unset, waiters:1)", false, true, false }, got)
  end)
end)
