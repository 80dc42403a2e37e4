-- trio.open_memory_channel: buffering, closing, cloning, iteration,
-- statistics, and no item lost or duplicated under cancellation.
local trio = require "trio"

-- Yields with sleep(0) until cond() holds (at most n times).
local function wait_until(cond, n)
  for _ = 1, n or 100 do
    if cond() then return end
    trio.sleep(0)
  end
  error("condition never became true", 2)
end

-- All items left in the channel, without blocking.
local function drain(recv)
  local out = {}
  while true do
    local ok, v = pcall(recv.receive_nowait, recv)
    if not ok then
      assert(trio.WouldBlock:is(v) or trio.EndOfChannel:is(v), tostring(v))
      return out
    end
    out[#out + 1] = v
  end
end

-- Appends v to t.  (Written as a call so that the index is computed after
-- a blocking call in v's expression returned, not before.)
local function push(t, v)
  t[#t + 1] = v
end

local function sorted(t)
  local c = { table.unpack(t) }
  table.sort(c)
  return c
end

describe("memory channel basics", function()
  it("carries values in FIFO order through a buffer", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(10)
      for i = 1, 5 do send:send(i) end
      local out = {}
      for _ = 1, 5 do push(out, recv:receive()) end
      return out
    end)
    assert.same({ 1, 2, 3, 4, 5 }, got)
  end)

  it("carries any Lua value, tables by identity", function()
    local same = trio.run(function()
      local send, recv = trio.open_memory_channel(1)
      local t = {}
      send:send(t)
      return recv:receive() == t
    end)
    assert.is_true(same)
  end)

  it("a rendezvous channel (0) blocks the sender until a receiver takes the item", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      trio.open_nursery(function(n)
        n:start_soon(function()
          send:send("x")
          log[#log + 1] = "send returned"
        end)
        trio.sleep(0.01)
        log[#log + 1] = "receiving"
        push(log, "got " .. recv:receive())
      end)
    end)
    assert.equal("receiving", log[1])
    table.sort(log)
    assert.same({ "got x", "receiving", "send returned" }, log)
  end)

  it("a receiver blocks until a value is sent", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      trio.open_nursery(function(n)
        n:start_soon(function() push(log, "got " .. recv:receive()) end)
        trio.sleep(0.01)
        log[#log + 1] = "sending"
        send:send("y")
      end)
    end)
    assert.same({ "sending", "got y" }, log)
  end)

  it("a full buffer blocks the sender until there is room", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(2)
      trio.open_nursery(function(n)
        n:start_soon(function()
          for i = 1, 3 do send:send(i) log[#log + 1] = "sent " .. i end
        end)
        trio.sleep(0.01)
        push(log, "blocked after " .. #log)
        push(log, "receive " .. recv:receive())
        trio.sleep(0.01)
      end)
    end)
    assert.equal(5, #log)
    assert.same({ "sent 1", "sent 2", "blocked after 2" }, { log[1], log[2], log[3] })
    assert.same({ "receive 1", "sent 3" }, sorted { log[4], log[5] })
  end)

  it("math.huge buffers never block", function()
    local n = trio.run(function()
      local send, recv = trio.open_memory_channel(math.huge)
      for i = 1, 10000 do send:send_nowait(i) end
      return #drain(recv)
    end)
    assert.equal(10000, n)
  end)

  it("ping-pong between two tasks", function()
    local total = trio.run(function()
      local s1, r1 = trio.open_memory_channel(0)
      local s2, r2 = trio.open_memory_channel(0)
      local sum = 0
      trio.open_nursery(function(n)
        n:start_soon(function()
          for _ = 1, 100 do s2:send(r1:receive() + 1) end
        end)
        for i = 1, 100 do
          s1:send(i)
          sum = sum + r2:receive()
        end
      end)
      return sum
    end)
    assert.equal(5050 + 100, total)
  end)

  it("waiting receivers are served in FIFO order", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      trio.open_nursery(function(n)
        for i = 1, 3 do
          n:start_soon(function() push(log, i .. ":" .. recv:receive()) end)
          wait_until(function() return recv:statistics().tasks_waiting_receive == i end)
        end
        for _, v in ipairs { "a", "b", "c" } do send:send(v) end
      end)
    end)
    assert.same({ "1:a", "2:b", "3:c" }, log)
  end)

  it("waiting senders are served in FIFO order", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local out = {}
      trio.open_nursery(function(n)
        for i = 1, 3 do
          n:start_soon(function() send:send(i) end)
          wait_until(function() return send:statistics().tasks_waiting_send == i end)
        end
        for _ = 1, 3 do push(out, recv:receive()) end
      end)
      return out
    end)
    assert.same({ 1, 2, 3 }, got)
  end)
end)

describe("memory channel *_nowait", function()
  it("send_nowait raises WouldBlock when the buffer is full", function()
    local e = trio.run(function()
      local send = trio.open_memory_channel(1)
      send:send_nowait(1)
      local ok, err = pcall(send.send_nowait, send, 2)
      assert(not ok)
      return err
    end)
    assert.is_true(trio.WouldBlock:is(e))
  end)

  it("send_nowait on a rendezvous channel without a receiver raises WouldBlock", function()
    local e = trio.run(function()
      local send = trio.open_memory_channel(0)
      return select(2, pcall(send.send_nowait, send, 1))
    end)
    assert.is_true(trio.WouldBlock:is(e))
  end)

  it("send_nowait hands the item to a waiting receiver of a rendezvous channel", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local v
      trio.open_nursery(function(n)
        n:start_soon(function() v = recv:receive() end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 1 end)
        send:send_nowait("direct")
      end)
      return v
    end)
    assert.equal("direct", got)
  end)

  it("receive_nowait raises WouldBlock on an empty channel", function()
    local e = trio.run(function()
      local _, recv = trio.open_memory_channel(5)
      return select(2, pcall(recv.receive_nowait, recv))
    end)
    assert.is_true(trio.WouldBlock:is(e))
  end)

  it("receive_nowait takes the item of a blocked sender", function()
    local got, sender_done = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local v, done
      trio.open_nursery(function(n)
        n:start_soon(function() send:send("from sender") done = true end)
        wait_until(function() return send:statistics().tasks_waiting_send == 1 end)
        v = recv:receive_nowait()
      end)
      return v, done
    end)
    assert.equal("from sender", got)
    assert.is_true(sender_done)
  end)
end)

describe("memory channel closing", function()
  it("receive raises EndOfChannel once senders closed and the buffer is drained", function()
    local got, e = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      send:send(1)
      send:send(2)
      send:close()
      local out = { recv:receive(), recv:receive() }
      local ok, err = pcall(recv.receive, recv)
      assert(not ok)
      return out, err
    end)
    assert.same({ 1, 2 }, got)
    assert.is_true(trio.EndOfChannel:is(e))
  end)

  it("a blocked receiver gets EndOfChannel when the last sender closes", function()
    local e = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local err
      trio.open_nursery(function(n)
        n:start_soon(function() err = select(2, pcall(recv.receive, recv)) end)
        trio.sleep(0.005)
        send:close()
      end)
      return err
    end)
    assert.is_true(trio.EndOfChannel:is(e))
  end)

  it("receive_nowait raises EndOfChannel after close", function()
    local e = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      send:close()
      return select(2, pcall(recv.receive_nowait, recv))
    end)
    assert.is_true(trio.EndOfChannel:is(e))
  end)

  it("sending when every receiver is closed raises BrokenResourceError", function()
    local e1, e2 = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      recv:close()
      return select(2, pcall(send.send, send, 1)), select(2, pcall(send.send_nowait, send, 1))
    end)
    assert.is_true(trio.BrokenResourceError:is(e1))
    assert.is_true(trio.BrokenResourceError:is(e2))
  end)

  it("a blocked sender gets BrokenResourceError when the last receiver closes", function()
    local e = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local err
      trio.open_nursery(function(n)
        n:start_soon(function() err = select(2, pcall(send.send, send, "x")) end)
        trio.sleep(0.005)
        recv:close()
      end)
      return err
    end)
    assert.is_true(trio.BrokenResourceError:is(e))
  end)

  it("using a closed handle raises ClosedResourceError", function()
    local errs = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      send:close()
      recv:close()
      return {
        select(2, pcall(send.send, send, 1)),
        select(2, pcall(send.send_nowait, send, 1)),
        select(2, pcall(recv.receive, recv)),
        select(2, pcall(recv.receive_nowait, recv)),
        select(2, pcall(send.clone, send)),
        select(2, pcall(recv.clone, recv)),
      }
    end)
    assert.equal(6, #errs)
    for i, e in ipairs(errs) do
      assert.is_true(trio.ClosedResourceError:is(e), i .. ": " .. tostring(e))
    end
  end)

  it("a blocked receiver whose own handle is closed gets ClosedResourceError", function()
    local e = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local err
      trio.open_nursery(function(n)
        n:start_soon(function() err = select(2, pcall(recv.receive, recv)) end)
        trio.sleep(0.005)
        recv:close()
      end)
      send:close()
      return err
    end)
    assert.is_true(trio.ClosedResourceError:is(e))
  end)

  it("close is idempotent", function()
    local ok = trio.run(function()
      local send, recv = trio.open_memory_channel(1)
      send:close()
      send:close()
      recv:close()
      recv:close()
      return true
    end)
    assert.is_true(ok)
  end)
