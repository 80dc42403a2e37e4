-- Ported from CPython Lib/test/test_asyncio/test_base_events.py
-- (python/cpython at commit 61ac0d75f00a5e65844a337ef863b1e1e3034a97).
--
-- Each test is named "test_base_events.py::<Class>.<test>" and says whether
-- it is ported (the same checks) or adapted (and how).  Upstream runs most
-- of BaseEventLoopTests on a BaseEventLoop whose selector is a mock and
-- drives it with the private _run_once; here the tests run a real loop
-- (asyncio.new_event_loop) with run_until_complete / run_forever.  Many of
-- BaseEventLoopWithSelectorTests replace the socket module or
-- loop.getaddrinfo/sock_connect by mocks: where real loopback sockets can
-- produce the same situation the test is adapted to them, else left out.
-- A bad argument is an argument error naming the method where asyncio
-- raises TypeError (docs/SEMANTICS.md); asyncio's ValueErrors are
-- asyncio.ValueError here too.
--
-- Left out, private internals or mocks of them:
--   BaseEventTests.test_ipaddr_info_no_inet_pton      mocks socket.inet_pton
--   BaseEventLoopTests.test_not_implemented            the private _make_*_transport hooks
--   BaseEventLoopTests.test__add_callback_handle, test__add_callback_cancelled_handle,
--   test__run_once, test__run_once_schedule_handle, test__run_once_cancelled_event_cleanup,
--   test_custom_run_forever_integration                _add_callback, _run_once, _ready,
--                                                      _scheduled, _run_forever_setup
--   BaseEventLoopWithSelectorTests.test_create_connection_timeout, test_create_connection_no_getaddrinfo,
--   test_create_connection_multiple, test_create_connection_multiple_errors_local_addr,
--   test_create_connection_ip_addr, test_create_connection_no_inet_pton,
--   test_create_connection_bluetooth, test_create_connection_ssl_server_hostname_default,
--   test_create_server_no_getaddrinfo, test_create_datagram_endpoint_no_addrinfo,
--   test_create_datagram_endpoint_connect_err, test_create_datagram_endpoint_socket_err,
--   test_create_datagram_endpoint_setblk_err, test_create_datagram_endpoint_ip_addr
--                                                      replace the socket module, getaddrinfo,
--                                                      sock_connect or _make_ssl_transport by
--                                                      mocks (getaddrinfo answers and socket
--                                                      failures real loopback cannot give)
--   BaseEventLoopWithSelectorTests.test_accept_connection_retry,
--   test_accept_connection_exception                   the private _accept_connection
--   TestSelectorUtils.test_set_nodelay                 the private _set_nodelay (what it is
--                                                      for is checked: a TCP transport's
--                                                      socket has TCP_NODELAY, below)
--
-- Left out, not in our API (docs/API.md, /work/shared/DESIGN.md):
--   BaseEventLoopTests.test_shutdown_default_executor_timeout
--                                 there is no loop.shutdown_default_executor (asyncio.run
--                                 does not join the workers: docs/SEMANTICS.md)
--   BaseEventLoopTests.test_env_var_debug
--                                 PYTHONASYNCIODEBUG / -X dev are Python interpreter
--                                 settings; set_debug(true) turns debug mode on
--   BaseEventLoopTests.test_create_task
--                                 a loop class overriding create_task: a loop is not
--                                 subclassed (its task factory is the hook, tested below)
--   BaseEventLoopTests.test_create_named_task_with_default_factory,
--   test_create_named_task_with_custom_factory
--                                 create_task has no name= (docs/SEMANTICS.md)
--   BaseEventLoopTests.test_run_forever_keyboard_interrupt
--                                 KeyboardInterrupt raised by a coroutine: Lua has no
--                                 BaseException split (test_run_until_complete_baseexception
--                                 is adapted with a plain error)
--   BaseEventLoopTests.test_asyncgen_finalization_by_gc,
--   test_asyncgen_finalization_by_gc_in_other_thread
--                                 there are no async generators
--   BaseEventLoopTests.test_check_thread
--                                 no worker thread can reach a loop (docs/SEMANTICS.md,
--                                 "No way back from a worker")
--   BaseEventLoopWithSelectorTests.test_create_connection_ipv6_scope
--                                 link-local addresses with a scope id need a real interface
--   BaseEventLoopWithSelectorTests.test_create_server_stream_bittype
--                                 SOCK_NONBLOCK in a socket's type: trio.socket sockets
--                                 are always non-blocking and have no flag bits in `type`
--   BaseEventLoopWithSelectorTests.test_create_server_nosoreuseport,
--   test_create_server_soreuseport_only_defined, test_create_datagram_endpoint_nosoreuseport
--                                 platforms without SO_REUSEPORT (Linux has it)
--   BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_sock_unix,
--   test_create_datagram_endpoint_existing_sock_unix
--                                 no Unix datagram sockets (docs/SEMANTICS.md)
--   BaseLoopSockSendfileTests (all)
--                                 there is no loop.sock_sendfile
--
-- Left out, covered elsewhere:
--   BaseEventLoopWithSelectorTests.test_log_slow_callbacks
--                                 spec/asyncio_loop_spec.lua ("reports callbacks and Task
--                                 steps slower than slow_callback_duration": the report is
--                                 written by C, seen from a child process)
local asyncio = require "asyncio"
local errors = require "trio.errors"
local support = require "support"
local net = require "support_net"
local H = require "conformance.cpython_helpers"

