-- Trio's streams over sockets: SocketStream, SocketListener, StapledStream,
-- open_tcp_stream (Happy Eyeballs), open_tcp_listeners, serve_tcp,
-- serve_listeners, the Unix-domain variants, and trio.testing's stream
-- tools; every stream passes check_two_way_stream (half-closeable ones the
-- half-close checks too).
local trio = require "trio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local tsocket, testing = trio.socket, trio.testing

local function run(fn, ...)
  return trio.run(function(...) return trio.fail_after(10, fn, ...) end, ...)
end

local function tcp_stream_pair()
  local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
  local client, server
  trio.open_nursery(function(n)
    n:start_soon(function() server = listener:accept() end)
    client = testing.open_stream_to_socket_listener(listener)
  end)
  listener:close()
  return client, server
end

local function socketpair_streams()
  local a, b = tsocket.socketpair()
  return trio.SocketStream(a), trio.SocketStream(b)
end

local function clogged(maker)
  return function()
    local a, b = maker()
    net.clog(a)
    net.clog(b)
    return a, b
  end
end

describe("stream conformance (check_two_way_stream)", function()
  it("SocketStream over TCP passes the half-closeable checks", function()
    run(testing.check_half_closeable_stream, tcp_stream_pair, clogged(tcp_stream_pair))
  end)

  it("SocketStream over a Unix socketpair passes the half-closeable checks", function()
    run(testing.check_half_closeable_stream, socketpair_streams, clogged(socketpair_streams))
  end)

  it("memory_stream_pair and lockstep_stream_pair pass the two-way checks", function()
    run(testing.check_two_way_stream, testing.memory_stream_pair)
    run(testing.check_two_way_stream, testing.lockstep_stream_pair)
  end)

  it("a broken stream implementation fails the checks", function()
    -- a stream that silently drops data
    local function lossy()
      local a, b = testing.memory_stream_pair()
      local send_all = a.send_all
      a.send_all = function(self, data) return send_all(self, data:upper()) end
      return a, b
    end
    local e = run(function()
      local ok, err = pcall(testing.check_two_way_stream, lossy)
      return not ok and err
    end)
    assert_has(e, "check_stream: receive_some(1): expected \"x\", got \"X\"")
  end)
end)

