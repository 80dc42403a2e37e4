-- Ported from Trio's src/trio/_tests/test_contextvars.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: Python's contextvars.ContextVar is trio.ContextVar, made
-- once for the file as upstream makes it once for the module (a value set
-- in one run does not reach the next run).
-- test_contextvars_copy is adapted: there are no contextvars.copy_context()
-- objects (docs/SEMANTICS.md, "Everywhere"), so `context.run(start_soon,
-- child)` with a context copied before the variable changed becomes a
-- start_soon made before the change: what upstream checks is that a child
-- starts with the context of the moment it was spawned.
-- Left out: nothing else.
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_tests/test_contextvars.py::"
local trio_testing_contextvar = trio.ContextVar("trio_testing_contextvar")

describe("Trio test_contextvars.py", function()
  -- ported
  it(P .. "test_contextvars_default", function()
    local record = H.run(function()
      trio_testing_contextvar:set("main")
      local record = {}
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          record[#record + 1] = trio_testing_contextvar:get()
        end)
      end)
      return record
    end)
    assert.same({ "main" }, record)
  end)

  -- ported
  it(P .. "test_contextvars_set", function()
    local record, value = H.run(function()
      trio_testing_contextvar:set("main")
      local record = {}
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          trio_testing_contextvar:set("child")
          record[#record + 1] = trio_testing_contextvar:get()
        end)
      end)
      return record, trio_testing_contextvar:get()
    end)
    assert.same({ "child" }, record)
    assert.equal("main", value)
  end)

  -- adapted: the first child is spawned before the variable changes
  -- (upstream spawns it in a context copied before the change); both are
  -- spawned before either runs
  it(P .. "test_contextvars_copy", function()
    local record, value = H.run(function()
      trio_testing_contextvar:set("main")
      local record = {}
      local function child()
        record[#record + 1] = trio_testing_contextvar:get()
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(child)
        trio_testing_contextvar:set("second_main")
        nursery:start_soon(child)
      end)
      return record, trio_testing_contextvar:get()
    end)
    assert.same({ "main", "second_main" }, H.sorted(record))
    assert.equal("second_main", value)
  end)
end)
