-- trio.lowlevel: tasks, checkpoints, wait_task_rescheduled / reschedule,
-- system tasks, ParkingLot, trio tokens.
local trio = require "trio"
local core = require "trio_asyncio.core"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has
local lowlevel = trio.lowlevel

-- Appends v to t (as a call, so blocking calls in v finish first).
local function push(t, v)
  t[#t + 1] = v
end

-- Yields with sleep(0) until cond() holds (at most n times).
local function wait_until(cond, n)
  for _ = 1, n or 100 do
    if cond() then return end
    trio.sleep(0)
  end
  error("condition never became true", 2)
end

describe("trio.lowlevel.current_task", function()
  it("returns the same object every time within a task", function()
    local same = trio.run(function()
      local a = lowlevel.current_task()
      trio.sleep(0)
      return rawequal(a, lowlevel.current_task())
    end)
    assert.is_true(same)
  end)

  it("returns a different object in each task", function()
    local distinct = trio.run(function()
      local tasks = { lowlevel.current_task() }
      trio.open_nursery(function(n)
        for _ = 1, 2 do n:start_soon(function() push(tasks, lowlevel.current_task()) end) end
      end)
      return tasks[1] ~= tasks[2] and tasks[2] ~= tasks[3] and tasks[1] ~= tasks[3] and #tasks == 3
    end)
    assert.is_true(distinct)
  end)

  it("has a name, the trio flavor and a readable tostring", function()
    local name, flavor, str = trio.run(function()
      local t = lowlevel.current_task()
      return t.name, t.flavor, tostring(t)
    end)
    assert.equal("string", type(name))
    assert.is_true(#name > 0)
    assert.equal("trio", flavor)
    assert_has(str:lower(), "task")
    assert_has(str, "0x")
  end)

  it("a task object is a full task whichever way it first reaches Lua", function()
    -- (a spawned task gets its metatable only when it is first handed out)
    local function body() trio.sleep(0) end
    local info = debug.getinfo(body, "S")
    local full = { "userdata", "trio", info.short_src .. ":" .. info.linedefined, false, true }
    local function describe_task(t)
      return { type(t), t.flavor, t.name, t.done, tostring(t):match("^trio task '") ~= nil }
    end
    local seen = trio.run(function()
      local got = {}
      got.system = describe_task(lowlevel.spawn_system_task(body))
      trio.open_nursery(function(n)
        n:start_soon(body)
        got.child = describe_task(n.child_tasks[1])
        n:start_soon(function() got.current = describe_task(lowlevel.current_task()) end)
      end)
      return got
    end)
    assert.same(full, seen.system)
    assert.same(full, seen.child)
    local current = seen.current
    assert.same({ "userdata", "trio", false, true }, { current[1], current[2], current[4], current[5] })
    local spawned = trio.run(function()
      local got
      lowlevel.add_instrument({
        task_spawned = function(_, t)
          if t.name == full[3] then got = describe_task(t) end
        end,
      })
      trio.open_nursery(function(n) n:start_soon(body) end)
      return got
    end)
    assert.same(full, spawned)
  end)

  it("parent_nursery is the nursery that spawned the task", function()
    local same = trio.run(function()
      return trio.open_nursery(function(n)
        local got
        n:start_soon(function() got = lowlevel.current_task().parent_nursery end)
        trio.sleep(0.005)
        return rawequal(got, n)
      end)
    end)
    assert.is_true(same)
  end)

  it("child_nurseries lists the nurseries open in the task", function()
    local before, inside, same, after = trio.run(function()
      local t = lowlevel.current_task()
      local b = #t.child_nurseries
      local i, s
      trio.open_nursery(function(n)
        local list = t.child_nurseries
        i = #list
        s = rawequal(list[1], n)
      end)
      return b, i, s, #t.child_nurseries
    end)
    assert.same({ 0, 1, true, 0 }, { before, inside, same, after })
  end)

  it("a task in a nested nursery sees the chain of parents", function()
    local ok = trio.run(function()
      local root = lowlevel.current_task()
      return trio.open_nursery(function(n)
        local r
        n:start_soon(function()
          local me = lowlevel.current_task()
          r = rawequal(me.parent_nursery, n) and rawequal(root.child_nurseries[1], n)
        end)
        trio.sleep(0.005)
        return r
      end)
    end)
    assert.is_true(ok)
  end)
end)

describe("trio.lowlevel.current_root_task", function()
  it("is the same task object from every task in the run", function()
    local same, is_task = trio.run(function()
      local roots = { lowlevel.current_root_task() }
      trio.open_nursery(function(n)
        n:start_soon(function() push(roots, lowlevel.current_root_task()) end)
      end)
      return rawequal(roots[1], roots[2]), roots[1] ~= nil and roots[1].flavor == "trio"
    end)
    assert.is_true(same)
    assert.is_true(is_task)
  end)
end)

describe("checkpoints", function()
  it("checkpoint yields to other tasks", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() push(log, "child") end)
        push(log, "before")
        lowlevel.checkpoint()
        push(log, "after")
      end)
    end)
    assert.same({ "before", "child", "after" }, log)
  end)

  it("checkpoint raises Cancelled in a cancelled scope", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(lowlevel.checkpoint)
      return scope
    end)
    assert.is_true(s.cancelled_caught)
  end)

  it("checkpoint_if_cancelled does nothing when not cancelled, not even yield", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() push(log, "child") end)
        lowlevel.checkpoint_if_cancelled()
        push(log, "body")
      end)
    end)
    assert.same({ "body", "child" }, log)
  end)

  it("checkpoint_if_cancelled raises Cancelled when cancelled", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        lowlevel.checkpoint_if_cancelled()
        error("unreachable")
      end)
      return scope
    end)
    assert.is_true(s.cancelled_caught)
  end)

  -- Trio: every operation starts with checkpoint_if_cancelled, which in a
  -- cancelled scope is a whole checkpoint (a schedule point, then
  -- Cancelled), so other tasks run before the Cancelled comes out.
  it("operations in a cancelled scope raise Cancelled after a schedule point", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(1)
      local a, b = trio.socket.socketpair()
      local stream = trio.SocketStream(a)
      local listener = trio.socket.socket()
      listener:bind({ "127.0.0.1", 0 })
      listener:listen(1)
      local r, w = trio.socket.socketpair()
      local ops = {
        checkpoint_if_cancelled = lowlevel.checkpoint_if_cancelled,
        ["send on a channel with room"] = function() send:send(1) end,
        ["receive"] = function() recv:receive() end,
        wait_readable = function() lowlevel.wait_readable(r:fileno()) end,
        ["SocketStream:send_all"] = function() stream:send_all("x") end,
        ["SocketStream:receive_some"] = function() stream:receive_some(10) end,
        accept = function() listener:accept() end,
      }
      for name, op in pairs(ops) do
        local scope = trio.CancelScope()
        scope:cancel()
        trio.open_nursery(function(n)
          scope:run(function()
            n:start_soon(function() push(log, name .. ": another task ran") end)
            op()
            push(log, name .. ": returned")
          end)
          push(log, name .. (scope.cancelled_caught and ": Cancelled" or ": not cancelled"))
        end)
        assert.same({ name .. ": another task ran", name .. ": Cancelled" }, log)
        log = {}
      end
      assert.equal(0, recv:statistics().current_buffer_used) -- the cancelled send sent nothing
      stream:send_all("y") -- the cancelled send_all left the stream usable
      assert.equal("y", b:recv(10))
      for _, s in ipairs({ stream, b, listener, r, w }) do s:close() end
    end)
  end)

  it("cancel_shielded_checkpoint yields but never raises Cancelled", function()
    local log = {}
    trio.run(function()
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(function()
        trio.open_nursery(function(n)
          -- the child runs in the same cancelled scope but does not checkpoint
          n:start_soon(function() push(log, "child") end)
          lowlevel.cancel_shielded_checkpoint()
          push(log, "after shielded checkpoint")
        end)
      end)
    end)
    assert.same({ "child", "after shielded checkpoint" }, log)
  end)
