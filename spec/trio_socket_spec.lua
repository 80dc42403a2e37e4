-- trio.socket: the module (constants, socket, socketpair, from_fd,
-- getaddrinfo, getnameinfo) and the socket methods as the public API
-- (DESIGN 4.4): which calls wait, argument errors naming the function, OS
-- errors, flavor errors.
local trio = require "trio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local tsocket = trio.socket

local function run(fn, ...)
  return trio.run(function(...) return trio.fail_after(5, fn, ...) end, ...)
end

-- Trio's socket calls yield once whether their first try returned or
-- raised: the error comes after a schedule point.
local function raises_after_a_step(fn, ...)
  local me = trio.lowlevel.current_task()
  local steps = 0
  local inst = { before_task_step = function(_, t) if t == me then steps = steps + 1 end end }
  trio.lowlevel.add_instrument(inst)
  local ok, err = pcall(fn, ...)
  trio.lowlevel.remove_instrument(inst)
  assert.is_false(ok)
  assert.is_true(steps > 0, "raised without a schedule point: " .. tostring(err))
  return err
end

describe("trio.socket constants", function()
  it("has the names DESIGN lists, with Linux's values", function()
    local want = {
      AF_INET = 2, AF_INET6 = 10, AF_UNIX = 1, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOL_SOCKET = 1,
      SO_REUSEADDR = 2, IPPROTO_TCP = 6, TCP_NODELAY = 1, SO_LINGER = 13, SO_KEEPALIVE = 9,
      SO_RCVBUF = 8, SO_SNDBUF = 7, SO_REUSEPORT = 15, IPPROTO_IPV6 = 41, IPV6_V6ONLY = 26,
      SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2,
    }
    for k, v in pairs(want) do assert.equal(v, tsocket[k], k) end
  end)
end)

