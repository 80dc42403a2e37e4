-- Ported from Trio's src/trio/_tests/test_channel.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: aclose() and close() are both :close(); `async with chan`
-- and `with chan` are `local c <close> = chan`; `async for v in r` is
-- `for v in r:iter()`; Python's TypeError for open_memory_channel(1.0) is
-- tested with 1.5 (in Lua 1.0 is the integer 1).
-- Left out: the 17 as_safe_channel tests (test_as_safe_channel_*):
-- as_safe_channel turns a Python async generator into a channel, and its
-- tests are about async-generator machinery (aclose, GeneratorExit,
-- __anext__); Lua has no async generators and the API has no counterpart.
local trio = require "trio"
local H = require "conformance.trio_helpers"

local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local open_memory_channel = trio.open_memory_channel
local P = "_tests/test_channel.py::"

describe("Trio test_channel.py", function()
  it(P .. "test_channel", function()
    H.run(function()
      H.raises(H.any, open_memory_channel, 1.5)
      H.raises(H.msg("max_buffer_size must be >= 0"), open_memory_channel, -1)

      local s, r = open_memory_channel(2)
      assert.equal("string", type(tostring(s)))
      assert.equal("string", type(tostring(r)))

      s:send_nowait(1)
      H.assert_checkpoints(s.send, s, 2)
      H.raises(trio.WouldBlock, s.send_nowait, s, false)

      assert.equal(1, H.assert_checkpoints(r.receive, r))
      assert.equal(2, r:receive_nowait())
      H.raises(trio.WouldBlock, r.receive_nowait, r)

      s:send_nowait("last")
      s:close()
      H.raises(trio.ClosedResourceError, s.send, s, "too late")
      H.raises(trio.ClosedResourceError, s.send_nowait, s, "too late")
      H.raises(trio.ClosedResourceError, s.clone, s)
      s:close()

      assert.equal("last", r:receive_nowait())
      H.raises(trio.EndOfChannel, r.receive, r)
      r:close()
      H.raises(trio.ClosedResourceError, r.receive, r)
      H.raises(trio.ClosedResourceError, r.receive_nowait, r)
      r:close()
    end)
  end)

  it(P .. "test_553", function()
    H.run({ clock = H.mock_clock(0) }, function()
      local s, r = open_memory_channel(1)
      local timeout_scope = trio.move_on_after(10, r.receive, r)
      assert.is_true(timeout_scope.cancelled_caught)
      s:send("Test for PR #553")
    end)
  end)

  it(P .. "test_channel_multiple_producers", function()
    H.run(function()
      local function producer(send_channel, i)
        local sc <close> = send_channel
        for j = 3 * i, 3 * (i + 1) - 1 do sc:send(j) end
      end
      local send_channel, receive_channel = open_memory_channel(0)
      trio.open_nursery(function(nursery)
        do
          local sc <close> = send_channel
          for i = 0, 9 do nursery:start_soon(producer, sc:clone(), i) end
        end
        local got = {}
        for v in receive_channel:iter() do got[#got + 1] = v end
        table.sort(got)
        assert.same(H.range(0, 29), got)
      end)
    end)
  end)

  it(P .. "test_channel_multiple_consumers", function()
    local successful_receivers, received = {}, {}
    H.run(function()
      local function consumer(receive_channel, i)
        for v in receive_channel:iter() do
          successful_receivers[i] = true
          received[#received + 1] = v
        end
      end
      trio.open_nursery(function(nursery)
        local send_channel, receive_channel = open_memory_channel(1)
        local sc <close> = send_channel
        for i = 0, 4 do nursery:start_soon(consumer, receive_channel, i) end
        wait_all_tasks_blocked()
        for i = 0, 9 do sc:send(i) end
      end)
    end)
    assert.same(H.range(0, 4), H.keys(successful_receivers))
    assert.equal(10, #received)
    assert.same(H.range(0, 9), H.sorted(received))
  end)

  -- test_close_basics closes with aclose(), test_close_sync with close():
  -- both are :close() here, so both run the same scenario.
  for _, name in ipairs { "test_close_basics", "test_close_sync" } do
    it(P .. name, function()
      H.run(function()
        local function send_block(s, expect)
          H.raises(expect, s.send, s, false)
        end

        -- closing send -> other send gets ClosedResourceError
        local s, r = open_memory_channel(0)
        trio.open_nursery(function(nursery)
          nursery:start_soon(send_block, s, trio.ClosedResourceError)
          wait_all_tasks_blocked()
          s:close()
        end)
        -- and it's persistent
        H.raises(trio.ClosedResourceError, s.send_nowait, s, false)
        H.raises(trio.ClosedResourceError, s.send, s, false)
        -- and receive gets EndOfChannel
        H.raises(trio.EndOfChannel, r.receive_nowait, r)
        H.raises(trio.EndOfChannel, r.receive, r)

        -- closing receive -> send gets BrokenResourceError
        s, r = open_memory_channel(0)
        trio.open_nursery(function(nursery)
          nursery:start_soon(send_block, s, trio.BrokenResourceError)
          wait_all_tasks_blocked()
          r:close()
        end)
        H.raises(trio.BrokenResourceError, s.send_nowait, s, false)
        H.raises(trio.BrokenResourceError, s.send, s, false)

        -- closing receive -> other receive gets ClosedResourceError
        local function receive_block(rc)
          H.raises(trio.ClosedResourceError, rc.receive, rc)
        end
        local _, r2 = open_memory_channel(0)
        trio.open_nursery(function(nursery)
          nursery:start_soon(receive_block, r2)
          wait_all_tasks_blocked()
          r2:close()
        end)
        H.raises(trio.ClosedResourceError, r2.receive_nowait, r2)
        H.raises(trio.ClosedResourceError, r2.receive, r2)
      end)
    end)
  end

  it(P .. "test_receive_channel_clone_and_close", function()
    H.run(function()
      local s, r = open_memory_channel(10)
      local r2 = r:clone()
      local r3 = r:clone()
      s:send_nowait(false)
      r:close()
      do local _ <close> = r2 end
      H.raises(trio.ClosedResourceError, r.clone, r)
      H.raises(trio.ClosedResourceError, r2.clone, r2)
      -- can still send, r3 is still open
      s:send_nowait(false)
      r3:close()
      -- but now the receiver is really closed
      H.raises(trio.BrokenResourceError, s.send_nowait, s, false)
    end)
  end)

  it(P .. "test_close_multiple_send_handles", function()
    H.run(function()
      -- closing one send handle wakes only the senders on that handle
      local s1, r = open_memory_channel(0)
      local s2 = s1:clone()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() H.raises(trio.ClosedResourceError, s1.send, s1, "nope") end)
        nursery:start_soon(function() s2:send("ok") end)
        wait_all_tasks_blocked()
        s1:close()
        assert.equal("ok", r:receive())
      end)
    end)
  end)

  it(P .. "test_close_multiple_receive_handles", function()
    H.run(function()
      local s, r1 = open_memory_channel(0)
      local r2 = r1:clone()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() H.raises(trio.ClosedResourceError, r1.receive, r1) end)
        nursery:start_soon(function() assert.equal("ok", r2:receive()) end)
        wait_all_tasks_blocked()
        r1:close()
        s:send("ok")
      end)
    end)
  end)

  it(P .. "test_inf_capacity", function()
    H.run(function()
      local send, receive = open_memory_channel(math.huge)
      do
        local sc <close> = send
        for i = 0, 9 do sc:send_nowait(i) end
      end
      local got = {}
      for v in receive:iter() do got[#got + 1] = v end
      assert.same(H.range(0, 9), got)
    end)
  end)

  it(P .. "test_statistics", function()
    H.run(function()
      local s, r = open_memory_channel(2)
      assert.same(s:statistics(), r:statistics())
      local stats = s:statistics()
      assert.equal(0, stats.current_buffer_used)
      assert.equal(2, stats.max_buffer_size)
      assert.equal(1, stats.open_send_channels)
      assert.equal(1, stats.open_receive_channels)
      assert.equal(0, stats.tasks_waiting_send)
      assert.equal(0, stats.tasks_waiting_receive)
      assert.equal(0, stats.peak_buffer_used)

      s:send_nowait(false)
      assert.equal(1, s:statistics().current_buffer_used)
      assert.equal(1, s:statistics().peak_buffer_used)

      local s2 = s:clone()
      assert.equal(2, s:statistics().open_send_channels)
      s:close()
      assert.equal(1, s2:statistics().open_send_channels)

      local r2 = r:clone()
      assert.equal(2, s2:statistics().open_receive_channels)
      r2:close()
      assert.equal(1, s2:statistics().open_receive_channels)

      trio.open_nursery(function(nursery)
        s2:send_nowait(false) -- fill up the buffer
        assert.equal(2, s:statistics().current_buffer_used)
        assert.equal(2, s:statistics().peak_buffer_used)
        nursery:start_soon(s2.send, s2, false)
        nursery:start_soon(s2.send, s2, false)
        wait_all_tasks_blocked()
        assert.equal(2, s:statistics().tasks_waiting_send)
        nursery.cancel_scope:cancel()
      end)
      assert.equal(0, s:statistics().tasks_waiting_send)

      -- empty out the buffer again
      while pcall(r.receive_nowait, r) do end
      -- draining the buffer doesn't reset the high-water mark
      assert.equal(0, s:statistics().current_buffer_used)
      assert.equal(2, s:statistics().peak_buffer_used)

      trio.open_nursery(function(nursery)
        nursery:start_soon(r.receive, r)
        wait_all_tasks_blocked()
        assert.equal(1, s:statistics().tasks_waiting_receive)
        nursery.cancel_scope:cancel()
      end)
      assert.equal(0, s:statistics().tasks_waiting_receive)
    end)
  end)

  it(P .. "test_channel_fairness", function()
    H.run(function()
      -- we can take out what we just sent, and send again, when nobody waits
      local s, r = open_memory_channel(1)
      s:send_nowait(1)
      assert.equal(1, r:receive_nowait())
      s:send_nowait(2)
      assert.equal(2, r:receive_nowait())

      -- but a waiting receiver owns the item we send, even though we run first
      local result
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() result = r:receive() end)
        wait_all_tasks_blocked()
        s:send_nowait(2)
        H.raises(trio.WouldBlock, r.receive_nowait, r)
      end)
      assert.equal(2, result)

      -- and the same for send: a freed slot belongs to the waiting sender
      s, r = open_memory_channel(1)
      s:send_nowait(1)
      H.raises(trio.WouldBlock, s.send_nowait, s, false)
      trio.open_nursery(function(nursery)
        nursery:start_soon(s.send, s, 2)
        wait_all_tasks_blocked()
        assert.equal(1, r:receive_nowait())
        H.raises(trio.WouldBlock, s.send_nowait, s, 3)
        assert.equal(2, r:receive())
      end)
    end)
  end)

  it(P .. "test_unbuffered", function()
    H.run(function()
      local s, r = open_memory_channel(0)
      H.raises(trio.WouldBlock, r.receive_nowait, r)
      H.raises(trio.WouldBlock, s.send_nowait, s, 1)
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() H.assert_checkpoints(s.send, s, 1) end)
        assert.equal(1, H.assert_checkpoints(r.receive, r))
      end)
      H.raises(trio.WouldBlock, r.receive_nowait, r)
    end)
  end)
end)
