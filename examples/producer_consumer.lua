-- producer_consumer.lua: memory channels between tasks.
--   lua5.4 examples/producer_consumer.lua      (after `eval "$(make -s env)"`)
-- Two producers share one channel through clone(); the consumers' loop ends
-- when every send side is closed.  A buffer of 2 gives back-pressure.
local trio = require "trio"

local function producer(send, name, n)
  for i = 1, n do
    send:send(("%s-%d"):format(name, i))
    trio.sleep(0.001)
  end
  send:close() -- this clone is done; the channel ends when all are closed
end

local function consumer(receive, name, seen)
  for item in receive:iter() do
    seen[#seen + 1] = item
    print(name .. " got " .. item)
  end
end

trio.run(function()
  local send, receive = trio.open_memory_channel(2)
  local seen = {}
  trio.open_nursery(function(nursery)
    nursery:start_soon(producer, send:clone(), "apple", 3)
    nursery:start_soon(producer, send, "pear", 3)
    nursery:start_soon(consumer, receive:clone(), "consumer A", seen)
    nursery:start_soon(consumer, receive, "consumer B", seen)
  end)
  print(("%d items, each once"):format(#seen))

  -- send_nowait and receive_nowait never wait: they raise instead.
  local s, r = trio.open_memory_channel(1)
  s:send_nowait("only one fits")
  local ok, err = pcall(s.send_nowait, s, "second")
  print("second send_nowait: WouldBlock =", not ok and trio.WouldBlock:is(err))
  print("receive_nowait:", r:receive_nowait())
  s:close()
  ok, err = pcall(r.receive, r)
  print("receive after close: EndOfChannel =", not ok and trio.EndOfChannel:is(err))
  r:close()
end)
