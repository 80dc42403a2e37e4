-- A stream transport's read path hands the bytes of a StreamReaderProtocol
-- straight to its StreamReader (csrc/asyncio/transport.c keeps the reader
-- in the transport's core when the protocol is set): the reader gets them
-- in order, a protocol set later gets its own reader's share, and a reader
-- that is not a StreamReader is fed through its feed_data method.
local asyncio = require "asyncio"
local net = require "support_net"
local errof = require("support").errof

local socket = asyncio.socket
local run = net.aio_run

--- A transport on one end of a socket pair with protocol; returns the
--- transport and the other end.
local function transport_with(loop, protocol)
  local a, b = socket.socketpair()
  local t = loop:create_connection(function() return protocol end, nil, nil, { sock = a })
  return t, b
end

--- Reads from reader until it holds n bytes (bounded).
local function read_n(reader, n)
  return asyncio.wait_for(function() return reader:readexactly(n) end, 5)
end

describe("a stream transport feeding a StreamReaderProtocol", function()
  it("gives the reader every read, in order", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local reader = asyncio.StreamReader()
      local t, b = transport_with(loop, asyncio.StreamReaderProtocol(reader))
      for i = 1, 5 do loop:sock_sendall(b, "chunk" .. i .. ";") end
      assert.equal("chunk1;chunk2;chunk3;chunk4;chunk5;", read_n(reader, 35))
      b:close()
      assert.equal("", asyncio.wait_for(function() return reader:read() end, 5))
      assert.is_true(reader:at_eof())
      t:close()
    end)
  end)

  it("after set_protocol, feeds the new protocol's reader and no longer the old one", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local first, second = asyncio.StreamReader(), asyncio.StreamReader()
      local t, b = transport_with(loop, asyncio.StreamReaderProtocol(first))
      loop:sock_sendall(b, "one")
      assert.equal("one", read_n(first, 3))
      local p2 = asyncio.StreamReaderProtocol(second)
      t:set_protocol(p2)
      p2:connection_made(t)
      loop:sock_sendall(b, "two")
      assert.equal("two", read_n(second, 3))
      local e = errof(asyncio.wait_for, function() return first:read(10) end, 0.05)
      assert.is_true(asyncio.TimeoutError:is(e), tostring(e))
      b:close()
      assert.equal("", asyncio.wait_for(function() return second:read() end, 5))
      assert.is_false(first:at_eof())
      t:close()
    end)
  end)

  it("feeds a reader that is not a StreamReader through its feed_data", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local got, eof = {}, loop:create_future()
      local fake = {
        set_transport = function() end,
        feed_data = function(_, d) got[#got + 1] = d end,
        feed_eof = function() eof:set_result(true) end,
      }
      local t, b = transport_with(loop, asyncio.StreamReaderProtocol(fake))
      loop:sock_sendall(b, "abc")
      b:close()
      asyncio.wait_for(eof, 5)
      assert.equal("abc", table.concat(got))
      t:close()
    end)
  end)
end)
