-- Worker threads: trio.to_thread.run_sync, asyncio.to_thread,
-- loop:run_in_executor, and the same across the bridge.  What is copied
-- (values, errors), what cannot be (argument errors naming the position),
-- cancellation (waiting and abandoning), limiters, and that the scheduler
-- keeps running while workers block.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

-- A worker function that blocks its thread for s seconds (no CPU).
local function block(s)
  os.execute(("sleep %s"):format(s))
  return s
end

describe("trio.to_thread.run_sync", function()
  it("returns every result, keeping integers, floats, nil, booleans and nested tables", function()
    local r = trio.run(function()
      return table.pack(trio.fail_after(5, trio.to_thread.run_sync, function(i, f, t)
        return i + 1, f * 2, nil, true, false, { t[1], sub = { t.k }, [2.5] = "x" }, math.type(i), math.type(f)
      end, 41, 1.0, { "a", k = "v" }))
    end)
    assert.equal(8, r.n)
    assert.equal(42, r[1])
    assert.equal("integer", math.type(r[1]))
    assert.equal(2.0, r[2])
    assert.equal("float", math.type(r[2]))
    assert.is_nil(r[3])
    assert.is_true(r[4])
    assert.is_false(r[5])
    assert.same({ "a", sub = { "v" }, [2.5] = "x" }, r[6])
    assert.same({ "integer", "float" }, { r[7], r[8] })
  end)

  it("copies arguments: changes in the worker do not reach the caller's tables", function()
    local t = { 1, 2 }
    local r = trio.run(function()
      return trio.to_thread.run_sync(function(x)
        x[1] = 99
        return x
      end, t)
    end)
    assert.same({ 99, 2 }, r)
    assert.same({ 1, 2 }, t)
    assert.are_not.equal(t, r)
  end)

  it("passes nil arguments in the middle and at the end", function()
    local n, a, c = trio.run(function()
      return trio.to_thread.run_sync(function(...) return select("#", ...), (...), select(3, ...) end,
        "a", nil, "c", nil)
    end)
    assert.same({ 4, "a", "c" }, { n, a, c })
  end)

  it("runs the function on another OS thread without blocking the scheduler", function()
    local ticks, elapsed = trio.run(function()
      local count = 0
      local t0 = trio.current_time()
      trio.fail_after(5, trio.open_nursery, function(n)
        n:start_soon(function()
          trio.to_thread.run_sync(function(s) os.execute("sleep " .. s) end, 0.3)
          n.cancel_scope:cancel()
        end)
        n:start_soon(function()
          while true do
            trio.sleep(0.02)
            count = count + 1
          end
        end)
      end)
      return count, trio.current_time() - t0
    end)
    assert.is_true(elapsed >= 0.29, "elapsed " .. elapsed)
    assert.is_true(ticks >= 5, "the scheduler ran only " .. ticks .. " ticks while the worker blocked")
  end)

  it("runs several workers in parallel", function()
    -- A barrier, not a stopwatch (under valgrind starting a worker takes
    -- longer than its work): each worker marks its start in a file, then
    -- waits (at most 5 s) until all four have started.  Run one after
    -- another, the first would wait in vain.
    local path = os.tmpname()
    local met = trio.run(function()
      local r = {}
      trio.fail_after(10, trio.open_nursery, function(n)
        for i = 1, 4 do
          n:start_soon(function()
            r[i] = trio.to_thread.run_sync(function(p, count)
              local f = assert(io.open(p, "a"))
              f:write("x")
              f:close()
              local give_up = os.time() + 5
              repeat
                local g = assert(io.open(p))
                local started = #g:read("a")
                g:close()
                if started >= count then return true end
                os.execute("sleep 0.01")
              until os.time() > give_up
              return false
            end, path, 4)
          end)
        end
      end)
      return r
    end)
    os.remove(path)
    assert.same({ true, true, true, true }, met)
  end)

  it("keeps a worker's Lua state between calls, with the caller's package.path", function()
    local counts, path = trio.run(function()
      local seen = {}
      for i = 1, 6 do
        seen[i] = trio.to_thread.run_sync(function()
          _G.calls_here = (_G.calls_here or 0) + 1
          return _G.calls_here
        end)
      end
      return seen, trio.to_thread.run_sync(function() return package.path end)
    end)
    assert.is_true(math.max(table.unpack(counts)) > 1, "no worker state was reused")
    assert.equal(package.path, path)
  end)

  it("lets the worker require modules from the caller's package.path", function()
    local name = trio.run(function()
      return trio.to_thread.run_sync(function()
        local e = require "trio.errors"
        return e.FileNotFoundError.__name
      end)
    end)
    assert.equal("trio_asyncio.FileNotFoundError", name)
  end)

  describe("errors of the worker function", function()
    it("come back as the same string", function()
      local e = trio.run(function()
        return errof(trio.to_thread.run_sync, function() error("boom") end)
      end)
      assert.is_string(e)
      assert.matches("threads_spec.lua:%d+: boom$", e)
    end)

    it("come back with their class, message and fields", function()
      local e = trio.run(function()
        return errof(trio.to_thread.run_sync, function(path)
          local E = require "trio.errors"
          error(E.FileNotFoundError { message = "no such file: " .. path, filename = path, errno = 2 })
        end, "/nope")
      end)
      assert.is_true(errors.FileNotFoundError:is(e))
      assert.is_true(errors.OSError:is(e))
      assert.equal("no such file: /nope", e.message)
      assert.equal("/nope", e.filename)
      assert.equal(2, e.errno)
      assert_has(e.traceback, "threads_spec.lua")
    end)

    it("come back as a copy when they are plain tables", function()
      local e = trio.run(function()
        return errof(trio.to_thread.run_sync, function() error({ code = 7, list = { 1 } }) end)
      end)
      assert.same({ code = 7, list = { 1 } }, e)
    end)

    it("that cannot be copied are reported as such", function()
      local e = trio.run(function()
        return errof(trio.to_thread.run_sync, function() error(io.stdout) end)
      end)
      assert_has(e, "the worker function raised a userdata, which cannot be copied back")
    end)

    it("include using trio inside the worker, with a clear message", function()
      local e1, e2, e3 = trio.run(function()
        return errof(trio.to_thread.run_sync, function() return require("trio").sleep(1) end),
          errof(trio.to_thread.run_sync, function() return _G.asyncio.sleep(1) end),
          errof(trio.to_thread.run_sync, function() return trio.sleep(1) end)
      end)
      assert_has(e1, "trio.sleep: trio cannot be used in a worker thread")
      assert_has(e2, "asyncio.sleep: asyncio cannot be used in a worker thread")
      -- the module as an upvalue is refused before the worker runs
      assert_has(e3, "the function has upvalue 'trio'")
    end)

    it("include results that cannot be copied back", function()
      local e = trio.run(function()
        return errof(trio.to_thread.run_sync, function() return 1, function() end end)
      end)
      assert_has(e, "result #2 of the worker function is a function")
    end)
  end)

  describe("argument errors", function()
    local function argerr(...)
      local args = table.pack(...)
      return trio.run(function()
        return errof(trio.to_thread.run_sync, table.unpack(args, 1, args.n))
      end)
    end

    it("name a function with upvalues other than _ENV", function()
      local up = 1
      local e = argerr(function() return up end)
      assert_has(e, "bad argument #1 to 'run_sync' (the function has upvalue 'up'")
    end)

    it("are raised at the caller's line", function()
      local line
      local e = trio.run(function()
        return errof(function()
          line = debug.getinfo(1, "l").currentline + 1
          trio.to_thread.run_sync(function() end, print)
        end)
      end)
      assert_has(e, "threads_spec.lua:" .. line .. ": bad argument #2 to 'run_sync'")
    end)

    it("name a C function or a value that is not a function", function()
      assert_has(argerr(print), "bad argument #1 to 'run_sync' (Lua function expected, got C function)")
      assert_has(argerr(42), "bad argument #1 to 'run_sync' (Lua function expected, got number)")
    end)

    it("name the argument and type that cannot be copied", function()
      local f = function(...) return ... end
      assert_has(argerr(f, 1, print), "bad argument #3 to 'run_sync' (a function cannot be copied")
      assert_has(argerr(f, io.stdout), "bad argument #2 to 'run_sync' (a userdata cannot be copied")
      assert_has(argerr(f, { k = { coroutine.create(f) } }),
        "bad argument #2 to 'run_sync' (a thread cannot be copied")
      assert_has(argerr(f, setmetatable({}, {})), "bad argument #2 to 'run_sync' (a table with a metatable")
      local cyc = {}
      cyc.self = cyc
      assert_has(argerr(f, 1, 2, cyc), "bad argument #4 to 'run_sync' (a table with a cycle")
    end)

    it("count the options table", function()
      local e = argerr({ cancellable = true }, function(...) return ... end, "ok", print)
      assert_has(e, "bad argument #4 to 'run_sync' (a function cannot be copied")
      assert_has(argerr({ bogus = 1 }, function() end), "unknown option 'bogus'")
      assert_has(argerr({ limiter = 3 }, function() end), "opts.limiter must be a CapacityLimiter")
    end)

    it("accept a table reached twice without a cycle", function()
      local shared = { 1 }
      local r = trio.run(function()
        return trio.to_thread.run_sync(function(t) return t.a[1] + t.b[1] end, { a = shared, b = shared })
      end)
      assert.equal(2, r)
    end)

    it("are raised from asyncio tasks as FlavorError", function()
      local e = asyncio.run(function()
        return errof(trio.to_thread.run_sync, function() end)
      end)
      assert.is_true(errors.FlavorError:is(e))
      assert_has(e, "trio.to_thread.run_sync")
    end)
  end)

  describe("cancellation", function()
    it("waits for the worker by default, then returns its result (the cancellation shows later)", function()
      local scope, result, elapsed, after = trio.run(function()
        local t0 = trio.current_time()
        local r, reached
        local s = trio.move_on_after(0.05, function()
          r = trio.to_thread.run_sync(block, 0.3)
          reached = "returned"
          trio.sleep(0)
          reached = "past the checkpoint"
        end)
        return s, r, trio.current_time() - t0, reached
      end)
      assert.is_true(scope.cancelled_caught)
      assert.equal(0.3, result)
      assert.is_true(elapsed >= 0.29, "returned after " .. elapsed)
      assert.equal("returned", after)
    end)

    it("with cancellable=true returns at once and stops a looping worker", function()
      local elapsed, after = trio.run(function()
        local t0 = trio.current_time()
        for _ = 1, 3 do
          local s = trio.move_on_after(0.05, trio.to_thread.run_sync, { cancellable = true },
            function() while true do end end)
          assert(s.cancelled_caught)
        end
        local took = trio.current_time() - t0
        -- the abandoned workers stopped: a new call still gets a thread
        return took, trio.fail_after(5, trio.to_thread.run_sync, function() return "still working" end)
      end)
      assert.is_true(elapsed < 1, "three cancellations took " .. elapsed)
      assert.equal("still working", after)
    end)

    it("with cancellable=true releases the limiter token at once", function()
      local borrowed = trio.run(function()
        local limiter = trio.CapacityLimiter(1)
        trio.move_on_after(0.05, trio.to_thread.run_sync, { cancellable = true, limiter = limiter }, block, 0.2)
        return limiter.borrowed_tokens
      end)
      assert.equal(0, borrowed)
    end)

    it("with cancellable=true closes the files the stopped worker left open", function()
      -- The stop raises inside the worker, so its own f:close() never runs:
      -- the file must not stay open in the idle worker's state.
      local path = os.tmpname()
      local lfs = require "lfs"
      local function fds_on(p)
        local n = 0
        for fd in lfs.dir("/proc/self/fd") do
          if lfs.symlinkattributes("/proc/self/fd/" .. fd, "target") == p then n = n + 1 end
        end
        return n
      end
      local opened, closed = trio.run(function()
        local s = trio.CancelScope()
        local was_opened
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            s:run(trio.to_thread.run_sync, { cancellable = true }, function(p)
              local f = assert(io.open(p, "r"))
              while f do end
              f:close()
            end, path)
          end)
          trio.fail_after(5, function()
            while fds_on(path) == 0 do trio.sleep(0.01) end
          end)
          was_opened = true
          s:cancel()
        end)
        local gone = trio.move_on_after(5, function()
          while fds_on(path) > 0 do trio.sleep(0.01) end
        end)
        return was_opened, not gone.cancelled_caught
      end)
      os.remove(path)
      assert.is_true(opened)
      assert.is_true(closed, "the abandoned worker's file is still open")
    end)

    it("of a caller already cancelled raises before the worker runs", function()
      local ran = trio.run(function()
        local s = trio.CancelScope()
        s:cancel()
        s:run(trio.to_thread.run_sync, function() error("must not run") end)
        return s.cancelled_caught
      end)
      assert.is_true(ran)
    end)
  end)

  describe("limiters", function()
    it("default to one CapacityLimiter(40) per run", function()
      local a, b, total = trio.run(function()
        local l = trio.to_thread.current_default_thread_limiter()
        return l, trio.to_thread.current_default_thread_limiter(), l.total_tokens
      end)
      local c = trio.run(trio.to_thread.current_default_thread_limiter)
      assert.equal(a, b)
      assert.equal(40, total)
      assert.are_not.equal(a, c)
      assert_has(errof(trio.to_thread.current_default_thread_limiter), "must be called inside trio.run")
    end)

    it("whose release raises: that error comes out, with the worker's error as its context", function()
      local released, plain, chained, string_err = trio.run(function()
        local count = 0
        local failing = {
          acquire_on_behalf_of = function() end,
          release_on_behalf_of = function()
            count = count + 1
            error(errors.Error("release failed " .. count))
          end,
        }
        local e1 = errof(trio.to_thread.run_sync, { limiter = failing }, function() return 1 end)
        local e2 = errof(trio.to_thread.run_sync, { limiter = failing }, function() error("worker failed", 0) end)
        -- a release error that is a string cannot hold the context
        failing.release_on_behalf_of = function() error("plain release error", 0) end
        local e3 = errof(trio.to_thread.run_sync, { limiter = failing }, function() error("lost", 0) end)
        return count, e1, e2, e3
      end)
      assert.equal(2, released)
      assert.equal("release failed 1", plain.message)
      assert.is_nil(plain.context)
      assert.equal("release failed 2", chained.message)
      assert.equal("worker failed", chained.context)
      assert.equal("plain release error", string_err)
    end)

    it("bound how many workers run at once", function()
      local max_seen = trio.run(function()
        local limiter = trio.CapacityLimiter(2)
        local running, max_seen = 0, 0
        trio.fail_after(5, trio.open_nursery, function(n)
          for _ = 1, 6 do
            n:start_soon(function()
              trio.to_thread.run_sync({ limiter = limiter }, block, 0.05)
            end)
          end
          n:start_soon(function()
            while true do
              running = limiter.borrowed_tokens
              if running > max_seen then max_seen = running end
              if #n.child_tasks == 1 then return end
              trio.sleep(0.005)
            end
          end)
        end)
        return max_seen
      end)
      assert.equal(2, max_seen)
    end)
  end)

  it("serves 200 calls from many tasks", function()
    local sum = trio.run(function()
      local total = 0
      trio.fail_after(10, trio.open_nursery, function(n)
        for i = 1, 200 do
          n:start_soon(function()
            local v = trio.to_thread.run_sync(function(x) return x * 2 end, i)
            total = total + v
          end)
        end
      end)
      return total
    end)
    assert.equal(200 * 201, sum)
  end)
