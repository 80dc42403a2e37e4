-- Ported from CPython Lib/test/test_asyncio/test_unix_events.py (a
-- CPython 3.13-era version: the one whose test_create_unix_server_existing_path_sock
-- expects a stale socket file to be replaced, read through the search
-- tool's stored copy; older versions, e.g. python/cpython at commit
-- 00695c49df68cf2363d86307fa712b25a328d52c, expected "Address already in
-- use" there).
--
-- Each test is named "test_unix_events.py::<Class>.<test>" and says
-- whether it is ported or adapted (and how).  Upstream replaces the
-- signal module by a mock to see which calls the loop makes; here real
-- signals go to this process (support_signals), and whether the process
-- catches a signal (/proc/self/status) stands for the calls to
-- signal.signal.  A bad argument is an argument error naming the method
-- where asyncio raises TypeError (docs/SEMANTICS.md).
--
-- Left out, mocks of the signal module or private methods:
--   SelectorEventLoopSignalTests.test_handle_signal_no_handler,
--   test_handle_signal_cancelled_handler           the private _handle_signal
--   test_add_signal_handler_setup_error, test_add_signal_handler_install_error,
--   test_add_signal_handler_install_error2, test_add_signal_handler_install_error3,
--   test_remove_signal_handler_cleanup_error, test_remove_signal_handler_error,
--   test_remove_signal_handler_error2              failures of signal.set_wakeup_fd /
--                                                  signal.signal that only a mock gives
--   test_remove_signal_handler_2                   SIGINT's default_int_handler: SIGINT
--                                                  is checked in cpython_test_events_spec.lua
--   test_close_on_finalizing                       sys.is_finalizing (interpreter shutdown)
--   SelectorEventLoopUnixSocketTests.test_create_unix_server_bind_error
--                                                  a mocked socket whose bind fails
--
-- Left out, not in our API (docs/API.md):
--   SelectorEventLoopUnixSocketTests.test_create_unix_server_path_dgram
--                                                  no Unix datagram sockets
--   SelectorEventLoopUnixSocketTests.test_create_unix_server_path_stream_bittype
--                                                  SOCK_NONBLOCK in a socket's type
--   SelectorEventLoopUnixSockSendfileTests (all)   there is no loop.sock_sendfile
--   UnixReadPipeTransportTests, UnixWritePipeTransportTests (all)
--                                                  loop.connect_read_pipe /
--                                                  connect_write_pipe (pipes of
--                                                  subprocesses are covered by
--                                                  cpython_test_subprocess_spec.lua)
--   TestFork (all)                                 os.fork and multiprocessing
--   the child watcher and policy tests of older versions
--                                                  there are no child watchers
--                                                  (libuv reaps children) nor policies
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"
local signals = require "support_signals"
local errors = require "trio.errors"

local socket = asyncio.socket
local ValueError = H.ValueError
local assert_raises, assert_argerror, catch = H.assert_raises, H.assert_argerror, H.catch

local SIGHUP, SIGUSR1 = 1, 10


--- fn(dir) with a fresh temporary directory, removed afterwards.
local function with_dir(fn)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  H.try_finally(fn, function() os.execute("rm -rf " .. dir) end, dir)
end

--- Runs the loop until `fut` is done (bounded by H.GUARD).
local function wait(loop, fut)
  return loop:run_until_complete(function() return asyncio.wait_for(fut, H.GUARD) end)
end

describe("test_unix_events.py", function()
  local T = "test_unix_events.py::SelectorEventLoopSignalTests."

  it(T .. "test_check_signal", function()
    -- adapted: _check_signal is private; add_signal_handler checks its
    -- signal the same way: "1" (not a signal name) and NSIG + 1 are
    -- argument errors (asyncio: TypeError and ValueError)
    H.with_loop(function(loop)
      assert_argerror("add_signal_handler", loop.add_signal_handler, loop, "1", function() end)
      assert_argerror("add_signal_handler", loop.add_signal_handler, loop, 65 + 1, function() end)
    end)
  end)

  it(T .. "test_add_signal_handler_coroutine_error", function()
    -- adapted: a coroutine object is a Lua coroutine (a thread), which is
    -- not callable: an argument error (asyncio: TypeError).  A coroutine
    -- function is a plain function here, which is accepted.
    H.with_loop(function(loop)
      assert_argerror("add_signal_handler", loop.add_signal_handler, loop, "SIGINT", coroutine.create(function() end))
      assert.is_false(loop:remove_signal_handler("SIGINT"))
    end)
  end)

  it(T .. "test_add_signal_handler", function()
    -- adapted: the loop's private _signal_handlers is not visible; the
    -- handler is seen to run when the signal comes, and the process to
    -- catch the signal
    H.with_loop(function(loop)
      local got = loop:create_future()
      loop:add_signal_handler(SIGHUP, function(v) got:set_result(v) end, "hup")
      signals.check_caught(SIGHUP, true)
      signals.kill("HUP")
      assert.equal("hup", wait(loop, got))
      assert.is_true(loop:remove_signal_handler(SIGHUP))
    end)
  end)

  it(T .. "test_remove_signal_handler", function()
    -- adapted: upstream sees signal.signal(SIGHUP, SIG_DFL); here the
    -- process no longer catches SIGHUP once the handler is removed
    H.with_loop(function(loop)
      local before = signals.caught(SIGHUP)
      loop:add_signal_handler(SIGHUP, function() end)
      assert.is_true(loop:remove_signal_handler(SIGHUP))
      signals.check_caught(SIGHUP, before)
    end)
  end)

  it(T .. "test_close", function()
    -- adapted: two handlers (SIGHUP and SIGUSR1: SIGCHLD is libuv's to
    -- watch children); after close() the loop has none, and the process
    -- catches neither signal as before
    local loop = asyncio.new_event_loop()
    local before = { signals.caught(SIGHUP), signals.caught(SIGUSR1) }
    loop:add_signal_handler(SIGHUP, function() end)
    loop:add_signal_handler(SIGUSR1, function() end)
    signals.check_caught(SIGHUP, true)
    signals.check_caught(SIGUSR1, true)
    loop:close()
    signals.check_caught(SIGHUP, before[1])
    signals.check_caught(SIGUSR1, before[2])
  end)

  T = "test_unix_events.py::SelectorEventLoopUnixSocketTests."

  it(T .. "test_create_unix_server_existing_path_sock", function()
    -- ported (bind failed on the stale socket file before this port)
    with_dir(function(dir)
      local path = dir .. "/sock"
      local sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      sock:bind(path)
      sock:listen(1)
      sock:close()
      H.run(function()
        local srv = asyncio.get_running_loop():create_unix_server(function() return {} end, path)
        srv:close()
        srv:wait_closed()
      end)
    end)
  end)

  it(T .. "test_create_unix_server_pathlike", function()
    -- adapted: a trio.Path is the path-like object (FakePath); refused
    -- before this port
    local trio = require "trio"
    with_dir(function(dir)
      H.run(function()
        local srv = asyncio.get_running_loop():create_unix_server(function() return {} end, trio.Path(dir, "sock"))
        srv:close()
        srv:wait_closed()
      end)
    end)
  end)

  it(T .. "test_create_unix_connection_pathlike", function()
    -- adapted: a trio.Path (see above); with no socket there, the error
    -- is the FileNotFoundError of connecting, not an argument error
    local trio = require "trio"
    with_dir(function(dir)
      H.run(function()
        local loop = asyncio.get_running_loop()
        assert_raises(errors.FileNotFoundError, loop.create_unix_connection, loop, function() return {} end,
          trio.Path(dir, "sock"))
      end)
    end)
  end)

  it(T .. "test_create_unix_server_existing_path_nonsock", function()
    -- ported
    with_dir(function(dir)
      local path = dir .. "/file"
      assert(io.open(path, "wb")):close()
      H.run(function()
        local loop = asyncio.get_running_loop()
        local e = assert_raises(errors.OSError, loop.create_unix_server, loop, function() return {} end, path)
        assert.matches("address already in use", e.message)
      end)
    end)
  end)

  it(T .. "test_create_unix_server_ssl_bool", function()
    -- adapted: an argument error (asyncio: TypeError) naming the context
    -- it wants
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_argerror("create_unix_server", loop.create_unix_server, loop, function() return {} end,
        "spam", { ssl = true })
      assert.matches("SSLContext expected", tostring(e))
    end)
  end)

  it(T .. "test_create_unix_server_nopath_nosock", function()
    -- adapted: an argument error (asyncio: ValueError)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_argerror("create_unix_server", loop.create_unix_server, loop, function() return {} end, nil)
    end)
  end)

  it(T .. "test_create_unix_server_path_inetsock", function()
    -- ported (an AF_INET socket was taken, and listened on, before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket()
      H.try_finally(function()
        local e = assert_raises(ValueError, loop.create_unix_server, loop, function() return {} end, nil,
          { sock = sock })
        assert.matches("A UNIX Domain Stream.*was expected", e.message)
      end, function() sock:close() end)
    end)
  end)

  it(T .. "test_create_unix_server_ssl_timeout_with_plain_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_unix_server, loop, function() return {} end, "spam",
        { ssl_handshake_timeout = 1 })
      assert.matches("ssl_handshake_timeout is only meaningful with ssl", e.message)
    end)
  end)

  it(T .. "test_create_unix_connection_path_inetsock", function()
    -- ported (an AF_INET socket was taken before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket()
      H.try_finally(function()
        local e = assert_raises(ValueError, loop.create_unix_connection, loop, function() return {} end, nil,
          { sock = sock })
        assert.matches("A UNIX Domain Stream.*was expected", e.message)
      end, function() sock:close() end)
    end)
  end)

  it(T .. "test_create_unix_connection_path_sock", function()
    -- adapted: a real AF_UNIX socket for object() (an object that is not a
    -- socket is an argument error); the path was ignored before this port
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
      H.try_finally(function()
        local e = assert_raises(ValueError, loop.create_unix_connection, loop, function() return {} end,
          "/dev/null", { sock = sock })
        assert.matches("path and sock can not be", e.message)
      end, function() sock:close() end)
    end)
  end)

  it(T .. "test_create_unix_connection_nopath_nosock", function()
    -- adapted: an argument error (asyncio: ValueError)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_argerror("create_unix_connection", loop.create_unix_connection, loop, function() return {} end, nil)
    end)
  end)

  it(T .. "test_create_unix_connection_nossl_serverhost", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_unix_connection, loop, function() return {} end,
        "/dev/null", { server_hostname = "spam" })
      assert.matches("server_hostname is only meaningful", e.message)
    end)
  end)

  it(T .. "test_create_unix_connection_ssl_noserverhost", function()
    -- ported (the message says "server_hostname must be given"; the
    -- check came only after connecting before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_unix_connection, loop, function() return {} end,
        "/dev/null", { ssl = true })
      assert.matches("server_hostname must be given", e.message)
    end)
  end)

  it(T .. "test_create_unix_connection_ssl_timeout_with_plain_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_unix_connection, loop, function() return {} end, "spam",
        { ssl_handshake_timeout = 1 })
      assert.matches("ssl_handshake_timeout is only meaningful with ssl", e.message)
    end)
  end)

  T = "test_unix_events.py::TestFunctional."

  it(T .. "test_add_reader_invalid_argument", function()
    -- adapted: argument errors (asyncio: ValueError "Invalid file object")
    H.with_loop(function(loop)
      local cb = function() end
      assert_argerror("add_reader", loop.add_reader, loop, {}, cb)
      assert_argerror("add_writer", loop.add_writer, loop, {}, cb)
      assert_argerror("remove_reader", loop.remove_reader, loop, {})
      assert_argerror("remove_writer", loop.remove_writer, loop, {})
    end)
  end)

  it(T .. "test_add_reader_or_writer_transport_fd", function()
    -- adapted: adding a reader or writer on the fd of a transport raises
    -- an OSError (FileExistsError: libuv watches that fd already) where
    -- asyncio raises RuntimeError "File descriptor ... is used by
    -- transport"; removing one returns false (asyncio: RuntimeError).
    -- docs/SEMANTICS.md
    H.run(function()
      local loop = asyncio.get_running_loop()
      local rsock, wsock = socket.socketpair()
      local tr = loop:create_connection(function() return {} end, nil, nil, { sock = rsock })
      H.try_finally(function()
        local cb = function() end
        assert_raises(errors.FileExistsError, loop.add_reader, loop, rsock:fileno(), cb)
        assert_raises(errors.FileExistsError, loop.add_writer, loop, rsock:fileno(), cb)
        assert.is_false(loop:remove_reader(rsock:fileno()))
        assert.is_false(loop:remove_writer(rsock:fileno()))
      end, function()
        tr:close()
        wsock:close()
      end)
    end)
  end)
end)
