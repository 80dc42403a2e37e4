-- trio.open_nursery, start_soon, start / task_status, and the
-- "no orphan tasks" rule with ExceptionGroup collection.
local trio = require "trio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

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

local function failing_helper(msg)
  error(msg, 0)
end

describe("trio.open_nursery", function()
  it("returns the body's results", function()
    local a, b = trio.run(function()
      return trio.open_nursery(function(_n) return "x", 7 end)
    end)
    assert.same({ "x", 7 }, { a, b })
  end)

  it("passes a nursery object to the body", function()
    local kinds = trio.run(function()
      return trio.open_nursery(function(n)
        return type(n.start_soon) == "function" and type(n.start) == "function"
      end)
    end)
    assert.is_true(kinds)
  end)

  it("waits for every child before returning", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() trio.sleep(0.03) log[#log + 1] = "slow" end)
        n:start_soon(function() trio.sleep(0.01) log[#log + 1] = "fast" end)
        log[#log + 1] = "body end"
      end)
      log[#log + 1] = "after nursery"
    end)
    assert.same({ "body end", "fast", "slow", "after nursery" }, log)
  end)

  it("does not run a child before the spawner reaches a checkpoint", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() log[#log + 1] = "child" end)
        log[#log + 1] = "body before checkpoint"
        trio.sleep(0)
        log[#log + 1] = "body after checkpoint"
      end)
    end)
    assert.equal("body before checkpoint", log[1])
    assert.equal(3, #log)
  end)

  it("passes start_soon's extra arguments to the child", function()
    local got
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function(...) got = table.pack(...) end, 1, nil, "three")
      end)
    end)
    assert.equal(3, got.n)
    assert.same({ 1, nil, "three" }, { got[1], got[2], got[3] })
  end)

  it("ignores the values children return", function()
    local r = trio.run(function()
      return trio.open_nursery(function(n)
        n:start_soon(function() return "ignored" end)
        return "body"
      end)
    end)
    assert.equal("body", r)
  end)

  it("stays open while children spawn more children into it", function()
    local count = 0
    trio.run(function()
      trio.open_nursery(function(n)
        local function spawn(depth)
          count = count + 1
          trio.sleep(0.001)
          if depth < 5 then n:start_soon(spawn, depth + 1) end
        end
        n:start_soon(spawn, 1)
      end)
    end)
    assert.equal(5, count)
  end)

  it("accepts children spawned from another task", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(outer)
        trio.open_nursery(function(inner)
          outer:start_soon(function()
            inner:start_soon(function() log[#log + 1] = "grandchild" end)
          end)
          trio.sleep(0.01)
        end)
      end)
    end)
    assert.same({ "grandchild" }, log)
  end)

  it("supports nested nurseries", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n1)
        n1:start_soon(function()
          trio.open_nursery(function(n2)
            n2:start_soon(function() trio.sleep(0.01) log[#log + 1] = "deep" end)
          end)
          log[#log + 1] = "inner closed"
        end)
      end)
      log[#log + 1] = "outer closed"
    end)
    assert.same({ "deep", "inner closed", "outer closed" }, log)
  end)

  it("exposes the running children in child_tasks", function()
    local during, after = trio.run(function()
      local d, a
      trio.open_nursery(function(n)
        local ev = trio.Event()
        for _ = 1, 3 do n:start_soon(function() ev:wait() end) end
        trio.sleep(0)
        d = #n.child_tasks
        ev:set()
        trio.sleep(0.01)
        a = #n.child_tasks
      end)
      return d, a
    end)
    assert.equal(3, during)
    assert.equal(0, after)
  end)

  it("has a cancel_scope that cancels body and children", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        for _ = 1, 3 do
          n:start_soon(function()
            local _, e = pcall(trio.sleep_forever)
            log[#log + 1] = trio.Cancelled:is(e)
            error(e, 0)
          end)
        end
        trio.sleep(0)
        n.cancel_scope:cancel()
        trio.sleep(1)
        log[#log + 1] = "unreachable"
      end)
      log[#log + 1] = "returned"
    end)
    assert.same({ true, true, true, "returned" }, log)
  end)

  it("refuses start_soon after it closed", function()
    local saved
    local e = trio.run(function()
      trio.open_nursery(function(n) saved = n end)
      local ok, err = pcall(saved.start_soon, saved, function() end)
      assert(not ok)
      return err
    end)
    assert.is_not_nil(e)
  end)
  it("start_soon checks its nursery also right after a start_soon into another one", function()
    -- (the nursery checked last is remembered while it is open)
    local errs = trio.run(function()
      local got, start_soon, saved = {}, nil, nil
      trio.open_nursery(function(n)
        saved = n
        n:start_soon(function() end)
        start_soon = n.start_soon
        got.task = select(2, pcall(start_soon, trio.lowlevel.current_task(), function() end))
        got.table = select(2, pcall(start_soon, {}, function() end))
        got.scope = select(2, pcall(start_soon, n.cancel_scope, function() end))
      end)
      got.closed = select(2, pcall(start_soon, saved, function() end))
      trio.open_nursery(function(n2)
        n2:start_soon(function() end)
        got.closed_again = select(2, pcall(start_soon, saved, function() end))
      end)
      return got
    end)
    for _, k in ipairs({ "task", "table", "scope" }) do
      assert.matches("trio_asyncio.Nursery expected", tostring(errs[k]), 1, true)
    end
    assert.matches("start_soon: the nursery is closed to new tasks", tostring(errs.closed), 1, true)
    assert.matches("start_soon: the nursery is closed to new tasks", tostring(errs.closed_again), 1, true)
  end)

  it("a child spawned into a cancelled nursery is cancelled at its first checkpoint", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n.cancel_scope:cancel()
        n:start_soon(function()
          log[#log + 1] = "child runs"
          local _, e = pcall(trio.sleep, 1)
          log[#log + 1] = "child cancelled=" .. tostring(trio.Cancelled:is(e))
        end)
      end)
    end)
    assert.same({ "child runs", "child cancelled=true" }, log)
  end)

  it("a child spawned from a shielded scope into a cancelled nursery is still cancelled", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n.cancel_scope:cancel()
        trio.CancelScope { shield = true }:run(function()
          n:start_soon(function()
            local _, e = pcall(trio.sleep, 1)
            log[#log + 1] = trio.Cancelled:is(e)
          end)
        end)
      end)
    end)
    assert.same({ true }, log)
  end)
end)

describe("nursery errors", function()
  it("a child's error cancels its siblings and the body", function()
    local log = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _, err = pcall(trio.sleep_forever)
          log[#log + 1] = "sibling cancelled: " .. tostring(trio.Cancelled:is(err))
          error(err, 0)
        end)
        n:start_soon(function() trio.sleep(0.01) error("child failed", 0) end)
        local _, err = pcall(trio.sleep_forever)
        log[#log + 1] = "body cancelled: " .. tostring(trio.Cancelled:is(err))
        error(err, 0)
      end)
    end)
    table.sort(log)
    assert.same({ "body cancelled: true", "sibling cancelled: true" }, log)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "child failed" }, e.exceptions)
  end)

  it("a body error cancels the children and is collected", function()
    local log = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _, err = pcall(trio.sleep_forever)
          log[#log + 1] = trio.Cancelled:is(err)
          error(err, 0)
        end)
        trio.sleep(0)
        error("body failed", 0)
      end)
    end)
    assert.same({ true }, log)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "body failed" }, e.exceptions)
  end)

  it("wraps even a single body error in an ExceptionGroup (strict)", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function() error("only", 0) end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "only" }, e.exceptions)
  end)

  it("collects every error, in order of occurrence", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          trio.CancelScope { shield = true }:run(function() trio.sleep(0.03) end)
          error("third", 0)
        end)
        n:start_soon(function()
          trio.CancelScope { shield = true }:run(function() trio.sleep(0.015) end)
          error("second", 0)
        end)
        n:start_soon(function() error("first", 0) end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "first", "second", "third" }, e.exceptions)
  end)

  it("keeps errors raised in the same tick in the order they happened", function()
    local order = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        for _, name in ipairs { "a", "b", "c" } do
          n:start_soon(function()
            order[#order + 1] = name
            error(name, 0)
          end)
        end
      end)
    end)
    assert.same(order, e.exceptions)
  end)

  it("has one traceback string per error, naming where it was raised", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function() failing_helper("deep") end)
        n:start_soon(function() failing_helper("deeper") end)
      end)
    end)
    assert.equal(2, #e.exceptions)
    assert.equal(2, #e.tracebacks)
    for i = 1, 2 do
      assert.equal("string", type(e.tracebacks[i]))
      assert_has(e.tracebacks[i], "failing_helper")
    end
  end)

  it("has a traceback string for an error table too", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function() error({ "table error" }) end)
      end)
    end)
    assert.equal(1, #e.tracebacks)
    assert.equal("string", type(e.tracebacks[1]))
  end)

  it("keeps error tables as the same objects", function()
    local mine = { tag = "mine" }
    local e = errof(trio.run, function()
      trio.open_nursery(function(n) n:start_soon(function() error(mine) end) end)
    end)
    assert.equal(mine, e.exceptions[1])
  end)

  it("nests the group of an inner nursery inside the outer group", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(outer)
        outer:start_soon(function()
          trio.open_nursery(function(inner)
            inner:start_soon(function() error("innermost", 0) end)
          end)
        end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.equal(1, #e.exceptions)
    assert.is_true(trio.ExceptionGroup:is(e.exceptions[1]))
    assert.same({ "innermost" }, e.exceptions[1].exceptions)
  end)

  it("tostring of the group starts with its class name", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function() error("x", 0) end)
    end)
    assert.equal("trio.ExceptionGroup", tostring(e):sub(1, #"trio.ExceptionGroup"))
  end)

  it("lets cleanup code in cancelled children run before the error comes out", function()
    local log = {}
    errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _, err = pcall(trio.sleep_forever)
          trio.CancelScope { shield = true }:run(function() trio.sleep(0.01) end)
          log[#log + 1] = "cleanup done"
          error(err, 0)
        end)
        trio.sleep(0)
        error("boom", 0)
      end)
    end)
    assert.same({ "cleanup done" }, log)
  end)

  it("can be caught inside the run and the run goes on", function()
    local r = trio.run(function()
      local ok, e = pcall(trio.open_nursery, function(n)
        n:start_soon(function() error("contained", 0) end)
      end)
      assert(not ok)
      trio.sleep(0)
      return e.exceptions[1]
    end)
    assert.equal("contained", r)
  end)
