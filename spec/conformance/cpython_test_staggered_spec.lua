-- Ported from CPython Lib/test/test_asyncio/test_staggered.py
-- (python/cpython at commit 0d44415caeb9b74d055de39738556c698a22f33b).
--
-- Each test is named "test_staggered.py::StaggeredTests.<test>" and says
-- whether it is ported (the same checks) or adapted (and how).  Lua lists
-- count from 1: a winner_index of Python's 0 is 1 here, and the winner's
-- entry in `exceptions` is false (Python: None).
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local staggered_race = require("asyncio.staggered").staggered_race
local CancelledError, ValueError = H.CancelledError, H.ValueError

local T = "test_staggered.py::StaggeredTests."

--- The tests' coroutine function for attempt `index` (Python's 0-based).
local function res(index) return "Res: " .. index end

describe("test_staggered.py", function()
  it(T .. "test_empty", function()
    -- ported
    H.run(function()
      local winner, index, excs = staggered_race({}, nil)
      assert.is_nil(winner)
      assert.is_nil(index)
      assert.same({}, excs)
    end)
  end)

  it(T .. "test_one_successful", function()
    -- ported
    H.run(function()
      local winner, index, excs = staggered_race({ function() return res(0) end, function() return res(1) end }, nil)
      assert.equal("Res: 0", winner)
      assert.equal(1, index)
      assert.same({ false }, excs)
    end)
  end)

  it(T .. "test_first_error_second_successful", function()
    -- ported
    H.run(function()
      local function coro(index)
        if index == 0 then error(ValueError(tostring(index))) end
        return res(index)
      end
      local winner, index, excs = staggered_race({ function() return coro(0) end, function() return coro(1) end }, nil)
      assert.equal("Res: 1", winner)
      assert.equal(2, index)
      assert.equal(2, #excs)
      assert.is_true(ValueError:is(excs[1]))
      assert.is_false(excs[2])
    end)
  end)

  it(T .. "test_first_timeout_second_successful", function()
    -- ported
    H.run(function()
      local function coro(index)
        if index == 0 then asyncio.sleep(10) end -- much longer than the delay
        return res(index)
      end
      local winner, index, excs = staggered_race({ function() return coro(0) end, function() return coro(1) end }, 0.1)
      assert.equal("Res: 1", winner)
      assert.equal(2, index)
      assert.equal(2, #excs)
      assert.is_true(CancelledError:is(excs[1]))
      assert.is_false(excs[2])
    end)
  end)

  it(T .. "test_none_successful", function()
    -- ported
    H.run(function()
      local function coro(index) error(ValueError(tostring(index))) end
      local winner, index, excs = staggered_race({ function() return coro(0) end, function() return coro(1) end }, nil)
      assert.is_nil(winner)
      assert.is_nil(index)
      assert.equal(2, #excs)
      assert.is_true(ValueError:is(excs[1]))
      assert.is_true(ValueError:is(excs[2]))
    end)
  end)

  it(T .. "test_multiple_winners", function()
    -- ported
    H.run(function()
      local event = asyncio.Event()
      local function coro(index)
        event:wait()
        return index
      end
      local function do_set()
        event:set()
        asyncio.Event():wait()
      end
      local winner, index, excs = staggered_race({ function() return coro(0) end, function() return coro(1) end,
        do_set }, 0.1)
      assert.equal(0, winner)
      assert.equal(1, index)
      assert.equal(3, #excs)
      assert.is_false(excs[1])
      assert.is_true(CancelledError:is(excs[2]), tostring(excs[2]))
      assert.is_true(CancelledError:is(excs[3]), tostring(excs[3]))
    end)
  end)

  it(T .. "test_cancelled", function()
    -- adapted: upstream cancels the racing Task by rescheduling two nested
    -- asyncio.timeout()s to the past from inside the attempt (their
    -- TimeoutError is what comes out); here the attempt cancels the
    -- racing Task itself, twice.  Each cancellation reaches the attempt;
    -- the race, which the attempt then wins, still raises CancelledError.
    H.run(function()
      local log = {}
      local racing
      local function coro_fn()
        racing:cancel()
        H.except_cancelled(asyncio.sleep, function() log[#log + 1] = "cancelled 1" end, 1)
        racing:cancel()
        H.except_cancelled(asyncio.sleep, function() log[#log + 1] = "cancelled 2" end, 1)
      end
      racing = asyncio.create_task(function()
        H.except_cancelled(staggered_race, function(e)
          log[#log + 1] = "cancelled 3"
          error(e, 0)
        end, { coro_fn }, nil)
      end)
      H.assert_raises(CancelledError, racing.await, racing)
      assert.same({ "cancelled 1", "cancelled 2", "cancelled 3" }, log)
    end)
  end)

  it("staggered_race: bad arguments raise argument errors; it is asyncio-flavored", function()
    -- not upstream
    H.run(function()
      H.assert_argerror("staggered_race", staggered_race, nil, nil)
      H.assert_argerror("staggered_race", staggered_race, { function() end, 42 }, nil)
      H.assert_argerror("staggered_race", staggered_race, {}, -1)
      H.assert_argerror("staggered_race", staggered_race, {}, "1")
      assert.equal(require("asyncio.staggered"), asyncio.staggered)
    end)
    local trio = require "trio"
    local e = H.catch(trio.run, function() staggered_race({}, nil) end)
    assert.is_true(require("trio.errors").FlavorError:is(e), tostring(e))
  end)
end)
