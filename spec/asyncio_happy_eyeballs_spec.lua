-- loop:create_connection / asyncio.open_connection with Happy Eyeballs
-- (happy_eyeballs_delay=, interleave=, all_errors=) on a plain asyncio loop
-- and on the bridge's loop: the attempts' staggering, the winner, and the
-- sockets of the losers and of a cancelled race closed.  The resolver is
-- replaced (Loop.getaddrinfo, restored after) to answer several loopback
-- addresses: a refused one (a closed port), a hanging one (a listener
-- whose accept queue is full) and a listening one.
local asyncio = require "asyncio"
local trio = require "trio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local errof, assert_has = support.errof, support.assert_has

local socket = asyncio.socket

local run, closed_port, target = net.aio_run, net.free_port, net.stream_target
local with_fake_resolver = net.with_fake_getaddrinfo

--- Asyncio-flavored: a listening server on 127.0.0.1; returns it and its address.
local function listening(loop)
  local server = loop:create_server(function() return {} end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()
end

local function no_protocol() return {} end

local function peer_of(transport) return transport:get_extra_info("peername") end

describe("create_connection with happy_eyeballs_delay", function()
  it("a refused attempt starts the next at once; the listening address wins", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local before = net.nfds()
      local server, good = listening(loop)
      with_fake_resolver(loop, { target { "127.0.0.1", closed_port() }, target(good) }, function()
        local t0 = loop:time()
        local transport = loop:create_connection(no_protocol, "example.test", 80, { happy_eyeballs_delay = 5 })
        assert.is_true(loop:time() - t0 < 4, "the refusal did not start the next attempt")
        assert.same(good, peer_of(transport))
        transport:close()
      end)
      server:close()
      server:wait_closed()
      asyncio.sleep(0)
      assert.equal(before, net.nfds())
    end)
  end)

  it("staggers attempts by the delay: a hanging one is overtaken and closed", function()
    ta.run(function()
      local hole, close_hole = net.blackhole()
      trio.fail_after(10, ta.run_aio_coroutine, function()
        local loop = asyncio.get_running_loop()
        local before = net.nfds()
        local server, good = listening(loop)
        with_fake_resolver(loop, { target(hole), target(good) }, function()
          local t0 = loop:time()
          local r, w = asyncio.open_connection("example.test", 80, { happy_eyeballs_delay = 0.2 })
          local took = loop:time() - t0
          assert.is_true(took >= 0.19 and took < 5, "took " .. took) -- (the hanging one never ends)
          assert.same(good, w:get_extra_info("peername"))
          assert.is_false(r:at_eof())
          w:close()
          w:wait_closed()
        end)
        server:close()
        server:wait_closed() -- (with the connection it accepted)
        assert.equal(before, net.nfds()) -- the hanging attempt's socket was closed
      end)
      close_hole()
    end)
  end)

  it("cancelled mid-race, every attempt's socket is closed", function()
    ta.run(function()
      local hole, close_hole = net.blackhole()
      trio.fail_after(10, ta.run_aio_coroutine, function()
        local loop = asyncio.get_running_loop()
        local before = net.nfds()
        with_fake_resolver(loop, { target(hole), target(hole), target(hole) }, function()
          local racing = asyncio.create_task(loop.create_connection, loop, no_protocol, "example.test", 80,
            { happy_eyeballs_delay = 0.02 })
          asyncio.sleep(0.2)
          assert.equal(before + 3, net.nfds()) -- all three attempts are connecting
          assert.is_false(racing:done())
          racing:cancel()
          local ok, err = pcall(racing.await, racing)
          assert.is_false(ok)
          assert.is_true(asyncio.CancelledError:is(err), tostring(err))
        end)
        asyncio.sleep(0)
        assert.equal(before, net.nfds())
      end)
      close_hole()
    end)
  end)

  it("every attempt failing: one OSError listing them, or with all_errors an ExceptionGroup of them", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local p1, p2 = closed_port(), closed_port()
      with_fake_resolver(loop, { target { "127.0.0.1", p1 }, target { "127.0.0.1", p2 } }, function()
        local e = errof(loop.create_connection, loop, no_protocol, "example.test", 80, { happy_eyeballs_delay = 0.1 })
        assert.is_true(errors.OSError:is(e), tostring(e))
        assert_has(e.message, "Multiple exceptions: ")
        assert.equal(2, #e.errors)
        assert_has(e.errors[1].message, "127.0.0.1:" .. p1)
        e = errof(loop.create_connection, loop, no_protocol, "example.test", 80,
          { happy_eyeballs_delay = 0.1, all_errors = true })
        assert.is_true(errors.ExceptionGroup:is(e), tostring(e))
        assert.equal("create_connection failed", e.message)
        assert.equal(2, #e.exceptions)
        assert.is_true(errors.ConnectionRefusedError:is(e.exceptions[1]))
        assert_has(e.exceptions[2].message, "127.0.0.1:" .. p2)
        -- without Happy Eyeballs too
        e = errof(loop.create_connection, loop, no_protocol, "example.test", 80, { all_errors = true })
        assert.is_true(errors.ExceptionGroup:is(e), tostring(e))
        assert.equal(2, #e.exceptions)
      end)
    end)
  end)

  it("interleave orders the addresses by family; happy_eyeballs_delay makes it 1", function()
    if not net.have_ipv6() then return end
    run(function()
      local loop = asyncio.get_running_loop()
      local p = { closed_port(), closed_port(), closed_port(), closed_port() }
      local v6 = function(port) return target({ "::1", port }, socket.AF_INET6) end
      local v4 = function(port) return target { "127.0.0.1", port } end
      local function order(opts)
        local e
        with_fake_resolver(loop, { v6(p[1]), v6(p[2]), v4(p[3]), v4(p[4]) }, function()
          opts.all_errors = true
          e = errof(loop.create_connection, loop, no_protocol, "example.test", 80, opts)
        end)
        local ports = {}
        for i, x in ipairs(e.exceptions) do ports[i] = tonumber(x.message:match(":(%d+):")) end
        return ports
      end
      assert.same({ p[1], p[2], p[3], p[4] }, order {})
      assert.same({ p[1], p[3], p[2], p[4] }, order { interleave = 1 })
      assert.same({ p[1], p[2], p[3], p[4] }, order { interleave = 2 })
      assert.same({ p[1], p[3], p[2], p[4] }, order { happy_eyeballs_delay = 0.5 })
      assert.same({ p[1], p[2], p[3], p[4] }, order { happy_eyeballs_delay = 0.5, interleave = 0 })
    end)
  end)

  it("bad options raise argument errors naming create_connection", function()
    run(function()
      local loop = asyncio.get_running_loop()
      assert_has(errof(loop.create_connection, loop, no_protocol, "127.0.0.1", 1, { happy_eyeballs_delay = -1 }),
        "bad argument #4 to 'create_connection' (happy_eyeballs_delay must be a non-negative number)")
      assert_has(errof(loop.create_connection, loop, no_protocol, "127.0.0.1", 1, { happy_eyeballs_delay = "1" }),
        "happy_eyeballs_delay must be a non-negative number")
      assert_has(errof(loop.create_connection, loop, no_protocol, "127.0.0.1", 1, { interleave = 1.5 }),
        "bad argument #4 to 'create_connection' (interleave must be a non-negative integer)")
      assert_has(errof(loop.create_connection, loop, no_protocol, "127.0.0.1", 1, { all_errors = 1 }),
        "bad argument #4 to 'create_connection' (all_errors must be a boolean)")
      assert_has(errof(asyncio.open_connection, "127.0.0.1", 1, { interleave = -1 }),
        "interleave must be a non-negative integer")
    end)
  end)
end)
