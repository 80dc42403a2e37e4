-- Ported from Trio's src/trio/_tests/test_highlevel_open_tcp_stream.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: Trio drives its Happy Eyeballs tests with a fake hostname
-- resolver and fake sockets whose connects take scripted times.
-- trio.socket has neither set_custom_hostname_resolver nor
-- set_custom_socket_factory (docs/SEMANTICS.md), so here trio.socket's
-- getaddrinfo is replaced for the call by one returning real loopback
-- targets of five kinds:
--   refused       a bound port that does not listen: the connect fails at once
--   accepts       a listener: the connect succeeds at once
--   hangs         a listener with a full accept queue (support_net's
--                 blackhole): the connect never completes
--   slow          a full listener that makes room at 0.3 s: the connect
--                 succeeds at the client's first SYN retransmission (~1 s)
--   slow_refused  a full listener closed at 0.3 s: that retransmission is
--                 refused (~1 s)
-- The scripted connect times become these kinds.  As in Trio, the
-- scenarios run on an autojump clock, and the times are exact, except
-- those with a slow target: the kernel's retransmission takes real time,
-- so they run on the real clock and their times get a tolerance.
-- When each attempt started is read off the targets: a scenario notes when
-- open_tcp_stream first reads a target's `addr`, which it does as it
-- connects to it (Trio's scenario notes its fake socket's connect).  Trio's
-- Scenario.check (every socket but the winner closed) is the process's
-- descriptor count, back where it was once the scenario is torn down.
-- aclose() is close().
--
-- Ported: test_open_tcp_stream_real_socket_smoketest,
-- test_open_tcp_stream_input_validation, test_no_hosts.
-- Adapted: test_reorder_for_rfc_6555_section_5_4 and test_format_host_port
-- (private helpers here: checked through the order of the connects and the
-- error messages; bytes hosts and service-name ports do not exist in the
-- Lua API), test_local_address_real (its "::" case gets the address's own
-- error: one address, docs/SEMANTICS.md "open_tcp_stream errors"), and the
-- scenario tests test_one_host_{quick,slow}_{success,fail},
-- test_basic_fallthrough (also test_none_default: in Lua, None is leaving
-- the option out), test_early_success, test_custom_delay,
-- test_custom_errors_expedite, test_all_fail, test_multi_success,
-- test_does_reorder, test_handles_no_ipv4, test_handles_no_ipv6 (a family
-- the socket factory refuses: trio.socket.socket is replaced for the call
-- by one raising an OSError for that family) and test_cancel.
-- Dropped: test_close_all (a private helper; closing the losers is
-- checked by every scenario) and test_one_host_failed_after_connect (a
-- fake socket whose setsockopt raises a non-OSError when SocketStream
-- wraps it: a real socket cannot).
local trio = require "trio"
local H = require "conformance.trio_helpers"
local net = require "support_net"

local tsocket = trio.socket
local OSError, ConnectionRefusedError = trio.OSError, require("trio.errors").ConnectionRefusedError

local HOST = "test.example.com"
local SLOW_AFTER = 0.3 -- when the slow targets make room or close
-- How far a time may be late: on the real clock, how late a loaded machine
-- may run; on the mock clock, rounding only.
local REAL_TOLERANCE, MOCK_TOLERANCE = 0.2, 1e-9
-- The mock clock jumps after this much real idleness: a loopback connect
-- completes long before.
local AUTOJUMP_THRESHOLD = 0.05

local with_replaced = H.with_replaced

local function assert_near(sc, expected, actual, what)
  assert(actual >= expected - 0.01 and actual < expected + sc.tolerance,
    ("%s: %.6f s, expected %.6f s"):format(what, actual, expected))
end

-- The socket of an endpoint on host, bound to a free port.
local function bound_socket(host)
  local s = tsocket.socket(host:find(":", 1, true) and tsocket.AF_INET6 or tsocket.AF_INET)
  s:bind { host, 0 }
  return s
end

-- The loopback endpoint of one target: its address, when its listener
-- does something (`at`), and what closes it.
local function make_endpoint(kind, host)
  if kind == "refused" then
    -- bound but not listening: connects are refused, and the port stays
    -- taken
    local s = bound_socket(host)
    return { addr = s:getsockname(), close = function() s:close() end }
  elseif kind == "accepts" then
    local l = bound_socket(host)
    l:listen(8)
    return { addr = l:getsockname(), listener = l, close = function() l:close() end }
  end
  local addr, close, listener = net.blackhole(host)
  local ep = { addr = addr, close = close }
  if kind == "slow" then
    ep.at = function() listener:accept():close() end -- room for one more
  elseif kind == "slow_refused" then
    ep.at = close
  else
    assert(kind == "hangs", kind)
  end
  return ep
