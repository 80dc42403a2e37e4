--- trio_asyncio.ssl: TLS contexts on OpenSSL, shared by trio.SSLStream and
-- asyncio's ssl= (Python's ssl module is the model).
--
--   local ssl = require "trio_asyncio.ssl"
--   local ctx = ssl.create_default_context()              -- a client: system CAs,
--                                                         -- verify peer and hostname
--   local srv = ssl.create_default_context { purpose = "server" }
--   srv:load_cert_chain("cert.pem", "key.pem")
--
-- A context's fields `verify_mode` ("none", "optional", "required") and
-- `check_hostname` are settable with Python's rules: turning check_hostname
-- on makes verify_mode "required"; verify_mode "none" is refused while
-- check_hostname is on.  Errors: SSLError (an OSError) and its subclass
-- SSLCertVerificationError, with OpenSSL's reason in the message.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"

local argerror = errors.argerror

local M = {
  SSLError = errors.SSLError,
  SSLCertVerificationError = errors.SSLCertVerificationError,
  CERT_NONE = "none",
  CERT_OPTIONAL = "optional",
  CERT_REQUIRED = "required",
  OPENSSL_VERSION = core.openssl_version,
}

-- A user value in a message: strings quoted, numbers and booleans as
-- they are, anything else by its type (its __tostring may fail).
local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return type(v)
end

local VERIFY_MODES = { none = true, optional = true, required = true }
local PURPOSES = { client = true, server = true }

local SSLContext = { __name = "trio_asyncio.ssl.SSLContext" }

local function check_context(self, fname)
  if getmetatable(self) ~= SSLContext then argerror(0, fname, "SSLContext expected") end
end

SSLContext.__index = function(self, key)
  if key == "verify_mode" then return rawget(self, "_verify_mode") end
  if key == "check_hostname" then return rawget(self, "_check_hostname") end
  return SSLContext[key]
end

local function set_verify_mode(self, mode)
  if not VERIFY_MODES[mode] then
    error(("SSLContext.verify_mode: \"none\", \"optional\" or \"required\" expected, got %s")
      :format(show(mode)), 3)
  end
  if mode == "none" and self._check_hostname then
    error("SSLContext.verify_mode: cannot be \"none\" while check_hostname is on "
      .. "(set check_hostname = false first)", 3)
  end
  self._ctx:set_verify(mode)
  rawset(self, "_verify_mode", mode)
end

SSLContext.__newindex = function(self, key, value)
  if key == "verify_mode" then
    set_verify_mode(self, value)
  elseif key == "check_hostname" then
    if type(value) ~= "boolean" then
      error("SSLContext.check_hostname: boolean expected, got " .. type(value), 2)
    end
    rawset(self, "_check_hostname", value)
    if value and self._verify_mode == "none" then set_verify_mode(self, "required") end
  else
    error(("SSLContext has no field %s to set"):format(show(key)), 2)
  end
end

function SSLContext:__tostring()
  return ("trio_asyncio.ssl.SSLContext (%s, verify_mode=%s, check_hostname=%s)"):format(
    self.purpose, self._verify_mode, tostring(self._check_hostname))
end

--- ssl.SSLContext([purpose="client"]): a bare context.  A client context
-- verifies the server and its hostname but trusts no CA yet; a server
-- context asks for no client certificate.
function M.SSLContext(purpose)
  purpose = purpose or "client"
  if not PURPOSES[purpose] then
    argerror(1, "SSLContext", "purpose: \"client\" or \"server\" expected, got " .. show(purpose))
  end
  local self = setmetatable({}, SSLContext)
  rawset(self, "_ctx", core.tls_context())
  rawset(self, "purpose", purpose)
  rawset(self, "_check_hostname", false)
  set_verify_mode(self, "none")
  if purpose == "client" then self.check_hostname = true end
  return self
end

--- ctx:load_cert_chain(certfile [, keyfile [, password]]): our certificate
-- chain and private key (PEM files; keyfile nil: the key is in certfile).
function SSLContext:load_cert_chain(certfile, keyfile, password)
  check_context(self, "load_cert_chain")
  if type(certfile) ~= "string" then argerror(1, "load_cert_chain", "certfile: path string expected") end
  if keyfile ~= nil and type(keyfile) ~= "string" then argerror(2, "load_cert_chain", "keyfile: path string expected") end
  if password ~= nil and type(password) ~= "string" then argerror(3, "load_cert_chain", "password: string expected") end
  self._ctx:load_cert_chain(certfile, keyfile, password)
end

