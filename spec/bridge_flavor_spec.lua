-- Flavor rules across the bridge (DESIGN.md section 5): wrong-flavor calls
-- raise trio_asyncio.FlavorError at the call site with the exact message
-- shapes; current_task of the other flavor raises; synchronous functions
-- work from either flavor.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local assert_has = support.assert_has

local FlavorError = ta.FlavorError
local BAD_YIELD = "Task got bad yield: "
local UNRECOGNIZED = "trio.run received unrecognized yield message: "

local function message(e)
  if type(e) == "table" then return e.message end
  return tostring(e)
end

-- "file:line" for a line of this file.
local function here(line)
  return debug.getinfo(1, "S").short_src .. ":" .. line
end

local function line() return debug.getinfo(2, "l").currentline end

describe("wrong-flavor calls: Trio functions from asyncio", function()
  it("trio.sleep from asyncio task 'fetch' gives the exact message with this file's call site", function()
    local e, where = ta.run(function()
      local t = ta.current_loop():create_task(function()
        local ok, err = pcall(trio.sleep, 0); local l = line()
        assert(not ok)
        return err, l
      end)
      t:set_name("fetch")
      local err, l = ta.run_aio_future(t)
      return err, here(l)
    end)
    assert.is_true(FlavorError:is(e))
    assert.matches("bridge_flavor_spec%.lua:%d+$", where)
    assert.equal("Task got bad yield: trio-flavored trio.sleep called from asyncio task 'fetch' ("
      .. where .. "); wrap it with trio_asyncio.trio_as_aio", message(e))
  end)

  it("uses the default Task name when none was set", function()
    local e, name, where = ta.run(function()
      return ta.aio_as_trio(function()
        local _, err = pcall(trio.sleep, 0); local l = line()
        return err, asyncio.current_task():get_name(), here(l)
      end)()
    end)
    assert.is_true(FlavorError:is(e))
    assert.equal("Task got bad yield: trio-flavored trio.sleep called from asyncio task '" .. name
      .. "' (" .. where .. "); wrap it with trio_asyncio.trio_as_aio", message(e))
  end)

  for _, c in ipairs {
    { "trio.sleep_forever", function() trio.sleep_forever() end },
    { "trio.open_nursery", function() trio.open_nursery(function() end) end },
    { "trio.lowlevel.checkpoint", function() trio.lowlevel.checkpoint() end },
    { "Event:wait", function() trio.Event():wait() end },
    { "receive", function() local _, r = trio.open_memory_channel(0); r:receive() end },
  } do
    it(c[1] .. " from asyncio raises FlavorError naming the wrapper", function()
      local e = ta.run(function()
        return ta.aio_as_trio(function()
          local ok, err = pcall(c[2])
          assert(not ok)
          return err
        end)()
      end)
      assert.is_true(FlavorError:is(e), tostring(e))
      assert.equal(BAD_YIELD, message(e):sub(1, #BAD_YIELD))
      assert_has(message(e), "trio-flavored")
      assert_has(message(e), "trio_asyncio.trio_as_aio")
    end)
  end

  it("after catching the FlavorError the asyncio task goes on normally", function()
    local v = ta.run(function()
      return ta.aio_as_trio(function()
        local ok = pcall(trio.sleep, 0)
        assert(not ok)
        asyncio.sleep(0)
        return "still fine"
      end)()
    end)
    assert.equal("still fine", v)
  end)

  it("an uncaught FlavorError comes out of the aio_as_trio call", function()
    local ok, e = pcall(ta.run, function()
      ta.aio_as_trio(function() trio.sleep(0) end)()
    end)
    assert.is_false(ok)
    assert.is_true(FlavorError:is(e))
  end)
end)

describe("wrong-flavor calls: asyncio functions from Trio", function()
  it("asyncio.sleep from trio task 'worker' gives the exact message with this file's call site", function()
    local e, where = ta.run(function()
      local err, l
      trio.open_nursery(function(n)
        n:start_soon(function()
          trio.lowlevel.current_task().name = "worker"
          local _; _, err = pcall(asyncio.sleep, 0); l = line()
        end)
      end)
      return err, here(l)
    end)
    assert.is_true(FlavorError:is(e))
    assert.equal("trio.run received unrecognized yield message: asyncio-flavored asyncio.sleep called from trio task 'worker' ("
      .. where .. "); wrap it with trio_asyncio.aio_as_trio", message(e))
  end)

  it("Future:await from Trio names Future:await", function()
    local e, name, where = ta.run(function()
      local fut = ta.current_loop():create_future()
      local _, err = pcall(fut.await, fut); local l = line()
      return err, trio.lowlevel.current_task().name, here(l)
    end)
    assert.is_true(FlavorError:is(e))
    assert.equal("trio.run received unrecognized yield message: asyncio-flavored Future:await called from trio task '"
      .. name .. "' (" .. where .. "); wrap it with trio_asyncio.aio_as_trio", message(e))
  end)

  for _, c in ipairs {
    { "asyncio.Event:wait", function() asyncio.Event():wait() end },
    { "asyncio.Queue:get", function() asyncio.Queue():get() end },
    { "asyncio.Lock:acquire (contended)", function()
      local lock = asyncio.Lock()
      lock:acquire()
    end },
    { "asyncio.gather", function() asyncio.gather(function() end) end },
    { "asyncio.wait_for", function() asyncio.wait_for(function() end, 1) end },
    { "asyncio.await", function() asyncio.await(ta.current_loop():create_future()) end },
  } do
    it(c[1] .. " from Trio raises FlavorError naming the wrapper", function()
      local e = ta.run(function()
        local ok, err = pcall(c[2])
        assert(not ok, "no error")
        return err
      end)
      assert.is_true(FlavorError:is(e), tostring(e))
      assert.equal(UNRECOGNIZED, message(e):sub(1, #UNRECOGNIZED))
      assert_has(message(e), "asyncio-flavored")
      assert_has(message(e), "trio_asyncio.aio_as_trio")
    end)
  end

  it("after catching the FlavorError the Trio task goes on normally", function()
    local v = ta.run(function()
      assert(not pcall(asyncio.sleep, 0))
      trio.sleep(0)
      return "still fine"
    end)
    assert.equal("still fine", v)
  end)
end)

describe("current_task of the other flavor", function()
  it("trio.lowlevel.current_task() in asyncio code raises FlavorError", function()
    local e, where = ta.run(function()
      return ta.aio_as_trio(function()
        local _, err = pcall(trio.lowlevel.current_task); local l = line()
        return err, here(l)
      end)()
    end)
    assert.is_true(FlavorError:is(e))
    assert.equal(BAD_YIELD, message(e):sub(1, #BAD_YIELD))
    assert_has(message(e), "trio.lowlevel.current_task")
    assert_has(message(e), "(" .. where .. ")")
  end)

  it("asyncio.current_task() in Trio code raises FlavorError", function()
    local e, where = ta.run(function()
      local _, err = pcall(asyncio.current_task); local l = line()
      return err, here(l)
    end)
    assert.is_true(FlavorError:is(e))
    assert.equal(UNRECOGNIZED, message(e):sub(1, #UNRECOGNIZED))
    assert_has(message(e), "asyncio.current_task")
    assert_has(message(e), "(" .. where .. ")")
  end)

  it("trio.move_on_after in asyncio code raises FlavorError", function()
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local _, err = pcall(trio.move_on_after, 1, function() end)
        return err
      end)()
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
  end)

  it("asyncio.timeout in Trio code raises FlavorError", function()
    local e = ta.run(function()
      local _, err = pcall(asyncio.timeout, 1, function() end)
      return err
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
  end)

  it("each flavor's current_task works in its own flavor", function()
    local trio_name, aio_name = ta.run(function()
      local tt = trio.lowlevel.current_task()
      return tt.name, ta.aio_as_trio(function() return asyncio.current_task():get_name() end)()
    end)
    assert.is_string(trio_name)
    assert.is_string(aio_name)
  end)
end)

describe("synchronous functions from either flavor", function()
  it("trio.Event:set from an asyncio task wakes a Trio waiter", function()
    local log = {}
    ta.run(function()
      local ev = trio.Event()
      trio.open_nursery(function(n)
        n:start_soon(function() ev:wait(); log[#log + 1] = "trio woke" end)
        ta.aio_as_trio(function() asyncio.sleep(0.001); log[#log + 1] = "aio sets"; ev:set() end)()
      end)
    end)
    assert.same({ "aio sets", "trio woke" }, log)
  end)

  it("asyncio.Event:set from Trio wakes an asyncio waiter", function()
    local v = ta.run(function()
      local ev = asyncio.Event()
      local t = ta.current_loop():create_task(function() ev:wait(); return "aio woke" end)
      trio.sleep(0.001)
      ev:set()
      return ta.run_aio_future(t)
    end)
    assert.equal("aio woke", v)
  end)

  it("loop:call_soon from Trio and Future:set_result from Trio reach asyncio code", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      local t = loop:create_task(function() return fut:await() .. "!" end)
      local cb = trio.Event()
      loop:call_soon(function() cb:set() end)
      cb:wait()
      fut:set_result("set from trio")
      return ta.run_aio_future(t)
    end)
    assert.equal("set from trio!", v)
  end)

  it("Future:set_result and loop:call_soon from asyncio code wake a Trio waiter", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      ta.aio_as_trio(function()
        asyncio.get_running_loop():call_soon(function() fut:set_result("from callback") end)
      end)()
      return ta.run_aio_future(fut)
    end)
    assert.equal("from callback", v)
  end)

  it("memory channel send_nowait from asyncio and Queue put_nowait from Trio", function()
    local got_trio, got_aio = ta.run(function()
      local send, recv = trio.open_memory_channel(1)
      local q = asyncio.Queue()
      q:put_nowait("to asyncio")
      local a = ta.aio_as_trio(function()
        send:send_nowait("to trio")
        return q:get()
      end)()
      return recv:receive(), a
    end)
    assert.equal("to trio", got_trio)
    assert.equal("to asyncio", got_aio)
  end)
end)

describe("foreign yields", function()
  it("a raw coroutine.yield inside an asyncio task raises FlavorError instead of hanging", function()
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local _, err = pcall(coroutine.yield, "foreign value")
        return err
      end)()
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
  end)
end)
