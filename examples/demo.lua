-- demo.lua: a tour of the Trio flavor, the asyncio flavor and the bridge.
-- Run with `make demo`.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

local START

local function log(fmt, ...)
  print(("[%6.3f] " .. fmt):format(trio.current_time() - START, ...))
end

local function producer(send, name, n)
  for i = 1, n do
    trio.sleep(0.01)
    send:send(("%s-%d"):format(name, i))
  end
  send:close()
end

local function main()
  START = trio.current_time()

  -- 1. A nursery: the block ends only when every child has finished.
  local send, recv = trio.open_memory_channel(0)
  trio.open_nursery(function(nursery)
    nursery:start_soon(producer, send:clone(), "a", 3)
    nursery:start_soon(producer, send, "b", 3)
    for item in recv:iter() do log("received %s", item) end
  end)

  -- 2. Timeouts are cancel scopes: the body is cancelled, the caller goes on.
  local scope = trio.move_on_after(0.05, function()
    log("sleeping for an hour...")
    trio.sleep(3600)
  end)
  log("moved on: cancelled_caught = %s", tostring(scope.cancelled_caught))

  -- 3. fail_after raises instead.
  local ok, err = pcall(trio.fail_after, 0.02, trio.sleep, 1)
  log("fail_after: %s", trio.TooSlowError:is(err) and "TooSlowError" or tostring(ok))

  -- 4. An error in one child cancels its siblings and comes out as a group.
  err = select(2, pcall(trio.open_nursery, function(nursery)
    nursery:start_soon(function() trio.sleep_forever() end)
    nursery:start_soon(function() trio.sleep(0.01) error("worker failed") end)
  end))
  log("nursery raised %s holding: %s", getmetatable(err).__name, tostring(err.exceptions[1]))

  -- 5. nursery:start waits until the child says it is ready.
  trio.open_nursery(function(nursery)
    local port = nursery:start(function(task_status)
      trio.sleep(0.01)
      task_status:started(8080)
      trio.sleep(0.01)
    end)
    log("server started on port %d", port)
  end)
  return "done"
end

print(trio.run(main))

-- 6. The asyncio flavor on its own: Tasks, gather, wait_for.
print(asyncio.run(function()
  local results = asyncio.gather(
    function() asyncio.sleep(0.01) return "one" end,
    function() return "two" end)
  local ok, err = pcall(asyncio.wait_for, function() asyncio.sleep(1) end, 0.01)
  return ("asyncio: gather -> %s %s; wait_for -> %s"):format(
    results[1], results[2], asyncio.TimeoutError:is(err) and "TimeoutError" or tostring(ok))
end))

-- 7. The bridge: an asyncio loop inside a Trio run, explicit crossings.
print(ta.run(function()
  -- an asyncio-flavored "library" function...
  local function fetch(x)
    asyncio.sleep(0.01)
    return x * 2
  end
  -- ...called from Trio through an explicit wrapper
  print("aio_as_trio(fetch)(21) =", ta.aio_as_trio(fetch)(21))

  -- Trio cancellation reaches the asyncio task, which may clean up
  local scope = trio.move_on_after(0.02, ta.aio_as_trio(function()
    local ok, err = pcall(asyncio.sleep, 10)
    print("  asyncio task saw", asyncio.CancelledError:is(err) and "CancelledError" or tostring(ok))
    error(err, 0)
  end))
  print("Trio caller moved on:", scope.cancelled_caught)

  -- a wrong-flavor call is a clear error at the call site
  local _, err = pcall(ta.aio_as_trio(function() trio.sleep(0) end))
  print(tostring(err.message))

  -- both flavors in one task tree
  ta.current_loop():create_task(function() asyncio.sleep(1) end):set_name("background fetch")
  trio.sleep(0)
  ta.dump_tasks()
  return "bridge: done"
end))
