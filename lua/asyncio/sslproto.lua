--- asyncio's TLS, layered as CPython's sslproto: an SSLProtocol is the
-- protocol of a plain transport; it runs the TLS object of the core
-- (OpenSSL on memory BIOs, csrc/io/tls.c) and, once the handshake is
-- done, gives the application's protocol an SSLTransport.  Everything
-- runs in loop callbacks (the plain transport's protocol calls), never
-- re-entrantly.  Loaded by lua/asyncio.lua: install(asyncio, Loop).
--
-- The contract kept for the application: connection_made after the
-- handshake, data_received with plaintext, eof_received at the peer's
-- close_notify or at the end of the stream (then the transport closes:
-- TLS cannot half-close), connection_lost once; writes never wait and
-- flow control is the plain transport's (pause_writing/resume_writing
-- pass through).  A failed handshake fails the waiter (create_connection,
-- start_tls) with the SSLError itself; a server drops the connection.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local ssl = require "trio_asyncio.ssl"

local OSError, RuntimeError = errors.OSError, errors.RuntimeError

local argerror = errors.argerror

local DEFAULT_HANDSHAKE_TIMEOUT = 60 -- seconds, as asyncio
local READ_SIZE = 256 * 1024

return function(asyncio, Loop)
  local call_protocol = asyncio._call_protocol
  local check_aio = core.check_aio

  local SSLProtocol = { __name = "asyncio.SSLProtocol" }
  SSLProtocol.__index = SSLProtocol

  local SSLTransport = { __name = "asyncio.SSLTransport" }
  SSLTransport.__index = SSLTransport
  asyncio._SSLTransport = SSLTransport

  local function connection_reset(message)
    return errors.ConnectionResetError { message = message, code = "ECONNRESET", errno = 104 }
  end

  --- SSLProtocol(loop, app_protocol, ctx, opts): opts.waiter (a Future
  -- set once the application has its transport), server_side,
  -- server_hostname, handshake_timeout, call_connection_made (false for
  -- start_tls, whose protocol is already connected).
  local function new_ssl_protocol(loop, app_protocol, ctx, opts)
    local self = setmetatable({
      _loop = loop, _app_protocol = app_protocol, _ctx = ctx, _waiter = opts.waiter,
      _server_side = opts.server_side == true, _hostname = opts.server_hostname,
      _timeout = opts.handshake_timeout or DEFAULT_HANDSHAKE_TIMEOUT,
      _call_connection_made = opts.call_connection_made ~= false,
      _state = "handshake", _app_paused = false, _eof_seen = false, _lost_called = false,
      _app_connected = false, _connection_lost = false,
    }, SSLProtocol)
    self._tls = ctx:_wrap(self._server_side, self._hostname, opts.fname or "create_connection")
    return self
  end
  asyncio._new_ssl_protocol = new_ssl_protocol

  -- Sends bytes a TLS step produced for the peer.
  function SSLProtocol:_send(outgoing)
    if outgoing ~= "" then self._transport:write(outgoing) end
  end

  -- Sends what TLS has left for the peer (after a failed step: the alert
  -- that tells the peer why).
  function SSLProtocol:_flush()
    if self._tls ~= nil then self:_send(self._tls:take_outgoing()) end
  end

  function SSLProtocol:connection_made(transport)
    self._transport = transport
    self._timer = self._loop:call_later(self._timeout, function()
      self:_handshake_failed(errors.ConnectionAbortedError {
        message = ("SSL handshake is taking longer than %s seconds: aborting the connection")
          :format(self._timeout), code = "ECONNABORTED", errno = 103 })
    end)
    self:_do_handshake()
  end

  function SSLProtocol:_do_handshake()
    local ok, status, outgoing = pcall(self._tls.handshake, self._tls)
    if not ok then
      self:_flush()
      return self:_handshake_failed(status)
    end
    self:_send(outgoing)
    if status == "closed" then return self:_handshake_failed(connection_reset("SSL handshake: the peer closed TLS")) end
    if status == "done" then self:_handshake_done() end
  end

  function SSLProtocol:_finish_handshake_timer()
    if self._timer then
      self._timer:cancel()
      self._timer = nil
    end
  end

  function SSLProtocol:_handshake_failed(exc)
    if self._state ~= "handshake" then return end
    self._state = "closed"
    self:_finish_handshake_timer()
    local w = self._waiter
    if w and not w:done() then
      w:set_exception(exc)
    elseif not OSError:is(exc) then
      self._loop:call_exception_handler { message = "SSL handshake failed", exception = exc,
        transport = self._transport, protocol = self }
    end
    self._transport:abort()
    self:_free()
  end

  function SSLProtocol:_handshake_done()
    self._state = "wrapped"
    self:_finish_handshake_timer()
    local t = setmetatable({ _proto = self, _loop = self._loop, _closing = false, _conn_lost = 0 }, SSLTransport)
    self._app_transport = t
    if self._call_connection_made then
      local ok, err = call_protocol(self._loop, t, self._app_protocol, "connection_made", t)
      if not ok then
        self._state = "closed"
        if self._waiter and not self._waiter:done() then self._waiter:set_exception(err) end
        self._transport:abort()
        return
      end
    end
    self._app_connected = true
    if self._waiter and not self._waiter:done() then self._waiter:set_result(true) end
    self:_process_incoming()
  end

  function SSLProtocol:_fatal_error(exc)
    if not OSError:is(exc) then
      self._loop:call_exception_handler { message = "Fatal error on SSL transport", exception = exc,
        transport = self._app_transport, protocol = self._app_protocol }
    end
    self._lost_exc = exc
    self._state = "closed"
    if self._app_transport then self._app_transport._closing = true end
    self._transport:abort()
  end

  -- Hands the application what has been decrypted, until TLS wants more
  -- bytes, the application pauses reading, or the peer closed TLS.  What
  -- reading produced for the peer (answers to post-handshake messages)
  -- goes out at once.
  function SSLProtocol:_process_incoming()
    while (self._state == "wrapped" or self._state == "shutdown") and not self._app_paused do
      local ok, data, status, outgoing = pcall(self._tls.read, self._tls, READ_SIZE)
      if not ok then return self:_fatal_error(data) end
      self:_send(outgoing)
      if data ~= nil then
        if self._state == "wrapped" then
          local pok, err = call_protocol(self._loop, self._app_transport, self._app_protocol, "data_received", data)
          if not pok then return self:_fatal_error(err) end
        end
        if status == "want_read" then return end -- every byte fed was read
      elseif status == "closed" then
        return self:_eof()
      else
        return
      end
    end
  end

  -- The peer is done sending (close_notify, or the end of the stream):
  -- eof_received, then the transport closes whatever it answered.
  function SSLProtocol:_eof()
    if self._eof_seen then return end
    self._eof_seen = true
    if self._state == "wrapped" then
      call_protocol(self._loop, self._app_transport, self._app_protocol, "eof_received")
      self._app_transport:close()
    end
  end

  function SSLProtocol:data_received(data)
    if self._tls == nil or self._state == "closed" then return end
    self._tls:feed(data)
    if self._state == "handshake" then self:_do_handshake() else self:_process_incoming() end
  end

  function SSLProtocol:eof_received()
    if self._state == "handshake" then
      self:_handshake_failed(connection_reset("SSL handshake: the peer closed the connection"))
      return true
    end
    if self._tls ~= nil then
      self._tls:feed_eof()
      self:_process_incoming()
    end
    self:_eof()
    return true
  end

  function SSLProtocol:connection_lost(exc)
    self._connection_lost = true
    self:_finish_handshake_timer()
    if self._state == "handshake" then
      self:_handshake_failed(exc or connection_reset("SSL handshake: connection lost"))
    end
    self._state = "closed"
    if self._app_connected and not self._lost_called then
      self._lost_called = true
      call_protocol(self._loop, self._app_transport, self._app_protocol, "connection_lost", exc or self._lost_exc)
    end
    self:_free()
  end

  function SSLProtocol:_free()
    if self._tls ~= nil then
      self._tls:close()
      self._tls = nil
    end
  end

  function SSLProtocol:pause_writing()
    if self._app_connected then call_protocol(self._loop, self._app_transport, self._app_protocol, "pause_writing") end
  end

  function SSLProtocol:resume_writing()
    if self._app_connected then call_protocol(self._loop, self._app_transport, self._app_protocol, "resume_writing") end
  end

  -- -------------------------------------------------------------------
  -- SSLTransport: the application's transport

  --- transport:write(data): encrypted at once, buffered by the plain
  -- transport (pause_writing above its high water mark)
  function SSLTransport:write(data)
    if type(data) ~= "string" then argerror(1, "write", "string expected, got " .. type(data)) end
    if data == "" then return end
    local proto = self._proto
    if self._closing or proto._state ~= "wrapped" then
      self._conn_lost = self._conn_lost + 1
      if self._conn_lost >= 5 then io.stderr:write("asyncio: SSL transport write after close.\n") end
      return
    end
    local ok, status, outgoing = pcall(proto._tls.write, proto._tls, data)
    if not ok then return proto:_fatal_error(status) end
    proto:_send(outgoing)
  end

  function SSLTransport:writelines(list)
    if type(list) ~= "table" then argerror(1, "writelines", "list of strings expected") end
    self:write(table.concat(list))
  end

  --- TLS has no half-close.
  function SSLTransport:write_eof()
    error(RuntimeError("write_eof: TLS transports cannot half-close (SSL doesn't support half-closes)"), 2)
  end

  function SSLTransport:can_write_eof() return false end

  --- transport:close(): sends close_notify after what is buffered, then
  -- closes the connection (connection_lost(nil) follows).
  function SSLTransport:close()
    if self._closing then return end
    self._closing = true
    local proto = self._proto
    if proto._state == "wrapped" then
      proto._state = "shutdown"
      local ok, _, outgoing = pcall(proto._tls.shutdown, proto._tls)
      if ok then proto:_send(outgoing) end
    end
    proto._transport:close()
  end
  SSLTransport.__close = SSLTransport.close

  function SSLTransport:abort()
    self._closing = true
    self._proto._state = "closed"
    self._proto._transport:abort()
  end

  function SSLTransport:is_closing() return self._closing end

  function SSLTransport:pause_reading()
    self._proto._app_paused = true
    self._proto._transport:pause_reading()
  end

  function SSLTransport:resume_reading()
    local proto = self._proto
    if not proto._app_paused then return end
    proto._app_paused = false
    proto._transport:resume_reading()
    self._loop:call_soon(function() proto:_process_incoming() end)
  end

  function SSLTransport:is_reading() return not self._proto._app_paused and not self._closing end
  function SSLTransport:get_write_buffer_size() return self._proto._transport:get_write_buffer_size() end
  function SSLTransport:set_write_buffer_limits(high, low)
    return self._proto._transport:set_write_buffer_limits(high, low)
  end
  function SSLTransport:get_write_buffer_limits() return self._proto._transport:get_write_buffer_limits() end

  --- get_extra_info(name [, default]): "ssl_object", "peercert", "cipher"
  -- ({name, protocol, bits}), "sslcontext", and the plain transport's
  -- ("peername", "sockname", "socket")
  function SSLTransport:get_extra_info(name, default)
    local proto = self._proto
    if name == "ssl_object" or name == "peercert" or name == "cipher" then
      if proto._tls == nil then return default end
      if name == "ssl_object" then
        proto._ssl_object = proto._ssl_object
          or ssl._object(proto._tls, proto._ctx, proto._server_side, proto._hostname)
        return proto._ssl_object
      end
      if name == "peercert" then return proto._tls:getpeercert() end
      return { proto._tls:cipher() }
    end
    if name == "sslcontext" then return proto._ctx end
    -- the connection's own details go with it, as asyncio's
    if proto._connection_lost then return default end
    return proto._transport:get_extra_info(name, default)
  end

  function SSLTransport:get_protocol() return self._proto._app_protocol end
  function SSLTransport:set_protocol(p) self._proto._app_protocol = p end

  function SSLTransport:__tostring()
    return ("asyncio.SSLTransport (%s%s)"):format(tostring(self._proto._transport._sock),
      self._closing and ", closing" or "")
  end

  -- -------------------------------------------------------------------
  -- loop:start_tls

  local START_TLS_OPTS = { server_side = true, server_hostname = true, ssl_handshake_timeout = true }

  --- loop:start_tls(transport, protocol, sslcontext, {server_side=, server_hostname=,
  -- ssl_handshake_timeout=}) -> the new (TLS) transport; protocol now
  -- talks through it (its connection_made is not called again)
  function Loop:start_tls(transport, protocol, sslcontext, opts)
    if type(transport) ~= "table" or type(transport.set_protocol) ~= "function" then
      argerror(1, "start_tls", "transport expected")
    end
    if type(protocol) ~= "table" then argerror(2, "start_tls", "protocol expected") end
    if not ssl.is_context(sslcontext) then
      argerror(3, "start_tls", "trio_asyncio.ssl.SSLContext expected, got " .. type(sslcontext))
    end
    opts = errors.check_opts(opts, 4, "start_tls", START_TLS_OPTS)
    check_aio("loop:start_tls")
    local waiter = self:create_future()
    local sp = new_ssl_protocol(self, protocol, sslcontext, { waiter = waiter,
      server_side = opts.server_side, server_hostname = opts.server_hostname,
      handshake_timeout = opts.ssl_handshake_timeout, call_connection_made = false, fname = "start_tls" })
    transport:pause_reading()
    transport:set_protocol(sp)
    self:call_soon(function() sp:connection_made(transport) end)
    self:call_soon(function() transport:resume_reading() end)
    local ok, err = pcall(waiter.await, waiter)
    if not ok then
      transport:close()
      error(err, 0)
    end
    return sp._app_transport
  end
end
