-- W5 TCP echo on 127.0.0.1: an echo server and C client tasks in one
-- process; each client does R strict request/response round trips of 100
-- bytes (TCP_NODELAY on: trio and asyncio set it), the same shape as the
-- peers' w5_echo.py and w5_echo_luv.lua.
-- usage: lua5.4 bench/w5_echo.lua trio [C=100] [R=1000]           Trio streams
--        lua5.4 bench/w5_echo.lua {asyncio|bridged} {streams|protocols} [C] [R]
--          asyncio: asyncio.run; bridged: the same asyncio code inside
--          trio_asyncio.open_loop (the bridge's loop)
--        (from the repo root, with LUA_PATH="lua/?.lua;lua/?/init.lua;;"
--        LUA_CPATH="build/?.so;;")
-- Metric: round trips/s = C*R / wall time of the whole run (listen,
-- connect and close included).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg[1] or "trio"
local api = kind == "trio" and "streams" or (arg[2] or "streams")
local rest = kind == "trio" and 2 or 3
local C = tonumber(arg[rest]) or 100
local R = tonumber(arg[rest + 1]) or 1000
local SIZE = 100
local MSG = ("x"):rep(SIZE)

local function trio_main()
  local function handler(stream)
    while true do
      local data = stream:receive_some(65536)
      if data == "" then return end
      stream:send_all(data)
    end
  end
  local function client(port)
    local stream = trio.open_tcp_stream("127.0.0.1", port)
    for _ = 1, R do
      stream:send_all(MSG)
      local got = 0
      while got < SIZE do got = got + #stream:receive_some(SIZE - got) end
    end
    stream:close()
  end
  trio.open_nursery(function(server)
    local listeners = server:start(trio.serve_tcp, handler, 0, { host = "127.0.0.1", backlog = 1024 })
    local port = listeners[1].socket:getsockname()[2]
    trio.open_nursery(function(clients)
      for _ = 1, C do clients:start_soon(client, port) end
    end)
    server.cancel_scope:cancel()
  end)
end

local function aio_streams()
  local function handler(reader, writer)
    while true do
      local data = reader:read(65536)
      if data == "" then break end
      writer:write(data)
      writer:drain()
    end
    writer:close()
  end
  local function client(port)
    local reader, writer = asyncio.open_connection("127.0.0.1", port)
    for _ = 1, R do
      writer:write(MSG)
      writer:drain()
      reader:readexactly(SIZE)
    end
    writer:close()
    writer:wait_closed()
  end
  local server = asyncio.start_server(handler, "127.0.0.1", 0, { backlog = 1024 })
  local port = server.sockets[1]:getsockname()[2]
  local clients = {}
  for i = 1, C do clients[i] = function() return client(port) end end
  asyncio.gather(table.unpack(clients))
  server:close()
  server:wait_closed()
end

local EchoServer = {}
EchoServer.__index = EchoServer
function EchoServer:connection_made(transport) self.transport = transport end
function EchoServer:data_received(data) self.transport:write(data) end

local EchoClient = {}
EchoClient.__index = EchoClient
function EchoClient:connection_made(transport)
  self.transport = transport
  transport:write(MSG)
end
function EchoClient:data_received(data)
  self.got = self.got + #data
  while self.got >= SIZE do
    self.got = self.got - SIZE
    self.left = self.left - 1
    if self.left > 0 then
      self.transport:write(MSG)
    else
      self.transport:close()
      self.done:set_result(true)
    end
  end
end

local function aio_protocols()
  local loop = asyncio.get_running_loop()
  local server = loop:create_server(function() return setmetatable({}, EchoServer) end,
    "127.0.0.1", 0, { backlog = 1024 })
  local port = server.sockets[1]:getsockname()[2]
  local function client()
    local done = loop:create_future()
    loop:create_connection(function()
      return setmetatable({ done = done, left = R, got = 0 }, EchoClient)
    end, "127.0.0.1", port)
    done:await()
  end
  local clients = {}
  for i = 1, C do clients[i] = client end
  asyncio.gather(table.unpack(clients))
  server:close()
  server:wait_closed()
end

local aio_main = api == "protocols" and aio_protocols or aio_streams
-- trio and asyncio install their networking parts on first use; look them
-- up before the clock starts, as the peers import theirs before timing
assert(trio.serve_tcp and asyncio.open_connection)
local t0 = now()
if kind == "trio" then
  trio.run(trio_main)
elseif kind == "asyncio" then
  asyncio.run(aio_main)
elseif kind == "bridged" then
  ta.run(function() ta.aio_as_trio(aio_main)() end)
else
  error("usage: w5_echo.lua trio | {asyncio|bridged} {streams|protocols} [C] [R]")
end
local dt = now() - t0
local label = kind == "trio" and "trio streams" or (kind .. " " .. api)
print(string.format("W5 echo %s C=%d R=%d wall=%.3fs: %.6g round trips/s", label, C, R, dt, C * R / dt))
print(string.format("RESULT %.6g round trips/s", C * R / dt))
