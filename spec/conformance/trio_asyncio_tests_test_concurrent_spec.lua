-- Ported from trio-asyncio tests/test_concurrent.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation: `isinstance(x, TrioEventLoop)` is "x is a loop object"
-- (metatable trio_asyncio.Loop) that has run_trio (the bridge's loop
-- methods); `asyncio._get_running_loop()` outside any loop is
-- trio_asyncio.current_loop() being nil.
--
-- Left out, in test_same_task: the event loop policy assertions
-- (get_event_loop_policy, TrioPolicy): policies are Python-only machinery.
-- The rest of that test (callbacks of two nested loops each see their own
-- loop from get_event_loop) is ported.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/test_concurrent.py::"

local function is_trio_event_loop(x)
  local mt = getmetatable(x)
  return type(x) == "userdata" and type(mt) == "table" and mt.__name == "trio_asyncio.Loop"
    and type(x.run_trio) == "function"
end

it(F .. "test_parallel", function()
  local loops = {}
  H.run(function()
    trio.open_nursery(function(n)
      local function gen_loop(i, task_status)
        task_status:started()
        ta.open_loop(function(loop)
          loops[i] = loop
        end)
      end
      assert.is_nil(ta.current_loop())
      n:start(gen_loop, 1)
      n:start(gen_loop, 2)
    end)
  end)
  assert.is_true(is_trio_event_loop(loops[1]))
  assert.is_true(is_trio_event_loop(loops[2]))
  assert.are_not.equal(loops[1], loops[2])
end)

it(F .. "test_nested", function()
  local loops = {}
  H.run(function()
    trio.open_nursery(function(n)
      local function gen_loop(i, task_status)
        task_status:started()
        ta.open_loop(function(loop)
          loops[i] = loop
          if i > 1 then n:start(gen_loop, i - 1) end
        end)
      end
      assert.is_nil(ta.current_loop())
      n:start(gen_loop, 2)
    end)
    assert.is_nil(ta.current_loop())
  end)
  assert.is_true(is_trio_event_loop(loops[1]))
  assert.is_true(is_trio_event_loop(loops[2]))
  assert.are_not.equal(loops[1], loops[2])
end)

it(F .. "test_same_task", function()
  local checked = {}
  H.run(function()
    local function get_loop(i, loop)
      assert.equal(loop, asyncio.get_event_loop())
      checked[#checked + 1] = i
    end
    trio.open_nursery(function()
      ta.open_loop(function(loop1)
        ta.open_loop(function(loop2)
          loop1:call_later(0.1, get_loop, 0, loop1)
          loop2:call_later(0.1, get_loop, 1, loop2)
          trio.sleep(0.2)
        end)
      end)
    end)
    assert.is_nil(ta.current_loop())
    assert.is_false(pcall(asyncio.get_running_loop))
  end)
  table.sort(checked)
  assert.same({ 0, 1 }, checked)
end)
