-- https_get.lua: an asyncio-flavored HTTPS client (asyncio.open_connection
-- with ssl=), used from Trio code through trio_asyncio.aio_as_trio.
--   lua5.4 examples/https_get.lua                        a demo against a local server
--   lua5.4 examples/https_get.lua https://host[:port]/   GET that URL (verified
--                                                        against the system's CAs)
-- The demo makes a throwaway CA and a certificate for "localhost" with the
-- openssl command, serves HTTPS with trio.serve_ssl_over_tcp, and shows
-- what verification refuses (a name the certificate does not have, a CA
-- the client does not trust).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local ssl = require "trio_asyncio.ssl"

-- ---------------------------------------------------------------------
-- the asyncio-flavored client library

local https = {}

--- https.get(url [, ssl_context]) -> status, headers, body, tls_version
-- (asyncio-flavored; asks the server to close after the response)
function https.get(url, ctx)
  local host, port, path = url:match("^https://([^/:]+):?(%d*)(/?.*)$")
  assert(host, "only https://host[:port]/path URLs: " .. url)
  local reader, writer = asyncio.open_connection(host, tonumber(port) or 443, { ssl = ctx or true })
  local ok, response = pcall(function()
    writer:write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: trio-asyncio-lua\r\n\r\n")
      :format(path == "" and "/" or path, host))
    return reader:read() -- until the server closes
  end)
  local version = writer:get_extra_info("ssl_object"):version()
  writer:close()
  if not ok then error(response, 0) end
  local head, body = response:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "not an HTTP response")
  local status = tonumber(head:match("^HTTP/1%.[01] (%d+)"))
  local headers = {}
  for k, v in head:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  return status, headers, body, version
end

-- ---------------------------------------------------------------------
-- Trio code using it

local get = ta.aio_as_trio(https.get) -- a Trio-flavored function now

local url = arg and arg[1]

-- A CA and a certificate for localhost, in a temporary directory.
local function make_certificates()
  local dir = os.tmpname()
  os.remove(dir)
  local function sh(cmd) assert(os.execute(cmd .. " >/dev/null 2>&1"), "failed: " .. cmd) end
  sh("mkdir " .. dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  sh(("cd %s && openssl req -x509 %s -days 1 -subj '/CN=example CA' -keyout ca.key -out ca.pem"):format(dir, ec))
  sh(("cd %s && openssl req %s -subj /CN=localhost -keyout key.pem -out req.pem"):format(dir, ec))
  sh(("cd %s && printf 'subjectAltName=DNS:localhost\\n' > ext && openssl x509 -req -in req.pem "
    .. "-CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out cert.pem"):format(dir))
  return dir
end

ta.run(function()
  if url then
    local status, headers, body, version = trio.fail_after(10, get, url)
    print("status", status, version, "content-type", headers["content-type"])
    io.write(body)
    return
  end
  local dir = make_certificates()
  local server_ctx = ssl.create_default_context { purpose = "server" }
  server_ctx:load_cert_chain(dir .. "/cert.pem", dir .. "/key.pem")
  local client_ctx = ssl.create_default_context { cafile = dir .. "/ca.pem" }
  trio.open_nursery(function(nursery)
    local listeners = nursery:start(trio.serve_ssl_over_tcp, function(stream)
      local ok, request = pcall(stream.receive_some, stream) -- a refused client breaks its stream
      if not ok then return end
      local body = "hello over HTTPS, you asked for " .. request:match("^GET (%S+)") .. "\n"
      stream:send_all(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
        :format(#body, body))
    end, 0, server_ctx, { host = "127.0.0.1" })
    local port = listeners[1].socket:getsockname()[2]

    local status, headers, body, version = trio.fail_after(5, get, ("https://localhost:%d/index"):format(port),
      client_ctx)
    print("GET https://localhost/index ->", status, version, headers["content-type"], (body:gsub("\n$", "")))

    local ok, err = pcall(get, ("https://127.0.0.1:%d/"):format(port), client_ctx)
    print("by address (not in the certificate) ->", not ok and ssl.SSLCertVerificationError:is(err))

    ok, err = pcall(get, ("https://localhost:%d/"):format(port)) -- the system's CAs only
    print("without our CA ->", not ok and ssl.SSLCertVerificationError:is(err), err.verify_message)
    nursery.cancel_scope:cancel()
  end)
  os.execute("rm -rf " .. dir)
  print("https_get example: done")
end)
