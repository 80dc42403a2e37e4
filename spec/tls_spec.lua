-- TLS on both flavors and across the bridge: contexts and their errors,
-- trio.SSLStream over TCP, asyncio's ssl= and start_tls, and faults (a peer
-- that closes mid-handshake, sends garbage, stalls; wrong names, untrusted
-- certificates, missing files).  Certificates: spec/support_tls.lua.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local ssl = require "trio_asyncio.ssl"
local tls = require "support_tls"
local support = require "support"

local errof, assert_has = support.errof, support.assert_has
local LIMIT = 30 -- bounds a hang; valgrind on a busy machine needs more than 10 s for check_two_way_stream's handshakes

local certs = tls.certs()
local SERVER_CTX, CLIENT_CTX = tls.contexts()

local function trio_run(fn)
  return trio.run(function() return trio.fail_after(LIMIT, fn) end)
end

local function aio_run(fn)
  return asyncio.run(function() return asyncio.wait_for(asyncio.create_task(fn), LIMIT) end)
end

-- Trio: serves handler over TLS on 127.0.0.1 while fn(port) runs.
local function with_trio_server(ctx, handler, fn)
  trio.open_nursery(function(n)
    local ls = n:start(trio.serve_ssl_over_tcp, function(stream)
      local ok, err = pcall(handler, stream)
      if not ok and not trio.BrokenResourceError:is(err) then error(err, 0) end
    end, 0, ctx, { host = "127.0.0.1" })
    fn(ls[1].socket:getsockname()[2])
    n.cancel_scope:cancel()
  end)
end

-- Trio: a plain TCP server whose handler does anything (garbage, silence).
local function with_raw_server(handler, fn)
  trio.open_nursery(function(n)
    local ls = n:start(trio.serve_tcp, handler, 0, { host = "127.0.0.1" })
    fn(ls[1].socket:getsockname()[2])
    n.cancel_scope:cancel()
  end)
end

local function echo(stream)
  while true do
    local data = stream:receive_some()
    if data == "" then return end
    stream:send_all(data)
  end
end

