-- Calling async functions where they cannot run: outside trio.run, from a
-- plain Lua coroutine inside a task, and raw foreign coroutine.yield.
local trio = require "trio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local UNRECOGNIZED = "trio.run received unrecognized yield message"

-- Every non-group error inside e (e itself when it is not a group).
local function leaves(e, out)
  out = out or {}
  if trio.ExceptionGroup:is(e) then
    for _, x in ipairs(e.exceptions) do leaves(x, out) end
  else
    out[#out + 1] = e
  end
  return out
end

describe("async functions outside trio.run", function()
  it("trio.sleep raises an error naming trio.sleep and saying outside", function()
    local e = errof(trio.sleep, 1)
    assert_has(e, "trio.sleep")
    assert_has(e, "outside")
  end)

  local cases = {
    { "trio.sleep_forever", function() trio.sleep_forever() end },
    { "trio.sleep_until", function() trio.sleep_until(0) end },
    { "trio.open_nursery", function() trio.open_nursery(function() end) end },
    { "checkpoint", function() trio.lowlevel.checkpoint() end },
    { "wait_task_rescheduled", function()
      trio.lowlevel.wait_task_rescheduled(function() return trio.lowlevel.Abort.SUCCEEDED end)
    end },
    { "wait_all_tasks_blocked", function() trio.testing.wait_all_tasks_blocked() end },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " raises an error naming itself", function()
      local e = errof(c[2])
      assert_has(e, c[1])
      assert_has(e, "outside")
    end)
  end

  it("waiting on an Event raises instead of hanging", function()
    local ev = trio.Event()
    local e = errof(ev.wait, ev)
    assert_has(e, "outside")
  end)

  it("a channel receive raises instead of hanging", function()
    local _, recv = trio.run(function() return trio.open_memory_channel(1) end)
    local e = errof(recv.receive, recv)
    assert_has(e, "outside")
  end)

  it("functions reading the current task raise", function()
    errof(trio.lowlevel.current_task)
    errof(trio.current_time)
    errof(trio.current_effective_deadline)
  end)

  it("a failed call leaves no trace: a later run works", function()
    pcall(trio.sleep, 1)
    pcall(trio.sleep_forever)
    assert.equal("fine", trio.run(function() trio.sleep(0) return "fine" end))
  end)
end)

describe("async functions from a plain coroutine inside a task", function()
  it("trio.sleep raises an error naming trio.sleep and the coroutine", function()
    local e = trio.run(function()
      local co = coroutine.create(function() trio.sleep(0) end)
      local ok, err = coroutine.resume(co)
      assert(not ok)
      return err
    end)
    assert_has(e, "trio.sleep")
    assert_has(e, "coroutine")
  end)

  it("through coroutine.wrap the error reaches the task, which goes on", function()
    local e, after = trio.run(function()
      local ok, err = pcall(coroutine.wrap(function() trio.sleep(0.001) end))
      assert(not ok)
      trio.sleep(0)
      return err, "task continued"
    end)
    assert_has(e, "trio.sleep")
    assert_has(e, "coroutine")
    assert.equal("task continued", after)
  end)

  it("open_nursery from a plain coroutine raises", function()
    local e = trio.run(function()
      local ok, err = coroutine.resume(coroutine.create(function()
        trio.open_nursery(function() end)
      end))
      assert(not ok)
      return err
    end)
    assert_has(e, "trio.open_nursery")
    assert_has(e, "coroutine")
  end)

  it("plain coroutines that do not call async functions work inside a task", function()
    local got = trio.run(function()
      local gen = coroutine.wrap(function()
        for i = 1, 3 do coroutine.yield(i) end
      end)
      local out = {}
      for _ = 1, 3 do
        out[#out + 1] = gen()
        trio.sleep(0)
      end
      return out
    end)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("a coroutine created outside the run can be resumed inside a task", function()
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a + 1)
      return b * 2
    end)
    local r1, r2 = trio.run(function()
      local _, x = coroutine.resume(co, 1)
      trio.sleep(0)
      local _, y = coroutine.resume(co, 5)
      return x, y
    end)
    assert.same({ 2, 10 }, { r1, r2 })
  end)
end)

describe("raw coroutine.yield inside a task", function()
  it("in the root task makes trio.run raise the unrecognized-yield error", function()
    local e = errof(trio.run, function() coroutine.yield("x") end)
    assert_has(e, UNRECOGNIZED)
  end)

  it("a yield with no value is refused too", function()
    local e = errof(trio.run, function() trio.sleep(0) coroutine.yield() end)
    assert_has(e, UNRECOGNIZED)
  end)

  it("a yield of a table is refused too", function()
    local e = errof(trio.run, function() coroutine.yield({ "not", "a", "trap" }) end)
    assert_has(e, UNRECOGNIZED)
  end)

  it("in a child it fails that task; the nursery raises it in a group and cancels the rest", function()
    local log = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _, err = pcall(trio.sleep_forever)
          log[#log + 1] = "sibling cancelled=" .. tostring(trio.Cancelled:is(err))
          error(err, 0)
        end)
        n:start_soon(function() trio.sleep(0.001) coroutine.yield("foreign") end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.equal(1, #e.exceptions)
    assert_has(e.exceptions[1], UNRECOGNIZED)
    assert.same({ "sibling cancelled=true" }, log)
  end)

  it("is raised at the yield, so the task may catch it and go on", function()
    local e, after = trio.run(function()
      local ok, err = pcall(coroutine.yield, "foreign")
      assert(not ok)
      trio.sleep(0)
      return err, "still alive"
    end)
    assert_has(e, UNRECOGNIZED)
    assert.equal("still alive", after)
  end)

  it("in the task running a nursery body: the task fails, its children are cancelled, no hang", function()
    local log = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        for _ = 1, 2 do
          n:start_soon(function()
            local _, err = pcall(trio.sleep_forever)
            log[#log + 1] = "child cancelled=" .. tostring(trio.Cancelled:is(err))
            error(err, 0)
          end)
        end
        trio.sleep(0)
        coroutine.yield(12345)
      end)
    end)
    local found = false
    for _, x in ipairs(leaves(e)) do
      if tostring(x):find(UNRECOGNIZED, 1, true) then found = true end
    end
    assert.is_true(found, tostring(e))
    assert.same({ "child cancelled=true", "child cancelled=true" }, log)
  end)

  it("the error is a trio_asyncio.FlavorError", function()
    local e = errof(trio.run, function() coroutine.yield("x") end)
    assert.is_true(require("trio_asyncio").FlavorError:is(e))
  end)
end)

describe("flavor of Trio tasks", function()
  it("every task is tagged trio", function()
    local flavors = trio.run(function()
      local out = { trio.lowlevel.current_task().flavor }
      trio.open_nursery(function(n)
        n:start_soon(function() out[#out + 1] = trio.lowlevel.current_task().flavor end)
      end)
      return out
    end)
    assert.same({ "trio", "trio" }, flavors)
  end)
end)
