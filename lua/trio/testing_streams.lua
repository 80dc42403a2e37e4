--- trio.testing's stream tools: in-memory streams (memory_stream_pair,
-- lockstep_stream_pair and their parts), open_stream_to_socket_listener,
-- and Trio's conformance checks for streams (check_one_way_stream,
-- check_two_way_stream, check_half_closeable_stream).  Loaded by
-- lua/trio.lua: install(trio, testing).
--
-- A stream here is any table with the stream methods: send_all(data),
-- wait_send_all_might_not_block(), receive_some([max_bytes]), close(),
-- and send_eof() for half-closeable ones.  close() is a plain call.
local errors = require "trio.errors"

local ClosedResourceError, BrokenResourceError = errors.ClosedResourceError, errors.BrokenResourceError
local BusyResourceError, WouldBlock = errors.BusyResourceError, errors.WouldBlock

local argerror = errors.argerror

local check_max_bytes = errors.check_max_bytes

local function check_data(data, fname)
  if type(data) ~= "string" then argerror(1, fname, "string expected, got " .. type(data)) end
end

return function(trio, testing)
  local lowlevel = trio.lowlevel
  local checkpoint = lowlevel.checkpoint

  -- Runs fn(...) with a busy flag: a second task inside at once gets
  -- BusyResourceError with msg.
  local function conflict_detector(msg)
    local busy = false
    return function(fn, ...)
      if busy then error(BusyResourceError(msg), 3) end
      busy = true
      local r = table.pack(pcall(fn, ...))
      busy = false
      if not r[1] then error(r[2], 0) end
      return table.unpack(r, 2, r.n)
    end
  end

  -- -------------------------------------------------------------------
  -- an unbounded byte queue

  local ByteQueue = {}
  ByteQueue.__index = ByteQueue

  local function new_queue()
    return setmetatable({ chunks = {}, size = 0, closed = false, lot = lowlevel.ParkingLot(),
      fetch = conflict_detector("another task is already fetching data") }, ByteQueue)
  end

  function ByteQueue:close()
    self.closed = true
    self.lot:unpark_all()
  end

  function ByteQueue:close_and_wipe()
    self.chunks, self.size = {}, 0
    self:close()
  end

  function ByteQueue:put(data)
    if self.closed then error(ClosedResourceError("virtual connection closed"), 0) end
    if #data > 0 then
      self.chunks[#self.chunks + 1] = data
      self.size = self.size + #data
    end
    self.lot:unpark_all()
  end

  function ByteQueue:take(max_bytes)
    if self.size == 0 then return "" end
    local all = table.concat(self.chunks)
    max_bytes = max_bytes or #all
    local chunk = all:sub(1, max_bytes)
    local rest = all:sub(max_bytes + 1)
    self.chunks = rest ~= "" and { rest } or {}
    self.size = #rest
    return chunk
  end

  function ByteQueue:get_nowait(max_bytes)
    return self.fetch(function()
      check_max_bytes(max_bytes, "get_data_nowait")
      if not self.closed and self.size == 0 then error(WouldBlock(), 0) end
      return self:take(max_bytes)
    end)
  end

  function ByteQueue:get(max_bytes)
    return self.fetch(function()
      check_max_bytes(max_bytes, "get_data")
      if not self.closed and self.size == 0 then self.lot:park() else checkpoint() end
      return self:take(max_bytes)
    end)
  end

  -- -------------------------------------------------------------------
  -- MemorySendStream, MemoryReceiveStream

  local MemorySendStream = { __name = "trio.testing.MemorySendStream" }
  MemorySendStream.__index = MemorySendStream

  --- MemorySendStream{send_all_hook=, wait_send_all_might_not_block_hook=, close_hook=}
  function testing.MemorySendStream(hooks)
    hooks = hooks or {}
    return setmetatable({
      _busy = conflict_detector("another task is using this stream"),
      _outgoing = new_queue(),
      send_all_hook = hooks.send_all_hook,
      wait_send_all_might_not_block_hook = hooks.wait_send_all_might_not_block_hook,
      close_hook = hooks.close_hook,
    }, MemorySendStream)
  end

  function MemorySendStream:send_all(data)
    check_data(data, "send_all")
    return self._busy(function()
      checkpoint()
      checkpoint()
      self._outgoing:put(data)
      if self.send_all_hook then self.send_all_hook() end
    end)
  end

  function MemorySendStream:wait_send_all_might_not_block()
    return self._busy(function()
      checkpoint()
      checkpoint()
      self._outgoing:put("")
      if self.wait_send_all_might_not_block_hook then self.wait_send_all_might_not_block_hook() end
    end)
  end

  function MemorySendStream:close()
    self._outgoing:close()
    if self.close_hook then self.close_hook() end
  end
  MemorySendStream.__close = MemorySendStream.close

  --- get_data([max_bytes]): what was sent (waits for some; "" once closed)
  function MemorySendStream:get_data(max_bytes) return self._outgoing:get(max_bytes) end
  function MemorySendStream:get_data_nowait(max_bytes) return self._outgoing:get_nowait(max_bytes) end

  local MemoryReceiveStream = { __name = "trio.testing.MemoryReceiveStream" }
  MemoryReceiveStream.__index = MemoryReceiveStream

  --- MemoryReceiveStream{receive_some_hook=, close_hook=}
  function testing.MemoryReceiveStream(hooks)
    hooks = hooks or {}
    return setmetatable({
      _busy = conflict_detector("another task is using this stream"),
      _incoming = new_queue(),
      _closed = false,
      receive_some_hook = hooks.receive_some_hook,
      close_hook = hooks.close_hook,
    }, MemoryReceiveStream)
  end

  function MemoryReceiveStream:receive_some(max_bytes)
    check_max_bytes(max_bytes, "receive_some")
    return self._busy(function()
      checkpoint()
      checkpoint()
      if self._closed then error(ClosedResourceError("this stream was already closed"), 0) end
      if self.receive_some_hook then self.receive_some_hook() end
      local data = self._incoming:get(max_bytes)
      if self._closed then error(ClosedResourceError("another task closed this stream"), 0) end
      return data
    end)
  end

  function MemoryReceiveStream:close()
    self._closed = true
    self._incoming:close_and_wipe()
    if self.close_hook then self.close_hook() end
  end
  MemoryReceiveStream.__close = MemoryReceiveStream.close

  function MemoryReceiveStream:put_data(data) self._incoming:put(data) end
  function MemoryReceiveStream:put_eof() self._incoming:close() end

  --- memory_stream_pump(send, receive [, max_bytes]) -> true if it moved
  -- data (or EOF) from the send stream's buffer to the receive stream
  function testing.memory_stream_pump(send_stream, receive_stream, max_bytes)
    local ok, data = pcall(send_stream.get_data_nowait, send_stream, max_bytes)
    if not ok then
      if WouldBlock:is(data) then return false end
      error(data, 0)
    end
    local pok, err = pcall(function()
      if data == "" then receive_stream:put_eof() else receive_stream:put_data(data) end
    end)
    if not pok then
      if ClosedResourceError:is(err) then error(BrokenResourceError("MemoryReceiveStream was closed"), 0) end
      error(err, 0)
    end
    return true
  end

  --- memory_stream_one_way_pair() -> send, receive: what is sent is
  -- available at once, without limit
  function testing.memory_stream_one_way_pair()
    local send_stream = testing.MemorySendStream()
    local recv_stream = testing.MemoryReceiveStream()
    local function pump() testing.memory_stream_pump(send_stream, recv_stream) end
    send_stream.send_all_hook = pump
    send_stream.close_hook = pump
    return send_stream, recv_stream
  end

  local function stapled_pair(one_way)
    local s1, r1 = one_way()
    local s2, r2 = one_way()
    return trio.StapledStream(s1, r2), trio.StapledStream(s2, r1)
  end

  --- memory_stream_pair() -> two connected StapledStreams
  function testing.memory_stream_pair() return stapled_pair(testing.memory_stream_one_way_pair) end

  -- -------------------------------------------------------------------
  -- lockstep streams: no buffering at all

  local Lockstep = {}
  Lockstep.__index = Lockstep

  local function new_lockstep()
    return setmetatable({ data = "", sender_closed = false, receiver_closed = false,
      receiver_waiting = false, waiters = lowlevel.ParkingLot(),
      send_busy = conflict_detector("another task is already sending"),
      recv_busy = conflict_detector("another task is already receiving") }, Lockstep)
  end

  function Lockstep:something_happened() self.waiters:unpark_all() end

  function Lockstep:wait_for(fn)
    while not fn() and not self.sender_closed and not self.receiver_closed do
      self.waiters:park()
    end
    checkpoint()
  end

  function Lockstep:send_all(data)
    check_data(data, "send_all")
    return self.send_busy(function()
      if self.sender_closed then error(ClosedResourceError("this stream was already closed"), 0) end
      if self.receiver_closed then error(BrokenResourceError("the receiving end was closed"), 0) end
      self.data = self.data .. data
      self:something_happened()
      self:wait_for(function() return self.data == "" end)
      if self.sender_closed then error(ClosedResourceError("another task closed this stream"), 0) end
      if self.data ~= "" and self.receiver_closed then
        error(BrokenResourceError("the receiving end was closed"), 0)
      end
    end)
  end

  function Lockstep:wait_send_all_might_not_block()
    return self.send_busy(function()
      if self.sender_closed then error(ClosedResourceError("this stream was already closed"), 0) end
      if self.receiver_closed then
        checkpoint()
        return
      end
      self:wait_for(function() return self.receiver_waiting end)
      if self.sender_closed then error(ClosedResourceError("another task closed this stream"), 0) end
    end)
  end

  function Lockstep:receive_some(max_bytes)
    check_max_bytes(max_bytes, "receive_some")
    return self.recv_busy(function()
      if self.receiver_closed then error(ClosedResourceError("this stream was already closed"), 0) end
      self.receiver_waiting = true
      self:something_happened()
      local ok, err = pcall(self.wait_for, self, function() return self.data ~= "" end)
      self.receiver_waiting = false
      if not ok then error(err, 0) end
      if self.receiver_closed then error(ClosedResourceError("another task closed this stream"), 0) end
      if self.data ~= "" then
        local n = max_bytes or #self.data
        local got = self.data:sub(1, n)
        self.data = self.data:sub(n + 1)
        self:something_happened()
        return got
      end
      return ""
    end)
  end

  local LockstepSend = { __name = "trio.testing.LockstepSendStream" }
  LockstepSend.__index = LockstepSend
  function LockstepSend:close() self._q.sender_closed = true; self._q:something_happened() end
  function LockstepSend:send_all(data) return self._q:send_all(data) end
  function LockstepSend:wait_send_all_might_not_block() return self._q:wait_send_all_might_not_block() end
  LockstepSend.__close = LockstepSend.close

  local LockstepReceive = { __name = "trio.testing.LockstepReceiveStream" }
  LockstepReceive.__index = LockstepReceive
  function LockstepReceive:close() self._q.receiver_closed = true; self._q:something_happened() end
  function LockstepReceive:receive_some(max_bytes) return self._q:receive_some(max_bytes) end
  LockstepReceive.__close = LockstepReceive.close

  --- lockstep_stream_one_way_pair() -> send, receive: send_all returns
  -- only once the receiver has taken everything
  function testing.lockstep_stream_one_way_pair()
    local q = new_lockstep()
    return setmetatable({ _q = q }, LockstepSend), setmetatable({ _q = q }, LockstepReceive)
  end

  function testing.lockstep_stream_pair() return stapled_pair(testing.lockstep_stream_one_way_pair) end

  -- -------------------------------------------------------------------
  -- open_stream_to_socket_listener

  --- open_stream_to_socket_listener(listener) -> a SocketStream connected
  -- to it (a wildcard address is reached through loopback)
  function testing.open_stream_to_socket_listener(listener)
    local tsocket = trio.socket
    if type(listener) ~= "table" or not tsocket._is_socket(listener.socket) then
      argerror(1, "open_stream_to_socket_listener", "SocketListener expected")
    end
    local sock = listener.socket
    local addr = sock:getsockname()
    local family = sock.family
    if family ~= tsocket.AF_UNIX then
      if addr[1] == "0.0.0.0" then addr = { "127.0.0.1", addr[2] } end
      if addr[1] == "::" then addr = { "::1", addr[2] } end
    end
    local client = tsocket.socket(family, sock.type, sock.proto)
    local ok, err = pcall(client.connect, client, addr)
    if not ok then
      client:close()
      error(err, 0)
    end
    return trio.SocketStream(client)
  end

  -- -------------------------------------------------------------------
  -- conformance checks

  local function fail(msg) error("check_stream: " .. msg, 0) end

  local function expect_error(cls, wrapped, fn, ...)
    local ok, err = pcall(fn, ...)
    if ok then fail(("expected %s"):format(cls.__name)) end
    if errors.ExceptionGroup:is(err) then
      if not wrapped then fail("caught an ExceptionGroup, expected " .. cls.__name .. ": " .. tostring(err)) end
      if #err.exceptions ~= 1 or not cls:is(err.exceptions[1]) then
        fail("expected one " .. cls.__name .. " in the group, got: " .. tostring(err))
      end
    elseif cls:is(err) then
      if wrapped then fail("caught " .. cls.__name .. ", expected it in an ExceptionGroup") end
    else
      fail(("expected %s, got: %s"):format(cls.__name, tostring(err)))
    end
  end

  local function assert_eq(want, got, what)
    if want ~= got then fail(("%s: expected %q, got %q"):format(what, tostring(want), tostring(got))) end
  end

  -- Trio's aclose_forcefully: close() inside a cancelled scope, so a
  -- stream whose close would first talk to its peer (an SSLStream's
  -- close_notify) closes at once.  The checks use it where Trio's do.
  local function close_forcefully(x)
    local scope = trio.CancelScope()
    scope:cancel()
    scope:run(x.close, x)
  end

  local function close_both(s, r)
    pcall(close_forcefully, s)
    pcall(close_forcefully, r)
  end

  -- Runs body(s, r) on a fresh pair, closing both afterwards.
  local function with_pair(maker, body)
    local s, r = maker()
    local ok, err = pcall(body, s, r)
    close_both(s, r)
    if not ok then error(err, 0) end
  end

  local function nursery(fn) return trio.open_nursery(fn) end

  --- check_one_way_stream(make_pair [, make_clogged_pair])
  function testing.check_one_way_stream(stream_maker, clogged_stream_maker)
    local function checked_receive_1(r, expected)
      assert_eq(expected, r:receive_some(1), "receive_some(1)")
    end

    with_pair(stream_maker, function(s, r)
      nursery(function(n)
        n:start_soon(s.send_all, s, "x")
        n:start_soon(checked_receive_1, r, "x")
      end)
      nursery(function(n)
        n:start_soon(function()
          s:send_all("")
          s:send_all("y")
        end)
        n:start_soon(checked_receive_1, r, "y")
      end)
      local function bad_arg(v)
        local ok, e = pcall(r.receive_some, r, v)
        if ok or type(e) ~= "string" or not e:find("bad argument", 1, true) then
          fail(("receive_some(%s) must be an argument error, got %s"):format(tostring(v), tostring(e)))
        end
      end
      bad_arg(-1)
      bad_arg(0)
      bad_arg(1.5)
      nursery(function(n)
        n:start_soon(s.send_all, s, "x")
        assert_eq("x", r:receive_some(), "receive_some()")
      end)
      nursery(function(n)
        n:start_soon(s.send_all, s, "x")
        assert_eq("x", r:receive_some(nil), "receive_some(nil)")
      end)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(r.receive_some, r, 1)
        n:start_soon(r.receive_some, r, 1)
      end)
      nursery(function(n)
        n:start_soon(function()
          s:wait_send_all_might_not_block()
          n.cancel_scope:cancel()
        end)
        n:start_soon(r.receive_some, r, 1)
      end)
      -- closing the receiver breaks the sender
      nursery(function(n)
        n:start_soon(function()
          expect_error(BrokenResourceError, false, function()
            while true do s:send_all(("x"):rep(100)) end
          end)
        end)
        n:start_soon(function()
          checkpoint()
          r:close()
        end)
      end)
      expect_error(BrokenResourceError, false, s.send_all, s, ("x"):rep(100))
      expect_error(ClosedResourceError, false, r.receive_some, r, 4096)
      r:close()
      r:close()
      s:close()
      expect_error(ClosedResourceError, false, s.send_all, s, ("x"):rep(100))
      expect_error(ClosedResourceError, false, s.send_all, s, "")
      expect_error(ClosedResourceError, false, s.wait_send_all_might_not_block, s)
      s:close()
      s:close()
    end)

    -- the sender closing gives the receiver EOF
    with_pair(stream_maker, function(s, r)
      nursery(function(n)
        n:start_soon(function()
          s:send_all("y")
          s:close()
        end)
        n:start_soon(function()
          trio.testing.wait_all_tasks_blocked()
          checked_receive_1(r, "y")
          checked_receive_1(r, "")
          r:close()
        end)
      end)
    end)

    -- the receiver closed first
    with_pair(stream_maker, function(s, r)
      close_forcefully(r)
      expect_error(BrokenResourceError, false, function()
        while true do s:send_all(("x"):rep(100)) end
      end)
      expect_error(ClosedResourceError, false, r.receive_some, r, 4096)
    end)

    -- the sender closed first
    with_pair(stream_maker, function(s, r)
      close_forcefully(s)
      expect_error(ClosedResourceError, false, s.send_all, s, "123")
      local ok, e = pcall(checked_receive_1, r, "")
      if not ok and not BrokenResourceError:is(e) then error(e, 0) end
    end)

    -- close() inside a cancelled scope still closes
    with_pair(stream_maker, function(s, r)
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(r.close, r)
      scope = trio.CancelScope()
      scope:cancel()
      scope:run(s.close, s)
      expect_error(ClosedResourceError, false, s.send_all, s, "123")
      expect_error(ClosedResourceError, false, r.receive_some, r, 4096)
    end)

    -- operations in a cancelled scope raise Cancelled
    with_pair(stream_maker, function(s, r)
      local scope = trio.CancelScope()
      scope:cancel()
      scope:run(nursery, function(n)
        n:start_soon(function() expect_error(trio.Cancelled, false, s.send_all, s, "x") end)
        n:start_soon(function() expect_error(trio.Cancelled, false, r.receive_some, r, 1) end)
      end)
      s:close()
      r:close()
    end)

    -- closing while another task receives
    with_pair(stream_maker, function(_, r)
      nursery(function(n)
        n:start_soon(function() expect_error(ClosedResourceError, false, r.receive_some, r, 10) end)
        trio.testing.wait_all_tasks_blocked()
        close_forcefully(r)
      end)
    end)

    if clogged_stream_maker == nil then return end

    with_pair(clogged_stream_maker, function(s, r)
      local record = {}
      nursery(function(n)
        n:start_soon(function()
          record[#record + 1] = "waiter sleeping"
          s:wait_send_all_might_not_block()
          record[#record + 1] = "waiter wokeup"
          n.cancel_scope:cancel()
        end)
        trio.testing.wait_all_tasks_blocked()
        n:start_soon(function()
          trio.testing.wait_all_tasks_blocked()
          record[#record + 1] = "receiver starting"
          while true do r:receive_some(16834) end
        end)
      end)
      assert_eq("waiter sleeping|receiver starting|waiter wokeup", table.concat(record, "|"), "order")
    end)

    with_pair(clogged_stream_maker, function(s, _)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(s.wait_send_all_might_not_block, s)
        n:start_soon(s.wait_send_all_might_not_block, s)
      end)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(s.wait_send_all_might_not_block, s)
        n:start_soon(s.send_all, s, "123")
      end)
    end)

    with_pair(clogged_stream_maker, function(s, _)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(s.send_all, s, "123")
        n:start_soon(s.send_all, s, "123")
      end)
    end)

    with_pair(clogged_stream_maker, function(s, r)
      nursery(function(n)
        n:start_soon(function()
          local ok, e = pcall(s.wait_send_all_might_not_block, s)
          if not ok and not BrokenResourceError:is(e) then error(e, 0) end
        end)
        n:start_soon(function()
          trio.testing.wait_all_tasks_blocked()
          close_forcefully(r)
        end)
      end)
    end)

    with_pair(clogged_stream_maker, function(s, r)
      close_forcefully(r)
      local ok, e = pcall(s.wait_send_all_might_not_block, s)
      if not ok and not BrokenResourceError:is(e) then error(e, 0) end
    end)

    local function close_soon(s)
      trio.testing.wait_all_tasks_blocked()
      close_forcefully(s)
    end

    with_pair(clogged_stream_maker, function(s, _)
      nursery(function(n)
        n:start_soon(close_soon, s)
        expect_error(ClosedResourceError, false, s.send_all, s, "xyzzy")
      end)
    end)

    with_pair(clogged_stream_maker, function(s, _)
      nursery(function(n)
        n:start_soon(close_soon, s)
        expect_error(ClosedResourceError, false, s.wait_send_all_might_not_block, s)
      end)
    end)
  end

  -- A small deterministic generator (xorshift), so runs are repeatable.
  local function rng(seed)
    local x = seed * 2654435761 % 4294967296 + 1
    return function(lo, hi)
      x = x ~ ((x << 13) & 0xffffffff)
      x = x ~ (x >> 17)
      x = x ~ ((x << 5) & 0xffffffff)
      return lo + x % (hi - lo + 1)
    end
  end

  local function test_data(size)
    local next_int, parts = rng(7), {}
    for i = 1, size // 4 do parts[i] = string.pack("<I4", next_int(0, 0x7fffffff)) end
    return table.concat(parts)
  end

  --- check_two_way_stream(make_pair [, make_clogged_pair])
  function testing.check_two_way_stream(stream_maker, clogged_stream_maker)
    if not errors.is_callable(stream_maker) then argerror(1, "check_two_way_stream", "function expected") end
    testing.check_one_way_stream(stream_maker, clogged_stream_maker)
    local function flipped() local a, b = stream_maker() return b, a end
    local flipped_clogged = clogged_stream_maker and function()
      local a, b = clogged_stream_maker()
      return b, a
    end
    testing.check_one_way_stream(flipped, flipped_clogged)

    with_pair(stream_maker, function(s1, s2)
      local DUPLEX_TEST_SIZE, CHUNK_SIZE_MAX = 1 << 20, 1 << 14
      local data = test_data(DUPLEX_TEST_SIZE)
      local reversed = data:reverse()
      local function sender(s, d, seed)
        local r, pos = rng(seed), 1
        while pos <= #d do
          local n = r(1, CHUNK_SIZE_MAX)
          s:send_all(d:sub(pos, pos + n - 1))
          pos = pos + n
        end
      end
      local function receiver(s, d, seed)
        local r, got, total = rng(seed), {}, 0
        while total < #d do
          local chunk = s:receive_some(r(1, CHUNK_SIZE_MAX))
          if chunk == "" then fail("unexpected end of stream") end
          got[#got + 1] = chunk
          total = total + #chunk
        end
        if table.concat(got) ~= d then fail("the data received differs from the data sent") end
      end
      nursery(function(n)
        n:start_soon(sender, s1, data, 0)
        n:start_soon(sender, s2, reversed, 1)
        n:start_soon(receiver, s1, reversed, 2)
        n:start_soon(receiver, s2, data, 3)
      end)
      nursery(function(n)
        n:start_soon(function()
          assert_eq("", s2:receive_some(10), "receive_some after close")
          s2:close()
        end)
        n:start_soon(s1.close, s1)
      end)
    end)
  end

  --- check_half_closeable_stream(make_pair [, make_clogged_pair])
  function testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)
    testing.check_two_way_stream(stream_maker, clogged_stream_maker)
    local function send_x_then_eof(s)
      s:send_all("x")
      s:send_eof()
    end
    local function expect_x_then_eof(r)
      trio.testing.wait_all_tasks_blocked()
      assert_eq("x", r:receive_some(10), "receive_some")
      assert_eq("", r:receive_some(10), "receive_some at EOF")
    end
    with_pair(stream_maker, function(s1, s2)
      nursery(function(n)
        n:start_soon(send_x_then_eof, s1)
        n:start_soon(expect_x_then_eof, s2)
      end)
      expect_error(ClosedResourceError, false, s1.send_all, s1, "y")
      s1:send_eof()
      nursery(function(n)
        n:start_soon(send_x_then_eof, s2)
        n:start_soon(expect_x_then_eof, s1)
      end)
    end)
    if clogged_stream_maker == nil then return end
    with_pair(clogged_stream_maker, function(s1, _)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(s1.send_all, s1, "x")
        trio.testing.wait_all_tasks_blocked()
        n:start_soon(s1.send_eof, s1)
      end)
    end)
    with_pair(clogged_stream_maker, function(s1, _)
      expect_error(BusyResourceError, true, nursery, function(n)
        n:start_soon(s1.wait_send_all_might_not_block, s1)
        trio.testing.wait_all_tasks_blocked()
        n:start_soon(s1.send_eof, s1)
      end)
    end)
  end
end
