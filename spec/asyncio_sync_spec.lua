-- asyncio.Event, Lock, Semaphore, BoundedSemaphore, Condition: behaviour,
-- errors, and the cancellation races of CPython's asyncio/locks.py (a waiter
-- cancelled in the same tick as the release passes the wake-up on).
local asyncio = require "asyncio"
local trio = require "trio"
local errors = require "trio.errors"
local sync = require "asyncio.sync"
local support = require "support"
local errof = support.errof

local Event, Lock, Semaphore = sync.Event, sync.Lock, sync.Semaphore
local BoundedSemaphore, Condition = sync.BoundedSemaphore, sync.Condition
local CancelledError = asyncio.CancelledError

--- Awaits a task, failing (not hanging) if it does not finish within 1 s.
local function within(task)
  return asyncio.wait_for(task, 1)
end

--- Awaits a task that should end cancelled; true if it did.
local function ends_cancelled(task)
  local ok, e = pcall(task.await, task)
  return not ok and CancelledError:is(e) and task:cancelled()
end

describe("asyncio sync wiring", function()
  it("asyncio exposes the constructors of asyncio.sync once wired", function()
    for _, name in ipairs { "Event", "Lock", "Semaphore", "BoundedSemaphore", "Condition", "ValueError" } do
      assert.is_not_nil(sync[name], name)
      if asyncio[name] ~= nil then assert.equal(sync[name], asyncio[name], name) end
    end
    -- helpers stay out of the merged namespace
    for k in pairs(sync) do assert.is_true(k:sub(1, 1) ~= "_", k) end
  end)
end)

