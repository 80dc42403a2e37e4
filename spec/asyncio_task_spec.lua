-- asyncio Tasks: creation and results, names, cancellation (cancel(msg),
-- cancelling/uncancel, cleanup that awaits, propagation to an awaited
-- task), current_task/all_tasks, error reporting through the loop's
-- exception handler (callbacks, unretrieved task errors), bad yields, and
-- asyncio.run.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local CancelledError, InvalidStateError = asyncio.CancelledError, asyncio.InvalidStateError

local function with_loop(fn)
  local loop = asyncio.new_event_loop()
  local ok, e = pcall(fn, loop)
  if not loop:is_closed() and not loop:is_running() then loop:close() end
  if not ok then error(e, 0) end
end

--- pcall(fn, ...) returning only the error (nil when it succeeded).
local function catch(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return e
end

describe("create_task", function()
  it("runs the function with its arguments, not before the creator yields", function()
    local log = {}
    asyncio.run(function()
      local t = asyncio.create_task(function(a, b) log[#log + 1] = "child " .. a .. b end, "x", "y")
      log[#log + 1] = "created"
      asyncio.sleep(0)
      log[#log + 1] = "after sleep"
      t:await()
    end)
    assert.same({ "created", "child xy", "after sleep" }, log)
  end)

  it("tasks start in creation order", function()
    local log = {}
    asyncio.run(function()
      local ts = {}
      for i = 1, 4 do ts[i] = asyncio.create_task(function() log[#log + 1] = i end) end
      for i = 1, 4 do ts[i]:await() end
    end)
    assert.same({ 1, 2, 3, 4 }, log)
  end)

  it("asyncio.create_task finds the running loop from a Task, a callback or an allow_asyncio task", function()
    local ta = require "trio_asyncio"
    local loops = {}
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local t = asyncio.create_task(function() return "from task" end)
      local fut = loop:create_future()
      loop:call_soon(function() fut:set_result(asyncio.create_task(function() return "from callback" end)) end)
      local from_cb = fut:await()
      loops[1], loops[2] = t:get_loop() == loop, from_cb:get_loop() == loop
      assert.equal("from task", t:await())
      assert.equal("from callback", from_cb:await())
    end)
    local r = ta.run(function()
      return ta.allow_asyncio(function()
        local t = asyncio.create_task(function() return "from allow_asyncio" end)
        loops[3] = t:get_loop() == asyncio.get_running_loop()
        return t:await()
      end)
    end)
    assert.equal("from allow_asyncio", r)
    assert.same({ true, true, true }, loops)
  end)

  it("asyncio.create_task outside a loop says there is no running event loop", function()
    local e = catch(asyncio.create_task, function() end)
    assert_has(e, "no running event loop")
  end)

  it("loop:create_task works outside a running loop", function()
    with_loop(function(loop)
      local t = loop:create_task(function(x) return x * 2 end, 21)
      assert.is_false(t:done())
      assert.equal(42, loop:run_until_complete(t))
    end)
  end)

  it("a Task is a Future: done, result, exception, get_loop", function()
    with_loop(function(loop)
      local t = loop:create_task(function() return "r" end)
      assert.is_true(asyncio.isfuture(t))
      assert.equal(loop, t:get_loop())
      local e = errof(t.result, t)
      assert.is_true(InvalidStateError:is(e))
      loop:run_until_complete(t)
      assert.is_true(t:done())
      assert.equal("r", t:result())
      assert.is_nil(t:exception())
    end)
  end)

  it("a Task keeps its loop alive, before it starts, while it sleeps and once it is done", function()
    -- (its thread keeps the loop while it runs, then the Task itself does)
    local weak = setmetatable({}, { __mode = "v" })
    local tasks = {}
    do
      local loop = asyncio.new_event_loop()
      weak.loop = loop
      loop:set_exception_handler(function() end) -- (the pending ones, collected at the end)
      tasks.sleeping = loop:create_task(asyncio.sleep, 10)
      tasks.done = loop:create_task(function() return 1, 2 end)
      tasks.failed = loop:create_task(function() error("boom") end)
      tasks.cancelled = loop:create_task(function() end)
      tasks.cancelled:cancel()
      loop:run_until_complete(function() asyncio.sleep(0) end)
      tasks.new = loop:create_task(asyncio.sleep, 10)
      loop:close()
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_not_nil(weak.loop)
    for _, name in ipairs({ "sleeping", "done", "failed", "cancelled", "new" }) do
      assert.equal(weak.loop, tasks[name]:get_loop())
    end
    assert.same({ n = 2, 1, 2 }, table.pack(tasks.done:result()))
    assert.matches("boom", tostring(tasks.failed:exception()), 1, true)
    assert.is_true(tasks.cancelled:cancelled())
    assert.is_false(tasks.sleeping:done())
    assert.is_false(tasks.new:done())
    tasks = nil -- luacheck: ignore 311
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(weak.loop)
  end)

  it("returns multiple values through :result(), :await() and run_until_complete", function()
    with_loop(function(loop)
      local t = loop:create_task(function() return 1, nil, "three", false end)
      local viarun = table.pack(loop:run_until_complete(t))
      assert.same({ n = 4, 1, nil, "three", false }, viarun)
      assert.same({ n = 4, 1, nil, "three", false }, table.pack(t:result()))
      local viaawait = loop:run_until_complete(function() return table.pack(t:await()) end)
      assert.same({ n = 4, 1, nil, "three", false }, viaawait)
    end)
  end)

  it("returns zero values when the function returns nothing", function()
    with_loop(function(loop)
      local t = loop:create_task(function() end)
      loop:run_until_complete(function() t:await() end)
      assert.equal(0, select("#", t:result()))
    end)
  end)

  it("a failing task: await raises the error, exception() returns it", function()
    with_loop(function(loop)
      local err = errors.RuntimeError("task failed")
      local t = loop:create_task(function() asyncio.sleep(0); error(err) end)
      local got = loop:run_until_complete(function() return catch(t.await, t) end)
      assert.equal(err, got)
      assert.equal(err, t:exception())
      assert.equal(err, errof(t.result, t))
      assert.is_false(t:cancelled())
    end)
  end)

  it("Task does not support set_result / set_exception", function()
    with_loop(function(loop)
      local t = loop:create_task(function() end)
      assert_has(errof(t.set_result, t, 1), "set_result")
      assert_has(errof(t.set_exception, t, "e"), "set_exception")
      loop:run_until_complete(t)
    end)
  end)

  it("done callbacks of a task get the task", function()
    with_loop(function(loop)
      local got
      local t = loop:create_task(function() return 5 end)
      t:add_done_callback(function(f) got = f:result() end)
      loop:run_until_complete(function()
        t:await()
        asyncio.sleep(0)
      end)
      assert.equal(5, got)
    end)
  end)
end)

describe("task factories and asyncio.Task", function()
  it("a loop has none until set; set_task_factory takes a function or nil", function()
    with_loop(function(loop)
      assert.is_nil(loop:get_task_factory())
      assert_has(catch(loop.set_task_factory, loop, 1), "task factory must be a function or nil")
      assert.is_nil(loop:get_task_factory())
      local factory = setmetatable({}, { __call = function(_, l, fn, ...) return asyncio.Task(l, fn, ...) end })
      loop:set_task_factory(factory)
      assert.equal(factory, loop:get_task_factory())
      loop:set_task_factory(nil)
      assert.is_nil(loop:get_task_factory())
    end)
  end)

  it("every way of making a Task goes through the factory, which gets (loop, fn, args...)", function()
    with_loop(function(loop)
      local calls = {}
      loop:set_task_factory(function(l, fn, ...)
        assert.equal(loop, l)
        calls[#calls + 1] = select("#", ...)
        local t = asyncio.Task(l, fn, ...) -- a Task, whatever the factory
        t:set_name("made-" .. #calls)
        return t
      end)
      local function add(a, b) return a + b end
      local t1 = loop:create_task(add, 1, 2)
      assert.equal("made-1", t1:get_name())
      local r = loop:run_until_complete(function() -- made by ensure_future: made-2
        local t3 = asyncio.create_task(add, 3, 4)
        local g = asyncio.gather(function() return asyncio.current_task():get_name() end)
        return { t1:await(), t3:await(), t3:get_name(), g[1], asyncio.current_task():get_name() }
      end)
      assert.same({ 3, 7, "made-3", "made-4", "made-2" }, r)
      assert.same({ 2, 0, 2, 0 }, calls)
      loop:set_task_factory(nil)
      assert.equal("Task-", loop:create_task(add, 1, 1):get_name():sub(1, 5))
      loop:run_until_complete(function() asyncio.sleep(0) end)
    end)
  end)

  it("an error of the factory comes out of create_task", function()
    with_loop(function(loop)
      loop:set_task_factory(function() error("no tasks today", 0) end)
      assert.equal("no tasks today", catch(loop.create_task, loop, function() end))
      assert.equal("no tasks today", catch(loop.run_until_complete, loop, function() end))
    end)
  end)

  it("asyncio.Task([loop,] fn, ...) makes a Task on the loop given, or the running one", function()
    with_loop(function(loop)
      local t = asyncio.Task(loop, function(x) return x * 2 end, 21)
      assert.equal(42, loop:run_until_complete(t))
      assert.equal(loop, loop:run_until_complete(function()
        return asyncio.Task(function() return asyncio.get_running_loop() end):await()
      end))
      assert_has(catch(asyncio.Task, 42), "bad argument #1 to 'Task' (event loop or function expected")
      loop:close()
      assert_has(catch(asyncio.Task, loop, function() end), "Task: Event loop is closed")
    end)
  end)
end)

describe("task names", function()
  it("default names are Task-<n> and differ", function()
    asyncio.run(function()
      local a = asyncio.create_task(function() end)
      local b = asyncio.create_task(function() end)
      assert.is_truthy(a:get_name():match("^Task%-%d+$"), a:get_name())
      assert.are_not.equal(a:get_name(), b:get_name())
      a:await()
      b:await()
    end)
  end)

  it("set_name changes it (non-strings are converted)", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() end)
      t:set_name("worker")
      assert.equal("worker", t:get_name())
      t:set_name(12)
      assert.equal("12", t:get_name())
      assert_has(tostring(t), "12")
      t:await()
    end)
  end)
end)

describe("a Task as a task of the engine", function()
  it("has the fields every task has (name, flavor, id); done stays the method", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(0) end)
      t:set_name("worker")
      assert.equal("worker", t.name)
      assert.equal("asyncio", t.flavor)
      assert.is_number(t.id)
      assert.is_nil(t.no_such_field)
      t:await()
      assert.is_true(t:done())
    end)
  end)

  it("instruments see the Task itself at each step", function()
    local trio = require "trio"
    local steps, task = {}, nil
    local inst = {
      before_task_step = function(_, t)
        if t.flavor == "asyncio" then steps[#steps + 1] = t end
      end,
    }
    asyncio.run(function()
      trio.lowlevel.add_instrument(inst)
      task = asyncio.create_task(function()
        asyncio.sleep(0)
        asyncio.sleep(0)
      end)
      task:await()
      trio.lowlevel.remove_instrument(inst)
    end)
    -- its first step and one after each sleep(0); the main Task's steps too
    local mine = 0
    for _, t in ipairs(steps) do
      if rawequal(t, task) then mine = mine + 1 end
    end
    assert.equal(3, mine)
  end)
end)

describe("a Task's engine task is compact (no Trio part: engine.h)", function()
  it("Trio's lowlevel calls given a Task answer as for any task not in a Trio wait", function()
    local trio = require "trio"
    asyncio.run(function()
      local sleeper = asyncio.create_task(asyncio.sleep, 10)
      asyncio.sleep(0) -- it sleeps now, on its own timer
      local e = catch(trio.lowlevel.reschedule, sleeper)
      assert.matches("task is not blocked in wait_task_rescheduled", tostring(e), 1, true)
      assert.is_nil(sleeper.parent_nursery)
      assert.equal("asyncio", sleeper.flavor)
      local lot = trio.lowlevel.ParkingLot()
      trio.lowlevel.add_parking_lot_breaker(sleeper, lot)
      trio.lowlevel.remove_parking_lot_breaker(sleeper, lot)
      sleeper:cancel()
      assert.equal(CancelledError, errors.class_of(catch(sleeper.await, sleeper)))
      assert.is_true(sleeper:cancelled())
    end)
  end)

  it("many Tasks that sleep, are cancelled, fail or finish leave nothing behind", function()
    asyncio.run(function()
      local tasks = {}
      for i = 1, 300 do
        tasks[i] = asyncio.create_task(function()
          asyncio.sleep(i % 3 == 0 and 10 or 0.001)
          if i % 5 == 0 then error("task " .. i) end
          return i
        end)
      end
      for i = 3, 300, 3 do tasks[i]:cancel() end
      tasks[301] = { return_exceptions = true }
      local results = asyncio.gather(table.unpack(tasks, 1, 301))
      for i = 1, 300 do
        local r = results[i]
        if i % 3 == 0 then assert.equal(CancelledError, errors.class_of(r))
        elseif i % 5 == 0 then assert.matches("task " .. i, tostring(r), 1, true)
        else assert.equal(i, r) end
      end
    end)
  end)
end)

describe("sleeping Tasks held by the ready queue's free slots (loop.c: leases)", function()
  -- Tasks that go to sleep in the step the ready queue runs are kept alive
  -- by the queue slot they left; entries queued later take the slots back
  -- and move them on. Nothing else refers to these Tasks: one dropped by
  -- mistake would be collected (and reported) and never wake.
  local function burst(n, opts)
    local reported, woke = {}, {}
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) reported[#reported + 1] = ctx.message end)
      local cancelled = {}
      for i = 1, n do
        local t = asyncio.create_task(function()
          local ok, e = pcall(asyncio.sleep, 0.02 + (i % 5) * 0.01)
          woke[#woke + 1] = ok and i or errors.class_of(e) == CancelledError and -i or e
        end)
        if opts.cancel and i % opts.cancel == 0 then cancelled[#cancelled + 1] = t end
      end
      asyncio.sleep(0) -- each ran its first step and sleeps now
      for round = 1, opts.rounds or 0 do -- queue past the held slots, more than once around
        local count = 0
        for _ = 1, 3 * n do loop:call_soon(function() count = count + 1 end) end
        if round == 1 then for _, t in ipairs(cancelled) do t:cancel() end end
        collectgarbage("collect")
        asyncio.sleep(0)
        asyncio.sleep(0)
        assert.equal(3 * n, count)
      end
      cancelled = nil -- luacheck: ignore 311
      collectgarbage("collect")
      local deadline = loop:time() + 5
      while #woke < n and loop:time() < deadline do asyncio.sleep(0.01) end
    end)
    return woke, reported
  end

  it("a loop dropped while its Tasks sleep stays alive, with them, until it is closed", function()
    local weak = setmetatable({}, { __mode = "v" })
    do
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function() end)
      for _ = 1, 20 do loop:create_task(asyncio.sleep, 10) end
      loop:run_until_complete(function() asyncio.sleep(0) end)
      weak.loop, weak.task = loop, loop:create_task(asyncio.sleep, 10)
      loop:run_until_complete(function() asyncio.sleep(0) end)
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_not_nil(weak.loop)
    assert.is_not_nil(weak.task)
    assert.is_false(weak.task:done())
    weak.loop:close() -- drops the sleeps: then nothing holds them
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(weak.task)
    assert.is_nil(weak.loop)
  end)

  it("a burst of 1,000 sleeping Tasks, collected meanwhile, all wake", function()
    local woke, reported = burst(1000, {})
    assert.same({}, reported)
    table.sort(woke)
    for i = 1, 1000 do assert.equal(i, woke[i]) end
  end)

  it("callbacks queued over their slots, some cancelled: each Task wakes once, as it should", function()
    local woke, reported = burst(500, { rounds = 4, cancel = 7 })
    assert.same({}, reported)
    assert.equal(500, #woke)
    local seen = {}
    for _, v in ipairs(woke) do
      assert.is_number(v)
      assert.is_nil(seen[math.abs(v)])
      seen[math.abs(v)] = true
      assert.equal(math.abs(v) % 7 == 0, v < 0) -- cancelled ones end with CancelledError
    end
  end)
end)

describe("Task:cancel", function()
  it("cancel(msg) makes an awaiting task raise CancelledError with msg; the task ends cancelled", function()
    local r = asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      assert.is_true(t:cancel("enough"))
      local e = catch(t.await, t)
      return { CancelledError:is(e), e and e.message, t:cancelled(), t:done() }
    end)
    assert.same({ true, "enough", true, true }, r)
  end)

  -- issue #11: a Task that cancels itself hung at its next await
  it("a Task that cancels itself gets CancelledError at its next await", function()
    with_loop(function(loop)
      local t
      t = loop:create_task(function()
        t:cancel()
        asyncio.sleep(10)
        return 12
      end)
      local guard = loop:call_later(2, function() loop:stop() end) -- the bug hangs
      local e = catch(loop.run_until_complete, loop, t)
      guard:cancel()
      assert.is_true(CancelledError:is(e), tostring(e))
      assert.is_true(t:cancelled())
    end)
  end)

  it("a Task that cancels itself and returns ends cancelled", function()
    with_loop(function(loop)
      local t
      t = loop:create_task(function()
        t:cancel()
        return 12
      end)
      local e = catch(loop.run_until_complete, loop, t)
      assert.is_true(CancelledError:is(e), tostring(e))
      assert.is_true(t:cancelled())
    end)
  end)

  it("cancel() on a task that failed marks its error retrieved (nothing reported)", function()
    with_loop(function(loop)
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      loop:run_until_complete(function()
        local t = asyncio.create_task(function() error("boom") end)
        asyncio.sleep(0.01)
        assert.is_false(t:cancel())
      end)
      collectgarbage("collect")
      collectgarbage("collect")
      assert.same({}, ctxs)
    end)
  end)

  it("cancel returns false for a done task", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() return 1 end)
      t:await()
      assert.is_false(t:cancel())
      assert.is_false(t:cancelled())
      assert.equal(1, t:result())
    end)
  end)

  it("a task cancelled before it starts never runs its body", function()
    local ran = false
    asyncio.run(function()
      local t = asyncio.create_task(function() ran = true end)
      t:cancel()
      assert.is_true(CancelledError:is(catch(t.await, t)))
      assert.is_true(t:cancelled())
    end)
    assert.is_false(ran)
  end)

  it("result()/exception() of a cancelled task raise CancelledError with the message", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      t:cancel("msg here")
      catch(t.await, t)
      local e1, e2 = catch(t.result, t), catch(t.exception, t)
      assert.is_true(CancelledError:is(e1))
      assert.is_true(CancelledError:is(e2))
      assert.equal("msg here", e1.message)
      assert.equal("msg here", e2.message)
    end)
  end)

  it("cancelling() counts requests; uncancel() decrements", function()
    asyncio.run(function()
      local t = asyncio.create_task(function()
        local ok = pcall(asyncio.sleep, 10)
        assert.is_false(ok)
        return "survived"
      end)
      asyncio.sleep(0)
      assert.equal(0, t:cancelling())
      t:cancel()
      assert.equal(1, t:cancelling())
      t:cancel()
      assert.equal(2, t:cancelling())
      assert.equal(1, t:uncancel())
      assert.equal(0, t:uncancel())
      assert.equal(0, t:uncancel())
      assert.equal("survived", t:await())
    end)
  end)

  it("a task cancelled while awaiting can clean up with pcall and await in its cleanup", function()
    local log = {}
    asyncio.run(function()
      local t = asyncio.create_task(function()
        local ok, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "caught " .. tostring(CancelledError:is(e)) .. " " .. tostring(ok)
        asyncio.sleep(0.001)
        local fut = asyncio.get_running_loop():create_future()
        asyncio.get_running_loop():call_soon(function() fut:set_result("cleanup value") end)
        log[#log + 1] = fut:await()
        error(e, 0) -- re-raise the cancellation
      end)
      asyncio.sleep(0)
      t:cancel()
      local e = catch(t.await, t)
      log[#log + 1] = "outer sees " .. tostring(CancelledError:is(e))
      assert.is_true(t:cancelled())
    end)
    assert.same({ "caught true false", "cleanup value", "outer sees true" }, log)
  end)

  it("a task that swallows its cancellation finishes with its value", function()
    asyncio.run(function()
      local t = asyncio.create_task(function()
        pcall(asyncio.sleep, 10)
        return "kept going"
      end)
      asyncio.sleep(0)
      t:cancel()
      assert.equal("kept going", t:await())
      assert.is_false(t:cancelled())
    end)
  end)

  it("cancelling a task that awaits another task cancels the inner one", function()
    local log = {}
    asyncio.run(function()
      local inner = asyncio.create_task(function()
        local _, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "inner " .. tostring(CancelledError:is(e))
        error(e, 0)
      end)
      local outer = asyncio.create_task(function() return inner:await() end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      outer:cancel("stop both")
      local e = catch(outer.await, outer)
      assert.is_true(CancelledError:is(e))
      assert.is_true(outer:cancelled())
      assert.is_true(inner:cancelled())
    end)
    assert.same({ "inner true" }, log)
  end)

  it("cancel reaches the bottom of a chain of 5,000 Tasks each awaiting the next", function()
    local D = 5000
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local tasks, bottom, reached = {}, loop:create_future(), false
      local function level(d)
        if d == 0 then
          reached = true
          return bottom:await()
        end
        tasks[d] = asyncio.create_task(level, d - 1)
        return tasks[d]:await()
      end
      local top = asyncio.create_task(level, D)
      while not reached do asyncio.sleep(0) end
      assert.is_true(top:cancel("deep"))
      local e = catch(top.await, top)
      assert.is_true(CancelledError:is(e))
      assert.equal("deep", e.message)
      -- the traceback grows at each level it is raised again, up to a cap
      assert.is_true(#e.traceback < 40 * 1024, #e.traceback)
      assert_has(e.traceback, "are not shown")
      assert.is_true(bottom:cancelled())
      for d = 1, D do assert.is_true(tasks[d]:cancelled(), d) end
      assert.equal(1, tasks[1]:cancelling())
    end)
  end)

  it("cancel a task sleeping in a loop of sleeps stops it at the next await", function()
    asyncio.run(function()
      local n = 0
      local t = asyncio.create_task(function()
        while true do
          n = n + 1
          asyncio.sleep(0)
        end
      end)
      for _ = 1, 5 do asyncio.sleep(0) end
      t:cancel()
      local before = n
      assert.is_true(CancelledError:is(catch(t.await, t)))
      assert.is_true(n <= before + 1)
    end)
  end)

  it("cancelling the awaited future of a task cancels the task", function()
    asyncio.run(function()
      local fut = asyncio.get_running_loop():create_future()
      local t = asyncio.create_task(function() return fut:await() end)
      asyncio.sleep(0)
      fut:cancel("fut cancelled")
      local e = catch(t.await, t)
      assert.is_true(CancelledError:is(e))
      assert.is_true(t:cancelled())
    end)
  end)
end)

describe("current_task and all_tasks", function()
  it("current_task is the running task", function()
    asyncio.run(function()
      local seen
      local t = asyncio.create_task(function() seen = asyncio.current_task() end)
      t:await()
      assert.equal(t, seen)
      assert.is_not_nil(asyncio.current_task())
      assert.are_not.equal(t, asyncio.current_task())
    end)
  end)

  it("current_task is nil in a plain callback", function()
    with_loop(function(loop)
      local seen = "unset"
      loop:call_soon(function() seen = asyncio.current_task() end)
      loop:run_until_complete(function() asyncio.sleep(0) end)
      assert.is_nil(seen)
    end)
  end)

  it("current_task(loop) is the Task that loop runs now: nil for another loop, in a callback, outside", function()
    local other = asyncio.new_event_loop()
    with_loop(function(loop)
      local seen = {}
      loop:call_soon(function() seen.callback = asyncio.current_task(loop) or "nil" end)
      local task = loop:create_task(function()
        seen.own = asyncio.current_task(loop)
        seen.other = asyncio.current_task(other) or "nil"
      end)
      loop:run_until_complete(task)
      assert.equal(task, seen.own)
      assert.equal("nil", seen.other)
      assert.equal("nil", seen.callback)
      assert.is_nil(asyncio.current_task(loop))
      local ok, e = pcall(asyncio.current_task, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'current_task' %(event loop or nil expected", e)
    end)
    other:close()
  end)

  it("all_tasks lists the pending tasks of the loop, not the done ones", function()
    asyncio.run(function()
      local fut = asyncio.get_running_loop():create_future()
      local a = asyncio.create_task(function() fut:await() end)
      local b = asyncio.create_task(function() return 1 end)
      b:await()
      local set = {}
      for _, t in ipairs(asyncio.all_tasks()) do set[t] = true end
      assert.is_true(set[a])
      assert.is_true(set[asyncio.current_task()])
      assert.is_nil(set[b])
      fut:set_result(true)
      a:await()
    end)
  end)

  it("all_tasks lists them oldest first, and forgets a task once it is done", function()
    asyncio.run(function()
      local ev = asyncio.Event()
      local wait = function() ev:wait() end
      local a, b, c = asyncio.create_task(wait), asyncio.create_task(wait), asyncio.create_task(wait)
      asyncio.sleep(0)
      b:cancel()
      asyncio.sleep(0)
      assert.same({ asyncio.current_task(), a, c }, asyncio.all_tasks())
      ev:set()
      a:await()
      c:await()
      assert.same({ asyncio.current_task() }, asyncio.all_tasks())
    end)
  end)

  it("all_tasks(loop) works outside a running loop", function()
    with_loop(function(loop)
      local t = loop:create_task(function() end)
      local list = asyncio.all_tasks(loop)
      assert.equal(1, #list)
      assert.equal(t, list[1])
      loop:run_until_complete(t)
      assert.equal(0, #asyncio.all_tasks(loop))
    end)
  end)
end)

describe("errors reported through the exception handler", function()
  it("an error in a callback goes to the handler with message, exception and handle; the loop goes on", function()
    with_loop(function(loop)
      local ctxs = {}
      loop:set_exception_handler(function(l, ctx)
        assert.equal(loop, l)
        ctxs[#ctxs + 1] = ctx
      end)
      local err = errors.RuntimeError("in callback")
      local h = loop:call_soon(function() error(err) end)
      local r = loop:run_until_complete(function()
        asyncio.sleep(0)
        asyncio.sleep(0)
        return "loop still running"
      end)
      assert.equal("loop still running", r)
      assert.equal(1, #ctxs)
      assert.is_string(ctxs[1].message)
      assert.equal(err, ctxs[1].exception)
      assert.equal(h, ctxs[1].handle)
    end)
  end)

  it("an error in a timer callback is reported the same way", function()
    with_loop(function(loop)
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local h = loop:call_later(0.001, function() error("timer boom", 0) end)
      loop:run_until_complete(function() asyncio.sleep(0.01) end)
      assert.equal(1, #ctxs)
      assert.equal("timer boom", ctxs[1].exception)
      assert.equal(h, ctxs[1].handle)
    end)
  end)

  it("a Task whose exception was never retrieved is reported when collected", function()
    with_loop(function(loop)
      local err = errors.RuntimeError("nobody looked")
      local ctxs = support.collected_task_reports(loop, function() error(err) end)
      assert.equal(1, #ctxs)
      assert_has(ctxs[1].message, "never retrieved")
      assert.equal(err, ctxs[1].exception)
      assert.is_not_nil(ctxs[1].task)
    end)
  end)

  it("a Task whose exception was retrieved is not reported", function()
    with_loop(function(loop)
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      loop:run_until_complete(function()
        local t = asyncio.create_task(function() error("seen", 0) end)
        asyncio.sleep(0)
        asyncio.sleep(0)
        assert.equal("seen", t:exception())
      end)
      collectgarbage("collect")
      collectgarbage("collect")
      loop:run_until_complete(function() asyncio.sleep(0) end)
      assert.equal(0, #ctxs)
    end)
  end)

  it("a Task collected while pending is reported", function()
    with_loop(function(loop)
      local ctxs = support.collected_task_reports(loop, function()
        asyncio.get_running_loop():create_future():await() -- never completes
      end)
      assert.equal(1, #ctxs)
      assert_has(ctxs[1].message, "pending")
    end)
  end)
end)

describe("raw coroutine.yield inside a Task", function()
  it("raises at the call site with 'Task got bad yield'", function()
    local e = asyncio.run(function()
      return catch(coroutine.yield, "x")
    end)
    assert.is_not_nil(e)
    assert_has(e, "Task got bad yield")
  end)

  it("makes the Task fail (not hang) when not caught", function()
    with_loop(function(loop)
      local t = loop:create_task(function()
        coroutine.yield("x")
        return "unreachable"
      end)
      local e = catch(loop.run_until_complete, loop, t)
      assert.is_not_nil(e)
      assert_has(e, "Task got bad yield")
      assert.is_true(t:done())
      assert_has(t:exception(), "Task got bad yield")
    end)
  end)

  it("a plain coroutine inside a Task may still yield to its resumer", function()
    local r = asyncio.run(function()
      local co = coroutine.wrap(function()
        coroutine.yield(1)
        coroutine.yield(2)
      end)
      return { co(), co() }
    end)
    assert.same({ 1, 2 }, r)
  end)
end)

describe("asyncio.run", function()
  it("passes arguments and returns every result", function()
    local r = table.pack(asyncio.run(function(a, b)
      asyncio.sleep(0)
      return a, b, a + b
    end, 1, 2))
    assert.same({ n = 3, 1, 2, 3 }, r)
  end)

  it("raises the main task's error", function()
    local err = errors.RuntimeError("main failed")
    assert.equal(err, errof(asyncio.run, function() error(err) end))
  end)

  it("cancels leftover tasks, letting them clean up", function()
    local log = {}
    asyncio.run(function()
      asyncio.create_task(function()
        local ok, e = pcall(asyncio.sleep, 10)
        log[#log + 1] = "leftover cancelled: " .. tostring(not ok and CancelledError:is(e))
        asyncio.sleep(0)
        log[#log + 1] = "cleanup done"
      end)
      asyncio.sleep(0)
      return "main done"
    end)
    assert.same({ "leftover cancelled: true", "cleanup done" }, log)
  end)

  it("refuses to run inside a running loop", function()
    local e = asyncio.run(function()
      return catch(asyncio.run, function() end)
    end)
    assert_has(e, "running event loop")
  end)

  it("rejects a non-function", function()
    assert_has(errof(asyncio.run, 42), "run")
  end)
end)
