-- CancelScope, move_on_*, fail_*, shielding, level-triggered cancellation,
-- deadlines and current_effective_deadline.
local trio = require "trio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

describe("trio.CancelScope", function()
  it("run returns the body's results and passes arguments", function()
    local a, b = trio.run(function()
      return trio.CancelScope():run(function(x, y) trio.sleep(0) return y, x end, 1, 2)
    end)
    assert.same({ 2, 1 }, { a, b })
  end)

  it("has no deadline, no shield and no cancellation by default", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function() trio.sleep(0) end)
      return scope
    end)
    assert.equal(math.huge, s.deadline)
    assert.is_false(s.shield)
    assert.is_false(s.cancel_called)
    assert.is_false(s.cancelled_caught)
  end)

  it("takes deadline and shield from its table argument", function()
    local d, sh = trio.run(function()
      local t = trio.current_time() + 1000
      local scope = trio.CancelScope { deadline = t, shield = true }
      return scope.deadline - t, scope.shield
    end)
    assert.equal(0, d)
    assert.is_true(sh)
  end)

  it("cancelled before run: the first checkpoint raises, the scope catches it", function()
    local log = {}
    local scope = trio.run(function()
      local s = trio.CancelScope()
      s:cancel()
      local r = s:run(function()
        log[#log + 1] = "before checkpoint"
        trio.sleep(1)
        log[#log + 1] = "unreachable"
        return "value"
      end)
      log[#log + 1] = "run returned " .. tostring(r)
      return s
    end)
    assert.same({ "before checkpoint", "run returned nil" }, log)
    assert.is_true(scope.cancel_called)
    assert.is_true(scope.cancelled_caught)
  end)

  it("cancel inside the body takes effect at the next checkpoint only", function()
    local log = {}
    trio.run(function()
      local s = trio.CancelScope()
      s:run(function()
        s:cancel()
        log[#log + 1] = "still running"
        trio.sleep(0)
        log[#log + 1] = "unreachable"
      end)
    end)
    assert.same({ "still running" }, log)
  end)

  it("a body that ends without a checkpoint after cancel is not marked caught", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function() scope:cancel() end)
      return scope
    end)
    assert.is_true(s.cancel_called)
    assert.is_false(s.cancelled_caught)
  end)

  it("can be cancelled from another task", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        local scope = trio.CancelScope()
        local ready = trio.Event()
        n:start_soon(function()
          scope:run(function()
            ready:set()
            trio.sleep_forever()
          end)
          log[#log + 1] = "child out, caught=" .. tostring(scope.cancelled_caught)
        end)
        ready:wait()
        log[#log + 1] = "cancelling"
        scope:cancel()
      end)
    end)
    assert.same({ "cancelling", "child out, caught=true" }, log)
  end)

  it("cancel is idempotent", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        scope:cancel()
        trio.sleep(0)
      end)
      scope:cancel()
      return scope
    end)
    assert.is_true(s.cancelled_caught)
  end)

  it("cannot be run twice", function()
    local ok = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function() end)
      return pcall(scope.run, scope, function() end)
    end)
    assert.is_false(ok)
  end)

  it("lets a non-Cancelled error through unchanged", function()
    local e = errof(trio.run, function()
      trio.CancelScope():run(function() error("through", 0) end)
    end)
    assert.equal("through", e)
  end)

  it("lets a non-Cancelled error through even when cancelled", function()
    local e = errof(trio.run, function()
      local s = trio.CancelScope()
      s:run(function()
        s:cancel()
        error("other", 0)
      end)
    end)
    assert.equal("other", e)
  end)
end)

