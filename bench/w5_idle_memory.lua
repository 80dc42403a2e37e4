-- W5 memory: N idle TCP connections on 127.0.0.1, both ends in this
-- process (a Trio server task waiting in receive_some per connection, and
-- the client SocketStream), or the same with asyncio transports.
-- usage: lua5.4 bench/w5_idle_memory.lua {trio|asyncio} N
-- bench/run.sh measures (max RSS with N - max RSS with 0) / N: bytes per
-- connection, server and client side together.  Needs 2N + a few fds.
local trio = require "trio"
local asyncio = require "asyncio"

local kind = arg[1] or "trio"
local N = tonumber(arg[2]) or 1000

if kind == "trio" then
  trio.run(function()
    trio.open_nursery(function(nursery)
      local ls = nursery:start(trio.serve_tcp, function(stream) stream:receive_some() end, 0,
        { host = "127.0.0.1", backlog = 4096 })
      local port = ls[1].socket:getsockname()[2]
      local clients = {}
      for i = 1, N do clients[i] = trio.open_tcp_stream("127.0.0.1", port) end
      trio.sleep(0.2) -- every server task is waiting now
      collectgarbage()
      trio.sleep(0.05)
      for _, c in ipairs(clients) do c:close() end
      nursery.cancel_scope:cancel()
    end)
  end)
else
  asyncio.run(function()
    local loop = asyncio.get_running_loop()
    local server = loop:create_server(function() return {} end, "127.0.0.1", 0, { backlog = 4096 })
    local port = server.sockets[1]:getsockname()[2]
    local transports = {}
    for i = 1, N do transports[i] = loop:create_connection(function() return {} end, "127.0.0.1", port) end
    asyncio.sleep(0.2)
    collectgarbage()
    asyncio.sleep(0.05)
    for _, t in ipairs(transports) do t:close() end
    server:close()
  end)
end
print(("W5 idle connections %s N=%d"):format(kind, N))
