-- Ported from Trio's src/trio/_tests/test_highlevel_socket.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: aclose() is close(), a plain call that never waits
-- (docs/SEMANTICS.md "Stream close() is a plain call"), so the checkpoint
-- checks around listener.aclose() are left out; assert_checkpoints is the
-- helpers' check that the task was rescheduled.  Python's TypeError and
-- ValueError for bad arguments are "bad argument" errors.  The stdlib
-- socket that SocketStream and SocketListener refuse is a value that is
-- not a trio.socket socket (a table, a file).
--
-- Ported: test_SocketStream_send_all,
-- test_SocketListener_socket_closed_underfoot (its checkpoint check: the
-- last test), test_socket_stream_works_when_peer_has_already_closed.
-- Adapted: test_SocketStream_basics (setsockopt_tests: setsockopt has no
-- optlen argument here, so the SO_BINDTODEVICE call and the "value and
-- optlen both given" case are left out; getsockopt with a buffer length
-- gives a string), test_SocketStream_generic (fill_stream writes with the
-- stream's socket, see fill_stream), test_SocketListener (no checkpoint
-- check on close(), see above; the one on accept() after close(): the last
-- test), test_SocketListener_accept_errors (Trio scripts the errors with a
-- fake socket; trio.SocketListener takes real sockets only, so the EMFILE
-- case runs for real, in a child process with a low descriptor limit,
-- and the connection left waiting is accepted once a descriptor is free
-- again; the ignorable ECONNABORTED/EPERM/EPROTO and the EFAULT/ENOBUFS
-- cases cannot be made to happen on loopback).
-- The last test gathers the checkpoint checks on an accept() that raises
-- at once (closed listener, socket closed underfoot, EMFILE), so that the
-- other checks of those tests run whatever it finds.
local trio = require "trio"
local H = require "conformance.trio_helpers"
local net = require "support_net"

local tsocket = trio.socket
local ClosedResourceError = trio.ClosedResourceError

-- fill_stream: a sender writes until it blocks, then it is cancelled.
-- It writes with the stream's socket: a SocketStream whose send_all is
-- cancelled with bytes still queued is unusable afterwards
-- (docs/SEMANTICS.md "trio.socket send and recv"), where Trio's stays
-- usable; the socket's own send leaves the stream as Trio's fill_stream
-- leaves it, its socket's buffers full.
local function fill_stream(s)
  trio.open_nursery(function(nursery)
    nursery:start_soon(function()
      while true do s.socket:send(("x"):rep(10000)) end
    end)
    nursery:start_soon(function()
      trio.testing.wait_all_tasks_blocked()
      nursery.cancel_scope:cancel()
    end)
  end)
end

local function assert_has(s, sub)
  assert(tostring(s):find(sub, 1, true), ("expected %q to contain %q"):format(tostring(s), sub))
end

-- A TCP listening socket on loopback.
local function tcp_listen_socket(backlog)
  local s = tsocket.socket()
  s:bind { "127.0.0.1", 0 }
  s:listen(backlog)
  return s
end

-- The EMFILE case of test_SocketListener_accept_errors, in a child process
-- with a low descriptor limit (run once; its output is kept).
local emfile_output
local function emfile_accept()
  if emfile_output then return emfile_output end
  local status, out = net.run_lua([[
    package.path = "spec/?.lua;" .. package.path -- the helpers, also for an installed rock
    local trio = require "trio"
    local H = require "conformance.trio_helpers"
    H.run(function()
      local listen_sock = trio.socket.socket()
      listen_sock:bind { "127.0.0.1", 0 }
      listen_sock:listen(10)
      local listener = trio.SocketListener(listen_sock)
      local client = trio.socket.socket()
      client:connect(listen_sock:getsockname())
      -- no descriptor left for the accepted connection
      local hogs = require("support_net").use_up_fds()
      local e = H.raises(trio.OSError, listener.accept, listener)
      print("error: " .. tostring(e.code) .. ": " .. e.message)
      print("the accept that raised EMFILE checkpointed: "
        .. tostring(pcall(H.assert_checkpoints, H.raises, trio.OSError, listener.accept, listener)))
      -- the connection is still waiting: accepted once a descriptor is free
      table.remove(hogs):close()
      local ok, stream = pcall(H.assert_checkpoints, listener.accept, listener)
      print("the accept that succeeded checkpointed: " .. tostring(ok))
      if not ok then stream = listener:accept() end
      print("accepted the waiting client: "
        .. tostring(stream.socket:getpeername()[2] == client:getsockname()[2]))
      stream:close()
      for _, h in ipairs(hogs) do h:close() end
      client:close()
      listener:close()
    end)
  ]], "ulimit -n 64; ")
  assert.equal(0, status, out)
  emfile_output = out
  return out
end

