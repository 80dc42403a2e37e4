-- Ported from Trio's src/trio/_tests/test_signals.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: `with open_signal_receiver(*signals) as receiver` is
-- trio.open_signal_receiver(signals, fn(receiver)); `async for signum in
-- receiver` / receiver.__anext__() is the iterator of receiver:iter(),
-- which yields names ("SIGUSR1") where Trio yields numbers;
-- get_pending_signal_count(receiver) is receiver:pending().  Python's
-- signal.raise_signal is kill(1) on this process (the handler has run when
-- the command returns; the run sees the signal at its next look at I/O,
-- so the tests sleep 50 ms where Trio's run_sync_soon barrier is enough),
-- or in the C host of spec/host/hostile.c its raise(SIGINT).  The tests
-- use SIGUSR1 and SIGUSR2 where Trio uses SIGILL and SIGFPE (a stray
-- SIGILL or SIGFPE after a block would dump core, and sanitizers catch
-- them).  signal.getsignal(...) is read from /proc/self/status (SigCgt,
-- SigIgn), as spec/signals_spec.lua does.
--
-- Ported: test_open_signal_receiver_restore_handler_after_one_bad_signal,
-- test_open_signal_receiver_empty_fail,
-- test_open_signal_receiver_restore_handler_after_duplicate_signal,
-- test_open_signal_receiver_conflict,
-- test_open_signal_receiver_no_starvation.
-- Adapted: test_open_signal_receiver (the signals come from kill(1); see
-- above), test_catch_signals_race_condition_on_exit (its "direct handler"
-- is an outer receiver on the same signals, then a C host's SIGINT
-- handler; its SIG_IGN a child started with SIGUSR1 ignored.  Signals
-- still queued when the block exits are dropped, not re-raised as Trio
-- does, so the host's handler sees none of them, while an outer receiver
-- gets each signal anyway (docs/SEMANTICS.md "Signals").  The part where
-- Trio chains the errors of several raising Python handlers is left out:
-- a C handler raises nothing).
-- Dropped: test_catch_signals_wrong_thread (Python's rule that only the
-- main thread may set signal handlers: here a run on any thread may watch
-- signals, and to_thread workers run no Trio code at all).
local trio = require "trio"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"

local signals = require "support_signals"
local raise_signal, check_caught = signals.kill, signals.check_caught
local SIGUSR1 = 10

-- The run has taken in the signals sent so far.
local function settle() trio.sleep(0.05) end

describe("test_signals.py", function()
  it("test_open_signal_receiver", function()
    check_caught(SIGUSR1, false)
    local saved
    H.run(function()
      trio.open_signal_receiver({ "SIGUSR1" }, function(receiver)
        saved = receiver
        check_caught(SIGUSR1, true)
        -- several times: they are coalesced
        raise_signal("USR1")
        raise_signal("USR1")
        trio.testing.wait_all_tasks_blocked()
        raise_signal("USR1")
        settle()
        assert.equal("SIGUSR1", receiver:iter()()) -- the first of `async for`
        assert.equal(0, receiver:pending())
        raise_signal("USR1")
        assert.equal("SIGUSR1", receiver:iter()()) -- the first of `async for`
        assert.equal(0, receiver:pending())
      end)
      H.raises(errors.RuntimeError, saved:iter())
    end)
    check_caught(SIGUSR1, false)
  end)

  it("test_open_signal_receiver_restore_handler_after_one_bad_signal", function()
    check_caught(SIGUSR1, false)
    H.run(function()
      H.raises(H.msg("invalid signal number 1234567"), trio.open_signal_receiver, { "SIGUSR1", 1234567 },
        function() error("not reached") end)
    end)
    check_caught(SIGUSR1, false)
  end)

  it("test_open_signal_receiver_empty_fail", function()
    H.run(function()
      H.raises(H.msg("non-empty list of signals expected"), trio.open_signal_receiver, {},
        function() error("not reached") end)
    end)
  end)

  it("test_open_signal_receiver_restore_handler_after_duplicate_signal", function()
    check_caught(SIGUSR1, false)
    H.run(function()
      trio.open_signal_receiver({ "SIGUSR1", "SIGUSR1" }, function() end)
      trio.open_signal_receiver({ "SIGUSR1", SIGUSR1, "USR1" }, function() end)
    end)
    check_caught(SIGUSR1, false)
  end)

  it("test_open_signal_receiver_conflict", function()
    H.run(function()
      trio.open_signal_receiver({ "SIGUSR1" }, function(receiver)
        H.raises(H.group(trio.BusyResourceError), trio.open_nursery, function(nursery)
          nursery:start_soon(receiver:iter())
          nursery:start_soon(receiver:iter())
        end)
      end)
    end)
  end)

  it("test_open_signal_receiver_no_starvation", function()
    -- Both signals always pending: the receiver alternates between them.
    H.run(function()
      trio.open_signal_receiver({ "SIGUSR1", "SIGUSR2" }, function(receiver)
        local next_signal = receiver:iter()
        local previous
        for _ = 1, 10 do
          raise_signal("USR1")
          raise_signal("USR2")
          settle()
          local got = next_signal()
          assert.is_true(got == "SIGUSR1" or got == "SIGUSR2", got)
          assert.is_not.equal(previous, got)
          previous = got
        end
        while receiver:pending() ~= 0 do next_signal() end
      end)
    end)
  end)

  describe("test_catch_signals_race_condition_on_exit", function()
    local child = require "child"
    teardown(child.cleanup)

    it("an outer receiver as the direct handler: it gets each signal once", function()
      -- Trio: the outer handler gets them when the inner block re-raises
      -- them; here every receiver on a signal gets it (libuv), and the
      -- inner block re-raises nothing.  Both ways: once each.
      H.run(function()
        for _, settle_inside in ipairs { false, true } do
          trio.open_signal_receiver({ "SIGUSR1", "SIGUSR2" }, function(direct)
            trio.open_signal_receiver({ "SIGUSR1", "SIGUSR2" }, function(receiver)
              raise_signal("USR1")
              raise_signal("USR2")
              if settle_inside then
                settle()
                assert.equal(2, receiver:pending())
              end
            end)
            settle()
            assert.equal(2, direct:pending())
            local next_signal = direct:iter()
            assert.same({ "SIGUSR1", "SIGUSR2" }, H.sorted { next_signal(), next_signal() })
            assert.equal(0, direct:pending())
          end)
        end
      end)
    end)

    it("a handler of the host's: the signals still queued at the exit are dropped", function()
      local r = child.run_host([[
local trio = require 'trio'
host.sigint('handler')
trio.run(function()
  -- the run has not taken the signal in when the block exits
  trio.open_signal_receiver({ 'SIGINT' }, function() host.raise_sigint() end)
  trio.sleep(0.05)
  print('not taken in', host.sigint_state())
  -- queued in the receiver when the block exits
  trio.open_signal_receiver({ 'SIGINT' }, function(receiver)
    host.raise_sigint()
    trio.sleep(0.05)
    print('pending', receiver:pending())
  end)
  trio.sleep(0.05)
  print('queued', host.sigint_state())
end)
host.raise_sigint()
print('after', host.sigint_state())
]])
      -- During the run SIGINT is the run's (KeyboardInterrupt), which did
      -- not fire; the host's handler, back after it, saw only the last
      -- signal (Trio re-raises the queued one for the previous handler).
      child.expect_lines(r, { "not taken in\tother\t0", "pending\t1", "queued\tother\t0",
        "after\thandler\t1" })
    end)

    it("SIG_IGN before: the process survives, and SIG_IGN comes back", function()
      local ok, out = require("conformance.ignoring_child").run("USR1", [[
local trio = require 'trio'
local PID = io.open('/proc/self/stat'):read('l'):match('^(%d+)')
local function ignored()
  for line in io.lines('/proc/self/status') do
    local mask = line:match('^SigIgn:%s*(%x+)')
    if mask then return (tonumber(mask:sub(-8), 16) >> 9) & 1 == 1 end
  end
end
local function raise() local p = io.popen('kill -USR1 ' .. PID); p:read('a'); p:close() end
print('ignored before', ignored())
trio.run(function()
  trio.open_signal_receiver({ 'SIGUSR1' }, function() raise() end)
  trio.sleep(0.05)
  print('ignored after the first block', ignored())
  trio.open_signal_receiver({ 'SIGUSR1' }, function(receiver)
    raise()
    trio.sleep(0.05)
    print('pending', receiver:pending())
  end)
  trio.sleep(0.05)
end)
raise()
print('alive', ignored())
]])
      assert.is_true(ok, out)
      for _, line in ipairs { "ignored before\ttrue", "ignored after the first block\ttrue", "pending\t1",
        "alive\ttrue" } do
        assert(out:find(line .. "\n", 1, true), ("missing line %q in:\n%s"):format(line, out))
      end
    end)
  end)
end)
