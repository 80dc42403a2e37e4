-- transport:write called from the transport's own protocol:data_received
-- (csrc/asyncio/transport.c takes its socket from the read path there,
-- without looking a field up): the common write goes out at once; a write
-- after write_eof() or close(), or of "", takes the same turns as from
-- anywhere else; argument errors name the first bad argument.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local socket = asyncio.socket
local run = net.aio_run

--- A transport on one end of a socket pair whose data_received calls
--- on_data(transport, data); returns the transport and the other end.
local function pair_with(loop, on_data, log)
  local a, b = socket.socketpair()
  local t = loop:create_connection(function() return {
    connection_made = function(self, tr) self.t = tr end,
    data_received = function(self, d) on_data(self.t, d) end,
    connection_lost = function(_, exc) log[#log + 1] = "lost:" .. tostring(exc and exc.code or exc) end,
  } end, nil, nil, { sock = a })
  return t, b
end

--- Everything the peer b receives until the end of the stream (bounded).
local function read_all(loop, b)
  local parts = {}
  while true do
    local d = asyncio.wait_for(function() return loop:sock_recv(b, 4096) end, 5)
    if d == "" then return table.concat(parts) end
    parts[#parts + 1] = d
  end
end

describe("transport:write from its own data_received", function()
  it("echoes each read at once, in order", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local log = {}
      local t, b = pair_with(loop, function(tr, d) tr:write("<" .. d .. ">") end, log)
      for i = 1, 3 do
        loop:sock_sendall(b, tostring(i))
        assert.equal("<" .. i .. ">", asyncio.wait_for(function() return loop:sock_recv(b, 100) end, 5))
      end
      assert.equal(0, t:get_write_buffer_size())
      t:close()
      assert.equal("", read_all(loop, b))
      b:close()
    end)
  end)

  it("after write_eof() raises RuntimeError into the exception handler; the peer sees the end", function()
    local ctxs = {}
    run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      local log = {}
      local t, b = pair_with(loop, function(tr, d)
        tr:write("first:" .. d)
        tr:write_eof()
        tr:write("never")
      end, log)
      loop:sock_sendall(b, "x")
      assert.equal("first:x", read_all(loop, b))
      assert.equal(1, #ctxs)
      assert.is_true(errors.RuntimeError:is(ctxs[1].exception), tostring(ctxs[1].exception))
      assert_has(tostring(ctxs[1].exception), "Cannot call write() after write_eof()")
      assert.is_true(t:is_closing())
      b:close()
    end)
  end)

  it("after close() is dropped, and an empty write is nothing", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local log = {}
      local t, b = pair_with(loop, function(tr, d)
        tr:write("")
        tr:write("kept:" .. d)
        tr:close()
        tr:write("dropped")
      end, log)
      loop:sock_sendall(b, "y")
      assert.equal("kept:y", read_all(loop, b))
      asyncio.sleep(0)
      assert.same({ "lost:nil" }, log)
      assert.is_true(t:is_closing())
      b:close()
    end)
  end)

  it("argument errors name the first bad argument", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local t, b = pair_with(loop, function() end, {})
      local write = t.write
      for _, data in ipairs({ 42, "data" }) do -- (named as the module's function)
        local err = errof(write, 42, data)
        assert_has(err, "bad argument #1 to '")
        assert_has(err, "(table expected, got number)")
      end
      assert_has(errof(write, t, {}), "bad argument #1 to 'write' (string expected, got table)")
      t:close()
      b:close()
    end)
  end)
end)
