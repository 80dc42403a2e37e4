-- Ported from Trio's src/trio/_tests/test_unix_pipes.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: there is no trio.lowlevel.FdStream to wrap an os.pipe()
-- (docs/SEMANTICS.md, "Not provided"); our pipe streams are a child
-- process's, trio.PipeSendStream / trio.PipeReceiveStream.  So make_pipe
-- starts a `cat`: its stdin is the send side and its stdout the receive
-- side, and what upstream writes or reads with os.write / os.read on the
-- other end goes through cat (or comes from a `printf` child).  Each test
-- kills and reaps its children at the end.  aclose() is close(), and
-- `async with` a `<close>` variable.  fileno() of a closed stream is -1,
-- as upstream.  Whether an fd is open is read in /proc/self/fd.
-- Adapted: every test but test_pipes_combined (ported through cat):
-- test_send_pipe, test_receive_pipe (cat and printf stand for the other
-- end), test_pipe_errors (receive_some(0) is a "bad argument" error where
-- Python raises ValueError; FdStream(None) has no counterpart),
-- test_del (the streams are dropped with their Process and collected),
-- test_async_with, test_misdirected_aclose_regression (the second pipe
-- gets the first one's fd numbers if the system reuses them; Lua has no
-- dup2 to force it), test_close_at_bad_time_for_receive_some and
-- test_close_at_bad_time_for_send_all (upstream patches wait_readable /
-- wait_writable to close the stream between the wake-up and the read or
-- write; here a read or write completes in libuv with its data, so there
-- is no such moment: the stream is closed while the receive, or the send
-- on a full pipe, waits), test_pipe_fully (check_one_way_stream without a
-- clogged pair: a pipe cannot be filled without waiting, as send_all
-- waits until its data is written and the fd cannot be polled beside the
-- stream; wait_send_all_might_not_block returns early, which Trio's
-- contract allows, and the order the clogged check wants needs it to
-- wait; its busy and closed checks are in spec/process_spec.lua).
-- Dropped: test_bizarro_OSError_from_receive (needs dup2 of a directory
-- onto the pipe's fd; Lua has no dup2).
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_tests/test_unix_pipes.py::"
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked

local function fd_is_open(fd)
  local f = io.open("/proc/self/fd/" .. fd)
  if f == nil then return false end
  f:close()
  return true
end

local function assert_fds_closed(...)
  for _, fd in ipairs { ... } do assert(not fd_is_open(fd), ("fd %d is still open"):format(fd)) end
end

-- with_pipes(fn): runs fn(make_pipe) in a run; make_pipe() -> send,
-- receive, process (a `cat`, or the argv given).  The children are killed
-- and reaped afterwards.
local function with_pipes(fn)
  local procs = {}
  local function make_pipe(argv)
    local p = trio.lowlevel.open_process(argv or { "cat" }, { stderr = "devnull" })
    procs[#procs + 1] = p
    return p.stdin, p.stdout, p
  end
  H.run(function()
    local ok, err = pcall(fn, make_pipe)
    for _, p in ipairs(procs) do
      p:send_signal("SIGCONT")
      p:kill()
      p:close()
    end
    if not ok then error(err, 0) end
  end)
end

-- all of receive's data until EOF
local function read_all(receive)
  local parts = {}
  while true do
    local data = receive:receive_some()
    if data == "" then return table.concat(parts) end
    parts[#parts + 1] = data
  end
end

describe("Trio test_unix_pipes.py", function()
  -- adapted: cat's stdout stands for os.read on the other end
  it(P .. "test_send_pipe", function()
    with_pipes(function(make_pipe)
      local send, other_end = make_pipe()
      assert.equal("integer", math.type(send:fileno()))
      send:send_all("123")
      assert.equal("123", other_end:receive_some(8))
      send:close()
    end)
  end)

  -- adapted: a printf child stands for os.write on the other end
  it(P .. "test_receive_pipe", function()
    with_pipes(function(make_pipe)
      local _, recv = make_pipe { "printf", "123" }
      assert.equal("integer", math.type(recv:fileno()))
      assert.equal("123", read_all(recv))
      recv:close()
    end)
  end)

  -- ported (through cat)
  it(P .. "test_pipes_combined", function()
    with_pipes(function(make_pipe)
      local write, read = make_pipe()
      local count = 1 << 20
      trio.open_nursery(function(n)
        n:start_soon(function() write:send_all(string.rep("\0", count)) end)
        n:start_soon(function()
          wait_all_tasks_blocked()
          local received = 0
          while received < count do
            received = received + #read:receive_some(4096)
          end
          assert.equal(count, received)
        end)
      end)
      read:close()
      write:close()
    end)
  end)

  -- adapted: a "bad argument" error instead of ValueError
  it(P .. "test_pipe_errors", function()
    with_pipes(function(make_pipe)
      local w, s = make_pipe()
      w:close()
      H.raises(H.msg("bad argument #1 to 'receive_some' (positive integer expected, got 0)"),
        s.receive_some, s, 0)
      s:close()
    end)
  end)

  -- adapted: the streams go with their Process; the GC closes their fds
  it(P .. "test_del", function()
    with_pipes(function()
      local p = trio.lowlevel.open_process({ "cat" }, { stderr = "devnull" })
      local f1, f2 = p.stdin:fileno(), p.stdout:fileno()
      assert.is_true(fd_is_open(f1) and fd_is_open(f2))
      p:kill()
      p:wait()
      p = nil -- luacheck: no unused
      collectgarbage()
      collectgarbage()
      trio.lowlevel.checkpoint() -- the handles' close callbacks run
      assert_fds_closed(f1, f2)
    end)
  end)

  -- adapted: `<close>` variables for `async with w, r`
  it(P .. "test_async_with", function()
    with_pipes(function(make_pipe)
      local w0, r0 = make_pipe()
      local f1, f2 = w0:fileno(), r0:fileno()
      do
        local w <close> = w0
        local r <close> = r0
      end
      assert.equal(-1, w0:fileno())
      assert.equal(-1, r0:fileno())
      trio.lowlevel.checkpoint()
      assert_fds_closed(f1, f2)
    end)
  end)

  -- adapted: the new pipe's fd may be the old one's (not forced)
  it(P .. "test_misdirected_aclose_regression", function()
    with_pipes(function(make_pipe)
      local w, r = make_pipe()
      w:close()
      r:close()
      local w2, r2 = make_pipe()
      local got
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() got = r2:receive_some(10) end)
        wait_all_tasks_blocked()
        -- closing the old stream again must not reach the new one
        r:close()
        wait_all_tasks_blocked()
        assert.is_nil(got)
        -- cat exits: the receiver reads EOF
        w2:close()
      end)
      assert.equal("", got)
      r2:close()
    end)
  end)

  -- adapted: closed while the receive waits
  it(P .. "test_close_at_bad_time_for_receive_some", function()
    with_pipes(function(make_pipe)
      local s, r = make_pipe()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          H.raises(trio.ClosedResourceError, r.receive_some, r, 10)
        end)
        wait_all_tasks_blocked()
        r:close()
      end)
      s:close()
    end)
  end)

  -- adapted: closed while the send waits on a full pipe (cat is stopped)
  it(P .. "test_close_at_bad_time_for_send_all", function()
    with_pipes(function(make_pipe)
      local s, r, p = make_pipe()
      p:send_signal("SIGSTOP")
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          H.raises(trio.ClosedResourceError, s.send_all, s, string.rep("x", 1 << 20))
        end)
        wait_all_tasks_blocked()
        s:close()
      end)
      p:send_signal("SIGCONT")
      r:close()
    end)
  end)

  -- adapted: no clogged pair
  it(P .. "test_pipe_fully", function()
    with_pipes(function(make_pipe)
      trio.testing.check_one_way_stream(function()
        local s, r = make_pipe()
        return s, r
      end)
    end)
  end)
end)
