-- chat.lua: a chat server with trio.serve_tcp and memory channels.
--   lua5.4 examples/chat.lua          a demo: three users chat, then the server stops
--   lua5.4 examples/chat.lua 7777     serves on port 7777 (try two `nc localhost 7777`)
-- Every connection has a memory channel of its own: a broadcast puts the
-- line into each of them, and a writer task per connection sends what
-- arrives in its channel.  A slow client only fills its own channel.
local trio = require "trio"

local members = {} -- send channel -> name

local function broadcast(line)
  for send in pairs(members) do
    pcall(send.send_nowait, send, line) -- a full channel drops the line for that client
  end
end

-- Lines of a stream, as they arrive.
local function lines_of(stream)
  local buf = ""
  return function()
    while true do
      local i = buf:find("\n", 1, true)
      if i then
        local line = buf:sub(1, i - 1)
        buf = buf:sub(i + 1)
        return line
      end
      local data = stream:receive_some()
      if data == "" then return nil end
      buf = buf .. data
    end
  end
end

local function handle(stream)
  local next_line = lines_of(stream)
  stream:send_all("name? ")
  local name = next_line()
  if not name then return end
  local send, receive = trio.open_memory_channel(100)
  members[send] = name
  broadcast(name .. " joined\n")
  local ok, err = pcall(trio.open_nursery, function(n)
    n:start_soon(function() -- writer: this member's channel -> its socket
      for line in receive:iter() do stream:send_all(line) end
    end)
    for line in next_line do broadcast(("<%s> %s\n"):format(name, line)) end
    n.cancel_scope:cancel() -- the member left: stop its writer
  end)
  members[send] = nil
  send:close()
  broadcast(name .. " left\n")
  if not ok then error(err, 0) end
end

local port = tonumber(arg and arg[1])

trio.run(function()
  if port then
    print(("chat server on port %d"):format(port))
    trio.serve_tcp(handle, port)
    return
  end
  trio.fail_after(10, function()
    trio.open_nursery(function(nursery)
      local listeners = nursery:start(trio.serve_tcp, handle, 0, { host = "127.0.0.1" })
      local server = listeners[1]
      local everyone = trio.Event()
      local joined = 0
      trio.open_nursery(function(users)
        for _, name in ipairs { "ann", "bob", "cat" } do
          users:start_soon(function()
            local stream = trio.testing.open_stream_to_socket_listener(server)
            local next_line = lines_of(stream)
            stream:send_all(name .. "\n")
            joined = joined + 1
            if joined == 3 then everyone:set() end
            everyone:wait()
            trio.sleep(0.05) -- let every join reach every member
            stream:send_all("hi, I am " .. name .. "\n")
            local heard = {}
            while #heard < 3 do
              local line = next_line()
              if line:match("^<") then heard[#heard + 1] = line end
            end
            table.sort(heard)
            print(name .. " heard: " .. table.concat(heard, " | "))
            stream:close()
          end)
        end
      end)
      nursery.cancel_scope:cancel()
    end)
    print("chat server stopped")
  end)
end)
