--- trio.socket: Python's socket module made async, on the C sockets of
-- csrc/io/ (also asyncio.socket: the same module).
--
-- Calls that never wait are plain: socket, socketpair, from_fd, and the
-- socket methods bind, listen, getsockname, getpeername, setsockopt,
-- getsockopt, shutdown, fileno, close.  accept, connect, send, recv,
-- sendto, recvfrom are Trio-flavored (asyncio code uses loop:sock_*), as
-- are getaddrinfo and getnameinfo here (asyncio: loop:getaddrinfo).
-- Addresses are {host, port} arrays, or a path string for AF_UNIX.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local M = {}

for k, v in pairs(core.socket_constants()) do M[k] = v end

local AF_INET, AF_INET6 = M.AF_INET, M.AF_INET6

local argerror = errors.argerror

local function check_int(v, n, fname, what)
  if math.type(v) ~= "integer" then
    argerror(n, fname, ("%s: integer expected, got %s"):format(what, math.type(v) or type(v)))
  end
end

--- socket([family=AF_INET [, type=SOCK_STREAM [, proto=0]]])
function M.socket(family, type_, proto)
  if family ~= nil then check_int(family, 1, "socket", "family") end
  if type_ ~= nil then check_int(type_, 2, "socket", "type") end
  if proto ~= nil then check_int(proto, 3, "socket", "proto") end
  return core.socket(family, type_, proto)
end

--- socketpair([family=AF_UNIX [, type=SOCK_STREAM]]) -> a, b (connected)
M.socketpair = core.socketpair

