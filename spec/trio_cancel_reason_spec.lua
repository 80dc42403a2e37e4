-- trio.Cancelled's source, reason and source_task, and
-- CancelScope:cancel(reason) (as Trio's CancelReason).
local trio = require "trio"

local lowlevel = trio.lowlevel

-- The Cancelled a checkpoint raises.
local function cancelled_at_checkpoint()
  local ok, e = pcall(lowlevel.checkpoint)
  assert.is_false(ok)
  assert.is_true(trio.Cancelled:is(e))
  return e
end

-- Starts in nursery n a task that sleeps until cancelled and appends its
-- Cancelled to `seen`.
local function start_sleeper(n, seen)
  n:start_soon(function()
    local ok, e = pcall(trio.sleep_forever)
    assert.is_false(ok)
    seen[#seen + 1] = e
  end)
end

describe("trio.Cancelled source and reason", function()
  it("explicit: cancel(reason) gives the reason and the calling task", function()
    trio.run(function()
      local cs, e = trio.CancelScope()
      cs:run(function()
        cs:cancel("shutting the shop")
        e = cancelled_at_checkpoint()
      end)
      local me = tostring(lowlevel.current_task())
      assert.equal("explicit", e.source)
      assert.equal("shutting the shop", e.reason)
      assert.equal(me, e.source_task)
      assert.equal("cancelled due to explicit with reason 'shutting the shop' from task " .. me, e.message)
      assert.equal("trio.Cancelled: " .. e.message, (tostring(e):match("^[^\n]*")))
    end)
  end)

  it("explicit without a reason; cancel from another task names that task", function()
    trio.run(function()
      local cs, seen, canceller = trio.CancelScope(), {}, nil
      trio.open_nursery(function(n)
        n:start_soon(function()
          cs:run(function()
            trio.open_nursery(function(inner) start_sleeper(inner, seen) end)
          end)
        end)
        n:start_soon(function()
          trio.testing.wait_all_tasks_blocked()
          canceller = tostring(lowlevel.current_task())
          cs:cancel()
        end)
      end)
      local e = seen[1]
      assert.equal("explicit", e.source)
      assert.is_nil(e.reason)
      assert.equal(canceller, e.source_task)
      assert.equal("cancelled due to explicit from task " .. canceller, e.message)
    end)
  end)

  it("a reason given before the scope is entered is kept", function()
    trio.run(function()
      local cs, e = trio.CancelScope()
      cs:cancel("early")
      cs:run(function() e = cancelled_at_checkpoint() end)
      assert.equal("early", e.reason)
    end)
  end)

  it("deadline: a passed deadline or a firing timer, no reason or task", function()
    trio.run(function()
      local e
      trio.CancelScope { deadline = -math.huge }:run(function() e = cancelled_at_checkpoint() end)
      assert.equal("deadline", e.source)
      assert.is_nil(e.reason)
      assert.is_nil(e.source_task)
      assert.equal("cancelled due to deadline", e.message)
      trio.move_on_after(0.01, function()
        local ok
        ok, e = pcall(trio.sleep_forever)
        assert.is_false(ok)
      end)
      assert.equal("cancelled due to deadline", e.message)
    end)
  end)

  it("first reason wins", function()
    trio.run(function()
      local cs, first, second = trio.CancelScope()
      cs:run(function()
        cs:cancel("one")
        cs:cancel("two")
        cs.deadline = -math.huge
        first = cancelled_at_checkpoint()
        second = cancelled_at_checkpoint()
      end)
      assert.equal("one", first.reason)
      assert.equal("one", second.reason)
      assert.equal("explicit", second.source)
    end)
  end)

  it("a scope cancelled through its parent reports the parent's reason", function()
    trio.run(function()
      local outer, e = trio.CancelScope()
      outer:run(function()
        trio.CancelScope():run(function()
          outer:cancel("from outside")
          e = cancelled_at_checkpoint()
        end)
      end)
      assert.equal("explicit", e.source)
      assert.equal("from outside", e.reason)
    end)
  end)

  -- (each status keeps the status whose reason it reports, its origin:
  -- csrc/engine/status.c keeps it as scopes are entered, cancelled and
  -- left, and as a started task moves to its nursery)
  it("an inner scope cancelled after its parent reports its own reason, and so do scopes inside it", function()
    trio.run(function()
      local outer, inner, got = trio.CancelScope(), trio.CancelScope(), {}
      outer:run(function()
        inner:run(function()
          trio.CancelScope():run(function()
            outer:cancel("outer")
            got[1] = cancelled_at_checkpoint().reason
            inner:cancel("inner")
            got[2] = cancelled_at_checkpoint().reason
            trio.CancelScope():run(function() got[3] = cancelled_at_checkpoint().reason end)
          end)
        end)
        got[4] = cancelled_at_checkpoint().reason -- inner left: outer's again
      end)
      assert.same({ "outer", "inner", "inner", "outer" }, got)
    end)
  end)

  it("a task moved by task_status:started reports the cancel of the nursery it moved to", function()
    trio.run(function()
      local seen = {}
      trio.open_nursery(function(target)
        local caller = trio.CancelScope()
        caller:run(function()
          target:start(function(task_status)
            trio.CancelScope():run(function() -- a scope of its own moves with it
              task_status:started()
              local ok, e = pcall(trio.sleep_forever)
              assert.is_false(ok)
              seen[1] = e
            end)
          end)
          caller:cancel("caller") -- the scope it started under: no longer its
        end)
        trio.testing.wait_all_tasks_blocked()
        target.cancel_scope:cancel("target")
      end)
      assert.equal(1, #seen)
      assert.equal("target", seen[1].reason)
    end)
  end)

  it("every level of 2,000 nested nurseries gets the reason of the cancel at the top", function()
    local reasons = {}
    trio.run(function()
      local built = trio.Event()
      local function level(d)
        if d == 0 then
          built:set()
          local ok, e = pcall(trio.sleep_forever)
          reasons[#reasons + 1] = not ok and e.reason
          error(e, 0)
        end
        local ok, e = pcall(trio.open_nursery, function(n) n:start_soon(level, d - 1) end)
        reasons[#reasons + 1] = not ok and e.reason
        error(e, 0)
      end
      trio.open_nursery(function(n)
        n:start_soon(level, 2000)
        built:wait()
        n.cancel_scope:cancel("top")
      end)
    end)
    assert.equal(2001, #reasons)
    local all_top = true
    for i = 1, #reasons do all_top = all_top and reasons[i] == "top" end
    assert.is_true(all_top)
  end)

  it("nursery: a child's error and the body's error", function()
    trio.run(function()
      local me = tostring(lowlevel.current_task())
      local seen, failing = {}, nil
      pcall(trio.open_nursery, function(n)
        start_sleeper(n, seen)
        trio.testing.wait_all_tasks_blocked()
        n:start_soon(function()
          failing = tostring(lowlevel.current_task())
          error("boom\nsecond line", 0)
        end)
      end)
      assert.equal("nursery", seen[1].source)
      assert.equal("child task raised exception boom", seen[1].reason)
      assert.equal(failing, seen[1].source_task)
      pcall(trio.open_nursery, function(n)
        start_sleeper(n, seen)
        trio.testing.wait_all_tasks_blocked()
        error("body failed", 0)
      end)
      assert.equal("nursery", seen[2].source)
      assert.equal("Code block inside nursery contextmanager raised exception body failed", seen[2].reason)
      assert.equal(me, seen[2].source_task)
    end)
  end)

  it("a nursery whose parent is cancelled passes the parent's reason to its children", function()
    trio.run(function()
      local cs, seen = trio.CancelScope(), {}
      cs:run(function()
        trio.open_nursery(function(n)
          start_sleeper(n, seen)
          trio.testing.wait_all_tasks_blocked()
          cs:cancel("stop all")
        end)
      end)
      assert.equal("explicit", seen[1].source)
      assert.equal("stop all", seen[1].reason)
    end)
  end)

  it("shutdown: the end of the run cancels system tasks", function()
    local e
    trio.run(function()
      lowlevel.spawn_system_task(function()
        local ok
        ok, e = pcall(trio.sleep_forever)
        assert.is_false(ok)
      end)
      trio.testing.wait_all_tasks_blocked()
    end)
    assert.equal("shutdown", e.source)
    assert.equal("cancelled due to shutdown", e.message)
  end)

  it("unknown: a hand-made Cancelled", function()
    local e = trio.Cancelled()
    assert.equal("unknown", e.source)
    assert.is_nil(e.reason)
    assert.is_nil(e.source_task)
    assert.equal("cancelled due to unknown", e.message)
  end)

  it("a reason that is not a string is an argument error naming CancelScope.cancel", function()
    trio.run(function()
      local cs = trio.CancelScope()
      for _, bad in ipairs { 5, {}, true, print } do
        local ok, err = pcall(cs.cancel, cs, bad)
        assert.is_false(ok)
        assert.equal("bad argument #1 to 'CancelScope.cancel' (reason: string or nil expected, got "
          .. type(bad) .. ")", err:match("bad argument.*"))
      end
      assert.is_false(cs.cancel_called) -- nothing happened
      cs:cancel(nil)
      assert.is_true(cs.cancel_called)
    end)
  end)
end)
