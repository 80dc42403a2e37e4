-- asyncio.ThreadPoolExecutor, asyncio.ConcurrentFuture and asyncio.wrap_future:
-- jobs on worker threads with a limit per executor, futures that a blocking
-- call delivers without any loop, loops that watch them, cancellation both
-- ways, bad input, and the same under trio_asyncio.open_loop.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local wait_for_file, exists, new_path = support.wait_for_file, support.file_exists, support.new_path

-- A worker function that creates the file `path`.
local function touch(path)
  assert(io.open(path, "w")):close()
  return path
end

-- Polls pred() (without a loop) for up to 10 s.
local function eventually(pred, what)
  local deadline = os.time() + 10
  while not pred() do
    assert(os.time() <= deadline, "timed out waiting for " .. what)
    os.execute("sleep 0.005")
  end
end

describe("asyncio.ThreadPoolExecutor", function()
  it("submit returns a ConcurrentFuture whose result() waits for the worker, without any loop", function()
    local ex = asyncio.ThreadPoolExecutor(2)
    local cf = ex:submit(function(i, f, t) return i + 1, f * 2, nil, { t[1], k = t.k } end, 41, 1.5, { "a", k = "v" })
    local r = table.pack(cf:result(10))
    assert.equal(4, r.n)
    assert.equal(42, r[1])
    assert.equal("integer", math.type(r[1]))
    assert.equal(3.0, r[2])
    assert.is_nil(r[3])
    assert.same({ "a", k = "v" }, r[4])
    assert.is_true(cf:done())
    assert.is_false(cf:cancelled())
    assert.is_false(cf:running())
    assert.is_nil(cf:exception())
    ex:shutdown(true)
  end)

  it("runs at most max_workers jobs at once; the others wait in the shared pool", function()
    local ex = asyncio.ThreadPoolExecutor(2)
    local gates = { new_path(), new_path(), new_path() }
    local futs = {}
    for i = 1, 3 do futs[i] = ex:submit(wait_for_file, gates[i], i) end
    eventually(function() return futs[1]:running() and futs[2]:running() end, "two running jobs")
    assert.is_false(futs[3]:running())
    assert.matches("state=pending", tostring(futs[3]))
    assert.matches("state=running", tostring(futs[1]))
    -- the job over the limit does not hold up other executors or to_thread
    local other = asyncio.ThreadPoolExecutor(1)
    assert.equal("free", other:submit(function() return "free" end):result(10))
    other:shutdown(true)
    touch(gates[1])
    assert.equal(1, futs[1]:result(10))
    eventually(function() return futs[3]:running() end, "the third job to start")
    touch(gates[2])
    touch(gates[3])
    assert.same({ 2, 3 }, { futs[2]:result(10), futs[3]:result(10) })
    ex:shutdown(true)
    for _, g in ipairs(gates) do os.remove(g) end
  end)

  it("result(timeout) raises TimeoutError while the job runs, then returns once it ended", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local gate = new_path()
    local cf = ex:submit(wait_for_file, gate, "late")
    local e = errof(cf.result, cf, 0.05)
    assert.is_true(asyncio.TimeoutError:is(e))
    assert.is_true(asyncio.TimeoutError:is(errof(cf.exception, cf, 0)))
    assert.is_true(asyncio.TimeoutError:is(errof(cf.result, cf, 0 / 0))) -- NaN: just looks
    assert.is_false(cf:done())
    touch(gate)
    assert.equal("late", cf:result(math.huge))
    ex:shutdown(true)
    os.remove(gate)
  end)

  it("an error raised by the worker function is the future's exception", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local cf = ex:submit(function() error("boom in the worker") end)
    local err = cf:exception(10)
    assert_has(err, "boom in the worker")
    assert_has(errof(cf.result, cf), "boom in the worker")
    local cf2 = ex:submit(function() error({ code = 7 }) end)
    assert.same({ code = 7 }, cf2:exception(10))
    ex:shutdown(true)
  end)

  it("shutdown(true) waits for every job; submit afterwards raises RuntimeError", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local futs = {}
    for i = 1, 3 do futs[i] = ex:submit(function(x) os.execute("sleep 0.02") return x end, i) end
    ex:shutdown(true)
    for i = 1, 3 do
      assert.is_true(futs[i]:done())
      assert.equal(i, futs[i]:result(0))
    end
    local e = errof(ex.submit, ex, function() end)
    assert.is_true(errors.RuntimeError:is(e))
    assert.equal("submit: cannot schedule new futures after shutdown", e.message)
    ex:shutdown(true) -- again: nothing to do
  end)

  it("shutdown(false) returns at once; shutdown(false, true) cancels the jobs no worker started", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local gate, never = new_path(), new_path()
    local running = ex:submit(wait_for_file, gate, "ran")
    local queued = ex:submit(touch, never)
    eventually(function() return running:running() end, "the first job")
    ex:shutdown(false, true)
    assert.is_true(queued:cancelled())
    assert.is_true(asyncio.CancelledError:is(errof(queued.result, queued)))
    assert.is_false(running:done())
    touch(gate)
    assert.equal("ran", running:result(10))
    assert.is_false(exists(never))
    os.remove(gate)
  end)

  it("a <close> variable shuts the executor down and waits", function()
    local cf
    do
      local ex <close> = asyncio.ThreadPoolExecutor(1)
      cf = ex:submit(function() os.execute("sleep 0.02") return "closed" end)
    end
    assert.is_true(cf:done())
    assert.equal("closed", cf:result(0))
  end)

  it("cancel() stops a queued job from running and is refused for a running one", function()
    local ex = asyncio.ThreadPoolExecutor(1)
    local gate, never = new_path(), new_path()
    local first = ex:submit(wait_for_file, gate)
    local second = ex:submit(touch, never)
    eventually(function() return first:running() end, "the first job")
    assert.is_false(first:cancel())
    assert.is_true(second:cancel())
    assert.is_true(second:cancel()) -- already cancelled
    assert.is_true(second:done())
    touch(gate)
    ex:shutdown(true)
    assert.is_false(first:cancelled())
    assert.is_false(exists(never))
    os.remove(gate)
  end)

  it("futures and executors nobody holds are collected while their jobs run", function()
    local gate = new_path()
    do
      local ex = asyncio.ThreadPoolExecutor(1)
      ex:submit(wait_for_file, gate)
      ex:submit(wait_for_file, gate)
    end
    collectgarbage()
    collectgarbage()
    touch(gate)
    local ex = asyncio.ThreadPoolExecutor(1)
    assert.equal(5, ex:submit(function(x) return x end, 5):result(10))
    ex:shutdown(true)
    os.remove(gate)
  end)

  it("a state that closes with jobs finished but not delivered, running and queued exits cleanly", function()
    -- (a child process: lua_close at its end; the first job's request is
    -- older than the pool, which the engine's list closes first; the first
    -- job has finished, during the sleep, and nothing delivered it)
    local script = [[
      local asyncio = require "asyncio"
      local ex = asyncio.ThreadPoolExecutor(1)
      local finished = ex:submit(function() return 1 end)
      os.execute("sleep 0.2")
      local running = ex:submit(function() os.execute("sleep 0.2") end)
      local queued = ex:submit(function() return 3 end)
      local loop = asyncio.new_event_loop()
      local watched = asyncio.wrap_future(queued, loop)
      print("exiting", finished ~= nil, running ~= nil, watched ~= nil)
    ]]
    local cmd = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q 2>&1; echo \"exit=$?\""):format(package.path, package.cpath, script)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.equal("exiting\ttrue\ttrue\ttrue\nexit=0\n", out)
  end)

  it("the default max_workers is min(32, CPUs + 4), as Python's", function()
    local ex = asyncio.ThreadPoolExecutor()
    local n = tonumber(tostring(ex):match("max_workers=(%d+)"))
    assert.is_true(n >= 5 and n <= 32, tostring(n))
    ex:shutdown()
  end)
