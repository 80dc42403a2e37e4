-- Ported from Trio's src/trio/_tests/test_highlevel_generic.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: the recording streams are tables with the stream methods
-- (any such table is a stream here, DESIGN.md 4.4); aclose() is close(), a
-- plain call (docs/SEMANTICS.md "Stream close() is a plain call"), so the
-- record says "close".  Python's ValueError is the helpers' ValueError
-- class; the other close error, which Python keeps as the raised error's
-- __context__, is its field `context` (docs/SEMANTICS.md "StapledStream
-- close errors").
--
-- Ported: test_StapledStream.
-- Adapted: test_StapledStream_with_erroring_close (`context`, see above).
local trio = require "trio"
local H = require "conformance.trio_helpers"

-- A send stream that records the calls it gets.
local function RecordSendStream()
  local s = { record = {} }
  function s:send_all(data) self.record[#self.record + 1] = { "send_all", data } end
  function s:wait_send_all_might_not_block()
    self.record[#self.record + 1] = "wait_send_all_might_not_block"
  end
  function s:close() self.record[#self.record + 1] = "close" end
  return s
end

-- A receive stream that records the calls it gets and is always at EOF.
local function RecordReceiveStream()
  local s = { record = {} }
  function s:receive_some(max_bytes)
    self.record[#self.record + 1] = { "receive_some", max_bytes }
    return ""
  end
  function s:close() self.record[#self.record + 1] = "close" end
  return s
end

-- stream's close() records, then raises ValueError(message).
local function break_close(stream, message)
  local record_close = stream.close
  function stream:close()
    record_close(self)
    error(H.ValueError(message), 0)
  end
  return stream
end

describe("test_highlevel_generic.py", function()
  it("test_StapledStream", function()
    local send_stream = RecordSendStream()
    local receive_stream = RecordReceiveStream()
    local stapled = trio.StapledStream(send_stream, receive_stream)

    assert.equal(send_stream, stapled.send_stream)
    assert.equal(receive_stream, stapled.receive_stream)

    H.run(function()
      stapled:send_all("foo")
      stapled:wait_send_all_might_not_block()
      assert.same({ { "send_all", "foo" }, "wait_send_all_might_not_block" }, send_stream.record)
      send_stream.record = {}

      -- no send_eof on the send stream: send_eof closes it
      stapled:send_eof()
      assert.same({ "close" }, send_stream.record)
      send_stream.record = {}

      function send_stream:send_eof() self.record[#self.record + 1] = "send_eof" end
      stapled:send_eof()
      assert.same({ "send_eof" }, send_stream.record)
      send_stream.record = {}

      assert.same({}, receive_stream.record)
      stapled:receive_some(1234)
      assert.same({ { "receive_some", 1234 } }, receive_stream.record)
      assert.same({}, send_stream.record)
      receive_stream.record = {}

      stapled:close()
      assert.same({ "close" }, receive_stream.record)
      assert.same({ "close" }, send_stream.record)
    end)
  end)

  it("test_StapledStream_with_erroring_close", function()
    -- one close() failing does not keep the other from being called
    local stapled = trio.StapledStream(break_close(RecordSendStream(), "send error"),
      break_close(RecordReceiveStream(), "recv error"))
    H.run(function()
      local e = H.raises(H.ValueError, stapled.close, stapled)
      assert.is_true(e.message == "send error" or e.message == "recv error", e.message)
      assert.is_true(H.ValueError:is(e.context), tostring(e.context))
      assert.are_not.equal(e.message, e.context.message)
    end)
    assert.same({ "close" }, stapled.send_stream.record)
    assert.same({ "close" }, stapled.receive_stream.record)
  end)
end)
