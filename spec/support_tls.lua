--- support_tls.lua: certificates for the TLS specs, made at test time with
-- the openssl command in a temporary directory (no key is committed).
--
--   local certs = require("support_tls").certs()
--   certs.ca          CA certificate (PEM file) that signed the others
--   certs.cert, .key  server certificate for localhost and 127.0.0.1
--   certs.other_cert, .other_key  a certificate for "other.example" (same CA)
--   certs.self_cert, .self_key    a self-signed certificate for localhost
--   certs.dir         the directory (removed at exit of the process)
local M = {}

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  if not ok then error("support_tls: command failed: " .. cmd, 2) end
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local cached

--- The set of certificates (made once per process).
function M.certs()
  if cached then return cached end
  local dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. dir)
  local c = { dir = dir }
  local function p(name) return dir .. "/" .. name end
  c.ca, c.ca_key = p("ca.pem"), p("ca.key")
  sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    .. "-subj '/CN=trio-asyncio test CA' -keyout %s -out %s"):format(c.ca_key, c.ca))
  local function signed(name, cn, san)
    local key, csr, cert, ext = p(name .. ".key"), p(name .. ".csr"), p(name .. ".pem"), p(name .. ".ext")
    write(ext, "subjectAltName=" .. san .. "\n")
    sh(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      .. "-subj '/O=trio-asyncio tests/CN=%s' -keyout %s -out %s"):format(cn, key, csr))
    sh(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 2 -extfile %s -out %s")
      :format(csr, c.ca, c.ca_key, ext, cert))
    return cert, key
  end
  c.cert, c.key = signed("server", "localhost", "DNS:localhost,IP:127.0.0.1")
  c.other_cert, c.other_key = signed("other", "other.example", "DNS:other.example")
  c.client_cert, c.client_key = signed("client", "client", "DNS:client")
  c.self_cert, c.self_key = p("self.pem"), p("self.key")
  sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    .. "-subj '/CN=localhost' -addext subjectAltName=DNS:localhost -keyout %s -out %s")
    :format(c.self_key, c.self_cert))
  -- removed when the state closes (busted runs each file in its own process)
  setmetatable(c, { __gc = function() os.execute("rm -rf " .. dir) end })
  cached = c
  return c
end

--- A server context with the test certificate, and a client context
-- trusting the test CA.
function M.contexts()
  local ssl = require "trio_asyncio.ssl"
  local c = M.certs()
  local server = ssl.create_default_context { purpose = "server" }
  server:load_cert_chain(c.cert, c.key)
  local client = ssl.create_default_context { cafile = c.ca }
  return server, client
end

--- Reads a whole file.
function M.read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

return M
