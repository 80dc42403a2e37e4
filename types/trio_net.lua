---@meta
-- lua-language-server stubs for the networking part of `require "trio"`:
-- trio.socket, streams and servers, and trio.testing's stream tools (see
-- docs/API.md).  Functions marked ---@async may suspend: call them only
-- inside a Trio task.

---@class trio
local trio = {}

---@alias trio.Address {[1]: string, [2]: integer}|string
-- connect and sendto also take a service name as the port
---@alias trio.socket.Target {[1]: string, [2]: integer|string}|string

-- ---------------------------------------------------------------------
-- trio.socket

---@class trio.socket
local tsocket = {}
trio.socket = tsocket

---@type integer
tsocket.AF_INET = 0
---@type integer
tsocket.AF_INET6 = 0
---@type integer
tsocket.AF_UNIX = 0
---@type integer
tsocket.AF_UNSPEC = 0
---@type integer
tsocket.SOCK_STREAM = 0
---@type integer
tsocket.SOCK_DGRAM = 0
---@type integer
tsocket.SOL_SOCKET = 0
---@type integer
tsocket.SO_REUSEADDR = 0
---@type integer
tsocket.SO_REUSEPORT = 0
---@type integer
tsocket.SO_KEEPALIVE = 0
---@type integer
tsocket.SO_LINGER = 0
---@type integer
tsocket.SO_RCVBUF = 0
---@type integer
tsocket.SO_SNDBUF = 0
---@type integer
tsocket.SO_ERROR = 0
---@type integer
tsocket.SO_BROADCAST = 0
---@type integer
tsocket.SO_TYPE = 0
---@type integer
tsocket.SO_ACCEPTCONN = 0
---@type integer
tsocket.SO_RCVLOWAT = 0
---@type integer
tsocket.SO_SNDLOWAT = 0
---@type integer
tsocket.IPPROTO_IP = 0
---@type integer
tsocket.IPPROTO_IPV6 = 0
---@type integer
tsocket.IPPROTO_TCP = 0
---@type integer
tsocket.IPPROTO_UDP = 0
---@type integer
tsocket.IPV6_V6ONLY = 0
---@type integer
tsocket.IP_TTL = 0
---@type integer
tsocket.IP_MULTICAST_TTL = 0
---@type integer
tsocket.IP_MULTICAST_LOOP = 0
---@type integer
tsocket.TCP_NODELAY = 0
---@type integer
tsocket.TCP_KEEPIDLE = 0
---@type integer
tsocket.TCP_KEEPINTVL = 0
---@type integer
tsocket.TCP_KEEPCNT = 0
---@type integer
tsocket.TCP_NOTSENT_LOWAT = 0
---@type integer
tsocket.SHUT_RD = 0
---@type integer
tsocket.SHUT_WR = 0
---@type integer
tsocket.SHUT_RDWR = 0
---@type integer
tsocket.AI_PASSIVE = 0
---@type integer
tsocket.AI_CANONNAME = 0
---@type integer
tsocket.AI_NUMERICHOST = 0
---@type integer
tsocket.AI_NUMERICSERV = 0
---@type integer
tsocket.AI_ADDRCONFIG = 0
---@type integer
tsocket.AI_V4MAPPED = 0
---@type integer
tsocket.AI_ALL = 0
---@type integer
tsocket.NI_NUMERICHOST = 0
---@type integer
tsocket.NI_NUMERICSERV = 0
---@type integer
tsocket.NI_NAMEREQD = 0
---@type integer
tsocket.NI_DGRAM = 0
---@type integer
tsocket.NI_NOFQDN = 0
---@type integer
tsocket.SOMAXCONN = 0

---@class trio.socket.socket
---@field family integer
---@field type integer
---@field proto integer
local Socket = {}

---@param family? integer
---@param type? integer
---@param proto? integer
---@return trio.socket.socket
function tsocket.socket(family, type, proto) end

