-- Ported from CPython Lib/test/test_asyncio/test_protocols.py
-- (python/cpython at commit 05989d36ae3e957187dcd0ec917fde0c89aa45f3).
--
-- Upstream checks that the methods of asyncio's protocol base classes do
-- nothing (return None).  A protocol here is a plain table whose methods
-- are all optional (docs/API.md): the counterpart of a base class whose
-- methods do nothing is an empty table.  So each test drives a real
-- transport of that kind through its whole life with an empty protocol
-- and checks that nothing was reported to the exception handler.  Each
-- test is named "test_protocols.py::<Class>.<test>" and says how it is
-- adapted.
--
-- Left out, not in our API:
--   ProtocolsAbsTests.test_buffered_protocol     there is no BufferedProtocol
--                                                (get_buffer / buffer_updated)
--   FeedDataToBufferedProtoTests (all)           the private
--                                                _feed_data_to_buffered_proto
--   the assertNotHasAttr(p, '__dict__') checks   __slots__ of the Python classes
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local socket = asyncio.socket

--- Waits (bounded) until pred() is true.
local function wait_until(pred)
  local loop = asyncio.get_running_loop()
  local deadline = loop:time() + H.GUARD
  while not pred() do
    assert(loop:time() < deadline, "condition not met in time")
    asyncio.sleep(0.001)
  end
end

--- A stream connection both of whose ends have an empty protocol: data
-- both ways, pause/resume of writing (a small high-water mark), EOF and
-- close.  Nothing must reach the exception handler.
local function stream_with_empty_protocols()
  H.run(function()
    local loop = asyncio.get_running_loop()
    local reports = H.capture_handler(loop)
    local server_transport
    local server = loop:create_server(function()
      local p = {}
      -- (the test needs the server's transport: a protocol that only
      -- keeps it, with no other method)
      function p.connection_made(_, t) server_transport = t end
      return p
    end, "127.0.0.1", 0)
    local client = loop:create_connection(function() return {} end, "127.0.0.1",
      server.sockets[1]:getsockname()[2])
    wait_until(function() return server_transport ~= nil end)
    server_transport:set_write_buffer_limits(1, 0)
    server_transport:write(string.rep("x", 1 << 20)) -- pause_writing, later resume_writing
    client:write("data")
    client:write_eof() -- eof_received on the server's end
    wait_until(function() return server_transport:get_write_buffer_size() == 0 end)
    server_transport:close()
    client:close()
    wait_until(function() return client:is_closing() and server_transport:is_closing() end)
    asyncio.sleep(0.01)
    server:close()
    assert.same({}, reports)
  end)
end

describe("test_protocols.py", function()
  local T = "test_protocols.py::ProtocolsAbsTests."

  it(T .. "test_base_protocol", function()
    -- adapted: connection_made, connection_lost, pause_writing and
    -- resume_writing of an empty table (see the header)
    stream_with_empty_protocols()
  end)

  it(T .. "test_protocol", function()
    -- adapted: also data_received and eof_received of an empty table
    stream_with_empty_protocols()
  end)

  it(T .. "test_datagram_protocol", function()
    -- adapted: a datagram endpoint with an empty protocol gets a datagram
    -- and an error (a refused send) and is closed
    H.run(function()
      local loop = asyncio.get_running_loop()
      local reports = H.capture_handler(loop)
      local probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      probe:bind { "127.0.0.1", 0 }
      local dead = probe:getsockname()
      probe:close()
      local receiver = loop:create_datagram_endpoint(function() return {} end, { local_addr = { "127.0.0.1", 0 } })
      local sender = loop:create_datagram_endpoint(function() return {} end,
        { remote_addr = receiver:get_extra_info("sockname") })
      sender:sendto("datagram")                  -- datagram_received
      local refused = loop:create_datagram_endpoint(function() return {} end, { remote_addr = dead })
      refused:sendto("to nobody")                -- error_received
      asyncio.sleep(0.05)
      for _, t in ipairs { receiver, sender, refused } do t:close() end -- connection_lost
      asyncio.sleep(0.01)
      assert.same({}, reports)
    end)
  end)

  it(T .. "test_subprocess_protocol", function()
    -- adapted: a child with its three pipes and an empty protocol writes
    -- to stdout and stderr and exits (connection_made, pipe_data_received,
    -- pipe_connection_lost, process_exited, connection_lost)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local reports = H.capture_handler(loop)
      local transport = loop:subprocess_exec(function() return {} end, "/bin/sh", "-c", "echo out; echo err >&2")
      wait_until(function() return transport:get_returncode() ~= nil end)
      assert.equal(0, transport:get_returncode())
      transport:close()
      asyncio.sleep(0.01)
      assert.same({}, reports)
    end)
  end)
end)