end)

describe("asyncio executors", function()
  it("loop:run_in_executor returns a Future of the results", function()
    local a, b, isfut = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local fut = loop:run_in_executor(nil, function(x) return x * 2, "two" end, 21)
      local is = asyncio.isfuture(fut)
      local x, y = asyncio.wait_for(fut, 5)
      return x, y, is
    end)
    assert.same({ 42, "two", true }, { a, b, isfut })
  end)

  it("asyncio.to_thread returns the results and raises the errors", function()
    local r, e = asyncio.run(function()
      return asyncio.to_thread(function(s) return s:upper() end, "abc"),
        errof(asyncio.to_thread, function() error({ code = 1 }) end)
    end)
    assert.equal("ABC", r)
    assert.same({ code = 1 }, e)
  end)

  it("keeps the loop running while workers block", function()
    local ticks = asyncio.run(function()
      local count = 0
      local ticker = asyncio.create_task(function()
        while true do
          asyncio.sleep(0.02)
          count = count + 1
        end
      end)
      asyncio.wait_for(function()
        return asyncio.gather(
          function() return asyncio.to_thread(block, 0.3) end,
          function() return asyncio.to_thread(block, 0.3) end)
      end, 5)
      ticker:cancel()
      return count
    end)
    assert.is_true(ticks >= 5, "the loop ran only " .. ticks .. " ticks")
  end)

  it("a cancelled wait raises at once and drops the worker's result", function()
    local e, elapsed = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      local err = errof(asyncio.wait_for, function() return asyncio.to_thread(block, 0.3) end, 0.05)
      return err, loop:time() - t0
    end)
    assert.is_true(asyncio.TimeoutError:is(e))
    assert.is_true(elapsed < 0.25, "took " .. elapsed)
  end)

  it("argument errors name the position, counting the executor", function()
    local e1, e2, e3 = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      return errof(loop.run_in_executor, loop, nil, function() end, print),
        errof(loop.run_in_executor, loop, {}, function() end),
        errof(asyncio.to_thread, function() end, nil, coroutine.create(print))
    end)
    assert_has(e1, "bad argument #3 to 'run_in_executor' (a function cannot be copied")
    assert_has(e2, "bad argument #1 to 'run_in_executor' (nil (the default executor), an asyncio.ThreadPoolExecutor or a "
      .. "trio_asyncio.TrioExecutor expected, got table)")
    assert_has(e3, "bad argument #3 to 'to_thread' (a thread cannot be copied")
  end)

  it("asyncio.to_thread is asyncio-flavored", function()
    local e = trio.run(function() return errof(asyncio.to_thread, function() end) end)
    assert.is_true(errors.FlavorError:is(e))
  end)

  it("a closed loop refuses run_in_executor", function()
    local loop = asyncio.new_event_loop()
    loop:close()
    assert_has(errof(loop.run_in_executor, loop, nil, function() end), "Event loop is closed")
  end)

  it("a loop closed with a worker still running abandons it", function()
    local loop = asyncio.new_event_loop()
    local fut
    loop:run_until_complete(function()
      fut = loop:run_in_executor(nil, function() while true do end end)
    end)
    loop:close()
    assert.is_false(fut:done())
  end)
