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
