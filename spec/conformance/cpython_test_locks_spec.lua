-- Ported from CPython Lib/test/test_asyncio/test_locks.py
-- (python/cpython at commit 97ac8662af77033354a9e9b747d5e80fa2df664c).
--
-- Each test is named "test_locks.py::<Class>.<test>".  `async with x:` is
-- x:with(fn).  Python's len(x._waiters) and sem._value are read from
-- tostring(x), which shows "waiters:N" and "value:N".  asyncio.TaskGroup
-- has no counterpart: tasks it would run to completion are awaited with
-- gather.  A bad argument raises a luaL_argerror-style error naming the
-- function where Python raises ValueError/TypeError (docs/SEMANTICS.md).
--
-- Left out:
--   LockTests.test_repr, EventTests.test_repr, ConditionTests.test_repr,
--   SemaphoreTests.test_repr, BarrierTests.test_repr
--                            the repr() format of the Python objects
--   LockTests.test_lock, SemaphoreTests.test_semaphore, BarrierTests.test_barrier
--                            `await lock` (a TypeError in Python): no await syntax
--   LockTests.test_lock_doesnt_accept_loop_parameter
--                            Python keyword arguments (loop=)
--   LockTests.test_lock_by_with_statement
--                            `with await lock` (Python syntax)
--   ConditionTests.test_ambiguous_loops
--                            sets the private _loop of a lock and a condition
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local CancelledError, TimeoutError, RuntimeError = H.CancelledError, H.TimeoutError, H.RuntimeError
local assert_raises = H.assert_raises
local pending = H.pending(pending, it)

