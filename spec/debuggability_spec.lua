-- What debuggers, coverage tools and humans see of tasks: a new task gets
-- its spawner's debug hook (so a line hook, what luacov uses, sees task
-- bodies), and dump_tasks says where each task waits, with readable names
-- also for tasks whose body is a C function.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

--- Runs fn with a line hook on the current thread; returns the set of
-- "line" numbers of this file that ran.
local function lines_run(fn)
  local seen = {}
  local me = debug.getinfo(1, "S").source
  debug.sethook(function(_, line)
    if debug.getinfo(2, "S").source == me then seen[line] = true end
  end, "l")
  local ok, err = pcall(fn)
  debug.sethook()
  assert(ok, err)
  return seen
end

local function line_of(marker)
  local n = 0
  for l in io.lines(debug.getinfo(1, "S").short_src) do
    n = n + 1
    if l:find(marker, 1, true) and not l:find("line_of", 1, true) then return n end
  end
end

describe("a task's debug hook", function()
  it("is its spawner's: a line hook sees the bodies of Trio tasks", function()
    local seen = lines_run(function()
      trio.run(function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            local x = 1 -- MARK-trio-child
            trio.sleep(0)
            return x
          end)
        end)
      end)
    end)
    assert.is_true(seen[line_of("MARK-trio-child")], "the child's line was seen")
  end)

  it("is its spawner's: a line hook sees the bodies of asyncio Tasks", function()
    local seen = lines_run(function()
      asyncio.run(function()
        asyncio.create_task(function()
          local y = 2 -- MARK-aio-task
          asyncio.sleep(0)
          return y
        end):await()
      end)
    end)
    assert.is_true(seen[line_of("MARK-aio-task")], "the Task's line was seen")
  end)

  it("is none when the spawner has none", function()
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() assert.is_nil(debug.gethook()) end)
      end)
    end)
  end)
end)

describe("dump_tasks", function()
  it("trio.lowlevel.dump_tasks shows a Trio-only run, the line each task waits at, no pcall", function()
    local out = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          pcall(trio.sleep, 10) -- MARK-sleeper
        end)
        n:start_soon(trio.sleep_forever)
        trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.dump_tasks(function(s) out[#out + 1] = s end)
        n.cancel_scope:cancel()
      end)
    end)
    local text = table.concat(out)
    assert.truthy(text:find("sleep (spec/debuggability_spec.lua:" .. line_of("MARK-sleeper") .. ")", 1, true), text)
    assert.falsy(text:find("pcall", 1, true), text)
    assert.truthy(text:find("trio.sleep_forever [trio task] sleep_forever (waiting)", 1, true)
      or text:find("trio.sleep_forever [trio task] trio.sleep_forever (waiting)", 1, true), text)
    assert.falsy(text:find("not started", 1, true), text)
    assert.falsy(text:find("task-%d"), text)
  end)

  it("trio.lowlevel.dump_tasks outside a run says so", function()
    local out = {}
    trio.lowlevel.dump_tasks(function(s) out[#out + 1] = s end)
    assert.same({ "(no trio run)\n" }, out)
  end)

  it("trio_asyncio.dump_tasks shows loops and their Tasks under the driver", function()
    local out = {}
    ta.run(function()
      ta.open_loop(function(loop)
        local t = loop:create_task(function() asyncio.sleep(10) end)
        trio.sleep(0.01)
        ta.dump_tasks(function(s) out[#out + 1] = s end)
        t:cancel()
      end)
    end)
    local text = table.concat(out)
    assert.truthy(text:find("[trio loop driver]", 1, true), text)
    assert.truthy(text:find("[asyncio task] sleep (", 1, true), text)
  end)
end)
