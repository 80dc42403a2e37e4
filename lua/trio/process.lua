--- Child processes, Trio-flavored: trio.run_process,
-- trio.lowlevel.open_process, the Process object and its pipe streams, on
-- csrc/io/process.c and csrc/io/procpipe.c.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local class_of, bad_self = errors.class_of, errors.bad_self
local signals = require "trio.signals"

local M = {}

M.CalledProcessError = errors.class("trio.CalledProcessError", errors.Error)

-- ---------------------------------------------------------------------
-- commands and options shared with asyncio's face

--- The argv of cmd: a list of strings, or with shell a string run by
-- /bin/sh -c; raises an argument error (level: the public caller).
function M.argv(cmd, shell, fname, level)
  level = (level or 2) + 1
  if shell then
    if type(cmd) ~= "string" then
      error(("bad argument #1 to '%s' (command string expected with shell=true, got %s)"):format(
        fname, type(cmd)), level)
    end
    return { "/bin/sh", "-c", cmd }
  end
  if type(cmd) == "string" then
    error(("bad argument #1 to '%s' (argv list expected; a command string needs shell=true)"):format(
      fname), level)
  end
  if type(cmd) ~= "table" or #cmd == 0 then
    error(("bad argument #1 to '%s' (non-empty argv list expected, got %s)"):format(
      fname, type(cmd) == "table" and "an empty table" or type(cmd)), level)
  end
  local argv = {}
  for i, a in ipairs(cmd) do
    if type(a) ~= "string" and type(a) ~= "number" then
      error(("bad argument #1 to '%s' (argv item %d is a %s, not a string)"):format(fname, i, type(a)), level)
    end
    argv[i] = tostring(a)
  end
  return argv
end

--- Checks cwd and env; returns the spawn options table to complete.
function M.spawn_opts(opts, fname, level)
  level = (level or 2) + 1
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" and not (type(opts.cwd) == "table" and opts.cwd._path) then
    error(("bad argument #2 to '%s' (cwd must be a string, got %s)"):format(fname, type(opts.cwd)), level)
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error(("bad argument #2 to '%s' (env must be a table of strings, got %s)"):format(fname, type(opts.env)), level)
  end
  return { cwd = opts.cwd and tostring(opts.cwd._path or opts.cwd), env = opts.env,
    detached = opts.start_new_session and true or nil }
end

--- The number of a signal given by name or number (SIGKILL allowed).
function M.signal_number(sig, fname)
  if sig == "SIGKILL" or sig == "KILL" or sig == 9 then return 9 end
  if sig == "SIGSTOP" or sig == "STOP" or sig == 19 then return 19 end
  local n, why = signals.signum(sig)
  if n == nil then error(("bad argument #1 to '%s' (%s)"):format(fname, why), 3) end
  return n
end

--- A new process class named `name` over the process handle in field
-- `_h`: the fields returncode (nil while it runs) and pid, and the methods
-- send_signal(sig) (a name or number), terminate() and kill() (nothing once
-- it exited), which asyncio's Process shares.
function M.process_class(name)
  local cls = { __name = name }
  cls.__index = function(self, k)
    if k == "returncode" then return core.proc_poll(rawget(self, "_h")) end
    if k == "pid" then return core.proc_pid(rawget(self, "_h")) end
    return cls[k]
  end

  function cls.send_signal(self, sig)
    if class_of(self) ~= cls then bad_self(self, cls, "send_signal") end
    core.proc_kill(self._h, M.signal_number(sig, "send_signal"))
  end

  function cls.terminate(self)
    if class_of(self) ~= cls then bad_self(self, cls, "terminate") end
    core.proc_kill(self._h, 15)
  end

  function cls.kill(self)
    if class_of(self) ~= cls then bad_self(self, cls, "kill") end
    core.proc_kill(self._h, 9)
  end

  return cls
end

-- ---------------------------------------------------------------------
-- pipe streams

local function translate(err, what)
  if errors.OSError:is(err) then
    if err.code == "ECANCELED" then
      return errors.ClosedResourceError(what .. ": the stream was closed")
    end
    return errors.BrokenResourceError { message = what .. ": " .. err.message, cause = err }
  end
  return err
