-- Flavor rules for asyncio (DESIGN.md section 5): Trio-flavored functions
-- in an asyncio Task and asyncio-flavored ones in a Trio task raise
-- trio_asyncio.FlavorError at the call site with the phrase of
-- trio-asyncio's principles text; async functions outside any loop raise a
-- clear error naming the function; bad arguments raise errors naming the
-- function.
local asyncio = require "asyncio"
local trio = require "trio"
local trio_asyncio = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local FlavorError = trio_asyncio.FlavorError
local BAD_YIELD = "Task got bad yield: trio-flavored "
local UNRECOGNIZED = "trio.run received unrecognized yield message: asyncio-flavored "

local function catch(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return e
end

local function assert_starts(s, prefix)
  assert.equal("string", type(s))
  assert(s:sub(1, #prefix) == prefix, ("expected %q to start with %q"):format(s, prefix))
end

--- The error raised by fn(...) inside an asyncio Task (pcall'ed there).
local function in_aio_task(fn, ...)
  local args = table.pack(...)
  return asyncio.run(function()
    local ok, e = pcall(fn, table.unpack(args, 1, args.n))
    assert(not ok, "expected an error inside the asyncio task")
    return e
  end)
end

--- The error raised by fn(...) inside a Trio task (pcall'ed there).
local function in_trio_task(fn, ...)
  local args = table.pack(...)
  return trio.run(function()
    local ok, e = pcall(fn, table.unpack(args, 1, args.n))
    assert(not ok, "expected an error inside the trio task")
    return e
  end)
end

describe("FlavorError", function()
  it("trio_asyncio.FlavorError is an error class", function()
    assert.is_table(FlavorError)
    assert.is_false(FlavorError:is("Task got bad yield"))
  end)
end)

describe("trio functions inside an asyncio Task", function()
  it("trio.sleep raises FlavorError starting with the principles phrase, naming trio_as_aio", function()
    local e = in_aio_task(trio.sleep, 0.01)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_starts(e.message, BAD_YIELD .. "trio.sleep called from asyncio task")
    assert_has(e.message, "trio_asyncio.trio_as_aio")
  end)

  it("the message names the call site", function()
    local e, line = asyncio.run(function()
      local ok, err = pcall(trio.sleep, 0); local here = debug.getinfo(1, "l").currentline
      assert.is_false(ok)
      return err, here
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_has(e.message, "(spec/asyncio_flavor_spec.lua:" .. line .. ")")
  end)

  it("the message names the task as set with set_name", function()
    local e = asyncio.run(function()
      local t = asyncio.create_task(function() return catch(trio.sleep, 0) end)
      t:set_name("fetch")
      return t:await()
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_has(e.message, "asyncio task 'fetch'")
  end)

  it("the message names the task as get_name() does by default", function()
    local e, name = asyncio.run(function()
      local t = asyncio.create_task(function() return catch(trio.sleep, 0) end)
      return t:await(), t:get_name()
    end)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_has(e.message, "asyncio task '" .. name .. "'")
  end)

  local cases = {
    { "trio.sleep_forever", function() trio.sleep_forever() end },
    { "trio.sleep_until", function() trio.sleep_until(0) end },
    { "trio.open_nursery", function() trio.open_nursery(function() end) end },
    { "Event:wait", function() trio.Event():wait() end, "" },
    { "checkpoint", function() trio.lowlevel.checkpoint() end },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " raises FlavorError with the bad-yield phrase", function()
      local e = in_aio_task(c[2])
      assert.is_true(FlavorError:is(e), tostring(e))
      assert_starts(e.message, BAD_YIELD)
      assert_has(e.message, "trio_asyncio.trio_as_aio")
    end)
  end

  it("an uncaught FlavorError fails the Task", function()
    local loop = asyncio.new_event_loop()
    local t = loop:create_task(function() trio.sleep(0) end)
    local e = catch(loop.run_until_complete, loop, t)
    loop:close()
    assert.is_true(FlavorError:is(e))
    assert.is_true(FlavorError:is(t:exception()))
  end)

  it("the same call works through trio_asyncio.trio_as_aio", function()
    local r = trio_asyncio.run(function()
      return trio_asyncio.aio_as_trio(function()
        return trio_asyncio.trio_as_aio(function(x)
          trio.sleep(0.001)
          return x * 2
        end)(21)
      end)()
    end)
    assert.equal(42, r)
  end)
end)

describe("asyncio functions inside a Trio task", function()
  it("asyncio.sleep raises FlavorError starting with the principles phrase, naming aio_as_trio", function()
    local e = in_trio_task(asyncio.sleep, 0.01)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_starts(e.message, UNRECOGNIZED .. "asyncio.sleep called from trio task")
    assert_has(e.message, "trio_asyncio.aio_as_trio")
  end)

  it("asyncio.sleep(0) raises it too", function()
    local e = in_trio_task(asyncio.sleep, 0)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_starts(e.message, UNRECOGNIZED .. "asyncio.sleep")
  end)

  it("Future:await raises FlavorError naming Future:await and aio_as_trio", function()
    local loop = asyncio.new_event_loop()
    local fut = loop:create_future()
    local e = in_trio_task(fut.await, fut)
    loop:close()
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_starts(e.message, UNRECOGNIZED .. "Future:await called from trio task")
    assert_has(e.message, "trio_asyncio.aio_as_trio")
  end)

  it("the message names the call site", function()
    local e = trio.run(function()
      return catch(asyncio.sleep, 1) -- call site
    end)
    assert_has(e.message, "asyncio_flavor_spec.lua:")
  end)

  it("asyncio.current_task() raises FlavorError", function()
    local e = in_trio_task(asyncio.current_task)
    assert.is_true(FlavorError:is(e), tostring(e))
    assert_starts(e.message, UNRECOGNIZED .. "asyncio.current_task")
  end)

  local cases = {
    { "asyncio.gather", function() asyncio.gather(function() end) end },
    { "asyncio.wait_for", function() asyncio.wait_for(function() end, 1) end },
    { "asyncio.shield", function() asyncio.shield(function() end) end },
    { "asyncio.wait", function() asyncio.wait({ function() end }) end },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " raises FlavorError naming itself", function()
      local e = in_trio_task(c[2])
      assert.is_true(FlavorError:is(e), tostring(e))
      assert_starts(e.message, UNRECOGNIZED .. c[1])
    end)
  end

  it("the same call works through trio_asyncio.aio_as_trio", function()
    local r = trio_asyncio.run(function()
      return trio_asyncio.aio_as_trio(function(v) return asyncio.sleep(0.001, v) end)("slept")
    end)
    assert.equal("slept", r)
  end)

  it("trio_asyncio.current_flavor tells the two apart", function()
    assert.equal("trio", trio.run(trio_asyncio.current_flavor))
    assert.equal("asyncio", asyncio.run(trio_asyncio.current_flavor))
    assert.is_nil(trio_asyncio.current_flavor())
  end)
end)

describe("asyncio functions outside any loop", function()
  local cases = {
    { "asyncio.sleep", function() asyncio.sleep(1) end },
    { "asyncio.sleep", function() asyncio.sleep(0) end },
    { "asyncio.gather", function() asyncio.gather() end },
    { "asyncio.wait_for", function() asyncio.wait_for(function() end, 1) end },
    { "asyncio.shield", function() asyncio.shield(function() end) end },
    { "asyncio.wait", function() asyncio.wait({ function() end }) end },
    { "asyncio.current_task", function() asyncio.current_task() end },
    { "asyncio.timeout", function() asyncio.timeout(1, function() end) end },
  }
  for i, c in ipairs(cases) do
    it(c[1] .. " raises a clear error naming itself (" .. i .. ")", function()
      local e = errof(c[2])
      assert_has(e, c[1])
    end)
  end

  it("Future:await raises an error naming Future:await", function()
    local loop = asyncio.new_event_loop()
    local fut = loop:create_future()
    local e = catch(fut.await, fut)
    loop:close()
    assert_has(e, "Future:await")
    assert_has(e, "outside")
  end)

  it("asyncio.create_task raises: no running event loop", function()
    assert_has(errof(asyncio.create_task, function() end), "no running event loop")
  end)

  it("an asyncio function in a plain coroutine inside a Task raises instead of hanging", function()
    local e = asyncio.run(function()
      local co = coroutine.create(function() asyncio.sleep(0.001) end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      return err
    end)
    assert_has(e, "asyncio.sleep")
    assert_has(e, "coroutine")
  end)
end)

describe("bad arguments", function()
  --- it(desc): fn(loop) on a fresh loop raises an error containing fname.
  local function loop_case(desc, fname, fn)
    it(desc, function()
      local loop = asyncio.new_event_loop()
      local ok, e = pcall(fn, loop)
      loop:close()
      assert.is_false(ok, "expected an error")
      assert_has(e, fname)
    end)
  end

  loop_case("call_soon with a non-callable names call_soon", "call_soon", function(loop)
    loop:call_soon(42)
  end)
  loop_case("call_soon_threadsafe with a non-callable names it", "call_soon_threadsafe", function(loop)
    loop:call_soon_threadsafe("nope")
  end)
  loop_case("call_later with NaN names call_later", "call_later", function(loop)
    loop:call_later(0 / 0, print)
  end)
  loop_case("call_later with a non-number delay names call_later", "call_later", function(loop)
    loop:call_later({}, print)
  end)
  loop_case("call_later with a non-callable names call_later", "call_later", function(loop)
    loop:call_later(1, {})
  end)
  loop_case("call_at with NaN names call_at", "call_at", function(loop)
    loop:call_at(0 / 0, print)
  end)
  loop_case("call_at with a non-callable names call_at", "call_at", function(loop)
    loop:call_at(loop:time(), 1)
  end)
  loop_case("loop:create_task with a non-callable names create_task", "create_task", function(loop)
    loop:create_task(1)
  end)
  loop_case("add_reader with a negative fd names add_reader", "add_reader", function(loop)
    loop:add_reader(-1, print)
  end)
  loop_case("add_writer with a non-callable names add_writer", "add_writer", function(loop)
    loop:add_writer(1, "x")
  end)
  loop_case("add_done_callback with a non-callable names add_done_callback", "add_done_callback", function(loop)
    loop:create_future():add_done_callback(false)
  end)
  loop_case("set_exception_handler with a non-callable names it", "set_exception_handler", function(loop)
    loop:set_exception_handler("handler")
  end)

  it("a rejected delay (NaN) schedules nothing", function()
    local loop = asyncio.new_event_loop()
    local called = false
    pcall(loop.call_later, loop, 0 / 0, function() called = true end)
    loop:run_until_complete(function() asyncio.sleep(0.01) end)
    loop:close()
    assert.is_false(called)
  end)

  it("asyncio.create_task with a non-callable names create_task", function()
    local e = asyncio.run(function() return catch(asyncio.create_task, 5) end)
    assert_has(e, "create_task")
  end)

  it("asyncio.sleep with NaN names sleep", function()
    local e = asyncio.run(function() return catch(asyncio.sleep, 0 / 0) end)
    assert_has(e, "sleep")
  end)

  it("asyncio.wait_for with a NaN timeout names wait_for", function()
    local e = asyncio.run(function() return catch(asyncio.wait_for, function() end, 0 / 0) end)
    assert_has(e, "wait_for")
  end)

  it("asyncio.timeout with NaN or a non-callable names timeout", function()
    local e1, e2 = asyncio.run(function()
      return catch(asyncio.timeout, 0 / 0, function() end), catch(asyncio.timeout, 1, 42)
    end)
    assert_has(e1, "timeout")
    assert_has(e2, "timeout")
  end)

  it("asyncio.run with a non-callable names run", function()
    assert_has(errof(asyncio.run, "main"), "run")
  end)

  it("asyncio.set_event_loop with a non-loop names set_event_loop", function()
    assert_has(errof(asyncio.set_event_loop, {}), "set_event_loop")
  end)

  it("asyncio.ensure_future with a number names ensure_future", function()
    local e = asyncio.run(function() return catch(asyncio.ensure_future, 3) end)
    assert_has(e, "ensure_future")
  end)

  it("Future methods on a non-future name the expected type", function()
    local loop = asyncio.new_event_loop()
    local fut = loop:create_future()
    local e = catch(fut.result, {})
    loop:close()
    assert_has(e, "Future")
  end)

  it("errors of closed loops are RuntimeErrors", function()
    local loop = asyncio.new_event_loop()
    loop:close()
    local e = errof(loop.call_soon, loop, print)
    assert.is_true(errors.RuntimeError:is(e))
  end)
end)
