-- trio.testing.MockClock, trio.testing.wait_all_tasks_blocked and
-- instruments.
local trio = require "trio"
local lowlevel = trio.lowlevel

-- Appends v to t (as a call, so blocking calls in v finish first).
local function push(t, v)
  t[#t + 1] = v
end

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
  return nil
end

describe("trio.testing.MockClock", function()
  it("refuses a negative rate or autojump_threshold, naming the field, and keeps the old value", function()
    local clock = trio.testing.MockClock { rate = 1, autojump_threshold = 2 }
    local ok, err = pcall(function() clock.rate = -1 end)
    assert.is_false(ok)
    assert.matches("rate must be >= 0", err, 1, true)
    ok, err = pcall(function() clock.autojump_threshold = -0.5 end)
    assert.is_false(ok)
    assert.matches("autojump_threshold must be >= 0", err, 1, true)
    assert.same({ 1, 2 }, { clock.rate, clock.autojump_threshold })
  end)

  it("with autojump_threshold = 0 a long sleep completes at once", function()
    local clock = trio.testing.MockClock { autojump_threshold = 0 }
    local wall0 = os.time()
    local dt = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        trio.sleep(3600)
        return trio.current_time() - t0
      end,
      clock = clock,
    }
    assert.is_true(os.time() - wall0 <= 2)
    assert.is_true(math.abs(dt - 3600) < 1e-6, "advanced " .. dt)
  end)

  it("rate defaults to 0: time stands still while tasks run", function()
    local clock = trio.testing.MockClock()
    assert.equal(0, clock.rate)
    local same = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        local c0 = os.clock()
        while os.clock() - c0 < 0.02 do end
        trio.sleep(0)
        return trio.current_time() == t0
      end,
      clock = clock,
    }
    assert.is_true(same)
  end)

  it("jump advances current_time by exactly that much", function()
    local clock = trio.testing.MockClock()
    local dt = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        clock:jump(10)
        return trio.current_time() - t0
      end,
      clock = clock,
    }
    assert.is_true(math.abs(dt - 10) < 1e-9, "advanced " .. dt)
  end)

  it("jump wakes the sleepers whose deadline it passes", function()
    local log = {}
    local clock = trio.testing.MockClock()
    lowlevel.run {
      fn = function()
        trio.open_nursery(function(n)
          n:start_soon(function() trio.sleep(10) push(log, "10") end)
          n:start_soon(function() trio.sleep(20) push(log, "20") end)
          trio.testing.wait_all_tasks_blocked()
          push(log, "jump 15")
          clock:jump(15)
          trio.testing.wait_all_tasks_blocked()
          push(log, "jump 10")
          clock:jump(10)
        end)
      end,
      clock = clock,
    }
    assert.same({ "jump 15", "10", "jump 10", "20" }, log)
  end)

  it("autojump wakes sleepers in deadline order with exact times", function()
    local log = {}
    lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        trio.open_nursery(function(n)
          for _, d in ipairs { 30, 10, 20 } do
            n:start_soon(function()
              trio.sleep(d)
              push(log, ("%d@%g"):format(d, trio.current_time() - t0))
            end)
          end
        end)
      end,
      clock = trio.testing.MockClock { autojump_threshold = 0 },
    }
    assert.same({ "10@10", "20@20", "30@30" }, log)
  end)

  it("fail_after under autojump raises TooSlowError after the mock timeout", function()
    local is_too_slow, elapsed = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        local ok, e = pcall(trio.fail_after, 5, trio.sleep, 100)
        return (not ok) and trio.TooSlowError:is(e), trio.current_time() - t0
      end,
      clock = trio.testing.MockClock { autojump_threshold = 0 },
    }
    assert.is_true(is_too_slow)
    assert.is_true(math.abs(elapsed - 5) < 1e-6, "elapsed " .. elapsed)
  end)

  it("does not autojump while some task is runnable", function()
    local log = {}
    lowlevel.run {
      fn = function()
        trio.open_nursery(function(n)
          n:start_soon(function() trio.sleep(1) push(log, "sleeper") end)
          for _ = 1, 50 do trio.sleep(0) end
          push(log, "busy done")
        end)
      end,
      clock = trio.testing.MockClock { autojump_threshold = 0 },
    }
    assert.same({ "busy done", "sleeper" }, log)
  end)

  it("autojump_threshold can be set while running", function()
    local clock = trio.testing.MockClock()
    local dt = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        clock.autojump_threshold = 0
        trio.sleep(500)
        return trio.current_time() - t0
      end,
      clock = clock,
    }
    assert.is_true(math.abs(dt - 500) < 1e-6)
  end)

  it("a positive autojump_threshold jumps after that much real idle time", function()
    local wall0 = os.time()
    local dt = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        trio.sleep(1000)
        return trio.current_time() - t0
      end,
      clock = trio.testing.MockClock { autojump_threshold = 0.02 },
    }
    assert.is_true(os.time() - wall0 <= 3)
    assert.is_true(dt >= 1000 - 1e-6)
  end)

  it("rate = 1 follows real time", function()
    local clock = trio.testing.MockClock()
    clock.rate = 1
    local dt = lowlevel.run {
      fn = function()
        local t0 = trio.current_time()
        trio.sleep(0.03)
        return trio.current_time() - t0
      end,
      clock = clock,
    }
    assert.is_true(dt >= 0.029 and dt < 5, "elapsed " .. dt)
  end)