describe("trio_asyncio.ssl contexts", function()
  it("create_default_context: a client verifies peer and hostname, a server asks nothing", function()
    local client = ssl.create_default_context()
    assert.equal("required", client.verify_mode)
    assert.is_true(client.check_hostname)
    assert.equal("client", client.purpose)
    local server = ssl.create_default_context { purpose = "server" }
    assert.equal("none", server.verify_mode)
    assert.is_false(server.check_hostname)
    assert.truthy(ssl.OPENSSL_VERSION:find("OpenSSL", 1, true))
  end)

  it("check_hostname and verify_mode follow Python's rules", function()
    local ctx = ssl.create_default_context { purpose = "server" }
    ctx.check_hostname = true
    assert.equal("required", ctx.verify_mode)
    assert_has(errof(function() ctx.verify_mode = "none" end), "cannot be \"none\" while check_hostname is on")
    ctx.check_hostname = false
    ctx.verify_mode = "optional"
    assert.equal("optional", ctx.verify_mode)
    assert_has(errof(function() ctx.verify_mode = "sometimes" end), "\"none\", \"optional\" or \"required\" expected")
    assert_has(errof(function() ctx.check_hostname = 1 end), "boolean expected")
    assert_has(errof(function() ctx.verfy_mode = "none" end), "SSLContext has no field \"verfy_mode\"")
  end)

  it("bad arguments raise at once, naming the function", function()
    assert_has(errof(ssl.create_default_context, { purpose = "both" }), "bad argument #1 to 'create_default_context'")
    assert_has(errof(ssl.create_default_context, { cafle = "x" }), "unknown option 'cafle'")
    local ctx = ssl.create_default_context { purpose = "server" }
    assert_has(errof(ctx.load_cert_chain, ctx, 42), "bad argument #1 to 'load_cert_chain'")
    assert_has(errof(ctx.load_verify_locations, ctx), "cafile, capath or cadata must be given")
    assert_has(errof(ctx.set_alpn_protocols, ctx, "h2"), "bad argument #1 to 'set_alpn_protocols'")
    assert_has(errof(ctx.set_alpn_protocols, ctx, { "" }), "protocol 1 must be a string of 1 to 255 bytes")
    assert_has(errof(ctx.set_alpn_protocols, ctx, { ("x"):rep(256) }), "1 to 255 bytes")
    assert_has(errof(ctx.set_ciphers, ctx, "NO-SUCH-CIPHER"), "set_ciphers: [SSL: NO_CIPHER_MATCH]")
    assert_has(errof(trio.SSLStream, {}, ctx), "bad argument #1 to 'SSLStream' (a stream expected)")
    local a = trio.testing.memory_stream_pair()
    assert_has(errof(trio.SSLStream, a, {}), "bad argument #2 to 'SSLStream'")
    assert_has(errof(trio.SSLStream, a, CLIENT_CTX), "check_hostname requires server_hostname")
    assert_has(errof(trio.SSLStream, a, CLIENT_CTX, { server_hostname = 1 }), "server_hostname: string expected")
  end)

  it("every argument of every TLS entry point: bad values give clean errors, never a crash or hang", function()
    local VALUES = require("bad_input_cases").VALUES
    local function clean(fname, ok, err)
      if ok then return end
      if type(err) == "table" then return end -- an error object (OSError, SSLError, Cancelled...)
      assert(type(err) == "string" and (err:find("bad argument", 1, true) or err:find(fname, 1, true)),
        fname .. ": unclean error: " .. tostring(err))
    end
    local ctx_methods = { load_cert_chain = 3, load_verify_locations = 3, set_alpn_protocols = 1, set_ciphers = 1 }
    for _, v in ipairs(VALUES) do
      for name, n in pairs(ctx_methods) do
        for i = 1, n do
          local args = { certs.cert, certs.key, nil }
          args[i] = v[2]()
          local ctx = ssl.create_default_context { purpose = "server" }
          clean(name, pcall(ctx[name], ctx, table.unpack(args, 1, n)))
        end
      end
      clean("create_default_context", pcall(ssl.create_default_context, v[2]()))
      clean("create_default_context", pcall(ssl.create_default_context, { cafile = v[2]() }))
      clean("SSLContext", pcall(ssl.SSLContext, v[2]()))
    end
    trio_run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local port = listener.socket:getsockname()[2]
      local entry = {
        { "SSLStream", function() return trio.testing.memory_stream_pair(), CLIENT_CTX, { server_hostname = "x" } end },
        { "SSLListener", function() return listener, SERVER_CTX, {} end },
        { "open_ssl_over_tcp_stream", function() return "127.0.0.1", port, { ssl_context = CLIENT_CTX } end },
        { "open_ssl_over_tcp_listeners", function() return 0, SERVER_CTX, { host = "127.0.0.1" } end },
        { "serve_ssl_over_tcp", function() return echo, 0, SERVER_CTX, { host = "127.0.0.1" } end },
      }
      for _, e in ipairs(entry) do
        local fname = e[1]
        for i = 1, select("#", e[2]()) do
          for _, v in ipairs(VALUES) do
            local args = table.pack(e[2]())
            args[i] = v[2]()
            local ok, r = pcall(trio.move_on_after, 0.05, trio[fname], table.unpack(args, 1, args.n))
            clean(fname, ok, r)
            if ok and fname == "open_ssl_over_tcp_listeners" then
              for _, l in ipairs(select(2, pcall(trio[fname], table.unpack(args, 1, args.n))) or {}) do
                pcall(l.close, l)
              end
            end
          end
        end
      end
      listener:close()
    end)
    aio_run(function()
      local loop = asyncio.get_running_loop()
      local server = asyncio.start_server(function() end, "127.0.0.1", 0)
      local port = server.sockets[1]:getsockname()[2]
      for i = 1, 4 do
        for _, v in ipairs(VALUES) do
          local transport = loop:create_connection(function() return {} end, "127.0.0.1", port)
          local args = { transport, {}, CLIENT_CTX, { server_hostname = "localhost", ssl_handshake_timeout = 0.05 } }
          args[i] = v[2]()
          clean("start_tls", pcall(asyncio.wait_for, asyncio.create_task(function()
            return loop:start_tls(table.unpack(args, 1, 4))
          end), 0.5))
          transport:abort()
        end
      end
      server:close()
    end)
  end)

  it("a missing certificate or CA file is a FileNotFoundError naming the file", function()
    local ctx = ssl.create_default_context { purpose = "server" }
    local e = errof(ctx.load_cert_chain, ctx, "/nonexistent/cert.pem", certs.key)
    assert.is_true(ta.FileNotFoundError:is(e))
    assert.equal("/nonexistent/cert.pem", e.filename)
    assert_has(e, "load_cert_chain: /nonexistent/cert.pem")
    e = errof(ctx.load_cert_chain, ctx, certs.cert, "/nonexistent/key.pem")
    assert.equal("/nonexistent/key.pem", e.filename)
    e = errof(ssl.create_default_context, { cafile = "/nonexistent/ca.pem" })
    assert.is_true(ta.FileNotFoundError:is(e))
    assert.equal("/nonexistent/ca.pem", e.filename)
  end)

  it("a file that is no certificate, or a key that does not match, is an SSLError naming the file", function()
    local ctx = ssl.create_default_context { purpose = "server" }
    local bogus = os.tmpname()
    local f = assert(io.open(bogus, "w"))
    f:write("this is not PEM\n")
    f:close()
    local e = errof(ctx.load_cert_chain, ctx, bogus, certs.key)
    os.remove(bogus)
    assert.is_true(ssl.SSLError:is(e))
    assert.is_true(ta.OSError:is(e)) -- as in Python
    assert_has(e, bogus)
    assert.equal("SSL", e.library) -- Python says "[SSL] PEM lib" too
    e = errof(ctx.load_cert_chain, ctx, certs.cert, certs.other_key)
    assert.is_true(ssl.SSLError:is(e))
    assert_has(e, certs.other_key)
    assert_has(e, "KEY_VALUES_MISMATCH")
    assert_has(errof(ssl.create_default_context, { cadata = "no certificate here" }), "cadata holds no PEM certificate")
  end)

  it("cadata trusts the PEM text given", function()
    local ctx = ssl.create_default_context { cadata = tls.read(certs.ca) }
    trio_run(function()
      local a, b = trio.testing.memory_stream_pair()
      local c = trio.SSLStream(a, ctx, { server_hostname = "localhost" })
      local s = trio.SSLStream(b, SERVER_CTX, { server_side = true })
      trio.open_nursery(function(n)
        n:start_soon(c.do_handshake, c)
        n:start_soon(s.do_handshake, s)
      end)
      assert.equal("TLSv1.3", c:version())
    end)
  end)