describe("trio.socket sockets", function()
  it("socket() defaults to AF_INET, SOCK_STREAM; arguments are checked", function()
    local s = tsocket.socket()
    assert.equal(tsocket.AF_INET, s.family)
    assert.equal(tsocket.SOCK_STREAM, s.type)
    s:close()
    assert_has(errof(tsocket.socket, "inet"), "bad argument #1 to 'socket' (family: integer expected, got string)")
    assert_has(errof(tsocket.socket, tsocket.AF_INET, 1.5), "bad argument #2 to 'socket'")
  end)

  it("a socket is a <close> variable", function()
    local fd
    do
      local s <close> = tsocket.socket()
      fd = s:fileno()
      assert.is_true(fd >= 0)
    end
    local s2 = tsocket.socket() -- the fd number is free again
    assert.equal(fd, s2:fileno())
    s2:close()
  end)

  it("socketpair gives two connected AF_UNIX stream sockets", function()
    local a, b = tsocket.socketpair()
    assert.equal(tsocket.AF_UNIX, a.family)
    assert.equal(tsocket.SOCK_STREAM, b.type)
    run(function()
      a:send("ping")
      assert.equal("ping", b:recv(10))
      b:send("pong")
      assert.equal("pong", a:recv(10))
    end)
    a:close()
    b:close()
  end)

  it("the waiting methods are Trio-flavored: outside a run they raise naming themselves", function()
    local a, b = tsocket.socketpair()
    assert_has(errof(a.recv, a, 10), "recv: async function called outside trio.run")
    assert_has(errof(a.send, a, "x"), "send: async function called outside trio.run")
    assert_has(errof(a.accept, a), "accept: async function called outside trio.run")
    -- the plain ones work anywhere
    assert.equal("", a:getsockname())
    a:close()
    b:close()
  end)

  it("from asyncio code they raise FlavorError, consume nothing, and leave the socket usable", function()
    local asyncio = require "asyncio"
    local a, b = tsocket.socketpair()
    run(function() a:send("kept") end)
    local e = asyncio.run(function()
      local ok, err = pcall(b.recv, b, 10)
      return not ok and err
    end)
    assert.is_true(errors.FlavorError:is(e))
    assert_has(e.message, "Task got bad yield: trio-flavored recv called from asyncio task")
    assert.equal("kept", run(function() return b:recv(10) end))
    a:close()
    b:close()
  end)

  it("connect resolves a host name first (Trio's rule)", function()
    run(function()
      local srv = tsocket.socket()
      srv:bind { "127.0.0.1", 0 }
      srv:listen()
      local c = tsocket.socket()
      c:connect { "localhost", srv:getsockname()[2] }
      local peer = srv:accept()
      assert.equal("127.0.0.1", c:getpeername()[1])
      peer:close()
      c:close()
      srv:close()
    end)
  end)

  it("connect to an unresolvable name raises gaierror", function()
    local e = run(function()
      local c = tsocket.socket()
      local ok, err = pcall(c.connect, c, { "no-such-host.invalid", 80 })
      c:close()
      return not ok and err
    end)
    assert.is_true(errors.gaierror:is(e), tostring(e))
  end)

  it("setsockopt takes integers, booleans and packed bytes; getsockopt gives integers or bytes", function()
    local s = tsocket.socket()
    s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_RCVBUF, 65536)
    assert.is_true(s:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_RCVBUF) >= 65536)
    s:setsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, true)
    assert.equal(1, s:getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY))
    s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_LINGER, string.pack("ii", 1, 5))
    local on, secs = string.unpack("ii", s:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_LINGER, 8))
    assert.equal(1, on)
    assert.equal(5, secs)
    s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT, 1)
    assert.equal(1, s:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT))
    assert_has(errof(function() s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_RCVBUF, {}) end),
      "bad argument #3 to 'setsockopt' (integer, boolean or string expected, got table)")
    local e = errof(s.setsockopt, s, 9999, 9999, 1)
    assert.is_true(errors.OSError:is(e))
    s:close()
  end)

  it("IPv6: V6ONLY and the {host, port} shape", function()
    if not net.have_ipv6() then
      pending("no IPv6 on this machine")
      return
    end
    run(function()
      local s = tsocket.socket(tsocket.AF_INET6)
      s:setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, 1)
      assert.equal(1, s:getsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY))
      s:bind { "::1", 0 }
      s:listen()
      local port = s:getsockname()[2]
      local c = tsocket.socket(tsocket.AF_INET6)
      c:connect { "::1", port }
      local peer, addr = s:accept()
      assert.equal("::1", addr[1])
      peer:close()
      c:close()
      s:close()
    end)
  end)

  it("shutdown(how) checks how; fileno is -1 after close", function()
    local a, b = tsocket.socketpair()
    assert_has(errof(function() a:shutdown(7) end), "bad argument #1 to 'shutdown' (SHUT_RD, SHUT_WR or SHUT_RDWR expected)")
    a:shutdown(tsocket.SHUT_RDWR)
    a:close()
    assert.equal(-1, a:fileno())
    b:close()
  end)

  it("UDP: a datagram socket with sendto/recvfrom", function()
    run(function()
      local a = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      local b = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      b:bind { "127.0.0.1", 0 }
      for i = 1, 3 do a:sendto("msg" .. i, b:getsockname()) end
      for i = 1, 3 do
        local data, from = b:recvfrom(100)
        assert.equal("msg" .. i, data)
        assert.same({ "127.0.0.1", a:getsockname()[2] }, from) -- a is bound to 0.0.0.0 by its first send
      end
      -- an empty datagram is a datagram
      a:sendto("", b:getsockname())
      assert.equal("", (b:recvfrom(10)))
      a:close()
      b:close()
    end)
  end)

  it("UDP: SO_REUSEADDR is off unless set, so a second socket cannot bind the same port", function()
    local a = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
    assert.equal(0, a:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR))
    a:bind { "127.0.0.1", 0 }
    local b = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
    local e = errof(b.bind, b, a:getsockname())
    assert.is_true(errors.OSError:is(e))
    assert.equal("EADDRINUSE", e.code)
    b:close()
    -- an adopted fd keeps the setting it had
    local c = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
    c:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR, 1)
    local d = tsocket.from_fd(c:fileno(), tsocket.AF_INET, tsocket.SOCK_DGRAM)
    assert.equal(1, d:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR))
    a:close()
    c:close()
    d:close()
  end)

  it("UDP to a closed port on a connected socket: ConnectionRefusedError from recv", function()
    local e = run(function()
      local probe = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      probe:bind { "127.0.0.1", 0 }
      local dead = probe:getsockname()
      probe:close()
      local s = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      s:connect(dead)
      s:send("anyone?")
      local ok, err = pcall(s.recv, s, 10)
      s:close()
      return not ok and err
    end)
    assert.is_true(errors.ConnectionRefusedError:is(e), tostring(e))
  end)
end)