end)

describe("wait_task_rescheduled and reschedule", function()
  it("reschedule(task, true, v) makes the wait return v", function()
    local got = trio.run(function()
      local v
      trio.open_nursery(function(n)
        local waiter
        n:start_soon(function()
          waiter = lowlevel.current_task()
          v = lowlevel.wait_task_rescheduled(function() return lowlevel.Abort.SUCCEEDED end)
        end)
        trio.sleep(0.005)
        lowlevel.reschedule(waiter, true, "value")
      end)
      return v
    end)
    assert.equal("value", got)
  end)

  it("reschedule(task, false, err) makes the wait raise err", function()
    local got = trio.run(function()
      local e
      trio.open_nursery(function(n)
        local waiter
        n:start_soon(function()
          waiter = lowlevel.current_task()
          local ok
          ok, e = pcall(lowlevel.wait_task_rescheduled, function() return lowlevel.Abort.SUCCEEDED end)
          assert(not ok)
        end)
        trio.sleep(0.005)
        lowlevel.reschedule(waiter, false, "raised")
      end)
      return e
    end)
    assert.equal("raised", got)
  end)

  it("the waiter does not run before it is rescheduled", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        local waiter
        n:start_soon(function()
          waiter = lowlevel.current_task()
          lowlevel.wait_task_rescheduled(function() return lowlevel.Abort.SUCCEEDED end)
          push(log, "woke")
        end)
        trio.sleep(0.02)
        push(log, "rescheduling")
        lowlevel.reschedule(waiter, true)
      end)
    end)
    assert.same({ "rescheduling", "woke" }, log)
  end)

  it("on cancellation abort_fn is called with raise_cancel; SUCCEEDED raises Cancelled", function()
    local calls, arg_type, caught = trio.run(function()
      local c, t = 0, nil
      local scope = trio.move_on_after(0.005, function()
        lowlevel.wait_task_rescheduled(function(raise_cancel)
          c = c + 1
          t = type(raise_cancel)
          return lowlevel.Abort.SUCCEEDED
        end)
      end)
      return c, t, scope.cancelled_caught
    end)
    assert.equal(1, calls)
    assert.equal("function", arg_type)
    assert.is_true(caught)
  end)

  it("FAILED keeps the task parked until it is rescheduled", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        local waiter
        local scope = trio.CancelScope()
        n:start_soon(function()
          waiter = lowlevel.current_task()
          scope:run(function()
            local v = lowlevel.wait_task_rescheduled(function()
              push(log, "abort called")
              return lowlevel.Abort.FAILED
            end)
            push(log, "woke with " .. tostring(v))
          end)
        end)
        trio.sleep(0.005)
        scope:cancel()
        trio.sleep(0.01)
        push(log, "rescheduling")
        lowlevel.reschedule(waiter, true, "late value")
      end)
    end)
    assert.same({ "abort called", "rescheduling", "woke with late value" }, log)
  end)

  it("abort_fn is not called when the task was rescheduled first", function()
    local aborts = trio.run(function()
      local c = 0
      trio.open_nursery(function(n)
        local waiter
        local scope = trio.CancelScope()
        n:start_soon(function()
          waiter = lowlevel.current_task()
          scope:run(function()
            lowlevel.wait_task_rescheduled(function() c = c + 1 return lowlevel.Abort.SUCCEEDED end)
          end)
        end)
        trio.sleep(0.005)
        lowlevel.reschedule(waiter, true)
        scope:cancel()
      end)
      return c
    end)
    assert.equal(0, aborts)
  end)

  it("Abort has two distinct values", function()
    assert.is_not_nil(lowlevel.Abort.SUCCEEDED)
    assert.is_not_nil(lowlevel.Abort.FAILED)
    assert.are_not.equal(lowlevel.Abort.SUCCEEDED, lowlevel.Abort.FAILED)
  end)
