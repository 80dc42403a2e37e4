-- oom scenario: a guest run on a host's libuv loop (trio_asyncio_use_loop),
-- with an asyncio loop open and a timer.
-- a host checks what trio_asyncio_use_loop returns (a libuv error code)
local rc = oom_use_loop()
if rc ~= 0 then error(("trio_asyncio_use_loop: cannot use the host loop (libuv error %d)"):format(rc)) end
local result
ta.start_guest_run(function(loop)
  local f = loop:create_future()
  loop:call_later(0.001, f.set_result, f, 4)
  trio.sleep(0.001)
  return ta.run_aio_future(f)
end, { done_callback = function(ok, v) result = ok and v or error(v, 0) end })
oom_uv_run()
assert(result == 4, "the guest run did not finish: " .. tostring(result))
