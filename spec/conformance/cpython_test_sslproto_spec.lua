-- Ported from CPython Lib/test/test_asyncio/test_sslproto.py
-- (python/cpython at commit 0040903bbae043225499babae23649d896ea2eec).
--
-- Each test is named "test_sslproto.py::<Class>.<test>" and says whether
-- it is ported or adapted (and how).  SslProtoHandshakeTests drive the
-- private SSLProtocol with a mocked _SSLPipe and transport; here real TLS
-- connections over loopback (certificates from support_tls) put the
-- transport in the same state.  BaseStartTLS runs its peers on threads
-- with blocking sockets; here the peer is an asyncio server or client on
-- the same loop, and where that peer would read ahead (a transport reads
-- all that has arrived) the client waits for the peer's word before it
-- starts TLS.  A bad argument is an argument error naming the method
-- where asyncio raises TypeError or ValueError (docs/SEMANTICS.md).
--
-- Left out, private internals or mocks of them:
--   SslProtoHandshakeTests.test_fatal_error_no_name_error   the private _fatal_error
--   SslProtoHandshakeTests.test_connection_lost, test_close_during_handshake,
--   test_data_received_after_closing                         call the SSLProtocol's
--                                                            methods by hand on a
--                                                            mocked transport
-- Left out, not in our API:
--   BaseStartTLS.test_buf_feed_data                          BufferedProtocol and the
--                                                            private _feed_data_to_buffered_proto
--   ProactorStartTLSTests                                    Windows
local asyncio = require "asyncio"
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local ssl = require "trio_asyncio.ssl"
local tls = require "support_tls"
local H = require "conformance.cpython_helpers"

local assert_raises, assert_argerror = H.assert_raises, H.assert_argerror
local SERVER_CTX, CLIENT_CTX = tls.contexts()
local PAYLOAD_SIZE = 1024 * 100
local HELLO_MSG = ("1"):rep(PAYLOAD_SIZE)

local function port_of(server) return server.sockets[1]:getsockname()[2] end

--- A server that accepts connections and never says anything (the
-- handshake never ends); `lost` counts the connections it has seen end.
local function silent_server(loop)
  local state = { lost = 0 }
  local server = loop:create_server(function()
    return { connection_lost = function() state.lost = state.lost + 1 end }
  end, "127.0.0.1", 0)
  return server, state
end

