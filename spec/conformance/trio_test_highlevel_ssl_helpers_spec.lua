-- Ported from Trio's src/trio/_tests/test_highlevel_ssl_helpers.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: Trio's certificate fixtures are those of
-- trio_test_ssl_spec.lua (spec/support_tls.lua: "localhost" is the name
-- the server certificate has, where Trio's is trio-test-1.example.org;
-- xyzzy.example.org stays the name it lacks).  Trio's fake hostname
-- resolver, which sends every name to the listener, is trio.socket's
-- getaddrinfo replaced for the test (trio.socket has no
-- set_custom_hostname_resolver: docs/SEMANTICS.md); port 80 goes to the
-- listener's port through it.  aclose() is close(); the `async with`
-- blocks are <close> variables.  The private _https_compatible is checked
-- as Trio checks its own.  Beyond Trio's checks: the failed handshakes'
-- cause is the certificate verification error (DESIGN.md 4.4).
--
-- Ported: test_open_ssl_over_tcp_stream_and_everything_else,
-- test_open_ssl_over_tcp_listeners.
local trio = require "trio"
local ssl = require "trio_asyncio.ssl"
local H = require "conformance.trio_helpers"
local tls = require "support_tls"

local tsocket = trio.socket
local SERVER_CTX, CLIENT_CTX = tls.contexts()

local function echo_handler(stream)
  local ok, err = pcall(function()
    while true do
      local data = stream:receive_some(10000)
      if data == "" then break end
      stream:send_all(data)
    end
  end)
  stream:close()
  if not ok and not trio.BrokenResourceError:is(err) then error(err, 0) end
end

-- Trio's FakeHostnameResolver: every name resolves to sockaddr.
local function fake_getaddrinfo(sockaddr)
  return function()
    return { { family = tsocket.AF_INET, type = tsocket.SOCK_STREAM, proto = tsocket.IPPROTO_TCP,
      canonname = "", addr = sockaddr } }
  end
end

describe("test_highlevel_ssl_helpers.py", function()
  -- serve_ssl_over_tcp runs on open_ssl_over_tcp_listeners
  it("test_open_ssl_over_tcp_stream_and_everything_else", function()
    H.run(function()
      trio.open_nursery(function(nursery)
        local listeners = nursery:start(trio.serve_ssl_over_tcp, echo_handler, 0, SERVER_CTX,
          { host = "127.0.0.1" })
        assert.equal(1, #listeners)
        local listener <close> = listeners[1]
        local sockaddr = listener.transport_listener.socket:getsockname()
        H.with_replaced(tsocket, "getaddrinfo", fake_getaddrinfo(sockaddr), function()
          trio.fail_after(10, function()
            -- without the test CA's trust (the default context verifies)
            do
              local stream <close> = trio.open_ssl_over_tcp_stream("localhost", 80)
              local e = H.raises(trio.BrokenResourceError, stream.do_handshake, stream)
              assert.is_true(ssl.SSLCertVerificationError:is(e.cause), tostring(e.cause))
            end

            -- trusted, but not the certificate's name: the hostname check
            do
              local stream <close> = trio.open_ssl_over_tcp_stream("xyzzy.example.org", 80,
                { ssl_context = CLIENT_CTX })
              local e = H.raises(trio.BrokenResourceError, stream.do_handshake, stream)
              assert.is_true(ssl.SSLCertVerificationError:is(e.cause), tostring(e.cause))
              assert.truthy(tostring(e.cause):find("xyzzy.example.org", 1, true), tostring(e.cause))
            end

            -- this one works
            local stream = trio.open_ssl_over_tcp_stream("localhost", 80, { ssl_context = CLIENT_CTX })
            do
              local s <close> = stream
              assert.equal("trio.SSLStream", getmetatable(s).__name)
              assert.equal("localhost", s.server_hostname)
              s:send_all("x")
              assert.equal("x", s:receive_some(1))
            end

            -- https_compatible is passed on
            assert.is_false(stream._https_compatible)
            do
              local s <close> = trio.open_ssl_over_tcp_stream("localhost", 80, {
                ssl_context = CLIENT_CTX, https_compatible = true,
                happy_eyeballs_delay = 1, -- a smoke test of it, too
              })
              assert.is_true(s._https_compatible)
            end
          end)
        end)
        -- stop the echo server
        nursery.cancel_scope:cancel()
      end)
    end)
  end)

  it("test_open_ssl_over_tcp_listeners", function()
    H.run(function()
      do
        local listeners = trio.open_ssl_over_tcp_listeners(0, SERVER_CTX, { host = "127.0.0.1" })
        assert.equal(1, #listeners)
        local listener <close> = listeners[1]
        assert.equal("trio.SSLListener", getmetatable(listener).__name)
        local tl = listener.transport_listener
        assert.equal("trio.SocketListener", getmetatable(tl).__name)
        assert.equal("127.0.0.1", tl.socket:getsockname()[1])
        assert.is_false(listener._https_compatible)
      end
      local listeners = trio.open_ssl_over_tcp_listeners(0, SERVER_CTX,
        { host = "127.0.0.1", https_compatible = true })
      assert.equal(1, #listeners)
      local listener <close> = listeners[1]
      assert.is_true(listener._https_compatible)
    end)
  end)
end)
