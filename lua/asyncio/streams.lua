--- asyncio streams: StreamReader, StreamWriter and the protocol between
-- them and a transport (StreamReaderProtocol), open_connection,
-- start_server and the Unix variants.  Loaded by lua/asyncio.lua:
-- install(asyncio, Loop).
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local ssl = require "trio_asyncio.ssl"

local DEFAULT_LIMIT = 65536

local argerror = errors.argerror

return function(asyncio)
  local IncompleteReadError, LimitOverrunError = asyncio.IncompleteReadError, asyncio.LimitOverrunError
  local ValueError = asyncio.ValueError
  local check_aio = core.check_aio

  local function incomplete(partial, expected)
    return IncompleteReadError {
      message = ("%d bytes read on a total of %s expected bytes"):format(#partial,
        expected == nil and "undefined" or tostring(expected)),
      partial = partial, expected = expected,
    }
  end

  -- -------------------------------------------------------------------
  -- StreamReader: a C object (csrc/asyncio/streamreader.c) with feed_data,
  -- feed_eof, at_eof, exception, set_exception, set_transport, read,
  -- readexactly, readuntil; readline, lines and the helpers it raises its
  -- errors with are here (handed over with stream_reader_setup below).

  local StreamReader = core.metatable("trio_asyncio.StreamReader").__index

  --- asyncio.StreamReader([limit=65536 [, loop]])
  function asyncio.StreamReader(limit, loop)
    limit = limit or DEFAULT_LIMIT
    if math.type(limit) ~= "integer" or limit <= 0 then argerror(1, "StreamReader", "Limit cannot be <= 0") end
    return core.stream_reader_new(limit, loop or asyncio.get_running_loop())
  end

  --- reader:readline(): a line with its "\n" (the last one may lack it;
  -- "" at EOF)
  function StreamReader:readline()
    check_aio("StreamReader:readline")
    local ok, line = pcall(self.readuntil, self, "\n")
    if ok then return line end
    if IncompleteReadError:is(line) then return line.partial end
    if LimitOverrunError:is(line) then
      self:_discard_overrun(line.consumed, "\n")
      error(ValueError(line.message), 0)
    end
    error(line, 0)
  end

  --- for line in reader:lines() do ... end: each line without its "\n"
  -- (as Lua's file:lines), until EOF; asyncio-flavored
  function StreamReader:lines()
    return function()
      local line = self:readline()
      if line == "" then return nil end
      if line:sub(-1) == "\n" then line = line:sub(1, -2) end
      return line
    end
  end

  -- -------------------------------------------------------------------
  -- the protocol between a transport and the reader and writer

  -- A protocol holds only the fields every connection sets: _paused and
  -- _connection_lost default to the class's false, _drain_waiters is made
  -- by the first drain that waits.  (A client's protocol then fits in a
  -- table of four fields, a server's in eight: 400 bytes less per
  -- connection than with all of them set.)
  local StreamReaderProtocol = { __name = "asyncio.StreamReaderProtocol", _paused = false,
    _connection_lost = false }
  StreamReaderProtocol.__index = StreamReaderProtocol
  local write_blocked = core.stream_reader_write_blocked

  --- asyncio.StreamReaderProtocol(reader [, client_connected_cb [, loop]])
  function asyncio.StreamReaderProtocol(reader, client_connected_cb, loop)
    loop = loop or asyncio.get_running_loop()
    return setmetatable({ _reader = reader, _cb = client_connected_cb, _loop = loop, _closed = loop:create_future() },
      StreamReaderProtocol)
  end

  function StreamReaderProtocol:connection_made(transport)
    local reader = self._reader
    reader:set_transport(transport)
    self._transport = transport
    if self._cb ~= nil then
      local writer = asyncio.StreamWriter(transport, self, reader, self._loop)
      local loop = self._loop
      self._task = loop:create_task(self._cb, reader, writer)
      self._task:add_done_callback(function(task)
        if task:cancelled() then
          transport:close()
          return
        end
        local exc = task:exception()
        if exc ~= nil then
          loop:call_exception_handler { message = "Unhandled exception in client_connected_cb",
            exception = exc, transport = transport }
          transport:close()
        end
      end)
    end
  end

  function StreamReaderProtocol:connection_lost(exc)
    if exc == nil then self._reader:feed_eof() else self._reader:set_exception(exc) end
    if not self._closed:done() then
      if exc == nil then self._closed:set_result(true) else self._closed:set_exception(exc) end
      self._closed:exception() -- retrieved: nobody has to wait for it
    end
    self._connection_lost = true
    self._paused = nil -- (the class's false)
    write_blocked(self._reader, true)
    self:_wake_drainers(exc)
    self._transport = nil
  end

  function StreamReaderProtocol:data_received(data) self._reader:feed_data(data) end

  function StreamReaderProtocol:eof_received()
    self._reader:feed_eof()
    return true
  end

  -- The reader learns whether writes are blocked (the C StreamWriter.drain
  -- looks there, csrc/asyncio/streamreader.c).
  function StreamReaderProtocol:pause_writing()
    self._paused = true
    write_blocked(self._reader, true)
  end

  function StreamReaderProtocol:resume_writing()
    self._paused = false
    write_blocked(self._reader, self._connection_lost)
    self:_wake_drainers(nil)
  end

  function StreamReaderProtocol:_wake_drainers(exc)
    local ws = self._drain_waiters
    if ws == nil then return end
    self._drain_waiters = nil
    for _, w in ipairs(ws) do
      if not w:done() then
        if exc == nil then w:set_result(true) else w:set_exception(exc) end
      end
    end
  end

  local function drain_helper(self)
    if self._connection_lost then
      error(errors.ConnectionResetError { message = "Connection lost", code = "ECONNRESET", errno = 104 }, 0)
    end
    if not self._paused then return end
    local w = self._loop:create_future()
    local ws = self._drain_waiters
    if ws == nil then
      ws = {}
      self._drain_waiters = ws
    end
    ws[#ws + 1] = w
    w:await()
  end
  StreamReaderProtocol._drain_helper = drain_helper

  -- -------------------------------------------------------------------
  -- StreamWriter

  local StreamWriter = { __name = "asyncio.StreamWriter" }
  StreamWriter.__index = StreamWriter

  --- asyncio.StreamWriter(transport, protocol, reader, loop)
  function asyncio.StreamWriter(transport, protocol, reader, loop)
    local writer = setmetatable({ transport = transport, _protocol = protocol, _reader = reader,
      _loop = loop or asyncio.get_running_loop(), write = StreamWriter.write, drain = StreamWriter.drain }, StreamWriter)
    -- over a plain Transport and a StreamReaderProtocol of this reader, the
    -- reader keeps what the C drain needs (csrc/asyncio/streamreader.c)
    core.stream_writer_bind(writer, transport, protocol, reader)
    return writer
  end

  --- writer:write(data): self.transport:write(data) (which checks data),
  -- in C (csrc/asyncio/transport.c)
  StreamWriter.write = core.stream_writer_write

  function StreamWriter:writelines(list)
    if type(list) ~= "table" then argerror(1, "writelines", "list of strings expected, got " .. type(list)) end
    self.transport:writelines(list)
  end

  function StreamWriter:write_eof() return self.transport:write_eof() end
  function StreamWriter:can_write_eof() return self.transport:can_write_eof() end
  function StreamWriter:close() return self.transport:close() end
  StreamWriter.__close = StreamWriter.close
  function StreamWriter:is_closing() return self.transport:is_closing() end

  --- writer:wait_closed() (async): returns once the connection is closed
  -- (raises the error it was lost with, if any)
  function StreamWriter:wait_closed()
    check_aio("StreamWriter:wait_closed")
    self._protocol._closed:await()
  end

  function StreamWriter:get_extra_info(name, default)
    return self.transport:get_extra_info(name, default)
  end

  local transport_is_closing = asyncio._Transport.is_closing

  --- writer:drain() (async): waits while the transport's buffer is above
  -- its high water mark.  The C StreamWriter.drain (returned by
  -- stream_reader_setup below, csrc/asyncio/streamreader.c) returns at once
  -- when there is nothing to wait for or raise, for a writer bound to its
  -- reader (see asyncio.StreamWriter); it calls this for the rest.  A
  -- plain Transport and a StreamReaderProtocol are looked at directly;
  -- any other goes through its methods.
  local function drain(self)
    check_aio("StreamWriter:drain")
    local reader = self._reader
    if reader ~= nil then
      local exc = reader:exception()
      if exc ~= nil then error(exc, 0) end
    end
    local transport, protocol = self.transport, self._protocol
    local closing
    if transport.is_closing == transport_is_closing then closing = transport._closing else closing = transport:is_closing() end
    if closing then asyncio.sleep(0) end
    if protocol._drain_helper ~= drain_helper or protocol._paused or protocol._connection_lost then
      protocol:_drain_helper()
    end
  end
  StreamWriter.drain = core.stream_reader_setup {
    incomplete,
    function(message, consumed) return LimitOverrunError { message = message, consumed = consumed } end,
    function(message) return ValueError(message) end,
    function(self, limit) -- read(-1): blocks of the limit until EOF
      local blocks = {}
      while true do
        local block = self:read(limit)
        if block == "" then break end
        blocks[#blocks + 1] = block
      end
      return table.concat(blocks)
    end,
    drain, asyncio._Transport, StreamReaderProtocol,
  }

  core.stream_transport_setup(StreamReaderProtocol.data_received)

  --- writer:start_tls(ssl_context, {server_hostname=, ssl_handshake_timeout=})
  -- (async): upgrades the connection to TLS (a server's writer takes the
  -- server side); reader and writer then go through the TLS transport
  function StreamWriter:start_tls(ssl_context, opts)
    if not ssl.is_context(ssl_context) then
      argerror(1, "start_tls", "trio_asyncio.ssl.SSLContext expected, got " .. type(ssl_context))
    end
    opts = errors.check_opts(opts, 2, "start_tls", { server_hostname = true, ssl_handshake_timeout = true })
    check_aio("StreamWriter:start_tls")
    self:drain()
    local protocol = self._protocol
    local transport = self._loop:start_tls(self.transport, protocol, ssl_context, {
      server_side = protocol._cb ~= nil, server_hostname = opts.server_hostname,
      ssl_handshake_timeout = opts.ssl_handshake_timeout })
    self.transport = transport
    protocol._transport = transport
    if self._reader then self._reader:_replace_transport(transport) end
  end

  function StreamWriter:__tostring()
    return ("asyncio.StreamWriter (%s)"):format(tostring(self.transport))
  end

  -- -------------------------------------------------------------------
  -- open_connection, start_server

  -- The openers check their arguments under their own names, with the
  -- checks of the loop methods they call (lua/asyncio/net.lua), and take
  -- limit= out of the options.
  local function split_limit(opts, n, fname)
    if opts ~= nil and type(opts) ~= "table" then argerror(n, fname, "options table expected, got " .. type(opts)) end
    local copy, limit = {}, DEFAULT_LIMIT
    for k, v in pairs(opts or {}) do
      if k == "limit" then limit = v else copy[k] = v end
    end
    if math.type(limit) ~= "integer" or limit <= 0 then argerror(n, fname, "limit must be a positive integer") end
    return copy, limit
  end

  -- A protocol factory for one connection's reader and protocol, made on
  -- the first call (the client openers' connection): returns the factory
  -- and a function giving the reader and protocol it made.
  local function client_factory(limit, loop)
    local reader, protocol
    return function()
      reader = asyncio.StreamReader(limit, loop)
      protocol = asyncio.StreamReaderProtocol(reader, nil, loop)
      return protocol
    end, function() return reader, protocol end
  end

  --- asyncio.open_connection(host, port, {limit=65536, ...}) -> reader, writer
  -- (the options of loop:create_connection; sock= instead of host and port)
  function asyncio.open_connection(host, port, opts)
    local o, limit = split_limit(opts, 3, "open_connection")
    o = asyncio._check_connection(host, port, o, "open_connection", 1)
    check_aio("asyncio.open_connection")
    local loop = asyncio.get_running_loop()
    local factory, made = client_factory(limit, loop)
    local transport = asyncio._connect(loop, factory, host, port, o, "open_connection")
    local reader, protocol = made()
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
  end

  --- asyncio.open_unix_connection(path, {limit=, ...}) -> reader, writer
  function asyncio.open_unix_connection(path, opts)
    local o, limit = split_limit(opts, 2, "open_unix_connection")
    path, o = asyncio._check_unix_connection(path, o, "open_unix_connection", 1)
    check_aio("asyncio.open_unix_connection")
    local loop = asyncio.get_running_loop()
    local factory, made = client_factory(limit, loop)
    local transport = asyncio._unix_connect(loop, factory, path, o, "open_unix_connection")
    local reader, protocol = made()
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
  end

  local function server_factory(cb, limit, loop)
    return function()
      local reader = asyncio.StreamReader(limit, loop)
      return asyncio.StreamReaderProtocol(reader, cb, loop)
    end
  end

  --- asyncio.start_server(client_connected_cb, host, port, {limit=, backlog=,
  -- reuse_port=, ssl=, start_serving=true}) -> Server; the callback runs as
  -- a Task per connection with (reader, writer)
  function asyncio.start_server(client_connected_cb, host, port, opts)
    if not errors.is_callable(client_connected_cb) then argerror(1, "start_server", "function expected") end
    local o, limit = split_limit(opts, 4, "start_server")
    host, port, o = asyncio._check_server(host, port, o, "start_server")
    check_aio("asyncio.start_server")
    local loop = asyncio.get_running_loop()
    return asyncio._serve(loop, server_factory(client_connected_cb, limit, loop), host, port, o)
  end

  --- asyncio.start_unix_server(client_connected_cb, path, {limit=, ...}) -> Server
  function asyncio.start_unix_server(client_connected_cb, path, opts)
    if not errors.is_callable(client_connected_cb) then argerror(1, "start_unix_server", "function expected") end
    local o, limit = split_limit(opts, 3, "start_unix_server")
    path, o = asyncio._check_unix_server(path, o, "start_unix_server")
    check_aio("asyncio.start_unix_server")
    local loop = asyncio.get_running_loop()
    return asyncio._unix_serve(loop, server_factory(client_connected_cb, limit, loop), path, o)
  end
end
