-- gather's done callback on each child is marked as gather's when it is
-- the child's first callback (future.c CB_GATHER): these cases check that
-- the mark never mistakes another callback for gather's, nor the reverse.
local asyncio = require "asyncio"

describe("asyncio.gather's callback on its children", function()
  it("counts children whose first callback is gather's, and those with a user callback before", function()
    local log = {}
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local a, b = loop:create_future(), loop:create_future()
      a:add_done_callback(function(f) log[#log + 1] = "a:" .. f:result() end)
      loop:call_soon(function() a:set_result(1) end)
      loop:call_soon(function() b:set_result(2) end)
      return asyncio.gather(a, b) -- (gather waits)
    end)
    assert.same({ 1, 2, n = 2 }, r)
    assert.same({ "a:1" }, log)
  end)

  it("does not take a user callback that replaced a removed first callback for gather's", function()
    local log = {}
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local a = loop:create_future()
      local function first() log[#log + 1] = "removed one ran" end
      a:add_done_callback(first)
      assert.equal(1, a:remove_done_callback(first))
      a:add_done_callback(function(f) log[#log + 1] = "user:" .. f:result() end)
      local t = asyncio.create_task(function() asyncio.sleep(0); return "t" end)
      loop:call_soon(function() a:set_result("a") end)
      return asyncio.gather(t, a)
    end)
    assert.same({ "t", "a", n = 2 }, r)
    assert.same({ "user:a" }, log)
  end)

  it("fails on the first failing child and cancels nothing it should not", function()
    local ok, err = pcall(asyncio.run, function()
      local ok_task = asyncio.create_task(function() asyncio.sleep(0); return 1 end)
      local bad = asyncio.create_task(function() asyncio.sleep(0); error({ message = "boom" }) end)
      local ok2, e = pcall(asyncio.gather, ok_task, bad)
      assert.is_false(ok2)
      assert.equal(1, ok_task:result())
      error(e)
    end)
    assert.is_false(ok)
    assert.equal("boom", err.message)
  end)

  it("counts each of many tasks once, a task passed twice included", function()
    local r = asyncio.run(function()
      local tasks = {}
      for i = 1, 50 do tasks[i] = asyncio.create_task(function() asyncio.sleep(0); return i end) end
      tasks[51] = tasks[7]
      return asyncio.gather(table.unpack(tasks))
    end)
    assert.equal(51, r.n)
    for i = 1, 50 do assert.equal(i, r[i]) end
    assert.equal(7, r[51])
  end)
end)
