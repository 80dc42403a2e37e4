-- asyncio networking: loop:sock_*, loop:getaddrinfo/getnameinfo,
-- transports and protocols (create_connection, create_server, Unix,
-- datagrams) with flow control, Server, StreamReader/StreamWriter
-- (open_connection, start_server), closing with the loop, and use from
-- Trio through the bridge.
local asyncio = require "asyncio"
local trio = require "trio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local socket = asyncio.socket

local run = net.aio_run

local function echo_server(loop, opts)
  return loop:create_server(function()
    local p = {}
    function p:connection_made(t) self.t = t end
    function p:data_received(d) self.t:write(d) end
    return p
  end, "127.0.0.1", 0, opts)
end

local function port_of(server) return server.sockets[1]:getsockname()[2] end

--- A protocol recording its calls in `log`.
local function recorder(log, extra)
  local p = extra or {}
  p.connection_made = p.connection_made or function(self, t)
    self.transport = t
    log[#log + 1] = "made"
  end
  p.data_received = p.data_received or function(_, d) log[#log + 1] = "data:" .. d end
  p.eof_received = p.eof_received or function() log[#log + 1] = "eof" end
  p.connection_lost = p.connection_lost or function(_, exc)
    log[#log + 1] = "lost:" .. (exc == nil and "nil" or tostring(exc.code or exc))
  end
  return p
end

local function wait_until(pred, secs)
  local deadline = asyncio.get_running_loop():time() + (secs or 5)
  while not pred() do
    assert(asyncio.get_running_loop():time() < deadline, "condition not reached in time")
    asyncio.sleep(0.005)
  end
end

describe("asyncio.socket and loop:sock_*", function()
  it("asyncio.socket is trio.socket", function()
    assert.equal(trio.socket, asyncio.socket)
  end)

  it("sock_connect, sock_accept, sock_sendall, sock_recv over TCP", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = socket.socket()
      srv:bind { "127.0.0.1", 0 }
      srv:listen()
      local accepted = asyncio.create_task(function() return loop:sock_accept(srv) end)
      local c = socket.socket()
      loop:sock_connect(c, { "localhost", srv:getsockname()[2] }) -- names are resolved
      local conn, addr = accepted:await()
      assert.equal("127.0.0.1", addr[1])
      loop:sock_sendall(c, "over asyncio")
      assert.equal("over asyncio", loop:sock_recv(conn, 100))
      c:close()
      assert.equal("", loop:sock_recv(conn, 100))
      conn:close()
      srv:close()
    end)
  end)

  it("sock_sendto / sock_recvfrom on UDP", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      local b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      b:bind { "127.0.0.1", 0 }
      assert.equal(4, loop:sock_sendto(a, "dgrm", b:getsockname()))
      local data, from = loop:sock_recvfrom(b, 100)
      assert.equal("dgrm", data)
      assert.equal(a:getsockname()[2], from[2])
      a:close()
      b:close()
    end)
  end)

  it("a cancelled sock_recv loses nothing; sock_* check their arguments and flavor", function()
    local a, b = socket.socketpair()
    run(function()
      local loop = asyncio.get_running_loop()
      local t = asyncio.create_task(function() return loop:sock_recv(b, 10) end)
      asyncio.sleep(0.01)
      t:cancel()
      assert.is_true(asyncio.CancelledError:is(errof(t.await, t)))
      loop:sock_sendall(a, "kept")
      assert.equal("kept", loop:sock_recv(b, 10))
      assert_has(errof(loop.sock_recv, loop, "x", 10), "bad argument #1 to 'sock_recv' (trio.socket socket expected, got string)")
      assert_has(errof(loop.sock_recv, loop, b, -1), "bad argument #2 to 'sock_recv'")
      assert_has(errof(loop.sock_sendall, loop, b, 5), "bad argument #2 to 'sock_sendall' (string expected, got number)")
    end)
    local e = trio.run(function()
      local loop = asyncio.new_event_loop()
      local ok, err = pcall(loop.sock_recv, loop, b, 10)
      loop:close()
      return not ok and err
    end)
    assert.is_true(errors.FlavorError:is(e))
    assert_has(e.message, "asyncio-flavored loop:sock_recv called from trio task")
    a:close()
    b:close()
  end)

  it("a sock_recv whose Task is cancelled but has not run yet leaves the socket to the next; two live ones are busy", function()
    local a, b = socket.socketpair()
    run(function()
      local loop = asyncio.get_running_loop()
      local first = asyncio.create_task(function() return loop:sock_recv(b, 10) end)
      asyncio.sleep(0)
      first:cancel() -- the cancellation reaches first when it runs again
      local third = asyncio.create_task(function() return loop:sock_recv(b, 10) end)
      asyncio.create_task(function() loop:sock_sendall(a, "main's") end)
      assert.equal("main's", loop:sock_recv(b, 10)) -- armed before first ran again
      assert.is_true(asyncio.CancelledError:is(errof(first.await, first)))
      assert_has(errof(third.await, third), "another task is already waiting to read from this socket")
    end)
    a:close()
    b:close()
  end)

  it("a sock_sendall while another waits to write raises BusyResourceError and sends nothing", function()
    local a, b = socket.socketpair()
    run(function()
      local loop = asyncio.get_running_loop()
      local big = ("x"):rep(4 * 1024 * 1024)
      local first = asyncio.create_task(function() loop:sock_sendall(a, big) end)
      asyncio.sleep(0.02)
      assert.is_false(first:done()) -- b does not read: a's buffers are full
      local e = errof(loop.sock_sendall, loop, a, "second")
      assert.is_true(errors.BusyResourceError:is(e))
      assert_has(e.message, "another task is already waiting to write to this socket")
      local reading = asyncio.create_task(function()
        local got = {}
        while true do
          local d = loop:sock_recv(b, 65536)
          if d == "" then return table.concat(got) end
          got[#got + 1] = d
        end
      end)
      first:await()
      a:shutdown(socket.SHUT_WR)
      local got = reading:await()
      assert.equal(#big, #got) -- "second" never went out
      assert.is_true(got == big)
    end)
    a:close()
    b:close()
  end)

  it("loop:getaddrinfo / getnameinfo: shapes, argument errors, gaierror", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local list = loop:getaddrinfo("127.0.0.1", 80, { type = socket.SOCK_STREAM })
      assert.same({ "127.0.0.1", 80 }, list[1].addr)
      assert.equal(socket.AF_INET, list[1].family)
      local host, serv = loop:getnameinfo({ "127.0.0.1", 80 }, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
      assert.equal("127.0.0.1", host)
      assert.equal("80", serv)
      assert_has(errof(loop.getaddrinfo, loop, 1, 80), "bad argument #1 to 'getaddrinfo'")
      local e = errof(loop.getaddrinfo, loop, "no-such-host.invalid", 80)
      assert.is_true(errors.gaierror:is(e))
      assert.equal("EAI_NONAME", e.code)
    end)
  end)
end)

describe("transports and protocols", function()
  it("create_connection: connection_made, data_received, eof_received, connection_lost(nil), in order", function()
    local log = {}
    run(function()
      local loop = asyncio.get_running_loop()
      local lost = loop:create_future()
      local srv = loop:create_server(function()
        return { connection_made = function(_, t)
          t:write("hello")
          t:close()
        end }
      end, "127.0.0.1", 0)
      local t, p = loop:create_connection(function()
        return recorder(log, { connection_lost = function(_, exc)
          log[#log + 1] = "lost:" .. tostring(exc)
          lost:set_result(true)
        end })
      end, "127.0.0.1", port_of(srv))
      assert.equal(t, p.transport)
      assert.equal(p, t:get_protocol())
      lost:await()
      assert.is_true(t:is_closing())
      srv:close()
    end)
    assert.same({ "made", "data:hello", "eof", "lost:nil" }, log)
  end)

  it("eof_received returning true keeps the transport open for writing", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local got = loop:create_future()
      local srv = loop:create_server(function()
        local p = {}
        function p:connection_made(t) self.t = t end
        function p:eof_received()
          self.t:write("after your eof")
          self.t:close()
          return true
        end
        return p
      end, "127.0.0.1", 0)
      local t = loop:create_connection(function()
        return { data_received = function(_, d) got:set_result(d) end }
      end, "127.0.0.1", port_of(srv))
      assert.is_true(t:can_write_eof())
      t:write_eof()
      assert_has(errof(t.write, t, "x"), "Cannot call write() after write_eof()")
      assert.equal("after your eof", got:await())
      t:close()
      srv:close()
    end)
  end)

  it("write after close() sends nothing and raises nothing; write(\"\") is a no-op", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local a, b = socket.socketpair()
      local t = loop:create_connection(function() return {} end, nil, nil, { sock = a })
      t:write("")
      t:write("one")
      assert.equal("one", loop:sock_recv(b, 100))
      t:close() -- (the socket's reading stops: transport.c then reads _closing)
      t:write("lost")
      t:write("lost too")
      assert.equal(0, t:get_write_buffer_size())
      asyncio.sleep(0.05)
      assert.equal("", loop:sock_recv(b, 100)) -- the end of the stream, nothing before it
      b:close()
    end)
  end)

  it("an error in a protocol method goes to the exception handler and closes the transport", function()
    local ctxs, log = {}, {}
    run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local srv = echo_server(loop)
      local lost = loop:create_future()
      local t = loop:create_connection(function()
        return recorder(log, {
          data_received = function() error("protocol bug") end,
          connection_lost = function(_, exc)
            log[#log + 1] = "lost"
            lost:set_result(exc)
          end,
        })
      end, "127.0.0.1", port_of(srv))
      t:write("x")
      assert_has(lost:await(), "protocol bug")
      srv:close()
    end)
    assert.equal(1, #ctxs)
    assert.equal("protocol.data_received() call failed.", ctxs[1].message)
    assert_has(ctxs[1].exception, "protocol bug")
    assert.same({ "made", "lost" }, log)
  end)

  for _, debug in ipairs { false, true } do
    it("data_received raising after set_protocol: reported with the protocol called, that transport closed, "
        .. "the other woken in the same batch still served (debug " .. tostring(debug) .. ")", function()
      local ctxs, got, lost = {}, {}, {}
      run(function()
        local loop = asyncio.get_running_loop()
        loop:set_debug(debug)
        loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
        local a, b = socket.socketpair()
        local c, d = socket.socketpair()
        local bad = {
          data_received = function(self)
            self.t:set_protocol { connection_lost = function(_, exc) lost[#lost + 1] = exc end }
            error("protocol bug")
          end,
          connection_made = function(self, tr) self.t = tr end,
        }
        local t1 = loop:create_connection(function() return bad end, nil, nil, { sock = a })
        local t2 = loop:create_connection(function() return {
          data_received = function(_, data) got[#got + 1] = data end,
        } end, nil, nil, { sock = c })
        asyncio.sleep(0.01) -- both reading
        loop:sock_sendall(b, "1") -- (no wait: the two wakes come in one batch)
        loop:sock_sendall(d, "2")
        wait_until(function() return #lost == 1 and #got == 1 end)
        assert.is_true(t1:is_closing())
        assert.is_false(t2:is_closing())
        loop:sock_sendall(d, "3")
        wait_until(function() return #got == 2 end)
        assert.equal(1, #ctxs)
        assert.equal("protocol.data_received() call failed.", ctxs[1].message)
        assert_has(ctxs[1].exception, "protocol bug")
        assert.equal(bad, ctxs[1].protocol)
        assert.equal(t1, ctxs[1].transport)
        assert_has(lost[1], "protocol bug")
        assert.same({ "2", "3" }, got)
        t2:close()
        b:close()
        d:close()
      end)
    end)
  end

  it("flow control: pause_writing above the high mark, resume_writing once drained to the low mark", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local held -- the server side: it does not read until told
      local srv = loop:create_server(function()
        local p = {}
        function p:connection_made(t)
          held = t
          t:pause_reading()
        end
        return p
      end, "127.0.0.1", 0)
      local events = {}
      local resumed = loop:create_future()
      local t = loop:create_connection(function()
        return {
          pause_writing = function() events[#events + 1] = "pause" end,
          resume_writing = function()
            events[#events + 1] = "resume"
            resumed:set_result(true)
          end,
        }
      end, "127.0.0.1", port_of(srv))
      t:set_write_buffer_limits(64 * 1024)
      assert.same({ 16 * 1024, 64 * 1024 }, { t:get_write_buffer_limits() })
      local chunk = ("x"):rep(64 * 1024)
      local written = 0
      while #events == 0 do -- the writer obeys pause_writing
        t:write(chunk)
        written = written + #chunk
        assert.is_true(written < 64 * 1024 * 1024, "pause_writing never came")
      end
      assert.same({ "pause" }, events)
      assert.is_true(t:get_write_buffer_size() > 64 * 1024)
      wait_until(function() return held ~= nil end)
      held:resume_reading()
      resumed:await()
      assert.same({ "pause", "resume" }, events)
      assert.is_true(t:get_write_buffer_size() <= 16 * 1024)
      assert_has(errof(t.set_write_buffer_limits, t, 10, 20), "high (10) must be >= low (20) must be >= 0")
      t:abort()
      srv:close()
    end)
  end)

  it("pause_reading stops data_received; resume_reading delivers what came meanwhile", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop)
      local got = {}
      local t = loop:create_connection(function()
        return { data_received = function(_, d) got[#got + 1] = d end }
      end, "127.0.0.1", port_of(srv))
      t:pause_reading()
      assert.is_false(t:is_reading())
      t:write("while paused")
      asyncio.sleep(0.05)
      assert.same({}, got)
      t:resume_reading()
      assert.is_true(t:is_reading())
      wait_until(function() return #got > 0 end)
      assert.equal("while paused", table.concat(got))
      t:close()
      srv:close()
    end)
  end)

  it("each transport's state is its own: limits, pausing and closing of one leave the others at the defaults", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop)
      local function connect()
        return loop:create_connection(function() return {} end, "127.0.0.1", port_of(srv))
      end
      local t1, t2 = connect(), connect()
      t1:set_write_buffer_limits(100, 10)
      t1:pause_reading()
      t1:close()
      local t3 = connect()
      assert.same({ 10, 100 }, { t1:get_write_buffer_limits() })
      assert.is_false(t1:is_reading())
      assert.is_true(t1:is_closing())
      for _, t in ipairs({ t2, t3 }) do
        assert.same({ 16 * 1024, 64 * 1024 }, { t:get_write_buffer_limits() })
        assert.is_true(t:is_reading())
        assert.is_false(t:is_closing())
        assert.equal(0, t:get_write_buffer_size())
        t:close()
      end
      srv:close()
    end)
  end)

  it("data_received that pauses, swaps the protocol or closes: the next bytes follow it", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local a, b = socket.socketpair()
      local log, second = {}, {}
      local t = loop:create_connection(function() return {
        data_received = function(self, d)
          log[#log + 1] = d
          if d:find("pause", 1, true) then self.t:pause_reading() end
          if d:find("swap", 1, true) then
            self.t:set_protocol { data_received = function(_, d2) second[#second + 1] = d2 end }
          end
        end,
        connection_made = function(self, tr) self.t = tr end,
      } end, nil, nil, { sock = a })
      loop:sock_sendall(b, "pause")
      wait_until(function() return #log == 1 end)
      loop:sock_sendall(b, "more")
      asyncio.sleep(0.05)
      assert.same({ "pause" }, log) -- paused in data_received: nothing else read
      t:resume_reading()
      wait_until(function() return #log == 2 end)
      assert.equal("more", log[2])
      loop:sock_sendall(b, "swap")
      wait_until(function() return #log == 3 end)
      loop:sock_sendall(b, "to the new one")
      wait_until(function() return #second == 1 end)
      assert.same({ "to the new one" }, second)
      assert.equal(3, #log)
      t:close()
      assert.is_false(t:is_reading())
      loop:sock_sendall(b, "after close")
      asyncio.sleep(0.05)
      assert.equal(1, #second)
      b:close()
    end)
  end)

  it("data_received writes to its own transport and to another; a _sock that is no socket raises, even there", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local a, b = socket.socketpair()
      local c, d = socket.socketpair()
      local other = loop:create_connection(function() return {} end, nil, nil, { sock = c })
      local fake = setmetatable({ _sock = { "not a socket" }, _closing = false, _eof_written = false },
        getmetatable(other))
      local errs = {}
      loop:create_connection(function() return {
        connection_made = function(self, tr) self.t = tr end,
        data_received = function(self, data)
          self.t:write("own " .. data)
          other:write("other " .. data)
          errs[#errs + 1] = errof(fake.write, fake, data)
        end,
      } end, nil, nil, { sock = a })
      loop:sock_sendall(b, "x")
      wait_until(function() return #errs == 1 end)
      assert.equal("own x", loop:sock_recv(b, 100))
      assert.equal("other x", loop:sock_recv(d, 100))
      assert_has(errs[1], "trio_asyncio.socket expected, got table")
      other:write("after") -- outside data_received: the full check
      assert.equal("after", loop:sock_recv(d, 100))
      assert_has(errof(fake.write, fake, "y"), "trio_asyncio.socket expected, got table")
      b:close()
      d:close()
    end)
  end)

  it("the read path runs on the transport's core: anything else is an argument error, no crash", function()
    local core = require "trio_asyncio.core"
    run(function()
      local loop = asyncio.get_running_loop()
      local a, b = socket.socketpair()
      local got = {}
      local t = loop:create_connection(function() return {
        data_received = function(_, data) got[#got + 1] = data end,
      } end, nil, nil, { sock = a })
      asyncio.sleep(0.01) -- reading
      for _, bad in ipairs { t, a, io.stdout, 1 } do
        assert_has(errof(core.transport_read_ready, bad), "asyncio.TransportCore expected")
      end
      assert_has(errof(core.transport_set_protocol, a, {}), "asyncio.TransportCore expected")
      -- a persistent read wait on the read path with something else than a core: the wake's error
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local c, d = socket.socketpair()
      loop:sock_sendall(d, "y")
      assert.equal("y", loop:sock_recv(c, 1)) -- (c is reading now)
      assert.is_true(core.aio_arm(c, 0, loop, core.transport_read_ready, {}, true))
      loop:sock_sendall(d, "z")
      wait_until(function() return #ctxs == 1 end)
      assert_has(tostring(ctxs[1].exception), "asyncio.TransportCore expected")
      core.aio_disarm(c, 0)
      c:close()
      d:close()
      loop:sock_sendall(b, "x")
      wait_until(function() return #got == 1 end)
      assert.same({ "x" }, got)
      t:close()
      b:close()
    end)
  end)

  it("data_received is looked up when the protocol is set: after connection_made and by set_protocol", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local a, b = socket.socketpair()
      local got = {}
      local t = loop:create_connection(function() return {
        connection_made = function(self)
          self.data_received = function(_, data) got[#got + 1] = "made:" .. data end
        end,
      } end, nil, nil, { sock = a })
      loop:sock_sendall(b, "1")
      wait_until(function() return #got == 1 end)
      local p = { data_received = function(_, data) got[#got + 1] = "p:" .. data end }
      t:set_protocol(p)
      loop:sock_sendall(b, "2")
      wait_until(function() return #got == 2 end)
      p.data_received = function(_, data) got[#got + 1] = "changed:" .. data end
      loop:sock_sendall(b, "3")
      wait_until(function() return #got == 3 end)
      t:set_protocol(p)
      loop:sock_sendall(b, "4")
      wait_until(function() return #got == 4 end)
      assert.same({ "made:1", "p:2", "p:3", "changed:4" }, got)
      local late = {}
      t:set_protocol(late) -- (no data_received yet: looked up on each read until it has one)
      late.data_received = function(_, data) got[#got + 1] = "late:" .. data end
      loop:sock_sendall(b, "5")
      wait_until(function() return #got == 5 end)
      assert.equal("late:5", got[5])
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      t:set_protocol(42) -- not indexable: the read raises, as it did before the protocol was set
      loop:sock_sendall(b, "6")
      wait_until(function() return #ctxs == 1 end)
      assert_has(tostring(ctxs[1].exception), "attempt to index a number value")
      assert.equal(5, #got)
      t:close()
      b:close()
    end)
  end)

  it("write: argument errors; a peer gone is connection_lost(error) without the exception handler", function()
    local ctxs = {}
    run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local a, b = socket.socketpair()
      local lost = loop:create_future()
      local t = loop:create_connection(function() return {
        connection_lost = function(_, exc) lost:set_result(exc or false) end,
      } end, nil, nil, { sock = a })
      assert_has(errof(t.write, t, 42), "bad argument #1 to 'write' (string expected, got number)")
      assert_has(errof(t.write, t), "bad argument #1 to 'write' (string expected, got nil)")
      t:write("") -- nothing to do
      b:close()
      -- the kernel may take a write or two before it reports the peer gone
      for _ = 1, 20 do
        if t:is_closing() then break end
        t:write(("x"):rep(1000))
        asyncio.sleep(0.01)
      end
      local exc = lost:await()
      assert.is_true(errors.OSError:is(exc), tostring(exc))
      assert.is_true(exc.code == "EPIPE" or exc.code == "ECONNRESET", tostring(exc.code))
      t:write("after the loss") -- dropped, counted
      assert.is_true(t:is_closing())
    end)
    assert.same({}, ctxs)
  end)

  it("create_connection with sock= wants a stream socket", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      local err = errof(loop.create_connection, loop, function() return {} end, nil, nil, { sock = u })
      assert.is_true(asyncio.ValueError:is(err), tostring(err))
      assert_has(err, "A Stream Socket was expected")
      assert_has(errof(loop.create_unix_connection, loop, function() return {} end, nil, { sock = u }),
        "A UNIX Domain Stream Socket was expected")
      u:close()
    end)
  end)

  it("close() sends what is buffered first; abort() drops it; get_extra_info", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local received = {}
      local done = loop:create_future()
      local srv = loop:create_server(function()
        return {
          data_received = function(_, d) received[#received + 1] = d end,
          eof_received = function() done:set_result(true) end,
        }
      end, "127.0.0.1", 0)
      local t = loop:create_connection(function() return {} end, "127.0.0.1", port_of(srv))
      assert.equal(port_of(srv), t:get_extra_info("peername")[2])
      assert.equal("127.0.0.1", t:get_extra_info("sockname")[1])
      assert.is_true(socket._is_socket(t:get_extra_info("socket")))
      assert.equal("dflt", t:get_extra_info("nothing", "dflt"))
      local big = ("y"):rep(4 * 1024 * 1024)
      t:write(big)
      t:close()
      done:await()
      assert.equal(#big, #table.concat(received))
      srv:close()
    end)
  end)

  it("create_unix_connection / create_unix_server; the server removes its path", function()
    local path = os.tmpname()
    os.remove(path)
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = loop:create_unix_server(function()
        local p = {}
        function p:connection_made(t) t:write("unix hello") t:close() end
        return p
      end, path)
      local got = loop:create_future()
      loop:create_unix_connection(function()
        return { data_received = function(_, d) got:set_result(d) end }
      end, path)
      assert.equal("unix hello", got:await())
      srv:close()
      local e = errof(loop.create_unix_connection, loop, function() return {} end, path)
      assert.is_true(errors.FileNotFoundError:is(e), tostring(e))
      assert.equal(path, e.filename)
    end)
    assert.is_nil(io.open(path))
  end)

  it("a Unix server removes the file of its sock= too, never a file that replaced it, none with cleanup_socket=false", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    -- a socket file cannot be opened for reading: rename to itself tells it is there
    local function exists(path) return os.rename(path, path) ~= nil end
    run(function()
      local loop = asyncio.get_running_loop()
      local function factory() return {} end
      local bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      bound:bind(dir .. "/given")
      local srv = loop:create_unix_server(factory, nil, { sock = bound })
      srv:close()
      assert.is_false(exists(dir .. "/given"))

      srv = loop:create_unix_server(factory, dir .. "/replaced")
      assert(os.remove(dir .. "/replaced"))
      local other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      other:bind(dir .. "/replaced")
      srv:close()
      assert.is_true(exists(dir .. "/replaced")) -- not the server's file any more
      other:close()

      srv = loop:create_unix_server(factory, dir .. "/kept", { cleanup_socket = false })
      srv:close()
      assert.is_true(exists(dir .. "/kept"))

      assert_has(errof(loop.create_unix_server, loop, factory, dir .. "/x", { cleanup_socket = 1 }),
        "bad argument #3 to 'create_unix_server' (cleanup_socket must be a boolean)")
      assert_has(errof(loop.create_server, loop, factory, "127.0.0.1", 0, { cleanup_socket = false }),
        "unknown option 'cleanup_socket'")
    end)
    assert(os.execute("rm -rf " .. dir))
  end)

  it("a Unix server replaces a stale socket file, not another file; sock= is an AF_UNIX stream socket, without a path", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    run(function()
      local loop = asyncio.get_running_loop()
      local function factory() return {} end
      local stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      stale:bind(dir .. "/stale")
      stale:listen(1)
      stale:close() -- its file stays
      local srv = loop:create_unix_server(factory, dir .. "/stale")
      srv:close()
      local f = assert(io.open(dir .. "/file", "w"))
      f:close()
      local e = errof(loop.create_unix_server, loop, factory, dir .. "/file")
      assert.is_true(errors.OSError:is(e))
      assert_has(e, "address already in use")
      assert.is_not_nil(io.open(dir .. "/file")) -- still there
      local inet = socket.socket()
      for _, fname in ipairs { "create_unix_server", "create_unix_connection" } do
        e = errof(loop[fname], loop, factory, nil, { sock = inet })
        assert.is_true(asyncio.ValueError:is(e))
        assert_has(e, fname .. ": A UNIX Domain Stream Socket was expected")
      end
      inet:close()
      local unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      e = errof(loop.create_unix_connection, loop, factory, "/dev/null", { sock = unix })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "path and sock can not be specified at the same time")
      unix:close()
    end)
    assert(os.execute("rm -rf " .. dir))
  end)

  it("the Unix-domain calls take a trio.Path as their path", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    run(function()
      local loop = asyncio.get_running_loop()
      local path = trio.Path(dir, "p")
      local srv = asyncio.start_unix_server(function(_, w)
        w:write("via a Path")
        w:close()
      end, path)
      local r, w = asyncio.open_unix_connection(path)
      assert.equal("via a Path", r:read())
      w:close()
      srv:close()
      local e = errof(loop.create_unix_connection, loop, function() return {} end, trio.Path(dir, "none"))
      assert.is_true(errors.FileNotFoundError:is(e), tostring(e))
      assert_has(errof(loop.create_unix_server, loop, function() return {} end, 42),
        "path string or trio.Path expected, got number")
    end)
    assert(os.execute("rm -rf " .. dir))
  end)

  it("bad input raises argument errors naming the method; refused and unknown hosts raise OS errors", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      assert_has(errof(loop.create_connection, loop, 42),
        "bad argument #1 to 'create_connection' (protocol factory expected, got number)")
      assert_has(errof(loop.create_connection, loop, f, 42, 80),
        "bad argument #2 to 'create_connection' (host string expected, got number)")
      assert_has(errof(loop.create_connection, loop, f, "localhost", {}),
        "bad argument #3 to 'create_connection' (port integer expected, got table)")
      assert_has(errof(loop.create_connection, loop, f, "localhost", 99999), "port must be 0-65535")
      assert_has(errof(loop.create_connection, loop, f, "localhost", 80, { bogus = 1 }), "unknown option 'bogus'")
      assert_has(errof(loop.create_server, loop, f, "127.0.0.1", 0, { backlog = -1 }), "backlog must be a non-negative integer")
      assert_has(errof(loop.create_datagram_endpoint, loop, f, { local_addr = "x" }), "local_addr must be {host, port}")
      assert_has(errof(loop.create_datagram_endpoint, loop, f, { local_addr = { "127.0.0.1", 0, 0, 0 } }),
        "local_addr must be {host, port}")
      local e = errof(loop.create_connection, loop, f, "127.0.0.1", 1)
      assert.is_true(errors.ConnectionRefusedError:is(e))
      assert.equal("connect 127.0.0.1:1: connection refused", e.message)
      assert.is_true(errors.gaierror:is(errof(loop.create_connection, loop, f, "no-such-host.invalid", 80)))
      -- dotted quads skip the lookup; what only looks like one still goes to getaddrinfo
      assert.is_true(errors.gaierror:is(errof(loop.create_connection, loop, f, "300.1.1.1", 80)))
      assert.is_true(errors.gaierror:is(errof(loop.create_connection, loop, f, "127.0.0.1", 80,
        { family = asyncio.socket.AF_INET6 })))
    end)
  end)
end)

describe("Server", function()
  it("sockets, is_serving, close, wait_closed, get_loop; the port refuses once closed", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop)
      assert.equal(loop, srv:get_loop())
      assert.is_true(srv:is_serving())
      local port = port_of(srv)
      srv:close()
      assert.is_false(srv:is_serving())
      assert.same({}, srv.sockets) -- Python's sockets are () once closed
      srv:wait_closed()
      assert.is_true(errors.ConnectionRefusedError:is(errof(asyncio.open_connection, "127.0.0.1", port)))
    end)
  end)

  it("start_serving=false: connections wait until start_serving()", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop, { start_serving = false })
      assert.is_false(srv:is_serving())
      srv:start_serving()
      assert.is_true(srv:is_serving())
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      w:write("served")
      assert.equal("served", r:read(100))
      w:close()
      srv:close()
    end)
  end)

  it("serve_forever runs until cancelled, then closes the server", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop)
      local task = asyncio.create_task(function() srv:serve_forever() end)
      asyncio.sleep(0.01)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      w:write("ping")
      assert.equal("ping", r:read(10))
      w:close()
      task:cancel()
      assert.is_true(asyncio.CancelledError:is(errof(task.await, task)))
      assert.is_false(srv:is_serving())
    end)
  end)

  it("sock= for create_server and create_connection; reuse_port lets two servers share a port", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local lsock = socket.socket()
      lsock:bind { "127.0.0.1", 0 }
      local srv = loop:create_server(function()
        local p = {}
        function p:connection_made(t) t:write("via sock=") t:close() end
        return p
      end, nil, nil, { sock = lsock })
      assert.equal(lsock, srv.sockets[1])
      local csock = socket.socket()
      loop:sock_connect(csock, lsock:getsockname())
      local got = loop:create_future()
      loop:create_connection(function()
        return { data_received = function(_, d) got:set_result(d) end }
      end, nil, nil, { sock = csock })
      assert.equal("via sock=", got:await())
      srv:close()
      assert_has(errof(loop.create_server, loop, function() return {} end, "127.0.0.1", 0, { sock = csock }),
        "host/port and sock can not be specified at the same time")
      local a = echo_server(loop, { reuse_port = true })
      local b = loop:create_server(function() return {} end, "127.0.0.1", port_of(a), { reuse_port = true })
      assert.equal(port_of(a), port_of(b))
      a:close()
      b:close()
    end)
  end)

  it("a server is a <close> variable", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local port
      do
        local srv <close> = echo_server(loop)
        port = port_of(srv)
      end
      assert.is_true(errors.ConnectionRefusedError:is(errof(asyncio.open_connection, "127.0.0.1", port)))
    end)
  end)
end)

describe("streams", function()
  local function line_server(handler)
    return asyncio.start_server(handler, "127.0.0.1", 0)
  end

  it("readline keeps its newline; lines() strips it; read() reads to EOF; at_eof", function()
    run(function()
      local srv = line_server(function(_, w)
        w:writelines { "one\n", "two\n", "three\n", "tail" }
        w:close()
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      assert.equal("one\n", r:readline())
      local got = {}
      for line in r:lines() do got[#got + 1] = line end
      assert.same({ "two", "three", "tail" }, got)
      assert.equal("", r:read())
      assert.is_true(r:at_eof())
      w:close()
      w:wait_closed()
      srv:close()
    end)
  end)

  it("readexactly: IncompleteReadError with partial and expected", function()
    run(function()
      local srv = line_server(function(_, w)
        w:write("abcdef")
        w:close()
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      assert.equal("abcd", r:readexactly(4))
      local e = errof(r.readexactly, r, 5)
      assert.is_true(asyncio.IncompleteReadError:is(e))
      assert.equal("ef", e.partial)
      assert.equal(5, e.expected)
      assert_has(e.message, "2 bytes read on a total of 5 expected bytes")
      w:close()
      srv:close()
    end)
  end)

  it("a StreamReader's waits in a row, one cancelled between them, each get their bytes in order", function()
    local got = {}
    run(function()
      local loop = asyncio.get_running_loop()
      local srv = line_server(function(r, w)
        for _ = 1, 3 do
          local line = r:readline()
          w:write(line)
          w:drain()
        end
        w:close()
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      for i = 1, 2 do -- two waits that end with data (the second reuses the first's future)
        w:write("line " .. i .. "\n")
        got[#got + 1] = r:readexactly(7)
      end
      local reading = loop:create_task(function() return r:readexactly(7) end)
      asyncio.sleep(0.01) -- the task waits for data
      reading:cancel()
      got[#got + 1] = tostring(pcall(function() reading:await() end))
      w:write("line 3\n") -- the next wait gets a new future and these bytes
      got[#got + 1] = r:readexactly(7)
      got[#got + 1] = r:read(10)
      w:close()
      srv:close()
    end)
    assert.same({ "line 1\n", "line 2\n", "false", "line 3\n", "" }, got)
  end)

  it("future_reuse makes only a future finished with a result pending again", function()
    local core = require "trio_asyncio.core"
    run(function()
      local loop = asyncio.get_running_loop()
      local ok_fut, bad_fut, cancelled = loop:create_future(), loop:create_future(), loop:create_future()
      assert.is_false(core.future_reuse(ok_fut)) -- pending
      ok_fut:set_result(1)
      bad_fut:set_exception(asyncio.ValueError("no"))
      bad_fut:exception()
      cancelled:cancel()
      assert.is_true(core.future_reuse(ok_fut))
      assert.is_false(ok_fut:done())
      ok_fut:set_result(2)
      assert.equal(2, ok_fut:result())
      assert.is_false(core.future_reuse(bad_fut))
      assert.is_false(core.future_reuse(cancelled))
      assert.is_true(cancelled:cancelled())
      assert.is_false(core.future_reuse(loop:create_task(function() end)))
      assert.has_error(function() core.future_reuse({}) end)
    end)
  end)

  it("readuntil: the separator included; LimitOverrunError with consumed past the limit", function()
    run(function()
      local srv = line_server(function(_, w)
        w:write("key=value;" .. ("z"):rep(100) .. ";")
        w:close()
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv), { limit = 50 })
      assert.equal("key=value;", r:readuntil(";"))
      local e = errof(r.readuntil, r, ";")
      assert.is_true(asyncio.LimitOverrunError:is(e))
      assert.equal(100, e.consumed)
      assert_has(e.message, "Separator is found, but chunk is longer than limit")
      assert.equal(("z"):rep(100) .. ";", r:read(200)) -- the data stays to be read
      local e2 = errof(r.readuntil, r, "")
      assert_has(e2, "Separator should be at least one-byte string")
      w:close()
      srv:close()
    end)
  end)

  it("drain waits while the peer does not read (no unbounded buffering)", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local resume = loop:create_future()
      local srv = line_server(function(r)
        resume:await() -- does not read until told
        while r:read(65536) ~= "" do end
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      local chunk = ("d"):rep(65536)
      local blocked = false
      for _ = 1, 200 do
        w:write(chunk)
        local t = asyncio.create_task(function() w:drain() end)
        asyncio.sleep(0.001)
        if not t:done() then
          blocked = true
          resume:set_result(true)
          t:await()
          break
        end
      end
      assert.is_true(blocked, "drain never waited")
      assert.is_true(w.transport:get_write_buffer_size() <= 64 * 1024)
      w:close()
      r:read()
      srv:close()
    end)
  end)

  it("a client callback that fails goes to the exception handler and closes its connection", function()
    local ctxs = {}
    run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local srv = line_server(function() error("handler bug") end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      assert.equal("", r:read())
      w:close()
      srv:close()
    end)
    assert.equal(1, #ctxs)
    assert.equal("Unhandled exception in client_connected_cb", ctxs[1].message)
    assert_has(ctxs[1].exception, "handler bug")
  end)

  it("write_eof / can_write_eof, get_extra_info, start_tls without a context is refused", function()
    run(function()
      local srv = line_server(function(r, w)
        w:write("got " .. r:read())
        w:close()
      end)
      local r, w = asyncio.open_connection("127.0.0.1", port_of(srv))
      assert.is_true(w:can_write_eof())
      assert.equal(port_of(srv), w:get_extra_info("peername")[2])
      assert.is_nil(w:get_extra_info("ssl_object"))
      w:write("everything")
      w:write_eof()
      assert.equal("got everything", r:read())
      assert_has(errof(w.start_tls, w, {}), "bad argument #1 to 'start_tls' (trio_asyncio.ssl.SSLContext expected")
      w:close()
      assert.is_true(w:is_closing())
      srv:close()
    end)
  end)

  it("open_unix_connection / start_unix_server", function()
    local path = os.tmpname()
    os.remove(path)
    run(function()
      local srv = asyncio.start_unix_server(function(r, w)
        w:write(r:readline():upper())
        w:close()
      end, path)
      local r, w = asyncio.open_unix_connection(path)
      w:write("unix\n")
      assert.equal("UNIX\n", r:readline())
      w:close()
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("a stream method from a Trio task raises FlavorError, consumes nothing, and the stream stays usable", function()
    trio.run(function()
      trio.fail_after(10, ta.open_loop, function()
        local port, r, w
        local srv = ta.run_aio_coroutine(function()
          return asyncio.start_server(function(_, sw) sw:write("line\n") end, "127.0.0.1", 0)
        end)
        port = port_of(srv)
        r, w = ta.run_aio_coroutine(asyncio.open_connection, "127.0.0.1", port)
        trio.sleep(0.05)
        local e = errof(r.readline, r)
        assert.is_true(errors.FlavorError:is(e))
        assert_has(e.message, "asyncio-flavored StreamReader:readline called from trio task")
        assert.equal("line\n", ta.aio_as_trio(r.readline)(r))
        w:close()
        srv:close()
      end)
    end)
  end)
end)

describe("argument checks asyncio makes", function()
  it("a socket of the wrong type, or options that contradict sock=, raise ValueError", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      local udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      local tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      local e = errof(loop.create_server, loop, f, nil, nil, { sock = udp })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "create_server: A Stream Socket was expected")
      e = errof(loop.create_datagram_endpoint, loop, f, { sock = tcp })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "create_datagram_endpoint: A datagram socket was expected")
      e = errof(loop.create_datagram_endpoint, loop, f, { sock = udp, local_addr = { "127.0.0.1", 0 }, reuse_port = true })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "can not be used when sock is specified (local_addr, reuse_port)")
      udp:close()
      tcp:close()
    end)
  end)

  it("create_server needs host/port or sock; host \"\" is every interface", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      local e = errof(loop.create_server, loop, f)
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "create_server: neither host/port nor sock were specified")
      local server = loop:create_server(f, "", 0)
      local hosts = {}
      for _, s in ipairs(server.sockets) do hosts[#hosts + 1] = s:getsockname()[1] end
      table.sort(hosts)
      assert.is_true(hosts[1] == "0.0.0.0" or hosts[1] == "::", table.concat(hosts, " "))
      server:close()
    end)
  end)

  it("ssl= without a host needs server_hostname, before anything connects", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      local e = errof(loop.create_connection, loop, f, "", 1, { ssl = true })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "create_connection: server_hostname must be given when using ssl without a host")
      local sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      assert.is_true(asyncio.ValueError:is(errof(loop.create_connection, loop, f, nil, nil, { ssl = true, sock = sock })))
      sock:close()
      e = errof(loop.create_unix_connection, loop, f, "/nonexistent/socket", { ssl = true })
      assert.is_true(asyncio.ValueError:is(e))
    end)
  end)

  it("create_datagram_endpoint needs an address or a family; the addresses must share a family", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = function() return {} end
      local e = errof(loop.create_datagram_endpoint, loop, f)
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "unexpected address family")
      local t = loop:create_datagram_endpoint(f, { family = socket.AF_INET })
      assert.equal(socket.AF_INET, t:get_extra_info("socket").family)
      t:close()
      e = errof(loop.create_datagram_endpoint, loop, f, { remote_addr = { "127.0.0.1", 9 }, local_addr = { "::1", 0 } })
      assert.is_true(asyncio.ValueError:is(e))
      assert_has(e, "can not get address information")
    end)
  end)
end)

describe("datagram endpoints", function()
  it("allow_broadcast leaves the socket unconnected; sendto without an address goes to remote_addr", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local got = loop:create_future()
      local receiver = loop:create_datagram_endpoint(function()
        return { datagram_received = function(_, d) got:set_result(d) end }
      end, { local_addr = { "127.0.0.1", 0 } })
      local t = loop:create_datagram_endpoint(function() return {} end,
        { remote_addr = receiver:get_extra_info("sockname"), allow_broadcast = true })
      local sock = t:get_extra_info("socket")
      assert.equal(1, sock:getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))
      assert.is_nil(t:get_extra_info("peername"))
      assert.is_not_nil(errof(sock.getpeername, sock))
      t:sendto("to the remote")
      assert.equal("to the remote", got:await())
      t:close()
      receiver:close()
    end)
  end)

  it("datagram_received with the sender; sendto to an address and to remote_addr", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local got = loop:create_future()
      local t1 = loop:create_datagram_endpoint(function()
        local p = {}
        function p:connection_made(t) self.t = t end
        function p:datagram_received(d, addr)
          if d == "ping" then self.t:sendto("pong", addr) else got:set_result(d) end
        end
        return p
      end, { local_addr = { "127.0.0.1", 0 } })
      local reply = loop:create_future()
      local t2 = loop:create_datagram_endpoint(function()
        return { datagram_received = function(_, d) reply:set_result(d) end }
      end, { remote_addr = t1:get_extra_info("sockname") })
      t2:sendto("ping")
      assert.equal("pong", reply:await())
      local t3 = loop:create_datagram_endpoint(function() return {} end, { local_addr = { "127.0.0.1", 0 } })
      t3:sendto("direct", t1:get_extra_info("sockname"))
      assert.equal("direct", got:await())
      assert_has(errof(t2.sendto, t2, "x", { "127.0.0.1", 9 }), "Invalid address")
      t1:close()
      t2:close()
      t3:close()
    end)
  end)

  it("error_received gets ConnectionRefusedError on a connected endpoint", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      probe:bind { "127.0.0.1", 0 }
      local dead = probe:getsockname()
      probe:close()
      local err = loop:create_future()
      local t = loop:create_datagram_endpoint(function()
        return { error_received = function(_, e) if not err:done() then err:set_result(e) end end }
      end, { remote_addr = dead })
      t:sendto("anyone?")
      assert.is_true(errors.ConnectionRefusedError:is(err:await()))
      t:close()
    end)
  end)
end)

describe("closing with the loop", function()
  it("open_loop exit closes its transports and servers: the peer reads EOF, the port refuses, no fd left", function()
    local before = net.nfds()
    trio.run(function()
      trio.fail_after(10, function()
        local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
        local peer
        local server_port
        ta.open_loop(function(loop)
          ta.run_aio_coroutine(function()
            local srv = loop:create_server(function() return {} end, "127.0.0.1", 0)
            server_port = port_of(srv)
            loop:create_connection(function() return {} end, "127.0.0.1",
              listener.socket:getsockname()[2])
          end)
          peer = listener:accept()
        end)
        assert.equal("", peer:receive_some()) -- a clean EOF
        peer:close()
        listener:close()
        assert.is_true(errors.ConnectionRefusedError:is(errof(trio.open_tcp_stream, "127.0.0.1", server_port)))
      end)
    end)
    assert.equal(before, net.nfds())
  end)

  it("asyncio.run exit closes what is left open too", function()
    local before = net.nfds()
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local srv = echo_server(loop)
      asyncio.open_connection("127.0.0.1", port_of(srv))
    end)
    assert.equal(before, net.nfds())
  end)
end)

describe("asyncio networking through the bridge", function()
  it("an asyncio-flavored client used from Trio; Trio's cancellation of a pending read loses no data", function()
    trio.run(function()
      trio.fail_after(10, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_tcp, function(s)
            s:receive_some() -- the go signal
            s:send_all("late data\n")
            s:receive_some()
          end, 0, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          ta.open_loop(function()
            local r, w = ta.aio_as_trio(asyncio.open_connection)("127.0.0.1", port)
            local readline = ta.aio_as_trio(function() return r:readline() end)
            local scope = trio.move_on_after(0.05, readline)
            assert.is_true(scope.cancelled_caught)
            w:write("go")
            assert.equal("late data\n", readline())
            w:close()
          end)
          n.cancel_scope:cancel()
        end)
      end)
    end)
  end)
end)