describe("level-triggered cancellation", function()
  it("raises Cancelled again at every checkpoint while the scope stays cancelled", function()
    local results = trio.run(function()
      local r = {}
      local s = trio.CancelScope()
      s:run(function()
        s:cancel()
        for i = 1, 3 do
          local ok, e = pcall(trio.sleep, 1)
          r[i] = (not ok) and trio.Cancelled:is(e)
        end
        local ok, e = pcall(trio.lowlevel.checkpoint)
        r[4] = (not ok) and trio.Cancelled:is(e)
      end)
      return r
    end)
    assert.same({ true, true, true, true }, results)
  end)

  it("a swallowed Cancelled leaves cancelled_caught false", function()
    local s = trio.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        pcall(trio.sleep, 1)
      end)
      return scope
    end)
    assert.is_false(s.cancelled_caught)
  end)

  it("reaches a task blocked in a nested scope", function()
    local outer, inner = trio.run(function()
      local o, i = trio.CancelScope(), trio.CancelScope()
      o:run(function()
        i:run(function()
          o:cancel()
          trio.sleep_forever()
        end)
      end)
      return o, i
    end)
    assert.is_true(outer.cancelled_caught)
    assert.is_false(inner.cancelled_caught)
    assert.is_false(inner.cancel_called)
  end)

  it("an inner scope's cancel does not affect the outer one", function()
    local log = {}
    trio.run(function()
      local o = trio.CancelScope()
      o:run(function()
        local i = trio.CancelScope()
        i:run(function() i:cancel() trio.sleep(1) end)
        log[#log + 1] = "inner caught=" .. tostring(i.cancelled_caught)
        trio.sleep(0)
        log[#log + 1] = "outer still fine"
      end)
      log[#log + 1] = "outer caught=" .. tostring(o.cancelled_caught)
    end)
    assert.same({ "inner caught=true", "outer still fine", "outer caught=false" }, log)
  end)

  it("does not interrupt code that never reaches a checkpoint", function()
    local sum = trio.run(function()
      local s = trio.CancelScope()
      local total = 0
      s:run(function()
        s:cancel()
        for i = 1, 1000 do total = total + i end
      end)
      return total
    end)
    assert.equal(500500, sum)
  end)
end)

describe("shielding", function()
  it("a shielded scope keeps an outer cancellation out", function()
    local log = {}
    trio.run(function()
      local outer = trio.CancelScope()
      outer:run(function()
        outer:cancel()
        trio.CancelScope { shield = true }:run(function()
          trio.sleep(0.01)
          log[#log + 1] = "shielded sleep done"
        end)
        log[#log + 1] = "after shield"
        trio.sleep(0)
        log[#log + 1] = "unreachable"
      end)
      log[#log + 1] = "outer caught=" .. tostring(outer.cancelled_caught)
    end)
    assert.same({ "shielded sleep done", "after shield", "outer caught=true" }, log)
  end)

  it("a shielded scope can still be cancelled itself", function()
    local s = trio.run(function()
      local inner = trio.CancelScope { shield = true }
      inner:run(function() inner:cancel() trio.sleep(1) end)
      return inner
    end)
    assert.is_true(s.cancelled_caught)
  end)

  it("shield is settable: dropping it lets the outer cancellation in", function()
    local log = {}
    trio.run(function()
      local outer = trio.CancelScope()
      local inner = trio.CancelScope { shield = true }
      outer:run(function()
        outer:cancel()
        inner:run(function()
          trio.sleep(0)
          log[#log + 1] = "shielded checkpoint passed"
          inner.shield = false
          trio.sleep(0)
          log[#log + 1] = "unreachable"
        end)
      end)
      log[#log + 1] = ("inner=%s outer=%s"):format(tostring(inner.cancelled_caught), tostring(outer.cancelled_caught))
    end)
    assert.same({ "shielded checkpoint passed", "inner=false outer=true" }, log)
  end)

  it("setting shield on a waiting task's scope protects it from a later cancel", function()
    local log = {}
    trio.run(function()
      local outer = trio.CancelScope()
      outer:run(function()
        trio.open_nursery(function(n)
          local inner = trio.CancelScope()
          n:start_soon(function()
            inner:run(function()
              inner.shield = true
              trio.sleep(0.03)
              log[#log + 1] = "child finished its sleep"
            end)
          end)
          trio.sleep(0.005)
          outer:cancel()
        end)
      end)
    end)
    assert.same({ "child finished its sleep" }, log)
  end)

  it("nursery children inside a shield survive an outer cancel", function()
    local log = {}
    trio.run(function()
      local outer = trio.CancelScope()
      outer:run(function()
        outer:cancel()
        trio.CancelScope { shield = true }:run(function()
          trio.open_nursery(function(n)
            n:start_soon(function() trio.sleep(0.01) log[#log + 1] = "child" end)
          end)
        end)
      end)
    end)
    assert.same({ "child" }, log)
  end)
end)

describe("deadlines", function()
  it("a deadline cancels the body when it passes", function()
    local s, dt = trio.run(function()
      local t0 = trio.current_time()
      local scope = trio.CancelScope { deadline = t0 + 0.03 }
      scope:run(function() trio.sleep(10) end)
      return scope, trio.current_time() - t0
    end)
    assert.is_true(s.cancelled_caught)
    assert.is_true(dt >= 0.029 and dt < 5, "took " .. dt)
  end)

  it("a deadline already in the past cancels at the first checkpoint", function()
    local s = trio.run(function()
      local scope = trio.CancelScope { deadline = trio.current_time() - 1 }
      scope:run(function() trio.sleep(1) end)
      return scope
    end)
    assert.is_true(s.cancelled_caught)
  end)

  it("moving the deadline later while running prevents the cancel", function()
    local s = trio.run(function()
      local scope = trio.CancelScope { deadline = trio.current_time() + 0.02 }
      scope:run(function()
        scope.deadline = math.huge
        trio.sleep(0.06)
      end)
      return scope
    end)
    assert.is_false(s.cancelled_caught)
  end)

  it("moving the deadline earlier while running cancels a sleeper", function()
    local s, dt = trio.run(function()
      local t0 = trio.current_time()
      local scope = trio.CancelScope()
      trio.open_nursery(function(n)
        n:start_soon(function() scope:run(function() trio.sleep(10) end) end)
        trio.sleep(0.01)
        scope.deadline = trio.current_time()
      end)
      return scope, trio.current_time() - t0
    end)
    assert.is_true(s.cancelled_caught)
    assert.is_true(dt < 5)
  end)

  it("reading deadline returns what was set", function()
    local v = trio.run(function()
      local scope = trio.CancelScope()
      scope.deadline = 12345.5
      return scope.deadline
    end)
    assert.equal(12345.5, v)
  end)
end)

describe("trio.move_on_after / move_on_at", function()
  it("returns the scope and the body's results when in time", function()
    local scope, a, b = trio.run(function()
      return trio.move_on_after(5, function(x) trio.sleep(0) return x, "b" end, "a")
    end)
    assert.is_false(scope.cancelled_caught)
    assert.same({ "a", "b" }, { a, b })
  end)

  it("cancels the body on timeout and marks the scope", function()
    local log = {}
    local scope, r = trio.run(function()
      return trio.move_on_after(0.02, function()
        trio.sleep(10)
        log[#log + 1] = "unreachable"
        return "value"
      end)
    end)
    assert.is_true(scope.cancelled_caught)
    assert.is_nil(r)
    assert.same({}, log)
  end)

  it("sets the scope deadline to now + seconds", function()
    local diff = trio.run(function()
      local before = trio.current_time()
      local scope = trio.move_on_after(100, function() end)
      return scope.deadline - before
    end)
    assert.is_true(diff >= 100 and diff < 101)
  end)

  it("move_on_at uses an absolute deadline", function()
    local scope, dt = trio.run(function()
      local t0 = trio.current_time()
      local s = trio.move_on_at(t0 + 0.02, trio.sleep, 10)
      return s, trio.current_time() - t0
    end)
    assert.is_true(scope.cancelled_caught)
    assert.is_true(dt >= 0.019 and dt < 5)
  end)

  it("move_on_after(0) cancels a body that checkpoints", function()
    local scope = trio.run(function() return trio.move_on_after(0, trio.sleep, 1) end)
    assert.is_true(scope.cancelled_caught)
  end)

  it("the nearer of nested deadlines wins", function()
    local outer, inner = trio.run(function()
      local i
      local o = trio.move_on_after(10, function()
        i = trio.move_on_after(0.02, trio.sleep, 5)
      end)
      return o, i
    end)
    assert.is_false(outer.cancelled_caught)
    assert.is_true(inner.cancelled_caught)
  end)

  it("an outer deadline cancels through an inner scope without a deadline", function()
    local outer, inner = trio.run(function()
      local i = trio.CancelScope()
      local o = trio.move_on_after(0.02, function()
        i.deadline = trio.current_time() + 10
        i:run(trio.sleep, 5)
      end)
      return o, i
    end)
    assert.is_true(outer.cancelled_caught)
    assert.is_false(inner.cancelled_caught)
  end)
end)

describe("trio.fail_after / fail_at", function()
  it("returns the body's results when in time", function()
    local a, b = trio.run(function()
      return trio.fail_after(5, function(x) trio.sleep(0) return x, 2 end, 1)
    end)
    assert.same({ 1, 2 }, { a, b })
  end)

  it("raises TooSlowError on timeout", function()
    local e = errof(trio.run, function() trio.fail_after(0.02, trio.sleep, 10) end)
    assert.is_true(trio.TooSlowError:is(e))
    assert.is_false(trio.Cancelled:is(e))
  end)

  it("fail_at raises TooSlowError for a past deadline", function()
    local e = errof(trio.run, function()
      trio.fail_at(trio.current_time() - 1, trio.sleep, 1)
    end)
    assert.is_true(trio.TooSlowError:is(e))
  end)

  it("lets the body's own error through", function()
    local e = errof(trio.run, function()
      trio.fail_after(5, function() error("mine", 0) end)
    end)
    assert.equal("mine", e)
  end)

  it("TooSlowError can be caught inside the run", function()
    local caught = trio.run(function()
      local ok, e = pcall(trio.fail_after, 0.01, trio.sleep_forever)
      return (not ok) and trio.TooSlowError:is(e)
    end)
    assert.is_true(caught)
  end)

  it("does not raise TooSlowError when an outer scope did the cancelling", function()
    local outer = trio.run(function()
      return trio.move_on_after(0.01, function()
        trio.fail_after(10, trio.sleep, 5)
      end)
    end)
    assert.is_true(outer.cancelled_caught)
  end)
end)

describe("timeouts without a body, and their shield option", function()
  it("move_on_after(s) is an unentered scope whose deadline counts from entry", function()
    local clock = trio.testing.MockClock()
    trio.lowlevel.run { clock = clock, fn = function()
      local scope = trio.move_on_after(10)
      assert.is_true(scope.is_relative)
      assert.equal(10, scope.relative_deadline)
      clock:jump(7)
      scope:run(function()
        assert.equal(trio.current_time() + 10, scope.deadline)
        clock:jump(10)
        trio.sleep(1) -- cancelled: the deadline passed
        error("not reached")
      end)
      assert.is_true(scope.cancelled_caught)
      assert.is_nil(scope.is_relative)
    end }
  end)

  it("move_on_at(t) is an unentered scope with that deadline", function()
    trio.run(function()
      local t = trio.current_time() + 100
      local scope = trio.move_on_at(t, { shield = true })
      assert.equal(t, scope.deadline)
      assert.is_true(scope.shield)
      assert.is_false(scope.is_relative)
      assert.equal("ran", select(1, scope:run(function() return "ran" end)))
    end)
  end)

  it("fail_after(s) and fail_at(t) without a body: their run raises TooSlowError", function()
    trio.run(function()
      local s = trio.fail_after(0.01)
      local e = errof(s.run, s, trio.sleep, 10)
      assert.is_true(trio.TooSlowError:is(e), tostring(e))
      assert.is_true(s.cancelled_caught)
      local s2 = trio.fail_at(trio.current_time() + 10)
      assert.equal(3, s2:run(function() return 3 end))
      -- a plain scope catching its cancellation raises nothing
      local plain = trio.CancelScope { deadline = trio.current_time() }
      assert.equal(0, select("#", plain:run(trio.sleep, 1)))
    end)
  end)

  it("the options table comes between the time and the body; the body gets its arguments", function()
    trio.run(function()
      local outer = trio.CancelScope()
      local scope, a, b
      outer:run(function()
        scope, a, b = trio.move_on_after(10, { shield = true }, function(x, y)
          outer:cancel()
          trio.sleep(0) -- shielded
          return x, y
        end, "x", "y")
      end)
      assert.is_true(scope.shield)
      assert.same({ "x", "y" }, { a, b })
      assert.equal(5, trio.fail_at(trio.current_time() + 1, { shield = false }, function(v) return v end, 5))
      -- a callable table is a body, not options
      local body = setmetatable({}, { __call = function(_, v) return v * 2 end })
      assert.equal(8, select(2, trio.move_on_at(trio.current_time() + 1, body, 4)))
    end)
  end)

  it("checks the shield option and the body after it", function()
    trio.run(function()
      assert_has(errof(trio.move_on_after, 1, { shield = 1 }), "bad argument #2 to 'move_on_after' (shield must be a boolean")
      assert_has(errof(trio.fail_at, 1, { shield = true }, 42), "bad argument #3 to 'fail_at' (function expected")
      assert_has(errof(trio.move_on_after, 1, nil, 42), "bad argument #2 to 'move_on_after' (function expected")
    end)
  end)
end)

describe("tostring(CancelScope)", function()
  it("tells the binding, cancellation and deadline, as Trio's repr", function()
    local clock = trio.testing.MockClock()
    local scope = trio.CancelScope()
    local seen = {}
    trio.lowlevel.run { clock = clock, fn = function()
      seen[#seen + 1] = tostring(scope)
      scope:run(function()
        seen[#seen + 1] = tostring(scope)
        scope.deadline = trio.current_time() - 1
        seen[#seen + 1] = tostring(scope)
        scope.deadline = trio.current_time() + 10
        seen[#seen + 1] = tostring(scope)
        scope:cancel()
        seen[#seen + 1] = tostring(scope)
      end)
    end }
    seen[#seen + 1] = tostring(scope)
    local want = { "^CancelScope %(unbound, 0x", "^CancelScope %(active, 0x",
      "^CancelScope %(active, deadline is 1%.00 seconds ago, 0x",
      "^CancelScope %(active, deadline is 10%.00 seconds from now, 0x",
      "^CancelScope %(active, cancelled, 0x", "^CancelScope %(exited, cancelled, 0x" }
    for i, pat in ipairs(want) do assert.matches(pat, seen[i]) end
    -- outside a run there is no current time: no deadline
    assert.matches("^CancelScope %(unbound, 0x", tostring(trio.CancelScope { deadline = 5 }))
  end)
end)

describe("relative deadlines of CancelScope", function()
  it("CancelScope{relative_deadline=} counts from entry; setting it once entered counts from now", function()
    local clock = trio.testing.MockClock()
    trio.lowlevel.run { clock = clock, fn = function()
      local scope = trio.CancelScope { relative_deadline = 5 }
      clock:jump(2)
      scope:run(function()
        local t = trio.current_time()
        assert.equal(t + 5, scope.deadline)
        clock:jump(1)
        assert.equal(4, scope.relative_deadline)
        scope.relative_deadline = 10
        assert.equal(t + 11, scope.deadline)
      end)
      assert.equal(trio.current_time() + 10, scope.deadline) -- kept after exit
      -- an unentered scope without any deadline may take a relative one
      local s2 = trio.CancelScope()
      assert.is_false(s2.is_relative)
      s2.relative_deadline = 3
      assert.is_true(s2.is_relative)
      assert.equal(3, s2.relative_deadline)
    end }
  end)

  it("a relative deadline of 0 cancels at entry", function()
    trio.run(function()
      local scope = trio.CancelScope { relative_deadline = 0 }
      scope:run(trio.sleep, 10)
      assert.is_true(scope.cancelled_caught)
    end)
  end)
end)

describe("trio.current_effective_deadline", function()
  it("is math.huge without any deadline", function()
    assert.equal(math.huge, trio.run(trio.current_effective_deadline))
  end)

  it("is the deadline of the enclosing scope", function()
    local got, want = trio.run(function()
      local t = trio.current_time() + 1000
      return trio.CancelScope { deadline = t }:run(trio.current_effective_deadline), t
    end)
    assert.equal(want, got)
  end)

  it("is the nearest of nested deadlines", function()
    local got, want = trio.run(function()
      local t = trio.current_time()
      local _, inner = trio.move_on_at(t + 50, function()
        local _, x = trio.move_on_at(t + 500, trio.current_effective_deadline)
        return x
      end)
      return inner, t + 50
    end)
    assert.equal(want, got)
  end)

  it("a shield hides the outer deadlines", function()
    local got = trio.run(function()
      return select(2, trio.move_on_after(50, function()
        return trio.CancelScope { shield = true }:run(trio.current_effective_deadline)
      end))
    end)
    assert.equal(math.huge, got)
  end)

  it("is -math.huge once the scope is cancelled", function()
    local got = trio.run(function()
      local s = trio.CancelScope()
      return s:run(function()
        s:cancel()
        return trio.current_effective_deadline()
      end)
    end)
    assert.equal(-math.huge, got)
  end)
end)

describe("Cancelled and ExceptionGroup at scope boundaries", function()
  it("a scope around a nursery catches the Cancelled of all its tasks", function()
    local log = {}
    local scope = trio.run(function()
      local s = trio.CancelScope()
      local _ = s:run(function()
        trio.open_nursery(function(n)
          n:start_soon(trio.sleep_forever)
          n:start_soon(trio.sleep_forever)
          trio.sleep(0)
          s:cancel()
          trio.sleep_forever()
        end)
        log[#log + 1] = "unreachable"
      end)
      log[#log + 1] = "run returned normally"
      return s
    end)
    assert.same({ "run returned normally" }, log)
    assert.is_true(scope.cancelled_caught)
  end)

  it("a nursery whose tasks were all cancelled raises a single Cancelled", function()
    local e = trio.run(function()
      local err
      local s = trio.CancelScope()
      s:run(function()
        local ok
        ok, err = pcall(trio.open_nursery, function(n)
          n:start_soon(trio.sleep_forever)
          s:cancel()
          trio.sleep_forever()
        end)
        assert(not ok)
      end)
      return err
    end)
    assert.is_true(trio.Cancelled:is(e))
    assert.is_false(trio.ExceptionGroup:is(e))
  end)

  it("re-raises a group without its Cancelled members", function()
    local e = errof(trio.run, function()
      local outer = trio.CancelScope()
      outer:run(function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            pcall(trio.sleep_forever)
            error("cleanup failed", 0)
          end)
          n:start_soon(trio.sleep_forever)
          trio.sleep(0)
          outer:cancel()
          trio.sleep_forever()
        end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "cleanup failed" }, e.exceptions)
    assert.equal(1, #e.tracebacks)
  end)

  it("Cancelled reaches children through the nursery's parent scope", function()
    local log = {}
    trio.run(function()
      trio.move_on_after(0.02, function()
        trio.open_nursery(function(n)
          for _ = 1, 3 do
            n:start_soon(function()
              local _, e = pcall(trio.sleep_forever)
              log[#log + 1] = trio.Cancelled:is(e)
              error(e, 0)
            end)
          end
        end)
      end)
    end)
    assert.same({ true, true, true }, log)
  end)
end)
