--- Trio's byte streams over sockets: SocketStream, SocketListener,
-- StapledStream, open_tcp_stream (Happy Eyeballs, RFC 8305),
-- open_tcp_listeners, serve_listeners, serve_tcp, and the Unix-domain
-- variants.  Loaded by lua/trio.lua, which passes itself: install(trio).
--
-- Error rules (Trio's): an operation on a closed stream raises
-- ClosedResourceError; a stream closed by another task while this one
-- waits, too; an OS failure of the connection (reset, broken pipe) raises
-- BrokenResourceError with the OSError as `cause`; two tasks sending (or
-- receiving) at once raise BusyResourceError.  close() is a plain call
-- that never waits.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local tsocket = require "trio.socket"

local ClosedResourceError, BrokenResourceError = errors.ClosedResourceError, errors.BrokenResourceError
local BusyResourceError, OSError = errors.BusyResourceError, errors.OSError

local argerror, class_of, bad_self = errors.argerror, errors.class_of, errors.bad_self

return function(trio)
  local check_trio = core.check_trio
  local sock_methods = core.metatable("trio_asyncio.socket").__methods
  local raw_accept = sock_methods.accept
  local try_accept = core.sock_try_accept
  -- SocketStream's send_all and receive_some, in C (csrc/trio/socket.c)
  local stream_send, stream_recv = core.trio_stream_send, core.trio_stream_recv
  -- whether a send_all (or wait_send_all_might_not_block) is under way on
  -- a stream's socket; sending(sock, busy) sets it
  local sending = core.trio_stream_sending

  -- Errors of the socket become stream errors: EBADF means closed, other
  -- OS errors a broken connection; anything else (Cancelled, Busy, Closed)
  -- passes unchanged.
  local function translate(err)
    if OSError:is(err) then
      if err.code == "EBADF" or err.code == "ENOTSOCK" then
        error(ClosedResourceError("this socket was already closed"), 0)
      end
      error(BrokenResourceError { message = "socket connection broken: " .. err.message, cause = err }, 0)
    end
    error(err, 0)
  end

  -- -------------------------------------------------------------------
  -- SocketStream

  local SocketStream = { __name = "trio.SocketStream" }
  SocketStream.__index = SocketStream

  --- trio.SocketStream(sock): a stream on a connected SOCK_STREAM socket
  -- (TCP_NODELAY is set on TCP).
  local function new_socket_stream(sock)
    if not tsocket._is_socket(sock) then argerror(1, "SocketStream", "trio.socket socket expected") end
    if sock.type ~= tsocket.SOCK_STREAM then argerror(1, "SocketStream", "a SOCK_STREAM socket expected") end
    if sock.family ~= tsocket.AF_UNIX then
      pcall(sock.setsockopt, sock, tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY, true)
    end
    return setmetatable({ socket = sock, _closed = false, _send_ended = 0 }, SocketStream)
  end
  trio.SocketStream = new_socket_stream

  -- Bits of stream._send_ended (one field for both: a stream's table then
  -- holds three fields, the size of an idle connection's; the busy mark of
  -- a send is its socket's, in C):
  local EOF_SENT = 1     -- send_eof() done
  local SEND_BROKEN = 2  -- a send_all was cancelled midway: the stream is unusable

  local function check_send(self, fname)
    if self._closed then error(ClosedResourceError("this socket was already closed"), 3) end
    if sending(self.socket) then
      error(BusyResourceError("another task is currently sending data on this SocketStream"), 3)
    end
    if self._send_ended & SEND_BROKEN ~= 0 then
      error(BrokenResourceError("a previous send_all was cancelled while sending: the stream is unusable"), 3)
    end
    if self._send_ended & EOF_SENT ~= 0 and fname == "send_all" then
      error(ClosedResourceError("can't send data after sending EOF"), 3)
    end
  end

  --- stream:send_all(data): returns once the socket took all of it.
  function SocketStream:send_all(data)
    if class_of(self) ~= SocketStream then bad_self(self, SocketStream, "SocketStream:send_all") end
    if self._closed or self._send_ended ~= 0 then check_send(self, "send_all") end
    -- it checks the busy mark, data and the flavor, marks the socket busy
    -- until it returns, and raises its errors through send_error (below):
    -- no pcall on the way of every send
    stream_send(self.socket, data, self)
  end

  --- stream:wait_send_all_might_not_block(): returns once what was
  -- queued has been written.
  function SocketStream:wait_send_all_might_not_block()
    if class_of(self) ~= SocketStream then bad_self(self, SocketStream, "SocketStream:wait_send_all_might_not_block") end
    check_trio("SocketStream:wait_send_all_might_not_block")
    check_send(self, "wait_send_all_might_not_block")
    sending(self.socket, true)
    local ok, err = pcall(function()
      trio.lowlevel.checkpoint_if_cancelled()
      if not core.sock_writing(self.socket) then
        trio.lowlevel.cancel_shielded_checkpoint()
        return
      end
      while core.sock_writing(self.socket) do
        core.trio_wait_io(self.socket, 1)
        if self._closed then error(ClosedResourceError("another task closed this stream"), 0) end
      end
      core.sock_try_drain(self.socket) -- raises the error of a failed write
    end)
    sending(self.socket, false)
    if not ok then translate(err) end
  end

  --- stream:send_eof(): no more data will be sent (the peer reads EOF).
  function SocketStream:send_eof()
    if class_of(self) ~= SocketStream then bad_self(self, SocketStream, "SocketStream:send_eof") end
    check_trio("SocketStream:send_eof")
    if sending(self.socket) then
      error(BusyResourceError("another task is currently sending data on this SocketStream"), 2)
    end
    trio.lowlevel.checkpoint()
    if self._closed then error(ClosedResourceError("this socket was already closed"), 2) end
    if self._send_ended & EOF_SENT ~= 0 then return end
    local ok, err = pcall(self.socket.shutdown, self.socket, tsocket.SHUT_WR)
    if not ok then translate(err) end
    self._send_ended = self._send_ended | EOF_SENT
  end

  --- stream:receive_some([max_bytes=65536]) -> data ("" at end of stream)
  function SocketStream:receive_some(max_bytes)
    if class_of(self) ~= SocketStream then bad_self(self, SocketStream, "SocketStream:receive_some") end
    if self._closed then error(ClosedResourceError("this socket was already closed"), 2) end
    -- it checks max_bytes and the flavor, and raises its socket's errors
    -- through recv_error (below): no pcall on the way of every receive
    return stream_recv(self.socket, max_bytes)
  end

  -- The stream errors for an error of the socket's recv in receive_some,
  -- and of its send in send_all (`writing`: bytes are still queued, so a
  -- cancelled send leaves the stream unusable)
  core.trio_stream_setup {
    function(err) -- recv_error
      if ClosedResourceError:is(err) then error(ClosedResourceError("another task closed this stream"), 0) end
      translate(err)
    end,
    function(err, stream, writing) -- send_error
      if writing and trio.Cancelled:is(err) then stream._send_ended = stream._send_ended | SEND_BROKEN end
      translate(err)
    end,
  }

  --- stream:close(): closes the socket (never waits)
  function SocketStream:close()
    if class_of(self) ~= SocketStream then bad_self(self, SocketStream, "SocketStream:close") end
    self._closed = true
    self.socket:close()
  end
  SocketStream.__close = SocketStream.close

  function SocketStream:setsockopt(level, name, value)
    return self.socket:setsockopt(level, name, value)
  end

  function SocketStream:getsockopt(level, name, buflen)
    return self.socket:getsockopt(level, name, buflen)
  end

  function SocketStream:__tostring()
    return ("trio.SocketStream (%s)"):format(tostring(self.socket))
  end

  -- -------------------------------------------------------------------
  -- SocketListener

  local SocketListener = { __name = "trio.SocketListener" }
  SocketListener.__index = SocketListener

  -- accept errors that only concern the connection that was being
  -- accepted: try the next one (Trio's list)
  local IGNORABLE_ACCEPT = {}
  for _, c in ipairs { "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN",
    "ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT",
    "EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET" } do
    IGNORABLE_ACCEPT[c] = true
  end

  --- trio.SocketListener(sock): accepts on a listening SOCK_STREAM socket
  function trio.SocketListener(sock)
    if not tsocket._is_socket(sock) then argerror(1, "SocketListener", "trio.socket socket expected") end
    if sock.type ~= tsocket.SOCK_STREAM then argerror(1, "SocketListener", "a SOCK_STREAM socket expected") end
    local ok, listening = pcall(sock.getsockopt, sock, tsocket.SOL_SOCKET, tsocket.SO_ACCEPTCONN)
    if ok and listening == 0 then argerror(1, "SocketListener", "a listening socket expected") end
    return setmetatable({ socket = sock, _closed = false }, SocketListener)
  end

  --- listener:accept() -> SocketStream
  function SocketListener:accept()
    if class_of(self) ~= SocketListener then bad_self(self, SocketListener, "SocketListener:accept") end
    check_trio("SocketListener:accept")
    while true do
      if self._closed then
        trio.lowlevel.checkpoint() -- as an accept on a closed socket: a checkpoint, then the error
        error(ClosedResourceError("this listener was already closed"), 2)
      end
      local ok, sock = pcall(raw_accept, self.socket)
      if ok then return new_socket_stream(sock) end
      if OSError:is(sock) then
        if sock.code == "EBADF" or sock.code == "ENOTSOCK" then
          error(ClosedResourceError("this listener was already closed"), 0)
        end
        if not IGNORABLE_ACCEPT[sock.code] then error(sock, 0) end
      elseif ClosedResourceError:is(sock) then
        error(ClosedResourceError("another task closed this listener"), 0)
      else
        error(sock, 0)
      end
    end
  end

  --- listener:_accept_nowait() -> a SocketStream for a connection that
  -- is already waiting, or nil (none waiting, the listener closed, or an
  -- accept error, which the next accept() meets again): no schedule
  -- point, for serve_listeners' burst after a real accept.
  function SocketListener:_accept_nowait()
    if self._closed then return nil end
    local ok, sock = pcall(try_accept, self.socket)
    if ok and sock ~= nil then return new_socket_stream(sock) end
    return nil
  end

  function SocketListener:close()
    self._closed = true
    self.socket:close()
    if self._unlink then
      os.remove(self._unlink)
      self._unlink = nil
    end
  end
  SocketListener.__close = SocketListener.close

  function SocketListener:__tostring()
    return ("trio.SocketListener (%s)"):format(tostring(self.socket))
  end

  -- -------------------------------------------------------------------
  -- StapledStream

  local StapledStream = { __name = "trio.StapledStream" }
  StapledStream.__index = StapledStream

  --- trio.StapledStream(send_stream, receive_stream): one two-way stream
  function trio.StapledStream(send_stream, receive_stream)
    if type(send_stream) ~= "table" or type(send_stream.send_all) ~= "function" then
      argerror(1, "StapledStream", "a send stream expected")
    end
    if type(receive_stream) ~= "table" or type(receive_stream.receive_some) ~= "function" then
      argerror(2, "StapledStream", "a receive stream expected")
    end
    return setmetatable({ send_stream = send_stream, receive_stream = receive_stream }, StapledStream)
  end

  function StapledStream:send_all(data) return self.send_stream:send_all(data) end
  function StapledStream:wait_send_all_might_not_block()
    return self.send_stream:wait_send_all_might_not_block()
  end
  --- send_eof of the send stream, or its close() if it has none
  function StapledStream:send_eof()
    local s = self.send_stream
    if type(s.send_eof) == "function" then return s:send_eof() end
    check_trio("StapledStream:send_eof")
    s:close()
    trio.lowlevel.checkpoint()
  end
  function StapledStream:receive_some(max_bytes) return self.receive_stream:receive_some(max_bytes) end
  --- both streams' close(), even if the first fails; when both fail, the
  -- receive stream's error comes out with the send stream's as its field
  -- `context` (Python's implicit __context__)
  function StapledStream:close()
    local ok, err = pcall(self.send_stream.close, self.send_stream)
    local rok, rerr = pcall(self.receive_stream.close, self.receive_stream)
    if not rok then
      if not ok and errors.is_error(rerr) and rerr.context == nil then rerr.context = err end
      error(rerr, 0)
    end
    if not ok then error(err, 0) end
  end
  StapledStream.__close = StapledStream.close

  -- -------------------------------------------------------------------
  -- opening TCP connections: Happy Eyeballs

  local function format_host_port(host, port)
    if host:find(":", 1, true) then return ("[%s]:%s"):format(host, port) end
    return ("%s:%s"):format(host, port)
  end

  -- RFC 6555 section 5.4: the first two attempts use different families.
  local function reorder(targets)
    for i = 2, #targets do
      if targets[i].family ~= targets[1].family then
        if i ~= 2 then table.insert(targets, 2, table.remove(targets, i)) end
        break
      end
    end
  end

  local check_opts = errors.check_opts

  local function check_port(port, n, fname)
    if math.type(port) ~= "integer" then
      argerror(n, fname, "port: integer expected, got " .. (math.type(port) or type(port)))
    end
    if port < 0 or port > 65535 then argerror(n, fname, "port must be 0-65535") end
  end

  -- A SocketStream on sock once connect(...) returns; if it raises, sock is
  -- closed and the error passed on.
  local function stream_once_connected(sock, connect, ...)
    local ok, err = pcall(connect, ...)
    if not ok then
      sock:close()
      error(err, 0)
    end
    return new_socket_stream(sock)
  end

  -- Connects sock to target.addr, bound first to local_address (nil: any).
  local function connect_from(sock, target, local_address)
    if local_address ~= nil then
      pcall(sock.setsockopt, sock, tsocket.IPPROTO_IP, 24, 1) -- IP_BIND_ADDRESS_NO_PORT (Linux)
      local bok = pcall(sock.bind, sock, { local_address, 0 })
      if not bok then
        error(OSError(("local_address=%q is incompatible with remote address %s"):format(
          local_address, format_host_port(target.addr[1], target.addr[2]))), 0)
      end
    end
    sock:connect(target.addr)
  end

  --- open_tcp_stream(host, port, {happy_eyeballs_delay=0.25, local_address=})
  function trio.open_tcp_stream(host, port, opts)
    if type(host) ~= "string" then argerror(1, "open_tcp_stream", "host string expected, got " .. type(host)) end
    check_port(port, 2, "open_tcp_stream")
    opts = check_opts(opts, 3, "open_tcp_stream", { happy_eyeballs_delay = true, local_address = true })
    local delay = opts.happy_eyeballs_delay or 0.25
    if type(delay) ~= "number" or delay < 0 then
      argerror(3, "open_tcp_stream", "happy_eyeballs_delay must be a non-negative number")
    end
    local local_address = opts.local_address
    if local_address ~= nil and type(local_address) ~= "string" then
      argerror(3, "open_tcp_stream", "local_address must be a string")
    end
    check_trio("trio.open_tcp_stream")
    local targets = tsocket.getaddrinfo(host, port, { type = tsocket.SOCK_STREAM })
    if #targets == 0 then
      error(OSError("no results found for hostname lookup: " .. format_host_port(host, port)), 0)
    end
    reorder(targets)

    -- One address: it is connected in this task (no nursery, no attempt
    -- task, no timer), with the same outcome as the race below.
    if #targets == 1 then
      local sock = tsocket.socket(targets[1].family, targets[1].type, targets[1].proto)
      return stream_once_connected(sock, connect_from, sock, targets[1], local_address)
    end

    local oserrors, open_sockets, winner = {}, {}, nil
    local function attempt(target, failed, nursery)
      local ok, err = pcall(function()
        local sock = tsocket.socket(target.family, target.type, target.proto)
        open_sockets[sock] = true
        connect_from(sock, target, local_address)
        winner = sock
        nursery.cancel_scope:cancel()
      end)
      if not ok then
        if not OSError:is(err) then error(err, 0) end
        oserrors[#oserrors + 1] = err
        failed:set()
      end
    end

    local ok, err = pcall(trio.open_nursery, function(nursery)
      for _, target in ipairs(targets) do
        local failed = trio.Event()
        nursery:start_soon(attempt, target, failed, nursery)
        trio.move_on_after(delay, failed.wait, failed)
      end
    end)
    for sock in pairs(open_sockets) do
      if sock ~= winner then sock:close() end
    end
    if not ok then
      if winner then winner:close() end
      error(err, 0)
    end
    if winner == nil then
      if #oserrors == 1 then error(oserrors[1], 0) end
      local parts = {}
      for i, e in ipairs(oserrors) do parts[i] = e.message end
      error(OSError {
        message = ("all attempts to connect to %s failed: %s"):format(format_host_port(host, port),
          table.concat(parts, "; ")),
        errors = oserrors,
      }, 0)
    end
    return new_socket_stream(winner)
  end

  -- -------------------------------------------------------------------
  -- listening

  local function compute_backlog(backlog, n, fname)
    if backlog == nil or backlog == math.huge then return 0xffff end
    if math.type(backlog) ~= "integer" then
      argerror(n, fname, ("backlog must be an integer or nil, got %s"):format(
        type(backlog) == "number" and tostring(backlog) or type(backlog)))
    end
    if backlog < 0 then argerror(n, fname, ("backlog must not be negative, got %d"):format(backlog)) end
    return math.min(backlog, 0xffff)
  end

  --- open_tcp_listeners(port, {host=, backlog=, reuse_port=}) -> list of SocketListener
  function trio.open_tcp_listeners(port, opts)
    check_port(port, 1, "open_tcp_listeners")
    opts = check_opts(opts, 2, "open_tcp_listeners", { host = true, backlog = true, reuse_port = true })
    if opts.host ~= nil and type(opts.host) ~= "string" then
      argerror(2, "open_tcp_listeners", "host must be a string or nil")
    end
    local backlog = compute_backlog(opts.backlog, 2, "open_tcp_listeners")
    check_trio("trio.open_tcp_listeners")
    local addresses = tsocket.getaddrinfo(opts.host, port,
      { type = tsocket.SOCK_STREAM, flags = tsocket.AI_PASSIVE })
    local listeners, unsupported = {}, {}
    local ok, err = pcall(function()
      for _, a in ipairs(addresses) do
        local sok, sock = pcall(tsocket.socket, a.family, a.type, a.proto)
        if not sok then
          if OSError:is(sock) and sock.code == "EAFNOSUPPORT" then
            unsupported[#unsupported + 1] = sock
            goto continue
          end
          error(sock, 0)
        end
        do
          local bok, berr = pcall(function()
            sock:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR, 1)
            if opts.reuse_port then sock:setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT, 1) end
            if a.family == tsocket.AF_INET6 then
              sock:setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, 1)
            end
            sock:bind(a.addr)
            sock:listen(backlog)
          end)
          if not bok then
            sock:close()
            -- a host without IPv6 may still list :: for the wildcard
            if OSError:is(berr) and (berr.code == "EADDRNOTAVAIL" or berr.code == "EAFNOSUPPORT")
                and #addresses > 1 then
              unsupported[#unsupported + 1] = berr
              goto continue
            end
            error(berr, 0)
          end
          listeners[#listeners + 1] = trio.SocketListener(sock)
        end
        ::continue::
      end
    end)
    if not ok then
      for _, l in ipairs(listeners) do l:close() end
      error(err, 0)
    end
    if #listeners == 0 then
      error(OSError { message = "This system doesn't support any of the kinds of socket that that "
        .. "address could use", code = "EAFNOSUPPORT", errno = unsupported[1] and unsupported[1].errno,
        errors = unsupported }, 0)
    end
    return listeners
  end

  -- -------------------------------------------------------------------
  -- serving

  -- accept errors that mean the system is out of resources: wait, retry
  local CAPACITY = { EMFILE = true, ENFILE = true, ENOMEM = true, ENOBUFS = true }
  local SLEEP_TIME = 0.1
  -- connections taken per accept: the first with accept() (the schedule
  -- point), the others already waiting (asyncio takes up to its backlog)
  local ACCEPT_BURST = 100

  local function run_handler(stream, handler)
    local ok, err = pcall(handler, stream)
    pcall(stream.close, stream)
    if not ok then error(err, 0) end
  end

  local function start_handler(handler_nursery, stream, handler)
    local ok, err = pcall(handler_nursery.start_soon, handler_nursery, run_handler, stream, handler)
    if not ok then
      pcall(stream.close, stream)
      error(err, 0)
    end
  end

  -- After an accept, starts handlers for the connections already waiting
  -- (listeners with _accept_nowait), in the same step: a burst of clients
  -- is then served in step (their TLS handshakes run phase by phase for
  -- all of them, as asyncio's do), instead of one more each batch.
  local function start_waiting(listener, handler_nursery, handler)
    if listener._accept_nowait == nil then return end
    for _ = 2, ACCEPT_BURST do
      local stream = listener:_accept_nowait()
      if stream == nil then return end
      start_handler(handler_nursery, stream, handler)
    end
  end

  local function serve_one(listener, handler_nursery, handler)
    local _, err = pcall(function()
      while true do
        local aok, stream = pcall(listener.accept, listener)
        if aok then
          start_handler(handler_nursery, stream, handler)
          start_waiting(listener, handler_nursery, handler)
        elseif OSError:is(stream) and CAPACITY[stream.code] then
          io.stderr:write(("trio.serve_listeners: accept returned %s (%s); retrying in %s seconds\n")
            :format(stream.code, stream.message, SLEEP_TIME))
          trio.sleep(SLEEP_TIME)
        else
          error(stream, 0)
        end
      end
    end)
    listener:close()
    error(err, 0)
  end

  --- The options table and the task status among the arguments after the
  -- positional ones: the status may come alone (nursery:start appends it)
  -- or after the options, or as opts.task_status.
  local function split_extra(fname, n, known, ...)
    local opts, status = nil, nil
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if trio._is_task_status(v) then
        status = v
      elseif type(v) == "table" and getmetatable(v) == nil and opts == nil then
        opts = v
      elseif v ~= nil then
        argerror(n + i - 1, fname, "options table or task status expected, got " .. type(v))
      end
    end
    opts = check_opts(opts, n, fname, known)
    status = status or opts.task_status or trio.TASK_STATUS_IGNORED
    return opts, status
  end

  trio._split_serve_args = split_extra -- for serve_ssl_over_tcp (lua/trio/ssl.lua)

  local SERVE_OPTS = { handler_nursery = true, task_status = true }

  local function serve(handler, listeners, opts, status)
    trio.open_nursery(function(nursery)
      local hn = opts.handler_nursery or nursery
      for _, l in ipairs(listeners) do nursery:start_soon(serve_one, l, hn, handler) end
      status:started(listeners)
    end)
  end

  --- serve_listeners(handler, listeners, {handler_nursery=, task_status=})
  function trio.serve_listeners(handler, listeners, ...)
    if not errors.is_callable(handler) then argerror(1, "serve_listeners", "function expected") end
    if type(listeners) ~= "table" or #listeners == 0 then
      argerror(2, "serve_listeners", "a non-empty list of listeners expected")
    end
    local opts, status = split_extra("serve_listeners", 3, SERVE_OPTS, ...)
    check_trio("trio.serve_listeners")
    return serve(handler, listeners, opts, status)
  end

  --- serve_tcp(handler, port, {host=, backlog=, reuse_port=, handler_nursery=, task_status=})
  function trio.serve_tcp(handler, port, ...)
    if not errors.is_callable(handler) then argerror(1, "serve_tcp", "function expected") end
    check_port(port, 2, "serve_tcp")
    local opts, status = split_extra("serve_tcp", 3, { host = true, backlog = true, reuse_port = true,
      handler_nursery = true, task_status = true }, ...)
    check_trio("trio.serve_tcp")
    local listeners = trio.open_tcp_listeners(port,
      { host = opts.host, backlog = opts.backlog, reuse_port = opts.reuse_port })
    return serve(handler, listeners, opts, status)
  end

  -- -------------------------------------------------------------------
  -- Unix-domain sockets

  local unix_path = errors.unix_path

  --- open_unix_socket(path) -> SocketStream (path: a string or trio.Path)
  function trio.open_unix_socket(path)
    path = unix_path(path, 1, "open_unix_socket")
    check_trio("trio.open_unix_socket")
    local sock = tsocket.socket(tsocket.AF_UNIX, tsocket.SOCK_STREAM)
    return stream_once_connected(sock, sock.connect, sock, path)
  end

  --- open_unix_listener(path, {backlog=}) -> SocketListener (the path is
  -- removed when the listener closes)
  function trio.open_unix_listener(path, opts)
    path = unix_path(path, 1, "open_unix_listener")
    opts = check_opts(opts, 2, "open_unix_listener", { backlog = true })
    local backlog = compute_backlog(opts.backlog, 2, "open_unix_listener")
    local sock = tsocket.socket(tsocket.AF_UNIX, tsocket.SOCK_STREAM)
    local ok, err = pcall(function()
      sock:bind(path)
      sock:listen(backlog)
    end)
    if not ok then
      sock:close()
      error(err, 0)
    end
    local l = trio.SocketListener(sock)
    l._unlink = path
    return l
  end

  --- serve_unix(handler, path, {backlog=, handler_nursery=, task_status=})
  function trio.serve_unix(handler, path, ...)
    if not errors.is_callable(handler) then argerror(1, "serve_unix", "function expected") end
    path = unix_path(path, 2, "serve_unix")
    local opts, status = split_extra("serve_unix", 3, { backlog = true, handler_nursery = true,
      task_status = true }, ...)
    check_trio("trio.serve_unix")
    local listener = trio.open_unix_listener(path, { backlog = opts.backlog })
    return serve(handler, { listener }, opts, status)
  end

end
