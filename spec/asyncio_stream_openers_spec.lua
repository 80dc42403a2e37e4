-- asyncio's stream openers and the loop methods under them: errors name the
-- function the user called (open_connection, start_server and the Unix
-- variants check their arguments under their own names), the Unix-domain
-- methods reject the TCP-only options as CPython does (TypeError for an
-- unexpected keyword), a StreamWriter's own write/drain fields, and the
-- StreamReader methods given something that is not a reader.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local run = net.aio_run

-- "ConnectionResetError" for such an error, else the error as a string.
local function errors_class(err)
  return errors.ConnectionResetError:is(err) and "ConnectionResetError" or tostring(err)
end

local function tmp_path()
  local path = os.tmpname()
  os.remove(path)
  return path
end

-- A server whose connection's handler reads n bytes into the future it
-- returns, then closes: server, port, future.
local function receiving_server(n)
  local got = asyncio.get_running_loop():create_future()
  local server = asyncio.start_server(function(reader, writer)
    got:set_result(reader:readexactly(n))
    writer:close()
  end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()[2], got
end

describe("asyncio stream openers", function()
  it("open_connection's argument errors name open_connection and its argument numbers", function()
    run(function()
      local e = errof(asyncio.open_connection, "127.0.0.1", 1, { bogus = 1 })
      assert_has(e, "bad argument #3 to 'open_connection' (unknown option 'bogus' (open_connection takes ")
      assert.is_nil(tostring(e):find("create_connection", 1, true), tostring(e))
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { local_addr = 5 }),
        "bad argument #3 to 'open_connection' (local_addr must be {host, port})")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { happy_eyeballs_delay = -1 }),
        "bad argument #3 to 'open_connection' (happy_eyeballs_delay must be a non-negative number)")
      assert_has(errof(asyncio.open_connection, 42, 1), "bad argument #1 to 'open_connection' (host string expected")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 70000),
        "bad argument #2 to 'open_connection' (port must be 0-65535)")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { limit = 0 }),
        "bad argument #3 to 'open_connection' (limit must be a positive integer)")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { server_hostname = "x" }),
        "open_connection: server_hostname is only meaningful with ssl")
    end)
  end)

  it("open_connection takes sock= instead of host and port, as CPython's", function()
    run(function()
      local server, port, got = receiving_server(5)
      local sock = asyncio.socket.socket()
      asyncio.get_running_loop():sock_connect(sock, { "127.0.0.1", port })
      local reader, writer = asyncio.open_connection(nil, nil, { sock = sock })
      writer:write("hello")
      writer:drain()
      assert.equal("hello", got:await())
      assert.equal("", reader:read(10))
      writer:close()
      local e = errof(asyncio.open_connection, "127.0.0.1", port, { sock = asyncio.socket.socket() })
      assert_has(e, "open_connection: host/port and sock can not be specified at the same time")
      server:close()
      server:wait_closed()
    end)
  end)

  it("start_server's errors name start_server", function()
    run(function()
      local cb = function() end
      assert_has(errof(asyncio.start_server, cb, "127.0.0.1", 0, { local_addr = { "127.0.0.1", 0 } }),
        "bad argument #4 to 'start_server' (unknown option 'local_addr' (start_server takes ")
      assert_has(errof(asyncio.start_server, cb, "127.0.0.1", 0, { backlog = -1 }),
        "bad argument #4 to 'start_server' (backlog must be a non-negative integer)")
      assert_has(errof(asyncio.start_server, cb, 42, 0), "bad argument #2 to 'start_server' (host string or nil")
      assert_has(errof(asyncio.start_server, cb), "start_server: neither host/port nor sock were specified")
    end)
  end)

  it("the Unix openers' errors name them", function()
    run(function()
      local cb = function() end
      assert_has(errof(asyncio.open_unix_connection, tmp_path(), { local_addr = { "127.0.0.1", 0 } }),
        "bad argument #2 to 'open_unix_connection' (unknown option 'local_addr' (open_unix_connection takes "
          .. "server_hostname, sock, ssl, ssl_handshake_timeout))")
      assert_has(errof(asyncio.open_unix_connection, 42), "bad argument #1 to 'open_unix_connection'")
      assert_has(errof(asyncio.start_unix_server, cb, tmp_path(), { reuse_port = true }),
        "bad argument #3 to 'start_unix_server' (unknown option 'reuse_port' (start_unix_server takes ")
      assert_has(errof(asyncio.start_unix_server, cb, tmp_path(), { backlog = "x" }),
        "bad argument #3 to 'start_unix_server' (backlog must be a non-negative integer)")
    end)
  end)

  it("the Unix-domain loop methods reject TCP-only options", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local factory = function() return {} end
      for _, opt in ipairs { "local_addr", "happy_eyeballs_delay", "interleave", "all_errors", "family",
        "proto", "flags", "reuse_port", "limit" } do
        assert_has(errof(loop.create_unix_connection, loop, factory, tmp_path(), { [opt] = 1 }),
          "bad argument #3 to 'create_unix_connection' (unknown option '" .. opt .. "'")
      end
      for _, opt in ipairs { "reuse_port", "reuse_address", "family", "flags", "local_addr", "limit" } do
        assert_has(errof(loop.create_unix_server, loop, factory, tmp_path(), { [opt] = 1 }),
          "bad argument #3 to 'create_unix_server' (unknown option '" .. opt .. "'")
      end
      assert_has(errof(loop.create_unix_server, loop, factory, tmp_path(), { backlog = -1 }),
        "bad argument #3 to 'create_unix_server' (backlog must be a non-negative integer)")
      -- what they take still works: a server with backlog= and start_serving=false
      local path = tmp_path()
      local srv = loop:create_unix_server(factory, path, { backlog = 5, start_serving = false })
      assert.is_false(srv:is_serving())
      srv:close()
      srv:wait_closed()
      -- limit= belongs to the stream openers, not to the loop methods
      assert_has(errof(loop.create_connection, loop, factory, "127.0.0.1", 1, { limit = 10 }),
        "bad argument #4 to 'create_connection' (unknown option 'limit'")
      assert_has(errof(loop.create_server, loop, factory, "127.0.0.1", 0, { limit = 10 }),
        "bad argument #4 to 'create_server' (unknown option 'limit'")
    end)
  end)

  it("a StreamWriter's write and drain are its own fields; a writer whose transport is replaced still writes",
    function()
    run(function()
      local server, port, got = receiving_server(4)
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      assert.equal(asyncio.StreamWriter(writer.transport, writer._protocol, reader).write, rawget(writer, "write"))
      assert.is_function(rawget(writer, "drain"))
      -- a transport that is not the bound one goes through its own write
      local log = {}
      local real = writer.transport
      writer.transport = setmetatable({ write = function(_, d) log[#log + 1] = d real:write(d) end,
        is_closing = function() return false end }, { __index = real })
      writer:write("ab")
      writer:drain()
      writer.transport = real
      writer:write("cd")
      writer:drain()
      assert.same({ "ab" }, log)
      assert.equal("abcd", got:await())
      writer:close()
      server:close()
      server:wait_closed()
    end)
  end)

  it("a StreamReaderProtocol holds only what each connection sets; drains wait and wake as before", function()
    run(function()
      local server, port = receiving_server(1)
      local _, writer = asyncio.open_connection("127.0.0.1", port)
      local protocol = writer._protocol
      assert.is_false(protocol._paused)
      assert.is_false(protocol._connection_lost)
      assert.is_nil(rawget(protocol, "_paused"))
      assert.is_nil(rawget(protocol, "_drain_waiters"))
      -- paused: two drains wait on the waiter list the first one made
      protocol:pause_writing()
      local outcomes = {}
      local tasks = {}
      for i = 1, 2 do
        tasks[i] = asyncio.create_task(function()
          local ok, err = pcall(writer.drain, writer)
          outcomes[i] = ok and "ok" or errors_class(err)
        end)
      end
      asyncio.sleep(0.01)
      assert.same({}, outcomes)
      assert.equal(2, #rawget(protocol, "_drain_waiters"))
      protocol:resume_writing()
      for i = 1, 2 do tasks[i]:await() end
      assert.same({ "ok", "ok" }, outcomes)
      assert.is_nil(rawget(protocol, "_drain_waiters"))
      -- a drain cancelled while waiting leaves the list; resuming skips it
      protocol:pause_writing()
      local cancelled = asyncio.create_task(function() writer:drain() end)
      asyncio.sleep(0.01)
      cancelled:cancel()
      assert.is_false(pcall(cancelled.await, cancelled))
      assert.is_true(cancelled:cancelled())
      protocol:resume_writing()
      assert.is_nil(rawget(protocol, "_drain_waiters"))
      writer:drain()
      -- paused again, then lost without an error: the waiting drain returns
      -- (as asyncio's), a later one raises
      protocol:pause_writing()
      local lost = asyncio.create_task(function()
        local ok, err = pcall(writer.drain, writer)
        return ok and "ok" or errors_class(err)
      end)
      asyncio.sleep(0.01)
      writer.transport:abort()
      assert.equal("ok", lost:await())
      assert.is_true(protocol._connection_lost)
      assert.is_false(protocol._paused)
      assert.equal("ConnectionResetError", errors_class(select(2, pcall(writer.drain, writer))))
      server:close()
      server:wait_closed()
    end)
  end)

  it("a StreamReader collected with bytes buffered frees them; one collected while a read waits ends cleanly",
    function()
    run(function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local reader = asyncio.StreamReader()
        reader:feed_data("ab")
        reader:feed_data("cd") -- two feeds: the bytes move to a malloc'ed buffer
        assert.equal("a", reader:read(1))
        weak[1] = reader
      end
      local waiting = asyncio.create_task(function()
        local reader = asyncio.StreamReader()
        weak[2] = reader
        return reader:read(10)
      end)
      asyncio.sleep(0)
      waiting:cancel()
      assert.is_false(pcall(waiting.await, waiting))
      waiting = nil -- luacheck: ignore
      for _ = 1, 3 do collectgarbage() end
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
    end)
  end)

  it("StreamReader methods given something else raise an argument error", function()
    run(function()
      local reader = asyncio.StreamReader()
      local f = io.tmpfile()
      for _, name in ipairs { "read", "readexactly", "readuntil", "feed_data", "feed_eof", "at_eof" } do
        for _, bad in ipairs { f, {}, "x", 1 } do
          local got = type(bad) == "userdata" and getmetatable(bad).__name or type(bad) -- FILE*, as Lua says
          assert_has(errof(reader[name], bad, 1),
            "bad argument #1 to '" .. name .. "' (asyncio.StreamReader expected, got " .. got .. ")")
        end
      end
      f:close()
      reader:feed_data("xyz")
      assert.equal("xyz", reader:read(5))
    end)
  end)
end)
