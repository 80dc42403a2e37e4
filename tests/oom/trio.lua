-- oom scenario: the Trio flavor (nurseries, channels, locks, events,
-- cancel scopes and deadlines, a readiness wait on a pipe, the reasons of
-- cancellations: explicit, a child's error, a nursery body's error).
local got = trio.run(function()
  local send, recv = trio.open_memory_channel(2)
  local lock, ev = trio.Lock(), trio.Event()
  local got = 0
  local rfd, wfd = oom_pipe()
  trio.open_nursery(function(n)
    for i = 1, 3 do
      n:start_soon(function(s)
        local closing <close> = s
        for k = 1, 4 do s:send(i * 10 + k) end
      end, send:clone())
    end
    send:close()
    n:start_soon(function()
      for _ in recv:iter() do got = got + 1 end
      ev:set()
    end)
    n:start_soon(function() lock:with(trio.sleep, 0.001) end)
    n:start_soon(function() lock:with(trio.sleep, 0) end)
    n:start_soon(function() trio.lowlevel.wait_readable(rfd) end)
    trio.move_on_after(0.002, trio.sleep_forever)
    local scope = trio.CancelScope {}
    n:start_soon(function() scope:run(trio.sleep_forever) end)
    trio.sleep(0.001)
    scope:cancel("no longer needed")
    oom_write(wfd, "x")
    ev:wait()
  end)
  oom_close(rfd)
  oom_close(wfd)
  for _, child_fails in ipairs { true, false } do
    local ok = pcall(trio.open_nursery, function(n)
      n:start_soon(trio.sleep_forever)
      trio.sleep(0)
      if child_fails then
        n:start_soon(error, "child failed")
        trio.sleep_forever()
      end
      error("body failed")
    end)
    assert(not ok)
  end
  return got
end)
assert(got == 12, "lost values: " .. tostring(got))
