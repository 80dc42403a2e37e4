-- The flavor-neutral socket core (csrc/io/): sockets on libuv handles,
-- their waiter slots, OS errors, name resolution, and what both faces rely
-- on (received bytes kept for the next reader, writes queued without
-- copies, closing wakes waiters, no fd or handle left behind).  The public
-- faces (trio.socket, streams, transports) have their own specs; these
-- tests drive the core through trio_asyncio.core.
local trio = require "trio"
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local K = core.socket_constants()

local function run(fn)
  return trio.run(function() return trio.fail_after(5, fn) end)
end

local function tcp_pair()
  local srv = core.socket(K.AF_INET, K.SOCK_STREAM)
  srv:bind { "127.0.0.1", 0 }
  srv:listen()
  local a = core.socket(K.AF_INET, K.SOCK_STREAM)
  local b
  trio.open_nursery(function(n)
    n:start_soon(function() b = srv:accept() end)
    a:connect(srv:getsockname())
  end)
  srv:close()
  return a, b
end

describe("io sockets: creating and plain calls", function()
  it("socket() picks the libuv handle by family and type; fields and fileno", function()
    local s = core.socket(K.AF_INET, K.SOCK_STREAM)
    assert.equal(K.AF_INET, s.family)
    assert.equal(K.SOCK_STREAM, s.type)
    assert.equal(0, s.proto)
    assert.is_true(s:fileno() >= 0)
    assert_has(tostring(s), "family=AF_INET, type=SOCK_STREAM")
    s:close()
    assert.equal(-1, s:fileno())
    assert.equal(K.AF_INET, s.family) -- readable after close
    s:close() -- idempotent
    local u = core.socket(K.AF_INET, K.SOCK_DGRAM)
    assert.equal(K.SOCK_DGRAM, u.type)
    u:close()
    local x = core.socket(K.AF_UNIX, K.SOCK_STREAM)
    assert.is_true(x:fileno() >= 0) -- an fd from the start: options before bind
    x:close()
  end)

  it("an unsupported family/type is refused with a message naming socket", function()
    assert_has(errof(core.socket, K.AF_UNIX, K.SOCK_DGRAM), "socket: unsupported family/type")
  end)

  it("bind, getsockname, options; bind on a used port raises OSError with errno and code", function()
    local a = core.socket(K.AF_INET, K.SOCK_STREAM)
    a:bind { "127.0.0.1", 0 }
    a:listen(5)
    local addr = a:getsockname()
    assert.equal("127.0.0.1", addr[1])
    assert.is_true(math.type(addr[2]) == "integer" and addr[2] > 0)
    a:setsockopt(K.SOL_SOCKET, K.SO_KEEPALIVE, true)
    assert.is_true(a:getsockopt(K.SOL_SOCKET, K.SO_KEEPALIVE) ~= 0)
    a:setsockopt(K.SOL_SOCKET, K.SO_LINGER, string.pack("ii", 1, 0))
    assert.equal(string.pack("ii", 1, 0), a:getsockopt(K.SOL_SOCKET, K.SO_LINGER, 8))
    local b = core.socket(K.AF_INET, K.SOCK_STREAM)
    local e = errof(b.bind, b, addr)
    assert.is_true(errors.OSError:is(e))
    assert.equal("EADDRINUSE", e.code)
    assert.equal(98, e.errno)
    assert_has(e.message, "bind 127.0.0.1:" .. addr[2] .. ": address already in use")
    a:close()
    b:close()
  end)

  it("bad address shapes are argument errors naming the method", function()
    local s = core.socket(K.AF_INET, K.SOCK_STREAM)
    assert_has(errof(s.bind, s, "x"), "bad argument #1 to 'bind' (address {host, port} expected, got string)")
    assert_has(errof(s.bind, s, { "127.0.0.1" }), "port number expected, got nil")
    assert_has(errof(s.bind, s, { "127.0.0.1", 70000 }), "port must be 0-65535")
    assert_has(errof(s.bind, s, { 1, 2 }), "host string expected, got number")
    local e = errof(s.bind, s, { "::1", 0 })
    assert.is_true(errors.gaierror:is(e))
    e = errof(s.bind, s, { "example.invalid", 0 })
    assert.is_true(errors.gaierror:is(e))
    assert_has(e.message, "not a numeric address")
    s:close()
    local u = core.socket(K.AF_UNIX, K.SOCK_STREAM)
    assert_has(errof(u.bind, u, { "x", 1 }), "bad argument #1 to 'bind' (path string expected, got table)")
    assert_has(errof(u.bind, u, ("x"):rep(200)), "path too long")
    u:close()
  end)

  it("methods of a closed socket raise OSError EBADF", function()
    local s = core.socket(K.AF_INET, K.SOCK_STREAM)
    s:close()
    local e = errof(s.getsockname, s)
    assert.is_true(errors.OSError:is(e))
    assert.equal("EBADF", e.code)
    assert_has(e.message, "getsockname: the socket is closed")
  end)

  it("from_fd duplicates the descriptor (as Python's fromfd)", function()
    local a, b = core.socketpair()
    local c = core.socket_from_fd(a:fileno(), K.AF_UNIX, K.SOCK_STREAM)
    assert.are_not.equal(a:fileno(), c:fileno())
    a:close()
    run(function()
      c:send("via dup")
      assert.equal("via dup", b:recv(100))
    end)
    c:close()
    b:close()
  end)
end)

