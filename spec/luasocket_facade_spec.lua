-- require "trio_asyncio.luasocket": LuaSocket's TCP API whose blocking
-- calls suspend the current task.  LuaSocket's own socket.http (Debian's
-- lua-socket) runs over it concurrently inside Trio tasks; the receive
-- patterns, timeouts and error shapes are LuaSocket's; it also works in
-- asyncio Tasks and, blocking, outside any run.
local trio = require "trio"
local asyncio = require "asyncio"
local luasocket = require "trio_asyncio.luasocket"

local has_http, http = pcall(require, "socket.http")
local ltn12 = has_http and require "ltn12"

local function run(fn) return trio.run(function() return trio.fail_after(10, fn) end) end

--- A Trio server running handler(stream) per connection while body(port) runs.
local function with_server(handler, body)
  return run(function()
    local result
    trio.open_nursery(function(n)
      local ls = n:start(trio.serve_tcp, handler, 0, { host = "127.0.0.1" })
      result = body(ls[1].socket:getsockname()[2])
      n.cancel_scope:cancel()
    end)
    return result
  end)
end

local function read_request(stream)
  local req = ""
  repeat
    local d = stream:receive_some()
    if d == "" then break end
    req = req .. d
  until req:find("\r\n\r\n", 1, true)
  return req
end