end

local function target(family, addr)
  return { family = family, type = tsocket.SOCK_STREAM, proto = 6, canonname = "", addr = addr }
end

--- run_scenario(list, opts): open_tcp_stream(HOST, 80) with the fake
-- resolver returning the targets of `list`, entries {name, kind [, host]}
-- (host: 127.0.0.1 unless given; "::1" for IPv6), in that order.
-- opts: delay (happy_eyeballs_delay; nil: the default), refuse_family (a
-- family whose sockets cannot be made), cancel_after (seconds: the call
-- runs in move_on_after), expect_error, inspect (called with the stream
-- and the scenario before the teardown).
-- Returns the stream's peer name (nil if cancelled) or the error, and the
-- scenario: connect_times (name -> seconds after the call), connect_order
-- (the names, in the order of the connects), elapsed, addr
-- (name -> address), listener (name -> the listening socket of an
-- "accepts" target), resolved (the resolver's arguments), cancelled_caught.
local function run_scenario(list, opts)
  opts = opts or {}
  local before = net.nfds()
  local sc = { connect_times = {}, connect_order = {}, addr = {}, listener = {}, endpoints = {} }
  local t0
  local targets = {}
  for i, entry in ipairs(list) do
    local name, kind, host = entry[1], entry[2], entry[3] or "127.0.0.1"
    local ep = make_endpoint(kind, host)
    sc.endpoints[i], sc.listener[name] = ep, ep.listener
    sc.addr[name] = ep.addr
    local family = host:find(":", 1, true) and tsocket.AF_INET6 or tsocket.AF_INET
    -- the target notes when its address is first read
    targets[i] = setmetatable(target(family, nil), { __index = function(_, k)
      if k ~= "addr" then return nil end
      if sc.connect_times[name] == nil then
        sc.connect_times[name] = trio.current_time() - t0
        sc.connect_order[#sc.connect_order + 1] = name
      end
      return ep.addr
    end })
  end
  local function fake_getaddrinfo(host, port, gai_opts)
    sc.resolved = { host = host, port = port, opts = gai_opts }
    return targets
  end
  local real_socket = tsocket.socket
  local function socket_factory(family, ...)
    if family == opts.refuse_family then
      error(OSError { message = "socket: pretending not to support this family", code = "EAFNOSUPPORT" }, 0)
    end
    return real_socket(family, ...)
  end

  local function open()
    local stream
    local cs = trio.move_on_after(opts.cancel_after or math.huge, function()
      stream = trio.open_tcp_stream(HOST, 80, { happy_eyeballs_delay = opts.delay })
    end)
    sc.cancelled_caught = cs.cancelled_caught
    return stream
  end

  local ok, result
  trio.open_nursery(function(nursery)
    for _, ep in ipairs(sc.endpoints) do
      if ep.at then nursery:start_soon(function() trio.sleep(SLOW_AFTER) ep.at() end) end
    end
    t0 = trio.current_time()
    ok, result = with_replaced(tsocket, "getaddrinfo", fake_getaddrinfo, function()
      return with_replaced(tsocket, "socket", socket_factory, function()
        return pcall(open)
      end)
    end)
    sc.elapsed = trio.current_time() - t0
    nursery.cancel_scope:cancel()
  end)

  local peer
  if ok and result then
    peer = result.socket:getpeername()
    if opts.inspect then opts.inspect(result, sc) end
    result:close()
  end
  for _, ep in ipairs(sc.endpoints) do ep.close() end
  -- every socket open_tcp_stream made was closed (the winner just now)
  assert.equal(before, net.nfds(), "descriptors left open by open_tcp_stream")
  if opts.expect_error then
    assert(not ok, "expected open_tcp_stream to fail")
    return result, sc
  end
  if not ok then error(result, 0) end
  return peer, sc
end

--- scenario(list, opts): run_scenario in a run of its own, on an
-- autojump mock clock (the times are then exact, as in Trio's tests),
-- unless a target is slow: the kernel's SYN retransmission takes real time.
local function scenario(list, opts)
  local slow = false
  for _, entry in ipairs(list) do slow = slow or entry[2]:find("^slow") ~= nil end
  local result, sc
  if slow then
    result, sc = H.run(run_scenario, list, opts)
    sc.tolerance = REAL_TOLERANCE
  else
    result, sc = H.run({ clock = H.mock_clock(AUTOJUMP_THRESHOLD) }, run_scenario, list, opts)
    sc.tolerance = MOCK_TOLERANCE
  end
  return result, sc
end

local function assert_connect_times(sc, expected)
  local got = {}
  for name in pairs(sc.connect_times) do got[#got + 1] = name end
  local want = {}
  for name in pairs(expected) do want[#want + 1] = name end
  assert.same(H.sorted(want), H.sorted(got), "the targets connected to")
  for name, t in pairs(expected) do assert_near(sc, t, sc.connect_times[name], "connect to " .. name) end
end

describe("test_highlevel_open_tcp_stream.py", function()
  it("test_reorder_for_rfc_6555_section_5_4 (the order of the connects)", function()
    local function order(list)
      local _, sc = scenario(list, { expect_error = true })
      return sc.connect_order
    end
    local function v4(i) return { "4." .. i, "refused" } end
    local function v6(i) return { "6." .. i, "refused", "::1" } end
    local families = { v4 }
    if net.have_ipv6() then families[2] = v6 end
    for _, fake in ipairs(families) do
      -- no effect on lists of one family, or of one target
      assert.same({ fake(0)[1], fake(1)[1], fake(2)[1] }, order { fake(0), fake(1), fake(2) })
      assert.same({ fake(0)[1] }, order { fake(0) })
    end
    if not families[2] then return pending("no IPv6 loopback here") end
    -- different families first and second: left alone
    assert.same({ "4.0", "6.0", "4.1", "6.1" }, order { v4(0), v6(0), v4(1), v6(1) })
    -- else the first of the other family moves to second place
    assert.same({ "4.0", "6.0", "4.1", "4.2", "6.1" }, order { v4(0), v4(1), v4(2), v6(0), v6(1) })
  end)

  it("test_format_host_port (in the error messages)", function()
    H.run(function()
      for host, shown in pairs {
        ["127.0.0.1"] = "127.0.0.1:80", ["example.com"] = "example.com:80", ["::1"] = "[::1]:80",
      } do
        local e = with_replaced(tsocket, "getaddrinfo", function() return {} end, function()
          return H.raises(OSError, trio.open_tcp_stream, host, 80)
        end)
        assert.truthy(e.message:find(shown, 1, true), e.message)
      end
    end)
  end)

  it("test_open_tcp_stream_real_socket_smoketest", function()
    H.run(function()
      local listen_sock = tsocket.socket()
      listen_sock:bind { "127.0.0.1", 0 }
      local listen_port = listen_sock:getsockname()[2]
      listen_sock:listen(1)
      local client_stream = trio.open_tcp_stream("127.0.0.1", listen_port)
      local server_sock = listen_sock:accept()
      client_stream:send_all("x")
      assert.equal("x", server_sock:recv(1))
      client_stream:close()
      server_sock:close()
      listen_sock:close()
    end)
  end)

  it("test_open_tcp_stream_input_validation", function()
    H.run(function()
      local e = H.raises(H.any, trio.open_tcp_stream, nil, 80)
      assert.truthy(tostring(e):find("bad argument #1 to 'open_tcp_stream' (host string expected, got nil)",
        1, true), tostring(e))
      e = H.raises(H.any, trio.open_tcp_stream, "127.0.0.1", "80")
      assert.truthy(tostring(e):find("bad argument #2 to 'open_tcp_stream'", 1, true), tostring(e))
    end)
  end)

  it("test_local_address_real", function()
    -- any 127.x.y.z address is the loopback interface on Linux
    local s = tsocket.socket()
    local local_address = pcall(s.bind, s, { "127.0.0.2", 0 }) and s:getsockname()[1] == "127.0.0.2"
      and "127.0.0.2" or "127.0.0.1"
    s:close()
    H.run(function()
      local listener = tsocket.socket()
      listener:bind { "127.0.0.1", 0 }
      listener:listen()
      local host, port = table.unpack(listener:getsockname())

      local client_stream = trio.open_tcp_stream(host, port, { local_address = local_address })
      assert.equal(local_address, client_stream.socket:getsockname()[1])
      -- IP_BIND_ADDRESS_NO_PORT (24 on Linux; trio.socket has no constant)
      assert.equal(1, client_stream.socket:getsockopt(tsocket.IPPROTO_IP, 24))
      local server_sock, remote_addr = listener:accept()
      client_stream:close()
      server_sock:close()
      assert.equal(local_address, remote_addr[1])

      -- the IPv6 wildcard as local address of an IPv4 connect fails; one
      -- address: its own error, which names it (docs/SEMANTICS.md
      -- "open_tcp_stream errors"; Trio says "all attempts to connect to
      -- 127.0.0.1:port failed")
      local e = H.raises(OSError, trio.open_tcp_stream, host, port, { local_address = "::" })
      assert.truthy(e.message:find(("127.0.0.1:%d"):format(port), 1, true), e.message)

      -- the IPv4 wildcard works
      client_stream = trio.open_tcp_stream(host, port, { local_address = "0.0.0.0" })
      server_sock, remote_addr = listener:accept()
      server_sock:close()
      assert.same(client_stream.socket:getsockname(), remote_addr)
      client_stream:close()
      listener:close()
    end)
  end)

  -- the scenarios

  it("test_one_host_quick_success", function()
    local peer, sc = scenario({ { "1.2.3.4", "accepts" } })
    assert.same(sc.addr["1.2.3.4"], peer)
    assert.same({ host = HOST, port = 80, opts = { type = tsocket.SOCK_STREAM } }, sc.resolved)
    assert_near(sc, 0, sc.elapsed, "connected")
  end)

  it("test_one_host_slow_success (longer than the Happy Eyeballs delay)", function()
    local peer, sc = scenario({ { "1.2.3.4", "slow" } })
    assert.same(sc.addr["1.2.3.4"], peer)
    assert_near(sc, 1, sc.elapsed, "connected")
  end)

  it("test_one_host_quick_fail", function()
    local e, sc = scenario({ { "1.2.3.4", "refused" } }, { expect_error = true })
    assert.is_true(ConnectionRefusedError:is(e), tostring(e))
    assert_near(sc, 0, sc.elapsed, "failed")
  end)

  it("test_one_host_slow_fail", function()
    local e, sc = scenario({ { "1.2.3.4", "slow_refused" } }, { expect_error = true })
    assert.is_true(ConnectionRefusedError:is(e), tostring(e))
    assert_near(sc, 1, sc.elapsed, "failed")
  end)

  it("test_basic_fallthrough (with the default delay, 0.25 s; also test_none_default)", function()
    local peer, sc = scenario({
      { "1.1.1.1", "hangs" }, { "2.2.2.2", "hangs" }, { "3.3.3.3", "accepts" },
    })
    assert.same(sc.addr["3.3.3.3"], peer)
    assert_near(sc, 0.5, sc.elapsed, "connected")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0.25, ["3.3.3.3"] = 0.5 })
  end)

  it("test_early_success", function()
    local peer, sc = scenario({
      { "1.1.1.1", "hangs" }, { "2.2.2.2", "accepts" }, { "3.3.3.3", "accepts" },
    })
    assert.same(sc.addr["2.2.2.2"], peer)
    assert_near(sc, 0.25, sc.elapsed, "connected")
    -- 3.3.3.3 was never tried
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0.25 })
  end)

  it("test_custom_delay (long enough for the first attempt to win)", function()
    local peer, sc = scenario({
      { "1.1.1.1", "slow" }, { "2.2.2.2", "hangs" }, { "3.3.3.3", "hangs" },
    }, { delay = 0.45 })
    assert.same(sc.addr["1.1.1.1"], peer)
    assert_near(sc, 1, sc.elapsed, "connected")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0.45, ["3.3.3.3"] = 0.9 })
  end)

  it("test_custom_errors_expedite (a failure starts the next attempt at once)", function()
    local peer, sc = scenario({
      { "1.1.1.1", "refused" }, { "2.2.2.2", "refused" }, { "3.3.3.3", "hangs" }, { "4.4.4.4", "accepts" },
    })
    assert.same(sc.addr["4.4.4.4"], peer)
    assert_near(sc, 0.25, sc.elapsed, "connected")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0, ["3.3.3.3"] = 0, ["4.4.4.4"] = 0.25 })
  end)

  it("test_all_fail", function()
    local e, sc = scenario({
      { "1.1.1.1", "refused" }, { "2.2.2.2", "refused" }, { "3.3.3.3", "slow_refused" }, { "4.4.4.4", "refused" },
    }, { expect_error = true })
    -- an OSError whose field `errors` holds the attempts' errors
    -- (docs/SEMANTICS.md "open_tcp_stream errors"; Python chains them as
    -- an ExceptionGroup)
    assert.is_true(OSError:is(e), tostring(e))
    assert.truthy(e.message:find("^all attempts to connect to test%.example%.com:80 failed"), e.message)
    assert.equal(4, #e.errors)
    for _, sub in ipairs(e.errors) do assert.is_true(ConnectionRefusedError:is(sub), tostring(sub)) end
    assert_near(sc, 1, sc.elapsed, "failed")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0, ["3.3.3.3"] = 0, ["4.4.4.4"] = 0.25 })
  end)

  it("test_multi_success (several connects complete together: one wins, the others are closed)", function()
    -- with no delay every attempt is under way at once; the listeners'
    -- connections from the losers (those that got that far) were closed
    local listeners = { "2.2.2.2", "3.3.3.3", "4.4.4.4" }
    local served = 0
    local peer, sc = scenario({
      { "1.1.1.1", "refused" }, { "2.2.2.2", "accepts" }, { "3.3.3.3", "accepts" }, { "4.4.4.4", "accepts" },
      { "5.5.5.5", "refused" },
    }, { delay = 0, inspect = function(stream, sc)
      local here = stream.socket:getsockname()
      for _, name in ipairs(listeners) do
        local conn
        trio.move_on_after(0.2, function() conn = sc.listener[name]:accept() end)
        if conn and conn:getpeername()[2] == here[2] then
          stream:send_all("winner")
          assert.equal("winner", conn:recv(10))
          served = served + 1
        elseif conn then
          local _, data = pcall(conn.recv, conn, 10)
          assert.is_true(data == "" or trio.OSError:is(data), tostring(data)) -- the loser was closed
        end
        if conn then conn:close() end
      end
    end })
    assert.equal(1, served)
    local winner
    for _, name in ipairs(listeners) do
      if sc.addr[name][2] == peer[2] then winner = name end
    end
    assert.is_not_nil(winner, "the stream is connected to one of the listeners")
    for _, name in ipairs { "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4" } do
      assert_near(sc, 0, sc.connect_times[name], "connect to " .. name)
    end
  end)

  it("test_does_reorder (the first IPv6 address is tried second)", function()
    if not net.have_ipv6() then return pending("no IPv6 loopback here") end
    local peer, sc = scenario({
      { "1.1.1.1", "hangs" },
      { "2.2.2.2", "accepts" }, -- it would win if it were tried second
      { "::3", "accepts", "::1" },
    }, { delay = 1 })
    assert.same(sc.addr["::3"], peer)
    assert_near(sc, 1, sc.elapsed, "connected")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["::3"] = 1 })
  end)

  it("test_handles_no_ipv4 (IPv4 sockets cannot be made)", function()
    if not net.have_ipv6() then return pending("no IPv6 loopback here") end
    local peer, sc = scenario({
      { "::1", "hangs", "::1" }, { "2.2.2.2", "accepts" }, { "::3", "accepts", "::1" }, { "4.4.4.4", "accepts" },
    }, { delay = 1, refuse_family = tsocket.AF_INET })
    assert.same(sc.addr["::3"], peer)
    assert_near(sc, 1, sc.elapsed, "connected")
    assert_connect_times(sc, { ["::1"] = 0, ["::3"] = 1 })
  end)

  it("test_handles_no_ipv6 (IPv6 sockets cannot be made)", function()
    local peer, sc = scenario({
      { "::1", "accepts", "::1" }, { "2.2.2.2", "hangs" }, { "::3", "accepts", "::1" }, { "4.4.4.4", "accepts" },
    }, { delay = 1, refuse_family = tsocket.AF_INET6 })
    assert.same(sc.addr["4.4.4.4"], peer)
    assert_near(sc, 1, sc.elapsed, "connected")
    assert_connect_times(sc, { ["2.2.2.2"] = 0, ["4.4.4.4"] = 1 })
  end)

  it("test_no_hosts", function()
    local e = scenario({}, { expect_error = true })
    assert.is_true(OSError:is(e), tostring(e))
    assert.truthy(e.message:find("no results found", 1, true), e.message)
  end)

  it("test_cancel", function()
    local peer, sc = scenario({
      { "1.1.1.1", "hangs" }, { "2.2.2.2", "hangs" }, { "3.3.3.3", "hangs" }, { "4.4.4.4", "hangs" },
    }, { cancel_after = 5 })
    assert.is_nil(peer)
    assert.is_true(sc.cancelled_caught)
    assert_near(sc, 5, sc.elapsed, "cancelled")
    assert_connect_times(sc, { ["1.1.1.1"] = 0, ["2.2.2.2"] = 0.25, ["3.3.3.3"] = 0.5, ["4.4.4.4"] = 0.75 })
  end)

end)
