-- nursery_timeouts.lua: structured concurrency with trio.
--   lua5.4 examples/nursery_timeouts.lua      (after `eval "$(make -s env)"`)
-- A nursery runs tasks side by side and waits for all of them; a timeout is
-- a cancel scope around a call; an error in one task cancels its siblings.
local trio = require "trio"

local function fetch(name, delay)
  trio.sleep(delay)
  return name .. " done"
end

trio.run(function()
  -- 1. Three tasks at once: the block ends when the last one has.
  local results = {}
  local t0 = trio.current_time()
  trio.open_nursery(function(nursery)
    for i, delay in ipairs { 0.03, 0.01, 0.02 } do
      nursery:start_soon(function() results[i] = fetch("job" .. i, delay) end)
    end
  end)
  print(("all jobs: %s, %s, %s (in about %.2f s, not 0.06)"):format(
    results[1], results[2], results[3], trio.current_time() - t0))

  -- 2. move_on_after: give up quietly, the caller goes on.
  local scope, value = trio.move_on_after(0.01, fetch, "slow", 10)
  print("move_on_after: cancelled_caught =", scope.cancelled_caught, "value =", value)

  -- 3. fail_after: give up with trio.TooSlowError.
  local ok, err = pcall(trio.fail_after, 0.01, fetch, "slow", 10)
  print("fail_after: ok =", ok, "TooSlowError =", trio.TooSlowError:is(err))

  -- 4. A failing task cancels its siblings; the nursery raises an
  --    ExceptionGroup holding the original error.
  local cancelled = false
  ok, err = pcall(trio.open_nursery, function(nursery)
    nursery:start_soon(function()
      local done, e = pcall(trio.sleep, 10)
      cancelled = not done and trio.Cancelled:is(e)
      error(e, 0) -- always let Cancelled through
    end)
    nursery:start_soon(function()
      trio.sleep(0.01)
      error("disk full", 0)
    end)
  end)
  print("nursery raised a group:", not ok and trio.ExceptionGroup:is(err), "holding:", err.exceptions[1],
    "sibling cancelled:", cancelled)

  -- 5. A shielded scope finishes its cleanup even inside a cancelled one.
  trio.move_on_after(0.01, function()
    local ok2 = pcall(trio.sleep, 10)
    trio.CancelScope { shield = true }:run(function()
      trio.sleep(0.01)
      print("cleanup ran under the shield after the timeout:", not ok2)
    end)
  end)
end)
