-- TLS with peers no one here wrote, over loopback: openssl s_server and
-- s_client, curl, and Python's ssl module as client and as server, against
-- trio.SSLStream and asyncio's ssl=.  Certificates are made at test time
-- (spec/support_tls.lua).  Each peer runs in the background with a bound
-- (net.background); servers there accept one connection and exit.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local ssl = require "trio_asyncio.ssl"
local net = require "support_net"
local tls = require "support_tls"

local LIMIT = 10
local PYTHON = "/usr/bin/python3"

local function have(cmd) return net.need(cmd, pending) end

local free_port = net.free_port

-- Trio-flavored: a TCP stream to port once something listens there.
local function connect_when_listening(port)
  for _ = 1, LIMIT * 20 do
    local ok, stream = pcall(trio.open_tcp_stream, "127.0.0.1", port)
    if ok then return stream end
    trio.sleep(0.05)
  end
  error("nothing listens on port " .. port)
end

local function receive_all(stream)
  local parts = {}
  while true do
    local data = stream:receive_some()
    if data == "" then return table.concat(parts) end
    parts[#parts + 1] = data
  end
end

local function python(script, ...)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(script)
  h:close()
  local args = {}
  for i, a in ipairs { ... } do args[i] = ("'%s'"):format(tostring(a)) end
  return net.background(("%s %s %s; rc=$?; rm -f %s; exit $rc"):format(PYTHON, f, table.concat(args, " "), f), LIMIT)
end

local function echo_once(stream)
  local data = stream:receive_some()
  stream:send_all(data)
end

describe("openssl s_server", function()
  it("serves trio.open_ssl_over_tcp_stream (HTTP over TLS 1.3, verified against the test CA)", function()
    if not have("openssl") then return end
    local c = tls.certs()
    local port = free_port()
    local server = net.background(("timeout %d openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www -naccept 1")
      :format(LIMIT, port, c.cert, c.key), LIMIT + 1)
    local response, version
    trio.run(function()
      trio.fail_after(LIMIT, function()
        local tcp = connect_when_listening(port)
        local s = trio.SSLStream(tcp, ssl.create_default_context { cafile = c.ca },
          { server_hostname = "localhost", https_compatible = true })
        s:send_all("GET / HTTP/1.0\r\n\r\n")
        response = receive_all(s)
        version = s:version()
        s:close()
      end)
      server.wait(trio.sleep)
    end)
    assert.equal("TLSv1.3", version)
    assert.truthy(response:find("^HTTP/1.0 200 ok"), response)
    assert.truthy(response:find("s_server", 1, true), response)
  end)

  it("refuses a TLS 1.2 client's renegotiation (the client fails, the server sees a broken stream)", function()
    if not have("openssl") then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server" }
    server_ctx:load_cert_chain(c.cert, c.key)
    local got, out = {}, nil
    -- the client asks for renegotiation only once the server has its first
    -- line (a flag file), however slow the server is (valgrind)
    local flag = os.tmpname()
    os.remove(flag)
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
            while true do
              local ok, data = pcall(stream.receive_some, stream)
              if not ok then
                got[#got + 1] = data
                return
              end
              if data == "" then return end
              got[#got + 1] = data
              stream:send_all(data)
              io.open(flag, "w"):close()
            end
          end, 0, server_ctx, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          -- "R" on a line of its own asks s_client to renegotiate
          local client = net.background(("(printf 'one\\n'; i=0; while [ ! -e %s ] && [ $i -lt 200 ]; do sleep 0.05;"
            .. " i=$((i+1)); done; printf 'R\\n'; sleep 0.3; printf 'two\\n')"
            .. " | timeout %d openssl s_client -connect 127.0.0.1:%d -tls1_2 -CAfile %s -servername localhost")
            :format(flag, LIMIT, port, c.ca), LIMIT + 1)
          local _
          _, out = client.wait(trio.sleep)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    os.remove(flag)
    assert.equal("one\n", got[1], out)
    assert.truthy(out:find("RENEGOTIATING", 1, true), out)
    assert.truthy(out:find("no renegotiation", 1, true), out)
    assert.equal(2, #got)
    assert.is_true(trio.BrokenResourceError:is(got[2]))
    assert.is_true(ssl.SSLError:is(got[2].cause))
  end)
end)

describe("openssl s_client", function()
  it("talks to trio.serve_ssl_over_tcp and verifies its certificate", function()
    if not have("openssl") then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server" }
    server_ctx:load_cert_chain(c.cert, c.key)
    local code, out
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
            local data = stream:receive_some()
            stream:send_all("echo: " .. data)
          end, 0, server_ctx, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local client = net.background(("printf 'hello\\n' | timeout %d openssl s_client -connect 127.0.0.1:%d"
            .. " -CAfile %s -verify_return_error -verify_hostname localhost -servername localhost -quiet")
            :format(LIMIT, port, c.ca), LIMIT + 1)
          code, out = client.wait(trio.sleep)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    assert.equal(0, code, out)
    assert.truthy(out:find("echo: hello\n", 1, true), out)
  end)

  it("fails to verify a server whose certificate names another host", function()
    if not have("openssl") then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server" }
    server_ctx:load_cert_chain(c.other_cert, c.other_key)
    local code, out, server_errors = nil, nil, {}
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
            local ok, err = pcall(stream.do_handshake, stream)
            if not ok then server_errors[#server_errors + 1] = err end
          end, 0, server_ctx, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local client = net.background(("timeout %d openssl s_client -connect 127.0.0.1:%d"
            .. " -CAfile %s -verify_return_error -verify_hostname localhost -servername localhost </dev/null")
            :format(LIMIT, port, c.ca), LIMIT + 1)
          code, out = client.wait(trio.sleep)
          trio.sleep(0.1)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    assert.are_not.equal(0, code)
    assert.truthy(out:find("verify error", 1, true), out)
    assert.equal(1, #server_errors)
    assert.is_true(trio.BrokenResourceError:is(server_errors[1]))
    assert.is_true(ssl.SSLError:is(server_errors[1].cause))
  end)
end)

describe("curl", function()
  it("gets a page from asyncio.start_server with ssl= (verifying it with --cacert)", function()
    if not have("curl") then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server" }
    server_ctx:load_cert_chain(c.cert, c.key)
    server_ctx:set_alpn_protocols { "http/1.1" }
    local code, out, alpn
    asyncio.run(function()
      asyncio.wait_for(asyncio.create_task(function()
        local server = asyncio.start_server(function(reader, writer)
          local request = reader:readline()
          repeat local h = reader:readline() until h == "\r\n" or h == ""
          alpn = writer:get_extra_info("ssl_object"):selected_alpn_protocol()
          local body = "asyncio over TLS got " .. request:match("^GET (%S+)") .. "\n"
          writer:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body))
          writer:drain()
          writer:close()
        end, "127.0.0.1", 0, { ssl = server_ctx })
        local port = server.sockets[1]:getsockname()[2]
        local curl = net.background(("curl -sS --max-time %d --cacert %s --resolve localhost:%d:127.0.0.1 "
          .. "https://localhost:%d/page"):format(LIMIT, c.ca, port, port), LIMIT + 1)
        code, out = curl.wait(asyncio.sleep)
        server:close()
        server:wait_closed()
      end), LIMIT + 2)
    end)
    assert.equal(0, code, out)
    assert.equal("asyncio over TLS got /page\n", out)
    assert.equal("http/1.1", alpn)
  end)

  it("rejects our server without the CA, and we survive it", function()
    if not have("curl") then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server" }
    server_ctx:load_cert_chain(c.cert, c.key)
    local code, out, second
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
            local ok, req = pcall(stream.receive_some, stream) -- the first curl gives up
            if ok and req:find("^GET") then
              stream:send_all("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            end
          end, 0, server_ctx, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          local url = ("https://localhost:%d/"):format(port)
          local resolve = ("--resolve localhost:%d:127.0.0.1"):format(port)
          code, out = net.background(("curl -sS --max-time %d %s %s"):format(LIMIT, resolve, url), LIMIT + 1)
            .wait(trio.sleep)
          local _
          _, second = net.background(("curl -sS --max-time %d --cacert %s %s %s"):format(LIMIT, c.ca, resolve, url),
            LIMIT + 1).wait(trio.sleep)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    assert.are_not.equal(0, code)
    assert.truthy(out:lower():find("certificate"), out)
    assert.equal("ok\n", second)
  end)
end)

describe("Python's ssl module", function()
  it("as a client of trio.serve_ssl_over_tcp, with a client certificate the server requires", function()
    if not have(PYTHON) then return end
    local c = tls.certs()
    local server_ctx = ssl.create_default_context { purpose = "server", cafile = c.ca }
    server_ctx:load_cert_chain(c.cert, c.key)
    server_ctx.verify_mode = "required"
    local code, out, peer
    trio.run(function()
      trio.fail_after(LIMIT, function()
        trio.open_nursery(function(n)
          local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
            stream:do_handshake()
            peer = stream:getpeercert()
            echo_once(stream)
            assert.equal("", stream:receive_some())
          end, 0, server_ctx, { host = "127.0.0.1" })
          local port = ls[1].socket:getsockname()[2]
          code, out = python([[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"ping")
        print(s.recv(100).decode(), s.version())
        s.unwrap()
]], port, c.ca, c.client_cert, c.client_key).wait(trio.sleep)
          n.cancel_scope:cancel()
        end)
      end)
    end)
    assert.equal(0, code, out)
    assert.equal("ping TLSv1.3\n", out)
    assert.same({ { "organizationName", "trio-asyncio tests" } }, peer.subject[1])
    assert.same({ { "commonName", "client" } }, peer.subject[2])
    assert.same({ { "DNS", "client" } }, peer.subjectAltName)
  end)

  it("as a server for asyncio.open_connection(ssl=) used from Trio through aio_as_trio", function()
    if not have(PYTHON) then return end
    local c = tls.certs()
    local port = free_port()
    local reply, peercert
    local server = python([[
import socket, ssl, sys
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ctx.set_alpn_protocols(["h2", "echo/1"])
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as ls:
    open(sys.argv[4], "w").close()
    conn, _ = ls.accept()
    with ctx.wrap_socket(conn, server_side=True) as s:
        data = s.recv(100)
        s.sendall(b"python got " + data + b" via " + s.selected_alpn_protocol().encode())
        s.unwrap()
]], port, c.cert, c.key, c.dir .. "/listening")
    ta.run(function()
      trio.fail_after(LIMIT, function()
        while not io.open(c.dir .. "/listening") do trio.sleep(0.02) end
        reply, peercert = ta.aio_as_trio(function()
          local ctx = ssl.create_default_context { cafile = c.ca }
          ctx:set_alpn_protocols { "echo/1" }
          local reader, writer = asyncio.open_connection("localhost", port, { ssl = ctx })
          writer:write("hello")
          local data = reader:read()
          local cert = writer:get_extra_info("peercert")
          writer:close()
          return data, cert
        end)()
      end)
      server.wait(trio.sleep)
    end)
    assert.equal("python got hello via echo/1", reply)
    assert.same({ { "commonName", "localhost" } }, peercert.subject[2])
  end)
end)
