-- Signals: trio.open_signal_receiver and loop:add_signal_handler /
-- remove_signal_handler.  Signals are sent to this process with kill(1);
-- whether the process catches a signal is read from /proc/self/status, so
-- the specs can check that the previous handling comes back.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local signals = require "support_signals"
local kill, caught, check_caught = signals.kill, signals.caught, signals.check_caught
local SIGINT, SIGUSR1, SIGUSR2 = 2, 10, 12

local function run(fn)
  return trio.run(function() return trio.fail_after(5, fn) end)
end

describe("trio.open_signal_receiver", function()
  it("yields the names of the signals received, in order", function()
    local got = run(function()
      return trio.open_signal_receiver({ "SIGUSR1", SIGUSR2 }, function(receiver)
        kill("USR2")
        kill("USR1")
        local names = {}
        for name in receiver:iter() do
          names[#names + 1] = name
          if #names == 2 then break end
        end
        return names
      end)
    end)
    assert.same({ "SIGUSR2", "SIGUSR1" }, got)
  end)

  it("coalesces a signal repeated before it is read", function()
    local pending, first = run(function()
      return trio.open_signal_receiver({ "USR1" }, function(receiver)
        kill("USR1")
        kill("USR1")
        trio.sleep(0.05)
        local n = receiver:pending()
        return n, receiver:iter()()
      end)
    end)
    assert.equal(1, pending)
    assert.equal("SIGUSR1", first)
  end)

  it("catches the signals only inside the block: the previous handling comes back", function()
    check_caught(SIGUSR1, false)
    run(function()
      trio.open_signal_receiver({ "SIGUSR1" }, function() check_caught(SIGUSR1, true) end)
    end)
    check_caught(SIGUSR1, false)
  end)

  it("restores the previous handling when the body raises, and lets the error out", function()
    local e = run(function()
      return errof(trio.open_signal_receiver, { "SIGUSR2" }, function() error("body failed") end)
    end)
    assert_has(e, "body failed")
    check_caught(SIGUSR2, false)
  end)

  it("takes SIGINT from KeyboardInterrupt while it watches it, and gives it back", function()
    local name
    local ok, e = pcall(trio.run, function()
      name = trio.fail_after(5, trio.open_signal_receiver, { "SIGINT" }, function(receiver)
        kill("INT")
        return receiver:iter()()
      end)
      assert(caught(SIGINT), "the run's own SIGINT handling is back")
      kill("INT")
      trio.fail_after(5, trio.sleep_forever)
    end)
    assert.equal("SIGINT", name)
    assert.is_false(ok)
    assert.is_true(trio.KeyboardInterrupt:is(e))
  end)

  it("a cancelled wait loses no signal", function()
    local timed_out, name = run(function()
      return trio.open_signal_receiver({ "SIGUSR1" }, function(receiver)
        local it = receiver:iter()
        local scope = trio.move_on_after(0.05, it)
        kill("USR1")
        return scope.cancelled_caught, it()
      end)
    end)
    assert.is_true(timed_out)
    assert.equal("SIGUSR1", name)
  end)

  it("refuses SIGKILL, SIGSTOP, unknown names and bad arguments", function()
    local function e(...) return errof(trio.open_signal_receiver, ...) end
    local body = function() end
    assert_has(e({ "SIGKILL" }, body), "bad argument #1 to 'open_signal_receiver' (item 1: SIGKILL cannot be caught)")
    assert_has(e({ "SIGUSR1", 19 }, body), "item 2: SIGSTOP cannot be caught")
    assert_has(e({ "SIGNOPE" }, body), "unknown signal 'SIGNOPE'")
    assert_has(e({ 1.5 }, body), "signal name or number expected, got number")
    assert_has(e({}, body), "non-empty list of signals expected")
    assert_has(e({ "SIGUSR1" }, 3), "bad argument #2 to 'open_signal_receiver' (function expected, got number)")
  end)

  it("iterating after the block raises; two iterating tasks get BusyResourceError", function()
    local after, busy = run(function()
      local saved, b
      trio.open_signal_receiver({ "SIGUSR1" }, function(receiver)
        saved = receiver
        trio.open_nursery(function(n)
          n:start_soon(function() pcall(receiver:iter()) end)
          trio.testing.wait_all_tasks_blocked()
          b = errof(receiver:iter())
          n.cancel_scope:cancel()
        end)
      end)
      return errof(saved:iter()), b
    end)
    assert_has(after, "the open_signal_receiver block has exited")
    assert.is_true(trio.BusyResourceError:is(busy))
  end)

  it("is Trio-flavored", function()
    local e = asyncio.run(function()
      return errof(trio.open_signal_receiver, { "SIGUSR1" }, function() end)
    end)
    assert.is_true(errors.FlavorError:is(e))
  end)
end)

describe("loop:add_signal_handler", function()
  it("calls the handler with its arguments from the loop, once per signal read", function()
    local calls = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local got, fut = {}, loop:create_future()
      loop:add_signal_handler("SIGUSR1", function(a, b)
        got[#got + 1] = a .. b
        if #got == 2 then fut:set_result(true) end
      end, "x", "y")
      kill("USR1")
      asyncio.sleep(0.05)
      kill("USR1")
      asyncio.wait_for(fut, 5)
      assert(loop:remove_signal_handler("SIGUSR1"))
      return got
    end)
    assert.same({ "xy", "xy" }, calls)
    check_caught(SIGUSR1, false)
  end)

  it("remove_signal_handler returns whether a handler was removed", function()
    local r = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      loop:add_signal_handler(SIGUSR2, function() end)
      check_caught(SIGUSR2, true)
      return { loop:remove_signal_handler("SIGUSR2"), loop:remove_signal_handler("SIGUSR2") }
    end)
    assert.same({ true, false }, r)
    check_caught(SIGUSR2, false)
  end)

  it("a new handler replaces the old one", function()
    local who = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      loop:add_signal_handler("SIGUSR1", function() fut:set_result("old") end)
      loop:add_signal_handler("SIGUSR1", function() fut:set_result("new") end)
      kill("USR1")
      local r = asyncio.wait_for(fut, 5)
      loop:remove_signal_handler("SIGUSR1")
      return r
    end)
    assert.equal("new", who)
  end)

  it("a handler that raises goes to the exception handler, and the loop goes on", function()
    local ctx, after = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local got, fut = nil, loop:create_future()
      loop:set_exception_handler(function(_, c)
        got = c
        fut:set_result(true)
      end)
      loop:add_signal_handler("SIGUSR1", function() error("handler failed") end)
      kill("USR1")
      asyncio.wait_for(fut, 5)
      loop:remove_signal_handler("SIGUSR1")
      return got, "still running"
    end)
    assert_has(ctx.exception, "handler failed")
    assert.equal("still running", after)
  end)

  it("close() removes the loop's handlers", function()
    local loop = asyncio.new_event_loop()
    loop:run_until_complete(function()
      loop:add_signal_handler("SIGUSR2", function() end)
    end)
    check_caught(SIGUSR2, true)
    loop:close()
    check_caught(SIGUSR2, false)
  end)

  it("a SIGINT handler replaces KeyboardInterrupt, in every run of the loop", function()
    local loop = asyncio.new_event_loop()
    local got = 0
    loop:add_signal_handler("SIGINT", function() got = got + 1 end)
    for _ = 1, 2 do
      loop:run_until_complete(function()
        kill("INT")
        local t0 = loop:time()
        while got == 0 and loop:time() - t0 < 5 do asyncio.sleep(0.01) end
      end)
      assert.is_true(got > 0)
      got = 0
    end
    assert.is_true(loop:remove_signal_handler("SIGINT"))
    loop:close()
  end)

  it("refuses what cannot be caught and bad handlers", function()
    local e1, e2, e3 = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      return errof(loop.add_signal_handler, loop, "SIGKILL", print),
        errof(loop.add_signal_handler, loop, "SIGUSR1", 42),
        errof(loop.remove_signal_handler, loop, "NOPE")
    end)
    assert_has(e1, "bad argument #1 to 'add_signal_handler' (SIGKILL cannot be caught)")
    assert_has(e2, "bad argument #2 to 'add_signal_handler' (function expected, got number)")
    assert_has(e3, "bad argument #1 to 'remove_signal_handler' (unknown signal 'NOPE')")
  end)

  it("remove_signal_handler of SIGKILL or SIGSTOP returns false (none can be set)", function()
    local removed = { asyncio.run(function()
      local loop = asyncio.get_running_loop()
      return loop:remove_signal_handler("SIGKILL"), loop:remove_signal_handler("SIGSTOP")
    end) }
    assert.same({ false, false }, removed)
  end)
