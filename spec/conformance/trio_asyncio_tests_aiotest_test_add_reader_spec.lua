-- Ported from trio-asyncio tests/aiotest/test_add_reader.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation: socketpair() is trio.socket.socketpair() driven by hand
-- (support.raw_socketpair, as in spec/asyncio_loop_spec.lua), and
-- socket.socket() is trio.socket.socket(); add_reader/add_writer take the
-- fd number (getfd()).  rsock.recv(100) is a non-blocking receive of what
-- is there.
--
-- check_add_replace (test_add_reader_replace, test_add_writer_replace)
-- reads the loop's private selector and the private `_cancelled` flag of
-- the handles it holds.  Those assertions are translated into what they
-- mean for a user: the replaced callback is never called again, and after
-- remove the second one is not called either; the public ones
-- (remove returns true, then false) are kept as they are.
--
-- Left out: nothing.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_add_reader.py::"

local function fd_of(s) return math.tointeger(s:getfd()) end

local socketpair = support.raw_socketpair

-- recv(n) of a non-blocking socket: what is there, up to n bytes
local function recv(s, n)
  return s:receive(n) or ""
end

it(F .. "test_add_reader", function()
  H.with_loop(function(loop)
    local result = { received = nil }
    local rsock, wsock = socketpair()
    local ready = trio.Event()
    local ok, err = pcall(function()
      local function reader()
        local data = recv(rsock, 100)
        result.received = data
        loop:remove_reader(fd_of(rsock))
        ready:set()
      end

      local function writer()
        loop:remove_writer(fd_of(wsock))
        loop:call_soon(wsock.send, wsock, "abc")
      end

      loop:add_reader(fd_of(rsock), reader)
      loop:add_writer(fd_of(wsock), writer)

      ready:wait()
      assert.equal("abc", result.received)
    end)
    rsock:close()
    wsock:close()
    assert(ok, err)
  end)
end)

local function check_add_replace(event, loop)
  local add_sock, remove_sock
  if event == "reader" then
    add_sock, remove_sock = loop.add_reader, loop.remove_reader
  else
    add_sock, remove_sock = loop.add_writer, loop.remove_writer
  end

  local sock = trio.socket.socket()
  local ok, err = pcall(function()
    local calls = { func = 0, func2 = 0 }
    local function func() calls.func = calls.func + 1 end
    local function func2() calls.func2 = calls.func2 + 1 end
    local fd = sock:fileno()

    add_sock(loop, fd, func)
    add_sock(loop, fd, func2)
    -- handle1 is cancelled, handle2 is not
    ta.aio_as_trio(asyncio.sleep)(0.01)
    assert.equal(0, calls.func)

    local removed = remove_sock(loop, fd)
    assert.is_true(removed)
    -- handle2 is cancelled
    local seen = calls.func2
    ta.aio_as_trio(asyncio.sleep)(0.01)
    assert.equal(seen, calls.func2)
    assert.equal(0, calls.func)

    removed = remove_sock(loop, fd)
    assert.is_false(removed)
  end)
  sock:close()
  assert(ok, err)
end

it(F .. "test_add_reader_replace", function()
  H.with_loop(function(loop)
    check_add_replace("reader", loop)
  end)
end)

it(F .. "test_add_writer_replace", function()
  H.with_loop(function(loop)
    check_add_replace("writer", loop)
  end)
end)
