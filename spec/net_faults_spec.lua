-- Bad input and faults across every networking entry point of both
-- flavors: bad host/port/address shapes are argument errors naming the
-- function, unresolvable names are gaierror, refused connections are
-- ConnectionRefusedError, and nothing (fd, handle) is left behind by
-- connections that open, fail or get cancelled.
local trio = require "trio"
local asyncio = require "asyncio"
local errors = require "trio.errors"
local core = require "trio_asyncio.core"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local function run_trio(fn) return trio.run(function() return trio.fail_after(10, fn) end) end
local function run_aio(fn)
  return asyncio.run(function() return asyncio.wait_for(asyncio.create_task(fn), 10) end)
end

local function handler() end

describe("bad host and port shapes are argument errors naming the function", function()
  it("Trio entry points", function()
    run_trio(function()
      local cases = {
        { "open_tcp_stream", trio.open_tcp_stream, { nil, 80 } },
        { "open_tcp_stream", trio.open_tcp_stream, { "localhost", nil } },
        { "open_tcp_stream", trio.open_tcp_stream, { "localhost", 65536 } },
        { "open_tcp_stream", trio.open_tcp_stream, { { "localhost" }, 80 } },
        { "open_tcp_listeners", trio.open_tcp_listeners, { -5 } },
        { "open_tcp_listeners", trio.open_tcp_listeners, { 0, { host = 1 } } },
        { "serve_tcp", trio.serve_tcp, { handler, "http" } },
        { "serve_tcp", trio.serve_tcp, { 42, 0 } },
        { "open_unix_socket", trio.open_unix_socket, { 42 } },
        { "open_unix_listener", trio.open_unix_listener, { nil } },
        { "serve_unix", trio.serve_unix, { handler, {} } },
        { "getaddrinfo", trio.socket.getaddrinfo, { true, 80 } },
        { "getnameinfo", trio.socket.getnameinfo, { { 1, 2 } } },
      }
      for _, c in ipairs(cases) do
        local e = errof(c[2], table.unpack(c[3], 1, 2))
        assert_has(e, "bad argument #")
        assert_has(e, "to '" .. c[1] .. "'")
      end
      local s = trio.socket.socket()
      for _, addr in ipairs { "127.0.0.1:80", { "127.0.0.1" }, { "127.0.0.1", -1 }, 80 } do
        assert_has(errof(function() s:bind(addr) end), "bad argument #1 to 'bind'")
        assert_has(errof(function() s:connect(addr) end), "bad argument #1 to 'connect'")
      end
      -- a string port is a service name for connect (Trio resolves it), not for bind (numeric only)
      assert_has(errof(function() s:bind { "127.0.0.1", "80" } end), "bad argument #1 to 'bind'")
      s:close()
    end)
  end)

  it("asyncio entry points", function()
    run_aio(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      local cases = {
        { "open_connection", asyncio.open_connection, { "localhost", 80, 5 } },
        { "open_connection", asyncio.open_connection, { 42, 80 } },
        { "open_connection", asyncio.open_connection, { "localhost", 1.5 } },
        { "start_server", asyncio.start_server, { handler, {}, 0 } },
        { "start_server", asyncio.start_server, { handler, "127.0.0.1", 99999 } },
        { "open_unix_connection", asyncio.open_unix_connection, { {} } },
        { "create_connection", function(...) return loop:create_connection(...) end, { f, nil, 80 } },
        { "create_connection", function(...) return loop:create_connection(...) end, { f, "localhost", -1 } },
        { "create_server", function(...) return loop:create_server(...) end, { f, 5, 0 } },
        { "start_server", asyncio.start_server, { 5, "127.0.0.1", 0 } },
        { "start_unix_server", asyncio.start_unix_server, { handler, "" } },
        { "create_unix_connection", function(...) return loop:create_unix_connection(...) end, { f, 7 } },
        { "getaddrinfo", function(...) return loop:getaddrinfo(...) end, { "localhost", 80, { type = "x" } } },
        { "sock_connect", function(...) return loop:sock_connect(...) end, { "sock", { "127.0.0.1", 80 } } },
      }
      for _, c in ipairs(cases) do
        local e = errof(c[2], table.unpack(c[3], 1, 3))
        assert_has(e, "bad argument #")
        assert_has(e, "to '" .. c[1] .. "'")
      end
      local s = asyncio.socket.socket()
      assert_has(errof(loop.sock_connect, loop, s, { "127.0.0.1", "80" }), "bad argument #1 to 'connect'")
      s:close()
    end)
  end)
end)

describe("unresolvable names and refused connections", function()
  it("raise gaierror / ConnectionRefusedError in both flavors", function()
    run_trio(function()
      assert.is_true(errors.gaierror:is(errof(trio.open_tcp_stream, "no-such-host.invalid", 80)))
      assert.is_true(errors.gaierror:is(errof(trio.open_tcp_listeners, 0, { host = "no-such-host.invalid" })))
      assert.is_true(errors.ConnectionRefusedError:is(errof(trio.open_tcp_stream, "127.0.0.1", 1)))
    end)
    run_aio(function()
      assert.is_true(errors.gaierror:is(errof(asyncio.open_connection, "no-such-host.invalid", 80)))
      assert.is_true(errors.gaierror:is(errof(asyncio.start_server, handler, "no-such-host.invalid", 0)))
      assert.is_true(errors.ConnectionRefusedError:is(errof(asyncio.open_connection, "127.0.0.1", 1)))
    end)
  end)
end)

describe("no fd or handle left behind", function()
  it("connections that succeed, fail or get cancelled, 50 times over, in both flavors", function()
    local before = net.nfds()
    run_trio(function()
      trio.open_nursery(function(n)
        local ls = n:start(trio.serve_tcp, function(s) s:send_all("x") end, 0, { host = "127.0.0.1" })
        local port = ls[1].socket:getsockname()[2]
        local hole, close_hole = net.blackhole()
        for _ = 1, 50 do
          local s = trio.open_tcp_stream("127.0.0.1", port)
          assert.equal("x", s:receive_some())
          s:close()
          errof(trio.open_tcp_stream, "127.0.0.1", 1)
          trio.move_on_after(0.001, trio.open_tcp_stream, hole[1], hole[2])
        end
        close_hole()
        n.cancel_scope:cancel()
      end)
    end)
    run_aio(function()
      local srv = asyncio.start_server(function(_, w)
        w:write("y")
        w:close()
      end, "127.0.0.1", 0)
      local port = srv.sockets[1]:getsockname()[2]
      for _ = 1, 50 do
        local r, w = asyncio.open_connection("127.0.0.1", port)
        assert.equal("y", r:read())
        w:close()
        errof(asyncio.open_connection, "127.0.0.1", 1)
      end
      srv:close()
      srv:wait_closed()
    end)
    collectgarbage()
    assert.equal(before, net.nfds())
    assert.equal(0, core.debug_state().handles)
  end)

  it("a stream closed while a task sends to a peer that does not read: the sender gets ClosedResourceError", function()
    run_trio(function()
      local a, b = trio.socket.socketpair()
      local sa = trio.SocketStream(a)
      local e
      trio.open_nursery(function(n)
        n:start_soon(function()
          local ok, err = pcall(sa.send_all, sa, ("z"):rep(16 << 20))
          e = not ok and err
        end)
        trio.testing.wait_all_tasks_blocked()
        sa:close()
      end)
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      b:close()
    end)
  end)
end)
