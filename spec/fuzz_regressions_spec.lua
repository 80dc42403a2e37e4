-- Behaviour the fuzzer (make fuzz, tests/fuzz/) found wrong, reduced to a
-- few lines each.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

describe("Trio tasks started from asyncio code", function()
  it("see the loop as their current loop on a sync loop, so aio_as_trio works in them (run_trio)", function()
    local loop = asyncio.new_event_loop()
    local inner_loop, v = nil, nil
    local ok, err = pcall(loop.run_until_complete, loop, function()
      v = ta.trio_as_aio(function()
        inner_loop = ta.current_loop()
        return ta.aio_as_trio(function() asyncio.sleep(0) return "inner" end)()
      end)()
    end)
    loop:close()
    assert(ok, tostring(err))
    assert.equal(loop, inner_loop)
    assert.equal("inner", v)
  end)

  it("see the loop as their current loop on a sync loop (run_trio_task)", function()
    local loop = asyncio.new_event_loop()
    local seen
    loop:run_until_complete(function()
      local fut = asyncio.get_running_loop():create_future()
      asyncio.get_running_loop():run_trio_task(function()
        seen = ta.current_loop()
        fut:set_result(ta.aio_as_trio(function() return "from asyncio" end)())
      end)
      assert.equal("from asyncio", fut:await())
    end)
    loop:close()
    assert.equal(loop, seen)
  end)

  it("keep the name of their function (run_trio_task)", function()
    local name, line
    ta.run(function()
      local loop, done = ta.current_loop(), trio.Event()
      line = debug.getinfo(1, "l").currentline + 1
      loop:run_trio_task(function() name = trio.lowlevel.current_task().name done:set() end)
      trio.fail_after(5, done.wait, done)
    end)
    assert.equal(("spec/fuzz_regressions_spec.lua:%d"):format(line), name)
  end)
end)