end)

describe("signals across the bridge", function()
  it("an open_loop loop's signal handler and a Trio receiver in the same run", function()
    local aio_got, trio_got = ta.run(function()
      local loop = asyncio.get_event_loop()
      local fut = loop:create_future()
      loop:add_signal_handler("SIGUSR1", function() fut:set_result("asyncio handler") end)
      kill("USR1")
      local a = trio.fail_after(5, ta.run_aio_future, fut)
      loop:remove_signal_handler("SIGUSR1")
      local t = trio.fail_after(5, trio.open_signal_receiver, { "SIGUSR2" }, function(r)
        kill("USR2")
        return r:iter()()
      end)
      return a, t
    end)
    assert.equal("asyncio handler", aio_got)
    assert.equal("SIGUSR2", trio_got)
  end)
end)

-- ---------------------------------------------------------------------
-- The handling SIGINT had before a run (lua5.4's own handler, a host's
-- SIG_IGN or C handler) comes back after it, also with several states on
-- several threads; checked in child processes, as a regression kills them.
describe("SIGINT's previous handling", function()
  local child = require "child"
  teardown(child.cleanup)

  it("lua5.4's own Ctrl-C handler ('interrupted!') is back after runs, receivers and handlers", function()
    local r = child.run([[
local trio, asyncio = require 'trio', require 'asyncio'
local PID = io.open('/proc/self/stat'):read('l'):match('^(%d+)')
local function caught()
  for line in io.lines('/proc/self/status') do
    local mask = line:match('^SigCgt:%s*(%x+)')
    if mask then return (tonumber(mask:sub(-8), 16) >> 1) & 1 == 1 end
  end
end
print('before', caught())
trio.run(trio.sleep, 0)
print('trio.run', caught())
asyncio.run(function() asyncio.sleep(0) end)
print('asyncio.run', caught())
trio.run(trio.open_signal_receiver, { 'SIGINT' }, function() end)
print('receiver', caught())
local loop = asyncio.new_event_loop()
loop:run_until_complete(function() loop:add_signal_handler('SIGINT', function() end) end)
loop:remove_signal_handler('SIGINT')
loop:close()
print('handler', caught())
local ok, err = pcall(function()
  io.popen('kill -INT ' .. PID):close()
  local t0 = os.clock()
  while os.clock() - t0 < 5 do end
end)
print('ctrl-c', ok, (tostring(err):match('interrupted!')))
]], { timeout = 20 })
    child.expect_lines(r, { "before\ttrue", "trio.run\ttrue", "asyncio.run\ttrue", "receiver\ttrue",
      "handler\ttrue", "ctrl-c\tfalse\tinterrupted!" })
  end)

  for _, how in ipairs({ "ignore", "handler" }) do
    it("a C host's " .. how .. " comes back after runs, receivers, handlers and lua_close", function()
      local r = child.run_host(([[
host.sigint('%s')
local trio, asyncio = require 'trio', require 'asyncio'
trio.run(trio.sleep, 0)
print('trio.run', host.sigint_state())
asyncio.run(function() asyncio.sleep(0) end)
print('asyncio.run', host.sigint_state())
trio.run(trio.open_signal_receiver, { 'SIGINT' }, function() print('in_receiver', host.sigint_state()) end)
print('receiver', host.sigint_state())
local loop = asyncio.new_event_loop()
loop:run_until_complete(function() loop:add_signal_handler('SIGINT', function() end) end)
print('handler_added', host.sigint_state())
loop:close()
print('loop_closed', host.sigint_state())
host.raise_sigint()
print('raised', host.sigint_state())
trio.lowlevel.start_guest_run(trio.sleep_forever, { done_callback = function() end })
print('guest_run', host.sigint_state())
]]):format(how))
      local hits = how == "handler" and "1" or "0"
      child.expect_lines(r, { "trio.run\t" .. how .. "\t0", "asyncio.run\t" .. how .. "\t0",
        "in_receiver\tother\t0", "receiver\t" .. how .. "\t0", "handler_added\tother\t0",
        "loop_closed\t" .. how .. "\t0", "raised\t" .. how .. "\t" .. hits, "guest_run\tother\t" .. hits,
        "sigint_after_close " .. how })
    end)
  end

  for _, order in ipairs({ "ABAB", "ABBA" }) do
    for _, how in ipairs({ "ignore", "handler" }) do
      it(("two states on two threads, runs interleaved %s: the host's %s comes back; the last run "
          .. "still gets KeyboardInterrupt"):format(order, how), function()
        local r = child.run_program("sigint_threads", how .. " " .. order .. " 3", { timeout = 60 })
        child.expect_lines(r, { "round 1 last_ki 1 during other", "round 2 last_ki 1 during other",
          "round 3 last_ki 1 during other", "after " .. how .. " 0" })
      end)
    end
  end

  it("a C host's handler installed during a run, a receiver or a loop's handler stays after it", function()
    local r = child.run_host([[
local trio, asyncio = require 'trio', require 'asyncio'
trio.run(function() host.sigint('handler') end)
print('trio.run', host.sigint_state())
host.sigint('default')
trio.run(trio.open_signal_receiver, { 'SIGINT' }, function() host.sigint('handler') end)
print('receiver', host.sigint_state())
host.sigint('ignore')
local loop = asyncio.new_event_loop()
loop:run_until_complete(function()
  loop:add_signal_handler('SIGINT', function() end)
  host.sigint('handler')
end)
loop:close()
print('loop', host.sigint_state())
host.raise_sigint()
print('raised', host.sigint_state())
]])
    child.expect_lines(r, { "trio.run\thandler\t0", "receiver\thandler\t0", "loop\thandler\t0",
      "raised\thandler\t1", "sigint_after_close handler" })
  end)
end)