end

local SendStream = { __name = "trio.PipeSendStream" }
SendStream.__index = SendStream


--- stream:send_all(data): writes all of data (a checkpoint).  Cancelled
-- part way, the stream is broken: later sends raise BrokenResourceError.
function SendStream:send_all(data)
  if class_of(self) ~= SendStream then bad_self(self, SendStream, "send_all") end
  if type(data) ~= "string" then
    error(("bad argument #1 to 'send_all' (string expected, got %s)"):format(type(data)), 2)
  end
  core.check_trio("trio.PipeSendStream:send_all")
  if self._sending then
    error(errors.BusyResourceError("another task is already sending on this stream"), 2)
  end
  core.checkpoint_if_cancelled()
  self._sending = true
  local ok, err = pcall(function() return core.io_wait(core.pipe_send(self._pipe, data), true) end)
  self._sending = false
  if not ok then error(translate(err, "send_all"), 0) end
end

local function check_open(self, what)
  if not (core.pipe_info(self._pipe)) then
    error(errors.ClosedResourceError(what .. ": the stream is closed"), 3)
  end
end

--- stream:wait_send_all_might_not_block(): a checkpoint (returning early is
-- allowed: send_all waits until its data is written).  It counts as a send,
-- as in Trio: beside another send (or another of it) it raises
-- BusyResourceError, and a close during it ClosedResourceError.
function SendStream:wait_send_all_might_not_block()
  if class_of(self) ~= SendStream then bad_self(self, SendStream, "wait_send_all_might_not_block") end
  core.check_trio("trio.PipeSendStream:wait_send_all_might_not_block")
  if self._sending then
    error(errors.BusyResourceError("another task is already sending on this stream"), 2)
  end
  check_open(self, "wait_send_all_might_not_block")
  self._sending = true
  local ok, err = pcall(core.checkpoint)
  self._sending = false
  if not ok then error(err, 0) end
  check_open(self, "wait_send_all_might_not_block")
end

-- Closes the pipe at once, as Trio's FdStream: a send under way in another
-- task raises ClosedResourceError, and what it had not written yet is
-- dropped (waiting for it could wait for ever on a child that stopped
-- reading); what earlier sends wrote is in the pipe, for the child to read
-- before its EOF.
local function close_stream(self)
  local req = core.pipe_close(self._pipe)
  if req ~= nil then core.io_wait(req) end
end

--- stream:close(): closes it (the child reads EOF); again: nothing.
function SendStream:close()
  if class_of(self) ~= SendStream then bad_self(self, SendStream, "close") end
  core.check_trio("trio.PipeSendStream:close")
  close_stream(self)
  core.checkpoint_if_cancelled()
end

--- stream:fileno() -> the fd, -1 once closed (as Trio's FdStream and our
-- sockets).
function SendStream:fileno() return core.pipe_fileno(self._pipe) or -1 end

function SendStream:__close() core.pipe_close(self._pipe) end
function SendStream:__tostring() return tostring(self._pipe) end

local ReceiveStream = { __name = "trio.PipeReceiveStream" }
ReceiveStream.__index = ReceiveStream

--- stream:receive_some([max_bytes=65536]) -> at most max_bytes bytes, ""
-- at EOF (a checkpoint; a cancelled receive loses no data).
function ReceiveStream:receive_some(max_bytes)
  if class_of(self) ~= ReceiveStream then bad_self(self, ReceiveStream, "receive_some") end
  if max_bytes ~= nil and (math.type(max_bytes) ~= "integer" or max_bytes < 1) then
    error(("bad argument #1 to 'receive_some' (positive integer expected, got %s)"):format(
      tostring(max_bytes)), 2)
  end
  core.check_trio("trio.PipeReceiveStream:receive_some")
  core.checkpoint_if_cancelled()
  local ok, r = pcall(function() return core.io_wait(core.pipe_recv(self._pipe, max_bytes), true) end)
  if not ok then error(translate(r, "receive_some"), 0) end
  return r
