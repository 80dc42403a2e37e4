-- MemorySendChannel:send and MemoryReceiveChannel:receive check their
-- endpoint and shape their arguments in one step (channel.c op_endpoint):
-- a wrong endpoint (of another class, or any userdata of the same size),
-- a missing value, nil and extra arguments.
local trio = require "trio"

-- Runs fn(send, recv) on a rendezvous channel inside a run; returns
-- pcall's results of it.
local function in_run(fn)
  return trio.run(function()
    local send, recv = trio.open_memory_channel(0)
    return pcall(fn, send, recv)
  end)
end

-- Runs body(send, recv, nursery, out) in a nursery of a run, on a
-- rendezvous channel; returns the table out it filled.
local function with_channel(body)
  return trio.run(function()
    local send, recv = trio.open_memory_channel(0)
    local out = {}
    trio.open_nursery(function(nursery) body(send, recv, nursery, out) end)
    return out
  end)
end

describe("memory channel send/receive arguments", function()
  it("send refuses a receive channel as its endpoint", function()
    local ok, err = in_run(function(send, recv) return send.send(recv, 1) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to '[%w_.]*send' %(trio_asyncio.MemorySendChannel expected, got "
      .. "trio_asyncio.MemoryReceiveChannel%)", tostring(err))
  end)

  it("receive refuses a send channel, a table and nothing as its endpoint", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local out = {}
      for _, self in ipairs({ send, {}, 42 }) do
        local ok, err = pcall(recv.receive, self)
        out[#out + 1] = { ok, tostring(err) }
      end
      local ok, err = pcall(recv.receive)
      out[#out + 1] = { ok, tostring(err) }
      return out
    end)
    assert.is_false(got[1][1])
    assert.matches("MemoryReceiveChannel expected, got trio_asyncio.MemorySendChannel", got[1][2])
    assert.is_false(got[2][1])
    assert.matches("MemoryReceiveChannel expected, got table", got[2][2])
    assert.is_false(got[3][1])
    assert.matches("MemoryReceiveChannel expected, got number", got[3][2])
    assert.is_false(got[4][1])
    assert.matches("MemoryReceiveChannel expected, got no value", got[4][2])
  end)

  it("send and receive refuse userdata of other classes, of the endpoint's size or not", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local sock = trio.socket.socket() -- a socket object is as big as an endpoint
      local out = {}
      for _, self in ipairs({ sock, trio.lowlevel.ParkingLot(), io.stdout }) do
        local ok, err = pcall(send.send, self, 1)
        out[#out + 1] = { ok, tostring(err) }
        ok, err = pcall(recv.receive, self)
        out[#out + 1] = { ok, tostring(err) }
      end
      sock:close()
      return out
    end)
    assert.equal(6, #got)
    for i, r in ipairs(got) do
      assert.is_false(r[1])
      local class = i % 2 == 1 and "MemorySendChannel" or "MemoryReceiveChannel"
      assert.matches(class .. " expected, got ", r[2], 1, true)
    end
  end)

  it("send without a value is an error, before anything is handed over", function()
    local got = with_channel(function(send, recv, nursery, out)
      nursery:start_soon(function() out.received = recv:receive() end)
      trio.testing.wait_all_tasks_blocked()
      out.ok, out.err = pcall(send.send, send)
      out.waiting = send:statistics().tasks_waiting_receive
      send:send("after")
    end)
    assert.is_false(got.ok)
    assert.matches("bad argument #2 to '[%w_.]*send' %(value expected%)", tostring(got.err))
    assert.equal(1, got.waiting)
    assert.equal("after", got.received)
  end)

  it("send carries an explicit nil, from a parked sender and to a parked receiver", function()
    local got = with_channel(function(send, recv, nursery, out)
      nursery:start_soon(function()
        out[1] = table.pack(recv:receive()) -- the sender parked first
        out[2] = table.pack(recv:receive()) -- parks: the sender comes later
      end)
      send:send(nil)
      trio.testing.wait_all_tasks_blocked()
      out.waiting = send:statistics().tasks_waiting_receive
      send:send(nil)
    end)
    assert.same({ n = 1 }, got[1])
    assert.same({ n = 1 }, got[2])
    assert.equal(1, got.waiting)
  end)

  it("send drops extra arguments: a parked receiver gets exactly the value", function()
    local got = with_channel(function(send, recv, nursery, out)
      nursery:start_soon(function() out.values = table.pack(recv:receive("ignored", "too")) end)
      trio.testing.wait_all_tasks_blocked()
      send:send(7, 8, 9)
    end)
    assert.same({ n = 1, 7 }, got.values)
  end)

  it("a parked sender given extra arguments hands over exactly its value", function()
    local got = with_channel(function(send, recv, nursery, out)
      nursery:start_soon(function() send:send("v", "x", "y") end)
      trio.testing.wait_all_tasks_blocked()
      out.values = table.pack(recv:receive())
    end)
    assert.same({ n = 1, "v" }, got.values)
  end)
end)