end)

describe("nursery:start", function()
  it("returns the value given to task_status:started", function()
    local r = trio.run(function()
      return trio.open_nursery(function(n)
        return n:start(function(task_status) task_status:started("ready") end)
      end)
    end)
    assert.equal("ready", r)
  end)

  it("passes task_status as the last argument after the given ones", function()
    local got
    trio.run(function()
      trio.open_nursery(function(n)
        n:start(function(a, b, task_status)
          got = { a, b, task_status }
          task_status:started()
        end, "x", "y")
      end)
    end)
    assert.equal("x", got[1])
    assert.equal("y", got[2])
    assert.is_not_nil(got[3])
    assert.equal("function", type(got[3].started))
  end)

  it("returns nil when started() is called without a value", function()
    local marker, v = trio.run(function()
      return trio.open_nursery(function(n)
        local r = n:start(function(ts) ts:started() end)
        return "marker", r
      end)
    end)
    assert.equal("marker", marker)
    assert.is_nil(v)
  end)

  it("waits until started and lets the child run on afterwards", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        local go = trio.Event()
        local v = n:start(function(ts)
          log[#log + 1] = "child setup"
          trio.sleep(0.01)
          ts:started(42)
          go:wait()
          log[#log + 1] = "child continues"
        end)
        log[#log + 1] = "start returned " .. v
        go:set()
      end)
    end)
    assert.same({ "child setup", "start returned 42", "child continues" }, log)
  end)

  it("moves the started task into the nursery", function()
    local count = trio.run(function()
      return trio.open_nursery(function(n)
        local ev = trio.Event()
        n:start(function(ts) ts:started() ev:wait() end)
        local c = #n.child_tasks
        ev:set()
        return c
      end)
    end)
    assert.equal(1, count)
  end)

  it("raises the child's error when it fails before started", function()
    local e = trio.run(function()
      local ok, err = pcall(trio.open_nursery, function(n)
        n:start(function(_ts) trio.sleep(0) error("setup failed", 0) end)
      end)
      assert(not ok)
      return err
    end)
    local found = false
    for _, x in ipairs(leaves(e)) do if x == "setup failed" then found = true end end
    assert.is_true(found, tostring(e))
  end)

  it("raises an error when the child returns without calling started", function()
    local ok = trio.run(function()
      local ok2 = pcall(trio.open_nursery, function(n)
        n:start(function(_ts) trio.sleep(0) end)
      end)
      return ok2
    end)
    assert.is_false(ok)
  end)

  it("raises an error when started is called twice", function()
    local second_ok = trio.run(function()
      local r
      trio.open_nursery(function(n)
        n:start(function(ts)
          ts:started(1)
          r = pcall(ts.started, ts, 2)
        end)
      end)
      return r
    end)
    assert.is_false(second_ok)
  end)

  it("a started child that fails later cancels the nursery", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start(function(ts)
          ts:started()
          trio.sleep(0.01)
          error("after start", 0)
        end)
        trio.sleep_forever()
      end)
    end)
    assert.same({ "after start" }, e.exceptions)
  end)
end)
