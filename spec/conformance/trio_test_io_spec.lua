-- Ported from Trio's src/trio/_core/_tests/test_io.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: the socketpair fixture is trio.socket.socketpair(), driven
-- by hand through the non-waiting core.sock_raw_send / sock_raw_recv (the
-- counterparts of a non-blocking stdlib socket's send/recv);
-- fill_socket/drain_socket send/receive until EAGAIN; wait_readable,
-- wait_writable and notify_closing take an fd (an integer) only, so every
-- test runs once, on the fileno (Trio also runs each with the socket object
-- itself; DESIGN.md gives these functions an fd only); pytest.raises is
-- H.raises; assert_checkpoints is H.assert_checkpoints.  Upstream has no
-- pipe tests; a pipe fd goes through the same fd table as a socket's.
-- Left out:
--   test_io_manager_kqueue_monitors_statistics (kqueue's monitor_kevent,
--   a macOS/BSD backend API we do not have: libuv is our one backend).
local trio = require "trio"
local core = require "trio_asyncio.core"
local H = require "conformance.trio_helpers"

local lowlevel = trio.lowlevel
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked

local BLOCK = string.rep("x", 65536)

local function fill_socket(sock)
  while core.sock_raw_send(sock, BLOCK) do end
end

local function drain_socket(sock)
  while core.sock_raw_recv(sock, 65536) do end
end

-- The socketpair fixture: fn(a, b) with both ends closed afterwards.
local function with_socketpair(fn)
  local a, b = trio.socket.socketpair()
  local ok, err = pcall(fn, a, b)
  a:close()
  b:close()
  assert(ok, err)
end

describe("trio test_io", function()
  it("test_wait_basic (ported)", function()
    with_socketpair(function(a, b)
      local afd, bfd = a:fileno(), b:fileno()
      H.run(function()
        -- they start out writable
        H.assert_checkpoints(lowlevel.wait_writable, afd)

        -- but readable blocks until data arrives
        local record
        -- a task that waits on a and records label, or "cancelled"
        local function blocker(wait, label, after)
          return function()
            local ok, e = pcall(H.assert_checkpoints, wait, afd)
            if not ok then assert(trio.Cancelled:is(e), e) end
            record[#record + 1] = ok and label or "cancelled"
            if ok and after then after() end
          end
        end
        local block_on_read = blocker(lowlevel.wait_readable, "readable",
          function() assert.equal("x", core.sock_raw_recv(a, 10)) end)
        local block_on_write = blocker(lowlevel.wait_writable, "writable")
        -- task blocks until act(nursery) runs; returns what it recorded
        local function while_blocked(task, act)
          record = {}
          trio.open_nursery(function(n)
            n:start_soon(task)
            wait_all_tasks_blocked()
            assert.same({}, record)
            act(n)
          end)
          return record
        end
        assert.same({ "readable" }, while_blocked(block_on_read,
          function() assert.equal(1, core.sock_raw_send(b, "x")) end))

        fill_socket(a)
        -- now writable blocks, but readable does not
        H.assert_checkpoints(lowlevel.wait_readable, bfd)
        assert.same({ "writable" }, while_blocked(block_on_write, function() drain_socket(b) end))

        -- cancellation
        local function cancel(n) n.cancel_scope:cancel() end
        assert.same({ "cancelled" }, while_blocked(block_on_read, cancel))
        fill_socket(a)
        assert.same({ "cancelled" }, while_blocked(block_on_write, cancel))
      end)
    end)
  end)

  -- test_double_read and test_double_write: two tasks may not wait to
  -- read (or to write) the same fd at once
  for _, case in ipairs { { "test_double_read", "wait_readable" }, { "test_double_write", "wait_writable" } } do
    local name, wait_name = case[1], case[2]
    it(name .. " (ported)", function()
      local wait = lowlevel[wait_name]
      with_socketpair(function(a)
        local afd = a:fileno()
        if wait_name == "wait_writable" then fill_socket(a) end
        H.run(function()
          trio.open_nursery(function(n)
            n:start_soon(wait, afd)
            wait_all_tasks_blocked()
            H.raises(trio.BusyResourceError, wait, afd)
            n.cancel_scope:cancel()
          end)
        end)
      end)
    end)
  end

  it("test_interrupted_by_close (ported)", function()
    with_socketpair(function(a)
      local afd = a:fileno()
      local woken = {}
      fill_socket(a)
      H.run(function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            H.raises(trio.ClosedResourceError, lowlevel.wait_readable, afd)
            woken[#woken + 1] = "reader"
          end)
          n:start_soon(function()
            H.raises(trio.ClosedResourceError, lowlevel.wait_writable, afd)
            woken[#woken + 1] = "writer"
          end)
          wait_all_tasks_blocked()
          lowlevel.notify_closing(afd)
        end)
      end)
      assert.same({ "reader", "writer" }, H.sorted(woken))
    end)
  end)

  it("test_socket_simultaneous_read_write (ported)", function()
    with_socketpair(function(a, b)
      local afd = a:fileno()
      local record = {}
      fill_socket(a)
      H.run(function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            lowlevel.wait_readable(afd)
            record[#record + 1] = "r_task"
          end)
          n:start_soon(function()
            lowlevel.wait_writable(afd)
            record[#record + 1] = "w_task"
          end)
          wait_all_tasks_blocked()
          assert.same({}, record)
          core.sock_raw_send(b, "x")
          wait_all_tasks_blocked()
          assert.same({ "r_task" }, record)
          drain_socket(b)
          wait_all_tasks_blocked()
          assert.same({ "r_task", "w_task" }, record)
        end)
      end)
    end)
  end)

  it("test_socket_actual_streaming (ported)", function()
    with_socketpair(function(a, b)
      -- a small send buffer on one end for more partial writes
      a:setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 10000)
      local N, MAX_CHUNK = 1000000, 65536
      local results = {}

      local function sender(sock, seed, key)
        local state, sent = seed, 0
        while sent < N do
          state = (state * 1103515245 + 12345) % 2147483648 -- a seeded LCG, as random.Random(seed)
          local chunk = string.rep("x", state % MAX_CHUNK)
          local pos = 1
          while pos <= #chunk do
            H.assert_checkpoints(lowlevel.wait_writable, sock:fileno())
            local count = core.sock_raw_send(sock, chunk, pos)
            if count then
              sent = sent + count
              pos = pos + count
            end
          end
        end
        sock:shutdown(trio.socket.SHUT_WR)
        results[key] = sent
      end

      local function receiver(sock, key)
        local received = 0
        while true do
          H.assert_checkpoints(lowlevel.wait_readable, sock:fileno())
          local data = core.sock_raw_recv(sock, MAX_CHUNK)
          if data == "" then break end
          received = received + #(data or "")
        end
        results[key] = received
      end

      H.run(function()
        trio.open_nursery(function(n)
          n:start_soon(sender, a, 0, "send_a")
          n:start_soon(sender, b, 1, "send_b")
          n:start_soon(receiver, a, "recv_a")
          n:start_soon(receiver, b, "recv_b")
        end)
      end)
      assert.is_true(results.send_a >= N)
      assert.equal(results.send_a, results.recv_b)
      assert.equal(results.send_b, results.recv_a)
    end)
  end)

  it("test_notify_closing_on_invalid_object (ported: a no-op on Unix)", function()
    H.run(function()
      assert.is_nil(lowlevel.notify_closing(-1))
    end)
  end)

  it("test_wait_on_invalid_object (adapted: an OSError whose code is EBADF)", function()
    H.run(function()
      for _, wait in ipairs { lowlevel.wait_readable, lowlevel.wait_writable } do
        local s = trio.socket.socket()
        local fd = s:fileno()
        s:close()
        local e = H.raises(trio.OSError, wait, fd)
        assert.equal("EBADF", e.code)
        assert.truthy(e.message:find("bad file descriptor", 1, true), e.message)
      end
    end)
  end)

  it("test_io_manager_statistics (adapted: no call_soon task waits on an fd here, so the baseline is zero)",
    function()
      local socks = {}
      for i = 1, 3 do socks[2 * i - 1], socks[2 * i] = trio.socket.socketpair() end
      local a1, a2, b2, a3 = socks[1], socks[3], socks[4], socks[5]
      local ok, err = pcall(H.run, function()
        local function check(readers, writers)
          local io = lowlevel.current_statistics().io_statistics
          assert.equal("libuv", io.backend)
          assert.equal(readers, io.tasks_waiting_read)
          assert.equal(writers, io.tasks_waiting_write)
        end
        wait_all_tasks_blocked()
        check(0, 0)
        -- one socket with a writer blocked, two with a reader, one with both
        fill_socket(a1)
        fill_socket(a3)
        trio.open_nursery(function(n)
          n:start_soon(lowlevel.wait_writable, a1:fileno())
          n:start_soon(lowlevel.wait_readable, a2:fileno())
          n:start_soon(lowlevel.wait_readable, b2:fileno())
          n:start_soon(lowlevel.wait_writable, a3:fileno())
          n:start_soon(lowlevel.wait_readable, a3:fileno())
          wait_all_tasks_blocked()
          check(3, 2)
          n.cancel_scope:cancel()
        end)
        check(0, 0)
      end)
      for _, s in ipairs(socks) do s:close() end
      assert(ok, err)
    end)

  -- An "unnotified close": the fd is closed without notify_closing.  Each
  -- wait may then never return (and be cancelled cleanly), return, or
  -- raise an OSError; it must not hang uncancellably nor crash the run.
  -- The socket's own close() is the unnotified close: it does not call
  -- notify_closing for lowlevel waiters (Trio closes a stdlib socket);
  -- trio.socket.from_fd makes the duplicate of Python's sock.dup().
  describe("test_can_survive_unnotified_close (ported)", function()
    local function allow_oserror(fn, ...)
      local ok, e = pcall(fn, ...)
      if not ok and not trio.OSError:is(e) then error(e, 0) end
    end

    for _, with_dup in ipairs { false, true } do
      it(with_dup and "a socket with a duplicate still open" or "a lone socket", function()
        H.run(function()
          local s = trio.socket.socket()
          local s2 = with_dup and trio.socket.from_fd(s:fileno(), trio.socket.AF_INET, trio.socket.SOCK_STREAM)
          trio.open_nursery(function(n)
            n:start_soon(allow_oserror, lowlevel.wait_readable, s:fileno())
            wait_all_tasks_blocked()
            s:close()
            wait_all_tasks_blocked()
            n.cancel_scope:cancel()
          end)
          if s2 then s2:close() end
        end)
      end)
    end

    -- fn(a, b, a2) in a run, with a2 a duplicate of a and a full send
    -- buffer on a
    local function run_with_dup_of_full_a(fn)
      with_socketpair(function(a, b)
        local a2 = trio.socket.from_fd(a:fileno(), trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        fill_socket(a)
        local ok, err = pcall(H.run, fn, a, b, a2)
        a2:close()
        assert(ok, err)
      end)
    end

    it("a reader and a writer, closed then cancelled", function()
      run_with_dup_of_full_a(function(a)
        local afd = a:fileno()
        trio.open_nursery(function(n)
          n:start_soon(allow_oserror, lowlevel.wait_readable, afd)
          n:start_soon(allow_oserror, lowlevel.wait_writable, afd)
          wait_all_tasks_blocked()
          a:close()
          n.cancel_scope:cancel()
        end)
      end)
    end)

    it("a reader and a writer, closed then woken by I/O", function()
      run_with_dup_of_full_a(function(a, b, a2)
        local afd, a2fd = a:fileno(), a2:fileno()
        local e = trio.Event()
        trio.open_nursery(function(n)
          n:start_soon(allow_oserror, lowlevel.wait_readable, afd)
          n:start_soon(allow_oserror, lowlevel.wait_writable, afd)
          n:start_soon(function()
            lowlevel.wait_readable(a2fd)
            e:set()
          end)
          wait_all_tasks_blocked()
          a:close()
          core.sock_raw_send(b, "x")
          e:wait()
          wait_all_tasks_blocked()
          n.cancel_scope:cancel()
        end)
      end)
    end)
  end)

  -- Not upstream: the same waits on a pipe (a child's stdout): woken by
  -- notify_closing, then readable once the child writes.  Once the pipe
  -- stream has read through libuv, the fd is libuv's and a wait on it is
  -- an OSError (docs/SEMANTICS.md, "An fd one of our streams reads").
  it("pipes: wait_readable on a child's stdout, notify_closing, then the stream's own reads (not upstream)",
    function()
      H.run(function()
        local proc = lowlevel.open_process({ "cat" }, { stdin = "pipe", stdout = "pipe" })
        local out_fd = proc.stdout:fileno()
        local record = {}
        local function while_waiting(wait_then_record, act)
          trio.open_nursery(function(n)
            n:start_soon(wait_then_record)
            wait_all_tasks_blocked()
            act()
          end)
        end
        trio.fail_after(5, function()
          while_waiting(function()
            H.raises(trio.ClosedResourceError, lowlevel.wait_readable, out_fd)
            record[#record + 1] = "closed"
          end, function() lowlevel.notify_closing(out_fd) end)
          while_waiting(function()
            lowlevel.wait_readable(out_fd)
            record[#record + 1] = "readable"
          end, function()
            assert.same({ "closed" }, record)
            proc.stdin:send_all("x")
          end)
          assert.same({ "closed", "readable" }, record)
          assert.equal("x", proc.stdout:receive_some(10))
          local e = H.raises(trio.OSError, lowlevel.wait_readable, out_fd)
          assert.equal("EEXIST", e.code)
          assert.truthy(e.message:find("is read through one of our streams", 1, true), e.message)
          proc:close() -- its pipes; cat reads EOF and exits
          assert.equal(0, proc.returncode)
        end)
      end)
    end)
end)
