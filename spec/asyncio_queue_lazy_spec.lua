-- asyncio.Queue makes its deques of waiters on the first wait and the Event
-- join() waits on on the first join() that has to wait: these specs pin the
-- behaviour of the paths before and after those objects exist.
local asyncio = require "asyncio"
local support = require "support"
local errof = support.errof

local Queue = asyncio.Queue
local CancelledError = asyncio.CancelledError

local function within(task) return asyncio.wait_for(task, 1) end

describe("asyncio.Queue objects made on demand", function()
  it("task_done and shutdown before any join() leave join() consistent", function()
    local log = asyncio.run(function()
      local q = Queue()
      local log = {}
      q:put_nowait("a")
      q:get_nowait()
      q:task_done() -- unfinished back to 0 with no Event yet
      q:join() -- at once
      log[#log + 1] = "joined at once"
      q:put_nowait("b")
      q:shutdown(true) -- drops "b", counted done: join() still at once
      q:join()
      log[#log + 1] = "joined after shutdown"
      log[#log + 1] = asyncio.QueueShutDown:is(errof(q.put_nowait, q, "c"))
      return log
    end)
    assert.same({ "joined at once", "joined after shutdown", true }, log)
  end)

  it("two joiners share one Event; a cancelled joiner leaves the other waiting", function()
    local log = asyncio.run(function()
      local q = Queue()
      local log = {}
      q:put_nowait(1)
      local j1 = asyncio.create_task(function() q:join() log[#log + 1] = "j1" end)
      local j2 = asyncio.create_task(function() q:join() log[#log + 1] = "j2" end)
      asyncio.sleep(0)
      j1:cancel()
      asyncio.sleep(0)
      log[#log + 1] = j1:cancelled() and not j2:done()
      local ok, e = pcall(j1.await, j1)
      log[#log + 1] = not ok and CancelledError:is(e)
      q:get_nowait()
      q:task_done()
      within(j2)
      q:put_nowait(2) -- clears the Event again: a new join() waits
      local j3 = asyncio.create_task(function() q:join() log[#log + 1] = "j3" end)
      asyncio.sleep(0)
      log[#log + 1] = not j3:done()
      q:get_nowait()
      q:task_done()
      within(j3)
      return log
    end)
    assert.same({ true, true, "j2", true, "j3" }, log)
  end)

  it("a queue waited on only by getters makes no putter deque, and the other way round", function()
    local got = asyncio.run(function()
      local q = Queue(1)
      local got = {}
      local getter = asyncio.create_task(function() got[#got + 1] = q:get() end)
      asyncio.sleep(0)
      q:put_nowait("x") -- wakes the getter: the getters' deque exists
      within(getter)
      q:put_nowait("y")
      local putter = asyncio.create_task(function() q:put("z") end) -- first putter wait
      asyncio.sleep(0)
      got[#got + 1] = putter:done()
      got[#got + 1] = q:get_nowait()
      within(putter)
      got[#got + 1] = q:get_nowait()
      got[#got + 1] = tostring(q)
      return got
    end)
    assert.same({ "x", false, "y", "z",
      "Queue (maxsize:1, qsize:0, getters:0, putters:0, unfinished:3)" }, got)
  end)
end)
