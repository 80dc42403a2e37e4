-- Ported from trio-asyncio tests/test_aio_subprocess.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Every test runs asyncio subprocesses (loop:subprocess_exec,
-- loop:subprocess_shell and their transports, DESIGN 4.4).
--
-- Translation:
-- * the helper scripts run by the Python interpreter (tests/scripts/echo.py,
--   echo2.py, echo3.py) are small programs here: `cat` for echo.py (copy
--   stdin to stdout as it comes), and POSIX sh one-liners for the other two
--   (Lua's io.read(n) waits for n bytes, while the scripts answer each
--   chunk as it comes).  echo3 ignores SIGPIPE, as Python does, so a write
--   to a closed stdout fails with EPIPE and it reports BrokenPipeError.
-- * `@aio_as_trio async def run_x(loop)` plus `test_x` calling it is one
--   asyncio-flavored function called through aio_as_trio.
-- * a protocol is a table of methods (DESIGN 4.4); `asyncio.Future()` is
--   loop:create_future(); the Python subprocess keyword arguments are an
--   options table (stdin=, stdout=, stderr=, start_new_session=, ...), and
--   the invalid ones upstream checks (universal_newlines, bufsize, shell)
--   must raise an argument error naming them.
-- * check_killed / check_terminated: returncode is minus the signal number
--   (SIGKILL 9, SIGTERM 15, SIGHUP 1), as trio's Process reports it.
-- * test_utils.disable_logger() (silencing asyncio's logger) is dropped, and
--   so is the reset of SIGHUP to its default handler in
--   test_subprocess_send_signal (Lua has no signal API; a test runner that
--   ignores SIGHUP would make that test fail).
--
-- Left out: nothing.
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"
local errof, assert_has = H.errof, H.assert_has

local F = "tests/test_aio_subprocess.py::"

local ECHO = { "cat" }
local ECHO2 = { "sh", "-c",
  [[buf=$(dd bs=1024 count=1 2>/dev/null); printf 'OUT:%s' "$buf"; printf 'ERR:%s' "$buf" >&2]] }
local ECHO3 = { "sh", "-c", [[trap '' PIPE
while buf=$(dd bs=1024 count=1 2>/dev/null) && [ -n "$buf" ]; do
  printf 'OUT:%s' "$buf" 2>/dev/null || printf 'ERR:BrokenPipeError' >&2
done]] }

local SIGHUP, SIGKILL, SIGTERM = 1, 9, 15

local function MySubprocessProtocol(loop)
  local self = {
    class = "MySubprocessProtocol",
    state = "INITIAL",
    transport = nil,
    connected = loop:create_future(),
    completed = loop:create_future(),
    disconnects = { [0] = loop:create_future(), loop:create_future(), loop:create_future() },
    data = { [1] = "", [2] = "" },
    returncode = nil,
    got_data = { asyncio.Event(), asyncio.Event() },
  }

  function self:connection_made(transport)
    self.transport = transport
    assert.equal("INITIAL", self.state)
    self.state = "CONNECTED"
    self.connected:set_result(nil)
  end

  function self:connection_lost()
    assert.equal("CONNECTED", self.state)
    self.state = "CLOSED"
    self.completed:set_result(nil)
  end

  function self:pipe_data_received(fd, data)
    assert.equal("CONNECTED", self.state)
    self.data[fd] = self.data[fd] .. data
    self.got_data[fd]:set()
  end

  function self:pipe_connection_lost(fd, exc)
    assert.equal("CONNECTED", self.state)
    if exc ~= nil then
      self.disconnects[fd]:set_exception(exc)
    else
      self.disconnects[fd]:set_result(exc)
    end
  end

  function self:process_exited()
    assert.equal("CONNECTED", self.state)
    self.returncode = self.transport:get_returncode()
  end

  return self
end

local function is_my_protocol(p)
  return type(p) == "table" and p.class == "MySubprocessProtocol"
end

local function factory(loop)
  return function() return MySubprocessProtocol(loop) end
end

local function check_terminated(returncode) assert.equal(-SIGTERM, returncode) end
local function check_killed(returncode) assert.equal(-SIGKILL, returncode) end

local function exec(loop, argv, opts)
  local args = { table.unpack(argv) }
  if opts then args[#args + 1] = opts end
  return loop:subprocess_exec(factory(loop), table.unpack(args))
end

it(F .. "test_subprocess_exec", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()
      assert.equal("CONNECTED", proto.state)

      local stdin = transp:get_pipe_transport(0)
      stdin:write("Python The Winner")
      proto.got_data[1]:wait()
      transp:close()
      proto.completed:await()
      check_killed(proto.returncode)
      assert.equal("Python The Winner", proto.data[1])
    end)()
  end)
end)

it(F .. "test_subprocess_interactive", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()
      assert.equal("CONNECTED", proto.state)

      local stdin = transp:get_pipe_transport(0)
      stdin:write("Python ")
      proto.got_data[1]:wait()
      proto.got_data[1]:clear()
      assert.equal("Python ", proto.data[1])

      stdin:write("The Winner")
      proto.got_data[1]:wait()
      assert.equal("Python The Winner", proto.data[1])

      transp:close()
      proto.completed:await()
      check_killed(proto.returncode)
    end)()
  end)