end)

describe("trio.lowlevel.spawn_system_task", function()
  it("runs fn with its arguments", function()
    local got = trio.run(function()
      local v
      lowlevel.spawn_system_task(function(a, b) v = a + b end, 2, 3)
      trio.sleep(0.005)
      return v
    end)
    assert.equal(5, got)
  end)

  it("does not keep the run alive: it is cancelled when the main task ends", function()
    local log = {}
    local r = trio.run(function()
      lowlevel.spawn_system_task(function()
        local _, e = pcall(trio.sleep_forever)
        push(log, "system task cancelled=" .. tostring(trio.Cancelled:is(e)))
        error(e, 0)
      end)
      trio.sleep(0.005)
      return "main result"
    end)
    assert.equal("main result", r)
    assert.same({ "system task cancelled=true" }, log)
  end)

  it("is not cancelled by the caller's cancel scope", function()
    local log = {}
    trio.run(function()
      local done = trio.Event()
      trio.move_on_after(0.005, function()
        lowlevel.spawn_system_task(function()
          trio.sleep(0.02)
          push(log, "system task finished")
          done:set()
        end)
        trio.sleep_forever()
      end)
      done:wait()
    end)
    assert.same({ "system task finished" }, log)
  end)

  it("a nursery child spawned after the main task ended is heard when the main task's object was collected", function()
    -- The main task's collected object gave its slot back; the child took
    -- it, and its exit was taken for the main task's, so its nursery waited
    -- for ever (the run hung in its I/O wait).
    local code = [[
      local trio = require "trio"
      local ok = trio.run(function()
        trio.lowlevel.spawn_system_task(function()
          collectgarbage()
          trio.open_nursery(function(nursery) nursery:start_soon(trio.sleep_forever) end)
        end)
        return true
      end)
      print("run returned", ok)
    ]]
    local child = require "child"
    child.expect_lines(child.run(code, { timeout = 10 }), { "run returned\ttrue" })
  end)
end)