end)

describe("trio.testing.wait_all_tasks_blocked", function()
  it("returns only when every other task is blocked", function()
    local log = {}
    trio.run(function()
      local ev = trio.Event()
      trio.open_nursery(function(n)
        for i = 1, 3 do
          n:start_soon(function()
            for _ = 1, 10 * i do trio.sleep(0) end
            push(log, "task " .. i .. " blocked")
            ev:wait()
          end)
        end
        trio.testing.wait_all_tasks_blocked()
        push(log, "all blocked")
        ev:set()
      end)
    end)
    assert.same({ "task 1 blocked", "task 2 blocked", "task 3 blocked", "all blocked" }, log)
  end)

  it("counts a task in a timed sleep as blocked", function()
    local dt = trio.run(function()
      local t0 = trio.current_time()
      local d
      trio.open_nursery(function(n)
        n:start_soon(trio.sleep, 10)
        trio.testing.wait_all_tasks_blocked()
        d = trio.current_time() - t0
        n.cancel_scope:cancel()
      end)
      return d
    end)
    assert.is_true(dt < 5, "waited " .. dt)
  end)

  it("returns at once-ish when there are no other tasks", function()
    local ok = trio.run(function()
      trio.testing.wait_all_tasks_blocked()
      return true
    end)
    assert.is_true(ok)
  end)

  it("is cancellable", function()
    local caught = trio.run(function()
      local s = trio.CancelScope()
      s:cancel()
      s:run(trio.testing.wait_all_tasks_blocked)
      return s.cancelled_caught
    end)
    assert.is_true(caught)
  end)

  it("with a cushion, waits until every other task has been blocked that long (real seconds)", function()
    local log = {}
    trio.run(function()
      trio.fail_after(5, function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            -- blocked for 0.02 s at a time: never for the 0.1 s cushion
            for i = 1, 5 do
              trio.sleep(0.02)
              push(log, "tick " .. i)
            end
          end)
          local t0 = trio.current_time()
          trio.testing.wait_all_tasks_blocked(0.1)
          push(log, "idle")
          local waited = trio.current_time() - t0
          assert.is_true(waited >= 0.1 + 0.1 - 0.01, "waited " .. waited) -- the ticks, then the cushion
        end)
      end)
    end)
    assert.same({ "tick 1", "tick 2", "tick 3", "tick 4", "tick 5", "idle" }, log)
  end)

  it("wakes the waiters of the smallest cushion first, then the others after theirs", function()
    local log = {}
    trio.run(function()
      trio.fail_after(5, function()
        trio.open_nursery(function(n)
          n:start_soon(function() trio.testing.wait_all_tasks_blocked(0.05) push(log, "0.05") end)
          n:start_soon(function() trio.testing.wait_all_tasks_blocked(0.01) push(log, "0.01 a") end)
          n:start_soon(function() trio.testing.wait_all_tasks_blocked(0.01) push(log, "0.01 b") end)
          trio.testing.wait_all_tasks_blocked(0.03)
          push(log, "0.03")
        end)
      end)
    end)
    assert.same({ "0.01 a", "0.01 b", "0.03", "0.05" }, log)
  end)

  it("checks its cushion", function()
    trio.run(function()
      local ok, e = pcall(trio.testing.wait_all_tasks_blocked, -1)
      assert.is_false(ok)
      assert.matches("cushion must be >= 0", e)
      ok, e = pcall(trio.testing.wait_all_tasks_blocked, 0 / 0)
      assert.is_false(ok)
      assert.matches("cushion must be >= 0", e)
    end)
  end)
