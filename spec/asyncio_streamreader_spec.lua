-- asyncio.StreamReader, the C object (csrc/asyncio/streamreader.c), fed by
-- hand: bytes across feeds and partial reads, flow control of its
-- transport, bad input, a second waiting read; and StreamWriter.drain on
-- transports and protocols other than asyncio's own (its fast path looks
-- at those two directly).  The CPython tests are in
-- spec/conformance/cpython_test_streams_spec.lua.
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

--- asyncio.run(fn), failing after 10 seconds instead of hanging.
local function run(fn)
  return asyncio.run(function()
    return asyncio.wait_for(asyncio.create_task(fn), 10)
  end)
end

--- A transport that records pause_reading/resume_reading.
local function fake_transport(log, pause_fails)
  return {
    pause_reading = function()
      log[#log + 1] = "pause"
      if pause_fails then error("no pausing here") end
    end,
    resume_reading = function() log[#log + 1] = "resume" end,
  }
end

describe("asyncio.StreamReader", function()
  it("keeps bytes in order across feeds, partial reads and reads that wait", function()
    local got = run(function()
      local r = asyncio.StreamReader(1 << 20)
      local out = {}
      r:feed_data("abcdef")
      out[#out + 1] = r:read(2) -- part of the one fed string
      r:feed_data("gh")          -- the rest joins the next feed
      out[#out + 1] = r:readexactly(3)
      out[#out + 1] = r:read(100)
      local reading = asyncio.create_task(function() return r:readexactly(250) end)
      asyncio.sleep(0)
      for i = 1, 5 do r:feed_data(tostring(i):rep(50)) end -- 250 bytes, over the first 256-byte block
      out[#out + 1] = reading:await()
      r:feed_data(("x"):rep(100000))
      r:feed_data("\nrest")
      out[#out + 1] = #r:readline()
      r:feed_eof()
      out[#out + 1] = r:read()
      out[#out + 1] = tostring(r:at_eof())
      return out
    end)
    assert.same({ "ab", "cde", "fgh", ("1"):rep(50) .. ("2"):rep(50) .. ("3"):rep(50) .. ("4"):rep(50)
      .. ("5"):rep(50), 100001, "rest", "true" }, got)
  end)

  it("pauses its transport above twice the limit and resumes it at the limit or less", function()
    local log = {}
    run(function()
      local r = asyncio.StreamReader(10)
      r:set_transport(fake_transport(log))
      r:feed_data(("a"):rep(20))
      log[#log + 1] = "fed 20"
      r:feed_data("b")
      log[#log + 1] = "fed 21"
      r:feed_data("c") -- already paused: not again
      assert.equal(("a"):rep(5), r:read(5)) -- 17 left: still above the limit
      log[#log + 1] = "read to 17"
      assert.equal(("a"):rep(7), r:readexactly(7)) -- 10 left
      log[#log + 1] = "read to 10"
      r:feed_data(("d"):rep(30))
      assert.equal(("a"):rep(8) .. "bc" .. ("d"):rep(30), r:read(100))
      log[#log + 1] = "read all"
    end)
    assert.same({ "fed 20", "pause", "fed 21", "read to 17", "resume", "read to 10", "pause", "resume", "read all" },
      log)
  end)

  it("forgets a transport whose pause_reading raised (as asyncio does)", function()
    local log = {}
    run(function()
      local r = asyncio.StreamReader(1)
      r:set_transport(fake_transport(log, true))
      r:feed_data("abc")
      r:feed_data("def")
      assert.equal("abcdef", r:read(10))
    end)
    assert.same({ "pause" }, log)
  end)

  it("refuses bad input with clear errors", function()
    run(function()
      local r = asyncio.StreamReader()
      assert_has(errof(r.feed_data, r, 42), "bad argument #1 to 'feed_data' (string expected, got number)")
      assert_has(errof(r.read, r, "x"), "bad argument #1 to 'read' (integer expected, got string)")
      assert_has(errof(r.read, r, 1.5), "bad argument #1 to 'read' (integer expected, got float)")
      assert_has(errof(r.readexactly, r, {}), "bad argument #1 to 'readexactly' (integer expected, got table)")
      assert_has(errof(r.readuntil, r, 5), "bad argument #1 to 'readuntil' (string expected, got number)")
      assert_has(errof(r.read, {}, 1), "bad argument #1 to 'read' (asyncio.StreamReader expected, got table)")
      assert_has(errof(r.at_eof, nil), "bad argument #1 to 'at_eof' (asyncio.StreamReader expected, got nil)")
      assert_has(errof(asyncio.StreamReader, 1.5), "Limit cannot be <= 0")
      r:set_transport({})
      local e = errof(r.set_transport, r, {})
      assert.is_true(errors.RuntimeError:is(e))
      assert_has(e.message, "Transport already set")
      r:feed_eof()
      e = errof(r.feed_data, r, "late")
      assert.is_true(errors.RuntimeError:is(e))
      assert_has(e.message, "feed_data after feed_eof")
      assert.equal("asyncio.StreamReader (0 bytes, eof)", tostring(r))
    end)
  end)

  it("refuses a second read while one waits, and the first still gets the bytes", function()
    local got = run(function()
      local r = asyncio.StreamReader()
      local first = asyncio.create_task(function() return r:read(10) end)
      asyncio.sleep(0)
      local e = errof(r.readexactly, r, 1)
      assert.is_true(errors.RuntimeError:is(e))
      assert_has(e.message, "readexactly() called while another coroutine is already waiting for incoming data")
      r:feed_data("data")
      return first:await()
    end)
    assert.equal("data", got)
  end)

  it("a read that starts between another's wake-up and its resumption is woken too (docs/SEMANTICS.md)", function()
    local got = run(function()
      local r = asyncio.StreamReader()
      local a = asyncio.create_task(function() return r:readexactly(1) end)
      asyncio.sleep(0) -- a waits
      local b = asyncio.create_task(function() return r:readexactly(2) end) -- runs before a resumes
      r:feed_data("x")
      asyncio.sleep(0) -- b waits for a second byte, a takes "x"
      asyncio.sleep(0)
      r:feed_data("yz") -- Python's a would have dropped b's waiter: b would never wake
      return { a:await(), b:await() }
    end)
    assert.same({ "x", "yz" }, got)
  end)

  it("a read cancelled after its data came, before it resumed, raises CancelledError and loses nothing", function()
    local got = run(function()
      local r = asyncio.StreamReader()
      local reading = asyncio.create_task(function() return r:read(100) end)
      asyncio.sleep(0) -- it waits
      r:feed_data("ab") -- wakes it: it is scheduled...
      reading:cancel() -- ...and cancelled before it runs
      local e = errof(reading.await, reading)
      r:feed_data("cd")
      return { tostring(asyncio.CancelledError:is(e)), r:read(100) }
    end)
    assert.same({ "true", "abcd" }, got)
  end)

  it("raises outside an asyncio task, consuming nothing", function()
    local r
    run(function()
      r = asyncio.StreamReader()
      r:feed_data("kept")
    end)
    local e = errof(r.read, r, 2)
    assert_has(tostring(e), "StreamReader:read")
    assert.equal("asyncio.StreamReader (4 bytes)", tostring(r))
  end)
end)

describe("asyncio.StreamWriter:drain on other transports and protocols", function()
  it("goes through their methods: is_closing, then _drain_helper", function()
    local log = {}
    run(function()
      local closing = false
      local transport = { is_closing = function() log[#log + 1] = "is_closing"; return closing end }
      local protocol = { _drain_helper = function() log[#log + 1] = "drain_helper" end }
      local w = asyncio.StreamWriter(transport, protocol, nil)
      w:drain()
      closing = true
      w:drain() -- closing: a sleep(0) first, then the helper
    end)
    assert.same({ "is_closing", "drain_helper", "is_closing", "drain_helper" }, log)
  end)

  it("raises the reader's exception, and ConnectionResetError once the connection is lost", function()
    run(function()
      local r = asyncio.StreamReader()
      local p = asyncio.StreamReaderProtocol(r)
      local t = { is_closing = function() return false end }
      p:connection_made(t)
      local w = asyncio.StreamWriter(t, p, r)
      w:drain() -- nothing to wait for
      p:connection_lost(nil)
      local e = errof(w.drain, w)
      assert.is_true(errors.ConnectionResetError:is(e))
      assert_has(e.message, "Connection lost")
      local r2 = asyncio.StreamReader()
      local w2 = asyncio.StreamWriter(t, asyncio.StreamReaderProtocol(r2), r2)
      local boom = errors.RuntimeError("boom")
      r2:set_exception(boom)
      assert.equal(boom, errof(w2.drain, w2))
    end)
  end)
end)

--- run(fn) with a loopback connection: fn(client_reader, client_writer,
-- server_reader, server_writer, server_protocol); everything is closed
-- afterwards.
local function with_connection(fn, protocol_factory)
  return run(function()
    local loop = asyncio.get_running_loop()
    local accepted = loop:create_future()
    local server = asyncio.start_server(function(r, w)
      accepted:set_result({ r, w })
      asyncio.sleep(1e9) -- keeps the connection: fn closes it
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local cr, cw
    if protocol_factory then
      cr = asyncio.StreamReader()
      local protocol = protocol_factory(cr)
      local transport = loop:create_connection(function() return protocol end, "127.0.0.1", port)
      cw = asyncio.StreamWriter(transport, protocol, cr, loop)
    else
      cr, cw = asyncio.open_connection("127.0.0.1", port)
    end
    local sr, sw = table.unpack(accepted:await())
    local ok, res = pcall(fn, cr, cw, sr, sw)
    cw:close()
    sw:close()
    server:close()
    if not ok then error(res, 0) end
    return res
  end)
end

--- Waits (at most 5 s) until the reader holds n bytes.
local function buffered(reader, n)
  local want = ("(%d bytes"):format(n)
  for _ = 1, 5000 do
    if tostring(reader):find(want, 1, true) then return end
    asyncio.sleep(0.001)
  end
  error(("the reader never held %d bytes: %s"):format(n, tostring(reader)))
end

--- Whether fn() let another task run (it suspended its caller).
local function suspends(fn)
  local ran = false
  asyncio.create_task(function() ran = true end)
  fn()
  local did = ran
  asyncio.sleep(0)
  return did
end

-- The transport hands what it receives to a StreamReaderProtocol's reader
-- without calling data_received in Lua, and StreamWriter.drain returns in
-- C when there is nothing to wait for (csrc/asyncio/transport.c): the
-- behaviour must be asyncio's all the same.
describe("asyncio streams over a connection", function()
  it("read and readexactly take buffered bytes without suspending, across received chunks", function()
    local got = with_connection(function(cr, _, _, sw)
      local out = {}
      sw:write("hello")
      out[#out + 1] = cr:read(100) -- waits for them
      sw:write("abc")
      buffered(cr, 3)
      sw:write("defg") -- a second chunk: joins the first in the reader
      buffered(cr, 7)
      local data
      local waited = suspends(function() data = cr:readexactly(5) end)
      out[#out + 1] = data
      out[#out + 1] = tostring(waited)
      waited = suspends(function() data = cr:read(100) end)
      out[#out + 1] = data
      out[#out + 1] = tostring(waited)
      local reading = asyncio.create_task(function() return cr:readexactly(6) end)
      asyncio.sleep(0)
      for _, part in ipairs { "12", "34", "56" } do -- a read over three arrivals
        sw:write(part)
        asyncio.sleep(0.01)
      end
      out[#out + 1] = reading:await()
      return out
    end)
    assert.same({ "hello", "abcde", "false", "fg", "false", "123456" }, got)
  end)

  it("drain returns without suspending while nothing is to wait for, and waits while paused", function()
    local got = with_connection(function(_, cw, sr, _)
      local out = {}
      cw:write("x")
      out[#out + 1] = tostring(suspends(function() cw:drain() end))
      cw.transport:set_write_buffer_limits(1)
      local chunk = ("y"):rep(65536)
      local sent = 0
      while not cw._protocol._paused do -- the peer does not read: the buffer fills
        cw:write(chunk)
        sent = sent + #chunk
        asyncio.sleep(0)
        assert.is_true(sent < 64 * 1024 * 1024, "pause_writing never came")
      end
      local drained = false
      local draining = asyncio.create_task(function()
        cw:drain()
        drained = true
      end)
      asyncio.sleep(0.05)
      -- not drained while still paused (the kernel's loopback buffers can
      -- grow and take the rest meanwhile on a slow run, which resumes it)
      out[#out + 1] = tostring(drained and cw._protocol._paused)
      local received = #sr:readexactly(1)
      while received < sent + 1 do received = received + #sr:read(1 << 20) end
      draining:await()
      out[#out + 1] = tostring(drained)
      out[#out + 1] = tostring(suspends(function() cw:drain() end)) -- resumed: at once again
      return out
    end)
    assert.same({ "false", "false", "true", "false" }, got)
  end)

  -- The C drain knows the state of the writer that asyncio.StreamWriter
  -- bound to its reader without reading the protocol's fields: a second
  -- writer over the same stream, a protocol paused by hand and a transport
  -- assigned by hand must all behave as the Lua drain.
  it("drain: a second writer over the same stream, a paused protocol, a transport assigned by hand", function()
    local got = with_connection(function(cr, cw)
      local out = {}
      local cw2 = asyncio.StreamWriter(cw.transport, cw._protocol, cr, asyncio.get_running_loop())
      out[#out + 1] = tostring(suspends(function() cw:drain() end))
      out[#out + 1] = tostring(suspends(function() cw2:drain() end))
      cw._protocol:pause_writing()
      local done = {}
      local tasks = {}
      for i, w in ipairs { cw, cw2 } do
        tasks[i] = asyncio.create_task(function()
          w:drain()
          done[i] = true
        end)
      end
      asyncio.sleep(0.01)
      out[#out + 1] = tostring(done[1]) .. " " .. tostring(done[2]) -- both wait
      cw._protocol:resume_writing()
      tasks[1]:await()
      tasks[2]:await()
      out[#out + 1] = tostring(done[1]) .. " " .. tostring(done[2])
      local transport, asked = cw2.transport, 0
      cw2.transport = { is_closing = function()
        asked = asked + 1
        return false
      end }
      cw2:drain()
      cw2.transport = transport
      cw2:drain()
      out[#out + 1] = tostring(asked)
      return out
    end)
    assert.same({ "false", "false", "nil nil", "true true", "1" }, got)
  end)

  -- StreamWriter.write writes to the bound writer's socket in C; every
  -- other case must be self.transport:write(data) all the same.
  it("write: bad data, empty data, a second writer, a transport assigned by hand, after write_eof", function()
    local got = with_connection(function(cr, cw, sr)
      local out = {}
      out[#out + 1] = tostring(errof(cw.write, cw, 42))
      out[#out + 1] = tostring(errof(cw.write, cw))
      cw:write("")
      cw:write("ab")
      local cw2 = asyncio.StreamWriter(cw.transport, cw._protocol, cr, asyncio.get_running_loop())
      cw2:write("cd") -- the bound one now
      cw:write("ef") -- no longer bound: through its transport
      out[#out + 1] = sr:readexactly(6)
      local transport, written = cw.transport, {}
      cw.transport = { write = function(self, data) written[#written + 1] = tostring(self == cw.transport) .. data end }
      cw:write("gh")
      cw.transport = transport
      out[#out + 1] = table.concat(written, ",")
      cw:write_eof()
      local e = errof(cw2.write, cw2, "ij")
      out[#out + 1] = tostring(errors.RuntimeError:is(e)) .. " " .. e.message
      out[#out + 1] = sr:read(100) .. "|" .. tostring(sr:at_eof())
      return out
    end)
    assert.same({ "bad argument #1 to 'write' (string expected, got number)",
      "bad argument #1 to 'write' (string expected, got nil)", "abcdef", "truegh",
      "true Cannot call write() after write_eof()", "|true" }, got)
  end)

  it("drain raises the reader's exception; while closing it lets the loop run, then raises once lost", function()
    local writer
    local got = with_connection(function(cr, cw)
      local out = {}
      writer = cw
      local boom = errors.RuntimeError("boom")
      cr:set_exception(boom)
      out[#out + 1] = tostring(errof(cw.drain, cw) == boom)
      cr:set_exception(nil)
      cw:drain()
      cw:close() -- nothing buffered: connection_lost comes in the next batch
      local ran = false
      asyncio.create_task(function() ran = true end)
      local e = errof(cw.drain, cw) -- closing: a sleep(0), then the protocol is lost
      out[#out + 1] = tostring(ran)
      out[#out + 1] = tostring(errors.ConnectionResetError:is(e))
      return out
    end)
    assert.same({ "true", "true", "true" }, got)
    assert_has(tostring(errof(writer.drain, writer)), "StreamWriter:drain")
  end)

  it("a StreamReaderProtocol subclass's own data_received is called for each arrival", function()
    local seen = {}
    local got = with_connection(function(cr, _, _, sw)
      sw:write("ping")
      return cr:readexactly(8)
    end, function(reader)
      local p = asyncio.StreamReaderProtocol(reader)
      local base = getmetatable(p)
      local Sub = setmetatable({}, { __index = base })
      Sub.__index = Sub
      function Sub:data_received(data)
        seen[#seen + 1] = data
        base.data_received(self, data .. data)
      end
      return setmetatable(p, Sub)
    end)
    assert.equal("pingping", got)
    assert.same({ "ping" }, seen)
  end)

  it("a reader cancelled while data arrives loses nothing: the next read gets it", function()
    local got = with_connection(function(cr, _, _, sw)
      local reading = asyncio.create_task(function() return cr:readexactly(4) end)
      asyncio.sleep(0)
      sw:write("ab")
      buffered(cr, 2) -- not enough: the read waits again
      reading:cancel()
      local e = errof(reading.await, reading)
      sw:write("cd")
      return { tostring(asyncio.CancelledError:is(e)), cr:readexactly(4) }
    end)
    assert.same({ "true", "abcd" }, got)
  end)

  it("data fed after the reader's EOF goes to the loop's exception handler and closes the transport", function()
    local got = with_connection(function(cr, cw, _, sw)
      local contexts = {}
      asyncio.get_running_loop():set_exception_handler(function(_, ctx) contexts[#contexts + 1] = ctx end)
      cr:feed_eof()
      sw:write("late")
      local lost = errof(cw.wait_closed, cw) -- the connection is lost with the error
      return { #contexts, tostring(errors.RuntimeError:is(contexts[1] and contexts[1].exception)),
        tostring(lost == contexts[1].exception), contexts[1].message, tostring(cw.transport:is_closing()) }
    end)
    assert.same({ 1, "true", "true", "protocol.data_received() call failed.", "true" }, got)
  end)
end)
