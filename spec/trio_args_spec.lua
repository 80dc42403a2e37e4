-- Every public function checks its arguments at once and raises a
-- luaL_argerror-style error naming itself:
--   bad argument #1 to 'sleep' (number expected, got nil)
local trio = require "trio"
local lowlevel = trio.lowlevel

local function noop() end

-- Calls fn() and returns the error message (the call must fail).
-- (The bad call is written out in fn, as a user would write it, so that
-- Lua can tell the called function's name.)
local function message_of(fn)
  local ok, e = pcall(fn)
  assert(not ok, "expected an argument error, but the call succeeded")
  return tostring(e)
end

local function assert_argerror(fname, msg)
  assert(msg:find("bad argument", 1, true), ("expected a 'bad argument' error, got %q"):format(msg))
  assert(msg:find(fname, 1, true), ("expected the error to name %q, got %q"):format(fname, msg))
end

-- { function name, label, fn }: fn makes the bad call and is run outside any run.
local OUTSIDE = {
  { "run", "trio.run(42)", function() return message_of(function() trio.run(42) end) end },
  { "run", "trio.run()", function() return message_of(function() trio.run() end) end },
  { "run", "trio.lowlevel.run(42)", function() return message_of(function() lowlevel.run(42) end) end },
  { "run", "trio.lowlevel.run{} without fn", function() return message_of(function() lowlevel.run({}) end) end },
  { "CancelScope", "trio.CancelScope(42)", function() return message_of(function() trio.CancelScope(42) end) end },
  { "CancelScope", "trio.CancelScope{deadline='soon'}", function()
    return message_of(function() trio.CancelScope({ deadline = "soon" }) end)
  end },
  { "Semaphore", "trio.Semaphore('x')", function() return message_of(function() trio.Semaphore("x") end) end },
  { "Semaphore", "trio.Semaphore(-1)", function() return message_of(function() trio.Semaphore(-1) end) end },
  { "Semaphore", "trio.Semaphore(2, 1)", function() return message_of(function() trio.Semaphore(2, 1) end) end },
  { "CapacityLimiter", "trio.CapacityLimiter('x')", function() return message_of(function() trio.CapacityLimiter("x") end) end },
  { "CapacityLimiter", "trio.CapacityLimiter(-1)", function() return message_of(function() trio.CapacityLimiter(-1) end) end },
  { "Condition", "trio.Condition(42)", function() return message_of(function() trio.Condition(42) end) end },
  { "open_memory_channel", "trio.open_memory_channel('x')", function()
    return message_of(function() trio.open_memory_channel("x") end)
  end },
  { "open_memory_channel", "trio.open_memory_channel(-1)", function()
    return message_of(function() trio.open_memory_channel(-1) end)
  end },
  { "open_memory_channel", "trio.open_memory_channel(1.5)", function()
    return message_of(function() trio.open_memory_channel(1.5) end)
  end },
  { "open_memory_channel", "trio.open_memory_channel()", function()
    return message_of(function() trio.open_memory_channel() end)
  end },
  { "ContextVar", "trio.ContextVar(42)", function() return message_of(function() trio.ContextVar(42) end) end },
  { "ContextVar", "trio.ContextVar()", function() return message_of(function() trio.ContextVar() end) end },
  { "MockClock", "MockClock{autojump_threshold='x'}", function()
    return message_of(function() trio.testing.MockClock({ autojump_threshold = "x" }) end)
  end },
  { "MockClock", "MockClock{autojump_threshold=-1}", function()
    return message_of(function() trio.testing.MockClock({ autojump_threshold = -1 }) end)
  end },
  { "jump", "clock:jump(-1)", function()
    local c = trio.testing.MockClock()
    return message_of(function() c:jump(-1) end)
  end },
  { "jump", "clock:jump('x')", function()
    local c = trio.testing.MockClock()
    return message_of(function() c:jump("x") end)
  end },
  { "add_instrument", "add_instrument(42)", function()
    return trio.run(function() return message_of(function() lowlevel.add_instrument(42) end) end)
  end },
  { "run", "lowlevel.run{fn=f, instruments=42}", function()
    return message_of(function() lowlevel.run({ fn = noop, instruments = 42 }) end)
  end },
}

-- The same, but the bad call is made inside a task.
local INSIDE = {
  { "sleep", "trio.sleep(nil)", function() return message_of(function() trio.sleep(nil) end) end },
  { "sleep", "trio.sleep('x')", function() return message_of(function() trio.sleep("x") end) end },
  { "sleep", "trio.sleep(-1)", function() return message_of(function() trio.sleep(-1) end) end },
  { "sleep_until", "trio.sleep_until('x')", function() return message_of(function() trio.sleep_until("x") end) end },
  { "open_nursery", "trio.open_nursery(42)", function() return message_of(function() trio.open_nursery(42) end) end },
  { "start_soon", "nursery:start_soon(42)", function()
    return trio.open_nursery(function(n) return message_of(function() n:start_soon(42) end) end)
  end },
  { "start", "nursery:start(nil)", function()
    return trio.open_nursery(function(n) return message_of(function() n:start(nil) end) end)
  end },
  { "run", "scope:run(42)", function()
    local s = trio.CancelScope()
    return message_of(function() s:run(42) end)
  end },
  { "move_on_after", "move_on_after('x', f)", function() return message_of(function() trio.move_on_after("x", noop) end) end },
  { "move_on_after", "move_on_after(-1, f)", function() return message_of(function() trio.move_on_after(-1, noop) end) end },
  { "move_on_after", "move_on_after(1, 42)", function() return message_of(function() trio.move_on_after(1, 42) end) end },
  { "move_on_at", "move_on_at('x', f)", function() return message_of(function() trio.move_on_at("x", noop) end) end },
  { "fail_after", "fail_after(nil, f)", function() return message_of(function() trio.fail_after(nil, noop) end) end },
  { "fail_after", "fail_after(-1, f)", function() return message_of(function() trio.fail_after(-1, noop) end) end },
  { "fail_at", "fail_at('x', f)", function() return message_of(function() trio.fail_at("x", noop) end) end },
  { "wait_task_rescheduled", "wait_task_rescheduled(42)", function()
    return message_of(function() lowlevel.wait_task_rescheduled(42) end)
  end },
  { "reschedule", "reschedule('x')", function() return message_of(function() lowlevel.reschedule("x") end) end },
  { "spawn_system_task", "spawn_system_task(42)", function()
    return message_of(function() lowlevel.spawn_system_task(42) end)
  end },
  { "wait_readable", "wait_readable('x')", function() return message_of(function() lowlevel.wait_readable("x") end) end },
  { "wait_writable", "wait_writable('x')", function() return message_of(function() lowlevel.wait_writable("x") end) end },
  { "notify_closing", "notify_closing('x')", function() return message_of(function() lowlevel.notify_closing("x") end) end },
  { "run_sync_soon", "token:run_sync_soon(42)", function()
    local t = lowlevel.current_trio_token()
    return message_of(function() t:run_sync_soon(42) end)
  end },
  { "unpark", "lot:unpark('x')", function()
    local lot = lowlevel.ParkingLot()
    return message_of(function() lot:unpark("x") end)
  end },
  { "notify", "cond:notify('x')", function()
    local c = trio.Condition()
    c:acquire()
    local m = message_of(function() c:notify("x") end)
    c:release()
    return m
  end },
  { "with", "lock:with(42)", function()
    local l = trio.Lock()
    return message_of(function() l:with(42) end)
  end },
  { "receive", "recv.receive(42) (bad self)", function()
    local _, recv = trio.open_memory_channel(0)
    return message_of(function() recv.receive(42) end)
  end },
  { "send", "send.send(42, 1) (bad self)", function()
    local send = trio.open_memory_channel(0)
    return message_of(function() send.send(42, 1) end)
  end },
  { "send_nowait", "send.send_nowait({}, 1) (bad self)", function()
    local send = trio.open_memory_channel(0)
    return message_of(function() send.send_nowait({}, 1) end)
  end },
  { "run", "scope.run(42, f) (bad self)", function()
    local s = trio.CancelScope()
    return message_of(function() s.run(42, noop) end)
  end },
  { "cancel", "scope.cancel('x') (bad self)", function()
    local s = trio.CancelScope()
    return message_of(function() s.cancel("x") end)
  end },
  { "start_soon", "nursery.start_soon(42, f) (bad self)", function()
    return trio.open_nursery(function(n) return message_of(function() n.start_soon(42, noop) end) end)
  end },
  { "park", "lot.park(42) (bad self)", function()
    local lot = lowlevel.ParkingLot()
    return message_of(function() lot.park(42) end)
  end },
  { "reset", "var:reset(42)", function()
    local v = trio.ContextVar("v")
    return message_of(function() v:reset(42) end)
  end },
  { "started", "task_status.started(42) (bad self)", function()
    return trio.open_nursery(function(n)
      local m
      n:start(function(ts)
        m = message_of(function() ts.started(42) end)
        ts:started()
      end)
      return m
    end)
  end },
}

describe("argument errors outside a run", function()
  for _, c in ipairs(OUTSIDE) do
    it(c[2] .. " names '" .. c[1] .. "'", function()
      assert_argerror(c[1], c[3]())
    end)
  end
end)

describe("argument errors inside a task", function()
  for _, c in ipairs(INSIDE) do
    it(c[2] .. " names '" .. c[1] .. "'", function()
      assert_argerror(c[1], trio.run(c[3]))
    end)
  end

  it("the exact message of trio.sleep(nil) reads like luaL_argerror", function()
    local msg = trio.run(function() return message_of(function() trio.sleep(nil) end) end)
    assert.truthy(msg:find("bad argument #1 to '[%w_.]*sleep' %(number expected, got nil%)"), msg)
  end)

  it("an argument error does not disturb the run", function()
    local r = trio.run(function()
      pcall(trio.sleep, "x")
      trio.sleep(0)
      return "alive"
    end)
    assert.equal("alive", r)
  end)
end)