--- ctx:load_verify_locations(cafile [, capath [, cadata]]), or with one
-- table {cafile=, capath=, cadata=}: CAs to trust (PEM file, hashed
-- directory, PEM text).
function SSLContext:load_verify_locations(cafile, capath, cadata)
  check_context(self, "load_verify_locations")
  if type(cafile) == "table" then
    local opts = errors.check_opts(cafile, 1, "load_verify_locations",
      { cafile = true, capath = true, cadata = true })
    cafile, capath, cadata = opts.cafile, opts.capath, opts.cadata
  end
  for i, v in ipairs { cafile or false, capath or false, cadata or false } do
    if v ~= false and type(v) ~= "string" then
      argerror(i, "load_verify_locations", ({ "cafile", "capath", "cadata" })[i] .. ": string expected")
    end
  end
  if cafile == nil and capath == nil and cadata == nil then
    argerror(1, "load_verify_locations", "cafile, capath or cadata must be given")
  end
  self._ctx:load_verify_locations(cafile, capath, cadata)
end

--- ctx:load_default_certs(): trust the system's CAs.
function SSLContext:load_default_certs()
  check_context(self, "load_default_certs")
  self._ctx:set_default_verify_paths()
end

--- ctx:set_alpn_protocols(list): {"h2", "http/1.1"}, most preferred first.
function SSLContext:set_alpn_protocols(list)
  check_context(self, "set_alpn_protocols")
  if type(list) ~= "table" then argerror(1, "set_alpn_protocols", "list of strings expected") end
  self._ctx:set_alpn_protocols(list)
end

--- ctx:set_ciphers(spec): OpenSSL's cipher list (for TLS 1.2).
function SSLContext:set_ciphers(spec)
  check_context(self, "set_ciphers")
  if type(spec) ~= "string" then argerror(1, "set_ciphers", "string expected") end
  self._ctx:set_ciphers(spec)
end

--- ctx:_wrap(server_side, server_hostname, fname) -> a TLS object of the
-- C core (csrc/io/tls.c), for trio.SSLStream and asyncio's transports.
-- fname names the public function in argument errors.
function SSLContext:_wrap(server_side, server_hostname, fname)
  if server_hostname ~= nil and type(server_hostname) ~= "string" then
    argerror(2, fname, "server_hostname: string expected, got " .. type(server_hostname))
  end
  if not server_side and self._check_hostname and server_hostname == nil then
    argerror(2, fname, "check_hostname requires server_hostname (or set ctx.check_hostname = false)")
  end
  return self._ctx:wrap(server_side, server_hostname, self._check_hostname)
end

-- -------------------------------------------------------------------
-- SSLObject: what asyncio's get_extra_info("ssl_object") returns (Python's
-- ssl.SSLObject, for looking at the connection).

local SSLObject = { __name = "trio_asyncio.ssl.SSLObject" }
SSLObject.__index = SSLObject

--- An SSLObject over a TLS object of the core.
function M._object(tls, context, server_side, server_hostname)
  return setmetatable({ _tls = tls, context = context, server_side = server_side,
    server_hostname = server_hostname }, SSLObject)
end

--- obj:getpeercert([binary_form]): as trio.SSLStream's
function SSLObject:getpeercert(binary_form) return self._tls:getpeercert(binary_form) end
--- obj:version() -> "TLSv1.3" (nil before the handshake)
function SSLObject:version() return self._tls:version() end
--- obj:cipher() -> name, protocol, bits
function SSLObject:cipher() return self._tls:cipher() end
--- obj:selected_alpn_protocol() -> the protocol agreed, or nil
function SSLObject:selected_alpn_protocol() return self._tls:selected_alpn_protocol() end

function SSLObject:__tostring()
  return ("trio_asyncio.ssl.SSLObject (%s)"):format(self.server_side and "server" or "client")
end

--- True for an SSLContext.
function M.is_context(v) return getmetatable(v) == SSLContext end

--- ssl.create_default_context{purpose="client"|"server", cafile=, capath=, cadata=}:
-- a client context verifies the server's certificate and hostname against
-- the given CAs, else the system's; a server context loads the given CAs
-- (to verify clients once verify_mode asks for it).
function M.create_default_context(opts)
  opts = errors.check_opts(opts, 1, "create_default_context",
    { purpose = true, cafile = true, capath = true, cadata = true })
  local purpose = opts.purpose or "client"
  if not PURPOSES[purpose] then
    argerror(1, "create_default_context", "purpose: \"client\" or \"server\" expected, got " .. show(purpose))
  end
  local ctx = M.SSLContext(purpose)
  if opts.cafile or opts.capath or opts.cadata then
    ctx:load_verify_locations(opts.cafile, opts.capath, opts.cadata)
  elseif purpose == "client" then
    ctx:load_default_certs()
  end
  return ctx
end

return M