end)

describe("asyncio.ConcurrentFuture", function()
  it("is settled with set_result (several values) or set_exception, once", function()
    local cf = asyncio.ConcurrentFuture()
    assert.is_false(cf:done())
    assert.is_false(cf:running())
    cf:set_result(1, nil, "three")
    assert.same(table.pack(1, nil, "three"), table.pack(cf:result()))
    assert.is_true(cf:done())
    assert.is_false(cf:cancel())
    local e = errof(cf.set_result, cf, 2)
    assert.is_true(asyncio.InvalidStateError:is(e))
    assert.matches("^set_result: invalid state: <ConcurrentFuture at 0x%x+ state=finished returned number>$", e.message)
    local cf2 = asyncio.ConcurrentFuture()
    local boom = errors.RuntimeError("boom")
    cf2:set_exception(boom)
    assert.equal(boom, cf2:exception())
    assert.equal(boom, errof(cf2.result, cf2))
    assert.is_true(asyncio.InvalidStateError:is(errof(cf2.set_exception, cf2, boom)))
  end)

  it("result() of a pending future that nothing can complete raises InvalidStateError, not a hang", function()
    local cf = asyncio.ConcurrentFuture()
    local e = errof(cf.result, cf)
    assert.is_true(asyncio.InvalidStateError:is(e))
    assert.matches("nothing can complete it", e.message)
    assert.is_true(asyncio.InvalidStateError:is(errof(cf.exception, cf)))
    -- with a timeout: TimeoutError at once (nothing can happen meanwhile)
    assert.is_true(asyncio.TimeoutError:is(errof(cf.result, cf, 0.01)))
  end)

  it("cancel() of a pending future: cancelled, and result/exception raise CancelledError", function()
    local cf = asyncio.ConcurrentFuture()
    local seen = {}
    cf:add_done_callback(function(f) seen[#seen + 1] = f end)
    assert.is_true(cf:cancel())
    assert.is_true(cf:cancelled())
    assert.is_true(cf:done())
    assert.same({ cf }, seen)
    assert.is_true(asyncio.CancelledError:is(errof(cf.result, cf)))
    assert.is_true(asyncio.CancelledError:is(errof(cf.exception, cf)))
    assert.is_true(asyncio.InvalidStateError:is(errof(cf.set_result, cf, 1)))
  end)

  it("done callbacks run in order when it completes, at once when already done", function()
    local cf = asyncio.ConcurrentFuture()
    local order = {}
    cf:add_done_callback(function() order[#order + 1] = "a" end)
    cf:add_done_callback(function() order[#order + 1] = "b" end)
    assert.same({}, order)
    cf:set_result(1)
    assert.same({ "a", "b" }, order)
    cf:add_done_callback(function(f) order[#order + 1] = f:result() end)
    assert.same({ "a", "b", 1 }, order)
  end)

  it("a callback that raises is reported to the running loop's exception handler; the others run", function()
    local loop = asyncio.new_event_loop()
    local contexts, ran = {}, false
    loop:set_exception_handler(function(_, ctx) contexts[#contexts + 1] = ctx end)
    local cf = asyncio.ConcurrentFuture()
    loop:run_until_complete(function()
      cf:add_done_callback(function() error("callback failed") end)
      cf:add_done_callback(function() ran = true end)
      cf:set_result(1)
    end)
    loop:close()
    assert.is_true(ran)
    assert.equal(1, #contexts)
    assert.matches("^exception calling callback for <ConcurrentFuture", contexts[1].message)
    assert_has(contexts[1].exception, "callback failed")
    assert.equal(cf, contexts[1].future)
  end)

  it("the done callbacks of a job's future run in a running loop without anyone polling", function()
    local got = asyncio.run(function()
      local ex = asyncio.ThreadPoolExecutor(1)
      local event = asyncio.Event()
      local cf = ex:submit(function() os.execute("sleep 0.02") return "job" end)
      local got
      cf:add_done_callback(function(f) got = f:result(); event:set() end)
      asyncio.wait_for(function() return event:wait() end, 10)
      ex:shutdown(true)
      return got
    end)
    assert.equal("job", got)
  end)
end)

describe("asyncio.wrap_future", function()
  it("an awaited wrapper leaves the loop running other tasks while the job runs", function()
    local order = {}
    local r = asyncio.run(function()
      local ex = asyncio.ThreadPoolExecutor(1)
      local gate = new_path()
      local wrapped = asyncio.wrap_future(ex:submit(wait_for_file, gate, "job done"))
      asyncio.create_task(function()
        asyncio.sleep(0.02)
        order[#order + 1] = "task ran"
        touch(gate)
      end)
      local v = asyncio.wait_for(wrapped, 10)
      order[#order + 1] = v
      ex:shutdown(true)
      os.remove(gate)
      return v
    end)
    assert.equal("job done", r)
    assert.same({ "task ran", "job done" }, order)
  end)

  it("copies an error or a cancellation into the wrapper", function()
    local loop = asyncio.new_event_loop()
    local ex = asyncio.ThreadPoolExecutor(1)
    local failing = asyncio.wrap_future(ex:submit(function() error("worker failed") end), loop)
    local e = errof(loop.run_until_complete, loop, failing)
    assert_has(e, "worker failed")
    local cf = asyncio.ConcurrentFuture()
    local wrapped = asyncio.wrap_future(cf, loop)
    cf:cancel()
    assert.is_true(asyncio.CancelledError:is(errof(loop.run_until_complete, loop, wrapped)))
    ex:shutdown(true)
    loop:close()
  end)

  it("cancelling the wrapper of a queued job cancels the job: it never runs", function()
    local loop = asyncio.new_event_loop()
    local ex = asyncio.ThreadPoolExecutor(1)
    local gate, never = new_path(), new_path()
    local first = ex:submit(wait_for_file, gate)
    local queued = ex:submit(touch, never)
    local wrapped = asyncio.wrap_future(queued, loop)
    wrapped:cancel()
    loop:run_until_complete(function() asyncio.sleep(0) end)
    assert.is_true(queued:cancelled())
    touch(gate)
    ex:shutdown(true)
    assert.is_true(first:done())
    assert.is_false(exists(never))
    loop:close()
    os.remove(gate)
  end)

  it("a wrapper whose loop closed leaves the job to result()", function()
    local loop = asyncio.new_event_loop()
    local ex = asyncio.ThreadPoolExecutor(1)
    local gate = new_path()
    local cf = ex:submit(wait_for_file, gate, "still here")
    local wrapped = asyncio.wrap_future(cf, loop)
    loop:close()
    touch(gate)
    assert.equal("still here", cf:result(10))
    assert.is_false(wrapped:done())
    ex:shutdown(true)
    os.remove(gate)
  end)
end)

describe("loop:run_in_executor and set_default_executor with a ThreadPoolExecutor", function()
  it("run_in_executor(executor, fn, ...) returns an asyncio Future of fn's results", function()
    local loop = asyncio.new_event_loop()
    local ex = asyncio.ThreadPoolExecutor(2)
    local fut = loop:run_in_executor(ex, function(a, b) return a + b, "sum" end, 2, 3)
    assert.is_true(asyncio.isfuture(fut))
    assert.same({ 5, "sum" }, { loop:run_until_complete(fut) })
    ex:shutdown(true)
    loop:close()
  end)

  it("set_default_executor: run_in_executor(nil, ...) goes to that executor", function()
    local loop = asyncio.new_event_loop()
    local ex = asyncio.ThreadPoolExecutor(1)
    loop:set_default_executor(ex)
    assert.equal(9, loop:run_until_complete(loop:run_in_executor(nil, function(x) return x * x end, 3)))
    ex:shutdown(true)
    local e = errof(loop.run_in_executor, loop, nil, function() end)
    assert.equal("run_in_executor: cannot schedule new futures after shutdown", e.message)
    loop:close()
  end)
end)

describe("ThreadPoolExecutor bad input", function()
  local ex
  before_each(function() ex = asyncio.ThreadPoolExecutor(1) end)
  after_each(function() ex:shutdown(true) end)

  it("max_workers must be a positive integer", function()
    assert_has(errof(asyncio.ThreadPoolExecutor, 0), "bad argument #1 to 'ThreadPoolExecutor' (max_workers must be greater than 0)")
    assert_has(errof(asyncio.ThreadPoolExecutor, -3), "max_workers must be greater than 0")
    assert_has(errof(asyncio.ThreadPoolExecutor, 1.5),
      "bad argument #1 to 'ThreadPoolExecutor' (max_workers: integer or nil expected, got float)")
    assert_has(errof(asyncio.ThreadPoolExecutor, "4"), "integer or nil expected, got string")
  end)

  it("submit takes a Lua function whose only upvalue is _ENV, and copyable arguments", function()
    assert_has(errof(ex.submit, ex, 42), "bad argument #1 to 'submit' (Lua function expected, got number)")
    assert_has(errof(ex.submit, ex, print), "bad argument #1 to 'submit' (Lua function expected, got C function)")
    local captured = {}
    assert_has(errof(ex.submit, ex, function() return captured end), "the function has upvalue 'captured'")
    local e = errof(ex.submit, ex, function() end, 1, coroutine.create(print))
    assert_has(e, "bad argument #3 to 'submit' (a thread cannot be copied to a worker thread)")
    e = errof(ex.submit, ex, function() end, setmetatable({}, {}))
    assert_has(e, "bad argument #2 to 'submit'")
    assert_has(errof(ex.submit, ex), "bad argument #1 to 'submit' (Lua function expected, got nil)")
  end)

  it("methods check self and their arguments", function()
    assert_has(errof(ex.submit, {}, function() end),
      "bad argument #1 to 'ThreadPoolExecutor:submit' (asyncio.ThreadPoolExecutor expected, got table)")
    assert_has(errof(ex.shutdown, ex, "yes"), "bad argument #1 to 'shutdown' (wait: boolean or nil expected, got string)")
    assert_has(errof(ex.shutdown, ex, true, 1), "bad argument #2 to 'shutdown' (cancel_futures: boolean or nil expected")
    local cf = asyncio.ConcurrentFuture()
    assert_has(errof(cf.result, cf, "soon"), "bad argument #1 to 'result' (timeout: number of seconds or nil expected, got string)")
    assert_has(errof(cf.add_done_callback, cf, 42), "bad argument #1 to 'add_done_callback' (function expected, got number)")
    assert_has(errof(cf.set_exception, cf, nil), "bad argument #1 to 'set_exception' (exception expected, got nil)")
    assert_has(errof(cf.done, 42), "bad argument #1 to 'ConcurrentFuture:done' (asyncio.ConcurrentFuture expected, got number)")
  end)

  it("a job's future cannot be settled by hand", function()
    local cf = ex:submit(function() return 1 end)
    local e = errof(cf.set_result, cf, 2)
    assert.is_true(asyncio.InvalidStateError:is(e))
    assert.matches("comes from its job on a worker thread", e.message)
    assert.equal(1, cf:result(10))
  end)

  it("wrap_future, run_in_executor and set_default_executor name what they expect", function()
    local loop = asyncio.new_event_loop()
    assert_has(errof(asyncio.wrap_future, 42),
      "bad argument #1 to 'wrap_future' (asyncio.ConcurrentFuture or asyncio.Future expected, got number)")
    assert_has(errof(asyncio.wrap_future, asyncio.ConcurrentFuture(), "loop"),
      "bad argument #2 to 'wrap_future' (event loop or nil expected, got string)")
    assert_has(errof(loop.run_in_executor, loop, {}, function() end),
      "bad argument #1 to 'run_in_executor' (nil (the default executor), an asyncio.ThreadPoolExecutor")
    assert_has(errof(loop.run_in_executor, loop, ex, function() end, coroutine.create(print)),
      "bad argument #3 to 'run_in_executor' (a thread cannot be copied to a worker thread)")
    assert_has(errof(loop.set_default_executor, loop, {}),
      "bad argument #1 to 'set_default_executor' (asyncio.ThreadPoolExecutor expected, got table)")
    loop:close()
  end)
end)

describe("ThreadPoolExecutor across the bridge", function()
  it("under open_loop: run_in_executor and wrap_future, awaited from Trio and from asyncio", function()
    local a, b, c = ta.run(function()
      local ex = asyncio.ThreadPoolExecutor(2)
      local loop = asyncio.get_event_loop()
      local x = trio.fail_after(10, ta.run_aio_future, loop:run_in_executor(ex, function(n) return n + 1 end, 1))
      local y = trio.fail_after(10, ta.aio_as_trio(function()
        return asyncio.wrap_future(ex:submit(function(s) return s:upper() end, "aio")):await()
      end))
      -- a Trio task sleeps while the job runs: the run is not blocked
      local slept = false
      trio.fail_after(10, function()
        local nursery_result
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() trio.sleep(0.01); slept = true end)
          nursery_result = ta.run_aio_future(asyncio.wrap_future(ex:submit(function()
            os.execute("sleep 0.05")
            return "slow"
          end)))
        end)
        assert.equal("slow", nursery_result)
      end)
      ex:shutdown(true)
      return x, y, slept
    end)
    assert.same({ 2, "AIO", true }, { a, b, c })
  end)

  it("trio.run + open_loop: done callbacks of a job's future reach an asyncio task of the open loop", function()
    local got = trio.run(function()
      return ta.open_loop(function(loop)
        local ex = asyncio.ThreadPoolExecutor(1)
        local cf = ex:submit(function(n) os.execute("sleep 0.02") return n * 2 end, 21)
        local r = trio.fail_after(10, ta.aio_as_trio(function()
          assert.equal(loop, asyncio.get_running_loop())
          local event, value = asyncio.Event(), nil
          cf:add_done_callback(function(f) value = f:result(); event:set() end)
          event:wait()
          return value
        end))
        ex:shutdown(true)
        return r
      end)
    end)
    assert.equal(42, got)
  end)
end)
