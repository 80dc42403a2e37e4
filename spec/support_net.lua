--- support_net.lua: helpers shared by the networking specs.
local M = {}

--- Open file descriptors of this process.
function M.nfds()
  local lfs = require "lfs"
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

--- Resident memory of this process in bytes.
function M.rss()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end

--- Trio-flavored: a listener on host (default 127.0.0.1; "::1" for IPv6)
-- whose accept queue is full, so that a connect to its address hangs
-- (loopback drops the SYN) until cancelled.  Returns the address, a
-- function closing everything, and the listening socket: accepting from
-- it makes room, so a hanging connect then succeeds at the client's next
-- SYN retransmission (about 1 s after it started); closing everything
-- makes that retransmission refused instead.
function M.blackhole(host)
  local trio = require "trio"
  local ts = trio.socket
  local family = host and host:find(":", 1, true) and ts.AF_INET6 or ts.AF_INET
  local l = ts.socket(family)
  l:bind { host or "127.0.0.1", 0 }
  l:listen(0)
  local addr, held = l:getsockname(), {}
  for _ = 1, 16 do
    local c = ts.socket(family)
    held[#held + 1] = c
    if trio.move_on_after(0.05, c.connect, c, addr).cancelled_caught then break end
  end
  return addr, function()
    for _, c in ipairs(held) do c:close() end
    l:close()
  end, l
end

--- A port of 127.0.0.1 free at the time of asking: a connect there is
-- refused.
function M.free_port()
  local ts = require "trio.socket"
  local probe = ts.socket()
  probe:bind { "127.0.0.1", 0 }
  local port = probe:getsockname()[2]
  probe:close()
  return port
end

--- What getaddrinfo answers for a stream socket to addr (family default
-- AF_INET).
function M.stream_target(addr, family)
  local ts = require "trio.socket"
  return { family = family or ts.AF_INET, type = ts.SOCK_STREAM, proto = 6, canonname = "", addr = addr }
end

--- fn() with the asyncio loop class's getaddrinfo answering `targets`
-- for any name (restored after).
function M.with_fake_getaddrinfo(loop, targets, fn)
  local Loop = getmetatable(loop).__index
  local real = Loop.getaddrinfo -- (a lookup installs the networking methods first)
  Loop.getaddrinfo = function() return targets end
  local ok, err = pcall(fn)
  Loop.getaddrinfo = real
  if not ok then error(err, 0) end
end

--- asyncio.run(fn), failing after `secs` seconds (default 10) instead of
-- hanging.
function M.aio_run(fn, secs)
  local asyncio = require "asyncio"
  return asyncio.run(function()
    return asyncio.wait_for(asyncio.create_task(fn), secs or 10)
  end)
end

--- Whether this host has IPv6 loopback (a socket binds to ::1).
function M.have_ipv6()
  local ts = require("trio.socket")
  local made, s = pcall(ts.socket, ts.AF_INET6, ts.SOCK_STREAM)
  if not made then return false end
  local ok = pcall(s.bind, s, { "::1", 0 })
  s:close()
  return ok
end

--- Trio-flavored: opens sockets until the descriptor limit is reached;
-- returns them (for a child process run with a low `ulimit -n`).
function M.use_up_fds()
  local socket = require("trio.socket").socket
  local hogs = {}
  while true do
    local ok, s = pcall(socket)
    if not ok then return hogs end
    hogs[#hogs + 1] = s
  end
end

--- Trio-flavored: fills the send direction of a SocketStream until a
-- write stays queued (the peer does not read), as Trio's tests do before
-- checking wait_send_all_might_not_block.
function M.clog(stream)
  local core = require "trio_asyncio.core"
  local trio = require "trio"
  local chunk = ("x"):rep(65536)
  repeat
    while core.sock_write(stream.socket, chunk) do end
    trio.sleep(0.01)
  until core.sock_writing(stream.socket)
end

--- Starts `cmd` in the background; returns a handle whose wait(sleep)
-- (either flavor's sleep) returns exit status, output, waiting at most
-- `limit` seconds (10).
function M.background(cmd, limit)
  limit = limit or 10
  local out, status = os.tmpname(), os.tmpname()
  os.remove(status)
  os.execute(("((%s) >%s 2>&1; echo $? >%s.tmp; mv %s.tmp %s) </dev/null &")
    :format(cmd, out, status, status, status))
  local h = {}
  function h.wait(sleep)
    for _ = 1, limit * 50 do
      local f = io.open(status)
      if f then
        local code = tonumber(f:read("a"))
        f:close()
        local o = io.open(out)
        local text = o:read("a")
        o:close()
        os.remove(out)
        os.remove(status)
        return code, text
      end
      sleep(0.02)
    end
    error("background command did not finish: " .. cmd)
  end
  return h
end

--- In a busted test: true if cmd is installed, else marks the test
-- pending (with busted's `pending`, passed in) and returns false.
function M.need(cmd, pending)
  if M.have(cmd) then return true end
  pending(cmd .. " is not installed (scripts/deps.sh installs it)")
  return false
end

--- Runs a Lua script in a child lua5.4 with the module paths of this
-- checkout; returns its exit status and output (stdout and stderr).
function M.run_lua(script, shell_prefix)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local build = os.getenv("TA_BUILD") or "build"
  local paths = ("LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH='%s/?.so;;' "):format(build)
  if os.getenv("TA_INSTALLED") then paths = "" end -- the installed rock, from the environment
  local cmd = ("%s%stimeout 30 lua5.4 %s 2>&1"):format(shell_prefix or "", paths, path)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  os.remove(path)
  return ok and 0 or code, out
end

--- True if the command exists.
function M.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

return M