end)

describe("worker threads across the bridge", function()
  it("trio.to_thread runs inside open_loop, asyncio.to_thread through aio_as_trio", function()
    local a, b = ta.run(function()
      local x = trio.to_thread.run_sync(function() return "trio side" end)
      local y = ta.aio_as_trio(function()
        return asyncio.to_thread(function() return "asyncio side" end)
      end)()
      return x, y
    end)
    assert.same({ "trio side", "asyncio side" }, { a, b })
  end)

  it("trio_as_aio runs trio.to_thread from an asyncio task", function()
    local r = ta.run(function()
      return ta.aio_as_trio(function()
        return ta.trio_as_aio(function()
          return trio.to_thread.run_sync(function(x) return x + 1 end, 1)
        end)()
      end)()
    end)
    assert.equal(2, r)
  end)

  it("loop:run_in_executor with a TrioExecutor runs under its limiter", function()
    local results, max_seen, e = ta.run(function()
      local limiter = trio.CapacityLimiter(1)
      local executor = ta.TrioExecutor { limiter = limiter }
      local loop = asyncio.get_event_loop()
      local seen = 0
      local r = trio.fail_after(5, ta.aio_as_trio(function()
        local futs = {}
        for i = 1, 3 do futs[i] = loop:run_in_executor(executor, block, ({ 0.05, 0.1, 0.15 })[i]) end
        local poll = loop:call_later(0.02, function() seen = math.max(seen, limiter.borrowed_tokens) end)
        local out = asyncio.gather(futs[1], futs[2], futs[3])
        poll:cancel()
        return out
      end))
      local err = errof(loop.run_in_executor, loop, executor, function() end, print)
      executor:shutdown()
      return r, seen, err
    end)
    assert.same({ 0.05, 0.1, 0.15 }, { results[1], results[2], results[3] })
    assert.equal(1, max_seen)
    assert_has(e, "bad argument #3 to 'run_in_executor' (a function cannot be copied")
  end)

  it("Trio cancellation of aio_as_trio cancels the asyncio wait for a worker", function()
    local scope, elapsed = ta.run(function()
      local t0 = trio.current_time()
      local s = trio.move_on_after(0.05, ta.aio_as_trio(function()
        return asyncio.to_thread(block, 0.3)
      end))
      return s, trio.current_time() - t0
    end)
    assert.is_true(scope.cancelled_caught)
    assert.is_true(elapsed < 0.25, "took " .. elapsed)
  end)
end)
