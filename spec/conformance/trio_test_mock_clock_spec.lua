-- Ported from Trio's src/trio/_core/_tests/test_mock_clock.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: MockClock(rate=, autojump_threshold=) is
-- trio.testing.MockClock{rate=, autojump_threshold=}; the mock_clock
-- fixture is a MockClock given to H.run (its autojump_threshold set by the
-- test before anything waits); time.perf_counter is the engine's monotonic
-- clock (trio_asyncio.core.monotonic); repr(c) is tostring(c).
-- A wait that autojumping should end at once is bounded by guard(): a
-- worker thread that ends the test after GUARD real seconds.
-- Left out: nothing; every test of the file is here.
local trio = require "trio"
local core = require "trio_asyncio.core"
local H = require "conformance.trio_helpers"

local MockClock = trio.testing.MockClock
local current_time = trio.current_time
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local monotonic = core.monotonic
local P = "_core/_tests/test_mock_clock.py::"
local GUARD = 5

-- Runs body(clock) in a run on `clock` with a real-time bound: the body
-- fails if it has not finished after GUARD real seconds.
local function run_guarded(clock, body)
  H.run({ clock = clock }, function()
    trio.open_nursery(function(nursery)
      nursery:start_soon(function()
        trio.to_thread.run_sync({ cancellable = true }, function(seconds)
          os.execute("sleep " .. seconds)
        end, GUARD)
        error(("the test did not finish within %d real seconds"):format(GUARD), 0)
      end)
      body(clock)
      nursery.cancel_scope:cancel()
    end)
  end)
end

-- A clock of `rate` that stood at from_time at some moment after the
-- monotonic() reading real_before has moved at most rate times the real
-- time until real_after (SLACK: the two clocks are read apart).
local SLACK = 1e-3
local function assert_moved_at_most(rate, from_time, real_before, real_after, time_now)
  local most = from_time + rate * (real_after - real_before) + SLACK
  assert.is_true(time_now <= most, ("clock at %s, expected at most %s"):format(time_now, most))
end