describe("trio.lowlevel.ParkingLot", function()
  it("unpark wakes parked tasks in FIFO order", function()
    local log = {}
    trio.run(function()
      local lot = lowlevel.ParkingLot()
      trio.open_nursery(function(n)
        for i = 1, 3 do
          n:start_soon(function() lot:park() push(log, i) end)
          wait_until(function() return lot:statistics().tasks_waiting == i end)
        end
        for _ = 1, 3 do
          lot:unpark()
          trio.sleep(0.002)
        end
      end)
    end)
    assert.same({ 1, 2, 3 }, log)
  end)

  it("unpark with a count wakes that many; unpark_all wakes the rest", function()
    local after_two, after_all = trio.run(function()
      local lot, woke, a = lowlevel.ParkingLot(), 0, nil
      trio.open_nursery(function(n)
        for _ = 1, 5 do n:start_soon(function() lot:park() woke = woke + 1 end) end
        wait_until(function() return lot:statistics().tasks_waiting == 5 end)
        lot:unpark(2)
        trio.sleep(0.005)
        a = woke
        lot:unpark_all()
      end)
      return a, woke
    end)
    assert.equal(2, after_two)
    assert.equal(5, after_all)
  end)

  it("unpark on an empty lot does nothing", function()
    local ok = trio.run(function()
      local lot = lowlevel.ParkingLot()
      lot:unpark()
      lot:unpark_all()
      return lot:statistics().tasks_waiting == 0
    end)
    assert.is_true(ok)
  end)

  it("a cancelled park leaves the lot", function()
    local waiting, caught = trio.run(function()
      local lot = lowlevel.ParkingLot()
      local s = trio.move_on_after(0.005, function() lot:park() end)
      return lot:statistics().tasks_waiting, s.cancelled_caught
    end)
    assert.equal(0, waiting)
    assert.is_true(caught)
  end)

  it("a cancelled parker is skipped by unpark", function()
    local log = {}
    trio.run(function()
      local lot = lowlevel.ParkingLot()
      local scope_a = trio.CancelScope()
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope_a:run(function() lot:park() push(log, "A woke") end)
        end)
        wait_until(function() return lot:statistics().tasks_waiting == 1 end)
        n:start_soon(function() lot:park() push(log, "B woke") end)
        wait_until(function() return lot:statistics().tasks_waiting == 2 end)
        scope_a:cancel()
        lot:unpark()
      end)
    end)
    assert.same({ "B woke" }, log)
  end)
end)