end)

describe("memory channel clone", function()
  it("the channel ends only when every send clone is closed", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      local send2 = send:clone()
      send:send("a")
      send:close()
      send2:send("b")
      push(log, recv:receive())
      push(log, recv:receive())
      local ok = pcall(recv.receive_nowait, recv)
      log[#log + 1] = tostring(ok)
      send2:close()
      local _, e = pcall(recv.receive, recv)
      log[#log + 1] = trio.EndOfChannel:is(e) and "end" or tostring(e)
    end)
    assert.same({ "a", "b", "false", "end" }, log)
  end)

  it("the channel's state outlives its first send endpoint, which holds it", function()
    -- (channel.c keeps the state in the first send endpoint's block: the
    -- other endpoints hold that endpoint alive)
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      local send2 = send:clone()
      send:send("buffered")
      send:close()
      send = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      send2:send("after")
      local stats = recv:statistics()
      local out = { recv:receive(), recv:receive(), stats.current_buffer_used, stats.open_send_channels }
      local recv2 = recv:clone()
      recv:close()
      recv = nil -- luacheck: ignore 311
      collectgarbage()
      send2:send("via a clone")
      out[#out + 1] = recv2:receive()
      return out
    end)
    assert.same({ "buffered", "after", 2, 1, "via a clone" }, got)
  end)

  it("sending breaks only when every receive clone is closed", function()
    local first_ok, e = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      local recv2 = recv:clone()
      recv:close()
      local ok = pcall(send.send, send, 1)
      recv2:close()
      return ok, select(2, pcall(send.send, send, 2))
    end)
    assert.is_true(first_ok)
    assert.is_true(trio.BrokenResourceError:is(e))
  end)

  it("receive clones share one queue", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(5)
      local recv2 = recv:clone()
      send:send(1)
      send:send(2)
      return { recv2:receive(), recv:receive() }
    end)
    assert.same({ 1, 2 }, got)
  end)

  it("fan-in: several producers with clones, one consumer", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local out = {}
      trio.open_nursery(function(n)
        for p = 1, 3 do
          local s = send:clone()
          n:start_soon(function()
            for i = 1, 10 do s:send(p * 100 + i) end
            s:close()
          end)
        end
        send:close()
        for v in recv:iter() do out[#out + 1] = v end
      end)
      return out
    end)
    assert.equal(30, #got)
  end)
end)

