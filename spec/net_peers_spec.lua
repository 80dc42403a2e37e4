-- Real peers no one here wrote, over loopback: curl against an HTTP/1.1
-- server on trio.serve_tcp and one on asyncio.start_server; Python 3's
-- socket and asyncio as clients and as servers; nc as a client.  Each
-- peer runs in the background (sh &) and is waited for with a bound; its
-- output goes through a temporary file.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local net = require "support_net"

local LIMIT = 10

local background = net.background

--- Reads lines from a Trio stream.
local function line_reader(stream)
  local buf = ""
  return function()
    while true do
      local i = buf:find("\n", 1, true)
      if i then
        local line = buf:sub(1, i)
        buf = buf:sub(i + 1)
        return line
      end
      local data = stream:receive_some()
      if data == "" then
        local rest = buf
        buf = ""
        return rest ~= "" and rest or nil
      end
      buf = buf .. data
    end
  end, function(n) -- read exactly n more bytes
    while #buf < n do
      local data = stream:receive_some()
      if data == "" then break end
      buf = buf .. data
    end
    local out = buf:sub(1, n)
    buf = buf:sub(n + 1)
    return out
  end
end

local function http_response(body, keep_alive)
  return ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s")
    :format(#body, keep_alive and "keep-alive" or "close", body)
end

local function have(cmd) return net.need(cmd, pending) end

describe("curl", function()
  it("against an HTTP/1.1 server on trio.serve_tcp, two requests on one kept-alive connection", function()
    if not have("curl") then return end
    local connections, requests = 0, {}
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_tcp, function(stream)
            connections = connections + 1
            local readline = line_reader(stream)
            while true do
              local request = readline()
              if request == nil then return end
              local path = request:match("^GET (%S+) HTTP/1%.1\r\n$")
              assert(path, "bad request line: " .. request)
              repeat local h = readline() until h == "\r\n" or h == nil
              requests[#requests + 1] = path
              stream:send_all(http_response("hello from trio at " .. path .. "\n", true))
            end
          end, 0, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local curl = background(("curl -sS --max-time %d http://127.0.0.1:%d/a http://127.0.0.1:%d/b")
            :format(LIMIT, port, port))
          local code, out = curl.wait(trio.sleep)
          assert.equal(0, code, out)
          assert.equal("hello from trio at /a\nhello from trio at /b\n", out)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    assert.same({ "/a", "/b" }, requests)
    assert.equal(1, connections)
  end)

  it("against an HTTP/1.1 server on asyncio.start_server (a POST with a body)", function()
    if not have("curl") then return end
    local got
    asyncio.run(function()
      asyncio.wait_for(asyncio.create_task(function()
        local server = asyncio.start_server(function(reader, writer)
          local request = reader:readline()
          local length = 0
          while true do
            local h = reader:readline()
            if h == "\r\n" or h == "" then break end
            local n = h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
            if n then length = tonumber(n) end
          end
          got = { request = request, body = reader:readexactly(length) }
          writer:write(http_response("asyncio got " .. #got.body .. " bytes\n", false))
          writer:drain()
          writer:close()
        end, "127.0.0.1", 0)
        local port = server.sockets[1]:getsockname()[2]
        local curl = background(("curl -sS --max-time %d --data-binary 'x=1&y=2' http://127.0.0.1:%d/form")
          :format(LIMIT, port))
        local code, out = curl.wait(asyncio.sleep)
        assert.equal(0, code, out)
        assert.equal("asyncio got 7 bytes\n", out)
        server:close()
        server:wait_closed()
      end), LIMIT)
    end)
    assert.equal("POST /form HTTP/1.1\r\n", got.request)
    assert.equal("x=1&y=2", got.body)
  end)
end)

describe("Python 3", function()
  it("socket as a client of a Trio server", function()
    if not have("python3") then return end
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_tcp, function(stream)
            local data = ""
            repeat
              local d = stream:receive_some()
              data = data .. d
            until d == ""
            stream:send_all("lua saw " .. #data .. " bytes: " .. data)
          end, 0, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local py = background(([[python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', %d), timeout=%d)
s.sendall(b'from python')
s.shutdown(socket.SHUT_WR)
print(s.makefile('rb').read().decode())
"]]):format(port, LIMIT))
          local code, out = py.wait(trio.sleep)
          assert.equal(0, code, out)
          assert.equal("lua saw 11 bytes: from python\n", out)
          n.cancel_scope:cancel()
        end)
      end)
    end)
  end)

  it("asyncio as a server of a Trio client and of an asyncio client", function()
    if not have("python3") then return end
    local portfile = os.tmpname()
    os.remove(portfile)
    local py = background(([[python3 -c "
import asyncio, os
served = 0
async def main():
    done = asyncio.Event()
    async def handle(r, w):
        global served
        line = await r.readline()
        w.write(b'python echoes ' + line)
        await w.drain()
        w.close()
        served += 1
        if served == 2:
            done.set()
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    with open('%s.tmp', 'w') as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.rename('%s.tmp', '%s')
    async with server:
        await asyncio.wait_for(done.wait(), %d)
asyncio.run(main())
"]]):format(portfile, portfile, portfile, LIMIT))
    local ok, err = pcall(function()
      local port
      for _ = 1, LIMIT * 50 do
        local f = io.open(portfile)
        if f then
          port = tonumber(f:read("a"))
          f:close()
          break
        end
        os.execute("sleep 0.02")
      end
      assert(port, "the python server did not start")
      local trio_reply = trio.run(function()
        return trio.fail_after(LIMIT, function()
          local s = trio.open_tcp_stream("127.0.0.1", port)
          s:send_all("trio\n")
          local got = ""
          repeat
            local d = s:receive_some()
            got = got .. d
          until d == ""
          s:close()
          return got
        end)
      end)
      assert.equal("python echoes trio\n", trio_reply)
      local aio_reply = asyncio.run(function()
        local r, w = asyncio.open_connection("127.0.0.1", port)
        w:write("asyncio\n")
        local line = r:readline()
        w:close()
        return line
      end)
      assert.equal("python echoes asyncio\n", aio_reply)
    end)
    os.remove(portfile)
    local code, out = py.wait(function() os.execute("sleep 0.02") end) -- it ends after two clients
    assert(ok, err)
    assert.equal(0, code, out)
  end)

  it("asyncio as a client of an asyncio server on the bridge's loop", function()
    if not have("python3") then return end
    trio.run(function()
      trio.fail_after(LIMIT, ta.open_loop, function()
        local server = ta.run_aio_coroutine(function()
          return asyncio.start_server(function(r, w)
            local n = 0
            for _ in r:lines() do n = n + 1 end
            w:write(("%d lines\n"):format(n))
            w:close()
          end, "127.0.0.1", 0)
        end)
        local port = server.sockets[1]:getsockname()[2]
        local py = background(([[python3 -c "
import asyncio
async def main():
    r, w = await asyncio.open_connection('127.0.0.1', %d)
    w.write(b'a\nb\nc\n')
    w.write_eof()
    print((await r.read()).decode(), end='')
    w.close()
asyncio.run(asyncio.wait_for(main(), %d))
"]]):format(port, LIMIT))
        local code, out = py.wait(trio.sleep)
        assert.equal(0, code, out)
        assert.equal("3 lines\n", out)
        server:close()
      end)
    end)
  end)
end)

describe("nc", function()
  it("as a client of a Trio echo server", function()
    if not have("nc") then return end
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_tcp, function(stream)
            while true do
              local d = stream:receive_some()
              if d == "" then return end
              stream:send_all(d:upper())
            end
          end, 0, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local nc = background(("printf 'shout this\\n' | nc -N -w %d 127.0.0.1 %d"):format(LIMIT, port))
          local code, out = nc.wait(trio.sleep)
          assert.equal(0, code, out)
          assert.equal("SHOUT THIS\n", out)
          n.cancel_scope:cancel()
        end)
      end)
    end)
  end)

  it("as a UDP peer of an asyncio datagram endpoint", function()
    if not have("nc") then return end
    asyncio.run(function()
      asyncio.wait_for(asyncio.create_task(function()
        local loop = asyncio.get_running_loop()
        local got = loop:create_future()
        local t = loop:create_datagram_endpoint(function()
          return { datagram_received = function(_, d) if not got:done() then got:set_result(d) end end }
        end, { local_addr = { "127.0.0.1", 0 } })
        local port = t:get_extra_info("sockname")[2]
        local nc = background(("printf 'datagram' | nc -u -w 1 127.0.0.1 %d"):format(port))
        assert.equal("datagram", got:await())
        nc.wait(asyncio.sleep)
        t:close()
      end), LIMIT)
    end)
  end)
end)