describe("test_sslproto.py", function()
  local T = "test_sslproto.py::SslProtoHandshakeTests."

  it(T .. "test_handshake_timeout_zero", function()
    -- adapted: SSLProtocol is private; create_connection checks its
    -- ssl_handshake_timeout the same way (an argument error: asyncio
    -- raises ValueError "a positive number")
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_argerror("create_connection", loop.create_connection, loop, function() return {} end,
        "127.0.0.1", 1, { ssl = CLIENT_CTX, ssl_handshake_timeout = 0 })
      assert.matches("a positive number", tostring(e))
    end)
  end)

  it(T .. "test_handshake_timeout_negative", function()
    -- adapted: as test_handshake_timeout_zero
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_argerror("create_connection", loop.create_connection, loop, function() return {} end,
        "127.0.0.1", 1, { ssl = CLIENT_CTX, ssl_handshake_timeout = -10 })
      assert.matches("a positive number", tostring(e))
    end)
  end)

  it(T .. "test_eof_received_waiter", function()
    -- adapted: a peer that closes during the handshake (EOF) instead of
    -- a call of eof_received by hand; the waiter's error, what
    -- create_connection raises, is a ConnectionResetError
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(function()
        return { connection_made = function(_, t) t:close() end }
      end, "127.0.0.1", 0)
      assert_raises(errors.ConnectionResetError, loop.create_connection, loop, function() return {} end,
        "127.0.0.1", port_of(server), { ssl = CLIENT_CTX, server_hostname = "localhost" })
      server:close()
    end)
  end)

  --- fn(transport, protocol, lost) with a TLS client transport to a TLS
  -- server; `lost` is done when the client's connection is lost.
  local function with_tls_transport(fn)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(function() return {} end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local lost = loop:create_future()
      local transport, protocol = loop:create_connection(function()
        return { connection_lost = function() lost:set_result(true) end }
      end, "127.0.0.1", port_of(server), { ssl = CLIENT_CTX, server_hostname = "localhost" })
      H.try_finally(fn, function()
        transport:close()
        server:close()
      end, transport, protocol, lost)
    end)
  end

  it(T .. "test_get_extra_info_on_closed_connection", function()
    -- adapted: the app transport's get_extra_info stands for the private
    -- _get_extra_info: the socket while connected, the default once the
    -- connection is lost.  (It still gave the closed socket before this
    -- port.)  Before connection_made there is no transport to ask here.
    with_tls_transport(function(transport, _, lost)
      assert.is_not_nil(transport:get_extra_info("socket"))
      transport:close()
      lost:await()
      assert.is_nil(transport:get_extra_info("socket"))
      local default = {}
      assert.equal(default, transport:get_extra_info("socket", default))
    end)
  end)

  it(T .. "test_set_new_app_protocol", function()
    -- adapted: on the TLS transport of a real connection
    with_tls_transport(function(transport)
      local new_app_proto = {}
      transport:set_protocol(new_app_proto)
      assert.equal(new_app_proto, transport:get_protocol())
    end)
  end)

  it(T .. "test_write_after_closing", function()
    -- adapted: on the TLS transport of a real connection; the write after
    -- close() neither raises nor reaches the peer
    with_tls_transport(function(transport, _, lost)
      transport:close()
      assert.is_nil(transport:write("data"))
      lost:await()
    end)
  end)

  T = "test_sslproto.py::SelectorStartTLSTests."

  --- The server side of the STARTTLS tests: reads HELLO_MSG in plain
  -- text, says "go", takes TLS as the server, sends `first`, reads
  -- HELLO_MSG again (then `second` and HELLO_MSG once more, if given) and
  -- closes.  Returns the server; `done` gets its Task's error or true.
  local function starttls_server(loop, done, first, second)
    return asyncio.start_server(function(reader, writer)
      local ok, err = pcall(function()
        assert.equal(PAYLOAD_SIZE, #reader:readexactly(PAYLOAD_SIZE))
        writer:write("go")
        writer:start_tls(SERVER_CTX)
        writer:write(first)
        assert.equal(PAYLOAD_SIZE, #reader:readexactly(PAYLOAD_SIZE))
        if second then
          writer:write(second)
          assert.equal(PAYLOAD_SIZE, #reader:readexactly(PAYLOAD_SIZE))
        end
        writer:close()
      end)
      done:set_result(ok or err)
    end, "127.0.0.1", 0)
  end

  --- upstream's ClientProto: counts connection_made; each data_received
  -- completes the next of its `n_data` futures `data`, eof_received its
  -- future `eof`; it keeps its transport (`tr`), as a user would.
  local function client_proto(loop, n_data)
    local p = { con_made_cnt = 0, data = {}, eof = loop:create_future() }
    for i = 1, n_data do p.data[i] = loop:create_future() end
    function p:connection_made(tr)
      self.tr = tr
      self.con_made_cnt = self.con_made_cnt + 1
    end
    function p:data_received(d)
      for _, f in ipairs(self.data) do
        if not f:done() then return f:set_result(d) end
      end
    end
    function p:eof_received() self.eof:set_result(true) end
    return p
  end

  --- The end of the client tests: the peer's EOF reaches `proto`, the
  -- client closes, the server's Task ended well, the server closes.
  local function finish(tr, proto, done, server)
    asyncio.wait_for(proto.eof, 10)
    tr:close()
    assert.equal(true, asyncio.wait_for(done, 10))
    server:close()
    server:wait_closed()
  end

  --- H.run(fn(client_context)) with a client context of its own, which
  -- must be collected once the run is over (upstream's weakref check:
  -- "no garbage is left").
  local function with_collected_context(fn)
    local weak = setmetatable({}, { __mode = "v" })
    H.run(function()
      local client_context = ssl.create_default_context { cafile = tls.certs().ca }
      weak[1] = client_context
      fn(client_context)
    end)
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end

  it(T .. "test_start_tls_client_reg_proto_1", function()
    -- adapted: the server is an asyncio one (see the header: it says "go"
    -- before the client starts TLS); connection_made is called once, the
    -- data and the EOF come through the TLS transport; the client
    -- context is collected once all is closed
    with_collected_context(function(client_context)
      local loop = asyncio.get_running_loop()
      local done = loop:create_future()
      local server = starttls_server(loop, done, "O")
      local proto = client_proto(loop, 2) -- "go", then "O"
      local tr = loop:create_connection(function() return proto end, "127.0.0.1", port_of(server))
      tr:write(HELLO_MSG)
      assert.equal("go", asyncio.wait_for(proto.data[1], 10))
      local new_tr = loop:start_tls(tr, proto, client_context, { server_hostname = "localhost" })
      assert.equal("O", asyncio.wait_for(proto.data[2], 10))
      new_tr:write(HELLO_MSG)
      finish(new_tr, proto, done, server)
      assert.equal(1, proto.con_made_cnt)
    end)
  end)

  it(T .. "test_create_connection_memory_leak", function()
    -- adapted: an asyncio TLS server; the client context is collected
    -- once all is closed, although the protocol kept the transport
    with_collected_context(function(client_context)
      local loop = asyncio.get_running_loop()
      local done = loop:create_future()
      local server = asyncio.start_server(function(reader, writer)
        writer:write("O")
        local ok, err = pcall(function()
          assert.equal(PAYLOAD_SIZE, #reader:readexactly(PAYLOAD_SIZE))
        end)
        writer:close()
        done:set_result(ok or err)
      end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local proto = client_proto(loop, 1)
      local tr = loop:create_connection(function() return proto end, "127.0.0.1", port_of(server),
        { ssl = client_context, server_hostname = "localhost" })
      assert.equal("O", asyncio.wait_for(proto.data[1], 10))
      tr:write(HELLO_MSG)
      finish(tr, proto, done, server)
      assert.equal(1, proto.con_made_cnt)
    end)
  end)

  it(T .. "test_start_tls_client_buf_proto_1", function()
    -- adapted: no BufferedProtocol; what the test is about stays: after
    -- start_tls the application swaps its protocol with set_protocol, the
    -- second protocol gets the data that follows, and connection_made is
    -- called once in all (start_tls does not call it)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local done = loop:create_future()
      local server = starttls_server(loop, done, "O", "2")
      local first, second = client_proto(loop, 2), client_proto(loop, 1) -- "go", "O"; "2"
      local tr = loop:create_connection(function() return first end, "127.0.0.1", port_of(server))
      tr:write(HELLO_MSG)
      assert.equal("go", asyncio.wait_for(first.data[1], 10))
      local new_tr = loop:start_tls(tr, first, CLIENT_CTX, { server_hostname = "localhost" })
      assert.equal("O", asyncio.wait_for(first.data[2], 10))
      new_tr:write(HELLO_MSG)
      new_tr:set_protocol(second)
      assert.equal("2", asyncio.wait_for(second.data[1], 10))
      new_tr:write(HELLO_MSG)
      finish(new_tr, second, done, server)
      assert.equal(1, first.con_made_cnt + second.con_made_cnt)
    end)
  end)

  it(T .. "test_start_tls_slow_client_cancel", function()
    -- adapted: a server that reads and never takes TLS; start_tls under
    -- wait_for(0.5) raises TimeoutError
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = silent_server(loop)
      local proto = {}
      local tr = loop:create_connection(function() return proto end, "127.0.0.1", port_of(server))
      tr:write(HELLO_MSG)
      assert_raises(H.TimeoutError, asyncio.wait_for, function()
        return loop:start_tls(tr, proto, CLIENT_CTX, { server_hostname = "localhost" })
      end, 0.5)
      tr:abort()
      server:close()
    end)
  end)

  it(T .. "test_start_tls_server_1", function()
    -- adapted: the client is an asyncio one on the same loop (reading
    -- HELLO_MSG exactly, then taking TLS as the client); the server's
    -- protocol gets HELLO_MSG over TLS after start_tls(server_side=true)
    -- and answers; its connection_lost ends it cleanly
    H.run(function()
      local loop = asyncio.get_running_loop()
      local ANSWER = "answer"
      local on_con, on_con_lost = loop:create_future(), loop:create_future()
      local proto = { data = "" }
      function proto:connection_made(tr)
        self.transport = tr
        on_con:set_result(tr)
      end
      function proto:data_received(data)
        self.data = self.data .. data
        if #self.data >= #HELLO_MSG then self.transport:write(ANSWER) end
      end
      function proto:connection_lost(exc)
        self.transport = nil
        if exc == nil then on_con_lost:set_result(true) else on_con_lost:set_exception(exc) end
      end
      local server = loop:create_server(function() return proto end, "127.0.0.1", 0)
      local answer
      local client = asyncio.create_task(function()
        local reader, writer = asyncio.open_connection("127.0.0.1", port_of(server))
        assert.equal(PAYLOAD_SIZE, #reader:readexactly(PAYLOAD_SIZE))
        writer:start_tls(CLIENT_CTX, { server_hostname = "localhost" })
        writer:write(HELLO_MSG)
        answer = reader:readexactly(#ANSWER)
        writer:close()
      end)
      local tr = asyncio.wait_for(on_con, 10)
      tr:write(HELLO_MSG)
      assert.equal("", proto.data)
      local new_tr = loop:start_tls(tr, proto, SERVER_CTX, { server_side = true, ssl_handshake_timeout = 10 })
      proto.transport = new_tr
      asyncio.wait_for(on_con_lost, 10)
      assert.equal(HELLO_MSG, proto.data)
      new_tr:close()
      asyncio.wait_for(client, 10)
      server:close()
      server:wait_closed()
      assert.equal(ANSWER, answer)
    end)
  end)

  it(T .. "test_start_tls_wrong_args", function()
    -- adapted: argument errors (asyncio: TypeError "SSLContext, got" and
    -- "is not supported")
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_argerror("start_tls", loop.start_tls, loop, nil, nil, nil)
      assert_argerror("start_tls", loop.start_tls, loop, nil, nil, SERVER_CTX)
    end)
  end)

  it(T .. "test_handshake_timeout", function()
    -- adapted: a silent asyncio server for the thread that reads; the
    -- TimeoutError of wait_for(0.5) comes long before the 10 s handshake
    -- timeout, the server sees the connection end, and nothing reaches
    -- the exception handler (Python issue #23197)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local messages = H.capture_handler(loop)
      local server, state = silent_server(loop)
      local t0 = loop:time()
      assert_raises(H.TimeoutError, asyncio.wait_for, function()
        return loop:create_connection(function() return {} end, "127.0.0.1", port_of(server),
          { ssl = CLIENT_CTX, server_hostname = "localhost", ssl_handshake_timeout = 10.0 })
      end, 0.5)
      assert.is_true(loop:time() - t0 < 5)
      local deadline = loop:time() + 5
      while state.lost == 0 and loop:time() < deadline do asyncio.sleep(0.01) end
      assert.equal(1, state.lost)
      assert.same({}, messages)
      server:close()
    end)
  end)

  it(T .. "test_create_connection_ssl_slow_handshake", function()
    -- adapted: a handshake timeout of 0.3 s (upstream 1.0) against a
    -- silent asyncio server: ConnectionAbortedError, nothing reported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local messages = H.capture_handler(loop)
      local server = silent_server(loop)
      local e = assert_raises(errors.ConnectionAbortedError, asyncio.open_connection, "127.0.0.1", port_of(server),
        { ssl = CLIENT_CTX, server_hostname = "localhost", ssl_handshake_timeout = 0.3 })
      assert.matches("SSL handshake.*is taking longer", e.message)
      assert.same({}, messages)
      server:close()
    end)
  end)

  it(T .. "test_create_connection_ssl_failed_certificate", function()
    -- adapted: an asyncio TLS server with a self-signed certificate the
    -- client does not trust
    H.run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function() end)
      local certs = tls.certs()
      local self_signed = ssl.create_default_context { purpose = "server" }
      self_signed:load_cert_chain(certs.self_cert, certs.self_key)
      local server = loop:create_server(function() return {} end, "127.0.0.1", 0, { ssl = self_signed })
      assert_raises(ssl.SSLCertVerificationError, asyncio.open_connection, "127.0.0.1", port_of(server),
        { ssl = CLIENT_CTX, server_hostname = "localhost", ssl_handshake_timeout = 1.0 })
      server:close()
    end)
  end)

  it(T .. "test_start_tls_client_corrupted_ssl", function()
    -- adapted: an asyncio TLS server that, after a line and a byte, writes
    -- plain bytes on the raw socket under its TLS transport
    H.run(function()
      local loop = asyncio.get_running_loop()
      loop:set_exception_handler(function() end)
      local server = asyncio.start_server(function(reader, writer)
        writer:write("A\n")
        reader:readexactly(1)
        core.sock_raw_send(writer:get_extra_info("socket"), "please corrupt the SSL connection")
      end, "127.0.0.1", 0, { ssl = SERVER_CTX })
      local reader, writer = asyncio.open_connection("127.0.0.1", port_of(server),
        { ssl = CLIENT_CTX, server_hostname = "localhost" })
      assert.equal("A\n", reader:readline())
      writer:write("B")
      assert_raises(ssl.SSLError, reader.readline, reader)
      writer:close()
      server:close()
    end)
  end)
end)
