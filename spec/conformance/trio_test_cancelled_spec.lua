-- Ported from Trio's src/trio/_core/_tests/test_cancelled.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation as in trio_test_run_spec.lua.  Our Cancelled has no source,
-- source_task or reason, CancelScope:cancel takes no reason, and
-- trio.Cancelled can be constructed like every error class
-- (docs/SEMANTICS.md, "Cancelled carries no source or reason"): the tests
-- about those keep their cancellation behaviour (who gets Cancelled, which
-- errors the nursery raises) and check the class and the fixed message
-- "cancelled" instead of the "cancelled due to ..." text.
-- Left out:
--   test_Cancelled_subclass (Python's class machinery: our public API
--   defines no error classes);
--   test_Cancelled_pickle (pickle: Python-only);
--   test_reason_delayed_ki (only checks the reason text of the Cancelled a
--   KeyboardInterrupt causes, and needs enable_ki_protection and ki_self,
--   which our API does not have).
local trio = require "trio"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"

local lowlevel = trio.lowlevel
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local TypeError = errors.class("test.TypeError", errors.Error)

local function first_line(e) return (tostring(e):match("^[^\n]*")) end

describe("trio test_cancelled", function()
  it("test_Cancelled_init (adapted: Cancelled has a public constructor here)", function()
    local e = trio.Cancelled()
    assert.is_true(trio.Cancelled:is(e))
    assert.equal("cancelled", e.message)
    -- a hand-made Cancelled is not caught by a scope that was not cancelled
    H.run(function()
      local cs = trio.CancelScope()
      assert.equal(e, H.raises(trio.Cancelled, cs.run, cs, function() error(e, 0) end))
      assert.is_false(cs.cancelled_caught)
    end)
  end)

  it("test_Cancelled_str (adapted: the fixed message 'cancelled', no source)", function()
    assert.equal("trio.Cancelled: cancelled", first_line(trio.Cancelled()))
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        local e = H.raises(trio.Cancelled, lowlevel.checkpoint)
        assert.equal("trio.Cancelled: cancelled", first_line(e))
        assert.equal("cancelled", e.message)
        assert.is_nil(e.source)
        assert.is_nil(e.reason)
      end)
    end)
  end)

  local function cancel_explicitly(cs) cs:cancel() end
  local function cancel_by_deadline(cs) cs.deadline = -math.huge end

  -- Runs a scope that each of the actions cancels in turn, each followed
  -- by a checkpoint that must raise Cancelled.
  local function run_cancelled_by(...)
    local actions = { ... }
    H.run(function()
      local cs = trio.CancelScope()
      cs:run(function()
        for _, act in ipairs(actions) do
          act(cs)
          H.raises(trio.Cancelled, lowlevel.checkpoint)
        end
      end)
      assert.is_true(cs.cancel_called)
    end)
  end

  it("test_cancel_reason (adapted: no reason; an explicit cancel and a past deadline, given or set, cancel)",
    function()
      run_cancelled_by(cancel_explicitly)
      H.run(function()
        local cs = trio.CancelScope { deadline = -math.huge }
        cs:run(function()
          H.raises(trio.Cancelled, lowlevel.checkpoint)
        end)
        assert.is_true(cs.cancel_called)
      end)
      run_cancelled_by(cancel_by_deadline)
    end)

  -- cancelled_task of the upstream file: started, then waits until it is
  -- cancelled, then raises TypeError.
  local function cancelled_task(task_status)
    task_status:started()
    H.raises(trio.Cancelled, trio.sleep_forever)
    error(TypeError(), 0)
  end

  it("test_cancel_reason_nursery (adapted: the sibling's Cancelled has no reason)", function()
    H.run(function()
      local function failing_task(task_status)
        task_status:started(lowlevel.current_task())
        error(H.ValueError(), 0)
      end
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start(failing_task)
          H.raises(trio.Cancelled, wait_all_tasks_blocked)
          nursery:start(cancelled_task)
        end)
      end, H.ValueError, TypeError)
    end)
  end)

  it("test_cancel_reason_nursery2 (adapted: the sibling's Cancelled has no reason)", function()
    H.run(function()
      local function failing_task(task_status)
        task_status:started(lowlevel.current_task())
        wait_all_tasks_blocked()
        error(H.ValueError(), 0)
      end
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start(failing_task)
          nursery:start(cancelled_task)
        end)
      end, H.ValueError, TypeError)
    end)
  end)

  it("test_cancel_reason_nursery3 (adapted: the sibling's Cancelled has no reason)", function()
    H.run(function()
      local function failing_task()
        error(H.ValueError(), 0)
      end
      local sibling_cancelled = false
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            H.raises(trio.Cancelled, trio.sleep_forever)
            sibling_cancelled = true
          end)
          wait_all_tasks_blocked()
          nursery:start(failing_task)
        end)
      end, H.ValueError)
      assert.is_true(sibling_cancelled)
    end)
  end)

  it("test_cancel_reason_not_overwritten (adapted: the scope stays cancelled after a later past deadline)",
    function()
      run_cancelled_by(cancel_explicitly, cancel_by_deadline)
    end)

  it("test_cancel_reason_not_overwritten_2 (adapted: the scope stays cancelled after a later cancel())",
    function()
      run_cancelled_by(cancel_by_deadline, cancel_explicitly)
    end)

  it("test_nested_child_source (adapted: the child's Cancelled has no source)", function()
    H.run(function()
      local ev = trio.Event()
      local child_cancelled = false
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            ev:set()
            H.raises(trio.Cancelled, trio.sleep_forever)
            child_cancelled = true
          end)
          ev:wait()
          error(H.ValueError(), 0)
        end)
      end, H.ValueError)
      assert.is_true(child_cancelled)
    end)
  end)
end)