end

--- stream:close(): closes it; a receive waiting in another task raises
-- ClosedResourceError.
function ReceiveStream:close()
  if class_of(self) ~= ReceiveStream then bad_self(self, ReceiveStream, "close") end
  core.check_trio("trio.PipeReceiveStream:close")
  close_stream(self)
  core.checkpoint_if_cancelled()
end

ReceiveStream.fileno = SendStream.fileno
function ReceiveStream:__close() core.pipe_close(self._pipe) end
function ReceiveStream:__tostring() return tostring(self._pipe) end

M.SendStream, M.ReceiveStream = SendStream, ReceiveStream

-- ---------------------------------------------------------------------
-- Process

local Process = M.process_class("trio.Process")

-- proc.stdio: Trio's StapledStream of stdin and stdout when both are
-- pipes (made on first use, so that a process costs no stream module).
local class_index = Process.__index
function Process.__index(self, k)
  if k == "stdio" then
    local stdin, stdout = rawget(self, "stdin"), rawget(self, "stdout")
    if not (stdin and stdout) then return nil end
    local stdio = require("trio").StapledStream(stdin, stdout)
    rawset(self, "stdio", stdio)
    return stdio
  end
  return class_index(self, k)
end

function Process.__tostring(self)
  local rc = self.returncode
  return ("trio.Process %s (pid %d, %s)"):format(table.concat(self.args, " "), self.pid,
    rc == nil and "running" or ("returncode " .. rc))
end

--- proc:wait() -> the returncode, once the child has exited.
function Process.wait(self)
  if class_of(self) ~= Process then bad_self(self, Process, "wait") end
  core.check_trio("trio.Process:wait")
  core.checkpoint_if_cancelled()
  return core.io_wait(core.proc_wait(self._h), true)
end

--- proc:poll() -> the returncode, or nil while it runs.
function Process.poll(self)
  if class_of(self) ~= Process then bad_self(self, Process, "poll") end
  return core.proc_poll(self._h)
end

--- proc:close(): closes its pipes and waits for it to exit (cancelled:
-- kills it first, then waits).
function Process.close(self)
  if class_of(self) ~= Process then bad_self(self, Process, "close") end
  core.check_trio("trio.Process:close")
  for _, k in ipairs { "stdin", "stdout", "stderr" } do
    local s = self[k]
    if s then core.pipe_close(s._pipe, k == "stdin") end
  end
  local ok, err = pcall(function() return core.io_wait(core.proc_wait(self._h), true) end)
  if not ok then
    core.proc_kill(self._h, 9)
    core.io_wait(core.proc_wait(self._h)) -- shielded: SIGKILL ends it
    error(err, 0)
  end
end

M.Process = Process

local STDIO = { pipe = true, inherit = true, devnull = true }

local function stdio_spec(v, key, fname, level)
  if v == nil then return "pipe" end
  if STDIO[v] or (key == "stderr" and v == "stdout") or (math.type(v) == "integer" and v >= 0) then return v end
  error(("bad argument #2 to '%s' (%s must be \"pipe\", \"inherit\", \"devnull\"%s or an fd, got %s)"):format(
    fname, key, key == "stderr" and ", \"stdout\"" or "", tostring(v)), level + 1)
end

local OPEN_OPTS = { stdin = true, stdout = true, stderr = true, cwd = true, env = true, shell = true,
  start_new_session = true }

local function check_keys(opts, allowed, fname, level)
  for k in pairs(opts) do
    if not allowed[k] then
      error(("bad argument #2 to '%s' (unknown option '%s')"):format(fname, tostring(k)), level + 1)
    end
  end
end

--- Spawns argv with the spawn options; a Process.
local function spawn(argv, sopts, args)
  local h, i, o, e = core.proc_spawn(argv[1], argv, sopts)
  return setmetatable({
    _h = h, args = args,
    stdin = i and setmetatable({ _pipe = i }, SendStream),
    stdout = o and setmetatable({ _pipe = o }, ReceiveStream),
    stderr = e and setmetatable({ _pipe = e }, ReceiveStream),
  }, Process)
