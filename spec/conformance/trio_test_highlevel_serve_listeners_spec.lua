-- Ported from Trio's src/trio/_tests/test_highlevel_serve_listeners.py
-- (python-trio/trio).
--
-- Translation: MemoryListener is a table with accept/close over a memory
-- channel of the server ends of trio.testing.memory_stream_pair (Trio
-- uses memory_stream_pair the same way); the listeners come back through
-- nursery:start.  It has no _accept_nowait, so serve_listeners takes one
-- connection per accept() with it, as Trio does (docs/SEMANTICS.md).
-- The accept error comes out in the serving nursery's exception group
-- (strict exception groups, as Trio's default).
-- Dropped: test_serve_listeners_accept_capacity_error (the capacity retry
-- is tested with a lowered fd limit in spec/trio_streams_spec.lua; here it
-- logs to stderr, not to a logger).
local trio = require "trio"

local function MemoryListener()
  local tx, rx = trio.open_memory_channel(math.huge)
  local listener = { closed = false, accepted = 0 }
  function listener.connect()
    assert(not listener.closed)
    local client, server = trio.testing.memory_stream_pair()
    tx:send(server)
    return client
  end
  function listener.accept(self)
    assert(not self.closed)
    local stream = rx:receive()
    self.accepted = self.accepted + 1
    return stream
  end
  function listener.close(self) self.closed = true end
  return listener
end

describe("test_highlevel_serve_listeners.py", function()
  it("test_serve_listeners_basic", function()
    local listeners = { MemoryListener(), MemoryListener() }
    local record = {}
    trio.run(function()
      local function handler(stream)
        stream:send_all("123")
        assert.equal("456", stream:receive_some(10))
        stream:close()
        record[#record + 1] = "handled"
      end
      trio.open_nursery(function(nursery)
        local got = nursery:start(trio.serve_listeners, handler, listeners)
        assert.equal(listeners, got)
        trio.open_nursery(function(clients)
          for _ = 1, 6 do
            for _, l in ipairs(listeners) do
              clients:start_soon(function()
                local s = l.connect()
                assert.equal("123", s:receive_some(10))
                s:send_all("456")
                s:close()
              end)
            end
          end
        end)
        trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope:cancel()
      end)
    end)
    assert.equal(12, #record)
    assert.equal(6, listeners[1].accepted)
    assert.equal(6, listeners[2].accepted)
  end)

  it("test_serve_listeners_accept_unrecognized_error", function()
    for _, make in ipairs({
      function() return trio.BusyResourceError("busy") end,
      function() return trio.ClosedResourceError("closed") end,
      function() return "some other error" end,
    }) do
      local err = make()
      local listener = MemoryListener()
      function listener.accept() error(err, 0) end
      local ok, got = pcall(trio.run, trio.serve_listeners, function() end, { listener })
      assert.is_false(ok)
      -- the serving nursery's strict exception group holds the error
      assert.equal(1, #got.exceptions)
      assert.equal(err, got.exceptions[1])
    end
  end)

  it("test_serve_listeners_connection_nursery", function()
    local listener = MemoryListener()
    local counts = trio.run(function()
      local seen = {}
      trio.open_nursery(function(handler_nursery)
        trio.open_nursery(function(nursery)
          nursery:start(trio.serve_listeners, function() trio.sleep_forever() end, { listener },
            { handler_nursery = handler_nursery })
          for _ = 1, 10 do nursery:start_soon(listener.connect) end
          trio.testing.wait_all_tasks_blocked()
          seen[1] = #handler_nursery.child_tasks
          handler_nursery.cancel_scope:cancel()
          nursery.cancel_scope:cancel()
        end)
      end)
      return seen
    end)
    assert.equal(10, counts[1])
  end)
end)
