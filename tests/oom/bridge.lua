-- oom scenario: the bridge (open_loop, aio_as_trio, trio_as_aio, run_trio,
-- cancellation across it) and a sync loop.
local v = ta.run(function()
  local loop = ta.current_loop()
  local x = ta.aio_as_trio(function()
    asyncio.sleep(0.001)
    return ta.trio_as_aio(function() trio.sleep(0.001) return 2 end)()
  end)()
  trio.move_on_after(0.001, ta.aio_as_trio(function() asyncio.sleep(1) end))
  -- a Trio task that raises, and one cancelled from asyncio
  assert(ta.aio_as_trio(function()
    local failed = not pcall(ta.trio_as_aio(function() trio.sleep(0) error("raised across") end))
    local t = asyncio.get_running_loop():create_task(ta.trio_as_aio(trio.sleep_forever))
    asyncio.sleep(0)
    t:cancel()
    return failed and not pcall(t.await, t)
  end)())
  local fut = loop:run_trio(function() trio.sleep(0) return 3 end)
  local y = ta.run_aio_future(fut)
  return x + y
end)
assert(v == 5)
OOM_SYNC_LOOP = asyncio.new_event_loop()
local w = OOM_SYNC_LOOP:run_until_complete(function() asyncio.sleep(0.001) return 7 end)
w = w + OOM_SYNC_LOOP:run_until_complete(function() return ta.trio_as_aio(function() return 1 end)() end)
OOM_SYNC_LOOP:close()
OOM_SYNC_LOOP = nil
assert(w == 8)
