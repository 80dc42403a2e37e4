-- A stream's read buffer (csrc/io/stream.c) once the peer's end of the
-- stream is read: nothing more can come, so an empty buffer goes back to the
-- engine's spares at once instead of staying with the socket until it is
-- closed (a server whose connections all closed together held 1 KiB each).
local trio = require "trio"
local core = require "trio_asyncio.core"

describe("a stream's read buffer", function()
  it("goes back to the engine's spares as soon as the end of the stream is read", function()
    local N = 20
    local s0, s1, got = nil, nil, {}
    trio.run(function()
      trio.fail_after(5, function()
        local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
        local port = listener.socket:getsockname()[2]
        local clients, servers = {}, {}
        for i = 1, N do
          clients[i] = trio.open_tcp_stream("127.0.0.1", port)
          servers[i] = listener:accept()
        end
        trio.open_nursery(function(nursery)
          for i = 1, N do
            nursery:start_soon(function() got[i] = servers[i]:receive_some() end)
          end
          trio.testing.wait_all_tasks_blocked()
          s0 = core.debug_ids().spare_rbufs
          for i = 1, N do clients[i]:close() end
        end)
        s1 = core.debug_ids().spare_rbufs -- the server streams are still open
        for i = 1, N do servers[i]:close() end
        listener:close()
      end)
    end)
    for i = 1, N do assert.equal("", got[i]) end
    -- Each end's read takes a spare buffer (or a new one) and gives it back,
    -- so the next end's read takes the same one: the spares are never
    -- fewer than before, and at least one.  Before, each of the N streams
    -- kept the buffer of its last read until it was closed.
    assert.is_true(s1 >= s0 and s1 >= 1, ("spare buffers %d before the ends were read, %d after"):format(s0, s1))
  end)
end)
