--- trio_asyncio.luasocket: a LuaSocket-compatible TCP API whose blocking
-- calls suspend the current task instead of blocking the process, so code
-- written for LuaSocket (its own socket.http through the `create` field,
-- ltn12 pumps) runs concurrently inside Trio tasks or asyncio Tasks.
--
--   local luasocket = require "trio_asyncio.luasocket"
--   local c = assert(luasocket.connect("example.org", 80))
--   c:send("GET / HTTP/1.0\r\n\r\n")
--   local line = c:receive("*l")
--
-- Calls return LuaSocket's shapes (`nil, "timeout"`, `nil, "closed",
-- partial`), never raise for network errors.  A wait suspends a Trio task
-- (trio.lowlevel.wait_readable/writable) or an asyncio Task (a reader or
-- writer of its loop); outside any run it blocks as LuaSocket does (a
-- short run of its own); inside a run but outside a task (a callback) it
-- does not wait (as with settimeout(0)).  The sockets are trio.socket
-- sockets driven by hand on their fd, which getfd() returns.
local core = require "trio_asyncio.core"
local trio = require "trio"
local errors = require "trio.errors"

local M = {}
M._VERSION = "LuaSocket 3.0.0 (trio_asyncio facade)"

local tsocket = trio.socket
local pack, unpack = table.pack, table.unpack

local now = core.socket_now

-- LuaSocket's messages for the usual errors; others come lowercased.
local MESSAGES = {
  ECONNREFUSED = "connection refused", ECONNRESET = "closed", EPIPE = "closed",
  ETIMEDOUT = "timeout", EAGAIN = "timeout", EADDRINUSE = "address already in use",
  EHOSTUNREACH = "host is unreachable", ENETUNREACH = "network is unreachable",
  EACCES = "permission denied", ECONNABORTED = "connection aborted",
  EADDRNOTAVAIL = "address not available", EINVAL = "invalid argument",
}
local function message(code)
  return MESSAGES[code] or (tostring(code):lower())
end

local function flavor()
  local ok, ta = pcall(require, "trio_asyncio")
  return ok and ta.current_flavor() or nil
end

-- ---------------------------------------------------------------------
-- waiting for an fd, in whatever context we are

--- Waits until fd is readable (or writable) for at most `timeout` seconds
-- (nil or negative: no limit); true if ready, false on timeout.
local function wait_fd(fd, writable, timeout)
  if timeout ~= nil and timeout >= 0 and timeout <= 0 then return false end
  local f = flavor()
  if f == "trio" then
    local wait = writable and trio.lowlevel.wait_writable or trio.lowlevel.wait_readable
    if timeout == nil or timeout < 0 then
      wait(fd)
      return true
    end
    return not trio.move_on_after(timeout, wait, fd).cancelled_caught
  elseif f == "asyncio" then
    local asyncio = require "asyncio"
    local loop = asyncio.get_running_loop()
    local fut = loop:create_future()
    local add = writable and loop.add_writer or loop.add_reader
    local remove = writable and loop.remove_writer or loop.remove_reader
    add(loop, fd, function() if not fut:done() then fut:set_result(true) end end)
    local ok, err
    if timeout == nil or timeout < 0 then
      ok, err = pcall(fut.await, fut)
    else
      ok, err = pcall(asyncio.wait_for, fut, timeout)
    end
    remove(loop, fd)
    if ok then return true end
    if asyncio.TimeoutError:is(err) then return false end
    error(err, 0)
  elseif core.is_running() then
    return false -- a callback inside a run cannot wait
  else
    local ready = false
    trio.run(function()
      local wait = writable and trio.lowlevel.wait_writable or trio.lowlevel.wait_readable
      if timeout == nil or timeout < 0 then
        wait(fd)
        ready = true
      else
        ready = not trio.move_on_after(timeout, wait, fd).cancelled_caught
      end
    end)
    return ready
  end
end

--- Runs an async lookup in the current context (nested run outside one).
local function resolve(host, port, family)
  local opts = { type = tsocket.SOCK_STREAM, family = family }
  local f = flavor()
  local ok, res
  if f == "trio" then
    ok, res = pcall(tsocket.getaddrinfo, host, port, opts)
  elseif f == "asyncio" then
    local asyncio = require "asyncio"
    ok, res = pcall(function() return asyncio.get_running_loop():getaddrinfo(host, port, opts) end)
  elseif core.is_running() then
    return nil, "host not found (no name lookups from a callback)"
  else
    ok, res = pcall(trio.run, tsocket.getaddrinfo, host, port, opts)
  end
  if not ok then
    if errors.gaierror:is(res) then return nil, "host not found" end
    if errors.OSError:is(res) then return nil, message(res.code) end
    error(res, 0)
  end
  if #res == 0 then return nil, "host not found" end
  return res
end

local function numeric_family(host)
  if host:match("^%d+%.%d+%.%d+%.%d+$") then return tsocket.AF_INET end
  if host:find(":", 1, true) then return tsocket.AF_INET6 end
  return nil
end

-- ---------------------------------------------------------------------
-- tcp objects

local TCP = {}
TCP.__index = TCP

local function new_tcp(kind, family, sock)
  return setmetatable({ _kind = kind, _family = family, _sock = sock, _buf = "", _block = nil,
    _total = nil, _received = 0, _sent = 0, _born = now() }, TCP)
end

function TCP:__tostring()
  return ("tcp{%s}: %s"):format(self._kind, tostring(self._sock and self._sock:fileno() or "closed"))
end

-- The deadline logic of settimeout: per wait ('b') and per call ('t').
function TCP:_timer()
  local start, block, total = now(), self._block, self._total
  return function()
    local t = block
    if total ~= nil and total >= 0 then
      local left = math.max(0, total - (now() - start))
      if t == nil or t < 0 or left < t then t = left end
    end
    return t
  end
end

function TCP:_ensure(family)
  if self._sock == nil then
    self._sock = tsocket.socket(family or self._family or tsocket.AF_INET, tsocket.SOCK_STREAM)
    self._family = self._sock.family
  end
  return self._sock
end

function TCP:getfd() return self._sock and self._sock:fileno() or -1 end
function TCP:setfd() error("setfd is not supported by the trio_asyncio facade", 2) end
function TCP:dirty() return #self._buf > 0 end
function TCP:getstats() return self._received, self._sent, now() - self._born end
function TCP:setstats(received, sent, age)
  self._received, self._sent, self._born = received or self._received, sent or self._sent, now() - (age or 0)
  return 1
end

--- settimeout(value [, mode]): nil or negative: block; mode "b" (each
-- wait, default) or "t" (the whole call)
function TCP:settimeout(value, mode)
  if value ~= nil and type(value) ~= "number" then
    error(("bad argument #1 to 'settimeout' (number expected, got %s)"):format(type(value)), 2)
  end
  if mode == "t" or mode == "r" then self._total = value else self._block = value end
  return 1
end

function TCP:close()
  if self._sock then
    self._sock:close()
    self._sock = nil
  end
  self._kind = "closed"
  return 1
end
TCP.__close = TCP.close

local OPTIONS = {
  ["tcp-nodelay"] = function() return tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY end,
  keepalive = function() return tsocket.SOL_SOCKET, tsocket.SO_KEEPALIVE end,
  reuseaddr = function() return tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR end,
  reuseport = function() return tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT end,
  ["ipv6-v6only"] = function() return tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY end,
}

function TCP:setoption(name, value)
  local sock = self:_ensure()
  local ok, err
  if name == "linger" then
    if type(value) ~= "table" then return nil, "invalid linger value" end
    ok, err = pcall(sock.setsockopt, sock, tsocket.SOL_SOCKET, tsocket.SO_LINGER,
      string.pack("ii", value.on and 1 or 0, value.timeout or 0))
  elseif OPTIONS[name] then
    local level, opt = OPTIONS[name]()
    ok, err = pcall(sock.setsockopt, sock, level, opt, value and 1 or 0)
  else
    return nil, "unsupported option " .. tostring(name)
  end
  if not ok then return nil, message(err.code) end
  return 1
end

function TCP:getoption(name)
  if self._sock == nil then return nil, "closed" end
  if name == "linger" then
    local on, t = string.unpack("ii", self._sock:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_LINGER, 8))
    return { on = on ~= 0, timeout = t }
  end
  if not OPTIONS[name] then return nil, "unsupported option " .. tostring(name) end
  local level, opt = OPTIONS[name]()
  return self._sock:getsockopt(level, opt) ~= 0
end

local function family_name(f) return f == tsocket.AF_INET6 and "inet6" or "inet" end

local function names(self, peer)
  if self._sock == nil then return nil, "closed" end
  local ok, addr = pcall(peer and self._sock.getpeername or self._sock.getsockname, self._sock)
  if not ok then return nil, message(addr.code) end
  return addr[1], addr[2], family_name(self._family)
end
function TCP:getpeername() return names(self, true) end
function TCP:getsockname() return names(self, false) end

--- bind(address, port): "*" is every interface
function TCP:bind(address, port)
  if self._kind ~= "master" then return nil, "bind: not a master socket" end
  if address == "*" then address = self._family == tsocket.AF_INET6 and "::" or "0.0.0.0" end
  local addr = { address, math.tointeger(port) or port }
  if not numeric_family(address) and address ~= "localhost" then
    local list, err = resolve(address, port, self._family)
    if not list then return nil, err end
    addr = list[1].addr
    self:_ensure(list[1].family)
  end
  local sock = self:_ensure(numeric_family(addr[1]))
  local ok, err = pcall(sock.bind, sock, addr)
  if not ok then return nil, errors.OSError:is(err) and message(err.code) or tostring(err) end
  return 1
end

function TCP:listen(backlog)
  if self._kind ~= "master" then return nil, "listen: not a master socket" end
  local sock = self:_ensure()
  local ok, err = pcall(sock.listen, sock, backlog or 32)
  if not ok then return nil, message(err.code) end
  self._kind = "server"
  return 1
end

--- connect(address, port): the name is resolved; suspends until connected
function TCP:connect(address, port)
  if self._kind ~= "master" then return nil, "connect: not a master socket" end
  if type(address) ~= "string" then return nil, "invalid address" end
  local timer = self:_timer()
  local targets
  if numeric_family(address) or address == "localhost" then
    targets = { { family = numeric_family(address) or self._family or tsocket.AF_INET,
      addr = { address == "localhost" and "127.0.0.1" or address, math.tointeger(port) or port } } }
  else
    local err
    targets, err = resolve(address, port, self._family)
    if not targets then return nil, err end
  end
  local last = "connection refused"
  for _, t in ipairs(targets) do
    if self._sock ~= nil and self._sock.family ~= t.family then goto continue end
    do
      local sock = self:_ensure(t.family)
      local done, code = core.sock_raw_connect(sock, t.addr)
      if done == false then
        if not wait_fd(sock:fileno(), true, timer()) then return nil, "timeout" end
        local e = sock:getsockopt(tsocket.SOL_SOCKET, tsocket.SO_ERROR)
        if e == 0 then done = true else code = e end
      end
      if done then
        self._kind = "client"
        return 1
      end
      last = type(code) == "number" and message(({ [111] = "ECONNREFUSED", [110] = "ETIMEDOUT",
        [113] = "EHOSTUNREACH", [101] = "ENETUNREACH" })[code] or ("error " .. code)) or message(code)
      if #targets > 1 then -- a fresh socket for the next address
        sock:close()
        self._sock = nil
      end
    end
    ::continue::
  end
  return nil, last
end

--- accept() -> a client object, or nil, "timeout"
function TCP:accept()
  if self._kind ~= "server" then return nil, "accept: not a server socket" end
  local timer = self:_timer()
  while true do
    local conn, code = core.sock_raw_accept(self._sock)
    if conn then
      local c = new_tcp("client", self._family, conn)
      c._block, c._total = self._block, self._total
      return c
    end
    if code ~= "EAGAIN" then return nil, message(code) end
    if not wait_fd(self._sock:fileno(), false, timer()) then return nil, "timeout" end
  end
end

--- send(data [, i [, j]]) -> index of the last byte sent, or nil, err, last
function TCP:send(data, i, j)
  if self._kind ~= "client" then return nil, "closed" end
  if type(data) ~= "string" then
    error(("bad argument #1 to 'send' (string expected, got %s)"):format(type(data)), 2)
  end
  i, j = i or 1, j or #data
  if i < 0 then i = #data + i + 1 end
  if j < 0 then j = #data + j + 1 end
  if i < 1 then i = 1 end
  if j > #data then j = #data end
  local timer, pos = self:_timer(), i
  while pos <= j do
    local n, code = core.sock_raw_send(self._sock, data, pos, j)
    if n then
      pos = pos + n
      self._sent = self._sent + n
    elseif code == "EAGAIN" then
      if not wait_fd(self._sock:fileno(), true, timer()) then return nil, "timeout", pos - 1 end
    else
      return nil, message(code), pos - 1
    end
  end
  return j
end

-- Reads more into the buffer: true, or nil and "closed"/"timeout"/an error.
function TCP:_fill(timer)
  while true do
    local data, code = core.sock_raw_recv(self._sock, 8192)
    if data == "" then return nil, "closed" end
    if data then
      self._buf = self._buf .. data
      self._received = self._received + #data
      return true
    end
    if code ~= "EAGAIN" then return nil, message(code) end
    if not wait_fd(self._sock:fileno(), false, timer()) then return nil, "timeout" end
  end
end

--- receive([pattern="*l" [, prefix]]): "*l" a line (without its end),
-- "*a" everything until closed, or a number of bytes
function TCP:receive(pattern, prefix)
  if self._kind ~= "client" then return nil, "closed" end
  pattern = pattern or "*l"
  prefix = prefix or ""
  local timer = self:_timer()
  if type(pattern) == "number" then
    local n = math.floor(pattern)
    while #self._buf < n do
      local ok, err = self:_fill(timer)
      if not ok then
        local partial = self._buf
        self._buf = ""
        return nil, err, prefix .. partial
      end
    end
    local out = self._buf:sub(1, n)
    self._buf = self._buf:sub(n + 1)
    return prefix .. out
  end
  if pattern == "*l" or pattern == "l" then
    while true do
      local k = self._buf:find("\n", 1, true)
      if k then
        local line = self._buf:sub(1, k - 1):gsub("\r", "")
        self._buf = self._buf:sub(k + 1)
        return prefix .. line
      end
      local ok, err = self:_fill(timer)
      if not ok then
        local partial = self._buf:gsub("\r", "")
        self._buf = ""
        return nil, err, prefix .. partial
      end
    end
  end
  if pattern == "*a" or pattern == "a" then
    while true do
      local ok, err = self:_fill(timer)
      if not ok then
        local all = self._buf
        self._buf = ""
        if err == "closed" then return prefix .. all end
        return nil, err, prefix .. all
      end
    end
  end
  error(("bad argument #1 to 'receive' (invalid receive pattern %q)"):format(tostring(pattern)), 2)
end

--- shutdown(["both"|"send"|"receive"])
function TCP:shutdown(how)
  if self._kind ~= "client" then return nil, "closed" end
  local h = ({ both = tsocket.SHUT_RDWR, send = tsocket.SHUT_WR, receive = tsocket.SHUT_RD })[how or "both"]
  if not h then return nil, "invalid shutdown method" end
  local ok, err = pcall(self._sock.shutdown, self._sock, h)
  if not ok then return nil, message(err.code) end
  return 1
end

-- ---------------------------------------------------------------------
-- the module

--- tcp(): a master object (its socket is made at bind or connect, of the
-- family of the address)
function M.tcp() return new_tcp("master", nil) end
function M.tcp4() return new_tcp("master", tsocket.AF_INET) end
function M.tcp6() return new_tcp("master", tsocket.AF_INET6) end

--- connect(address, port [, locaddr [, locport]]) -> a client object, or nil, err
function M.connect(address, port, locaddr, locport)
  local c = M.tcp()
  if locaddr then
    local ok, err = c:bind(locaddr, locport or 0)
    if not ok then
      c:close()
      return nil, err
    end
  end
  local ok, err = c:connect(address, port)
  if not ok then
    c:close()
    return nil, err
  end
  return c
end

--- bind(address, port [, backlog=32]) -> a server object, or nil, err
function M.bind(address, port, backlog)
  local s = M.tcp()
  s:setoption("reuseaddr", true)
  local ok, err = s:bind(address, port)
  if ok then ok, err = s:listen(backlog or 32) end
  if not ok then
    s:close()
    return nil, err
  end
  return s
end

--- gettime() -> seconds (monotonic here; LuaSocket's is the epoch)
M.gettime = now

--- sleep(seconds): suspends the current task (blocks outside any run)
function M.sleep(seconds)
  local f = flavor()
  if f == "trio" then return trio.sleep(seconds) end
  if f == "asyncio" then return require("asyncio").sleep(seconds) end
  if core.is_running() then return end
  trio.run(trio.sleep, seconds)
end

M.dns = {}

--- dns.toip(name) -> the first address, and {name=, ip={...}}; or nil, err
function M.dns.toip(name)
  local list, err = resolve(name, nil, nil)
  if not list then return nil, err end
  local ips = {}
  for _, r in ipairs(list) do ips[#ips + 1] = r.addr[1] end
  return ips[1], { name = name, alias = {}, ip = ips }
end

--- dns.getaddrinfo(name) -> {{family="inet"|"inet6", addr=ip}, ...}
function M.dns.getaddrinfo(name)
  local list, err = resolve(name, nil, nil)
  if not list then return nil, err end
  local out = {}
  for _, r in ipairs(list) do out[#out + 1] = { family = family_name(r.family), addr = r.addr[1] } end
  return out
end

-- LuaSocket's error helpers, yield-safe.
function M.skip(d, ...)
  return select(d + 1, ...)
end

function M.newtry(finalizer)
  return function(...)
    if not (...) then
      if finalizer then pcall(finalizer) end
      error(setmetatable({ (select(2, ...)) }, { __tostring = function(e) return tostring(e[1]) end }), 0)
    end
    return ...
  end
end
M.try = M.newtry()

function M.protect(f)
  return function(...)
    local r = pack(pcall(f, ...))
    if r[1] then return unpack(r, 2, r.n) end
    local e = r[2]
    if type(e) == "table" and getmetatable(e) and rawget(e, 1) ~= nil then return nil, e[1] end
    error(e, 0)
  end
end

return M
