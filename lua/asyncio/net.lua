--- asyncio's networking on the C sockets of csrc/io/ (the same objects as
-- trio.socket's): loop:sock_*, loop:getaddrinfo/getnameinfo, transports
-- and protocols (create_connection, create_server, the Unix variants,
-- create_datagram_endpoint) and Server.  Loaded by lua/asyncio.lua:
-- install(asyncio, Loop).
--
-- A wait is a loop callback armed on a socket's waiter slot
-- (csrc/asyncio/iowait.c): the socket wakes it when something changed,
-- and the loop runs it in its next batch.  Transports call their protocol
-- from such callbacks (never re-entrantly); every error of a protocol
-- method goes to the loop's exception handler.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local tsocket = require "trio.socket"
local attrs = require("asyncio.loop_state").of
local ssl = require "trio_asyncio.ssl"
local staggered = require "asyncio.staggered"

local OSError = errors.OSError
local RuntimeError = errors.RuntimeError
local READ, WRITE = 0, 1

local argerror = errors.argerror

local function check_socket(sock, n, fname)
  if not tsocket._is_socket(sock) then
    argerror(n, fname, "trio.socket socket expected, got " .. type(sock))
  end
end

return function(asyncio, Loop)
  local ValueError = asyncio.ValueError
  local check_aio = core.check_aio

  -- A transport's socket (asyncio's create_connection checks it too).
  local function check_stream_socket(sock, n, fname)
    check_socket(sock, n, fname)
    if sock.type ~= tsocket.SOCK_STREAM then
      error(ValueError(("%s: A Stream Socket was expected, got %s"):format(fname, tostring(sock))), 3)
    end
  end

  local function check_datagram_socket(sock, n, fname)
    check_socket(sock, n, fname)
    if sock.type ~= tsocket.SOCK_DGRAM then
      error(ValueError(("%s: A datagram socket was expected, got %s"):format(fname, tostring(sock))), 3)
    end
  end

  -- -------------------------------------------------------------------
  -- waiting on io objects

  -- The Future each side's wait_io armed, by object.  A Task cancelled
  -- in a wait gives its slot up only when it runs again; until then a new
  -- wait takes the slot over from a cancelled Future (as asyncio's
  -- add_reader replaces the reader), and the cancelled Task then leaves
  -- the slot alone.
  local waiting = { [READ] = setmetatable({}, { __mode = "k" }), [WRITE] = setmetatable({}, { __mode = "k" }) }

  --- Waits (asyncio-flavored) until obj's slot for side is woken; returns
  -- at once if obj is closed or done (the caller looks again).
  local function wait_io(loop, obj, side)
    local waits = waiting[side]
    local previous = waits[obj]
    if previous ~= nil and previous:cancelled() then core.aio_disarm(obj, side) end
    local fut = loop:create_future()
    if not core.aio_arm(obj, side, loop, core.aio_set_result_once, fut) then return end
    waits[obj] = fut
    local ok, err = pcall(fut.await, fut)
    local still_mine = waits[obj] == fut
    if still_mine then waits[obj] = nil end
    if not ok then
      if still_mine then core.aio_disarm(obj, side) end
      error(err, 0)
    end
  end
  asyncio._wait_io = wait_io

  --- Raises BusyResourceError when another Task's wait_io waits to write
  -- on sock (before data is handed over, so that none of it goes out).
  local function check_not_writing(sock)
    local fut = waiting[WRITE][sock]
    if fut ~= nil and not fut:done() then
      error(errors.BusyResourceError("another task is already waiting to write to this socket"), 3)
    end
  end

  --- The loop's registry of what open_loop (or close) must close.
  local function registry(loop)
    local a = attrs(loop)
    local r = a.transports
    if r == nil then
      r = {}
      a.transports = r
    end
    return r
  end

  -- -------------------------------------------------------------------
  -- name resolution

  local function lookup(loop, req)
    while true do
      local a, b = core.dns_result(req)
      if a ~= nil then return a, b end
      local ok, err = pcall(wait_io, loop, req, 0)
      if not ok then
        core.dns_cancel(req)
        error(err, 0)
      end
    end
  end

  --- loop:getaddrinfo(host, port, {family=, type=, proto=, flags=})
  function Loop:getaddrinfo(host, port, opts)
    opts = tsocket._check_getaddrinfo(host, port, opts, "getaddrinfo")
    check_aio("loop:getaddrinfo")
    return lookup(self, core.dns_getaddrinfo(host, port, opts.family, opts.type, opts.proto, opts.flags))
  end

  --- loop:getnameinfo(addr [, flags]) -> host, service
  function Loop:getnameinfo(addr, flags)
    tsocket._check_getnameinfo(addr, flags, "getnameinfo")
    check_aio("loop:getnameinfo")
    return lookup(self, core.dns_getnameinfo(addr, flags))
  end

  -- An IP address with a host name is resolved first (asyncio's
  -- _ensure_resolved).
  local function resolved(loop, sock, addr)
    local family = sock.family
    if (family == tsocket.AF_INET or family == tsocket.AF_INET6) and type(addr) == "table"
        and type(addr[1]) == "string" and not tsocket._is_numeric(family, addr[1]) then
      local list = loop:getaddrinfo(addr[1], addr[2], { family = family, type = sock.type })
      return list[1].addr
    end
    return addr
  end

  -- -------------------------------------------------------------------
  -- loop:sock_*

  --- loop:sock_recv(sock, n) -> data ("" at EOF)
  function Loop:sock_recv(sock, n)
    check_socket(sock, 1, "sock_recv")
    if math.type(n) ~= "integer" or n < 0 then argerror(2, "sock_recv", "non-negative integer expected") end
    check_aio("loop:sock_recv")
    while true do
      local data = core.sock_try_recv(sock, n)
      if data ~= nil then return data end
      wait_io(self, sock, READ)
    end
  end

  --- loop:sock_recvfrom(sock, n) -> data, addr
  function Loop:sock_recvfrom(sock, n)
    check_socket(sock, 1, "sock_recvfrom")
    if math.type(n) ~= "integer" or n < 0 then argerror(2, "sock_recvfrom", "non-negative integer expected") end
    check_aio("loop:sock_recvfrom")
    while true do
      local data, addr = core.sock_try_recvfrom(sock, n)
      if data ~= nil then return data, addr end
      wait_io(self, sock, READ)
    end
  end

  --- loop:sock_sendall(sock, data): returns once all of it has gone out
  function Loop:sock_sendall(sock, data)
    check_socket(sock, 1, "sock_sendall")
    if type(data) ~= "string" then argerror(2, "sock_sendall", "string expected, got " .. type(data)) end
    check_aio("loop:sock_sendall")
    check_not_writing(sock)
    if core.sock_write(sock, data) then return end
    while not core.sock_try_drain(sock) do wait_io(self, sock, WRITE) end
  end

  --- loop:sock_sendto(sock, data, addr) -> #data
  function Loop:sock_sendto(sock, data, addr)
    check_socket(sock, 1, "sock_sendto")
    if type(data) ~= "string" then argerror(2, "sock_sendto", "string expected, got " .. type(data)) end
    check_aio("loop:sock_sendto")
    addr = resolved(self, sock, addr)
    check_not_writing(sock)
    if not core.sock_sendto(sock, data, addr) then
      while not core.sock_try_drain(sock) do wait_io(self, sock, WRITE) end
    end
    return #data
  end

  --- loop:sock_connect(sock, addr)
  function Loop:sock_connect(sock, addr)
    check_socket(sock, 1, "sock_connect")
    check_aio("loop:sock_connect")
    addr = resolved(self, sock, addr)
    if core.sock_start_connect(sock, addr) then return end
    while not core.sock_try_connect(sock, addr) do wait_io(self, sock, WRITE) end
  end

  --- loop:sock_accept(sock) -> conn, address
  function Loop:sock_accept(sock)
    check_socket(sock, 1, "sock_accept")
    check_aio("loop:sock_accept")
    while true do
      local conn = core.sock_try_accept(sock)
      if conn ~= nil then
        local ok, addr = pcall(conn.getpeername, conn)
        return conn, ok and addr or nil
      end
      wait_io(self, sock, READ)
    end
  end

  -- -------------------------------------------------------------------
  -- protocol calls

  -- Calls protocol:name(...) if it has that method; an error goes to the
  -- loop's exception handler (returns false, the error).
  local function protocol_failed(loop, transport, protocol, name, err)
    loop:call_exception_handler {
      message = ("protocol.%s() call failed."):format(name),
      exception = err, transport = transport, protocol = protocol,
    }
  end

  local function call_protocol(loop, transport, protocol, name, ...)
    local fn = protocol and protocol[name]
    if fn == nil then return true end
    local ok, err = pcall(fn, protocol, ...)
    if not ok then protocol_failed(loop, transport, protocol, name, err) end
    return ok, err
  end
  asyncio._call_protocol = call_protocol

  -- -------------------------------------------------------------------
  -- stream transports

  local Transport = { __name = "asyncio.Transport" }
  Transport.__index = Transport

  local DEFAULT_HIGH = 64 * 1024

  -- The state every new transport starts in lives in the class, so an idle
  -- connection's table holds only what differs (a transport sets its own
  -- field on the first change; write reads _closing and _eof_written only
  -- when its socket says they may be set).  The method a protocol calls on
  -- every round trip, write, is each transport's own field: found without
  -- the class lookup (the table has room for it: eight slots, for the
  -- fields of a new transport and a server's _call_connection_lost).
  Transport._closing, Transport._eof_written = false, false
  Transport._paused, Transport._protocol_paused, Transport._writing_armed = false, false, false
  Transport._lost_called, Transport._conn_lost = false, 0
  Transport._high, Transport._low = DEFAULT_HIGH, DEFAULT_HIGH // 4

  --- Starts a transport on a connected socket: connection_made is called
  -- from the loop, then reading starts; waiter (a Future, optional) is set
  -- after connection_made.  extra (optional): get_extra_info's answers.
  local function new_transport(loop, sock, protocol, waiter, extra)
    local t = setmetatable({
      _loop = loop, _sock = sock, _protocol = protocol, _extra = extra or false, write = Transport.write,
    }, Transport)
    t._core = core.transport_core(t, sock, protocol)
    if sock.family ~= tsocket.AF_UNIX then
      pcall(sock.setsockopt, sock, tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, true)
    end
    registry(loop)[t] = true
    loop:call_soon(function()
      local ok, err = call_protocol(loop, t, t._protocol, "connection_made", t)
      if not ok then
        t:_force_close(err)
        if waiter and not waiter:done() then waiter:set_exception(err) end
        return
      end
      core.transport_set_protocol(t._core, t._protocol) -- (data_received set meanwhile)
      t:_read_ready()
      if waiter and not waiter:done() then waiter:set_result(true) end
    end)
    return t
  end
  asyncio._new_transport = new_transport
  asyncio._Transport = Transport

  -- The read wait is persistent: armed once, it queues the read path for
  -- each wake until disarmed (pause_reading, close).  The read path is C
  -- (csrc/asyncio/transport.c), on the transport's _core (its socket, its
  -- protocol and that protocol's data_received, looked up when the
  -- protocol is set: here, after connection_made, set_protocol): it takes
  -- what the socket has received and calls protocol:data_received, a few
  -- times, then arms the wait (only once the socket said it has nothing
  -- more: an end of stream already seen would never wake it); it calls the
  -- methods below for the rest.  It knows "closing or paused" from the
  -- socket: every path that sets _closing or _paused stops the socket's
  -- reading (sock_pause_reading).
  local read_ready = core.transport_read_ready
  function Transport:_read_ready() return read_ready(self._core) end

  function Transport:_arm_read()
    if self._closing or self._paused then return end
    core.aio_arm(self._sock, READ, self._loop, read_ready, self._core, true)
  end

  function Transport:_read_eof()
    local pok, keep = call_protocol(self._loop, self, self._protocol, "eof_received")
    if not pok then return self:_force_close(keep) end
    if not keep then self:close() end
  end

  function Transport:_data_received_failed(protocol, err)
    protocol_failed(self._loop, self, protocol, "data_received", err)
    self:_force_close(err)
  end

  function Transport:_fatal_error(exc, message)
    if not (OSError:is(exc) and (exc.code == "ECONNRESET" or exc.code == "EPIPE"
        or exc.code == "ECONNABORTED")) then
      self._loop:call_exception_handler {
        message = message or "Fatal error on transport", exception = exc,
        transport = self, protocol = self._protocol,
      }
    end
    self:_force_close(exc)
  end

  function Transport:_force_close(exc)
    if self._lost_called then return end
    self._closing = true
    self._lost_called = true
    core.aio_disarm(self._sock, READ)
    core.sock_pause_reading(self._sock, true)
    core.aio_disarm(self._sock, WRITE)
    self._loop:call_soon(function() self:_call_connection_lost(exc) end)
  end

  function Transport:_call_connection_lost(exc)
    self._lost_called = true
    call_protocol(self._loop, self, self._protocol, "connection_lost", exc)
    self._sock:close()
    registry(self._loop)[self] = nil
  end

  function Transport:_maybe_pause_protocol()
    local size = self:get_write_buffer_size()
    if size > self._high and not self._protocol_paused then
      self._protocol_paused = true
      call_protocol(self._loop, self, self._protocol, "pause_writing")
    end
  end

  function Transport:_maybe_resume_protocol()
    if self._protocol_paused and self:get_write_buffer_size() <= self._low then
      self._protocol_paused = false
      call_protocol(self._loop, self, self._protocol, "resume_writing")
    end
  end

  function Transport:_arm_write()
    if self._writing_armed then return end
    self._writing_armed = core.aio_arm(self._sock, WRITE, self._loop, Transport._on_writable, self)
  end

  function Transport._on_writable(t)
    t._writing_armed = false
    t:_write_ready()
  end

  function Transport:_write_ready()
    if self._lost_called then return end
    local ok, drained = pcall(core.sock_try_drain, self._sock)
    if not ok then return self:_fatal_error(drained, "Fatal write error on socket transport") end
    self:_maybe_resume_protocol()
    if drained then
      if self._closing then
        self._lost_called = true
        self._loop:call_soon(function() self:_call_connection_lost(nil) end)
      end
    else
      self:_arm_write()
    end
  end

  --- transport:write(data): never waits; what the socket does not take at
  -- once is buffered (pause_writing above the high water mark).  C
  -- (csrc/asyncio/transport.c), calling the methods below for the rest.
  Transport.write = core.transport_write

  function Transport:_write_queued()
    self:_arm_write()
    self:_maybe_pause_protocol()
  end

  -- write() on a transport that is closing or had write_eof(), or of ""
  function Transport:_write_refused(data)
    if self._eof_written then error(RuntimeError("Cannot call write() after write_eof()"), 3) end
    if data == "" then return end
    self._conn_lost = self._conn_lost + 1
    if self._conn_lost >= 5 then io.stderr:write("asyncio: socket.send() raised exception.\n") end
  end

  function Transport:writelines(list)
    if type(list) ~= "table" then argerror(1, "writelines", "list of strings expected") end
    self:write(table.concat(list))
  end

  function Transport:write_eof()
    if self._closing or self._eof_written then return end
    self._eof_written = true
    local ok, err = pcall(self._sock.shutdown, self._sock, tsocket.SHUT_WR)
    if not ok then self:_fatal_error(err) end
  end

  function Transport:can_write_eof() return true end

  --- transport:close(): buffered data is still sent, then connection_lost(nil)
  function Transport:close()
    if self._closing then return end
    self._closing = true
    core.aio_disarm(self._sock, READ)
    core.sock_pause_reading(self._sock, true)
    if self:get_write_buffer_size() == 0 then
      self._lost_called = true
      self._loop:call_soon(function() self:_call_connection_lost(nil) end)
    else
      self:_arm_write()
    end
  end
  Transport.__close = Transport.close

  --- transport:abort(): closes at once, dropping buffered data
  function Transport:abort() self:_force_close(nil) end

  function Transport:is_closing() return self._closing end

  function Transport:pause_reading()
    if self._closing or self._paused then return end
    self._paused = true
    core.aio_disarm(self._sock, READ)
    core.sock_pause_reading(self._sock, true)
  end

  function Transport:resume_reading()
    if self._closing or not self._paused then return end
    self._paused = false
    core.sock_pause_reading(self._sock, false)
    self._loop:call_soon(self._read_ready, self)
  end

  function Transport:is_reading() return not self._paused and not self._closing end

  function Transport:get_write_buffer_size()
    return (core.sock_buffer_sizes(self._sock))
  end

  --- set_write_buffer_limits([high [, low]]): defaults 64 KiB and high/4
  function Transport:set_write_buffer_limits(high, low)
    if high == nil then
      high = low and 4 * low or DEFAULT_HIGH
    end
    if low == nil then low = high // 4 end
    if math.type(high) ~= "integer" or math.type(low) ~= "integer" or not (high >= low and low >= 0) then
      error(ValueError(("high (%s) must be >= low (%s) must be >= 0"):format(tostring(high), tostring(low))), 2)
    end
    self._high, self._low = high, low
    self:_maybe_pause_protocol()
  end

  function Transport:get_write_buffer_limits() return self._low, self._high end

  --- get_extra_info(name [, default]): "peername", "sockname", "socket"
  function Transport:get_extra_info(name, default)
    local extra = self._extra
    if extra and extra[name] ~= nil then return extra[name] end
    local sock = self._sock
    if name == "socket" then return sock end
    if name == "peername" or name == "sockname" then
      local ok, addr = pcall(sock[name == "peername" and "getpeername" or "getsockname"], sock)
      if ok then
        if not extra then extra = {}; self._extra = extra end
        extra[name] = addr
        return addr
      end
    end
    return default
  end

  function Transport:get_protocol() return self._protocol end
  function Transport:set_protocol(p)
    self._protocol = p
    core.transport_set_protocol(self._core, p)
  end

  function Transport:__tostring()
    return ("asyncio.Transport (%s%s)"):format(tostring(self._sock), self._closing and ", closing" or "")
  end

  -- -------------------------------------------------------------------
  -- datagram transports

  local DatagramTransport = { __name = "asyncio.DatagramTransport" }
  DatagramTransport.__index = DatagramTransport

  local function new_datagram_transport(loop, sock, protocol, waiter, address, connected)
    local t = setmetatable({ _loop = loop, _sock = sock, _protocol = protocol, _address = address,
      _connected = connected,
      _closing = false, _lost_called = false, _armed = false, _extra = {} }, DatagramTransport)
    registry(loop)[t] = true
    loop:call_soon(function()
      local ok, err = call_protocol(loop, t, protocol, "connection_made", t)
      if not ok then
        t:_force_close(err)
        if waiter and not waiter:done() then waiter:set_exception(err) end
        return
      end
      t:_read_ready()
      if waiter and not waiter:done() then waiter:set_result(true) end
    end)
    return t
  end

  function DatagramTransport._on_readable(t)
    t._armed = false
    t:_read_ready()
  end

  function DatagramTransport:_read_ready()
    for _ = 1, 64 do -- a batch, then back to the loop
      if self._closing then return end
      local ok, data, addr = pcall(core.sock_try_recvfrom, self._sock, 65536)
      if not ok then
        if not OSError:is(data) then error(data, 0) end
        call_protocol(self._loop, self, self._protocol, "error_received", data)
      elseif data == nil then
        if not self._armed then
          self._armed = core.aio_arm(self._sock, READ, self._loop, DatagramTransport._on_readable, self)
        end
        return
      else
        call_protocol(self._loop, self, self._protocol, "datagram_received", data, addr)
      end
    end
    self._loop:call_soon(function() self:_read_ready() end)
  end

  --- transport:sendto(data [, addr]): addr nil sends to the remote_addr
  function DatagramTransport:sendto(data, addr)
    if type(data) ~= "string" then argerror(1, "sendto", "string expected, got " .. type(data)) end
    if self._closing then return end
    local ok, err
    if addr == nil then
      if self._address == nil then argerror(2, "sendto", "address expected (no remote_addr)") end
      if self._connected then
        ok, err = pcall(core.sock_write, self._sock, data)
      else -- allow_broadcast: not connected
        ok, err = pcall(core.sock_sendto, self._sock, data, self._address)
      end
    else
      if self._address ~= nil then
        error(ValueError("Invalid address: must be nil or the remote_addr"), 2)
      end
      ok, err = pcall(core.sock_sendto, self._sock, data, addr)
    end
    if not ok then
      if type(err) == "string" then error(err, 2) end
      call_protocol(self._loop, self, self._protocol, "error_received", err)
    end
  end

  function DatagramTransport:_force_close(exc)
    if self._lost_called then return end
    self._closing, self._lost_called = true, true
    core.aio_disarm(self._sock, READ)
    self._loop:call_soon(function()
      call_protocol(self._loop, self, self._protocol, "connection_lost", exc)
      self._sock:close()
      registry(self._loop)[self] = nil
    end)
  end

  function DatagramTransport:close() self:_force_close(nil) end
  function DatagramTransport:abort() self:_force_close(nil) end
  DatagramTransport.__close = DatagramTransport.close
  function DatagramTransport:is_closing() return self._closing end
  function DatagramTransport:get_write_buffer_size() return (core.sock_buffer_sizes(self._sock)) end
  function DatagramTransport:get_protocol() return self._protocol end
  function DatagramTransport:set_protocol(p) self._protocol = p end
  DatagramTransport.get_extra_info = Transport.get_extra_info
  function DatagramTransport:__tostring()
    return ("asyncio.DatagramTransport (%s)"):format(tostring(self._sock))
  end

  -- -------------------------------------------------------------------
  -- create_connection and friends

  local function check_factory(f, fname)
    if not errors.is_callable(f) then argerror(1, fname, "protocol factory expected, got " .. type(f)) end
  end

  -- The options table (argument #n of fname), with only options of
  -- `known`: any other is an argument error naming the ones fname takes,
  -- as CPython's TypeError for an unexpected keyword argument (so the
  -- Unix-domain calls reject TCP-only options such as local_addr).
  local function check_known_opts(opts, n, fname, known)
    if opts == nil then return {} end
    if type(opts) ~= "table" then argerror(n, fname, "options table expected, got " .. type(opts)) end
    for k in pairs(opts) do
      if not known[k] then
        local names = {}
        for name in pairs(known) do names[#names + 1] = name end
        table.sort(names)
        argerror(n, fname, ("unknown option '%s' (%s takes %s)"):format(tostring(k), fname, table.concat(names, ", ")))
      end
    end
    return opts
  end

  -- ssl= is an SSLContext, true (a default client context; clients
  -- only) or nil/false; server_hostname= only goes with it.
  local function check_opts(opts, n, fname, known, client)
    opts = check_known_opts(opts, n, fname, known)
    local v = opts.ssl
    if not (v == nil or v == false or ssl.is_context(v) or (client and v == true)) then
      argerror(n, fname, ("ssl: %strio_asyncio.ssl.SSLContext expected, got %s")
        :format(client and "true or a " or "", type(v) == "boolean" and tostring(v) or type(v)))
    end
    if opts.server_hostname ~= nil then
      if not v then error(ValueError(fname .. ": server_hostname is only meaningful with ssl"), 3) end
      if type(opts.server_hostname) ~= "string" then argerror(n, fname, "server_hostname: string expected") end
    end
    if opts.ssl_handshake_timeout ~= nil then
      if not v then error(ValueError(fname .. ": ssl_handshake_timeout is only meaningful with ssl"), 3) end
      local t = opts.ssl_handshake_timeout
      if type(t) ~= "number" or t <= 0 then argerror(n, fname, "ssl_handshake_timeout must be a positive number") end
    end
    return opts
  end

  local function check_port(port, n, fname)
    if math.type(port) ~= "integer" and not (type(port) == "string" and port ~= "") then
      argerror(n, fname, "port integer expected, got " .. (math.type(port) or type(port)))
    end
    if math.type(port) == "integer" and (port < 0 or port > 65535) then
      argerror(n, fname, "port must be 0-65535")
    end
  end

  local function format_addr(addr)
    if type(addr) == "string" then return addr end
    if addr[1]:find(":", 1, true) then return ("[%s]:%s"):format(addr[1], addr[2]) end
    return ("%s:%s"):format(addr[1], addr[2])
  end

  -- Makes the transport on a connected socket and waits until
  -- connection_made has been called; with tls ({ctx=, server_hostname=,
  -- handshake_timeout=, fname=}) after the TLS handshake, and the
  -- transport is the TLS one.
  local function connection_transport(loop, sock, protocol_factory, tls)
    local protocol = protocol_factory()
    local waiter = loop:create_future()
    local t, sslproto
    if tls then
      local ok, sp = pcall(asyncio._new_ssl_protocol, loop, protocol, tls.ctx, { waiter = waiter,
        server_hostname = tls.server_hostname, handshake_timeout = tls.handshake_timeout, fname = tls.fname })
      if not ok then
        sock:close()
        error(sp, 0)
      end
      sslproto = sp
      t = new_transport(loop, sock, sslproto, nil)
    else
      t = new_transport(loop, sock, protocol, waiter)
    end
    local ok, err = pcall(waiter.await, waiter)
    if not ok then
      t:abort()
      error(err, 0)
    end
    if sslproto then return sslproto._app_transport, protocol end
    return t, protocol
  end

  -- The TLS options of a client call, or nil without ssl=: ssl=true is a
  -- default client context; server_hostname defaults to the host.
  local function client_tls(opts, host, fname)
    if not opts.ssl then return nil end
    local ctx = opts.ssl == true and ssl.create_default_context() or opts.ssl
    local hostname = opts.server_hostname
    if hostname == nil then
      if host == nil or host == "" then
        error(ValueError(fname .. ": server_hostname must be given when using ssl without a host"), 3)
      end
      hostname = host
    end
    if hostname == "" then hostname = nil end
    return { ctx = ctx, server_hostname = hostname, handshake_timeout = opts.ssl_handshake_timeout, fname = fname }
  end
  asyncio._connection_transport = connection_transport

  local CONNECT_OPTS = { ssl = true, server_hostname = true, local_addr = true, sock = true,
    happy_eyeballs_delay = true, interleave = true, all_errors = true, family = true, proto = true,
    flags = true, ssl_handshake_timeout = true }
  local UNIX_CONNECT_OPTS = { ssl = true, server_hostname = true, sock = true, ssl_handshake_timeout = true }

  -- A dotted-quad IPv4 address needs no lookup (asyncio's _ipaddr_info
  -- skips getaddrinfo the same way): the address as getaddrinfo would
  -- give it, or nil.
  local function numeric_ipv4_target(host, port, opts)
    if math.type(port) ~= "integer" or opts.flags ~= nil
        or (opts.family ~= nil and opts.family ~= tsocket.AF_INET) then
      return nil
    end
    local octets = { host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #octets ~= 4 then return nil end
    for _, o in ipairs(octets) do
      if #o > 3 or tonumber(o) > 255 or (#o > 1 and o:sub(1, 1) == "0") then return nil end
    end
    return { family = tsocket.AF_INET, type = tsocket.SOCK_STREAM, proto = opts.proto or 0, addr = { host, port } }
  end

  --- The addresses reordered by family as asyncio's interleave=n does:
  -- the first n-1 of the family that comes first, then one address of
  -- each family in turn.
  local function interleave_by_family(infos, first_family_count)
    local lists, by_family = {}, {}
    for _, info in ipairs(infos) do
      local list = by_family[info.family]
      if list == nil then
        list = {}
        by_family[info.family] = list
        lists[#lists + 1] = list
      end
      list[#list + 1] = info
    end
    local reordered, next_of = {}, {}
    for j = 1, #lists do next_of[j] = 1 end
    while next_of[1] < first_family_count and next_of[1] <= #lists[1] do
      reordered[#reordered + 1] = lists[1][next_of[1]]
      next_of[1] = next_of[1] + 1
    end
    while #reordered < #infos do
      for j, list in ipairs(lists) do
        if next_of[j] <= #list then
          reordered[#reordered + 1] = list[next_of[j]]
          next_of[j] = next_of[j] + 1
        end
      end
    end
    return reordered
  end

  --- A socket for info, bound to one of local_infos (if given) and
  -- connected; closed again when that fails or is cancelled.
  local function connect_one(loop, info, local_infos, fname)
    local sock = tsocket.socket(info.family, info.type, info.proto)
    local ok, err = pcall(function()
      if local_infos then
        local bound = false
        for _, l in ipairs(local_infos) do
          if l.family == info.family and pcall(sock.bind, sock, l.addr) then
            bound = true
            break
          end
        end
        if not bound then
          error(OSError(("%s: no matching local address with family %d found"):format(fname, info.family)), 0)
        end
      end
      loop:sock_connect(sock, info.addr)
    end)
    if ok then return sock end
    sock:close()
    error(err, 0)
  end

  --- Raises the failures of every attempt: with all_errors a
  -- trio.ExceptionGroup of them all; else the one, or one OSError listing
  -- them when their messages differ.
  local function raise_connect_failures(failures, all_errors, fname)
    if all_errors then error(errors.group(fname .. " failed", failures), 0) end
    local msgs, same = {}, true
    for i, e in ipairs(failures) do
      msgs[i] = e.message
      if e.message ~= failures[1].message then same = false end
    end
    if same then error(failures[1], 0) end
    error(OSError { message = "Multiple exceptions: " .. table.concat(msgs, ", "), errors = failures }, 0)
  end

  --- Happy Eyeballs: the attempts race with staggered starts
  -- (asyncio.staggered); the winner's socket, or nil and the failures.
  -- A socket connected too late to win is closed, and so is every one
  -- when the race is cancelled.
  local function race_connections(loop, infos, local_infos, delay, fname)
    local connected = {}
    local attempts = {}
    for i, info in ipairs(infos) do
      attempts[i] = function()
        local sock = connect_one(loop, info, local_infos, fname)
        connected[#connected + 1] = sock
        return sock
      end
    end
    local ok, sock, _, failures = pcall(staggered.staggered_race, attempts, delay, loop)
    for _, s in ipairs(connected) do
      if not (ok and s == sock) then s:close() end
    end
    if not ok then error(sock, 0) end
    if sock ~= nil then return sock end
    for _, e in ipairs(failures) do
      if not OSError:is(e) then error(e, 0) end
    end
    return nil, failures
  end

  --- Tries the addresses one after the other; the first connected
  -- socket, or nil and the failures.
  local function connect_in_turn(loop, infos, local_infos, fname)
    local failures = {}
    for i, info in ipairs(infos) do
      local ok, sock = pcall(connect_one, loop, info, local_infos, fname)
      if ok then return sock end
      if not OSError:is(sock) then error(sock, 0) end
      failures[i] = sock
    end
    return nil, failures
  end

  --- Resolves host and connects to one of its addresses: in turn, or
  -- with happy_eyeballs_delay raced as asyncio does.  Returns the socket.
  local function connect_any(loop, host, port, opts, fname)
    local numeric = numeric_ipv4_target(host, port, opts)
    local infos = numeric and { numeric } or loop:getaddrinfo(host, port, { type = tsocket.SOCK_STREAM,
      family = opts.family, proto = opts.proto, flags = opts.flags })
    if #infos == 0 then error(OSError(("%s: getaddrinfo() returned empty list"):format(fname)), 0) end
    local local_infos
    if opts.local_addr then
      local_infos = loop:getaddrinfo(opts.local_addr[1], opts.local_addr[2], { type = tsocket.SOCK_STREAM })
    end
    local delay, interleave = opts.happy_eyeballs_delay, opts.interleave
    if delay ~= nil and interleave == nil then interleave = 1 end
    if interleave ~= nil and interleave > 0 then infos = interleave_by_family(infos, interleave) end
    local sock, failures
    if delay == nil or #infos == 1 then
      sock, failures = connect_in_turn(loop, infos, local_infos, fname)
    else
      sock, failures = race_connections(loop, infos, local_infos, delay, fname)
    end
    if sock == nil then raise_connect_failures(failures, opts.all_errors, fname) end
    return sock
  end

  local function check_happy_eyeballs_opts(opts, n, fname)
    local delay = opts.happy_eyeballs_delay
    if delay ~= nil and (type(delay) ~= "number" or not (delay >= 0)) then
      argerror(n, fname, "happy_eyeballs_delay must be a non-negative number")
    end
    local interleave = opts.interleave
    if interleave ~= nil and (math.type(interleave) ~= "integer" or interleave < 0) then
      argerror(n, fname, "interleave must be a non-negative integer")
    end
    if opts.all_errors ~= nil and type(opts.all_errors) ~= "boolean" then
      argerror(n, fname, "all_errors must be a boolean")
    end
  end

  -- The openers' checks and work are shared with the stream functions
  -- (lua/asyncio/streams.lua: open_connection, start_server and the Unix
  -- variants), whose errors name them: fname is the function called and
  -- first the number of its host (or path) argument.

  -- create_connection's host, port and options; returns the options.
  local function check_connection(host, port, opts, fname, first)
    local nopts = first + 2
    opts = check_opts(opts, nopts, fname, CONNECT_OPTS, true)
    local sock = opts.sock
    if sock ~= nil then
      check_stream_socket(sock, nopts, fname)
      if host ~= nil or port ~= nil then
        error(ValueError(fname .. ": host/port and sock can not be specified at the same time"), 3)
      end
    else
      if type(host) ~= "string" then argerror(first, fname, "host string expected, got " .. type(host)) end
      check_port(port, first + 1, fname)
    end
    if opts.local_addr ~= nil and (type(opts.local_addr) ~= "table" or type(opts.local_addr[1]) ~= "string") then
      argerror(nopts, fname, "local_addr must be {host, port}")
    end
    check_happy_eyeballs_opts(opts, nopts, fname)
    return opts
  end
  asyncio._check_connection = check_connection

  -- create_connection's work, after its checks.
  local function connect(loop, protocol_factory, host, port, opts, fname)
    local tls = client_tls(opts, host, fname)
    local sock = opts.sock
    if sock == nil then sock = connect_any(loop, host, port, opts, fname) end
    return connection_transport(loop, sock, protocol_factory, tls)
  end
  asyncio._connect = connect

  --- loop:create_connection(protocol_factory, host, port, {ssl=, server_hostname=,
  -- local_addr=, sock=, happy_eyeballs_delay=, interleave=, all_errors=}) -> transport, protocol
  function Loop:create_connection(protocol_factory, host, port, opts)
    check_factory(protocol_factory, "create_connection")
    opts = check_connection(host, port, opts, "create_connection", 2)
    check_aio("loop:create_connection")
    return connect(self, protocol_factory, host, port, opts, "create_connection")
  end

  local unix_path = errors.unix_path

  -- The sock= of the Unix-domain calls: an AF_UNIX stream socket, given
  -- instead of a path.
  local function check_unix_sock(sock, path, n, fname)
    check_socket(sock, n, fname)
    if sock.family ~= tsocket.AF_UNIX or sock.type ~= tsocket.SOCK_STREAM then
      error(ValueError(("%s: A UNIX Domain Stream Socket was expected, got %s"):format(fname, tostring(sock))), 3)
    end
    if path ~= nil then
      error(ValueError(fname .. ": path and sock can not be specified at the same time"), 3)
    end
  end

  -- create_unix_connection's path and options; returns both (the path as
  -- a string).
  local function check_unix_connection(path, opts, fname, first)
    opts = check_opts(opts, first + 1, fname, UNIX_CONNECT_OPTS, true)
    if opts.sock == nil then
      path = unix_path(path, first, fname)
    else
      check_unix_sock(opts.sock, path, first + 1, fname)
    end
    return path, opts
  end
  asyncio._check_unix_connection = check_unix_connection

  -- create_unix_connection's work, after its checks.
  local function unix_connect(loop, protocol_factory, path, opts, fname)
    local tls = client_tls(opts, nil, fname)
    local sock = opts.sock
    if sock == nil then
      sock = tsocket.socket(tsocket.AF_UNIX, tsocket.SOCK_STREAM)
      local ok, err = pcall(loop.sock_connect, loop, sock, path)
      if not ok then
        sock:close()
        error(err, 0)
      end
    end
    return connection_transport(loop, sock, protocol_factory, tls)
  end
  asyncio._unix_connect = unix_connect

  --- loop:create_unix_connection(protocol_factory, path, {sock=, ssl=, server_hostname=,
  -- ssl_handshake_timeout=}) -> transport, protocol
  function Loop:create_unix_connection(protocol_factory, path, opts)
    check_factory(protocol_factory, "create_unix_connection")
    path, opts = check_unix_connection(path, opts, "create_unix_connection", 2)
    check_aio("loop:create_unix_connection")
    return unix_connect(self, protocol_factory, path, opts, "create_unix_connection")
  end

  -- -------------------------------------------------------------------
  -- Server

  local Server = { __name = "asyncio.Server" }
  Server.__index = Server

  local ACCEPT_CAPACITY = { EMFILE = true, ENFILE = true, ENOBUFS = true, ENOMEM = true }

  local function new_server(loop, sockets, protocol_factory, backlog, unlink)
    local s = setmetatable({ _loop = loop, sockets = sockets, _factory = protocol_factory,
      _backlog = backlog, _serving = false, _closed = false, _armed = {}, _waiters = {},
      _active = 0, _serving_forever = nil, _unlink = unlink, _unlink_id = unlink and core.sock_path_id(unlink) },
      Server)
    registry(loop)[s] = true
    return s
  end
  asyncio._new_server = new_server

  function Server:_accept(sock)
    self._armed[sock] = nil
    if not self._serving then return end
    for _ = 1, self._backlog do
      local ok, conn = pcall(core.sock_try_accept, sock)
      if not ok then
        if OSError:is(conn) and ACCEPT_CAPACITY[conn.code] then
          self._loop:call_exception_handler { message = "socket.accept() out of system resource",
            exception = conn, socket = sock }
          self._loop:call_later(1, function() self:_accept(sock) end)
          return
        elseif not (OSError:is(conn) and (conn.code == "ECONNABORTED" or conn.code == "EPROTO")) then
          self._loop:call_exception_handler { message = "Error on accepting a connection",
            exception = conn, socket = sock }
          return
        end
      elseif conn == nil then
        self._armed[sock] = core.aio_arm(sock, READ, self._loop, function() self:_accept(sock) end, nil) or nil
        return
      else
        self:_attach()
        local pok, protocol = pcall(self._factory)
        if pok and self._ssl then
          pok, protocol = pcall(asyncio._new_ssl_protocol, self._loop, protocol, self._ssl,
            { server_side = true, handshake_timeout = self._ssl_handshake_timeout })
        end
        if not pok then
          conn:close()
          self:_detach()
          self._loop:call_exception_handler { message = "protocol factory failed", exception = protocol }
        else
          local t = new_transport(self._loop, conn, protocol, nil)
          local lost = t._call_connection_lost
          t._call_connection_lost = function(tr, exc)
            lost(tr, exc)
            self:_detach()
          end
        end
      end
    end
    self._loop:call_soon(function() self:_accept(sock) end)
  end

  -- A Unix server's socket file goes when the server closes, unless it is
  -- gone or another file took its place (Python checks st_ino).
  function Server:_remove_socket_file()
    local path = self._unlink
    if path == nil then return end
    self._unlink = nil
    if core.sock_path_id(path) == self._unlink_id then os.remove(path) end
  end

  function Server:_attach() self._active = self._active + 1 end

  function Server:_detach()
    self._active = self._active - 1
    if self._active == 0 and self._closed then self:_wakeup() end
  end

  function Server:_wakeup()
    local waiters = self._waiters
    self._waiters = {}
    for _, w in ipairs(waiters) do
      if not w:done() then w:set_result(true) end
    end
  end

  function Server:_start_serving()
    if self._serving or self._closed then return end
    self._serving = true
    for _, sock in ipairs(self.sockets) do
      sock:listen(self._backlog)
      self:_accept(sock)
    end
  end

  --- server:close(): stops listening (existing connections stay open)
  function Server:close()
    if self._closed then return end
    self._closed = true
    self._serving = false
    for _, sock in ipairs(self.sockets) do
      core.aio_disarm(sock, READ)
      sock:close()
    end
    self.sockets = {} -- as Python's Server.sockets once closed
    self:_remove_socket_file()
    if self._serving_forever and not self._serving_forever:done() then self._serving_forever:cancel() end
    registry(self._loop)[self] = nil
    if self._active == 0 then self:_wakeup() end
  end
  Server.__close = Server.close

  function Server:get_loop() return self._loop end
  function Server:is_serving() return self._serving end

  --- server:start_serving() (async)
  function Server:start_serving()
    check_aio("Server:start_serving")
    self:_start_serving()
    asyncio.sleep(0)
  end

  --- server:serve_forever() (async): serves until cancelled, then closes
  function Server:serve_forever()
    check_aio("Server:serve_forever")
    if self._serving_forever ~= nil then
      error(RuntimeError("server is already being awaited on serve_forever()"), 2)
    end
    if self._closed then error(RuntimeError("server is closed"), 2) end
    self:_start_serving()
    self._serving_forever = self._loop:create_future()
    local ok, err = pcall(self._serving_forever.await, self._serving_forever)
    self._serving_forever = nil
    self:close()
    self:wait_closed()
    if not ok then error(err, 0) end
  end

  --- server:wait_closed() (async): returns once the server is closed and
  -- its connections are gone
  function Server:wait_closed()
    check_aio("Server:wait_closed")
    if self._closed and self._active == 0 then
      asyncio.sleep(0)
      return
    end
    local w = self._loop:create_future()
    self._waiters[#self._waiters + 1] = w
    w:await()
  end

  function Server:__tostring()
    return ("asyncio.Server (%d socket(s)%s)"):format(#self.sockets, self._serving and ", serving" or "")
  end

  local SERVER_OPTS = { backlog = true, reuse_port = true, reuse_address = true, ssl = true, sock = true,
    start_serving = true, family = true, flags = true, ssl_handshake_timeout = true }
  local UNIX_SERVER_OPTS = { backlog = true, ssl = true, sock = true, start_serving = true,
    ssl_handshake_timeout = true, cleanup_socket = true }

  -- A new server; with ssl= its connections are TLS (handshake first).
  local function tls_server(loop, sockets, protocol_factory, backlog, opts, unlink)
    local server = new_server(loop, sockets, protocol_factory, backlog, unlink)
    server._ssl = opts.ssl or nil
    server._ssl_handshake_timeout = opts.ssl_handshake_timeout
    return server
  end

  local DEFAULT_BACKLOG = 100

  -- The backlog= of a server's options (argument #n of fname).
  local function check_backlog(opts, n, fname)
    local backlog = opts.backlog
    if backlog ~= nil and (math.type(backlog) ~= "integer" or backlog < 0) then
      argerror(n, fname, "backlog must be a non-negative integer")
    end
  end

  -- The server's socket(s) start listening, unless start_serving=false.
  local function start_serving(server, opts)
    if opts.start_serving ~= false then
      server:_start_serving()
      asyncio.sleep(0)
    end
    return server
  end

  -- create_server's host, port and options (start_server's too: the same
  -- argument numbers); returns them, host nil for every interface and
  -- port 0 when not given.
  local function check_server(host, port, opts, fname)
    opts = check_opts(opts, 4, fname, SERVER_OPTS)
    check_backlog(opts, 4, fname)
    if opts.sock ~= nil then
      check_stream_socket(opts.sock, 4, fname)
      if host ~= nil or port ~= nil then
        error(ValueError(fname .. ": host/port and sock can not be specified at the same time"), 3)
      end
      return host, port, opts
    end
    if host ~= nil and type(host) ~= "string" then
      argerror(2, fname, "host string or nil expected, got " .. type(host))
    end
    if host == nil and port == nil then
      error(ValueError(fname .. ": neither host/port nor sock were specified"), 3)
    end
    if host == "" then host = nil end -- every interface, as asyncio
    if port == nil then port = 0 end
    check_port(port, 3, fname)
    return host, port, opts
  end
  asyncio._check_server = check_server

  -- create_server's work, after its checks: the listening sockets, bound.
  local function serve(loop, protocol_factory, host, port, opts)
    local sockets = { opts.sock }
    if opts.sock == nil then
      local infos = loop:getaddrinfo(host, port, { type = tsocket.SOCK_STREAM, family = opts.family,
        flags = tsocket.AI_PASSIVE | (opts.flags or 0) })
      local ok, err = pcall(function()
        local seen = {}
        for _, info in ipairs(infos) do
          local key = info.family .. " " .. info.addr[1] .. " " .. info.addr[2]
          if not seen[key] then
            seen[key] = true
            local sock = tsocket.socket(info.family, info.type, info.proto)
            sockets[#sockets + 1] = sock
            if opts.reuse_address ~= false then sock:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR, 1) end
            if opts.reuse_port then sock:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT, 1) end
            if info.family == tsocket.AF_INET6 then sock:setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, 1) end
            local bok, berr = pcall(sock.bind, sock, info.addr)
            if not bok then
              if OSError:is(berr) then
                error(OSError { message = ("error while attempting to bind on address %s: %s"):format(
                  format_addr(info.addr), berr.message), code = berr.code, errno = berr.errno, cause = berr }, 0)
              end
              error(berr, 0)
            end
          end
        end
      end)
      if not ok then
        for _, s in ipairs(sockets) do s:close() end
        error(err, 0)
      end
    end
    return start_serving(tls_server(loop, sockets, protocol_factory, opts.backlog or DEFAULT_BACKLOG, opts), opts)
  end
  asyncio._serve = serve

  --- loop:create_server(protocol_factory, host, port, {backlog=100, reuse_port=,
  -- reuse_address=true, ssl=, sock=, start_serving=true}) -> Server
  function Loop:create_server(protocol_factory, host, port, opts)
    check_factory(protocol_factory, "create_server")
    host, port, opts = check_server(host, port, opts, "create_server")
    check_aio("loop:create_server")
    return serve(self, protocol_factory, host, port, opts)
  end

  -- create_unix_server's path and options (start_unix_server's too: the
  -- same argument numbers); returns both, the path as a string.
  local function check_unix_server(path, opts, fname)
    opts = check_opts(opts, 3, fname, UNIX_SERVER_OPTS)
    if opts.cleanup_socket ~= nil and type(opts.cleanup_socket) ~= "boolean" then
      argerror(3, fname, "cleanup_socket must be a boolean")
    end
    check_backlog(opts, 3, fname)
    if opts.sock == nil then
      path = unix_path(path, 2, fname)
    else
      check_unix_sock(opts.sock, path, 3, fname)
    end
    return path, opts
  end
  asyncio._check_unix_server = check_unix_server

  -- create_unix_server's work, after its checks.
  local function unix_serve(loop, protocol_factory, path, opts)
    local sock = opts.sock
    if sock == nil then
      -- a socket file left behind (its server is gone) is replaced, as
      -- asyncio does; any other file stays (bind fails: in use)
      if path:byte(1) ~= 0 and select(2, core.sock_path_id(path)) then os.remove(path) end
      sock = tsocket.socket(tsocket.AF_UNIX, tsocket.SOCK_STREAM)
      local ok, err = pcall(sock.bind, sock, path)
      if not ok then
        sock:close()
        error(err, 0)
      end
    end
    local unlink
    if opts.cleanup_socket ~= false and tsocket._is_socket(sock) then
      local named, name = pcall(sock.getsockname, sock)
      -- a path; not an unnamed socket or one of Linux's abstract namespace
      if named and type(name) == "string" and name ~= "" and name:byte(1) ~= 0 then unlink = name end
    end
    return start_serving(tls_server(loop, { sock }, protocol_factory, opts.backlog or DEFAULT_BACKLOG, opts, unlink), opts)
  end
  asyncio._unix_serve = unix_serve

  --- loop:create_unix_server(protocol_factory, path, {backlog=, sock=, ssl=, start_serving=,
  -- ssl_handshake_timeout=, cleanup_socket=true}) -> Server; with cleanup_socket, closing the
  -- server removes the socket file it listens on (also that of sock=)
  function Loop:create_unix_server(protocol_factory, path, opts)
    check_factory(protocol_factory, "create_unix_server")
    path, opts = check_unix_server(path, opts, "create_unix_server")
    check_aio("loop:create_unix_server")
    return unix_serve(self, protocol_factory, path, opts)
  end

  -- -------------------------------------------------------------------
  -- create_datagram_endpoint

  local DGRAM_OPTS = { local_addr = true, remote_addr = true, family = true, proto = true, flags = true,
    reuse_port = true, allow_broadcast = true, sock = true }

  -- The {family, proto, local address, remote address} candidates of
  -- create_datagram_endpoint, as asyncio pairs them: the families (and
  -- protocols) both given addresses resolve to.
  local function datagram_candidates(loop, opts)
    if opts.local_addr == nil and opts.remote_addr == nil then
      if (opts.family or tsocket.AF_UNSPEC) == tsocket.AF_UNSPEC then
        error(ValueError("create_datagram_endpoint: unexpected address family (give family=, local_addr= or remote_addr=)"), 0)
      end
      return { { family = opts.family, proto = opts.proto or 0 } }
    end
    local pairs_by_key, order = {}, {}
    for _, side in ipairs { "local_addr", "remote_addr" } do
      local a = opts[side]
      if a ~= nil then
        local infos = loop:getaddrinfo(a[1], a[2], { type = tsocket.SOCK_DGRAM, family = opts.family,
          proto = opts.proto, flags = opts.flags })
        if #infos == 0 then error(OSError("create_datagram_endpoint: getaddrinfo() returned empty list"), 0) end
        for _, info in ipairs(infos) do
          local key = info.family .. " " .. info.proto
          local c = pairs_by_key[key]
          if c == nil then
            c = { family = info.family, proto = info.proto }
            pairs_by_key[key], order[#order + 1] = c, c
          end
          if c[side] == nil then c[side] = info.addr end
        end
      end
    end
    local candidates = {}
    for _, c in ipairs(order) do
      if (opts.local_addr == nil or c.local_addr) and (opts.remote_addr == nil or c.remote_addr) then
        candidates[#candidates + 1] = c
      end
    end
    if #candidates == 0 then
      error(ValueError("create_datagram_endpoint: can not get address information"
        .. " (local_addr and remote_addr have no address family in common)"), 0)
    end
    return candidates
  end

  --- loop:create_datagram_endpoint(protocol_factory, {local_addr=, remote_addr=,
  -- family=, reuse_port=, allow_broadcast=, sock=}) -> transport, protocol;
  -- with allow_broadcast the socket is not connected to remote_addr (sendto
  -- without an address still goes there)
  function Loop:create_datagram_endpoint(protocol_factory, opts)
    check_factory(protocol_factory, "create_datagram_endpoint")
    opts = check_opts(opts, 2, "create_datagram_endpoint", DGRAM_OPTS)
    for _, k in ipairs { "local_addr", "remote_addr" } do
      local a = opts[k]
      if a ~= nil and (type(a) ~= "table" or #a ~= 2 or type(a[1]) ~= "string" or math.type(a[2]) ~= "integer") then
        argerror(2, "create_datagram_endpoint", k .. " must be {host, port}")
      end
    end
    local sock, remote, connected = opts.sock, nil, false
    if sock ~= nil then
      check_datagram_socket(sock, 2, "create_datagram_endpoint")
      local given = {}
      for _, k in ipairs { "local_addr", "remote_addr", "family", "proto", "flags", "reuse_port", "allow_broadcast" } do
        if opts[k] then given[#given + 1] = k end
      end
      if #given > 0 then
        error(ValueError(("create_datagram_endpoint: socket modifier keyword arguments can not be used"
          .. " when sock is specified (%s)"):format(table.concat(given, ", "))), 2)
      end
    end
    check_aio("loop:create_datagram_endpoint")
    if sock == nil then
      local failures = {}
      for _, c in ipairs(datagram_candidates(self, opts)) do
        local s = tsocket.socket(c.family, tsocket.SOCK_DGRAM, c.proto)
        local ok, err = pcall(function()
          if opts.reuse_port then s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT, 1) end
          if opts.allow_broadcast then s:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_BROADCAST, 1) end
          if c.local_addr then s:bind(c.local_addr) end
          if c.remote_addr and not opts.allow_broadcast then self:sock_connect(s, c.remote_addr) end
        end)
        if ok then
          sock, remote, connected = s, c.remote_addr, c.remote_addr ~= nil and not opts.allow_broadcast
          break
        end
        s:close()
        if not OSError:is(err) then error(err, 0) end
        failures[#failures + 1] = err
      end
      if sock == nil then error(failures[1], 0) end
    end
    local protocol = protocol_factory()
    local waiter = self:create_future()
    local t = new_datagram_transport(self, sock, protocol, waiter, remote, connected)
    local ok, err = pcall(waiter.await, waiter)
    if not ok then
      t:abort()
      error(err, 0)
    end
    return t, protocol
  end

  -- -------------------------------------------------------------------
  -- closing what a loop still has

  --- Closes the loop's servers and transports gracefully (asyncio-flavored:
  -- connection_lost runs); what is left is closed by asyncio._drop_transports.
  function asyncio._close_transports(loop)
    local r = attrs(loop).transports
    if r == nil or next(r) == nil then return end
    local list = {}
    for obj in pairs(r) do list[#list + 1] = obj end
    for _, obj in ipairs(list) do pcall(obj.close, obj) end
    for _ = 1, 3 do asyncio.sleep(0) end
    asyncio._drop_transports(loop)
  end

  --- Closes the sockets of what a loop still has, without callbacks.
  function asyncio._drop_transports(loop)
    local r = attrs(loop).transports
    if r == nil then return end
    attrs(loop).transports = nil
    for obj in pairs(r) do
      obj._closing, obj._lost_called, obj._closed, obj._serving = true, true, true, false
      if obj.sockets then
        for _, s in ipairs(obj.sockets) do s:close() end
        obj:_remove_socket_file()
      else
        obj._sock:close()
      end
    end
  end

  asyncio._Transport, asyncio._DatagramTransport, asyncio._Server = Transport, DatagramTransport, Server
end