local socket = asyncio.socket
local RuntimeError, ValueError = H.RuntimeError, H.ValueError
local assert_raises, assert_argerror, catch = H.assert_raises, H.assert_argerror, H.catch


local function no_protocol() return {} end
local closed_port, stream_target = net.free_port, net.stream_target
local with_fake_getaddrinfo = net.with_fake_getaddrinfo

--- A loopback IPv6 address can be bound (socket_helper.IPV6_ENABLED).
local function ipv6_enabled()
  local s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
  local ok = pcall(s.bind, s, { "::1", 0 })
  s:close()
  return ok
end

--- The MyDatagramProto of upstream: checks the order of its calls, and
-- sets `done` when the connection is lost.
local function datagram_proto(loop)
  local p = { state = "INITIAL", nbytes = 0, done = loop:create_future() }
  function p:connection_made(t)
    assert(self.state == "INITIAL", self.state)
    self.transport, self.state = t, "INITIALIZED"
  end
  function p:datagram_received(data)
    assert(self.state == "INITIALIZED", self.state)
    self.nbytes = self.nbytes + #data
  end
  function p:connection_lost()
    assert(self.state == "INITIALIZED", self.state)
    self.state = "CLOSED"
    self.done:set_result(true)
  end
  return p
end

describe("test_base_events.py", function()
  local T = "test_base_events.py::BaseEventTests."

  it(T .. "test_ipaddr_info", function()
    -- adapted: _ipaddr_info is asyncio's private shortcut past getaddrinfo
    -- for numeric hosts; the same (family, type, proto, canonname, address)
    -- answers are checked on loop:getaddrinfo.  Where _ipaddr_info answers
    -- None (go and ask getaddrinfo) for a family that does not fit the
    -- address, getaddrinfo raises gaierror; the no-type case (None there)
    -- is getaddrinfo's list of every type.
    H.run(function()
      local loop = asyncio.get_running_loop()
      local INET, INET6, UNSPEC = socket.AF_INET, socket.AF_INET6, socket.AF_UNSPEC
      local STREAM, DGRAM, TCP, UDP = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.IPPROTO_TCP, socket.IPPROTO_UDP
      local function info(host, port, family, type, proto)
        local list = loop:getaddrinfo(host, port, { family = family, type = type, proto = proto })
        assert.equal(1, #list)
        local i = list[1]
        return { i.family, i.type, i.proto, i.canonname, i.addr[1], i.addr[2] }
      end
      assert.same({ INET, STREAM, TCP, "", "1.2.3.4", 1 }, info("1.2.3.4", 1, INET, STREAM, TCP))
      assert.same({ INET, STREAM, TCP, "", "1.2.3.4", 1 }, info("1.2.3.4", 1, UNSPEC, STREAM, TCP))
      assert.same({ INET, DGRAM, UDP, "", "1.2.3.4", 1 }, info("1.2.3.4", 1, UNSPEC, DGRAM, UDP))
      -- a socket type implies its protocol
      assert.same({ INET, STREAM, TCP, "", "1.2.3.4", 1 }, info("1.2.3.4", 1, UNSPEC, STREAM, 0))
      assert.same({ INET, DGRAM, UDP, "", "1.2.3.4", 1 }, info("1.2.3.4", 1, UNSPEC, DGRAM, 0))
      assert.is_true(#loop:getaddrinfo("1.2.3.4", 1) > 1) -- no socket type: every type
      if ipv6_enabled() then
        assert_raises(errors.gaierror, loop.getaddrinfo, loop, "1.2.3.4", 1, { family = INET6, type = STREAM })
        assert.same({ INET6, STREAM, TCP, "", "::3", 1 }, info("::3", 1, INET6, STREAM, TCP))
        assert.same({ INET6, STREAM, TCP, "", "::3", 1 }, info("::3", 1, UNSPEC, STREAM, TCP))
        assert_raises(errors.gaierror, loop.getaddrinfo, loop, "::3", 1, { family = INET, type = STREAM })
      end
    end)
  end)

  it(T .. "test_port_parameter_types", function()
    -- adapted: on loop:getaddrinfo (see above); Lua has no bytes, so the
    -- b'' and b'1' cases are the strings' cases
    H.run(function()
      local loop = asyncio.get_running_loop()
      local opts = { family = socket.AF_INET, type = socket.SOCK_STREAM, proto = socket.IPPROTO_TCP }
      for _, case in ipairs { { nil, 0 }, { "", 0 }, { "1", 1 } } do
        local list = loop:getaddrinfo("1.2.3.4", case[1], opts)
        assert.same({ "1.2.3.4", case[2] }, { list[1].addr[1], list[1].addr[2] })
      end
    end)
  end)

  T = "test_base_events.py::BaseEventLoopTests."

  it(T .. "test_close", function()
    -- adapted: the Future is made before the loop closes (create_future
    -- on a closed loop raises: docs/SEMANTICS.md)
    local loop = asyncio.new_event_loop()
    local f = loop:create_future()
    assert.is_false(loop:is_closed())
    loop:close()
    assert.is_true(loop:is_closed())
    -- close() may be called again
    loop:close()
    loop:close()
    assert_raises(RuntimeError, loop.run_forever, loop)
    assert_raises(RuntimeError, loop.run_until_complete, loop, f)
  end)

  it(T .. "test_set_default_executor", function()
    -- adapted: no subclass of ThreadPoolExecutor (nor _default_executor to
    -- look at): the executor set is seen to be the one run_in_executor(nil)
    -- uses, because once it is shut down that call is refused
    H.with_loop(function(loop)
      local executor = asyncio.ThreadPoolExecutor(1)
      loop:set_default_executor(executor)
      local fut = loop:run_in_executor(nil, function(x) return x + 1 end, 41)
      assert.equal(42, loop:run_until_complete(fut))
      executor:shutdown(true)
      local e = assert_raises(RuntimeError, loop.run_in_executor, loop, nil, function() end)
      assert.matches("after shutdown", e.message)
    end)
  end)

  it(T .. "test_set_default_executor_error", function()
    -- adapted: an argument error where asyncio raises TypeError; the
    -- default executor stays as it was
    H.with_loop(function(loop)
      local e = assert_argerror("set_default_executor", loop.set_default_executor, loop, {})
      assert.matches("ThreadPoolExecutor", tostring(e))
      local fut = loop:run_in_executor(nil, function() return "still the default" end)
      assert.equal("still the default", loop:run_until_complete(fut))
    end)
  end)

  it(T .. "test_call_soon", function()
    -- adapted: the Handle's private _callback and the loop's _ready are
    -- not visible; the handle is a Handle and its callback runs at the
    -- next iteration
    H.with_loop(function(loop)
      local ran = false
      local h = loop:call_soon(function() ran = true end)
      assert.matches("^Handle ", tostring(h))
      assert.is_false(h:cancelled())
      assert.is_false(ran)
      H.run_briefly(loop)
      assert.is_true(ran)
    end)
  end)

  it(T .. "test_call_soon_non_callable", function()
    -- adapted: an argument error naming call_soon (asyncio: TypeError)
    H.with_loop(function(loop)
      loop:set_debug(true)
      assert_argerror("call_soon", loop.call_soon, loop, 1)
    end)
  end)

  it(T .. "test_call_later", function()
    -- adapted: a TimerHandle that is not run at the next iteration (the
    -- loop's _scheduled and _ready are private); a nil delay is an
    -- argument error
    H.with_loop(function(loop)
      local ran = false
      local h = loop:call_later(10.0, function() ran = true end)
      assert.matches("^TimerHandle ", tostring(h))
      assert.is_true(math.abs(h:when() - (loop:time() + 10.0)) < 1)
      H.run_briefly(loop)
      assert.is_false(ran)
      h:cancel()
      assert_argerror("call_later", loop.call_later, loop, nil, function() end)
    end)
  end)

  it(T .. "test_call_later_negative_delays", function()
    -- ported (call_later refused negative delays before this port)
    H.with_loop(function(loop)
      local calls = {}
      local function cb(arg) calls[#calls + 1] = arg end
      loop:call_later(-1, cb, "a")
      loop:call_later(-2, cb, "b")
      H.run_briefly(loop)
      assert.same({ "b", "a" }, calls)
    end)
  end)

  it(T .. "test_time_and_call_at", function()
    -- ported; call_at(nil) is an argument error
    H.with_loop(function(loop)
      local delay = 0.100
      loop:call_at(loop:time() + delay, function() loop:stop() end)
      local t0 = loop:time()
      loop:run_forever()
      local dt = loop:time() - t0
      assert.is_true(dt >= delay - 0.001, dt)
      assert_argerror("call_at", loop.call_at, loop, nil, function() end)
    end)
  end)

  it(T .. "test_set_debug", function()
    -- ported
    H.with_loop(function(loop)
      loop:set_debug(true)
      assert.is_true(loop:get_debug())
      loop:set_debug(false)
      assert.is_false(loop:get_debug())
    end)
  end)

  it(T .. "test_run_until_complete_type_error", function()
    -- adapted: an argument error (asyncio: TypeError)
    H.with_loop(function(loop)
      assert_argerror("run_until_complete", loop.run_until_complete, loop, "blah")
    end)
  end)

  it(T .. "test_run_until_complete_loop", function()
    -- ported
    H.with_loop(function(loop)
      local task = loop:create_future()
      local other_loop = asyncio.new_event_loop()
      local e = catch(other_loop.run_until_complete, other_loop, task)
      other_loop:close()
      assert.is_true(ValueError:is(e), tostring(e))
    end)
  end)

  it(T .. "test_run_until_complete_loop_orphan_future_close_loop", function()
    -- adapted: upstream stops run_until_complete with a SystemExit raised
    -- by a callback; a callback's error goes to the exception handler
    -- here, so loop.stop() from a callback ends that run early instead
    -- (RuntimeError, "Event loop stopped before Future completed.").  The
    -- next run_until_complete must not be disturbed by the first one's
    -- leftover done callback.
    H.with_loop(function(loop)
      local function foo(delay) asyncio.sleep(delay) end
      loop:call_soon(loop.stop, loop)
      local e = assert_raises(RuntimeError, loop.run_until_complete, loop, function() foo(0.1) end)
      assert.matches("stopped before Future completed", e.message)
      loop:run_until_complete(function() foo(0.2) end)
    end)
  end)

  it(T .. "test_subprocess_exec_invalid_args", function()
    -- adapted: argument errors (asyncio: TypeError); the keyword
    -- arguments are the options table; a number as an argument is
    -- converted to a string, as Lua's string functions do (SEMANTICS)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local function protocol() return {} end
      assert_argerror("subprocess_exec", loop.subprocess_exec, loop, protocol)
      assert_argerror("subprocess_exec", loop.subprocess_exec, loop, protocol, { "/bin/true" })
      for _, opt in ipairs { { universal_newlines = true }, { shell = true }, { bufsize = 4096 } } do
        assert_argerror("subprocess_exec", loop.subprocess_exec, loop, protocol, "/bin/true", opt)
      end
    end)
  end)

  it(T .. "test_subprocess_shell_invalid_args", function()
    -- adapted: argument errors (asyncio: TypeError)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local function protocol() return {} end
      assert_argerror("subprocess_shell", loop.subprocess_shell, loop, protocol, 123)
      assert_argerror("subprocess_shell", loop.subprocess_shell, loop, protocol, { "/bin/true" })
      for _, opt in ipairs { { universal_newlines = true }, { shell = true }, { bufsize = 4096 } } do
        assert_argerror("subprocess_shell", loop.subprocess_shell, loop, protocol, "exit 0", opt)
      end
    end)
  end)

  it(T .. "test_default_exc_handler_callback", function()
    -- adapted: the default handler writes to stderr where asyncio logs;
    -- what it writes names the callback's error ("Exception in callback",
    -- the handle, the error)
    H.with_loop(function(loop)
      local function zero_error(fut)
        fut:set_result(true)
        error(H.ZeroDivisionError(), 0)
      end
      for _, schedule in ipairs {
        function(fut) return loop:call_soon(zero_error, fut) end,
        function(fut) return loop:call_later(0.01, zero_error, fut) end,
      } do
        local out = H.captured_stderr(function()
          local fut = loop:create_future()
          schedule(fut)
          fut:add_done_callback(function() loop:stop() end)
          loop:run_forever()
        end)
        assert.matches("Exception in callback", out)
        assert.matches("division by zero", out)
      end
    end)
  end)

  it(T .. "test_default_exc_handler_coro", function()
    -- adapted: the Task's error, never retrieved, is reported when the
    -- Task is collected
    H.with_loop(function(loop)
      local out = H.captured_stderr(function()
        local fut = asyncio.ensure_future(function()
          asyncio.sleep(0.01)
          error(H.ZeroDivisionError(), 0)
        end, loop)
        fut:add_done_callback(function() loop:stop() end)
        loop:run_forever()
        fut = nil -- luacheck: ignore (drop the last reference)
        collectgarbage()
        collectgarbage()
        H.run_briefly(loop)
      end)
      assert.matches("exception was never retrieved", out)
      assert.matches("division by zero", out)
    end)
  end)

  it(T .. "test_set_exc_handler_invalid", function()
    -- adapted: an argument error (asyncio: TypeError)
    H.with_loop(function(loop)
      local e = assert_argerror("set_exception_handler", loop.set_exception_handler, loop, "spam")
      assert.matches("function or nil", tostring(e))
    end)
  end)

  it(T .. "test_set_exc_handler_custom", function()
    -- adapted: the context has message, exception and handle; in debug
    -- mode a Handle records no source_traceback here (SEMANTICS)
    H.with_loop(function(loop)
      local function zero_error() error(H.ZeroDivisionError(), 0) end
      local function run_loop()
        local handle = loop:call_soon(zero_error)
        H.run_briefly(loop)
        return handle
      end
      loop:set_debug(true)
      assert.is_nil(loop:get_exception_handler())
      local calls = {}
      local function handler(l, context) calls[#calls + 1] = { l, context } end
      loop:set_exception_handler(handler)
      assert.equal(handler, loop:get_exception_handler())
      local handle = run_loop()
      assert.equal(1, #calls)
      assert.equal(loop, calls[1][1])
      local context = calls[1][2]
      assert.matches("^Exception in callback", context.message)
      assert.is_true(H.ZeroDivisionError:is(context.exception))
      assert.equal(handle, context.handle)

      loop:set_exception_handler(nil)
      local out = H.captured_stderr(run_loop)
      assert.matches("Exception in callback", out)
      assert.matches("division by zero", out)
      assert.equal(1, #calls)
    end)
  end)

  it(T .. "test_set_exc_handler_broken", function()
    -- adapted: what the default handler writes (asyncio: logs)
    H.with_loop(function(loop)
      loop:set_exception_handler(function() error(H.TestError("spam"), 0) end)
      local out = H.captured_stderr(function()
        loop:call_soon(function() error(H.ZeroDivisionError(), 0) end)
        H.run_briefly(loop)
      end)
      assert.matches("Unhandled error in exception handler", out)
      assert.matches("spam", out)
    end)
  end)

  it(T .. "test_default_exc_handler_broken", function()
    -- adapted: upstream subclasses the loop to break its
    -- default_exception_handler; here the test replaces that method in the
    -- loop class for its duration.  Its error is written to stderr by the
    -- loop's C core (not seen here); what is checked is that the loop goes
    -- on, and that a failing custom handler hands the default one the
    -- original context as `context`.
    local methods = getmetatable(asyncio.new_event_loop()).__index
    local real = methods.default_exception_handler
    local got
    methods.default_exception_handler = function(_, context)
      got = context
      error(ValueError("spam"), 0)
    end
    local ok, err = pcall(H.with_loop, function(loop)
      local function run_loop()
        loop:call_soon(function() error(H.ZeroDivisionError(), 0) end)
        H.run_briefly(loop)
      end
      run_loop()
      assert.is_true(H.ZeroDivisionError:is(got.exception))
      got = nil
      loop:set_exception_handler(function() error(ValueError("ham"), 0) end)
      run_loop()
      assert.equal("Unhandled error in exception handler", got.message)
      assert.is_true(H.ZeroDivisionError:is(got.context.exception))
      local still = false
      loop:call_soon(function() still = true end)
      H.run_briefly(loop)
      assert.is_true(still)
    end)
    methods.default_exception_handler = real
    assert(ok, err)
  end)

  it(T .. "test_set_task_factory_invalid", function()
    -- adapted: an argument error (asyncio: TypeError)
    H.with_loop(function(loop)
      local e = assert_argerror("set_task_factory", loop.set_task_factory, loop, 1)
      assert.matches("task factory must be a function or nil", tostring(e))
      assert.is_nil(loop:get_task_factory())
    end)
  end)

  it(T .. "test_set_task_factory", function()
    -- adapted: no Task subclass; the factory's Tasks are marked as the
    -- ones it made (isinstance(task, MyTask))
    H.with_loop(function(loop)
      local made = setmetatable({}, { __mode = "k" })
      local function coro() end
      local function factory(l, fn, ...)
        local t = asyncio.Task(l, fn, ...)
        made[t] = true
        return t
      end
      assert.is_nil(loop:get_task_factory())
      loop:set_task_factory(factory)
      assert.equal(factory, loop:get_task_factory())
      local task = loop:create_task(coro)
      assert.is_true(made[task])
      loop:run_until_complete(task)

      loop:set_task_factory(nil)
      assert.is_nil(loop:get_task_factory())
      task = loop:create_task(coro)
      assert.is_true(H.is_task(task))
      assert.is_nil(made[task])
      loop:run_until_complete(task)
    end)
  end)

  it(T .. "test_create_task_error_closes_coro", function()
    -- adapted: no coroutine object to close (nor warnings); ensure_future
    -- on a closed loop raises RuntimeError
    local loop = asyncio.new_event_loop()
    loop:close()
    assert_raises(RuntimeError, asyncio.ensure_future, function() end, loop)
  end)

  it(T .. "test_run_until_complete_baseexception", function()
    -- adapted: a plain error (no KeyboardInterrupt); run_until_complete
    -- must leave no pending stop() behind
    H.with_loop(function(loop)
      assert_raises(H.TestError, loop.run_until_complete, loop, function() error(H.TestError("boom"), 0) end)
      local called = false
      local function func()
        loop:stop()
        called = true
      end
      loop:call_soon(loop.call_soon, loop, func)
      loop:run_forever()
      assert.is_true(called)
    end)
  end)

  it(T .. "test_single_selecter_event_callback_after_stopping", function()
    -- adapted: a real readable socket instead of a mock selector.  The
    -- reader's callback schedules the removal of the reader; in the next
    -- run the removal comes before the reader's next turn, which must not
    -- run (its Handle is cancelled, Python issue #25593).  The loop polls
    -- I/O between batches, so the reader may first run in the second
    -- stopped run rather than the first: three runs, and the count never
    -- goes past 1.  (This port found that a removed reader's queued
    -- callback still ran.)
    H.with_loop(function(loop)
      local r, w = support.raw_socketpair()
      local ok, err = pcall(function()
        w:send("x")
        local callcount = 0
        loop:add_reader(r:getfd(), function()
          callcount = callcount + 1
          loop:call_soon(loop.remove_reader, loop, r:getfd())
        end)
        for _ = 1, 3 do
          loop:call_soon(loop.stop, loop)
          loop:run_forever()
          assert.is_true(callcount <= 1, callcount)
        end
        assert.equal(1, callcount)
      end)
      loop:remove_reader(r:getfd())
      r:close()
      w:close()
      assert(ok, err)
    end)
  end)

  it(T .. "test_run_once", function()
    -- ported: the idiom loop.call_soon(loop.stop); loop.run_forever()
    H.with_loop(function(loop)
      local count = 0
      loop:call_soon(function() count = count + 1 end)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
      assert.equal(1, count)
    end)
  end)

  it(T .. "test_run_forever_pre_stopped", function()
    -- adapted: upstream sees the selector polled with timeout 0; here
    -- run_forever returns at once although a timer is 10 s away, after
    -- running what was ready
    H.with_loop(function(loop)
      local ran = false
      local timer = loop:call_later(10, function() end)
      loop:call_soon(function() ran = true end)
      loop:stop()
      local t0 = loop:time()
      loop:run_forever()
      assert.is_true(loop:time() - t0 < 1)
      assert.is_true(ran)
      timer:cancel()
    end)
  end)

  T = "test_base_events.py::BaseEventLoopWithSelectorTests."

  it(T .. "test_getnameinfo", function()
    -- adapted: a real numeric lookup instead of a mocked socket.getnameinfo
    H.run(function()
      local loop = asyncio.get_running_loop()
      local host, port = loop:getnameinfo({ "127.0.0.1", 80 }, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
      assert.same({ "127.0.0.1", "80" }, { host, port })
    end)
  end)

  it(T .. "test_create_connection_host_port_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket()
      assert_raises(ValueError, loop.create_connection, loop, no_protocol, "example.com", 80, { sock = sock })
      sock:close()
    end)
  end)

  it(T .. "test_create_connection_wrong_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      local e = assert_raises(ValueError, loop.create_connection, loop, no_protocol, nil, nil, { sock = sock })
      assert.matches("A Stream Socket was expected", e.message)
      sock:close()
    end)
  end)

  it(T .. "test_create_server_wrong_sock", function()
    -- ported (create_server tried to listen on it before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      local e = assert_raises(ValueError, loop.create_server, loop, no_protocol, nil, nil, { sock = sock })
      assert.matches("A Stream Socket was expected", e.message)
      sock:close()
    end)
  end)

  it(T .. "test_create_server_ssl_timeout_for_plain_socket", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_server, loop, no_protocol, "example.com", 80,
        { ssl_handshake_timeout = 1 })
      assert.matches("ssl_handshake_timeout is only meaningful with ssl", e.message)
    end)
  end)

  it(T .. "test_create_server_ipv6", function()
    -- ported (skipped without IPv6, as upstream)
    if not ipv6_enabled() then return end
    H.run(function()
      local srv = asyncio.start_server(function() end, "::1", 0)
      H.try_finally(function()
        assert.is_true(#srv.sockets > 0)
      end, function()
        srv:close()
        srv:wait_closed()
      end)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_wrong_sock", function()
    -- ported (a stream socket was taken before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      local e = assert_raises(ValueError, loop.create_datagram_endpoint, loop, no_protocol, { sock = sock })
      assert.matches("A datagram socket was expected", e.message)
      sock:close()
    end)
  end)

  it(T .. "test_create_connection_no_host_port_sock", function()
    -- adapted: an argument error (no host) where asyncio raises ValueError
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_argerror("create_connection", loop.create_connection, loop, no_protocol)
    end)
  end)

  it(T .. "test_create_connection_connect_err", function()
    -- adapted: a real refused connection instead of a mocked sock_connect;
    -- all_errors=true raises a trio.ExceptionGroup (Python: ExceptionGroup)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local port = closed_port()
      assert_raises(errors.OSError, loop.create_connection, loop, no_protocol, "127.0.0.1", port)
      local e = assert_raises(errors.ExceptionGroup, loop.create_connection, loop, no_protocol, "127.0.0.1", port,
        { all_errors = true })
      assert.equal(1, #e.exceptions)
      assert.is_true(errors.OSError:is(e.exceptions[1]))
    end)
  end)

  it(T .. "test_create_connection_multiple_errors", function()
    -- adapted: getaddrinfo is replaced on the loop class (restored after)
    -- and answers two loopback ports nothing listens on, instead of a
    -- mocked socket module failing with 'err1', 'err2'
    H.run(function()
      local loop = asyncio.get_running_loop()
      local p1, p2 = closed_port(), closed_port()
      with_fake_getaddrinfo(loop, { stream_target { "127.0.0.1", p1 }, stream_target { "127.0.0.1", p2 } }, function()
        local e = assert_raises(errors.OSError, loop.create_connection, loop, no_protocol, "example.com", 80)
        assert.equal(("Multiple exceptions: connect 127.0.0.1:%d: connection refused, "
          .. "connect 127.0.0.1:%d: connection refused"):format(p1, p2), e.message)
        e = assert_raises(errors.ExceptionGroup, loop.create_connection, loop, no_protocol, "example.com", 80,
          { all_errors = true })
        assert.equal(2, #e.exceptions)
        assert.is_true(errors.OSError:is(e.exceptions[1]) and errors.OSError:is(e.exceptions[2]))
      end)
    end)
  end)

  --- Upstream's happy-eyeballs tests: getaddrinfo answers two addresses,
  -- a connect to the first takes long (upstream 1 s, here 3 s: room for
  -- a slow machine), the delay is 0.3 s: the second one (here a listening
  -- server) wins.
  local function happy_eyeballs_case(slow_target)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(no_protocol, "127.0.0.1", 0)
      local good = server.sockets[1]:getsockname()
      local Loop = getmetatable(loop).__index
      local real_connect = Loop.sock_connect
      Loop.sock_connect = function(self, sock, address)
        if address[1] == slow_target.addr[1] and address[2] == slow_target.addr[2] then asyncio.sleep(3) end
        return real_connect(self, sock, address)
      end
      H.try_finally(function()
        with_fake_getaddrinfo(loop, { slow_target, stream_target(good) }, function()
          local t0 = loop:time()
          local transport = loop:create_connection(no_protocol, "example.com", 80, { happy_eyeballs_delay = 0.3 })
          local took = loop:time() - t0
          assert.same(good, transport:get_extra_info("peername"))
          assert.is_true(took >= 0.29 and took < 2.5, "took " .. took)
          transport:close()
        end)
      end, function()
        Loop.sock_connect = real_connect
        server:close()
      end)
    end)
  end

  it(T .. "test_create_connection_happy_eyeballs", function()
    -- adapted: getaddrinfo and sock_connect are replaced on the loop class
    -- (restored after); the second address is a real listening server
    -- (checked by the transport's peer) and the slow first one is ::1
    -- (upstream: documentation addresses and a mocked socket module)
    if not ipv6_enabled() then return end
    happy_eyeballs_case(stream_target({ "::1", closed_port() }, socket.AF_INET6))
  end)

  it(T .. "test_create_connection_happy_eyeballs_ipv4_only", function()
    -- adapted as the test above, with two IPv4 addresses
    happy_eyeballs_case(stream_target { "127.0.0.1", closed_port() })
  end)

  it(T .. "test_create_connection_service_name", function()
    -- adapted: a service name is resolved as the port ("http" is 80,
    -- checked by getaddrinfo rather than by connecting to port 80); an
    -- unknown one raises an OSError (gaierror)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local list = loop:getaddrinfo("127.0.0.1", "http", { type = socket.SOCK_STREAM })
      assert.same({ "127.0.0.1", 80 }, { list[1].addr[1], list[1].addr[2] })
      assert_raises(errors.OSError, loop.create_connection, loop, no_protocol, "127.0.0.1", "nonsense")
    end)
  end)

  it(T .. "test_create_connection_no_local_addr", function()
    -- adapted: a local_addr of another family instead of a mocked
    -- getaddrinfo that finds none
    H.run(function()
      local loop = asyncio.get_running_loop()
      if not ipv6_enabled() then return end
      assert_raises(errors.OSError, loop.create_connection, loop, no_protocol, "127.0.0.1", 1,
        { family = socket.AF_INET, local_addr = { "::1", 0 } })
    end)
  end)

  it(T .. "test_create_connection_no_ssl_server_hostname_errors", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_raises(ValueError, loop.create_connection, loop, no_protocol, "python.org", 80, { server_hostname = "" })
      assert_raises(ValueError, loop.create_connection, loop, no_protocol, "python.org", 80,
        { server_hostname = "python.org" })
    end)
  end)

  it(T .. "test_create_connection_ssl_server_hostname_errors", function()
    -- ported; host nil without sock= is an argument error.  (A host of ""
    -- went to getaddrinfo, and sock= went on to the handshake, before this
    -- port.)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_raises(ValueError, loop.create_connection, loop, no_protocol, "", 80, { ssl = true })
      assert_argerror("create_connection", loop.create_connection, loop, no_protocol, nil, 80, { ssl = true })
      local sock = socket.socket()
      H.try_finally(function()
        assert_raises(ValueError, loop.create_connection, loop, no_protocol, nil, nil, { ssl = true, sock = sock })
      end, function() sock:close() end)
    end)
  end)

  it(T .. "test_create_connection_ssl_timeout_for_plain_socket", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local e = assert_raises(ValueError, loop.create_connection, loop, no_protocol, "example.com", 80,
        { ssl_handshake_timeout = 1 })
      assert.matches("ssl_handshake_timeout is only meaningful with ssl", e.message)
    end)
  end)

  it(T .. "test_create_server_empty_host", function()
    -- adapted: upstream sees getaddrinfo asked for host None; here the
    -- server made for host "" listens on every interface (the wildcard)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(no_protocol, "", 0)
      H.try_finally(function()
        assert.is_true(#server.sockets > 0)
        for _, s in ipairs(server.sockets) do
          local host = s:getsockname()[1]
          assert.is_true(host == "0.0.0.0" or host == "::", host)
        end
      end, function() server:close() end)
    end)
  end)

  it(T .. "test_create_server_host_port_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket()
      assert_raises(ValueError, loop.create_server, loop, no_protocol, "0.0.0.0", 0, { sock = sock })
      sock:close()
    end)
  end)

  it(T .. "test_create_server_no_host_port_sock", function()
    -- ported (a server on every interface and a random port was made
    -- before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_raises(ValueError, loop.create_server, loop, no_protocol)
    end)
  end)

  it(T .. "test_create_server_cant_bind", function()
    -- adapted: a port already listened on instead of a mocked bind error;
    -- the sockets made are closed (the port stays the first server's)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local first = loop:create_server(no_protocol, "127.0.0.1", 0)
      local port = first.sockets[1]:getsockname()[2]
      H.try_finally(function()
        assert_raises(errors.OSError, loop.create_server, loop, no_protocol, "127.0.0.1", port)
        assert.is_true(first:is_serving())
      end, function() first:close() end)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_addr_error", function()
    -- adapted: argument errors (asyncio: TypeError)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_argerror("create_datagram_endpoint", loop.create_datagram_endpoint, loop, no_protocol,
        { local_addr = "localhost" })
      assert_argerror("create_datagram_endpoint", loop.create_datagram_endpoint, loop, no_protocol,
        { local_addr = { "localhost", 1, 2, 3 } })
    end)
  end)

  it(T .. "test_create_datagram_endpoint_allow_broadcast", function()
    -- adapted: upstream sees that sock_connect is not called; here the
    -- socket has no peer.  (It was connected before this port.)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local protocol = datagram_proto(loop)
      local transport = loop:create_datagram_endpoint(function() return protocol end,
        { remote_addr = { "127.0.0.1", 9 }, allow_broadcast = true })
      local sock = transport:get_extra_info("socket")
      assert.is_not_nil(catch(sock.getpeername, sock))
      transport:close()
      protocol.done:await()
      assert.equal("CLOSED", protocol.state)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_no_matching_family", function()
    -- ported (a gaierror before this port)
    if not ipv6_enabled() then return end
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_raises(ValueError, loop.create_datagram_endpoint, loop, no_protocol,
        { remote_addr = { "127.0.0.1", 0 }, local_addr = { "::1", 0 } })
    end)
  end)

  it(T .. "test_create_datagram_endpoint_noaddr_nofamily", function()
    -- ported (an AF_INET socket was made before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      assert_raises(ValueError, loop.create_datagram_endpoint, loop, no_protocol)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_cant_bind", function()
    -- adapted: an address another UDP socket is bound to instead of a
    -- mocked bind error.  (This fails if SO_REUSEADDR is on: this port
    -- found that every UDP socket had it, from libuv.)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      holder:bind { "127.0.0.1", 0 }
      H.try_finally(function()
        assert_raises(errors.OSError, loop.create_datagram_endpoint, loop, function() return datagram_proto(loop) end,
          { local_addr = holder:getsockname(), family = socket.AF_INET })
      end, function() holder:close() end)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_sock", function()
    -- ported
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      sock:bind { "127.0.0.1", 0 }
      local transport, protocol = loop:create_datagram_endpoint(function() return datagram_proto(loop) end,
        { sock = sock })
      transport:close()
      protocol.done:await()
      assert.equal("CLOSED", protocol.state)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_sock_sockopts", function()
    -- adapted: a real datagram socket for the FakeSock (they were all
    -- accepted and ignored before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      H.try_finally(function()
        for _, opt in ipairs {
          { local_addr = { "127.0.0.1", 0 } }, { remote_addr = { "127.0.0.1", 0 } }, { family = 1 },
          { proto = 1 }, { flags = 1 }, { reuse_port = true }, { allow_broadcast = true },
        } do
          opt.sock = sock
          assert_raises(ValueError, loop.create_datagram_endpoint, loop, no_protocol, opt)
        end
      end, function() sock:close() end)
    end)
  end)

  it(T .. "test_create_datagram_endpoint_sockopts", function()
    -- ported (SO_REUSEADDR was on before this port)
    H.run(function()
      local loop = asyncio.get_running_loop()
      local function opt(sock, name) return sock:getsockopt(socket.SOL_SOCKET, name) ~= 0 end
      local transport, protocol = loop:create_datagram_endpoint(function() return datagram_proto(loop) end,
        { local_addr = { "127.0.0.1", 0 } })
      local sock = transport:get_extra_info("socket")
      assert.is_false(opt(sock, socket.SO_REUSEPORT))
      assert.is_false(opt(sock, socket.SO_BROADCAST))
      transport:close()
      protocol.done:await()
      assert.equal("CLOSED", protocol.state)

      transport, protocol = loop:create_datagram_endpoint(function() return datagram_proto(loop) end,
        { local_addr = { "127.0.0.1", 0 }, reuse_port = true, allow_broadcast = true })
      sock = transport:get_extra_info("socket")
      assert.is_false(opt(sock, socket.SO_REUSEADDR))
      assert.is_true(opt(sock, socket.SO_REUSEPORT))
      assert.is_true(opt(sock, socket.SO_BROADCAST))
      transport:close()
      protocol.done:await()
      assert.equal("CLOSED", protocol.state)
    end)
  end)

  it(T .. "test_call_coroutine", function()
    -- adapted: a coroutine object is a Lua coroutine (thread) here, which
    -- is not callable: argument errors (a coroutine function is a plain
    -- function, which these take)
    H.run(function()
      local loop = asyncio.get_running_loop()
      loop:set_debug(true)
      local co = coroutine.create(function() end)
      assert_argerror("call_soon", loop.call_soon, loop, co)
      assert_argerror("call_soon_threadsafe", loop.call_soon_threadsafe, loop, co)
      assert_argerror("call_later", loop.call_later, loop, 60, co)
      assert_argerror("call_at", loop.call_at, loop, loop:time() + 60, co)
      assert_argerror("run_in_executor", loop.run_in_executor, loop, nil, co)
    end)
  end)

  it("test_base_events.py::RunningLoopTests.test_running_loop_within_a_loop", function()
    -- adapted: the RuntimeError's message differs ("cannot run a loop
    -- inside a running trio run")
    local loop = asyncio.new_event_loop()
    local outer_loop = asyncio.new_event_loop()
    local e = catch(outer_loop.run_until_complete, outer_loop, function() loop:run_forever() end)
    loop:close()
    outer_loop:close()
    assert.is_true(RuntimeError:is(e), tostring(e))
  end)

  it("test_base_events.py::TestSelectorUtils.test_set_nodelay", function()
    -- adapted: _set_nodelay is private; a TCP transport's socket has
    -- TCP_NODELAY set, which is what asyncio uses it for
    H.run(function()
      local loop = asyncio.get_running_loop()
      local server = loop:create_server(no_protocol, "127.0.0.1", 0)
      local transport = loop:create_connection(no_protocol, "127.0.0.1", server.sockets[1]:getsockname()[2])
      local sock = transport:get_extra_info("socket")
      assert.equal(1, sock:getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
      transport:close()
      server:close()
    end)
  end)
end)
