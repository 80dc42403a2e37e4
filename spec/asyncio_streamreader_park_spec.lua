-- A read of an asyncio.StreamReader that has to wait parks its Task in the
-- reader, with no Future (csrc/asyncio/streamreader.c, ta_aio_park in
-- csrc/asyncio/future.c): the wake-ups (feed_data, feed_eof,
-- set_exception), Task:cancel() while parked and after a wake-up, a Task
-- that cancelled itself and then reads, the loop closed and the Task
-- collected while parked, and the waits that still go through a Future
-- (a Trio task in allow_asyncio mode).
local asyncio = require "asyncio"
local trio = require "trio"
local trio_asyncio = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has
local CancelledError = asyncio.CancelledError

--- asyncio.run(fn), failing after 10 seconds instead of hanging.
local function run(fn)
  return asyncio.run(function()
    return asyncio.wait_for(asyncio.create_task(fn), 10)
  end)
end

--- run(fn) with a new StreamReader as fn's argument.
local function with_reader(fn)
  return run(function() return fn(asyncio.StreamReader()) end)
end

--- Awaits the Task `reading`, which was cancelled, then feeds `more` to
--- r: whether the Task ended with CancelledError, and what a read gets then.
local function cancelled_then_read(r, reading, more)
  local e = errof(reading.await, reading)
  r:feed_data(more)
  return { CancelledError:is(e), r:read(10) }
end