end)

describe("trio.SSLStream", function()
  it("passes check_two_way_stream over TCP", function()
    trio_run(function()
      local listener = trio.open_tcp_listeners(0, { host = "127.0.0.1" })[1]
      local function make_pair()
        local client_tcp = trio.testing.open_stream_to_socket_listener(listener)
        local server_tcp = listener:accept()
        return trio.SSLStream(client_tcp, CLIENT_CTX, { server_hostname = "localhost" }),
          trio.SSLStream(server_tcp, SERVER_CTX, { server_side = true })
      end
      trio.testing.check_two_way_stream(make_pair)
      listener:close()
    end)
  end)

  it("getpeercert is shaped like Python's; binary form is DER; {} when not verified", function()
    trio_run(function()
      with_trio_server(SERVER_CTX, echo, function(port)
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX })
        assert_has(errof(s.getpeercert, s), "the handshake has not completed yet")
        assert.is_nil(s:version())
        s:do_handshake()
        local cert = s:getpeercert()
        assert.same({ { { "organizationName", "trio-asyncio tests" } }, { { "commonName", "localhost" } } },
          cert.subject)
        assert.same({ { { "commonName", "trio-asyncio test CA" } } }, cert.issuer)
        assert.same({ { "DNS", "localhost" }, { "IP Address", "127.0.0.1" } }, cert.subjectAltName)
        assert.equal(3, cert.version)
        assert.truthy(cert.notBefore:match("^%a%a%a +%d+ %d%d:%d%d:%d%d %d%d%d%d GMT$"), cert.notBefore)
        assert.truthy(cert.notAfter:match("^%a%a%a +%d+ %d%d:%d%d:%d%d %d%d%d%d GMT$"), cert.notAfter)
        assert.truthy(cert.serialNumber:match("^%x+$"))
        local der = s:getpeercert(true)
        assert.equal(0x30, der:byte(1)) -- an ASN.1 SEQUENCE
        local name, version, bits = s:cipher()
        assert.equal("TLSv1.3", version)
        assert.truthy(#name > 0 and bits >= 128)
        s:close()

        local unverified = ssl.create_default_context()
        unverified.check_hostname = false
        unverified.verify_mode = "none"
        s = trio.open_ssl_over_tcp_stream("127.0.0.1", port, { ssl_context = unverified })
        s:do_handshake()
        assert.same({}, s:getpeercert())
        s:close()
      end)
    end)
  end)

  it("agrees on ALPN", function()
    local server = ssl.create_default_context { purpose = "server" }
    server:load_cert_chain(certs.cert, certs.key)
    server:set_alpn_protocols { "http/1.1", "h2" }
    local client = ssl.create_default_context { cafile = certs.ca }
    client:set_alpn_protocols { "h2", "http/1.1" }
    local other = ssl.create_default_context { cafile = certs.ca }
    other:set_alpn_protocols { "spdy/1" }
    trio_run(function()
      with_trio_server(server, echo, function(port)
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = client })
        s:do_handshake()
        assert.equal("http/1.1", s:selected_alpn_protocol()) -- the server's preference
        s:close()
        s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = other })
        s:do_handshake()
        assert.is_nil(s:selected_alpn_protocol())
        s:close()
      end)
    end)
  end)

  it("a wrong hostname or an untrusted certificate: BrokenResourceError caused by SSLCertVerificationError", function()
    local self_signed = ssl.create_default_context { purpose = "server" }
    self_signed:load_cert_chain(certs.self_cert, certs.self_key)
    trio_run(function()
      with_trio_server(SERVER_CTX, echo, function(port)
        local tcp = trio.open_tcp_stream("127.0.0.1", port)
        local s = trio.SSLStream(tcp, CLIENT_CTX, { server_hostname = "other.example" })
        local e = errof(s.send_all, s, "x")
        assert.is_true(trio.BrokenResourceError:is(e))
        assert.is_true(ssl.SSLCertVerificationError:is(e.cause))
        assert.equal("CERTIFICATE_VERIFY_FAILED", e.cause.reason)
        assert.equal(62, e.cause.verify_code) -- X509_V_ERR_HOSTNAME_MISMATCH
        assert_has(e.cause, "Hostname mismatch, certificate is not valid for 'other.example'.")
        assert_has(errof(s.receive_some, s), "this SSLStream is broken")
        s:close()
      end)
      with_trio_server(self_signed, echo, function(port)
        local e = errof(function()
          local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX })
          s:do_handshake()
        end)
        assert.is_true(ssl.SSLCertVerificationError:is(e.cause))
        assert_has(e.cause, "self-signed certificate")
      end)
    end)
  end)

  it("a server that requires a client certificate refuses a client without one", function()
    local server = ssl.create_default_context { purpose = "server", cafile = certs.ca }
    server:load_cert_chain(certs.cert, certs.key)
    server.verify_mode = "required"
    local server_errors = {}
    trio_run(function()
      with_trio_server(server, function(stream)
        local ok, err = pcall(stream.do_handshake, stream)
        if not ok then server_errors[#server_errors + 1] = err end
      end, function(port)
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX })
        -- TLS 1.3: the client's handshake ends before the server's check
        local ok, err = pcall(function()
          s:do_handshake()
          return s:receive_some()
        end)
        assert.is_false(ok)
        assert.is_true(trio.BrokenResourceError:is(err))
        assert_has(err.cause, "CERTIFICATE_REQUIRED")
        s:close()
        trio.testing.wait_all_tasks_blocked()
      end)
    end)
    assert.equal(1, #server_errors)
    assert_has(server_errors[1].cause, "peer did not return a certificate")
  end)

  it("a peer that closes mid-handshake, or sends garbage: BrokenResourceError, never a hang", function()
    trio_run(function()
      with_raw_server(function(stream) stream:receive_some() end, function(port) -- reads the hello, closes
        local e = errof(function()
          trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX }):do_handshake()
        end)
        assert.is_true(trio.BrokenResourceError:is(e))
        assert.equal("UNEXPECTED_EOF_WHILE_READING", e.cause.reason)
        -- https_compatible: the same EOF reads as the end of the stream
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX,
          https_compatible = true })
        assert.equal("", s:receive_some())
        s:close()
      end)
      with_raw_server(function(stream)
        stream:receive_some()
        stream:send_all("HTTP/1.0 400 Bad Request\r\n\r\nthis is not TLS at all\n")
      end, function(port)
        local e = errof(function()
          trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX }):do_handshake()
        end)
        assert.is_true(trio.BrokenResourceError:is(e))
        assert.is_true(ssl.SSLError:is(e.cause))
        assert.equal("SSL", e.cause.library)
      end)
    end)
  end)

  it("a server survives clients that send garbage or nothing, and serves the next one", function()
    trio_run(function()
      with_trio_server(SERVER_CTX, echo, function(port)
        local raw = trio.open_tcp_stream("127.0.0.1", port)
        raw:send_all(("\22\3\1\0\5garbage"):rep(100))
        local answer = ""
        repeat
          local data = raw:receive_some()
          answer = answer .. data
        until data == ""
        assert.equal(21, answer:byte(1)) -- a TLS alert record, then the server gave up on it
        raw:close()
        local silent = trio.open_tcp_stream("127.0.0.1", port)
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX })
        s:send_all("still here")
        assert.equal("still here", s:receive_some())
        s:close()
        silent:close()
      end)
    end)
  end)

  it("serve_ssl_over_tcp serves a burst of clients connected before it accepts (one accept, the rest waiting)", function()
    trio_run(function()
      local listeners = trio.open_ssl_over_tcp_listeners(0, SERVER_CTX, { host = "127.0.0.1" })
      local port = listeners[1].socket:getsockname()[2]
      local tcps = {}
      for i = 1, 8 do tcps[i] = trio.open_tcp_stream("127.0.0.1", port) end
      trio.open_nursery(function(n)
        n:start_soon(trio.serve_listeners, function(stream)
          local ok, err = pcall(echo, stream)
          if not ok and not trio.BrokenResourceError:is(err) then error(err, 0) end
        end, listeners)
        trio.open_nursery(function(clients)
          for i, tcp in ipairs(tcps) do
            clients:start_soon(function()
              local s = trio.SSLStream(tcp, CLIENT_CTX, { server_hostname = "localhost" })
              s:send_all("client " .. i)
              assert.equal("client " .. i, s:receive_some())
              s:close()
            end)
          end
        end)
        n.cancel_scope:cancel()
      end)
    end)
  end)

  it("SSLListener:_accept_nowait wraps a waiting connection; nil over a listener that cannot say", function()
    trio_run(function()
      local listener = trio.open_ssl_over_tcp_listeners(0, SERVER_CTX, { host = "127.0.0.1" })[1]
      assert.is_nil(listener:_accept_nowait())
      local tcp = trio.open_tcp_stream("127.0.0.1", listener.socket:getsockname()[2])
      local server = listener:_accept_nowait()
      assert.equal("trio.SSLStream", getmetatable(server).__name)
      assert.is_true(server.server_side)
      trio.open_nursery(function(n)
        n:start_soon(function() server:send_all(server:receive_some()) end)
        local client = trio.SSLStream(tcp, CLIENT_CTX, { server_hostname = "localhost" })
        client:send_all("over TLS")
        assert.equal("over TLS", client:receive_some())
        client:close()
      end)
      server:close()
      listener:close()
      local plain = { accept = function() error("not called") end }
      assert.is_nil(trio.SSLListener(plain, SERVER_CTX):_accept_nowait())
    end)
  end)

  it("a stalled handshake is cancelled by a deadline; the stream closes cleanly after", function()
    trio_run(function()
      with_raw_server(function() trio.sleep_forever() end, function(port)
        local s = trio.open_ssl_over_tcp_stream("localhost", port, { ssl_context = CLIENT_CTX })
        local scope = trio.move_on_after(0.2, s.do_handshake, s)
        assert.is_true(scope.cancelled_caught)
        assert_has(errof(s.send_all, s, "x"), "this SSLStream is broken")
        s:close()
        assert_has(errof(s.receive_some, s), "this SSLStream was already closed")
      end)
    end)
  end)

  it("unwrap over TCP: TLS first, then plain bytes on the same connection", function()
    trio_run(function()
      local client_sock, server_sock = trio.socket.socketpair()
      local c = trio.SSLStream(trio.SocketStream(client_sock), CLIENT_CTX, { server_hostname = "localhost" })
      local s = trio.SSLStream(trio.SocketStream(server_sock), SERVER_CTX, { server_side = true })
      trio.open_nursery(function(n)
        n:start_soon(function()
          c:send_all("secret")
          local raw, trailing = c:unwrap()
          assert.equal("", trailing)
          raw:send_all("plain")
          raw:close()
        end)
        n:start_soon(function()
          assert.equal("secret", s:receive_some())
          local raw, trailing = s:unwrap()
          local got = trailing
          while #got < 5 do got = got .. raw:receive_some() end
          assert.equal("plain", got)
          raw:close()
        end)
      end)
    end)
  end)

  it("is Trio-flavored: from an asyncio task it raises FlavorError and stays usable", function()
    trio_run(function()
      local a, b = trio.testing.memory_stream_pair()
      local c = trio.SSLStream(a, CLIENT_CTX, { server_hostname = "localhost" })
      local s = trio.SSLStream(b, SERVER_CTX, { server_side = true })
      ta.open_loop(function()
        local e = ta.aio_as_trio(function() return errof(c.send_all, c, "x") end)()
        assert.is_true(ta.FlavorError:is(e))
      end)
      trio.open_nursery(function(n)
        n:start_soon(c.send_all, c, "after")
        n:start_soon(function() assert.equal("after", s:receive_some()) end)
      end)
    end)
  end)
