-- Ported from trio-asyncio tests/aiotest/test_timer.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Both tests stop an open_loop loop; a regression there makes open_loop's
-- shielded exit wait forever, so each runs in a process of its own
-- (H.isolated) with the `loop` fixture inside.  `loop.stop(h)` with a
-- trio.Event sets h once the loop has stopped.  The timestamps of
-- test_display_date (datetime.now() upstream) are taken with loop:time(),
-- a monotonic clock in seconds.
--
-- Left out: nothing.
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_timer.py::"

it(F .. "test_display_date", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        local result = {}
        local delay = 0.2
        local count = 3
        local h = trio.Event()

        local function display_date(end_time, l)
          if #end_time == 0 then end_time[1] = l:time() + delay * count end
          result[#result + 1] = l:time()
          if l:time() + delay * 1.5 < end_time[1] then
            l:call_later(delay, display_date, end_time, l)
          else
            l:stop(h)
          end
        end

        loop:call_soon(display_date, {}, loop)
        h:wait()

        assert(#result >= 2 and #result <= 3, "got " .. #result .. " dates")
        for i = 2, #result do
          assert(result[i] - result[i - 1] >= 0.15, "dates too close")
        end
      end)
    end)
  end)
end)

it(F .. "test_later_stop_later", function()
  H.isolated(10, function()
    local trio, ta = require "trio", require "trio_asyncio"
    trio.run(function()
      trio.fail_after(5, ta.open_loop, function(loop)
        local result = {}
        local function hello() result[#result + 1] = "Hello" end
        local function world(l)
          result[#result + 1] = "World"
          l:stop()
        end

        loop:call_later(0.1, hello)
        loop:call_later(0.5, world, loop)

        trio.sleep(0.3)
        assert.same({ "Hello" }, result)

        loop:wait_stopped()
        assert.same({ "Hello", "World" }, result)
      end)
    end)
  end)
end)
