-- A plain run's scheduler step goes on with further batches by itself
-- while the next step would only run the queued tasks (engine/run.c,
-- only_tasks_next).  What a step does besides running tasks must still
-- happen at the very next step: firing a deadline, running a
-- run_sync_soon callback, cancelling the rest once the main task exited.
local trio = require "trio"

describe("scheduler steps between batches of busy tasks", function()
  it("a deadline cancels the third checkpoint after the jump, not later", function()
    local clock = trio.testing.MockClock()
    local spins = trio.lowlevel.run { clock = clock, fn = function()
      local n = 0
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() for _ = 1, 100 do trio.sleep(0) end end)
        trio.move_on_after(10, function()
          while true do
            n = n + 1
            if n == 3 then clock:jump(10) end
            trio.sleep(0)
          end
        end)
      end)
      return n
    end }
    assert.equal(3, spins)
  end)

  it("a run_sync_soon callback queued by a busy task runs at the next step", function()
    local seen = trio.run(function()
      local token = trio.lowlevel.current_trio_token()
      local n, at
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() for _ = 1, 100 do trio.sleep(0) end end)
        for i = 1, 100 do
          n = i
          if i == 5 then token:run_sync_soon(function() at = n end) end
          trio.sleep(0)
        end
      end)
      return at
    end)
    assert.equal(5, seen)
  end)

  it("once the main task exits, a busy system task is cancelled at its next checkpoint", function()
    local got = {}
    trio.run(function()
      trio.lowlevel.spawn_system_task(function()
        local ok, err = pcall(function()
          while true do
            got.after_main = got.main_done and (got.after_main or 0) + 1 or nil
            trio.sleep(0)
          end
        end)
        got.cancelled = not ok and trio.Cancelled:is(err)
      end)
      for _ = 1, 10 do trio.sleep(0) end
      got.main_done = true
    end)
    assert.is_true(got.cancelled)
    assert.is_true((got.after_main or 0) <= 1, "spun " .. tostring(got.after_main) .. " times after main")
  end)
end)
