-- The task slab: a Trio task's struct lives in a slot of its engine's slab,
-- and its Lua object is made only when Lua code first asks for it.  Slots
-- of tasks nothing asked for are free again after the batch that saw their
-- exit; an object owns its task's slot after the exit and gives it back
-- when collected.  Identity and fields must not depend on when the object
-- was made.
local trio = require "trio"
local core = require "trio_asyncio.core"

local function full_gc()
  collectgarbage()
  collectgarbage()
end

local function slots()
  return core.debug_ids().task_slots
end

describe("the Trio task slab", function()
  it("tasks nothing asked for give their slots back after their batch", function()
    local before, during, after
    trio.run(function()
      trio.sleep(0)
      before = slots()
      trio.open_nursery(function(nursery)
        for _ = 1, 300 do nursery:start_soon(trio.sleep, 0) end -- more than a block of slots
        during = slots()
      end)
      trio.sleep(0)
      after = slots()
    end)
    assert.equal(before + 300, during)
    assert.equal(before, after)
  end)

  it("slots are reused: rounds of spawns do not grow the slab", function()
    local taken = {}
    trio.run(function()
      for round = 1, 3 do
        trio.open_nursery(function(nursery)
          for _ = 1, 200 do nursery:start_soon(trio.sleep, 0) end
        end)
        trio.sleep(0)
        taken[round] = slots()
      end
    end)
    assert.equal(taken[1], taken[2])
    assert.equal(taken[1], taken[3])
  end)

  it("an object made while the task runs is the same object everywhere, before and after its exit", function()
    local seen_inside, listed, kept_nursery
    trio.run(function()
      trio.open_nursery(function(nursery)
        kept_nursery = nursery
        nursery:start_soon(function()
          seen_inside = trio.lowlevel.current_task()
          assert.equal(seen_inside, trio.lowlevel.current_task())
          trio.sleep(0.01)
        end)
        trio.sleep(0)
        listed = nursery.child_tasks
      end)
    end)
    assert.equal(1, #listed)
    assert.equal(seen_inside, listed[1])
    assert.is_true(seen_inside.done)
    assert.equal(kept_nursery, seen_inside.parent_nursery)
    assert.matches("trio_task_slab_spec.lua:%d+", seen_inside.name)
    assert.matches("^trio task '.*' %(0x", tostring(seen_inside))
  end)

  it("an object first asked for from outside (child_tasks) shows the task's fields, named or not", function()
    local first, named
    trio.run(function()
      trio.open_nursery(function(nursery)
        nursery:start_soon(trio.sleep, 0.01)
        nursery:start_soon(trio.sleep, 0.01)
        local children = nursery.child_tasks
        first, named = children[1], children[2]
        named.name = "the named one"
        assert.is_false(first.done)
        assert.equal(nursery, first.parent_nursery)
      end)
    end)
    assert.is_true(first.done)
    assert.equal("trio.sleep", first.name)
    assert.equal("the named one", named.name)
    assert.is_true(first.id ~= named.id)
  end)

  it("an object gives its task's slot back once it is collected", function()
    local before, kept, with_object, after_collect
    trio.run(function()
      trio.sleep(0)
      before = slots()
      trio.open_nursery(function(nursery)
        for _ = 1, 50 do
          nursery:start_soon(trio.sleep, 0)
        end
        kept = nursery.child_tasks -- 50 objects, made while their tasks live
      end)
      trio.sleep(0)
      with_object = slots()
      assert.equal(50, #kept)
      kept = nil
      full_gc()
      after_collect = slots()
    end)
    assert.equal(before + 50, with_object)
    assert.equal(before, after_collect)
  end)

  it("a failing task gets an object as its exit is told; its error and its slot are not lost", function()
    local before, after
    local ok, err = pcall(trio.run, function()
      before = slots()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() error({ what = "boom" }) end)
      end)
    end)
    assert.is_false(ok)
    assert.equal(1, #err.exceptions)
    assert.equal("boom", err.exceptions[1].what)
    full_gc()
    trio.run(function()
      trio.sleep(0)
      after = slots()
    end)
    assert.equal(before, after)
  end)

  it("a task object used by a finalizer that runs after its own raises a clear error, not a crash", function()
    local message
    trio.run(function()
      -- the holder is marked for finalization before the task object is
      -- made, so its finalizer runs after the object's (reverse order)
      local holder = setmetatable({}, {
        __gc = function(self)
          local ok, e = pcall(function() return self.task.name end)
          message = not ok and tostring(e) or "no error"
        end,
      })
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() holder.task = trio.lowlevel.current_task() end)
      end)
    end)
    full_gc()
    assert.matches("task object already finalized", message, 1, true)
  end)
end)
