-- Ported from trio-asyncio tests/aiotest/test_network.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Upstream disables test_tcp_hello with a `return` at its top; it is
-- ported with its whole body.  Translation:
-- the echo server (TcpServer, a thread upstream) is a Trio task on
-- trio.socket, and it listens on a free port (port 0) instead of 8888 so
-- that runs cannot collide; the protocol is a table of methods (DESIGN 4.4);
-- the final wait is for the stop that the protocol's connection_lost makes
-- (upstream's own stop().wait() can return before the EOF is seen).
--
-- Left out: nothing.
local trio = require "trio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_network.py::"

local function TcpEchoClientProtocol(message, loop)
  local proto = { message = message, loop = loop, state = "new", received = nil }
  function proto:connection_made(transport)
    self.state = "ping"
    transport:write(self.message)
  end
  function proto:data_received(data)
    self.state = "pong"
    self.received = data
  end
  function proto:connection_lost()
    self.state = "closed"
    self.loop:stop()
  end
  return proto
end

-- TcpServer.run: accept one client, echo one message, close
local function tcp_server(host, event, task_status)
  local tsock = trio.socket
  local sock = tsock.socket(tsock.AF_INET, tsock.SOCK_STREAM)
  local ok, err = pcall(function()
    sock:setsockopt(tsock.SOL_SOCKET, tsock.SO_REUSEADDR, 1)
    sock:bind { host, 0 }
    sock:listen(1)
    task_status:started(sock:getsockname()[2])
    event:set()
    local client = sock:accept()
    local ok2, err2 = pcall(function()
      local message = client:recv(100)
      client:send(message)
    end)
    client:close()
    if not ok2 then error(err2, 0) end
  end)
  sock:close()
  if not ok then error(err, 0) end
end

it(F .. "test_tcp_hello", function()
  H.with_loop(function(loop)
    local host = "127.0.0.1"
    local message = "Hello World!"

    local event = trio.Event()
    trio.open_nursery(function(n)
      local port = n:start(tcp_server, host, event)
      event:wait()

      local proto = TcpEchoClientProtocol(message, loop)
      ta.run_aio_coroutine(function()
        return loop:create_connection(function() return proto end, host, port)
      end)
      assert.are_not.equal("new", proto.state)

      -- upstream stops the loop here and waits; the protocol's
      -- connection_lost stops it too, once the server has closed: waiting
      -- for that stop is what makes the state "closed" (bounded by the
      -- helper's timeout)
      loop:wait_stopped()
      assert.equal("closed", proto.state)
      assert.equal(message, proto.received)
    end)
  end)
end)
