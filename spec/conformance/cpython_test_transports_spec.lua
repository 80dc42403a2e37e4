-- Ported from CPython Lib/test/test_asyncio/test_transports.py
-- (python/cpython at commit 0795053e6c5580729ea73e154ba3c927ef106acb).
--
-- Upstream tests asyncio's abstract transport classes; there are none
-- here (a transport is what create_connection and friends return), so
-- the checks that concern every transport run on a real TCP transport
-- over loopback.  Each test is named "test_transports.py::TransportTests.<test>"
-- and says how it is adapted.
--
-- Left out, not in our API (no abstract Transport, DatagramTransport or
-- SubprocessTransport class to instantiate):
--   test_ctor_extra_is_none          the private _extra of a bare Transport()
--   test_not_implemented, test_dgram_not_implemented,
--   test_subprocess_transport_not_implemented
--                                    NotImplementedError of the abstract methods
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

--- fn(transport, server_received) with a client transport connected to a
-- server whose protocol collects what it receives; closed afterwards.
local function with_transport(fn)
  H.run(function()
    local loop = asyncio.get_running_loop()
    local received, eof = {}, loop:create_future()
    local server = loop:create_server(function()
      return {
        data_received = function(_, data) received[#received + 1] = data end,
        eof_received = function() eof:set_result(table.concat(received)) end,
      }
    end, "127.0.0.1", 0)
    local transport = loop:create_connection(function() return {} end, "127.0.0.1",
      server.sockets[1]:getsockname()[2])
    H.try_finally(fn, function()
      transport:close()
      server:close()
    end, transport, eof)
  end)
end

describe("test_transports.py", function()
  local T = "test_transports.py::TransportTests."

  it(T .. "test_get_extra_info", function()
    -- adapted: a real transport's extra info (its peername) instead of
    -- one given to the constructor; an unknown name gives nil, or the
    -- default given
    with_transport(function(transport)
      assert.equal("127.0.0.1", transport:get_extra_info("peername")[1])
      assert.is_nil(transport:get_extra_info("unknown"))
      local default = {}
      assert.equal(default, transport:get_extra_info("unknown", default))
    end)
  end)

  it(T .. "test_writelines", function()
    -- adapted: the peer receives the lines joined, in order (upstream sees
    -- one call of a mocked write with the joined bytes); Lua has no
    -- bytearray or memoryview: three strings
    with_transport(function(transport, eof)
      transport:writelines { "line1", "line2", "line3" }
      transport:write_eof()
      assert.equal("line1line2line3", asyncio.wait_for(eof, 5))
    end)
  end)
end)
