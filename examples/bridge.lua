-- bridge.lua: Trio and asyncio in one program through trio_asyncio.
--   lua5.4 examples/bridge.lua      (after `eval "$(make -s env)"`)
-- An asyncio loop runs on the Trio scheduler; each crossing is explicit:
-- aio_as_trio calls asyncio code from Trio, trio_as_aio the other way, and
-- cancellation crosses with the call.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

-- An asyncio-flavored "library" function...
local function aio_fetch(x)
  asyncio.sleep(0.01)
  return x * 2
end

-- ...and a Trio-flavored one.
local function trio_compute(x)
  trio.sleep(0.01)
  return x + 1
end

print(ta.run(function()
  -- Trio -> asyncio: the call runs as an asyncio Task and is awaited.
  print("aio_as_trio(aio_fetch)(21) =", ta.aio_as_trio(aio_fetch)(21))

  -- asyncio -> Trio: inside an asyncio Task, trio_as_aio runs a Trio task.
  local r = ta.aio_as_trio(function()
    return ta.trio_as_aio(trio_compute)(41)
  end)()
  print("trio_as_aio(trio_compute)(41) from an asyncio Task =", r)

  -- Trio cancellation reaches the asyncio Task, which sees CancelledError.
  local seen
  local scope = trio.move_on_after(0.02, ta.aio_as_trio(function()
    local ok, err = pcall(asyncio.sleep, 10)
    seen = not ok and asyncio.CancelledError:is(err)
    error(err, 0)
  end))
  print("Trio timeout cancelled the asyncio Task:", scope.cancelled_caught, seen)

  -- A wrong-flavor call is an error at its call site, not a hang.
  local ok, err = pcall(ta.aio_as_trio(function() trio.sleep(0) end))
  print("wrong flavor:", ok, ta.FlavorError:is(err))

  -- Both flavors side by side in one nursery.
  local got = {}
  trio.open_nursery(function(nursery)
    nursery:start_soon(function()
      local v = trio_compute(1)
      got[#got + 1] = "trio " .. v
    end)
    nursery:start_soon(function()
      local v = ta.aio_as_trio(aio_fetch)(1)
      got[#got + 1] = "asyncio " .. v
    end)
  end)
  table.sort(got)
  print("side by side:", table.concat(got, ", "))
  return "bridge example: done"
end))
