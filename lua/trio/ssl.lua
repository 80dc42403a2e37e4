--- trio.SSLStream: TLS over any Trio stream, as Trio does it: the TLS
-- object of the C core (OpenSSL on memory BIOs, csrc/io/tls.c) encrypts
-- and decrypts, and this file moves its bytes over the transport stream.
-- Also SSLListener, open_ssl_over_tcp_stream, open_ssl_over_tcp_listeners
-- and serve_ssl_over_tcp.  Loaded by lua/trio.lua: install(trio).
--
-- The algorithm is Trio's (`_retry`): run one TLS step; send what it
-- produced (under the inner send lock); if it wants more bytes, receive
-- once from the transport (under the inner receive lock, unless another
-- task received while this one waited for the lock); repeat.  So a
-- send_all and a receive_some may run at once, each doing what the
-- handshake needs.  A TLS failure breaks the stream: BrokenResourceError
-- whose cause is the trio_asyncio.ssl.SSLError.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local ssl = require "trio_asyncio.ssl"

local ClosedResourceError, BrokenResourceError = errors.ClosedResourceError, errors.BrokenResourceError
local BusyResourceError, SSLError = errors.BusyResourceError, errors.SSLError

local argerror = errors.argerror

local DEFAULT_RECEIVE_SIZE = 65536

