-- demo.lua: a tour of the Trio flavor.  Run with `make demo`.
local trio = require "trio"

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
  ok, err = pcall(trio.open_nursery, function(nursery)
    nursery:start_soon(function() trio.sleep_forever() end)
    nursery:start_soon(function() trio.sleep(0.01) error("worker failed") end)
  end)
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