end
M.spawn = spawn

--- trio.lowlevel.open_process(cmd, {stdin="pipe", stdout="pipe",
-- stderr="pipe", cwd=, env=, shell=, start_new_session=}) -> Process
function M.open_process(cmd, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #2 to 'open_process' (table expected, got %s)"):format(type(opts)), 2)
  end
  check_keys(opts, OPEN_OPTS, "open_process", 2)
  local argv = M.argv(cmd, opts.shell, "open_process", 2)
  local sopts = M.spawn_opts(opts, "open_process", 2)
  sopts.stdin = stdio_spec(opts.stdin, "stdin", "open_process", 2)
  sopts.stdout = stdio_spec(opts.stdout, "stdout", "open_process", 2)
  sopts.stderr = stdio_spec(opts.stderr, "stderr", "open_process", 2)
  core.check_trio("trio.lowlevel.open_process")
  return spawn(argv, sopts, cmd)
end

-- ---------------------------------------------------------------------
-- run_process

local RUN_OPTS = { stdin = true, capture_stdout = true, capture_stderr = true, stdout = true,
  stderr = true, check = true, cwd = true, env = true, shell = true, start_new_session = true,
  deliver_cancel = true }

local function is_task_status(v)
  return type(v) == "table" and type(v.started) == "function"
end

local NO_OPTS = {} -- run_process without options (never written)
local OUTPUTS = { "stdout", "stderr" }
local CAPTURE = { stdout = "capture_stdout", stderr = "capture_stderr" }
local STDIO_KEYS = { "stdin", "stdout", "stderr" }

local function describe(cmd)
  return type(cmd) == "table" and table.concat(cmd, " ") or tostring(cmd)
end

function M.install(trio)
  --- Trio's default deliver_cancel: SIGTERM; SIGKILL (with a warning) if
  -- the child still runs after 5 s.  run_process cancels it once the
  -- child has exited.  An OSError from a signal is a warning too.
  local function default_deliver_cancel(proc)
    local ok, err = pcall(function()
      proc:terminate()
      trio.sleep(5)
      io.stderr:write(("trio.run_process: %s ignored SIGTERM for 5 seconds (pass a custom"
        .. " deliver_cancel?); sending SIGKILL\n"):format(tostring(proc)))
      proc:kill()
    end)
    if not ok then
      if not errors.OSError:is(err) then error(err, 0) end
      io.stderr:write(("trio.run_process: tried to kill %s, but failed with: %s\n"):format(
        tostring(proc), tostring(err)))
    end
  end

  local function read_all(stream, chunks)
    while true do
      local data = stream:receive_some()
      if data == "" then return end
      chunks[#chunks + 1] = data
    end
  end

  --- Waits for proc to exit.  Cancelled (or failed), it keeps waiting,
  -- shielded, while deliver_cancel(proc) runs in a task of nursery (one
  -- of its own if nil), cancels that task once the child has exited, and
  -- raises the error again; deliver_cancel's own error comes out of the
  -- nursery (a deliver_cancel that raised leaves the child SIGKILLed).
  local function wait_or_deliver_cancel(proc, deliver_cancel, nursery)
    local ok, e = pcall(core.io_wait, core.proc_wait(proc._h), true)
    if ok then return end
    local function deliver(n)
      trio.CancelScope { shield = true }:run(function()
        local killer = trio.CancelScope { shield = true }
        n:start_soon(function()
          killer:run(function()
            local dok, derr = pcall(deliver_cancel, proc)
            if not dok then
              proc:kill()
              error(derr, 0)
            end
          end)
        end)
        proc:wait()
        killer:cancel()
      end)
      error(e, 0)
    end
    if nursery then deliver(nursery) else trio.open_nursery(deliver) end
  end

  --- trio.run_process(cmd, {stdin=, capture_stdout=, capture_stderr=,
  -- stdout=, stderr=, check=true, cwd=, env=, shell=, deliver_cancel=})
  -- -> {args=, returncode=, stdout=, stderr=}
  function M.run_process(cmd, ...)
    local opts, task_status
    for i = 1, select("#", ...) do
      local a = select(i, ...)
      if is_task_status(a) then task_status = a
      elseif a ~= nil and opts == nil then opts = a end
    end
    opts = opts or NO_OPTS
    if type(opts) ~= "table" then
      error(("bad argument #2 to 'run_process' (table expected, got %s)"):format(type(opts)), 2)
    end
    check_keys(opts, RUN_OPTS, "run_process", 2)
    local argv = M.argv(cmd, opts.shell, "run_process", 2)
    local sopts = M.spawn_opts(opts, "run_process", 2)
    local input = opts.stdin
    if input ~= nil and type(input) ~= "string" then
      error(("bad argument #2 to 'run_process' (stdin must be a string to feed, got %s)"):format(type(input)), 2)
    end
    for _, k in ipairs(OUTPUTS) do
      local v = opts[k]
      if v ~= nil and v ~= "inherit" and v ~= "devnull" and not (k == "stderr" and v == "stdout") then
        error(("bad argument #2 to 'run_process' (%s must be \"inherit\"%s or \"devnull\", got %s)"):format(
          k, k == "stderr" and ", \"stdout\"" or "", tostring(v)), 2)
      end
      if v ~= nil and opts[CAPTURE[k]] then
        error(("bad argument #2 to 'run_process' (capture_%s and %s cannot both be given)"):format(k, k), 2)
      end
    end
    local deliver_cancel = opts.deliver_cancel or default_deliver_cancel
    if not errors.is_callable(deliver_cancel) then
      error("bad argument #2 to 'run_process' (deliver_cancel must be a function)", 2)
    end
    local check_rc = opts.check ~= false
    sopts.stdin = input ~= nil and "pipe" or "devnull"
    sopts.stdout = opts.capture_stdout and "pipe" or opts.stdout or "inherit"
    sopts.stderr = opts.capture_stderr and "pipe" or opts.stderr or "inherit"
    core.check_trio("trio.run_process")
    core.checkpoint_if_cancelled()
    local proc = spawn(argv, sopts, cmd)
    local out, err_out
    local ok, e
    if proc.stdin or proc.stdout or proc.stderr then
      out, err_out = {}, {}
      ok, e = pcall(trio.open_nursery, function(n)
        if proc.stdin then
          n:start_soon(function()
            -- a child that exits without reading all of it is no error
            local sok, se = pcall(proc.stdin.send_all, proc.stdin, input)
            if not sok and not errors.BrokenResourceError:is(se) and not errors.ClosedResourceError:is(se) then
              error(se, 0)
            end
            proc.stdin:close()
          end)
        end
        if opts.capture_stdout then n:start_soon(read_all, proc.stdout, out) end
        if opts.capture_stderr then n:start_soon(read_all, proc.stderr, err_out) end
        if task_status then task_status:started(proc) end
        wait_or_deliver_cancel(proc, deliver_cancel, n)
      end)
      for _, k in ipairs(STDIO_KEYS) do
        if proc[k] then core.pipe_close(proc[k]._pipe) end
      end
    else
      -- no pipe to feed or read beside the wait: no nursery needed
      if task_status then task_status:started(proc) end
      ok, e = pcall(wait_or_deliver_cancel, proc, deliver_cancel)
    end
    if not ok then error(e, 0) end
    local rc = core.proc_poll(proc._h)
    local result = {
      args = cmd, returncode = rc,
      stdout = opts.capture_stdout and table.concat(out) or nil,
      stderr = opts.capture_stderr and table.concat(err_out) or nil,
    }
    if check_rc and rc ~= 0 then
      error(M.CalledProcessError {
        message = rc < 0 and ("Command '%s' died with %s."):format(describe(cmd), signals.signame(-rc))
          or ("Command '%s' returned non-zero exit status %d."):format(describe(cmd), rc),
        returncode = rc, cmd = cmd, stdout = result.stdout, stderr = result.stderr,
      }, 2)
    end
    return result
  end
  return M
end

return M