--- A task that appends `n` to `result` when waiting on `fn` returns true.
local function appender(fn, result, n)
  return function()
    if fn() then result[#result + 1] = n end
    return true
  end
end

describe("test_locks.py", function()
  local T = "test_locks.py::LockTests."

  it(T .. "test_acquire", function()
    H.run(function()
      local lock = asyncio.Lock()
      local result = {}
      assert.is_true(lock:acquire())
      local function acq() return lock:acquire() end
      local t1 = asyncio.create_task(appender(acq, result, 1))
      local t2 = asyncio.create_task(appender(acq, result, 2))
      asyncio.sleep(0)
      assert.same({}, result)
      lock:release()
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      local t3 = asyncio.create_task(appender(acq, result, 3))
      lock:release()
      asyncio.sleep(0)
      assert.same({ 1, 2 }, result)
      lock:release()
      asyncio.sleep(0)
      assert.same({ 1, 2, 3 }, result)
      for _, t in ipairs { t1, t2, t3 } do
        assert.is_true(t:done())
        assert.is_true(t:result())
      end
    end)
  end)

  it(T .. "test_acquire_cancel", function()
    H.run(function()
      local lock = asyncio.Lock()
      assert.is_true(lock:acquire())
      local task = asyncio.create_task(lock.acquire, lock)
      asyncio.get_running_loop():call_soon(task.cancel, task)
      assert_raises(CancelledError, task.await, task)
      assert.equal(0, H.count(lock))
    end)
  end)

  it(T .. "test_cancel_race", function()
    -- A holds the lock, B and C wait in acquire(); then, at once, B is
    -- cancelled and A releases the lock: the release must pass B's
    -- cancelled waiter by and wake C.
    H.run(function()
      local lock = asyncio.Lock()
      local function lockit(name, blocker)
        lock:acquire()
        H.try_finally(function()
          if blocker ~= nil then blocker:await() end
        end, function() lock:release() end)
      end
      local fa = asyncio.get_running_loop():create_future()
      local ta = asyncio.create_task(lockit, "A", fa)
      asyncio.sleep(0)
      assert.is_true(lock:locked())
      local tb = asyncio.create_task(lockit, "B", nil)
      asyncio.sleep(0)
      assert.equal(1, H.count(lock))
      local tc = asyncio.create_task(lockit, "C", nil)
      asyncio.sleep(0)
      assert.equal(2, H.count(lock))
      -- the race (upstream also checks, in private state, that B's waiter
      -- future is cancelled)
      fa:set_result(nil)
      tb:cancel()
      asyncio.sleep(0)
      assert.is_false(lock:locked())
      assert.is_true(ta:done())
      assert.is_true(tb:cancelled())
      tc:await()
    end)
  end)

  it(T .. "test_cancel_release_race", function()
    -- Python issue 32734: with 4 acquirers, cancelling the second and
    -- releasing the first must not let two take the lock
    H.run(function()
      local loop = asyncio.get_running_loop()
      local lock = asyncio.Lock()
      local lock_count, call_count = 0, 0
      local t1, t2, t3
      local function lockit()
        call_count = call_count + 1
        lock:acquire()
        lock_count = lock_count + 1
      end
      local function trigger()
        t1:cancel()
        lock:release()
      end
      lock:acquire()
      t1 = asyncio.create_task(lockit)
      t2 = asyncio.create_task(lockit)
      t3 = asyncio.create_task(lockit)
      -- start the tasks
      asyncio.sleep(0)
      loop:call_soon(trigger)
      assert_raises(CancelledError, t1.await, t1)
      -- only one took the lock, of 3 calls
      assert.equal(1, lock_count)
      assert.equal(3, call_count)
      assert.is_true(t1:cancelled() and t2:done())
      -- clean up the task stuck in acquire()
      t3:cancel()
      asyncio.sleep(0)
      assert.is_true(t3:cancelled())
    end)
  end)

  it(T .. "test_finished_waiter_cancelled", function()
    H.run(function()
      local lock = asyncio.Lock()
      lock:acquire()
      assert.is_true(lock:locked())
      local tb = asyncio.create_task(lock.acquire, lock)
      asyncio.sleep(0)
      assert.equal(1, H.count(lock))
      -- a second waiter; wake the first and cancel it: the second must
      -- be woken
      local tc = asyncio.create_task(lock.acquire, lock)
      tb:cancel()
      lock:release()
      asyncio.sleep(0)
      assert.is_true(lock:locked())
      assert.is_true(tb:cancelled())
      tc:await()
    end)
  end)

  it(T .. "test_release_not_acquired", function()
    H.run(function()
      local lock = asyncio.Lock()
      assert_raises(RuntimeError, lock.release, lock)
    end)
  end)

  it(T .. "test_release_no_waiters", function()
    H.run(function()
      local lock = asyncio.Lock()
      lock:acquire()
      assert.is_true(lock:locked())
      lock:release()
      assert.is_false(lock:locked())
    end)
  end)

  it(T .. "test_context_manager", function()
    H.run(function()
      local lock = asyncio.Lock()
      assert.is_false(lock:locked())
      lock:with(function() assert.is_true(lock:locked()) end)
      assert.is_false(lock:locked())
    end)
  end)

  T = "test_locks.py::EventTests."

  it(T .. "test_wait", function()
    H.run(function()
      local ev = asyncio.Event()
      assert.is_false(ev:is_set())
      local result = {}
      local function c(n)
        return function()
          if ev:wait() then result[#result + 1] = n end
        end
      end
      local t1 = asyncio.create_task(c(1))
      local t2 = asyncio.create_task(c(2))
      asyncio.sleep(0)
      assert.same({}, result)
      local t3 = asyncio.create_task(c(3))
      ev:set()
      asyncio.sleep(0)
      assert.same({ 3, 1, 2 }, result)
      for _, t in ipairs { t1, t2, t3 } do
        assert.is_true(t:done())
        assert.is_nil(t:result())
      end
    end)
  end)

  it(T .. "test_wait_on_set", function()
    H.run(function()
      local ev = asyncio.Event()
      ev:set()
      assert.is_true(ev:wait())
    end)
  end)

  it(T .. "test_wait_cancel", function()
    H.run(function()
      local ev = asyncio.Event()
      local wait = asyncio.create_task(ev.wait, ev)
      asyncio.get_running_loop():call_soon(wait.cancel, wait)
      assert_raises(CancelledError, wait.await, wait)
      assert.equal(0, H.count(ev))
    end)
  end)

  it(T .. "test_clear", function()
    H.run(function()
      local ev = asyncio.Event()
      assert.is_false(ev:is_set())
      ev:set()
      assert.is_true(ev:is_set())
      ev:clear()
      assert.is_false(ev:is_set())
    end)
  end)

  it(T .. "test_clear_with_waiters", function()
    H.run(function()
      local ev = asyncio.Event()
      local result = {}
      local t = asyncio.create_task(appender(function() return ev:wait() end, result, 1))
      asyncio.sleep(0)
      assert.same({}, result)
      ev:set()
      ev:clear()
      assert.is_false(ev:is_set())
      ev:set()
      ev:set()
      assert.equal(1, H.count(ev)) -- woken, it stays a waiter until it runs
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      assert.equal(0, H.count(ev))
      assert.is_true(t:done())
      assert.is_true(t:result())
    end)
  end)

  T = "test_locks.py::ConditionTests."

  --- c(n): acquire, wait, append n when wait() is true [, then release].
  local function cond_waiter(cond, result, n, release)
    return function()
      cond:acquire()
      if cond:wait() then
        result[#result + 1] = n
        if release then cond:release() end
      end
      return true
    end
  end

  it(T .. "test_wait", function()
    H.run(function()
      local cond = asyncio.Condition()
      local result = {}
      local t1 = asyncio.create_task(cond_waiter(cond, result, 1))
      local t2 = asyncio.create_task(cond_waiter(cond, result, 2))
      local t3 = asyncio.create_task(cond_waiter(cond, result, 3))
      asyncio.sleep(0)
      assert.same({}, result)
      assert.is_false(cond:locked())

      assert.is_true(cond:acquire())
      cond:notify()
      asyncio.sleep(0)
      assert.same({}, result)
      assert.is_true(cond:locked())

      cond:release()
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      assert.is_true(cond:locked())

      cond:notify(2)
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      assert.is_true(cond:locked())

      cond:release()
      asyncio.sleep(0)
      assert.same({ 1, 2 }, result)
      assert.is_true(cond:locked())

      cond:release()
      asyncio.sleep(0)
      assert.same({ 1, 2, 3 }, result)
      assert.is_true(cond:locked())

      for _, t in ipairs { t1, t2, t3 } do
        assert.is_true(t:done())
        assert.is_true(t:result())
      end
    end)
  end)

  it(T .. "test_wait_cancel", function()
    H.run(function()
      local cond = asyncio.Condition()
      cond:acquire()
      local wait = asyncio.create_task(cond.wait, cond)
      asyncio.get_running_loop():call_soon(wait.cancel, wait)
      assert_raises(CancelledError, wait.await, wait)
      assert.equal(0, H.count(cond))
      assert.is_true(cond:locked())
    end)
  end)

  it(T .. "test_wait_cancel_contested", function()
    H.run(function()
      local cond = asyncio.Condition()
      cond:acquire()
      assert.is_true(cond:locked())
      local wait_task = asyncio.create_task(cond.wait, cond)
      asyncio.sleep(0)
      assert.is_false(cond:locked())
      -- notify, but contest the lock before cancelling
      cond:acquire()
      assert.is_true(cond:locked())
      cond:notify()
      local loop = asyncio.get_running_loop()
      loop:call_soon(wait_task.cancel, wait_task)
      loop:call_soon(cond.release, cond)
      -- (a CancelledError should not happen: no cancellation point)
      H.except_cancelled(wait_task.await, function() end, wait_task)
      assert.is_true(cond:locked())
    end)
  end)

  it(T .. "test_wait_cancel_after_notify", function()
    -- Python bpo-32841
    H.run(function()
      local waited = false
      local cond = asyncio.Condition()
      local function wait_on_cond()
        cond:with(function()
          waited = true -- this part was reached
          cond:wait()
        end)
      end
      local waiter = asyncio.create_task(wait_on_cond)
      asyncio.sleep(0) -- start waiting
      cond:acquire()
      cond:notify()
      asyncio.sleep(0) -- get to acquire()
      waiter:cancel()
      asyncio.sleep(0) -- activate the cancellation
      cond:release()
      asyncio.sleep(0) -- the cancellation happens
      assert.is_true(waiter:cancelled())
      assert.is_true(waited)
    end)
  end)

  it(T .. "test_wait_unacquired", function()
    H.run(function()
      local cond = asyncio.Condition()
      assert_raises(RuntimeError, cond.wait, cond)
    end)
  end)

  it(T .. "test_wait_for", function()
    H.run(function()
      local cond = asyncio.Condition()
      local presult = false
      local function predicate() return presult end
      local result = {}
      local function c1()
        cond:acquire()
        if cond:wait_for(predicate) then
          result[#result + 1] = 1
          cond:release()
        end
        return true
      end
      local t = asyncio.create_task(c1)
      asyncio.sleep(0)
      assert.same({}, result)

      cond:acquire()
      cond:notify()
      cond:release()
      asyncio.sleep(0)
      assert.same({}, result)

      presult = true
      cond:acquire()
      cond:notify()
      cond:release()
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      assert.is_true(t:done())
      assert.is_true(t:result())
    end)
  end)

  it(T .. "test_wait_for_unacquired", function()
    H.run(function()
      local cond = asyncio.Condition()
      -- the predicate may be true at once
      local res = cond:wait_for(function() return { 1, 2, 3 } end)
      assert.same({ 1, 2, 3 }, res)
      assert_raises(RuntimeError, cond.wait_for, cond, function() return false end)
    end)
  end)

  it(T .. "test_notify", function()
    H.run(function()
      local cond = asyncio.Condition()
      local result = {}
      local t1 = asyncio.create_task(cond_waiter(cond, result, 1, true))
      local t2 = asyncio.create_task(cond_waiter(cond, result, 2, true))
      local t3 = asyncio.create_task(cond_waiter(cond, result, 3, true))
      asyncio.sleep(0)
      assert.same({}, result)

      cond:acquire()
      cond:notify(1)
      cond:release()
      asyncio.sleep(0)
      assert.same({ 1 }, result)

      cond:acquire()
      cond:notify(1)
      cond:notify(2048)
      cond:release()
      asyncio.sleep(0)
      assert.same({ 1, 2, 3 }, result)

      for _, t in ipairs { t1, t2, t3 } do
        assert.is_true(t:done())
        assert.is_true(t:result())
      end
    end)
  end)

  it(T .. "test_notify_all", function()
    H.run(function()
      local cond = asyncio.Condition()
      local result = {}
      local t1 = asyncio.create_task(cond_waiter(cond, result, 1, true))
      local t2 = asyncio.create_task(cond_waiter(cond, result, 2, true))
      asyncio.sleep(0)
      assert.same({}, result)

      cond:acquire()
      cond:notify_all()
      cond:release()
      asyncio.sleep(0)
      assert.same({ 1, 2 }, result)

      for _, t in ipairs { t1, t2 } do
        assert.is_true(t:done())
        assert.is_true(t:result())
      end
    end)
  end)

  it(T .. "test_notify_unacquired", function()
    local cond = asyncio.Condition()
    assert_raises(RuntimeError, cond.notify, cond)
  end)

  it(T .. "test_notify_all_unacquired", function()
    local cond = asyncio.Condition()
    assert_raises(RuntimeError, cond.notify_all, cond)
  end)

  it(T .. "test_context_manager", function()
    H.run(function()
      local cond = asyncio.Condition()
      assert.is_false(cond:locked())
      cond:with(function() assert.is_true(cond:locked()) end)
      assert.is_false(cond:locked())
    end)
  end)

  it(T .. "test_explicit_lock", function()
    H.run(function()
      local function f(lock, cond)
        if lock == nil then lock = asyncio.Lock() end
        if cond == nil then cond = asyncio.Condition(lock) end
        -- (upstream also checks the private cond._lock is lock)
        assert.is_false(lock:locked())
        assert.is_false(cond:locked())
        cond:with(function()
          assert.is_true(lock:locked())
          assert.is_true(cond:locked())
        end)
        assert.is_false(lock:locked())
        assert.is_false(cond:locked())
        lock:with(function()
          assert.is_true(lock:locked())
          assert.is_true(cond:locked())
        end)
        assert.is_false(lock:locked())
        assert.is_false(cond:locked())
      end
      -- all work the same way
      f()
      f(asyncio.Lock())
      local lock = asyncio.Lock()
      f(lock, asyncio.Condition(lock))
    end)
  end)

  it(T .. "test_timeout_in_block", function()
    H.run(function()
      local condition = asyncio.Condition()
      condition:with(function()
        assert_raises(TimeoutError, asyncio.wait_for, function() return condition:wait() end, 0.5)
      end)
    end)
  end)

  T = "test_locks.py::SemaphoreTests."

  it(T .. "test_initial_value_zero", function()
    local sem = asyncio.Semaphore(0)
    assert.is_true(sem:locked())
  end)

  it(T .. "test_semaphore_value", function()
    assert_raises("Semaphore", asyncio.Semaphore, -1)
  end)

  it(T .. "test_acquire", function()
    H.run(function()
      local sem = asyncio.Semaphore(3)
      local result = {}
      assert.is_true(sem:acquire())
      assert.is_true(sem:acquire())
      assert.is_false(sem:locked())
      local function c(n)
        return function()
          sem:acquire()
          result[#result + 1] = n
          return true
        end
      end
      local t1 = asyncio.create_task(c(1))
      local t2 = asyncio.create_task(c(2))
      local t3 = asyncio.create_task(c(3))
      asyncio.sleep(0)
      assert.same({ 1 }, result)
      assert.is_true(sem:locked())
      assert.equal(2, H.count(sem))
      assert.equal(0, H.count(sem, "value"))

      local t4 = asyncio.create_task(c(4))
      sem:release()
      sem:release()
      assert.equal(0, H.count(sem, "value"))

      asyncio.sleep(0)
      assert.equal(0, H.count(sem, "value"))
      assert.equal(3, #result)
      assert.is_true(sem:locked())
      assert.equal(1, H.count(sem))
      assert.equal(0, H.count(sem, "value"))

      assert.is_true(t1:done())
      assert.is_true(t1:result())
      local race_tasks = { t2, t3, t4 }
      local done_tasks = 0
      for _, t in ipairs(race_tasks) do
        if t:done() and t:result() then done_tasks = done_tasks + 1 end
      end
      assert.equal(2, done_tasks)

      -- clean up the locked semaphore
      sem:release()
      asyncio.gather(t2, t3, t4)
    end)
  end)

  it(T .. "test_acquire_cancel", function()
    H.run(function()
      local sem = asyncio.Semaphore()
      sem:acquire()
      local acquire = asyncio.create_task(sem.acquire, sem)
      asyncio.get_running_loop():call_soon(acquire.cancel, acquire)
      assert_raises(CancelledError, acquire.await, acquire)
      assert.equal(0, H.count(sem))
    end)
  end)

  it(T .. "test_acquire_cancel_before_awoken", function()
    H.run(function()
      local sem = asyncio.Semaphore(0)
      local t1 = asyncio.create_task(sem.acquire, sem)
      local t2 = asyncio.create_task(sem.acquire, sem)
      local t3 = asyncio.create_task(sem.acquire, sem)
      local t4 = asyncio.create_task(sem.acquire, sem)
      asyncio.sleep(0)
      t1:cancel()
      t2:cancel()
      sem:release()
      asyncio.sleep(0)
      asyncio.sleep(0)
      local num_done = (t3:done() and 1 or 0) + (t4:done() and 1 or 0)
      assert.equal(1, num_done)
      assert.is_true(t3:done())
      assert.is_false(t4:done())
      t3:cancel()
      t4:cancel()
      asyncio.sleep(0)
    end)
  end)

  it(T .. "test_acquire_hang", function()
    H.run(function()
      local sem = asyncio.Semaphore(0)
      local t1 = asyncio.create_task(sem.acquire, sem)
      local t2 = asyncio.create_task(sem.acquire, sem)
      asyncio.sleep(0)
      t1:cancel()
      sem:release()
      asyncio.sleep(0)
      asyncio.sleep(0)
      assert.is_true(sem:locked())
      assert.is_true(t2:done())
    end)
  end)

  it(T .. "test_acquire_no_hang", function()
    H.run(function()
      local sem = asyncio.Semaphore(1)
      local t1, t2
      local function c1()
        sem:with(asyncio.sleep, 0)
        t2:cancel()
      end
      local function c2()
        sem:with(function() assert.is_true(false) end)
      end
      t1 = asyncio.create_task(c1)
      t2 = asyncio.create_task(c2)
      local r = asyncio.gather(t1, t2, { return_exceptions = true })
      assert.is_nil(r[1])
      assert.is_true(CancelledError:is(r[2]))
      asyncio.wait_for(function() return sem:acquire() end, 1.0)
    end)
  end)

  it(T .. "test_release_not_acquired", function()
    local sem = asyncio.BoundedSemaphore()
    assert_raises(H.ValueError, sem.release, sem)
  end)

  it(T .. "test_release_no_waiters", function()
    H.run(function()
      local sem = asyncio.Semaphore()
      sem:acquire()
      assert.is_true(sem:locked())
      sem:release()
      assert.is_false(sem:locked())
    end)
  end)

  it(T .. "test_acquire_fifo_order", function()
    H.run(function()
      local sem = asyncio.Semaphore(1)
      local result = {}
      local function coro(tag)
        sem:acquire()
        result[#result + 1] = tag .. "_1"
        asyncio.sleep(0.01)
        sem:release()
        sem:acquire()
        result[#result + 1] = tag .. "_2"
        asyncio.sleep(0.01)
        sem:release()
      end
      asyncio.gather(asyncio.create_task(coro, "c1"), asyncio.create_task(coro, "c2"),
        asyncio.create_task(coro, "c3"))
      assert.same({ "c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2" }, result)
    end)
  end)

  it(T .. "test_acquire_fifo_order_2", function()
    H.run(function()
      local sem = asyncio.Semaphore(1)
      local result = {}
      local function c1()
        sem:acquire()
        result[#result + 1] = 1
        return true
      end
      local function c2()
        sem:acquire()
        result[#result + 1] = 2
        sem:release()
        sem:acquire()
        result[#result + 1] = 4
        return true
      end
      local function c3()
        sem:acquire()
        result[#result + 1] = 3
        return true
      end
      local t1 = asyncio.create_task(c1)
      local t2 = asyncio.create_task(c2)
      local t3 = asyncio.create_task(c3)
      asyncio.sleep(0)
      sem:release()
      sem:release()
      asyncio.gather(t1, t2, t3)
      assert.same({ 1, 2, 3, 4 }, result)
    end)
  end)

  it(T .. "test_acquire_fifo_order_3", function()
    H.run(function()
      local sem = asyncio.Semaphore(0)
      local result = {}
      local function c(n)
        return function()
          sem:acquire()
          result[#result + 1] = n
          return true
        end
      end
      local t1 = asyncio.create_task(c(1))
      local t2 = asyncio.create_task(c(2))
      local t3 = asyncio.create_task(c(3))
      asyncio.sleep(0)
      t1:cancel()
      asyncio.sleep(0)
      sem:release()
      sem:release()
      asyncio.gather(t1, t2, t3, { return_exceptions = true })
      assert.same({ 2, 3 }, result)
    end)
  end)

  -- Barrier: the API asyncio has (Barrier(parties), :wait() -> index,
  -- :reset(), :abort(), .parties, .n_waiting, .broken, BrokenBarrierError;
  -- `async with barrier as i` is barrier:with(function(i) ... end)).
  T = "test_locks.py::BarrierTests."
  local N = 5
  local BrokenBarrierError = asyncio.BrokenBarrierError

  local function make_tasks(n, coro)
    local tasks = {}
    for i = 1, n do tasks[i] = asyncio.create_task(coro) end
    return tasks
  end

  local function gather_tasks(n, coro)
    local tasks = make_tasks(n, coro)
    local res = asyncio.gather(table.unpack(tasks))
    return res, tasks
  end

  local function sorted(list)
    local copy = { table.unpack(list) }
    table.sort(copy)
    return copy
  end

  local function except_broken(fn, handler, ...)
    local ok, e = pcall(fn, ...)
    if ok then return false end
    if not BrokenBarrierError:is(e) then error(e, 0) end
    handler(e)
    return true
  end

  it(T .. "test_barrier_parties", function()
    H.run(function()
      assert_raises("Barrier", asyncio.Barrier, 0)
      assert_raises("Barrier", asyncio.Barrier, -4)
      assert.is_not_nil(asyncio.Barrier(N))
    end)
  end)

  it(T .. "test_context_manager", function()
    H.run(function()
      local n = 3
      local barrier = asyncio.Barrier(n)
      local results = {}
      gather_tasks(n, function()
        barrier:with(function(i) results[#results + 1] = i end)
      end)
      assert.same({ 0, 1, 2 }, sorted(results))
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_filling_one_task", function()
    H.run(function()
      local barrier = asyncio.Barrier(1)
      local ret = barrier:with(function() return true end)
      assert.is_true(ret)
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_filling_one_task_twice", function()
    H.run(function()
      local barrier = asyncio.Barrier(1)
      local t1 = asyncio.create_task(barrier.wait, barrier)
      asyncio.sleep(0)
      assert.equal(0, barrier.n_waiting)
      local t2 = asyncio.create_task(barrier.wait, barrier)
      asyncio.sleep(0)
      assert.equal(t1:result(), t2:result())
      assert.equal(t1:done(), t2:done())
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_filling_task_by_task", function()
    H.run(function()
      local barrier = asyncio.Barrier(3)
      local t1 = asyncio.create_task(barrier.wait, barrier)
      asyncio.sleep(0)
      assert.equal(1, barrier.n_waiting)
      assert.matches("filling", tostring(barrier))
      local t2 = asyncio.create_task(barrier.wait, barrier)
      asyncio.sleep(0)
      assert.equal(2, barrier.n_waiting)
      assert.matches("filling", tostring(barrier))
      local t3 = asyncio.create_task(barrier.wait, barrier)
      asyncio.sleep(0)
      asyncio.wait({ t1, t2, t3 })
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_filling_tasks_wait_twice", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results = {}
      gather_tasks(N, function()
        barrier:with(function()
          results[#results + 1] = true
          barrier:with(function() results[#results + 1] = false end)
        end)
      end)
      local t, f = 0, 0
      for _, v in ipairs(results) do if v then t = t + 1 else f = f + 1 end end
      assert.equal(N * 2, #results)
      assert.equal(N, t)
      assert.equal(N, f)
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_filling_tasks_check_return_value", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2 = {}, {}
      local res = gather_tasks(N, function()
        return barrier:with(function()
          results1[#results1 + 1] = true
          return barrier:with(function(i)
            results2[#results2 + 1] = true
            return i
          end)
        end)
      end)
      assert.equal(N, #results1)
      assert.equal(N, #results2)
      assert.same({ 0, 1, 2, 3, 4 }, sorted({ table.unpack(res, 1, res.n) }))
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_draining_state", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results = {}
      gather_tasks(N, function()
        barrier:with(function()
          -- the barrier goes back to filling when the last task leaves
          results[#results + 1] = tostring(barrier):find("draining") ~= nil
        end)
      end)
      assert.equal(N, #results)
      assert.is_false(results[N])
      for i = 1, N - 1 do assert.is_true(results[i]) end
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_blocking_tasks_while_draining", function()
    H.run(function()
      local rewait = 2
      local barrier = asyncio.Barrier(N)
      local barrier_nowaiting = asyncio.Barrier(N - rewait)
      local rewait_n = rewait
      -- succeeds when barrier_nowaiting was waited for exactly N - rewait times
      gather_tasks(N, function()
        barrier:wait() -- first time
        if rewait_n > 0 then
          rewait_n = rewait_n - 1
          barrier:wait() -- again, only for the rewait tasks
        else
          barrier_nowaiting:wait() -- the end of the draining state
          barrier:wait() -- the other waiting tasks
        end
      end)
    end)
  end)

  it(T .. "test_filling_tasks_cancel_one", function()
    H.run(function()
      local barrier = asyncio.Barrier(3)
      local results = {}
      local function coro()
        barrier:wait()
        results[#results + 1] = true
      end
      local t1 = asyncio.create_task(coro)
      asyncio.sleep(0)
      assert.equal(1, barrier.n_waiting)
      local t2 = asyncio.create_task(coro)
      asyncio.sleep(0)
      assert.equal(2, barrier.n_waiting)
      t1:cancel()
      asyncio.sleep(0)
      assert.equal(1, barrier.n_waiting)
      assert_raises(CancelledError, t1.await, t1)
      assert.is_true(t1:cancelled())
      local t3 = asyncio.create_task(coro)
      asyncio.sleep(0)
      assert.equal(2, barrier.n_waiting)
      local t4 = asyncio.create_task(coro)
      asyncio.gather(t2, t3, t4)
      assert.equal(3, #results)
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_reset_barrier", function()
    H.run(function()
      local barrier = asyncio.Barrier(1)
      asyncio.create_task(barrier.reset, barrier)
      asyncio.sleep(0)
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_reset_barrier_while_tasks_waiting", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results = {}
      -- N-1 tasks wait on a barrier of N parties
      local tasks = make_tasks(N - 1, function()
        except_broken(barrier.wait, function() results[#results + 1] = true end, barrier)
      end)
      asyncio.sleep(0)
      -- reset it
      asyncio.create_task(barrier.reset, barrier)
      asyncio.gather(table.unpack(tasks))
      assert.equal(N - 1, #results)
      assert.equal(0, barrier.n_waiting)
      assert.is_nil(tostring(barrier):find("resetting"))
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_reset_barrier_when_tasks_half_draining", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1 = {}
      local rest_of_tasks = N // 2
      gather_tasks(N, function()
        local broken = except_broken(barrier.wait, function()
          results1[#results1 + 1] = true -- the waiting tasks
        end, barrier)
        -- a drained task, out of the barrier (upstream reads the private
        -- count of tasks still inside)
        if not broken and rest_of_tasks == barrier._count then barrier:reset() end
      end)
      assert.equal(rest_of_tasks, #results1)
      assert.equal(0, barrier.n_waiting)
      assert.is_nil(tostring(barrier):find("resetting"))
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_reset_barrier_when_tasks_half_draining_half_blocking", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2 = {}, {}
      local blocking_tasks = N // 2
      local count = 0
      gather_tasks(N, function()
        local broken = except_broken(barrier.wait, function()
          -- the tasks still waiting
          results1[#results1 + 1] = true
        end, barrier)
        if broken then
          -- wait again to reach the number of parties
          barrier:wait()
          return
        end
        count = count + 1
        if count > blocking_tasks then
          -- reset: the waiting tasks get BrokenBarrierError
          barrier:reset()
          -- wait again to reach the number of parties
          barrier:wait()
        else
          except_broken(barrier.wait, function()
            -- not reached: the blocked tasks wait
            results2[#results2 + 1] = true
          end, barrier)
        end
      end)
      assert.equal(blocking_tasks, #results1)
      assert.equal(0, #results2)
      assert.equal(0, barrier.n_waiting)
      assert.is_nil(tostring(barrier):find("resetting"))
      assert.is_false(barrier.broken)
    end)
  end)

  it(T .. "test_reset_barrier_while_tasks_waiting_and_waiting_again", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2 = {}, {}
      local function coro1()
        H.try_finally(function()
          except_broken(barrier.wait, function() results1[#results1 + 1] = true end, barrier)
        end, function()
          barrier:wait()
          results2[#results2 + 1] = true
        end)
      end
      local function coro2()
        barrier:with(function() results2[#results2 + 1] = true end)
      end
      local tasks = make_tasks(N - 1, coro1)
      -- reset: the N-1 waiting tasks get BrokenBarrierError
      asyncio.create_task(barrier.reset, barrier)
      asyncio.sleep(0)
      -- complete the waiting tasks in their finally
      asyncio.create_task(coro2)
      asyncio.gather(table.unpack(tasks))
      assert.is_false(barrier.broken)
      assert.equal(N - 1, #results1)
      assert.equal(N, #results2)
      assert.equal(0, barrier.n_waiting)
    end)
  end)

  it(T .. "test_reset_barrier_while_tasks_draining", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2, results3 = {}, {}, {}
      local count = 0
      gather_tasks(N, function()
        barrier:wait()
        count = count + 1
        if count == N then
          -- the last task out of the barrier
          barrier:reset()
          -- wait here to reach the parties
          barrier:wait()
        else
          local ok = pcall(barrier.wait, barrier) -- second wait
          if ok then results1[#results1 + 1] = true -- N-1 tasks here
          else results2[#results2 + 1] = true end -- never here
        end
        -- pass the barrier again: the last wait completes
        barrier:wait()
        results3[#results3 + 1] = true
      end)
      assert.is_false(barrier.broken)
      assert.equal(N - 1, #results1)
      assert.equal(0, #results2)
      assert.equal(N, #results3)
      assert.equal(0, barrier.n_waiting)
    end)
  end)

  it(T .. "test_abort_barrier", function()
    H.run(function()
      local barrier = asyncio.Barrier(1)
      asyncio.create_task(barrier.abort, barrier)
      asyncio.sleep(0)
      assert.equal(0, barrier.n_waiting)
      assert.is_true(barrier.broken)
    end)
  end)

  it(T .. "test_abort_barrier_when_tasks_half_draining_half_blocking", function()
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2 = {}, {}
      local blocking_tasks = N // 2
      local count = 0
      gather_tasks(N, function()
        local broken = except_broken(barrier.wait, function()
          -- the tasks waiting to drain
          results1[#results1 + 1] = true
        end, barrier)
        if broken then return end
        count = count + 1
        if count > blocking_tasks then
          -- abort: BrokenBarrierError for every task
          barrier:abort()
        else
          except_broken(barrier.wait, function()
            -- the blocked tasks (already drained)
            results2[#results2 + 1] = true
          end, barrier)
        end
      end)
      assert.is_true(barrier.broken)
      assert.equal(blocking_tasks, #results1)
      assert.equal(N - blocking_tasks - 1, #results2)
      assert.equal(0, barrier.n_waiting)
      assert.is_nil(tostring(barrier):find("resetting"))
    end)
  end)

  it(T .. "test_abort_barrier_when_exception", function()
    -- from threading.Barrier's tests (lock_tests.test_reset)
    H.run(function()
      local barrier = asyncio.Barrier(N)
      local results1, results2 = {}, {}
      gather_tasks(N, function()
        local ok, e = pcall(function()
          barrier:with(function(i)
            if i == N // 2 then error(H.TestError()) end
          end)
          barrier:with(function() results1[#results1 + 1] = true end)
        end)
        if ok then return end
        if BrokenBarrierError:is(e) then
          results2[#results2 + 1] = true
        elseif H.TestError:is(e) then
          barrier:abort()
        else
          error(e, 0)
        end
      end)
      assert.is_true(barrier.broken)
      assert.equal(0, #results1)
      assert.equal(N - 1, #results2)
      assert.equal(0, barrier.n_waiting)
    end)
  end)

  it(T .. "test_abort_barrier_when_exception_then_resetting", function()
    -- from threading.Barrier's tests (lock_tests.test_abort_and_reset)
    H.run(function()
      local barrier1 = asyncio.Barrier(N)
      local barrier2 = asyncio.Barrier(N)
      local results1, results2, results3 = {}, {}, {}
      gather_tasks(N, function()
        local ok, e = pcall(function()
          local i = barrier1:wait()
          if i == N // 2 then error(H.TestError()) end
          barrier1:wait()
          results1[#results1 + 1] = true
        end)
        if not ok then
          if BrokenBarrierError:is(e) then
            results2[#results2 + 1] = true
          elseif H.TestError:is(e) then
            barrier1:abort()
          else
            error(e, 0)
          end
        end
        -- synchronize and reset barrier1: first so that everyone has left
        -- it, after so that nobody enters it before the reset
        local i = barrier2:wait()
        if i == N // 2 then barrier1:reset() end
        barrier2:wait()
        barrier1:wait()
        results3[#results3 + 1] = true
      end)
      assert.is_false(barrier1.broken)
      assert.equal(0, #results1)
      assert.equal(N - 1, #results2)
      assert.equal(N, #results3)
      assert.equal(0, barrier1.n_waiting)
    end)
  end)
end)
