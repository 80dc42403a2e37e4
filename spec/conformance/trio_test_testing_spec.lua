-- Ported from Trio's src/trio/_tests/test_testing.py, its memory-stream
-- part (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: the memory streams' hooks are given in a table
-- ({send_all_hook=, wait_send_all_might_not_block_hook=, close_hook=})
-- where Trio takes them positionally, and are called plainly (calling an
-- async function is awaiting it).  aclose() and aclose_forcefully() are
-- close(), a plain call (docs/SEMANTICS.md "Stream close() is a plain
-- call"), so the checkpoint checks on aclose() are left out.
-- assert_checkpoints is the helpers' check that the task was rescheduled.
-- memory_stream_pump's max_bytes is its third positional argument.
--
-- Ported: test_MemoryRecvStream_closing, test_memory_stream_pump,
-- test_memory_stream_one_way_pair, test_memory_stream_pair,
-- test_memory_streams_with_generic_tests,
-- test_lockstep_streams_with_generic_tests,
-- test_open_stream_to_socket_listener (its IPv6 case where the host has
-- IPv6, as Trio's can_bind_ipv6).
-- Adapted: test_MemorySendStream and test_MemoryReceiveStream (hooks in a
-- table, see above).
-- Ported (the second describe): test_wait_all_tasks_blocked,
-- test_wait_all_tasks_blocked_with_timeouts (on the mock_clock fixture's
-- clock, H.mock_clock()), test_wait_all_tasks_blocked_with_cushion.
-- Not in this port (the rest of test_testing.py): test_Sequencer* (Sequencer
-- is not in our API),
-- test_assert_checkpoints / test_assert_no_checkpoints (no checkpoint
-- counters: docs/SEMANTICS.md), test__assert_raises and
-- test__UnboundeByteQueue (private helpers; the queue is exercised through
-- the memory streams here), test_trio_test (pytest fixtures).
local trio = require "trio"
local H = require "conformance.trio_helpers"
local net = require "support_net"

local testing, tsocket = trio.testing, trio.socket
local WouldBlock, BusyResourceError = trio.WouldBlock, trio.BusyResourceError
local ClosedResourceError, Cancelled = trio.ClosedResourceError, trio.Cancelled

describe("test_testing.py (memory streams)", function()
  it("test_MemorySendStream", function()
    H.run(function()
      local mss = testing.MemorySendStream()
      local function do_send_all(data) H.assert_checkpoints(mss.send_all, mss, data) end

      do_send_all("123")
      assert.equal("1", mss:get_data_nowait(1))
      assert.equal("23", mss:get_data_nowait())

      H.assert_checkpoints(mss.wait_send_all_might_not_block, mss)

      H.raises(WouldBlock, mss.get_data_nowait, mss)
      H.raises(WouldBlock, mss.get_data_nowait, mss, 10)

      do_send_all("456")
      assert.equal("456", H.assert_checkpoints(mss.get_data, mss))

      -- two send_all at once: one gets BusyResourceError, one succeeds
      -- (the error is counted, not raised, so that it cannot cancel the
      -- other)
      local resource_busy_count = 0
      local function do_send_all_count_resourcebusy()
        local ok, err = pcall(do_send_all, "xxx")
        if not ok then
          if not BusyResourceError:is(err) then error(err, 0) end
          resource_busy_count = resource_busy_count + 1
        end
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(do_send_all_count_resourcebusy)
        nursery:start_soon(do_send_all_count_resourcebusy)
      end)
      assert.equal(1, resource_busy_count)

      mss:close()
      assert.equal("xxx", mss:get_data())
      assert.equal("", mss:get_data())
      H.raises(ClosedResourceError, do_send_all, "---")

      -- hooks
      assert.is_nil(mss.send_all_hook)
      assert.is_nil(mss.wait_send_all_might_not_block_hook)
      assert.is_nil(mss.close_hook)

      local record = {}
      local mss2
      local function send_all_hook()
        -- the hook runs after send_all did its work (it can take the data)
        assert.equal("abc", mss2:get_data_nowait())
        record[#record + 1] = "send_all_hook"
      end
      local function wait_send_all_might_not_block_hook()
        record[#record + 1] = "wait_send_all_might_not_block_hook"
      end
      local function close_hook() record[#record + 1] = "close_hook" end
      mss2 = testing.MemorySendStream {
        send_all_hook = send_all_hook,
        wait_send_all_might_not_block_hook = wait_send_all_might_not_block_hook,
        close_hook = close_hook,
      }
      assert.equal(send_all_hook, mss2.send_all_hook)
      assert.equal(wait_send_all_might_not_block_hook, mss2.wait_send_all_might_not_block_hook)
      assert.equal(close_hook, mss2.close_hook)

      mss2:send_all("abc")
      mss2:wait_send_all_might_not_block()
      mss2:close() -- aclose_forcefully
      mss2:close()
      assert.same({ "send_all_hook", "wait_send_all_might_not_block_hook", "close_hook", "close_hook" }, record)
    end)
  end)

  it("test_MemoryReceiveStream", function()
    H.run(function()
      local mrs = testing.MemoryReceiveStream()
      local function do_receive_some(max_bytes)
        return H.assert_checkpoints(mrs.receive_some, mrs, max_bytes)
      end

      mrs:put_data("abc")
      assert.equal("a", do_receive_some(1))
      assert.equal("bc", do_receive_some(10))
      mrs:put_data("abc")
      assert.equal("abc", do_receive_some(nil))

      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(do_receive_some, 10)
          nursery:start_soon(do_receive_some, 10)
        end)
      end, BusyResourceError)

      assert.is_nil(mrs.receive_some_hook)

      mrs:put_data("def")
      mrs:put_eof()
      mrs:put_eof()

      assert.equal("def", do_receive_some(10))
      assert.equal("", do_receive_some(10))
      assert.equal("", do_receive_some(10))

      H.raises(ClosedResourceError, mrs.put_data, mrs, "---")

      local mrs2
      local function receive_some_hook() mrs2:put_data("xxx") end
      local record = {}
      local function close_hook() record[#record + 1] = "closed" end
      mrs2 = testing.MemoryReceiveStream { receive_some_hook = receive_some_hook, close_hook = close_hook }
      assert.equal(receive_some_hook, mrs2.receive_some_hook)
      assert.equal(close_hook, mrs2.close_hook)

      mrs2:put_data("yyy")
      assert.equal("yyyxxx", mrs2:receive_some(10))
      assert.equal("xxx", mrs2:receive_some(10))
      assert.equal("xxx", mrs2:receive_some(10))

      mrs2:put_data("zzz")
      mrs2.receive_some_hook = nil
      assert.equal("zzz", mrs2:receive_some(10))

      mrs2:put_data("lost on close")
      mrs2:close()
      assert.same({ "closed" }, record)

      H.raises(ClosedResourceError, mrs2.receive_some, mrs2, 10)
    end)
  end)

  it("test_MemoryRecvStream_closing", function()
    H.run(function()
      local mrs = testing.MemoryReceiveStream()
      -- closed with no data pending
      mrs:close()
      H.raises(ClosedResourceError, mrs.receive_some, mrs, 10)
      -- closing again is fine
      mrs:close()
      -- put_data now fails
      H.raises(ClosedResourceError, mrs.put_data, mrs, "123")

      local mrs2 = testing.MemoryReceiveStream()
      -- closed with data pending
      mrs2:put_data("xyz")
      mrs2:close()
      H.raises(ClosedResourceError, mrs2.receive_some, mrs2, 10)
    end)
  end)

  it("test_memory_stream_pump", function()
    H.run(function()
      local mss = testing.MemorySendStream()
      local mrs = testing.MemoryReceiveStream()

      -- nothing to move: nothing happens
      testing.memory_stream_pump(mss, mrs)

      mss:send_all("123")
      testing.memory_stream_pump(mss, mrs)
      assert.equal("123", mrs:receive_some(10))

      mss:send_all("456")
      assert.is_true(testing.memory_stream_pump(mss, mrs, 1))
      assert.equal("4", mrs:receive_some(10))
      assert.is_true(testing.memory_stream_pump(mss, mrs, 1))
      assert.is_true(testing.memory_stream_pump(mss, mrs, 1))
      assert.is_false(testing.memory_stream_pump(mss, mrs, 1))
      assert.equal("56", mrs:receive_some(10))

      mss:close()
      testing.memory_stream_pump(mss, mrs)
      assert.equal("", mrs:receive_some(10))
    end)
  end)

  it("test_memory_stream_one_way_pair", function()
    H.run(function()
      local s, r = testing.memory_stream_one_way_pair()
      assert.is_not_nil(s.send_all_hook)
      assert.is_nil(s.wait_send_all_might_not_block_hook)
      assert.is_not_nil(s.close_hook)
      assert.is_nil(r.receive_some_hook)
      s:send_all("123")
      assert.equal("123", r:receive_some(10))

      local function receiver(expected) assert.equal(expected, r:receive_some(10)) end

      -- fails if the pump is on r's receive_some_hook: it must be on s's
      -- send_all_hook
      trio.open_nursery(function(nursery)
        nursery:start_soon(receiver, "abc")
        testing.wait_all_tasks_blocked()
        s:send_all("abc")
      end)

      -- fails unless close_hook pumps
      trio.open_nursery(function(nursery)
        nursery:start_soon(receiver, "")
        testing.wait_all_tasks_blocked()
        s:close()
      end)

      s, r = testing.memory_stream_one_way_pair()
      trio.open_nursery(function(nursery)
        nursery:start_soon(receiver, "")
        testing.wait_all_tasks_blocked()
        s:close()
      end)

      s, r = testing.memory_stream_one_way_pair()
      local old = s.send_all_hook
      s.send_all_hook = nil
      s:send_all("456")

      local function cancel_after_idle(nursery)
        testing.wait_all_tasks_blocked()
        nursery.cancel_scope:cancel()
      end
      local function check_for_cancel()
        -- blocks until cancelled, although data was sent on s
        H.raises(Cancelled, r.receive_some, r, 10)
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(cancel_after_idle, nursery)
        nursery:start_soon(check_for_cancel)
      end)

      s.send_all_hook = old
      s:send_all("789")
      assert.equal("456789", r:receive_some(10))
    end)
  end)

  it("test_memory_stream_pair", function()
    H.run(function()
      local a, b = testing.memory_stream_pair()
      a:send_all("123")
      b:send_all("abc")
      assert.equal("123", b:receive_some(10))
      assert.equal("abc", a:receive_some(10))

      a:send_eof()
      assert.equal("", b:receive_some(10))

      local function sender()
        testing.wait_all_tasks_blocked()
        b:send_all("xyz")
      end
      local function receiver() assert.equal("xyz", a:receive_some(10)) end
      trio.open_nursery(function(nursery)
        nursery:start_soon(receiver)
        nursery:start_soon(sender)
      end)
    end)
  end)

  it("test_memory_streams_with_generic_tests", function()
    H.run(function()
      testing.check_one_way_stream(testing.memory_stream_one_way_pair, nil)
      testing.check_half_closeable_stream(testing.memory_stream_pair, nil)
    end)
  end)

  it("test_lockstep_streams_with_generic_tests", function()
    H.run(function()
      testing.check_one_way_stream(testing.lockstep_stream_one_way_pair, testing.lockstep_stream_one_way_pair)
      testing.check_two_way_stream(testing.lockstep_stream_pair, testing.lockstep_stream_pair)
    end)
  end)

  it("test_open_stream_to_socket_listener", function()
    local function check(listener)
      local ok, err = pcall(function()
        local client_stream <close> = testing.open_stream_to_socket_listener(listener)
        local server_stream <close> = trio.fail_after(5, listener.accept, listener)
        client_stream:send_all("x")
        assert.equal("x", trio.fail_after(5, server_stream.receive_some, server_stream, 1))
      end)
      listener:close()
      if not ok then error(err, 0) end
    end
    local function listening(family, addr)
      local sock = tsocket.socket(family)
      sock:bind(addr)
      sock:listen(10)
      return trio.SocketListener(sock)
    end
    H.run(function()
      -- bound to localhost
      check(listening(tsocket.AF_INET, { "127.0.0.1", 0 }))
      -- bound to the IPv4 wildcard (needs special handling)
      check(listening(tsocket.AF_INET, { "0.0.0.0", 0 }))
      -- bound to the IPv6 wildcard (needs special handling)
      if net.have_ipv6() then check(listening(tsocket.AF_INET6, { "::", 0 })) end
      -- bound to a Unix-domain socket
      local path = os.tmpname()
      os.remove(path)
      local ok, err = pcall(check, listening(tsocket.AF_UNIX, path))
      os.remove(path)
      if not ok then error(err, 0) end
    end)
  end)
end)

describe("test_testing.py (wait_all_tasks_blocked)", function()
  local wait_all_tasks_blocked = testing.wait_all_tasks_blocked

  it("test_wait_all_tasks_blocked", function()
    H.run(function()
      local record = {}
      local function busy_bee()
        for _ = 1, 10 do trio.lowlevel.checkpoint() end
        record[#record + 1] = "busy bee exhausted"
      end
      local function waiting_for_bee_to_leave()
        wait_all_tasks_blocked()
        record[#record + 1] = "quiet at last!"
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(busy_bee)
        nursery:start_soon(waiting_for_bee_to_leave)
        nursery:start_soon(waiting_for_bee_to_leave)
      end)
      assert.same({ "busy bee exhausted", "quiet at last!", "quiet at last!" }, record)

      -- check cancellation
      record = {}
      local function cancelled_while_waiting()
        local ok, e = pcall(wait_all_tasks_blocked)
        if not ok and Cancelled:is(e) then record[#record + 1] = "ok" end
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(cancelled_while_waiting)
        nursery.cancel_scope:cancel()
      end)
      assert.same({ "ok" }, record)
    end)
  end)

  it("test_wait_all_tasks_blocked_with_timeouts", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      local record = {}
      local function timeout_task()
        record[#record + 1] = "tt start"
        trio.sleep(5)
        record[#record + 1] = "tt finished"
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(timeout_task)
        wait_all_tasks_blocked()
        assert.same({ "tt start" }, record)
        mock_clock:jump(10)
        wait_all_tasks_blocked()
        assert.same({ "tt start", "tt finished" }, record)
      end)
    end)
  end)

  it("test_wait_all_tasks_blocked_with_cushion", function()
    H.run(function()
      local record = {}
      local function blink()
        record[#record + 1] = "blink start"
        trio.sleep(0.01)
        trio.sleep(0.01)
        trio.sleep(0.01)
        record[#record + 1] = "blink end"
      end
      local function wait_no_cushion()
        wait_all_tasks_blocked()
        record[#record + 1] = "wait_no_cushion end"
      end
      local function wait_small_cushion()
        wait_all_tasks_blocked(0.02)
        record[#record + 1] = "wait_small_cushion end"
      end
      local function wait_big_cushion()
        wait_all_tasks_blocked(0.03)
        record[#record + 1] = "wait_big_cushion end"
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(blink)
        nursery:start_soon(wait_no_cushion)
        nursery:start_soon(wait_small_cushion)
        nursery:start_soon(wait_small_cushion)
        nursery:start_soon(wait_big_cushion)
      end)
      assert.same({
        "blink start",
        "wait_no_cushion end",
        "blink end",
        "wait_small_cushion end",
        "wait_small_cushion end",
        "wait_big_cushion end",
      }, record)
    end)
  end)
end)