end)

-- An instrument that logs every hook as {name, arg}.
local function recorder()
  local log = {}
  local inst = { log = log }
  for _, name in ipairs { "before_run", "after_run", "task_spawned", "task_scheduled",
    "before_task_step", "after_task_step", "task_exited", "before_io_wait", "after_io_wait" } do
    inst[name] = function(self, arg)
      assert(self == inst, "instrument hooks are called as methods")
      log[#log + 1] = { name, arg }
    end
  end
  return inst
end

local function names_for(log, task)
  local out = {}
  for _, e in ipairs(log) do
    if e[2] == task and e[1]:match("task") then out[#out + 1] = e[1] end
  end
  return out
end

describe("instruments", function()
  it("before_run comes first and after_run last", function()
    local inst = recorder()
    lowlevel.run { fn = function() trio.sleep(0) end, instruments = { inst } }
    assert.equal("before_run", inst.log[1][1])
    assert.equal("after_run", inst.log[#inst.log][1])
    local br, ar = 0, 0
    for _, e in ipairs(inst.log) do
      if e[1] == "before_run" then br = br + 1 end
      if e[1] == "after_run" then ar = ar + 1 end
    end
    assert.same({ 1, 1 }, { br, ar })
  end)

  it("follows a child task from spawn to exit", function()
    local inst = recorder()
    local child
    lowlevel.run {
      fn = function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            child = lowlevel.current_task()
            trio.sleep(0)
            trio.sleep(0)
          end)
        end)
      end,
      instruments = { inst },
    }
    local seq = names_for(inst.log, child)
    assert.equal("task_spawned", seq[1], table.concat(seq, ","))
    assert.equal("task_scheduled", seq[2], table.concat(seq, ","))
    local exited = index_of(seq, "task_exited")
    assert.is_not_nil(exited)
    local steps_before, steps_after, last_before = 0, 0, 0
    for i, name in ipairs(seq) do
      if name == "before_task_step" then steps_before = steps_before + 1 last_before = i end
      if name == "after_task_step" then steps_after = steps_after + 1 end
    end
    assert.equal(3, steps_before)
    assert.equal(3, steps_after)
    assert.is_true(exited > last_before)
    -- steps alternate before/after
    local depth = 0
    for _, name in ipairs(seq) do
      if name == "before_task_step" then depth = depth + 1 end
      if name == "after_task_step" then depth = depth - 1 end
      assert.is_true(depth == 0 or depth == 1)
    end
  end)

  it("task_scheduled fires when a parked task is woken", function()
    local inst = recorder()
    local child
    lowlevel.run {
      fn = function()
        local ev = trio.Event()
        trio.open_nursery(function(n)
          n:start_soon(function() child = lowlevel.current_task() ev:wait() end)
          trio.testing.wait_all_tasks_blocked()
          local before = #inst.log
          ev:set()
          local found = false
          for i = before + 1, #inst.log do
            if inst.log[i][1] == "task_scheduled" and inst.log[i][2] == child then found = true end
          end
          assert(found, "no task_scheduled for the woken task")
        end)
      end,
      instruments = { inst },
    }
  end)

  it("before_io_wait / after_io_wait bracket a blocking wait with a timeout", function()
    local inst = recorder()
    lowlevel.run { fn = function() trio.sleep(0.01) end, instruments = { inst } }
    local b = nil
    for i, e in ipairs(inst.log) do
      if e[1] == "before_io_wait" and type(e[2]) == "number" and e[2] > 0 then b = i break end
    end
    assert.is_not_nil(b, "no before_io_wait with a positive timeout")
    assert.equal("after_io_wait", inst.log[b + 1][1])
    assert.equal(inst.log[b][2], inst.log[b + 1][2])
  end)

  it("add_instrument during a run starts the calls; remove_instrument stops them", function()
    local inst = recorder()
    local t1, t2
    trio.run(function()
      lowlevel.add_instrument(inst)
      trio.open_nursery(function(n)
        n:start_soon(function() t1 = lowlevel.current_task() end)
      end)
      lowlevel.remove_instrument(inst)
      trio.open_nursery(function(n)
        n:start_soon(function() t2 = lowlevel.current_task() end)
      end)
    end)
    assert.equal("task_spawned", names_for(inst.log, t1)[1])
    assert.same({}, names_for(inst.log, t2))
  end)

  it("hooks that an instrument lacks are simply skipped", function()
    local spawned = 0
    local inst = { task_spawned = function() spawned = spawned + 1 end }
    lowlevel.run {
      fn = function()
        trio.open_nursery(function(n)
          for _ = 1, 4 do n:start_soon(trio.sleep, 0) end
        end)
      end,
      instruments = { inst },
    }
    assert.is_true(spawned >= 4)
  end)

  it("several instruments all get called", function()
    local a, b = recorder(), recorder()
    lowlevel.run { fn = function() trio.sleep(0) end, instruments = { a, b } }
    assert.equal("before_run", a.log[1][1])
    assert.equal("before_run", b.log[1][1])
  end)

  it("a checkpoint reschedules the task inside its step, where the step hooks see it current", function()
    local seen = {}
    local child
    local inst = {}
    for _, name in ipairs { "before_task_step", "task_scheduled", "after_task_step" } do
      inst[name] = function(_, task)
        if task == child then seen[#seen + 1] = { name, lowlevel.current_task() == task } end
      end
    end
    lowlevel.run {
      instruments = { inst },
      fn = function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            child = lowlevel.current_task()
            lowlevel.checkpoint()
            trio.sleep_forever()
          end)
          trio.testing.wait_all_tasks_blocked()
          n.cancel_scope:cancel()
        end)
      end,
    }
    -- (child is known from inside its first step on)
    assert.same({ "task_scheduled", true }, seen[1])
    assert.same({ "after_task_step", true }, seen[2])
    assert.same({ "before_task_step", true }, seen[3])
  end)

  it("task_exited runs with the exiting task current", function()
    local current_at_exit
    local task = lowlevel.run {
      instruments = { { task_exited = function() current_at_exit = lowlevel.current_task() end } },
      fn = function() return lowlevel.current_task() end,
    }
    assert.equal(task, current_at_exit)
  end)

  it("takes an instrument's methods when it is added", function()
    local calls = 0
    local inst = {}
    lowlevel.run {
      instruments = { inst },
      fn = function()
        inst.before_task_step = function() calls = calls + 1 end
        trio.sleep(0)
        assert.equal(0, calls)
        lowlevel.remove_instrument(inst)
        lowlevel.add_instrument(inst)
        trio.sleep(0)
        assert.equal(1, calls)
      end,
    }
  end)

  it("add_instrument raises what looking up a method raises, and adds nothing", function()
    local evil = setmetatable({}, { __index = function(_, k) error("no " .. k, 0) end })
    lowlevel.run {
      fn = function()
        local ok, err = pcall(lowlevel.add_instrument, evil)
        assert.is_false(ok)
        assert.equal("no before_run", err)
        assert.has_error(function() lowlevel.remove_instrument(evil) end)
      end,
    }
    -- given to run, it fails the call and leaves no instrument behind
    local calls = 0
    local good = { before_task_step = function() calls = calls + 1 end }
    assert.has_error(function()
      lowlevel.run { instruments = { good, evil }, fn = function() end }
    end, "no before_run")
    lowlevel.run { fn = function() trio.sleep(0) end }
    assert.equal(0, calls)
  end)
end)

describe("a clock of the user's (Trio's Clock interface)", function()
  --- A clock that runs `speed` times faster than real time.
  local function fast_clock(speed)
    local clock = { started = 0, reads = 0 }
    local function real() return require("trio_asyncio.core").monotonic() end
    function clock:start_clock()
      self.started = self.started + 1
      self.t0 = real() -- the clock starts at 0
    end
    function clock:current_time()
      self.reads = self.reads + 1
      return (real() - self.t0) * speed
    end
    function clock:deadline_to_sleep_time(deadline)
      return (deadline - self:current_time()) / speed
    end
    return clock
  end

  it("is the run's time: sleeps and deadlines follow it", function()
    local clock = fast_clock(100)
    local real0 = require("trio_asyncio.core").monotonic()
    local r = trio.lowlevel.run { clock = clock, fn = function()
      assert.equal(clock, trio.lowlevel.current_clock())
      local t0 = trio.current_time()
      trio.sleep(10) -- 0.1 s of real time
      local slept = trio.current_time() - t0
      local scope = trio.move_on_after(5, trio.sleep_forever)
      return { slept = slept, caught = scope.cancelled_caught }
    end }
    local real = require("trio_asyncio.core").monotonic() - real0
    assert.equal(1, clock.started)
    assert.is_true(clock.reads > 0)
    assert.is_true(r.slept >= 10 and r.slept < 100, tostring(r.slept))
    assert.is_true(r.caught)
    assert.is_true(real >= 0.14 and real < 5, tostring(real))
  end)

  it("an error of start_clock is a TrioInternalError before anything runs", function()
    local ran = false
    local ok, e = pcall(trio.lowlevel.run, {
      clock = {
        start_clock = function() error("no start", 0) end,
        current_time = function() return 0 end,
        deadline_to_sleep_time = function() return 0 end,
      },
      fn = function() ran = true end,
    })
    assert.is_false(ok)
    assert.is_true(trio.TrioInternalError:is(e), tostring(e))
    assert.equal("no start", e.cause)
    assert.is_false(ran)
  end)

  it("an error of current_time ends the run with TrioInternalError", function()
    local clock = fast_clock(1)
    local calls = 0
    function clock:current_time()
      calls = calls + 1
      if calls > 3 then error("clock broke", 0) end
      return calls
    end
    local ok, e = pcall(trio.lowlevel.run, { clock = clock, fn = function()
      for _ = 1, 10 do trio.current_time() end
      trio.sleep(1)
    end })
    assert.is_false(ok)
    assert.is_true(trio.TrioInternalError:is(e), tostring(e))
    assert.equal("clock broke", e.cause)
  end)

  it("is checked before the run starts", function()
    local ok, e = pcall(trio.lowlevel.run, { clock = { current_time = function() return 0 end }, fn = function() end })
    assert.is_false(ok)
    assert.matches("clock must be a trio.testing.MockClock or an object with start_clock", e)
    assert.matches("has no start_clock", e)
  end)
end)