describe("a StreamReader read parked in the reader", function()
  it("is woken by feed_data, feed_eof and set_exception, with what each gives", function()
    local got = with_reader(function(r)
      local out = {}
      local reading = asyncio.create_task(function() return r:read(10) end)
      asyncio.sleep(0)
      r:feed_data("one")
      out[#out + 1] = reading:await()
      local exact = asyncio.create_task(function() return r:readexactly(4) end)
      asyncio.sleep(0)
      r:feed_data("ab")
      asyncio.sleep(0) -- woken, still short: parked again
      r:feed_data("cd")
      out[#out + 1] = exact:await()
      local boom = errors.RuntimeError("peer went away")
      local failing = asyncio.create_task(function() return r:readuntil("\n") end)
      asyncio.sleep(0)
      r:set_exception(boom)
      out[#out + 1] = errof(failing.await, failing) == boom
      r:set_exception(nil)
      local at_eof = asyncio.create_task(function() return r:readexactly(3) end)
      asyncio.sleep(0)
      r:feed_data("xy")
      asyncio.sleep(0)
      r:feed_eof()
      local e = errof(at_eof.await, at_eof)
      out[#out + 1] = e.partial
      out[#out + 1] = e.expected
      return out
    end)
    assert.same({ "one", "abcd", true, "xy", 3 }, got)
  end)

  it("cancelled while parked: CancelledError at the read, with the message; nothing lost", function()
    local got = with_reader(function(r)
      local where = {}
      local reading = asyncio.create_task(function()
        local ok, e = pcall(r.read, r, 100)
        where[#where + 1] = ok and "returned" or CancelledError:is(e) and e.message or tostring(e)
        error(e, 0)
      end)
      asyncio.sleep(0) -- it parks
      assert.is_true(reading:cancel("stop reading"))
      assert.is_true(reading:cancel("stop reading")) -- again, before it ran: counted
      assert.is_false(reading:done())
      r:feed_data("ab") -- after the cancel, before it runs: stays in the buffer
      local e = errof(reading.await, reading)
      assert.is_true(CancelledError:is(e))
      assert.is_true(reading:cancelled())
      assert.equal(2, reading:cancelling())
      -- the reader is free for the next read, which gets the bytes
      local second = asyncio.create_task(function() return r:read(100) .. r:read(100) end)
      asyncio.sleep(0)
      r:feed_data("cd")
      return { where[1], second:await(), tostring(r) }
    end)
    assert.same({ "stop reading", "abcd", "asyncio.StreamReader (0 bytes)" }, got)
  end)

  it("cancelled after a wake-up, before it ran: CancelledError; a later read gets the bytes", function()
    local got = with_reader(function(r)
      local reading = asyncio.create_task(function() return r:readexactly(2) end)
      asyncio.sleep(0)
      r:feed_data("a") -- woken: will park again for the second byte...
      reading:cancel() -- ...but is cancelled first
      return cancelled_then_read(r, reading, "b")
    end)
    assert.same({ true, "ab" }, got)
  end)

  it("a Task that catches the cancellation can read again from the same reader", function()
    local got = with_reader(function(r)
      local reading = asyncio.create_task(function()
        local ok, e = pcall(r.read, r, 10)
        assert(not ok and CancelledError:is(e))
        asyncio.current_task():uncancel()
        return r:read(10)
      end)
      asyncio.sleep(0)
      reading:cancel()
      asyncio.sleep(0) -- it caught it and parked again
      r:feed_data("again")
      return reading:await()
    end)
    assert.equal("again", got)
  end)

  it("a Task that cancelled itself raises CancelledError at its next read; the reader stays usable", function()
    local got = with_reader(function(r)
      local reading = asyncio.create_task(function()
        asyncio.current_task():cancel("self")
        return r:read(10)
      end)
      return cancelled_then_read(r, reading, "later")
    end)
    assert.same({ true, "later" }, got)
  end)

  it("Tasks taking turns on one reader each get their own bytes", function()
    local got = with_reader(function(r)
      local out = {}
      for i = 1, 4 do
        local t = asyncio.create_task(function() return r:readexactly(2) end)
        asyncio.sleep(0)
        collectgarbage("collect") -- the parked Task is held by the reader alone
        r:feed_data(("%d%d"):format(i, i))
        out[#out + 1] = t:await()
      end
      return out
    end)
    assert.same({ "11", "22", "33", "44" }, got)
  end)

  it("asyncio.run's end cancels a read still parked, which sees CancelledError", function()
    local seen
    asyncio.run(function()
      local r = asyncio.StreamReader()
      asyncio.create_task(function()
        local ok, e = pcall(r.read, r, 1)
        seen = ok and "returned" or errors.class_of(e) == CancelledError and "cancelled" or tostring(e)
        error(e, 0)
      end)
      asyncio.sleep(0)
    end)
    assert.equal("cancelled", seen)
  end)

  it("a loop closed and dropped with a read parked: the Task and reader are collected with it", function()
    local reports = {}
    local weak = setmetatable({}, { __mode = "v" })
    do
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
      loop:run_until_complete(function()
        local r = asyncio.StreamReader()
        weak.reader = r
        weak.task = asyncio.create_task(function() return r:read(1) end)
        asyncio.sleep(0)
      end)
      loop:close()
    end
    for _ = 1, 4 do collectgarbage("collect") end
    assert.is_nil(weak.task)
    assert.is_nil(weak.reader)
    -- When the loop goes in the same collection as the Task there is no
    -- handler left to tell (the lua5.4 binary's generational mode); when
    -- the collector finalizes the Task while its loop is still there (under
    -- GC stress, whose steps at every resume change which collection takes
    -- what), the pending Task is reported to it, once, as CPython reports
    -- a pending Task destroyed.  Either way nothing else is said.
    assert.is_true(#reports == 0 or (#reports == 1 and reports[1] == "Task was destroyed but it is pending!"),
      table.concat(reports, "; "))
  end)

  it("a parked Task nothing else refers to lives while its reader does, and is reported once both go", function()
    local reports, weak = {}, setmetatable({}, { __mode = "v" })
    local loop = asyncio.new_event_loop()
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
    local got = loop:run_until_complete(function()
      local r = asyncio.StreamReader()
      weak.task = asyncio.create_task(function() return r:read(5) end)
      asyncio.sleep(0)
      collectgarbage("collect")
      assert.is_not_nil(weak.task) -- held by the reader
      r:feed_data("alive")
      return weak.task:await()
    end)
    assert.equal("alive", got)
    loop:run_until_complete(function()
      local r = asyncio.StreamReader()
      asyncio.create_task(function() return r:read(5) end)
      asyncio.sleep(0)
    end) -- r and the Task parked in it are garbage now
    for _ = 1, 4 do collectgarbage("collect") end
    loop:close()
    assert.same({ "Task was destroyed but it is pending!" }, reports)
  end)
end)

--- Starts a Trio task in allow_asyncio mode that reads r and appends what
--- it got to out.
local function start_trio_read(nursery, r, out)
  nursery:start_soon(function()
    trio_asyncio.allow_asyncio(function()
      local data = r:read(10)
      out[#out + 1] = data
    end)
  end)
end

describe("a StreamReader read that waits on a Future", function()
  it("a Trio task in allow_asyncio mode reads, is woken, and is cancelled like a Task", function()
    local got = trio.run(function()
      local out = {}
      trio_asyncio.open_loop(function()
        local r = trio_asyncio.run_aio_coroutine(function() return asyncio.StreamReader() end)
        trio_asyncio.allow_asyncio(function()
          trio.open_nursery(function(nursery)
            start_trio_read(nursery, r, out)
            trio.sleep(0.01)
            r:feed_data("to trio")
          end)
          trio.move_on_after(0.01, function() r:read(10) end)
          out[#out + 1] = tostring(r)
          r:feed_data("next")
          out[#out + 1] = r:read(10)
        end)
      end)
      return out
    end)
    assert.same({ "to trio", "asyncio.StreamReader (0 bytes)", "next" }, got)
  end)

  it("refuses a Task's read while a Trio task waits, and the reverse", function()
    local got = trio.run(function()
      local out = {}
      trio_asyncio.open_loop(function(loop)
        local r = trio_asyncio.run_aio_coroutine(function() return asyncio.StreamReader() end)
        trio.open_nursery(function(nursery)
          start_trio_read(nursery, r, out)
          trio.sleep(0.01)
          local e = trio_asyncio.run_aio_coroutine(function() return errof(r.read, r, 1) end)
          out[#out + 1] = errors.RuntimeError:is(e)
          r:feed_data("first")
        end)
        local reading = loop:create_task(function() return r:read(10) end)
        trio.sleep(0.01)
        trio_asyncio.allow_asyncio(function()
          local e = errof(r.readexactly, r, 1)
          assert_has(e.message, "readexactly() called while another coroutine is already waiting")
        end)
        r:feed_data("second")
        out[#out + 1] = trio_asyncio.aio_as_trio(function() return reading:await() end)()
      end)
      return out
    end)
    assert.same({ true, "first", "second" }, got)
  end)
end)