describe("io sockets: waiting (Trio face)", function()
  it("socketpair: send and recv; EOF is an empty string, again and again", function()
    local a, b = core.socketpair()
    run(function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          assert.equal("hello", b:recv(100))
          assert.equal("", b:recv(100))
          assert.equal("", b:recv(100))
        end)
        trio.sleep(0.01)
        assert.equal(5, a:send("hello"))
        a:close()
      end)
    end)
    b:close()
  end)

  it("recv takes at most max bytes and leaves the rest for the next call", function()
    local a, b = core.socketpair()
    run(function()
      a:send("abcdefgh")
      trio.sleep(0.01)
      assert.equal("abc", b:recv(3))
      assert.equal("defgh", b:recv(100))
    end)
    a:close()
    b:close()
  end)

  it("TCP: listen, accept (with the peer address), connect, echo", function()
    run(function()
      local srv = core.socket(K.AF_INET, K.SOCK_STREAM)
      srv:bind { "127.0.0.1", 0 }
      srv:listen()
      local port = srv:getsockname()[2]
      trio.open_nursery(function(n)
        n:start_soon(function()
          local c, peer = srv:accept()
          assert.equal("127.0.0.1", peer[1])
          assert.same(peer, c:getpeername())
          c:send(c:recv(10):upper())
          c:close()
        end)
        local cl = core.socket(K.AF_INET, K.SOCK_STREAM)
        cl:connect { "127.0.0.1", port }
        assert.equal(port, cl:getpeername()[2])
        cl:send("ping")
        assert.equal("PING", cl:recv(10))
        assert.equal("", cl:recv(10))
        cl:close()
      end)
      srv:close()
    end)
  end)

  it("connect refused: ConnectionRefusedError with errno, code and the address in the message", function()
    local e = run(function()
      local c = core.socket(K.AF_INET, K.SOCK_STREAM)
      local ok, err = pcall(c.connect, c, { "127.0.0.1", 1 })
      c:close()
      assert.is_false(ok)
      return err
    end)
    assert.is_true(errors.ConnectionRefusedError:is(e))
    assert.is_true(errors.ConnectionError:is(e))
    assert.equal(111, e.errno)
    assert.equal("ECONNREFUSED", e.code)
    assert.equal("connect 127.0.0.1:1: connection refused", e.message)
  end)

  it("Unix sockets: bind to a path, connect; a missing path is FileNotFoundError with filename", function()
    local path = os.tmpname()
    os.remove(path)
    run(function()
      local srv = core.socket(K.AF_UNIX, K.SOCK_STREAM)
      srv:bind(path)
      srv:listen()
      assert.equal(path, srv:getsockname())
      trio.open_nursery(function(n)
        n:start_soon(function()
          local c = srv:accept()
          c:send("over unix")
          c:close()
        end)
        local cl = core.socket(K.AF_UNIX, K.SOCK_STREAM)
        cl:connect(path)
        assert.equal("over unix", cl:recv(100))
        cl:close()
      end)
      srv:close()
      local cl = core.socket(K.AF_UNIX, K.SOCK_STREAM)
      local ok, e = pcall(cl.connect, cl, path .. ".missing")
      cl:close()
      assert.is_false(ok)
      assert.is_true(errors.FileNotFoundError:is(e))
      assert.equal(path .. ".missing", e.filename)
      assert_has(e.message, "connect " .. path .. ".missing: no such file or directory")
    end)
    os.remove(path)
  end)

  it("UDP: sendto, recvfrom with the sender's address; connected send/recv", function()
    run(function()
      local a = core.socket(K.AF_INET, K.SOCK_DGRAM)
      local b = core.socket(K.AF_INET, K.SOCK_DGRAM)
      a:bind { "127.0.0.1", 0 }
      b:bind { "127.0.0.1", 0 }
      assert.equal(3, a:sendto("one", b:getsockname()))
      local data, from = b:recvfrom(100)
      assert.equal("one", data)
      assert.same(a:getsockname(), from)
      b:connect(a:getsockname())
      b:send("two")
      assert.equal("tw", a:recv(2)) -- a datagram is cut to the size asked
      a:close()
      b:close()
    end)
  end)

  it("a cancelled recv consumes nothing: the data goes to the next recv", function()
    local a, b = core.socketpair()
    run(function()
      trio.move_on_after(0.02, b.recv, b, 100)
      a:send("kept")
      assert.equal("kept", b:recv(100))
    end)
    a:close()
    b:close()
  end)

  it("closing a socket while another task waits on it: ClosedResourceError in the waiter", function()
    local a, b = core.socketpair()
    local e = run(function()
      local err
      trio.open_nursery(function(n)
        n:start_soon(function()
          local ok, x = pcall(b.recv, b, 10)
          err = not ok and x
        end)
        trio.testing.wait_all_tasks_blocked()
        b:close()
      end)
      return err
    end)
    a:close()
    assert.is_true(trio.ClosedResourceError:is(e), tostring(e))
    assert_has(e.message, "recv: another task closed this socket")
  end)

  it("two tasks receiving from one socket: BusyResourceError", function()
    local a, b = core.socketpair()
    local e = run(function()
      local err
      trio.open_nursery(function(n)
        n:start_soon(b.recv, b, 10)
        trio.testing.wait_all_tasks_blocked()
        local ok, x = pcall(b.recv, b, 10)
        err = not ok and x
        a:send("x")
      end)
      return err
    end)
    a:close()
    b:close()
    assert.is_true(trio.BusyResourceError:is(e), tostring(e))
  end)

  it("a peer that stops reading makes send wait; the data is sent whole once it reads (no copy kept twice)", function()
    local a, b = core.socketpair()
    local big = ("0123456789abcdef"):rep(2 * 1024 * 1024 // 16 * 4) -- 8 MiB
    run(function()
      local sent_at, order = nil, {}
      trio.open_nursery(function(n)
        n:start_soon(function()
          a:send(big)
          order[#order + 1] = "sent"
        end)
        trio.sleep(0.05)
        order[#order + 1] = "reading"
        local total = 0
        local w, r = core.sock_buffer_sizes(a)
        assert.is_true(w > 0) -- queued in libuv, pointing into `big`
        assert.equal(0, r)
        while total < #big do
          local chunk = b:recv(1 << 20)
          assert.equal(big:sub(total + 1, total + #chunk), chunk)
          total = total + #chunk
        end
        sent_at = total
      end)
      assert.same({ "reading", "sent" }, order)
      assert.equal(#big, sent_at)
    end)
    a:close()
    b:close()
  end)

  it("a write to a closed peer raises BrokenPipeError (SIGPIPE is ignored)", function()
    local a, b = core.socketpair()
    b:close()
    local e = run(function()
      local ok, err = pcall(a.send, a, "x")
      return not ok and err
    end)
    a:close()
    assert.is_true(errors.BrokenPipeError:is(e), tostring(e))
    assert.equal("EPIPE", e.code)
  end)

  it("TCP reset by the peer: ConnectionResetError from recv", function()
    local e = run(function()
      local a, b = tcp_pair()
      a:setsockopt(K.SOL_SOCKET, K.SO_LINGER, string.pack("ii", 1, 0))
      a:close() -- RST
      local ok, err = pcall(b.recv, b, 10)
      b:close()
      return not ok and err
    end)
    assert.is_true(errors.ConnectionResetError:is(e), tostring(e))
  end)

  it("shutdown(SHUT_WR) sends EOF while the other direction still works", function()
    run(function()
      local a, b = tcp_pair()
      a:send("last")
      a:shutdown(K.SHUT_WR)
      assert.equal("last", b:recv(10))
      assert.equal("", b:recv(10))
      b:send("reply")
      assert.equal("reply", a:recv(10))
      local e = errof(a.send, a, "more")
      assert.is_true(errors.OSError:is(e))
      a:close()
      b:close()
    end)
  end)

  it("a cancelled connect closes the socket (Trio's rule)", function()
    run(function()
      local hole, close_hole = require("support_net").blackhole() -- a connect there hangs
      local s = core.socket(K.AF_INET, K.SOCK_STREAM)
      local scope = trio.move_on_after(0.05, s.connect, s, hole)
      assert.is_true(scope.cancelled_caught)
      assert.equal(-1, s:fileno())
      close_hole()
    end)
  end)
end)

describe("io name resolution", function()
  local function resolve(...)
    local req = core.dns_getaddrinfo(...)
    core.trio_wait_io(req, 0)
    return core.dns_result(req)
  end

  it("getaddrinfo gives {family, type, proto, canonname, addr={host, port}}", function()
    local list = run(function() return resolve("127.0.0.1", 80, K.AF_INET, K.SOCK_STREAM) end)
    assert.equal(1, #list)
    assert.same({ "127.0.0.1", 80 }, list[1].addr)
    assert.equal(K.AF_INET, list[1].family)
    assert.equal(K.SOCK_STREAM, list[1].type)
    assert.equal(K.IPPROTO_TCP, list[1].proto)
    assert.equal("", list[1].canonname)
  end)

  it("an unknown name raises gaierror with code EAI_NONAME and the name in the message", function()
    local e = run(function()
      local ok, err = pcall(resolve, "no-such-host.invalid", 80, 0, K.SOCK_STREAM)
      return not ok and err
    end)
    assert.is_true(errors.gaierror:is(e), tostring(e))
    assert.is_true(errors.OSError:is(e))
    assert.equal("EAI_NONAME", e.code)
    assert_has(e.message, "getaddrinfo no-such-host.invalid:80")
  end)

  it("numeric_only: an address and a port number are read at once; a name gives nil", function()
    run(function()
      local req = core.dns_getaddrinfo("127.0.0.1", 8080, K.AF_INET, K.SOCK_STREAM, 0, 0, true)
      local list = core.dns_result(req) -- no wait: finished already
      assert.same({ "127.0.0.1", 8080 }, list[1].addr)
      req = core.dns_getaddrinfo("::1", 443, 0, K.SOCK_STREAM, 0, 0, true)
      assert.same({ "::1", 443 }, core.dns_result(req)[1].addr)
      assert.is_nil(core.dns_getaddrinfo("localhost", 80, 0, K.SOCK_STREAM, 0, 0, true))
      assert.is_nil(core.dns_getaddrinfo("127.0.0.1", "http", 0, K.SOCK_STREAM, 0, 0, true))
      -- an address of the wrong family fails at once with its gaierror
      req = core.dns_getaddrinfo("::1", 80, K.AF_INET, K.SOCK_STREAM, 0, 0, true)
      local ok, e = pcall(core.dns_result, req)
      assert.is_false(ok)
      assert.is_true(errors.gaierror:is(e), tostring(e))
    end)
  end)

  it("getnameinfo gives host and service", function()
    local host, serv = run(function()
      local req = core.dns_getnameinfo({ "127.0.0.1", 80 }, K.NI_NUMERICHOST | K.NI_NUMERICSERV)
      core.trio_wait_io(req, 0)
      return core.dns_result(req)
    end)
    assert.equal("127.0.0.1", host)
    assert.equal("80", serv)
  end)

  it("a lookup dropped while it runs is freed by libuv later (no leak, no crash)", function()
    run(function()
      local req = core.dns_getaddrinfo("localhost", 80, 0, K.SOCK_STREAM)
      core.dns_cancel(req)
      trio.sleep(0.01)
    end)
  end)
end)

describe("io sockets: the asyncio face's waits", function()
  it("a loop callback armed on a socket runs from the loop when data comes", function()
    local asyncio = require "asyncio"
    local a, b = core.socketpair()
    local loop = asyncio.new_event_loop()
    local got = loop:run_until_complete(function()
      local fut = loop:create_future()
      assert.is_nil(core.sock_try_recv(b, 10)) -- would wait
      assert.is_true(core.aio_arm(b, 0, loop, core.aio_set_result_once, fut))
      loop:call_later(0.01, function() core.sock_write(a, "from the loop") end)
      fut:await()
      return core.sock_try_recv(b, 100)
    end)
    loop:close()
    a:close()
    b:close()
    assert.equal("from the loop", got)
  end)

  it("sock_try_recv says whether more is pending: buffered bytes or an end of stream", function()
    local asyncio = require "asyncio"
    local a, b = core.socketpair()
    local loop = asyncio.new_event_loop()
    local got = loop:run_until_complete(function()
      local r = {}
      local function wait_readable()
        local fut = loop:create_future()
        assert.is_true(core.aio_arm(b, 0, loop, core.aio_set_result_once, fut))
        fut:await()
      end
      assert.is_nil(core.sock_try_recv(b, 10)) -- would wait; reading starts
      core.sock_write(a, "one")
      wait_readable()
      r[#r + 1] = { core.sock_try_recv(b, 100) } -- all taken, nothing pending
      core.sock_write(a, "two and three")
      wait_readable()
      r[#r + 1] = { core.sock_try_recv(b, 3) } -- part taken: more buffered
      r[#r + 1] = { core.sock_try_recv(b, 100) }
      core.sock_write(a, "last")
      a:close()
      asyncio.sleep(0.05) -- the bytes and the end of stream arrive
      r[#r + 1] = { core.sock_try_recv(b, 100) } -- the end is pending
      r[#r + 1] = { core.sock_try_recv(b, 100) } -- and stays: "" again at once
      return r
    end)
    loop:close()
    b:close()
    assert.same({ { "one", false }, { "two", true }, { " and three", false }, { "last", true }, { "", true } }, got)
  end)

  -- Arms a persistent read wait calling callback(i, b) on the b side of
  -- each of n socket pairs (b: the list of them), makes all of them
  -- readable at once and lets the loop run (setup(loop) first, if given).
  local function wake_together(n, callback, setup)
    local asyncio = require "asyncio"
    local a, b = {}, {}
    for i = 1, n do
      a[i], b[i] = core.socketpair()
      assert.is_nil(core.sock_try_recv(b[i], 10)) -- reading starts
    end
    local loop = asyncio.new_event_loop()
    if setup then setup(loop) end
    loop:run_until_complete(function()
      for i = 1, n do
        assert.is_true(core.aio_arm(b[i], 0, loop, function(k) callback(k, b) end, i, true))
      end
      for i = 1, n do core.sock_write(a[i], "x") end
      asyncio.sleep(0.05)
    end)
    loop:close()
    for i = 1, n do
      a[i]:close()
      b[i]:close()
    end
  end

  it("waits woken together all run; one that raises goes to the exception handler with a Handle", function()
    local ran, ctxs = {}, {}
    wake_together(3, function(i)
      ran[#ran + 1] = i
      if i == 2 then error("callback 2 failed") end
    end, function(loop)
      loop:set_debug(true) -- (each callback timed too)
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
    end)
    table.sort(ran)
    assert.same({ 1, 2, 3 }, ran)
    assert.equal(1, #ctxs)
    assert.equal("Exception in callback", ctxs[1].message)
    assert_has(tostring(ctxs[1].exception), "callback 2 failed")
    assert.matches("^Handle %(", tostring(ctxs[1].handle))
  end)

  it("a persistent wait disarmed after its wake, before its callback ran, does not run it", function()
    local ran = {}
    wake_together(2, function(i, b)
      ran[#ran + 1] = i
      core.aio_disarm(b[3 - i], 0) -- the other one, woken as well
    end)
    assert.equal(1, #ran)
  end)

  it("disarm empties the slot; closing the loop drops its records", function()
    local asyncio = require "asyncio"
    local a, b = core.socketpair()
    local loop = asyncio.new_event_loop()
    loop:run_until_complete(function()
      local fut = loop:create_future()
      core.aio_arm(b, 0, loop, core.aio_set_result_once, fut)
      assert.is_true(core.aio_disarm(b, 0))
      assert.is_false(core.aio_disarm(b, 0))
      core.aio_arm(b, 0, loop, core.aio_set_result_once, fut)
    end)
    loop:close()
    assert.is_false(core.aio_disarm(b, 0))
    a:close()
    b:close()
  end)
end)

describe("io sockets: nothing left behind", function()
  local lfs = require "lfs"
  local function nfds()
    local n = 0
    for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
    return n
  end

  it("a socket collected without close() is closed by the GC", function()
    local before = nfds()
    local function make() return core.socket(K.AF_INET, K.SOCK_STREAM) end
    make() -- dropped at once
    assert.equal(before + 1, nfds())
    collectgarbage()
    collectgarbage()
    assert.equal(before, nfds())
    assert.equal(0, core.debug_state().handles)
  end)

  it("many connections opened and closed leave the fd count as it was", function()
    local before = nfds()
    run(function()
      for _ = 1, 50 do
        local a, b = tcp_pair()
        a:send("x")
        assert.equal("x", b:recv(1))
        a:close()
        b:close()
      end
    end)
    assert.equal(before, nfds())
  end)
end)