end)

describe("asyncio ssl=", function()
  it("create_connection / create_server with protocols: the contract holds over TLS", function()
    local events = {}
    aio_run(function()
      local loop = asyncio.get_running_loop()
      local done = loop:create_future()
      local server = loop:create_server(function()
        local p = {}
        function p:connection_made(t) self.t = t end
        function p:data_received(data) self.t:write(data:upper()) end
        function p:eof_received() events[#events + 1] = "server eof" end
        function p:connection_lost(exc)
          events[#events + 1] = "server lost " .. tostring(exc)
          done:set_result(true)
        end
        return p
      end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local port = server.sockets[1]:getsockname()[2]
      local got = {}
      local client_lost = loop:create_future()
      local t, p = loop:create_connection(function()
        local p = {}
        function p:connection_made(tr)
          events[#events + 1] = "client made " .. tostring(tr:get_extra_info("ssl_object"):version())
        end
        function p:data_received(data)
          got[#got + 1] = data
          if table.concat(got) == "HELLO WORLD" then self.transport:close() end
        end
        function p:connection_lost(exc)
          events[#events + 1] = "client lost " .. tostring(exc)
          client_lost:set_result(true)
        end
        return p
      end, "localhost", port, { ssl = CLIENT_CTX })
      p.transport = t
      assert.is_false(t:can_write_eof())
      assert_has(errof(t.write_eof, t), "cannot half-close")
      assert.equal(CLIENT_CTX, t:get_extra_info("sslcontext"))
      assert.equal("localhost", t:get_extra_info("peercert").subject[2][1][2])
      assert.equal(3, #t:get_extra_info("cipher"))
      assert.equal(port, t:get_extra_info("peername")[2])
      t:write("hello ")
      t:writelines { "wor", "ld" }
      client_lost:await()
      done:await()
      server:close()
      server:wait_closed()
    end)
    assert.same({ "client made TLSv1.3", "client lost nil", "server eof", "server lost nil" }, events)
  end)

  it("flow control passes through: pause_writing/resume_writing around the plain transport's buffer", function()
    local paused, resumed = 0, 0
    aio_run(function()
      local loop = asyncio.get_running_loop()
      local server_reader
      local server = asyncio.start_server(function(reader) server_reader = reader end,
        "127.0.0.1", 0, { ssl = SERVER_CTX })
      local port = server.sockets[1]:getsockname()[2]
      local drained = loop:create_future()
      local t = loop:create_connection(function()
        return {
          pause_writing = function() paused = paused + 1 end,
          resume_writing = function()
            resumed = resumed + 1
            if not drained:done() then drained:set_result(true) end
          end,
        }
      end, "localhost", port, { ssl = CLIENT_CTX })
      t:set_write_buffer_limits(16384)
      local chunk = ("x"):rep(1 << 20)
      for _ = 1, 8 do t:write(chunk) end -- more than the socket takes at once
      assert.is_true(t:get_write_buffer_size() > 16384)
      while server_reader == nil do asyncio.sleep(0.01) end
      local total = 0
      while total < 8 << 20 do total = total + #server_reader:read(1 << 20) end
      drained:await()
      t:close()
      server:close()
    end)
    assert.equal(1, paused)
    assert.equal(1, resumed)
  end)

  it("errors are the SSLError itself; server_hostname defaults to the host", function()
    aio_run(function()
      local server = asyncio.start_server(function(_, w) w:close() end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local port = server.sockets[1]:getsockname()[2]
      -- the certificate names 127.0.0.1 too: the host is checked as an address
      local _, w = asyncio.open_connection("127.0.0.1", port, { ssl = CLIENT_CTX })
      assert.equal("127.0.0.1", w:get_extra_info("ssl_object").server_hostname)
      w:close()
      local e = errof(asyncio.open_connection, "127.0.0.1", port, { ssl = CLIENT_CTX, server_hostname = "other.example" })
      assert.is_true(ssl.SSLCertVerificationError:is(e))
      assert_has(e, "Hostname mismatch")
      e = errof(asyncio.open_connection, "127.0.0.1", port, { ssl = true, server_hostname = "localhost" })
      assert.is_true(ssl.SSLCertVerificationError:is(e)) -- the system's CAs do not know ours
      assert_has(e, "unable to get local issuer certificate")
      server:close()
    end)
  end)

  it("once the connection is lost, a TLS transport's peername, sockname and socket are the default", function()
    aio_run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(function() return {} end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local lost = loop:create_future()
      local t = loop:create_connection(function()
        return { connection_lost = function() lost:set_result(true) end }
      end, "127.0.0.1", server.sockets[1]:getsockname()[2], { ssl = CLIENT_CTX })
      assert.is_not_nil(t:get_extra_info("socket"))
      assert.equal("127.0.0.1", t:get_extra_info("peername")[1])
      t:close()
      lost:await()
      for _, name in ipairs { "socket", "peername", "sockname" } do
        assert.is_nil(t:get_extra_info(name))
        assert.equal("dflt", t:get_extra_info(name, "dflt"))
      end
      assert.equal(CLIENT_CTX, t:get_extra_info("sslcontext"))
      server:close()
    end)
  end)

  it("bad ssl= arguments", function()
    aio_run(function()
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { ssl = "yes" }), "bad argument #3 to 'open_connection'")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { server_hostname = "x" }),
        "server_hostname is only meaningful with ssl")
      assert_has(errof(asyncio.start_server, function() end, "127.0.0.1", 0, { ssl = true }),
        "bad argument #4 to 'start_server' (ssl: trio_asyncio.ssl.SSLContext expected, got true)")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { ssl = CLIENT_CTX, ssl_handshake_timeout = -1 }),
        "ssl_handshake_timeout must be a positive number")
    end)
  end)

  it("faults: a server that closes mid-handshake, sends garbage, or stalls", function()
    trio_run(function()
      ta.open_loop(function()
        local connect = ta.aio_as_trio(function(port, opts)
          opts = opts or {}
          opts.ssl = CLIENT_CTX
          return asyncio.open_connection("localhost", port, opts)
        end)
        with_raw_server(function(stream) stream:receive_some() end, function(port)
          local e = errof(connect, port)
          assert.is_true(ta.ConnectionResetError:is(e))
          assert_has(e, "SSL handshake: the peer closed the connection")
        end)
        with_raw_server(function(stream)
          stream:receive_some()
          stream:send_all("garbage garbage garbage garbage\n")
        end, function(port)
          local e = errof(connect, port)
          assert.is_true(ssl.SSLError:is(e))
        end)
        with_raw_server(function() trio.sleep_forever() end, function(port)
          local e = errof(connect, port, { ssl_handshake_timeout = 0.2 })
          assert.is_true(ta.ConnectionAbortedError:is(e))
          assert_has(e, "SSL handshake is taking longer than 0.2 seconds")
          -- a Trio deadline cancels the waiting asyncio call
          local scope = trio.move_on_after(0.2, connect, port)
          assert.is_true(scope.cancelled_caught)
        end)
      end)
    end)
  end)

  it("a server drops a client whose handshake fails and serves the next", function()
    aio_run(function()
      local server = asyncio.start_server(function(r, w)
        w:write(r:readline())
        w:close()
      end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local port = server.sockets[1]:getsockname()[2]
      local r, w = asyncio.open_connection("127.0.0.1", port)
      w:write(("\22\3\1\0\5garbage"):rep(10))
      assert.equal(21, r:read():byte(1)) -- a TLS alert record, then the server dropped it
      w:close()
      r, w = asyncio.open_connection("localhost", port, { ssl = CLIENT_CTX })
      w:write("fine\n")
      assert.equal("fine\n", r:read())
      w:close()
      server:close()
      server:wait_closed()
    end)
  end)

  it("start_tls upgrades a plain connection on both sides (STARTTLS)", function()
    local log = {}
    aio_run(function()
      local server = asyncio.start_server(function(r, w)
        assert.equal("STARTTLS\n", r:readline())
        w:write("GO\n")
        w:start_tls(SERVER_CTX)
        log[#log + 1] = "server " .. w:get_extra_info("ssl_object"):version()
        w:write("secret: " .. r:readline())
        w:close()
      end, "127.0.0.1", 0)
      local port = server.sockets[1]:getsockname()[2]
      local r, w = asyncio.open_connection("127.0.0.1", port)
      assert.is_nil(w:get_extra_info("ssl_object"))
      w:write("STARTTLS\n")
      assert.equal("GO\n", r:readline())
      w:start_tls(CLIENT_CTX, { server_hostname = "localhost" })
      log[#log + 1] = "client " .. w:get_extra_info("ssl_object"):version()
      w:write("tls works\n")
      local got = r:read()
      log[#log + 1] = got
      w:close()
      server:close()
      server:wait_closed()
    end)
    assert.same({ "client TLSv1.3", "server TLSv1.3", "secret: tls works\n" }, log)
  end)
end)

describe("TLS across the bridge", function()
  it("an asyncio TLS client used from Trio talks to trio.serve_ssl_over_tcp; a Trio client to asyncio's server", function()
    local results = {}
    trio_run(function()
      ta.open_loop(function()
        with_trio_server(SERVER_CTX, echo, function(port)
          results[1] = ta.aio_as_trio(function()
            local r, w = asyncio.open_connection("localhost", port, { ssl = CLIENT_CTX })
            w:write("from asyncio")
            local got = r:read(100)
            w:close()
            return got
          end)()
        end)
        local server = ta.aio_as_trio(function()
          return asyncio.start_server(function(r, w)
            w:write("asyncio says " .. r:readline())
            w:close()
          end, "127.0.0.1", 0, { ssl = SERVER_CTX })
        end)()
        local s = trio.open_ssl_over_tcp_stream("localhost", server.sockets[1]:getsockname()[2],
          { ssl_context = CLIENT_CTX })
        s:send_all("hi from trio\n")
        local parts = {}
        while true do
          local data = s:receive_some()
          if data == "" then break end
          parts[#parts + 1] = data
        end
        results[2] = table.concat(parts)
        s:close()
        server:close()
      end)
    end)
    assert.same({ "from asyncio", "asyncio says hi from trio\n" }, results)
  end)
end)
