---@meta
-- lua-language-server stubs for TLS: `require "trio_asyncio.ssl"` (also
-- trio_asyncio.ssl), trio.SSLStream and its TCP helpers, and asyncio's
-- start_tls (see docs/API.md).  Functions marked ---@async may suspend.

---@alias trio_asyncio.ssl.VerifyMode "none"|"optional"|"required"

---@class trio_asyncio.ssl
local ssl = {}

---@class trio_asyncio
local trio_asyncio = {}
trio_asyncio.ssl = ssl

---Fields: reason, library (and errno/code/message of OSError).
---@class trio_asyncio.ssl.SSLError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ssl.SSLError
ssl.SSLError = {}
---Adds the fields verify_code and verify_message.
---@class trio_asyncio.ssl.SSLCertVerificationError: trio_asyncio.ssl.SSLError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ssl.SSLCertVerificationError
ssl.SSLCertVerificationError = {}

ssl.CERT_NONE = "none"
ssl.CERT_OPTIONAL = "optional"
ssl.CERT_REQUIRED = "required"
---@type string
ssl.OPENSSL_VERSION = ""

---@class trio_asyncio.ssl.SSLContext
---@field verify_mode trio_asyncio.ssl.VerifyMode
---@field check_hostname boolean
---@field purpose "client"|"server"
local SSLContext = {}

---@param purpose? "client"|"server"
---@return trio_asyncio.ssl.SSLContext
function ssl.SSLContext(purpose) end

---@param opts? {purpose?: "client"|"server", cafile?: string, capath?: string, cadata?: string}
---@return trio_asyncio.ssl.SSLContext
function ssl.create_default_context(opts) end

---@param v any
---@return boolean
function ssl.is_context(v) end

---@param certfile string
---@param keyfile? string
---@param password? string
function SSLContext:load_cert_chain(certfile, keyfile, password) end

---@param cafile string|{cafile?: string, capath?: string, cadata?: string}|nil
---@param capath? string
---@param cadata? string
function SSLContext:load_verify_locations(cafile, capath, cadata) end

function SSLContext:load_default_certs() end

---@param protocols string[]
function SSLContext:set_alpn_protocols(protocols) end

---@param spec string
function SSLContext:set_ciphers(spec) end

---What asyncio's get_extra_info("ssl_object") returns.
---@class trio_asyncio.ssl.SSLObject
---@field context trio_asyncio.ssl.SSLContext
---@field server_side boolean
---@field server_hostname string?
local SSLObject = {}

---@param binary_form? boolean
---@return table|string|nil
function SSLObject:getpeercert(binary_form) end

---@return string?
function SSLObject:version() end

---@return string? name
---@return string? protocol
---@return integer? bits
function SSLObject:cipher() end

---@return string?
function SSLObject:selected_alpn_protocol() end

---@class trio
local trio = {}

---@class trio.SSLStream
---@field transport_stream table
---@field context trio_asyncio.ssl.SSLContext
---@field server_side boolean
---@field server_hostname string?
local SSLStream = {}

---@param transport_stream table
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param opts? {server_side?: boolean, server_hostname?: string, https_compatible?: boolean}
---@return trio.SSLStream
function trio.SSLStream(transport_stream, ssl_context, opts) end

---@async
function SSLStream:do_handshake() end

---@async
---@param data string
function SSLStream:send_all(data) end

---@async
function SSLStream:wait_send_all_might_not_block() end

---@async
---@param max_bytes? integer
---@return string
function SSLStream:receive_some(max_bytes) end

---@async
---@return table transport_stream
---@return string trailing_bytes
function SSLStream:unwrap() end

function SSLStream:close() end

---@param binary_form? boolean
---@return table|string|nil
function SSLStream:getpeercert(binary_form) end

---@return string?
function SSLStream:selected_alpn_protocol() end

---@return string?
function SSLStream:version() end

---@return string? name
---@return string? protocol
---@return integer? bits
function SSLStream:cipher() end

---@class trio.SSLListener
---@field transport_listener table
---@field socket trio.socket.socket the transport listener's socket, when it has one
local SSLListener = {}

---@param transport_listener table
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param opts? {https_compatible?: boolean}
---@return trio.SSLListener
function trio.SSLListener(transport_listener, ssl_context, opts) end

---@async
---@return trio.SSLStream
function SSLListener:accept() end

function SSLListener:close() end

---@async
---@param host string
---@param port integer
---@param opts? {ssl_context?: trio_asyncio.ssl.SSLContext, https_compatible?: boolean, happy_eyeballs_delay?: number}
---@return trio.SSLStream
function trio.open_ssl_over_tcp_stream(host, port, opts) end

---@async
---@param port integer
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param opts? {host?: string, https_compatible?: boolean, backlog?: integer}
---@return trio.SSLListener[]
function trio.open_ssl_over_tcp_listeners(port, ssl_context, opts) end

---@async
---@param handler async fun(stream: trio.SSLStream)
---@param port integer
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param ... table options {host=, https_compatible=, backlog=, handler_nursery=, task_status=} and/or the task status
function trio.serve_ssl_over_tcp(handler, port, ssl_context, ...) end

---@class asyncio.Loop
local Loop = {}

---@async
---@param transport asyncio.Transport
---@param protocol table
---@param ssl_context trio_asyncio.ssl.SSLContext
---@param opts? {server_side?: boolean, server_hostname?: string, ssl_handshake_timeout?: number}
---@return asyncio.Transport
function Loop:start_tls(transport, protocol, ssl_context, opts) end
