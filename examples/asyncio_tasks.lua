-- asyncio_tasks.lua: the asyncio flavor on its own.
--   lua5.4 examples/asyncio_tasks.lua      (after `eval "$(make -s env)"`)
-- Tasks run side by side on one loop; gather collects results in argument
-- order; wait_for and timeout bound a wait; a Queue hands work to workers.
local asyncio = require "asyncio"

local function download(name, delay)
  asyncio.sleep(delay)
  return name:upper()
end

print(asyncio.run(function()
  -- 1. create_task starts at once; awaiting it gives its result.
  local task = asyncio.create_task(download, "first", 0.02)
  task:set_name("first download")
  print("task:", task:get_name(), "done yet:", task:done())
  print("awaited:", task:await())

  -- 2. gather: results in argument order, whatever the finishing order.
  local results = asyncio.gather(
    function() return download("slow", 0.03) end,
    function() return download("fast", 0.01) end)
  print("gather:", results[1], results[2])

  -- 3. return_exceptions: errors come back as values.
  results = asyncio.gather(
    function() error("broken", 0) end,
    function() return "fine" end,
    { return_exceptions = true })
  print("gather with return_exceptions:", results[1], results[2])

  -- 4. wait_for cancels what is too slow and raises TimeoutError.
  local ok, err = pcall(asyncio.wait_for, function() return download("late", 10) end, 0.01)
  print("wait_for: TimeoutError =", not ok and asyncio.TimeoutError:is(err))

  -- 5. A queue with two workers; join waits until every item is done.
  local queue = asyncio.Queue()
  local handled = {}
  local function worker(name)
    while true do
      local item = queue:get()
      asyncio.sleep(0.001)
      handled[#handled + 1] = name .. ":" .. item
      queue:task_done()
    end
  end
  local workers = { asyncio.create_task(worker, "w1"), asyncio.create_task(worker, "w2") }
  for i = 1, 4 do queue:put_nowait(i) end
  queue:join()
  for _, w in ipairs(workers) do w:cancel() end
  print("queue items handled:", #handled)
  return "asyncio example: done"
end))