--- from_fd(fd, family, type [, proto]): a socket on a duplicate of fd
-- (its family, type and protocol are read from the fd, as Trio's fromfd)
M.from_fd = core.socket_from_fd

-- ---------------------------------------------------------------------
-- name resolution (Trio-flavored)

--- Waits for a lookup request; a cancellation drops the request.
local function lookup(req)
  while true do
    local a, b = core.dns_result(req)
    if a ~= nil then return a, b end
    local ok, err = pcall(core.trio_wait_io, req, 0)
    if not ok then
      core.dns_cancel(req)
      error(err, 0)
    end
  end
end
M._lookup = lookup

-- getaddrinfo's options, all integers
local GETADDRINFO_OPTS = { family = true, type = true, proto = true, flags = true }

--- The checks getaddrinfo shares with loop:getaddrinfo; returns opts.
function M._check_getaddrinfo(host, port, opts, fname)
  if host ~= nil and type(host) ~= "string" then
    argerror(1, fname, "host string or nil expected, got " .. type(host))
  end
  if port ~= nil and math.type(port) ~= "integer" and type(port) ~= "string" then
    argerror(2, fname, "port integer, service name or nil expected, got " .. (math.type(port) or type(port)))
  end
  if math.type(port) == "integer" and (port < 0 or port > 65535) then
    argerror(2, fname, "port must be 0-65535")
  end
  opts = errors.check_opts(opts, 3, fname, GETADDRINFO_OPTS)
  for k, v in pairs(opts) do
    if math.type(v) ~= "integer" then
      argerror(3, fname, ("option %s: integer expected, got %s"):format(k, type(v)))
    end
  end
  return opts
end

--- getaddrinfo(host, port, {family=, type=, proto=, flags=}) -> list of
-- {family=, type=, proto=, canonname=, addr={host, port}}; raises gaierror
-- (an address and a port number are read at once, with no thread, as
-- Trio does; anything else is looked up on libuv's thread pool)
function M.getaddrinfo(host, port, opts)
  opts = M._check_getaddrinfo(host, port, opts, "getaddrinfo")
  core.check_trio("trio.socket.getaddrinfo")
  local lowlevel = require("trio").lowlevel
  lowlevel.checkpoint_if_cancelled()
  local family, sock_type, proto, flags = opts.family, opts.type, opts.proto, opts.flags
  local numeric = core.dns_getaddrinfo(host, port, family, sock_type, proto, flags, true)
  if numeric == nil then return lookup(core.dns_getaddrinfo(host, port, family, sock_type, proto, flags)) end
  -- finished: its list, or its gaierror, which comes after the schedule
  -- point too (Trio's _try_sync)
  local found, list = pcall(lookup, numeric)
  lowlevel.cancel_shielded_checkpoint()
  if not found then error(list, 0) end
  return list
end

--- The checks getnameinfo shares with loop:getnameinfo.
function M._check_getnameinfo(addr, flags, fname)
  if type(addr) ~= "table" or type(addr[1]) ~= "string" or math.type(addr[2]) ~= "integer" then
    argerror(1, fname, "address {host, port} expected")
  end
  if flags ~= nil and math.type(flags) ~= "integer" then
    argerror(2, fname, "integer flags expected, got " .. type(flags))
  end
end

--- getnameinfo(addr [, flags]) -> host, service
function M.getnameinfo(addr, flags)
  M._check_getnameinfo(addr, flags, "getnameinfo")
  core.check_trio("trio.socket.getnameinfo")
  local lowlevel = require("trio").lowlevel
  lowlevel.checkpoint_if_cancelled()
  local started, req = pcall(core.dns_getnameinfo, addr, flags)
  if not started then -- not a numeric address: a gaierror, after a schedule point as Trio's
    lowlevel.cancel_shielded_checkpoint()
    error(req, 0)
  end
  return lookup(req)
end

-- ---------------------------------------------------------------------
-- socket methods written in Lua

local methods = core.metatable("trio_asyncio.socket").__methods

--- Whether host needs no lookup: an address of family, "", "localhost" or
-- "<broadcast>" (the C layer reads these itself).  Shared with asyncio's
-- loop:sock_* (asyncio/net.lua).
local function is_numeric(family, host)
  if host == "" or host == "localhost" or host == "<broadcast>" then return true end
  if family == AF_INET then return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil end
  return host:find(":", 1, true) ~= nil
end
M._is_numeric = is_numeric

--- The flags of the lookup of a socket's address: AI_V4MAPPED for a
-- dual-stack AF_INET6 socket (IPV6_V6ONLY off), as Trio's, so that an IPv4
-- address or name gives its V4-mapped address.
local function lookup_flags(sock)
  if sock.family ~= AF_INET6 then return 0 end
  local read, v6only = pcall(sock.getsockopt, sock, M.IPPROTO_IPV6, M.IPV6_V6ONLY)
  return read and v6only == 0 and M.AI_V4MAPPED or 0
end

--- A name in an IP address, or a service name as its port, is resolved
-- first (Trio resolves in connect, sendto and bind; bind here takes
-- numeric addresses only, being a plain call).  As in Trio, the host ""
-- is the local host, and "<broadcast>" is 255.255.255.255, V4-mapped on
-- AF_INET6 (the C layer reads it for AF_INET).
local function resolved(sock, addr, fname)
  local family = sock.family
  if (family ~= AF_INET and family ~= AF_INET6) or type(addr) ~= "table" or type(addr[1]) ~= "string"
      or (math.type(addr[2]) ~= "integer" and type(addr[2]) ~= "string") then
    return addr -- not an address: the call's argument error
  end
  local host = addr[1]
  local v6_broadcast = family == AF_INET6 and host == "<broadcast>"
  if not v6_broadcast and is_numeric(family, host) and type(addr[2]) ~= "string" then return addr end
  if host == "" then host = nil elseif v6_broadcast then host = "255.255.255.255" end
  local list = M.getaddrinfo(host, addr[2], { family = family, type = sock.type, flags = lookup_flags(sock) })
  if #list == 0 then
    error(errors.gaierror { message = fname .. " " .. addr[1] .. ": no address", code = "EAI_NONAME" }, 0)
  end
  return list[1].addr
end

local raw_connect, raw_sendto = methods.connect, methods.sendto

--- sock:connect(addr); cancelled, also while the name is looked up, it
-- closes the socket (Trio's rule)
function methods.connect(sock, addr)
  local found, target = pcall(resolved, sock, addr, "connect")
  if not found then
    if errors.Cancelled:is(target) then sock:close() end
    error(target, 0)
  end
  return raw_connect(sock, target)
end

--- sock:sendto(data, addr) -> bytes sent
function methods.sendto(sock, data, addr)
  return raw_sendto(sock, data, resolved(sock, addr, "sendto"))
end

--- is_trio_socket(x) -> true for a socket of this module
function M._is_socket(x)
  return getmetatable(x) == core.metatable("trio_asyncio.socket")
end

return M
