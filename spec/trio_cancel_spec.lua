-- CancelScope, move_on_*, fail_*, shielding, level-triggered cancellation,
-- deadlines and current_effective_deadline.
local trio = require "trio"
local support = require "support"
local errof = support.errof

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