describe("test_highlevel_socket.py", function()
  it("test_SocketStream_basics", function()
    H.run(function()
      -- not a trio.socket socket
      assert_has(H.raises(H.any, trio.SocketStream, {}), "trio.socket socket expected")
      assert_has(H.raises(H.any, trio.SocketStream, io.stdout), "trio.socket socket expected")

      -- a DGRAM socket
      do
        local sock <close> = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
        assert_has(H.raises(H.any, trio.SocketStream, sock), "SOCK_STREAM")
      end

      do
        local a, b = tsocket.socketpair()
        local s = trio.SocketStream(a)
        assert.equal(a, s.socket)
        a:close()
        b:close()
      end

      -- the options of a connected TCP socket (socketpair gives Unix ones)
      local listen_sock <close> = tcp_listen_socket(1)
      local client_sock <close> = tsocket.socket()
      client_sock:connect(listen_sock:getsockname())
      local s = trio.SocketStream(client_sock)
      -- TCP_NODELAY is on by default, and can be turned off
      assert.is_not.equal(0, s:getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY))
      s:setsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, false)
      assert.equal(0, s:getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY))
      local res = s:getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, 1)
      assert.equal("string", type(res))
      assert.equal(1, #res)

      -- setsockopt_tests: a value; no value is a bad argument
      s:setsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, false)
      assert_has(H.raises(H.any, s.setsockopt, s, tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, nil),
        "integer, boolean or string expected")
    end)
  end)

  it("test_SocketStream_send_all", function()
    local BIG = 10000000
    H.run(function()
      local a_sock, b_sock = tsocket.socketpair()
      local a <close> = trio.SocketStream(a_sock)
      local b <close> = trio.SocketStream(b_sock)
      -- a send_all that the socket takes in several parts
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() a:send_all(("\0"):rep(BIG)) end)
        nursery:start_soon(function()
          -- the sender fills the kernel's buffers and blocks first
          trio.testing.wait_all_tasks_blocked()
          local nbytes = 0
          while nbytes < BIG do
            local data = b:receive_some(BIG)
            assert.is_nil(data:find("[^%z]"))
            nbytes = nbytes + #data
          end
          assert.equal(BIG, nbytes)
        end)
      end)
      -- that was all of it
      a:send_all("e")
      assert.equal("e", b:receive_some(10))
      a:send_eof()
      assert.equal("", b:receive_some(10))
    end)
  end)

  it("test_SocketStream_generic", function()
    local function stream_maker()
      local left, right = tsocket.socketpair()
      return trio.SocketStream(left), trio.SocketStream(right)
    end
    local function clogged_stream_maker()
      local left, right = stream_maker()
      fill_stream(left)
      fill_stream(right)
      return left, right
    end
    H.run(trio.testing.check_half_closeable_stream, stream_maker, clogged_stream_maker)
  end)

  it("test_SocketListener", function()
    H.run(function()
      -- not a trio.socket socket
      assert_has(H.raises(H.any, trio.SocketListener, {}), "trio.socket socket expected")

      -- not SOCK_STREAM
      do
        local s <close> = tsocket.socket(tsocket.AF_INET, tsocket.SOCK_DGRAM)
        s:bind { "127.0.0.1", 0 }
        assert_has(H.raises(H.any, trio.SocketListener, s), "SOCK_STREAM")
      end

      -- listen() was not called
      do
        local s <close> = tsocket.socket()
        s:bind { "127.0.0.1", 0 }
        assert_has(H.raises(H.any, trio.SocketListener, s), "listen")
      end

      local listen_sock = tcp_listen_socket(10)
      local listener = trio.SocketListener(listen_sock)
      assert.equal(listen_sock, listener.socket)

      local client_sock = tsocket.socket()
      client_sock:connect(listen_sock:getsockname())
      local server_stream = H.assert_checkpoints(listener.accept, listener)
      assert.equal("trio.SocketStream", getmetatable(server_stream).__name)
      assert.same(listen_sock:getsockname(), server_stream.socket:getsockname())
      assert.same(client_sock:getsockname(), server_stream.socket:getpeername())

      listener:close()
      listener:close() -- closing twice is fine
      H.raises(ClosedResourceError, listener.accept, listener) -- its checkpoint: see below

      client_sock:close()
      server_stream:close()
    end)
  end)

  it("test_SocketListener_socket_closed_underfoot", function()
    H.run(function()
      local listen_sock = tcp_listen_socket(10)
      local listener = trio.SocketListener(listen_sock)
      -- the socket is closed, not the listener
      listen_sock:close()
      H.raises(ClosedResourceError, listener.accept, listener) -- its checkpoint: see below
    end)
  end)

  it("test_SocketListener_accept_errors (EMFILE, for real)", function()
    local out = emfile_accept()
    assert_has(out, "error: EMFILE: ")
    assert_has(out, "accepted the waiting client: true")
    assert_has(out, "the accept that succeeded checkpointed: true")
  end)

  -- The checkpoint checks of the three tests above on an accept() that
  -- fails at once: Trio's socket calls end with a schedule point whether
  -- they return or raise (_try_sync); each case that does not is named.
  it("test_SocketListener, test_SocketListener_socket_closed_underfoot, "
    .. "test_SocketListener_accept_errors: an accept() that raises at once checkpoints", function()
    local missing = {}
    H.run(function()
      local listener = trio.SocketListener(tcp_listen_socket(10))
      listener:close()
      if not pcall(H.assert_checkpoints, H.raises, ClosedResourceError, listener.accept, listener) then
        missing[#missing + 1] = "the listener was closed"
      end
      local listen_sock = tcp_listen_socket(10)
      listener = trio.SocketListener(listen_sock)
      listen_sock:close()
      if not pcall(H.assert_checkpoints, H.raises, ClosedResourceError, listener.accept, listener) then
        missing[#missing + 1] = "its socket was closed underfoot"
      end
    end)
    if not emfile_accept():find("the accept that raised EMFILE checkpointed: true", 1, true) then
      missing[#missing + 1] = "EMFILE"
    end
    assert(#missing == 0, "accept() raised without a checkpoint when: " .. table.concat(missing, ", "))
  end)

  it("test_socket_stream_works_when_peer_has_already_closed", function()
    H.run(function()
      local sock_a, sock_b = tsocket.socketpair()
      sock_b:send("x")
      sock_b:close()
      local stream <close> = trio.SocketStream(sock_a)
      assert.equal("x", stream:receive_some(1))
      assert.equal("", stream:receive_some(1))
    end)
  end)
end)
