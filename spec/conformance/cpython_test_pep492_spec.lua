-- Ported from CPython Lib/test/test_asyncio/test_pep492.py
-- (python/cpython at commit 00d3d191b539b0eef3c379cdeb30d1b475551417).
--
-- PEP 492 is Python's async/await syntax; Lua has none.  What it gives the
-- tests ported here has a Lua counterpart: `async with lock` is
-- `lock:with(fn)`, `async for line in stream` is `for line in
-- stream:lines()`.  Each test is named "test_pep492.py::<Class>.<test>" and
-- says how it is adapted.
--
-- Left out, no counterpart in Lua:
--   LockTests.test_context_manager_with_await   `with await lock` (a syntax
--                                               Python itself has removed)
--   CoroutineTests.test_iscoroutine             there are no coroutine objects
--                                               before a Task runs a function
--                                               (docs/SEMANTICS.md), so no
--                                               asyncio.iscoroutine
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

describe("test_pep492.py", function()
  it("test_pep492.py::LockTests.test_context_manager_async_with", function()
    -- adapted: lock:with(fn) for `async with lock as _lock` (fn gets no
    -- value, as _lock is None)
    H.with_loop(function(loop)
      local primitives = { asyncio.Lock(), asyncio.Condition(), asyncio.Semaphore(), asyncio.BoundedSemaphore() }
      local function test(lock)
        asyncio.sleep(0.01)
        assert.is_false(lock:locked())
        lock:with(function(...)
          assert.equal(0, select("#", ...))
          assert.is_true(lock:locked())
          asyncio.sleep(0.01)
          assert.is_true(lock:locked())
        end)
        assert.is_false(lock:locked())
      end
      for _, primitive in ipairs(primitives) do
        loop:run_until_complete(function() test(primitive) end)
        assert.is_false(primitive:locked())
      end
    end)
  end)

  it("test_pep492.py::StreamReaderTests.test_readline", function()
    -- adapted: reader:lines() strips the "\n" (as Lua's file:lines(); the
    -- `async for` of Python keeps it: docs/SEMANTICS.md)
    H.with_loop(function(loop)
      local stream = asyncio.StreamReader(nil, loop)
      stream:feed_data("line1\nline2\nline3")
      stream:feed_eof()
      local data = loop:run_until_complete(function()
        local lines = {}
        for line in stream:lines() do lines[#lines + 1] = line end
        return lines
      end)
      assert.same({ "line1", "line2", "line3" }, data)
    end)
  end)
end)
