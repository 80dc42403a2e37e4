--- support.lua: small helpers shared by the specs (require "support").
local M = {}

--- Calls fn(...), which must fail; returns its error.
function M.errof(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an error, but the call succeeded")
  return e
end

--- asyncio.run(fn), fn run by the main Task through asyncio.wait_for:
-- bounded to 10 seconds.
function M.aio_run_bounded(fn)
  local asyncio = require "asyncio"
  return asyncio.run(function() return asyncio.wait_for(fn, 10) end)
end

--- Awaits the asyncio Task `task`: true if it ends with CancelledError and
-- counts as cancelled.
function M.ends_cancelled(task)
  local asyncio = require "asyncio"
  local e = M.errof(task.await, task)
  return asyncio.CancelledError:is(e) and task:cancelled()
end

--- Whether a file exists at path.
function M.file_exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

--- A fresh temporary path nobody created yet.
function M.new_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

--- A worker-thread function (only _ENV as upvalue) that blocks its thread
-- until the file `path` exists (10 s at most), then returns the rest of its
-- arguments.
function M.wait_for_file(path, ...)
  os.execute(("timeout 10 sh -c 'while [ ! -e %s ]; do sleep 0.005; done'"):format(path))
  return ...
end

--- Asserts that tostring(s) contains sub (plain text).
function M.assert_has(s, sub)
  s = tostring(s)
  assert(s:find(sub, 1, true), ("expected %q to contain %q"):format(s, sub))
end

--- Runs on loop a Task of body that nobody keeps (two loop iterations),
-- then collects it; returns what the loop's exception handler got, and the
-- line where the Task was created (in this file).
function M.collected_task_reports(loop, body)
  local asyncio = require "asyncio"
  local ctxs, line = {}, nil
  loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
  loop:run_until_complete(function()
    line = debug.getinfo(1, "l").currentline + 1
    asyncio.create_task(body)
    asyncio.sleep(0)
    asyncio.sleep(0)
  end)
  collectgarbage("collect")
  collectgarbage("collect")
  loop:run_until_complete(function() asyncio.sleep(0) end)
  return ctxs, line
end

--- Inside a test, given busted's `pending`: marks the test pending under
-- TA_GC_STRESS (a GC step at every spawn and resume), for the tests that
-- run millions of steps or measure time and would take many minutes there.
function M.skip_under_gc_stress(pending)
  local v = os.getenv("TA_GC_STRESS")
  if v and v ~= "" then
    pending("too slow under TA_GC_STRESS: a GC step at every spawn and resume")
  end
end

--- A connected pair of sockets (trio.socket.socketpair) driven by hand,
-- for tests that watch the fds themselves (add_reader, wait_readable):
-- each end has getfd(), send(data) and receive(n), which never wait
-- (receive gives nil when nothing is there), and close().
function M.raw_socketpair()
  local trio = require "trio"
  local core = require "trio_asyncio.core"
  local End = {}
  End.__index = End
  function End:getfd() return self.sock:fileno() end
  function End:send(data) return core.sock_raw_send(self.sock, data) end
  function End:receive(n) return (core.sock_raw_recv(self.sock, n)) end
  function End:close() self.sock:close() end
  local a, b = trio.socket.socketpair()
  return setmetatable({ sock = a }, End), setmetatable({ sock = b }, End)
end

return M