describe("asyncio.Event", function()
  it("starts unset; set, clear and is_set", function()
    local r = asyncio.run(function()
      local ev = Event()
      local r = { ev:is_set() }
      ev:set()
      r[#r + 1] = ev:is_set()
      ev:set()
      r[#r + 1] = ev:is_set()
      ev:clear()
      r[#r + 1] = ev:is_set()
      return r
    end)
    assert.same({ false, true, true, false }, r)
  end)

  it("wait returns true at once when set, and blocks until set otherwise", function()
    local log = {}
    asyncio.run(function()
      local ev = Event()
      ev:set()
      log[#log + 1] = ev:wait()
      ev:clear()
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = asyncio.create_task(function()
          log[#log + 1] = "wait" .. i
          local v = ev:wait()
          log[#log + 1] = "woke" .. i .. ":" .. tostring(v)
        end)
      end
      asyncio.sleep(0.01)
      log[#log + 1] = "set"
      ev:set()
      for i = 1, 3 do tasks[i]:await() end
    end)
    assert.same({ true, "wait1", "wait2", "wait3", "set", "woke1:true", "woke2:true", "woke3:true" }, log)
  end)

  it("a cancelled wait leaves the waiter list and does not disturb the others", function()
    local log = {}
    asyncio.run(function()
      local ev = Event()
      local a = asyncio.create_task(function() ev:wait() log[#log + 1] = "a" end)
      local b = asyncio.create_task(function() ev:wait() log[#log + 1] = "b" end)
      asyncio.sleep(0)
      assert.matches("waiters:2", tostring(ev))
      a:cancel()
      assert.is_true(ends_cancelled(a))
      assert.matches("waiters:1", tostring(ev))
      ev:set()
      within(b)
    end)
    assert.same({ "b" }, log)
  end)

  it("set then clear in the same tick still wakes the waiters", function()
    local woke = false
    asyncio.run(function()
      local ev = Event()
      local t = asyncio.create_task(function() woke = ev:wait() end)
      asyncio.sleep(0)
      ev:set()
      ev:clear()
      t:await()
    end)
    assert.is_true(woke)
  end)

  it("wait from a trio task raises FlavorError naming Event:wait", function()
    local e = trio.run(function()
      return errof(function() Event():wait() end)
    end)
    assert.is_true(errors.FlavorError:is(e))
    assert.matches("Event:wait", e.message, 1, true)
  end)
end)

describe("asyncio.Lock", function()
  it("acquire, locked, release", function()
    local r = asyncio.run(function()
      local lock = Lock()
      local r = { lock:locked(), lock:acquire(), lock:locked() }
      lock:release()
      r[#r + 1] = lock:locked()
      return r
    end)
    assert.same({ false, true, true, false }, r)
  end)

  it("release of an unlocked lock raises RuntimeError", function()
    local e = asyncio.run(function() return errof(function() Lock():release() end) end)
    assert.is_true(errors.RuntimeError:is(e))
    assert.equal("Lock:release: Lock is not acquired.", e.message)
  end)

  it("waiters get the lock in FIFO order", function()
    local log = {}
    asyncio.run(function()
      local lock = Lock()
      lock:acquire()
      local tasks = {}
      for i = 1, 4 do
        tasks[i] = asyncio.create_task(function()
          lock:acquire()
          log[#log + 1] = i
          asyncio.sleep(0)
          lock:release()
        end)
      end
      asyncio.sleep(0.01)
      log[#log + 1] = "release"
      lock:release()
      for i = 1, 4 do tasks[i]:await() end
      log[#log + 1] = lock:locked()
    end)
    assert.same({ "release", 1, 2, 3, 4, false }, log)
  end)

  it("a newcomer does not overtake a woken waiter", function()
    local log = {}
    asyncio.run(function()
      local lock = Lock()
      lock:acquire()
      local a = asyncio.create_task(function()
        lock:acquire() log[#log + 1] = "a" lock:release()
      end)
      asyncio.sleep(0)
      lock:release() -- wakes a, which has not run yet
      local b = asyncio.create_task(function()
        lock:acquire() log[#log + 1] = "b" lock:release()
      end)
      a:await()
      b:await()
    end)
    assert.same({ "a", "b" }, log)
  end)

  it("a waiter cancelled in the same tick as the release passes the lock on", function()
    local log = {}
    asyncio.run(function()
      local lock = Lock()
      lock:acquire()
      local b = asyncio.create_task(function() lock:acquire() log[#log + 1] = "b got it" end)
      local c = asyncio.create_task(function()
        lock:acquire()
        log[#log + 1] = "c got it"
        lock:release()
      end)
      asyncio.sleep(0)
      lock:release() -- b's future is done now...
      b:cancel()     -- ...but b is cancelled before it runs
      assert.is_true(ends_cancelled(b))
      within(c)
      log[#log + 1] = lock:locked()
    end)
    assert.same({ "c got it", false }, log)
  end)

  it("a cancelled pending acquire leaves no trace", function()
    local log = {}
    asyncio.run(function()
      local lock = Lock()
      lock:acquire()
      local b = asyncio.create_task(function() lock:acquire() log[#log + 1] = "b" end)
      local c = asyncio.create_task(function() lock:acquire() log[#log + 1] = "c" lock:release() end)
      asyncio.sleep(0)
      b:cancel()
      assert.is_true(ends_cancelled(b))
      assert.matches("waiters:1", tostring(lock))
      lock:release()
      within(c)
      log[#log + 1] = lock:locked()
    end)
    assert.same({ "c", false }, log)
  end)

  it("only cancelled waiters left: a new acquire takes the lock at once", function()
    local r = asyncio.run(function()
      local lock = Lock()
      lock:acquire()
      local b = asyncio.create_task(function() lock:acquire() end)
      asyncio.sleep(0)
      b:cancel()  -- b's future is cancelled; b has not run its cleanup yet
      lock:release()
      local got = lock:acquire()
      local cancelled = ends_cancelled(b)
      return { got, lock:locked(), cancelled }
    end)
    assert.same({ true, true, true }, r)
  end)

  it("with returns the body's results and releases on every exit path", function()
    local r = asyncio.run(function()
      local lock = Lock()
      local inside
      local a, b = lock:with(function(x, y)
        inside = lock:locked()
        asyncio.sleep(0)
        return x + 1, y
      end, 1, "y")
      local after_ok = lock:locked()
      local e = errof(lock.with, lock, function() error({ code = 7 }) end)
      local after_err = lock:locked()
      local e2 = errof(lock.with, lock, function() error("plain", 0) end)
      return { inside, a, b, after_ok, e.code, after_err, e2, lock:locked() }
    end)
    assert.same({ true, 2, "y", false, 7, false, "plain", false }, r)
  end)

  it("with releases when the body is cancelled", function()
    local r = asyncio.run(function()
      local lock = Lock()
      local t = asyncio.create_task(function()
        lock:with(function() asyncio.sleep(10) end)
      end)
      asyncio.sleep(0.01)
      local held = lock:locked()
      t:cancel()
      return { held, ends_cancelled(t), lock:locked() }
    end)
    assert.same({ true, true, false }, r)
  end)

  it("with checks its function argument", function()
    local e = asyncio.run(function() return errof(function() Lock():with(42) end) end)
    assert.matches("bad argument #1 to 'Lock:with' (function expected, got number)", e, 1, true)
  end)

  it("acquire from a trio task raises FlavorError naming Lock:acquire", function()
    local e = trio.run(function() return errof(function() Lock():acquire() end) end)
    assert.is_true(errors.FlavorError:is(e))
    assert.matches("Lock:acquire", e.message, 1, true)
  end)
end)

describe("asyncio.Semaphore", function()
  it("counts: acquire up to value without waiting, locked() when exhausted", function()
    local r = asyncio.run(function()
      local s = Semaphore(2)
      local r = { s:locked(), s:acquire(), s:locked(), s:acquire(), s:locked() }
      s:release()
      r[#r + 1] = s:locked()
      s:release()
      return r
    end)
    assert.same({ false, true, false, true, true, false }, r)
  end)

  it("defaults to 1 and allows 0", function()
    local r = asyncio.run(function()
      return { Semaphore():locked(), Semaphore(0):locked() }
    end)
    assert.same({ false, true }, r)
  end)

  it("rejects a bad initial value", function()
    assert.matches("bad argument #1 to 'Semaphore' (value must be >= 0, got -1)",
      errof(Semaphore, -1), 1, true)
    assert.matches("bad argument #1 to 'Semaphore' (non-negative integer expected, got string)",
      errof(Semaphore, "2"), 1, true)
    assert.matches("bad argument #1 to 'BoundedSemaphore' (non-negative integer expected, got 1.5)",
      errof(BoundedSemaphore, 1.5), 1, true)
  end)

  it("waiters are served in FIFO order, at most value at a time", function()
    local log, running, max_running = {}, 0, 0
    asyncio.run(function()
      local s = Semaphore(2)
      local tasks = {}
      for i = 1, 6 do
        tasks[i] = asyncio.create_task(function()
          s:with(function()
            running = running + 1
            max_running = math.max(max_running, running)
            log[#log + 1] = i
            asyncio.sleep(0.001)
            running = running - 1
          end)
        end)
      end
      for i = 1, 6 do tasks[i]:await() end
      log[#log + 1] = s:locked()
    end)
    assert.same({ 1, 2, 3, 4, 5, 6, false }, log)
    assert.equal(2, max_running)
  end)

  it("a waiter cancelled in the same tick as the release passes the slot on", function()
    local log = {}
    asyncio.run(function()
      local s = Semaphore(1)
      s:acquire()
      local b = asyncio.create_task(function() s:acquire() log[#log + 1] = "b" end)
      local c = asyncio.create_task(function() s:acquire() log[#log + 1] = "c" s:release() end)
      asyncio.sleep(0)
      s:release() -- wakes b (counts it as holding)
      b:cancel()  -- b will not acquire after all
      assert.is_true(ends_cancelled(b))
      within(c)
      -- the semaphore is back to its full value: two acquires without waiting
      log[#log + 1] = s:locked()
      s:acquire()
      log[#log + 1] = s:locked()
    end)
    assert.same({ "c", false, true }, log)
  end)

  it("releases past the initial value are allowed on a plain Semaphore", function()
    local r = asyncio.run(function()
      local s = Semaphore(0)
      s:release()
      s:release()
      s:acquire()
      s:acquire()
      return s:locked()
    end)
    assert.is_true(r)
  end)
end)

describe("asyncio.BoundedSemaphore", function()
  it("raises ValueError when released past its initial value", function()
    local e, locked = asyncio.run(function()
      local s = BoundedSemaphore(1)
      s:acquire()
      s:release()
      return errof(s.release, s), s:locked()
    end)
    assert.is_true(sync.ValueError:is(e))
    assert.equal("BoundedSemaphore:release: BoundedSemaphore released too many times", e.message)
    assert.is_false(locked)
  end)

  it("with works and keeps the bound", function()
    local r = asyncio.run(function()
      local s = BoundedSemaphore(2)
      local v = s:with(function() return s:locked(), "x" end)
      return { v, errof(s.release, s).message }
    end)
    assert.same({ false, "BoundedSemaphore:release: BoundedSemaphore released too many times" }, r)
  end)
end)

describe("asyncio.Condition", function()
  it("wait and notify require the lock", function()
    local r = asyncio.run(function()
      local c = Condition()
      local e1 = errof(c.wait, c)
      local e2 = errof(c.notify, c)
      local e3 = errof(c.notify_all, c)
      return { errors.RuntimeError:is(e1), e1.message, e2.message, e3.message }
    end)
    assert.same({ true, "Condition:wait: cannot wait on un-acquired lock",
      "Condition:notify: cannot notify on un-acquired lock",
      "Condition:notify_all: cannot notify on un-acquired lock" }, r)
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'Condition' (asyncio.Lock or nil expected, got number)",
      errof(Condition, 5), 1, true)
    asyncio.run(function()
      local c = Condition()
      c:acquire()
      assert.matches("bad argument #1 to 'Condition:notify' (number expected, got string)",
        errof(c.notify, c, "x"), 1, true)
      assert.matches("bad argument #1 to 'Condition:wait_for' (function expected, got nil)",
        errof(c.wait_for, c), 1, true)
      c:release()
    end)
  end)

  it("shares a given lock", function()
    local r = asyncio.run(function()
      local lock = Lock()
      local c = Condition(lock)
      c:acquire()
      local a = lock:locked()
      lock:release()
      return { a, c:locked() }
    end)
    assert.same({ true, false }, r)
  end)

  it("notify(n) wakes n waiters in FIFO order; each returns holding the lock", function()
    local log = {}
    asyncio.run(function()
      local c = Condition()
      local tasks = {}
      for i = 1, 4 do
        tasks[i] = asyncio.create_task(function()
          c:with(function()
            local v = c:wait()
            log[#log + 1] = ("w%d:%s:%s"):format(i, tostring(v), tostring(c:locked()))
          end)
        end)
      end
      asyncio.sleep(0.01)
      c:with(function() c:notify(2) end)
      asyncio.sleep(0.01)
      log[#log + 1] = "notify_all"
      c:with(function() c:notify_all() end)
      for i = 1, 4 do tasks[i]:await() end
      log[#log + 1] = c:locked()
    end)
    assert.same({ "w1:true:true", "w2:true:true", "notify_all", "w3:true:true", "w4:true:true", false }, log)
  end)

  it("wait_for returns the predicate's value once truthy", function()
    local r = asyncio.run(function()
      local c = Condition()
      local state = 0
      local calls = 0
      local t = asyncio.create_task(function()
        return c:with(function()
          return c:wait_for(function()
            calls = calls + 1
            return state >= 2 and ("state " .. state)
          end)
        end)
      end)
      for _ = 1, 2 do
        asyncio.sleep(0.001)
        c:with(function() state = state + 1 c:notify() end)
      end
      return { t:await(), calls }
    end)
    assert.same({ "state 2", 3 }, r)
  end)

  it("a cancelled wait re-acquires the lock before the error goes on", function()
    local r = asyncio.run(function()
      local c = Condition()
      local held_in_handler
      local t = asyncio.create_task(function()
        c:acquire()
        local _, e = pcall(c.wait, c)
        held_in_handler = c:locked()
        c:release()
        error(e, 0)
      end)
      asyncio.sleep(0.01)
      -- someone else holds the lock while t is cancelled: t must wait for it
      c:acquire()
      t:cancel()
      asyncio.sleep(0.01)
      local still_waiting = not t:done()
      c:release()
      return { ends_cancelled(t), held_in_handler, still_waiting, c:locked() }
    end)
    assert.same({ true, true, true, false }, r)
  end)

  it("a notified waiter cancelled in the same tick passes the notification on", function()
    local log = {}
    asyncio.run(function()
      local c = Condition()
      local a = asyncio.create_task(function() c:with(function() c:wait() log[#log + 1] = "a" end) end)
      local b = asyncio.create_task(function() c:with(function() c:wait() log[#log + 1] = "b" end) end)
      asyncio.sleep(0)
      c:with(function() c:notify(1) end) -- notifies a
      a:cancel()                         -- a is cancelled before it runs
      assert.is_true(ends_cancelled(a))
      within(b)
      log[#log + 1] = c:locked()
    end)
    assert.same({ "b", false }, log)
  end)
end)

describe("asyncio.Barrier", function()
  local Barrier, BrokenBarrierError = asyncio.Barrier, asyncio.BrokenBarrierError

  it("checks parties", function()
    assert.matches("bad argument #1 to 'Barrier' %(parties must be >= 1", errof(Barrier, 0))
    assert.matches("bad argument #1 to 'Barrier' %(integer expected, got 1.5", errof(Barrier, 1.5))
    assert.matches("bad argument #1 to 'Barrier' %(integer expected, got nil", errof(Barrier))
    assert.equal(3, Barrier(3.0).parties)
  end)

  it("releases the parties together, with indexes 0 .. parties-1; with(fn) passes the index first", function()
    local got = asyncio.run(function()
      local b = Barrier(3)
      local order = {}
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = asyncio.create_task(function()
          return b:with(function(index, tag)
            order[#order + 1] = tag
            return index
          end, "t" .. i)
        end)
        asyncio.sleep(0)
        if i < 3 then
          assert.equal(i, b.n_waiting)
          assert.equal(0, #order) -- nobody passed yet
          assert.equal("asyncio.Barrier (filling, waiters:" .. i .. "/3)", tostring(b))
        end
      end
      local idx = asyncio.gather(tasks[1], tasks[2], tasks[3])
      assert.equal(3, #order)
      assert.equal(0, b.n_waiting)
      return idx
    end)
    assert.same({ 0, 1, 2, n = 3 }, got)
  end)

  it("abort breaks waiting and later waits; reset mends it", function()
    asyncio.run(function()
      local b = Barrier(2)
      local t = asyncio.create_task(b.wait, b)
      asyncio.sleep(0)
      b:abort()
      local e = errof(t.await, t)
      assert.is_true(BrokenBarrierError:is(e), tostring(e))
      assert.is_true(asyncio.RuntimeError:is(e)) -- a RuntimeError, as in Python
      assert.is_true(b.broken)
      assert.equal("asyncio.Barrier (broken)", tostring(b))
      assert.is_true(BrokenBarrierError:is(errof(b.wait, b)))
      b:reset()
      assert.is_false(b.broken)
      local t2 = asyncio.create_task(b.wait, b)
      assert.equal(1, b:wait() + t2:await())
    end)
  end)

  it("a cancelled waiter leaves the barrier", function()
    asyncio.run(function()
      local b = Barrier(2)
      local t = asyncio.create_task(b.wait, b)
      asyncio.sleep(0)
      assert.equal(1, b.n_waiting)
      t:cancel()
      assert.is_true(ends_cancelled(t))
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
    end)
  end)

  it("wait from Trio code raises FlavorError", function()
    local b = Barrier(1)
    local e = trio.run(function() return errof(b.wait, b) end)
    assert.is_true(require("trio_asyncio").FlavorError:is(e), tostring(e))
  end)
end)

describe("asyncio: a method called on something that is not its object", function()
  it("raises 'bad argument #1' naming the method and the class expected (as the C classes do)", function()
    local queues = require "asyncio.queues"
    local loop = asyncio.new_event_loop()
    local cases = {
      { Event().set, nil, "'Event:set' (asyncio.Event expected, got nil)" },
      { Lock().with, {}, "'Lock:with' (asyncio.Lock expected, got table)" },
      { BoundedSemaphore(1).release, Semaphore(1), "'BoundedSemaphore:release' (asyncio.BoundedSemaphore "
        .. "expected, got asyncio.Semaphore)" },
      { Condition().notify_all, Lock(), "'Condition:notify_all' (asyncio.Condition expected, got asyncio.Lock)" },
      -- (a LifoQueue is a Queue, as in Python, where it is a subclass)
      { queues.Queue().get_nowait, Lock(), "'Queue:get_nowait' (asyncio.Queue expected, "
        .. "got asyncio.Lock)" },
      -- (the queue classes share their methods, named by the base class)
      { queues.PriorityQueue().put_nowait, "x", "'Queue:put_nowait' (asyncio.Queue expected, "
        .. "got string)" },
      { loop.is_running, io.stdout, "'is_running' (trio_asyncio.Loop expected, got FILE*)" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1], c[2])
      assert.is_false(ok)
      assert.matches("bad argument #1 to " .. c[3], err, 1, true)
    end
    -- the same wording as a Loop method written in C (which Lua may name
    -- by where it found the function, e.g. 'trio_asyncio.Loop.call_soon')
    local ok, err = pcall(loop.call_soon, io.stdout)
    assert.is_false(ok)
    assert.matches("call_soon' (trio_asyncio.Loop expected, got FILE*)", err, 1, true)
    loop:close()
  end)

  it("Semaphore's methods take a BoundedSemaphore (they share them)", function()
    local b = BoundedSemaphore(1)
    assert.is_false(Semaphore(1).locked(b))
  end)
end)
