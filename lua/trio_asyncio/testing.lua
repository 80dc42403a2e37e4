--- trio_asyncio.testing: trio.testing.it for asyncio-flavored test bodies.
--
--   trio_asyncio.testing.it(name, fn [, opts])   a busted `it` whose body runs as an asyncio Task
--   trio_asyncio.testing.aio_test(fn [, opts])   the same as a plain function, for any framework
--
-- The body runs as the main Task of an asyncio loop opened with
-- trio_asyncio.open_loop inside a fresh Trio run, so the options of
-- trio.testing.it apply (autojump: the loop's timers follow the MockClock
-- too).  It is called as fn(loop, clock).  On top of trio.testing's checks:
-- an error that reaches the loop's exception handler (a failing callback, a
-- Task whose error nobody retrieved) fails the test, and so does an asyncio
-- Task still pending when the body returns (it is cancelled first).
-- `trio_asyncio.testing` is also what `require "trio_asyncio.testing"` returns.
local M = {}

local is_callable = require("trio.errors").is_callable

local function describe_task(t)
  local core = require "trio_asyncio.core"
  local where = core.task_where(t)
  return ("'%s'%s"):format(t:get_name(), (where and where ~= "") and (" (" .. where .. ")") or "")
end

-- Runs fn(loop, clock) as the main Task; fails on Tasks left pending.
local function body(fn, opts)
  return function(clock)
    local core = require "trio_asyncio.core"
    local ta = require "trio_asyncio"
    return ta.open_loop(function(loop)
      local main = core.create_task(loop, fn, loop, clock)
      main:set_name("test body")
      local r = table.pack(core.future_wait(main))
      if opts.leak_check ~= false then
        local left = core.loop_tasks(loop)
        if #left > 0 then
          local names = {}
          for i, t in ipairs(left) do names[i] = describe_task(t) end
          for _, t in ipairs(left) do t:cancel() end
          error(("trio_asyncio.testing: %d asyncio Task(s) still pending when the test ended: %s")
            :format(#left, table.concat(names, ", ")), 0)
        end
      end
      return table.unpack(r, 1, r.n)
    end)
  end
end

--- aio_test(fn [, opts]) -> a function that runs fn(loop, clock) as the
-- main asyncio Task of a loop in a fresh Trio run.
function M.aio_test(fn, opts)
  if not is_callable(fn) then
    error(("bad argument #1 to 'aio_test' (function expected, got %s)"):format(type(fn)), 2)
  end
  local testing = require("trio").testing
  opts = testing._check_opts(opts, "aio_test", 2)
  return function() return testing._run_test(body(fn, opts), opts, "trio_asyncio.testing") end
end

--- it(name, fn [, opts]): a busted test whose body runs as an asyncio Task.
M.it = require("trio").testing._make_it("trio_asyncio.testing.it", M.aio_test)

return M