describe("SocketStream errors (Trio's rules)", function()
  it("a method called on something else names the method and the class, as every class does", function()
    run(function()
      local a, b = socketpair_streams()
      for _, m in ipairs { "send_all", "wait_send_all_might_not_block", "send_eof", "receive_some", "close" } do
        assert.equal(("bad argument #1 to 'SocketStream:%s' (trio.SocketStream expected, got nil)"):format(m),
          errof(a[m], nil))
        assert_has(errof(a[m], b.socket), "(trio.SocketStream expected, got ")
      end
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      assert.equal("bad argument #1 to 'SocketListener:accept' (trio.SocketListener expected, got trio.SocketStream)",
        errof(listener.accept, a))
      listener:close()
      a:send_all("still usable")
      assert.equal("still usable", b:receive_some())
      a:close()
      b:close()
    end)
  end)

  it("use after close raises ClosedResourceError", function()
    run(function()
      local a, b = socketpair_streams()
      a:close()
      assert.is_true(trio.ClosedResourceError:is(errof(a.send_all, a, "x")))
      assert.is_true(trio.ClosedResourceError:is(errof(a.receive_some, a)))
      assert.is_true(trio.ClosedResourceError:is(errof(a.send_eof, a)))
      b:close()
    end)
  end)

  it("another task closing the stream while this one waits: ClosedResourceError in the waiter", function()
    run(function()
      local a, b = socketpair_streams()
      local e
      trio.open_nursery(function(n)
        n:start_soon(function()
          local ok, err = pcall(a.receive_some, a)
          e = not ok and err
        end)
        testing.wait_all_tasks_blocked()
        a:close()
      end)
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      b:close()
    end)
  end)

  it("receive_some raises the stream's errors itself (its socket's are translated in C, no pcall)", function()
    run(function()
      local a, b = socketpair_streams()
      local e
      trio.open_nursery(function(n)
        n:start_soon(function() e = errof(a.receive_some, a) end)
        testing.wait_all_tasks_blocked()
        a:close()
      end)
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      assert_has(e.message, "another task closed this stream")
      b.socket:close() -- the socket closed under the stream: EBADF becomes ClosedResourceError
      e = errof(b.receive_some, b)
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      assert_has(e.message, "this socket was already closed")
      local c, d = socketpair_streams()
      trio.move_on_after(0.01, function() e = errof(c.receive_some, c) end)
      assert.is_true(trio.Cancelled:is(e), tostring(e)) -- passes unchanged
      assert_has(errof(c.receive_some, c, 0), "max_bytes must be >= 1")
      d:send_all("still works")
      assert.equal("still works", c:receive_some())
      c:close()
      d:close()
    end)
  end)

  it("a reset by the peer: BrokenResourceError whose cause is the ConnectionResetError", function()
    run(function()
      local a, b = tcp_stream_pair()
      a:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_LINGER, string.pack("ii", 1, 0))
      a:close()
      local e = errof(b.receive_some, b)
      assert.is_true(trio.BrokenResourceError:is(e), tostring(e))
      assert.is_true(errors.ConnectionResetError:is(e.cause))
      assert_has(e.message, "socket connection broken: ")
      b:close()
    end)
  end)

  it("sending to a peer that has gone: BrokenResourceError caused by BrokenPipeError or a reset", function()
    run(function()
      local a, b = socketpair_streams()
      b:close()
      for _ = 1, 2 do -- each time (send_all's busy mark is cleared after an error)
        local e = errof(a.send_all, a, "x")
        assert.is_true(trio.BrokenResourceError:is(e), tostring(e))
        assert.is_true(errors.BrokenPipeError:is(e.cause), tostring(e.cause))
        assert.equal("socket connection broken: " .. e.cause.message, e.message)
      end
      a:close()
    end)
  end)

  it("two tasks sending at once: BusyResourceError; two receiving at once too", function()
    run(function()
      local a, b = socketpair_streams()
      net.clog(a)
      local e
      trio.open_nursery(function(n)
        n:start_soon(a.send_all, a, "x")
        testing.wait_all_tasks_blocked()
        e = errof(a.send_all, a, "y")
        n.cancel_scope:cancel()
      end)
      assert.is_true(trio.BusyResourceError:is(e))
      assert_has(e.message, "another task is currently sending data on this SocketStream")
      a:close()
      b:close()
      a, b = socketpair_streams()
      trio.open_nursery(function(n)
        n:start_soon(b.receive_some, b, 1)
        testing.wait_all_tasks_blocked()
        e = errof(b.receive_some, b, 1)
        n.cancel_scope:cancel()
      end)
      assert.is_true(trio.BusyResourceError:is(e))
      a:close()
      b:close()
    end)
  end)

  it("a cancelled receive_some loses no data", function()
    run(function()
      local a, b = socketpair_streams()
      trio.move_on_after(0.02, b.receive_some, b)
      a:send_all("still here")
      assert.equal("still here", b:receive_some())
      a:close()
      b:close()
    end)
  end)

  it("a send_all cancelled while sending leaves the stream unusable and says so", function()
    run(function()
      local a, b = socketpair_streams()
      local scope = trio.move_on_after(0.05, a.send_all, a, ("x"):rep(8 << 20))
      assert.is_true(scope.cancelled_caught)
      local e = errof(a.send_all, a, "more")
      assert.is_true(trio.BrokenResourceError:is(e))
      assert_has(e.message, "a previous send_all was cancelled")
      a:close()
      b:close()
    end)
  end)

  -- The error of a:send_all("x") while another task waits in waiter(a),
  -- a clogged (its peer does not read).
  local function send_all_error_while(a, waiter)
    net.clog(a)
    local e
    trio.open_nursery(function(n)
      n:start_soon(waiter, a)
      testing.wait_all_tasks_blocked()
      e = errof(a.send_all, a, "x")
      n.cancel_scope:cancel()
    end)
    return e
  end

  -- send_all's busy mark lives on its socket, in C, from its checks to every
  -- exit, and its errors are raised in C through the stream's send_error
  it("send_all is busy through its schedule point too; every way out of it clears the mark", function()
    run(function()
      local a, b = socketpair_streams()
      local order = {}
      trio.open_nursery(function(n)
        n:start_soon(function() -- written at once: its task yields at the schedule point
          a:send_all("first")
          order[#order + 1] = "first sent"
        end)
        n:start_soon(function() -- runs during that schedule point
          local e = errof(a.send_all, a, "second")
          assert.is_true(trio.BusyResourceError:is(e), tostring(e))
          assert.equal("another task is currently sending data on this SocketStream", e.message)
          e = errof(a.send_eof, a)
          assert.is_true(trio.BusyResourceError:is(e), tostring(e))
          order[#order + 1] = "busy"
        end)
      end)
      assert.same({ "busy", "first sent" }, order)
      assert.equal("first", b:receive_some())
      -- cancelled before it started: Cancelled, nothing sent, the stream usable
      local e
      local cancelled = trio.CancelScope()
      cancelled:run(function()
        cancelled:cancel()
        e = errof(a.send_all, a, "never")
      end)
      assert.is_true(trio.Cancelled:is(e), tostring(e))
      -- argument errors, as before
      assert_has(errof(a.send_all, a, {}), "bad argument #1 to 'send_all' (string expected, got table)")
      a:send_all("")
      a:send_all("after")
      assert.equal("after", b:receive_some())
      -- cancelled while its bytes wait in the queue: Cancelled, not busy any more
      net.clog(a)
      local scope = trio.move_on_after(0.02, a.send_all, a, "queued")
      assert.is_true(scope.cancelled_caught)
      e = errof(a.send_all, a, "more")
      assert.is_true(trio.BrokenResourceError:is(e), tostring(e))
      assert.equal("a previous send_all was cancelled while sending: the stream is unusable", e.message)
      a:send_eof() -- not busy: the mark went with the cancellation
      a:close()
      b:close()
    end)
  end)

  it("send_all's errors: closed before, closed while it waits, the socket's own (messages and causes)", function()
    run(function()
      local a, b = socketpair_streams()
      a:close()
      local e = errof(a.send_all, a, "x")
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      assert.equal("this socket was already closed", e.message)
      -- the socket closed under the stream: EBADF becomes ClosedResourceError
      b.socket:close()
      e = errof(b.send_all, b, "x")
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      assert.equal("this socket was already closed", e.message)

      -- another task closes it while the bytes wait: ClosedResourceError in
      -- the sender, and the stream is not marked broken
      a, b = socketpair_streams()
      net.clog(a)
      trio.open_nursery(function(n)
        n:start_soon(function() e = errof(a.send_all, a, "x") end)
        testing.wait_all_tasks_blocked()
        a.socket:close()
      end)
      assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
      assert_has(e.message, "another task closed this socket")
      assert.equal(0, a._send_ended)
      a:close()
      b:close()

      -- a task waiting in the raw socket's send holds its write side
      a, b = socketpair_streams()
      e = send_all_error_while(a, function() a.socket:send("raw") end)
      assert.is_true(trio.BusyResourceError:is(e), tostring(e))
      assert.equal("send: another task is already waiting to write to this socket", e.message)
      a:close()
      b:close()
    end)
  end)

  it("wait_send_all_might_not_block holds the busy mark while it waits, and clears it", function()
    run(function()
      local a, b = socketpair_streams()
      local e = send_all_error_while(a, a.wait_send_all_might_not_block)
      assert.is_true(trio.BusyResourceError:is(e), tostring(e))
      assert.equal("another task is currently sending data on this SocketStream", e.message)
      a:send_eof() -- not busy any more
      a:close()
      b:close()
    end)
  end)

  it("receive_some checks max_bytes; the wrong flavor raises FlavorError naming the method", function()
    local asyncio = require "asyncio"
    local a, b = tsocket.socketpair()
    local sa, sb = trio.SocketStream(a), trio.SocketStream(b)
    run(function()
      assert_has(errof(sb.receive_some, sb, 0), "bad argument #1 to 'receive_some' (max_bytes must be >= 1)")
      assert_has(errof(sb.receive_some, sb, "x"), "max_bytes: integer expected, got string")
      assert_has(errof(sa.send_all, sa, 42), "bad argument #1 to 'send_all' (string expected, got number)")
      sa:send_all("unread")
    end)
    local e = asyncio.run(function()
      local ok, err = pcall(sb.receive_some, sb)
      return not ok and err
    end)
    assert.is_true(errors.FlavorError:is(e))
    assert_has(e.message, "SocketStream:receive_some")
    e = asyncio.run(function()
      local ok, err = pcall(sa.send_all, sa, "not sent")
      return not ok and err
    end)
    assert.is_true(errors.FlavorError:is(e))
    assert_has(e.message, "SocketStream:send_all")
    assert.equal("unread", run(sb.receive_some, sb)) -- nothing consumed nor sent, still usable
    run(function() sa:send_all("usable") end) -- the failed send_all left it usable
    assert.equal("usable", run(sb.receive_some, sb))
    sa:close()
    sb:close()
  end)

  it("a 100 MB send_all streams without holding the data twice", function()
    support.skip_under_gc_stress(pending)
    trio.run(trio.fail_after, 120, function() -- minutes under valgrind
      local a, b = socketpair_streams()
      local big = ("0123456789abcdef"):rep(100 * 1024 * 1024 // 16)
      collectgarbage()
      local base = net.rss()
      local peak, total = 0, 0
      trio.open_nursery(function(n)
        n:start_soon(a.send_all, a, big)
        while total < #big do
          total = total + #b:receive_some(1 << 20)
          collectgarbage() -- what was received is garbage: measure what is held
          peak = math.max(peak, net.rss() - base)
        end
      end)
      assert.equal(#big, total)
      assert.is_true(peak < 60 * 1024 * 1024, ("RSS grew by %d bytes"):format(peak))
      a:close()
      b:close()
    end)
  end)

  it("setsockopt/getsockopt and the socket field; TCP_NODELAY is on", function()
    run(function()
      local a, b = tcp_stream_pair()
      assert.equal(1, a:getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY))
      a:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_KEEPALIVE, 1)
      assert.equal(1, a:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_KEEPALIVE))
      assert.same(a.socket:getsockname(), b.socket:getpeername())
      a:close()
      b:close()
    end)
  end)
end)

describe("StapledStream", function()
  it("sends on one stream, receives on the other; send_eof closes a stream without it", function()
    run(function()
      local s1, r1 = testing.memory_stream_one_way_pair()
      local s2, r2 = testing.memory_stream_one_way_pair()
      local st = trio.StapledStream(s1, r2)
      assert.equal(s1, st.send_stream)
      assert.equal(r2, st.receive_stream)
      st:send_all("out")
      assert.equal("out", r1:receive_some())
      s2:send_all("in")
      assert.equal("in", st:receive_some())
      st:send_eof() -- memory send streams have no send_eof: it closes
      assert.equal("", r1:receive_some())
      st:close()
      assert.is_true(trio.ClosedResourceError:is(errof(r2.receive_some, r2)))
      assert_has(errof(trio.StapledStream, 1, r2), "bad argument #1 to 'StapledStream'")
    end)
  end)

  it("close: both streams close even if one fails; both failing, the receive error holds the send error", function()
    local closed = {}
    local function failing(name, err)
      return {
        send_all = function() end,
        receive_some = function() return "" end,
        close = function()
          closed[#closed + 1] = name
          if err ~= nil then error(err, 0) end
        end,
      }
    end
    local send_err, recv_err = errors.OSError("send side"), errors.OSError("receive side")
    local st = trio.StapledStream(failing("send", send_err), failing("receive", recv_err))
    local e = errof(st.close, st)
    assert.equal(recv_err, e)
    assert.equal(send_err, e.context)
    assert.same({ "send", "receive" }, closed)
    -- only the send side failing: its error, after the receive side closed
    closed = {}
    st = trio.StapledStream(failing("send", send_err), failing("receive"))
    assert.equal(send_err, errof(st.close, st))
    assert.same({ "send", "receive" }, closed)
    -- a plain string error has no field to hold the other
    closed = {}
    st = trio.StapledStream(failing("send", send_err), failing("receive", "plain"))
    assert.equal("plain", errof(st.close, st))
  end)
end)

describe("memory streams", function()
  it("memory_stream_one_way_pair moves data on send_all; get_data / put_data work by hand", function()
    run(function()
      local s = testing.MemorySendStream()
      local r = testing.MemoryReceiveStream()
      s:send_all("abc")
      assert.equal("ab", s:get_data_nowait(2))
      assert.equal("c", s:get_data())
      assert.is_true(trio.WouldBlock:is(errof(s.get_data_nowait, s)))
      assert.is_false(testing.memory_stream_pump(s, r))
      s:send_all("x")
      assert.is_true(testing.memory_stream_pump(s, r))
      assert.equal("x", r:receive_some())
      r:put_data("direct")
      r:put_eof()
      assert.equal("direct", r:receive_some())
      assert.equal("", r:receive_some())
    end)
  end)

  it("lockstep streams: send_all returns only once the receiver took the data", function()
    run(function()
      local s, r = testing.lockstep_stream_one_way_pair()
      local log = {}
      trio.open_nursery(function(n)
        n:start_soon(function()
          s:send_all("xy")
          log[#log + 1] = "sent"
        end)
        testing.wait_all_tasks_blocked()
        log[#log + 1] = "receiving"
        assert.equal("x", r:receive_some(1))
        assert.equal("y", r:receive_some(1))
      end)
      assert.same({ "receiving", "sent" }, log)
    end)
  end)
end)

describe("open_tcp_stream", function()
  it("connects; the stream talks to the listener", function()
    run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local port = listener.socket:getsockname()[2]
      trio.open_nursery(function(n)
        n:start_soon(function()
          local s = listener:accept()
          s:send_all(s:receive_some():upper())
          s:close()
        end)
        local c = trio.open_tcp_stream("127.0.0.1", port)
        c:send_all("hi")
        assert.equal("HI", c:receive_some())
        c:close()
      end)
      listener:close()
    end)
  end)

  it("a refused connection to a single address raises its OSError subclass with host:port", function()
    local e = run(function()
      local ok, err = pcall(trio.open_tcp_stream, "127.0.0.1", 1)
      return not ok and err
    end)
    assert.is_true(errors.ConnectionRefusedError:is(e), tostring(e))
    assert_has(e.message, "127.0.0.1:1")
  end)

  it("bad arguments raise argument errors naming open_tcp_stream; unknown names raise gaierror", function()
    run(function()
      assert_has(errof(trio.open_tcp_stream, 42, 80), "bad argument #1 to 'open_tcp_stream' (host string expected, got number)")
      assert_has(errof(trio.open_tcp_stream, "localhost", "80"),
        "bad argument #2 to 'open_tcp_stream' (port: integer expected, got string)")
      assert_has(errof(trio.open_tcp_stream, "localhost", -1), "port must be 0-65535")
      assert_has(errof(trio.open_tcp_stream, "localhost", 80, { delay = 1 }), "unknown option 'delay'")
      assert.is_true(errors.gaierror:is(errof(trio.open_tcp_stream, "no-such-host.invalid", 80)))
    end)
  end)

  -- Happy Eyeballs with a resolver that answers several addresses: a
  -- refused one (fails at once, so the next starts at once), one that hangs
  -- (a full accept queue), then the good one, started after the delay.
  local function with_fake_resolver(targets, fn)
    local real = tsocket.getaddrinfo
    tsocket.getaddrinfo = function() return targets end
    local ok, err = pcall(fn)
    tsocket.getaddrinfo = real
    if not ok then error(err, 0) end
  end

  local function target(addr)
    return { family = tsocket.AF_INET, type = tsocket.SOCK_STREAM, proto = 6, canonname = "", addr = addr }
  end

  it("Happy Eyeballs: a failed attempt starts the next at once, a slow one after the delay; the first success wins", function()
    run(function()
      local before = net.nfds()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local good = listener.socket:getsockname()
      local hole, close_hole = net.blackhole()
      with_fake_resolver({ target { "127.0.0.1", 1 }, target(hole), target(good) }, function()
        local t0 = trio.current_time()
        local s = trio.open_tcp_stream("example.test", 80, { happy_eyeballs_delay = 0.2 })
        local took = trio.current_time() - t0
        assert.same(good, s.socket:getpeername())
        assert.is_true(took >= 0.19 and took < 1, "took " .. took)
        s:close()
      end)
      close_hole()
      listener:close()
      assert.equal(before, net.nfds()) -- the losers' sockets were closed too
    end)
  end)

  it("Happy Eyeballs: when every attempt fails, an OSError lists them all (field errors)", function()
    local e = run(function()
      local err
      with_fake_resolver({ target { "127.0.0.1", 1 }, target { "127.0.0.1", 2 } }, function()
        local ok, x = pcall(trio.open_tcp_stream, "example.test", 80)
        err = not ok and x
      end)
      return err
    end)
    assert.is_true(errors.OSError:is(e))
    assert_has(e.message, "all attempts to connect to example.test:80 failed")
    assert.equal(2, #e.errors)
    assert.is_true(errors.ConnectionRefusedError:is(e.errors[1]))
    assert_has(e.errors[2].message, "127.0.0.1:2")
  end)

  it("local_address binds the source address", function()
    run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local port = listener.socket:getsockname()[2]
      local s = trio.open_tcp_stream("127.0.0.1", port, { local_address = "127.0.0.1" })
      assert.equal("127.0.0.1", s.socket:getsockname()[1])
      s:close()
      listener:close()
    end)
  end)

  it("to one address it connects in the calling task: no task spawned, no socket left by a refusal", function()
    run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local port = listener.socket:getsockname()[2]
      local spawned = 0
      local inst = { task_spawned = function() spawned = spawned + 1 end }
      trio.lowlevel.add_instrument(inst)
      local c = trio.open_tcp_stream("127.0.0.1", port)
      local before = net.nfds()
      local e = errof(trio.open_tcp_stream, "127.0.0.1", 1)
      trio.lowlevel.remove_instrument(inst)
      assert.equal(0, spawned)
      assert.is_true(errors.ConnectionRefusedError:is(e), tostring(e))
      assert.equal(before, net.nfds())
      local s = listener:accept()
      c:send_all("one")
      assert.equal("one", s:receive_some())
      c:close()
      s:close()
      listener:close()
    end)
  end)

  it("cancelled while connecting: Cancelled, and no socket left open", function()
    run(function()
      local hole, close_hole = net.blackhole()
      local before = net.nfds()
      local scope = trio.move_on_after(0.05, trio.open_tcp_stream, hole[1], hole[2])
      assert.is_true(scope.cancelled_caught)
      assert.equal(before, net.nfds())
      close_hole()
    end)
  end)
end)

describe("open_tcp_listeners and serve_tcp", function()
  local function echo(stream)
    while true do
      local d = stream:receive_some()
      if d == "" then return end
      stream:send_all(d)
    end
  end

  it("open_tcp_listeners: one listener per address; options are checked", function()
    run(function()
      local ls = trio.open_tcp_listeners(0, { host = "127.0.0.1", backlog = 10, reuse_port = true })
      assert.equal(1, #ls)
      local sock = ls[1].socket
      assert.equal(1, sock:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT))
      assert.is_true(sock:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR) ~= 0)
      ls[1]:close()
      local all = trio.open_tcp_listeners(0)
      assert.is_true(#all >= 1)
      assert.equal("0.0.0.0", all[1].socket:getsockname()[1])
      for _, l in ipairs(all) do l:close() end
      assert_has(errof(trio.open_tcp_listeners, "0"),
        "bad argument #1 to 'open_tcp_listeners' (port: integer expected, got string)")
      assert_has(errof(trio.open_tcp_listeners, 0, { hots = "x" }), "unknown option 'hots'")
    end)
  end)

  it("open_tcp_listeners: a bad backlog's error names the value", function()
    run(function()
      assert_has(errof(trio.open_tcp_listeners, 0, { backlog = 2.5 }),
        "bad argument #2 to 'open_tcp_listeners' (backlog must be an integer or nil, got 2.5)")
      assert_has(errof(trio.open_tcp_listeners, 0, { backlog = "10" }),
        "backlog must be an integer or nil, got string")
      assert_has(errof(trio.open_tcp_listeners, 0, { backlog = -1 }), "backlog must not be negative, got -1")
    end)
  end)

  it("open_tcp_listeners: no family supported: an OSError with the errno and the attempts' errors", function()
    local real_socket = tsocket.socket
    local e = run(function()
      tsocket.socket = function()
        error(errors.OSError { message = "socket: not here", errno = 97, code = "EAFNOSUPPORT" }, 0)
      end
      local ok, err = pcall(trio.open_tcp_listeners, 0, { host = "127.0.0.1" })
      tsocket.socket = real_socket
      return not ok and err
    end)
    tsocket.socket = real_socket
    assert.is_true(errors.OSError:is(e), tostring(e))
    assert.equal("EAFNOSUPPORT", e.code)
    assert.equal(97, e.errno)
    assert.equal(1, #e.errors)
    assert.equal("socket: not here", e.errors[1].message)
  end)

  it("two listeners with reuse_port share one port", function()
    run(function()
      local a = trio.open_tcp_listeners(0, { host = "127.0.0.1", reuse_port = true })[1]
      local port = a.socket:getsockname()[2]
      local b = trio.open_tcp_listeners(port, { host = "127.0.0.1", reuse_port = true })[1]
      assert.equal(port, b.socket:getsockname()[2])
      a:close()
      b:close()
    end)
  end)

  it("nursery:start(serve_tcp, handler, 0) and with an options table: the start value is the listeners", function()
    run(function()
      trio.open_nursery(function(n)
        local ls1 = n:start(trio.serve_tcp, echo, 0)
        local ls2 = n:start(trio.serve_tcp, echo, 0, { host = "127.0.0.1" })
        assert.is_true(#ls1 >= 1)
        assert.equal(1, #ls2)
        assert.equal("trio.SocketListener", getmetatable(ls2[1]).__name)
        for _, ls in ipairs { ls1, ls2 } do
          local c = testing.open_stream_to_socket_listener(ls[1])
          c:send_all("echo me")
          assert.equal("echo me", c:receive_some())
          c:close()
        end
        n.cancel_scope:cancel()
      end)
    end)
  end)

  it("each connection runs in its own task and its stream is closed when the handler returns", function()
    run(function()
      local served = 0
      trio.open_nursery(function(n)
        local ls = n:start(trio.serve_tcp, function(stream)
          served = served + 1
          stream:send_all("bye")
        end, 0, { host = "127.0.0.1" })
        for _ = 1, 3 do
          local c = testing.open_stream_to_socket_listener(ls[1])
          assert.equal("bye", c:receive_some())
          assert.equal("", c:receive_some()) -- closed by serve_tcp
          c:close()
        end
        n.cancel_scope:cancel()
      end)
      assert.equal(3, served)
    end)
  end)

  it("cancelling serve_tcp closes the listeners and every stream: no fd left, the port refuses", function()
    local before = net.nfds()
    run(function()
      local port
      trio.open_nursery(function(n)
        local ls = n:start(trio.serve_tcp, echo, 0, { host = "127.0.0.1" })
        port = ls[1].socket:getsockname()[2]
        local c = trio.open_tcp_stream("127.0.0.1", port)
        c:send_all("x")
        assert.equal("x", c:receive_some())
        n.cancel_scope:cancel()
        c:close()
      end)
      assert.is_true(errors.ConnectionRefusedError:is(errof(trio.open_tcp_stream, "127.0.0.1", port)))
    end)
    assert.equal(before, net.nfds())
  end)

  it("serve_listeners with a handler_nursery; task_status given in the options", function()
    run(function()
      trio.open_nursery(function(handlers)
        trio.open_nursery(function(n)
          local listeners = trio.open_tcp_listeners(0, { host = "127.0.0.1" })
          local got = n:start(trio.serve_listeners, function(stream)
            assert.is_true(#handlers.child_tasks >= 1)
            stream:send_all("from handler nursery")
          end, listeners, { handler_nursery = handlers })
          assert.equal(listeners, got)
          local c = testing.open_stream_to_socket_listener(listeners[1])
          assert.equal("from handler nursery", c:receive_some())
          c:close()
          n.cancel_scope:cancel()
        end)
      end)
      assert_has(errof(trio.serve_listeners, print, {}), "bad argument #2 to 'serve_listeners'")
      assert_has(errof(trio.serve_tcp, print, 0, 5),
        "bad argument #3 to 'serve_tcp' (options table or task status expected, got number)")
    end)
  end)

  it("an error in a handler propagates out of serve_tcp (Trio's rule)", function()
    local e = run(function()
      local ok, err = pcall(trio.open_nursery, function(n)
        local ls = n:start(trio.serve_tcp, function() error("handler failed") end, 0, { host = "127.0.0.1" })
        local c = testing.open_stream_to_socket_listener(ls[1])
        c:receive_some()
        c:close()
        trio.sleep_forever()
      end)
      return not ok and err
    end)
    assert_has(e, "handler failed")
  end)

  it("serve_listeners starts the handlers of every connection already waiting in one step", function()
    run(function()
      local listeners = trio.open_tcp_listeners(0, { host = "127.0.0.1" })
      local port = listeners[1].socket:getsockname()[2]
      -- five clients connected (the kernel completes the TCP handshake)
      -- before anyone accepts
      local clients = {}
      for i = 1, 5 do clients[i] = trio.open_tcp_stream("127.0.0.1", port) end
      local batch, seen, all_served = 0, {}, trio.Event()
      trio.open_nursery(function(n)
        n:start_soon(function() -- counts the scheduler's batches
          while true do
            batch = batch + 1
            trio.lowlevel.checkpoint()
          end
        end)
        n:start_soon(trio.serve_listeners, function(stream)
          seen[#seen + 1] = batch
          stream:send_all("hi")
          if #seen == #clients then all_served:set() end
        end, listeners)
        all_served:wait()
        for _, c in ipairs(clients) do
          assert.equal("hi", c:receive_some())
          c:close()
        end
        n.cancel_scope:cancel()
      end)
      assert.equal(5, #seen)
      for i = 2, 5 do assert.equal(seen[1], seen[i]) end -- all in the same batch
    end)
  end)

  it("SocketListener:_accept_nowait: a waiting connection's stream, else nil without waiting", function()
    run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      assert.is_nil(listener:_accept_nowait()) -- nobody connected
      local c = trio.open_tcp_stream("127.0.0.1", listener.socket:getsockname()[2])
      local s = listener:_accept_nowait()
      assert.equal("trio.SocketStream", getmetatable(s).__name)
      c:send_all("ping")
      assert.equal("ping", s:receive_some())
      s:close()
      c:close()
      listener:close()
      assert.is_nil(listener:_accept_nowait()) -- closed: nil, the next accept() raises
      assert.is_true(errors.ClosedResourceError:is(errof(listener.accept, listener)))
    end)
  end)

  it("EMFILE on accept does not kill serve_tcp: it waits and accepts again (lowered fd limit)", function()
    local status, out = net.run_lua([[
      package.path = "spec/?.lua;" .. package.path -- support_net, also for an installed rock
      local trio = require "trio"
      local function nfds() local n = 0 for _ in require("lfs").dir("/proc/self/fd") do n = n + 1 end return n end
      trio.run(function()
        trio.fail_after(20, function()
          trio.open_nursery(function(n)
            local ls = n:start(trio.serve_tcp, function(s) s:send_all("served") end, 0, { host = "127.0.0.1" })
            local addr = ls[1].socket:getsockname()
            local clients = {}
            for i = 1, 3 do clients[i] = trio.socket.socket() end
            -- use up the descriptors, then connect: the server's accept
            -- fails with EMFILE
            local hogs = require("support_net").use_up_fds()
            for _, c in ipairs(clients) do c:connect(addr) end
            trio.sleep(0.3)
            for _, h in ipairs(hogs) do h:close() end
            for _, c in ipairs(clients) do c:close() end
            local s = trio.open_tcp_stream(addr[1], addr[2])
            print("after EMFILE: " .. s:receive_some())
            s:close()
            n.cancel_scope:cancel()
          end)
        end)
      end)
    ]], "ulimit -n 64; ")
    assert.equal(0, status, out)
    assert_has(out, "accept returned EMFILE")
    assert_has(out, "after EMFILE: served")
  end)
end)

describe("Unix-domain streams", function()
  it("serve_unix, open_unix_socket; the listener removes its path when it closes", function()
    local path = os.tmpname()
    os.remove(path)
    run(function()
      trio.open_nursery(function(n)
        local ls = n:start(trio.serve_unix, function(s) s:send_all("unix: " .. s:receive_some()) end, path)
        assert.equal(path, ls[1].socket:getsockname())
        local c = trio.open_unix_socket(path)
        c:send_all("hello")
        assert.equal("unix: hello", c:receive_some())
        c:close()
        n.cancel_scope:cancel()
      end)
    end)
    assert.is_nil(io.open(path))
  end)

  it("the Unix functions take a trio.Path as well as a string", function()
    local path = trio.Path(os.tmpname())
    os.remove(tostring(path))
    run(function()
      trio.open_nursery(function(n)
        local ls = n:start(trio.serve_unix, function(s) s:send_all("via Path") end, path)
        assert.equal(tostring(path), ls[1].socket:getsockname())
        local c <close> = trio.open_unix_socket(path)
        assert.equal("via Path", c:receive_some())
        n.cancel_scope:cancel()
      end)
      local l = trio.open_unix_listener(path)
      assert.equal(tostring(path), l.socket:getsockname())
      l:close()
      assert_has(errof(trio.open_unix_socket, 4), "(path string or trio.Path expected, got number)")
      assert_has(errof(trio.open_unix_listener, {}), "(path string or trio.Path expected, got table)")
    end)
    assert.is_nil(io.open(tostring(path)))
  end)

  it("a missing path: FileNotFoundError with filename", function()
    local e = run(function()
      local ok, err = pcall(trio.open_unix_socket, "/nonexistent/sock")
      return not ok and err
    end)
    assert.is_true(errors.FileNotFoundError:is(e), tostring(e))
    assert.equal("/nonexistent/sock", e.filename)
  end)

  it("open_unix_listener passes the half-closeable checks through its streams", function()
    local path = os.tmpname()
    os.remove(path)
    run(function()
      local listener = trio.open_unix_listener(path)
      local function pair()
        local c, s
        trio.open_nursery(function(n)
          n:start_soon(function() s = listener:accept() end)
          c = trio.open_unix_socket(path)
        end)
        return c, s
      end
      testing.check_half_closeable_stream(pair, clogged(pair))
      listener:close()
      assert_has(errof(trio.open_unix_socket, ""), "bad argument #1 to 'open_unix_socket'")
    end)
  end)
end)
