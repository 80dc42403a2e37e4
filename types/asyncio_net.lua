---@meta
-- lua-language-server stubs for the networking part of `require "asyncio"`
-- (see docs/API.md).  Functions marked ---@async may suspend: call them
-- only inside an asyncio Task.

---@class asyncio
local asyncio = {}

---@class asyncio.Loop
local Loop = {}

-- ---------------------------------------------------------------------
-- asyncio.socket: the same module as trio.socket

---@class asyncio.socket: trio.socket
local asocket = {}
asyncio.socket = asocket

---@type integer
asocket.AF_INET = 0
---@type integer
asocket.AF_INET6 = 0
---@type integer
asocket.AF_UNIX = 0
---@type integer
asocket.AF_UNSPEC = 0
---@type integer
asocket.SOCK_STREAM = 0
---@type integer
asocket.SOCK_DGRAM = 0
---@type integer
asocket.SOL_SOCKET = 0
---@type integer
asocket.SO_REUSEADDR = 0
---@type integer
asocket.SO_REUSEPORT = 0
---@type integer
asocket.SO_KEEPALIVE = 0
---@type integer
asocket.SO_LINGER = 0
---@type integer
asocket.SO_RCVBUF = 0
---@type integer
asocket.SO_SNDBUF = 0
---@type integer
asocket.SO_ERROR = 0
---@type integer
asocket.SO_BROADCAST = 0
---@type integer
asocket.SO_TYPE = 0
---@type integer
asocket.SO_ACCEPTCONN = 0
---@type integer
asocket.SO_RCVLOWAT = 0
---@type integer
asocket.SO_SNDLOWAT = 0
---@type integer
asocket.IPPROTO_IP = 0
---@type integer
asocket.IPPROTO_IPV6 = 0
---@type integer
asocket.IPPROTO_TCP = 0
---@type integer
asocket.IPPROTO_UDP = 0
---@type integer
asocket.IPV6_V6ONLY = 0
---@type integer
asocket.IP_TTL = 0
---@type integer
asocket.IP_MULTICAST_TTL = 0
---@type integer
asocket.IP_MULTICAST_LOOP = 0
---@type integer
asocket.TCP_NODELAY = 0
---@type integer
asocket.TCP_KEEPIDLE = 0
---@type integer
asocket.TCP_KEEPINTVL = 0
---@type integer
asocket.TCP_KEEPCNT = 0
---@type integer
asocket.TCP_NOTSENT_LOWAT = 0
---@type integer
asocket.SHUT_RD = 0
---@type integer
asocket.SHUT_WR = 0
---@type integer
asocket.SHUT_RDWR = 0
---@type integer
asocket.AI_PASSIVE = 0
---@type integer
asocket.AI_CANONNAME = 0
---@type integer
asocket.AI_NUMERICHOST = 0
---@type integer
asocket.AI_NUMERICSERV = 0
---@type integer
asocket.AI_ADDRCONFIG = 0
---@type integer
asocket.AI_V4MAPPED = 0
---@type integer
asocket.AI_ALL = 0
---@type integer
asocket.NI_NUMERICHOST = 0
---@type integer
asocket.NI_NUMERICSERV = 0
---@type integer
asocket.NI_NAMEREQD = 0
---@type integer
asocket.NI_DGRAM = 0
---@type integer
asocket.NI_NOFQDN = 0
---@type integer
asocket.SOMAXCONN = 0

---@param family? integer
---@param type? integer
---@param proto? integer
---@return trio.socket.socket
function asocket.socket(family, type, proto) end

---@return trio.socket.socket a
---@return trio.socket.socket b
function asocket.socketpair(family, type) end

---@return trio.socket.socket
function asocket.from_fd(fd, family, type, proto) end

---Trio-flavored (asyncio code uses loop:getaddrinfo).
---@return trio.socket.AddrInfo[]
function asocket.getaddrinfo(host, port, opts) end

---Trio-flavored (asyncio code uses loop:getnameinfo).
---@return string host
---@return string service
function asocket.getnameinfo(addr, flags) end

-- ---------------------------------------------------------------------
-- streams

---@class asyncio.StreamReader
local StreamReader = {}

---@async
---@param n? integer
---@return string
function StreamReader:read(n) end

---@async
---@return string
function StreamReader:readline() end

---@async
---@param n integer
---@return string
function StreamReader:readexactly(n) end

---@async
---@param separator? string
---@return string
function StreamReader:readuntil(separator) end

---@return fun(): string?
function StreamReader:lines() end

---@return boolean
function StreamReader:at_eof() end

---@return any
function StreamReader:exception() end

---@param data string
function StreamReader:feed_data(data) end

function StreamReader:feed_eof() end

---@param exc any
function StreamReader:set_exception(exc) end

---@param transport asyncio.Transport
function StreamReader:set_transport(transport) end

---@class asyncio.StreamWriter
---@field transport asyncio.Transport
local StreamWriter = {}

---@param data string
function StreamWriter:write(data) end

---@param list string[]
function StreamWriter:writelines(list) end

---@async
function StreamWriter:drain() end

function StreamWriter:write_eof() end

---@return boolean
function StreamWriter:can_write_eof() end

function StreamWriter:close() end

---@return boolean
function StreamWriter:is_closing() end

---@async
function StreamWriter:wait_closed() end

---@param name string
---@param default? any
---@return any
function StreamWriter:get_extra_info(name, default) end

---@async
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param opts? {server_hostname?: string, ssl_handshake_timeout?: number}
function StreamWriter:start_tls(ssl_context, opts) end

