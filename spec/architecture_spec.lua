-- The C core's layers (docs/ARCHITECTURE.md) and the bugs that hid in the
-- structure before it had them: ids of a weak table reused under
-- incremental GC, callable objects given an extra argument, one fd that
-- could not be watched by both flavors, and tasks that lost their name and
-- parent nursery when they exited.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code, out
end

describe("the layers of csrc/", function()
  it("follow the dependency rules (scripts/check_layers.sh)", function()
    local code, out = sh("bash scripts/check_layers.sh")
    assert.equal(0, code, out)
  end)

  it("the check fails, naming the file, when the engine includes a layer above it", function()
    local tmp = os.tmpname()
    os.remove(tmp)
    assert.equal(0, (sh(("mkdir -p %q && cp -r csrc %q/"):format(tmp, tmp))))
    local f = assert(io.open(tmp .. "/csrc/engine/task.c", "a"))
    f:write('\n#include "trio/trio.h"\n')
    f:close()
    f = assert(io.open(tmp .. "/csrc/trio/nursery.c", "a"))
    f:write('\n#include "asyncio/asyncio.h"\n')
    f:close()
    local code, out = sh(("bash scripts/check_layers.sh %q"):format(tmp))
    sh(("rm -rf %q"):format(tmp))
    assert.equal(1, code)
    assert.truthy(out:find('csrc/engine/task.c:%d+ includes "trio/trio.h"'), out)
    assert.truthy(out:find('csrc/trio/nursery.c:%d+ includes "asyncio/asyncio.h"'), out)
  end)
end)

describe("asyncio Tasks under incremental GC", function()
  -- A Task dropped while pending is collected meanwhile; with ids handed out
  -- by luaL_ref on a weak table, a new Task could get the dead one's id and
  -- its finalizer freed it a second time (names and outcomes got mixed up).
  it("keep their own identity while others are collected", function()
    local mode = collectgarbage("incremental")
    local ok, err = pcall(function()
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function() end)
      local keep = {}
      loop:run_until_complete(function()
        for i = 1, 600 do
          loop:create_task(function() loop:create_future():await() end) -- dropped while pending
          local t = loop:create_task(function() loop:create_future():await() end)
          t:set_name("keep-" .. i)
          keep[i] = t
          asyncio.sleep(0)
          collectgarbage("step", 0)
        end
        for i, t in ipairs(keep) do assert.equal("keep-" .. i, t.name) end
      end)
      loop:close()
    end)
    collectgarbage(mode)
    assert(ok, err)
  end)

  it("each get their own outcome and done callbacks while others are collected", function()
    local mode = collectgarbage("incremental")
    local ok, err = pcall(function()
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function() end)
      local keep, done = {}, {}
      loop:run_until_complete(function()
        for i = 1, 600 do
          loop:create_task(function() loop:create_future():await() end) -- dropped while pending
          local t = loop:create_task(function()
            asyncio.sleep(0)
            return i
          end)
          t:add_done_callback(function() done[i] = true end)
          keep[i] = t
          asyncio.sleep(0)
          collectgarbage("step", 0)
        end
        asyncio.sleep(0)
        asyncio.sleep(0)
      end)
      for i, t in ipairs(keep) do
        assert.equal(i, t:result())
        assert.is_true(done[i], "done callback of Task " .. i)
      end
      loop:close()
    end)
    collectgarbage(mode)
    assert(ok, err)
  end)
end)

