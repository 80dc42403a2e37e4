-- Ported from trio-asyncio tests/aiotest/test_coroutine.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation: `config.asyncio` is the asyncio module; a coroutine object
-- is a zero-argument closure; `loop.run_aio_coroutine(x)` is
-- trio_asyncio.run_aio_coroutine(x) on the current loop (the fixture's).
--
-- Left out: nothing.
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_coroutine.py::"

local function hello_world(aio, result, delay)
  result[#result + 1] = "Hello"
  aio.sleep(delay)
  result[#result + 1] = "World"
  return "."
end

it(F .. "test_hello_world", function()
  H.with_loop(function()
    local result = {}
    local coro = function() return hello_world(asyncio, result, 0.001) end
    ta.run_aio_coroutine(asyncio.ensure_future(coro))
    assert.same({ "Hello", "World" }, result)
  end)
end)

it(F .. "test_waiter", function()
  H.with_loop(function(loop)
    local function waiter(aio, hello, result)
      local fut = aio.Future()
      loop:call_soon(fut.set_result, fut, "Future")

      local value = fut:await()
      result[#result + 1] = value

      value = hello(aio, result, 0.001)
      result[#result + 1] = value
    end

    local result = {}
    ta.aio_as_trio(waiter)(asyncio, hello_world, result)
    assert.same({ "Future", "Hello", "World", "." }, result)
  end)
end)