---@class asyncio.StreamReaderProtocol
local StreamReaderProtocol = {}
---@param transport asyncio.Transport
function StreamReaderProtocol:connection_made(transport) end
---@param data string
function StreamReaderProtocol:data_received(data) end
---@return boolean
function StreamReaderProtocol:eof_received() end
---@param exc any
function StreamReaderProtocol:connection_lost(exc) end
function StreamReaderProtocol:pause_writing() end
function StreamReaderProtocol:resume_writing() end

---@param limit? integer
---@param loop? asyncio.Loop
---@return asyncio.StreamReader
function asyncio.StreamReader(limit, loop) end

---@return asyncio.StreamWriter
function asyncio.StreamWriter(transport, protocol, reader, loop) end

---@param reader asyncio.StreamReader
---@param client_connected_cb? fun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter)
---@param loop? asyncio.Loop
---@return asyncio.StreamReaderProtocol
function asyncio.StreamReaderProtocol(reader, client_connected_cb, loop) end

---@async
---@param host string
---@param port integer
---@param opts? table
---@return asyncio.StreamReader reader
---@return asyncio.StreamWriter writer
function asyncio.open_connection(host, port, opts) end

---@async
---@param client_connected_cb fun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter)
---@param host string?
---@param port integer?
---@param opts? table
---@return asyncio.Server
function asyncio.start_server(client_connected_cb, host, port, opts) end

---@async
---@param path string
---@param opts? table
---@return asyncio.StreamReader reader
---@return asyncio.StreamWriter writer
function asyncio.open_unix_connection(path, opts) end

---@async
---@param client_connected_cb fun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter)
---@param path string
---@param opts? table
---@return asyncio.Server
function asyncio.start_unix_server(client_connected_cb, path, opts) end

-- ---------------------------------------------------------------------
-- transports and servers

---@class asyncio.Transport
local Transport = {}
---@param data string
function Transport:write(data) end
---@param list string[]
function Transport:writelines(list) end
function Transport:write_eof() end
---@return boolean
function Transport:can_write_eof() end
function Transport:close() end
function Transport:abort() end
---@return boolean
function Transport:is_closing() end
function Transport:pause_reading() end
function Transport:resume_reading() end
---@return boolean
function Transport:is_reading() end
---@return integer
function Transport:get_write_buffer_size() end
---@param high? integer
---@param low? integer
function Transport:set_write_buffer_limits(high, low) end
---@return integer low
---@return integer high
function Transport:get_write_buffer_limits() end
---@param name string
---@param default? any
---@return any
function Transport:get_extra_info(name, default) end
---@return table
function Transport:get_protocol() end
---@param protocol table
function Transport:set_protocol(protocol) end

---@class asyncio.DatagramTransport
local DatagramTransport = {}
---@param data string
---@param addr? trio.Address
function DatagramTransport:sendto(data, addr) end
function DatagramTransport:close() end
function DatagramTransport:abort() end
---@return boolean
function DatagramTransport:is_closing() end
---@return integer
function DatagramTransport:get_write_buffer_size() end
---@param name string
---@param default? any
---@return any
function DatagramTransport:get_extra_info(name, default) end
---@return table
function DatagramTransport:get_protocol() end
---@param protocol table
function DatagramTransport:set_protocol(protocol) end

---@class asyncio.Server
---@field sockets trio.socket.socket[] its listening sockets; empty once closed
local Server = {}
function Server:close() end
---@async
function Server:wait_closed() end
---@async
function Server:serve_forever() end
---@async
function Server:start_serving() end
---@return boolean
function Server:is_serving() end
---@return asyncio.Loop
function Server:get_loop() end

---@async
---@param protocol_factory fun(): table
---@param host string
---@param port integer
---@param opts? table
---@return asyncio.Transport transport
---@return table protocol
function Loop:create_connection(protocol_factory, host, port, opts) end

---@class asyncio.staggered
local staggered = {}
asyncio.staggered = staggered

---@async
---@param fns function[] the attempts, started in order
---@param delay number? seconds between starts; nil: the next starts only when one fails
---@param loop? asyncio.Loop
---@return any winner_result
---@return integer? winner_index
---@return any[] exceptions one per attempt started: its error, false for the winner
function staggered.staggered_race(fns, delay, loop) end

---@async
---@param protocol_factory fun(): table
---@param host string?
---@param port integer?
---@param opts? table
---@return asyncio.Server
function Loop:create_server(protocol_factory, host, port, opts) end

---@async
---@return asyncio.Transport transport
---@return table protocol
function Loop:create_unix_connection(protocol_factory, path, opts) end

---@async
---@return asyncio.Server
function Loop:create_unix_server(protocol_factory, path, opts) end

---@async
---@param protocol_factory fun(): table
---@param opts? table
---@return asyncio.DatagramTransport transport
---@return table protocol
function Loop:create_datagram_endpoint(protocol_factory, opts) end

---@async
---@return trio.socket.AddrInfo[]
function Loop:getaddrinfo(host, port, opts) end

---@async
---@return string host
---@return string service
function Loop:getnameinfo(addr, flags) end

---@async
function Loop:sock_connect(sock, addr) end
---@async
---@return trio.socket.socket conn
---@return trio.Address address
function Loop:sock_accept(sock) end
---@async
---@return string
function Loop:sock_recv(sock, n) end
---@async
function Loop:sock_sendall(sock, data) end
---@async
---@return integer
function Loop:sock_sendto(sock, data, addr) end
---@async
---@return string data
---@return trio.Address addr
function Loop:sock_recvfrom(sock, n) end

return asyncio