describe("callable objects", function()
  local function callable(log)
    return setmetatable({}, { __call = function(self, ...)
      log[#log + 1] = select("#", ...)
      log[#log + 1] = { self = self, ... }
    end })
  end

  it("nursery:start_soon passes exactly the given arguments", function()
    local log = {}
    local c = callable(log)
    trio.run(function()
      trio.open_nursery(function(n) n:start_soon(c, "a") end)
    end)
    assert.equal(1, log[1])
    assert.equal("a", log[2][1])
    assert.equal(c, log[2].self)
  end)

  it("asyncio.create_task and call_soon pass exactly the given arguments", function()
    local log = {}
    local c = callable(log)
    asyncio.run(function()
      asyncio.create_task(c, "b"):await()
      local loop = asyncio.get_running_loop()
      local fut = loop:create_future()
      loop:call_soon(c, "c")
      loop:call_soon(function() fut:set_result(true) end)
      fut:await()
    end)
    assert.same({ 1, "b", 1, "c" }, { log[1], log[2][1], log[3], log[4][1] })
  end)
end)

describe("one fd watched by both flavors", function()
  it("a Trio wait_readable and an asyncio add_reader on the same fd both wake", function()
    local a, b = support.raw_socketpair()
    local fd = math.tointeger(b:getfd())
    local ok, err = pcall(function()
      local log = {}
      ta.run(function()
        ta.open_loop(function(loop)
          local seen = loop:create_future()
          loop:add_reader(fd, function()
            log[#log + 1] = "asyncio"
            loop:remove_reader(fd)
            if not seen:done() then seen:set_result(true) end
          end)
          trio.fail_after(5, function()
            trio.open_nursery(function(n)
              n:start_soon(function()
                trio.lowlevel.wait_readable(fd)
                log[#log + 1] = "trio"
              end)
              trio.sleep(0.01)
              a:send("x")
            end)
            ta.run_aio_future(seen)
          end)
        end)
      end)
      table.sort(log)
      assert.same({ "asyncio", "trio" }, log)
    end)
    a:close()
    b:close()
    assert(ok, err)
  end)

  it("a second Trio reader of the fd is a BusyResourceError", function()
    local a, b = support.raw_socketpair()
    local fd = math.tointeger(b:getfd())
    local ok, err = pcall(function()
      local e = trio.run(function()
        return trio.fail_after(5, function()
          local got
          trio.open_nursery(function(n)
            n:start_soon(trio.lowlevel.wait_readable, fd)
            trio.sleep(0.01)
            local ok2, e2 = pcall(trio.lowlevel.wait_readable, fd)
            got = not ok2 and e2
            a:send("x")
          end)
          return got
        end)
      end)
      assert.is_true(trio.BusyResourceError:is(e), tostring(e))
      assert.truthy(tostring(e):find("trio.lowlevel.wait_readable", 1, true))
    end)
    a:close()
    b:close()
    assert(ok, err)
  end)
end)

describe("a task that has exited", function()
  it("keeps its name and its parent nursery, as in Trio", function()
    local task, nursery, name_before
    trio.run(function()
      trio.open_nursery(function(n)
        nursery = n
        n:start_soon(function()
          task = trio.lowlevel.current_task()
          name_before = task.name
        end)
      end)
    end)
    assert.truthy(name_before:find("architecture_spec.lua:%d+$"), name_before)
    assert.equal(name_before, task.name)
    assert.equal(nursery, task.parent_nursery)
    assert.is_true(task.done)
  end)

  it("that failed, or never started, keeps its name too", function()
    local failed, never
    pcall(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          failed = trio.lowlevel.current_task()
          error("boom")
        end)
      end)
    end)
    assert.truthy(failed.name:find("architecture_spec.lua:%d+$"), failed.name)
    asyncio.run(function()
      local t = asyncio.create_task(function() end)
      t:cancel()
      never = t
      pcall(asyncio.await, t)
    end)
    assert.is_true(never:cancelled())
    assert.truthy(never.name, "a name")
  end)
end)

describe("an fd that cannot be watched", function()
  it("raises trio_asyncio.OSError with errno and code, naming the function", function()
    local e = trio.run(function()
      local ok, err = pcall(trio.lowlevel.wait_readable, 1000000) -- not open: EBADF
      return not ok and err
    end)
    assert.is_true(ta.OSError:is(e), tostring(e))
    assert.truthy(tostring(e):find("trio.lowlevel.wait_readable: cannot watch fd 1000000", 1, true))
    assert.equal("EBADF", e.code)
    assert.equal(9, e.errno)
    assert.equal(ta.OSError, trio.OSError)
    assert.equal(ta.OSError, asyncio.OSError)
  end)
end)
