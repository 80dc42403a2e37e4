-- W10 TLS echo on 127.0.0.1: a TLS server and C client tasks in one
-- process; each client connects, does the TLS handshake (TLS 1.3, ECDSA
-- P-256 certificate) and R strict request/response round trips of 100
-- bytes; the same shape as the peers' w10_tls.py.  With R=1 and many
-- clients the run is dominated by handshakes: the W10h rows report that
-- as handshakes/s.
-- usage: lua5.4 bench/w10_tls.lua {trio|asyncio|bridged} [C=100] [R=100]
--          trio: trio.SSLStream (serve_ssl_over_tcp, open_tcp_stream +
--          SSLStream); asyncio: asyncio streams with ssl=; bridged: the
--          same asyncio code inside trio_asyncio.open_loop
--        (from the repo root, with LUA_PATH="lua/?.lua;lua/?/init.lua;;"
--        LUA_CPATH="build/?.so;;")
-- The certificate is the peers' ($TLS_DIR, default /tmp/peers/tls; made
-- with the openssl command when missing).
-- Metric: round trips/s = C*R / wall time of the whole run (handshakes
-- included); with R=1 (W10h) that is also handshakes/s (the RESULT unit
-- stays rt/s, as the Python peer's, so bench/run.sh can take ratios).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local ssl = require "trio_asyncio.ssl"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg[1] or "trio"
local C = tonumber(arg[2]) or 100
local R = tonumber(arg[3]) or 100
local SIZE = 100
local MSG = ("x"):rep(SIZE)

local tls_dir = os.getenv("TLS_DIR") or "/tmp/peers/tls"
local cert, key = tls_dir .. "/cert.pem", tls_dir .. "/key.pem"
if not io.open(cert) then
  assert(os.execute(("mkdir -p %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
    .. "-nodes -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s -out %s "
    .. ">/dev/null 2>&1"):format(tls_dir, key, cert)))
end
local server_ctx = ssl.create_default_context { purpose = "server" }
server_ctx:load_cert_chain(cert, key)
local client_ctx = ssl.create_default_context { cafile = cert }

local function trio_main()
  local function handler(stream)
    local ok, err = pcall(function()
      while true do
        local data = stream:receive_some(65536)
        if data == "" then return end
        stream:send_all(data)
      end
    end)
    if not ok and not trio.BrokenResourceError:is(err) then error(err, 0) end
  end
  local function client(port)
    local tcp = trio.open_tcp_stream("127.0.0.1", port)
    local stream = trio.SSLStream(tcp, client_ctx, { server_hostname = "localhost" })
    for _ = 1, R do
      stream:send_all(MSG)
      local got = 0
      while got < SIZE do got = got + #stream:receive_some(SIZE - got) end
    end
    stream:close()
  end
  trio.open_nursery(function(server)
    local listeners = server:start(trio.serve_ssl_over_tcp, handler, 0, server_ctx,
      { host = "127.0.0.1", backlog = 1024 })
    local port = listeners[1].socket:getsockname()[2]
    trio.open_nursery(function(clients)
      for _ = 1, C do clients:start_soon(client, port) end
    end)
    server.cancel_scope:cancel()
  end)
end

local function aio_main()
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
    local reader, writer = asyncio.open_connection("127.0.0.1", port,
      { ssl = client_ctx, server_hostname = "localhost" })
    for _ = 1, R do
      writer:write(MSG)
      writer:drain()
      reader:readexactly(SIZE)
    end
    writer:close()
    pcall(writer.wait_closed, writer)
  end
  local server = asyncio.start_server(handler, "127.0.0.1", 0, { ssl = server_ctx, backlog = 1024 })
  local port = server.sockets[1]:getsockname()[2]
  local clients = {}
  for i = 1, C do clients[i] = function() return client(port) end end
  asyncio.gather(table.unpack(clients))
  server:close()
  server:wait_closed()
end

local t0 = now()
if kind == "trio" then
  trio.run(trio_main)
elseif kind == "asyncio" then
  asyncio.run(aio_main)
elseif kind == "bridged" then
  ta.run(function() ta.aio_as_trio(aio_main)() end)
else
  error("usage: w10_tls.lua {trio|asyncio|bridged} [C] [R]")
end
local dt = now() - t0
print(string.format("W10 TLS echo %s C=%d R=%d wall=%.3fs: %.6g round trips/s%s", kind, C, R, dt, C * R / dt,
  R == 1 and " (= handshakes/s)" or ""))
print(string.format("RESULT %.6g rt/s", C * R / dt))