describe("memory channel iter", function()
  it("yields every item and ends at close", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local out = {}
      trio.open_nursery(function(n)
        n:start_soon(function()
          for i = 1, 5 do send:send(i) end
          send:close()
        end)
        for v in recv:iter() do out[#out + 1] = v end
      end)
      return out
    end)
    assert.same({ 1, 2, 3, 4, 5 }, got)
  end)

  it("ends at once on a closed empty channel", function()
    local count = trio.run(function()
      local send, recv = trio.open_memory_channel(3)
      send:close()
      local c = 0
      for _ in recv:iter() do c = c + 1 end
      return c
    end)
    assert.equal(0, count)
  end)
end)

describe("memory channel statistics", function()
  it("reports buffer use, open handles and waiting tasks", function()
    local st, st2 = trio.run(function()
      local send, recv = trio.open_memory_channel(2)
      local clone = send:clone()
      send:send_nowait("x")
      local a = recv:statistics()
      local b
      trio.open_nursery(function(n)
        send:send_nowait("y")
        n:start_soon(function() send:send("z") end)
        wait_until(function() return send:statistics().tasks_waiting_send == 1 end)
        b = send:statistics()
        recv:receive()
      end)
      clone:close()
      return a, b
    end)
    assert.equal(1, st.current_buffer_used)
    assert.equal(2, st.max_buffer_size)
    assert.equal(2, st.open_send_channels)
    assert.equal(1, st.open_receive_channels)
    assert.equal(0, st.tasks_waiting_send)
    assert.equal(0, st.tasks_waiting_receive)
    assert.equal(2, st2.current_buffer_used)
    assert.equal(1, st2.tasks_waiting_send)
  end)

  it("counts waiting receivers and reports math.huge buffers", function()
    local st = trio.run(function()
      local send, recv = trio.open_memory_channel(math.huge)
      local s
      trio.open_nursery(function(n)
        n:start_soon(function() recv:receive() end)
        n:start_soon(function() recv:receive() end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 2 end)
        s = recv:statistics()
        send:send(1)
        send:send(2)
      end)
      return s
    end)
    assert.equal(2, st.tasks_waiting_receive)
    assert.equal(math.huge, st.max_buffer_size)
  end)

  it("counts closed handles", function()
    local st = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local s2 = send:clone()
      send:close()
      local r = s2:statistics()
      s2:close()
      recv:close()
      return r
    end)
    assert.equal(1, st.open_send_channels)
    assert.equal(1, st.open_receive_channels)
  end)
