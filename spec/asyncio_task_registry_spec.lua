-- How the engine finds asyncio Tasks from C: each Task has a slot in the
-- weak registry while it is pending (and while a failed one awaits its
-- finalizer), found by current_task, all_tasks, sleep and naming.  The id of
-- a Task that ended is given back without emptying its slot: the next Task
-- given that id overwrites it, and all_tasks skips the done Task a slot may
-- still show meanwhile.  These specs run many Tasks through reused ids.
local asyncio = require "asyncio"
local core = require "trio_asyncio.core"
local support = require "support"
local assert_has = support.assert_has

local function settle_gc()
  collectgarbage()
  collectgarbage()
end

-- the ids of the Tasks in list, in order
local function ids(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = t.id end
  return out
end

describe("the registry of asyncio Tasks", function()
  it("lists many pending Tasks, oldest first, across reused ids", function()
    settle_gc()
    asyncio.run(function()
      local main = asyncio.current_task()
      local release = asyncio.Event()
      local seen_self = 0
      local function waiter(i)
        if asyncio.current_task().id == asyncio.current_task().id then seen_self = seen_self + 1 end
        release:wait()
        return i
      end
      -- three waves: the first ends before the next starts (its ids come
      -- back), so later Tasks sit in slots that showed done Tasks
      for wave = 1, 3 do
        local tasks = {}
        for i = 1, 300 do tasks[i] = asyncio.create_task(waiter, i) end
        asyncio.sleep(0)
        local all = asyncio.all_tasks()
        assert.equal(301, #all)
        local want = { main.id }
        for i = 1, 300 do want[i + 1] = tasks[i].id end
        assert.same(want, ids(all))
        for i = 1, 300 do assert.equal(tasks[i], all[i + 1]) end
        release:set()
        local results = asyncio.gather(table.unpack(tasks))
        assert.equal(300, #results)
        assert.equal(300, results[300])
        release:clear()
        assert.same({ main }, asyncio.all_tasks())
        assert.equal(wave * 300, seen_self)
      end
    end)
  end)

  it("finds the running Task from each of many Tasks", function()
    asyncio.run(function()
      local tasks, found = {}, {}
      for i = 1, 200 do
        tasks[i] = asyncio.create_task(function()
          asyncio.sleep(0)
          found[i] = asyncio.current_task()
          asyncio.sleep(0.001) -- a sleep with a delay finds its Task too
          return asyncio.current_task()
        end)
      end
      local back = asyncio.gather(table.unpack(tasks))
      for i = 1, 200 do
        assert.equal(tasks[i], found[i])
        assert.equal(tasks[i], back[i])
      end
    end)
  end)

  it("keeps names and listings right once Tasks were finished and collected", function()
    settle_gc()
    asyncio.run(function()
      local before = core.debug_ids().weak
      for _ = 1, 5 do
        local tasks = {}
        for i = 1, 100 do tasks[i] = asyncio.create_task(asyncio.sleep, 0, i) end
        asyncio.gather(table.unpack(tasks))
        tasks = nil -- luacheck: ignore 311
        settle_gc()
        assert.equal(before, core.debug_ids().weak)
      end
      local named = asyncio.create_task(function() asyncio.sleep(0) end)
      named:set_name("after-reuse")
      local plain = asyncio.create_task(function() asyncio.sleep(0) end)
      local all = asyncio.all_tasks()
      assert.equal(3, #all)
      assert.equal(named, all[2])
      assert.equal(plain, all[3])
      assert.equal("after-reuse", all[2]:get_name())
      assert.equal("Task-" .. plain.id, all[3]:get_name())
      assert_has(tostring(all[2]), "after-reuse")
      asyncio.gather(named, plain)
      assert.equal(1, #asyncio.all_tasks())
    end)
  end)

  it("gives back the ids of failed Tasks at their collection", function()
    local loop = asyncio.new_event_loop()
    local reports = 0
    loop:set_exception_handler(function(_, ctx)
      if ctx.message == "Task exception was never retrieved" then reports = reports + 1 end
    end)
    settle_gc()
    local before, failed = nil, {}
    loop:run_until_complete(function()
      before = core.debug_ids().weak
      for i = 1, 50 do failed[i] = asyncio.create_task(function() error("failed " .. i, 0) end) end
      asyncio.sleep(0)
      asyncio.sleep(0)
      assert.equal(before + 50, core.debug_ids().weak)
      assert.is_true(failed[50]:done())
      assert.equal(1, #asyncio.all_tasks())
    end)
    failed = nil -- luacheck: ignore 311
    settle_gc()
    loop:run_until_complete(function()
      assert.equal(before, core.debug_ids().weak)
      -- the ids come back to new Tasks, listed and named right
      local tasks = {}
      for i = 1, 60 do tasks[i] = asyncio.create_task(asyncio.sleep, 0, i) end
      local all = asyncio.all_tasks()
      assert.equal(61, #all)
      for i = 1, 60 do assert.equal(tasks[i], all[i + 1]) end
      assert.equal(60, asyncio.gather(table.unpack(tasks))[60])
    end)
    loop:close()
    assert.equal(50, reports)
  end)

  it("is not fooled by a finalizer called by hand", function()
    asyncio.run(function()
      local done = asyncio.create_task(function() return "x" end)
      local failed = asyncio.create_task(function() error("seen", 0) end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      assert.equal("seen", failed:exception())
      local gc = getmetatable(failed).__gc
      gc(failed) -- gives its id back while the object lives on
      gc(failed)
      local tasks = {}
      for i = 1, 20 do tasks[i] = asyncio.create_task(asyncio.sleep, 0, i) end
      local all = asyncio.all_tasks()
      assert.equal(21, #all)
      for i = 1, 20 do assert.equal(tasks[i], all[i + 1]) end
      asyncio.gather(table.unpack(tasks))
      assert.equal("x", done:result())
      assert.equal("seen", failed:exception())
      assert.equal(1, #asyncio.all_tasks())
    end)
  end)

  it("lists the pending Tasks of a closed loop, then reports them destroyed", function()
    local loop = asyncio.new_event_loop()
    local ctxs = {}
    loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
    local names, never = {}, asyncio.Event()
    loop:run_until_complete(function()
      for i = 1, 30 do
        local t = asyncio.create_task(function() never:wait() end)
        t:set_name("stuck-" .. i)
      end
      asyncio.sleep(0)
    end)
    loop:close()
    for i, t in ipairs(asyncio.all_tasks(loop)) do names[i] = t:get_name() end
    assert.equal(30, #names)
    for i = 1, 30 do assert.equal("stuck-" .. i, names[i]) end
    names, never = nil, nil -- luacheck: ignore 311
    settle_gc()
    local destroyed = 0
    for _, ctx in ipairs(ctxs) do
      if ctx.message == "Task was destroyed but it is pending!" then
        destroyed = destroyed + 1
        assert_has(ctx.task:get_name(), "stuck-")
      end
    end
    assert.equal(30, destroyed)
    assert.same({}, asyncio.all_tasks(loop))
  end)
end)
