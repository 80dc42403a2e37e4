-- Ported from Trio's src/trio/_tests/test_highlevel_open_tcp_listeners.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: Trio scripts its failure cases with a fake socket factory
-- and a fake hostname resolver.  trio.socket has no
-- set_custom_socket_factory / set_custom_hostname_resolver and
-- trio.SocketListener takes real sockets only (docs/SEMANTICS.md), so, as
-- in trio_test_highlevel_open_tcp_stream_spec.lua, trio.socket's `socket`
-- and `getaddrinfo` are replaced for the call: the factory makes real
-- sockets (or raises the scripted OSError for a family), the resolver
-- returns real loopback addresses (127.0.0.1, 127.0.0.2, ... or ::1)
-- where Trio's returns made-up hosts, and a spy on the sockets' `listen`
-- method notes the backlog and raises the scripted error for the poisoned
-- socket (Trio's FakeSocket.listen).  Trio's port 80 is port 0 here (the
-- binds are real).  A socket is closed when its fileno() is -1.  aclose()
-- is close().  Python's TypeError for a bad argument is a "bad argument"
-- error.
--
-- Ported: test_open_tcp_listeners_basic,
-- test_open_tcp_listeners_specific_port_specific_host,
-- test_open_tcp_listeners_rebind (its stdlib probe socket is a
-- trio.socket socket), test_serve_tcp,
-- test_open_tcp_listeners_socket_fails_not_afnosupport.
-- Adapted: test_open_tcp_listeners_ipv6_v6only (the refused connect's
-- message is ours, "connect 127.0.0.1:PORT: connection refused"; the class
-- is checked), test_open_tcp_listeners_multiple_host_cleanup_on_error,
-- test_open_tcp_listeners_backlog (the spy on listen, see above; on
-- 127.0.0.1, where Trio binds the fake wildcard),
-- test_open_tcp_listeners_port_checking (None, b"80" and "http" are nil,
-- the string "80" and "http"),
-- test_open_tcp_listeners_some_address_families_unavailable (the attempts'
-- errors are the error's field `errors`, where Python chains an
-- ExceptionGroup as __cause__: docs/SEMANTICS.md "open_tcp_listeners
-- errors"), test_open_tcp_listeners_backlog_float_error
-- (our message: "backlog must be an integer or nil, got 2.18").
local trio = require "trio"
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"
local net = require "support_net"

local tsocket = trio.socket
local OSError = trio.OSError
local sock_methods = core.metatable("trio_asyncio.socket").__methods

local FakeOSError = errors.class("test.FakeOSError", OSError)
local EAFNOSUPPORT, EINVAL = 97, 22 -- Linux's numbers

local function same_addr(a, b)
  return a[1] == b[1] and a[2] == b[2]
end

local with_replaced = H.with_replaced

--- Trio's FakeSocketFactory on real sockets: opts.poison_after (the
-- socket made at that count has its listen fail with FakeOSError),
-- opts.raise_on_family (family -> errno: socket() of that family raises
-- an OSError "nope").  fsf.sockets lists the sockets made, fsf.backlog
-- maps each to the backlog its listen got.
local function FakeSocketFactory(poison_after, raise_on_family)
  local fsf = { sockets = {}, backlog = {}, poisoned = {}, poison_after = poison_after }
  local codes = { [EAFNOSUPPORT] = "EAFNOSUPPORT", [EINVAL] = "EINVAL" }
  local real_socket = tsocket.socket
  function fsf.socket(family, type_, proto)
    local errno = (raise_on_family or {})[family]
    if errno then
      error(OSError { message = "nope", errno = errno, code = codes[errno] }, 0)
    end
    local sock = real_socket(family, type_, proto)
    fsf.poison_after = fsf.poison_after - 1
    if fsf.poison_after == 0 then fsf.poisoned[sock] = true end
    fsf.sockets[#fsf.sockets + 1] = sock
    return sock
  end
  function fsf.listen(sock, backlog)
    fsf.backlog[sock] = backlog
    if fsf.poisoned[sock] then error(FakeOSError("whoops"), 0) end
    return fsf.real_listen(sock, backlog)
  end
  fsf.real_listen = sock_methods.listen
  return fsf
end

--- Trio's FakeHostnameResolver: the targets of `pairs` ({family, host}),
-- with the port asked for.
local function FakeHostnameResolver(pairs_)
  return function(_, port)
    assert(math.type(port) == "integer")
    local list = {}
    for i, p in ipairs(pairs_) do
      list[i] = { family = p[1], type = tsocket.SOCK_STREAM, proto = 0, canonname = "", addr = { p[2], port } }
    end
    return list
  end
end

--- fn() with the factory (and the resolver, if given) in place.
local function with_fakes(fsf, resolver, fn)
  return with_replaced(tsocket, "socket", fsf.socket, function()
    return with_replaced(sock_methods, "listen", fsf.listen, function()
      if resolver == nil then return fn() end
      return with_replaced(tsocket, "getaddrinfo", resolver, fn)
    end)
  end)
end

local function close_all(list)
  for _, r in ipairs(list) do r:close() end
end

local ipv6 = net.have_ipv6()
local LOOPBACK = { [tsocket.AF_INET] = "127.0.0.1", [tsocket.AF_INET6] = "::1" }

describe("test_highlevel_open_tcp_listeners.py", function()
  it("test_open_tcp_listeners_basic", function()
    H.run(function()
      local listeners = trio.open_tcp_listeners(0)
      assert.is_true(#listeners >= 1)
      for _, obj in ipairs(listeners) do
        assert.equal("trio.SocketListener", getmetatable(obj).__name)
        -- binds to the wildcard address by default
        assert.is_true(obj.socket.family == tsocket.AF_INET or obj.socket.family == tsocket.AF_INET6)
        local host = obj.socket:getsockname()[1]
        assert.is_true(host == "0.0.0.0" or host == "::", host)
      end
      local listener = listeners[1]
      -- the backlog is at least 2
      local c1 = trio.testing.open_stream_to_socket_listener(listener)
      local c2 = trio.testing.open_stream_to_socket_listener(listener)
      local s1 = trio.fail_after(5, listener.accept, listener)
      local s2 = trio.fail_after(5, listener.accept, listener)
      -- which client is connected to which server stream is not known
      s1:send_all("x")
      s2:send_all("x")
      trio.fail_after(5, function()
        assert.equal("x", c1:receive_some(1))
        assert.equal("x", c2:receive_some(1))
      end)
      close_all { c1, c2, s1, s2 }
      close_all(listeners)
    end)
  end)

  it("test_open_tcp_listeners_specific_port_specific_host", function()
    H.run(function()
      -- pick a port
      local sock = tsocket.socket()
      sock:bind { "127.0.0.1", 0 }
      local addr = sock:getsockname()
      sock:close()
      local listeners = trio.open_tcp_listeners(addr[2], { host = addr[1] })
      assert.equal(1, #listeners)
      local listener <close> = listeners[1]
      assert.same(addr, listener.socket:getsockname())
    end)
  end)

  it("test_open_tcp_listeners_ipv6_v6only", function()
    if not ipv6 then pending("no IPv6 loopback on this host") return end
    H.run(function()
      local listeners = trio.open_tcp_listeners(0, { host = "::1" })
      assert.equal(1, #listeners)
      local ipv6_listener <close> = listeners[1]
      local port = ipv6_listener.socket:getsockname()[2]
      -- IPV6_V6ONLY: the IPv6 listener does not take IPv4 connections
      local e = H.raises(errors.ConnectionRefusedError, function()
        trio.fail_after(5, trio.open_tcp_stream, "127.0.0.1", port)
      end)
      assert.truthy(e.message:find(("connect 127.0.0.1:%d: connection refused"):format(port), 1, true), e.message)
    end)
  end)

  it("test_open_tcp_listeners_rebind", function()
    H.run(function()
      local l1 = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local sockaddr1 = l1.socket:getsockname()

      -- rebinding while it is still there fails, even with SO_REUSEADDR
      do
        local probe <close> = tsocket.socket()
        probe:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR, 1)
        local e = H.raises(OSError, probe.bind, probe, sockaddr1)
        assert.equal("EADDRINUSE", e.code)
      end

      -- connections in various states do not keep a second listener from
      -- binding once the first is closed
      local c_established = trio.testing.open_stream_to_socket_listener(l1)
      local s_established = trio.fail_after(5, l1.accept, l1)
      local c_time_wait = trio.testing.open_stream_to_socket_listener(l1)
      local s_time_wait = trio.fail_after(5, l1.accept, l1)
      -- a close on the server side leaves its socket in TIME_WAIT
      s_time_wait:close()

      l1:close()
      local l2 = trio.open_tcp_listeners(sockaddr1[2], { host = "127.0.0.1" })[1]
      local sockaddr2 = l2.socket:getsockname()

      assert.is_true(same_addr(sockaddr1, sockaddr2))
      assert.is_true(same_addr(sockaddr2, s_established.socket:getsockname()))
      assert.is_true(same_addr(sockaddr2, c_time_wait.socket:getpeername()))
      close_all { l1, l2, c_established, s_established, c_time_wait, s_time_wait }
    end)
  end)

  it("test_open_tcp_listeners_multiple_host_cleanup_on_error", function()
    -- one of several hosts failing: the others' sockets are closed before
    -- the error comes out
    local fsf = FakeSocketFactory(3)
    local resolver = FakeHostnameResolver {
      { tsocket.AF_INET, "127.0.0.1" }, { tsocket.AF_INET, "127.0.0.2" }, { tsocket.AF_INET, "127.0.0.3" },
    }
    H.run(function()
      with_fakes(fsf, resolver, function()
        H.raises(FakeOSError, trio.open_tcp_listeners, 0, { host = "example.org" })
      end)
    end)
    assert.equal(3, #fsf.sockets)
    for _, sock in ipairs(fsf.sockets) do assert.equal(-1, sock:fileno()) end
  end)

  it("test_open_tcp_listeners_port_checking", function()
    H.run(function()
      for _, host in ipairs { "127.0.0.1", false } do
        local opts = { host = host or nil }
        H.raises(H.msg("bad argument #1 to 'open_tcp_listeners'"), trio.open_tcp_listeners, nil, opts)
        H.raises(H.msg("bad argument #1 to 'open_tcp_listeners'"), trio.open_tcp_listeners, "80", opts)
        H.raises(H.msg("bad argument #1 to 'open_tcp_listeners'"), trio.open_tcp_listeners, "http", opts)
      end
    end)
  end)

  it("test_serve_tcp", function()
    H.run(function()
      local function handler(stream) stream:send_all("x") end
      trio.open_nursery(function(nursery)
        local listeners = nursery:start(trio.serve_tcp, handler, 0)
        assert.equal("table", type(listeners))
        assert.is_true(#listeners >= 1)
        local stream <close> = trio.testing.open_stream_to_socket_listener(listeners[1])
        assert.equal("x", trio.fail_after(5, stream.receive_some, stream, 1))
        nursery.cancel_scope:cancel()
      end)
    end)
  end)

  local AF_INET, AF_INET6 = tsocket.AF_INET, tsocket.AF_INET6
  local family_sets = { { AF_INET }, { AF_INET6 }, { AF_INET, AF_INET6 } }
  local family_names = { [AF_INET] = "AF_INET", [AF_INET6] = "AF_INET6" }
  local function set_name(set)
    local names = {}
    for i, f in ipairs(set) do names[i] = family_names[f] end
    return "{" .. table.concat(names, ", ") .. "}"
  end
  for _, try_families in ipairs(family_sets) do
    for _, fail_families in ipairs(family_sets) do
      it(("test_open_tcp_listeners_some_address_families_unavailable[%s-%s]"):format(
        set_name(fail_families), set_name(try_families)), function()
        local raise_on_family, pairs_, should_succeed = {}, {}, {}
        for _, f in ipairs(fail_families) do raise_on_family[f] = EAFNOSUPPORT end
        for _, f in ipairs(try_families) do
          pairs_[#pairs_ + 1] = { f, LOOPBACK[f] }
          if not raise_on_family[f] then should_succeed[f] = true end
        end
        if should_succeed[AF_INET6] and not ipv6 then pending("no IPv6 loopback on this host") return end
        local fsf = FakeSocketFactory(10, raise_on_family)
        H.run(function()
          with_fakes(fsf, FakeHostnameResolver(pairs_), function()
            if next(should_succeed) == nil then
              local e = H.raises(OSError, trio.open_tcp_listeners, 0, { host = "example.org" })
              assert.truthy(e.message:find("This system doesn't support", 1, true), e.message)
              -- the attempts' errors ride along, whatever their number
              assert.equal(#try_families, #e.errors)
              for _, sub in ipairs(e.errors) do assert.truthy(tostring(sub):find("nope", 1, true)) end
            else
              local listeners = trio.open_tcp_listeners(0)
              for _, listener in ipairs(listeners) do
                assert.is_true(should_succeed[listener.socket.family])
                should_succeed[listener.socket.family] = nil
              end
              close_all(listeners)
              assert.is_nil(next(should_succeed))
            end
          end)
        end)
      end)
    end
  end

  it("test_open_tcp_listeners_socket_fails_not_afnosupport", function()
    local fsf = FakeSocketFactory(10, { [AF_INET] = EAFNOSUPPORT, [AF_INET6] = EINVAL })
    local resolver = FakeHostnameResolver { { AF_INET, "127.0.0.1" }, { AF_INET6, "::1" } }
    H.run(function()
      with_fakes(fsf, resolver, function()
        local e = H.raises(OSError, trio.open_tcp_listeners, 0, { host = "example.org" })
        assert.equal(EINVAL, e.errno)
        assert.is_nil(e.cause)
        assert.truthy(tostring(e):find("nope", 1, true))
      end)
    end)
  end)

  -- Trio checks that the backlog is passed through (measuring a real
  -- queue is fragile)
  it("test_open_tcp_listeners_backlog", function()
    local fsf = FakeSocketFactory(99)
    H.run(function()
      with_fakes(fsf, nil, function()
        for _, case in ipairs { { nil, 0xFFFF }, { 99999999, 0xFFFF }, { 10, 10 }, { 1, 1 } } do
          local given, expected = case[1], case[2]
          local listeners = trio.open_tcp_listeners(0, { host = "127.0.0.1", backlog = given })
          assert.is_true(#listeners >= 1)
          for _, listener in ipairs(listeners) do
            assert.equal(expected, fsf.backlog[listener.socket])
          end
          close_all(listeners)
        end
      end)
    end)
  end)

  it("test_open_tcp_listeners_backlog_float_error", function()
    local fsf = FakeSocketFactory(99)
    H.run(function()
      with_fakes(fsf, nil, function()
        for _, should_fail in ipairs { 0.0, 2.18, 3.15, 9.75 } do
          H.raises(H.msg(("backlog must be an integer or nil, got %s"):format(should_fail)),
            trio.open_tcp_listeners, 0, { backlog = should_fail })
        end
      end)
    end)
    assert.equal(0, #fsf.sockets)
  end)
end)
