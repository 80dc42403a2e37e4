-- Ported from CPython Lib/test/test_asyncio/test_server.py
-- (python/cpython at commit 001c28668c5e11e6c637bd4271c2a0125cc30409):
-- Server's start_serving, serve_forever, close, wait_closed, is_serving
-- and sockets, over TCP and Unix sockets, and the removal of a Unix
-- server's socket file.
--
-- Each test is named "test_server.py::<class>.<test>" and says above it
-- whether it is ported (the same steps and checks) or adapted (and how).
-- Upstream's clients run in threads with blocking sockets; here they are
-- Tasks on the same loop using loop:sock_*.  `async with srv` is a
-- <close> variable.  Unix paths live in a fresh temp dir.
--
-- Left out:
--   TestServer2.test_close_clients, TestServer2.test_abort_clients
--                    Server.close_clients() / abort_clients() (Python 3.13)
--                    are not in the API (DESIGN.md 4.4 lists close,
--                    wait_closed, serve_forever, start_serving, is_serving,
--                    sockets, get_loop)
--   ProactorStartServerTests
--                    Windows only
-- Upstream's checks of the private srv._sockets and srv._waiters (None once
-- closed) are left out of the tests that make them.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local H = require "conformance.cpython_helpers"

local socket = asyncio.socket
local tmp = require "conformance.temp_dir"(before_each, after_each)

local assert_raises = H.assert_raises
local CancelledError, RuntimeError = H.CancelledError, H.RuntimeError


local HELLO_MSG = ("1"):rep(1024 * 5) .. "\n"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  -- a socket file cannot be opened, but it is there: os.rename to itself
  return f ~= nil or os.rename(path, path) ~= nil
end

-- The client of test_start_server_1 / test_start_unix_server_1: connects
-- to addr, sends HELLO_MSG, reads the one byte the server answers.
local function hello_client(loop, sock, addr)
  loop:sock_connect(sock, addr)
  loop:sock_sendall(sock, HELLO_MSG)
  local answer = loop:sock_recv(sock, 1)
  sock:close()
  return answer
end

-- The server callback of the same tests: reads the line, cancels the
-- main Task, answers "1" and closes.
local function hello_serve(main_task)
  return function(reader, writer)
    reader:readline()
    main_task.task:cancel()
    writer:write("1")
    writer:close()
    writer:wait_closed()
  end
end

-- A protocol factory whose protocols do nothing.
local function nothing() return {} end

-- The end of test_start_server_1 / test_start_unix_server_1: the main
-- Task (in serve_forever) ends cancelled, the client got its answer, and
-- the server is closed for good.
local function check_hello_run(loop, srv, main_task, client)
  assert_raises(CancelledError, loop.run_until_complete, loop, main_task)
  assert.equal("1", loop:run_until_complete(client))
  assert.same({}, srv.sockets)
  assert.is_false(srv:is_serving())
  assert_raises("is closed", loop.run_until_complete, loop, loop:create_task(srv.serve_forever, srv))
end

-- The server callback of TestServer2: reads to EOF, then closes.
local function read_all_serve(rd, wr)
  H.try_finally(rd.read, function()
    wr:close()
    wr:wait_closed()
  end, rd)
end