describe("trio.socket calls that fail at once", function()

  it("recv, send, sendto, connect, accept on a closed socket; sendto on TCP; a SocketStream on a closed socket", function()
    run(function()
      local a, b = tsocket.socketpair()
      a:close()
      assert.equal("EBADF", raises_after_a_step(a.recv, a, 10).code)
      assert.equal("EBADF", raises_after_a_step(a.send, a, "x").code)
      local u = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      u:close()
      assert.equal("EBADF", raises_after_a_step(u.sendto, u, "x", { "127.0.0.1", 9 }).code)
      local c = tsocket.socket()
      c:close()
      assert.equal("EBADF", raises_after_a_step(c.connect, c, { "127.0.0.1", 9 }).code)
      assert.equal("EBADF", raises_after_a_step(c.accept, c).code)
      local t = tsocket.socket()
      assert.equal("EISCONN", raises_after_a_step(t.sendto, t, "x", { "127.0.0.1", 9 }).code)
      t:close()
      local s1, s2 = tsocket.socketpair()
      local stream = trio.SocketStream(s1)
      s1:close()
      assert.is_true(errors.ClosedResourceError:is(raises_after_a_step(stream.send_all, stream, "x")))
      assert.is_true(errors.ClosedResourceError:is(raises_after_a_step(stream.receive_some, stream)))
      -- the busy mark of the failed send_all is gone: the next call fails the same way
      assert.is_true(errors.ClosedResourceError:is(raises_after_a_step(stream.send_all, stream, "x")))
      b:close()
      s2:close()
    end)
  end)
end)

