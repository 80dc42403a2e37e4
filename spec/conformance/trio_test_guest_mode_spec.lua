-- Ported from Trio's src/trio/_core/_tests/test_guest_mode.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Guest mode here: trio.lowlevel.start_guest_run(fn, {done_callback=,
-- args=, clock=, instruments=}) starts a run and returns at once; the host
-- drives it by stepping the engine (trio_asyncio_step in C; from Lua the
-- core's guest_step, which is the same function) or by running its libuv
-- loop.  So there are no run_sync_soon_threadsafe / _not_threadsafe host
-- hooks: the trivial_guest_run of the upstream file becomes
-- H.trivial_guest_run, a Lua "host" loop that runs the functions queued
-- with in_host(fn) between guest steps and returns the run's results or
-- raises its error (done_callback gets (true, results...) / (false, err)
-- instead of an Outcome).  sniffio.current_async_library() is
-- trio.lowlevel.current_flavor().  A SIGINT from signal.raise_signal is a
-- `kill -INT` of a child process (H.run_script), and it reaches the main
-- task at its next checkpoint, not at once.
-- Left out:
--   test_warn_set_wakeup_fd_overwrite (Python's signal.set_wakeup_fd and
--   the host_uses_signal_set_wakeup_fd option);
--   test_guest_warns_if_abandoned (a RuntimeWarning from the garbage
--   collector when a guest run's generator is collected; a run here belongs
--   to its lua_State and is ended by lua_close, see spec/embed_spec.lua);
--   test_guest_mode_on_asyncio, test_guest_mode_asyncgens,
--   test_guest_mode_asyncgens_garbage_collection (a guest run hosted by a
--   real Python asyncio loop, and async generators; our asyncio loop runs on
--   the Trio engine itself, see the trio_asyncio bridge);
--   test_guest_mode_internal_errors (monkeypatches the run loop's private
--   state to crash it).
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_core/_tests/test_guest_mode.py::"
local trivial_guest_run = H.trivial_guest_run

describe("Trio test_guest_mode.py", function()
  it(P .. "test_guest_trivial", function()
    assert.equal("ok", trivial_guest_run(function()
      trio.lowlevel.checkpoint()
      return "ok"
    end))
    H.raises(function(e) return H.KeyError:is(e) and e.message == "whoopsiedaisy" end,
      trivial_guest_run, function() error(H.KeyError("whoopsiedaisy")) end)
  end)

  it(P .. "test_guest_can_do_io", function()
    trivial_guest_run(function()
      local record = {}
      local a, b = trio.socket.socketpair()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() record[#record + 1] = a:recv(1) end)
        trio.testing.wait_all_tasks_blocked()
        b:send("x")
      end)
      a:close()
      b:close()
      assert.same({ "x" }, record)
    end)
  end)

  it(P .. "test_guest_is_initialized_when_start_returns", function()
    local trio_token
    local record = {}
    local function trio_main()
      record[#record + 1] = "main task ran"
      trio.lowlevel.checkpoint()
      assert.equal(trio_token, trio.lowlevel.current_trio_token())
      return "ok"
    end
    local function after_start()
      -- control comes back before the main task runs any code
      assert.same({}, record)
      trio_token = trio.lowlevel.current_trio_token()
      trio_token:run_sync_soon(function(v) record[#record + 1] = v end, "run_sync_soon cb ran")
      trio.lowlevel.spawn_system_task(function()
        record[#record + 1] = "system task ran"
        trio.lowlevel.checkpoint()
      end)
    end
    local res = trivial_guest_run(trio_main, { in_host_after_start = after_start })
    assert.equal("ok", res)
    local got = {}
    for _, v in ipairs(record) do got[v] = true end
    assert.same({ ["system task ran"] = true, ["main task ran"] = true, ["run_sync_soon cb ran"] = true }, got)
  end)

  -- The second half of the upstream test: a clock whose start_clock raises
  -- makes start_guest_run itself raise TrioInternalError.
  it(P .. "test_guest_is_initialized_when_start_returns (BadClock part)", function()
    local BadClock = {
      start_clock = function() error(H.ValueError("whoops")) end,
      current_time = function() error("not implemented") end,
      deadline_to_sleep_time = function() error("not implemented") end,
    }
    H.raises(trio.TrioInternalError, trivial_guest_run, function() return "ok" end, {
      clock = BadClock,
      in_host_after_start = function() error("shouldn't get here") end,
    })
  end)

  it(P .. "test_host_can_directly_wake_trio_task", function()
    assert.equal("ok", trivial_guest_run(function(in_host)
      local ev = trio.Event()
      in_host(function() ev:set() end)
      ev:wait()
      return "ok"
    end))
  end)

  it(P .. "test_host_altering_deadlines_wakes_trio_up", function()
    assert.equal("ok", trivial_guest_run(function(in_host)
      local cscope = trio.CancelScope()
      cscope:run(function()
        in_host(function() cscope.deadline = -math.huge end)
        trio.sleep_forever()
      end)
      assert.is_true(cscope.cancelled_caught)

      cscope = trio.CancelScope()
      cscope:run(function()
        -- also a change that does not move the next deadline
        in_host(function() cscope.deadline = 1e6 end)
        in_host(function() cscope.deadline = -math.huge end)
        trio.sleep(999)
      end)
      assert.is_true(cscope.cancelled_caught)
      return "ok"
    end))
  end)

  it(P .. "test_guest_mode_sniffio_integration", function()
    assert.equal("ok", trivial_guest_run(function(in_host)
      -- wait until every in_host() call made so far ran
      local function synchronize()
        local evt = trio.Event()
        in_host(function() evt:set() end)
        evt:wait()
      end
      -- host and guest see their own library
      local record = {}
      in_host(function() record[#record + 1] = tostring((trio.lowlevel.current_flavor())) end)
      synchronize()
      assert.same({ "nil" }, record)
      assert.equal("trio", trio.lowlevel.current_flavor())
      return "ok"
    end))
  end)

  it(P .. "test_guest_mode_trio_context_detection", function()
    local failures = {}
    local function check(thing) if not thing then failures[#failures + 1] = true end end
    assert.is_false(trio.lowlevel.in_trio_run())
    assert.is_false(trio.lowlevel.in_trio_task())
    trivial_guest_run(function(in_host)
      for _ = 1, 2 do
        assert.is_true(trio.lowlevel.in_trio_run())
        assert.is_true(trio.lowlevel.in_trio_task())
        in_host(function() check(trio.lowlevel.in_trio_run()) end)
        in_host(function() check(not trio.lowlevel.in_trio_task()) end)
      end
    end)
    assert.is_false(trio.lowlevel.in_trio_run())
    assert.is_false(trio.lowlevel.in_trio_task())
    assert.same({}, failures)
  end)

  it(P .. "test_host_wakeup_doesnt_trigger_wait_all_tasks_blocked", function()
    assert.equal("ok", trivial_guest_run(function(in_host)
      local function sit_in_wait_all_tasks_blocked(watb_cscope)
        watb_cscope:run(function()
          -- must not return normally, only by cancellation
          trio.testing.wait_all_tasks_blocked(9999)
          error("wait_all_tasks_blocked should only end by cancellation")
        end)
        assert.is_true(watb_cscope.cancelled_caught)
      end
      local function get_woken_by_host_deadline(watb_cscope)
        local cscope = trio.CancelScope()
        cscope:run(function()
          -- a host deadline change wakes the run loop, which finds nothing
          -- to do: that must not count as "all tasks blocked"
          local helper = { primed = false }
          function helper.before_io_wait(self, timeout)
            if timeout == 9999 then
              assert(not self.primed)
              in_host(function() cscope.deadline = 1e9 end)
              self.primed = true
            end
          end
          function helper.after_io_wait(self)
            if self.primed then
              in_host(function() cscope:cancel() end)
              trio.lowlevel.remove_instrument(self)
            end
          end
          trio.lowlevel.add_instrument(helper)
          trio.sleep_forever()
        end)
        assert.is_true(cscope.cancelled_caught)
        watb_cscope:cancel()
      end
      trio.open_nursery(function(nursery)
        local watb_cscope = trio.CancelScope()
        nursery:start_soon(sit_in_wait_all_tasks_blocked, watb_cscope)
        trio.testing.wait_all_tasks_blocked()
        nursery:start_soon(get_woken_by_host_deadline, watb_cscope)
      end)
      return "ok"
    end))
  end)

  it(P .. "test_guest_mode_ki", function()
    local out = H.run_script([[
-- Ctrl-C in the Trio code, then from the host: both reach the main task
local ok, e = pcall(H.trivial_guest_run, function(in_host)
  local ok1, e1 = pcall(function()
    interrupt(0.05)
    trio.sleep(5)
  end)
  print("in trio", ok1, trio.KeyboardInterrupt:is(e1))
  -- a SIGINT the host gets goes into the Trio run
  in_host(function() interrupt(0.05) end)
  trio.sleep(5)
  print("NOT INTERRUPTED")
end)
print("run", ok, trio.KeyboardInterrupt:is(e))
io.stdout:flush()
-- the SIGINT handling from before the run is back after it: lua5.4's own,
-- which raises "interrupted!" (as Python's default_int_handler is back)
interrupt(0.05)
local t = os.time()
while os.time() - t < 3 do end
print("SIGINT IGNORED")
]])
    assert.truthy(out:find("in trio\tfalse\ttrue", 1, true), out)
    assert.truthy(out:find("run\tfalse\ttrue", 1, true), out)
    assert.falsy(out:find("NOT INTERRUPTED", 1, true), out)
    assert.falsy(out:find("SIGINT IGNORED", 1, true), out)
    assert.truthy(out:find("interrupted!", 1, true), out)
    assert.truthy(out:find("exit=1\n", 1, true), out)
  end)

  -- The second half of the upstream test: a KeyboardInterrupt that comes
  -- after the main task has exited still ends the run with it.
  it(P .. "test_guest_mode_ki (after main exits)", function()
    local out = H.run_script([[
local final_exc = H.KeyError("whoa")
local ok, e = pcall(H.trivial_guest_run, function(in_host)
  -- the host raises SIGINT after the main task has exited (a kill that
  -- the host waits for: io.popen does not ignore SIGINT meanwhile)
  in_host(function() io.popen("kill -INT " .. pid):close() end)
  error(final_exc)
end)
print("run", ok, trio.KeyboardInterrupt:is(e), e == final_exc)
]])
    assert.truthy(out:find("run\tfalse\ttrue\tfalse", 1, true), out)
  end)

  it(P .. "test_guest_mode_autojump_clock_threshold_changing", function()
    -- changing the autojump threshold from the host wakes the guest
    local clock = trio.testing.MockClock()
    local DURATION = 120
    local start = os.time()
    trivial_guest_run(function(in_host)
      assert.equal(0, trio.current_time())
      in_host(function() clock.autojump_threshold = 0 end)
      trio.sleep(DURATION)
      assert.equal(DURATION, trio.current_time())
    end, { clock = clock })
    assert.is_true(os.time() - start < DURATION / 2)
  end)
end)
