-- Ported from CPython Lib/test/test_asyncio/test_context.py
-- (python/cpython at commit 155f045a21a7197c19c67b769d6e05b04ac88fa5).
--
-- Upstream checks that each asyncio Task has its own decimal context (a
-- context variable): two Tasks set different precisions, sleep, and each
-- still computes with its own.  Lua has no decimal module; the test is
-- adapted to what it stands for, a trio.ContextVar (docs/API.md: a new
-- task of either flavor starts with a copy of its spawner's values, and
-- its writes never leak back) set in two asyncio Tasks.
local asyncio = require "asyncio"
local trio = require "trio"

describe("test_context.py", function()
  it("test_context.py::DecimalContextTest.test_asyncio_task_decimal_context", function()
    -- adapted: a ContextVar holding the precision stands for
    -- decimal.localcontext(); 1/3 and 1/9 are formatted with it
    local precision = trio.ContextVar("precision", 28)
    local function fractions(t, prec, x, y)
      precision:set(prec)
      local function div(a, b) return ("%." .. precision:get() .. "f"):format(a / b) end
      local a = div(x, y)
      asyncio.sleep(t)
      local b = div(x, y ^ 2)
      return { a, b }
    end
    local r = asyncio.run(function()
      local results = asyncio.gather(function() return fractions(0.1, 3, 1, 3) end,
        function() return fractions(0.2, 6, 1, 3) end)
      -- the Tasks' settings did not leak into the one that gathered them
      assert.equal(28, precision:get())
      return results
    end)
    assert.same({ "0.333", "0.111" }, r[1])
    assert.same({ "0.333333", "0.111111" }, r[2])
  end)
end)
