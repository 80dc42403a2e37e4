-- A write on a connected stream socket goes to write(2) directly
-- (csrc/io/stream.c writes_directly), any other through libuv's
-- uv_try_write: both give the same results and the same errors.
local trio = require "trio"
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local support = require "support"
local errof = support.errof

local K = core.socket_constants()

-- Both ends of a TCP connection (trio.socket sockets: one connected, one
-- accepted), in a Trio run bounded to 5 s.
local function with_pair(fn)
  return trio.run(function()
    return trio.fail_after(5, function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local client = trio.open_tcp_stream("127.0.0.1", listener.socket:getsockname()[2])
      local server = listener:accept()
      listener:close()
      return fn(client.socket, server.socket)
    end)
  end)
end

describe("stream writes", function()
  it("both ends of a connection (connected and accepted) write, in order, all of it", function()
    with_pair(function(a, b)
      local big = ("z"):rep(3 * 1024 * 1024) -- more than the socket takes at once: the rest is queued
      trio.open_nursery(function(n)
        n:start_soon(function()
          a:send("one")
          a:send(big)
          a:send("two")
        end)
        local want, got = 6 + #big, {}
        local len = 0
        while len < want do
          local d = b:recv(65536)
          got[#got + 1] = d
          len = len + #d
        end
        local all = table.concat(got)
        assert.equal("one", all:sub(1, 3))
        assert.is_true(all:sub(4, 3 + #big) == big)
        assert.equal("two", all:sub(-3))
      end)
      b:send("back")
      assert.equal("back", a:recv(10))
      a:close()
      b:close()
    end)
  end)

  it("after the peer reset the connection, a write raises an OSError (EPIPE or ECONNRESET)", function()
    local e = with_pair(function(a, b)
      a:setsockopt(K.SOL_SOCKET, K.SO_LINGER, string.pack("ii", 1, 0))
      a:close() -- RST
      trio.sleep(0.05)
      local err = errof(b.send, b, "x")
      b:close()
      return err
    end)
    assert.is_true(errors.OSError:is(e), tostring(e))
    assert.is_true(e.code == "EPIPE" or e.code == "ECONNRESET", tostring(e.code))
  end)

  it("a read that failed (reset) makes the next write raise EPIPE, as libuv does", function()
    local e = with_pair(function(a, b)
      a:setsockopt(K.SOL_SOCKET, K.SO_LINGER, string.pack("ii", 1, 0))
      a:close() -- RST
      assert.is_true(errors.ConnectionResetError:is(errof(b.recv, b, 10)))
      local err = errof(b.send, b, "x")
      b:close()
      return err
    end)
    assert.is_true(errors.BrokenPipeError:is(e), tostring(e))
    assert.equal("EPIPE", e.code)
  end)

  it("a socket that is not connected: OSError, nothing written", function()
    local e = trio.run(function()
      local s = core.socket(K.AF_INET, K.SOCK_STREAM)
      s:bind { "127.0.0.1", 0 }
      local err = errof(s.send, s, "x")
      s:close()
      return err
    end)
    assert.is_true(errors.OSError:is(e), tostring(e))
  end)
end)
