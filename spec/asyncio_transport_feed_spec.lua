-- The read path of a transport whose protocol is a StreamReaderProtocol
-- feeds its StreamReader without the protocol (csrc/asyncio/transport.c
-- feed_cached_reader); when the reader refuses the data (fed EOF already),
-- the protocol's data_received is called as for any protocol, and its
-- error (RuntimeError from feed_data) is reported with that protocol and
-- closes the transport; in debug mode (a protected call) the same.
local asyncio = require "asyncio"
local net = require "support_net"

local socket = asyncio.socket
local run = net.aio_run

describe("a transport feeding a StreamReaderProtocol's reader", function()
  for _, debug in ipairs { false, true } do
    it("whose reader had feed_eof: data_received raises, reported with the protocol, the transport closed (debug "
      .. tostring(debug) .. ")", function()
      run(function()
        local loop = asyncio.get_running_loop()
        loop:set_debug(debug)
        local reported = loop:create_future()
        loop:set_exception_handler(function(_, ctx)
          if not reported:done() then reported:set_result(ctx) end
        end)
        local reader = asyncio.StreamReader()
        local protocol = asyncio.StreamReaderProtocol(reader)
        local a, b = socket.socketpair()
        local t = loop:create_connection(function() return protocol end, nil, nil, { sock = a })
        loop:sock_sendall(b, "first")
        assert.equal("first", asyncio.wait_for(function() return reader:readexactly(5) end, 5))
        reader:feed_eof()
        loop:sock_sendall(b, "late")
        local ctx = asyncio.wait_for(reported, 5)
        assert.equal("protocol.data_received() call failed.", ctx.message)
        assert.equal(protocol, ctx.protocol)
        assert.equal(t, ctx.transport)
        assert.matches("feed_data after feed_eof", tostring(ctx.exception), 1, true)
        assert.is_true(t:is_closing())
        b:close()
        loop:set_debug(false)
      end)
    end)
  end

  it("a reader that is not a StreamReader, replaced by set_protocol with a StreamReaderProtocol: each gets its share",
    function()
      run(function()
        local loop = asyncio.get_running_loop()
        local got = {}
        local plain = { data_received = function(_, d) got[#got + 1] = d end }
        local a, b = socket.socketpair()
        local t = loop:create_connection(function() return plain end, nil, nil, { sock = a })
        loop:sock_sendall(b, "to plain")
        asyncio.wait_for(function() while #got == 0 do asyncio.sleep(0.001) end end, 5)
        local reader = asyncio.StreamReader()
        local p2 = asyncio.StreamReaderProtocol(reader)
        t:set_protocol(p2)
        p2:connection_made(t)
        loop:sock_sendall(b, "to reader")
        assert.equal("to reader", asyncio.wait_for(function() return reader:readexactly(9) end, 5))
        assert.equal("to plain", table.concat(got))
        b:close()
        t:close()
      end)
    end)
end)
