-- asyncio.Lock, Event, Semaphore and BoundedSemaphore as C objects (csrc/asyncio/sync.c): each
-- method tells its self by its tag (a Lock's methods refuse an Event and
-- the other way round), checks the caller's flavor on the paths that run in
-- C alone, and hands waits and wakes to Lua in the order CPython's
-- asyncio/locks.py gives them.
local asyncio = require "asyncio"
local trio = require "trio"
local trio_asyncio = require "trio_asyncio"
local sync = require "asyncio.sync"
local support = require "support"
local errof = support.errof

local Lock, Event = asyncio.Lock, asyncio.Event
local Semaphore, BoundedSemaphore = asyncio.Semaphore, asyncio.BoundedSemaphore

describe("asyncio.Lock and Event objects", function()
  it("are userdata of their classes, with no fields", function()
    local lock, ev = Lock(), Event()
    assert.equal("userdata", type(lock))
    assert.equal("userdata", type(ev))
    assert.equal(sync._Lock, getmetatable(lock))
    assert.equal(sync._Event, getmetatable(ev))
    assert.is_nil(lock._locked)
    assert.is_nil(ev._value)
    assert.equal("asyncio.Lock (unlocked, waiters:0)", tostring(lock))
    assert.equal("asyncio.Event (unset, waiters:0)", tostring(ev))
  end)

  it("each method refuses another class's object as self, naming both", function()
    local lock, ev = Lock(), Event()
    local cases = {
      { Lock, "acquire", ev, "asyncio.Lock", "asyncio.Event" },
      { Lock, "release", ev, "asyncio.Lock", "asyncio.Event" },
      { Lock, "locked", {}, "asyncio.Lock", "table" },
      { Event, "wait", lock, "asyncio.Event", "asyncio.Lock" },
      { Event, "set", 42, "asyncio.Event", "number" },
      { Event, "is_set", lock, "asyncio.Event", "asyncio.Lock" },
      { Event, "clear", nil, "asyncio.Event", "nil" },
    }
    for _, c in ipairs(cases) do
      local cls, name, self, want, got = c[1], c[2], c[3], c[4], c[5]
      local class = cls == Lock and sync._Lock or sync._Event
      local short = cls == Lock and "Lock" or "Event"
      local e = errof(class[name], self)
      assert.equal(("bad argument #1 to '%s:%s' (%s expected, got %s)"):format(short, name, want, got),
        e:match("bad argument.*"), name)
    end
    -- a socket-sized or same-sized foreign userdata is not taken either
    local e = errof(sync._Lock.locked, io.stdout)
    assert.matches("(asyncio.Lock expected, got FILE*)", e, 1, true)
  end)

  it("refuse a caller that is not an asyncio Task on the paths that run in C alone", function()
    local lock, ev = Lock(), Event()
    ev:set() -- set: wait() would return at once
    local e1 = errof(lock.acquire, lock)
    local e2 = errof(ev.wait, ev)
    assert.matches("Lock:acquire", tostring(e1), 1, true)
    assert.matches("Event:wait", tostring(e2), 1, true)
    assert.is_false(lock:locked()) -- the refused acquire took nothing
    local e3
    trio.run(function()
      local ok, err = pcall(lock.acquire, lock)
      e3 = not ok and err
    end)
    assert.is_true(trio_asyncio.FlavorError:is(e3))
    assert.matches("Lock:acquire", tostring(e3), 1, true)
    assert.is_false(lock:locked())
  end)

  it("release() of a free lock raises RuntimeError and leaves it free", function()
    local lock = Lock()
    local ok, e = pcall(lock.release, lock)
    assert.is_false(ok)
    assert.equal("Lock:release: Lock is not acquired.", e.message)
    assert.is_false(lock:locked())
  end)

  it("a free lock with a woken waiter that has not run yet is not taken past it (FIFO)", function()
    local order = asyncio.run(function()
      local lock, log = Lock(), {}
      lock:acquire()
      local a = asyncio.create_task(function()
        lock:acquire(); log[#log + 1] = "a"; lock:release()
      end)
      asyncio.sleep(0) -- a waits
      assert.equal("asyncio.Lock (locked, waiters:1)", tostring(lock))
      lock:release() -- wakes a; the lock is free, a has not run
      assert.is_false(lock:locked())
      local b = asyncio.create_task(function()
        lock:acquire(); log[#log + 1] = "b"; lock:release()
      end)
      asyncio.gather(a, b)
      return log
    end)
    assert.same({ "a", "b" }, order)
  end)

  it("set() wakes every waiter and sets the flag, the woken stay waiters until they run; clear() only clears", function()
    local r = asyncio.run(function()
      local ev, woke = Event(), {}
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = asyncio.create_task(function()
          local v = ev:wait()
          woke[#woke + 1] = v and i
        end)
      end
      asyncio.sleep(0)
      local before = tostring(ev)
      ev:set()
      local after = tostring(ev)
      ev:clear()
      asyncio.gather(table.unpack(tasks)) -- woken before the clear: they still return
      return { before, after, woke, ev:is_set(), tostring(ev) }
    end)
    assert.equal("asyncio.Event (unset, waiters:3)", r[1])
    assert.equal("asyncio.Event (set, waiters:3)", r[2]) -- as CPython's len(ev._waiters)
    assert.same({ 1, 2, 3 }, r[3])
    assert.is_false(r[4])
    assert.equal("asyncio.Event (unset, waiters:0)", r[5])
  end)

  it("a cancelled Event waiter leaves the waiters; the flag stays clear", function()
    local r = asyncio.run(function()
      local ev = Event()
      local t = asyncio.create_task(function() ev:wait() end)
      asyncio.sleep(0)
      t:cancel()
      pcall(t.await, t)
      return { tostring(ev), t:cancelled() }
    end)
    assert.equal("asyncio.Event (unset, waiters:0)", r[1])
    assert.is_true(r[2])
  end)

  it("Lock:with releases on error, and Condition sees the lock's state", function()
    local r = asyncio.run(function()
      local lock = Lock()
      local cond = asyncio.Condition(lock)
      local ok = pcall(lock.with, lock, function() error("boom") end)
      local inside
      lock:with(function() inside = cond:locked() end)
      return { ok, lock:locked(), inside, cond:locked() }
    end)
    assert.same({ false, false, true, false }, r)
  end)

  it("a semaphore's methods take either kind; BoundedSemaphore:release only its own", function()
    local sem, bsem = Semaphore(1), BoundedSemaphore(1)
    local Sem, BSem = sync._Semaphore, sync._BoundedSemaphore
    assert.equal("userdata", type(sem))
    assert.equal(Sem, getmetatable(sem))
    assert.equal(BSem, getmetatable(bsem))
    assert.is_false(Sem.locked(bsem))
    local e = errof(BSem.release, sem)
    assert.equal("bad argument #1 to 'BoundedSemaphore:release' (asyncio.BoundedSemaphore expected, got asyncio.Semaphore)",
      e:match("bad argument.*"))
    e = errof(Sem.acquire, Lock())
    assert.equal("bad argument #1 to 'Semaphore:acquire' (asyncio.Semaphore expected, got asyncio.Lock)",
      e:match("bad argument.*"))
    e = errof(Sem.release, {})
    assert.equal("bad argument #1 to 'Semaphore:release' (asyncio.Semaphore expected, got table)", e:match("bad argument.*"))
  end)

  it("counts its value through acquire, release and waits; a bounded one refuses one release too many", function()
    local r = asyncio.run(function()
      local sem, log = BoundedSemaphore(2), {}
      sem:acquire(); sem:acquire()
      log[#log + 1] = tostring(sem)
      local t = asyncio.create_task(function() sem:acquire(); log[#log + 1] = "t acquired" end)
      asyncio.sleep(0)
      log[#log + 1] = tostring(sem)
      sem:release() -- hands the value to t: still 0
      log[#log + 1] = tostring(sem)
      t:await()
      sem:release(); sem:release()
      log[#log + 1] = tostring(sem)
      local ok, err = pcall(sem.release, sem)
      log[#log + 1] = tostring(sem)
      return { log, ok, err }
    end)
    assert.same({
      "asyncio.BoundedSemaphore (value:0, waiters:0)",
      "asyncio.BoundedSemaphore (value:0, waiters:1)",
      "asyncio.BoundedSemaphore (value:0, waiters:1)",
      "t acquired",
      "asyncio.BoundedSemaphore (value:2, waiters:0)",
      "asyncio.BoundedSemaphore (value:2, waiters:0)",
    }, r[1])
    assert.is_false(r[2])
    assert.is_true(sync.ValueError:is(r[3]))
    assert.equal("BoundedSemaphore:release: BoundedSemaphore released too many times", r[3].message)
  end)

  it("a value that is a whole float beyond the integers is refused, naming the constructor", function()
    for _, ctor in ipairs { "Semaphore", "BoundedSemaphore" } do
      local e = errof(asyncio[ctor], 1e308)
      assert.matches(("bad argument #1 to '%s' (value out of the integer range, got 1e+308)"):format(ctor), e, 1, true)
    end
    assert.equal("asyncio.Semaphore (value:3, waiters:0)", tostring(Semaphore(3.0)))
  end)

  it("locked() with value left is false when every waiter is cancelled, true otherwise", function()
    local r = asyncio.run(function()
      local sem = Semaphore(0)
      local a = asyncio.create_task(function() sem:acquire() end)
      local b = asyncio.create_task(function() sem:acquire() end)
      asyncio.sleep(0) -- both wait
      a:cancel()
      b:cancel()
      -- value 1 and two waiters, both cancelled but not yet run: locked() is false
      sem:release()
      local l1 = sem:locked()
      pcall(a.await, a)
      pcall(b.await, b)
      local c = asyncio.create_task(function() sem:acquire(); sem:acquire() end)
      asyncio.sleep(0) -- c took the one, waits for a second
      local l2 = sem:locked()
      c:cancel()
      pcall(c.await, c)
      return { l1, l2, tostring(sem) }
    end)
    assert.same({ false, true, "asyncio.Semaphore (value:0, waiters:0)" }, r)
  end)
end)
