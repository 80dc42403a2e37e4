-- Calls across the bridge: aio_as_trio (functions, futures, tasks, iterator
-- functions), trio_as_aio (functions, iterator functions), run_aio_future,
-- run_aio_coroutine, loop:run_trio / run_trio_task / synchronize, errors
-- several levels deep, ContextVar across crossings, allow_asyncio, many
-- crossings with bounded memory, and an asyncio-flavored library from Trio.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local DeepError = errors.class("spec.DeepError", errors.Error)

describe("aio_as_trio", function()
  it("runs an asyncio-flavored function with its arguments and returns all its results", function()
    local r = table.pack(ta.run(function()
      return ta.aio_as_trio(function(a, b, c)
        asyncio.sleep(0)
        return a * 10, nil, b .. c, ta.current_flavor()
      end)(4, "x", "y")
    end))
    assert.equal(4, r.n)
    assert.equal(40, r[1])
    assert.is_nil(r[2])
    assert.equal("xy", r[3])
    assert.equal("asyncio", r[4])
  end)

  it("runs the function as an asyncio Task of the current loop", function()
    local is_task, same_loop = ta.run(function()
      local loop = ta.current_loop()
      return ta.aio_as_trio(function()
        local t = asyncio.current_task()
        return t ~= nil and asyncio.isfuture(t), t:get_loop() == loop
      end)()
    end)
    assert.is_true(is_task)
    assert.is_true(same_loop)
  end)

  it("the wrapper can be called many times and from several Trio tasks at once", function()
    local results = {}
    ta.run(function()
      local double = ta.aio_as_trio(function(x) asyncio.sleep(0.001) return 2 * x end)
      trio.open_nursery(function(n)
        for i = 1, 5 do n:start_soon(function() results[i] = double(i) end) end
      end)
    end)
    assert.same({ 2, 4, 6, 8, 10 }, results)
  end)

  it("waits for a Future and returns its result", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_later(0.005, function() fut:set_result("from future") end)
      return ta.aio_as_trio(fut)()
    end)
    assert.equal("from future", v)
  end)

  it("raises the exception set on a Future", function()
    local e = errof(ta.run, function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_soon(function() fut:set_exception(DeepError("future failed")) end)
      return ta.aio_as_trio(fut)()
    end)
    assert.is_true(DeepError:is(e))
    assert.equal("future failed", e.message)
  end)

  it("waits for a Task and returns its result", function()
    local v, done = ta.run(function()
      local loop = ta.current_loop()
      local t = loop:create_task(function() asyncio.sleep(0.002) return "task result" end)
      return ta.aio_as_trio(t)(), t:done()
    end)
    assert.equal("task result", v)
    assert.is_true(done)
  end)

  it("a Task that already finished gives its result at once", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local t = loop:create_task(function() return 7 end)
      loop:synchronize()
      trio.sleep(0.001)
      assert(t:done())
      return ta.aio_as_trio(t)()
    end)
    assert.equal(7, v)
  end)

  it("wraps an asyncio-flavored iterator closure for a Trio-side for loop", function()
    local got, flavors = {}, {}
    ta.run(function()
      local function numbers(n)
        local i = 0
        return function()
          asyncio.sleep(0)
          flavors[#flavors + 1] = ta.current_flavor()
          i = i + 1
          if i <= n then return i end
        end
      end
      for v in ta.aio_as_trio(numbers(3)) do
        got[#got + 1] = v
        trio.sleep(0) -- the loop body is Trio-flavored
      end
    end)
    assert.same({ 1, 2, 3 }, got)
    assert.same({ "asyncio", "asyncio", "asyncio", "asyncio" }, flavors)
  end)

  it("wraps a stateless asyncio iterator with its state and control values", function()
    local got = {}
    ta.run(function()
      local function step(t, i)
        asyncio.sleep(0)
        i = i + 1
        if t[i] ~= nil then return i, t[i] end
      end
      for i, v in ta.aio_as_trio(step), { "a", "b", "c" }, 0 do
        got[#got + 1] = i .. "=" .. v
      end
    end)
    assert.same({ "1=a", "2=b", "3=c" }, got)
  end)

  it("an iterator reading an asyncio.Queue until a sentinel", function()
    local got = {}
    ta.run(function()
      local q = asyncio.Queue()
      ta.aio_as_trio(function()
        asyncio.create_task(function()
          for i = 1, 4 do q:put("item" .. i); asyncio.sleep(0.001) end
          q:put(false)
        end)
      end)()
      local function items()
        local v = q:get()
        if v then return v end
      end
      for v in ta.aio_as_trio(items) do got[#got + 1] = v end
    end)
    assert.same({ "item1", "item2", "item3", "item4" }, got)
  end)

  it("awaits a Future that the function returns (a sync function handing out a future)", function()
    local v, cancelled_kind = ta.run(function()
      local loop = ta.current_loop()
      local v = ta.aio_as_trio(function(x)
        local fut = loop:create_future()
        loop:call_later(0.002, fut.set_result, fut, x .. "!")
        return fut
      end)("awaited")
      local e = errof(ta.aio_as_trio(function()
        local fut = loop:create_future()
        fut:cancel()
        return fut
      end))
      return v, asyncio.CancelledError:is(e)
    end)
    assert.equal("awaited!", v)
    assert.is_true(cancelled_kind)
  end)

  it("a Future among several results is returned as it is", function()
    local a, b = ta.run(function()
      local loop = ta.current_loop()
      return ta.aio_as_trio(function() return loop:create_future(), "second" end)()
    end)
    assert.is_true(asyncio.isfuture(a))
    assert.equal("second", b)
  end)

  it("raises an argument error for something that is neither callable nor a future", function()
    local e = errof(ta.aio_as_trio, 42)
    assert_has(e, "aio_as_trio")
  end)

  it("raises a clear error when no loop is open", function()
    local e = errof(trio.run, function() ta.aio_as_trio(function() end)() end)
    assert_has(e, "loop")
  end)

  it("refuses what is not callable at the call site, and takes a callable table", function()
    local e = errof(function() local w = ta.aio_as_trio(42) return w end)
    assert.equal("string", type(e))
    assert_has(e, "bridge_calls_spec.lua:")
    assert_has(e, "bad argument #1 to 'aio_as_trio' (function, Future or Task expected)")
    local callable = setmetatable({}, { __call = function(_, a) asyncio.sleep(0) return a + 1 end })
    assert.equal(3, ta.run(function() return ta.aio_as_trio(callable)(2) end))
  end)
end)

describe("trio_as_aio", function()
  it("runs a Trio-flavored function with its arguments from asyncio and returns all results", function()
    local r = table.pack(ta.run(function()
      return ta.aio_as_trio(function()
        return ta.trio_as_aio(function(x, y)
          trio.sleep(0)
          return x + y, nil, ta.current_flavor()
        end)(20, 22)
      end)()
    end))
    assert.equal(3, r.n)
    assert.equal(42, r[1])
    assert.is_nil(r[2])
    assert.equal("trio", r[3])
  end)

  it("works from an asyncio task created with create_task", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local t = loop:create_task(function()
        local ev = trio.Event()
        local waiter = asyncio.create_task(ta.trio_as_aio(function() ev:wait(); return "woken" end))
        asyncio.sleep(0.002)
        ev:set()
        return waiter:await()
      end)
      return ta.run_aio_future(t)
    end)
    assert.equal("woken", v)
  end)

  it("wraps a Trio-flavored iterator function for an asyncio-side for loop", function()
    local got, flavors = {}, {}
    ta.run(function()
      local send, recv = trio.open_memory_channel(math.huge)
      for i = 1, 3 do send:send_nowait(i * 100) end
      send:close()
      ta.aio_as_trio(function()
        local function next_item()
          flavors[#flavors + 1] = ta.current_flavor()
          local ok, v = pcall(recv.receive, recv)
          if ok then return v end
          assert(trio.EndOfChannel:is(v), tostring(v))
        end
        for v in ta.trio_as_aio(next_item) do
          got[#got + 1] = v
          asyncio.sleep(0) -- the loop body is asyncio-flavored
        end
      end)()
    end)
    assert.same({ 100, 200, 300 }, got)
    assert.same({ "trio", "trio", "trio", "trio" }, flavors)
  end)

  it("raises an argument error for a non-function", function()
    local e = errof(ta.trio_as_aio, "nope")
    assert_has(e, "trio_as_aio")
  end)

  it("refuses what is not callable at the call site, and takes a callable table", function()
    local e = errof(function() local w = ta.trio_as_aio("x") return w end)
    assert.equal("string", type(e))
    assert_has(e, "bridge_calls_spec.lua:")
    assert_has(e, "bad argument #1 to 'trio_as_aio' (function expected)")
    local callable = setmetatable({}, { __call = function(_, a) trio.sleep(0) return a * 2 end })
    assert.equal(10, ta.run(function()
      return ta.run_aio_coroutine(function() return ta.trio_as_aio(callable)(5) end)
    end))
  end)
end)

describe("run_aio_future and run_aio_coroutine", function()
  it("run_aio_future waits for a future set by a callback", function()
    local v = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_later(0.002, fut.set_result, fut, "later")
      return ta.run_aio_future(fut)
    end)
    assert.equal("later", v)
  end)

  it("run_aio_future of a future whose loop is closed or not running raises at once (it could never finish)",
    function()
      local closed = asyncio.new_event_loop()
      local of_closed = closed:create_future()
      closed:close()
      local idle = asyncio.new_event_loop()
      local of_idle = idle:create_future()
      local e1, e2, e3 = ta.run(function()
        -- (bounded: the old code waited forever)
        return errof(trio.fail_after, 2, ta.run_aio_future, of_closed),
          errof(trio.fail_after, 2, ta.run_aio_future, of_idle),
          errof(trio.fail_after, 2, ta.aio_as_trio(of_idle))
      end)
      idle:close()
      for _, e in ipairs { e1, e2, e3 } do assert.is_true(errors.RuntimeError:is(e), tostring(e)) end
      assert_has(e1, "trio_asyncio.run_aio_future: the future's event loop is closed, so the future could never finish")
      assert_has(e2, "the future's event loop is not running")
      assert_has(e3, "the future's event loop is not running")
      assert.is_false(of_idle:done()) -- refused, not cancelled
    end)

  it("run_aio_future waits for a Task", function()
    local v = ta.run(function()
      local t = ta.current_loop():create_task(function(x) asyncio.sleep(0) return x end, "arg")
      return ta.run_aio_future(t)
    end)
    assert.equal("arg", v)
  end)

  it("run_aio_coroutine runs an asyncio-flavored function with arguments", function()
    local a, b = ta.run(function()
      return ta.run_aio_coroutine(function(x, y)
        asyncio.sleep(0.001)
        return y, x
      end, "first", "second")
    end)
    assert.equal("second", a)
    assert.equal("first", b)
  end)

  it("run_aio_coroutine given a Future or a Task waits for it", function()
    local a, b = ta.run(function()
      local loop = ta.current_loop()
      local fut = loop:create_future()
      loop:call_later(0.002, fut.set_result, fut, "future result")
      local t = loop:create_task(function() asyncio.sleep(0.001) return "task result" end)
      return ta.run_aio_coroutine(fut), ta.run_aio_coroutine(t)
    end)
    assert.equal("future result", a)
    assert.equal("task result", b)
  end)

  it("run_aio_coroutine awaits a Future that the function returns", function()
    local v = ta.run(function()
      return ta.run_aio_coroutine(function()
        local loop = asyncio.get_running_loop()
        local fut = loop:create_future()
        loop:call_later(0.002, fut.set_result, fut, "returned future's result")
        return fut
      end)
    end)
    assert.equal("returned future's result", v)
  end)

  it("run_aio_coroutine raises the function's error", function()
    local e = errof(ta.run, function()
      ta.run_aio_coroutine(function() asyncio.sleep(0) error(DeepError("coro failed")) end)
    end)
    assert.is_true(DeepError:is(e))
    assert.equal("coro failed", e.message)
  end)
end)

describe("loop:run_trio, run_trio_task, synchronize", function()
  it("run_trio returns an asyncio Future of the Trio task's result", function()
    local is_future, done_at_once, v = ta.run(function()
      return ta.aio_as_trio(function()
        local loop = asyncio.get_running_loop()
        local fut = loop:run_trio(function(x) trio.sleep(0.001) return x * 3 end, 5)
        return asyncio.isfuture(fut), fut:done(), fut:await()
      end)()
    end)
    assert.is_true(is_future)
    assert.is_false(done_at_once)
    assert.equal(15, v)
  end)

  it("the run_trio future holds the Trio task's error", function()
    local e = ta.run(function()
      return ta.aio_as_trio(function()
        local fut = asyncio.get_running_loop():run_trio(function() trio.sleep(0) error(DeepError("trio failed")) end)
        local ok, err = pcall(fut.await, fut)
        assert(not ok)
        assert(fut:exception() ~= nil)
        return err
      end)()
    end)
    assert.is_true(DeepError:is(e))
  end)

  it("run_trio can be called from Trio code too and waited with run_aio_future", function()
    local v = ta.run(function()
      local fut = ta.current_loop():run_trio(function() trio.sleep(0) return "trio via future" end)
      return ta.run_aio_future(fut)
    end)
    assert.equal("trio via future", v)
  end)

  it("run_trio_task starts a Trio task and returns a handle, not its result", function()
    local log, handle = {}, nil
    ta.run(function()
      local done = trio.Event()
      local n = ta.aio_as_trio(function()
        local r = table.pack(asyncio.get_running_loop():run_trio_task(function(a, b)
          log[#log + 1] = ta.current_flavor() .. " " .. a .. b
          trio.sleep(0)
          done:set()
          return "not returned"
        end, "x", "y"))
        handle = r[1]
        return r.n
      end)()
      log[#log + 1] = "returned " .. n
      done:wait()
    end)
    table.sort(log)
    assert.same({ "returned 1", "trio xy" }, log)
    assert.is_false(handle:cancelled())
  end)

  it("the run_trio_task handle cancels the task, or keeps it from starting", function()
    local log = {}
    ta.run(function()
      local loop = ta.current_loop()
      local h1 = loop:run_trio_task(function() log[#log + 1] = "h1 started" end)
      h1:cancel()
      local h2 = loop:run_trio_task(function()
        log[#log + 1] = "h2 started"
        local _, e = pcall(trio.sleep_forever)
        log[#log + 1] = trio.Cancelled:is(e) and "h2 cancelled" or tostring(e)
        error(e, 0)
      end)
      trio.testing.wait_all_tasks_blocked()
      h2:cancel()
      trio.testing.wait_all_tasks_blocked()
      log[#log + 1] = "body done"
      assert.is_true(h1:cancelled())
      assert.is_true(h2:cancelled())
    end)
    assert.same({ "h2 started", "h2 cancelled", "body done" }, log)
  end)

  it("an error in a run_trio_task task ends the open_loop block", function()
    local e = errof(ta.run, function()
      ta.current_loop():run_trio_task(function() error(DeepError("service task failed")) end)
      trio.sleep(5)
    end)
    local leaf = e
    while trio.ExceptionGroup:is(leaf) do leaf = leaf.exceptions[1] end
    assert.is_true(DeepError:is(leaf))
  end)

  it("an error in a run_trio_task task goes to the loop's exception handler", function()
    local got
    local r = ta.run(function()
      local loop = ta.current_loop()
      loop:set_exception_handler(function(_, ctx) got = ctx end)
      local done = trio.Event()
      loop:run_trio_task(function()
        done:set()
        error(DeepError("reported"))
      end)
      done:wait()
      trio.sleep(0.001)
      return "block went on"
    end)
    assert.equal("block went on", r)
    assert.is_true(DeepError:is(got.exception))
    assert_has(got.message, "Exception in callback")
  end)

  it("trio_asyncio.run_trio_task starts a Trio task on the current loop, returns nothing", function()
    local log = {}
    local e = errof(trio.run, function() ta.run_trio_task(function() end) end)
    assert.is_true(trio.RuntimeError:is(e))
    assert_has(e, "not within a trio_asyncio loop")
    ta.run(function()
      local done = trio.Event()
      log[#log + 1] = select("#", ta.run_trio_task(function(x)
        log[#log + 1] = x .. " " .. ta.current_flavor()
        done:set()
      end, "ran"))
      done:wait()
    end)
    assert.same({ 0, "ran trio" }, log)
  end)

  it("synchronize waits until the callbacks queued so far have run", function()
    local log = {}
    ta.run(function()
      local loop = ta.current_loop()
      loop:call_soon(function() log[#log + 1] = "a" end)
      loop:call_soon(function() log[#log + 1] = "b" end)
      loop:synchronize()
      log[#log + 1] = "synchronized"
    end)
    assert.same({ "a", "b", "synchronized" }, log)
  end)
end)

describe("errors across the bridge", function()
  it("a string error crossing trio -> aio -> trio -> aio keeps its message", function()
    local e = errof(ta.run, function()
      ta.aio_as_trio(function()
        ta.trio_as_aio(function()
          ta.aio_as_trio(function()
            asyncio.sleep(0)
            error("deepest failure", 0)
          end)()
        end)()
      end)()
    end)
    assert.equal("deepest failure", e)
  end)

  it("an error object crossing several levels keeps its class, message and fields", function()
    local e = errof(ta.run, function()
      ta.aio_as_trio(function()
        ta.trio_as_aio(function()
          ta.aio_as_trio(function()
            ta.trio_as_aio(function()
              trio.sleep(0)
              error(DeepError { message = "deep object", code = 17 })
            end)()
          end)()
        end)()
      end)()
    end)
    assert.is_true(DeepError:is(e))
    assert.equal("deep object", e.message)
    assert.equal(17, e.code)
    assert.is_string(e.traceback)
  end)

  it("an error object's traceback still names where it was raised after crossing", function()
    local raised_at
    local e = errof(ta.run, function()
      ta.aio_as_trio(function()
        ta.trio_as_aio(function()
          raised_at = debug.getinfo(1, "l").currentline + 1
          error(DeepError("with traceback"))
        end)()
      end)()
    end)
    assert.is_true(DeepError:is(e))
    assert_has(e.traceback, "bridge_calls_spec.lua:" .. raised_at)
  end)

  it("an error can be caught at an intermediate level and the call goes on", function()
    local v = ta.run(function()
      return ta.aio_as_trio(function()
        local ok, err = pcall(ta.trio_as_aio(function()
          ta.aio_as_trio(function() error(DeepError("caught midway")) end)()
        end))
        assert(not ok)
        return DeepError:is(err) and ("recovered from " .. err.message)
      end)()
    end)
    assert.equal("recovered from caught midway", v)
  end)
end)

describe("ContextVar across crossings", function()
  it("aio_as_trio carries the caller's value and writes do not leak back", function()
    local var = trio.ContextVar("spec.var", "default")
    local seen = {}
    ta.run(function()
      var:set("trio value")
      ta.aio_as_trio(function()
        seen.aio = var:get()
        var:set("aio wrote")
        asyncio.sleep(0)
        seen.aio_after = var:get()
      end)()
      seen.trio_after = var:get()
    end)
    assert.same({ aio = "trio value", aio_after = "aio wrote", trio_after = "trio value" }, seen)
  end)

  it("trio_as_aio carries the asyncio task's value and writes do not leak back", function()
    local var = trio.ContextVar("spec.var2", "default")
    local seen = {}
    ta.run(function()
      ta.aio_as_trio(function()
        var:set("aio value")
        ta.trio_as_aio(function()
          seen.trio = var:get()
          var:set("trio wrote")
          trio.sleep(0)
          seen.trio_after = var:get()
        end)()
        seen.aio_after = var:get()
      end)()
      seen.root = var:get()
    end)
    assert.same({ trio = "aio value", trio_after = "trio wrote", aio_after = "aio value", root = "default" }, seen)
  end)

  it("values travel through every level and each level keeps its own", function()
    local var = trio.ContextVar("spec.depth", 0)
    local seen = {}
    ta.run(function()
      var:set(1)
      ta.aio_as_trio(function()
        seen[#seen + 1] = var:get(); var:set(2)
        ta.trio_as_aio(function()
          seen[#seen + 1] = var:get(); var:set(3)
          ta.aio_as_trio(function()
            seen[#seen + 1] = var:get(); var:set(4)
          end)()
          seen[#seen + 1] = var:get()
        end)()
        seen[#seen + 1] = var:get()
      end)()
      seen[#seen + 1] = var:get()
    end)
    assert.same({ 1, 2, 3, 3, 2, 1 }, seen)
  end)

  it("run_aio_coroutine, run_trio, run_trio_task and create_task carry the context", function()
    local var = trio.ContextVar("spec.var3", "default")
    local seen = {}
    ta.run(function()
      var:set("root")
      seen.coroutine = ta.run_aio_coroutine(function() local v = var:get(); var:set("x"); return v end)
      seen.task = ta.run_aio_future(ta.current_loop():create_task(function()
        local v = var:get(); var:set("y"); return v
      end))
      ta.aio_as_trio(function()
        var:set("aio")
        local loop = asyncio.get_running_loop()
        seen.run_trio = loop:run_trio(function() local v = var:get(); var:set("z"); return v end):await()
        local fut = loop:create_future()
        loop:run_trio_task(function() fut:set_result(var:get()); var:set("w") end)
        seen.run_trio_task = fut:await()
        seen.aio_after = var:get()
      end)()
      seen.root_after = var:get()
    end)
    assert.same({
      coroutine = "root", task = "root", run_trio = "aio", run_trio_task = "aio",
      aio_after = "aio", root_after = "root",
    }, seen)
  end)

  it("trio_as_aio's Trio task sees the calling loop as current, call after call, whatever the caller's context holds", function()
    -- (the task body remembers the last context it found holding the loop:
    -- Tasks of two loops sharing one context, and a caller whose context
    -- names another value, must each still see their own loop)
    local seen = {}
    local function calls(tag, n)
      local loop = asyncio.get_running_loop()
      for i = 1, n do
        local got = ta.trio_as_aio(function() trio.sleep(0) return ta.current_loop() end)()
        seen[#seen + 1] = ("%s%d:%s"):format(tag, i, tostring(got == loop))
      end
    end
    ta.run(function()
      local loop_a, loop_b = ta.current_loop(), nil
      local opened, done = trio.Event(), trio.Event()
      trio.open_nursery(function(n)
        n:start_soon(ta.open_loop, function(loop)
          loop_b = loop
          opened:set()
          done:wait()
        end)
        opened:wait()
        for round = 1, 2 do -- both Tasks start in this task's context, which names loop_a
          ta.run_aio_future(loop_a:create_task(calls, "a" .. round .. ".", 2))
          ta.run_aio_future(loop_b:create_task(calls, "b" .. round .. ".", 2))
        end
        done:set()
      end)
      ta.run_aio_coroutine(function()
        asyncio._current_loop_var:set("not a loop")
        calls("c", 2)
      end)
    end)
    table.sort(seen)
    assert.same({ "a1.1:true", "a1.2:true", "a2.1:true", "a2.2:true", "b1.1:true", "b1.2:true",
      "b2.1:true", "b2.2:true", "c1:true", "c2:true" }, seen)
  end)
end)

describe("allow_asyncio", function()
  it("lets both flavors be called directly and returns fn's results", function()
    local log = {}
    local a, b = ta.run(function()
      return ta.allow_asyncio(function(x)
        trio.sleep(0)
        log[#log + 1] = "trio.sleep"
        asyncio.sleep(0.001)
        log[#log + 1] = "asyncio.sleep"
        local loop = asyncio.get_running_loop()
        local fut = loop:create_future()
        loop:call_soon(fut.set_result, fut, "fut")
        log[#log + 1] = fut:await()
        local t = asyncio.create_task(function() asyncio.sleep(0) return "task" end)
        log[#log + 1] = t:await()
        trio.sleep(0.001)
        return x, "end"
      end, "arg")
    end)
    assert.equal("arg", a)
    assert.equal("end", b)
    assert.same({ "trio.sleep", "asyncio.sleep", "fut", "task" }, log)
  end)

  it("asyncio sync primitives and trio primitives mix inside", function()
    local v = ta.run(function()
      return ta.allow_asyncio(function()
        local ev = asyncio.Event()
        local trio_ev = trio.Event()
        asyncio.get_running_loop():call_later(0.002, function() ev:set() end)
        ev:wait()
        trio.open_nursery(function(n)
          n:start_soon(function() trio.sleep(0.001) trio_ev:set() end)
          trio_ev:wait()
        end)
        return "both waited"
      end)
    end)
    assert.equal("both waited", v)
  end)

  it("an asyncio.Queue get and put wait in an allow_asyncio task; a cancelled get loses no item", function()
    local r = ta.run(function()
      return ta.allow_asyncio(function()
        local q = asyncio.Queue(1)
        local loop = asyncio.get_running_loop()
        loop:call_later(0.002, q.put_nowait, q, "late")
        local got = q:get() -- waits
        q:put_nowait("full")
        loop:call_later(0.002, q.get_nowait, q)
        q:put("second") -- waits for the slot
        local second = q:get_nowait()
        local timed_out = trio.move_on_after(0.002, function() return q:get() end).cancelled_caught
        loop:call_soon(q.put_nowait, q, "kept")
        return { got, second, timed_out, q:get(), q:qsize(), tostring(q) }
      end)
    end)
    assert.same({ "late", "second", true, "kept", 0,
      "Queue (maxsize:1, qsize:0, getters:0, putters:0, unfinished:4)" }, r)
  end)

  it("asyncio.sleep returns its result argument, with or without a delay", function()
    local a, b = ta.run(function()
      return ta.allow_asyncio(function()
        return asyncio.sleep(0, "now"), asyncio.sleep(0.001, "later")
      end)
    end)
    assert.equal("now", a)
    assert.equal("later", b)
  end)

  it("awaits a Future that fn returns, and waits for a Future given instead of fn", function()
    local a, b = ta.run(function()
      local loop = ta.current_loop()
      local a = ta.allow_asyncio(function(x)
        local fut = loop:create_future()
        loop:create_task(function() asyncio.sleep(0.001) fut:set_result(x) end)
        return fut
      end, "from returned future")
      local fut = loop:create_future()
      loop:call_later(0.001, fut.set_result, fut, "from given future")
      return a, ta.allow_asyncio(fut)
    end)
    assert.equal("from returned future", a)
    assert.equal("from given future", b)
  end)

  it("propagates fn's error", function()
    local e = errof(ta.run, function()
      ta.allow_asyncio(function() asyncio.sleep(0) error(DeepError("allow failed")) end)
    end)
    assert.is_true(DeepError:is(e))
  end)

  it("can be cancelled by Trio while in an asyncio wait", function()
    local caught = ta.run(function()
      local scope = trio.move_on_after(0.01, function()
        ta.allow_asyncio(function() asyncio.sleep(10) end)
      end)
      return scope.cancelled_caught
    end)
    assert.is_true(caught)
  end)
end)

describe("many crossings", function()
  local N = 100000

  local function kb() collectgarbage("collect"); collectgarbage("collect"); return collectgarbage("count") end

  -- f(i) N times: the sum, how much the heap grew for good, and its peak
  -- above the start.  (How high the peak goes depends on the collector's
  -- pacing, not only on the crossings: in incremental mode a cycle starts at
  -- twice the live heap and allocation goes on while it runs, so in the
  -- suite's heap the peak reaches 40-70 MB.  The bound says that a crossing
  -- leaves less than 1 KB of garbage, collected or not.)
  local function crossings(f)
    for i = 1, 1000 do f(i) end
    local base = kb()
    local peak, s = 0, 0
    for i = 1, N do
      s = s + f(i)
      if i % 10000 == 0 then peak = math.max(peak, collectgarbage("count") - base) end
    end
    return s, kb() - base, peak
  end

  local function check(sum, grew, peak)
    assert.equal(N * (N + 1) / 2, sum)
    assert.is_true(grew < 2048, ("memory grew by %.0f KB"):format(grew))
    assert.is_true(peak < N, ("memory peaked %.0f KB above the start"):format(peak))
  end

  it("100,000 aio_as_trio calls with bounded memory", function()
    require("support").skip_under_gc_stress(pending)
    check(ta.run(function()
      return crossings(ta.aio_as_trio(function(i) return i end))
    end))
  end)

  it("100,000 trio_as_aio calls with bounded memory", function()
    require("support").skip_under_gc_stress(pending)
    check(ta.run(function()
      return ta.aio_as_trio(function()
        return crossings(ta.trio_as_aio(function(i) return i end))
      end)()
    end))
  end)
end)

describe("an asyncio-flavored library used unchanged from Trio", function()
  -- A tiny line protocol over asyncio queues: the "server" answers
  -- "PING" with "PONG", "ECHO x" with "x", "ADD a b" with the sum, and an
  -- error line for anything else.  The client is written only with asyncio.
  local function start_server()
    local to_server, to_client = asyncio.Queue(), asyncio.Queue()
    local server = asyncio.create_task(function()
      while true do
        local line = to_server:get()
        if line == nil then break end
        asyncio.sleep(0)
        local reply
        if line == "PING" then reply = "PONG"
        elseif line:match("^ECHO ") then reply = line:sub(6)
        elseif line:match("^ADD ") then
          local a, b = line:match("^ADD (%-?%d+) (%-?%d+)$")
          reply = tostring(tonumber(a) + tonumber(b))
        else reply = "ERR unknown command" end
        to_client:put(reply)
      end
    end)
    return to_server, to_client, server
  end

  local Client = {}
  Client.__index = Client

  function Client.connect()
    local to_server, to_client, server = start_server()
    asyncio.sleep(0)
    return setmetatable({ out = to_server, inp = to_client, server = server,
      lock = asyncio.Lock() }, Client)
  end

  function Client:request(line)
    self.lock:acquire()
    self.out:put(line)
    local reply = self.inp:get()
    self.lock:release()
    if reply:match("^ERR ") then error(reply, 0) end
    return reply
  end

  function Client:close()
    self.out:put(nil)
    self.server:await()
  end

  it("connects, sends requests, gets replies and errors, closes", function()
    local log = {}
    ta.run(function()
      local client = ta.aio_as_trio(Client.connect)()
      local request = ta.aio_as_trio(Client.request)
      log[#log + 1] = request(client, "PING")
      log[#log + 1] = request(client, "ECHO hello world")
      log[#log + 1] = request(client, "ADD 40 2")
      local _, e = pcall(request, client, "FROB")
      log[#log + 1] = e
      ta.aio_as_trio(Client.close)(client)
      log[#log + 1] = client.server:done() and "server ended" or "server running"
    end)
    assert.same({ "PONG", "hello world", "42", "ERR unknown command", "server ended" }, log)
  end)

  it("serves concurrent Trio tasks through its asyncio lock", function()
    local replies = {}
    ta.run(function()
      local client = ta.aio_as_trio(Client.connect)()
      local request = ta.aio_as_trio(Client.request)
      trio.open_nursery(function(n)
        for i = 1, 10 do
          n:start_soon(function() replies[i] = request(client, "ADD " .. i .. " " .. i) end)
        end
      end)
      ta.aio_as_trio(Client.close)(client)
    end)
    for i = 1, 10 do assert.equal(tostring(2 * i), replies[i]) end
  end)
end)
