-- Ported from CPython Lib/test/test_asyncio/test_threads.py
-- (python/cpython at commit 0573248a89b6654875528e7c2c0236f6eb848127).
--
-- Each test is named "test_threads.py::ToThreadTests.<test>" and says
-- whether it is ported or adapted (and how).  asyncio.to_thread runs its
-- function on a worker thread under trio.to_thread.run_sync's rules: the
-- function may use globals but no upvalue other than _ENV, and its
-- arguments and results are copied (docs/SEMANTICS.md).  So a function
-- cannot record its calls in a table of the test: it returns what the
-- test checks.
--
-- Left out:
--   test_to_thread_contextvars   a ContextVar does not reach a worker thread:
--                                the worker is another Lua state, and the
--                                variable (an upvalue) is refused there; the
--                                refusal is checked below instead
local asyncio = require "asyncio"
local trio = require "trio"
local H = require "conformance.cpython_helpers"

local assert_raises = H.assert_raises

describe("test_threads.py", function()
  local T = "test_threads.py::ToThreadTests."

  it(T .. "test_to_thread", function()
    -- adapted: Python's sum over a list is a function adding the list
    H.run(function()
      local result = asyncio.to_thread(function(list)
        local s = 0
        for _, v in ipairs(list) do s = s + v end
        return s
      end, { 40, 2 })
      assert.equal(42, result)
    end)
  end)

  it(T .. "test_to_thread_exception", function()
    -- ported: the worker's error reaches the caller with its class
    H.run(function()
      local e = assert_raises(H.RuntimeError, asyncio.to_thread, function()
        error(require("trio.errors").RuntimeError("test"))
      end)
      assert.matches("test", e.message)
    end)
  end)

  it(T .. "test_to_thread_once", function()
    -- adapted: the worker counts its calls in a global of its own thread's
    -- state (no mock can be shared with it); one call is one run
    H.run(function()
      local calls = asyncio.to_thread(function()
        CALLS = (CALLS or 0) + 1 -- luacheck: ignore (a global of the worker's state)
        return CALLS
      end)
      assert.equal(1, calls)
    end)
  end)

  it(T .. "test_to_thread_concurrent", function()
    -- adapted: each call returns 1 instead of appending to a shared list;
    -- ten of them gathered
    H.run(function()
      local calls = {}
      for i = 1, 10 do
        calls[i] = function() return asyncio.to_thread(function() return 1 end) end
      end
      local results = asyncio.gather(table.unpack(calls))
      local sum = 0
      for i = 1, results.n do sum = sum + results[i] end
      assert.equal(10, sum)
    end)
  end)

  it(T .. "test_to_thread_args_kwargs", function()
    -- adapted: Lua has no keyword arguments; a table argument carries
    -- them, and arrives as a copy
    H.run(function()
      local got, kwargs = asyncio.to_thread(function(a, kw) return a, kw end, "test", { something = true })
      assert.equal("test", got)
      assert.same({ something = true }, kwargs)
    end)
  end)

  it(T .. "test_to_thread_contextvars (refused: no ContextVar on a worker)", function()
    -- adapted: the variable cannot be used on the worker thread (see the
    -- header); reading it there is refused with an argument error naming
    -- the upvalue, and its value stays the Task's
    H.run(function()
      local test_ctx = trio.ContextVar("test_ctx")
      test_ctx:set("parrot")
      local e = assert_raises("upvalue 'test_ctx'", asyncio.to_thread, function() return test_ctx:get() end)
      assert.matches("to_thread", tostring(e))
      assert.equal("parrot", test_ctx:get())
    end)
  end)
end)