-- TestServer2's setup: fn(srv, addr) in a Task, srv a read_all_serve
-- server on 127.0.0.1, closed afterwards (upstream's addCleanup).
local function with_read_all_server(fn)
  H.run(function()
    local srv = asyncio.start_server(read_all_serve, "127.0.0.1", 0)
    H.try_finally(fn, function() srv:close() end, srv, srv.sockets[1]:getsockname())
  end)
end

-- A Unix stream socket bound to path (upstream's `sock.bind(addr)`).
local function bound_unix_socket(path)
  local sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
  sock:bind(path)
  return sock
end

describe("test_server.py", function()
  -- adapted: the client is a Task polling is_serving() (upstream: a
  -- thread, every 0.2 s); srv.sockets is an empty list once closed
  -- (upstream: an empty tuple)
  it("test_server.py::BaseStartServer.test_start_server_1", function()
    H.with_loop(function(loop)
      local main_task = {}
      local srv = loop:run_until_complete(loop:create_task(asyncio.start_server, hello_serve(main_task),
        "127.0.0.1", 0, { start_serving = false }))
      assert.is_false(srv:is_serving())
      main_task.task = loop:create_task(function()
        local s <close> = srv
        s:serve_forever()
      end)
      local addr = srv.sockets[1]:getsockname()
      local client = loop:create_task(function()
        for _ = 1, 100 do
          if srv:is_serving() then return hello_client(loop, socket.socket(), addr) end
          asyncio.sleep(0.01)
        end
        error(RuntimeError("the server never started serving"))
      end)
      check_hello_run(loop, srv, main_task.task, client)
    end)
  end)

  -- adapted: as test_start_server_1, on a Unix path; the client Task waits
  -- for an asyncio.Event (upstream: a threading.Event)
  it("test_server.py::SelectorStartServerTests.test_start_unix_server_1", function()
    H.with_loop(function(loop)
      local addr = tmp.path .. "/srv.sock"
      local started = asyncio.Event()
      local main_task = {}
      local srv = loop:run_until_complete(loop:create_task(asyncio.start_unix_server, hello_serve(main_task),
        addr, { start_serving = false }))
      main_task.task = loop:create_task(function()
        local s <close> = srv
        assert.is_false(s:is_serving())
        s:start_serving()
        assert.is_true(s:is_serving())
        started:set()
        s:serve_forever()
      end)
      local client = loop:create_task(function()
        asyncio.wait_for(function() started:wait() end, 5)
        return hello_client(loop, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), addr)
      end)
      check_hello_run(loop, srv, main_task.task, client)
    end)
  end)

  -- ported
  it("test_server.py::TestServer2.test_wait_closed_basic", function()
    with_read_all_server(function(srv, addr)
      -- active count = 0, not closed: should block
      local task1 = asyncio.create_task(srv.wait_closed, srv)
      asyncio.sleep(0)
      assert.is_false(task1:done())
      -- active count ~= 0, not closed: should block
      local _, wr = asyncio.open_connection(addr[1], addr[2])
      local task2 = asyncio.create_task(srv.wait_closed, srv)
      asyncio.sleep(0)
      assert.is_false(task1:done())
      assert.is_false(task2:done())
      srv:close()
      asyncio.sleep(0)
      -- active count ~= 0, closed: should block
      local task3 = asyncio.create_task(srv.wait_closed, srv)
      asyncio.sleep(0)
      assert.is_false(task1:done())
      assert.is_false(task2:done())
      assert.is_false(task3:done())
      wr:close()
      wr:wait_closed()
      -- active count == 0, closed: should unblock
      task1:await()
      task2:await()
      task3:await()
      srv:wait_closed() -- returns at once
    end)
  end)

  -- ported
  it("test_server.py::TestServer2.test_wait_closed_race", function()
    with_read_all_server(function(srv, addr)
      local task = asyncio.create_task(srv.wait_closed, srv)
      asyncio.sleep(0)
      assert.is_false(task:done())
      local _, wr = asyncio.open_connection(addr[1], addr[2])
      local loop = asyncio.get_running_loop()
      loop:call_soon(function() srv:close() end)
      loop:call_soon(function() wr:close() end)
      srv:wait_closed()
      task:await()
    end)
  end)

  -- adapted: upstream waits until the server's accept callback is in the
  -- private loop._ready queue, then closes the server; here the server is
  -- closed one loop iteration after the client's connect returned (the
  -- connection accepted, its handler not yet run).  Upstream then checks
  -- that the garbage collector reports nothing; here that nothing reached
  -- the loop's exception handler.  The callback closes its writer: upstream's
  -- does nothing, and Python's StreamWriter.__del__ closes the connection
  -- once the writer is collected, which a Lua StreamWriter does not
  -- (docs/SEMANTICS.md): wait_closed would wait for the connection.
  it("test_server.py::TestServer2.test_close_race", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local calls = H.capture_handler(loop)
      local srv = asyncio.start_server(function(_, w) w:close() end, "127.0.0.1", 0)
      local addr = srv.sockets[1]:getsockname()
      local conn_task = asyncio.create_task(asyncio.open_connection, addr[1], addr[2])
      for _ = 1, 10 do
        asyncio.sleep(0)
        if conn_task:done() then break end
      end
      asyncio.sleep(0)
      srv:close()
      local connected, reader_or_error, wr = pcall(conn_task.await, conn_task)
      if connected then
        wr:close()
      else
        assert(errors.OSError:is(reader_or_error), tostring(reader_or_error))
      end
      asyncio.wait_for(function() srv:wait_closed() end, 5)
      collectgarbage()
      asyncio.sleep(0)
      assert.same({}, calls)
    end)
  end)

  -- ported
  it("test_server.py::UnixServerCleanupTests.test_unix_server_addr_cleanup", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local srv = asyncio.start_unix_server(function() end, addr)
      assert.is_true(exists(addr))
      srv:close()
      assert.is_false(exists(addr))
    end)
  end)

  -- adapted: the same through loop:create_unix_server(factory, nil,
  -- {sock=}) (the next test makes upstream's start_unix_server call)
  it("test_server.py::UnixServerCleanupTests.test_unix_server_sock_cleanup", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local sock = bound_unix_socket(addr)
      local srv = asyncio.get_running_loop():create_unix_server(nothing, nil, { sock = sock })
      srv:close()
      assert.is_false(exists(addr))
      sock:close()
    end)
  end)

  -- adapted: loop:create_unix_server(factory, nil, {sock=}), as
  -- test_unix_server_sock_cleanup
  it("test_server.py::UnixServerCleanupTests.test_unix_server_cleanup_gone", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local sock = bound_unix_socket(addr)
      local srv = asyncio.get_running_loop():create_unix_server(nothing, nil, { sock = sock })
      assert(os.remove(addr))
      srv:close()
      assert.is_false(exists(addr))
      sock:close()
    end)
  end)

  -- ported
  it("test_server.py::UnixServerCleanupTests.test_unix_server_cleanup_replaced", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local srv = asyncio.start_unix_server(function() end, addr)
      assert(os.remove(addr))
      local sock = bound_unix_socket(addr)
      srv:close()
      assert.is_true(exists(addr))
      sock:close()
    end)
  end)

  -- ported
  it("test_server.py::UnixServerCleanupTests.test_unix_server_cleanup_prevented", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local srv = asyncio.start_unix_server(function() end, addr, { cleanup_socket = false })
      srv:close()
      assert.is_true(exists(addr))
    end)
  end)

  -- ported: asyncio.start_unix_server(cb, nil, {sock=}) (it once refused
  -- the nil path that goes with sock=)
  it("test_server.py::UnixServerCleanupTests.test_unix_server_sock_cleanup (start_unix_server with sock=)", function()
    H.run(function()
      local addr = tmp.path .. "/srv.sock"
      local sock = bound_unix_socket(addr)
      local srv = asyncio.start_unix_server(function() end, nil, { sock = sock })
      srv:close()
      assert.is_false(exists(addr))
      sock:close()
    end)
  end)
end)
