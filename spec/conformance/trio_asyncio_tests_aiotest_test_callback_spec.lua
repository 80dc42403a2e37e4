-- Ported from trio-asyncio tests/aiotest/test_callback.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- These tests stop an open_loop loop; a regression there makes open_loop's
-- shielded exit wait forever, which no cancellation can end, so each runs
-- in a process of its own (H.isolated) with the `loop` fixture inside.
-- On an open_loop loop, loop:stop() returns a trio.Event set once the loop
-- has stopped, and loop:wait_stopped() waits for that (as trio-asyncio).
--
-- Left out: nothing.
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_callback.py::"

it(F .. "test_call_soon", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        local result = {}
        local function hello_world(l)
          result[#result + 1] = "Hello World"
          l:stop()
        end
        loop:call_soon(hello_world, loop)
        loop:stop():wait()
        assert.same({ "Hello World" }, result)
      end)
    end)
  end)
end)

it(F .. "test_call_soon_control", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        local result = {}
        local function append_result(l, res, value)
          res[#res + 1] = value
          l:stop()
        end
        local function func(res, l)
          l:call_soon(append_result, l, res, "yes")
          res[#res + 1] = "[" .. table.concat(res, ", ") .. "]"
        end
        loop:call_soon(func, result, loop)
        loop:wait_stopped()
        -- http://bugs.python.org/issue22875: call_soon() does not call
        -- append_result() at once, but when func() has returned
        assert.same({ "[]", "yes" }, result)
      end)
    end)
  end)
end)

it(F .. "test_close", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        loop:stop():wait()
        loop:close()

        local function test() end
        local func = function() return false end
        local function raises(pattern, fn, ...)
          local ok, e = pcall(fn, ...)
          assert(not ok, "expected an error matching " .. pattern)
          assert(trio.RuntimeError:is(e), tostring(e))
          assert(tostring(e.message):find(pattern, 1, true), tostring(e))
        end
        raises("not a sync loop", loop.run_until_complete, loop, test)
        raises("", loop.run_forever, loop)
        raises("Event loop is closed", loop.call_soon, loop, func)
        raises("Event loop is closed", loop.call_soon_threadsafe, loop, func)
        raises("Event loop is closed", loop.call_later, loop, 1.0, func)
        raises("Event loop is closed", loop.call_at, loop, loop:time() + 0.0, func)
        raises("Event loop is closed", loop.run_in_executor, loop, nil, func)
        raises("Event loop is closed", ta.run_aio_coroutine, test)
        raises("Event loop is closed", loop.add_signal_handler, loop, "SIGTERM", func)
      end)
    end)
  end)
end)
