--- Child processes, asyncio-flavored: asyncio.create_subprocess_exec /
-- create_subprocess_shell (a Process with stream-like pipes) and
-- loop:subprocess_exec / subprocess_shell (a SubprocessTransport calling a
-- SubprocessProtocol), on csrc/io/process.c and csrc/io/procpipe.c.  The
-- pipe readers and writers here are the processes' own (self-contained);
-- see docs/ARCHITECTURE.md for how they could share the socket streams'.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local tprocess = require "trio.process"

local argerror = errors.argerror

return function(asyncio)
  local LoopMT = core.metatable("trio_asyncio.Loop")
  local Loop = LoopMT.__index
  local class_of, bad_self = errors.class_of, errors.bad_self

  local subprocess = { PIPE = -1, STDOUT = -2, DEVNULL = -3 }
  asyncio.subprocess = subprocess

  local function running_loop() return asyncio.get_running_loop() end

  local function await_req(req)
    return core.io_future(core.running_loop() or running_loop(), req):await()
  end

  -- -------------------------------------------------------------------
  -- the pipes of a Process: a buffered reader and a writer

  local Reader = { __name = "asyncio.PipeStreamReader" }
  Reader.__index = Reader

  local function new_reader(pipe, limit)
    return setmetatable({ _pipe = pipe, _buf = "", _eof = false, _limit = limit or 65536 }, Reader)
  end

  -- Waits for the next chunk; false at EOF.  The receive is shielded: a
  -- cancelled read leaves it in self._recv, and the next read takes its
  -- data (nothing is lost, and the pipe is not left busy).
  local function fill(self)
    if self._eof then return false end
    local recv = self._recv
    if recv == nil then
      recv = core.io_future(core.running_loop() or running_loop(), core.pipe_recv(self._pipe, 65536))
      self._recv = recv
    end
    local ok, err = pcall(asyncio.shield, recv)
    if not ok and asyncio.CancelledError:is(err) and not recv:cancelled() then error(err, 0) end
    self._recv = nil
    local data = recv:result()
    if data == "" then
      self._eof = true
      core.pipe_close(self._pipe) -- as asyncio's read pipe transport at EOF
      return false
    end
    self._buf = self._buf .. data
    return true
  end

  local function take(self, n)
    local s = self._buf:sub(1, n)
    self._buf = self._buf:sub(n + 1)
    return s
  end

  --- reader:read([n]) -> up to n bytes (all to EOF when n is nil or -1);
  -- "" at EOF.
  function Reader:read(n)
    core.check_aio("asyncio.PipeStreamReader:read")
    if n == nil or n < 0 then
      while fill(self) do end
      return take(self, #self._buf)
    end
    if n == 0 then return "" end
    if #self._buf == 0 then fill(self) end
    return take(self, n)
  end

  --- reader:readexactly(n) -> n bytes, or asyncio.IncompleteReadError
  -- (partial, expected) at EOF.
  function Reader:readexactly(n)
    core.check_aio("asyncio.PipeStreamReader:readexactly")
    while #self._buf < n do
      if not fill(self) then
        local partial = take(self, #self._buf)
        error(asyncio.IncompleteReadError {
          message = ("%d bytes read on a total of %d expected bytes"):format(#partial, n),
          partial = partial, expected = n }, 2)
      end
    end
    return take(self, n)
  end

  --- reader:readuntil([separator="\n"]) -> the data up to and including
  -- separator; IncompleteReadError at EOF, LimitOverrunError past limit.
  function Reader:readuntil(sep)
    core.check_aio("asyncio.PipeStreamReader:readuntil")
    sep = sep or "\n"
    local from = 1
    while true do
      local i = self._buf:find(sep, from, true)
      if i then
        if i - 1 > self._limit then
          error(asyncio.LimitOverrunError { message = "Separator is found, but chunk is longer than limit",
            consumed = i - 1 }, 2)
        end
        return take(self, i + #sep - 1)
      end
      if #self._buf > self._limit then
        error(asyncio.LimitOverrunError { message = "Separator is not found, and chunk exceed the limit",
          consumed = #self._buf }, 2)
      end
      from = math.max(1, #self._buf - #sep + 2)
      if not fill(self) then
        local partial = take(self, #self._buf)
        error(asyncio.IncompleteReadError {
          message = ("%d bytes read on a total of undefined expected bytes"):format(#partial),
          partial = partial }, 2)
      end
    end
  end

  --- reader:readline() -> the next line with its "\n" (the rest at EOF,
  -- "" once at EOF).
  function Reader:readline()
    core.check_aio("asyncio.PipeStreamReader:readline")
    local ok, r = pcall(self.readuntil, self, "\n")
    if ok then return r end
    if asyncio.IncompleteReadError:is(r) then return r.partial end
    error(r, 0)
  end

  --- reader:at_eof() -> true once EOF was met and the buffer is empty.
  function Reader:at_eof() return self._eof and #self._buf == 0 end

  --- for line in reader:lines() do: lines without their "\n".
  function Reader:lines()
    return function()
      local line = self:readline()
      if line == "" then return nil end
      return (line:gsub("\n$", ""))
    end
  end

  local Writer = { __name = "asyncio.PipeStreamWriter" }
  Writer.__index = Writer

  local function new_writer(pipe)
    return setmetatable({ _pipe = pipe, _last = nil, _writing = {}, _error = nil, _closing = false }, Writer)
  end

  --- writer:write(data): queues data (never waits); drain() waits.
  function Writer:write(data)
    if type(data) ~= "string" then argerror(1, "write", "string expected, got " .. type(data)) end
    if self._closing then return end -- as asyncio's transports: ignored
    if self._error then return end
    local fut = core.io_future(core.running_loop() or running_loop(), core.pipe_send(self._pipe, data))
    self._last = fut
    self._writing[fut] = true -- held till done: a Future nobody holds abandons its request
    fut:add_done_callback(function(f)
      self._writing[f] = nil
      if f:cancelled() then return end
      local e = f:exception()
      if e ~= nil and self._error == nil then
        -- as asyncio's pipe transport on a write error: it closes
        self._error = e
        self._closing = true
        core.pipe_close(self._pipe)
      end
    end)
  end

  function Writer:writelines(list)
    for _, data in ipairs(list) do self:write(data) end
  end

  --- writer:drain(): waits until what was written has gone to the pipe;
  -- raises the error of a failed write (BrokenPipeError...).
  function Writer:drain()
    core.check_aio("asyncio.PipeStreamWriter:drain")
    local last = self._last
    if last ~= nil and not last:done() then
      -- shielded: a cancelled drain leaves the write going; its error (if
      -- any) is self._error, set by its done callback, which runs first
      local ok, err = pcall(asyncio.shield, last)
      if not ok and asyncio.CancelledError:is(err) and not last:cancelled() then error(err, 0) end
    end
    if self._error then error(self._error, 2) end
    asyncio.sleep(0)
  end

  function Writer:can_write_eof() return true end

  local function close_writer(self)
    if self._closing then return end
    self._closing = true
    local req = core.pipe_close(self._pipe, true)
    if req ~= nil then self._closed = core.io_future(core.running_loop() or running_loop(), req) end
  end

  --- writer:write_eof(): the child reads EOF once the queued data is out.
  function Writer:write_eof() close_writer(self) end
  function Writer:close() close_writer(self) end
  function Writer:is_closing() return self._closing end

  function Writer:wait_closed()
    core.check_aio("asyncio.PipeStreamWriter:wait_closed")
    if self._closed and not self._closed:done() then self._closed:await() end
  end

  function Writer:get_extra_info(name, default)
    if name == "pipe" then return core.pipe_fileno(self._pipe) or default end
    return default
  end

  Writer.__index = function(self, k)
    if k == "transport" then return self end
    return Writer[k]
  end

  -- -------------------------------------------------------------------
  -- options

  local function stdio_spec(v, key, fname, default)
    if v == nil then v = default end
    if v == false or v == nil then return "inherit" end
    if v == subprocess.PIPE then return "pipe" end
    if v == subprocess.DEVNULL then return "devnull" end
    if v == subprocess.STDOUT and key == "stderr" then return "stdout" end
    if math.type(v) == "integer" and v >= 0 then return v end
    error(("bad argument to '%s' (%s must be asyncio.subprocess.PIPE, DEVNULL%s, an fd or nil, got %s)")
      :format(fname, key, key == "stderr" and ", STDOUT" or "", tostring(v)), 4)
  end

  local INVALID = {
    universal_newlines = "universal_newlines must be false", text = "text must be false",
    bufsize = "bufsize must be 0", encoding = "encoding must be nil", errors = "errors must be nil",
  }
  local ALLOWED = { stdin = true, stdout = true, stderr = true, cwd = true, env = true,
    start_new_session = true, limit = true }

  local function check_opts(opts, fname, shell)
    for k, v in pairs(opts) do
      if k == "shell" then
        error(("bad argument to '%s' (shell must be %s; use subprocess_%s)"):format(
          fname, shell and "true (it is)" or "false", shell and "shell" or "exec"), 4)
      elseif INVALID[k] and not (k == "bufsize" and v == 0) and v ~= false and v ~= nil then
        error(("bad argument to '%s' (%s)"):format(fname, INVALID[k]), 4)
      elseif not ALLOWED[k] and not INVALID[k] then
        error(("bad argument to '%s' (unknown option '%s')"):format(fname, tostring(k)), 4)
      elseif k == "limit" and (math.type(v) ~= "integer" or v <= 0) then
        error(("bad argument to '%s' (limit must be a positive integer, got %s)"):format(fname, tostring(v)), 4)
      end
    end
  end

  local NO_OPTS = {} -- no options given (never written)

  --- Splits (program, arg1, ..., [opts]) into argv and opts.
  local function exec_args(fname, ...)
    local n = select("#", ...)
    local argv = { ... }
    local opts = NO_OPTS
    if n > 1 and type(argv[n]) == "table" then
      opts = argv[n]
      argv[n] = nil
      n = n - 1
    end
    if type(argv[1]) ~= "string" then
      argerror(1, fname, "program name expected, got " .. type(argv[1]))
    end
    for i = 2, n do
      local a = argv[i]
      if type(a) ~= "string" then
        if type(a) ~= "number" then
          error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, fname, type(a)), 3)
        end
        argv[i] = tostring(a)
      end
    end
    return argv, opts
  end

  local function shell_args(fname, cmd, opts)
    if type(cmd) ~= "string" then
      error(("bad argument #1 to '%s' (command string expected, got %s)"):format(fname, type(cmd)), 3)
    end
    if opts ~= nil and type(opts) ~= "table" then argerror(2, fname, "table expected, got " .. type(opts)) end
    return { "/bin/sh", "-c", cmd }, opts or {}
  end

  local function spawn_opts(opts, fname, default)
    local sopts = tprocess.spawn_opts(opts, fname, 3)
    sopts.stdin = stdio_spec(opts.stdin, "stdin", fname, default)
    sopts.stdout = stdio_spec(opts.stdout, "stdout", fname, default)
    sopts.stderr = stdio_spec(opts.stderr, "stderr", fname, default)
    return sopts
  end

  -- -------------------------------------------------------------------
  -- Process (create_subprocess_*)

  -- returncode, pid, send_signal, terminate, kill: as trio's Process
  local Process = tprocess.process_class("asyncio.Process")
  function Process.__tostring(self)
    return ("asyncio.Process %d (%s)"):format(self.pid,
      self.returncode == nil and "running" or ("returncode " .. self.returncode))
  end

  --- proc:wait() -> the returncode, once the child has exited.
  function Process.wait(self)
    if class_of(self) ~= Process then bad_self(self, Process, "wait") end
    core.check_aio("asyncio.Process:wait")
    return await_req(core.proc_wait(self._h))
  end

  --- proc:communicate([input]) -> stdout, stderr: feeds input to stdin
  -- and closes it, reads stdout and stderr to EOF, waits for the exit.
  function Process.communicate(self, input)
    if class_of(self) ~= Process then bad_self(self, Process, "communicate") end
    core.check_aio("asyncio.Process:communicate")
    if input ~= nil and type(input) ~= "string" then
      argerror(1, "communicate", "string or nil expected, got " .. type(input))
    end
    local function feed()
      if self.stdin == nil then return end
      if input ~= nil and #input > 0 then
        self.stdin:write(input)
        local ok, e = pcall(self.stdin.drain, self.stdin)
        if not ok and not (errors.BrokenPipeError:is(e) or errors.ConnectionResetError:is(e)) then
          error(e, 0)
        end
      end
      self.stdin:close()
    end
    local function read(r) if r then return r:read() end end
    local res = asyncio.gather(feed, function() return read(self.stdout) end,
      function() return read(self.stderr) end)
    self:wait()
    return res[2], res[3]
  end

  local function new_process(h, i, o, e, limit)
    return setmetatable({ _h = h,
      stdin = i and new_writer(i), stdout = o and new_reader(o, limit), stderr = e and new_reader(e, limit),
    }, Process)
  end

  --- asyncio.create_subprocess_shell(cmd [, opts]) -> Process
  function asyncio.create_subprocess_shell(cmd, opts)
    local argv
    argv, opts = shell_args("create_subprocess_shell", cmd, opts)
    check_opts(opts, "create_subprocess_shell", true)
    local sopts = spawn_opts(opts, "create_subprocess_shell", nil)
    core.check_aio("asyncio.create_subprocess_shell")
    local h, i, o, e = core.proc_spawn(argv[1], argv, sopts)
    return new_process(h, i, o, e, opts.limit)
  end

  --- asyncio.create_subprocess_exec(program, arg1, ... [, opts]) -> Process
  function asyncio.create_subprocess_exec(...)
    local argv, opts = exec_args("create_subprocess_exec", ...)
    check_opts(opts, "create_subprocess_exec", false)
    local sopts = spawn_opts(opts, "create_subprocess_exec", nil)
    core.check_aio("asyncio.create_subprocess_exec")
    local h, i, o, e = core.proc_spawn(argv[1], argv, sopts)
    return new_process(h, i, o, e, opts.limit)
  end

  -- -------------------------------------------------------------------
  -- loop:subprocess_exec / subprocess_shell: transport and protocol

  local Transport = { __name = "asyncio.SubprocessTransport" }
  Transport.__index = Transport
  local PipeTransport = { __name = "asyncio.PipeTransport" }
  PipeTransport.__index = PipeTransport

  local function call(proto, method, ...)
    local f = proto[method]
    if f ~= nil then f(proto, ...) end
  end

  -- io_waits: a Future of an I/O request (core.io_future) that nobody holds
  -- is collected with its request, which abandons it (ioreq_future.c), so
  -- the Futures whose callbacks carry the protocol on (the exit, a pipe's
  -- close, the writes) are held by the transport until they are done; a
  -- collection in between lost process_exited and connection_lost.

  -- The connection ends once the child has exited and every pipe is lost.
  local function try_finish(t)
    if t._finished or not t._exited or next(t._live) ~= nil then return end
    t._finished = true
    t._loop:call_soon(call, t._protocol, "connection_lost", nil)
  end

  local function pipe_lost(t, fd, exc)
    if not t._live[fd] then return end
    t._live[fd] = nil
    call(t._protocol, "pipe_connection_lost", fd, exc)
    try_finish(t)
  end

  -- a read pipe: read, hand the data to the protocol, read again
  local function arm_read(t, fd, pt)
    if pt._closing then return end
    local fut = core.io_future(t._loop, core.pipe_recv(pt._pipe, 65536))
    pt._fut = fut
    fut:add_done_callback(function(f)
      if f:cancelled() then return end
      local e = f:exception()
      if e ~= nil then
        pipe_lost(t, fd, not pt._closing and e or nil)
        return
      end
      local data = f:result()
      if data == "" then
        core.pipe_close(pt._pipe)
        pipe_lost(t, fd, nil)
        return
      end
      call(t._protocol, "pipe_data_received", fd, data)
      arm_read(t, fd, pt)
    end)
  end

  --- pipe:write(data) (fd 0 only): queued, never waits.
  function PipeTransport:write(data)
    if type(data) ~= "string" then argerror(1, "write", "string expected, got " .. type(data)) end
    if self._fd ~= 0 then error(errors.RuntimeError("write: not the stdin pipe"), 2) end
    if self._closing then return end
    local fut = core.io_future(self._t._loop, core.pipe_send(self._pipe, data))
    self._writing[fut] = true -- held till done (see io_waits below)
    fut:add_done_callback(function(f)
      self._writing[f] = nil
      if not f:cancelled() and f:exception() ~= nil and not self._closing then
        self._closing = true
        core.pipe_close(self._pipe)
        pipe_lost(self._t, 0, f:exception())
      end
    end)
  end

  --- pipe:close(): closes it (stdin: after the queued writes); the
  -- protocol's pipe_connection_lost(fd, nil) follows.
  function PipeTransport:close()
    if self._closing then return end
    self._closing = true
    local t, fd = self._t, self._fd
    local req = core.pipe_close(self._pipe, fd == 0)
    if req == nil then
      pipe_lost(t, fd, nil)
      return
    end
    self._close_wait = core.io_future(t._loop, req) -- held till done (see io_waits below)
    self._close_wait:add_done_callback(function() pipe_lost(t, fd, nil) end)
  end

  PipeTransport.write_eof = function(self) self:close() end
  function PipeTransport:can_write_eof() return self._fd == 0 end
  function PipeTransport:is_closing() return self._closing end
  function PipeTransport:get_extra_info(name, default)
    if name == "pipe" then return core.pipe_fileno(self._pipe) or default end
    return default
  end

  function Transport:get_pid() return core.proc_pid(self._h) end
  function Transport:get_returncode() return core.proc_poll(self._h) end
  function Transport:get_pipe_transport(fd) return self._pipes[fd] end
  function Transport:get_protocol() return self._protocol end
  function Transport:set_protocol(p) self._protocol = p end
  function Transport:is_closing() return self._closed end
  function Transport:send_signal(sig)
    core.proc_kill(self._h, tprocess.signal_number(sig, "send_signal"))
  end
  function Transport:terminate() core.proc_kill(self._h, 15) end
  function Transport:kill() core.proc_kill(self._h, 9) end

  --- transport:close(): closes the pipes and kills the child if it runs.
  function Transport:close()
    if self._closed then return end
    self._closed = true
    -- killed first: asyncio closes the pipes' fds only in a later
    -- callback, so a child reading stdin never sees EOF before the kill
    if core.proc_poll(self._h) == nil then core.proc_kill(self._h, 9) end
    for fd = 0, 2 do
      local pt = self._pipes[fd]
      if pt then pt:close() end
    end
  end

  function Transport:get_extra_info(_, default) return default end

  function Transport:__tostring()
    local rc = core.proc_poll(self._h)
    return ("asyncio.SubprocessTransport pid=%d %s"):format(core.proc_pid(self._h),
      rc == nil and "running" or ("returncode=" .. rc))
  end

  local function subprocess_transport(loop, factory, argv, opts, fname)
    if not errors.is_callable(factory) then
      argerror(1, fname, "protocol factory expected, got " .. type(factory))
    end
    check_opts(opts, fname, fname == "subprocess_shell")
    local sopts = spawn_opts(opts, fname, subprocess.PIPE)
    core.check_aio("asyncio.Loop:" .. fname)
    local protocol = factory()
    local h, i, o, e = core.proc_spawn(argv[1], argv, sopts)
    local t = setmetatable({ _loop = loop, _h = h, _protocol = protocol, _pipes = {}, _live = {},
      _exited = false, _finished = false, _closed = false }, Transport)
    for fd, pipe in pairs { [0] = i, [1] = o, [2] = e } do
      t._pipes[fd] = setmetatable({ _t = t, _fd = fd, _pipe = pipe, _closing = false, _writing = {} },
        PipeTransport)
      t._live[fd] = true
    end
    local connected = loop:create_future()
    loop:call_soon(function()
      call(protocol, "connection_made", t)
      for fd = 1, 2 do
        if t._pipes[fd] then arm_read(t, fd, t._pipes[fd]) end
      end
      connected:set_result(true)
    end)
    -- the exit: process_exited, and the stdin pipe is lost with the child
    local exited = core.io_future(loop, core.proc_wait(h))
    t._exit_wait = exited -- held by the transport (see io_waits below)
    exited:add_done_callback(function()
      local stdin = t._pipes[0]
      if stdin and not stdin._closing then
        stdin._closing = true
        core.pipe_close(stdin._pipe)
        pipe_lost(t, 0, nil)
      end
      call(protocol, "process_exited")
      t._exited = true
      try_finish(t)
    end)
    local ok, err = pcall(connected.await, connected)
    if not ok then
      -- cancelled while connecting (as asyncio): the child is killed and
      -- reaped before the error goes on
      t:close()
      pcall(exited.await, exited)
      error(err, 0)
    end
    return t, protocol
  end

  --- loop:subprocess_exec(protocol_factory, program, arg1, ... [, opts])
  -- -> transport, protocol
  function Loop:subprocess_exec(factory, ...)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "subprocess_exec") end
    local argv, opts = exec_args("subprocess_exec", ...)
    return subprocess_transport(self, factory, argv, opts, "subprocess_exec")
  end

  --- loop:subprocess_shell(protocol_factory, cmd [, opts]) -> transport, protocol
  function Loop:subprocess_shell(factory, cmd, opts)
    if class_of(self) ~= LoopMT then bad_self(self, LoopMT, "subprocess_shell") end
    local argv
    argv, opts = shell_args("subprocess_shell", cmd, opts)
    return subprocess_transport(self, factory, argv, opts, "subprocess_shell")
  end
end