describe("LuaSocket's socket.http over the facade", function()
  it("three requests run concurrently in Trio tasks (each waits 0.4 s in the server)", function()
    if not has_http then
      pending("Debian's lua-socket is not installed (scripts/deps.sh installs it)")
      return
    end
    local got, took = {}, nil
    with_server(function(stream)
      local path = read_request(stream):match("^GET (%S+)")
      trio.sleep(0.4)
      local body = "page " .. path
      stream:send_all(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
        :format(#body, body))
    end, function(port)
      local t0 = trio.current_time()
      trio.open_nursery(function(n)
        for i = 1, 3 do
          n:start_soon(function()
            local chunks = {}
            local ok, code, headers = http.request {
              url = ("http://127.0.0.1:%d/p%d"):format(port, i),
              sink = ltn12.sink.table(chunks),
              create = luasocket.tcp,
            }
            got[i] = { ok, code, headers["content-type"], table.concat(chunks) }
          end)
        end
      end)
      took = trio.current_time() - t0
    end)
    for i = 1, 3 do assert.same({ 1, 200, "text/plain", "page /p" .. i }, got[i]) end
    -- one after another they would take 1.2 s; the margin is for valgrind on a busy machine
    assert.is_true(took < 1.0, "the requests did not overlap: " .. took)
  end)

  it("a POST with a body (ltn12 source) and a chunked response", function()
    if not has_http then
      pending("Debian's lua-socket is not installed (scripts/deps.sh installs it)")
      return
    end
    local seen
    local body = with_server(function(stream)
      local req = read_request(stream)
      local len = tonumber(req:match("[Cc]ontent%-[Ll]ength: (%d+)"))
      local data = req:match("\r\n\r\n(.*)$")
      while #data < len do data = data .. stream:receive_some() end
      seen = data
      stream:send_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    end, function(port)
      local chunks = {}
      local payload = "a=1&b=2"
      local ok, code = http.request {
        url = ("http://127.0.0.1:%d/post"):format(port), method = "POST",
        source = ltn12.source.string(payload), headers = { ["content-length"] = #payload },
        sink = ltn12.sink.table(chunks), create = luasocket.tcp,
      }
      assert.equal(1, ok)
      assert.equal(200, code)
      return table.concat(chunks)
    end)
    assert.equal("a=1&b=2", seen)
    assert.equal("hello world", body)
  end)
end)

describe("the facade's TCP objects", function()
  it("receive patterns: lines without their end, byte counts, prefix, *a, and closed with the partial data", function()
    with_server(function(stream)
      stream:send_all("line one\r\nline two\nabcdefghij tail")
    end, function(port)
      local c = assert(luasocket.connect("127.0.0.1", port))
      assert.equal("tcp{client}", tostring(c):match("^tcp{%a+}"))
      assert.equal("line one", c:receive("*l"))
      assert.equal(">line two", c:receive("*l", ">"))
      assert.equal("abcd", c:receive(4))
      assert.equal("efghij tail", c:receive("*a"))
      assert.same({ nil, "closed", "" }, { c:receive(1) })
      c:close()
      local c2 = assert(luasocket.connect("127.0.0.1", port))
      c2:receive("*l")
      c2:receive("*l")
      assert.same({ nil, "closed", "abcdefghij tail" }, { c2:receive("*l") })
      c2:close()
    end)
  end)

  it("settimeout: a receive that would wait too long gives nil, 'timeout' and the partial data", function()
    with_server(function(stream)
      stream:send_all("par")
      trio.sleep(1)
    end, function(port)
      local c = assert(luasocket.connect("127.0.0.1", port))
      c:settimeout(0.05)
      local t0 = trio.current_time()
      assert.same({ nil, "timeout", "par" }, { c:receive(10) })
      assert.is_true(trio.current_time() - t0 < 0.5)
      c:settimeout(0)
      assert.same({ nil, "timeout", "" }, { c:receive("*l") })
      c:close()
    end)
  end)

  it("send with i and j returns the last index; getpeername/getsockname; options; shutdown", function()
    local got = with_server(function(stream)
      local all = ""
      repeat
        local d = stream:receive_some()
        all = all .. d
      until d == ""
      stream:send_all(all)
    end, function(port)
      local c = assert(luasocket.connect("localhost", port))
      assert.equal(5, c:send("0123456789", 3, 5))
      assert.equal(10, c:send("0123456789", 8))
      local host, p, family = c:getpeername()
      assert.same({ "127.0.0.1", port, "inet" }, { host, p, family })
      assert.equal("127.0.0.1", (c:getsockname()))
      assert.equal(1, c:setoption("tcp-nodelay", true))
      assert.is_true(c:getoption("tcp-nodelay"))
      assert.equal(1, c:shutdown("send"))
      local echoed = c:receive("*a")
      c:close()
      assert.same({ nil, "closed" }, { c:send("x") })
      return echoed
    end)
    assert.equal("234789", got)
  end)

  it("bind, listen, accept: a server of LuaSocket shape inside Trio", function()
    run(function()
      local server = assert(luasocket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local c = assert(server:accept())
          c:send(c:receive("*l"):upper() .. "\n")
          c:close()
        end)
        local client = trio.open_tcp_stream("127.0.0.1", port)
        client:send_all("shout\n")
        assert.equal("SHOUT\n", client:receive_some())
        client:close()
      end)
      server:settimeout(0.02)
      assert.same({ nil, "timeout" }, { server:accept() })
      server:close()
    end)
  end)

  it("errors come as nil, message: refused, unknown host", function()
    run(function()
      assert.same({ nil, "connection refused" }, { luasocket.connect("127.0.0.1", 1) })
      assert.same({ nil, "host not found" }, { luasocket.connect("no-such-host.invalid", 80) })
    end)
  end)

  it("inside an asyncio Task it suspends the Task", function()
    local reply = asyncio.run(function()
      local server = asyncio.start_server(function(r, w)
        asyncio.sleep(0.05)
        w:write("aio " .. r:readline())
        w:close()
      end, "127.0.0.1", 0)
      local port = server.sockets[1]:getsockname()[2]
      local ticks = 0
      local ticker = asyncio.create_task(function()
        while true do
          asyncio.sleep(0.005)
          ticks = ticks + 1
        end
      end)
      local c = assert(luasocket.connect("127.0.0.1", port))
      c:send("hello\n")
      local line = c:receive("*l")
      c:close()
      ticker:cancel()
      server:close()
      assert.is_true(ticks > 0, "the loop did not run while the facade waited")
      return line
    end)
    assert.equal("aio hello", reply)
  end)

  it("outside any run it blocks, as LuaSocket does", function()
    local server = assert(luasocket.bind("127.0.0.1", 0))
    server:settimeout(0.05)
    local t0 = luasocket.gettime()
    assert.same({ nil, "timeout" }, { server:accept() })
    assert.is_true(luasocket.gettime() - t0 >= 0.04)
    local _, port = server:getsockname()
    local c = assert(luasocket.connect("127.0.0.1", port))
    server:settimeout(1)
    local s = assert(server:accept())
    c:send("blocking\n")
    assert.equal("blocking", s:receive())
    s:close()
    c:close()
    server:close()
  end)

  it("dns.toip, sleep, try/protect", function()
    run(function()
      local ip, info = luasocket.dns.toip("localhost")
      assert.equal("127.0.0.1", ip)
      assert.equal("localhost", info.name)
      local t0 = trio.current_time()
      luasocket.sleep(0.02)
      assert.is_true(trio.current_time() - t0 >= 0.015)
      local f = luasocket.protect(function(x)
        luasocket.try(x > 0, "not positive")
        trio.sleep(0) -- may suspend inside protect
        return x * 2
      end)
      assert.equal(4, f(2))
      assert.same({ nil, "not positive" }, { f(-1) })
    end)
  end)
end)