return function(trio)
  local lowlevel = trio.lowlevel
  local check_trio = core.check_trio

  local SSLStream = { __name = "trio.SSLStream" }
  SSLStream.__index = SSLStream

  -- The inner locks (Trio's _inner_send_lock, a StrictFIFOLock, and
  -- _inner_recv_lock): private to the stream, so they need less than a
  -- trio.Lock.  A free lock is taken without a schedule point (the
  -- transport call made under it is the checkpoint); a busy one is
  -- waited for in FIFO order, and release hands it to the first waiter.
  local function new_inner_lock() return { held = false, lot = lowlevel.ParkingLot() } end

  local function acquire(lock)
    if not lock.held then
      lock.held = true
      return
    end
    lowlevel.checkpoint_if_cancelled()
    lock.lot:park() -- release() made us the holder before waking us
  end

  local function release(lock)
    if #lock.lot > 0 then lock.lot:unpark() else lock.held = false end
  end

  -- Runs fn(...) holding lock.
  local function with_lock(lock, fn, ...)
    acquire(lock)
    local ok, err = pcall(fn, ...)
    release(lock)
    if not ok then error(err, 0) end
  end

  local function is_eof(err)
    return SSLError:is(err) and err.reason == "UNEXPECTED_EOF_WHILE_READING"
  end

  -- The TLS steps: each returns finished, want_read, value, and the bytes
  -- it produced for the peer.
  local function handshake_step(tls)
    local status, outgoing = tls:handshake()
    if status == "closed" then
      error(SSLError { message = "do_handshake: the peer closed TLS during the handshake",
        reason = "UNEXPECTED_EOF_WHILE_READING", library = "SSL" }, 0)
    end
    return status == "done", status == "want_read", nil, outgoing
  end

  local function write_step(tls, data)
    local status, outgoing = tls:write(data)
    return status == "done", status == "want_read", nil, outgoing
  end

  local function read_step(tls, max_bytes)
    local data, status, outgoing = tls:read(max_bytes)
    if data ~= nil then return true, false, data, outgoing end
    if status == "closed" then return true, false, "", outgoing end
    return false, true, nil, outgoing
  end

  local function shutdown_step(tls)
    local status, outgoing = tls:shutdown()
    return status ~= "want_read", status == "want_read", nil, outgoing
  end

  -- Sends to_send (after the delayed session tickets, if any) under the
  -- inner send lock; a failed send breaks the stream.
  local function send_transport(self, to_send)
    local lock = self._inner_send_lock
    acquire(lock)
    if self._delayed_outgoing then
      to_send = self._delayed_outgoing .. to_send
      self._delayed_outgoing = nil
    end
    local transport = self.transport_stream
    local ok, err = pcall(transport.send_all, transport, to_send)
    release(lock)
    if not ok then
      self._state = "broken"
      error(err, 0)
    end
  end

  local function receive_transport(self, recv_count)
    if recv_count ~= self._inner_recv_count then return end -- someone else received meanwhile
    local data = self.transport_stream:receive_some()
    if self._state == "closed" then error(ClosedResourceError("another task closed this stream"), 0) end
    if data == "" then self._tls:feed_eof() else self._tls:feed(data) end
    self._inner_recv_count = self._inner_recv_count + 1
  end

  -- After a failed step, the alert OpenSSL wrote tells the peer why (a
  -- best effort: not when another task is sending, errors ignored).
  local function send_alert(self)
    local alert = self._tls:take_outgoing()
    local lock = self._inner_send_lock
    if alert ~= "" and not lock.held then
      lock.held = true
      pcall(self.transport_stream.send_all, self.transport_stream, alert)
      release(lock)
    end
  end

  -- Trio's _retry: runs step until it finishes, moving bytes as it asks.
  local function retry(self, step, arg, ignore_want_read, is_handshake)
    lowlevel.checkpoint_if_cancelled()
    local tls = self._tls
    local yielded, finished, value = false, false, nil
    while not finished do
      if self._state == "closed" then error(ClosedResourceError("another task closed this stream"), 0) end
      local ok, done, want_read, v, to_send = pcall(step, tls, arg)
      if not ok then
        if SSLError:is(done) then
          self._state = "broken"
          send_alert(self)
          error(BrokenResourceError { message = "TLS failed: " .. done.message, cause = done }, 0)
        end
        error(done, 0)
      end
      finished, value = done, v
      if ignore_want_read then finished, want_read = true, false end
      -- A TLS 1.3 server's last handshake flight (session tickets) waits
      -- for the next send, so a client that never reads cannot block the
      -- handshake (Trio does the same).
      if is_handshake and not want_read and tls:server_side() and tls:version() == "TLSv1.3" then
        self._delayed_outgoing = to_send
        to_send = ""
      end
      if to_send ~= "" then
        yielded = true
        send_transport(self, to_send)
      elseif want_read then
        yielded = true
        with_lock(self._inner_recv_lock, receive_transport, self, self._inner_recv_count)
      end
    end
    if not yielded then lowlevel.cancel_shielded_checkpoint() end
    return value
  end

  local function check_status(self)
    local state = self._state
    if state == "ok" then return end
    if state == "broken" then error(BrokenResourceError("this SSLStream is broken"), 3) end
    error(ClosedResourceError("this SSLStream was already closed"), 3)
  end

  -- The handshake runs once; other tasks that need it wait for it.  With
  -- checkpoint false, a finished handshake costs no schedule point.
  local function ensure_handshake(self, checkpoint)
    if self._handshake_finished and not checkpoint then return end
    local hs = self._handshake
    if not hs.started then
      hs.started = true
      local ok, err = pcall(retry, self, handshake_step, nil, false, true)
      if not ok then self._state = "broken" end
      self._handshake_finished = true
      hs.done:set()
      if not ok then error(err, 0) end
    else
      hs.done:wait()
    end
    if self._state == "broken" then error(BrokenResourceError("the TLS handshake failed"), 0) end
  end

  -- A public method's work runs flagged busy (self[busy] true): a second
  -- task in the same direction gets BusyResourceError.
  local function enter(self, busy, what)
    if self[busy] then
      error(BusyResourceError(("another task is currently %s on this SSLStream"):format(what)), 3)
    end
    self[busy] = true
  end

  -- Clears the flag, then returns the work's results or raises its error.
  local function leave(self, busy, ok, ...)
    self[busy] = false
    if not ok then error((...), 0) end
    return ...
  end

  local STREAM_OPTS = { server_side = true, server_hostname = true, https_compatible = true }

  --- trio.SSLStream(transport_stream, ssl_context, {server_side=, server_hostname=, https_compatible=})
  function trio.SSLStream(transport_stream, ssl_context, opts)
    if type(transport_stream) ~= "table" or type(transport_stream.send_all) ~= "function"
        or type(transport_stream.receive_some) ~= "function" then
      argerror(1, "SSLStream", "a stream expected")
    end
    if not ssl.is_context(ssl_context) then
      argerror(2, "SSLStream", "trio_asyncio.ssl.SSLContext expected, got " .. type(ssl_context))
    end
    opts = errors.check_opts(opts, 3, "SSLStream", STREAM_OPTS)
    local server_side = opts.server_side == true
    return setmetatable({
      transport_stream = transport_stream,
      context = ssl_context,
      server_side = server_side,
      server_hostname = opts.server_hostname,
      _https_compatible = opts.https_compatible == true,
      _tls = ssl_context:_wrap(server_side, opts.server_hostname, "SSLStream"),
      _state = "ok",
      _sending = false,
      _receiving = false,
      _inner_send_lock = new_inner_lock(),
      _inner_recv_lock = new_inner_lock(),
      _inner_recv_count = 0,
      _handshake = { started = false, done = trio.Event() },
      _handshake_finished = false, -- the handshake ran (done is set), successfully or not
    }, SSLStream)
  end

  local function check_stream(self, fname)
    if getmetatable(self) ~= SSLStream then argerror(0, fname, "SSLStream expected") end
  end

  --- stream:do_handshake(): completes the handshake (once; later calls
  -- only checkpoint).
  function SSLStream:do_handshake()
    check_stream(self, "do_handshake")
    check_trio("SSLStream:do_handshake")
    check_status(self)
    ensure_handshake(self, true)
  end

  local function receive_plaintext(self, max_bytes)
    ensure_handshake(self, false)
    return retry(self, read_step, max_bytes)
  end

  local function receive_some(self, max_bytes)
    check_status(self)
    if not self._https_compatible then return receive_plaintext(self, max_bytes) end
    -- https_compatible: the transport ending without close_notify is the
    -- end of the data
    local ok, data = pcall(receive_plaintext, self, max_bytes)
    if ok then return data end
    if BrokenResourceError:is(data) and is_eof(data.cause) then
      lowlevel.checkpoint()
      return ""
    end
    error(data, 0)
  end

  --- stream:receive_some([max_bytes]) -> plaintext ("" once the peer
  -- closed TLS; with https_compatible also when the transport just ended)
  function SSLStream:receive_some(max_bytes)
    check_stream(self, "receive_some")
    max_bytes = errors.check_max_bytes(max_bytes, "receive_some", DEFAULT_RECEIVE_SIZE)
    check_trio("SSLStream:receive_some")
    enter(self, "_receiving", "receiving data")
    return leave(self, "_receiving", pcall(receive_some, self, max_bytes))
  end

  local function send_all(self, data)
    check_status(self)
    ensure_handshake(self, false)
    if data == "" then
      lowlevel.checkpoint()
      return
    end
    retry(self, write_step, data)
  end

  --- stream:send_all(data)
  function SSLStream:send_all(data)
    check_stream(self, "send_all")
    if type(data) ~= "string" then argerror(1, "send_all", "string expected, got " .. type(data)) end
    check_trio("SSLStream:send_all")
    enter(self, "_sending", "sending data")
    return leave(self, "_sending", pcall(send_all, self, data))
  end

  local function wait_transport(transport) transport:wait_send_all_might_not_block() end

  local function wait_send(self)
    check_status(self)
    with_lock(self._inner_send_lock, wait_transport, self.transport_stream)
  end

  --- stream:wait_send_all_might_not_block()
  function SSLStream:wait_send_all_might_not_block()
    check_stream(self, "wait_send_all_might_not_block")
    check_trio("SSLStream:wait_send_all_might_not_block")
    enter(self, "_sending", "sending data")
    return leave(self, "_sending", pcall(wait_send, self))
  end

  local function unwrap(self)
    check_status(self)
    ensure_handshake(self, false)
    retry(self, shutdown_step)
    local transport = self.transport_stream
    local trailing = self._tls:take_incoming()
    self._state = "closed"
    self.transport_stream = nil
    self._tls:close()
    return transport, trailing
  end

  --- stream:unwrap() -> transport_stream, trailing_bytes: ends TLS (both
  -- close_notify) and hands back the transport and the bytes read past
  -- the peer's close_notify.
  function SSLStream:unwrap()
    check_stream(self, "unwrap")
    check_trio("SSLStream:unwrap")
    if self._sending or self._receiving then
      error(BusyResourceError("another task is currently using on this SSLStream"), 2)
    end
    self._sending, self._receiving = true, true
    local ok, transport, trailing = pcall(unwrap, self)
    self._sending, self._receiving = false, false
    if not ok then error(transport, 0) end
    return transport, trailing
  end

  -- Whether close() may send close_notify: the handshake is complete, the
  -- caller is a Trio task, and no task is sending (it would have to wait
  -- for that send; close never waits for other tasks).
  local function may_notify(self)
    return self._handshake_finished and not self._inner_send_lock.held
      and pcall(check_trio, "SSLStream:close")
  end

  --- stream:close(): sends close_notify (not waiting for the peer's),
  -- then closes the transport.  Without a completed handshake, or
  -- while another task is sending, or with https_compatible, it only
  -- closes the transport.  Cancelled while sending: the transport is
  -- closed and Cancelled raised.
  function SSLStream:close()
    check_stream(self, "close")
    if self._state == "closed" then return end
    local transport = self.transport_stream
    local ok, err = true, nil
    if self._state == "ok" and not self._https_compatible and may_notify(self) then
      ok, err = pcall(retry, self, shutdown_step, nil, true)
      if not ok and (BrokenResourceError:is(err) or BusyResourceError:is(err)) then ok = true end
    end
    self._state = "closed"
    self._tls:close()
    transport:close()
    if not ok then error(err, 0) end
  end
  SSLStream.__close = SSLStream.close

  local function handshake_info(self, what)
    if self._state == "closed" then return nil end
    return self._tls[what](self._tls)
  end

  --- stream:getpeercert([binary_form]) -> the peer's certificate, shaped
  -- like Python's (subject, issuer, notBefore, notAfter, subjectAltName)
  function SSLStream:getpeercert(binary_form)
    check_stream(self, "getpeercert")
    if self._state == "closed" then error(ClosedResourceError("this SSLStream was already closed"), 2) end
    return self._tls:getpeercert(binary_form)
  end

  --- stream:selected_alpn_protocol() -> the ALPN protocol agreed, or nil
  function SSLStream:selected_alpn_protocol() return handshake_info(self, "selected_alpn_protocol") end
  --- stream:version() -> "TLSv1.3", or nil before the handshake
  function SSLStream:version() return handshake_info(self, "version") end
  --- stream:cipher() -> name, protocol, bits
  function SSLStream:cipher() return handshake_info(self, "cipher") end

  function SSLStream:__tostring()
    return ("trio.SSLStream (%s, %s) over %s"):format(self.server_side and "server" or "client",
      self._state, tostring(self.transport_stream))
  end

  -- -------------------------------------------------------------------
  -- SSLListener and the TCP helpers

  local SSLListener = { __name = "trio.SSLListener" }
  SSLListener.__index = SSLListener

  --- trio.SSLListener(transport_listener, ssl_context, {https_compatible=}):
  -- accept() wraps each connection in a server-side SSLStream (the
  -- handshake happens at its first use).
  function trio.SSLListener(transport_listener, ssl_context, opts)
    if type(transport_listener) ~= "table" or type(transport_listener.accept) ~= "function" then
      argerror(1, "SSLListener", "a listener expected")
    end
    if not ssl.is_context(ssl_context) then argerror(2, "SSLListener", "trio_asyncio.ssl.SSLContext expected") end
    opts = errors.check_opts(opts, 3, "SSLListener", { https_compatible = true })
    return setmetatable({ transport_listener = transport_listener, socket = transport_listener.socket,
      _context = ssl_context, _https_compatible = opts.https_compatible == true }, SSLListener)
  end

  local function server_stream(self, transport)
    return trio.SSLStream(transport, self._context,
      { server_side = true, https_compatible = self._https_compatible })
  end

  function SSLListener:accept() return server_stream(self, self.transport_listener:accept()) end

  --- listener:_accept_nowait() -> an SSLStream over a connection already
  -- waiting, or nil (see SocketListener:_accept_nowait; nil too when the
  -- transport listener has no such method)
  function SSLListener:_accept_nowait()
    local transport_listener = self.transport_listener
    if transport_listener._accept_nowait == nil then return nil end
    local transport = transport_listener:_accept_nowait()
    if transport == nil then return nil end
    return server_stream(self, transport)
  end

  function SSLListener:close() self.transport_listener:close() end
  SSLListener.__close = SSLListener.close

  function SSLListener:__tostring()
    return ("trio.SSLListener over %s"):format(tostring(self.transport_listener))
  end

  --- open_ssl_over_tcp_stream(host, port, {ssl_context=, https_compatible=, happy_eyeballs_delay=})
  -- -> a client SSLStream (the default context verifies host against the
  -- system's CAs)
  function trio.open_ssl_over_tcp_stream(host, port, opts)
    if type(host) ~= "string" then argerror(1, "open_ssl_over_tcp_stream", "host string expected") end
    opts = errors.check_opts(opts, 3, "open_ssl_over_tcp_stream",
      { ssl_context = true, https_compatible = true, happy_eyeballs_delay = true })
    local ctx = opts.ssl_context
    if ctx ~= nil and not ssl.is_context(ctx) then
      argerror(3, "open_ssl_over_tcp_stream", "ssl_context: trio_asyncio.ssl.SSLContext expected")
    end
    check_trio("trio.open_ssl_over_tcp_stream")
    ctx = ctx or ssl.create_default_context()
    local tcp = trio.open_tcp_stream(host, port, { happy_eyeballs_delay = opts.happy_eyeballs_delay })
    local ok, stream = pcall(trio.SSLStream, tcp, ctx,
      { server_hostname = host, https_compatible = opts.https_compatible })
    if not ok then
      tcp:close()
      error(stream, 0)
    end
    return stream
  end

  --- open_ssl_over_tcp_listeners(port, ssl_context, {host=, https_compatible=, backlog=})
  function trio.open_ssl_over_tcp_listeners(port, ssl_context, opts)
    if not ssl.is_context(ssl_context) then
      argerror(2, "open_ssl_over_tcp_listeners", "trio_asyncio.ssl.SSLContext expected")
    end
    opts = errors.check_opts(opts, 3, "open_ssl_over_tcp_listeners",
      { host = true, https_compatible = true, backlog = true })
    local listeners = trio.open_tcp_listeners(port, { host = opts.host, backlog = opts.backlog })
    for i, l in ipairs(listeners) do
      listeners[i] = trio.SSLListener(l, ssl_context, { https_compatible = opts.https_compatible })
    end
    return listeners
  end

  --- serve_ssl_over_tcp(handler, port, ssl_context, {host=, https_compatible=, backlog=,
  -- handler_nursery=, task_status=}): serve_listeners over SSL listeners;
  -- the start value is their list.
  function trio.serve_ssl_over_tcp(handler, port, ssl_context, ...)
    if not errors.is_callable(handler) then argerror(1, "serve_ssl_over_tcp", "function expected") end
    if not ssl.is_context(ssl_context) then
      argerror(3, "serve_ssl_over_tcp", "trio_asyncio.ssl.SSLContext expected, got " .. type(ssl_context))
    end
    local opts, status = trio._split_serve_args("serve_ssl_over_tcp", 4, { host = true,
      https_compatible = true, backlog = true, handler_nursery = true, task_status = true }, ...)
    check_trio("trio.serve_ssl_over_tcp")
    local listeners = trio.open_ssl_over_tcp_listeners(port, ssl_context,
      { host = opts.host, https_compatible = opts.https_compatible, backlog = opts.backlog })
    return trio.serve_listeners(handler, listeners,
      { handler_nursery = opts.handler_nursery }, status)
  end
end
