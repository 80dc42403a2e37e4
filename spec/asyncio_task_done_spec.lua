-- asyncio Tasks once they are done: a Task that finished or was cancelled
-- changes to a class without a finalizer (it has nothing left to report)
-- and gives its weak id back at its exit; a Task that failed keeps its
-- finalizer until its error was looked at.  Each face of a Task must stay
-- the same across that change.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local core = require "trio_asyncio.core"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local CancelledError = asyncio.CancelledError

describe("a Task that is done", function()
  it("keeps its methods, fields and name once it finished", function()
    asyncio.run(function()
      local t = asyncio.create_task(function(a, b) return a + b, "two" end, 1, 2)
      t:set_name("adder")
      local metatable_while_pending = getmetatable(t)
      assert.same({ 3, "two" }, { t:await() })
      assert.is_true(t:done())
      assert.is_false(t:cancelled())
      assert.same({ 3, "two" }, { t:result() })
      assert.is_nil(t:exception())
      assert.is_false(t:cancel())
      assert.equal("adder", t:get_name())
      assert.equal("adder", t.name)
      assert.equal("asyncio", t.flavor)
      assert.equal("number", type(t.id))
      assert_has(tostring(t), "adder")
      assert.is_true(asyncio.isfuture(t))
      assert.equal("done", core.task_where(t))
      -- the class changed, the methods did not
      assert.are_not.equal(metatable_while_pending, getmetatable(t))
      t:set_name("renamed")
      assert.equal("renamed", t:get_name())
      assert.equal("renamed", t.name)
    end)
  end)

  it("calls a done callback added afterwards with the same Task", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() return "r" end)
      t:await()
      local seen
      t:add_done_callback(function(x) seen = x end)
      asyncio.sleep(0)
      assert.equal(t, seen)
      assert.equal("r", seen:result())
    end)
  end)

  it("a Task awaiting a finished Task gets its results, again and again", function()
    asyncio.run(function()
      local done = asyncio.create_task(function() return 1, 2 end)
      asyncio.sleep(0)
      assert.is_true(done:done())
      local waiter = asyncio.create_task(function()
        local a, b = done:await()
        local c, d = done:await()
        return a + b + c + d
      end)
      assert.equal(6, waiter:await())
    end)
  end)

  it("keeps its methods once it was cancelled", function()
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      t:set_name("sleeper")
      asyncio.sleep(0)
      assert.is_true(t:cancel("enough"))
      assert.equal(CancelledError, errors.class_of(errof(t.await, t)))
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
      assert.equal("sleeper", t:get_name())
      assert.is_true(asyncio.isfuture(t))
      assert.equal(CancelledError, errors.class_of(errof(t.result, t)))
    end)
  end)

  it("a failed Task whose error is never looked at is still reported when collected", function()
    local loop = asyncio.new_event_loop()
    local ctxs = support.collected_task_reports(loop, function() error("unseen", 0) end)
    loop:close()
    assert.equal(1, #ctxs)
    assert_has(ctxs[1].message, "never retrieved")
    assert.equal("unseen", ctxs[1].exception)
  end)

  it("a finished Task collected is not reported", function()
    local loop = asyncio.new_event_loop()
    local ctxs = {}
    loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
    loop:run_until_complete(function()
      for _ = 1, 10 do asyncio.create_task(function() return 1 end) end
      for _ = 1, 10 do asyncio.create_task(function() asyncio.sleep(10) end):cancel() end
      asyncio.sleep(0)
      asyncio.sleep(0)
    end)
    collectgarbage()
    collectgarbage()
    loop:close()
    assert.same({}, ctxs)
  end)

  it("gives its weak id back at its exit", function()
    collectgarbage() -- (no finalizer of an earlier spec's Task runs meanwhile)
    collectgarbage()
    asyncio.run(function()
      local before = core.debug_ids().weak
      local tasks = {}
      for i = 1, 100 do tasks[i] = asyncio.create_task(asyncio.sleep, 0) end
      assert.equal(before + 100, core.debug_ids().weak)
      asyncio.gather(table.unpack(tasks))
      -- all done, still referenced (by `tasks`): none keeps its id
      assert.equal(before, core.debug_ids().weak)
      for i = 1, 100 do assert.is_true(tasks[i]:done()) end
    end)
  end)

  it("a failed Task keeps its weak id until it is collected", function()
    local loop = asyncio.new_event_loop()
    loop:set_exception_handler(function() end)
    local before, failed
    collectgarbage()
    collectgarbage()
    loop:run_until_complete(function()
      before = core.debug_ids().weak
      failed = asyncio.create_task(function() error("kept", 0) end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      assert.is_true(failed:done())
      assert.equal(before + 1, core.debug_ids().weak)
    end)
    failed = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    loop:run_until_complete(function() assert.equal(before, core.debug_ids().weak) end)
    loop:close()
  end)
end)
