-- echo_server.lua: a TCP echo server with trio.serve_tcp.
--   lua5.4 examples/echo_server.lua         a demo: serves, three clients talk to it, stops
--   lua5.4 examples/echo_server.lua 7777    serves on port 7777 until Ctrl-C
--                                           (try: nc localhost 7777)
-- Each connection runs the handler in its own task; the stream is closed
-- when the handler returns, and cancelling serve_tcp closes everything.
local trio = require "trio"

local function echo(stream)
  local peer = stream.socket:getpeername()
  while true do
    local data = stream:receive_some()
    if data == "" then break end -- the client closed its side
    stream:send_all(data)
  end
  return peer
end

local port = tonumber(arg and arg[1])

trio.run(function()
  if port then
    print(("echo server on port %d (Ctrl-C stops it)"):format(port))
    local ok, err = pcall(trio.serve_tcp, echo, port)
    if not trio.KeyboardInterrupt:is(err) then error(err, 0) end
    print("stopped", ok)
    return
  end
  trio.fail_after(10, function()
    trio.open_nursery(function(nursery)
      -- start() returns once the server listens: its listeners
      local listeners = nursery:start(trio.serve_tcp, echo, 0, { host = "127.0.0.1" })
      local server_port = listeners[1].socket:getsockname()[2]
      print("echo server listening on 127.0.0.1 port", server_port > 0)
      -- three clients at once
      trio.open_nursery(function(clients)
        for i = 1, 3 do
          clients:start_soon(function()
            local stream = trio.open_tcp_stream("127.0.0.1", server_port)
            local msg = ("hello from client %d"):format(i)
            stream:send_all(msg)
            stream:send_eof() -- half-close: the server sees EOF, we can still read
            local got = {}
            while true do
              local data = stream:receive_some()
              if data == "" then break end
              got[#got + 1] = data
            end
            stream:close()
            print(("client %d got back: %s"):format(i, table.concat(got)))
          end)
        end
      end)
      nursery.cancel_scope:cancel() -- stops the server and closes its listeners
    end)
    print("server stopped")
  end)
end)