---@param family? integer
---@param type? integer
---@return trio.socket.socket a
---@return trio.socket.socket b
function tsocket.socketpair(family, type) end

---@param fd integer
---@param family integer
---@param type integer
---@param proto? integer
---@return trio.socket.socket
function tsocket.from_fd(fd, family, type, proto) end

---@alias trio.socket.AddrInfo {family: integer, type: integer, proto: integer, canonname: string, addr: trio.Address}

---@async
---@param host string?
---@param port integer|string|nil
---@param opts? {family?: integer, type?: integer, proto?: integer, flags?: integer}
---@return trio.socket.AddrInfo[]
function tsocket.getaddrinfo(host, port, opts) end

---@async
---@param addr trio.Address
---@param flags? integer
---@return string host
---@return string service
function tsocket.getnameinfo(addr, flags) end

---@param addr trio.Address
function Socket:bind(addr) end

---@param backlog? integer
function Socket:listen(backlog) end

---@async
---@return trio.socket.socket sock
---@return trio.Address addr
function Socket:accept() end

---@async
---@param addr trio.socket.Target
function Socket:connect(addr) end

---@async
---@param data string
---@return integer
function Socket:send(data) end

---@async
---@param max integer
---@return string
function Socket:recv(max) end

---@async
---@param data string
---@param addr trio.socket.Target
---@return integer
function Socket:sendto(data, addr) end

---@async
---@param max integer
---@return string data
---@return trio.Address addr
function Socket:recvfrom(max) end

---@param how integer
function Socket:shutdown(how) end

---@return trio.Address
function Socket:getsockname() end

---@return trio.Address
function Socket:getpeername() end

---@param level integer
---@param name integer
---@param value integer|boolean|string
function Socket:setsockopt(level, name, value) end

---@param level integer
---@param name integer
---@param buflen? integer
---@return integer|string
function Socket:getsockopt(level, name, buflen) end

---@return integer
function Socket:fileno() end

function Socket:close() end

-- ---------------------------------------------------------------------
-- streams

---@class trio.SocketStream
---@field socket trio.socket.socket
local SocketStream = {}

---@async
---@param data string
function SocketStream:send_all(data) end

---@async
function SocketStream:wait_send_all_might_not_block() end

---@async
function SocketStream:send_eof() end

---@async
---@param max_bytes? integer
---@return string
function SocketStream:receive_some(max_bytes) end

function SocketStream:close() end

---@param level integer
---@param name integer
---@param value integer|boolean|string
function SocketStream:setsockopt(level, name, value) end

---@param level integer
---@param name integer
---@param buflen? integer
---@return integer|string
function SocketStream:getsockopt(level, name, buflen) end

---@param sock trio.socket.socket
---@return trio.SocketStream
function trio.SocketStream(sock) end

---@class trio.SocketListener
---@field socket trio.socket.socket
local SocketListener = {}

---@async
---@return trio.SocketStream
function SocketListener:accept() end

function SocketListener:close() end

---@param sock trio.socket.socket
---@return trio.SocketListener
function trio.SocketListener(sock) end

---@class trio.StapledStream
---@field send_stream table
---@field receive_stream table
local StapledStream = {}

---@async
---@param data string
function StapledStream:send_all(data) end

---@async
function StapledStream:wait_send_all_might_not_block() end

---@async
function StapledStream:send_eof() end

---@async
---@param max_bytes? integer
---@return string
function StapledStream:receive_some(max_bytes) end

function StapledStream:close() end

---@param send_stream table
---@param receive_stream table
---@return trio.StapledStream
function trio.StapledStream(send_stream, receive_stream) end

---@async
---@param host string
---@param port integer
---@param opts? {happy_eyeballs_delay?: number, local_address?: string}
---@return trio.SocketStream
function trio.open_tcp_stream(host, port, opts) end