end)

describe("memory channels under cancellation", function()
  it("a cancelled receiver leaves the waiting list and loses nothing", function()
    local got = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      trio.move_on_after(0.005, function() recv:receive() end)
      assert(recv:statistics().tasks_waiting_receive == 0)
      local v
      trio.open_nursery(function(n)
        n:start_soon(function() v = recv:receive() end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 1 end)
        send:send("kept")
      end)
      return v
    end)
    assert.equal("kept", got)
  end)

  it("item handed to a receiver, then its cancel in the same tick: the item is not lost", function()
    local received = trio.run(function()
      local send, recv = trio.open_memory_channel(math.huge)
      local out = {}
      local scope_a = trio.CancelScope()
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope_a:run(function() push(out, recv:receive()) end)
        end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 1 end)
        n:start_soon(function() push(out, recv:receive()) end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 2 end)
        send:send_nowait(1)
        scope_a:cancel()
        send:send_nowait(2)
        trio.sleep(0.01)
        for _, v in ipairs(drain(recv)) do out[#out + 1] = v end
        n.cancel_scope:cancel()
      end)
      return out
    end)
    assert.same({ 1, 2 }, sorted(received))
  end)

  it("receiver cancelled, then an item sent in the same tick: the next receiver gets it", function()
    local log = {}
    trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local scope_a = trio.CancelScope()
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope_a:run(function() push(log, "A " .. recv:receive()) end)
        end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 1 end)
        n:start_soon(function() push(log, "B " .. recv:receive()) end)
        wait_until(function() return recv:statistics().tasks_waiting_receive == 2 end)
        scope_a:cancel()
        send:send_nowait("item")
      end)
    end)
    assert.same({ "B item" }, log)
  end)

  it("a cancelled sender on a rendezvous channel delivers nothing", function()
    local e, leftover = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local scope = trio.move_on_after(0.005, function() send:send("never") end)
      assert(scope.cancelled_caught)
      return select(2, pcall(recv.receive_nowait, recv)), send:statistics().tasks_waiting_send
    end)
    assert.is_true(trio.WouldBlock:is(e))
    assert.equal(0, leftover)
  end)

  it("sender's item taken, then its cancel in the same tick: delivered exactly once and send returns", function()
    local got, sender_log = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local slog = {}
      local scope_a = trio.CancelScope()
      local v
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope_a:run(function() send:send("once") slog[#slog + 1] = "send returned" end)
        end)
        wait_until(function() return send:statistics().tasks_waiting_send == 1 end)
        v = recv:receive_nowait()
        scope_a:cancel()
      end)
      return { v, select(2, pcall(recv.receive_nowait, recv)) }, slog
    end)
    assert.equal("once", got[1])
    assert.is_true(trio.WouldBlock:is(got[2]))
    assert.same({ "send returned" }, sender_log)
  end)

  it("sender cancelled, then a receive in the same tick: the item is not taken", function()
    local e, log = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local slog = {}
      local scope_a = trio.CancelScope()
      local err
      trio.open_nursery(function(n)
        n:start_soon(function()
          scope_a:run(function() send:send("dropped") slog[#slog + 1] = "send returned" end)
          slog[#slog + 1] = "cancelled=" .. tostring(scope_a.cancelled_caught)
        end)
        wait_until(function() return send:statistics().tasks_waiting_send == 1 end)
        scope_a:cancel()
        err = select(2, pcall(recv.receive_nowait, recv))
      end)
      return err, slog
    end)
    assert.is_true(trio.WouldBlock:is(e))
    assert.same({ "cancelled=true" }, log)
  end)

  it("stress: producers and consumers cancelled at random lose and duplicate nothing", function()
    local sent, received = trio.run(function()
      local send, recv = trio.open_memory_channel(0)
      local s, r = {}, {}
      trio.open_nursery(function(n)
        for p = 1, 4 do
          n:start_soon(function()
            for i = 1, 50 do
              local v = p * 1000 + i
              trio.move_on_after(((i * 7 + p) % 5) / 2000, function()
                send:send(v)
                s[#s + 1] = v
              end)
            end
          end)
        end
        for c = 1, 4 do
          n:start_soon(function()
            for i = 1, 80 do
              trio.move_on_after(((i * 3 + c) % 5) / 2000, function()
                push(r, recv:receive())
              end)
            end
          end)
        end
      end)
      return s, r
    end)
    assert.same(sorted(sent), sorted(received))
  end)
end)
