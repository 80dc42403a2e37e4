-- What a nursery object is: a table whose start_soon is a field of its
-- own (nursery:start_soon needs no __index call), its state (a userdata)
-- at [1], everything else from its metatable.  See nursery.c.
local trio = require "trio"
local core = require "trio_asyncio.core"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local Nursery = core.metatable("trio_asyncio.Nursery").__methods

describe("a nursery object", function()
  it("is a table whose own start_soon is Nursery.start_soon, with its fields and methods", function()
    local seen = trio.run(function()
      local me = trio.lowlevel.current_task()
      return trio.open_nursery(function(n)
        n:start_soon(trio.sleep, 0)
        return {
          type = type(n),
          own = rawget(n, "start_soon") == Nursery.start_soon,
          mt = getmetatable(n) == core.metatable("trio_asyncio.Nursery"),
          scope = tostring(n.cancel_scope):match("^CancelScope") ~= nil,
          parent = n.parent_task == me,
          children = #n.child_tasks,
          start = n.start == Nursery.start,
          name = tostring(n):match("^Nursery %(1 children") ~= nil,
          unknown = n.no_such_field,
        }
      end)
    end)
    assert.same({ type = "table", own = true, mt = true, scope = true, parent = true,
                  children = 1, start = true, name = true }, seen)
  end)

  it("refuses a new field with a clear error and stays usable", function()
    local e, ran = trio.run(function()
      return trio.open_nursery(function(n)
        local err = errof(function() n.data = 1 end)
        local done = false
        n:start_soon(function() done = true end)
        trio.sleep(0)
        return err, done
      end)
    end)
    assert_has(e, "nursery field 'data' is read-only")
    assert.is_true(ran)
  end)

  it("acts through its state ([1]) on the same nursery", function()
    local r = trio.run(function()
      return trio.open_nursery(function(n)
        local state = rawget(n, 1)
        local log = {}
        state:start_soon(function() log[#log + 1] = "via state" end)
        trio._start_soon(state, function() log[#log + 1] = "via _start_soon" end)
        local kids = n.child_tasks
        local same = kids[1].parent_nursery == n and kids[2].parent_nursery == n
        trio.sleep(0)
        return { type = type(state), kids = #kids, same = same, log = log,
                 scope = state.cancel_scope == n.cancel_scope,
                 parent = state.parent_task == n.parent_task }
      end)
    end)
    assert.same({ type = "userdata", kids = 2, same = true, scope = true, parent = true,
                  log = { "via state", "via _start_soon" } }, r)
  end)

  it("a child's error through its state's nursery still cancels and is raised", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        rawget(n, 1):start_soon(function() error("boom", 0) end)
        trio.sleep_forever()
      end)
    end)
    assert_has(e, "boom")
  end)

  it("refuses tables that are no nursery, naming the argument", function()
    local errs = trio.run(function()
      local fake_state = setmetatable({}, getmetatable(trio.open_nursery(function(n) return n end)))
      local out = {}
      for name, bad in pairs { plain = {}, other_state = { io.stdout }, no_state = fake_state } do
        out[name .. " start_soon"] = tostring(errof(Nursery.start_soon, bad, print))
        out[name .. " _start_soon"] = tostring(errof(trio._start_soon, bad, print))
        out[name .. " wait"] = tostring(errof(core.nursery_wait, bad))
      end
      return out
    end)
    local n = 0
    for _, msg in pairs(errs) do
      n = n + 1
      assert.matches("bad argument #1 to '[%w_.:]+' %(trio_asyncio.Nursery expected, got table%)", msg)
    end
    assert.equal(9, n)
  end)

  it("refuses start_soon on a closed nursery, through the table or the state", function()
    local errs = trio.run(function()
      local kept
      trio.open_nursery(function(n) kept = n end)
      return { tostring(errof(kept.start_soon, kept, print)),
               tostring(errof(Nursery.start_soon, rawget(kept, 1), print)) }
    end)
    assert_has(errs[1], "start_soon: the nursery is closed to new tasks")
    assert_has(errs[2], "start_soon: the nursery is closed to new tasks")
  end)

  it("its table and state are collected once the run is over", function()
    local weak = setmetatable({}, { __mode = "k" })
    trio.run(function()
      trio.open_nursery(function(n)
        weak[n] = "nursery"
        weak[rawget(n, 1)] = "state"
        n:start_soon(trio.sleep, 0)
      end)
    end)
    collectgarbage()
    collectgarbage()
    assert.same({}, weak)
  end)
end)