describe("trio.lowlevel.current_trio_token", function()
  it("run_sync_soon calls fn with its arguments inside the run", function()
    local got = trio.run(function()
      local token = lowlevel.current_trio_token()
      local v
      local done = trio.Event()
      token:run_sync_soon(function(a, b)
        v = a .. b
        done:set()
      end, "x", "y")
      done:wait()
      return v
    end)
    assert.equal("xy", got)
  end)

  it("is the same token for every task of a run", function()
    local same = trio.run(function()
      local t1 = lowlevel.current_trio_token()
      local t2
      trio.open_nursery(function(n) n:start_soon(function() t2 = lowlevel.current_trio_token() end) end)
      return t1 == t2
    end)
    assert.is_true(same)
  end)

  it("run_sync_soon callbacks run in the order they were queued", function()
    local log = {}
    trio.run(function()
      local token = lowlevel.current_trio_token()
      local done = trio.Event()
      for i = 1, 5 do token:run_sync_soon(function() push(log, i) if i == 5 then done:set() end end) end
      done:wait()
    end)
    assert.same({ 1, 2, 3, 4, 5 }, log)
  end)

  it("run_sync_soon's last argument is its options only when it is exactly {idempotent = <boolean>}", function()
    local log = {}
    trio.run(function()
      local token = lowlevel.current_trio_token()
      local data = { idempotent = true, more = 1 }
      local function cb(...) push(log, { n = select("#", ...), ... }) end
      token:run_sync_soon(cb, "a", { idempotent = false }) -- options: queued, not idempotent
      token:run_sync_soon(cb, "a", { idempotent = false })
      token:run_sync_soon(cb, "b", data)                   -- a value: passed on
      token:run_sync_soon(cb, setmetatable({ idempotent = true }, {}))
      token:run_sync_soon(cb, "c", { idempotent = true })
      token:run_sync_soon(cb, "c", { idempotent = true })  -- queued already
      trio.testing.wait_all_tasks_blocked()
      token:run_sync_soon(cb, "c", { idempotent = true })  -- the first one ran: queued again
      trio.testing.wait_all_tasks_blocked()
      assert.equal(data, log[3][2])
    end)
    assert.equal(6, #log)
    assert.same({ n = 1, "a" }, log[1])
    assert.same({ n = 1, "a" }, log[2])
    assert.equal(2, log[3].n)
    assert.equal(1, log[4].n)
    assert.same({ n = 1, "c" }, log[5])
    assert.same({ n = 1, "c" }, log[6])
  end)

  it("run_sync_soon after the run finished raises RunFinishedError", function()
    local token = trio.run(lowlevel.current_trio_token)
    local e = errof(token.run_sync_soon, token, function() end)
    assert.is_true(trio.RunFinishedError:is(e))
  end)
end)

describe("trio.lowlevel.in_trio_run / in_trio_task", function()
  it("are true where current_trio_token() / current_task() work", function()
    local asyncio = require "asyncio"
    assert.is_false(lowlevel.in_trio_run())
    assert.is_false(lowlevel.in_trio_task())
    local seen = {}
    trio.run(function()
      seen.main = { lowlevel.in_trio_run(), lowlevel.in_trio_task() }
      lowlevel.current_trio_token():run_sync_soon(function()
        seen.callback = { lowlevel.in_trio_run(), lowlevel.in_trio_task() }
      end)
      local co = coroutine.wrap(function() return lowlevel.in_trio_task() end)
      seen.coroutine = { lowlevel.in_trio_run(), co() }
      trio.sleep(0)
    end)
    assert.same({ true, true }, seen.main)
    assert.same({ true, false }, seen.callback) -- the scheduler's, no task
    assert.same({ true, false }, seen.coroutine) -- a plain coroutine is no task
    -- asyncio.run runs on a Trio run too: the run is there, its Tasks are
    -- no Trio tasks
    asyncio.run(function()
      seen.aio = { lowlevel.in_trio_run(), lowlevel.in_trio_task() }
    end)
    assert.same({ true, false }, seen.aio)
    assert.is_false(lowlevel.in_trio_run())
  end)
end)

describe("trio.lowlevel.current_clock", function()
  it("is the run's MockClock, else the system clock with the methods of Trio's Clock", function()
    local clock = trio.testing.MockClock()
    local got = lowlevel.run { clock = clock, fn = function() return lowlevel.current_clock() end }
    assert.equal(clock, got)
    local sys = trio.run(function()
      local c = lowlevel.current_clock()
      local now = trio.current_time()
      assert.is_true(math.abs(c:current_time() - now) < 0.5)
      assert.is_true(math.abs(c:deadline_to_sleep_time(now + 10) - 10) < 0.5)
      c:start_clock()
      return c
    end)
    assert.is_not_nil(sys)
    assert.matches("must be called inside trio.run", errof(lowlevel.current_clock))
  end)

  it("MockClock has the Clock methods: deadline_to_sleep_time is in real seconds", function()
    local c = trio.testing.MockClock()
    c:start_clock()
    local now = c:current_time()
    assert.equal(0, c:deadline_to_sleep_time(now - 1))
    assert.equal(999999999, c:deadline_to_sleep_time(now + 1)) -- standing still
    c.rate = 2
    local t = c:deadline_to_sleep_time(c:current_time() + 10)
    assert.is_true(t > 4.9 and t <= 5, tostring(t))
  end)
end)

describe("trio.lowlevel.current_statistics", function()
  it("counts tasks, the run_sync_soon queue, deadlines and fd waits", function()
    local a, b = support.raw_socketpair()
    local fd = b:getfd()
    local ok, err = pcall(trio.run, function()
      trio.fail_after(5, function()
        local s0 = lowlevel.current_statistics()
        assert.equal(0, s0.io_statistics.tasks_waiting_read)
        assert.equal("libuv", s0.io_statistics.backend)
        assert.is_true(s0.seconds_to_next_deadline <= 5 and s0.seconds_to_next_deadline > 4)
        trio.open_nursery(function(n)
          n:start_soon(lowlevel.wait_readable, fd)
          trio.testing.wait_all_tasks_blocked()
          local s = lowlevel.current_statistics()
          assert.equal(s0.tasks_living + 1, s.tasks_living)
          assert.equal(1, s.io_statistics.tasks_waiting_read)
          assert.equal(0, s.io_statistics.tasks_waiting_write)
          lowlevel.current_trio_token():run_sync_soon(function() end)
          assert.equal(1, lowlevel.current_statistics().run_sync_soon_queue_size)
          a:send("x")
        end)
      end)
    end)
    a:close()
    b:close()
    assert(ok, err)
    assert.matches("must be called inside trio.run", errof(lowlevel.current_statistics))
  end)
end)

describe("Task.custom_sleep_data", function()
  it("stays while the task is parked and is cleared when it is rescheduled", function()
    trio.run(function()
      local seen = {}
      trio.open_nursery(function(n)
        local sleeper
        n:start_soon(function()
          sleeper = lowlevel.current_task()
          sleeper.custom_sleep_data = { waiting_for = "a note" }
          local v = lowlevel.wait_task_rescheduled(function() return lowlevel.Abort.SUCCEEDED end)
          seen.after = sleeper.custom_sleep_data or "nil"
          seen.value = v
        end)
        trio.testing.wait_all_tasks_blocked()
        seen.parked = sleeper.custom_sleep_data.waiting_for -- read by another task
        lowlevel.reschedule(sleeper, true, "woken")
      end)
      assert.same({ parked = "a note", after = "nil", value = "woken" }, seen)
      local me = lowlevel.current_task()
      me.custom_sleep_data = false -- any value, false included
      assert.is_false(me.custom_sleep_data)
      me.custom_sleep_data = nil
      assert.is_nil(me.custom_sleep_data)
      assert_has(errof(function() me.id = 3 end), "task field 'id' is read-only")
    end)
  end)
end)

describe("trio.lowlevel fd waits: argument errors name the public function", function()
  it("wait_readable, wait_writable and notify_closing", function()
    local errs = { trio.run(function()
      return errof(lowlevel.wait_readable, -1), errof(lowlevel.wait_writable, "x"),
        errof(lowlevel.notify_closing, 1.5)
    end) }
    assert_has(errs[1], "bad argument #1 to 'trio.lowlevel.wait_readable' (not a valid file descriptor: -1)")
    assert_has(errs[2],
      "bad argument #1 to 'trio.lowlevel.wait_writable' (fd: integer or object with fileno() expected, got string)")
    assert_has(errs[3],
      "bad argument #1 to 'trio.lowlevel.notify_closing' (fd: integer or object with fileno() expected, got float)")
  end)

  it("an object whose fileno() is not an integer, or is out of range, is refused", function()
    local errs = { trio.run(function()
      return errof(lowlevel.wait_readable, { fileno = function() return "3" end }),
        errof(lowlevel.wait_writable, setmetatable({}, { __index = { fileno = function() return -1 end } })),
        errof(lowlevel.wait_readable, { read = function() end })
    end) }
    assert_has(errs[1], "bad argument #1 to 'trio.lowlevel.wait_readable' (its fileno() gave string, not an integer)")
    assert_has(errs[2], "bad argument #1 to 'trio.lowlevel.wait_writable' (not a valid file descriptor: -1)")
    assert_has(errs[3], "(fd: integer or object with fileno() expected, got table)")
  end)
end)

describe("trio.lowlevel fd waits take objects with fileno() or getfd(), as Trio does", function()
  it("a trio.socket socket, and an object with getfd() (LuaSocket's name)", function()
    local order = {}
    local a, b = support.raw_socketpair() -- a.sock is the trio.socket socket
    trio.run(function()
      trio.fail_after(5, function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            lowlevel.wait_readable(b.sock)
            order[#order + 1] = "readable: " .. b:receive(1)
            lowlevel.wait_readable(b)
            order[#order + 1] = "readable again: " .. b:receive(1)
          end)
          lowlevel.wait_writable(a.sock)
          order[#order + 1] = "writable"
          trio.testing.wait_all_tasks_blocked()
          a:send("x")
          trio.testing.wait_all_tasks_blocked()
          a:send("y")
        end)
      end)
    end)
    a:close()
    b:close()
    assert.same({ "writable", "readable: x", "readable again: y" }, order)
  end)

  it("notify_closing takes the socket too and wakes its waiter", function()
    local err = trio.run(function()
      local a, b = trio.socket.socketpair()
      local caught
      trio.open_nursery(function(n)
        n:start_soon(function() caught = errof(lowlevel.wait_readable, a) end)
        trio.testing.wait_all_tasks_blocked()
        lowlevel.notify_closing(a)
      end)
      a:close()
      b:close()
      return caught
    end)
    assert_has(err, "trio.ClosedResourceError: the file descriptor was closed while waiting")
  end)
end)

describe("trio.lowlevel.notify_closing", function()
  it("is an error outside trio.run, as in Trio, and a no-op inside one for an fd nobody waits on", function()
    assert_has(errof(lowlevel.notify_closing, 0), "trio.lowlevel.notify_closing: must be called inside trio.run")
    trio.run(function()
      assert.is_nil(lowlevel.notify_closing(-1))
      assert.is_nil(lowlevel.notify_closing(0))
    end)
  end)

  it("wakes the reader and the writer of the fd with ClosedResourceError, and the fd can be waited on again", function()
    local a, b = trio.socket.socketpair()
    finally(function()
      a:close()
      b:close()
    end)
    local fd = a:fileno()
    trio.run(function()
      trio.fail_after(5, function()
        local woken = {}
        local big = string.rep("x", 65536)
        while core.sock_raw_send(a, big) do end -- a is not writable now
        trio.open_nursery(function(n)
          for _, wait in ipairs { lowlevel.wait_readable, lowlevel.wait_writable } do
            n:start_soon(function()
              local ok2, e = pcall(wait, fd)
              assert.is_false(ok2)
              assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
              woken[#woken + 1] = e.message
            end)
          end
          trio.testing.wait_all_tasks_blocked()
          lowlevel.notify_closing(fd)
        end)
        assert.same({ "the file descriptor was closed while waiting",
                      "the file descriptor was closed while waiting" }, woken)
        trio.open_nursery(function(n)
          n:start_soon(lowlevel.wait_readable, fd)
          trio.testing.wait_all_tasks_blocked()
          assert.equal(1, core.sock_raw_send(b, "y"))
        end)
      end)
    end)
  end)

  it("wait_readable on an fd a SocketStream has read from is an OSError (EEXIST) naming the fix", function()
    local a, b = trio.socket.socketpair()
    local stream = trio.SocketStream(a)
    finally(function()
      stream:close()
      b:close()
    end)
    trio.run(function()
      assert.equal(1, core.sock_raw_send(b, "x"))
      assert.equal("x", stream:receive_some(10))
      local e = errof(lowlevel.wait_readable, a:fileno())
      assert.equal("EEXIST", e.code)
      assert_has(e.message, "fd " .. a:fileno() .. " is read through one of our streams")
      assert_has(e.message, "use the stream's own methods")
    end)
  end)
end)