describe("Trio test_mock_clock.py", function()
  it(P .. "test_mock_clock (adapted: the real clock cannot be replaced, so the "
    .. "rate checks measure real time and allow for it)", function()
    local c = MockClock {}
    assert.truthy(tostring(c):find("MockClock", 1, true), tostring(c))
    assert.equal(0, c.rate)
    assert.equal(0, c:current_time())
    c:jump(1.2)
    assert.equal(1.2, c:current_time())
    H.raises(H.msg("time can't go backwards"), c.jump, c, -1)
    assert.equal(1.2, c:current_time())
    assert.equal(0, c:deadline_to_sleep_time(1.1))
    assert.equal(0, c:deadline_to_sleep_time(1.2))
    assert.is_true(c:deadline_to_sleep_time(1.3) > 999999)

    H.raises(H.msg("rate must be >= 0"), function() c.rate = -1 end)
    assert.equal(0, c.rate)

    -- rate 2: the time stays where it was when the rate changed, then runs
    -- twice as fast as the real clock
    local real0 = monotonic()
    c.rate = 2
    local real1 = monotonic()
    assert.is_true(c:current_time() >= 1.2)
    H.run(trio.sleep, 0.05)
    local real2 = monotonic()
    local now = c:current_time()
    local real3 = monotonic()
    assert.is_true(now >= 1.2 + 2 * (real2 - real1) - SLACK)
    assert_moved_at_most(2, 1.2, real0, real3, now)
    assert.equal(0, c:deadline_to_sleep_time(now - 0.1))
    assert.equal(0, c:deadline_to_sleep_time(c:current_time()))
    local before = c:current_time()
    local wait = c:deadline_to_sleep_time(before + 1)
    assert.is_true(wait <= 0.5 and wait > 0.45, tostring(wait))

    -- rate 0.5: again from where it stands
    c.rate = 0.5
    local set_at = c:current_time()
    assert.is_true(set_at >= before)
    assert.equal(0, c:deadline_to_sleep_time(set_at - 0.1))
    wait = c:deadline_to_sleep_time(c:current_time() + 1)
    assert.is_true(wait <= 2 and wait > 1.9, tostring(wait))

    -- a jump adds to wherever the running clock is
    local t = c:current_time()
    c:jump(0.8)
    assert.is_true(c:current_time() >= t + 0.8)
    real1 = monotonic()
    t = c:current_time()
    H.run(trio.sleep, 0.05)
    now = c:current_time()
    real2 = monotonic()
    assert.is_true(now >= t + 0.5 * 0.05 - SLACK)
    assert_moved_at_most(0.5, t, real1, real2, now)

    local c2 = MockClock { rate = 3 }
    assert.equal(3, c2.rate)
    assert.is_true(c2:current_time() < 10)
  end)

  it(P .. "test_mock_clock_autojump (ported)", function()
    local clock = MockClock {}
    run_guarded(clock, function()
      assert.equal(math.huge, clock.autojump_threshold)
      clock.autojump_threshold = 0
      assert.equal(0, clock.autojump_threshold)

      local real_start = monotonic()
      local virtual_start = current_time()
      for i = 0, 9 do
        trio.sleep(10 * i)
        assert.equal(virtual_start + 10 * i, current_time())
        virtual_start = current_time()
      end
      assert.is_true(monotonic() - real_start < 1)

      clock.autojump_threshold = 0.02
      local t = current_time()
      -- these wake before the autojump would, so the time stays
      wait_all_tasks_blocked()
      assert.equal(t, current_time())
      wait_all_tasks_blocked(0.01)
      assert.equal(t, current_time())

      -- the autojump long put off; lowering the threshold applies at once
      clock.autojump_threshold = 10000
      wait_all_tasks_blocked()
      clock.autojump_threshold = 0
      trio.sleep(100000)
    end)
  end)

  it(P .. "test_mock_clock_autojump_interference (ported)", function()
    local clock = MockClock {}
    run_guarded(clock, function()
      clock.autojump_threshold = 0.02
      -- a threshold of a clock that is not the run's does nothing: at 0.01
      -- the next wait would never end, the clock jumping first every time
      local other = MockClock {}
      other.autojump_threshold = 0.01
      wait_all_tasks_blocked(0.015)
      -- the run's 0.02 does apply
      trio.sleep(100000)
    end)
  end)

  it(P .. "test_mock_clock_autojump_preset (ported)", function()
    local clock = MockClock { autojump_threshold = 0.1 }
    clock.autojump_threshold = 0.01
    local real_start = monotonic()
    H.run({ clock = clock }, trio.sleep, 10000)
    assert.is_true(monotonic() - real_start < 1)
  end)

  -- Both tests of autojump_threshold = 0 with wait_all_tasks_blocked: a
  -- task sleeping 100 s beside waiter(record); returns the record.
  local function autojump_0_beside_sleeper(waiter)
    local record = {}
    run_guarded(MockClock { autojump_threshold = 0 }, function()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          trio.sleep(100)
          record[#record + 1] = "yawn"
        end)
        nursery:start_soon(waiter, record)
      end)
    end)
    return record
  end

  it(P .. "test_mock_clock_autojump_0_and_wait_all_tasks_blocked_0 (ported)", function()
    local record = autojump_0_beside_sleeper(function(record)
      wait_all_tasks_blocked()
      record[#record + 1] = "waiter woke"
      trio.sleep(1000)
      record[#record + 1] = "waiter done"
    end)
    assert.same({ "waiter woke", "yawn", "waiter done" }, record)
  end)

  it(P .. "test_mock_clock_autojump_0_and_wait_all_tasks_blocked_nonzero (ported)", function()
    local record = autojump_0_beside_sleeper(function(record)
      wait_all_tasks_blocked(1)
      record[#record + 1] = "waiter done"
    end)
    assert.same({ "waiter done", "yawn" }, record)
  end)

  it(P .. "test_initialization_doesnt_mutate_runner (adapted: the run's clock and "
    .. "its threshold, seen through current_clock(), for the runner's private fields)", function()
    local clock = MockClock { autojump_threshold = 7 }
    H.run({ clock = clock }, function()
      local before = trio.lowlevel.current_clock()
      MockClock { autojump_threshold = 2, rate = 3 }
      assert.equal(before, trio.lowlevel.current_clock())
      assert.equal(7, before.autojump_threshold)
      assert.equal(0, before.rate)
    end)
  end)
end)