---@async
---@param port integer
---@param opts? {host?: string, backlog?: integer, reuse_port?: boolean}
---@return trio.SocketListener[]
function trio.open_tcp_listeners(port, opts) end

---@async
---@param handler async fun(stream: trio.SocketStream)
---@param port integer
---@param opts? {host?: string, backlog?: integer, reuse_port?: boolean, handler_nursery?: trio.Nursery, task_status?: trio.TaskStatus}
function trio.serve_tcp(handler, port, opts) end

---@async
---@param handler async fun(stream: table)
---@param listeners table[]
---@param opts? {handler_nursery?: trio.Nursery, task_status?: trio.TaskStatus}
function trio.serve_listeners(handler, listeners, opts) end

---@async
---@param path string
---@return trio.SocketStream
function trio.open_unix_socket(path) end

---@param path string
---@param opts? {backlog?: integer}
---@return trio.SocketListener
function trio.open_unix_listener(path, opts) end

---@async
---@param handler async fun(stream: trio.SocketStream)
---@param path string
---@param opts? {backlog?: integer, handler_nursery?: trio.Nursery, task_status?: trio.TaskStatus}
function trio.serve_unix(handler, path, opts) end

-- ---------------------------------------------------------------------
-- trio.testing: stream tools

---@class trio.testing
local testing = {}
trio.testing = testing

---@class trio.testing.MemorySendStream
local MemorySendStream = {}

---@async
---@param data string
function MemorySendStream:send_all(data) end

---@async
function MemorySendStream:wait_send_all_might_not_block() end

function MemorySendStream:close() end

---@async
---@param max_bytes? integer
---@return string
function MemorySendStream:get_data(max_bytes) end

---@param max_bytes? integer
---@return string
function MemorySendStream:get_data_nowait(max_bytes) end

---@class trio.testing.MemoryReceiveStream
local MemoryReceiveStream = {}

---@async
---@param max_bytes? integer
---@return string
function MemoryReceiveStream:receive_some(max_bytes) end

function MemoryReceiveStream:close() end

---@param data string
function MemoryReceiveStream:put_data(data) end

function MemoryReceiveStream:put_eof() end

---@param hooks? {send_all_hook?: async fun(), wait_send_all_might_not_block_hook?: async fun(), close_hook?: fun()}
---@return trio.testing.MemorySendStream
function testing.MemorySendStream(hooks) end

---@param hooks? {receive_some_hook?: async fun(), close_hook?: fun()}
---@return trio.testing.MemoryReceiveStream
function testing.MemoryReceiveStream(hooks) end

---@param send_stream trio.testing.MemorySendStream
---@param receive_stream trio.testing.MemoryReceiveStream
---@param max_bytes? integer
---@return boolean
function testing.memory_stream_pump(send_stream, receive_stream, max_bytes) end

---@return trio.testing.MemorySendStream
---@return trio.testing.MemoryReceiveStream
function testing.memory_stream_one_way_pair() end

---@return trio.StapledStream
---@return trio.StapledStream
function testing.memory_stream_pair() end

---@return table send
---@return table receive
function testing.lockstep_stream_one_way_pair() end

---@return trio.StapledStream
---@return trio.StapledStream
function testing.lockstep_stream_pair() end

---@async
---@param listener trio.SocketListener
---@return trio.SocketStream
function testing.open_stream_to_socket_listener(listener) end

---@async
---@param make_pair async fun(): table, table
---@param make_clogged_pair? async fun(): table, table
function testing.check_one_way_stream(make_pair, make_clogged_pair) end

---@async
---@param make_pair async fun(): table, table
---@param make_clogged_pair? async fun(): table, table
function testing.check_two_way_stream(make_pair, make_clogged_pair) end

---@async
---@param make_pair async fun(): table, table
---@param make_clogged_pair? async fun(): table, table
function testing.check_half_closeable_stream(make_pair, make_clogged_pair) end

return trio
