-- Ported from Trio's src/trio/_core/_tests/test_cancelled.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation as in trio_test_run_spec.lua.  trio.Cancelled can be
-- constructed like every error class (docs/SEMANTICS.md); a task's repr is
-- its tostring; an error's repr in a reason is the first line of its
-- tostring.
-- Left out:
--   test_Cancelled_subclass (Python's class machinery: our public API
--   defines no error classes);
--   test_Cancelled_pickle (pickle: Python-only);
-- test_reason_delayed_ki is adapted as trio_test_ki_spec.lua adapts test_ki.py:
-- in a child process (spec/child.lua), ki_self is a real SIGINT, and the
-- raiser needs no KI protection (Ctrl-C always goes to the main task here).
local trio = require "trio"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"
local child = require "child"

local lowlevel = trio.lowlevel
local current_task = lowlevel.current_task
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local TypeError = errors.class("test.TypeError", errors.Error)

local function first_line(e) return (tostring(e):match("^[^\n]*")) end

describe("trio test_cancelled", function()
  it("test_Cancelled_init (adapted: Cancelled has a public constructor here)", function()
    local e = trio.Cancelled()
    assert.is_true(trio.Cancelled:is(e))
    assert.equal("cancelled due to unknown", e.message)
    assert.equal("unknown", e.source)
    -- a hand-made Cancelled is not caught by a scope that was not cancelled
    H.run(function()
      local cs = trio.CancelScope()
      assert.equal(e, H.raises(trio.Cancelled, cs.run, cs, function() error(e, 0) end))
      assert.is_false(cs.cancelled_caught)
    end)
  end)

  it("test_Cancelled_str (adapted: the texts of raised Cancelled)", function()
    assert.equal("trio.Cancelled: cancelled due to unknown", first_line(trio.Cancelled()))
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel("pigs flying")
        local e = H.raises(trio.Cancelled, lowlevel.checkpoint)
        assert.equal("trio.Cancelled: cancelled due to explicit with reason 'pigs flying' from task "
          .. tostring(current_task()), first_line(e))
      end)
      trio.CancelScope { deadline = -math.huge }:run(function()
        assert.equal("trio.Cancelled: cancelled due to deadline", first_line(H.raises(trio.Cancelled, lowlevel.checkpoint)))
      end)
    end)
  end)

  it("test_cancel_reason", function()
    H.run(function()
      local cs = trio.CancelScope()
      local e
      cs:run(function()
        cs:cancel("hello")
        e = H.raises(trio.Cancelled, lowlevel.checkpoint)
        assert.equal("cancelled due to explicit with reason 'hello' from task " .. tostring(current_task()), e.message)
      end)
      assert.equal("explicit", e.source)
      assert.equal("hello", e.reason)
      assert.equal(tostring(current_task()), e.source_task)

      cs = trio.CancelScope { deadline = -math.huge }
      cs:run(function()
        e = H.raises(trio.Cancelled, lowlevel.checkpoint)
        assert.truthy(e.message:find("^cancelled due to deadline"))
      end)

      cs = trio.CancelScope()
      cs:run(function()
        cs.deadline = -math.huge
        e = H.raises(trio.Cancelled, lowlevel.checkpoint)
        assert.truthy(e.message:find("^cancelled due to deadline"))
      end)
    end)
  end)

  local function match_str(fail_task)
    return "cancelled due to nursery with reason 'child task raised exception test.ValueError: ' from task "
      .. tostring(fail_task)
  end

  -- cancelled_task of the upstream file: started, then waits until it is
  -- cancelled (for fail_task's error), then raises TypeError.
  local function cancelled_task(fail_task, task_status)
    task_status:started()
    local e = H.raises(trio.Cancelled, trio.sleep_forever)
    assert.equal(match_str(fail_task), e.message)
    error(TypeError(), 0)
  end

  it("test_cancel_reason_nursery", function()
    H.run(function()
      local function failing_task(task_status)
        task_status:started(current_task())
        error(H.ValueError(), 0)
      end
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          local fail_task = nursery:start(failing_task)
          local e = H.raises(trio.Cancelled, wait_all_tasks_blocked)
          assert.equal(match_str(fail_task), e.message)
          nursery:start(cancelled_task, fail_task)
        end)
      end, H.ValueError, TypeError)
    end)
  end)

  it("test_cancel_reason_nursery2", function()
    H.run(function()
      local function failing_task(task_status)
        task_status:started(current_task())
        wait_all_tasks_blocked()
        error(H.ValueError(), 0)
      end
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          local fail_task = nursery:start(failing_task)
          nursery:start(cancelled_task, fail_task)
        end)
      end, H.ValueError, TypeError)
    end)
  end)

  it("test_cancel_reason_nursery3", function()
    H.run(function()
      local parent_task = current_task()
      local function failing_task()
        error(H.ValueError(), 0)
      end
      local sibling_cancelled = false
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            local e = H.raises(trio.Cancelled, trio.sleep_forever)
            assert.equal("cancelled due to nursery with reason 'Code block inside nursery contextmanager raised "
              .. "exception test.ValueError: ' from task " .. tostring(parent_task), e.message)
            sibling_cancelled = true
          end)
          wait_all_tasks_blocked()
          nursery:start(failing_task)
        end)
      end, H.ValueError)
      assert.is_true(sibling_cancelled)
    end)
  end)

  it("test_cancel_reason_not_overwritten", function()
    H.run(function()
      local cs = trio.CancelScope()
      cs:run(function()
        local want = "cancelled due to explicit from task " .. tostring(current_task())
        cs:cancel()
        assert.equal(want, H.raises(trio.Cancelled, lowlevel.checkpoint).message)
        cs.deadline = -math.huge
        assert.equal(want, H.raises(trio.Cancelled, lowlevel.checkpoint).message)
      end)
    end)
  end)

  it("test_cancel_reason_not_overwritten_2", function()
    H.run(function()
      local cs = trio.CancelScope()
      cs:run(function()
        cs.deadline = -math.huge
        assert.equal("cancelled due to deadline", H.raises(trio.Cancelled, lowlevel.checkpoint).message)
        cs:cancel()
        assert.equal("cancelled due to deadline", H.raises(trio.Cancelled, lowlevel.checkpoint).message)
      end)
    end)
  end)

  it("test_nested_child_source", function()
    H.run(function()
      local ev = trio.Event()
      local parent_task = current_task()
      local child_cancelled = false
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            ev:set()
            local e = H.raises(trio.Cancelled, trio.sleep_forever)
            assert.equal("cancelled due to nursery with reason 'Code block inside nursery contextmanager raised "
              .. "exception test.ValueError: ' from task " .. tostring(parent_task), e.message)
            child_cancelled = true
          end)
          ev:wait()
          error(H.ValueError(), 0)
        end)
      end, H.ValueError)
      assert.is_true(child_cancelled)
    end)
  end)

  it("test_reason_delayed_ki (adapted: a real SIGINT in a child process)", function()
    local r = child.run([[
local trio = require "trio"
local signals = require "support_signals"
local parent_task
local messages = {}
local function sleeper(name)
  local ok, e = pcall(function() while true do trio.lowlevel.checkpoint() end end)
  assert(not ok and trio.Cancelled:is(e), tostring(e))
  messages[#messages + 1] = name .. ": " .. e.message
end
local function raiser()
  signals.kill("INT")
  local t0 = os.clock()
  while os.clock() - t0 < 0.03 do end
end
local ok, err = pcall(trio.run, function()
  parent_task = tostring(trio.lowlevel.current_task())
  trio.open_nursery(function(nursery)
    nursery:start_soon(sleeper, "s1")
    nursery:start_soon(sleeper, "s2")
    nursery:start_soon(raiser, "r1")
  end)
end)
print("ki", ok, trio.ExceptionGroup:is(err) and #err.exceptions == 1 and trio.KeyboardInterrupt:is(err.exceptions[1]))
table.sort(messages)
for _, m in ipairs(messages) do
  local from, to = m:find(parent_task, 1, true)
  if from then m = m:sub(1, from - 1) .. "PARENT" .. m:sub(to + 1) end
  print(m)
end
]], { timeout = 20 })
    child.expect_lines(r, { "ki\tfalse\ttrue",
      "s1: cancelled due to KeyboardInterrupt from task PARENT",
      "s2: cancelled due to KeyboardInterrupt from task PARENT" })
  end)
  teardown(child.cleanup)
end)