describe("trio.socket name resolution", function()
  it("getaddrinfo returns the documented shape", function()
    local list = run(tsocket.getaddrinfo, "127.0.0.1", 8080, { type = tsocket.SOCK_STREAM })
    assert.equal(1, #list)
    local r = list[1]
    assert.same({ "127.0.0.1", 8080 }, r.addr)
    assert.equal(tsocket.AF_INET, r.family)
    assert.equal(tsocket.SOCK_STREAM, r.type)
    assert.equal(tsocket.IPPROTO_TCP, r.proto)
    assert.equal("string", type(r.canonname))
  end)

  it("flags, family and a service name", function()
    local list = run(tsocket.getaddrinfo, nil, "80",
      { family = tsocket.AF_INET, type = tsocket.SOCK_STREAM, flags = tsocket.AI_PASSIVE })
    assert.same({ "0.0.0.0", 80 }, list[1].addr)
    list = run(tsocket.getaddrinfo, "localhost", 0, { family = tsocket.AF_INET, flags = tsocket.AI_CANONNAME })
    assert.equal("127.0.0.1", list[1].addr[1])
  end)

  it("bad argument shapes raise argument errors naming getaddrinfo", function()
    local function err(...)
      local args = table.pack(...)
      return run(function() return errof(tsocket.getaddrinfo, table.unpack(args, 1, args.n)) end)
    end
    assert_has(err(42, 80), "bad argument #1 to 'getaddrinfo' (host string or nil expected, got number)")
    assert_has(err("localhost", {}), "bad argument #2 to 'getaddrinfo' (port integer, service name or nil expected, got table)")
    assert_has(err("localhost", 1.5), "got float")
    assert_has(err("localhost", 70000), "port must be 0-65535")
    assert_has(err("localhost", 80, 5), "bad argument #3 to 'getaddrinfo' (options table expected, got number)")
    assert_has(err("localhost", 80, { family = "inet" }), "option family: integer expected, got string")
    assert_has(err("localhost", 80, { familly = 2 }), "bad argument #3 to 'getaddrinfo' (unknown option 'familly')")
  end)

  it("an unresolvable name raises gaierror with code and message", function()
    local e = run(function()
      local ok, err = pcall(tsocket.getaddrinfo, "no-such-host.invalid", 80)
      return not ok and err
    end)
    assert.is_true(errors.gaierror:is(e))
    assert.equal("EAI_NONAME", e.code)
    assert.equal("number", math.type(e.errno) and "number")
    assert_has(e.message, "getaddrinfo no-such-host.invalid:80")
  end)

  it("a cancelled lookup raises Cancelled and leaves nothing behind", function()
    run(function()
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(function()
        local ok, err = pcall(tsocket.getaddrinfo, "localhost", 80)
        assert.is_false(ok)
        assert.is_true(trio.Cancelled:is(err))
      end)
    end)
  end)

  it("getnameinfo gives the host and the service", function()
    local host, service = run(tsocket.getnameinfo, { "127.0.0.1", 22 },
      tsocket.NI_NUMERICHOST | tsocket.NI_NUMERICSERV)
    assert.equal("127.0.0.1", host)
    assert.equal("22", service)
    assert_has(run(function() return errof(tsocket.getnameinfo, "127.0.0.1") end),
      "bad argument #1 to 'getnameinfo' (address {host, port} expected)")
  end)
end)

describe("trio.socket: Trio's rules found by the ported test_socket.py", function()
  it("getaddrinfo's error for a numeric host comes after a schedule point", function()
    run(function()
      local e = raises_after_a_step(tsocket.getaddrinfo, "::1", "12345", { type = -1 })
      assert.is_true(errors.gaierror:is(e), tostring(e))
      assert.equal("EAI_SOCKTYPE", e.code)
    end)
  end)

  it("getnameinfo takes numeric addresses only, and raises after a schedule point", function()
    run(function()
      for _, host in ipairs { "localhost", "", "example.invalid" } do
        local e = raises_after_a_step(tsocket.getnameinfo, { host, 80 }, 0)
        assert.is_true(errors.gaierror:is(e), tostring(e))
        assert.equal("EAI_NONAME", e.code)
        assert_has(e.message, "getnameinfo " .. host .. ": a numeric address expected")
      end
      assert.equal("::1", (tsocket.getnameinfo({ "::1", 80 }, tsocket.NI_NUMERICHOST)))
    end)
  end)

  it("from_fd takes the family, type and protocol from the fd", function()
    local u = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
    local t = tsocket.from_fd(u:fileno(), tsocket.AF_UNIX, tsocket.SOCK_STREAM)
    assert.equal(tsocket.AF_INET, t.family)
    assert.equal(tsocket.SOCK_DGRAM, t.type)
    assert.equal(tsocket.IPPROTO_UDP, t.proto)
    run(function() -- it works as the datagram socket it is
      t:bind { "127.0.0.1", 0 }
      u:sendto("d", t:getsockname())
      assert.equal("d", (t:recvfrom(10)))
    end)
    t:close()
    u:close()
  end)

  it("connect and sendto resolve a service name as the port", function()
    run(function()
      local r = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      r:bind { "127.0.0.1", 0 }
      local s = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      s:connect { "127.0.0.1", "domain" }
      assert.same({ "127.0.0.1", 53 }, s:getpeername())
      s:close()
      s = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
      s:sendto("p", { "127.0.0.1", tostring(r:getsockname()[2]) })
      assert.equal("p", (r:recvfrom(10)))
      local e = errof(s.connect, s, { "127.0.0.1", "no-such-service" })
      assert.is_true(errors.gaierror:is(e), tostring(e))
      s:close()
      r:close()
    end)
  end)

  it("an AF_INET6 dual-stack socket reaches IPv4 addresses and <broadcast> V4-mapped", function()
    if not net.have_ipv6() then
      pending("no IPv6 on this machine")
      return
    end
    run(function()
      local s = tsocket.socket(tsocket.AF_INET6, tsocket.SOCK_DGRAM)
      s:setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, false)
      s:connect { "127.0.0.1", 9 }
      assert.same({ "::ffff:127.0.0.1", 9 }, s:getpeername())
      s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_BROADCAST, true)
      s:connect { "<broadcast>", 9 } -- connecting again, as POSIX allows
      assert.same({ "::ffff:255.255.255.255", 9 }, s:getpeername())
      s:close()
      s = tsocket.socket(tsocket.AF_INET6, tsocket.SOCK_DGRAM)
      s:setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, true)
      assert.is_true(errors.gaierror:is(errof(s.connect, s, { "127.0.0.1", 9 })))
      -- an address without a port is refused as such, not looked up
      assert_has(errof(s.connect, s, { "127.0.0.1" }), "port number expected, got nil")
      s:close()
    end)
  end)

  it("connect cancelled while the name is looked up closes the socket", function()
    run(function()
      local s = tsocket.socket()
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(function()
        assert.is_true(trio.Cancelled:is(errof(s.connect, s, { "no-such-host.invalid", 80 })))
      end)
      assert.equal(-1, s:fileno())
      -- other lookup errors leave it open
      local s2 = tsocket.socket()
      assert.is_true(errors.gaierror:is(errof(s2.connect, s2, { "127.0.0.1", "no-such-service" })))
      assert.is_true(s2:fileno() >= 0)
      s2:close()
    end)
  end)
end)