end)

it(F .. "test_subprocess_shell", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = loop:subprocess_shell(factory(loop), "echo Python")
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()

      transp:get_pipe_transport(0):close()
      proto.completed:await()
      assert.equal(0, proto.returncode)
      for fd = 0, 2 do assert.is_true(proto.disconnects[fd]:done()) end
      assert.equal("Python", (proto.data[1]:gsub("[\r\n]+$", "")))
      assert.equal("", proto.data[2])
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_exitcode", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = loop:subprocess_shell(factory(loop), "exit 7",
        { stdin = false, stdout = false, stderr = false })
      assert.is_true(is_my_protocol(proto))
      proto.completed:await()
      assert.equal(7, proto.returncode)
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_close_after_finish", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = loop:subprocess_shell(factory(loop), "exit 7",
        { stdin = false, stdout = false, stderr = false })
      assert.is_true(is_my_protocol(proto))
      assert.is_nil(transp:get_pipe_transport(0))
      assert.is_nil(transp:get_pipe_transport(1))
      assert.is_nil(transp:get_pipe_transport(2))
      proto.completed:await()
      assert.equal(7, proto.returncode)
      assert.equal(0, select("#", transp:close()))
    end)()
  end)
end)

it(F .. "test_subprocess_kill", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()
      transp:kill()
      proto.completed:await()
      check_killed(proto.returncode)
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_terminate", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()
      transp:terminate()
      proto.completed:await()
      check_terminated(proto.returncode)
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_send_signal", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()
      transp:send_signal("SIGHUP")
      proto.completed:await()
      assert.equal(-SIGHUP, proto.returncode)
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_stderr", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO2)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()

      local stdin = transp:get_pipe_transport(0)
      stdin:write("test")
      proto.completed:await()

      transp:close()
      assert.equal("OUT:test", proto.data[1])
      assert.equal("ERR:test", proto.data[2]:sub(1, 8), proto.data[2])
      assert.equal(0, proto.returncode)
    end)()
  end)
end)

it(F .. "test_subprocess_stderr_redirect_to_stdout", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO2, { stderr = asyncio.subprocess.STDOUT })
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()

      local stdin = transp:get_pipe_transport(0)
      assert.is_not_nil(transp:get_pipe_transport(1))
      assert.is_nil(transp:get_pipe_transport(2))

      stdin:write("test")
      proto.completed:await()
      assert.equal("OUT:testERR:test", proto.data[1]:sub(1, 16), proto.data[1])
      assert.equal("", proto.data[2])

      transp:close()
      assert.equal(0, proto.returncode)
    end)()
  end)
end)

it(F .. "test_subprocess_close_client_stream", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      local transp, proto = exec(loop, ECHO3)
      assert.is_true(is_my_protocol(proto))
      proto.connected:await()

      local stdin = transp:get_pipe_transport(0)
      local stdout = transp:get_pipe_transport(1)
      stdin:write("test")
      proto.got_data[1]:wait()
      assert.equal("OUT:test", proto.data[1])

      stdout:close()
      proto.disconnects[1]:await()
      stdin:write("xxx")
      proto.got_data[2]:wait()
      assert.equal("ERR:BrokenPipeError", proto.data[2])
      transp:close()
      proto.completed:await()
      check_killed(proto.returncode)
    end)()
  end)
end)

it(F .. "test_subprocess_wait_no_same_group", function()
  H.with_loop(function(loop)
    ta.aio_as_trio(function()
      -- the process starts in a new session
      local transp, proto = loop:subprocess_shell(factory(loop), "exit 7",
        { stdin = false, stdout = false, stderr = false, start_new_session = true })
      assert.is_true(is_my_protocol(proto))
      proto.completed:await()
      assert.equal(7, proto.returncode)
      transp:close()
    end)()
  end)
end)

it(F .. "test_subprocess_exec_invalid_args", function()
  H.with_loop(function(loop)
    local connect = ta.aio_as_trio(function(opts)
      loop:subprocess_exec(function() return {} end, "pwd", opts)
    end)
    assert_has(errof(connect, { universal_newlines = true }), "universal_newlines")
    assert_has(errof(connect, { bufsize = 4096 }), "bufsize")
    assert_has(errof(connect, { shell = true }), "shell")
  end)
end)

it(F .. "test_subprocess_shell_invalid_args", function()
  H.with_loop(function(loop)
    local connect = ta.aio_as_trio(function(cmd, opts)
      loop:subprocess_shell(function() return {} end, cmd or "pwd", opts)
    end)
    assert_has(errof(connect, { "ls", "-l" }), "subprocess_shell")
    assert_has(errof(connect, nil, { universal_newlines = true }), "universal_newlines")
    assert_has(errof(connect, nil, { bufsize = 4096 }), "bufsize")
    assert_has(errof(connect, nil, { shell = false }), "shell")
  end)
end)
